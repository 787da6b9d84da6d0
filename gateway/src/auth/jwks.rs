//! JWKS: an issuer's published public keys, fetched over HTTP(S), cached,
//! refreshed in the background, looked up by `kid`.
//!
//! Rotation without restart: the background refresh replaces the key set, and
//! a token with an unknown `kid` triggers one re-fetch — but at most one per
//! `jwks_min_refetch`, single-flight (concurrent misses wait for the same
//! fetch), so a flood of random `kid`s costs one request to the issuer per
//! interval, never a storm. Only asymmetric signing keys are taken (`oct` keys
//! and keys with `use` other than `sig` are skipped), each pinned to its `alg`
//! or, when it names none, to the issuer's allowed algorithms of its family.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http::{Request, header};
use http_body_util::{BodyExt, Full, Limited};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};
use prometheus::IntCounterVec;
use serde::Deserialize;
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::cache::VerdictCache;
use crate::proxy::client::UpstreamClient;

/// Largest JWKS document accepted.
const MAX_JWKS_BYTES: usize = 1024 * 1024;
/// Most keys taken from one document.
const MAX_KEYS: usize = 100;
/// Limit for one fetch (connect, headers and body).
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Smallest RSA modulus accepted, in bytes (2048 bits).
const MIN_RSA_BYTES: usize = 256;

/// Why a JWKS could not be fetched or used.
#[derive(Debug, thiserror::Error)]
pub enum JwkError {
    /// Transport failure or timeout.
    #[error("fetching {url} failed: {message}")]
    Fetch {
        /// JWKS URL.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// Non-2xx answer.
    #[error("{url} answered HTTP {status}")]
    Status {
        /// JWKS URL.
        url: String,
        /// Status code.
        status: u16,
    },
    /// Not a JWKS document.
    #[error("{url} is not a JWK set: {source}")]
    Parse {
        /// JWKS URL.
        url: String,
        /// Cause.
        #[source]
        source: serde_json::Error,
    },
}

/// One usable key from the set.
#[derive(Clone)]
pub struct JwksKey {
    /// `kid`, if the JWK has one.
    pub kid: Option<String>,
    /// Algorithms this key may verify.
    pub algs: Vec<Algorithm>,
    /// Key material.
    pub key: Arc<DecodingKey>,
}

impl std::fmt::Debug for JwksKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksKey").field("kid", &self.kid).field("algs", &self.algs).finish_non_exhaustive()
    }
}

/// The keys of one fetch, plus their raw JSON to detect changes.
#[derive(Debug, Default)]
struct KeySet {
    keys: Vec<JwksKey>,
    raw: Vec<String>,
}

/// One issuer's JWKS endpoint and its cached keys.
#[derive(Debug)]
pub struct Jwks {
    url: http::Uri,
    client: UpstreamClient,
    allowed: Vec<Algorithm>,
    refresh: Duration,
    min_refetch: Duration,
    keys: RwLock<Option<Arc<KeySet>>>,
    /// Time of the last fetch attempt; held during a fetch (single flight).
    last_attempt: Mutex<Option<Instant>>,
    fetches: IntCounterVec,
    /// Verdicts made under an older key set are dropped when the set changes.
    verdicts: Arc<VerdictCache>,
}

/// The JWK members the gateway reads; everything else is ignored.
#[derive(Deserialize)]
struct RawJwk {
    kty: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default, rename = "use")]
    use_: Option<String>,
    #[serde(default)]
    alg: Option<String>,
    #[serde(default)]
    crv: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
    #[serde(default)]
    x: Option<String>,
    #[serde(default)]
    y: Option<String>,
}

#[derive(Deserialize)]
struct RawSet {
    keys: Vec<serde_json::Value>,
}

impl Jwks {
    /// A JWKS source; nothing is fetched until [`Jwks::fetch_now`] or a lookup miss.
    pub fn new(
        url: http::Uri,
        client: UpstreamClient,
        allowed: Vec<Algorithm>,
        refresh: Duration,
        min_refetch: Duration,
        fetches: IntCounterVec,
        verdicts: Arc<VerdictCache>,
    ) -> Self {
        Self {
            url,
            client,
            allowed,
            refresh,
            min_refetch,
            keys: RwLock::default(),
            last_attempt: Mutex::new(None),
            fetches,
            verdicts,
        }
    }

    /// The background refresh interval.
    pub fn refresh_interval(&self) -> Duration {
        self.refresh
    }

    /// The URL.
    pub fn url(&self) -> &http::Uri {
        &self.url
    }

    /// Keys matching `kid` (or, without a `kid`, every key) that may verify `alg`.
    /// `None` when no key set was ever fetched.
    pub fn lookup(&self, kid: Option<&str>, alg: Algorithm) -> Option<Vec<JwksKey>> {
        let set = self.keys.read().unwrap_or_else(|p| p.into_inner()).clone()?;
        let found = set
            .keys
            .iter()
            .filter(|k| kid.is_none_or(|want| k.kid.as_deref() == Some(want)) && k.algs.contains(&alg))
            .cloned()
            .collect();
        Some(found)
    }

    /// Whether any key carries `kid` (whatever its algorithm).
    pub fn knows_kid(&self, kid: &str) -> bool {
        let set = self.keys.read().unwrap_or_else(|p| p.into_inner()).clone();
        set.is_some_and(|s| s.keys.iter().any(|k| k.kid.as_deref() == Some(kid)))
    }

    /// Re-fetch after a lookup miss, unless a fetch was attempted within `min_refetch`.
    /// Returns whether the key set changed.
    pub async fn refetch_bounded(&self) -> Result<bool, JwkError> {
        let mut last = self.last_attempt.lock().await;
        if last.is_some_and(|t| t.elapsed() < self.min_refetch) {
            return Ok(false);
        }
        *last = Some(Instant::now());
        self.fetch_locked().await
    }

    /// Fetch now (start, background refresh, admin action); single-flight with misses.
    /// Returns whether the key set changed.
    pub async fn fetch_now(&self) -> Result<bool, JwkError> {
        let mut last = self.last_attempt.lock().await;
        *last = Some(Instant::now());
        self.fetch_locked().await
    }

    async fn fetch_locked(&self) -> Result<bool, JwkError> {
        let result = self.fetch_set().await;
        let label = if result.is_ok() { "ok" } else { "error" };
        self.fetches.with_label_values(&[label]).inc();
        let set = result?;
        let mut slot = self.keys.write().unwrap_or_else(|p| p.into_inner());
        let changed = slot.as_ref().is_none_or(|old| old.raw != set.raw);
        if changed {
            // A removed key must stop authenticating at once, not when its tokens expire.
            self.verdicts.invalidate();
            tracing::info!(url = %self.url, keys = set.keys.len(), "JWKS key set loaded");
        }
        *slot = Some(Arc::new(set));
        Ok(changed)
    }

    async fn fetch_set(&self) -> Result<KeySet, JwkError> {
        let bytes = fetch_document(&self.client, &self.url).await?;
        parse_set(&bytes, &self.allowed).map_err(|source| JwkError::Parse { url: self.url.to_string(), source })
    }
}

/// One GET of a JWKS document, bounded by [`FETCH_TIMEOUT`] and [`MAX_JWKS_BYTES`].
async fn fetch_document(client: &UpstreamClient, uri: &http::Uri) -> Result<Bytes, JwkError> {
    let url = uri.to_string();
    let fail = |message: String| JwkError::Fetch { url: url.clone(), message };
    let req = Request::get(uri.clone())
        .header(header::ACCEPT, "application/jwk-set+json, application/json")
        .body(Full::new(Bytes::new()))
        .map_err(|e| fail(e.to_string()))?;
    let fetch = async {
        let resp = client.request(req).await.map_err(|e| fail(e.to_string()))?;
        if !resp.status().is_success() {
            return Err(JwkError::Status { url: url.clone(), status: resp.status().as_u16() });
        }
        let body = Limited::new(resp.into_body(), MAX_JWKS_BYTES).collect().await.map_err(|e| fail(e.to_string()))?;
        Ok(body.to_bytes())
    };
    tokio::time::timeout(FETCH_TIMEOUT, fetch).await.map_err(|_| fail("timed out".into()))?
}

/// Why a JWKS entry is not used (see [`JwkReport`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skipped {
    /// Not a JSON object with a `kty`.
    Malformed,
    /// Beyond the first [`MAX_KEYS`] entries.
    OverLimit,
    /// `use` is present and not `sig`.
    NotSigning,
    /// `alg` names no algorithm the gateway knows.
    UnknownAlg,
    /// `alg` is not one of the issuer's allowed algorithms.
    AlgNotAllowed,
    /// `alg` (or the curve) does not fit the key type.
    AlgMismatch,
    /// No allowed algorithm fits the key type (no `alg` given).
    FamilyNotAllowed,
    /// RSA modulus under 2048 bits.
    WeakRsa,
    /// `oct` (symmetric), an unsupported curve, or an unknown `kty`.
    UnsupportedType,
    /// Missing or undecodable key members (`n`, `e`, `x`, `y`).
    BadMaterial,
}

impl std::fmt::Display for Skipped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Malformed => "not a JWK object",
            Self::OverLimit => "beyond the first 100 keys",
            Self::NotSigning => "`use` is not `sig`",
            Self::UnknownAlg => "unknown `alg`",
            Self::AlgNotAllowed => "`alg` is not in the issuer's algorithms",
            Self::AlgMismatch => "`alg` does not fit the key type or curve",
            Self::FamilyNotAllowed => "no allowed algorithm fits the key type",
            Self::WeakRsa => "RSA modulus under 2048 bits",
            Self::UnsupportedType => "unsupported key type (oct keys are never taken from a JWKS)",
            Self::BadMaterial => "missing or invalid key material",
        })
    }
}

/// One entry of a JWKS document as the gateway judges it (for `mcp-gateway doctor`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwkReport {
    /// `kid`, if any.
    pub kid: Option<String>,
    /// `kty` (`?` when missing).
    pub kty: String,
    /// `alg`, if the JWK names one.
    pub alg: Option<String>,
    /// The algorithms the key may verify, or why it is skipped.
    pub verdict: Result<Vec<Algorithm>, Skipped>,
}

/// Fetches `url` once, exactly as the background refresh does (same request, size
/// limit and timeout), and judges every entry against `allowed` as the gateway would.
pub async fn inspect(
    client: &UpstreamClient,
    url: &http::Uri,
    allowed: &[Algorithm],
) -> Result<Vec<JwkReport>, JwkError> {
    let bytes = fetch_document(client, url).await?;
    let entries = classify(&bytes, allowed).map_err(|source| JwkError::Parse { url: url.to_string(), source })?;
    Ok(entries.into_iter().map(|e| e.report).collect())
}

/// One JWKS entry: its raw JSON, the report, and the key when usable.
struct Entry {
    raw: String,
    report: JwkReport,
    key: Option<JwksKey>,
}

/// Judges every entry of a JWKS document (entries past [`MAX_KEYS`] are [`Skipped::OverLimit`]).
fn classify(bytes: &[u8], allowed: &[Algorithm]) -> Result<Vec<Entry>, serde_json::Error> {
    let raw: RawSet = serde_json::from_slice(bytes)?;
    let mut out = Vec::with_capacity(raw.keys.len().min(MAX_KEYS + 1));
    for (i, value) in raw.keys.into_iter().enumerate() {
        let text = value.to_string();
        let member = |name: &str| value.get(name).and_then(serde_json::Value::as_str).map(str::to_owned);
        let (kid, alg) = (member("kid"), member("alg"));
        let kty = member("kty").unwrap_or_else(|| "?".into());
        let judged = if i >= MAX_KEYS {
            Err(Skipped::OverLimit)
        } else {
            match serde_json::from_value::<RawJwk>(value) {
                Ok(jwk) => usable(&jwk, allowed),
                Err(_) => Err(Skipped::Malformed),
            }
        };
        let verdict = judged.as_ref().map(|k| k.algs.clone()).map_err(|why| *why);
        out.push(Entry { raw: text, report: JwkReport { kid, kty, alg, verdict }, key: judged.ok() });
        if i >= MAX_KEYS {
            break;
        }
    }
    Ok(out)
}

/// Parses a JWKS document, keeping the usable signing keys (bad entries are skipped).
fn parse_set(bytes: &[u8], allowed: &[Algorithm]) -> Result<KeySet, serde_json::Error> {
    let mut set = KeySet::default();
    for entry in classify(bytes, allowed)? {
        match entry.key {
            Some(key) => {
                set.keys.push(key);
                set.raw.push(entry.raw);
            }
            None => tracing::debug!(
                kid = ?entry.report.kid,
                kty = %entry.report.kty,
                why = ?entry.report.verdict.err(),
                "JWKS entry skipped (not a usable signing key)"
            ),
        }
    }
    set.raw.sort();
    Ok(set)
}

/// A verification key from one JWK, or why it is not an allowed signing key.
fn usable(jwk: &RawJwk, allowed: &[Algorithm]) -> Result<JwksKey, Skipped> {
    if jwk.use_.as_deref().is_some_and(|u| u != "sig") {
        return Err(Skipped::NotSigning);
    }
    let named: Option<Algorithm> = match jwk.alg.as_deref() {
        Some(a) => Some(a.parse().map_err(|_| Skipped::UnknownAlg)?),
        None => None,
    };
    let bad = Skipped::BadMaterial;
    let (family, key) = match (jwk.kty.as_str(), jwk.crv.as_deref()) {
        ("RSA", _) => {
            let (n, e) = (jwk.n.as_deref().ok_or(bad)?, jwk.e.as_deref().ok_or(bad)?);
            if URL_SAFE_NO_PAD.decode(n.trim_end_matches('=')).map_err(|_| bad)?.len() < MIN_RSA_BYTES {
                return Err(Skipped::WeakRsa);
            }
            (AlgorithmFamily::Rsa, DecodingKey::from_rsa_components(n, e).map_err(|_| bad)?)
        }
        ("EC", Some("P-256" | "P-384")) => {
            let (x, y) = (jwk.x.as_deref().ok_or(bad)?, jwk.y.as_deref().ok_or(bad)?);
            (AlgorithmFamily::Ec, DecodingKey::from_ec_components(x, y).map_err(|_| bad)?)
        }
        ("OKP", Some("Ed25519")) => {
            (AlgorithmFamily::Ed, DecodingKey::from_ed_components(jwk.x.as_deref().ok_or(bad)?).map_err(|_| bad)?)
        }
        // `oct` (symmetric) keys are never taken from a JWKS: that would be HS/RS confusion by another name.
        _ => return Err(Skipped::UnsupportedType),
    };
    let curve_alg = match jwk.crv.as_deref() {
        Some("P-256") => Some(Algorithm::ES256),
        Some("P-384") => Some(Algorithm::ES384),
        _ => None,
    };
    let algs: Vec<Algorithm> = allowed
        .iter()
        .copied()
        .filter(|a| super::keys::family(*a) == family)
        .filter(|a| named.is_none_or(|n| n == *a))
        .filter(|a| curve_alg.is_none_or(|c| c == *a))
        .collect();
    if algs.is_empty() {
        return Err(match named {
            Some(n) if !allowed.contains(&n) => Skipped::AlgNotAllowed,
            Some(_) => Skipped::AlgMismatch,
            None => Skipped::FamilyNotAllowed,
        });
    }
    Ok(JwksKey { kid: jwk.kid.clone(), algs, key: Arc::new(key) })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The modulus of `tests/fixtures/jwt/rsa.pub` (2048 bits).
    const RSA_N: &str = concat!(
        "ps2Wvn4pZk6FucUQx_Dqt2yNTWOb9Nlh90AiCkJ0otxd84FFCWu-5luKfG4f0pq4ykWMJvMYZqbpmYQt8OGlr4Gr5lCvsE9Or4tF",
        "zjvINI13b91MwtYZzZ-oAifISIp5gIAalEY2ho1wI1Bi-I2pLqTKg48jjd0ZmzEv2BzACmu9YtjGWXYALsp6H8KjMf5vfqEtPx_S",
        "zI-THrR8RzdXn8xzZ0kNJKNvQpiFg5K06Lgp9QKR7tc54fiGpS2waiAhK01Mwoq2ODHAnasqGGbxfW4__R8kSc2ijyfK9hADOUeN",
        "cfaEiUYYCs9dZM5WvU5jo9mNEsFy1kgbJiXjbmKXFw",
    );

    fn all() -> Vec<Algorithm> {
        vec![Algorithm::RS256, Algorithm::PS256, Algorithm::ES256, Algorithm::EdDSA]
    }

    #[test]
    fn keeps_only_allowed_signing_keys() {
        let doc = serde_json::json!({"keys": [
            {"kty": "RSA", "kid": "r1", "n": RSA_N, "e": "AQAB"},
            {"kty": "RSA", "kid": "r2", "alg": "RS256", "use": "sig", "n": RSA_N, "e": "AQAB"},
            {"kty": "RSA", "kid": "enc", "use": "enc", "n": RSA_N, "e": "AQAB"},
            {"kty": "RSA", "kid": "small", "n": "AQAB", "e": "AQAB"},
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
            {"kty": "RSA", "kid": "hs-named", "alg": "HS256", "n": RSA_N, "e": "AQAB"},
            {"kty": "EC", "kid": "p521", "crv": "P-521", "x": "AA", "y": "AA"},
            {"kty": "weird"},
            "not an object"
        ]});
        let set = parse_set(doc.to_string().as_bytes(), &all()).unwrap();
        let kids: Vec<_> = set.keys.iter().map(|k| k.kid.as_deref().unwrap()).collect();
        assert_eq!(kids, ["r1", "r2"]);
        assert_eq!(set.keys[0].algs, [Algorithm::RS256, Algorithm::PS256]);
        assert_eq!(set.keys[1].algs, [Algorithm::RS256]);
        // An RSA key is never usable for HS256, even when the issuer allowed list is odd.
        let hs_only = parse_set(doc.to_string().as_bytes(), &[Algorithm::HS256]).unwrap();
        assert!(hs_only.keys.is_empty());
        assert!(parse_set(b"{}", &all()).is_err());
        assert!(parse_set(b"[]", &all()).is_err());
    }

    #[test]
    fn reports_why_entries_are_skipped() {
        let doc = serde_json::json!({"keys": [
            {"kty": "RSA", "kid": "r1", "n": RSA_N, "e": "AQAB"},
            {"kty": "RSA", "kid": "enc", "use": "enc", "n": RSA_N, "e": "AQAB"},
            {"kty": "RSA", "kid": "small", "n": "AQAB", "e": "AQAB"},
            {"kty": "RSA", "kid": "rs512", "alg": "RS512", "n": RSA_N, "e": "AQAB"},
            {"kty": "RSA", "kid": "es", "alg": "ES256", "n": RSA_N, "e": "AQAB"},
            {"kty": "RSA", "kid": "odd", "alg": "XS1", "n": RSA_N, "e": "AQAB"},
            {"kty": "RSA", "kid": "no-n", "e": "AQAB"},
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
            {"kty": "OKP", "kid": "ed", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            "not an object"
        ]});
        let entries = classify(doc.to_string().as_bytes(), &[Algorithm::RS256, Algorithm::ES256]).unwrap();
        let got: Vec<_> = entries.iter().map(|e| (e.report.kid.as_deref(), e.report.verdict.clone())).collect();
        assert_eq!(
            got,
            [
                (Some("r1"), Ok(vec![Algorithm::RS256])),
                (Some("enc"), Err(Skipped::NotSigning)),
                (Some("small"), Err(Skipped::WeakRsa)),
                (Some("rs512"), Err(Skipped::AlgNotAllowed)),
                (Some("es"), Err(Skipped::AlgMismatch)),
                (Some("odd"), Err(Skipped::UnknownAlg)),
                (Some("no-n"), Err(Skipped::BadMaterial)),
                (Some("hmac"), Err(Skipped::UnsupportedType)),
                (Some("ed"), Err(Skipped::FamilyNotAllowed)),
                (None, Err(Skipped::Malformed)),
            ]
        );
        assert_eq!(entries[3].report.alg.as_deref(), Some("RS512"));
        assert_eq!(entries[7].report.kty, "oct");
        let many: Vec<_> = (0..MAX_KEYS + 5).map(|i| serde_json::json!({"kty": "oct", "kid": i.to_string()})).collect();
        let entries = classify(serde_json::json!({ "keys": many }).to_string().as_bytes(), &all()).unwrap();
        assert_eq!(entries.len(), MAX_KEYS + 1);
        assert_eq!(entries[MAX_KEYS].report.verdict, Err(Skipped::OverLimit));
    }
}

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
        let url = self.url.to_string();
        let fail = |message: String| JwkError::Fetch { url: url.clone(), message };
        let req = Request::get(self.url.clone())
            .header(header::ACCEPT, "application/jwk-set+json, application/json")
            .body(Full::new(Bytes::new()))
            .map_err(|e| fail(e.to_string()))?;
        let fetch = async {
            let resp = self.client.request(req).await.map_err(|e| fail(e.to_string()))?;
            if !resp.status().is_success() {
                return Err(JwkError::Status { url: url.clone(), status: resp.status().as_u16() });
            }
            let body =
                Limited::new(resp.into_body(), MAX_JWKS_BYTES).collect().await.map_err(|e| fail(e.to_string()))?;
            Ok(body.to_bytes())
        };
        let bytes = tokio::time::timeout(FETCH_TIMEOUT, fetch).await.map_err(|_| fail("timed out".into()))??;
        parse_set(&bytes, &self.allowed).map_err(|source| JwkError::Parse { url, source })
    }
}

/// Parses a JWKS document, keeping the usable signing keys (bad entries are skipped).
fn parse_set(bytes: &[u8], allowed: &[Algorithm]) -> Result<KeySet, serde_json::Error> {
    let raw: RawSet = serde_json::from_slice(bytes)?;
    let mut set = KeySet::default();
    for value in raw.keys.into_iter().take(MAX_KEYS) {
        let text = value.to_string();
        let Ok(jwk) = serde_json::from_value::<RawJwk>(value) else { continue };
        match usable(&jwk, allowed) {
            Some(key) => {
                set.keys.push(key);
                set.raw.push(text);
            }
            None => tracing::debug!(kid = ?jwk.kid, kty = %jwk.kty, "JWKS entry skipped (not a usable signing key)"),
        }
    }
    set.raw.sort();
    Ok(set)
}

/// A verification key from one JWK, or `None` if it is not an allowed signing key.
fn usable(jwk: &RawJwk, allowed: &[Algorithm]) -> Option<JwksKey> {
    if jwk.use_.as_deref().is_some_and(|u| u != "sig") {
        return None;
    }
    let named: Option<Algorithm> = match jwk.alg.as_deref() {
        Some(a) => Some(a.parse().ok()?),
        None => None,
    };
    let (family, key) = match (jwk.kty.as_str(), jwk.crv.as_deref()) {
        ("RSA", _) => {
            let (n, e) = (jwk.n.as_deref()?, jwk.e.as_deref()?);
            if URL_SAFE_NO_PAD.decode(n.trim_end_matches('=')).ok()?.len() < MIN_RSA_BYTES {
                return None;
            }
            (AlgorithmFamily::Rsa, DecodingKey::from_rsa_components(n, e).ok()?)
        }
        ("EC", Some("P-256" | "P-384")) => {
            (AlgorithmFamily::Ec, DecodingKey::from_ec_components(jwk.x.as_deref()?, jwk.y.as_deref()?).ok()?)
        }
        ("OKP", Some("Ed25519")) => (AlgorithmFamily::Ed, DecodingKey::from_ed_components(jwk.x.as_deref()?).ok()?),
        // `oct` (symmetric) keys are never taken from a JWKS: that would be HS/RS confusion by another name.
        _ => return None,
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
        return None;
    }
    Some(JwksKey { kid: jwk.kid.clone(), algs, key: Arc::new(key) })
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
}

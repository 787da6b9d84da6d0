//! JWT access-token verification (RFC 9068 / OAuth 2.1 §5.2 as the MCP spec
//! asks): signature with a key pinned to the header's algorithm, `iss`, `aud`
//! (the gateway's resource URI), `exp`, `nbf` with leeway, and `sub`.
//!
//! Order, cheapest first: split and decode the header ourselves (so `alg:
//! none`, unknown algorithms and `crit` are refused before any key is
//! touched), read the unverified `iss` only to pick the issuer, pick keys by
//! `kid` and algorithm (a JWKS miss triggers one bounded re-fetch), then let
//! `jsonwebtoken` verify the signature and the registered claims. Header
//! members that name key material (`jku`, `jwk`, `x5u`, `x5c`) are ignored:
//! keys only ever come from config.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::AuthError;
use super::jwks::Jwks;
use super::keys::StaticKey;

/// Longest credential accepted, in bytes (checked before any decoding).
pub const MAX_TOKEN_LEN: usize = 8 * 1024;
/// Longest `kid` looked up (longer ones are unknown without a JWKS fetch).
const MAX_KID_LEN: usize = 256;
/// Longest `sub` accepted (it is sealed into session ids).
const MAX_SUBJECT_LEN: usize = 512;
/// Most keys tried for one token.
const MAX_CANDIDATES: usize = 4;

/// The JOSE header members the gateway reads.
#[derive(Debug, Deserialize)]
pub struct RawHeader {
    /// `alg`, as written.
    pub alg: String,
    /// `kid`.
    #[serde(default)]
    pub kid: Option<String>,
    /// `crit`: extensions the verifier must understand (the gateway understands none).
    #[serde(default)]
    pub crit: Option<Value>,
}

#[derive(Deserialize)]
struct UnverifiedIssuer {
    #[serde(default)]
    iss: Option<Value>,
}

/// What a valid token says.
#[derive(Debug, Clone)]
pub struct Verified {
    /// `iss`.
    pub issuer: String,
    /// `sub`.
    pub subject: String,
    /// `scope` (space-separated) and `scp` (array or string), merged.
    pub scopes: Vec<String>,
    /// `exp`, Unix seconds.
    pub exp: u64,
    /// All claims, for policy and claim headers.
    pub claims: Map<String, Value>,
}

/// One trusted issuer: validation rules per algorithm, static keys, optional JWKS.
#[derive(Debug)]
pub struct Issuer {
    /// The exact `iss`.
    pub name: String,
    validations: Vec<(Algorithm, Validation)>,
    static_keys: Vec<StaticKey>,
    /// The issuer's JWKS, if configured.
    pub jwks: Option<Arc<Jwks>>,
}

/// A key chosen for one verification attempt.
struct Candidate {
    key: Arc<DecodingKey>,
    alg: Algorithm,
}

impl Issuer {
    /// An issuer accepting `audiences` with `leeway` seconds of clock skew.
    pub fn new(
        name: String,
        audiences: &[String],
        leeway: u64,
        static_keys: Vec<StaticKey>,
        jwks: Option<(Arc<Jwks>, Vec<Algorithm>)>,
    ) -> Self {
        // Verification runs on the ring backend; installing it here covers every path to `verify`.
        super::crypto::install();
        let mut algs: Vec<Algorithm> = static_keys.iter().map(|k| k.alg).collect();
        if let Some((_, allowed)) = &jwks {
            algs.extend(allowed.iter().copied());
        }
        algs.dedup();
        let validations = algs
            .into_iter()
            .map(|alg| {
                let mut v = Validation::new(alg);
                v.leeway = leeway;
                v.validate_exp = true;
                v.validate_nbf = true;
                v.validate_aud = true;
                v.set_audience(audiences);
                v.set_issuer(std::slice::from_ref(&name));
                v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
                (alg, v)
            })
            .collect();
        Self { name, validations, static_keys, jwks: jwks.map(|(j, _)| j) }
    }

    fn validation(&self, alg: Algorithm) -> Option<&Validation> {
        self.validations.iter().find(|(a, _)| *a == alg).map(|(_, v)| v)
    }

    /// Keys for `(kid, alg)`: a static key bound to that `kid` wins outright; otherwise
    /// static keys without a `kid`, then the JWKS (re-fetched once, bounded, on a miss).
    async fn candidates(&self, kid: Option<&str>, alg: Algorithm) -> Result<Vec<Candidate>, AuthError> {
        let pick = |k: &StaticKey| Candidate { key: Arc::clone(&k.key), alg };
        let same_alg = self.static_keys.iter().filter(|k| k.alg == alg);
        let exact: Vec<Candidate> =
            same_alg.clone().filter(|k| kid.is_some() && k.kid.as_deref() == kid).map(pick).collect();
        if !exact.is_empty() {
            return Ok(exact);
        }
        let mut out: Vec<Candidate> = same_alg.filter(|k| kid.is_none() || k.kid.is_none()).map(pick).collect();
        let Some(jwks) = &self.jwks else { return Ok(out) };
        let mut found = jwks.lookup(kid, alg);
        // Only a kid never seen (or no key at all) justifies asking the issuer again.
        let worth_fetching = kid.is_none_or(|k| k.len() <= MAX_KID_LEN && !jwks.knows_kid(k));
        if found.as_ref().is_none_or(Vec::is_empty) && worth_fetching {
            match jwks.refetch_bounded().await {
                Ok(_) => found = jwks.lookup(kid, alg),
                Err(e) => tracing::warn!(error = %e, "JWKS re-fetch after an unknown kid failed"),
            }
        }
        match found {
            Some(keys) => out.extend(keys.into_iter().map(|k| Candidate { key: k.key, alg })),
            // Never fetched successfully: the gateway cannot judge; it is not the token's fault.
            None if out.is_empty() => return Err(AuthError::KeysUnavailable(self.name.clone())),
            None => {}
        }
        Ok(out)
    }
}

/// Splits a compact JWS and decodes its header and unverified issuer; pure, never panics.
pub fn inspect(token: &str) -> Result<(RawHeader, Option<String>), AuthError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(AuthError::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(AuthError::Malformed);
    };
    let b64 = |part: &str| part.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_');
    if h.is_empty() || p.is_empty() || !b64(h) || !b64(p) || !b64(s) {
        return Err(AuthError::Malformed);
    }
    let header_json = URL_SAFE_NO_PAD.decode(h).map_err(|_| AuthError::Malformed)?;
    let header: RawHeader = serde_json::from_slice(&header_json).map_err(|_| AuthError::Malformed)?;
    let payload = URL_SAFE_NO_PAD.decode(p).map_err(|_| AuthError::Malformed)?;
    let iss: UnverifiedIssuer = serde_json::from_slice(&payload).map_err(|_| AuthError::Malformed)?;
    let iss = match iss.iss {
        Some(Value::String(s)) => Some(s),
        Some(_) => return Err(AuthError::InvalidClaim("iss".into())),
        None => None,
    };
    Ok((header, iss))
}

/// Verifies a JWT against the configured issuers.
pub async fn verify(issuers: &[Issuer], token: &str) -> Result<Verified, AuthError> {
    let (header, iss) = inspect(token)?;
    // An empty signature can only mean `alg: none`; refuse whatever the header says.
    if token.ends_with('.') || header.alg.eq_ignore_ascii_case("none") {
        return Err(AuthError::AlgorithmNotAllowed);
    }
    let alg: Algorithm = header.alg.parse().map_err(|_| AuthError::AlgorithmNotAllowed)?;
    if header.crit.is_some() {
        return Err(AuthError::UnsupportedCrit);
    }
    let Some(iss) = iss else { return Err(AuthError::MissingClaim("iss".into())) };
    let issuer = issuers.iter().find(|i| i.name == iss).ok_or(AuthError::WrongIssuer)?;
    let Some(validation) = issuer.validation(alg) else {
        return Err(AuthError::AlgorithmNotAllowed);
    };
    let kid = header.kid.as_deref();
    let candidates = issuer.candidates(kid, alg).await?;
    if candidates.is_empty() {
        return Err(AuthError::UnknownKey);
    }
    let mut last = AuthError::BadSignature;
    for c in candidates.iter().take(MAX_CANDIDATES) {
        debug_assert_eq!(c.alg, alg);
        match jsonwebtoken::decode::<Map<String, Value>>(token, &c.key, validation) {
            Ok(data) => return verified(issuer, data.claims),
            Err(e) => {
                last = map_error(e.kind());
                if !matches!(last, AuthError::BadSignature) {
                    // Claim failures do not depend on the key: stop here.
                    return Err(last);
                }
            }
        }
    }
    Err(last)
}

fn verified(issuer: &Issuer, claims: Map<String, Value>) -> Result<Verified, AuthError> {
    let subject = match claims.get("sub") {
        Some(Value::String(s)) if !s.is_empty() && s.len() <= MAX_SUBJECT_LEN => s.clone(),
        _ => return Err(AuthError::InvalidClaim("sub".into())),
    };
    let exp = claims.get("exp").and_then(Value::as_f64).filter(|e| *e >= 0.0).map_or(0, |e| e as u64);
    let mut scopes: Vec<String> = Vec::new();
    if let Some(Value::String(s)) = claims.get("scope") {
        scopes.extend(s.split_ascii_whitespace().map(str::to_owned));
    }
    match claims.get("scp") {
        Some(Value::String(s)) => scopes.extend(s.split_ascii_whitespace().map(str::to_owned)),
        Some(Value::Array(items)) => scopes.extend(items.iter().filter_map(Value::as_str).map(str::to_owned)),
        _ => {}
    }
    scopes.sort();
    scopes.dedup();
    Ok(Verified { issuer: issuer.name.clone(), subject, scopes, exp, claims })
}

fn map_error(kind: &ErrorKind) -> AuthError {
    match kind {
        ErrorKind::InvalidSignature
        | ErrorKind::InvalidRsaKey(_)
        | ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidEddsaKey
        | ErrorKind::InvalidKeyFormat
        | ErrorKind::Provider(_) => AuthError::BadSignature,
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::ImmatureSignature => AuthError::NotYetValid,
        ErrorKind::InvalidAudience => AuthError::WrongAudience,
        ErrorKind::InvalidIssuer => AuthError::WrongIssuer,
        ErrorKind::MissingRequiredClaim(c) => AuthError::MissingClaim(c.clone()),
        ErrorKind::InvalidClaimFormat(c) => AuthError::InvalidClaim(c.clone()),
        ErrorKind::InvalidSubject => AuthError::InvalidClaim("sub".into()),
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName | ErrorKind::MissingAlgorithm => {
            AuthError::AlgorithmNotAllowed
        }
        _ => AuthError::Malformed,
    }
}

#[cfg(test)]
#[path = "jwt_tests.rs"]
mod tests;

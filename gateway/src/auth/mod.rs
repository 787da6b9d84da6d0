//! Edge security: who may call the gateway, what they may use, and what the
//! backends receive instead of the client's token.
//!
//! Phases, in the order [`Guard::admit`] and the transports run them, and why:
//! 1. **limits** — header count/size (431): nothing else has looked at the headers yet;
//! 2. **Origin** — a present, disallowed `Origin` is 403 (DNS rebinding); no credential needed to refuse;
//! 3. **per-IP rate limit** (429) — before any cryptography, so a flood of bad tokens stays cheap;
//! 4. **credential** (401) — a token in the query string is refused; `Authorization: Bearer`
//!    (JWT or API key) or `X-API-Key` is verified once and its verdict cached ([`cache`]).
//!    This sits after routing by path and *before the body is read*, so an
//!    unauthenticated client cannot make the gateway buffer a body;
//! 5. **required scopes** (403 `insufficient_scope`);
//! 6. **per-principal rate limit** (429);
//! 7. then, in the transport after the envelope is parsed: **per-tool policy**
//!    (403 before the backend; list responses filtered, [`filter`]), **session
//!    binding** (a session sealed for another principal is 404), and the
//!    **upstream credential** ([`upstream`]: the client's token never passes).
//!
//! Every request of every transport goes through all of it: POST, GET streams,
//! DELETE, notifications, legacy SSE GET and POST. A session is never treated
//! as authentication.

pub mod admin;
pub mod apikey;
pub mod authn;
pub mod cache;
pub mod crypto;
pub mod filter;
pub mod guard;
pub mod jwks;
pub mod jwt;
pub mod keys;
pub mod limits;
pub mod metadata;
pub mod origin;
pub mod policy;
pub mod ratelimit;
pub mod recent;
pub mod upstream;

use serde_json::Value;

pub use guard::{BuildError, Guard};

use crate::session::token::Principal;
use policy::Access;

/// An authenticated caller, as cached with its credential's verdict.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Issuer and subject; sealed into the sessions this caller creates.
    pub principal: Principal,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// The claims the config refers to (policy `claims`, `claim_headers`).
    pub claims: Vec<(String, Value)>,
    /// What the caller may use, computed once from `auth.policy`.
    pub access: Access,
    /// `"<issuer> <subject>"`: the key the per-principal rate limit counts under.
    limit_key: Box<str>,
}

impl Caller {
    /// A caller; the rate-limit key is derived once here, not per request.
    pub fn new(principal: Principal, scopes: Vec<String>, claims: Vec<(String, Value)>, access: Access) -> Self {
        let limit_key = format!("{} {}", principal.issuer, principal.subject).into_boxed_str();
        Self { principal, scopes, claims, access, limit_key }
    }

    /// The key the per-principal rate limit counts under.
    pub fn limit_key(&self) -> &str {
        &self.limit_key
    }

    /// A caller with no scopes, claims or restrictions (unit tests).
    #[cfg(test)]
    pub fn for_tests(subject: &str) -> Self {
        let principal = Principal { issuer: "https://issuer.test".into(), subject: subject.into() };
        Self::new(principal, Vec::new(), Vec::new(), Access::all())
    }
}

/// Why a credential was not accepted. All are 401 except [`AuthError::KeysUnavailable`] (503).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization: Bearer` (or `X-API-Key`) credential.
    #[error("authorization required")]
    Missing,
    /// An access token in the URI query string (forbidden by the MCP spec).
    #[error("access tokens must not be sent in the query string")]
    TokenInQuery,
    /// Not a well-formed JWT (or too long).
    #[error("malformed token")]
    Malformed,
    /// `alg` is `none`, unknown, or not the algorithm the key is pinned to.
    #[error("token algorithm not allowed")]
    AlgorithmNotAllowed,
    /// The header has `crit` extensions.
    #[error("unsupported critical token header")]
    UnsupportedCrit,
    /// No key with the token's `kid` (after a bounded JWKS re-fetch).
    #[error("unknown signing key")]
    UnknownKey,
    /// The signature does not verify.
    #[error("invalid token signature")]
    BadSignature,
    /// `exp` is past (beyond the leeway).
    #[error("token expired")]
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    #[error("token not yet valid")]
    NotYetValid,
    /// `aud` does not name this resource.
    #[error("token was not issued for this resource")]
    WrongAudience,
    /// `iss` is not a configured issuer.
    #[error("token issuer not trusted")]
    WrongIssuer,
    /// A required claim is absent.
    #[error("token lacks required claim {0}")]
    MissingClaim(String),
    /// A claim has the wrong type or value.
    #[error("token claim {0} is invalid")]
    InvalidClaim(String),
    /// No configured API key has this digest.
    #[error("invalid API key")]
    InvalidApiKey,
    /// The issuer's JWKS has never been fetched successfully.
    #[error("signing keys of issuer {0} are unavailable")]
    KeysUnavailable(String),
}

impl AuthError {
    /// Short, stable reason for logs, metrics and `error.data.reason`.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Missing => "missing_credential",
            Self::TokenInQuery => "token_in_query",
            Self::Malformed => "malformed_token",
            Self::AlgorithmNotAllowed => "algorithm_not_allowed",
            Self::UnsupportedCrit => "unsupported_crit",
            Self::UnknownKey => "unknown_kid",
            Self::BadSignature => "invalid_signature",
            Self::Expired => "token_expired",
            Self::NotYetValid => "token_not_yet_valid",
            Self::WrongAudience => "invalid_audience",
            Self::WrongIssuer => "invalid_issuer",
            Self::MissingClaim(_) => "missing_claim",
            Self::InvalidClaim(_) => "invalid_claim",
            Self::InvalidApiKey => "invalid_api_key",
            Self::KeysUnavailable(_) => "keys_unavailable",
        }
    }

    /// Whether this refusal may be remembered in the verdict cache. Only failures found
    /// *after* the signature verified qualify: anyone can mint endless unique bad tokens,
    /// and caching those would evict good verdicts.
    pub fn cacheable(&self) -> bool {
        match self {
            Self::Expired | Self::WrongAudience => true,
            Self::Missing
            | Self::TokenInQuery
            | Self::Malformed
            | Self::AlgorithmNotAllowed
            | Self::UnsupportedCrit
            | Self::UnknownKey
            | Self::BadSignature
            | Self::NotYetValid
            | Self::WrongIssuer
            | Self::MissingClaim(_)
            | Self::InvalidClaim(_)
            | Self::InvalidApiKey
            | Self::KeysUnavailable(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_distinct() {
        let all = [
            AuthError::Missing,
            AuthError::TokenInQuery,
            AuthError::Malformed,
            AuthError::AlgorithmNotAllowed,
            AuthError::UnsupportedCrit,
            AuthError::UnknownKey,
            AuthError::BadSignature,
            AuthError::Expired,
            AuthError::NotYetValid,
            AuthError::WrongAudience,
            AuthError::WrongIssuer,
            AuthError::MissingClaim("x".into()),
            AuthError::InvalidClaim("x".into()),
            AuthError::InvalidApiKey,
            AuthError::KeysUnavailable("i".into()),
        ];
        let mut reasons: Vec<_> = all.iter().map(AuthError::reason).collect();
        reasons.sort_unstable();
        reasons.dedup();
        assert_eq!(reasons.len(), all.len());
        assert_eq!(all.iter().filter(|e| e.cacheable()).count(), 2);
        assert_eq!(Caller::for_tests("a").limit_key(), "https://issuer.test a");
    }
}

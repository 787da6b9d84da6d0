//! Authentication: a presented credential (JWT or API key) to a [`Caller`],
//! through the verdict cache; or, without one, a verified client certificate
//! (`server.tls.client_auth`) to a caller with issuer `x509` and its subject CN. A token
//! repeated lately costs a comparison with the remembered one, an older one a SHA-256 and
//! a hash lookup ([`cache`]); a new one is verified once (signature, claims), turned into
//! a caller with its policy [`Access`](super::policy::Access) computed, and remembered
//! until it expires.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::Algorithm;

use super::apikey::{API_KEY_ISSUER, ApiKeys};
use super::cache::{Lookup, VerdictCache};
use super::jwks::Jwks;
use super::jwt::{self, Issuer, Verified};
use super::keys::{self, Env, KeyError};
use super::policy::{Policy, Subject};
use super::{AuthError, Caller};
use crate::config::AuthConfig;
use crate::proxy::client::UpstreamClient;
use crate::session::token::Principal;
use crate::telemetry::Metrics;

/// The issuer recorded in a client-certificate caller's principal.
pub const X509_ISSUER: &str = "x509";
/// How long an API key verdict is remembered (keys do not expire; config reloads restart).
const API_KEY_VERDICT_SECS: u64 = 3600;
/// How long a cacheable refusal (expired, wrong audience) is remembered.
const NEGATIVE_VERDICT_SECS: u64 = 300;

/// Verifies credentials against the configured issuers and API keys.
#[derive(Debug)]
pub struct Authenticator {
    issuers: Vec<Issuer>,
    api_keys: ApiKeys,
    cache: Arc<VerdictCache>,
    policy: Policy,
    kept_claims: Vec<String>,
    leeway: u64,
    /// `mcp_auth_verdict_cache_total{outcome="hit"|"miss"}`, resolved once: the hit is
    /// every authenticated request's path.
    cache_hits: prometheus::IntCounter,
    cache_misses: prometheus::IntCounter,
}

fn now_unix() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// `bytes` as text when every byte is allowed in a header value as text (visible ASCII,
/// space, tab), as [`http::HeaderValue::to_str`] checks.
pub fn header_text(bytes: &[u8]) -> Option<&str> {
    if bytes.iter().all(|b| (b' '..0x7f).contains(b) || *b == b'\t') { std::str::from_utf8(bytes).ok() } else { None }
}

impl Authenticator {
    /// Loads keys (files, `env`) and creates JWKS sources (not fetched yet).
    /// `kept_claims` are the claims callers keep for policy and headers.
    pub fn build(
        cfg: &AuthConfig,
        client: &UpstreamClient,
        metrics: &Metrics,
        env: &dyn Env,
        kept_claims: Vec<String>,
    ) -> Result<Self, KeyError> {
        let resource = cfg.resource.clone().unwrap_or_default();
        let leeway = cfg.leeway.as_secs();
        let cache = Arc::new(VerdictCache::new(cfg.verdict_cache_size));
        let mut issuers = Vec::with_capacity(cfg.issuers.len());
        for i in &cfg.issuers {
            let statics = i.keys.iter().map(|k| keys::load(k, env)).collect::<Result<Vec<_>, _>>()?;
            let audiences = if i.audiences.is_empty() { vec![resource.clone()] } else { i.audiences.clone() };
            let jwks = match &i.jwks_url {
                Some(url) => {
                    let allowed =
                        i.algorithms.iter().map(|a| keys::algorithm(a)).collect::<Result<Vec<Algorithm>, _>>()?;
                    let source = Jwks::new(
                        url.clone(),
                        client.clone(),
                        allowed.clone(),
                        i.jwks_refresh,
                        i.jwks_min_refetch,
                        metrics.jwks_fetches.clone(),
                        Arc::clone(&cache),
                    );
                    Some((Arc::new(source), allowed))
                }
                None => None,
            };
            issuers.push(Issuer::new(i.issuer.clone(), &audiences, leeway, statics, jwks));
        }
        Ok(Self {
            issuers,
            api_keys: ApiKeys::new(&cfg.api_keys),
            cache,
            policy: Policy::new(&cfg.policy),
            kept_claims,
            leeway,
            cache_hits: metrics.verdict_cache.with_label_values(&["hit"]),
            cache_misses: metrics.verdict_cache.with_label_values(&["miss"]),
        })
    }

    /// The compiled policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The verdict cache (admin flush).
    pub fn cache(&self) -> &VerdictCache {
        &self.cache
    }

    /// Every JWKS source, for the background refresh and admin actions.
    pub fn jwks(&self) -> impl Iterator<Item = &Arc<Jwks>> {
        self.issuers.iter().filter_map(|i| i.jwks.as_ref())
    }

    /// The caller a credential stands for, or why not. `credential` is the header's bytes:
    /// a credential seen lately is recognised as is; any other must be visible ASCII.
    pub async fn authenticate(&self, credential: &[u8]) -> Result<Arc<Caller>, AuthError> {
        if credential.is_empty() || credential.len() > jwt::MAX_TOKEN_LEN {
            return Err(AuthError::Malformed);
        }
        let now = now_unix();
        if let Some(verdict) = self.cache.recent(credential, now) {
            self.cache_hits.inc();
            return verdict;
        }
        let credential = header_text(credential).ok_or(AuthError::Malformed)?;
        let key = match self.cache.lookup_digest(credential, now) {
            Lookup::Hit(verdict) => {
                self.cache_hits.inc();
                return verdict;
            }
            Lookup::Miss(key, epoch) => (key, epoch),
        };
        self.cache_misses.inc();
        let looks_like_jwt = credential.bytes().filter(|b| *b == b'.').count() == 2;
        let (verdict, until) = if looks_like_jwt && !self.issuers.is_empty() {
            match jwt::verify(&self.issuers, credential).await {
                Ok(v) => {
                    let until = v.exp.saturating_add(self.leeway);
                    (Ok(Arc::new(self.caller_from_jwt(v))), until)
                }
                Err(e) => (Err(e), now + NEGATIVE_VERDICT_SECS),
            }
        } else if !self.api_keys.is_empty() {
            match self.api_keys.find(&key.0) {
                Some(k) => {
                    let principal = Principal { issuer: API_KEY_ISSUER.to_owned(), subject: k.name.clone() };
                    (Ok(Arc::new(self.caller(principal, k.scopes.clone(), Vec::new()))), now + API_KEY_VERDICT_SECS)
                }
                None => (Err(AuthError::InvalidApiKey), now),
            }
        } else {
            (Err(AuthError::Malformed), now)
        };
        match &verdict {
            Ok(_) => self.cache.insert(credential, key, verdict.clone(), until, now),
            Err(e) if e.cacheable() => self.cache.insert(credential, key, verdict.clone(), until, now),
            Err(_) => {}
        }
        verdict
    }

    /// The caller a verified client certificate stands for: issuer `x509`, subject its
    /// common name, no scopes; the policy applies as to any caller (`when: {issuer: x509}`).
    /// The TLS handshake did the verification, so this is only the policy lookup.
    pub fn certificate_caller(&self, common_name: &str) -> Arc<Caller> {
        let principal = Principal { issuer: X509_ISSUER.to_owned(), subject: common_name.to_owned() };
        Arc::new(self.caller(principal, Vec::new(), Vec::new()))
    }

    fn caller_from_jwt(&self, v: Verified) -> Caller {
        let claims =
            self.kept_claims.iter().filter_map(|name| v.claims.get(name).map(|c| (name.clone(), c.clone()))).collect();
        self.caller(Principal { issuer: v.issuer, subject: v.subject }, v.scopes, claims)
    }

    fn caller(&self, principal: Principal, scopes: Vec<String>, claims: Vec<(String, serde_json::Value)>) -> Caller {
        let access = self.policy.access(&Subject { principal: &principal, scopes: &scopes, claims: &claims });
        Caller::new(principal, scopes, claims, access)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::cache::digest;
    use crate::auth::keys::ProcessEnv;
    use crate::config::{ApiKeyConfig, Config};

    fn authenticator() -> (Authenticator, Metrics) {
        let key = |name: &str, secret| ApiKeyConfig { name: name.into(), sha256: digest(secret), scopes: vec![] };
        let auth = AuthConfig {
            enabled: true,
            api_keys: vec![key("ci", "secret-one"), key("ops", "secret-two")],
            ..AuthConfig::default()
        };
        let cfg = Config { auth, ..Config::default() };
        let client = crate::proxy::client::build(&cfg.connection_pool);
        let metrics = Metrics::new();
        (Authenticator::build(&cfg.auth, &client, &metrics, &ProcessEnv, Vec::new()).unwrap(), metrics)
    }

    fn subject(r: Result<Arc<Caller>, AuthError>) -> String {
        r.unwrap().principal.subject.clone()
    }

    #[tokio::test]
    async fn repeated_credentials_come_from_the_cache_and_only_their_own_bytes_hit() {
        let (a, _metrics) = authenticator();
        assert_eq!(subject(a.authenticate(b"secret-one").await), "ci");
        assert_eq!(a.cache_misses.get(), 1);
        for _ in 0..3 {
            assert_eq!(subject(a.authenticate(b"secret-one").await), "ci");
        }
        assert_eq!((a.cache_hits.get(), a.cache_misses.get()), (3, 1));
        assert_eq!(subject(a.authenticate(b"secret-two").await), "ops");
        // Near misses of a remembered credential are verified on their own and refused.
        for near in [&b"secret-onE"[..], b"secret-on", b"secret-one ", b"Secret-one"] {
            assert_eq!(a.authenticate(near).await.unwrap_err(), AuthError::InvalidApiKey, "{near:?}");
        }
        // Not header text: refused before any lookup, never remembered.
        for bad in [&b"secret-one\xff"[..], b"secret\x00one", b"caf\xc3\xa9"] {
            assert_eq!(a.authenticate(bad).await.unwrap_err(), AuthError::Malformed, "{bad:?}");
        }
        assert_eq!(a.authenticate(b"").await.unwrap_err(), AuthError::Malformed);
        assert_eq!(a.authenticate(&[b'a'; jwt::MAX_TOKEN_LEN + 1]).await.unwrap_err(), AuthError::Malformed);
        assert_eq!(a.cache().len(), 2);
        // An admin flush forgets the recent credentials too: the next use is verified again.
        let misses = a.cache_misses.get();
        assert_eq!(a.cache().clear(), 2);
        assert_eq!(subject(a.authenticate(b"secret-one").await), "ci");
        assert_eq!(a.cache_misses.get(), misses + 1);
    }

    #[test]
    fn header_text_is_what_a_header_value_allows_as_text() {
        assert_eq!(header_text(b"Bearer a.b-c_d~e+f/g=\t "), Some("Bearer a.b-c_d~e+f/g=\t "));
        for bad in [&b"a\x7f"[..], b"\x1fa", b"a\rb", b"a\nb", b"\xc3\xa9", b"\xff"] {
            assert_eq!(header_text(bad), None, "{bad:?}");
        }
    }
}

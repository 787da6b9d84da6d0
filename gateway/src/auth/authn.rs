//! Authentication: a presented credential (JWT or API key) to a [`Caller`],
//! through the verdict cache; or, without one, a verified client certificate
//! (`server.tls.client_auth`) to a caller with issuer `x509` and its subject CN. A repeated token costs one SHA-256 and one
//! hash lookup; a new one is verified once (signature, claims), turned into a
//! caller with its policy [`Access`](super::policy::Access) computed, and
//! remembered until it expires.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::Algorithm;

use super::apikey::{API_KEY_ISSUER, ApiKeys};
use super::cache::{self, VerdictCache};
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

    /// The caller a credential stands for, or why not.
    pub async fn authenticate(&self, credential: &str) -> Result<Arc<Caller>, AuthError> {
        if credential.is_empty() || credential.len() > jwt::MAX_TOKEN_LEN {
            return Err(AuthError::Malformed);
        }
        let now = now_unix();
        let key = cache::digest(credential);
        if let Some(verdict) = self.cache.get(&key, now) {
            self.cache_hits.inc();
            return verdict;
        }
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
            match self.api_keys.find(&key) {
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
            Ok(_) => self.cache.put(key, verdict.clone(), until, now),
            Err(e) if e.cacheable() => self.cache.put(key, verdict.clone(), until, now),
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

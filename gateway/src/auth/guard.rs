//! The [`Guard`]: every edge check, built once at start from `auth.*` and
//! `security.*`, and the entry points the data plane calls (see the phase
//! list in [`crate::auth`]).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, Request, header};

use super::admin::AdminToken;
use super::authn::{Authenticator, header_text};
use super::filter::ListFilter;
use super::keys::{Env, KeyError};
use super::limits::{self, LimitError};
use super::metadata::{ChallengeError, Metadata};
use super::origin::Origins;
use super::policy::{Category, Grant};
use super::ratelimit::{Limiter, ip_key};
use super::upstream::{UpstreamCreds, UpstreamError, X_API_KEY};
use super::{AuthError, Caller};
use crate::config::{Config, Limits};
use crate::drain;
use crate::mcp::Ctx;
use crate::mcp::envelope::Body;
use crate::proxy::GatewayError;
use crate::proxy::client::UpstreamClient;
use crate::session::token::SessionClaims;
use crate::telemetry::Metrics;

/// Query parameters that would carry a credential (RFC 6750 §2.3 and common API-key spellings).
const QUERY_CREDENTIALS: &[&str] = &["access_token", "api_key", "apikey"];

/// Why the guard could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A JWT key could not be loaded.
    #[error("auth key: {0}")]
    Key(#[from] KeyError),
    /// An `auth.upstream` credential could not be loaded.
    #[error("auth.upstream: {0}")]
    Upstream(#[from] UpstreamError),
    /// The admin token file could not be read.
    #[error("security.admin_token_file: {0}")]
    AdminToken(#[source] std::io::Error),
}

/// Every edge check.
#[derive(Debug)]
pub struct Guard {
    limits: Limits,
    origins: Origins,
    per_ip: Option<Limiter<IpAddr>>,
    per_principal: Option<Limiter<String>>,
    authn: Option<Authenticator>,
    metadata: Option<Metadata>,
    required_scopes: Vec<String>,
    upstream: UpstreamCreds,
    /// The admin token (admin actions).
    pub admin: AdminToken,
}

impl Guard {
    /// Builds the checks; reads key, secret and token files and `env` now.
    pub fn build(
        config: &Config,
        client: &UpstreamClient,
        metrics: &Metrics,
        env: &dyn Env,
    ) -> Result<Self, BuildError> {
        let auth = &config.auth;
        let mut kept: Vec<String> =
            auth.upstream.iter().flat_map(|u| u.claim_headers.iter().map(|(_, c)| c.clone())).collect();
        let (authn, metadata) = if auth.enabled {
            let policy = super::policy::Policy::new(&auth.policy);
            kept.extend(policy.claim_names().map(str::to_owned));
            kept.sort();
            kept.dedup();
            let authn = Authenticator::build(auth, client, metrics, env, kept)?;
            let mut scopes = auth.scopes_supported.clone();
            if scopes.is_empty() {
                scopes.extend(auth.required_scopes.iter().cloned());
                scopes.extend(authn.policy().scopes().map(str::to_owned));
                scopes.dedup();
            }
            (Some(authn), Some(Metadata::new(auth, &config.mcp, &scopes)))
        } else {
            (None, None)
        };
        let sec = &config.security;
        Ok(Self {
            limits: sec.limits.clone(),
            origins: Origins::new(&sec.allowed_origins),
            per_ip: Limiter::new(sec.per_ip),
            per_principal: Limiter::new(sec.per_principal),
            authn,
            metadata,
            required_scopes: auth.required_scopes.clone(),
            upstream: UpstreamCreds::new(&auth.upstream, auth.enabled)?,
            admin: AdminToken::load(sec.admin_token_file.as_deref()).map_err(BuildError::AdminToken)?,
        })
    }

    /// The authenticator, when `auth.enabled`.
    pub fn authn(&self) -> Option<&Authenticator> {
        self.authn.as_ref()
    }

    /// The RFC 9728 document, when `auth.enabled`.
    pub fn metadata(&self) -> Option<&Metadata> {
        self.metadata.as_ref()
    }

    /// The rate limiters (admin views): per IP, per principal.
    pub fn limiters(&self) -> (Option<&Limiter<IpAddr>>, Option<&Limiter<String>>) {
        (self.per_ip.as_ref(), self.per_principal.as_ref())
    }

    /// Phases 1–6 for one MCP request; on success `ctx.caller` is set when auth is on.
    pub async fn admit<B>(&self, req: &Request<B>, ctx: &mut Ctx, metrics: &Metrics) -> Result<(), GatewayError> {
        let result = self.admit_inner(req, ctx).await;
        match &result {
            Err(GatewayError::Unauthorized(e)) => metrics.auth_failures.with_label_values(&[e.reason()]).inc(),
            Err(GatewayError::InsufficientScope(_)) => {
                metrics.auth_failures.with_label_values(&["insufficient_scope"]).inc()
            }
            Err(GatewayError::RateLimited { scope, .. }) => metrics.rate_limited.with_label_values(&[scope]).inc(),
            _ => {}
        }
        result
    }

    async fn admit_inner<B>(&self, req: &Request<B>, ctx: &mut Ctx) -> Result<(), GatewayError> {
        limits::check_headers(req.headers(), &self.limits).map_err(GatewayError::HeadersTooLarge)?;
        self.origins.check(req.headers()).map_err(|_| GatewayError::OriginForbidden)?;
        if let Some(l) = &self.per_ip {
            let retry_after = l.check(&ip_key(ctx.conn.peer.ip()), std::time::Instant::now());
            retry_after.map_err(|retry_after| GatewayError::RateLimited { scope: "ip", retry_after })?;
        }
        let Some(authn) = &self.authn else { return Ok(()) };
        if query_has_credential(req.uri().query().unwrap_or("")) {
            return Err(GatewayError::Unauthorized(AuthError::TokenInQuery));
        }
        // A bearer token or API key wins; without one, a verified client certificate authenticates.
        let caller = match (credential(req.headers()), ctx.conn.client_cert.as_deref()) {
            (Err(GatewayError::Unauthorized(AuthError::Missing)), Some(cn)) => authn.certificate_caller(cn),
            (credential, _) => authn.authenticate(credential?).await.map_err(GatewayError::Unauthorized)?,
        };
        if self.required_scopes.iter().any(|s| !caller.scopes.contains(s)) {
            return Err(GatewayError::InsufficientScope(self.required_scopes.join(" ")));
        }
        if let Some(l) = &self.per_principal {
            let retry_after = l.check(caller.limit_key(), std::time::Instant::now());
            retry_after.map_err(|retry_after| GatewayError::RateLimited { scope: "principal", retry_after })?;
        }
        ctx.caller = Some(caller);
        Ok(())
    }

    /// Phase 7a: JSON-RPC limits, and per-tool policy on a parsed body (403 before the
    /// backend); arms the list filter for `*/list` requests.
    pub fn authorize(&self, body: &Body, ctx: &mut Ctx, metrics: &Metrics) -> Result<(), GatewayError> {
        limits::check_ids(body, self.limits.max_id_length)
            .map_err(|e| GatewayError::InvalidRequest(e.invalid_request_reason()))?;
        let Some(caller) = ctx.caller.clone() else { return Ok(()) };
        if caller.access.is_unrestricted() {
            return Ok(());
        }
        for msg in body.messages() {
            let Some(method) = msg.method.as_deref() else { continue };
            if let Some(c) = Category::of_call(method) {
                let (grant, name) = (caller.access.grant(c), msg.name.as_deref().unwrap_or(""));
                // A restricted category needs a name to check: without one the call is refused.
                if *grant != Grant::Any && (msg.name.is_none() || !grant.allows(name)) {
                    metrics.policy_denials.with_label_values(&[c.noun()]).inc();
                    let scopes = self.authn.as_ref().map(|a| a.policy().scopes_granting(c, name)).unwrap_or_default();
                    let scopes = (!scopes.is_empty()).then(|| scopes.join(" "));
                    return Err(GatewayError::Forbidden { category: c, name: name.to_owned(), scopes });
                }
            }
            if let Some(c) = Category::of_list(method) {
                ctx.list_filter = match body {
                    Body::Single(_) => ListFilter::for_list(&caller, c),
                    Body::Batch(_) => ListFilter::for_stream(&caller),
                };
            }
        }
        Ok(())
    }

    /// JSON nesting depth of a body, before it is parsed (400, -32600).
    pub fn check_depth(&self, bytes: &[u8]) -> Result<(), GatewayError> {
        limits::check_depth(bytes, self.limits.max_json_depth)
            .map_err(|e: LimitError| GatewayError::InvalidRequest(e.invalid_request_reason()))
    }

    /// Phase 7b: a session is usable only by the principal it was sealed for.
    pub fn check_session(&self, claims: &SessionClaims, ctx: &Ctx) -> Result<(), GatewayError> {
        if self.authn.is_none() {
            return Ok(());
        }
        match (&claims.principal, &ctx.caller) {
            (Some(bound), Some(caller)) if *bound == caller.principal => Ok(()),
            _ => Err(GatewayError::PrincipalMismatch),
        }
    }

    /// Phase 7c: upstream credential headers for `backend`.
    pub fn upstream_headers(&self, headers: &mut HeaderMap, backend: &str, caller: Option<&Caller>) {
        self.upstream.apply(headers, backend, caller);
    }

    /// `WWW-Authenticate` and `Retry-After` for the gateway's own refusals.
    pub fn decorate(&self, e: &GatewayError, mut b: http::response::Builder) -> http::response::Builder {
        if let GatewayError::RateLimited { retry_after, .. } = e {
            b = b.header(header::RETRY_AFTER, *retry_after);
        }
        let Some(meta) = &self.metadata else { return b };
        let challenge = match e {
            GatewayError::Unauthorized(AuthError::KeysUnavailable(_)) => None,
            GatewayError::Unauthorized(AuthError::Missing) => Some(meta.challenge(None, None)),
            GatewayError::Unauthorized(err @ AuthError::TokenInQuery) => {
                Some(meta.challenge(Some((ChallengeError::InvalidRequest, &err.to_string())), None))
            }
            GatewayError::Unauthorized(err) => {
                Some(meta.challenge(Some((ChallengeError::InvalidToken, &err.to_string())), None))
            }
            GatewayError::InsufficientScope(scopes) => {
                Some(meta.challenge(Some((ChallengeError::InsufficientScope, "insufficient scope")), Some(scopes)))
            }
            GatewayError::Forbidden { scopes: Some(scopes), category, .. } => {
                let text = format!("this {} needs another scope", category.noun());
                Some(meta.challenge(Some((ChallengeError::InsufficientScope, &text)), Some(scopes)))
            }
            _ => None,
        };
        match challenge {
            Some(v) => b.header(header::WWW_AUTHENTICATE, v),
            None => b,
        }
    }

    /// The background JWKS refresh: fetch at once, then every `jwks_refresh` (sooner after a failure).
    pub fn refresh_tasks(&self, drain: &drain::Watch) -> Vec<impl std::future::Future<Output = ()> + Send + 'static> {
        let Some(authn) = &self.authn else { return Vec::new() };
        authn.jwks().map(|j| refresh(Arc::clone(j), drain.clone())).collect()
    }
}

async fn refresh(jwks: Arc<super::jwks::Jwks>, drain: drain::Watch) {
    let stop = drain.signaled();
    tokio::pin!(stop);
    loop {
        let wait = match jwks.fetch_now().await {
            Ok(_) => jwks.refresh_interval(),
            Err(e) => {
                tracing::warn!(error = %e, "JWKS fetch failed; keeping the previous keys");
                jwks.refresh_interval().min(Duration::from_secs(30))
            }
        };
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// Whether the query string carries a credential parameter.
fn query_has_credential(query: &str) -> bool {
    !query.is_empty()
        && query
            .split('&')
            .filter_map(|kv| kv.split('=').next())
            .any(|k| QUERY_CREDENTIALS.iter().any(|q| k.eq_ignore_ascii_case(q)))
}

/// The presented credential: `Authorization: Bearer <token>`, else `X-API-Key`.
///
/// The credential's bytes are returned unchecked: [`Authenticator::authenticate`] knows a
/// recent one as is and checks any other ([`header_text`]), so a repeated 1 KiB token is
/// not scanned byte by byte on every request. Around the credential there can only be
/// text (a header value has no control bytes but tab; the scheme is `Bearer`), and every
/// refusal checks the whole value, so a value that is not header text is `Malformed`.
fn credential(headers: &HeaderMap) -> Result<&[u8], GatewayError> {
    let mut auth = headers.get_all(header::AUTHORIZATION).iter();
    if let Some(value) = auth.next() {
        let text = value.as_bytes();
        let refuse = |e| {
            let e = if header_text(text).is_some() { e } else { AuthError::Malformed };
            Err(GatewayError::Unauthorized(e))
        };
        if auth.next().is_some() {
            return refuse(AuthError::Malformed);
        }
        let trimmed = text.trim_ascii();
        let Some(space) = trimmed.iter().position(|b| *b == b' ') else { return refuse(AuthError::Missing) };
        if !trimmed[..space].eq_ignore_ascii_case(b"bearer") {
            return refuse(AuthError::Missing);
        }
        let token = trimmed[space + 1..].trim_ascii();
        return if token.is_empty() { refuse(AuthError::Malformed) } else { Ok(token) };
    }
    match headers.get(&X_API_KEY).map(|v| v.as_bytes().trim_ascii()) {
        Some(key) if !key.is_empty() => Ok(key),
        Some(_) => Err(GatewayError::Unauthorized(AuthError::Malformed)),
        None => Err(GatewayError::Unauthorized(AuthError::Missing)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn credentials_from_headers() {
        let h = |pairs: &[(&str, &str)]| {
            let mut m = HeaderMap::new();
            for (k, v) in pairs {
                m.append(http::HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
            }
            m
        };
        let err = |r: Result<&[u8], GatewayError>| match r {
            Err(GatewayError::Unauthorized(e)) => e,
            other => panic!("{other:?}"),
        };
        assert_eq!(credential(&h(&[("authorization", "Bearer abc")])).unwrap(), b"abc");
        assert_eq!(credential(&h(&[("authorization", "bearer  abc ")])).unwrap(), b"abc");
        assert_eq!(credential(&h(&[("authorization", "\tBearer abc\t")])).unwrap(), b"abc");
        assert_eq!(err(credential(&h(&[("authorization", "Bearer\tabc")]))), AuthError::Missing);
        assert_eq!(credential(&h(&[("x-api-key", "k1")])).unwrap(), b"k1");
        assert_eq!(credential(&h(&[("x-api-key", " k1 ")])).unwrap(), b"k1");
        assert_eq!(err(credential(&h(&[("x-api-key", "  ")]))), AuthError::Malformed);
        // Bytes that are not header text: a refusal is `Malformed`; in the credential itself
        // they are left to the authenticator, which refuses them (authn tests).
        let raw = |v: &[u8]| {
            let mut m = HeaderMap::new();
            m.insert(header::AUTHORIZATION, HeaderValue::from_bytes(v).unwrap());
            m
        };
        assert_eq!(err(credential(&raw(b"Basic \xff"))), AuthError::Malformed);
        assert_eq!(err(credential(&raw(b"Bearer\xa0abc"))), AuthError::Malformed);
        assert_eq!(err(credential(&raw(b"B\xe9arer abc"))), AuthError::Malformed);
        assert_eq!(credential(&raw(b"Bearer ab\xffc")).unwrap(), b"ab\xffc");
        assert_eq!(err(credential(&h(&[]))), AuthError::Missing);
        assert_eq!(err(credential(&h(&[("authorization", "Basic dTpw")]))), AuthError::Missing);
        assert_eq!(err(credential(&h(&[("authorization", "Bearer ")]))), AuthError::Missing);
        assert_eq!(
            err(credential(&h(&[("authorization", "Bearer a"), ("authorization", "Bearer b")]))),
            AuthError::Malformed
        );
        assert!(query_has_credential("session_id=1&access_token=x"));
        assert!(query_has_credential("API_KEY=1"));
        assert!(!query_has_credential("session_id=abc&tokens=1"));
    }
}

//! What a backend receives instead of the client's credential.
//!
//! The MCP spec forbids token passthrough ("The MCP server MUST NOT pass
//! through the token it received from the MCP client"), so with `auth.enabled`
//! the client's `Authorization` and `X-API-Key` never go upstream. Per backend
//! (`auth.upstream`) the gateway can send instead a static credential from a
//! secret file (`Authorization: Bearer …`) and selected claims as headers
//! (`X-Forwarded-User: <sub>`). Headers named in any `claim_headers` are always
//! removed from the client's request first, so a client cannot forge them.

use std::collections::HashMap;
use std::sync::Arc;

use http::{HeaderMap, HeaderName, HeaderValue, header};
use serde_json::Value;

use super::Caller;
use crate::config::UpstreamAuth;

/// `X-API-Key`, the header API keys may travel in (a name made once, not parsed per request).
pub static X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");

/// Why `auth.upstream` could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The bearer file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// File.
        path: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The file's content is not a valid header value.
    #[error("{0}: the credential is empty or contains characters not allowed in a header")]
    Invalid(String),
}

#[derive(Debug, Clone, Default)]
struct Entry {
    bearer: Option<HeaderValue>,
    claims: Vec<(HeaderName, String)>,
}

/// The per-backend upstream credential rules.
#[derive(Debug, Clone, Default)]
pub struct UpstreamCreds {
    strip_client_token: bool,
    per_backend: HashMap<Arc<str>, Entry>,
    fallback: Option<Entry>,
    reserved: Vec<HeaderName>,
}

/// Header names a claim may never be written to.
pub fn is_reserved(name: &str) -> bool {
    const RESERVED: &[&str] = &[
        "host",
        "content-length",
        "content-type",
        "transfer-encoding",
        "connection",
        "upgrade",
        "te",
        "trailer",
        "accept",
        "authorization",
        "mcp-session-id",
        "mcp-protocol-version",
        "mcp-method",
        "mcp-name",
        "last-event-id",
        "x-request-id",
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
    ];
    RESERVED.contains(&name.to_ascii_lowercase().as_str())
}

impl UpstreamCreds {
    /// Reads the bearer files now. `auth_enabled` strips client credentials.
    pub fn new(cfg: &[UpstreamAuth], auth_enabled: bool) -> Result<Self, UpstreamError> {
        let mut out = Self { strip_client_token: auth_enabled, ..Self::default() };
        for u in cfg {
            let mut entry = Entry::default();
            if let Some(path) = &u.bearer_file {
                let shown = path.display().to_string();
                let raw = super::keys::read_file(path)
                    .map_err(|source| UpstreamError::Read { path: shown.clone(), source })?;
                let token = super::keys::trim_secret(&raw);
                let mut value = HeaderValue::from_bytes(&[b"Bearer ", token].concat())
                    .map_err(|_| UpstreamError::Invalid(shown.clone()))?;
                if token.is_empty() {
                    return Err(UpstreamError::Invalid(shown));
                }
                value.set_sensitive(true);
                entry.bearer = Some(value);
            }
            for (h, claim) in &u.claim_headers {
                if let Ok(name) = HeaderName::from_bytes(h.as_bytes()) {
                    if !out.reserved.contains(&name) {
                        out.reserved.push(name.clone());
                    }
                    entry.claims.push((name, claim.clone()));
                }
            }
            if u.backend == "*" {
                out.fallback = Some(entry);
            } else {
                out.per_backend.insert(Arc::from(u.backend.as_str()), entry);
            }
        }
        Ok(out)
    }

    /// Rewrite upstream request headers for `backend` in place.
    pub fn apply(&self, headers: &mut HeaderMap, backend: &str, caller: Option<&Caller>) {
        let entry = self.per_backend.get(backend).or(self.fallback.as_ref());
        if self.strip_client_token || entry.is_some_and(|e| e.bearer.is_some()) {
            headers.remove(header::AUTHORIZATION);
        }
        if self.strip_client_token {
            headers.remove(&X_API_KEY);
        }
        for name in &self.reserved {
            headers.remove(name);
        }
        let Some(entry) = entry else { return };
        if let Some(bearer) = &entry.bearer {
            headers.insert(header::AUTHORIZATION, bearer.clone());
        }
        let Some(caller) = caller else { return };
        for (name, claim) in &entry.claims {
            if let Some(v) = claim_text(caller, claim).and_then(|t| HeaderValue::from_str(&t).ok()) {
                headers.insert(name.clone(), v);
            }
        }
    }
}

/// A claim as header text: strings as is, numbers and booleans printed, arrays joined with `,`.
fn claim_text(caller: &Caller, claim: &str) -> Option<String> {
    match claim {
        "sub" => return Some(caller.principal.subject.clone()),
        "iss" => return Some(caller.principal.issuer.clone()),
        "scope" => return Some(caller.scopes.join(" ")),
        _ => {}
    }
    let value = caller.claims.iter().find(|(n, _)| n == claim).map(|(_, v)| v)?;
    let scalar = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    };
    match value {
        Value::Array(items) => Some(items.iter().filter_map(scalar).collect::<Vec<_>>().join(",")),
        v => scalar(v),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn cfg(backend: &str, bearer: Option<std::path::PathBuf>) -> UpstreamAuth {
        UpstreamAuth {
            backend: backend.into(),
            bearer_file: bearer,
            claim_headers: vec![("x-forwarded-user".into(), "sub".into()), ("x-groups".into(), "groups".into())],
        }
    }

    fn client_headers() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer client-token"));
        h.insert(X_API_KEY.clone(), HeaderValue::from_static("k"));
        h.insert("x-forwarded-user", HeaderValue::from_static("forged"));
        h
    }

    #[test]
    fn client_token_never_passes_with_auth() {
        let creds = UpstreamCreds::new(&[], true).unwrap();
        let mut h = client_headers();
        creds.apply(&mut h, "any", None);
        assert!(h.get(header::AUTHORIZATION).is_none() && h.get(&X_API_KEY).is_none());
        // Without auth the gateway is transparent.
        let mut h = client_headers();
        UpstreamCreds::new(&[], false).unwrap().apply(&mut h, "any", None);
        assert_eq!(h.get(header::AUTHORIZATION).unwrap(), "Bearer client-token");
    }

    #[test]
    fn static_credential_and_claim_headers() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tok");
        std::fs::write(&file, "backend-secret\n").unwrap();
        let creds = UpstreamCreds::new(&[cfg("tools", Some(file)), cfg("*", None)], true).unwrap();
        let mut caller = Caller::for_tests("alice");
        caller.claims = vec![("groups".into(), json!(["a", "b", 3]))];
        let mut h = client_headers();
        creds.apply(&mut h, "tools", Some(&caller));
        assert_eq!(h.get(header::AUTHORIZATION).unwrap(), "Bearer backend-secret");
        assert_eq!(h.get("x-forwarded-user").unwrap(), "alice");
        assert_eq!(h.get("x-groups").unwrap(), "a,b,3");
        let mut h = client_headers();
        creds.apply(&mut h, "other", None);
        assert!(h.get(header::AUTHORIZATION).is_none());
        assert!(h.get("x-forwarded-user").is_none(), "forged header must be removed");
        assert!(is_reserved("Host") && is_reserved("mcp-session-id") && !is_reserved("x-forwarded-user"));
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n").unwrap();
        assert!(matches!(UpstreamCreds::new(&[cfg("t", Some(empty))], true), Err(UpstreamError::Invalid(_))));
    }
}

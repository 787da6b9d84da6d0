//! MCP authorization discovery: the RFC 9728 protected-resource metadata
//! document, served without authentication at the root well-known URI and at
//! the path-inserted form for the MCP endpoint, and the RFC 6750
//! `WWW-Authenticate: Bearer …` challenge every 401/403 carries, pointing at it.

use bytes::Bytes;
use http::{HeaderValue, Method, Response, StatusCode, header};

use crate::config::{AuthConfig, McpConfig};
use crate::http::{GwBody, full};

/// The RFC 9728 well-known path prefix.
pub const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

/// The metadata document and the challenge parameters, built once at start.
#[derive(Debug, Clone)]
pub struct Metadata {
    doc: Bytes,
    paths: Vec<String>,
    metadata_url: String,
    scope: Option<String>,
}

/// What a challenge says went wrong (RFC 6750 §3.1); `None` = no credential was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengeError {
    /// `invalid_request` (e.g. a token in the query string).
    InvalidRequest,
    /// `invalid_token`.
    InvalidToken,
    /// `insufficient_scope` (403).
    InsufficientScope,
}

impl Metadata {
    /// Built from `auth.*`; `scopes` are the scopes to advertise.
    pub fn new(auth: &AuthConfig, mcp: &McpConfig, scopes: &[String]) -> Self {
        let resource = auth.resource.clone().unwrap_or_default();
        let uri: http::Uri = resource.parse().unwrap_or_default();
        let origin = match (uri.scheme_str(), uri.authority()) {
            (Some(s), Some(a)) => format!("{s}://{a}"),
            _ => String::new(),
        };
        let resource_path = uri.path().trim_end_matches('/').to_owned();
        let metadata_url = format!("{origin}{WELL_KNOWN}{resource_path}");
        let mut paths = vec![WELL_KNOWN.to_owned()];
        for p in [resource_path.as_str(), mcp.path.as_str(), mcp.sse_path.as_str()] {
            let p = p.trim_end_matches('/');
            let full = format!("{WELL_KNOWN}{p}");
            if !p.is_empty() && !paths.contains(&full) {
                paths.push(full);
            }
        }
        let mut doc = serde_json::json!({
            "resource": resource,
            "authorization_servers": auth.authorization_servers,
            "bearer_methods_supported": ["header"],
            "resource_name": "mcp-gateway",
        });
        if !scopes.is_empty() {
            doc["scopes_supported"] = serde_json::json!(scopes);
        }
        let scope = (!auth.required_scopes.is_empty()).then(|| auth.required_scopes.join(" "));
        Self { doc: Bytes::from(doc.to_string()), paths, metadata_url, scope }
    }

    /// The URL clients are pointed at (`resource_metadata`).
    pub fn url(&self) -> &str {
        &self.metadata_url
    }

    /// The well-known paths served.
    pub fn paths(&self) -> &[String] {
        &self.paths
    }

    /// Answer a request for the document, if `path` is one of its URIs.
    pub fn serve(&self, method: &Method, path: &str) -> Option<Response<GwBody>> {
        if !self.paths.iter().any(|p| p == path) {
            return None;
        }
        // Browser-based clients read it cross-origin; it is public by design.
        let b = Response::builder()
            .header(header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")
            .header(header::ACCESS_CONTROL_ALLOW_METHODS, "GET, OPTIONS")
            .header(header::ACCESS_CONTROL_ALLOW_HEADERS, "mcp-protocol-version");
        let resp = match *method {
            Method::GET | Method::HEAD => b
                .header(header::CONTENT_TYPE, "application/json")
                .header(header::CACHE_CONTROL, "max-age=300")
                .body(full(self.doc.clone())),
            Method::OPTIONS => b.status(StatusCode::NO_CONTENT).body(crate::http::empty()),
            _ => b
                .status(StatusCode::METHOD_NOT_ALLOWED)
                .header(header::ALLOW, "GET, OPTIONS")
                .body(crate::http::empty()),
        };
        Some(resp.unwrap_or_default())
    }

    /// The `WWW-Authenticate` value for a refusal. `scope` overrides the required scopes
    /// (403 `insufficient_scope` names what would have been enough).
    pub fn challenge(&self, error: Option<(ChallengeError, &str)>, scope: Option<&str>) -> HeaderValue {
        let mut v = String::from("Bearer ");
        if let Some((code, description)) = error {
            let code = match code {
                ChallengeError::InvalidRequest => "invalid_request",
                ChallengeError::InvalidToken => "invalid_token",
                ChallengeError::InsufficientScope => "insufficient_scope",
            };
            v.push_str(&format!("error=\"{code}\", error_description=\"{}\", ", quoted(description)));
        }
        v.push_str(&format!("resource_metadata=\"{}\"", quoted(&self.metadata_url)));
        if let Some(scope) = scope.or(self.scope.as_deref()) {
            v.push_str(&format!(", scope=\"{}\"", quoted(scope)));
        }
        HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static("Bearer"))
    }
}

/// RFC 7230 quoted-string content: printable ASCII without `"` and `\`.
fn quoted(s: &str) -> String {
    s.chars().filter(|c| (' '..='~').contains(c) && *c != '"' && *c != '\\').collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> Metadata {
        let auth = AuthConfig {
            enabled: true,
            resource: Some("https://mcp.example.com/mcp".into()),
            authorization_servers: vec!["https://auth.example.com".into()],
            required_scopes: vec!["mcp".into()],
            ..AuthConfig::default()
        };
        Metadata::new(&auth, &McpConfig::default(), &["mcp".into(), "mcp:admin".into()])
    }

    #[test]
    fn document_and_paths() {
        let m = meta();
        assert_eq!(m.url(), "https://mcp.example.com/.well-known/oauth-protected-resource/mcp");
        assert_eq!(
            m.paths(),
            [WELL_KNOWN, "/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource/sse"]
        );
        assert!(m.serve(&Method::GET, "/.well-known/other").is_none());
        let resp = m.serve(&Method::GET, WELL_KNOWN).unwrap();
        assert_eq!(resp.status(), 200);
        let doc: serde_json::Value = serde_json::from_slice(&m.doc).unwrap();
        assert_eq!(doc["resource"], "https://mcp.example.com/mcp");
        assert_eq!(doc["authorization_servers"][0], "https://auth.example.com");
        assert_eq!(doc["scopes_supported"], serde_json::json!(["mcp", "mcp:admin"]));
        assert_eq!(m.serve(&Method::POST, WELL_KNOWN).unwrap().status(), 405);
        assert_eq!(m.serve(&Method::OPTIONS, WELL_KNOWN).unwrap().status(), 204);
    }

    #[test]
    fn challenges() {
        let m = meta();
        let url = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp";
        assert_eq!(m.challenge(None, None), format!("Bearer resource_metadata=\"{url}\", scope=\"mcp\"").as_str());
        let bad = m.challenge(Some((ChallengeError::InvalidToken, "token \"expired\"")), None);
        assert_eq!(
            bad,
            format!("Bearer error=\"invalid_token\", error_description=\"token expired\", resource_metadata=\"{url}\", scope=\"mcp\"")
                .as_str()
        );
        let scope = m.challenge(Some((ChallengeError::InsufficientScope, "needs admin")), Some("mcp:admin"));
        assert!(scope.to_str().unwrap().contains("error=\"insufficient_scope\""));
        assert!(scope.to_str().unwrap().ends_with("scope=\"mcp:admin\""));
    }
}

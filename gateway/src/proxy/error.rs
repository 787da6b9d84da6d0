//! Every way the gateway itself answers a request instead of the backend,
//! kept apart by who is at fault (client, session, backend, gateway), and
//! mapped in one exhaustive `match` to an HTTP status and a JSON-RPC error.
//! Backend failures also carry a short `cause` (the innermost error: "Connection
//! refused", a TLS alert, "connection reset") in the error's `data`, so a 502 says why.

use std::sync::Arc;

use bytes::Bytes;
use http::StatusCode;
use serde_json::value::RawValue;

use crate::auth::AuthError;
use crate::auth::limits::LimitError;
use crate::auth::policy::Category;
use crate::session::token::OpenError;

/// A request the gateway answers itself.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    // --- downstream (client) faults ---
    /// Body longer than `server.max_request_body`.
    #[error("request body exceeds {limit} bytes")]
    BodyTooLarge {
        /// The configured limit.
        limit: u64,
    },
    /// Body not received within `server.read_timeout`.
    #[error("request body not received within the read timeout")]
    BodyTimeout,
    /// The client connection failed while sending the body.
    #[error("reading the request body failed")]
    BodyRead(#[source] hyper::Error),
    /// Not JSON.
    #[error("parse error: {0}")]
    Parse(String),
    /// JSON, but not a valid JSON-RPC message.
    #[error("invalid JSON-RPC request: {0}")]
    InvalidRequest(&'static str),
    /// `Mcp-Method` / `Mcp-Name` header disagrees with the body (2026-07-28).
    #[error("{header} header does not match the request body")]
    HeaderMismatch {
        /// Which header.
        header: &'static str,
    },
    /// A request that needs a session came without one.
    #[error("missing session id: {0}")]
    MissingSession(&'static str),
    /// HTTP method not served on this path.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// No route for this path.
    #[error("no MCP endpoint at this path")]
    NotFound,
    /// Request headers over `security.limits` (431).
    #[error("{0}")]
    HeadersTooLarge(LimitError),
    // --- edge security (auth) ---
    /// No valid credential (401), or the issuer's keys are unavailable (503).
    #[error("unauthorized: {0}")]
    Unauthorized(AuthError),
    /// The credential lacks `auth.required_scopes` (403 `insufficient_scope`).
    #[error("insufficient scope: requires {0}")]
    InsufficientScope(String),
    /// `auth.policy` does not let this caller use this tool, prompt or resource (403).
    #[error("{} {name:?} is not allowed for this caller", category.noun())]
    Forbidden {
        /// Tools, prompts or resources.
        category: Category,
        /// The tool or prompt name, or resource URI.
        name: String,
        /// Scopes that would grant it, if any (sent as `insufficient_scope`).
        scopes: Option<String>,
    },
    /// A present `Origin` not on `security.allowed_origins` (403).
    #[error("origin not allowed")]
    OriginForbidden,
    /// Over a `security.rate_limit` (429).
    #[error("rate limit exceeded ({scope}); retry after {retry_after} s")]
    RateLimited {
        /// `ip` or `principal`.
        scope: &'static str,
        /// Seconds until a request would be accepted.
        retry_after: u64,
    },
    // --- session routing ---
    /// The session id could not be opened (unknown key, tampered, expired, malformed).
    #[error("session not found: {}", .0.reason())]
    Session(OpenError),
    /// The session was ended with DELETE.
    #[error("session not found: deleted")]
    SessionDeleted,
    /// The session's backend is no longer configured.
    #[error("session not found: backend {0:?} is no longer configured")]
    BackendGone(String),
    /// The session id belongs to the other transport (legacy SSE vs streamable).
    #[error("session not found: id belongs to another transport")]
    WrongTransport,
    /// The session's backend is down (marked unhealthy); its session state is gone with it.
    #[error("session not found: backend {0} is unavailable")]
    SessionBackendDown(Arc<str>),
    /// The session was created by another principal (a valid token never opens someone else's session).
    #[error("session not found: bound to another principal")]
    PrincipalMismatch,
    // --- upstream faults ---
    /// No healthy backend for a new session.
    #[error("no healthy backend available")]
    NoHealthyBackend,
    /// `max_conns_per_host` stayed full for `acquire_timeout`.
    #[error("connection pool to backend {0} exhausted")]
    PoolExhausted(Arc<str>),
    /// Could not connect to the backend.
    #[error("backend {backend} unreachable")]
    Connect {
        /// Backend name.
        backend: Arc<str>,
        /// Cause.
        #[source]
        source: super::pool::PoolError,
    },
    /// The backend did not answer within `request_timeout`.
    #[error("backend {0} timed out")]
    UpstreamTimeout(Arc<str>),
    /// The exchange failed after connecting.
    #[error("backend {backend} failed")]
    Upstream {
        /// Backend name.
        backend: Arc<str>,
        /// Cause.
        #[source]
        source: super::pool::PoolError,
    },
    /// The backend issued a session id too long to seal into a gateway id.
    #[error("backend {0} issued a session id too long to route (over ~2900 bytes)")]
    BadUpstreamSession(Arc<str>),
    // --- internal ---
    /// A bug: an upstream request could not be built.
    #[error("internal error building the upstream request")]
    Internal(#[source] http::Error),
}

impl GatewayError {
    /// HTTP status for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::BodyRead(_) => StatusCode::BAD_REQUEST,
            Self::Parse(_) | Self::InvalidRequest(_) | Self::HeaderMismatch { .. } => StatusCode::BAD_REQUEST,
            Self::MissingSession(_) => StatusCode::BAD_REQUEST,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::HeadersTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::Unauthorized(AuthError::KeysUnavailable(_)) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::InsufficientScope(_) | Self::Forbidden { .. } | Self::OriginForbidden => StatusCode::FORBIDDEN,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            // Spec: a session the server cannot serve is 404, so clients re-initialize.
            Self::Session(_)
            | Self::SessionDeleted
            | Self::BackendGone(_)
            | Self::WrongTransport
            | Self::SessionBackendDown(_)
            | Self::PrincipalMismatch => StatusCode::NOT_FOUND,
            Self::NoHealthyBackend | Self::PoolExhausted(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Connect { .. } | Self::Upstream { .. } | Self::BadUpstreamSession(_) => StatusCode::BAD_GATEWAY,
            Self::UpstreamTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// JSON-RPC error code for the error object.
    pub fn jsonrpc_code(&self) -> i32 {
        match self {
            Self::Parse(_) => -32700,
            Self::InvalidRequest(_) | Self::HeaderMismatch { .. } | Self::MissingSession(_) => -32600,
            Self::BodyTooLarge { .. } | Self::BodyTimeout | Self::BodyRead(_) => -32600,
            Self::MethodNotAllowed | Self::NotFound => -32601,
            Self::HeadersTooLarge(_) => -32600,
            Self::Unauthorized(AuthError::KeysUnavailable(_)) => -32603,
            // Gateway-defined server errors: -32010 unauthorized, -32011 forbidden, -32012 rate limited.
            Self::Unauthorized(_) => -32010,
            Self::InsufficientScope(_) | Self::Forbidden { .. } | Self::OriginForbidden => -32011,
            Self::RateLimited { .. } => -32012,
            // -32001 is what the SDKs use for "Session not found".
            Self::Session(_)
            | Self::SessionDeleted
            | Self::BackendGone(_)
            | Self::WrongTransport
            | Self::SessionBackendDown(_)
            | Self::PrincipalMismatch => -32001,
            Self::NoHealthyBackend
            | Self::PoolExhausted(_)
            | Self::Connect { .. }
            | Self::UpstreamTimeout(_)
            | Self::Upstream { .. }
            | Self::BadUpstreamSession(_)
            | Self::Internal(_) => -32603,
        }
    }

    /// A short, stable reason for logs, metrics and the error's `data.reason`.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::BodyTooLarge { .. } => "body_too_large",
            Self::BodyTimeout => "body_timeout",
            Self::BodyRead(_) => "body_read_error",
            Self::Parse(_) => "parse_error",
            Self::InvalidRequest(_) => "invalid_request",
            Self::HeaderMismatch { .. } => "header_mismatch",
            Self::MissingSession(_) => "missing_session",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::NotFound => "not_found",
            Self::HeadersTooLarge(_) => "headers_too_large",
            Self::Unauthorized(e) => e.reason(),
            Self::InsufficientScope(_) => "insufficient_scope",
            Self::Forbidden { category: Category::Tools, .. } => "tool_forbidden",
            Self::Forbidden { category: Category::Prompts, .. } => "prompt_forbidden",
            Self::Forbidden { category: Category::Resources, .. } => "resource_forbidden",
            Self::OriginForbidden => "origin_forbidden",
            Self::RateLimited { .. } => "rate_limited",
            Self::PrincipalMismatch => "principal_mismatch",
            Self::Session(e) => e.reason(),
            Self::SessionDeleted => "deleted",
            Self::BackendGone(_) => "backend_gone",
            Self::WrongTransport => "wrong_transport",
            Self::SessionBackendDown(_) => "backend_down",
            Self::NoHealthyBackend => "no_healthy_backend",
            Self::PoolExhausted(_) => "pool_exhausted",
            Self::Connect { .. } => "connect_error",
            Self::UpstreamTimeout(_) => "upstream_timeout",
            Self::Upstream { .. } => "upstream_error",
            Self::BadUpstreamSession(_) => "bad_upstream_session",
            Self::Internal(_) => "internal_error",
        }
    }

    /// Whether a client may simply retry the same request.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::BodyTimeout
            | Self::BodyRead(_)
            | Self::NoHealthyBackend
            | Self::PoolExhausted(_)
            | Self::Connect { .. }
            | Self::UpstreamTimeout(_)
            | Self::Unauthorized(AuthError::KeysUnavailable(_))
            | Self::RateLimited { .. } => true,
            Self::BodyTooLarge { .. }
            | Self::Parse(_)
            | Self::InvalidRequest(_)
            | Self::HeaderMismatch { .. }
            | Self::MissingSession(_)
            | Self::MethodNotAllowed
            | Self::NotFound
            | Self::HeadersTooLarge(_)
            | Self::Unauthorized(_)
            | Self::InsufficientScope(_)
            | Self::Forbidden { .. }
            | Self::OriginForbidden
            | Self::PrincipalMismatch
            | Self::Session(_)
            | Self::SessionDeleted
            | Self::BackendGone(_)
            | Self::WrongTransport
            | Self::SessionBackendDown(_)
            | Self::Upstream { .. }
            | Self::BadUpstreamSession(_)
            | Self::Internal(_) => false,
        }
    }

    /// True for faults of the session id (counted in `mcp_session_routing_failures_total`).
    pub fn is_session_failure(&self) -> bool {
        matches!(
            self,
            Self::Session(_)
                | Self::SessionDeleted
                | Self::BackendGone(_)
                | Self::WrongTransport
                | Self::SessionBackendDown(_)
                | Self::PrincipalMismatch
        )
    }

    /// The human message, with the source chain.
    pub fn message(&self) -> String {
        let mut msg = self.to_string();
        let mut src = std::error::Error::source(self);
        while let Some(s) = src {
            msg.push_str(": ");
            msg.push_str(&s.to_string());
            src = s.source();
        }
        msg
    }

    /// Why a backend exchange failed, for `data.cause` and the log: the innermost source
    /// error's text (at most [`MAX_CAUSE`] characters, control characters replaced).
    /// Only for `connect_error`, `upstream_error` and `upstream_timeout`. Transport errors
    /// name no headers or bodies, so nothing of the request or the credentials leaks.
    pub fn cause(&self) -> Option<String> {
        match self {
            Self::Connect { source, .. } | Self::Upstream { source, .. } => {
                let mut inner: &dyn std::error::Error = source;
                while let Some(next) = inner.source() {
                    inner = next;
                }
                Some(short(&inner.to_string()))
            }
            Self::UpstreamTimeout(_) => Some("no response headers within connection_pool.request_timeout".into()),
            _ => None,
        }
    }

    /// The JSON-RPC error object the gateway answers with (`id` is the request's, if known):
    /// `data` has `reason`, `source` and, for backend failures, `cause`.
    pub fn body(&self, id: Option<&RawValue>) -> Bytes {
        let (code, message, reason) = (self.jsonrpc_code(), self.message(), self.reason());
        let Some(cause) = self.cause() else {
            return crate::mcp::envelope::error_body(id, code, &message, reason);
        };
        // Serializing a `&str` cannot fail.
        let quote = |text: &str| serde_json::to_string(text).unwrap_or_default();
        let id = id.map_or("null", RawValue::get);
        let (message, reason, cause) = (quote(&message), quote(reason), quote(&cause));
        Bytes::from(format!(
            r#"{{"jsonrpc":"2.0","id":{id},"error":{{"code":{code},"message":{message},"data":{{"reason":{reason},"source":"mcp-gateway","cause":{cause}}}}}}}"#
        ))
    }
}

/// Longest `data.cause`, in characters.
pub const MAX_CAUSE: usize = 200;

/// `text` on one line, cut to [`MAX_CAUSE`] characters (an ellipsis marks the cut).
fn short(text: &str) -> String {
    let mut out: String = text.chars().take(MAX_CAUSE).map(|c| if c.is_control() { ' ' } else { c }).collect();
    if text.chars().nth(MAX_CAUSE).is_some() {
        out.pop();
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    use http_body_util::Full;

    use crate::config::{BackendConfig, BackendTransport, PoolConfig};
    use crate::proxy::pool::{Pool, PoolError};

    /// A real exchange error: a request to `url` through a backend's connections.
    async fn client_error(url: &str) -> PoolError {
        let backend = BackendConfig {
            name: "b".into(),
            url: url.parse().unwrap(),
            weight: 1,
            transport: BackendTransport::StreamableHttp,
            health_check_path: None,
            http2: false,
            tls: None,
        };
        let pool = Pool::new(&backend, &PoolConfig::default(), &crate::telemetry::Metrics::new()).unwrap();
        let req = http::Request::post(url).body(Full::new(Bytes::from_static(b"{}"))).unwrap();
        std::sync::Arc::new(pool).send(req).await.unwrap_err()
    }

    fn parse(body: &Bytes) -> serde_json::Value {
        serde_json::from_slice(body).unwrap()
    }

    #[tokio::test]
    async fn connect_error_body_names_the_cause() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let source = client_error(&format!("http://127.0.0.1:{port}/mcp")).await;
        assert!(source.is_connect(), "{source:?}");
        let e = GatewayError::Connect { backend: "dead".into(), source };
        let cause = e.cause().unwrap();
        assert!(cause.to_lowercase().contains("refused"), "{cause}");
        let id = RawValue::from_string("7".into()).unwrap();
        let body = parse(&e.body(Some(&id)));
        assert_eq!(body["id"], 7);
        assert_eq!(body["error"]["code"], -32603);
        assert_eq!(body["error"]["data"]["reason"], "connect_error");
        assert_eq!(body["error"]["data"]["source"], "mcp-gateway");
        assert_eq!(body["error"]["data"]["cause"], cause.as_str());
        assert!(body["error"]["message"].as_str().unwrap().starts_with("backend dead unreachable"), "{body}");
    }

    #[tokio::test]
    async fn reset_after_connect_is_an_upstream_error_with_its_cause() {
        // A backend that accepts, reads the request, then closes without answering.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = tokio::io::AsyncReadExt::read(&mut stream, &mut buf).await;
        });
        let source = client_error(&format!("http://{addr}/mcp")).await;
        server.await.unwrap();
        assert!(!source.is_connect(), "{source:?}");
        let e = GatewayError::Upstream { backend: "flaky".into(), source };
        let cause = e.cause().unwrap();
        assert!(!cause.is_empty() && !cause.contains("backend flaky"), "{cause}");
        let body = parse(&e.body(None));
        assert_eq!(body["id"], serde_json::Value::Null);
        assert_eq!(body["error"]["data"]["reason"], "upstream_error");
        assert_eq!(body["error"]["data"]["cause"], cause.as_str());
    }

    #[test]
    fn timeouts_have_a_cause_and_client_faults_do_not() {
        let t = GatewayError::UpstreamTimeout("slow".into());
        assert!(t.cause().unwrap().contains("request_timeout"));
        assert_eq!(parse(&t.body(None))["error"]["data"]["reason"], "upstream_timeout");
        for e in [GatewayError::NotFound, GatewayError::NoHealthyBackend, GatewayError::Parse("x".into())] {
            assert_eq!(e.cause(), None);
            let body = parse(&e.body(None));
            assert!(body["error"]["data"].get("cause").is_none(), "{body}");
            assert_eq!(body["error"]["data"]["reason"], e.reason());
        }
    }

    #[test]
    fn causes_are_short_and_on_one_line() {
        assert_eq!(short("Connection refused (os error 111)"), "Connection refused (os error 111)");
        assert_eq!(short("a\r\nb\tc"), "a  b c");
        let long = "é".repeat(MAX_CAUSE + 50);
        let cut = short(&long);
        assert_eq!(cut.chars().count(), MAX_CAUSE);
        assert!(cut.ends_with('…'));
        assert_eq!(short(&"x".repeat(MAX_CAUSE)), "x".repeat(MAX_CAUSE));
    }
}

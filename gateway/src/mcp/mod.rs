//! The MCP data plane: one module per transport plus session routing.
//!
//! [`handle`] is the whole pipeline for one request, as straight-line code:
//! request id → route by path and method → edge guard ([`crate::auth`]: limits,
//! Origin, rate limits, credential) → (transport module: body, envelope, tool
//! policy, session, backend, exchange, response) → error mapping → access log
//! (on drop of the request context).

pub mod envelope;
pub mod legacy;
mod scan;
pub mod session;
pub mod sse;
pub mod streamable;

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::value::RawValue;

use crate::gateway::Shared;
use crate::http::server::ConnInfo;
use crate::http::{GwBody, full};
use crate::proxy::GatewayError;
use crate::telemetry::access::RequestLog;

/// `X-Request-ID`.
pub const X_REQUEST_ID: &str = "x-request-id";
/// `Mcp-Session-Id` (header names are case-insensitive; `http` lowercases).
pub const MCP_SESSION_ID: &str = "mcp-session-id";

// The same names as `HeaderName`s: a `&str` key is parsed and lowercased on every lookup.
static X_REQUEST_ID_NAME: HeaderName = HeaderName::from_static(X_REQUEST_ID);
pub(crate) static MCP_SESSION_ID_NAME: HeaderName = HeaderName::from_static(MCP_SESSION_ID);

/// What rides along one request.
#[derive(Debug)]
pub struct Ctx {
    /// The access-log line and request metrics, written on drop.
    pub log: RequestLog,
    /// The JSON-RPC id, for error responses.
    pub rpc_id: Option<Box<RawValue>>,
    /// The client connection.
    pub conn: ConnInfo,
    /// The request id as a header value.
    pub request_id: HeaderValue,
    /// The authenticated caller (`auth.enabled`), set by [`crate::auth::Guard::admit`].
    pub caller: Option<Arc<crate::auth::Caller>>,
    /// Set when the tool policy must rewrite this request's list response.
    pub list_filter: Option<crate::auth::filter::ListFilter>,
}

/// Serve one data-plane request.
pub async fn handle(shared: Arc<Shared>, req: Request<Incoming>, conn: ConnInfo) -> Response<GwBody> {
    let request_id = request_id(req.headers());
    let log = RequestLog::new(
        Arc::clone(&shared.metrics),
        shared.config.logging.access_log,
        req.method(),
        req.uri().path(),
        &request_id,
        conn.peer,
    );
    let mut ctx = Ctx { log, rpc_id: None, conn, request_id: request_id.clone(), caller: None, list_filter: None };
    let mcp = &shared.config.mcp;
    let path = req.uri().path();
    let messages = path == mcp.messages_path || path.strip_suffix('/') == Some(mcp.messages_path.as_str());
    let is_mcp = path == mcp.path || path == mcp.sse_path || messages;
    // Edge guard (see `crate::auth`): after routing by path, so discovery documents and
    // /health stay public; before any transport reads the body, so a refused client
    // (431, 403 Origin, 429, 401) costs no buffering and never reaches a backend.
    let admitted = if is_mcp { shared.guard.admit(&req, &mut ctx, &shared.metrics).await } else { Ok(()) };
    let result = if let Err(e) = admitted {
        Err(e)
    } else if path == mcp.path {
        match *req.method() {
            Method::POST => streamable::post(&shared, req, &mut ctx).await,
            Method::GET => streamable::get(&shared, req, &mut ctx).await,
            Method::DELETE => streamable::delete(&shared, req, &mut ctx).await,
            _ => Err(GatewayError::MethodNotAllowed),
        }
    } else if path == mcp.sse_path {
        match *req.method() {
            Method::GET => legacy::open(&shared, req, &mut ctx).await,
            _ => Err(GatewayError::MethodNotAllowed),
        }
    } else if messages {
        match *req.method() {
            Method::POST => legacy::post(&shared, req, &mut ctx).await,
            _ => Err(GatewayError::MethodNotAllowed),
        }
    } else if path == "/health" || path == "/healthz" {
        Ok(Response::builder()
            .header(header::CONTENT_TYPE, "application/json")
            .body(full(&b"{\"status\":\"ok\"}"[..]))
            .unwrap_or_default())
    } else if let Some(resp) = shared.guard.metadata().and_then(|m| m.serve(req.method(), path)) {
        // RFC 9728 protected-resource metadata: public by design.
        Ok(resp)
    } else {
        Err(GatewayError::NotFound)
    };
    let mut resp = match result {
        Ok(r) => r,
        Err(e) => error_response(&shared, &e, &mut ctx),
    };
    resp.headers_mut().insert(&X_REQUEST_ID_NAME, request_id);
    ctx.log.status = resp.status().as_u16();
    resp
}

/// The gateway's own answer for an error: HTTP status + JSON-RPC error object.
pub fn error_response(shared: &Shared, e: &GatewayError, ctx: &mut Ctx) -> Response<GwBody> {
    let reason = e.reason();
    ctx.log.reason = Some(reason);
    if e.is_session_failure() {
        shared.metrics.session_routing_failures.with_label_values(&[reason]).inc();
    } else if e.status().is_client_error() {
        shared.metrics.client_errors.with_label_values(&[reason]).inc();
    }
    if e.status().is_server_error() {
        tracing::warn!(request_id = ?ctx.request_id, error = %e.message(), cause = e.cause(), "request failed");
    } else {
        tracing::debug!(request_id = ?ctx.request_id, error = %e.message(), "request refused");
    }
    let body = e.body(ctx.rpc_id.as_deref());
    let mut b = Response::builder().status(e.status()).header(header::CONTENT_TYPE, "application/json");
    if matches!(e, GatewayError::MethodNotAllowed) {
        b = b.header(header::ALLOW, "GET, POST, DELETE");
    }
    if e.is_retryable() && e.status().is_server_error() {
        b = b.header(header::RETRY_AFTER, "1");
    }
    // WWW-Authenticate on 401/403, Retry-After on 429.
    b = shared.guard.decorate(e, b);
    b.body(full(body)).unwrap_or_else(|_| {
        let mut r = Response::new(crate::http::empty());
        *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        r
    })
}

/// Accept a sane client `X-Request-ID`, else generate one.
fn request_id(headers: &HeaderMap) -> HeaderValue {
    if let Some(v) = headers.get(&X_REQUEST_ID_NAME) {
        let b = v.as_bytes();
        if !b.is_empty() && b.len() <= 128 && b.iter().all(|c| (0x21..=0x7e).contains(c)) {
            return v.clone();
        }
    }
    generated_request_id()
}

/// 32 hex digits, unique per process: a random 64-bit prefix drawn once, then a counter.
/// Ids are correlation handles, not secrets; the prefix keeps replicas and restarts apart.
fn generated_request_id() -> HeaderValue {
    static PREFIX: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let prefix = *PREFIX.get_or_init(rand::random);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut buf = [0u8; 32];
    hex_u64(prefix, &mut buf[..16]);
    hex_u64(n, &mut buf[16..]);
    HeaderValue::from_bytes(&buf).unwrap_or_else(|_| HeaderValue::from_static("-"))
}

/// `value` as 16 lowercase hex digits into `out` (16 bytes).
fn hex_u64(value: u64, out: &mut [u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (i, b) in out.iter_mut().enumerate() {
        *b = HEX[((value >> (60 - 4 * i)) & 0xf) as usize];
    }
}

/// Read a whole request body within the size and time limits.
pub async fn read_body(shared: &Shared, headers: &HeaderMap, body: Incoming) -> Result<Bytes, GatewayError> {
    let limit = shared.config.server.max_request_body;
    // Refuse up front when the client announces too much.
    if let Some(len) =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok())
    {
        if len > limit {
            return Err(GatewayError::BodyTooLarge { limit });
        }
    }
    let limited = http_body_util::Limited::new(body, usize::try_from(limit).unwrap_or(usize::MAX));
    let mut collect = std::pin::pin!(limited.collect());
    // A small body has usually arrived with the head: then it is complete at the first poll,
    // and arming (and cancelling) the read timer would be wasted work.
    let first = std::future::poll_fn(|cx| std::task::Poll::Ready(collect.as_mut().poll(cx))).await;
    let collected = match first {
        std::task::Poll::Ready(r) => Ok(r),
        std::task::Poll::Pending => tokio::time::timeout(shared.config.server.read_timeout, collect).await,
    };
    match collected {
        Err(_) => Err(GatewayError::BodyTimeout),
        Ok(Ok(c)) => Ok(c.to_bytes()),
        Ok(Err(e)) => match e.downcast::<hyper::Error>() {
            Ok(h) => Err(GatewayError::BodyRead(*h)),
            // Limited's LengthLimitError: a chunked body went past the cap.
            Err(_) => Err(GatewayError::BodyTooLarge { limit }),
        },
    }
}

/// The nesting-depth limit and the JSON-RPC envelope in one pass where possible (see
/// [`envelope::parse_within`]), else the depth check then [`parse_envelope`]: the same
/// answers either way (too deep: 400 with -32600, checked before the JSON itself).
pub fn parse_checked(shared: &Shared, bytes: &[u8], ctx: &mut Ctx) -> Result<envelope::Body, GatewayError> {
    match envelope::parse_within(bytes, shared.config.security.limits.max_json_depth) {
        Some(parsed) => record_envelope(parsed, ctx),
        None => {
            shared.guard.check_depth(bytes)?;
            parse_envelope(bytes, ctx)
        }
    }
}

/// Parse the JSON-RPC envelope, recording the id and method on the context.
pub fn parse_envelope(bytes: &[u8], ctx: &mut Ctx) -> Result<envelope::Body, GatewayError> {
    record_envelope(envelope::parse(bytes), ctx)
}

fn record_envelope(
    parsed: Result<envelope::Body, envelope::EnvelopeError>,
    ctx: &mut Ctx,
) -> Result<envelope::Body, GatewayError> {
    match parsed {
        Ok(body) => {
            ctx.rpc_id = body.first_id().map(|r| r.to_owned());
            ctx.log.rpc_method = body.first_label();
            Ok(body)
        }
        Err(e) => {
            ctx.rpc_id = e.id().map(|r| r.to_owned());
            Err(match e.code() {
                -32700 => GatewayError::Parse(e.to_string()),
                _ => GatewayError::InvalidRequest(invalid_reason(&e)),
            })
        }
    }
}

fn invalid_reason(e: &envelope::EnvelopeError) -> &'static str {
    match e {
        envelope::EnvelopeError::InvalidRequest { reason, .. } => reason,
        envelope::EnvelopeError::Parse(..) => "parse error",
    }
}

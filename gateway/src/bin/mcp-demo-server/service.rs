//! The HTTP side of the MCP endpoint: POST (JSON-RPC in, JSON or SSE out), GET (the
//! server-to-client SSE stream), DELETE (end a session) and `/health`, with the session and
//! protocol-version checks of the Streamable HTTP transport.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{ALLOW, CACHE_CONTROL, HOST};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};

use crate::body::ResponseBody;
use crate::protocol::{self, Incoming, Message, Payload, ProtocolError, STATELESS_VERSION};
use crate::reply::{JSON, accepted, batch_reply, json_error, plain, single_reply, status_only, with_type};
use crate::sessions::{SessionId, SessionStore};
use crate::tools::{CallContext, Reply};
use crate::{methods, sse};

const SESSION_HEADER: &str = "mcp-session-id";
const VERSION_HEADER: &str = "mcp-protocol-version";
/// 2026-07-28 `HeaderMismatch`.
const HEADER_MISMATCH: i64 = -32020;
/// 2026-07-28 `UnsupportedProtocolVersion`.
const UNSUPPORTED_VERSION: i64 = -32022;

/// Why a request is refused before any JSON-RPC method runs.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// `MCP-Protocol-Version` names a revision this server does not speak.
    #[error("Bad Request: Unsupported protocol version: {0}")]
    UnsupportedVersion(String),
    /// A stateful request without `Mcp-Session-Id`.
    #[error("Bad Request: Mcp-Session-Id header is required")]
    MissingSession,
    /// `Mcp-Session-Id` names no live session (never minted, deleted or evicted).
    #[error("Session not found")]
    UnknownSession,
    /// 2026-07-28: a routing header disagrees with the body.
    #[error("HeaderMismatch: {0} header does not match the request body")]
    HeaderMismatch(&'static str),
    /// The POST body exceeds `--max-body`.
    #[error("Bad Request: request body too large")]
    BodyTooLarge,
    /// The POST body could not be read.
    #[error("Bad Request: could not read request body: {0}")]
    BodyRead(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The body is not JSON-RPC.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// GET or DELETE without sessions (stateless server or 2026-07-28 request), or another
    /// method on the endpoint.
    #[error("method not allowed")]
    MethodNotAllowed {
        /// The `Allow` header value.
        allow: &'static str,
    },
}

impl RequestError {
    /// The HTTP status and JSON-RPC code the error is answered with.
    fn status_and_code(&self) -> (StatusCode, i64) {
        match self {
            Self::UnsupportedVersion(_) => (StatusCode::BAD_REQUEST, UNSUPPORTED_VERSION),
            Self::MissingSession => (StatusCode::BAD_REQUEST, protocol::BAD_REQUEST),
            Self::UnknownSession => (StatusCode::NOT_FOUND, protocol::SESSION_NOT_FOUND),
            Self::HeaderMismatch(_) => (StatusCode::BAD_REQUEST, HEADER_MISMATCH),
            Self::BodyTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, protocol::BAD_REQUEST),
            Self::BodyRead(_) => (StatusCode::BAD_REQUEST, protocol::BAD_REQUEST),
            Self::Protocol(e) => (StatusCode::BAD_REQUEST, e.code()),
            Self::MethodNotAllowed { .. } => (StatusCode::METHOD_NOT_ALLOWED, protocol::BAD_REQUEST),
        }
    }

    /// The HTTP response: a JSON-RPC error with a null id (plus `Allow` for 405).
    pub fn into_response(self) -> Response<ResponseBody> {
        let (status, code) = self.status_and_code();
        let mut r = json_error(status, code, &self.to_string());
        if let Self::MethodNotAllowed { allow } = self {
            r.headers_mut().insert(ALLOW, HeaderValue::from_static(allow));
        }
        r
    }
}

/// How POST requests are answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// `application/json`.
    Json,
    /// `text/event-stream` with one `event: message` event.
    Sse,
}

/// Server settings fixed at startup.
#[derive(Debug)]
pub struct Config {
    /// The MCP endpoint path, e.g. `/mcp`.
    pub path: String,
    /// POST answer style.
    pub mode: Mode,
    /// Replica name reported by `whoami`.
    pub name: String,
    /// Interval of `: keepalive` comments on GET streams.
    pub keepalive: Duration,
    /// Largest accepted POST body.
    pub max_body: usize,
}

/// Shared server state.
#[derive(Debug)]
pub struct Server {
    config: Config,
    /// `None` in `--stateless` mode.
    sessions: Option<SessionStore>,
}

impl Server {
    /// A server; `sessions` is `None` for a stateless one.
    pub fn new(config: Config, sessions: Option<SessionStore>) -> Self {
        Self { config, sessions }
    }

    /// Answers one HTTP request.
    pub async fn handle<B>(self: Arc<Self>, req: Request<B>) -> Result<Response<ResponseBody>, Infallible>
    where
        B: http_body::Body<Data = Bytes>,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let path = req.uri().path();
        let result = if path == self.config.path {
            match *req.method() {
                Method::POST => self.post(req).await,
                Method::GET => self.get(req.headers()),
                Method::DELETE => self.delete(req.headers()),
                _ => Err(self.not_allowed()),
            }
        } else if path == "/health" && matches!(*req.method(), Method::GET | Method::HEAD) {
            Ok(plain(StatusCode::OK, "ok"))
        } else {
            Ok(plain(StatusCode::NOT_FOUND, "not found"))
        };
        Ok(result.unwrap_or_else(RequestError::into_response))
    }

    fn not_allowed(&self) -> RequestError {
        let allow = if self.sessions.is_some() { "GET, POST, DELETE" } else { "POST" };
        RequestError::MethodNotAllowed { allow }
    }

    /// The session store when this request is session-checked: a stateful server, and not a
    /// 2026-07-28 request (those never carry sessions).
    fn store_for(&self, modern: bool) -> Option<&SessionStore> {
        self.sessions.as_ref().filter(|_| !modern)
    }

    async fn post<B>(&self, req: Request<B>) -> Result<Response<ResponseBody>, RequestError>
    where
        B: http_body::Body<Data = Bytes>,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let (parts, body) = req.into_parts();
        // The body is read whole before any check, so a rejected request still leaves the
        // connection ready for the next (pipelined) one.
        let body = match Limited::new(body, self.config.max_body).collect().await {
            Ok(c) => c.to_bytes(),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                return Err(RequestError::BodyTooLarge);
            }
            Err(e) => return Err(RequestError::BodyRead(e)),
        };
        let modern = is_modern(&parts.headers)?;
        let incoming = protocol::parse(&body)?;
        let is_initialize = matches!(
            &incoming,
            Incoming::Single(Message::Request { method, .. }) if method == "initialize"
        );
        // Sessions: initialize mints one; everything else must name a live one.
        let mut minted = None;
        let mut session = None;
        if let Some(store) = self.store_for(modern) {
            if is_initialize {
                minted = Some(store.create().to_string());
            } else {
                session = Some(check_session(store, &parts.headers)?.1);
            }
        }
        if modern {
            check_modern_headers(&parts.headers, &incoming)?;
        }
        let host =
            parts.headers.get(HOST).and_then(|h| h.to_str().ok()).or_else(|| parts.uri.authority().map(|a| a.as_str()));
        let ctx = CallContext {
            server_name: &self.config.name,
            // A checked header value is 32 hex digits, so `to_str` cannot fail.
            session: minted.as_deref().or(session.and_then(|h: &HeaderValue| h.to_str().ok())),
            headers: &parts.headers,
            host,
        };
        let mut response = match incoming {
            Incoming::Single(Message::Request { id, method, params }) => {
                if modern && !methods::is_known(&method) {
                    // 2026-07-28: 404 + -32601 tells a modern client apart from a legacy 404.
                    let msg = format!("Method not found: {method}");
                    let err = protocol::error(Some(id), protocol::METHOD_NOT_FOUND, &msg);
                    return Ok(with_type(StatusCode::NOT_FOUND, JSON, ResponseBody::full(err)));
                }
                let reply = methods::handle(&ctx, id, &method, params).await;
                single_reply(self.config.mode, reply)
            }
            Incoming::Single(Message::Notification { .. } | Message::Response) => accepted(),
            Incoming::Single(Message::Invalid { id, reason }) => {
                let err = protocol::error(id, protocol::INVALID_REQUEST, reason);
                with_type(StatusCode::BAD_REQUEST, JSON, ResponseBody::full(err))
            }
            Incoming::Batch(items) => {
                let replies = run_batch(&ctx, items).await;
                if replies.is_empty() { accepted() } else { batch_reply(self.config.mode, replies) }
            }
        };
        if let Some(id) = minted
            && let Ok(v) = HeaderValue::try_from(id)
        {
            response.headers_mut().insert(SESSION_HEADER, v);
        }
        Ok(response)
    }

    fn get(&self, headers: &HeaderMap) -> Result<Response<ResponseBody>, RequestError> {
        let store = self.store_for(is_modern(headers)?).ok_or_else(|| self.not_allowed())?;
        let (id, _) = check_session(store, headers)?;
        // Resumption is accepted but nothing is replayed: this server keeps no event log.
        if let Some(last) = headers.get("last-event-id") {
            tracing::debug!(last_event_id = ?last, "GET stream resumes; nothing to replay");
        }
        let alive = store.watch(id).ok_or(RequestError::UnknownSession)?;
        let mut r = with_type(
            StatusCode::OK,
            sse::CONTENT_TYPE,
            ResponseBody::Stream(sse::listen(self.config.keepalive, alive)),
        );
        r.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        Ok(r)
    }

    fn delete(&self, headers: &HeaderMap) -> Result<Response<ResponseBody>, RequestError> {
        let store = self.store_for(is_modern(headers)?).ok_or_else(|| self.not_allowed())?;
        let (id, _) = check_session(store, headers)?;
        if store.remove(id) { Ok(status_only(StatusCode::OK)) } else { Err(RequestError::UnknownSession) }
    }
}

/// Runs a batch's requests concurrently; answers come back in request order, and invalid
/// elements get their own error. Notifications and responses get nothing.
async fn run_batch(ctx: &CallContext<'_>, items: Vec<Message<'_>>) -> Vec<Reply> {
    use futures_util::future::{Either, join_all};
    join_all(items.into_iter().filter_map(|m| match m {
        Message::Request { id, method, params } => {
            Some(Either::Left(async move { methods::handle(ctx, id, &method, params).await }))
        }
        Message::Invalid { id, reason } => Some(Either::Right(std::future::ready(Reply::Done(Payload::Inline(
            protocol::error(id, protocol::INVALID_REQUEST, reason),
        ))))),
        Message::Notification { .. } | Message::Response => None,
    }))
    .await
}

/// Whether the request is 2026-07-28 (session-less); an error for unsupported versions.
fn is_modern(headers: &HeaderMap) -> Result<bool, RequestError> {
    Ok(version_header(headers)? == Some(STATELESS_VERSION))
}

/// The `MCP-Protocol-Version` header: `None` when absent, an error when unsupported.
fn version_header(headers: &HeaderMap) -> Result<Option<&'static str>, RequestError> {
    let Some(value) = headers.get(VERSION_HEADER) else {
        return Ok(None);
    };
    protocol::HEADER_VERSIONS
        .iter()
        .find(|v| v.as_bytes() == value.as_bytes())
        .map(|v| Some(*v))
        .ok_or_else(|| RequestError::UnsupportedVersion(String::from_utf8_lossy(value.as_bytes()).into()))
}

/// The request's session, if its header names a live one: missing → 400; unknown or
/// malformed (which cannot name a session either) → 404.
fn check_session<'h>(
    store: &SessionStore,
    headers: &'h HeaderMap,
) -> Result<(SessionId, &'h HeaderValue), RequestError> {
    let value = headers.get(SESSION_HEADER).ok_or(RequestError::MissingSession)?;
    match SessionId::parse(value.as_bytes()) {
        Some(id) if store.contains(id) => Ok((id, value)),
        _ => Err(RequestError::UnknownSession),
    }
}

/// 2026-07-28: `Mcp-Method` (and `Mcp-Name` for `tools/call`) must agree with the body.
/// Base64-encoded (`=?base64?…?=`) names are not checked.
fn check_modern_headers(headers: &HeaderMap, incoming: &Incoming<'_>) -> Result<(), RequestError> {
    let (method, params) = match incoming {
        Incoming::Single(Message::Request { method, params, .. }) => (method, *params),
        Incoming::Single(Message::Notification { method }) => (method, None),
        Incoming::Single(Message::Response | Message::Invalid { .. }) | Incoming::Batch(_) => {
            return Ok(());
        }
    };
    if let Some(h) = headers.get("mcp-method")
        && h.as_bytes() != method.as_bytes()
    {
        return Err(RequestError::HeaderMismatch("Mcp-Method"));
    }
    let Some(name) = headers.get("mcp-name") else {
        return Ok(());
    };
    if method != "tools/call" || name.as_bytes().starts_with(b"=?base64?") {
        return Ok(());
    }
    #[derive(serde::Deserialize)]
    struct Named<'a> {
        #[serde(borrow)]
        name: protocol::Str<'a>,
    }
    let body_name = params.and_then(|p| serde_json::from_str::<Named<'_>>(p.get()).ok());
    match body_name {
        Some(n) if n.name.0.as_bytes() == name.as_bytes() => Ok(()),
        _ => Err(RequestError::HeaderMismatch("Mcp-Name")),
    }
}

#[cfg(test)]
#[path = "service_tests.rs"]
mod tests;

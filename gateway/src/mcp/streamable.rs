//! Streamable HTTP (2025-03-26 … 2026-07-28): POST, GET and DELETE on one
//! endpoint.
//!
//! Order of a POST, and why:
//! 1. read the body within limits (nothing is forwarded before we know its size);
//! 2. parse the JSON-RPC envelope (malformed → 400 here, never a backend 5xx);
//! 3. check 2026-07-28 `Mcp-Method`/`Mcp-Name` headers against the body;
//! 4. route: a session id is opened (→ its backend) or a new backend is chosen;
//! 5. exchange with the backend, detached from the client connection;
//! 6. swap the backend's session id for a sealed gateway id on the way back.

use std::sync::Arc;

use base64::Engine;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Version};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::session::{now_unix, route};
use super::sse::{SseStream, StreamGauge};
use super::{Ctx, MCP_SESSION_ID_NAME as MCP_SESSION_ID, parse_checked, read_body};
use crate::config::BackendTransport;
use crate::gateway::Shared;
use crate::http::GwBody;
use crate::proxy::backend::Backend;
use crate::proxy::forward::{self, ForwardedFor, OnClientGone, UpstreamStream};
use crate::proxy::{GatewayError, balancer};
use crate::session::token::{SessionClaims, SessionTransport};

/// `Mcp-Method` (2026-07-28).
static MCP_METHOD: HeaderName = HeaderName::from_static("mcp-method");
/// `Mcp-Name` (2026-07-28).
static MCP_NAME: HeaderName = HeaderName::from_static("mcp-name");

/// POST: one JSON-RPC message (or a 2025-03-26 batch).
pub async fn post(
    shared: &Arc<Shared>,
    req: Request<Incoming>,
    ctx: &mut Ctx,
) -> Result<Response<GwBody>, GatewayError> {
    let (mut parts, body) = req.into_parts();
    let bytes = read_body(shared, &parts.headers, body).await?;
    // Nesting depth with (or before) the parse; ids and the per-tool policy right after
    // it, so a forbidden call is refused (403) before any backend or session is touched.
    let envelope = parse_checked(shared, &bytes, ctx)?;
    check_method_headers(&parts.headers, &envelope)?;
    shared.guard.authorize(&envelope, ctx, &shared.metrics)?;

    let token = session_token(&parts.headers)?;
    let (backend, claims) = route_or_pick(shared, token.as_ref().map(token_str))?;
    if let Some(c) = &claims {
        shared.guard.check_session(c, ctx)?;
    }
    parts.method = Method::POST;
    let upstream = upstream_request(shared, parts, &backend, backend.url.clone(), ctx, upstream_id(&claims), bytes)?;
    let resp = exchange(shared, &backend, upstream, OnClientGone::Detach, token.is_some()).await?;
    respond_to(shared, &backend, resp, token, ctx, "streamable_post", false)
}

/// GET: the server→client stream of a session (or 405 from a stateless backend).
pub async fn get(
    shared: &Arc<Shared>,
    req: Request<Incoming>,
    ctx: &mut Ctx,
) -> Result<Response<GwBody>, GatewayError> {
    let (parts, _body) = req.into_parts();
    ctx.log.rpc_method = "stream";
    let token = session_token(&parts.headers)?;
    // No session: let a backend answer (400/405 per its revision).
    let (backend, claims) = route_or_pick(shared, token.as_ref().map(token_str))?;
    if let Some(c) = &claims {
        shared.guard.check_session(c, ctx)?;
    }
    // Responses replayed on the stream (resumption) are filtered like list answers.
    ctx.list_filter = ctx.caller.as_ref().and_then(crate::auth::filter::ListFilter::for_stream);
    let upstream =
        upstream_request(shared, parts, &backend, backend.url.clone(), ctx, upstream_id(&claims), Bytes::new())?;
    let resp = exchange(shared, &backend, upstream, OnClientGone::Close, token.is_some()).await?;
    respond_to(shared, &backend, resp, token, ctx, "streamable_get", true)
}

/// DELETE: end a session.
pub async fn delete(
    shared: &Arc<Shared>,
    req: Request<Incoming>,
    ctx: &mut Ctx,
) -> Result<Response<GwBody>, GatewayError> {
    let (parts, _body) = req.into_parts();
    ctx.log.rpc_method = "session/delete";
    let Some(token) = session_token(&parts.headers)? else {
        return Err(GatewayError::MissingSession("DELETE needs an Mcp-Session-Id header"));
    };
    let (backend, claims) = route(shared, token_str(&token), SessionTransport::Streamable)?;
    shared.guard.check_session(&claims, ctx)?;
    ctx.log.backend = Some(Arc::clone(&backend.name));
    let upstream = upstream_request(
        shared,
        parts,
        &backend,
        backend.url.clone(),
        ctx,
        Some(&claims.upstream_session),
        Bytes::new(),
    )?;
    let resp = exchange(shared, &backend, upstream, OnClientGone::Detach, true).await?;
    let status = resp.status();
    // 2xx: ended. 404: the backend had already forgotten it. Either way it is gone.
    if status.is_success() || status == StatusCode::NOT_FOUND {
        let expires = claims.issued_at.saturating_add(shared.config.sessions.ttl.as_secs()).max(now_unix() + 60);
        shared.revoked.insert(&claims.backend, &claims.upstream_session, expires);
        shared.sessions.forget(token_str(&token));
        shared.metrics.sessions_deleted.with_label_values(&[&backend.name]).inc();
    }
    respond_to(shared, &backend, resp, Some(token), ctx, "streamable_delete", false)
}

/// A session's backend (opened from its id), or a new backend when there is no id.
fn route_or_pick(
    shared: &Shared,
    token: Option<&str>,
) -> Result<(Arc<Backend>, Option<Arc<SessionClaims>>), GatewayError> {
    match token {
        Some(t) => route(shared, t, SessionTransport::Streamable).map(|(b, c)| (b, Some(c))),
        None => balancer::pick(shared.backends.all(), BackendTransport::StreamableHttp)
            .map(|b| (b, None))
            .ok_or(GatewayError::NoHealthyBackend),
    }
}

fn upstream_id(claims: &Option<Arc<SessionClaims>>) -> Option<&str> {
    claims.as_ref().map(|c| c.upstream_session.as_str())
}

/// The client's request head, rewritten for `backend` at `uri`, with `body`.
/// Every upstream request is built here, so the upstream credential rule
/// (`auth.upstream`: the client's token never passes) cannot be skipped.
pub(super) fn upstream_request(
    shared: &Shared,
    mut parts: http::request::Parts,
    backend: &Backend,
    uri: http::Uri,
    ctx: &mut Ctx,
    upstream_session: Option<&str>,
    body: Bytes,
) -> Result<Request<forward::UpstreamBodyAlias>, GatewayError> {
    ctx.log.backend = Some(Arc::clone(&backend.name));
    parts.uri = uri;
    // Upstream is HTTP/1.1 (or h2 where the pool negotiated it), whatever the client spoke.
    parts.version = Version::HTTP_11;
    prepare(&mut parts.headers, backend, ctx, upstream_session)?;
    shared.guard.upstream_headers(&mut parts.headers, &backend.name, ctx.caller.as_deref());
    Ok(Request::from_parts(parts, http_body_util::Full::new(body)))
}

/// The client's session id, if any, as sent (a shared, not copied, header value; its text
/// is visible ASCII, see [`token_str`]). Several values, or a non-ASCII one, is a client error.
fn session_token(headers: &HeaderMap) -> Result<Option<HeaderValue>, GatewayError> {
    let mut values = headers.get_all(&MCP_SESSION_ID).iter();
    let Some(first) = values.next() else { return Ok(None) };
    if values.next().is_some() {
        return Err(GatewayError::InvalidRequest("more than one Mcp-Session-Id header"));
    }
    match first.to_str() {
        Ok(s) if !s.is_empty() => Ok(Some(first.clone())),
        _ => Err(GatewayError::Session(crate::session::token::OpenError::Malformed)),
    }
}

/// The text of a value [`session_token`] accepted (which checked that it is ASCII).
fn token_str(token: &HeaderValue) -> &str {
    token.to_str().unwrap_or_default()
}

/// Upstream headers: proxy headers, and the backend's own session id restored.
pub(super) fn prepare(
    headers: &mut HeaderMap,
    backend: &Backend,
    ctx: &Ctx,
    upstream_session: Option<&str>,
) -> Result<(), GatewayError> {
    let proto = if ctx.conn.tls { "https" } else { "http" };
    forward::prepare_upstream_headers(
        headers,
        backend,
        &ForwardedFor { peer: &ctx.conn.peer_ip, proto, request_id: &ctx.request_id },
    );
    headers.remove(&MCP_SESSION_ID);
    if let Some(s) = upstream_session {
        let v =
            HeaderValue::from_str(s).map_err(|_| GatewayError::Session(crate::session::token::OpenError::Tampered))?;
        headers.insert(&MCP_SESSION_ID, v);
    }
    Ok(())
}

/// Send, and turn an unreachable session owner into the spec's 404.
pub(super) async fn exchange(
    shared: &Shared,
    backend: &Arc<Backend>,
    req: Request<forward::UpstreamBodyAlias>,
    on_gone: OnClientGone,
    has_session: bool,
) -> Result<Response<UpstreamStream>, GatewayError> {
    match forward::send(&shared.upstream(), backend, req, on_gone).await {
        Err(GatewayError::Connect { backend: name, .. }) if has_session && !backend.is_healthy() => {
            // The owner is down: its in-memory session is gone with it. 404 makes the
            // client re-initialize on a healthy backend instead of retrying forever.
            Err(GatewayError::SessionBackendDown(name))
        }
        other => other,
    }
}

/// Build the client response: hop-by-hop stripped, session id swapped, SSE wrapped.
pub(super) fn respond(
    shared: &Shared,
    backend: &Backend,
    resp: Response<UpstreamStream>,
    client_token: Option<String>,
    ctx: &mut Ctx,
    stream_label: &str,
    close_on_drain: bool,
) -> Result<Response<GwBody>, GatewayError> {
    // A token that is no valid header value is never echoed back (as before).
    let client_token = client_token.map(|t| HeaderValue::from_str(&t).ok());
    respond_with(shared, backend, resp, client_token, ctx, stream_label, close_on_drain)
}

/// [`respond`] for a session id taken from the request's header as it was.
fn respond_to(
    shared: &Shared,
    backend: &Backend,
    resp: Response<UpstreamStream>,
    client_token: Option<HeaderValue>,
    ctx: &mut Ctx,
    stream_label: &str,
    close_on_drain: bool,
) -> Result<Response<GwBody>, GatewayError> {
    respond_with(shared, backend, resp, client_token.map(Some), ctx, stream_label, close_on_drain)
}

/// `client_token`: `Some` when the client sent a session id (`Some(None)` if it cannot be
/// echoed), `None` for a new session.
fn respond_with(
    shared: &Shared,
    backend: &Backend,
    resp: Response<UpstreamStream>,
    client_token: Option<Option<HeaderValue>>,
    ctx: &mut Ctx,
    stream_label: &str,
    close_on_drain: bool,
) -> Result<Response<GwBody>, GatewayError> {
    let (mut parts, body) = resp.into_parts();
    forward::strip_hop_by_hop(&mut parts.headers);
    if client_token.is_some() && parts.status == StatusCode::NOT_FOUND {
        // The backend no longer knows this session (restarted?): say so in metrics.
        shared.metrics.session_routing_failures.with_label_values(&["backend_unknown_session"]).inc();
    }
    if let Some(upstream) = parts.headers.remove(&MCP_SESSION_ID) {
        let value = match client_token {
            Some(t) => t,
            None => {
                let sealed = upstream.to_str().ok().and_then(|s| {
                    shared.sealer.seal_checked(&SessionClaims {
                        backend: backend.name.to_string(),
                        upstream_session: s.to_owned(),
                        transport: SessionTransport::Streamable,
                        issued_at: now_unix(),
                        // Bound to the caller: another principal's valid token gets 404.
                        principal: ctx.caller.as_ref().map(|c| c.principal.clone()),
                    })
                });
                let Some(sealed) = sealed else {
                    // A session id we cannot seal could never be routed back: fail now, loudly.
                    return Err(GatewayError::BadUpstreamSession(Arc::clone(&backend.name)));
                };
                shared.metrics.sessions_created.with_label_values(&[&backend.name, "streamable-http"]).inc();
                HeaderValue::from_str(&sealed).ok()
            }
        };
        if let Some(v) = value {
            parts.headers.insert(&MCP_SESSION_ID, v);
        }
    }
    let is_sse = forward::is_event_stream(&parts.headers);
    ctx.log.status = parts.status.as_u16();
    if is_sse {
        // Some intermediaries buffer SSE unless told not to.
        parts.headers.insert(HeaderName::from_static("x-accel-buffering"), HeaderValue::from_static("no"));
    }
    // The tool policy rewrites list responses only (armed by `Guard::authorize`);
    // a rewritten body has a new length.
    let filter = ctx.list_filter.take();
    if filter.is_some() {
        parts.headers.remove(http::header::CONTENT_LENGTH);
    }
    let body: GwBody = match (is_sse, filter) {
        (false, None) => body.boxed_unsync(),
        (false, Some(filter)) => filter.json(body).boxed_unsync(),
        (true, None) => sse_body(shared, body, close_on_drain, stream_label, None),
        (true, Some(filter)) => sse_body(shared, filter.sse(body), close_on_drain, stream_label, None),
    };
    Ok(Response::from_parts(parts, body))
}

/// An SSE body with keepalives, drain and an optional endpoint rewrite.
pub(super) fn sse_body<B>(
    shared: &Shared,
    body: B,
    close_on_drain: bool,
    stream_label: &str,
    rewrite: Option<super::sse::EndpointMapper>,
) -> GwBody
where
    B: http_body::Body<Data = Bytes, Error = forward::BoxError> + Unpin + Send + 'static,
{
    let drain = close_on_drain.then(|| shared.drain.clone().boxed());
    SseStream::new(
        body,
        shared.config.mcp.sse_keepalive,
        drain,
        rewrite,
        shared.metrics.sse_keepalives.clone(),
        StreamGauge::new(shared.metrics.streams_active.with_label_values(&[stream_label])),
    )
    .boxed_unsync()
}

use http::HeaderName;

/// 2026-07-28: `Mcp-Method` / `Mcp-Name`, when present, must agree with the body.
fn check_method_headers(headers: &HeaderMap, body: &super::envelope::Body) -> Result<(), GatewayError> {
    let (method, name) = match body {
        super::envelope::Body::Single(e) => (e.method.as_deref(), e.name.as_deref()),
        // Batches predate these headers (2025-03-26 only).
        super::envelope::Body::Batch(_) => return Ok(()),
    };
    if let Some(h) = headers.get(&MCP_METHOD) {
        if decode_header(h).as_deref() != method {
            return Err(GatewayError::HeaderMismatch { header: "Mcp-Method" });
        }
    }
    if let Some(h) = headers.get(&MCP_NAME) {
        if decode_header(h).as_deref() != name {
            return Err(GatewayError::HeaderMismatch { header: "Mcp-Name" });
        }
    }
    Ok(())
}

/// Header values that are not plain ASCII travel as `=?base64?…?=`.
fn decode_header(v: &HeaderValue) -> Option<String> {
    let s = v.to_str().ok()?.trim();
    match s.strip_prefix("=?base64?").and_then(|r| r.strip_suffix("?=")) {
        Some(b64) => {
            let raw = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
            String::from_utf8(raw).ok()
        }
        None => Some(s.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_header_values_decode() {
        assert_eq!(decode_header(&HeaderValue::from_static("tools/call")).as_deref(), Some("tools/call"));
        assert_eq!(decode_header(&HeaderValue::from_static("=?base64?5pel5pys?=")).as_deref(), Some("日本"));
        assert_eq!(decode_header(&HeaderValue::from_static("=?base64?!!?=")), None);
    }

    #[test]
    fn duplicate_session_headers_are_refused() {
        let mut h = HeaderMap::new();
        assert!(session_token(&h).unwrap().is_none());
        h.append(&MCP_SESSION_ID, HeaderValue::from_static("a"));
        assert_eq!(session_token(&h).unwrap().as_ref().map(token_str), Some("a"));
        h.append(&MCP_SESSION_ID, HeaderValue::from_static("b"));
        assert!(matches!(session_token(&h), Err(GatewayError::InvalidRequest(_))));
    }
}

//! Legacy HTTP+SSE (2024-11-05), still spoken by many clients and `mcp-remote`.
//!
//! `GET /sse` opens a stream on a backend chosen for the new session. The
//! backend's first `endpoint` event names its POST URL, which carries the
//! backend's session (Python SDK: `/messages/?session_id=<hex>`). The gateway
//! seals that URL into a session id and rewrites the event to
//! `<messages_path>?session_id=<gateway id>`, so a POST through any replica
//! opens the id and reaches the same backend session.

use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response};
use hyper::body::Incoming;

use super::session::{now_unix, route};
use super::sse::EndpointMapper;
use super::streamable::{exchange, respond, sse_body, upstream_request};
use super::{Ctx, parse_envelope, read_body};
use crate::auth::filter::ListFilter;
use crate::config::BackendTransport;
use crate::gateway::Shared;
use crate::http::GwBody;
use crate::proxy::forward::OnClientGone;
use crate::proxy::{GatewayError, balancer};
use crate::session::token::{SessionClaims, SessionTransport};

/// GET /sse: open a legacy stream on a new backend session.
pub async fn open(
    shared: &Arc<Shared>,
    req: Request<Incoming>,
    ctx: &mut Ctx,
) -> Result<Response<GwBody>, GatewayError> {
    let (parts, _body) = req.into_parts();
    ctx.log.rpc_method = "stream";
    let backend = balancer::pick(shared.backends.all(), BackendTransport::Sse).ok_or(GatewayError::NoHealthyBackend)?;
    let upstream = upstream_request(shared, parts, &backend, backend.url.clone(), ctx, None, Bytes::new())?;
    let resp = exchange(shared, &backend, upstream, OnClientGone::Close, false).await?;
    if !resp.status().is_success() {
        return respond(shared, &backend, resp, None, ctx, "legacy_sse", true);
    }
    let (mut parts, body) = resp.into_parts();
    crate::proxy::forward::strip_hop_by_hop(&mut parts.headers);
    parts.headers.insert("x-accel-buffering", http::HeaderValue::from_static("no"));
    ctx.log.status = parts.status.as_u16();

    let mapper: EndpointMapper = {
        let shared = Arc::clone(shared);
        let backend = Arc::clone(&backend);
        // The session is bound to the caller who opened the stream.
        let principal = ctx.caller.as_ref().map(|c| c.principal.clone());
        Box::new(move |data: &str| {
            let upstream = upstream_endpoint(&backend.url, data.trim())?;
            let claims = SessionClaims {
                backend: backend.name.to_string(),
                upstream_session: upstream,
                transport: SessionTransport::LegacySse,
                issued_at: now_unix(),
                principal: principal.clone(),
            };
            let Some(token) = shared.sealer.seal_checked(&claims) else {
                tracing::error!(backend = %backend.name, "legacy endpoint URL too long to seal into a session id");
                return None;
            };
            shared.metrics.sessions_created.with_label_values(&[&backend.name, "sse"]).inc();
            Some(format!("{}?session_id={token}", shared.config.mcp.messages_path))
        })
    };
    // Every legacy response travels on this stream: list answers are filtered here.
    let body = match ctx.caller.as_ref().and_then(ListFilter::for_stream) {
        None => sse_body(shared, body, true, "legacy_sse", Some(mapper)),
        Some(filter) => sse_body(shared, filter.sse(body), true, "legacy_sse", Some(mapper)),
    };
    Ok(Response::from_parts(parts, body))
}

/// POST /messages?session_id=<gateway id>: one message into a legacy session.
pub async fn post(
    shared: &Arc<Shared>,
    req: Request<Incoming>,
    ctx: &mut Ctx,
) -> Result<Response<GwBody>, GatewayError> {
    let (mut parts, body) = req.into_parts();
    let token = query_param(parts.uri.query().unwrap_or(""), "session_id")
        .ok_or(GatewayError::MissingSession("POST needs ?session_id= from the endpoint event"))?;
    let bytes = read_body(shared, &parts.headers, body).await?;
    shared.guard.check_depth(&bytes)?;
    let envelope = parse_envelope(&bytes, ctx)?;
    shared.guard.authorize(&envelope, ctx, &shared.metrics)?;
    // The answer arrives on the GET stream, which filters it; nothing to filter here.
    ctx.list_filter = None;
    let (backend, claims) = route(shared, &token, SessionTransport::LegacySse)?;
    shared.guard.check_session(&claims, ctx)?;
    parts.method = Method::POST;
    let uri = backend.uri_for(&claims.upstream_session).map_err(GatewayError::Internal)?;
    let upstream = upstream_request(shared, parts, &backend, uri, ctx, None, bytes)?;
    let resp = exchange(shared, &backend, upstream, OnClientGone::Detach, true).await?;
    respond(shared, &backend, resp, Some(token), ctx, "legacy_post", false)
}

/// The backend's POST endpoint as a path-and-query on the backend's authority.
/// Accepts an absolute URL (same authority), an absolute path, or a path
/// relative to the SSE URL.
fn upstream_endpoint(sse_url: &http::Uri, data: &str) -> Option<String> {
    if data.is_empty() || data.chars().any(|c| c.is_control()) {
        return None;
    }
    if let Some(rest) = data.strip_prefix("http://").or_else(|| data.strip_prefix("https://")) {
        let slash = rest.find('/').unwrap_or(rest.len());
        let path = &rest[slash..];
        return Some(if path.is_empty() { "/".to_owned() } else { path.to_owned() });
    }
    if data.starts_with('/') {
        return Some(data.to_owned());
    }
    let base = sse_url.path();
    let dir = &base[..base.rfind('/').map(|i| i + 1).unwrap_or(0)];
    Some(format!("{}{data}", if dir.is_empty() { "/" } else { dir }))
}

/// A query parameter's raw value (gateway ids never need percent-decoding).
fn query_param(query: &str, name: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_forms() {
        let sse: http::Uri = "http://127.0.0.1:9000/app/sse".parse().unwrap();
        assert_eq!(upstream_endpoint(&sse, "/messages/?session_id=ab").as_deref(), Some("/messages/?session_id=ab"));
        assert_eq!(upstream_endpoint(&sse, "messages?x=1").as_deref(), Some("/app/messages?x=1"));
        assert_eq!(
            upstream_endpoint(&sse, "http://127.0.0.1:9000/messages/?session_id=ab").as_deref(),
            Some("/messages/?session_id=ab")
        );
        assert_eq!(upstream_endpoint(&sse, ""), None);
        assert_eq!(upstream_endpoint(&sse, "/a\u{7}b"), None);
    }

    #[test]
    fn query_params() {
        assert_eq!(query_param("session_id=abc&x=1", "session_id").as_deref(), Some("abc"));
        assert_eq!(query_param("x=1&session_id=g1.zz", "session_id").as_deref(), Some("g1.zz"));
        assert_eq!(query_param("session_id=", "session_id"), None);
        assert_eq!(query_param("", "session_id"), None);
    }
}

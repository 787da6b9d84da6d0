//! One upstream exchange: take a connection slot, send, classify failures,
//! and keep going when the client leaves.
//!
//! MCP says a dropped connection is not a cancellation ("To cancel, the client
//! SHOULD explicitly send an MCP CancelledNotification"). If the gateway let
//! hyper cancel the upstream request when the client disconnects, the backend
//! would see a reset and abort the tool call. So for POSTs the exchange is
//! *detached* on drop: the pending response (or the rest of its body) is handed
//! to a background task that reads it to the end, bounded by
//! `request_timeout`, and then releases the slot. Long-lived GET streams are
//! closed instead: nothing is in flight on them.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, header};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::{Instant, Sleep};

use super::backend::InFlight;
use super::client::UpstreamBody;
use super::pool::{PoolError, PooledBody};
use super::{Backend, GatewayError};
use crate::config::{PoolConfig, RoutingConfig};
use crate::telemetry::Metrics;

/// What happens to the exchange if the client goes away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnClientGone {
    /// Finish the exchange in the background (POST: requests in flight).
    Detach,
    /// Close it (GET streams).
    Close,
}

/// What the exchange needs from the gateway.
#[derive(Debug)]
pub struct Upstream<'a> {
    /// Pool limits and timeouts.
    pub pool: &'a PoolConfig,
    /// Health thresholds for passive checks.
    pub routing: &'a RoutingConfig,
    /// Metrics.
    pub metrics: &'a Metrics,
}

/// Held for the whole exchange, body included: a `max_conns_per_host` slot
/// (requests only, not streams) and the backend's outstanding-request count.
#[derive(Debug)]
pub struct Lease {
    _permit: Option<OwnedSemaphorePermit>,
    _in_flight: InFlight,
}

/// Send `req` to `backend`. The response body, wrapped, keeps the lease.
pub async fn send(
    up: &Upstream<'_>,
    backend: &Arc<Backend>,
    req: Request<UpstreamBody>,
    on_gone: OnClientGone,
) -> Result<Response<UpstreamStream>, GatewayError> {
    // `max_conns_per_host` bounds requests in flight. A server→client stream (GET,
    // legacy SSE) is idle most of its life and may last hours: counting it would let a
    // few hundred open streams lock every new request out with 503 (found by the
    // 10k-idle-streams benchmark), so streams take no slot.
    let permit = match on_gone {
        OnClientGone::Close => None,
        OnClientGone::Detach => {
            let acquire = Arc::clone(&backend.permits).acquire_owned();
            match tokio::time::timeout(up.pool.acquire_timeout, acquire).await {
                Ok(Ok(p)) => Some(p),
                // The semaphore is never closed; treat it like exhaustion if it were.
                Ok(Err(_)) | Err(_) => {
                    up.metrics.pool_exhausted.with_label_values(&[&backend.name]).inc();
                    return Err(GatewayError::PoolExhausted(Arc::clone(&backend.name)));
                }
            }
        }
    };
    let lease = Lease { _permit: permit, _in_flight: backend.begin() };
    let deadline = Instant::now() + up.pool.request_timeout;
    let pool = Arc::clone(&backend.pool);
    let fut: Option<ResponseFuture> = Some(Box::pin(async move { pool.send(req).await }));
    let pending = Pending { fut, lease: Some(lease), on_gone, deadline };
    let result = tokio::time::timeout_at(deadline, pending).await;
    let (resp, lease) = match result {
        Err(_) => {
            up.metrics.connection_errors.with_label_values(&[&backend.name, "timeout"]).inc();
            return Err(GatewayError::UpstreamTimeout(Arc::clone(&backend.name)));
        }
        Ok((Err(e), _)) => {
            if e.is_connect() {
                up.metrics.connection_errors.with_label_values(&[&backend.name, "connect"]).inc();
                let err = GatewayError::Connect { backend: Arc::clone(&backend.name), source: e };
                // The log line names the cause ("Connection refused"), not only the address.
                backend.record_failure(up.routing.unhealthy_threshold, &err.message());
                return Err(err);
            }
            up.metrics.connection_errors.with_label_values(&[&backend.name, "protocol"]).inc();
            return Err(GatewayError::Upstream { backend: Arc::clone(&backend.name), source: e });
        }
        Ok((Ok(resp), lease)) => (resp, lease),
    };
    backend.record_success(up.routing.healthy_threshold);
    let (parts, body) = resp.into_parts();
    // SSE bodies may legitimately run for hours; a JSON body must finish in time.
    let body_deadline = (!is_event_stream(&parts.headers)).then_some(deadline);
    Ok(Response::from_parts(parts, UpstreamStream::new(body, lease, on_gone, body_deadline)))
}

/// Alias used by transport modules.
pub type UpstreamBodyAlias = UpstreamBody;

/// A response head on its way from the backend.
type ResponseFuture = Pin<Box<dyn Future<Output = Result<Response<PooledBody>, PoolError>> + Send>>;

/// The response future, plus what to do with it if it is dropped unfinished.
struct Pending {
    fut: Option<ResponseFuture>,
    lease: Option<Lease>,
    on_gone: OnClientGone,
    deadline: Instant,
}

impl Future for Pending {
    type Output = (Result<Response<PooledBody>, PoolError>, Option<Lease>);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(fut) = self.fut.as_mut() else {
            return Poll::Pending;
        };
        let out = ready!(fut.as_mut().poll(cx));
        self.fut = None;
        let lease = self.lease.take();
        Poll::Ready((out, lease))
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let (Some(fut), OnClientGone::Detach) = (self.fut.take(), self.on_gone) {
            let lease = self.lease.take();
            let deadline = self.deadline;
            spawn_detached(deadline, async move {
                if let Ok(resp) = fut.await {
                    drain(resp.into_body()).await;
                }
                drop(lease);
            });
        }
    }
}

fn spawn_detached(deadline: Instant, work: impl Future<Output = ()> + Send + 'static) {
    // Outside a runtime (process teardown) there is nothing to finish.
    if let Ok(handle) = tokio::runtime::Handle::try_current() {
        handle.spawn(async move {
            let _ = tokio::time::timeout_at(deadline, work).await;
        });
    }
}

async fn drain(mut body: PooledBody) {
    while let Some(frame) = body.frame().await {
        if frame.is_err() {
            break;
        }
    }
}

/// A backend response body that holds the lease until it ends, enforces the
/// JSON body deadline, and is detached (read to the end in the background)
/// if dropped early in `Detach` mode.
#[derive(Debug)]
pub struct UpstreamStream {
    inner: Option<PooledBody>,
    lease: Option<Lease>,
    on_gone: OnClientGone,
    deadline: Option<Pin<Box<Sleep>>>,
    detach_deadline: Instant,
}

impl UpstreamStream {
    fn new(inner: PooledBody, lease: Option<Lease>, on_gone: OnClientGone, deadline: Option<Instant>) -> Self {
        Self {
            inner: Some(inner),
            lease,
            on_gone,
            detach_deadline: deadline.unwrap_or_else(|| Instant::now() + Duration::from_secs(300)),
            deadline: deadline.map(|d| Box::pin(tokio::time::sleep_until(d))),
        }
    }

    fn finish(&mut self) {
        self.inner = None;
        self.lease = None;
    }
}

/// Error type of streamed bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl Body for UpstreamStream {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        match Pin::new(inner).poll_frame(cx) {
            Poll::Ready(None) => {
                this.finish();
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(e))) => {
                this.finish();
                Poll::Ready(Some(Err(Box::new(e))))
            }
            Poll::Ready(Some(Ok(frame))) => Poll::Ready(Some(Ok(frame))),
            Poll::Pending => {
                if let Some(d) = this.deadline.as_mut() {
                    if d.as_mut().poll(cx).is_ready() {
                        this.finish();
                        return Poll::Ready(Some(Err("backend response body exceeded request_timeout".into())));
                    }
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.as_ref().map(|b| b.size_hint()).unwrap_or_else(|| SizeHint::with_exact(0))
    }
}

impl Drop for UpstreamStream {
    fn drop(&mut self) {
        if let (Some(inner), OnClientGone::Detach) = (self.inner.take(), self.on_gone) {
            if inner.is_end_stream() {
                return;
            }
            let lease = self.lease.take();
            spawn_detached(self.detach_deadline, async move {
                drain(inner).await;
                drop(lease);
            });
        }
    }
}

/// Hop-by-hop headers (RFC 9110 §7.6.1) never forwarded in either direction.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

/// True if the message's `Content-Type` is `text/event-stream` (any case, any parameters).
pub fn is_event_stream(headers: &HeaderMap) -> bool {
    const SSE: &[u8] = b"text/event-stream";
    headers.get(header::CONTENT_TYPE).is_some_and(|v| {
        let b = v.as_bytes();
        let start = b.iter().position(|c| !c.is_ascii_whitespace()).unwrap_or(b.len());
        b[start..].get(..SSE.len()).is_some_and(|p| p.eq_ignore_ascii_case(SSE))
    })
}

fn is_hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(name) || name == header::UPGRADE
}

/// Remove hop-by-hop headers, including those named by `Connection`.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Fast path: most messages carry none, and scanning a handful of names is
    // cheaper than ten hashed removals.
    if !headers.keys().any(is_hop_by_hop) {
        return;
    }
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for n in named {
        headers.remove(n);
    }
    for n in &HOP_BY_HOP {
        headers.remove(n);
    }
    headers.remove(header::UPGRADE);
}

/// Proxy headers added to every upstream request.
#[derive(Debug)]
pub struct ForwardedFor<'a> {
    /// Client IP, as a header value (formatted once per connection).
    pub peer: &'a HeaderValue,
    /// `https` if the client connection was TLS.
    pub proto: &'static str,
    /// Request id for correlation.
    pub request_id: &'a HeaderValue,
}

/// Turn client request headers into upstream request headers, in place.
pub fn prepare_upstream_headers(headers: &mut HeaderMap, backend: &Backend, fwd: &ForwardedFor<'_>) {
    strip_hop_by_hop(headers);
    // The backend sees its own authority, as nginx's default `proxy_set_header Host $proxy_host`;
    // the client's goes on as `X-Forwarded-Host`.
    let client_host = match &backend.host_header {
        Some(v) => headers.insert(header::HOST, v.clone()),
        None => headers.remove(header::HOST),
    };
    if let Some(host) = client_host {
        headers.insert(HeaderName::from_static("x-forwarded-host"), host);
    }
    let xff = HeaderName::from_static("x-forwarded-for");
    let value = match headers.get(&xff) {
        None => Some(fwd.peer.clone()),
        Some(prev) => {
            let mut v = Vec::with_capacity(prev.len() + 2 + fwd.peer.len());
            v.extend_from_slice(prev.as_bytes());
            v.extend_from_slice(b", ");
            v.extend_from_slice(fwd.peer.as_bytes());
            HeaderValue::from_bytes(&v).ok()
        }
    };
    if let Some(v) = value {
        headers.insert(xff, v);
    }
    headers.insert(HeaderName::from_static("x-forwarded-proto"), HeaderValue::from_static(fwd.proto));
    headers.insert(HeaderName::from_static("x-request-id"), fwd.request_id.clone());
    // hyper sets content-length from the whole body; a stale one would be wrong after edits.
    headers.remove(header::CONTENT_LENGTH);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_stream_detection() {
        let mut h = HeaderMap::new();
        assert!(!is_event_stream(&h));
        for (v, want) in [
            ("text/event-stream", true),
            (" Text/Event-Stream; charset=utf-8", true),
            ("application/json", false),
            ("text/event", false),
        ] {
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(v));
            assert_eq!(is_event_stream(&h), want, "{v}");
        }
    }

    #[test]
    fn hop_by_hop_headers_are_stripped() {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        h.insert(header::CONNECTION, HeaderValue::from_static("keep-alive, x-secret"));
        h.insert(HeaderName::from_static("x-secret"), HeaderValue::from_static("1"));
        h.insert(header::TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        h.insert(HeaderName::from_static("keep-alive"), HeaderValue::from_static("timeout=5"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key(header::CONTENT_TYPE));
    }
}

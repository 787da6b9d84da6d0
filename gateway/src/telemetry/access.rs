//! The per-request context: it rides along the pipeline, and on drop writes
//! the access-log line and the request metrics exactly once, however the
//! request ended (response, error, or client gone).

use std::sync::Arc;
use std::time::Instant;

use http::{HeaderValue, Method};

use super::Metrics;

/// What one request did, filled in as it moves through the phases.
#[derive(Debug)]
pub struct RequestLog {
    metrics: Arc<Metrics>,
    start: Instant,
    /// The access-log fields, captured only when the line will be written: with the access
    /// log off (or filtered out) a request costs no copies or formatting for it.
    access: Option<Box<AccessFields>>,
    /// JSON-RPC method label (bounded set), once known.
    pub rpc_method: &'static str,
    /// Backend name, once routed.
    pub backend: Option<Arc<str>>,
    /// Response status.
    pub status: u16,
    /// Why the gateway itself answered (error reason), if it did.
    pub reason: Option<&'static str>,
}

/// The request's own fields of an access-log line.
#[derive(Debug)]
struct AccessFields {
    http_method: Method,
    /// Request path (without query: it may hold a session token).
    path: String,
    /// `X-Request-ID`, accepted or generated.
    request_id: HeaderValue,
    peer: std::net::SocketAddr,
}

impl RequestLog {
    /// Start the context for one request; `enabled` is `logging.access_log`.
    pub fn new(
        metrics: Arc<Metrics>,
        enabled: bool,
        http_method: &Method,
        path: &str,
        request_id: &HeaderValue,
        peer: std::net::SocketAddr,
    ) -> Self {
        let access = (enabled && tracing::enabled!(target: "access", tracing::Level::INFO)).then(|| {
            Box::new(AccessFields {
                http_method: http_method.clone(),
                path: path.to_owned(),
                request_id: request_id.clone(),
                peer,
            })
        });
        Self { metrics, start: Instant::now(), access, rpc_method: "-", backend: None, status: 0, reason: None }
    }
}

impl Drop for RequestLog {
    fn drop(&mut self) {
        let elapsed = self.start.elapsed();
        let backend = self.backend.as_deref().unwrap_or("-");
        // status 0 = the client went away before any response existed.
        let status = if self.status == 0 { 499 } else { self.status };
        let with_duration = self.backend.is_some();
        self.metrics.record_request(backend, self.rpc_method, status, with_duration.then_some(elapsed));
        if let Some(a) = &self.access {
            tracing::info!(
                target: "access",
                method = %a.http_method,
                path = %a.path,
                rpc = self.rpc_method,
                status,
                backend,
                duration_ms = elapsed.as_secs_f64() * 1000.0,
                request_id = a.request_id.to_str().unwrap_or("-"),
                peer = %a.peer,
                reason = self.reason.unwrap_or("-"),
            );
        }
    }
}

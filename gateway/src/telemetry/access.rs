//! The per-request context: it rides along the pipeline, and on drop writes
//! the access-log line and the request metrics exactly once, however the
//! request ended (response, error, or client gone).

use std::sync::Arc;
use std::time::Instant;

use http::Method;

use super::Metrics;

/// What one request did, filled in as it moves through the phases.
#[derive(Debug)]
pub struct RequestLog {
    metrics: Arc<Metrics>,
    enabled: bool,
    start: Instant,
    /// HTTP method.
    pub http_method: Method,
    /// Request path (without query: it may hold a session token).
    pub path: String,
    /// `X-Request-ID`, accepted or generated.
    pub request_id: String,
    /// Client address.
    pub peer: std::net::SocketAddr,
    /// JSON-RPC method label (bounded set), once known.
    pub rpc_method: &'static str,
    /// Backend name, once routed.
    pub backend: Option<Arc<str>>,
    /// Response status.
    pub status: u16,
    /// Why the gateway itself answered (error reason), if it did.
    pub reason: Option<&'static str>,
}

impl RequestLog {
    /// Start the context for one request.
    pub fn new(
        metrics: Arc<Metrics>,
        enabled: bool,
        http_method: Method,
        path: &str,
        request_id: String,
        peer: std::net::SocketAddr,
    ) -> Self {
        Self {
            metrics,
            enabled,
            start: Instant::now(),
            http_method,
            path: path.to_owned(),
            request_id,
            peer,
            rpc_method: "-",
            backend: None,
            status: 0,
            reason: None,
        }
    }
}

impl Drop for RequestLog {
    fn drop(&mut self) {
        let elapsed = self.start.elapsed();
        let backend = self.backend.as_deref().unwrap_or("-");
        // status 0 = the client went away before any response existed.
        let status = if self.status == 0 { 499 } else { self.status };
        let buf = itoa_buf(status);
        let status_str = buf.as_str();
        self.metrics.requests.with_label_values(&[backend, self.rpc_method, status_str]).inc();
        if self.backend.is_some() {
            self.metrics.request_duration.with_label_values(&[backend, self.rpc_method]).observe(elapsed.as_secs_f64());
        }
        if self.enabled {
            tracing::info!(
                target: "access",
                method = %self.http_method,
                path = %self.path,
                rpc = self.rpc_method,
                status,
                backend,
                duration_ms = elapsed.as_secs_f64() * 1000.0,
                request_id = %self.request_id,
                peer = %self.peer,
                reason = self.reason.unwrap_or("-"),
            );
        }
    }
}

/// A tiny stack formatter for status codes (avoids an allocation per request).
struct StatusBuf([u8; 3]);

fn itoa_buf(status: u16) -> StatusBuf {
    let s = status.min(999);
    StatusBuf([b'0' + (s / 100) as u8, b'0' + (s / 10 % 10) as u8, b'0' + (s % 10) as u8])
}

impl StatusBuf {
    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("000")
    }
}

//! Prometheus metrics, served on the admin listener at `/metrics`.
//!
//! Names follow what operators grep for in the seeds' troubleshooting guides
//! (`mcp_backend_healthy`, `request_duration`, `requests_total`,
//! `connection_errors_total`). Every label value comes from a bounded set
//! (backend names from config, method labels from a fixed list, reasons from
//! enums), never from raw client input.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// All gateway metrics, registered in one registry.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    /// `mcp_requests_total{backend,method,status}`.
    pub requests: IntCounterVec,
    /// `mcp_request_duration_seconds{backend,method}`: time to response headers.
    pub request_duration: HistogramVec,
    /// `mcp_backend_healthy{backend}`: 1 up, 0 down.
    pub backend_healthy: IntGaugeVec,
    /// `mcp_backend_outstanding_requests{backend}`.
    pub backend_outstanding: IntGaugeVec,
    /// `mcp_backend_connection_errors_total{backend,kind}`.
    pub connection_errors: IntCounterVec,
    /// `mcp_pool_exhausted_total{backend}`: requests refused because `max_conns_per_host` stayed full.
    pub pool_exhausted: IntCounterVec,
    /// `mcp_sessions_created_total{backend,transport}`.
    pub sessions_created: IntCounterVec,
    /// `mcp_sessions_deleted_total{backend}`.
    pub sessions_deleted: IntCounterVec,
    /// `mcp_sessions_active{transport}`: sessions seen by this replica within the activity window.
    pub sessions_active: IntGaugeVec,
    /// `mcp_session_routing_failures_total{reason}`.
    pub session_routing_failures: IntCounterVec,
    /// `mcp_streams_active{transport}`: open SSE streams.
    pub streams_active: IntGaugeVec,
    /// `mcp_sse_keepalives_total`: keepalive comments written on idle streams.
    pub sse_keepalives: IntCounter,
    /// `mcp_client_errors_total{reason}`: requests the gateway itself refused.
    pub client_errors: IntCounterVec,
    /// `mcp_http_connections_active{listener}`.
    pub connections_active: IntGaugeVec,
    /// `mcp_http_connections_total{listener}`.
    pub connections_total: IntCounterVec,
    /// `mcp_accept_errors_total{listener}`: failed accept(2) calls (e.g. fd exhaustion).
    pub accept_errors: IntCounterVec,
    /// `mcp_ebpf_mode`: 0 userspace-only, 1 XDP attached.
    pub ebpf_mode: IntGauge,
}

/// Latency buckets, in seconds: sub-millisecond proxying up to long tool calls.
const DURATION_BUCKETS: &[f64] =
    &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

impl Metrics {
    /// Create and register every metric.
    pub fn new() -> Self {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry.register(Box::new(c.clone())).expect("unique metric");
            c
        };
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry.register(Box::new(g.clone())).expect("unique metric");
            g
        };
        let request_duration = HistogramVec::new(
            HistogramOpts::new(
                "mcp_request_duration_seconds",
                "Time from request start to response headers, by backend and JSON-RPC method.",
            )
            .buckets(DURATION_BUCKETS.to_vec()),
            &["backend", "method"],
        )
        .expect("valid metric");
        registry.register(Box::new(request_duration.clone())).expect("unique metric");
        let sse_keepalives =
            IntCounter::new("mcp_sse_keepalives_total", "SSE keepalive comments written on idle client streams.")
                .expect("valid metric");
        registry.register(Box::new(sse_keepalives.clone())).expect("unique metric");
        let ebpf_mode =
            IntGauge::new("mcp_ebpf_mode", "Data-plane mode: 0 = userspace-only, 1 = XDP program attached.")
                .expect("valid metric");
        registry.register(Box::new(ebpf_mode.clone())).expect("unique metric");
        let build = IntGaugeVec::new(Opts::new("mcp_build_info", "Build information; always 1."), &["version", "ebpf"])
            .expect("valid metric");
        registry.register(Box::new(build.clone())).expect("unique metric");
        build.with_label_values(&[env!("CARGO_PKG_VERSION"), "not_built"]).set(1);

        Self {
            requests: counter(
                "mcp_requests_total",
                "Requests handled, by backend, JSON-RPC method and HTTP status.",
                &["backend", "method", "status"],
            ),
            request_duration,
            backend_healthy: gauge(
                "mcp_backend_healthy",
                "Backend health from active and passive checks: 1 healthy, 0 unhealthy.",
                &["backend"],
            ),
            backend_outstanding: gauge(
                "mcp_backend_outstanding_requests",
                "Requests in flight to each backend.",
                &["backend"],
            ),
            connection_errors: counter(
                "mcp_backend_connection_errors_total",
                "Failures talking to a backend, by kind (connect, timeout, protocol).",
                &["backend", "kind"],
            ),
            pool_exhausted: counter(
                "mcp_pool_exhausted_total",
                "Requests refused because connection_pool.max_conns_per_host stayed full.",
                &["backend"],
            ),
            sessions_created: counter(
                "mcp_sessions_created_total",
                "MCP sessions created through this replica.",
                &["backend", "transport"],
            ),
            sessions_deleted: counter(
                "mcp_sessions_deleted_total",
                "MCP sessions ended by DELETE through this replica.",
                &["backend"],
            ),
            sessions_active: gauge(
                "mcp_sessions_active",
                "Distinct sessions with requests through this replica within the activity window.",
                &["transport"],
            ),
            session_routing_failures: counter(
                "mcp_session_routing_failures_total",
                "Requests whose session id could not be routed (answered 404), by reason.",
                &["reason"],
            ),
            streams_active: gauge("mcp_streams_active", "Open SSE streams, by transport.", &["transport"]),
            sse_keepalives,
            client_errors: counter(
                "mcp_client_errors_total",
                "Requests refused by the gateway itself (4xx), by reason.",
                &["reason"],
            ),
            connections_active: gauge(
                "mcp_http_connections_active",
                "Open client connections, by listener.",
                &["listener"],
            ),
            connections_total: counter(
                "mcp_http_connections_total",
                "Accepted client connections, by listener.",
                &["listener"],
            ),
            accept_errors: counter(
                "mcp_accept_errors_total",
                "Failed accept() calls, by listener (fd exhaustion backs off).",
                &["listener"],
            ),
            ebpf_mode,
            registry,
        }
    }

    /// Prometheus text exposition of every metric.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 * 1024);
        // Encoding into a Vec cannot fail for well-formed metric families.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_greps_find_metrics() {
        let m = Metrics::new();
        m.backend_healthy.with_label_values(&["a"]).set(1);
        m.requests.with_label_values(&["a", "tools/call", "200"]).inc();
        m.request_duration.with_label_values(&["a", "tools/call"]).observe(0.001);
        m.connection_errors.with_label_values(&["a", "connect"]).inc();
        let text = String::from_utf8(m.render()).unwrap();
        for needle in
            ["mcp_backend_healthy", "request_duration", "requests_total", "connection_errors_total", "mcp_ebpf_mode 0"]
        {
            assert!(text.contains(needle), "{needle} missing from:\n{text}");
        }
    }
}

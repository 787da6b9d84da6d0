//! Prometheus metrics, served on the admin listener at `/metrics`.
//!
//! Names follow what operators grep for in the seeds' troubleshooting guides
//! (`mcp_backend_healthy`, `request_duration`, `requests_total`,
//! `connection_errors_total`). Every label value comes from a bounded set
//! (backend names from config, method labels from a fixed list, reasons from
//! enums), never from raw client input.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

/// All gateway metrics, registered in one registry.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    /// Tells this set of metrics (and its clones) apart in the per-thread handle cache.
    id: u64,
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
    /// `mcp_upstream_connections_opened_total{backend,protocol}`: new connections to backends
    /// (a rate close to the request rate means connections are not being reused).
    pub upstream_connections: IntCounterVec,
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
    /// `mcp_xdp_packets_total{action,reason}`: the XDP program's per-CPU counters,
    /// read at scrape time (no samples while userspace-only).
    pub xdp_packets: XdpPackets,
    /// `mcp_auth_failures_total{reason}`: requests refused by authentication (401) or scope (403).
    pub auth_failures: IntCounterVec,
    /// `mcp_rate_limited_total{scope}`: requests refused with 429, by limit (`ip`, `principal`).
    pub rate_limited: IntCounterVec,
    /// `mcp_policy_denials_total{kind}`: calls refused by `auth.policy` (`tool`, `prompt`, `resource`).
    pub policy_denials: IntCounterVec,
    /// `mcp_jwks_fetches_total{result}`: JWKS fetches (`ok`, `error`).
    pub jwks_fetches: IntCounterVec,
    /// `mcp_auth_verdict_cache_total{outcome}`: credential lookups (`hit`, `miss`).
    pub verdict_cache: IntCounterVec,
}

/// Source of [`Metrics`] ids.
static NEXT_METRICS_ID: AtomicU64 = AtomicU64::new(1);

/// Label sets remembered per thread by [`Metrics::record_request`] (a full cache starts over).
const HOT_ENTRIES: usize = 32;

/// Resolved `mcp_requests_total` / `mcp_request_duration_seconds` handles for one label set.
struct HotEntry {
    metrics: u64,
    backend: Box<str>,
    method: &'static str,
    status: u16,
    requests: IntCounter,
    duration: Option<Histogram>,
}

thread_local! {
    static HOT: RefCell<Vec<HotEntry>> = const { RefCell::new(Vec::new()) };
}

/// A status code as a 3-digit label, formatted on the stack.
struct StatusLabel([u8; 3]);

fn status_label(status: u16) -> StatusLabel {
    let s = status.min(999);
    StatusLabel([b'0' + (s / 100) as u8, b'0' + (s / 10 % 10) as u8, b'0' + (s % 10) as u8])
}

impl StatusLabel {
    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("000")
    }
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
        let xdp_packets = XdpPackets::new();
        registry.register(Box::new(xdp_packets.clone())).expect("unique metric");
        let build = IntGaugeVec::new(Opts::new("mcp_build_info", "Build information; always 1."), &["version", "ebpf"])
            .expect("valid metric");
        registry.register(Box::new(build.clone())).expect("unique metric");
        let ebpf = if crate::ebpf::BUILT { "xdp" } else { "userspace-only" };
        build.with_label_values(&[env!("CARGO_PKG_VERSION"), ebpf]).set(1);

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
            upstream_connections: counter(
                "mcp_upstream_connections_opened_total",
                "Connections opened to each backend, by protocol (http1, h2).",
                &["backend", "protocol"],
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
            xdp_packets,
            auth_failures: counter(
                "mcp_auth_failures_total",
                "Requests refused by authentication (401) or missing scope (403), by reason.",
                &["reason"],
            ),
            rate_limited: counter(
                "mcp_rate_limited_total",
                "Requests refused with 429, by limit (ip, principal).",
                &["scope"],
            ),
            policy_denials: counter(
                "mcp_policy_denials_total",
                "Calls refused by auth.policy before reaching a backend, by kind (tool, prompt, resource).",
                &["kind"],
            ),
            jwks_fetches: counter("mcp_jwks_fetches_total", "JWKS fetches from token issuers, by result.", &["result"]),
            verdict_cache: counter(
                "mcp_auth_verdict_cache_total",
                "Credential verdict cache lookups (hit: no signature check needed).",
                &["outcome"],
            ),
            registry,
            id: NEXT_METRICS_ID.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// Count one finished request in `mcp_requests_total` and, when it reached a backend,
    /// observe its duration. The label lookups (hash, lock, clone) are paid once per label
    /// set and thread: the resolved handles are kept in a small per-thread cache.
    pub fn record_request(&self, backend: &str, method: &'static str, status: u16, duration: Option<Duration>) {
        HOT.with_borrow_mut(|hot| {
            let found = hot.iter().position(|e| {
                e.metrics == self.id && e.status == status && e.method == method && *e.backend == *backend
            });
            let i = found.unwrap_or_else(|| {
                if hot.len() >= HOT_ENTRIES {
                    hot.clear();
                }
                let code = status_label(status);
                hot.push(HotEntry {
                    metrics: self.id,
                    backend: backend.into(),
                    method,
                    status,
                    requests: self.requests.with_label_values(&[backend, method, code.as_str()]),
                    duration: None,
                });
                hot.len() - 1
            });
            let entry = &mut hot[i];
            entry.requests.inc();
            if let Some(d) = duration {
                // Resolved on first use: a label set without a backend has no duration series.
                let h =
                    entry.duration.get_or_insert_with(|| self.request_duration.with_label_values(&[backend, method]));
                h.observe(d.as_secs_f64());
            }
        });
    }

    /// Prometheus text exposition of every metric.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 * 1024);
        // Encoding into a Vec cannot fail for well-formed metric families.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        out
    }
}

impl Metrics {
    /// Where `mcp_xdp_packets_total` reads the XDP counters from (set once the
    /// data plane is attached).
    pub fn set_xdp_source(&self, source: XdpSource) {
        *self.xdp_packets.source.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Arc::from(source));
    }

    /// Registers a collector owned by another module (the XDP node membership gauges).
    pub fn register(&self, collector: Box<dyn Collector>) -> prometheus::Result<()> {
        self.registry.register(collector)
    }
}

/// One `mcp_xdp_packets_total` sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XdpSample {
    /// `drop`, `pass` or `tx`.
    pub action: &'static str,
    /// Why (`blocked`, `rate_limited`, `malformed`, `forwarded`, ...).
    pub reason: &'static str,
    /// Packets since the counters were created.
    pub packets: u64,
}

/// Reads the current XDP counters.
pub type XdpSource = Box<dyn Fn() -> Vec<XdpSample> + Send + Sync>;
type SharedSource = Arc<dyn Fn() -> Vec<XdpSample> + Send + Sync>;

/// A collector for `mcp_xdp_packets_total` that asks its source at scrape time,
/// so the kernel's per-CPU counters are summed only when someone looks.
#[derive(Clone)]
pub struct XdpPackets {
    template: IntCounterVec,
    source: Arc<RwLock<Option<SharedSource>>>,
}

impl std::fmt::Debug for XdpPackets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XdpPackets").finish_non_exhaustive()
    }
}

impl XdpPackets {
    fn new() -> Self {
        Self { template: Self::vec(), source: Arc::default() }
    }

    fn vec() -> IntCounterVec {
        let opts = Opts::new(
            "mcp_xdp_packets_total",
            "Packets seen by the XDP program, by action (drop, pass, tx) and reason.",
        );
        IntCounterVec::new(opts, &["action", "reason"]).expect("valid metric")
    }
}

impl Collector for XdpPackets {
    fn desc(&self) -> Vec<&Desc> {
        self.template.desc()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let source = self.source.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        let Some(source) = source else { return Vec::new() };
        let samples = source();
        if samples.is_empty() {
            // The text encoder refuses a family without samples.
            return Vec::new();
        }
        let vec = Self::vec();
        for s in samples {
            vec.with_label_values(&[s.action, s.reason]).inc_by(s.packets);
        }
        vec.collect()
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

    #[test]
    fn recorded_requests_keep_their_labels() {
        let (a, b) = (Metrics::new(), Metrics::new());
        for _ in 0..3 {
            a.record_request("be", "tools/call", 200, Some(Duration::from_millis(1)));
        }
        a.record_request("-", "other", 404, None);
        b.record_request("be", "tools/call", 200, None);
        let count = |m: &Metrics, labels: &[&str]| m.requests.with_label_values(labels).get();
        assert_eq!(count(&a, &["be", "tools/call", "200"]), 3);
        assert_eq!(count(&a, &["-", "other", "404"]), 1);
        assert_eq!(count(&b, &["be", "tools/call", "200"]), 1);
        let text = String::from_utf8(a.render()).unwrap();
        assert!(text.contains(r#"mcp_request_duration_seconds_count{backend="be",method="tools/call"} 3"#), "{text}");
        // No backend, no duration series.
        assert!(!text.contains(r#"mcp_request_duration_seconds_count{backend="-""#), "{text}");
        // Past the per-thread cache size, counts still land.
        for status in 100..100 + 2 * HOT_ENTRIES as u16 {
            a.record_request("be", "ping", status, None);
        }
        a.record_request("be", "tools/call", 200, None);
        assert_eq!(count(&a, &["be", "ping", "101"]), 1);
        assert_eq!(count(&a, &["be", "tools/call", "200"]), 4);
    }

    #[test]
    fn xdp_counters_are_read_at_scrape_time() {
        let m = Metrics::new();
        let before = String::from_utf8(m.render()).unwrap();
        assert!(!before.contains("mcp_xdp_packets_total"), "{before}");
        let ebpf = if crate::ebpf::BUILT { "xdp" } else { "userspace-only" };
        assert!(before.contains(&format!("ebpf=\"{ebpf}\"")), "{before}");
        let calls = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let seen = Arc::clone(&calls);
        m.set_xdp_source(Box::new(move || {
            let n = seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            vec![XdpSample { action: "drop", reason: "blocked", packets: 10 * n }]
        }));
        let first = String::from_utf8(m.render()).unwrap();
        assert!(first.contains(r#"mcp_xdp_packets_total{action="drop",reason="blocked"} 10"#), "{first}");
        let second = String::from_utf8(m.render()).unwrap();
        assert!(second.contains(r#"mcp_xdp_packets_total{action="drop",reason="blocked"} 20"#), "{second}");
    }
}

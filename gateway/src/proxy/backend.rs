//! A backend MCP server as the data path sees it: its address, its health,
//! how busy it is, its connection budget, and its connections.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};

use http::uri::{Authority, Scheme};
use prometheus::IntGauge;
use tokio::sync::Semaphore;

use super::pool::Pool;
use crate::config::{BackendConfig, BackendTransport, Config};
use crate::http::tls::TlsError;
use crate::telemetry::Metrics;

/// One upstream MCP server.
#[derive(Debug)]
pub struct Backend {
    /// Config name; sealed into session ids.
    pub name: Arc<str>,
    /// Endpoint URL.
    pub url: http::Uri,
    /// Scheme of `url`.
    pub scheme: Scheme,
    /// Authority of `url`, also sent as `Host`.
    pub authority: Authority,
    /// `authority` as the `Host` header value (checked once, shared by every request).
    pub host_header: Option<http::HeaderValue>,
    /// Relative share of new sessions.
    pub weight: u32,
    /// Which MCP transport it speaks.
    pub transport: BackendTransport,
    /// Optional HTTP health-check path.
    pub health_check_path: Option<String>,
    healthy: AtomicBool,
    consecutive_failures: AtomicU32,
    consecutive_successes: AtomicU32,
    outstanding: AtomicUsize,
    /// `connection_pool.max_conns_per_host` as permits held for a whole exchange.
    pub permits: Arc<Semaphore>,
    healthy_gauge: IntGauge,
    outstanding_gauge: IntGauge,
    /// Its upstream connections (and, for `https://`, its TLS client).
    pub pool: Arc<Pool>,
}

impl Backend {
    fn new(cfg: &BackendConfig, max_conns: usize, metrics: &Metrics, pool: Pool) -> Self {
        let scheme = cfg.url.scheme().cloned().unwrap_or(Scheme::HTTP);
        let authority = cfg.url.authority().cloned().unwrap_or_else(|| Authority::from_static("localhost"));
        let healthy_gauge = metrics.backend_healthy.with_label_values(&[&cfg.name]);
        healthy_gauge.set(1);
        let outstanding_gauge = metrics.backend_outstanding.with_label_values(&[&cfg.name]);
        Self {
            name: Arc::from(cfg.name.as_str()),
            url: cfg.url.clone(),
            scheme,
            host_header: http::HeaderValue::from_str(authority.as_str()).ok(),
            authority,
            weight: cfg.weight.max(1),
            transport: cfg.transport,
            health_check_path: cfg.health_check_path.clone(),
            // Optimistic until the first check: a fresh gateway serves at once.
            healthy: AtomicBool::new(true),
            consecutive_failures: AtomicU32::new(0),
            consecutive_successes: AtomicU32::new(0),
            outstanding: AtomicUsize::new(0),
            permits: Arc::new(Semaphore::new(max_conns)),
            healthy_gauge,
            outstanding_gauge,
            pool: Arc::new(pool),
        }
    }

    /// Current health verdict.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Requests in flight.
    pub fn outstanding(&self) -> usize {
        self.outstanding.load(Ordering::Relaxed)
    }

    /// Record a successful check or exchange.
    pub fn record_success(&self, healthy_threshold: u32) {
        self.consecutive_failures.store(0, Ordering::Relaxed);
        let n = self.consecutive_successes.fetch_add(1, Ordering::Relaxed) + 1;
        if n >= healthy_threshold && !self.healthy.swap(true, Ordering::Relaxed) {
            self.healthy_gauge.set(1);
            tracing::info!(backend = %self.name, "backend is healthy again");
        }
    }

    /// Record a failed check or connection; returns true if this marked it down.
    pub fn record_failure(&self, unhealthy_threshold: u32, why: &str) -> bool {
        self.consecutive_successes.store(0, Ordering::Relaxed);
        let n = self.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
        if n >= unhealthy_threshold && self.healthy.swap(false, Ordering::Relaxed) {
            self.healthy_gauge.set(0);
            tracing::warn!(backend = %self.name, url = %self.url, failures = n, %why, "backend marked unhealthy");
            return true;
        }
        false
    }

    /// Count one request in flight until the guard drops.
    pub fn begin(self: &Arc<Self>) -> InFlight {
        self.outstanding.fetch_add(1, Ordering::Relaxed);
        self.outstanding_gauge.inc();
        InFlight(Arc::clone(self))
    }

    /// Upstream URI for a path-and-query on this backend.
    pub fn uri_for(&self, path_and_query: &str) -> Result<http::Uri, http::Error> {
        http::Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(path_and_query)
            .build()
    }

    /// The configured endpoint's path and query.
    pub fn endpoint_path(&self) -> &str {
        self.url.path_and_query().map(|p| p.as_str()).unwrap_or("/")
    }
}

/// Decrements the outstanding count when the exchange is over.
#[derive(Debug)]
pub struct InFlight(Arc<Backend>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.outstanding.fetch_sub(1, Ordering::Relaxed);
        self.0.outstanding_gauge.dec();
    }
}

/// Every configured backend, by position and by name.
#[derive(Debug)]
pub struct Backends {
    all: Vec<Arc<Backend>>,
    by_name: HashMap<Arc<str>, Arc<Backend>>,
}

impl Backends {
    /// Build from config; `https://` backends get their TLS client here (the PEM files
    /// of a `tls:` section are read now).
    pub fn build(config: &Config, metrics: &Metrics) -> Result<Self, TlsError> {
        let pool = &config.connection_pool;
        let mut all = Vec::with_capacity(config.backends.len());
        for b in &config.backends {
            let conns = Pool::new(b, pool, metrics)?;
            all.push(Arc::new(Backend::new(b, pool.max_conns_per_host, metrics, conns)));
        }
        let by_name = all.iter().map(|b| (Arc::clone(&b.name), Arc::clone(b))).collect();
        Ok(Self { all, by_name })
    }

    /// Build from a config whose backends have no `tls:` section (tests).
    #[cfg(test)]
    pub fn new(config: &Config, metrics: &Metrics) -> Self {
        match Self::build(config, metrics) {
            Ok(b) => b,
            Err(e) => panic!("test backends need no TLS files: {e}"),
        }
    }

    /// Look one up by name (from a session token).
    pub fn get(&self, name: &str) -> Option<&Arc<Backend>> {
        self.by_name.get(name)
    }

    /// All backends, config order.
    pub fn all(&self) -> &[Arc<Backend>] {
        &self.all
    }

    /// True if any backend is healthy.
    pub fn any_healthy(&self) -> bool {
        self.all.iter().any(|b| b.is_healthy())
    }
}

//! Shared harness: session key files, in-process gateways started from YAML
//! (127.0.0.1, port 0 for both listeners), admin/metrics readers, and a
//! bound on every test's run time.

pub mod process;
pub mod rpc;

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use mcp_gateway::RunningGateway;
use tempfile::TempDir;

/// Upper bound on any single test.
const TEST_LIMIT: Duration = Duration::from_secs(60);

/// Run a test body with a hard time limit.
pub async fn bounded<F: Future>(body: F) -> F::Output {
    tokio::time::timeout(TEST_LIMIT, body).await.expect("test exceeded its time limit")
}

/// A deterministic 64-hex-char key made of one repeated byte.
pub fn key(byte: u8) -> String {
    format!("{byte:02x}").repeat(32)
}

/// A temporary session key file.
#[derive(Debug)]
pub struct KeyFile {
    _dir: TempDir,
    /// Its path.
    pub path: PathBuf,
}

impl KeyFile {
    /// One key per line, in order (first seals, all open).
    pub fn new(keys: &[String]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("session.keys");
        std::fs::write(&path, keys.join("\n") + "\n").unwrap();
        Self { _dir: dir, path }
    }
}

/// A gateway configuration under construction.
#[derive(Debug, Clone)]
pub struct Setup {
    key_file: PathBuf,
    backends: Vec<(String, String)>,
    server: Vec<String>,
    mcp: Vec<String>,
    routing: Vec<String>,
    pool: Vec<String>,
    sessions: Vec<String>,
}

impl Setup {
    /// Listeners on 127.0.0.1:0, the given key file, no backends.
    pub fn new(keys: &KeyFile) -> Self {
        Self {
            key_file: keys.path.clone(),
            backends: Vec::new(),
            server: Vec::new(),
            mcp: Vec::new(),
            routing: Vec::new(),
            pool: Vec::new(),
            sessions: Vec::new(),
        }
    }

    /// Add a backend.
    pub fn backend(mut self, name: &str, url: &str) -> Self {
        self.backends.push((name.to_owned(), url.to_owned()));
        self
    }

    /// Add a `server.*` line, e.g. `max_request_body: 1024`.
    pub fn server(mut self, line: &str) -> Self {
        self.server.push(line.to_owned());
        self
    }

    /// Add an `mcp.*` line.
    pub fn mcp(mut self, line: &str) -> Self {
        self.mcp.push(line.to_owned());
        self
    }

    /// Fast health checks: every 200 ms, one failure marks a backend down.
    pub fn fast_health(mut self) -> Self {
        self.routing.push("health_check_interval: 200ms".into());
        self.routing.push("health_check_timeout: 500ms".into());
        self.routing.push("unhealthy_threshold: 1".into());
        self
    }

    /// Add a `sessions.*` line (besides `key_file`), e.g. `ttl: 1s`.
    pub fn sessions(mut self, line: &str) -> Self {
        self.sessions.push(line.to_owned());
        self
    }

    /// Add a `routing.*` line.
    pub fn routing(mut self, line: &str) -> Self {
        self.routing.push(line.to_owned());
        self
    }

    /// Add a `connection_pool.*` line, e.g. `max_conns_per_host: 1`.
    pub fn pool(mut self, line: &str) -> Self {
        self.pool.push(line.to_owned());
        self
    }

    /// The YAML text.
    pub fn yaml(&self) -> String {
        let section = |name: &str, lines: &[String]| {
            if lines.is_empty() {
                String::new()
            } else {
                format!("{name}:\n{}", lines.iter().map(|l| format!("  {l}\n")).collect::<String>())
            }
        };
        let mut server = vec!["host: 127.0.0.1".to_owned(), "port: 0".to_owned()];
        server.extend(self.server.iter().cloned());
        let mut sessions = vec![format!("key_file: \"{}\"", self.key_file.display())];
        sessions.extend(self.sessions.iter().cloned());
        let backends = if self.backends.is_empty() {
            "backends: []\n".to_owned()
        } else {
            let items: String = self.backends.iter().map(|(n, u)| format!("  - name: {n}\n    url: {u}\n")).collect();
            format!("backends:\n{items}")
        };
        format!(
            "{}admin:\n  host: 127.0.0.1\n  port: 0\n{}{}{}{}logging:\n  access_log: false\n{backends}",
            section("server", &server),
            section("sessions", &sessions),
            section("mcp", &self.mcp),
            section("routing", &self.routing),
            section("connection_pool", &self.pool),
        )
    }

    /// Start an in-process gateway with this configuration.
    pub async fn start(&self) -> Gw {
        let yaml = self.yaml();
        let config = mcp_gateway::config::load_str(&yaml, "test.yaml").unwrap_or_else(|e| panic!("{e}\n{yaml}"));
        let running = mcp_gateway::start(config).await.unwrap();
        Gw {
            mcp: format!("http://{}/mcp", running.data_addr()),
            base: format!("http://{}", running.data_addr()),
            admin: format!("http://{}", running.admin_addr()),
            running,
        }
    }
}

/// An in-process gateway; its tasks are aborted when it is dropped.
#[derive(Debug)]
pub struct Gw {
    /// The running gateway.
    pub running: RunningGateway,
    /// `http://ADDR/mcp`.
    pub mcp: String,
    /// `http://ADDR` of the data listener.
    pub base: String,
    /// `http://ADDR` of the admin listener.
    pub admin: String,
}

impl Gw {
    /// GET an admin path: (status, body).
    pub async fn admin_get(&self, path: &str) -> (u16, String) {
        let resp = rpc::client().get(format!("{}{path}", self.admin)).send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap())
    }

    /// The Prometheus text from `/metrics`.
    pub async fn metrics_text(&self) -> String {
        let (status, text) = self.admin_get("/metrics").await;
        assert_eq!(status, 200);
        text
    }

    /// A sample's value from `/metrics`, e.g. `mcp_x_total{reason="tampered"}`; `None` if absent.
    pub async fn metric(&self, sample: &str) -> Option<f64> {
        metric_value(&self.metrics_text().await, sample)
    }

    /// Whether the backend `name` is currently marked healthy.
    pub fn healthy(&self, name: &str) -> bool {
        self.running.metrics().backend_healthy.with_label_values(&[name]).get() == 1
    }

    /// Wait (at most 5 s) until backend `name` is marked unhealthy.
    pub async fn wait_unhealthy(&self, name: &str) {
        for _ in 0..250 {
            if !self.healthy(name) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("backend {name} was not marked unhealthy within 5 s");
    }
}

/// The value of one sample in Prometheus text, matched on its name and labels exactly.
pub fn metric_value(text: &str, sample: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(sample).and_then(|rest| rest.strip_prefix(' ')))
        .map(|v| v.trim().parse().unwrap())
}

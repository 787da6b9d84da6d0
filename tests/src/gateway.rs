//! In-process mcp-gateway replicas for the tests: a YAML config built from the test's
//! backends, a shared session key file, start/shutdown/restart.
//!
//! Replicas that share a [`SessionKey`] accept each other's session tokens, which is
//! what lets a client's requests be spread over them.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::backend::PyBackend;

/// How long a gateway may take to report ready on `/ready`.
pub const READY_TIMEOUT: Duration = Duration::from_secs(15);
/// Attempts to rebind a restarted gateway to its old port.
const REBIND_ATTEMPTS: usize = 20;

/// Errors starting or probing a gateway.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The generated YAML was rejected.
    #[error("gateway config rejected: {errors}\n--- yaml ---\n{yaml}")]
    Config {
        /// The loader's report.
        errors: String,
        /// The YAML that was loaded.
        yaml: String,
    },
    /// `mcp_gateway::start` failed.
    #[error("gateway failed to start: {0}")]
    Start(String),
    /// `/ready` never answered 200.
    #[error("gateway at {addr} not ready after {limit:?}: last answer {last}")]
    NotReady {
        /// Admin address probed.
        addr: SocketAddr,
        /// How long we waited.
        limit: Duration,
        /// The last status or error seen.
        last: String,
    },
    /// Creating the key file failed.
    #[error("session key file: {0}")]
    Key(#[source] std::io::Error),
}

/// A fresh 32-byte session key in a temporary file (64 hex chars); removed on drop.
#[derive(Debug)]
pub struct SessionKey {
    dir: PathBuf,
    path: PathBuf,
}

impl SessionKey {
    /// Generate a random key from `/dev/urandom` into a new temporary directory.
    pub fn generate() -> Result<Self, GatewayError> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("mcp-e2e-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(GatewayError::Key)?;
        let mut bytes = [0_u8; 32];
        let mut urandom = std::fs::File::open("/dev/urandom").map_err(GatewayError::Key)?;
        std::io::Read::read_exact(&mut urandom, &mut bytes).map_err(GatewayError::Key)?;
        let mut hex = String::with_capacity(65);
        for byte in bytes {
            let _ = write!(hex, "{byte:02x}");
        }
        hex.push('\n');
        let path = dir.join("session.key");
        std::fs::write(&path, hex).map_err(GatewayError::Key)?;
        Ok(Self { dir, path })
    }

    /// The key file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for SessionKey {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One `backends:` entry.
#[derive(Debug, Clone)]
pub struct BackendSpec {
    /// Backend name.
    pub name: String,
    /// Backend URL (`…/sse` marks a legacy SSE backend).
    pub url: String,
}

/// What a test gateway is configured with; rendered to YAML by [`GatewaySpec::yaml`].
#[derive(Debug, Clone)]
pub struct GatewaySpec {
    /// Backends in order.
    pub backends: Vec<BackendSpec>,
    /// Session key file shared by the replicas.
    pub key_file: PathBuf,
    /// Data-plane port (0 = any).
    pub port: u16,
    /// Extra top-level YAML appended verbatim (e.g. a `routing:` block).
    pub extra_yaml: String,
}

impl GatewaySpec {
    /// A spec with no backends yet, using `key`.
    pub fn new(key: &SessionKey) -> Self {
        Self { backends: Vec::new(), key_file: key.path().to_path_buf(), port: 0, extra_yaml: String::new() }
    }

    /// Add the running Python backends, named as they name themselves.
    #[must_use]
    pub fn with_backends(mut self, backends: &[PyBackend]) -> Self {
        self.backends.extend(backends.iter().map(|b| BackendSpec { name: b.name().to_owned(), url: b.url() }));
        self
    }

    /// Add one backend by name and URL.
    #[must_use]
    pub fn with_backend(mut self, name: &str, url: &str) -> Self {
        self.backends.push(BackendSpec { name: name.to_owned(), url: url.to_owned() });
        self
    }

    /// Listen on this data-plane port.
    #[must_use]
    pub fn on_port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// The gateway YAML for this spec.
    pub fn yaml(&self) -> String {
        let mut yaml = String::new();
        let _ = writeln!(yaml, "server:\n  host: 127.0.0.1\n  port: {}", self.port);
        let _ = writeln!(yaml, "admin:\n  host: 127.0.0.1\n  port: 0");
        let _ = writeln!(yaml, "sessions:\n  key_file: {}", yaml_quote(&self.key_file.to_string_lossy()));
        let _ = writeln!(yaml, "mcp:\n  path: /mcp\n  sse_path: /sse\n  messages_path: /messages");
        let _ = writeln!(yaml, "routing:\n  health_check_interval: 1s");
        let _ = writeln!(yaml, "backends:");
        for backend in &self.backends {
            let _ = writeln!(yaml, "  - name: {}\n    url: {}", yaml_quote(&backend.name), yaml_quote(&backend.url));
        }
        yaml.push_str(&self.extra_yaml);
        yaml
    }
}

/// A double-quoted YAML scalar.
fn yaml_quote(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

fn init_tracing() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
        let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
    });
}

/// A running in-process gateway replica.
#[derive(Debug)]
pub struct TestGateway {
    inner: Option<mcp_gateway::RunningGateway>,
    data: SocketAddr,
    admin: SocketAddr,
}

impl TestGateway {
    /// Start a gateway from `spec` and wait until `/ready` answers 200.
    pub async fn start(spec: &GatewaySpec) -> Result<Self, GatewayError> {
        let gateway = Self::start_yaml(&spec.yaml()).await?;
        gateway.wait_ready(READY_TIMEOUT).await?;
        Ok(gateway)
    }

    /// Start a gateway from raw YAML (no readiness wait).
    pub async fn start_yaml(yaml: &str) -> Result<Self, GatewayError> {
        init_tracing();
        let config = mcp_gateway::config::load_str(yaml, "e2e.yaml")
            .map_err(|errors| GatewayError::Config { errors: errors.to_string(), yaml: yaml.to_owned() })?;
        let running = mcp_gateway::start(config).await.map_err(|e| GatewayError::Start(e.to_string()))?;
        let data = running.data_addr();
        let admin = running.admin_addr();
        Ok(Self { inner: Some(running), data, admin })
    }

    /// Data-plane address.
    pub fn data_addr(&self) -> SocketAddr {
        self.data
    }

    /// Admin address (`/health`, `/ready`, `/metrics`).
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
    }

    /// The Streamable HTTP endpoint URL.
    pub fn mcp_url(&self) -> String {
        format!("http://{}/mcp", self.data)
    }

    /// The legacy SSE endpoint URL.
    pub fn sse_url(&self) -> String {
        format!("http://{}/sse", self.data)
    }

    /// Poll `/ready` on the admin listener until it answers 200, at most `limit`.
    pub async fn wait_ready(&self, limit: Duration) -> Result<(), GatewayError> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .no_proxy()
            .build()
            .map_err(|e| GatewayError::Start(e.to_string()))?;
        let url = format!("http://{}/ready", self.admin);
        let deadline = tokio::time::Instant::now() + limit;
        let mut last = String::from("no answer");
        while tokio::time::Instant::now() < deadline {
            match client.get(&url).send().await {
                Ok(response) if response.status().is_success() => return Ok(()),
                Ok(response) => last = response.status().to_string(),
                Err(err) => last = err.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(GatewayError::NotReady { addr: self.admin, limit, last })
    }

    /// Graceful shutdown.
    pub async fn shutdown(mut self) {
        if let Some(running) = self.inner.take() {
            running.shutdown().await;
        }
    }

    /// Shut down, then start a new replica from `spec` on the same data port.
    ///
    /// Retries the bind for a while (the old listener may take a moment to go away);
    /// if the port stays taken, the new replica gets any free port; compare
    /// [`TestGateway::data_addr`] with the old one to tell.
    pub async fn restart(self, spec: &GatewaySpec) -> Result<Self, GatewayError> {
        let port = self.data.port();
        self.shutdown().await;
        let same_port = spec.clone().on_port(port);
        for _ in 0..REBIND_ATTEMPTS {
            match Self::start(&same_port).await {
                Ok(gateway) => return Ok(gateway),
                Err(GatewayError::Start(_)) => tokio::time::sleep(Duration::from_millis(100)).await,
                Err(other) => return Err(other),
            }
        }
        Self::start(&spec.clone().on_port(0)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_is_64_hex_chars_and_removed_on_drop() {
        let key = SessionKey::generate().unwrap();
        let text = std::fs::read_to_string(key.path()).unwrap();
        assert_eq!(text.trim().len(), 64);
        assert!(text.trim().chars().all(|c| c.is_ascii_hexdigit()));
        let other = SessionKey::generate().unwrap();
        assert_ne!(std::fs::read_to_string(other.path()).unwrap(), text);
        let path = key.path().to_path_buf();
        drop(key);
        assert!(!path.exists());
    }

    #[test]
    fn yaml_lists_backends_and_key() {
        let key = SessionKey::generate().unwrap();
        let spec = GatewaySpec::new(&key)
            .with_backend("b1", "http://127.0.0.1:1/mcp")
            .with_backend("s1", "http://127.0.0.1:2/sse")
            .on_port(4242);
        let yaml = spec.yaml();
        assert!(yaml.contains("port: 4242"));
        assert!(yaml.contains("name: \"b1\"\n    url: \"http://127.0.0.1:1/mcp\""));
        assert!(yaml.contains("url: \"http://127.0.0.1:2/sse\""));
        assert!(yaml.contains(&key.path().to_string_lossy().into_owned()));
    }

    #[test]
    fn generated_yaml_is_accepted_by_the_config_loader() {
        let key = SessionKey::generate().unwrap();
        let spec = GatewaySpec::new(&key)
            .with_backend("b1", "http://127.0.0.1:1/mcp")
            .with_backend("s1", "http://127.0.0.1:2/sse");
        let config = mcp_gateway::config::load_str(&spec.yaml(), "e2e.yaml");
        assert!(config.is_ok(), "{}", config.err().map(|e| e.to_string()).unwrap_or_default());
    }
}

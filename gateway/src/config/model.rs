//! The validated configuration: what every other module reads.
//!
//! The loader (`config::load`) turns a YAML file into this, reporting every
//! error with file, line and key. Defaults live in `Default` impls here so the
//! embedded default config, the loader and the CLI overrides agree.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The whole gateway configuration, validated.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config {
    /// Data-plane listener (`server.*`).
    pub server: ServerConfig,
    /// Operations listener (`admin.*`): `/health`, `/ready`, `/metrics`.
    pub admin: AdminConfig,
    /// MCP endpoint paths and stream behaviour (`mcp.*`).
    pub mcp: McpConfig,
    /// Session token sealing (`sessions.*`).
    pub sessions: SessionsConfig,
    /// Upstream connection pool (`connection_pool.*`).
    pub connection_pool: PoolConfig,
    /// Backend selection and health checks (`routing.*`).
    pub routing: RoutingConfig,
    /// Upstream MCP servers (`backends`).
    pub backends: Vec<BackendConfig>,
    /// Log level and format (`logging.*`).
    pub logging: LoggingConfig,
    /// Authentication and authorization (`auth.*`); off by default.
    pub auth: super::auth::AuthConfig,
    /// Edge protections: Origin, rate limits, request limits, admin token (`security.*`).
    pub security: super::auth::SecurityConfig,
    /// The eBPF/XDP data plane (`xdp.*`); off by default.
    pub xdp: super::xdp::XdpConfig,
}

/// `server.*`: the data-plane listener.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    /// `server.host` + `server.port` (default `0.0.0.0:8443`).
    pub listen: SocketAddr,
    /// `server.read_timeout`: limit for receiving a whole request (headers and body) → 408.
    pub read_timeout: Duration,
    /// `server.write_timeout`: limit for a client to accept a pending write before it is dropped.
    pub write_timeout: Duration,
    /// `server.keep_alive`: HTTP/1.1 keep-alive and TCP keepalive probes on accepted sockets.
    pub keep_alive: bool,
    /// `server.tcp_keepalive`: idle time before TCP keepalive probes.
    pub tcp_keepalive: Duration,
    /// `server.backlog`: listen(2) backlog.
    pub backlog: u32,
    /// `server.reuse_port`: SO_REUSEPORT, so several processes can share the port.
    pub reuse_port: bool,
    /// `server.max_request_body`: bytes; larger requests get 413.
    pub max_request_body: u64,
    /// `server.shutdown_timeout`: drain deadline after SIGTERM.
    pub shutdown_timeout: Duration,
    /// `server.drain_delay`: after SIGTERM, how long `/ready` answers 503 while the listeners
    /// still accept, so a load balancer's readiness check takes the node out before the drain.
    pub drain_delay: Duration,
    /// `server.tls`: absent means plain HTTP.
    pub tls: Option<TlsConfig>,
}

/// `server.tls.*`: PEM files for the data listener.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsConfig {
    /// `server.tls.cert_file`: certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// `server.tls.key_file`: private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// `server.tls.client_auth`: whether clients present a certificate (default `none`).
    pub client_auth: ClientAuth,
    /// `server.tls.client_ca_file`: CA bundle (PEM) client certificates must chain to;
    /// required unless `client_auth` is `none`.
    pub client_ca_file: Option<PathBuf>,
}

/// `server.tls.client_auth`: client-certificate authentication on the data listener.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ClientAuth {
    /// No certificate is asked for.
    #[default]
    None,
    /// A certificate is asked for; a valid one authenticates the caller (issuer `x509`, subject = CN).
    Optional,
    /// A handshake without a certificate that chains to `client_ca_file` fails.
    Required,
}

impl ClientAuth {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Optional => "optional",
            Self::Required => "required",
        }
    }
}

/// `admin.*`: the operations listener.
#[derive(Debug, Clone, PartialEq)]
pub struct AdminConfig {
    /// `admin.host` + `admin.port` (default `0.0.0.0:9090`).
    pub listen: SocketAddr,
}

/// `mcp.*`: endpoint paths and stream behaviour.
#[derive(Debug, Clone, PartialEq)]
pub struct McpConfig {
    /// `mcp.path`: the Streamable HTTP endpoint (default `/mcp`).
    pub path: String,
    /// `mcp.sse_path`: legacy HTTP+SSE stream endpoint (default `/sse`).
    pub sse_path: String,
    /// `mcp.messages_path`: legacy HTTP+SSE POST endpoint (default `/messages`).
    pub messages_path: String,
    /// `mcp.sse_keepalive`: idle interval after which a `: keepalive` comment is sent on SSE streams.
    pub sse_keepalive: Duration,
}

/// `sessions.*`: how gateway session ids are sealed.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionsConfig {
    /// `sessions.key_file`: one 64-hex-char key per line; first seals, all open.
    /// `None` = generate an ephemeral key at start (logged loudly).
    pub key_file: Option<PathBuf>,
    /// `sessions.ttl`: a session id older than this is rejected with 404 `expired`.
    pub ttl: Duration,
}

/// `connection_pool.*`: upstream connections, per backend.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolConfig {
    /// `connection_pool.enabled`: reuse upstream connections (default true).
    pub enabled: bool,
    /// `connection_pool.max_idle_conns`: idle connections kept per backend.
    pub max_idle_conns: usize,
    /// `connection_pool.max_conns_per_host`: concurrent upstream requests per backend.
    pub max_conns_per_host: usize,
    /// `connection_pool.idle_timeout`: idle upstream connections are closed after this.
    pub idle_timeout: Duration,
    /// `connection_pool.connect_timeout`: TCP (+TLS) connect limit.
    pub connect_timeout: Duration,
    /// `connection_pool.request_timeout`: limit for a backend's response headers (and whole JSON body).
    pub request_timeout: Duration,
    /// `connection_pool.acquire_timeout`: how long a request waits for a free slot
    /// when `max_conns_per_host` is reached, before 503 `pool_exhausted`.
    pub acquire_timeout: Duration,
}

/// `routing.*`: backend selection and health.
#[derive(Debug, Clone, PartialEq)]
pub struct RoutingConfig {
    /// `routing.health_check_interval`.
    pub health_check_interval: Duration,
    /// `routing.health_check_timeout`.
    pub health_check_timeout: Duration,
    /// `routing.unhealthy_threshold`: consecutive failures before a backend is marked down.
    pub unhealthy_threshold: u32,
    /// `routing.healthy_threshold`: consecutive successes before it is marked up again.
    pub healthy_threshold: u32,
}

/// Which MCP HTTP transport a backend speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BackendTransport {
    /// Streamable HTTP (2025-03-26 and later): one endpoint, POST/GET/DELETE.
    StreamableHttp,
    /// Legacy HTTP+SSE (2024-11-05): `GET /sse` plus an announced POST endpoint.
    Sse,
}

/// One entry of `backends`.
#[derive(Debug, Clone, PartialEq)]
pub struct BackendConfig {
    /// `name`: unique, `[A-Za-z0-9._-]{1,64}`; sealed into session ids, so renaming a backend ends its sessions.
    pub name: String,
    /// `url`: `http(s)://host:port/path` of the MCP endpoint (or SSE endpoint).
    pub url: http::Uri,
    /// `weight`: relative share of new sessions (1..=1000, default 1).
    pub weight: u32,
    /// `transport`: explicit, or inferred from `url` (path ending in `/sse` → `Sse`).
    pub transport: BackendTransport,
    /// `health_check_path`: optional HTTP GET path for active checks; absent = TCP connect check.
    pub health_check_path: Option<String>,
    /// `http2`: speak HTTP/2 to this backend: prior knowledge (h2c) for `http://`, ALPN `h2`
    /// only for `https://`. Default false: HTTP/1.1 for `http://`, ALPN choice for `https://`.
    pub http2: bool,
    /// `tls`: trust and client certificate for an `https://` backend; absent = native roots, no client cert.
    pub tls: Option<BackendTls>,
}

/// `backends[].tls.*`: TLS (optionally mutual) towards one `https://` backend.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackendTls {
    /// `ca_file`: PEM bundle trusted instead of the system roots.
    pub ca_file: Option<PathBuf>,
    /// `cert_file` + `key_file`: the client certificate chain and key presented to the backend.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// `server_name`: the name verified in (and sent as SNI for) the backend's certificate,
    /// instead of the URL's host.
    pub server_name: Option<String>,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// `logging.*`.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggingConfig {
    /// `logging.level`: a `tracing` filter directive, e.g. `info` or `mcp_gateway=debug`.
    /// `LOG_LEVEL` / `RUST_LOG` override it.
    pub level: String,
    /// `logging.format`: `text` or `json`. `LOG_FORMAT` overrides it.
    pub format: LogFormat,
    /// `logging.access_log`: one line per request at info level (default true).
    pub access_log: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 8443)),
            read_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(60),
            keep_alive: true,
            tcp_keepalive: Duration::from_secs(60),
            backlog: 1024,
            reuse_port: true,
            max_request_body: 4 * 1024 * 1024,
            shutdown_timeout: Duration::from_secs(30),
            drain_delay: Duration::ZERO,
            tls: None,
        }
    }
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self { listen: SocketAddr::from(([0, 0, 0, 0], 9090)) }
    }
}

impl Default for McpConfig {
    fn default() -> Self {
        Self {
            path: "/mcp".into(),
            sse_path: "/sse".into(),
            messages_path: "/messages".into(),
            sse_keepalive: Duration::from_secs(15),
        }
    }
}

impl Default for SessionsConfig {
    fn default() -> Self {
        Self { key_file: None, ttl: Duration::from_secs(24 * 3600) }
    }
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            max_idle_conns: 100,
            max_conns_per_host: 512,
            idle_timeout: Duration::from_secs(90),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(300),
            acquire_timeout: Duration::from_secs(5),
        }
    }
}

impl Default for RoutingConfig {
    fn default() -> Self {
        Self {
            health_check_interval: Duration::from_secs(10),
            health_check_timeout: Duration::from_secs(5),
            unhealthy_threshold: 3,
            healthy_threshold: 1,
        }
    }
}

impl Default for LoggingConfig {
    fn default() -> Self {
        Self { level: "info".into(), format: LogFormat::Text, access_log: true }
    }
}

impl BackendTransport {
    /// The transport implied by a URL when none is configured.
    pub fn infer(url: &http::Uri) -> Self {
        if url.path().trim_end_matches('/').ends_with("/sse") { Self::Sse } else { Self::StreamableHttp }
    }

    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::StreamableHttp => "streamable-http",
            Self::Sse => "sse",
        }
    }
}

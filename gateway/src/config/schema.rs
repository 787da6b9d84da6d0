//! The `gateway.yaml` schema: walks the YAML tree section by section into a
//! [`Config`], starting from the defaults and recording every error.

use std::net::SocketAddr;

use super::backend::read_backends;
use super::model::{
    AdminConfig, ClientAuth, Config, LogFormat, LoggingConfig, McpConfig, PoolConfig, RoutingConfig, ServerConfig,
    SessionsConfig, TlsConfig,
};
use super::tree::{Node, Pos};
use super::walk::{Section, Walker};

/// Top-level keys.
pub(super) const TOP_KEYS: &[&str] = &[
    "server",
    "admin",
    "mcp",
    "sessions",
    "connection_pool",
    "routing",
    "backends",
    "logging",
    "auth",
    "security",
    "xdp",
];
/// `server.*` keys.
pub(super) const SERVER_KEYS: &[&str] = &[
    "host",
    "port",
    "read_timeout",
    "write_timeout",
    "keep_alive",
    "tcp_keepalive",
    "backlog",
    "reuse_port",
    "max_request_body",
    "shutdown_timeout",
    "drain_delay",
    "tls",
];
/// `server.tls.*` keys.
pub(super) const TLS_KEYS: &[&str] = &["cert_file", "key_file", "client_auth", "client_ca_file"];
/// `admin.*` keys.
pub(super) const ADMIN_KEYS: &[&str] = &["host", "port"];
/// `mcp.*` keys.
pub(super) const MCP_KEYS: &[&str] = &["path", "sse_path", "messages_path", "sse_keepalive"];
/// `sessions.*` keys.
pub(super) const SESSIONS_KEYS: &[&str] = &["key_file", "ttl"];
/// `connection_pool.*` keys.
pub(super) const POOL_KEYS: &[&str] = &[
    "enabled",
    "max_idle_conns",
    "max_conns_per_host",
    "idle_timeout",
    "connect_timeout",
    "request_timeout",
    "acquire_timeout",
];
/// `routing.*` keys.
pub(super) const ROUTING_KEYS: &[&str] =
    &["health_check_interval", "health_check_timeout", "unhealthy_threshold", "healthy_threshold"];
/// `logging.*` keys.
pub(super) const LOGGING_KEYS: &[&str] = &["level", "format", "access_log"];

const LEVELS: &[&str] = &["trace", "debug", "info", "warn", "error", "off"];
const U32_MAX: u64 = u32::MAX as u64;

/// Builds a [`Config`] from the document root, recording errors in `w`.
pub(super) fn build(w: &mut Walker<'_>, root: Option<&Node>) -> Config {
    let mut cfg = Config::default();
    let Some(top) = w.section(root, "", TOP_KEYS) else { return cfg };
    let server_pos = server(w, top.get("server"), &mut cfg.server);
    let admin_pos = admin(w, top.get("admin"), &mut cfg.admin);
    if listeners_clash(cfg.server.listen, cfg.admin.listen) {
        let message = format!(
            "the admin listener {} clashes with the server listener {}; use a different port",
            cfg.admin.listen, cfg.server.listen
        );
        let (pos, key) = match (admin_pos, server_pos) {
            (Some(pos), _) => (pos, "admin.port"),
            (None, Some(pos)) => (pos, "server.port"),
            (None, None) => (Pos { line: 0, column: 0 }, "admin.port"),
        };
        w.error(pos, key, message);
    }
    mcp(w, top.get("mcp"), &mut cfg.mcp);
    sessions(w, top.get("sessions"), &mut cfg.sessions);
    pool(w, top.get("connection_pool"), &mut cfg.connection_pool);
    routing(w, top.get("routing"), &mut cfg.routing);
    cfg.backends = read_backends(w, top.get("backends"));
    logging(w, top.get("logging"), &mut cfg.logging);
    let names: Vec<&str> = cfg.backends.iter().map(|b| b.name.as_str()).collect();
    let client_certs = cfg.server.tls.as_ref().is_some_and(|t| t.client_auth != ClientAuth::None);
    cfg.auth = super::auth_schema::auth(w, top.get("auth"), &names, client_certs);
    cfg.security = super::security_schema::security(w, top.get("security"));
    cfg.xdp = super::xdp::read_xdp(w, top.get("xdp"));
    cfg
}

/// Whether two listeners would fight over one port (port 0 never clashes).
pub(super) fn listeners_clash(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() != 0 && a.port() == b.port() && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

/// Reads `host` and `port` into `listen`; returns where they were written, if anywhere.
fn listen(w: &mut Walker<'_>, section: &Section<'_>, listen: &mut SocketAddr) -> Option<Pos> {
    let mut ip = listen.ip();
    let mut port = listen.port();
    w.field(section, "host", &mut ip, Walker::ip);
    w.field(section, "port", &mut port, Walker::port);
    *listen = SocketAddr::new(ip, port);
    section.get("port").or(section.get("host")).map(|n| n.pos)
}

fn server(w: &mut Walker<'_>, node: Option<&Node>, s: &mut ServerConfig) -> Option<Pos> {
    let sec = w.section(node, "server", SERVER_KEYS)?;
    let pos = listen(w, &sec, &mut s.listen);
    w.field(&sec, "read_timeout", &mut s.read_timeout, Walker::timeout);
    w.field(&sec, "write_timeout", &mut s.write_timeout, Walker::timeout);
    w.field(&sec, "keep_alive", &mut s.keep_alive, Walker::boolean);
    w.field(&sec, "tcp_keepalive", &mut s.tcp_keepalive, Walker::interval);
    w.field(&sec, "backlog", &mut s.backlog, |w, n, k| w.int(n, k, 1, U32_MAX));
    w.field(&sec, "reuse_port", &mut s.reuse_port, Walker::boolean);
    w.field(&sec, "max_request_body", &mut s.max_request_body, Walker::size);
    w.field(&sec, "shutdown_timeout", &mut s.shutdown_timeout, Walker::timeout);
    w.field(&sec, "drain_delay", &mut s.drain_delay, Walker::delay);
    if let Some(tls_node) = sec.get("tls") {
        s.tls = tls(w, tls_node);
    }
    pos
}

/// `server.tls`: both files required and readable; `client_ca_file` goes with `client_auth`.
fn tls(w: &mut Walker<'_>, node: &Node) -> Option<TlsConfig> {
    let sec = w.section(Some(node), "server.tls", TLS_KEYS)?;
    let file = |w: &mut Walker<'_>, name: &str| match sec.get(name) {
        Some(n) => w.existing_file(n, &sec.key(name)),
        None => {
            w.error(node.pos, &sec.key(name), "required when server.tls is set (PEM file)");
            None
        }
    };
    let cert_file = file(w, "cert_file");
    let key_file = file(w, "key_file");
    let mut client_auth = ClientAuth::None;
    w.field(&sec, "client_auth", &mut client_auth, |w, n, k| {
        let text = w.scalar(n, k, "none, optional or required")?;
        match text.trim().to_ascii_lowercase().as_str() {
            "none" => Some(ClientAuth::None),
            "optional" => Some(ClientAuth::Optional),
            "required" => Some(ClientAuth::Required),
            _ => {
                w.error(n.pos, k, format!("expected none, optional or required, got {text:?}"));
                None
            }
        }
    });
    let mut client_ca_file = None;
    w.field(&sec, "client_ca_file", &mut client_ca_file, |w, n, k| w.existing_file(n, k).map(Some));
    match (client_auth, sec.get("client_ca_file")) {
        (ClientAuth::None, Some(n)) => {
            let message = "has no effect unless client_auth is optional or required";
            w.error(n.pos, &sec.key("client_ca_file"), message);
        }
        (ClientAuth::Optional | ClientAuth::Required, None) => {
            let pos = sec.get("client_auth").map_or(node.pos, |n| n.pos);
            let message = format!(
                "required when client_auth is {} (PEM bundle of the CAs client certificates chain to)",
                client_auth.as_str()
            );
            w.error(pos, &sec.key("client_ca_file"), message);
        }
        _ => {}
    }
    Some(TlsConfig { cert_file: cert_file?, key_file: key_file?, client_auth, client_ca_file })
}

fn admin(w: &mut Walker<'_>, node: Option<&Node>, a: &mut AdminConfig) -> Option<Pos> {
    let sec = w.section(node, "admin", ADMIN_KEYS)?;
    listen(w, &sec, &mut a.listen)
}

fn mcp(w: &mut Walker<'_>, node: Option<&Node>, m: &mut McpConfig) {
    let Some(sec) = w.section(node, "mcp", MCP_KEYS) else { return };
    w.field(&sec, "path", &mut m.path, Walker::http_path);
    w.field(&sec, "sse_path", &mut m.sse_path, Walker::http_path);
    w.field(&sec, "messages_path", &mut m.messages_path, Walker::http_path);
    w.field(&sec, "sse_keepalive", &mut m.sse_keepalive, Walker::interval);
    let paths = [("path", &m.path), ("sse_path", &m.sse_path), ("messages_path", &m.messages_path)];
    for (j, (later, later_value)) in paths.iter().enumerate() {
        for (earlier, earlier_value) in &paths[..j] {
            if later_value != earlier_value {
                continue;
            }
            // At least one of the two was set in the file (the defaults differ); point at it.
            let (name, other) = if sec.get(later).is_some() { (later, earlier) } else { (earlier, later) };
            if let Some(n) = sec.get(name) {
                let message = format!("must differ from mcp.{other} (both are {later_value:?})");
                w.error(n.pos, &sec.key(name), message);
            }
        }
    }
}

fn sessions(w: &mut Walker<'_>, node: Option<&Node>, s: &mut SessionsConfig) {
    let Some(sec) = w.section(node, "sessions", SESSIONS_KEYS) else { return };
    w.field(&sec, "key_file", &mut s.key_file, |w, n, k| w.existing_file(n, k).map(Some));
    w.field(&sec, "ttl", &mut s.ttl, Walker::interval);
}

fn pool(w: &mut Walker<'_>, node: Option<&Node>, p: &mut PoolConfig) {
    let Some(sec) = w.section(node, "connection_pool", POOL_KEYS) else { return };
    w.field(&sec, "enabled", &mut p.enabled, Walker::boolean);
    w.field(&sec, "max_idle_conns", &mut p.max_idle_conns, |w, n, k| w.int(n, k, 0, U32_MAX));
    w.field(&sec, "max_conns_per_host", &mut p.max_conns_per_host, |w, n, k| w.int(n, k, 1, U32_MAX));
    w.field(&sec, "idle_timeout", &mut p.idle_timeout, Walker::timeout);
    w.field(&sec, "connect_timeout", &mut p.connect_timeout, Walker::timeout);
    w.field(&sec, "request_timeout", &mut p.request_timeout, Walker::timeout);
    w.field(&sec, "acquire_timeout", &mut p.acquire_timeout, Walker::timeout);
}

fn routing(w: &mut Walker<'_>, node: Option<&Node>, r: &mut RoutingConfig) {
    let Some(sec) = w.section(node, "routing", ROUTING_KEYS) else { return };
    w.field(&sec, "health_check_interval", &mut r.health_check_interval, Walker::interval);
    w.field(&sec, "health_check_timeout", &mut r.health_check_timeout, Walker::timeout);
    w.field(&sec, "unhealthy_threshold", &mut r.unhealthy_threshold, |w, n, k| w.int(n, k, 1, U32_MAX));
    w.field(&sec, "healthy_threshold", &mut r.healthy_threshold, |w, n, k| w.int(n, k, 1, U32_MAX));
}

fn logging(w: &mut Walker<'_>, node: Option<&Node>, l: &mut LoggingConfig) {
    let Some(sec) = w.section(node, "logging", LOGGING_KEYS) else { return };
    w.field(&sec, "level", &mut l.level, |w, n, k| {
        let level = w.string(n, k)?;
        check_level(&level).map_err(|m| w.error(n.pos, k, m)).ok().map(|()| level)
    });
    w.field(&sec, "format", &mut l.format, |w, n, k| {
        let text = w.scalar(n, k, "text or json")?;
        match text.trim().to_ascii_lowercase().as_str() {
            "text" => Some(LogFormat::Text),
            "json" => Some(LogFormat::Json),
            _ => {
                w.error(n.pos, k, format!("expected text or json, got {text:?}"));
                None
            }
        }
    });
    w.field(&sec, "access_log", &mut l.access_log, Walker::boolean);
}

/// A `tracing` filter: a bare word must be a level (a typo like `debgu` would
/// otherwise silently become a target name); directives must parse.
fn check_level(level: &str) -> Result<(), String> {
    let trimmed = level.trim();
    let bare = !trimmed.contains(['=', ',', ':', '[']);
    if bare && !LEVELS.contains(&trimmed.to_ascii_lowercase().as_str()) {
        let hint = super::errors::closest(trimmed, LEVELS).map(|l| format!("did you mean {l:?}? ")).unwrap_or_default();
        return Err(format!(
            "unknown log level {trimmed:?}; {hint}use one of {} or a filter such as mcp_gateway=debug",
            LEVELS.join(", ")
        ));
    }
    tracing_subscriber::EnvFilter::builder()
        .parse(trimmed)
        .map(|_| ())
        .map_err(|e| format!("invalid log filter {trimmed:?}: {e}"))
}

//! Loading whole files: the embedded default, a config with every key, file paths.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::schema::{
    ADMIN_KEYS, LOGGING_KEYS, MCP_KEYS, POOL_KEYS, ROUTING_KEYS, SERVER_KEYS, SESSIONS_KEYS, TLS_KEYS, TOP_KEYS,
};
use super::*;

/// A fresh, empty directory for one test.
pub(super) fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mcp-gateway-config-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn embedded_default_loads_to_default() {
    let cfg = load_str(DEFAULT_CONFIG_YAML, "default.yaml").unwrap();
    assert_eq!(cfg, Config::default());
}

#[test]
fn embedded_default_documents_every_key() {
    let backend_keys = super::backend::BACKEND_KEYS;
    let all =
        [TOP_KEYS, SERVER_KEYS, TLS_KEYS, ADMIN_KEYS, MCP_KEYS, SESSIONS_KEYS, POOL_KEYS, ROUTING_KEYS, LOGGING_KEYS];
    for key in all.iter().flat_map(|k| k.iter()).chain(backend_keys) {
        let pattern = format!("{key}:");
        let line = DEFAULT_CONFIG_YAML.lines().find(|l| l.trim_start_matches([' ', '#', '-']).starts_with(&pattern));
        let line = line.unwrap_or_else(|| panic!("default.yaml does not show {key}"));
        assert!(line.contains(" # ") || line.ends_with(':'), "key {key} has no comment: {line}");
    }
}

#[test]
fn empty_and_comment_only_files_are_defaults() {
    for text in ["", "\n", "# nothing\n", "---\n", "server:\nbackends:\n"] {
        assert_eq!(load_str(text, "t.yaml").unwrap(), Config::default(), "{text:?}");
    }
}

const FULL: &str = r#"
server:
  host: 127.0.0.1
  port: 0
  read_timeout: 90s
  write_timeout: 1m30s
  keep_alive: "false"
  tcp_keepalive: 2m
  backlog: 4096
  reuse_port: false
  max_request_body: 512KiB
  shutdown_timeout: 1h
  tls:
    cert_file: certs/tls.crt
    key_file: certs/tls.key
admin:
  host: "::1"
  port: 9191
mcp:
  path: /v1/mcp
  sse_path: /v1/sse
  messages_path: /v1/messages
  sse_keepalive: 500ms
sessions:
  key_file: session.keys
  ttl: 2d
connection_pool:
  enabled: false
  max_idle_conns: 0
  max_conns_per_host: 50
  idle_timeout: 30
  connect_timeout: 2s
  request_timeout: 10m
  acquire_timeout: 250ms
routing:
  health_check_interval: 15s
  health_check_timeout: 10s
  unhealthy_threshold: 5
  healthy_threshold: 2
backends:
  - name: tools-1
    url: http://127.0.0.1:8080/mcp
    weight: 1000
    transport: sse
    health_check_path: /healthz
    http2: true
  - name: legacy.sse_2
    url: https://legacy.internal/sse
  - name: bare
    url: http://10.1.2.3:9000
logging:
  level: mcp_gateway=debug,info
  format: json
  access_log: false
"#;

#[test]
fn full_config_with_every_key() {
    let dir = temp_dir("full");
    std::fs::create_dir_all(dir.join("certs")).unwrap();
    for f in ["certs/tls.crt", "certs/tls.key", "session.keys"] {
        std::fs::write(dir.join(f), "x").unwrap();
    }
    let path = dir.join("gateway.yaml");
    std::fs::write(&path, FULL).unwrap();
    let cfg = load_file(&path).unwrap();

    let s = &cfg.server;
    assert_eq!(s.listen, "127.0.0.1:0".parse::<SocketAddr>().unwrap());
    assert_eq!(s.read_timeout, Duration::from_secs(90));
    assert_eq!(s.write_timeout, Duration::from_secs(90));
    assert!(!s.keep_alive);
    assert_eq!(s.tcp_keepalive, Duration::from_secs(120));
    assert_eq!(s.backlog, 4096);
    assert!(!s.reuse_port);
    assert_eq!(s.max_request_body, 512 * 1024);
    assert_eq!(s.shutdown_timeout, Duration::from_secs(3600));
    let tls = s.tls.as_ref().unwrap();
    assert_eq!(tls.cert_file, dir.join("certs/tls.crt"), "relative to the config file's directory");
    assert_eq!(tls.key_file, dir.join("certs/tls.key"));
    assert_eq!(cfg.admin.listen, "[::1]:9191".parse::<SocketAddr>().unwrap());
    assert_eq!(cfg.mcp.path, "/v1/mcp");
    assert_eq!(cfg.mcp.sse_path, "/v1/sse");
    assert_eq!(cfg.mcp.messages_path, "/v1/messages");
    assert_eq!(cfg.mcp.sse_keepalive, Duration::from_millis(500));
    assert_eq!(cfg.sessions.key_file, Some(dir.join("session.keys")));
    assert_eq!(cfg.sessions.ttl, Duration::from_secs(2 * 86_400));
    let p = &cfg.connection_pool;
    assert!(!p.enabled);
    assert_eq!((p.max_idle_conns, p.max_conns_per_host), (0, 50));
    assert_eq!(p.idle_timeout, Duration::from_secs(30));
    assert_eq!(p.connect_timeout, Duration::from_secs(2));
    assert_eq!(p.request_timeout, Duration::from_secs(600));
    assert_eq!(p.acquire_timeout, Duration::from_millis(250));
    let r = &cfg.routing;
    assert_eq!(r.health_check_interval, Duration::from_secs(15));
    assert_eq!(r.health_check_timeout, Duration::from_secs(10));
    assert_eq!((r.unhealthy_threshold, r.healthy_threshold), (5, 2));
    assert_eq!(cfg.logging.level, "mcp_gateway=debug,info");
    assert_eq!(cfg.logging.format, LogFormat::Json);
    assert!(!cfg.logging.access_log);

    let b = &cfg.backends;
    assert_eq!(b.len(), 3);
    assert_eq!(b[0].name, "tools-1");
    assert_eq!(b[0].url, "http://127.0.0.1:8080/mcp");
    assert_eq!(b[0].weight, 1000);
    assert_eq!(b[0].transport, BackendTransport::Sse, "explicit transport wins");
    assert_eq!(b[0].health_check_path.as_deref(), Some("/healthz"));
    assert!(b[0].http2 && !b[1].http2);
    assert_eq!(b[1].transport, BackendTransport::Sse, "inferred from /sse");
    assert_eq!((b[1].weight, b[1].health_check_path.as_deref()), (1, None));
    assert_eq!(b[2].transport, BackendTransport::StreamableHttp);
    assert_eq!(b[2].url.path(), "/");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn operator_spellings_from_the_seeds() {
    let cfg = load_str("server:\n  port: \"8444\"\n  keep_alive: \"true\"\n  read_timeout: 300s\n", "t.yaml").unwrap();
    assert_eq!(cfg.server.listen.port(), 8444);
    assert!(cfg.server.keep_alive);
    assert_eq!(cfg.server.read_timeout, Duration::from_secs(300));
    let cfg = load_str("connection_pool: {enabled: true, max_idle_conns: 100, max_conns_per_host: 50}\n", "t").unwrap();
    assert_eq!(cfg.connection_pool.max_conns_per_host, 50);
}

#[test]
fn load_str_resolves_against_current_directory() {
    // `cargo test` runs in the package directory, where Cargo.toml exists.
    let cfg = load_str("sessions:\n  key_file: Cargo.toml\n", "t.yaml").unwrap();
    assert_eq!(cfg.sessions.key_file.as_deref(), Some(Path::new("Cargo.toml")));
}

#[test]
fn unreadable_config_file_is_one_error_at_line_zero() {
    let dir = temp_dir("missing");
    let path = dir.join("nope.yaml");
    let errs = load_file(&path).unwrap_err();
    assert_eq!(errs.to_string(), format!("{}:0:0: config file not found", path.display()));
    let bad = dir.join("bad.yaml");
    std::fs::write(&bad, [0xff, 0xfe, b'\n']).unwrap();
    let errs = load_file(&bad).unwrap_err();
    assert_eq!(errs.0[0].message, "config file is not valid UTF-8");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn load_file_reports_errors_with_its_path() {
    let dir = temp_dir("errpath");
    let path = dir.join("gateway.yaml");
    std::fs::write(&path, "server:\n  port: abc\n").unwrap();
    let errs = load_file(&path).unwrap_err();
    assert_eq!(errs.0.len(), 1);
    assert_eq!(errs.0[0].file, path.display().to_string());
    assert_eq!((errs.0[0].line, errs.0[0].column), (2, 9));
    std::fs::remove_dir_all(&dir).unwrap();
}

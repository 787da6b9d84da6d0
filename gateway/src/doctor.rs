//! `mcp-gateway doctor`: the checks an operator would otherwise run by hand
//! from a troubleshooting guide, in one command. Each check prints one line
//! (`ok`, `warn` or `FAIL`) with what to do about it.
//!
//! Checks, in order: session keys, TLS files, whether the listen ports are
//! free, the admin token and `auth.*` (see `doctor_auth.rs`: keys load, each
//! issuer's JWKS is fetched once and judged, the resource URL, the challenge
//! clients see), then per backend: its `tls:` files (CA bundle, client certificate
//! and key parse and match), TCP reachability and a real MCP handshake
//! (`initialize` for Streamable HTTP, the `endpoint` event for legacy SSE),
//! reporting the protocol version and whether the backend issues sessions.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, header};
use http_body_util::{BodyExt, Full};

use std::sync::Arc;

use crate::config::{BackendConfig, BackendTransport, Config};
use crate::proxy::client;
use crate::proxy::pool::{Pool, PoolError, PooledBody};

#[path = "doctor_auth.rs"]
mod auth;

/// Outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Fine.
    Ok,
    /// Works, but something deserves attention.
    Warn,
    /// Broken.
    Fail,
}

/// One line of the report.
#[derive(Debug, Clone)]
pub struct Finding {
    /// Verdict.
    pub verdict: Verdict,
    /// What was checked.
    pub check: String,
    /// What was found, and what to do.
    pub detail: String,
}

/// The protocol version the probe offers.
const PROBE_VERSION: &str = "2025-06-18";

/// Run every check against `cfg`.
pub async fn run(cfg: &Config) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut add = |verdict, check: &str, detail: String| out.push(Finding { verdict, check: check.into(), detail });
    match &cfg.sessions.key_file {
        None => add(
            Verdict::Warn,
            "session keys",
            "none configured: an ephemeral key is generated at start, so sessions end on restart and do not span \
             replicas; create one with `mcp-gateway keygen > session.keys` and set sessions.key_file"
                .into(),
        ),
        Some(p) => match crate::session::keys::SessionKeys::load(p) {
            Ok(k) => add(Verdict::Ok, "session keys", format!("{} key(s) in {}", k.len(), p.display())),
            Err(e) => add(Verdict::Fail, "session keys", e.to_string()),
        },
    }
    if let Some(tls) = &cfg.server.tls {
        match crate::http::tls::server_config(tls) {
            Ok(_) => add(Verdict::Ok, "tls", format!("certificate {} loads", tls.cert_file.display())),
            Err(e) => add(Verdict::Fail, "tls", e.to_string()),
        }
    }
    for (what, addr) in [("server listen", cfg.server.listen), ("admin listen", cfg.admin.listen)] {
        match std::net::TcpListener::bind(addr) {
            Ok(_) => add(Verdict::Ok, what, format!("{addr} is free")),
            Err(e) => add(
                Verdict::Warn,
                what,
                format!(
                    "{addr} cannot be bound now ({e}); is another gateway running? (`ss -tlnp | grep {}`)",
                    addr.port()
                ),
            ),
        }
    }
    if cfg.backends.is_empty() {
        add(Verdict::Fail, "backends", "none configured: add `backends:` to the config or --backend NAME=URL".into());
    }
    let client = client::build(&cfg.connection_pool);
    for f in auth::checks(cfg, &client).await {
        add(f.verdict, &f.check, f.detail);
    }
    let timeout = cfg.routing.health_check_timeout;
    let metrics = crate::telemetry::Metrics::new();
    for b in &cfg.backends {
        let check = format!("backend {}", b.name);
        // The probe goes over the same connections as traffic (HTTP/1.1 or HTTP/2, TLS);
        // a `tls:` section's CA bundle, client certificate and key must parse first.
        let pool = match Pool::new(b, &cfg.connection_pool, &metrics) {
            Ok(pool) => Arc::new(pool),
            Err(crate::http::tls::TlsError::Backend { source, .. }) => {
                add(Verdict::Fail, &check, format!("tls: {source}"));
                continue;
            }
            Err(e) => {
                add(Verdict::Fail, &check, format!("tls: {e}"));
                continue;
            }
        };
        let (verdict, detail) = probe(&pool, b, timeout).await;
        add(verdict, &check, detail);
    }
    out
}

async fn probe(client: &Arc<Pool>, b: &BackendConfig, timeout: Duration) -> (Verdict, String) {
    let start = Instant::now();
    let result = tokio::time::timeout(timeout, async {
        match b.transport {
            BackendTransport::StreamableHttp => probe_streamable(client, b).await,
            BackendTransport::Sse => probe_sse(client, b).await,
        }
    })
    .await;
    let ms = start.elapsed().as_millis();
    match result {
        Err(_) => (
            Verdict::Fail,
            format!(
                "{}: no answer within routing.health_check_timeout ({timeout:?}); check the URL, DNS and firewalls",
                b.url
            ),
        ),
        Ok(Err(e)) => (Verdict::Fail, format!("{}: {e}", b.url)),
        Ok(Ok((verdict, msg))) => (verdict, format!("{} ({}, {ms} ms): {msg}", b.url, b.transport.as_str())),
    }
}

async fn probe_streamable(client: &Arc<Pool>, b: &BackendConfig) -> Result<(Verdict, String), String> {
    let body = format!(
        r#"{{"jsonrpc":"2.0","id":"mcp-gateway-doctor","method":"initialize","params":{{"protocolVersion":"{PROBE_VERSION}","capabilities":{{}},"clientInfo":{{"name":"mcp-gateway-doctor","version":"{}"}}}}}}"#,
        env!("CARGO_PKG_VERSION")
    );
    let req = Request::post(b.url.clone())
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT, "application/json, text/event-stream")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let resp = client.send(req).await.map_err(|e| describe_client_error(&e))?;
    let status = resp.status();
    let session = resp.headers().get("mcp-session-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let bytes = read_capped(resp.into_body(), 256 * 1024).await;
    let text = String::from_utf8_lossy(&bytes);
    if !status.is_success() {
        let hint = match status.as_u16() {
            404 => "wrong path? the MCP endpoint is usually /mcp",
            405 | 400 => "this may be a legacy SSE server: set `transport: sse` and point the URL at its /sse endpoint",
            406 => "the server rejected the Accept header",
            421 => {
                "the server rejected the Host header (DNS-rebinding protection): allow the backend's host in its settings"
            }
            _ => "see the backend's logs",
        };
        return Ok((Verdict::Fail, format!("initialize answered HTTP {status}: {hint}")));
    }
    let version = find_json_string(&text, "protocolVersion").unwrap_or_else(|| "?".into());
    let server = find_json_string(&text, "name").unwrap_or_else(|| "?".into());
    let mut msg = String::new();
    let _ = write!(msg, "initialize OK, server {server:?}, protocolVersion {version}");
    match &session {
        Some(_) => msg.push_str(", stateful (issues Mcp-Session-Id: sessions are routed by the gateway)"),
        None => msg.push_str(", stateless (no Mcp-Session-Id)"),
    }
    if let Some(s) = session {
        // Clean up the probe's session.
        if let Ok(req) = Request::delete(b.url.clone()).header("mcp-session-id", s).body(Full::default()) {
            let _ = client.send(req).await;
        }
    }
    let verdict = if version == PROBE_VERSION || version == "?" { Verdict::Ok } else { Verdict::Warn };
    if verdict == Verdict::Warn {
        let _ = write!(msg, " (offered {PROBE_VERSION}; clients that need it may fail: protocol-version mismatch)");
    }
    Ok((verdict, msg))
}

async fn probe_sse(client: &Arc<Pool>, b: &BackendConfig) -> Result<(Verdict, String), String> {
    let req = Request::get(b.url.clone())
        .header(header::ACCEPT, "text/event-stream")
        .body(Full::default())
        .map_err(|e| e.to_string())?;
    let resp = client.send(req).await.map_err(|e| describe_client_error(&e))?;
    if !resp.status().is_success() {
        return Ok((Verdict::Fail, format!("GET answered HTTP {}", resp.status())));
    }
    let mut body = resp.into_body();
    let mut seen = Vec::new();
    while let Some(Ok(frame)) = body.frame().await {
        if let Ok(data) = frame.into_data() {
            seen.extend_from_slice(&data);
        }
        let text = String::from_utf8_lossy(&seen);
        if let Some(i) = text.find("event: endpoint") {
            let endpoint = text[i..].lines().find_map(|l| l.strip_prefix("data:")).map(str::trim).unwrap_or("?");
            return Ok((Verdict::Ok, format!("legacy SSE stream OK, endpoint event {endpoint:?}")));
        }
        if seen.len() > 64 * 1024 {
            break;
        }
    }
    Ok((Verdict::Fail, "stream gave no `endpoint` event: not a 2024-11-05 MCP SSE endpoint?".into()))
}

fn describe_client_error(e: &PoolError) -> String {
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        let _ = write!(msg, ": {s}");
        src = s.source();
    }
    if e.is_connect() {
        msg.push_str(" (backend not running, wrong port, or blocked by a firewall/network policy)");
    }
    msg
}

async fn read_capped(mut body: PooledBody, cap: usize) -> Vec<u8> {
    let mut out = Vec::new();
    while out.len() < cap {
        match body.frame().await {
            Some(Ok(f)) => {
                if let Ok(d) = f.into_data() {
                    out.extend_from_slice(&d);
                    // An SSE answer to initialize ends with the result event.
                    if out.windows(8).any(|w| w == b"\"result\"") && out.ends_with(b"\n\n") {
                        break;
                    }
                }
            }
            _ => break,
        }
    }
    out
}

/// The first `"key":"value"` string in `text` (good enough for a probe's report).
fn find_json_string(text: &str, key: &str) -> Option<String> {
    let pat = format!("\"{key}\":\"");
    let i = text.find(&pat)? + pat.len();
    let end = text[i..].find('"')?;
    Some(text[i..i + end].to_owned())
}

/// Render the report; returns it and whether any check failed.
pub fn render(findings: &[Finding]) -> (String, bool) {
    let mut s = String::new();
    let mut failed = false;
    for f in findings {
        let tag = match f.verdict {
            Verdict::Ok => "ok  ",
            Verdict::Warn => "warn",
            Verdict::Fail => {
                failed = true;
                "FAIL"
            }
        };
        let _ = writeln!(s, "[{tag}] {}: {}", f.check, f.detail);
    }
    (s, failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_string_probe() {
        let t = r#"{"result":{"protocolVersion":"2025-06-18","serverInfo":{"name":"x"}}}"#;
        assert_eq!(find_json_string(t, "protocolVersion").as_deref(), Some("2025-06-18"));
        assert_eq!(find_json_string(t, "name").as_deref(), Some("x"));
        assert_eq!(find_json_string(t, "nope"), None);
    }

    #[tokio::test]
    async fn unreachable_backend_fails_with_a_hint() {
        let mut cfg = Config::default();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let url: http::Uri = format!("http://127.0.0.1:{port}/mcp").parse().unwrap();
        cfg.backends.push(BackendConfig {
            name: "gone".into(),
            transport: BackendTransport::infer(&url),
            url,
            weight: 1,
            health_check_path: None,
            http2: false,
            tls: None,
        });
        let findings = run(&cfg).await;
        let (text, failed) = render(&findings);
        assert!(failed, "{text}");
        assert!(text.contains("[FAIL] backend gone"), "{text}");
        assert!(text.contains("backend not running"), "{text}");
        assert!(text.contains("[warn] session keys"), "{text}");
    }

    #[tokio::test]
    async fn auth_checks_are_part_of_the_report() {
        let dir = tempfile::tempdir().unwrap();
        let auth = crate::config::AuthConfig {
            enabled: true,
            resource: Some("https://mcp.example.com/mcp".into()),
            ..Default::default()
        };
        let mut cfg = Config { auth, ..Config::default() };
        let mut issuer = crate::config::IssuerConfig::new("https://as.example.com".into());
        issuer.keys.push(crate::config::KeyConfig {
            kid: Some("k1".into()),
            algorithm: "RS256".into(),
            source: crate::config::KeySource::PublicKeyFile(dir.path().join("absent.pem")),
        });
        cfg.auth.issuers.push(issuer);
        let (text, failed) = render(&run(&cfg).await);
        assert!(failed, "{text}");
        assert!(text.contains("[FAIL] auth authorization_servers: none listed"), "{text}");
        assert!(text.contains("[FAIL] issuer https://as.example.com key \"k1\": cannot read "), "{text}");
        assert!(text.contains("[ok  ] auth challenge: a request without a token gets 401"), "{text}");
    }

    #[tokio::test]
    async fn backend_tls_files_must_parse() {
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("ca-junk.pem");
        std::fs::write(&junk, "not a certificate\n").unwrap();
        let mut cfg = Config::default();
        let url: http::Uri = "https://127.0.0.1:1/mcp".parse().unwrap();
        let tls = crate::config::BackendTls { ca_file: Some(junk), ..Default::default() };
        cfg.backends.push(BackendConfig {
            name: "secure".into(),
            transport: BackendTransport::infer(&url),
            url,
            weight: 1,
            health_check_path: None,
            http2: false,
            tls: Some(tls),
        });
        let (text, failed) = render(&run(&cfg).await);
        assert!(failed, "{text}");
        assert!(text.contains("[FAIL] backend secure: tls: "), "{text}");
        assert!(text.contains("ca-junk.pem: no certificate found"), "{text}");
    }
}

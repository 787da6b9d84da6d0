//! The treatments: the demo backend alone (direct), mcp-gateway (plain and TLS), nginx and
//! HAProxy. Each proxy runs pinned to [`PROXY_CPU`] with one worker, from a config rendered
//! from the templates in `bench/`; the backend runs on [`LOAD_CPU`] beside the load generator.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::bench::procs::{LOAD_CPU, PROXY_CPU, Proc};

/// Limit for small helper commands (openssl, curl, keygen).
const TOOL_LIMIT: Duration = Duration::from_secs(30);

/// One system under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// (A) the load generator talks to the demo backend itself.
    Direct,
    /// (B) mcp-gateway, plain HTTP/1.1 (and h2c).
    Gateway,
    /// (B+JWT) mcp-gateway, plain, every request with a (repeated) RS256 bearer token.
    GatewayJwt,
    /// (B′) mcp-gateway with TLS 1.3, HTTP/2 and JWT.
    GatewayTls,
    /// (D) nginx from Debian, plain reverse proxy with upstream keep-alive.
    Nginx,
    /// (E) HAProxy from Debian, HTTP mode with keep-alive to the backend.
    Haproxy,
}

impl Kind {
    /// Row label in the report.
    pub fn label(self) -> &'static str {
        match self {
            Self::Direct => "(A) direct",
            Self::Gateway => "(B) mcp-gateway",
            Self::GatewayJwt => "(B+JWT) mcp-gateway, JWT on",
            Self::GatewayTls => "(B′) mcp-gateway TLS+JWT",
            Self::Nginx => "(D) nginx",
            Self::Haproxy => "(E) HAProxy",
        }
    }

    /// Whether the treatment validates a bearer JWT on every request.
    pub fn uses_jwt(self) -> bool {
        matches!(self, Self::GatewayJwt | Self::GatewayTls)
    }
}

/// Authentication for the JWT treatments: the gateway's `auth:` section and the token
/// every request of the run carries.
#[derive(Debug, Clone)]
pub struct JwtAuth {
    /// Top-level `auth:` YAML.
    pub yaml: String,
    /// An RS256 bearer token.
    pub token: String,
}

/// Files and addresses shared by every treatment of a run.
#[derive(Debug, Clone)]
pub struct Env {
    /// Scratch directory (rendered configs, logs, certificates): `target/bench`.
    pub dir: PathBuf,
    /// The committed templates: `bench/` at the repo root.
    pub templates: PathBuf,
    /// Release `mcp-gateway`.
    pub gateway_bin: PathBuf,
    /// The demo backend's address.
    pub backend: SocketAddr,
    /// Self-signed ECDSA P-256 certificate for 127.0.0.1.
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
    /// Certificate and key in one file (HAProxy's `crt`).
    pub pem: PathBuf,
    /// `mcp-gateway keygen` output.
    pub session_keys: PathBuf,
    /// JWT settings (`None`: the JWT treatments cannot run, e.g. in the callgrind gate).
    pub jwt: Option<JwtAuth>,
}

impl Env {
    /// The bearer token requests to `kind` carry.
    pub fn bearer(&self, kind: Kind) -> Option<String> {
        self.jwt.as_ref().filter(|_| kind.uses_jwt()).map(|j| j.token.clone())
    }
}

/// A started treatment.
#[derive(Debug)]
pub struct Target {
    /// What it is.
    pub kind: Kind,
    /// The proxy process (`None` for direct).
    pub proc: Option<Proc>,
    /// Plain HTTP listener.
    pub plain: Option<SocketAddr>,
    /// TLS listener.
    pub tls: Option<SocketAddr>,
}

impl Target {
    /// `http://ADDR/mcp` of the plain listener.
    pub fn plain_url(&self) -> Option<String> {
        self.plain.map(|a| format!("http://{a}/mcp"))
    }

    /// `https://ADDR/mcp` of the TLS listener.
    pub fn tls_url(&self) -> Option<String> {
        self.tls.map(|a| format!("https://{a}/mcp"))
    }
}

/// A port that was free a moment ago (nginx and HAProxy cannot report a port-0 bind).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Replace every `{{NAME}}` of `template`; fail if one is left.
pub fn render(template: &str, vars: &[(&str, String)]) -> anyhow::Result<String> {
    let mut text = template.to_owned();
    for (name, value) in vars {
        text = text.replace(&format!("{{{{{name}}}}}"), value);
    }
    if let Some(at) = text.find("{{") {
        let end = text[at..].find("}}").map_or(text.len(), |e| at + e + 2);
        bail!("template placeholder {} has no value", &text[at..end]);
    }
    Ok(text)
}

fn render_to(env: &Env, template: &str, out: &str, vars: &[(&str, String)]) -> anyhow::Result<PathBuf> {
    let source = env.templates.join(template);
    let text = std::fs::read_to_string(&source).with_context(|| format!("reading {}", source.display()))?;
    let path = env.dir.join(out);
    std::fs::write(&path, render(&text, vars)?).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// Start `kind`; returns once its listeners accept connections.
pub fn start(kind: Kind, env: &Env) -> anyhow::Result<Target> {
    start_with(kind, env, false)
}

/// Start `kind`, a gateway speaking HTTP/2 (h2c) to the backend if `http2`.
pub fn start_with(kind: Kind, env: &Env, http2: bool) -> anyhow::Result<Target> {
    let dir = env.dir.display().to_string();
    let backend = env.backend.to_string();
    let local = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
    match kind {
        Kind::Direct => Ok(Target { kind, proc: None, plain: Some(env.backend), tls: None }),
        Kind::Gateway | Kind::GatewayJwt | Kind::GatewayTls => {
            let addr = local(free_port()?);
            let config = gateway_config(env, kind, addr, &format!("gateway-{}.yaml", addr.port()), "10s", http2)?;
            let mut proc = start_gateway(env, &config, &env.dir.join(format!("gateway-{}.log", addr.port())))?;
            proc.wait_for_port(addr)?;
            let (plain, tls) = if kind == Kind::GatewayTls { (None, Some(addr)) } else { (Some(addr), None) };
            Ok(Target { kind, proc: Some(proc), plain, tls })
        }
        Kind::Nginx | Kind::Haproxy => {
            let (plain, tls) = (local(free_port()?), local(free_port()?));
            let vars = [
                ("DIR", dir),
                ("BACKEND", backend),
                ("LISTEN", plain.to_string()),
                ("TLS_LISTEN", tls.to_string()),
                ("CERT", env.cert.display().to_string()),
                ("KEY", env.key.display().to_string()),
                ("PEM", env.pem.display().to_string()),
            ];
            let mut proc = if kind == Kind::Nginx {
                let config = render_to(env, "nginx.conf", "nginx.conf", &vars)?;
                let args = ["-p".to_owned(), format!("{}/", env.dir.display()), "-c".to_owned(), path_arg(&config)];
                Proc::start("nginx", PROXY_CPU, Path::new("/usr/sbin/nginx"), &args, &env.dir.join("nginx.log"))?
            } else {
                let config = render_to(env, "haproxy.cfg", "haproxy.cfg", &vars)?;
                let args = ["-db".to_owned(), "-f".to_owned(), path_arg(&config)];
                Proc::start("haproxy", PROXY_CPU, Path::new("/usr/sbin/haproxy"), &args, &env.dir.join("haproxy.log"))?
            };
            proc.wait_for_port(plain)?;
            proc.wait_for_port(tls)?;
            Ok(Target { kind, proc: Some(proc), plain: Some(plain), tls: Some(tls) })
        }
    }
}

fn path_arg(path: &Path) -> String {
    path.display().to_string()
}

/// Render the gateway's config for `kind` listening on `addr`; `http2`: HTTP/2 (h2c) to the backend.
pub fn gateway_config(
    env: &Env,
    kind: Kind,
    addr: SocketAddr,
    name: &str,
    health: &str,
    http2: bool,
) -> anyhow::Result<PathBuf> {
    let tls = if kind == Kind::GatewayTls {
        format!("  tls:\n    cert_file: {}\n    key_file: {}", env.cert.display(), env.key.display())
    } else {
        String::new()
    };
    let auth = match (&env.jwt, kind.uses_jwt()) {
        (Some(jwt), true) => jwt.yaml.clone(),
        (None, true) => bail!("{} needs JWT settings", kind.label()),
        (_, false) => String::new(),
    };
    let vars = [
        ("AUTH", auth),
        ("PORT", addr.port().to_string()),
        ("ADMIN_PORT", free_port()?.to_string()),
        ("TLS", tls),
        ("SESSION_KEYS", env.session_keys.display().to_string()),
        ("HEALTH_INTERVAL", health.to_owned()),
        ("BACKEND", env.backend.to_string()),
        ("HTTP2", http2.to_string()),
    ];
    render_to(env, "gateway.yaml", name, &vars)
}

/// `mcp-gateway run --config CONFIG --workers 1` on the proxy CPU.
pub fn start_gateway(env: &Env, config: &Path, log: &Path) -> anyhow::Result<Proc> {
    let args = ["run".to_owned(), "--config".to_owned(), path_arg(config), "--workers".to_owned(), "1".to_owned()];
    Proc::start_env("mcp-gateway", PROXY_CPU, &env.gateway_bin, &args, log, &[("LOG_LEVEL", "warn")])
}

/// Start the demo backend (one thread) on the load CPU; returns it and its address.
pub fn start_backend(bin: &Path, dir: &Path) -> anyhow::Result<(Proc, SocketAddr)> {
    let log = dir.join("backend.log");
    let args = ["--listen", "127.0.0.1:0", "--threads", "1"].map(str::to_owned);
    let mut proc = Proc::start("mcp-demo-server", LOAD_CPU, bin, &args, &log)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        proc.check_alive()?;
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(addr) = parse_listening(&text) {
            proc.wait_for_port(addr)?;
            return Ok((proc, addr));
        }
        thread::sleep(Duration::from_millis(50));
    }
    bail!("mcp-demo-server printed no listening line in {}", log.display())
}

/// The address of `mcp-demo-server listening on http://ADDR/mcp`.
pub fn parse_listening(text: &str) -> Option<SocketAddr> {
    let rest = text.lines().find_map(|l| l.strip_prefix("mcp-demo-server listening on http://"))?;
    rest.split('/').next()?.parse().ok()
}

/// Self-signed ECDSA P-256 certificate for 127.0.0.1 (openssl), plus the combined PEM.
pub fn make_tls(dir: &Path) -> anyhow::Result<(PathBuf, PathBuf, PathBuf)> {
    let (cert, key, pem) = (dir.join("tls.crt"), dir.join("tls.key"), dir.join("tls.pem"));
    let mut command = Command::new("openssl");
    command
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
        .args(["-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert);
    crate::run::output(&mut command, TOOL_LIMIT).context("openssl req (is openssl installed?)")?;
    let mut combined = std::fs::read(&cert)?;
    combined.extend(std::fs::read(&key)?);
    std::fs::write(&pem, combined)?;
    Ok((cert, key, pem))
}

/// A session key file from `mcp-gateway keygen`.
pub fn make_session_keys(gateway_bin: &Path, dir: &Path) -> anyhow::Result<PathBuf> {
    let key = crate::run::output(Command::new(gateway_bin).arg("keygen"), TOOL_LIMIT).context("mcp-gateway keygen")?;
    let path = dir.join("session.keys");
    std::fs::write(&path, format!("{key}\n"))?;
    Ok(path)
}

/// MCP `initialize` through `url` (curl, TLS unverified), with `bearer` if given; returns the
/// `Mcp-Session-Id`.
pub fn initialize(url: &str, bearer: Option<&str>) -> anyhow::Result<String> {
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"xtask-bench","version":"1"}}}"#;
    let mut command = Command::new("curl");
    command.args(["-sk", "--max-time", "10", "-o", "/dev/null", "-D", "-", "-w", "status=%{http_code}\n"]).args([
        "-H",
        "content-type: application/json",
        "-H",
        "accept: application/json, text/event-stream",
    ]);
    if let Some(token) = bearer {
        command.args(["-H", &format!("authorization: Bearer {token}")]);
    }
    command.args(["-d", body, url]);
    let text = crate::run::output(&mut command, TOOL_LIMIT).with_context(|| format!("curl initialize {url}"))?;
    if !text.contains("status=200") {
        bail!("initialize through {url} did not answer 200:\n{text}");
    }
    parse_session_header(&text).with_context(|| format!("initialize through {url} returned no Mcp-Session-Id"))
}

/// The `Mcp-Session-Id` value in response header text.
pub fn parse_session_header(text: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim().eq_ignore_ascii_case("mcp-session-id").then(|| value.trim().to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_fills_and_rejects_leftovers() {
        assert_eq!(render("a {{X}} b {{X}}", &[("X", "1".to_owned())]).unwrap(), "a 1 b 1");
        let err = render("a {{X}} {{Y}}", &[("X", "1".to_owned())]).unwrap_err();
        assert!(err.to_string().contains("{{Y}}"), "{err}");
    }

    #[test]
    fn committed_templates_render_completely() {
        let root = crate::repo_root().join("bench");
        let vars: Vec<(&str, String)> = ["DIR", "BACKEND", "LISTEN", "TLS_LISTEN", "CERT", "KEY", "PEM"]
            .iter()
            .map(|n| (*n, "v".to_owned()))
            .collect();
        for name in ["nginx.conf", "haproxy.cfg"] {
            let text = std::fs::read_to_string(root.join(name)).unwrap();
            render(&text, &vars).unwrap();
        }
        let text = std::fs::read_to_string(root.join("gateway.yaml")).unwrap();
        let vars: Vec<(&str, String)> =
            ["AUTH", "PORT", "ADMIN_PORT", "TLS", "SESSION_KEYS", "HEALTH_INTERVAL", "BACKEND", "HTTP2"]
                .iter()
                .map(|n| (*n, "v".to_owned()))
                .collect();
        render(&text, &vars).unwrap();
    }

    #[test]
    fn listening_line_and_session_header() {
        let line = "mcp-demo-server listening on http://127.0.0.1:4321/mcp\n";
        assert_eq!(parse_listening(line), Some("127.0.0.1:4321".parse().unwrap()));
        assert_eq!(parse_listening("nothing"), None);
        let headers = "HTTP/1.1 200 OK\r\nMcp-Session-Id: g1.abc\r\n\r\nstatus=200\n";
        assert_eq!(parse_session_header(headers).as_deref(), Some("g1.abc"));
        assert_eq!(parse_session_header("HTTP/1.1 200 OK\r\n"), None);
    }

    #[test]
    fn labels_are_distinct() {
        let kinds = [Kind::Direct, Kind::Gateway, Kind::GatewayJwt, Kind::GatewayTls, Kind::Nginx, Kind::Haproxy];
        let labels: std::collections::HashSet<_> = kinds.iter().map(|k| k.label()).collect();
        assert_eq!(labels.len(), kinds.len());
    }
}

//! Offline checks of `deploy/` (the Kubernetes DaemonSet and the systemd unit), run by
//! `cargo xtask test` as xtask unit tests; no API server, container engine or systemd needed.
//!
//! - structural checks in Rust that tie the manifests to the gateway config they ship: probe
//!   ports and paths against the admin listener, the `--config` path back to the ConfigMap key,
//!   the bpffs mount for `xdp.pin_path`, capabilities for `xdp.enabled`, grace period against
//!   `server.shutdown_timeout`, the session-key Secret, scrape annotations; the same for the unit;
//! - the shipped configs through the real `mcp-gateway validate`, as every listed node (the
//!   node named by `MCP_GATEWAY_XDP_LOCAL_NODE`, as the DaemonSet sets it);
//! - Kubernetes JSON schemas, strict (unknown fields are errors), with `kubernetes-validate`
//!   from the e2e venv (`tests/py/requirements.txt`), on the files and on `kubectl kustomize`
//!   output when kubectl is installed;
//! - `systemd-analyze verify` on the unit, and sysusers/tmpfiles on a scratch root;
//! - as root, the unit's and the DaemonSet's privileges for real: XDP attached and pinned by
//!   the gateway in a network namespace, and refused without the bind mount or a capability.
//!
//! Tools that may be missing are skipped with a line on stderr; under `cargo xtask test`
//! (which sets `MCP_GATEWAY_BIN` and `MCP_E2E_PYTHON` after installing both) the gateway
//! binary and the schema validator are required.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use yaml_rust2::{Yaml, YamlLoader};

/// Limit for one external check (validate, schema, kustomize, systemd-analyze).
const TOOL_LIMIT: Duration = Duration::from_secs(120);
/// The variable that tells a pod which of `xdp.nodes` it is (`--xdp-local-node`).
pub const LOCAL_NODE_ENV: &str = "MCP_GATEWAY_XDP_LOCAL_NODE";
/// Where the image installs the gateway (deploy/Dockerfile).
pub const GATEWAY_IN_IMAGE: &str = "/usr/local/bin/mcp-gateway";

/// The files of one directory, by name (so tests can break a copy in memory).
pub type Files = BTreeMap<String, String>;

/// Reads every regular file of `dir` (not recursive).
pub fn read_dir(dir: &Path) -> Files {
    let mut files = Files::new();
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_file() {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            files.insert(name, std::fs::read_to_string(&path).unwrap());
        }
    }
    files
}

/// Every YAML document of `text`; a parse error is a problem naming `what`.
pub fn parse(what: &str, text: &str) -> Result<Vec<Yaml>, String> {
    YamlLoader::load_from_str(text).map_err(|e| format!("{what}: YAML: {e}"))
}

/// The node at a dotted path (`a.b.0.c`; a numeric segment indexes a list), or BadValue.
pub fn at<'a>(y: &'a Yaml, path: &str) -> &'a Yaml {
    path.split('.').fold(y, |node, seg| match seg.parse::<usize>() {
        Ok(i) if node.as_vec().is_some() => &node[i],
        _ => &node[seg],
    })
}

/// A scalar as text (strings, integers, booleans), for comparisons.
pub fn text(y: &Yaml) -> Option<String> {
    match y {
        Yaml::String(s) | Yaml::Real(s) => Some(s.clone()),
        Yaml::Integer(i) => Some(i.to_string()),
        Yaml::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

fn list(y: &Yaml) -> &[Yaml] {
    y.as_vec().map_or(&[], Vec::as_slice)
}

/// A config setting, falling back to the embedded default config.
fn setting<'a>(config: &'a Yaml, default: &'a Yaml, path: &str) -> &'a Yaml {
    let v = at(config, path);
    if v.is_badvalue() { at(default, path) } else { v }
}

/// Parses a config duration (`500ms`, `30s`, `5m`, `1h30m`, `2d`, a bare number = seconds).
pub fn duration(text: &str) -> Option<Duration> {
    if let Ok(secs) = text.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let (mut total, mut rest) = (Duration::ZERO, text.trim());
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).filter(|&n| n > 0)?;
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        total += match &rest[..unit] {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n * 60),
            "h" => Duration::from_secs(n * 3600),
            "d" => Duration::from_secs(n * 86_400),
            _ => return None,
        };
        rest = &rest[unit..];
    }
    Some(total)
}

/// What the deployment must agree with, read from a gateway config (defaults filled in).
#[derive(Debug, Clone)]
pub struct Facts {
    /// `server.port`.
    pub data_port: i64,
    /// `admin.port`.
    pub admin_port: i64,
    /// Longest stop after SIGTERM: `server.drain_delay` + `server.shutdown_timeout`.
    pub shutdown: Duration,
    /// `sessions.key_file`.
    pub key_file: Option<String>,
    /// `xdp.enabled`.
    pub xdp: bool,
    /// `xdp.pin_path`.
    pub pin_path: Option<String>,
    /// Names in `xdp.nodes`.
    pub nodes: Vec<String>,
    /// `xdp.local_node`.
    pub local_node: Option<String>,
}

/// The facts of `config`, with `default` (gateway/src/config/default.yaml) for absent keys.
pub fn facts(config: &Yaml, default: &Yaml) -> Result<Facts, String> {
    let get = |path: &str| setting(config, default, path);
    let port = |path: &str| get(path).as_i64().ok_or_else(|| format!("config: {path} is not a port number"));
    let drain = text(get("server.drain_delay")).and_then(|t| duration(&t));
    let shutdown = text(get("server.shutdown_timeout")).and_then(|t| duration(&t)).zip(drain).map(|(s, d)| s + d);
    Ok(Facts {
        data_port: port("server.port")?,
        admin_port: port("admin.port")?,
        shutdown: shutdown.ok_or("config: server.shutdown_timeout or server.drain_delay is not a duration")?,
        key_file: text(at(config, "sessions.key_file")),
        xdp: get("xdp.enabled").as_bool().unwrap_or(false),
        pin_path: text(at(config, "xdp.pin_path")),
        nodes: list(at(config, "xdp.nodes")).iter().filter_map(|n| text(&n["name"])).collect(),
        local_node: text(at(config, "xdp.local_node")),
    })
}

/// The embedded default config of the gateway.
pub fn default_config(root: &Path) -> Yaml {
    let text = std::fs::read_to_string(root.join("gateway/src/config/default.yaml")).unwrap();
    parse("default.yaml", &text).unwrap().remove(0)
}

/// True when `path` is `dir` or below it.
fn under(path: &str, dir: &str) -> bool {
    let dir = dir.trim_end_matches('/');
    path == dir || path.strip_prefix(dir).is_some_and(|rest| rest.starts_with('/'))
}

/// Output of a bounded external command.
#[derive(Debug)]
pub struct Outcome {
    /// Exit code (`None`: killed by a signal or by the time limit).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// Runs `cmd` with piped output for at most [`TOOL_LIMIT`]; `None` if it cannot start.
pub fn capture(cmd: &mut Command) -> Option<Outcome> {
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().ok()?;
    let pipe = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let out = pipe(Box::new(child.stdout.take()?));
    let err = pipe(Box::new(child.stderr.take()?));
    let deadline = Instant::now() + TOOL_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().ok()? {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Some(Outcome {
        code: status.and_then(|s| s.code()),
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}

/// Says on stderr, past the test harness's capture, that a check did not run and why.
pub fn skip(check: &str, reason: &str) {
    let _ = writeln!(std::io::stderr().lock(), "[deploy] SKIPPED {check}: {reason}");
}

/// The gateway binary: `$MCP_GATEWAY_BIN` (set by `cargo xtask test`, then required), else
/// `target/debug/mcp-gateway` if it was built; `None` means skip.
pub fn gateway_bin(root: &Path) -> Option<PathBuf> {
    if let Some(bin) = std::env::var_os("MCP_GATEWAY_BIN") {
        let bin = PathBuf::from(bin);
        assert!(bin.is_file(), "MCP_GATEWAY_BIN={} does not exist", bin.display());
        return Some(bin);
    }
    let bin = crate::test::target_dir(root).join("debug/mcp-gateway");
    bin.is_file().then_some(bin)
}

/// A scratch directory under the target dir, empty, unique per test.
pub fn scratch(root: &Path, name: &str) -> PathBuf {
    let dir = crate::test::target_dir(root).join("deploy-check").join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes a new session key file (`mcp-gateway keygen`) at `path`.
pub fn keygen(bin: &Path, path: &Path) {
    let out = capture(Command::new(bin).arg("keygen")).expect("mcp-gateway keygen");
    assert_eq!(out.code, Some(0), "keygen: {}", out.stderr);
    std::fs::write(path, out.stdout).unwrap();
}

/// `config` with its `sessions.key_file` value pointed at `key` (the real path exists only on
/// the target host); everything else, line numbers included, unchanged.
pub fn with_local_key(config: &str, facts: &Facts, key: &Path) -> String {
    match &facts.key_file {
        Some(file) => config.replacen(&format!("key_file: {file}"), &format!("key_file: {}", key.display()), 1),
        None => config.to_owned(),
    }
}

mod docs;
mod kube;
mod sandbox;
mod systemd;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_like_the_gateway() {
        assert_eq!(duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(duration("45"), Some(Duration::from_secs(45)));
        assert_eq!(duration("5x"), None);
        assert_eq!(duration("s"), None);
    }

    #[test]
    fn facts_fall_back_to_the_embedded_defaults() {
        let default = default_config(&crate::repo_root());
        let config = parse("t", "admin: {port: 9191}\nxdp: {pin_path: /sys/fs/bpf/x}\n").unwrap().remove(0);
        let f = facts(&config, &default).unwrap();
        assert_eq!((f.data_port, f.admin_port), (8443, 9191));
        assert_eq!(f.shutdown, Duration::from_secs(30));
        assert_eq!(f.pin_path.as_deref(), Some("/sys/fs/bpf/x"));
        assert!(!f.xdp);
        // The stop lasts drain_delay + shutdown_timeout.
        let config = parse("t", "server: {drain_delay: 10s}\n").unwrap().remove(0);
        assert_eq!(facts(&config, &default).unwrap().shutdown, Duration::from_secs(40));
    }

    #[test]
    fn paths_under_a_directory() {
        assert!(under("/sys/fs/bpf/mcp-gateway", "/sys/fs/bpf"));
        assert!(under("/sys/fs/bpf", "/sys/fs/bpf/"));
        assert!(!under("/sys/fs/bpfx", "/sys/fs/bpf"));
    }

    #[test]
    fn capture_reports_exit_codes_and_output() {
        let out = capture(Command::new("sh").args(["-c", "echo out; echo err >&2; exit 3"])).unwrap();
        assert_eq!((out.code, out.stdout.trim(), out.stderr.trim()), (Some(3), "out", "err"));
    }
}

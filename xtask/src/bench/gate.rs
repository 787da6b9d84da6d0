//! The CI regression gate: instructions per `tools/call` through the release gateway,
//! counted by `valgrind --tool=callgrind`, compared with `bench/callgrind-baseline.txt`.
//!
//! Instruction counts do not depend on how busy the machine is, so this is stable where
//! wall-clock numbers are not. The gateway runs under callgrind; after a warm-up the counters
//! are zeroed (`callgrind_control -z`), a fixed number of requests is sent one at a time on
//! one keep-alive connection (`h2load --h1 -c1 -m1 -n N`), and the counters are dumped
//! (`callgrind_control -d`). The dump is kept under `target/bench/` for `callgrind_annotate`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::bench::load::{Request, parse_h2load, tools_call_body};
use crate::bench::procs::{PROXY_CPU, Proc};
use crate::bench::targets::{self, Env, Kind};
use crate::step;

/// Requests before the counters are zeroed (connection pools, lazy statics, allocator).
pub const WARMUP: u32 = 500;
/// Requests counted.
pub const REQUESTS: u32 = 3000;
/// Relative difference from the baseline that fails the gate.
pub const TOLERANCE: f64 = 0.10;
/// The committed baseline, relative to the repo root.
pub const BASELINE: &str = "bench/callgrind-baseline.txt";
/// Limit for one h2load or callgrind_control call.
const STEP_LIMIT: Duration = Duration::from_secs(120);

/// The baseline file's values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Baseline {
    /// Instructions per request.
    pub instructions_per_request: f64,
    /// Allowed relative difference.
    pub tolerance: f64,
}

/// Parse `key = value` lines (`#` comments).
pub fn parse_baseline(text: &str) -> anyhow::Result<Baseline> {
    let value = |key: &str| -> anyhow::Result<f64> {
        text.lines()
            .map(|l| l.split('#').next().unwrap_or_default())
            .find_map(|l| l.split_once('=').filter(|(k, _)| k.trim() == key).map(|(_, v)| v.trim().to_owned()))
            .with_context(|| format!("no `{key} = …` line"))?
            .parse()
            .with_context(|| format!("bad {key}"))
    };
    Ok(Baseline { instructions_per_request: value("instructions_per_request")?, tolerance: value("tolerance")? })
}

/// The baseline file for `measured`.
pub fn render_baseline(measured: f64, tolerance: f64, rustc: &str) -> String {
    format!(
        "# Instructions per tools/call through the release mcp-gateway under callgrind.\n\
         # Written by `cargo xtask bench --gate --update-baseline`; checked by `cargo xtask bench --gate`.\n\
         # {REQUESTS} sequential requests after {WARMUP} warm-up requests; built with {rustc}.\n\
         instructions_per_request = {measured:.0}\n\
         tolerance = {tolerance}\n"
    )
}

/// `Ok` when `measured` is within the tolerance of `baseline`; else a message saying which way.
pub fn compare(measured: f64, baseline: Baseline) -> Result<String, String> {
    let change = measured / baseline.instructions_per_request - 1.0;
    let text = format!(
        "{measured:.0} instructions/request vs baseline {:.0} ({:+.1}%, tolerance ±{:.0}%)",
        baseline.instructions_per_request,
        change * 100.0,
        baseline.tolerance * 100.0
    );
    if change > baseline.tolerance {
        Err(format!("regression: {text}"))
    } else if change < -baseline.tolerance {
        Err(format!(
            "improvement beyond the tolerance: {text}; record it with `cargo xtask bench --gate --update-baseline`"
        ))
    } else {
        Ok(text)
    }
}

/// `summary:` (or `totals:`) of a callgrind dump: instructions executed.
pub fn parse_total(dump: &str) -> Option<u64> {
    let line = dump
        .lines()
        .find_map(|l| l.strip_prefix("summary:"))
        .or_else(|| dump.lines().find_map(|l| l.strip_prefix("totals:")))?;
    line.split_whitespace().next()?.parse().ok()
}

/// Run the gate (or record a new baseline).
pub fn gate(root: &Path, bin_dir: &Path, dir: &Path, update: bool) -> anyhow::Result<()> {
    let per_request = measure(root, bin_dir, dir)?;
    let path = root.join(BASELINE);
    let rustc = crate::run::output(Command::new("rustc").arg("-V"), Duration::from_secs(20)).unwrap_or_default();
    if update {
        std::fs::write(&path, render_baseline(per_request, TOLERANCE, &rustc))
            .with_context(|| format!("writing {}", path.display()))?;
        step!("gate: recorded {per_request:.0} instructions/request in {}", path.display());
        return Ok(());
    }
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("reading {} (record one with --update-baseline)", path.display()))?;
    let baseline = parse_baseline(&text).with_context(|| format!("parsing {}", path.display()))?;
    match compare(per_request, baseline) {
        Ok(text) => {
            step!("gate passed: {text}");
            Ok(())
        }
        Err(text) => bail!("gate failed: {text}"),
    }
}

/// Instructions per request of the release gateway under callgrind.
pub fn measure(root: &Path, bin_dir: &Path, dir: &Path) -> anyhow::Result<f64> {
    let gateway_bin = bin_dir.join("mcp-gateway");
    let (_backend, backend) = targets::start_backend(&bin_dir.join("mcp-demo-server"), dir)?;
    let session_keys = targets::make_session_keys(&gateway_bin, dir)?;
    let none = PathBuf::new();
    let env = Env {
        dir: dir.to_owned(),
        templates: root.join("bench"),
        gateway_bin: gateway_bin.clone(),
        backend,
        cert: none.clone(),
        key: none.clone(),
        pem: none,
        session_keys,
        jwt: None,
    };
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], targets::free_port()?));
    // Health checks would run inside the counted window at an interval of seconds.
    let config = targets::gateway_config(&env, Kind::Gateway, addr, "gateway-gate.yaml", "1h", false)?;
    let out = dir.join("callgrind.out");
    for entry in std::fs::read_dir(dir)?.flatten() {
        if entry.file_name().to_string_lossy().starts_with("callgrind.out") {
            std::fs::remove_file(entry.path())?;
        }
    }
    let mut args = vec!["--tool=callgrind".to_owned(), format!("--callgrind-out-file={}", out.display())];
    args.extend([gateway_bin.display().to_string(), "run".into(), "--config".into(), config.display().to_string()]);
    args.extend(["--workers".into(), "1".into()]);
    step!("gate: mcp-gateway under callgrind");
    let mut gateway = Proc::start_env(
        "mcp-gateway (callgrind)",
        PROXY_CPU,
        Path::new("/usr/bin/valgrind"),
        &args,
        &dir.join("gateway-gate.log"),
        &[("LOG_LEVEL", "warn")],
    )?;
    gateway.wait_for_port(addr)?;
    let url = format!("http://{addr}/mcp");
    let request = Request { session: targets::initialize(&url, None)?, url, body: tools_call_body(), bearer: None };
    sequential(&request, WARMUP, dir)?;
    control(gateway.pid(), "-z")?;
    sequential(&request, REQUESTS, dir)?;
    control(gateway.pid(), "-d")?;
    gateway.check_alive()?;
    gateway.stop();
    let dump_path = dir.join("callgrind.out.1");
    let dump = std::fs::read_to_string(&dump_path).with_context(|| format!("reading {}", dump_path.display()))?;
    let total = parse_total(&dump).with_context(|| format!("no summary line in {}", dump_path.display()))?;
    let per_request = total as f64 / f64::from(REQUESTS);
    step!("gate: {total} instructions for {REQUESTS} requests = {per_request:.0} per request");
    step!("gate: profile: callgrind_annotate --inclusive=yes {}", dump_path.display());
    Ok(per_request)
}

fn sequential(request: &Request, count: u32, dir: &Path) -> anyhow::Result<()> {
    let body = dir.join("body.json");
    std::fs::write(&body, &request.body)?;
    let mut command = Command::new("h2load");
    command.args(["--h1", "-t1", "-c1", "-m1", &format!("-n{count}")]).arg("-d").arg(&body);
    for header in request.headers() {
        command.args(["-H", &header]);
    }
    command.arg(&request.url);
    let text = crate::run::output(&mut command, STEP_LIMIT).context("h2load against the gateway under callgrind")?;
    let (done, _) = parse_h2load(&text)?;
    if done != u64::from(count) {
        bail!("h2load completed {done} of {count} requests");
    }
    Ok(())
}

fn control(pid: u32, flag: &str) -> anyhow::Result<()> {
    crate::run::output(Command::new("callgrind_control").args([flag, &pid.to_string()]), STEP_LIMIT)
        .with_context(|| format!("callgrind_control {flag} {pid}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn baseline_round_trips_and_compares() {
        let text = render_baseline(86_470.4, 0.15, "rustc 1.95.0");
        let b = parse_baseline(&text).unwrap();
        assert_eq!(b, Baseline { instructions_per_request: 86_470.0, tolerance: 0.15 });
        assert!(compare(86_470.0 * 1.10, b).is_ok());
        assert!(compare(86_470.0 * 0.90, b).is_ok());
        assert!(compare(86_470.0 * 1.20, b).unwrap_err().starts_with("regression"));
        assert!(compare(86_470.0 * 0.80, b).unwrap_err().contains("--update-baseline"));
        assert!(parse_baseline("tolerance = 0.1\n").is_err());
    }

    #[test]
    fn committed_baseline_parses() {
        let text = std::fs::read_to_string(crate::repo_root().join(BASELINE)).unwrap();
        let b = parse_baseline(&text).unwrap();
        assert!(b.instructions_per_request > 1000.0 && b.tolerance > 0.0 && b.tolerance < 0.5, "{b:?}");
    }

    #[test]
    fn callgrind_totals() {
        assert_eq!(parse_total("events: Ir\nsummary: 172918803\ntotals: 172919768\n"), Some(172_918_803));
        assert_eq!(parse_total("events: Ir\ntotals: 5\n"), Some(5));
        assert_eq!(parse_total("events: Ir\n"), None);
    }
}

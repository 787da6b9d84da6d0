//! The benchmark's tools, installed idempotently (Debian packages with apt-get, oha with
//! `cargo install --locked`), and a description of the machine and the versions for the
//! report.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::bench::Settings;
use crate::run::{output, run};
use crate::step;

/// Limit for `apt-get` and `cargo install`.
const INSTALL_LIMIT: Duration = Duration::from_secs(30 * 60);
/// Limit for version probes.
const PROBE_LIMIT: Duration = Duration::from_secs(20);
/// The font the plot is drawn with.
pub const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

/// A file that must exist, and the Debian package that provides it.
const DEBIAN: [(&str, &str); 11] = [
    ("/usr/bin/valgrind", "valgrind"),
    ("/usr/bin/h2load", "nghttp2-client"),
    ("/usr/bin/curl", "curl"),
    ("/usr/bin/prlimit", "util-linux"),
    ("/usr/bin/taskset", "util-linux"),
    ("/usr/sbin/nginx", "nginx"),
    ("/usr/sbin/haproxy", "haproxy"),
    ("/usr/bin/wrk", "wrk"),
    ("/usr/bin/openssl", "openssl"),
    (FONT, "fonts-dejavu-core"),
    ("/usr/bin/getconf", "libc-bin"),
];
/// How many of [`DEBIAN`] the callgrind gate needs (the first ones).
const GATE_TOOLS: usize = 5;

/// Debian packages providing the files of `needed` that are missing.
pub fn missing_packages(needed: &[(&str, &'static str)], exists: impl Fn(&str) -> bool) -> Vec<&'static str> {
    let mut packages: Vec<&'static str> =
        needed.iter().filter(|(path, _)| !exists(path)).map(|(_, package)| *package).collect();
    packages.dedup();
    packages
}

/// Install what is missing: everything for a benchmark run, the gate's few tools otherwise.
pub fn ensure(full: bool) -> anyhow::Result<()> {
    let needed = if full { &DEBIAN[..] } else { &DEBIAN[..GATE_TOOLS] };
    let packages = missing_packages(needed, |path| Path::new(path).exists());
    if packages.is_empty() {
        step!("bench tools: Debian packages present");
    } else {
        step!("bench tools: installing {}", packages.join(" "));
        run(Command::new("apt-get").arg("update").arg("-qq"), INSTALL_LIMIT)
            .context("apt-get update (the benchmark's tools come from Debian's packages; run as root)")?;
        run(
            Command::new("apt-get")
                .args(["install", "-y", "-qq", "--no-install-recommends"])
                .args(&packages)
                .env("DEBIAN_FRONTEND", "noninteractive"),
            INSTALL_LIMIT,
        )?;
        let still = missing_packages(needed, |path| Path::new(path).exists());
        if !still.is_empty() {
            bail!("still missing after apt-get install: {}", still.join(" "));
        }
    }
    if full {
        if output(Command::new("oha").arg("--version"), PROBE_LIMIT).is_some() {
            step!("bench tools: oha present");
        } else {
            step!("bench tools: cargo install oha --locked (a few minutes, once)");
            run(Command::new(crate::test::cargo()).args(["install", "oha", "--locked"]), INSTALL_LIMIT)?;
        }
    }
    Ok(())
}

/// Raise this process's open-file limit (its children inherit it) for the SSE streams.
pub fn raise_own_nofile() {
    let pid = std::process::id().to_string();
    let limit = format!("--nofile={0}:{0}", crate::bench::procs::nofile_limit());
    if output(Command::new("prlimit").args(["--pid", &pid, &limit]), PROBE_LIMIT).is_none() {
        step!("warning: could not raise the open-file limit; many SSE streams may fail");
    }
}

/// The 1/5/15-minute load averages.
pub fn load_avg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|t| t.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// First line of a command's combined output, whatever its exit status.
fn first_line(shell: &str) -> String {
    output(Command::new("sh").args(["-c", &format!("{shell} 2>&1; true")]), PROBE_LIMIT)
        .and_then(|t| t.lines().next().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned())
}

/// `(what, value)` rows describing the machine, the versions and the run.
pub fn machine(root: &Path, settings: &Settings, load_avg: &(String, String)) -> Vec<(String, String)> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model =
        cpuinfo.lines().find_map(|l| l.strip_prefix("model name")).map(|v| v.trim_start_matches([' ', '\t', ':']));
    let cores = cpuinfo.lines().filter(|l| l.starts_with("processor")).count();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory =
        crate::bench::procs::parse_status_kib(&meminfo, "MemTotal").map(|k| format!("{:.1} GiB", k as f64 / 1048576.0));
    let gateway = root.join("target/release/mcp-gateway");
    let commit = output(Command::new("git").args(["rev-parse", "--short", "HEAD"]).current_dir(root), PROBE_LIMIT);
    let rows = [
        ("CPU", format!("{} × {cores}", model.unwrap_or("?"))),
        ("memory", memory.unwrap_or_default()),
        ("kernel", first_line("uname -sr")),
        ("open-file limit", crate::bench::procs::nofile_limit().to_string()),
        ("load average (1/5/15 min) at start → end", format!("{} → {}", load_avg.0, load_avg.1)),
        (
            "mcp-gateway",
            format!(
                "{} (commit {})",
                first_line(&format!("{} --version", gateway.display())),
                commit.unwrap_or_default()
            ),
        ),
        ("rustc", first_line("rustc -V")),
        ("nginx", first_line("/usr/sbin/nginx -v")),
        ("HAProxy", first_line("/usr/sbin/haproxy -v")),
        ("wrk", first_line("wrk -v")),
        ("h2load", first_line("h2load --version")),
        ("oha", first_line("oha --version")),
        ("OpenSSL (certificates, nginx, HAProxy, h2load)", first_line("openssl version")),
        (
            "run",
            format!(
                "{} round(s) × {} s per run, {} connections, rates {:?}/s, {} handshakes, {} SSE streams",
                settings.rounds,
                settings.secs,
                super::CONNECTIONS,
                super::RATES,
                settings.handshakes,
                settings.sse_streams
            ),
        ),
    ];
    rows.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_packages_are_deduplicated() {
        let needed = [("/a", "p1"), ("/b", "p2"), ("/c", "p2"), ("/d", "p3")];
        assert_eq!(missing_packages(&needed, |p| p == "/a" || p == "/d"), ["p2"]);
        assert!(missing_packages(&needed, |_| true).is_empty());
    }

    #[test]
    fn gate_tools_are_a_prefix_without_the_proxies() {
        let gate: Vec<&str> = DEBIAN[..GATE_TOOLS].iter().map(|(_, p)| *p).collect();
        assert!(gate.contains(&"valgrind") && gate.contains(&"nghttp2-client"));
        assert!(!gate.contains(&"nginx") && !gate.contains(&"haproxy"));
    }

    #[test]
    fn first_line_of_a_failing_command() {
        assert_eq!(first_line("echo one; echo two; false"), "one");
        assert!(!load_avg().is_empty());
    }
}

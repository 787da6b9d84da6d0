//! `cargo xtask bench --flood`: legitimate MCP goodput under a max-rate SYN flood from
//! blocked source addresses, with XDP shedding versus iptables raw DROP versus nothing,
//! in one run (root only; namespaces this task creates and always removes).
//!
//! Treatments, rotated over the rounds, each a fresh gateway measured for a fixed time:
//! no flood (baseline), flood with nothing filtering, flood with an iptables raw
//! PREROUTING DROP for the blocked prefix, flood with the gateway's XDP blocklist in
//! generic mode and in driver (native veth) mode. The legitimate client runs wrk with
//! the bench's `tools/call` POST and session header; the attacker re-executes this
//! binary (`--flood-send`, [`send`]) to send TCP SYNs from the blocked prefix.
//!
//! CPUs (2 cores): CPU 0 is the "gateway host" (gateway, demo server, wrk, and, through
//! RPS, the receive processing of everything arriving from the attacker); CPU 1 is the
//! attacker's (the sender). All namespaces share the machine's CPUs, so kernel CPU time
//! is read machine-wide from `/proc/stat` and the no-flood windows' median is subtracted.

#[path = "flood_measure.rs"]
mod measure;
#[path = "flood_net.rs"]
mod net;
#[path = "flood_report.rs"]
mod report;
#[path = "flood_send.rs"]
pub mod send;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, ensure};

use crate::bench::BenchArgs;
use crate::bench::load::LoadResult;
use crate::step;
use measure::{Env, start_in};
use net::Lab;
pub use report::carry_over;

/// One way of (not) handling the flood.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Treatment {
    /// No flood at all.
    NoFlood,
    /// Flood, nothing filters it.
    Nothing,
    /// Flood, `iptables -t raw -A PREROUTING -s CIDR -j DROP`.
    Iptables,
    /// Flood, the gateway's XDP blocklist attached in generic (SKB) mode.
    XdpGeneric,
    /// Flood, the gateway's XDP blocklist attached in driver (native veth) mode.
    XdpDriver,
}

/// Every treatment, in the first round's order.
pub const TREATMENTS: [Treatment; 5] =
    [Treatment::NoFlood, Treatment::Nothing, Treatment::Iptables, Treatment::XdpGeneric, Treatment::XdpDriver];

impl Treatment {
    /// Name in the report.
    pub fn label(self) -> &'static str {
        match self {
            Self::NoFlood => "no flood",
            Self::Nothing => "flood, nothing",
            Self::Iptables => "flood, iptables raw DROP",
            Self::XdpGeneric => "flood, XDP generic",
            Self::XdpDriver => "flood, XDP driver",
        }
    }

    fn xdp_mode(self) -> Option<&'static str> {
        match self {
            Self::XdpGeneric => Some("generic"),
            Self::XdpDriver => Some("driver"),
            _ => None,
        }
    }
}

/// One measured window of one treatment.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    /// Treatment.
    pub treatment: Treatment,
    /// Round (0-based).
    pub round: u32,
    /// The legitimate load (2xx answers only).
    pub load: LoadResult,
    /// Legitimate socket errors, timeouts and non-2xx answers.
    pub errors: u64,
    /// Length of the window (flood and CPU readings), seconds.
    pub wall_secs: f64,
    /// Flood packets the sender got out.
    pub sent: u64,
    /// Packets the filter dropped (`None`: no filter).
    pub dropped: Option<u64>,
    /// Packets the attacker's veth could not hand over (node backlog or XDP ring full).
    pub handover_drops: u64,
    /// System + irq + softirq seconds over all CPUs.
    pub kernel_secs: f64,
    /// The same on CPU 0 only.
    pub kernel_cpu0_secs: f64,
    /// Busy seconds (all but idle and iowait) over all CPUs.
    pub busy_secs: f64,
    /// How XDP was attached (`driver`, `generic`, `none`).
    pub attach: &'static str,
}

/// Everything a flood run measured.
#[derive(Debug, Default)]
pub struct FloodResults {
    /// The windows in run order.
    pub windows: Vec<Window>,
    /// Rounds and seconds per window.
    pub rounds: u32,
    /// Seconds of legitimate load per window.
    pub secs: f64,
    /// `uptime` load averages at the start and the end.
    pub load_avg: (String, String),
    /// Things the reader must know (skipped treatments, NAPI placement, versions).
    pub notes: Vec<String>,
}

/// The treatment order of `round`.
pub fn rotated(round: u32) -> Vec<Treatment> {
    let mut all = TREATMENTS.to_vec();
    all.rotate_left(round as usize % TREATMENTS.len());
    all
}

/// `cargo xtask bench --flood`.
pub fn run(root: &Path, args: &BenchArgs) -> anyhow::Result<()> {
    ensure_tools()?;
    if !args.no_build {
        crate::run::run(
            Command::new(crate::test::cargo())
                .args(["build", "--release", "-p", "mcp-gateway", "--bins"])
                .current_dir(root),
            super::BUILD_LIMIT,
        )?;
    }
    let bin_dir = crate::test::target_dir(root).join("release");
    let dir = crate::test::target_dir(root).join("bench").join("flood");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let settings = super::Settings::new(root, args);
    let secs = args.secs.unwrap_or(if args.quick { 3.0 } else { 10.0 }).clamp(1.0, 60.0);
    let mut results = FloodResults { rounds: settings.rounds, secs, ..FloodResults::default() };
    results.load_avg.0 = super::tools::load_avg();
    let iptables = crate::run::output(Command::new("iptables").arg("-V"), Duration::from_secs(10));
    results.notes.push(format!("iptables: `{}`", iptables.unwrap_or_default()));
    let lab = Lab::create().context("creating the network namespaces (needs root)")?;
    let env = Env { lab: &lab, bin_dir: &bin_dir, dir: &dir, secs };
    let mut backend = start_in(
        &lab.node,
        "mcp-demo-server",
        &bin_dir.join("mcp-demo-server"),
        &["--listen", "127.0.0.1:3001", "--threads", "1"],
        &dir,
    )?;
    let mut skip_driver = false;
    for round in 0..settings.rounds {
        for t in rotated(round) {
            if t == Treatment::XdpDriver && skip_driver {
                continue;
            }
            step!("flood round {}/{}: {}", round + 1, settings.rounds, t.label());
            match measure::measure(&env, t, round, &mut results.notes).with_context(|| t.label())? {
                Some(w) => results.windows.push(w),
                None => skip_driver = true,
            }
            backend.check_alive()?;
        }
    }
    results.load_avg.1 = super::tools::load_avg();
    drop(backend);
    drop(lab);
    results.notes.sort();
    results.notes.dedup();
    let section = report::markdown(&results);
    std::fs::create_dir_all(&settings.out)?;
    let md = settings.out.join("report.md");
    let old = std::fs::read_to_string(&md).unwrap_or_default();
    std::fs::write(&md, report::splice(&old, &section)).with_context(|| format!("writing {}", md.display()))?;
    super::report::print(&section);
    step!("wrote the flood section of {}", md.display());
    Ok(())
}

fn ensure_tools() -> anyhow::Result<()> {
    let needed = [
        ("/usr/bin/wrk", "wrk"),
        ("/usr/bin/curl", "curl"),
        ("/usr/bin/taskset", "util-linux"),
        ("/usr/bin/prlimit", "util-linux"),
        ("/usr/sbin/iptables", "iptables"),
    ];
    let missing = super::tools::missing_packages(&needed, |p| Path::new(p).exists());
    if missing.is_empty() {
        return Ok(());
    }
    let limit = Duration::from_secs(30 * 60);
    crate::run::run(Command::new("apt-get").args(["update", "-qq"]), limit)?;
    crate::run::run(
        Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
        limit,
    )?;
    let still = super::tools::missing_packages(&needed, |p| Path::new(p).exists());
    ensure!(still.is_empty(), "still missing after apt-get install: {}", still.join(" "));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_rotate_every_treatment() {
        assert_eq!(rotated(0), TREATMENTS.to_vec());
        assert_eq!(rotated(1)[0], Treatment::Nothing);
        assert_eq!(rotated(1)[4], Treatment::NoFlood);
        for r in 0..5 {
            let mut all = rotated(r);
            all.dedup();
            assert_eq!(all.len(), TREATMENTS.len());
        }
    }
}

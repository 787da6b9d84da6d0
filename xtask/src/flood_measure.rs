//! One treatment of the flood bench ([`measure`]): a fresh gateway in the node
//! namespace, an MCP session, a warm-up, then one measured window with the flood
//! sender, wrk and the kernel's counters read around it; and the processes it runs
//! (each stopped on drop, also on error paths).

use std::io::Read as _;
use std::net::SocketAddrV4;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};

use super::net::{self, CpuStat, Lab};
use super::{Treatment, Window, send};
use crate::bench::CONNECTIONS;
use crate::bench::load::{LoadResult, Request, tools_call_body, wrk_script};
use crate::bench::procs::Proc;
use crate::step;

/// Sending threads (one raw socket each), all on CPU 1.
const SENDER_THREADS: u32 = 2;
/// Niceness of every measured process (gateway, demo server, wrk, sender): other
/// builds on this shared machine then take little of the measured cores during a window.
const NICE: &str = "-10";
/// Packets one flood may send at most.
const MAX_PACKETS: u64 = 200_000_000;
/// The flood starts this long before the legitimate load and ends this long after it.
const LEAD: Duration = Duration::from_millis(300);
/// How long a gateway may take to come up.
const START_LIMIT: Duration = Duration::from_secs(20);
/// The gateway's blocked-drop counter.
const DROP_SERIES: &str = r#"mcp_xdp_packets_total{action="drop",reason="blocked"}"#;

/// What every treatment needs.
pub struct Env<'a> {
    /// The namespaces.
    pub lab: &'a Lab,
    /// Where the release `mcp-gateway` and `mcp-demo-server` are.
    pub bin_dir: &'a Path,
    /// Scratch directory (configs, logs, the wrk script).
    pub dir: &'a Path,
    /// Seconds of legitimate load per window.
    pub secs: f64,
}

/// `program args` in namespace `ns`, pinned to CPU 0 at [`NICE`], output to `dir/name.log`.
pub fn start_in(ns: &str, name: &str, program: &Path, args: &[&str], dir: &Path) -> anyhow::Result<Proc> {
    let mut all: Vec<String> = ["-n", NICE, "ip", "netns", "exec", ns].map(str::to_owned).to_vec();
    all.push(program.display().to_string());
    all.extend(args.iter().map(|a| (*a).to_owned()));
    let log = dir.join(format!("{name}.log"));
    Proc::start_env(name, 0, Path::new("nice"), &all, &log, &[("LOG_LEVEL", "warn")])
}

fn gateway_config(t: Treatment, dir: &Path) -> anyhow::Result<PathBuf> {
    let mut yaml = String::from(
        "server:\n  host: 0.0.0.0\n  port: 8443\n  backlog: 4096\nadmin:\n  host: 127.0.0.1\n  port: 9090\n\
         logging:\n  level: warn\n  access_log: false\n\
         backends:\n  - name: demo\n    url: http://127.0.0.1:3001/mcp\n",
    );
    if let Some(mode) = t.xdp_mode() {
        let ifs = net::NODE_IFS.join(", ");
        yaml.push_str(&format!(
            "xdp:\n  enabled: true\n  interfaces: [{ifs}]\n  mode: {mode}\n  blocklist: [{}]\n  syn_rate: 0\n",
            net::BLOCKED_CIDR
        ));
    }
    let path = dir.join(format!("gateway-{}.yaml", t.xdp_mode().unwrap_or("off")));
    std::fs::write(&path, yaml).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// Starts the gateway for `t`; waits for its metrics (and `mcp_ebpf_mode 1` with XDP).
fn start_gateway(env: &Env<'_>, t: Treatment) -> anyhow::Result<(Proc, bool)> {
    let cfg = gateway_config(t, env.dir)?;
    let cfg = cfg.display().to_string();
    let bin = env.bin_dir.join("mcp-gateway");
    let mut gw = start_in(&env.lab.node, "mcp-gateway", &bin, &["run", "--config", &cfg, "--workers", "1"], env.dir)?;
    let started = Instant::now();
    while started.elapsed() < START_LIMIT {
        gw.check_alive()?;
        if let Ok(m) = env.lab.metrics() {
            let mode = crate::netns::sample(&m, "mcp_ebpf_mode");
            if t.xdp_mode().is_none() || mode == 1 {
                return Ok((gw, true));
            }
            if started.elapsed() > Duration::from_secs(5) && m.contains("mcp_ebpf_mode 0") {
                return Ok((gw, false));
            }
        }
        sleep(Duration::from_millis(100));
    }
    bail!("mcp-gateway did not come up within {START_LIMIT:?} (see {}/mcp-gateway.log)", env.dir.display())
}

/// Makes the node's veth NAPI threaded (driver-mode XDP runs there) and pins the threads
/// to CPU 0, the gateway host's core, at SCHED_FIFO 50 so they preempt userspace the way
/// softirq processing does; returns how many were pinned.
fn pin_napi(lab: &Lab) -> anyhow::Result<usize> {
    for dev in net::NODE_IFS {
        lab.write_sys(&lab.node, &format!("/sys/class/net/{dev}/threaded"), "1")?;
    }
    let mut pinned = 0;
    for entry in std::fs::read_dir("/proc")?.flatten().take(100_000) {
        let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        if net::NODE_IFS.iter().any(|d| comm.trim().starts_with(&format!("napi/{d}-"))) {
            let pid = entry.file_name().to_string_lossy().into_owned();
            let out = net::capture(Command::new("taskset").args(["-pc", "0", &pid]))?;
            ensure!(out.status.success(), "taskset -pc 0 {pid} ({})", comm.trim());
            let out = net::capture(Command::new("chrt").args(["-f", "-p", "50", &pid]))?;
            ensure!(out.status.success(), "chrt -f -p 50 {pid} ({})", comm.trim());
            pinned += 1;
        }
    }
    Ok(pinned)
}

/// MCP `initialize` from the client namespace; the session id.
fn initialize(lab: &Lab) -> anyhow::Result<String> {
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"xtask-flood","version":"1"}}}"#;
    let out = net::capture(
        net::exec(&lab.client, "curl")
            .args(["-s", "--max-time", "5", "-o", "/dev/null", "-D", "-", "-w", "status=%{http_code}\n"])
            .args(["-H", "content-type: application/json", "-H", "accept: application/json, text/event-stream"])
            .args(["-d", body, &format!("http://{}:8443/mcp", net::NODE_CLIENT_IP)]),
    )?;
    let text = String::from_utf8_lossy(&out.stdout);
    ensure!(text.contains("status=200"), "initialize from the client namespace did not answer 200:\n{text}");
    crate::bench::targets::parse_session_header(&text).context("initialize returned no Mcp-Session-Id")
}

/// wrk in the client namespace on CPU 0; the 2xx result and the error count.
fn wrk(lab: &Lab, request: &Request, secs: f64, dir: &Path) -> anyhow::Result<(LoadResult, u64)> {
    let script = dir.join("tools-call.lua");
    std::fs::write(&script, wrk_script(request)).with_context(|| format!("writing {}", script.display()))?;
    let mut cmd = Command::new("taskset");
    cmd.args([
        "-c",
        "0",
        "nice",
        "-n",
        NICE,
        "ip",
        "netns",
        "exec",
        &lab.client,
        "wrk",
        "-t1",
        &format!("-c{CONNECTIONS}"),
    ])
    .arg(format!("-d{}s", secs.round().max(1.0)))
    .arg("-s")
    .arg(&script)
    .arg(&request.url);
    let limit = Duration::from_secs_f64(secs + 30.0);
    let text = crate::run::output(&mut cmd, limit).context("wrk failed or did not finish")?;
    super::report::parse_wrk_errors(&text)
}

/// The sender in the attacker namespace on CPU 1; killed if dropped before it ends.
struct Sender(Child);

impl Drop for Sender {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_sender(lab: &Lab, secs: f64) -> anyhow::Result<Sender> {
    let spec = send::SendSpec {
        target: SocketAddrV4::new(net::NODE_ATTACK_IP.parse()?, 8443),
        sources: net::blocked_sources(),
        secs,
        max_packets: MAX_PACKETS,
        threads: SENDER_THREADS,
    };
    let exe = std::env::current_exe().context("the xtask binary")?;
    let child = Command::new("taskset")
        .args(["-c", "1", "nice", "-n", NICE, "ip", "netns", "exec", &lab.attacker])
        .arg(exe)
        .args(["bench", "--flood-send", &spec.render()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .context("starting the flood sender")?;
    Ok(Sender(child))
}

fn finish_sender(mut sender: Sender, limit: Duration) -> anyhow::Result<u64> {
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = sender.0.try_wait()? {
            break status;
        }
        ensure!(Instant::now() < deadline, "the flood sender did not end within {limit:?}");
        sleep(Duration::from_millis(20));
    };
    let mut text = String::new();
    if let Some(mut out) = sender.0.stdout.take() {
        out.read_to_string(&mut text)?;
    }
    ensure!(status.success(), "the flood sender failed ({status}): {text}");
    Ok(send::parse_count(&text)?.0.sent)
}

fn dropped_now(lab: &Lab, t: Treatment) -> anyhow::Result<Option<u64>> {
    Ok(match t {
        Treatment::Iptables => Some(lab.iptables_dropped()?),
        Treatment::XdpGeneric | Treatment::XdpDriver => Some(crate::netns::sample(&lab.metrics()?, DROP_SERIES)),
        Treatment::NoFlood | Treatment::Nothing => None,
    })
}

/// A SCHED_IDLE busy loop on one CPU for at most `secs` (`timeout`), stopped on drop.
/// It runs only when nothing else wants the CPU and keeps the virtual CPU from halting:
/// without it, windows without flood paid the VM's halt/wake-up latency whenever a CPU
/// idled (the flood's sender and interrupts keep both busy), which skewed the comparison.
struct Spinner(Child);

impl Spinner {
    fn start(cpu: u32, secs: f64) -> anyhow::Result<Self> {
        let child = Command::new("chrt")
            .args(["-i", "0", "taskset", "-c", &cpu.to_string(), "timeout", &format!("{:.0}", secs.ceil())])
            .args(["sh", "-c", "while :; do :; done"])
            .stdin(Stdio::null())
            .spawn()
            .context("starting the idle spinner (chrt, taskset, timeout)")?;
        Ok(Self(child))
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        // `timeout` passes SIGTERM on to the loop; SIGKILL would orphan it until its limit.
        let _ = Command::new("kill").args(["-TERM", &self.0.id().to_string()]).status();
        let _ = self.0.wait();
    }
}

/// Removes the iptables rule on drop.
struct Rule<'a>(&'a Lab);

impl Drop for Rule<'_> {
    fn drop(&mut self) {
        let _ = self.0.iptables_rule("-D");
    }
}

/// One treatment: fresh gateway, session, warm-up, measured window. `None` when XDP
/// does not attach in driver mode (the treatment is then skipped for the run).
pub fn measure(env: &Env<'_>, t: Treatment, round: u32, notes: &mut Vec<String>) -> anyhow::Result<Option<Window>> {
    let lab = env.lab;
    let _rule = if t == Treatment::Iptables {
        lab.iptables_rule("-A")?;
        Some(Rule(lab))
    } else {
        None
    };
    let _spinners = (Spinner::start(0, env.secs + 60.0)?, Spinner::start(1, env.secs + 60.0)?);
    let (mut gw, attached) = start_gateway(env, t)?;
    let attach = if t.xdp_mode().is_some() { lab.xdp_attach_mode()? } else { "none" };
    if let Some(mode) = t.xdp_mode()
        && (!attached || attach != mode)
    {
        ensure!(t == Treatment::XdpDriver, "XDP did not attach in {mode} mode (got {attach})");
        notes.push("XDP did not attach in driver mode on veth here: that treatment was skipped".to_owned());
        return Ok(None);
    }
    if t == Treatment::XdpDriver {
        match pin_napi(lab) {
            Ok(n) => notes.push(format!(
                "driver mode: the node veths' NAPI made threaded and its {n} kthreads pinned to CPU 0 at SCHED_FIFO 50, so native XDP runs on the gateway host's core with softirq-like priority"
            )),
            Err(e) => notes.push(format!("driver mode: NAPI not threaded ({e:#}); native XDP ran on the sender's CPU 1")),
        }
    }
    let url = format!("http://{}:8443/mcp", net::NODE_CLIENT_IP);
    let request = Request { url, session: initialize(lab)?, body: tools_call_body(), bearer: None };
    let (_, warm_errors) = wrk(lab, &request, 1.0, env.dir).context("warm-up")?;
    ensure!(warm_errors == 0, "the legitimate client saw {warm_errors} errors in the warm-up (no flood yet)");

    let dropped_before = dropped_now(lab, t)?;
    let handover_before = lab.handover_drops()?;
    let cpu_before = CpuStat::read()?;
    let started = Instant::now();
    let flood_secs = env.secs.round().max(1.0) + 2.0 * LEAD.as_secs_f64();
    let sender = if t == Treatment::NoFlood { None } else { Some(start_sender(lab, flood_secs)?) };
    sleep(LEAD);
    let (load, errors) = wrk(lab, &request, env.secs, env.dir)?;
    let sent = match sender {
        Some(s) => finish_sender(s, Duration::from_secs_f64(flood_secs + 15.0))?,
        None => {
            sleep(Duration::from_secs_f64(flood_secs).saturating_sub(started.elapsed()));
            0
        }
    };
    let cpu_after = CpuStat::read()?;
    let wall_secs = started.elapsed().as_secs_f64();
    let handover_drops = lab.handover_drops()?.saturating_sub(handover_before);
    let dropped = dropped_now(lab, t)?.zip(dropped_before).map(|(a, b)| a.saturating_sub(b));
    if t == Treatment::NoFlood {
        ensure!(errors == 0, "the legitimate client saw {errors} socket errors or non-2xx answers without any flood");
    }
    gw.check_alive()?;
    gw.stop();
    let hz = crate::bench::procs::ticks_per_sec();
    let w = Window {
        treatment: t,
        round,
        load,
        errors,
        wall_secs,
        sent,
        dropped,
        handover_drops,
        kernel_secs: cpu_before.kernel_since(&cpu_after, 0) as f64 / hz,
        kernel_cpu0_secs: cpu_before.kernel_since(&cpu_after, 1) as f64 / hz,
        busy_secs: cpu_before.busy_since(&cpu_after, 0) as f64 / hz,
        attach,
    };
    step!(
        "  {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, errors {}; flood sent {} ({:.0} kpps), dropped {}, hand-over drops {}; kernel CPU {:.2} s (CPU0 {:.2} s) in {:.1} s",
        w.load.rate(),
        w.load.p50_us / 1e3,
        w.load.p99_us / 1e3,
        w.errors,
        w.sent,
        w.sent as f64 / w.wall_secs / 1e3,
        w.dropped.map_or("-".to_owned(), |d| d.to_string()),
        w.handover_drops,
        w.kernel_secs,
        w.kernel_cpu0_secs,
        w.wall_secs
    );
    Ok(Some(w))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_enable_xdp_only_for_xdp_treatments() {
        let dir = std::env::temp_dir().join(format!("xtask-flood-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let off = std::fs::read_to_string(gateway_config(Treatment::Iptables, &dir).unwrap()).unwrap();
        assert!(!off.contains("xdp:") && off.contains("port: 8443"));
        let on = std::fs::read_to_string(gateway_config(Treatment::XdpDriver, &dir).unwrap()).unwrap();
        assert!(on.contains("mode: driver") && on.contains(net::BLOCKED_CIDR) && on.contains("[nc, na]"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

//! `cargo xtask netns`: the XDP data plane on real packets, in network namespaces
//! this task creates and always removes (root only; CI runs as root).
//!
//! A node namespace runs `mcp-demo-server` and `mcp-gateway` with XDP attached to
//! its end of a veth pair; a client namespace on the other end owns two source
//! addresses, one of them blocked. For each attach mode (driver, generic):
//! - pings from the allowed source are answered; from the blocked source none are,
//!   and `mcp_xdp_packets_total{action="drop",reason="blocked"}` grows by exactly
//!   the number sent;
//! - an MCP `initialize` from the allowed source gets 200 and a session id through
//!   the gateway; from the blocked source it times out;
//! - after the gateway is killed (SIGKILL), no XDP program is left on the interface
//!   (bpf_link attach: a crash never leaves traffic blackholed).
//!
//! With `xdp.pin_path` (generic mode): the pinned link keeps the program running
//! after a SIGKILL (a blocked source is still dropped, and counted in the pinned
//! counters), the restarted gateway swaps its own program into the link, and
//! removing the pins detaches it.
//!
//! Then three nodes behind ECMP (`netns_cluster.rs`): every flow of a client IP
//! reaches its owner node, whichever node it enters, and removing a node re-pins
//! only its clients.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};

use crate::step;

#[path = "netns_cluster.rs"]
mod cluster;

const NODE_IP: &str = "10.201.0.1";
const CLIENT_IP: &str = "10.201.0.2";
const BLOCKED_IP: &str = "10.201.0.3";
const PINGS: u32 = 20;
const START_LIMIT: Duration = Duration::from_secs(30);

/// Names of the namespaces and veth ends, unique per run.
#[derive(Debug)]
struct Topology {
    node: String,
    client: String,
    node_if: String,
    client_if: String,
}

impl Topology {
    fn create() -> anyhow::Result<Self> {
        let id = std::process::id() % 100_000;
        let topo = Self {
            node: format!("mcpgw-node-{id}"),
            client: format!("mcpgw-client-{id}"),
            node_if: format!("mgn{id}"),
            client_if: format!("mgc{id}"),
        };
        // From here on Drop removes whatever was made, even if a step fails.
        ip(&["netns", "add", &topo.node])?;
        ip(&["netns", "add", &topo.client])?;
        let (n, c) = (topo.node.as_str(), topo.client.as_str());
        let (nif, cif) = (topo.node_if.as_str(), topo.client_if.as_str());
        // Both ends are created inside the namespaces: nothing appears in the root one.
        ip(&["link", "add", nif, "netns", n, "type", "veth", "peer", "name", cif, "netns", c])?;
        ip(&["-n", n, "addr", "add", &format!("{NODE_IP}/24"), "dev", nif])?;
        ip(&["-n", c, "addr", "add", &format!("{CLIENT_IP}/24"), "dev", cif])?;
        ip(&["-n", c, "addr", "add", &format!("{BLOCKED_IP}/24"), "dev", cif])?;
        for (ns, dev) in [(n, "lo"), (c, "lo"), (n, nif), (c, cif)] {
            ip(&["-n", ns, "link", "set", dev, "up"])?;
        }
        Ok(topo)
    }

    /// `ip netns exec <ns> <program>`.
    fn exec(ns: &str, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns]).arg(program);
        cmd
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        // Deleting a namespace deletes its veth end, and with it the pair.
        for ns in [&self.node, &self.client] {
            let _ = Command::new("ip").args(["netns", "del", ns]).stderr(Stdio::null()).status();
        }
    }
}

/// A child process killed on drop.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ip").args(args).output().context("running ip (apt-get install iproute2)")?;
    ensure!(out.status.success(), "ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    Ok(())
}

/// Runs a bounded command (the commands bound themselves: ping -w, curl --max-time).
fn capture(cmd: &mut Command) -> anyhow::Result<Output> {
    cmd.stdin(Stdio::null()).output().with_context(|| format!("running {cmd:?}"))
}

/// The value of the sample `name{labels}` in Prometheus text, 0 when absent.
pub fn sample(metrics: &str, series: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.trim().parse::<f64>().ok()))
        .map_or(0, |v| v as u64)
}

/// `(transmitted, received)` from ping's summary line.
pub fn ping_counts(ping_output: &str) -> Option<(u32, u32)> {
    let line = ping_output.lines().find(|l| l.contains("packets transmitted"))?;
    let field = |suffix: &str| line.split(',').find_map(|part| part.trim().strip_suffix(suffix)?.trim().parse().ok());
    Some((field(" packets transmitted")?, field(" received")?))
}

fn metrics(topo: &Topology) -> anyhow::Result<String> {
    metrics_in(&topo.node)
}

/// `/metrics` of the gateway in namespace `ns` (admin on 127.0.0.1:9090).
fn metrics_in(ns: &str) -> anyhow::Result<String> {
    let out = capture(Topology::exec(ns, "curl").args(["-sf", "--max-time", "5", "http://127.0.0.1:9090/metrics"]))?;
    ensure!(out.status.success(), "scraping /metrics in {ns} failed");
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `PINGS` echo requests from `source` (-c without -w: exactly that many are sent,
/// ending at most -W after the last); returns `(transmitted, received)`.
fn ping(topo: &Topology, source: &str) -> anyhow::Result<(u32, u32)> {
    let count = PINGS.to_string();
    let out = capture(
        Topology::exec(&topo.client, "ping")
            .args(["-n", "-q", "-c", &count, "-i", "0.05", "-W", "1", "-I", source, NODE_IP]),
    )?;
    let text = String::from_utf8_lossy(&out.stdout);
    ping_counts(&text).with_context(|| format!("unexpected ping output: {text}"))
}

/// MCP `initialize` from `source`; the HTTP status, or `None` when it timed out.
fn initialize(topo: &Topology, source: &str) -> anyhow::Result<Option<(u16, bool)>> {
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"netns","version":"1"}}}"#;
    let out = capture(Topology::exec(&topo.client, "curl").args([
        "-s",
        "-i",
        "--max-time",
        "3",
        "--interface",
        source,
        "-H",
        "content-type: application/json",
        "-H",
        "accept: application/json, text/event-stream",
        "-d",
        body,
        &format!("http://{NODE_IP}:8443/mcp"),
    ]))?;
    if !out.status.success() {
        return Ok(None);
    }
    let text = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    Ok(Some((status, text.contains("\nmcp-session-id:"))))
}

fn xdp_attached(topo: &Topology) -> anyhow::Result<bool> {
    Ok(xdp_program(topo)?.is_some())
}

/// The id of the XDP program on the node's interface, if one is attached.
fn xdp_program(topo: &Topology) -> anyhow::Result<Option<u32>> {
    let out = capture(Command::new("ip").args(["-n", &topo.node, "-d", "link", "show", &topo.node_if]))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let Some(rest) = text.split("prog/xdp").nth(1) else { return Ok(None) };
    let mut words = rest.split_whitespace().skip_while(|w| *w != "id");
    Ok(Some(words.nth(1).and_then(|id| id.parse().ok()).with_context(|| format!("no program id in: {text}"))?))
}

/// A bpffs of its own (`ip netns exec` remounts /sys, hiding /sys/fs/bpf from
/// the gateway), unmounted on drop: that removes the pins, and removing a pinned
/// link detaches its program.
struct Bpffs(PathBuf);

impl Bpffs {
    fn mount() -> anyhow::Result<Self> {
        let dir = PathBuf::from(format!("/run/mcpgw-bpffs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let fs = Self(dir);
        let out = capture(Command::new("mount").args(["-t", "bpf", "bpf"]).arg(&fs.0))?;
        ensure!(out.status.success(), "mount -t bpf: {}", String::from_utf8_lossy(&out.stderr).trim());
        Ok(fs)
    }
}

impl Drop for Bpffs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(self.0.join("gw"));
        let _ = Command::new("umount").arg(&self.0).stderr(Stdio::null()).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// `xdp.pin_path`: the program outlives a killed gateway (and still sheds), and
/// the next gateway swaps its own program into the pinned link.
fn pinned_restart(topo: &Topology, bin_dir: &Path) -> anyhow::Result<()> {
    let pins = Bpffs::mount()?;
    let cfg = config_with(bin_dir, topo, "generic", &format!("  pin_path: {}\n", pins.0.join("gw").display()))?;
    let first = start_gateway(topo, bin_dir, &cfg, "netns-pinned-1.log")?;
    let before = xdp_program(topo)?.context("no XDP program after start")?;
    drop(first);
    let after_kill = xdp_program(topo)?;
    ensure!(after_kill == Some(before), "[pinned] program {before} gone after SIGKILL: {after_kill:?}");
    let (sent, replies) = ping(topo, BLOCKED_IP)?;
    ensure!(replies == 0, "[pinned] {replies} replies to the blocked source while no gateway ran");
    let second = start_gateway(topo, bin_dir, &cfg, "netns-pinned-2.log")?;
    let now = xdp_program(topo)?.context("no XDP program after restart")?;
    ensure!(now != before, "[pinned] the restarted gateway did not swap its program in (still {before})");
    let series = r#"mcp_xdp_packets_total{action="drop",reason="blocked"}"#;
    let counted = sample(&metrics(topo)?, series);
    ensure!(counted == u64::from(sent), "[pinned] {counted} drops counted across the restart, {sent} sent");
    let good = initialize(topo, CLIENT_IP)?;
    ensure!(good == Some((200, true)), "[pinned] initialize after the restart gave {good:?}");
    drop(second);
    drop(pins);
    ensure!(!xdp_attached(topo)?, "[pinned] XDP program left after its pin was removed");
    step!(
        "netns [pinned] ok: program {before} kept running while no gateway ran ({sent} pings dropped, counted \
         after restart); the restarted gateway swapped in program {now}; unpinned = detached"
    );
    Ok(())
}

fn wait_ready(topo: &Topology, gateway: &mut Guard) -> anyhow::Result<()> {
    wait_ready_in(&topo.node, gateway)
}

/// Waits until the gateway in `ns` reports `mcp_ebpf_mode 1`.
fn wait_ready_in(ns: &str, gateway: &mut Guard) -> anyhow::Result<()> {
    let started = Instant::now();
    while started.elapsed() < START_LIMIT {
        if let Some(status) = gateway.0.try_wait()? {
            bail!("mcp-gateway exited during startup: {status}");
        }
        // The admin listener answers before the data plane is loaded: wait for mode 1.
        if metrics_in(ns).is_ok_and(|m| sample(&m, "mcp_ebpf_mode") == 1) {
            return Ok(());
        }
        sleep(Duration::from_millis(200));
    }
    bail!("mcp-gateway in {ns} did not report mcp_ebpf_mode 1 within {START_LIMIT:?} (see its log)")
}

fn config(dir: &Path, topo: &Topology, mode: &str) -> anyhow::Result<PathBuf> {
    config_with(dir, topo, mode, "")
}

/// The node's config in `mode`, with `extra` lines appended to the `xdp:` section.
fn config_with(dir: &Path, topo: &Topology, mode: &str, extra: &str) -> anyhow::Result<PathBuf> {
    let yaml = format!(
        "server: {{host: 0.0.0.0, port: 8443}}\nadmin: {{host: 127.0.0.1, port: 9090}}\n\
         backends: [{{name: demo, url: \"http://127.0.0.1:3001/mcp\"}}]\n\
         xdp:\n  enabled: true\n  interfaces: [{}]\n  mode: {mode}\n  blocklist: [{BLOCKED_IP}/32]\n  \
         blocklist_all_ports: true\n  syn_rate: 0\n{extra}",
        topo.node_if
    );
    let path = dir.join(format!("netns-{mode}.yaml"));
    std::fs::write(&path, yaml).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// Starts the gateway in the node namespace with `cfg`, logging to `log`; returns
/// once it reports `mcp_ebpf_mode 1`.
fn start_gateway(topo: &Topology, bin_dir: &Path, cfg: &Path, log: &str) -> anyhow::Result<Guard> {
    let log = std::fs::File::create(bin_dir.join(log))?;
    let mut gateway = Guard(
        Topology::exec(&topo.node, bin_dir.join("mcp-gateway"))
            .args(["run", "--config"])
            .arg(cfg)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting mcp-gateway in the node namespace")?,
    );
    wait_ready(topo, &mut gateway)?;
    Ok(gateway)
}

/// One attach mode: start the gateway, check verdicts and counts, kill it.
fn scenario(topo: &Topology, bin_dir: &Path, mode: &str) -> anyhow::Result<()> {
    let cfg = config(bin_dir, topo, mode)?;
    let gateway = start_gateway(topo, bin_dir, &cfg, &format!("netns-{mode}.log"))?;
    let m = metrics(topo)?;
    ensure!(sample(&m, "mcp_ebpf_mode") == 1, "[{mode}] XDP did not attach (see netns-{mode}.log):\n{m}");
    ensure!(xdp_attached(topo)?, "[{mode}] no XDP program on {}", topo.node_if);
    let series = r#"mcp_xdp_packets_total{action="drop",reason="blocked"}"#;

    let (_, ok) = ping(topo, CLIENT_IP)?;
    let before = sample(&metrics(topo)?, series);
    let (sent, blocked) = ping(topo, BLOCKED_IP)?;
    let after = sample(&metrics(topo)?, series);
    step!(
        "netns [{mode}] ping from {CLIENT_IP}: {ok}/{PINGS}; from {BLOCKED_IP} (blocked): {blocked}/{PINGS}, counted {}",
        after - before
    );
    ensure!(ok == PINGS && blocked == 0, "[{mode}] ping replies {ok} and {blocked}, expected {PINGS} and 0");
    ensure!(sent == PINGS, "[{mode}] ping sent {sent} requests, asked for {PINGS}");
    ensure!(after - before == u64::from(sent), "[{mode}] blocked counter moved by {}, sent {sent}", after - before);

    let good = initialize(topo, CLIENT_IP)?;
    let bad = initialize(topo, BLOCKED_IP)?;
    step!("netns [{mode}] MCP initialize from {CLIENT_IP}: {good:?}; from {BLOCKED_IP}: {bad:?}");
    ensure!(good == Some((200, true)), "[{mode}] initialize through the gateway gave {good:?}");
    ensure!(bad.is_none(), "[{mode}] a blocked source reached the gateway: {bad:?}");
    let passed = sample(&metrics(topo)?, r#"mcp_xdp_packets_total{action="pass",reason="passed"}"#);
    ensure!(passed > 0, "[{mode}] the MCP exchange was not counted as passed");

    // A crash (SIGKILL) closes the bpf_link fd: the program must be gone.
    drop(gateway);
    ensure!(!xdp_attached(topo)?, "[{mode}] XDP program left on {} after the gateway died", topo.node_if);
    step!("netns [{mode}] ok: counters exact, MCP served, program detached after SIGKILL");
    Ok(())
}

/// `cargo xtask netns`: install the toolchain, build the debug binaries, run [`netns`].
pub fn run(root: &Path) -> anyhow::Result<()> {
    crate::setup::setup_ebpf_toolchain(root)?;
    step!("building the gateway binaries");
    crate::run::run(
        Command::new(crate::test::cargo()).args(["build", "-p", "mcp-gateway", "--bins"]).current_dir(root),
        Duration::from_secs(40 * 60),
    )?;
    let python = crate::setup::setup_python(root)?;
    netns(&crate::test::target_dir(root).join("debug"), Some(&python))
}

/// Runs the namespace scenarios with the binaries in `bin_dir` (and the official Python SDK
/// client from the e2e venv's `python`, when given).
pub fn netns(bin_dir: &Path, python: Option<&Path>) -> anyhow::Result<()> {
    for bin in ["mcp-gateway", "mcp-demo-server"] {
        ensure!(
            bin_dir.join(bin).exists(),
            "{} not built (cargo build -p mcp-gateway --bins)",
            bin_dir.join(bin).display()
        );
    }
    let started = Instant::now();
    let topo = Topology::create().context("creating the network namespaces (needs root)")?;
    let server = Guard(
        Topology::exec(&topo.node, bin_dir.join("mcp-demo-server"))
            .args(["--listen", "127.0.0.1:3001"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .context("starting mcp-demo-server")?,
    );
    for mode in ["driver", "generic"] {
        scenario(&topo, bin_dir, mode)?;
    }
    pinned_restart(&topo, bin_dir)?;
    drop(server);
    drop(topo);
    cluster::scenario(bin_dir, python)?;
    step!("netns: all scenarios passed ({:.1} s)", started.elapsed().as_secs_f64());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_read_by_series() {
        let text = "# HELP x\nmcp_ebpf_mode 1\nmcp_xdp_packets_total{action=\"drop\",reason=\"blocked\"} 20\n";
        assert_eq!(sample(text, "mcp_ebpf_mode"), 1);
        assert_eq!(sample(text, r#"mcp_xdp_packets_total{action="drop",reason="blocked"}"#), 20);
        assert_eq!(sample(text, r#"mcp_xdp_packets_total{action="tx",reason="forwarded"}"#), 0);
    }

    #[test]
    fn ping_summary_is_parsed() {
        let out =
            "--- 10.201.0.1 ping statistics ---\n20 packets transmitted, 0 received, 100% packet loss, time 1000ms\n";
        assert_eq!(ping_counts(out), Some((20, 0)));
        assert_eq!(ping_counts("20 packets transmitted, 19 received, 5% packet loss"), Some((20, 19)));
        assert_eq!(ping_counts("nothing"), None);
    }
}

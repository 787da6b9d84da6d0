//! Three gateway nodes behind ECMP: every flow of a client IP reaches its owner
//! node, whichever node it enters, and removing a node re-pins only its clients.
//!
//! Namespaces: a bridge (`sw`), a client with [`CLIENTS`] source addresses, and
//! nodes n1, n2 and n3, each with the service address (VIP) on its loopback
//! (`arp_ignore`/`arp_announce`, so only routed packets reach it),
//! `mcp-demo-server --name nX` and `mcp-gateway` with XDP (generic mode: native
//! XDP_TX on veth needs the peer's NAPI). The client routes the VIP over all nodes
//! with an L4 multipath hash, so each new connection enters any node. A node that
//! does not own the client wraps the packet in IP-in-IP to the owner (XDP_TX); the
//! owner's XDP program strips it and its stack answers the client directly (direct
//! server return). The client's MTU is 1480 so an encapsulated packet (+20 bytes)
//! still fits the 1500-byte links.
//!
//! Checks, in order:
//! 1. per client, an `initialize` then several `whoami` tool calls, each on a new
//!    connection, all succeed and all report the same server; the nodes do not share
//!    a session key, so a call that reached another node would get 404. The packets
//!    the nodes forwarded equal those they decapsulated.
//! 2. one node's gateway is killed (SIGKILL) and its route leaves the client's
//!    ECMP set (what the external load balancer's own check does); within
//!    [`NOTICE_LIMIT`] both survivors report `mcp_xdp_nodes_live 2` from their
//!    health checks. Then every client of the removed node gets a new session on a
//!    live node (again consistent over new connections), and every other client's
//!    existing session still works and still reaches its original node.

use std::path::Path;
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};

use super::{Guard, Topology, capture, ip, metrics_in, sample, wait_ready_in};
use crate::step;

const VIP: &str = "10.202.0.100";
const CLIENTS: [&str; 8] =
    ["10.202.0.2", "10.202.0.3", "10.202.0.4", "10.202.0.5", "10.202.0.6", "10.202.0.7", "10.202.0.8", "10.202.0.9"];
const NODES: [(&str, &str); 3] = [("n1", "10.202.0.11"), ("n2", "10.202.0.12"), ("n3", "10.202.0.13")];
/// How long the survivors may take to mark a killed node dead (checks every 200 ms,
/// dead after 3 failures: about 0.6 s).
const NOTICE_LIMIT: Duration = Duration::from_secs(10);
/// Tool calls per client, each on a new TCP connection (a new source port).
const CALLS: usize = 6;
/// Concurrent official-SDK sessions through the cluster.
const SDK_SESSIONS: usize = 4;

/// The namespaces of one run; dropping it removes them.
struct Cluster {
    prefix: String,
}

impl Cluster {
    fn ns(&self, name: &str) -> String {
        format!("{}-{name}", self.prefix)
    }

    fn create() -> anyhow::Result<Self> {
        let cluster = Self { prefix: format!("mcpgw{}", std::process::id() % 100_000) };
        let sw = cluster.ns("sw");
        for name in ["sw", "c", "n1", "n2", "n3"] {
            ip(&["netns", "add", &cluster.ns(name)])?;
        }
        ip(&["-n", &sw, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &sw, "link", "set", "br0", "up"])?;
        for name in ["c", "n1", "n2", "n3"] {
            let (ns, port) = (cluster.ns(name), format!("p-{name}"));
            ip(&["link", "add", "eth0", "netns", &ns, "type", "veth", "peer", "name", &port, "netns", &sw])?;
            ip(&["-n", &sw, "link", "set", &port, "master", "br0", "up"])?;
            ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        }
        let client = cluster.ns("c");
        for addr in CLIENTS {
            ip(&["-n", &client, "addr", "add", &format!("{addr}/24"), "dev", "eth0"])?;
        }
        for (name, addr) in NODES {
            let ns = cluster.ns(name);
            ip(&["-n", &ns, "addr", "add", &format!("{addr}/24"), "dev", "eth0"])?;
            ip(&["-n", &ns, "addr", "add", &format!("{VIP}/32"), "dev", "lo"])?;
            sysctl(&ns, &["net.ipv4.conf.all.arp_ignore=1", "net.ipv4.conf.all.arp_announce=2"])?;
        }
        sysctl(&client, &["net.ipv4.fib_multipath_hash_policy=1"])?;
        // IP-in-IP adds 20 bytes on the way to the owner: keep client packets at 1480.
        ip(&["-n", &client, "link", "set", "eth0", "mtu", "1480"])?;
        cluster.route_vip(&NODES.map(|(_, addr)| addr))?;
        Ok(cluster)
    }

    /// Routes the VIP from the client over `nodes` (equal-cost multipath).
    fn route_vip(&self, nodes: &[&str]) -> anyhow::Result<()> {
        let (client, vip) = (self.ns("c"), format!("{VIP}/32"));
        let mut args = vec!["-n", client.as_str(), "route", "replace", vip.as_str()];
        for addr in nodes {
            args.extend(["nexthop", "via", addr]);
        }
        ip(&args)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for name in ["c", "n1", "n2", "n3", "sw"] {
            let _ = Command::new("ip").args(["netns", "del", &self.ns(name)]).stderr(Stdio::null()).status();
        }
    }
}

fn sysctl(ns: &str, settings: &[&str]) -> anyhow::Result<()> {
    let out = capture(Topology::exec(ns, "sysctl").arg("-qw").args(settings))?;
    ensure!(out.status.success(), "sysctl {settings:?} in {ns}: {}", String::from_utf8_lossy(&out.stderr));
    Ok(())
}

/// The MAC of `eth0` in `ns`.
fn mac(ns: &str) -> anyhow::Result<String> {
    let out = capture(Command::new("ip").args(["-n", ns, "link", "show", "eth0"]))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut words = text.split_whitespace().skip_while(|w| *w != "link/ether");
    words.nth(1).map(str::to_owned).with_context(|| format!("no MAC on eth0 in {ns}: {text}"))
}

/// One MCP POST from `source` to the VIP; `(status, headers and body)`.
fn post(cluster: &Cluster, source: &str, session: Option<&str>, body: &str) -> anyhow::Result<(u16, String)> {
    let mut cmd = Topology::exec(&cluster.ns("c"), "curl");
    cmd.args(["-s", "-i", "--max-time", "5", "--interface", source]).args([
        "-H",
        "content-type: application/json",
        "-H",
        "accept: application/json, text/event-stream",
    ]);
    if let Some(id) = session {
        cmd.args(["-H", &format!("mcp-session-id: {id}"), "-H", "mcp-protocol-version: 2025-06-18"]);
    }
    let out = capture(cmd.args(["-d", body, &format!("http://{VIP}:8443/mcp")]))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    Ok((status, text))
}

/// The value of header `name` in a raw HTTP response.
fn header(response: &str, name: &str) -> Option<String> {
    response.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
    })
}

/// The demo server's name in a `whoami` result (`\"server\":\"n1\"` inside the text).
pub fn whoami_server(response: &str) -> Option<String> {
    let start = response.find(r#"\"server\":\""#)? + r#"\"server\":\""#.len();
    let len = response[start..].find('\\')?;
    Some(response[start..start + len].to_owned())
}

/// Initializes from `source`, then calls `whoami` [`CALLS`] times on new
/// connections; returns the one server that answered all of them, and the session.
fn client_owner(cluster: &Cluster, source: &str) -> anyhow::Result<(String, String)> {
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"netns","version":"1"}}}"#;
    let (status, reply) = post(cluster, source, None, init)?;
    ensure!(status == 200, "initialize from {source}: HTTP {status}\n{reply}");
    let session = header(&reply, "mcp-session-id").context("initialize reply without mcp-session-id")?;
    let server = session_owner(cluster, source, &session)?;
    Ok((server, session))
}

/// Calls `whoami` [`CALLS`] times in `session`, each on a new connection; returns
/// the one server that answered all of them.
fn session_owner(cluster: &Cluster, source: &str, session: &str) -> anyhow::Result<String> {
    let call = r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"whoami","arguments":{}}}"#;
    let mut servers = Vec::with_capacity(CALLS);
    for _ in 0..CALLS {
        let (status, reply) = post(cluster, source, Some(session), call)?;
        ensure!(status == 200, "whoami from {source} in its session: HTTP {status}\n{reply}");
        servers.push(whoami_server(&reply).with_context(|| format!("no server in whoami reply: {reply}"))?);
    }
    ensure!(servers.iter().all(|s| *s == servers[0]), "flows of {source} reached different nodes: {servers:?}");
    Ok(servers.swap_remove(0))
}

/// Starts `mcp-demo-server` and `mcp-gateway` on node `name`; returns them
/// (gateway last) once the gateway reports `mcp_ebpf_mode 1`.
fn start_node(cluster: &Cluster, bin_dir: &Path, name: &str, macs: &[String]) -> anyhow::Result<(Guard, Guard)> {
    let ns = cluster.ns(name);
    let nodes: String = NODES
        .iter()
        .zip(macs)
        .map(|((n, addr), mac)| format!("    - {{name: {n}, address: {addr}, mac: \"{mac}\"}}\n"))
        .collect();
    let yaml = format!(
        "server: {{host: 0.0.0.0, port: 8443}}\nadmin: {{host: 127.0.0.1, port: 9090}}\n\
         backends: [{{name: demo, url: \"http://127.0.0.1:3001/mcp\"}}]\n\
         xdp:\n  enabled: true\n  interfaces: [eth0]\n  mode: generic\n  syn_rate: 0\n  nodes:\n{nodes}  \
         local_node: {name}\n  health: {{interval: 200ms, timeout: 300ms, unhealthy_threshold: 3, healthy_threshold: 2}}\n"
    );
    let cfg = bin_dir.join(format!("netns-cluster-{name}.yaml"));
    std::fs::write(&cfg, yaml).with_context(|| format!("writing {}", cfg.display()))?;
    let log = std::fs::File::create(bin_dir.join(format!("netns-cluster-{name}.log")))?;
    let server = Guard(
        Topology::exec(&ns, bin_dir.join("mcp-demo-server"))
            .args(["--listen", "127.0.0.1:3001", "--name", name])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .context("starting mcp-demo-server")?,
    );
    let mut gateway = Guard(
        Topology::exec(&ns, bin_dir.join("mcp-gateway"))
            .args(["run", "--config"])
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting mcp-gateway")?,
    );
    wait_ready_in(&ns, &mut gateway)?;
    Ok((server, gateway))
}

/// Waits until the gateways on `names` all report `mcp_xdp_nodes_live == live`.
fn wait_nodes_live(cluster: &Cluster, names: &[&str], live: u64) -> anyhow::Result<Duration> {
    let started = Instant::now();
    while started.elapsed() < NOTICE_LIMIT {
        let seen: Vec<u64> = names
            .iter()
            .map(|n| metrics_in(&cluster.ns(n)).map(|m| sample(&m, "mcp_xdp_nodes_live")))
            .collect::<Result<_, _>>()?;
        if seen.iter().all(|&n| n == live) {
            return Ok(started.elapsed());
        }
        sleep(Duration::from_millis(50));
    }
    bail!("nodes {names:?} did not all report mcp_xdp_nodes_live {live} within {NOTICE_LIMIT:?}")
}

/// Sum of one `mcp_xdp_packets_total` or plain series over `names`.
fn total(cluster: &Cluster, names: &[&str], series: &str) -> anyhow::Result<u64> {
    names.iter().map(|n| Ok(sample(&metrics_in(&cluster.ns(n))?, series))).sum()
}

/// `(server, x-forwarded-for)` of every whoami call in `client.py`'s JSON line.
pub fn sdk_calls(json_line: &str) -> Vec<(String, String)> {
    let values = |key: &str| -> Vec<String> {
        json_line.split(key).skip(1).filter_map(|rest| rest.split('"').next()).map(str::to_owned).collect()
    };
    values(r#""server": ""#).into_iter().zip(values(r#""x-forwarded-for": ""#)).collect()
}

/// The official Python SDK client in the client namespace: [`SDK_SESSIONS`] sessions at once,
/// each with its own connections (so their flows take different ECMP paths), [`CALLS`] whoami
/// calls each. The nodes share no session key, so a session only works if every one of its
/// requests reaches the node that created it; every call must be served by the owner the raw
/// probes found for the client address the calls came from.
fn sdk_sessions(cluster: &Cluster, python: &Path, owners: &[(&str, String, String)]) -> anyhow::Result<()> {
    let script = crate::repo_root().join("tests/py/client.py");
    let mut cmd = Command::new("timeout");
    cmd.args(["90", "ip", "netns", "exec", &cluster.ns("c")])
        .arg(python)
        .arg(&script)
        .args(["--url", &format!("http://{VIP}:8443/mcp"), "--scenario", "sessions", "--timeout", "60"])
        .args(["--sessions", &SDK_SESSIONS.to_string(), "--calls", &CALLS.to_string()]);
    let out = capture(&mut cmd)?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    ensure!(
        out.status.success() && line.starts_with(r#"{"ok": true"#),
        "the Python SDK client failed through the cluster: {line}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let calls = sdk_calls(line);
    ensure!(
        calls.len() == SDK_SESSIONS * CALLS,
        "expected {} whoami calls, got {}: {line}",
        SDK_SESSIONS * CALLS,
        calls.len()
    );
    for (server, source) in &calls {
        let owner = owners.iter().find(|(s, _, _)| s == source).map(|(_, o, _)| o);
        ensure!(owner == Some(server), "SDK call from {source} served by {server}, its owner is {owner:?}");
    }
    step!(
        "netns [cluster] Python SDK: {SDK_SESSIONS} sessions x {CALLS} calls from {} all served by its owner {}",
        calls[0].1,
        calls[0].0
    );
    Ok(())
}

/// Runs the three-node scenario with the binaries in `bin_dir`; with `python` (the e2e venv's
/// interpreter) the official SDK client runs sessions through the cluster too.
pub fn scenario(bin_dir: &Path, python: Option<&Path>) -> anyhow::Result<()> {
    let started = Instant::now();
    let cluster = Cluster::create().context("creating the cluster namespaces (needs root)")?;
    let macs: Vec<String> = NODES.iter().map(|(name, _)| mac(&cluster.ns(name))).collect::<Result<_, _>>()?;
    // Declared after the cluster: on any early return the processes die first.
    let mut servers = Vec::new();
    let mut gateways = Vec::new();
    for (name, _) in NODES {
        let (server, gateway) = start_node(&cluster, bin_dir, name, &macs)?;
        servers.push(server);
        gateways.push(gateway);
    }
    let names = NODES.map(|(n, _)| n);
    // Nodes started one by one saw their peers down at first: wait for a full table.
    wait_nodes_live(&cluster, &names, 3)?;
    let mut clients = Vec::new();
    for source in CLIENTS {
        let (owner, session) = client_owner(&cluster, source)?;
        step!(
            "netns [cluster] client {source}: 1 initialize + {CALLS} calls on new connections, all served by {owner}"
        );
        clients.push((source, owner, session));
    }
    let forwarded = total(&cluster, &names, r#"mcp_xdp_packets_total{action="tx",reason="forwarded"}"#)?;
    let decapsulated = total(&cluster, &names, r#"mcp_xdp_packets_total{action="pass",reason="decapsulated"}"#)?;
    step!("netns [cluster] forwarded {forwarded} packets to owners, decapsulated {decapsulated}");
    ensure!(forwarded == decapsulated, "forwarded and decapsulated packets differ");
    ensure!(forwarded > 0, "no flow entered a node that does not own its client (ECMP did not spread flows)");
    match python {
        Some(python) => sdk_sessions(&cluster, python, &clients)?,
        None => step!("netns [cluster] no Python SDK venv given: SDK sessions skipped (cargo xtask test runs them)"),
    }

    // Remove the node that owns the first client.
    let victim = names.iter().position(|n| *n == clients[0].1).context("owner is not a node")?;
    let survivors: Vec<&str> = names.iter().copied().filter(|n| *n != names[victim]).collect();
    ensure!(
        clients.iter().any(|(_, owner, _)| survivors.contains(&owner.as_str())),
        "every client is owned by {}: pick other client addresses",
        names[victim]
    );
    drop(gateways.remove(victim));
    cluster.route_vip(&NODES.iter().filter(|(n, _)| *n != names[victim]).map(|(_, a)| *a).collect::<Vec<_>>())?;
    let noticed = wait_nodes_live(&cluster, &survivors, 2)?;
    let moved_pins = total(&cluster, &survivors, "mcp_xdp_owner_changes_total")?;
    step!(
        "netns [cluster] killed the gateway on {}: survivors {survivors:?} marked it dead after {:.1} s, \
         re-pinned {moved_pins} client(s)",
        names[victim],
        noticed.as_secs_f64()
    );
    ensure!(moved_pins > 0, "the survivors had pins to {} but moved none", names[victim]);
    for (source, owner, session) in &clients {
        if *owner == names[victim] {
            let (now, _) = client_owner(&cluster, source)?;
            ensure!(survivors.contains(&now.as_str()), "client {source} of {owner} now reaches {now}");
            step!("netns [cluster] client {source} of removed {owner}: new session, all calls served by {now}");
        } else {
            let now = session_owner(&cluster, source, session)?;
            ensure!(now == *owner, "client {source} of live node {owner} moved to {now}");
            step!("netns [cluster] client {source} of live {owner}: its session still works, still on {owner}");
        }
    }
    drop(gateways);
    drop(servers);
    drop(cluster);
    step!(
        "netns [cluster] ok: every flow reached its client's owner; removing {} re-pinned only its clients ({:.1} s)",
        names[victim],
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdk_whoami_calls_are_read_from_the_json_line() {
        let line = r#"{"ok": true, "sessions": [{"calls": [{"server": "n1", "session": "s", "headers": {"x-forwarded-for": "10.202.0.2", "host": "v"}}, {"server": "n3", "session": "s", "headers": {"x-forwarded-for": "10.202.0.5"}}]}]}"#;
        assert_eq!(
            sdk_calls(line),
            [("n1".to_owned(), "10.202.0.2".to_owned()), ("n3".to_owned(), "10.202.0.5".to_owned())]
        );
        assert!(sdk_calls(r#"{"ok": false, "error": "x"}"#).is_empty());
    }

    #[test]
    fn whoami_and_headers_are_read_from_raw_replies() {
        let reply = "HTTP/1.1 200 OK\r\nMcp-Session-Id: g1.abc\r\n\r\n\
                     {\"result\":{\"content\":[{\"text\":\"{\\\"server\\\":\\\"n2\\\",\\\"session\\\":\\\"x\\\"}\"}]}}";
        assert_eq!(whoami_server(reply).as_deref(), Some("n2"));
        assert_eq!(header(reply, "mcp-session-id").as_deref(), Some("g1.abc"));
        assert_eq!(whoami_server("{}"), None);
    }
}

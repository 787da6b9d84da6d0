//! Two gateway nodes behind ECMP: every flow of a client IP reaches its owner node,
//! whichever node it enters.
//!
//! Namespaces: a bridge (`sw`), a client with three source addresses, and nodes
//! n1 and n2, each with the service address (VIP) on its loopback (`arp_ignore`/
//! `arp_announce`, so only routed packets reach it), `mcp-demo-server --name nX` and
//! `mcp-gateway` with XDP (generic mode: native XDP_TX on veth needs the peer's NAPI).
//! The client routes the VIP over both nodes with an L4 multipath hash, so each
//! new connection enters either node. A node that does not own the client wraps
//! the packet in IP-in-IP to the owner (XDP_TX); the owner's XDP program strips it
//! and its stack answers the client directly (direct server return).
//!
//! Checks: per client, an `initialize` then several `whoami` tool calls, each on a
//! new connection, all succeed and all report the same server; the nodes do not
//! share a session key, so a call that reached the other node would get 404. The
//! packets n1 forwarded equal those n2 decapsulated, and the other way round.

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, ensure};

use super::{Guard, Topology, capture, ip, metrics_in, sample, wait_ready_in};
use crate::step;

const VIP: &str = "10.202.0.100";
const CLIENTS: [&str; 3] = ["10.202.0.2", "10.202.0.3", "10.202.0.4"];
const NODES: [(&str, &str); 2] = [("n1", "10.202.0.11"), ("n2", "10.202.0.12")];
/// Tool calls per client, each on a new TCP connection (a new source port).
const CALLS: usize = 6;

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
        for name in ["sw", "c", "n1", "n2"] {
            ip(&["netns", "add", &cluster.ns(name)])?;
        }
        ip(&["-n", &sw, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &sw, "link", "set", "br0", "up"])?;
        for name in ["c", "n1", "n2"] {
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
        let [(_, n1), (_, n2)] = NODES;
        ip(&["-n", &client, "route", "add", &format!("{VIP}/32"), "nexthop", "via", n1, "nexthop", "via", n2])?;
        Ok(cluster)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for name in ["c", "n1", "n2", "sw"] {
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
/// connections; returns the one server that answered all of them.
fn client_owner(cluster: &Cluster, source: &str) -> anyhow::Result<String> {
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"netns","version":"1"}}}"#;
    let (status, reply) = post(cluster, source, None, init)?;
    ensure!(status == 200, "initialize from {source}: HTTP {status}\n{reply}");
    let session = header(&reply, "mcp-session-id").context("initialize reply without mcp-session-id")?;
    let call = r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"whoami","arguments":{}}}"#;
    let mut servers = Vec::with_capacity(CALLS);
    for _ in 0..CALLS {
        let (status, reply) = post(cluster, source, Some(&session), call)?;
        ensure!(status == 200, "whoami from {source} in its session: HTTP {status}\n{reply}");
        servers.push(whoami_server(&reply).with_context(|| format!("no server in whoami reply: {reply}"))?);
    }
    ensure!(servers.iter().all(|s| *s == servers[0]), "flows of {source} reached different nodes: {servers:?}");
    Ok(servers.swap_remove(0))
}

/// Runs the two-node scenario with the binaries in `bin_dir`.
pub fn scenario(bin_dir: &Path) -> anyhow::Result<()> {
    let cluster = Cluster::create().context("creating the cluster namespaces (needs root)")?;
    let macs: Vec<String> = NODES.iter().map(|(name, _)| mac(&cluster.ns(name))).collect::<Result<_, _>>()?;
    let mut children = Vec::new();
    for (name, _) in NODES {
        let ns = cluster.ns(name);
        let nodes: String = NODES
            .iter()
            .zip(&macs)
            .map(|((n, addr), mac)| format!("    - {{name: {n}, address: {addr}, mac: \"{mac}\"}}\n"))
            .collect();
        let yaml = format!(
            "server: {{host: 0.0.0.0, port: 8443}}\nadmin: {{host: 127.0.0.1, port: 9090}}\n\
             backends: [{{name: demo, url: \"http://127.0.0.1:3001/mcp\"}}]\n\
             xdp:\n  enabled: true\n  interfaces: [eth0]\n  mode: generic\n  syn_rate: 0\n  nodes:\n{nodes}  \
             local_node: {name}\n"
        );
        let cfg = bin_dir.join(format!("netns-cluster-{name}.yaml"));
        std::fs::write(&cfg, yaml).with_context(|| format!("writing {}", cfg.display()))?;
        let log = std::fs::File::create(bin_dir.join(format!("netns-cluster-{name}.log")))?;
        children.push(Guard(
            Topology::exec(&ns, bin_dir.join("mcp-demo-server"))
                .args(["--listen", "127.0.0.1:3001", "--name", name])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .spawn()
                .context("starting mcp-demo-server")?,
        ));
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
        children.push(gateway);
    }
    let mut owners = Vec::new();
    for source in CLIENTS {
        let owner = client_owner(&cluster, source)?;
        step!(
            "netns [cluster] client {source}: 1 initialize + {CALLS} calls on new connections, all served by {owner}"
        );
        owners.push(owner);
    }
    let counter = |name: &str, reason: &str| -> anyhow::Result<u64> {
        let action = if reason == "forwarded" { "tx" } else { "pass" };
        let series = format!(r#"mcp_xdp_packets_total{{action="{action}",reason="{reason}"}}"#);
        Ok(sample(&metrics_in(&cluster.ns(name))?, &series))
    };
    let (f1, d1, f2, d2) = (
        counter("n1", "forwarded")?,
        counter("n1", "decapsulated")?,
        counter("n2", "forwarded")?,
        counter("n2", "decapsulated")?,
    );
    step!("netns [cluster] n1 forwarded {f1}, n2 decapsulated {d2}; n2 forwarded {f2}, n1 decapsulated {d1}");
    ensure!(f1 == d2 && f2 == d1, "forwarded and decapsulated packets differ");
    ensure!(f1 + f2 > 0, "no flow entered a node that does not own its client (ECMP did not spread flows)");
    drop(children);
    drop(cluster);
    step!("netns [cluster] ok: owners {owners:?}, every flow reached its client's owner");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whoami_and_headers_are_read_from_raw_replies() {
        let reply = "HTTP/1.1 200 OK\r\nMcp-Session-Id: g1.abc\r\n\r\n\
                     {\"result\":{\"content\":[{\"text\":\"{\\\"server\\\":\\\"n2\\\",\\\"session\\\":\\\"x\\\"}\"}]}}";
        assert_eq!(whoami_server(reply).as_deref(), Some("n2"));
        assert_eq!(header(reply, "mcp-session-id").as_deref(), Some("g1.abc"));
        assert_eq!(whoami_server("{}"), None);
    }
}

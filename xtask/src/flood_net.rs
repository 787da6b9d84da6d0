//! The flood bench's network and what the kernel counts: three namespaces joined by
//! two veth pairs (removed on drop, iptables rules with them), the iptables raw DROP
//! rule and its counter, the attacker veth's hand-over drops, and machine-wide CPU time
//! from `/proc/stat`.
//!
//! ```text
//!  client ns (wrk, 10.204.0.2) ── eth0 ══ nc ── node ns (mcp-gateway :8443, demo server)
//!  attacker ns (10.204.1.2 + blocked 10.204.1.129..136) ── eth0 ══ na ──┘
//! ```

use std::process::{Command, Output, Stdio};

use anyhow::{Context, ensure};

/// The node's address towards the legitimate client.
pub const NODE_CLIENT_IP: &str = "10.204.0.1";
/// The legitimate client's address.
pub const CLIENT_IP: &str = "10.204.0.2";
/// The node's address towards the attacker (the flood's destination).
pub const NODE_ATTACK_IP: &str = "10.204.1.1";
/// The blocked prefix the flood comes from.
pub const BLOCKED_CIDR: &str = "10.204.1.128/25";
/// How many blocked source addresses the attacker owns (10.204.1.129 onwards).
pub const BLOCKED_SOURCES: u8 = 8;
/// The node's interfaces (XDP attaches to both).
pub const NODE_IFS: [&str; 2] = ["nc", "na"];

/// The namespaces of one run; dropping it deletes them (their veths and rules go too).
#[derive(Debug)]
pub struct Lab {
    /// Node namespace: gateway and demo server.
    pub node: String,
    /// Client namespace: the load generator.
    pub client: String,
    /// Attacker namespace: the flood sender.
    pub attacker: String,
}

/// Runs `ip ARGS`, failing with its stderr.
pub fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ip").args(args).stdin(Stdio::null()).output().context("running ip (iproute2)")?;
    ensure!(out.status.success(), "ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    Ok(())
}

/// `ip netns exec NS PROGRAM`.
pub fn exec(ns: &str, program: &str) -> Command {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns, program]);
    cmd
}

/// Runs a command that bounds itself (curl --max-time, iptables -w, sh one-liners).
pub fn capture(cmd: &mut Command) -> anyhow::Result<Output> {
    cmd.stdin(Stdio::null()).output().with_context(|| format!("running {}", crate::run::display(cmd)))
}

/// The blocked source addresses the attacker owns.
pub fn blocked_sources() -> Vec<std::net::Ipv4Addr> {
    (1..=BLOCKED_SOURCES).map(|i| std::net::Ipv4Addr::new(10, 204, 1, 128 + i)).collect()
}

/// Namespaces of an earlier run that was killed before its Drop ran (SIGKILL, Ctrl-C).
/// One flood run at a time is assumed: every `mcpfl*` namespace is left over.
fn remove_stale() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).stderr(Stdio::null()).output() else { return };
    for ns in stale_names(&String::from_utf8_lossy(&out.stdout)) {
        crate::step!("flood: removing namespace {ns} left by an interrupted run");
        let _ = Command::new("ip").args(["netns", "del", &ns]).stderr(Stdio::null()).status();
    }
}

/// The `mcpfl*` names in `ip netns list` output (`name` or `name (id: N)` per line).
pub fn stale_names(list: &str) -> Vec<String> {
    list.lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with("mcpfl"))
        .map(str::to_owned)
        .collect()
}

impl Lab {
    /// Creates the namespaces and links; on any failure Drop removes what was made.
    pub fn create() -> anyhow::Result<Self> {
        let id = std::process::id() % 100_000;
        let lab = Self {
            node: format!("mcpfl{id}-node"),
            client: format!("mcpfl{id}-cli"),
            attacker: format!("mcpfl{id}-atk"),
        };
        remove_stale();
        for ns in [&lab.node, &lab.client, &lab.attacker] {
            ip(&["netns", "add", ns])?;
        }
        let (n, c, a) = (lab.node.as_str(), lab.client.as_str(), lab.attacker.as_str());
        // Both ends are created inside the namespaces: nothing appears in the root one.
        ip(&["link", "add", "nc", "netns", n, "type", "veth", "peer", "name", "eth0", "netns", c])?;
        ip(&["link", "add", "na", "netns", n, "type", "veth", "peer", "name", "eth0", "netns", a])?;
        ip(&["-n", n, "addr", "add", &format!("{NODE_CLIENT_IP}/24"), "dev", "nc"])?;
        ip(&["-n", n, "addr", "add", &format!("{NODE_ATTACK_IP}/24"), "dev", "na"])?;
        ip(&["-n", c, "addr", "add", &format!("{CLIENT_IP}/24"), "dev", "eth0"])?;
        ip(&["-n", a, "addr", "add", "10.204.1.2/24", "dev", "eth0"])?;
        for src in blocked_sources() {
            ip(&["-n", a, "addr", "add", &format!("{src}/24"), "dev", "eth0"])?;
        }
        for (ns, dev) in [(n, "lo"), (n, "nc"), (n, "na"), (c, "lo"), (c, "eth0"), (a, "lo"), (a, "eth0")] {
            ip(&["-n", ns, "link", "set", dev, "up"])?;
        }
        // Receive processing of what arrives from the attacker runs on CPU 0 (the
        // gateway's core, like a NIC queue of the gateway host); the attacker's own
        // answers to SYN-ACKs on CPU 1 (the attacker's core).
        lab.write_sys(n, "/sys/class/net/na/queues/rx-0/rps_cpus", "1")?;
        lab.write_sys(a, "/sys/class/net/eth0/queues/rx-0/rps_cpus", "2")?;
        Ok(lab)
    }

    /// Writes `value` to a sysfs file as seen from namespace `ns`.
    pub fn write_sys(&self, ns: &str, path: &str, value: &str) -> anyhow::Result<()> {
        let out = capture(exec(ns, "sh").args(["-c", &format!("echo {value} > {path}")]))?;
        ensure!(out.status.success(), "writing {path} in {ns}: {}", String::from_utf8_lossy(&out.stderr).trim());
        Ok(())
    }

    /// The gateway's `/metrics` (admin on 127.0.0.1:9090 in the node namespace).
    pub fn metrics(&self) -> anyhow::Result<String> {
        let out = capture(exec(&self.node, "curl").args(["-sf", "--max-time", "3", "http://127.0.0.1:9090/metrics"]))?;
        ensure!(out.status.success(), "scraping /metrics in {} failed", self.node);
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// How XDP is attached to the node's attacker-facing interface: `driver`, `generic` or `none`.
    pub fn xdp_attach_mode(&self) -> anyhow::Result<&'static str> {
        let out = capture(Command::new("ip").args(["-n", &self.node, "-d", "link", "show", "na"]))?;
        Ok(attach_mode(&String::from_utf8_lossy(&out.stdout)))
    }

    /// `iptables -t raw ACTION PREROUTING -s BLOCKED_CIDR -j DROP` in the node namespace.
    pub fn iptables_rule(&self, action: &str) -> anyhow::Result<()> {
        let out = capture(exec(&self.node, "iptables").args([
            "-w",
            "5",
            "-t",
            "raw",
            action,
            "PREROUTING",
            "-s",
            BLOCKED_CIDR,
            "-j",
            "DROP",
        ]))?;
        ensure!(out.status.success(), "iptables {action}: {}", String::from_utf8_lossy(&out.stderr).trim());
        Ok(())
    }

    /// Packets the attacker's veth could not hand to the node so far (`tx_dropped`): the
    /// node's input backlog (RPS) or its XDP ring (driver mode) was full.
    pub fn handover_drops(&self) -> anyhow::Result<u64> {
        let out = capture(exec(&self.attacker, "cat").arg("/sys/class/net/eth0/statistics/tx_dropped"))?;
        let text = String::from_utf8_lossy(&out.stdout);
        text.trim().parse().with_context(|| format!("tx_dropped of the attacker's eth0: {text:?}"))
    }

    /// Packets the raw DROP rule has matched so far (0 without the rule).
    pub fn iptables_dropped(&self) -> anyhow::Result<u64> {
        let out =
            capture(exec(&self.node, "iptables").args(["-w", "5", "-t", "raw", "-L", "PREROUTING", "-v", "-x", "-n"]))?;
        ensure!(out.status.success(), "iptables -L: {}", String::from_utf8_lossy(&out.stderr).trim());
        Ok(parse_iptables_drops(&String::from_utf8_lossy(&out.stdout), BLOCKED_CIDR))
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in [&self.node, &self.client, &self.attacker] {
            let _ = Command::new("ip").args(["netns", "del", ns]).stderr(Stdio::null()).status();
        }
    }
}

/// `driver`, `generic` or `none` from `ip -d link show` output.
pub fn attach_mode(link: &str) -> &'static str {
    if link.contains("xdpgeneric") {
        "generic"
    } else if link.contains("prog/xdp") {
        "driver"
    } else {
        "none"
    }
}

/// The packet count of the DROP rules for `source` in `iptables -L -v -x -n` output.
pub fn parse_iptables_drops(listing: &str, source: &str) -> u64 {
    listing
        .lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            // pkts bytes target prot opt in out source destination
            (f.len() >= 9 && f[2] == "DROP" && f[7] == source).then(|| f[0].parse::<u64>().ok()).flatten()
        })
        .sum()
}

/// Jiffies of the whole machine (the `cpu` line) and of each CPU, from `/proc/stat`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CpuStat {
    /// `[user, nice, system, idle, iowait, irq, softirq, steal]`: index 0 is all CPUs, then cpu0, cpu1, …
    pub rows: Vec<[u64; 8]>,
}

impl CpuStat {
    /// Reads `/proc/stat` now.
    pub fn read() -> anyhow::Result<Self> {
        Ok(parse_cpu_stat(&std::fs::read_to_string("/proc/stat").context("/proc/stat")?))
    }

    /// System + irq + softirq jiffies spent between `self` and `later` on row `row`
    /// (0 = all CPUs, 1 + N = cpuN).
    pub fn kernel_since(&self, later: &Self, row: usize) -> u64 {
        self.delta(later, row, &[2, 5, 6])
    }

    /// Busy (everything but idle and iowait) jiffies between `self` and `later`.
    pub fn busy_since(&self, later: &Self, row: usize) -> u64 {
        self.delta(later, row, &[0, 1, 2, 5, 6, 7])
    }

    fn delta(&self, later: &Self, row: usize, fields: &[usize]) -> u64 {
        let (Some(a), Some(b)) = (self.rows.get(row), later.rows.get(row)) else { return 0 };
        fields.iter().map(|&i| b[i].saturating_sub(a[i])).sum()
    }
}

/// The `cpu` and `cpuN` lines of a `/proc/stat` text, in order.
pub fn parse_cpu_stat(text: &str) -> CpuStat {
    let rows = text
        .lines()
        .filter(|l| l.starts_with("cpu"))
        .map(|l| {
            let mut row = [0u64; 8];
            for (slot, v) in row.iter_mut().zip(l.split_whitespace().skip(1)) {
                *slot = v.parse().unwrap_or(0);
            }
            row
        })
        .collect();
    CpuStat { rows }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_namespaces_are_recognised() {
        let list = "mcpfl123-node (id: 4)\nmcpnet-a\nmcpfl123-cli\n\n";
        assert_eq!(stale_names(list), ["mcpfl123-node", "mcpfl123-cli"]);
    }

    #[test]
    fn iptables_counters_are_read_for_the_rule() {
        let listing = "Chain PREROUTING (policy ACCEPT 812 packets, 61234 bytes)\n\
            \x20   pkts      bytes target     prot opt in     out     source               destination\n\
            \x201234567 49382680 DROP       0    --  *      *       10.204.1.128/25      0.0.0.0/0\n\
            \x20     12      480 DROP       6    --  *      *       192.0.2.0/24         0.0.0.0/0\n";
        assert_eq!(parse_iptables_drops(listing, "10.204.1.128/25"), 1_234_567);
        assert_eq!(parse_iptables_drops(listing, "192.0.2.0/24"), 12);
        assert_eq!(parse_iptables_drops(listing, "198.51.100.0/24"), 0);
        assert_eq!(parse_iptables_drops("Chain PREROUTING (policy ACCEPT)\n", BLOCKED_CIDR), 0);
    }

    #[test]
    fn cpu_stat_deltas() {
        let before = parse_cpu_stat(
            "cpu  100 0 50 1000 5 1 20 0 0 0\ncpu0 60 0 30 500 5 1 15 0 0 0\ncpu1 40 0 20 500 0 0 5 0 0 0\nintr 1 2\n",
        );
        let after = parse_cpu_stat(
            "cpu  150 0 90 1100 5 1 60 0 0 0\ncpu0 80 0 60 520 5 1 50 0 0 0\ncpu1 70 0 30 580 0 0 10 0 0 0\n",
        );
        assert_eq!(before.rows.len(), 3);
        assert_eq!(before.kernel_since(&after, 0), 40 + 40);
        assert_eq!(before.kernel_since(&after, 1), 30 + 35);
        assert_eq!(before.kernel_since(&after, 2), 10 + 5);
        assert_eq!(before.busy_since(&after, 0), 50 + 40 + 40);
        assert_eq!(before.kernel_since(&after, 7), 0);
    }

    #[test]
    fn attach_modes() {
        assert_eq!(attach_mode("3: na@if2: <UP> mtu 1500 xdpgeneric qdisc noqueue\n    prog/xdp id 7"), "generic");
        assert_eq!(attach_mode("3: na@if2: <UP> mtu 1500 xdp qdisc noqueue\n    prog/xdp id 7 name x"), "driver");
        assert_eq!(attach_mode("3: na@if2: <UP> mtu 1500 qdisc noqueue"), "none");
    }

    #[test]
    fn blocked_sources_are_in_the_cidr() {
        let srcs = blocked_sources();
        assert_eq!(srcs.len(), usize::from(BLOCKED_SOURCES));
        assert!(srcs.iter().all(|s| s.octets()[..3] == [10, 204, 1] && s.octets()[3] > 128));
    }
}

//! The `xdp:` section: the eBPF/XDP data plane (see `crate::ebpf`).
//!
//! Everything is checked here that can be checked without the kernel: interface
//! names, CIDRs (host bits must be clear), rate limits, node names, addresses and
//! MACs, and that `local_node` names a node. Whether the program loads and the
//! interfaces exist is only known at start, where a failure means userspace-only.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use gateway_common::{BLOCKLIST_CAPACITY, MAX_NODES};

use super::backend::check_name;
use super::errors::closest;
use super::tree::{Kind, Node};
use super::walk::{Walker, describe};

/// `xdp.*` keys.
pub(super) const XDP_KEYS: &[&str] = &[
    "enabled",
    "interfaces",
    "mode",
    "blocklist",
    "blocklist_all_ports",
    "syn_rate",
    "syn_burst",
    "nodes",
    "local_node",
    "pin_path",
    "health",
];
/// Keys of one `xdp.nodes` entry.
pub(super) const NODE_KEYS: &[&str] = &["name", "address", "mac"];
/// Keys of `xdp.health`.
pub(super) const HEALTH_KEYS: &[&str] =
    &["interval", "timeout", "unhealthy_threshold", "healthy_threshold", "port", "path"];
const MODES: &[&str] = &["auto", "driver", "generic"];
/// Largest `syn_rate` / `syn_burst`.
const RATE_MAX: u64 = 1_000_000;

/// `xdp.*`: the XDP data plane.
#[derive(Debug, Clone, PartialEq)]
pub struct XdpConfig {
    /// `xdp.enabled`: load and attach the XDP program (default false).
    pub enabled: bool,
    /// `xdp.interfaces`: network interfaces to attach to (required when enabled).
    pub interfaces: Vec<String>,
    /// `xdp.mode`: attach mode.
    pub mode: XdpMode,
    /// `xdp.blocklist`: source prefixes dropped in the kernel.
    pub blocklist: Vec<Cidr>,
    /// `xdp.blocklist_all_ports`: the blocklist drops every IP packet of a listed
    /// source, not only traffic for the gateway's ports (default false).
    pub blocklist_all_ports: bool,
    /// `xdp.syn_rate`: new flows (TCP SYN, UDP datagrams) per second per source IP; 0 = unlimited.
    pub syn_rate: u32,
    /// `xdp.syn_burst`: new flows a source may open at once before `syn_rate` applies.
    pub syn_burst: u32,
    /// `xdp.nodes`: the gateway nodes sharing clients (empty = every client is local).
    pub nodes: Vec<XdpNode>,
    /// `xdp.local_node`: which of `nodes` this gateway is (required when `nodes` is set).
    pub local_node: Option<String>,
    /// `xdp.pin_path`: bpffs directory where the XDP link and the client→owner, rate
    /// and counter maps are pinned, so the program keeps running across a restart
    /// and the next gateway swaps its program in; absent = no pinning.
    pub pin_path: Option<PathBuf>,
    /// `xdp.health`: how this gateway checks its peer nodes; a dead node leaves the
    /// Maglev table and only its clients move.
    pub health: XdpHealth,
}

/// `xdp.health.*`: active checks of the other `xdp.nodes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XdpHealth {
    /// `interval`: time between two rounds of checks (default 1s).
    pub interval: Duration,
    /// `timeout`: limit for one check (default 500ms).
    pub timeout: Duration,
    /// `unhealthy_threshold`: consecutive failures before a node is marked dead (default 3).
    pub unhealthy_threshold: u32,
    /// `healthy_threshold`: consecutive successes before a dead node is live again (default 2).
    pub healthy_threshold: u32,
    /// `port`: port checked on each node's address; 0 (default) = this gateway's data port,
    /// which every node of a DaemonSet shares.
    pub port: u16,
    /// `path`: plain-HTTP GET path (e.g. `/health` when `port` is an admin port listening on
    /// the node address), 2xx = live; absent (default) = a TCP connect.
    pub path: Option<String>,
}

impl Default for XdpHealth {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(1),
            timeout: Duration::from_millis(500),
            unhealthy_threshold: 3,
            healthy_threshold: 2,
            port: 0,
            path: None,
        }
    }
}

/// `xdp.mode`: how the program is attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XdpMode {
    /// Native (driver) mode where the driver supports it, else generic.
    Auto,
    /// Native mode only.
    Driver,
    /// Generic (SKB) mode only.
    Generic,
}

/// One `xdp.nodes` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct XdpNode {
    /// `name`: unique, `[A-Za-z0-9._-]{1,64}`; a node keeps its Maglev slots by name.
    pub name: String,
    /// `address`: the node's IPv4 address, the outer destination of forwarded packets.
    pub address: Ipv4Addr,
    /// `mac`: next-hop Ethernet address towards the node; absent = looked up in the
    /// kernel's neighbour table (`/proc/net/arp`) at start.
    pub mac: Option<[u8; 6]>,
}

/// An IP prefix with its host bits clear.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    /// Network address.
    pub addr: IpAddr,
    /// Prefix length (0..=32 for IPv4, 0..=128 for IPv6).
    pub prefix_len: u8,
}

impl Default for XdpConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            interfaces: Vec::new(),
            mode: XdpMode::Auto,
            blocklist: Vec::new(),
            blocklist_all_ports: false,
            syn_rate: 100,
            syn_burst: 200,
            nodes: Vec::new(),
            local_node: None,
            pin_path: None,
            health: XdpHealth::default(),
        }
    }
}

impl XdpMode {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Driver => "driver",
            Self::Generic => "generic",
        }
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

/// Parses `10.0.0.0/8`, `2001:db8::/32` or a bare address (a single host).
pub fn parse_cidr(text: &str) -> Result<Cidr, String> {
    let text = text.trim();
    let (addr, len) = match text.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (text, None),
    };
    let addr: IpAddr =
        addr.parse().map_err(|_| format!("expected a CIDR such as 10.0.0.0/8 or 2001:db8::/32, got {text:?}"))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix_len = match len {
        None => max,
        Some(l) => match l.parse::<u8>() {
            Ok(n) if n <= max => n,
            _ => return Err(format!("prefix length must be 0 to {max}, got {l:?} in {text:?}")),
        },
    };
    let network = mask(addr, prefix_len);
    if network != addr {
        return Err(format!("{text:?} has host bits set; did you mean {network}/{prefix_len}?"));
    }
    Ok(Cidr { addr, prefix_len })
}

/// `addr` with every bit after the first `prefix_len` cleared.
fn mask(addr: IpAddr, prefix_len: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let bits = u32::from(a) & u32::MAX.checked_shl(32 - u32::from(prefix_len)).unwrap_or(0);
            IpAddr::from(bits.to_be_bytes())
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a) & u128::MAX.checked_shl(128 - u32::from(prefix_len)).unwrap_or(0);
            IpAddr::from(bits.to_be_bytes())
        }
    }
}

/// Parses `aa:bb:cc:dd:ee:ff` (or with `-`).
pub fn parse_mac(text: &str) -> Result<[u8; 6], String> {
    let parts: Vec<&str> = text.trim().split([':', '-']).collect();
    let mut mac = [0u8; 6];
    let ok = parts.len() == 6
        && parts
            .iter()
            .zip(mac.iter_mut())
            .all(|(p, b)| p.len() == 2 && u8::from_str_radix(p, 16).map(|v| *b = v).is_ok());
    if ok { Ok(mac) } else { Err(format!("expected a MAC address such as 02:00:00:00:00:01, got {text:?}")) }
}

/// Checks a Linux interface name (1..=15 bytes, no `/`, `:` or whitespace).
fn check_interface(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 15 || name.contains(['/', ':']) || name.contains(char::is_whitespace) {
        return Err(format!("invalid interface name {name:?}: 1 to 15 characters without '/', ':' or spaces"));
    }
    Ok(())
}

/// The items of a sequence at `node`; anything else is an error.
fn seq<'n>(w: &mut Walker<'_>, node: &'n Node, key: &str, what: &str) -> &'n [Node] {
    match &node.kind {
        Kind::Seq(items) => items,
        Kind::Invalid => &[],
        _ => {
            w.error(node.pos, key, format!("expected a sequence of {what}, got {}", describe(node)));
            &[]
        }
    }
}

/// Reads the `xdp` section (absent = defaults).
pub(super) fn read_xdp(w: &mut Walker<'_>, node: Option<&Node>) -> XdpConfig {
    let mut x = XdpConfig::default();
    let Some(sec) = w.section(node, "xdp", XDP_KEYS) else { return x };
    w.field(&sec, "enabled", &mut x.enabled, Walker::boolean);
    w.field(&sec, "blocklist_all_ports", &mut x.blocklist_all_ports, Walker::boolean);
    w.field(&sec, "syn_rate", &mut x.syn_rate, |w, n, k| w.int(n, k, 0, RATE_MAX));
    w.field(&sec, "syn_burst", &mut x.syn_burst, |w, n, k| w.int(n, k, 1, RATE_MAX));
    w.field(&sec, "mode", &mut x.mode, |w, n, k| {
        let text = w.scalar(n, k, "auto, driver or generic")?.trim().to_ascii_lowercase();
        match text.as_str() {
            "auto" => Some(XdpMode::Auto),
            "driver" | "native" => Some(XdpMode::Driver),
            "generic" | "skb" => Some(XdpMode::Generic),
            _ => {
                let hint = closest(&text, MODES).map(|m| format!("; did you mean {m:?}?")).unwrap_or_default();
                w.error(n.pos, k, format!("unknown mode {text:?}{hint} (allowed: auto, driver, generic)"));
                None
            }
        }
    });
    w.field(&sec, "pin_path", &mut x.pin_path, |w, n, k| {
        let text = w.string(n, k)?;
        if text.starts_with('/') {
            return Some(Some(PathBuf::from(text)));
        }
        w.error(n.pos, k, format!("must be an absolute path on a bpffs such as /sys/fs/bpf/mcp-gateway, got {text:?}"));
        None
    });
    x.health = read_health(w, sec.get("health"), &sec.key("health"));
    if let Some(n) = sec.get("interfaces") {
        let key = sec.key("interfaces");
        for (i, item) in seq(w, n, &key, "interface names").iter().enumerate() {
            let k = format!("{key}[{i}]");
            let Some(name) = w.string(item, &k) else { continue };
            if let Err(m) = check_interface(&name) {
                w.error(item.pos, &k, m);
            } else if x.interfaces.contains(&name) {
                w.error(item.pos, &k, format!("interface {name:?} is listed twice"));
            } else {
                x.interfaces.push(name);
            }
        }
    }
    // `enabled` defaults to false, so when it is true it was written in the file.
    if let (true, true, Some(n)) = (x.enabled, x.interfaces.is_empty(), sec.get("enabled")) {
        w.error(n.pos, &sec.key("interfaces"), "list at least one interface (e.g. [eth0]) when xdp.enabled is true");
    }
    if let Some(n) = sec.get("blocklist") {
        x.blocklist = read_blocklist(w, n, &sec.key("blocklist"));
    }
    if let Some(n) = sec.get("nodes") {
        x.nodes = read_nodes(w, n, &sec.key("nodes"));
    }
    let local_key = sec.key("local_node");
    match (sec.get("local_node"), sec.get("nodes").filter(|_| !x.nodes.is_empty())) {
        (Some(n), _) => {
            if let Some(name) = w.string(n, &local_key) {
                if x.nodes.iter().any(|node| node.name == name) {
                    x.local_node = Some(name);
                } else {
                    w.error(n.pos, &local_key, not_a_node(&name, &x.nodes));
                }
            }
        }
        (None, Some(nodes)) if !w.local_node_from_flag => {
            w.error(
                nodes.pos,
                &local_key,
                "required when xdp.nodes is set: the name of this gateway's own node \
                 (here, or with --xdp-local-node / MCP_GATEWAY_XDP_LOCAL_NODE)",
            );
        }
        (None, Some(_)) => {}
        (None, None) => {}
    }
    x
}

/// Why `name` cannot be `xdp.local_node`: it is not one of `nodes`.
pub(super) fn not_a_node(name: &str, nodes: &[XdpNode]) -> String {
    let names: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
    format!("{name:?} is not in xdp.nodes (names: {})", names.join(", "))
}

fn read_health(w: &mut Walker<'_>, node: Option<&Node>, key: &str) -> XdpHealth {
    let mut h = XdpHealth::default();
    let Some(sec) = w.section(node, key, HEALTH_KEYS) else { return h };
    w.field(&sec, "interval", &mut h.interval, Walker::interval);
    w.field(&sec, "timeout", &mut h.timeout, Walker::timeout);
    w.field(&sec, "unhealthy_threshold", &mut h.unhealthy_threshold, |w, n, k| w.int(n, k, 1, 1000));
    w.field(&sec, "healthy_threshold", &mut h.healthy_threshold, |w, n, k| w.int(n, k, 1, 1000));
    w.field(&sec, "port", &mut h.port, |w, n, k| w.int(n, k, 0, u64::from(u16::MAX)));
    w.field(&sec, "path", &mut h.path, |w, n, k| w.http_path(n, k).map(Some));
    h
}

fn read_blocklist(w: &mut Walker<'_>, node: &Node, key: &str) -> Vec<Cidr> {
    let mut out: Vec<Cidr> = Vec::new();
    for (i, item) in seq(w, node, key, "CIDRs").iter().enumerate() {
        let k = format!("{key}[{i}]");
        let Some(text) = w.scalar(item, &k, "a CIDR such as 192.0.2.0/24") else { continue };
        match parse_cidr(text) {
            Ok(cidr) if !out.contains(&cidr) => out.push(cidr),
            Ok(cidr) => w.error(item.pos, &k, format!("{cidr} is listed twice")),
            Err(m) => w.error(item.pos, &k, m),
        }
    }
    for v4 in [true, false] {
        let n = out.iter().filter(|c| c.addr.is_ipv4() == v4).count();
        if n > BLOCKLIST_CAPACITY as usize {
            let family = if v4 { "IPv4" } else { "IPv6" };
            w.error(node.pos, key, format!("{n} {family} prefixes; at most {BLOCKLIST_CAPACITY} fit the kernel map"));
        }
    }
    out
}

fn read_nodes(w: &mut Walker<'_>, node: &Node, key: &str) -> Vec<XdpNode> {
    let items = seq(w, node, key, "nodes (`- name: ...` entries with keys name, address, mac)");
    if items.len() > MAX_NODES as usize {
        w.error(node.pos, key, format!("{} nodes; at most {MAX_NODES} are supported", items.len()));
        return Vec::new();
    }
    let mut first_line: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let Some(sec) = w.section(Some(item), &format!("{key}[{i}]"), NODE_KEYS) else { continue };
        let name = match sec.get("name") {
            Some(n) => w.string(n, &sec.key("name")).and_then(|name| {
                let problem = check_name(&name).err().map(|m| m.replace("backend", "node")).or_else(|| {
                    first_line.get(&name).map(|l| format!("duplicate node name {name:?} (first at line {l})"))
                });
                match problem {
                    Some(m) => {
                        w.error(n.pos, &sec.key("name"), m);
                        None
                    }
                    None => {
                        first_line.insert(name.clone(), n.pos.line);
                        Some(name)
                    }
                }
            }),
            None => {
                w.error(item.pos, &sec.key("name"), "required: a unique node name");
                None
            }
        };
        let address = match sec.get("address") {
            Some(n) => match w.ip(n, &sec.key("address")) {
                Some(IpAddr::V4(a)) => Some(a),
                Some(IpAddr::V6(a)) => {
                    let m = format!(
                        "{a} is IPv6; node addresses must be IPv4 (forwarded packets get an outer IPv4 header)"
                    );
                    w.error(n.pos, &sec.key("address"), m);
                    None
                }
                None => None,
            },
            None => {
                w.error(item.pos, &sec.key("address"), "required: the node's IPv4 address");
                None
            }
        };
        let mut mac = None;
        w.field(&sec, "mac", &mut mac, |w, n, k| {
            let text = w.scalar(n, k, "a MAC address")?;
            parse_mac(text).map_err(|m| w.error(n.pos, k, m)).ok().map(Some)
        });
        if let (Some(name), Some(address)) = (name, address) {
            out.push(XdpNode { name, address, mac });
        }
    }
    out
}

#[cfg(test)]
#[path = "xdp_tests.rs"]
mod tests;

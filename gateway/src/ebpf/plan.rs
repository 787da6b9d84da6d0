//! What the XDP maps must hold for a config: ports, settings, node slots,
//! the Maglev table and the blocklist prefixes. Pure (no kernel), so it is unit
//! tested everywhere; the loader only copies a [`Plan`] into the maps.

use std::net::{IpAddr, Ipv4Addr};

use gateway_common::{FLAG_BLOCK_ALL_PORTS, MAGLEV_SIZE, NO_NODE, NodeEntry, Settings};

use super::maglev::{self, Member};
use crate::config::XdpConfig;

/// The contents of every map the loader writes.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// `PORTS` keys: destination ports the program acts on.
    pub ports: Vec<u16>,
    /// `SETTINGS[0]`.
    pub settings: Settings,
    /// `NODES`, by slot (the node's index in `xdp.nodes`).
    pub nodes: Vec<NodeEntry>,
    /// Node names by slot, for membership updates.
    pub names: Vec<String>,
    /// `MAGLEV`: [`MAGLEV_SIZE`] slots of live nodes.
    pub maglev: Vec<u32>,
    /// `BLOCKLIST_V4` keys: (prefix length, network).
    pub blocklist_v4: Vec<(u32, [u8; 4])>,
    /// `BLOCKLIST_V6` keys: (prefix length, network).
    pub blocklist_v6: Vec<(u32, [u8; 16])>,
    /// `PEERS`: other nodes' addresses → slot (their IP-in-IP packets are decapsulated).
    pub peers: Vec<([u8; 4], u32)>,
}

/// The MAC of `addr` in the text of `/proc/net/arp`, if the entry is complete.
pub fn arp_lookup(arp: &str, addr: Ipv4Addr) -> Option<[u8; 6]> {
    arp.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (ip, flags, mac) = (fields.first()?, fields.get(2)?, fields.get(3)?);
        // Flags 0x0 is an incomplete entry (resolution pending or failed).
        if ip.parse::<Ipv4Addr>().ok()? != addr || *flags == "0x0" {
            return None;
        }
        crate::config::parse_mac(mac).ok().filter(|m| *m != [0; 6])
    })
}

/// Settings for a token bucket of `rate` new flows per second and `burst` at once.
fn rate_settings(rate: u32, burst: u32) -> (u64, u64) {
    if rate == 0 {
        return (0, 0);
    }
    let ns_per_token = 1_000_000_000 / u64::from(rate);
    (ns_per_token, ns_per_token * u64::from(burst.max(1)))
}

impl Plan {
    /// The plan for `cfg` acting on `ports`; `arp` is `/proc/net/arp` for nodes
    /// without a configured MAC. Every node starts live.
    pub fn new(cfg: &XdpConfig, ports: &[u16], arp: &str) -> Self {
        let mut ports = ports.to_vec();
        ports.sort_unstable();
        ports.dedup();
        let (ns_per_token, burst_ns) = rate_settings(cfg.syn_rate, cfg.syn_burst);
        let local = cfg.local_node.as_deref().and_then(|name| cfg.nodes.iter().position(|n| n.name == name));
        let nodes: Vec<NodeEntry> = cfg
            .nodes
            .iter()
            .map(|n| {
                let mac = n.mac.or_else(|| arp_lookup(arp, n.address));
                NodeEntry {
                    addr: n.address.octets(),
                    mac: mac.unwrap_or_default(),
                    live: 1,
                    has_mac: u8::from(mac.is_some()),
                    pad: [0; 4],
                }
            })
            .collect();
        let mut blocklist_v4 = Vec::new();
        let mut blocklist_v6 = Vec::new();
        for cidr in &cfg.blocklist {
            match cidr.addr {
                IpAddr::V4(a) => blocklist_v4.push((u32::from(cidr.prefix_len), a.octets())),
                IpAddr::V6(a) => blocklist_v6.push((u32::from(cidr.prefix_len), a.octets())),
            }
        }
        let mut plan = Self {
            ports,
            settings: Settings {
                ns_per_token,
                burst_ns,
                local_addr: local.map(|i| cfg.nodes[i].address.octets()).unwrap_or_default(),
                local_node: local.and_then(|i| u32::try_from(i).ok()).unwrap_or(NO_NODE),
                node_count: 0,
                flags: if cfg.blocklist_all_ports { FLAG_BLOCK_ALL_PORTS } else { 0 },
            },
            nodes,
            names: cfg.nodes.iter().map(|n| n.name.clone()).collect(),
            maglev: Vec::new(),
            blocklist_v4,
            blocklist_v6,
            peers: (0u32..)
                .zip(&cfg.nodes)
                .filter(|(slot, _)| local.is_none_or(|l| *slot as usize != l))
                .map(|(slot, n)| (n.address.octets(), slot))
                .collect(),
        };
        plan.rebuild_maglev();
        plan
    }

    /// Marks the node `name` live or dead and rebuilds the Maglev table; returns
    /// false when no node has that name.
    pub fn set_live(&mut self, name: &str, live: bool) -> bool {
        let Some(slot) = self.names.iter().position(|n| n == name) else { return false };
        self.nodes[slot].live = u8::from(live);
        self.rebuild_maglev();
        true
    }

    fn rebuild_maglev(&mut self) {
        let members: Vec<Member<'_>> = self
            .names
            .iter()
            .zip(&self.nodes)
            .enumerate()
            .filter(|(_, (_, node))| node.live == 1)
            .filter_map(|(slot, (name, _))| Some(Member { name, slot: u32::try_from(slot).ok()? }))
            .collect();
        self.settings.node_count = u32::try_from(members.len()).unwrap_or(u32::MAX);
        self.maglev = maglev::table(&members, MAGLEV_SIZE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{XdpNode, parse_cidr};

    const ARP: &str = "IP address       HW type     Flags       HW address            Mask     Device\n\
                       10.0.0.2         0x1         0x2         52:54:00:12:34:56     *        eth0\n\
                       10.0.0.3         0x1         0x0         00:00:00:00:00:00     *        eth0\n";

    fn config() -> XdpConfig {
        let node = |name: &str, last: u8, mac: Option<[u8; 6]>| XdpNode {
            name: name.into(),
            address: Ipv4Addr::new(10, 0, 0, last),
            mac,
        };
        XdpConfig {
            nodes: vec![node("a", 1, Some([2, 0, 0, 0, 0, 1])), node("b", 2, None), node("c", 3, None)],
            local_node: Some("a".into()),
            blocklist: vec![parse_cidr("192.0.2.0/24").unwrap(), parse_cidr("2001:db8::/32").unwrap()],
            syn_rate: 4,
            syn_burst: 2,
            ..XdpConfig::default()
        }
    }

    #[test]
    fn arp_entries_resolve_only_when_complete() {
        assert_eq!(arp_lookup(ARP, Ipv4Addr::new(10, 0, 0, 2)), Some([0x52, 0x54, 0, 0x12, 0x34, 0x56]));
        assert_eq!(arp_lookup(ARP, Ipv4Addr::new(10, 0, 0, 3)), None);
        assert_eq!(arp_lookup(ARP, Ipv4Addr::new(10, 0, 0, 9)), None);
    }

    #[test]
    fn plan_holds_settings_nodes_and_prefixes() {
        let plan = Plan::new(&config(), &[8443, 8443, 443], ARP);
        assert_eq!(plan.ports, [443, 8443]);
        assert_eq!(plan.settings.ns_per_token, 250_000_000);
        assert_eq!(plan.settings.burst_ns, 500_000_000);
        assert_eq!(plan.settings.local_node, 0);
        assert_eq!(plan.settings.local_addr, [10, 0, 0, 1]);
        assert_eq!(plan.settings.node_count, 3);
        assert_eq!(plan.settings.flags, 0);
        assert_eq!(plan.nodes[0].mac, [2, 0, 0, 0, 0, 1]);
        assert_eq!((plan.nodes[1].has_mac, plan.nodes[1].mac[0]), (1, 0x52));
        assert_eq!(plan.nodes[2].has_mac, 0);
        assert_eq!(plan.blocklist_v4, [(24, [192, 0, 2, 0])]);
        assert_eq!(plan.blocklist_v6[0].0, 32);
        assert_eq!(plan.peers, [([10, 0, 0, 2], 1), ([10, 0, 0, 3], 2)]);
        assert_eq!(plan.maglev.len(), MAGLEV_SIZE as usize);
        assert!(plan.maglev.iter().all(|&s| s < 3));
    }

    #[test]
    fn a_dead_node_leaves_the_table_and_comes_back() {
        let mut plan = Plan::new(&config(), &[8443], ARP);
        let full = plan.maglev.clone();
        assert!(plan.set_live("b", false));
        assert_eq!(plan.settings.node_count, 2);
        assert!(plan.maglev.iter().all(|&s| s != 1));
        assert!(plan.set_live("b", true));
        assert_eq!(plan.maglev, full);
        assert!(!plan.set_live("nope", false));
    }

    #[test]
    fn without_nodes_or_rate_everything_is_off() {
        let cfg = XdpConfig { syn_rate: 0, ..XdpConfig::default() };
        let plan = Plan::new(&cfg, &[8443], "");
        assert_eq!((plan.settings.ns_per_token, plan.settings.node_count), (0, 0));
        assert_eq!(plan.settings.local_node, NO_NODE);
        assert!(plan.maglev.iter().all(|&s| s == NO_NODE));
    }
}

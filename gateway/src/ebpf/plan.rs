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
    /// `NODES`, by slot (at first the node's index in `xdp.nodes`; a reload keeps
    /// slots, see [`Plan::next`]). An empty slot holds a dead, zeroed entry.
    pub nodes: Vec<NodeEntry>,
    /// Node names by slot (empty for an empty slot), for membership updates.
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
    /// without a configured MAC. Node slots follow `xdp.nodes` order; every node
    /// starts live.
    pub fn new(cfg: &XdpConfig, ports: &[u16], arp: &str) -> Self {
        let slots: Vec<u32> = (0u32..).take(cfg.nodes.len()).collect();
        Self::build(cfg, ports, arp, &slots)
    }

    /// The plan for a changed `cfg` that keeps every remaining node in its slot,
    /// so client pins (which hold slots) keep meaning the same node. New nodes
    /// take slots no node used before while there are any; removed nodes leave
    /// empty, dead slots. Liveness is kept by name; new nodes start live.
    pub fn next(&self, cfg: &XdpConfig, ports: &[u16], arp: &str) -> Self {
        let max = gateway_common::MAX_NODES as usize;
        let kept: Vec<Option<u32>> = cfg.nodes.iter().map(|n| self.slot(&n.name)).collect();
        let mut taken: Vec<bool> = vec![false; max.max(self.names.len())];
        for slot in kept.iter().flatten() {
            taken[*slot as usize] = true;
        }
        // Fresh slots first (beyond every slot used so far), then freed ones.
        let mut free = (self.names.len()..max).chain(0..self.names.len()).filter(|s| !taken[*s]);
        let slots: Vec<u32> = kept
            .iter()
            .map(|k| k.or_else(|| free.next().and_then(|s| u32::try_from(s).ok())).unwrap_or(NO_NODE))
            .collect();
        let mut plan = Self::build(cfg, ports, arp, &slots);
        for (name, node) in self.names.iter().zip(&self.nodes) {
            if node.live == 0 && !name.is_empty() {
                plan.set_live(name, false);
            }
        }
        plan
    }

    /// The plan with `cfg.nodes[i]` in slot `slots[i]` (config validation caps
    /// the list at `MAX_NODES`, so every node has a slot).
    fn build(cfg: &XdpConfig, ports: &[u16], arp: &str, slots: &[u32]) -> Self {
        let mut ports = ports.to_vec();
        ports.sort_unstable();
        ports.dedup();
        let (ns_per_token, burst_ns) = rate_settings(cfg.syn_rate, cfg.syn_burst);
        let len = slots.iter().filter(|s| **s != NO_NODE).map(|s| *s as usize + 1).max().unwrap_or(0);
        let mut nodes = vec![NodeEntry::default(); len];
        let mut names = vec![String::new(); len];
        let mut peers = Vec::new();
        let mut local = None;
        for (n, &slot) in cfg.nodes.iter().zip(slots).filter(|(_, s)| **s != NO_NODE) {
            let mac = n.mac.or_else(|| arp_lookup(arp, n.address));
            nodes[slot as usize] = NodeEntry {
                addr: n.address.octets(),
                mac: mac.unwrap_or_default(),
                live: 1,
                has_mac: u8::from(mac.is_some()),
                pad: [0; 4],
            };
            names[slot as usize] = n.name.clone();
            if cfg.local_node.as_deref() == Some(n.name.as_str()) {
                local = Some((slot, n.address.octets()));
            } else {
                peers.push((n.address.octets(), slot));
            }
        }
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
                local_addr: local.map(|(_, addr)| addr).unwrap_or_default(),
                local_node: local.map_or(NO_NODE, |(slot, _)| slot),
                node_count: 0,
                flags: if cfg.blocklist_all_ports { FLAG_BLOCK_ALL_PORTS } else { 0 },
            },
            nodes,
            names,
            maglev: Vec::new(),
            blocklist_v4,
            blocklist_v6,
            peers,
        };
        plan.rebuild_maglev();
        plan
    }

    /// Slots that held a node in `self` and are empty in `next` (removed nodes).
    pub fn removed_in(&self, next: &Plan) -> Vec<u32> {
        (0u32..)
            .zip(&self.names)
            .filter(|(slot, name)| !name.is_empty() && next.names.get(*slot as usize).is_none_or(String::is_empty))
            .map(|(slot, _)| slot)
            .collect()
    }

    /// The slot of the node `name`.
    pub fn slot(&self, name: &str) -> Option<u32> {
        if name.is_empty() {
            return None;
        }
        self.names.iter().position(|n| n == name).and_then(|s| u32::try_from(s).ok())
    }

    /// Marks the node `name` live or dead and rebuilds the Maglev table; returns
    /// false when no node has that name.
    pub fn set_live(&mut self, name: &str, live: bool) -> bool {
        let Some(slot) = self.slot(name) else { return false };
        self.nodes[slot as usize].live = u8::from(live);
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
    fn a_reload_keeps_every_remaining_node_in_its_slot() {
        let mut plan = Plan::new(&config(), &[8443], ARP);
        plan.set_live("c", false);
        let mut cfg = config();
        cfg.nodes.remove(1);
        cfg.nodes.insert(0, XdpNode { name: "d".into(), address: Ipv4Addr::new(10, 0, 0, 4), mac: Some([4; 6]) });
        let next = plan.next(&cfg, &[8443], ARP);
        assert_eq!(next.names, ["a", "", "c", "d"]);
        assert_eq!((next.slot("a"), next.slot("c"), next.slot("d"), next.slot("")), (Some(0), Some(2), Some(3), None));
        assert_eq!(next.nodes[1], NodeEntry::default(), "the removed node's slot is empty and dead");
        assert_eq!((next.nodes[2].live, next.nodes[3].live), (0, 1), "liveness kept by name");
        assert_eq!(next.settings.node_count, 2);
        assert!(next.maglev.iter().all(|&s| s == 0 || s == 3));
        assert_eq!(next.peers, [([10, 0, 0, 4], 3), ([10, 0, 0, 3], 2)]);
        assert_eq!(plan.removed_in(&next), [1]);
        // Once fresh slots run out, freed ones are reused.
        let full: Vec<XdpNode> = (0..64)
            .map(|i| XdpNode { name: format!("n{i}"), address: Ipv4Addr::new(10, 1, 0, i as u8), mac: None })
            .collect();
        let cfg = XdpConfig { nodes: full.clone(), local_node: Some("n0".into()), ..XdpConfig::default() };
        let plan = Plan::new(&cfg, &[8443], "");
        let mut swapped = cfg.clone();
        swapped.nodes[5] = XdpNode { name: "new".into(), ..full[5].clone() };
        assert_eq!(plan.next(&swapped, &[8443], "").slot("new"), Some(5));
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

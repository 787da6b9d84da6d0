//! Verdict tests of the real XDP program through `BPF_PROG_TEST_RUN` (aya's
//! `TestRun`) on crafted frames. They need root (or CAP_BPF + CAP_NET_ADMIN) and
//! FAIL, never skip, when the program cannot load: CI runs as root.

use std::net::Ipv4Addr;

use aya::programs::Xdp;
use aya::{TestRun, TestRunOptions};
use gateway_common::{COUNTER_SLOTS, ClientKey, MAGLEV_SIZE, PROGRAM, action, counter_index, reason};

use super::DataPlane;
use super::plan::Plan;
use crate::config::{XdpConfig, XdpNode, parse_cidr};

#[path = "xdp_state_tests.rs"]
mod state;

#[path = "xdp_membership_tests.rs"]
mod membership;

const PORT: u16 = 8443;
const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;
const XDP_TX: u32 = 3;
/// The MAC the crafted frames are addressed to (this node's interface).
const OUR_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xaa];
const PEER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xbb];
const NODE_B_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0b];
const TCP: u8 = 6;
const UDP: u8 = 17;
const SYN: u8 = 0x02;
const ACK: u8 = 0x10;

fn load(cfg: &XdpConfig) -> DataPlane {
    DataPlane::load(cfg, &[PORT]).unwrap_or_else(|e| {
        panic!("the XDP program must load for these tests (run as root, bpf-linker installed): {e}")
    })
}

/// Runs one frame; returns the XDP action and the output frame.
fn run(plane: &DataPlane, frame: &[u8]) -> (u32, Vec<u8>) {
    plane.with_ebpf(|ebpf| {
        let prog: &mut Xdp = ebpf.program_mut(PROGRAM).unwrap().try_into().unwrap();
        let mut out = vec![0u8; frame.len() + 256];
        let result = prog
            .test_run(TestRunOptions { data_in: Some(frame), data_out: Some(&mut out), ..TestRunOptions::default() })
            .unwrap();
        out.truncate(result.data_size_out as usize);
        (result.return_value, out)
    })
}

fn count(plane: &DataPlane, a: u32, r: u32) -> u64 {
    plane.totals()[counter_index(a, r) as usize]
}

fn eth(ether_type: u16) -> Vec<u8> {
    let mut f = OUR_MAC.to_vec();
    f.extend_from_slice(&PEER_MAC);
    f.extend_from_slice(&ether_type.to_be_bytes());
    f
}

fn l4(proto: u8, dport: u16, flags: u8) -> Vec<u8> {
    let mut h = 40000u16.to_be_bytes().to_vec();
    h.extend_from_slice(&dport.to_be_bytes());
    if proto == TCP {
        h.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    } else {
        h.extend_from_slice(&[0, 8 + 4, 0, 0]);
    }
    h.extend_from_slice(b"mcp!");
    h
}

fn ipv4_frame(src: [u8; 4], proto: u8, dport: u16, flags: u8) -> Vec<u8> {
    let payload = l4(proto, dport, flags);
    let mut f = eth(0x0800);
    let tot = (20 + payload.len()) as u16;
    f.extend_from_slice(&[0x45, 0, tot.to_be_bytes()[0], tot.to_be_bytes()[1], 0, 1, 0x40, 0, 64, proto, 0, 0]);
    f.extend_from_slice(&src);
    f.extend_from_slice(&[198, 51, 100, 10]);
    f.extend_from_slice(&payload);
    f
}

fn ipv6_frame(src: [u16; 8], proto: u8, dport: u16, flags: u8) -> Vec<u8> {
    let payload = l4(proto, dport, flags);
    let mut f = eth(0x86dd);
    f.extend_from_slice(&[0x60, 0, 0, 0]);
    f.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    f.extend_from_slice(&[proto, 64]);
    f.extend(src.iter().flat_map(|w| w.to_be_bytes()));
    f.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    f.extend_from_slice(&payload);
    f
}

fn v6_bytes(words: [u16; 8]) -> [u8; 16] {
    let mut b = [0u8; 16];
    for (i, w) in words.iter().enumerate() {
        b[2 * i..2 * i + 2].copy_from_slice(&w.to_be_bytes());
    }
    b
}

fn cluster() -> XdpConfig {
    let node = |name: &str, last: u8, mac: Option<[u8; 6]>| XdpNode {
        name: name.into(),
        address: Ipv4Addr::new(10, 99, 0, last),
        mac,
    };
    XdpConfig {
        nodes: vec![
            node("a", 1, Some([2, 0, 0, 0, 0, 0x0a])),
            node("b", 2, Some(NODE_B_MAC)),
            node("c", 3, Some([2; 6])),
        ],
        local_node: Some("a".into()),
        syn_rate: 0,
        ..XdpConfig::default()
    }
}

/// The first IPv4 client in 10.7.0.0/16 whose Maglev owner is `slot` under `cfg`.
fn v4_client_owned_by(cfg: &XdpConfig, slot: u32) -> [u8; 4] {
    let plan = Plan::new(cfg, &[PORT], "");
    assert_eq!(plan.maglev.len(), MAGLEV_SIZE as usize);
    (0..=u16::MAX)
        .map(|i| [10, 7, (i >> 8) as u8, i as u8])
        .find(|ip| plan.maglev[ClientKey::v4(*ip).maglev_index() as usize] == slot)
        .unwrap()
}

fn checksum_ok(header: &[u8]) -> bool {
    let mut sum: u32 = header.chunks(2).map(|w| u32::from(u16::from_be_bytes([w[0], w[1]]))).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum == 0xffff
}

#[test]
fn blocked_sources_are_dropped_v4_and_v6() {
    let cfg = XdpConfig {
        blocklist: ["192.0.2.0/24", "2001:db8::/32"].iter().map(|c| parse_cidr(c).unwrap()).collect(),
        ..XdpConfig::default()
    };
    let plane = load(&cfg);
    assert_eq!(run(&plane, &ipv4_frame([192, 0, 2, 7], TCP, PORT, SYN)).0, XDP_DROP);
    assert_eq!(run(&plane, &ipv4_frame([192, 0, 2, 200], UDP, PORT, 0)).0, XDP_DROP);
    assert_eq!(run(&plane, &ipv4_frame([192, 0, 3, 1], TCP, PORT, SYN)).0, XDP_PASS);
    let blocked_v6 = ipv6_frame([0x2001, 0xdb8, 0, 0, 0, 0, 0, 1], TCP, PORT, SYN);
    assert_eq!(run(&plane, &blocked_v6).0, XDP_DROP);
    assert_eq!(run(&plane, &ipv6_frame([0xfd00, 0, 0, 0, 0, 0, 0, 1], TCP, PORT, SYN)).0, XDP_PASS);
    // The blocklist covers the gateway's ports only, unless blocklist_all_ports.
    assert_eq!(run(&plane, &ipv4_frame([192, 0, 2, 7], TCP, 22, SYN)).0, XDP_PASS);
    assert_eq!(count(&plane, action::DROP, reason::BLOCKED), 3);
    assert_eq!(count(&plane, action::PASS, reason::PASSED), 2);
    assert_eq!(count(&plane, action::PASS, reason::OTHER), 1);
    let all_ports = load(&XdpConfig { blocklist_all_ports: true, ..cfg });
    assert_eq!(run(&all_ports, &ipv4_frame([192, 0, 2, 7], TCP, 22, SYN)).0, XDP_DROP);
}

#[test]
fn new_flows_over_the_rate_are_dropped() {
    let plane = load(&XdpConfig { syn_rate: 1, syn_burst: 3, ..XdpConfig::default() });
    let src = [10, 1, 1, 1];
    let verdicts: Vec<u32> = (0..5).map(|_| run(&plane, &ipv4_frame(src, TCP, PORT, SYN)).0).collect();
    // A burst of 3, then one per second: the 4th and 5th SYN within milliseconds are shed.
    assert_eq!(verdicts, [XDP_PASS, XDP_PASS, XDP_PASS, XDP_DROP, XDP_DROP]);
    // Packets of established flows are never limited; other sources have their own bucket.
    assert_eq!(run(&plane, &ipv4_frame(src, TCP, PORT, ACK)).0, XDP_PASS);
    assert_eq!(run(&plane, &ipv4_frame(src, TCP, PORT, SYN | ACK)).0, XDP_PASS);
    assert_eq!(run(&plane, &ipv4_frame([10, 1, 1, 2], TCP, PORT, SYN)).0, XDP_PASS);
    let v6 = ipv6_frame([0xfd00, 0, 0, 0, 0, 0, 0, 9], UDP, PORT, 0);
    let v6_verdicts: Vec<u32> = (0..4).map(|_| run(&plane, &v6).0).collect();
    assert_eq!(v6_verdicts, [XDP_PASS, XDP_PASS, XDP_PASS, XDP_DROP]);
    assert_eq!(count(&plane, action::DROP, reason::RATE_LIMITED), 3);
}

#[test]
fn malformed_headers_are_dropped() {
    let plane = load(&XdpConfig::default());
    let good = ipv4_frame([10, 2, 2, 2], TCP, PORT, SYN);
    let mut short_ihl = good.clone();
    short_ihl[14] = 0x44;
    let mut too_long = good.clone();
    too_long[16..18].copy_from_slice(&1500u16.to_be_bytes());
    let mut bad_version = good.clone();
    bad_version[14] = 0x65;
    let mut bad_tcp_offset = good.clone();
    bad_tcp_offset[14 + 20 + 12] = 0x40;
    let truncated = good[..14 + 20 + 10].to_vec();
    let mut v6_truncated = ipv6_frame([0xfd00, 0, 0, 0, 0, 0, 0, 2], TCP, PORT, SYN);
    v6_truncated.truncate(14 + 30);
    for (name, frame) in [
        ("ihl 4", &short_ihl),
        ("total length past the frame", &too_long),
        ("version 6 in an IPv4 frame", &bad_version),
        ("tcp data offset 4", &bad_tcp_offset),
        ("tcp header cut", &truncated),
        ("ipv6 header cut", &v6_truncated),
    ] {
        assert_eq!(run(&plane, frame).0, XDP_DROP, "{name}");
    }
    assert_eq!(count(&plane, action::DROP, reason::MALFORMED), 6);
    assert_eq!(run(&plane, &good).0, XDP_PASS);
}

#[test]
fn other_traffic_passes_untouched() {
    let plane = load(&XdpConfig { syn_rate: 1, syn_burst: 1, ..XdpConfig::default() });
    let arp = [eth(0x0806), vec![0u8; 28]].concat();
    let other_port = ipv4_frame([10, 3, 3, 3], TCP, 22, SYN);
    let mut icmp = ipv4_frame([10, 3, 3, 3], TCP, PORT, SYN);
    icmp[14 + 9] = 1;
    let v6_other_port = ipv6_frame([0xfd00, 0, 0, 0, 0, 0, 0, 3], UDP, 53, 0);
    for frame in [&arp, &other_port, &other_port, &icmp, &v6_other_port] {
        let (verdict, out) = run(&plane, frame);
        assert_eq!(verdict, XDP_PASS);
        assert_eq!(&out, frame, "passed frames are not modified");
    }
    assert_eq!(count(&plane, action::PASS, reason::OTHER), 5);
    assert_eq!(plane.totals().iter().sum::<u64>(), 5);
}

#[test]
fn clients_owned_locally_pass() {
    let cfg = cluster();
    let plane = load(&cfg);
    let client = v4_client_owned_by(&cfg, 0);
    let frame = ipv4_frame(client, TCP, PORT, SYN);
    let (verdict, out) = run(&plane, &frame);
    assert_eq!(verdict, XDP_PASS);
    assert_eq!(out, frame);
    assert_eq!(count(&plane, action::PASS, reason::PASSED), 1);
}

#[test]
fn clients_owned_remotely_are_encapsulated_to_the_owner() {
    let cfg = cluster();
    let plane = load(&cfg);
    let client = v4_client_owned_by(&cfg, 1);
    let frame = ipv4_frame(client, TCP, PORT, SYN);
    let (verdict, out) = run(&plane, &frame);
    assert_eq!(verdict, XDP_TX);
    assert_eq!(out.len(), frame.len() + 20);
    assert_eq!(&out[0..6], &NODE_B_MAC, "to the owner's MAC");
    assert_eq!(&out[6..12], &OUR_MAC, "from this interface");
    assert_eq!(&out[12..14], &[0x08, 0x00]);
    let outer = &out[14..34];
    assert_eq!(outer[0], 0x45);
    assert_eq!(u16::from_be_bytes([outer[2], outer[3]]) as usize, 20 + frame.len() - 14);
    assert_eq!((outer[8], outer[9]), (64, 4), "ttl 64, IP-in-IP");
    assert_eq!(&outer[12..16], &[10, 99, 0, 1], "from this node");
    assert_eq!(&outer[16..20], &[10, 99, 0, 2], "to the owner");
    assert!(checksum_ok(outer), "outer checksum {:02x?}", outer);
    assert_eq!(&out[34..], &frame[14..], "the client's packet is carried unchanged");
    assert_eq!(count(&plane, action::TX, reason::FORWARDED), 1);
}

#[test]
fn ipv6_clients_are_owned_and_encapsulated_in_ipv4() {
    let cfg = cluster();
    let plane = load(&cfg);
    let plan = Plan::new(&cfg, &[PORT], "");
    let owned_by = |slot: u32| {
        (1..=u16::MAX)
            .map(|i| [0xfd00, 0, 0, 0, 0, 0, 7, i])
            .find(|w| plan.maglev[ClientKey::v6(v6_bytes(*w)).maglev_index() as usize] == slot)
            .unwrap()
    };
    let local = ipv6_frame(owned_by(0), TCP, PORT, SYN);
    assert_eq!(run(&plane, &local), (XDP_PASS, local.clone()));
    let remote = ipv6_frame(owned_by(1), UDP, PORT, 0);
    let (verdict, out) = run(&plane, &remote);
    assert_eq!(verdict, XDP_TX);
    assert_eq!(&out[0..6], &NODE_B_MAC);
    assert_eq!(out[14 + 9], 41, "IPv6-in-IPv4");
    assert_eq!(u16::from_be_bytes([out[16], out[17]]) as usize, 20 + remote.len() - 14);
    assert!(checksum_ok(&out[14..34]));
    assert_eq!(&out[34..], &remote[14..]);
}

#[test]
fn clients_stay_with_their_owner_until_it_dies() {
    let cfg = cluster();
    let plane = load(&cfg);
    let client = v4_client_owned_by(&cfg, 2);
    let frame = ipv4_frame(client, TCP, PORT, ACK);
    let dst = |out: &[u8]| [out[30], out[31], out[32], out[33]];
    let (verdict, out) = run(&plane, &frame);
    assert_eq!((verdict, dst(&out)), (XDP_TX, [10, 99, 0, 3]));
    // Membership changes elsewhere: the client stays pinned to c.
    assert_eq!(plane.set_node_live("b", false).unwrap(), Some(0), "no client was pinned to b");
    let (verdict, out) = run(&plane, &frame);
    assert_eq!((verdict, dst(&out)), (XDP_TX, [10, 99, 0, 3]));
    // Its owner dies: re-hashed to a live node (a is the only other one).
    assert_eq!(plane.set_node_live("c", false).unwrap(), Some(1), "the client's pin moved");
    assert_eq!(run(&plane, &frame), (XDP_PASS, frame.clone()));
    assert_eq!(plane.set_node_live("nope", true).unwrap(), None);
}

#[test]
fn an_owner_without_a_known_mac_is_served_locally() {
    let mut cfg = cluster();
    cfg.nodes[1].mac = None;
    cfg.nodes[1].address = Ipv4Addr::new(192, 0, 2, 123);
    let plane = load(&cfg);
    let frame = ipv4_frame(v4_client_owned_by(&cfg, 1), TCP, PORT, SYN);
    assert_eq!(run(&plane, &frame), (XDP_PASS, frame.clone()));
    assert_eq!(count(&plane, action::PASS, reason::NO_OWNER), 1);
}

#[test]
fn every_packet_is_counted_exactly_once() {
    let cfg = XdpConfig { blocklist: vec![parse_cidr("192.0.2.1").unwrap()], ..cluster() };
    let plane = load(&cfg);
    let frames = [
        ipv4_frame([192, 0, 2, 1], TCP, PORT, SYN),
        ipv4_frame(v4_client_owned_by(&cfg, 0), TCP, PORT, SYN),
        ipv4_frame(v4_client_owned_by(&cfg, 1), TCP, PORT, SYN),
        ipv4_frame([10, 3, 3, 3], UDP, 53, 0),
    ];
    for _ in 0..25 {
        for f in &frames {
            run(&plane, f);
        }
    }
    let totals = plane.totals();
    assert_eq!(totals.len(), COUNTER_SLOTS as usize);
    assert_eq!(totals.iter().sum::<u64>(), 100);
    for (a, r) in [
        (action::DROP, reason::BLOCKED),
        (action::PASS, reason::PASSED),
        (action::TX, reason::FORWARDED),
        (action::PASS, reason::OTHER),
    ] {
        assert_eq!(totals[counter_index(a, r) as usize], 25);
    }
}

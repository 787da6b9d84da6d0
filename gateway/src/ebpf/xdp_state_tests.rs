//! Verdict tests of state that outlives one packet: pinned maps, live
//! reconfiguration, and decapsulation of what a peer forwarded.

use super::*;

/// Mounts bpffs at /sys/fs/bpf unless one is there (as `cargo xtask setup` does).
fn ensure_bpffs() {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
    if !mounts.lines().any(|l| l.split_whitespace().nth(1) == Some("/sys/fs/bpf") && l.contains(" bpf ")) {
        let status = std::process::Command::new("mount").args(["-t", "bpf", "bpf", "/sys/fs/bpf"]).status().unwrap();
        assert!(status.success(), "mount -t bpf bpf /sys/fs/bpf failed");
    }
}

#[test]
fn pinned_maps_outlive_the_process_that_made_them() {
    ensure_bpffs();
    let dir = std::path::PathBuf::from(format!("/sys/fs/bpf/mcp-gateway-test-{}", std::process::id()));
    let cfg = XdpConfig { pin_path: Some(dir.clone()), ..cluster() };
    let frame = ipv4_frame(v4_client_owned_by(&cfg, 2), TCP, PORT, SYN);
    let first = load(&cfg);
    assert_eq!(run(&first, &frame).0, XDP_TX);
    for name in ["OWNERS", "RATE", "COUNTERS"] {
        assert!(dir.join(name).exists(), "{name} is not pinned");
    }
    drop(first);
    // A restarted gateway reuses the pins: the counters carry on, and the client
    // keeps its pinned slot (2). With the node list reordered, slot 2 is now b,
    // while the Maglev table (keyed by name) would still pick c: b proves the pin.
    let mut reordered = cfg.clone();
    reordered.nodes.swap(1, 2);
    let second = load(&reordered);
    assert_eq!(count(&second, action::TX, reason::FORWARDED), 1);
    let (verdict, out) = run(&second, &frame);
    assert_eq!((verdict, &out[30..34]), (XDP_TX, &[10, 99, 0, 2][..]));
    assert_eq!(count(&second, action::TX, reason::FORWARDED), 2);
    drop(second);
    std::fs::remove_dir_all(&dir).unwrap();
    let no_bpffs = XdpConfig { pin_path: Some("/tmp/not-bpffs".into()), ..XdpConfig::default() };
    let err = DataPlane::load(&no_bpffs, &[PORT]).unwrap_err();
    assert!(err.to_string().contains("is not on a bpffs"), "{err}");
}

#[test]
fn a_new_config_applies_without_reloading() {
    let cfg = XdpConfig { blocklist: vec![parse_cidr("192.0.2.0/24").unwrap()], syn_rate: 0, ..XdpConfig::default() };
    let plane = load(&cfg);
    let frame = ipv4_frame([192, 0, 2, 9], TCP, PORT, SYN);
    let other_port = ipv4_frame([10, 4, 4, 4], TCP, 9000, SYN);
    assert_eq!(run(&plane, &frame).0, XDP_DROP);
    assert_eq!(run(&plane, &other_port).0, XDP_PASS);
    let next = XdpConfig { blocklist: vec![parse_cidr("10.4.0.0/16").unwrap()], ..cfg };
    plane.reconfigure(&next, &[PORT, 9000]).unwrap();
    assert_eq!(run(&plane, &frame).0, XDP_PASS, "the removed prefix no longer blocks");
    assert_eq!(run(&plane, &other_port).0, XDP_DROP, "the new prefix blocks on the new port");
    plane.reconfigure(&next, &[PORT]).unwrap();
    assert_eq!(run(&plane, &other_port).0, XDP_PASS, "the removed port is no longer inspected");
}

#[test]
fn packets_a_peer_forwarded_are_decapsulated_for_the_local_stack() {
    let cfg = cluster();
    let peer_b = load(&XdpConfig { local_node: Some("b".into()), ..cfg.clone() });
    let owner_a = load(&cfg);
    // b forwards a client it does not own to a; a strips the outer header.
    let client = ipv4_frame(v4_client_owned_by(&cfg, 0), TCP, PORT, SYN);
    let (verdict, wire) = run(&peer_b, &client);
    assert_eq!(verdict, XDP_TX);
    let (verdict, delivered) = run(&owner_a, &wire);
    assert_eq!(verdict, XDP_PASS);
    assert_eq!(&delivered[12..14], &[0x08, 0x00]);
    assert_eq!(&delivered[14..], &client[14..], "the client's packet, unchanged");
    assert_eq!(count(&owner_a, action::PASS, reason::DECAPSULATED), 1);
    // The same for an IPv6 client (IPv6-in-IPv4).
    let plan = Plan::new(&cfg, &[PORT], "");
    let v6 = (1..=u16::MAX)
        .map(|i| [0xfd00, 0, 0, 0, 0, 0, 9, i])
        .find(|w| plan.maglev[ClientKey::v6(v6_bytes(*w)).maglev_index() as usize] == 0)
        .unwrap();
    let client6 = ipv6_frame(v6, UDP, PORT, 0);
    let (_, wire6) = run(&peer_b, &client6);
    let (verdict, delivered6) = run(&owner_a, &wire6);
    assert_eq!((verdict, &delivered6[12..14]), (XDP_PASS, &[0x86, 0xdd][..]));
    assert_eq!(&delivered6[14..], &client6[14..]);
    // From an address that is not a peer, IP-in-IP is left alone (the stack drops it).
    let mut stranger = wire.clone();
    stranger[14 + 12..14 + 16].copy_from_slice(&[10, 99, 0, 77]);
    assert_eq!(run(&owner_a, &stranger), (XDP_PASS, stranger.clone()));
    assert_eq!(count(&owner_a, action::PASS, reason::OTHER), 1);
}

/// The kernel's own per-run time of the main paths (`BPF_PROG_TEST_RUN`), bounded
/// loosely so a pathological regression fails. `repeat` reuses the frame the
/// previous run left, so a path that rewrites it (forwarding) is timed one run at
/// a time instead.
#[test]
fn each_verdict_costs_nanoseconds() {
    let cfg = XdpConfig { blocklist: vec![parse_cidr("192.0.2.0/24").unwrap()], syn_rate: 1000, ..cluster() };
    let plane = load(&cfg);
    let time = |frame: &[u8], repeat: u32| {
        plane.with_ebpf(|ebpf| {
            let prog: &mut Xdp = ebpf.program_mut(PROGRAM).unwrap().try_into().unwrap();
            let mut out = vec![0u8; frame.len() + 256];
            let opts =
                TestRunOptions { data_in: Some(frame), data_out: Some(&mut out), repeat, ..TestRunOptions::default() };
            prog.test_run(opts).unwrap().duration
        })
    };
    const RUNS: u32 = 20_000;
    let blocked = time(&ipv4_frame([192, 0, 2, 1], TCP, PORT, SYN), RUNS);
    let passed = time(&ipv4_frame(v4_client_owned_by(&cfg, 0), TCP, PORT, ACK), RUNS);
    let remote = ipv4_frame(v4_client_owned_by(&cfg, 1), TCP, PORT, ACK);
    let forwarded = (0..RUNS).map(|_| time(&remote, 1)).sum::<std::time::Duration>() / RUNS;
    for (name, per_packet) in [("blocked", blocked), ("passed", passed), ("forwarded", forwarded)] {
        eprintln!("xdp {name}: {per_packet:?} per packet (BPF_PROG_TEST_RUN, {RUNS} runs)");
        assert!(per_packet < std::time::Duration::from_micros(2), "{name}: {per_packet:?} per packet");
    }
    assert_eq!(count(&plane, action::DROP, reason::BLOCKED), u64::from(RUNS));
    assert_eq!(count(&plane, action::PASS, reason::PASSED), u64::from(RUNS));
    assert_eq!(count(&plane, action::TX, reason::FORWARDED), u64::from(RUNS));
}

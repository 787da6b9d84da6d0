//! The `xdp:` section: defaults, a full section, and each error with its position.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use super::*;
use crate::config::{Config, DEFAULT_CONFIG_YAML, load_str};

fn xdp(yaml: &str) -> XdpConfig {
    load_str(yaml, "t.yaml").unwrap().xdp
}

fn errors(yaml: &str) -> Vec<String> {
    load_str(yaml, "t.yaml").unwrap_err().0.iter().map(ToString::to_string).collect()
}

#[test]
fn absent_section_is_off_with_default_limits() {
    let x = xdp("");
    assert_eq!(x, XdpConfig::default());
    assert!(!x.enabled);
    assert_eq!((x.syn_rate, x.syn_burst, x.mode), (100, 200, XdpMode::Auto));
}

#[test]
fn embedded_default_documents_every_xdp_key() {
    assert_eq!(load_str(DEFAULT_CONFIG_YAML, "default.yaml").unwrap(), Config::default());
    for key in XDP_KEYS.iter().chain(NODE_KEYS).chain(HEALTH_KEYS) {
        let pattern = format!("{key}:");
        let line = DEFAULT_CONFIG_YAML.lines().find(|l| l.trim_start_matches([' ', '#', '-']).starts_with(&pattern));
        let line = line.unwrap_or_else(|| panic!("default.yaml does not show xdp key {key}"));
        assert!(line.contains(" # ") || line.ends_with(':'), "key {key} has no comment: {line}");
    }
}

#[test]
fn full_section() {
    let x = xdp("\
xdp:
  enabled: true
  interfaces: [eth0, eth1]
  mode: generic
  blocklist: [192.0.2.0/24, 198.51.100.7, \"2001:db8::/32\"]
  blocklist_all_ports: true
  syn_rate: 50
  syn_burst: 10
  nodes:
    - {name: node-a, address: 10.0.0.1, mac: \"02:00:00:00:00:01\"}
    - {name: node-b, address: 10.0.0.2}
  local_node: node-b
  pin_path: /sys/fs/bpf/mcp-gateway
");
    assert!(x.enabled && x.blocklist_all_ports);
    assert_eq!(x.interfaces, ["eth0", "eth1"]);
    assert_eq!(x.mode, XdpMode::Generic);
    let cidrs: Vec<String> = x.blocklist.iter().map(ToString::to_string).collect();
    assert_eq!(cidrs, ["192.0.2.0/24", "198.51.100.7/32", "2001:db8::/32"]);
    assert_eq!((x.syn_rate, x.syn_burst), (50, 10));
    assert_eq!(x.nodes.len(), 2);
    assert_eq!(x.nodes[0].mac, Some([2, 0, 0, 0, 0, 1]));
    assert_eq!((x.nodes[1].address, x.nodes[1].mac), (Ipv4Addr::new(10, 0, 0, 2), None));
    assert_eq!(x.local_node.as_deref(), Some("node-b"));
    assert_eq!(x.pin_path, Some(PathBuf::from("/sys/fs/bpf/mcp-gateway")));
}

#[test]
fn modes_accept_kernel_spellings() {
    assert_eq!(xdp("xdp: {mode: native}").mode, XdpMode::Driver);
    assert_eq!(xdp("xdp: {mode: SKB}").mode, XdpMode::Generic);
    assert_eq!(XdpMode::Driver.as_str(), "driver");
}

#[test]
fn cidrs_are_checked() {
    assert_eq!(parse_cidr("10.0.0.0/8").unwrap(), Cidr { addr: IpAddr::from([10, 0, 0, 0]), prefix_len: 8 });
    assert_eq!(parse_cidr("::/0").unwrap().prefix_len, 0);
    assert_eq!(parse_cidr("0.0.0.0/0").unwrap().prefix_len, 0);
    assert!(parse_cidr("10.0.0.5/8").unwrap_err().contains("did you mean 10.0.0.0/8?"));
    assert!(parse_cidr("10.0.0.0/33").unwrap_err().contains("0 to 32"));
    assert!(parse_cidr("example.com/8").unwrap_err().contains("expected a CIDR"));
    assert_eq!(parse_mac("02-00-00-00-00-0A").unwrap(), [2, 0, 0, 0, 0, 10]);
    assert!(parse_mac("02:00:00:00:00").is_err());
}

#[test]
fn each_error_is_reported_at_its_key() {
    let yaml = "\
xdp:
  enabled: true
  mode: turbo
  blocklist: [10.0.0.5/8, 10.0.0.0/8, 10.0.0.0/8]
  syn_burst: 0
  nodes:
    - {name: a, address: \"::1\"}
    - {name: a, address: 10.0.0.2, mac: zz}
    - {address: 10.0.0.3}
  local_node: b
  pin_path: relative/dir
";
    assert_eq!(
        errors(yaml),
        [
            "t.yaml:2:12: xdp.interfaces: list at least one interface (e.g. [eth0]) when xdp.enabled is true",
            "t.yaml:3:9: xdp.mode: unknown mode \"turbo\" (allowed: auto, driver, generic)",
            "t.yaml:4:15: xdp.blocklist[0]: \"10.0.0.5/8\" has host bits set; did you mean 10.0.0.0/8?",
            "t.yaml:4:39: xdp.blocklist[2]: 10.0.0.0/8 is listed twice",
            "t.yaml:5:14: xdp.syn_burst: must be between 1 and 1000000, got 0",
            "t.yaml:7:26: xdp.nodes[0].address: ::1 is IPv6; node addresses must be IPv4 (forwarded packets get an \
             outer IPv4 header)",
            "t.yaml:8:14: xdp.nodes[1].name: duplicate node name \"a\" (first at line 7)",
            "t.yaml:8:41: xdp.nodes[1].mac: expected a MAC address such as 02:00:00:00:00:01, got \"zz\"",
            "t.yaml:9:7: xdp.nodes[2].name: required: a unique node name",
            "t.yaml:10:15: xdp.local_node: \"b\" is not in xdp.nodes (names: )",
            "t.yaml:11:13: xdp.pin_path: must be an absolute path on a bpffs such as /sys/fs/bpf/mcp-gateway, got \
             \"relative/dir\"",
        ]
    );
}

#[test]
fn nodes_need_a_local_node_and_interfaces_valid_names() {
    let errs = errors("xdp:\n  nodes:\n    - {name: a, address: 10.0.0.1}\n  interfaces: [eth0, eth0, \"a/b\"]\n");
    assert_eq!(
        errs,
        [
            "t.yaml:3:5: xdp.local_node: required when xdp.nodes is set: the name of this gateway's own node (here, \
             or with --xdp-local-node / MCP_GATEWAY_XDP_LOCAL_NODE)",
            "t.yaml:4:22: xdp.interfaces[1]: interface \"eth0\" is listed twice",
            "t.yaml:4:28: xdp.interfaces[2]: invalid interface name \"a/b\": 1 to 15 characters without '/', ':' or \
             spaces",
        ]
    );
    let too_many: String =
        (0..65).map(|i| format!("    - {{name: n{i}, address: 10.0.{}.{}}}\n", i / 250, i % 250 + 1)).collect();
    let errs = errors(&format!("xdp:\n  nodes:\n{too_many}"));
    assert!(errs[0].ends_with("xdp.nodes: 65 nodes; at most 64 are supported"), "{errs:?}");
}

#[test]
fn health_checks_of_peer_nodes_default_and_parse() {
    let h = xdp("").health;
    assert_eq!(h, XdpHealth::default());
    assert_eq!((h.interval, h.timeout), (Duration::from_secs(1), Duration::from_millis(500)));
    assert_eq!((h.unhealthy_threshold, h.healthy_threshold, h.port, h.path), (3, 2, 0, None));
    let h = xdp("xdp:\n  health: {interval: 200ms, timeout: 100ms, unhealthy_threshold: 2, healthy_threshold: 1, \
                 port: 9090, path: /health}\n")
    .health;
    assert_eq!((h.interval, h.timeout), (Duration::from_millis(200), Duration::from_millis(100)));
    assert_eq!((h.unhealthy_threshold, h.healthy_threshold, h.port), (2, 1, 9090));
    assert_eq!(h.path.as_deref(), Some("/health"));
}

#[test]
fn health_errors_are_reported_at_their_key() {
    let errs = errors("xdp:\n  health:\n    interval: 0s\n    unhealthy_threshold: 0\n    port: 70000\n    pth: /x\n");
    assert_eq!(errs.len(), 4, "{errs:?}");
    assert!(
        errs.iter().any(|e| e.starts_with("t.yaml:6:5: xdp.health.pth: unknown key \"pth\"; did you mean \"path\"?"))
    );
    assert!(errs.iter().any(|e| e.starts_with("t.yaml:3:15: xdp.health.interval: must be greater than zero")));
    assert!(errs.iter().any(|e| e.contains("xdp.health.unhealthy_threshold: must be between 1 and 1000")));
    assert!(errs.iter().any(|e| e.contains("xdp.health.port: must be between 0 and 65535")));
}

/// One file for every node: each gateway is told its node by `--xdp-local-node`, which beats
/// the file's `local_node` and must name one of `xdp.nodes`.
#[test]
fn the_local_node_may_come_from_the_flag() {
    use crate::config::{Overrides, load_str_with};
    let shared = "xdp:\n  nodes:\n    - {name: a, address: 10.0.0.1}\n    - {name: b, address: 10.0.0.2}\n";
    let flag = |name: &str| Overrides { xdp_local_node: Some(name.to_owned()), ..Overrides::default() };
    let cfg = load_str_with(shared, "t.yaml", &flag("b")).unwrap();
    assert_eq!(cfg.xdp.local_node.as_deref(), Some("b"));
    let pinned = format!("{shared}  local_node: a\n");
    assert_eq!(load_str_with(&pinned, "t.yaml", &flag("b")).unwrap().xdp.local_node.as_deref(), Some("b"));
    let msgs = |e: crate::config::ConfigErrors| e.0.iter().map(ToString::to_string).collect::<Vec<_>>();
    assert_eq!(
        msgs(load_str_with(shared, "t.yaml", &flag("c")).unwrap_err()),
        ["--xdp-local-node:0:0: xdp.local_node: \"c\" is not in xdp.nodes (names: a, b)"]
    );
    assert_eq!(
        msgs(load_str_with("xdp:\n  enabled: false\n", "t.yaml", &flag("a")).unwrap_err()),
        ["--xdp-local-node:0:0: xdp.local_node: \"a\" names this gateway's node, but the config lists no xdp.nodes"]
    );
    // Without the flag the file must name it, as before.
    assert!(load_str_with(shared, "t.yaml", &Overrides::default()).is_err());
}

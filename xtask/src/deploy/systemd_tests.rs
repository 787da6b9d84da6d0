use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::PathBuf;

use super::*;
use crate::deploy::{capture, default_config, gateway_bin, keygen, parse, scratch, skip, with_local_key};

fn root() -> PathBuf {
    crate::repo_root()
}

fn read(name: &str) -> String {
    std::fs::read_to_string(root().join("deploy/systemd").join(name)).unwrap()
}

fn config() -> Yaml {
    parse("config.yaml", &read("config.yaml")).unwrap().remove(0)
}

fn problems_of(unit: &str) -> Vec<String> {
    check(unit, &config(), &default_config(&root()), gateway_notifies(&root()))
}

#[test]
fn the_unit_agrees_with_its_example_config_and_the_gateway() {
    let problems = problems_of(&read("mcp-gateway.service"));
    assert!(problems.is_empty(), "deploy/systemd: {problems:#?}");
}

/// Every check can fail: each of these real mistakes is reported.
#[test]
fn broken_units_are_reported() {
    let unit = read("mcp-gateway.service");
    let cases = [
        ("Type=notify", "Type=exec", "use Type=notify"),
        ("@system-service bpf perf_event_open", "@system-service perf_event_open", "bpf()"),
        ("@system-service bpf perf_event_open", "@system-service bpf", "perf_event_open()"),
        (
            "ExecStartPre=/usr/local/bin/mcp-gateway validate",
            "#ExecStartPre=/usr/local/bin/mcp-gateway validate",
            "validate",
        ),
        ("validate --config /etc/mcp-gateway/config.yaml", "validate --config /etc/mcp-gateway/other.yaml", "validate"),
        ("/bin/kill -HUP $MAINPID", "/bin/kill -TERM $MAINPID", "SIGHUP"),
        ("TimeoutStopSec=45s", "TimeoutStopSec=30s", "TimeoutStopSec"),
        ("LimitNOFILE=1048576", "LimitNOFILE=1024", "LimitNOFILE"),
        ("WatchdogSec=30s\n", "", "no WatchdogSec"),
        ("WatchdogSec=30s", "WatchdogSec=2s", "under 10s"),
        ("AmbientCapabilities=CAP_BPF ", "AmbientCapabilities=", "AmbientCapabilities lacks CAP_BPF"),
        (
            "CapabilityBoundingSet=CAP_BPF CAP_NET_ADMIN",
            "CapabilityBoundingSet=CAP_BPF",
            "CapabilityBoundingSet lacks CAP_NET_ADMIN",
        ),
        ("AF_UNIX AF_NETLINK", "AF_UNIX", "AF_NETLINK"),
        ("ProtectHome=yes", "ProtectHome=yes\nProcSubset=pid", "ProcSubset"),
        ("PrivateTmp=yes", "PrivateTmp=yes\nPrivateNetwork=yes", "PrivateNetwork"),
        ("BindPaths=/sys/fs/bpf/mcp-gateway\n", "", "TemporaryFileSystem"),
        (
            "TemporaryFileSystem=/sys/fs/bpf\nBindPaths=/sys/fs/bpf/mcp-gateway\nReadWritePaths=/sys/fs/bpf/mcp-gateway\n",
            "ReadWritePaths=/var/lib/mcp-gateway\n",
            "ReadWritePaths",
        ),
        ("ExecStartPre=+/bin/sh", "#ExecStartPre=+/bin/sh", "bpffs"),
    ];
    for (from, to, expected) in cases {
        assert!(unit.contains(from), "the unit no longer contains {from:?}; update this test");
        let problems = problems_of(&unit.replacen(from, to, 1));
        assert!(
            problems.iter().any(|p| p.contains(expected)),
            "{from:?} -> {to:?} should be reported ({expected:?}), got {problems:#?}"
        );
    }
    let moved_key = read("config.yaml").replace("/etc/mcp-gateway/session.keys", "/var/lib/session.keys");
    let moved = parse("config.yaml", &moved_key).unwrap().remove(0);
    let problems = check(&unit, &moved, &default_config(&root()), false);
    assert!(problems.iter().any(|p| p.contains("sessions.key_file")), "{problems:#?}");
}

#[test]
fn the_example_config_validates() {
    let root = root();
    let Some(bin) = gateway_bin(&root) else {
        return skip("`mcp-gateway validate` of deploy/systemd/config.yaml", "no gateway binary");
    };
    let dir = scratch(&root, "systemd-config");
    let key = dir.join("session.keys");
    keygen(&bin, &key);
    let f = crate::deploy::facts(&config(), &default_config(&root)).unwrap();
    std::fs::write(dir.join("config.yaml"), with_local_key(&read("config.yaml"), &f, &key)).unwrap();
    let out = capture(Command::new(&bin).args(["validate", "--config"]).arg(dir.join("config.yaml"))).unwrap();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let _ = std::fs::remove_dir_all(&dir);
}

fn analyze_available() -> bool {
    capture(Command::new("systemd-analyze").arg("--version")).is_some_and(|o| o.code == Some(0))
}

#[test]
fn systemd_analyze_verifies_the_unit() {
    let root = root();
    if !analyze_available() {
        return skip("systemd-analyze verify", "systemd-analyze is not installed");
    }
    let Some(bin) = gateway_bin(&root) else {
        return skip("systemd-analyze verify", "no gateway binary for ExecStart");
    };
    let dir = scratch(&root, "systemd-verify");
    let diagnostics = verify(&read("mcp-gateway.service"), &bin, &dir).unwrap();
    assert!(diagnostics.trim().is_empty(), "systemd-analyze verify: {diagnostics}");
    let broken = read("mcp-gateway.service")
        .replace("Type=notify", "Type=notfy")
        .replace("@system-service bpf", "@system-servic bpf");
    let diagnostics = verify(&broken, &bin, &dir).unwrap();
    assert!(diagnostics.contains("notfy") && diagnostics.contains("@system-servic"), "not reported: {diagnostics}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// sysusers creates the unit's User/Group and tmpfiles the config directory for it, applied
/// to a scratch root.
#[test]
fn sysusers_and_tmpfiles_create_the_user_and_config_directory() {
    let root = root();
    let tools = ["systemd-sysusers", "systemd-tmpfiles"];
    if !tools.iter().all(|t| capture(Command::new(t).arg("--version")).is_some_and(|o| o.code == Some(0))) {
        return skip("sysusers/tmpfiles", "systemd-sysusers or systemd-tmpfiles is not installed");
    }
    if capture(Command::new("id").arg("-u")).is_none_or(|o| o.stdout.trim() != "0") {
        return skip("sysusers/tmpfiles", "not root (systemd-tmpfiles chowns the directory)");
    }
    let dir = scratch(&root, "systemd-root");
    for (sub, file) in [("sysusers.d", "mcp-gateway.sysusers"), ("tmpfiles.d", "mcp-gateway.tmpfiles")] {
        std::fs::create_dir_all(dir.join("etc").join(sub)).unwrap();
        std::fs::write(dir.join("etc").join(sub).join("mcp-gateway.conf"), read(file)).unwrap();
    }
    for (tool, args) in [("systemd-sysusers", &[][..]), ("systemd-tmpfiles", &["--create"][..])] {
        let out = capture(Command::new(tool).arg(format!("--root={}", dir.display())).args(args)).unwrap();
        assert!(out.code == Some(0) && !out.stderr.contains(".conf:"), "{tool}: {}", out.stderr);
    }
    let settings = service_settings(&read("mcp-gateway.service"));
    let user = values(&settings, "User")[0].to_owned();
    let group = values(&settings, "Group")[0].to_owned();
    let passwd = std::fs::read_to_string(dir.join("etc/passwd")).unwrap();
    let groups = std::fs::read_to_string(dir.join("etc/group")).unwrap();
    assert!(passwd.lines().any(|l| l.starts_with(&format!("{user}:")) && l.ends_with("nologin")), "{passwd}");
    let gid: u32 = groups
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{group}:x:")))
        .unwrap()
        .trim_end_matches(':')
        .parse()
        .unwrap();
    let meta = std::fs::metadata(dir.join("etc/mcp-gateway")).unwrap();
    assert_eq!((meta.gid(), meta.permissions().mode() & 0o777), (gid, 0o750));
    let _ = std::fs::remove_dir_all(&dir);
}

//! The privilege models of the systemd unit and the DaemonSet, run for real (root only),
//! attaching XDP to a veth in a network namespace of their own, with pins on a 0700 bpffs:
//! - the unit's: an unprivileged user with the unit's ambient and bounding capabilities and
//!   `no_new_privs`, behind its `TemporaryFileSystem=` + `BindPaths=`; the control run without
//!   the tmpfs/bind step must fail to pin;
//! - the DaemonSet's: UID 0 with only the container's `capabilities.add` and no privilege
//!   escalation; the control run without `BPF` must fail.
//!
//! A root run first shows whether XDP can attach on this machine at all.
//!
//! What is not reproduced: `SystemCallFilter=` and the other seccomp-based settings (no
//! systemd manager here); `systemd-analyze verify` checks their syntax.

use std::path::Path;
use std::process::Command;

use super::systemd::service_settings;
use super::{capture, skip};

/// How the gateway is started inside the namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Run {
    /// As root, no sandbox: can XDP attach here at all?
    Root,
    /// As the unit runs it: service user, capabilities, `no_new_privs`, tmpfs + bind.
    Unit,
    /// Like `Unit` without the tmpfs + bind step: the 0700 bpffs blocks the pin directory.
    WithoutBind,
    /// As the DaemonSet's container: UID 0 with only these capabilities (Kubernetes names,
    /// e.g. `BPF`) and no privilege escalation, the host's bpffs mounted at /sys/fs/bpf.
    Container(Vec<String>),
}

fn words(unit: &str, key: &str) -> Vec<String> {
    service_settings(unit)
        .into_iter()
        .filter(|(k, _)| k == key)
        .flat_map(|(_, v)| v.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .collect()
}

/// `+bpf,+net_admin,...` for setpriv from `CAP_BPF CAP_NET_ADMIN ...`.
fn caps(list: &[String]) -> String {
    list.iter().map(|c| format!("+{}", c.trim_start_matches("CAP_").to_lowercase())).collect::<Vec<_>>().join(",")
}

/// The shell script that sets up the mounts as the unit does and starts the gateway.
pub fn script(unit: &str, bin: &Path, config: &Path, pin: &str, run: &Run) -> String {
    let pre = words(unit, "ExecStartPre").join(" ");
    let bpf_opts =
        pre.split("mount -t bpf -o ").nth(1).and_then(|r| r.split_whitespace().next()).unwrap_or("mode=0700");
    let mut s = format!("set -eu\nmount -t bpf -o {bpf_opts} bpf /sys/fs/bpf\n");
    if !matches!(run, Run::Container(_)) {
        // The unit's root ExecStartPre: the pin directory, owned by the service user.
        s += &format!("install -d -m 0700 -o nobody -g nogroup {pin}\n");
    }
    if *run == Run::Unit {
        // As systemd does: bind sources are taken before the tmpfs hides them.
        let binds = words(unit, "BindPaths");
        let stash = |i: usize| format!("{}.stash{i}", config.display());
        for (i, bind) in binds.iter().enumerate() {
            s += &format!("mkdir -p {0}\nmount --bind {bind} {0}\n", stash(i));
        }
        for tmp in words(unit, "TemporaryFileSystem") {
            s += &format!("mount -t tmpfs -o mode=0755 tmpfs {tmp}\n");
        }
        for (i, bind) in binds.iter().enumerate() {
            s += &format!("mkdir -p {bind}\nmount --bind {} {bind}\n", stash(i));
        }
    }
    let run_as = if let Run::Container(added) = run {
        // UID 0 keeps exactly the bounding set over exec, as a container's root does.
        format!("setpriv --bounding-set=-all,{} --no-new-privs --", caps(added))
    } else if *run == Run::Root {
        String::new()
    } else {
        let ambient = caps(&words(unit, "AmbientCapabilities"));
        let bounding = caps(&words(unit, "CapabilityBoundingSet"));
        let nnp = if words(unit, "NoNewPrivileges").iter().any(|w| w == "yes") { "--no-new-privs" } else { "" };
        format!(
            "setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps={ambient} --ambient-caps={ambient} --bounding-set=-all,{bounding} {nnp} --"
        )
    };
    let (bin, config) = (bin.display(), config.display());
    // The admin listener answers before the data plane is loaded; "mcp-gateway listening" is
    // logged after the XDP outcome, so the metric is read only then.
    s += &format!(
        "{run_as} timeout 20 {bin} run --config {config} >{config}.log 2>&1 &\n\
         for i in $(seq 60); do grep -q 'mcp-gateway listening' {config}.log && break; sleep 0.25; done\n\
         curl -s --max-time 2 http://127.0.0.1:19090/metrics | grep '^mcp_ebpf_mode' || true\n\
         ls {pin} || true\nkill $! 2>/dev/null || true\nwait || true\ngrep -i xdp {config}.log || true\n"
    );
    s
}

/// Runs `script` in a fresh network namespace with a veth `vd1` and a private mount
/// namespace; returns its stdout, or `None` when the namespace cannot be made.
pub fn in_netns(script: &str, name: &str) -> Option<String> {
    let ip = |args: &[&str]| capture(Command::new("ip").args(args)).is_some_and(|o| o.code == Some(0));
    if !ip(&["netns", "add", name]) {
        return None;
    }
    let ok = ip(&["-n", name, "link", "add", "vd0", "type", "veth", "peer", "name", "vd1"])
        && ["vd0", "vd1", "lo"].iter().all(|l| ip(&["-n", name, "link", "set", l, "up"]));
    let out = ok.then(|| {
        capture(Command::new("ip").args([
            "netns",
            "exec",
            name,
            "unshare",
            "-m",
            "--propagation",
            "private",
            "sh",
            "-c",
            script,
        ]))
    });
    ip(&["netns", "del", name]);
    out.flatten().map(|o| o.stdout)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::{gateway_bin, scratch};

    #[test]
    fn the_unit_and_the_daemonset_privileges_attach_and_pin_xdp() {
        let root = crate::repo_root();
        let is_root = capture(Command::new("id").arg("-u")).is_some_and(|o| o.stdout.trim() == "0");
        let tools = [("ip", "-V"), ("setpriv", "--version"), ("unshare", "--version"), ("curl", "--version")]
            .iter()
            .all(|(t, v)| capture(Command::new(t).arg(v)).is_some_and(|o| o.code == Some(0)));
        if !is_root || !tools {
            return skip("the unit's sandbox with XDP", "needs root, ip, setpriv, unshare and curl");
        }
        let Some(bin) = gateway_bin(&root) else { return skip("the unit's sandbox with XDP", "no gateway binary") };
        let unit = std::fs::read_to_string(root.join("deploy/systemd/mcp-gateway.service")).unwrap();
        let pin = "/sys/fs/bpf/mcp-gateway";
        let dir = scratch(&root, "sandbox");
        let config = dir.join("config.yaml");
        let yaml = format!(
            "server: {{host: 127.0.0.1, port: 18443}}\nadmin: {{host: 127.0.0.1, port: 19090}}\nxdp: {{enabled: true, interfaces: [vd1], mode: generic, pin_path: {pin}}}\n"
        );
        std::fs::write(&config, yaml).unwrap();
        let netns = format!("mcpgw-deploy-{}", std::process::id());
        let attempt = |run: Run| in_netns(&script(&unit, &bin, &config, pin, &run), &netns);
        let Some(baseline) = attempt(Run::Root) else {
            return skip("the unit's sandbox with XDP", "cannot create a network namespace");
        };
        if !baseline.contains("mcp_ebpf_mode 1") {
            return skip("the unit's sandbox with XDP", &format!("XDP does not attach here even as root: {baseline}"));
        }
        let unit_run = attempt(Run::Unit).unwrap();
        assert!(
            unit_run.contains("mcp_ebpf_mode 1") && unit_run.contains("link_vd1"),
            "as the unit runs it: {unit_run}"
        );
        let control = attempt(Run::WithoutBind).unwrap();
        assert!(control.contains("mcp_ebpf_mode 0") && !control.contains("link_vd1"), "without the bind: {control}");
        // The DaemonSet's gateway container: its capabilities.add, nothing else.
        let added = daemonset_capabilities(&root);
        assert!(!added.is_empty(), "the DaemonSet adds no capabilities");
        let pod = attempt(Run::Container(added.clone())).unwrap();
        assert!(pod.contains("mcp_ebpf_mode 1") && pod.contains("link_vd1"), "as the DaemonSet runs it: {pod}");
        let fewer: Vec<String> = added.into_iter().filter(|c| c != "BPF").collect();
        let control = attempt(Run::Container(fewer)).unwrap();
        assert!(control.contains("mcp_ebpf_mode 0"), "without CAP_BPF: {control}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// `capabilities.add` of the DaemonSet container that runs the gateway.
    fn daemonset_capabilities(root: &Path) -> Vec<String> {
        let base = super::super::kube::load(&crate::deploy::read_dir(&root.join("deploy/kubernetes"))).unwrap();
        let ds = base.objects.iter().find(|o| o["kind"].as_str() == Some("DaemonSet")).unwrap();
        let containers = ds["spec"]["template"]["spec"]["containers"].as_vec().unwrap();
        let gw = containers.iter().find(|c| c["name"].as_str() == Some("gateway")).unwrap();
        let added = gw["securityContext"]["capabilities"]["add"].as_vec().cloned().unwrap_or_default();
        added.iter().filter_map(|c| c.as_str().map(str::to_owned)).collect()
    }
}

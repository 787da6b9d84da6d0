//! `deploy/systemd/`: the unit checked against its example config and what the gateway does.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use yaml_rust2::Yaml;

use super::{Facts, duration, facts, under};

/// The `[Service]` settings of a unit: every `Key=value` in order (keys repeat).
pub fn service_settings(unit: &str) -> Vec<(String, String)> {
    let mut section = String::new();
    let mut out = Vec::new();
    for line in unit.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line.to_owned();
        } else if section == "[Service]"
            && !line.starts_with('#')
            && let Some((k, v)) = line.split_once('=')
        {
            out.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    out
}

fn values<'a>(s: &'a [(String, String)], key: &str) -> Vec<&'a str> {
    s.iter().filter(|(k, _)| k == key).map(|(_, v)| v.as_str()).collect()
}

/// Space-separated words of every `key=` line.
fn words<'a>(s: &'a [(String, String)], key: &str) -> Vec<&'a str> {
    values(s, key).into_iter().flat_map(str::split_whitespace).collect()
}

/// The `--config` argument of a command line.
fn config_arg(cmd: &str) -> Option<&str> {
    cmd.split_whitespace().skip_while(|w| *w != "--config").nth(1)
}

/// True when the gateway's source notifies systemd (`sd_notify`, `NOTIFY_SOCKET`).
pub fn gateway_notifies(root: &Path) -> bool {
    fn scan(dir: &Path) -> bool {
        std::fs::read_dir(dir).into_iter().flatten().flatten().any(|e| {
            let path = e.path();
            if path.is_dir() {
                scan(&path)
            } else {
                path.extension().is_some_and(|x| x == "rs")
                    && std::fs::read_to_string(&path)
                        .is_ok_and(|t| t.contains("NOTIFY_SOCKET") || t.contains("sd_notify"))
            }
        })
    }
    scan(&root.join("gateway/src"))
}

/// Every disagreement between the unit, its example config and the gateway.
pub fn check(unit: &str, config: &Yaml, default: &Yaml, notifies: bool) -> Vec<String> {
    let mut p = Vec::new();
    let f: Facts = match facts(config, default) {
        Ok(f) => f,
        Err(e) => return vec![e],
    };
    let s = service_settings(unit);
    let one = |key: &str| values(&s, key).last().copied().unwrap_or_default();
    match (one("Type"), notifies) {
        ("notify", false) => {
            p.push("Type=notify, but the gateway never calls sd_notify: systemd would time out the start".into());
        }
        (other, true) if other != "notify" => p.push(format!(
            "Type={other}: the gateway sends READY=1 when its listeners are bound; use Type=notify so \
             units after it start when it serves"
        )),
        _ => {}
    }
    match duration(one("WatchdogSec")).filter(|d| !d.is_zero()) {
        None => p.push(
            "no WatchdogSec: the gateway sends WATCHDOG=1, but systemd would not restart one whose runtime hangs"
                .into(),
        ),
        Some(d) if d < Duration::from_secs(10) => p.push(format!(
            "WatchdogSec {d:?} is under 10s: a loaded host can delay a ping past it and the gateway is killed"
        )),
        Some(_) => {}
    }
    let start = one("ExecStart");
    let config_path = config_arg(start).unwrap_or_default();
    if !start.contains(" run ") || config_path.is_empty() {
        p.push(format!("ExecStart={start} must run the gateway with --config"));
    }
    let validates =
        values(&s, "ExecStartPre").iter().any(|c| c.contains(" validate ") && config_arg(c) == Some(config_path));
    if !validates {
        p.push(format!("no ExecStartPre runs `mcp-gateway validate --config {config_path}`"));
    }
    let reload = one("ExecReload");
    if !(reload.contains("-HUP") || reload.contains("SIGHUP")) || !reload.contains("$MAINPID") {
        p.push(format!("ExecReload={reload} must send SIGHUP to $MAINPID (the gateway's reload)"));
    }
    let stop = duration(one("TimeoutStopSec")).unwrap_or(Duration::from_secs(90));
    if stop <= f.shutdown + Duration::from_secs(1) {
        p.push(format!(
            "TimeoutStopSec {stop:?} does not exceed server.drain_delay + shutdown_timeout + 1s: the drain is cut"
        ));
    }
    let nofile =
        one("LimitNOFILE").parse::<u64>().unwrap_or(if one("LimitNOFILE") == "infinity" { u64::MAX } else { 0 });
    if nofile < 65_536 {
        p.push("LimitNOFILE must be at least 65536 (every SSE stream holds two sockets)".into());
    }
    if f.xdp {
        check_xdp_sandbox(&s, &f, &mut p);
    }
    let config_dir = Path::new(config_path).parent().map(|d| d.display().to_string()).unwrap_or_default();
    if f.key_file.as_deref().is_some_and(|k| config_dir.is_empty() || !under(k, &config_dir)) {
        p.push(format!(
            "sessions.key_file should live beside the config in {config_dir:?} (mode 0640, group of the service)"
        ));
    }
    p
}

fn check_xdp_sandbox(s: &[(String, String)], f: &Facts, p: &mut Vec<String>) {
    let root_user = matches!(values(s, "User").last().copied(), None | Some("root" | "0"));
    let ambient = words(s, "AmbientCapabilities");
    let bounding = words(s, "CapabilityBoundingSet");
    for cap in ["CAP_BPF", "CAP_NET_ADMIN", "CAP_PERFMON"] {
        if !root_user && !ambient.contains(&cap) {
            p.push(format!("xdp.enabled: AmbientCapabilities lacks {cap}"));
        }
        if !bounding.is_empty() && !bounding.contains(&cap) {
            p.push(format!("xdp.enabled: CapabilityBoundingSet lacks {cap}"));
        }
    }
    let filter = words(s, "SystemCallFilter");
    let denies = filter.first().is_some_and(|w| w.starts_with('~'));
    for (call, group) in [("bpf", "@privileged"), ("perf_event_open", "@debug")] {
        let listed = filter.iter().any(|w| w.trim_start_matches('~') == call || w.trim_start_matches('~') == group);
        if !filter.is_empty() && (denies == listed) {
            p.push(format!("xdp.enabled: SystemCallFilter does not allow {call}()"));
        }
    }
    let families = words(s, "RestrictAddressFamilies");
    if !families.is_empty() && !families.contains(&"AF_NETLINK") {
        p.push("xdp.enabled: RestrictAddressFamilies must keep AF_NETLINK (XDP attach without BPF links)".into());
    }
    if values(s, "ProcSubset").contains(&"pid") {
        p.push("ProcSubset=pid hides /proc/mounts and /proc/net/arp, which the XDP loader reads".into());
    }
    if values(s, "PrivateNetwork").contains(&"yes") {
        p.push("PrivateNetwork=yes hides the host NIC the XDP program attaches to".into());
    }
    if let Some(pin) = &f.pin_path {
        let strict =
            values(s, "ProtectSystem").contains(&"strict") || values(s, "ProtectKernelTunables").contains(&"yes");
        let writable = words(s, "ReadWritePaths")
            .iter()
            .chain(&words(s, "BindPaths"))
            .any(|w| under(pin, w.trim_start_matches('-')));
        if strict && !writable {
            p.push(format!("xdp.pin_path {pin} is read-only in the sandbox: list it in ReadWritePaths"));
        }
        let hidden =
            words(s, "TemporaryFileSystem").iter().any(|t| under(pin, t.split(':').next().unwrap_or_default()));
        if hidden && !words(s, "BindPaths").iter().any(|b| under(pin, b.split(':').next_back().unwrap_or_default())) {
            p.push(format!("xdp.pin_path {pin} is under a TemporaryFileSystem without a BindPaths= of it"));
        }
        let prepared = values(s, "ExecStartPre")
            .iter()
            .any(|c| c.starts_with('+') && c.contains("mount -t bpf") && c.contains(pin.as_str()));
        if !root_user && !prepared {
            p.push(format!("no privileged (+) ExecStartPre mounts bpffs and creates {pin} for the service user"));
        }
    }
}

/// `systemd-analyze verify` of `unit` with its `/usr/local/bin/mcp-gateway` pointed at `bin`;
/// its diagnostics (it exits 0 on many of them), or `None` when systemd-analyze is missing.
pub fn verify(unit: &str, bin: &Path, dir: &Path) -> Option<String> {
    let path = dir.join("mcp-gateway.service");
    std::fs::write(&path, unit.replace("/usr/local/bin/mcp-gateway", &bin.display().to_string())).ok()?;
    let out = super::capture(Command::new("systemd-analyze").args(["verify", "--man=no"]).arg(&path))?;
    let mut diagnostics = out.stderr + &out.stdout;
    if out.code != Some(0) && diagnostics.trim().is_empty() {
        diagnostics = format!("systemd-analyze verify exited with {:?}", out.code);
    }
    Some(diagnostics)
}

#[cfg(test)]
#[path = "systemd_tests.rs"]
mod tests;

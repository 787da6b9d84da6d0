//! `deploy/kubernetes/`: the kustomize base checked against the gateway config it ships.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use yaml_rust2::Yaml;

use super::{Facts, Files, GATEWAY_IN_IMAGE, LOCAL_NODE_ENV, facts, list, parse, text, under};

/// The file of the gateway config inside the base.
pub const CONFIG_FILE: &str = "config.yaml";

/// The parsed base: kustomization, every object of its resources, the gateway config.
#[derive(Debug)]
pub struct Base {
    /// kustomization.yaml.
    pub kustomization: Yaml,
    /// The objects of every listed resource file.
    pub objects: Vec<Yaml>,
    /// The gateway config, the same for every node (`xdp.local_node` comes from the environment).
    pub config: Yaml,
    /// The name of the generated ConfigMap holding the config.
    pub config_map: String,
    /// Keys of that ConfigMap (file names, or `key=file`).
    pub config_keys: Vec<String>,
}

/// Parses the base from its files; structural problems that stop parsing are errors.
pub fn load(files: &Files) -> Result<Base, Vec<String>> {
    let mut problems = Vec::new();
    let kustomization = parse(
        "kustomization.yaml",
        files.get("kustomization.yaml").ok_or(vec!["deploy/kubernetes: kustomization.yaml is missing".to_owned()])?,
    )
    .map_err(|e| vec![e])?
    .into_iter()
    .next()
    .ok_or(vec!["kustomization.yaml is empty".to_owned()])?;
    let mut objects = Vec::new();
    let mut listed: Vec<String> = vec!["kustomization.yaml".into()];
    for res in list(&kustomization["resources"]).iter().filter_map(text) {
        match files.get(&res) {
            Some(body) => match parse(&res, body) {
                Ok(docs) => objects.extend(docs.into_iter().filter(|d| !d.is_null())),
                Err(e) => problems.push(e),
            },
            None => problems.push(format!("kustomization.yaml: resource {res} does not exist")),
        }
        listed.push(res);
    }
    let generator = list(&kustomization["configMapGenerator"])
        .iter()
        .find(|g| list(&g["files"]).iter().filter_map(text).any(|f| f.rsplit('=').next() == Some(CONFIG_FILE)));
    let Some(generator) = generator else {
        problems.push(format!("kustomization.yaml: no configMapGenerator has {CONFIG_FILE}"));
        return Err(problems);
    };
    let config_map = text(&generator["name"]).unwrap_or_default();
    let config_keys: Vec<String> = list(&generator["files"]).iter().filter_map(text).collect();
    listed.extend(config_keys.iter().map(|f| f.rsplit('=').next().unwrap_or_default().to_owned()));
    for name in files.keys().filter(|n| n.ends_with(".yaml") || n.ends_with(".yml")) {
        if !listed.contains(name) {
            problems.push(format!("{name} is not listed in kustomization.yaml (resources or configMapGenerator)"));
        }
    }
    let config = match files.get(CONFIG_FILE).map(|t| parse(CONFIG_FILE, t)) {
        Some(Ok(mut docs)) if !docs.is_empty() => docs.remove(0),
        Some(Err(e)) => return Err([problems, vec![e]].concat()),
        _ => return Err([problems, vec![format!("{CONFIG_FILE} is missing or empty")]].concat()),
    };
    if problems.is_empty() {
        Ok(Base { kustomization, objects, config, config_map, config_keys })
    } else {
        Err(problems)
    }
}

fn object<'a>(base: &'a Base, kind: &str) -> Option<&'a Yaml> {
    base.objects.iter().find(|o| text(&o["kind"]).as_deref() == Some(kind))
}

/// The volume mounted at the longest `mountPath` holding `path` in `container`, with the
/// path inside the volume.
fn volume_of<'a>(pod: &'a Yaml, container: &Yaml, path: &str) -> Option<(&'a Yaml, bool, String)> {
    let mount = list(&container["volumeMounts"])
        .iter()
        .filter(|m| text(&m["mountPath"]).is_some_and(|p| under(path, &p)))
        .max_by_key(|m| text(&m["mountPath"]).map_or(0, |p| p.len()))?;
    let mount_path = text(&mount["mountPath"])?;
    let volume = list(&pod["volumes"]).iter().find(|v| v["name"] == mount["name"])?;
    let inside = path[mount_path.trim_end_matches('/').len()..].trim_start_matches('/').to_owned();
    Some((volume, mount["readOnly"].as_bool().unwrap_or(false), inside))
}

/// A probe's or annotation's port: a number, or the name of a container port.
fn port_number(container: &Yaml, port: &Yaml) -> Option<i64> {
    port.as_i64().or_else(|| {
        let name = text(port)?;
        name.parse().ok().or_else(|| {
            list(&container["ports"])
                .iter()
                .find(|p| text(&p["name"]).as_deref() == Some(name.as_str()))
                .and_then(|p| p["containerPort"].as_i64())
        })
    })
}

/// Every disagreement between the base and the gateway config it ships.
pub fn check(base: &Base, default: &Yaml) -> Vec<String> {
    let mut p = Vec::new();
    let f = match facts(&base.config, default) {
        Ok(f) => f,
        Err(e) => return vec![e],
    };
    let namespace = text(&base.kustomization["namespace"]).unwrap_or_default();
    if !base
        .objects
        .iter()
        .any(|o| o["kind"].as_str() == Some("Namespace") && text(&o["metadata"]["name"]) == Some(namespace.clone()))
    {
        p.push(format!("no Namespace object for the kustomization namespace {namespace:?}"));
    }
    let Some(ds) = object(base, "DaemonSet") else { return [p, vec!["no DaemonSet".to_owned()]].concat() };
    let pod = &ds["spec"]["template"]["spec"];
    check_pod_level(base, &f, ds, &mut p);
    let containers = list(&pod["containers"]);
    let Some(gw) = containers.iter().find(|c| list(&c["args"]).iter().any(|a| a.as_str() == Some("--config"))) else {
        return [p, vec!["no container runs the gateway with --config".to_owned()]].concat();
    };
    for c in containers.iter().chain(list(&pod["initContainers"])) {
        check_container_basics(base, c, &mut p);
    }
    let config_path = config_arg(&command_line(gw));
    check_config_source(base, pod, gw, &config_path, &mut p);
    check_ports_and_probes(&f, gw, &mut p);
    check_xdp(&f, pod, gw, &mut p);
    check_local_node(&f, pod, gw, &mut p);
    if let Some(key) = &f.key_file {
        for c in std::iter::once(gw).chain(validators(pod)) {
            match volume_of(pod, c, key) {
                Some((v, _, _)) if !v["secret"].is_badvalue() => {}
                _ => p.push(format!(
                    "sessions.key_file {key} is not on a Secret volume in container {}",
                    text(&c["name"]).unwrap_or_default()
                )),
            }
        }
    }
    p
}

fn check_pod_level(base: &Base, f: &Facts, ds: &Yaml, p: &mut Vec<String>) {
    let template = &ds["spec"]["template"];
    let pod = &template["spec"];
    if pod["hostNetwork"].as_bool() != Some(true) && f.xdp {
        p.push("xdp.enabled needs hostNetwork: true (the program attaches to the host's NIC)".into());
    }
    if pod["hostNetwork"].as_bool() == Some(true) && pod["dnsPolicy"].as_str() != Some("ClusterFirstWithHostNet") {
        p.push("hostNetwork pods resolve cluster DNS names only with dnsPolicy: ClusterFirstWithHostNet".into());
    }
    let sa = object(base, "ServiceAccount").and_then(|s| text(&s["metadata"]["name"]));
    if text(&pod["serviceAccountName"]) != sa {
        p.push(format!("serviceAccountName {:?} is not the ServiceAccount {sa:?}", text(&pod["serviceAccountName"])));
    }
    let labels = &template["metadata"]["labels"];
    let selects = |sel: &Yaml| {
        sel.as_hash()
            .is_some_and(|h| !h.is_empty() && h.iter().all(|(k, v)| &labels[k.as_str().unwrap_or_default()] == v))
    };
    if !selects(&ds["spec"]["selector"]["matchLabels"]) {
        p.push("the DaemonSet's selector does not match its pod labels".into());
    }
    if let Some(svc) = object(base, "Service")
        && !selects(&svc["spec"]["selector"])
    {
        p.push("the Service's selector does not match the gateway pods".into());
    }
    let strategy = &ds["spec"]["updateStrategy"];
    if strategy["type"].as_str() != Some("RollingUpdate")
        || text(&strategy["rollingUpdate"]["maxUnavailable"]).as_deref() != Some("1")
    {
        p.push("updateStrategy must be RollingUpdate with maxUnavailable: 1".into());
    }
    let grace = pod["terminationGracePeriodSeconds"].as_i64().unwrap_or(30);
    // The gateway stops within drain_delay + shutdown_timeout + 1s.
    if Duration::from_secs(u64::try_from(grace).unwrap_or(0)) <= f.shutdown + Duration::from_secs(1) {
        p.push(format!(
            "terminationGracePeriodSeconds {grace} does not exceed server.drain_delay + shutdown_timeout ({}s) + 1s: SIGKILL cuts the drain",
            f.shutdown.as_secs()
        ));
    }
    let ann = &template["metadata"]["annotations"];
    if ann["prometheus.io/scrape"].as_str() != Some("true")
        || text(&ann["prometheus.io/port"]) != Some(f.admin_port.to_string())
        || ann["prometheus.io/path"].as_str() != Some("/metrics")
    {
        p.push(format!("prometheus.io/{{scrape,port,path}} annotations must be true, {}, /metrics", f.admin_port));
    }
}

fn check_container_basics(base: &Base, c: &Yaml, p: &mut Vec<String>) {
    let name = text(&c["name"]).unwrap_or_default();
    let images: Vec<String> = list(&base.kustomization["images"]).iter().filter_map(|i| text(&i["name"])).collect();
    if !text(&c["image"]).is_some_and(|i| images.contains(&i)) {
        p.push(format!(
            "container {name}: image {:?} is not rewritten by kustomization images {images:?}",
            text(&c["image"])
        ));
    }
    let r = &c["resources"];
    if r["requests"]["cpu"].is_badvalue()
        || r["requests"]["memory"].is_badvalue()
        || r["limits"]["memory"].is_badvalue()
    {
        p.push(format!("container {name}: needs resources.requests.cpu/memory and limits.memory"));
    }
}

/// A container's `command` and `args`, in order.
fn command_line(c: &Yaml) -> Vec<String> {
    list(&c["command"]).iter().chain(list(&c["args"])).filter_map(text).collect()
}

/// The value after `--config`, or empty.
fn config_arg(cmd: &[String]) -> String {
    cmd.iter().skip_while(|a| *a != "--config").nth(1).cloned().unwrap_or_default()
}

/// The init containers that run the gateway's `validate`.
fn validators(pod: &Yaml) -> impl Iterator<Item = &Yaml> {
    list(&pod["initContainers"]).iter().filter(|c| {
        let cmd = command_line(c);
        cmd.first().map(String::as_str) == Some(GATEWAY_IN_IMAGE) && cmd.iter().any(|a| a == "validate")
    })
}

/// The `--config` file must be a key of the generated ConfigMap, mounted directly, and an init
/// container must validate that same file first, so a bad config stops the pod at `Init` with
/// every error in its log instead of crash-looping the gateway.
fn check_config_source(base: &Base, pod: &Yaml, gw: &Yaml, config_path: &str, p: &mut Vec<String>) {
    let from_config_map = |c: &Yaml, path: &str| match volume_of(pod, c, path) {
        Some((v, _, inside)) => {
            text(&v["configMap"]["name"]).as_deref() == Some(base.config_map.as_str())
                && base.config_keys.iter().any(|k| k.split('=').next() == Some(inside.as_str()))
        }
        None => false,
    };
    if !from_config_map(gw, config_path) {
        p.push(format!(
            "--config {config_path} is not a key of ConfigMap {} mounted in the gateway container",
            base.config_map
        ));
    }
    let validated =
        validators(pod).any(|c| config_arg(&command_line(c)) == config_path && from_config_map(c, config_path));
    if !validated {
        p.push(format!(
            "no init container runs `{GATEWAY_IN_IMAGE} validate --config {config_path}` on the ConfigMap: \
             a bad config would crash-loop the gateway instead of stopping the pod at Init"
        ));
    }
}

/// With `xdp.nodes`, every pod is another node: the shared file names none, and the gateway
/// and its validating init container learn their node from [`LOCAL_NODE_ENV`].
fn check_local_node(f: &Facts, pod: &Yaml, gw: &Yaml, p: &mut Vec<String>) {
    if f.nodes.is_empty() {
        return;
    }
    if let Some(node) = &f.local_node {
        p.push(format!(
            "xdp.local_node {node:?} is in the shared ConfigMap: every pod would claim that node; leave it out \
             (the DaemonSet sets {LOCAL_NODE_ENV} from spec.nodeName)"
        ));
    }
    for c in std::iter::once(gw).chain(validators(pod)) {
        let from_node_name = list(&c["env"]).iter().any(|e| {
            e["name"].as_str() == Some(LOCAL_NODE_ENV)
                && e["valueFrom"]["fieldRef"]["fieldPath"].as_str() == Some("spec.nodeName")
        });
        if !from_node_name {
            p.push(format!(
                "container {} needs {LOCAL_NODE_ENV} from fieldRef spec.nodeName (xdp.nodes is set)",
                text(&c["name"]).unwrap_or_default()
            ));
        }
    }
}

fn check_ports_and_probes(f: &Facts, gw: &Yaml, p: &mut Vec<String>) {
    let ports: Vec<i64> = list(&gw["ports"]).iter().filter_map(|x| x["containerPort"].as_i64()).collect();
    for (what, port) in [("server.port", f.data_port), ("admin.port", f.admin_port)] {
        if !ports.contains(&port) {
            p.push(format!("the gateway container declares no containerPort {port} ({what})"));
        }
    }
    let probes =
        [("readinessProbe", &["/ready", "/readyz"][..]), ("livenessProbe", &["/health", "/healthz", "/livez"][..])];
    for (probe, paths) in probes {
        let get = &gw[probe]["httpGet"];
        let path = text(&get["path"]).unwrap_or_default();
        let port = port_number(gw, &get["port"]);
        if !paths.contains(&path.as_str()) || port != Some(f.admin_port) {
            p.push(format!(
                "{probe}: httpGet {path:?} on port {port:?}; the admin listener serves {paths:?} on {}",
                f.admin_port
            ));
        }
    }
}

fn check_xdp(f: &Facts, pod: &Yaml, gw: &Yaml, p: &mut Vec<String>) {
    if f.xdp {
        let sc = &gw["securityContext"];
        let added: Vec<String> = list(&sc["capabilities"]["add"])
            .iter()
            .filter_map(text)
            .map(|c| c.trim_start_matches("CAP_").to_owned())
            .collect();
        let missing: Vec<&str> =
            ["BPF", "NET_ADMIN", "PERFMON"].into_iter().filter(|c| !added.iter().any(|a| a == c)).collect();
        if sc["privileged"].as_bool() != Some(true) && !missing.is_empty() {
            p.push(format!("xdp.enabled: the gateway container lacks capabilities {missing:?} (or privileged: true)"));
        }
    }
    if let Some(pin) = &f.pin_path {
        match volume_of(pod, gw, pin) {
            Some((v, false, inside))
                if text(&v["hostPath"]["path"]).is_some_and(|h| under(&format!("{h}/{inside}"), "/sys/fs/bpf")) => {}
            Some((_, true, _)) => p.push(format!("xdp.pin_path {pin} is on a read-only mount")),
            _ => p.push(format!("xdp.pin_path {pin} is not on a hostPath mount of the host's bpffs (/sys/fs/bpf)")),
        }
    }
}

/// `mcp-gateway validate` of `config` as `node` would run it ([`LOCAL_NODE_ENV`] set as the
/// DaemonSet sets it); returns the exit code and stderr.
pub fn validate_as(bin: &Path, config: &str, node: &str, dir: &Path) -> (Option<i32>, String) {
    let file = dir.join(format!("config-{}.yaml", node.replace('/', "_")));
    std::fs::write(&file, config).unwrap();
    let out = super::capture(
        Command::new(bin).arg("validate").arg("--config").arg(&file).env(LOCAL_NODE_ENV, node).env_remove("RUST_LOG"),
    )
    .expect("the gateway runs");
    (out.code, out.stderr)
}

#[cfg(test)]
#[path = "kube_tests.rs"]
mod tests;

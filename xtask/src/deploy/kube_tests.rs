use std::path::PathBuf;

use super::*;
use crate::deploy::{capture, default_config, gateway_bin, keygen, read_dir, scratch, skip, with_local_key};

fn root() -> PathBuf {
    crate::repo_root()
}

fn base_files() -> Files {
    read_dir(&root().join("deploy/kubernetes"))
}

/// The problems of the base after replacing the first `from` with `to` in `file`.
fn problems_after(file: &str, from: &str, to: &str) -> Vec<String> {
    let mut files = base_files();
    let body = files.get_mut(file).unwrap();
    assert!(body.contains(from), "{file} no longer contains {from:?}; update this test");
    *body = body.replacen(from, to, 1);
    match load(&files) {
        Ok(base) => check(&base, &default_config(&root())),
        Err(problems) => problems,
    }
}

#[test]
fn the_base_agrees_with_its_gateway_config() {
    let base = load(&base_files()).unwrap_or_else(|p| panic!("{p:#?}"));
    let problems = check(&base, &default_config(&root()));
    assert!(problems.is_empty(), "deploy/kubernetes: {problems:#?}");
}

/// Every check can fail: each of these real mistakes is reported.
#[test]
fn broken_bases_are_reported() {
    let cases = [
        ("daemonset.yaml", "path: /ready", "path: /status", "readinessProbe"),
        (
            "daemonset.yaml",
            "port: admin\n            periodSeconds: 5",
            "port: mcp\n            periodSeconds: 5",
            "readinessProbe",
        ),
        ("daemonset.yaml", "path: /health", "path: /metrics", "livenessProbe"),
        ("config.yaml", "port: 9090", "port: 9091", "admin.port"),
        ("config.yaml", "port: 9090", "port: 9091", "prometheus.io"),
        ("daemonset.yaml", "            - name: bpffs\n              mountPath: /sys/fs/bpf\n", "", "xdp.pin_path"),
        (
            "daemonset.yaml",
            "mountPath: /sys/fs/bpf\n",
            "mountPath: /sys/fs/bpf\n              readOnly: true\n",
            "read-only",
        ),
        ("daemonset.yaml", "path: /sys/fs/bpf\n", "path: /var/run/bpf\n", "bpffs"),
        ("config.yaml", "pin_path: /sys/fs/bpf/mcp-gateway", "pin_path: /var/lib/mcp-gateway/pins", "xdp.pin_path"),
        (
            "daemonset.yaml",
            "- run\n            - --config\n            - /etc/mcp-gateway/config/config.yaml",
            "- run\n            - --config\n            - /etc/mcp-gateway/config/gw.yaml",
            "is not a key of ConfigMap",
        ),
        // The init container validates another file than the gateway runs, or runs instead.
        (
            "daemonset.yaml",
            "- validate\n            - --config\n            - /etc/mcp-gateway/config/config.yaml",
            "- validate\n            - --config\n            - /etc/mcp-gateway/config/other.yaml",
            "no init container runs",
        ),
        ("daemonset.yaml", "            - validate\n", "            - run\n", "no init container runs"),
        ("kustomization.yaml", "- name: mcp-gateway-config", "- name: gateway-config", "ConfigMap"),
        (
            "daemonset.yaml",
            "fieldPath: spec.nodeName",
            "fieldPath: metadata.name",
            "container validate-config needs MCP_GATEWAY_XDP_LOCAL_NODE",
        ),
        (
            "daemonset.yaml",
            "one shared ConfigMap for every node.\n            - name: MCP_GATEWAY_XDP_LOCAL_NODE",
            "one shared ConfigMap for every node.\n            - name: NODE_NAME",
            "container gateway needs MCP_GATEWAY_XDP_LOCAL_NODE",
        ),
        (
            "daemonset.yaml",
            "terminationGracePeriodSeconds: 45",
            "terminationGracePeriodSeconds: 30",
            "terminationGracePeriodSeconds",
        ),
        ("daemonset.yaml", "add: [BPF, NET_ADMIN, PERFMON]", "add: [NET_ADMIN, PERFMON]", "BPF"),
        ("daemonset.yaml", "hostNetwork: true", "hostNetwork: false", "hostNetwork"),
        ("daemonset.yaml", "dnsPolicy: ClusterFirstWithHostNet", "dnsPolicy: ClusterFirst", "dnsPolicy"),
        ("daemonset.yaml", "maxUnavailable: 1", "maxUnavailable: 3", "maxUnavailable"),
        ("daemonset.yaml", "prometheus.io/port: \"9090\"", "prometheus.io/port: \"8443\"", "prometheus.io"),
        ("daemonset.yaml", "serviceAccountName: mcp-gateway", "serviceAccountName: default", "serviceAccountName"),
        (
            "daemonset.yaml",
            "          image: mcp-gateway\n          args:",
            "          image: mcp-gateway:dev\n          args:",
            "image",
        ),
        ("daemonset.yaml", "              memory: 1Gi\n", "", "resources"),
        (
            "config.yaml",
            "key_file: /etc/mcp-gateway/keys/session.keys",
            "key_file: /etc/mcp-gateway/session.keys",
            "Secret",
        ),
        (
            "config.yaml",
            "  pin_path: /sys/fs/bpf/mcp-gateway",
            "  local_node: node-a\n  pin_path: /sys/fs/bpf/mcp-gateway",
            "xdp.local_node \"node-a\" is in the shared ConfigMap",
        ),
        (
            "service.yaml",
            "app.kubernetes.io/name: mcp-gateway\n  ports:",
            "app: gateway\n  ports:",
            "Service's selector",
        ),
        ("kustomization.yaml", "  - service.yaml\n", "", "service.yaml is not listed"),
        ("kustomization.yaml", "  - service.yaml\n", "  - services.yaml\n", "does not exist"),
    ];
    for (file, from, to, expected) in cases {
        let problems = problems_after(file, from, to);
        assert!(
            problems.iter().any(|p| p.contains(expected)),
            "{file}: {from:?} -> {to:?} should be reported ({expected:?}), got {problems:#?}"
        );
    }
}

/// The shared config is valid as every node it lists (the gateway told its node by the
/// environment, as in the DaemonSet), and refused as a node it does not list.
#[test]
fn the_config_validates_as_every_listed_node_only() {
    let root = root();
    let Some(bin) = gateway_bin(&root) else {
        return skip("`mcp-gateway validate` per node", "no gateway binary (cargo build -p mcp-gateway --bins)");
    };
    let files = base_files();
    let base = load(&files).unwrap_or_else(|p| panic!("{p:#?}"));
    let f = facts(&base.config, &default_config(&root)).unwrap();
    assert!(!f.nodes.is_empty(), "config.yaml lists no xdp.nodes");
    let dir = scratch(&root, "kube-nodes");
    let key = dir.join("session.keys");
    keygen(&bin, &key);
    let config = with_local_key(&files[CONFIG_FILE], &f, &key);
    for node in &f.nodes {
        let (code, stderr) = validate_as(&bin, &config, node, &dir);
        assert_eq!(code, Some(0), "node {node}: {stderr}");
    }
    for node in ["not-a-listed-node", "bad/name"] {
        let (code, stderr) = validate_as(&bin, &config, node, &dir);
        assert_eq!(code, Some(1), "{node}: {stderr}");
        assert!(stderr.contains("--xdp-local-node") && stderr.contains("is not in xdp.nodes"), "{node}: {stderr}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The e2e venv's Python when it has `kubernetes_validate`. Under `cargo xtask test`
/// (`MCP_E2E_PYTHON` set, after setup installed tests/py/requirements.txt) it is required.
fn validator() -> Option<PathBuf> {
    let required = std::env::var_os("MCP_E2E_PYTHON").map(PathBuf::from);
    let python = required.clone().unwrap_or_else(|| root().join(".venv/bin/python"));
    let probe = capture(Command::new(&python).args(["-c", "import kubernetes_validate"]));
    let ok = probe.as_ref().is_some_and(|o| o.code == Some(0));
    assert!(ok || required.is_none(), "{}: no kubernetes_validate (cargo xtask setup installs it)", python.display());
    ok.then_some(python)
}

/// `kubernetes-validate --strict` (unknown fields are errors) for Kubernetes `version`.
fn schema_check(python: &Path, version: &str, files: &[PathBuf]) -> super::super::Outcome {
    let mut cmd = Command::new(python);
    cmd.args(["-m", "kubernetes_validate", "--strict", "--quiet", "-k", version]).args(files);
    capture(&mut cmd).expect("python runs")
}

/// Oldest and newest Kubernetes minor versions the base is checked against.
const KUBE_VERSIONS: [&str; 2] = ["1.29.0", "1.37.0"];

#[test]
fn the_manifests_pass_the_kubernetes_schemas() {
    let Some(python) = validator() else {
        return skip("Kubernetes schemas", "no .venv with kubernetes-validate (cargo xtask setup)");
    };
    let dir = root().join("deploy/kubernetes");
    let base = load(&base_files()).unwrap_or_else(|p| panic!("{p:#?}"));
    let files: Vec<PathBuf> =
        list(&base.kustomization["resources"]).iter().filter_map(text).map(|f| dir.join(f)).collect();
    for version in KUBE_VERSIONS {
        let out = schema_check(&python, version, &files);
        assert_eq!(out.code, Some(0), "Kubernetes {version}: {}{}", out.stdout, out.stderr);
    }
}

#[test]
fn the_schema_check_rejects_a_misspelled_field() {
    let Some(python) = validator() else {
        return skip("Kubernetes schemas (negative)", "no .venv with kubernetes-validate (cargo xtask setup)");
    };
    let dir = scratch(&root(), "kube-schema-bad");
    let broken = base_files()["daemonset.yaml"].replacen("readinessProbe:", "readinessprobe:", 1);
    std::fs::write(dir.join("daemonset.yaml"), broken).unwrap();
    let out = schema_check(&python, KUBE_VERSIONS[1], &[dir.join("daemonset.yaml")]);
    assert_ne!(out.code, Some(0), "a misspelled field passed: {}", out.stdout);
    assert!(format!("{}{}", out.stdout, out.stderr).contains("readinessprobe"), "{}{}", out.stdout, out.stderr);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn kustomize_renders_a_hashed_config_map_that_the_daemonset_mounts() {
    let root = root();
    let works = capture(Command::new("kubectl").args(["version", "--client"])).is_some_and(|o| o.code == Some(0));
    if !works {
        return skip("kubectl kustomize", "kubectl is not installed");
    }
    let out = capture(Command::new("kubectl").arg("kustomize").arg(root.join("deploy/kubernetes"))).unwrap();
    assert_eq!(out.code, Some(0), "kubectl kustomize: {}", out.stderr);
    let docs = parse("kustomize output", &out.stdout).unwrap();
    let cm = docs.iter().find(|d| d["kind"].as_str() == Some("ConfigMap")).expect("a ConfigMap");
    let cm_name = text(&cm["metadata"]["name"]).unwrap();
    assert!(cm_name.starts_with("mcp-gateway-config-"), "no content hash in {cm_name}");
    assert_eq!(text(&cm["data"][CONFIG_FILE]), Some(base_files()[CONFIG_FILE].clone()));
    let ds = docs.iter().find(|d| d["kind"].as_str() == Some("DaemonSet")).expect("a DaemonSet");
    let pod = &ds["spec"]["template"]["spec"];
    assert!(list(&pod["volumes"]).iter().any(|v| text(&v["configMap"]["name"]).as_deref() == Some(cm_name.as_str())));
    for c in list(&pod["containers"]).iter().chain(list(&pod["initContainers"])) {
        assert_ne!(c["image"].as_str(), Some("mcp-gateway"), "the images transformer did not apply");
    }
    for d in &docs {
        let ns = text(&d["metadata"]["namespace"]);
        assert!(d["kind"].as_str() == Some("Namespace") || ns.as_deref() == Some("mcp-gateway"), "{ns:?}");
    }
    let Some(python) = validator() else {
        return skip("Kubernetes schemas of the kustomize output", "no .venv with kubernetes-validate");
    };
    let dir = scratch(&root, "kube-rendered");
    std::fs::write(dir.join("rendered.yaml"), &out.stdout).unwrap();
    for version in KUBE_VERSIONS {
        let res = schema_check(&python, version, &[dir.join("rendered.yaml")]);
        assert_eq!(res.code, Some(0), "Kubernetes {version}: {}{}", res.stdout, res.stderr);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

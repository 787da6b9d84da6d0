//! The eBPF/XDP data plane's userspace side: load the embedded XDP program
//! (`gateway-ebpf/xdp`, built by `build.rs`), fill its maps from the `xdp:`
//! config, attach it to the configured interfaces (optionally through a pinned
//! link, `pinned_link`), read its counters for `/metrics`, forward its rare log
//! records (`logs`), and keep cluster membership current from health checks of
//! the other nodes ([`watch_nodes`], `membership`).
//!
//! The gateway never depends on it: [`start`] turns every failure (feature not
//! built, no CAP_BPF, verifier refusal, no bpffs, missing interface) into one log
//! line and `mcp_ebpf_mode 0`, and the userspace proxy serves as before.
//!
//! No `unsafe` is needed here: aya wraps every syscall, and the map value types
//! implement `aya::Pod` in `gateway-common`.

mod maglev;
mod membership;
mod plan;

#[cfg(feature = "ebpf")]
mod loader;
#[cfg(feature = "ebpf")]
mod logs;
#[cfg(feature = "ebpf")]
mod pinned_link;
#[cfg(all(test, feature = "ebpf"))]
#[path = "xdp_tests.rs"]
mod xdp_tests;

use std::path::PathBuf;
use std::sync::Arc;

use gateway_common::{COUNTER_SLOTS, action, reason};

#[cfg(feature = "ebpf")]
pub use loader::DataPlane;
pub use maglev::{Member, changed as maglev_changes, table as maglev_table};
pub use membership::{CheckError, MembershipMetrics, Nodes, Peer, check as check_node};
pub use plan::{Plan, arp_lookup};

use crate::config::XdpConfig;
use crate::drain;
use crate::telemetry::Metrics;
use crate::telemetry::metrics::XdpSample;

/// Whether this binary contains the XDP program (the `ebpf` cargo feature).
pub const BUILT: bool = cfg!(feature = "ebpf");

/// Why the data plane is not running.
#[derive(Debug, thiserror::Error)]
pub enum EbpfError {
    /// Built without the `ebpf` feature.
    #[error("this binary was built without the eBPF data plane (cargo feature `ebpf`)")]
    NotBuilt,
    /// Built with `AYA_BUILD_SKIP=1`: the embedded object is empty.
    #[error("the embedded XDP object is empty (built with AYA_BUILD_SKIP=1)")]
    Skipped,
    /// `xdp.pin_path` is not on a mounted bpffs.
    #[error("xdp.pin_path {path} is not on a bpffs; mount one with `mount -t bpf bpf /sys/fs/bpf`")]
    NoBpffs {
        /// The configured directory.
        path: PathBuf,
    },
    /// The pin directory could not be created.
    #[error("creating xdp.pin_path {path}: {source}")]
    PinDir {
        /// The configured directory.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// Creating the maps or loading the object failed (usually a missing capability).
    #[cfg(feature = "ebpf")]
    #[error("loading the XDP object: {source} (needs root, or CAP_BPF + CAP_NET_ADMIN + CAP_PERFMON)")]
    Load {
        /// Cause.
        #[source]
        source: aya::EbpfError,
    },
    /// The kernel refused the program (verifier, program type, permissions).
    #[cfg(feature = "ebpf")]
    #[error("the kernel refused the XDP program: {source}")]
    Program {
        /// Cause (its verifier log is logged at debug level).
        #[source]
        source: aya::programs::ProgramError,
    },
    /// A map is missing from the object or could not be written.
    #[cfg(feature = "ebpf")]
    #[error("XDP map {name}: {source}")]
    Map {
        /// Map name.
        name: &'static str,
        /// Cause.
        #[source]
        source: aya::maps::MapError,
    },
    /// A map or the program is missing from the object (build mismatch).
    #[error("the XDP object has no {what} named {name}")]
    Missing {
        /// "map" or "program".
        what: &'static str,
        /// Its name.
        name: &'static str,
    },
    /// A configured interface does not exist.
    #[error("interface {name:?} does not exist")]
    NoInterface {
        /// Interface name.
        name: String,
    },
    /// Attaching to an interface failed.
    #[cfg(feature = "ebpf")]
    #[error("attaching to {interface} in {mode} mode: {source}")]
    Attach {
        /// Interface name.
        interface: String,
        /// Attach mode tried last.
        mode: &'static str,
        /// Cause.
        #[source]
        source: aya::programs::ProgramError,
    },
}

/// Counter rows that are always exported (zero included), so dashboards and
/// alerts see every reason before it first happens.
pub const EXPORTED: [(u32, u32); 10] = [
    (action::PASS, reason::OTHER),
    (action::PASS, reason::PASSED),
    (action::DROP, reason::BLOCKED),
    (action::DROP, reason::RATE_LIMITED),
    (action::DROP, reason::MALFORMED),
    (action::TX, reason::FORWARDED),
    (action::PASS, reason::NO_OWNER),
    (action::PASS, reason::ENCAP_FAILED),
    (action::DROP, reason::ENCAP_FAILED),
    (action::PASS, reason::DECAPSULATED),
];

/// Metric samples from per-slot totals (indexed by `counter_index`): every
/// [`EXPORTED`] row, plus any other row that counted something.
pub fn samples(totals: &[u64]) -> Vec<XdpSample> {
    let mut out = Vec::new();
    for a in 0..action::COUNT {
        for r in 0..reason::COUNT {
            let packets = totals.get(gateway_common::counter_index(a, r) as usize).copied().unwrap_or(0);
            if packets > 0 || EXPORTED.contains(&(a, r)) {
                out.push(XdpSample { action: action::NAMES[a as usize], reason: reason::NAMES[r as usize], packets });
            }
        }
    }
    debug_assert_eq!(COUNTER_SLOTS as usize, (action::COUNT * reason::COUNT) as usize);
    out
}

/// The data plane when this binary has none: nothing to hold.
#[cfg(not(feature = "ebpf"))]
#[derive(Debug)]
pub struct DataPlane {
    _private: (),
}

#[cfg(not(feature = "ebpf"))]
impl DataPlane {
    /// Never called: without the feature no data plane exists.
    pub fn reconfigure(&self, _cfg: &XdpConfig, _ports: &[u16]) -> Result<(), EbpfError> {
        Err(EbpfError::NotBuilt)
    }
}

#[cfg(not(feature = "ebpf"))]
impl Nodes for DataPlane {
    fn members(&self) -> Vec<Peer> {
        Vec::new()
    }

    fn set_live(&self, _name: &str, _live: bool) -> Result<Option<u64>, EbpfError> {
        Err(EbpfError::NotBuilt)
    }
}

/// The task that checks the other `xdp.nodes` and keeps `plane`'s membership
/// current (see [`membership`]). It runs whenever the data plane does, also
/// without nodes (a round without peers does nothing), so a node list added
/// later by a reload is checked too. Registers the membership metrics in
/// `metrics`.
pub fn watch_nodes(
    plane: &Arc<DataPlane>,
    cfg: &XdpConfig,
    data_port: u16,
    metrics: &Metrics,
    drain: drain::Watch,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    let nodes: Arc<dyn Nodes> = Arc::clone(plane) as Arc<dyn Nodes>;
    membership::run(nodes, cfg.health.clone(), data_port, MembershipMetrics::new(metrics), drain)
}

/// Starts the data plane for `cfg`, acting on `ports`, if `xdp.enabled` (`Ok(None)`
/// when it is off). Sets `mcp_ebpf_mode` and, when running, the source of
/// `mcp_xdp_packets_total`. On failure the caller decides: a standalone gateway
/// goes on userspace-only, a member of a cluster must not (see `gateway::start`).
pub fn start(cfg: &XdpConfig, ports: &[u16], metrics: &Metrics) -> Result<Option<Arc<DataPlane>>, EbpfError> {
    metrics.ebpf_mode.set(0);
    if !cfg.enabled {
        tracing::debug!("XDP data plane off (xdp.enabled: false)");
        return Ok(None);
    }
    let plane = Arc::new(try_start(cfg, ports)?);
    report_started(&plane, metrics);
    Ok(Some(plane))
}

#[cfg(feature = "ebpf")]
fn try_start(cfg: &XdpConfig, ports: &[u16]) -> Result<DataPlane, EbpfError> {
    DataPlane::start(cfg, ports)
}

#[cfg(not(feature = "ebpf"))]
fn try_start(_cfg: &XdpConfig, _ports: &[u16]) -> Result<DataPlane, EbpfError> {
    Err(EbpfError::NotBuilt)
}

#[cfg(feature = "ebpf")]
fn report_started(plane: &Arc<DataPlane>, metrics: &Metrics) {
    let source = Arc::clone(plane);
    metrics.set_xdp_source(Box::new(move || source.samples()));
    metrics.ebpf_mode.set(1);
    let attached: Vec<String> = plane.attached().iter().map(|a| format!("{}:{}", a.interface, a.mode)).collect();
    tracing::info!(attached = %attached.join(","), "XDP data plane attached (mcp_ebpf_mode 1)");
}

#[cfg(not(feature = "ebpf"))]
fn report_started(_plane: &Arc<DataPlane>, _metrics: &Metrics) {}

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_common::counter_index;

    #[test]
    fn samples_export_fixed_rows_and_anything_counted() {
        let mut totals = vec![0u64; COUNTER_SLOTS as usize];
        totals[counter_index(action::DROP, reason::BLOCKED) as usize] = 7;
        totals[counter_index(action::TX, reason::OTHER) as usize] = 1;
        let s = samples(&totals);
        assert_eq!(s.len(), EXPORTED.len() + 1);
        let find = |a: &str, r: &str| s.iter().find(|x| x.action == a && x.reason == r).map(|x| x.packets);
        assert_eq!(find("drop", "blocked"), Some(7));
        assert_eq!(find("tx", "other"), Some(1));
        assert_eq!(find("tx", "forwarded"), Some(0));
        assert_eq!(find("drop", "other"), None);
    }

    /// `xdp.enabled` on an interface that does not exist: the gateway starts and
    /// serves anyway, userspace-only, and says so in `/metrics`.
    #[tokio::test]
    async fn a_data_plane_that_cannot_start_leaves_the_gateway_serving() {
        let yaml = "server: {host: 127.0.0.1, port: 0}\nadmin: {host: 127.0.0.1, port: 0}\n\
                    xdp: {enabled: true, interfaces: [mcpgw-none0], blocklist: [192.0.2.0/24]}\n";
        let cfg = crate::config::load_str(yaml, "t.yaml").unwrap();
        let gw = crate::start(cfg).await.unwrap();
        assert!(gw.data_plane().is_none());
        let http = reqwest::Client::new();
        let metrics = http.get(format!("http://{}/metrics", gw.admin_addr())).send().await.unwrap();
        let text = metrics.text().await.unwrap();
        assert!(text.contains("mcp_ebpf_mode 0"), "{text}");
        assert!(!text.contains("mcp_xdp_packets_total"), "{text}");
        let ebpf = if BUILT { "xdp" } else { "userspace-only" };
        assert!(text.contains(&format!("ebpf=\"{ebpf}\"")), "{text}");
        // The MCP listener answers (503: no backends are configured).
        let body = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
        let reply = http
            .post(format!("http://{}/mcp", gw.data_addr()))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), 503);
        gw.shutdown().await;
    }

    /// The same failure on a member of a cluster stops the start: peers would steer
    /// encapsulated packets to a node with nothing to unwrap them.
    #[tokio::test]
    async fn a_cluster_member_without_its_data_plane_does_not_start() {
        let yaml = "server: {host: 127.0.0.1, port: 0}\nadmin: {host: 127.0.0.1, port: 0}\n\
                    xdp:\n  enabled: true\n  interfaces: [mcpgw-none0]\n  local_node: a\n  nodes:\n\
                    \x20   - {name: a, address: 10.9.0.1, mac: \"02:00:00:00:00:01\"}\n\
                    \x20   - {name: b, address: 10.9.0.2, mac: \"02:00:00:00:00:02\"}\n";
        let cfg = crate::config::load_str(yaml, "t.yaml").unwrap();
        let err = crate::start(cfg).await.unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, crate::gateway::StartError::DataPlane { nodes: 2, .. }), "{text}");
        assert!(text.contains("xdp.enabled: false"), "{text}");
    }

    #[test]
    fn disabled_config_means_userspace_only() {
        let metrics = Metrics::new();
        assert!(start(&XdpConfig::default(), &[8443], &metrics).unwrap().is_none());
        assert_eq!(metrics.ebpf_mode.get(), 0);
    }
}

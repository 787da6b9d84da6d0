//! Cluster membership from userspace: every gateway checks the other `xdp.nodes`
//! (a TCP connect to the data port, or a plain-HTTP GET of `xdp.health.path`)
//! every `xdp.health.interval`, and after `unhealthy_threshold` failures in a row
//! tells the data plane the node is dead: it leaves the Maglev table and only its
//! clients are re-pinned. After `healthy_threshold` successes it is live again and
//! new clients can hash to it; existing pins stay where they are.
//!
//! The node list is read from the data plane at every round, so a
//! [`DataPlane::reconfigure`](super::DataPlane) with new nodes is followed at once.
//! Exported: `mcp_xdp_nodes_live`, `mcp_xdp_node_live{node}` and
//! `mcp_xdp_owner_changes_total`.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use prometheus::{IntCounter, IntGauge, IntGaugeVec, Opts};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::EbpfError;
use crate::config::XdpHealth;
use crate::drain;
use crate::telemetry::Metrics;

/// One configured node, as the data plane sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Node name (`xdp.nodes[].name`).
    pub name: String,
    /// Node address; checks go to it.
    pub address: Ipv4Addr,
    /// Whether the node is in the Maglev table.
    pub live: bool,
    /// This gateway's own node (never checked, always live).
    pub local: bool,
}

/// What the checks drive: the data plane, or a test double.
pub trait Nodes: Send + Sync {
    /// Every configured node, this one included.
    fn members(&self) -> Vec<Peer>;
    /// Marks `name` live or dead; the number of client pins moved, `None` when
    /// no node has that name (any more).
    fn set_live(&self, name: &str, live: bool) -> Result<Option<u64>, EbpfError>;
}

/// Why a check failed.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// Did not finish within `xdp.health.timeout`.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// Connecting, writing or reading failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The HTTP check got a non-2xx status, or no HTTP status line.
    #[error("HTTP check answered {0:?}")]
    Status(String),
}

/// Checks one node once: a TCP connect to `addr`, or with `path` an HTTP/1.1 GET
/// whose status must be 2xx.
pub async fn check(addr: SocketAddr, path: Option<&str>, timeout: Duration) -> Result<(), CheckError> {
    let work = async {
        let mut stream = TcpStream::connect(addr).await?;
        let Some(path) = path else { return Ok(()) };
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        // The status line fits in the first read of any server; at most 256 bytes are kept.
        let mut head = [0u8; 256];
        let mut len = 0;
        while len < head.len() && !head[..len].contains(&b'\n') {
            let n = stream.read(&mut head[len..]).await?;
            if n == 0 {
                break;
            }
            len += n;
        }
        let line = String::from_utf8_lossy(&head[..len]);
        let line = line.lines().next().unwrap_or_default().trim().to_owned();
        let status = line.split_whitespace().nth(1).and_then(|s| s.parse::<u16>().ok());
        match status {
            Some(200..=299) if line.starts_with("HTTP/") => Ok(()),
            _ => Err(CheckError::Status(line)),
        }
    };
    tokio::time::timeout(timeout, work).await.unwrap_or(Err(CheckError::Timeout(timeout)))
}

/// Consecutive results of one node.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Streak {
    failures: u32,
    successes: u32,
}

impl Streak {
    /// Records one result of a node that is `live` now; `Some(new liveness)` when
    /// a threshold is reached.
    fn record(&mut self, ok: bool, live: bool, cfg: &XdpHealth) -> Option<bool> {
        if ok {
            self.failures = 0;
            self.successes = self.successes.saturating_add(1);
            (!live && self.successes >= cfg.healthy_threshold).then_some(true)
        } else {
            self.successes = 0;
            self.failures = self.failures.saturating_add(1);
            (live && self.failures >= cfg.unhealthy_threshold).then_some(false)
        }
    }
}

/// The membership metrics, registered once the data plane runs with nodes.
#[derive(Debug, Clone)]
pub struct MembershipMetrics {
    /// `mcp_xdp_nodes_live`: nodes in the Maglev table, this one included.
    pub nodes_live: IntGauge,
    /// `mcp_xdp_node_live{node}`: 1 live, 0 dead, per configured node.
    pub node_live: IntGaugeVec,
    /// `mcp_xdp_owner_changes_total`: client pins moved because their owner died.
    pub owner_changes: IntCounter,
}

impl MembershipMetrics {
    /// Creates the metrics and registers them in `metrics` (a second registration
    /// in the same registry is logged and the metrics stay unexported).
    pub fn new(metrics: &Metrics) -> Self {
        let nodes_live = IntGauge::new(
            "mcp_xdp_nodes_live",
            "Gateway nodes in the XDP Maglev table (live by this node's health checks, itself included).",
        )
        .expect("valid metric");
        let node_live = IntGaugeVec::new(
            Opts::new("mcp_xdp_node_live", "Liveness of each xdp.nodes entry by this node's checks: 1 live, 0 dead."),
            &["node"],
        )
        .expect("valid metric");
        let owner_changes = IntCounter::new(
            "mcp_xdp_owner_changes_total",
            "Clients re-pinned to another node because their owner node was marked dead.",
        )
        .expect("valid metric");
        for collector in [
            Box::new(nodes_live.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(node_live.clone()),
            Box::new(owner_changes.clone()),
        ] {
            if let Err(e) = metrics.register(collector) {
                tracing::debug!("XDP membership metric not registered: {e}");
            }
        }
        Self { nodes_live, node_live, owner_changes }
    }

    /// Sets the gauges from `members`.
    pub fn observe(&self, members: &[Peer]) {
        self.node_live.reset();
        for m in members {
            self.node_live.with_label_values(&[&m.name]).set(i64::from(m.live));
        }
        self.nodes_live.set(i64::try_from(members.iter().filter(|m| m.live).count()).unwrap_or(i64::MAX));
    }
}

/// Checks every other node each `cfg.interval` until drained; the first round
/// runs at once. `data_port` is checked when `cfg.port` is 0.
pub async fn run(
    nodes: Arc<dyn Nodes>,
    cfg: XdpHealth,
    data_port: u16,
    metrics: MembershipMetrics,
    drain: drain::Watch,
) {
    let mut tick = tokio::time::interval(cfg.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let stop = drain.signaled();
    tokio::pin!(stop);
    let mut streaks = HashMap::new();
    metrics.observe(&nodes.members());
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = tick.tick() => {}
        }
        round(&*nodes, &cfg, data_port, &mut streaks, &metrics).await;
    }
}

/// One round: check every other node at once, apply threshold crossings.
async fn round(
    nodes: &dyn Nodes,
    cfg: &XdpHealth,
    data_port: u16,
    streaks: &mut HashMap<String, Streak>,
    metrics: &MembershipMetrics,
) {
    let peers: Vec<Peer> = nodes.members().into_iter().filter(|m| !m.local).collect();
    // Nodes removed by a reconfiguration forget their streaks.
    streaks.retain(|name, _| peers.iter().any(|p| p.name == *name));
    let port = if cfg.port == 0 { data_port } else { cfg.port };
    let checks = peers.iter().map(|p| check(SocketAddr::from((p.address, port)), cfg.path.as_deref(), cfg.timeout));
    let results = futures_util::future::join_all(checks).await;
    for (peer, result) in peers.iter().zip(results) {
        if let Err(e) = &result {
            tracing::debug!(node = %peer.name, address = %peer.address, port, "node check failed: {e}");
        }
        let streak = streaks.entry(peer.name.clone()).or_default();
        let Some(live) = streak.record(result.is_ok(), peer.live, cfg) else { continue };
        match nodes.set_live(&peer.name, live) {
            Ok(Some(_)) if live => {
                tracing::info!(node = %peer.name, "XDP node is live again: new clients may hash to it")
            }
            Ok(Some(moved)) => {
                metrics.owner_changes.inc_by(moved);
                tracing::warn!(
                    node = %peer.name, address = %peer.address, port, pins_moved = moved,
                    "XDP node marked dead after {} failed checks: its clients move to live nodes",
                    cfg.unhealthy_threshold
                );
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(node = %peer.name, live, "updating XDP membership failed: {e}"),
        }
    }
    metrics.observe(&nodes.members());
}

#[cfg(test)]
#[path = "membership_tests.rs"]
mod tests;

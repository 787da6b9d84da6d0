//! Assembling a running gateway from a validated [`Config`]: keys, backends,
//! the upstream client, both listeners, health checks, and the drain.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::config::Config;
use crate::drain;
use crate::http::{admin, listener, server, tls};
use crate::mcp::session::{Revoked, now_unix};
use crate::proxy::client::{self, UpstreamClient};
use crate::proxy::forward::Upstream;
use crate::proxy::{Backends, health};
use crate::session::cache::OpenedSessions;
use crate::session::keys::SessionKeys;
use crate::session::token::Sealer;
use crate::telemetry::Metrics;

/// Window for `mcp_sessions_active`.
const ACTIVE_WINDOW: Duration = Duration::from_secs(300);

/// State shared by every request.
#[derive(Debug)]
pub struct Shared {
    /// The configuration this gateway runs.
    pub config: Config,
    /// Seals and opens session ids.
    pub sealer: Sealer,
    /// Backends.
    pub backends: Backends,
    /// Client for the gateway's own requests (JWKS, authorization-server metadata); MCP
    /// traffic goes over each backend's own connections (`proxy::pool`).
    pub client: UpstreamClient,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Sessions deleted through this replica.
    pub revoked: Revoked,
    /// Opened session ids (cache + activity for `mcp_sessions_active`).
    pub sessions: OpenedSessions,
    /// Drain watch (streams end at a boundary when it fires).
    pub drain: drain::Watch,
    /// Edge security: limits, Origin, rate limits, authentication, policy (`auth.*`, `security.*`).
    pub guard: crate::auth::Guard,
}

impl Shared {
    /// What an upstream exchange needs.
    pub fn upstream(&self) -> Upstream<'_> {
        Upstream { pool: &self.config.connection_pool, routing: &self.config.routing, metrics: &self.metrics }
    }
}

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The session key file could not be used.
    #[error("session keys: {0}")]
    Keys(#[from] crate::session::keys::KeyFileError),
    /// TLS material could not be used.
    #[error("TLS: {0}")]
    Tls(#[from] tls::TlsError),
    /// Authentication keys, secrets or tokens could not be loaded.
    #[error("{0}")]
    Auth(#[from] crate::auth::BuildError),
    /// A listener could not be bound.
    #[error("cannot listen on {addr} ({what}): {source}")]
    Bind {
        /// Which listener.
        what: &'static str,
        /// Address.
        addr: SocketAddr,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// A member of an XDP cluster (`xdp.nodes` lists more than one node) could not start
    /// its data plane. Its peers would still steer clients to it, encapsulated, and without
    /// the program nothing here unwraps those packets: refusing to start makes the node
    /// fail its peers' checks, so its clients move to live nodes.
    #[error(
        "XDP data plane: {source}; this node is one of the {nodes} in xdp.nodes and cannot serve its \
         share without it (set xdp.enabled: false on every node to run userspace-only)"
    )]
    DataPlane {
        /// Nodes in `xdp.nodes`.
        nodes: usize,
        /// Why it did not start.
        #[source]
        source: crate::ebpf::EbpfError,
    },
}

/// A started gateway.
#[derive(Debug)]
pub struct RunningGateway {
    data_addr: SocketAddr,
    admin_addr: SocketAddr,
    signal: drain::Signal,
    tasks: JoinSet<()>,
    shared: Arc<Shared>,
    /// The XDP data plane, when `xdp.enabled` and it started; dropping it detaches.
    data_plane: Option<Arc<crate::ebpf::DataPlane>>,
}

/// Start serving `config`. Returns once both listeners are bound.
pub async fn start(config: Config) -> Result<RunningGateway, StartError> {
    let keys = match &config.sessions.key_file {
        Some(path) => SessionKeys::load(path)?,
        None => {
            tracing::warn!(
                "no sessions.key_file / --session-key-file: generated an ephemeral session key. \
                 Sessions will NOT survive a restart and will NOT work across gateway replicas. \
                 Create one with `openssl rand -hex 32 > session.keys`."
            );
            SessionKeys::generate()
        }
    };
    let metrics = Arc::new(Metrics::new());
    let backends = Backends::build(&config, &metrics)?;
    if backends.all().is_empty() {
        tracing::warn!("no backends configured: every MCP request will get 503 (add --backend NAME=URL)");
    }
    let client = client::build(&config.connection_pool);
    // Built once: keys and secrets are read here, JWKS are fetched by the refresh tasks.
    let guard = crate::auth::Guard::build(&config, &client, &metrics, &crate::auth::keys::ProcessEnv)?;
    let (signal, drain) = drain::channel();
    let tls = match &config.server.tls {
        Some(t) => Some(TlsAcceptor::from(tls::server_config(t)?)),
        None => None,
    };
    let opts = listener::ListenOptions { backlog: config.server.backlog, reuse_port: config.server.reuse_port };
    let data = listener::bind(config.server.listen, opts).map_err(|source| StartError::Bind {
        what: "server",
        addr: config.server.listen,
        source,
    })?;
    // The admin port is never shared with another process.
    let admin_opts = listener::ListenOptions { backlog: 128, reuse_port: false };
    let admin_listener = listener::bind(config.admin.listen, admin_opts).map_err(|source| StartError::Bind {
        what: "admin",
        addr: config.admin.listen,
        source,
    })?;
    let data_addr =
        data.local_addr().map_err(|source| StartError::Bind { what: "server", addr: config.server.listen, source })?;
    let admin_addr = admin_listener.local_addr().map_err(|source| StartError::Bind {
        what: "admin",
        addr: config.admin.listen,
        source,
    })?;

    let shared = Arc::new(Shared {
        sealer: Sealer::new(keys, config.sessions.ttl),
        backends,
        client: client.clone(),
        metrics: Arc::clone(&metrics),
        revoked: Revoked::default(),
        sessions: OpenedSessions::default(),
        drain: drain.clone(),
        guard,
        config,
    });
    let cfg = &shared.config;
    let settings = server::ServeSettings {
        name: "data",
        read_timeout: cfg.server.read_timeout,
        write_timeout: cfg.server.write_timeout,
        keep_alive: cfg.server.keep_alive,
        tcp_keepalive: cfg.server.tcp_keepalive,
        shutdown_timeout: cfg.server.shutdown_timeout,
        limits: cfg.security.limits.clone(),
        trusted_proxies: server::TrustedProxies::new(&cfg.security.trusted_proxies),
    };
    let mut tasks = JoinSet::new();
    let handler_state = Arc::clone(&shared);
    let handler = move |req, conn| crate::mcp::handle(Arc::clone(&handler_state), req, conn);
    tasks.spawn(server::serve(data, tls, settings.clone(), handler, Arc::clone(&metrics), drain.clone()));

    let admin_state = Arc::clone(&shared);
    let admin_handler = move |req, _conn| admin::handle(Arc::clone(&admin_state), req);
    let admin_settings = server::ServeSettings { name: "admin", ..settings };
    tasks.spawn(server::serve(
        admin_listener,
        None,
        admin_settings,
        admin_handler,
        Arc::clone(&metrics),
        drain.clone(),
    ));

    tasks.spawn(health::run(shared.backends.all().to_vec(), shared.config.routing.clone(), drain.clone()));
    for refresh in shared.guard.refresh_tasks(&drain) {
        tasks.spawn(refresh);
    }
    tasks.spawn(sweep_activity(Arc::clone(&shared), drain));
    // After both listeners are bound, so the data port is known even when configured
    // as 0. A data plane that cannot start leaves the gateway userspace-only.
    let data_plane = match crate::ebpf::start(&shared.config.xdp, &[data_addr.port()], &shared.metrics) {
        Ok(plane) => plane,
        Err(source) if shared.config.xdp.nodes.len() > 1 => {
            return Err(StartError::DataPlane { nodes: shared.config.xdp.nodes.len(), source });
        }
        Err(e) => {
            let interfaces = &shared.config.xdp.interfaces;
            tracing::warn!(?interfaces, "XDP data plane not started, running userspace-only (mcp_ebpf_mode 0): {e}");
            None
        }
    };
    // Peer node checks: a dead node leaves the Maglev table, only its clients move.
    let (xdp, port, metrics) = (&shared.config.xdp, data_addr.port(), &shared.metrics);
    if let Some(plane) = &data_plane {
        tasks.spawn(crate::ebpf::watch_nodes(plane, xdp, port, metrics, shared.drain.clone()));
    }

    tracing::info!(
        %data_addr, %admin_addr,
        tls = shared.config.server.tls.is_some(),
        backends = shared.backends.all().len(),
        mcp_path = %shared.config.mcp.path,
        version = crate::VERSION,
        "mcp-gateway listening"
    );
    Ok(RunningGateway { data_addr, admin_addr, signal, tasks, shared, data_plane })
}

async fn sweep_activity(shared: Arc<Shared>, drain: drain::Watch) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    let stop = drain.signaled();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = tick.tick() => {}
        }
        let (streamable, legacy) = shared.sessions.sweep(now_unix(), ACTIVE_WINDOW.as_secs());
        shared.metrics.sessions_active.with_label_values(&["streamable-http"]).set(streamable);
        shared.metrics.sessions_active.with_label_values(&["sse"]).set(legacy);
    }
}

impl RunningGateway {
    /// Address of the data listener (the MCP endpoint).
    pub fn data_addr(&self) -> SocketAddr {
        self.data_addr
    }

    /// Address of the admin listener.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// The XDP data plane, if it is running (`mcp_ebpf_mode 1`).
    pub fn data_plane(&self) -> Option<&Arc<crate::ebpf::DataPlane>> {
        self.data_plane.as_ref()
    }

    /// Applies a changed `xdp:` section to the running data plane without
    /// reloading the program: ports, blocklist, rate limits and the node list
    /// (the node checks follow it from their next round; nodes keep their
    /// liveness by name). Interfaces, mode, pin path and `xdp.health` change only
    /// with a restart. `Ok(false)` when no data plane runs.
    pub fn reload_xdp(&self, xdp: &crate::config::XdpConfig) -> Result<bool, crate::ebpf::EbpfError> {
        let Some(plane) = &self.data_plane else { return Ok(false) };
        plane.reconfigure(xdp, &[self.data_addr.port()])?;
        Ok(true)
    }

    /// The metrics registry (tests read counters directly).
    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    /// `server.drain_delay`: how long to stay up, not ready, before [`shutdown`](Self::shutdown).
    pub fn drain_delay(&self) -> Duration {
        self.shared.config.server.drain_delay
    }

    /// Withdraw readiness: `/ready` answers 503 while everything keeps serving.
    pub fn withdraw_readiness(&self) {
        self.signal.not_ready();
    }

    /// Stop accepting, let in-flight requests finish within
    /// `server.shutdown_timeout`, end SSE streams at an event boundary.
    pub async fn shutdown(mut self) {
        self.signal.drain();
        let deadline = self.shared.config.server.shutdown_timeout + Duration::from_secs(1);
        let all = async { while self.tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(deadline, all).await.is_err() {
            self.tasks.abort_all();
        }
    }
}

//! `mcp-gateway`: command line. Flags override the config file; a bad flag is
//! exit code 2, an invalid config exit code 1.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use mcp_gateway::config::{self, Config, ConfigErrors, Overrides};
use mcp_gateway::notify;

/// mimalloc: fewer instructions per allocation than glibc malloc on the request path
/// (about 30 allocations per proxied `tools/call`), and idle RSS stays small.
#[global_allocator]
static ALLOCATOR: mcp_gateway_alloc::Allocator = mcp_gateway_alloc::Allocator;

#[derive(Debug, Parser)]
#[command(name = "mcp-gateway", version = mcp_gateway::VERSION, about = "Edge gateway for MCP servers", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Validate the configuration and exit (same as `mcp-gateway validate`).
    #[arg(long)]
    validate: bool,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway (the default when no command is given).
    Run(RunArgs),
    /// Check a configuration (file, flags, key file, TLS files); exit 1 on any error.
    Validate(RunArgs),
    /// Check config, keys, TLS, ports, and probe every backend with a real MCP handshake.
    Doctor(RunArgs),
    /// Print a new session key (32 random bytes as 64 hex characters).
    Keygen,
}

#[derive(Debug, Args, Clone, Default)]
struct RunArgs {
    /// Config file (YAML). Without it the embedded default config is used.
    #[arg(long, short = 'c', value_name = "FILE", env = "MCP_GATEWAY_CONFIG")]
    config: Option<PathBuf>,
    /// Data listener address, overriding server.host/server.port.
    #[arg(long, value_name = "ADDR:PORT")]
    listen: Option<SocketAddr>,
    /// Admin listener address (/health, /ready, /metrics), overriding admin.host/admin.port.
    #[arg(long, value_name = "ADDR:PORT")]
    admin_listen: Option<SocketAddr>,
    /// Session key file: one 64-hex-char key per line, first seals, all open.
    #[arg(long, value_name = "PATH")]
    session_key_file: Option<PathBuf>,
    /// A backend MCP server; repeat for several. Replaces a config backend of the same name.
    #[arg(long = "backend", value_name = "NAME=URL")]
    backends: Vec<String>,
    /// This gateway's node among xdp.nodes, overriding xdp.local_node (one config file for all
    /// nodes; in a DaemonSet set the variable from spec.nodeName).
    #[arg(long, value_name = "NAME", env = "MCP_GATEWAY_XDP_LOCAL_NODE")]
    xdp_local_node: Option<String>,
    /// Tokio worker threads (default: one per CPU); 1 runs everything on one thread.
    #[arg(long, value_name = "N")]
    workers: Option<usize>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Keygen) => {
            let key: [u8; 32] = rand::random();
            let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
            #[expect(clippy::print_stdout, reason = "keygen's output is the key")]
            {
                println!("{hex}");
            }
            ExitCode::SUCCESS
        }
        Some(Command::Validate(args)) => validate(&args),
        Some(Command::Doctor(args)) => doctor(&args),
        Some(Command::Run(args)) => run(&args),
        None if cli.validate => validate(&cli.run),
        None => run(&cli.run),
    }
}

fn load(args: &RunArgs) -> Result<Config, ConfigErrors> {
    let overrides = Overrides {
        listen: args.listen,
        admin_listen: args.admin_listen,
        session_key_file: args.session_key_file.clone(),
        backends: args.backends.clone(),
        xdp_local_node: args.xdp_local_node.clone(),
    };
    match &args.config {
        Some(path) => config::load_file_with(path, &overrides),
        None => config::load_str_with(config::DEFAULT_CONFIG_YAML, "<embedded default config>", &overrides),
    }
}

fn source_name(args: &RunArgs) -> String {
    args.config
        .as_deref()
        .map(Path::display)
        .map(|d| d.to_string())
        .unwrap_or_else(|| "<embedded default config>".into())
}

fn validate(args: &RunArgs) -> ExitCode {
    let name = source_name(args);
    let cfg = match load(args) {
        Ok(c) => c,
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!("{name}: {} error(s); configuration is invalid", errors.0.len());
            return ExitCode::from(1);
        }
    };
    let mut problems = Vec::new();
    if let Some(path) = &cfg.sessions.key_file {
        if let Err(e) = mcp_gateway::session::keys::SessionKeys::load(path) {
            problems.push(format!("sessions.key_file: {e}"));
        }
    }
    if let Some(tls) = &cfg.server.tls {
        if let Err(e) = mcp_gateway::http::tls::server_config(tls) {
            problems.push(format!("server.tls: {e}"));
        }
    }
    if !problems.is_empty() {
        for p in &problems {
            eprintln!("{name}: {p}");
        }
        eprintln!("{name}: {} error(s); configuration is invalid", problems.len());
        return ExitCode::from(1);
    }
    let warn_keys = if cfg.sessions.key_file.is_none() {
        " (warning: no sessions.key_file: sessions will not survive restarts or span replicas)"
    } else {
        ""
    };
    eprintln!(
        "{name}: configuration OK: listen {}, admin {}, {} backend(s){warn_keys}",
        cfg.server.listen,
        cfg.admin.listen,
        cfg.backends.len()
    );
    ExitCode::SUCCESS
}

fn doctor(args: &RunArgs) -> ExitCode {
    let cfg = match load(args) {
        Ok(c) => c,
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!("[FAIL] config: {}: {} error(s)", source_name(args), errors.0.len());
            return ExitCode::from(1);
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mcp-gateway doctor: cannot start a runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let findings = rt.block_on(mcp_gateway::doctor::run(&cfg));
    let (report, failed) = mcp_gateway::doctor::render(&findings);
    #[expect(clippy::print_stdout, reason = "doctor's report is its output")]
    {
        println!("[ok  ] config: {} is valid", source_name(args));
        print!("{report}");
    }
    if failed { ExitCode::from(1) } else { ExitCode::SUCCESS }
}

fn run(args: &RunArgs) -> ExitCode {
    let cfg = match load(args) {
        Ok(c) => c,
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!("{}: configuration is invalid; not starting", source_name(args));
            return ExitCode::from(1);
        }
    };
    let env = |k: &str| std::env::var(k).ok();
    let settings = mcp_gateway::telemetry::log::resolve(&cfg.logging, &env);
    if let Err(e) = mcp_gateway::telemetry::log::init(&settings) {
        eprintln!("logging: {e}");
        return ExitCode::from(1);
    }
    match serve(cfg, args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("mcp-gateway: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn serve(cfg: Config, args: &RunArgs) -> anyhow::Result<()> {
    // One worker: tokio's current-thread scheduler, so the signal loop, the listeners and every
    // connection share one thread with no cross-thread wake-ups (the multi-thread scheduler with
    // one worker still parks the main thread and hands work between the two).
    let mut rt = match args.workers {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(n) => {
            let mut rt = tokio::runtime::Builder::new_multi_thread();
            rt.worker_threads(n.max(1));
            rt
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    rt.enable_all();
    let rt = rt.build().context("starting the async runtime")?;
    rt.block_on(async move {
        let gw = mcp_gateway::start(cfg.clone()).await.context("starting mcp-gateway")?;
        let (data, admin) = (gw.data_addr(), gw.admin_addr());
        notify::notify_or_log(&format!("READY=1\nSTATUS=serving MCP on {data}, admin on {admin}"));
        if let Some(every) = notify::watchdog_interval() {
            tokio::spawn(notify::watchdog(every));
        }
        let mut running = cfg;
        let mut signals = Signals::new();
        while signals.next().await == Signal::Reload {
            reload(&gw, args, &mut running);
        }
        notify::notify_or_log("STOPPING=1\nSTATUS=shutting down");
        let delay = gw.drain_delay();
        if !delay.is_zero() {
            gw.withdraw_readiness();
            tracing::info!(?delay, "shutdown signal received: /ready is 503, still serving for server.drain_delay");
            let wait = tokio::time::sleep(delay);
            tokio::pin!(wait);
            loop {
                tokio::select! {
                    () = &mut wait => break,
                    signal = signals.next() => if signal != Signal::Reload {
                        tracing::info!("second signal: not waiting out drain_delay");
                        break;
                    },
                }
            }
        }
        tracing::info!("shutdown signal received: draining");
        gw.shutdown().await;
        tracing::info!("drained; exiting");
        Ok(())
    })
}

/// SIGHUP: read the configuration again (file and flags) and apply what can change while
/// running, the `xdp:` section (blocklist, new-flow limits, node list). An invalid file is
/// reported with every error and changes nothing; other changed sections are named as
/// waiting for a restart.
fn reload(gw: &mcp_gateway::RunningGateway, args: &RunArgs, running: &mut Config) {
    let name = source_name(args);
    let fresh = match load(args) {
        Ok(c) => c,
        Err(errors) => {
            for e in &errors.0 {
                tracing::error!(error = %e, "reload: invalid configuration");
            }
            tracing::error!("reload: {name} has {} error(s); keeping the running configuration", errors.0.len());
            return;
        }
    };
    let mut rest = fresh.clone();
    rest.xdp = running.xdp.clone();
    if rest != *running {
        tracing::warn!("reload: {name} changed more than the xdp section; those changes take effect after a restart");
    }
    if fresh.xdp == running.xdp {
        tracing::info!("reload: {name}: xdp section unchanged");
        return;
    }
    match gw.reload_xdp(&fresh.xdp) {
        Ok(true) => {
            tracing::info!("reload: {name}: xdp section applied (blocklist, limits, nodes)");
            running.xdp = fresh.xdp;
        }
        Ok(false) => tracing::warn!("reload: {name}: no XDP data plane is running; the xdp section needs a restart"),
        Err(e) => {
            tracing::error!(error = %e, "reload: {name}: applying the xdp section failed; the previous one stays")
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Signal {
    Stop,
    Reload,
}

/// SIGTERM/SIGINT stop, SIGHUP reloads.
struct Signals(Option<[tokio::signal::unix::Signal; 3]>);

impl Signals {
    fn new() -> Self {
        use tokio::signal::unix::{SignalKind, signal};
        match (signal(SignalKind::terminate()), signal(SignalKind::interrupt()), signal(SignalKind::hangup())) {
            (Ok(term), Ok(int), Ok(hup)) => Self(Some([term, int, hup])),
            _ => Self(None),
        }
    }

    async fn next(&mut self) -> Signal {
        let Some([term, int, hup]) = &mut self.0 else {
            // Without signal handlers, ctrl_c is the best we can do.
            let _ = tokio::signal::ctrl_c().await;
            return Signal::Stop;
        };
        tokio::select! {
            _ = term.recv() => Signal::Stop,
            _ = int.recv() => Signal::Stop,
            _ = hup.recv() => Signal::Reload,
        }
    }
}

//! `cargo xtask demo`: the demo MCP server behind the gateway, on loopback, until
//! Ctrl-C or SIGTERM (or `--duration-secs`), then both are stopped.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::signal::unix::{SignalKind, signal};

use crate::run::run;
use crate::step;
use crate::test::{cargo, target_dir};

/// Limit for the release build.
const BUILD_LIMIT: Duration = Duration::from_secs(40 * 60);
/// How long each process may take to accept connections.
const START_LIMIT: Duration = Duration::from_secs(30);
/// How long each process may take to exit after SIGTERM before it is killed.
const STOP_LIMIT: Duration = Duration::from_secs(10);

/// Options of `cargo xtask demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Address of the demo MCP server (`mcp-demo-server --listen`).
    #[arg(long, default_value = "127.0.0.1:3001")]
    pub server_listen: SocketAddr,
    /// Gateway MCP listener (the embedded default is port 8443).
    #[arg(long, default_value = "127.0.0.1:8443")]
    pub listen: SocketAddr,
    /// Gateway admin listener (the embedded default is port 9090).
    #[arg(long, default_value = "127.0.0.1:9090")]
    pub admin_listen: SocketAddr,
    /// Stop by itself after this many seconds (default: run until Ctrl-C / SIGTERM).
    #[arg(long)]
    pub duration_secs: Option<u64>,
    /// Use the release binaries already built instead of running `cargo build --release`.
    #[arg(long)]
    pub no_build: bool,
}

/// Run `cargo xtask demo`.
pub fn demo(root: &Path, args: &DemoArgs) -> anyhow::Result<()> {
    if !args.no_build {
        // The default build embeds the XDP program, which needs the eBPF toolchain.
        crate::setup::setup_ebpf_toolchain(root)?;
        step!("building release binaries");
        run(
            std::process::Command::new(cargo())
                .args(["build", "--release", "-p", "mcp-gateway", "--bins"])
                .current_dir(root),
            BUILD_LIMIT,
        )?;
    }
    let bin_dir = target_dir(root).join("release");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(run_demo(&bin_dir, args))
}

async fn run_demo(bin_dir: &Path, args: &DemoArgs) -> anyhow::Result<()> {
    let server_bin = existing(bin_dir.join("mcp-demo-server"))?;
    let gateway_bin = existing(bin_dir.join("mcp-gateway"))?;

    let listen = args.server_listen.to_string();
    let mut server = spawn(Command::new(&server_bin).args(["--listen", &listen]))?;
    wait_for_port("mcp-demo-server", &mut server, args.server_listen).await?;
    step!("mcp-demo-server listening on {}", args.server_listen);

    let backend = format!("demo=http://{}/mcp", args.server_listen);
    let gateway_args = gateway_args(args, &backend);
    let mut gateway = match spawn(Command::new(&gateway_bin).args(&gateway_args)) {
        Ok(child) => child,
        Err(err) => {
            stop("mcp-demo-server", &mut server).await;
            return Err(err);
        }
    };
    if let Err(err) = wait_for_port("mcp-gateway", &mut gateway, args.listen).await {
        stop("mcp-gateway", &mut gateway).await;
        stop("mcp-demo-server", &mut server).await;
        return Err(err);
    }
    print_usage(args);

    let outcome = wait_for_stop(&mut server, &mut gateway, args.duration_secs).await;
    stop("mcp-gateway", &mut gateway).await;
    stop("mcp-demo-server", &mut server).await;
    step!("demo stopped");
    outcome
}

/// The gateway's command line: the embedded default config plus loopback listeners.
pub fn gateway_args(args: &DemoArgs, backend: &str) -> Vec<String> {
    vec![
        "run".to_owned(),
        "--listen".to_owned(),
        args.listen.to_string(),
        "--admin-listen".to_owned(),
        args.admin_listen.to_string(),
        "--backend".to_owned(),
        backend.to_owned(),
    ]
}

fn existing(path: PathBuf) -> anyhow::Result<PathBuf> {
    if path.exists() { Ok(path) } else { bail!("{} not found (build it, or drop --no-build)", path.display()) }
}

fn spawn(command: &mut Command) -> anyhow::Result<Child> {
    let what = format!("{:?}", command.as_std());
    step!("$ {what}");
    command.stdin(Stdio::null()).kill_on_drop(true).spawn().with_context(|| format!("starting {what}"))
}

async fn wait_for_port(name: &str, child: &mut Child, addr: SocketAddr) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + START_LIMIT;
    while tokio::time::Instant::now() < deadline {
        if let Some(status) = child.try_wait()? {
            bail!("{name} exited during startup: {status}");
        }
        if TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("{name} did not accept connections on {addr} within {START_LIMIT:?}")
}

async fn wait_for_stop(server: &mut Child, gateway: &mut Child, duration: Option<u64>) -> anyhow::Result<()> {
    let mut sigterm = signal(SignalKind::terminate())?;
    let limit = async {
        match duration {
            Some(secs) => tokio::time::sleep(Duration::from_secs(secs)).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => { step!("Ctrl-C: stopping"); Ok(()) }
        _ = sigterm.recv() => { step!("SIGTERM: stopping"); Ok(()) }
        () = limit => { step!("--duration-secs elapsed: stopping"); Ok(()) }
        status = server.wait() => bail!("mcp-demo-server exited unexpectedly: {status:?}"),
        status = gateway.wait() => bail!("mcp-gateway exited unexpectedly: {status:?}"),
    }
}

/// SIGTERM, wait up to [`STOP_LIMIT`], then SIGKILL.
async fn stop(name: &str, child: &mut Child) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    if let Some(pid) = child.id() {
        let _ = Command::new("kill").args(["-s", "TERM", &pid.to_string()]).status().await;
    }
    if tokio::time::timeout(STOP_LIMIT, child.wait()).await.is_err() {
        step!("{name} ignored SIGTERM for {STOP_LIMIT:?}; killing");
        let _ = child.kill().await;
    }
}

fn print_usage(args: &DemoArgs) {
    let mcp = format!("http://{}/mcp", args.listen);
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"curl","version":"0"}}}"#;
    let lines = [
        String::new(),
        format!("  MCP endpoint (point any MCP client here): {mcp}"),
        format!("  Legacy SSE endpoint:                       http://{}/sse", args.listen),
        format!("  Admin: http://{0}/health  http://{0}/ready  http://{0}/metrics", args.admin_listen),
        String::new(),
        "  Try it:".to_owned(),
        format!(
            "    curl -si {mcp} -H 'content-type: application/json' -H 'accept: application/json, text/event-stream' -d '{init}'"
        ),
        "    # then send the Mcp-Session-Id header from that answer with each further request, e.g.".to_owned(),
        format!(
            "    curl -si {mcp} -H 'content-type: application/json' -H 'accept: application/json, text/event-stream' -H 'mcp-session-id: <id>' -d '{{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}}'"
        ),
        format!(
            "    curl -si {mcp} -H 'content-type: application/json' -H 'accept: application/json, text/event-stream' -H 'mcp-session-id: <id>' -d '{{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/list\"}}'"
        ),
        String::new(),
        "  Press Ctrl-C to stop both processes.".to_owned(),
    ];
    for line in lines {
        step!("{line}");
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Wrapper {
        #[command(flatten)]
        demo: DemoArgs,
    }

    #[test]
    fn defaults_are_loopback_and_the_documented_ports() {
        let args = Wrapper::try_parse_from(["demo"]).unwrap().demo;
        assert_eq!(args.server_listen, "127.0.0.1:3001".parse().unwrap());
        assert_eq!(args.listen.port(), 8443);
        assert_eq!(args.admin_listen.port(), 9090);
        assert!(args.listen.ip().is_loopback() && args.admin_listen.ip().is_loopback());
        assert_eq!(
            gateway_args(&args, "demo=http://127.0.0.1:3001/mcp"),
            [
                "run",
                "--listen",
                "127.0.0.1:8443",
                "--admin-listen",
                "127.0.0.1:9090",
                "--backend",
                "demo=http://127.0.0.1:3001/mcp"
            ]
        );
    }

    #[test]
    fn missing_binary_is_reported() {
        let err = existing(PathBuf::from("/nonexistent/mcp-gateway")).unwrap_err();
        assert!(err.to_string().contains("--no-build"), "{err}");
    }
}

//! `mcp-demo-server`: a small, fast MCP server (Streamable HTTP, revisions 2025-03-26,
//! 2025-06-18, 2025-11-25 and the session-less 2026-07-28) used by the demo and the
//! benchmarks as a gateway backend. It serves HTTP/1.1 (keep-alive, pipelining) and h2c
//! (prior knowledge) on one plain TCP port.
//!
//! After binding it prints exactly one line to stdout,
//! `mcp-demo-server listening on http://ADDR/PATH`, which test harnesses parse.

mod body;
mod methods;
mod protocol;
mod reply;
mod service;
mod sessions;
mod sse;
mod tools;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

use crate::service::{Config, Mode, Server};
use crate::sessions::SessionStore;

/// Command line of `mcp-demo-server`.
#[derive(Debug, Parser)]
#[command(name = "mcp-demo-server", version, about = "A small, fast MCP demo server")]
struct Cli {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:3001")]
    listen: SocketAddr,
    /// How POST requests are answered: application/json or one SSE event.
    #[arg(long, value_enum, default_value_t = Mode::Json)]
    mode: Mode,
    /// No sessions at all (as in 2026-07-28): no Mcp-Session-Id, GET and DELETE get 405.
    #[arg(long)]
    stateless: bool,
    /// Replica name reported by the `whoami` tool.
    #[arg(long, default_value = "demo")]
    name: String,
    /// Tokio worker threads (1 = a single-threaded runtime).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Path of the MCP endpoint.
    #[arg(long, default_value = "/mcp", value_parser = parse_path)]
    path: String,
    /// Interval of `: keepalive` comments on GET streams (e.g. 15s, 500ms).
    #[arg(long, default_value = "15s", value_parser = sse::parse_duration)]
    keepalive: Duration,
    /// Most sessions kept; the oldest are evicted beyond it.
    #[arg(long, default_value_t = 100_000)]
    max_sessions: usize,
    /// Largest accepted POST body, in bytes.
    #[arg(long, default_value_t = 16 * 1024 * 1024)]
    max_body: usize,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let runtime = if cli.threads <= 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread().worker_threads(cli.threads).enable_all().build()
    }
    .context("building the tokio runtime")?;
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let listener = TcpListener::bind(cli.listen).await.with_context(|| format!("binding {}", cli.listen))?;
    let local = listener.local_addr().context("reading the bound address")?;
    let sessions = (!cli.stateless).then(|| SessionStore::new(cli.max_sessions));
    let config =
        Config { path: cli.path, mode: cli.mode, name: cli.name, keepalive: cli.keepalive, max_body: cli.max_body };
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "mcp-demo-server listening on http://{local}{}", config.path)
            .and_then(|()| out.flush())
            .context("writing the listening line")?;
    }
    tracing::info!(%local, mode = ?config.mode, stateless = cli.stateless, "serving");
    let server = Arc::new(Server::new(config, sessions));
    let builder = Arc::new(connection_builder());
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Usually EMFILE: back off briefly instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, %peer, "TCP_NODELAY not set");
        }
        let server = Arc::clone(&server);
        let builder = Arc::clone(&builder);
        tokio::spawn(async move {
            let service = service_fn(move |req| Arc::clone(&server).handle(req));
            if let Err(e) = builder.serve_connection(TokioIo::new(stream), service).await {
                tracing::debug!(error = %e, %peer, "connection ended with an error");
            }
        });
    }
    tracing::info!("shutting down");
    Ok(())
}

/// HTTP/1.1 (keep-alive, pipelined responses flushed together) and h2c by prior knowledge.
fn connection_builder() -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // No header read timeout: it arms a timer for every request, which costs more than the
    // slow-client protection is worth on a loopback demo backend.
    builder.http1().timer(TokioTimer::new()).keep_alive(true).pipeline_flush(true).header_read_timeout(None);
    builder.http2().timer(TokioTimer::new()).max_concurrent_streams(1024).keep_alive_interval(None);
    builder
}

/// `--path`: an absolute path with no query.
fn parse_path(s: &str) -> Result<String, String> {
    if s.starts_with('/') && !s.contains(['?', '#', ' ']) {
        Ok(s.to_owned())
    } else {
        Err("must start with '/' and hold no '?', '#' or space".to_owned())
    }
}

/// Resolves on Ctrl-C or (Unix) SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            () = term => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let cli = Cli::try_parse_from(["mcp-demo-server"]).unwrap();
        assert_eq!(cli.listen, "127.0.0.1:3001".parse::<SocketAddr>().unwrap());
        assert_eq!(cli.mode, Mode::Json);
        assert!(!cli.stateless);
        assert_eq!(cli.name, "demo");
        assert_eq!(cli.threads, 1);
        assert_eq!(cli.path, "/mcp");
        assert_eq!(cli.keepalive, Duration::from_secs(15));
    }

    #[test]
    fn flags() {
        let cli = Cli::try_parse_from([
            "mcp-demo-server",
            "--listen",
            "[::1]:0",
            "--mode",
            "sse",
            "--stateless",
            "--name",
            "r2",
            "--threads",
            "2",
            "--path",
            "/x/mcp",
            "--keepalive",
            "500ms",
        ])
        .unwrap();
        assert_eq!(cli.listen.port(), 0);
        assert_eq!(cli.mode, Mode::Sse);
        assert!(cli.stateless);
        assert_eq!(cli.path, "/x/mcp");
        assert_eq!(cli.keepalive, Duration::from_millis(500));
        assert!(Cli::try_parse_from(["mcp-demo-server", "--path", "mcp"]).is_err());
        assert!(Cli::try_parse_from(["mcp-demo-server", "--mode", "xml"]).is_err());
    }
}

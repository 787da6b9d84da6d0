//! Active health checks: every `routing.health_check_interval`, each backend
//! gets a TCP connect (or an HTTP GET of its `health_check_path`) bounded by
//! `routing.health_check_timeout`. Thresholds turn single blips into
//! verdicts; passive failures from real traffic feed the same counters
//! (see `forward::send`). Verdicts are exported as `mcp_backend_healthy`.

use std::sync::Arc;
use std::time::Duration;

use http::Request;
use http_body::Body as _;
use http_body_util::{BodyExt, Full};
use tokio::net::TcpStream;

use super::Backend;
use super::pool::PoolError;
use crate::config::RoutingConfig;
use crate::drain;

/// Largest health-check response body read to the end (to reuse its connection).
const MAX_DRAINED_BODY: u64 = 64 * 1024;

/// Why a check failed.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// Did not finish within the timeout.
    #[error("health check timed out after {0:?}")]
    Timeout(Duration),
    /// TCP connect failed.
    #[error("connect failed: {0}")]
    Connect(#[source] std::io::Error),
    /// HTTP check failed.
    #[error("health request failed: {0}")]
    Http(#[source] PoolError),
    /// HTTP check answered a non-2xx status.
    #[error("health endpoint answered {0}")]
    Status(http::StatusCode),
    /// The check URI could not be built.
    #[error("bad health check path: {0}")]
    Uri(#[source] http::Error),
}

/// Check one backend once.
pub async fn check(backend: &Backend, timeout: Duration) -> Result<(), CheckError> {
    let work = async {
        match &backend.health_check_path {
            None => {
                let port = backend.authority.port_u16().unwrap_or(if backend.scheme == http::uri::Scheme::HTTPS {
                    443
                } else {
                    80
                });
                let host = backend.authority.host().trim_start_matches('[').trim_end_matches(']');
                TcpStream::connect((host, port)).await.map(drop).map_err(CheckError::Connect)
            }
            Some(path) => {
                let uri = backend.uri_for(path).map_err(CheckError::Uri)?;
                let req = Request::get(uri).body(Full::default()).map_err(CheckError::Uri)?;
                let resp = backend.pool.send(req).await.map_err(CheckError::Http)?;
                let status = resp.status();
                // The status decides. A small body of known length is read so the connection
                // goes back to the pool; any other (a stream, a large page) is dropped, which
                // closes that one connection instead of waiting for its end.
                let body = resp.into_body();
                if body.size_hint().upper().is_some_and(|n| n <= MAX_DRAINED_BODY) {
                    let _ = body.collect().await;
                }
                if status.is_success() { Ok(()) } else { Err(CheckError::Status(status)) }
            }
        }
    };
    tokio::time::timeout(timeout, work).await.unwrap_or(Err(CheckError::Timeout(timeout)))
}

/// Run checks for every backend until drained. The first round runs at once.
pub async fn run(backends: Vec<Arc<Backend>>, cfg: RoutingConfig, drain: drain::Watch) {
    let mut tick = tokio::time::interval(cfg.health_check_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let stop = drain.signaled();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = tick.tick() => {}
        }
        let rounds = backends.iter().map(|b| {
            let cfg = &cfg;
            async move {
                match check(b, cfg.health_check_timeout).await {
                    Ok(()) => b.record_success(cfg.healthy_threshold),
                    Err(e) => {
                        tracing::debug!(backend = %b.name, error = %e, "health check failed");
                        b.record_failure(cfg.unhealthy_threshold, &e.to_string());
                    }
                }
            }
        });
        futures_util::future::join_all(rounds).await;
    }
}

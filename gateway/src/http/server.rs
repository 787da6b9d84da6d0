//! The accept loop and per-connection serving: TLS (if configured) → HTTP/1.1
//! or HTTP/2 (by ALPN or preface) → the handler. Shutdown goes through the
//! drain watch: stop accepting, let in-flight requests finish within the
//! deadline, then close what is left.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::time::Sleep;
use tokio_rustls::TlsAcceptor;

use super::GwBody;
use super::listener;
use crate::drain;
use crate::telemetry::Metrics;

/// What a handler knows about the connection a request came on.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// Client address.
    pub peer: SocketAddr,
    /// The client IP as a header value, formatted once per connection (`X-Forwarded-For`).
    pub peer_ip: http::HeaderValue,
    /// True if the connection is TLS.
    pub tls: bool,
}

impl ConnInfo {
    /// Describe a connection from `peer`.
    pub fn new(peer: SocketAddr, tls: bool) -> Self {
        let peer_ip = http::HeaderValue::from_str(&peer.ip().to_string())
            .unwrap_or_else(|_| http::HeaderValue::from_static("unknown"));
        Self { peer, peer_ip, tls }
    }
}

/// Connection-level settings.
#[derive(Debug, Clone)]
pub struct ServeSettings {
    /// Metrics label for this listener (`data`, `admin`).
    pub name: &'static str,
    /// Header read limit (slowloris) and TLS handshake limit.
    pub read_timeout: Duration,
    /// A write the client does not accept within this time closes the connection.
    pub write_timeout: Duration,
    /// HTTP/1.1 keep-alive and TCP keepalive.
    pub keep_alive: bool,
    /// TCP keepalive idle time.
    pub tcp_keepalive: Duration,
    /// Deadline for in-flight requests after a drain starts.
    pub shutdown_timeout: Duration,
    /// Header, HTTP/2 and connection limits (`security.limits`).
    pub limits: crate::config::Limits,
}

/// Serve `listener` until drained.
pub async fn serve<H, F>(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    settings: ServeSettings,
    handler: H,
    metrics: Arc<Metrics>,
    drain: drain::Watch,
) where
    H: Fn(Request<Incoming>, ConnInfo) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<GwBody>> + Send + 'static,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    let limits = &settings.limits;
    // hyper refuses (431) what is far over the limits; the handler answers the rest with a
    // JSON-RPC error (`auth::limits`), so hyper's bounds sit at twice the configured ones.
    let header_bytes = limits.max_header_bytes.saturating_mul(2).max(16 * 1024);
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(settings.read_timeout)
        .keep_alive(settings.keep_alive)
        .max_headers(limits.max_headers.saturating_mul(2))
        .max_buf_size(header_bytes.max(64 * 1024));
    // HTTP/2: bounded streams, header lists (CONTINUATION floods) and resets (rapid reset, CVE-2023-44487).
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.h2_max_concurrent_streams)
        .max_header_list_size(u32::try_from(header_bytes).unwrap_or(u32::MAX))
        .max_pending_accept_reset_streams(limits.h2_max_pending_resets)
        .max_local_error_reset_streams(limits.h2_max_pending_resets.saturating_mul(10));
    let builder = Arc::new(builder);
    // A connection slot is taken before accept(2): past the cap, clients wait in the backlog.
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let stop = drain.clone().signaled();
    tokio::pin!(stop);
    let mut backoff = Duration::from_millis(5);
    let active = metrics.connections_active.with_label_values(&[settings.name]);
    let total = metrics.connections_total.with_label_values(&[settings.name]);
    let accept_errors = metrics.accept_errors.with_label_values(&[settings.name]);
    loop {
        let slot = tokio::select! {
            _ = &mut stop => break,
            slot = Arc::clone(&slots).acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok(ok) => { backoff = Duration::from_millis(5); ok }
                Err(e) => {
                    accept_errors.inc();
                    if listener::is_resource_exhaustion(&e) {
                        tracing::error!(listener = settings.name, error = %e, backoff_ms = backoff.as_millis() as u64,
                            "accept failed: out of file descriptors or memory; backing off");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(1));
                    } else {
                        tracing::debug!(listener = settings.name, error = %e, "accept failed");
                    }
                    continue;
                }
            },
        };
        listener::tune(&stream, settings.keep_alive.then_some(settings.tcp_keepalive));
        total.inc();
        let active = active.clone();
        let builder = Arc::clone(&builder);
        let handler = handler.clone();
        let tls = tls.clone();
        let watcher = graceful.watcher();
        let settings = settings.clone();
        tokio::spawn(async move {
            let _slot = slot;
            active.inc();
            let info = ConnInfo::new(peer, tls.is_some());
            let svc = service_fn(move |req| {
                let fut = handler(req, info.clone());
                async move { Ok::<_, std::convert::Infallible>(fut.await) }
            });
            let io = WriteTimeout::new(stream, settings.write_timeout);
            let result = match tls {
                None => watcher.watch(builder.serve_connection(TokioIo::new(io), svc)).await,
                Some(acceptor) => match tokio::time::timeout(settings.read_timeout, acceptor.accept(io)).await {
                    Ok(Ok(tls_stream)) => watcher.watch(builder.serve_connection(TokioIo::new(tls_stream), svc)).await,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        Ok(())
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "TLS handshake timed out");
                        Ok(())
                    }
                },
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with error");
            }
            active.dec();
        });
    }
    drop(listener);
    if tokio::time::timeout(settings.shutdown_timeout, graceful.shutdown()).await.is_err() {
        tracing::warn!(listener = settings.name, "shutdown deadline reached; closing remaining connections");
    }
}

/// Fails a write that stays pending longer than the limit, so a client that
/// stops reading cannot pin a connection (and its upstream slot) forever.
/// The timer is allocated on the first pending write and reused after.
#[derive(Debug)]
pub struct WriteTimeout<IO> {
    inner: IO,
    limit: Duration,
    timer: Option<Pin<Box<Sleep>>>,
    armed: bool,
}

impl<IO> WriteTimeout<IO> {
    /// Wrap `inner`.
    pub fn new(inner: IO, limit: Duration) -> Self {
        Self { inner, limit, timer: None, armed: false }
    }

    fn check(&mut self, cx: &mut Context<'_>, pending: bool) -> Result<(), std::io::Error> {
        if !pending {
            self.armed = false;
            return Ok(());
        }
        let deadline = tokio::time::Instant::now() + self.limit;
        let timer = self.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if !self.armed {
            timer.as_mut().reset(deadline);
            self.armed = true;
        }
        if timer.as_mut().poll(cx).is_ready() {
            return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "client write timeout"));
        }
        Ok(())
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for WriteTimeout<IO> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for WriteTimeout<IO> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Err(e) = this.check(cx, r.is_pending()) {
            return Poll::Ready(Err(e));
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        let r = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if let Err(e) = this.check(cx, r.is_pending()) {
            return Poll::Ready(Err(e));
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        let r = Pin::new(&mut this.inner).poll_flush(cx);
        if let Err(e) = this.check(cx, r.is_pending()) {
            return Poll::Ready(Err(e));
        }
        r
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

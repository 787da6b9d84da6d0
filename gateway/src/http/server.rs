//! The accept loop and per-connection serving: TLS (if configured; a verified
//! client certificate's CN is kept in [`ConnInfo`]) → HTTP/1.1 or HTTP/2 (by
//! ALPN or preface, with rapid-reset and CONTINUATION-flood limits) → the
//! handler, with the client IP resolved through [`TrustedProxies`]. Shutdown
//! goes through the drain watch: stop accepting, let in-flight requests finish
//! within the deadline, then close what is left.
//!
//! Memory per connection matters: every idle SSE stream holds one. Plain
//! HTTP/1.1 (the common case) is served by hyper's `http1` builder directly,
//! chosen by peeking at the first bytes, in a task of its own built after the
//! peek (`Served`: hyper's connection and a guard, nothing else — not the
//! HTTP/2 and TLS states, nor an async block's copies of the socket and service);
//! hyper does not see the 24-byte version-sniffing prefix (it made its first
//! read buffer grow to 16 KiB);
//! the handler future is boxed per request, so hyper keeps no handler-sized
//! slot per connection once the response head is out.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::http1;
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
use crate::config::Cidr;
use crate::drain;
use crate::telemetry::Metrics;

/// `X-Forwarded-For`.
const XFF: http::HeaderName = http::HeaderName::from_static("x-forwarded-for");
/// Most `X-Forwarded-For` entries looked at (a longer chain is treated as untrustworthy past this).
const MAX_XFF_ENTRIES: usize = 32;

/// What a handler knows about the connection a request came on.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// Client address: the TCP peer, or, when the peer is a trusted proxy
    /// (`security.trusted_proxies`), the client it names in `X-Forwarded-For` (port 0).
    /// Per-IP rate limits and the access log use this.
    pub peer: SocketAddr,
    /// The TCP peer's IP as a header value, formatted once per connection; appended to `X-Forwarded-For`.
    pub peer_ip: http::HeaderValue,
    /// True if the connection is TLS.
    pub tls: bool,
    /// The subject common name of the client certificate, when the client presented
    /// one and it verified against `server.tls.client_ca_file`.
    pub client_cert: Option<Arc<str>>,
}

impl ConnInfo {
    /// Describe a connection from `peer`.
    pub fn new(peer: SocketAddr, tls: bool) -> Self {
        let peer_ip = http::HeaderValue::from_str(&peer.ip().to_string())
            .unwrap_or_else(|_| http::HeaderValue::from_static("unknown"));
        Self { peer, peer_ip, tls, client_cert: None }
    }
}

/// The proxies in front of the gateway (`security.trusted_proxies`). From a
/// trusted peer, the client is the right-most `X-Forwarded-For` address that
/// is not itself trusted, and the forwarded chain starts at that address
/// (entries left of it are the client's own claims). From any other peer the
/// client's `X-Forwarded-For` is dropped, so the backend sees only the peer.
/// Empty (the default): the TCP peer is the client and `X-Forwarded-For` is
/// passed on with the peer appended.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Arc<[Cidr]>);

impl TrustedProxies {
    /// From config.
    pub fn new(cidrs: &[Cidr]) -> Self {
        Self(cidrs.into())
    }

    /// True when no proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `ip` (IPv4-mapped IPv6 counts as IPv4) is a trusted proxy.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|c| cidr_contains(c, ip))
    }

    /// The client of a request from `peer`: its address and, when it came from
    /// `X-Forwarded-For`, the chain from it onwards (to forward).
    pub fn resolve(&self, peer: IpAddr, headers: &http::HeaderMap) -> (IpAddr, Option<Vec<String>>) {
        if !self.contains(peer) {
            return (peer, None);
        }
        let mut entries: Vec<&str> = Vec::new();
        for value in headers.get_all(&XFF) {
            let Ok(text) = value.to_str() else { return (peer, Some(Vec::new())) };
            entries.extend(text.split(',').map(str::trim).filter(|e| !e.is_empty()));
        }
        let mut client = peer;
        let mut start = entries.len();
        for (i, entry) in entries.iter().enumerate().rev().take(MAX_XFF_ENTRIES) {
            // An entry that is not an address ends the walk at the last trusted hop.
            let Some(ip) = parse_entry(entry) else { break };
            client = ip;
            start = i;
            if !self.contains(ip) {
                break;
            }
        }
        (client, Some(entries[start..].iter().map(|e| (*e).to_owned()).collect()))
    }

    /// The connection info for one request: the resolved client, and the
    /// request's `X-Forwarded-For` rewritten to what the gateway vouches for.
    pub fn apply(&self, info: &ConnInfo, headers: &mut http::HeaderMap) -> ConnInfo {
        let (client, chain) = self.resolve(info.peer.ip(), headers);
        headers.remove(&XFF);
        if let Some(chain) = chain.filter(|c| !c.is_empty())
            && let Ok(v) = http::HeaderValue::from_str(&chain.join(", "))
        {
            headers.insert(XFF, v);
        }
        let mut out = info.clone();
        if client != info.peer.ip() {
            out.peer = SocketAddr::new(client, 0);
        }
        out
    }
}

/// One `X-Forwarded-For` entry: `1.2.3.4`, `2001:db8::1`, `[2001:db8::1]`, with or without a port.
fn parse_entry(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Ok(sa) = entry.parse::<SocketAddr>() {
        return Some(sa.ip().to_canonical());
    }
    entry.strip_prefix('[')?.strip_suffix(']')?.parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
}

fn cidr_contains(c: &Cidr, ip: IpAddr) -> bool {
    match (c.addr, ip) {
        (IpAddr::V4(net), IpAddr::V4(a)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(c.prefix_len)).unwrap_or(0);
            u32::from(a) & mask == u32::from(net)
        }
        (IpAddr::V6(net), IpAddr::V6(a)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(c.prefix_len)).unwrap_or(0);
            u128::from(a) & mask == u128::from(net)
        }
        _ => false,
    }
}

/// The common name of a verified client certificate, if the client sent one.
fn client_common_name(conn: &rustls::ServerConnection) -> Option<Arc<str>> {
    let cert = conn.peer_certificates()?.first()?;
    let cn = super::tls::common_name(cert);
    if cn.is_none() {
        tracing::debug!("client certificate has no usable subject common name; not used as a principal");
    }
    cn.map(Arc::from)
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
    /// Proxies whose `X-Forwarded-For` is believed (`security.trusted_proxies`).
    pub trusted_proxies: TrustedProxies,
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
    let max_headers = limits.max_headers.saturating_mul(2);
    let max_buf = header_bytes.max(64 * 1024);
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(settings.read_timeout)
        .keep_alive(settings.keep_alive)
        .max_headers(max_headers)
        .max_buf_size(max_buf);
    // The same HTTP/1.1 settings for plain connections that are not h2c.
    let mut h1 = http1::Builder::new();
    h1.timer(TokioTimer::new())
        .header_read_timeout(settings.read_timeout)
        .keep_alive(settings.keep_alive)
        .max_headers(max_headers)
        .max_buf_size(max_buf);
    // HTTP/2: bounded streams, header lists (CONTINUATION floods) and resets (rapid reset, CVE-2023-44487).
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.h2_max_concurrent_streams)
        .max_header_list_size(u32::try_from(header_bytes).unwrap_or(u32::MAX))
        .max_pending_accept_reset_streams(limits.h2_max_pending_resets)
        .max_local_error_reset_streams(limits.h2_max_pending_resets.saturating_mul(10));
    let builders = Arc::new(Builders { auto: builder, h1 });
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
        let guard = ConnGuard::new(slot, active.clone(), peer);
        let io = WriteTimeout::new(stream, settings.write_timeout);
        let info = ConnInfo::new(peer, tls.is_some());
        let trusted = settings.trusted_proxies.clone();
        let read_timeout = settings.read_timeout;
        let builders = Arc::clone(&builders);
        let handler = handler.clone();
        let tls = tls.clone();
        let watcher = graceful.watcher();
        let drain = drain.clone();
        tokio::spawn(async move {
            let Some(acceptor) = tls else {
                let Some(http1) = peek_is_http1(&io, read_timeout, drain).await else { return };
                let svc = service(handler, info, trusted);
                if http1 {
                    // A task of its own, built in place: this block's state (the peek, and its
                    // copies of the socket and the service) is not kept for the connection's life.
                    tokio::spawn(Served {
                        conn: watcher.watch(builders.h1.serve_connection(TokioIo::new(io), svc)),
                        guard,
                    });
                } else {
                    // An h2c preface (or too few bytes to tell): let `auto` read and decide.
                    let conn = watcher.watch(builders.auto.serve_connection(TokioIo::new(io), svc));
                    Served { conn: Box::pin(conn), guard }.await;
                }
                return;
            };
            // Rare and large (rustls state): boxed, so plain connections' tasks stay small.
            Box::pin(async move {
                let mut info = info;
                match tokio::time::timeout(read_timeout, acceptor.accept(io)).await {
                    Ok(Ok(tls_stream)) => {
                        info.client_cert = client_common_name(tls_stream.get_ref().1);
                        let svc = service(handler, info, trusted);
                        let conn = watcher.watch(builders.auto.serve_connection(TokioIo::new(tls_stream), svc));
                        Served { conn, guard }.await;
                    }
                    Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                    Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                }
            })
            .await;
        });
    }
    drop(listener);
    if tokio::time::timeout(settings.shutdown_timeout, graceful.shutdown()).await.is_err() {
        tracing::warn!(listener = settings.name, "shutdown deadline reached; closing remaining connections");
    }
}

/// Connection builders: `auto` (h2c by preface, and TLS by ALPN) and plain HTTP/1.1.
struct Builders {
    auto: auto::Builder<TokioExecutor>,
    h1: http1::Builder,
}

/// What the service returns per request.
type ServiceFuture = Pin<Box<dyn Future<Output = Result<Response<GwBody>, std::convert::Infallible>> + Send>>;

/// The per-connection service: the client resolved through the trusted proxies, and the
/// handler's future boxed per request — hyper keeps the service future in a per-connection
/// slot of its full size (~2.9 KB) for the connection's life; a box is freed with the response.
fn service<H, F>(
    handler: H,
    info: ConnInfo,
    trusted: TrustedProxies,
) -> impl hyper::service::Service<
    Request<Incoming>,
    Response = Response<GwBody>,
    Error = std::convert::Infallible,
    Future = ServiceFuture,
> + Send
+ 'static
where
    H: Fn(Request<Incoming>, ConnInfo) -> F + Send + Sync + 'static,
    F: Future<Output = Response<GwBody>> + Send + 'static,
{
    service_fn(move |mut req: Request<Incoming>| -> ServiceFuture {
        let conn = if trusted.is_empty() { info.clone() } else { trusted.apply(&info, req.headers_mut()) };
        Box::pin(OkFuture { inner: handler(req, conn) })
    })
}

/// The HTTP/2 connection preface (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// True if `head` (the first bytes a client sent) cannot start an HTTP/2 preface.
fn is_http1(head: &[u8]) -> bool {
    !head.is_empty() && !H2_PREFACE.starts_with(head)
}

/// Peek at a plain connection's first bytes: `Some(true)` for HTTP/1.1, `Some(false)` for a
/// possible h2c preface, `None` when there is nothing to serve (closed, failed, silent past
/// the header read timeout, or draining). Peeked, not read: hyper parses them itself.
async fn peek_is_http1(
    io: &WriteTimeout<tokio::net::TcpStream>,
    read_timeout: Duration,
    drain: drain::Watch,
) -> Option<bool> {
    let mut head = [0_u8; 24];
    let peek = tokio::time::timeout(read_timeout, io.inner.peek(&mut head));
    let n = tokio::select! {
        peeked = peek => match peeked {
            Ok(Ok(n)) if n > 0 => n,
            _ => return None,
        },
        // Draining: a connection that has not sent a byte is closed now; until it is handed
        // to hyper the graceful shutdown would wait out its read timeout.
        () = drain.signaled() => return None,
    };
    Some(is_http1(&head[..n]))
}

/// Holds a connection's slot (`max_connections`) and its place in `connections_active`.
struct ConnGuard {
    _slot: tokio::sync::OwnedSemaphorePermit,
    active: prometheus::IntGauge,
    peer: SocketAddr,
}

impl ConnGuard {
    fn new(slot: tokio::sync::OwnedSemaphorePermit, active: prometheus::IntGauge, peer: SocketAddr) -> Self {
        active.inc();
        Self { _slot: slot, active, peer }
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.active.dec();
    }
}

pin_project_lite::pin_project! {
    /// A served connection and its guard: the whole task of a plain HTTP/1.1 connection
    /// (hand-written, so nothing is stored twice as an async block's awaited value would be).
    struct Served<C> {
        #[pin]
        conn: C,
        guard: ConnGuard,
    }
}

impl<C, E> Future for Served<C>
where
    C: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.project();
        if let Err(e) = ready!(this.conn.poll(cx)) {
            tracing::debug!(peer = %this.guard.peer, error = %e, "connection ended with error");
        }
        Poll::Ready(())
    }
}

pin_project_lite::pin_project! {
    /// The handler's future as a service future (`Ok` always). Hand-written: an
    /// `async move { Ok(fut.await) }` block stores `fut` twice (captured and awaited).
    struct OkFuture<F> {
        #[pin]
        inner: F,
    }
}

impl<F: Future> Future for OkFuture<F> {
    type Output = Result<F::Output, std::convert::Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().inner.poll(cx).map(Ok)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn trusted(list: &[&str]) -> TrustedProxies {
        let cidrs: Vec<Cidr> = list.iter().map(|c| crate::config::parse_cidr(c).unwrap()).collect();
        TrustedProxies::new(&cidrs)
    }

    fn xff(values: &[&str]) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        for v in values {
            h.append(XFF, http::HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn cidrs_and_entries() {
        let t = trusted(&["10.0.0.0/8", "192.0.2.7", "2001:db8::/32"]);
        assert!(t.contains(ip("10.1.2.3")) && !t.contains(ip("11.0.0.1")));
        assert!(t.contains(ip("192.0.2.7")) && !t.contains(ip("192.0.2.8")));
        assert!(t.contains(ip("::ffff:10.9.9.9")), "IPv4-mapped peer");
        assert!(t.contains(ip("2001:db8:1::5")) && !t.contains(ip("2001:db9::1")));
        assert!(trusted(&["0.0.0.0/0"]).contains(ip("203.0.113.1")));
        assert!(!trusted(&["0.0.0.0/0"]).contains(ip("2001:db8::1")));
        assert_eq!(parse_entry(" 203.0.113.5 "), Some(ip("203.0.113.5")));
        assert_eq!(parse_entry("203.0.113.5:4711"), Some(ip("203.0.113.5")));
        assert_eq!(parse_entry("[2001:db8::9]:443"), Some(ip("2001:db8::9")));
        assert_eq!(parse_entry("[2001:db8::9]"), Some(ip("2001:db8::9")));
        assert_eq!(parse_entry("unknown"), None);
        assert!(TrustedProxies::default().is_empty());
    }

    #[test]
    fn right_most_untrusted_address_is_the_client() {
        let t = trusted(&["10.0.0.0/8"]);
        let proxy = ip("10.0.0.1");
        let chain = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        // An untrusted peer: its X-Forwarded-For is ignored (and dropped).
        assert_eq!(t.resolve(ip("198.51.100.1"), &xff(&["1.2.3.4"])), (ip("198.51.100.1"), None));
        // A trusted peer without the header: the peer is the client.
        assert_eq!(t.resolve(proxy, &xff(&[])), (proxy, Some(Vec::new())));
        // Spoofed entries left of the client are cut off.
        let (client, fwd) = t.resolve(proxy, &xff(&["6.6.6.6, 203.0.113.9", "10.2.2.2"]));
        assert_eq!(client, ip("203.0.113.9"));
        assert_eq!(fwd.unwrap(), chain(&["203.0.113.9", "10.2.2.2"]));
        // Every hop trusted: the left-most one.
        assert_eq!(t.resolve(proxy, &xff(&["10.3.3.3, 10.2.2.2"])).0, ip("10.3.3.3"));
        // Garbage ends the walk at the last trusted hop.
        let (client, fwd) = t.resolve(proxy, &xff(&["203.0.113.9, bogus, 10.2.2.2"]));
        assert_eq!((client, fwd.unwrap()), (ip("10.2.2.2"), chain(&["10.2.2.2"])));
        // A very long chain of trusted hops stops after a bound.
        let long = vec!["10.0.0.9"; 100].join(", ");
        let (client, fwd) = t.resolve(proxy, &xff(&[&format!("203.0.113.1, {long}")]));
        assert_eq!((client, fwd.unwrap().len()), (ip("10.0.0.9"), MAX_XFF_ENTRIES));
    }

    #[test]
    fn http1_is_told_from_an_h2_preface() {
        assert!(is_http1(b"GET /mcp HTTP/1.1\r\n"));
        assert!(is_http1(b"POST /mcp HTTP/1.1\r\n"));
        assert!(is_http1(b"PUT"));
        assert!(!is_http1(H2_PREFACE));
        // Too short to tell: left to the auto builder.
        assert!(!is_http1(b"PR"));
        assert!(!is_http1(b""));
    }

    #[test]
    fn apply_rewrites_the_request() {
        let t = trusted(&["127.0.0.0/8"]);
        let info = ConnInfo::new("127.0.0.1:5000".parse().unwrap(), false);
        let mut h = xff(&["6.6.6.6, 203.0.113.9"]);
        let out = t.apply(&info, &mut h);
        assert_eq!(out.peer, "203.0.113.9:0".parse().unwrap());
        assert_eq!(out.peer_ip, "127.0.0.1", "the appended hop stays the TCP peer");
        assert_eq!(h[XFF], "203.0.113.9");
        let untrusted = ConnInfo::new("192.0.2.1:5000".parse().unwrap(), false);
        let mut h = xff(&["6.6.6.6"]);
        assert_eq!(t.apply(&untrusted, &mut h).peer, untrusted.peer);
        assert!(h.get(XFF).is_none(), "an untrusted client's X-Forwarded-For is dropped");
    }
}

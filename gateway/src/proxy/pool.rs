//! Upstream connections of one backend: a LIFO stack of idle HTTP/1.1
//! connections and a short list of shared HTTP/2 connections.
//!
//! The gateway knows which backend a request goes to before it sends it, so it
//! needs no pool keyed by scheme and authority: each backend owns its
//! connections, a checkout is a pop from a mutex-guarded `Vec` (the most
//! recently used connection first, so idle ones age out at the bottom), and a
//! connection goes back when its response body has been read to the end. A
//! response body dropped early closes its HTTP/1.1 connection (its state is
//! unknown); on HTTP/2 only the stream is reset.
//!
//! HTTP/2 is used with `backends[].http2: true` (h2c prior knowledge on
//! `http://`, ALPN `h2` only on `https://`) or when a TLS backend picks `h2`
//! by ALPN. One HTTP/2 connection carries up to [`H2_STREAMS_PER_CONN`]
//! streams, or fewer if the backend's `SETTINGS_MAX_CONCURRENT_STREAMS` says so
//! (a connection is shared only once that frame is in); beyond it a new
//! connection is opened, so a backend's limit never makes requests (or
//! thousands of idle SSE streams) queue.
//!
//! HTTP/1.1 exchanges are driven by the request's own task ([`h1`]); HTTP/2 uses
//! hyper's client connection. A reused connection can be closed by the backend just
//! as a request is handed to it (a keep-alive race). A request that cannot have been
//! acted on (hyper gives it back unsent; on HTTP/1.1 the write failed, or an
//! idempotent request saw the close before any answer) is sent once more on a new
//! connection.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response, Uri, header};
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use prometheus::IntCounter;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::client::UpstreamBody;
use super::h1;

#[path = "pool_body.rs"]
mod body;
use crate::config::{BackendConfig, PoolConfig};
use crate::http::tls::TlsError;
use crate::telemetry::Metrics;
pub use body::{BodyError, PooledBody};

/// Streams one HTTP/2 connection carries before another is opened, unless the backend
/// allows fewer (its `SETTINGS_MAX_CONCURRENT_STREAMS`). Idle SSE streams share the
/// connection's buffers, tables and task: 1000 instead of 100 saves ~1 KB per stream.
pub const H2_STREAMS_PER_CONN: usize = 1000;
/// PING on an HTTP/2 connection this long after its last frame…
const H2_PING_INTERVAL: Duration = Duration::from_secs(20);
/// …and close it if no PONG comes back within this.
const H2_PING_TIMEOUT: Duration = Duration::from_secs(10);
/// TCP keepalive on upstream connections.
const TCP_KEEPALIVE: Duration = Duration::from_secs(60);

/// Why an upstream exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// The backend's host name did not resolve.
    #[error("resolving {host} failed")]
    Resolve {
        /// The name.
        host: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The host name resolved to no address.
    #[error("{0} resolved to no address")]
    NoAddress(String),
    /// TCP connect failed.
    #[error("connecting to {addr} failed")]
    Connect {
        /// The address tried last.
        addr: SocketAddr,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// Resolve, connect and handshakes took longer than `connection_pool.connect_timeout`.
    #[error("connect (TCP, TLS and HTTP handshakes) not done within connect_timeout ({0:?})")]
    ConnectTimeout(Duration),
    /// The TLS handshake failed.
    #[error("TLS handshake failed")]
    Tls(#[source] std::io::Error),
    /// The HTTP/2 handshake failed (HTTP/1.1 has none).
    #[error("HTTP handshake failed")]
    Handshake(#[source] hyper::Error),
    /// The backend ended an HTTP/2 connection before sending its SETTINGS.
    #[error("backend closed the HTTP/2 connection before its SETTINGS (does it speak HTTP/2? see backends[].http2)")]
    NoSettings,
    /// The HTTP/2 exchange failed on an established connection.
    #[error("exchange failed")]
    Exchange(#[source] hyper::Error),
    /// The HTTP/1.1 exchange failed on an established connection.
    #[error("exchange failed")]
    Http1(#[source] h1::H1Error),
}

impl PoolError {
    /// True if no connection to the backend could be made (as opposed to a failed exchange).
    pub fn is_connect(&self) -> bool {
        !matches!(self, Self::Exchange(_) | Self::Http1(_))
    }
}

/// Where and how to connect.
struct Target {
    /// Host without IPv6 brackets.
    host: String,
    /// Parsed once when the host is an IP literal (no resolver call per connect).
    ip: Option<IpAddr>,
    port: u16,
    scheme: Scheme,
    authority: Authority,
    tls: Option<(tokio_rustls::TlsConnector, ServerName<'static>)>,
    http2: bool,
}

/// An idle HTTP/1.1 connection.
struct Idle {
    conn: h1::Conn,
    /// Not used after this: `idle_timeout` after it went idle, or sooner when the backend
    /// said it closes idle connections sooner (`Keep-Alive: timeout=N`).
    expires: Instant,
}

/// Taken off a backend's announced keep-alive timeout: a connection is not sent a request
/// within this long of the backend's own close, which could cross it on the wire (a request
/// that is not idempotent cannot be sent again and would fail).
const KEEP_ALIVE_MARGIN: Duration = Duration::from_secs(1);

/// How long a connection may stay idle in the pool: `idle_timeout`, or less than the backend's
/// announced limit by [`KEEP_ALIVE_MARGIN`]; `None` when that leaves no time (not pooled).
fn idle_limit(idle_timeout: Duration, announced: Option<Duration>) -> Option<Duration> {
    match announced {
        None => Some(idle_timeout),
        Some(limit) => limit.checked_sub(KEEP_ALIVE_MARGIN).filter(|l| !l.is_zero()).map(|l| l.min(idle_timeout)),
    }
}

/// A shared HTTP/2 connection and its open streams.
struct H2Conn {
    tx: http2::SendRequest<UpstreamBody>,
    streams: Arc<Streams>,
    /// Streams it may carry: `H2_STREAMS_PER_CONN` or the backend's lower limit (see [`PeerLimit`]).
    limit: Arc<AtomicUsize>,
}

/// The connections of one backend.
pub struct Pool {
    backend: Arc<str>,
    target: Target,
    max_idle: usize,
    idle_timeout: Duration,
    connect_timeout: Duration,
    idle: Mutex<Vec<Idle>>,
    h2: Mutex<Vec<H2Conn>>,
    /// Set once an HTTP/2 connection exists, so HTTP/1.1 backends never lock `h2`.
    speaks_h2: AtomicBool,
    /// Serializes HTTP/2 connects: a burst of requests shares the new connection.
    h2_connect: tokio::sync::Mutex<()>,
    reaper: AtomicBool,
    opened_h1: IntCounter,
    opened_h2: IntCounter,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool").field("backend", &self.backend).field("http2", &self.target.http2).finish()
    }
}

/// A connection ready for one request.
enum Conn {
    H1 { conn: h1::Conn, reused: bool },
    H2 { tx: http2::SendRequest<UpstreamBody>, slot: StreamSlot, reused: bool },
}

impl Pool {
    /// The pool of `backend` under `connection_pool` settings; an `https://` backend gets
    /// its TLS client here (its `tls:` files are read now).
    pub fn new(backend: &BackendConfig, cfg: &PoolConfig, metrics: &Metrics) -> Result<Self, TlsError> {
        let scheme = backend.url.scheme().cloned().unwrap_or(Scheme::HTTP);
        let authority = backend.url.authority().cloned().unwrap_or_else(|| Authority::from_static("localhost"));
        let https = scheme == Scheme::HTTPS;
        let host = authority.host().trim_start_matches('[').trim_end_matches(']').to_owned();
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        let tls = if https { Some(tls_target(backend, &host)?) } else { None };
        let opened =
            |protocol: &str| metrics.upstream_connections.with_label_values(&[backend.name.as_str(), protocol]);
        Ok(Self {
            backend: Arc::from(backend.name.as_str()),
            target: Target { ip: host.parse().ok(), host, port, scheme, authority, tls, http2: backend.http2 },
            max_idle: if cfg.enabled { cfg.max_idle_conns } else { 0 },
            idle_timeout: cfg.idle_timeout,
            connect_timeout: cfg.connect_timeout,
            idle: Mutex::new(Vec::new()),
            h2: Mutex::new(Vec::new()),
            speaks_h2: AtomicBool::new(false),
            h2_connect: tokio::sync::Mutex::new(()),
            reaper: AtomicBool::new(false),
            opened_h1: opened("http1"),
            opened_h2: opened("h2"),
        })
    }

    /// Send `req` (absolute URI) and return the response head; the body returns the
    /// connection when read to the end.
    pub async fn send(self: &Arc<Self>, mut req: Request<UpstreamBody>) -> Result<Response<PooledBody>, PoolError> {
        let mut fresh = false;
        let mut wire = None;
        loop {
            match self.checkout(fresh).await? {
                Conn::H1 { mut conn, reused } => {
                    let wire = wire.get_or_insert_with(|| h1::encode(&req, self.target.authority.as_str()));
                    match conn.send(wire).await {
                        Ok(head) => {
                            let body = PooledBody::h1(Arc::clone(self), conn, head.body);
                            return Ok(head.response.map(|()| body));
                        }
                        // The backend closed a reused connection under us and cannot have acted
                        // on the request: once more, on a new connection.
                        Err(e) if e.unsent && reused && !fresh => {
                            tracing::debug!(backend = %self.backend, error = %e.error, "reused connection closed; retrying on a new one");
                            fresh = true;
                        }
                        Err(e) => return Err(PoolError::Http1(e.error)),
                    }
                }
                Conn::H2 { mut tx, slot, reused } => {
                    self.absolute_form(&mut req);
                    match tx.try_send_request(req).await {
                        Ok(resp) => return Ok(resp.map(|b| PooledBody::h2(b, slot))),
                        // Closed under us before a byte of the request went out.
                        Err(mut e) if reused && !fresh && e.message().is_some() => match e.take_message() {
                            Some(back) => {
                                tracing::debug!(backend = %self.backend, error = %e.error(), "reused connection closed; retrying on a new one");
                                req = back;
                                fresh = true;
                            }
                            None => return Err(PoolError::Exchange(e.into_error())),
                        },
                        Err(e) => return Err(PoolError::Exchange(e.into_error())),
                    }
                }
            }
        }
    }

    /// Idle HTTP/1.1 connections and open HTTP/2 connections (for tests and `doctor`).
    pub fn connections(&self) -> (usize, usize) {
        (lock(&self.idle).len(), lock(&self.h2).len())
    }

    /// Streams open on this backend's HTTP/2 connections.
    pub fn h2_open_streams(&self) -> usize {
        lock(&self.h2).iter().map(|c| c.streams.open.load(Ordering::Relaxed)).sum()
    }

    async fn checkout(self: &Arc<Self>, fresh: bool) -> Result<Conn, PoolError> {
        if !fresh {
            if let Some(conn) = self.h2_stream() {
                return Ok(conn);
            }
            while let Some(mut idle) = self.pop_idle() {
                // Closed by the backend while idle (its keep-alive timeout): dropped here.
                if idle.conn.is_reusable() {
                    return Ok(Conn::H1 { conn: idle.conn, reused: true });
                }
            }
        }
        // Boxed: the connect future (TLS and HTTP/2 handshakes) is kilobytes, and inline it
        // would be copied into every request's future, connect or not.
        let deadline = Instant::now() + self.connect_timeout;
        let connect: Pin<Box<dyn Future<Output = Result<Conn, PoolError>> + Send + '_>> =
            Box::pin(self.connect(fresh, deadline));
        match tokio::time::timeout_at(deadline, connect).await {
            Ok(conn) => conn,
            Err(_) => Err(PoolError::ConnectTimeout(self.connect_timeout)),
        }
    }

    /// The most recently used idle connection that has not expired.
    fn pop_idle(&self) -> Option<Idle> {
        let mut idle = lock(&self.idle);
        let top = idle.pop()?;
        let now = Instant::now();
        if top.expires > now {
            return Some(top);
        }
        // The top is the youngest: below it are older ones, expired too unless the backend
        // announced a longer keep-alive for them.
        idle.retain(|i| i.expires > now);
        None
    }

    /// A stream on an HTTP/2 connection with room for one.
    fn h2_stream(&self) -> Option<Conn> {
        if !self.speaks_h2.load(Ordering::Relaxed) {
            return None;
        }
        let mut conns = lock(&self.h2);
        conns.retain(|c| !c.tx.is_closed());
        let conn = conns.iter().find(|c| c.streams.open.load(Ordering::Relaxed) < c.limit.load(Ordering::Relaxed))?;
        Some(Conn::H2 { tx: conn.tx.clone(), slot: StreamSlot::take(&conn.streams), reused: true })
    }

    /// A new connection; with `fresh`, never a stream on an existing one (a retry after the
    /// backend closed the connection the first attempt used).
    async fn connect(self: &Arc<Self>, fresh: bool, deadline: Instant) -> Result<Conn, PoolError> {
        // HTTP/2: one connect at a time, and whoever waited takes a stream on it.
        let shares_h2 = self.max_idle > 0 && (self.target.http2 || self.speaks_h2.load(Ordering::Relaxed));
        let _serial = if shares_h2 {
            let guard = self.h2_connect.lock().await;
            if let Some(conn) = self.h2_stream().filter(|_| !fresh) {
                return Ok(conn);
            }
            Some(guard)
        } else {
            None
        };
        self.start_reaper();
        let tcp = self.tcp(deadline).await?;
        match &self.target.tls {
            None if self.target.http2 => self.start_h2(TokioIo::new(tcp)).await,
            None => Ok(self.start_h1(h1::Io::Plain(tcp))),
            Some((connector, name)) => {
                let tls = connector.connect(name.clone(), tcp).await.map_err(PoolError::Tls)?;
                if tls.get_ref().1.alpn_protocol() == Some(b"h2") {
                    self.start_h2(TokioIo::new(tls)).await
                } else {
                    Ok(self.start_h1(h1::Io::Tls(Box::new(tls))))
                }
            }
        }
    }

    /// A TCP connection to the backend by `deadline`. Every resolved address gets its share
    /// of the time left (RFC 8305 order: address families alternate), so an address that
    /// drops SYNs silently cannot use up the whole `connect_timeout` of the others.
    async fn tcp(&self, deadline: Instant) -> Result<TcpStream, PoolError> {
        let t = &self.target;
        let addrs: Vec<SocketAddr> = match t.ip {
            Some(ip) => vec![SocketAddr::new(ip, t.port)],
            None => interleave_families(
                tokio::net::lookup_host((t.host.as_str(), t.port))
                    .await
                    .map_err(|source| PoolError::Resolve { host: t.host.clone(), source })?
                    .collect(),
            ),
        };
        if addrs.is_empty() {
            return Err(PoolError::NoAddress(t.host.clone()));
        }
        let stream = connect_any(&addrs, deadline, TcpStream::connect).await?;
        // Requests are written whole; never wait for an ACK to send the rest.
        let _ = stream.set_nodelay(true);
        let keepalive = socket2::TcpKeepalive::new().with_time(TCP_KEEPALIVE);
        let _ = socket2::SockRef::from(&stream).set_tcp_keepalive(&keepalive);
        Ok(stream)
    }

    /// HTTP/1.1 needs no handshake: the connection is driven by the requests it carries.
    fn start_h1(&self, io: h1::Io) -> Conn {
        self.opened_h1.inc();
        Conn::H1 { conn: h1::Conn::new(io), reused: false }
    }

    async fn start_h2<I>(self: &Arc<Self>, io: I) -> Result<Conn, PoolError>
    where
        I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let (tx, mut conn) = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            // No stream until the backend's SETTINGS say how many (see `PeerLimit`).
            .initial_max_send_streams(0)
            // A shared connection that goes half-open (NAT/conntrack expiry, a reused pod IP)
            // would stall every request to the backend: PINGs find it out.
            .keep_alive_interval(H2_PING_INTERVAL)
            .keep_alive_timeout(H2_PING_TIMEOUT)
            .keep_alive_while_idle(true)
            .handshake(io)
            .await
            .map_err(PoolError::Handshake)?;
        let backend = Arc::clone(&self.backend);
        // The backend's SETTINGS frame (its stream limit) is read by hyper's own connection
        // task, one round trip after the handshake; `connect_timeout` bounds the wait.
        let mut wait = Duration::from_millis(1);
        while conn.current_max_send_streams() == 0 {
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                // The backend closed or broke the connection first (not h2c, or refusing).
                ended = &mut conn => return Err(match ended {
                    Err(e) => PoolError::Handshake(e),
                    Ok(()) => PoolError::NoSettings,
                }),
            }
            wait = (wait * 2).min(Duration::from_millis(50));
        }
        let limit = Arc::new(AtomicUsize::new(conn.current_max_send_streams().min(H2_STREAMS_PER_CONN)));
        let conn = PeerLimit { conn, limit: Arc::clone(&limit) };
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%backend, error = %e, "upstream HTTP/2 connection ended with an error");
            }
        });
        self.opened_h2.inc();
        let streams =
            Arc::new(Streams { open: AtomicUsize::new(0), epoch: Instant::now(), idle_at: AtomicU64::new(0) });
        let slot = StreamSlot::take(&streams);
        // With `connection_pool.enabled: false` the connection serves this one stream.
        if self.max_idle > 0 {
            lock(&self.h2).push(H2Conn { tx: tx.clone(), streams, limit });
            self.speaks_h2.store(true, Ordering::Relaxed);
        }
        Ok(Conn::H2 { tx, slot, reused: false })
    }

    /// Put an HTTP/1.1 connection whose exchange is over back on the stack; `announced` is
    /// the backend's keep-alive timeout from the last response.
    fn checkin(&self, conn: h1::Conn, announced: Option<Duration>) {
        if self.max_idle == 0 {
            return;
        }
        let Some(limit) = idle_limit(self.idle_timeout, announced) else { return };
        let expires = Instant::now() + limit;
        let mut idle = lock(&self.idle);
        if idle.len() < self.max_idle {
            idle.push(Idle { conn, expires });
        }
    }

    /// Close idle connections older than `idle_timeout`, even without traffic: one task per
    /// pool, started with its first connection, ending when the pool is dropped.
    fn start_reaper(self: &Arc<Self>) {
        if self.reaper.swap(true, Ordering::Relaxed) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let pool: Weak<Self> = Arc::downgrade(self);
        let every = (self.idle_timeout / 2).max(Duration::from_secs(1));
        runtime.spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(pool) = pool.upgrade() else { return };
                let timeout = pool.idle_timeout;
                let now = Instant::now();
                lock(&pool.idle).retain_mut(|i| i.expires > now && i.conn.is_reusable());
                // An HTTP/2 connection without streams for `idle_timeout` is let go (hyper
                // closes it once its last handle is dropped), as HTTP/1.1 ones are.
                lock(&pool.h2).retain(|c| !c.tx.is_closed() && c.streams.idle_for().is_none_or(|d| d <= timeout));
            }
        });
    }

    /// HTTP/2 takes `:scheme` and `:authority` from the URI and has no `Host`.
    fn absolute_form(&self, req: &mut Request<UpstreamBody>) {
        req.headers_mut().remove(header::HOST);
        if req.uri().scheme().is_some() {
            return;
        }
        let mut parts = req.uri().clone().into_parts();
        parts.scheme = Some(self.target.scheme.clone());
        parts.authority = Some(self.target.authority.clone());
        if parts.path_and_query.is_none() {
            parts.path_and_query = Some(PathAndQuery::from_static("/"));
        }
        if let Ok(uri) = Uri::from_parts(parts) {
            *req.uri_mut() = uri;
        }
    }
}

/// Resolved addresses in the order RFC 8305 §4 asks for: the first address's family first,
/// then alternating, so a host whose IPv6 path is broken still gets to IPv4 early.
fn interleave_families(addrs: Vec<SocketAddr>) -> Vec<SocketAddr> {
    let Some(first) = addrs.first() else { return addrs };
    let first_v6 = first.is_ipv6();
    let (mut same, mut other): (Vec<_>, Vec<_>) = addrs.into_iter().partition(|a| a.is_ipv6() == first_v6);
    let mut out = Vec::with_capacity(same.len() + other.len());
    same.reverse();
    other.reverse();
    while !same.is_empty() || !other.is_empty() {
        out.extend(same.pop());
        out.extend(other.pop());
    }
    out
}

/// Try `addrs` in turn until one connects; each attempt may take an equal share of the time
/// left before `deadline` (the last one all of it). The error names the last address tried.
async fn connect_any<S, F, Fut>(addrs: &[SocketAddr], deadline: Instant, connect: F) -> Result<S, PoolError>
where
    F: Fn(SocketAddr) -> Fut,
    Fut: Future<Output = std::io::Result<S>>,
{
    let mut last = None;
    for (i, &addr) in addrs.iter().enumerate() {
        let left = deadline.saturating_duration_since(Instant::now());
        let share = left / u32::try_from(addrs.len() - i).unwrap_or(u32::MAX);
        match tokio::time::timeout(share, connect(addr)).await {
            Ok(Ok(stream)) => return Ok(stream),
            Ok(Err(source)) => last = Some(PoolError::Connect { addr, source }),
            Err(_) => {
                let source = std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no answer within {share:?} (its share of connect_timeout)"),
                );
                last = Some(PoolError::Connect { addr, source });
            }
        }
    }
    Err(last.unwrap_or(PoolError::ConnectTimeout(Duration::ZERO)))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section is a push, pop or retain: a panic inside cannot leave a half state.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The TLS connector and verified name of an `https://` backend, offering `h2` and
/// `http/1.1` by ALPN (only `h2` with `http2: true`).
fn tls_target(
    backend: &BackendConfig,
    host: &str,
) -> Result<(tokio_rustls::TlsConnector, ServerName<'static>), TlsError> {
    let wrap = |source| TlsError::Backend { backend: backend.name.clone(), source: Box::new(source) };
    let mut config = match &backend.tls {
        Some(tls) => super::upstream_tls::client_config(tls).map_err(wrap)?,
        None => super::upstream_tls::default_client_config(),
    };
    config.alpn_protocols =
        if backend.http2 { vec![b"h2".to_vec()] } else { vec![b"h2".to_vec(), b"http/1.1".to_vec()] };
    let name = backend.tls.as_ref().and_then(|t| t.server_name.as_deref()).unwrap_or(host).to_owned();
    let name = ServerName::try_from(name.clone()).map_err(|_| {
        wrap(TlsError::from(rustls::Error::General(format!("server name {name:?} is not a DNS name or IP"))))
    })?;
    Ok((tokio_rustls::TlsConnector::from(Arc::new(config)), name))
}

/// An HTTP/2 connection's task, keeping `limit` at the streams the backend allows: its
/// `SETTINGS_MAX_CONCURRENT_STREAMS` (none before its first SETTINGS frame; unlimited if
/// that frame has none), at most [`H2_STREAMS_PER_CONN`]. Streams past the backend's
/// limit would wait inside the connection, an SSE stream for hours: they go to another one.
struct PeerLimit<T>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    conn: http2::Connection<T, UpstreamBody, TokioExecutor>,
    limit: Arc<AtomicUsize>,
}

impl<T> Future for PeerLimit<T>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    type Output = hyper::Result<()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<hyper::Result<()>> {
        let this = &mut *self;
        let out = Pin::new(&mut this.conn).poll(cx);
        // Polled once per request handed to the connection: a later SETTINGS frame counts from
        // the next request on. The stream table lock this takes is not contended here.
        this.limit.store(this.conn.current_max_send_streams().min(H2_STREAMS_PER_CONN), Ordering::Relaxed);
        out
    }
}

/// The open streams of one HTTP/2 connection, and since when it has had none.
#[derive(Debug)]
struct Streams {
    open: AtomicUsize,
    epoch: Instant,
    /// Milliseconds after `epoch` when the last stream ended.
    idle_at: AtomicU64,
}

impl Streams {
    /// How long the connection has carried no stream (`None` while it carries one).
    fn idle_for(&self) -> Option<Duration> {
        if self.open.load(Ordering::Relaxed) > 0 {
            return None;
        }
        let since = Duration::from_millis(self.idle_at.load(Ordering::Relaxed));
        Some(self.epoch.elapsed().saturating_sub(since))
    }
}

/// One open stream on an HTTP/2 connection, counted until dropped.
#[derive(Debug)]
struct StreamSlot(Arc<Streams>);

impl StreamSlot {
    fn take(streams: &Arc<Streams>) -> Self {
        streams.open.fetch_add(1, Ordering::Relaxed);
        Self(Arc::clone(streams))
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        if self.0.open.fetch_sub(1, Ordering::Relaxed) == 1 {
            let ms = u64::try_from(self.0.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
            self.0.idle_at.store(ms, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
#[path = "pool_tests.rs"]
mod tests;

use std::convert::Infallible;
use std::sync::atomic::AtomicUsize;

use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::server::conn::auto;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use bytes::Bytes;
use hyper::body::Incoming;

use super::*;
use crate::config::BackendTransport;

/// A backend on loopback: counts accepted connections; each request waits for a permit of
/// `gate` (if any) before answering `ok`.
struct TestBackend {
    url: String,
    accepted: Arc<AtomicUsize>,
}

async fn backend(gate: Option<Arc<Semaphore>>) -> TestBackend {
    backend_with_streams(gate, 1000).await
}

/// [`backend`] advertising `max_streams` as its `SETTINGS_MAX_CONCURRENT_STREAMS`.
async fn backend_with_streams(gate: Option<Arc<Semaphore>>, max_streams: u32) -> TestBackend {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            count.fetch_add(1, Ordering::SeqCst);
            let gate = gate.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    let gate = gate.clone();
                    async move {
                        if let Some(g) = gate {
                            let _ = g.acquire().await.map(|p| p.forget());
                        }
                        let proto = format!("{:?}", req.version());
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(proto))))
                    }
                });
                let mut builder = auto::Builder::new(TokioExecutor::new());
                builder.http2().max_concurrent_streams(max_streams);
                let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
            });
        }
    });
    TestBackend { url, accepted }
}

fn config(url: &str, http2: bool) -> BackendConfig {
    BackendConfig {
        name: "b".into(),
        url: url.parse().unwrap(),
        weight: 1,
        transport: BackendTransport::StreamableHttp,
        health_check_path: None,
        http2,
        tls: None,
    }
}

fn pool_config() -> PoolConfig {
    PoolConfig {
        enabled: true,
        max_idle_conns: 4,
        max_conns_per_host: 512,
        idle_timeout: Duration::from_secs(90),
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(10),
        acquire_timeout: Duration::from_secs(1),
    }
}

fn pool(url: &str, http2: bool, cfg: &PoolConfig) -> Arc<Pool> {
    Arc::new(Pool::new(&config(url, http2), cfg, &Metrics::new()).unwrap())
}

fn post(url: &str) -> Request<UpstreamBody> {
    Request::post(url).body(Full::new(Bytes::from_static(b"{}"))).unwrap()
}

async fn exchange(pool: &Arc<Pool>, url: &str) -> String {
    let resp = pool.send(post(url)).await.unwrap();
    assert_eq!(resp.status(), 200);
    String::from_utf8(resp.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
}

#[tokio::test]
async fn http1_connection_is_reused_after_the_body_is_read() {
    let b = backend(None).await;
    let pool = pool(&b.url, false, &pool_config());
    for _ in 0..5 {
        assert_eq!(exchange(&pool, &b.url).await, "HTTP/1.1");
    }
    assert_eq!(b.accepted.load(Ordering::SeqCst), 1);
    assert_eq!(pool.connections(), (1, 0));
    assert_eq!(pool.opened_h1.get(), 1);
}

#[tokio::test]
async fn a_body_dropped_early_closes_its_connection() {
    let b = backend(None).await;
    let pool = pool(&b.url, false, &pool_config());
    let resp = pool.send(post(&b.url)).await.unwrap();
    drop(resp);
    assert_eq!(pool.connections(), (0, 0));
    assert_eq!(exchange(&pool, &b.url).await, "HTTP/1.1");
    assert_eq!(b.accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn idle_connections_are_capped_and_expire() {
    let b = backend(None).await;
    let cfg = PoolConfig { max_idle_conns: 2, idle_timeout: Duration::from_millis(300), ..pool_config() };
    let pool = pool(&b.url, false, &cfg);
    // Five requests at once need five connections; two are kept.
    let all = (0..5).map(|_| exchange(&pool, &b.url));
    assert!(futures_util::future::join_all(all).await.iter().all(|p| p == "HTTP/1.1"));
    assert_eq!(b.accepted.load(Ordering::SeqCst), 5);
    assert_eq!(pool.connections().0, 2);
    tokio::time::sleep(Duration::from_millis(400)).await;
    // Older than idle_timeout: not used again.
    exchange(&pool, &b.url).await;
    assert_eq!(b.accepted.load(Ordering::SeqCst), 6);
}

/// A backend that answers one request per connection and closes it without saying so
/// (no `Connection: close`): the pooled connection is dead when it is next used.
#[tokio::test]
async fn a_connection_closed_by_the_backend_is_replaced() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    tokio::spawn(async move {
        for _ in 0..10 {
            let Ok((mut s, _)) = listener.accept().await else { return };
            count.fetch_add(1, Ordering::SeqCst);
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await;
            drop(s);
        }
    });
    let pool = pool(&url, false, &pool_config());
    for _ in 0..3 {
        assert_eq!(exchange(&pool, &url).await, "ok");
        // Let the close arrive, as a backend's keep-alive timeout would between two requests.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
}

#[test]
fn an_announced_keep_alive_timeout_shortens_the_idle_limit() {
    let s = Duration::from_secs;
    assert_eq!(idle_limit(s(90), None), Some(s(90)));
    assert_eq!(idle_limit(s(90), Some(s(5))), Some(s(4)));
    assert_eq!(idle_limit(s(3), Some(s(300))), Some(s(3)));
    assert_eq!(idle_limit(s(90), Some(s(1))), None);
    assert_eq!(idle_limit(s(90), Some(s(0))), None);
}

/// A backend that announces `Keep-Alive: timeout=N` (as Node.js does, 5 s by default) closes
/// idle connections after N s: the pool does not reuse one within a second of that.
#[tokio::test]
async fn a_backends_keep_alive_timeout_is_honoured() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    tokio::spawn(async move {
        for n in 0..10 {
            let Ok((mut s, _)) = listener.accept().await else { return };
            count.fetch_add(1, Ordering::SeqCst);
            // The first connection announces 1 s (too short to reuse), the others 2 s.
            let timeout = if n == 0 { 1 } else { 2 };
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while s.read(&mut buf).await.is_ok_and(|n| n > 0) {
                    let head =
                        format!("HTTP/1.1 200 OK\r\nkeep-alive: timeout={timeout}\r\ncontent-length: 2\r\n\r\nok");
                    if s.write_all(head.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    let pool = pool(&url, false, &pool_config());
    assert_eq!(exchange(&pool, &url).await, "ok");
    assert_eq!(pool.connections(), (0, 0), "1 s leaves no time to reuse it");
    assert_eq!(exchange(&pool, &url).await, "ok");
    assert_eq!(exchange(&pool, &url).await, "ok");
    assert_eq!(accepted.load(Ordering::SeqCst), 2, "2 s: reused at once");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(exchange(&pool, &url).await, "ok");
    assert_eq!(accepted.load(Ordering::SeqCst), 3, "not reused a second before the backend's close");
}

/// Start `n` exchanges at once and wait (bounded) until `n` streams are open on `conns`
/// HTTP/2 connections; the exchanges finish when the backend's gate lets them.
async fn open_all(pool: &Arc<Pool>, url: &str, n: usize, conns: usize) -> Vec<tokio::task::JoinHandle<String>> {
    let all = (0..n)
        .map(|_| {
            let (pool, url) = (Arc::clone(pool), url.to_owned());
            tokio::spawn(async move { exchange(&pool, &url).await })
        })
        .collect();
    for _ in 0..200 {
        if pool.h2_open_streams() == n && pool.connections().1 == conns {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    all
}

#[tokio::test]
async fn h2c_shares_connections_up_to_the_stream_limit() {
    let gate = Arc::new(Semaphore::new(0));
    let b = backend(Some(Arc::clone(&gate))).await;
    let pool = pool(&b.url, true, &pool_config());
    let n = H2_STREAMS_PER_CONN + H2_STREAMS_PER_CONN / 2;
    // Every request is open at the backend at once before any is answered.
    let all = open_all(&pool, &b.url, n, 2).await;
    assert_eq!(pool.h2_open_streams(), n);
    gate.add_permits(n);
    for task in all {
        assert_eq!(task.await.unwrap(), "HTTP/2.0");
    }
    assert_eq!(b.accepted.load(Ordering::SeqCst), 2);
    assert_eq!(pool.opened_h2.get(), 2);
    assert_eq!(pool.h2_open_streams(), 0);
    // Later requests use the open connections.
    gate.add_permits(1);
    exchange(&pool, &b.url).await;
    assert_eq!(b.accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn h2c_opens_another_connection_at_the_backends_stream_limit() {
    let gate = Arc::new(Semaphore::new(0));
    let b = backend_with_streams(Some(Arc::clone(&gate)), 10).await;
    let pool = pool(&b.url, true, &pool_config());
    // The first exchange brings the backend's SETTINGS in before the burst.
    gate.add_permits(1);
    exchange(&pool, &b.url).await;
    let n = 25;
    // All are open at the backend at once, 10 per connection: none waits inside a connection.
    let all = open_all(&pool, &b.url, n, 3).await;
    assert_eq!(pool.connections().1, 3);
    assert_eq!(pool.h2_open_streams(), n);
    gate.add_permits(n);
    for task in all {
        assert_eq!(task.await.unwrap(), "HTTP/2.0");
    }
    assert_eq!(b.accepted.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn refused_connect_is_a_connect_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}/mcp");
    let err = pool(&url, false, &pool_config()).send(post(&url)).await.unwrap_err();
    assert!(err.is_connect(), "{err:?}");
    assert!(matches!(err, PoolError::Connect { .. }), "{err:?}");
}

#[tokio::test]
async fn a_silent_tls_backend_hits_the_connect_timeout() {
    // Accepts TCP, never answers the ClientHello.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let (s, _) = listener.accept().await.unwrap();
        tokio::time::sleep(Duration::from_secs(5)).await;
        drop(s);
    });
    let url = format!("https://{addr}/mcp");
    let cfg = PoolConfig { connect_timeout: Duration::from_millis(200), ..pool_config() };
    let start = std::time::Instant::now();
    let err = pool(&url, false, &cfg).send(post(&url)).await.unwrap_err();
    assert!(matches!(err, PoolError::ConnectTimeout(_)), "{err:?}");
    assert!(err.is_connect());
    assert!(start.elapsed() < Duration::from_secs(2));
    hold.abort();
}

/// `http2: true` towards a backend that does not speak HTTP/2 (it reads, then closes): the
/// error says so at once instead of waiting out `connect_timeout` for SETTINGS.
#[tokio::test]
async fn h2c_to_a_backend_without_http2_fails_fast_with_its_cause() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    tokio::spawn(async move {
        for _ in 0..4 {
            let Ok((mut s, _)) = listener.accept().await else { return };
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
            let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n").await;
        }
    });
    let cfg = PoolConfig { connect_timeout: Duration::from_secs(5), ..pool_config() };
    let start = std::time::Instant::now();
    let err = pool(&url, true, &cfg).send(post(&url)).await.unwrap_err();
    assert!(!matches!(err, PoolError::ConnectTimeout(_)), "{err:?}");
    assert!(err.is_connect(), "{err:?}");
    assert!(start.elapsed() < Duration::from_secs(2), "{:?}", start.elapsed());
}

#[tokio::test]
async fn an_idle_http2_connection_is_let_go_after_idle_timeout() {
    let b = backend(None).await;
    let cfg = PoolConfig { idle_timeout: Duration::from_millis(300), ..pool_config() };
    let pool = pool(&b.url, true, &cfg);
    assert_eq!(exchange(&pool, &b.url).await, "HTTP/2.0");
    assert_eq!(pool.connections(), (0, 1));
    // The reaper runs every max(idle_timeout / 2, 1 s).
    for _ in 0..40 {
        if pool.connections().1 == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(pool.connections(), (0, 0));
    // The next request opens a new connection.
    assert_eq!(exchange(&pool, &b.url).await, "HTTP/2.0");
    assert_eq!(b.accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_busy_http2_connection_is_kept_past_idle_timeout() {
    let gate = Arc::new(Semaphore::new(0));
    let b = backend(Some(Arc::clone(&gate))).await;
    let cfg = PoolConfig { idle_timeout: Duration::from_millis(200), ..pool_config() };
    let pool = pool(&b.url, true, &cfg);
    let open = open_all(&pool, &b.url, 1, 1).await;
    // Two reaper ticks with a stream open the whole time.
    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert_eq!(pool.connections(), (0, 1));
    gate.add_permits(2);
    for task in open {
        assert_eq!(task.await.unwrap(), "HTTP/2.0");
    }
    exchange(&pool, &b.url).await;
    assert_eq!(b.accepted.load(Ordering::SeqCst), 1);
}

#[test]
fn resolved_addresses_alternate_families() {
    let a = |s: &str| s.parse::<SocketAddr>().unwrap();
    let got = interleave_families(vec![a("[::1]:1"), a("[::2]:1"), a("[::3]:1"), a("127.0.0.1:1"), a("127.0.0.2:1")]);
    let want = vec![a("[::1]:1"), a("127.0.0.1:1"), a("[::2]:1"), a("127.0.0.2:1"), a("[::3]:1")];
    assert_eq!(got, want);
    assert_eq!(interleave_families(vec![a("127.0.0.1:1")]), vec![a("127.0.0.1:1")]);
}

/// An address that never answers (SYNs dropped) takes only its share of the deadline; the
/// next one still connects.
#[tokio::test]
async fn a_silent_address_uses_only_its_share_of_connect_timeout() {
    let a = |s: &str| s.parse::<SocketAddr>().unwrap();
    let addrs = [a("[2001:db8::1]:80"), a("127.0.0.1:80")];
    let start = Instant::now();
    let deadline = start + Duration::from_millis(400);
    let got = connect_any(&addrs, deadline, |addr| async move {
        if addr.is_ipv6() {
            std::future::pending::<()>().await;
        }
        Ok(addr)
    })
    .await
    .unwrap();
    assert_eq!(got, addrs[1]);
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(190) && took < Duration::from_millis(390), "{took:?}");
    // All silent: the error names the last address and the share it had.
    let err = connect_any(&addrs, Instant::now() + Duration::from_millis(100), |_| async {
        std::future::pending::<std::io::Result<()>>().await
    })
    .await
    .unwrap_err();
    assert!(matches!(err, PoolError::Connect { addr, .. } if addr == addrs[1]), "{err:?}");
    assert!(err.is_connect());
}

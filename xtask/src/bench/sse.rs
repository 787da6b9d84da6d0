//! Idle SSE streams: open many `GET /mcp` streams of one session through the gateway, wait
//! until each has relayed the backend's first comment, then hold them while the gateway's
//! resident memory is read. The backend keeps GET streams open (keepalive every 15 s).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// Streams being opened at the same time.
const OPENING: usize = 256;
/// Limit for one stream to open and relay its first bytes.
const OPEN_LIMIT: Duration = Duration::from_secs(20);
/// Limit for opening all streams.
const ALL_LIMIT: Duration = Duration::from_secs(180);
/// Pause after the last stream opened before memory is read.
const SETTLE: Duration = Duration::from_secs(2);

/// The first comment of the demo backend's GET stream.
const OPENED: &str = ": stream opened";

/// Memory of the gateway around the streams, in KiB.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SseResult {
    /// Streams held.
    pub streams: u32,
    /// VmRSS before any stream.
    pub rss_before_kib: u64,
    /// VmRSS with all streams open.
    pub rss_open_kib: u64,
}

impl SseResult {
    /// Resident bytes per stream.
    pub fn bytes_per_stream(&self) -> f64 {
        if self.streams == 0 {
            return 0.0;
        }
        self.rss_open_kib.saturating_sub(self.rss_before_kib) as f64 * 1024.0 / f64::from(self.streams)
    }
}

/// Open `count` streams to `addr` with `session`, then call `measure` (the gateway's RSS in
/// KiB) while they are held; `before` is the RSS read before opening.
pub fn hold(
    addr: SocketAddr,
    session: &str,
    count: u32,
    measure: impl Fn() -> anyhow::Result<u64>,
) -> anyhow::Result<SseResult> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let rss_before_kib = measure()?;
    let request = Arc::new(get_request(addr, session));
    let streams = runtime.block_on(async {
        tokio::time::timeout(ALL_LIMIT, open_all(addr, request, count))
            .await
            .with_context(|| format!("opening {count} SSE streams took over {ALL_LIMIT:?}"))?
    })?;
    runtime.block_on(async { tokio::time::sleep(SETTLE).await });
    let rss_open_kib = measure()?;
    drop(streams);
    Ok(SseResult { streams: count, rss_before_kib, rss_open_kib })
}

/// The raw `GET /mcp` request of one stream.
pub fn get_request(addr: SocketAddr, session: &str) -> String {
    format!(
        "GET /mcp HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\nMcp-Session-Id: {session}\r\n\
         Mcp-Protocol-Version: 2025-06-18\r\n\r\n"
    )
}

async fn open_all(addr: SocketAddr, request: Arc<String>, count: u32) -> anyhow::Result<Vec<TcpStream>> {
    let permits = Arc::new(Semaphore::new(OPENING));
    let mut tasks = JoinSet::new();
    for _ in 0..count {
        let permit = Arc::clone(&permits).acquire_owned().await?;
        let request = Arc::clone(&request);
        tasks.spawn(async move {
            let opened = tokio::time::timeout(OPEN_LIMIT, open(addr, &request)).await;
            drop(permit);
            opened.with_context(|| format!("an SSE stream did not open within {OPEN_LIMIT:?}"))?
        });
    }
    let mut streams = Vec::with_capacity(count as usize);
    while let Some(joined) = tasks.join_next().await {
        streams.push(joined??);
    }
    Ok(streams)
}

async fn open(addr: SocketAddr, request: &str) -> anyhow::Result<TcpStream> {
    let mut stream = TcpStream::connect(addr).await.context("connecting")?;
    stream.write_all(request.as_bytes()).await?;
    let mut seen = Vec::with_capacity(1024);
    let mut buf = [0_u8; 1024];
    while seen.len() < 16 * 1024 {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            bail!("SSE stream closed before it opened: {}", String::from_utf8_lossy(&seen));
        }
        seen.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&seen);
        if text.contains("\r\n\r\n") && !text.starts_with("HTTP/1.1 200") {
            bail!("SSE GET was refused: {}", text.lines().next().unwrap_or_default());
        }
        if text.contains(OPENED) {
            return Ok(stream);
        }
    }
    bail!("no `{OPENED}` in the first 16 KiB of an SSE stream")
}

#[cfg(test)]
mod tests {
    use tokio::net::TcpListener;

    use super::*;

    #[test]
    fn per_stream_bytes() {
        let r = SseResult { streams: 1000, rss_before_kib: 8000, rss_open_kib: 12000 };
        assert!((r.bytes_per_stream() - 4096.0).abs() < 1e-9);
        assert_eq!(SseResult::default().bytes_per_stream(), 0.0);
    }

    /// A fake SSE server: answers `status` and, for 200, the opened comment.
    async fn serve(listener: TcpListener, status: &'static str) {
        loop {
            let Ok((mut s, _)) = listener.accept().await else { return };
            tokio::spawn(async move {
                let mut buf = [0_u8; 1024];
                let _ = s.read(&mut buf).await;
                let body = format!("HTTP/1.1 {status}\r\ncontent-type: text/event-stream\r\n\r\n: stream opened\n\n");
                let _ = s.write_all(body.as_bytes()).await;
                tokio::time::sleep(Duration::from_secs(5)).await;
            });
        }
    }

    #[test]
    fn holds_streams_and_reports_refusals() {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let ok = runtime.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        let bad = runtime.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        let (ok_addr, bad_addr) = (ok.local_addr().unwrap(), bad.local_addr().unwrap());
        runtime.spawn(serve(ok, "200 OK"));
        runtime.spawn(serve(bad, "404 Not Found"));
        let result = hold(ok_addr, "s", 20, || Ok(100)).unwrap();
        assert_eq!(result.streams, 20);
        let err = hold(bad_addr, "s", 3, || Ok(100)).unwrap_err();
        assert!(format!("{err:#}").contains("404"), "{err:#}");
    }
}

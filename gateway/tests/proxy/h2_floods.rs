//! HTTP/2 flood protection on the h2c data listener, with raw frames over a
//! TcpStream (the `h2` client would not misbehave on purpose):
//! - rapid reset (CVE-2023-44487): HEADERS then RST_STREAM, stream after
//!   stream, must end in GOAWAY(ENHANCE_YOUR_CALM) after a bounded number of
//!   streams (`security.limits.h2_max_pending_resets`);
//! - CONTINUATION flood (CVE-2024-27316 family): a HEADERS frame without
//!   END_HEADERS and CONTINUATION frames past the header-list limit must end
//!   in GOAWAY quickly, without the gateway buffering the flood;
//!
//! and after each, the gateway still answers a normal HTTP/2 request.

use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedReadHalf;

use crate::auth_backend::TinyBackend;
use crate::auth_support::start;
use crate::common::rpc::{initialize, post, response_message};
use crate::common::{Gw, KeyFile, Setup, bounded, key};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const GOAWAY: u8 = 0x7;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const ENHANCE_YOUR_CALM: u32 = 0xb;

/// One frame: 3-byte length, type, flags, 4-byte stream id, payload.
fn frame(out: &mut Vec<u8>, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
    let len = u32::try_from(payload.len()).unwrap();
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.extend_from_slice(&[kind, flags]);
    out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    out.extend_from_slice(payload);
}

/// An HPACK block for `GET /` (static-table indexes, no dynamic-table changes).
fn get_root() -> Vec<u8> {
    // :method GET, :scheme http, :path /, then :authority "localhost" as a literal without indexing.
    let mut block = vec![0x82, 0x86, 0x84, 0x01, 0x09];
    block.extend_from_slice(b"localhost");
    block
}

/// The client preface and an empty SETTINGS frame.
fn preface() -> Vec<u8> {
    let mut out = PREFACE.to_vec();
    frame(&mut out, SETTINGS, 0, 0, &[]);
    out
}

/// What the server's GOAWAY said: (last stream id, error code, debug data).
type GoAway = (u32, u32, String);

/// Read frames until GOAWAY or end of connection (at most `limit`); `None` if the connection
/// closed (or was reset) without one.
async fn read_goaway(sock: &mut OwnedReadHalf, limit: Duration) -> Option<GoAway> {
    let deadline = Instant::now() + limit;
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        while buf.len() >= 9 {
            let len = usize::try_from(u32::from_be_bytes([0, buf[0], buf[1], buf[2]])).unwrap();
            if buf.len() < 9 + len {
                break;
            }
            let (kind, payload) = (buf[3], buf[9..9 + len].to_vec());
            buf.drain(..9 + len);
            if kind == GOAWAY && payload.len() >= 8 {
                let last = u32::from_be_bytes(payload[..4].try_into().unwrap()) & 0x7fff_ffff;
                let code = u32::from_be_bytes(payload[4..8].try_into().unwrap());
                return Some((last, code, String::from_utf8_lossy(&payload[8..]).into_owned()));
            }
        }
        let left = deadline.checked_duration_since(Instant::now()).expect("no GOAWAY or close in time");
        match tokio::time::timeout(left, sock.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return None,
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            Err(_) => panic!("the server neither sent GOAWAY nor closed within {limit:?}"),
        }
    }
}

/// A gateway (with `extra` top-level YAML) in front of a tiny backend.
async fn gateway(extra: &str) -> (Gw, TinyBackend) {
    let backend = TinyBackend::plain(false).await;
    let keys = KeyFile::new(&[key(93)]);
    let gw = start(&Setup::new(&keys).backend("a", &format!("http://{}/mcp", backend.addr)), extra).await;
    (gw, backend)
}

/// A normal HTTP/2 (prior knowledge) request through the gateway.
async fn still_serves(gw: &Gw) {
    let c = reqwest::Client::builder().no_proxy().http2_prior_knowledge().timeout(Duration::from_secs(10)).build();
    let resp = post(&c.unwrap(), &gw.mcp, &initialize(), None).send().await.unwrap();
    assert_eq!(resp.version(), http::Version::HTTP_2);
    assert_eq!(resp.status(), 200);
    assert_eq!(response_message(resp).await["result"]["serverInfo"], json!({"name": "tiny", "version": "1"}));
}

/// Send `preface()` + `chunks` (concurrently with reading) until the server answers:
/// (its GOAWAY, or `None` if the connection just closed or was reset; bytes written).
async fn flood(gw: &Gw, chunks: Vec<Vec<u8>>) -> (Option<GoAway>, usize) {
    let sock = TcpStream::connect(gw.running.data_addr()).await.unwrap();
    let (mut reader, mut writer) = sock.into_split();
    let writing = tokio::spawn(async move {
        let mut sent = 0;
        writer.write_all(&preface()).await.unwrap();
        for chunk in chunks {
            // The server may close mid-write: what matters is what it answers.
            match tokio::time::timeout(Duration::from_secs(5), writer.write_all(&chunk)).await {
                Ok(Ok(())) => sent += chunk.len(),
                Ok(Err(_)) => break,
                Err(_) => panic!("the server stopped reading without closing after {sent} bytes"),
            }
        }
        sent
    });
    let goaway = read_goaway(&mut reader, Duration::from_secs(10)).await;
    let sent = tokio::time::timeout(Duration::from_secs(10), writing).await.unwrap().unwrap();
    (goaway, sent)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rapid_reset_ends_the_connection_with_goaway() {
    bounded(async {
        let (gw, _backend) = gateway("security:\n  limits:\n    h2_max_pending_resets: 5\n").await;
        const STREAMS: u32 = 1000;
        let block = get_root();
        let mut out = Vec::new();
        for i in 0..STREAMS {
            let id = 2 * i + 1;
            frame(&mut out, HEADERS, END_HEADERS | END_STREAM, id, &block);
            frame(&mut out, RST_STREAM, 0, id, &8u32.to_be_bytes()); // CANCEL
        }
        let started = Instant::now();
        let (goaway, _) = flood(&gw, vec![out]).await;
        let (last, code, debug) = goaway.expect("closed without GOAWAY");
        assert_eq!(code, ENHANCE_YOUR_CALM, "GOAWAY code (debug data {debug:?})");
        assert_eq!(debug, "too_many_resets");
        // With h2_max_pending_resets: 5 the sixth reset ends it (stream 11); allow a little slack.
        assert!(last < 2 * 10, "GOAWAY only after stream {last}");
        assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
        still_serves(&gw).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continuation_flood_ends_the_connection_quickly() {
    bounded(async {
        let (gw, _backend) = gateway("").await;
        let mut head = Vec::new();
        frame(&mut head, HEADERS, END_STREAM, 1, &get_root());
        // Then 16 KiB CONTINUATION frames, never END_HEADERS, of one endless literal header
        // name: 64 MiB if the server kept reading.
        let mut filler = vec![0x00, 0x7f, 0xff, 0xff, 0xff, 0x07];
        filler.resize(16 * 1024, b'a');
        let mut continuation = Vec::new();
        frame(&mut continuation, CONTINUATION, 0, 1, &filler);
        let chunks: Vec<Vec<u8>> = std::iter::once(head).chain(std::iter::repeat_n(continuation, 4096)).collect();
        let started = Instant::now();
        let (goaway, sent) = flood(&gw, chunks).await;
        if let Some((_, code, debug)) = goaway {
            assert_eq!(code, ENHANCE_YOUR_CALM, "GOAWAY code (debug data {debug:?})");
            assert_eq!(debug, "too_many_continuations");
        }
        // Closed (GOAWAY, else a reset) long before the flood was through: the server stopped
        // reading after about max_header_list_size; the rest sat in socket buffers at most.
        assert!(sent < 16 * 1024 * 1024, "the server kept reading: {sent} bytes written");
        assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
        still_serves(&gw).await;
    })
    .await;
}

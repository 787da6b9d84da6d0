use std::time::Duration;

use http_body_util::Full;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

use http::{HeaderMap, HeaderValue, StatusCode};

use super::*;

/// What a scripted backend does after reading one request.
enum Step {
    Write(&'static [u8]),
    Pause,
}

/// A backend on loopback that reads one request (head and `Content-Length` body), sends it
/// back on the returned channel, then plays `script` and closes if `close`.
async fn backend(script: Vec<Step>, close: bool) -> (Conn, tokio::sync::oneshot::Receiver<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let request = read_request(&mut s).await;
        let _ = tx.send(request);
        for step in script {
            match step {
                Step::Write(b) => s.write_all(b).await.unwrap(),
                Step::Pause => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
        if close {
            drop(s);
        } else {
            // Hold the connection open until the test is over.
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
    });
    let tcp = TcpStream::connect(addr).await.unwrap();
    (Conn::new(Io::Plain(tcp)), rx)
}

async fn read_request(s: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 65536];
    for _ in 0..100 {
        let n = s.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&got[..end]).to_lowercase();
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .map_or(0, |v| v.trim().parse::<usize>().unwrap());
            if got.len() >= end + 4 + len {
                break;
            }
        }
    }
    got
}

fn post(body: &'static [u8]) -> Request<UpstreamBody> {
    Request::post("http://backend.test:8080/mcp?x=1")
        .header("content-type", "application/json")
        .header("content-length", "999")
        .header("transfer-encoding", "chunked")
        .body(Full::new(Bytes::from_static(body)))
        .unwrap()
}

fn get() -> Request<UpstreamBody> {
    Request::get("http://backend.test/mcp").body(Full::new(Bytes::new())).unwrap()
}

/// The whole body, or the first error.
async fn read_body(conn: &mut Conn, dec: &mut Decoder) -> Result<Vec<u8>, H1Error> {
    let mut out = Vec::new();
    loop {
        match std::future::poll_fn(|cx| conn.poll_body(dec, cx)).await {
            Some(Ok(data)) => out.extend_from_slice(&data),
            Some(Err(e)) => return Err(e),
            None => return Ok(out),
        }
    }
}

async fn run(req: Request<UpstreamBody>, script: Vec<Step>, close: bool) -> (Result<(Head, Vec<u8>), H1Error>, Conn) {
    let (mut conn, _) = backend(script, close).await;
    let wire = encode(&req, "backend.test");
    let out = match conn.send(&wire).await {
        Ok(mut head) => read_body(&mut conn, &mut head.body).await.map(|b| (head, b)),
        Err(e) => Err(e.error),
    };
    (out, conn)
}

#[tokio::test]
async fn the_request_goes_out_in_origin_form_with_its_length() {
    let (mut conn, request) = backend(vec![Step::Write(b"HTTP/1.1 204 No Content\r\n\r\n")], false).await;
    let head = conn.send(&encode(&post(b"{\"a\":1}"), "backend.test")).await.unwrap();
    assert_eq!(head.response.status(), 204);
    assert!(head.body.is_done() && head.body.keep_alive);
    let sent = String::from_utf8(request.await.unwrap()).unwrap();
    assert_eq!(
        sent,
        "POST /mcp?x=1 HTTP/1.1\r\nhost: backend.test\r\ncontent-type: application/json\r\ncontent-length: 7\r\n\r\n{\"a\":1}"
    );
    assert!(conn.is_reusable());
}

#[tokio::test]
async fn a_large_body_and_an_existing_host_go_out_unchanged() {
    static BIG: [u8; 40_000] = [b'x'; 40_000];
    let (mut conn, request) = backend(vec![Step::Write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")], false).await;
    let mut req = post(&BIG);
    req.headers_mut().insert(header::HOST, HeaderValue::from_static("named.example"));
    conn.send(&encode(&req, "backend.test")).await.unwrap();
    let sent = request.await.unwrap();
    let head_end = sent.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let head = String::from_utf8_lossy(&sent[..head_end]);
    assert!(head.contains("host: named.example\r\n") && !head.contains("backend.test"), "{head}");
    assert!(head.contains("content-length: 40000\r\n"), "{head}");
    assert_eq!(&sent[head_end..], &BIG[..]);
}

#[tokio::test]
async fn a_get_without_body_has_no_content_length() {
    let (mut conn, request) =
        backend(vec![Step::Write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")], false).await;
    conn.send(&encode(&get(), "backend.test")).await.unwrap();
    assert_eq!(request.await.unwrap(), b"GET /mcp HTTP/1.1\r\nhost: backend.test\r\n\r\n");
}

#[tokio::test]
async fn a_content_length_body_split_across_reads() {
    let script = vec![
        Step::Write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\nhel"),
        Step::Pause,
        Step::Write(b"lo wo"),
        Step::Pause,
        Step::Write(b"rld"),
    ];
    let (out, mut conn) = run(post(b"{}"), script, false).await;
    let (head, body) = out.unwrap();
    assert_eq!(body, b"hello world");
    assert_eq!(head.response.headers()["content-type"], "application/json");
    assert!(head.body.keep_alive && conn.is_clean() && conn.is_reusable());
}

#[tokio::test]
async fn a_chunked_body_with_extensions_and_trailers() {
    let script = vec![
        Step::Write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5;name=value\r\nhello\r\n"),
        Step::Pause,
        Step::Write(b"1"),
        Step::Pause,
        Step::Write(b"1 \r\n, this is sixteen\r\n0\r\nx-trailer: 1\r\n"),
        Step::Pause,
        Step::Write(b"\r\n"),
    ];
    let (out, conn) = run(get(), script, false).await;
    let (head, body) = out.unwrap();
    assert_eq!(String::from_utf8(body).unwrap(), "hello, this is sixteen");
    assert!(head.body.keep_alive && conn.is_clean());
}

#[tokio::test]
async fn interim_responses_are_skipped() {
    let script = vec![
        Step::Write(b"HTTP/1.1 100 Continue\r\n\r\n"),
        Step::Pause,
        Step::Write(b"HTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"),
    ];
    let (out, _) = run(post(b"{}"), script, false).await;
    let (head, body) = out.unwrap();
    assert_eq!((head.response.status(), body.as_slice()), (StatusCode::OK, &b"ok"[..]));
    assert!(!head.response.headers().contains_key("link"));
}

#[tokio::test]
async fn a_body_without_length_runs_to_the_close_and_ends_the_connection() {
    let script = vec![
        Step::Write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\ndata: 1\n\n"),
        Step::Pause,
        Step::Write(b"data: 2\n\n"),
    ];
    let (out, _) = run(get(), script, true).await;
    let (head, body) = out.unwrap();
    assert_eq!(body, b"data: 1\n\ndata: 2\n\n");
    assert!(!head.body.keep_alive);
}

#[tokio::test]
async fn framing_errors_name_their_cause() {
    let cases: [(&'static [u8], &str); 8] = [
        (b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\ncontent-length: 4\r\n\r\nabcd", "invalid Content-Length"),
        (b"HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n", "invalid Content-Length"),
        (b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nab", "with part of the body missing"),
        (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nab", "inside a chunked body"),
        (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n", "no chunk size"),
        (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nabX\r\n", "no CRLF after the chunk data"),
        (b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n\r\n", "101 Switching Protocols"),
        (b"HTTP/1.1 200 OK\r\nbad header\r\n\r\n", "malformed response head"),
    ];
    for (response, want) in cases {
        let (out, _) = run(get(), vec![Step::Write(response)], true).await;
        let err = out.unwrap_err().to_string();
        assert!(err.contains(want), "{:?}: {err}", String::from_utf8_lossy(response));
    }
}

#[tokio::test]
async fn both_framings_use_chunked_and_never_reuse_the_connection() {
    let script = vec![Step::Write(
        b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
    )];
    let (out, _) = run(get(), script, false).await;
    let (head, body) = out.unwrap();
    assert_eq!(body, b"ok");
    assert!(!head.body.keep_alive);
    // Transfer-Encoding overrides it; passed on, it would contradict the de-chunked body.
    assert!(!head.response.headers().contains_key(header::CONTENT_LENGTH));
}

#[tokio::test]
async fn connection_close_and_http10_are_not_kept() {
    for (response, keep) in [
        (&b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 0\r\n\r\n"[..], false),
        (b"HTTP/1.0 200 OK\r\ncontent-length: 0\r\n\r\n", false),
        (b"HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ncontent-length: 0\r\n\r\n", true),
        (b"HTTP/1.1 200 OK\r\nconnection: keep-alive, Upgrade\r\ncontent-length: 0\r\n\r\n", true),
    ] {
        let (mut conn, _) = backend(vec![], false).await;
        let mut buf = BytesMut::from(response);
        let head = parse_head(&mut buf, &Method::GET).unwrap().unwrap();
        assert_eq!(head.body.keep_alive, keep, "{}", String::from_utf8_lossy(response));
        assert!(buf.is_empty());
        assert!(conn.is_reusable());
    }
}

#[test]
fn an_announced_keep_alive_timeout_is_read() {
    let secs = |n| Some(Duration::from_secs(n));
    for (response, limit) in [
        (&b"HTTP/1.1 200 OK\r\nkeep-alive: timeout=5\r\ncontent-length: 0\r\n\r\n"[..], secs(5)),
        (b"HTTP/1.1 200 OK\r\nKeep-Alive: max=100, Timeout = 15\r\ncontent-length: 0\r\n\r\n", secs(15)),
        (b"HTTP/1.1 200 OK\r\nkeep-alive: timeout=\"2\"\r\ncontent-length: 0\r\n\r\n", secs(2)),
        (b"HTTP/1.1 200 OK\r\nkeep-alive: timeout=-1\r\ncontent-length: 0\r\n\r\n", None),
        (b"HTTP/1.1 200 OK\r\nkeep-alive: max=5\r\ncontent-length: 0\r\n\r\n", None),
        (b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n", None),
        // Not kept anyway: the announcement does not matter.
        (b"HTTP/1.1 200 OK\r\nconnection: close\r\nkeep-alive: timeout=5\r\ncontent-length: 0\r\n\r\n", None),
    ] {
        let mut buf = BytesMut::from(response);
        let head = parse_head(&mut buf, &Method::POST).unwrap().unwrap();
        assert_eq!(head.body.idle_limit, limit, "{}", String::from_utf8_lossy(response));
    }
}

#[tokio::test]
async fn no_body_after_head_204_and_304() {
    let cases: [(Method, &'static [u8]); 3] = [
        (Method::HEAD, b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n"),
        (Method::GET, b"HTTP/1.1 204 No Content\r\ncontent-length: 100\r\n\r\n"),
        (Method::GET, b"HTTP/1.1 304 Not Modified\r\ntransfer-encoding: chunked\r\n\r\n"),
    ];
    for (method, response) in cases {
        let mut buf = BytesMut::from(response);
        let head = parse_head(&mut buf, &method).unwrap().unwrap();
        assert!(head.body.is_done() && head.body.keep_alive, "{method} {}", String::from_utf8_lossy(response));
    }
}

#[test]
fn oversized_and_crowded_heads_are_refused() {
    let mut big = b"HTTP/1.1 200 OK\r\nx: ".to_vec();
    big.resize(MAX_HEAD + 10, b'a');
    let err = parse_head(&mut BytesMut::from(&big[..]), &Method::GET).err().unwrap();
    assert!(matches!(err, H1Error::HeadTooLarge), "{err}");
    let mut crowded = b"HTTP/1.1 200 OK\r\n".to_vec();
    for i in 0..=MAX_HEADERS {
        crowded.extend_from_slice(format!("x-{i}: 1\r\n").as_bytes());
    }
    crowded.extend_from_slice(b"\r\n");
    let err = parse_head(&mut BytesMut::from(&crowded[..]), &Method::GET).err().unwrap();
    assert!(err.to_string().contains("more than 100 header fields"), "{err}");
    // Incomplete but small: wait for more.
    assert!(parse_head(&mut BytesMut::from(&b"HTTP/1.1 200 OK\r\nx: 1\r\n"[..]), &Method::GET).unwrap().is_none());
}

#[test]
fn chunk_sizes() {
    assert_eq!(chunk_size(b"1aF").unwrap(), 0x1af);
    assert_eq!(chunk_size(b"10 ; a=b").unwrap(), 16);
    assert_eq!(chunk_size(b"0").unwrap(), 0);
    for bad in [&b""[..], b"x", b"1 x", b"1000000000000000"] {
        assert!(chunk_size(bad).is_err(), "{}", String::from_utf8_lossy(bad));
    }
    assert!(matches!(line(b"abc\n"), Err(H1Error::BadChunk(_))));
    assert_eq!(line(b"ab\r\ncd").unwrap(), Some(4));
    assert_eq!(line(b"ab").unwrap(), None);
    assert!(line(&[b'1'; MAX_LINE + 1]).is_err());
}

#[test]
fn equal_content_lengths_are_one() {
    let mut h = HeaderMap::new();
    h.append(header::CONTENT_LENGTH, HeaderValue::from_static("5, 5"));
    h.append(header::CONTENT_LENGTH, HeaderValue::from_static("5"));
    assert_eq!(content_length(&h).unwrap(), Some(5));
    h.append(header::CONTENT_LENGTH, HeaderValue::from_static("6"));
    assert!(content_length(&h).is_err());
}

#[tokio::test]
async fn a_closed_idle_connection_is_not_reusable() {
    let (mut conn, _) = backend(vec![Step::Write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")], true).await;
    let head = conn.send(&encode(&get(), "b")).await.unwrap();
    assert!(head.body.is_done());
    // The backend's FIN arrives while the connection is idle.
    let mut reusable = true;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        reusable = conn.is_reusable();
        if !reusable {
            break;
        }
    }
    assert!(!reusable);
}

#[tokio::test]
async fn a_close_before_any_answer_may_be_retried_only_for_idempotent_requests() {
    for (req, unsent) in [(get(), true), (post(b"{}"), false)] {
        let (mut conn, _) = backend(vec![], true).await;
        let err = conn.send(&encode(&req, "b")).await.unwrap_err();
        assert!(matches!(err.error, H1Error::ClosedBeforeHead(0)), "{:?}", err.error);
        assert_eq!(err.unsent, unsent, "{}", req.method());
    }
}

#[tokio::test]
async fn bytes_after_the_response_make_the_connection_unclean() {
    let script = vec![Step::Write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n")];
    let (out, conn) = run(get(), script, false).await;
    assert_eq!(out.unwrap().1, b"ok");
    assert!(!conn.is_clean());
}

/// The same bytes give the same answer however they are split across reads.
#[test]
fn reading_does_not_depend_on_how_the_bytes_arrive() {
    let responses: [&[u8]; 6] = [
        b"HTTP/1.1 200 OK\r\ncontent-length: 11\r\n\r\nhello world",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n6\r\n world\r\n0\r\nt: 1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\ndata: 1\n\ndata: 2\n\n",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhel",
        b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhel",
        b"HTTP/1.1 204 No Content\r\n\r\n",
    ];
    for bytes in responses {
        let whole = read_response(bytes, &Method::GET, &[255]).map(|(r, b)| (r.status(), b)).map_err(|e| e.to_string());
        for pieces in [&[1u8][..], &[2, 7], &[3, 1, 13]] {
            let split =
                read_response(bytes, &Method::GET, pieces).map(|(r, b)| (r.status(), b)).map_err(|e| e.to_string());
            assert_eq!(whole, split, "{:?} in pieces {pieces:?}", String::from_utf8_lossy(bytes));
        }
    }
    let (resp, body) = read_response(responses[1], &Method::GET, &[4]).unwrap();
    assert_eq!((resp.status(), body.as_slice()), (StatusCode::OK, &b"hello world"[..]));
    assert!(read_response(responses[3], &Method::GET, &[4]).is_err());
}

/// A long body trickling in holds no read reservation between its pieces.
#[tokio::test]
async fn a_slow_long_body_holds_no_buffer_while_waiting() {
    let script = vec![Step::Write(b"HTTP/1.1 200 OK\r\ncontent-length: 1000000\r\n\r\n0123456789")];
    let (mut conn, _) = backend(script, false).await;
    let mut head = conn.send(&encode(&get(), "b")).await.unwrap();
    let first = std::future::poll_fn(|cx| conn.poll_body(&mut head.body, cx)).await.unwrap().unwrap();
    assert_eq!(&first[..], b"0123456789");
    let mut cx = Context::from_waker(Waker::noop());
    assert!(conn.poll_body(&mut head.body, &mut cx).is_pending());
    assert_eq!(conn.buf.capacity(), 0);
}

/// Many closed idle connections checked in one go, as a checkout or the reaper does: tokio's
/// per-task I/O budget must not make the late ones look alive.
#[tokio::test]
async fn the_liveness_probe_ignores_the_io_budget() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let n = 200;
    let server = tokio::spawn(async move {
        let mut held = Vec::new();
        for _ in 0..n {
            held.push(listener.accept().await.unwrap().0);
        }
        drop(held);
    });
    let mut conns = Vec::new();
    for _ in 0..n {
        conns.push(Conn::new(Io::Plain(TcpStream::connect(addr).await.unwrap())));
    }
    server.await.unwrap();
    // Let every FIN arrive and be seen by the I/O driver.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let alive = conns.iter_mut().map(Conn::is_reusable).filter(|&alive| alive).count();
    assert_eq!(alive, 0);
}

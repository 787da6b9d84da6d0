use super::*;

fn boundary_after(chunks: &[&[u8]]) -> bool {
    let mut b = Boundary::default();
    for c in chunks {
        b.push(c);
    }
    b.at_boundary()
}

#[test]
fn boundary_detection() {
    assert!(boundary_after(&[]));
    assert!(boundary_after(&[b"data: x\n\n"]));
    assert!(boundary_after(&[b"data: x\r\n\r\n"]));
    assert!(boundary_after(&[b"data: x\r\r"]));
    assert!(boundary_after(&[b"data: x\n", b"\n"]));
    assert!(boundary_after(&[b"data: x\r\n", b"\r", b"\n"]));
    assert!(!boundary_after(&[b"data: x\n"]));
    assert!(!boundary_after(&[b"data: x\r\n"]));
    assert!(!boundary_after(&[b"data: x"]));
    assert!(!boundary_after(&[b"data: x\n\n", b"data: y"]));
    assert!(boundary_after(&[b": keepalive\n\n"]));
}

#[test]
fn event_end_finds_blank_lines() {
    assert_eq!(event_end(b"event: a\ndata: b\n\nrest"), Some(18));
    assert_eq!(event_end(b"event: a\r\ndata: b\r\n\r\nrest"), Some(21));
    assert_eq!(event_end(b"data: b\n"), None);
    assert_eq!(event_end(b"data: b\r"), None);
    // A trailing lone CR may be the first half of CRLF: wait for the next byte.
    assert_eq!(event_end(b"data: b\r\r"), None);
    assert_eq!(event_end(b"data: b\r\rx"), Some(9));
}

fn mapper() -> EndpointMapper {
    Box::new(|data: &str| Some(format!("/messages?session_id=TOKEN({data})")))
}

#[test]
fn rewrites_only_the_endpoint_event() {
    let mut rw = Rewriter { map: mapper(), buf: BytesMut::new() };
    let (out, done) = rw.push(b": hello\n\nevent: endpoint\r\ndata: /messages/?session_id=abc\r\n\r\ndata: later\n\n");
    assert!(done);
    assert_eq!(
        std::str::from_utf8(&out).unwrap(),
        ": hello\n\nevent: endpoint\ndata: /messages?session_id=TOKEN(/messages/?session_id=abc)\n\ndata: later\n\n"
    );
}

#[test]
fn rewriter_waits_for_a_whole_event() {
    let mut rw = Rewriter { map: mapper(), buf: BytesMut::new() };
    let (out, done) = rw.push(b"event: endpoint\ndata: /m?s");
    assert!(out.is_empty() && !done);
    let (out, done) = rw.push(b"=1\n\n");
    assert!(done);
    assert_eq!(&out[..], b"event: endpoint\ndata: /messages?session_id=TOKEN(/m?s=1)\n\n");
}

#[test]
fn rewriter_gives_up_on_huge_prefix() {
    let mut rw = Rewriter { map: mapper(), buf: BytesMut::new() };
    let big = vec![b'x'; MAX_REWRITE_BUFFER + 1];
    let (out, done) = rw.push(&big);
    assert!(done);
    assert_eq!(out.len(), big.len());
}

mod body {
    use super::*;
    use http_body_util::{BodyExt, StreamBody};
    use prometheus::{IntCounter, IntGauge};

    type Chunks = StreamBody<futures_util::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, BoxError>>>>;

    fn stream_of(chunks: &[&'static [u8]]) -> Chunks {
        let frames: Vec<Result<Frame<Bytes>, BoxError>> =
            chunks.iter().map(|c| Ok(Frame::data(Bytes::from_static(c)))).collect();
        StreamBody::new(futures_util::stream::iter(frames))
    }

    #[tokio::test]
    async fn passes_bytes_through_unchanged() {
        let counter = IntCounter::new("k", "k").unwrap();
        let gauge = IntGauge::new("g", "g").unwrap();
        let body = SseStream::new(
            stream_of(&[b"id: 1\nretry: 500\ndata: {\"a\":1}\n\n", b"id: 2\ndata: x\n\n"]),
            Duration::from_secs(30),
            None,
            None,
            counter,
            StreamGauge::new(gauge.clone()),
        );
        assert_eq!(gauge.get(), 1);
        let all = body.collect().await.unwrap().to_bytes();
        assert_eq!(&all[..], b"id: 1\nretry: 500\ndata: {\"a\":1}\n\nid: 2\ndata: x\n\n");
        assert_eq!(gauge.get(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn keepalive_only_at_boundaries() {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, BoxError>>(4);
        let inner = StreamBody::new(Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        })));
        let counter = IntCounter::new("k2", "k").unwrap();
        let mut body = SseStream::new(
            inner,
            Duration::from_secs(10),
            None,
            None,
            counter.clone(),
            StreamGauge::new(IntGauge::new("g2", "g").unwrap()),
        );
        tx.send(Ok(Frame::data(Bytes::from_static(b"data: part")))).await.unwrap();
        let f = body.frame().await.unwrap().unwrap();
        assert_eq!(f.into_data().unwrap(), Bytes::from_static(b"data: part"));
        // Mid-event: 25 s of silence produce no keepalive.
        let waited = tokio::time::timeout(Duration::from_secs(25), body.frame()).await;
        assert!(waited.is_err());
        assert_eq!(counter.get(), 0);
        tx.send(Ok(Frame::data(Bytes::from_static(b"\n\n")))).await.unwrap();
        let f = body.frame().await.unwrap().unwrap();
        assert_eq!(f.into_data().unwrap(), Bytes::from_static(b"\n\n"));
        // At a boundary: the next idle interval yields a keepalive comment.
        let f = tokio::time::timeout(Duration::from_secs(11), body.frame()).await.unwrap().unwrap().unwrap();
        assert_eq!(f.into_data().unwrap(), Bytes::from_static(KEEPALIVE));
        assert_eq!(counter.get(), 1);
    }
}

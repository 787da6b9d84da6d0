//! Streaming through the gateway: SSE events byte for byte (ids included),
//! large bodies, progress events as they happen, GET streams with gateway
//! keepalives, `Last-Event-ID`, and client disconnects that must not cancel
//! the backend's work.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use crate::common::process::{Demo, Pipe};
use crate::common::rpc::{
    call, client, content_type, get_stream, open_session, post, response_message, sse_events, take_events, tool_text,
    whoami,
};
use crate::common::{KeyFile, Setup, bounded, key};

/// The demo's `large` payload: "0123456789abcdef" repeated.
fn is_pattern(text: &str) -> bool {
    text.bytes().enumerate().all(|(i, b)| b == b"0123456789abcdef"[i % 16])
}

/// Echo "hi" at `url` in session `sid`: (event id, message, raw body) of the single SSE event.
async fn echo_event(c: &reqwest::Client, url: &str, sid: &str, id: u64) -> (u64, Value, String) {
    let resp = post(c, url, &call(id, "echo", json!({"text": "hi"})), Some(sid)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(content_type(&resp).starts_with("text/event-stream"), "{}", content_type(&resp));
    let raw = resp.text().await.unwrap();
    let events = sse_events(&raw);
    assert_eq!(events.len(), 1, "{raw}");
    let ev = &events[0];
    assert_eq!(ev.event.as_deref(), Some("message"));
    let event_id = ev.id.as_deref().expect("event without id").parse().unwrap();
    (event_id, serde_json::from_str(ev.data.as_deref().unwrap()).unwrap(), raw)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_events_pass_with_their_ids() {
    bounded(async {
        let demo = Demo::spawn(&["--mode", "sse", "--name", "a"], &[]).await;
        let keys = KeyFile::new(&[key(30)]);
        let gw = Setup::new(&keys).backend("a", &demo.url).start().await;
        let c = client();
        let sid = open_session(&c, &gw.mcp).await;
        let backend_sid = whoami(&c, &gw.mcp, Some(&sid)).await["session"].as_str().unwrap().to_owned();
        // The demo numbers events process-wide, so direct / gateway / direct must be n, n+1, n+2.
        let (n, _, _) = echo_event(&c, &demo.url, &backend_sid, 1).await;
        let (m, msg, raw) = echo_event(&c, &gw.mcp, &sid, 2).await;
        let (k, _, _) = echo_event(&c, &demo.url, &backend_sid, 3).await;
        assert_eq!((m, k), (n + 1, n + 2), "event ids were rewritten or events were added");
        assert_eq!(msg["id"], 2);
        assert_eq!(tool_text(&msg), "hi");
        // Byte for byte the demo's framing: three fields in order, one blank line.
        assert_eq!(raw, format!("event: message\nid: {m}\ndata: {}\n\n", raw_data(&raw)));
    })
    .await;
}

/// The raw `data:` text of a single-event body.
fn raw_data(raw: &str) -> String {
    raw.lines().find_map(|l| l.strip_prefix("data: ")).unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_mib_results_arrive_intact() {
    bounded(async {
        let json_demo = Demo::start("j").await;
        let sse_demo = Demo::spawn(&["--mode", "sse", "--name", "s"], &[]).await;
        let keys = KeyFile::new(&[key(31)]);
        let c = client();
        for demo in [&json_demo, &sse_demo] {
            let gw = Setup::new(&keys).backend("only", &demo.url).start().await;
            let sid = open_session(&c, &gw.mcp).await;
            let resp = post(&c, &gw.mcp, &call(4, "large", json!({"size": 1 << 20})), Some(&sid)).send().await.unwrap();
            assert_eq!(resp.status(), 200);
            let msg = response_message(resp).await;
            assert_eq!(msg["id"], 4);
            let text = tool_text(&msg);
            assert_eq!(text.len(), 1 << 20, "backend {}", demo.url);
            assert!(is_pattern(text), "payload corrupted through backend {}", demo.url);
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_events_arrive_before_the_result() {
    bounded(async {
        let demo = Demo::start("a").await;
        let keys = KeyFile::new(&[key(32)]);
        let gw = Setup::new(&keys).backend("a", &demo.url).start().await;
        let c = client();
        let sid = open_session(&c, &gw.mcp).await;
        let mut req = call(11, "progress", json!({"steps": 3, "delay_ms": 300}));
        req["params"]["_meta"] = json!({"progressToken": "tok-7"});
        let start = Instant::now();
        let mut resp = post(&c, &gw.mcp, &req, Some(&sid)).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert!(content_type(&resp).starts_with("text/event-stream"));
        let (mut buf, mut events) = (String::new(), Vec::new());
        while let Some(chunk) = resp.chunk().await.unwrap() {
            buf.push_str(std::str::from_utf8(&chunk).unwrap());
            for ev in take_events(&mut buf) {
                if let Some(data) = ev.data {
                    events.push((start.elapsed(), serde_json::from_str::<Value>(&data).unwrap()));
                }
            }
        }
        assert_eq!(events.len(), 4, "{events:?}");
        for (i, (_, note)) in events[..3].iter().enumerate() {
            assert_eq!(note["method"], "notifications/progress", "{note}");
            assert_eq!(note["params"]["progressToken"], "tok-7");
            assert_eq!(note["params"]["progress"], i + 1);
        }
        let (done_at, result) = &events[3];
        assert_eq!(result["id"], 11);
        assert_eq!(tool_text(result), "progress done: 3 steps");
        // The backend paces events 300 ms apart: unbuffered, the first arrives ~900 ms before the result.
        let first_at = events[0].0;
        assert!(
            *done_at >= first_at + Duration::from_millis(700),
            "first progress at {first_at:?}, result at {done_at:?}"
        );
        assert!(events.windows(2).all(|w| w[1].0 >= w[0].0 + Duration::from_millis(200)), "{events:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_stream_stays_open_with_gateway_keepalives() {
    bounded(async {
        // The demo's own keepalive is 15 s, so comments within ~1 s come from the gateway.
        let demo = Demo::start("a").await;
        let keys = KeyFile::new(&[key(33)]);
        let gw = Setup::new(&keys).backend("a", &demo.url).mcp("sse_keepalive: 300ms").start().await;
        let c = client();
        let sid = open_session(&c, &gw.mcp).await;
        let start = Instant::now();
        let mut resp = get_stream(&c, &gw.mcp, &sid).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert!(content_type(&resp).starts_with("text/event-stream"));
        let (mut text, mut first) = (String::new(), None);
        while text.matches(": keepalive\n\n").count() < 3 {
            let chunk = tokio::time::timeout(Duration::from_secs(3), resp.chunk()).await;
            let chunk = chunk.expect("GET stream idle for 3 s without a keepalive").unwrap().expect("GET stream ended");
            text.push_str(std::str::from_utf8(&chunk).unwrap());
            first = first.or_else(|| text.contains(": keepalive").then(|| start.elapsed()));
        }
        let first = first.unwrap();
        assert!(first >= Duration::from_millis(250), "keepalive before the interval: {first:?}");
        assert!(start.elapsed() < Duration::from_secs(3), "3 keepalives took {:?}", start.elapsed());
        assert!(text.chars().all(|ch| ch != '{'), "unexpected data on the stream: {text}");
        assert!(gw.metric("mcp_sse_keepalives_total").await.unwrap() >= 3.0);
        assert_eq!(gw.metric("mcp_streams_active{transport=\"streamable_get\"}").await, Some(1.0));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_event_id_reaches_the_backend() {
    bounded(async {
        // The demo logs a resuming GET's Last-Event-ID at debug level.
        let env = [("RUST_LOG", "mcp_demo_server=debug"), ("NO_COLOR", "1")];
        let demo = Demo::spawn(&["--name", "a"], &env).await;
        let keys = KeyFile::new(&[key(34)]);
        let gw = Setup::new(&keys).backend("a", &demo.url).start().await;
        let c = client();
        let sid = open_session(&c, &gw.mcp).await;
        let marker = "evt-4242-resume";
        assert!(!demo.proc.lines(Pipe::Stderr).iter().any(|l| l.contains(marker)));
        let resp = get_stream(&c, &gw.mcp, &sid).header("last-event-id", marker).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        let line = demo.proc.wait_line(Pipe::Stderr, Duration::from_secs(5), |l| l.contains(marker)).await;
        let line = line.unwrap_or_else(|| panic!("Last-Event-ID never reached the backend:\n{}", demo.proc.output()));
        assert!(line.contains("last_event_id"), "{line}");
        drop(resp);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_disconnect_does_not_cancel_the_backend_call() {
    bounded(async {
        let demo = Demo::start("a").await;
        let keys = KeyFile::new(&[key(35)]);
        let gw = Setup::new(&keys).backend("a", &demo.url).start().await;
        let c = client();
        let sid = open_session(&c, &gw.mcp).await;
        let outstanding = gw.running.metrics().backend_outstanding.with_label_values(&["a"]);
        assert_eq!(outstanding.get(), 0);

        let impatient = reqwest::Client::builder().no_proxy().timeout(Duration::from_millis(200)).build().unwrap();
        let start = Instant::now();
        let sent = post(&impatient, &gw.mcp, &call(1, "sleep", json!({"ms": 1500})), Some(&sid)).send().await;
        assert!(sent.as_ref().is_err_and(reqwest::Error::is_timeout), "{sent:?}");
        drop(impatient);
        tokio::time::sleep_until(start + Duration::from_millis(500)).await;
        assert_eq!(outstanding.get(), 1, "the backend call ended with the client connection");
        let mut done = None;
        for _ in 0..200 {
            if outstanding.get() == 0 {
                done = Some(start.elapsed());
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let done = done.expect("the detached call never finished");
        assert!(done >= Duration::from_millis(1400), "backend call released after {done:?}, before the sleep ended");
        // The gateway saw the client leave before any response (logged as 499)...
        let gone = gw.metric("mcp_requests_total{backend=\"a\",method=\"tools/call\",status=\"499\"}").await;
        assert_eq!(gone, Some(1.0), "the client disconnect was not seen by the gateway");
        // ...and the session is unharmed.
        assert_eq!(whoami(&c, &gw.mcp, Some(&sid)).await["server"], "a");
    })
    .await;
}

use super::*;
use http::header::CONTENT_TYPE;
use http_body_util::Full;
use serde_json::Value;

const ECHO: &str =
    r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hello"}}}"#;
const INIT: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;

fn server(mode: Mode, stateless: bool) -> Arc<Server> {
    let config =
        Config { path: "/mcp".into(), mode, name: "r1".into(), keepalive: Duration::from_secs(15), max_body: 1 << 20 };
    Arc::new(Server::new(config, (!stateless).then(|| SessionStore::new(100))))
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    fn content_type(&self) -> &str {
        self.headers.get(CONTENT_TYPE).map_or("", |v| v.to_str().unwrap())
    }

    fn session(&self) -> Option<String> {
        self.headers.get(SESSION_HEADER).map(|v| v.to_str().unwrap().to_owned())
    }

    /// `(id, data)` of each SSE event.
    fn events(&self) -> Vec<(u64, Value)> {
        std::str::from_utf8(&self.body)
            .unwrap()
            .split("\n\n")
            .filter(|e| !e.is_empty())
            .map(|e| {
                let lines: Vec<&str> = e.lines().collect();
                assert_eq!(lines[0], "event: message");
                let id = lines[1].strip_prefix("id: ").unwrap().parse().unwrap();
                let data = serde_json::from_str(lines[2].strip_prefix("data: ").unwrap()).unwrap();
                (id, data)
            })
            .collect()
    }
}

async fn send(s: &Arc<Server>, method: Method, uri: &str, headers: &[(&str, &str)], body: &str) -> Answer {
    let mut req = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Full::new(Bytes::from(body.to_owned()))).unwrap();
    let resp = Arc::clone(s).handle(req).await.unwrap();
    let (parts, body) = resp.into_parts();
    let body = tokio::time::timeout(Duration::from_secs(5), body.collect()).await.unwrap().unwrap().to_bytes();
    Answer { status: parts.status, headers: parts.headers, body }
}

async fn post(s: &Arc<Server>, headers: &[(&str, &str)], body: &str) -> Answer {
    send(s, Method::POST, "/mcp", headers, body).await
}

async fn init(s: &Arc<Server>) -> String {
    let a = post(s, &[], INIT).await;
    assert_eq!(a.status, StatusCode::OK);
    a.session().unwrap()
}

#[tokio::test]
async fn initialize_mints_a_session_then_calls_use_it() {
    let s = server(Mode::Json, false);
    let a = post(&s, &[], INIT).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.content_type(), JSON);
    assert_eq!(a.json()["result"]["protocolVersion"], "2025-06-18");
    let sid = a.session().unwrap();
    assert_eq!(sid.len(), 32);
    let a = post(&s, &[("mcp-session-id", &sid)], r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).await;
    assert_eq!(a.status, StatusCode::ACCEPTED);
    assert!(a.body.is_empty());
    let a = post(&s, &[("Mcp-Session-Id", &sid)], ECHO).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.json()["result"]["content"][0]["text"], "hello");
    assert_eq!(a.session(), None);
}

#[tokio::test]
async fn session_errors_are_400_and_404() {
    let s = server(Mode::Json, false);
    let a = post(&s, &[], ECHO).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(a.json()["error"]["code"], protocol::BAD_REQUEST);
    for bad in ["0123456789abcdef0123456789abcdef", "not-a-session"] {
        let a = post(&s, &[("mcp-session-id", bad)], ECHO).await;
        assert_eq!(a.status, StatusCode::NOT_FOUND);
        assert_eq!(a.json()["error"]["code"], -32001);
        assert_eq!(a.json()["error"]["message"], "Session not found");
    }
}

#[tokio::test]
async fn delete_ends_the_session() {
    let s = server(Mode::Json, false);
    let sid = init(&s).await;
    let h = [("mcp-session-id", sid.as_str())];
    let a = send(&s, Method::DELETE, "/mcp", &h, "").await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.body.is_empty());
    assert_eq!(post(&s, &h, ECHO).await.status, StatusCode::NOT_FOUND);
    assert_eq!(send(&s, Method::DELETE, "/mcp", &h, "").await.status, StatusCode::NOT_FOUND);
    assert_eq!(send(&s, Method::GET, "/mcp", &h, "").await.status, StatusCode::NOT_FOUND);
    assert_eq!(send(&s, Method::DELETE, "/mcp", &[], "").await.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn get_stream_stays_open_until_delete() {
    let s = server(Mode::Json, false);
    let sid = init(&s).await;
    let req = Request::builder()
        .method(Method::GET)
        .uri("/mcp")
        .header("mcp-session-id", &sid)
        .header("accept", "text/event-stream")
        .header("last-event-id", "17")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = Arc::clone(&s).handle(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()[CONTENT_TYPE], sse::CONTENT_TYPE);
    let mut body = resp.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(&first[..], sse::OPENED);
    let pending = tokio::time::timeout(Duration::from_millis(50), body.frame()).await;
    assert!(pending.is_err(), "stream must stay open with no data before the keepalive");
    let a = send(&s, Method::DELETE, "/mcp", &[("mcp-session-id", &sid)], "").await;
    assert_eq!(a.status, StatusCode::OK);
    let end = tokio::time::timeout(Duration::from_secs(5), body.frame()).await.unwrap();
    assert!(end.is_none(), "stream must end when the session is deleted");
}

#[tokio::test]
async fn sse_mode_sends_one_event() {
    let s = server(Mode::Sse, false);
    let sid = init(&s).await;
    let a = post(&s, &[("mcp-session-id", &sid)], ECHO).await;
    assert_eq!(a.content_type(), sse::CONTENT_TYPE);
    let events = a.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].1["result"]["content"][0]["text"], "hello");
}

#[tokio::test]
async fn progress_streams_notifications_then_result_in_json_mode() {
    let s = server(Mode::Json, true);
    let body = r#"{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"progress","arguments":{"steps":3,"delay_ms":1},"_meta":{"progressToken":42}}}"#;
    let a = post(&s, &[], body).await;
    assert_eq!(a.content_type(), sse::CONTENT_TYPE);
    let events = a.events();
    assert_eq!(events.len(), 4);
    for (i, (_, v)) in events[..3].iter().enumerate() {
        assert_eq!(v["method"], "notifications/progress");
        assert_eq!(v["params"]["progress"], i + 1);
        assert_eq!(v["params"]["progressToken"], 42);
    }
    assert_eq!(events[3].1["id"], 9);
    assert!(events.windows(2).all(|w| w[0].0 < w[1].0), "event ids increase");
}

#[tokio::test]
async fn large_has_exact_length_in_both_modes() {
    for mode in [Mode::Json, Mode::Sse] {
        let s = server(mode, true);
        let body =
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"large","arguments":{"size":1048576}}}"#;
        let a = post(&s, &[], body).await;
        let v = if mode == Mode::Json { a.json() } else { a.events().remove(0).1 };
        assert_eq!(v["result"]["content"][0]["text"].as_str().unwrap().len(), 1_048_576);
    }
}

#[tokio::test]
async fn bad_bodies() {
    let s = server(Mode::Json, true);
    let a = post(&s, &[], "{oops").await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(a.json()["error"]["code"], protocol::PARSE_ERROR);
    let a = post(&s, &[], r#"{"jsonrpc":"2.0","id":3}"#).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(a.json()["error"]["code"], protocol::INVALID_REQUEST);
    assert_eq!(a.json()["id"], 3);
    let a = post(&s, &[], r#"{"jsonrpc":"2.0","id":4,"method":"nope"}"#).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.json()["error"]["code"], protocol::METHOD_NOT_FOUND);
    let huge = format!(r#"{{"jsonrpc":"2.0","id":1,"method":"ping","params":{{"x":"{}"}}}}"#, "a".repeat(2 << 20));
    assert_eq!(post(&s, &[], &huge).await.status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn batches() {
    let s = server(Mode::Json, false);
    let sid = init(&s).await;
    let h = [("mcp-session-id", sid.as_str())];
    let batch = format!(
        r#"[{ECHO},{{"jsonrpc":"2.0","method":"notifications/x"}},{{"jsonrpc":"2.0","id":"p","method":"ping"}}]"#
    );
    let a = post(&s, &h, &batch).await;
    let v = a.json();
    assert_eq!(v.as_array().unwrap().len(), 2);
    assert_eq!(v[0]["id"], 2);
    assert_eq!(v[1]["id"], "p");
    let a = post(&s, &h, r#"[{"jsonrpc":"2.0","method":"notifications/x"}]"#).await;
    assert_eq!(a.status, StatusCode::ACCEPTED);
    let s = server(Mode::Sse, true);
    assert_eq!(post(&s, &[], &batch).await.events().len(), 2);
}

#[tokio::test]
async fn stateless_server_has_no_sessions() {
    let s = server(Mode::Json, true);
    let a = post(&s, &[], INIT).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.session(), None);
    assert_eq!(post(&s, &[], ECHO).await.status, StatusCode::OK);
    let ignored = [("mcp-session-id", "0123456789abcdef0123456789abcdef")];
    assert_eq!(post(&s, &ignored, ECHO).await.status, StatusCode::OK);
    assert_eq!(send(&s, Method::GET, "/mcp", &[], "").await.status, StatusCode::METHOD_NOT_ALLOWED);
    let a = send(&s, Method::DELETE, "/mcp", &ignored, "").await;
    assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(a.headers[ALLOW], "POST");
}

#[tokio::test]
async fn modern_requests_skip_sessions_on_a_stateful_server() {
    let s = server(Mode::Json, false);
    let v = [(VERSION_HEADER, STATELESS_VERSION)];
    assert_eq!(post(&s, &v, ECHO).await.status, StatusCode::OK);
    let a = post(&s, &v, INIT).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.session(), None);
    assert_eq!(send(&s, Method::GET, "/mcp", &v, "").await.status, StatusCode::METHOD_NOT_ALLOWED);
    let a = post(&s, &v, r#"{"jsonrpc":"2.0","id":1,"method":"nope"}"#).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!(a.json()["error"]["code"], protocol::METHOD_NOT_FOUND);
    let mismatch = [(VERSION_HEADER, STATELESS_VERSION), ("mcp-method", "tools/list")];
    let a = post(&s, &mismatch, ECHO).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(a.json()["error"]["code"], HEADER_MISMATCH);
    let named = [(VERSION_HEADER, STATELESS_VERSION), ("mcp-method", "tools/call"), ("mcp-name", "echo")];
    assert_eq!(post(&s, &named, ECHO).await.status, StatusCode::OK);
    let wrong = [(VERSION_HEADER, STATELESS_VERSION), ("mcp-method", "tools/call"), ("mcp-name", "sleep")];
    assert_eq!(post(&s, &wrong, ECHO).await.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn unsupported_version_header_is_400() {
    let s = server(Mode::Json, true);
    let a = post(&s, &[(VERSION_HEADER, "1999-01-01")], ECHO).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(a.json()["error"]["code"], UNSUPPORTED_VERSION);
    assert_eq!(post(&s, &[(VERSION_HEADER, "2025-06-18")], ECHO).await.status, StatusCode::OK);
}

#[tokio::test]
async fn whoami_sees_session_and_host() {
    let s = server(Mode::Json, false);
    let sid = init(&s).await;
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"whoami"}}"#;
    let a = post(&s, &[("mcp-session-id", &sid), ("host", "h:1"), ("x-forwarded-for", "10.0.0.1")], body).await;
    let inner: Value = serde_json::from_str(a.json()["result"]["content"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(inner["server"], "r1");
    assert_eq!(inner["session"], sid);
    assert_eq!(inner["headers"]["host"], "h:1");
    assert_eq!(inner["headers"]["x-forwarded-for"], "10.0.0.1");
}

#[tokio::test]
async fn health_and_other_paths() {
    let s = server(Mode::Json, false);
    let a = send(&s, Method::GET, "/health", &[], "").await;
    assert_eq!((a.status, &a.body[..]), (StatusCode::OK, &b"ok"[..]));
    assert_eq!(send(&s, Method::GET, "/other", &[], "").await.status, StatusCode::NOT_FOUND);
    let a = send(&s, Method::PUT, "/mcp", &[], "").await;
    assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(a.headers[ALLOW], "GET, POST, DELETE");
}

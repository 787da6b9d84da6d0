use super::*;
use serde_json::Value;

fn raw(s: &str) -> &RawValue {
    serde_json::from_str(s).unwrap()
}

fn ctx(headers: &HeaderMap) -> CallContext<'_> {
    CallContext {
        server_name: "replica-a",
        session: Some("0123456789abcdef0123456789abcdef"),
        headers,
        host: Some("example.test:8080"),
    }
}

fn done(reply: Reply) -> Value {
    match reply {
        Reply::Done(p) => {
            let mut chunks = Vec::new();
            p.push_chunks(&mut chunks);
            serde_json::from_slice(&chunks.concat()).unwrap()
        }
        other => panic!("expected Done, got {other:?}"),
    }
}

async fn run(params: &str) -> Reply {
    let headers = HeaderMap::new();
    call(&ctx(&headers), raw("1"), Some(raw(params))).await
}

#[test]
fn tools_list_is_valid_json_with_five_tools() {
    let v: Value = serde_json::from_str(TOOLS_LIST_RESULT).unwrap();
    let names: Vec<&str> = v["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["echo", "large", "progress", "whoami", "sleep"]);
    for t in v["tools"].as_array().unwrap() {
        assert_eq!(t["inputSchema"]["type"], "object");
    }
}

#[tokio::test]
async fn echo_returns_the_text() {
    let v = done(run(r#"{"name":"echo","arguments":{"text":"hi \"there\"\n✓"}}"#).await);
    assert_eq!(v["id"], 1);
    assert_eq!(v["result"]["content"][0]["type"], "text");
    assert_eq!(v["result"]["content"][0]["text"], "hi \"there\"\n✓");
    assert_eq!(v["result"]["isError"], false);
}

#[tokio::test]
async fn echo_response_is_small() {
    let text = "x".repeat(120);
    let params = format!(r#"{{"name":"echo","arguments":{{"text":"{text}"}}}}"#);
    let Reply::Done(p) = run(&params).await else { panic!("expected Done") };
    let mut chunks = Vec::new();
    p.push_chunks(&mut chunks);
    let len = chunks.concat().len();
    assert!(len < 220, "{len}");
}

#[tokio::test]
async fn bad_arguments_are_tool_errors() {
    let v = done(run(r#"{"name":"echo","arguments":{"txt":"hi"}}"#).await);
    assert_eq!(v["result"]["isError"], true);
    let v = done(run(r#"{"name":"large","arguments":{"size":-1}}"#).await);
    assert_eq!(v["result"]["isError"], true);
}

#[tokio::test]
async fn unknown_tool_and_bad_params_are_protocol_errors() {
    let v = done(run(r#"{"name":"nope"}"#).await);
    assert_eq!(v["error"]["code"], INVALID_PARAMS);
    assert_eq!(v["error"]["message"], "Unknown tool: nope");
    let v = done(run(r#"{"arguments":{}}"#).await);
    assert_eq!(v["error"]["code"], INVALID_PARAMS);
    let headers = HeaderMap::new();
    let v = done(call(&ctx(&headers), raw("1"), None).await);
    assert_eq!(v["error"]["code"], INVALID_PARAMS);
}

#[tokio::test]
async fn large_has_exact_size_and_pattern() {
    for (args, expected) in [
        (r#"{"size":0}"#, 0usize),
        (r#"{"size":17}"#, 17),
        (r#"{"size":65537}"#, 65537),
        (r#"{}"#, 1_048_576),
        (r#"{"size":99999999999}"#, 16 * 1024 * 1024),
    ] {
        let v = done(run(&format!(r#"{{"name":"large","arguments":{args}}}"#)).await);
        let text = v["result"]["content"][0]["text"].as_str().unwrap();
        assert_eq!(text.len(), expected, "{args}");
        assert!(text.as_bytes().iter().enumerate().all(|(i, b)| *b == b"0123456789abcdef"[i % 16]));
    }
}

#[tokio::test]
async fn progress_with_token_lists_notifications_in_order() {
    let reply =
        run(r#"{"name":"progress","arguments":{"steps":4,"delay_ms":5},"_meta":{"progressToken":"tok"}}"#).await;
    let Reply::Progress { notifications, interval, result } = reply else { panic!("expected Progress") };
    assert_eq!(interval, Duration::from_millis(5));
    assert_eq!(notifications.len(), 4);
    for (i, n) in notifications.iter().enumerate() {
        let v: Value = serde_json::from_slice(n).unwrap();
        assert_eq!(v["method"], "notifications/progress");
        assert_eq!(v["params"]["progressToken"], "tok");
        assert_eq!(v["params"]["progress"], i as u64 + 1);
        assert_eq!(v["params"]["total"], 4);
    }
    let v = done(Reply::Done(result));
    assert_eq!(v["result"]["content"][0]["text"], "progress done: 4 steps");
}

#[tokio::test]
async fn progress_without_token_just_returns() {
    let v = done(run(r#"{"name":"progress"}"#).await);
    assert_eq!(v["result"]["content"][0]["text"], "progress done: 3 steps");
}

#[tokio::test]
async fn whoami_reports_server_session_and_headers() {
    let mut headers = HeaderMap::new();
    headers.insert("authorization", "Bearer t".parse().unwrap());
    headers.insert("x-request-id", "r-1".parse().unwrap());
    headers.insert("x-other", "no".parse().unwrap());
    let v = done(call(&ctx(&headers), raw("2"), Some(raw(r#"{"name":"whoami"}"#))).await);
    let inner: Value = serde_json::from_str(v["result"]["content"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(inner["server"], "replica-a");
    assert_eq!(inner["session"], "0123456789abcdef0123456789abcdef");
    assert_eq!(inner["headers"]["authorization"], "Bearer t");
    assert_eq!(inner["headers"]["x-request-id"], "r-1");
    assert_eq!(inner["headers"]["host"], "example.test:8080");
    assert!(inner["headers"].get("x-other").is_none());
    assert!(inner["headers"].get("x-forwarded-for").is_none());
}

#[tokio::test]
async fn sleep_waits_and_caps() {
    let start = tokio::time::Instant::now();
    let v = done(run(r#"{"name":"sleep","arguments":{"ms":50}}"#).await);
    assert_eq!(v["result"]["content"][0]["text"], "slept");
    assert!(start.elapsed() >= Duration::from_millis(50));
    assert_eq!(sleep_duration(999_999), Duration::from_secs(60));
    assert_eq!(sleep_duration(7), Duration::from_millis(7));
    let v = done(run(r#"{"name":"sleep","arguments":{}}"#).await);
    assert_eq!(v["result"]["isError"], true);
}

use super::*;

fn single(body: &str) -> Message<'_> {
    match parse(body.as_bytes()).unwrap() {
        Incoming::Single(m) => m,
        Incoming::Batch(b) => panic!("expected single, got batch {b:?}"),
    }
}

#[test]
fn parses_request_with_borrowed_params() {
    let m = single(r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo"}}"#);
    match m {
        Message::Request { id, method, params } => {
            assert_eq!(id.get(), "7");
            assert_eq!(method, "tools/call");
            assert_eq!(params.unwrap().get(), r#"{"name":"echo"}"#);
            assert!(matches!(method, Cow::Borrowed(_)));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn string_ids_are_kept_verbatim() {
    let m = single(r#"{"jsonrpc":"2.0","id":"a\"b","method":"ping"}"#);
    assert!(matches!(m, Message::Request { id, .. } if id.get() == r#""a\"b""#));
}

#[test]
fn notification_response_and_invalid() {
    assert!(matches!(
        single(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#),
        Message::Notification { method } if method == "notifications/initialized"
    ));
    assert!(matches!(single(r#"{"jsonrpc":"2.0","id":1,"result":{}}"#), Message::Response));
    assert!(matches!(single(r#"{"jsonrpc":"2.0","id":1,"result":null}"#), Message::Response));
    assert!(matches!(single(r#"{"jsonrpc":"2.0","id":1,"error":{"code":1,"message":"x"}}"#), Message::Response));
    assert!(matches!(
        single(r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#),
        Message::Invalid { id: Some(id), .. } if id.get() == "1"
    ));
    assert!(matches!(single(r#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#), Message::Invalid { id: None, .. }));
    assert!(matches!(single(r#"{"jsonrpc":"2.0","id":3}"#), Message::Invalid { .. }));
}

#[test]
fn parse_errors_are_classified() {
    assert_eq!(parse(b"{not json").unwrap_err().code(), PARSE_ERROR);
    assert_eq!(parse(b"").unwrap_err().code(), PARSE_ERROR);
    assert_eq!(parse(b"42").unwrap_err().code(), INVALID_REQUEST);
    assert_eq!(parse(b" [ ] ").unwrap_err().code(), INVALID_REQUEST);
    assert_eq!(parse(b"[1,").unwrap_err().code(), PARSE_ERROR);
}

#[test]
fn batch_elements_are_classified_one_by_one() {
    let body = br#" [{"jsonrpc":"2.0","id":1,"method":"ping"},
        {"jsonrpc":"2.0","method":"notifications/initialized"}, 5]"#;
    let Incoming::Batch(items) = parse(body).unwrap() else { panic!("expected a batch") };
    assert_eq!(items.len(), 3);
    assert!(matches!(items[0], Message::Request { .. }));
    assert!(matches!(items[1], Message::Notification { .. }));
    assert!(matches!(items[2], Message::Invalid { id: None, .. }));
}

#[test]
fn writes_responses_and_errors() {
    let id: &RawValue = serde_json::from_str("\"x\"").unwrap();
    assert_eq!(response(id, b"{}"), br#"{"jsonrpc":"2.0","id":"x","result":{}}"#);
    let err = error(None, SESSION_NOT_FOUND, "Session not found");
    let v: serde_json::Value = serde_json::from_slice(&err).unwrap();
    assert_eq!(v["id"], serde_json::Value::Null);
    assert_eq!(v["error"]["code"], -32001);
    assert_eq!(v["error"]["message"], "Session not found");
}

#[test]
fn multi_line_ids_are_flattened() {
    let id: &RawValue = serde_json::from_str("{\n \"a\": 1\r\n}").unwrap();
    let out = response(id, b"1");
    assert!(!out.contains(&b'\n') && !out.contains(&b'\r'));
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["id"]["a"], 1);
}

#[test]
fn write_str_escapes_like_serde_json() {
    for s in ["plain", "quote \" and \\ backslash", "ctl \u{0} \u{1f} \n\r\t", "ünïcode ✓", ""] {
        let mut out = Vec::new();
        write_str(&mut out, s);
        let back: String = serde_json::from_slice(&out).unwrap();
        assert_eq!(back, s);
    }
}

#[test]
fn spliced_payload_concatenates() {
    let p = Payload::Spliced {
        head: b"[\"".to_vec(),
        body: vec![Bytes::from_static(b"ab"), Bytes::from_static(b"c")],
        tail: b"\"]",
    };
    let mut chunks = Vec::new();
    p.push_chunks(&mut chunks);
    assert_eq!(chunks.concat(), b"[\"abc\"]");
}

//! A minimal MCP client over reqwest: JSON-RPC POSTs with the headers the
//! spec requires, session setup, SSE parsing, and checks of the gateway's
//! own error answers.

use std::time::Duration;

use reqwest::header::{ACCEPT, CONTENT_TYPE};
use reqwest::{RequestBuilder, Response};
use serde_json::{Value, json};

/// The revision the tests negotiate on stateful sessions.
pub const PROTOCOL: &str = "2025-06-18";

/// A client that ignores proxy settings from the environment.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(20)).build().unwrap()
}

/// `initialize` with id 0.
pub fn initialize() -> Value {
    json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": PROTOCOL, "capabilities": {}, "clientInfo": {"name": "proxy-tests", "version": "1"}}})
}

/// A `tools/call` request.
pub fn call(id: u64, tool: &str, args: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": tool, "arguments": args}})
}

/// A POST of `body` (raw text) with `Accept` for JSON and SSE.
pub fn post_raw(c: &reqwest::Client, url: &str, body: impl Into<reqwest::Body>, sid: Option<&str>) -> RequestBuilder {
    let mut b = c
        .post(url)
        .header(ACCEPT, "application/json, text/event-stream")
        .header(CONTENT_TYPE, "application/json")
        .body(body);
    if let Some(s) = sid {
        b = b.header("mcp-session-id", s).header("mcp-protocol-version", PROTOCOL);
    }
    b
}

/// A POST of a JSON-RPC message.
pub fn post(c: &reqwest::Client, url: &str, body: &Value, sid: Option<&str>) -> RequestBuilder {
    post_raw(c, url, body.to_string(), sid)
}

/// The GET that opens a session's server-to-client SSE stream.
pub fn get_stream(c: &reqwest::Client, url: &str, sid: &str) -> RequestBuilder {
    c.get(url)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", sid)
        .header("mcp-protocol-version", PROTOCOL)
}

/// Initialize a session at `url` and send `notifications/initialized`; returns the session id.
pub async fn open_session(c: &reqwest::Client, url: &str) -> String {
    let resp = post(c, url, &initialize(), None).send().await.unwrap();
    assert_eq!(resp.status(), 200, "initialize failed");
    let sid =
        resp.headers().get("mcp-session-id").expect("no Mcp-Session-Id on initialize").to_str().unwrap().to_owned();
    let init = response_message(resp).await;
    assert_eq!(init["id"], 0, "{init}");
    assert!(init["result"]["protocolVersion"].is_string(), "{init}");
    let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let resp = post(c, url, &note, Some(&sid)).send().await.unwrap();
    assert_eq!(resp.status(), 202);
    sid
}

/// The JSON-RPC response in a body that is JSON or SSE (the last event with an `id`).
pub async fn response_message(resp: Response) -> Value {
    let is_sse = content_type(&resp).starts_with("text/event-stream");
    let text = resp.text().await.unwrap();
    if !is_sse {
        return serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text:.300}"));
    }
    sse_events(&text)
        .into_iter()
        .rev()
        .filter_map(|e| e.data)
        .map(|d| serde_json::from_str::<Value>(&d).unwrap())
        .find(|m| m.get("id").is_some() && m.get("method").is_none())
        .unwrap_or_else(|| panic!("no response event in: {text:.300}"))
}

/// The text of a tool result's first content item.
pub fn tool_text(message: &Value) -> &str {
    message["result"]["content"][0]["text"].as_str().unwrap_or_else(|| panic!("not a text result: {message:.300}"))
}

/// Call `whoami` in session `sid` (or without one) and parse its JSON text.
pub async fn whoami(c: &reqwest::Client, url: &str, sid: Option<&str>) -> Value {
    let resp = post(c, url, &call(7, "whoami", json!({})), sid).send().await.unwrap();
    assert_eq!(resp.status(), 200, "whoami failed");
    let msg = response_message(resp).await;
    serde_json::from_str(tool_text(&msg)).unwrap()
}

/// The response's Content-Type, or "".
pub fn content_type(resp: &Response) -> String {
    resp.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned()
}

/// One parsed SSE event.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Event {
    /// `event:` field.
    pub event: Option<String>,
    /// `id:` field.
    pub id: Option<String>,
    /// `data:` lines joined with `\n`.
    pub data: Option<String>,
    /// Comment lines (after the `:`).
    pub comments: Vec<String>,
}

/// Split complete events off the front of `buf` (everything up to the last blank line).
pub fn take_events(buf: &mut String) -> Vec<Event> {
    let Some(end) = buf.rfind("\n\n") else {
        return Vec::new();
    };
    let complete: String = buf.drain(..end + 2).collect();
    sse_events(&complete)
}

/// Parse an SSE text (LF line endings, as the demo writes).
pub fn sse_events(text: &str) -> Vec<Event> {
    text.split("\n\n")
        .filter(|block| !block.trim().is_empty())
        .map(|block| {
            let mut ev = Event::default();
            for line in block.lines() {
                if let Some(c) = line.strip_prefix(':') {
                    ev.comments.push(c.trim().to_owned());
                    continue;
                }
                let (field, value) = line.split_once(':').unwrap_or((line, ""));
                let value = value.strip_prefix(' ').unwrap_or(value).to_owned();
                match field {
                    "event" => ev.event = Some(value),
                    "id" => ev.id = Some(value),
                    "data" => {
                        ev.data = Some(match ev.data.take() {
                            Some(d) => format!("{d}\n{value}"),
                            None => value,
                        })
                    }
                    _ => {}
                }
            }
            ev
        })
        .collect()
}

/// Check a gateway-made error: status, JSON-RPC code and `error.data.reason`. Returns the body.
pub async fn expect_gw_error(resp: Response, status: u16, code: i64, reason: &str) -> Value {
    assert_eq!(resp.status().as_u16(), status, "status (wanted reason {reason})");
    assert!(content_type(&resp).starts_with("application/json"), "content type {}", content_type(&resp));
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["jsonrpc"], "2.0", "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert_eq!(body["error"]["data"]["reason"], reason, "{body}");
    assert_eq!(body["error"]["data"]["source"], "mcp-gateway", "{body}");
    body
}

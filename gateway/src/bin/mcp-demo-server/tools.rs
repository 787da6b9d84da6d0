//! The demo tools (`echo`, `large`, `progress`, `whoami`, `sleep`): their static `tools/list`
//! result and their `tools/call` implementations. Arguments are parsed into borrowed structs
//! and answers are written straight into the response buffer.

use std::borrow::Cow;
use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::protocol::{self, INVALID_PARAMS, Payload};

/// The `result` of `tools/list`, precomputed.
pub const TOOLS_LIST_RESULT: &str = concat!(
    r#"{"tools":["#,
    r#"{"name":"echo","description":"Returns the given text.","#,
    r#""inputSchema":{"type":"object","properties":{"text":{"type":"string"}},"required":["text"]}},"#,
    r#"{"name":"large","description":"Returns one text content of exactly `size` bytes (at most 16 MiB).","#,
    r#""inputSchema":{"type":"object","properties":{"size":{"type":"integer","minimum":0,"maximum":16777216,"default":1048576}}}},"#,
    r#"{"name":"progress","description":"Sends `steps` progress notifications, `delay_ms` apart (when the request has a progressToken), then returns.","#,
    r#""inputSchema":{"type":"object","properties":{"steps":{"type":"integer","minimum":0,"maximum":1000,"default":3},"delay_ms":{"type":"integer","minimum":0,"maximum":10000,"default":0}}}},"#,
    r#"{"name":"whoami","description":"Returns this replica's name, the session id and the request's forwarding headers as JSON.","#,
    r#""inputSchema":{"type":"object","properties":{}}},"#,
    r#"{"name":"sleep","description":"Waits `ms` milliseconds (at most 60000), then returns \"slept\".","#,
    r#""inputSchema":{"type":"object","properties":{"ms":{"type":"integer","minimum":0,"maximum":60000}},"required":["ms"]}}"#,
    r#"]}"#
);

/// Largest `large` payload.
pub const MAX_LARGE: u64 = 16 * 1024 * 1024;
const DEFAULT_LARGE: u64 = 1024 * 1024;
const MAX_STEPS: u64 = 1000;
const MAX_STEP_DELAY_MS: u64 = 10_000;
const MAX_SLEEP_MS: u64 = 60_000;

/// 64 KiB of "0123456789abcdef…", the source of every `large` payload (never copied).
static PATTERN: [u8; 65536] = {
    let mut a = [0u8; 65536];
    let mut i = 0;
    while i < a.len() {
        a[i] = b"0123456789abcdef"[i % 16];
        i += 1;
    }
    a
};

/// Headers reported by `whoami`, when present.
const WHOAMI_HEADERS: [&str; 4] = ["authorization", "x-request-id", "x-forwarded-for", "mcp-protocol-version"];

/// What a tool needs to know about the request it serves.
#[derive(Debug)]
pub struct CallContext<'a> {
    /// The replica name (`--name`).
    pub server_name: &'a str,
    /// The session id, when the request has one.
    pub session: Option<&'a str>,
    /// The request headers.
    pub headers: &'a HeaderMap,
    /// `Host`, or the URI authority (HTTP/2).
    pub host: Option<&'a str>,
}

/// The answer to one request.
#[derive(Debug)]
pub enum Reply {
    /// The response, nothing before it.
    Done(Payload),
    /// Progress notifications, `interval` apart, then the response: always sent as SSE.
    Progress {
        /// Complete `notifications/progress` messages.
        notifications: Vec<Vec<u8>>,
        /// Pause before each later event.
        interval: Duration,
        /// The response.
        result: Payload,
    },
}

#[derive(Deserialize)]
struct CallParams<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(borrow, default)]
    arguments: Option<&'a RawValue>,
    #[serde(borrow, default, rename = "_meta")]
    meta: Option<Meta<'a>>,
}

#[derive(Deserialize)]
struct Meta<'a> {
    #[serde(borrow, default, rename = "progressToken")]
    progress_token: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct EchoArgs<'a> {
    #[serde(borrow)]
    text: Cow<'a, str>,
}

#[derive(Deserialize)]
struct LargeArgs {
    size: Option<u64>,
}

#[derive(Deserialize)]
struct ProgressArgs {
    steps: Option<u64>,
    delay_ms: Option<u64>,
}

#[derive(Deserialize)]
struct SleepArgs {
    ms: u64,
}

/// Runs `tools/call`. Unknown tools and malformed params are JSON-RPC errors (-32602, as the
/// MCP tools page lists "unknown tools" among protocol errors); bad arguments are tool
/// results with `isError: true`.
pub async fn call(ctx: &CallContext<'_>, id: &RawValue, params: Option<&RawValue>) -> Reply {
    let params: CallParams<'_> = match params.map(|p| serde_json::from_str(p.get())) {
        Some(Ok(p)) => p,
        Some(Err(e)) => return invalid_params(id, &format!("invalid tools/call params: {e}")),
        None => return invalid_params(id, "tools/call needs params"),
    };
    let args = params.arguments.map_or("{}", RawValue::get);
    let token = params.meta.and_then(|m| m.progress_token);
    match params.name.as_ref() {
        "echo" => match parse_args::<EchoArgs<'_>>(args) {
            Ok(a) => Reply::Done(text_result(id, &a.text, false)),
            Err(e) => e.into_reply(id),
        },
        "large" => match parse_args::<LargeArgs>(args) {
            Ok(a) => Reply::Done(large(id, a.size.unwrap_or(DEFAULT_LARGE).min(MAX_LARGE))),
            Err(e) => e.into_reply(id),
        },
        "progress" => match parse_args::<ProgressArgs>(args) {
            Ok(a) => progress(id, token, a).await,
            Err(e) => e.into_reply(id),
        },
        "whoami" => Reply::Done(text_result(id, &whoami(ctx), false)),
        "sleep" => match parse_args::<SleepArgs>(args) {
            Ok(a) => {
                tokio::time::sleep(sleep_duration(a.ms)).await;
                Reply::Done(text_result(id, "slept", false))
            }
            Err(e) => e.into_reply(id),
        },
        other => invalid_params(id, &format!("Unknown tool: {other}")),
    }
}

/// How long `sleep` waits for `ms`: capped at 60 s.
fn sleep_duration(ms: u64) -> Duration {
    Duration::from_millis(ms.min(MAX_SLEEP_MS))
}

fn invalid_params(id: &RawValue, message: &str) -> Reply {
    Reply::Done(Payload::Inline(protocol::error(Some(id), INVALID_PARAMS, message)))
}

struct ArgError(serde_json::Error);

impl ArgError {
    fn into_reply(self, id: &RawValue) -> Reply {
        Reply::Done(text_result(id, &format!("invalid arguments: {}", self.0), true))
    }
}

fn parse_args<'a, T: Deserialize<'a>>(args: &'a str) -> Result<T, ArgError> {
    serde_json::from_str(args).map_err(ArgError)
}

/// A `CallToolResult` with one text content.
pub fn text_result(id: &RawValue, text: &str, is_error: bool) -> Payload {
    let mut out = protocol::response_head(id, text.len() + 64);
    out.extend_from_slice(br#"{"content":[{"type":"text","text":"#);
    protocol::write_str(&mut out, text);
    out.extend_from_slice(if is_error { br#"}],"isError":true}"# } else { br#"}],"isError":false}"# });
    out.extend_from_slice(protocol::RESPONSE_TAIL);
    Payload::Inline(out)
}

/// A text content of exactly `size` bytes of the pattern, spliced from the static buffer.
fn large(id: &RawValue, size: u64) -> Payload {
    let mut head = protocol::response_head(id, 64);
    head.extend_from_slice(br#"{"content":[{"type":"text","text":""#);
    let mut left = usize::try_from(size).unwrap_or(usize::MAX);
    let mut body = Vec::with_capacity(left.div_ceil(PATTERN.len()));
    while left > 0 {
        let n = left.min(PATTERN.len());
        body.push(Bytes::from_static(&PATTERN[..n]));
        left -= n;
    }
    Payload::Spliced { head, body, tail: br#""}],"isError":false}}"# }
}

async fn progress(id: &RawValue, token: Option<&RawValue>, args: ProgressArgs) -> Reply {
    let steps = args.steps.unwrap_or(3).min(MAX_STEPS);
    let interval = Duration::from_millis(args.delay_ms.unwrap_or(0).min(MAX_STEP_DELAY_MS));
    let result = text_result(id, &format!("progress done: {steps} steps"), false);
    let Some(token) = token else {
        // No token: nothing to report, but the work still takes as long.
        tokio::time::sleep(interval.saturating_mul(u32::try_from(steps).unwrap_or(u32::MAX))).await;
        return Reply::Done(result);
    };
    let token = protocol::single_line(token);
    let notifications = (1..=steps)
        .map(|i| {
            format!(
                concat!(
                    r#"{{"jsonrpc":"2.0","method":"notifications/progress","params":"#,
                    r#"{{"progressToken":{},"progress":{},"total":{},"message":"step {} of {}"}}}}"#
                ),
                token, i, steps, i, steps
            )
            .into_bytes()
        })
        .collect();
    Reply::Progress { notifications, interval, result }
}

fn whoami(ctx: &CallContext<'_>) -> String {
    let mut headers = serde_json::Map::new();
    for name in WHOAMI_HEADERS {
        if let Some(v) = ctx.headers.get(name) {
            headers.insert(name.into(), String::from_utf8_lossy(v.as_bytes()).into());
        }
    }
    if let Some(host) = ctx.host {
        headers.insert("host".into(), host.into());
    }
    serde_json::json!({
        "server": ctx.server_name,
        "session": ctx.session,
        "headers": headers,
    })
    .to_string()
}

#[cfg(test)]
#[path = "tools_tests.rs"]
mod tests;

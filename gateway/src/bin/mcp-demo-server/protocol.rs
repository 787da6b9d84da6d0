//! JSON-RPC 2.0 framing for the demo server: borrowed parsing of incoming messages and small
//! writers for outgoing ones. Nothing here builds a `serde_json::Value` tree, so the hot path
//! (`tools/call` echo) costs one scan of the body plus one small buffer for the answer.

use std::borrow::Cow;

use bytes::Bytes;
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

/// JSON-RPC "Parse error": the body is not JSON.
pub const PARSE_ERROR: i64 = -32700;
/// JSON-RPC "Invalid Request": JSON, but not a JSON-RPC message.
pub const INVALID_REQUEST: i64 = -32600;
/// JSON-RPC "Method not found".
pub const METHOD_NOT_FOUND: i64 = -32601;
/// JSON-RPC "Invalid params" (MCP: unknown tool).
pub const INVALID_PARAMS: i64 = -32602;
/// Transport-level "Bad Request" (missing session id, bad protocol version header).
pub const BAD_REQUEST: i64 = -32000;
/// "Session not found", as the TypeScript SDK answers a 404.
pub const SESSION_NOT_FOUND: i64 = -32001;

/// Revisions `initialize` can negotiate; anything else gets [`LATEST_VERSION`].
pub const NEGOTIABLE_VERSIONS: [&str; 3] = ["2025-03-26", "2025-06-18", "2025-11-25"];
/// The revision answered to clients asking for one we do not speak.
pub const LATEST_VERSION: &str = "2025-11-25";
/// The session-less revision: requests carrying it skip every session check.
pub const STATELESS_VERSION: &str = "2026-07-28";
/// Values accepted in the `MCP-Protocol-Version` header (others get 400, per the spec).
pub const HEADER_VERSIONS: [&str; 5] = ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25", STATELESS_VERSION];

/// Why a POST body could not be read as JSON-RPC at all.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// The body is not valid JSON.
    #[error("parse error: {0}")]
    Parse(#[source] serde_json::Error),
    /// The body is JSON but not a message object or an array of them.
    #[error("invalid request: {0}")]
    NotAMessage(#[source] serde_json::Error),
    /// `[]`, which JSON-RPC calls an invalid request.
    #[error("invalid request: empty batch")]
    EmptyBatch,
}

impl ProtocolError {
    /// The JSON-RPC error code this failure is reported with.
    pub fn code(&self) -> i64 {
        match self {
            Self::Parse(_) => PARSE_ERROR,
            Self::NotAMessage(_) | Self::EmptyBatch => INVALID_REQUEST,
        }
    }
}

/// One JSON-RPC message, classified, borrowing from the body.
#[derive(Debug)]
pub enum Message<'a> {
    /// A request: it gets exactly one response.
    Request {
        /// The id, verbatim.
        id: &'a RawValue,
        /// The method name.
        method: Cow<'a, str>,
        /// The params, unparsed.
        params: Option<&'a RawValue>,
    },
    /// A notification (no id): it gets no response.
    Notification {
        /// The method name.
        method: Cow<'a, str>,
    },
    /// A response to a server-initiated request: accepted and dropped.
    Response,
    /// Not a valid JSON-RPC message; answered with [`INVALID_REQUEST`].
    Invalid {
        /// The id, if one could be read.
        id: Option<&'a RawValue>,
        /// What is wrong.
        reason: &'static str,
    },
}

/// A POST body: one message, or a batch (2025-03-26 only, but accepted always).
#[derive(Debug)]
pub enum Incoming<'a> {
    /// A single message.
    Single(Message<'a>),
    /// A JSON array of messages.
    Batch(Vec<Message<'a>>),
}

/// A string that borrows from the input unless it has escapes. serde only borrows a `Cow`
/// that is a field itself, not one inside an `Option`, hence this newtype.
#[derive(Debug, Deserialize)]
pub struct Str<'a>(#[serde(borrow)] pub Cow<'a, str>);

#[derive(Deserialize)]
struct RawMessage<'a> {
    #[serde(borrow, default)]
    jsonrpc: Option<Str<'a>>,
    #[serde(borrow, default, deserialize_with = "present")]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    method: Option<Str<'a>>,
    #[serde(borrow, default)]
    params: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    result: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    error: Option<&'a RawValue>,
}

/// Keeps an explicit `null` as `Some("null")`, so "absent" and "null" stay distinct.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&'de RawValue>::deserialize(d).map(Some)
}

impl<'a> RawMessage<'a> {
    fn classify(self) -> Message<'a> {
        if self.jsonrpc.as_ref().map(|s| s.0.as_ref()) != Some("2.0") {
            return Message::Invalid { id: self.id, reason: "jsonrpc must be \"2.0\"" };
        }
        match (self.method.map(|m| m.0), self.id) {
            (Some(_), Some(id)) if id.get() == "null" => {
                Message::Invalid { id: None, reason: "request id must not be null" }
            }
            (Some(method), Some(id)) => Message::Request { id, method, params: self.params },
            (Some(method), None) => Message::Notification { method },
            (None, Some(_)) if self.result.is_some() || self.error.is_some() => Message::Response,
            (None, id) => Message::Invalid { id, reason: "message has neither method nor result/error" },
        }
    }
}

/// Parses a POST body into JSON-RPC messages.
pub fn parse(body: &[u8]) -> Result<Incoming<'_>, ProtocolError> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first == Some(&b'[') {
        let items: Vec<&RawValue> = serde_json::from_slice(body).map_err(classify_error)?;
        if items.is_empty() {
            return Err(ProtocolError::EmptyBatch);
        }
        let messages = items
            .into_iter()
            .map(|raw| match serde_json::from_str::<RawMessage<'_>>(raw.get()) {
                Ok(m) => m.classify(),
                Err(_) => Message::Invalid { id: None, reason: "batch element is not a message object" },
            })
            .collect();
        return Ok(Incoming::Batch(messages));
    }
    let raw: RawMessage<'_> = serde_json::from_slice(body).map_err(classify_error)?;
    Ok(Incoming::Single(raw.classify()))
}

fn classify_error(e: serde_json::Error) -> ProtocolError {
    match e.classify() {
        serde_json::error::Category::Data => ProtocolError::NotAMessage(e),
        serde_json::error::Category::Io | serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
            ProtocolError::Parse(e)
        }
    }
}

/// Returns raw JSON with no line breaks (SSE `data:` lines cannot hold them); usually borrowed.
pub fn single_line(raw: &RawValue) -> Cow<'_, str> {
    let s = raw.get();
    if !s.bytes().any(|b| b == b'\n' || b == b'\r') {
        return Cow::Borrowed(s);
    }
    // Line breaks can only be insignificant whitespace here (JSON strings escape them).
    Cow::Owned(s.chars().filter(|c| *c != '\n' && *c != '\r').collect())
}

/// Starts a success response: `{"jsonrpc":"2.0","id":ID,"result":`; the caller appends the
/// result and then [`RESPONSE_TAIL`].
pub fn response_head(id: &RawValue, capacity: usize) -> Vec<u8> {
    let id = single_line(id);
    let mut out = Vec::with_capacity(capacity + id.len() + 40);
    out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
    out.extend_from_slice(id.as_bytes());
    out.extend_from_slice(b",\"result\":");
    out
}

/// Closes what [`response_head`] opened.
pub const RESPONSE_TAIL: &[u8] = b"}";

/// A complete success response whose result is the raw JSON `result`.
pub fn response(id: &RawValue, result: &[u8]) -> Vec<u8> {
    let mut out = response_head(id, result.len() + 1);
    out.extend_from_slice(result);
    out.extend_from_slice(RESPONSE_TAIL);
    out
}

/// A complete error response; `id` is `null` when absent.
pub fn error(id: Option<&RawValue>, code: i64, message: &str) -> Vec<u8> {
    let id = id.map_or(Cow::Borrowed("null"), single_line);
    let mut out = Vec::with_capacity(64 + id.len() + message.len());
    out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
    out.extend_from_slice(id.as_bytes());
    out.extend_from_slice(b",\"error\":{\"code\":");
    out.extend_from_slice(code.to_string().as_bytes());
    out.extend_from_slice(b",\"message\":");
    write_str(&mut out, message);
    out.extend_from_slice(b"}}");
    out
}

/// Appends `s` as a JSON string literal (quotes included), escaping only what JSON requires.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.reserve(s.len() + 2);
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if escape.is_empty() {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xf)]);
        } else {
            out.extend_from_slice(escape);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// One outgoing JSON-RPC message as byte chunks whose concatenation is the JSON text, so a
/// large payload can be sent from a shared buffer without copying it.
#[derive(Debug)]
pub enum Payload {
    /// The whole message in one buffer.
    Inline(Vec<u8>),
    /// `head`, then the shared `body` chunks, then `tail`.
    Spliced {
        /// Everything before the shared part.
        head: Vec<u8>,
        /// The shared part (e.g. slices of the static `large` pattern).
        body: Vec<Bytes>,
        /// Everything after it.
        tail: &'static [u8],
    },
}

impl Payload {
    /// Appends the chunks, in order, to `out`.
    pub fn push_chunks(self, out: &mut Vec<Bytes>) {
        match self {
            Self::Inline(v) => out.push(Bytes::from(v)),
            Self::Spliced { head, body, tail } => {
                out.push(Bytes::from(head));
                out.extend(body);
                out.push(Bytes::from_static(tail));
            }
        }
    }
}

#[cfg(test)]
#[path = "protocol_tests.rs"]
mod tests;

//! The JSON-RPC envelope of a client POST: just enough of each message to route, label and
//! answer it, read without materializing params or results.
//!
//! The gateway forwards bodies verbatim; this module only classifies them. Every member is read
//! as a borrowed [`RawValue`] (validated, never copied), and `params` is looked into only for
//! `tools/call` and `prompts/get` (`name`) and `resources/read` (`uri`) — the values 2026-07-28
//! puts in `Mcp-Name`.
//!
//! Rules (JSON-RPC 2.0 as MCP uses it): the body is UTF-8 JSON (else -32700) and an object or a
//! non-empty array (a batch, allowed by 2025-03-26), else -32600. Each message has
//! `"jsonrpc": "2.0"`; an `id` is a string or a number, or `null` in a response; a request has a
//! string `method` and an `id`, a notification a `method` and no `id`, a response an `id` and
//! exactly one of `result`/`error` and no `method`. Anything else is -32600 with a short reason
//! and the message's id when it is a valid id. In a batch, the first invalid message decides.
//!
//! Speed: [`parse_within`] reads the common body (one object) in one pass with
//! [`super::scan`], the depth limit included, and defers to the full parse below whenever it
//! is unsure, so both give the same answers.
//!
//! Nesting: serde_json skips raw and ignored values with an explicit heap stack rather than
//! recursion, so deep nesting cannot overflow the stack. Deeply nested members are passed
//! through for the backend to judge; a deeply nested top-level array is -32600 ("batch element
//! is not an object"), and an unterminated one is -32700.

use std::borrow::Cow;

use bytes::Bytes;
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use super::scan::Members;

/// JSON-RPC "Parse error".
pub const PARSE_ERROR: i32 = -32700;
/// JSON-RPC "Invalid Request".
pub const INVALID_REQUEST: i32 = -32600;

/// Method names with their own metric label; everything else is `"other"`.
pub const KNOWN_METHODS: &[&str] = &[
    "initialize",
    "ping",
    "tools/list",
    "tools/call",
    "resources/list",
    "resources/read",
    "resources/templates/list",
    "resources/subscribe",
    "resources/unsubscribe",
    "prompts/list",
    "prompts/get",
    "completion/complete",
    "logging/setLevel",
    "sampling/createMessage",
    "elicitation/create",
    "roots/list",
    "tasks/get",
    "tasks/result",
    "tasks/list",
    "tasks/cancel",
    "notifications/initialized",
    "notifications/cancelled",
    "notifications/progress",
    "notifications/message",
    "notifications/roots/list_changed",
    "notifications/tools/list_changed",
    "notifications/resources/list_changed",
    "notifications/resources/updated",
    "notifications/prompts/list_changed",
    "notifications/elicitation/complete",
    "notifications/tasks/status",
];

/// What a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Has `method` and `id`; expects a response.
    Request,
    /// Has `method`, no `id`.
    Notification,
    /// Has `id` and `result` or `error` (error responses included).
    Response,
}

/// The parts of one JSON-RPC message the gateway needs.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// Request, notification or response.
    pub kind: Kind,
    /// The `id` exactly as sent (string, number, or `null` in a response).
    pub id: Option<Box<RawValue>>,
    /// The method of a request or notification (borrowed from [`KNOWN_METHODS`] when known).
    pub method: Option<Cow<'static, str>>,
    /// `params.name` for `tools/call`/`prompts/get`, `params.uri` for `resources/read`.
    pub name: Option<String>,
}

impl Envelope {
    /// Bounded metric label: the method's label, or `"response"` for responses.
    pub fn label(&self) -> &'static str {
        match (&self.kind, &self.method) {
            (Kind::Response, _) | (_, None) => "response",
            // Only known methods are stored borrowed.
            (_, Some(Cow::Borrowed(known))) => known,
            (_, Some(Cow::Owned(method))) => method_label(method),
        }
    }
}

/// A POST body: one message or a batch.
#[derive(Debug, Clone)]
pub enum Body {
    /// A single message.
    Single(Envelope),
    /// A JSON array of messages (2025-03-26 only); never empty when parsed.
    Batch(Vec<Envelope>),
}

impl Body {
    /// All messages, in order.
    pub fn messages(&self) -> &[Envelope] {
        match self {
            Self::Single(env) => std::slice::from_ref(env),
            Self::Batch(envs) => envs,
        }
    }

    /// True for a single `initialize` request. A batch never counts: the spec forbids
    /// `initialize` in a batch, so such a body is left for the backend to reject.
    pub fn is_initialize(&self) -> bool {
        matches!(self, Self::Single(env)
            if env.kind == Kind::Request && env.method.as_deref() == Some("initialize"))
    }

    /// The first message id in the body, for error replies.
    pub fn first_id(&self) -> Option<&RawValue> {
        self.messages().iter().find_map(|env| env.id.as_deref())
    }

    /// True when no message is a request, i.e. the server answers 202 with no body.
    pub fn only_notifications_or_responses(&self) -> bool {
        self.messages().iter().all(|env| env.kind != Kind::Request)
    }

    /// The first method in the body.
    pub fn first_method(&self) -> Option<&str> {
        self.messages().iter().find_map(|env| env.method.as_deref())
    }

    /// The metric label of the first method, or `"response"` when there is none.
    pub fn first_label(&self) -> &'static str {
        match self.messages().iter().find_map(|env| env.method.as_ref()) {
            Some(Cow::Borrowed(known)) => known,
            Some(Cow::Owned(method)) => method_label(method),
            None => "response",
        }
    }

    /// Number of messages.
    pub fn len(&self) -> usize {
        self.messages().len()
    }

    /// True only for an empty batch, which [`parse`] never returns.
    pub fn is_empty(&self) -> bool {
        self.messages().is_empty()
    }
}

/// Why a body is not an acceptable JSON-RPC message.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    /// Not JSON (-32700).
    #[error("invalid JSON: {0}")]
    Parse(#[source] serde_json::Error),
    /// JSON, but not a valid JSON-RPC message (-32600).
    #[error("invalid JSON-RPC message: {reason}")]
    InvalidRequest {
        /// Short, fixed description.
        reason: &'static str,
        /// The offending message's id, when it had a valid one.
        id: Option<Box<RawValue>>,
    },
}

impl EnvelopeError {
    /// The JSON-RPC error code.
    pub fn code(&self) -> i32 {
        match self {
            Self::Parse(_) => PARSE_ERROR,
            Self::InvalidRequest { .. } => INVALID_REQUEST,
        }
    }

    /// The id to answer with (`null` when `None`).
    pub fn id(&self) -> Option<&RawValue> {
        match self {
            Self::Parse(_) => None,
            Self::InvalidRequest { id, .. } => id.as_deref(),
        }
    }

    /// The standard JSON-RPC message for the code.
    pub fn message(&self) -> &'static str {
        match self {
            Self::Parse(_) => "Parse error",
            Self::InvalidRequest { .. } => "Invalid Request",
        }
    }

    /// Short, fixed reason (safe as a log field or in `error.data.reason`).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Parse(_) => "invalid json",
            Self::InvalidRequest { reason, .. } => reason,
        }
    }

    /// The complete JSON-RPC error response body for this error.
    pub fn to_body(&self) -> Bytes {
        error_body(self.id(), self.code(), self.message(), self.reason())
    }
}

/// Every member as a borrowed raw value; unknown members are skipped without allocating.
#[derive(Deserialize)]
struct RawMessage<'a> {
    #[serde(borrow, default, deserialize_with = "present")]
    jsonrpc: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    id: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    method: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    params: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    result: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    error: Option<&'a RawValue>,
}

/// `Some` whenever the member is there, even when it is `null`.
fn present<'a, D: Deserializer<'a>>(de: D) -> Result<Option<&'a RawValue>, D::Error> {
    <&'a RawValue>::deserialize(de).map(Some)
}

/// The members [`classify`] looks at: raw JSON text, and the id as a `RawValue` to keep.
struct Raw<'a> {
    m: Members<'a>,
    id: Option<&'a RawValue>,
}

impl<'a> From<RawMessage<'a>> for Raw<'a> {
    fn from(r: RawMessage<'a>) -> Self {
        let text = |v: Option<&'a RawValue>| v.map(RawValue::get);
        let (jsonrpc, method, params, result, error) =
            (text(r.jsonrpc), text(r.method), text(r.params), text(r.result), text(r.error));
        let m = Members { jsonrpc, id: text(r.id), method, params, result, error, params_names: None };
        Self { m, id: r.id }
    }
}

#[derive(Deserialize)]
struct NameParams<'a> {
    #[serde(borrow, default)]
    name: Option<&'a RawValue>,
    #[serde(borrow, default)]
    uri: Option<&'a RawValue>,
}

/// The one-pass reading of a single-object body nested at most `max_depth` deep: `Some` with
/// exactly what [`parse`] answers (after a passed depth check), or `None` when the body is
/// anything else (a batch, invalid JSON, too deep, an unusual object); then the caller checks
/// the depth and calls [`parse`].
pub fn parse_within(bytes: &[u8], max_depth: usize) -> Option<Result<Body, EnvelopeError>> {
    let text = std::str::from_utf8(bytes).ok()?;
    let m = super::scan::top_object(text, max_depth)?;
    // The id is short; re-reading it is how a borrowed `RawValue` is made without `unsafe`.
    let id = match m.id {
        Some(id) => Some(serde_json::from_str::<&RawValue>(id).ok()?),
        None => None,
    };
    let raw = Raw { m, id };
    Some(classify(raw).map(Body::Single))
}

/// Parses a POST body into its envelope(s).
pub fn parse(bytes: &[u8]) -> Result<Body, EnvelopeError> {
    // serde_json skips ignored strings without checking UTF-8, so check the whole body once.
    let text = std::str::from_utf8(bytes).map_err(|err| {
        EnvelopeError::Parse(serde::de::Error::custom(format_args!(
            "body is not UTF-8 (at byte {})",
            err.valid_up_to()
        )))
    })?;
    match text.trim_start_matches(|c: char| c.is_ascii_whitespace()).as_bytes().first() {
        Some(b'{') => match serde_json::from_str::<RawMessage<'_>>(text) {
            Ok(raw) => classify(raw.into()).map(Body::Single),
            Err(err) => Err(data_or_parse_error(text, err, "duplicate member")),
        },
        Some(b'[') => {
            let items = serde_json::from_str::<Vec<&RawValue>>(text)
                .map_err(|err| data_or_parse_error(text, err, "invalid batch"))?;
            if items.is_empty() {
                return Err(invalid("empty batch", None));
            }
            items.into_iter().map(parse_batch_item).collect::<Result<_, _>>().map(Body::Batch)
        }
        _ => match serde_json::from_str::<serde::de::IgnoredAny>(text) {
            Ok(_) => Err(invalid("not an object or array", None)),
            Err(err) => Err(EnvelopeError::Parse(err)),
        },
    }
}

fn parse_batch_item(item: &RawValue) -> Result<Envelope, EnvelopeError> {
    if !item.get().starts_with('{') {
        return Err(invalid("batch element is not an object", None));
    }
    // The whole body already parsed, so only data errors (duplicates) remain here.
    serde_json::from_str::<RawMessage<'_>>(item.get())
        .map_err(|_| invalid("duplicate member", None))
        .and_then(|raw| classify(raw.into()))
}

/// A serde error on well-formed JSON is a structure problem (-32600); otherwise -32700.
fn data_or_parse_error(text: &str, err: serde_json::Error, reason: &'static str) -> EnvelopeError {
    if err.is_data() && serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok() {
        invalid(reason, None)
    } else {
        EnvelopeError::Parse(err)
    }
}

fn invalid(reason: &'static str, id: Option<&RawValue>) -> EnvelopeError {
    EnvelopeError::InvalidRequest { reason, id: id.map(ToOwned::to_owned) }
}

#[derive(PartialEq)]
enum IdShape {
    Valid,
    Null,
    Invalid,
}

fn id_shape(raw: &RawValue) -> IdShape {
    match raw.get().as_bytes().first() {
        Some(b'"' | b'-' | b'0'..=b'9') => IdShape::Valid,
        Some(b'n') => IdShape::Null,
        _ => IdShape::Invalid,
    }
}

/// The text of a JSON string value (raw JSON text), borrowed unless it has escapes.
fn json_str(text: &str) -> Option<Cow<'_, str>> {
    let inner = text.strip_prefix('"')?.strip_suffix('"')?;
    if inner.contains('\\') {
        serde_json::from_str::<String>(text).ok().map(Cow::Owned)
    } else {
        Some(Cow::Borrowed(inner))
    }
}

fn classify(raw: Raw<'_>) -> Result<Envelope, EnvelopeError> {
    // Only a string or number id is echoed back in an error.
    let echo_id = raw.id.filter(|id| id_shape(id) == IdShape::Valid);
    let fail = |reason| Err(invalid(reason, echo_id));
    match raw.m.jsonrpc.map(json_str) {
        None => return fail("missing jsonrpc"),
        Some(Some(v)) if v == "2.0" => {}
        Some(_) => return fail("jsonrpc must be \"2.0\""),
    }
    let id_is_null = match raw.id.map(id_shape) {
        Some(IdShape::Invalid) => return fail("id must be a string or number"),
        shape => shape == Some(IdShape::Null),
    };
    let id = raw.id.map(ToOwned::to_owned);
    if let Some(method) = raw.m.method {
        let Some(method) = json_str(method) else {
            return fail("method must be a string");
        };
        if raw.m.result.is_some() || raw.m.error.is_some() {
            return fail("message has both method and result or error");
        }
        if id_is_null {
            return fail("request id must not be null");
        }
        let kind = if id.is_some() { Kind::Request } else { Kind::Notification };
        let name = raw.m.params.and_then(|params| name_of(&method, params, raw.m.params_names));
        let method = match known_method(&method) {
            Some(known) => Cow::Borrowed(known),
            None => Cow::Owned(method.into_owned()),
        };
        return Ok(Envelope { kind, id, method: Some(method), name });
    }
    match (raw.m.result.is_some(), raw.m.error.is_some(), id.is_some()) {
        (true, true, _) => fail("response has both result and error"),
        (false, false, _) => fail("message has no method, result or error"),
        (_, _, false) => fail("response without id"),
        (_, _, true) => Ok(Envelope { kind: Kind::Response, id, method: None, name: None }),
    }
}

/// `params.name` / `params.uri` for the methods that route by it; `None` if absent or odd.
fn name_of(method: &str, params: &str, found: Option<super::scan::ParamNames<'_>>) -> Option<String> {
    let wants_uri = match method {
        "tools/call" | "prompts/get" => false,
        "resources/read" | "resources/subscribe" | "resources/unsubscribe" => true,
        _ => return None,
    };
    if !params.starts_with('{') {
        return None;
    }
    let value = match found {
        Some(found) if found.repeated => return None,
        Some(found) => if wants_uri { found.uri } else { found.name }?,
        None => match super::scan::name_member(params, if wants_uri { "uri" } else { "name" }) {
            Some(value) => value?,
            None => {
                let parsed: NameParams<'_> = serde_json::from_str(params).ok()?;
                if wants_uri { parsed.uri } else { parsed.name }?.get()
            }
        },
    };
    json_str(value).map(Cow::into_owned)
}

/// A JSON-RPC error response produced by the gateway:
/// `{"jsonrpc":"2.0","id":<id|null>,"error":{"code":..,"message":..,"data":{"reason":..,"source":"mcp-gateway"}}}`.
/// The id is written verbatim; `message` and `reason` are JSON-escaped.
pub fn error_body(id: Option<&RawValue>, code: i32, message: &str, reason: &str) -> Bytes {
    // Serializing a `&str` cannot fail.
    let quote = |text: &str| serde_json::to_string(text).unwrap_or_default();
    let id = id.map_or("null", RawValue::get);
    let (message, reason) = (quote(message), quote(reason));
    Bytes::from(format!(
        r#"{{"jsonrpc":"2.0","id":{id},"error":{{"code":{code},"message":{message},"data":{{"reason":{reason},"source":"mcp-gateway"}}}}}}"#
    ))
}

/// A bounded metric label for a method name: itself if in [`KNOWN_METHODS`], else `"other"`.
/// Responses have no method; [`Envelope::label`] gives them `"response"`.
pub fn method_label(method: &str) -> &'static str {
    known_method(method).unwrap_or("other")
}

/// `method` as its entry in [`KNOWN_METHODS`].
fn known_method(method: &str) -> Option<&'static str> {
    KNOWN_METHODS.iter().copied().find(|known| *known == method)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn single(text: &str) -> Envelope {
        match parse(text.as_bytes()).unwrap() {
            Body::Single(env) => env,
            Body::Batch(_) => panic!("expected a single message"),
        }
    }

    fn rejected(text: &str) -> EnvelopeError {
        match parse(text.as_bytes()) {
            Ok(body) => panic!("accepted {text:?}: {body:?}"),
            Err(err) => err,
        }
    }

    fn reason(text: &str) -> &'static str {
        let err = rejected(text);
        assert_eq!(err.code(), INVALID_REQUEST, "{text}: {err}");
        err.reason()
    }

    #[test]
    fn request_notification_and_responses() {
        let req = single(r#" {"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}} "#);
        assert_eq!(req.kind, Kind::Request);
        assert_eq!(req.id.as_deref().map(RawValue::get), Some("1"));
        assert_eq!(req.method.as_deref(), Some("tools/list"));
        assert_eq!(req.name, None);
        assert_eq!(req.label(), "tools/list");

        let note = single(r#"{"method":"notifications/initialized","jsonrpc":"2.0"}"#);
        assert_eq!((note.kind, note.id.is_none()), (Kind::Notification, true));

        let ok = single(r#"{"jsonrpc":"2.0","id":"a","result":{"tools":[]}}"#);
        assert_eq!((ok.kind, ok.label()), (Kind::Response, "response"));
        let null_result = single(r#"{"jsonrpc":"2.0","id":2,"result":null}"#);
        assert_eq!(null_result.kind, Kind::Response);
        let err = single(r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"x"}}"#);
        assert_eq!(err.kind, Kind::Response);
        assert_eq!(err.id.as_deref().map(RawValue::get), Some("null"));
    }

    #[test]
    fn body_helpers() {
        let init = parse(br#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{}}"#).unwrap();
        assert!(init.is_initialize());
        assert!(!init.only_notifications_or_responses());
        assert_eq!((init.len(), init.is_empty()), (1, false));
        let batch = parse(
            br#"[{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":3}},
                 {"jsonrpc":"2.0","id":"r1","result":{}},
                 {"jsonrpc":"2.0","id":7,"method":"initialize"}]"#,
        )
        .unwrap();
        assert_eq!(batch.len(), 3);
        assert!(!batch.is_initialize());
        assert_eq!(batch.first_id().map(RawValue::get), Some("\"r1\""));
        assert_eq!(batch.first_method(), Some("notifications/cancelled"));
        assert!(!batch.only_notifications_or_responses());
        let kinds: Vec<Kind> = batch.messages().iter().map(|e| e.kind).collect();
        assert_eq!(kinds, [Kind::Notification, Kind::Response, Kind::Request]);
        let quiet =
            parse(br#"[{"jsonrpc":"2.0","method":"notifications/progress"},{"jsonrpc":"2.0","id":1,"error":{}}]"#)
                .unwrap();
        assert!(quiet.only_notifications_or_responses());
        assert_eq!(quiet.first_id().map(RawValue::get), Some("1"));
        assert!(Body::Batch(Vec::new()).is_empty());
    }

    #[test]
    fn ids_are_kept_verbatim() {
        for id in [r#""abc""#, r#""a\"b""#, "1.5", "-3", "1e3", "12345678901234567890123", "0"] {
            let env = single(&format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"ping"}}"#));
            assert_eq!(env.id.as_deref().map(RawValue::get), Some(id));
        }
    }

    /// `body | reason | echoed id` rows; `-` means no id is echoed.
    const INVALID: &str = r#"
        {"id":1,"method":"ping"}                                    | missing jsonrpc | 1
        {"jsonrpc":"1.0","id":"a","method":"ping"}                  | jsonrpc must be "2.0" | "a"
        {"jsonrpc":2.0,"id":1,"method":"ping"}                      | jsonrpc must be "2.0" | 1
        {"jsonrpc":"2.0","id":{},"method":"ping"}                   | id must be a string or number | -
        {"jsonrpc":"2.0","id":[1],"method":"ping"}                  | id must be a string or number | -
        {"jsonrpc":"2.0","id":true,"method":"ping"}                 | id must be a string or number | -
        {"jsonrpc":"2.0","id":null,"method":"ping"}                 | request id must not be null | -
        {"jsonrpc":"2.0","id":1,"method":5}                         | method must be a string | 1
        {"jsonrpc":"2.0","id":"x-1","method":null}                  | method must be a string | "x-1"
        {"jsonrpc":"2.0","id":1,"method":"ping","result":{}}        | message has both method and result or error | 1
        {"jsonrpc":"2.0","method":"ping","error":{}}                | message has both method and result or error | -
        {"jsonrpc":"2.0","id":1,"result":{},"error":{}}             | response has both result and error | 1
        {"jsonrpc":"2.0","id":-2.5}                                 | message has no method, result or error | -2.5
        {"jsonrpc":"2.0","result":{}}                               | response without id | -
        {"jsonrpc":"2.0","id":1,"id":2,"method":"ping"}             | duplicate member | -
        [{"jsonrpc":"2.0","method":"ping"},{"jsonrpc":"2.0","id":9}] | message has no method, result or error | 9
        [{"jsonrpc":"2.0","method":"ping"},1]                       | batch element is not an object | -
        [[{"jsonrpc":"2.0","method":"ping"}]]                       | batch element is not an object | -
        []                                                          | empty batch | -
        5                                                           | not an object or array | -
        "x"                                                         | not an object or array | -
        null                                                        | not an object or array | -
    "#;

    #[test]
    fn invalid_messages_have_reasons_and_ids() {
        for row in INVALID.lines().filter(|l| !l.trim().is_empty()) {
            let cols: Vec<&str> = row.split(" | ").map(str::trim).collect();
            let err = rejected(cols[0]);
            assert_eq!((err.code(), err.reason()), (INVALID_REQUEST, cols[1]), "{row}");
            let want_id = Some(cols[2]).filter(|id| *id != "-");
            assert_eq!(err.id().map(RawValue::get), want_id, "{row}");
        }
        assert_eq!(reason(" [ ] "), "empty batch");
    }

    #[test]
    fn invalid_json_is_a_parse_error() {
        for text in [
            "",
            "   ",
            "{",
            "{\"jsonrpc\":\"2.0\",",
            "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"} x",
            "[{\"jsonrpc\":\"2.0\"},",
            "nul",
            "{'a':1}",
            "{\"jsonrpc\":\"2.0\",\"id\":1,\"id\":2,",
        ] {
            let err = rejected(text);
            assert_eq!(err.code(), PARSE_ERROR, "{text:?}");
            assert!(err.id().is_none());
        }
        assert_eq!(rejected("{\"a\":\"\u{0}\"}").code(), PARSE_ERROR);
        assert_eq!(parse(b"{\"a\":\"\xff\"}").unwrap_err().code(), PARSE_ERROR);
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let depth = 100_000;
        let open = "[".repeat(depth);
        assert_eq!(rejected(&open).code(), PARSE_ERROR);
        let closed = format!("{open}{}", "]".repeat(depth));
        assert_eq!(reason(&closed), "batch element is not an object");
        let objects = "{\"a\":".repeat(depth);
        assert_eq!(rejected(&objects).code(), PARSE_ERROR);
        let closed_objects = format!("{objects}1{}", "}".repeat(depth));
        assert_eq!(reason(&closed_objects), "missing jsonrpc");
        // Deep members are skipped without recursion and left for the backend.
        let in_params = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":{open}{}}}}}"#,
            "]".repeat(depth)
        );
        let env = single(&in_params);
        assert_eq!((env.kind, env.name), (Kind::Request, None));
        // Within the limit is fine.
        let shallow =
            format!(r#"{{"jsonrpc":"2.0","id":1,"method":"x","params":{}{}}}"#, "[".repeat(100), "]".repeat(100));
        assert_eq!(single(&shallow).kind, Kind::Request);
    }

    /// `body | expected name` rows; `-` means no name.
    const NAMES: &str = r#"
        {"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"arguments":{"name":"no"},"name":"get_weather"}} | get_weather
        {"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"sum\u00e9\"q"}}           | sumé"q
        {"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"name":"n","uri":"file:///a b.txt"}} | file:///a b.txt
        {"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":5}}                      | -
        {"jsonrpc":"2.0","id":1,"method":"tools/call","params":["get_weather"]}                 | -
        {"jsonrpc":"2.0","id":1,"method":"tools/call"}                                          | -
        {"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"name":"n"}}                | -
        {"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"name":"n"}}                    | -
    "#;

    #[test]
    fn names_for_routing_methods() {
        for row in NAMES.lines().filter(|l| !l.trim().is_empty()) {
            let (body, name) = row.split_once(" | ").unwrap();
            let want = Some(name.trim()).filter(|n| *n != "-");
            assert_eq!(single(body.trim()).name.as_deref(), want, "{row}");
        }
    }

    #[test]
    fn unicode_and_escaped_methods() {
        let env = single(r#"{"jsonrpc":"2.0","id":1,"method":"ツール/呼ぶ"}"#);
        assert_eq!(env.method.as_deref(), Some("ツール/呼ぶ"));
        assert_eq!(env.label(), "other");
        let escaped = single(r#"{"jsonrpc":"\u0032.0","id":1,"method":"\u0074ools/call","params":{"name":"t"}}"#);
        assert_eq!(escaped.method.as_deref(), Some("tools/call"));
        assert_eq!(escaped.name.as_deref(), Some("t"));
    }

    #[test]
    fn huge_result_parses() {
        let blob = "x".repeat(1 << 20);
        let text = format!(r#"{{"jsonrpc":"2.0","id":1,"result":{{"content":[{{"type":"text","text":"{blob}"}}]}}}}"#);
        let env = single(&text);
        assert_eq!(env.kind, Kind::Response);
        assert_eq!(env.id.as_deref().map(RawValue::get), Some("1"));
        let batch = format!("[{text},{text}]");
        assert_eq!(parse(batch.as_bytes()).unwrap().len(), 2);
    }

    #[test]
    fn error_body_is_escaped_valid_json() {
        let id = RawValue::from_string("\"req-\\\"1\"".to_owned()).unwrap();
        let body = error_body(Some(&id), -32600, "Bad \"thing\"\n\u{1}", "ünïcode </script>");
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["jsonrpc"], "2.0");
        assert_eq!(v["id"], "req-\"1");
        assert_eq!(v["error"]["code"], -32600);
        assert_eq!(v["error"]["message"], "Bad \"thing\"\n\u{1}");
        assert_eq!(v["error"]["data"]["reason"], "ünïcode </script>");
        assert_eq!(v["error"]["data"]["source"], "mcp-gateway");
        let null_id: Value = serde_json::from_slice(&error_body(None, -32700, "Parse error", "x")).unwrap();
        assert!(null_id["id"].is_null());
    }

    #[test]
    fn errors_render_their_own_bodies() {
        let err = rejected(r#"{"jsonrpc":"2.0","id":42,"method":"ping","error":{}}"#);
        let v: Value = serde_json::from_slice(&err.to_body()).unwrap();
        assert_eq!((v["id"].as_i64(), v["error"]["code"].as_i64()), (Some(42), Some(-32600)));
        assert_eq!(v["error"]["message"], "Invalid Request");
        let parse_err = rejected("{");
        let v: Value = serde_json::from_slice(&parse_err.to_body()).unwrap();
        assert_eq!((v["id"].is_null(), v["error"]["code"].as_i64()), (true, Some(-32700)));
        assert_eq!(v["error"]["data"]["reason"], "invalid json");
    }

    #[test]
    fn method_labels_are_bounded() {
        for &known in KNOWN_METHODS {
            assert_eq!(method_label(known), known);
        }
        assert_eq!(method_label("tools/call"), "tools/call");
        assert_eq!(method_label("Tools/Call"), "other");
        assert_eq!(method_label(""), "other");
        assert_eq!(method_label(&"x".repeat(10_000)), "other");
    }
}

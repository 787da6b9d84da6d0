//! Filtering list responses to what the caller may use: `tools/list`
//! (`result.tools[].name`), `prompts/list` (`result.prompts[].name`),
//! `resources/list` (`result.resources[].uri`) and `resources/templates/list`
//! (`result.resourceTemplates[].uriTemplate`, matched against the resource
//! globs as text), in a JSON body or in the SSE events of a streamed one. Only that response is rewritten; a message is
//! re-serialized only when an item was removed, everything else passes
//! through byte for byte.
//!
//! On a Streamable HTTP POST the gateway knows the request was a list call, so
//! only that category is filtered. On server→client streams (legacy SSE, where
//! every response travels on the GET stream) any response carrying one of the
//! restricted lists is filtered.

use crate::mcp::sse::event_end;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame};
use serde_json::Value;

use super::Caller;
use super::policy::{Category, Grant};
use crate::proxy::forward::BoxError;

/// Largest JSON body or single SSE event the filter will hold.
const MAX_HELD: usize = 16 * 1024 * 1024;

/// Which lists to filter, for whom.
#[derive(Debug, Clone)]
pub struct ListFilter {
    caller: Arc<Caller>,
    only: Option<Category>,
}

impl ListFilter {
    /// Filter `category` lists (a list request's response), if the caller is restricted there.
    pub fn for_list(caller: &Arc<Caller>, category: Category) -> Option<Self> {
        let restricted = *caller.access.grant(category) != Grant::Any;
        restricted.then(|| Self { caller: Arc::clone(caller), only: Some(category) })
    }

    /// Filter every restricted list on a stream, if the caller is restricted at all.
    pub fn for_stream(caller: &Arc<Caller>) -> Option<Self> {
        (!caller.access.is_unrestricted()).then(|| Self { caller: Arc::clone(caller), only: None })
    }

    /// Filter one JSON-RPC message, or each message of an array. Returns whether anything was removed.
    pub fn rewrite(&self, value: &mut Value) -> bool {
        match value {
            Value::Array(items) => items.iter_mut().fold(false, |changed, v| self.rewrite_one(v) | changed),
            v => self.rewrite_one(v),
        }
    }

    fn rewrite_one(&self, msg: &mut Value) -> bool {
        let Some(result) = msg.get_mut("result").and_then(Value::as_object_mut) else { return false };
        let mut changed = false;
        for c in Category::ALL {
            if self.only.is_some_and(|o| o != c) {
                continue;
            }
            let grant = self.caller.access.grant(c);
            if *grant == Grant::Any {
                continue;
            }
            for (member, field) in c.list_fields() {
                if let Some(Value::Array(items)) = result.get_mut(*member) {
                    let before = items.len();
                    items.retain(|item| item.get(*field).and_then(Value::as_str).is_some_and(|n| grant.allows(n)));
                    changed |= items.len() != before;
                }
            }
        }
        changed
    }

    /// Rewrite the bytes of a whole JSON body (unchanged bytes if nothing was removed).
    fn rewrite_bytes(&self, bytes: Bytes) -> Bytes {
        let Ok(mut value) = serde_json::from_slice::<Value>(&bytes) else { return bytes };
        if !self.rewrite(&mut value) {
            return bytes;
        }
        serde_json::to_vec(&value).map(Bytes::from).unwrap_or(bytes)
    }

    /// Rewrite one complete SSE event (its bytes, blank line included).
    fn rewrite_event(&self, event: Bytes) -> Bytes {
        let Ok(text) = std::str::from_utf8(&event) else { return event };
        let mut data: Vec<&str> = Vec::new();
        let mut others: Vec<&str> = Vec::new();
        for line in text.split(['\n', '\r']).filter(|l| !l.is_empty()) {
            match line.strip_prefix("data") {
                Some(rest) if rest.is_empty() || rest.starts_with(':') => {
                    let v = rest.strip_prefix(':').unwrap_or(rest);
                    data.push(v.strip_prefix(' ').unwrap_or(v));
                }
                _ => others.push(line),
            }
        }
        if data.is_empty() {
            return event;
        }
        let Ok(mut value) = serde_json::from_str::<Value>(&data.join("\n")) else { return event };
        if !self.rewrite(&mut value) {
            return event;
        }
        let mut out = String::with_capacity(event.len());
        for line in others {
            out.push_str(line);
            out.push('\n');
        }
        out.push_str("data: ");
        out.push_str(&value.to_string());
        out.push_str("\n\n");
        Bytes::from(out)
    }

    /// Wrap a JSON response body.
    pub fn json<B>(self, inner: B) -> Filtered<B> {
        Filtered { inner, filter: self, sse: false, buf: BytesMut::new(), done: false }
    }

    /// Wrap an SSE response body.
    pub fn sse<B>(self, inner: B) -> Filtered<B> {
        Filtered { inner, filter: self, sse: true, buf: BytesMut::new(), done: false }
    }
}

/// A response body with list responses filtered (whole JSON, or event by event).
#[derive(Debug)]
pub struct Filtered<B> {
    inner: B,
    filter: ListFilter,
    sse: bool,
    buf: BytesMut,
    done: bool,
}

impl<B> Body for Filtered<B>
where
    B: Body<Data = Bytes, Error = BoxError> + Unpin,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        loop {
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    let Ok(data) = frame.into_data() else { continue };
                    this.buf.extend_from_slice(&data);
                    if this.buf.len() > MAX_HELD {
                        this.done = true;
                        return Poll::Ready(Some(Err("list response too large for the gateway's tool policy".into())));
                    }
                    if !this.sse {
                        continue;
                    }
                    let mut out = BytesMut::new();
                    while let Some(end) = event_end(&this.buf) {
                        let event = this.buf.split_to(end).freeze();
                        out.extend_from_slice(&this.filter.rewrite_event(event));
                    }
                    if !out.is_empty() {
                        return Poll::Ready(Some(Ok(Frame::data(out.freeze()))));
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(None) => {
                    this.done = true;
                    let rest = this.buf.split().freeze();
                    let out = if this.sse { rest } else { this.filter.rewrite_bytes(rest) };
                    return Poll::Ready((!out.is_empty()).then(|| Ok(Frame::data(out))));
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;
    use serde_json::json;

    use super::*;
    use crate::auth::policy::Access;

    fn caller(tools: &[&str]) -> Arc<Caller> {
        let mut c = Caller::for_tests("bob");
        c.access = Access::only_tools(tools);
        Arc::new(c)
    }

    fn list() -> Value {
        json!({"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"echo"},{"name":"large"},{"name":"whoami"},{"x":1}]}})
    }

    #[test]
    fn rewrites_only_restricted_lists() {
        let c = caller(&["echo", "who*"]);
        let f = ListFilter::for_list(&c, Category::Tools).unwrap();
        let mut v = list();
        assert!(f.rewrite(&mut v));
        assert_eq!(v["result"]["tools"], json!([{"name":"echo"},{"name":"whoami"}]));
        assert!(!f.rewrite(&mut v), "second pass removes nothing");
        let mut batch = json!([list(), {"jsonrpc":"2.0","id":2,"result":{}}]);
        assert!(f.rewrite(&mut batch));
        assert!(ListFilter::for_list(&c, Category::Prompts).is_none());
        assert!(ListFilter::for_list(&Arc::new(Caller::for_tests("x")), Category::Tools).is_none());
    }

    async fn run(f: ListFilter, sse: bool, chunks: &[&str]) -> String {
        let frames: Vec<Result<Frame<Bytes>, BoxError>> =
            chunks.iter().map(|c| Ok(Frame::data(Bytes::from(c.to_string())))).collect();
        let inner = http_body_util::StreamBody::new(futures_util::stream::iter(frames));
        let body = if sse { f.sse(inner) } else { f.json(inner) };
        String::from_utf8(body.collect().await.unwrap().to_bytes().to_vec()).unwrap()
    }

    #[tokio::test]
    async fn json_and_sse_bodies() {
        let c = caller(&["echo"]);
        let f = ListFilter::for_list(&c, Category::Tools).unwrap();
        let text = list().to_string();
        let (a, b) = text.split_at(20);
        let out: Value = serde_json::from_str(&run(f.clone(), false, &[a, b]).await).unwrap();
        assert_eq!(out["result"]["tools"], json!([{"name":"echo"}]));
        let untouched = r#"{"jsonrpc":"2.0","id":1,"result":{"content":[]}}"#;
        assert_eq!(run(f.clone(), false, &[untouched]).await, untouched);

        let event = format!("event: message\r\nid: 7\r\ndata: {text}\r\n\r\n");
        let (x, y) = event.split_at(30);
        let ping = ": ping\n\n";
        let out = run(f, true, &[ping, x, y, "data: {\"jsonrpc\":\"2.0\",\"method\":\"n\"}\n\n", "tail"]).await;
        assert!(out.starts_with(": ping\n\nevent: message\nid: 7\ndata: {"), "{out}");
        assert!(out.contains(r#""tools":[{"name":"echo"}]"#), "{out}");
        assert!(!out.contains("large"), "{out}");
        assert!(out.ends_with("data: {\"jsonrpc\":\"2.0\",\"method\":\"n\"}\n\ntail"), "{out}");
    }

    #[test]
    fn resources_prompts_and_templates() {
        let mut c = Caller::for_tests("bob");
        c.access = Access::restricted(&["*"], &["summarize"], &["file:///docs/*"]);
        let c = Arc::new(c);
        let f = ListFilter::for_list(&c, Category::Resources).unwrap();
        let mut v = json!({"jsonrpc":"2.0","id":1,"result":{"resources":[
            {"uri":"file:///docs/a.md"},{"uri":"file:///etc/passwd"}]}});
        assert!(f.rewrite(&mut v));
        assert_eq!(v["result"]["resources"], json!([{"uri":"file:///docs/a.md"}]));
        let mut v = json!({"jsonrpc":"2.0","id":2,"result":{"resourceTemplates":[
            {"uriTemplate":"file:///docs/{name}"},{"uriTemplate":"file:///secrets/{name}"},{"name":"no template"}]}});
        assert!(f.rewrite(&mut v));
        assert_eq!(v["result"]["resourceTemplates"], json!([{"uriTemplate":"file:///docs/{name}"}]));
        let f = ListFilter::for_list(&c, Category::Prompts).unwrap();
        let mut v = json!({"jsonrpc":"2.0","id":3,"result":{"prompts":[{"name":"summarize"},{"name":"leak"}]}});
        assert!(f.rewrite(&mut v));
        assert_eq!(v["result"]["prompts"], json!([{"name":"summarize"}]));
        let mut v = json!({"jsonrpc":"2.0","id":5,"result":{"tools":[{"name":"any"}]}});
        assert!(!ListFilter::for_list(&c, Category::Tools).unwrap().rewrite(&mut v), "tools: [\"*\"]");
        // On a stream, every restricted list is filtered.
        let f = ListFilter::for_stream(&c).unwrap();
        let mut v = json!({"jsonrpc":"2.0","id":4,"result":{"prompts":[{"name":"leak"}],"tools":[{"name":"x"}]}});
        assert!(f.rewrite(&mut v));
        assert_eq!(v["result"], json!({"prompts":[],"tools":[{"name":"x"}]}));
    }

    #[test]
    fn event_boundaries() {
        assert_eq!(event_end(b"data: x\n\nmore"), Some(9));
        assert_eq!(event_end(b"data: x\r\n\r\n"), Some(11));
        assert_eq!(event_end(b"data: x\r\rmore"), Some(9));
        assert_eq!(event_end(b"data: x\n"), None);
        assert_eq!(event_end(b"data: x\r"), None);
        assert_eq!(event_end(b"\n"), Some(1));
    }
}

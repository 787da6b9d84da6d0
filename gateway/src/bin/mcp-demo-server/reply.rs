//! Building HTTP responses: JSON or SSE answers to POSTs (single, batch, progress), and the
//! small fixed responses (202, errors, plain text).

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Response, StatusCode};

use crate::body::ResponseBody;
use crate::protocol::{self, Payload};
use crate::service::Mode;
use crate::sse;
use crate::tools::Reply;

/// The JSON media type.
pub const JSON: &str = "application/json";

/// The answer to a single request: JSON or one SSE event per the mode; progress is always SSE.
pub fn single_reply(mode: Mode, reply: Reply) -> Response<ResponseBody> {
    match (mode, reply) {
        (Mode::Json, Reply::Done(Payload::Inline(v))) => with_type(StatusCode::OK, JSON, ResponseBody::full(v)),
        (Mode::Json, Reply::Done(p)) => {
            let mut chunks = Vec::with_capacity(4);
            p.push_chunks(&mut chunks);
            with_type(StatusCode::OK, JSON, ResponseBody::chunks(chunks))
        }
        (Mode::Sse, Reply::Done(p)) => {
            let mut chunks = Vec::with_capacity(6);
            sse::push_event(&mut chunks, p);
            sse_response(ResponseBody::chunks(chunks))
        }
        (_, Reply::Progress { notifications, interval, result }) => {
            let mut events: Vec<Bytes> = notifications.into_iter().map(|n| sse::event(Payload::Inline(n))).collect();
            events.push(sse::event(result));
            if interval.is_zero() {
                sse_response(ResponseBody::chunks(events))
            } else {
                sse_response(ResponseBody::Stream(sse::paced(events, interval)))
            }
        }
    }
}

/// Batch answers: a JSON array, or (SSE mode, or progress requested) one event per message.
pub fn batch_reply(mode: Mode, replies: Vec<Reply>) -> Response<ResponseBody> {
    let any_progress = replies.iter().any(|r| matches!(r, Reply::Progress { .. }));
    let mut chunks = Vec::with_capacity(replies.len() * 3 + 2);
    if mode == Mode::Json && !any_progress {
        for (i, reply) in replies.into_iter().enumerate() {
            chunks.push(Bytes::from_static(if i == 0 { b"[" } else { b"," }));
            if let Reply::Done(p) = reply {
                p.push_chunks(&mut chunks);
            }
        }
        chunks.push(Bytes::from_static(b"]"));
        return with_type(StatusCode::OK, JSON, ResponseBody::chunks(chunks));
    }
    for reply in replies {
        match reply {
            Reply::Done(p) => sse::push_event(&mut chunks, p),
            Reply::Progress { notifications, result, .. } => {
                for n in notifications {
                    sse::push_event(&mut chunks, Payload::Inline(n));
                }
                sse::push_event(&mut chunks, result);
            }
        }
    }
    sse_response(ResponseBody::chunks(chunks))
}

/// A 200 `text/event-stream` response.
pub fn sse_response(body: ResponseBody) -> Response<ResponseBody> {
    let mut r = with_type(StatusCode::OK, sse::CONTENT_TYPE, body);
    r.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

/// A response with a status, a content type and a body.
pub fn with_type(status: StatusCode, content_type: &'static str, body: ResponseBody) -> Response<ResponseBody> {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// A plain-text response.
pub fn plain(status: StatusCode, text: &'static str) -> Response<ResponseBody> {
    with_type(status, "text/plain; charset=utf-8", ResponseBody::full(Bytes::from_static(text.as_bytes())))
}

/// A response with no body.
pub fn status_only(status: StatusCode) -> Response<ResponseBody> {
    let mut r = Response::new(ResponseBody::Empty);
    *r.status_mut() = status;
    r
}

/// 202 Accepted, no body (notifications and responses).
pub fn accepted() -> Response<ResponseBody> {
    status_only(StatusCode::ACCEPTED)
}

/// An HTTP error carrying a JSON-RPC error with a null id.
pub fn json_error(status: StatusCode, code: i64, message: &str) -> Response<ResponseBody> {
    with_type(status, JSON, ResponseBody::full(protocol::error(None, code, message)))
}

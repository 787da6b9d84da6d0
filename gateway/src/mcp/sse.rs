//! Streaming `text/event-stream` bodies through the gateway, event by event,
//! never buffered whole.
//!
//! Three jobs, all without re-parsing what passes through:
//! - keepalive: when a stream has been idle for `mcp.sse_keepalive`, write a
//!   `: keepalive` comment so proxies and load balancers in between do not cut
//!   it (the idle-timeout / 1006 symptoms operators hit). Comments are only
//!   injected at an event boundary, so an event that arrives slowly is never
//!   split.
//! - drain: on shutdown, server→client streams end at the next boundary so the
//!   client reconnects (to any replica: session ids are self-routing).
//! - legacy endpoint rewrite: the first `endpoint` event of a 2024-11-05 stream
//!   is rewritten to point at the gateway (see `legacy.rs`); everything else
//!   is passed through byte for byte.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame};
use prometheus::{IntCounter, IntGauge};
use tokio::time::{Instant, Sleep};

use crate::proxy::forward::BoxError;

/// The comment written on idle streams.
const KEEPALIVE: &[u8] = b": keepalive\n\n";
/// How much of a stream the endpoint rewriter may hold before giving up on it.
const MAX_REWRITE_BUFFER: usize = 64 * 1024;

/// Tracks whether everything written so far ends on an event boundary
/// (a blank line), with `\n`, `\r` or `\r\n` line endings.
#[derive(Debug, Clone, Copy, Default)]
pub struct Boundary {
    tail: [u8; 4],
    written: bool,
}

impl Boundary {
    /// Record bytes written.
    pub fn push(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        self.written = true;
        if bytes.len() >= 4 {
            self.tail.copy_from_slice(&bytes[bytes.len() - 4..]);
        } else {
            let n = bytes.len();
            self.tail.copy_within(n.., 0);
            self.tail[4 - n..].copy_from_slice(bytes);
        }
    }

    /// True if a new event (or comment) may start here.
    pub fn at_boundary(&self) -> bool {
        if !self.written {
            return true;
        }
        let t = &self.tail;
        let is_eol = |b: u8| b == b'\n' || b == b'\r';
        // Strip the final line terminator, then the byte before must end a line too.
        let before = if t[2] == b'\r' && t[3] == b'\n' {
            t[1]
        } else if is_eol(t[3]) {
            t[2]
        } else {
            return false;
        };
        is_eol(before)
    }
}

/// Rewrites the data of the first `endpoint` event.
pub type EndpointMapper = Box<dyn FnMut(&str) -> Option<String> + Send>;

/// Holds the start of a legacy stream until its `endpoint` event is rewritten.
struct Rewriter {
    map: EndpointMapper,
    buf: BytesMut,
}

impl Rewriter {
    /// Feed a chunk; returns bytes ready to emit and whether rewriting is done.
    fn push(&mut self, chunk: &[u8]) -> (Bytes, bool) {
        self.buf.extend_from_slice(chunk);
        let mut out = BytesMut::new();
        while let Some(end) = event_end(&self.buf) {
            let event = self.buf.split_to(end);
            match rewrite_endpoint(&event, &mut self.map) {
                Some(rewritten) => {
                    out.extend_from_slice(&rewritten);
                    out.extend_from_slice(&self.buf.split());
                    return (out.freeze(), true);
                }
                None => out.extend_from_slice(&event),
            }
        }
        if self.buf.len() > MAX_REWRITE_BUFFER {
            // Not an MCP legacy stream we understand; stop holding it back.
            out.extend_from_slice(&self.buf.split());
            return (out.freeze(), true);
        }
        (out.freeze(), false)
    }
}

/// Index just past the first blank line in `buf`, if any (shared by the
/// endpoint rewriter and the list filter in `auth::filter`).
pub(crate) fn event_end(buf: &[u8]) -> Option<usize> {
    let mut i = 0;
    let mut line_start = 0;
    while i < buf.len() {
        let eol_len = match buf[i] {
            b'\n' => 1,
            b'\r' if buf.get(i + 1) == Some(&b'\n') => 2,
            // A lone '\r' at the very end may be the start of "\r\n": wait for more.
            b'\r' if i + 1 == buf.len() => return None,
            b'\r' => 1,
            _ => {
                i += 1;
                continue;
            }
        };
        if i == line_start {
            return Some(i + eol_len);
        }
        i += eol_len;
        line_start = i;
    }
    None
}

/// If `event` is an `endpoint` event, return it with its data mapped.
fn rewrite_endpoint(event: &[u8], map: &mut EndpointMapper) -> Option<Bytes> {
    let text = std::str::from_utf8(event).ok()?;
    let mut name = "message";
    let mut data: Vec<&str> = Vec::new();
    let mut others: Vec<&str> = Vec::new();
    for line in text.split_terminator(['\n', '\r']).filter(|l| !l.is_empty()) {
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "event" => name = value,
            "data" => data.push(value),
            _ => others.push(line),
        }
    }
    if name != "endpoint" {
        return None;
    }
    let mapped = map(&data.join("\n"))?;
    let mut out = String::with_capacity(mapped.len() + 64);
    for l in others {
        out.push_str(l);
        out.push('\n');
    }
    out.push_str("event: endpoint\ndata: ");
    out.push_str(&mapped);
    out.push_str("\n\n");
    Some(Bytes::from(out))
}

/// An SSE body passed through with keepalives, drain and optional rewrite.
pub struct SseStream<B> {
    inner: B,
    boundary: Boundary,
    interval: Duration,
    timer: Pin<Box<Sleep>>,
    drain: Option<Pin<Box<dyn Future<Output = ()> + Send + Sync>>>,
    draining: bool,
    rewriter: Option<Rewriter>,
    keepalives: IntCounter,
    _open: StreamGauge,
    done: bool,
}

impl<B> std::fmt::Debug for SseStream<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SseStream").field("boundary", &self.boundary).field("done", &self.done).finish()
    }
}

/// Counts an open stream in `mcp_streams_active` until dropped.
#[derive(Debug)]
pub struct StreamGauge(IntGauge);

impl StreamGauge {
    /// Increment now, decrement on drop.
    pub fn new(g: IntGauge) -> Self {
        g.inc();
        Self(g)
    }
}

impl Drop for StreamGauge {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl<B> SseStream<B> {
    /// Wrap an upstream SSE body.
    pub fn new(
        inner: B,
        interval: Duration,
        drain: Option<Pin<Box<dyn Future<Output = ()> + Send + Sync>>>,
        rewrite: Option<EndpointMapper>,
        keepalives: IntCounter,
        open: StreamGauge,
    ) -> Self {
        Self {
            inner,
            boundary: Boundary::default(),
            interval,
            timer: Box::pin(tokio::time::sleep(interval)),
            drain,
            draining: false,
            rewriter: rewrite.map(|map| Rewriter { map, buf: BytesMut::new() }),
            keepalives,
            _open: open,
            done: false,
        }
    }

    fn emit(&mut self, bytes: Bytes) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.boundary.push(&bytes);
        let next = Instant::now() + self.interval;
        self.timer.as_mut().reset(next);
        Poll::Ready(Some(Ok(Frame::data(bytes))))
    }
}

impl<B> Body for SseStream<B>
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
        if !this.draining {
            if let Some(d) = this.drain.as_mut() {
                if d.as_mut().poll(cx).is_ready() {
                    this.draining = true;
                }
            }
        }
        if this.draining && this.boundary.at_boundary() && this.rewriter.is_none() {
            this.done = true;
            return Poll::Ready(None);
        }
        loop {
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => {
                        if let Some(rw) = this.rewriter.as_mut() {
                            let (out, finished) = rw.push(&data);
                            if finished {
                                this.rewriter = None;
                            }
                            if out.is_empty() {
                                continue;
                            }
                            return this.emit(out);
                        }
                        if data.is_empty() {
                            continue;
                        }
                        return this.emit(data);
                    }
                    // Trailers on an SSE stream: pass them on.
                    Err(frame) => return Poll::Ready(Some(Ok(frame))),
                },
                Poll::Ready(Some(Err(e))) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(None) => {
                    this.done = true;
                    if let Some(rw) = this.rewriter.take() {
                        // Stream ended inside the held prefix: flush it as is.
                        if !rw.buf.is_empty() {
                            return Poll::Ready(Some(Ok(Frame::data(rw.buf.freeze()))));
                        }
                    }
                    return Poll::Ready(None);
                }
                Poll::Pending => break,
            }
        }
        if this.timer.as_mut().poll(cx).is_ready() {
            if this.boundary.at_boundary() && this.rewriter.is_none() {
                this.keepalives.inc();
                return this.emit(Bytes::from_static(KEEPALIVE));
            }
            // Mid-event: never split it; look again after another interval.
            let next = Instant::now() + this.interval;
            this.timer.as_mut().reset(next);
            let _ = this.timer.as_mut().poll(cx);
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }
}

#[cfg(test)]
#[path = "sse_tests.rs"]
mod tests;

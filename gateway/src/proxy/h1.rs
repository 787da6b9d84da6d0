//! HTTP/1.1 to the backend, driven by the request's own task.
//!
//! hyper's client connection is a task of its own, fed through a channel, holding an 8 KiB
//! read and an 8 KiB write buffer for its whole life. The gateway's upstream request body
//! is always whole (the gateway has parsed it), so here the request's task writes the
//! request in one `write` and reads the response itself: no task, no channel, and no
//! buffer kept while waiting (bytes are read onto the stack and appended to one allocation
//! that the response head and the body's frames then share). An idle SSE stream holds its
//! socket and nothing else.
//!
//! Response framing follows RFC 9112 §6.3: no body after `HEAD`, 1xx, 204 and 304;
//! `Transfer-Encoding` ending in `chunked` over `Content-Length` (and the connection is not
//! reused when both came); differing `Content-Length` values are an error; otherwise the
//! body runs to the end of the connection. Interim 1xx responses are skipped; 101 is an
//! error (the gateway never asks to upgrade). Parsing is httparse's strict mode: no
//! obsolete line folding, no space before a colon.

use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{Context, Poll, Waker, ready};

use bytes::{Bytes, BytesMut};
use http::{Method, Request, header};
use http_body::Body;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use super::client::UpstreamBody;

#[path = "h1_decode.rs"]
mod decode;
use decode::*;
pub use decode::{Decoded, Decoder, Head, read_response};

/// Largest response head accepted.
pub const MAX_HEAD: usize = 64 * 1024 - 1;
/// Most header fields in a response head (hyper's default too).
pub const MAX_HEADERS: usize = 100;
/// Largest chunk-size line (with extensions) or trailer line.
const MAX_LINE: usize = 4096;
/// Largest trailer section, all lines together.
const MAX_TRAILERS: usize = 64 * 1024;
/// One read onto the stack; bodies known to be longer are read straight into their buffer.
const STACK_READ: usize = 8 * 1024;
/// Most bytes one direct read asks for.
const MAX_READ: usize = 64 * 1024;
/// A body up to this size is copied behind the head and both go out in one `write`.
const COALESCE: usize = 16 * 1024;

/// Why an HTTP/1.1 exchange with the backend failed.
#[derive(Debug, thiserror::Error)]
pub enum H1Error {
    /// Writing the request failed.
    #[error("writing the request failed")]
    Write(#[source] io::Error),
    /// Reading the response failed.
    #[error("reading the response failed")]
    Read(#[source] io::Error),
    /// The backend closed the connection before a whole response head.
    #[error("backend closed the connection before the response head ({0} bytes of it received)")]
    ClosedBeforeHead(usize),
    /// The response head was larger than [`MAX_HEAD`].
    #[error("response head larger than {MAX_HEAD} bytes")]
    HeadTooLarge,
    /// The response head is not HTTP/1.x.
    #[error("malformed response head: {0}")]
    BadHead(String),
    /// `Content-Length` is not one decimal number.
    #[error("invalid Content-Length {0:?}")]
    BadLength(String),
    /// The chunked body broke its framing.
    #[error("malformed chunked body: {0}")]
    BadChunk(&'static str),
    /// The backend closed the connection before the end of the body.
    #[error("backend closed the connection {0}")]
    Truncated(&'static str),
    /// 101 Switching Protocols to a request that asked for no upgrade.
    #[error("backend answered 101 Switching Protocols, which the gateway never asks for")]
    Upgrade,
}

/// The transport under one connection.
#[derive(Debug)]
pub enum Io {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS over TCP (boxed: the TLS state is kilobytes).
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Io {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_flush(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// One HTTP/1.1 connection to a backend, between or during exchanges.
#[derive(Debug)]
pub struct Conn {
    io: Io,
    /// Bytes read and not consumed yet; no capacity is kept while nothing is buffered.
    buf: BytesMut,
}

impl Conn {
    /// A connection over `io`.
    pub fn new(io: Io) -> Self {
        Self { io, buf: BytesMut::new() }
    }

    /// For an idle connection: false if the backend closed or reset it, or sent bytes
    /// nobody asked for. Costs no system call unless the socket has become readable.
    pub fn is_reusable(&mut self) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        let mut cx = Context::from_waker(Waker::noop());
        let mut one = [0u8; 1];
        let io = &mut self.io;
        // TLS: a NewSessionTicket that arrived while idle is consumed here and reads as Pending.
        let probe =
            std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut *io).poll_read(cx, &mut ReadBuf::new(&mut one))));
        // Outside tokio's per-task I/O budget: with the budget spent, every read says Pending
        // without looking, and a closed connection would pass for a live one.
        match std::pin::pin!(tokio::task::unconstrained(probe)).poll(&mut cx) {
            Poll::Ready(read) => read.is_pending(),
            Poll::Pending => false,
        }
    }

    /// Read more bytes onto the end of `buf`; `want` is how many the caller could use.
    /// Ready(0) is the end of the connection.
    fn poll_fill(&mut self, cx: &mut Context<'_>, want: usize) -> Poll<io::Result<usize>> {
        if want > STACK_READ {
            self.buf.reserve(want.min(MAX_READ));
            let read = std::pin::pin!(self.io.read_buf(&mut self.buf));
            let got = match read.poll(cx) {
                Poll::Ready(got) => got?,
                Poll::Pending => {
                    // Nothing came: hold no reservation while waiting.
                    if self.buf.is_empty() {
                        self.buf = BytesMut::new();
                    }
                    return Poll::Pending;
                }
            };
            // The frames cut from `buf` keep its whole allocation alive: a read that filled
            // little of it is copied out, so a trickle never pins 4x its size.
            if self.buf.capacity() > 4 * self.buf.len().max(STACK_READ) {
                self.buf = BytesMut::from(&self.buf[..]);
            }
            return Poll::Ready(Ok(got));
        }
        // While waiting (an idle SSE stream) no heap buffer is held: the read lands on the
        // stack and is appended to `buf`, sized to what came.
        let mut stack = [MaybeUninit::<u8>::uninit(); STACK_READ];
        let mut read = ReadBuf::uninit(&mut stack);
        ready!(Pin::new(&mut self.io).poll_read(cx, &mut read))?;
        let got = read.filled();
        self.buf.extend_from_slice(got);
        Poll::Ready(Ok(got.len()))
    }

    /// Send one request (from [`encode`]) and read the response head. On error, `unsent`
    /// says whether the backend can have seen none of it (safe to send again elsewhere).
    pub async fn send(&mut self, wire: &Wire) -> Result<Head, SendError> {
        let written = async {
            self.io.write_all(&wire.head).await?;
            if let Some(body) = &wire.body {
                self.io.write_all(body).await?;
            }
            self.io.flush().await
        };
        if let Err(e) = written.await {
            return Err(SendError { error: H1Error::Write(e), unsent: true });
        }
        let mut received = 0usize;
        loop {
            if !self.buf.is_empty() {
                match parse_head(&mut self.buf, &wire.method) {
                    Ok(Some(head)) => return Ok(head),
                    Ok(None) => {}
                    Err(error) => return Err(SendError { error, unsent: false }),
                }
            }
            let want = STACK_READ;
            match std::future::poll_fn(|cx| self.poll_fill(cx, want)).await {
                Ok(0) => {
                    let error = H1Error::ClosedBeforeHead(self.buf.len());
                    // Closed with not a byte of answer: a request that changes nothing may go again.
                    return Err(SendError { error, unsent: received == 0 && wire.idempotent });
                }
                Ok(n) => received += n,
                Err(e) => {
                    // A TLS peer that closes without close_notify reads as UnexpectedEof.
                    let reset = matches!(e.kind(), io::ErrorKind::ConnectionReset | io::ErrorKind::UnexpectedEof);
                    return Err(SendError {
                        error: H1Error::Read(e),
                        unsent: reset && received == 0 && wire.idempotent,
                    });
                }
            }
        }
    }

    /// The next piece of the body `dec` frames; `None` at its end.
    pub fn poll_body(&mut self, dec: &mut Decoder, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, H1Error>>> {
        let mut eof = false;
        loop {
            match dec.decode(&mut self.buf, eof) {
                Ok(Decoded::Data(data)) => {
                    // An emptied buffer lets go of its allocation (the frames keep what they need).
                    if self.buf.is_empty() {
                        self.buf = BytesMut::new();
                    }
                    return Poll::Ready(Some(Ok(data)));
                }
                Ok(Decoded::End) => return Poll::Ready(None),
                Ok(Decoded::NeedMore) => {
                    let want = dec.want();
                    eof = ready!(self.poll_fill(cx, want)).map_err(H1Error::Read)? == 0;
                }
                Err(e) => return Poll::Ready(Some(Err(e))),
            }
        }
    }

    /// True once a finished response left nothing behind it (a backend that sent more
    /// than one response's worth cannot be trusted with the next request).
    pub fn is_clean(&self) -> bool {
        self.buf.is_empty()
    }
}

/// A request encoded for the wire, kept until it has gone out (a request on a connection the
/// backend had closed goes again on a new one).
#[derive(Debug)]
pub struct Wire {
    head: Vec<u8>,
    /// The body when too large to copy behind the head.
    body: Option<Bytes>,
    method: Method,
    idempotent: bool,
}

/// Encode `req` in origin form; `authority` is the `Host` when the request has none.
/// Framing headers in `req` are ignored: the body is whole, so `Content-Length` is its length.
pub fn encode(req: &Request<UpstreamBody>, authority: &str) -> Wire {
    let body = whole(req.body());
    let uri = req.uri();
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let path = if path.is_empty() { "/" } else { path };
    let headers = req.headers();
    let size: usize = headers.iter().map(|(n, v)| n.as_str().len() + v.len() + 4).sum();
    let inline = body.len() <= COALESCE;
    let mut head = Vec::with_capacity(64 + path.len() + size + authority.len() + if inline { body.len() } else { 0 });
    let method = req.method();
    head.extend_from_slice(method.as_str().as_bytes());
    head.push(b' ');
    head.extend_from_slice(path.as_bytes());
    head.extend_from_slice(b" HTTP/1.1\r\n");
    if !headers.contains_key(header::HOST) {
        head.extend_from_slice(b"host: ");
        head.extend_from_slice(authority.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    for (name, value) in headers {
        if name == header::CONTENT_LENGTH || name == header::TRANSFER_ENCODING {
            continue;
        }
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    if !body.is_empty() || matches!(*method, Method::POST | Method::PUT | Method::PATCH) {
        head.extend_from_slice(b"content-length: ");
        push_decimal(&mut head, body.len());
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"\r\n");
    let body = if inline {
        head.extend_from_slice(&body);
        None
    } else {
        Some(body)
    };
    let idempotent = matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    Wire { head, body, method: method.clone(), idempotent }
}

fn push_decimal(out: &mut Vec<u8>, mut n: usize) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// The bytes of a whole body (`Full` is ready at its first poll).
fn whole(body: &UpstreamBody) -> Bytes {
    let mut body = body.clone();
    let mut cx = Context::from_waker(Waker::noop());
    match Pin::new(&mut body).poll_frame(&mut cx) {
        Poll::Ready(Some(Ok(frame))) => frame.into_data().unwrap_or_default(),
        _ => Bytes::new(),
    }
}

/// A failed [`Conn::send`].
#[derive(Debug)]
pub struct SendError {
    /// What went wrong.
    pub error: H1Error,
    /// The backend cannot have acted on the request: it may be sent again on a new connection.
    pub unsent: bool,
}

#[cfg(test)]
#[path = "h1_tests.rs"]
mod tests;

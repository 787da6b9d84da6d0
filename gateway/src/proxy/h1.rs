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

use bytes::{Buf, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Version, header};
use http_body::Body;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use super::client::UpstreamBody;

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

/// A response head and how its body is framed.
#[derive(Debug)]
pub struct Head {
    /// Status, version and headers.
    pub response: Response<()>,
    /// The body's framing.
    pub body: Decoder,
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

/// The next data of a chunked body in `buf`: `Some(Data)`, `Some(End)` after the last chunk
/// and the trailers, `None` if more bytes are needed.
fn decode_chunked(chunk: &mut Chunk, buf: &mut BytesMut) -> Result<Option<Decoded>, H1Error> {
    loop {
        match *chunk {
            Chunk::Size => {
                let Some(len) = line(buf)? else { return Ok(None) };
                let size = chunk_size(&buf[..len - 2])?;
                buf.advance(len);
                *chunk = if size == 0 { Chunk::Trailers(0) } else { Chunk::Data(size) };
            }
            Chunk::Data(_) if buf.is_empty() => return Ok(None),
            Chunk::Data(left) => {
                let n = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                *chunk = if left == n as u64 { Chunk::DataEnd } else { Chunk::Data(left - n as u64) };
                return Ok(Some(Decoded::Data(buf.split_to(n).freeze())));
            }
            Chunk::DataEnd if buf.len() < 2 => return Ok(None),
            Chunk::DataEnd => {
                if &buf[..2] != b"\r\n" {
                    return Err(H1Error::BadChunk("no CRLF after the chunk data"));
                }
                buf.advance(2);
                *chunk = Chunk::Size;
            }
            Chunk::Trailers(seen) => match line(buf)? {
                None => return Ok(None),
                // The empty line ends the message. Trailer fields are not forwarded.
                Some(2) => {
                    buf.advance(2);
                    return Ok(Some(Decoded::End));
                }
                Some(len) if seen + len > MAX_TRAILERS => {
                    return Err(H1Error::BadChunk("trailer section too large"));
                }
                Some(len) => {
                    buf.advance(len);
                    *chunk = Chunk::Trailers(seen + len);
                }
            },
        }
    }
}

/// The length of the CRLF-terminated line at the start of `buf`, CRLF included, or `None`
/// if it is not complete yet.
fn line(buf: &[u8]) -> Result<Option<usize>, H1Error> {
    match buf.iter().position(|&b| b == b'\n') {
        Some(i) if i == 0 || buf[i - 1] != b'\r' => Err(H1Error::BadChunk("line not ended by CRLF")),
        Some(i) if i + 1 > MAX_LINE => Err(H1Error::BadChunk("line too long")),
        Some(i) => Ok(Some(i + 1)),
        None if buf.len() > MAX_LINE => Err(H1Error::BadChunk("line too long")),
        None => Ok(None),
    }
}

/// `chunk-size [ BWS ";" chunk-ext ]` (RFC 9112 §7.1): the size, in hex, at most 2^63.
fn chunk_size(line: &[u8]) -> Result<u64, H1Error> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 {
        return Err(H1Error::BadChunk("no chunk size"));
    }
    if digits > 15 {
        return Err(H1Error::BadChunk("chunk size too large"));
    }
    let rest = &line[digits..];
    let ext = rest.iter().position(|&b| b != b' ' && b != b'\t').map(|i| &rest[i..]);
    if ext.is_some_and(|e| e[0] != b';') {
        return Err(H1Error::BadChunk("invalid character after the chunk size"));
    }
    Ok(line[..digits].iter().fold(0u64, |n, &b| n * 16 + u64::from(hex(b))))
}

fn hex(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        _ => b - b'A' + 10,
    }
}

/// How a response body is framed, and where reading it has got to.
#[derive(Debug)]
pub struct Decoder {
    state: State,
    /// The connection may carry another exchange once this body is read to its end.
    pub keep_alive: bool,
}

#[derive(Debug)]
enum State {
    Length(u64),
    Chunked(Chunk),
    Eof,
    Done,
}

#[derive(Debug, Clone, Copy)]
enum Chunk {
    Size,
    Data(u64),
    DataEnd,
    /// Bytes of trailer lines seen.
    Trailers(usize),
}

/// What [`Decoder::decode`] found in the buffer.
#[derive(Debug)]
pub enum Decoded {
    /// Body bytes.
    Data(Bytes),
    /// More bytes are needed.
    NeedMore,
    /// The body is complete.
    End,
}

impl Decoder {
    /// The next body bytes in `buf`, consuming them (and any chunk framing). `eof`: the
    /// connection has ended, nothing more will come.
    pub fn decode(&mut self, buf: &mut BytesMut, eof: bool) -> Result<Decoded, H1Error> {
        loop {
            match self.state {
                State::Done => return Ok(Decoded::End),
                State::Length(0) => self.state = State::Done,
                State::Length(left) => {
                    if buf.is_empty() {
                        return if eof {
                            Err(H1Error::Truncated("with part of the body missing"))
                        } else {
                            Ok(Decoded::NeedMore)
                        };
                    }
                    let n = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                    self.state = State::Length(left - n as u64);
                    return Ok(Decoded::Data(buf.split_to(n).freeze()));
                }
                State::Eof if buf.is_empty() && eof => self.state = State::Done,
                State::Eof if buf.is_empty() => return Ok(Decoded::NeedMore),
                State::Eof => return Ok(Decoded::Data(buf.split().freeze())),
                State::Chunked(ref mut chunk) => match decode_chunked(chunk, buf)? {
                    Some(Decoded::End) => self.state = State::Done,
                    Some(step) => return Ok(step),
                    None if eof => return Err(H1Error::Truncated("inside a chunked body")),
                    None => return Ok(Decoded::NeedMore),
                },
            }
        }
    }

    /// How many bytes the next read could use.
    fn want(&self) -> usize {
        match self.state {
            State::Length(left) | State::Chunked(Chunk::Data(left)) => usize::try_from(left).unwrap_or(usize::MAX),
            _ => STACK_READ,
        }
    }

    /// True once the whole body has been read.
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done | State::Length(0))
    }

    /// Bytes of body left, when known.
    pub fn remaining(&self) -> Option<u64> {
        match self.state {
            State::Length(n) => Some(n),
            State::Done => Some(0),
            _ => None,
        }
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

/// Parse a response head at the start of `buf`, consuming it (and any 1xx before it).
fn parse_head(buf: &mut BytesMut, method: &Method) -> Result<Option<Head>, H1Error> {
    loop {
        // Uninitialized: zeroing 100 fields (3.2 KB) cost more than parsing the head.
        let mut fields = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let mut parsed = httparse::Response::new(&mut []);
        let len =
            match httparse::ParserConfig::default().parse_response_with_uninit_headers(&mut parsed, buf, &mut fields) {
                Ok(httparse::Status::Complete(len)) => len,
                Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => return Err(H1Error::HeadTooLarge),
                Ok(httparse::Status::Partial) => return Ok(None),
                Err(httparse::Error::TooManyHeaders) => {
                    return Err(H1Error::BadHead(format!("more than {MAX_HEADERS} header fields")));
                }
                Err(e) => return Err(H1Error::BadHead(e.to_string())),
            };
        if len > MAX_HEAD {
            return Err(H1Error::HeadTooLarge);
        }
        let code = parsed.code.unwrap_or(0);
        let status = StatusCode::from_u16(code).map_err(|_| H1Error::BadHead(format!("status {code}")))?;
        if status == StatusCode::SWITCHING_PROTOCOLS {
            return Err(H1Error::Upgrade);
        }
        if status.is_informational() {
            // 100 Continue, 103 Early Hints: the final response follows.
            buf.advance(len);
            if buf.is_empty() {
                *buf = BytesMut::new();
                return Ok(None);
            }
            continue;
        }
        let version = if parsed.version == Some(0) { Version::HTTP_10 } else { Version::HTTP_11 };
        // Offsets into the head (< MAX_HEAD, so u16), so the values can share its bytes once
        // it is frozen.
        let base = buf.as_ptr() as usize;
        let mut spans = [[0u16; 4]; MAX_HEADERS];
        let count = parsed.headers.len();
        // httparse's slices lie inside `buf`, which is shorter than MAX_HEAD.
        let at = |p: *const u8, len: usize| {
            let start = (p as usize).checked_sub(base).and_then(|o| u16::try_from(o).ok())?;
            Some((start, start.checked_add(u16::try_from(len).ok()?)?))
        };
        for (span, h) in spans.iter_mut().zip(parsed.headers.iter()) {
            let (Some(name), Some(value)) = (at(h.name.as_ptr(), h.name.len()), at(h.value.as_ptr(), h.value.len()))
            else {
                return Err(H1Error::BadHead("header outside the head".into()));
            };
            *span = [name.0, name.1, value.0, value.1];
        }
        let head = buf.split_to(len).freeze();
        if buf.is_empty() {
            *buf = BytesMut::new();
        }
        let mut headers = HeaderMap::with_capacity(count);
        for &[ns, ne, vs, ve] in &spans[..count] {
            let (ns, ne, vs, ve) = (usize::from(ns), usize::from(ne), usize::from(vs), usize::from(ve));
            let name = HeaderName::from_bytes(&head[ns..ne]).map_err(|_| {
                H1Error::BadHead(format!("invalid header name {:?}", String::from_utf8_lossy(&head[ns..ne])))
            })?;
            let value = HeaderValue::from_maybe_shared(head.slice(vs..ve))
                .map_err(|_| H1Error::BadHead(format!("invalid value of header {name}")))?;
            headers.append(name, value);
        }
        let body = framing(method, status, version, &headers)?;
        if headers.contains_key(header::TRANSFER_ENCODING) {
            // RFC 9112 §6.3: Transfer-Encoding overrides Content-Length, which must not go on.
            headers.remove(header::CONTENT_LENGTH);
        }
        let mut response = Response::new(());
        *response.status_mut() = status;
        *response.version_mut() = version;
        *response.headers_mut() = headers;
        return Ok(Some(Head { response, body }));
    }
}

/// RFC 9112 §6.3 and §9.3: how the body is framed, and whether the connection stays open.
fn framing(method: &Method, status: StatusCode, version: Version, headers: &HeaderMap) -> Result<Decoder, H1Error> {
    let mut keep_alive = match version {
        Version::HTTP_11 => !has_token(headers, "close"),
        _ => has_token(headers, "keep-alive") && !has_token(headers, "close"),
    };
    if *method == Method::HEAD || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
        return Ok(Decoder { state: State::Done, keep_alive });
    }
    let length = content_length(headers)?;
    if let Some(te) = last_value(headers, &header::TRANSFER_ENCODING) {
        // Both framings: the message may be an attempt at smuggling; never reuse the connection.
        if length.is_some() {
            keep_alive = false;
        }
        if version == Version::HTTP_11 && te.eq_ignore_ascii_case("chunked") {
            return Ok(Decoder { state: State::Chunked(Chunk::Size), keep_alive });
        }
        return Ok(Decoder { state: State::Eof, keep_alive: false });
    }
    Ok(match length {
        Some(n) => Decoder { state: State::Length(n), keep_alive },
        None => Decoder { state: State::Eof, keep_alive: false },
    })
}

/// The single value of every `Content-Length` field (a list of equal values counts as one).
fn content_length(headers: &HeaderMap) -> Result<Option<u64>, H1Error> {
    let mut found: Option<u64> = None;
    for value in headers.get_all(header::CONTENT_LENGTH) {
        for part in value.as_bytes().split(|&b| b == b',') {
            let part = part.trim_ascii();
            let bad = || H1Error::BadLength(String::from_utf8_lossy(value.as_bytes()).into_owned());
            if part.is_empty() || part.len() > 19 || !part.iter().all(u8::is_ascii_digit) {
                return Err(bad());
            }
            let n = part.iter().fold(0u64, |n, &d| n * 10 + u64::from(d - b'0'));
            if found.is_some_and(|f| f != n) {
                return Err(bad());
            }
            found = Some(n);
        }
    }
    Ok(found)
}

/// The last transfer coding named by `Transfer-Encoding`, trimmed.
fn last_value<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    let last = headers.get_all(name).iter().next_back()?;
    let text = last.to_str().unwrap_or("");
    Some(text.rsplit(',').next().unwrap_or("").trim())
}

/// True if a `Connection` field lists `token`.
fn has_token(headers: &HeaderMap, token: &str) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// Read `bytes` as a backend's answer to `method`, arriving in pieces of the sizes in
/// `pieces` (cycled; 0 counts as 1) and then the end of the connection: the head and the
/// whole body, or the first error. For the fuzz target and tests: the result must not
/// depend on how the bytes were split.
pub fn read_response(bytes: &[u8], method: &Method, pieces: &[u8]) -> Result<(Response<()>, Vec<u8>), H1Error> {
    let mut input = bytes;
    let mut sizes = pieces.iter().map(|&p| usize::from(p.max(1))).cycle();
    let mut next = move |buf: &mut BytesMut| {
        let n = sizes.next().unwrap_or(usize::MAX).min(input.len());
        buf.extend_from_slice(&input[..n]);
        input = &input[n..];
        n
    };
    let mut buf = BytesMut::new();
    let mut eof = false;
    let mut head = loop {
        if !buf.is_empty() {
            if let Some(head) = parse_head(&mut buf, method)? {
                break head;
            }
        }
        if next(&mut buf) == 0 {
            return Err(H1Error::ClosedBeforeHead(buf.len()));
        }
    };
    let mut body = Vec::new();
    loop {
        match head.body.decode(&mut buf, eof)? {
            Decoded::Data(data) => body.extend_from_slice(&data),
            Decoded::End => return Ok((head.response, body)),
            Decoded::NeedMore => eof = next(&mut buf) == 0,
        }
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

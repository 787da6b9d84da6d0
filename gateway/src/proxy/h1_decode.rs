//! The response side of upstream HTTP/1.1 without I/O: the head parser and the body
//! decoder work on a buffer (and an end-of-input flag), so the connection in `h1.rs` and
//! the fuzz target run the same code on bytes split any way.

use bytes::{Buf, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode, Version, header};
use std::mem::MaybeUninit;
use std::time::Duration;

use super::{H1Error, MAX_HEAD, MAX_HEADERS, MAX_LINE, MAX_TRAILERS, STACK_READ};

/// A response head and how its body is framed.
#[derive(Debug)]
pub struct Head {
    /// Status, version and headers.
    pub response: Response<()>,
    /// The body's framing.
    pub body: Decoder,
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
pub(super) fn line(buf: &[u8]) -> Result<Option<usize>, H1Error> {
    match buf.iter().position(|&b| b == b'\n') {
        Some(i) if i == 0 || buf[i - 1] != b'\r' => Err(H1Error::BadChunk("line not ended by CRLF")),
        Some(i) if i + 1 > MAX_LINE => Err(H1Error::BadChunk("line too long")),
        Some(i) => Ok(Some(i + 1)),
        None if buf.len() > MAX_LINE => Err(H1Error::BadChunk("line too long")),
        None => Ok(None),
    }
}

/// `chunk-size [ BWS ";" chunk-ext ]` (RFC 9112 §7.1): the size, in hex, at most 2^63.
pub(super) fn chunk_size(line: &[u8]) -> Result<u64, H1Error> {
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
    /// How long the backend keeps the connection open while idle, when it says so
    /// (`Keep-Alive: timeout=N`).
    pub idle_limit: Option<Duration>,
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
    pub(super) fn want(&self) -> usize {
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

/// Parse a response head at the start of `buf`, consuming it (and any 1xx before it).
pub(super) fn parse_head(buf: &mut BytesMut, method: &Method) -> Result<Option<Head>, H1Error> {
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
        let mut body = framing(method, status, version, &headers)?;
        if body.keep_alive {
            body.idle_limit = keep_alive_timeout(&headers);
        }
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
        return Ok(Decoder { state: State::Done, keep_alive, idle_limit: None });
    }
    let length = content_length(headers)?;
    if let Some(te) = last_value(headers, &header::TRANSFER_ENCODING) {
        // Both framings: the message may be an attempt at smuggling; never reuse the connection.
        if length.is_some() {
            keep_alive = false;
        }
        if version == Version::HTTP_11 && te.eq_ignore_ascii_case("chunked") {
            return Ok(Decoder { state: State::Chunked(Chunk::Size), keep_alive, idle_limit: None });
        }
        return Ok(Decoder { state: State::Eof, keep_alive: false, idle_limit: None });
    }
    Ok(match length {
        Some(n) => Decoder { state: State::Length(n), keep_alive, idle_limit: None },
        None => Decoder { state: State::Eof, keep_alive: false, idle_limit: None },
    })
}

/// The single value of every `Content-Length` field (a list of equal values counts as one).
pub(super) fn content_length(headers: &HeaderMap) -> Result<Option<u64>, H1Error> {
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
/// The `timeout` parameter of `Keep-Alive: timeout=5, max=1000` (RFC 2068 §19.7.1.1; Node.js
/// and Apache still send it): how many seconds the backend keeps an idle connection open.
/// A malformed or absent parameter is `None`.
pub(super) fn keep_alive_timeout(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(KEEP_ALIVE)?.to_str().ok()?;
    value.split(',').find_map(|param| {
        let (name, secs) = param.split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("timeout") {
            return None;
        }
        secs.trim().trim_matches('"').parse::<u64>().ok().map(Duration::from_secs)
    })
}

/// `Keep-Alive` (not in `http::header`: HTTP/1.0's, deprecated, but still sent).
const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");

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

//! Request-shape limits with clear answers, checked where they are cheap:
//! header count and size (431) before anything reads a header, JSON nesting
//! depth before the envelope is parsed and JSON-RPC id length after (400 with
//! -32600). Body size (413) and the header read timeout (408) are enforced by
//! `mcp::read_body` and the HTTP server.

use http::HeaderMap;
use serde_json::value::RawValue;

use crate::config::Limits;
use crate::mcp::envelope::Body;

/// Which limit a request broke.
#[derive(Debug, thiserror::Error, Clone, Copy, PartialEq, Eq)]
pub enum LimitError {
    /// More header fields than `max_headers`.
    #[error("more than {0} request header fields")]
    TooManyHeaders(usize),
    /// Header names and values larger than `max_header_bytes` in total.
    #[error("request headers exceed {0} bytes")]
    HeadersTooLarge(usize),
    /// JSON nested deeper than `max_json_depth`.
    #[error("JSON nested deeper than {0} levels")]
    TooDeep(usize),
    /// A JSON-RPC id longer than `max_id_length`.
    #[error("JSON-RPC id longer than {0} bytes")]
    IdTooLong(usize),
}

impl LimitError {
    /// The fixed reason given in `error.data.reason`-adjacent messages.
    pub fn invalid_request_reason(self) -> &'static str {
        match self {
            Self::TooDeep(_) => "JSON nesting too deep",
            Self::IdTooLong(_) => "id too long",
            Self::TooManyHeaders(_) | Self::HeadersTooLarge(_) => "request headers too large",
        }
    }
}

/// Header count and total size.
pub fn check_headers(headers: &HeaderMap, limits: &Limits) -> Result<(), LimitError> {
    if headers.len() > limits.max_headers {
        return Err(LimitError::TooManyHeaders(limits.max_headers));
    }
    // RFC 9113 §6.5.2's accounting: name + value + 32 per field.
    let size: usize = headers.iter().map(|(n, v)| n.as_str().len() + v.len() + 32).sum();
    if size > limits.max_header_bytes {
        return Err(LimitError::HeadersTooLarge(limits.max_header_bytes));
    }
    Ok(())
}

/// Nesting depth of arrays and objects, counted outside strings; stops early past `max`.
/// (The streamable POST checks the depth inside its one-pass envelope reading,
/// `mcp::envelope::parse_within`, and calls this only when that defers.)
pub fn check_depth(bytes: &[u8], max: usize) -> Result<(), LimitError> {
    let (mut depth, mut i) = (0usize, 0usize);
    while let Some(&b) = bytes.get(i) {
        i += 1;
        match b {
            b'"' => i = string_end(bytes, i),
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return Err(LimitError::TooDeep(max));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// Index just past the string whose text starts at `i` (the end of input if unterminated).
/// String text is skipped 8 bytes at a time while no `"` or `\` is in the word.
fn string_end(bytes: &[u8], mut i: usize) -> usize {
    const LO: u64 = u64::from_ne_bytes([0x01; 8]);
    const HI: u64 = u64::from_ne_bytes([0x80; 8]);
    let has = |w: u64, c: u8| {
        let v = w ^ u64::from_ne_bytes([c; 8]);
        v.wrapping_sub(LO) & !v & HI != 0
    };
    loop {
        while let Some(chunk) = bytes.get(i..i + 8) {
            let w = u64::from_ne_bytes(chunk.try_into().unwrap_or_default());
            if has(w, b'"') || has(w, b'\\') {
                break;
            }
            i += 8;
        }
        match bytes.get(i) {
            None => return bytes.len(),
            Some(b'"') => return i + 1,
            // An escape: the next byte is text, whatever it is.
            Some(b'\\') => i += 2,
            Some(_) => i += 1,
        }
    }
}

/// Every message id in the body is at most `max` bytes of JSON text.
pub fn check_ids(body: &Body, max: usize) -> Result<(), LimitError> {
    let too_long = |id: &Option<Box<RawValue>>| id.as_ref().is_some_and(|id| id.get().len() > max);
    if body.messages().iter().any(|m| too_long(&m.id)) {
        return Err(LimitError::IdTooLong(max));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;
    use crate::mcp::envelope;

    #[test]
    fn headers() {
        let limits = Limits { max_headers: 3, max_header_bytes: 200, ..Limits::default() };
        let mut h = HeaderMap::new();
        for i in 0..3 {
            h.insert(http::HeaderName::from_bytes(format!("x-{i}").as_bytes()).unwrap(), HeaderValue::from_static("v"));
        }
        assert_eq!(check_headers(&h, &limits), Ok(()));
        h.insert("x-big", HeaderValue::from_static("v"));
        assert_eq!(check_headers(&h, &limits), Err(LimitError::TooManyHeaders(3)));
        let mut big = HeaderMap::new();
        big.insert("x-a", HeaderValue::from_str(&"a".repeat(200)).unwrap());
        assert_eq!(check_headers(&big, &limits), Err(LimitError::HeadersTooLarge(200)));
    }

    #[test]
    fn depth_ignores_brackets_in_strings() {
        assert_eq!(check_depth(br#"{"a":[1,{"b":2}]}"#, 3), Ok(()));
        assert_eq!(check_depth(br#"{"a":[1,{"b":[]}]}"#, 3), Err(LimitError::TooDeep(3)));
        assert_eq!(check_depth(br#"{"a":"[[[[[[\"[[["}"#, 1), Ok(()));
        assert_eq!(check_depth(br#"{"a":"\\"}"#, 1), Ok(()));
        // Long strings (the 8-byte skip), escapes at word edges, unterminated strings.
        assert_eq!(check_depth(br#"{"a":"0123456789abcdef[[[[\"[[[[[[[[\\","b":[[]]}"#, 3), Ok(()));
        assert_eq!(
            check_depth(br#"{"a":"0123456789abcdef[[[[\"[[[[[[[[\\","b":[[]]}"#, 2),
            Err(LimitError::TooDeep(2))
        );
        assert_eq!(check_depth(br#"{"a":"01234567[[[[[[[[[[[[[[[[[[[[\"#, 1), Ok(()));
        assert_eq!(check_depth(br#"["abcdefgh\"]","abcdefgh",[["#, 2), Err(LimitError::TooDeep(2)));
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(check_depth(deep.as_bytes(), 128), Err(LimitError::TooDeep(128)));
    }

    #[test]
    fn id_length() {
        let long = format!(r#"{{"jsonrpc":"2.0","id":"{}","method":"ping"}}"#, "x".repeat(300));
        let body = envelope::parse(long.as_bytes()).unwrap();
        assert_eq!(check_ids(&body, 256), Err(LimitError::IdTooLong(256)));
        assert_eq!(check_ids(&body, 400), Ok(()));
        let batch = envelope::parse(
            br#"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":123456789,"method":"ping"}]"#,
        )
        .unwrap();
        assert_eq!(check_ids(&batch, 8), Err(LimitError::IdTooLong(8)));
        assert_eq!(LimitError::TooDeep(1).invalid_request_reason(), "JSON nesting too deep");
    }
}

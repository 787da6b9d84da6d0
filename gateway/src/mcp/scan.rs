//! A one-pass JSON scanner for the common POST body: one JSON object, read once for syntax,
//! nesting depth and the spans of the top-level members the envelope needs.
//!
//! It is a fast path only. It answers `None` whenever it is not certain to agree with the
//! full parse (`serde_json` in [`super::envelope`] plus the depth limit of
//! [`crate::auth::limits`]): any syntax error, nesting past the limit (or past what it tracks),
//! an escaped key, a repeated envelope member, a top level that is not an object. The caller
//! then runs the full path, which gives the exact answer (and error) as before.
//!
//! The grammar accepted is `serde_json`'s when it skips a value: strings may hold any `\uXXXX`
//! escape (lone surrogates too) but no raw control characters; numbers follow RFC 8259.

/// Containers tracked per value (the scanner gives up beyond this nesting).
const TRACKED_DEPTH: usize = 256;

/// Raw JSON text of the envelope's top-level members, each as sent (no surrounding space).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Members<'a> {
    pub jsonrpc: Option<&'a str>,
    pub id: Option<&'a str>,
    pub method: Option<&'a str>,
    pub params: Option<&'a str>,
    pub result: Option<&'a str>,
    pub error: Option<&'a str>,
    /// `name` and `uri` directly inside an object `params`, read in the same pass; `None`
    /// when `params` is no object or has an escaped key (then [`name_member`] or serde decide).
    pub params_names: Option<ParamNames<'a>>,
}

/// Raw values of `params.name` and `params.uri`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct ParamNames<'a> {
    pub name: Option<&'a str>,
    pub uri: Option<&'a str>,
    /// `name` or `uri` is there more than once (serde's "duplicate field": no name at all).
    pub repeated: bool,
}

/// What [`Scanner::value`] notes about the members of the object it reads.
#[derive(Debug, Default)]
struct Capture {
    name: Option<(usize, usize)>,
    uri: Option<(usize, usize)>,
    names: u32,
    uris: u32,
    escaped_key: bool,
    /// The member being read: 1 name, 2 uri, 0 other; where its value starts.
    pending: Option<(u8, usize)>,
}

impl Capture {
    fn key(&mut self, key: &[u8], escaped: bool, value_start: usize) {
        self.escaped_key |= escaped;
        let which = match key {
            b"name" => {
                self.names += 1;
                1
            }
            b"uri" => {
                self.uris += 1;
                2
            }
            _ => 0,
        };
        self.pending = Some((which, value_start));
    }

    fn end(&mut self, value_end: usize) {
        match self.pending.take() {
            Some((1, start)) => self.name = Some((start, value_end)),
            Some((2, start)) => self.uri = Some((start, value_end)),
            _ => {}
        }
    }
}

/// `text` as one JSON object nested at most `max_depth` deep, with its envelope members;
/// `None` when the full parse must decide.
pub(super) fn top_object(text: &str, max_depth: usize) -> Option<Members<'_>> {
    if max_depth < 1 {
        return None;
    }
    let mut s = Scanner { b: text.as_bytes(), i: 0 };
    let mut m = Members::default();
    s.ws();
    s.expect(b'{')?;
    s.ws();
    if s.peek()? == b'}' {
        s.i += 1;
    } else {
        loop {
            let (key, escaped) = s.key()?;
            if escaped {
                return None;
            }
            let start = s.i;
            if &text[key.0..key.1] == "params" && s.peek() == Some(b'{') {
                let mut capture = Capture::default();
                s.value(1, max_depth, Some(&mut capture))?;
                let span = |span: Option<(usize, usize)>| span.map(|(a, b)| &text[a..b]);
                m.params_names = (!capture.escaped_key).then(|| ParamNames {
                    name: span(capture.name),
                    uri: span(capture.uri),
                    repeated: capture.names > 1 || capture.uris > 1,
                });
            } else {
                s.value(1, max_depth, None)?;
            }
            let value = &text[start..s.i];
            let mut unknown = None;
            let slot = match &text[key.0..key.1] {
                "jsonrpc" => &mut m.jsonrpc,
                "id" => &mut m.id,
                "method" => &mut m.method,
                "params" => &mut m.params,
                "result" => &mut m.result,
                "error" => &mut m.error,
                _ => &mut unknown,
            };
            if slot.replace(value).is_some() {
                // A repeated envelope member: serde's "duplicate field" decides.
                return None;
            }
            s.ws();
            match s.next()? {
                b',' => s.ws(),
                b'}' => break,
                _ => return None,
            }
        }
    }
    s.ws();
    (s.i == s.b.len()).then_some(m)
}

/// In an object already validated (e.g. a span from [`top_object`]): the raw value of the
/// member named `want`. `Some(None)` when it is absent or when `name` or `uri` is repeated
/// (serde's "duplicate field", which makes the name unusable); `None` when unsure (an
/// escaped key, or not an object).
pub(super) fn name_member<'a>(object: &'a str, want: &str) -> Option<Option<&'a str>> {
    let mut s = Scanner { b: object.as_bytes(), i: 0 };
    s.expect(b'{')?;
    s.ws();
    if s.peek()? == b'}' {
        return Some(None);
    }
    let (mut found, mut names, mut uris) = (None, 0u32, 0u32);
    loop {
        let (key, escaped) = s.key()?;
        if escaped {
            return None;
        }
        let start = s.i;
        s.value(0, TRACKED_DEPTH, None)?;
        let key = &object[key.0..key.1];
        match key {
            "name" => names += 1,
            "uri" => uris += 1,
            _ => {}
        }
        if key == want {
            found = Some(&object[start..s.i]);
        }
        s.ws();
        match s.next()? {
            b',' => s.ws(),
            b'}' => break,
            _ => return None,
        }
    }
    Some(if names > 1 || uris > 1 { None } else { found })
}

struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
}

const fn splat(b: u8) -> u64 {
    u64::from_le_bytes([b; 8])
}

/// Where the first byte of the little-endian word `w` that needs a look inside a string
/// (`"`, `\` or a control character) is, if any. The zero-byte test can also flag bytes
/// after a true hit (borrows), never before one, so the lowest flag is exact.
fn first_special(w: u64) -> Option<usize> {
    const LO: u64 = splat(0x01);
    const HI: u64 = splat(0x80);
    let zero = |v: u64| v.wrapping_sub(LO) & !v & HI;
    let quote = zero(w ^ splat(b'"'));
    let backslash = zero(w ^ splat(b'\\'));
    let control = w.wrapping_sub(splat(0x20)) & !w & HI;
    let hits = quote | backslash | control;
    (hits != 0).then(|| hits.trailing_zeros() as usize / 8)
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    fn expect(&mut self, c: u8) -> Option<()> {
        (self.next()? == c).then_some(())
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    /// `"key" :` and the space after; the key's span and whether it has escapes.
    fn key(&mut self) -> Option<((usize, usize), bool)> {
        if self.peek()? != b'"' {
            return None;
        }
        let start = self.i + 1;
        let escaped = self.string()?;
        let span = (start, self.i - 1);
        self.ws();
        self.expect(b':')?;
        self.ws();
        Some((span, escaped))
    }

    /// A string starting at `"`; true when it holds escapes.
    fn string(&mut self) -> Option<bool> {
        self.i += 1;
        let mut escaped = false;
        loop {
            while let Some(chunk) = self.b.get(self.i..self.i + 8) {
                match first_special(u64::from_le_bytes(chunk.try_into().ok()?)) {
                    Some(at) => {
                        self.i += at;
                        break;
                    }
                    None => self.i += 8,
                }
            }
            match self.next()? {
                b'"' => return Some(escaped),
                b'\\' => {
                    escaped = true;
                    match self.next()? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {}
                        b'u' => {
                            let hex = self.b.get(self.i..self.i + 4)?;
                            if !hex.iter().all(u8::is_ascii_hexdigit) {
                                return None;
                            }
                            self.i += 4;
                        }
                        _ => return None,
                    }
                }
                0..=0x1f => return None,
                _ => {}
            }
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while let Some(b'0'..=b'9') = self.peek() {
            self.i += 1;
        }
        self.i - start
    }

    fn number(&mut self) -> Option<()> {
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.next()? {
            b'0' if matches!(self.peek(), Some(b'0'..=b'9')) => return None,
            b'0' => {}
            b'1'..=b'9' => {
                self.digits();
            }
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if self.digits() == 0 {
                return None;
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            if self.digits() == 0 {
                return None;
            }
        }
        Some(())
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.i + word.len();
        (self.b.get(self.i..end)? == word).then(|| self.i = end)
    }

    /// One value at the cursor (no leading space), inside `base` open containers.
    /// Nested containers are tracked on a bit stack, not by recursion. With `capture`, the
    /// members of the value itself (an object) are noted.
    fn value(&mut self, base: usize, max_depth: usize, mut capture: Option<&mut Capture>) -> Option<()> {
        let mut objects = [0u64; TRACKED_DEPTH / 64];
        let mut depth = 0usize;
        let is_object = |objects: &[u64; TRACKED_DEPTH / 64], d: usize| objects[d / 64] >> (d % 64) & 1 == 1;
        loop {
            match self.peek()? {
                c @ (b'{' | b'[') => {
                    if depth >= TRACKED_DEPTH || base + depth + 1 > max_depth {
                        return None;
                    }
                    let object = c == b'{';
                    let bit = 1u64 << (depth % 64);
                    objects[depth / 64] = if object { objects[depth / 64] | bit } else { objects[depth / 64] & !bit };
                    depth += 1;
                    self.i += 1;
                    self.ws();
                    if self.peek()? == if object { b'}' } else { b']' } {
                        self.i += 1;
                        depth -= 1;
                    } else {
                        if object {
                            let (key, escaped) = self.key()?;
                            if let (1, Some(c)) = (depth, capture.as_deref_mut()) {
                                c.key(&self.b[key.0..key.1], escaped, self.i);
                            }
                        }
                        continue;
                    }
                }
                b'"' => {
                    self.string()?;
                }
                b't' => self.literal(b"true")?,
                b'f' => self.literal(b"false")?,
                b'n' => self.literal(b"null")?,
                b'-' | b'0'..=b'9' => self.number()?,
                _ => return None,
            }
            // After a value: close containers until one continues with `,`.
            loop {
                if depth == 0 {
                    return Some(());
                }
                if let (1, Some(c)) = (depth, capture.as_deref_mut()) {
                    c.end(self.i);
                }
                self.ws();
                let object = is_object(&objects, depth - 1);
                match self.next()? {
                    b',' => {
                        self.ws();
                        if object {
                            let (key, escaped) = self.key()?;
                            if let (1, Some(c)) = (depth, capture.as_deref_mut()) {
                                c.key(&self.b[key.0..key.1], escaped, self.i);
                            }
                        }
                        break;
                    }
                    b'}' if object => depth -= 1,
                    b']' if !object => depth -= 1,
                    _ => return None,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_of_a_request() {
        let text = r#" {"jsonrpc":"2.0", "id" : 7,"method":"tools/call","params":{"name":"x","a":[1,{"b":null}]}} "#;
        let m = top_object(text, 128).unwrap();
        assert_eq!(m.jsonrpc, Some(r#""2.0""#));
        assert_eq!(m.id, Some("7"));
        assert_eq!(m.method, Some(r#""tools/call""#));
        assert_eq!(m.params, Some(r#"{"name":"x","a":[1,{"b":null}]}"#));
        assert_eq!((m.result, m.error), (None, None));
        assert_eq!(name_member(m.params.unwrap(), "name"), Some(Some(r#""x""#)));
        assert_eq!(m.params_names, Some(ParamNames { name: Some(r#""x""#), uri: None, repeated: false }));
        assert_eq!(name_member(m.params.unwrap(), "uri"), Some(None));
        assert_eq!(top_object("{}", 1), Some(Members::default()));
    }

    #[test]
    fn unsure_cases_defer_to_the_full_parse() {
        for text in [
            "",
            "[]",
            "1",
            "{",
            r#"{"a":1,}"#,
            r#"{"a":01}"#,
            r#"{"a":1.}"#,
            r#"{"a":1e}"#,
            r#"{"a":-}"#,
            r#"{"a":tru}"#,
            r#"{"a":"\x"}"#,
            r#"{"a":"\u12g4"}"#,
            "{\"a\":\"\u{1}\"}",
            r#"{"a":[1,]}"#,
            r#"{"a":{"b"}}"#,
            r#"{"a":1} x"#,
            r#"{"id":1,"id":2}"#,
            r#"{"m\u0065thod":"x"}"#,
            r#"{"a":[}"#,
            r#"{"a":{]}"#,
        ] {
            assert_eq!(top_object(text, 128), None, "{text}");
        }
        // Repeated unknown members are fine (serde ignores them).
        assert!(top_object(r#"{"x":1,"x":2}"#, 128).is_some());
        // Escapes and long strings (the 8-byte skip) in values.
        let m = top_object(r#"{"method":"a\"b\\c\u00e9 long enough to skip words","id":"x"}"#, 2).unwrap();
        assert_eq!(m.id, Some(r#""x""#));
    }

    #[test]
    fn depth_is_limited_like_check_depth() {
        for (text, max) in [(r#"{"a":[1,{"b":2}]}"#, 3), (r#"{"a":[[[]]]}"#, 4), ("{}", 1)] {
            assert!(top_object(text, max).is_some(), "{text}");
            assert!(crate::auth::limits::check_depth(text.as_bytes(), max).is_ok());
            assert!(top_object(text, max - 1).is_none(), "{text}");
            assert!(crate::auth::limits::check_depth(text.as_bytes(), max - 1).is_err());
        }
        let deep = format!(r#"{{"a":{}{}}}"#, "[".repeat(300), "]".repeat(300));
        assert!(top_object(&deep, 100_000).is_none());
    }

    #[test]
    fn names_in_params() {
        assert_eq!(name_member(r#"{"name":"a","name":"b"}"#, "name"), Some(None));
        assert_eq!(name_member(r#"{"uri":"a","uri":"b","name":"n"}"#, "name"), Some(None));
        assert_eq!(name_member(r#"{"n\u0061me":"a"}"#, "name"), None);
        assert_eq!(name_member("{}", "name"), Some(None));
        assert_eq!(name_member(r#"{ "arguments" : {"name":"no"} , "name" : 5 }"#, "name"), Some(Some("5")));
        // The same, read in the envelope's pass: (name, uri, repeated), owned.
        let names = |params: &str| {
            let text = format!(r#"{{"params":{params}}}"#);
            let own = |v: Option<&str>| v.map(str::to_owned);
            top_object(&text, 128).unwrap().params_names.map(|n| (own(n.name), own(n.uri), n.repeated))
        };
        let got = names(r#"{ "arguments" : {"name":"no", "uri":[1]} , "name" : 5 ,"uri":{"a":"b"}}"#);
        assert_eq!(got, Some((Some("5".into()), Some(r#"{"a":"b"}"#.into()), false)));
        assert!(names(r#"{"name":"a","name":"b"}"#).unwrap().2);
        assert!(names(r#"{"uri":"a","x":{},"uri":"b"}"#).unwrap().2);
        assert_eq!(names(r#"{"n\u0061me":"a"}"#), None);
        assert_eq!(names("{}"), Some((None, None, false)));
        assert_eq!(names(r#"["name"]"#), None);
    }

    /// Bodies near the common shapes, each mutated at every byte (replaced, dropped, cut):
    /// whenever the one-pass reading answers, it answers exactly what depth check + full parse do.
    #[test]
    fn one_pass_agrees_with_the_full_parse() {
        use crate::mcp::envelope::{parse, parse_within};
        let seeds = [
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_weather","arguments":{"c":"x"}}}"#,
            r#"{"jsonrpc":"2.0","id":"a-1","method":"resources/read","params":{"uri":"f:///a","name":"n"}}"#,
            r#"{"method":"notifications/initialized","jsonrpc":"2.0"}"#,
            r#"{"jsonrpc":"2.0","id":-1.5e3,"result":{"content":[{"type":"text","text":"ok"}],"isError":false}}"#,
            r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"x"}}"#,
            r#"{"jsonrpc":"2.0","id":2,"method":"prompts/get","params":{"name":"a\u00e9\"b","name2":[true,null]}}"#,
            r#"{"jsonrpc":"2.0","id":{},"method":"ping","x":[[[]]]}"#,
            r#"{ "jsonrpc" : "2.0" , "id" : 0 , "method" : "x" , "params" : [ 1 , { } ] }"#,
        ];
        let swaps = b"\"\\{}[],: 0-.eEanu\x01";
        let mut checked = 0;
        for seed in seeds {
            let seed = seed.as_bytes();
            let mut variants = vec![seed.to_vec()];
            for i in 0..seed.len() {
                for &c in swaps {
                    let mut v = seed.to_vec();
                    v[i] = c;
                    variants.push(v);
                }
                let mut dropped = seed.to_vec();
                dropped.remove(i);
                variants.push(dropped);
                variants.push(seed[..i].to_vec());
            }
            for v in variants {
                for max in [3, 128] {
                    let Some(fast) = parse_within(&v, max) else { continue };
                    checked += 1;
                    let text = String::from_utf8_lossy(&v);
                    assert!(crate::auth::limits::check_depth(&v, max).is_ok(), "{text}");
                    assert_eq!(format!("{fast:?}"), format!("{:?}", parse(&v)), "{text}");
                }
            }
        }
        assert!(checked > 1000, "{checked}");
    }
}

//! Sealed session ids: the `Mcp-Session-Id` the gateway hands to clients.
//!
//! A token carries which backend owns the session and that backend's own session id, sealed
//! with XChaCha20-Poly1305 under the shared [`SessionKeys`], so any replica holding the same keys
//! can route a later request without a shared store.
//!
//! Text form: `g1.` + base64url (no padding) of
//! `key_id[4] ‖ nonce[24] ‖ ciphertext ‖ tag[16]`, where `key_id` is the truncated SHA-256 id of
//! the sealing key (so opening picks the key directly), the nonce is random (safe at any
//! volume with XChaCha's 192-bit nonces), and the AAD is `g1.` ‖ `key_id`. The result is
//! visible ASCII (0x21–0x7E), unguessable, and ~110 characters for a 10-character backend
//! name and a UUID or 32-hex backend session id (a principal adds its issuer and subject).
//!
//! Plaintext (all integers big-endian, lengths LEB128, at most 3 bytes):
//! `flags[1] ‖ issued_at[8] ‖ len ‖ backend ‖ len ‖ upstream ‖ (len ‖ issuer ‖ len ‖ subject)?`.
//! `flags`: bit 0 = legacy SSE transport, bit 1 = principal present, bits 2–3 = how the
//! upstream id is stored (0 verbatim, 1 lowercase hex as bytes, 2 uppercase hex as bytes,
//! 3 lowercase UUID as 16 bytes); other bits must be zero.
//!
//! Opening errors: wrong prefix, over-long input ([`MAX_TOKEN_LEN`], checked before decoding),
//! bad base64 or too few bytes → [`OpenError::Malformed`]; no key with that id →
//! [`OpenError::UnknownKey`]; AEAD failure → [`OpenError::Tampered`]. A plaintext that
//! authenticates but does not decode can only come from a bug or a leaked key, so it is also
//! `Tampered`. A token is valid while `issued_at <= now + MAX_CLOCK_SKEW_SECS` and
//! `now <= issued_at + ttl`; outside that window it is [`OpenError::Expired`] (a token from the
//! future means replica clocks disagree — "not valid now", like a JWT `nbf`).

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::{KeyInit, Tag, XChaCha20Poly1305, XNonce};
use rand::RngCore;

use super::keys::{KEY_ID_LEN, SessionKeys, hex_id};

/// Prefix naming the token format and version.
const PREFIX: &str = "g1.";
/// Longest token text [`Sealer::open`] accepts, in characters (prefix included).
pub const MAX_TOKEN_LEN: usize = 4096;
/// How far in the future `issued_at` may lie before a token is refused.
pub const MAX_CLOCK_SKEW_SECS: u64 = 300;

const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
const HEADER_LEN: usize = KEY_ID_LEN + NONCE_LEN;
/// Smallest possible plaintext: flags, issued_at, two empty length-prefixed strings.
const MIN_PLAINTEXT: usize = 1 + 8 + 1 + 1;
/// Decode buffer: enough for the longest accepted token.
const MAX_RAW_LEN: usize = (MAX_TOKEN_LEN - PREFIX.len()).div_ceil(4) * 3;
/// Stack decode buffer for ordinary tokens.
const INLINE_RAW_LEN: usize = 384;

const FLAG_LEGACY_SSE: u8 = 0b0000_0001;
const FLAG_PRINCIPAL: u8 = 0b0000_0010;
const ENCODING_SHIFT: u8 = 2;
const ENCODING_MASK: u8 = 0b0000_1100;
const KNOWN_FLAGS: u8 = FLAG_LEGACY_SSE | FLAG_PRINCIPAL | ENCODING_MASK;

const ENC_RAW: u8 = 0;
const ENC_LOWER_HEX: u8 = 1;
const ENC_UPPER_HEX: u8 = 2;
const ENC_UUID: u8 = 3;

/// Which client-facing transport the session uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionTransport {
    /// Streamable HTTP (2025-03-26 and later): the id travels in `Mcp-Session-Id`.
    Streamable,
    /// HTTP+SSE (2024-11-05): the id travels in the POST endpoint's query string.
    LegacySse,
}

/// The authenticated caller a session is bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Token issuer (`iss`).
    pub issuer: String,
    /// Token subject (`sub`).
    pub subject: String,
}

/// What a sealed session id carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionClaims {
    /// Name of the backend that owns the session.
    pub backend: String,
    /// The backend's own session id (sent upstream in place of the token).
    pub upstream_session: String,
    /// Client-facing transport.
    pub transport: SessionTransport,
    /// When the session was created, in Unix seconds.
    pub issued_at: u64,
    /// Caller the session is bound to, when authentication is on.
    pub principal: Option<Principal>,
}

/// Why a token could not be opened.
#[derive(Debug, thiserror::Error, Clone, Copy, PartialEq, Eq)]
pub enum OpenError {
    /// Not a token of this format (prefix, length, base64).
    #[error("malformed session id")]
    Malformed,
    /// Sealed with a key this replica does not hold.
    #[error("session id sealed with an unknown key")]
    UnknownKey,
    /// Authentication failed: altered, forged, or undecodable content.
    #[error("session id failed authentication")]
    Tampered,
    /// Outside its validity window (past the TTL, or issued in the future beyond clock skew).
    #[error("session id expired")]
    Expired,
}

impl OpenError {
    /// Short metric/log label.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::UnknownKey => "unknown_key",
            Self::Tampered => "tampered",
            Self::Expired => "expired",
        }
    }
}

/// Seals and opens session ids with a fixed key set and time-to-live.
pub struct Sealer {
    /// `(key id, cipher)`, sealing key first.
    ciphers: Vec<([u8; KEY_ID_LEN], XChaCha20Poly1305)>,
    ttl_secs: u64,
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<String> = self.ciphers.iter().map(|(id, _)| hex_id(id)).collect();
        f.debug_struct("Sealer").field("key_ids", &ids).field("ttl_secs", &self.ttl_secs).finish()
    }
}

impl Sealer {
    /// A sealer using `keys` (first seals, all open); tokens live for `ttl` (whole seconds).
    pub fn new(keys: SessionKeys, ttl: Duration) -> Self {
        let ciphers = keys.keys().iter().map(|k| (k.id, XChaCha20Poly1305::new(&k.bytes.into()))).collect();
        Self { ciphers, ttl_secs: ttl.as_secs() }
    }

    /// The configured time-to-live.
    pub fn ttl(&self) -> Duration {
        Duration::from_secs(self.ttl_secs)
    }

    /// Seals `claims` into a token. Two calls never return the same text (random nonce).
    ///
    /// Claims whose strings total more than ~2,900 bytes give a token longer than
    /// [`MAX_TOKEN_LEN`], which [`Sealer::open`] refuses; use [`Sealer::seal_checked`] when
    /// the fields come from a backend.
    pub fn seal(&self, claims: &SessionClaims) -> String {
        let (key_id, cipher) = &self.ciphers[0];
        let plaintext = encode_claims(claims);
        let mut raw = Vec::with_capacity(HEADER_LEN + plaintext.len() + TAG_LEN);
        raw.extend_from_slice(key_id);
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        raw.extend_from_slice(&nonce);
        raw.extend_from_slice(&plaintext);
        let aad = aad(key_id);
        let tag = cipher
            .encrypt_in_place_detached(XNonce::from_slice(&nonce), &aad, &mut raw[HEADER_LEN..])
            // Only fails for messages over 256 GiB; the claims are far smaller.
            .unwrap_or_default();
        raw.extend_from_slice(&tag);
        let mut out = String::with_capacity(PREFIX.len() + raw.len().div_ceil(3) * 4);
        out.push_str(PREFIX);
        URL_SAFE_NO_PAD.encode_string(&raw, &mut out);
        out
    }

    /// Like [`Sealer::seal`], but `None` when the token would exceed [`MAX_TOKEN_LEN`].
    pub fn seal_checked(&self, claims: &SessionClaims) -> Option<String> {
        let token = self.seal(claims);
        (token.len() <= MAX_TOKEN_LEN).then_some(token)
    }

    /// Opens a token, checking validity against the system clock.
    pub fn open(&self, token: &str) -> Result<SessionClaims, OpenError> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        self.open_at(token, now)
    }

    /// Opens a token, checking validity at `now_unix` (Unix seconds). Never panics.
    pub fn open_at(&self, token: &str, now_unix: u64) -> Result<SessionClaims, OpenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(OpenError::Malformed);
        }
        let body = token.strip_prefix(PREFIX).ok_or(OpenError::Malformed)?;
        // Typical tokens (~110 chars) decode on the stack; zeroing the 3 KiB worst case
        // on every request cost more than the rest of the opening (callgrind).
        let mut inline = [0u8; INLINE_RAW_LEN];
        let mut heap = Vec::new();
        let buf: &mut [u8] = if body.len().div_ceil(4) * 3 <= INLINE_RAW_LEN {
            &mut inline
        } else {
            heap.resize(MAX_RAW_LEN, 0);
            &mut heap
        };
        let n = URL_SAFE_NO_PAD.decode_slice(body, &mut *buf).map_err(|_| OpenError::Malformed)?;
        if n < HEADER_LEN + MIN_PLAINTEXT + TAG_LEN {
            return Err(OpenError::Malformed);
        }
        let (header, rest) = buf[..n].split_at_mut(HEADER_LEN);
        let (key_id, nonce) = header.split_at(KEY_ID_LEN);
        let (sealed, tag) = rest.split_at_mut(rest.len() - TAG_LEN);
        let (nonce, tag) = (XNonce::from_slice(nonce), Tag::from_slice(tag));
        let mut known = false;
        let mut opened = false;
        // Usually one match; several only on a 32-bit key id collision. ChaCha20-Poly1305
        // checks the tag before decrypting, so a failed attempt leaves `sealed` intact.
        for (id, cipher) in self.ciphers.iter().filter(|(id, _)| id[..] == *key_id) {
            known = true;
            if cipher.decrypt_in_place_detached(nonce, &aad(id), sealed, tag).is_ok() {
                opened = true;
                break;
            }
        }
        match (known, opened) {
            (false, _) => return Err(OpenError::UnknownKey),
            (true, false) => return Err(OpenError::Tampered),
            (true, true) => {}
        }
        let claims = decode_claims(sealed).ok_or(OpenError::Tampered)?;
        self.check_fresh(&claims, now_unix)?;
        Ok(claims)
    }

    /// Whether already-opened claims are still valid at `now_unix` (not expired, not from the future).
    pub fn check_fresh(&self, claims: &SessionClaims, now_unix: u64) -> Result<(), OpenError> {
        let from_future = claims.issued_at > now_unix.saturating_add(MAX_CLOCK_SKEW_SECS);
        let past_ttl = now_unix > claims.issued_at.saturating_add(self.ttl_secs);
        if from_future || past_ttl { Err(OpenError::Expired) } else { Ok(()) }
    }
}

/// Associated data: binds the format version and the key id.
fn aad(key_id: &[u8; KEY_ID_LEN]) -> [u8; PREFIX.len() + KEY_ID_LEN] {
    let mut out = [0u8; PREFIX.len() + KEY_ID_LEN];
    out[..PREFIX.len()].copy_from_slice(PREFIX.as_bytes());
    out[PREFIX.len()..].copy_from_slice(key_id);
    out
}

fn encode_claims(c: &SessionClaims) -> Vec<u8> {
    let (encoding, upstream) = compact_upstream(&c.upstream_session);
    let mut flags = encoding << ENCODING_SHIFT;
    if c.transport == SessionTransport::LegacySse {
        flags |= FLAG_LEGACY_SSE;
    }
    if c.principal.is_some() {
        flags |= FLAG_PRINCIPAL;
    }
    let mut out = Vec::with_capacity(32 + c.backend.len() + upstream.len());
    out.push(flags);
    out.extend_from_slice(&c.issued_at.to_be_bytes());
    put_bytes(&mut out, c.backend.as_bytes());
    put_bytes(&mut out, &upstream);
    if let Some(p) = &c.principal {
        put_bytes(&mut out, p.issuer.as_bytes());
        put_bytes(&mut out, p.subject.as_bytes());
    }
    out
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    let mut len = bytes.len();
    while len >= 0x80 {
        out.push((len as u8 & 0x7f) | 0x80);
        len >>= 7;
    }
    out.push(len as u8);
    out.extend_from_slice(bytes);
}

/// Picks the shortest exact encoding of the upstream id.
fn compact_upstream(id: &str) -> (u8, Vec<u8>) {
    let b = id.as_bytes();
    let is_uuid = b.len() == 36
        && b.iter().enumerate().all(|(i, &c)| match i {
            8 | 13 | 18 | 23 => c == b'-',
            _ => matches!(c, b'0'..=b'9' | b'a'..=b'f'),
        });
    if is_uuid {
        let digits: Vec<u8> = b.iter().copied().filter(|&c| c != b'-').collect();
        return (ENC_UUID, hex_to_bytes(&digits));
    }
    if !b.is_empty() && b.len() % 2 == 0 {
        if b.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
            return (ENC_LOWER_HEX, hex_to_bytes(b));
        }
        if b.iter().all(|c| matches!(c, b'0'..=b'9' | b'A'..=b'F')) {
            return (ENC_UPPER_HEX, hex_to_bytes(b));
        }
    }
    (ENC_RAW, b.to_vec())
}

/// Decodes checked hex digits (either case) pairwise.
fn hex_to_bytes(digits: &[u8]) -> Vec<u8> {
    let nibble = |c: u8| match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        b'A'..=b'F' => c - b'A' + 10,
        _ => 0,
    };
    digits.chunks_exact(2).map(|p| (nibble(p[0]) << 4) | nibble(p[1])).collect()
}

/// A cursor over decrypted plaintext; every read is bounds-checked.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.0.len() {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }

    fn len_prefixed(&mut self) -> Option<&'a [u8]> {
        let mut len = 0usize;
        for shift in [0, 7, 14] {
            let byte = *self.take(1)?.first()?;
            len |= usize::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return self.take(len);
            }
        }
        None
    }

    fn string(&mut self) -> Option<String> {
        std::str::from_utf8(self.len_prefixed()?).ok().map(str::to_owned)
    }
}

fn decode_claims(plain: &[u8]) -> Option<SessionClaims> {
    let mut r = Reader(plain);
    let flags = *r.take(1)?.first()?;
    if flags & !KNOWN_FLAGS != 0 {
        return None;
    }
    let issued_at = u64::from_be_bytes(r.take(8)?.try_into().ok()?);
    let backend = r.string()?;
    let raw_upstream = r.len_prefixed()?;
    let upstream_session = match (flags & ENCODING_MASK) >> ENCODING_SHIFT {
        ENC_RAW => std::str::from_utf8(raw_upstream).ok()?.to_owned(),
        ENC_LOWER_HEX => to_hex(raw_upstream, b"0123456789abcdef", false)?,
        ENC_UPPER_HEX => to_hex(raw_upstream, b"0123456789ABCDEF", false)?,
        _ => to_hex(raw_upstream, b"0123456789abcdef", true)?,
    };
    let principal =
        if flags & FLAG_PRINCIPAL != 0 { Some(Principal { issuer: r.string()?, subject: r.string()? }) } else { None };
    if !r.0.is_empty() {
        return None;
    }
    let transport =
        if flags & FLAG_LEGACY_SSE != 0 { SessionTransport::LegacySse } else { SessionTransport::Streamable };
    Some(SessionClaims { backend, upstream_session, transport, issued_at, principal })
}

/// Hex text of `bytes`; as a UUID (8-4-4-4-12) when `uuid`, which needs exactly 16 bytes.
fn to_hex(bytes: &[u8], alphabet: &[u8; 16], uuid: bool) -> Option<String> {
    if bytes.is_empty() || (uuid && bytes.len() != 16) {
        return None;
    }
    let mut out = String::with_capacity(bytes.len() * 2 + 4);
    for (i, b) in bytes.iter().enumerate() {
        if uuid && matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        out.push(char::from(alphabet[usize::from(b >> 4)]));
        out.push(char::from(alphabet[usize::from(b & 0x0f)]));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    const NEW: &str = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";
    const NOW: u64 = 1_780_000_000;
    const DAY: Duration = Duration::from_secs(86_400);

    fn sealer(keys: &str) -> Sealer {
        Sealer::new(SessionKeys::parse(keys, "test").unwrap(), DAY)
    }

    fn claims(upstream: &str, principal: bool) -> SessionClaims {
        SessionClaims {
            backend: "backend-01".into(),
            upstream_session: upstream.into(),
            transport: SessionTransport::Streamable,
            issued_at: NOW,
            principal: principal
                .then(|| Principal { issuer: "https://auth.example.com/".into(), subject: "user-42".into() }),
        }
    }

    #[test]
    fn round_trips_many_upstream_shapes() {
        let s = sealer(OLD);
        // Hex and UUIDs of both cases, near misses, and odd text; plus the empty id.
        let ids = "0123456789abcdef0123456789abcdef 0123456789ABCDEF0123456789ABCDEF \
                   3f2504e0-4f89-41d3-9a0c-0305e82c3301 3F2504E0-4F89-41D3-9A0C-0305E82C3301 \
                   3f2504e0-4f89-41d3-9a0c-0305e82c330 3f2504e0x4f89-41d3-9a0c-0305e82c3301 \
                   abc aB a 00 0aB1 session_id=1;x=\"q\" ~!@#$%^&*()_+`-={}[]|:;'<>,.?/";
        let ids = ids.split_whitespace().chain([""]);
        for id in ids {
            for principal in [false, true] {
                for transport in [SessionTransport::Streamable, SessionTransport::LegacySse] {
                    let mut c = claims(id, principal);
                    c.transport = transport;
                    let token = s.seal(&c);
                    assert_eq!(s.open_at(&token, NOW).unwrap(), c, "{id:?}");
                }
            }
        }
    }

    #[test]
    fn long_fields_use_multibyte_lengths() {
        let s = sealer(OLD);
        let mut c = claims(&"x".repeat(1500), true);
        c.backend = "b".repeat(200);
        c.principal = Some(Principal { issuer: "i".repeat(130), subject: "ü".repeat(70) });
        let token = s.seal(&c);
        assert_eq!(s.open_at(&token, NOW).unwrap(), c);
    }

    #[test]
    fn tokens_are_compact_visible_ascii_and_unique() {
        let s = sealer(OLD);
        for id in ["0123456789abcdef0123456789abcdef", "3f2504e0-4f89-41d3-9a0c-0305e82c3301"] {
            let c = claims(id, false);
            let a = s.seal(&c);
            let b = s.seal(&c);
            assert_ne!(a, b);
            // 111 characters; storing the id verbatim would take 138 for the UUID.
            assert!(a.len() <= 112, "{} chars: {a}", a.len());
            assert!(a.bytes().all(|ch| (0x21..=0x7e).contains(&ch)), "{a}");
            assert!(a.starts_with("g1."));
        }
        let encodings =
            ["ab12", "AB12", "3f2504e0-4f89-41d3-9a0c-0305e82c3301", "aB12", "abc"].map(|id| compact_upstream(id).0);
        assert_eq!(encodings, [ENC_LOWER_HEX, ENC_UPPER_HEX, ENC_UUID, ENC_RAW, ENC_RAW]);
        let with_principal = s.seal(&claims("3f2504e0-4f89-41d3-9a0c-0305e82c3301", true));
        assert!(with_principal.len() < 256, "{}", with_principal.len());
    }

    #[test]
    fn every_character_change_is_rejected() {
        let s = sealer(OLD);
        let token = s.seal(&claims("3f2504e0-4f89-41d3-9a0c-0305e82c3301", true));
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/.\x00 \xff";
        for i in 0..token.len() {
            for &replacement in alphabet {
                let mut bytes = token.as_bytes().to_vec();
                if bytes[i] == replacement {
                    continue;
                }
                bytes[i] = replacement;
                let text = String::from_utf8_lossy(&bytes);
                assert!(s.open_at(&text, NOW).is_err(), "position {i} -> {replacement}");
            }
        }
    }

    #[test]
    fn every_bit_flip_is_classified() {
        let s = sealer(OLD);
        let token = s.seal(&claims("0123456789abcdef0123456789abcdef", false));
        let raw = URL_SAFE_NO_PAD.decode(&token[PREFIX.len()..]).unwrap();
        for i in 0..raw.len() {
            for bit in 0..8 {
                let mut flipped = raw.clone();
                flipped[i] ^= 1 << bit;
                let text = format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(&flipped));
                let expected = if i < KEY_ID_LEN { OpenError::UnknownKey } else { OpenError::Tampered };
                assert_eq!(s.open_at(&text, NOW), Err(expected), "byte {i} bit {bit}");
            }
        }
    }

    #[test]
    fn truncation_and_extension_are_rejected() {
        let s = sealer(OLD);
        let token = s.seal(&claims("abc", false));
        for end in 0..token.len() {
            assert!(s.open_at(&token[..end], NOW).is_err(), "prefix of {end}");
        }
        assert!(s.open_at(&format!("{token}A"), NOW).is_err());
        assert!(s.open_at(&format!("{token}AAAA"), NOW).is_err());
    }

    #[test]
    fn garbage_is_malformed_and_never_panics() {
        let s = sealer(OLD);
        let inputs = "g1 g1. g2.AAAA G1.AAAA g1.!!!! g1.AAAA g1.= g1.\u{1F600} g1.AA==";
        for input in inputs.split(' ').chain([""]) {
            let got = s.open_at(input, NOW);
            assert_eq!(got, Err(OpenError::Malformed), "{input:?}");
        }
        assert_eq!(s.open_at(&format!("g1.{}", "A".repeat(MAX_TOKEN_LEN)), NOW), Err(OpenError::Malformed));
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        for len in 0..400 {
            let mut raw = vec![0u8; len];
            for byte in &mut raw {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                *byte = seed as u8;
            }
            let text = format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(&raw));
            assert!(s.open_at(&text, NOW).is_err());
        }
    }

    #[test]
    fn foreign_key_is_unknown() {
        let token = sealer(OLD).seal(&claims("abc", false));
        assert_eq!(sealer(NEW).open_at(&token, NOW), Err(OpenError::UnknownKey));
        let generated = Sealer::new(SessionKeys::generate(), DAY);
        assert_eq!(generated.open_at(&token, NOW), Err(OpenError::UnknownKey));
    }

    #[test]
    fn rotation_keeps_old_tokens_and_seals_with_the_new_key() {
        let before = sealer(&format!("{OLD}\n"));
        let old_token = before.seal(&claims("abc", false));
        let after = sealer(&format!("{NEW}\n{OLD}\n"));
        assert_eq!(after.open_at(&old_token, NOW).unwrap(), claims("abc", false));
        let new_token = after.seal(&claims("abc", false));
        assert_eq!(before.open_at(&new_token, NOW), Err(OpenError::UnknownKey));
        assert!(sealer(NEW).open_at(&new_token, NOW).is_ok());
    }

    #[test]
    fn expiry_boundaries() {
        let s = sealer(OLD);
        let token = s.seal(&claims("abc", false));
        let ttl = DAY.as_secs();
        assert!(s.open_at(&token, NOW + ttl).is_ok());
        assert_eq!(s.open_at(&token, NOW + ttl + 1), Err(OpenError::Expired));
        assert!(s.open_at(&token, NOW - MAX_CLOCK_SKEW_SECS).is_ok());
        assert_eq!(s.open_at(&token, NOW - MAX_CLOCK_SKEW_SECS - 1), Err(OpenError::Expired));
        let mut far = claims("abc", false);
        far.issued_at = u64::MAX;
        assert!(s.open_at(&s.seal(&far), u64::MAX).is_ok());
        assert_eq!(s.open_at(&s.seal(&far), 0), Err(OpenError::Expired));
    }

    #[test]
    fn open_uses_the_system_clock() {
        let s = sealer(OLD);
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        let mut c = claims("abc", false);
        c.issued_at = now;
        assert_eq!(s.open(&s.seal(&c)).unwrap(), c);
        c.issued_at = now - DAY.as_secs() - 60;
        assert_eq!(s.open(&s.seal(&c)), Err(OpenError::Expired));
    }

    #[test]
    fn length_bound_matches_seal_checked() {
        let s = sealer(OLD);
        let mut fits = None;
        let mut too_long = None;
        for n in (2800..3100).step_by(3) {
            let c = claims(&"z".repeat(n), false);
            match s.seal_checked(&c) {
                Some(token) => {
                    assert!(token.len() <= MAX_TOKEN_LEN);
                    assert_eq!(s.open_at(&token, NOW).unwrap(), c);
                    fits = Some(n);
                }
                None => {
                    assert_eq!(s.open_at(&s.seal(&c), NOW), Err(OpenError::Malformed));
                    too_long = Some(n);
                }
            }
        }
        assert!(fits.is_some() && too_long.is_some() && fits < too_long);
    }

    #[test]
    fn reasons_and_debug() {
        let labels = [OpenError::Malformed, OpenError::UnknownKey, OpenError::Tampered, OpenError::Expired]
            .map(OpenError::reason);
        assert_eq!(labels, ["malformed", "unknown_key", "tampered", "expired"]);
        let debug = format!("{:?}", sealer(OLD));
        assert!(debug.contains("ttl_secs: 86400") && !debug.contains("0001020304"), "{debug}");
        assert_eq!(sealer(OLD).ttl(), DAY);
    }

    #[test]
    fn undecodable_plaintext_is_tampered() {
        assert!(decode_claims(&[]).is_none());
        assert!(decode_claims(&[0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]).is_none());
        assert!(decode_claims(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7]).is_none());
        assert!(decode_claims(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 1]).is_none());
        assert!(decode_claims(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f]).is_none());
        assert!(decode_claims(&[ENC_UUID << ENCODING_SHIFT, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1]).is_none());
        let ok = decode_claims(&[0, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0]).unwrap();
        assert_eq!((ok.issued_at, ok.backend.as_str()), (9, ""));
    }
}

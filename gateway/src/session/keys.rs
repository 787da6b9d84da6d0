//! The session key file: the secrets every replica shares to seal and open session ids.
//!
//! Format: one key per line, exactly 64 hex characters (32 bytes, what `openssl rand -hex 32`
//! prints). Blank lines are ignored, `#` starts a comment (whole line or after a key), and
//! surrounding whitespace (including `\r`) is trimmed. The **first** key seals new session ids;
//! **every** key opens them, so rotation is: prepend a new key, roll out, later drop the old one.
//!
//! Errors name the file and line but never echo key text, and `Debug` prints only key ids
//! (a truncated SHA-256 of each key, safe to log).

use std::fmt;
use std::path::{Path, PathBuf};

use rand::RngCore;
use sha2::{Digest, Sha256};

/// Length of one key in bytes (XChaCha20-Poly1305 uses 256-bit keys).
pub const KEY_LEN: usize = 32;
/// Length of a key id in bytes.
pub const KEY_ID_LEN: usize = 4;

/// Domain separation for key ids, so the id is never a plain hash of the key.
const KEY_ID_CONTEXT: &[u8] = b"mcp-gateway/session-key-id/v1\0";

/// Why a session key file was rejected. Never contains key material.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// The file could not be read.
    #[error("cannot read session key file {}: {source}", path.display())]
    Io {
        /// The file that was read.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A key line does not have exactly 64 characters.
    #[error("{origin}:{line}: expected {} hex characters, got {got}", KEY_LEN * 2)]
    Length {
        /// Where the text came from (usually the file path).
        origin: String,
        /// 1-based line number.
        line: usize,
        /// Number of characters found on the line.
        got: usize,
    },
    /// A key line has 64 characters, but not all of them are hex digits.
    #[error("{origin}:{line}: expected {} hex characters, found a non-hex character at column {column}", KEY_LEN * 2)]
    NotHex {
        /// Where the text came from.
        origin: String,
        /// 1-based line number.
        line: usize,
        /// 1-based column of the first offending character within the key.
        column: usize,
    },
    /// The same key appears twice.
    #[error("{origin}:{line}: duplicate of the key on line {first_line}")]
    Duplicate {
        /// Where the text came from.
        origin: String,
        /// 1-based line number of the repeated key.
        line: usize,
        /// 1-based line number of its first occurrence.
        first_line: usize,
    },
    /// No key at all.
    #[error(
        "{origin}: no session keys (expected one key of {} hex characters per line, e.g. from `openssl rand -hex 32`)",
        KEY_LEN * 2
    )]
    Empty {
        /// Where the text came from.
        origin: String,
    },
}

/// One key and its id.
#[derive(Clone)]
pub(super) struct SessionKey {
    pub(super) bytes: [u8; KEY_LEN],
    pub(super) id: [u8; KEY_ID_LEN],
}

impl SessionKey {
    fn new(bytes: [u8; KEY_LEN]) -> Self {
        let digest = Sha256::new().chain_update(KEY_ID_CONTEXT).chain_update(bytes).finalize();
        let mut id = [0u8; KEY_ID_LEN];
        id.copy_from_slice(&digest[..KEY_ID_LEN]);
        Self { bytes, id }
    }
}

/// The ordered set of session keys: the first seals, all open. Never empty.
#[derive(Clone)]
pub struct SessionKeys {
    keys: Vec<SessionKey>,
}

impl SessionKeys {
    /// Parses key file text; `origin` names it in errors (e.g. the path).
    pub fn parse(text: &str, origin: &str) -> Result<Self, KeyFileError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut keys: Vec<SessionKey> = Vec::new();
        let mut lines_of: Vec<usize> = Vec::new();
        for (index, raw_line) in text.lines().enumerate() {
            let line = index + 1;
            let content = raw_line.split('#').next().unwrap_or("").trim();
            if content.is_empty() {
                continue;
            }
            let bytes = decode_key(content).map_err(|bad| match bad {
                BadKey::Length(got) => KeyFileError::Length { origin: origin.to_owned(), line, got },
                BadKey::NotHex(column) => KeyFileError::NotHex { origin: origin.to_owned(), line, column },
            })?;
            if let Some(pos) = keys.iter().position(|k| k.bytes == bytes) {
                return Err(KeyFileError::Duplicate { origin: origin.to_owned(), line, first_line: lines_of[pos] });
            }
            keys.push(SessionKey::new(bytes));
            lines_of.push(line);
        }
        if keys.is_empty() {
            return Err(KeyFileError::Empty { origin: origin.to_owned() });
        }
        Ok(Self { keys })
    }

    /// Reads and parses a key file; errors name the path.
    pub fn load(path: &Path) -> Result<Self, KeyFileError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| KeyFileError::Io { path: path.to_owned(), source })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// One fresh random key (for single-replica setups and tests; ids do not survive restarts).
    pub fn generate() -> Self {
        let mut bytes = [0u8; KEY_LEN];
        rand::rng().fill_bytes(&mut bytes);
        Self { keys: vec![SessionKey::new(bytes)] }
    }

    /// Number of keys (at least 1).
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Always false for a parsed or generated set; present for API symmetry with `len`.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Key ids as lowercase hex, sealing key first. Safe to log.
    pub fn key_ids(&self) -> Vec<String> {
        self.keys.iter().map(|k| hex_id(&k.id)).collect()
    }

    /// The keys in order, sealing key first.
    pub(super) fn keys(&self) -> &[SessionKey] {
        &self.keys
    }
}

impl fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionKeys").field("key_ids", &self.key_ids()).finish()
    }
}

/// Lowercase hex of a key id.
pub(super) fn hex_id(id: &[u8; KEY_ID_LEN]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

enum BadKey {
    Length(usize),
    NotHex(usize),
}

fn decode_key(text: &str) -> Result<[u8; KEY_LEN], BadKey> {
    let got = text.chars().count();
    if got != KEY_LEN * 2 {
        return Err(BadKey::Length(got));
    }
    if let Some(pos) = text.chars().position(|c| !c.is_ascii_hexdigit()) {
        return Err(BadKey::NotHex(pos + 1));
    }
    // Now exactly 64 ASCII hex digits, so bytes and characters coincide.
    let raw = text.as_bytes();
    let mut out = [0u8; KEY_LEN];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = (hex_value(raw[2 * i]) << 4) | hex_value(raw[2 * i + 1]);
    }
    Ok(out)
}

fn hex_value(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        b'A'..=b'F' => c - b'A' + 10,
        // Unreachable: only called on checked hex digits.
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    const K2: &str = "FFEEDDCCBBAA99887766554433221100ffeeddccbbaa99887766554433221100";

    #[test]
    fn parses_keys_comments_and_blank_lines() {
        let text = format!("# session keys\n\n  {K1}  \r\n{K2} # old key\n\n");
        let keys = SessionKeys::parse(&text, "session.keys").unwrap();
        assert_eq!(keys.len(), 2);
        assert!(!keys.is_empty());
        assert_eq!(keys.keys()[0].bytes[1], 1);
        assert_eq!(keys.keys()[1].bytes[0], 0xff);
        assert_ne!(keys.keys()[0].id, keys.keys()[1].id);
    }

    #[test]
    fn leading_bom_is_ignored() {
        let keys = SessionKeys::parse(&format!("\u{feff}{K1}\n"), "k").unwrap();
        assert_eq!(keys.len(), 1);
    }

    #[test]
    fn wrong_length_names_source_and_line_without_echoing() {
        let short = &K1[..63];
        let err = SessionKeys::parse(&format!("# c\n{K2}\n{short}\n"), "session.keys").unwrap_err();
        let msg = err.to_string();
        assert_eq!(msg, "session.keys:3: expected 64 hex characters, got 63");
        assert!(!msg.contains(short));
    }

    #[test]
    fn non_hex_is_reported_by_column() {
        let bad = format!("{}g{}", &K1[..10], &K1[11..]);
        let err = SessionKeys::parse(&bad, "f").unwrap_err();
        assert!(matches!(err, KeyFileError::NotHex { line: 1, column: 11, .. }));
        assert!(!err.to_string().contains(&bad[..10]));
    }

    #[test]
    fn multibyte_characters_count_as_characters() {
        let bad = format!("{}é", &K1[..63]);
        let err = SessionKeys::parse(&bad, "f").unwrap_err();
        assert!(matches!(err, KeyFileError::NotHex { column: 64, .. }), "{err}");
    }

    #[test]
    fn duplicate_keys_are_rejected_case_insensitively() {
        let text = format!("{K1}\n{K2}\n{}\n", K1.to_uppercase());
        let err = SessionKeys::parse(&text, "f").unwrap_err();
        assert_eq!(err.to_string(), "f:3: duplicate of the key on line 1");
    }

    #[test]
    fn zero_keys_is_an_error() {
        let err = SessionKeys::parse("# nothing\n\n   \n", "empty.keys").unwrap_err();
        assert!(matches!(err, KeyFileError::Empty { .. }));
        assert!(err.to_string().starts_with("empty.keys: no session keys"));
    }

    #[test]
    fn debug_never_prints_key_material() {
        let keys = SessionKeys::parse(K1, "f").unwrap();
        let debug = format!("{keys:?}");
        assert!(!debug.contains(&K1[..16]), "{debug}");
        assert!(!debug.contains("[0, 1, 2"), "{debug}");
        assert!(debug.contains(&keys.key_ids()[0]));
    }

    #[test]
    fn generate_makes_one_distinct_key() {
        let a = SessionKeys::generate();
        let b = SessionKeys::generate();
        assert_eq!(a.len(), 1);
        assert_ne!(a.keys()[0].bytes, b.keys()[0].bytes);
    }

    #[test]
    fn load_reads_a_file_and_reports_missing_files() {
        let dir = std::env::temp_dir().join(format!("mcp-gw-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("session.keys");
        std::fs::write(&path, format!("{K1}\n")).unwrap();
        assert_eq!(SessionKeys::load(&path).unwrap().len(), 1);
        std::fs::write(&path, "abc\n").unwrap();
        let err = SessionKeys::load(&path).unwrap_err();
        assert!(err.to_string().starts_with(&format!("{}:1:", path.display())));
        std::fs::remove_file(&path).unwrap();
        let err = SessionKeys::load(&path).unwrap_err();
        assert!(matches!(err, KeyFileError::Io { .. }));
        std::fs::remove_dir(&dir).unwrap();
    }
}

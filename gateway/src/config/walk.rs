//! Typed reads from the YAML tree that record errors instead of stopping.
//!
//! Every getter returns `None` after recording a [`ConfigError`] (or silently
//! for a node already reported by the tree builder), so the schema code can
//! keep going and report every problem in one pass.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::duration::{parse_duration, parse_size};
use super::errors::{ConfigError, closest};
use super::tree::{Entry, Kind, Node, Pos};

/// Collects errors while walking one document.
#[derive(Debug)]
pub(super) struct Walker<'a> {
    file: &'a str,
    base_dir: &'a Path,
    /// Everything found so far.
    pub errors: Vec<ConfigError>,
    /// `xdp.local_node` is given by `--xdp-local-node` (or its environment variable), so the
    /// file need not name it even when it lists `xdp.nodes`.
    pub local_node_from_flag: bool,
}

/// A mapping whose keys have been checked against the allowed set.
#[derive(Debug)]
pub(super) struct Section<'n> {
    path: String,
    entries: &'n [Entry],
}

impl<'n> Section<'n> {
    /// The value of `name`, unless absent or null.
    pub fn get(&self, name: &str) -> Option<&'n Node> {
        self.entries.iter().find(|e| e.key == name).map(|e| &e.value).filter(|v| v.kind != Kind::Null)
    }

    /// The dotted path of `name` in this section.
    pub fn key(&self, name: &str) -> String {
        if self.path.is_empty() { name.to_owned() } else { format!("{}.{name}", self.path) }
    }
}

/// A short description of a node for "expected X, got Y" messages.
pub(super) fn describe(node: &Node) -> String {
    match &node.kind {
        Kind::Null => "nothing".into(),
        Kind::Scalar(s) => format!("{s:?}"),
        Kind::Map(_) => "a mapping".into(),
        Kind::Seq(_) => "a sequence".into(),
        Kind::Invalid => "an invalid value".into(),
    }
}

/// Checks that `path` names a readable regular file.
pub(super) fn check_readable(path: &Path) -> Result<(), String> {
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(format!("file not found: {}", path.display())),
        Err(e) => Err(format!("not readable: {}: {e}", path.display())),
        Ok(meta) if meta.is_dir() => Err(format!("not a file: {} is a directory", path.display())),
        Ok(_) => match std::fs::File::open(path) {
            Ok(_) => Ok(()),
            Err(e) => Err(format!("not readable: {}: {e}", path.display())),
        },
    }
}

/// Checks an HTTP path such as `mcp.path`: absolute, no query, fragment or whitespace.
pub(super) fn check_http_path(path: &str) -> Result<(), String> {
    if !path.starts_with('/') {
        return Err(format!("must start with '/', got {path:?}"));
    }
    if let Some(c) = path.chars().find(|c| c.is_whitespace() || matches!(c, '?' | '#')) {
        return Err(format!("must be a plain path without {c:?}, got {path:?}"));
    }
    Ok(())
}

impl<'a> Walker<'a> {
    /// A walker for `file`; relative file paths resolve against `base_dir`.
    pub fn new(file: &'a str, base_dir: &'a Path) -> Self {
        Self { file, base_dir, errors: Vec::new(), local_node_from_flag: false }
    }

    /// Records an error at `pos`.
    pub fn error(&mut self, pos: Pos, key: &str, message: impl Into<String>) {
        self.errors.push(ConfigError::new(self.file, pos.line, pos.column, key, message));
    }

    /// Opens the mapping at `path`, reporting keys outside `allowed`.
    /// An absent or null node is an empty section; a non-mapping is an error (`None`).
    pub fn section<'n>(&mut self, node: Option<&'n Node>, path: &str, allowed: &[&str]) -> Option<Section<'n>> {
        let Some(node) = node else { return Some(Section { path: path.to_owned(), entries: &[] }) };
        let entries = match &node.kind {
            Kind::Map(entries) => entries.as_slice(),
            Kind::Null => &[],
            Kind::Invalid => return None,
            Kind::Scalar(_) | Kind::Seq(_) => {
                let what = if path.is_empty() { "the file" } else { "this section" };
                let message =
                    format!("expected a mapping (keys: {}) for {what}, got {}", allowed.join(", "), describe(node));
                self.error(node.pos, path, message);
                return None;
            }
        };
        let section = Section { path: path.to_owned(), entries };
        for entry in entries.iter().filter(|e| !allowed.contains(&e.key.as_str())) {
            let hint = match closest(&entry.key, allowed) {
                Some(best) => format!("; did you mean {best:?}?"),
                None => String::new(),
            };
            let message = format!("unknown key {:?}{hint} (allowed: {})", entry.key, allowed.join(", "));
            self.error(entry.key_pos, &section.key(&entry.key), message);
        }
        Some(section)
    }

    /// Reads `name` from `section` with `read` into `slot`; absent or invalid leaves `slot` as is.
    pub fn field<T>(
        &mut self,
        section: &Section<'_>,
        name: &str,
        slot: &mut T,
        read: impl FnOnce(&mut Self, &Node, &str) -> Option<T>,
    ) {
        let Some(node) = section.get(name) else { return };
        if let Some(value) = read(self, node, &section.key(name)) {
            *slot = value;
        }
    }

    /// The text of a scalar; anything else is an error mentioning `expected`.
    pub fn scalar<'n>(&mut self, node: &'n Node, key: &str, expected: &str) -> Option<&'n str> {
        match &node.kind {
            Kind::Scalar(text) => Some(text),
            Kind::Invalid => None,
            Kind::Null | Kind::Map(_) | Kind::Seq(_) => {
                self.error(node.pos, key, format!("expected {expected}, got {}", describe(node)));
                None
            }
        }
    }

    /// A non-empty string.
    pub fn string(&mut self, node: &Node, key: &str) -> Option<String> {
        let text = self.scalar(node, key, "a string")?;
        if text.trim().is_empty() {
            self.error(node.pos, key, "must not be empty");
            return None;
        }
        Some(text.to_owned())
    }

    /// `true` or `false`, quoted or not (operators write `keep_alive: "true"`).
    pub fn boolean(&mut self, node: &Node, key: &str) -> Option<bool> {
        let text = self.scalar(node, key, "true or false")?;
        match text.trim().to_ascii_lowercase().as_str() {
            "true" => Some(true),
            "false" => Some(false),
            _ => {
                self.error(node.pos, key, format!("expected true or false, got {text:?}"));
                None
            }
        }
    }

    /// An integer in `min..=max` (quoted digits accepted too). `max` must fit `T`.
    pub fn int<T: TryFrom<u64>>(&mut self, node: &Node, key: &str, min: u64, max: u64) -> Option<T> {
        let expected = if min == 0 { "a non-negative integer" } else { "a positive integer" };
        let text = self.scalar(node, key, expected)?;
        let trimmed = text.trim();
        let Ok(value) = trimmed.strip_prefix('+').unwrap_or(trimmed).parse::<u64>() else {
            let message = if trimmed.starts_with('-') && trimmed[1..].bytes().all(|b| b.is_ascii_digit()) {
                format!("must be at least {min}, got {trimmed}")
            } else {
                format!("expected {expected}, got {text:?}")
            };
            self.error(node.pos, key, message);
            return None;
        };
        if value < min || value > max {
            self.error(node.pos, key, format!("must be between {min} and {max}, got {value}"));
            return None;
        }
        T::try_from(value).ok()
    }

    /// A TCP port; `0` lets the OS pick one (tests).
    pub fn port(&mut self, node: &Node, key: &str) -> Option<u16> {
        let text = self.scalar(node, key, "a port number")?;
        match text.trim().parse::<u64>() {
            Ok(port) if port <= u64::from(u16::MAX) => u16::try_from(port).ok(),
            _ => {
                let message = format!("expected a port number from 1 to 65535 (0 = any free port), got {text:?}");
                self.error(node.pos, key, message);
                None
            }
        }
    }

    /// A timeout: a duration greater than zero.
    pub fn timeout(&mut self, node: &Node, key: &str) -> Option<Duration> {
        self.duration(node, key, "a zero timeout is not allowed; use a positive duration such as 30s")
    }

    /// An interval or lifetime: a duration greater than zero.
    pub fn interval(&mut self, node: &Node, key: &str) -> Option<Duration> {
        self.duration(node, key, "must be greater than zero")
    }

    /// A delay or tolerance: a duration, zero allowed.
    pub fn delay(&mut self, node: &Node, key: &str) -> Option<Duration> {
        let text = self.scalar(node, key, "a duration such as 60s")?;
        match parse_duration(text) {
            Ok(d) => Some(d),
            Err(e) => {
                self.error(node.pos, key, format!("invalid duration {text:?}: {e} (examples: 0s, 500ms, 60s, 5m)"));
                None
            }
        }
    }

    fn duration(&mut self, node: &Node, key: &str, zero_message: &str) -> Option<Duration> {
        let text = self.scalar(node, key, "a duration such as 30s")?;
        match parse_duration(text) {
            Ok(d) if d.is_zero() => {
                self.error(node.pos, key, zero_message);
                None
            }
            Ok(d) => Some(d),
            Err(e) => {
                let message = format!("invalid duration {text:?}: {e} (examples: 500ms, 60s, 5m, 1h30m, 2d)");
                self.error(node.pos, key, message);
                None
            }
        }
    }

    /// A byte size greater than zero: integer bytes or `4MiB`, `512KiB`, `10MB`.
    pub fn size(&mut self, node: &Node, key: &str) -> Option<u64> {
        let text = self.scalar(node, key, "a size such as 4MiB")?;
        match parse_size(text) {
            Ok(0) => {
                self.error(node.pos, key, "must be greater than zero");
                None
            }
            Ok(n) => Some(n),
            Err(e) => {
                let message = format!("invalid size {text:?}: {e} (examples: 4194304, 512KiB, 4MiB, 10MB)");
                self.error(node.pos, key, message);
                None
            }
        }
    }

    /// An IP address literal (`0.0.0.0`, `::`, `[::1]`); host names are not resolved.
    pub fn ip(&mut self, node: &Node, key: &str) -> Option<IpAddr> {
        let text = self.scalar(node, key, "an IP address")?;
        let inner = text.trim().trim_start_matches('[').trim_end_matches(']');
        match inner.parse() {
            Ok(ip) => Some(ip),
            Err(_) => {
                let message = format!(
                    "expected an IP address such as 0.0.0.0, 127.0.0.1 or ::, got {text:?} (host names are not resolved)"
                );
                self.error(node.pos, key, message);
                None
            }
        }
    }

    /// A path to a file that must exist and be readable now; relative to the config file's directory.
    pub fn existing_file(&mut self, node: &Node, key: &str) -> Option<PathBuf> {
        let text = self.string(node, key)?;
        let path = self.base_dir.join(text);
        match check_readable(&path) {
            Ok(()) => Some(path),
            Err(message) => {
                self.error(node.pos, key, message);
                None
            }
        }
    }

    /// An HTTP path (see [`check_http_path`]).
    pub fn http_path(&mut self, node: &Node, key: &str) -> Option<String> {
        let text = self.string(node, key)?;
        match check_http_path(&text) {
            Ok(()) => Some(text),
            Err(message) => {
                self.error(node.pos, key, message);
                None
            }
        }
    }
}

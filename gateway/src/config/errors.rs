//! Config errors: each one names the file, line, column and dotted key it is about.
//!
//! The loader collects every problem it finds into [`ConfigErrors`] instead of
//! stopping at the first, so an operator fixes a broken file in one pass.

use std::fmt;

/// One problem in the configuration, e.g.
/// `gateway.yaml:12:25: connection_pool.max_conns_per_host: expected a positive integer, got "abc"`.
///
/// `line` and `column` are 1-based; both are 0 when there is no position
/// (a file that cannot be read, a command-line flag).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The config file as given, or the flag (`--backend`) the value came from.
    pub file: String,
    /// 1-based line, 0 when unknown.
    pub line: usize,
    /// 1-based column, 0 when unknown.
    pub column: usize,
    /// Dotted key path, e.g. `server.tls.cert_file` or `backends[2].url`; empty for the whole file.
    pub key: String,
    /// What is wrong and, where possible, how to fix it.
    pub message: String,
}

impl ConfigError {
    /// An error at `line:column` of `file` about `key`.
    pub(super) fn new(file: &str, line: usize, column: usize, key: &str, message: impl Into<String>) -> Self {
        Self { file: file.to_owned(), line, column, key: key.to_owned(), message: message.into() }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file, self.line, self.column)?;
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found while loading a configuration, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl ConfigErrors {
    /// `Ok(())` when empty, else the errors sorted by position (stable, so
    /// problems found at the same place keep the order they were found in).
    pub(super) fn check(mut errors: Vec<ConfigError>) -> Result<(), ConfigErrors> {
        if errors.is_empty() {
            return Ok(());
        }
        errors.sort_by_key(|e| (e.line, e.column));
        Err(ConfigErrors(errors))
    }
}

/// The allowed name closest to `given`, if it is close enough to be a likely typo.
///
/// Names are compared after normalising case, `-` and camelCase to snake_case,
/// so `readTimeout` suggests `read_timeout`.
pub(super) fn closest<'a>(given: &str, allowed: &[&'a str]) -> Option<&'a str> {
    let given = normalise(given);
    allowed
        .iter()
        .map(|a| (edit_distance(&given, &normalise(a)), *a))
        .filter(|(d, _)| *d <= 2 || *d * 3 <= given.chars().count())
        .min_by_key(|(d, _)| *d)
        .map(|(_, a)| a)
}

fn normalise(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 4);
    let mut prev_lower = false;
    for c in s.chars() {
        if c.is_ascii_uppercase() && prev_lower {
            out.push('_');
        }
        prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        out.push(if c == '-' || c == ' ' { '_' } else { c.to_ascii_lowercase() });
    }
    out
}

/// Levenshtein distance over chars (the strings are short config keys).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = substitute.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_with_and_without_key() {
        let e = ConfigError::new("gw.yaml", 3, 7, "server.port", "bad");
        assert_eq!(e.to_string(), "gw.yaml:3:7: server.port: bad");
        let e = ConfigError::new("gw.yaml", 0, 0, "", "cannot read");
        assert_eq!(e.to_string(), "gw.yaml:0:0: cannot read");
        let all = ConfigErrors(vec![ConfigError::new("a", 1, 1, "k", "x"), ConfigError::new("a", 2, 1, "j", "y")]);
        assert_eq!(all.to_string(), "a:1:1: k: x\na:2:1: j: y");
    }

    #[test]
    fn check_sorts_by_position() {
        let errs = vec![ConfigError::new("a", 5, 1, "b", "x"), ConfigError::new("a", 2, 9, "a", "y")];
        let got = ConfigErrors::check(errs).unwrap_err();
        assert_eq!(got.0[0].line, 2);
        assert!(ConfigErrors::check(Vec::new()).is_ok());
    }

    #[test]
    fn suggestions() {
        let keys = ["read_timeout", "write_timeout", "port", "host", "max_conns_per_host"];
        assert_eq!(closest("max_con_per_host", &keys), Some("max_conns_per_host"));
        assert_eq!(closest("readTimeout", &keys), Some("read_timeout"));
        assert_eq!(closest("prot", &keys), Some("port"));
        assert_eq!(closest("discovery", &keys), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}

//! Origin validation (DNS rebinding protection, MCP 2025-11-25 transports):
//! a request whose `Origin` header is present and not on
//! `security.allowed_origins` gets 403. Requests without `Origin` (non-browser
//! clients) pass; an empty allow-list turns the check off.

use http::HeaderMap;
use http::header::ORIGIN;

/// Why an `Origin` was refused.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum OriginError {
    /// Not on the allow-list (or not a valid header value).
    #[error("origin not allowed")]
    NotAllowed,
    /// More than one `Origin` header.
    #[error("more than one Origin header")]
    Duplicate,
}

/// The allow-list, normalized (lowercase, no trailing slash).
#[derive(Debug, Clone, Default)]
pub struct Origins(Vec<String>);

impl Origins {
    /// From `security.allowed_origins` (already normalized by the loader).
    pub fn new(allowed: &[String]) -> Self {
        Self(allowed.iter().map(|o| normalize(o)).collect())
    }

    /// Whether the check is on.
    pub fn is_on(&self) -> bool {
        !self.0.is_empty()
    }

    /// Accept a request without `Origin` or with an allowed one.
    pub fn check(&self, headers: &HeaderMap) -> Result<(), OriginError> {
        if self.0.is_empty() {
            return Ok(());
        }
        let mut values = headers.get_all(ORIGIN).iter();
        let Some(first) = values.next() else { return Ok(()) };
        if values.next().is_some() {
            return Err(OriginError::Duplicate);
        }
        let origin = first.to_str().map_err(|_| OriginError::NotAllowed)?;
        let origin = normalize(origin);
        if self.0.contains(&origin) { Ok(()) } else { Err(OriginError::NotAllowed) }
    }
}

fn normalize(origin: &str) -> String {
    origin.trim().trim_end_matches('/').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn with(origins: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for o in origins {
            h.append(ORIGIN, HeaderValue::from_str(o).unwrap());
        }
        h
    }

    #[test]
    fn allow_list() {
        let o = Origins::new(&["https://app.example.com".into(), "http://localhost:3000".into()]);
        assert!(o.is_on());
        assert_eq!(o.check(&with(&[])), Ok(()));
        assert_eq!(o.check(&with(&["https://app.example.com"])), Ok(()));
        assert_eq!(o.check(&with(&["HTTPS://APP.example.com/"])), Ok(()));
        assert_eq!(o.check(&with(&["http://localhost:3000"])), Ok(()));
        assert_eq!(o.check(&with(&["http://localhost:3001"])), Err(OriginError::NotAllowed));
        assert_eq!(o.check(&with(&["https://evil.example"])), Err(OriginError::NotAllowed));
        assert_eq!(o.check(&with(&["null"])), Err(OriginError::NotAllowed));
        let two = with(&["https://app.example.com", "https://app.example.com"]);
        assert_eq!(o.check(&two), Err(OriginError::Duplicate));
        let off = Origins::default();
        assert!(!off.is_on());
        assert_eq!(off.check(&with(&["https://evil.example"])), Ok(()));
    }
}

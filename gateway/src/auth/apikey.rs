//! API keys: an alternative credential for operators whose clients cannot do
//! OAuth. The config holds only SHA-256 digests; a presented key is hashed
//! and compared with every configured digest in constant time (no early exit,
//! so timing reveals neither which key nor how much of a digest matched).

use crate::config::ApiKeyConfig;

/// The issuer recorded in an API key caller's principal.
pub const API_KEY_ISSUER: &str = "api-key";

/// One configured key.
#[derive(Debug, Clone)]
pub struct ApiKey {
    /// The key's name (the caller's subject).
    pub name: String,
    /// Scopes the key carries.
    pub scopes: Vec<String>,
    sha256: [u8; 32],
}

/// All configured API keys.
#[derive(Debug, Clone, Default)]
pub struct ApiKeys(Vec<ApiKey>);

impl ApiKeys {
    /// From config.
    pub fn new(cfg: &[ApiKeyConfig]) -> Self {
        Self(cfg.iter().map(|k| ApiKey { name: k.name.clone(), scopes: k.scopes.clone(), sha256: k.sha256 }).collect())
    }

    /// True when no key is configured.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The key whose digest equals `digest` (the SHA-256 of the presented key).
    pub fn find(&self, digest: &[u8; 32]) -> Option<&ApiKey> {
        let mut found = None;
        for key in &self.0 {
            if ct_eq(&key.sha256, digest) && found.is_none() {
                found = Some(key);
            }
        }
        found
    }
}

/// Constant-time equality of two 32-byte values.
pub fn ct_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // `black_box` keeps the optimizer from turning the fold into an early-exit compare.
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::cache::digest;

    #[test]
    fn finds_by_digest_only() {
        let keys = ApiKeys::new(&[
            ApiKeyConfig { name: "ci".into(), sha256: digest("secret-one"), scopes: vec!["mcp".into()] },
            ApiKeyConfig { name: "ops".into(), sha256: digest("secret-two"), scopes: vec![] },
        ]);
        assert_eq!(keys.find(&digest("secret-one")).unwrap().name, "ci");
        assert_eq!(keys.find(&digest("secret-two")).unwrap().name, "ops");
        assert!(keys.find(&digest("secret-three")).is_none());
        assert!(keys.find(&digest("")).is_none());
        assert!(!keys.is_empty() && ApiKeys::default().is_empty());
        assert!(ct_eq(&[7; 32], &[7; 32]));
        let mut other = [7; 32];
        other[31] = 8;
        assert!(!ct_eq(&[7; 32], &other));
    }
}

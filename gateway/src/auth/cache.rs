//! The verdict cache: each distinct credential is verified once, and the
//! result is remembered until the token expires, so a repeated token costs a
//! SHA-256 and a hash lookup instead of a signature check.
//!
//! Keys are SHA-256 digests of the credential (a 64-bit hash could collide
//! with a valid token; a digest cannot, and the cache never holds a token).
//! Entries carry the key-set epoch they were made under: when a key set
//! changes (JWKS rotation, admin flush), older verdicts are ignored.
//! Bounded: sharded maps of at most `capacity / SHARDS` entries each; a full
//! shard first drops expired entries, then an arbitrary one.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use super::{AuthError, Caller};

const SHARDS: usize = 16;

/// The SHA-256 of a credential.
pub type CredentialDigest = [u8; 32];

/// What verification concluded about one credential.
pub type Verdict = Result<Arc<Caller>, AuthError>;

#[derive(Debug)]
struct Entry {
    verdict: Verdict,
    /// Unix seconds after which the entry is ignored.
    until: u64,
    epoch: u64,
}

/// Sharded, bounded map from credential digest to verdict.
#[derive(Debug)]
pub struct VerdictCache {
    shards: Vec<Mutex<HashMap<CredentialDigest, Entry>>>,
    per_shard: usize,
    epoch: AtomicU64,
}

/// SHA-256 of the credential text.
pub fn digest(credential: &str) -> CredentialDigest {
    Sha256::digest(credential.as_bytes()).into()
}

impl VerdictCache {
    /// A cache holding about `capacity` verdicts.
    pub fn new(capacity: usize) -> Self {
        let per_shard = capacity.div_ceil(SHARDS).max(1);
        Self { shards: (0..SHARDS).map(|_| Mutex::default()).collect(), per_shard, epoch: AtomicU64::new(0) }
    }

    fn shard(&self, key: &CredentialDigest) -> &Mutex<HashMap<CredentialDigest, Entry>> {
        &self.shards[usize::from(key[0]) % SHARDS]
    }

    /// The remembered verdict for `key`, if still valid at `now` (Unix seconds).
    pub fn get(&self, key: &CredentialDigest, now: u64) -> Option<Verdict> {
        let epoch = self.epoch.load(Ordering::Acquire);
        let shard = self.shard(key).lock().unwrap_or_else(|p| p.into_inner());
        let entry = shard.get(key)?;
        (entry.until >= now && entry.epoch == epoch).then(|| entry.verdict.clone())
    }

    /// Remember `verdict` for `key` until `until` (Unix seconds).
    pub fn put(&self, key: CredentialDigest, verdict: Verdict, until: u64, now: u64) {
        let epoch = self.epoch.load(Ordering::Acquire);
        let mut shard = self.shard(&key).lock().unwrap_or_else(|p| p.into_inner());
        if shard.len() >= self.per_shard && !shard.contains_key(&key) {
            shard.retain(|_, e| e.until >= now && e.epoch == epoch);
            if shard.len() >= self.per_shard {
                let victim = shard.keys().next().copied();
                if let Some(victim) = victim {
                    shard.remove(&victim);
                }
            }
        }
        shard.insert(key, Entry { verdict, until, epoch });
    }

    /// Forget every verdict (keys changed): later lookups verify again.
    pub fn invalidate(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// Drop every entry now (admin action); also invalidates.
    pub fn clear(&self) -> usize {
        self.invalidate();
        self.shards.iter().map(|s| std::mem::take(&mut *s.lock().unwrap_or_else(|p| p.into_inner())).len()).sum()
    }

    /// Number of entries held (valid or not).
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).len()).sum()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok() -> Verdict {
        Ok(Arc::new(Caller::for_tests("alice")))
    }

    #[test]
    fn hit_until_expiry() {
        let c = VerdictCache::new(100);
        let k = digest("token-a");
        assert!(c.get(&k, 10).is_none());
        c.put(k, ok(), 20, 10);
        assert_eq!(c.get(&k, 20).unwrap().unwrap().principal.subject, "alice");
        assert!(c.get(&k, 21).is_none());
        assert!(c.get(&digest("token-b"), 10).is_none());
        c.put(digest("bad"), Err(AuthError::BadSignature), 100, 10);
        assert!(matches!(c.get(&digest("bad"), 50), Some(Err(AuthError::BadSignature))));
    }

    #[test]
    fn invalidation_and_clear() {
        let c = VerdictCache::new(100);
        let k = digest("t");
        c.put(k, ok(), 100, 0);
        c.invalidate();
        assert!(c.get(&k, 1).is_none());
        c.put(k, ok(), 100, 0);
        assert!(c.get(&k, 1).is_some());
        assert_eq!(c.clear(), 1);
        assert!(c.is_empty());
    }

    #[test]
    fn bounded() {
        let c = VerdictCache::new(32);
        for i in 0..10_000 {
            c.put(digest(&i.to_string()), ok(), 100, 0);
        }
        assert!(c.len() <= 32, "{}", c.len());
        // The newest entry is always kept.
        assert!(c.get(&digest("9999"), 1).is_some());
    }
}

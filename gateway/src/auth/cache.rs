//! The verdict cache: each distinct credential is verified once, and the
//! result is remembered until the token expires, so a repeated token costs a
//! hash lookup instead of a signature check.
//!
//! Two levels. In front, [`Recent`] holds the last few credentials whole: a
//! token seen lately is found by comparing it, with no hashing of the token.
//! Behind, keys are SHA-256 digests of the credential (a 64-bit hash could
//! collide with a valid token; a digest cannot, and this map holds no token).
//! Entries carry the key-set epoch they were made under: when a key set
//! changes (JWKS rotation, admin flush), older verdicts are ignored.
//! Bounded: sharded maps of at most `capacity / SHARDS` entries each; a full
//! shard first drops expired entries, then an arbitrary one.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use super::recent::Recent;
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
    recent: Recent,
}

/// What [`VerdictCache::lookup`] found.
#[derive(Debug)]
pub enum Lookup {
    /// A remembered, still valid verdict.
    Hit(Verdict),
    /// Nothing valid: the credential's digest and the key-set epoch of the lookup, to verify
    /// it and [`VerdictCache::insert`] the result under that epoch (a key set that changes
    /// while the credential is verified must not make the verdict look current).
    Miss(CredentialDigest, u64),
}

/// SHA-256 of the credential text.
pub fn digest(credential: &str) -> CredentialDigest {
    Sha256::digest(credential.as_bytes()).into()
}

impl VerdictCache {
    /// A cache holding about `capacity` verdicts.
    pub fn new(capacity: usize) -> Self {
        let per_shard = capacity.div_ceil(SHARDS).max(1);
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            per_shard,
            epoch: AtomicU64::new(0),
            recent: Recent::new(capacity),
        }
    }

    fn shard(&self, key: &CredentialDigest) -> &Mutex<HashMap<CredentialDigest, Entry>> {
        &self.shards[usize::from(key[0]) % SHARDS]
    }

    /// The remembered verdict for a credential seen lately (compared whole, not hashed),
    /// if still valid at `now` (Unix seconds). Holds only what [`lookup_digest`](Self::lookup_digest)
    /// found or [`insert`](Self::insert) stored, so a hit's bytes are a checked credential.
    pub fn recent(&self, credential: &[u8], now: u64) -> Option<Verdict> {
        self.recent.get(credential, now, self.epoch.load(Ordering::Acquire))
    }

    #[cfg(test)]
    /// The remembered verdict for `credential` at `now` (Unix seconds): first among the
    /// recent credentials, else by digest (then remembered as recent).
    pub fn lookup(&self, credential: &str, now: u64) -> Lookup {
        match self.recent(credential.as_bytes(), now) {
            Some(verdict) => Lookup::Hit(verdict),
            None => self.lookup_digest(credential, now),
        }
    }

    /// The lookup for a credential [`recent`](Self::recent) has just missed:
    /// by digest only (then remembered as recent).
    pub fn lookup_digest(&self, credential: &str, now: u64) -> Lookup {
        let epoch = self.epoch.load(Ordering::Acquire);
        let key = digest(credential);
        match self.entry(&key, now, epoch) {
            Some((verdict, until)) => {
                self.recent.put(credential.as_bytes(), verdict.clone(), until, epoch);
                Lookup::Hit(verdict)
            }
            None => Lookup::Miss(key, epoch),
        }
    }

    /// Remember `verdict` for `credential` (whose digest is `key`) until `until` (Unix seconds),
    /// under the `epoch` its [`Lookup::Miss`] named.
    pub fn insert(
        &self,
        credential: &str,
        (key, epoch): (CredentialDigest, u64),
        verdict: Verdict,
        until: u64,
        now: u64,
    ) {
        self.put_at(key, verdict.clone(), until, now, epoch);
        self.recent.put(credential.as_bytes(), verdict, until, epoch);
    }

    #[cfg(test)]
    /// The remembered verdict for `key`, if still valid at `now` (Unix seconds).
    pub fn get(&self, key: &CredentialDigest, now: u64) -> Option<Verdict> {
        self.entry(key, now, self.epoch.load(Ordering::Acquire)).map(|(verdict, _)| verdict)
    }

    fn entry(&self, key: &CredentialDigest, now: u64, epoch: u64) -> Option<(Verdict, u64)> {
        let shard = self.shard(key).lock().unwrap_or_else(|p| p.into_inner());
        let entry = shard.get(key)?;
        (entry.until >= now && entry.epoch == epoch).then(|| (entry.verdict.clone(), entry.until))
    }

    #[cfg(test)]
    /// Remember `verdict` for `key` until `until` (Unix seconds).
    pub fn put(&self, key: CredentialDigest, verdict: Verdict, until: u64, now: u64) {
        self.put_at(key, verdict, until, now, self.epoch.load(Ordering::Acquire));
    }

    fn put_at(&self, key: CredentialDigest, verdict: Verdict, until: u64, now: u64, epoch: u64) {
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
        self.recent.clear();
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
    fn lookup_through_recent_and_digest() {
        let c = VerdictCache::new(100);
        let Lookup::Miss(k, epoch) = c.lookup("tok", 10) else { panic!("hit in an empty cache") };
        assert_eq!(k, digest("tok"));
        c.insert("tok", (k, epoch), ok(), 20, 10);
        assert!(c.recent(b"tok", 20).is_some());
        assert!(c.recent(b"tok", 21).is_none(), "expired in front");
        assert!(matches!(c.lookup("tok", 21), Lookup::Miss(..)), "expired behind");
        assert!(c.recent(b"tok2", 10).is_none());
        // Known by digest only (put without the credential): found, then remembered in front.
        c.put(digest("old"), ok(), 50, 10);
        assert!(c.recent(b"old", 10).is_none());
        assert!(matches!(c.lookup("old", 10), Lookup::Hit(Ok(_))));
        assert!(c.recent(b"old", 10).is_some());
        // A new key set forgets both levels.
        c.invalidate();
        assert!(c.recent(b"old", 10).is_none());
        assert!(matches!(c.lookup("old", 10), Lookup::Miss(..)));
        // A verdict reached under a key set that was replaced meanwhile is stored stale.
        let Lookup::Miss(k, epoch) = c.lookup("racy", 10) else { panic!("hit") };
        c.invalidate();
        c.insert("racy", (k, epoch), ok(), 50, 10);
        assert!(c.recent(b"racy", 10).is_none());
        assert!(matches!(c.lookup("racy", 10), Lookup::Miss(..)));
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

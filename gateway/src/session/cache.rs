//! Opened session ids, remembered by exact token text.
//!
//! Opening a sealed id costs an XChaCha20-Poly1305 decryption (~10k instructions,
//! callgrind); a session sends the same id on every request. The cache maps the
//! exact token string to its already-authenticated claims, so a repeated id costs
//! one hash lookup. Only ids that opened successfully are inserted, and a hit is
//! an exact string match, so a forged or tampered id can never hit. Freshness
//! (TTL) is re-checked on every hit. The same entries record when a session was
//! last seen, which is what `mcp_sessions_active` counts, and a periodic sweep
//! drops idle entries, which bounds memory together with the per-shard cap.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex};

use super::token::{OpenError, Sealer, SessionClaims, SessionTransport};

const SHARDS: usize = 16;
/// Entries per shard; a full shard is emptied (every id in it re-opens once).
const MAX_PER_SHARD: usize = 8192;

#[derive(Debug)]
struct Entry {
    /// The exact token text: a hit needs the whole string to match, not just its hash.
    token: Box<str>,
    claims: Arc<SessionClaims>,
    last_seen: u64,
}

/// The maps are keyed by the token's keyed hash, computed once per lookup; this hasher
/// passes that hash through instead of hashing it again.
#[derive(Debug, Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `u64` keys are hashed here; fold anything else in rather than lose it.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type Shard = HashMap<u64, Entry, BuildHasherDefault<PassThrough>>;

/// The cache of opened session ids.
#[derive(Debug)]
pub struct OpenedSessions {
    /// Randomly keyed per process: clients choose the token text they send.
    hasher: foldhash::quality::RandomState,
    shards: Vec<Mutex<Shard>>,
}

impl Default for OpenedSessions {
    fn default() -> Self {
        Self { hasher: Default::default(), shards: (0..SHARDS).map(|_| Mutex::default()).collect() }
    }
}

impl OpenedSessions {
    /// The token's hash and its shard (chosen by bits the maps do not use for buckets or tags).
    fn shard(&self, token: &str) -> (u64, std::sync::MutexGuard<'_, Shard>) {
        let h = self.hasher.hash_one(token);
        let i = (h >> 32) as usize % SHARDS;
        (h, self.shards[i].lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Open `token` (from the cache when it was opened before) and mark it seen at `now`.
    pub fn open(&self, sealer: &Sealer, token: &str, now: u64) -> Result<Arc<SessionClaims>, OpenError> {
        {
            let (h, mut shard) = self.shard(token);
            if let Some(entry) = shard.get_mut(&h).filter(|e| *e.token == *token) {
                sealer.check_fresh(&entry.claims, now)?;
                entry.last_seen = now;
                return Ok(Arc::clone(&entry.claims));
            }
        }
        // Miss: authenticate outside the lock.
        let claims = Arc::new(sealer.open_at(token, now)?);
        let (h, mut shard) = self.shard(token);
        if shard.len() >= MAX_PER_SHARD {
            shard.clear();
        }
        // A different token with the same hash (vanishingly rare) is simply replaced.
        shard.insert(h, Entry { token: token.into(), claims: Arc::clone(&claims), last_seen: now });
        Ok(claims)
    }

    /// Forget a session (ended by DELETE).
    pub fn forget(&self, token: &str) {
        let (h, mut shard) = self.shard(token);
        if shard.get(&h).is_some_and(|e| *e.token == *token) {
            shard.remove(&h);
        }
    }

    /// Drop entries idle for more than `idle_secs`; return the remaining
    /// (streamable, legacy SSE) counts.
    pub fn sweep(&self, now: u64, idle_secs: u64) -> (i64, i64) {
        let cutoff = now.saturating_sub(idle_secs);
        let (mut streamable, mut legacy) = (0i64, 0i64);
        for shard in &self.shards {
            let mut s = shard.lock().unwrap_or_else(|p| p.into_inner());
            s.retain(|_, e| e.last_seen >= cutoff);
            for e in s.values() {
                match e.claims.transport {
                    SessionTransport::Streamable => streamable += 1,
                    SessionTransport::LegacySse => legacy += 1,
                }
            }
        }
        (streamable, legacy)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::session::keys::SessionKeys;

    fn claims(transport: SessionTransport, issued_at: u64) -> SessionClaims {
        SessionClaims {
            backend: "b".into(),
            upstream_session: "0123456789abcdef0123456789abcdef".into(),
            transport,
            issued_at,
            principal: None,
        }
    }

    #[test]
    fn hits_are_exact_and_fresh() {
        let sealer = Sealer::new(SessionKeys::generate(), Duration::from_secs(100));
        let cache = OpenedSessions::default();
        let token = sealer.seal(&claims(SessionTransport::Streamable, 1_000));
        let first = cache.open(&sealer, &token, 1_010).unwrap();
        let second = cache.open(&sealer, &token, 1_020).unwrap();
        assert!(Arc::ptr_eq(&first, &second), "second open should come from the cache");
        // A different (tampered) string never hits the cached entry.
        let mut bytes = token.clone().into_bytes();
        let mid = bytes.len() / 2;
        bytes[mid] = if bytes[mid] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).unwrap();
        assert!(cache.open(&sealer, &tampered, 1_020).is_err());
        // Expiry is checked on hits too.
        assert_eq!(cache.open(&sealer, &token, 1_200).unwrap_err(), OpenError::Expired);
    }

    #[test]
    fn sweep_counts_and_evicts_idle() {
        let sealer = Sealer::new(SessionKeys::generate(), Duration::from_secs(10_000));
        let cache = OpenedSessions::default();
        let a = sealer.seal(&claims(SessionTransport::Streamable, 1_000));
        let b = sealer.seal(&claims(SessionTransport::LegacySse, 1_000));
        cache.open(&sealer, &a, 1_000).unwrap();
        cache.open(&sealer, &b, 1_100).unwrap();
        assert_eq!(cache.sweep(1_100, 300), (1, 1));
        assert_eq!(cache.sweep(1_350, 300), (0, 1));
        cache.forget(&b);
        assert_eq!(cache.sweep(1_350, 300), (0, 0));
    }
}

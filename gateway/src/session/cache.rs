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
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex};

use super::token::{OpenError, Sealer, SessionClaims, SessionTransport};

const SHARDS: usize = 16;
/// Entries per shard; a full shard is emptied (every id in it re-opens once).
const MAX_PER_SHARD: usize = 8192;

#[derive(Debug)]
struct Entry {
    claims: Arc<SessionClaims>,
    last_seen: u64,
}

/// The cache of opened session ids.
#[derive(Debug)]
pub struct OpenedSessions {
    hasher: RandomState,
    shards: Vec<Mutex<HashMap<Box<str>, Entry>>>,
}

impl Default for OpenedSessions {
    fn default() -> Self {
        Self { hasher: RandomState::new(), shards: (0..SHARDS).map(|_| Mutex::default()).collect() }
    }
}

impl OpenedSessions {
    fn shard(&self, token: &str) -> std::sync::MutexGuard<'_, HashMap<Box<str>, Entry>> {
        let i = (self.hasher.hash_one(token) as usize) % SHARDS;
        self.shards[i].lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Open `token` (from the cache when it was opened before) and mark it seen at `now`.
    pub fn open(&self, sealer: &Sealer, token: &str, now: u64) -> Result<Arc<SessionClaims>, OpenError> {
        if let Some(entry) = self.shard(token).get_mut(token) {
            sealer.check_fresh(&entry.claims, now)?;
            entry.last_seen = now;
            return Ok(Arc::clone(&entry.claims));
        }
        // Miss: authenticate outside the lock.
        let claims = Arc::new(sealer.open_at(token, now)?);
        let mut shard = self.shard(token);
        if shard.len() >= MAX_PER_SHARD {
            shard.clear();
        }
        shard.insert(token.into(), Entry { claims: Arc::clone(&claims), last_seen: now });
        Ok(claims)
    }

    /// Forget a session (ended by DELETE).
    pub fn forget(&self, token: &str) {
        self.shard(token).remove(token);
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

//! The session table of a stateful demo server: random 128-bit ids (32 lowercase hex in the
//! `Mcp-Session-Id` header), kept in a sharded, bounded map that evicts its oldest entries.
//! Removing a session (DELETE or eviction) ends every GET stream opened on it.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::watch;

/// Number of shards in a default store; a power of two, picked by the id's low bits.
const SHARDS: usize = 16;

/// A session id: 128 random bits, shown as 32 lowercase hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionId(u128);

impl SessionId {
    /// Parses a header value: exactly 32 hex digits (either case); `None` for anything else,
    /// which callers treat as an unknown session.
    pub fn parse(value: &[u8]) -> Option<Self> {
        if value.len() != 32 {
            return None;
        }
        let s = std::str::from_utf8(value).ok()?;
        if !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u128::from_str_radix(s, 16).ok().map(Self)
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

#[derive(Debug)]
struct Entry {
    /// Creation order within the store, the key of `Shard::order`.
    seq: u64,
    /// Dropped with the entry; GET streams hold receivers and end when it goes.
    alive: watch::Sender<()>,
}

#[derive(Debug, Default)]
struct Shard {
    map: HashMap<SessionId, Entry>,
    /// Creation order, oldest first, for eviction.
    order: BTreeMap<u64, SessionId>,
    next_seq: u64,
}

/// A bounded, sharded session table.
#[derive(Debug)]
pub struct SessionStore {
    shards: Box<[Mutex<Shard>]>,
    per_shard: usize,
}

impl SessionStore {
    /// A store holding about `capacity` sessions (each of 16 shards keeps at most
    /// `ceil(capacity / 16)` and evicts its oldest beyond that).
    pub fn new(capacity: usize) -> Self {
        Self::with_shards(capacity, SHARDS)
    }

    /// A store with `shards` shards (rounded up to a power of two).
    pub fn with_shards(capacity: usize, shards: usize) -> Self {
        let shards = shards.max(1).next_power_of_two();
        Self {
            shards: (0..shards).map(|_| Mutex::new(Shard::default())).collect(),
            per_shard: capacity.max(1).div_ceil(shards),
        }
    }

    fn shard(&self, id: SessionId) -> MutexGuard<'_, Shard> {
        // Ids are uniformly random, so their low bits spread sessions evenly.
        let index = (id.0 as usize) & (self.shards.len() - 1);
        self.shards[index].lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Mints and stores a new session, evicting the oldest of its shard when full.
    pub fn create(&self) -> SessionId {
        // A collision of 128 random bits is not expected; the bound only keeps the loop finite.
        for _ in 0..8 {
            let id = SessionId(rand::random::<u128>());
            let mut shard = self.shard(id);
            if shard.map.contains_key(&id) {
                continue;
            }
            while shard.map.len() >= self.per_shard {
                let Some((_, oldest)) = shard.order.pop_first() else {
                    break;
                };
                shard.map.remove(&oldest);
            }
            let seq = shard.next_seq;
            shard.next_seq += 1;
            let (alive, _) = watch::channel(());
            shard.map.insert(id, Entry { seq, alive });
            shard.order.insert(seq, id);
            return id;
        }
        unreachable!("eight 128-bit random ids in a row collided")
    }

    /// Whether `id` is a live session.
    pub fn contains(&self, id: SessionId) -> bool {
        self.shard(id).map.contains_key(&id)
    }

    /// A receiver whose `changed()` fails once the session is removed; `None` if unknown.
    pub fn watch(&self, id: SessionId) -> Option<watch::Receiver<()>> {
        self.shard(id).map.get(&id).map(|e| e.alive.subscribe())
    }

    /// Removes a session; `false` if it was unknown.
    pub fn remove(&self, id: SessionId) -> bool {
        let mut shard = self.shard(id);
        match shard.map.remove(&id) {
            Some(entry) => {
                shard.order.remove(&entry.seq);
                true
            }
            None => false,
        }
    }

    /// Number of live sessions.
    #[cfg_attr(not(test), expect(dead_code, reason = "used by tests"))]
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).map.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_as_32_lowercase_hex() {
        let store = SessionStore::new(10);
        let id = store.create();
        let text = id.to_string();
        assert_eq!(text.len(), 32);
        assert!(text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        assert_eq!(SessionId::parse(text.as_bytes()), Some(id));
        assert_eq!(SessionId::parse(text.to_uppercase().as_bytes()), Some(id));
        assert_ne!(store.create(), id);
    }

    #[test]
    fn rejects_malformed_ids() {
        assert_eq!(SessionId::parse(b""), None);
        assert_eq!(SessionId::parse(b"abc"), None);
        assert_eq!(SessionId::parse(&[b'g'; 32]), None);
        assert_eq!(SessionId::parse(b"+0000000000000000000000000000001"), None);
        assert_eq!(SessionId::parse(&[b'0'; 33]), None);
    }

    #[test]
    fn create_contains_remove() {
        let store = SessionStore::new(100);
        let a = store.create();
        let b = store.create();
        assert!(store.contains(a) && store.contains(b));
        assert_eq!(store.len(), 2);
        assert!(store.remove(a));
        assert!(!store.remove(a));
        assert!(!store.contains(a));
        assert!(store.contains(b));
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn evicts_oldest_when_full() {
        let store = SessionStore::with_shards(2, 1);
        let a = store.create();
        let b = store.create();
        let c = store.create();
        assert!(!store.contains(a));
        assert!(store.contains(b) && store.contains(c));
        // A removed session frees its slot: nothing else is evicted.
        assert!(store.remove(b));
        let d = store.create();
        assert!(store.contains(c) && store.contains(d));
        assert_eq!(store.len(), 2);
    }

    #[test]
    fn bounded_across_shards() {
        let store = SessionStore::new(64);
        for _ in 0..1000 {
            store.create();
        }
        assert!(store.len() <= 64, "{}", store.len());
    }

    #[tokio::test]
    async fn watchers_see_removal() {
        let store = SessionStore::new(10);
        let id = store.create();
        let mut rx = store.watch(id).unwrap();
        assert!(store.remove(id));
        assert!(rx.changed().await.is_err());
        assert!(store.watch(id).is_none());
    }
}

//! Token-bucket rate limits, per client IP and per principal (token `sub` or
//! API key name): `rate` requests per second sustained, bursts up to `burst`.
//! A refused request gets 429 with `Retry-After` (whole seconds until one
//! token is back). This is the userspace layer; the XDP program can take the
//! per-IP limit into the kernel, and this one stays as the fallback.
//!
//! Memory is bounded: sharded maps of at most `MAX_KEYS / SHARDS` buckets; a
//! full shard first forgets buckets that have refilled (they are equivalent to
//! a fresh one), then an arbitrary one. IPv6 clients are limited per /64,
//! since one host usually owns the whole prefix.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, RandomState};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

use crate::config::RateLimit;

const SHARDS: usize = 16;
/// Most buckets tracked per limiter.
const MAX_KEYS: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// A keyed token-bucket limiter.
#[derive(Debug)]
pub struct Limiter<K> {
    rate: f64,
    burst: f64,
    hasher: RandomState,
    shards: Vec<Mutex<HashMap<K, Bucket>>>,
}

/// One tracked client, for the admin view.
#[derive(Debug, Clone, PartialEq)]
pub struct Usage<K> {
    /// The client.
    pub key: K,
    /// Tokens left now.
    pub tokens: f64,
}

impl<K: Hash + Eq + Clone> Limiter<K> {
    /// A limiter for `limit`, or `None` when the limit is off.
    pub fn new(limit: RateLimit) -> Option<Self> {
        limit.is_on().then(|| Self {
            rate: limit.rate,
            burst: f64::from(limit.burst.max(1)),
            hasher: RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
        })
    }

    fn shard<Q: Hash + ?Sized>(&self, key: &Q) -> &Mutex<HashMap<K, Bucket>> {
        &self.shards[(self.hasher.hash_one(key) as usize) % SHARDS]
    }

    fn refill(&self, b: &mut Bucket, now: Instant) {
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.rate).min(self.burst);
        b.last = now;
    }

    /// Take one token for `key` at `now`; `Err(seconds)` says when to retry.
    /// A known client costs a lookup; only a new one allocates its key.
    pub fn check<Q>(&self, key: &Q, now: Instant) -> Result<(), u64>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let mut shard = self.shard(key).lock().unwrap_or_else(|p| p.into_inner());
        if !shard.contains_key(key) && shard.len() >= MAX_KEYS / SHARDS {
            let (rate, burst) = (self.rate, self.burst);
            shard.retain(|_, b| b.tokens + now.saturating_duration_since(b.last).as_secs_f64() * rate < burst);
            if shard.len() >= MAX_KEYS / SHARDS {
                let victim = shard.keys().next().cloned();
                if let Some(victim) = victim {
                    shard.remove::<K>(&victim);
                }
            }
        }
        if !shard.contains_key(key) {
            shard.insert(key.to_owned(), Bucket { tokens: self.burst, last: now });
        }
        let Some(bucket) = shard.get_mut(key) else { return Ok(()) };
        self.refill(bucket, now);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        let wait = (1.0 - bucket.tokens) / self.rate;
        Err((wait.ceil() as u64).max(1))
    }

    /// Forget `key` (admin reset); returns whether it was tracked.
    pub fn reset<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.shard(key).lock().unwrap_or_else(|p| p.into_inner()).remove(key).is_some()
    }

    /// Forget everyone; returns how many were tracked.
    pub fn reset_all(&self) -> usize {
        self.shards.iter().map(|s| std::mem::take(&mut *s.lock().unwrap_or_else(|p| p.into_inner())).len()).sum()
    }

    /// The `n` clients with the fewest tokens left (the most throttled first).
    pub fn busiest(&self, n: usize, now: Instant) -> (usize, Vec<Usage<K>>) {
        let mut all = Vec::new();
        for shard in &self.shards {
            let mut s = shard.lock().unwrap_or_else(|p| p.into_inner());
            for (k, b) in s.iter_mut() {
                self.refill(b, now);
                all.push(Usage { key: k.clone(), tokens: b.tokens });
            }
        }
        let total = all.len();
        all.sort_by(|a, b| a.tokens.total_cmp(&b.tokens));
        all.truncate(n);
        (total, all)
    }
}

/// The key a client IP is limited under: itself for IPv4, its /64 for IPv6.
pub fn ip_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut seg = v6.segments();
                seg[4..].fill(0);
                IpAddr::V6(seg.into())
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn burst_then_refill() {
        let l = Limiter::new(RateLimit { rate: 2.0, burst: 3 }).unwrap();
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(l.check(&"a", t0), Ok(()));
        }
        assert_eq!(l.check(&"a", t0), Err(1));
        // Other keys have their own bucket.
        assert_eq!(l.check(&"b", t0), Ok(()));
        // Half a second later one token is back.
        assert_eq!(l.check(&"a", t0 + Duration::from_millis(500)), Ok(()));
        assert!(l.check(&"a", t0 + Duration::from_millis(500)).is_err());
        let slow = Limiter::new(RateLimit { rate: 0.1, burst: 1 }).unwrap();
        assert_eq!(slow.check(&1, t0), Ok(()));
        assert_eq!(slow.check(&1, t0), Err(10));
        assert!(Limiter::<u8>::new(RateLimit::OFF).is_none());
    }

    #[test]
    fn admin_views_and_resets() {
        let l = Limiter::new(RateLimit { rate: 1.0, burst: 2 }).unwrap();
        let t0 = Instant::now();
        l.check(&"x", t0).unwrap();
        l.check(&"x", t0).unwrap();
        l.check(&"y", t0).unwrap();
        let (total, top) = l.busiest(1, t0);
        assert_eq!((total, top[0].key), (2, "x"));
        assert!(l.reset(&"x"));
        assert!(!l.reset(&"x"));
        assert_eq!(l.check(&"x", t0), Ok(()));
        assert_eq!(l.reset_all(), 2);
    }

    #[test]
    fn bounded_memory() {
        let l = Limiter::new(RateLimit { rate: 1.0, burst: 1 }).unwrap();
        let t0 = Instant::now();
        for i in 0..(MAX_KEYS as u32 + 5_000) {
            let _ = l.check(&i, t0);
        }
        assert!(l.busiest(0, t0).0 <= MAX_KEYS);
    }

    #[test]
    fn ipv6_by_prefix() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(ip_key(a), ip_key(b));
        assert_ne!(ip_key(a), ip_key(c));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(ip_key(mapped), "10.0.0.1".parse::<IpAddr>().unwrap());
    }
}

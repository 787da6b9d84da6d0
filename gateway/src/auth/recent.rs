//! The front of the verdict cache: the credentials seen last, kept whole and compared byte
//! for byte, so the common case — a client repeating its token — costs a slot lookup and a
//! comparison instead of a SHA-256 of the token (about 38,000 instructions for a 640-byte
//! RS256 JWT where the CPU's SHA extensions are not used, 0.5 µs where they are).
//!
//! A slot is chosen from the credential's last bytes (a JWT's signature) and a per-process
//! seed; a hit needs the whole presented credential to equal the remembered one (compared in
//! constant time), so a different token can never hit. A slot holds one credential: a
//! collision only replaces it, and the digest-keyed cache behind still has the verdict.
//! Bounded: at most [`MAX_SLOTS`] credentials of at most [`MAX_TOKEN_LEN`](super::jwt::MAX_TOKEN_LEN)
//! bytes: the only client credentials the gateway keeps beyond a request (the cache behind
//! holds digests).

use std::hash::{BuildHasher, RandomState};
use std::sync::RwLock;

use super::cache::Verdict;

/// Slots at most (a power of two).
pub const MAX_SLOTS: usize = 256;

struct Slot {
    credential: Box<[u8]>,
    verdict: Verdict,
    /// Unix seconds after which the slot is ignored.
    until: u64,
    epoch: u64,
}

// By hand: the credential is a bearer secret and must never reach a log through `{:?}`.
impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slot")
            .field("credential", &format_args!("<{} bytes>", self.credential.len()))
            .field("until", &self.until)
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

/// A direct-mapped table of recent credentials and their verdicts.
#[derive(Debug)]
pub struct Recent {
    slots: Box<[RwLock<Option<Slot>>]>,
    seed: u64,
}

impl Recent {
    /// A table of `capacity` slots, rounded up to a power of two and capped at [`MAX_SLOTS`].
    pub fn new(capacity: usize) -> Self {
        let n = capacity.clamp(1, MAX_SLOTS).next_power_of_two();
        Self { slots: (0..n).map(|_| RwLock::default()).collect(), seed: RandomState::new().hash_one(n) }
    }

    fn slot(&self, credential: &[u8]) -> &RwLock<Option<Slot>> {
        let tail = &credential[credential.len().saturating_sub(16)..];
        let (a, b) = tail.split_at(tail.len().saturating_sub(8));
        let word = |part: &[u8]| {
            let mut w = [0; 8];
            w[..part.len().min(8)].copy_from_slice(&part[..part.len().min(8)]);
            u64::from_le_bytes(w)
        };
        let h = (word(a) ^ self.seed).wrapping_mul(0x9e37_79b9_7f4a_7c15)
            ^ (word(b) ^ credential.len() as u64).wrapping_mul(0xc2b2_ae3d_27d4_eb4f);
        let h = h ^ (h >> 29) ^ (h >> 47);
        #[expect(clippy::cast_possible_truncation, reason = "masked to the slot count")]
        let index = h as usize & (self.slots.len() - 1);
        &self.slots[index]
    }

    /// The verdict remembered for exactly `credential`, if valid at `now` under `epoch`.
    pub fn get(&self, credential: &[u8], now: u64, epoch: u64) -> Option<Verdict> {
        let slot = self.slot(credential).read().unwrap_or_else(|p| p.into_inner());
        let s = slot.as_ref()?;
        (s.until >= now && s.epoch == epoch && ct_eq(&s.credential, credential)).then(|| s.verdict.clone())
    }

    /// Remember `verdict` for `credential` until `until`, replacing the slot's occupant.
    pub fn put(&self, credential: &[u8], verdict: Verdict, until: u64, epoch: u64) {
        let mut slot = self.slot(credential).write().unwrap_or_else(|p| p.into_inner());
        match slot.as_mut() {
            // The same credential again (a refill after expiry or a new epoch): no new allocation.
            Some(s) if ct_eq(&s.credential, credential) => (s.verdict, s.until, s.epoch) = (verdict, until, epoch),
            _ => *slot = Some(Slot { credential: credential.into(), verdict, until, epoch }),
        }
    }

    /// Forget every credential.
    pub fn clear(&self) {
        for s in &self.slots {
            *s.write().unwrap_or_else(|p| p.into_inner()) = None;
        }
    }
}

/// Equality whose time depends on the lengths only, not on where the bytes differ.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let (a8, b8) = (a.chunks_exact(8), b.chunks_exact(8));
    let bytes = a8.remainder().iter().zip(b8.remainder()).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    let word = |c: &[u8]| u64::from_ne_bytes(c.try_into().unwrap_or_default());
    let words = a8.zip(b8).fold(0u64, |acc, (x, y)| acc | (word(x) ^ word(y)));
    std::hint::black_box(words | u64::from(bytes)) == 0
}

#[cfg(test)]
mod tests {
    #[test]
    fn debug_output_never_shows_the_credential() {
        let r = Recent::new(4);
        r.put(b"secret-token-bytes", Err(crate::auth::AuthError::Malformed), 100, 0);
        let text = format!("{r:?}");
        assert!(!text.contains("secret-token"), "{text}");
        assert!(text.contains("<18 bytes>"), "{text}");
    }

    use std::sync::Arc;

    use super::*;
    use crate::auth::{AuthError, Caller};

    fn ok(who: &str) -> Verdict {
        Ok(Arc::new(Caller::for_tests(who)))
    }

    fn subject(v: Option<Verdict>) -> String {
        v.unwrap().unwrap().principal.subject.clone()
    }

    #[test]
    fn exact_credential_until_expiry_and_epoch() {
        let r = Recent::new(16);
        let token = b"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.c2lnbmF0dXJlLW9uZS1vZi1zb21lLWxlbmd0aA";
        assert!(r.get(token, 10, 0).is_none());
        r.put(token, ok("alice"), 20, 0);
        assert_eq!(subject(r.get(token, 20, 0)), "alice");
        assert!(r.get(token, 21, 0).is_none(), "expired");
        assert!(r.get(token, 10, 1).is_none(), "older epoch");
        // Same length, same tail: only the full comparison tells them apart.
        let mut other = token.to_vec();
        other[3] ^= 1;
        assert!(r.get(&other, 10, 0).is_none());
        assert!(r.get(&token[1..], 10, 0).is_none());
        r.put(token, Err(AuthError::Expired), 30, 2);
        assert!(matches!(r.get(token, 25, 2), Some(Err(AuthError::Expired))));
        r.clear();
        assert!(r.get(token, 25, 2).is_none());
    }

    #[test]
    fn bounded_and_short_credentials() {
        let r = Recent::new(10_000);
        assert_eq!(r.slots.len(), MAX_SLOTS);
        assert_eq!(Recent::new(0).slots.len(), 1);
        assert_eq!(Recent::new(20).slots.len(), 32);
        for i in 0..2_000 {
            r.put(format!("key-{i}").as_bytes(), ok(&i.to_string()), 100, 0);
        }
        let held = r.slots.iter().filter(|s| s.read().unwrap().is_some()).count();
        assert!(held <= MAX_SLOTS);
        // The newest is always held; every hit is its own credential.
        assert_eq!(subject(r.get(b"key-1999", 1, 0)), "1999");
        for i in 0..2_000 {
            if let Some(v) = r.get(format!("key-{i}").as_bytes(), 1, 0) {
                assert_eq!(v.unwrap().principal.subject, i.to_string());
            }
        }
        r.put(b"k", ok("short"), 100, 0);
        r.put(b"", ok("empty"), 100, 0);
        assert_eq!(subject(r.get(b"k", 1, 0)), "short");
        assert_eq!(subject(r.get(b"", 1, 0)), "empty");
    }

    #[test]
    fn constant_time_equality() {
        assert!(ct_eq(b"", b""));
        assert!(ct_eq(b"abcdefghij", b"abcdefghij"));
        assert!(!ct_eq(b"abcdefghij", b"abcdefghik"));
        assert!(!ct_eq(b"abcdefghij", b"bbcdefghij"));
        assert!(!ct_eq(b"abc", b"abcd"));
    }
}

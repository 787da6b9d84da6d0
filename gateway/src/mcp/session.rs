//! Session routing state local to one replica: routing needs none (the id is
//! self-describing), but two things do need memory:
//! - ids ended by DELETE are remembered until they would expire anyway, so
//!   this replica answers 404 at once (other replicas get the backend's own
//!   404, since the backend has forgotten the session too);
//! - recently active sessions are counted for `mcp_sessions_active`
//!   (by the opened-session cache, `session::cache`).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::gateway::Shared;
use crate::proxy::{Backend, GatewayError};
use crate::session::token::{SessionClaims, SessionTransport};

/// Upper bound on remembered deletions (oldest forgotten first).
const MAX_REVOKED: usize = 100_000;

/// Seconds since the Unix epoch.
pub fn now_unix() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Open a session id and find its backend, or say why not (all 404s).
pub fn route(
    shared: &Shared,
    token: &str,
    transport: SessionTransport,
) -> Result<(Arc<Backend>, Arc<SessionClaims>), GatewayError> {
    let claims = shared.sessions.open(&shared.sealer, token, now_unix()).map_err(GatewayError::Session)?;
    if claims.transport != transport {
        return Err(GatewayError::WrongTransport);
    }
    let Some(backend) = shared.backends.get(&claims.backend) else {
        return Err(GatewayError::BackendGone(claims.backend.clone()));
    };
    if shared.revoked.contains(&claims.backend, &claims.upstream_session) {
        return Err(GatewayError::SessionDeleted);
    }
    Ok((Arc::clone(backend), claims))
}

/// Sessions ended with DELETE on this replica.
#[derive(Debug, Default)]
pub struct Revoked {
    len: AtomicUsize,
    inner: Mutex<RevokedInner>,
}

#[derive(Debug, Default)]
struct RevokedInner {
    map: HashMap<String, u64>,
    order: VecDeque<(String, u64)>,
}

fn revoked_key(backend: &str, upstream: &str) -> String {
    let mut k = String::with_capacity(backend.len() + upstream.len() + 1);
    k.push_str(backend);
    k.push('\0');
    k.push_str(upstream);
    k
}

impl Revoked {
    /// Remember a deleted session until `expires_at` (unix seconds).
    pub fn insert(&self, backend: &str, upstream: &str, expires_at: u64) {
        let key = revoked_key(backend, upstream);
        let now = now_unix();
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        while let Some((k, exp)) = g.order.front() {
            if *exp > now && g.order.len() < MAX_REVOKED {
                break;
            }
            let k = k.clone();
            g.order.pop_front();
            g.map.remove(&k);
        }
        g.map.insert(key.clone(), expires_at);
        g.order.push_back((key, expires_at));
        self.len.store(g.map.len(), Ordering::Relaxed);
    }

    /// True if this session was deleted (and has not expired since).
    pub fn contains(&self, backend: &str, upstream: &str) -> bool {
        // Fast path: no lock and no allocation while nothing was deleted.
        if self.len.load(Ordering::Relaxed) == 0 {
            return false;
        }
        let g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        g.map.get(&revoked_key(backend, upstream)).is_some_and(|exp| *exp > now_unix())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revoked_roundtrip() {
        let r = Revoked::default();
        assert!(!r.contains("b", "s"));
        r.insert("b", "s", now_unix() + 60);
        assert!(r.contains("b", "s"));
        assert!(!r.contains("b", "t"));
        assert!(!r.contains("c", "s"));
        r.insert("b", "old", now_unix().saturating_sub(1));
        assert!(!r.contains("b", "old"));
    }
}

//! Choosing a backend for a new session: weighted power-of-two-choices on
//! outstanding requests. Two random healthy candidates (drawn by weight), keep
//! the one with fewer requests in flight per unit of weight. It needs no
//! shared state beyond the per-backend counters, so it costs O(1) and adapts
//! to slow backends faster than round robin.

use std::sync::Arc;

use rand::Rng;

use super::Backend;
use crate::config::BackendTransport;

/// Pick a healthy backend speaking `transport`, or `None` if there is none.
pub fn pick(backends: &[Arc<Backend>], transport: BackendTransport) -> Option<Arc<Backend>> {
    let mut rng = rand::rng();
    pick_with(backends, transport, &mut || rng.random::<u64>())
}

/// `pick` with an injectable random source (tests).
pub fn pick_with(
    backends: &[Arc<Backend>],
    transport: BackendTransport,
    random: &mut dyn FnMut() -> u64,
) -> Option<Arc<Backend>> {
    // Small fixed-size candidate list: no allocation for up to 16 backends.
    let mut candidates: smallvec_like::Candidates = Default::default();
    let mut total_weight: u64 = 0;
    for b in backends.iter().filter(|b| b.transport == transport && b.is_healthy()) {
        total_weight += u64::from(b.weight);
        candidates.push(b);
    }
    match candidates.len() {
        0 => None,
        1 => candidates.get(0).map(Arc::clone),
        _ => {
            let first = weighted(&candidates, total_weight, random());
            let mut second = weighted(&candidates, total_weight, random());
            if second == first {
                // One retry keeps distinct choices likely without a loop.
                second = weighted(&candidates, total_weight, random());
            }
            let (a, b) = (candidates.get(first)?, candidates.get(second)?);
            // Compare outstanding/weight without division: a.o * b.w vs b.o * a.w.
            let load_a = a.outstanding() as u64 * u64::from(b.weight);
            let load_b = b.outstanding() as u64 * u64::from(a.weight);
            Some(Arc::clone(if load_b < load_a { b } else { a }))
        }
    }
}

fn weighted(c: &smallvec_like::Candidates<'_>, total: u64, r: u64) -> usize {
    let mut point = r % total.max(1);
    for i in 0..c.len() {
        let w = c.get(i).map(|b| u64::from(b.weight)).unwrap_or(0);
        if point < w {
            return i;
        }
        point -= w;
    }
    c.len().saturating_sub(1)
}

mod smallvec_like {
    use std::sync::Arc;

    use super::Backend;

    /// Candidates on the stack up to 16, then on the heap.
    #[derive(Default)]
    pub struct Candidates<'a> {
        inline: [Option<&'a Arc<Backend>>; 16],
        len: usize,
        spill: Vec<&'a Arc<Backend>>,
    }

    impl<'a> Candidates<'a> {
        pub fn push(&mut self, b: &'a Arc<Backend>) {
            if self.len < 16 {
                self.inline[self.len] = Some(b);
            } else {
                self.spill.push(b);
            }
            self.len += 1;
        }
        pub fn len(&self) -> usize {
            self.len
        }
        pub fn get(&self, i: usize) -> Option<&'a Arc<Backend>> {
            if i < 16 { self.inline.get(i).copied().flatten() } else { self.spill.get(i - 16).copied() }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{BackendConfig, Config};
    use crate::proxy::Backends;
    use crate::telemetry::Metrics;

    fn backends(specs: &[(&str, u32, &str)]) -> Backends {
        let mut cfg = Config::default();
        for (name, weight, url) in specs {
            let url: http::Uri = url.parse().unwrap();
            cfg.backends.push(BackendConfig {
                name: name.to_string(),
                transport: BackendTransport::infer(&url),
                url,
                weight: *weight,
                health_check_path: None,
                http2: false,
                tls: None,
            });
        }
        Backends::new(&cfg, &Metrics::new())
    }

    #[test]
    fn none_healthy_gives_none() {
        let b = backends(&[("a", 1, "http://127.0.0.1:1/mcp")]);
        b.all()[0].record_failure(1, "test");
        assert!(pick(b.all(), BackendTransport::StreamableHttp).is_none());
    }

    #[test]
    fn filters_by_transport() {
        let b = backends(&[("a", 1, "http://127.0.0.1:1/mcp"), ("s", 1, "http://127.0.0.1:2/sse")]);
        for _ in 0..50 {
            assert_eq!(&*pick(b.all(), BackendTransport::Sse).unwrap().name, "s");
            assert_eq!(&*pick(b.all(), BackendTransport::StreamableHttp).unwrap().name, "a");
        }
    }

    #[test]
    fn prefers_less_loaded() {
        let b = backends(&[("a", 1, "http://127.0.0.1:1/mcp"), ("b", 1, "http://127.0.0.1:2/mcp")]);
        let _load: Vec<_> = (0..10).map(|_| b.all()[0].begin()).collect();
        // Whenever both are drawn, the idle one wins; over many picks "b" dominates.
        let picks_b =
            (0..400).filter(|_| &*pick(b.all(), BackendTransport::StreamableHttp).unwrap().name == "b").count();
        assert!(picks_b > 250, "b picked {picks_b}/400");
    }

    #[test]
    fn weights_shift_share() {
        let b = backends(&[("a", 1, "http://127.0.0.1:1/mcp"), ("b", 9, "http://127.0.0.1:2/mcp")]);
        let mut n = 0u64;
        let mut rnd = || {
            n = n.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            n >> 11
        };
        let picks_b = (0..1000)
            .filter(|_| &*pick_with(b.all(), BackendTransport::StreamableHttp, &mut rnd).unwrap().name == "b")
            .count();
        assert!(picks_b > 800, "b picked {picks_b}/1000");
    }
}

//! Graceful shutdown: one sender moves the phase on, every listener and long-lived
//! stream holds a [`Watch`] and reacts at a safe point (an accept loop stops
//! accepting; an SSE stream ends at an event boundary so its client reconnects
//! to another replica). Before the drain, an optional not-ready phase
//! (`server.drain_delay`) turns `/ready` to 503 while everything still serves,
//! so a load balancer's readiness check moves traffic away first.

use std::future::Future;
use std::pin::Pin;

use tokio::sync::watch;

/// Where the gateway is on its way out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    Serving,
    /// `/ready` is 503; listeners still accept.
    NotReady,
    Draining,
}

/// Starts a drain: dropping or signalling it tells every [`Watch`].
#[derive(Debug)]
pub struct Signal(watch::Sender<Phase>);

/// Observes a drain.
#[derive(Debug, Clone)]
pub struct Watch(watch::Receiver<Phase>);

/// A new drain pair.
pub fn channel() -> (Signal, Watch) {
    let (tx, rx) = watch::channel(Phase::Serving);
    (Signal(tx), Watch(rx))
}

impl Signal {
    /// Withdraw readiness (`/ready` 503) and keep serving. Idempotent; no-op once draining.
    pub fn not_ready(&self) {
        self.0.send_if_modified(|p| {
            let serving = *p == Phase::Serving;
            if serving {
                *p = Phase::NotReady;
            }
            serving
        });
    }

    /// Tell every watcher to drain. Idempotent.
    pub fn drain(&self) {
        self.0.send_replace(Phase::Draining);
    }
}

impl Watch {
    /// True once draining has started.
    pub fn is_draining(&self) -> bool {
        *self.0.borrow() == Phase::Draining
    }

    /// True once readiness is withdrawn (the not-ready phase or the drain).
    pub fn is_stopping(&self) -> bool {
        *self.0.borrow() >= Phase::NotReady
    }

    /// Resolves once draining has started (or the signal is gone).
    pub async fn signaled(mut self) {
        let _ = self.0.wait_for(|p| *p == Phase::Draining).await;
    }

    /// A boxed `signaled()` for bodies that poll it by hand.
    pub fn boxed(self) -> Pin<Box<dyn Future<Output = ()> + Send + Sync>> {
        Box::pin(self.signaled())
    }
}

//! Graceful shutdown: one sender flips a flag, every listener and long-lived
//! stream holds a [`Watch`] and reacts at a safe point (an accept loop stops
//! accepting; an SSE stream ends at an event boundary so its client reconnects
//! to another replica).

use std::future::Future;
use std::pin::Pin;

use tokio::sync::watch;

/// Starts a drain: dropping or signalling it tells every [`Watch`].
#[derive(Debug)]
pub struct Signal(watch::Sender<bool>);

/// Observes a drain.
#[derive(Debug, Clone)]
pub struct Watch(watch::Receiver<bool>);

/// A new drain pair.
pub fn channel() -> (Signal, Watch) {
    let (tx, rx) = watch::channel(false);
    (Signal(tx), Watch(rx))
}

impl Signal {
    /// Tell every watcher to drain. Idempotent.
    pub fn drain(&self) {
        self.0.send_replace(true);
    }
}

impl Watch {
    /// True once draining has started.
    pub fn is_draining(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once draining has started (or the signal is gone).
    pub async fn signaled(mut self) {
        let _ = self.0.wait_for(|draining| *draining).await;
    }

    /// A boxed `signaled()` for bodies that poll it by hand.
    pub fn boxed(self) -> Pin<Box<dyn Future<Output = ()> + Send + Sync>> {
        Box::pin(self.signaled())
    }
}

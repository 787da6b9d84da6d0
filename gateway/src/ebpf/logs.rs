//! The XDP program's aya-log records (rare events only: each kind at most once
//! per load), read from its `AYA_LOGS` ring buffer by a tokio task and forwarded
//! to `tracing` with their level.
//!
//! The task polls the ring buffer every [`POLL`] instead of waiting on its fd:
//! the records are rare, and tokio's `AsyncFd::new` is deprecated while its
//! replacement needs `unsafe`, which this crate forbids.

use std::time::Duration;

use aya::Ebpf;
use aya_log::EbpfLogger;
use tokio::task::AbortHandle;

/// How often the ring buffer is drained (it holds 128 KiB of records).
const POLL: Duration = Duration::from_secs(1);

/// Forwards `log` records from the program to `tracing`.
struct ToTracing;

impl log::Log for ToTracing {
    fn enabled(&self, _metadata: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        let message = record.args();
        match record.level() {
            log::Level::Error => tracing::error!(program = "xdp", "{message}"),
            log::Level::Warn => tracing::warn!(program = "xdp", "{message}"),
            log::Level::Info => tracing::info!(program = "xdp", "{message}"),
            log::Level::Debug | log::Level::Trace => tracing::debug!(program = "xdp", "{message}"),
        }
    }

    fn flush(&self) {}
}

/// Starts forwarding the program's log records; `None` (with a debug line)
/// outside a tokio runtime or when the object has no log buffer. The task ends
/// when the returned handle is aborted.
pub(super) fn forward(ebpf: &mut Ebpf) -> Option<AbortHandle> {
    let runtime = tokio::runtime::Handle::try_current().ok()?;
    let mut logger = EbpfLogger::init_with_logger(ebpf, ToTracing)
        .map_err(|e| tracing::debug!("XDP program logs not forwarded: {e}"))
        .ok()?;
    let task = runtime.spawn(async move {
        let mut tick = tokio::time::interval(POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            logger.flush();
        }
    });
    Some(task.abort_handle())
}

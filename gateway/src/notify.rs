//! The service manager's readiness protocol (`sd_notify(3)`): when systemd starts the
//! gateway with `Type=notify` it sets `NOTIFY_SOCKET`, and the gateway sends `READY=1`
//! once both listeners are bound (and the XDP data plane is up, if configured), then
//! `STOPPING=1` when the shutdown begins. Without `NOTIFY_SOCKET` nothing is sent.
//! With `WatchdogSec=` in the unit (systemd passes `WATCHDOG_USEC`), the gateway sends
//! `WATCHDOG=1` at half that period from a task on its runtime: a runtime that stops running
//! tasks and timers stops the pings, and systemd kills and restarts the gateway.
//!
//! The protocol is one datagram of newline-separated `KEY=value` lines to a Unix
//! socket (a path, or an abstract name written with a leading `@`).

use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

/// Environment variable systemd sets for `Type=notify` services.
pub const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";

/// Environment variables systemd sets when the unit has `WatchdogSec=`.
const WATCHDOG_USEC: &str = "WATCHDOG_USEC";
const WATCHDOG_PID: &str = "WATCHDOG_PID";

/// How often to send `WATCHDOG=1`, when the service manager expects it: half the period in
/// `WATCHDOG_USEC`, if `WATCHDOG_PID` (when set) names this process.
pub fn watchdog_interval() -> Option<Duration> {
    let usec = std::env::var(WATCHDOG_USEC).ok();
    let pid = std::env::var(WATCHDOG_PID).ok();
    watchdog_period(usec.as_deref(), pid.as_deref(), std::process::id())
}

fn watchdog_period(usec: Option<&str>, pid: Option<&str>, me: u32) -> Option<Duration> {
    if let Some(pid) = pid
        && pid.trim().parse::<u32>().ok()? != me
    {
        return None;
    }
    let usec: u64 = usec?.trim().parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}

/// Send `WATCHDOG=1` every `every` for as long as the runtime runs this task.
pub async fn watchdog(every: Duration) {
    tracing::info!(interval_ms = every.as_millis() as u64, "service manager watchdog: sending WATCHDOG=1");
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        notify_or_log("WATCHDOG=1");
    }
}

/// Sends `state` to the service manager. `Ok(false)` when not started by one.
pub fn notify(state: &str) -> io::Result<bool> {
    let Some(target) = std::env::var_os(NOTIFY_SOCKET) else { return Ok(false) };
    let target = target.as_encoded_bytes();
    let socket = UnixDatagram::unbound()?;
    match target.strip_prefix(b"@") {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            socket.send_to_addr(state.as_bytes(), &addr)?;
        }
        None => {
            let path = std::path::Path::new(std::ffi::OsStr::from_bytes(target));
            socket.send_to(state.as_bytes(), path)?;
        }
    }
    Ok(true)
}

/// Sends `state`, logging (not failing) when the manager cannot be reached: the gateway
/// serves either way, and systemd reports a start that never became ready.
pub fn notify_or_log(state: &str) {
    if let Err(e) = notify(state) {
        tracing::warn!(error = %e, state, "could not notify the service manager (NOTIFY_SOCKET)");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchdog_period_is_half_of_watchdog_usec_for_this_process() {
        assert_eq!(watchdog_period(Some("30000000"), None, 7), Some(Duration::from_secs(15)));
        assert_eq!(watchdog_period(Some("30000000"), Some("7"), 7), Some(Duration::from_secs(15)));
        assert_eq!(watchdog_period(Some("30000000"), Some("8"), 7), None, "meant for another process");
        assert_eq!(watchdog_period(None, Some("7"), 7), None);
        assert_eq!(watchdog_period(Some("0"), None, 7), None);
        assert_eq!(watchdog_period(Some("soon"), None, 7), None);
        assert_eq!(watchdog_period(Some("30000000"), Some("x"), 7), None);
    }
}

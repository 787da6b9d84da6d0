//! The service manager's readiness protocol (`sd_notify(3)`): when systemd starts the
//! gateway with `Type=notify` it sets `NOTIFY_SOCKET`, and the gateway sends `READY=1`
//! once both listeners are bound (and the XDP data plane is up, if configured), then
//! `STOPPING=1` when the shutdown begins. Without `NOTIFY_SOCKET` nothing is sent.
//!
//! The protocol is one datagram of newline-separated `KEY=value` lines to a Unix
//! socket (a path, or an abstract name written with a leading `@`).

use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixDatagram;

/// Environment variable systemd sets for `Type=notify` services.
pub const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";

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

//! Listening sockets with the options a production edge needs, set through
//! socket2 before `listen(2)`: SO_REUSEADDR (fast restart), optional
//! SO_REUSEPORT (several processes share a port, e.g. a hitless upgrade), an
//! explicit backlog, and per-connection TCP_NODELAY and keepalive probes.

use std::net::SocketAddr;
use std::time::Duration;

use socket2::{Domain, Protocol, SockRef, Socket, TcpKeepalive, Type};
use tokio::net::{TcpListener, TcpStream};

/// Listener options.
#[derive(Debug, Clone, Copy)]
pub struct ListenOptions {
    /// `listen(2)` backlog.
    pub backlog: u32,
    /// SO_REUSEPORT.
    pub reuse_port: bool,
}

/// Bind and listen.
pub fn bind(addr: SocketAddr, opts: ListenOptions) -> std::io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    #[cfg(unix)]
    if opts.reuse_port {
        socket.set_reuse_port(true)?;
    }
    if addr.is_ipv6() {
        // Dual-stack only when explicitly bound to [::].
        socket.set_only_v6(false).ok();
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(opts.backlog.min(i32::MAX as u32) as i32)?;
    TcpListener::from_std(socket.into())
}

/// Per-connection socket options.
pub fn tune(stream: &TcpStream, keepalive: Option<Duration>) {
    let _ = stream.set_nodelay(true);
    if let Some(idle) = keepalive {
        let ka = TcpKeepalive::new().with_time(idle).with_interval(Duration::from_secs(10));
        let _ = SockRef::from(stream).set_tcp_keepalive(&ka);
    }
}

/// True for accept errors caused by resource exhaustion (back off, don't spin).
pub fn is_resource_exhaustion(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc_errno::EMFILE | libc_errno::ENFILE | libc_errno::ENOBUFS | libc_errno::ENOMEM))
}

/// The errno values we care about (Linux), without a libc dependency.
mod libc_errno {
    pub const EMFILE: i32 = 24;
    pub const ENFILE: i32 = 23;
    pub const ENOBUFS: i32 = 105;
    pub const ENOMEM: i32 = 12;
}

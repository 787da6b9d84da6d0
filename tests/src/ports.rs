//! Loopback ports: pick a free one, wait until one accepts.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::{Instant, sleep};

/// A port on 127.0.0.1 that was free a moment ago (bind to port 0, read it, release it).
///
/// Racy by nature; callers that spawn a server on it retry with a new port on bind failure.
pub fn free_port() -> std::io::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}

/// Wait until `addr` accepts a TCP connection, polling every 50 ms, for at most `limit`.
pub async fn wait_for_port(addr: SocketAddr, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(500), TcpStream::connect(addr)).await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        sleep(Duration::from_millis(50)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_port_is_bindable() {
        let port = free_port().unwrap();
        assert_ne!(port, 0);
        TcpListener::bind((Ipv4Addr::LOCALHOST, port)).unwrap();
    }

    #[tokio::test]
    async fn wait_for_port_sees_listener_and_gives_up_without_one() {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let addr = listener.local_addr().unwrap();
        assert!(wait_for_port(addr, Duration::from_secs(2)).await);
        drop(listener);
        let closed = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port().unwrap()));
        assert!(!wait_for_port(closed, Duration::from_millis(200)).await);
    }
}

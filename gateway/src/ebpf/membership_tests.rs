//! Node checks and threshold crossings, against real sockets on loopback and a
//! recording stand-in for the data plane (the kernel side is in `xdp_tests`).

use std::sync::Mutex;

use tokio::net::TcpListener;

use super::*;

/// A data plane stand-in: members with liveness, and every `set_live` call.
struct Fake {
    members: Mutex<Vec<Peer>>,
    calls: Mutex<Vec<(String, bool)>>,
}

impl Fake {
    fn new(peers: &[(&str, [u8; 4])]) -> Self {
        let mut members =
            vec![Peer { name: "me".into(), address: Ipv4Addr::new(127, 0, 0, 9), live: true, local: true }];
        members.extend(peers.iter().map(|(n, a)| Peer {
            name: (*n).into(),
            address: Ipv4Addr::from(*a),
            live: true,
            local: false,
        }));
        Self { members: Mutex::new(members), calls: Mutex::default() }
    }

    fn calls(&self) -> Vec<(String, bool)> {
        self.calls.lock().unwrap().clone()
    }
}

impl Nodes for Fake {
    fn members(&self) -> Vec<Peer> {
        self.members.lock().unwrap().clone()
    }

    fn set_live(&self, name: &str, live: bool) -> Result<Option<u64>, EbpfError> {
        self.calls.lock().unwrap().push((name.to_owned(), live));
        let mut members = self.members.lock().unwrap();
        let Some(m) = members.iter_mut().find(|m| m.name == name) else { return Ok(None) };
        m.live = live;
        Ok(Some(if live { 0 } else { 7 }))
    }
}

fn cfg(unhealthy: u32, healthy: u32) -> XdpHealth {
    XdpHealth {
        timeout: Duration::from_millis(500),
        unhealthy_threshold: unhealthy,
        healthy_threshold: healthy,
        ..XdpHealth::default()
    }
}

#[test]
fn thresholds_turn_streaks_into_verdicts() {
    let c = cfg(3, 2);
    let mut s = Streak::default();
    assert_eq!(s.record(false, true, &c), None);
    assert_eq!(s.record(false, true, &c), None);
    // A success in between restarts the count.
    assert_eq!(s.record(true, true, &c), None);
    assert_eq!(s.record(false, true, &c), None);
    assert_eq!(s.record(false, true, &c), None);
    assert_eq!(s.record(false, true, &c), Some(false));
    assert_eq!(s.record(true, false, &c), None);
    assert_eq!(s.record(true, false, &c), Some(true));
    // A live node's successes and a dead node's failures change nothing.
    assert_eq!(s.record(true, true, &c), None);
    assert_eq!(Streak { failures: 9, successes: 0 }.record(false, false, &c), None);
}

#[tokio::test]
async fn tcp_and_http_checks() {
    let up = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = up.local_addr().unwrap();
    let t = Duration::from_millis(500);
    check(addr, None, t).await.unwrap();
    // An HTTP server answering 200 to the first request and 503 to the second.
    let server = tokio::spawn(async move {
        let mut answers = ["200 OK", "503 Service Unavailable"].into_iter().peekable();
        while let Some(&status) = answers.peek() {
            let (mut s, _) = up.accept().await.unwrap();
            let mut buf = [0u8; 512];
            let n = s.read(&mut buf).await.unwrap();
            if n == 0 {
                // The plain TCP check above: connected and closed without a request.
                continue;
            }
            assert!(buf[..n].starts_with(b"GET /health HTTP/1.1\r\n"));
            s.write_all(format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n").as_bytes()).await.unwrap();
            answers.next();
        }
        up
    });
    check(addr, Some("/health"), t).await.unwrap();
    let err = check(addr, Some("/health"), t).await.unwrap_err();
    assert!(err.to_string().contains("503"), "{err}");
    let up = server.await.unwrap();
    // Accepted but never answered: the timeout bounds the check.
    let err = check(addr, Some("/health"), Duration::from_millis(100)).await.unwrap_err();
    assert!(matches!(err, CheckError::Timeout(_)), "{err}");
    drop(up);
    assert!(matches!(check(addr, None, t).await, Err(CheckError::Io(_))));
}

#[tokio::test]
async fn a_dead_node_leaves_after_the_threshold_and_comes_back() {
    let up = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = up.local_addr().unwrap().port();
    let fake = Fake::new(&[("up", [127, 0, 0, 1]), ("down", [127, 0, 0, 2])]);
    let c = cfg(2, 2);
    let metrics = MembershipMetrics::new(&Metrics::new());
    let mut streaks = HashMap::new();
    round(&fake, &c, port, &mut streaks, &metrics).await;
    assert!(fake.calls().is_empty(), "one failure is below the threshold");
    round(&fake, &c, port, &mut streaks, &metrics).await;
    assert_eq!(fake.calls(), [("down".to_owned(), false)]);
    assert_eq!((metrics.nodes_live.get(), metrics.owner_changes.get()), (2, 7));
    assert_eq!(metrics.node_live.with_label_values(&["down"]).get(), 0);
    assert_eq!(metrics.node_live.with_label_values(&["me"]).get(), 1);
    round(&fake, &c, port, &mut streaks, &metrics).await;
    assert_eq!(fake.calls().len(), 1, "a dead node is not marked dead again");
    // The node answers again: live after two good rounds.
    let back = TcpListener::bind(("127.0.0.2", port)).await.unwrap();
    round(&fake, &c, port, &mut streaks, &metrics).await;
    assert_eq!(fake.calls().len(), 1);
    round(&fake, &c, port, &mut streaks, &metrics).await;
    assert_eq!(fake.calls().last().unwrap(), &("down".to_owned(), true));
    assert_eq!(metrics.nodes_live.get(), 3);
    drop((up, back));
}

#[tokio::test]
async fn the_loop_follows_node_list_changes_and_stops_on_drain() {
    let fake = Arc::new(Fake::new(&[("gone", [127, 0, 0, 3])]));
    let c = XdpHealth { interval: Duration::from_millis(20), ..cfg(1, 1) };
    let registry = Metrics::new();
    let metrics = MembershipMetrics::new(&registry);
    let (signal, watch) = drain::channel();
    // A closed port on 127.0.0.3: bind to find a free one, then close it.
    let port = TcpListener::bind("127.0.0.3:0").await.unwrap().local_addr().unwrap().port();
    let task = tokio::spawn(run(fake.clone(), c, port, metrics.clone(), watch));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while fake.calls().is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(fake.calls(), [("gone".to_owned(), false)]);
    // The node is removed from the configuration: no more checks or calls for it.
    fake.members.lock().unwrap().retain(|m| m.local);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(fake.calls().len(), 1);
    assert_eq!(metrics.nodes_live.get(), 1);
    let text = String::from_utf8(registry.render()).unwrap();
    assert!(text.contains("mcp_xdp_owner_changes_total 7"), "{text}");
    assert!(text.contains("mcp_xdp_nodes_live 1"), "{text}");
    signal.drain();
    tokio::time::timeout(Duration::from_secs(2), task).await.unwrap().unwrap();
}

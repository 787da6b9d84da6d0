//! Shared setup for the e2e tests: a cluster of Python backends behind gateway
//! replicas that share one session key, and assertions on `whoami` answers.

use std::collections::BTreeSet;
use std::time::Duration;

use mcp_gateway_tests::client::Served;
use mcp_gateway_tests::{BackendOptions, ClientOutput, GatewaySpec, OrFail, PyBackend, SessionKey, TestGateway};

/// Upper bound for one client scenario run.
pub const CLIENT_LIMIT: Duration = Duration::from_secs(120);

/// Backends plus gateway replicas sharing a key; everything stops on drop.
#[derive(Debug)]
pub struct Cluster {
    /// The Python backends, in config order.
    pub backends: Vec<PyBackend>,
    /// The replicas, all configured from `spec`.
    pub gateways: Vec<TestGateway>,
    /// The config every replica uses.
    pub spec: GatewaySpec,
    /// Keeps the key file alive.
    _key: SessionKey,
}

impl Cluster {
    /// Start `backends`, then `replicas` gateways in front of all of them.
    pub async fn start(backends: Vec<BackendOptions>, replicas: usize) -> Self {
        let backends = PyBackend::spawn_all(backends).await.or_fail();
        let key = SessionKey::generate().or_fail();
        let spec = GatewaySpec::new(&key).with_backends(&backends);
        let mut gateways = Vec::with_capacity(replicas);
        for _ in 0..replicas {
            gateways.push(TestGateway::start(&spec).await.or_fail());
        }
        Self { backends, gateways, spec, _key: key }
    }

    /// `--url A [--alt-url B]` for the Streamable HTTP endpoint of the first two replicas.
    pub fn mcp_urls(&self) -> Vec<String> {
        url_args(self.gateways.iter().map(TestGateway::mcp_url).collect())
    }

    /// `--url A [--alt-url B]` for the legacy SSE endpoint of the first two replicas.
    pub fn sse_urls(&self) -> Vec<String> {
        url_args(self.gateways.iter().map(TestGateway::sse_url).collect())
    }

    /// The `host:port` of every replica's data listener.
    pub fn replica_hosts(&self) -> Vec<String> {
        self.gateways.iter().map(|g| g.data_addr().to_string()).collect()
    }

    /// The backends' recent stderr, for failure messages.
    pub fn backend_logs(&self) -> String {
        self.backends.iter().map(|b| format!("--- {} ---\n{}\n", b.name(), b.stderr_tail())).collect()
    }
}

fn url_args(urls: Vec<String>) -> Vec<String> {
    let mut args = Vec::new();
    if let Some(first) = urls.first() {
        args.extend(["--url".to_owned(), first.clone()]);
    }
    if let Some(second) = urls.get(1) {
        args.extend(["--alt-url".to_owned(), second.clone()]);
    }
    args
}

/// Concatenate argument groups.
pub fn argv(groups: &[&[String]], rest: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = groups.iter().flat_map(|g| g.iter().cloned()).collect();
    out.extend(rest.iter().map(|s| (*s).to_owned()));
    out
}

/// Assert that every call was served by the same backend server and backend session
/// (a real one), and return it.
pub fn assert_one_backend_session(served: &[Served], expected_calls: usize) -> Served {
    assert_eq!(served.len(), expected_calls, "wrong number of calls: {served:?}");
    let distinct: BTreeSet<&Served> = served.iter().collect();
    assert_eq!(distinct.len(), 1, "calls of one session were served by several backend sessions: {distinct:?}");
    let only = served[0].clone();
    assert!(only.session.is_some(), "backend saw no session: {only:?}");
    assert!(!only.server.is_empty(), "no server name: {only:?}");
    only
}

/// Assert that the client spread its requests over every replica in `hosts`.
pub fn assert_used_every_replica(out: &ClientOutput, hosts: &[String]) {
    let used = out.requests_by_target();
    for host in hosts {
        let count = used.iter().find(|(h, _)| h == host).map_or(0, |(_, n)| *n);
        assert!(count > 0, "no request went to replica {host}: {used:?}");
    }
}

/// Assert that none of the ids the client held is a backend session id (and none
/// contains one): the gateway's tokens never leak backend ids, nor reach backends.
pub fn assert_tokens_are_not_backend_ids(out: &ClientOutput, served: &[Served]) {
    let held = out.client_session_ids();
    assert!(!held.is_empty(), "client held no session id: {:?}", out.0);
    for backend_session in served.iter().filter_map(|s| s.session.as_deref()) {
        for token in &held {
            assert_ne!(token, backend_session, "backend saw the client's own session id");
            assert!(!token.contains(backend_session), "token {token} embeds backend id {backend_session} in clear");
        }
    }
}

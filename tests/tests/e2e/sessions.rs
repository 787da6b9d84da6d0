//! Stateful Streamable HTTP sessions through replicas that share a session key: the
//! client's requests alternate between replicas, yet every call of a session reaches
//! the backend (and backend session) that answered its `initialize`.

use std::collections::{BTreeMap, BTreeSet};

use mcp_gateway_tests::client::{Served, served_list};
use mcp_gateway_tests::{BackendOptions, OrFail, PausedClient, py_client};

use crate::common::{
    CLIENT_LIMIT, Cluster, argv, assert_one_backend_session, assert_tokens_are_not_backend_ids,
    assert_used_every_replica,
};

fn two_stateful() -> Vec<BackendOptions> {
    vec![BackendOptions::streamable("b1"), BackendOptions::streamable("b2")]
}

#[tokio::test(flavor = "multi_thread")]
async fn fifty_calls_over_two_replicas_stay_on_one_backend_session() {
    let cluster = Cluster::start(two_stateful(), 2).await;
    let out = py_client(&argv(&[&cluster.mcp_urls()], &["--scenario", "many-calls", "--calls", "50"]), CLIENT_LIMIT)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.backend_logs()));
    let served = out.served("calls");
    let session = assert_one_backend_session(&served, 50);
    assert!(["b1", "b2"].contains(&session.server.as_str()), "{session:?}");
    assert_used_every_replica(&out, &cluster.replica_hosts());
    assert_eq!(out.client_session_ids().len(), 1, "client should hold exactly one session id: {:?}", out.0);
    let tools = out.get("tools").as_array().map(Vec::len);
    assert_eq!(tools, Some(4), "tools/list through the gateway: {:?}", out.get("tools"));
}

#[tokio::test(flavor = "multi_thread")]
async fn eight_concurrent_sessions_use_both_backends() {
    let cluster = Cluster::start(two_stateful(), 2).await;
    let out = py_client(
        &argv(&[&cluster.mcp_urls()], &["--scenario", "sessions", "--sessions", "8", "--calls", "5"]),
        CLIENT_LIMIT,
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", cluster.backend_logs()));
    let sessions = out.get("sessions").as_array().cloned().unwrap_or_default();
    assert_eq!(sessions.len(), 8, "{:?}", out.0);
    let mut per_server: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut tokens = BTreeSet::new();
    for session in &sessions {
        let served = served_list(session.get("calls").unwrap_or(&serde_json::Value::Null));
        let Served { server, session: id } = assert_one_backend_session(&served, 5);
        per_server.entry(server).or_default().insert(id.unwrap_or_default());
        tokens.extend(mcp_gateway_tests::client::string_set(session.get("client_session_ids").unwrap()));
    }
    let distinct: usize = per_server.values().map(BTreeSet::len).sum();
    assert_eq!(distinct, 8, "sessions shared a backend session: {per_server:?}");
    assert_eq!(tokens.len(), 8, "sessions shared a gateway token: {tokens:?}");
    assert!(
        per_server.contains_key("b1") && per_server.contains_key("b2"),
        "one backend got no session: {per_server:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn backend_never_sees_the_gateway_token() {
    let cluster = Cluster::start(two_stateful(), 2).await;
    let out = py_client(&argv(&[&cluster.mcp_urls()], &["--scenario", "many-calls", "--calls", "3"]), CLIENT_LIMIT)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.backend_logs()));
    let served = out.served("calls");
    let session = assert_one_backend_session(&served, 3);
    assert_tokens_are_not_backend_ids(&out, &served);
    let token = out.client_session_ids().into_iter().next().unwrap();
    assert!(token.bytes().all(|b| (0x21..=0x7e).contains(&b)), "token is not visible ASCII: {token:?}");
    // The backend's own id is what the SDK minted (uuid4 hex), not the token.
    let backend_id = session.session.unwrap();
    assert_eq!(backend_id.len(), 32, "unexpected backend session id {backend_id}");
}

#[tokio::test(flavor = "multi_thread")]
async fn session_survives_a_gateway_restart() {
    let mut cluster = Cluster::start(two_stateful(), 1).await;
    let url = cluster.gateways[0].mcp_url();
    let args = argv(&[], &["--url", &url, "--scenario", "pause", "--calls", "3", "--pause-timeout", "60"]);
    let paused =
        PausedClient::start(&args, CLIENT_LIMIT).await.unwrap_or_else(|e| panic!("{e}\n{}", cluster.backend_logs()));

    let old = cluster.gateways.remove(0);
    let old_addr = old.data_addr();
    let restarted = old.restart(&cluster.spec).await.or_fail();
    let resume = if restarted.data_addr() == old_addr { String::new() } else { restarted.mcp_url() };
    cluster.gateways.push(restarted);

    let out = paused.resume(&resume, CLIENT_LIMIT).await.unwrap_or_else(|e| panic!("{e}\n{}", cluster.backend_logs()));
    let before = out.served("before");
    let after = out.served("after");
    let first = assert_one_backend_session(&before, 3);
    let second = assert_one_backend_session(&after, 3);
    assert_eq!(first, second, "the session moved to another backend session across the restart");
    assert_eq!(out.client_session_ids().len(), 1, "client had to re-initialize: {:?}", out.0);
}

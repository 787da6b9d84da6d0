//! The TypeScript SDK client (`@modelcontextprotocol/sdk`) completes a session through
//! two replicas: initialize, tools/list, whoami calls, DELETE.

use mcp_gateway_tests::{BackendOptions, node_client};

use crate::common::{
    CLIENT_LIMIT, Cluster, argv, assert_one_backend_session, assert_tokens_are_not_backend_ids,
    assert_used_every_replica,
};

#[tokio::test(flavor = "multi_thread")]
async fn typescript_client_completes_a_session() {
    let cluster = Cluster::start(vec![BackendOptions::streamable("b1"), BackendOptions::streamable("b2")], 2).await;
    let out = node_client(&argv(&[&cluster.mcp_urls()], &["--calls", "10"]), CLIENT_LIMIT)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.backend_logs()));
    let served = out.served("calls");
    let session = assert_one_backend_session(&served, 10);
    assert_used_every_replica(&out, &cluster.replica_hosts());
    assert_tokens_are_not_backend_ids(&out, &served);
    let held = out.get("client_session_id").as_str().unwrap_or_default().to_owned();
    assert_ne!(Some(held.as_str()), session.session.as_deref());
    assert_eq!(out.get("tools").as_array().map(Vec::len), Some(4));
}

//! `mcp-remote`, the stdio bridge that stdio-only MCP clients (Claude Desktop among them)
//! use to reach remote servers, over the gateway's legacy HTTP+SSE endpoint: the exact
//! setup of the "Could not find session" reports, with two backend replicas behind it.

use mcp_gateway_tests::{BackendOptions, node_script};

use crate::common::{CLIENT_LIMIT, Cluster, argv, assert_one_backend_session};

#[tokio::test(flavor = "multi_thread")]
async fn mcp_remote_bridge_keeps_one_backend_session() {
    let cluster = Cluster::start(vec![BackendOptions::sse("r1"), BackendOptions::sse("r2")], 1).await;
    let out = node_script("mcp_remote.mjs", &argv(&[&cluster.sse_urls()], &["--calls", "8"]), CLIENT_LIMIT)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.backend_logs()));
    assert_eq!(out.get("protocol_version"), "2024-11-05");
    let served = out.served("calls");
    let session = assert_one_backend_session(&served, 8);
    assert!(["r1", "r2"].contains(&session.server.as_str()), "{session:?}");
}

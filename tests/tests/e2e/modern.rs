//! A 2026-07-28 client (no `initialize`, no `Mcp-Session-Id`) through two replicas:
//! every request stands alone, so the gateway may send each to any backend.

use std::collections::BTreeSet;

use mcp_gateway_tests::{BackendOptions, py_client};

use crate::common::{CLIENT_LIMIT, Cluster, argv, assert_used_every_replica};

#[tokio::test(flavor = "multi_thread")]
async fn modern_client_works_without_sessions() {
    let cluster = Cluster::start(vec![BackendOptions::streamable("b1"), BackendOptions::streamable("b2")], 2).await;
    let out = py_client(&argv(&[&cluster.mcp_urls()], &["--scenario", "modern", "--calls", "20"]), CLIENT_LIMIT)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.backend_logs()));
    assert_eq!(out.get("protocol_version"), &serde_json::json!("2026-07-28"), "{:?}", out.0);
    let calls = out.get("calls").as_array().cloned().unwrap_or_default();
    assert_eq!(calls.len(), 20);
    for call in &calls {
        assert_eq!(call.get("protocol_version"), Some(&serde_json::json!("2026-07-28")), "{call}");
        assert_eq!(call.get("session"), Some(&serde_json::Value::Null), "modern request got a session: {call}");
    }
    assert!(out.client_session_ids().is_empty(), "no Mcp-Session-Id at 2026-07-28: {:?}", out.0);
    assert_used_every_replica(&out, &cluster.replica_hosts());
    let servers: BTreeSet<&str> = calls.iter().filter_map(|c| c.get("server")?.as_str()).collect();
    assert!(servers.iter().all(|s| ["b1", "b2"].contains(s)), "{servers:?}");
}

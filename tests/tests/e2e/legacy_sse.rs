//! Legacy HTTP+SSE (2024-11-05) through two replicas: the SSE stream is held by
//! replica A while the client's POSTs to the `endpoint` URL alternate B, A, B, …
//! and all reach the backend session that owns the stream.

use mcp_gateway_tests::{BackendOptions, py_client};

use crate::common::{
    CLIENT_LIMIT, Cluster, argv, assert_one_backend_session, assert_tokens_are_not_backend_ids,
    assert_used_every_replica,
};

#[tokio::test(flavor = "multi_thread")]
async fn legacy_sse_stream_on_one_replica_posts_through_both() {
    let cluster = Cluster::start(vec![BackendOptions::sse("s1"), BackendOptions::sse("s2")], 2).await;
    let out = py_client(
        &argv(&[&cluster.sse_urls()], &["--scenario", "legacy-sse", "--calls", "10", "--size", "200000"]),
        CLIENT_LIMIT,
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", cluster.backend_logs()));
    let served = out.served("calls");
    let session = assert_one_backend_session(&served, 10);
    assert!(["s1", "s2"].contains(&session.server.as_str()), "{session:?}");
    assert_used_every_replica(&out, &cluster.replica_hosts());
    assert_tokens_are_not_backend_ids(&out, &served);
    assert_eq!(out.get("big_sha256"), out.get("big_expected_sha256"), "200 kB result corrupted over legacy SSE");
    assert_eq!(out.get("tools").as_array().map(Vec::len), Some(4));
}

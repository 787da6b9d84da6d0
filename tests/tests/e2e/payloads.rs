//! Response bodies through the gateway: a 1 MiB tool result arrives intact (as an
//! `application/json` body and as one SSE event), and progress notifications on a
//! POST's SSE stream arrive before that request's result.

use mcp_gateway_tests::{BackendOptions, py_client};

use crate::common::{CLIENT_LIMIT, Cluster, argv};

const ONE_MIB: &str = "1048576";

async fn big_result_is_intact(backend: BackendOptions) {
    let cluster = Cluster::start(vec![backend], 2).await;
    let out = py_client(&argv(&[&cluster.mcp_urls()], &["--scenario", "big", "--size", ONE_MIB]), CLIENT_LIMIT)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.backend_logs()));
    assert_eq!(out.get("length"), &serde_json::json!(1_048_576), "{:?}", out.0);
    assert_eq!(out.get("sha256"), out.get("expected_sha256"), "1 MiB result corrupted");
}

#[tokio::test(flavor = "multi_thread")]
async fn one_mib_result_intact_as_json_response() {
    big_result_is_intact(BackendOptions::streamable("j1").json_response()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn one_mib_result_intact_as_sse_event() {
    big_result_is_intact(BackendOptions::streamable("e1")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn progress_notifications_arrive_before_the_result() {
    let cluster = Cluster::start(vec![BackendOptions::streamable("b1")], 2).await;
    let out = py_client(&argv(&[&cluster.mcp_urls()], &["--scenario", "progress", "--steps", "5"]), CLIENT_LIMIT)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.backend_logs()));
    let events: Vec<&str> =
        out.get("events").as_array().map(|e| e.iter().filter_map(|v| v.as_str()).collect()).unwrap_or_default();
    assert_eq!(
        events,
        ["progress:1/5", "progress:2/5", "progress:3/5", "progress:4/5", "progress:5/5", "result"],
        "progress must precede the result, in order"
    );
    assert_eq!(out.get("result"), &serde_json::json!("done 5"));
}

//! Control experiment without the gateway: alternating one client's requests directly
//! between two stateful backends breaks the session ("Could not find session"), which
//! is the failure the gateway exists to prevent. Proves the harness can see it.

use mcp_gateway_tests::client::ClientError;
use mcp_gateway_tests::{BackendOptions, OrFail, PyBackend, py_client};

use crate::common::{CLIENT_LIMIT, argv};

#[tokio::test(flavor = "multi_thread")]
async fn alternating_between_backends_without_gateway_loses_the_session() {
    let backends =
        PyBackend::spawn_all(vec![BackendOptions::streamable("b1"), BackendOptions::streamable("b2")]).await.or_fail();
    let urls = ["--url".to_owned(), backends[0].url(), "--alt-url".to_owned(), backends[1].url()];
    let result =
        py_client(&argv(&[&urls], &["--scenario", "many-calls", "--calls", "5", "--timeout", "10"]), CLIENT_LIMIT)
            .await;
    match result {
        Err(ClientError::Failed { line, .. }) => {
            assert!(line.contains("Session not found"), "unexpected failure: {line}");
        }
        other => panic!("alternating between backends directly should fail, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn legacy_sse_posts_to_the_other_backend_are_rejected_without_gateway() {
    let backends = PyBackend::spawn_all(vec![BackendOptions::sse("s1"), BackendOptions::sse("s2")]).await.or_fail();
    let urls = ["--url".to_owned(), backends[0].url(), "--alt-url".to_owned(), backends[1].url()];
    let result =
        py_client(&argv(&[&urls], &["--scenario", "legacy-sse", "--calls", "3", "--timeout", "10"]), CLIENT_LIMIT)
            .await;
    match result {
        Err(ClientError::Failed { line, stderr, .. }) => {
            let text = format!("{line}\n{stderr}");
            assert!(text.contains("404"), "expected a 404 from the other backend: {text}");
        }
        other => panic!("legacy SSE POSTs to another backend should fail, got {other:?}"),
    }
}

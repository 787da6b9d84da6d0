//! HTTP rules at the edge: the gateway's own 5xx answers (no backend,
//! unreachable backend), body limits, proxy headers (X-Request-ID,
//! X-Forwarded-For), unknown paths and methods.

use bytes::Bytes;
use serde_json::{Value, json};

use crate::common::process::{Demo, closed_port};
use crate::common::rpc::{self, call, client, expect_gw_error, open_session, post, post_raw, response_message, whoami};
use crate::common::{KeyFile, Setup, bounded, key};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_backend_is_503_with_retry_after() {
    bounded(async {
        let c = client();
        let keys = KeyFile::new(&[key(22)]);
        let empty = Setup::new(&keys).start().await;
        let resp = post(&c, &empty.mcp, &rpc::initialize(), None).send().await.unwrap();
        assert_eq!(resp.headers().get("retry-after").map(|v| v.to_str().unwrap()), Some("1"));
        let err = expect_gw_error(resp, 503, -32603, "no_healthy_backend").await;
        assert_eq!(err["id"], 0, "{err}");

        let dead = format!("http://127.0.0.1:{}/mcp", closed_port());
        let down = Setup::new(&keys).backend("dead", &dead).fast_health().start().await;
        down.wait_unhealthy("dead").await;
        let resp = post(&c, &down.mcp, &rpc::initialize(), None).send().await.unwrap();
        assert!(resp.headers().contains_key("retry-after"));
        expect_gw_error(resp, 503, -32603, "no_healthy_backend").await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_backend_port_is_502_connect_error() {
    bounded(async {
        let keys = KeyFile::new(&[key(23)]);
        let dead = format!("http://127.0.0.1:{}/mcp", closed_port());
        let gw = Setup::new(&keys).backend("dead", &dead).routing("unhealthy_threshold: 50").start().await;
        let resp = post(&client(), &gw.mcp, &rpc::initialize(), None).send().await.unwrap();
        assert_eq!(resp.headers().get("retry-after").map(|v| v.to_str().unwrap()), Some("1"));
        expect_gw_error(resp, 502, -32603, "connect_error").await;
        let errors = gw.metric("mcp_backend_connection_errors_total{backend=\"dead\",kind=\"connect\"}").await;
        assert_eq!(errors, Some(1.0));
    })
    .await;
}

/// `text` as a streamed body of 256-byte chunks (sent with chunked encoding).
fn chunked(text: &str) -> reqwest::Body {
    let chunks: Vec<Result<Bytes, std::io::Error>> =
        text.as_bytes().chunks(256).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
    reqwest::Body::wrap_stream(futures_util::stream::iter(chunks))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_the_limit_are_413() {
    bounded(async {
        let demo = Demo::start("a").await;
        let keys = KeyFile::new(&[key(24)]);
        let gw = Setup::new(&keys).backend("a", &demo.url).server("max_request_body: 1024").start().await;
        let c = client();
        let sid = open_session(&c, &gw.mcp).await;
        // Exactly at the cap: forwarded; one byte more: refused.
        let empty_len = call(1, "echo", json!({"text": ""})).to_string().len();
        let exact = call(1, "echo", json!({"text": "x".repeat(1024 - empty_len)})).to_string();
        assert_eq!(exact.len(), 1024);
        let resp = post_raw(&c, &gw.mcp, exact.clone(), Some(&sid)).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        let over = exact.replacen("\"x", "\"xx", 1);
        assert_eq!(over.len(), 1025);
        let resp = post_raw(&c, &gw.mcp, over, Some(&sid)).send().await.unwrap();
        expect_gw_error(resp, 413, -32600, "body_too_large").await;
        // Announced by Content-Length.
        let big = call(2, "echo", json!({"text": "x".repeat(2000)})).to_string();
        let resp = post_raw(&c, &gw.mcp, big.clone(), Some(&sid)).send().await.unwrap();
        expect_gw_error(resp, 413, -32600, "body_too_large").await;
        // Chunked: no Content-Length, the cap is hit while reading.
        let resp = post_raw(&c, &gw.mcp, chunked(&big), Some(&sid)).send().await.unwrap();
        expect_gw_error(resp, 413, -32600, "body_too_large").await;
        let resp = post_raw(&c, &gw.mcp, chunked(&exact), Some(&sid)).send().await.unwrap();
        assert_eq!(resp.status(), 200);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_id_and_forwarded_for() {
    bounded(async {
        let demo = Demo::start("a").await;
        let keys = KeyFile::new(&[key(27)]);
        let gw = Setup::new(&keys).backend("a", &demo.url).start().await;
        let c = client();
        let sid = open_session(&c, &gw.mcp).await;
        let resp = post(&c, &gw.mcp, &call(1, "whoami", json!({})), Some(&sid))
            .header("x-request-id", "req-abc-123")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.headers()["x-request-id"], "req-abc-123");
        let me: Value = serde_json::from_str(rpc::tool_text(&response_message(resp).await)).unwrap();
        assert_eq!(me["headers"]["x-request-id"], "req-abc-123");
        assert_eq!(me["headers"]["x-forwarded-for"], "127.0.0.1");

        // Generated when absent: the backend and the client see the same one.
        let resp = post(&c, &gw.mcp, &call(2, "whoami", json!({})), Some(&sid)).send().await.unwrap();
        let generated = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
        assert!(generated.len() >= 16 && generated.bytes().all(|b| b.is_ascii_alphanumeric()), "{generated}");
        let me: Value = serde_json::from_str(rpc::tool_text(&response_message(resp).await)).unwrap();
        assert_eq!(me["headers"]["x-request-id"], generated.as_str());

        // An existing X-Forwarded-For is appended to.
        let resp = post(&c, &gw.mcp, &call(3, "whoami", json!({})), Some(&sid))
            .header("x-forwarded-for", "203.0.113.9")
            .send()
            .await
            .unwrap();
        let me: Value = serde_json::from_str(rpc::tool_text(&response_message(resp).await)).unwrap();
        assert_eq!(me["headers"]["x-forwarded-for"], "203.0.113.9, 127.0.0.1");
        // An unusable client id (too long, or not visible ASCII) is replaced.
        for bad in ["x".repeat(200), "has space".to_owned()] {
            let resp = post(&c, &gw.mcp, &call(4, "whoami", json!({})), Some(&sid))
                .header("x-request-id", bad.as_str())
                .send()
                .await
                .unwrap();
            let echoed = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
            assert_ne!(echoed, bad);
            assert_eq!(echoed.len(), 32, "{echoed}");
            let me: Value = serde_json::from_str(rpc::tool_text(&response_message(resp).await)).unwrap();
            assert_eq!(me["headers"]["x-request-id"], echoed.as_str());
        }
        // Each request gets its own generated id.
        let other = whoami(&c, &gw.mcp, Some(&sid)).await;
        assert_ne!(other["headers"]["x-request-id"], generated.as_str());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_paths_and_methods() {
    bounded(async {
        let demo = Demo::start("a").await;
        let keys = KeyFile::new(&[key(28)]);
        let gw = Setup::new(&keys).backend("a", &demo.url).start().await;
        let c = client();
        let resp = c.get(format!("{}/nope", gw.base)).send().await.unwrap();
        expect_gw_error(resp, 404, -32601, "not_found").await;
        let resp = c.post(format!("{}/mcp/extra", gw.base)).body("{}").send().await.unwrap();
        expect_gw_error(resp, 404, -32601, "not_found").await;
        let resp = c.put(&gw.mcp).body("{}").send().await.unwrap();
        assert_eq!(resp.headers().get("allow").map(|v| v.to_str().unwrap()), Some("GET, POST, DELETE"));
        expect_gw_error(resp, 405, -32601, "method_not_allowed").await;
        // DELETE without a session id is a client error, not a backend call.
        let resp = c.delete(&gw.mcp).send().await.unwrap();
        expect_gw_error(resp, 400, -32600, "missing_session").await;
    })
    .await;
}

//! JSON-RPC and HTTP rules at the edge: invalid bodies, batches,
//! notifications, body limits, 2026-07-28 headers and stateless balancing,
//! proxy headers, and the gateway's own 4xx/5xx answers.

use std::collections::HashSet;

use bytes::Bytes;
use serde_json::{Value, json};

use crate::common::process::{Demo, closed_port};
use crate::common::rpc::{
    self, call, client, expect_gw_error, open_session, post, post_raw, response_message, whoami,
};
use crate::common::{KeyFile, Setup, bounded, key};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_bodies_are_refused_at_the_edge() {
    bounded(async {
        let demo = Demo::start("a").await;
        let keys = KeyFile::new(&[key(20)]);
        let gw = Setup::new(&keys).backend("a", &demo.url).start().await;
        let c = client();
        let resp = post_raw(&c, &gw.mcp, "{\"jsonrpc\":", None)
            .send()
            .await
            .unwrap();
        expect_gw_error(resp, 400, -32700, "parse_error").await;
        for body in [
            "{}",
            "[]",
            r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#,
            r#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#,
        ] {
            let resp = post_raw(&c, &gw.mcp, body, None).send().await.unwrap();
            let err = expect_gw_error(resp, 400, -32600, "invalid_request").await;
            if body.contains("1.0") {
                assert_eq!(err["id"], 1, "the request id is echoed: {err}");
            } else {
                assert!(err["id"].is_null(), "{err}");
            }
        }
        assert_eq!(
            gw.metric("mcp_client_errors_total{reason=\"invalid_request\"}")
                .await,
            Some(4.0)
        );
        assert_eq!(
            gw.metric("mcp_client_errors_total{reason=\"parse_error\"}")
                .await,
            Some(1.0)
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_and_notifications_pass_through() {
    bounded(async {
        let demo = Demo::start("a").await;
        let keys = KeyFile::new(&[key(21)]);
        let gw = Setup::new(&keys).backend("a", &demo.url).start().await;
        let c = client();
        let sid = open_session(&c, &gw.mcp).await;
        let batch = json!([
            {"jsonrpc": "2.0", "id": 1, "method": "ping"},
            {"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progressToken": "x", "progress": 1}},
            call(2, "echo", json!({"text": "in a batch"})),
        ]);
        // 2025-03-26 allows batches (the header names the revision that does).
        let resp = post_raw(&c, &gw.mcp, batch.to_string(), None)
            .header("mcp-session-id", &sid)
            .header("mcp-protocol-version", "2025-03-26")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let answers: Value = resp.json().await.unwrap();
        let answers = answers.as_array().unwrap_or_else(|| panic!("not an array: {answers}"));
        assert_eq!(answers.len(), 2, "{answers:?}");
        assert_eq!((&answers[0]["id"], &answers[0]["result"]), (&json!(1), &json!({})));
        assert_eq!(answers[1]["id"], 2);
        assert_eq!(rpc::tool_text(&answers[1]), "in a batch");

        let note = json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 99}});
        let resp = post(&c, &gw.mcp, &note, Some(&sid)).send().await.unwrap();
        assert_eq!(resp.status(), 202);
        assert!(resp.bytes().await.unwrap().is_empty());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_backend_is_503_with_retry_after() {
    bounded(async {
        let c = client();
        let keys = KeyFile::new(&[key(22)]);
        let empty = Setup::new(&keys).start().await;
        let resp = post(&c, &empty.mcp, &rpc::initialize(), None)
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap()),
            Some("1")
        );
        let err = expect_gw_error(resp, 503, -32603, "no_healthy_backend").await;
        assert_eq!(err["id"], 0, "{err}");

        let dead = format!("http://127.0.0.1:{}/mcp", closed_port());
        let down = Setup::new(&keys)
            .backend("dead", &dead)
            .fast_health()
            .start()
            .await;
        down.wait_unhealthy("dead").await;
        let resp = post(&c, &down.mcp, &rpc::initialize(), None)
            .send()
            .await
            .unwrap();
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
        let gw = Setup::new(&keys)
            .backend("dead", &dead)
            .routing("unhealthy_threshold: 50")
            .start()
            .await;
        let resp = post(&client(), &gw.mcp, &rpc::initialize(), None)
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap()),
            Some("1")
        );
        expect_gw_error(resp, 502, -32603, "connect_error").await;
        let errors = gw
            .metric("mcp_backend_connection_errors_total{backend=\"dead\",kind=\"connect\"}")
            .await;
        assert_eq!(errors, Some(1.0));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_the_limit_are_413() {
    bounded(async {
        let demo = Demo::start("a").await;
        let keys = KeyFile::new(&[key(24)]);
        let gw = Setup::new(&keys)
            .backend("a", &demo.url)
            .server("max_request_body: 1024")
            .start()
            .await;
        let c = client();
        let sid = open_session(&c, &gw.mcp).await;
        // Exactly at the cap: forwarded; one byte more: refused.
        let empty_len = call(1, "echo", json!({"text": ""})).to_string().len();
        let exact = call(1, "echo", json!({"text": "x".repeat(1024 - empty_len)})).to_string();
        assert_eq!(exact.len(), 1024);
        let resp = post_raw(&c, &gw.mcp, exact.clone(), Some(&sid))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let over = exact.replacen("\"x", "\"xx", 1);
        assert_eq!(over.len(), 1025);
        let resp = post_raw(&c, &gw.mcp, over, Some(&sid))
            .send()
            .await
            .unwrap();
        expect_gw_error(resp, 413, -32600, "body_too_large").await;
        // Announced by Content-Length.
        let big = call(2, "echo", json!({"text": "x".repeat(2000)})).to_string();
        let resp = post_raw(&c, &gw.mcp, big.clone(), Some(&sid))
            .send()
            .await
            .unwrap();
        expect_gw_error(resp, 413, -32600, "body_too_large").await;
        // Chunked: no Content-Length, the cap is hit while reading.
        let chunks: Vec<Result<Bytes, std::io::Error>> = big
            .into_bytes()
            .chunks(256)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let stream = futures_util::stream::iter(chunks);
        let resp = post_raw(&c, &gw.mcp, reqwest::Body::wrap_stream(stream), Some(&sid))
            .send()
            .await
            .unwrap();
        expect_gw_error(resp, 413, -32600, "body_too_large").await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_headers_must_match_the_body() {
    bounded(async {
        let demo = Demo::spawn(&["--stateless", "--name", "a"], &[]).await;
        let keys = KeyFile::new(&[key(25)]);
        let gw = Setup::new(&keys).backend("a", &demo.url).start().await;
        let c = client();
        let body = call(5, "whoami", json!({}));
        let modern = |m: &str, n: &str| {
            post(&c, &gw.mcp, &body, None)
                .header("mcp-protocol-version", "2026-07-28")
                .header("mcp-method", m)
                .header("mcp-name", n)
        };
        let err = expect_gw_error(
            modern("tools/list", "whoami").send().await.unwrap(),
            400,
            -32600,
            "header_mismatch",
        )
        .await;
        assert_eq!(err["id"], 5);
        expect_gw_error(
            modern("tools/call", "echo").send().await.unwrap(),
            400,
            -32600,
            "header_mismatch",
        )
        .await;
        let resp = modern("tools/call", "whoami").send().await.unwrap();
        assert_eq!(resp.status(), 200);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stateless_2026_requests_balance_without_sessions() {
    bounded(async {
        let a = Demo::spawn(&["--stateless", "--name", "a"], &[]).await;
        let b = Demo::spawn(&["--stateless", "--name", "b"], &[]).await;
        let keys = KeyFile::new(&[key(26)]);
        let gw = Setup::new(&keys)
            .backend("a", &a.url)
            .backend("b", &b.url)
            .start()
            .await;
        let c = client();
        let mut seen = HashSet::new();
        for i in 0..40 {
            let resp = post(&c, &gw.mcp, &call(i, "whoami", json!({})), None)
                .header("mcp-protocol-version", "2026-07-28")
                .header("mcp-method", "tools/call")
                .header("mcp-name", "whoami")
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
            assert!(
                resp.headers().get("mcp-session-id").is_none(),
                "a stateless answer got a session id"
            );
            let me: Value =
                serde_json::from_str(rpc::tool_text(&response_message(resp).await)).unwrap();
            assert!(me["session"].is_null(), "{me}");
            assert_eq!(me["headers"]["mcp-protocol-version"], "2026-07-28");
            seen.insert(me["server"].as_str().unwrap().to_owned());
            if seen.len() == 2 && i >= 5 {
                break;
            }
        }
        assert_eq!(seen.len(), 2, "only {seen:?} answered");
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
        let me: Value =
            serde_json::from_str(rpc::tool_text(&response_message(resp).await)).unwrap();
        assert_eq!(me["headers"]["x-request-id"], "req-abc-123");
        assert_eq!(me["headers"]["x-forwarded-for"], "127.0.0.1");

        // Generated when absent: the backend and the client see the same one.
        let resp = post(&c, &gw.mcp, &call(2, "whoami", json!({})), Some(&sid))
            .send()
            .await
            .unwrap();
        let generated = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
        assert!(
            generated.len() >= 16 && generated.bytes().all(|b| b.is_ascii_alphanumeric()),
            "{generated}"
        );
        let me: Value =
            serde_json::from_str(rpc::tool_text(&response_message(resp).await)).unwrap();
        assert_eq!(me["headers"]["x-request-id"], generated.as_str());

        // An existing X-Forwarded-For is appended to.
        let resp = post(&c, &gw.mcp, &call(3, "whoami", json!({})), Some(&sid))
            .header("x-forwarded-for", "203.0.113.9")
            .send()
            .await
            .unwrap();
        let me: Value =
            serde_json::from_str(rpc::tool_text(&response_message(resp).await)).unwrap();
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
            let me: Value =
                serde_json::from_str(rpc::tool_text(&response_message(resp).await)).unwrap();
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
        let resp = c
            .post(format!("{}/mcp/extra", gw.base))
            .body("{}")
            .send()
            .await
            .unwrap();
        expect_gw_error(resp, 404, -32601, "not_found").await;
        let resp = c.put(&gw.mcp).body("{}").send().await.unwrap();
        assert_eq!(
            resp.headers().get("allow").map(|v| v.to_str().unwrap()),
            Some("GET, POST, DELETE")
        );
        expect_gw_error(resp, 405, -32601, "method_not_allowed").await;
        // DELETE without a session id is a client error, not a backend call.
        let resp = c.delete(&gw.mcp).send().await.unwrap();
        expect_gw_error(resp, 400, -32600, "missing_session").await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_errors_pass_through_unchanged() {
    bounded(async {
        let demo = Demo::start("a").await;
        let keys = KeyFile::new(&[key(29)]);
        let gw = Setup::new(&keys).backend("a", &demo.url).start().await;
        let c = client();
        let ping = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"});
        // The backend requires a session (B2): its 400 reaches the client as is.
        let resp = post(&c, &gw.mcp, &ping, None).send().await.unwrap();
        assert_eq!(resp.status(), 400);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], -32000, "{body}");
        assert!(
            body["error"].get("data").is_none(),
            "gateway rewrote the backend's 400: {body}"
        );
        // An unsupported protocol version (C1): the backend's 400 passes.
        let sid = open_session(&c, &gw.mcp).await;
        let resp = post_raw(&c, &gw.mcp, ping.to_string(), None)
            .header("mcp-session-id", &sid)
            .header("mcp-protocol-version", "1999-01-01")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], -32022, "{body}");
        // 2026-07-28 unknown method (F2): 404 with -32601 tells modern from legacy.
        let unknown = json!({"jsonrpc": "2.0", "id": 2, "method": "nope/nothing"});
        let resp = post(&c, &gw.mcp, &unknown, None)
            .header("mcp-protocol-version", "2026-07-28")
            .header("mcp-method", "nope/nothing")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 404);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(
            (&body["id"], &body["error"]["code"]),
            (&json!(2), &json!(-32601)),
            "{body}"
        );
        assert!(body["error"].get("data").is_none(), "{body}");
    })
    .await;
}

//! JSON-RPC rules at the edge: invalid bodies, batches, notifications,
//! 2026-07-28 routing headers and stateless balancing, and backend errors
//! that must reach the client unchanged.

use std::collections::HashSet;

use serde_json::{Value, json};

use crate::common::process::Demo;
use crate::common::rpc::{self, call, client, expect_gw_error, open_session, post, post_raw, response_message};
use crate::common::{KeyFile, Setup, bounded, key};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_bodies_are_refused_at_the_edge() {
    bounded(async {
        let demo = Demo::start("a").await;
        let keys = KeyFile::new(&[key(20)]);
        let gw = Setup::new(&keys).backend("a", &demo.url).start().await;
        let c = client();
        let resp = post_raw(&c, &gw.mcp, "{\"jsonrpc\":", None).send().await.unwrap();
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
        assert_eq!(gw.metric("mcp_client_errors_total{reason=\"invalid_request\"}").await, Some(4.0));
        assert_eq!(gw.metric("mcp_client_errors_total{reason=\"parse_error\"}").await, Some(1.0));
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
        let err =
            expect_gw_error(modern("tools/list", "whoami").send().await.unwrap(), 400, -32600, "header_mismatch").await;
        assert_eq!(err["id"], 5);
        expect_gw_error(modern("tools/call", "echo").send().await.unwrap(), 400, -32600, "header_mismatch").await;
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
        let gw = Setup::new(&keys).backend("a", &a.url).backend("b", &b.url).start().await;
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
            assert!(resp.headers().get("mcp-session-id").is_none(), "a stateless answer got a session id");
            let me: Value = serde_json::from_str(rpc::tool_text(&response_message(resp).await)).unwrap();
            assert!(me["session"].is_null(), "{me}");
            assert_eq!(me["headers"]["mcp-protocol-version"], "2026-07-28");
            seen.insert(me["server"].as_str().unwrap().to_owned());
            if seen.len() == 2 && i >= 5 {
                break;
            }
        }
        assert_eq!(seen.len(), 2, "only {seen:?} answered");
        // No GET stream without sessions (F1): the backend's 405 and Allow pass through.
        let resp = c
            .get(&gw.mcp)
            .header("accept", "text/event-stream")
            .header("mcp-protocol-version", "2026-07-28")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 405);
        assert_eq!(resp.headers().get("allow").map(|v| v.to_str().unwrap()), Some("POST"));
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
        assert!(body["error"].get("data").is_none(), "gateway rewrote the backend's 400: {body}");
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
        assert_eq!((&body["id"], &body["error"]["code"]), (&json!(2), &json!(-32601)), "{body}");
        assert!(body["error"].get("data").is_none(), "{body}");
    })
    .await;
}

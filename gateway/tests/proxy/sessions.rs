//! Session ids: sealing, routing across replicas and backends, rotation,
//! and every way an id can fail to route (404 with a reason, counted).

use std::collections::HashSet;

use serde_json::json;

use crate::common::process::Demo;
use crate::common::rpc::{self, client, expect_gw_error, open_session, post, whoami};
use crate::common::{KeyFile, Setup, bounded, key};

/// A `ping` to `url` in session `sid`.
async fn ping(c: &reqwest::Client, url: &str, sid: &str) -> reqwest::Response {
    post(c, url, &json!({"jsonrpc": "2.0", "id": 3, "method": "ping"}), Some(sid)).send().await.unwrap()
}

/// `sid` with one character in the middle replaced by another base64url character.
fn tamper(sid: &str) -> String {
    let mut chars: Vec<char> = sid.chars().collect();
    let mid = chars.len() / 2;
    chars[mid] = if chars[mid] == 'A' { 'B' } else { 'A' };
    chars.into_iter().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_id_hides_backend_id() {
    bounded(async {
        let demo = Demo::start("a").await;
        let keys = KeyFile::new(&[key(1)]);
        let gw = Setup::new(&keys).backend("a", &demo.url).start().await;
        let c = client();
        let sid = open_session(&c, &gw.mcp).await;
        let me = whoami(&c, &gw.mcp, Some(&sid)).await;
        assert_eq!(me["server"], "a");
        let backend_sid = me["session"].as_str().unwrap();
        assert_eq!(backend_sid.len(), 32, "demo ids are 32 hex: {backend_sid}");
        assert_ne!(sid, backend_sid);
        assert!(!sid.contains(backend_sid), "gateway id leaks the backend id: {sid}");
        assert!(sid.len() < 256, "{} chars", sid.len());
        assert!(sid.bytes().all(|b| (0x21..=0x7e).contains(&b)), "not visible ASCII: {sid:?}");
        // The same backend session answers again (affinity within one gateway).
        assert_eq!(whoami(&c, &gw.mcp, Some(&sid)).await["session"], backend_sid);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_sharing_a_key_route_one_session() {
    bounded(async {
        let (a, b) = (Demo::start("a").await, Demo::start("b").await);
        let keys = KeyFile::new(&[key(2)]);
        let setup = Setup::new(&keys).backend("a", &a.url).backend("b", &b.url);
        let (gw1, gw2) = (setup.start().await, setup.start().await);
        let c = client();
        let sid = open_session(&c, &gw1.mcp).await;
        let first = whoami(&c, &gw1.mcp, Some(&sid)).await;
        for round in 0..6 {
            let url = if round % 2 == 0 { &gw2.mcp } else { &gw1.mcp };
            let me = whoami(&c, url, Some(&sid)).await;
            assert_eq!((&me["server"], &me["session"]), (&first["server"], &first["session"]), "round {round}");
            assert_eq!(ping(&c, url, &sid).await.status(), 200);
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_sessions_spread_over_backends() {
    bounded(async {
        let (a, b) = (Demo::start("a").await, Demo::start("b").await);
        let keys = KeyFile::new(&[key(3)]);
        let gw = Setup::new(&keys).backend("a", &a.url).backend("b", &b.url).start().await;
        let c = client();
        let mut seen = HashSet::new();
        let mut sessions = Vec::new();
        for _ in 0..40 {
            let sid = open_session(&c, &gw.mcp).await;
            let me = whoami(&c, &gw.mcp, Some(&sid)).await;
            seen.insert(me["server"].as_str().unwrap().to_owned());
            sessions.push((sid, me));
            if seen.len() == 2 && sessions.len() >= 6 {
                break;
            }
        }
        assert_eq!(seen, HashSet::from(["a".to_owned(), "b".to_owned()]));
        // Every session keeps its backend session.
        for (sid, me) in &sessions {
            let again = whoami(&c, &gw.mcp, Some(sid)).await;
            assert_eq!((&again["server"], &again["session"]), (&me["server"], &me["session"]));
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unroutable_ids_get_404_with_reason_and_are_counted() {
    bounded(async {
        let demo = Demo::start("a").await;
        let (keys, other_keys) = (KeyFile::new(&[key(4)]), KeyFile::new(&[key(5)]));
        let gw = Setup::new(&keys).backend("a", &demo.url).start().await;
        let foreign = Setup::new(&other_keys).backend("a", &demo.url).start().await;
        let c = client();
        let sid = open_session(&c, &gw.mcp).await;

        let tampered = tamper(&sid);
        assert_ne!(tampered, sid);
        for _ in 0..2 {
            expect_gw_error(ping(&c, &gw.mcp, &tampered).await, 404, -32001, "tampered").await;
        }
        let foreign_sid = open_session(&c, &foreign.mcp).await;
        expect_gw_error(ping(&c, &gw.mcp, &foreign_sid).await, 404, -32001, "unknown_key").await;
        for garbage in ["not-a-session", "g1.%%%%", "g1."] {
            expect_gw_error(ping(&c, &gw.mcp, garbage).await, 404, -32001, "malformed").await;
        }
        // GET and DELETE route the same way.
        let get = c.get(&gw.mcp).header("accept", "text/event-stream").header("mcp-session-id", &tampered);
        expect_gw_error(get.send().await.unwrap(), 404, -32001, "tampered").await;
        let del = c.delete(&gw.mcp).header("mcp-session-id", "garbage");
        expect_gw_error(del.send().await.unwrap(), 404, -32001, "malformed").await;
        // The genuine id still works.
        assert_eq!(ping(&c, &gw.mcp, &sid).await.status(), 200);

        let text = gw.metrics_text().await;
        let count = |reason: &str| {
            crate::common::metric_value(&text, &format!("mcp_session_routing_failures_total{{reason=\"{reason}\"}}"))
        };
        assert_eq!(count("tampered"), Some(3.0), "{text}");
        assert_eq!(count("unknown_key"), Some(1.0));
        assert_eq!(count("malformed"), Some(4.0));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_ends_the_session_on_every_replica() {
    bounded(async {
        let demo = Demo::start("a").await;
        let keys = KeyFile::new(&[key(6)]);
        let setup = Setup::new(&keys).backend("a", &demo.url);
        let (gw1, gw2) = (setup.start().await, setup.start().await);
        let c = client();
        let sid = open_session(&c, &gw1.mcp).await;
        assert_eq!(ping(&c, &gw2.mcp, &sid).await.status(), 200);

        let resp = c.delete(&gw1.mcp).header("mcp-session-id", &sid).send().await.unwrap();
        assert!(resp.status().is_success(), "DELETE: {}", resp.status());
        // Same replica: it remembers the deletion.
        expect_gw_error(ping(&c, &gw1.mcp, &sid).await, 404, -32001, "deleted").await;
        let again = c.delete(&gw1.mcp).header("mcp-session-id", &sid).send().await.unwrap();
        expect_gw_error(again, 404, -32001, "deleted").await;
        // Other replica: the id still opens, and the backend's own 404 passes through.
        let resp = ping(&c, &gw2.mcp, &sid).await;
        assert_eq!(resp.status(), 404);
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], -32001, "{body}");
        assert!(body["error"].get("data").is_none(), "expected the backend's body, got {body}");

        assert_eq!(gw1.metric("mcp_session_routing_failures_total{reason=\"deleted\"}").await, Some(2.0));
        let unknown = gw2.metric("mcp_session_routing_failures_total{reason=\"backend_unknown_session\"}").await;
        assert_eq!(unknown, Some(1.0));
        assert_eq!(gw1.metric("mcp_sessions_deleted_total{backend=\"a\"}").await, Some(1.0));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_rotation_opens_ids_sealed_with_the_old_key() {
    bounded(async {
        let demo = Demo::start("a").await;
        let old = KeyFile::new(&[key(7)]);
        let rotated = KeyFile::new(&[key(8), key(7)]);
        let gw1 = Setup::new(&old).backend("a", &demo.url).start().await;
        let gw2 = Setup::new(&rotated).backend("a", &demo.url).start().await;
        let c = client();
        let sid = open_session(&c, &gw1.mcp).await;
        let via1 = whoami(&c, &gw1.mcp, Some(&sid)).await;
        let via2 = whoami(&c, &gw2.mcp, Some(&sid)).await;
        assert_eq!(via1["session"], via2["session"]);
        // Ids sealed with the new key are unknown to a replica that lacks it.
        let new_sid = open_session(&c, &gw2.mcp).await;
        expect_gw_error(ping(&c, &gw1.mcp, &new_sid).await, 404, -32001, "unknown_key").await;
        assert_eq!(ping(&c, &gw2.mcp, &new_sid).await.status(), 200);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_of_a_removed_backend_is_backend_gone() {
    bounded(async {
        let demo = Demo::start("a").await;
        let keys = KeyFile::new(&[key(9)]);
        let gw1 = Setup::new(&keys).backend("a", &demo.url).start().await;
        // Same key, but the backend was renamed in this replica's config.
        let gw2 = Setup::new(&keys).backend("renamed", &demo.url).start().await;
        let c = client();
        let sid = open_session(&c, &gw1.mcp).await;
        expect_gw_error(ping(&c, &gw2.mcp, &sid).await, 404, -32001, "backend_gone").await;
        assert_eq!(gw2.metric("mcp_session_routing_failures_total{reason=\"backend_gone\"}").await, Some(1.0));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_on_a_dead_backend_is_backend_down() {
    bounded(async {
        let mut demo = Demo::start("a").await;
        let keys = KeyFile::new(&[key(10)]);
        let gw = Setup::new(&keys).backend("a", &demo.url).fast_health().start().await;
        let c = client();
        let sid = open_session(&c, &gw.mcp).await;
        demo.kill().await;
        gw.wait_unhealthy("a").await;
        expect_gw_error(ping(&c, &gw.mcp, &sid).await, 404, -32001, "backend_down").await;
        assert_eq!(gw.metric("mcp_session_routing_failures_total{reason=\"backend_down\"}").await, Some(1.0));
        // New sessions have nowhere to go.
        let resp = post(&c, &gw.mcp, &rpc::initialize(), None).send().await.unwrap();
        expect_gw_error(resp, 503, -32603, "no_healthy_backend").await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_past_their_ttl_are_expired() {
    bounded(async {
        let demo = Demo::start("a").await;
        let keys = KeyFile::new(&[key(11)]);
        let gw = Setup::new(&keys).backend("a", &demo.url).sessions("ttl: 1s").start().await;
        let c = client();
        let sid = open_session(&c, &gw.mcp).await;
        // Whole seconds: past issued_at + 1 s within at most ~2 s.
        tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
        expect_gw_error(ping(&c, &gw.mcp, &sid).await, 404, -32001, "expired").await;
        assert_eq!(gw.metric("mcp_session_routing_failures_total{reason=\"expired\"}").await, Some(1.0));
    })
    .await;
}

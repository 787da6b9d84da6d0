//! The admin listener: liveness, readiness by backend health, the metric
//! names operators grep for, and `/status`.

use serde_json::Value;

use crate::common::process::{Demo, closed_port};
use crate::common::rpc::{client, open_session, post};
use crate::common::{KeyFile, Setup, bounded, key};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_readiness() {
    bounded(async {
        let mut demo = Demo::start("a").await;
        let keys = KeyFile::new(&[key(40)]);
        let gw = Setup::new(&keys).backend("a", &demo.url).fast_health().start().await;
        let (status, body) = gw.admin_get("/health").await;
        assert_eq!(status, 200);
        assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["status"], "ok");
        let (status, body) = gw.admin_get("/ready").await;
        assert_eq!(status, 200, "{body}");
        let ready: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(ready["ready"], true);
        assert_eq!(ready["backends"][0]["healthy"], true);
        assert_eq!((&ready["xdp"]["enabled"], &ready["xdp"]["attached"]), (&Value::Bool(false), &Value::Bool(false)));

        demo.kill().await;
        gw.wait_unhealthy("a").await;
        let (status, body) = gw.admin_get("/ready").await;
        assert_eq!(status, 503, "{body}");
        let ready: Value = serde_json::from_str(&body).unwrap();
        assert_eq!((&ready["ready"], &ready["backends"][0]["healthy"]), (&Value::Bool(false), &Value::Bool(false)));
        // Liveness does not depend on backends.
        assert_eq!(gw.admin_get("/health").await.0, 200);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_ready_without_backends() {
    bounded(async {
        let keys = KeyFile::new(&[key(41)]);
        let dead = format!("http://127.0.0.1:{}/mcp", closed_port());
        let gw = Setup::new(&keys).backend("dead", &dead).fast_health().start().await;
        gw.wait_unhealthy("dead").await;
        assert_eq!(gw.admin_get("/ready").await.0, 503);
        let none = Setup::new(&keys).start().await;
        assert_eq!(none.admin_get("/ready").await.0, 503);
        assert_eq!(none.admin_get("/health").await.0, 200);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_have_the_names_operators_grep_for() {
    bounded(async {
        let mut demo = Demo::start("a").await;
        let keys = KeyFile::new(&[key(42)]);
        let gw = Setup::new(&keys).backend("a", &demo.url).start().await;
        let c = client();
        let sid = open_session(&c, &gw.mcp).await;
        // A connection error: the backend dies under a live session (still marked healthy).
        demo.kill().await;
        let ping = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "ping"});
        let resp = post(&c, &gw.mcp, &ping, Some(&sid)).send().await.unwrap();
        assert_eq!(resp.status(), 502);

        let text = gw.metrics_text().await;
        for needle in ["mcp_backend_healthy", "request_duration", "requests_total", "connection_errors_total"] {
            assert!(text.contains(needle), "{needle} missing from /metrics:\n{text}");
        }
        let value = |s: &str| crate::common::metric_value(&text, s);
        assert_eq!(value("mcp_backend_healthy{backend=\"a\"}"), Some(1.0));
        assert_eq!(value("mcp_backend_connection_errors_total{backend=\"a\",kind=\"connect\"}"), Some(1.0));
        assert_eq!(value("mcp_requests_total{backend=\"a\",method=\"initialize\",status=\"200\"}"), Some(1.0));
        assert_eq!(value("mcp_request_duration_seconds_count{backend=\"a\",method=\"initialize\"}"), Some(1.0));
        assert_eq!(value("mcp_sessions_created_total{backend=\"a\",transport=\"streamable-http\"}"), Some(1.0));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_lists_backends_as_json() {
    bounded(async {
        let demo = Demo::start("a").await;
        let keys = KeyFile::new(&[key(43)]);
        let gw = Setup::new(&keys).backend("a", &demo.url).start().await;
        let (status, body) = gw.admin_get("/status").await;
        assert_eq!(status, 200);
        let v: Value = serde_json::from_str(&body).unwrap();
        assert!(v["version"].as_str().unwrap().starts_with(env!("CARGO_PKG_VERSION")), "{v}");
        assert_eq!(v["draining"], false);
        let backends = v["backends"].as_array().unwrap();
        assert_eq!(backends.len(), 1);
        let b = &backends[0];
        assert_eq!(
            (&b["name"], &b["url"], &b["transport"]),
            (&"a".into(), &demo.url.as_str().into(), &"streamable-http".into())
        );
        assert_eq!((&b["healthy"], &b["outstanding"], &b["weight"]), (&true.into(), &0.into(), &1.into()));
        // Unknown admin paths and methods.
        assert_eq!(gw.admin_get("/nope").await.0, 404);
        let resp = client().post(format!("{}/metrics", gw.admin)).send().await.unwrap();
        assert_eq!(resp.status(), 405);
    })
    .await;
}

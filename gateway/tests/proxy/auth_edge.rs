//! Edge protections through the gateway: rate limits (429 + Retry-After),
//! Origin (403), MCP authorization discovery (RFC 9728 metadata, scope
//! challenges), request limits (431, 400, 413) with the process still serving,
//! the admin token, and client IPs behind trusted proxies.

use serde_json::{Value, json};

use crate::auth_support::{METADATA_URL, RESOURCE, Secrets, auth_yaml, expect_401, open_session_as, start, token};
use crate::common::process::Demo;
use crate::common::rpc::{call, client, expect_gw_error, initialize, post, post_raw};
use crate::common::{KeyFile, Setup, bounded, key};

async fn expect_429(resp: reqwest::Response, scope: &str) {
    let retry: u64 =
        resp.headers().get("retry-after").expect("429 without Retry-After").to_str().unwrap().parse().unwrap();
    assert!((1..=10).contains(&retry), "Retry-After {retry}");
    let body = expect_gw_error(resp, 429, -32012, "rate_limited").await;
    assert!(body["error"]["message"].as_str().unwrap().contains(scope), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_per_principal_and_per_ip() {
    bounded(async {
        let demo = Demo::start("a").await;
        let keys = KeyFile::new(&[key(60)]);
        let secrets = Secrets::create();
        let security = "security:\n  rate_limit:\n    per_principal: {rate: 0.2, burst: 3}\n";
        let gw =
            start(&Setup::new(&keys).backend("a", &demo.url), &format!("{}{security}", auth_yaml(&secrets, None, "")))
                .await;
        let c = client();
        let (alice, bob) = (token("alice", "mcp"), token("bob", "mcp"));
        let sid = open_session_as(&c, &gw.mcp, &alice).await; // two requests
        let ok = post(&c, &gw.mcp, &call(1, "echo", json!({"text": "x"})), Some(&sid))
            .bearer_auth(&alice)
            .send()
            .await
            .unwrap();
        assert_eq!(ok.status(), 200);
        let limited = post(&c, &gw.mcp, &call(2, "echo", json!({"text": "x"})), Some(&sid))
            .bearer_auth(&alice)
            .send()
            .await
            .unwrap();
        expect_429(limited, "principal").await;
        // Bob has his own bucket.
        open_session_as(&c, &gw.mcp, &bob).await;
        assert_eq!(gw.metric("mcp_rate_limited_total{scope=\"principal\"}").await, Some(1.0));

        let per_ip = "security:\n  rate_limit:\n    per_ip: {rate: 0.2, burst: 2}\n";
        let open = start(&Setup::new(&keys).backend("a", &demo.url), per_ip).await;
        for _ in 0..2 {
            assert_eq!(post(&c, &open.mcp, &initialize(), None).send().await.unwrap().status(), 200);
        }
        expect_429(post(&c, &open.mcp, &initialize(), None).send().await.unwrap(), "ip").await;
        assert_eq!(open.metric("mcp_rate_limited_total{scope=\"ip\"}").await, Some(1.0));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disallowed_origin_is_403() {
    bounded(async {
        let demo = Demo::start("a").await;
        let keys = KeyFile::new(&[key(61)]);
        let security = "security:\n  allowed_origins: [\"https://app.example.com\"]\n";
        let gw = start(&Setup::new(&keys).backend("a", &demo.url), security).await;
        let c = client();
        let resp =
            post(&c, &gw.mcp, &initialize(), None).header("origin", "https://evil.example").send().await.unwrap();
        let body = expect_gw_error(resp, 403, -32011, "origin_forbidden").await;
        // Refused before the body is read: there is no id to echo.
        assert_eq!(body["id"], Value::Null);
        let sse = c.get(format!("{}/sse", gw.base)).header("origin", "http://localhost:9999").send().await.unwrap();
        assert_eq!(sse.status(), 403);
        let ok =
            post(&c, &gw.mcp, &initialize(), None).header("origin", "https://app.example.com").send().await.unwrap();
        assert_eq!(ok.status(), 200);
        assert_eq!(
            post(&c, &gw.mcp, &initialize(), None).send().await.unwrap().status(),
            200,
            "no Origin: not a browser"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_metadata_and_scope_challenges() {
    bounded(async {
        let demo = Demo::start("a").await;
        let keys = KeyFile::new(&[key(62)]);
        let secrets = Secrets::create();
        let extra = "  required_scopes: [\"mcp:tools\"]\n";
        let gw = start(&Setup::new(&keys).backend("a", &demo.url), &auth_yaml(&secrets, None, extra)).await;
        let c = client();
        for path in ["/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp"] {
            let resp = c.get(format!("{}{path}", gw.base)).send().await.unwrap();
            assert_eq!(resp.status(), 200, "{path}");
            let doc: Value = resp.json().await.unwrap();
            assert_eq!(doc["resource"], RESOURCE);
            assert_eq!(doc["authorization_servers"], json!(["https://issuer.test"]));
            assert_eq!(doc["scopes_supported"], json!(["mcp:tools"]));
            assert_eq!(doc["bearer_methods_supported"], json!(["header"]));
        }
        let resp = post(&c, &gw.mcp, &initialize(), None).send().await.unwrap();
        let challenge = resp.headers()["www-authenticate"].to_str().unwrap().to_owned();
        assert_eq!(challenge, format!("Bearer resource_metadata=\"{METADATA_URL}\", scope=\"mcp:tools\""));
        expect_401(resp, None, "missing_credential").await;
        // A valid token without the required scope: 403 insufficient_scope, naming the scope.
        let resp = post(&c, &gw.mcp, &initialize(), None).bearer_auth(token("alice", "mcp")).send().await.unwrap();
        let challenge = resp.headers()["www-authenticate"].to_str().unwrap().to_owned();
        assert!(challenge.starts_with("Bearer error=\"insufficient_scope\""), "{challenge}");
        assert!(challenge.ends_with("scope=\"mcp:tools\""), "{challenge}");
        expect_gw_error(resp, 403, -32011, "insufficient_scope").await;
        open_session_as(&c, &gw.mcp, &token("alice", "mcp mcp:tools")).await;

        // Without auth there is no metadata.
        let open = start(&Setup::new(&keys).backend("a", &demo.url), "").await;
        let resp = c.get(format!("{}/.well-known/oauth-protected-resource", open.base)).send().await.unwrap();
        assert_eq!(resp.status(), 404);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_limits_have_clear_answers_and_the_gateway_keeps_serving() {
    bounded(async {
        let demo = Demo::start("a").await;
        let keys = KeyFile::new(&[key(63)]);
        let security = "security:\n  limits:\n    max_headers: 20\n    max_json_depth: 16\n    max_id_length: 32\n";
        let setup = Setup::new(&keys).backend("a", &demo.url).server("max_request_body: 2048");
        let gw = start(&setup, security).await;
        let c = client();

        let mut many = post(&c, &gw.mcp, &initialize(), None);
        for i in 0..30 {
            many = many.header(format!("x-filler-{i}"), "v");
        }
        expect_gw_error(many.send().await.unwrap(), 431, -32600, "headers_too_large").await;
        let huge = post(&c, &gw.mcp, &initialize(), None).header("x-big", "b".repeat(70 * 1024));
        expect_gw_error(huge.send().await.unwrap(), 431, -32600, "headers_too_large").await;

        let deep = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"echo","arguments":{{"text":"x","n":{}1{}}}}}}}"#,
            "[".repeat(20),
            "]".repeat(20)
        );
        let body = expect_gw_error(post_raw(&c, &gw.mcp, deep, None).send().await.unwrap(), 400, -32600, "invalid_request").await;
        assert!(body["error"]["message"].as_str().unwrap().contains("nesting"), "{body}");
        let long_id = json!({"jsonrpc": "2.0", "id": "i".repeat(40), "method": "ping"});
        let body = expect_gw_error(post(&c, &gw.mcp, &long_id, None).send().await.unwrap(), 400, -32600, "invalid_request").await;
        assert!(body["error"]["message"].as_str().unwrap().contains("id too long"), "{body}");
        let big = json!({"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"pad": "p".repeat(4096)}});
        expect_gw_error(post(&c, &gw.mcp, &big, None).send().await.unwrap(), 413, -32600, "body_too_large").await;

        // Still serving.
        assert_eq!(post(&c, &gw.mcp, &initialize(), None).send().await.unwrap().status(), 200);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_actions_need_the_admin_token() {
    bounded(async {
        let demo = Demo::start("a").await;
        let keys = KeyFile::new(&[key(64)]);
        let secrets = Secrets::create();
        let token_file = secrets.write("admin.token", "admin-token-for-tests-123\n");
        let security = format!(
            "security:\n  admin_token_file: \"{token_file}\"\n  rate_limit:\n    per_ip: {{rate: 100, burst: 100}}\n"
        );
        let gw = start(&Setup::new(&keys).backend("a", &demo.url), &security).await;
        let c = client();
        assert_eq!(post(&c, &gw.mcp, &initialize(), None).send().await.unwrap().status(), 200);
        let clients = format!("{}/admin/clients", gw.admin);
        assert_eq!(c.get(&clients).send().await.unwrap().status(), 401);
        assert_eq!(c.get(&clients).bearer_auth("wrong").send().await.unwrap().status(), 401);
        let resp = c.get(&clients).bearer_auth("admin-token-for-tests-123").send().await.unwrap();
        assert_eq!(resp.status(), 200);
        let view: Value = resp.json().await.unwrap();
        assert_eq!(view["per_ip"]["tracked"], 1, "{view}");
        assert_eq!(view["per_ip"]["most_throttled"][0]["ip"], "127.0.0.1", "{view}");
        let reset = c.post(format!("{}/admin/ratelimit/reset?key=127.0.0.1", gw.admin));
        let resp: Value = reset.bearer_auth("admin-token-for-tests-123").send().await.unwrap().json().await.unwrap();
        assert_eq!(resp["reset"], true, "{resp}");
        // Read-only endpoints stay open.
        assert_eq!(gw.admin_get("/metrics").await.0, 200);
        assert_eq!(gw.admin_get("/status").await.0, 200);

        let none = start(&Setup::new(&keys).backend("a", &demo.url), "").await;
        let resp = c.get(format!("{}/admin/clients", none.admin)).bearer_auth("anything").send().await.unwrap();
        assert_eq!(resp.status(), 403);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_wait_in_the_backlog() {
    bounded(async {
        let demo = Demo::start("a").await;
        let keys = KeyFile::new(&[key(65)]);
        let gw =
            start(&Setup::new(&keys).backend("a", &demo.url), "security:\n  limits:\n    max_connections: 2\n").await;
        let addr = gw.running.data_addr();
        // Two idle connections take both slots.
        let first = tokio::net::TcpStream::connect(addr).await.unwrap();
        let _second = tokio::net::TcpStream::connect(addr).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let quick =
            reqwest::Client::builder().no_proxy().timeout(std::time::Duration::from_millis(500)).build().unwrap();
        let waited = post(&quick, &gw.mcp, &initialize(), None).send().await;
        assert!(waited.is_err_and(|e| e.is_timeout()), "a third connection was served past the cap");
        // A slot frees: the next client is served.
        drop(first);
        let resp = post(&client(), &gw.mcp, &initialize(), None).send().await.unwrap();
        assert_eq!(resp.status(), 200);
    })
    .await;
}

/// `security.trusted_proxies`: from a trusted peer the client is the right-most
/// untrusted `X-Forwarded-For` address (per-IP limit, forwarded chain); from any
/// other peer the client's `X-Forwarded-For` is ignored and dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trusted_proxies_name_the_client() {
    async fn whoami_xff(c: &reqwest::Client, url: &str, xff: &str) -> (String, reqwest::StatusCode) {
        let with = |b: reqwest::RequestBuilder| b.header("x-forwarded-for", xff);
        let resp = with(post(c, url, &initialize(), None)).send().await.unwrap();
        let sid = resp.headers()["mcp-session-id"].to_str().unwrap().to_owned();
        let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        assert_eq!(with(post(c, url, &note, Some(&sid))).send().await.unwrap().status(), 202);
        let resp = with(post(c, url, &call(3, "whoami", json!({})), Some(&sid))).send().await.unwrap();
        let me: Value =
            serde_json::from_str(crate::common::rpc::tool_text(&crate::common::rpc::response_message(resp).await))
                .unwrap();
        let fourth = with(post(c, url, &initialize(), None)).send().await.unwrap();
        (me["headers"]["x-forwarded-for"].as_str().unwrap().to_owned(), fourth.status())
    }
    bounded(async {
        let demo = Demo::start("a").await;
        let keys = KeyFile::new(&[key(66)]);
        let c = client();
        let limit = "  rate_limit:\n    per_ip: {rate: 0.2, burst: 4}\n";

        // The test client (127.0.0.1) is a trusted proxy.
        let trusted = format!("security:\n  trusted_proxies: [127.0.0.0/8, 10.0.0.0/8]\n{limit}");
        let gw = start(&Setup::new(&keys).backend("a", &demo.url), &trusted).await;
        // Spoofed entries left of the client are cut; trusted hops stay; the peer is appended.
        let (seen, fourth) = whoami_xff(&c, &gw.mcp, "6.6.6.6, 203.0.113.1, 10.1.1.1").await;
        assert_eq!(seen, "203.0.113.1, 10.1.1.1, 127.0.0.1");
        assert_eq!(fourth, 200, "the fourth request of 203.0.113.1 is within its burst");
        let limited = post(&c, &gw.mcp, &initialize(), None).header("x-forwarded-for", "203.0.113.1").send().await;
        expect_429(limited.unwrap(), "ip").await;
        // Another client behind the same proxy has its own bucket.
        let other = post(&c, &gw.mcp, &initialize(), None).header("x-forwarded-for", "203.0.113.2").send().await;
        assert_eq!(other.unwrap().status(), 200);

        // The test client is not trusted: its X-Forwarded-For counts for nothing.
        let untrusted = format!("security:\n  trusted_proxies: [10.0.0.0/8]\n{limit}");
        let gw = start(&Setup::new(&keys).backend("a", &demo.url), &untrusted).await;
        let (seen, fourth) = whoami_xff(&c, &gw.mcp, "203.0.113.1").await;
        assert_eq!(seen, "127.0.0.1", "a client's own X-Forwarded-For is dropped");
        assert_eq!(fourth, 200);
        let other = post(&c, &gw.mcp, &initialize(), None).header("x-forwarded-for", "203.0.113.2").send().await;
        expect_429(other.unwrap(), "ip").await;
    })
    .await;
}

//! Authorization through the gateway: sessions bound to their principal, no
//! token passthrough (and the per-backend credential instead), per-tool policy
//! on `tools/list` (JSON and SSE) and `tools/call`, the same for resources and
//! prompts, and API keys.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::auth_support::{Secrets, auth_yaml, expect_401, open_session_as, start, token};
use crate::common::process::Demo;
use crate::common::rpc::{call, client, content_type, expect_gw_error, initialize, post, response_message, tool_text};
use crate::common::{KeyFile, Setup, bounded, key};

async fn whoami_as(c: &reqwest::Client, url: &str, sid: &str, token: &str) -> Value {
    let resp = post(c, url, &call(7, "whoami", json!({})), Some(sid)).bearer_auth(token).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    serde_json::from_str(tool_text(&response_message(resp).await)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_belongs_to_the_principal_that_created_it() {
    bounded(async {
        let demo = Demo::start("a").await;
        let keys = KeyFile::new(&[key(50)]);
        let secrets = Secrets::create();
        let gw = start(&Setup::new(&keys).backend("a", &demo.url), &auth_yaml(&secrets, None, "")).await;
        let c = client();
        let (alice, bob) = (token("alice", "mcp"), token("bob", "mcp"));
        let sid = open_session_as(&c, &gw.mcp, &alice).await;
        // Bob's token is valid, but the session was sealed for Alice: 404, never her session.
        let resp = post(&c, &gw.mcp, &call(1, "whoami", json!({})), Some(&sid)).bearer_auth(&bob).send().await.unwrap();
        expect_gw_error(resp, 404, -32001, "principal_mismatch").await;
        let resp = c.delete(&gw.mcp).header("mcp-session-id", &sid).bearer_auth(&bob).send().await.unwrap();
        assert_eq!(resp.status(), 404);
        // Alice's session is untouched.
        let me = whoami_as(&c, &gw.mcp, &sid, &alice).await;
        assert_eq!(me["server"], "a");
        let failures = gw.metric("mcp_session_routing_failures_total{reason=\"principal_mismatch\"}").await;
        assert_eq!(failures, Some(2.0));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_token_never_reaches_the_backend() {
    bounded(async {
        let demo = Demo::start("a").await;
        let keys = KeyFile::new(&[key(51)]);
        let secrets = Secrets::create();
        let c = client();
        let alice = token("alice", "mcp");

        // Default: nothing is sent instead.
        let plain = start(&Setup::new(&keys).backend("a", &demo.url), &auth_yaml(&secrets, None, "")).await;
        let sid = open_session_as(&c, &plain.mcp, &alice).await;
        let seen = whoami_as(&c, &plain.mcp, &sid, &alice).await;
        assert!(seen["headers"].get("authorization").is_none(), "token passed through: {seen}");

        // Per backend: a static credential from a secret file.
        let file = secrets.write("backend.token", "backend-credential\n");
        let upstream = format!("  upstream:\n    - backend: a\n      bearer_file: \"{file}\"\n      claim_headers: {{x-forwarded-user: sub}}\n");
        let gw = start(&Setup::new(&keys).backend("a", &demo.url), &auth_yaml(&secrets, None, &upstream)).await;
        let sid = open_session_as(&c, &gw.mcp, &alice).await;
        let seen = whoami_as(&c, &gw.mcp, &sid, &alice).await;
        assert_eq!(seen["headers"]["authorization"], "Bearer backend-credential", "{seen}");
    })
    .await;
}

const POLICY: &str = "  policy:\n    - tools: [echo, \"who*\"]\n    - when: {scope: admin}\n      tools: [\"*\"]\n";

fn tool_names(msg: &Value) -> Vec<String> {
    let tools = msg["result"]["tools"].as_array().unwrap_or_else(|| panic!("not a tools/list result: {msg}"));
    tools.iter().map(|t| t["name"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_policy_filters_lists_and_refuses_calls_in_json_and_sse() {
    bounded(async {
        for mode in ["json", "sse"] {
            let demo = Demo::spawn(&["--mode", mode, "--name", "a"], &[]).await;
            let keys = KeyFile::new(&[key(52)]);
            let secrets = Secrets::create();
            let gw = start(&Setup::new(&keys).backend("a", &demo.url), &auth_yaml(&secrets, None, POLICY)).await;
            let c = client();
            let (user, admin) = (token("user", "mcp"), token("root", "mcp admin"));
            let list = json!({"jsonrpc": "2.0", "id": 5, "method": "tools/list"});

            let sid = open_session_as(&c, &gw.mcp, &user).await;
            let resp = post(&c, &gw.mcp, &list, Some(&sid)).bearer_auth(&user).send().await.unwrap();
            let expected_type = if mode == "sse" { "text/event-stream" } else { "application/json" };
            assert!(content_type(&resp).starts_with(expected_type), "{mode}: {}", content_type(&resp));
            assert_eq!(tool_names(&response_message(resp).await), ["echo", "whoami"], "{mode}");

            let resp = post(&c, &gw.mcp, &call(6, "large", json!({"size": 10})), Some(&sid))
                .bearer_auth(&user)
                .send()
                .await
                .unwrap();
            let challenge = resp.headers().get("www-authenticate").unwrap().to_str().unwrap().to_owned();
            assert!(
                challenge.contains("error=\"insufficient_scope\"") && challenge.contains("scope=\"admin\""),
                "{challenge}"
            );
            let body = expect_gw_error(resp, 403, -32011, "tool_forbidden").await;
            assert_eq!(body["id"], 6);
            let resp = post(&c, &gw.mcp, &call(7, "echo", json!({"text": "ok"})), Some(&sid))
                .bearer_auth(&user)
                .send()
                .await
                .unwrap();
            assert_eq!(tool_text(&response_message(resp).await), "ok");
            // Prompts are not restricted by this policy: a prompts/get reaches the backend.
            let prompt = json!({"jsonrpc": "2.0", "id": 9, "method": "prompts/get"});
            let resp = post(&c, &gw.mcp, &prompt, Some(&sid)).bearer_auth(&user).send().await.unwrap();
            assert_ne!(resp.status(), 403, "{mode}");
            assert!(response_message(resp).await.get("id").is_some());

            let sid = open_session_as(&c, &gw.mcp, &admin).await;
            let resp = post(&c, &gw.mcp, &list, Some(&sid)).bearer_auth(&admin).send().await.unwrap();
            assert_eq!(tool_names(&response_message(resp).await).len(), 5, "{mode}: admin sees every tool");
            let resp = post(&c, &gw.mcp, &call(8, "large", json!({"size": 10})), Some(&sid))
                .bearer_auth(&admin)
                .send()
                .await
                .unwrap();
            assert_eq!(tool_text(&response_message(resp).await).len(), 10);
            assert_eq!(gw.metric("mcp_policy_denials_total{kind=\"tool\"}").await, Some(1.0), "{mode}");
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_are_an_alternative_credential() {
    bounded(async {
        let demo = Demo::start("a").await;
        let keys = KeyFile::new(&[key(53)]);
        let secrets = Secrets::create();
        let secret_key = "ci-key-0123456789abcdef";
        let digest: String = Sha256::digest(secret_key.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
        let extra = format!("  api_keys:\n    - name: ci\n      sha256: {digest}\n      scopes: [mcp]\n");
        let gw = start(&Setup::new(&keys).backend("a", &demo.url), &auth_yaml(&secrets, None, &extra)).await;
        let c = client();
        let sid = open_session_as(&c, &gw.mcp, secret_key).await;
        let resp = post(&c, &gw.mcp, &call(2, "echo", json!({"text": "k"})), Some(&sid))
            .header("x-api-key", secret_key)
            .send()
            .await
            .unwrap();
        assert_eq!(tool_text(&response_message(resp).await), "k");
        let resp = post(&c, &gw.mcp, &initialize(), None).bearer_auth("ci-key-0123456789abcdeF").send().await.unwrap();
        expect_401(resp, Some("invalid_token"), "invalid_api_key").await;
        let resp = post(&c, &gw.mcp, &initialize(), None).header("x-api-key", "nope").send().await.unwrap();
        expect_401(resp, Some("invalid_token"), "invalid_api_key").await;
        // A JWT principal cannot use the API key's session either.
        let resp = post(&c, &gw.mcp, &call(3, "echo", json!({"text": "k"})), Some(&sid))
            .bearer_auth(token("ci", "mcp"))
            .send()
            .await
            .unwrap();
        expect_gw_error(resp, 404, -32001, "principal_mismatch").await;
    })
    .await;
}

/// Resources and prompts are gated once a rule names them: the same 403 before the
/// backend for `resources/read`, `resources/subscribe`, `resources/unsubscribe` and
/// `prompts/get`, and filtered `resources/list`, `resources/templates/list` and
/// `prompts/list` answers, in JSON and in SSE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resource_and_prompt_policy_in_json_and_sse() {
    use crate::auth_backend::TinyBackend;
    let policy = "  policy:\n    - resources: [\"file:///docs/*\"]\n      prompts: [summarize]\n";
    let rpc =
        |id: u64, method: &str, params: Value| json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
    let items = |msg: &Value, member: &str, field: &str| -> Vec<String> {
        let list = msg["result"][member].as_array().unwrap_or_else(|| panic!("no {member}: {msg}"));
        list.iter().map(|i| i[field].as_str().unwrap().to_owned()).collect()
    };
    bounded(async {
        for sse in [false, true] {
            let backend = TinyBackend::plain(sse).await;
            let keys = KeyFile::new(&[key(54)]);
            let secrets = Secrets::create();
            let setup = Setup::new(&keys).backend("a", &format!("http://{}/mcp", backend.addr));
            let gw = start(&setup, &auth_yaml(&secrets, None, policy)).await;
            let c = client();
            let user = token("user", "mcp");
            let sid = open_session_as(&c, &gw.mcp, &user).await;
            let send = |body: Value| post(&c, &gw.mcp, &body, Some(&sid)).bearer_auth(&user).send();

            let msg = response_message(send(rpc(1, "resources/list", json!({}))).await.unwrap()).await;
            assert_eq!(items(&msg, "resources", "uri"), ["file:///docs/a.md"], "sse={sse}");
            let msg = response_message(send(rpc(2, "resources/templates/list", json!({}))).await.unwrap()).await;
            assert_eq!(items(&msg, "resourceTemplates", "uriTemplate"), ["file:///docs/{name}"], "sse={sse}");
            let msg = response_message(send(rpc(3, "prompts/list", json!({}))).await.unwrap()).await;
            assert_eq!(items(&msg, "prompts", "name"), ["summarize"], "sse={sse}");

            let secret = json!({"uri": "file:///secret/key"});
            for (id, method) in [(4, "resources/read"), (5, "resources/subscribe"), (6, "resources/unsubscribe")] {
                let resp = send(rpc(id, method, secret.clone())).await.unwrap();
                let body = expect_gw_error(resp, 403, -32011, "resource_forbidden").await;
                assert_eq!(body["id"], id, "{method}");
            }
            let resp = send(rpc(7, "prompts/get", json!({"name": "leak"}))).await.unwrap();
            expect_gw_error(resp, 403, -32011, "prompt_forbidden").await;
            // Allowed ones reach the backend.
            let msg =
                response_message(send(rpc(8, "resources/read", json!({"uri": "file:///docs/a.md"}))).await.unwrap())
                    .await;
            assert_eq!(msg["result"]["contents"][0]["text"], "content");
            let msg = response_message(
                send(rpc(9, "resources/subscribe", json!({"uri": "file:///docs/a.md"}))).await.unwrap(),
            )
            .await;
            assert!(msg["result"].is_object(), "{msg}");
            let msg = response_message(send(rpc(10, "prompts/get", json!({"name": "summarize"}))).await.unwrap()).await;
            assert!(msg["result"]["messages"].is_array(), "{msg}");

            let seen = backend.seen();
            assert_eq!(seen.iter().filter(|m| *m == "resources/read").count(), 1, "{seen:?}");
            assert_eq!(seen.iter().filter(|m| *m == "resources/subscribe").count(), 1, "{seen:?}");
            assert!(!seen.iter().any(|m| m == "resources/unsubscribe"), "{seen:?}");
            assert_eq!(seen.iter().filter(|m| *m == "prompts/get").count(), 1, "{seen:?}");
            assert_eq!(gw.metric("mcp_policy_denials_total{kind=\"resource\"}").await, Some(3.0));
            assert_eq!(gw.metric("mcp_policy_denials_total{kind=\"prompt\"}").await, Some(1.0));
        }
    })
    .await;
}

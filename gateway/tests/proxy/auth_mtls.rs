//! Certificates on both sides of the gateway: mutual TLS towards a backend
//! that requires a client certificate (private CA, `server_name` override),
//! and client certificates on the data listener (`client_auth: required`
//! refuses handshakes without one; a verified certificate's CN is a principal
//! for the policy and the session binding).

use std::time::Duration;

use serde_json::{Value, json};

use crate::auth_backend::{Leaf, Pki, TinyBackend};
use crate::auth_support::{Secrets, auth_yaml, start, token};
use crate::common::rpc::{call, client, expect_gw_error, initialize, post, response_message, tool_text};
use crate::common::{KeyFile, Setup, bounded, key};

/// A backend `tls:` line (continues the last `backends` entry of a [`Setup`]).
fn backend_tls(pki: &Pki, cert: Option<&Leaf>) -> String {
    let client = cert.map(|l| format!(", cert_file: \"{}\", key_file: \"{}\"", l.cert_file, l.key_file));
    format!("    tls: {{ca_file: \"{}\", server_name: backend.test{}}}\n", pki.ca_file, client.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_towards_a_backend_that_requires_it() {
    bounded(async {
        let pki = Pki::new("backend");
        let server = pki.leaf("backend.test", &["backend.test"]);
        let gateway_cert = pki.leaf("gateway", &["gateway.test"]);
        let backend = TinyBackend::tls(pki.server_requiring_clients(&server)).await;
        // The URL names an IP; `server_name` makes the gateway verify (and send SNI for) backend.test.
        let url = format!("https://127.0.0.1:{}/mcp", backend.addr.port());
        let keys = KeyFile::new(&[key(91)]);
        let setup = Setup::new(&keys).backend("secure", &url);
        let c = client();

        let gw = start(&setup, &backend_tls(&pki, Some(&gateway_cert))).await;
        let resp = post(&c, &gw.mcp, &initialize(), None).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        let sid = resp.headers()["mcp-session-id"].to_str().unwrap().to_owned();
        assert_eq!(response_message(resp).await["result"]["serverInfo"]["name"], "tiny");
        let resp = post(&c, &gw.mcp, &call(2, "echo", json!({})), Some(&sid)).send().await.unwrap();
        assert_eq!(tool_text(&response_message(resp).await), "tiny");
        assert_eq!(backend.seen(), ["initialize", "tools/call"]);

        // The same backend through a gateway that trusts the CA but has no client certificate:
        // the backend refuses the handshake, the client gets a prompt 502, and nothing hangs.
        let no_cert = start(&setup, &backend_tls(&pki, None)).await;
        for attempt in 0..3 {
            let started = std::time::Instant::now();
            let resp = post(&c, &no_cert.mcp, &initialize(), None).send().await.unwrap();
            let body = resp_error(resp, 502).await;
            let reason = body["error"]["data"]["reason"].as_str().unwrap().to_owned();
            // TLS 1.3: the backend's certificate_required alert arrives after the client's handshake
            // is done, so this is usually `upstream_error`; TLS 1.2 would fail the connect itself.
            assert!(["connect_error", "upstream_error"].contains(&reason.as_str()), "attempt {attempt}: {body}");
            assert!(started.elapsed() < Duration::from_secs(5), "attempt {attempt} took {:?}", started.elapsed());
        }
        assert_eq!(backend.seen().len(), 2, "no request reached the backend without a client certificate");
        // Both gateways still serve.
        let (status, _) = no_cert.admin_get("/health").await;
        assert_eq!(status, 200);
        let resp = post(&c, &gw.mcp, &call(3, "echo", json!({})), Some(&sid)).send().await.unwrap();
        assert_eq!(tool_text(&response_message(resp).await), "tiny");

        // A gateway that does not trust the backend's CA fails the same clear way.
        let other = Pki::new("other");
        let wrong_ca = start(&setup, &backend_tls(&other, Some(&gateway_cert))).await;
        let resp = post(&c, &wrong_ca.mcp, &initialize(), None).send().await.unwrap();
        expect_gw_error(resp, 502, -32603, "connect_error").await;
    })
    .await;
}

/// The gateway's JSON-RPC error body, after checking the status.
async fn resp_error(resp: reqwest::Response, status: u16) -> Value {
    assert_eq!(resp.status().as_u16(), status);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["data"]["source"], "mcp-gateway", "{body}");
    body
}

/// An HTTPS client trusting `ca`, presenting `identity` if given.
fn tls_client(ca: &str, identity: Option<&Leaf>) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(&std::fs::read(ca).unwrap()).unwrap();
    let mut b = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(20)).add_root_certificate(ca);
    if let Some(leaf) = identity {
        b = b.identity(reqwest::Identity::from_pem(leaf.identity_pem.as_bytes()).unwrap());
    }
    b.build().unwrap()
}

/// `initialize` + `notifications/initialized` with whatever credential `c` carries; the session id.
async fn open(c: &reqwest::Client, url: &str, bearer: Option<&str>) -> String {
    let with = |b: reqwest::RequestBuilder| match bearer {
        Some(t) => b.bearer_auth(t),
        None => b,
    };
    let resp = with(post(c, url, &initialize(), None)).send().await.unwrap();
    assert_eq!(resp.status(), 200, "initialize: {}", resp.text().await.unwrap());
    let sid = resp.headers()["mcp-session-id"].to_str().unwrap().to_owned();
    let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    assert_eq!(with(post(c, url, &note, Some(&sid))).send().await.unwrap().status(), 202);
    sid
}

fn tool_names(msg: &Value) -> Vec<&str> {
    msg["result"]["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_on_the_listener() {
    bounded(async {
        let backend = TinyBackend::plain(false).await;
        let edge = Pki::new("edge");
        let server = edge.leaf("localhost", &["localhost"]);
        let clients = Pki::new("clients");
        let (svc_a, svc_b) = (clients.leaf("svc-a", &[]), clients.leaf("svc-b", &[]));
        let rogue = Pki::new("rogue").leaf("svc-a", &[]);
        let keys = KeyFile::new(&[key(92)]);
        let secrets = Secrets::create();
        let policy = "  policy:\n    - when: {issuer: x509, subject: svc-a}\n      tools: [echo]\n\
                      \x20   - when: {issuer: x509, subject: svc-b}\n      tools: [whoami]\n\
                      \x20   - when: {issuer: \"https://issuer.test\"}\n      tools: [\"*\"]\n";
        let listener = |mode: &str| {
            format!(
                "tls: {{cert_file: \"{}\", key_file: \"{}\", client_auth: {mode}, client_ca_file: \"{}\"}}",
                server.cert_file, server.key_file, clients.ca_file
            )
        };
        let list = json!({"jsonrpc": "2.0", "id": 5, "method": "tools/list"});

        // required: no certificate, or one from another CA, fails the handshake.
        let setup =
            Setup::new(&keys).backend("a", &format!("http://{}/mcp", backend.addr)).server(&listener("required"));
        let gw = start(&setup, &auth_yaml(&secrets, None, policy)).await;
        let url = format!("https://localhost:{}/mcp", gw.running.data_addr().port());
        for (what, id) in [("no certificate", None), ("a certificate from another CA", Some(&rogue))] {
            let resp = post(&tls_client(&edge.ca_file, id), &url, &initialize(), None).send().await;
            assert!(resp.is_err(), "{what}: {resp:?}");
        }
        // A verified certificate is the principal (issuer x509, subject = CN): the policy applies to it...
        let a = tls_client(&edge.ca_file, Some(&svc_a));
        let sid = open(&a, &url, None).await;
        let resp = post(&a, &url, &list, Some(&sid)).send().await.unwrap();
        assert_eq!(tool_names(&response_message(resp).await), ["echo"]);
        let resp = post(&a, &url, &call(6, "whoami", json!({})), Some(&sid)).send().await.unwrap();
        expect_gw_error(resp, 403, -32011, "tool_forbidden").await;
        // ...and the session is bound to it: another certificate cannot use it.
        let b = tls_client(&edge.ca_file, Some(&svc_b));
        let resp = post(&b, &url, &call(7, "whoami", json!({})), Some(&sid)).send().await.unwrap();
        expect_gw_error(resp, 404, -32001, "principal_mismatch").await;
        let sid_b = open(&b, &url, None).await;
        let resp = post(&b, &url, &list, Some(&sid_b)).send().await.unwrap();
        assert_eq!(tool_names(&response_message(resp).await), ["whoami"]);
        // A bearer token wins over the certificate.
        let sid_t = open(&a, &url, Some(&token("alice", "mcp"))).await;
        let resp = post(&a, &url, &list, Some(&sid_t)).bearer_auth(token("alice", "mcp")).send().await.unwrap();
        assert_eq!(tool_names(&response_message(resp).await), ["echo", "whoami"]);
        drop(gw);

        // optional: a client without a certificate connects and needs a bearer token.
        let setup =
            Setup::new(&keys).backend("a", &format!("http://{}/mcp", backend.addr)).server(&listener("optional"));
        let gw = start(&setup, &auth_yaml(&secrets, None, policy)).await;
        let url = format!("https://localhost:{}/mcp", gw.running.data_addr().port());
        let anonymous = tls_client(&edge.ca_file, None);
        let resp = post(&anonymous, &url, &initialize(), None).send().await.unwrap();
        assert_eq!(resp.status(), 401);
        open(&anonymous, &url, Some(&token("bob", "mcp"))).await;
        let sid = open(&tls_client(&edge.ca_file, Some(&svc_a)), &url, None).await;
        let resp = post(&a, &url, &list, Some(&sid)).send().await.unwrap();
        assert_eq!(tool_names(&response_message(resp).await), ["echo"]);
        assert!(post(&tls_client(&edge.ca_file, Some(&rogue)), &url, &initialize(), None).send().await.is_err());
    })
    .await;
}

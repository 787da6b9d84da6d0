//! TLS at the edge with authentication: only TLS 1.2 and 1.3 are spoken (a
//! TLS 1.0/1.1 client gets an alert from the gateway, checked with
//! `openssl s_client`), and a bearer-token session over HTTPS (HTTP/2 by
//! ALPN) works end to end without the token reaching the backend.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::process::Command;

use crate::auth_support::{Secrets, auth_yaml, start, token};
use crate::common::process::{Demo, run_to_end};
use crate::common::rpc::{call, initialize, post, response_message, tool_text};
use crate::common::{KeyFile, Setup, bounded, key};

/// A self-signed `localhost` certificate as PEM files, and the `server.tls` line.
fn cert(secrets: &Secrets) -> (String, String) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let crt = secrets.write("tls.crt", &ck.cert.pem());
    let key = secrets.write("tls.key", &ck.signing_key.serialize_pem());
    (ck.cert.pem(), format!("tls: {{cert_file: \"{crt}\", key_file: \"{key}\"}}"))
}

/// `openssl s_client` at `version` (`-tls1`, `-tls1_1`, `-tls1_2`, `-tls1_3`): (handshake ok, output).
async fn handshake(addr: std::net::SocketAddr, version: &str) -> (bool, String) {
    let mut cmd = Command::new("openssl");
    // SECLEVEL=0 lets OpenSSL 3 *offer* the old versions, so a refusal is the gateway's.
    cmd.args(["s_client", "-connect", &addr.to_string(), "-servername", "localhost", version]);
    cmd.args(["-cipher", "DEFAULT:@SECLEVEL=0"]);
    let (_, stdout, stderr) = run_to_end(cmd).await;
    let text = format!("{stdout}\n{stderr}");
    let ok = text.contains("Cipher is ") && !text.contains("Cipher is (NONE)");
    (ok, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_tls_1_2_and_1_3_and_bearer_sessions_over_https() {
    bounded(async {
        let demo = Demo::start("a").await;
        let keys = KeyFile::new(&[key(80)]);
        let secrets = Secrets::create();
        let (pem, tls_line) = cert(&secrets);
        let setup = Setup::new(&keys).backend("a", &demo.url).server(&tls_line);
        let gw = start(&setup, &auth_yaml(&secrets, None, "")).await;
        let addr = gw.running.data_addr();
        for old in ["-tls1", "-tls1_1"] {
            let (ok, text) = handshake(addr, old).await;
            assert!(!ok, "{old} handshake succeeded:\n{text}");
            // rustls answers a TLS 1.1 hello with protocol_version, a TLS 1.0 one with handshake_failure.
            let alert = text.contains("alert protocol version") || text.contains("alert handshake failure");
            assert!(alert && text.contains("SSL alert number"), "{old}: not refused by the gateway's alert:\n{text}");
        }
        for new in ["-tls1_2", "-tls1_3"] {
            let (ok, text) = handshake(addr, new).await;
            assert!(ok, "{new} handshake failed:\n{text}");
        }

        let c = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(20))
            .add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).unwrap())
            .https_only(true)
            .build()
            .unwrap();
        let url = format!("https://localhost:{}/mcp", addr.port());
        let alice = token("alice", "mcp");
        let resp = post(&c, &url, &initialize(), None).bearer_auth(&alice).send().await.unwrap();
        assert_eq!(resp.version(), http::Version::HTTP_2);
        let sid = resp.headers()["mcp-session-id"].to_str().unwrap().to_owned();
        response_message(resp).await;
        let resp = post(&c, &url, &call(2, "whoami", json!({})), Some(&sid)).bearer_auth(&alice).send().await.unwrap();
        let seen: Value = serde_json::from_str(tool_text(&response_message(resp).await)).unwrap();
        assert!(seen["headers"].get("authorization").is_none(), "{seen}");
        let resp = post(&c, &url, &initialize(), None).send().await.unwrap();
        assert_eq!(resp.status(), 401);
    })
    .await;
}

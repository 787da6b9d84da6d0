//! TLS on the data listener: rustls with a private CA, HTTP/2 and HTTP/1.1 on
//! one port chosen by ALPN, and h2c (prior knowledge) on a plain port.

use std::time::Duration;

use http::Version;
use serde_json::json;

use crate::common::process::Demo;
use crate::common::rpc::{PROTOCOL, initialize, tool_text};
use crate::common::{KeyFile, Setup, bounded, key};

/// A self-signed certificate for `localhost`, written as PEM files.
struct Cert {
    dir: tempfile::TempDir,
    pem: String,
}

impl Cert {
    fn new() -> Self {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tls.crt"), ck.cert.pem()).unwrap();
        std::fs::write(dir.path().join("tls.key"), ck.signing_key.serialize_pem()).unwrap();
        Self { pem: ck.cert.pem(), dir }
    }

    fn server_line(&self) -> String {
        let d = self.dir.path().display();
        format!("tls: {{cert_file: \"{d}/tls.crt\", key_file: \"{d}/tls.key\"}}")
    }

    fn client(&self, http1_only: bool) -> reqwest::Client {
        let mut b = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(20))
            .add_root_certificate(reqwest::Certificate::from_pem(self.pem.as_bytes()).unwrap())
            .https_only(true);
        if http1_only {
            b = b.http1_only();
        }
        b.build().unwrap()
    }
}

/// One session over `client`: initialize (returning the gateway's id and the
/// HTTP version used) and a whoami call on the same session.
async fn session_over(client: &reqwest::Client, url: &str) -> (Version, String) {
    let resp = client
        .post(url)
        .header("accept", "application/json, text/event-stream")
        .json(&initialize())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let version = resp.version();
    let sid = resp.headers()["mcp-session-id"].to_str().unwrap().to_owned();
    let call =
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "whoami", "arguments": {}}});
    let resp = client
        .post(url)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", &sid)
        .header("mcp-protocol-version", PROTOCOL)
        .json(&call)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), version, "one client, one negotiated protocol");
    let msg: serde_json::Value = resp.json().await.unwrap();
    let who: serde_json::Value = serde_json::from_str(tool_text(&msg)).unwrap();
    assert_eq!(who["server"], "tls-a");
    (version, sid)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_serves_h2_and_http11_on_one_port_by_alpn() {
    bounded(async {
        let demo = Demo::start("tls-a").await;
        let keys = KeyFile::new(&[key(1)]);
        let cert = Cert::new();
        let gw = Setup::new(&keys).backend("tls-a", &demo.url).server(&cert.server_line()).start().await;
        let url = format!("https://localhost:{}/mcp", gw.running.data_addr().port());

        let (v2, sid2) = session_over(&cert.client(false), &url).await;
        assert_eq!(v2, Version::HTTP_2, "ALPN should pick h2 when the client offers it");
        let (v1, sid1) = session_over(&cert.client(true), &url).await;
        assert_eq!(v1, Version::HTTP_11, "an HTTP/1.1-only client is served on the same port");
        assert_ne!(sid1, sid2);

        // Plain HTTP to a TLS port is refused at the handshake, not served.
        let plain = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(5)).build().unwrap();
        let r = plain.get(format!("http://127.0.0.1:{}/health", gw.running.data_addr().port())).send().await;
        assert!(r.is_err() || !r.unwrap().status().is_success());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_port_serves_h2c_with_prior_knowledge() {
    bounded(async {
        let demo = Demo::start("tls-a").await;
        let keys = KeyFile::new(&[key(2)]);
        let gw = Setup::new(&keys).backend("tls-a", &demo.url).start().await;
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(20))
            .http2_prior_knowledge()
            .build()
            .unwrap();
        let (v, _) = session_over(&client, &gw.mcp).await;
        assert_eq!(v, Version::HTTP_2);
    })
    .await;
}

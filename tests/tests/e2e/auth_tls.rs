//! The official Python SDK client through the gateway with authentication on: a
//! bearer token (an HS256 JWT) over TLS with a private CA this test makes. A full
//! session with tool calls works, and the backend never sees the client's token.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use mcp_gateway_tests::{BackendOptions, GatewaySpec, OrFail, PyBackend, SessionKey, TestGateway, py_client};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use serde_json::json;

use crate::common::CLIENT_LIMIT;

const ISSUER: &str = "https://issuer.e2e";
const RESOURCE: &str = "https://localhost/mcp";
const SECRET: &str = "e2e-hs256-secret-with-at-least-32-bytes";

/// A private CA and a `localhost` certificate it signed, written under `dir`:
/// (CA file, server certificate file, server key file).
fn private_ca(dir: &Path) -> (String, String, String) {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "mcp-gateway e2e test CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_owned()]).unwrap().signed_by(&leaf_key, &ca).unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    (write("ca.pem", &ca.pem()), write("tls.crt", &leaf.pem()), write("tls.key", &leaf_key.serialize_pem()))
}

fn bearer(sub: &str) -> String {
    mcp_gateway::auth::crypto::install();
    let exp = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() + 600;
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("e2e".into());
    let claims = json!({"iss": ISSUER, "aud": RESOURCE, "sub": sub, "exp": exp, "scope": "mcp"});
    encode(&header, &claims, &EncodingKey::from_secret(SECRET.as_bytes())).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn python_sdk_over_tls_with_a_bearer_token() {
    let key = SessionKey::generate().or_fail();
    let dir = key.path().parent().unwrap().to_path_buf();
    let (ca, cert, tls_key) = private_ca(&dir);
    let secret = dir.join("hs.secret");
    std::fs::write(&secret, SECRET).unwrap();
    let backends = PyBackend::spawn_all(vec![BackendOptions::streamable("b1")]).await.or_fail();
    let mut spec = GatewaySpec::new(&key).with_backends(&backends);
    spec.extra_yaml = format!(
        "auth:\n  enabled: true\n  resource: {RESOURCE}\n  authorization_servers: [{ISSUER}]\n  issuers:\n    \
         - issuer: {ISSUER}\n      keys:\n        - {{kid: e2e, algorithm: HS256, secret_file: \"{}\"}}\n",
        secret.display()
    );
    let tls = format!("server:\n  tls: {{cert_file: \"{cert}\", key_file: \"{tls_key}\"}}\n");
    let yaml = spec.yaml().replacen("server:\n", &tls, 1);
    let gateway = TestGateway::start_yaml(&yaml).await.or_fail();
    gateway.wait_ready(Duration::from_secs(15)).await.or_fail();
    let url = format!("https://localhost:{}/mcp", gateway.data_addr().port());

    let token = bearer("py-client");
    let auth = format!("Authorization: Bearer {token}");
    let argv = ["--url", &url, "--scenario", "many-calls", "--calls", "5", "--header", &auth, "--ca-file", &ca];
    let out = py_client(&argv.map(str::to_owned), CLIENT_LIMIT)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", backends[0].stderr_tail()));
    let tools = out.get("tools").as_array().cloned().unwrap_or_default();
    assert!(tools.contains(&json!("whoami")), "{:?}", out.0);
    let calls = out.get("calls").as_array().cloned().unwrap_or_default();
    assert_eq!(calls.len(), 5, "{:?}", out.0);
    for call in &calls {
        assert_eq!(call["server"], "b1", "{call}");
        // No token passthrough: the backend saw no Authorization header at all.
        assert_eq!(call["authorization"], serde_json::Value::Null, "{call}");
    }
    assert_eq!(out.client_session_ids().len(), 1, "one session for the whole run: {:?}", out.0);

    // Every request carried the token; it was verified once and then served from the cache.
    let metrics_url = format!("http://{}/metrics", gateway.admin_addr());
    let metrics = reqwest::Client::builder().no_proxy().build().unwrap().get(metrics_url).send().await.unwrap();
    let text = metrics.text().await.unwrap();
    let sample = |name: &str| -> f64 {
        text.lines().find_map(|l| l.strip_prefix(name)).and_then(|v| v.trim().parse().ok()).unwrap_or(0.0)
    };
    assert_eq!(sample("mcp_auth_verdict_cache_total{outcome=\"miss\"}"), 1.0, "{text}");
    assert!(sample("mcp_auth_verdict_cache_total{outcome=\"hit\"}") >= 7.0, "{text}");
}

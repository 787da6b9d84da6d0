//! Shared pieces of the auth tests: the fixture keys, token minting, a local
//! JWKS server that counts its fetches, and gateways started with `auth:` and
//! `security:` sections on top of the common [`Setup`].

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use reqwest::Response;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::common::{Gw, Setup};

/// The `iss` of test tokens.
pub const ISSUER: &str = "https://issuer.test";
/// The gateway's resource URI (the required `aud`).
pub const RESOURCE: &str = "https://mcp.test/mcp";
/// Where 401s point clients.
pub const METADATA_URL: &str = "https://mcp.test/.well-known/oauth-protected-resource/mcp";
/// The HS256 test secret (32+ bytes).
pub const HS_SECRET: &str = "an-hs256-test-secret-of-40-bytes-length!";

/// A fixture file under `tests/fixtures/jwt/`.
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/jwt").join(name)
}

fn pem(name: &str) -> Vec<u8> {
    std::fs::read(fixture(name)).unwrap()
}

/// Seconds since the epoch.
pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// Valid claims for `sub`, expiring in ten minutes.
pub fn claims(sub: &str) -> Value {
    json!({"iss": ISSUER, "aud": RESOURCE, "sub": sub, "exp": now() + 600, "iat": now(), "scope": "mcp"})
}

/// Sign `claims` with the fixture key of `alg` (`rsa2.key` when `kid` starts with "rsa2").
pub fn mint(alg: Algorithm, kid: Option<&str>, claims: &Value) -> String {
    mcp_gateway::auth::crypto::install();
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    let key = match alg {
        Algorithm::HS256 => EncodingKey::from_secret(HS_SECRET.as_bytes()),
        Algorithm::RS256 if kid.is_some_and(|k| k.starts_with("rsa2")) => {
            EncodingKey::from_rsa_pem(&pem("rsa2.key")).unwrap()
        }
        Algorithm::RS256 => EncodingKey::from_rsa_pem(&pem("rsa.key")).unwrap(),
        Algorithm::ES256 => EncodingKey::from_ec_pem(&pem("ec.key")).unwrap(),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(&pem("ed.key")).unwrap(),
        other => panic!("no fixture key for {other:?}"),
    };
    encode(&header, claims, &key).unwrap()
}

/// A valid HS256 token for `sub` with `scope`.
pub fn token(sub: &str, scope: &str) -> String {
    let mut c = claims(sub);
    c["scope"] = json!(scope);
    mint(Algorithm::HS256, Some("hs"), &c)
}

/// The public JWK of a fixture RSA key (`rsa` or `rsa2`) under `kid`.
pub fn rsa_jwk(key: &str, kid: &str) -> Value {
    mcp_gateway::auth::crypto::install();
    let private = EncodingKey::from_rsa_pem(&pem(&format!("{key}.key"))).unwrap();
    let mut jwk = Jwk::from_encoding_key(&private, Algorithm::RS256).unwrap();
    jwk.common.key_id = Some(kid.to_owned());
    serde_json::to_value(&jwk).unwrap()
}

/// A local JWKS endpoint whose key set can be swapped, counting fetches.
#[derive(Debug, Clone)]
pub struct JwksServer {
    /// `http://127.0.0.1:PORT/jwks.json`.
    pub url: String,
    fetches: Arc<AtomicUsize>,
    body: Arc<Mutex<String>>,
}

impl JwksServer {
    /// Serve `keys` (JWK objects); the task ends with the test's runtime.
    pub async fn start(keys: Vec<Value>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
        let server = Self { url, fetches: Arc::default(), body: Arc::default() };
        server.set(keys);
        let (fetches, body) = (Arc::clone(&server.fetches), Arc::clone(&server.body));
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let (fetches, body) = (Arc::clone(&fetches), Arc::clone(&body));
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let mut seen = 0;
                    // Read the request head (bounded: 4 KiB, 5 s).
                    let head = async {
                        while seen < buf.len() {
                            match sock.read(&mut buf[seen..]).await {
                                Ok(0) | Err(_) => return false,
                                Ok(n) => seen += n,
                            }
                            if buf[..seen].windows(4).any(|w| w == b"\r\n\r\n") {
                                return true;
                            }
                        }
                        false
                    };
                    if !tokio::time::timeout(Duration::from_secs(5), head).await.unwrap_or(false) {
                        return;
                    }
                    fetches.fetch_add(1, Ordering::SeqCst);
                    let text = body.lock().unwrap().clone();
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
                        text.len()
                    );
                    let _ = sock.write_all(resp.as_bytes()).await;
                    let _ = sock.shutdown().await;
                });
            }
        });
        server
    }

    /// Replace the served key set.
    pub fn set(&self, keys: Vec<Value>) {
        *self.body.lock().unwrap() = json!({ "keys": keys }).to_string();
    }

    /// Requests served so far.
    pub fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }

    /// Wait (at most 5 s) until at least `n` fetches happened.
    pub async fn wait_fetches(&self, n: usize) {
        for _ in 0..250 {
            if self.fetches() >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("JWKS fetched {} times, expected at least {n}", self.fetches());
    }
}

/// Files an auth config refers to, in a temporary directory.
#[derive(Debug)]
pub struct Secrets {
    dir: TempDir,
}

impl Secrets {
    /// `hs.secret`, plus whatever the test writes with [`Secrets::write`].
    pub fn create() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("hs.secret"), format!("{HS_SECRET}\n")).unwrap();
        Self { dir }
    }

    /// Write a file; returns its absolute path as YAML-ready text.
    pub fn write(&self, name: &str, content: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        path.display().to_string()
    }

    /// The HS256 secret file.
    pub fn hs(&self) -> String {
        self.dir.path().join("hs.secret").display().to_string()
    }
}

/// The `auth:` section with static keys of every family (kids hs, rsa, ec, ed), optionally
/// a JWKS `(url, jwks_min_refetch)`, and `extra` lines inside `auth:` (two-space indented YAML).
pub fn auth_yaml(secrets: &Secrets, jwks: Option<(&str, &str)>, extra: &str) -> String {
    let path = |n: &str| fixture(n).display().to_string();
    let jwks = jwks.map(|(u, min)| format!("      jwks_url: {u}\n      jwks_min_refetch: {min}\n")).unwrap_or_default();
    format!(
        "auth:\n  enabled: true\n  resource: {RESOURCE}\n  authorization_servers: [{ISSUER}]\n  leeway: 30s\n\
         {extra}  issuers:\n    - issuer: {ISSUER}\n{jwks}      keys:\n\
         \x20       - {{kid: hs, algorithm: HS256, secret_file: \"{}\"}}\n\
         \x20       - {{kid: rsa, algorithm: RS256, public_key_file: \"{}\"}}\n\
         \x20       - {{kid: ec, algorithm: ES256, public_key_file: \"{}\"}}\n\
         \x20       - {{kid: ed, algorithm: EdDSA, public_key_file: \"{}\"}}\n",
        secrets.hs(),
        path("rsa.pub"),
        path("ec.pub"),
        path("ed.pub"),
    )
}

/// Start a gateway from `setup` plus extra top-level YAML (`auth:`, `security:`).
pub async fn start(setup: &Setup, extra: &str) -> Gw {
    let yaml = format!("{}{extra}", setup.yaml());
    let config = mcp_gateway::config::load_str(&yaml, "auth-test.yaml").unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    let running = mcp_gateway::start(config).await.unwrap();
    Gw {
        mcp: format!("http://{}/mcp", running.data_addr()),
        base: format!("http://{}", running.data_addr()),
        admin: format!("http://{}", running.admin_addr()),
        running,
    }
}

/// Check a 401: the challenge points at the metadata, names the error (if any), and
/// the body is the gateway's JSON-RPC error with `reason`.
pub async fn expect_401(resp: Response, error: Option<&str>, reason: &str) -> Value {
    assert_eq!(resp.status(), 401, "wanted 401 {reason}");
    let challenge = resp.headers().get("www-authenticate").expect("401 without WWW-Authenticate").to_str().unwrap();
    let challenge = challenge.to_owned();
    assert!(challenge.starts_with("Bearer "), "{challenge}");
    assert!(challenge.contains(&format!("resource_metadata=\"{METADATA_URL}\"")), "{challenge}");
    match error {
        Some(e) => assert!(challenge.contains(&format!("error=\"{e}\"")), "{reason}: {challenge}"),
        None => assert!(!challenge.contains("error="), "{challenge}"),
    }
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], -32010, "{body}");
    assert_eq!(body["error"]["data"]["reason"], reason, "{body}");
    body
}

/// `initialize` and `notifications/initialized` with a bearer token; returns the session id.
pub async fn open_session_as(c: &reqwest::Client, url: &str, token: &str) -> String {
    use crate::common::rpc::{initialize, post};
    let resp = post(c, url, &initialize(), None).bearer_auth(token).send().await.unwrap();
    assert_eq!(resp.status(), 200, "initialize failed: {}", resp.text().await.unwrap());
    let sid = resp.headers().get("mcp-session-id").expect("no session id").to_str().unwrap().to_owned();
    let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let resp = post(c, url, &note, Some(&sid)).bearer_auth(token).send().await.unwrap();
    assert_eq!(resp.status(), 202);
    sid
}

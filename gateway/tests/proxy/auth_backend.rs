//! Test fixtures for TLS and policy tests: a private PKI made with rcgen (a CA
//! and leaf certificates as PEM files) and a tiny in-process MCP backend
//! (hyper, plain or TLS with client certificates required) that answers
//! `initialize`, `tools/call`, and the resource and prompt methods the
//! demo server lacks, in JSON or SSE, recording the methods it received.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::net::TcpListener;

/// A CA and the leaf certificates it signs, written as PEM files.
pub struct Pki {
    dir: TempDir,
    issuer: Issuer<'static, KeyPair>,
    /// Path of the CA certificate (PEM).
    pub ca_file: String,
}

/// A leaf certificate's files.
#[derive(Debug, Clone)]
pub struct Leaf {
    /// Certificate (PEM).
    pub cert_file: String,
    /// Private key (PEM).
    pub key_file: String,
    /// Certificate and key in one PEM text (for `reqwest::Identity`).
    pub identity_pem: String,
}

impl Pki {
    /// A fresh CA named `name`.
    pub fn new(name: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, format!("{name} test CA"));
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).unwrap();
        let ca_file = dir.path().join(format!("{name}-ca.pem"));
        std::fs::write(&ca_file, cert.pem()).unwrap();
        Self { issuer: Issuer::new(params, key), ca_file: ca_file.display().to_string(), dir }
    }

    /// A leaf for `dns_names` with subject CN `cn`, usable as a server or a client certificate.
    pub fn leaf(&self, cn: &str, dns_names: &[&str]) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(dns_names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>()).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let write = |suffix: &str, text: &str| {
            let path = self.dir.path().join(format!("{cn}.{suffix}"));
            std::fs::write(&path, text).unwrap();
            path.display().to_string()
        };
        let (cert_pem, key_pem) = (cert.pem(), key.serialize_pem());
        Leaf {
            cert_file: write("crt", &cert_pem),
            key_file: write("key", &key_pem),
            identity_pem: format!("{cert_pem}{key_pem}"),
        }
    }

    /// A rustls server config presenting `leaf` and requiring a client certificate signed by this CA.
    pub fn server_requiring_clients(&self, leaf: &Leaf) -> Arc<rustls::ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for cert in mcp_gateway::http::tls::read_certs(self.ca_file.as_ref()).unwrap() {
            roots.add(cert).unwrap();
        }
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .unwrap();
        let certs = mcp_gateway::http::tls::read_certs(leaf.cert_file.as_ref()).unwrap();
        let key = mcp_gateway::http::tls::read_key(leaf.key_file.as_ref()).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs, key)
            .unwrap();
        Arc::new(config)
    }
}

/// A tiny MCP backend on 127.0.0.1.
#[derive(Debug, Clone)]
pub struct TinyBackend {
    /// Listening address.
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<String>>>,
}

impl TinyBackend {
    /// Serve plain HTTP; `sse` answers every request as one SSE event.
    pub async fn plain(sse: bool) -> Self {
        Self::start(None, sse).await
    }

    /// Serve HTTPS with `tls` (handshakes that fail are dropped).
    pub async fn tls(tls: Arc<rustls::ServerConfig>) -> Self {
        Self::start(Some(tokio_rustls::TlsAcceptor::from(tls)), false).await
    }

    async fn start(tls: Option<tokio_rustls::TlsAcceptor>, sse: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let backend = Self { addr: listener.local_addr().unwrap(), seen: Arc::default() };
        let seen = Arc::clone(&backend.seen);
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let (seen, tls) = (Arc::clone(&seen), tls.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req| answer(req, Arc::clone(&seen), sse));
                    let _ = match tls {
                        None => http1::Builder::new().serve_connection(TokioIo::new(sock), svc).await,
                        Some(acceptor) => {
                            let accept = tokio::time::timeout(std::time::Duration::from_secs(5), acceptor.accept(sock));
                            let Ok(Ok(stream)) = accept.await else { return };
                            http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await
                        }
                    };
                });
            }
        });
        backend
    }

    /// Methods received so far, in order.
    pub fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

async fn answer(
    req: Request<Incoming>,
    seen: Arc<Mutex<Vec<String>>>,
    sse: bool,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let msg: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let method = msg["method"].as_str().unwrap_or("").to_owned();
    seen.lock().unwrap().push(method.clone());
    if msg.get("id").is_none() {
        return Ok(Response::builder().status(202).body(Full::default()).unwrap());
    }
    let result = match method.as_str() {
        "initialize" => json!({"protocolVersion": msg["params"]["protocolVersion"],
            "capabilities": {"tools": {}, "resources": {"subscribe": true}, "prompts": {}},
            "serverInfo": {"name": "tiny", "version": "1"}}),
        "tools/list" => json!({"tools": [{"name": "echo", "inputSchema": {"type": "object"}},
            {"name": "whoami", "inputSchema": {"type": "object"}}]}),
        "tools/call" => json!({"content": [{"type": "text", "text": "tiny"}]}),
        "resources/list" => json!({"resources": [
            {"uri": "file:///docs/a.md", "name": "a"}, {"uri": "file:///secret/key", "name": "key"}]}),
        "resources/templates/list" => json!({"resourceTemplates": [
            {"uriTemplate": "file:///docs/{name}", "name": "docs"},
            {"uriTemplate": "file:///secret/{name}", "name": "secrets"}]}),
        "prompts/list" => json!({"prompts": [{"name": "summarize"}, {"name": "leak"}]}),
        "resources/read" => json!({"contents": [{"uri": msg["params"]["uri"], "text": "content"}]}),
        "resources/subscribe" | "resources/unsubscribe" => json!({}),
        "prompts/get" => json!({"messages": []}),
        _ => {
            let error = json!({"jsonrpc": "2.0", "id": msg["id"], "error": {"code": -32601, "message": "not found"}});
            return Ok(reply(error, sse));
        }
    };
    let mut resp = reply(json!({"jsonrpc": "2.0", "id": msg["id"], "result": result}), sse);
    if method == "initialize" {
        // A stateful backend: the gateway seals this into its own session id.
        let n = seen.lock().unwrap().len();
        resp.headers_mut().insert("mcp-session-id", format!("tiny-{n}").parse().unwrap());
    }
    Ok(resp)
}

fn reply(msg: Value, sse: bool) -> Response<Full<Bytes>> {
    let (content_type, text) = if sse {
        ("text/event-stream", format!("event: message\ndata: {msg}\n\n"))
    } else {
        ("application/json", msg.to_string())
    };
    Response::builder().header("content-type", content_type).body(Full::new(Bytes::from(text))).unwrap()
}

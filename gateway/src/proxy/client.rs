//! The upstream HTTP client: one pooled hyper client shared by all backends
//! (the pool is keyed by scheme + authority, so each backend gets its own
//! idle set), HTTP/1.1 to plain backends and HTTP/2 where TLS ALPN offers it.

use http_body_util::Full;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::config::PoolConfig;

/// Request body type sent upstream: the gateway has already read the body
/// (it must parse the envelope), so it is always whole.
pub type UpstreamBody = Full<bytes::Bytes>;

/// The pooled client.
pub type UpstreamClient = Client<HttpsConnector<HttpConnector>, UpstreamBody>;

/// Build the client from `connection_pool.*`.
pub fn build(cfg: &PoolConfig) -> UpstreamClient {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(cfg.connect_timeout));
    http.set_keepalive(Some(std::time::Duration::from_secs(60)));
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let builder = HttpsConnectorBuilder::new();
    let https = match builder.with_provider_and_native_roots(provider.clone()) {
        Ok(b) => b.https_or_http().enable_http1().enable_http2().wrap_connector(http),
        Err(e) => {
            tracing::warn!(error = %e, "no native CA roots found; https backends will fail verification");
            let tls = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map(|b| b.with_root_certificates(rustls::RootCertStore::empty()).with_no_client_auth());
            match tls {
                Ok(tls) => HttpsConnectorBuilder::new()
                    .with_tls_config(tls)
                    .https_or_http()
                    .enable_http1()
                    .enable_http2()
                    .wrap_connector(http),
                Err(e) => panic!("ring provider supports the default TLS versions: {e}"),
            }
        }
    };
    let idle = if cfg.enabled { cfg.max_idle_conns } else { 0 };
    Client::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(cfg.idle_timeout)
        .pool_max_idle_per_host(idle)
        .build(https)
}

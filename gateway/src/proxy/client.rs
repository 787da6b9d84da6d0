//! The gateway's own HTTP client, for its control-plane requests: JWKS and
//! authorization-server metadata. It trusts the system roots.
//!
//! MCP traffic does not use it: each backend has its own connections
//! (`proxy::pool`), with its `tls:` section applied to it alone.

use http_body_util::Full;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::config::PoolConfig;

/// Request body type sent upstream (also by `proxy::pool`): the gateway has already read
/// the body (it must parse the envelope), so it is always whole.
pub type UpstreamBody = Full<bytes::Bytes>;

/// The pooled client.
pub type UpstreamClient = Client<HttpsConnector<HttpConnector>, UpstreamBody>;

fn connector(cfg: &PoolConfig) -> HttpConnector {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(cfg.connect_timeout));
    http.set_keepalive(Some(std::time::Duration::from_secs(60)));
    http
}

fn pooled(cfg: &PoolConfig, https: HttpsConnector<HttpConnector>) -> UpstreamClient {
    let idle = if cfg.enabled { cfg.max_idle_conns } else { 0 };
    Client::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(cfg.idle_timeout)
        .pool_max_idle_per_host(idle)
        .build(https)
}

/// Build the default client (system roots, no client certificate) from `connection_pool.*`.
pub fn build(cfg: &PoolConfig) -> UpstreamClient {
    let http = connector(cfg);
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
    pooled(cfg, https)
}

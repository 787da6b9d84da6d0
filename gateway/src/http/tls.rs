//! TLS for the data listener: rustls with an explicit crypto provider (ring),
//! TLS 1.2 and 1.3 only, ALPN `h2` then `http/1.1`, certificates from PEM.
//! The `ServerConfig` is built once per load.

use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::TlsConfig;

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// File.
        path: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The file has no certificate / key.
    #[error("{path}: no {what} found in PEM file")]
    Empty {
        /// File.
        path: String,
        /// "certificate" or "private key".
        what: &'static str,
    },
    /// rustls refused the pair.
    #[error("certificate/key rejected: {0}")]
    Rustls(#[from] rustls::Error),
}

/// Build the server config from PEM files.
pub fn server_config(cfg: &TlsConfig) -> Result<Arc<ServerConfig>, TlsError> {
    let read = |p: &std::path::Path| {
        std::fs::read(p).map_err(|source| TlsError::Read { path: p.display().to_string(), source })
    };
    let cert_pem = read(&cfg.cert_file)?;
    let key_pem = read(&cfg.key_file)?;
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|source| TlsError::Read { path: cfg.cert_file.display().to_string(), source })?;
    if certs.is_empty() {
        return Err(TlsError::Empty { path: cfg.cert_file.display().to_string(), what: "certificate" });
    }
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|source| TlsError::Read { path: cfg.key_file.display().to_string(), source })?
        .ok_or_else(|| TlsError::Empty { path: cfg.key_file.display().to_string(), what: "private key" })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

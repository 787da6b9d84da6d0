//! rustls client settings for one backend's `tls:` section: which roots to
//! trust (a private CA bundle, else the system roots), which client
//! certificate to present (mutual TLS), over ring with TLS 1.2 and 1.3 only.
//! ALPN is left to the connector (`proxy::client`), which offers h2 and
//! http/1.1.

use std::sync::Arc;

use hyper_rustls::ConfigBuilderExt;
use rustls::ClientConfig;

use crate::config::BackendTls;
use crate::http::tls::{TlsError, read_certs, read_key, read_roots};

/// Builds the rustls client config for a backend with a `tls:` section.
pub fn client_config(tls: &BackendTls) -> Result<ClientConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
    let builder = match &tls.ca_file {
        Some(ca) => builder.with_root_certificates(read_roots(ca)?),
        None => builder.with_native_roots().map_err(|source| TlsError::Read { path: "system roots".into(), source })?,
    };
    let config = match &tls.client_cert {
        Some((cert, key)) => builder.with_client_auth_cert(read_certs(cert)?, read_key(key)?)?,
        None => builder.with_no_client_auth(),
    };
    Ok(config)
}

/// The client config of an `https://` backend without a `tls:` section: the system roots,
/// no client certificate. Without any usable system root every backend certificate fails
/// verification, which is logged once here and named in each 502's `data.cause`.
pub fn default_client_config() -> ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = match ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
    {
        Ok(b) => b,
        Err(e) => panic!("ring supports TLS 1.2 and 1.3: {e}"),
    };
    match builder.clone().with_native_roots() {
        Ok(b) => b.with_no_client_auth(),
        Err(e) => {
            tracing::warn!(error = %e, "no system CA roots found; https backends without tls.ca_file will fail verification");
            builder.with_root_certificates(rustls::RootCertStore::empty()).with_no_client_auth()
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    struct Pki {
        dir: tempfile::TempDir,
    }

    impl Pki {
        /// A CA and a client certificate it signed, as PEM files.
        fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let ca_key = rcgen::KeyPair::generate().unwrap();
            let mut ca = rcgen::CertificateParams::new(Vec::new()).unwrap();
            ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            let ca_cert = ca.self_signed(&ca_key).unwrap();
            let issuer = rcgen::Issuer::new(ca, ca_key);
            let key = rcgen::KeyPair::generate().unwrap();
            let client = rcgen::CertificateParams::new(vec!["client.test".to_owned()]).unwrap();
            let client = client.signed_by(&key, &issuer).unwrap();
            std::fs::write(dir.path().join("ca.pem"), ca_cert.pem()).unwrap();
            std::fs::write(dir.path().join("client.pem"), client.pem()).unwrap();
            std::fs::write(dir.path().join("client.key"), key.serialize_pem()).unwrap();
            std::fs::write(dir.path().join("other.key"), rcgen::KeyPair::generate().unwrap().serialize_pem()).unwrap();
            std::fs::write(dir.path().join("junk.pem"), "not a certificate\n").unwrap();
            Self { dir }
        }

        fn path(&self, name: &str) -> PathBuf {
            self.dir.path().join(name)
        }
    }

    #[test]
    fn private_ca_with_and_without_a_client_certificate() {
        let pki = Pki::new();
        let plain = BackendTls { ca_file: Some(pki.path("ca.pem")), ..Default::default() };
        let cfg = client_config(&plain).unwrap();
        assert!(!cfg.client_auth_cert_resolver.has_certs());
        let mutual = BackendTls { client_cert: Some((pki.path("client.pem"), pki.path("client.key"))), ..plain };
        let cfg = client_config(&mutual).unwrap();
        assert!(cfg.client_auth_cert_resolver.has_certs());
    }

    #[test]
    fn bad_files_are_named() {
        let pki = Pki::new();
        let err = |tls: BackendTls| client_config(&tls).unwrap_err().to_string();
        let e = err(BackendTls { ca_file: Some(pki.path("junk.pem")), ..Default::default() });
        assert!(e.contains("junk.pem") && e.contains("no certificate"), "{e}");
        let e = err(BackendTls { ca_file: Some(pki.path("nope.pem")), ..Default::default() });
        assert!(e.contains("nope.pem"), "{e}");
        let e = err(BackendTls {
            ca_file: Some(pki.path("ca.pem")),
            client_cert: Some((pki.path("client.pem"), pki.path("junk.pem"))),
            server_name: None,
        });
        assert!(e.contains("junk.pem") && e.contains("private key"), "{e}");
        // A key that does not belong to the certificate is refused up front.
        let e = err(BackendTls {
            ca_file: Some(pki.path("ca.pem")),
            client_cert: Some((pki.path("client.pem"), pki.path("other.key"))),
            server_name: None,
        });
        assert!(e.contains("rejected"), "{e}");
    }
}

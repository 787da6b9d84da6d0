//! TLS for the data listener: rustls with an explicit crypto provider (ring),
//! TLS 1.2 and 1.3 only, ALPN `h2` then `http/1.1`, certificates from PEM,
//! and optional client certificates (`server.tls.client_auth`) verified
//! against `client_ca_file`. The `ServerConfig` is built once per load.
//!
//! The PEM readers here are shared with the upstream side
//! (`proxy::upstream_tls`), so both report unreadable or empty files alike.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

use crate::config::{ClientAuth, TlsConfig};

/// Longest client-certificate common name accepted as a principal subject.
const MAX_COMMON_NAME: usize = 256;

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
    /// A CA certificate could not be used as a trust anchor.
    #[error("{path}: CA certificate rejected: {source}")]
    BadCa {
        /// File.
        path: String,
        /// Cause.
        #[source]
        source: rustls::Error,
    },
    /// The client-certificate verifier could not be built.
    #[error("client certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    /// rustls refused the pair.
    #[error("certificate/key rejected: {0}")]
    Rustls(#[from] rustls::Error),
    /// A backend's TLS settings could not be used.
    #[error("backend {backend}: {source}")]
    Backend {
        /// Backend name.
        backend: String,
        /// Cause.
        #[source]
        source: Box<TlsError>,
    },
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read { path: path.display().to_string(), source })
}

/// Every certificate in a PEM file (at least one).
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|source| TlsError::Read { path: path.display().to_string(), source })?;
    if certs.is_empty() {
        return Err(TlsError::Empty { path: path.display().to_string(), what: "certificate" });
    }
    Ok(certs)
}

/// The first private key in a PEM file.
pub fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read(path)?;
    rustls_pemfile::private_key(&mut pem.as_slice())
        .map_err(|source| TlsError::Read { path: path.display().to_string(), source })?
        .ok_or_else(|| TlsError::Empty { path: path.display().to_string(), what: "private key" })
}

/// A trust store of every certificate in a PEM bundle.
pub fn read_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in read_certs(path)? {
        roots.add(cert).map_err(|source| TlsError::BadCa { path: path.display().to_string(), source })?;
    }
    Ok(roots)
}

/// Build the server config from PEM files.
pub fn server_config(cfg: &TlsConfig) -> Result<Arc<ServerConfig>, TlsError> {
    let certs = read_certs(&cfg.cert_file)?;
    let key = read_key(&cfg.key_file)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
    let builder = match (cfg.client_auth, &cfg.client_ca_file) {
        (ClientAuth::None, _) | (_, None) => builder.with_no_client_auth(),
        (mode, Some(ca)) => {
            let roots = Arc::new(read_roots(ca)?);
            let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider);
            let verifier = if mode == ClientAuth::Optional { verifier.allow_unauthenticated() } else { verifier };
            builder.with_client_cert_verifier(verifier.build()?)
        }
    };
    let mut config = builder.with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The subject common name (the last CN, the most specific) of a DER certificate,
/// if it is a UTF-8, printable, IA5 or BMP string of 1 to 256 characters without
/// control characters. Only called on certificates rustls has verified.
pub fn common_name(cert: &[u8]) -> Option<String> {
    let (_, cert, _) = der(cert, 0x30)?;
    let (_, mut tbs, _) = der(cert, 0x30)?;
    if tbs.first() == Some(&0xa0) {
        tbs = der(tbs, 0xa0)?.2;
    }
    // serialNumber, signature, issuer, validity, then subject.
    let (_, _, rest) = der(tbs, 0x02)?;
    let (_, _, rest) = der(rest, 0x30)?;
    let (_, _, rest) = der(rest, 0x30)?;
    let (_, _, rest) = der(rest, 0x30)?;
    let (_, mut subject, _) = der(rest, 0x30)?;
    let mut found = None;
    while !subject.is_empty() {
        let (_, mut set, rest) = der(subject, 0x31)?;
        subject = rest;
        while !set.is_empty() {
            let (_, attr, rest) = der(set, 0x30)?;
            set = rest;
            let (_, oid, value) = der(attr, 0x06)?;
            if oid == [0x55, 0x04, 0x03] {
                found = Some(value);
            }
        }
    }
    let (tag, raw, _) = der_any(found?)?;
    let text = match tag {
        0x0c | 0x13 | 0x16 => std::str::from_utf8(raw).ok()?.to_owned(),
        0x1e if raw.len() % 2 == 0 => {
            let units: Vec<u16> = raw.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]])).collect();
            String::from_utf16(&units).ok()?
        }
        _ => return None,
    };
    let ok = !text.is_empty() && text.chars().count() <= MAX_COMMON_NAME && !text.chars().any(char::is_control);
    ok.then_some(text)
}

/// One DER element with tag `want`: (tag, contents, rest).
fn der(input: &[u8], want: u8) -> Option<(u8, &[u8], &[u8])> {
    der_any(input).filter(|(tag, _, _)| *tag == want)
}

/// One DER element (single-byte tags, definite lengths up to 4 bytes).
fn der_any(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert_with(dn: &[(rcgen::DnType, &str)]) -> Vec<u8> {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["client.test".to_owned()]).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        for (t, v) in dn {
            params.distinguished_name.push(t.clone(), *v);
        }
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn common_names() {
        let cn = rcgen::DnType::CommonName;
        let org = rcgen::DnType::OrganizationName;
        assert_eq!(common_name(&cert_with(&[(org.clone(), "Acme"), (cn.clone(), "svc-a")])).as_deref(), Some("svc-a"));
        assert_eq!(common_name(&cert_with(&[(cn.clone(), "ünïcode büt")])).as_deref(), Some("ünïcode büt"));
        assert_eq!(common_name(&cert_with(&[(org, "Acme")])), None, "no CN");
        assert_eq!(common_name(&cert_with(&[(cn.clone(), &"x".repeat(300))])), None, "too long");
        assert_eq!(common_name(&cert_with(&[(cn, "a\u{7}b")])), None, "control character");
        // Truncated or garbage input never panics.
        let good = cert_with(&[(rcgen::DnType::CommonName, "svc")]);
        for cut in [0, 1, 2, 10, good.len() / 2, good.len() - 1] {
            assert_eq!(common_name(&good[..cut]), None, "cut at {cut}");
        }
        assert_eq!(common_name(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
    }

    #[test]
    fn der_lengths() {
        assert_eq!(der_any(&[0x04, 0x02, 1, 2, 9]), Some((0x04, &[1u8, 2][..], &[9u8][..])));
        let long: Vec<u8> = [0x04, 0x81, 0x80].into_iter().chain(std::iter::repeat_n(7, 0x80)).collect();
        assert_eq!(der_any(&long).map(|(_, c, r)| (c.len(), r.len())), Some((128, 0)));
        assert_eq!(der_any(&[0x04, 0x80]), None, "indefinite length");
        assert_eq!(der_any(&[0x04, 0x03, 1]), None, "short");
        assert_eq!(der(&[0x04, 0x00], 0x30), None, "wrong tag");
    }

    #[test]
    fn pem_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "no pem here\n").unwrap();
        let e = read_certs(&empty).unwrap_err().to_string();
        assert!(e.contains("empty.pem") && e.contains("no certificate"), "{e}");
        let e = read_key(&empty).unwrap_err().to_string();
        assert!(e.contains("no private key"), "{e}");
        let e = read_roots(&dir.path().join("missing.pem")).unwrap_err().to_string();
        assert!(e.contains("missing.pem"), "{e}");
    }
}

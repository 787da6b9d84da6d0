//! Statically configured verification keys: HMAC secrets (from a file or an
//! environment variable, never empty, at least [`MIN_HMAC_SECRET`] bytes) and
//! RSA / EC / Ed25519 public keys in PEM. Every key is pinned to exactly one
//! algorithm, so `alg: none` and RS256→HS256 confusion cannot select it.

use std::sync::Arc;

use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};

use crate::config::{KeyConfig, KeySource};

/// RFC 7518 §3.2: an HMAC key must be at least as long as the hash (HS256: 32 bytes).
pub const MIN_HMAC_SECRET: usize = 32;

/// Why a configured key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Not an algorithm name the gateway accepts.
    #[error("unknown algorithm {0:?}")]
    UnknownAlgorithm(String),
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// File.
        path: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The environment variable is unset or not UTF-8.
    #[error("environment variable {0} is not set")]
    MissingEnv(String),
    /// The HMAC secret is shorter than [`MIN_HMAC_SECRET`] (or empty).
    #[error("HMAC secret from {origin} has {len} bytes; at least {MIN_HMAC_SECRET} are required")]
    ShortSecret {
        /// File or variable.
        origin: String,
        /// Its length.
        len: usize,
    },
    /// The PEM does not hold a public key of the algorithm's family.
    #[error("not a {family} public key in PEM: {source}")]
    Pem {
        /// "RSA", "EC" or "Ed25519".
        family: &'static str,
        /// Cause.
        #[source]
        source: jsonwebtoken::errors::Error,
    },
}

/// A key ready to verify: its `kid`, its one algorithm, the key itself.
#[derive(Clone)]
pub struct StaticKey {
    /// `kid` to match, if configured.
    pub kid: Option<String>,
    /// The only algorithm this key verifies.
    pub alg: Algorithm,
    /// Key material.
    pub key: Arc<DecodingKey>,
}

impl std::fmt::Debug for StaticKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material (HMAC secrets).
        f.debug_struct("StaticKey").field("kid", &self.kid).field("alg", &self.alg).finish_non_exhaustive()
    }
}

/// Reads environment variables (a trait so tests pass a map instead of mutating the process).
pub trait Env {
    /// The variable's value, if set and UTF-8.
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl<const N: usize> Env for [(&str, &str); N] {
    fn var(&self, name: &str) -> Option<String> {
        self.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned())
    }
}

/// The key family an algorithm verifies with.
pub fn family(alg: Algorithm) -> AlgorithmFamily {
    match alg {
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => AlgorithmFamily::Hmac,
        Algorithm::ES256 | Algorithm::ES384 => AlgorithmFamily::Ec,
        Algorithm::RS256
        | Algorithm::RS384
        | Algorithm::RS512
        | Algorithm::PS256
        | Algorithm::PS384
        | Algorithm::PS512 => AlgorithmFamily::Rsa,
        Algorithm::EdDSA => AlgorithmFamily::Ed,
    }
}

/// Largest key, secret or token file read.
pub const MAX_KEY_FILE: u64 = 1024 * 1024;

/// Reads a key, secret or token file: a regular file of at most [`MAX_KEY_FILE`] bytes
/// (a device such as `/dev/zero` or a FIFO would never end).
pub fn read_file(path: &std::path::Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read as _;
    let file = std::fs::File::open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file"));
    }
    if meta.len() > MAX_KEY_FILE {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, format!("larger than {MAX_KEY_FILE} bytes")));
    }
    let mut out = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(MAX_KEY_FILE).read_to_end(&mut out)?;
    Ok(out)
}

/// Parses an algorithm name as written in config and in JWT headers.
pub fn algorithm(name: &str) -> Result<Algorithm, KeyError> {
    name.parse::<Algorithm>().map_err(|_| KeyError::UnknownAlgorithm(name.to_owned()))
}

/// A secret without one trailing line ending (files written by `echo` end in `\n`).
pub fn trim_secret(bytes: &[u8]) -> &[u8] {
    let bytes = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    bytes.strip_suffix(b"\r").unwrap_or(bytes)
}

/// A public key for `alg` (RS*/PS* → RSA, ES* → EC, EdDSA → Ed25519) from PEM.
pub fn public_key(alg: &str, pem: &[u8]) -> Result<DecodingKey, KeyError> {
    let alg = algorithm(alg)?;
    let (family, parsed) = match family(alg) {
        AlgorithmFamily::Rsa => ("RSA", DecodingKey::from_rsa_pem(pem)),
        AlgorithmFamily::Ec => ("EC", DecodingKey::from_ec_pem(pem)),
        AlgorithmFamily::Ed => ("Ed25519", DecodingKey::from_ed_pem(pem)),
        // HS* keys are secrets, never PEM; the schema never routes them here.
        AlgorithmFamily::Hmac => return Err(KeyError::UnknownAlgorithm(format!("{alg:?} with a public key"))),
    };
    parsed.map_err(|source| KeyError::Pem { family, source })
}

/// Loads one configured key, reading files and `env` now.
pub fn load(cfg: &KeyConfig, env: &dyn Env) -> Result<StaticKey, KeyError> {
    let alg = algorithm(&cfg.algorithm)?;
    let read = |path: &std::path::Path| {
        read_file(path).map_err(|source| KeyError::Read { path: path.display().to_string(), source })
    };
    let key = match &cfg.source {
        KeySource::PublicKeyFile(path) => public_key(&cfg.algorithm, &read(path)?)?,
        KeySource::SecretFile(path) => hmac(&read(path)?, &path.display().to_string())?,
        KeySource::SecretEnv(name) => {
            let value = env.var(name).ok_or_else(|| KeyError::MissingEnv(name.clone()))?;
            hmac(value.as_bytes(), &format!("${name}"))?
        }
    };
    Ok(StaticKey { kid: cfg.kid.clone(), alg, key: Arc::new(key) })
}

fn hmac(raw: &[u8], origin: &str) -> Result<DecodingKey, KeyError> {
    let secret = trim_secret(raw);
    if secret.len() < MIN_HMAC_SECRET {
        return Err(KeyError::ShortSecret { origin: origin.to_owned(), len: secret.len() });
    }
    Ok(DecodingKey::from_secret(secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    const RSA_PUB: &str = include_str!("../../tests/fixtures/jwt/rsa.pub");
    const EC_PUB: &str = include_str!("../../tests/fixtures/jwt/ec.pub");
    const ED_PUB: &str = include_str!("../../tests/fixtures/jwt/ed.pub");

    #[test]
    fn pem_keys_by_family() {
        assert!(public_key("RS256", RSA_PUB.as_bytes()).is_ok());
        assert!(public_key("PS384", RSA_PUB.as_bytes()).is_ok());
        assert!(public_key("ES256", EC_PUB.as_bytes()).is_ok());
        assert!(public_key("EdDSA", ED_PUB.as_bytes()).is_ok());
        assert!(matches!(public_key("ES256", RSA_PUB.as_bytes()), Err(KeyError::Pem { family: "EC", .. })));
        assert!(matches!(public_key("RS256", b"not pem"), Err(KeyError::Pem { .. })));
        assert!(matches!(public_key("none", RSA_PUB.as_bytes()), Err(KeyError::UnknownAlgorithm(_))));
        assert!(matches!(public_key("HS256", RSA_PUB.as_bytes()), Err(KeyError::UnknownAlgorithm(_))));
    }

    #[test]
    fn secrets_from_env_and_files() {
        let cfg = |source| KeyConfig { kid: Some("k".into()), algorithm: "HS256".into(), source };
        let long = "0123456789abcdef0123456789abcdef";
        let env = [("GOOD", long), ("SHORT", "abc"), ("EMPTY", "")];
        let k = load(&cfg(KeySource::SecretEnv("GOOD".into())), &env).unwrap();
        assert_eq!((k.kid.as_deref(), k.alg), (Some("k"), Algorithm::HS256));
        assert!(!format!("{k:?}").contains(long));
        for name in ["SHORT", "EMPTY"] {
            let err = load(&cfg(KeySource::SecretEnv(name.into())), &env).unwrap_err();
            assert!(matches!(err, KeyError::ShortSecret { .. }), "{err}");
        }
        let err = load(&cfg(KeySource::SecretEnv("UNSET".into())), &env).unwrap_err();
        assert!(matches!(err, KeyError::MissingEnv(_)));

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, format!("{long}\n")).unwrap();
        assert!(load(&cfg(KeySource::SecretFile(path.clone())), &env).is_ok());
        std::fs::write(&path, "\n").unwrap();
        assert!(matches!(load(&cfg(KeySource::SecretFile(path)), &env), Err(KeyError::ShortSecret { len: 0, .. })));
        let missing = KeySource::SecretFile(dir.path().join("nope"));
        assert!(matches!(load(&cfg(missing), &env), Err(KeyError::Read { .. })));
        let device = KeySource::SecretFile("/dev/zero".into());
        assert!(matches!(load(&cfg(device), &env), Err(KeyError::Read { .. })));
    }

    #[test]
    fn trailing_newlines() {
        assert_eq!(trim_secret(b"abc\n"), b"abc");
        assert_eq!(trim_secret(b"abc\r\n"), b"abc");
        assert_eq!(trim_secret(b"abc\n\n"), b"abc\n");
        assert_eq!(trim_secret(b""), b"");
    }
}

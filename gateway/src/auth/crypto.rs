//! The JWT signature backend: `jsonwebtoken`'s `CryptoProvider` implemented
//! with `ring`, the crypto library rustls already uses here (one audited
//! implementation, no C toolchain beyond ring's own, no cmake).
//!
//! Compared with the pure-Rust `rust_crypto` backend it verifies RS256 about
//! ten times faster, and it refuses RSA keys under 2048 bits. Each factory
//! also checks that the key's family matches the algorithm, so even a caller
//! that skipped the gateway's own pinning could not verify HS256 with an RSA
//! public key. Signing exists for tests and tools that mint tokens.

use jsonwebtoken::crypto::{CryptoProvider, JwkUtils, JwtSigner, JwtVerifier};
use jsonwebtoken::errors::{ErrorKind, Result, new_error};
use jsonwebtoken::jwk::{EllipticCurve, ThumbprintHash};
use jsonwebtoken::signature::{self, Signer, Verifier};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, DecodingKeyKind, EncodingKey};
use ring::rand::SystemRandom;
use ring::signature::{self as sig, KeyPair as _};
use ring::{digest, hmac};

use super::keys::family;

/// The provider; install it with [`install`] before any JWT is signed or verified.
pub static PROVIDER: CryptoProvider = CryptoProvider {
    signer_factory: new_signer,
    verifier_factory: new_verifier,
    jwk_utils: JwkUtils { extract_rsa_public_key_components, extract_ec_public_key_coordinates, compute_digest },
};

/// Make [`PROVIDER`] the process default (idempotent; the first install wins).
pub fn install() {
    let _ = PROVIDER.install_default();
}

fn hmac_alg(alg: Algorithm) -> hmac::Algorithm {
    match alg {
        Algorithm::HS384 => hmac::HMAC_SHA384,
        Algorithm::HS512 => hmac::HMAC_SHA512,
        _ => hmac::HMAC_SHA256,
    }
}

fn rsa_params(alg: Algorithm) -> &'static sig::RsaParameters {
    match alg {
        Algorithm::RS384 => &sig::RSA_PKCS1_2048_8192_SHA384,
        Algorithm::RS512 => &sig::RSA_PKCS1_2048_8192_SHA512,
        Algorithm::PS256 => &sig::RSA_PSS_2048_8192_SHA256,
        Algorithm::PS384 => &sig::RSA_PSS_2048_8192_SHA384,
        Algorithm::PS512 => &sig::RSA_PSS_2048_8192_SHA512,
        _ => &sig::RSA_PKCS1_2048_8192_SHA256,
    }
}

fn rsa_encoding(alg: Algorithm) -> &'static dyn sig::RsaEncoding {
    match alg {
        Algorithm::RS384 => &sig::RSA_PKCS1_SHA384,
        Algorithm::RS512 => &sig::RSA_PKCS1_SHA512,
        Algorithm::PS256 => &sig::RSA_PSS_SHA256,
        Algorithm::PS384 => &sig::RSA_PSS_SHA384,
        Algorithm::PS512 => &sig::RSA_PSS_SHA512,
        _ => &sig::RSA_PKCS1_SHA256,
    }
}

fn ecdsa(alg: Algorithm) -> (&'static sig::EcdsaVerificationAlgorithm, &'static sig::EcdsaSigningAlgorithm) {
    match alg {
        Algorithm::ES384 => (&sig::ECDSA_P384_SHA384_FIXED, &sig::ECDSA_P384_SHA384_FIXED_SIGNING),
        _ => (&sig::ECDSA_P256_SHA256_FIXED, &sig::ECDSA_P256_SHA256_FIXED_SIGNING),
    }
}

/// Verifies one algorithm with one key.
struct RingVerifier {
    alg: Algorithm,
    key: DecodingKey,
}

impl Verifier<Vec<u8>> for RingVerifier {
    fn verify(&self, msg: &[u8], signature: &Vec<u8>) -> std::result::Result<(), signature::Error> {
        let ok = match family(self.alg) {
            AlgorithmFamily::Hmac => {
                let secret = self.key.try_get_hmac_secret().map_err(signature::Error::from_source)?;
                hmac::verify(&hmac::Key::new(hmac_alg(self.alg), secret), msg, signature)
            }
            AlgorithmFamily::Rsa => match self.key.kind() {
                DecodingKeyKind::SecretOrDer(der) => {
                    sig::UnparsedPublicKey::new(rsa_params(self.alg), der).verify(msg, signature)
                }
                DecodingKeyKind::RsaModulusExponent { n, e } => {
                    sig::RsaPublicKeyComponents { n, e }.verify(rsa_params(self.alg), msg, signature)
                }
            },
            AlgorithmFamily::Ec => {
                sig::UnparsedPublicKey::new(ecdsa(self.alg).0, self.key.as_bytes()).verify(msg, signature)
            }
            AlgorithmFamily::Ed => {
                sig::UnparsedPublicKey::new(&sig::ED25519, self.key.as_bytes()).verify(msg, signature)
            }
        };
        ok.map_err(|_| signature::Error::new())
    }
}

impl JwtVerifier for RingVerifier {
    fn algorithm(&self) -> Algorithm {
        self.alg
    }
}

/// Signs with one algorithm and one key.
struct RingSigner {
    alg: Algorithm,
    key: EncodingKey,
}

impl Signer<Vec<u8>> for RingSigner {
    fn try_sign(&self, msg: &[u8]) -> std::result::Result<Vec<u8>, signature::Error> {
        let rng = SystemRandom::new();
        let fail = |_| signature::Error::new();
        match family(self.alg) {
            AlgorithmFamily::Hmac => {
                let secret = self.key.try_get_hmac_secret().map_err(signature::Error::from_source)?;
                Ok(hmac::sign(&hmac::Key::new(hmac_alg(self.alg), secret), msg).as_ref().to_vec())
            }
            AlgorithmFamily::Rsa => {
                let pair = sig::RsaKeyPair::from_der(self.key.inner()).map_err(|_| signature::Error::new())?;
                let mut out = vec![0; pair.public().modulus_len()];
                pair.sign(rsa_encoding(self.alg), &rng, msg, &mut out).map_err(fail)?;
                Ok(out)
            }
            AlgorithmFamily::Ec => {
                let pair = sig::EcdsaKeyPair::from_pkcs8(ecdsa(self.alg).1, self.key.inner(), &rng)
                    .map_err(|_| signature::Error::new())?;
                Ok(pair.sign(&rng, msg).map_err(fail)?.as_ref().to_vec())
            }
            AlgorithmFamily::Ed => {
                let pair = sig::Ed25519KeyPair::from_pkcs8_maybe_unchecked(self.key.inner())
                    .map_err(|_| signature::Error::new())?;
                Ok(pair.sign(msg).as_ref().to_vec())
            }
        }
    }
}

impl JwtSigner for RingSigner {
    fn algorithm(&self) -> Algorithm {
        self.alg
    }
}

fn new_verifier(alg: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>> {
    if key.family() != family(*alg) {
        return Err(new_error(ErrorKind::InvalidKeyFormat));
    }
    Ok(Box::new(RingVerifier { alg: *alg, key: key.clone() }))
}

fn new_signer(alg: &Algorithm, key: &EncodingKey) -> Result<Box<dyn JwtSigner>> {
    if key.family() != family(*alg) {
        return Err(new_error(ErrorKind::InvalidKeyFormat));
    }
    Ok(Box::new(RingSigner { alg: *alg, key: key.clone() }))
}

fn extract_rsa_public_key_components(der: &[u8]) -> Result<(Vec<u8>, Vec<u8>)> {
    let pair = sig::RsaKeyPair::from_der(der).map_err(|e| new_error(ErrorKind::InvalidRsaKey(e.to_string())))?;
    let components = sig::RsaPublicKeyComponents::<Vec<u8>>::from(pair.public());
    Ok((components.n, components.e))
}

fn extract_ec_public_key_coordinates(pkcs8: &[u8], alg: Algorithm) -> Result<(EllipticCurve, Vec<u8>, Vec<u8>)> {
    let (curve, half) = match alg {
        Algorithm::ES256 => (EllipticCurve::P256, 32),
        Algorithm::ES384 => (EllipticCurve::P384, 48),
        _ => return Err(new_error(ErrorKind::InvalidEcdsaKey)),
    };
    let pair = sig::EcdsaKeyPair::from_pkcs8(ecdsa(alg).1, pkcs8, &SystemRandom::new())
        .map_err(|_| new_error(ErrorKind::InvalidEcdsaKey))?;
    match pair.public_key().as_ref() {
        [4, point @ ..] if point.len() == 2 * half => {
            let (x, y) = point.split_at(half);
            Ok((curve, x.to_vec(), y.to_vec()))
        }
        _ => Err(new_error(ErrorKind::InvalidEcdsaKey)),
    }
}

fn compute_digest(data: &[u8], hash: ThumbprintHash) -> Vec<u8> {
    let alg = match hash {
        ThumbprintHash::SHA256 => &digest::SHA256,
        ThumbprintHash::SHA384 => &digest::SHA384,
        ThumbprintHash::SHA512 => &digest::SHA512,
    };
    digest::digest(alg, data).as_ref().to_vec()
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{Header, Validation, decode, encode};
    use serde_json::{Value, json};

    use super::*;

    const KEYS: [(Algorithm, &str, &str); 6] = [
        (Algorithm::RS256, "rsa.key", "rsa.pub"),
        (Algorithm::PS256, "rsa.key", "rsa.pub"),
        (Algorithm::RS512, "rsa.key", "rsa.pub"),
        (Algorithm::ES256, "ec.key", "ec.pub"),
        (Algorithm::EdDSA, "ed.key", "ed.pub"),
        (Algorithm::HS256, "", ""),
    ];

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/jwt").join(name)).unwrap()
    }

    #[test]
    fn sign_and_verify_every_family() {
        install();
        let secret = b"0123456789abcdef0123456789abcdef";
        let claims = json!({"sub": "a", "exp": 4_000_000_000u64});
        for (alg, private, public) in KEYS {
            let (enc, dec) = match family(alg) {
                AlgorithmFamily::Hmac => (EncodingKey::from_secret(secret), DecodingKey::from_secret(secret)),
                AlgorithmFamily::Rsa => (
                    EncodingKey::from_rsa_pem(&fixture(private)).unwrap(),
                    DecodingKey::from_rsa_pem(&fixture(public)).unwrap(),
                ),
                AlgorithmFamily::Ec => (
                    EncodingKey::from_ec_pem(&fixture(private)).unwrap(),
                    DecodingKey::from_ec_pem(&fixture(public)).unwrap(),
                ),
                AlgorithmFamily::Ed => (
                    EncodingKey::from_ed_pem(&fixture(private)).unwrap(),
                    DecodingKey::from_ed_pem(&fixture(public)).unwrap(),
                ),
            };
            let token = encode(&Header::new(alg), &claims, &enc).unwrap();
            let mut v = Validation::new(alg);
            v.validate_aud = false;
            let got = decode::<Value>(&token, &dec, &v).unwrap_or_else(|e| panic!("{alg:?}: {e}"));
            assert_eq!(got.claims["sub"], "a");
            // One flipped signature bit fails.
            let mut bad = token.clone().into_bytes();
            let last = bad.len() - 2;
            bad[last] = if bad[last] == b'A' { b'B' } else { b'A' };
            assert!(decode::<Value>(&bad, &dec, &v).is_err(), "{alg:?}");
        }
    }

    #[test]
    fn key_family_must_match_the_algorithm() {
        install();
        let rsa = DecodingKey::from_rsa_pem(&fixture("rsa.pub")).unwrap();
        assert!(new_verifier(&Algorithm::HS256, &rsa).is_err());
        assert!(new_verifier(&Algorithm::ES256, &rsa).is_err());
        assert!(new_verifier(&Algorithm::RS256, &rsa).is_ok());
        let (n, e) =
            extract_rsa_public_key_components(EncodingKey::from_rsa_pem(&fixture("rsa.key")).unwrap().inner()).unwrap();
        assert_eq!((n.len(), e.as_slice()), (256, &[1u8, 0, 1][..]));
        let ec = EncodingKey::from_ec_pem(&fixture("ec.key")).unwrap();
        let (curve, x, y) = extract_ec_public_key_coordinates(ec.inner(), Algorithm::ES256).unwrap();
        assert_eq!((curve, x.len(), y.len()), (EllipticCurve::P256, 32, 32));
        assert_eq!(compute_digest(b"abc", ThumbprintHash::SHA256).len(), 32);
    }
}

//! Unit tests of JWT verification: static keys of every family, and the attacks
//! the gateway must refuse (the HTTP-level suite is in `tests/proxy/auth_jwt.rs`).

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{EncodingKey, Header, encode};
use serde_json::json;

use super::*;
use crate::auth::keys::StaticKey;

const ISS: &str = "https://issuer.test";
const AUD: &str = "https://mcp.test/mcp";
const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-hs256";
const RSA_KEY: &str = include_str!("../../tests/fixtures/jwt/rsa.key");
const RSA_PUB: &str = include_str!("../../tests/fixtures/jwt/rsa.pub");
const RSA2_KEY: &str = include_str!("../../tests/fixtures/jwt/rsa2.key");
const EC_KEY: &str = include_str!("../../tests/fixtures/jwt/ec.key");
const EC_PUB: &str = include_str!("../../tests/fixtures/jwt/ec.pub");
const ED_KEY: &str = include_str!("../../tests/fixtures/jwt/ed.key");
const ED_PUB: &str = include_str!("../../tests/fixtures/jwt/ed.pub");

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn claims() -> serde_json::Value {
    json!({"iss": ISS, "aud": AUD, "sub": "alice", "exp": now() + 600, "scope": "mcp tools:read", "groups": ["ops"]})
}

fn key(kid: &str, alg: Algorithm, pem: &str) -> StaticKey {
    let key = match alg {
        Algorithm::HS256 => DecodingKey::from_secret(SECRET),
        a => crate::auth::keys::public_key(&format!("{a:?}"), pem.as_bytes()).unwrap(),
    };
    StaticKey { kid: Some(kid.into()), alg, key: Arc::new(key) }
}

fn issuers() -> Vec<Issuer> {
    let keys = vec![
        key("hs", Algorithm::HS256, ""),
        key("rsa", Algorithm::RS256, RSA_PUB),
        key("ec", Algorithm::ES256, EC_PUB),
        key("ed", Algorithm::EdDSA, ED_PUB),
    ];
    vec![Issuer::new(ISS.into(), &[AUD.into()], 30, keys, None)]
}

fn sign(alg: Algorithm, kid: &str, claims: &serde_json::Value) -> String {
    crate::auth::crypto::install();
    let mut header = Header::new(alg);
    header.kid = Some(kid.into());
    let key = match alg {
        Algorithm::HS256 => EncodingKey::from_secret(SECRET),
        Algorithm::RS256 if kid == "rsa2" => EncodingKey::from_rsa_pem(RSA2_KEY.as_bytes()).unwrap(),
        Algorithm::RS256 => EncodingKey::from_rsa_pem(RSA_KEY.as_bytes()).unwrap(),
        Algorithm::ES256 => EncodingKey::from_ec_pem(EC_KEY.as_bytes()).unwrap(),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(ED_KEY.as_bytes()).unwrap(),
        other => panic!("{other:?}"),
    };
    encode(&header, claims, &key).unwrap()
}

/// A token assembled by hand: any header, any payload, any signature bytes.
fn forge(header: serde_json::Value, payload: &serde_json::Value, sig: &[u8]) -> String {
    let enc = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
    format!("{}.{}.{}", enc(header.to_string().as_bytes()), enc(payload.to_string().as_bytes()), enc(sig))
}

async fn check(token: &str) -> Result<Verified, AuthError> {
    verify(&issuers(), token).await
}

#[tokio::test]
async fn every_key_family_verifies() {
    for (alg, kid) in
        [(Algorithm::HS256, "hs"), (Algorithm::RS256, "rsa"), (Algorithm::ES256, "ec"), (Algorithm::EdDSA, "ed")]
    {
        let v = check(&sign(alg, kid, &claims())).await.unwrap_or_else(|e| panic!("{alg:?}: {e}"));
        assert_eq!((v.issuer.as_str(), v.subject.as_str()), (ISS, "alice"));
        assert_eq!(v.scopes, ["mcp", "tools:read"]);
        assert_eq!(v.claims["groups"], json!(["ops"]));
    }
    let mut scp = claims();
    scp["scp"] = json!(["extra", "mcp"]);
    assert_eq!(check(&sign(Algorithm::HS256, "hs", &scp)).await.unwrap().scopes, ["extra", "mcp", "tools:read"]);
}

#[tokio::test]
async fn alg_none_and_unknown_algorithms() {
    let none = forge(json!({"alg": "none", "typ": "JWT"}), &claims(), b"");
    assert_eq!(check(&none).await.unwrap_err(), AuthError::AlgorithmNotAllowed);
    let none_sig = forge(json!({"alg": "NONE", "kid": "hs"}), &claims(), b"sig");
    assert_eq!(check(&none_sig).await.unwrap_err(), AuthError::AlgorithmNotAllowed);
    let weird = forge(json!({"alg": "HS1", "kid": "hs"}), &claims(), b"sig");
    assert_eq!(check(&weird).await.unwrap_err(), AuthError::AlgorithmNotAllowed);
}

#[tokio::test]
async fn rs256_public_key_as_hmac_secret_is_refused() {
    crate::auth::crypto::install();
    // The classic confusion: sign HS256 with the RSA public key's PEM as the secret.
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("rsa".into());
    let token = encode(&header, &claims(), &EncodingKey::from_secret(RSA_PUB.as_bytes())).unwrap();
    assert_eq!(check(&token).await.unwrap_err(), AuthError::UnknownKey);
    // Even when an issuer has only the RSA key and no kid is given.
    let only_rsa = vec![Issuer::new(ISS.into(), &[AUD.into()], 30, vec![key("rsa", Algorithm::RS256, RSA_PUB)], None)];
    let no_kid =
        encode(&Header::new(Algorithm::HS256), &claims(), &EncodingKey::from_secret(RSA_PUB.as_bytes())).unwrap();
    assert_eq!(verify(&only_rsa, &no_kid).await.unwrap_err(), AuthError::AlgorithmNotAllowed);
}

#[tokio::test]
async fn signatures_and_kids() {
    let good = sign(Algorithm::RS256, "rsa", &claims());
    let (head, _) = good.rsplit_once('.').unwrap();
    let other_sig = sign(Algorithm::RS256, "rsa2", &claims());
    let tampered = format!("{head}.{}", other_sig.rsplit_once('.').unwrap().1);
    assert_eq!(check(&tampered).await.unwrap_err(), AuthError::BadSignature);
    // Signed by a key the gateway does not know, under a kid it does not know.
    assert_eq!(check(&sign(Algorithm::RS256, "rsa2", &claims())).await.unwrap_err(), AuthError::UnknownKey);
    let traversal = forge(json!({"alg": "RS256", "kid": "../../../../etc/passwd"}), &claims(), b"x");
    assert_eq!(check(&traversal).await.unwrap_err(), AuthError::UnknownKey);
    // A kid bound to another algorithm's key does not lend that key.
    let wrong_family = forge(json!({"alg": "ES256", "kid": "rsa"}), &claims(), &[0; 64]);
    assert_eq!(check(&wrong_family).await.unwrap_err(), AuthError::UnknownKey);
}

#[tokio::test]
async fn registered_claims() {
    let t = now();
    let with = |k: &str, v: serde_json::Value| {
        let mut c = claims();
        c[k] = v;
        sign(Algorithm::HS256, "hs", &c)
    };
    let without = |k: &str| {
        let mut c = claims();
        c.as_object_mut().unwrap().remove(k);
        sign(Algorithm::HS256, "hs", &c)
    };
    assert_eq!(check(&with("exp", json!(t - 31))).await.unwrap_err(), AuthError::Expired);
    assert!(check(&with("exp", json!(t - 5))).await.is_ok(), "within the 30 s leeway");
    assert_eq!(check(&with("nbf", json!(t + 120))).await.unwrap_err(), AuthError::NotYetValid);
    assert!(check(&with("nbf", json!(t + 5))).await.is_ok());
    assert!(matches!(
        check(&with("exp", json!((t + 600).to_string()))).await,
        Err(AuthError::MissingClaim(_) | AuthError::InvalidClaim(_))
    ));
    assert!(matches!(check(&with("nbf", json!("later"))).await, Err(AuthError::InvalidClaim(_))));
    assert_eq!(check(&with("aud", json!("https://other.test/mcp"))).await.unwrap_err(), AuthError::WrongAudience);
    assert!(check(&with("aud", json!(["https://other.test", AUD]))).await.is_ok());
    assert_eq!(check(&with("iss", json!("https://evil.test"))).await.unwrap_err(), AuthError::WrongIssuer);
    assert!(matches!(check(&with("iss", json!(7))).await, Err(AuthError::InvalidClaim(_))));
    for claim in ["exp", "aud", "sub"] {
        assert!(matches!(check(&without(claim)).await, Err(AuthError::MissingClaim(_))), "{claim}");
    }
    assert!(matches!(check(&without("iss")).await, Err(AuthError::MissingClaim(_))));
    assert!(matches!(check(&with("sub", json!(""))).await, Err(AuthError::InvalidClaim(_))));
    assert!(matches!(
        check(&with("sub", json!(42))).await,
        Err(AuthError::MissingClaim(_) | AuthError::InvalidClaim(_))
    ));
}

#[tokio::test]
async fn malformed_and_crit() {
    for bad in
        ["", "abc", "a.b", "a.b.c.d", "!!.e30.x", "e30.e30.x", ".e30.x", "e30..x", "eyJhbGciOiJIUzI1NiJ9.bm90IGpzb24.x"]
    {
        assert!(check(bad).await.is_err(), "{bad}");
        assert!(inspect(bad).is_err(), "{bad}");
    }
    assert_eq!(check(&"a".repeat(MAX_TOKEN_LEN + 1)).await.unwrap_err(), AuthError::Malformed);
    let crit = forge(json!({"alg": "HS256", "kid": "hs", "crit": ["exp"]}), &claims(), b"x");
    assert_eq!(check(&crit).await.unwrap_err(), AuthError::UnsupportedCrit);
    let (header, iss) = inspect(&sign(Algorithm::ES256, "ec", &claims())).unwrap();
    assert_eq!((header.alg.as_str(), header.kid.as_deref(), iss.as_deref()), ("ES256", Some("ec"), Some(ISS)));
}

//! JWT bearer authentication through the gateway: every key family, the
//! attack suite (each a 401 with the right `WWW-Authenticate`), a bound on
//! JWKS fetches under a storm of unknown `kid`s, rotation without restart, and
//! the token required on every transport and method.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};

use crate::auth_support::{
    JwksServer, Secrets, auth_yaml, claims, expect_401, fixture, mint, open_session_as, rsa_jwk, start, token,
};
use crate::common::process::Demo;
use crate::common::rpc::{call, client, initialize, post, response_message, tool_text};
use crate::common::{KeyFile, Setup, bounded, key};

/// A token assembled by hand: any header, any payload, any signature bytes.
fn forge(header: Value, payload: &Value, sig: &[u8]) -> String {
    let enc = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
    format!("{}.{}.{}", enc(header.to_string().as_bytes()), enc(payload.to_string().as_bytes()), enc(sig))
}

fn with(claim: &str, value: Value) -> Value {
    let mut c = claims("mallory");
    c[claim] = value;
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_of_every_key_family_pass_and_repeat_from_the_cache() {
    bounded(async {
        let demo = Demo::start("a").await;
        let keys = KeyFile::new(&[key(40)]);
        let secrets = Secrets::create();
        let gw = start(&Setup::new(&keys).backend("a", &demo.url), &auth_yaml(&secrets, None, "")).await;
        let c = client();
        for (alg, kid) in
            [(Algorithm::HS256, "hs"), (Algorithm::RS256, "rsa"), (Algorithm::ES256, "ec"), (Algorithm::EdDSA, "ed")]
        {
            let t = mint(alg, Some(kid), &claims("alice"));
            let sid = open_session_as(&c, &gw.mcp, &t).await;
            let resp = post(&c, &gw.mcp, &call(2, "echo", json!({"text": "hi"})), Some(&sid))
                .bearer_auth(&t)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200, "{alg:?}");
            assert_eq!(tool_text(&response_message(resp).await), "hi");
        }
        let hit = "mcp_auth_verdict_cache_total{outcome=\"hit\"}";
        let miss = "mcp_auth_verdict_cache_total{outcome=\"miss\"}";
        let (hits, misses) = (gw.metric(hit).await.unwrap(), gw.metric(miss).await.unwrap());
        // Four tokens, each verified once and then served from the cache (3 requests each).
        assert_eq!(misses, 4.0);
        assert_eq!(hits, 8.0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_attacks_are_401_with_a_challenge_and_fetches_stay_bounded() {
    bounded(async {
        let demo = Demo::start("a").await;
        let jwks = JwksServer::start(vec![rsa_jwk("rsa", "jwks-1")]).await;
        let keys = KeyFile::new(&[key(41)]);
        let secrets = Secrets::create();
        let auth = auth_yaml(&secrets, Some((&jwks.url, "30s")), "");
        let gw = start(&Setup::new(&keys).backend("a", &demo.url), &auth).await;
        jwks.wait_fetches(1).await;
        let c = client();
        let rsa_pub = std::fs::read(fixture("rsa.pub")).unwrap();
        let mut confused = Header::new(Algorithm::HS256);
        confused.kid = Some("rsa".into());
        let good_rsa = mint(Algorithm::RS256, Some("rsa"), &claims("mallory"));
        let other_sig = mint(Algorithm::RS256, Some("rsa2"), &claims("mallory"));
        let resigned = format!("{}.{}", good_rsa.rsplit_once('.').unwrap().0, other_sig.rsplit_once('.').unwrap().1);
        let cases: Vec<(&str, String, &str)> = vec![
            ("alg none", forge(json!({"alg": "none", "typ": "JWT"}), &claims("mallory"), b""), "algorithm_not_allowed"),
            (
                "RS256 key used as an HS256 secret",
                encode(&confused, &claims("mallory"), &EncodingKey::from_secret(&rsa_pub)).unwrap(),
                "unknown_kid",
            ),
            (
                "RS256 key as HS256 secret, no kid",
                encode(&Header::new(Algorithm::HS256), &claims("mallory"), &EncodingKey::from_secret(&rsa_pub))
                    .unwrap(),
                "invalid_signature",
            ),
            ("unknown kid", mint(Algorithm::RS256, Some("nope"), &claims("mallory")), "unknown_kid"),
            (
                "kid path traversal",
                mint(Algorithm::RS256, Some("../../../../etc/passwd"), &claims("mallory")),
                "unknown_kid",
            ),
            ("signature of another key", resigned, "invalid_signature"),
            (
                "expired beyond leeway",
                mint(Algorithm::HS256, Some("hs"), &with("exp", json!(crate::auth_support::now() - 120))),
                "token_expired",
            ),
            (
                "nbf in the future",
                mint(Algorithm::HS256, Some("hs"), &with("nbf", json!(crate::auth_support::now() + 600))),
                "token_not_yet_valid",
            ),
            ("string exp", mint(Algorithm::HS256, Some("hs"), &with("exp", json!("99999999999"))), "missing_claim"),
            (
                "wrong aud",
                mint(Algorithm::HS256, Some("hs"), &with("aud", json!("https://other.test/mcp"))),
                "invalid_audience",
            ),
            (
                "wrong iss",
                mint(Algorithm::HS256, Some("hs"), &with("iss", json!("https://evil.test"))),
                "invalid_issuer",
            ),
            ("malformed", "not-a.jwt".to_owned(), "malformed_token"),
            ("garbage with dots", "a.b.c".to_owned(), "malformed_token"),
        ];
        for (name, bad, reason) in &cases {
            let resp = post(&c, &gw.mcp, &initialize(), None).bearer_auth(bad).send().await.unwrap();
            let body = expect_401(resp, Some("invalid_token"), reason).await;
            // Refused before the body is read (nothing buffered for a stranger): no id to echo.
            assert_eq!(body["id"], Value::Null, "{name}: {body}");
        }
        // A token in the query string is refused even when it is valid.
        let valid = token("alice", "mcp");
        let resp = post(&c, &format!("{}?access_token={valid}", gw.mcp), &initialize(), None).send().await.unwrap();
        expect_401(resp, Some("invalid_request"), "token_in_query").await;
        let resp = post(&c, &gw.mcp, &initialize(), None).send().await.unwrap();
        expect_401(resp, None, "missing_credential").await;

        // A storm of random kids: at most one re-fetch per jwks_min_refetch (30 s here).
        let storm: Vec<_> = (0..40)
            .map(|i| {
                let t = mint(Algorithm::RS256, Some(&format!("random-{i}")), &claims("mallory"));
                let req = post(&c, &gw.mcp, &initialize(), None).bearer_auth(t);
                tokio::spawn(async move { req.send().await.unwrap().status().as_u16() })
            })
            .collect();
        for s in storm {
            assert_eq!(s.await.unwrap(), 401);
        }
        assert!(jwks.fetches() <= 2, "{} JWKS fetches: initial + at most one re-fetch", jwks.fetches());
        assert!(gw.metric("mcp_auth_failures_total{reason=\"unknown_kid\"}").await.unwrap() >= 43.0);
        // The gateway still serves the honest client.
        let sid = open_session_as(&c, &gw.mcp, &valid).await;
        assert!(sid.starts_with("g1."));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_rotation_without_restart() {
    bounded(async {
        let demo = Demo::start("a").await;
        let jwks = JwksServer::start(vec![rsa_jwk("rsa", "k1")]).await;
        let keys = KeyFile::new(&[key(42)]);
        let secrets = Secrets::create();
        let gw =
            start(&Setup::new(&keys).backend("a", &demo.url), &auth_yaml(&secrets, Some((&jwks.url, "200ms")), ""))
                .await;
        jwks.wait_fetches(1).await;
        let c = client();
        let old = mint(Algorithm::RS256, Some("k1"), &claims("alice"));
        open_session_as(&c, &gw.mcp, &old).await;

        // The issuer rotates: k1 is gone, rsa2-k2 is new.
        jwks.set(vec![rsa_jwk("rsa2", "rsa2-k2")]);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let new = mint(Algorithm::RS256, Some("rsa2-k2"), &claims("alice"));
        open_session_as(&c, &gw.mcp, &new).await;
        // The new key set replaced the old one: the cached verdict of the old token is void.
        let resp = post(&c, &gw.mcp, &initialize(), None).bearer_auth(&old).send().await.unwrap();
        expect_401(resp, Some("invalid_token"), "unknown_kid").await;
        assert!(jwks.fetches() >= 2);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_method_and_transport_needs_the_token() {
    bounded(async {
        let demo = Demo::start("a").await;
        let keys = KeyFile::new(&[key(43)]);
        let secrets = Secrets::create();
        let gw = start(&Setup::new(&keys).backend("a", &demo.url), &auth_yaml(&secrets, None, "")).await;
        let c = client();
        let alice = token("alice", "mcp");
        let sid = open_session_as(&c, &gw.mcp, &alice).await;

        // Holding a session id is not authentication.
        let note = json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 1}});
        let resp = post(&c, &gw.mcp, &note, Some(&sid)).send().await.unwrap();
        expect_401(resp, None, "missing_credential").await;
        let resp = post(&c, &gw.mcp, &call(3, "echo", json!({"text": "x"})), Some(&sid)).send().await.unwrap();
        expect_401(resp, None, "missing_credential").await;
        let get = || c.get(&gw.mcp).header("accept", "text/event-stream").header("mcp-session-id", &sid);
        expect_401(get().send().await.unwrap(), None, "missing_credential").await;
        let delete = || c.delete(&gw.mcp).header("mcp-session-id", &sid);
        expect_401(delete().send().await.unwrap(), None, "missing_credential").await;
        let sse = c.get(format!("{}/sse", gw.base)).header("accept", "text/event-stream").send().await.unwrap();
        expect_401(sse, None, "missing_credential").await;
        let legacy = c
            .post(format!("{}/messages?session_id=g1.x", gw.base))
            .header("accept", "application/json, text/event-stream");
        expect_401(legacy.body(initialize().to_string()).send().await.unwrap(), None, "missing_credential").await;

        // With the token the same requests go through.
        let resp = get().bearer_auth(&alice).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        drop(resp);
        let resp = delete().bearer_auth(&alice).send().await.unwrap();
        assert!(resp.status().is_success(), "{}", resp.status());
    })
    .await;
}

//! Timing runs (ignored by default; run them optimized):
//! `cargo test --release -p mcp-gateway --test proxy auth_perf -- --ignored --nocapture --test-threads 1`
//!
//! - the cost of verifying a first-seen token per algorithm, against a repeated (cached) one;
//! - requests per second through the gateway with JWT validation off and on (one repeated
//!   token per client), in one run against the same demo backend.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use jsonwebtoken::Algorithm;
use mcp_gateway::auth::authn::Authenticator;
use mcp_gateway::auth::keys::ProcessEnv;
use serde_json::json;

use crate::auth_support::{Secrets, auth_yaml, claims, mint, open_session_as, start, token};
use crate::common::process::Demo;
use crate::common::rpc::{call, client, open_session, post};
use crate::common::{KeyFile, Setup, key};

/// Mean time per call of `f` over `n` calls.
async fn mean<F, Fut>(n: u32, mut f: F) -> Duration
where
    F: FnMut(u32) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let start = Instant::now();
    for i in 0..n {
        f(i).await;
    }
    start.elapsed() / n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "timing run; use --release --ignored --nocapture"]
#[expect(clippy::print_stdout, reason = "a timing run reports its numbers")]
async fn first_seen_verification_cost_per_algorithm() {
    let secrets = Secrets::create();
    let yaml = auth_yaml(&secrets, None, "");
    let cfg = mcp_gateway::config::load_str(&yaml, "perf.yaml").unwrap();
    let metrics = mcp_gateway::telemetry::Metrics::new();
    let client = mcp_gateway::proxy::client::build(&cfg.connection_pool);
    let authn = Authenticator::build(&cfg.auth, &client, &metrics, &ProcessEnv, Vec::new()).unwrap();
    const N: u32 = 200;
    let mut report = Vec::new();
    for (alg, kid) in
        [(Algorithm::HS256, "hs"), (Algorithm::RS256, "rsa"), (Algorithm::ES256, "ec"), (Algorithm::EdDSA, "ed")]
    {
        // Distinct tokens (a `jti` each): every one is a cache miss and a real signature check.
        let tokens: Vec<String> = (0..N)
            .map(|i| {
                let mut c = claims("perf");
                c["jti"] = json!(format!("{kid}-{i}"));
                mint(alg, Some(kid), &c)
            })
            .collect();
        let first = mean(N, |i| {
            let t = &tokens[i as usize];
            let a = &authn;
            let m = &metrics;
            async move {
                a.authenticate(t, m).await.unwrap();
            }
        })
        .await;
        let cached = mean(N * 10, |_| {
            let t = &tokens[0];
            let a = &authn;
            let m = &metrics;
            async move {
                a.authenticate(t, m).await.unwrap();
            }
        })
        .await;
        report.push(format!("{alg:?}: first-seen {first:?}, cached {cached:?}"));
        assert!(cached * 5 < first || alg == Algorithm::HS256, "{alg:?}: cache {cached:?} vs verify {first:?}");
    }
    println!("{}", report.join("\n"));
}

/// Requests per second of `echo` calls from `clients` concurrent sessions for `for_`.
async fn rate(url: &str, tokens: &[Option<String>], for_: Duration) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + for_;
    let mut tasks = Vec::new();
    for t in tokens {
        let c = client();
        let sid = match t {
            Some(t) => open_session_as(&c, url, t).await,
            None => open_session(&c, url).await,
        };
        let (url, t, done) = (url.to_owned(), t.clone(), Arc::clone(&done));
        tasks.push(tokio::spawn(async move {
            let mut id = 10;
            while Instant::now() < deadline {
                id += 1;
                let mut req = post(&c, &url, &call(id, "echo", json!({"text": "x"})), Some(&sid));
                if let Some(t) = &t {
                    req = req.bearer_auth(t);
                }
                let resp = req.send().await.unwrap();
                assert_eq!(resp.status(), 200);
                resp.bytes().await.unwrap();
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let started = Instant::now();
    for t in tasks {
        t.await.unwrap();
    }
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "timing run; use --release --ignored --nocapture"]
#[expect(clippy::print_stdout, reason = "a timing run reports its numbers")]
async fn requests_per_second_with_jwt_off_and_on() {
    let demo = Demo::spawn(&["--name", "a", "--threads", "1"], &[]).await;
    let keys = KeyFile::new(&[key(70)]);
    let secrets = Secrets::create();
    let off = start(&Setup::new(&keys).backend("a", &demo.url), "").await;
    let on = start(&Setup::new(&keys).backend("a", &demo.url), &auth_yaml(&secrets, None, "")).await;
    const CLIENTS: usize = 8;
    let window = Duration::from_secs(5);
    let hs: Vec<Option<String>> = (0..CLIENTS).map(|i| Some(token(&format!("user-{i}"), "mcp"))).collect();
    let rs: Vec<Option<String>> =
        (0..CLIENTS).map(|i| Some(mint(Algorithm::RS256, Some("rsa"), &claims(&format!("u{i}"))))).collect();
    // Warm up both, then alternate so drift hits both sides alike.
    rate(&off.mcp, &vec![None; CLIENTS], Duration::from_secs(1)).await;
    rate(&on.mcp, &hs, Duration::from_secs(1)).await;
    let a = rate(&off.mcp, &vec![None; CLIENTS], window).await;
    let b = rate(&on.mcp, &rs, window).await;
    let c = rate(&on.mcp, &hs, window).await;
    let d = rate(&off.mcp, &vec![None; CLIENTS], window).await;
    println!(
        "req/s, {CLIENTS} sessions, echo: JWT off {:.0} | on (RS256, repeated) {b:.0} | on (HS256, repeated) {c:.0}",
        (a + d) / 2.0
    );
    assert!(b > 0.5 * (a + d) / 2.0, "JWT validation with the verdict cache should cost far less than half");
}

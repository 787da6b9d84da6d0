//! JWT in the benchmark: keys made for the run, tokens signed here (ring, as the gateway
//! verifies them), the gateway's `auth:` section, and the cost of a first-seen token.
//!
//! The treatments with JWT on carry one repeated token, so they measure what the verdict
//! cache makes of a token after its first use. The first-seen cost is measured end to end:
//! the same gateway answers `N` requests that each carry a new token (a distinct `jti`, so
//! every one is a cache miss and a real signature check) and `N` requests with one repeated
//! token; the difference in the gateway's CPU time (nanoseconds from
//! `/proc/PID/task/*/schedstat`), divided by `N`, is what verifying a new token costs.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, RSA_PKCS1_SHA256, RsaKeyPair};

use crate::bench::load::Request;
use crate::bench::procs::LOAD_CPU;

/// `iss` of every token, and the gateway's trusted issuer.
pub const ISSUER: &str = "https://issuer.bench.invalid";
/// `aud` of every token: the gateway's `auth.resource`.
pub const RESOURCE: &str = "https://mcp.bench.invalid/mcp";
/// Limit for openssl and the curl batches.
const TOOL_LIMIT: Duration = Duration::from_secs(120);

/// A signing algorithm the gateway is configured for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    /// RSA 2048 with SHA-256 (PKCS#1 v1.5), the common IdP default.
    Rs256,
    /// ECDSA P-256 with SHA-256.
    Es256,
}

impl Alg {
    /// JOSE `alg`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Rs256 => "RS256",
            Self::Es256 => "ES256",
        }
    }

    fn kid(self) -> &'static str {
        match self {
            Self::Rs256 => "bench-rsa",
            Self::Es256 => "bench-ec",
        }
    }
}

/// The run's signing keys and the public halves the gateway reads.
#[derive(Debug)]
pub struct JwtKeys {
    rsa: RsaKeyPair,
    ec: EcdsaKeyPair,
    rsa_pub: PathBuf,
    ec_pub: PathBuf,
    rng: SystemRandom,
}

impl JwtKeys {
    /// New RSA 2048 and P-256 keys (openssl) under `dir`.
    pub fn generate(dir: &Path) -> anyhow::Result<Self> {
        let rng = SystemRandom::new();
        let rsa_der = genpkey(dir, "jwt-rsa", &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"])?;
        let ec_der = genpkey(dir, "jwt-ec", &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"])?;
        let rsa = RsaKeyPair::from_pkcs8(&rsa_der).map_err(|e| anyhow::anyhow!("RSA key: {e}"))?;
        let ec = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &ec_der, &rng)
            .map_err(|e| anyhow::anyhow!("EC key: {e}"))?;
        Ok(Self { rsa, ec, rsa_pub: dir.join("jwt-rsa.pub"), ec_pub: dir.join("jwt-ec.pub"), rng })
    }

    /// The gateway's `auth:` section trusting both keys, each pinned to its algorithm.
    pub fn auth_yaml(&self) -> String {
        format!(
            "auth:\n  enabled: true\n  resource: {RESOURCE}\n  authorization_servers: [{ISSUER}]\n  issuers:\n    - issuer: {ISSUER}\n      keys:\n        - {{kid: {}, algorithm: RS256, public_key_file: \"{}\"}}\n        - {{kid: {}, algorithm: ES256, public_key_file: \"{}\"}}\n",
            Alg::Rs256.kid(),
            self.rsa_pub.display(),
            Alg::Es256.kid(),
            self.ec_pub.display()
        )
    }

    /// A token for subject `bench`, valid for an hour, unique by `jti`.
    pub fn mint(&self, alg: Alg, jti: &str) -> anyhow::Result<String> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
        let header = format!(r#"{{"alg":"{}","typ":"JWT","kid":"{}"}}"#, alg.name(), alg.kid());
        let claims = claims_json(now, jti);
        let input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(claims));
        let signature = match alg {
            Alg::Rs256 => {
                let mut sig = vec![0; self.rsa.public().modulus_len()];
                self.rsa
                    .sign(&RSA_PKCS1_SHA256, &self.rng, input.as_bytes(), &mut sig)
                    .map_err(|e| anyhow::anyhow!("RS256 signing: {e}"))?;
                sig
            }
            Alg::Es256 => self
                .ec
                .sign(&self.rng, input.as_bytes())
                .map_err(|e| anyhow::anyhow!("ES256 signing: {e}"))?
                .as_ref()
                .to_vec(),
        };
        Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }
}

/// The claims of a bench token issued at `now`.
pub fn claims_json(now: u64, jti: &str) -> String {
    format!(
        r#"{{"iss":"{ISSUER}","aud":"{RESOURCE}","sub":"bench","scope":"mcp","iat":{now},"nbf":{now},"exp":{},"jti":"{jti}"}}"#,
        now + 3600
    )
}

/// `openssl genpkey` to `<dir>/<name>.key` (PKCS#8 PEM) and `<name>.pub`; returns the PKCS#8 DER.
fn genpkey(dir: &Path, name: &str, args: &[&str]) -> anyhow::Result<Vec<u8>> {
    let key = dir.join(format!("{name}.key"));
    let public = dir.join(format!("{name}.pub"));
    crate::run::output(Command::new("openssl").arg("genpkey").args(args).arg("-out").arg(&key), TOOL_LIMIT)
        .context("openssl genpkey")?;
    crate::run::output(
        Command::new("openssl").arg("pkey").arg("-in").arg(&key).arg("-pubout").arg("-out").arg(&public),
        TOOL_LIMIT,
    )
    .context("openssl pkey -pubout")?;
    pem_der(&std::fs::read_to_string(&key)?).with_context(|| format!("{} is not a PKCS#8 PEM", key.display()))
}

/// The DER inside a `-----BEGIN PRIVATE KEY-----` PEM.
pub fn pem_der(pem: &str) -> anyhow::Result<Vec<u8>> {
    let body: String = pem
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN PRIVATE KEY-----"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    if body.is_empty() {
        bail!("no PRIVATE KEY block");
    }
    Ok(STANDARD.decode(body)?)
}

/// What verifying a first-seen token costs, for one algorithm.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FirstSeen {
    /// The algorithm.
    pub alg: Alg,
    /// Requests in each batch.
    pub requests: u32,
    /// Gateway CPU µs per request, every token new.
    pub new_cpu_us: f64,
    /// Gateway CPU µs per request, one repeated token.
    pub repeated_cpu_us: f64,
}

impl FirstSeen {
    /// Extra gateway CPU per first-seen token, in µs.
    pub fn cost_us(&self) -> f64 {
        self.new_cpu_us - self.repeated_cpu_us
    }
}

/// Sum of the on-CPU nanoseconds of every thread of `pid` (`/proc/PID/task/*/schedstat`).
pub fn cpu_ns(pid: u32) -> anyhow::Result<u64> {
    let mut total = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))?.flatten() {
        if let Ok(text) = std::fs::read_to_string(task.path().join("schedstat")) {
            total += parse_schedstat(&text).with_context(|| format!("bad schedstat of task {:?}", task.file_name()))?;
        }
    }
    Ok(total)
}

/// The first field of a schedstat line: time spent on the CPU, in ns.
pub fn parse_schedstat(text: &str) -> Option<u64> {
    text.split_whitespace().next()?.parse().ok()
}

/// `tokens.len()` sequential POSTs of `request` over one keep-alive connection (curl, on the
/// load CPU), the i-th with `tokens[i]`; fails unless every answer is 200.
pub fn send_batch(request: &Request, tokens: &[String], dir: &Path) -> anyhow::Result<()> {
    let body = dir.join("jwt-body.json");
    std::fs::write(&body, &request.body)?;
    let mut config = String::new();
    for (i, token) in tokens.iter().enumerate() {
        if i > 0 {
            config.push_str("next\n");
        }
        config.push_str(&format!("url = \"{}\"\n", request.url));
        config.push_str(&format!("data-binary = \"@{}\"\n", body.display()));
        let with_token = Request { bearer: Some(token.clone()), ..request.clone() };
        for header in with_token.headers() {
            config.push_str(&format!("header = \"{header}\"\n"));
        }
        config.push_str("output = \"/dev/null\"\nwrite-out = \"%{http_code}\\n\"\nsilent\n");
    }
    let path = dir.join("jwt-batch.curl");
    std::fs::write(&path, config)?;
    let mut command = Command::new("taskset");
    command.args(["-c", &LOAD_CPU.to_string(), "curl", "--config"]).arg(&path);
    let text = crate::run::output(&mut command, TOOL_LIMIT).context("curl batch of JWT requests")?;
    check_statuses(&text, tokens.len())
}

/// Every line of curl's `write-out` is 200, and there are `expected` of them.
pub fn check_statuses(text: &str, expected: usize) -> anyhow::Result<()> {
    let codes: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    if codes.len() != expected {
        bail!("curl reported {} of {expected} responses", codes.len());
    }
    if let Some(bad) = codes.iter().find(|c| **c != "200") {
        bail!("a JWT request was answered {bad}, not 200");
    }
    Ok(())
}

/// Measure [`FirstSeen`] for `alg` against the gateway process `pid` serving `request`.
pub fn first_seen(
    keys: &JwtKeys,
    alg: Alg,
    request: &Request,
    pid: u32,
    n: u32,
    dir: &Path,
) -> anyhow::Result<FirstSeen> {
    let round = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos();
    let fresh: Vec<String> =
        (0..n).map(|i| keys.mint(alg, &format!("{}-{round}-{i}", alg.name()))).collect::<anyhow::Result<_>>()?;
    let one = keys.mint(alg, &format!("{}-{round}-repeated", alg.name()))?;
    let repeated = vec![one; n as usize];
    // Warm the connection path and the repeated token's cache entry first.
    send_batch(request, &repeated[..10.min(repeated.len())], dir)?;
    let per_request = |tokens: &[String]| -> anyhow::Result<f64> {
        let before = cpu_ns(pid)?;
        send_batch(request, tokens, dir)?;
        Ok((cpu_ns(pid)? - before) as f64 / 1000.0 / f64::from(n))
    };
    let new_cpu_us = per_request(&fresh)?;
    let repeated_cpu_us = per_request(&repeated)?;
    Ok(FirstSeen { alg, requests: n, new_cpu_us, repeated_cpu_us })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_carry_what_the_gateway_checks() {
        let c: String = claims_json(1000, "x-1");
        for part in [
            format!(r#""iss":"{ISSUER}""#),
            format!(r#""aud":"{RESOURCE}""#),
            r#""exp":4600"#.to_owned(),
            r#""nbf":1000"#.to_owned(),
            r#""jti":"x-1""#.to_owned(),
        ] {
            assert!(c.contains(&part), "{c} lacks {part}");
        }
    }

    #[test]
    fn pem_and_schedstat_and_statuses_parse() {
        let pem = "-----BEGIN PRIVATE KEY-----\nAAEC\nAw==\n-----END PRIVATE KEY-----\n";
        assert_eq!(pem_der(pem).unwrap(), [0, 1, 2, 3]);
        assert!(pem_der("-----BEGIN PUBLIC KEY-----\nAA==\n").is_err());
        assert_eq!(parse_schedstat("1365733 3183220 3\n"), Some(1_365_733));
        assert_eq!(parse_schedstat(""), None);
        assert!(check_statuses("200\n200\n", 2).is_ok());
        assert!(check_statuses("200\n401\n", 2).unwrap_err().to_string().contains("401"));
        assert!(check_statuses("200\n", 2).is_err());
        let f = FirstSeen { alg: Alg::Rs256, requests: 10, new_cpu_us: 80.0, repeated_cpu_us: 50.0 };
        assert!((f.cost_us() - 30.0).abs() < 1e-9);
    }

    #[test]
    fn tokens_are_three_base64url_parts_signed_by_the_named_key() {
        let dir = tempdir();
        let keys = JwtKeys::generate(&dir).unwrap();
        for alg in [Alg::Rs256, Alg::Es256] {
            let token = keys.mint(alg, "t").unwrap();
            let parts: Vec<&str> = token.split('.').collect();
            assert_eq!(parts.len(), 3, "{token}");
            let header = String::from_utf8(URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
            assert!(header.contains(alg.name()) && header.contains(alg.kid()), "{header}");
            let public_pem = std::fs::read_to_string(if alg == Alg::Rs256 { &keys.rsa_pub } else { &keys.ec_pub });
            assert!(public_pem.unwrap().contains("BEGIN PUBLIC KEY"));
            let signed = format!("{}.{}", parts[0], parts[1]);
            let sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
            let (verify_alg, public): (&dyn ring::signature::VerificationAlgorithm, Vec<u8>) = match alg {
                Alg::Rs256 => (
                    &ring::signature::RSA_PKCS1_2048_8192_SHA256,
                    ring::signature::KeyPair::public_key(&keys.rsa).as_ref().to_vec(),
                ),
                Alg::Es256 => (
                    &ring::signature::ECDSA_P256_SHA256_FIXED,
                    ring::signature::KeyPair::public_key(&keys.ec).as_ref().to_vec(),
                ),
            };
            ring::signature::UnparsedPublicKey::new(verify_alg, public).verify(signed.as_bytes(), &sig).unwrap();
        }
        let yaml = keys.auth_yaml();
        assert!(yaml.contains("algorithm: RS256") && yaml.contains("algorithm: ES256"), "{yaml}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    fn tempdir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("xtask-jwt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}

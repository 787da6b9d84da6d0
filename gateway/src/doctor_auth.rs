//! `doctor`'s checks of `auth.*` and the admin token: what an operator facing
//! "401 invalid_token" or "503 keys unavailable" would otherwise check by hand.
//! Every check reuses the gateway's own code (key loading from `auth::keys`,
//! the JWKS fetch and judgement from `auth::jwks`, the challenge from
//! `auth::metadata`), so doctor sees exactly what a started gateway would.
//!
//! In order: the admin token file; then, with `auth.enabled`: `auth.resource`,
//! `auth.authorization_servers`, the `WWW-Authenticate` challenge and metadata
//! URL clients get, per issuer its claims, static keys and JWKS, and the API keys.

use std::path::Path;

use jsonwebtoken::Algorithm;

use super::{Finding, Verdict};
use crate::auth::cache::digest;
use crate::auth::jwks::{self, JwkError, JwkReport, Skipped};
use crate::auth::keys::{self, KeyError, ProcessEnv};
use crate::auth::metadata::Metadata;
use crate::config::{ApiKeyConfig, AuthConfig, Config, IssuerConfig, KeySource};
use crate::proxy::client::UpstreamClient;

/// Shortest admin token not warned about, in bytes.
const MIN_ADMIN_TOKEN: usize = 16;

/// Collects findings.
#[derive(Debug, Default)]
struct Report(Vec<Finding>);

impl Report {
    fn add(&mut self, verdict: Verdict, check: &str, detail: impl Into<String>) {
        self.0.push(Finding { verdict, check: check.to_owned(), detail: detail.into() });
    }
}

/// Every auth check for `cfg`; JWKS documents are fetched with `client` (the gateway's own).
pub(super) async fn checks(cfg: &Config, client: &UpstreamClient) -> Vec<Finding> {
    let mut r = Report::default();
    if let Some(path) = &cfg.security.admin_token_file {
        admin_token(&mut r, path);
    }
    let auth = &cfg.auth;
    if !auth.enabled {
        if !auth.issuers.is_empty() || !auth.api_keys.is_empty() {
            r.add(
                Verdict::Warn,
                "auth",
                "auth.issuers / auth.api_keys are configured but auth.enabled is false: \
                 every MCP request is accepted without a credential",
            );
        }
        return r.0;
    }
    resource(&mut r, auth);
    authorization_servers(&mut r, auth);
    // The scopes only change the metadata document, not the challenge or its URL.
    let meta = Metadata::new(auth, &cfg.mcp, &[]);
    let challenge = meta.challenge(None, None);
    r.add(
        Verdict::Ok,
        "auth challenge",
        format!(
            "a request without a token gets 401 with `WWW-Authenticate: {}`; clients then read {} \
             (also served at {})",
            challenge.to_str().unwrap_or("Bearer"),
            meta.url(),
            meta.paths().join(", ")
        ),
    );
    for issuer in &auth.issuers {
        issuer_checks(&mut r, auth, issuer, meta.url(), client).await;
    }
    api_keys(&mut r, &auth.api_keys);
    r.0
}

/// `security.admin_token_file`: readable (the gateway does not start otherwise), non-empty, private.
fn admin_token(r: &mut Report, path: &Path) {
    let check = "admin token";
    let raw = match keys::read_file(path) {
        Ok(raw) => raw,
        Err(e) => {
            let msg = format!("cannot read {}: {e}; the gateway will not start until it can", path.display());
            return r.add(Verdict::Fail, check, msg);
        }
    };
    let len = keys::trim_secret(&raw).len();
    let hint = "create one with `openssl rand -hex 32 > admin.token`";
    if len == 0 {
        return r.add(Verdict::Fail, check, format!("{} is empty; {hint}", path.display()));
    }
    if len < MIN_ADMIN_TOKEN {
        return r.add(Verdict::Warn, check, format!("{} holds only {len} bytes; {hint}", path.display()));
    }
    if world_readable(path) {
        let msg = format!("{} is readable by every local user; `chmod 600` it", path.display());
        return r.add(Verdict::Warn, check, msg);
    }
    let msg = format!("{len}-byte token in {}; /admin/* needs `Authorization: Bearer <token>`", path.display());
    r.add(Verdict::Ok, check, msg);
}

#[cfg(unix)]
fn world_readable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o004 != 0)
}

#[cfg(not(unix))]
fn world_readable(_: &Path) -> bool {
    false
}

/// Whether `uri` is `http` to a loopback name (where https is not required).
fn is_local_http(uri: &http::Uri) -> bool {
    uri.scheme_str() == Some("http") && matches!(uri.host(), Some("localhost" | "127.0.0.1" | "[::1]" | "::1"))
}

/// `auth.resource`: an absolute https URL (http only for localhost); tokens carry it in `aud`.
fn resource(r: &mut Report, auth: &AuthConfig) {
    let check = "auth resource";
    let Some(text) = &auth.resource else {
        return r.add(
            Verdict::Fail,
            check,
            "auth.resource is not set; set it to the gateway's public MCP URL, e.g. https://mcp.example.com/mcp \
             (tokens must carry it in `aud`)",
        );
    };
    let uri: Option<http::Uri> = text.parse().ok();
    let Some(uri) = uri.filter(|u| u.authority().is_some() && !text.contains('#')) else {
        return r.add(Verdict::Fail, check, format!("{text:?} is not an absolute URL; use https://host/mcp"));
    };
    let aud = format!("tokens must carry aud = {text:?} (unless their issuer lists its own audiences)");
    match uri.scheme_str() {
        Some("https") => r.add(Verdict::Ok, check, format!("{text}; {aud}")),
        Some("http") if is_local_http(&uri) => {
            r.add(Verdict::Ok, check, format!("{text} (http: localhost only); {aud}"))
        }
        Some("http") => r.add(
            Verdict::Warn,
            check,
            format!(
                "{text} is http: MCP clients require https for a remote resource and may refuse the metadata; \
                 serve the gateway over TLS and use https://; {aud}"
            ),
        ),
        _ => r.add(Verdict::Fail, check, format!("{text:?} is not an http(s) URL; use https://host/mcp")),
    }
}

/// `auth.authorization_servers`: required with issuers, each an https URL.
fn authorization_servers(r: &mut Report, auth: &AuthConfig) {
    let check = "auth authorization_servers";
    let list = &auth.authorization_servers;
    if list.is_empty() {
        if !auth.issuers.is_empty() {
            r.add(
                Verdict::Fail,
                check,
                "none listed but auth.issuers is set: clients cannot discover where to get a token; \
                 list each issuer's URL (usually its `issuer` value)",
            );
        }
        return;
    }
    for s in list {
        let uri: Option<http::Uri> = s.parse().ok();
        let ok = uri.as_ref().is_some_and(|u| u.scheme_str() == Some("https") || is_local_http(u));
        if !ok {
            let msg = format!("{s:?} is not an https URL; clients fetch {s}/.well-known/oauth-authorization-server");
            r.add(Verdict::Warn, check, msg);
        }
    }
    r.add(Verdict::Ok, check, format!("advertised in the metadata: {}", list.join(", ")));
}

/// One issuer: its claims, static keys and JWKS.
async fn issuer_checks(r: &mut Report, auth: &AuthConfig, issuer: &IssuerConfig, meta: &str, client: &UpstreamClient) {
    let check = format!("issuer {}", issuer.issuer);
    let audiences = match issuer.audiences.as_slice() {
        [] => auth.resource.clone().into_iter().collect(),
        list => list.to_vec(),
    };
    let trim = |s: &str| s.trim_end_matches('/').to_owned();
    let listed = auth.authorization_servers.iter().any(|s| trim(s) == trim(&issuer.issuer));
    let claims = format!("tokens need iss = {:?} and aud = one of {audiences:?}", issuer.issuer);
    if listed {
        r.add(Verdict::Ok, &check, format!("{claims}; clients find this issuer in {meta}"));
    } else {
        r.add(
            Verdict::Warn,
            &check,
            format!(
                "{claims}; it is not in auth.authorization_servers, so clients reading {meta} are not sent to it \
                 (fine only if a listed server issues tokens with this iss)"
            ),
        );
    }
    for (i, key) in issuer.keys.iter().enumerate() {
        static_key(r, &check, i, key);
    }
    if let Some(url) = &issuer.jwks_url {
        let allowed: Result<Vec<Algorithm>, KeyError> = issuer.algorithms.iter().map(|a| keys::algorithm(a)).collect();
        match allowed {
            Ok(allowed) => jwks_check(r, &check, url, &allowed, client).await,
            Err(e) => r.add(Verdict::Fail, &format!("{check} jwks"), format!("algorithms: {e}")),
        }
    }
}

/// One static key loads for its pinned algorithm, exactly as at start.
fn static_key(r: &mut Report, check: &str, i: usize, key: &crate::config::KeyConfig) {
    let name = match &key.kid {
        Some(kid) => format!("{check} key {kid:?}"),
        None => format!("{check} key #{i}"),
    };
    let from = match &key.source {
        KeySource::PublicKeyFile(p) | KeySource::SecretFile(p) => p.display().to_string(),
        KeySource::SecretEnv(v) => format!("${v}"),
    };
    match keys::load(key, &ProcessEnv) {
        Ok(k) => r.add(Verdict::Ok, &name, format!("{:?} key from {from} loads", k.alg)),
        Err(e) => {
            let hint = match &e {
                KeyError::Read { .. } => "check the path and that the gateway's user can read it".to_owned(),
                KeyError::MissingEnv(_) => "set it in the gateway's environment (doctor reads the same)".to_owned(),
                KeyError::ShortSecret { .. } => "use 32+ random bytes: `openssl rand -base64 48 > secret`".to_owned(),
                KeyError::Pem { .. } => format!(
                    "expected a PEM public key (-----BEGIN PUBLIC KEY-----) for {}; from a private key: \
                     `openssl pkey -in key.pem -pubout`",
                    key.algorithm
                ),
                KeyError::UnknownAlgorithm(_) => "use HS256/384/512, RS*, PS*, ES256, ES384 or EdDSA".to_owned(),
            };
            r.add(Verdict::Fail, &name, format!("{e}; {hint}"));
        }
    }
}

/// Fetch the issuer's JWKS once and judge each key as the gateway would.
async fn jwks_check(r: &mut Report, check: &str, url: &http::Uri, allowed: &[Algorithm], client: &UpstreamClient) {
    let check = format!("{check} jwks");
    let entries = match jwks::inspect(client, url, allowed).await {
        Ok(entries) => entries,
        Err(e) => {
            let hint = match &e {
                JwkError::Fetch { .. } => "check the URL, DNS, egress firewall and the CA trust of this host",
                JwkError::Status { .. } | JwkError::Parse { .. } => {
                    "jwks_url must serve the JWK set ({\"keys\": [...]}); find it as `jwks_uri` in the issuer's \
                     /.well-known/openid-configuration"
                }
            };
            let msg = format!(
                "{e}; tokens of this issuer that no static key verifies get 503 keys_unavailable \
                 until it is fetched: {hint}"
            );
            return r.add(Verdict::Fail, &check, msg);
        }
    };
    let usable: Vec<&JwkReport> = entries.iter().filter(|e| e.verdict.is_ok()).collect();
    let skipped: Vec<String> =
        entries.iter().filter_map(|e| e.verdict.as_ref().err().map(|why| format!("{} ({why})", describe(e)))).collect();
    if usable.is_empty() {
        let msg = format!(
            "{url}: no usable signing key among {} entr{} [{}]; every token of this issuer gets 401 invalid_token",
            entries.len(),
            if entries.len() == 1 { "y" } else { "ies" },
            skipped.join("; ")
        );
        r.add(Verdict::Fail, &check, msg);
    } else {
        let keys: Vec<String> = usable
            .iter()
            .map(|e| {
                let algs: Vec<String> =
                    e.verdict.as_ref().map(|a| a.iter().map(|a| format!("{a:?}")).collect()).unwrap_or_default();
                format!("{} for {}", describe(e), algs.join("/"))
            })
            .collect();
        let mut msg = format!("{url}: {} usable key(s): {}", usable.len(), keys.join(", "));
        if !skipped.is_empty() {
            msg.push_str(&format!("; skipped: {}", skipped.join("; ")));
        }
        r.add(Verdict::Ok, &check, msg);
    }
    // After the verdict line: each key the issuer's algorithms exclude.
    for e in &entries {
        if matches!(e.verdict, Err(Skipped::AlgNotAllowed | Skipped::FamilyNotAllowed)) {
            r.add(
                Verdict::Warn,
                &check,
                format!(
                    "{} is not used: the issuer's algorithms are {allowed:?}; tokens signed with it get 401 \
                     invalid_token (add its algorithm to auth.issuers[].algorithms if the issuer uses it)",
                    describe(e)
                ),
            );
        }
    }
}

/// `kid "x" (RSA, alg RS256)` for a report line.
fn describe(e: &JwkReport) -> String {
    let kid = e.kid.as_deref().map_or_else(|| "key without kid".to_owned(), |k| format!("kid {k:?}"));
    match &e.alg {
        Some(alg) => format!("{kid} ({}, alg {alg})", e.kty),
        None => format!("{kid} ({})", e.kty),
    }
}

/// `auth.api_keys`: digests of something (not of an empty string), no two alike.
fn api_keys(r: &mut Report, list: &[ApiKeyConfig]) {
    if list.is_empty() {
        return;
    }
    let check = "auth api_keys";
    let hint = "hash the key itself: `printf %s \"$KEY\" | sha256sum` (no trailing newline)";
    let mut bad = false;
    for (i, k) in list.iter().enumerate() {
        let of = if k.sha256 == digest("") {
            Some("the empty string: the key variable was empty when hashed")
        } else if k.sha256 == digest("\n") {
            Some("a lone newline: the key variable was empty when hashed with echo")
        } else {
            None
        };
        if let Some(of) = of {
            bad = true;
            r.add(Verdict::Fail, check, format!("{:?}: sha256 is the digest of {of}; {hint}", k.name));
        }
        if let Some(first) = list[..i].iter().find(|o| o.sha256 == k.sha256) {
            let msg = format!(
                "{:?} has the same digest as {:?}: callers with that key are always {:?}",
                k.name, first.name, first.name
            );
            r.add(Verdict::Warn, check, msg);
        }
    }
    if !bad {
        let names: Vec<&str> = list.iter().map(|k| k.name.as_str()).collect();
        let msg = format!(
            "{} key(s), digests well-formed: {}; send as `X-API-Key` or `Authorization: Bearer`",
            list.len(),
            names.join(", ")
        );
        r.add(Verdict::Ok, check, msg);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::KeyConfig;

    /// An Ed25519 public key (RFC 8037 appendix A).
    const ED_X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
    const ISS: &str = "https://as.example.com";

    /// Answers every connection (at most 8) with `status` and `body`; returns the URL.
    async fn serve(status: u16, body: String) -> http::Uri {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            for _ in 0..8 {
                let Ok((mut stream, _)) = listener.accept().await else { return };
                let mut seen = Vec::new();
                let mut buf = [0u8; 1024];
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") && seen.len() < 16 * 1024 {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let head = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.write_all(body.as_bytes()).await;
            }
        });
        format!("http://{addr}/jwks.json").parse().unwrap()
    }

    /// A config with auth on, one issuer `ISS` (no keys yet) listed as authorization server.
    fn config() -> Config {
        let auth = AuthConfig {
            enabled: true,
            resource: Some("https://mcp.example.com/mcp".into()),
            authorization_servers: vec![format!("{ISS}/")],
            required_scopes: vec!["mcp".into()],
            issuers: vec![IssuerConfig::new(ISS.into())],
            ..AuthConfig::default()
        };
        Config { auth, ..Config::default() }
    }

    async fn report(cfg: &Config) -> String {
        let client = crate::proxy::client::build(&cfg.connection_pool);
        super::super::render(&checks(cfg, &client).await).0
    }

    fn line<'a>(text: &'a str, prefix: &str) -> &'a str {
        text.lines().find(|l| l.starts_with(prefix)).unwrap_or_else(|| panic!("no line {prefix:?} in\n{text}"))
    }

    #[tokio::test]
    async fn jwks_keys_are_listed_and_disallowed_ones_flagged() {
        let doc = serde_json::json!({"keys": [
            {"kty": "OKP", "crv": "Ed25519", "kid": "ed1", "x": ED_X},
            {"kty": "OKP", "crv": "Ed25519", "kid": "ed-ps", "alg": "PS256", "x": ED_X},
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"}
        ]});
        let url = serve(200, doc.to_string()).await;
        let mut cfg = config();
        cfg.auth.issuers[0].jwks_url = Some(url.clone());
        cfg.auth.issuers[0].algorithms = vec!["EdDSA".into()];
        let text = report(&cfg).await;
        let ok = line(&text, &format!("[ok  ] issuer {ISS} jwks: {url}: 1 usable key(s): "));
        assert!(ok.contains(r#"kid "ed1" (OKP) for EdDSA"#), "{text}");
        assert!(ok.contains(r#"kid "hmac" (oct) (unsupported key type"#), "{text}");
        let warn = line(&text, &format!("[warn] issuer {ISS} jwks: "));
        assert!(warn.contains(r#"kid "ed-ps" (OKP, alg PS256) is not used"#), "{text}");
        assert!(warn.contains("[EdDSA]"), "{text}");
        assert!(!text.contains("[FAIL]"), "{text}");
    }

    #[tokio::test]
    async fn jwks_without_a_usable_key_or_unreachable_fails() {
        let mut cfg = config();
        let only_hmac = serde_json::json!({"keys": [{"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"}]});
        cfg.auth.issuers[0].jwks_url = Some(serve(200, only_hmac.to_string()).await);
        let text = report(&cfg).await;
        let fail = line(&text, &format!("[FAIL] issuer {ISS} jwks: "));
        assert!(fail.contains("no usable signing key among 1 entry"), "{text}");
        assert!(fail.contains("401 invalid_token"), "{text}");

        // The OpenID configuration instead of the key set, and a 404.
        let discovery = serde_json::json!({"issuer": ISS, "jwks_uri": format!("{ISS}/keys")});
        for (status, body, want) in
            [(200, discovery.to_string(), "is not a JWK set"), (404, "{}".to_owned(), "answered HTTP 404")]
        {
            cfg.auth.issuers[0].jwks_url = Some(serve(status, body).await);
            let text = report(&cfg).await;
            let fail = line(&text, &format!("[FAIL] issuer {ISS} jwks: "));
            assert!(fail.contains(want) && fail.contains("`jwks_uri`"), "{text}");
        }

        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        cfg.auth.issuers[0].jwks_url = Some(format!("http://127.0.0.1:{port}/jwks").parse().unwrap());
        let text = report(&cfg).await;
        let fail = line(&text, &format!("[FAIL] issuer {ISS} jwks: "));
        assert!(fail.contains("fetching http://127.0.0.1") && fail.contains("503"), "{text}");
    }

    #[tokio::test]
    async fn static_keys_must_load_for_their_algorithm() {
        let dir = tempfile::tempdir().unwrap();
        let rsa = std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/jwt/rsa.pub"));
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "-----BEGIN PUBLIC KEY-----\nbm9wZQ==\n-----END PUBLIC KEY-----\n").unwrap();
        let short = dir.path().join("short.secret");
        std::fs::write(&short, "tooshort\n").unwrap();
        let key = |kid: &str, algorithm: &str, source| KeyConfig {
            kid: Some(kid.into()),
            algorithm: algorithm.into(),
            source,
        };
        let mut cfg = config();
        cfg.auth.issuers[0].keys = vec![
            key("good", "RS256", KeySource::PublicKeyFile(rsa.clone())),
            key("family", "ES256", KeySource::PublicKeyFile(rsa)),
            key("junk", "RS256", KeySource::PublicKeyFile(junk)),
            key("missing", "EdDSA", KeySource::PublicKeyFile(dir.path().join("nope.pem"))),
            key("short", "HS256", KeySource::SecretFile(short)),
            key("env", "HS256", KeySource::SecretEnv("MCP_GATEWAY_DOCTOR_TEST_UNSET_SECRET".into())),
        ];
        let text = report(&cfg).await;
        let issuer = format!("issuer {ISS} key");
        assert!(line(&text, &format!("[ok  ] {issuer} \"good\": ")).contains("RS256 key from "), "{text}");
        let family = line(&text, &format!("[FAIL] {issuer} \"family\": "));
        assert!(family.contains("not a EC public key") && family.contains("for ES256"), "{text}");
        assert!(line(&text, &format!("[FAIL] {issuer} \"junk\": ")).contains("-----BEGIN PUBLIC KEY-----"), "{text}");
        assert!(line(&text, &format!("[FAIL] {issuer} \"missing\": ")).contains("cannot read"), "{text}");
        assert!(line(&text, &format!("[FAIL] {issuer} \"short\": ")).contains("has 8 bytes"), "{text}");
        let env = line(&text, &format!("[FAIL] {issuer} \"env\": "));
        assert!(env.contains("MCP_GATEWAY_DOCTOR_TEST_UNSET_SECRET is not set"), "{text}");
    }

    #[tokio::test]
    async fn resource_servers_and_challenge() {
        let mut cfg = config();
        let text = report(&cfg).await;
        let ok = line(&text, "[ok  ] auth resource: https://mcp.example.com/mcp; ");
        assert!(ok.contains(r#"tokens must carry aud = "https://mcp.example.com/mcp""#), "{text}");
        let url = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp";
        let challenge = line(&text, "[ok  ] auth challenge: ");
        let want =
            format!(r#"`WWW-Authenticate: Bearer resource_metadata="{url}", scope="mcp"`; clients then read {url}"#);
        assert!(challenge.contains(&want), "{text}");
        // The issuer is listed (a trailing slash does not matter).
        let issuer = line(&text, &format!("[ok  ] issuer {ISS}: "));
        assert!(issuer.contains(r#"aud = one of ["https://mcp.example.com/mcp"]"#) && issuer.contains(url), "{text}");

        cfg.auth.resource = Some("http://mcp.example.com/mcp".into());
        cfg.auth.authorization_servers = vec!["https://other.example.com".into()];
        let text = report(&cfg).await;
        assert!(line(&text, "[warn] auth resource: ").contains("is http"), "{text}");
        assert!(line(&text, &format!("[warn] issuer {ISS}: ")).contains("not in auth.authorization_servers"), "{text}");

        cfg.auth.resource = Some("http://localhost:8080/mcp".into());
        cfg.auth.authorization_servers.clear();
        let text = report(&cfg).await;
        assert!(line(&text, "[ok  ] auth resource: ").contains("localhost only"), "{text}");
        assert!(line(&text, "[FAIL] auth authorization_servers: ").contains("cannot discover"), "{text}");

        cfg.auth.resource = None;
        assert!(line(&report(&cfg).await, "[FAIL] auth resource: ").contains("not set"));
        cfg.auth.enabled = false;
        let text = report(&cfg).await;
        assert!(line(&text, "[warn] auth: ").contains("auth.enabled is false"), "{text}");
        assert_eq!(text.lines().count(), 1, "{text}");
    }

    #[tokio::test]
    async fn api_key_digests() {
        let mut cfg = config();
        cfg.auth.issuers.clear();
        let key = |name: &str, sha256| ApiKeyConfig { name: name.into(), sha256, scopes: vec![] };
        cfg.auth.api_keys = vec![key("ci", digest("secret-one")), key("ops", digest("secret-two"))];
        let text = report(&cfg).await;
        assert!(line(&text, "[ok  ] auth api_keys: 2 key(s), digests well-formed: ci, ops").contains("X-API-Key"));
        cfg.auth.api_keys.push(key("empty", digest("")));
        cfg.auth.api_keys.push(key("echo", digest("\n")));
        cfg.auth.api_keys.push(key("copy", digest("secret-one")));
        let text = report(&cfg).await;
        assert!(line(&text, "[FAIL] auth api_keys: \"empty\"").contains("the empty string"), "{text}");
        assert!(line(&text, "[FAIL] auth api_keys: \"echo\"").contains("printf %s"), "{text}");
        assert!(line(&text, "[warn] auth api_keys: \"copy\"").contains("same digest as \"ci\""), "{text}");
        assert!(!text.contains("[ok  ] auth api_keys"), "{text}");
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn admin_token_file() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admin.token");
        let security = crate::config::SecurityConfig { admin_token_file: Some(path.clone()), ..Default::default() };
        let cfg = Config { security, ..Config::default() };
        assert!(line(&report(&cfg).await, "[FAIL] admin token: ").contains("cannot read"));
        std::fs::write(&path, "\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(line(&report(&cfg).await, "[FAIL] admin token: ").contains("is empty"));
        std::fs::write(&path, "abc\n").unwrap();
        assert!(line(&report(&cfg).await, "[warn] admin token: ").contains("only 3 bytes"));
        std::fs::write(&path, format!("{}\n", "a".repeat(64))).unwrap();
        assert!(line(&report(&cfg).await, "[ok  ] admin token: 64-byte token").contains("Authorization: Bearer"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(line(&report(&cfg).await, "[warn] admin token: ").contains("chmod 600"));
    }
}

//! The `auth:` and `security:` sections: a full example, defaults, and every error.

use std::path::Path;

use super::auth_schema::{API_KEY_KEYS, AUTH_KEYS, ISSUER_KEYS, KEY_KEYS, POLICY_KEYS, UPSTREAM_KEYS, WHEN_KEYS};
use super::load_tests::temp_dir;
use super::security_schema::{BUCKET_KEYS, LIMIT_KEYS, RATE_LIMIT_KEYS, SECURITY_KEYS};
use super::*;

const RSA_PUB: &str = include_str!("../../tests/fixtures/jwt/rsa.pub");
const DIGEST: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

fn errors(yaml: &str, dir: &Path) -> Vec<String> {
    let path = dir.join("gw.yaml");
    std::fs::write(&path, yaml).unwrap();
    load_file(&path).unwrap_err().0.iter().map(ToString::to_string).collect()
}

fn files(name: &str) -> std::path::PathBuf {
    let dir = temp_dir(name);
    std::fs::write(dir.join("rsa.pub"), RSA_PUB).unwrap();
    std::fs::write(dir.join("hs.secret"), "0123456789abcdef0123456789abcdef\n").unwrap();
    std::fs::write(dir.join("short.secret"), "short\n").unwrap();
    std::fs::write(dir.join("admin.token"), "an-admin-token-of-some-length\n").unwrap();
    std::fs::write(dir.join("tools.token"), "backend-credential\n").unwrap();
    dir
}

const FULL: &str = r#"
backends:
  - name: tools
    url: http://127.0.0.1:9000/mcp
auth:
  enabled: true
  resource: https://mcp.example.com/mcp
  authorization_servers: [https://auth.example.com]
  required_scopes: mcp
  leeway: 30s
  verdict_cache_size: 500
  issuers:
    - issuer: https://auth.example.com
      audiences: [https://mcp.example.com/mcp, mcp-gateway]
      algorithms: [RS256, ES256]
      jwks_url: http://127.0.0.1:9999/jwks.json
      jwks_refresh: 10m
      jwks_min_refetch: 1m
      keys:
        - kid: r1
          algorithm: RS256
          public_key_file: rsa.pub
        - algorithm: HS256
          secret_file: hs.secret
        - kid: env
          algorithm: HS512
          secret_env: GATEWAY_JWT_SECRET
  api_keys:
    - name: ci
      sha256: 9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08
      scopes: [mcp, tools:read]
  policy:
    - tools: [echo, "get_*"]
    - when: {scope: "mcp:admin", claims: {groups: ops}}
      tools: ["*"]
      resources: ["file:///ops/*"]
  upstream:
    - backend: tools
      bearer_file: tools.token
      claim_headers: {X-Forwarded-User: sub, x-groups: groups}
    - backend: "*"
security:
  allowed_origins: [https://App.example.com/, "null"]
  admin_token_file: admin.token
  rate_limit:
    per_ip: {rate: 50, burst: 100}
    per_principal: {rate: 0.5}
  limits:
    max_headers: 64
    max_header_bytes: 32KiB
    max_json_depth: 32
    max_id_length: 128
    max_connections: 2000
    h2_max_concurrent_streams: 100
    h2_max_pending_resets: 10
"#;

#[test]
fn full_example() {
    let dir = files("auth-full");
    let path = dir.join("gw.yaml");
    std::fs::write(&path, FULL).unwrap();
    let cfg = load_file(&path).unwrap_or_else(|e| panic!("{e}"));
    let a = &cfg.auth;
    assert!(a.enabled);
    assert_eq!(a.resource.as_deref(), Some("https://mcp.example.com/mcp"));
    assert_eq!(a.required_scopes, ["mcp"]);
    assert_eq!((a.leeway.as_secs(), a.verdict_cache_size), (30, 500));
    let i = &a.issuers[0];
    assert_eq!(i.audiences.len(), 2);
    assert_eq!(i.algorithms, ["RS256", "ES256"]);
    assert_eq!(i.jwks_url.as_ref().unwrap().to_string(), "http://127.0.0.1:9999/jwks.json");
    assert_eq!((i.jwks_refresh.as_secs(), i.jwks_min_refetch.as_secs()), (600, 60));
    assert_eq!(i.keys[0].source, KeySource::PublicKeyFile(dir.join("rsa.pub")));
    assert_eq!(i.keys[1].kid, None);
    assert_eq!(i.keys[2].source, KeySource::SecretEnv("GATEWAY_JWT_SECRET".into()));
    assert_eq!(a.api_keys[0].sha256, super::auth_schema::parse_hex32(DIGEST).unwrap());
    assert_eq!(a.policy[0].when, PolicyMatch::default());
    assert_eq!(a.policy[1].when.claims, [("groups".to_owned(), "ops".to_owned())]);
    assert_eq!(a.policy[1].prompts, None);
    assert_eq!(a.upstream[0].claim_headers[0], ("x-forwarded-user".to_owned(), "sub".to_owned()));
    assert_eq!(a.upstream[1].backend, "*");
    let s = &cfg.security;
    assert_eq!(s.allowed_origins, ["https://app.example.com", "null"]);
    assert_eq!(s.per_ip, RateLimit { rate: 50.0, burst: 100 });
    assert_eq!(s.per_principal, RateLimit { rate: 0.5, burst: 1 });
    assert_eq!(s.limits.max_header_bytes, 32 * 1024);
    assert_eq!(s.limits.h2_max_pending_resets, 10);
}

#[test]
fn defaults_are_off() {
    let cfg = load_str("auth:\nsecurity:\n", "t.yaml").unwrap();
    assert_eq!(cfg, Config::default());
    assert!(!cfg.auth.enabled && !cfg.security.per_ip.is_on());
    // Configured but disabled: validated, not required to be complete.
    let cfg = load_str("auth:\n  enabled: false\n  required_scopes: [a, b]\n", "t.yaml").unwrap();
    assert_eq!(cfg.auth.required_scopes, ["a", "b"]);
}

#[test]
fn embedded_default_documents_every_auth_key() {
    let all = [
        AUTH_KEYS,
        ISSUER_KEYS,
        KEY_KEYS,
        API_KEY_KEYS,
        POLICY_KEYS,
        WHEN_KEYS,
        UPSTREAM_KEYS,
        SECURITY_KEYS,
        RATE_LIMIT_KEYS,
        BUCKET_KEYS,
        LIMIT_KEYS,
    ];
    for key in all.iter().flat_map(|k| k.iter()) {
        let pattern = format!("{key}:");
        let found = DEFAULT_CONFIG_YAML.lines().any(|l| {
            l.match_indices(&pattern).any(|(i, _)| {
                let before = l.as_bytes()[..i].last().copied().unwrap_or(b' ');
                !before.is_ascii_alphanumeric() && before != b'_'
            })
        });
        assert!(found, "default.yaml does not show {key}");
    }
}

#[test]
fn enabled_needs_resource_credentials_and_servers() {
    let dir = files("auth-required");
    let errs = errors("auth:\n  enabled: true\n", &dir);
    assert!(errs.iter().any(|e| e.contains("auth.resource: required")), "{errs:?}");
    assert!(
        errs.iter().any(|e| e.contains("at least one of auth.issuers, auth.api_keys or server.tls.client_auth")),
        "{errs:?}"
    );
    let yaml = "auth:\n  enabled: true\n  resource: https://m.test/mcp\n  issuers:\n    - issuer: https://i.test\n      jwks_url: https://i.test/jwks\n";
    let errs = errors(yaml, &dir);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].contains("auth.authorization_servers: required with auth.issuers"), "{errs:?}");
    // Client certificates alone are credentials enough.
    for (name, body) in [("c.crt", "cert"), ("c.key", "key"), ("ca.pem", "ca")] {
        std::fs::write(dir.join(name), body).unwrap();
    }
    let yaml = "server:\n  tls: {cert_file: c.crt, key_file: c.key, client_auth: optional, client_ca_file: ca.pem}\n\
                auth:\n  enabled: true\n  resource: https://m.test/mcp\n";
    std::fs::write(dir.join("gw.yaml"), yaml).unwrap();
    let cfg = load_file(&dir.join("gw.yaml")).unwrap();
    assert!(cfg.auth.enabled && cfg.auth.issuers.is_empty() && cfg.auth.api_keys.is_empty());
}

#[test]
fn bad_values_are_reported_with_keys() {
    let dir = files("auth-bad");
    let yaml = r#"
backends:
  - name: tools
    url: http://127.0.0.1:9000/mcp
auth:
  resource: mcp.example.com/mcp
  leeway: soon
  issuers:
    - issuer: https://i.test
      algorithms: [HS256]
      jwks_url: ftp://i.test/jwks
      keys:
        - algorithm: none
          public_key_file: rsa.pub
        - algorithm: RS256
          secret_file: hs.secret
        - algorithm: HS256
          secret_file: short.secret
        - algorithm: ES256
          public_key_file: rsa.pub
        - algorithm: HS256
          secret_file: hs.secret
          secret_env: X
    - audiences: [x]
  api_keys:
    - name: k
      sha256: my-plain-key
  policy:
    - when: {role: admin}
      tools: ["*"]
    - when: {claims: [a]}
  upstream:
    - backend: nope
    - backend: tools
      claim_headers: {host: sub}
security:
  allowed_origins: [app.example.com]
  rate_limit:
    per_ip: {rate: -1}
  limits:
    max_header_bytes: 1KiB
    max_json_depth: 1
"#;
    let errs = errors(yaml, &dir);
    let expect = [
        "auth.resource: expected an absolute http(s) URI",
        "auth.leeway: invalid duration",
        "auth.issuers[0].algorithms: unsupported for JWKS keys",
        "auth.issuers[0].jwks_url: expected an absolute http:// or https:// URL",
        "auth.issuers[0].keys[0].algorithm: unknown algorithm \"none\"",
        "auth.issuers[0].keys[1].algorithm: RS256 needs exactly one of public_key_file",
        "auth.issuers[0].keys[2].secret_file:",
        "at least 32 are required",
        "auth.issuers[0].keys[3].public_key_file:",
        "not a EC public key",
        "auth.issuers[0].keys[4].algorithm: HS256 needs exactly one of secret_file or secret_env",
        "auth.issuers[1].issuer: required",
        "auth.issuers[1].keys: an issuer needs jwks_url or keys",
        "auth.api_keys[0].sha256: expected 64 hex characters",
        "auth.policy[0].when.role: unknown key",
        "auth.policy[1].when.claims: expected a mapping",
        "auth.upstream[0].backend: no backend named \"nope\"",
        "auth.upstream[1].claim_headers: \"host\" cannot be used",
        "security.allowed_origins: origin \"app.example.com\" must look like",
        "security.rate_limit.per_ip.rate: expected requests per second",
        "security.limits.max_header_bytes: must be between 4KiB and 16MiB",
        "security.limits.max_json_depth: must be between 4 and 100000",
    ];
    for want in expect {
        assert!(errs.iter().any(|e| e.contains(want)), "missing {want:?} in:\n{}", errs.join("\n"));
    }
    // Every error carries a line number.
    assert!(errs.iter().all(|e| !e.contains("gw.yaml:0:")), "{errs:?}");
}

#[test]
fn secret_files_must_exist() {
    let dir = files("auth-missing");
    let yaml = "security:\n  admin_token_file: nope.token\nauth:\n  upstream:\n    - backend: \"*\"\n      bearer_file: nope\n";
    let errs = errors(yaml, &dir);
    assert_eq!(errs.iter().filter(|e| e.contains("file not found")).count(), 2, "{errs:?}");
}

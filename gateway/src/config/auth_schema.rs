//! The `auth:` section of `gateway.yaml`: walked into [`AuthConfig`], every
//! problem reported with its line and key (`security:` is in `security_schema.rs`). Key files are read and parsed here (so a bad PEM is a config
//! error with a position); secrets named by `secret_env` are read at start.

use super::auth::{
    ApiKeyConfig, AuthConfig, IssuerConfig, KeyConfig, KeySource, PolicyMatch, PolicyRule, UpstreamAuth,
};
use super::tree::{Kind, Node};
use super::walk::{Section, Walker, describe};

/// `auth.*` keys.
pub(super) const AUTH_KEYS: &[&str] = &[
    "enabled",
    "resource",
    "authorization_servers",
    "scopes_supported",
    "required_scopes",
    "leeway",
    "verdict_cache_size",
    "issuers",
    "api_keys",
    "policy",
    "upstream",
];
/// `auth.issuers[]` keys.
pub(super) const ISSUER_KEYS: &[&str] =
    &["issuer", "audiences", "algorithms", "jwks_url", "jwks_refresh", "jwks_min_refetch", "keys"];
/// `auth.issuers[].keys[]` keys.
pub(super) const KEY_KEYS: &[&str] = &["kid", "algorithm", "secret_file", "secret_env", "public_key_file"];
/// `auth.api_keys[]` keys.
pub(super) const API_KEY_KEYS: &[&str] = &["name", "sha256", "scopes"];
/// `auth.policy[]` keys.
pub(super) const POLICY_KEYS: &[&str] = &["when", "tools", "prompts", "resources"];
/// `auth.policy[].when` keys.
pub(super) const WHEN_KEYS: &[&str] = &["scope", "subject", "issuer", "claims"];
/// `auth.upstream[]` keys.
pub(super) const UPSTREAM_KEYS: &[&str] = &["backend", "bearer_file", "claim_headers"];
/// Algorithms a static key may be pinned to.
pub(super) const ALGORITHMS: &[&str] =
    &["HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"];

/// Reads `auth`; `backends` are the configured backend names (for `auth.upstream`).
/// `client_certs`: the data listener verifies client certificates, which are credentials too.
pub(super) fn auth(w: &mut Walker<'_>, node: Option<&Node>, backends: &[&str], client_certs: bool) -> AuthConfig {
    let mut a = AuthConfig::default();
    let Some(sec) = w.section(node, "auth", AUTH_KEYS) else { return a };
    w.field(&sec, "enabled", &mut a.enabled, Walker::boolean);
    w.field(&sec, "resource", &mut a.resource, |w, n, k| resource_uri(w, n, k).map(Some));
    w.field(&sec, "authorization_servers", &mut a.authorization_servers, strings);
    w.field(&sec, "scopes_supported", &mut a.scopes_supported, strings);
    w.field(&sec, "required_scopes", &mut a.required_scopes, strings);
    w.field(&sec, "leeway", &mut a.leeway, Walker::delay);
    w.field(&sec, "verdict_cache_size", &mut a.verdict_cache_size, |w, n, k| w.int(n, k, 1, 10_000_000));
    a.issuers = items(w, &sec, "issuers", ISSUER_KEYS, issuer);
    a.api_keys = items(w, &sec, "api_keys", API_KEY_KEYS, api_key);
    a.policy = items(w, &sec, "policy", POLICY_KEYS, policy_rule);
    a.upstream = items(w, &sec, "upstream", UPSTREAM_KEYS, |w, s, n| upstream(w, s, n, backends));
    if a.enabled {
        let pos = node.map_or(super::tree::Pos { line: 0, column: 0 }, |n| n.pos);
        if a.resource.is_none() && sec.get("resource").is_none() {
            let msg =
                "required when auth.enabled is true: the gateway's public MCP URL, e.g. https://mcp.example.com/mcp";
            w.error(pos, "auth.resource", msg);
        }
        if a.issuers.is_empty() && a.api_keys.is_empty() && !client_certs {
            let msg = "auth.enabled needs at least one of auth.issuers, auth.api_keys or server.tls.client_auth";
            w.error(pos, "auth", msg);
        }
        if !a.issuers.is_empty() && a.authorization_servers.is_empty() {
            let msg = "required with auth.issuers (RFC 9728 metadata must name at least one authorization server)";
            w.error(pos, "auth.authorization_servers", msg);
        }
    }
    a
}

/// Walks the sequence `name` of `sec`, reading each mapping item with `read`.
fn items<T>(
    w: &mut Walker<'_>,
    sec: &Section<'_>,
    name: &str,
    keys: &[&str],
    mut read: impl FnMut(&mut Walker<'_>, &Section<'_>, &Node) -> Option<T>,
) -> Vec<T> {
    let key = sec.key(name);
    let Some(node) = sec.get(name) else { return Vec::new() };
    let list = match &node.kind {
        Kind::Seq(list) => list,
        Kind::Invalid => return Vec::new(),
        _ => {
            w.error(node.pos, &key, format!("expected a sequence of `- ...` entries, got {}", describe(node)));
            return Vec::new();
        }
    };
    let mut out = Vec::with_capacity(list.len());
    for (i, item) in list.iter().enumerate() {
        let path = format!("{key}[{i}]");
        if let Some(section) = w.section(Some(item), &path, keys) {
            if let Some(v) = read(w, &section, item) {
                out.push(v);
            }
        }
    }
    out
}

/// A sequence of non-empty strings (a single scalar is accepted as a one-item list).
pub(super) fn strings(w: &mut Walker<'_>, node: &Node, key: &str) -> Option<Vec<String>> {
    match &node.kind {
        Kind::Seq(list) => {
            let mut out = Vec::with_capacity(list.len());
            for (i, item) in list.iter().enumerate() {
                out.push(w.string(item, &format!("{key}[{i}]"))?);
            }
            Some(out)
        }
        _ => w.string(node, key).map(|s| vec![s]),
    }
}

fn required(w: &mut Walker<'_>, sec: &Section<'_>, item: &Node, name: &str, what: &str) -> Option<String> {
    match sec.get(name) {
        Some(n) => w.string(n, &sec.key(name)),
        None => {
            w.error(item.pos, &sec.key(name), format!("required: {what}"));
            None
        }
    }
}

fn resource_uri(w: &mut Walker<'_>, node: &Node, key: &str) -> Option<String> {
    let text = w.string(node, key)?;
    let uri: Result<http::Uri, _> = text.parse();
    let ok = uri.as_ref().is_ok_and(|u| {
        matches!(u.scheme_str(), Some("http" | "https")) && u.authority().is_some() && !text.contains('#')
    });
    if !ok {
        w.error(node.pos, key, format!("expected an absolute http(s) URI without a fragment, got {text:?}"));
        return None;
    }
    Some(text)
}

fn issuer(w: &mut Walker<'_>, sec: &Section<'_>, item: &Node) -> Option<IssuerConfig> {
    let name = required(w, sec, item, "issuer", "the exact `iss` value of this issuer's tokens");
    let mut cfg = IssuerConfig::new(name.clone().unwrap_or_default());
    w.field(sec, "audiences", &mut cfg.audiences, strings);
    w.field(sec, "algorithms", &mut cfg.algorithms, |w, n, k| {
        let list = strings(w, n, k)?;
        let bad: Vec<&String> =
            list.iter().filter(|a| !ALGORITHMS.contains(&a.as_str()) || a.starts_with("HS")).collect();
        if !bad.is_empty() {
            w.error(n.pos, k, format!("unsupported for JWKS keys: {bad:?} (use RS*, PS*, ES256, ES384 or EdDSA)"));
            return None;
        }
        Some(list)
    });
    w.field(sec, "jwks_url", &mut cfg.jwks_url, |w, n, k| {
        let text = w.string(n, k)?;
        match super::backend::parse_url(&text) {
            Ok(u) => Some(Some(u)),
            Err(m) => {
                w.error(n.pos, k, m);
                None
            }
        }
    });
    w.field(sec, "jwks_refresh", &mut cfg.jwks_refresh, Walker::interval);
    w.field(sec, "jwks_min_refetch", &mut cfg.jwks_min_refetch, Walker::interval);
    cfg.keys = items(w, sec, "keys", KEY_KEYS, key_entry);
    if cfg.jwks_url.is_none() && sec.get("keys").is_none() {
        w.error(item.pos, &sec.key("keys"), "an issuer needs jwks_url or keys (or both)");
    }
    name.map(|_| cfg)
}

fn key_entry(w: &mut Walker<'_>, sec: &Section<'_>, item: &Node) -> Option<KeyConfig> {
    let mut kid = None;
    w.field(sec, "kid", &mut kid, |w, n, k| w.string(n, k).map(Some));
    let algorithm = required(w, sec, item, "algorithm", "the one algorithm this key verifies, e.g. RS256")?;
    if !ALGORITHMS.contains(&algorithm.as_str()) {
        let n = sec.get("algorithm").map_or(item.pos, |n| n.pos);
        w.error(
            n,
            &sec.key("algorithm"),
            format!("unknown algorithm {algorithm:?} (allowed: {})", ALGORITHMS.join(", ")),
        );
        return None;
    }
    let hmac = algorithm.starts_with("HS");
    let given: Vec<&str> =
        ["secret_file", "secret_env", "public_key_file"].into_iter().filter(|k| sec.get(k).is_some()).collect();
    let wanted = if hmac { "secret_file or secret_env" } else { "public_key_file" };
    let fits = match given.as_slice() {
        [one] => hmac != (*one == "public_key_file"),
        _ => false,
    };
    if !fits {
        let msg = format!("{algorithm} needs exactly one of {wanted} (got {})", given.join(", "));
        w.error(item.pos, &sec.key("algorithm"), msg);
        return None;
    }
    let (name, node) = (given[0], sec.get(given[0])?);
    let key = sec.key(name);
    let source = match name {
        "secret_env" => KeySource::SecretEnv(w.string(node, &key)?),
        "secret_file" => {
            let path = w.existing_file(node, &key)?;
            check_secret(w, node, &key, &path, crate::auth::keys::MIN_HMAC_SECRET)?;
            KeySource::SecretFile(path)
        }
        _ => {
            let path = w.existing_file(node, &key)?;
            let pem = match crate::auth::keys::read_file(&path) {
                Ok(pem) => pem,
                Err(e) => {
                    w.error(node.pos, &key, format!("{}: {e}", path.display()));
                    return None;
                }
            };
            if let Err(e) = crate::auth::keys::public_key(&algorithm, &pem) {
                w.error(node.pos, &key, format!("{}: {e}", path.display()));
                return None;
            }
            KeySource::PublicKeyFile(path)
        }
    };
    Some(KeyConfig { kid, algorithm, source })
}

/// A secret file must hold at least `min` bytes (after one trailing newline).
pub(super) fn check_secret(
    w: &mut Walker<'_>,
    node: &Node,
    key: &str,
    path: &std::path::Path,
    min: usize,
) -> Option<()> {
    let bytes = match crate::auth::keys::read_file(path) {
        Ok(bytes) => bytes,
        Err(e) => {
            w.error(node.pos, key, format!("{}: {e}", path.display()));
            return None;
        }
    };
    let len = crate::auth::keys::trim_secret(&bytes).len();
    if len < min {
        w.error(node.pos, key, format!("{}: secret has {len} bytes; at least {min} are required", path.display()));
        return None;
    }
    Some(())
}

fn api_key(w: &mut Walker<'_>, sec: &Section<'_>, item: &Node) -> Option<ApiKeyConfig> {
    let name = required(w, sec, item, "name", "who holds this key (the caller's subject)");
    let hash = required(w, sec, item, "sha256", "SHA-256 of the key in hex (printf %s KEY | sha256sum)");
    let mut scopes = Vec::new();
    w.field(sec, "scopes", &mut scopes, strings);
    let hash = hash?;
    let Some(sha256) = parse_hex32(hash.trim()) else {
        let pos = sec.get("sha256").map_or(item.pos, |n| n.pos);
        w.error(pos, &sec.key("sha256"), "expected 64 hex characters (a SHA-256 digest), not the key itself");
        return None;
    };
    Some(ApiKeyConfig { name: name?, sha256, scopes })
}

/// 64 hex characters into 32 bytes.
pub(super) fn parse_hex32(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in text.as_bytes().chunks_exact(2).enumerate() {
        let hex = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(hex, 16).ok()?;
    }
    Some(out)
}

fn policy_rule(w: &mut Walker<'_>, sec: &Section<'_>, _item: &Node) -> Option<PolicyRule> {
    let mut when = PolicyMatch::default();
    if let Some(node) = sec.get("when") {
        let path = sec.key("when");
        let ws = w.section(Some(node), &path, WHEN_KEYS)?;
        w.field(&ws, "scope", &mut when.scope, |w, n, k| w.string(n, k).map(Some));
        w.field(&ws, "subject", &mut when.subject, |w, n, k| w.string(n, k).map(Some));
        w.field(&ws, "issuer", &mut when.issuer, |w, n, k| w.string(n, k).map(Some));
        if let Some(claims) = ws.get("claims") {
            when.claims = pairs(w, claims, &ws.key("claims"))?;
        }
    }
    let mut rule = PolicyRule { when, tools: None, prompts: None, resources: None };
    w.field(sec, "tools", &mut rule.tools, |w, n, k| strings(w, n, k).map(Some));
    w.field(sec, "prompts", &mut rule.prompts, |w, n, k| strings(w, n, k).map(Some));
    w.field(sec, "resources", &mut rule.resources, |w, n, k| strings(w, n, k).map(Some));
    Some(rule)
}

/// A mapping of free-form keys to scalar values, in file order.
fn pairs(w: &mut Walker<'_>, node: &Node, key: &str) -> Option<Vec<(String, String)>> {
    let Kind::Map(entries) = &node.kind else {
        w.error(node.pos, key, format!("expected a mapping of name: value, got {}", describe(node)));
        return None;
    };
    let mut out = Vec::with_capacity(entries.len());
    for e in entries {
        out.push((e.key.clone(), w.string(&e.value, &format!("{key}.{}", e.key))?));
    }
    Some(out)
}

fn upstream(w: &mut Walker<'_>, sec: &Section<'_>, item: &Node, backends: &[&str]) -> Option<UpstreamAuth> {
    let backend = required(w, sec, item, "backend", "a backend name, or \"*\" for all others")?;
    if backend != "*" && !backends.contains(&backend.as_str()) {
        let pos = sec.get("backend").map_or(item.pos, |n| n.pos);
        w.error(pos, &sec.key("backend"), format!("no backend named {backend:?} (known: {})", backends.join(", ")));
        return None;
    }
    let mut bearer_file = None;
    w.field(sec, "bearer_file", &mut bearer_file, |w, n, k| {
        let path = w.existing_file(n, k)?;
        check_secret(w, n, k, &path, 1).map(|()| Some(path))
    });
    let mut claim_headers = Vec::new();
    if let Some(node) = sec.get("claim_headers") {
        let key = sec.key("claim_headers");
        for (header, claim) in pairs(w, node, &key)? {
            if http::HeaderName::from_bytes(header.as_bytes()).is_err() || crate::auth::upstream::is_reserved(&header) {
                w.error(node.pos, &key, format!("{header:?} cannot be used as a claim header"));
                return None;
            }
            claim_headers.push((header.to_ascii_lowercase(), claim));
        }
    }
    Some(UpstreamAuth { backend, bearer_file, claim_headers })
}

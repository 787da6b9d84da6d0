//! The validated `auth:` and `security:` sections: who may call the gateway
//! (JWT issuers, API keys), what each caller may use (per-tool policy), what
//! backends receive instead of the client's token, and the edge limits
//! (Origin allow-list, rate limits, header/JSON limits, connection caps).
//!
//! Authentication is off by default: [`AuthConfig::default()`] has `enabled: false`
//! and the default [`SecurityConfig`] checks nothing a plain proxy would not.
//! The YAML walk lives in `auth_schema.rs`; the runtime state in `crate::auth`.

use std::path::PathBuf;
use std::time::Duration;

/// `auth.*`: bearer-token authentication and authorization.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthConfig {
    /// `auth.enabled`: require a valid credential on every MCP request.
    pub enabled: bool,
    /// `auth.resource`: the gateway's canonical MCP URI (RFC 8707 / RFC 9728 `resource`);
    /// tokens must name it in `aud`. Required when enabled.
    pub resource: Option<String>,
    /// `auth.authorization_servers`: issuer URLs advertised in the RFC 9728 metadata.
    pub authorization_servers: Vec<String>,
    /// `auth.scopes_supported`: advertised in the metadata; empty = derived from the policy.
    pub scopes_supported: Vec<String>,
    /// `auth.required_scopes`: every request needs all of these, else 403 `insufficient_scope`.
    pub required_scopes: Vec<String>,
    /// `auth.leeway`: clock skew tolerated on `exp` and `nbf`.
    pub leeway: Duration,
    /// `auth.verdict_cache_size`: distinct tokens whose verification result is remembered.
    pub verdict_cache_size: usize,
    /// `auth.issuers`: trusted token issuers and their keys.
    pub issuers: Vec<IssuerConfig>,
    /// `auth.api_keys`: static API keys (stored as SHA-256 hashes).
    pub api_keys: Vec<ApiKeyConfig>,
    /// `auth.policy`: rules mapping callers to the tools, prompts and resources they may use.
    /// Empty = every authenticated caller may use everything.
    pub policy: Vec<PolicyRule>,
    /// `auth.upstream`: what each backend receives instead of the client's token.
    pub upstream: Vec<UpstreamAuth>,
}

/// One entry of `auth.issuers`.
#[derive(Debug, Clone, PartialEq)]
pub struct IssuerConfig {
    /// `issuer`: the exact `iss` value.
    pub issuer: String,
    /// `audiences`: accepted `aud` values; empty = only `auth.resource`.
    pub audiences: Vec<String>,
    /// `algorithms`: allowed for JWKS keys that do not name their own `alg` (never HS*).
    pub algorithms: Vec<String>,
    /// `jwks_url`: where the issuer publishes its public keys.
    pub jwks_url: Option<http::Uri>,
    /// `jwks_refresh`: background re-fetch interval.
    pub jwks_refresh: Duration,
    /// `jwks_min_refetch`: an unknown `kid` triggers at most one fetch per this interval.
    pub jwks_min_refetch: Duration,
    /// `keys`: statically configured keys, each pinned to one algorithm.
    pub keys: Vec<KeyConfig>,
}

/// Where a static key's material comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// `secret_file`: an HMAC secret (raw bytes, one trailing newline ignored).
    SecretFile(PathBuf),
    /// `secret_env`: an HMAC secret in this environment variable, read at start.
    SecretEnv(String),
    /// `public_key_file`: an RSA, EC or Ed25519 public key in PEM.
    PublicKeyFile(PathBuf),
}

/// One entry of `auth.issuers[].keys`.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyConfig {
    /// `kid`: matched against the token header's `kid`; absent = tried for tokens without one.
    pub kid: Option<String>,
    /// `algorithm`: the only algorithm this key verifies (`HS256`, `RS256`, `ES256`, `EdDSA`, …).
    pub algorithm: String,
    /// The key material.
    pub source: KeySource,
}

/// One entry of `auth.api_keys`.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiKeyConfig {
    /// `name`: the principal's subject (issuer `api-key`).
    pub name: String,
    /// `sha256`: SHA-256 of the key, 64 hex characters (`printf %s KEY | sha256sum`).
    pub sha256: [u8; 32],
    /// `scopes`: scopes this key carries.
    pub scopes: Vec<String>,
}

/// Who a policy rule applies to (`when:`); every given condition must hold.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PolicyMatch {
    /// `scope`: the caller holds this scope.
    pub scope: Option<String>,
    /// `subject`: the caller's `sub` (or API key name).
    pub subject: Option<String>,
    /// `issuer`: the caller's `iss` (`api-key` for API keys).
    pub issuer: Option<String>,
    /// `claims`: each claim equals the value, or is an array containing it.
    pub claims: Vec<(String, String)>,
}

/// One entry of `auth.policy`.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyRule {
    /// `when`: absent = every caller.
    pub when: PolicyMatch,
    /// `tools`: name globs (`*`, `?`) of tools this grants; `None` = says nothing about tools.
    pub tools: Option<Vec<String>>,
    /// `prompts`: name globs of prompts this grants.
    pub prompts: Option<Vec<String>>,
    /// `resources`: URI globs of resources this grants.
    pub resources: Option<Vec<String>>,
}

/// One entry of `auth.upstream`.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamAuth {
    /// `backend`: a backend name, or `*` for every backend without its own entry.
    pub backend: String,
    /// `bearer_file`: send `Authorization: Bearer <file content>` to this backend.
    pub bearer_file: Option<PathBuf>,
    /// `claim_headers`: `header: claim` pairs, e.g. `x-forwarded-user: sub`.
    pub claim_headers: Vec<(String, String)>,
}

/// `security.*`: edge protections that apply with or without authentication.
#[derive(Debug, Clone, PartialEq)]
pub struct SecurityConfig {
    /// `security.allowed_origins`: a request with an `Origin` not listed gets 403; empty = not checked.
    pub allowed_origins: Vec<String>,
    /// `security.admin_token_file`: bearer token for admin actions; absent = admin actions disabled.
    pub admin_token_file: Option<PathBuf>,
    /// `security.rate_limit.per_ip`.
    pub per_ip: RateLimit,
    /// `security.rate_limit.per_principal`.
    pub per_principal: RateLimit,
    /// `security.limits.*`.
    pub limits: Limits,
    /// `security.trusted_proxies`: peers in these networks may name the client in
    /// `X-Forwarded-For`; empty = the TCP peer is always the client.
    pub trusted_proxies: Vec<super::xdp::Cidr>,
}

/// A token bucket: `rate` requests per second on average, bursts up to `burst`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// `rate`: sustained requests per second; 0 = no limit.
    pub rate: f64,
    /// `burst`: bucket size; at least 1 when `rate` is set.
    pub burst: u32,
}

/// `security.limits.*`: request shape limits with clear answers.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// `max_headers`: more request header fields → 431.
    pub max_headers: usize,
    /// `max_header_bytes`: larger total of names and values → 431.
    pub max_header_bytes: usize,
    /// `max_json_depth`: deeper JSON bodies → 400 (-32600).
    pub max_json_depth: usize,
    /// `max_id_length`: longer JSON-RPC ids → 400 (-32600).
    pub max_id_length: usize,
    /// `max_connections`: concurrent client connections per listener; more wait in the backlog.
    pub max_connections: usize,
    /// `h2_max_concurrent_streams`: per HTTP/2 connection.
    pub h2_max_concurrent_streams: u32,
    /// `h2_max_pending_resets`: rapid-reset protection (streams reset before being served).
    pub h2_max_pending_resets: usize,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            resource: None,
            authorization_servers: Vec::new(),
            scopes_supported: Vec::new(),
            required_scopes: Vec::new(),
            leeway: Duration::from_secs(60),
            verdict_cache_size: 10_000,
            issuers: Vec::new(),
            api_keys: Vec::new(),
            policy: Vec::new(),
            upstream: Vec::new(),
        }
    }
}

impl Default for SecurityConfig {
    fn default() -> Self {
        Self {
            allowed_origins: Vec::new(),
            admin_token_file: None,
            per_ip: RateLimit::OFF,
            per_principal: RateLimit::OFF,
            limits: Limits::default(),
            trusted_proxies: Vec::new(),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_headers: 100,
            max_header_bytes: 64 * 1024,
            max_json_depth: 128,
            max_id_length: 256,
            max_connections: 10_000,
            h2_max_concurrent_streams: 256,
            h2_max_pending_resets: 20,
        }
    }
}

impl RateLimit {
    /// No limit.
    pub const OFF: Self = Self { rate: 0.0, burst: 0 };

    /// Whether this limit is in force.
    pub fn is_on(&self) -> bool {
        self.rate > 0.0
    }
}

impl IssuerConfig {
    /// Defaults for an issuer entry (before its keys are read).
    pub fn new(issuer: String) -> Self {
        Self {
            issuer,
            audiences: Vec::new(),
            algorithms: vec!["RS256".into(), "ES256".into(), "EdDSA".into()],
            jwks_url: None,
            jwks_refresh: Duration::from_secs(300),
            jwks_min_refetch: Duration::from_secs(30),
            keys: Vec::new(),
        }
    }
}

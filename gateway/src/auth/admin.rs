//! Admin actions on the admin listener, under `/admin/`: each needs
//! `Authorization: Bearer <security.admin_token_file>` (compared as SHA-256
//! digests in constant time). `/health`, `/ready`, `/metrics` and `/status`
//! stay open. Without an admin token configured every action is 403.
//!
//! - `GET  /admin/clients` — rate-limit state: tracked clients, the most throttled first;
//! - `POST /admin/ratelimit/reset[?key=<ip or "issuer subject">]` — forget one client or all;
//! - `POST /admin/jwks/refresh` — fetch every issuer's JWKS now;
//! - `POST /admin/auth/cache/clear` — forget every cached token verdict.

use crate::http::admin::json_response;
use std::path::Path;
use std::time::Instant;

use http::{Method, Request, Response, StatusCode, header};
use serde_json::{Value, json};

use super::apikey::ct_eq;
use super::cache::digest;
use crate::gateway::Shared;
use crate::http::GwBody;

/// How many clients `/admin/clients` lists per limiter.
const TOP_CLIENTS: usize = 50;

/// The configured admin token, as a digest.
#[derive(Debug, Clone, Default)]
pub struct AdminToken(Option<[u8; 32]>);

impl AdminToken {
    /// Reads the token file (one trailing newline ignored); `None` = admin actions disabled.
    pub fn load(path: Option<&Path>) -> std::io::Result<Self> {
        let Some(path) = path else { return Ok(Self(None)) };
        let raw = super::keys::read_file(path)?;
        let token = String::from_utf8_lossy(super::keys::trim_secret(&raw)).into_owned();
        Ok(Self(Some(digest(&token))))
    }

    /// Whether `headers` carry the admin token.
    pub fn permits(&self, headers: &http::HeaderMap) -> bool {
        let Some(want) = &self.0 else { return false };
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim());
        presented.is_some_and(|t| ct_eq(want, &digest(t)))
    }
}

/// Serve one `/admin/…` request.
pub async fn handle<B>(shared: &Shared, req: Request<B>) -> Response<GwBody> {
    if shared.guard.admin.0.is_none() {
        return json_response(
            StatusCode::FORBIDDEN,
            &json!({"error": "admin actions are disabled: set security.admin_token_file"}),
        );
    }
    if !shared.guard.admin.permits(req.headers()) {
        let mut resp = json_response(StatusCode::UNAUTHORIZED, &json!({"error": "admin token required"}));
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, http::HeaderValue::from_static("Bearer realm=\"admin\""));
        return resp;
    }
    let query = req.uri().query().unwrap_or("").to_owned();
    match (req.method().clone(), req.uri().path()) {
        (Method::GET, "/admin/clients") => json_response(StatusCode::OK, &clients(shared)),
        (Method::POST, "/admin/ratelimit/reset") => json_response(StatusCode::OK, &reset(shared, &query)),
        (Method::POST, "/admin/jwks/refresh") => {
            let mut results = Vec::new();
            if let Some(authn) = shared.guard.authn() {
                for jwks in authn.jwks() {
                    let outcome = match jwks.fetch_now().await {
                        Ok(changed) => json!({"url": jwks.url().to_string(), "ok": true, "changed": changed}),
                        Err(e) => json!({"url": jwks.url().to_string(), "ok": false, "error": e.to_string()}),
                    };
                    results.push(outcome);
                }
            }
            json_response(StatusCode::OK, &json!({"jwks": results}))
        }
        (Method::POST, "/admin/auth/cache/clear") => {
            let cleared = shared.guard.authn().map_or(0, |a| a.cache().clear());
            json_response(StatusCode::OK, &json!({"cleared": cleared}))
        }
        (_, "/admin/clients" | "/admin/ratelimit/reset" | "/admin/jwks/refresh" | "/admin/auth/cache/clear") => {
            json_response(StatusCode::METHOD_NOT_ALLOWED, &json!({"error": "wrong method"}))
        }
        _ => json_response(StatusCode::NOT_FOUND, &json!({"error": "unknown admin action"})),
    }
}

fn clients(shared: &Shared) -> Value {
    let now = Instant::now();
    let (per_ip, per_principal) = shared.guard.limiters();
    let view = |total: usize, top: Vec<Value>| json!({"tracked": total, "most_throttled": top});
    let ip = per_ip.map(|l| {
        let (total, top) = l.busiest(TOP_CLIENTS, now);
        view(total, top.into_iter().map(|u| json!({"ip": u.key.to_string(), "tokens": u.tokens})).collect())
    });
    let principal = per_principal.map(|l| {
        let (total, top) = l.busiest(TOP_CLIENTS, now);
        view(total, top.into_iter().map(|u| json!({"principal": u.key, "tokens": u.tokens})).collect())
    });
    let cached = shared.guard.authn().map(|a| a.cache().len());
    json!({"per_ip": ip, "per_principal": principal, "cached_verdicts": cached})
}

fn reset(shared: &Shared, query: &str) -> Value {
    let (per_ip, per_principal) = shared.guard.limiters();
    let key = query.split('&').find_map(|kv| kv.strip_prefix("key=")).map(percent_decode);
    match key {
        None => {
            let ips = per_ip.map_or(0, |l| l.reset_all());
            let principals = per_principal.map_or(0, |l| l.reset_all());
            json!({"reset": ips + principals})
        }
        Some(key) => {
            let ip = key.parse().ok().and_then(|ip| per_ip.map(|l| l.reset(&super::ratelimit::ip_key(ip))));
            let principal = per_principal.map(|l| l.reset(key.as_str()));
            json!({"key": key, "reset": ip.unwrap_or(false) || principal.unwrap_or(false)})
        }
    }
}

/// `%XX` and `+` decoding for the `key` parameter (principals contain spaces and slashes).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_check() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admin.token");
        std::fs::write(&path, "s3cret-admin-token\n").unwrap();
        let t = AdminToken::load(Some(&path)).unwrap();
        let h = |v: &str| {
            let mut m = http::HeaderMap::new();
            m.insert(header::AUTHORIZATION, http::HeaderValue::from_str(v).unwrap());
            m
        };
        assert!(t.permits(&h("Bearer s3cret-admin-token")));
        assert!(!t.permits(&h("Bearer s3cret-admin-tokeN")));
        assert!(!t.permits(&h("Basic s3cret-admin-token")));
        assert!(!t.permits(&http::HeaderMap::new()));
        assert!(!AdminToken::default().permits(&h("Bearer anything")));
    }

    #[test]
    fn decoding() {
        assert_eq!(percent_decode("https%3A%2F%2Fi.test+alice"), "https://i.test alice");
        assert_eq!(percent_decode("10.0.0.1"), "10.0.0.1");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }
}

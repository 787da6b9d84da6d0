//! The `security:` section of `gateway.yaml` (Origin allow-list, admin token,
//! rate limits, request limits, trusted proxies), walked into [`SecurityConfig`].

use super::auth::{Limits, RateLimit, SecurityConfig};
use super::auth_schema::{check_secret, strings};
use super::tree::Node;
use super::walk::{Section, Walker};

/// `security.*` keys.
pub(super) const SECURITY_KEYS: &[&str] =
    &["allowed_origins", "admin_token_file", "rate_limit", "limits", "trusted_proxies"];
/// `security.rate_limit.*` keys.
pub(super) const RATE_LIMIT_KEYS: &[&str] = &["per_ip", "per_principal"];
/// `security.rate_limit.per_*` keys.
pub(super) const BUCKET_KEYS: &[&str] = &["rate", "burst"];
/// `security.limits.*` keys.
pub(super) const LIMIT_KEYS: &[&str] = &[
    "max_headers",
    "max_header_bytes",
    "max_json_depth",
    "max_id_length",
    "max_connections",
    "h2_max_concurrent_streams",
    "h2_max_pending_resets",
];

/// Reads `security`.
pub(super) fn security(w: &mut Walker<'_>, node: Option<&Node>) -> SecurityConfig {
    let mut s = SecurityConfig::default();
    let Some(sec) = w.section(node, "security", SECURITY_KEYS) else { return s };
    w.field(&sec, "allowed_origins", &mut s.allowed_origins, |w, n, k| {
        let list = strings(w, n, k)?;
        for origin in &list {
            if origin != "null" && !(origin.starts_with("http://") || origin.starts_with("https://")) {
                w.error(n.pos, k, format!("origin {origin:?} must look like https://host[:port] (or be \"null\")"));
            }
        }
        Some(list.into_iter().map(|o| o.trim_end_matches('/').to_ascii_lowercase()).collect())
    });
    w.field(&sec, "admin_token_file", &mut s.admin_token_file, |w, n, k| {
        let path = w.existing_file(n, k)?;
        check_secret(w, n, k, &path, 16).map(|()| Some(path))
    });
    if let Some(rl) = w.section(sec.get("rate_limit"), "security.rate_limit", RATE_LIMIT_KEYS) {
        w.field(&rl, "per_ip", &mut s.per_ip, |w, n, k| bucket(w, n, k));
        w.field(&rl, "per_principal", &mut s.per_principal, |w, n, k| bucket(w, n, k));
    }
    if let Some(l) = w.section(sec.get("limits"), "security.limits", LIMIT_KEYS) {
        limits(w, &l, &mut s.limits);
    }
    w.field(&sec, "trusted_proxies", &mut s.trusted_proxies, |w, n, k| {
        let list = strings(w, n, k)?;
        let mut out = Vec::with_capacity(list.len());
        for text in &list {
            match super::xdp::parse_cidr(text) {
                Ok(cidr) => out.push(cidr),
                Err(message) => w.error(n.pos, k, message),
            }
        }
        (out.len() == list.len()).then_some(out)
    });
    s
}

fn limits(w: &mut Walker<'_>, l: &Section<'_>, out: &mut Limits) {
    w.field(l, "max_headers", &mut out.max_headers, |w, n, k| w.int(n, k, 8, 10_000));
    w.field(l, "max_header_bytes", &mut out.max_header_bytes, |w, n, k| {
        let size = w.size(n, k)?;
        if !(4096..=16 * 1024 * 1024).contains(&size) {
            w.error(n.pos, k, format!("must be between 4KiB and 16MiB, got {size} bytes"));
            return None;
        }
        usize::try_from(size).ok()
    });
    w.field(l, "max_json_depth", &mut out.max_json_depth, |w, n, k| w.int(n, k, 4, 100_000));
    w.field(l, "max_id_length", &mut out.max_id_length, |w, n, k| w.int(n, k, 8, 65_536));
    w.field(l, "max_connections", &mut out.max_connections, |w, n, k| w.int(n, k, 1, 10_000_000));
    w.field(l, "h2_max_concurrent_streams", &mut out.h2_max_concurrent_streams, |w, n, k| w.int(n, k, 1, 65_535));
    w.field(l, "h2_max_pending_resets", &mut out.h2_max_pending_resets, |w, n, k| w.int(n, k, 1, 100_000));
}

fn bucket(w: &mut Walker<'_>, node: &Node, key: &str) -> Option<RateLimit> {
    let sec = w.section(Some(node), key, BUCKET_KEYS)?;
    let mut rate = 0.0;
    w.field(&sec, "rate", &mut rate, |w, n, k| {
        let text = w.scalar(n, k, "requests per second, e.g. 20 or 0.5")?;
        match text.trim().parse::<f64>() {
            Ok(r) if r.is_finite() && (0.0..=1_000_000.0).contains(&r) => Some(r),
            _ => {
                w.error(n.pos, k, format!("expected requests per second between 0 and 1000000, got {text:?}"));
                None
            }
        }
    });
    let mut burst = 0;
    w.field(&sec, "burst", &mut burst, |w, n, k| w.int(n, k, 0, 10_000_000));
    if rate > 0.0 && burst == 0 {
        // A bucket of one second's worth, at least one request.
        burst = (rate.ceil() as u32).max(1);
    }
    Some(RateLimit { rate, burst })
}

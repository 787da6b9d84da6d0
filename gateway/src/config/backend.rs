//! `backends` entries: the name, URL and transport rules, shared by the YAML
//! loader and the `--backend NAME=URL` flag.

use std::collections::HashMap;

use super::errors::closest;
use super::model::{BackendConfig, BackendTls, BackendTransport};
use super::tree::{Kind, Node};
use super::walk::{Section, Walker, describe};

/// Keys allowed in one `backends` entry.
pub(super) const BACKEND_KEYS: &[&str] = &["name", "url", "weight", "transport", "health_check_path", "http2", "tls"];
/// Keys allowed in a backend's `tls` section.
pub(super) const BACKEND_TLS_KEYS: &[&str] = &["ca_file", "cert_file", "key_file", "server_name"];

const TRANSPORTS: &[&str] = &["streamable-http", "sse"];

/// Checks a backend name: `[A-Za-z0-9._-]{1,64}`.
pub(super) fn check_name(name: &str) -> Result<(), String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if name.is_empty() || name.len() > 64 || !name.chars().all(allowed) {
        return Err(format!("invalid backend name {name:?}: use 1 to 64 of the characters A-Z a-z 0-9 . _ -"));
    }
    Ok(())
}

/// Parses a backend URL: absolute `http://` or `https://` with a host, no credentials.
pub(super) fn parse_url(raw: &str) -> Result<http::Uri, String> {
    let uri: http::Uri = raw.trim().parse().map_err(|e| format!("invalid URL {raw:?}: {e}"))?;
    let scheme_ok = uri.scheme_str().is_some_and(|s| s.eq_ignore_ascii_case("http") || s.eq_ignore_ascii_case("https"));
    if !scheme_ok {
        return Err(format!("expected an absolute http:// or https:// URL, got {raw:?}"));
    }
    let Some(authority) = uri.authority().filter(|a| !a.host().is_empty()) else {
        return Err(format!("URL {raw:?} has no host"));
    };
    if authority.as_str().contains('@') {
        return Err("credentials in backend URLs are not supported".into());
    }
    Ok(uri)
}

fn parse_transport(raw: &str) -> Result<BackendTransport, String> {
    let other = raw.trim();
    match other.to_ascii_lowercase().as_str() {
        "streamable-http" => Ok(BackendTransport::StreamableHttp),
        "sse" => Ok(BackendTransport::Sse),
        _ => {
            let hint = closest(other, TRANSPORTS).map(|t| format!("; did you mean {t:?}?")).unwrap_or_default();
            Err(format!("unknown transport {other:?}{hint} (allowed: streamable-http, sse)"))
        }
    }
}

/// A backend from a `--backend NAME=URL` flag; errors are `(key, message)`.
pub(super) fn from_flag(raw: &str) -> Result<BackendConfig, (String, String)> {
    let Some((name, url)) = raw.split_once('=') else {
        return Err((format!("backends[{raw}]"), format!("expected NAME=URL, got {raw:?}")));
    };
    let name = name.trim();
    let key = format!("backends[{name}]");
    check_name(name).map_err(|m| (key.clone(), m))?;
    let url = parse_url(url).map_err(|m| (key, m))?;
    Ok(BackendConfig {
        name: name.to_owned(),
        transport: BackendTransport::infer(&url),
        url,
        weight: 1,
        health_check_path: None,
        http2: false,
        tls: None,
    })
}

/// Reads the `backends` sequence; duplicate names are reported at the second one.
pub(super) fn read_backends(w: &mut Walker<'_>, node: Option<&Node>) -> Vec<BackendConfig> {
    let Some(node) = node else { return Vec::new() };
    let items = match &node.kind {
        Kind::Seq(items) => items,
        Kind::Null | Kind::Invalid => return Vec::new(),
        Kind::Scalar(_) | Kind::Map(_) => {
            let message = format!(
                "expected a sequence of backends (`- name: ...` entries with keys {}), got {}",
                BACKEND_KEYS.join(", "),
                describe(node)
            );
            w.error(node.pos, "backends", message);
            return Vec::new();
        }
    };
    let mut first_line: HashMap<String, usize> = HashMap::new();
    let mut backends = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let path = format!("backends[{i}]");
        let Some(section) = w.section(Some(item), &path, BACKEND_KEYS) else { continue };
        let name = read_name(w, &section, item, &mut first_line);
        let url = match section.get("url") {
            Some(n) => read_url(w, n, &section.key("url")),
            None => {
                w.error(item.pos, &section.key("url"), "required: the backend's http:// or https:// MCP endpoint");
                None
            }
        };
        let mut weight = 1;
        w.field(&section, "weight", &mut weight, |w, n, k| w.int(n, k, 1, 1000));
        let mut transport = None;
        w.field(&section, "transport", &mut transport, |w, n, k| {
            let text = w.scalar(n, k, "a transport (streamable-http or sse)")?;
            parse_transport(text).map_err(|m| w.error(n.pos, k, m)).ok().map(Some)
        });
        let mut health_check_path = None;
        w.field(&section, "health_check_path", &mut health_check_path, |w, n, k| w.http_path(n, k).map(Some));
        let mut http2 = false;
        w.field(&section, "http2", &mut http2, Walker::boolean);
        let tls = section.get("tls").and_then(|n| read_tls(w, n, &section.key("tls"), url.as_ref()));
        if let (Some(name), Some(url)) = (name, url) {
            let transport = transport.unwrap_or_else(|| BackendTransport::infer(&url));
            backends.push(BackendConfig { name, url, weight, transport, health_check_path, http2, tls });
        }
    }
    backends
}

/// The entry's name, if present, valid and not already used.
fn read_name(
    w: &mut Walker<'_>,
    section: &Section<'_>,
    item: &Node,
    first_line: &mut HashMap<String, usize>,
) -> Option<String> {
    let key = section.key("name");
    let Some(node) = section.get("name") else {
        w.error(item.pos, &key, "required: a unique backend name ([A-Za-z0-9._-], at most 64 characters)");
        return None;
    };
    let name = w.string(node, &key)?;
    if let Err(message) = check_name(&name) {
        w.error(node.pos, &key, message);
        return None;
    }
    if let Some(line) = first_line.get(&name) {
        w.error(node.pos, &key, format!("duplicate backend name {name:?} (first defined at line {line})"));
        return None;
    }
    first_line.insert(name.clone(), node.pos.line);
    Some(name)
}

fn read_url(w: &mut Walker<'_>, node: &Node, key: &str) -> Option<http::Uri> {
    let text = w.string(node, key)?;
    match parse_url(&text) {
        Ok(url) => Some(url),
        Err(message) => {
            w.error(node.pos, key, message);
            None
        }
    }
}

/// A backend's `tls` section: files must exist, `cert_file` and `key_file` come
/// together, `server_name` is a DNS name or IP address, and the URL is `https://`.
fn read_tls(w: &mut Walker<'_>, node: &Node, key: &str, url: Option<&http::Uri>) -> Option<BackendTls> {
    let sec = w.section(Some(node), key, BACKEND_TLS_KEYS)?;
    if let Some(url) = url.filter(|u| u.scheme() != Some(&http::uri::Scheme::HTTPS)) {
        w.error(node.pos, key, format!("only applies to https:// backends, but the url is {url}"));
    }
    let mut tls = BackendTls::default();
    w.field(&sec, "ca_file", &mut tls.ca_file, |w, n, k| w.existing_file(n, k).map(Some));
    let mut cert = None;
    let mut private_key = None;
    w.field(&sec, "cert_file", &mut cert, |w, n, k| w.existing_file(n, k).map(Some));
    w.field(&sec, "key_file", &mut private_key, |w, n, k| w.existing_file(n, k).map(Some));
    for (have, missing) in [("cert_file", "key_file"), ("key_file", "cert_file")] {
        if let (Some(n), None) = (sec.get(have), sec.get(missing)) {
            let message = format!("{missing} is required with {have} (the client certificate and its key)");
            w.error(n.pos, &sec.key(missing), message);
        }
    }
    tls.client_cert = cert.zip(private_key);
    w.field(&sec, "server_name", &mut tls.server_name, |w, n, k| {
        let name = w.string(n, k)?;
        match rustls::pki_types::ServerName::try_from(name.trim()) {
            Ok(_) => Some(Some(name.trim().to_owned())),
            Err(_) => {
                w.error(n.pos, k, format!("expected a DNS name or IP address, got {name:?}"));
                None
            }
        }
    });
    Some(tls)
}

use std::path::PathBuf;

use super::*;
use crate::config::{BackendTransport, load_str};

fn base() -> Config {
    let yaml = "backends:\n  - {name: a, url: http://h1/mcp, weight: 7}\n  - {name: b, url: http://h2/mcp}\n";
    load_str(yaml, "t.yaml").unwrap()
}

fn flags(backends: &[&str]) -> Overrides {
    Overrides { backends: backends.iter().map(|s| (*s).to_owned()).collect(), ..Overrides::default() }
}

fn messages(e: &ConfigErrors) -> Vec<String> {
    e.0.iter().map(ToString::to_string).collect()
}

#[test]
fn no_overrides_changes_nothing() {
    let mut cfg = base();
    cfg.apply_overrides(&Overrides::default()).unwrap();
    assert_eq!(cfg, base());
}

#[test]
fn listeners_are_replaced() {
    let mut cfg = base();
    let o = Overrides {
        listen: Some("127.0.0.1:0".parse().unwrap()),
        admin_listen: Some("127.0.0.1:9999".parse().unwrap()),
        ..Overrides::default()
    };
    cfg.apply_overrides(&o).unwrap();
    assert_eq!(cfg.server.listen, "127.0.0.1:0".parse().unwrap());
    assert_eq!(cfg.admin.listen, "127.0.0.1:9999".parse().unwrap());
}

#[test]
fn clashing_listen_flag_is_an_error() {
    let mut cfg = base();
    let o = Overrides { listen: Some("0.0.0.0:9090".parse().unwrap()), ..Overrides::default() };
    let err = cfg.apply_overrides(&o).unwrap_err();
    assert_eq!(
        messages(&err),
        ["--listen:0:0: admin.listen: the admin listener 0.0.0.0:9090 clashes with the server listener 0.0.0.0:9090; \
          use a different port"]
    );
    assert_eq!(cfg, base(), "nothing applied on error");
}

#[test]
fn backend_flag_replaces_same_name_and_appends_new() {
    let mut cfg = base();
    cfg.apply_overrides(&flags(&["a=http://127.0.0.1:7000/sse", "c=https://c.example/mcp"])).unwrap();
    let names: Vec<_> = cfg.backends.iter().map(|b| b.name.as_str()).collect();
    assert_eq!(names, ["a", "b", "c"]);
    let a = &cfg.backends[0];
    assert_eq!(a.url, "http://127.0.0.1:7000/sse");
    assert_eq!(a.transport, BackendTransport::Sse, "inferred from the flag's URL");
    assert_eq!(a.weight, 1, "the flag replaces the whole entry");
    assert_eq!(cfg.backends[2].transport, BackendTransport::StreamableHttp);
}

#[test]
fn bad_backend_flags_are_all_reported() {
    let mut cfg = base();
    let err = cfg
        .apply_overrides(&flags(&["nourl", "bad name=http://h", "x=ftp://h", "c=http://h", "c=http://h2"]))
        .unwrap_err();
    assert_eq!(
        messages(&err),
        [
            "--backend:0:0: backends[nourl]: expected NAME=URL, got \"nourl\"",
            "--backend:0:0: backends[bad name]: invalid backend name \"bad name\": use 1 to 64 of the characters \
             A-Z a-z 0-9 . _ -",
            "--backend:0:0: backends[x]: expected an absolute http:// or https:// URL, got \"ftp://h\"",
            "--backend:0:0: backends[c]: backend name given twice on the command line",
        ]
    );
    assert_eq!(cfg, base(), "nothing applied on error");
}

#[test]
fn session_key_file_must_exist() {
    let mut cfg = base();
    let o = Overrides { session_key_file: Some(PathBuf::from("/nonexistent/keys")), ..Overrides::default() };
    let err = cfg.apply_overrides(&o).unwrap_err();
    assert_eq!(messages(&err), ["--session-key-file:0:0: sessions.key_file: file not found: /nonexistent/keys"]);
    let o = Overrides { session_key_file: Some(PathBuf::from("Cargo.toml")), ..Overrides::default() };
    cfg.apply_overrides(&o).unwrap();
    assert_eq!(cfg.sessions.key_file, Some(PathBuf::from("Cargo.toml")));
}

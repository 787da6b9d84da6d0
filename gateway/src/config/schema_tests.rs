//! Each kind of config error, with the exact file:line:column: key reported.

use super::load_tests::temp_dir;
use super::*;

fn errors(yaml: &str) -> Vec<String> {
    load_str(yaml, "t.yaml").unwrap_err().0.iter().map(ToString::to_string).collect()
}

fn backends(yaml: &str) -> Vec<BackendConfig> {
    load_str(yaml, "t.yaml").unwrap().backends
}

#[test]
fn several_errors_are_all_reported_in_file_order() {
    let yaml = "\
connection_pool:
  max_conns_per_host: abc
  idel_timeout: 5s
server:
  port: 70000
  read_timeout: 0
  port: 1
";
    assert_eq!(
        errors(yaml),
        [
            "t.yaml:2:23: connection_pool.max_conns_per_host: expected a positive integer, got \"abc\"",
            "t.yaml:3:3: connection_pool.idel_timeout: unknown key \"idel_timeout\"; did you mean \"idle_timeout\"? \
             (allowed: enabled, max_idle_conns, max_conns_per_host, idle_timeout, connect_timeout, request_timeout, \
             acquire_timeout)",
            "t.yaml:5:9: server.port: expected a port number from 1 to 65535 (0 = any free port), got \"70000\"",
            "t.yaml:6:17: server.read_timeout: a zero timeout is not allowed; use a positive duration such as 30s",
            "t.yaml:7:3: server.port: duplicate key \"port\" (first defined at line 5)",
        ]
    );
}

#[test]
fn unknown_keys_list_the_allowed_ones() {
    // The list grows with each section (auth, security, xdp, ...): take it from the schema.
    let allowed = super::schema::TOP_KEYS.join(", ");
    assert!(allowed.starts_with("server, admin, mcp, sessions, connection_pool, routing, backends, logging"));
    assert_eq!(
        errors("discovery:\n  provider: kubernetes\n"),
        [format!("t.yaml:1:1: discovery: unknown key \"discovery\" (allowed: {allowed})")]
    );
    let got = errors("server:\n  readTimeout: 5s\n");
    assert!(
        got[0]
            .starts_with("t.yaml:2:3: server.readTimeout: unknown key \"readTimeout\"; did you mean \"read_timeout\"?")
    );
    let got = errors("backends:\n  - name: a\n    url: http://h\n    wieght: 3\n");
    assert_eq!(
        got,
        ["t.yaml:4:5: backends[0].wieght: unknown key \"wieght\"; did you mean \"weight\"? \
          (allowed: name, url, weight, transport, health_check_path, http2, tls)"]
    );
}

#[test]
fn wrong_types() {
    let got = errors("server: 8443\n");
    assert_eq!(got.len(), 1);
    assert!(got[0].starts_with("t.yaml:1:9: server: expected a mapping (keys: host, port, read_timeout,"), "{got:?}");
    assert!(got[0].ends_with("for this section, got \"8443\""), "{got:?}");
    assert_eq!(errors("server:\n  port: [1]\n"), ["t.yaml:2:9: server.port: expected a port number, got a sequence"]);
    let got = errors("- a\n");
    assert!(got[0].starts_with("t.yaml:1:1: expected a mapping (keys: server, admin,"), "{got:?}");
    assert_eq!(
        errors("server:\n  keep_alive: yes\n"),
        ["t.yaml:2:15: server.keep_alive: expected true or false, got \"yes\""]
    );
    assert_eq!(
        errors("logging:\n  access_log: {a: 1}\n"),
        ["t.yaml:2:15: logging.access_log: expected true or false, got a mapping"]
    );
    let got = errors("server:\n  tls: true\n");
    assert_eq!(
        got,
        ["t.yaml:2:8: server.tls: expected a mapping (keys: cert_file, key_file, client_auth, client_ca_file) \
          for this section, got \"true\""]
    );
}

#[test]
fn numbers_out_of_range() {
    let yaml =
        "backends:\n  - name: a\n    url: http://h\n    weight: 0\n  - name: b\n    url: http://h\n    weight: 1001\n";
    assert_eq!(
        errors(yaml),
        [
            "t.yaml:4:13: backends[0].weight: must be between 1 and 1000, got 0",
            "t.yaml:7:13: backends[1].weight: must be between 1 and 1000, got 1001",
        ]
    );
    assert_eq!(
        errors("routing:\n  unhealthy_threshold: -1\n  healthy_threshold: 0\n"),
        [
            "t.yaml:2:24: routing.unhealthy_threshold: must be at least 1, got -1",
            "t.yaml:3:22: routing.healthy_threshold: must be between 1 and 4294967295, got 0",
        ]
    );
    assert_eq!(
        errors("connection_pool:\n  max_idle_conns: 1.5\n"),
        ["t.yaml:2:19: connection_pool.max_idle_conns: expected a non-negative integer, got \"1.5\""]
    );
}

#[test]
fn bad_durations_and_sizes() {
    assert_eq!(
        errors("server:\n  write_timeout: 10 minutes\n"),
        ["t.yaml:2:18: server.write_timeout: invalid duration \"10 minutes\": unknown unit \"minutes\"; \
          use one of ms, s, m, h, d (examples: 500ms, 60s, 5m, 1h30m, 2d)"]
    );
    assert_eq!(errors("sessions:\n  ttl: 0\n"), ["t.yaml:2:8: sessions.ttl: must be greater than zero"]);
    assert_eq!(
        errors("connection_pool:\n  connect_timeout: 0s\n"),
        [
            "t.yaml:2:20: connection_pool.connect_timeout: a zero timeout is not allowed; use a positive duration such as 30s"
        ]
    );
    let got = errors("server:\n  max_request_body: 4 megs\n");
    assert_eq!(got.len(), 1);
    assert!(
        got[0].starts_with("t.yaml:2:21: server.max_request_body: invalid size \"4 megs\": unknown unit \"megs\""),
        "{got:?}"
    );
    assert_eq!(
        errors("server:\n  max_request_body: 0\n"),
        ["t.yaml:2:21: server.max_request_body: must be greater than zero"]
    );
}

#[test]
fn addresses_and_paths() {
    assert_eq!(
        errors("server:\n  host: localhost\n"),
        ["t.yaml:2:9: server.host: expected an IP address such as 0.0.0.0, 127.0.0.1 or ::, got \"localhost\" \
          (host names are not resolved)"]
    );
    assert_eq!(errors("mcp:\n  path: mcp\n"), ["t.yaml:2:9: mcp.path: must start with '/', got \"mcp\""]);
    assert_eq!(
        errors("mcp:\n  path: /a?b\n"),
        ["t.yaml:2:9: mcp.path: must be a plain path without '?', got \"/a?b\""]
    );
    assert_eq!(
        errors("mcp:\n  messages_path: /sse\n"),
        ["t.yaml:2:18: mcp.messages_path: must differ from mcp.sse_path (both are \"/sse\")"]
    );
    assert_eq!(
        errors("mcp:\n  path: /x\n  sse_path: /x\n"),
        ["t.yaml:3:13: mcp.sse_path: must differ from mcp.path (both are \"/x\")"]
    );
    assert_eq!(
        errors("admin:\n  port: 8443\n"),
        ["t.yaml:2:9: admin.port: the admin listener 0.0.0.0:8443 clashes with the server listener 0.0.0.0:8443; \
          use a different port"]
    );
    let cfg = load_str("server: {host: 127.0.0.1, port: 7000}\nadmin: {host: 127.0.0.2, port: 7000}\n", "t").unwrap();
    assert_eq!(cfg.admin.listen.port(), 7000);
    let cfg = load_str("server: {port: 0}\nadmin: {port: 0, host: \"[::]\"}\n", "t").unwrap();
    assert_eq!(cfg.admin.listen, "[::]:0".parse().unwrap());
}

#[test]
fn files_that_must_exist() {
    let yaml = "server:\n  tls:\n    cert_file: /nonexistent/x.crt\n    key_file: /nonexistent/x.key\n";
    assert_eq!(
        errors(yaml),
        [
            "t.yaml:3:16: server.tls.cert_file: file not found: /nonexistent/x.crt",
            "t.yaml:4:15: server.tls.key_file: file not found: /nonexistent/x.key",
        ]
    );
    let dir = temp_dir("mustexist");
    let cert = dir.join("c.pem");
    std::fs::write(&cert, "x").unwrap();
    let yaml = format!("server:\n  tls:\n    cert_file: {}\n", cert.display());
    assert_eq!(errors(&yaml), ["t.yaml:3:5: server.tls.key_file: required when server.tls is set (PEM file)"]);
    let yaml = format!("sessions:\n  key_file: {}\n", dir.display());
    assert_eq!(
        errors(&yaml),
        [format!("t.yaml:2:13: sessions.key_file: not a file: {} is a directory", dir.display())]
    );
    let cfg = load_str(&format!("sessions:\n  key_file: {}\n", cert.display()), "t").unwrap();
    assert_eq!(cfg.sessions.key_file, Some(cert));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn backend_names_and_urls() {
    assert_eq!(
        errors("backends:\n  - weight: 2\n"),
        [
            "t.yaml:2:5: backends[0].name: required: a unique backend name ([A-Za-z0-9._-], at most 64 characters)",
            "t.yaml:2:5: backends[0].url: required: the backend's http:// or https:// MCP endpoint",
        ]
    );
    assert_eq!(
        errors("backends:\n  - name: has space\n    url: http://h\n"),
        [
            "t.yaml:2:11: backends[0].name: invalid backend name \"has space\": use 1 to 64 of the characters A-Z a-z 0-9 . _ -"
        ]
    );
    let long = "n".repeat(65);
    assert_eq!(errors(&format!("backends:\n  - name: {long}\n    url: http://h\n")).len(), 1);
    assert_eq!(backends(&format!("backends:\n  - name: {}\n    url: http://h\n", &long[1..]))[0].name.len(), 64);
    assert_eq!(
        errors("backends:\n  - name: a\n    url: ftp://h/x\n"),
        ["t.yaml:3:10: backends[0].url: expected an absolute http:// or https:// URL, got \"ftp://h/x\""]
    );
    for bad in ["/mcp", "h:8080", "http://", "http://u:p@h/mcp", "not a url"] {
        let got = errors(&format!("backends:\n  - name: a\n    url: \"{bad}\"\n"));
        assert_eq!(got.len(), 1, "{bad}: {got:?}");
        assert!(got[0].starts_with("t.yaml:3:10: backends[0].url: "), "{bad}: {got:?}");
    }
    let got = errors("backends:\n  - name: a\n    url: http://h\n    health_check_path: health\n");
    assert_eq!(got, ["t.yaml:4:24: backends[0].health_check_path: must start with '/', got \"health\""]);
    let got = errors("backends:\n  name: a\n");
    assert!(got[0].starts_with("t.yaml:2:3: backends: expected a sequence of backends"), "{got:?}");
}

#[test]
fn duplicate_backend_names_point_at_the_first() {
    let yaml = "\
backends:
  - name: a
    url: http://h1
  - name: b
    url: http://h2
  - name: a
    url: http://h3
";
    assert_eq!(errors(yaml), ["t.yaml:6:11: backends[2].name: duplicate backend name \"a\" (first defined at line 2)"]);
}

#[test]
fn transports_explicit_and_inferred() {
    let got = errors("backends:\n  - name: a\n    url: http://h\n    transport: streamable_http\n");
    assert_eq!(
        got,
        [
            "t.yaml:4:16: backends[0].transport: unknown transport \"streamable_http\"; did you mean \"streamable-http\"? \
          (allowed: streamable-http, sse)"
        ]
    );
    let got = errors("backends:\n  - name: a\n    url: http://h\n    transport: websocket\n");
    assert!(got[0].ends_with("unknown transport \"websocket\" (allowed: streamable-http, sse)"), "{got:?}");

    let yaml = "backends:
  - {name: a, url: http://h/sse}
  - {name: b, url: 'http://h/v1/sse/'}
  - {name: c, url: http://h/mcp}
  - {name: d, url: http://h/sse, transport: streamable-http}
  - {name: e, url: http://h/mcp, transport: SSE}
";
    let got: Vec<_> = backends(yaml).iter().map(|b| (b.name.clone(), b.transport)).collect();
    let want = [
        ("a", BackendTransport::Sse),
        ("b", BackendTransport::Sse),
        ("c", BackendTransport::StreamableHttp),
        ("d", BackendTransport::StreamableHttp),
        ("e", BackendTransport::Sse),
    ];
    assert_eq!(got, want.map(|(n, t)| (n.to_owned(), t)));
}

#[test]
fn logging_values() {
    assert_eq!(
        errors("logging:\n  level: debgu\n  format: xml\n"),
        [
            "t.yaml:2:10: logging.level: unknown log level \"debgu\"; did you mean \"debug\"? \
             use one of trace, debug, info, warn, error, off or a filter such as mcp_gateway=debug",
            "t.yaml:3:11: logging.format: expected text or json, got \"xml\"",
        ]
    );
    assert_eq!(errors("logging:\n  level: \"\"\n"), ["t.yaml:2:10: logging.level: must not be empty"]);
    let got = errors("logging:\n  level: mcp_gateway=loud\n");
    assert!(got[0].starts_with("t.yaml:2:10: logging.level: invalid log filter"), "{got:?}");
    assert_eq!(load_str("logging: {level: WARN}\n", "t").unwrap().logging.level, "WARN");
    assert_eq!(load_str("logging: {format: JSON}\n", "t").unwrap().logging.format, LogFormat::Json);
}

#[test]
fn nulls_mean_default() {
    let cfg = load_str("server:\n  port: ~\n  tls:\nsessions:\n  key_file: null\nbackends: ~\n", "t").unwrap();
    assert_eq!(cfg, Config::default());
}

#[test]
fn backend_tls_sections() {
    let dir = temp_dir("backendtls");
    let pem = dir.join("x.pem");
    std::fs::write(&pem, "x").unwrap();
    let p = pem.display();
    let yaml = format!(
        "backends:\n  - name: a\n    url: https://h/mcp\n    tls: {{ca_file: {p}, cert_file: {p}, key_file: {p}, \
         server_name: tools.internal}}\n  - name: b\n    url: https://h2/mcp\n"
    );
    let b = backends(&yaml);
    let tls = b[0].tls.clone().unwrap();
    assert_eq!(tls.ca_file.as_ref(), Some(&pem));
    assert_eq!(tls.client_cert, Some((pem.clone(), pem.clone())));
    assert_eq!(tls.server_name.as_deref(), Some("tools.internal"));
    assert_eq!(b[1].tls, None);
    let yaml = format!(
        "backends:\n  - name: a\n    url: http://h/mcp\n    tls:\n      cert_file: {p}\n      server_name: \"not a name\"\n      \
         ca_file: /nonexistent/ca.pem\n      cipher: x\n"
    );
    assert_eq!(
        errors(&yaml),
        [
            "t.yaml:5:7: backends[0].tls: only applies to https:// backends, but the url is http://h/mcp",
            "t.yaml:5:18: backends[0].tls.key_file: key_file is required with cert_file (the client certificate and its \
             key)",
            "t.yaml:6:20: backends[0].tls.server_name: expected a DNS name or IP address, got \"not a name\"",
            "t.yaml:7:16: backends[0].tls.ca_file: file not found: /nonexistent/ca.pem",
            "t.yaml:8:7: backends[0].tls.cipher: unknown key \"cipher\" (allowed: ca_file, cert_file, key_file, \
             server_name)",
        ]
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn listener_client_auth() {
    let dir = temp_dir("clientauth");
    let pem = dir.join("x.pem");
    std::fs::write(&pem, "x").unwrap();
    let p = pem.display();
    let tls = format!("server:\n  tls:\n    cert_file: {p}\n    key_file: {p}\n");
    let cfg = load_str(&tls, "t").unwrap();
    let t = cfg.server.tls.unwrap();
    assert_eq!((t.client_auth, t.client_ca_file), (ClientAuth::None, None));
    let cfg = load_str(&format!("{tls}    client_auth: Optional\n    client_ca_file: {p}\n"), "t").unwrap();
    let t = cfg.server.tls.unwrap();
    assert_eq!((t.client_auth, t.client_ca_file), (ClientAuth::Optional, Some(pem.clone())));
    assert_eq!(
        errors(&format!("{tls}    client_auth: required\n")),
        ["t.yaml:5:18: server.tls.client_ca_file: required when client_auth is required (PEM bundle of the CAs \
          client certificates chain to)"]
    );
    assert_eq!(
        errors(&format!("{tls}    client_auth: always\n")),
        ["t.yaml:5:18: server.tls.client_auth: expected none, optional or required, got \"always\""]
    );
    assert_eq!(
        errors(&format!("{tls}    client_ca_file: {p}\n")),
        ["t.yaml:5:21: server.tls.client_ca_file: has no effect unless client_auth is optional or required"]
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn trusted_proxies() {
    let cfg = load_str("security:\n  trusted_proxies: [10.0.0.0/8, \"2001:db8::/32\", 192.0.2.7]\n", "t").unwrap();
    let shown: Vec<String> = cfg.security.trusted_proxies.iter().map(ToString::to_string).collect();
    assert_eq!(shown, ["10.0.0.0/8", "2001:db8::/32", "192.0.2.7/32"]);
    assert!(load_str("security: {}\n", "t").unwrap().security.trusted_proxies.is_empty());
    assert_eq!(
        errors("security:\n  trusted_proxies: [10.0.0.1/8]\n"),
        ["t.yaml:2:20: security.trusted_proxies: \"10.0.0.1/8\" has host bits set; did you mean 10.0.0.0/8?"]
    );
}

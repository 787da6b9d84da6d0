//! Tests of the load generators' command lines and output parsers (outputs captured from
//! wrk 4.1.0, oha 1.16 and h2load 1.52).

use super::*;

fn request() -> Request {
    Request {
        url: "http://127.0.0.1:1/mcp".to_owned(),
        session: "g1.abc".to_owned(),
        body: tools_call_body(),
        bearer: None,
    }
}

#[test]
fn body_is_about_200_bytes_of_json_rpc() {
    let body = tools_call_body();
    assert!((190..=210).contains(&body.len()), "{}", body.len());
    assert!(body.starts_with(r#"{"jsonrpc":"2.0","id":2,"method":"tools/call""#));
    assert!(!body.contains('\''), "the body is quoted with ' in wrk's Lua script");
}

#[test]
fn wrk_script_sets_method_headers_and_hook() {
    let lua = wrk_script(&request());
    assert!(lua.contains("wrk.method = \"POST\""));
    assert!(lua.contains("wrk.headers[\"Mcp-Session-Id\"] = \"g1.abc\""));
    assert!(lua.contains("latency:percentile(99.9)"));
}

#[test]
fn wrk_line_parses_and_errors_fail() {
    let ok = "Running 2s test\nBENCH requests=120000 duration_us=2000000 connect=0 read=0 write=0 status=0 \
              timeout=0 p50=250 p99=700 p999=1200\n";
    let r = parse_wrk(ok).unwrap();
    assert_eq!(r.requests, 120_000);
    assert_eq!(r.rate(), 60_000.0);
    assert_eq!((r.p50_us, r.p99_us, r.p999_us), (250.0, 700.0, 1200.0));
    let status = ok.replace("status=0", "status=3");
    assert!(parse_wrk(&status).unwrap_err().to_string().contains("non-2xx"));
    let read = ok.replace("read=0", "read=1");
    assert!(parse_wrk(&read).unwrap_err().to_string().contains("socket read"));
    assert!(parse_wrk("no summary").is_err());
}

const OHA: &str = r#"{
  "summary": {"successRate": 1.0, "total": 2.0012, "slowest": 0.004, "fastest": 0.0001, "average": 0.0003, "requestsPerSec": 999.4},
  "responseTimeHistogram": {"0.0001": 10},
  "latencyPercentiles": {"p10": 0.0001, "p50": 0.00025, "p99": 0.0009, "p99.9": 0.0031, "p99.99": 0.004},
  "rps": {"mean": 1000.0, "percentiles": {"p50": 1000.0, "p99": 1010.0}},
  "statusCodeDistribution": {"200": 2000},
  "errorDistribution": {}
}"#;

#[test]
fn oha_json_parses() {
    let r = parse_oha(OHA).unwrap();
    assert_eq!(r.requests, 2000);
    assert!((r.secs - 2.0012).abs() < 1e-9);
    assert!((r.p50_us - 250.0).abs() < 1e-6 && (r.p99_us - 900.0).abs() < 1e-6 && (r.p999_us - 3100.0).abs() < 1e-6);
}

#[test]
fn oha_non_2xx_and_errors_fail() {
    let codes = OHA.replace(r#"{"200": 2000}"#, r#"{"200": 1990, "502": 10}"#);
    assert!(parse_oha(&codes).unwrap_err().to_string().contains("502"));
    let errors = OHA.replace(r#""errorDistribution": {}"#, r#""errorDistribution": {"connection closed": 3}"#);
    assert!(parse_oha(&errors).unwrap_err().to_string().contains("connection closed"));
}

const H2LOAD: &str = "TLS Protocol: TLSv1.3\nCipher: TLS_AES_128_GCM_SHA256\nApplication protocol: h2\n\n\
    finished in 2.00s, 30629.00 req/s, 6.31MB/s\n\
    requests: 61258 total, 61290 started, 61258 done, 61258 succeeded, 0 failed, 0 errored, 0 timeout\n\
    status codes: 61258 2xx, 0 3xx, 0 4xx, 0 5xx\n";

#[test]
fn h2load_summary_parses_and_failures_fail() {
    assert_eq!(parse_h2load(H2LOAD).unwrap(), (61258, 61290));
    assert_eq!(parse_finished_secs(H2LOAD).unwrap(), 2.0);
    assert_eq!(parse_finished_secs("finished in 350.12ms, 1 req/s").unwrap(), 0.35012);
    assert_eq!(protocol_line(H2LOAD), "TLSv1.3 TLS_AES_128_GCM_SHA256 h2");
    let failed = H2LOAD.replace("0 failed", "2 failed");
    assert!(parse_h2load(&failed).is_err());
    let codes = H2LOAD.replace("0 5xx", "4 5xx");
    assert!(parse_h2load(&codes).unwrap_err().to_string().contains("non-2xx"));
}

#[test]
fn h2load_log_and_percentiles() {
    let path = std::env::temp_dir().join(format!("xtask-h2load-{}.log", std::process::id()));
    std::fs::write(&path, "1\t200\t30\n2\t200\t10\n3\t200\t20\n").unwrap();
    let mut v = read_h2load_log(&path).unwrap();
    v.sort_unstable();
    assert_eq!(v, [10, 20, 30]);
    std::fs::write(&path, "1\t200\t30\n2\t503\t10\n").unwrap();
    assert!(read_h2load_log(&path).is_err());
    std::fs::remove_file(&path).unwrap();
    let sorted: Vec<u64> = (1..=1000).collect();
    assert_eq!(percentile(&sorted, 50.0), 500.0);
    assert_eq!(percentile(&sorted, 99.0), 990.0);
    assert_eq!(percentile(&sorted, 99.9), 999.0);
    assert_eq!(percentile(&[], 50.0), 0.0);
}

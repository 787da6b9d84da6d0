//! Tests of the report's tables and target verdicts on made-up samples.

use super::*;
use crate::bench::jwt::{Alg, FirstSeen};
use crate::bench::load::LoadResult;
use crate::bench::sse::SseResult;

fn sample(kind: Kind, workload: Workload, requests: u64, cpu_secs: f64, p99_us: f64) -> Sample {
    Sample {
        kind,
        workload,
        load: LoadResult { requests, secs: 10.0, p50_us: p99_us / 2.0, p99_us, p999_us: p99_us * 2.0 },
        proxy_cpu_secs: (kind != Kind::Direct).then_some(cpu_secs),
        load_core_busy: if kind == Kind::Nginx { 0.99 } else { 0.6 },
        proxy_core_busy: 0.8,
        protocol: if workload == Workload::SaturationH2 { "TLSv1.3 h2".to_owned() } else { String::new() },
    }
}

fn results() -> Results {
    let mut samples = Vec::new();
    for round in 0_u64..3 {
        let jitter = round * 1000;
        for (kind, requests, cpu) in [
            (Kind::Direct, 900_000, 0.0),
            (Kind::Gateway, 480_000 + jitter, 6.0),
            (Kind::GatewayJwt, 470_000 + jitter, 6.06),
            (Kind::Nginx, 600_000, 8.0),
            (Kind::Haproxy, 550_000, 7.0),
        ] {
            samples.push(sample(kind, Workload::SaturationH1, requests, cpu, 900.0));
            samples.push(sample(kind, Workload::Rate(1000), 10_000, cpu / 50.0, 300.0));
            samples.push(sample(kind, Workload::Rate(3000), 30_000, cpu / 17.0, 400.0));
        }
        samples.push(sample(Kind::Gateway, Workload::SaturationH2, 400_000, 6.0, 900.0));
        samples.push(sample(Kind::GatewayJwt, Workload::SaturationH2, 400_000, 6.0, 900.0));
        samples.push(sample(Kind::GatewayTls, Workload::SaturationH2, 360_000, 6.0, 900.0));
        samples.push(sample(Kind::GatewayTls, Workload::Handshakes, 10_000, 1.0, 0.0));
        samples.push(sample(Kind::Nginx, Workload::Handshakes, 10_000, 2.0, 0.0));
    }
    let memory = vec![
        Memory { kind: Kind::Gateway, idle_kib: 8 * 1024, idle_pss_kib: 7 * 1024, peak_kib: 12 * 1024 },
        Memory { kind: Kind::Nginx, idle_kib: 6 * 1024, idle_pss_kib: 3 * 1024, peak_kib: 7 * 1024 },
    ];
    let sse = vec![SseResult { streams: 10_000, rss_before_kib: 8 * 1024, rss_open_kib: 8 * 1024 + 60_000 }];
    let first_seen = vec![
        FirstSeen { alg: Alg::Rs256, requests: 2000, new_cpu_us: 90.0, repeated_cpu_us: 50.0 },
        FirstSeen { alg: Alg::Rs256, requests: 2000, new_cpu_us: 94.0, repeated_cpu_us: 52.0 },
        FirstSeen { alg: Alg::Es256, requests: 2000, new_cpu_us: 150.0, repeated_cpu_us: 50.0 },
    ];
    let sse_h2 = vec![SseResult { streams: 10_000, rss_before_kib: 8 * 1024, rss_open_kib: 8 * 1024 + 70_000 }];
    Results {
        samples,
        memory,
        sse,
        sse_h2,
        first_seen,
        load_avg: ("0.1".to_owned(), "0.2".to_owned()),
        busy_before: 0.01,
    }
}

fn settings() -> Settings {
    Settings {
        rounds: 3,
        secs: 10.0,
        warmup_secs: 2.0,
        sse_streams: 10_000,
        handshakes: 1000,
        first_seen_tokens: 2000,
        out: std::path::PathBuf::from("bench"),
    }
}

fn row<'a>(md: &'a str, section: &str, label: &str) -> &'a str {
    let start = md.find(section).unwrap();
    md[start..].lines().find(|l| l.starts_with(&format!("| {label} |"))).unwrap()
}

#[test]
fn saturation_table_has_ratios_ranges_and_harness_flags() {
    let md = markdown(&results(), &settings(), &[("CPU".to_owned(), "test".to_owned())]);
    let gw = row(&md, "## HTTP/1.1 saturation", "(B) mcp-gateway");
    // 481k requests / 10 s = 48.1k (median), range 48.0–48.2k; 6 s CPU / 481k = 12.5 µs.
    assert!(gw.contains("| 48.1 [48.0–48.2] |"), "{gw}");
    assert!(gw.contains("| 12.5 [12.4–12.5] |"), "{gw}");
    // CPU vs nginx: 12.47 / 13.33 = 0.94; req/s vs nginx 48.1/60 = 0.80; vs direct 48.1/90 = 0.53.
    assert!(gw.contains("| 0.94× | 0.80× | 0.53× |"), "{gw}");
    let nginx = row(&md, "## HTTP/1.1 saturation", "(D) nginx");
    assert!(nginx.contains("†3/3"), "{nginx}");
    assert!(md.contains("| CPU | test |"));
    assert!(md.contains("## Profile: what changed"), "bench/profile.md is not in the report");
}

#[test]
fn targets_get_verdicts() {
    let md = markdown(&results(), &settings(), &[]);
    assert!(row(&md, "## Targets", "proxy CPU per `tools/call` ≤ nginx (stretch 0.8×)").contains("| 0.94× | met |"));
    assert!(
        row(&md, "## Targets", "req/s ≥ 1.0× nginx (where the harness is not the limit)").contains("harness-limited")
    );
    // Same p99 as direct at 1k: 0 ms added.
    assert!(row(&md, "## Targets", "added p99 over direct at 1k req/s ≤ 0.1 ms").contains("| 0.000 ms | met |"));
    assert!(row(&md, "## Targets", "idle RSS ≤ 10 MB").contains("| 8.0 MiB | met |"));
    // 60 000 KiB / 10 000 streams = 6 KiB.
    assert!(
        row(&md, "## Targets", "≤ 8 KiB per idle SSE stream (HTTP/1.1 to the backend)").contains("| 6.0 KiB | met |")
    );
    // 70 000 KiB / 10 000 streams = 7.0 KiB with HTTP/2 upstream.
    let h2 = row(&md, "## Targets", "≤ 8 KiB per idle SSE stream (HTTP/2 to the backend, `http2: true`)");
    assert!(h2.contains("| 7.0 KiB | met |"), "{h2}");
    let table = row(&md, "## Idle SSE streams", "HTTP/2, `http2: true` (≤ 1000 streams per connection)");
    assert!(table.contains("| 10000 |"), "{table}");
    assert!(row(&md, "## Targets", "TLS 1.3 + h2 ≥ 0.8× plaintext (h2c), req/s").contains("| 0.90× | met |"));
    // JWT: 471k vs 481k req/s = -2.1%; CPU 6.06 s / 471k vs 6 s / 481k = +3.1%; the harness did not
    // limit these rows, so req/s decides.
    let jwt = row(&md, "## Targets", "JWT on (repeated token) costs ≤ 3% req/s");
    assert!(jwt.contains("| -2.1% req/s, +3.1% CPU/request | met |"), "{jwt}");
    assert!(md.contains("\n| algorithm | requests per batch |"), "first-seen table header is indented");
    let rs = row(&md, "## JWT: cost of a first-seen token", "RS256");
    assert!(rs.contains("| 2000 | 92.0 [90.0–94.0] | 51.0 [50.0–52.0] | 41.0 [40.0–42.0] |"), "{rs}");
    let es = row(&md, "## JWT: cost of a first-seen token", "ES256");
    assert!(es.contains("| 100.0 |"), "{es}");
}

#[test]
fn handshakes_and_missing_values() {
    let md = markdown(&results(), &settings(), &[]);
    let tls = row(&md, "### TLS 1.3 handshakes", "(B′) mcp-gateway TLS+JWT");
    // 10 000 handshakes in 10 s; 1 s CPU / 10 000 = 100 µs, half of nginx's.
    assert!(tls.contains("| 1000 | 100 | 0.50× |"), "{tls}");
    let haproxy = row(&md, "### TLS 1.3 handshakes", "(E) HAProxy");
    assert!(haproxy.contains("| – | – | – |"), "{haproxy}");
}

#[test]
fn noisy_runs_are_marked_and_h2c_rows_get_no_tls_ratio() {
    let mut r = results();
    assert!(!markdown(&r, &settings(), &[]).contains("Noisy run"));
    r.load_avg.0 = "3.50 2.00 1.00".to_owned();
    assert!(!markdown(&r, &settings(), &[]).contains("Noisy run"), "a lagging load average alone is not noise");
    r.busy_before = 0.42;
    assert!(
        markdown(&r, &settings(), &[]).contains("**Noisy run:** before the first measurement the cores were 42% busy")
    );
    let md = markdown(&r, &settings(), &[]);
    let h2c = row(&md, "## HTTP/2", "(B) mcp-gateway");
    assert!(h2c.ends_with("| – | – |"), "{h2c}");
}

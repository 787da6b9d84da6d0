//! `bench/report.md`: the tables (medians with ranges over the rounds, ratios against nginx
//! and direct), the targets with where the gateway stands, the machine, the versions
//! and the commands.

use std::fmt::Write as _;

use crate::bench::sse::SseResult;
use crate::bench::stats::{Sample, Spread, Workload, median, select, spread};
use crate::bench::targets::Kind;
use crate::bench::{Memory, RATES, Results, Settings};

const PROXIES: [Kind; 4] = [Kind::Gateway, Kind::GatewayTls, Kind::Nginx, Kind::Haproxy];
const PLAIN: [Kind; 5] = [Kind::Direct, Kind::Gateway, Kind::GatewayJwt, Kind::Nginx, Kind::Haproxy];
const ALL: [Kind; 6] = [Kind::Direct, Kind::Gateway, Kind::GatewayJwt, Kind::GatewayTls, Kind::Nginx, Kind::Haproxy];
const MIB: f64 = 1.0 / 1024.0;
/// A share of both cores busy with other processes before the first measurement at or above
/// this marks the run as noisy.
pub const NOISY_BUSY: f64 = 0.10;

fn show(s: Option<Spread>, scale: f64, digits: usize) -> String {
    s.map_or_else(|| "–".to_owned(), |s| s.show(scale, digits))
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
        _ => "–".to_owned(),
    }
}

fn rate(s: &Sample) -> Option<f64> {
    Some(s.load.rate())
}

fn cpu(s: &Sample) -> Option<f64> {
    s.cpu_us_per_request()
}

fn limited(samples: &[Sample], kind: Kind, workload: Workload) -> String {
    let all = select(samples, kind, workload);
    let n = all.iter().filter(|s| s.harness_limited()).count();
    if n == 0 { String::new() } else { format!(" †{n}/{}", all.len()) }
}

fn memory(memory: &[Memory], kind: Kind, field: impl Fn(&Memory) -> u64) -> Option<Spread> {
    Spread::of(memory.iter().filter(|m| m.kind == kind).map(|m| field(m) as f64))
}

/// The whole report.
pub fn markdown(results: &Results, settings: &Settings, machine: &[(String, String)]) -> String {
    let s = &results.samples;
    let mut md = String::new();
    let _ = writeln!(md, "# mcp-gateway benchmark\n");
    let _ = writeln!(
        md,
        "Written by `cargo xtask bench`{}. Values are medians over the rounds with the range \
         `[min–max]`; † marks runs where the load generator's core (CPU 1, shared with the backend) \
         was ≥95% busy, so req/s there is a floor set by the harness, not the proxy. The headline \
         is **proxy CPU time per request** (user+system from `/proc/PID/stat` deltas over each run).\n",
        if settings.rounds == 1 { " (one round: no ranges)" } else { "" }
    );
    // The load average lags (the bench's own release build raises it), so what counts is how
    // busy the cores were with other processes just before the first measurement.
    if results.busy_before >= NOISY_BUSY {
        let _ = writeln!(
            md,
            "**Noisy run:** before the first measurement the cores were {:.0}% busy with other processes \
             (≥ {:.0}%): absolute figures are inflated; compare treatments within this run only, and rerun on a \
             quiet machine for the record.\n",
            results.busy_before * 100.0,
            NOISY_BUSY * 100.0
        );
    }
    targets(&mut md, results);
    // The profiling history is written by hand (bench/profile.md): what each change saved.
    if let Ok(profile) = std::fs::read_to_string(crate::repo_root().join("bench").join("profile.md")) {
        md.push_str(profile.trim_end());
        md.push_str("\n\n");
    }
    saturation(&mut md, s, &results.memory);
    rates(&mut md, s);
    http2(&mut md, s);
    first_seen(&mut md, results);
    sse(&mut md, results);
    setup(&mut md, settings, machine);
    md
}

fn targets(md: &mut String, results: &Results) {
    let s = &results.samples;
    let sat = Workload::SaturationH1;
    let gw_cpu = median(s, Kind::Gateway, sat, cpu);
    let nginx_cpu = median(s, Kind::Nginx, sat, cpu);
    let gw_rate = median(s, Kind::Gateway, sat, rate);
    let nginx_rate = median(s, Kind::Nginx, sat, rate);
    let rate_1k = Workload::Rate(RATES[0]);
    let added_p99 = median(s, Kind::Gateway, rate_1k, |x| Some(x.load.p99_us))
        .zip(median(s, Kind::Direct, rate_1k, |x| Some(x.load.p99_us)))
        .map(|(g, d)| (g - d) / 1000.0);
    let idle = memory(&results.memory, Kind::Gateway, |m| m.idle_kib).map(|m| m.median * MIB);
    let kib = |r: &[SseResult]| Spread::of(r.iter().map(|r| r.bytes_per_stream() / 1024.0)).map(|m| m.median);
    let (per_stream, per_stream_h2) = (kib(&results.sse), kib(&results.sse_h2));
    // B′ carries JWT as well: compare it with the h2c gateway that also checks the token.
    let tls = median(s, Kind::GatewayTls, Workload::SaturationH2, rate);
    let h2c = median(s, Kind::GatewayJwt, Workload::SaturationH2, rate);
    let jwt = jwt_cost(s);
    let verdict = |ok: Option<bool>| match ok {
        Some(true) => "met",
        Some(false) => "not met",
        None => "not measured",
    };
    let rows = [
        (
            "proxy CPU per `tools/call` ≤ nginx (stretch 0.8×)",
            ratio(gw_cpu, nginx_cpu),
            verdict(gw_cpu.zip(nginx_cpu).map(|(g, n)| g <= n)),
        ),
        ("req/s ≥ 1.0× nginx (where the harness is not the limit)", ratio(gw_rate, nginx_rate), {
            let harness = select(s, Kind::Nginx, sat).iter().any(|x| x.harness_limited());
            if harness {
                "nginx harness-limited: see CPU row"
            } else {
                verdict(gw_rate.zip(nginx_rate).map(|(g, n)| g >= n))
            }
        }),
        (
            "added p99 over direct at 1k req/s ≤ 0.1 ms",
            added_p99.map_or("–".to_owned(), |v| format!("{v:.3} ms")),
            verdict(added_p99.map(|v| v <= 0.1)),
        ),
        ("idle RSS ≤ 10 MB", idle.map_or("–".to_owned(), |v| format!("{v:.1} MiB")), verdict(idle.map(|v| v <= 10.0))),
        (
            "≤ 8 KiB per idle SSE stream (HTTP/1.1 to the backend)",
            per_stream.map_or("–".to_owned(), |v| format!("{v:.1} KiB")),
            verdict(per_stream.map(|v| v <= 8.0)),
        ),
        (
            "≤ 8 KiB per idle SSE stream (HTTP/2 to the backend, `http2: true`)",
            per_stream_h2.map_or("–".to_owned(), |v| format!("{v:.1} KiB")),
            verdict(per_stream_h2.map(|v| v <= 8.0)),
        ),
        (
            "TLS 1.3 + h2 ≥ 0.8× plaintext (h2c), req/s",
            ratio(tls, h2c),
            verdict(tls.zip(h2c).map(|(t, p)| t >= 0.8 * p)),
        ),
        ("JWT on (repeated token) costs ≤ 3% req/s", jwt.0, jwt.1),
    ];
    let _ = writeln!(md, "## Targets (issue 6)\n\n| target | measured | status |\n|---|---|---|");
    for (what, value, status) in rows {
        let _ = writeln!(md, "| {what} | {value} | {status} |");
    }
    md.push('\n');
}

/// JWT on against off at HTTP/1.1 saturation: the req/s loss, and the CPU per request as
/// the verdict where the harness limited req/s.
fn jwt_cost(s: &[Sample]) -> (String, &'static str) {
    let sat = Workload::SaturationH1;
    let rates = median(s, Kind::GatewayJwt, sat, rate).zip(median(s, Kind::Gateway, sat, rate));
    let cpus = median(s, Kind::GatewayJwt, sat, cpu).zip(median(s, Kind::Gateway, sat, cpu));
    let (Some((on_rate, off_rate)), Some((on_cpu, off_cpu))) = (rates, cpus) else {
        return ("–".to_owned(), "not measured");
    };
    let rate_loss = 1.0 - on_rate / off_rate;
    let cpu_gain = on_cpu / off_cpu - 1.0;
    let text = format!("{:+.1}% req/s, {:+.1}% CPU/request", -rate_loss * 100.0, cpu_gain * 100.0);
    let harness =
        [Kind::Gateway, Kind::GatewayJwt].iter().any(|k| select(s, *k, sat).iter().any(|x| x.harness_limited()));
    let met = if harness { cpu_gain <= 0.03 } else { rate_loss <= 0.03 };
    (text, if met { "met" } else { "not met" })
}

fn first_seen(md: &mut String, results: &Results) {
    let _ = writeln!(
        md,
        "## JWT: cost of a first-seen token (gateway CPU per request, every token new vs one repeated token)\n\n\
         | algorithm | requests per batch | CPU µs/req, new tokens | CPU µs/req, repeated token | µs per first-seen token |\n\
         |---|---|---|---|---|"
    );
    for alg in [super::jwt::Alg::Rs256, super::jwt::Alg::Es256] {
        let runs: Vec<_> = results.first_seen.iter().filter(|f| f.alg == alg).collect();
        let of = |f: fn(&super::jwt::FirstSeen) -> f64| Spread::of(runs.iter().map(|r| f(r)));
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} |",
            alg.name(),
            runs.first().map_or(0, |r| r.requests),
            show(of(|r| r.new_cpu_us), 1.0, 1),
            show(of(|r| r.repeated_cpu_us), 1.0, 1),
            show(of(super::jwt::FirstSeen::cost_us), 1.0, 1),
        );
    }
    md.push('\n');
}

fn saturation(md: &mut String, s: &[Sample], mem: &[Memory]) {
    let w = Workload::SaturationH1;
    let _ = writeln!(
        md,
        "## HTTP/1.1 saturation: `tools/call`, 32 connections (wrk)\n\n\
         | target | k req/s | p50 ms | p99 ms | p99.9 ms | proxy CPU µs/req | CPU vs nginx | req/s vs nginx | req/s vs direct | proxy core busy % | idle RSS MiB | idle PSS MiB | peak RSS MiB |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    let nginx_cpu = median(s, Kind::Nginx, w, cpu);
    let nginx_rate = median(s, Kind::Nginx, w, rate);
    let direct_rate = median(s, Kind::Direct, w, rate);
    for kind in PLAIN {
        let my_rate = median(s, kind, w, rate);
        let _ = writeln!(
            md,
            "| {} | {}{} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            kind.label(),
            show(spread(s, kind, w, rate), 1e-3, 1),
            limited(s, kind, w),
            show(spread(s, kind, w, |x| Some(x.load.p50_us)), 1e-3, 2),
            show(spread(s, kind, w, |x| Some(x.load.p99_us)), 1e-3, 2),
            show(spread(s, kind, w, |x| Some(x.load.p999_us)), 1e-3, 2),
            show(spread(s, kind, w, cpu), 1.0, 1),
            ratio(median(s, kind, w, cpu), nginx_cpu),
            ratio(my_rate, nginx_rate),
            ratio(my_rate, direct_rate),
            show(spread(s, kind, w, |x| Some(x.proxy_core_busy * 100.0)), 1.0, 0),
            show(memory(mem, kind, |m| m.idle_kib), MIB, 1),
            show(memory(mem, kind, |m| m.idle_pss_kib), MIB, 1),
            show(memory(mem, kind, |m| m.peak_kib), MIB, 1),
        );
    }
    md.push('\n');
}

fn rates(md: &mut String, s: &[Sample]) {
    let _ = writeln!(
        md,
        "## Fixed rates: latency corrected (oha `-q RATE --latency-correction`, 32 connections)\n\n\
         | target | rate/s | achieved req/s | p50 ms | p99 ms | p99.9 ms | added p50 ms | added p99 ms | proxy CPU µs/req |\n\
         |---|---|---|---|---|---|---|---|---|"
    );
    for r in RATES {
        let w = Workload::Rate(r);
        let direct_p50 = median(s, Kind::Direct, w, |x| Some(x.load.p50_us));
        let direct_p99 = median(s, Kind::Direct, w, |x| Some(x.load.p99_us));
        for kind in PLAIN {
            let added = |base: Option<f64>, p: fn(&Sample) -> f64| match (kind, base) {
                (Kind::Direct, _) | (_, None) => "–".to_owned(),
                (_, Some(b)) => format!("{:+.3}", (median(s, kind, w, |x| Some(p(x))).unwrap_or(b) - b) / 1000.0),
            };
            let _ = writeln!(
                md,
                "| {} | {r} | {} | {} | {} | {} | {} | {} | {} |",
                kind.label(),
                show(spread(s, kind, w, rate), 1.0, 0),
                show(spread(s, kind, w, |x| Some(x.load.p50_us)), 1e-3, 3),
                show(spread(s, kind, w, |x| Some(x.load.p99_us)), 1e-3, 3),
                show(spread(s, kind, w, |x| Some(x.load.p999_us)), 1e-3, 3),
                added(direct_p50, |x| x.load.p50_us),
                added(direct_p99, |x| x.load.p99_us),
                show(spread(s, kind, w, cpu), 1.0, 1),
            );
        }
    }
    md.push('\n');
}

fn http2(md: &mut String, s: &[Sample]) {
    let w = Workload::SaturationH2;
    let _ = writeln!(
        md,
        "## HTTP/2: `tools/call`, 32 connections (h2load); TLS 1.3 where the target terminates TLS, h2c otherwise\n\n\
         | target | protocol | k req/s | p50 ms | p99 ms | p99.9 ms | proxy CPU µs/req | CPU vs nginx | req/s vs nginx |\n\
         |---|---|---|---|---|---|---|---|---|"
    );
    let nginx_cpu = median(s, Kind::Nginx, w, cpu);
    let nginx_rate = median(s, Kind::Nginx, w, rate);
    for kind in ALL {
        let protocol = select(s, kind, w).first().map_or(String::new(), |x| x.protocol.clone());
        let tls_row = !matches!(kind, Kind::Direct | Kind::Gateway | Kind::GatewayJwt);
        let _ = writeln!(
            md,
            "| {} | {} | {}{} | {} | {} | {} | {} | {} | {} |",
            kind.label(),
            protocol,
            show(spread(s, kind, w, rate), 1e-3, 1),
            limited(s, kind, w),
            show(spread(s, kind, w, |x| Some(x.load.p50_us)), 1e-3, 2),
            show(spread(s, kind, w, |x| Some(x.load.p99_us)), 1e-3, 2),
            show(spread(s, kind, w, |x| Some(x.load.p999_us)), 1e-3, 2),
            show(spread(s, kind, w, cpu), 1.0, 1),
            // Only TLS rows compare with nginx's TLS row; h2c has no TLS to pay for.
            if tls_row { ratio(median(s, kind, w, cpu), nginx_cpu) } else { "–".to_owned() },
            if tls_row { ratio(median(s, kind, w, rate), nginx_rate) } else { "–".to_owned() },
        );
    }
    let w = Workload::Handshakes;
    let _ = writeln!(
        md,
        "\n### TLS 1.3 handshakes (h2load: all connections at once, one request each, no resumption)\n\n\
         | target | handshakes/s | proxy CPU µs/handshake | CPU vs nginx |\n|---|---|---|---|"
    );
    let nginx_cpu = median(s, Kind::Nginx, w, cpu);
    for kind in PROXIES.into_iter().filter(|k| *k != Kind::Gateway) {
        let _ = writeln!(
            md,
            "| {} | {}{} | {} | {} |",
            kind.label(),
            show(spread(s, kind, w, rate), 1.0, 0),
            limited(s, kind, w),
            show(spread(s, kind, w, cpu), 1.0, 0),
            ratio(median(s, kind, w, cpu), nginx_cpu),
        );
    }
    md.push('\n');
}

fn sse(md: &mut String, results: &Results) {
    let _ = writeln!(
        md,
        "## Idle SSE streams on mcp-gateway (GET /mcp of one session, held open)\n\n\
         | to the backend | streams | RSS before MiB | RSS with streams MiB | per stream KiB |\n|---|---|---|---|---|"
    );
    for (label, r) in [
        ("HTTP/1.1 (default: one connection per stream)", &results.sse),
        ("HTTP/2, `http2: true` (≤ 1000 streams per connection)", &results.sse_h2),
    ] {
        let _ = writeln!(
            md,
            "| {label} | {} | {} | {} | {} |",
            r.first().map_or(0, |x| x.streams),
            show(Spread::of(r.iter().map(|x| x.rss_before_kib as f64)), MIB, 1),
            show(Spread::of(r.iter().map(|x| x.rss_open_kib as f64)), MIB, 1),
            show(Spread::of(r.iter().map(|x| x.bytes_per_stream() / 1024.0)), 1.0, 2),
        );
    }
    md.push('\n');
}

fn setup(md: &mut String, settings: &Settings, machine: &[(String, String)]) {
    let _ = writeln!(md, "## Machine and versions\n\n| | |\n|---|---|");
    for (k, v) in machine {
        let _ = writeln!(md, "| {k} | {} |", v.replace('|', "/"));
    }
    let _ = writeln!(
        md,
        "\n## Method\n\n\
         - Run: `cargo xtask bench` ({} round(s), treatment order rotated each round; `--quick` for one short round).\n\
         - Backend: `mcp-demo-server --threads 1` (one tokio thread), CPU 1. Load generators: CPU 1 (`taskset -c 1`).\n\
         - Proxies: CPU 0 (`taskset -c 0`), one worker each: `mcp-gateway run --workers 1` with `bench/gateway.yaml` \
           (sealed session ids, MCP parsing, metrics on; access log off), nginx `worker_processes 1` with `bench/nginx.conf` \
           (upstream keepalive 64), HAProxy `nbthread 1` with `bench/haproxy.cfg` (HTTP mode, keep-alive to the backend). \
           No treatment writes an access log.\n\
         - Request: a {}-byte `tools/call` of the demo `echo` tool with `Mcp-Session-Id` from an `initialize` through the \
           same target (the gateway's sealed id; the backend's id through nginx/HAProxy/direct).\n\
         - Saturation: `wrk -t1 -c32 -d{}s -s tools-call.lua URL` (the Lua `done` hook prints exact p50/p99/p99.9 and \
           every error count; any socket error or non-2xx fails the run), after a {}-second warm-up.\n\
         - Fixed rates: `oha --no-tui --output-format json --latency-correction -q RATE -c 32 -z {}s -m POST`; latency \
           counts from each request's intended start (coordinated omission corrected).\n\
         - HTTP/2: `h2load --tls13-ciphers=TLS_AES_128_GCM_SHA256 -t1 -c32 -m1 -D{}` (TLS with ALPN h2, or h2c); percentiles from `--log-file`. \
           Handshakes: `h2load -t1 -c{h} -n{h} -m1 https://…` (each connection a full TLS 1.3 handshake with a \
           self-signed ECDSA P-256 certificate; rate = connections / wall time).\n\
         - CPU: utime+stime of the proxy's process tree (nginx: master+worker) from `/proc/PID/stat` before and after \
           each run, divided by completed requests (10 ms tick resolution). Core busy shares from `/proc/stat`.\n\
         - Memory: `VmRSS` after start and one `initialize` (idle), PSS from `smaps_rollup` at the same time (shared \
           pages split between processes), `VmHWM` after the workloads (peak); each summed over the process tree. SSE: a fresh gateway, `VmRSS` before and 2 s after {} streams opened and relayed their first bytes.\n",
        settings.rounds,
        super::load::tools_call_body().len(),
        settings.secs,
        settings.warmup_secs,
        settings.secs,
        settings.secs,
        settings.sse_streams,
        h = settings.handshakes,
    );
}

/// Print the report on stdout (the tables are the run's result).
#[expect(clippy::print_stdout, reason = "the benchmark's table is its output")]
pub fn print(markdown: &str) {
    println!("\n{markdown}");
}

#[cfg(test)]
#[path = "report_tests.rs"]
mod tests;

//! `cargo xtask bench`: mcp-gateway against nginx, HAProxy and the backend alone, on one
//! machine, in one run.
//!
//! Each proxy is pinned to CPU 0 with one worker; the load generator and the demo backend
//! share CPU 1. Per round (3 by default, the treatment order rotated each round) every
//! treatment is started fresh, gets one MCP session, and is measured under: HTTP/1.1
//! saturation (wrk, 32 connections), fixed rates of 1k and 3k requests/s (oha, latency
//! corrected), HTTP/2 saturation (h2load; TLS 1.3 where the proxy terminates TLS, h2c
//! otherwise) and a burst of TLS handshakes (h2load). A fresh gateway then holds 10k idle
//! SSE streams while its RSS is read. The headline is proxy CPU time per request from
//! `/proc/PID/stat`, because on 2 cores the load generator's core often saturates first.
//! `--gate` runs the callgrind regression gate instead ([`gate`]).

#[path = "../flood.rs"]
mod flood;
mod gate;
mod jwt;
mod load;
mod plot;
mod procs;
mod report;
mod sse;
mod stats;
mod targets;
mod tools;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::Context;

use crate::run::run;
use crate::step;
use crate::test::{cargo, target_dir};
use load::{LoadResult, Request};
use procs::{CpuTimes, LOAD_CPU, PROXY_CPU, Proc};
use stats::{Sample, Workload};
use targets::{Env, JwtAuth, Kind, Target};

/// Limit for the release build.
const BUILD_LIMIT: Duration = Duration::from_secs(40 * 60);
/// Connections of the saturation workloads.
const CONNECTIONS: u32 = 32;
/// The fixed request rates.
pub const RATES: [u32; 2] = [1000, 3000];
/// Every treatment, in the order of the first round.
const KINDS: [Kind; 6] = [Kind::Direct, Kind::Gateway, Kind::GatewayJwt, Kind::GatewayTls, Kind::Nginx, Kind::Haproxy];

/// Options of `cargo xtask bench`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct BenchArgs {
    /// About one minute: one round of 2-second runs, 1000 SSE streams; report under target/bench/.
    #[arg(long)]
    pub quick: bool,
    /// Rounds (default 3, or 1 with --quick).
    #[arg(long)]
    pub rounds: Option<u32>,
    /// Seconds per measured run (default 10, or 2 with --quick).
    #[arg(long)]
    pub secs: Option<f64>,
    /// Idle SSE streams held open (default 10000, or 1000 with --quick).
    #[arg(long)]
    pub sse_streams: Option<u32>,
    /// Where report.md and report.png go (default bench/, or target/bench/ with --quick).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Use the release binaries already built.
    #[arg(long)]
    pub no_build: bool,
    /// Run the callgrind instructions-per-request gate against bench/callgrind-baseline.txt.
    #[arg(long)]
    pub gate: bool,
    /// With --gate: write the measured value as the new baseline instead of comparing.
    #[arg(long, requires = "gate")]
    pub update_baseline: bool,
    /// Root only: legit MCP goodput under a SYN flood, XDP vs iptables raw vs nothing ([`flood`]).
    #[arg(long, conflicts_with = "gate")]
    pub flood: bool,
    /// Internal: send the flood described by SPEC (run by --flood in the attacker namespace).
    #[arg(long, hide = true, value_name = "SPEC")]
    pub flood_send: Option<String>,
}

/// Run lengths and sizes derived from [`BenchArgs`].
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Rounds.
    pub rounds: u32,
    /// Seconds per measured run.
    pub secs: f64,
    /// Warm-up seconds before the first measured run of a treatment.
    pub warmup_secs: f64,
    /// Idle SSE streams.
    pub sse_streams: u32,
    /// TLS handshakes per handshake run.
    pub handshakes: u32,
    /// Requests per batch of the first-seen JWT measurement.
    pub first_seen_tokens: u32,
    /// Report directory.
    pub out: PathBuf,
}

impl Settings {
    /// Defaults for a full or `--quick` run, overridden by explicit flags.
    pub fn new(root: &Path, args: &BenchArgs) -> Self {
        let (rounds, secs, sse, handshakes, out) = if args.quick {
            (1, 2.0, 1000, 300, target_dir(root).join("bench"))
        } else {
            (3, 10.0, 10_000, 1000, root.join("bench"))
        };
        Self {
            rounds: args.rounds.unwrap_or(rounds).max(1),
            secs: args.secs.unwrap_or(secs).max(1.0),
            warmup_secs: if args.quick { 1.0 } else { 2.0 },
            sse_streams: args.sse_streams.unwrap_or(sse),
            handshakes,
            first_seen_tokens: if args.quick { 300 } else { 2000 },
            out: args.out.clone().unwrap_or(out),
        }
    }
}

/// Memory of one treatment in one round, in KiB.
#[derive(Debug, Clone, Copy)]
pub struct Memory {
    /// Treatment.
    pub kind: Kind,
    /// VmRSS after start and one `initialize`.
    pub idle_kib: u64,
    /// Proportional set size at the same time.
    pub idle_pss_kib: u64,
    /// VmHWM (peak RSS) after all its workloads.
    pub peak_kib: u64,
}

/// Everything a run measured.
#[derive(Debug, Default)]
pub struct Results {
    /// Load runs.
    pub samples: Vec<Sample>,
    /// Memory per treatment and round.
    pub memory: Vec<Memory>,
    /// Idle SSE streams, HTTP/1.1 to the backend, one per round.
    pub sse: Vec<sse::SseResult>,
    /// Idle SSE streams, HTTP/2 to the backend (`backends[].http2: true`), one per round.
    pub sse_h2: Vec<sse::SseResult>,
    /// First-seen JWT verification cost, per algorithm and round.
    pub first_seen: Vec<jwt::FirstSeen>,
    /// `uptime` load averages at the start and the end.
    pub load_avg: (String, String),
    /// Busy share of both cores over two idle seconds before the first measurement.
    pub busy_before: f64,
}

/// Run `cargo xtask bench`.
pub fn bench(root: &Path, args: &BenchArgs) -> anyhow::Result<()> {
    match (&args.flood_send, args.flood) {
        (Some(spec), _) => return flood::send::main(spec),
        (None, true) => return flood::run(root, args),
        (None, false) => {}
    }
    tools::ensure(!args.gate)?;
    if !args.no_build {
        step!("building release binaries");
        run(
            Command::new(cargo()).args(["build", "--release", "-p", "mcp-gateway", "--bins"]).current_dir(root),
            BUILD_LIMIT,
        )?;
    }
    let bin_dir = target_dir(root).join("release");
    let dir = target_dir(root).join("bench");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    if args.gate {
        return gate::gate(root, &bin_dir, &dir, args.update_baseline);
    }
    let mut settings = Settings::new(root, args);
    tools::raise_own_nofile();
    // The gateway holds two sockets per SSE stream (client and backend).
    let cap = u32::try_from(procs::nofile_limit().saturating_sub(256) / 2).unwrap_or(u32::MAX);
    if settings.sse_streams > cap {
        step!("warning: the open-file limit allows {cap} SSE streams, not {}", settings.sse_streams);
        settings.sse_streams = cap;
    }
    let results = measure_all(root, &bin_dir, &dir, &settings)?;
    let machine = tools::machine(root, &settings, &results.load_avg);
    let markdown = report::markdown(&results, &settings, &machine);
    std::fs::create_dir_all(&settings.out)?;
    let md = settings.out.join("report.md");
    let markdown = flood::carry_over(std::fs::read_to_string(&md).ok().as_deref(), markdown);
    std::fs::write(&md, &markdown).with_context(|| format!("writing {}", md.display()))?;
    let png = settings.out.join("report.png");
    plot::draw(&results, &png)?;
    report::print(&markdown);
    step!("wrote {} and {}", md.display(), png.display());
    Ok(())
}

fn measure_all(root: &Path, bin_dir: &Path, dir: &Path, settings: &Settings) -> anyhow::Result<Results> {
    let gateway_bin = bin_dir.join("mcp-gateway");
    let (mut backend, backend_addr) = targets::start_backend(&bin_dir.join("mcp-demo-server"), dir)?;
    let (cert, key, pem) = targets::make_tls(dir)?;
    let session_keys = targets::make_session_keys(&gateway_bin, dir)?;
    let jwt_keys = jwt::JwtKeys::generate(dir)?;
    let env = Env {
        dir: dir.to_owned(),
        templates: root.join("bench"),
        gateway_bin,
        backend: backend_addr,
        cert,
        key,
        pem,
        session_keys,
        jwt: Some(JwtAuth { yaml: jwt_keys.auth_yaml(), token: jwt_keys.mint(jwt::Alg::Rs256, "bench-repeated")? }),
    };
    let busy_before = busy_share(Duration::from_secs(2))?;
    step!("cores {:.0}% busy with other processes before the first measurement", busy_before * 100.0);
    let mut results = Results { load_avg: (tools::load_avg(), String::new()), busy_before, ..Results::default() };
    for round in 0..settings.rounds {
        for kind in rotated(round) {
            step!("round {}/{}: {}", round + 1, settings.rounds, kind.label());
            measure_treatment(kind, &env, settings, &mut results)
                .with_context(|| format!("round {}: {}", round + 1, kind.label()))?;
            backend.check_alive()?;
        }
        step!("round {}/{}: {} idle SSE streams", round + 1, settings.rounds, settings.sse_streams);
        results.sse.push(measure_sse(&env, settings.sse_streams, false)?);
        results.sse_h2.push(measure_sse(&env, settings.sse_streams, true)?);
        step!("round {}/{}: first-seen JWT verification", round + 1, settings.rounds);
        results.first_seen.extend(measure_first_seen(&env, &jwt_keys, settings.first_seen_tokens)?);
    }
    results.load_avg.1 = tools::load_avg();
    Ok(results)
}

/// The mean busy share of both cores over `window` (nothing of ours runs then).
fn busy_share(window: Duration) -> anyhow::Result<f64> {
    let (proxy, load) = (CpuTimes::read(PROXY_CPU)?, CpuTimes::read(LOAD_CPU)?);
    std::thread::sleep(window);
    Ok((proxy.busy_since(CpuTimes::read(PROXY_CPU)?) + load.busy_since(CpuTimes::read(LOAD_CPU)?)) / 2.0)
}

/// The treatment order of `round`: the first-round order rotated by `round`.
pub fn rotated(round: u32) -> Vec<Kind> {
    let mut kinds = KINDS.to_vec();
    kinds.rotate_left(round as usize % KINDS.len());
    kinds
}

fn measure_treatment(kind: Kind, env: &Env, settings: &Settings, results: &mut Results) -> anyhow::Result<()> {
    let mut target = targets::start(kind, env)?;
    let bearer = env.bearer(kind);
    let session =
        targets::initialize(&target.plain_url().or(target.tls_url()).context("no listener")?, bearer.as_deref())?;
    std::thread::sleep(Duration::from_millis(500));
    let (idle_kib, idle_pss_kib) = match &target.proc {
        Some(proc) => (proc.memory_kib("VmRSS")?, proc.pss_kib()?),
        None => (0, 0),
    };
    let body = load::tools_call_body();
    let dir = &env.dir;
    if let Some(url) = target.plain_url() {
        let request = Request { url, session: session.clone(), body: body.clone(), bearer: bearer.clone() };
        load::wrk(&request, CONNECTIONS, settings.warmup_secs, dir).context("warm-up")?;
        let sample = measure(&mut target, Workload::SaturationH1, || {
            Ok((load::wrk(&request, CONNECTIONS, settings.secs, dir)?, String::new()))
        })?;
        results.samples.push(sample);
        for rate in RATES {
            let sample = measure(&mut target, Workload::Rate(rate), || {
                Ok((load::oha(&request, rate, CONNECTIONS, settings.secs)?, String::new()))
            })?;
            results.samples.push(sample);
        }
    }
    // HTTP/2: over TLS where the treatment terminates TLS, else h2c (direct, plain gateway).
    let h2_url = target.tls_url().or(target.plain_url()).context("no listener")?;
    let request = Request { url: h2_url, session, body, bearer };
    let sample =
        measure(&mut target, Workload::SaturationH2, || load::h2load(&request, CONNECTIONS, settings.secs, dir))?;
    results.samples.push(sample);
    if target.tls.is_some() {
        let sample =
            measure(&mut target, Workload::Handshakes, || load::handshakes(&request, settings.handshakes, dir))?;
        results.samples.push(sample);
    }
    if let Some(proc) = &mut target.proc {
        let peak_kib = proc.memory_kib("VmHWM")?;
        results.memory.push(Memory { kind, idle_kib, idle_pss_kib, peak_kib });
        proc.stop();
    }
    Ok(())
}

/// Run `load` and read the proxy's CPU time and both cores' busy shares around it.
fn measure(
    target: &mut Target,
    workload: Workload,
    load: impl FnOnce() -> anyhow::Result<(LoadResult, String)>,
) -> anyhow::Result<Sample> {
    let ticks = procs::ticks_per_sec();
    let cpu_before = target.proc.as_ref().map(|p| p.cpu_secs(ticks)).transpose()?;
    let (proxy_core, load_core) = (CpuTimes::read(PROXY_CPU)?, CpuTimes::read(LOAD_CPU)?);
    let (result, protocol) = load()?;
    let (proxy_core_after, load_core_after) = (CpuTimes::read(PROXY_CPU)?, CpuTimes::read(LOAD_CPU)?);
    let cpu_after = target.proc.as_ref().map(|p| p.cpu_secs(ticks)).transpose()?;
    if let Some(proc) = &mut target.proc {
        proc.check_alive()?;
    }
    let sample = Sample {
        kind: target.kind,
        workload,
        proxy_cpu_secs: cpu_before.zip(cpu_after).map(|(a, b)| b - a),
        load_core_busy: load_core.busy_since(load_core_after),
        proxy_core_busy: proxy_core.busy_since(proxy_core_after),
        load: result,
        protocol,
    };
    step!(
        "  {:?}: {:.0} req/s, p50 {:.0} µs, p99 {:.0} µs, proxy CPU {} µs/req, cores: proxy {:.0}% load {:.0}%{}",
        workload,
        sample.load.rate(),
        sample.load.p50_us,
        sample.load.p99_us,
        sample.cpu_us_per_request().map_or("-".to_owned(), |c| format!("{c:.1}")),
        sample.proxy_core_busy * 100.0,
        sample.load_core_busy * 100.0,
        if sample.harness_limited() { " (harness-limited)" } else { "" }
    );
    Ok(sample)
}

/// A fresh JWT gateway: extra CPU per request when every token is new, per algorithm.
fn measure_first_seen(env: &Env, keys: &jwt::JwtKeys, tokens: u32) -> anyhow::Result<Vec<jwt::FirstSeen>> {
    let mut target = targets::start(Kind::GatewayJwt, env)?;
    let url = target.plain_url().context("no url")?;
    let bearer = env.bearer(Kind::GatewayJwt);
    let session = targets::initialize(&url, bearer.as_deref())?;
    let request = Request { url, session, body: load::tools_call_body(), bearer: None };
    let pid = target.proc.as_ref().context("no gateway process")?.pid();
    let mut out = Vec::new();
    for alg in [jwt::Alg::Rs256, jwt::Alg::Es256] {
        let r = jwt::first_seen(keys, alg, &request, pid, tokens, &env.dir)?;
        step!(
            "  {}: {:.1} µs CPU/request with new tokens, {:.1} with a repeated one: {:.1} µs per first-seen token",
            alg.name(),
            r.new_cpu_us,
            r.repeated_cpu_us,
            r.cost_us()
        );
        out.push(r);
    }
    if let Some(proc) = &mut target.proc {
        proc.check_alive()?;
        proc.stop();
    }
    Ok(out)
}

/// A fresh gateway holding `streams` idle SSE streams of one session, over HTTP/1.1 to the
/// backend (one upstream connection per stream) or HTTP/2 (`http2`: streams share connections).
fn measure_sse(env: &Env, streams: u32, http2: bool) -> anyhow::Result<sse::SseResult> {
    let target = targets::start_with(Kind::Gateway, env, http2)?;
    let addr = target.plain.context("gateway has no plain listener")?;
    let session = targets::initialize(&target.plain_url().context("no url")?, None)?;
    std::thread::sleep(Duration::from_millis(500));
    let proc: &Proc = target.proc.as_ref().context("no gateway process")?;
    let result = sse::hold(addr, &session, streams, || proc.memory_kib("VmRSS"))?;
    step!(
        "  SSE, {} to the backend: RSS {} KiB idle, {} KiB with {} streams: {:.0} bytes per stream",
        if http2 { "HTTP/2" } else { "HTTP/1.1" },
        result.rss_before_kib,
        result.rss_open_kib,
        result.streams,
        result.bytes_per_stream()
    );
    Ok(result)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Wrapper {
        #[command(flatten)]
        bench: BenchArgs,
    }

    #[test]
    fn quick_and_full_settings() {
        let root = Path::new("/r");
        let full = Settings::new(root, &Wrapper::try_parse_from(["b"]).unwrap().bench);
        assert_eq!((full.rounds, full.secs, full.sse_streams), (3, 10.0, 10_000));
        assert_eq!(full.out, PathBuf::from("/r/bench"));
        let quick = Settings::new(root, &Wrapper::try_parse_from(["b", "--quick", "--rounds", "2"]).unwrap().bench);
        assert_eq!((quick.rounds, quick.secs, quick.sse_streams), (2, 2.0, 1000));
        assert!(quick.out.ends_with("bench") && quick.out != full.out);
        assert!(Wrapper::try_parse_from(["b", "--update-baseline"]).is_err());
    }

    #[test]
    fn rounds_rotate_the_order() {
        assert_eq!(rotated(0), KINDS.to_vec());
        assert_eq!(rotated(1)[0], KINDS[1]);
        assert_eq!(rotated(1)[KINDS.len() - 1], KINDS[0]);
        assert_eq!(rotated(KINDS.len() as u32), KINDS.to_vec());
    }
}

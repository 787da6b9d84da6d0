//! Load generators and what they report: wrk (HTTP/1.1 saturation, a Lua script that sets the
//! MCP headers and prints exact percentiles), oha (fixed request rates with latency
//! correction, JSON output) and h2load (HTTP/2 over TLS or h2c, and TLS handshakes). Every
//! runner fails on any non-2xx answer or socket error.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::bench::procs::LOAD_CPU;

/// One `tools/call` POST aimed at one target.
#[derive(Debug, Clone)]
pub struct Request {
    /// `http://…/mcp` or `https://…/mcp`.
    pub url: String,
    /// The `Mcp-Session-Id` to send.
    pub session: String,
    /// The JSON-RPC body.
    pub body: String,
    /// A bearer token (JWT) for targets with authentication on.
    pub bearer: Option<String>,
}

impl Request {
    /// Header lines (`name: value`) every request carries.
    pub fn headers(&self) -> Vec<String> {
        let mut headers = vec![
            "Content-Type: application/json".to_owned(),
            "Accept: application/json, text/event-stream".to_owned(),
            format!("Mcp-Session-Id: {}", self.session),
            "Mcp-Protocol-Version: 2025-06-18".to_owned(),
        ];
        headers.extend(self.bearer.as_ref().map(|t| format!("Authorization: Bearer {t}")));
        headers
    }
}

/// A ~200-byte `tools/call` of the demo server's `echo` tool (its answer is ~300 bytes).
pub fn tools_call_body() -> String {
    let text = "a".repeat(101);
    format!(
        r#"{{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{{"name":"echo","arguments":{{"text":"{text}"}}}}}}"#
    )
}

/// What one load run measured.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadResult {
    /// Completed requests (all 2xx).
    pub requests: u64,
    /// Measured duration in seconds.
    pub secs: f64,
    /// Latency percentiles in microseconds.
    pub p50_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
}

impl LoadResult {
    /// Requests per second.
    pub fn rate(&self) -> f64 {
        if self.secs > 0.0 { self.requests as f64 / self.secs } else { 0.0 }
    }
}

/// Extra time a load generator may take beyond its nominal duration.
const SLACK: Duration = Duration::from_secs(60);

fn run_capture(command: &mut Command, what: &str, secs: f64) -> anyhow::Result<String> {
    let limit = Duration::from_secs_f64(secs) + SLACK;
    let text = crate::run::output(command, limit).with_context(|| {
        format!("{what} failed or did not finish within {limit:?}: {}", crate::run::display(command))
    })?;
    Ok(text)
}

fn pinned(program: &str) -> Command {
    let mut command = Command::new("taskset");
    command.args(["-c", &LOAD_CPU.to_string(), program]);
    command
}

/// wrk's Lua script: method, body, headers, and a `done` hook that prints one parseable line.
pub fn wrk_script(request: &Request) -> String {
    let mut lua = String::from("wrk.method = \"POST\"\n");
    lua.push_str(&format!("wrk.body = '{}'\n", request.body));
    for header in request.headers() {
        let (name, value) = header.split_once(": ").unwrap_or((&header, ""));
        lua.push_str(&format!("wrk.headers[\"{name}\"] = \"{value}\"\n"));
    }
    lua.push_str(concat!(
        "function done(summary, latency, requests)\n",
        "  local e = summary.errors\n",
        "  io.write(string.format(\"BENCH requests=%d duration_us=%d connect=%d read=%d write=%d status=%d ",
        "timeout=%d p50=%d p99=%d p999=%d\\n\", summary.requests, summary.duration, e.connect, e.read, ",
        "e.write, e.status, e.timeout, latency:percentile(50), latency:percentile(99), latency:percentile(99.9)))\n",
        "end\n"
    ));
    lua
}

/// Saturation over HTTP/1.1: `wrk -t1 -c<connections>` for `secs` on the load CPU.
pub fn wrk(request: &Request, connections: u32, secs: f64, dir: &Path) -> anyhow::Result<LoadResult> {
    let script = dir.join("tools-call.lua");
    std::fs::write(&script, wrk_script(request)).with_context(|| format!("writing {}", script.display()))?;
    let mut command = pinned("wrk");
    command
        .args(["-t1", &format!("-c{connections}"), &format!("-d{}s", secs.round().max(1.0))])
        .arg("-s")
        .arg(&script)
        .arg(&request.url);
    let text = run_capture(&mut command, "wrk", secs)?;
    parse_wrk(&text)
}

/// The numbers of the `BENCH` line of [`wrk_script`]'s `done` hook.
#[derive(Debug, Clone, PartialEq)]
pub struct WrkLine {
    /// The line itself, for error messages.
    pub line: String,
    /// Socket errors by kind: connect, read, write, timeout.
    pub socket_errors: [(&'static str, u64); 4],
    /// Answers that were not 2xx/3xx (wrk counts them as requests too).
    pub status_errors: u64,
    /// Requests (all answers) and latency, as measured.
    pub load: LoadResult,
}

/// Parse the `BENCH` line of [`wrk_script`]'s `done` hook.
pub fn parse_wrk_line(text: &str) -> anyhow::Result<WrkLine> {
    let line = text.lines().find_map(|l| l.strip_prefix("BENCH ")).context("wrk printed no BENCH line")?;
    let value = |key: &str| -> anyhow::Result<u64> {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
            .with_context(|| format!("no {key} in `{line}`"))?
            .parse()
            .with_context(|| format!("bad {key} in `{line}`"))
    };
    Ok(WrkLine {
        line: line.to_owned(),
        socket_errors: [
            ("connect", value("connect")?),
            ("read", value("read")?),
            ("write", value("write")?),
            ("timeout", value("timeout")?),
        ],
        status_errors: value("status")?,
        load: LoadResult {
            requests: value("requests")?,
            secs: value("duration_us")? as f64 / 1e6,
            p50_us: value("p50")? as f64,
            p99_us: value("p99")? as f64,
            p999_us: value("p999")? as f64,
        },
    })
}

/// The `BENCH` line of [`wrk_script`]'s `done` hook; any error count is a failure.
pub fn parse_wrk(text: &str) -> anyhow::Result<LoadResult> {
    let wrk = parse_wrk_line(text)?;
    for (kind, count) in wrk.socket_errors {
        if count > 0 {
            bail!("wrk saw {count} socket {kind} errors: {}", wrk.line);
        }
    }
    if wrk.status_errors > 0 {
        bail!("wrk saw {} non-2xx/3xx answers: {}", wrk.status_errors, wrk.line);
    }
    Ok(wrk.load)
}

/// A fixed request rate with latency measured from each request's intended start
/// (`oha -q <rate> --latency-correction`), over HTTP/1.1 keep-alive connections.
pub fn oha(request: &Request, rate: u32, connections: u32, secs: f64) -> anyhow::Result<LoadResult> {
    let mut command = pinned("oha");
    command.args([
        "--no-tui",
        "--output-format",
        "json",
        "--latency-correction",
        "--wait-ongoing-requests-after-deadline",
        "-q",
        &rate.to_string(),
        "-c",
        &connections.to_string(),
        "-z",
        &format!("{}s", secs.round().max(1.0)),
        "-m",
        "POST",
        "-d",
        &request.body,
    ]);
    for header in request.headers() {
        command.args(["-H", &header]);
    }
    command.arg(&request.url);
    let text = run_capture(&mut command, "oha", secs)?;
    parse_oha(&text)
}

/// oha's JSON summary. Only the few numbers needed are picked out, without a JSON library.
pub fn parse_oha(text: &str) -> anyhow::Result<LoadResult> {
    let number = |scope: &str, key: &str| -> anyhow::Result<f64> {
        let start = text.find(&format!("\"{scope}\"")).with_context(|| format!("oha output has no {scope}"))?;
        let rest = &text[start..];
        let at = rest.find(&format!("\"{key}\":")).with_context(|| format!("oha output has no {scope}.{key}"))?;
        let value = rest[at + key.len() + 3..].trim_start();
        let end = value.find([',', '}', '\n']).unwrap_or(value.len());
        value[..end].trim().parse::<f64>().with_context(|| format!("oha {scope}.{key}: `{}`", &value[..end]))
    };
    let codes = json_object(text, "statusCodeDistribution").context("oha output has no statusCodeDistribution")?;
    let mut ok = 0_u64;
    for (code, count) in object_entries(codes) {
        if !code.starts_with('2') {
            bail!("oha saw {count} answers with status {code}");
        }
        ok += count.parse::<u64>().unwrap_or(0);
    }
    let errors = json_object(text, "errorDistribution").unwrap_or("{}");
    if let Some((error, count)) = object_entries(errors).next() {
        bail!("oha saw {count} errors: {error}");
    }
    Ok(LoadResult {
        requests: ok,
        secs: number("summary", "total")?,
        p50_us: number("latencyPercentiles", "p50")? * 1e6,
        p99_us: number("latencyPercentiles", "p99")? * 1e6,
        p999_us: number("latencyPercentiles", "p99.9")? * 1e6,
    })
}

/// The text of the flat JSON object following `"key":`.
fn json_object<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let start = text.find(&format!("\"{key}\""))?;
    let open = start + text[start..].find('{')?;
    let close = open + text[open..].find('}')?;
    Some(&text[open..=close])
}

/// `"name": value` pairs of a flat JSON object.
fn object_entries(object: &str) -> impl Iterator<Item = (&str, &str)> {
    object.trim_matches(['{', '}']).split(',').filter_map(|pair| {
        let (name, value) = pair.split_once(':')?;
        Some((name.trim().trim_matches('"'), value.trim()))
    })
}

/// HTTP/2 saturation (`h2load -c<connections> -m1 -D<secs>`): TLS with ALPN h2 for
/// `https://`, h2c prior knowledge for `http://`. Percentiles come from `--log-file`.
pub fn h2load(request: &Request, connections: u32, secs: f64, dir: &Path) -> anyhow::Result<(LoadResult, String)> {
    let log = dir.join("h2load.log");
    // h2load appends to its log file.
    if log.exists() {
        std::fs::remove_file(&log).with_context(|| format!("removing {}", log.display()))?;
    }
    let body = dir.join("body.json");
    std::fs::write(&body, &request.body)?;
    let mut command = h2load_command(request, &body);
    command
        .args(["-t1", &format!("-c{connections}"), "-m1", &format!("-D{}", secs.round().max(1.0))])
        .arg(format!("--log-file={}", log.display()))
        .arg(&request.url);
    let text = run_capture(&mut command, "h2load", secs)?;
    let (done, _) = parse_h2load(&text)?;
    let mut latencies = read_h2load_log(&log)?;
    if latencies.len() as u64 != done {
        bail!("h2load log has {} requests, its summary {done}", latencies.len());
    }
    latencies.sort_unstable();
    let secs_measured = parse_finished_secs(&text)?;
    let result = LoadResult {
        requests: done,
        secs: secs_measured,
        p50_us: percentile(&latencies, 50.0),
        p99_us: percentile(&latencies, 99.0),
        p999_us: percentile(&latencies, 99.9),
    };
    Ok((result, protocol_line(&text)))
}

/// TLS handshakes: `connections` new connections at once, one request each.
/// Returns the handshake count, the wall time, and the negotiated protocol.
pub fn handshakes(request: &Request, connections: u32, dir: &Path) -> anyhow::Result<(LoadResult, String)> {
    let body = dir.join("body.json");
    std::fs::write(&body, &request.body)?;
    let mut command = h2load_command(request, &body);
    command.args(["-t1", &format!("-c{connections}"), &format!("-n{connections}"), "-m1"]).arg(&request.url);
    let text = run_capture(&mut command, "h2load", 30.0)?;
    let (done, _) = parse_h2load(&text)?;
    if done != u64::from(connections) {
        bail!("h2load completed {done} of {connections} handshakes");
    }
    let result = LoadResult { requests: done, secs: parse_finished_secs(&text)?, ..LoadResult::default() };
    Ok((result, protocol_line(&text)))
}

fn h2load_command(request: &Request, body: &Path) -> Command {
    let mut command = pinned("h2load");
    // One TLS 1.3 suite for every target (servers differ in which suite they prefer).
    command.arg("--tls13-ciphers=TLS_AES_128_GCM_SHA256").arg("-d").arg(body);
    for header in request.headers() {
        command.args(["-H", &header]);
    }
    command
}

/// `(done, started)` from h2load's summary; fails on failed/errored/timed-out requests
/// or any non-2xx status.
pub fn parse_h2load(text: &str) -> anyhow::Result<(u64, u64)> {
    let requests = text.lines().find(|l| l.starts_with("requests:")).context("h2load printed no requests line")?;
    let count = |line: &str, label: &str| -> anyhow::Result<u64> {
        let words: Vec<&str> = line.split_whitespace().collect();
        let at = words
            .iter()
            .position(|w| w.trim_end_matches(',') == label)
            .with_context(|| format!("no `{label}` in `{line}`"))?;
        Ok(words.get(at.wrapping_sub(1)).context("no count")?.parse()?)
    };
    for bad in ["failed", "errored", "timeout"] {
        if count(requests, bad)? > 0 {
            bail!("h2load: {requests}");
        }
    }
    let codes = text.lines().find(|l| l.starts_with("status codes:")).context("h2load printed no status codes")?;
    for bad in ["3xx", "4xx", "5xx"] {
        if count(codes, bad)? > 0 {
            bail!("h2load saw non-2xx answers: {codes}");
        }
    }
    let done = count(requests, "done")?;
    if count(codes, "2xx")? != done {
        bail!("h2load: {requests} / {codes}");
    }
    Ok((done, count(requests, "started")?))
}

fn parse_finished_secs(text: &str) -> anyhow::Result<f64> {
    let line = text.lines().find_map(|l| l.strip_prefix("finished in ")).context("h2load printed no finished line")?;
    let value = line.split(',').next().unwrap_or_default().trim();
    if let Some(ms) = value.strip_suffix("ms") {
        return Ok(ms.parse::<f64>()? / 1e3);
    }
    Ok(value.trim_end_matches('s').parse()?)
}

/// "TLSv1.3 TLS_AES_128_GCM_SHA256 h2" from h2load's output (what it negotiated).
fn protocol_line(text: &str) -> String {
    let pick = |prefix: &str| text.lines().find_map(|l| l.strip_prefix(prefix)).map(str::trim);
    [pick("TLS Protocol:"), pick("Cipher:"), pick("Application protocol:")]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Durations (µs) from an h2load `--log-file` (`start\tstatus\tduration` lines).
fn read_h2load_log(path: &Path) -> anyhow::Result<Vec<u64>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = Vec::new();
    for line in text.lines() {
        let mut fields = line.split('\t');
        let (_, status, duration) = (fields.next(), fields.next(), fields.next());
        if !status.is_some_and(|s| s.starts_with('2')) {
            bail!("h2load log: non-2xx request `{line}`");
        }
        out.push(duration.context("short log line")?.trim().parse()?);
    }
    Ok(out)
}

/// The `p`th percentile (nearest rank) of sorted values.
pub fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    // The small epsilon keeps 99.9% of 1000 at rank 999 despite floating-point error.
    let rank = ((p / 100.0) * sorted.len() as f64 - 1e-9).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64
}

#[cfg(test)]
#[path = "load_tests.rs"]
mod tests;

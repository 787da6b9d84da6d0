//! The flood section of `bench/report.md`: per treatment, medians with ranges over
//! the rounds of legitimate goodput and latency, flood packets sent and dropped, and
//! kernel CPU time per dropped packet. The section sits between markers so that
//! `cargo xtask bench` (which rewrites the file) carries it over ([`carry_over`]) and
//! the flood run replaces only it ([`splice`]).

use std::fmt::Write as _;

use super::{FloodResults, TREATMENTS, Treatment, Window};
use crate::bench::load::LoadResult;
use crate::bench::stats::Spread;

/// First line of the section.
pub const BEGIN: &str = "<!-- flood:begin (written by `cargo xtask bench --flood`; kept by `cargo xtask bench`) -->";
/// Last line of the section.
pub const END: &str = "<!-- flood:end -->";

/// Socket errors plus non-2xx answers, and the 2xx result, from the wrk `BENCH` line
/// (the script of [`crate::bench::load::wrk_script`]). Unlike the main bench, errors are
/// counted rather than fatal: under a flood they are a result.
pub fn parse_wrk_errors(text: &str) -> anyhow::Result<(LoadResult, u64)> {
    let wrk = crate::bench::load::parse_wrk_line(text)?;
    let errors = wrk.socket_errors.iter().map(|(_, n)| n).sum::<u64>() + wrk.status_errors;
    // wrk counts non-2xx answers as requests too.
    let load = LoadResult { requests: wrk.load.requests.saturating_sub(wrk.status_errors), ..wrk.load };
    Ok((load, errors))
}

/// The no-flood windows' medians over the rounds (medians, not each round's own
/// window: on a shared machine one noisy baseline would skew a whole round).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Baseline {
    /// Kernel CPU seconds per second, all CPUs.
    pub kernel_per_sec: f64,
    /// CPU 0 kernel seconds per legitimate request.
    pub cpu0_per_request: f64,
    /// Legitimate requests per second.
    pub rate: f64,
}

impl Baseline {
    /// `None` without a no-flood window.
    pub fn of(windows: &[Window]) -> Option<Self> {
        let base: Vec<&Window> = windows.iter().filter(|b| b.treatment == Treatment::NoFlood).collect();
        let median = |f: &dyn Fn(&Window) -> f64| Spread::of(base.iter().map(|b| f(b))).map(|s| s.median);
        Some(Self {
            kernel_per_sec: median(&|b| b.kernel_secs / b.wall_secs)?,
            cpu0_per_request: median(&|b| b.kernel_cpu0_secs / b.load.requests.max(1) as f64)?,
            rate: median(&|b| b.load.rate())?,
        })
    }

    /// Kernel CPU seconds (all CPUs) `w` spent beyond the baseline over the same time.
    pub fn extra_kernel_secs(&self, w: &Window) -> f64 {
        w.kernel_secs - self.kernel_per_sec * w.wall_secs
    }

    /// CPU 0 kernel seconds of `w` beyond the baseline's for the legitimate requests `w`
    /// served (the baseline's kernel time is mostly theirs, and a flood that lowers
    /// goodput lowers it too).
    pub fn extra_cpu0_adjusted(&self, w: &Window) -> f64 {
        w.kernel_cpu0_secs - self.cpu0_per_request * w.load.requests as f64
    }

    /// Goodput of `w` relative to the baseline.
    pub fn goodput_ratio(&self, w: &Window) -> Option<f64> {
        (self.rate > 0.0).then(|| w.load.rate() / self.rate)
    }
}

fn show(s: Option<Spread>, scale: f64, digits: usize) -> String {
    s.map_or_else(|| "–".to_owned(), |s| s.show(scale, digits))
}

/// The section, markers included.
pub fn markdown(r: &FloodResults) -> String {
    let w = &r.windows;
    let base = Baseline::of(w);
    let extra = |x: &Window| base.map(|b| b.extra_kernel_secs(x));
    let mut md = String::new();
    let _ = writeln!(md, "{BEGIN}\n## Flood: XDP vs iptables raw vs nothing\n");
    let _ = writeln!(
        md,
        "Written by `cargo xtask bench --flood` ({} round(s) × {} s per treatment, order rotated each round). \
         Values are medians `[min–max]` over the rounds. Load average (1/5/15 min) at start → end: {} → {}{}.\n",
        r.rounds,
        r.secs,
        r.load_avg.0,
        r.load_avg.1,
        if r.load_avg.0.split_whitespace().next().and_then(|l| l.parse::<f64>().ok()).is_some_and(|l| l >= 0.5) {
            " — **noisy machine** (other builds were running): compare treatments within this run only"
        } else {
            ""
        }
    );
    let _ = writeln!(
        md,
        "### Legitimate client (wrk, `tools/call`)\n\n\
         | treatment | XDP attach | req/s | vs no flood | p50 ms | p99 ms | errors |\n|---|---|---|---|---|---|---|"
    );
    for t in TREATMENTS {
        let rows: Vec<&Window> = w.iter().filter(|x| x.treatment == t).collect();
        let Some(first) = rows.first() else {
            let _ = writeln!(md, "| {} | not measured | | | | | |", t.label());
            continue;
        };
        let of = |f: &dyn Fn(&Window) -> Option<f64>| Spread::of(rows.iter().filter_map(|x| f(x)));
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} |",
            t.label(),
            first.attach,
            show(of(&|x| Some(x.load.rate())), 1.0, 0),
            if t == Treatment::NoFlood { "1".to_owned() } else { show(of(&|x| base?.goodput_ratio(x)), 1.0, 2) },
            show(of(&|x| Some(x.load.p50_us)), 1e-3, 2),
            show(of(&|x| Some(x.load.p99_us)), 1e-3, 2),
            show(of(&|x| Some(x.errors as f64)), 1.0, 0),
        );
    }
    let _ = writeln!(
        md,
        "\n### Flood packets and kernel CPU\n\n\
         | treatment | sent (k pkts) | sent kpps | dropped by filter (k) | hand-over drops (k) | kernel CPU s/s, all CPUs | \
         kernel CPU s/s, CPU 0 | extra kernel CPU s, all CPUs | µs per dropped pkt, all CPUs | µs per sent pkt, all CPUs | \
         CPU 0 µs per sent pkt, goodput-adjusted |\n|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for t in TREATMENTS {
        let rows: Vec<&Window> = w.iter().filter(|x| x.treatment == t).collect();
        if rows.is_empty() {
            continue;
        }
        let of = |f: &dyn Fn(&Window) -> Option<f64>| Spread::of(rows.iter().filter_map(|x| f(x)));
        let per = |extra: Option<f64>, n: Option<u64>| Some(extra? * 1e6 / n.filter(|n| *n > 0)? as f64);
        let dash = |flood: String| if t == Treatment::NoFlood { "–".to_owned() } else { flood };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            t.label(),
            dash(show(of(&|x| Some(x.sent as f64)), 1e-3, 0)),
            dash(show(of(&|x| Some(x.sent as f64 / x.wall_secs)), 1e-3, 0)),
            show(of(&|x| x.dropped.map(|d| d as f64)), 1e-3, 0),
            show(of(&|x| Some(x.handover_drops as f64)), 1e-3, 0),
            show(of(&|x| Some(x.kernel_secs / x.wall_secs)), 1.0, 2),
            show(of(&|x| Some(x.kernel_cpu0_secs / x.wall_secs)), 1.0, 2),
            dash(show(of(&|x| extra(x)), 1.0, 2)),
            show(of(&|x| per(extra(x), x.dropped)), 1.0, 2),
            dash(show(of(&|x| per(extra(x), Some(x.sent))), 1.0, 2)),
            dash(show(of(&|x| per(base.map(|b| b.extra_cpu0_adjusted(x)), Some(x.sent))), 1.0, 2)),
        );
    }
    md.push('\n');
    method(&mut md, r);
    let _ = writeln!(md, "{END}");
    md
}

fn method(md: &mut String, r: &FloodResults) {
    let _ = writeln!(
        md,
        "Method:\n\n\
         - Namespaces: `node` (release `mcp-gateway run --workers 1` on `0.0.0.0:8443` in front of \
           `mcp-demo-server --threads 1`), `client` (10.204.0.2) and `attacker` (8 addresses in the blocked prefix \
           10.204.1.128/25), each joined to the node by its own veth pair. A fresh gateway per treatment.\n\
         - Legitimate load: `wrk -t1 -c{c}` for {s} s with the bench's `tools/call` POST and an `Mcp-Session-Id` \
           from an `initialize` in the same treatment, after a 1 s warm-up; goodput counts 2xx answers only. The \
           no-flood baseline fails the run on any socket error or non-2xx answer.\n\
         - Flood: TCP SYNs to port 8443 from the blocked addresses (rotating source ports, valid checksums), two \
           threads on CPU 1, each a raw socket (`IP_HDRINCL`) in a loop, re-executed from the xtask binary in the attacker namespace, as fast as it \
           goes for the window (capped at 200 M packets). It starts 0.3 s before wrk and ends 0.3 s after.\n\
         - Filters: *nothing* (gateway without XDP, no rule: the node's TCP stack answers SYN-ACKs / SYN cookies and \
           the attacker's kernel answers RSTs); *iptables raw*: `iptables -t raw -A PREROUTING -s 10.204.1.128/25 -j DROP` \
           in the node namespace, dropped = the rule's packet counter (`iptables -t raw -L -v -x`); *XDP*: the gateway's \
           `xdp.blocklist: [10.204.1.128/25]` on both node veths (`syn_rate: 0`), dropped = \
           `mcp_xdp_packets_total{{action=\"drop\",reason=\"blocked\"}}` from `/metrics`.\n\
         - CPUs (2 cores, `taskset`): CPU 0 is the gateway host: gateway, demo server, wrk, and, via RPS on the node's \
           attacker-facing veth (`rps_cpus=1`), the receive path of every flood packet; CPU 1 is the attacker: the \
           sender, and (RPS `rps_cpus=2`) its kernel's answers to SYN-ACKs. veth runs the receiver's stack in the \
           sender's context unless steered, which is why RPS (and, for driver-mode XDP, threaded NAPI pinned to CPU 0) \
           is set. A `SCHED_IDLE` busy loop on each CPU (`chrt -i 0`) runs in every treatment: it only gets a CPU \
           when nothing else wants it and keeps the virtual CPUs from halting. Without it the no-flood windows ran \
           *slower* than the flood windows (an idle vCPU 1 costs the VM halt/wake-up latency that a busy sender \
           spares the flood windows); with it the no-flood goodput is stable and highest, as it should be. Gateway, \
           demo server, wrk and sender run at `nice -n -10`, so other work on the shared machine takes little of the \
           measured cores during a window.\n\
         - Kernel CPU: system + irq + softirq jiffies from `/proc/stat`, over **all CPUs** (every namespace shares the \
           machine's CPUs, so this includes the sender's own syscalls, the same per packet in every treatment) and on \
           CPU 0. *Extra* = the window's figure minus the no-flood windows' median rate (over the rounds, robust to one \
           noisy window) times the window's length; *vs no flood* is also against that median; \
           µs per dropped packet = extra / packets the filter dropped, µs per sent packet = extra / packets sent. \
           The baseline also carries the legitimate load's kernel time, which shrinks when goodput drops, so that \
           extra underestimates where goodput fell; the last column corrects for it on CPU 0 (the gateway host): \
           CPU 0's kernel time minus the baseline's scaled by requests served (flood ÷ baseline), per packet sent. Tick-based accounting (HZ=250, no \
           IRQ_TIME_ACCOUNTING) samples, so small windows are coarse.\n\
         - Hand-over drops: `tx_dropped` of the attacker's veth: packets it could not hand to the node because CPU 0's \
           input backlog (RPS) or the veth's XDP ring (driver mode) was full. They cost only the sender's CPU and \
           never reach a filter; when CPU 0 cannot keep up, they bound the damage of the costlier paths.\n\
         - On veth the sender is the bottleneck for raw pps: judge the filters by legit goodput and CPU per packet, \
           not by pps.\n",
        c = crate::bench::CONNECTIONS,
        s = r.secs,
    );
    for note in &r.notes {
        let _ = writeln!(md, "- Note: {note}");
    }
    md.push('\n');
}

/// `existing` with its flood section replaced by `section`, or `section` appended.
pub fn splice(existing: &str, section: &str) -> String {
    let section = section.trim_end();
    match (existing.find(BEGIN), existing.find(END)) {
        (Some(a), Some(b)) if b > a => {
            let rest = &existing[b + END.len()..];
            format!("{}{section}{}", &existing[..a], if rest.is_empty() { "\n" } else { rest })
        }
        _ if existing.trim().is_empty() => format!("{section}\n"),
        _ => format!("{}\n\n{section}\n", existing.trim_end()),
    }
}

/// The main bench's new report with the flood section of the `old` file carried over.
pub fn carry_over(old: Option<&str>, new_main: String) -> String {
    let section = old.and_then(|o| Some(&o[o.find(BEGIN)?..o.find(END)? + END.len()]));
    match section {
        Some(s) if !new_main.contains(BEGIN) => splice(&new_main, s),
        _ => new_main,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(t: Treatment, round: u32, requests: u64, kernel: f64, sent: u64, dropped: Option<u64>) -> Window {
        Window {
            treatment: t,
            round,
            load: LoadResult { requests, secs: 10.0, p50_us: 1000.0, p99_us: 4000.0, p999_us: 9000.0 },
            errors: 0,
            wall_secs: 10.0,
            sent,
            dropped,
            handover_drops: 0,
            kernel_secs: kernel,
            kernel_cpu0_secs: kernel / 2.0,
            busy_secs: 15.0,
            attach: "none",
        }
    }

    #[test]
    fn wrk_errors_are_counted_not_fatal() {
        let text = "BENCH requests=1000 duration_us=2000000 connect=0 read=2 write=0 status=5 timeout=3 p50=900 p99=5000 p999=9000\n";
        let (load, errors) = parse_wrk_errors(text).unwrap();
        assert_eq!(errors, 10);
        assert_eq!(load.requests, 995);
        assert_eq!(load.secs, 2.0);
        assert_eq!(load.p99_us, 5000.0);
        assert!(parse_wrk_errors("no line").is_err());
    }

    #[test]
    fn extra_cpu_and_per_packet_arithmetic() {
        let windows = vec![
            window(Treatment::NoFlood, 0, 50_000, 2.0, 0, None),
            window(Treatment::Iptables, 0, 40_000, 6.0, 2_000_000, Some(1_600_000)),
            window(Treatment::Iptables, 1, 40_000, 6.0, 2_000_000, Some(1_600_000)),
        ];
        let base = Baseline::of(&windows).unwrap();
        assert!((base.extra_kernel_secs(&windows[1]) - 4.0).abs() < 1e-9);
        assert!((base.goodput_ratio(&windows[1]).unwrap() - 0.8).abs() < 1e-9);
        // CPU 0: 3.0 s under flood, minus the baseline's 1.0 s scaled by 40k/50k requests.
        assert!((base.extra_cpu0_adjusted(&windows[1]) - 2.2).abs() < 1e-9);
        let mut longer = window(Treatment::Nothing, 1, 1, 4.0, 10, None);
        longer.wall_secs = 20.0;
        assert!(base.extra_kernel_secs(&longer).abs() < 1e-9);
        // The baseline is the median over the rounds: an outlier round does not move it.
        let mut noisy = windows.clone();
        noisy.push(window(Treatment::NoFlood, 1, 50_000, 2.2, 0, None));
        noisy.push(window(Treatment::NoFlood, 2, 10_000, 9.0, 0, None));
        assert!((Baseline::of(&noisy).unwrap().kernel_per_sec - 0.22).abs() < 1e-9);
        assert_eq!(Baseline::of(&windows[1..]), None);
    }

    #[test]
    fn table_rows_per_treatment() {
        let results = FloodResults {
            windows: vec![
                window(Treatment::NoFlood, 0, 50_000, 2.0, 0, None),
                window(Treatment::XdpGeneric, 0, 45_000, 3.0, 2_000_000, Some(2_000_000)),
            ],
            rounds: 1,
            secs: 10.0,
            load_avg: ("2.10 1.00 0.50".to_owned(), "1.00 1.00 0.50".to_owned()),
            notes: vec!["a note".to_owned()],
        };
        let md = markdown(&results);
        assert!(md.starts_with(BEGIN) && md.trim_end().ends_with(END));
        assert!(md.contains("noisy machine"));
        // 45k requests in 10 s, 0.9 of the baseline, 1 s extra / 2 M drops = 0.5 µs.
        let rows: Vec<Vec<&str>> = md
            .lines()
            .filter(|l| l.starts_with("| flood, XDP generic"))
            .map(|l| l.split('|').map(str::trim).collect())
            .collect();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0][3], "4500");
        assert_eq!(rows[0][4], "0.90");
        assert_eq!(rows[1][2], "2000");
        assert_eq!(rows[1][4], "2000");
        assert_eq!(rows[1][9], "0.50");
        // CPU 0: 1.5 s − 1.0 s × 0.9 = 0.6 s over 2 M packets.
        assert_eq!(rows[1][11], "0.30");
        assert!(md.contains("| flood, iptables raw DROP | not measured |"));
        assert_eq!(md.matches("| no flood |").count(), 2);
        assert!(md.contains("- Note: a note"));
    }

    #[test]
    fn splice_replaces_or_appends_and_bench_carries_over() {
        let section = format!("{BEGIN}\n## Flood\nv1\n{END}\n");
        let appended = splice("# main\n\ntext\n", &section);
        assert_eq!(appended, format!("# main\n\ntext\n\n{BEGIN}\n## Flood\nv1\n{END}\n"));
        let replaced = splice(&appended, &format!("{BEGIN}\nv2\n{END}\n"));
        assert!(replaced.contains("v2") && !replaced.contains("v1") && replaced.starts_with("# main"));
        assert_eq!(replaced.matches(BEGIN).count(), 1);
        let carried = carry_over(Some(&replaced), "# main, new run\n".to_owned());
        assert!(carried.starts_with("# main, new run") && carried.contains("v2"));
        assert_eq!(carry_over(None, "# m\n".to_owned()), "# m\n");
        assert_eq!(carry_over(Some("# old without section"), "# m\n".to_owned()), "# m\n");
    }
}

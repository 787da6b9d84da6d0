//! What one measured run produced ([`Sample`]), and medians with ranges over the rounds
//! ([`Spread`]).

use crate::bench::load::LoadResult;
use crate::bench::targets::Kind;

/// Above this share of busy time the load generator's core is the bottleneck.
pub const HARNESS_BUSY: f64 = 0.95;

/// The kinds of load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// wrk, HTTP/1.1 keep-alive, 32 connections, as fast as possible.
    SaturationH1,
    /// oha at a fixed rate (requests/s), latency corrected.
    Rate(u32),
    /// h2load, 32 HTTP/2 connections (TLS for proxies that have it, else h2c).
    SaturationH2,
    /// h2load, one TLS 1.3 handshake and one request per connection.
    Handshakes,
}

/// One measured run of one workload against one treatment.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Treatment.
    pub kind: Kind,
    /// Workload.
    pub workload: Workload,
    /// What the load generator reported.
    pub load: LoadResult,
    /// Proxy process CPU seconds (user + system) during the run; `None` for direct.
    pub proxy_cpu_secs: Option<f64>,
    /// Busy share of the load generator's core during the run.
    pub load_core_busy: f64,
    /// Busy share of the proxy's core during the run.
    pub proxy_core_busy: f64,
    /// Negotiated protocol (h2load), e.g. `TLSv1.3 TLS_AES_128_GCM_SHA256 h2`.
    pub protocol: String,
}

impl Sample {
    /// Proxy CPU microseconds per request (per handshake for [`Workload::Handshakes`]).
    pub fn cpu_us_per_request(&self) -> Option<f64> {
        let secs = self.proxy_cpu_secs?;
        (self.load.requests > 0).then(|| secs * 1e6 / self.load.requests as f64)
    }

    /// True when the load generator's core was saturated.
    pub fn harness_limited(&self) -> bool {
        self.load_core_busy >= HARNESS_BUSY
    }
}

/// Median and range of one metric over the rounds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    /// Median (mean of the middle two for an even count).
    pub median: f64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// How many values.
    pub count: usize,
}

impl Spread {
    /// The spread of `values`; `None` when empty.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Option<Self> {
        let mut v: Vec<f64> = values.into_iter().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 };
        Some(Self { median, min: v[0], max: v[n - 1], count: n })
    }

    /// `median [min–max]` with `digits` decimals, scaled by `scale`; just the median for one value.
    pub fn show(&self, scale: f64, digits: usize) -> String {
        let f = |x: f64| format!("{:.digits$}", x * scale);
        if self.count <= 1 || f(self.min) == f(self.max) {
            f(self.median)
        } else {
            format!("{} [{}–{}]", f(self.median), f(self.min), f(self.max))
        }
    }
}

/// The samples of `kind` under `workload`.
pub fn select(samples: &[Sample], kind: Kind, workload: Workload) -> Vec<&Sample> {
    samples.iter().filter(|s| s.kind == kind && s.workload == workload).collect()
}

/// Spread of `metric` over the samples of `kind` under `workload`.
pub fn spread(
    samples: &[Sample],
    kind: Kind,
    workload: Workload,
    metric: impl Fn(&Sample) -> Option<f64>,
) -> Option<Spread> {
    Spread::of(select(samples, kind, workload).into_iter().filter_map(metric))
}

/// Median of `metric` (convenience for ratios).
pub fn median(
    samples: &[Sample],
    kind: Kind,
    workload: Workload,
    metric: impl Fn(&Sample) -> Option<f64>,
) -> Option<f64> {
    spread(samples, kind, workload, metric).map(|s| s.median)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(kind: Kind, requests: u64, cpu: Option<f64>, busy: f64) -> Sample {
        Sample {
            kind,
            workload: Workload::SaturationH1,
            load: LoadResult { requests, secs: 2.0, ..LoadResult::default() },
            proxy_cpu_secs: cpu,
            load_core_busy: busy,
            proxy_core_busy: 0.5,
            protocol: String::new(),
        }
    }

    #[test]
    fn spread_median_and_range() {
        let s = Spread::of([3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max, s.count), (2.0, 1.0, 3.0, 3));
        assert_eq!(Spread::of([4.0, 1.0, 2.0, 3.0]).unwrap().median, 2.5);
        assert!(Spread::of([]).is_none());
        assert_eq!(s.show(1.0, 1), "2.0 [1.0–3.0]");
        assert_eq!(Spread::of([5.0]).unwrap().show(2.0, 0), "10");
    }

    #[test]
    fn per_request_cpu_and_harness_flag() {
        let s = sample(Kind::Nginx, 1000, Some(0.013), 0.99);
        assert!((s.cpu_us_per_request().unwrap() - 13.0).abs() < 1e-9);
        assert!(s.harness_limited());
        let direct = sample(Kind::Direct, 1000, None, 0.5);
        assert_eq!(direct.cpu_us_per_request(), None);
        assert!(!direct.harness_limited());
        assert_eq!(s.load.rate(), 500.0);
    }

    #[test]
    fn selection_by_kind_and_workload() {
        let samples = vec![sample(Kind::Nginx, 10, Some(1.0), 0.1), sample(Kind::Nginx, 30, Some(1.0), 0.1)];
        let m = median(&samples, Kind::Nginx, Workload::SaturationH1, |s| Some(s.load.requests as f64));
        assert_eq!(m, Some(20.0));
        assert_eq!(median(&samples, Kind::Haproxy, Workload::SaturationH1, |_| Some(1.0)), None);
    }
}

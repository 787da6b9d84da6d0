//! `bench/report.png`: bar charts (medians, with min–max whiskers over the rounds) of proxy
//! CPU per request and of req/s, drawn with plotters and the DejaVu font from Debian.

use std::path::Path;

use anyhow::Context;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::bench::Results;
use crate::bench::stats::{Spread, Workload, spread};
use crate::bench::targets::Kind;
use crate::bench::tools::FONT;

/// One bar: label, color, value.
type Bar = (String, RGBColor, Spread);

fn color(kind: Kind) -> RGBColor {
    match kind {
        Kind::Direct => RGBColor(140, 140, 140),
        Kind::Gateway => RGBColor(31, 119, 180),
        Kind::GatewayJwt => RGBColor(23, 80, 130),
        Kind::GatewayTls => RGBColor(80, 160, 220),
        Kind::Nginx => RGBColor(44, 160, 44),
        Kind::Haproxy => RGBColor(255, 127, 14),
    }
}

/// Bar label: the treatment (first line) and the protocol (second line).
fn label(kind: Kind, workload: Workload) -> String {
    let name = match kind {
        Kind::Direct => "direct",
        Kind::Gateway => "gateway",
        Kind::GatewayJwt | Kind::GatewayTls => "gateway+JWT",
        Kind::Nginx => "nginx",
        Kind::Haproxy => "HAProxy",
    };
    let proto = match (workload, kind) {
        (Workload::SaturationH2, Kind::Direct | Kind::Gateway | Kind::GatewayJwt) => "h2c",
        (Workload::SaturationH2, _) => "TLS h2",
        _ => "HTTP/1.1",
    };
    format!("{name}\n{proto}")
}

/// Bars of `metric` for every treatment measured under `workloads`.
pub fn bars(
    results: &Results,
    workloads: &[Workload],
    metric: impl Fn(&crate::bench::stats::Sample) -> Option<f64>,
) -> Vec<Bar> {
    let kinds = [Kind::Direct, Kind::Gateway, Kind::GatewayJwt, Kind::GatewayTls, Kind::Nginx, Kind::Haproxy];
    let mut out = Vec::new();
    for workload in workloads {
        for kind in kinds {
            if let Some(s) = spread(&results.samples, kind, *workload, &metric) {
                out.push((label(kind, *workload), color(kind), s));
            }
        }
    }
    out
}

fn register_font() -> anyhow::Result<()> {
    let bytes = std::fs::read(FONT).with_context(|| format!("reading {FONT} (apt-get install fonts-dejavu-core)"))?;
    // plotters keeps registered fonts for the life of the process.
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
        .map_err(|_| anyhow::anyhow!("{FONT} is not a usable font"))
}

/// Draw the report's figure to `path`.
pub fn draw(results: &Results, path: &Path) -> anyhow::Result<()> {
    register_font()?;
    let both = [Workload::SaturationH1, Workload::SaturationH2];
    let cpu = bars(results, &both, |s| s.cpu_us_per_request());
    let rate = bars(results, &both, |s| Some(s.load.rate() / 1000.0));
    let area = BitMapBackend::new(path, (1400, 560)).into_drawing_area();
    area.fill(&WHITE)?;
    let (left, right) = area.split_horizontally(700);
    panel(&left, "Proxy CPU per tools/call, µs (lower is better)", &cpu)?;
    panel(&right, "Requests/s at saturation, thousands (32 connections)", &rate)?;
    area.present().with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn panel(area: &DrawingArea<BitMapBackend<'_>, Shift>, title: &str, bars: &[Bar]) -> anyhow::Result<()> {
    let top = bars.iter().map(|(_, _, s)| s.max).fold(0.0_f64, f64::max).max(1e-9) * 1.15;
    let n = bars.len().max(1) as f64;
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(60)
        .y_label_area_size(56)
        .build_cartesian_2d(-0.6_f64..n - 0.4, 0.0..top)?;
    chart.configure_mesh().disable_x_mesh().disable_x_axis().y_label_style(("sans-serif", 15)).draw()?;
    for (i, (name, color, s)) in bars.iter().enumerate() {
        let x = i as f64;
        chart.draw_series(std::iter::once(Rectangle::new([(x - 0.36, 0.0), (x + 0.36, s.median)], color.filled())))?;
        if s.max > s.min {
            let whisker = [(x, s.min), (x, s.max)];
            chart.draw_series(std::iter::once(PathElement::new(whisker.to_vec(), BLACK.stroke_width(2))))?;
        }
        // Above the whisker, so the range never hides the value.
        let value = if s.median >= 100.0 { format!("{:.0}", s.median) } else { format!("{:.1}", s.median) };
        let above = EmptyElement::at((x, s.max)) + Text::new(value, (-14, -20), ("sans-serif", 15).into_font());
        chart.draw_series(std::iter::once(above))?;
        for (line, text) in name.lines().enumerate() {
            // Roughly centred: ~7 px per character at this size.
            let offset = (-3.6 * text.chars().count() as f64) as i32;
            let y = 8 + 17 * i32::try_from(line).unwrap_or(0);
            let below =
                EmptyElement::at((x, 0.0)) + Text::new(text.to_owned(), (offset, y), ("sans-serif", 14).into_font());
            chart.draw_series(std::iter::once(below))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::load::LoadResult;
    use crate::bench::stats::Sample;

    fn sample(kind: Kind, workload: Workload, requests: u64, cpu: f64) -> Sample {
        Sample {
            kind,
            workload,
            load: LoadResult { requests, secs: 1.0, ..LoadResult::default() },
            proxy_cpu_secs: (kind != Kind::Direct).then_some(cpu),
            load_core_busy: 0.5,
            proxy_core_busy: 0.5,
            protocol: String::new(),
        }
    }

    #[test]
    fn bars_skip_direct_cpu_and_label_protocols() {
        let results = Results {
            samples: vec![
                sample(Kind::Direct, Workload::SaturationH1, 90_000, 0.0),
                sample(Kind::Gateway, Workload::SaturationH1, 50_000, 0.5),
                sample(Kind::Nginx, Workload::SaturationH2, 40_000, 0.4),
            ],
            ..Results::default()
        };
        let both = [Workload::SaturationH1, Workload::SaturationH2];
        let cpu = bars(&results, &both, |s| s.cpu_us_per_request());
        let names: Vec<&str> = cpu.iter().map(|(n, _, _)| n.as_str()).collect();
        assert_eq!(names, ["gateway\nHTTP/1.1", "nginx\nTLS h2"]);
        assert!((cpu[0].2.median - 10.0).abs() < 1e-9);
        assert_eq!(bars(&results, &both, |s| Some(s.load.rate())).len(), 3);
    }

    #[test]
    fn draws_a_png() {
        if !Path::new(FONT).exists() {
            return; // the font comes with `cargo xtask bench`'s tool install
        }
        let results = Results {
            samples: vec![
                sample(Kind::Gateway, Workload::SaturationH1, 50_000, 0.5),
                sample(Kind::Nginx, Workload::SaturationH1, 60_000, 0.6),
            ],
            ..Results::default()
        };
        let path = std::env::temp_dir().join(format!("xtask-plot-{}.png", std::process::id()));
        draw(&results, &path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
        std::fs::remove_file(&path).unwrap();
    }
}

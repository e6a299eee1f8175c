//! SVG charts of a report, drawn with plotters' SVG backend (text as SVG `<text>`, so no
//! font files are needed): throughput per second, the push acknowledgement latency
//! distribution, and query latency by kind.
//!
//! Latency distributions are drawn the way HdrHistogram plots them: percentile on a log
//! axis of `1 / (1 - p)`, so that p50, p90, p99, p99.9 and p99.99 are evenly spaced and the
//! tail, which is what matters, is not squeezed into the right edge.

use std::path::Path;

use plotters::prelude::*;

use super::BenchError;
use super::report::Report;

/// Size of every chart in pixels: readable in a browser and in a markdown preview.
const CHART_SIZE: (u32, u32) = (960, 480);
/// The right end of the percentile axis: `1 / (1 - 0.9999)`, i.e. p99.99.
const PERCENTILE_AXIS_MAX: f64 = 10_000.0;
const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

type DrawResult = Result<(), String>;

/// Draws every chart the report has data for into `dir`; returns the file names.
pub fn draw_all(dir: &Path, report: &Report) -> Result<Vec<String>, BenchError> {
    let mut names = Vec::new();
    let mut draw = |name: &str, f: &dyn Fn(&mut String) -> DrawResult| -> Result<(), BenchError> {
        let mut svg = String::new();
        f(&mut svg).map_err(|e| BenchError::new(format!("draw {name}: {e}")))?;
        let path = dir.join(name);
        std::fs::write(&path, svg)
            .map_err(|e| BenchError::new(format!("write {}: {e}", path.display())))?;
        names.push(name.to_string());
        Ok(())
    };
    if !report.timeline.is_empty() {
        draw("throughput.svg", &|svg| throughput(svg, report))?;
    }
    if !report.ack_latency_curve.is_empty() {
        let series = [("push acknowledgement", report.ack_latency_curve.as_slice())];
        draw("ack_latency.svg", &|svg| {
            percentiles(svg, "Push acknowledgement latency", &series)
        })?;
    }
    let queries: Vec<(&str, &[(f64, u64)])> = report
        .query_latency_us
        .iter()
        .filter(|(_, q)| !q.curve.is_empty())
        .map(|(k, q)| (k.as_str(), q.curve.as_slice()))
        .collect();
    if !queries.is_empty() {
        draw("query_latency.svg", &|svg| {
            percentiles(svg, "Query latency by kind", &queries)
        })?;
    }
    Ok(names)
}

fn err<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// Lines per second (acknowledged and sent) over the run.
fn throughput(svg: &mut String, r: &Report) -> DrawResult {
    let root = SVGBackend::with_string(svg, CHART_SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    // Each sample covers the time since the previous one (the last is usually partial).
    let mut prev = 0.0;
    let mut acked = Vec::new();
    let mut sent = Vec::new();
    // Drawn as steps: each rate holds over its whole interval, and a run shorter than a
    // second still shows as a line.
    for s in &r.timeline {
        let span = (s.t - prev).max(1e-3);
        let (a, b) = (s.lines_acked as f64 / span, s.lines_sent as f64 / span);
        acked.extend([(prev, a), (s.t, a)]);
        sent.extend([(prev, b), (s.t, b)]);
        prev = s.t;
    }
    let x_max = r.timeline.last().map_or(1.0, |s| s.t).max(1.0);
    let y_max = acked.iter().chain(&sent).map(|p| p.1).fold(1.0, f64::max) * 1.15;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("{}: lines per second", r.scenario),
            ("sans-serif", 22),
        )
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(90)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("seconds since start")
        .y_desc("lines/s")
        .y_label_formatter(&|v| super::report::thousands(v.max(0.0).round() as u64))
        .draw()
        .map_err(err)?;
    // "Sent" first and thin, so that the acknowledged line, usually the same, is on top.
    for (i, (name, points, width)) in [("sent", &sent, 1), ("acknowledged / written", &acked, 3)]
        .into_iter()
        .enumerate()
    {
        let color = PALETTE[1 - i];
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(width),
            ))
            .map_err(err)?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)
}

/// `1 / (1 - p)` for a percentile `p` in 0..=100, clamped to the axis.
fn percentile_x(p: f64) -> f64 {
    let q = (p / 100.0).clamp(0.0, 1.0);
    if q >= 1.0 - 1.0 / PERCENTILE_AXIS_MAX {
        PERCENTILE_AXIS_MAX
    } else {
        1.0 / (1.0 - q)
    }
}

/// The label of a point of the percentile axis: `1 -> 0%`, `10 -> 90%`, `1000 -> 99.9%`.
fn percentile_label(x: f64) -> String {
    let p = (1.0 - 1.0 / x.max(1.0)) * 100.0;
    let text = format!("{p:.4}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}%")
}

/// Percentile distributions of several series, latency in milliseconds.
fn percentiles(svg: &mut String, title: &str, series: &[(&str, &[(f64, u64)])]) -> DrawResult {
    let root = SVGBackend::with_string(svg, CHART_SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let y_max = series
        .iter()
        .flat_map(|(_, pts)| pts.iter().map(|p| p.1 as f64 / 1000.0))
        .fold(0.001, f64::max)
        * 1.15;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(16)
        .margin_right(40)
        .x_label_area_size(44)
        .y_label_area_size(70)
        .build_cartesian_2d((1.0..PERCENTILE_AXIS_MAX).log_scale(), 0.0..y_max)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency (ms)")
        .x_label_formatter(&|x| percentile_label(*x))
        .draw()
        .map_err(err)?;
    for (i, (name, pts)) in series.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let line: Vec<(f64, f64)> = pts
            .iter()
            .map(|(p, us)| (percentile_x(*p), *us as f64 / 1000.0))
            .collect();
        chart
            .draw_series(LineSeries::new(line, color.stroke_width(2)))
            .map_err(err)?
            .label(*name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_axis() {
        assert_eq!(percentile_x(0.0), 1.0);
        assert!((percentile_x(90.0) - 10.0).abs() < 1e-9);
        assert!((percentile_x(99.9) - 1000.0).abs() < 1e-6);
        assert_eq!(percentile_x(100.0), PERCENTILE_AXIS_MAX);
        assert_eq!(percentile_label(1.0), "0%");
        assert_eq!(percentile_label(2.0), "50%");
        assert_eq!(percentile_label(1000.0), "99.9%");
    }

    /// Every chart of a full report is written and is a well-formed SVG document.
    #[test]
    fn charts_are_svg() {
        let dir = tempfile::tempdir().unwrap();
        let report = crate::bench::report::tests::sample();
        let names = draw_all(dir.path(), &report).unwrap();
        assert_eq!(
            names,
            ["throughput.svg", "ack_latency.svg", "query_latency.svg"]
        );
        for n in names {
            let text = std::fs::read_to_string(dir.path().join(&n)).unwrap();
            assert_svg_well_formed(&text);
            assert!(
                text.contains("<polyline") || text.contains("<path"),
                "{n} has no line"
            );
        }
    }

    /// A light XML check: one `<svg>` root, tags balanced and properly nested.
    pub fn assert_svg_well_formed(text: &str) {
        let body = text.trim();
        assert!(
            body.starts_with("<svg") || body.starts_with("<?xml"),
            "{}",
            &body[..80.min(body.len())]
        );
        assert!(body.ends_with("</svg>"), "not closed");
        let mut stack: Vec<String> = Vec::new();
        let mut rest = body;
        while let Some(open) = rest.find('<') {
            let close = rest[open..].find('>').expect("unclosed tag") + open;
            let tag = &rest[open + 1..close];
            rest = &rest[close + 1..];
            if tag.starts_with('?') || tag.starts_with('!') {
                continue;
            }
            if let Some(name) = tag.strip_prefix('/') {
                assert_eq!(
                    stack.pop().as_deref(),
                    Some(name.trim()),
                    "mismatched </{name}>"
                );
            } else if !tag.ends_with('/') {
                let name = tag.split_whitespace().next().unwrap_or("").to_string();
                stack.push(name);
            }
        }
        assert!(stack.is_empty(), "unclosed: {stack:?}");
    }
}

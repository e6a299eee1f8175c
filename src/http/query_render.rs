//! Loki's JSON for metric results: `matrix` for range queries, `vector` and `scalar` for
//! instant ones, with Prometheus' number formats (timestamps in seconds with millisecond
//! decimals, values as strings in Go's shortest form, `+Inf`, `-Inf`, `NaN`).

use std::fmt::Write;
use std::time::Duration;

use super::json;
use crate::model::Labels;
use crate::query::eval::MetricResult;
use crate::query::exec::QueryStats;

/// The whole response for a metric result.
pub fn metric_response(result: &MetricResult, took: Duration, stats: &QueryStats) -> String {
    let mut out = String::with_capacity(1024);
    out.push_str(r#"{"status":"success","data":{"resultType":""#);
    let mut points = 0usize;
    match result {
        MetricResult::Matrix(series) => {
            out.push_str(r#"matrix","result":["#);
            for (i, s) in series.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(r#"{"metric":"#);
                metric(&mut out, &s.labels);
                out.push_str(r#","values":["#);
                for (j, (ts, v)) in s.points.iter().enumerate() {
                    if j > 0 {
                        out.push(',');
                    }
                    point(&mut out, *ts, *v);
                }
                points += s.points.len();
                out.push_str("]}");
            }
            out.push(']');
        }
        MetricResult::Vector(samples) => {
            out.push_str(r#"vector","result":["#);
            for (i, (labels, ts, v)) in samples.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(r#"{"metric":"#);
                metric(&mut out, labels);
                out.push_str(r#","value":"#);
                point(&mut out, *ts, *v);
                out.push('}');
            }
            points = samples.len();
            out.push(']');
        }
        MetricResult::Scalar(ts, v) => {
            out.push_str(r#"scalar","result":"#);
            point(&mut out, *ts, *v);
            points = 1;
        }
    }
    let _ = write!(
        out,
        r#","stats":{}}}}}"#,
        stats.json(took.as_secs_f64(), points)
    );
    out
}

fn metric(out: &mut String, labels: &Labels) {
    json::string_map(
        out,
        labels.pairs().iter().map(|(k, v)| (k.as_str(), v.as_str())),
    );
}

/// `[1700000000.123,"42"]`.
fn point(out: &mut String, ts_ns: i64, v: f64) {
    out.push('[');
    timestamp(out, ts_ns);
    out.push_str(",\"");
    value(out, v);
    out.push_str("\"]");
}

/// Prometheus' timestamp: seconds, and when the millisecond part is not zero, a dot and
/// exactly three digits.
fn timestamp(out: &mut String, ts_ns: i64) {
    let ms = ts_ns.div_euclid(1_000_000);
    let (sign, ms) = if ms < 0 { ("-", -ms) } else { ("", ms) };
    let _ = write!(out, "{sign}{}", ms / 1000);
    if ms % 1000 != 0 {
        let _ = write!(out, ".{:03}", ms % 1000);
    }
}

/// Go's `strconv.FormatFloat(v, 'f', -1, 64)`, as Prometheus writes sample values.
fn value(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v == f64::INFINITY {
        out.push_str("+Inf");
    } else if v == f64::NEG_INFINITY {
        out.push_str("-Inf");
    } else {
        let _ = write!(out, "{v}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::eval::Series;

    #[test]
    fn shapes_and_numbers_follow_prometheus() {
        let m = MetricResult::Matrix(vec![Series {
            labels: Labels::from_pairs([("app", "a")]),
            points: vec![
                (1_700_000_000_000_000_000, 1.5),
                (1_700_000_000_250_000_000, 2.0),
            ],
        }]);
        let text = metric_response(&m, Duration::ZERO, &QueryStats::default());
        assert!(
            text.contains(
                r#""result":[{"metric":{"app":"a"},"values":[[1700000000,"1.5"],[1700000000.250,"2"]]}]"#
            ),
            "{text}"
        );
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["data"]["resultType"], "matrix");

        let s = metric_response(
            &MetricResult::Scalar(2_000_000_000, 2.0),
            Duration::ZERO,
            &QueryStats::default(),
        );
        assert!(
            s.contains(r#""resultType":"scalar","result":[2,"2"]"#),
            "{s}"
        );
        let mut out = String::new();
        for x in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 1e21, 0.1 + 0.2] {
            value(&mut out, x);
            out.push(' ');
        }
        assert_eq!(
            out,
            "NaN +Inf -Inf 1000000000000000000000 0.30000000000000004 "
        );
    }
}

//! Test helpers for metric queries: syntax trees built by hand, and a harness that runs a
//! plan over lines split between several accumulators, as shards would.
//!
//! The harness stands in for a shard's scan: it selects lines with the leaf's selector and
//! line filters, takes the sample value as the shard would (1, the line's length, or the
//! converted unwrap label, with `__error__` on a failed conversion), and pushes it. The
//! labels of a test line are the labels *after* the pipeline, so a test states what a
//! parser stage would have extracted instead of running one.

use crate::logql::{
    BinOp, BinaryExpr, Cardinality, FilterOperand, Grouping, LabelMatcher, LabelReplace,
    LineFilter, LineFilterOp, LogExpr, LogRange, LogSelector, MatchOp, RangeAggregation, RangeOp,
    SampleExpr, Unwrap, UnwrapConversion, VectorAggregation, VectorMatching, VectorOp,
};
use crate::model::Labels;

use super::QueryError;
use super::eval::{EvalLimits, MetricResult, evaluate};
use super::plan::{SampleSource, Steps, plan_metric};
use super::sample::{ERROR_DETAILS_LABEL, ERROR_LABEL, convert};

pub const S: i64 = 1_000_000_000;

/// A stream selector of equality (`=`) and regex (`~`) matchers, e.g. `&[("app", "=", "a")]`.
pub fn selector(matchers: &[(&str, &str, &str)]) -> LogExpr {
    let matchers = matchers
        .iter()
        .map(|&(name, op, value)| {
            let op = match op {
                "=" => MatchOp::Eq,
                "!=" => MatchOp::Neq,
                "=~" => MatchOp::Re,
                _ => MatchOp::Nre,
            };
            LabelMatcher::new(name, op, value).expect("a valid test matcher")
        })
        .collect();
    LogExpr {
        selector: LogSelector {
            matchers,
            filters: Vec::new(),
        },
        stages: Vec::new(),
    }
}

/// `{app="<app>"}`.
pub fn app(app: &str) -> LogExpr {
    selector(&[("app", "=", app)])
}

/// Adds `|= "needle"` to a selector.
pub fn contains(mut log: LogExpr, needle: &str) -> LogExpr {
    log.selector.filters.push(
        LineFilter::new(
            LineFilterOp::Contains,
            vec![FilterOperand::Literal(needle.to_string())],
        )
        .expect("a valid test filter"),
    );
    log
}

/// A range aggregation under construction.
#[derive(Clone)]
pub struct Range(RangeAggregation);

pub fn range(op: RangeOp, log: LogExpr, range_s: i64) -> Range {
    Range(RangeAggregation {
        op,
        range: LogRange {
            log,
            range_ns: range_s * S,
            offset_ns: 0,
            unwrap: None,
        },
        param: None,
        grouping: None,
    })
}

impl Range {
    pub fn offset(mut self, offset_s: i64) -> Range {
        self.0.range.offset_ns = offset_s * S;
        self
    }
    pub fn range_ns(mut self, ns: i64) -> Range {
        self.0.range.range_ns = ns;
        self
    }
    pub fn unwrap_as(mut self, label: &str, conversion: UnwrapConversion) -> Range {
        self.0.range.unwrap = Some(Unwrap {
            label: label.to_string(),
            conversion,
            post_filters: Vec::new(),
        });
        self
    }
    pub fn unwrap(self, label: &str) -> Range {
        self.unwrap_as(label, UnwrapConversion::Float)
    }
    pub fn param(mut self, p: f64) -> Range {
        self.0.param = Some(p);
        self
    }
    pub fn by(mut self, labels: &[&str]) -> Range {
        self.0.grouping = Some(by(labels));
        self
    }
    pub fn without(mut self, labels: &[&str]) -> Range {
        self.0.grouping = Some(without(labels));
        self
    }
    pub fn expr(self) -> SampleExpr {
        SampleExpr::Range(self.0)
    }
}

impl From<Range> for SampleExpr {
    fn from(r: Range) -> SampleExpr {
        r.expr()
    }
}

pub fn by(labels: &[&str]) -> Grouping {
    Grouping {
        without: false,
        labels: labels.iter().map(|s| s.to_string()).collect(),
    }
}

pub fn without(labels: &[&str]) -> Grouping {
    Grouping {
        without: true,
        labels: labels.iter().map(|s| s.to_string()).collect(),
    }
}

/// `op (inner)` without grouping.
pub fn agg(op: VectorOp, inner: impl Into<SampleExpr>) -> SampleExpr {
    agg_grouped(op, None, inner)
}

pub fn agg_grouped(
    op: VectorOp,
    grouping: Option<Grouping>,
    inner: impl Into<SampleExpr>,
) -> SampleExpr {
    SampleExpr::Vector(VectorAggregation {
        op,
        inner: Box::new(inner.into()),
        grouping,
        param: None,
    })
}

/// `topk(k, inner)` and friends.
pub fn select(
    op: VectorOp,
    k: i64,
    grouping: Option<Grouping>,
    inner: impl Into<SampleExpr>,
) -> SampleExpr {
    SampleExpr::Vector(VectorAggregation {
        op,
        inner: Box::new(inner.into()),
        grouping,
        param: Some(k),
    })
}

pub fn bin(op: BinOp, lhs: impl Into<SampleExpr>, rhs: impl Into<SampleExpr>) -> SampleExpr {
    SampleExpr::Binary(BinaryExpr {
        op,
        lhs: Box::new(lhs.into()),
        rhs: Box::new(rhs.into()),
        return_bool: false,
        matching: None,
    })
}

pub fn bin_bool(op: BinOp, lhs: impl Into<SampleExpr>, rhs: impl Into<SampleExpr>) -> SampleExpr {
    let mut e = bin(op, lhs, rhs);
    if let SampleExpr::Binary(b) = &mut e {
        b.return_bool = true;
    }
    e
}

/// `lhs op on|ignoring (labels) [group_left|group_right (include)] rhs`.
pub fn bin_matching(
    op: BinOp,
    return_bool: bool,
    on: bool,
    labels: &[&str],
    cardinality: Cardinality,
    lhs: impl Into<SampleExpr>,
    rhs: impl Into<SampleExpr>,
) -> SampleExpr {
    SampleExpr::Binary(BinaryExpr {
        op,
        lhs: Box::new(lhs.into()),
        rhs: Box::new(rhs.into()),
        return_bool,
        matching: Some(VectorMatching {
            on,
            labels: labels.iter().map(|s| s.to_string()).collect(),
            cardinality,
        }),
    })
}

pub fn names(labels: &[&str]) -> Vec<String> {
    labels.iter().map(|s| s.to_string()).collect()
}

pub fn lit(v: f64) -> SampleExpr {
    SampleExpr::Literal(v)
}

pub fn vector(v: f64) -> SampleExpr {
    SampleExpr::VectorLiteral(v)
}

pub fn label_replace(
    inner: impl Into<SampleExpr>,
    dst: &str,
    replacement: &str,
    src: &str,
    regex: &str,
) -> SampleExpr {
    SampleExpr::LabelReplace(Box::new(LabelReplace {
        inner: inner.into(),
        dst: dst.to_string(),
        replacement: replacement.to_string(),
        src: src.to_string(),
        regex: regex.to_string(),
    }))
}

pub fn labels(pairs: &[(&str, &str)]) -> Labels {
    Labels::from_pairs(pairs.iter().copied())
}

/// One log line as the pipeline left it: labels (stream labels and extracted ones), time
/// in nanoseconds, text.
#[derive(Clone, Debug)]
pub struct Line {
    pub labels: Labels,
    pub ts: i64,
    pub text: String,
}

pub fn line(pairs: &[(&str, &str)], ts_s: i64, text: &str) -> Line {
    Line {
        labels: labels(pairs),
        ts: ts_s * S,
        text: text.to_string(),
    }
}

/// What a shard would push for `line` to a leaf, if anything: selection by the leaf's
/// selector and line filters, then the value by the leaf's sample source.
fn sample_of(source: SampleSource<'_>, line: &Line) -> Option<(Labels, f64)> {
    match source {
        SampleSource::LineCount => Some((line.labels.clone(), 1.0)),
        SampleSource::LineBytes => Some((line.labels.clone(), line.text.len() as f64)),
        SampleSource::Unwrap(u) => {
            let raw = line.labels.get(&u.label)?;
            match convert(u.conversion, raw) {
                Ok(v) => Some((line.labels.clone(), v)),
                Err(details) => {
                    let mut pairs = line.labels.pairs().to_vec();
                    pairs.push((ERROR_LABEL.into(), "SampleExtractionErr".into()));
                    pairs.push((ERROR_DETAILS_LABEL.into(), details));
                    Some((Labels::from_pairs(pairs), 0.0))
                }
            }
        }
    }
}

/// Plans and evaluates `expr` over `lines`, which are dealt round-robin to `shards`
/// accumulators per leaf (so one series is split between them) and merged.
pub fn run_sharded(
    expr: &SampleExpr,
    steps: Steps,
    lines: &[Line],
    shards: usize,
    max_series: usize,
) -> Result<MetricResult, QueryError> {
    let plan = plan_metric(expr, steps)?;
    let mut partials = Vec::new();
    for leaf in plan.leaves() {
        let mut accumulators: Vec<_> = (0..shards.max(1))
            .map(|_| leaf.accumulator(64 << 20))
            .collect();
        let selector = &leaf.log().selector;
        for (i, l) in lines.iter().enumerate() {
            if !selector.matches_labels(|n| l.labels.get(n))
                || !selector.matches_line(l.text.as_bytes())
            {
                continue;
            }
            if let Some((labels, value)) = sample_of(leaf.sample_source(), l) {
                let n = accumulators.len();
                if let Some(acc) = accumulators.get_mut(i % n) {
                    acc.push(&labels, l.ts, value)?;
                }
            }
        }
        let mut merged = leaf.empty_partial();
        for acc in accumulators {
            merged.merge(acc.finish())?;
        }
        partials.push(merged);
    }
    evaluate(&plan, partials, &EvalLimits { max_series })
}

/// [`run_sharded`] on one shard and on three, checking both give the same answer.
pub fn run(expr: &SampleExpr, steps: Steps, lines: &[Line]) -> Result<MetricResult, QueryError> {
    let one = run_sharded(expr, steps, lines, 1, 0);
    let three = run_sharded(expr, steps, lines, 3, 0);
    match (&one, &three) {
        (Ok(a), Ok(b)) => assert_close(a, b),
        (Err(a), Err(b)) => assert_eq!(a, b),
        _ => panic!("one shard gave {one:?}, three gave {three:?}"),
    }
    one
}

fn close(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
}

/// Equal results, values to 1e-9 relative (sums may round differently when split).
pub fn assert_close(a: &MetricResult, b: &MetricResult) {
    match (a, b) {
        (MetricResult::Matrix(x), MetricResult::Matrix(y)) => {
            assert_eq!(x.len(), y.len(), "{a:?} vs {b:?}");
            for (s, t) in x.iter().zip(y) {
                assert_eq!(s.labels, t.labels);
                assert_eq!(s.points.len(), t.points.len(), "{a:?} vs {b:?}");
                for (p, q) in s.points.iter().zip(&t.points) {
                    assert_eq!(p.0, q.0);
                    assert!(close(p.1, q.1), "{a:?} vs {b:?}");
                }
            }
        }
        (MetricResult::Vector(x), MetricResult::Vector(y)) => {
            assert_eq!(x.len(), y.len(), "{a:?} vs {b:?}");
            for (s, t) in x.iter().zip(y) {
                assert_eq!((&s.0, s.1), (&t.0, t.1));
                assert!(close(s.2, t.2), "{a:?} vs {b:?}");
            }
        }
        (MetricResult::Scalar(t, x), MetricResult::Scalar(u, y)) => {
            assert_eq!(t, u);
            assert!(close(*x, *y));
        }
        _ => panic!("{a:?} vs {b:?}"),
    }
}

/// An instant result as `(labels text, value)` pairs, in result order.
pub fn vector_of(result: &MetricResult) -> Vec<(String, f64)> {
    match result {
        MetricResult::Vector(v) => v.iter().map(|(l, _, x)| (l.to_string(), *x)).collect(),
        other => panic!("expected a vector, got {other:?}"),
    }
}

/// A range result as `(labels text, points)`, each point `(seconds, value)`.
pub fn matrix_of(result: &MetricResult) -> Vec<(String, Vec<(i64, f64)>)> {
    match result {
        MetricResult::Matrix(m) => m
            .iter()
            .map(|s| {
                (
                    s.labels.to_string(),
                    s.points.iter().map(|&(t, v)| (t / S, v)).collect(),
                )
            })
            .collect(),
        other => panic!("expected a matrix, got {other:?}"),
    }
}

/// Asserts an instant result, values to 1e-9 relative, NaN equal to NaN.
pub fn assert_vector(result: &MetricResult, want: &[(&str, f64)]) {
    let got = vector_of(result);
    assert_eq!(got.len(), want.len(), "got {got:?}, want {want:?}");
    for ((gl, gv), (wl, wv)) in got.iter().zip(want) {
        assert_eq!(gl, wl, "got {got:?}, want {want:?}");
        assert!(close(*gv, *wv), "{gl}: got {gv}, want {wv}");
    }
}

/// Asserts a range result: per series, one entry per step, `None` for no point.
pub fn assert_matrix(result: &MetricResult, steps: Steps, want: &[(&str, &[Option<f64>])]) {
    let got = matrix_of(result);
    let times = steps.times().expect("valid steps");
    assert_eq!(
        got.iter().map(|g| g.0.as_str()).collect::<Vec<_>>(),
        want.iter().map(|w| w.0).collect::<Vec<_>>(),
        "series of {got:?}"
    );
    for ((labels, points), (_, expected)) in got.iter().zip(want) {
        assert_eq!(
            expected.len(),
            times.len(),
            "{labels}: one expectation per step"
        );
        let mut it = points.iter();
        let mut next = it.next();
        for (t, e) in times.iter().zip(expected.iter()) {
            let at_t = next.filter(|p| p.0 == t / S);
            match (at_t, e) {
                (Some(p), Some(v)) => {
                    assert!(
                        close(p.1, *v),
                        "{labels} at {}s: got {}, want {v}",
                        t / S,
                        p.1
                    );
                    next = it.next();
                }
                (None, None) => {}
                (got, want) => panic!("{labels} at {}s: got {got:?}, want {want:?}", t / S),
            }
        }
        assert!(next.is_none(), "{labels}: unexpected points {points:?}");
    }
}

/// Asserts that the result holds no series.
pub fn assert_empty(result: &MetricResult) {
    match result {
        MetricResult::Matrix(m) => assert!(m.is_empty(), "{m:?}"),
        MetricResult::Vector(v) => assert!(v.is_empty(), "{v:?}"),
        other => panic!("expected no series, got {other:?}"),
    }
}

/// `Some(v)` for every entry: shorthand for matrices without gaps.
pub fn all(values: &[f64]) -> Vec<Option<f64>> {
    values.iter().map(|&v| Some(v)).collect()
}

pub fn instant(t_s: i64) -> Steps {
    Steps::instant(t_s * S)
}

pub fn steps(start_s: i64, end_s: i64, step_s: i64) -> Steps {
    Steps::range(start_s * S, end_s * S, step_s * S)
}

pub const NONE: Option<f64> = None;

pub fn cardinality_left(include: &[&str]) -> Cardinality {
    Cardinality::ManyToOne(names(include))
}

pub fn cardinality_right(include: &[&str]) -> Cardinality {
    Cardinality::OneToMany(names(include))
}

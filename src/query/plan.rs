//! Splits a metric query into the part every shard runs and the part the receiving core
//! runs.
//!
//! Which question it answers: "for this metric query and these steps, which lines does each
//! shard read, what partial state does it keep, and what finishes the answer?" Every range
//! aggregation of the tree becomes a [`LeafPlan`]: its selector and pipeline, its unwrap, its
//! windows over the steps, the lines to scan and the labels its output series keep. The rest
//! of the tree ([`PlanNode`]: vector aggregations, binary operators, `label_replace`,
//! literals) runs on the receiving core over the merged leaves, step by step (`query::eval`).
//!
//! Steps follow Loki: a range query evaluates at `start`, `start + step`, ... while `<= end`;
//! an instant query (`start == end`, no step) at `start` once. A step `t` of a leaf with
//! range `r` and offset `o` reads the samples in `(t - r - o, t - o]`.
//!
//! Push-down: when a `sum` sits directly on a `count_over_time`, `rate`, `bytes_over_time`,
//! `bytes_rate` or `sum_over_time` without grouping of its own, the shards already group by
//! the `sum`'s labels (Loki's `canInjectVectorGrouping`): summing per group first is exact,
//! also when a series lives on two shards. Nothing else is pushed down.

use std::sync::Arc;

use regex::{Regex, RegexBuilder};

use crate::logql::{
    BinOp, Grouping, LogExpr, MatchOp, ParseError, RangeAggregation, RangeOp, SampleExpr, Unwrap,
    VectorMatching, VectorOp,
};
use crate::model::Labels;

use super::QueryError;
use super::params::POINTS_PER_SERIES_MAX;
use super::sample::{OutputGrouping, Windows};

const NS_PER_S: i64 = 1_000_000_000;

/// Loki's default step divides the range into this many steps.
const DEFAULT_STEP_DIVISOR: i64 = 250;

/// The deepest expression tree planned. The parser bounds parentheses, but a long chain of
/// binary operators nests without them; planning and evaluation recurse once per level.
pub const PLAN_DEPTH_MAX: usize = 256;

/// The steps a metric query is evaluated at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Steps {
    pub start_ns: i64,
    pub end_ns: i64,
    /// 0 for an instant query.
    pub step_ns: i64,
}

impl Steps {
    /// An instant query at `time_ns`.
    pub fn instant(time_ns: i64) -> Steps {
        Steps {
            start_ns: time_ns,
            end_ns: time_ns,
            step_ns: 0,
        }
    }

    /// A range query from `start_ns` to `end_ns` (inclusive) every `step_ns`.
    pub fn range(start_ns: i64, end_ns: i64, step_ns: i64) -> Steps {
        Steps {
            start_ns,
            end_ns,
            step_ns,
        }
    }

    /// Loki's rule: an instant query has `start == end` and no step. Its result is a vector
    /// (or a scalar); a range query's is a matrix.
    pub fn is_instant(&self) -> bool {
        self.start_ns == self.end_ns && self.step_ns == 0
    }

    /// The step timestamps: `start`, `start + step`, ... while `<= end`.
    pub fn times(&self) -> Result<Vec<i64>, QueryError> {
        if self.end_ns < self.start_ns {
            return Err(QueryError::bad_request(
                "end timestamp must not be before start time",
            ));
        }
        if self.is_instant() {
            return Ok(vec![self.start_ns]);
        }
        if self.step_ns <= 0 {
            return Err(QueryError::bad_request(
                "zero or negative query resolution step widths are not accepted. Try a positive integer",
            ));
        }
        if (self.end_ns - self.start_ns) / self.step_ns > POINTS_PER_SERIES_MAX {
            return Err(QueryError::bad_request(
                "exceeded maximum resolution of 11,000 points per time series. Try increasing the value of the step parameter",
            ));
        }
        let mut times = Vec::new();
        let mut t = self.start_ns;
        while t <= self.end_ns {
            times.push(t);
            match t.checked_add(self.step_ns) {
                Some(next) => t = next,
                None => break,
            }
        }
        Ok(times)
    }
}

/// Loki's default `step` of a range query without one: the range divided into 250 steps,
/// rounded down to whole seconds, at least one second. In nanoseconds.
pub fn default_step(start_ns: i64, end_ns: i64) -> i64 {
    (end_ns.saturating_sub(start_ns) / (DEFAULT_STEP_DIVISOR * NS_PER_S)).max(1) * NS_PER_S
}

/// A planned metric query.
#[derive(Debug)]
pub struct MetricPlan {
    steps: Steps,
    step_times: Vec<i64>,
    leaves: Vec<LeafPlan>,
    root: PlanNode,
    /// Whether the tree sorts by value (`sort`, `sort_desc`): then an instant result keeps
    /// the order it was computed in instead of being sorted by labels.
    sortable: bool,
    /// How many nodes count their distinct output series against `max_query_series`.
    series_checks: usize,
}

impl MetricPlan {
    /// One per range aggregation, in the order they appear in the query.
    pub fn leaves(&self) -> &[LeafPlan] {
        &self.leaves
    }

    pub fn steps(&self) -> Steps {
        self.steps
    }

    pub fn is_instant(&self) -> bool {
        self.steps.is_instant()
    }

    /// The timestamps of the steps, ascending.
    pub fn step_times(&self) -> &[i64] {
        &self.step_times
    }

    /// The receiving core's part: the tree over the leaves.
    pub fn root(&self) -> &PlanNode {
        &self.root
    }

    pub(crate) fn sortable(&self) -> bool {
        self.sortable
    }

    pub(crate) fn series_checks(&self) -> usize {
        self.series_checks
    }
}

/// The receiving core's part of a metric query: the tree with every range aggregation
/// replaced by the index of its leaf.
#[derive(Debug)]
pub enum PlanNode {
    /// The merged output of leaf `leaf`. `series_check` is set when this node's distinct
    /// output series count against `max_query_series` (see `query::eval`).
    Leaf {
        leaf: usize,
        series_check: Option<usize>,
    },
    Vector {
        op: VectorOp,
        /// `None` aggregates everything into one group, as `by ()`.
        grouping: Option<Grouping>,
        param: Option<i64>,
        inner: Box<PlanNode>,
        series_check: Option<usize>,
    },
    Binary {
        op: BinOp,
        lhs: Box<PlanNode>,
        rhs: Box<PlanNode>,
        return_bool: bool,
        matching: Option<VectorMatching>,
    },
    /// A scalar.
    Literal(f64),
    /// `vector(x)`.
    VectorLiteral(f64),
    LabelReplace {
        inner: Box<PlanNode>,
        dst: String,
        replacement: String,
        src: String,
        /// The regex, anchored at both ends.
        regex: Regex,
    },
}

/// What a shard runs for one range aggregation.
#[derive(Debug)]
pub struct LeafPlan {
    index: usize,
    aggregation: RangeAggregation,
    /// The grouping of a `sum` around this leaf, applied on the shards.
    pushdown: Option<Grouping>,
    output: Arc<OutputGrouping>,
    windows: Arc<Windows>,
    absent_labels: Labels,
    /// Whether one shard's distinct output series of this leaf are already series that
    /// `max_query_series` counts (see [`LeafPlan::bounds_series`]).
    bounds_series: bool,
}

/// What the value of a leaf's sample is.
#[derive(Clone, Copy, Debug)]
pub enum SampleSource<'a> {
    /// 1 per line.
    LineCount,
    /// The line's length in bytes.
    LineBytes,
    /// The label named by the unwrap, converted (`query::sample::convert`).
    Unwrap(&'a Unwrap),
}

impl LeafPlan {
    /// The leaf's index in [`MetricPlan::leaves`].
    pub fn index(&self) -> usize {
        self.index
    }

    /// Whether a shard may fail the query with `max_query_series` as soon as it holds more
    /// output series of this leaf than the limit. True when the evaluation counts this
    /// leaf's series (a leaf not under a vector aggregation) or those of the `sum` pushed
    /// down into it: every series a shard outputs is then one of the counted series, so a
    /// shard over the limit means the query is over it, and it stops before the receiving
    /// core merges a million series only to refuse them. `absent_over_time` outputs a series
    /// where there is none, so it is not bounded this way.
    pub fn bounds_series(&self) -> bool {
        self.bounds_series
    }

    /// The selector and pipeline stages.
    pub fn log(&self) -> &LogExpr {
        &self.aggregation.range.log
    }

    /// The unwrap and its post-filters, if any.
    pub fn unwrap(&self) -> Option<&Unwrap> {
        self.aggregation.range.unwrap.as_ref()
    }

    pub fn op(&self) -> RangeOp {
        self.aggregation.op
    }

    /// What the caller pushes as a sample's value.
    pub fn sample_source(&self) -> SampleSource<'_> {
        match (self.unwrap(), self.op()) {
            (Some(u), _) => SampleSource::Unwrap(u),
            (None, RangeOp::BytesOverTime | RangeOp::BytesRate) => SampleSource::LineBytes,
            (None, _) => SampleSource::LineCount,
        }
    }

    pub fn range_ns(&self) -> i64 {
        self.aggregation.range.range_ns
    }

    pub fn offset_ns(&self) -> i64 {
        self.aggregation.range.offset_ns
    }

    /// The timestamps whose lines the shards read, half-open `[from, to)` (offset applied).
    pub fn scan_range(&self) -> (i64, i64) {
        self.windows.scan_range()
    }

    /// Whether a line at `ts_ns` falls in some window (with `range < step` there are gaps).
    pub fn covers(&self, ts_ns: i64) -> bool {
        self.windows.covers(ts_ns)
    }

    /// The grouping of a `sum` directly around this leaf that the shards apply.
    pub fn pushdown(&self) -> Option<&Grouping> {
        self.pushdown.as_ref()
    }

    /// The labels the leaf's output series keep; a pipeline may skip extracting the others.
    pub fn output_grouping(&self) -> &OutputGrouping {
        &self.output
    }

    pub fn windows(&self) -> &Windows {
        &self.windows
    }

    /// The labels of `absent_over_time`'s sample: the selector's equality matchers.
    pub fn absent_labels(&self) -> &Labels {
        &self.absent_labels
    }

    /// The quantile of `quantile_over_time` (NaN otherwise).
    pub(crate) fn quantile(&self) -> f64 {
        self.aggregation.param.unwrap_or(f64::NAN)
    }

    pub(crate) fn windows_arc(&self) -> &Arc<Windows> {
        &self.windows
    }

    pub(crate) fn output_grouping_arc(&self) -> &Arc<OutputGrouping> {
        &self.output
    }
}

/// Plans a metric query over these steps.
pub fn plan_metric(expr: &SampleExpr, steps: Steps) -> Result<MetricPlan, QueryError> {
    let step_times = steps.times()?;
    let mut planner = Planner {
        steps,
        step_times: &step_times,
        leaves: Vec::new(),
        sortable: false,
        series_checks: 0,
    };
    let root = planner.node(expr, Parent::Root, 0)?;
    let Planner {
        leaves,
        sortable,
        series_checks,
        ..
    } = planner;
    Ok(MetricPlan {
        steps,
        step_times,
        leaves,
        root,
        sortable,
        series_checks,
    })
}

/// What a node sits under, for push-down and series checks.
#[derive(Clone, Copy)]
enum Parent<'a> {
    Root,
    /// A `sum` that may push its grouping into a range aggregation directly under it.
    Sum(Option<&'a Grouping>),
    /// Any other vector aggregation.
    Aggregation,
    Other,
}

struct Planner<'a> {
    steps: Steps,
    step_times: &'a [i64],
    leaves: Vec<LeafPlan>,
    sortable: bool,
    series_checks: usize,
}

fn invalid(msg: String) -> QueryError {
    QueryError::Parse(ParseError::Invalid(msg))
}

impl Planner<'_> {
    fn next_check(&mut self) -> Option<usize> {
        self.series_checks += 1;
        Some(self.series_checks - 1)
    }

    fn node(
        &mut self,
        expr: &SampleExpr,
        parent: Parent<'_>,
        depth: usize,
    ) -> Result<PlanNode, QueryError> {
        if depth > PLAN_DEPTH_MAX {
            return Err(QueryError::bad_request(format!(
                "the query nests more than {PLAN_DEPTH_MAX} expressions deep"
            )));
        }
        match expr {
            SampleExpr::Range(r) => self.leaf(r, parent),
            SampleExpr::Vector(v) => {
                validate_vector(v.op, v.grouping.as_ref(), v.param, self.steps)?;
                if matches!(v.op, VectorOp::Sort | VectorOp::SortDesc) {
                    self.sortable = true;
                }
                let child_parent = if v.op == VectorOp::Sum {
                    Parent::Sum(v.grouping.as_ref())
                } else {
                    Parent::Aggregation
                };
                let inner = self.node(&v.inner, child_parent, depth + 1)?;
                expect_vector(&inner, v.op.as_str())?;
                let series_check = match inner {
                    PlanNode::Leaf { .. } => self.next_check(),
                    _ => None,
                };
                Ok(PlanNode::Vector {
                    op: v.op,
                    grouping: v.grouping.clone(),
                    param: v.param,
                    inner: Box::new(inner),
                    series_check,
                })
            }
            SampleExpr::Binary(b) => {
                let lhs = self.node(&b.lhs, Parent::Other, depth + 1)?;
                let rhs = self.node(&b.rhs, Parent::Other, depth + 1)?;
                match (&lhs, &rhs) {
                    (PlanNode::Literal(l), _) if b.op.is_set() => Err(invalid(format!(
                        "unexpected literal for left leg of logical/set binary operation ({}): {l:.6}",
                        b.op.as_str()
                    ))),
                    (_, PlanNode::Literal(r)) if b.op.is_set() => Err(invalid(format!(
                        "unexpected literal for right leg of logical/set binary operation ({}): {r:.6}",
                        b.op.as_str()
                    ))),
                    (PlanNode::Literal(l), PlanNode::Literal(r)) => Ok(PlanNode::Literal(
                        crate::query::eval::scalar_binop(b.op, *l, *r),
                    )),
                    _ => Ok(PlanNode::Binary {
                        op: b.op,
                        lhs: Box::new(lhs),
                        rhs: Box::new(rhs),
                        return_bool: b.return_bool,
                        matching: b.matching.clone(),
                    }),
                }
            }
            SampleExpr::Literal(v) => Ok(PlanNode::Literal(*v)),
            SampleExpr::VectorLiteral(v) => Ok(PlanNode::VectorLiteral(*v)),
            SampleExpr::LabelReplace(lr) => {
                let inner = self.node(&lr.inner, Parent::Other, depth + 1)?;
                expect_vector(&inner, "label_replace")?;
                let regex = RegexBuilder::new(&format!("^(?:{})$", lr.regex))
                    .size_limit(crate::logql::REGEX_SIZE_BYTES_MAX)
                    .dfa_size_limit(crate::logql::REGEX_DFA_BYTES_MAX)
                    .build()
                    .map_err(|e| invalid(format!("invalid regex in label_replace: {e}")))?;
                Ok(PlanNode::LabelReplace {
                    inner: Box::new(inner),
                    dst: lr.dst.clone(),
                    replacement: lr.replacement.clone(),
                    src: lr.src.clone(),
                    regex,
                })
            }
        }
    }

    fn leaf(&mut self, r: &RangeAggregation, parent: Parent<'_>) -> Result<PlanNode, QueryError> {
        validate_range(r)?;
        let pushdown = match parent {
            Parent::Sum(grouping) if r.grouping.is_none() && sum_pushes_down(r.op) => {
                Some(grouping.cloned().unwrap_or_default())
            }
            _ => None,
        };
        let output = OutputGrouping::for_leaf(
            r.op,
            r.grouping.as_ref(),
            pushdown.as_ref(),
            r.range.unwrap.as_ref().map(|u| u.label.as_str()),
        );
        let windows = Windows::new(self.step_times, r.range.range_ns, r.range.offset_ns)?;
        let index = self.leaves.len();
        let counted = pushdown.is_some() || matches!(parent, Parent::Root | Parent::Other);
        let bounds_series = counted && r.op != RangeOp::AbsentOverTime;
        self.leaves.push(LeafPlan {
            index,
            aggregation: r.clone(),
            pushdown,
            output: Arc::new(output),
            windows: Arc::new(windows),
            absent_labels: absent_labels(&r.range.log),
            bounds_series,
        });
        let series_check = match parent {
            Parent::Sum(_) | Parent::Aggregation => None,
            Parent::Root | Parent::Other => self.next_check(),
        };
        Ok(PlanNode::Leaf {
            leaf: index,
            series_check,
        })
    }
}

/// Loki's `canInjectVectorGrouping`: the range operations whose sum over a group equals the
/// sum of their per-series values.
fn sum_pushes_down(op: RangeOp) -> bool {
    matches!(
        op,
        RangeOp::BytesOverTime
            | RangeOp::BytesRate
            | RangeOp::SumOverTime
            | RangeOp::Rate
            | RangeOp::CountOverTime
    )
}

/// Loki's `RangeAggregationExpr.validate`, with its messages.
fn validate_range(r: &RangeAggregation) -> Result<(), QueryError> {
    use RangeOp::*;
    if r.grouping.is_some()
        && !matches!(
            r.op,
            AvgOverTime
                | StddevOverTime
                | StdvarOverTime
                | QuantileOverTime
                | MaxOverTime
                | MinOverTime
                | FirstOverTime
                | LastOverTime
        )
    {
        return Err(invalid(format!(
            "grouping not allowed for {} aggregation",
            r.op.as_str()
        )));
    }
    let unwrapped = r.range.unwrap.is_some();
    let needs_unwrap = !matches!(
        r.op,
        BytesOverTime | BytesRate | CountOverTime | Rate | AbsentOverTime
    );
    if unwrapped && matches!(r.op, BytesOverTime | BytesRate | CountOverTime) {
        return Err(invalid(format!(
            "invalid aggregation {} with unwrap",
            r.op.as_str()
        )));
    }
    if !unwrapped && needs_unwrap {
        return Err(invalid(format!(
            "invalid aggregation {} without unwrap",
            r.op.as_str()
        )));
    }
    if r.op == QuantileOverTime && r.param.is_none() {
        return Err(invalid(
            "parameter required for operation quantile_over_time".into(),
        ));
    }
    if r.range.range_ns <= 0 {
        return Err(invalid(format!(
            "the range of {} must be positive",
            r.op.as_str()
        )));
    }
    Ok(())
}

/// Loki's checks of a vector aggregation's parameter and grouping.
fn validate_vector(
    op: VectorOp,
    grouping: Option<&Grouping>,
    param: Option<i64>,
    steps: Steps,
) -> Result<(), QueryError> {
    let name = op.as_str();
    match op {
        VectorOp::Topk | VectorOp::Bottomk | VectorOp::ApproxTopk => {
            let Some(k) = param else {
                return Err(invalid(format!("parameter required for operation {name}")));
            };
            if k <= 0 {
                return Err(invalid(format!(
                    "invalid parameter (must be greater than 0) {name}({k}"
                )));
            }
            if op == VectorOp::ApproxTopk {
                if grouping.is_some() {
                    return Err(invalid(format!(
                        "grouping not allowed for {name} aggregation"
                    )));
                }
                if !steps.is_instant() {
                    return Err(QueryError::bad_request(
                        "approx_topk is only supported on instant queries",
                    ));
                }
            }
        }
        _ => {
            if let Some(p) = param {
                return Err(invalid(format!(
                    "unsupported parameter for operation {name}({p},"
                )));
            }
        }
    }
    Ok(())
}

/// A literal cannot be aggregated or relabelled (Loki has no evaluator for it there).
fn expect_vector(node: &PlanNode, what: &str) -> Result<(), QueryError> {
    match node {
        PlanNode::Literal(_) => Err(QueryError::bad_request(format!(
            "unexpected literal as the argument of {what}: it needs a vector"
        ))),
        _ => Ok(()),
    }
}

/// Loki's `absentLabels`: the selector's equality matchers, except names matched more than
/// once or by another operator.
fn absent_labels(log: &LogExpr) -> Labels {
    let mut kept: Vec<(&str, &str)> = Vec::new();
    let mut dropped: Vec<&str> = Vec::new();
    for m in &log.selector.matchers {
        if m.name == "__name__" {
            continue;
        }
        // An empty value sets nothing (Prometheus' label builder deletes it), so a later
        // equality matcher on the same name still counts.
        if m.op == MatchOp::Eq && !kept.iter().any(|(n, v)| *n == m.name && !v.is_empty()) {
            kept.push((&m.name, &m.value));
        } else {
            dropped.push(&m.name);
        }
    }
    Labels::from_pairs(kept.into_iter().filter(|(n, _)| !dropped.contains(n)))
}

#[cfg(test)]
mod tests;

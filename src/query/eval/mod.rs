//! The receiving core's part of a metric query: the merged leaves through the plan's tree,
//! step by step, into Loki's result types.
//!
//! Which question it answers: "given every leaf's merged partial state, what does the query
//! return?" As Loki's step evaluators do, each step evaluates the whole tree on vectors:
//! leaves read their windows, vector aggregations group, binary operators match, and
//! `label_replace` relabels. A range query returns a matrix sorted by labels; an instant
//! query a vector sorted by labels (kept in computed order when the query sorts by value)
//! or, for a literal, a scalar. Literal-only queries (`vector(1) + 1`) need no leaves.
//!
//! `max_query_series` is checked where Loki checks it: on the result (more series than the
//! limit in the first step, or in all steps together, fails the query), and on what a
//! sharded Loki sends between querier and frontend, the distinct series of each leaf not
//! under a vector aggregation and of each aggregation directly over a leaf.

mod aggregate;
mod binary;
mod labels_index;
mod leaf;

use std::collections::HashMap;
use std::sync::Arc;

use ahash::RandomState;

use crate::logql::VectorOp;
use crate::model::Labels;

use super::QueryError;
use super::plan::{MetricPlan, PlanNode};
use super::sample::{LeafPartial, cell_kind};

pub use binary::scalar_binop;

use labels_index::{LabelsCache, LabelsIndex};
use leaf::LeafReader;

/// Limits applied while evaluating.
#[derive(Clone, Copy, Debug)]
pub struct EvalLimits {
    /// Loki's `max_query_series`; 0 disables the check.
    pub max_series: usize,
}

/// One series of a matrix: its points in time order.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub labels: Labels,
    pub points: Vec<(i64, f64)>,
}

/// The points of one series, `(timestamp_ns, value)` in time order.
type Points = Vec<(i64, f64)>;

/// A metric query's answer, as Loki types it.
#[derive(Clone, Debug, PartialEq)]
pub enum MetricResult {
    /// A range query: series sorted by labels.
    Matrix(Vec<Series>),
    /// An instant query: samples (labels, timestamp, value).
    Vector(Vec<(Labels, i64, f64)>),
    /// An instant query of a literal.
    Scalar(i64, f64),
}

/// One sample of a step's vector; labels are shared between steps where they do not change.
#[derive(Clone, Debug)]
pub(crate) struct Sample {
    pub labels: Arc<Labels>,
    pub value: f64,
}

/// Loki's `NewSeriesLimitError`.
fn series_limit_error(max: usize) -> QueryError {
    QueryError::series_limit(max)
}

/// Evaluates a planned metric query over the merged partial state of each of its leaves
/// (one per leaf, as [`MetricPlan::leaves`] lists them).
pub fn evaluate(
    plan: &MetricPlan,
    mut partials: Vec<LeafPartial>,
    limits: &EvalLimits,
) -> Result<MetricResult, QueryError> {
    partials.sort_by_key(|p| p.leaf());
    if partials.len() != plan.leaves().len() {
        return Err(QueryError::Internal(format!(
            "a plan of {} range aggregations evaluated with {} partial states",
            plan.leaves().len(),
            partials.len()
        )));
    }
    for (leaf, partial) in plan.leaves().iter().zip(&partials) {
        let kind = cell_kind(leaf.op(), leaf.unwrap().is_some());
        if partial.leaf() != leaf.index()
            || partial.fingerprint() != leaf.windows().fingerprint()
            || partial.table.kind() != kind
        {
            return Err(QueryError::Internal(format!(
                "the partial state for leaf {} was not made by this plan",
                leaf.index()
            )));
        }
    }
    let times = plan.step_times();
    let start = plan.steps().start_ns;
    if let PlanNode::Literal(v) = plan.root() {
        if plan.is_instant() {
            return Ok(MetricResult::Scalar(start, *v));
        }
        return Ok(MetricResult::Matrix(vec![Series {
            labels: Labels::default(),
            points: times.iter().map(|&t| (t, *v)).collect(),
        }]));
    }
    let mut ev = Evaluator {
        readers: plan
            .leaves()
            .iter()
            .zip(&partials)
            .map(|(l, p)| LeafReader::new(l, p))
            .collect(),
        checks: (0..plan.series_checks())
            .map(|_| LabelsIndex::default())
            .collect(),
        caches: HashMap::default(),
        max_series: limits.max_series,
    };
    let max = limits.max_series;
    let mut index: LabelsIndex<usize> = LabelsIndex::default();
    let mut matrix: Vec<(Arc<Labels>, Points)> = Vec::new();
    for (i, &t) in times.iter().enumerate() {
        let vector = ev.eval(plan.root(), i)?;
        if i == 0 && max > 0 && vector.len() > max {
            return Err(series_limit_error(max));
        }
        if plan.is_instant() {
            let mut out: Vec<(Labels, i64, f64)> = vector
                .into_iter()
                .map(|s| (Arc::unwrap_or_clone(s.labels), t, s.value))
                .collect();
            if !plan.sortable() {
                out.sort_by(|a, b| a.0.cmp(&b.0));
            }
            return Ok(MetricResult::Vector(out));
        }
        for s in vector {
            if let Some(points) = index.get(&s.labels).and_then(|i| matrix.get_mut(i)) {
                points.1.push((t, s.value));
                continue;
            }
            if max > 0 && matrix.len() >= max {
                return Err(series_limit_error(max));
            }
            index.insert(Arc::clone(&s.labels), matrix.len());
            matrix.push((s.labels, vec![(t, s.value)]));
        }
    }
    drop(index);
    let mut series: Vec<Series> = matrix
        .into_iter()
        .map(|(labels, points)| Series {
            labels: Arc::unwrap_or_clone(labels),
            points,
        })
        .collect();
    series.sort_by(|a, b| a.labels.cmp(&b.labels));
    Ok(MetricResult::Matrix(series))
}

struct Evaluator<'a> {
    readers: Vec<LeafReader<'a>>,
    /// Distinct output series per checked node.
    checks: Vec<LabelsIndex<()>>,
    /// Relabelling caches, per node (by address: the plan outlives the evaluation).
    caches: HashMap<usize, LabelsCache, RandomState>,
    max_series: usize,
}

impl Evaluator<'_> {
    fn check_series(&mut self, check: Option<usize>, vector: &[Sample]) -> Result<(), QueryError> {
        let (Some(c), max) = (check, self.max_series) else {
            return Ok(());
        };
        if max == 0 {
            return Ok(());
        }
        if let Some(seen) = self.checks.get_mut(c) {
            for s in vector {
                if seen.get(&s.labels).is_none() {
                    seen.insert(Arc::clone(&s.labels), ());
                    if seen.len() > max {
                        return Err(series_limit_error(max));
                    }
                }
            }
        }
        Ok(())
    }

    fn cache(&mut self, node: &PlanNode) -> &mut LabelsCache {
        self.caches
            .entry(node as *const PlanNode as usize)
            .or_default()
    }

    /// The vector of `node` at step `step`.
    fn eval(&mut self, node: &PlanNode, step: usize) -> Result<Vec<Sample>, QueryError> {
        match node {
            PlanNode::Leaf { leaf, series_check } => {
                let reader = self.readers.get_mut(*leaf).ok_or_else(|| {
                    QueryError::Internal(format!("no partial state for leaf {leaf}"))
                })?;
                let vector = reader.step(step)?;
                self.check_series(*series_check, &vector)?;
                Ok(vector)
            }
            PlanNode::Vector {
                op,
                grouping,
                param,
                inner,
                series_check,
            } => {
                let input = self.eval(inner, step)?;
                let op = if *op == VectorOp::ApproxTopk {
                    VectorOp::Topk
                } else {
                    *op
                };
                let cache = self.cache(node);
                let vector = aggregate::aggregate(op, grouping.as_ref(), *param, input, cache);
                self.check_series(*series_check, &vector)?;
                Ok(vector)
            }
            PlanNode::Binary {
                op,
                lhs,
                rhs,
                return_bool,
                matching,
            } => match (lhs.as_ref(), rhs.as_ref()) {
                (PlanNode::Literal(l), other) => {
                    let vector = self.eval(other, step)?;
                    Ok(binary::literal_binop(*op, *l, true, *return_bool, vector))
                }
                (other, PlanNode::Literal(r)) => {
                    let vector = self.eval(other, step)?;
                    Ok(binary::literal_binop(*op, *r, false, *return_bool, vector))
                }
                _ => {
                    // Loki steps the right side first; the order only shows in which of
                    // two failing sides is reported.
                    let right = self.eval(rhs, step)?;
                    let left = self.eval(lhs, step)?;
                    if op.is_set() {
                        Ok(binary::set_binop(*op, matching.as_ref(), left, right))
                    } else {
                        binary::vector_binop(*op, *return_bool, matching.as_ref(), left, right)
                    }
                }
            },
            PlanNode::VectorLiteral(v) => Ok(vec![Sample {
                labels: Arc::new(Labels::default()),
                value: *v,
            }]),
            PlanNode::Literal(_) => Err(QueryError::Internal(
                "a scalar where a vector is needed survived planning".into(),
            )),
            PlanNode::LabelReplace {
                inner,
                dst,
                replacement,
                src,
                regex,
            } => {
                let mut vector = self.eval(inner, step)?;
                let cache = self.cache(node);
                for s in &mut vector {
                    s.labels = cache.get_or_insert(&s.labels, |labels| {
                        let value = labels.get(src).unwrap_or_default();
                        let Some(caps) = regex.captures(value) else {
                            return labels.clone();
                        };
                        let mut out = String::new();
                        caps.expand(replacement, &mut out);
                        // An empty replacement deletes `dst`; other labels keep their values,
                        // empty ones included (Prometheus' builder only drops what it sets).
                        Labels::from_pairs_keeping_empty(
                            labels
                                .pairs()
                                .iter()
                                .filter(|(k, _)| k != dst)
                                .cloned()
                                .chain((!out.is_empty()).then(|| (dst.clone(), out))),
                        )
                    });
                }
                Ok(vector)
            }
        }
    }
}

#[cfg(test)]
mod tests;

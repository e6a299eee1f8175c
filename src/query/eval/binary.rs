//! Binary operators between vectors and scalars at one step, with Prometheus' vector
//! matching as Loki implements it (`evaluator.go`: `vectorBinop`, `vectorAnd/Or/Unless`,
//! `resultMetric`, `LiteralStepEvaluator`; `syntax.MergeBinOp`).
//!
//! Which question it answers: "which samples of the two sides pair up, and what does each
//! pair give?" Samples pair on their matching signature: all labels, `on (...)` labels only,
//! or all but `ignoring (...)` labels. One-to-one matching fails when a side has two samples
//! with one signature; `group_left`/`group_right` allow many on one side and copy the
//! `include` labels from the one side. A comparison without `bool` keeps the left value and
//! drops the pairs it does not hold for; with `bool` it gives 0 or 1. Division and modulo by
//! zero are NaN (a Loki rule; Prometheus gives ±Inf).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use ahash::RandomState;
use xxhash_rust::xxh3::Xxh3;

use crate::logql::{BinOp, Cardinality, VectorMatching};
use crate::model::Labels;
use crate::query::QueryError;

use super::Sample;

/// `op` applied to two scalars, as Loki folds literal operations (`reduceBinOp`): a
/// comparison gives 0 or 1.
pub fn scalar_binop(op: BinOp, left: f64, right: f64) -> f64 {
    merge_values(op, left, right, false, false, false).unwrap_or(f64::NAN)
}

/// The value `op` gives for a pair, or `None` when a filtering comparison drops it.
fn apply(op: BinOp, l: f64, r: f64, filter: bool) -> Option<f64> {
    let compare = |holds: bool| {
        if holds {
            Some(1.0)
        } else if filter {
            None
        } else {
            Some(0.0)
        }
    };
    match op {
        BinOp::Add => Some(l + r),
        BinOp::Sub => Some(l - r),
        BinOp::Mul => Some(l * r),
        BinOp::Div => Some(if r == 0.0 { f64::NAN } else { l / r }),
        BinOp::Mod => Some(if r == 0.0 { f64::NAN } else { l % r }),
        BinOp::Pow => Some(l.powf(r)),
        BinOp::Eq => compare(l == r),
        BinOp::Ne => compare(l != r),
        BinOp::Gt => compare(l > r),
        BinOp::Ge => compare(l >= r),
        BinOp::Lt => compare(l < r),
        BinOp::Le => compare(l <= r),
        BinOp::And | BinOp::Or | BinOp::Unless => None,
    }
}

/// Loki's `MergeBinOp`: a filtering comparison that holds keeps the vector side's value
/// (the right one when `swap`, for a literal on the left).
fn merge_values(
    op: BinOp,
    left: f64,
    right: f64,
    swap: bool,
    filter: bool,
    comparison: bool,
) -> Option<f64> {
    let res = apply(op, left, right, filter);
    if comparison && filter && res.is_some() {
        return Some(if swap { right } else { left });
    }
    res
}

/// A vector and a scalar: every sample against the literal, keeping the sample's labels.
pub(crate) fn literal_binop(
    op: BinOp,
    literal: f64,
    literal_on_left: bool,
    return_bool: bool,
    vector: Vec<Sample>,
) -> Vec<Sample> {
    let comparison = op.is_comparison();
    vector
        .into_iter()
        .filter_map(|s| {
            let (left, right) = if literal_on_left {
                (literal, s.value)
            } else {
                (s.value, literal)
            };
            merge_values(op, left, right, literal_on_left, !return_bool, comparison).map(|value| {
                Sample {
                    labels: s.labels,
                    value,
                }
            })
        })
        .collect()
}

/// The matching signature of a sample's labels: a hash of all labels, of the `on` labels,
/// or of all but the `ignoring` labels.
fn signature(labels: &Labels, matching: Option<&VectorMatching>) -> u64 {
    let mut h = Xxh3::new();
    for (k, v) in labels.pairs() {
        let keep = match matching {
            None => true,
            Some(m) if m.on => m.labels.iter().any(|n| n == k),
            Some(m) => !m.labels.iter().any(|n| n == k),
        };
        if keep {
            h.update(&(k.len() as u32).to_le_bytes());
            h.update(k.as_bytes());
            h.update(&(v.len() as u32).to_le_bytes());
            h.update(v.as_bytes());
        }
    }
    h.digest()
}

fn labels_hash(labels: &Labels) -> u64 {
    signature(labels, None)
}

fn signatures(samples: &[Sample], matching: Option<&VectorMatching>) -> Vec<u64> {
    samples
        .iter()
        .map(|s| signature(&s.labels, matching))
        .collect()
}

/// `and`, `or`, `unless`: set operations on signatures, many to many.
pub(crate) fn set_binop(
    op: BinOp,
    matching: Option<&VectorMatching>,
    lhs: Vec<Sample>,
    rhs: Vec<Sample>,
) -> Vec<Sample> {
    match op {
        BinOp::And => {
            if lhs.is_empty() || rhs.is_empty() {
                return Vec::new();
            }
            let right: HashSet<u64, RandomState> = signatures(&rhs, matching).into_iter().collect();
            lhs.into_iter()
                .filter(|s| right.contains(&signature(&s.labels, matching)))
                .collect()
        }
        BinOp::Or => {
            if lhs.is_empty() {
                return rhs;
            }
            if rhs.is_empty() {
                return lhs;
            }
            let left: HashSet<u64, RandomState> = signatures(&lhs, matching).into_iter().collect();
            let mut out = lhs;
            out.extend(
                rhs.into_iter()
                    .filter(|s| !left.contains(&signature(&s.labels, matching))),
            );
            out
        }
        _ => {
            if lhs.is_empty() || rhs.is_empty() {
                return lhs;
            }
            let right: HashSet<u64, RandomState> = signatures(&rhs, matching).into_iter().collect();
            lhs.into_iter()
                .filter(|s| !right.contains(&signature(&s.labels, matching)))
                .collect()
        }
    }
}

/// Loki's `resultMetric`: the labels of a matched pair's result. `one` is the side whose
/// `include` labels are copied.
fn result_labels(
    many: &Arc<Labels>,
    one: &Labels,
    matching: Option<&VectorMatching>,
) -> Arc<Labels> {
    let Some(m) = matching else {
        return Arc::clone(many);
    };
    let include: &[String] = match &m.cardinality {
        Cardinality::OneToOne => &[],
        Cardinality::ManyToOne(include) | Cardinality::OneToMany(include) => include,
    };
    let one_to_one = m.cardinality == Cardinality::OneToOne;
    let drops = one_to_one && (m.on || !m.labels.is_empty());
    if !drops && include.is_empty() {
        return Arc::clone(many);
    }
    let mut pairs: Vec<(String, String)> = many
        .pairs()
        .iter()
        .filter(|(k, _)| {
            if !one_to_one {
                return true;
            }
            let listed = m.labels.iter().any(|n| n == k);
            if m.on { listed } else { !listed }
        })
        .cloned()
        .collect();
    for name in include {
        pairs.retain(|(k, _)| k != name);
        if let Some(v) = one.get(name).filter(|v| !v.is_empty()) {
            pairs.push((name.clone(), v.to_string()));
        }
    }
    // Empty values the "many" side carries stay, as in Prometheus' builder.
    Arc::new(Labels::from_pairs_keeping_empty(pairs))
}

/// Arithmetic and comparison between two vectors (Loki's `vectorBinop`).
pub(crate) fn vector_binop(
    op: BinOp,
    return_bool: bool,
    matching: Option<&VectorMatching>,
    lhs: Vec<Sample>,
    rhs: Vec<Sample>,
) -> Result<Vec<Sample>, QueryError> {
    let cardinality = matching.map_or(&Cardinality::OneToOne, |m| &m.cardinality);
    let one_to_many = matches!(cardinality, Cardinality::OneToMany(_));
    // One-to-many is many-to-one with the sides swapped back for the operation.
    let (many_side, one_side) = if one_to_many { (rhs, lhs) } else { (lhs, rhs) };

    let mut one_by_sig: HashMap<u64, Sample, RandomState> = HashMap::default();
    for s in one_side {
        let sig = signature(&s.labels, matching);
        if one_by_sig.insert(sig, s).is_some() {
            let side = if one_to_many { "left" } else { "right" };
            return Err(QueryError::bad_request(format!(
                "found duplicate series on the {side} hand-side;many-to-many matching not allowed: matching labels must be unique on one side"
            )));
        }
    }

    let comparison = op.is_comparison();
    let mut matched: HashMap<u64, HashSet<u64, RandomState>, RandomState> = HashMap::default();
    let mut out = Vec::new();
    for s in many_side {
        let sig = signature(&s.labels, matching);
        let Some(one) = one_by_sig.get(&sig) else {
            continue;
        };
        let labels = result_labels(&s.labels, &one.labels, matching);
        if *cardinality == Cardinality::OneToOne {
            if matched.insert(sig, HashSet::default()).is_some() {
                return Err(QueryError::bad_request(
                    "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)",
                ));
            }
        } else if !matched.entry(sig).or_default().insert(labels_hash(&labels)) {
            return Err(QueryError::bad_request(
                "multiple matches for labels: grouping labels must ensure unique matches",
            ));
        }
        let (left, right) = if one_to_many {
            (one.value, s.value)
        } else {
            (s.value, one.value)
        };
        if let Some(value) = merge_values(op, left, right, false, !return_bool, comparison) {
            out.push(Sample { labels, value });
        }
    }
    Ok(out)
}

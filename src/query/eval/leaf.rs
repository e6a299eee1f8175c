//! A range aggregation's vector at each step, read from its merged partial state.
//!
//! Which question it answers: "which series have samples in step `i`'s window, and what is
//! their value?" Values are computed a block of steps at a time, series by series: a
//! series' cells are read once per block with cursors that only move forward (windows only
//! move forward), instead of once per step at scattered addresses. The block holds at most
//! [`BLOCK_BYTES_MAX`] of values. A series carrying `__error__` with samples in a window
//! fails the query with Loki's pipeline error, at the first step where that happens;
//! `absent_over_time` gives its one sample only when no series has any.

use std::sync::Arc;

use crate::logql::RangeOp;
use crate::model::Labels;
use crate::query::QueryError;
use crate::query::plan::LeafPlan;
use crate::query::sample::cells::{Cell, Scratch, WindowContext};
use crate::query::sample::table::{SeriesCells, Table, with_table};
use crate::query::sample::{ERROR_LABEL, LeafPartial, fails_query};

use super::Sample;

/// The most bytes of values one block holds (one `Option<f64>` per series and step).
const BLOCK_BYTES_MAX: usize = 4 << 20;
/// The most steps one block covers.
const BLOCK_STEPS_MAX: usize = 64;

/// Loki's `PipelineError` text, for a series that kept `__error__`.
pub(crate) fn pipeline_error(labels: &Labels) -> QueryError {
    let kind = labels.get(ERROR_LABEL).unwrap_or_default();
    QueryError::Pipeline(format!(
        "pipeline error: '{kind}' for series: '{labels}'.\n\
         Use a label filter to intentionally skip this error. (e.g | __error__!=\"{kind}\").\n\
         To skip all potential errors you can match empty errors.(e.g __error__=\"\")\n\
         The label filter can also be specified after unwrap. (e.g | unwrap latency | __error__=\"\" )\n"
    ))
}

/// The reading state of one leaf over the steps.
pub(crate) struct LeafReader<'a> {
    plan: &'a LeafPlan,
    table: &'a Table,
    labels: Vec<Arc<Labels>>,
    fails: Vec<bool>,
    /// Per series: the first cell at or after the window's first interval, and the first
    /// cell at or after its end.
    cursors: Vec<(usize, usize)>,
    absent: Arc<Labels>,
    scratch: Scratch,
    /// Steps per block.
    block_steps: usize,
    /// The first step of the current block, and how many steps it holds.
    block_first: usize,
    block_len: usize,
    /// Values of the current block, step-major: `[step - block_first][series]`.
    block: Vec<Option<f64>>,
    /// The first (step, series) of the block whose series fails the query.
    block_error: Option<(usize, usize)>,
}

impl<'a> LeafReader<'a> {
    pub fn new(plan: &'a LeafPlan, partial: &'a LeafPartial) -> LeafReader<'a> {
        let table = &partial.table;
        let labels: Vec<Arc<Labels>> =
            with_table!(table, s => s.iter().map(|x| Arc::new(x.labels.clone())).collect());
        let fails = labels.iter().map(|l| fails_query(l)).collect();
        let per_step = labels.len().max(1) * std::mem::size_of::<Option<f64>>();
        let block_steps = (BLOCK_BYTES_MAX / per_step).clamp(1, BLOCK_STEPS_MAX);
        LeafReader {
            plan,
            table,
            cursors: vec![(0, 0); labels.len()],
            labels,
            fails,
            absent: Arc::new(plan.absent_labels().clone()),
            scratch: Scratch::default(),
            block_steps,
            block_first: 0,
            block_len: 0,
            block: Vec::new(),
            block_error: None,
        }
    }

    /// The leaf's vector at step `step`, in label order. Steps are read in increasing order.
    pub fn step(&mut self, step: usize) -> Result<Vec<Sample>, QueryError> {
        if step < self.block_first || step >= self.block_first + self.block_len {
            self.fill_block(step);
        }
        let row = step - self.block_first;
        if let Some((error_row, series)) = self.block_error
            && row >= error_row
        {
            let labels = self.labels.get(series).map_or(&*self.absent, |l| &**l);
            return Err(pipeline_error(labels));
        }
        let n = self.labels.len();
        let values = self.block.get(row * n..(row + 1) * n).unwrap_or_default();
        if self.plan.op() == RangeOp::AbsentOverTime {
            return Ok(if values.iter().all(Option::is_none) {
                vec![Sample {
                    labels: Arc::clone(&self.absent),
                    value: 1.0,
                }]
            } else {
                Vec::new()
            });
        }
        Ok(values
            .iter()
            .zip(&self.labels)
            .filter_map(|(v, l)| {
                v.map(|value| Sample {
                    labels: Arc::clone(l),
                    value,
                })
            })
            .collect())
    }

    /// Computes the values of the block starting at `first`.
    fn fill_block(&mut self, first: usize) {
        let windows = self.plan.windows();
        let len = self
            .block_steps
            .min(windows.step_count().saturating_sub(first));
        let n = self.labels.len();
        self.block_first = first;
        self.block_len = len;
        self.block.clear();
        self.block.resize(len * n, None);
        self.block_error = None;
        let contexts: Vec<(u32, u32, WindowContext)> = (first..first + len)
            .map(|step| {
                let (lo, hi) = windows.run(step);
                let ctx = WindowContext {
                    op: self.plan.op(),
                    range_ns: self.plan.range_ns(),
                    end_ns: windows.window_end(step),
                    quantile: self.plan.quantile(),
                };
                (lo, hi, ctx)
            })
            .collect();
        let table = self.table;
        with_table!(table, series => fill_series(series, &contexts, self));
    }
}

fn fill_series<C: Cell>(
    series: &[SeriesCells<C>],
    contexts: &[(u32, u32, WindowContext)],
    reader: &mut LeafReader<'_>,
) {
    let n = reader.labels.len();
    for (k, s) in series.iter().enumerate() {
        let Some((a, b)) = reader.cursors.get_mut(k) else {
            continue;
        };
        let fails = reader.fails.get(k).copied().unwrap_or(false);
        for (row, (lo, hi, ctx)) in contexts.iter().enumerate() {
            while s.intervals.get(*a).is_some_and(|j| j < lo) {
                *a += 1;
            }
            if *b < *a {
                *b = *a;
            }
            while s.intervals.get(*b).is_some_and(|j| j < hi) {
                *b += 1;
            }
            let Some(cells) = s.cells.get(*a..*b).filter(|c| !c.is_empty()) else {
                continue;
            };
            if fails {
                // Series are visited in label order, so the first error by step, then by
                // series, is the one a step-by-step reading meets first.
                if reader.block_error.is_none_or(|(r, _)| row < r) {
                    reader.block_error = Some((row, k));
                }
                break;
            }
            if let Some(slot) = reader.block.get_mut(row * n + k) {
                *slot = Some(C::window_value(cells, ctx, &mut reader.scratch));
            }
        }
    }
}

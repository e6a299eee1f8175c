//! A range aggregation's vector at each step, read from its merged partial state.
//!
//! Which question it answers: "which series have samples in step `i`'s window, and what is
//! their value?" Each series keeps two cursors into its sorted non-empty intervals; windows
//! only move forward, so reading every step costs one pass over the cells plus one check per
//! series and step. A series carrying `__error__` with samples in a window fails the query
//! with Loki's pipeline error; `absent_over_time` gives its one sample only when no series
//! has any.

use std::sync::Arc;

use crate::logql::RangeOp;
use crate::model::Labels;
use crate::query::QueryError;
use crate::query::plan::LeafPlan;
use crate::query::sample::cells::{Cell, WindowContext};
use crate::query::sample::table::{SeriesCells, Table, with_table};
use crate::query::sample::{ERROR_LABEL, LeafPartial, fails_query};

use super::Sample;

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
}

impl<'a> LeafReader<'a> {
    pub fn new(plan: &'a LeafPlan, partial: &'a LeafPartial) -> LeafReader<'a> {
        let table = &partial.table;
        let labels: Vec<Arc<Labels>> =
            with_table!(table, s => s.iter().map(|x| Arc::new(x.labels.clone())).collect());
        let fails = labels.iter().map(|l| fails_query(l)).collect();
        let cursors = vec![(0, 0); labels.len()];
        LeafReader {
            plan,
            table,
            labels,
            fails,
            cursors,
            absent: Arc::new(plan.absent_labels().clone()),
        }
    }

    /// The leaf's vector at step `step`, in label order.
    pub fn step(&mut self, step: usize) -> Result<Vec<Sample>, QueryError> {
        let windows = self.plan.windows();
        let (lo, hi) = windows.run(step);
        let ctx = WindowContext {
            op: self.plan.op(),
            range_ns: self.plan.range_ns(),
            end_ns: windows.window_end(step),
            quantile: self.plan.quantile(),
        };
        let mut out = Vec::new();
        let table = self.table;
        with_table!(table, series => step_series(
            series,
            (lo, hi),
            &ctx,
            &self.labels,
            &self.fails,
            &mut self.cursors,
            &mut out,
        ))?;
        if ctx.op == RangeOp::AbsentOverTime {
            return Ok(if out.is_empty() {
                vec![Sample {
                    labels: Arc::clone(&self.absent),
                    value: 1.0,
                }]
            } else {
                Vec::new()
            });
        }
        Ok(out)
    }
}

fn step_series<C: Cell>(
    series: &[SeriesCells<C>],
    (lo, hi): (u32, u32),
    ctx: &WindowContext,
    labels: &[Arc<Labels>],
    fails: &[bool],
    cursors: &mut [(usize, usize)],
    out: &mut Vec<Sample>,
) -> Result<(), QueryError> {
    for (k, s) in series.iter().enumerate() {
        let Some((a, b)) = cursors.get_mut(k) else {
            continue;
        };
        while s.intervals.get(*a).is_some_and(|&j| j < lo) {
            *a += 1;
        }
        if *b < *a {
            *b = *a;
        }
        while s.intervals.get(*b).is_some_and(|&j| j < hi) {
            *b += 1;
        }
        let Some(cells) = s.cells.get(*a..*b).filter(|c| !c.is_empty()) else {
            continue;
        };
        let Some(l) = labels.get(k) else {
            continue;
        };
        if fails.get(k).copied().unwrap_or(false) {
            return Err(pipeline_error(l));
        }
        out.push(Sample {
            labels: Arc::clone(l),
            value: C::window_value(cells, ctx),
        });
    }
    Ok(())
}

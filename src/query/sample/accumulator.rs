//! The shard side of a range aggregation: samples in, a mergeable partial state out.
//!
//! Which question it answers: "what does a shard keep of the samples it extracted, and how
//! do two shards' states become one?" A [`LeafAccumulator`] maps each sample to its output
//! series (the leaf's grouping) and to its elementary interval (the leaf's windows), and
//! folds it into that series' state for that interval. [`LeafAccumulator::finish`] yields a
//! [`LeafPartial`], sorted by series labels, that crosses threads and merges exactly with the
//! partials of other shards ([`LeafPartial::merge`]).
//!
//! Memory is bounded: every series, every cell and every kept sample is counted against the
//! budget given when the accumulator is made, and a push that would exceed it fails with
//! `query_memory_bytes_max`.

use std::collections::HashMap;
use std::sync::Arc;

use ahash::RandomState;

use crate::logql::RangeOp;
use crate::model::{Labels, stream_hash};
use crate::query::QueryError;
use crate::query::plan::LeafPlan;

use super::grouping::OutputGrouping;
use super::table::{CellKind, Table};
use super::windows::Windows;

/// Bookkeeping bytes per distinct input label set (its hash and slot in a map).
const SOURCE_BYTES: usize = 32;
/// Bookkeeping bytes per output series beyond its labels (the series and its map entry).
const SERIES_BYTES: usize = 96;
/// Bookkeeping bytes per label pair beyond its text.
const LABEL_PAIR_BYTES: usize = 48;

/// The state each range operation keeps per interval.
pub(crate) fn cell_kind(op: RangeOp, unwrapped: bool) -> CellKind {
    match op {
        RangeOp::CountOverTime | RangeOp::AbsentOverTime => CellKind::Count,
        RangeOp::Rate if !unwrapped => CellKind::Count,
        RangeOp::Rate | RangeOp::BytesOverTime | RangeOp::BytesRate | RangeOp::SumOverTime => {
            CellKind::Sum
        }
        RangeOp::MinOverTime => CellKind::Min,
        RangeOp::MaxOverTime => CellKind::Max,
        RangeOp::AvgOverTime => CellKind::Avg,
        RangeOp::StddevOverTime | RangeOp::StdvarOverTime => CellKind::Moments,
        RangeOp::FirstOverTime => CellKind::First,
        RangeOp::LastOverTime => CellKind::Last,
        RangeOp::QuantileOverTime | RangeOp::RateCounter => CellKind::Samples,
    }
}

fn labels_bytes(labels: &Labels) -> usize {
    labels
        .pairs()
        .iter()
        .map(|(k, v)| k.len() + v.len() + LABEL_PAIR_BYTES)
        .sum()
}

impl LeafPlan {
    /// A fresh accumulator for this leaf on one shard, which may hold at most
    /// `memory_bytes_max` bytes of state.
    pub fn accumulator(&self, memory_bytes_max: usize) -> LeafAccumulator {
        LeafAccumulator {
            leaf: self.index(),
            windows: Arc::clone(self.windows_arc()),
            grouping: Arc::clone(self.output_grouping_arc()),
            table: Table::new(cell_kind(self.op(), self.unwrap().is_some())),
            by_source: HashMap::default(),
            by_labels: HashMap::default(),
            bytes: 0,
            budget: memory_bytes_max,
            series_max: 0,
            counted_series: 0,
        }
    }

    /// The partial state of a shard that found nothing.
    pub fn empty_partial(&self) -> LeafPartial {
        self.accumulator(0).finish()
    }
}

/// One shard's accumulating state of one range aggregation.
#[derive(Debug)]
pub struct LeafAccumulator {
    leaf: usize,
    windows: Arc<Windows>,
    grouping: Arc<OutputGrouping>,
    table: Table,
    /// Input label set (by the caller's hash) to output series slot.
    by_source: HashMap<u64, u32, RandomState>,
    /// Output labels to output series slot.
    by_labels: HashMap<Labels, u32, RandomState>,
    bytes: usize,
    budget: usize,
    /// More output series than this fail with `max_query_series` (0: no limit); set only
    /// for leaves that [`LeafPlan::bounds_series`].
    series_max: usize,
    /// Output series counted against `series_max` so far.
    counted_series: usize,
}

impl LeafAccumulator {
    /// Fails a push that would make more than `max` output series (0: no limit).
    pub fn with_series_max(mut self, max: usize) -> LeafAccumulator {
        self.series_max = max;
        self
    }

    /// Adds one sample of a line with these labels (after the pipeline, with `__error__`
    /// when it failed). `value` is 1 for counting operations, the line's length in bytes
    /// for `bytes_*`, the converted label value for `unwrap`. Samples outside every window
    /// are ignored.
    pub fn push(&mut self, labels: &Labels, ts_ns: i64, value: f64) -> Result<(), QueryError> {
        self.push_hashed(stream_hash("", labels), || labels.clone(), ts_ns, value)
    }

    /// [`push`](Self::push) without building the labels for every line: `series_hash`
    /// identifies the line's label set (equal hashes must mean equal labels, e.g. a 64-bit
    /// hash of them, as Loki keys its series), and `make_labels` is called only the first
    /// time a hash is seen.
    #[inline]
    pub fn push_hashed(
        &mut self,
        series_hash: u64,
        make_labels: impl FnOnce() -> Labels,
        ts_ns: i64,
        value: f64,
    ) -> Result<(), QueryError> {
        let Some(interval) = self.windows.interval_of(ts_ns) else {
            return Ok(());
        };
        let slot = match self.by_source.get(&series_hash) {
            Some(&slot) => slot,
            None => self.add_source(series_hash, make_labels())?,
        };
        let added = self.table.add(slot as usize, interval, ts_ns, value);
        self.charge(added)
    }

    /// The output series slot of a label set (as [`push_hashed`](Self::push_hashed) finds
    /// it), for a caller that pushes many samples of one label set with
    /// [`push_to_slot`](Self::push_to_slot) or [`push_run`](Self::push_run).
    pub fn slot_of(
        &mut self,
        series_hash: u64,
        make_labels: impl FnOnce() -> Labels,
    ) -> Result<u32, QueryError> {
        match self.by_source.get(&series_hash) {
            Some(&slot) => Ok(slot),
            None => self.add_source(series_hash, make_labels()),
        }
    }

    /// [`push_hashed`](Self::push_hashed) into a slot from [`slot_of`](Self::slot_of), in
    /// interval `interval` (which [`Windows::interval_of`] gave for `ts_ns`).
    #[inline]
    pub fn push_to_slot(
        &mut self,
        slot: u32,
        interval: u32,
        ts_ns: i64,
        value: f64,
    ) -> Result<(), QueryError> {
        let added = self.table.add(slot as usize, interval, ts_ns, value);
        self.charge(added)
    }

    /// Whether [`push_run`](Self::push_run) takes runs (counting and summing operations).
    pub fn takes_runs(&self) -> bool {
        self.table.takes_runs()
    }

    /// Adds `count` samples of one slot in one interval at once, whose values sum to
    /// `value_sum` (as many calls of [`push_to_slot`](Self::push_to_slot) would). Fails with
    /// an internal error when the operation does not take runs ([`takes_runs`](Self::takes_runs)).
    #[inline]
    pub fn push_run(
        &mut self,
        slot: u32,
        interval: u32,
        count: u64,
        value_sum: f64,
    ) -> Result<(), QueryError> {
        match self
            .table
            .add_run(slot as usize, interval, count, value_sum)
        {
            Some(added) => self.charge(added),
            None => Err(QueryError::Internal(
                "a run of samples pushed to an operation that keeps samples".into(),
            )),
        }
    }

    /// The leaf's windows.
    pub fn windows(&self) -> &Windows {
        &self.windows
    }

    fn add_source(&mut self, hash: u64, labels: Labels) -> Result<u32, QueryError> {
        let out = self.grouping.apply(labels);
        let slot = match self.by_labels.get(&out) {
            Some(&slot) => slot,
            None => {
                // A series with `__error__` is not counted here: the receiving core fails
                // the query with the pipeline's error (the message the user needs), or drops
                // the label if the query preserves errors, when it evaluates the step.
                if self.series_max > 0 && out.get("__error__").is_none() {
                    self.counted_series += 1;
                    if self.counted_series > self.series_max {
                        return Err(QueryError::series_limit(self.series_max));
                    }
                }
                self.charge(SERIES_BYTES + 2 * labels_bytes(&out))?;
                let slot = u32::try_from(self.table.len()).map_err(|_| self.over_budget())?;
                self.table.push_series(out.clone());
                self.by_labels.insert(out, slot);
                slot
            }
        };
        self.charge(SOURCE_BYTES)?;
        self.by_source.insert(hash, slot);
        Ok(slot)
    }

    #[inline]
    fn charge(&mut self, bytes: usize) -> Result<(), QueryError> {
        self.bytes = self.bytes.saturating_add(bytes);
        if self.bytes > self.budget {
            return Err(self.over_budget());
        }
        Ok(())
    }

    fn over_budget(&self) -> QueryError {
        QueryError::Limit {
            limit: "query_memory_bytes_max",
            message: format!(
                "the query needs more than {} bytes of memory for its samples on one core \
                 (query_memory_bytes_max); select fewer streams, shorten the time range or \
                 aggregate with fewer labels",
                self.budget
            ),
        }
    }

    /// The bytes of state held so far, as counted against the budget.
    pub fn memory_bytes(&self) -> usize {
        self.bytes
    }

    /// The finished state, ready to be sent to the receiving core and merged.
    pub fn finish(mut self) -> LeafPartial {
        self.table.finish();
        LeafPartial {
            leaf: self.leaf,
            fingerprint: self.windows.fingerprint(),
            table: self.table,
            bytes: self.bytes,
        }
    }
}

/// The state of one range aggregation over part of the data, per output series and
/// elementary interval; merges exactly with the partials of other shards.
#[derive(Clone, Debug)]
pub struct LeafPartial {
    leaf: usize,
    fingerprint: u64,
    pub(crate) table: Table,
    bytes: usize,
}

impl LeafPartial {
    /// The index of the leaf (range aggregation) in its plan.
    pub fn leaf(&self) -> usize {
        self.leaf
    }

    /// The number of output series.
    pub fn series_count(&self) -> usize {
        self.table.len()
    }

    /// The bytes of state, as counted against the memory budget.
    pub fn memory_bytes(&self) -> usize {
        self.bytes
    }

    /// Folds in the partial of another shard for the same leaf of the same plan.
    pub fn merge(&mut self, other: LeafPartial) -> Result<(), QueryError> {
        if self.leaf != other.leaf || self.fingerprint != other.fingerprint {
            return Err(QueryError::Internal(format!(
                "merging the partial state of leaf {} into leaf {} of another plan",
                other.leaf, self.leaf
            )));
        }
        self.bytes = self.bytes.saturating_add(other.bytes);
        if self.table.merge(other.table) {
            Ok(())
        } else {
            Err(QueryError::Internal(
                "merging partial states of different range operations".into(),
            ))
        }
    }

    pub(crate) fn fingerprint(&self) -> u64 {
        self.fingerprint
    }
}

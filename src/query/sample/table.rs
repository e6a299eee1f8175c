//! Per-series sparse interval states: the storage under [`super::LeafAccumulator`] and
//! [`super::LeafPartial`].
//!
//! Which question it answers: "which intervals of this series have samples, and what is
//! their state?" A series keeps its non-empty intervals sorted, so a series that appears in
//! a few windows costs only those, and windows are read with forward-moving cursors. Lines
//! of one stream arrive in time order, so the usual update touches the last interval.

use std::cmp::Ordering;

use crate::model::Labels;

use super::cells::{Avg, Cell, Count, First, Last, Max, Min, Moments, Samples, Sum};

/// One output series: its labels and its non-empty intervals with their states.
#[derive(Clone, Debug)]
pub(crate) struct SeriesCells<C> {
    pub labels: Labels,
    /// Interval indexes, strictly increasing.
    pub intervals: Vec<u32>,
    /// The state of each interval in `intervals`.
    pub cells: Vec<C>,
}

impl<C: Cell> SeriesCells<C> {
    pub fn new(labels: Labels) -> SeriesCells<C> {
        SeriesCells {
            labels,
            intervals: Vec::new(),
            cells: Vec::new(),
        }
    }

    /// Adds a sample to interval `j`; returns whether a new cell was created.
    #[inline]
    pub fn add(&mut self, j: u32, ts: i64, value: f64) -> bool {
        self.add_with(j, || C::new(ts, value), |c| c.add(ts, value))
    }

    /// Updates the cell of interval `j` with `update`, or creates it with `new`; returns
    /// whether a new cell was created.
    #[inline]
    pub fn add_with(
        &mut self,
        j: u32,
        new: impl FnOnce() -> C,
        update: impl FnOnce(&mut C),
    ) -> bool {
        match self.intervals.last() {
            Some(&last) if last == j => {
                if let Some(c) = self.cells.last_mut() {
                    update(c);
                }
                false
            }
            Some(&last) if last > j => match self.intervals.binary_search(&j) {
                Ok(i) => {
                    if let Some(c) = self.cells.get_mut(i) {
                        update(c);
                    }
                    false
                }
                Err(i) => {
                    self.intervals.insert(i, j);
                    self.cells.insert(i, new());
                    true
                }
            },
            _ => {
                self.intervals.push(j);
                self.cells.push(new());
                true
            }
        }
    }

    pub fn finish(&mut self) {
        for c in &mut self.cells {
            c.finish();
        }
    }

    /// Merges the same series built elsewhere, interval by interval.
    pub fn merge(&mut self, other: SeriesCells<C>) {
        if other.intervals.is_empty() {
            return;
        }
        if self.intervals.is_empty() {
            self.intervals = other.intervals;
            self.cells = other.cells;
            return;
        }
        let n = self.intervals.len() + other.intervals.len();
        let mut intervals = Vec::with_capacity(n);
        let mut cells = Vec::with_capacity(n);
        let mut a = std::mem::take(&mut self.intervals)
            .into_iter()
            .zip(std::mem::take(&mut self.cells))
            .peekable();
        let mut b = other.intervals.into_iter().zip(other.cells).peekable();
        loop {
            let order = match (a.peek(), b.peek()) {
                (Some(x), Some(y)) => x.0.cmp(&y.0),
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (None, None) => break,
            };
            let next = match order {
                Ordering::Less => a.next(),
                Ordering::Greater => b.next(),
                Ordering::Equal => match (a.next(), b.next()) {
                    (Some((j, mut x)), Some((_, y))) => {
                        x.merge(y);
                        Some((j, x))
                    }
                    (x, y) => x.or(y),
                },
            };
            if let Some((j, c)) = next {
                intervals.push(j);
                cells.push(c);
            }
        }
        self.intervals = intervals;
        self.cells = cells;
    }
}

/// The series of one leaf, typed by the state its range operation keeps.
#[derive(Clone, Debug)]
pub(crate) enum Table {
    Count(Vec<SeriesCells<Count>>),
    Sum(Vec<SeriesCells<Sum>>),
    Min(Vec<SeriesCells<Min>>),
    Max(Vec<SeriesCells<Max>>),
    Avg(Vec<SeriesCells<Avg>>),
    Moments(Vec<SeriesCells<Moments>>),
    First(Vec<SeriesCells<First>>),
    Last(Vec<SeriesCells<Last>>),
    Samples(Vec<SeriesCells<Samples>>),
}

/// Runs `$body` with `$series` bound to the table's typed series vector.
macro_rules! with_table {
    ($table:expr, $series:ident => $body:expr) => {
        match $table {
            Table::Count($series) => $body,
            Table::Sum($series) => $body,
            Table::Min($series) => $body,
            Table::Max($series) => $body,
            Table::Avg($series) => $body,
            Table::Moments($series) => $body,
            Table::First($series) => $body,
            Table::Last($series) => $body,
            Table::Samples($series) => $body,
        }
    };
}
pub(crate) use with_table;

/// Which state a table keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CellKind {
    Count,
    Sum,
    Min,
    Max,
    Avg,
    Moments,
    First,
    Last,
    Samples,
}

impl Table {
    pub fn new(kind: CellKind) -> Table {
        match kind {
            CellKind::Count => Table::Count(Vec::new()),
            CellKind::Sum => Table::Sum(Vec::new()),
            CellKind::Min => Table::Min(Vec::new()),
            CellKind::Max => Table::Max(Vec::new()),
            CellKind::Avg => Table::Avg(Vec::new()),
            CellKind::Moments => Table::Moments(Vec::new()),
            CellKind::First => Table::First(Vec::new()),
            CellKind::Last => Table::Last(Vec::new()),
            CellKind::Samples => Table::Samples(Vec::new()),
        }
    }

    pub fn kind(&self) -> CellKind {
        match self {
            Table::Count(_) => CellKind::Count,
            Table::Sum(_) => CellKind::Sum,
            Table::Min(_) => CellKind::Min,
            Table::Max(_) => CellKind::Max,
            Table::Avg(_) => CellKind::Avg,
            Table::Moments(_) => CellKind::Moments,
            Table::First(_) => CellKind::First,
            Table::Last(_) => CellKind::Last,
            Table::Samples(_) => CellKind::Samples,
        }
    }

    pub fn len(&self) -> usize {
        with_table!(self, s => s.len())
    }

    /// Adds a series with no samples yet; returns its index.
    pub fn push_series(&mut self, labels: Labels) -> usize {
        with_table!(self, s => {
            s.push(SeriesCells::new(labels));
            s.len() - 1
        })
    }

    /// Adds a sample to series `slot`, interval `j`; returns the bytes it added.
    #[inline]
    pub fn add(&mut self, slot: usize, j: u32, ts: i64, value: f64) -> usize {
        with_table!(self, s => match s.get_mut(slot) {
            Some(series) => add_bytes(series, j, ts, value),
            None => 0,
        })
    }

    /// Adds `count` samples at once to series `slot`, interval `j`, for the tables whose
    /// state is a count or a sum: a count grows by `count`, a sum by `value_sum`, as
    /// `count` calls of [`Table::add`] would (their values are whole numbers, so the sum
    /// is exact in any order). Returns the bytes it added, or `None` for a table of another
    /// kind (the caller must add sample by sample).
    #[inline]
    pub fn add_run(&mut self, slot: usize, j: u32, count: u64, value_sum: f64) -> Option<usize> {
        if count == 0 {
            return Some(0);
        }
        Some(match self {
            Table::Count(s) => match s.get_mut(slot) {
                Some(series) => add_run_bytes(series, j, count as f64),
                None => 0,
            },
            Table::Sum(s) => match s.get_mut(slot) {
                Some(series) => add_run_bytes(series, j, value_sum),
                None => 0,
            },
            _ => return None,
        })
    }

    /// Whether [`Table::add_run`] takes runs.
    pub fn takes_runs(&self) -> bool {
        matches!(self, Table::Count(_) | Table::Sum(_))
    }

    /// Sorts the series by labels and finishes their cells.
    pub fn finish(&mut self) {
        with_table!(self, s => {
            s.sort_by(|a, b| a.labels.cmp(&b.labels));
            for series in s.iter_mut() {
                series.finish();
            }
        })
    }

    /// Merges another finished table of the same kind (both sorted by labels); returns
    /// false when the kinds differ.
    pub fn merge(&mut self, other: Table) -> bool {
        macro_rules! arm {
            ($($variant:ident),*) => {
                match (self, other) {
                    $((Table::$variant(a), Table::$variant(b)) => {
                        merge_sorted(a, b);
                        true
                    })*
                    _ => false,
                }
            };
        }
        arm!(Count, Sum, Min, Max, Avg, Moments, First, Last, Samples)
    }
}

#[inline]
fn add_bytes<C: Cell>(series: &mut SeriesCells<C>, j: u32, ts: i64, value: f64) -> usize {
    if series.add(j, ts, value) {
        cell_bytes::<C>() + C::BYTES_PER_SAMPLE
    } else {
        C::BYTES_PER_SAMPLE
    }
}

/// A run of samples into a count or sum cell: the cell grows by `amount` (both add their
/// value, and a count cell's state is its number of samples).
#[inline]
fn add_run_bytes<C: Cell + RunCell>(series: &mut SeriesCells<C>, j: u32, amount: f64) -> usize {
    if series.add_with(j, || C::run(amount), |c| c.grow(amount)) {
        cell_bytes::<C>()
    } else {
        0
    }
}

/// Cells a run of samples can be added to at once.
pub(crate) trait RunCell {
    /// The state of a new cell holding a run worth `amount`.
    fn run(amount: f64) -> Self;
    /// Adds a run worth `amount`.
    fn grow(&mut self, amount: f64);
}

impl RunCell for Count {
    fn run(amount: f64) -> Count {
        Count(amount)
    }
    fn grow(&mut self, amount: f64) {
        self.0 += amount;
    }
}

impl RunCell for Sum {
    fn run(amount: f64) -> Sum {
        Sum(amount)
    }
    fn grow(&mut self, amount: f64) {
        self.0 += amount;
    }
}

/// What one new cell costs: its index and its state.
pub(crate) fn cell_bytes<C>() -> usize {
    std::mem::size_of::<u32>() + std::mem::size_of::<C>()
}

/// Merge-joins two series lists sorted by labels into `a`.
fn merge_sorted<C: Cell>(a: &mut Vec<SeriesCells<C>>, b: Vec<SeriesCells<C>>) {
    if b.is_empty() {
        return;
    }
    let mut out = Vec::with_capacity(a.len() + b.len());
    let mut left = std::mem::take(a).into_iter().peekable();
    let mut right = b.into_iter().peekable();
    loop {
        let order = match (left.peek(), right.peek()) {
            (Some(x), Some(y)) => x.labels.cmp(&y.labels),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => break,
        };
        let next = match order {
            Ordering::Less => left.next(),
            Ordering::Greater => right.next(),
            Ordering::Equal => match (left.next(), right.next()) {
                (Some(mut x), Some(y)) => {
                    x.merge(y);
                    Some(x)
                }
                (x, y) => x.or(y),
            },
        };
        if let Some(s) = next {
            out.push(s);
        }
    }
    *a = out;
}

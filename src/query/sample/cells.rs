//! The state one series keeps per elementary interval, for each range operation, and the
//! value of a window made of consecutive intervals.
//!
//! Which question it answers: "what is the smallest exact summary of the samples of one
//! interval, and how do summaries combine?" Every state here merges with another of the same
//! interval associatively and commutatively, so shards can each build part of a series and
//! the receiving core merges them without loss:
//! - counts (`count_over_time`, `rate`, `absent_over_time`) and sums (`bytes_*`,
//!   `sum_over_time`, `rate` of an unwrap): one `f64`, exact for counts;
//! - `min`/`max`: NaN only when every sample is NaN, as Loki's `min_over_time` keeps it;
//! - `avg`: sum and count;
//! - `stddev`/`stdvar`: Welford's count, mean and M2, merged with Chan's formula;
//! - `first`/`last`: the sample with the smallest/largest `(timestamp, value)`;
//! - `quantile`/`rate_counter`: every sample, sorted by `(timestamp, value)`.
//!
//! The value functions reproduce Loki's `range_vector.go` per operation: `rate` is a count or
//! sum divided by the range in seconds, `rate_counter` is Prometheus' extrapolated counter
//! rate with resets, quantiles interpolate linearly, variances are population variances.

use std::cmp::Ordering;

use smallvec::SmallVec;

use crate::logql::RangeOp;

use super::convert::go_seconds;

/// What a window's value depends on besides its cells.
#[derive(Clone, Copy, Debug)]
pub(crate) struct WindowContext {
    pub op: RangeOp,
    pub range_ns: i64,
    /// The closed right end of the window (`t - offset`).
    pub end_ns: i64,
    /// The quantile of `quantile_over_time`.
    pub quantile: f64,
}

/// Buffers reused between windows, so that reading a window does not allocate.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    values: Vec<f64>,
    samples: Vec<(i64, f64)>,
}

/// The state of one series in one elementary interval.
pub(crate) trait Cell: Clone + std::fmt::Debug + Send + Sync + 'static {
    /// Bytes one more sample adds beyond the cell itself (sample lists grow).
    const BYTES_PER_SAMPLE: usize = 0;

    fn new(ts: i64, value: f64) -> Self;
    fn add(&mut self, ts: i64, value: f64);
    /// Folds in the state of the same interval built elsewhere.
    fn merge(&mut self, other: Self);
    /// Brings the state into the form merges and windows expect (sorts sample lists).
    fn finish(&mut self) {}
    /// The value of a window made of these cells (non-empty, in time order). `scratch` is
    /// reused from window to window.
    fn window_value(cells: &[Self], ctx: &WindowContext, scratch: &mut Scratch) -> f64;
}

/// The number of samples (`value` is ignored: each line counts once).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Count(pub f64);

impl Cell for Count {
    fn new(_: i64, _: f64) -> Self {
        Count(1.0)
    }
    fn add(&mut self, _: i64, _: f64) {
        self.0 += 1.0;
    }
    fn merge(&mut self, other: Self) {
        self.0 += other.0;
    }
    fn window_value(cells: &[Self], ctx: &WindowContext, _: &mut Scratch) -> f64 {
        let count: f64 = cells.iter().map(|c| c.0).sum();
        match ctx.op {
            RangeOp::Rate => count / go_seconds(ctx.range_ns),
            RangeOp::AbsentOverTime => 1.0,
            _ => count,
        }
    }
}

/// The sum of the values (line lengths for the `bytes_*` operations).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Sum(pub f64);

impl Cell for Sum {
    fn new(_: i64, value: f64) -> Self {
        Sum(value)
    }
    fn add(&mut self, _: i64, value: f64) {
        self.0 += value;
    }
    fn merge(&mut self, other: Self) {
        self.0 += other.0;
    }
    fn window_value(cells: &[Self], ctx: &WindowContext, _: &mut Scratch) -> f64 {
        let sum: f64 = cells.iter().map(|c| c.0).sum();
        match ctx.op {
            RangeOp::Rate | RangeOp::BytesRate => sum / go_seconds(ctx.range_ns),
            _ => sum,
        }
    }
}

/// Loki's `min_over_time` step: a NaN is replaced by anything, and nothing replaces a
/// number but a smaller one. The result is the smallest non-NaN value, or NaN if all are.
#[inline]
fn min_step(current: f64, value: f64) -> f64 {
    if value < current || current.is_nan() {
        value
    } else {
        current
    }
}

#[inline]
fn max_step(current: f64, value: f64) -> f64 {
    if value > current || current.is_nan() {
        value
    } else {
        current
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Min(pub f64);

impl Cell for Min {
    fn new(_: i64, value: f64) -> Self {
        Min(value)
    }
    fn add(&mut self, _: i64, value: f64) {
        self.0 = min_step(self.0, value);
    }
    fn merge(&mut self, other: Self) {
        self.0 = min_step(self.0, other.0);
    }
    fn window_value(cells: &[Self], _: &WindowContext, _: &mut Scratch) -> f64 {
        cells.iter().fold(f64::NAN, |m, c| min_step(m, c.0))
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Max(pub f64);

impl Cell for Max {
    fn new(_: i64, value: f64) -> Self {
        Max(value)
    }
    fn add(&mut self, _: i64, value: f64) {
        self.0 = max_step(self.0, value);
    }
    fn merge(&mut self, other: Self) {
        self.0 = max_step(self.0, other.0);
    }
    fn window_value(cells: &[Self], _: &WindowContext, _: &mut Scratch) -> f64 {
        cells.iter().fold(f64::NAN, |m, c| max_step(m, c.0))
    }
}

/// Sum and count, for `avg_over_time`. With infinities the result equals Loki's running
/// mean: `+Inf` with finite values stays `+Inf`, `+Inf` with `-Inf` or NaN is NaN.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Avg {
    pub sum: f64,
    pub count: f64,
}

impl Cell for Avg {
    fn new(_: i64, value: f64) -> Self {
        Avg {
            sum: value,
            count: 1.0,
        }
    }
    fn add(&mut self, _: i64, value: f64) {
        self.sum += value;
        self.count += 1.0;
    }
    fn merge(&mut self, other: Self) {
        self.sum += other.sum;
        self.count += other.count;
    }
    fn window_value(cells: &[Self], _: &WindowContext, _: &mut Scratch) -> f64 {
        let (sum, count) = cells
            .iter()
            .fold((0.0, 0.0), |(s, n), c| (s + c.sum, n + c.count));
        sum / count
    }
}

/// Welford's running count, mean and sum of squared deviations (M2).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Moments {
    pub count: f64,
    pub mean: f64,
    pub m2: f64,
}

impl Moments {
    /// Chan et al.'s parallel combination of two Welford states.
    fn combine(&mut self, other: &Moments) {
        let count = self.count + other.count;
        let delta = other.mean - self.mean;
        self.mean += delta * (other.count / count);
        self.m2 += other.m2 + delta * delta * (self.count * other.count / count);
        self.count = count;
    }
}

impl Cell for Moments {
    fn new(_: i64, value: f64) -> Self {
        // Welford's first step from (0, 0, 0), as Loki's stdvarOverTime takes it: a NaN or
        // infinite first value leaves M2 NaN, as it does in Loki.
        let mean = value;
        Moments {
            count: 1.0,
            mean,
            m2: value * (value - mean),
        }
    }
    fn add(&mut self, _: i64, value: f64) {
        self.count += 1.0;
        let delta = value - self.mean;
        self.mean += delta / self.count;
        self.m2 += delta * (value - self.mean);
    }
    fn merge(&mut self, other: Self) {
        self.combine(&other);
    }
    fn window_value(cells: &[Self], ctx: &WindowContext, _: &mut Scratch) -> f64 {
        let Some((first, rest)) = cells.split_first() else {
            return f64::NAN;
        };
        let mut m = *first;
        for c in rest {
            m.combine(c);
        }
        let variance = m.m2 / m.count;
        if ctx.op == RangeOp::StddevOverTime {
            variance.sqrt()
        } else {
            variance
        }
    }
}

/// The order of samples within a series: by timestamp, then by value (NaN first), so that
/// the first and last samples are defined whatever the order samples arrive in.
#[inline]
pub(crate) fn sample_order(a: &(i64, f64), b: &(i64, f64)) -> Ordering {
    a.0.cmp(&b.0).then_with(|| value_order(a.1, b.1))
}

/// A total order on values with NaN smallest, as Prometheus sorts for quantiles.
#[inline]
pub(crate) fn value_order(a: f64, b: f64) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        (false, false) => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
    }
}

/// The earliest sample.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct First(pub i64, pub f64);

impl Cell for First {
    fn new(ts: i64, value: f64) -> Self {
        First(ts, value)
    }
    fn add(&mut self, ts: i64, value: f64) {
        if sample_order(&(ts, value), &(self.0, self.1)) == Ordering::Less {
            *self = First(ts, value);
        }
    }
    fn merge(&mut self, other: Self) {
        self.add(other.0, other.1);
    }
    fn window_value(cells: &[Self], _: &WindowContext, _: &mut Scratch) -> f64 {
        cells.first().map_or(f64::NAN, |c| c.1)
    }
}

/// The latest sample.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Last(pub i64, pub f64);

impl Cell for Last {
    fn new(ts: i64, value: f64) -> Self {
        Last(ts, value)
    }
    fn add(&mut self, ts: i64, value: f64) {
        if sample_order(&(ts, value), &(self.0, self.1)) == Ordering::Greater {
            *self = Last(ts, value);
        }
    }
    fn merge(&mut self, other: Self) {
        self.add(other.0, other.1);
    }
    fn window_value(cells: &[Self], _: &WindowContext, _: &mut Scratch) -> f64 {
        cells.last().map_or(f64::NAN, |c| c.1)
    }
}

/// Every sample of the interval, for the operations that need them all. One sample is
/// kept inline: sparse series then cost no allocation per interval.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Samples(pub SmallVec<[(i64, f64); 1]>);

impl Cell for Samples {
    const BYTES_PER_SAMPLE: usize = std::mem::size_of::<(i64, f64)>();

    fn new(ts: i64, value: f64) -> Self {
        let mut samples = SmallVec::new();
        samples.push((ts, value));
        Samples(samples)
    }
    fn add(&mut self, ts: i64, value: f64) {
        self.0.push((ts, value));
    }
    fn merge(&mut self, other: Self) {
        // Both sides are finished (sorted): a linear merge keeps the result sorted.
        let mut merged = SmallVec::with_capacity(self.0.len() + other.0.len());
        let (mut a, mut b) = (self.0.iter().peekable(), other.0.iter().peekable());
        loop {
            let take_a = match (a.peek(), b.peek()) {
                (Some(x), Some(y)) => sample_order(x, y) != Ordering::Greater,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            let next = if take_a { a.next() } else { b.next() };
            if let Some(&s) = next {
                merged.push(s);
            }
        }
        self.0 = merged;
    }
    fn finish(&mut self) {
        self.0.sort_by(sample_order);
    }
    fn window_value(cells: &[Self], ctx: &WindowContext, scratch: &mut Scratch) -> f64 {
        match ctx.op {
            RangeOp::RateCounter => {
                let samples = &mut scratch.samples;
                samples.clear();
                samples.extend(cells.iter().flat_map(|c| c.0.iter().copied()));
                extrapolated_rate(samples, ctx.range_ns, ctx.end_ns)
            }
            _ => {
                let values = &mut scratch.values;
                values.clear();
                values.extend(cells.iter().flat_map(|c| c.0.iter().map(|s| s.1)));
                quantile(ctx.quantile, values)
            }
        }
    }
}

/// Prometheus' quantile of a set of values (Loki's `Quantile`): NaN for no values, -Inf for
/// q < 0, +Inf for q > 1, otherwise linear interpolation between the ranked values.
pub(crate) fn quantile(q: f64, values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    values.sort_by(|a, b| value_order(*a, *b));
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    let at = |i: f64| values.get(i as usize).copied().unwrap_or(f64::NAN);
    at(lower) * (1.0 - weight) + at(upper) * weight
}

/// Loki's `extrapolatedRate` for `rate_counter` (Prometheus' `rate` with counter resets),
/// with the window `(end - range, end]` in nanoseconds and samples in time order.
pub(crate) fn extrapolated_rate(samples: &[(i64, f64)], range_ns: i64, end_ns: i64) -> f64 {
    let (Some(&(first_ts, first_v)), Some(&(last_ts, last_v))) = (samples.first(), samples.last())
    else {
        return 0.0;
    };
    if samples.len() < 2 {
        return 0.0;
    }
    let start_ns = end_ns - range_ns;
    let mut result = last_v - first_v;
    let mut last_value = 0.0;
    for &(_, v) in samples {
        if v < last_value {
            result += last_value;
        }
        last_value = v;
    }
    let mut to_start = (first_ts - start_ns) as f64 / 1e9;
    let mut to_end = (end_ns - last_ts) as f64 / 1e9;
    let sampled = (last_ts - first_ts) as f64 / 1e9;
    let average_gap = sampled / (samples.len() - 1) as f64;
    let threshold = average_gap * 1.1;
    if to_start >= threshold {
        to_start = average_gap / 2.0;
    }
    // A counter cannot go below zero: stop the extrapolation at its zero point.
    let mut to_zero = to_start;
    if result > 0.0 && first_v >= 0.0 {
        to_zero = sampled * (first_v / result);
    }
    if to_zero < to_start {
        to_start = to_zero;
    }
    if to_end >= threshold {
        to_end = average_gap / 2.0;
    }
    let extrapolated = sampled + to_start + to_end;
    result * (extrapolated / sampled) / go_seconds(range_ns)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    fn value<C: Cell>(cells: &[C], ctx: &WindowContext) -> f64 {
        C::window_value(cells, ctx, &mut Scratch::default())
    }

    fn ctx(op: RangeOp, range_s: i64, end_s: i64) -> WindowContext {
        WindowContext {
            op,
            range_ns: range_s * S,
            end_ns: end_s * S,
            quantile: 0.5,
        }
    }

    #[test]
    fn quantile_interpolates_like_prometheus() {
        let q = |q: f64, v: &[f64]| quantile(q, &mut v.to_vec());
        let v = [5.0, 1.0, 3.0, 2.0, 4.0];
        assert_eq!(q(0.0, &v), 1.0);
        assert_eq!(q(0.25, &v), 2.0);
        assert!((q(0.4, &v) - 2.6).abs() < 1e-12);
        assert_eq!(q(0.5, &v), 3.0);
        assert_eq!(q(1.0, &v), 5.0);
        assert_eq!(q(1.5, &v), f64::INFINITY);
        assert_eq!(q(-0.1, &v), f64::NEG_INFINITY);
        assert!(q(0.5, &[]).is_nan());
        assert_eq!(q(0.5, &[4.0, 5.0]), 4.5);
    }

    /// The cases of Loki's `rate_counter` scripts (range_aggregations.logqltest), computed
    /// there by hand.
    #[test]
    fn rate_counter_matches_loki() {
        let s = |pts: &[(i64, f64)]| pts.iter().map(|&(t, v)| (t * S, v)).collect::<Vec<_>>();
        // (60,240] sees +240 over 150s, extrapolated to 180s.
        let pts = s(&[
            (90, 100.0),
            (120, 130.0),
            (150, 160.0),
            (180, 250.0),
            (210, 280.0),
            (240, 340.0),
        ]);
        assert!((extrapolated_rate(&pts, 180 * S, 240 * S) - 1.6).abs() < 1e-12);
        // A reset 90 -> 30 adds the pre-drop value back.
        let pts = s(&[(60, 60.0), (90, 90.0), (120, 30.0), (150, 60.0)]);
        assert!((extrapolated_rate(&pts, 120 * S, 150 * S) - 1.0).abs() < 1e-12);
        // The zero point limits the extrapolation to the left.
        let pts = s(&[(75, 30.0), (105, 90.0)]);
        assert!((extrapolated_rate(&pts, 60 * S, 105 * S) - 1.5).abs() < 1e-12);
        // Far samples extrapolate by half an average gap only.
        let pts = s(&[(150, 600.0), (180, 660.0)]);
        assert!((extrapolated_rate(&pts, 90 * S, 180 * S) - 1.0).abs() < 1e-12);
        assert!((extrapolated_rate(&pts, 150 * S, 240 * S) - 0.8).abs() < 1e-12);
        // The threshold cap comes before the zero-point cap.
        let pts = s(&[(180, 40.0), (210, 100.0)]);
        assert!((extrapolated_rate(&pts, 90 * S, 210 * S) - 1.0).abs() < 1e-12);
        // One sample has no rate.
        assert_eq!(extrapolated_rate(&s(&[(90, 100.0)]), 10 * S, 90 * S), 0.0);
    }

    #[test]
    fn min_and_max_skip_nan_unless_all_are() {
        let c = ctx(RangeOp::MinOverTime, 60, 60);
        let mins = [Min(f64::NAN), Min(7.0), Min(13.0)];
        assert_eq!(value(&mins, &c), 7.0);
        let maxs = [Max(f64::NAN), Max(7.0), Max(13.0)];
        assert_eq!(value(&maxs, &c), 13.0);
        assert!(value(&[Min(f64::NAN), Min(f64::NAN)], &c).is_nan());
        let mut m = Min(5.0);
        m.add(0, f64::NAN);
        assert_eq!(m, Min(5.0));
    }

    #[test]
    fn avg_with_infinities_follows_loki() {
        let c = ctx(RangeOp::AvgOverTime, 60, 60);
        let avg = |vals: &[f64]| {
            let mut a = Avg::new(0, vals[0]);
            for &v in &vals[1..] {
                a.add(0, v);
            }
            value(&[a], &c)
        };
        assert_eq!(avg(&[7.0, 13.0]), 10.0);
        assert_eq!(avg(&[f64::INFINITY, 5.0]), f64::INFINITY);
        assert!(avg(&[f64::INFINITY, f64::NEG_INFINITY]).is_nan());
        assert!(avg(&[7.0, f64::NAN]).is_nan());
    }

    #[test]
    fn moments_merge_like_one_pass() {
        let values = [2.0, 4.0, 10.0, 20.0, 3.5, -1.0];
        let mut one = Moments::new(0, values[0]);
        for &v in &values[1..] {
            one.add(0, v);
        }
        let mut a = Moments::new(0, values[0]);
        a.add(0, values[1]);
        let mut b = Moments::new(0, values[2]);
        for &v in &values[3..] {
            b.add(0, v);
        }
        let c = ctx(RangeOp::StdvarOverTime, 60, 60);
        let merged = value(&[a, b], &c);
        assert!((merged - value(&[one], &c)).abs() < 1e-12);
        // Population variance of {2, 4, 10, 20} is 49.
        let mut m = Moments::new(0, 2.0);
        for v in [4.0, 10.0, 20.0] {
            m.add(0, v);
        }
        // Welford's rounding, the same operations as Loki's: 48.99999999999999.
        assert!((value(&[m], &c) - 49.0).abs() < 1e-12);
        let c = ctx(RangeOp::StddevOverTime, 60, 60);
        assert!((value(&[m], &c) - 7.0).abs() < 1e-12);
        assert_eq!(value(&[Moments::new(0, 5.0)], &c), 0.0);
        let mut nan = Moments::new(0, 5.0);
        nan.add(0, f64::NAN);
        assert!(value(&[nan], &c).is_nan());
    }

    #[test]
    fn first_and_last_break_ties_by_value() {
        let mut f = First::new(10, 3.0);
        f.add(10, 2.0);
        f.add(11, 1.0);
        assert_eq!(f, First(10, 2.0));
        let mut l = Last::new(10, 3.0);
        l.merge(Last(10, 4.0));
        l.add(9, 9.0);
        assert_eq!(l, Last(10, 4.0));
    }

    #[test]
    fn rates_divide_by_the_range_in_seconds() {
        let c = ctx(RangeOp::Rate, 30, 60);
        assert_eq!(value(&[Count(2.0), Count(1.0)], &c), 0.1);
        let c = ctx(RangeOp::BytesRate, 20, 60);
        assert_eq!(value(&[Sum(8.0)], &c), 0.4);
        let c = WindowContext {
            op: RangeOp::Rate,
            range_ns: 500_000_000,
            end_ns: 0,
            quantile: 0.0,
        };
        assert_eq!(value(&[Count(3.0)], &c), 6.0);
    }
}

//! The time layout of one range aggregation: its windows, one per step, and the elementary
//! intervals they cut the time line into.
//!
//! Which question it answers: "into which piece of state does a sample at time `ts` go, and
//! which pieces make up the window of step `i`?" Loki evaluates step `t` over the samples in
//! `(t - range - offset, t - offset]` (open on the left, closed on the right). The left and
//! right ends of all windows, sorted, are the boundaries `b_0 < b_1 < ... < b_m`; interval `j`
//! is `(b_j, b_{j+1}]`. A sample falls into at most one interval (a binary search), and every
//! window is the run of intervals between its two ends, so per-interval states answer every
//! step exactly, whatever the overlap of the windows. There are at most twice as many
//! boundaries as steps. Intervals that no window covers (range shorter than step) are dead:
//! their samples are dropped on arrival.

use xxhash_rust::xxh3::Xxh3;

use crate::query::QueryError;

/// The windows of one range aggregation over the steps of a query.
#[derive(Clone, Debug)]
pub struct Windows {
    /// Interval boundaries, sorted and unique; interval `j` is `(bounds[j], bounds[j + 1]]`.
    bounds: Vec<i64>,
    /// Per interval: whether some window covers it.
    live: Vec<bool>,
    /// Per step: the first interval of its window and one past the last.
    runs: Vec<(u32, u32)>,
    /// Per step: the right end of its window (`t - offset`), which `rate_counter` needs.
    ends: Vec<i64>,
    range_ns: i64,
    /// Identifies the layout, so that partial states of different layouts are never merged.
    fingerprint: u64,
}

impl Windows {
    /// The windows `(t - range - offset, t - offset]` for each step time `t` (ascending).
    pub fn new(step_times: &[i64], range_ns: i64, offset_ns: i64) -> Result<Windows, QueryError> {
        if range_ns <= 0 {
            return Err(QueryError::bad_request(format!(
                "the range of a range aggregation must be positive, got {range_ns}ns"
            )));
        }
        let overflow = || {
            QueryError::bad_request(
                "the query's time range, range and offset overflow the timestamp range",
            )
        };
        let mut spans = Vec::with_capacity(step_times.len());
        for &t in step_times {
            let end = t.checked_sub(offset_ns).ok_or_else(overflow)?;
            let start = end.checked_sub(range_ns).ok_or_else(overflow)?;
            spans.push((start, end));
        }
        let mut bounds: Vec<i64> = spans.iter().flat_map(|&(s, e)| [s, e]).collect();
        bounds.sort_unstable();
        bounds.dedup();
        let intervals = bounds.len().saturating_sub(1);
        if u32::try_from(bounds.len()).is_err() {
            return Err(QueryError::bad_request("too many steps"));
        }
        // Each window's run, and a difference array marking the intervals some window covers.
        let mut runs = Vec::with_capacity(spans.len());
        let mut ends = Vec::with_capacity(spans.len());
        let mut cover = vec![0i64; intervals + 1];
        for &(start, end) in &spans {
            let lo = bounds.partition_point(|&b| b < start);
            let hi = bounds.partition_point(|&b| b < end);
            // Both ends are boundaries, so `lo < hi <= intervals`.
            if let Some(c) = cover.get_mut(lo) {
                *c += 1;
            }
            if let Some(c) = cover.get_mut(hi) {
                *c -= 1;
            }
            runs.push((lo as u32, hi as u32));
            ends.push(end);
        }
        let mut live = Vec::with_capacity(intervals);
        let mut depth = 0i64;
        for c in cover.iter().take(intervals) {
            depth += c;
            live.push(depth > 0);
        }
        let mut h = Xxh3::new();
        h.update(&range_ns.to_le_bytes());
        h.update(&offset_ns.to_le_bytes());
        for t in step_times {
            h.update(&t.to_le_bytes());
        }
        Ok(Windows {
            bounds,
            live,
            runs,
            ends,
            range_ns,
            fingerprint: h.digest(),
        })
    }

    /// The interval a sample at `ts` belongs to, or `None` when no window contains `ts`.
    #[inline]
    pub fn interval_of(&self, ts: i64) -> Option<u32> {
        let p = self.bounds.partition_point(|&b| b < ts);
        let j = p.checked_sub(1)?;
        if p >= self.bounds.len() || !self.live.get(j).copied().unwrap_or(false) {
            return None;
        }
        Some(j as u32)
    }

    /// The times interval `j` holds, `(open, closed]`: a caller that sees times in order
    /// keeps it to skip [`interval_of`](Self::interval_of) while the times stay inside.
    #[inline]
    pub fn interval_span(&self, j: u32) -> Option<(i64, i64)> {
        let j = j as usize;
        Some((*self.bounds.get(j)?, *self.bounds.get(j + 1)?))
    }

    /// Whether some window contains `ts` (the scan may skip lines for which this is false).
    pub fn covers(&self, ts: i64) -> bool {
        self.interval_of(ts).is_some()
    }

    /// The number of elementary intervals.
    pub fn interval_count(&self) -> usize {
        self.live.len()
    }

    /// The number of steps (windows).
    pub fn step_count(&self) -> usize {
        self.runs.len()
    }

    /// The intervals of step `i`'s window: `lo..hi`.
    pub(crate) fn run(&self, step: usize) -> (u32, u32) {
        self.runs.get(step).copied().unwrap_or((0, 0))
    }

    /// The right end of step `i`'s window (`t - offset`).
    pub(crate) fn window_end(&self, step: usize) -> i64 {
        self.ends.get(step).copied().unwrap_or(0)
    }

    pub fn range_ns(&self) -> i64 {
        self.range_ns
    }

    /// The timestamps a scan must read, as a half-open range `[from, to)`: from just after
    /// the first window's open left end to the last window's closed right end.
    pub fn scan_range(&self) -> (i64, i64) {
        match (self.bounds.first(), self.bounds.last()) {
            (Some(&first), Some(&last)) => (first.saturating_add(1), last.saturating_add(1)),
            _ => (0, 0),
        }
    }

    pub(crate) fn fingerprint(&self) -> u64 {
        self.fingerprint
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    #[test]
    fn overlapping_windows_share_intervals() {
        // Steps 60s, 90s, 120s with [60s]: windows (0,60], (30,90], (60,120].
        let w = Windows::new(&[60 * S, 90 * S, 120 * S], 60 * S, 0).unwrap();
        assert_eq!(w.interval_count(), 4);
        assert_eq!(w.run(0), (0, 2));
        assert_eq!(w.run(1), (1, 3));
        assert_eq!(w.run(2), (2, 4));
        // The left end is open, the right end closed.
        assert_eq!(w.interval_of(0), None);
        assert_eq!(w.interval_of(1), Some(0));
        assert_eq!(w.interval_of(30 * S), Some(0));
        assert_eq!(w.interval_of(30 * S + 1), Some(1));
        assert_eq!(w.interval_of(120 * S), Some(3));
        assert_eq!(w.interval_of(120 * S + 1), None);
        assert_eq!(w.scan_range(), (1, 120 * S + 1));
    }

    #[test]
    fn gaps_between_short_windows_are_dead() {
        // Steps 60s and 150s with [20s]: windows (40,60] and (130,150].
        let w = Windows::new(&[60 * S, 150 * S], 20 * S, 0).unwrap();
        assert_eq!(w.interval_count(), 3);
        assert_eq!(w.interval_of(50 * S), Some(0));
        assert_eq!(w.interval_of(100 * S), None);
        assert_eq!(w.interval_of(140 * S), Some(2));
        assert!(!w.covers(61 * S));
    }

    #[test]
    fn offset_shifts_windows_back() {
        let w = Windows::new(&[90 * S], 60 * S, 90 * S).unwrap();
        assert_eq!(w.window_end(0), 0);
        assert_eq!(w.interval_of(0), Some(0));
        assert_eq!(w.interval_of(-60 * S), None);
        assert_eq!(w.interval_of(-60 * S + 1), Some(0));
    }

    #[test]
    fn refuses_overflow_and_empty_ranges() {
        assert!(Windows::new(&[i64::MIN + 5], 10, 0).is_err());
        assert!(Windows::new(&[0], 0, 0).is_err());
    }
}

//! Metric primitives and the Prometheus text exposition.
//!
//! Which question it answers: "how much went through, how much was refused, how long did it
//! take?" Counters and histograms here are per shard and single-threaded (`Cell`, no atomics):
//! each shard owns its own and the `/metrics` handler gathers snapshots over the mesh and
//! renders them with [`render`].

pub mod edge;
pub mod render;

use std::cell::Cell;

/// A monotonically increasing count owned by one shard.
#[derive(Debug, Default)]
pub struct Counter(Cell<u64>);

impl Counter {
    pub fn inc(&self) {
        self.add(1)
    }
    pub fn add(&self, n: u64) {
        self.0.set(self.0.get() + n)
    }
    pub fn get(&self) -> u64 {
        self.0.get()
    }
}

/// A histogram with fixed upper bounds (Prometheus `le` buckets), in seconds.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    counts: Vec<Cell<u64>>,
    sum: Cell<f64>,
    count: Cell<u64>,
}

/// Buckets for fsync and other disk latencies: 50 µs to 10 s.
pub const DISK_LATENCY_BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 10.0,
];

/// Buckets for request latencies: 100 µs to 60 s.
pub const REQUEST_LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0,
];

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Histogram {
        debug_assert!(bounds.windows(2).all(|w| w[0] < w[1]));
        Histogram {
            bounds,
            counts: (0..bounds.len()).map(|_| Cell::new(0)).collect(),
            sum: Cell::new(0.0),
            count: Cell::new(0),
        }
    }

    pub fn observe(&self, seconds: f64) {
        if let Some(i) = self.bounds.iter().position(|b| seconds <= *b) {
            let c = &self.counts[i];
            c.set(c.get() + 1);
        }
        self.sum.set(self.sum.get() + seconds);
        self.count.set(self.count.get() + 1);
    }

    /// A `Send` copy for gathering across shards.
    pub fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            bounds: self.bounds,
            counts: self.counts.iter().map(|c| c.get()).collect(),
            sum: self.sum.get(),
            count: self.count.get(),
        }
    }
}

/// A histogram's values at one moment, non-cumulative per bucket.
#[derive(Clone, Debug, PartialEq)]
pub struct HistogramSnapshot {
    pub bounds: &'static [f64],
    pub counts: Vec<u64>,
    pub sum: f64,
    pub count: u64,
}

impl HistogramSnapshot {
    pub fn empty(bounds: &'static [f64]) -> HistogramSnapshot {
        HistogramSnapshot {
            bounds,
            counts: vec![0; bounds.len()],
            sum: 0.0,
            count: 0,
        }
    }

    /// Adds another snapshot with the same buckets.
    pub fn merge(&mut self, other: &HistogramSnapshot) {
        assert_eq!(
            self.bounds, other.bounds,
            "merging histograms of different buckets"
        );
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.sum += other.sum;
        self.count += other.count;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_and_merge() {
        let h = Histogram::new(DISK_LATENCY_BUCKETS);
        h.observe(0.00001);
        h.observe(0.003);
        h.observe(100.0);
        let mut s = h.snapshot();
        assert_eq!(s.count, 3);
        assert_eq!(s.counts[0], 1);
        assert_eq!(s.counts[6], 1);
        assert_eq!(
            s.counts.iter().sum::<u64>(),
            2,
            "the +Inf one is only in count"
        );
        s.merge(&h.snapshot());
        assert_eq!(s.count, 6);
    }
}

//! Each stream's own rate limit (Loki's `per_stream_rate_limit` and
//! `per_stream_rate_limit_burst`), kept on the shard that owns the stream.
//!
//! Which question it answers: "may this stream take these bytes now?" A stream lives on one
//! core (its owner, by hash), so its budget needs no sharing: one generic-cell-rate "theoretical
//! arrival time" per stream in a map of that core, as Loki's ingester keeps one limiter per
//! stream. Loki counts an entry's line and structured metadata bytes; with stream sharding on
//! (its default) it refuses all of a push's entries for a stream when they do not fit
//! together (`rateLimitWholeStream`), so a stream's part of a push is taken whole or not at
//! all, and its other streams are stored. A budget that has refilled is forgotten by the sweep.

use std::cell::RefCell;
use std::time::Instant;

use ahash::AHashMap;

use super::IngestionRate;
use crate::model::StreamId;

/// Every stream budget of one core.
pub struct StreamRates {
    epoch: Instant,
    /// Stream -> theoretical arrival time, nanoseconds since `epoch`.
    tat_ns: RefCell<AHashMap<StreamId, u64>>,
}

impl Default for StreamRates {
    fn default() -> Self {
        StreamRates {
            epoch: Instant::now(),
            tat_ns: Default::default(),
        }
    }
}

impl StreamRates {
    fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    /// Charges `bytes` to `stream` if they fit in its budget now; false (nothing charged)
    /// if not. An off limit takes everything.
    pub fn take(&self, stream: StreamId, bytes: u64, limit: &IngestionRate) -> bool {
        self.take_at(stream, bytes, limit, self.now_ns())
    }

    fn take_at(&self, stream: StreamId, bytes: u64, limit: &IngestionRate, now_ns: u64) -> bool {
        if limit.is_off() {
            return true;
        }
        let per_byte_ns = 1e9 / limit.bytes_per_second;
        // How far ahead of now the arrival time may run: the burst, as time at the rate.
        let tolerance_ns = (limit.burst_bytes * per_byte_ns) as u64;
        let mut map = self.tat_ns.borrow_mut();
        let tat = map.get(&stream).copied().unwrap_or(0).max(now_ns);
        let next = tat.saturating_add((bytes as f64 * per_byte_ns) as u64);
        if next > now_ns.saturating_add(tolerance_ns) {
            return false;
        }
        map.insert(stream, next);
        true
    }

    /// Forgets the budgets that have refilled (their arrival time has passed): they would
    /// start over full anyway. Returns how many are kept.
    pub fn sweep(&self) -> usize {
        let now = self.now_ns();
        let mut map = self.tat_ns.borrow_mut();
        map.retain(|_, tat| *tat > now);
        map.len()
    }
}

/// Loki's `datasize.ByteSize` text: the largest binary unit that divides the size exactly,
/// written `KB`, `MB`, ... (`3145728` is `3MB`, `1536` is `1536B`).
pub fn loki_byte_size(bytes: u64) -> String {
    if bytes == 0 {
        return "0B".into();
    }
    for (unit, scale) in [
        ("EB", 1u64 << 60),
        ("PB", 1 << 50),
        ("TB", 1 << 40),
        ("GB", 1 << 30),
        ("MB", 1 << 20),
        ("KB", 1 << 10),
    ] {
        if bytes.is_multiple_of(scale) {
            return format!("{}{unit}", bytes / scale);
        }
    }
    format!("{bytes}B")
}

/// Loki's refusal of one entry over its stream's rate (`validation.ErrStreamRateLimit`).
pub fn stream_rate_limited_entry(limit: &IngestionRate, labels: &str, bytes: u64) -> String {
    format!(
        "Per stream rate limit exceeded (limit: {}/sec) while attempting to ingest for stream \
         '{labels}' totaling {}, consider splitting a stream via additional labels or contact \
         your Loki administrator to see if the limit can be increased",
        loki_byte_size(limit.bytes_per_second as u64),
        loki_byte_size(bytes)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: IngestionRate = IngestionRate {
        bytes_per_second: 1000.0,
        burst_bytes: 3000.0,
    };

    #[test]
    fn a_stream_takes_its_burst_then_its_rate() {
        let r = StreamRates::default();
        assert!(r.take_at(1, 3000, &LIMIT, 0));
        assert!(!r.take_at(1, 1, &LIMIT, 0));
        // Another stream has its own budget.
        assert!(r.take_at(2, 3000, &LIMIT, 0));
        // A second later, a second's worth fits again, and not a byte more.
        assert!(r.take_at(1, 1000, &LIMIT, 1_000_000_000));
        assert!(!r.take_at(1, 1, &LIMIT, 1_000_000_000));
        // More than the burst never fits; nothing is charged by a refusal.
        assert!(!r.take_at(3, 3001, &LIMIT, 0));
        assert!(r.take_at(3, 3000, &LIMIT, 0));
        // Off: anything goes.
        assert!(r.take_at(1, u64::MAX / 2, &IngestionRate::OFF, 0));
    }

    #[test]
    fn refilled_budgets_are_forgotten() {
        let r = StreamRates::default();
        assert!(r.take_at(1, 10, &LIMIT, 0));
        assert!(r.take(2, 3000, &LIMIT));
        // Stream 1's arrival time (10 ms after the epoch) has passed by the time the sweep
        // runs only if 10 ms went by; stream 2's (3 s ahead) has not.
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(r.sweep(), 1);
    }

    #[test]
    fn sizes_are_written_as_loki_writes_them() {
        assert_eq!(loki_byte_size(3 << 20), "3MB");
        assert_eq!(loki_byte_size(15 << 20), "15MB");
        assert_eq!(loki_byte_size(2048), "2KB");
        assert_eq!(loki_byte_size(1500), "1500B");
        assert_eq!(loki_byte_size(0), "0B");
        assert_eq!(
            stream_rate_limited_entry(&LIMIT, "{app=\"x\"}", 20),
            "Per stream rate limit exceeded (limit: 1000B/sec) while attempting to ingest for \
             stream '{app=\"x\"}' totaling 20B, consider splitting a stream via additional \
             labels or contact your Loki administrator to see if the limit can be increased"
        );
    }
}

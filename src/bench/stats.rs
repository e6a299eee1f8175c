//! What the senders measured: per-source line counters, HDR latency histograms recorded per
//! thread and merged, and the per-second timeline that the progress line prints and the
//! throughput chart draws.

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

/// The longest latency a histogram records exactly: an hour, far beyond any request
/// timeout; anything longer is recorded as this (saturated) rather than lost.
pub const LATENCY_US_MAX: u64 = 3_600_000_000;
/// Significant decimal digits of every latency histogram: 0.1% resolution at any value.
pub const LATENCY_SIGNIFICANT_DIGITS: u8 = 3;
/// How often a sender thread merges its own histogram into the shared one: often enough for
/// the per-second progress line, rarely enough that the lock is never contended.
pub const FLUSH_INTERVAL_MS: u64 = 200;

/// Counters of one traffic source (push, syslog TCP or syslog UDP), updated by its senders.
#[derive(Debug, Default)]
pub struct SourceCounters {
    /// Lines whose bytes were all handed to the kernel (a push body written whole, a syslog
    /// frame written whole, a datagram sent).
    pub lines_sent: AtomicU64,
    /// Push: lines of requests answered 2xx (durable). Syslog has no acknowledgement.
    pub lines_acked: AtomicU64,
    /// Push: lines of requests refused with 4xx, which the server did not store.
    pub lines_refused: AtomicU64,
    /// Lines whose fate the client cannot know: a push that failed in transport or got 5xx
    /// after its body went out, a syslog frame cut short by a write error.
    pub lines_unknown: AtomicU64,
    /// Bytes of log line text sent (the payload, without protocol framing).
    pub line_bytes: AtomicU64,
    /// Bytes written to sockets, framing and encoding included.
    pub wire_bytes: AtomicU64,
    /// Failed requests, writes or sends.
    pub errors: AtomicU64,
    /// Requests (push), writes (syslog TCP) or datagrams (UDP).
    pub requests: AtomicU64,
}

impl SourceCounters {
    pub fn add(field: &AtomicU64, n: u64) {
        field.fetch_add(n, Ordering::Relaxed);
    }

    pub fn totals(&self) -> SourceTotals {
        let get = |f: &AtomicU64| f.load(Ordering::Relaxed);
        SourceTotals {
            lines_sent: get(&self.lines_sent),
            lines_acked: get(&self.lines_acked),
            lines_refused: get(&self.lines_refused),
            lines_unknown: get(&self.lines_unknown),
            line_bytes: get(&self.line_bytes),
            wire_bytes: get(&self.wire_bytes),
            errors: get(&self.errors),
            requests: get(&self.requests),
        }
    }
}

/// The values of [`SourceCounters`] at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SourceTotals {
    pub lines_sent: u64,
    pub lines_acked: u64,
    pub lines_refused: u64,
    pub lines_unknown: u64,
    pub line_bytes: u64,
    pub wire_bytes: u64,
    pub errors: u64,
    pub requests: u64,
}

impl SourceTotals {
    /// Adds another source's (or round's) totals to these.
    pub fn add(&mut self, t: &SourceTotals) {
        self.lines_sent += t.lines_sent;
        self.lines_acked += t.lines_acked;
        self.lines_refused += t.lines_refused;
        self.lines_unknown += t.lines_unknown;
        self.line_bytes += t.line_bytes;
        self.wire_bytes += t.wire_bytes;
        self.errors += t.errors;
        self.requests += t.requests;
    }
}

/// A fresh latency histogram in microseconds.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_US_MAX, LATENCY_SIGNIFICANT_DIGITS)
        .expect("constant histogram bounds are valid")
}

/// Adds `from` into `into`. Both come from [`new_histogram`], so the merge cannot fail.
pub fn merge(into: &mut Histogram<u64>, from: &Histogram<u64>) {
    into.add(from)
        .expect("histograms with the same bounds always merge");
}

/// A histogram that sender threads merge into and the progress thread reads.
#[derive(Debug)]
pub struct SharedHistogram(Mutex<Histogram<u64>>);

impl Default for SharedHistogram {
    fn default() -> Self {
        SharedHistogram(Mutex::new(new_histogram()))
    }
}

impl SharedHistogram {
    pub fn snapshot(&self) -> Histogram<u64> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn absorb(&self, local: &Histogram<u64>) {
        merge(&mut self.0.lock().unwrap_or_else(|e| e.into_inner()), local);
    }

    /// The 99th percentile so far, in microseconds (0 when nothing was recorded).
    pub fn p99_us(&self) -> u64 {
        let h = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if h.is_empty() {
            0
        } else {
            h.value_at_quantile(0.99)
        }
    }
}

/// One sender thread's latency recorder: records into its own histogram without locking and
/// merges into the shared one every [`FLUSH_INTERVAL_MS`] and when dropped.
pub struct LatencyRecorder {
    local: Histogram<u64>,
    shared: Arc<SharedHistogram>,
    last_flush: Instant,
}

impl LatencyRecorder {
    pub fn new(shared: Arc<SharedHistogram>) -> LatencyRecorder {
        LatencyRecorder {
            local: new_histogram(),
            shared,
            last_flush: Instant::now(),
        }
    }

    pub fn record(&mut self, latency: Duration) {
        let us = (latency.as_micros() as u64).clamp(1, LATENCY_US_MAX);
        self.local.saturating_record(us);
        if self.last_flush.elapsed() >= Duration::from_millis(FLUSH_INTERVAL_MS) {
            self.flush();
        }
    }

    pub fn flush(&mut self) {
        if !self.local.is_empty() {
            self.shared.absorb(&self.local);
            self.local.reset();
        }
        self.last_flush = Instant::now();
    }
}

impl Drop for LatencyRecorder {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Percentiles of a latency histogram, in microseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct LatencySummary {
    pub count: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    pub mean: f64,
}

impl LatencySummary {
    pub fn of(h: &Histogram<u64>) -> LatencySummary {
        if h.is_empty() {
            return LatencySummary::default();
        }
        LatencySummary {
            count: h.len(),
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
            mean: h.mean(),
        }
    }
}

/// Points of the percentile distribution `(percentile 0..100, latency µs)`, as HdrHistogram
/// plots draw it; empty for an empty histogram.
pub fn percentile_curve(h: &Histogram<u64>) -> Vec<(f64, u64)> {
    if h.is_empty() {
        return Vec::new();
    }
    let mut points: Vec<(f64, u64)> = h
        .iter_quantiles(4)
        .map(|v| (v.quantile_iterated_to() * 100.0, v.value_iterated_to()))
        .collect();
    points.dedup_by(|a, b| a.0 == b.0);
    points
}

/// One second of the run: what the senders did in it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Second {
    /// Seconds since the load started, at the end of this interval.
    pub t: f64,
    pub lines_sent: u64,
    pub lines_acked: u64,
    pub line_bytes: u64,
    pub errors: u64,
    /// The acknowledgement (or query) latency p99 over the run so far, µs.
    pub p99_us: u64,
}

/// Every counter the progress thread watches.
pub struct Watched {
    pub sources: Vec<Arc<SourceCounters>>,
    pub latency: Option<Arc<SharedHistogram>>,
    /// Push acknowledges; syslog does not, so its "acked" is what was sent.
    pub acked_is_sent: Vec<bool>,
}

impl Watched {
    fn sums(&self) -> (u64, u64, u64, u64) {
        let mut sent = 0;
        let mut acked = 0;
        let mut bytes = 0;
        let mut errors = 0;
        for (s, same) in self.sources.iter().zip(&self.acked_is_sent) {
            let t = s.totals();
            sent += t.lines_sent;
            acked += if *same { t.lines_sent } else { t.lines_acked };
            bytes += t.line_bytes;
            errors += t.errors;
        }
        (sent, acked, bytes, errors)
    }
}

/// Prints one progress line per second on stderr and keeps the timeline, until stopped.
pub struct Progress {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Vec<Second>>>,
}

impl Progress {
    pub fn start(label: String, start: Instant, watched: Watched) -> Progress {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("bench-progress".into())
            .spawn(move || progress_loop(&label, start, &watched, &flag))
            .expect("spawn the progress thread");
        Progress {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops the thread and returns the timeline (with a last, partial second).
    pub fn finish(mut self) -> Vec<Second> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// How often the progress thread checks its stop flag between ticks.
const PROGRESS_POLL_MS: u64 = 20;

fn progress_loop(label: &str, start: Instant, w: &Watched, stop: &AtomicBool) -> Vec<Second> {
    let mut timeline = Vec::new();
    let mut last = (0u64, 0u64, 0u64, 0u64);
    let mut last_t = 0.0f64;
    let mut tick = 1u64;
    loop {
        let due = start + Duration::from_secs(tick);
        while Instant::now() < due && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(PROGRESS_POLL_MS));
        }
        let stopping = stop.load(Ordering::Relaxed);
        let t = start.elapsed().as_secs_f64();
        let now = w.sums();
        let p99_us = w.latency.as_ref().map_or(0, |h| h.p99_us());
        let s = Second {
            t,
            lines_sent: now.0 - last.0,
            lines_acked: now.1 - last.1,
            line_bytes: now.2 - last.2,
            errors: now.3 - last.3,
            p99_us,
        };
        let span = (t - last_t).max(1e-3);
        if !stopping || s.lines_sent > 0 {
            timeline.push(s);
            let mut err = std::io::stderr().lock();
            let _ = write!(
                err,
                "{label} [{t:>5.0}s] {:>10.0} lines/s {:>7.1} MB/s  acked {:>11}  errors {}",
                s.lines_acked as f64 / span,
                s.line_bytes as f64 / span / 1e6,
                now.1,
                now.3
            );
            if w.latency.is_some() {
                let _ = write!(err, "  p99 {}", format_us(p99_us));
            }
            let _ = writeln!(err);
        }
        if stopping {
            return timeline;
        }
        last = now;
        last_t = t;
        tick += 1;
    }
}

/// `1234` µs -> `1.23 ms`; sub-millisecond values in µs, long ones in s.
pub fn format_us(us: u64) -> String {
    match us {
        0..1000 => format!("{us} µs"),
        1000..1_000_000 => format!("{:.2} ms", us as f64 / 1e3),
        _ => format!("{:.2} s", us as f64 / 1e6),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Per-thread recorders merged into one shared histogram give the same percentiles as
    /// recording everything into one histogram.
    #[test]
    fn recorders_merge_into_the_shared_histogram() {
        let shared = Arc::new(SharedHistogram::default());
        let mut direct = new_histogram();
        std::thread::scope(|s| {
            for t in 0..4u64 {
                let shared = shared.clone();
                s.spawn(move || {
                    let mut r = LatencyRecorder::new(shared);
                    for i in 1..=10_000u64 {
                        r.record(Duration::from_micros(i * (t + 1)));
                    }
                });
            }
        });
        for t in 0..4u64 {
            for i in 1..=10_000u64 {
                direct.record(i * (t + 1)).unwrap();
            }
        }
        let merged = shared.snapshot();
        assert_eq!(merged.len(), 40_000);
        assert_eq!(LatencySummary::of(&merged), LatencySummary::of(&direct));
        let s = LatencySummary::of(&merged);
        assert!(s.p50 < s.p99 && s.p99 <= s.p999 && s.p999 <= s.max, "{s:?}");
        assert!(s.max >= 39_990 && s.max <= 40_050, "{s:?}");
    }

    #[test]
    fn latency_is_saturated_not_lost() {
        let shared = Arc::new(SharedHistogram::default());
        let mut r = LatencyRecorder::new(shared.clone());
        r.record(Duration::from_secs(10 * 3600));
        r.record(Duration::ZERO);
        drop(r);
        let h = shared.snapshot();
        assert_eq!(h.len(), 2);
        assert!(h.max() >= LATENCY_US_MAX - LATENCY_US_MAX / 1000);
        assert_eq!(h.min(), 1);
    }

    #[test]
    fn percentile_curve_rises() {
        let mut h = new_histogram();
        for i in 1..=1000 {
            h.record(i).unwrap();
        }
        let c = percentile_curve(&h);
        assert!(c.len() > 10);
        assert!(c.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1));
        assert_eq!(c.last().unwrap().0, 100.0);
        assert!(percentile_curve(&new_histogram()).is_empty());
    }

    #[test]
    fn formats_latency() {
        assert_eq!(format_us(12), "12 µs");
        assert_eq!(format_us(1234), "1.23 ms");
        assert_eq!(format_us(2_500_000), "2.50 s");
    }
}

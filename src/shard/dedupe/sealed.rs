//! Fingerprints of recently sealed entries: what the duplicate check remembers of a stream's
//! entries once their head is in a part, without holding their lines.
//!
//! A fingerprint is the entry's timestamp and the xxh3 hash of its line, 16 bytes. A seal
//! round that commits adds one run per head it sealed (for heads that took entries from
//! batches that drop duplicates), sorted by (timestamp, hash), so a lookup is a binary
//! search in the runs whose time range holds the timestamp. Runs leave in the order they
//! came: [`DUPLICATE_WINDOW`](super::DUPLICATE_WINDOW) after they were added, or earlier
//! when the shard's fingerprints would pass their share of the memory budget
//! (`duplicate_fingerprints_bytes_max`; oldest first, so under a high rate the window
//! shrinks instead of memory growing; counted as evictions).
//!
//! WAL replay adds the entries it skips as already sealed one at a time, into an open run
//! per stream kept sorted by insertion (replayed records are mostly in time order, so that
//! is an append), closed at [`OPEN_RUN_FINGERPRINTS_MAX`].

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use ahash::AHashMap;
use smallvec::SmallVec;
use xxhash_rust::xxh3::xxh3_64;

use crate::model::{StreamId, TimestampNs};

/// A replayed run is closed at 4096 fingerprints (64 KiB): inserting into it in sorted
/// order moves at most that much memory, and a stream's lookup has few runs to look at.
pub const OPEN_RUN_FINGERPRINTS_MAX: usize = 4096;

/// Bytes a run costs beyond its fingerprints (its vector, its place in the order, its
/// stream's entry), counted against the memory bound so that many tiny runs cannot pass it.
const RUN_OVERHEAD_BYTES: usize = 96;

/// An entry as the check remembers it once sealed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Fingerprint {
    pub ts: TimestampNs,
    pub hash: u64,
}

impl Fingerprint {
    pub fn of(ts: TimestampNs, line: &str) -> Fingerprint {
        Fingerprint {
            ts,
            hash: xxh3_64(line.as_bytes()),
        }
    }
}

const FINGERPRINT_BYTES: usize = std::mem::size_of::<Fingerprint>();

/// A run's fingerprints: a stream that sealed one entry (the common case when many streams
/// write a line each) keeps it inline, so that such runs live in the stream table's one
/// allocation instead of a small block each, scattered through the heap where the blocks
/// allocated around them keep its pages from being returned once the runs expire.
type Fingerprints = SmallVec<[Fingerprint; 1]>;

struct Run {
    /// Sorted by (timestamp, hash); never empty.
    fps: Fingerprints,
    /// Still taking replayed fingerprints.
    open: bool,
}

impl Run {
    fn bytes(&self) -> usize {
        self.fps.len() * FINGERPRINT_BYTES + RUN_OVERHEAD_BYTES
    }

    fn holds(&self, fp: &Fingerprint) -> bool {
        fp.ts >= self.fps[0].ts
            && fp.ts <= self.fps[self.fps.len() - 1].ts
            && self.fps.binary_search(fp).is_ok()
    }
}

/// One stream's runs, oldest first, and the time range they cover (one run inline, for the
/// reason [`Fingerprints`] gives).
struct StreamRuns {
    runs: SmallVec<[Run; 1]>,
    min_ts: TimestampNs,
    max_ts: TimestampNs,
}

impl StreamRuns {
    fn widen(&mut self, lo: TimestampNs, hi: TimestampNs) {
        self.min_ts = self.min_ts.min(lo);
        self.max_ts = self.max_ts.max(hi);
    }
}

/// The fingerprints of one sealed head, sorted by (timestamp, hash) and without repeats,
/// ready to become a run. Made where the seal round encodes its parts, off the core: a
/// round seals up to the heads budget (2.3 million loghub lines in 256 MiB), and hashing
/// and sorting that many on the core in the round's commit step held every push's
/// acknowledgement for as long (a quarter of a second for 280 MiB, measured).
#[derive(Debug, Default)]
pub struct SealedRun {
    fps: Vec<Fingerprint>,
}

impl SealedRun {
    pub fn new(mut fps: Vec<Fingerprint>) -> SealedRun {
        fps.sort_unstable();
        fps.dedup();
        fps.shrink_to_fit();
        SealedRun { fps }
    }

    pub fn len(&self) -> usize {
        self.fps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fps.is_empty()
    }
}

/// See the module doc.
pub struct RecentlySealed {
    streams: AHashMap<StreamId, StreamRuns>,
    /// Every run, oldest first: when it was added, and its stream.
    order: VecDeque<(Instant, StreamId)>,
    bytes: usize,
    bytes_max: usize,
    window: Duration,
    fingerprints: u64,
    evicted: u64,
}

impl Default for RecentlySealed {
    fn default() -> RecentlySealed {
        RecentlySealed::new(
            super::DUPLICATE_WINDOW,
            super::SEALED_FINGERPRINTS_BYTES_MAX,
        )
    }
}

impl RecentlySealed {
    pub fn new(window: Duration, bytes_max: usize) -> RecentlySealed {
        RecentlySealed {
            streams: AHashMap::new(),
            order: VecDeque::new(),
            bytes: 0,
            bytes_max,
            window,
            fingerprints: 0,
            evicted: 0,
        }
    }

    /// Fingerprints held.
    pub fn len(&self) -> u64 {
        self.fingerprints
    }

    pub fn is_empty(&self) -> bool {
        self.fingerprints == 0
    }

    /// Fingerprints dropped by the memory bound before their window ended.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// Bytes held, as counted against the bound.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The time range of stream `id`'s fingerprints, if it has any.
    pub fn bounds(&self, id: StreamId) -> Option<(TimestampNs, TimestampNs)> {
        self.streams.get(&id).map(|s| (s.min_ts, s.max_ts))
    }

    pub fn contains(&self, id: StreamId, fp: &Fingerprint) -> bool {
        let Some(s) = self.streams.get(&id) else {
            return false;
        };
        if fp.ts < s.min_ts || fp.ts > s.max_ts {
            return false;
        }
        // Newest first: a retry usually repeats something recent.
        s.runs.iter().rev().any(|r| r.holds(fp))
    }

    /// Drops the runs added a window or more before `now`.
    pub fn expire(&mut self, now: Instant) {
        while let Some(&(added, _)) = self.order.front() {
            if now.saturating_duration_since(added) < self.window {
                break;
            }
            self.drop_oldest();
        }
    }

    /// Adds the fingerprints of one sealed head of stream `id`. If they alone pass the
    /// memory bound, only the newest that fit are kept.
    pub fn add_sealed(&mut self, id: StreamId, fps: Vec<Fingerprint>, now: Instant) {
        self.add_run(id, SealedRun::new(fps), now);
    }

    /// [`RecentlySealed::add_sealed`] for fingerprints already sorted: the per-entry work
    /// (hashing, sorting) was done off the core, and this costs little more than a move.
    pub fn add_run(&mut self, id: StreamId, run: SealedRun, now: Instant) {
        let mut fps = run.fps;
        let fit = self.bytes_max.saturating_sub(RUN_OVERHEAD_BYTES) / FINGERPRINT_BYTES;
        if fps.len() > fit {
            let cut = fps.len() - fit;
            fps.drain(..cut);
            // The run keeps its buffer: give back what the cut left unused, which the bound
            // does not count.
            fps.shrink_to_fit();
            self.evicted += cut as u64;
        }
        if fps.is_empty() {
            return;
        }
        let fps = if fps.len() <= 1 {
            Fingerprints::from_slice(&fps)
        } else {
            Fingerprints::from_vec(fps)
        };
        self.push_run(id, Run { fps, open: false }, now);
        self.enforce_bound();
    }

    /// Adds one fingerprint of an entry that replay found already sealed.
    pub fn remember(&mut self, id: StreamId, fp: Fingerprint, now: Instant) {
        let open = self.streams.get_mut(&id).and_then(|s| {
            s.runs
                .last_mut()
                .filter(|r| r.open && r.fps.len() < OPEN_RUN_FINGERPRINTS_MAX)
                .map(|r| (r, &mut s.min_ts, &mut s.max_ts))
        });
        match open {
            Some((run, min_ts, max_ts)) => {
                let at = run.fps.partition_point(|f| f < &fp);
                if run.fps.get(at) == Some(&fp) {
                    return;
                }
                run.fps.insert(at, fp);
                *min_ts = (*min_ts).min(fp.ts);
                *max_ts = (*max_ts).max(fp.ts);
                self.bytes += FINGERPRINT_BYTES;
                self.fingerprints += 1;
            }
            None => self.push_run(
                id,
                Run {
                    fps: smallvec::smallvec![fp],
                    open: true,
                },
                now,
            ),
        }
        self.enforce_bound();
    }

    fn push_run(&mut self, id: StreamId, run: Run, now: Instant) {
        let (lo, hi) = (run.fps[0].ts, run.fps[run.fps.len() - 1].ts);
        self.bytes += run.bytes();
        self.fingerprints += run.fps.len() as u64;
        let s = self.streams.entry(id).or_insert_with(|| StreamRuns {
            runs: SmallVec::new(),
            min_ts: lo,
            max_ts: hi,
        });
        s.widen(lo, hi);
        s.runs.push(run);
        self.order.push_back((now, id));
    }

    /// Sets the memory bound (the core's share of the budget), dropping the oldest runs
    /// that no longer fit.
    pub fn set_bytes_max(&mut self, bytes_max: usize) {
        self.bytes_max = bytes_max;
        self.enforce_bound();
    }

    fn enforce_bound(&mut self) {
        while self.bytes > self.bytes_max && !self.order.is_empty() {
            let dropped = self.drop_oldest();
            self.evicted += dropped;
        }
    }

    /// Drops the oldest run; returns its fingerprint count.
    fn drop_oldest(&mut self) -> u64 {
        let Some((_, id)) = self.order.pop_front() else {
            return 0;
        };
        let s = self
            .streams
            .get_mut(&id)
            .expect("every run in the order has its stream");
        assert!(
            !s.runs.is_empty(),
            "a stream's oldest run is the oldest of the order for it"
        );
        // A stream has a few runs at most (one per seal round in the window): shifting them
        // costs less than a deque's own allocation per stream.
        let run = s.runs.remove(0);
        self.bytes -= run.bytes();
        let n = run.fps.len() as u64;
        self.fingerprints -= n;
        if s.runs.is_empty() {
            self.streams.remove(&id);
        } else {
            s.min_ts = TimestampNs::MAX;
            s.max_ts = TimestampNs::MIN;
            for r in &s.runs {
                let (lo, hi) = (r.fps[0].ts, r.fps[r.fps.len() - 1].ts);
                s.min_ts = s.min_ts.min(lo);
                s.max_ts = s.max_ts.max(hi);
            }
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    fn fp(ts: TimestampNs, line: &str) -> Fingerprint {
        Fingerprint::of(ts, line)
    }

    #[test]
    fn finds_sealed_entries_by_time_and_line() {
        let mut r = RecentlySealed::new(60 * SECOND, 1 << 20);
        let t0 = Instant::now();
        r.add_sealed(7, vec![fp(30, "c"), fp(10, "a"), fp(20, "b")], t0);
        assert!(r.contains(7, &fp(10, "a")));
        assert!(r.contains(7, &fp(30, "c")));
        assert!(!r.contains(7, &fp(10, "b")), "same time, other line");
        assert!(!r.contains(7, &fp(11, "a")), "same line, other time");
        assert!(!r.contains(8, &fp(10, "a")), "other stream");
        assert_eq!(r.bounds(7), Some((10, 30)));
        assert_eq!(r.len(), 3);
    }

    #[test]
    fn runs_expire_after_the_window() {
        let mut r = RecentlySealed::new(60 * SECOND, 1 << 20);
        let t0 = Instant::now();
        r.add_sealed(1, vec![fp(10, "a")], t0);
        r.add_sealed(1, vec![fp(20, "b")], t0 + 30 * SECOND);
        r.expire(t0 + 59 * SECOND);
        assert!(r.contains(1, &fp(10, "a")));
        r.expire(t0 + 60 * SECOND);
        assert!(!r.contains(1, &fp(10, "a")), "the first run's window ended");
        assert!(r.contains(1, &fp(20, "b")));
        assert_eq!(r.bounds(1), Some((20, 20)));
        r.expire(t0 + 90 * SECOND);
        assert!(r.is_empty());
        assert_eq!(r.bounds(1), None);
        assert_eq!(r.bytes(), 0);
        assert_eq!(r.evicted(), 0, "expiry is not eviction");
    }

    #[test]
    fn memory_bound_drops_oldest_runs_first() {
        // Room for two runs of 4 fingerprints.
        let bytes_max = 2 * (4 * FINGERPRINT_BYTES + RUN_OVERHEAD_BYTES);
        let mut r = RecentlySealed::new(600 * SECOND, bytes_max);
        let t0 = Instant::now();
        let run = |base: i64| (0..4).map(|i| fp(base + i, "x")).collect::<Vec<_>>();
        r.add_sealed(1, run(0), t0);
        r.add_sealed(2, run(100), t0);
        assert_eq!(r.len(), 8);
        r.add_sealed(1, run(200), t0 + SECOND);
        assert_eq!(r.evicted(), 4);
        assert!(!r.contains(1, &fp(0, "x")), "oldest run dropped");
        assert!(r.contains(2, &fp(100, "x")));
        assert!(r.contains(1, &fp(200, "x")));
        assert_eq!(r.bounds(1), Some((200, 203)));
        assert!(r.bytes() <= bytes_max);
        // One run larger than the whole bound keeps its newest fingerprints.
        let big: Vec<_> = (0..20).map(|i| fp(1000 + i, "y")).collect();
        r.add_sealed(3, big, t0 + 2 * SECOND);
        assert!(r.bytes() <= bytes_max);
        assert!(r.contains(3, &fp(1019, "y")));
        assert!(!r.contains(3, &fp(1000, "y")));
        assert!(!r.contains(2, &fp(100, "x")));
    }

    #[test]
    fn replayed_fingerprints_fill_open_runs_in_order() {
        let mut r = RecentlySealed::new(600 * SECOND, 1 << 30);
        let t0 = Instant::now();
        for i in (0..(OPEN_RUN_FINGERPRINTS_MAX as i64 + 10)).rev() {
            r.remember(5, fp(i, "l"), t0);
        }
        r.remember(5, fp(3, "l"), t0);
        assert_eq!(r.len(), OPEN_RUN_FINGERPRINTS_MAX as u64 + 10);
        assert_eq!(r.order.len(), 2, "one run closed full, one open");
        for i in 0..(OPEN_RUN_FINGERPRINTS_MAX as i64 + 10) {
            assert!(r.contains(5, &fp(i, "l")), "{i}");
        }
        // A sealed run closes the open one: later replayed entries start a new run.
        r.add_sealed(5, vec![fp(1 << 40, "z")], t0);
        r.remember(5, fp(7, "m"), t0);
        assert_eq!(r.order.len(), 4);
        assert!(r.contains(5, &fp(7, "m")));
    }
}

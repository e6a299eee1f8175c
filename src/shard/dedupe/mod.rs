//! Exact duplicates: an entry is dropped when its stream already holds one with the same
//! timestamp and line, as Loki's ingester does, so that a client that retries a push it got
//! no answer to does not double its lines. Which question it answers: "has this stream got
//! this entry already?"
//!
//! # Which batches
//!
//! The batch says ([`Duplicates`], written into the WAL record with it, so replay decides as
//! the live path did): Loki push (JSON and protobuf) drops duplicates; syslog and JSON lines
//! keep them. Syslog senders never resend, and their timestamps are coarse (whole seconds in
//! RFC 3164, one receive time per read when a message has none), so two equal lines at one
//! time are two events there; JSON lines follows VictoriaLogs, which keeps them.
//!
//! # The key
//!
//! (tenant, stream, timestamp, line): the stream id hashes the tenant with the labels, and
//! the timestamp is compared to the nanosecond. Structured metadata is not part of it, as in
//! Loki: its head block compares only the line among entries of one timestamp
//! (`pkg/chunkenc/unordered.go`), its stream only the timestamp and line of the last entry
//! (`pkg/ingester/stream.go`). A retry with other metadata is the same entry; the first
//! copy's metadata stays.
//!
//! # The window
//!
//! An entry is checked against:
//! 1. its stream's live head: every entry since the stream was last sealed (heads are sealed
//!    at `--seal-bytes` of lines or `--seal-age` after their first entry), lines compared;
//! 2. its stream's heads taken by seal rounds in progress, lines compared;
//! 3. fingerprints (timestamp and xxh3 of the line) of its stream's entries sealed in the
//!    last [`DUPLICATE_WINDOW`], 5 minutes, for streams that took Loki push entries
//!    ([`RecentlySealed`]).
//!
//! The fingerprints of a core share `duplicate_fingerprints_bytes_max`, a share of the
//! memory budget (about 11 MiB of the default 256 MiB on one core), 16 bytes each: about
//! 720,000. While a core seals deduplicated entries faster than that many per window (about
//! 2,400 lines/s), the oldest are dropped first and the sealed window shrinks to 720,000 /
//! rate: about 7 s at 100,000 lines/s, 2 s at 350,000 lines/s (the heads still cover what
//! is unsealed, about half a second more at full rate). Until the budget is known (tests of
//! a bare shard), [`SEALED_FINGERPRINTS_BYTES_MAX`] applies. `shardlog_duplicate_fingerprints_evicted_total`
//! counts fingerprints dropped before their 5 minutes. A copy that arrives after the window
//! is stored again.
//!
//! A fingerprint hit (equal timestamp, equal 64-bit hash) counts as a duplicate without the
//! line. Different lines are mistaken for each other with probability 2^-64 per pair, and a
//! pair needs the same stream and the same nanosecond first: with k sealed entries of the
//! stream at that timestamp (k is 0 or 1 for nanosecond timestamps), 5.4e-20 × k per line.
//! The heads compare lines, so their answers are exact.
//!
//! # Cost per line
//!
//! The check runs in `Shard::apply` as an entry is about to enter its head. An entry
//! newer than everything its stream holds (the usual case: a stream's entries arrive in
//! time order) costs a few comparisons against time bounds looked up once per stream and
//! batch. Otherwise: in an in-order head, a binary search on the timestamps and a comparison
//! of the lines of equal timestamp; in a head out of order (or holding more than
//! [`EQUAL_TS_SCAN_MAX`] entries of one timestamp), a lookup in the head's [`HeadIndex`],
//! built when the head first needs it and kept up on every later append (about 16 bytes
//! per entry); in sealed fingerprints, an xxh3 of the line and a binary search in each of
//! the stream's runs whose time range holds the timestamp. Sealing a head that took Loki
//! push entries hashes its lines once, off the core with the round's encoding; the round's
//! commit only moves the sorted runs in. `benches/dedupe.rs` measures
//! each case on loghub lines; on a 1 MiB head (8,927 lines) of one core of the 2-core
//! development machine (`cargo bench --bench dedupe`), per line:
//!
//! | case | without the check | with it |
//! |---|---|---|
//! | append, timestamps in order (a Loki client) | 15.9 ns | 15.3 ns (within noise) |
//! | append, timestamps shuffled (index kept up) | 16.2 ns | 47.0 ns |
//! | a retry found in an in-order head / in an out-of-order head | | 31.1 ns / 25.3 ns |
//! | same timestamps, other lines, in order (misses) | | 25.4 ns |
//! | fingerprints of a sealed head (off the core) | | 10.6 ns |
//! | a retry found in sealed fingerprints | | 50.5 ns |
//!
//! # Replay
//!
//! Replay runs the same `Shard::apply` in the same seq order, so it drops the same
//! duplicates of heads and seal rounds. The dropped copies stay in the WAL (the check comes
//! after the WAL, when the entry would enter its head) until a checkpoint passes them.
//! Fingerprints are not written anywhere: replay rebuilds them from the records it reads
//! whose entries are already sealed (those it used to skip), with the window counted from
//! the restart. So after a crash, a copy whose original's WAL segment was already deleted is
//! stored, and a copy stored live because its window had ended is dropped if its original's
//! record is still in the WAL: the stored lines differ at most in how many copies of an
//! exact duplicate there are. Lines dropped during replay are not counted again (they were
//! counted when first dropped).

mod head_index;
mod sealed;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use smallvec::SmallVec;

use super::Shard;
use super::head::StreamHead;
use super::index::StreamIdx;
use super::seal::SealingSet;
use crate::model::{BatchItem, BatchReader, Duplicates, StreamId, TimestampNs};
pub use head_index::{Candidate, HeadIndex};
pub use sealed::{Fingerprint, RecentlySealed, SealedRun};

/// Fingerprints of sealed entries are kept 5 minutes after their seal round: a Loki client
/// retries within seconds to a minute or two (Promtail's backoff tops at 5 minutes), and
/// Loki's own guarantee ends when a chunk is flushed.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(300);

/// Memory for fingerprints per core before the shard takes its share of the memory budget
/// ([`crate::config::memory::MemoryBudget::duplicate_fingerprints_bytes_max`]).
pub const SEALED_FINGERPRINTS_BYTES_MAX: usize = 64 << 20;

/// An in-order head compares up to 16 lines of one timestamp before it keeps an index:
/// fewer line comparisons than an index lookup costs in hashing, for the usual short runs;
/// a longer run (many entries pushed with one timestamp) gets the index so that a large
/// push of equal timestamps stays linear.
pub const EQUAL_TS_SCAN_MAX: usize = 16;

/// Where a stream of the batch being applied goes.
pub(super) enum Target {
    /// Its entries are already sealed (replay): they are remembered as fingerprints.
    Sealed(StreamId),
    /// Its head; `noted` once an entry of this record entered it; `elsewhere` when the
    /// batch drops duplicates.
    Head {
        idx: StreamIdx,
        noted: bool,
        elsewhere: Option<Elsewhere>,
    },
}

/// Where else than its live head a stream may hold an entry: its heads in seal rounds in
/// progress and its sealed fingerprints, with the time range they cover. Looked up once per
/// stream and batch, so that an entry outside that range costs two comparisons.
pub(super) struct Elsewhere {
    id: StreamId,
    sealing: SmallVec<[(Arc<SealingSet>, usize); 1]>,
    sealed: bool,
    min_ts: TimestampNs,
    max_ts: TimestampNs,
}

impl Elsewhere {
    fn of(id: StreamId, sealing: &[Arc<SealingSet>], recent: &RecentlySealed) -> Elsewhere {
        let mut e = Elsewhere {
            id,
            sealing: SmallVec::new(),
            sealed: false,
            min_ts: TimestampNs::MAX,
            max_ts: TimestampNs::MIN,
        };
        for set in sealing {
            if let Some(i) = set.index_of(id)
                && !set.heads[i].is_empty()
            {
                e.widen(set.heads[i].min_ts(), set.heads[i].max_ts());
                e.sealing.push((set.clone(), i));
            }
        }
        if let Some((lo, hi)) = recent.bounds(id) {
            e.sealed = true;
            e.widen(lo, hi);
        }
        e
    }

    fn widen(&mut self, lo: TimestampNs, hi: TimestampNs) {
        self.min_ts = self.min_ts.min(lo);
        self.max_ts = self.max_ts.max(hi);
    }

    fn holds(&self, ts: TimestampNs, line: &str, recent: &RecentlySealed) -> bool {
        if ts < self.min_ts || ts > self.max_ts {
            return false;
        }
        self.sealing
            .iter()
            .any(|(set, i)| set.heads[*i].holds(ts, line))
            || (self.sealed && recent.contains(self.id, &Fingerprint::of(ts, line)))
    }
}

impl Shard {
    /// What a stream of a batch that drops duplicates is checked against besides its head.
    pub(super) fn elsewhere(&self, id: StreamId) -> Elsewhere {
        Elsewhere::of(id, &self.sealing.borrow(), &self.recently_sealed.borrow())
    }

    /// Whether the entry is a duplicate: in the stream's live head, or `elsewhere`.
    pub(super) fn is_duplicate(
        &self,
        head: &mut StreamHead,
        elsewhere: &Elsewhere,
        ts: TimestampNs,
        line: &str,
    ) -> bool {
        head.holds_mut(ts, line) || elsewhere.holds(ts, line, &self.recently_sealed.borrow())
    }

    /// Drops fingerprints whose window has ended; called before each batch is applied.
    pub(super) fn expire_fingerprints(&self) -> std::time::Instant {
        let now = std::time::Instant::now();
        self.recently_sealed.borrow_mut().expire(now);
        now
    }

    /// Remembers one already-sealed entry met by replay (see "Replay" above).
    pub(super) fn remember_sealed_entry(
        &self,
        id: StreamId,
        ts: TimestampNs,
        line: &str,
        now: std::time::Instant,
    ) {
        self.recently_sealed
            .borrow_mut()
            .remember(id, Fingerprint::of(ts, line), now);
    }

    /// Replay met a record at or below the WAL checkpoint: all of it is sealed. If its batch
    /// drops duplicates, its entries are remembered. A body that does not decode is left
    /// alone: it is sealed, and nothing else reads it.
    pub(super) fn remember_sealed_record(&self, body: &[u8]) {
        let Ok(reader) = BatchReader::new(body) else {
            return;
        };
        if reader.duplicates() != Duplicates::Drop {
            return;
        }
        let now = self.expire_fingerprints();
        let mut ids: Vec<StreamId> = Vec::new();
        for item in reader {
            match item {
                Ok(BatchItem::Stream { id, .. }) => ids.push(id as StreamId),
                Ok(BatchItem::Entry {
                    stream_index,
                    ts,
                    line,
                    ..
                }) => self.remember_sealed_entry(ids[stream_index as usize], ts, line, now),
                Err(_) => return,
            }
        }
    }

    /// A seal round's parts are in the manifest: its heads that the duplicate check asked
    /// are remembered as fingerprints from now on (`runs`, from [`sealed_runs`]). Called in
    /// the same step as the round's set stops being read, so no check misses them in
    /// between.
    pub(super) fn remember_sealed_runs(&self, runs: Vec<(StreamId, SealedRun)>) {
        let now = std::time::Instant::now();
        let mut recent = self.recently_sealed.borrow_mut();
        for (id, run) in runs {
            recent.add_run(id, run, now);
        }
    }
}

/// The fingerprints of a seal round's heads that the duplicate check asked, one run per
/// head: what [`Shard::remember_sealed_runs`] keeps once the round commits. It touches every
/// entry, so it runs off the core, with the round's encoding.
pub fn sealed_runs(heads: &[StreamHead]) -> Vec<(StreamId, SealedRun)> {
    heads
        .iter()
        .filter(|h| h.checks_duplicates() && !h.is_empty())
        .map(|h| (h.id, SealedRun::new(fingerprints(h))))
        .collect()
}

/// The fingerprints of every entry of a head.
pub fn fingerprints(head: &StreamHead) -> Vec<Fingerprint> {
    (0..head.len())
        .map(|i| Fingerprint::of(head.ts(i), head.entry(i).line))
        .collect()
}

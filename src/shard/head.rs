//! In-memory head chunks: the entries of one stream that are durable in the WAL and not yet
//! sealed into a part file.
//!
//! Entries are appended in arrival order and never moved, so a scan that yields half-way can
//! resume at the same index. `in_order` remembers whether every append had a timestamp at or
//! after the previous one; while it holds, a time range is found by binary search, otherwise
//! the scan filters every entry by time (out-of-order arrival is accepted, as the design asks,
//! and only costs scan time until the head is sealed sorted).
//!
//! A head also answers the duplicate check ([`super::dedupe`]): "is there an entry with this
//! timestamp and line?" In order, by binary search on the timestamps and a comparison of the
//! lines of equal timestamp. A head that has answered it once keeps a [`HeadIndex`] whenever
//! that search would not be short: from the moment it goes out of order, or holds more than
//! [`EQUAL_TS_SCAN_MAX`] entries of one timestamp.

use std::ops::Range;
use std::sync::Arc;

use super::dedupe::{Candidate, EQUAL_TS_SCAN_MAX, HeadIndex};
use crate::chunk::pairs::pair_key;
use crate::model::{Labels, StreamId, TimestampNs};

/// Per entry: its timestamp (8 bytes), line end (8) and metadata end (4).
const ENTRY_HELD_BYTES: usize = 8 + 8 + 4;
/// Per head with entries: what sealing it costs beyond its entries (its stream's labels,
/// postings and block headers in the part's metadata, the round's per-stream maps). A
/// million one-line streams are mostly this, and the heads budget must see it.
const STREAM_HELD_BYTES: usize = 256;
/// Per structured-metadata pair: its key index, value end and index chain link.
const PAIR_HELD_BYTES: usize = 4 + 4 + 4;
/// Per distinct pair: its slot in the index map (key, latest pair, and the table's slack).
const PAIR_KEY_HELD_BYTES: usize = 16;
/// The end of a pair chain.
const NO_PAIR: u32 = u32::MAX;
/// Columns at least this large grow by a quarter rather than double, so that a head just
/// past the seal size does not hold twice its bytes. glibc serves blocks this large with
/// their own mappings (`runtime::allocator`), which `realloc` moves with `mremap`, without
/// copying: growing by steps costs little.
const GROW_BY_QUARTER_BYTES: usize = 256 << 10;

/// Makes room for `extra` more items in `column`: by doubling while it is small, then by a
/// quarter of its size, so that capacity stays within 25% of the length.
fn grow_for<T>(column: &mut Vec<T>, extra: usize) {
    let needed = column.len() + extra;
    if needed <= column.capacity() {
        return;
    }
    let bytes = column.capacity() * std::mem::size_of::<T>();
    if bytes < GROW_BY_QUARTER_BYTES {
        column.reserve(extra);
    } else {
        column.reserve_exact(extra.max(column.capacity() / 4));
    }
}

/// One stream's head.
pub struct StreamHead {
    pub id: StreamId,
    pub tenant: String,
    /// Shared, not copied, by every scan that takes a snapshot of this stream: a query over
    /// a million streams must not copy a million label sets.
    pub labels: Arc<Labels>,
    timestamps: Vec<TimestampNs>,
    /// `line_ends[i]` is the end of line i in `line_bytes`; line i starts at `line_ends[i-1]`.
    line_ends: Vec<u64>,
    line_bytes: Vec<u8>,
    /// `metadata_ends[i]` is the end of entry i's pairs in `metadata_pairs`, as for lines.
    metadata_ends: Vec<u32>,
    /// Per pair: the key's index in `metadata_keys` and the end of its value in
    /// `metadata_values`. Keys repeat on every entry (`procid`, `trace_id`), so they are
    /// interned per head; values share one byte arena: no allocation per entry.
    metadata_pairs: Vec<(u32, u32)>,
    metadata_keys: Vec<Box<str>>,
    metadata_values: String,
    /// The structured-metadata index of the head ([`crate::chunk::pairs`]'s keys): for each
    /// key, its latest pair; `pair_prev[p]` is the pair before `p` with the same key
    /// ([`NO_PAIR`] at the first). A trace lookup walks the chain of its key, a few pairs,
    /// instead of every entry.
    pair_latest: ahash::AHashMap<u32, u32>,
    pair_prev: Vec<u32>,
    in_order: bool,
    min_ts: TimestampNs,
    max_ts: TimestampNs,
    /// WAL seqs of the first and last records with entries in this head (0: none). A head
    /// with entries pins the WAL from `first_seq` on until it is sealed.
    pub first_seq: u64,
    pub last_seq: u64,
    /// When the first entry of this head arrived (sealing by age).
    pub first_arrival: Option<std::time::Instant>,
    /// How many times this stream's head was taken by a seal round before this one was
    /// made. A taken head keeps its generation, so a scan that started on the live head
    /// finds the same entries, at the same indexes, in the seal round that took them.
    generation: u64,
    /// Whether the duplicate check has asked this head (it then keeps `index` when needed,
    /// and its entries are remembered once sealed).
    checks_duplicates: bool,
    /// Entries of the last timestamp, and the most of any one timestamp (while in order).
    equal_ts_run: u32,
    equal_ts_run_max: u32,
    index: Option<HeadIndex>,
}

/// A borrowed view of one entry.
#[derive(Debug, Clone, Copy)]
pub struct EntryView<'a> {
    pub ts: TimestampNs,
    pub line: &'a str,
    pub metadata: MetadataView<'a>,
}

/// The structured metadata of one entry.
#[derive(Clone, Copy)]
pub struct MetadataView<'a> {
    head: &'a StreamHead,
    start: usize,
    end: usize,
}

impl std::fmt::Debug for MetadataView<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<'a> MetadataView<'a> {
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    pub fn len(&self) -> usize {
        self.end - self.start
    }

    /// The pairs in the order they were given.
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        let head = self.head;
        (self.start..self.end).map(move |p| {
            let (key, value_end) = head.metadata_pairs[p];
            let value_start = if p == 0 {
                0
            } else {
                head.metadata_pairs[p - 1].1
            };
            (
                &*head.metadata_keys[key as usize],
                &head.metadata_values[value_start as usize..value_end as usize],
            )
        })
    }
}

impl StreamHead {
    pub fn new(id: StreamId, tenant: &str, labels: Labels) -> StreamHead {
        StreamHead::with_labels(id, tenant, Arc::new(labels))
    }

    fn with_labels(id: StreamId, tenant: &str, labels: Arc<Labels>) -> StreamHead {
        StreamHead {
            id,
            tenant: tenant.to_string(),
            labels,
            timestamps: Vec::new(),
            line_ends: Vec::new(),
            line_bytes: Vec::new(),
            metadata_ends: Vec::new(),
            metadata_pairs: Vec::new(),
            metadata_keys: Vec::new(),
            metadata_values: String::new(),
            pair_latest: ahash::AHashMap::new(),
            pair_prev: Vec::new(),
            in_order: true,
            min_ts: TimestampNs::MAX,
            max_ts: TimestampNs::MIN,
            first_seq: 0,
            last_seq: 0,
            first_arrival: None,
            generation: 0,
            checks_duplicates: false,
            equal_ts_run: 0,
            equal_ts_run_max: 0,
            index: None,
        }
    }

    /// See the field: equal generations of one stream mean the same entries.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Notes that entries of WAL record `seq` are being appended.
    pub fn note_seq(&mut self, seq: u64) {
        if self.first_seq == 0 {
            self.first_seq = seq;
            self.first_arrival = Some(std::time::Instant::now());
        }
        self.last_seq = seq;
    }

    /// Takes every entry out, leaving an empty head of the same stream, one generation on.
    pub fn take(&mut self) -> StreamHead {
        let mut empty = StreamHead::with_labels(self.id, &self.tenant, Arc::clone(&self.labels));
        empty.generation = self.generation + 1;
        std::mem::replace(self, empty)
    }

    pub fn min_ts(&self) -> TimestampNs {
        self.min_ts
    }

    pub fn max_ts(&self) -> TimestampNs {
        self.max_ts
    }

    /// Entry indexes sorted by timestamp, ties in arrival order (the order a part stores).
    pub fn time_order(&self) -> Vec<u32> {
        let mut order: Vec<u32> = (0..self.len() as u32).collect();
        if !self.in_order {
            order.sort_by_key(|&i| self.timestamps[i as usize]);
        }
        order
    }

    pub fn push(&mut self, ts: TimestampNs, line: &str, metadata: &[(&str, &str)]) {
        if let Some(&last) = self.timestamps.last() {
            self.in_order &= ts >= last;
        }
        self.equal_ts_run = if self.timestamps.last() == Some(&ts) {
            self.equal_ts_run + 1
        } else {
            1
        };
        self.equal_ts_run_max = self.equal_ts_run_max.max(self.equal_ts_run);
        self.min_ts = self.min_ts.min(ts);
        self.max_ts = self.max_ts.max(ts);
        grow_for(&mut self.timestamps, 1);
        self.timestamps.push(ts);
        grow_for(&mut self.line_bytes, line.len());
        self.line_bytes.extend_from_slice(line.as_bytes());
        grow_for(&mut self.line_ends, 1);
        self.line_ends.push(self.line_bytes.len() as u64);
        for (k, v) in metadata {
            let key = match self.metadata_keys.iter().position(|known| &**known == *k) {
                Some(i) => i,
                None => {
                    self.metadata_keys.push(Box::from(*k));
                    self.metadata_keys.len() - 1
                }
            };
            self.metadata_values.push_str(v);
            let pair = self.metadata_pairs.len() as u32;
            let prev = self.pair_latest.insert(pair_key(k, v), pair);
            grow_for(&mut self.pair_prev, 1);
            self.pair_prev.push(prev.unwrap_or(NO_PAIR));
            grow_for(&mut self.metadata_pairs, 1);
            self.metadata_pairs
                .push((key as u32, self.metadata_values.len() as u32));
        }
        self.metadata_ends.push(self.metadata_pairs.len() as u32);
        if let Some(index) = &mut self.index {
            index.insert(ts, line, (self.timestamps.len() - 1) as u32);
        } else {
            self.index_if_needed();
        }
    }

    /// The duplicate check of a live head: whether an entry with this timestamp and line is
    /// here. From now on the head keeps its index whenever it needs one.
    #[inline]
    pub fn holds_mut(&mut self, ts: TimestampNs, line: &str) -> bool {
        if !self.checks_duplicates {
            // From now on `push` keeps the index up whenever the head needs one.
            self.checks_duplicates = true;
            self.index_if_needed();
        }
        self.holds(ts, line)
    }

    /// Whether an entry with this timestamp and line is here. Exact: lines are compared.
    /// Short on a head that [`StreamHead::holds_mut`] has asked; on one it never asked
    /// (every entry came from batches that keep duplicates) a long run of equal timestamps,
    /// or an out-of-order head, is scanned.
    #[inline]
    pub fn holds(&self, ts: TimestampNs, line: &str) -> bool {
        if self.is_empty() || ts < self.min_ts || ts > self.max_ts {
            return false;
        }
        self.holds_within(ts, line)
    }

    /// [`StreamHead::holds`] for a time within the head's range.
    fn holds_within(&self, ts: TimestampNs, line: &str) -> bool {
        if let Some(index) = &self.index {
            match index.candidate(ts, line) {
                Candidate::Absent => return false,
                Candidate::Entry { i, .. } if self.is(i as usize, ts, line) => return true,
                Candidate::Entry {
                    scan_if_unequal: false,
                    ..
                } => return false,
                Candidate::Entry { .. } => {}
            }
        }
        let range = if self.in_order {
            self.timestamps.partition_point(|&t| t < ts)
                ..self.timestamps.partition_point(|&t| t <= ts)
        } else {
            0..self.len()
        };
        range.into_iter().any(|i| self.is(i, ts, line))
    }

    /// Whether the duplicate check has asked this head.
    pub fn checks_duplicates(&self) -> bool {
        self.checks_duplicates
    }

    /// Bytes of the duplicate index, if the head has one.
    pub fn index_bytes(&self) -> usize {
        self.index.as_ref().map_or(0, HeadIndex::bytes)
    }

    fn is(&self, i: usize, ts: TimestampNs, line: &str) -> bool {
        self.timestamps[i] == ts && self.line_bytes_of(i) == line.as_bytes()
    }

    fn line_bytes_of(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.line_ends[i - 1] } as usize;
        &self.line_bytes[start..self.line_ends[i] as usize]
    }

    /// Builds the index once the duplicate check has asked and a search by time would not
    /// be short: out of order, or a run of equal timestamps past [`EQUAL_TS_SCAN_MAX`].
    fn index_if_needed(&mut self) {
        let needed = self.checks_duplicates
            && self.index.is_none()
            && (!self.in_order || self.equal_ts_run_max as usize > EQUAL_TS_SCAN_MAX);
        if !needed {
            return;
        }
        let mut index = HeadIndex::with_capacity(self.len());
        for i in 0..self.len() {
            let line = self.entry(i).line;
            index.insert(self.timestamps[i], line, i as u32);
        }
        self.index = Some(index);
    }

    pub fn len(&self) -> usize {
        self.timestamps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.timestamps.is_empty()
    }

    pub fn line_bytes_total(&self) -> u64 {
        self.line_bytes.len() as u64
    }

    /// The memory this head's entries hold, as the core's budget counts it: line and
    /// metadata bytes, per entry its timestamp, line end and metadata end, per pair its key
    /// and value end, and what sealing the stream costs ([`STREAM_HELD_BYTES`]). Exact in lengths (capacity beyond them is bounded by
    /// [`grow_for`]); a function of the entries only, so that adding it up on append and
    /// taking it off on seal leaves nothing behind.
    pub fn held_bytes(&self) -> u64 {
        if self.timestamps.is_empty() {
            return 0;
        }
        (STREAM_HELD_BYTES
            + self.line_bytes.len()
            + self.metadata_values.len()
            + ENTRY_HELD_BYTES * self.timestamps.len()
            + PAIR_HELD_BYTES * self.metadata_pairs.len()
            + PAIR_KEY_HELD_BYTES * self.pair_latest.len()) as u64
    }

    /// Whether any entry may fall in `[start, end)`.
    pub fn overlaps(&self, start: TimestampNs, end: TimestampNs) -> bool {
        !self.is_empty() && self.min_ts < end && self.max_ts >= start
    }

    /// Indexes to visit for `[start, end)`: exact when the head is in order, the whole head
    /// otherwise (the caller then checks each timestamp).
    pub fn candidate_range(&self, start: TimestampNs, end: TimestampNs) -> Range<usize> {
        if !self.overlaps(start, end) {
            return 0..0;
        }
        if !self.in_order {
            return 0..self.len();
        }
        let lo = self.timestamps.partition_point(|&t| t < start);
        let hi = self.timestamps.partition_point(|&t| t < end);
        lo..hi
    }

    pub fn in_order(&self) -> bool {
        self.in_order
    }

    pub fn ts(&self, i: usize) -> TimestampNs {
        self.timestamps[i]
    }

    pub fn entry(&self, i: usize) -> EntryView<'_> {
        let line_start = if i == 0 { 0 } else { self.line_ends[i - 1] } as usize;
        let line_end = self.line_ends[i] as usize;
        let md_start = if i == 0 { 0 } else { self.metadata_ends[i - 1] } as usize;
        let md_end = self.metadata_ends[i] as usize;
        // SAFETY: lines are only ever appended whole from `&str` (`push`), and `line_ends`
        // holds the boundaries between them, so every line's bytes are valid UTF-8.
        // (Checking again on every scan and seal cost several percent of ingest CPU.)
        let line = unsafe { std::str::from_utf8_unchecked(&self.line_bytes[line_start..line_end]) };
        EntryView {
            ts: self.timestamps[i],
            line,
            metadata: MetadataView {
                head: self,
                start: md_start,
                end: md_end,
            },
        }
    }

    /// Entries and line bytes in `[start, end)`, exactly.
    /// Whether some entry's structured metadata may hold the pair of index `key`.
    pub fn has_pair(&self, key: u32) -> bool {
        self.pair_latest.contains_key(&key)
    }

    /// The entries whose structured metadata may hold the pair of index `key` (all that do,
    /// and those of another pair with the same key), ascending.
    pub fn entries_with_pair(&self, key: u32) -> Vec<usize> {
        let mut out = Vec::new();
        let mut p = self.pair_latest.get(&key).copied().unwrap_or(NO_PAIR);
        while p != NO_PAIR {
            // The entry of pair `p`: the first whose metadata ends after it.
            let e = self.metadata_ends.partition_point(|&end| end <= p);
            if out.last() != Some(&e) {
                out.push(e);
            }
            p = self.pair_prev[p as usize];
        }
        out.reverse();
        out
    }

    pub fn count_in(&self, start: TimestampNs, end: TimestampNs) -> (u64, u64) {
        let mut entries = 0;
        let mut bytes = 0;
        for i in self.candidate_range(start, end) {
            let t = self.timestamps[i];
            if t >= start && t < end {
                entries += 1;
                let s = if i == 0 { 0 } else { self.line_ends[i - 1] };
                bytes += self.line_ends[i] - s;
            }
        }
        (entries, bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_head_uses_exact_range() {
        let mut h = StreamHead::new(1, "t", Labels::from_pairs([("a", "b")]));
        for (ts, line) in [(10, "a"), (20, "bb"), (20, "c"), (30, "dddd")] {
            h.push(ts, line, &[]);
        }
        assert!(h.in_order());
        assert_eq!(h.candidate_range(20, 30), 1..3);
        assert_eq!(h.count_in(0, 100), (4, 8));
        assert_eq!(h.entry(3).line, "dddd");
        assert_eq!(h.candidate_range(31, 40), 0..0);
    }

    #[test]
    fn metadata_keys_are_interned_and_values_kept() {
        let mut h = StreamHead::new(1, "t", Labels::default());
        h.push(1, "a", &[("procid", "12"), ("msgid", "ID1")]);
        h.push(2, "b", &[]);
        h.push(3, "c", &[("procid", "7")]);
        assert_eq!(h.metadata_keys.len(), 2);
        let md = |i: usize| h.entry(i).metadata.iter().collect::<Vec<_>>();
        assert_eq!(md(0), [("procid", "12"), ("msgid", "ID1")]);
        assert!(md(1).is_empty());
        assert_eq!(md(2), [("procid", "7")]);
    }

    #[test]
    fn a_pair_finds_exactly_the_entries_that_carry_it() {
        let mut h = StreamHead::new(1, "t", Labels::default());
        h.push(1, "a", &[("trace_id", "x"), ("span_id", "1")]);
        h.push(2, "b", &[]);
        h.push(3, "c", &[("trace_id", "y")]);
        h.push(4, "d", &[("span_id", "2"), ("trace_id", "x")]);
        assert_eq!(h.entries_with_pair(pair_key("trace_id", "x")), [0, 3]);
        assert_eq!(h.entries_with_pair(pair_key("trace_id", "y")), [2]);
        assert_eq!(h.entries_with_pair(pair_key("span_id", "2")), [3]);
        assert!(h.entries_with_pair(pair_key("trace_id", "z")).is_empty());
        // A taken head starts a new index.
        let taken = h.take();
        assert_eq!(taken.entries_with_pair(pair_key("trace_id", "x")), [0, 3]);
        assert!(h.entries_with_pair(pair_key("trace_id", "x")).is_empty());
    }

    #[test]
    fn out_of_order_head_scans_everything() {
        let mut h = StreamHead::new(1, "t", Labels::default());
        h.push(30, "x", &[("k", "v")]);
        h.push(10, "y", &[]);
        assert!(!h.in_order());
        assert_eq!(h.candidate_range(0, 20), 0..2);
        assert_eq!(h.count_in(0, 20), (1, 1));
        assert_eq!(h.entry(0).metadata.iter().collect::<Vec<_>>(), [("k", "v")]);
        assert!(h.entry(1).metadata.is_empty());
    }
}

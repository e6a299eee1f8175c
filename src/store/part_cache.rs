//! What a shard keeps in memory of its parts beyond their headers, bounded in bytes: the
//! metadata (stream list, block headers, postings), the bloom filters and the label summaries
//! ([`super::label_summary`]) that queries read lately.
//!
//! Which question it answers: "which parts' metadata and blooms stay in memory?" Neither is
//! kept resident with its part: both grow with the data stored (a few bytes per line), while
//! the memory budget must not. A reader asks the part for them
//! ([`super::part_file::LoadedPart::tail`], [`super::part_file::LoadedPart::blooms`]); they
//! come from here or are read from the file and checked (the metadata validated whole, the
//! blooms against their crc), and are kept here until less recently used ones need the room.
//! One larger than the whole cache serves its reader and is not kept.
//!
//! Keys are a part's [`super::part_file::LoadedPart::cache_key`], given once per opened part
//! for the life of the process, and what is kept of it.
//!
//! Label summaries are a few KB where a tail is a few MB: a query that reads a day of tails
//! through the cache would push every summary out, and the next label query would read
//! every tail again. So while summaries hold less than [`LABELS_SHARE`] of the bytes, room is
//! made by dropping tails and blooms first; the share is not reserved, and what summaries
//! leave unused serves tails and blooms.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;

use ahash::AHashMap;

use super::label_summary::LabelSummary;
use super::part_file::PartTail;
use crate::metrics::Counter;
use crate::storage::ReadBuf;

/// A part's bloom region as read: the aligned buffer and where the region starts in it.
pub struct BloomRegion {
    pub buf: ReadBuf,
    pub start: usize,
    pub len: usize,
}

impl BloomRegion {
    /// The bytes `[bloom_offset, meta_offset)` of the part.
    pub fn bytes(&self) -> &[u8] {
        &self.buf[self.start..self.start + self.len]
    }

    /// Memory the region holds (its whole aligned buffer).
    pub fn held_bytes(&self) -> u64 {
        self.buf.len() as u64
    }
}

/// What is kept of a part.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Kind {
    /// Its tail: metadata and footer ([`PartTail`]).
    Metadata = 0,
    /// Its bloom region ([`BloomRegion`]).
    Blooms = 1,
    /// Its streams' label names and values ([`LabelSummary`]).
    Labels = 2,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Metadata, Kind::Blooms, Kind::Labels];

    /// Its name in `/metrics`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Metadata => "metadata",
            Kind::Blooms => "blooms",
            Kind::Labels => "labels",
        }
    }
}

#[derive(Clone)]
enum Kept {
    Metadata(Rc<PartTail>),
    Blooms(Rc<BloomRegion>),
    Labels(Rc<LabelSummary>),
}

impl Kept {
    fn held_bytes(&self) -> u64 {
        match self {
            Kept::Metadata(t) => t.held_bytes(),
            Kept::Blooms(b) => b.held_bytes(),
            Kept::Labels(l) => l.held_bytes(),
        }
    }
}

#[derive(Default)]
pub struct PartCacheCounters {
    pub hits: Counter,
    pub misses: Counter,
    pub evictions: Counter,
}

/// The share of the cache's bytes within which label summaries are dropped only for other
/// summaries.
pub const LABELS_SHARE: f64 = 0.125;

pub struct PartCache {
    max_bytes: u64,
    held: Cell<u64>,
    /// Bytes of label summaries kept, and the most they keep from tails and blooms.
    labels_held: Cell<u64>,
    labels_protected: u64,
    inner: RefCell<Inner>,
    /// By [`Kind`].
    pub counters: [PartCacheCounters; Kind::ALL.len()],
}

type Key = (u64, Kind);

#[derive(Default)]
struct Inner {
    by_key: AHashMap<Key, (Kept, u64)>,
    /// Last use (a tick) to key, oldest first: tails and blooms, then label summaries.
    by_use: [BTreeMap<u64, Key>; 2],
    tick: u64,
}

impl PartCache {
    pub fn new(max_bytes: u64) -> PartCache {
        PartCache {
            max_bytes,
            held: Cell::new(0),
            labels_held: Cell::new(0),
            labels_protected: (max_bytes as f64 * LABELS_SHARE) as u64,
            inner: RefCell::new(Inner::default()),
            counters: Default::default(),
        }
    }

    /// Bytes kept now.
    pub fn held_bytes(&self) -> u64 {
        self.held.get()
    }

    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// The tail of part `key`, if kept; it becomes the most recently used.
    pub fn tail(&self, key: u64) -> Option<Rc<PartTail>> {
        match self.get((key, Kind::Metadata))? {
            Kept::Metadata(t) => Some(t),
            _ => None,
        }
    }

    /// The bloom region of part `key`, if kept; it becomes the most recently used.
    pub fn blooms(&self, key: u64) -> Option<Rc<BloomRegion>> {
        match self.get((key, Kind::Blooms))? {
            Kept::Blooms(b) => Some(b),
            _ => None,
        }
    }

    /// The label summary of part `key`, if kept; it becomes the most recently used.
    pub fn labels(&self, key: u64) -> Option<Rc<LabelSummary>> {
        match self.get((key, Kind::Labels))? {
            Kept::Labels(l) => Some(l),
            _ => None,
        }
    }

    /// Keeps the label summary of part `key` (see [`Self::insert`]).
    pub fn insert_labels(&self, key: u64, summary: Rc<LabelSummary>) {
        self.insert((key, Kind::Labels), Kept::Labels(summary));
    }

    /// Keeps the tail of part `key` (see [`Self::insert`]).
    pub fn insert_tail(&self, key: u64, tail: Rc<PartTail>) {
        self.insert((key, Kind::Metadata), Kept::Metadata(tail));
    }

    /// Keeps the bloom region of part `key` (see [`Self::insert`]).
    pub fn insert_blooms(&self, key: u64, region: Rc<BloomRegion>) {
        self.insert((key, Kind::Blooms), Kept::Blooms(region));
    }

    fn get(&self, key: Key) -> Option<Kept> {
        let mut inner = self.inner.borrow_mut();
        inner.tick += 1;
        let tick = inner.tick;
        let counters = &self.counters[key.1 as usize];
        let Some((kept, used)) = inner.by_key.get_mut(&key) else {
            counters.misses.inc();
            return None;
        };
        let (kept, old) = (kept.clone(), std::mem::replace(used, tick));
        let by_use = &mut inner.by_use[group(key.1)];
        if let Some(k) = by_use.remove(&old) {
            by_use.insert(tick, k);
        }
        counters.hits.inc();
        Some(kept)
    }

    /// Keeps `kept` under `key`, making room by dropping the least recently used: tails and
    /// blooms first while label summaries hold less than their share. One larger than the
    /// cache is not kept.
    fn insert(&self, key: Key, kept: Kept) {
        let bytes = kept.held_bytes();
        if bytes > self.max_bytes {
            return;
        }
        self.remove(key);
        let mut inner = self.inner.borrow_mut();
        while self.held.get() + bytes > self.max_bytes {
            let labels_first =
                self.labels_held.get() > self.labels_protected || inner.by_use[0].is_empty();
            let from = if labels_first { 1 } else { 0 };
            let Some((_, oldest)) = inner.by_use[from]
                .pop_first()
                .or_else(|| inner.by_use[1 - from].pop_first())
            else {
                break;
            };
            if let Some((gone, _)) = inner.by_key.remove(&oldest) {
                self.forget_bytes(oldest.1, gone.held_bytes());
                self.counters[oldest.1 as usize].evictions.inc();
            }
        }
        inner.tick += 1;
        let tick = inner.tick;
        inner.by_use[group(key.1)].insert(tick, key);
        inner.by_key.insert(key, (kept, tick));
        self.held.set(self.held.get() + bytes);
        if key.1 == Kind::Labels {
            self.labels_held.set(self.labels_held.get() + bytes);
        }
    }

    fn forget_bytes(&self, kind: Kind, bytes: u64) {
        self.held.set(self.held.get() - bytes);
        if kind == Kind::Labels {
            self.labels_held.set(self.labels_held.get() - bytes);
        }
    }

    /// Forgets what is kept under `key`.
    fn remove(&self, key: Key) {
        let mut inner = self.inner.borrow_mut();
        if let Some((gone, used)) = inner.by_key.remove(&key) {
            inner.by_use[group(key.1)].remove(&used);
            self.forget_bytes(key.1, gone.held_bytes());
        }
    }

    /// Forgets what is kept of every part whose key `live` does not hold: parts that left
    /// their store (merged, dropped, quarantined), which no reader can ask for again. Label
    /// summaries of such parts would otherwise keep their protected room until newer ones
    /// push them out.
    pub fn retain_parts(&self, live: &ahash::AHashSet<u64>) {
        let gone: Vec<Key> = self
            .inner
            .borrow()
            .by_key
            .keys()
            .filter(|(part, _)| !live.contains(part))
            .copied()
            .collect();
        for key in gone {
            self.remove(key);
        }
    }

    /// Forgets what is kept of part `key` (it left the store).
    pub fn forget(&self, key: u64) {
        for kind in Kind::ALL {
            self.remove((key, kind));
        }
    }
}

/// The eviction order a kind is in: tails and blooms, or label summaries.
fn group(kind: Kind) -> usize {
    usize::from(kind == Kind::Labels)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::IoBuf;

    fn region(len: usize) -> Rc<BloomRegion> {
        let buf = IoBuf::new(len);
        Rc::new(BloomRegion {
            buf: ReadBuf::Heap(buf),
            start: 0,
            len,
        })
    }

    #[test]
    fn keeps_the_most_recently_used_within_its_bytes() {
        let cache = PartCache::new(10_000);
        for i in 0..3 {
            cache.insert_blooms(i, region(4096));
        }
        // Three regions of 4096 bytes do not fit in 10,000: the first one went.
        assert!(cache.held_bytes() <= 10_000);
        assert!(cache.blooms(0).is_none());
        assert!(cache.blooms(1).is_some());
        // /p/1 is now more recent than /p/2: the next insert drops /p/2.
        cache.insert_blooms(3, region(4096));
        assert!(cache.blooms(2).is_none());
        assert!(cache.blooms(1).is_some());
        assert!(cache.blooms(3).is_some());
        assert_eq!(cache.counters[Kind::Blooms as usize].evictions.get(), 2);
        assert_eq!(cache.held_bytes(), 8192);
    }

    /// Tails and blooms streaming through the cache do not push label summaries out while
    /// these hold less than their share, and use what the summaries leave.
    #[test]
    fn label_summaries_are_dropped_last_within_their_share() {
        let cache = PartCache::new(80_000);
        let summary = Rc::new(LabelSummary::empty_for_tests(1_000));
        let bytes = summary.held_bytes();
        cache.insert_labels(1, summary.clone());
        for i in 0..100 {
            cache.insert_blooms(100 + i, region(16_384));
        }
        assert!(cache.labels(1).is_some(), "the summary is still kept");
        // The blooms use the room summaries leave: four regions of 16 KiB fit beside one.
        assert_eq!(cache.held_bytes(), 4 * 16_384 + bytes);
        // Summaries beyond their share are dropped oldest first, before any bloom.
        for i in 2..100 {
            cache.insert_labels(i, summary.clone());
        }
        assert!(cache.labels(1).is_none());
        assert!(cache.labels(99).is_some());
        assert!(cache.blooms(199).is_some());
        assert!(cache.held_bytes() <= 80_000);
    }

    #[test]
    fn what_is_kept_of_parts_gone_is_forgotten() {
        let cache = PartCache::new(1 << 20);
        cache.insert_blooms(1, region(4096));
        cache.insert_labels(1, Rc::new(LabelSummary::empty_for_tests(100)));
        cache.insert_blooms(2, region(4096));
        cache.retain_parts(&[2].into_iter().collect());
        assert!(cache.blooms(1).is_none() && cache.labels(1).is_none());
        assert!(cache.blooms(2).is_some());
        assert_eq!(cache.held_bytes(), 4096);
    }

    #[test]
    fn a_region_larger_than_the_cache_is_not_kept() {
        let cache = PartCache::new(4096);
        cache.insert_blooms(9, region(8192));
        assert_eq!(cache.held_bytes(), 0);
        assert!(cache.blooms(9).is_none());
    }

    #[test]
    fn removing_and_inserting_again_counts_bytes_once() {
        let cache = PartCache::new(1 << 20);
        cache.insert_blooms(7, region(4096));
        cache.insert_blooms(7, region(8192));
        assert_eq!(cache.held_bytes(), 8192);
        cache.forget(7);
        assert_eq!(cache.held_bytes(), 0);
        assert!(cache.blooms(7).is_none());
    }
}

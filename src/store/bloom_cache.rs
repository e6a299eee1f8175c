//! The bloom filters of a shard's parts that queries read lately, bounded in bytes.
//!
//! Which question it answers: "which bloom regions stay in memory?" A part's blooms are not
//! kept resident with it: they grow with the data stored (a few percent of it), while the
//! memory budget must not. A query whose line filters can use them asks the part for its
//! bloom region ([`super::part_file::LoadedPart::blooms`]), which comes from here or is read
//! from the file, checked against its crc, and kept here until less recently used regions
//! need the room. A region larger than the whole cache serves its query and is not kept.
//!
//! Keys are part paths: a part id is never given twice in a store, and each store has its
//! own directory, so a path names one part for the life of the process.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use ahash::AHashMap;

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

#[derive(Default)]
pub struct BloomCacheCounters {
    pub hits: Counter,
    pub misses: Counter,
    pub evictions: Counter,
}

pub struct BloomCache {
    max_bytes: u64,
    held: Cell<u64>,
    inner: RefCell<Inner>,
    pub counters: BloomCacheCounters,
}

#[derive(Default)]
struct Inner {
    by_path: AHashMap<PathBuf, (Rc<BloomRegion>, u64)>,
    /// Last use (a tick) to path, oldest first.
    by_use: BTreeMap<u64, PathBuf>,
    tick: u64,
}

impl BloomCache {
    pub fn new(max_bytes: u64) -> BloomCache {
        BloomCache {
            max_bytes,
            held: Cell::new(0),
            inner: RefCell::new(Inner::default()),
            counters: BloomCacheCounters::default(),
        }
    }

    /// Bytes the kept regions hold now.
    pub fn held_bytes(&self) -> u64 {
        self.held.get()
    }

    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// The region of `path`, if kept; it becomes the most recently used.
    pub fn get(&self, path: &Path) -> Option<Rc<BloomRegion>> {
        let mut inner = self.inner.borrow_mut();
        inner.tick += 1;
        let tick = inner.tick;
        let Some((region, used)) = inner.by_path.get_mut(path) else {
            self.counters.misses.inc();
            return None;
        };
        let (region, old) = (Rc::clone(region), std::mem::replace(used, tick));
        if let Some(p) = inner.by_use.remove(&old) {
            inner.by_use.insert(tick, p);
        }
        self.counters.hits.inc();
        Some(region)
    }

    /// Keeps `region` for `path`, making room by dropping the least recently used regions.
    /// A region larger than the cache is not kept.
    pub fn insert(&self, path: &Path, region: Rc<BloomRegion>) {
        let bytes = region.held_bytes();
        if bytes > self.max_bytes {
            return;
        }
        self.remove(path);
        let mut inner = self.inner.borrow_mut();
        while self.held.get() + bytes > self.max_bytes {
            let Some((_, oldest)) = inner.by_use.pop_first() else {
                break;
            };
            if let Some((gone, _)) = inner.by_path.remove(&oldest) {
                self.held.set(self.held.get() - gone.held_bytes());
                self.counters.evictions.inc();
            }
        }
        inner.tick += 1;
        let tick = inner.tick;
        inner.by_use.insert(tick, path.to_path_buf());
        inner.by_path.insert(path.to_path_buf(), (region, tick));
        self.held.set(self.held.get() + bytes);
    }

    /// Forgets the region of `path` (its part left the store).
    pub fn remove(&self, path: &Path) {
        let mut inner = self.inner.borrow_mut();
        if let Some((gone, used)) = inner.by_path.remove(path) {
            inner.by_use.remove(&used);
            self.held.set(self.held.get() - gone.held_bytes());
        }
    }
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
        let cache = BloomCache::new(10_000);
        for i in 0..3 {
            cache.insert(Path::new(&format!("/p/{i}")), region(4096));
        }
        // Three regions of 4096 bytes do not fit in 10,000: the first one went.
        assert!(cache.held_bytes() <= 10_000);
        assert!(cache.get(Path::new("/p/0")).is_none());
        assert!(cache.get(Path::new("/p/1")).is_some());
        // /p/1 is now more recent than /p/2: the next insert drops /p/2.
        cache.insert(Path::new("/p/3"), region(4096));
        assert!(cache.get(Path::new("/p/2")).is_none());
        assert!(cache.get(Path::new("/p/1")).is_some());
        assert!(cache.get(Path::new("/p/3")).is_some());
        assert_eq!(cache.counters.evictions.get(), 2);
        assert_eq!(cache.held_bytes(), 8192);
    }

    #[test]
    fn a_region_larger_than_the_cache_is_not_kept() {
        let cache = BloomCache::new(4096);
        cache.insert(Path::new("/big"), region(8192));
        assert_eq!(cache.held_bytes(), 0);
        assert!(cache.get(Path::new("/big")).is_none());
    }

    #[test]
    fn removing_and_inserting_again_counts_bytes_once() {
        let cache = BloomCache::new(1 << 20);
        let p = Path::new("/p");
        cache.insert(p, region(4096));
        cache.insert(p, region(8192));
        assert_eq!(cache.held_bytes(), 8192);
        cache.remove(p);
        assert_eq!(cache.held_bytes(), 0);
        assert!(cache.get(p).is_none());
    }
}

//! The index of one head by (timestamp, line), for heads the duplicate check cannot search by
//! time alone: heads out of time order, and heads with a long run of equal timestamps.
//!
//! It maps a keyed 64-bit hash of (timestamp, line) to the first entry with that key, 16
//! bytes a slot. The hash is keyed by a random per-index seed (aHash), so that nobody can send
//! lines chosen to collide. A key names a candidate that the head then compares in full: the
//! index never decides a duplicate by itself. Two entries under one key (an equal entry kept
//! from a batch that keeps duplicates, or a real 64-bit collision) set `shared_key`, after
//! which a candidate that differs is no proof of absence and the head scans instead.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::hash::{BuildHasherDefault, Hasher};

use crate::model::TimestampNs;

/// The keys are already hashes: the map uses them as they are.
#[derive(Default)]
struct KeyIsHash(u64);

impl Hasher for KeyIsHash {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used (the key type is u64); fold anything else all the same.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, key: u64) {
        self.0 = key;
    }
}

/// See the module doc.
pub struct HeadIndex {
    seed: ahash::RandomState,
    slots: HashMap<u64, u32, BuildHasherDefault<KeyIsHash>>,
    shared_key: bool,
}

/// What the index says of a (timestamp, line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Candidate {
    /// No entry has this key: certainly absent.
    Absent,
    /// Entry `i` has this key. If it differs and `scan_if_unequal`, another one may not.
    Entry { i: u32, scan_if_unequal: bool },
}

impl HeadIndex {
    /// An empty index with room for `entries`.
    pub fn with_capacity(entries: usize) -> HeadIndex {
        HeadIndex {
            seed: ahash::RandomState::new(),
            slots: HashMap::with_capacity_and_hasher(entries, BuildHasherDefault::default()),
            shared_key: false,
        }
    }

    fn key(&self, ts: TimestampNs, line: &str) -> u64 {
        self.seed.hash_one((ts, line))
    }

    /// Adds entry `i`.
    pub fn insert(&mut self, ts: TimestampNs, line: &str, i: u32) {
        let key = self.key(ts, line);
        match self.slots.entry(key) {
            Entry::Occupied(_) => self.shared_key = true,
            Entry::Vacant(v) => {
                v.insert(i);
            }
        }
    }

    pub fn candidate(&self, ts: TimestampNs, line: &str) -> Candidate {
        match self.slots.get(&self.key(ts, line)) {
            None => Candidate::Absent,
            Some(&i) => Candidate::Entry {
                i,
                scan_if_unequal: self.shared_key,
            },
        }
    }

    /// Memory held, for the figures.
    pub fn bytes(&self) -> usize {
        // A slot is the key, the value and one control byte, padded to 16 bytes.
        self.slots.capacity() * 17
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_candidates_and_notes_shared_keys() {
        let mut ix = HeadIndex::with_capacity(4);
        ix.insert(10, "a", 0);
        ix.insert(10, "b", 1);
        ix.insert(11, "a", 2);
        assert_eq!(
            ix.candidate(10, "b"),
            Candidate::Entry {
                i: 1,
                scan_if_unequal: false
            }
        );
        assert_eq!(ix.candidate(12, "a"), Candidate::Absent);
        assert_eq!(ix.candidate(10, "c"), Candidate::Absent);
        // An equal entry kept a second time: the first stays the candidate.
        ix.insert(10, "a", 3);
        assert_eq!(
            ix.candidate(10, "a"),
            Candidate::Entry {
                i: 0,
                scan_if_unequal: true
            }
        );
        assert!(ix.bytes() >= 3 * 16);
    }

    #[test]
    fn key_is_hash_passes_u64_through() {
        let mut h = KeyIsHash::default();
        h.write_u64(0xdead_beef);
        assert_eq!(h.finish(), 0xdead_beef);
    }
}

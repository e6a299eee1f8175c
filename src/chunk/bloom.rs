//! The bloom filter of a block: which 4-grams of its lines' bytes it may contain
//! ([`super::tokens`] says what a gram is).
//!
//! # Layout and hashing
//!
//! A filter is `m` bits, `m` a multiple of 64 and at least 64, stored as `m / 8` bytes; bit
//! `i` is bit `i % 8` of byte `i / 8`, so a filter is read in place from any byte offset.
//! A gram (4 bytes, read as a little-endian u32) is hashed once with xxh3-64 and a fixed seed;
//! the low and high halves `h1`, `h2` give the `k` probe positions by double hashing,
//! `g_j = h1 + j * h2` (wrapping u32, `h2` forced odd), mapped to `0..m` by the multiply-shift
//! range reduction `(g_j * m) >> 32`. `k` is recorded in the part's metadata.
//!
//! # Sizing
//!
//! A filter with `n` distinct grams, `m = b * n` bits and `k` hashes answers "maybe" for an
//! absent gram with probability `p = (1 - e^(-k / b))^k`. A needle of `L` bytes is tested by
//! its `L - 3` grams (up to 16), and it can be skipped only if one of them is absent, so for
//! a needle whose grams are all absent the false-positive rate is `p^(L-3)`.
//!
//! The filters are paid for in bytes on disk: a block's distinct grams are many (the ten
//! loghub corpus files, one block each, have 115k), and at 3.25 bits per gram (the sizing of
//! format version 1, 1% for a 6-byte needle) their filters took 45.7 KB, a quarter of what
//! the lines of those files compress to at the compaction level. Version 2 writes 2 bits per
//! gram with one hash: `p = 1 - e^(-1/2) = 0.39` (two hashes at 2 bits give 0.40 for twice
//! the probes), 28.7 KB on the corpus; a needle passes an absent block 6% of the time at 6
//! bytes, 0.9% at 8, 0.14% at 10. Real needles are words that share grams with the block
//! (" the", "ing "), which raises their rate above this bound; `CHUNK_SWEEP=1 cargo bench
//! --bench chunk` measures it for real words (6 to 12 bytes, taken from other corpus files)
//! against the corpus blocks they do not occur in (figures of version 1's sweep, k = 2):
//!
//! ```text
//! bits/gram   bloom share of the part   needles let through
//! 2.5         10.6%                     7.6%
//! 3.25        13.3%                     5.2%
//! 5.0         19.1%                     4.5%
//! ```
//!
//! Past 3 bits the rate barely moves: what remains are needles whose every gram is in the
//! block (words made of common grams), which no filter size removes. Parts record `k`, and
//! each block its filter's size, so parts written with other sizings read the same.

use xxhash_rust::xxh3::xxh3_64_with_seed;

use super::BLOOM_BYTES_MAX;

/// Seed of the gram hash. Filters on disk depend on it: never change it.
pub const BLOOM_SEED: u64 = 0x5348_4c47_424c_4f4d; // "SHLGBLOM"

/// Hashes per gram written by default (see the module doc's sizing).
pub const BLOOM_HASHES_DEFAULT: u8 = 1;

/// Most hashes per gram a reader accepts: past 8 a filter only gets slower.
pub const BLOOM_HASHES_MAX: u8 = 8;

/// Bits per distinct gram written by default (see the module doc's sizing).
pub const BLOOM_BITS_PER_GRAM_DEFAULT: f64 = 2.0;

/// Most bits per gram a writer accepts: at 16 a filter outweighs the compressed lines.
pub const BLOOM_BITS_PER_GRAM_MAX: f64 = 16.0;

/// Smallest filter: one word, so that a block without grams still has a valid filter (all
/// zeros: no needle of 4 bytes or more can occur in it).
const BLOOM_BITS_MIN: u64 = 64;

/// The hash of one gram, computed once per needle gram at query time.
#[inline]
pub fn gram_hash(gram: u32) -> u64 {
    xxh3_64_with_seed(&gram.to_le_bytes(), BLOOM_SEED)
}

/// Bits of the filter for `distinct` grams at `bits_per_gram`: rounded up to a multiple of
/// 64, at least 64.
pub fn filter_bits(distinct: usize, bits_per_gram: f64) -> u64 {
    let bits = (distinct as f64 * bits_per_gram).ceil() as u64;
    bits.max(BLOOM_BITS_MIN).div_ceil(64) * 64
}

#[inline]
fn positions(hash: u64, k: u8, m: u64) -> impl Iterator<Item = u64> {
    let h1 = hash as u32;
    let h2 = (hash >> 32) as u32 | 1;
    (0..u32::from(k)).map(move |j| {
        let g = h1.wrapping_add(j.wrapping_mul(h2));
        (u64::from(g) * m) >> 32
    })
}

/// Collects the distinct grams of a block's lines and builds its filter. Keep one per
/// writer: its table is reused from block to block.
///
/// The grams go into an open-addressing hash set as they come (a block of 1 MiB has about a
/// million grams but only a few hundred thousand distinct ones), which is several times
/// faster than collecting them all and sorting to count the distinct ones.
pub struct BloomBuilder {
    /// Linear-probing table of grams; 0 marks an empty slot (gram 0 is `has_zero`).
    table: Vec<u32>,
    /// The slots in use, so that a block's filter is built and the table cleared in time
    /// proportional to the block's grams, not to the table: a part of a million one-line
    /// streams has a million tiny blocks, and sweeping a 64 KiB table for each one took
    /// most of a seal.
    filled: Vec<u32>,
    has_zero: bool,
}

impl Default for BloomBuilder {
    fn default() -> Self {
        BloomBuilder {
            table: vec![0; GRAM_TABLE_SLOTS_MIN],
            filled: Vec::new(),
            has_zero: false,
        }
    }
}

/// Slots of the gram table at first; it doubles when half full.
const GRAM_TABLE_SLOTS_MIN: usize = 1 << 14;

fn slot_of(gram: u32, mask: usize) -> usize {
    // Fibonacci hashing: the multiply mixes every input bit into the high bits kept.
    ((u64::from(gram).wrapping_mul(0x9E37_79B9_7F4A_7C15)) >> 32) as usize & mask
}

impl BloomBuilder {
    pub fn new() -> BloomBuilder {
        BloomBuilder::default()
    }

    /// Adds the grams of one line.
    pub fn add_line(&mut self, line: &[u8]) {
        for w in line.windows(super::tokens::GRAM_BYTES) {
            self.insert(super::tokens::gram_of(w));
        }
    }

    fn insert(&mut self, gram: u32) {
        if gram == 0 {
            self.has_zero = true;
            return;
        }
        if (self.filled.len() + 1) * 2 > self.table.len() {
            self.grow();
        }
        let mask = self.table.len() - 1;
        let mut i = slot_of(gram, mask);
        loop {
            let v = self.table[i];
            if v == gram {
                return;
            }
            if v == 0 {
                self.table[i] = gram;
                // The table's slots fit in u32: it is at most twice a block's grams.
                self.filled.push(i as u32);
                return;
            }
            i = (i + 1) & mask;
        }
    }

    fn grow(&mut self) {
        let slots = self.table.len() * 2;
        let old = std::mem::replace(&mut self.table, vec![0; slots]);
        let mask = self.table.len() - 1;
        for slot in &mut self.filled {
            let g = old[*slot as usize];
            let mut i = slot_of(g, mask);
            while self.table[i] != 0 {
                i = (i + 1) & mask;
            }
            self.table[i] = g;
            *slot = i as u32;
        }
    }

    /// Distinct grams added so far.
    pub fn distinct(&mut self) -> usize {
        self.filled.len() + usize::from(self.has_zero)
    }

    /// Appends the filter of the grams added since the last call to `out`, sized at
    /// `bits_per_gram` with `k` hashes; returns its length in bytes and forgets the grams.
    pub fn finish(&mut self, bits_per_gram: f64, k: u8, out: &mut Vec<u8>) -> usize {
        assert!((1..=BLOOM_HASHES_MAX).contains(&k));
        let m = filter_bits(self.distinct(), bits_per_gram);
        let len = (m / 8) as usize;
        assert!(
            len <= BLOOM_BYTES_MAX,
            "bloom size is bounded by the block size"
        );
        let start = out.len();
        out.resize(start + len, 0);
        let bits = &mut out[start..];
        let zero = self.has_zero.then_some(0u32);
        let grams = self.filled.iter().map(|&slot| self.table[slot as usize]);
        for g in grams.chain(zero) {
            for i in positions(gram_hash(g), k, m) {
                bits[(i / 8) as usize] |= 1 << (i % 8);
            }
        }
        for &slot in &self.filled {
            self.table[slot as usize] = 0;
        }
        self.filled.clear();
        self.has_zero = false;
        len
    }
}

/// A filter read in place.
#[derive(Clone, Copy, Debug)]
pub struct BloomRef<'a> {
    bits: &'a [u8],
    k: u8,
}

impl<'a> BloomRef<'a> {
    /// A filter over `bits` (a non-empty multiple of 8 bytes) with `k` hashes; `None` if the
    /// shape is impossible (the reader checks shapes when it opens a part).
    pub fn new(bits: &'a [u8], k: u8) -> Option<BloomRef<'a>> {
        let shape_ok = !bits.is_empty()
            && bits.len().is_multiple_of(8)
            && bits.len() <= BLOOM_BYTES_MAX
            && (1..=BLOOM_HASHES_MAX).contains(&k);
        shape_ok.then_some(BloomRef { bits, k })
    }

    /// Whether a gram with this [`gram_hash`] may have been added. `false` is certain.
    #[inline]
    pub fn may_contain_hash(&self, hash: u64) -> bool {
        let m = self.bits.len() as u64 * 8;
        positions(hash, self.k, m).all(|i| self.bits[(i / 8) as usize] & (1 << (i % 8)) != 0)
    }

    /// Whether this gram may have been added.
    pub fn may_contain_gram(&self, gram: u32) -> bool {
        self.may_contain_hash(gram_hash(gram))
    }

    /// Bytes of the filter.
    pub fn len_bytes(&self) -> usize {
        self.bits.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::tokens::gram_of;

    fn build(lines: &[&[u8]], bpg: f64, k: u8) -> Vec<u8> {
        let mut b = BloomBuilder::new();
        for l in lines {
            b.add_line(l);
        }
        let mut out = vec![0xAA]; // appending after existing bytes
        let len = b.finish(bpg, k, &mut out);
        assert_eq!(len, out.len() - 1);
        out.remove(0);
        out
    }

    #[test]
    fn sizes() {
        assert_eq!(filter_bits(0, 3.25), 64);
        assert_eq!(filter_bits(100, 3.25), 384);
        assert_eq!(filter_bits(1000, 3.25), 3264);
    }

    #[test]
    fn empty_filter_rejects_everything() {
        let bits = build(&[b"abc", b""], 3.25, 2);
        assert_eq!(bits, vec![0; 8]);
        let f = BloomRef::new(&bits, 2).unwrap();
        assert!(!f.may_contain_gram(gram_of(b"abcd")));
        assert!(BloomRef::new(&[], 2).is_none());
        assert!(BloomRef::new(&bits, 0).is_none());
        assert!(BloomRef::new(&bits[..7], 2).is_none());
    }

    #[test]
    fn measured_gram_false_positive_rate_is_near_theory() {
        // 20k distinct random grams in, 200k random grams out.
        let mut rng = crate::chunk::tests::XorShift(0x9e37_79b9_7f4a_7c15);
        let mut next = || rng.next();
        let mut b = BloomBuilder::new();
        let mut inserted = std::collections::HashSet::new();
        while inserted.len() < 20_000 {
            let g = next() as u32;
            inserted.insert(g);
            b.add_line(&g.to_le_bytes());
        }
        let mut bits = Vec::new();
        b.finish(BLOOM_BITS_PER_GRAM_DEFAULT, 2, &mut bits);
        let f = BloomRef::new(&bits, 2).unwrap();
        for &g in &inserted {
            assert!(f.may_contain_gram(g), "false negative");
        }
        let (mut probes, mut hits) = (0u32, 0u32);
        while probes < 200_000 {
            let g = next() as u32;
            if inserted.contains(&g) {
                continue;
            }
            probes += 1;
            hits += u32::from(f.may_contain_gram(g));
        }
        let rate = f64::from(hits) / f64::from(probes);
        let b = BLOOM_BITS_PER_GRAM_DEFAULT;
        let theory = (1.0 - (-2.0 / b).exp()).powi(2);
        assert!(
            rate > theory * 0.8 && rate < theory * 1.25,
            "measured {rate}, theory {theory}"
        );
    }
}

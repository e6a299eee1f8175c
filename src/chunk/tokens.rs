//! What goes into a block's bloom filter, and how a query's needles are tested against it.
//!
//! # Grams
//!
//! The filter of a block holds the distinct 4-grams of its lines: every run of 4 consecutive
//! bytes inside one line (grams never span two lines), case-sensitive, all bytes included
//! (spaces, punctuation, bytes of multi-byte characters), as a little-endian u32. A line
//! shorter than 4 bytes adds nothing. Why grams and not words: Loki's `|=` is a pure
//! substring test, so `|= "rror"` must find "error"; a whole-word filter would skip blocks
//! that match. Every substring of 4 bytes or more of a line is made of that line's grams, so
//! the filter has no false negatives for any needle.
//!
//! # Needles
//!
//! A needle of `L >= 4` bytes is tested by its grams at offsets `0..=L-4`, deduplicated; when
//! there are more than [`NEEDLE_GRAMS_MAX`], a spread subset of that many, first and last
//! included (the false-positive rate of 16 absent grams is already far below anything
//! measurable; more only costs probe time per block). A block is skipped when any tested gram
//! is absent. A needle shorter than 4 bytes cannot skip anything.
//!
//! # Queries
//!
//! A [`BloomQuery`] is a conjunction of clauses, each a disjunction of byte needles: a block
//! may match only if every clause has a needle that the filter may contain. Which needles a
//! LogQL query requires is the query engine's business (`crate::query::needles`); this
//! module only takes bytes.

use super::bloom::{BloomRef, gram_hash};

/// Bytes of a gram.
pub const GRAM_BYTES: usize = 4;

/// Grams probed per needle (see the module doc).
pub const NEEDLE_GRAMS_MAX: usize = 16;

/// Clauses a query keeps: each costs a probe per block, and a few selective ones already
/// decide.
pub const QUERY_CLAUSES_MAX: usize = 16;

/// Needles of one clause: a clause with more (a regex with a huge alternation) is dropped, as
/// it would cost more probe time than the scan it saves.
pub const CLAUSE_NEEDLES_MAX: usize = 64;

/// The gram of the first 4 bytes of `b`.
#[inline]
pub fn gram_of(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// Appends every gram of `line` (with repeats) to `out`.
pub fn line_grams(line: &[u8], out: &mut Vec<u32>) {
    out.extend(line.windows(GRAM_BYTES).map(gram_of));
}

/// The grams a needle is tested by: distinct, at most [`NEEDLE_GRAMS_MAX`], spread over the
/// needle. Empty for needles shorter than 4 bytes.
pub fn needle_grams(needle: &[u8]) -> Vec<u32> {
    let mut all: Vec<u32> = Vec::new();
    for g in needle.windows(GRAM_BYTES).map(gram_of) {
        if !all.contains(&g) {
            all.push(g);
        }
    }
    if all.len() <= NEEDLE_GRAMS_MAX {
        return all;
    }
    let last = all.len() - 1;
    (0..NEEDLE_GRAMS_MAX)
        .map(|i| all[i * last / (NEEDLE_GRAMS_MAX - 1)])
        .collect()
}

/// One needle with its gram hashes computed once per query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NeedleProbe {
    pub needle: Vec<u8>,
    hashes: Vec<u64>,
}

impl NeedleProbe {
    /// `None` for needles too short to test.
    pub fn new(needle: &[u8]) -> Option<NeedleProbe> {
        if needle.len() < GRAM_BYTES {
            return None;
        }
        let hashes = needle_grams(needle).into_iter().map(gram_hash).collect();
        Some(NeedleProbe {
            needle: needle.to_vec(),
            hashes,
        })
    }

    /// Whether the needle may occur in a line of the filter's block.
    #[inline]
    pub fn may_occur(&self, bloom: &BloomRef<'_>) -> bool {
        self.hashes.iter().all(|&h| bloom.may_contain_hash(h))
    }
}

/// The needles a query requires: all clauses, each any of its needles.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BloomQuery {
    clauses: Vec<Vec<NeedleProbe>>,
}

impl BloomQuery {
    /// A query with no usable needle: every block may match.
    pub fn is_empty(&self) -> bool {
        self.clauses.is_empty()
    }

    /// The clauses, as needles, for plans and tests.
    pub fn clauses(&self) -> Vec<Vec<&[u8]>> {
        self.clauses
            .iter()
            .map(|c| c.iter().map(|p| p.needle.as_slice()).collect())
            .collect()
    }

    /// Whether a block with this filter may hold a matching line. A block without a filter
    /// (`None`) always may; `false` is certain.
    pub fn may_match(&self, bloom: Option<&BloomRef<'_>>) -> bool {
        let Some(bloom) = bloom else {
            return true;
        };
        self.clauses
            .iter()
            .all(|clause| clause.iter().any(|n| n.may_occur(bloom)))
    }

    /// Orders the clauses most selective first (a block is dropped at the first clause that
    /// fails) and keeps at most `clauses_max`.
    pub fn finish(&mut self, clauses_max: usize) {
        self.clauses.sort_by_key(|c| {
            std::cmp::Reverse(c.iter().map(|n| n.needle.len()).min().unwrap_or(0))
        });
        self.clauses.truncate(clauses_max);
    }

    /// Adds a clause: a block may match only if one of `needles` may occur in it. A clause
    /// with a needle too short to probe, or with too many needles, is left out (leaving a
    /// clause of a conjunction out keeps it a necessary condition).
    pub fn push_clause(&mut self, needles: &[Vec<u8>]) {
        if needles.is_empty() || needles.len() > CLAUSE_NEEDLES_MAX {
            return;
        }
        let probes: Option<Vec<NeedleProbe>> =
            needles.iter().map(|n| NeedleProbe::new(n)).collect();
        if let Some(probes) = probes {
            self.clauses.push(probes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grams_of_lines_and_needles() {
        let mut g = Vec::new();
        line_grams(b"abcdef", &mut g);
        assert_eq!(
            g,
            vec![gram_of(b"abcd"), gram_of(b"bcde"), gram_of(b"cdef")]
        );
        g.clear();
        line_grams(b"abc", &mut g);
        assert!(g.is_empty());
        assert_eq!(needle_grams(b"aaaaaa"), vec![gram_of(b"aaaa")]);
        let long: Vec<u8> = (0u8..100).collect();
        let grams = needle_grams(&long);
        assert_eq!(grams.len(), NEEDLE_GRAMS_MAX);
        assert_eq!(grams[0], gram_of(&long[0..]));
        assert_eq!(grams[15], gram_of(&long[96..]));
    }
}

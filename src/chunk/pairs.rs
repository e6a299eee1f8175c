//! The structured-metadata index of a part (format version 3): for a `name=value` pair, which
//! blocks hold an entry that carries it.
//!
//! Which question it answers: "which blocks can hold `trace_id=4bf92f3577b34da6`?" without
//! reading them. A trace id is a needle the line's gram bloom does not see (it is not in the
//! line), and it is asked for alone over days of data, so the index is built for a point
//! lookup that reads a few KiB whatever the part's size, not for a filter probed block by
//! block.
//!
//! # Keys
//!
//! A pair's key is the high 32 bits of xxh3-64 over `name`, a `0xFF` byte (never in UTF-8, so
//! `a`+`bc` and `ab`+`c` differ) and `value`, with [`PAIR_SEED`]. Two pairs can share a key:
//! the index answers "maybe" for both, and the scan's filter decides, so a collision costs a
//! block read, never a wrong answer. With `n` index entries in a part, an absent pair names a
//! block with probability about `n / 2^32` (10⁻⁴ at 400,000 entries).
//!
//! One more key, [`escape_key`], is not a pair: it names the blocks that have a line with a
//! backslash or U+FFFD. A value a parser takes out of such a line may be unescaped, and so
//! not a substring of it; the planner prunes a block after `| json` only when it has none.
//!
//! # Layout
//!
//! The index sits between the data blocks and the bloom region: `pair_entries` entries of
//! 8 bytes, `(key u32, block u32)` little-endian, sorted by key then block, each `(key,
//! block)` once; then its directory, one 8-byte record per page of [`PAIR_PAGE_ENTRIES`]
//! entries: the page's first key and the crc32c of the page's bytes. The footer records the
//! index's offset, its entry count and the crc32c of the directory.
//!
//! A lookup reads the directory once (small: 8 bytes per 512 entries, kept by the part), finds
//! the pages that can hold the key by binary search, reads them (usually one, at most a few
//! KiB: every page but the last is 4 KiB) and checks their crc. So a trace lookup costs a
//! read of a few KiB per part, not the part's blooms nor its blocks.
//!
//! # Cost
//!
//! 8 bytes per distinct (pair, block): a trace id on 10 lines of one stream, sealed together,
//! is one entry, 0.8 B per line; a value every entry of a block shares (`level=info`) is one
//! entry per block. A unique value per line (`span_id`) costs 8 B per line.

use xxhash_rust::xxh3::Xxh3;

/// Seed of the pair key. Indexes on disk depend on it: never change it.
pub const PAIR_SEED: u64 = 0x5348_4c47_5041_4952; // "SHLGPAIR"

/// Bytes of one index entry: key and block.
pub const PAIR_ENTRY_BYTES: usize = 8;

/// Entries of one page; a page is 4 KiB, one direct-I/O block when the index is aligned.
pub const PAIR_PAGE_ENTRIES: usize = 512;

/// Bytes of one directory record: the page's first key and its crc32c.
pub const PAIR_DIR_RECORD_BYTES: usize = 8;

/// Index entries of one part. One per distinct pair and block: a part of 4 Mi blocks
/// ([`super::PART_BLOCKS_MAX`]) with a unique span id on each of 100 M lines stays under it.
pub const PART_PAIR_ENTRIES_MAX: u64 = 1 << 28;

/// The key of `name=value` (see the module doc).
pub fn pair_key(name: &str, value: &str) -> u32 {
    let mut h = Xxh3::with_seed(PAIR_SEED);
    h.update(name.as_bytes());
    h.update(&[0xFF]);
    h.update(value.as_bytes());
    (h.digest() >> 32) as u32
}

/// The key that names blocks with a line a parser may unescape (see the module doc).
pub fn escape_key() -> u32 {
    // 0xFF 0xFE: no pair's hashed bytes start this way, as no UTF-8 name does.
    let mut h = Xxh3::with_seed(PAIR_SEED);
    h.update(&[0xFF, 0xFE]);
    (h.digest() >> 32) as u32
}

/// Whether a parser may give a value that is not a substring of `line`: JSON and logfmt
/// unescape `\`, and every parser drops U+FFFD.
pub fn line_may_unescape(line: &[u8]) -> bool {
    memchr::memchr(b'\\', line).is_some()
        || memchr::memmem::find(line, "\u{FFFD}".as_bytes()).is_some()
}

/// Collects a part's `(key, block)` entries as its blocks are written, and lays out the index.
#[derive(Default)]
pub struct PairIndexBuilder {
    /// `key << 32 | block`: sorting them sorts by key, then block.
    entries: Vec<u64>,
    /// Entries of the current block, deduplicated before they join `entries` (a block's
    /// entries repeat their pairs: `level=info` on every line).
    block: Vec<u32>,
}

impl PairIndexBuilder {
    pub fn new() -> PairIndexBuilder {
        PairIndexBuilder::default()
    }

    /// Adds one key of the block being written.
    pub fn add(&mut self, key: u32) {
        self.block.push(key);
    }

    /// Ends block `block`: its keys join the index once each.
    pub fn end_block(&mut self, block: u32) {
        self.block.sort_unstable();
        self.block.dedup();
        self.entries.extend(
            self.block
                .drain(..)
                .map(|k| u64::from(k) << 32 | u64::from(block)),
        );
    }

    /// Entries so far.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Appends the entries and the directory to `out`; returns the entry count and the
    /// directory's crc32c.
    pub fn finish(mut self, out: &mut Vec<u8>) -> (u32, u32) {
        self.entries.sort_unstable();
        self.entries.dedup();
        let start = out.len();
        for e in &self.entries {
            out.extend_from_slice(&((e >> 32) as u32).to_le_bytes());
            out.extend_from_slice(&(*e as u32).to_le_bytes());
        }
        let mut dir = Vec::with_capacity(self.entries.len().div_ceil(PAIR_PAGE_ENTRIES) * 8);
        for page in out[start..].chunks(PAIR_PAGE_ENTRIES * PAIR_ENTRY_BYTES) {
            dir.extend_from_slice(&page[..4]);
            dir.extend_from_slice(&crc32c::crc32c(page).to_le_bytes());
        }
        let crc = crc32c::crc32c(&dir);
        out.extend_from_slice(&dir);
        (self.entries.len() as u32, crc)
    }
}

/// Pages of an index of `entries` entries.
pub fn pages_of(entries: u64) -> u64 {
    entries.div_ceil(PAIR_PAGE_ENTRIES as u64)
}

/// A part's index directory, checked: its pages' first keys ascend.
#[derive(Debug, Clone)]
pub struct PairDirectory {
    /// First key of each page.
    first_keys: Vec<u32>,
    crcs: Vec<u32>,
    /// File offset of the first entry.
    offset: u64,
    entries: u64,
}

/// Why an index page or directory is wrong: the byte offset in the file and what.
pub type PairCorruption = (u64, String);

impl PairDirectory {
    /// Parses the directory bytes of an index of `entries` entries at file offset `offset`,
    /// checking them against the footer's crc.
    pub fn parse(
        bytes: &[u8],
        offset: u64,
        entries: u64,
        crc: u32,
    ) -> Result<PairDirectory, PairCorruption> {
        let dir_offset = offset + entries * PAIR_ENTRY_BYTES as u64;
        let pages = pages_of(entries) as usize;
        if bytes.len() != pages * PAIR_DIR_RECORD_BYTES {
            return Err((
                dir_offset,
                format!(
                    "metadata index directory is {} bytes, {pages} pages need {}",
                    bytes.len(),
                    pages * PAIR_DIR_RECORD_BYTES
                ),
            ));
        }
        let computed = crc32c::crc32c(bytes);
        if computed != crc {
            return Err((
                dir_offset,
                format!(
                    "metadata index directory checksum mismatch (stored {crc:#010x}, computed {computed:#010x})"
                ),
            ));
        }
        let mut first_keys = Vec::with_capacity(pages);
        let mut crcs = Vec::with_capacity(pages);
        for (p, rec) in bytes.chunks_exact(PAIR_DIR_RECORD_BYTES).enumerate() {
            let key = u32::from_le_bytes(rec[..4].try_into().expect("4 bytes"));
            if first_keys.last().is_some_and(|&prev| prev > key) {
                return Err((
                    dir_offset + (p * PAIR_DIR_RECORD_BYTES) as u64,
                    format!("metadata index page {p} starts below the page before it"),
                ));
            }
            first_keys.push(key);
            crcs.push(u32::from_le_bytes(rec[4..].try_into().expect("4 bytes")));
        }
        Ok(PairDirectory {
            first_keys,
            crcs,
            offset,
            entries,
        })
    }

    /// Bytes held in memory.
    pub fn resident_bytes(&self) -> u64 {
        (self.first_keys.len() * 8) as u64
    }

    /// The pages that can hold `key`: a contiguous range, often one page, empty when no page
    /// can.
    pub fn pages_for(&self, key: u32) -> std::ops::Range<usize> {
        // A page whose first key is below `key` may end with it; pages starting at `key` hold
        // it; the first page starting above it does not.
        let below = self.first_keys.partition_point(|&k| k < key);
        let upto = self.first_keys.partition_point(|&k| k <= key);
        let start = below.saturating_sub(1);
        if upto == 0 { 0..0 } else { start..upto }
    }

    /// The file byte range of pages `pages`.
    pub fn byte_range(&self, pages: &std::ops::Range<usize>) -> std::ops::Range<u64> {
        let page = (PAIR_PAGE_ENTRIES * PAIR_ENTRY_BYTES) as u64;
        let end_all = self.offset + self.entries * PAIR_ENTRY_BYTES as u64;
        let start = self.offset + pages.start as u64 * page;
        let end = (self.offset + pages.end as u64 * page).min(end_all);
        start..end.max(start)
    }

    /// The blocks with entries of `key`, ascending, from `entries`: the index's entry bytes
    /// whole (the file from the index's offset), as a whole-file reader holds them.
    pub fn lookup(
        &self,
        key: u32,
        entries: &[u8],
        blocks: u32,
    ) -> Result<Vec<u32>, PairCorruption> {
        let pages = self.pages_for(key);
        let range = self.byte_range(&pages);
        let (lo, hi) = (
            (range.start - self.offset) as usize,
            (range.end - self.offset) as usize,
        );
        let mut out = Vec::new();
        self.blocks_with(key, &pages, &entries[lo..hi], blocks, &mut out)?;
        Ok(out)
    }

    /// The blocks of the entries with `key` in `bytes`, the bytes of pages `pages` (as
    /// [`Self::byte_range`] gives them), after checking each page's crc and order and that
    /// every block is below `blocks`. Pushes them ascending to `out`.
    pub fn blocks_with(
        &self,
        key: u32,
        pages: &std::ops::Range<usize>,
        bytes: &[u8],
        blocks: u32,
        out: &mut Vec<u32>,
    ) -> Result<(), PairCorruption> {
        let page_bytes = PAIR_PAGE_ENTRIES * PAIR_ENTRY_BYTES;
        let range = self.byte_range(pages);
        if bytes.len() as u64 != range.end - range.start {
            return Err((
                range.start,
                format!(
                    "metadata index pages are {} bytes, read {}",
                    range.end - range.start,
                    bytes.len()
                ),
            ));
        }
        let mut prev: Option<u64> = None;
        for (i, page) in bytes.chunks(page_bytes).enumerate() {
            let p = pages.start + i;
            let at = range.start + (i * page_bytes) as u64;
            let computed = crc32c::crc32c(page);
            if computed != self.crcs[p] {
                return Err((
                    at,
                    format!(
                        "metadata index page {p} checksum mismatch (stored {:#010x}, computed {computed:#010x})",
                        self.crcs[p]
                    ),
                ));
            }
            if page[..4] != self.first_keys[p].to_le_bytes() {
                return Err((
                    at,
                    format!("metadata index page {p} does not start with its directory key"),
                ));
            }
            for (j, e) in page.chunks_exact(PAIR_ENTRY_BYTES).enumerate() {
                let k = u32::from_le_bytes(e[..4].try_into().expect("4 bytes"));
                let b = u32::from_le_bytes(e[4..].try_into().expect("4 bytes"));
                let here = u64::from(k) << 32 | u64::from(b);
                let where_ = at + (j * PAIR_ENTRY_BYTES) as u64;
                if prev.is_some_and(|p| p >= here) {
                    return Err((
                        where_,
                        "metadata index entries are not strictly ascending".into(),
                    ));
                }
                if b >= blocks {
                    return Err((
                        where_,
                        format!("metadata index names block {b}; the part has {blocks}"),
                    ));
                }
                prev = Some(here);
                if k == key {
                    out.push(b);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn built(blocks: &[Vec<u32>]) -> (Vec<u8>, u32, u32) {
        let mut b = PairIndexBuilder::new();
        for (i, keys) in blocks.iter().enumerate() {
            for &k in keys {
                b.add(k);
            }
            b.end_block(i as u32);
        }
        let mut out = Vec::new();
        let (n, crc) = b.finish(&mut out);
        (out, n, crc)
    }

    fn lookup(
        bytes: &[u8],
        n: u32,
        crc: u32,
        key: u32,
        blocks: u32,
    ) -> Result<Vec<u32>, PairCorruption> {
        let entries = u64::from(n);
        let dir_at = entries as usize * PAIR_ENTRY_BYTES;
        let dir = PairDirectory::parse(&bytes[dir_at..], 0, entries, crc)?;
        dir.lookup(key, &bytes[..dir_at], blocks)
    }

    #[test]
    fn keys_separate_name_from_value() {
        assert_ne!(pair_key("a", "bc"), pair_key("ab", "c"));
        assert_eq!(pair_key("trace_id", "x"), pair_key("trace_id", "x"));
        assert_ne!(escape_key(), pair_key("", ""));
    }

    #[test]
    fn a_key_spanning_pages_is_found_in_every_block() {
        // One key in 2,000 blocks: four pages of the same key, between others.
        let mut blocks: Vec<Vec<u32>> = (0..2000).map(|_| vec![7]).collect();
        blocks[0].push(3);
        blocks[1999].push(9);
        let (bytes, n, crc) = built(&blocks);
        assert_eq!(n, 2002);
        assert_eq!(
            lookup(&bytes, n, crc, 7, 2000).unwrap(),
            (0..2000).collect::<Vec<_>>()
        );
        assert_eq!(lookup(&bytes, n, crc, 3, 2000).unwrap(), vec![0]);
        assert_eq!(lookup(&bytes, n, crc, 9, 2000).unwrap(), vec![1999]);
        assert!(lookup(&bytes, n, crc, 8, 2000).unwrap().is_empty());
        assert!(lookup(&bytes, n, crc, 0, 2000).unwrap().is_empty());
    }

    #[test]
    fn an_empty_index_names_nothing() {
        let (bytes, n, crc) = built(&[]);
        assert_eq!(n, 0);
        assert!(bytes.is_empty());
        assert!(lookup(&bytes, n, crc, 1, 1).unwrap().is_empty());
    }

    #[test]
    fn rot_in_a_page_or_the_directory_is_found_with_its_offset() {
        let blocks: Vec<Vec<u32>> = (0..600).map(|i| vec![i * 3, 5]).collect();
        let (bytes, n, crc) = built(&blocks);
        let mut bad = bytes.clone();
        bad[4100] ^= 1;
        let key = u32::from_le_bytes(bad[4096..4100].try_into().unwrap());
        let (at, what) = lookup(&bad, n, crc, key, 600).unwrap_err();
        assert_eq!(at, 4096, "{what}");
        assert!(what.contains("page 1 checksum"), "{what}");
        let mut bad = bytes.clone();
        let dir_at = n as usize * PAIR_ENTRY_BYTES;
        bad[dir_at] ^= 1;
        let (at, what) = lookup(&bad, n, crc, 5, 600).unwrap_err();
        assert_eq!(at, dir_at as u64);
        assert!(what.contains("directory checksum"), "{what}");
        // A block number past the part's: the part is not what the index says.
        assert!(
            lookup(&bytes, n, crc, 5, 10)
                .unwrap_err()
                .1
                .contains("names block")
        );
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(64))]

            /// No false negatives: every key of every block is found in it, and a block is
            /// named for a key only if the key was added to it.
            #[test]
            fn every_added_key_finds_exactly_its_blocks(
                blocks in prop::collection::vec(prop::collection::vec(0u32..3000, 0..40), 1..80),
            ) {
                let (bytes, n, crc) = built(&blocks);
                let mut keys: Vec<u32> = blocks.iter().flatten().copied().collect();
                keys.sort_unstable();
                keys.dedup();
                keys.extend([3000, u32::MAX]);
                for k in keys {
                    let want: Vec<u32> = (0..blocks.len() as u32)
                        .filter(|&b| blocks[b as usize].contains(&k))
                        .collect();
                    prop_assert_eq!(lookup(&bytes, n, crc, k, blocks.len() as u32).unwrap(), want);
                }
            }
        }
    }
}

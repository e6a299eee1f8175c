//! The part writer ([`encode_part`]), the file header and the footer. The byte layout is in
//! the [`super`] module doc; [`super::reader`] reads what this writes.

use std::collections::BTreeMap;
use std::path::Path;

use super::block::{EntryInput, encode_body, entry_body_bytes};
use super::bloom::{BLOOM_BITS_PER_GRAM_DEFAULT, BLOOM_BITS_PER_GRAM_MAX, BLOOM_HASHES_DEFAULT};
use super::bloom::{BLOOM_HASHES_MAX, BloomBuilder};
use super::lines::LineTemplates;
use super::meta::{BlockMeta, LabelPair, LabelPostings, PartMeta, StreamMeta, ValuePostings};
use super::pairs::{
    PAIR_DIR_RECORD_BYTES, PAIR_ENTRY_BYTES, PART_PAIR_ENTRIES_MAX, PairIndexBuilder, escape_key,
    line_may_unescape, pages_of, pair_key,
};
use super::varint::{uvarint_len, zigzag};
use super::*;
use crate::model::{Labels, TimestampNs, stream_hash, validate_tenant};
use crate::runtime::courtesy::pause_point;

/// zstd level written by default. Measured on the ten loghub corpus files, one part each,
/// 1 MiB blocks (`CHUNK_SWEEP=1 cargo bench --bench chunk`): against level 3, level 9 writes
/// 10% fewer bytes at half the speed (about 60 MB/s of lines per core with blooms), level 15
/// 3% fewer again at a quarter of 9's speed, level 19 7% fewer than 9 at 1/25 of its speed.
/// Sealing keeps up with ingest at 9; a compaction that rewrites cold parts could use 19.
pub const ZSTD_LEVEL_DEFAULT: i32 = 9;

/// Uncompressed bytes per block written by default: about 1 MiB, big enough for zstd to find
/// the repeats of a stream, small enough that a query wanting a few lines decompresses
/// little.
pub const BLOCK_BYTES_TARGET_DEFAULT: usize = 1 << 20;

/// Lines added to a block's bloom filter between two pause points: a few hundred
/// microseconds of work.
const BLOOM_LINES_PER_PAUSE_POINT: usize = 1024;

/// The least block target a writer accepts: below a few KiB zstd has nothing to work with.
pub const BLOCK_BYTES_TARGET_MIN: usize = 4 << 10;

/// How the writer encodes a part.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PartWriterOptions {
    /// zstd compression level (zstd's range, 1 to 22; negative levels are fast modes).
    pub zstd_level: i32,
    /// A stream's entries are cut into blocks of about this many uncompressed bytes.
    pub block_bytes_target: usize,
    /// Bloom filter bits per distinct gram of a block; 0 writes no filters.
    pub bloom_bits_per_gram: f64,
    /// Hashes per gram (see [`super::bloom`]).
    pub bloom_hashes: u8,
    /// Whether blocks may store their lines as templates and variables ([`super::lines`]):
    /// smaller, at the cost of a pass over the lines; off by default (sealing), on for
    /// compaction.
    pub line_templates: LineTemplates,
}

impl Default for PartWriterOptions {
    fn default() -> Self {
        PartWriterOptions {
            zstd_level: ZSTD_LEVEL_DEFAULT,
            block_bytes_target: BLOCK_BYTES_TARGET_DEFAULT,
            bloom_bits_per_gram: BLOOM_BITS_PER_GRAM_DEFAULT,
            bloom_hashes: BLOOM_HASHES_DEFAULT,
            line_templates: LineTemplates::Off,
        }
    }
}

impl PartWriterOptions {
    pub fn validate(&self) -> Result<(), ChunkError> {
        let levels = zstd::compression_level_range();
        if !levels.contains(&self.zstd_level) {
            return Err(ChunkError::InvalidInput(format!(
                "zstd level {} is outside zstd's range {levels:?}",
                self.zstd_level
            )));
        }
        if !(BLOCK_BYTES_TARGET_MIN..=BLOCK_BYTES_TARGET_LIMIT).contains(&self.block_bytes_target) {
            return Err(ChunkError::InvalidInput(format!(
                "block target {} bytes is outside {BLOCK_BYTES_TARGET_MIN}..={BLOCK_BYTES_TARGET_LIMIT}",
                self.block_bytes_target
            )));
        }
        let bpg = self.bloom_bits_per_gram;
        if !(0.0..=BLOOM_BITS_PER_GRAM_MAX).contains(&bpg) {
            return Err(ChunkError::InvalidInput(format!(
                "bloom bits per gram {bpg} is outside 0..={BLOOM_BITS_PER_GRAM_MAX}"
            )));
        }
        if !(1..=BLOOM_HASHES_MAX).contains(&self.bloom_hashes) {
            return Err(ChunkError::InvalidInput(format!(
                "bloom hashes {} is outside 1..={BLOOM_HASHES_MAX}",
                self.bloom_hashes
            )));
        }
        Ok(())
    }
}

/// One stream's entries to write, sorted by timestamp (ties keep their order).
#[derive(Debug, Clone, Copy)]
pub struct StreamBlockInput<'a> {
    /// [`stream_hash`] of `tenant` and `labels`.
    pub stream_id: u64,
    pub tenant: &'a str,
    pub labels: &'a Labels,
    pub entries: &'a [EntryInput<'a>],
}

/// The decoded footer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartFooter {
    pub bloom_offset: u64,
    pub meta_offset: u64,
    pub meta_len: u64,
    pub entries: u64,
    pub min_ts: i64,
    pub max_ts: i64,
    pub blocks: u32,
    pub streams: u32,
    pub meta_crc32c: u32,
    pub bloom_crc32c: u32,
    /// File offset of the metadata index ([`super::pairs`]), right after the blocks; 0 when
    /// the part has none (always in versions 1 and 2).
    pub pairs_offset: u64,
    /// Entries of the metadata index.
    pub pair_entries: u32,
    /// crc32c of the metadata index's directory.
    pub pair_dir_crc32c: u32,
    /// The format version of the file (the header holds the same).
    pub version: u32,
    /// The file's length (not stored: the footer is found at the end).
    pub file_len: u64,
}

/// File offset of the last direct-I/O block of a file of `file_len` bytes, which holds the
/// footer: read from there to the end and give it to [`PartFooter::decode`].
pub fn footer_block_offset(file_len: u64) -> u64 {
    file_len.saturating_sub(PART_ALIGN_BYTES as u64)
}

fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

pub(crate) fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

pub(crate) fn le_u64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// Byte offsets of the footer fields.
mod at {
    pub const BLOOM_OFFSET: usize = 0;
    pub const META_OFFSET: usize = 8;
    pub const META_LEN: usize = 16;
    pub const ENTRIES: usize = 24;
    pub const MIN_TS: usize = 32;
    pub const MAX_TS: usize = 40;
    pub const BLOCKS: usize = 48;
    pub const STREAMS: usize = 52;
    pub const META_CRC: usize = 56;
    pub const BLOOM_CRC: usize = 60;
    /// Versions 1 and 2: flags (0) and reserved bytes, all zero.
    pub const FLAGS: usize = 64;
    pub const RESERVED: usize = 68;
    /// Version 3: the metadata index, where versions 1 and 2 had flags and reserved bytes.
    pub const PAIRS_OFFSET: usize = 64;
    pub const PAIR_ENTRIES: usize = 72;
    pub const PAIR_DIR_CRC: usize = 76;
    pub const MAGIC: usize = 80;
    pub const VERSION: usize = 88;
    pub const CRC: usize = 92;
}

impl PartFooter {
    fn encode(&self) -> [u8; PART_FOOTER_BYTES] {
        let mut b = [0u8; PART_FOOTER_BYTES];
        put_u64(&mut b, at::BLOOM_OFFSET, self.bloom_offset);
        put_u64(&mut b, at::META_OFFSET, self.meta_offset);
        put_u64(&mut b, at::META_LEN, self.meta_len);
        put_u64(&mut b, at::ENTRIES, self.entries);
        put_u64(&mut b, at::MIN_TS, self.min_ts as u64);
        put_u64(&mut b, at::MAX_TS, self.max_ts as u64);
        put_u32(&mut b, at::BLOCKS, self.blocks);
        put_u32(&mut b, at::STREAMS, self.streams);
        put_u32(&mut b, at::META_CRC, self.meta_crc32c);
        put_u32(&mut b, at::BLOOM_CRC, self.bloom_crc32c);
        if self.version >= 3 {
            put_u64(&mut b, at::PAIRS_OFFSET, self.pairs_offset);
            put_u32(&mut b, at::PAIR_ENTRIES, self.pair_entries);
            put_u32(&mut b, at::PAIR_DIR_CRC, self.pair_dir_crc32c);
        }
        b[at::MAGIC..at::MAGIC + 8].copy_from_slice(&PART_MAGIC);
        put_u32(&mut b, at::VERSION, self.version);
        let crc = crc32c::crc32c(&b[..at::CRC]);
        put_u32(&mut b, at::CRC, crc);
        b
    }

    /// Decodes the footer at the end of `tail`, which holds the last bytes of a file of
    /// `file_len` bytes (at least the footer). Checks the footer on its own: checksum, magic,
    /// version, and that its offsets and counts can describe a file of this length.
    pub fn decode(tail: &[u8], file_len: u64, path: &Path) -> Result<PartFooter, ChunkError> {
        let min_len = (PART_HEADER_BYTES + PART_FOOTER_BYTES) as u64;
        if file_len < min_len || !file_len.is_multiple_of(PART_ALIGN_BYTES as u64) {
            return Err(ChunkError::corrupt(
                path,
                file_len,
                format!(
                    "file length {file_len} is not a positive multiple of {PART_ALIGN_BYTES}: \
                     cut short or not a part file"
                ),
            ));
        }
        if tail.len() < PART_FOOTER_BYTES || tail.len() as u64 > file_len {
            return Err(ChunkError::InvalidInput(format!(
                "the footer needs the last {PART_FOOTER_BYTES} bytes of the file, given {}",
                tail.len()
            )));
        }
        let base = file_len - PART_FOOTER_BYTES as u64;
        let b = &tail[tail.len() - PART_FOOTER_BYTES..];
        let bad = |field: usize, what: String| ChunkError::corrupt(path, base + field as u64, what);
        let stored = le_u32(b, at::CRC);
        let computed = crc32c::crc32c(&b[..at::CRC]);
        if stored != computed {
            return Err(bad(
                at::CRC,
                format!(
                    "footer checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"
                ),
            ));
        }
        if b[at::MAGIC..at::MAGIC + 8] != PART_MAGIC {
            return Err(bad(at::MAGIC, "footer magic is not SHLGPART".into()));
        }
        let version = le_u32(b, at::VERSION);
        if !(PART_FORMAT_VERSION_MIN..=PART_FORMAT_VERSION).contains(&version) {
            return Err(bad(
                at::VERSION,
                format!(
                    "format version {version}, this build reads \
                     {PART_FORMAT_VERSION_MIN} to {PART_FORMAT_VERSION}"
                ),
            ));
        }
        let (pairs_offset, pair_entries, pair_dir_crc32c) = if version >= 3 {
            (
                le_u64(b, at::PAIRS_OFFSET),
                le_u32(b, at::PAIR_ENTRIES),
                le_u32(b, at::PAIR_DIR_CRC),
            )
        } else {
            if le_u32(b, at::FLAGS) != 0 || b[at::RESERVED..at::MAGIC].iter().any(|&x| x != 0) {
                return Err(bad(
                    at::FLAGS,
                    "unknown footer flags or reserved bytes set".into(),
                ));
            }
            (0, 0, 0)
        };
        let f = PartFooter {
            bloom_offset: le_u64(b, at::BLOOM_OFFSET),
            meta_offset: le_u64(b, at::META_OFFSET),
            meta_len: le_u64(b, at::META_LEN),
            entries: le_u64(b, at::ENTRIES),
            min_ts: le_u64(b, at::MIN_TS) as i64,
            max_ts: le_u64(b, at::MAX_TS) as i64,
            blocks: le_u32(b, at::BLOCKS),
            streams: le_u32(b, at::STREAMS),
            meta_crc32c: le_u32(b, at::META_CRC),
            bloom_crc32c: le_u32(b, at::BLOOM_CRC),
            pairs_offset,
            pair_entries,
            pair_dir_crc32c,
            version,
            file_len,
        };
        let meta_end = f.meta_offset.saturating_add(f.meta_len);
        if f.bloom_offset < PART_HEADER_BYTES as u64 + f.blocks as u64
            || f.bloom_offset > f.meta_offset
        {
            return Err(bad(
                at::BLOOM_OFFSET,
                format!("bloom offset {} out of place", f.bloom_offset),
            ));
        }
        if f.pair_entries == 0 {
            if f.pairs_offset != 0 || f.pair_dir_crc32c != 0 {
                return Err(bad(
                    at::PAIRS_OFFSET,
                    "an empty metadata index with an offset or checksum".into(),
                ));
            }
        } else if u64::from(f.pair_entries) > PART_PAIR_ENTRIES_MAX
            || f.pairs_offset < PART_HEADER_BYTES as u64 + f.blocks as u64
            || f.pair_dir_offset()
                + pages_of(u64::from(f.pair_entries)) * PAIR_DIR_RECORD_BYTES as u64
                != f.bloom_offset
        {
            return Err(bad(
                at::PAIRS_OFFSET,
                format!(
                    "metadata index of {} entries at {} does not end where the blooms start ({})",
                    f.pair_entries, f.pairs_offset, f.bloom_offset
                ),
            ));
        }
        if !f.meta_offset.is_multiple_of(META_ALIGN_BYTES as u64) {
            return Err(bad(
                at::META_OFFSET,
                format!("metadata offset {} is not 16-aligned", f.meta_offset),
            ));
        }
        if f.meta_len == 0 || f.meta_len > PART_META_BYTES_MAX as u64 || meta_end > base {
            return Err(bad(
                at::META_LEN,
                format!("metadata length {} out of range", f.meta_len),
            ));
        }
        if base - meta_end >= PART_ALIGN_BYTES as u64 {
            return Err(bad(
                at::META_LEN,
                format!(
                    "{} bytes between metadata and footer: more than padding",
                    base - meta_end
                ),
            ));
        }
        let counts_ok = f.streams >= 1
            && f.streams as usize <= PART_STREAMS_MAX
            && f.blocks >= f.streams
            && f.blocks as usize <= PART_BLOCKS_MAX
            && f.entries >= f.blocks as u64
            && f.entries <= f.blocks as u64 * BLOCK_ENTRIES_MAX as u64;
        if !counts_ok {
            return Err(bad(
                at::ENTRIES,
                format!(
                    "impossible counts: {} streams, {} blocks, {} entries",
                    f.streams, f.blocks, f.entries
                ),
            ));
        }
        if f.min_ts > f.max_ts {
            return Err(bad(
                at::MIN_TS,
                format!("min time {} after max time {}", f.min_ts, f.max_ts),
            ));
        }
        Ok(f)
    }

    /// Where the data blocks end: at the metadata index, or at the blooms when there is none.
    pub fn blocks_end(&self) -> u64 {
        if self.pair_entries > 0 {
            self.pairs_offset
        } else {
            self.bloom_offset
        }
    }

    /// File offset of the metadata index's directory.
    pub fn pair_dir_offset(&self) -> u64 {
        self.pairs_offset + u64::from(self.pair_entries) * PAIR_ENTRY_BYTES as u64
    }

    /// Where to start reading to have the metadata, the footer and the blooms.
    pub fn tail_offset_with_blooms(&self) -> u64 {
        self.bloom_offset / PART_ALIGN_BYTES as u64 * PART_ALIGN_BYTES as u64
    }

    /// Where to start reading to have the metadata and the footer only.
    pub fn tail_offset_meta_only(&self) -> u64 {
        self.meta_offset / PART_ALIGN_BYTES as u64 * PART_ALIGN_BYTES as u64
    }
}

pub(crate) fn encode_header() -> [u8; PART_HEADER_BYTES] {
    let mut h = [0u8; PART_HEADER_BYTES];
    h[..8].copy_from_slice(&PART_MAGIC);
    put_u32(&mut h, 8, PART_FORMAT_VERSION);
    let crc = crc32c::crc32c(&h[..60]);
    put_u32(&mut h, 60, crc);
    h
}

/// Checks the file header at the start of `b`, which must be of format `version` (the
/// footer's).
pub(crate) fn check_header(b: &[u8], version: u32, path: &Path) -> Result<(), ChunkError> {
    let h = &b[..PART_HEADER_BYTES];
    let stored = le_u32(h, 60);
    let computed = crc32c::crc32c(&h[..60]);
    if stored != computed {
        return Err(ChunkError::corrupt(
            path,
            60,
            format!("header checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"),
        ));
    }
    if h[..8] != PART_MAGIC {
        return Err(ChunkError::corrupt(
            path,
            0,
            "header magic is not SHLGPART: not a part file",
        ));
    }
    let stored = le_u32(h, 8);
    if stored != version {
        return Err(ChunkError::corrupt(
            path,
            8,
            format!("header format version {stored}, the footer says {version}"),
        ));
    }
    if h[12..60].iter().any(|&x| x != 0) {
        return Err(ChunkError::corrupt(
            path,
            12,
            "unknown header flags or reserved bytes set",
        ));
    }
    Ok(())
}

fn too_large(what: &'static str, value: usize, max: usize) -> ChunkError {
    ChunkError::TooLarge {
        what,
        value: value as u64,
        max: max as u64,
    }
}

/// Checks one stream's identity and shape before anything is written.
fn check_stream(s: &StreamBlockInput<'_>) -> Result<(), ChunkError> {
    validate_tenant(s.tenant).map_err(ChunkError::InvalidInput)?;
    if s.labels.len() > LABELS_PER_STREAM_MAX {
        return Err(too_large(
            "labels of a stream",
            s.labels.len(),
            LABELS_PER_STREAM_MAX,
        ));
    }
    for (k, v) in s.labels.pairs() {
        let longest = k.len().max(v.len());
        if longest > LABEL_STRING_BYTES_MAX {
            return Err(too_large(
                "bytes of a label name or value",
                longest,
                LABEL_STRING_BYTES_MAX,
            ));
        }
    }
    if s.stream_id != stream_hash(s.tenant, s.labels) {
        return Err(ChunkError::InvalidInput(format!(
            "stream id {:#018x} is not the hash of tenant {:?} and labels {}",
            s.stream_id, s.tenant, s.labels
        )));
    }
    for &(_, line, md) in s.entries {
        if md.len() > METADATA_PAIRS_MAX {
            return Err(too_large(
                "metadata pairs of an entry",
                md.len(),
                METADATA_PAIRS_MAX,
            ));
        }
        let bytes = entry_body_bytes(line, md);
        if bytes > ENTRY_BYTES_MAX {
            return Err(too_large(
                "encoded bytes of an entry",
                bytes,
                ENTRY_BYTES_MAX,
            ));
        }
    }
    assert!(
        s.entries.windows(2).all(|w| w[0].0 <= w[1].0),
        "the entries of a stream are sorted by timestamp"
    );
    Ok(())
}

/// The ranges of `entries` that become blocks: cut before an entry would take a block past
/// `target` bytes or [`BLOCK_ENTRIES_MAX`] entries; a block has at least one entry.
fn block_ranges(entries: &[EntryInput<'_>], target: usize) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0usize, 0usize);
    let mut prev_ts = 0i64;
    for (i, &(ts, line, md)) in entries.iter().enumerate() {
        let ts_bytes = if i == start {
            uvarint_len(zigzag(ts))
        } else {
            uvarint_len(ts.wrapping_sub(prev_ts) as u64)
        };
        let add = ts_bytes + entry_body_bytes(line, md);
        if i > start && (bytes + add > target || i - start == BLOCK_ENTRIES_MAX) {
            out.push(start..i);
            start = i;
            bytes = uvarint_len(zigzag(ts)) + entry_body_bytes(line, md);
        } else {
            bytes += add;
        }
        prev_ts = ts;
    }
    if start < entries.len() {
        out.push(start..entries.len());
    }
    out
}

fn pad_to(out: &mut Vec<u8>, align: usize) {
    out.resize(out.len().div_ceil(align) * align, 0);
}

/// Encodes a whole part file from the entries of `streams` (one tenant-shard-partition, as
/// the caller groups them). Streams may come in any order and are written sorted by id;
/// streams without entries are left out; the part must hold at least one entry. The result's
/// length is a multiple of [`PART_ALIGN_BYTES`], ready for a direct-I/O write.
///
/// # Panics
///
/// If a stream's entries are not sorted by timestamp: the caller seals sorted heads.
pub fn encode_part(
    streams: &[StreamBlockInput<'_>],
    opts: &PartWriterOptions,
) -> Result<Vec<u8>, ChunkError> {
    let mut order: Vec<&StreamBlockInput<'_>> =
        streams.iter().filter(|s| !s.entries.is_empty()).collect();
    order.sort_by_key(|s| s.stream_id);
    if let Some(w) = order.windows(2).find(|w| w[0].stream_id == w[1].stream_id) {
        return Err(ChunkError::InvalidInput(format!(
            "stream {:#018x} is given twice",
            w[0].stream_id
        )));
    }
    let mut encoder = PartEncoder::new(opts)?;
    for s in order {
        encoder.add(s, true)?;
    }
    let mut out = encoder.take_ready();
    out.extend_from_slice(&encoder.finish()?);
    Ok(out)
}

/// From this zstd level up, the level's match tables are larger than a block needs.
const ZSTD_TABLES_CAPPED_FROM_LEVEL: i32 = 7;
/// The hash and chain table sizes (log2 of entries) blocks are compressed with at most.
/// zstd sizes its tables for the level, not the data: level 9 on a 1 MiB block takes a
/// 12.5 MiB context (2^21 hash and 2^20 chain entries), for a window of one block. At 2^19
/// its context is 3.5 MiB, and the corpus (all 16 files, in 1 MiB blocks) came out within
/// 0.03% of the size at every level from 5 to 19; levels below 7 use 2^19 or less already.
const ZSTD_TABLE_LOG_MAX: u32 = 19;

/// A compressor for blocks at `level`, its tables capped (see [`ZSTD_TABLE_LOG_MAX`]).
fn block_compressor(level: i32) -> Result<zstd::bulk::Compressor<'static>, ChunkError> {
    let bad = |e: std::io::Error| ChunkError::InvalidInput(format!("zstd level {level}: {e}"));
    let mut compressor = zstd::bulk::Compressor::new(level).map_err(bad)?;
    if level >= ZSTD_TABLES_CAPPED_FROM_LEVEL {
        use zstd::zstd_safe::CParameter;
        compressor
            .set_parameter(CParameter::HashLog(ZSTD_TABLE_LOG_MAX))
            .map_err(bad)?;
        compressor
            .set_parameter(CParameter::ChainLog(ZSTD_TABLE_LOG_MAX))
            .map_err(bad)?;
    }
    Ok(compressor)
}

/// Writes a part a piece at a time, so that a part far larger than memory can be written:
/// compaction feeds it merged entries stream by stream (ascending ids), a chunk at a time,
/// and writes what [`PartEncoder::take_ready`] hands out as it goes. What it keeps until
/// [`PartEncoder::finish`] is the part's tail: block headers, blooms, the metadata index
/// entries and the streams' labels (about a tenth of the lines' bytes at the most; the caller
/// bounds it by the inputs' tails).
///
/// The bytes are exactly those of [`encode_part`] over the same streams.
pub struct PartEncoder {
    opts: PartWriterOptions,
    compressor: zstd::bulk::Compressor<'static>,
    body: Vec<u8>,
    compressed: Vec<u8>,
    blooms: Vec<u8>,
    bloom: BloomBuilder,
    pairs: PairIndexBuilder,
    meta: PartMeta,
    /// Bytes of the file not yet handed out; `taken` bytes before them were.
    out: Vec<u8>,
    taken: u64,
    /// The stream being written (its blocks from `first_block`), and its last timestamp.
    open: Option<OpenStream>,
    entries: u64,
}

struct OpenStream {
    id: u64,
    first_block: usize,
    last_ts: TimestampNs,
}

impl PartEncoder {
    pub fn new(opts: &PartWriterOptions) -> Result<PartEncoder, ChunkError> {
        opts.validate()?;
        let compressor = block_compressor(opts.zstd_level)?;
        let with_blooms = opts.bloom_bits_per_gram > 0.0;
        let mut out = Vec::with_capacity(1 << 20);
        out.extend_from_slice(&encode_header());
        Ok(PartEncoder {
            opts: *opts,
            compressor,
            body: Vec::new(),
            compressed: Vec::new(),
            blooms: Vec::new(),
            bloom: BloomBuilder::new(),
            pairs: PairIndexBuilder::new(),
            meta: PartMeta {
                streams: Vec::new(),
                blocks: Vec::new(),
                postings: Vec::new(),
                bloom_hashes: if with_blooms { opts.bloom_hashes } else { 0 },
            },
            out,
            taken: 0,
            open: None,
            entries: 0,
        })
    }

    /// Adds entries of stream `s`. A stream's entries may come in several calls, in time
    /// order; streams come in ascending id order. With `last`, the stream ends here and every
    /// entry is written; without it, the entries of a last, partial block are left for the
    /// next call (with more entries of the same stream), so that blocks keep their target
    /// size. Returns how many of `s.entries` were written (all of them with `last`).
    pub fn add(&mut self, s: &StreamBlockInput<'_>, last: bool) -> Result<usize, ChunkError> {
        check_stream(s)?;
        let continues = match &self.open {
            Some(open) if open.id == s.stream_id => {
                if s.entries.first().is_some_and(|e| e.0 < open.last_ts) {
                    return Err(ChunkError::InvalidInput(format!(
                        "stream {:#018x} goes back in time between two of its pieces",
                        s.stream_id
                    )));
                }
                true
            }
            Some(open) => {
                return Err(ChunkError::InvalidInput(format!(
                    "stream {:#018x} comes while stream {:#018x} is still open",
                    s.stream_id, open.id
                )));
            }
            None => false,
        };
        if !continues {
            if s.entries.is_empty() {
                return Ok(0);
            }
            if let Some(prev) = self.meta.streams.last()
                && prev.id >= s.stream_id
            {
                return Err(ChunkError::InvalidInput(if prev.id == s.stream_id {
                    format!("stream {:#018x} is given twice", s.stream_id)
                } else {
                    format!(
                        "stream {:#018x} comes after stream {:#018x}: ids must ascend",
                        s.stream_id, prev.id
                    )
                }));
            }
            if self.meta.streams.len() >= PART_STREAMS_MAX {
                return Err(too_large(
                    "streams of a part",
                    self.meta.streams.len() + 1,
                    PART_STREAMS_MAX,
                ));
            }
            self.meta.streams.push(StreamMeta {
                id: s.stream_id,
                tenant: s.tenant.to_string(),
                labels: s
                    .labels
                    .pairs()
                    .iter()
                    .map(|(name, value)| LabelPair {
                        name: name.clone(),
                        value: value.clone(),
                    })
                    .collect(),
                first_block: self.meta.blocks.len() as u32,
                blocks: 0,
            });
            self.open = Some(OpenStream {
                id: s.stream_id,
                first_block: self.meta.blocks.len(),
                last_ts: i64::MIN,
            });
        }
        let mut ranges = block_ranges(s.entries, self.opts.block_bytes_target);
        if !last {
            ranges.pop();
        }
        let written = ranges.last().map_or(0, |r| r.end);
        for range in ranges {
            self.write_block(&s.entries[range])?;
        }
        let open = self.open.as_mut().expect("opened above");
        if written > 0 {
            open.last_ts = s.entries[written - 1].0;
        }
        if last {
            let first_block = open.first_block;
            self.open = None;
            let stream = self.meta.streams.last_mut().expect("pushed when opened");
            stream.blocks = (self.meta.blocks.len() - first_block) as u32;
            if stream.blocks == 0 {
                // Opened by pieces that were all held back, and closed with none: the
                // stream has no entries after all.
                self.meta.streams.pop();
            }
        }
        Ok(written)
    }

    fn write_block(&mut self, entries: &[EntryInput<'_>]) -> Result<(), ChunkError> {
        if self.meta.blocks.len() >= PART_BLOCKS_MAX {
            return Err(too_large(
                "blocks of a part",
                self.meta.blocks.len() + 1,
                PART_BLOCKS_MAX,
            ));
        }
        let with_blooms = self.opts.bloom_bits_per_gram > 0.0;
        // Compaction steps aside here while its core answers ingest (a no-op elsewhere,
        // see `runtime::courtesy`): a block is a few milliseconds of work.
        pause_point();
        self.body.clear();
        let lines_bytes = encode_body(entries, self.opts.line_templates, &mut self.body);
        pause_point();
        assert!(
            self.body.len() <= BLOCK_UNCOMPRESSED_BYTES_MAX,
            "blocks are cut below the maximum"
        );
        self.compressed.clear();
        self.compressed
            .reserve(zstd::zstd_safe::compress_bound(self.body.len()));
        self.compressor
            .compress_to_buffer(&self.body, &mut self.compressed)
            .map_err(|e| ChunkError::InvalidInput(format!("zstd compression failed: {e}")))?;
        assert!(self.compressed.len() <= BLOCK_COMPRESSED_BYTES_MAX);
        let bloom_start = self.blooms.len();
        let bloom_len = if with_blooms {
            for some in entries.chunks(BLOOM_LINES_PER_PAUSE_POINT) {
                pause_point();
                for &(_, line, _) in some {
                    self.bloom.add_line(line.as_bytes());
                }
            }
            self.bloom.finish(
                self.opts.bloom_bits_per_gram,
                self.opts.bloom_hashes,
                &mut self.blooms,
            )
        } else {
            0
        };
        for &(_, line, metadata) in entries {
            for &(name, value) in metadata {
                self.pairs.add(pair_key(name, value));
            }
            if line_may_unescape(line.as_bytes()) {
                self.pairs.add(escape_key());
            }
        }
        self.pairs.end_block(self.meta.blocks.len() as u32);
        self.meta.blocks.push(BlockMeta {
            stream_idx: (self.meta.streams.len() - 1) as u32,
            min_ts: entries[0].0,
            max_ts: entries[entries.len() - 1].0,
            entries: entries.len() as u32,
            uncompressed_bytes: self.body.len() as u32,
            lines_bytes,
            offset: self.taken + self.out.len() as u64,
            compressed_len: self.compressed.len() as u32,
            crc32c: crc32c::crc32c(&self.compressed),
            // Relative for now: the bloom region's place is known once all blocks are out.
            bloom_offset: bloom_start as u64,
            bloom_len: bloom_len as u32,
        });
        self.out.extend_from_slice(&self.compressed);
        self.entries += entries.len() as u64;
        Ok(())
    }

    /// The bytes of the file written so far, from where the last call left off, in whole
    /// [`PART_ALIGN_BYTES`] pages (the rest stays for the next call or [`Self::finish`]), so
    /// that each piece can be written where it belongs with direct I/O.
    pub fn take_ready(&mut self) -> Vec<u8> {
        let ready = self.out.len() / PART_ALIGN_BYTES * PART_ALIGN_BYTES;
        let rest = self.out.split_off(ready);
        self.taken += ready as u64;
        std::mem::replace(&mut self.out, rest)
    }

    /// File bytes handed out by [`Self::take_ready`] so far.
    pub fn taken(&self) -> u64 {
        self.taken
    }

    /// Entries written so far.
    pub fn entries(&self) -> u64 {
        self.entries
    }

    /// Bytes held for the tail so far (blooms, index entries, block headers): what the
    /// encoder's memory grows with.
    pub fn held_bytes(&self) -> usize {
        self.blooms.capacity()
            + self.pairs.len() * PAIR_ENTRY_BYTES
            + self.meta.blocks.capacity() * std::mem::size_of::<BlockMeta>()
            + self.meta.streams.capacity() * std::mem::size_of::<StreamMeta>()
            + self.out.capacity()
    }

    /// Ends the part: the rest of the file after what [`Self::take_ready`] handed out, ending
    /// with the footer; the whole file's length is a multiple of [`PART_ALIGN_BYTES`]. An
    /// open stream is closed first. Errors if the part has no entry.
    pub fn finish(mut self) -> Result<Vec<u8>, ChunkError> {
        if let Some(open) = self.open.take() {
            let stream = self.meta.streams.last_mut().expect("pushed when opened");
            stream.blocks = (self.meta.blocks.len() - open.first_block) as u32;
            if stream.blocks == 0 {
                self.meta.streams.pop();
            }
        }
        if self.meta.blocks.is_empty() {
            return Err(ChunkError::InvalidInput(
                "a part needs at least one entry".into(),
            ));
        }
        let PartEncoder {
            mut out,
            taken,
            mut meta,
            pairs,
            blooms,
            ..
        } = self;
        meta.postings = postings(&meta.streams);
        // Offsets in the file are `taken` past offsets in `out`.
        let at = |out: &Vec<u8>| taken + out.len() as u64;

        // The metadata index follows the blocks directly (see [`super::pairs`]).
        let (pairs_offset, pair_entries, pair_dir_crc32c) = if pairs.is_empty() {
            (0, 0, 0)
        } else {
            let offset = at(&out);
            if pairs.len() as u64 > PART_PAIR_ENTRIES_MAX {
                return Err(too_large(
                    "metadata index entries of a part",
                    pairs.len(),
                    PART_PAIR_ENTRIES_MAX as usize,
                ));
            }
            let (n, crc) = pairs.finish(&mut out);
            (offset, n, crc)
        };
        let bloom_offset = at(&out);
        for b in &mut meta.blocks {
            b.bloom_offset += bloom_offset;
        }
        let bloom_start = out.len();
        out.extend_from_slice(&blooms);
        drop(blooms);
        // Padding to META_ALIGN_BYTES in the file: `taken` is a multiple of it.
        pad_to(&mut out, META_ALIGN_BYTES);
        let bloom_crc32c = crc32c::crc32c(&out[bloom_start..]);
        let meta_offset = at(&out);
        let archive = rkyv::to_bytes::<rkyv::rancor::Error>(&meta)
            .map_err(|e| ChunkError::InvalidInput(format!("metadata does not serialise: {e}")))?;
        if archive.len() > PART_META_BYTES_MAX {
            return Err(too_large(
                "metadata bytes of a part",
                archive.len(),
                PART_META_BYTES_MAX,
            ));
        }
        out.extend_from_slice(&archive);
        let padded = (out.len() + PART_FOOTER_BYTES).div_ceil(PART_ALIGN_BYTES) * PART_ALIGN_BYTES;
        out.resize(padded - PART_FOOTER_BYTES, 0);
        let footer = PartFooter {
            bloom_offset,
            meta_offset,
            meta_len: archive.len() as u64,
            entries: meta.blocks.iter().map(|b| u64::from(b.entries)).sum(),
            min_ts: meta.blocks.iter().map(|b| b.min_ts).min().expect("a block"),
            max_ts: meta.blocks.iter().map(|b| b.max_ts).max().expect("a block"),
            blocks: meta.blocks.len() as u32,
            streams: meta.streams.len() as u32,
            meta_crc32c: crc32c::crc32c(&archive),
            bloom_crc32c,
            pairs_offset,
            pair_entries,
            pair_dir_crc32c,
            version: PART_FORMAT_VERSION,
            file_len: taken + padded as u64,
        };
        out.extend_from_slice(&footer.encode());
        debug_assert_eq!((taken as usize + out.len()) % PART_ALIGN_BYTES, 0);
        Ok(out)
    }
}

/// Label name -> value -> ascending stream indexes, over streams in part order.
fn postings(streams: &[StreamMeta]) -> Vec<LabelPostings> {
    let mut map: BTreeMap<&str, BTreeMap<&str, Vec<u32>>> = BTreeMap::new();
    for (i, s) in streams.iter().enumerate() {
        for p in &s.labels {
            map.entry(p.name.as_str())
                .or_default()
                .entry(p.value.as_str())
                .or_default()
                .push(i as u32);
        }
    }
    map.into_iter()
        .map(|(name, values)| LabelPostings {
            name: name.to_string(),
            values: values
                .into_iter()
                .map(|(value, streams)| ValuePostings {
                    value: value.to_string(),
                    streams,
                })
                .collect(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_cut_at_the_target() {
        let line = "x".repeat(1000);
        let entries: Vec<EntryInput<'_>> = (0..100).map(|i| (i, line.as_str(), &[][..])).collect();
        let ranges = block_ranges(&entries, 10_000);
        // 9 entries of 1003 bytes (plus a timestamp byte) fit in 10 000 bytes, 10 do not.
        assert_eq!(ranges.len(), 12);
        assert!(ranges[..11].iter().all(|r| r.len() == 9));
        assert_eq!(ranges.last().unwrap().end, 100);
        // An entry bigger than the target gets a block of its own.
        let big = "y".repeat(50_000);
        let entries: Vec<EntryInput<'_>> = vec![(1, "a", &[]), (2, &big, &[]), (3, "b", &[])];
        assert_eq!(block_ranges(&entries, 10_000), vec![0..1, 1..2, 2..3]);
    }

    #[test]
    fn options_are_checked() {
        assert!(PartWriterOptions::default().validate().is_ok());
        let bad = [
            PartWriterOptions {
                zstd_level: 99,
                ..Default::default()
            },
            PartWriterOptions {
                block_bytes_target: 1,
                ..Default::default()
            },
            PartWriterOptions {
                bloom_bits_per_gram: f64::NAN,
                ..Default::default()
            },
            PartWriterOptions {
                bloom_bits_per_gram: 17.0,
                ..Default::default()
            },
            PartWriterOptions {
                bloom_hashes: 0,
                ..Default::default()
            },
        ];
        for o in bad {
            assert!(
                matches!(o.validate(), Err(ChunkError::InvalidInput(_))),
                "{o:?}"
            );
        }
    }

    #[test]
    fn footer_round_trip_and_checks() {
        let f = PartFooter {
            bloom_offset: 100,
            meta_offset: 112,
            meta_len: 200,
            entries: 10,
            min_ts: -1,
            max_ts: 5,
            blocks: 2,
            streams: 1,
            meta_crc32c: 7,
            bloom_crc32c: 8,
            pairs_offset: 0,
            pair_entries: 0,
            pair_dir_crc32c: 0,
            version: 2,
            file_len: 4096,
        };
        let b = f.encode();
        assert_eq!(PartFooter::decode(&b, 4096, Path::new("p")), Ok(f));
        let err = PartFooter::decode(&b, 4000, Path::new("p")).unwrap_err();
        assert!(err.is_corruption());
        let mut bad = b;
        bad[at::FLAGS] = 1;
        let crc = crc32c::crc32c(&bad[..at::CRC]);
        put_u32(&mut bad, at::CRC, crc);
        let err = PartFooter::decode(&bad, 4096, Path::new("/d/p")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "corrupt part file /d/p at offset 4064: unknown footer flags or reserved bytes set"
        );
        // Version 3: the same bytes hold the metadata index, which must end at the blooms.
        let v3 = PartFooter {
            pairs_offset: 68,
            pair_entries: 3,
            pair_dir_crc32c: 9,
            version: 3,
            ..f
        };
        assert_eq!(
            PartFooter::decode(&v3.encode(), 4096, Path::new("p")),
            Ok(v3)
        );
        assert_eq!(v3.blocks_end(), 68);
        let off = PartFooter {
            pairs_offset: 60,
            ..v3
        };
        let err = PartFooter::decode(&off.encode(), 4096, Path::new("p")).unwrap_err();
        assert!(
            err.to_string().contains("metadata index of 3 entries"),
            "{err}"
        );
        let empty_with_crc = PartFooter {
            pair_entries: 0,
            ..v3
        };
        assert!(PartFooter::decode(&empty_with_crc.encode(), 4096, Path::new("p")).is_err());
    }
}

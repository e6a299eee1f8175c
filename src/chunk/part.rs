//! The part writer's options, the file header and the footer, and [`encode_part`], which
//! writes a whole part with [`super::part_encoder::PartEncoder`]. The byte layout is in the
//! [`super`] module doc; [`super::reader`] reads what this writes.

use std::path::Path;

use super::block::EntryInput;
use super::bloom::BLOOM_HASHES_MAX;
use super::bloom::{BLOOM_BITS_PER_GRAM_DEFAULT, BLOOM_BITS_PER_GRAM_MAX, BLOOM_HASHES_DEFAULT};
use super::lines::LineTemplates;
use super::pairs::{PAIR_DIR_RECORD_BYTES, PAIR_ENTRY_BYTES, PART_PAIR_ENTRIES_MAX, pages_of};
use super::part_encoder::PartEncoder;
use super::*;
use crate::model::Labels;

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
    pub(super) fn encode(&self) -> [u8; PART_FOOTER_BYTES] {
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
#[cfg(test)]
mod tests {
    use super::*;

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

//! The sealed chunk format: immutable, compressed part files that head chunks are sealed into,
//! their zero-copy reader, the per-block bloom filters and the rules that turn line filters
//! into bloom probes.
//!
//! Which question it answers: "what bytes does a sealed part hold, and how are they read back
//! without trusting them?" Everything here is pure code over byte buffers: no I/O, no
//! executor. Sealing, checkpoints, compaction and retention write and read these buffers.
//!
//! - [`part`]: the writer's options, the header and footer; [`encode_part`] builds a whole
//!   file.
//! - [`part_encoder`]: [`PartEncoder`] writes a part a piece at a time (sealing, compaction).
//! - [`reader`]: [`PartReader`] checks a file and reads it in place.
//! - [`block`]: the body of one data block and [`DecodedBlock`], the reusable scan buffer.
//! - [`meta`]: the rkyv-archived metadata (streams, block headers, postings).
//! - [`bloom`]: the 4-gram bloom filter of a block.
//! - [`pairs`]: the structured-metadata index (which blocks carry a `name=value` pair).
//! - [`lines`]: the line column's layouts (lengths, newlines, templates).
//! - [`timestamps`]: the timestamp column's layouts (deltas, deltas divided by their GCD).
//! - `clock`: the fields of a timestamp that a templated line's clock slot rebuilds.
//! - [`tokens`]: which grams a line and a needle have; which needles a filter chain requires.
//! - [`varint`]: LEB128 and zigzag, with checked decoding.
//!
//! # Byte layout of a part file (format version 4, all integers little-endian)
//!
//! Version 2 differs from version 1 only inside block bodies (a line layout byte, see below);
//! version 3 adds the metadata index after the blocks and its place in the footer; version 4
//! differs from version 3 only inside block bodies (a timestamp layout byte, and clock slots
//! in templated lines). This build
//! reads all four, and compaction rewrites what it merges at version 4.
//!
//! ```text
//! offset            size   what
//! 0                 64     file header
//! 64                ...    data blocks, back to back, no padding between them
//! pairs_offset      ...    (version 3 on, when any entry has metadata or a line with escapes)
//!                          the metadata index: pair_entries entries of 8 bytes, then its
//!                          directory, 8 bytes per page of 512 entries; see [`pairs`]
//! bloom_offset      ...    bloom filters of the blocks, back to back, then zero padding to a
//!                          multiple of 16 (META_ALIGN_BYTES)
//! meta_offset       ...    metadata: an rkyv archive of `PartMeta` (16-aligned)
//! meta_offset+len   ...    zero padding so that the file length is a multiple of 4096
//! file_len-96       96     footer
//! ```
//!
//! File header (64 bytes):
//!
//! ```text
//!  0  8  magic b"SHLGPART"
//!  8  4  format version (1 to 4; equal to the footer's)
//! 12  4  flags (0; a reader refuses flags it does not know)
//! 16 44  reserved, zero
//! 60  4  crc32c of bytes 0..60
//! ```
//!
//! A data block is the zstd frame (one frame, content size recorded, no zstd checksum: the
//! crc32c below covers it) of this uncompressed body, for `n` entries of one stream:
//!
//! ```text
//! timestamps  versions 1 to 3: zigzag varint of the first timestamp, then n-1 unsigned
//!             varint deltas (entries are sorted by time, so deltas are never negative);
//!             version 4: one layout byte, then 0 deltas as in version 3, or 1 scaled:
//!             varint g, the first timestamp, and the deltas divided by g (see [`timestamps`])
//! layout      one byte (version 2 on): how the lines are laid out, see [`lines`]:
//!             0 lengths, 1 newlines, 2 templates. Version 1 bodies are always "lengths"
//! lines       lengths: n unsigned varints (the byte length of each line), then the line
//!             bytes concatenated (each line is UTF-8); newlines: each line then b'\n';
//!             templates: the shapes of the lines once, a template id per line, and the
//!             variables of each template slot side by side ([`lines`] has the layout)
//! metadata    n unsigned varints: the structured metadata pair count of each entry, then
//!             every pair in entry order as varint key length, key, varint value length,
//!             value (UTF-8)
//! ```
//!
//! Columns instead of rows: timestamps, lengths and lines each compress better next to their
//! own kind. Sealing writes lengths or newlines (cheap); compaction writes templates where a
//! block's lines repeat their shapes (see [`lines`] for the measured gain); from version 4, a
//! template's numbers that print the line's own time are rebuilt from its timestamp (clock
//! slots). The block's header lives in the metadata (`BlockMeta`: stream, min/max time,
//! entry count, uncompressed size, line bytes, offset, compressed length, crc32c of the
//! compressed bytes, bloom offset and length).
//!
//! A bloom filter is `m` bits (`m` a multiple of 64) as bytes, bit `i` in byte `i / 8` at
//! position `i % 8`; see [`bloom`]. A block without a filter has bloom length 0.
//!
//! Footer (96 bytes, ending at the end of the file):
//!
//! ```text
//!  0  8  bloom_offset: end of the data blocks, start of the blooms
//!  8  8  meta_offset (a multiple of 16)
//! 16  8  meta_len
//! 24  8  entries in the part
//! 32  8  min timestamp (ns)
//! 40  8  max timestamp (ns)
//! 48  4  blocks
//! 52  4  streams
//! 56  4  crc32c of the metadata archive
//! 60  4  crc32c of [bloom_offset, meta_offset) (blooms and their padding)
//! 64  4  versions 1, 2: flags (0)         version 3 on: 64 8 pairs_offset (0: no index)
//! 68 12  versions 1, 2: reserved, zero                72 4 pair_entries
//!                                                     76 4 crc32c of the index directory
//! 80  8  magic b"SHLGPART"
//! 88  4  format version (1 to 4)
//! 92  4  crc32c of footer bytes 0..92
//! ```
//!
//! # What the disk is assumed to do
//!
//! A part is written once, whole, then fdatasynced and only then named in the manifest; it is
//! never modified in place. The device may tear a write (a crash before the fdatasync leaves
//! any prefix, zeros or garbage: such a part is not in the manifest and is deleted), and a
//! sealed part may later rot: a bit flip, a sector of zeros or of another file's bytes. Every
//! byte of the file is covered by a checksum or must be zero, so rot is always detected: the
//! header, footer and metadata crcs and the zero padding are checked when the part is opened,
//! the bloom region crc too when it is given, the metadata index's directory crc when it is
//! first read and each of its pages' crcs when a lookup reads it (a whole-file open checks
//! them all), and each block's crc when it is decoded. The
//! disk is not assumed to detect errors itself, nor to keep sectors atomic.
//!
//! # Trust
//!
//! Opening checks the metadata crc first and then accesses the archive through rkyv's
//! bytecheck validation (`rkyv::access`). The crc alone would make unchecked access sound
//! against rot, but not against a bug in a writer or a file of another version that happens to
//! carry a right crc: unchecked access to a malformed archive is undefined behaviour, and
//! validation costs one pass over a metadata region that is small next to the blocks (and is
//! paid once per open, not per query). After validation, every field is checked against the
//! named limits below and against the others (offsets in range, blocks contiguous per stream,
//! postings consistent with the streams' labels), so that accessors can trust them. Block
//! bodies are checked field by field as they are decoded, with zstd output bounded by the
//! recorded size, and lines rebuilt from templates bounded by the block's recorded line
//! bytes (at most [`BLOCK_UNCOMPRESSED_BYTES_MAX`]).

pub mod block;
pub mod bloom;
pub(crate) mod clock;
pub mod lines;
pub mod meta;
pub mod pairs;
pub mod part;
pub mod part_encoder;
pub mod reader;
pub mod timestamps;
pub mod tokens;
pub mod varint;

#[cfg(test)]
mod bloom_tests;
#[cfg(test)]
mod tests;

use std::fmt;
use std::path::PathBuf;

pub use block::{DecodedBlock, Entry, EntryInput, Metadata, fuzz_parse_body};
pub use bloom::{BloomBuilder, BloomRef};
pub use lines::LineTemplates;
pub use meta::{ArchivedBlockMeta, ArchivedPartMeta, ArchivedStreamMeta};
pub use part::{PartFooter, PartWriterOptions, StreamBlockInput, encode_part, footer_block_offset};
pub use part_encoder::PartEncoder;
pub use reader::{BlockDecodeJob, PartReader};
pub use tokens::BloomQuery;

/// The format version written in the header and footer. Version 2 added the line layouts of
/// [`lines`] (a layout byte before the line column), version 3 the metadata index, version 4
/// the timestamp layouts of [`timestamps`] (a layout byte before the timestamp column) and
/// the clock slots of templated lines.
pub const PART_FORMAT_VERSION: u32 = 4;

/// The oldest format version this build reads (a reader refuses versions outside
/// `PART_FORMAT_VERSION_MIN..=PART_FORMAT_VERSION`). Compaction rewrites what it merges at
/// the current version.
pub const PART_FORMAT_VERSION_MIN: u32 = 1;

/// The magic at the start of the header and in the footer.
pub const PART_MAGIC: [u8; 8] = *b"SHLGPART";

/// Bytes of the file header.
pub const PART_HEADER_BYTES: usize = 64;

/// Bytes of the footer.
pub const PART_FOOTER_BYTES: usize = 96;

/// Part files are written and read with direct I/O, whose offsets and lengths are multiples
/// of the logical block size; 4096 covers every device in use.
pub const PART_ALIGN_BYTES: usize = 4096;

/// Alignment of the metadata archive in the file. rkyv's archived types need at most 8; the
/// file buffer from direct I/O is 4096-aligned, so a 16-aligned file offset is 16-aligned in
/// memory.
pub const META_ALIGN_BYTES: usize = 16;

/// Entries of one block. A block is sealed at about 1 MiB of lines; a million entries is an
/// average line of one byte, so only a block of empty lines gets near it.
pub const BLOCK_ENTRIES_MAX: usize = 1 << 20;

/// Uncompressed bytes of one block body. The writer seals a block once it passes its target
/// (at most [`BLOCK_BYTES_TARGET_LIMIT`]) and one entry is at most [`ENTRY_BYTES_MAX`], so a
/// body stays under their sum; this bounds the buffer a decoder allocates for a block.
pub const BLOCK_UNCOMPRESSED_BYTES_MAX: usize = BLOCK_BYTES_TARGET_LIMIT + ENTRY_BYTES_MAX;

/// The largest block target a writer accepts: past a few MiB a block only makes a scan that
/// wants a few lines decompress more.
pub const BLOCK_BYTES_TARGET_LIMIT: usize = 16 << 20;

/// Encoded bytes of one entry (line plus metadata plus varints). The ingest limit on a line is
/// `config::limits::LINE_BYTES_LIMIT` (16 MiB); twice that leaves room for metadata.
pub const ENTRY_BYTES_MAX: usize = 2 * crate::config::limits::LINE_BYTES_LIMIT;

/// Compressed bytes of one block: zstd's worst case for an incompressible body is a little
/// over its input.
pub const BLOCK_COMPRESSED_BYTES_MAX: usize = BLOCK_UNCOMPRESSED_BYTES_MAX + (1 << 20);

/// Structured metadata pairs of one entry: the batch format's own limit.
pub const METADATA_PAIRS_MAX: usize = crate::model::batch::BATCH_METADATA_PER_ENTRY_MAX;

/// Labels of one stream: the batch format's own limit.
pub const LABELS_PER_STREAM_MAX: usize = crate::model::batch::BATCH_LABELS_PER_STREAM_MAX;

/// Bytes of one label name or value. Loki refuses names over 1 KiB and values over 2 KiB by
/// default; 64 KiB is far over both and still bounds the metadata of a stream.
pub const LABEL_STRING_BYTES_MAX: usize = 64 << 10;

/// Streams of one part: a shard's day of a very busy tenant stays far below.
pub const PART_STREAMS_MAX: usize = 1 << 20;

/// Blocks of one part: 4 Mi blocks of ~1 MiB is 4 TiB of lines, beyond any partition.
pub const PART_BLOCKS_MAX: usize = 1 << 22;

/// Bytes of the metadata archive. rkyv's relative pointers are 32-bit, so 2 GiB is the hard
/// ceiling; a part with the maximum streams and blocks stays well under 512 MiB.
pub const PART_META_BYTES_MAX: usize = 512 << 20;

/// Bytes of one block's bloom filter: at 16 bits per gram (the most a writer accepts) and one
/// distinct gram per byte of the largest block.
pub const BLOOM_BYTES_MAX: usize = BLOCK_UNCOMPRESSED_BYTES_MAX * 2;

/// Errors of encoding and decoding parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChunkError {
    /// Bytes on disk are not what the writer wrote: a checksum mismatch or an impossible field.
    /// `offset` is the file offset of the field or region that is wrong.
    Corruption {
        path: PathBuf,
        offset: u64,
        what: String,
    },
    /// An input to the writer is over a limit.
    TooLarge {
        what: &'static str,
        value: u64,
        max: u64,
    },
    /// An input or option is not acceptable (say which and why).
    InvalidInput(String),
}

impl ChunkError {
    pub(crate) fn corrupt(path: &std::path::Path, offset: u64, what: impl Into<String>) -> Self {
        ChunkError::Corruption {
            path: path.to_path_buf(),
            offset,
            what: what.into(),
        }
    }

    /// Whether this is [`ChunkError::Corruption`].
    pub fn is_corruption(&self) -> bool {
        matches!(self, ChunkError::Corruption { .. })
    }
}

impl fmt::Display for ChunkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChunkError::Corruption { path, offset, what } => write!(
                f,
                "corrupt part file {} at offset {offset}: {what}",
                path.display()
            ),
            ChunkError::TooLarge { what, value, max } => {
                write!(f, "{what} is {value}, over the maximum {max}")
            }
            ChunkError::InvalidInput(why) => write!(f, "invalid part input: {why}"),
        }
    }
}

impl std::error::Error for ChunkError {}

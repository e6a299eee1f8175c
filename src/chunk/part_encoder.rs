//! The streaming part writer ([`PartEncoder`]): blocks cut, compressed and written as
//! entries come, blooms and metadata gathered for the tail. [`super::part::encode_part`]
//! writes a whole part with it; sealing and compaction feed it a piece at a time. The byte
//! layout is in the [`super`] module doc.

use std::collections::BTreeMap;

use super::block::{EntryInput, encode_body, entry_body_bytes};
use super::bloom::BloomBuilder;
use super::meta::{BlockMeta, LabelPair, LabelPostings, PartMeta, StreamMeta, ValuePostings};
use super::pairs::{
    PAIR_ENTRY_BYTES, PART_PAIR_ENTRIES_MAX, PairIndexBuilder, escape_key, line_may_unescape,
    pair_key,
};
use super::part::{PartFooter, PartWriterOptions, StreamBlockInput, encode_header};
use super::varint::{uvarint_len, zigzag};
use super::*;
use crate::model::{TimestampNs, stream_hash, validate_tenant};
use crate::runtime::courtesy::pause_point;

/// Lines added to a block's bloom filter between two pause points: a few hundred
/// microseconds of work.
const BLOOM_LINES_PER_PAUSE_POINT: usize = 1024;

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
}

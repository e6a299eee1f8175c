//! [`PartReader`]: opens a part file held in an aligned buffer, checks everything the
//! [`super`] module doc promises, and then reads the metadata in place and decodes blocks on
//! demand.
//!
//! Two ways in: [`PartReader::open`] with the whole file, or [`PartReader::open_tail`] with
//! only its end (metadata and footer, and the blooms when the tail starts early enough), which
//! is what a shard reads at startup to load its index without reading any block. A tail
//! reader decodes blocks whose bytes the caller reads itself
//! ([`PartReader::decode_block_bytes`]).

use std::path::{Path, PathBuf};

use super::block::{BlockExpect, DecodedBlock, ENTRY_BYTES_MIN};
use super::bloom::{BLOOM_HASHES_MAX, BloomRef};
use super::meta::{ArchivedBlockMeta, ArchivedPartMeta, ArchivedStreamMeta};
use super::pairs::{PairDirectory, pages_of};
use super::part::{PartFooter, check_header};
use super::tokens::BloomQuery;
use super::*;
use crate::model::{Labels, stream_hash, validate_tenant};

/// A part file opened in place. Borrows the buffer it was opened from; cheap to keep per part.
pub struct PartReader<'a> {
    path: PathBuf,
    /// The whole file, for readers made by [`PartReader::open`].
    file: Option<&'a [u8]>,
    /// The bloom region `[bloom_offset, meta_offset)`, when the buffer holds it.
    blooms: Option<&'a [u8]>,
    footer: PartFooter,
    meta: &'a ArchivedPartMeta,
    /// Address of the first metadata byte, to turn a field's address into a file offset.
    meta_addr: usize,
}

impl<'a> PartReader<'a> {
    /// Opens a whole part file. `bytes` must be the entire file, in a buffer whose start is
    /// 16-byte aligned (the metadata is read in place); `path` only names the file in errors.
    pub fn open(bytes: &'a [u8], path: &Path) -> Result<PartReader<'a>, ChunkError> {
        let footer = PartFooter::decode(bytes, bytes.len() as u64, path)?;
        check_header(bytes, footer.version, path)?;
        Self::open_at(bytes, 0, footer, path, true)
    }

    /// Opens a part from its tail: `tail` holds the file from `tail_offset` to its end, and
    /// `tail_offset` is at or before [`PartFooter::tail_offset_meta_only`] (blooms are
    /// available if it is at or before [`PartFooter::tail_offset_with_blooms`]). Read the
    /// last [`PART_ALIGN_BYTES`] first, at [`super::footer_block_offset`], to learn those
    /// offsets from [`PartFooter::decode`]. The tail must sit at a 16-aligned address where
    /// `tail_offset` is a multiple of 16 (a direct-I/O buffer is 4096-aligned).
    pub fn open_tail(
        tail: &'a [u8],
        tail_offset: u64,
        path: &Path,
    ) -> Result<PartReader<'a>, ChunkError> {
        let file_len = tail_offset + tail.len() as u64;
        let footer = PartFooter::decode(tail, file_len, path)?;
        if tail_offset > footer.meta_offset {
            return Err(ChunkError::InvalidInput(format!(
                "the tail of {} starts at {tail_offset}, after its metadata at {}",
                path.display(),
                footer.meta_offset
            )));
        }
        Self::open_at(tail, tail_offset, footer, path, false)
    }

    /// Re-opens a tail that [`Self::open_tail`] already accepted, without checking it again:
    /// the metadata is accessed without validation and the blooms' crc is not recomputed.
    /// The store does this for every query on a part it keeps in memory, so the checks are
    /// paid once per part, at load.
    ///
    /// # Safety
    ///
    /// `tail`, `tail_offset` and `path` must be exactly those of an earlier successful
    /// [`Self::open_tail`] call, and the bytes must not have changed since (the store keeps
    /// them in an immutable buffer). Otherwise the unchecked archive access is undefined
    /// behaviour.
    pub unsafe fn reopen_verified_tail(
        tail: &'a [u8],
        tail_offset: u64,
        footer: PartFooter,
        path: &Path,
    ) -> PartReader<'a> {
        let rel = |off: u64| (off - tail_offset) as usize;
        let meta_start = rel(footer.meta_offset);
        let meta_bytes = &tail[meta_start..meta_start + footer.meta_len as usize];
        // SAFETY: the caller promises these bytes passed `rkyv::access` in `open_tail`.
        let meta = unsafe { rkyv::access_unchecked::<ArchivedPartMeta>(meta_bytes) };
        let blooms = (tail_offset <= footer.bloom_offset)
            .then(|| &tail[rel(footer.bloom_offset)..meta_start]);
        PartReader {
            path: path.to_path_buf(),
            file: None,
            blooms,
            footer,
            meta,
            meta_addr: meta_bytes.as_ptr() as usize,
        }
    }

    fn open_at(
        buf: &'a [u8],
        base: u64,
        footer: PartFooter,
        path: &Path,
        whole: bool,
    ) -> Result<PartReader<'a>, ChunkError> {
        // The footer checked meta_offset + meta_len <= file_len - footer, and the caller
        // checked base <= meta_offset, so these slices are in range.
        let rel = |off: u64| (off - base) as usize;
        let meta_start = rel(footer.meta_offset);
        let meta_end = meta_start + footer.meta_len as usize;
        let meta_bytes = &buf[meta_start..meta_end];
        let computed = crc32c::crc32c(meta_bytes);
        if computed != footer.meta_crc32c {
            return Err(ChunkError::corrupt(
                path,
                footer.meta_offset,
                format!(
                    "metadata checksum mismatch (stored {:#010x}, computed {computed:#010x})",
                    footer.meta_crc32c
                ),
            ));
        }
        let padding = &buf[meta_end..buf.len() - PART_FOOTER_BYTES];
        if let Some(i) = padding.iter().position(|&b| b != 0) {
            return Err(ChunkError::corrupt(
                path,
                footer.meta_offset + footer.meta_len + i as u64,
                "non-zero byte in the padding before the footer",
            ));
        }
        if !(meta_bytes.as_ptr() as usize).is_multiple_of(META_ALIGN_BYTES) {
            return Err(ChunkError::InvalidInput(format!(
                "the buffer holding {} is not {META_ALIGN_BYTES}-byte aligned at its metadata: \
                 read part files into aligned buffers",
                path.display()
            )));
        }
        let meta =
            rkyv::access::<ArchivedPartMeta, rkyv::rancor::Error>(meta_bytes).map_err(|e| {
                ChunkError::corrupt(
                    path,
                    footer.meta_offset,
                    format!("metadata is malformed: {e}"),
                )
            })?;
        let blooms = if base <= footer.bloom_offset {
            let region = &buf[rel(footer.bloom_offset)..meta_start];
            let computed = crc32c::crc32c(region);
            if computed != footer.bloom_crc32c {
                return Err(ChunkError::corrupt(
                    path,
                    footer.bloom_offset,
                    format!(
                        "bloom region checksum mismatch (stored {:#010x}, computed {computed:#010x})",
                        footer.bloom_crc32c
                    ),
                ));
            }
            Some(region)
        } else {
            None
        };
        let reader = PartReader {
            path: path.to_path_buf(),
            file: whole.then_some(buf),
            blooms,
            footer,
            meta,
            meta_addr: meta_bytes.as_ptr() as usize,
        };
        reader.check_streams()?;
        reader.check_blocks()?;
        reader.check_postings()?;
        if whole {
            reader.check_pairs()?;
        }
        Ok(reader)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn footer(&self) -> &PartFooter {
        &self.footer
    }

    /// The metadata, read in place.
    pub fn meta(&self) -> &'a ArchivedPartMeta {
        self.meta
    }

    pub fn streams(&self) -> &'a [ArchivedStreamMeta] {
        self.meta.streams.as_slice()
    }

    pub fn blocks(&self) -> &'a [ArchivedBlockMeta] {
        self.meta.blocks.as_slice()
    }

    /// This reader with the bloom region `[bloom_offset, meta_offset)` given apart from its
    /// tail, already checked against the footer's crc by the caller.
    pub fn with_blooms(mut self, region: &'a [u8]) -> PartReader<'a> {
        debug_assert_eq!(
            region.len() as u64,
            self.footer.meta_offset - self.footer.bloom_offset
        );
        self.blooms = Some(region);
        self
    }

    /// Whether bloom filters were loaded (whole file, or a tail that holds them).
    /// The metadata index's directory, parsed and checked, from `bytes` (the
    /// `[pair_dir_offset, bloom_offset)` range of the file); `None` when the part has no
    /// index.
    pub fn pair_directory(&self, bytes: &[u8]) -> Result<Option<PairDirectory>, ChunkError> {
        let f = &self.footer;
        if f.pair_entries == 0 {
            return Ok(None);
        }
        PairDirectory::parse(
            bytes,
            f.pairs_offset,
            u64::from(f.pair_entries),
            f.pair_dir_crc32c,
        )
        .map(Some)
        .map_err(|(at, what)| ChunkError::corrupt(&self.path, at, what))
    }

    /// The blocks that may hold an entry with metadata index `key`, ascending, or `None` when
    /// the part has no index (every block may). Needs the whole file ([`Self::open`]).
    pub fn pair_blocks(&self, key: u32) -> Result<Option<Vec<u32>>, ChunkError> {
        let Some(file) = self.file else {
            return Err(ChunkError::InvalidInput(format!(
                "{} was opened from its tail: read its index pages apart",
                self.path.display()
            )));
        };
        let f = &self.footer;
        let Some(dir) =
            self.pair_directory(&file[f.pair_dir_offset() as usize..f.bloom_offset as usize])?
        else {
            return Ok(None);
        };
        let entries = &file[f.pairs_offset as usize..f.pair_dir_offset() as usize];
        let out = dir
            .lookup(key, entries, f.blocks)
            .map_err(|(at, what)| ChunkError::corrupt(&self.path, at, what))?;
        Ok(Some(out))
    }

    /// Checks every page of the metadata index of a whole file.
    fn check_pairs(&self) -> Result<(), ChunkError> {
        let (Some(file), f) = (self.file, &self.footer) else {
            return Ok(());
        };
        let Some(dir) =
            self.pair_directory(&file[f.pair_dir_offset() as usize..f.bloom_offset as usize])?
        else {
            return Ok(());
        };
        let all = 0..pages_of(u64::from(f.pair_entries)) as usize;
        let range = dir.byte_range(&all);
        dir.blocks_with(
            u32::MAX,
            &all,
            &file[range.start as usize..range.end as usize],
            f.blocks,
            &mut Vec::new(),
        )
        .map_err(|(at, what)| ChunkError::corrupt(&self.path, at, what))
    }

    pub fn has_blooms(&self) -> bool {
        self.blooms.is_some()
    }

    /// The bloom filter of block `i`; `None` if it has none or the blooms were not loaded.
    pub fn bloom(&self, i: usize) -> Option<BloomRef<'a>> {
        let b = self.meta.blocks.get(i)?;
        let len = b.bloom_len.to_native() as usize;
        if len == 0 {
            return None;
        }
        let start = (b.bloom_offset.to_native() - self.footer.bloom_offset) as usize;
        BloomRef::new(&self.blooms?[start..start + len], self.meta.bloom_hashes)
    }

    /// Whether block `i` may hold a line that the query's needles allow; `false` is certain.
    pub fn may_match(&self, i: usize, query: &BloomQuery) -> bool {
        query.may_match(self.bloom(i).as_ref())
    }

    /// The file range of block `i`'s compressed bytes, for a tail reader's caller to read.
    pub fn block_range(&self, i: usize) -> Option<std::ops::Range<u64>> {
        let b = self.meta.blocks.get(i)?;
        let start = b.offset.to_native();
        Some(start..start + u64::from(b.compressed_len.to_native()))
    }

    /// Decodes block `i` into a new buffer. For scans, prefer [`Self::decode_block_into`].
    pub fn block(&self, i: usize) -> Result<DecodedBlock, ChunkError> {
        let mut out = DecodedBlock::new();
        self.decode_block_into(i, &mut out)?;
        Ok(out)
    }

    /// Decodes block `i` into `out`, reusing its buffers. Needs a reader made by
    /// [`Self::open`]; a tail reader uses [`Self::decode_block_bytes`].
    pub fn decode_block_into(&self, i: usize, out: &mut DecodedBlock) -> Result<(), ChunkError> {
        let Some(file) = self.file else {
            return Err(ChunkError::InvalidInput(format!(
                "{} was opened from its tail: read block {i} and use decode_block_bytes",
                self.path.display()
            )));
        };
        let range = self.block_range(i).ok_or_else(|| self.no_block(i))?;
        let compressed = &file[range.start as usize..range.end as usize];
        out.decode(compressed, &self.expect(i), &self.path)
    }

    /// Decodes block `i` from its compressed bytes, read by the caller at
    /// [`Self::block_range`].
    pub fn decode_block_bytes(
        &self,
        i: usize,
        compressed: &[u8],
        out: &mut DecodedBlock,
    ) -> Result<(), ChunkError> {
        let range = self.block_range(i).ok_or_else(|| self.no_block(i))?;
        check_given_len(i, range.end - range.start, compressed, &self.path)?;
        out.decode(compressed, &self.expect(i), &self.path)
    }

    /// What decoding block `i` takes besides its bytes, owned: the decode can then run on
    /// another thread than the one holding this reader (compaction decodes its inputs on
    /// its encoder thread, off the core).
    pub fn block_decode_job(&self, i: usize) -> Result<BlockDecodeJob, ChunkError> {
        let range = self.block_range(i).ok_or_else(|| self.no_block(i))?;
        Ok(BlockDecodeJob {
            block: i,
            len: range.end - range.start,
            expect: self.expect(i),
            path: self.path.to_path_buf(),
        })
    }

    fn no_block(&self, i: usize) -> ChunkError {
        ChunkError::InvalidInput(format!(
            "{} has {} blocks, no block {i}",
            self.path.display(),
            self.meta.blocks.len()
        ))
    }

    fn expect(&self, i: usize) -> BlockExpect {
        let b = &self.meta.blocks[i];
        BlockExpect {
            version: self.footer.version,
            offset: b.offset.to_native(),
            crc32c: b.crc32c.to_native(),
            entries: b.entries.to_native() as usize,
            uncompressed_bytes: b.uncompressed_bytes.to_native() as usize,
            lines_bytes: b.lines_bytes.to_native(),
            min_ts: b.min_ts.to_native(),
            max_ts: b.max_ts.to_native(),
        }
    }

    /// The file offset of an archived field, for error messages.
    fn offset_of<T>(&self, field: &T) -> u64 {
        let addr = field as *const T as usize;
        self.footer.meta_offset + addr.wrapping_sub(self.meta_addr) as u64
    }

    fn corrupt<T>(&self, field: &T, what: String) -> ChunkError {
        ChunkError::corrupt(&self.path, self.offset_of(field), what)
    }

    fn check_streams(&self) -> Result<(), ChunkError> {
        let streams = self.streams();
        if streams.len() != self.footer.streams as usize {
            return Err(self.corrupt(
                &self.meta.streams,
                format!(
                    "{} streams, the footer says {}",
                    streams.len(),
                    self.footer.streams
                ),
            ));
        }
        let mut next_block = 0u64;
        for (i, s) in streams.iter().enumerate() {
            let id = s.id.to_native();
            if i > 0 && streams[i - 1].id.to_native() >= id {
                return Err(self.corrupt(&s.id, "stream ids are not strictly ascending".into()));
            }
            validate_tenant(s.tenant.as_str())
                .map_err(|e| self.corrupt(&s.tenant, format!("stream {i}: {e}")))?;
            let labels = s.labels.as_slice();
            if labels.len() > LABELS_PER_STREAM_MAX {
                return Err(self.corrupt(
                    &s.labels,
                    format!(
                        "{} labels, over the maximum {LABELS_PER_STREAM_MAX}",
                        labels.len()
                    ),
                ));
            }
            for (j, p) in labels.iter().enumerate() {
                let (name, value) = (p.name.as_str(), p.value.as_str());
                let sorted = j == 0 || labels[j - 1].name.as_str() < name;
                let sizes = !name.is_empty()
                    && !value.is_empty()
                    && name.len() <= LABEL_STRING_BYTES_MAX
                    && value.len() <= LABEL_STRING_BYTES_MAX;
                if !sorted || !sizes {
                    return Err(self.corrupt(
                        p,
                        format!("stream {i}: label {j} is unsorted, empty or over {LABEL_STRING_BYTES_MAX} bytes"),
                    ));
                }
            }
            let owned =
                Labels::from_pairs(labels.iter().map(|p| (p.name.as_str(), p.value.as_str())));
            if stream_hash(s.tenant.as_str(), &owned) != id {
                return Err(self.corrupt(
                    &s.id,
                    format!("stream id {id:#018x} is not the hash of its tenant and labels"),
                ));
            }
            let (first, count) = (s.first_block.to_native(), s.blocks.to_native());
            if u64::from(first) != next_block || count == 0 {
                return Err(self.corrupt(
                    &s.first_block,
                    format!(
                        "stream {i}: blocks {first}+{count}, expected to start at {next_block}"
                    ),
                ));
            }
            next_block += u64::from(count);
        }
        if next_block != self.meta.blocks.len() as u64
            || next_block != u64::from(self.footer.blocks)
        {
            return Err(self.corrupt(
                &self.meta.blocks,
                format!(
                    "streams own {next_block} blocks; the metadata has {}, the footer says {}",
                    self.meta.blocks.len(),
                    self.footer.blocks
                ),
            ));
        }
        Ok(())
    }

    fn check_blocks(&self) -> Result<(), ChunkError> {
        let k = self.meta.bloom_hashes;
        if k > BLOOM_HASHES_MAX {
            return Err(self.corrupt(
                &self.meta.bloom_hashes,
                format!("{k} bloom hashes, over {BLOOM_HASHES_MAX}"),
            ));
        }
        let f = &self.footer;
        let mut next_offset = PART_HEADER_BYTES as u64;
        let mut next_bloom = f.bloom_offset;
        let (mut entries, mut min_ts, mut max_ts) = (0u64, i64::MAX, i64::MIN);
        for (si, s) in self.streams().iter().enumerate() {
            let mut prev_max = i64::MIN;
            for bi in s.block_range() {
                let b = &self.meta.blocks[bi];
                self.check_block(b, si, prev_max, next_offset, next_bloom, k)?;
                prev_max = b.max_ts.to_native();
                next_offset += u64::from(b.compressed_len.to_native());
                next_bloom += u64::from(b.bloom_len.to_native());
                entries += u64::from(b.entries.to_native());
                min_ts = min_ts.min(b.min_ts.to_native());
                max_ts = max_ts.max(b.max_ts.to_native());
            }
        }
        if next_offset != f.blocks_end() {
            return Err(self.corrupt(
                &self.meta.blocks,
                format!(
                    "blocks end at {next_offset}, the {} starts at {}",
                    if f.pair_entries > 0 {
                        "metadata index"
                    } else {
                        "bloom region"
                    },
                    f.blocks_end()
                ),
            ));
        }
        if next_bloom.div_ceil(META_ALIGN_BYTES as u64) * META_ALIGN_BYTES as u64 != f.meta_offset {
            return Err(self.corrupt(
                &self.meta.blocks,
                format!(
                    "blooms end at {next_bloom}, the metadata starts at {}",
                    f.meta_offset
                ),
            ));
        }
        if (entries, min_ts, max_ts) != (f.entries, f.min_ts, f.max_ts) {
            return Err(self.corrupt(
                &self.meta.blocks,
                format!(
                    "blocks hold {entries} entries from {min_ts} to {max_ts}; the footer says {} from {} to {}",
                    f.entries, f.min_ts, f.max_ts
                ),
            ));
        }
        Ok(())
    }

    fn check_block(
        &self,
        b: &ArchivedBlockMeta,
        stream_idx: usize,
        prev_max: i64,
        offset: u64,
        bloom_offset: u64,
        k: u8,
    ) -> Result<(), ChunkError> {
        let n = b.entries.to_native() as usize;
        let bytes = b.uncompressed_bytes.to_native() as usize;
        let (min, max) = (b.min_ts.to_native(), b.max_ts.to_native());
        let clen = b.compressed_len.to_native() as usize;
        let blen = b.bloom_len.to_native() as usize;
        let why = if b.stream_idx.to_native() as usize != stream_idx {
            format!(
                "block of stream {} in stream {stream_idx}'s range",
                b.stream_idx.to_native()
            )
        } else if n == 0 || n > BLOCK_ENTRIES_MAX {
            format!("{n} entries, outside 1..={BLOCK_ENTRIES_MAX}")
        } else if bytes > BLOCK_UNCOMPRESSED_BYTES_MAX || bytes < n * ENTRY_BYTES_MIN {
            format!(
                "{bytes} uncompressed bytes for {n} entries (maximum {BLOCK_UNCOMPRESSED_BYTES_MAX})"
            )
        } else if self.footer.version == 1 && b.lines_bytes.to_native() > bytes as u64 {
            format!(
                "{} line bytes in a body of {bytes}",
                b.lines_bytes.to_native()
            )
        } else if b.lines_bytes.to_native() > BLOCK_UNCOMPRESSED_BYTES_MAX as u64 {
            // Templates rebuild more line bytes than the body holds, but a writer cuts blocks
            // by their line bytes, so no more than a body's maximum.
            format!(
                "{} line bytes, over the maximum {BLOCK_UNCOMPRESSED_BYTES_MAX}",
                b.lines_bytes.to_native()
            )
        } else if min > max || min < prev_max {
            format!("time range {min}..={max} out of order (previous block ends at {prev_max})")
        } else if b.offset.to_native() != offset || clen == 0 || clen > BLOCK_COMPRESSED_BYTES_MAX {
            format!(
                "block at {} of {clen} bytes, expected at {offset}",
                b.offset.to_native()
            )
        } else if b.bloom_offset.to_native() != bloom_offset {
            format!(
                "bloom at {}, expected at {bloom_offset}",
                b.bloom_offset.to_native()
            )
        } else if blen != 0 && (!blen.is_multiple_of(8) || blen > BLOOM_BYTES_MAX || k == 0) {
            format!("bloom of {blen} bytes with {k} hashes")
        } else {
            return Ok(());
        };
        Err(self.corrupt(b, why))
    }

    fn check_postings(&self) -> Result<(), ChunkError> {
        let streams = self.streams();
        let labels_total: usize = streams.iter().map(|s| s.labels.len()).sum();
        let mut seen = 0usize;
        let postings = self.meta.postings.as_slice();
        for (pi, p) in postings.iter().enumerate() {
            let name = p.name.as_str();
            if pi > 0 && postings[pi - 1].name.as_str() >= name || p.values.is_empty() {
                return Err(self.corrupt(p, format!("postings of {name:?} unsorted or empty")));
            }
            for (vi, v) in p.values.iter().enumerate() {
                let value = v.value.as_str();
                if vi > 0 && p.values[vi - 1].value.as_str() >= value || v.streams.is_empty() {
                    return Err(
                        self.corrupt(v, format!("postings of {name}={value:?} unsorted or empty"))
                    );
                }
                let ids = v.streams.as_slice();
                for (j, idx) in ids.iter().enumerate() {
                    let idx = idx.to_native() as usize;
                    let ascending = j == 0 || ids[j - 1].to_native() < idx as u32;
                    let matches = streams.get(idx).and_then(|s| s.label(name)) == Some(value);
                    if !ascending || !matches {
                        return Err(self.corrupt(
                            &ids[j],
                            format!("postings of {name}={value:?} list stream {idx}, which does not have it"),
                        ));
                    }
                }
                seen += ids.len();
            }
        }
        if seen != labels_total {
            return Err(self.corrupt(
                &self.meta.postings,
                format!("postings list {seen} stream labels, the streams have {labels_total}"),
            ));
        }
        Ok(())
    }
}

/// A block's decode, detached from its [`PartReader`] (see [`PartReader::block_decode_job`]).
pub struct BlockDecodeJob {
    block: usize,
    len: u64,
    expect: BlockExpect,
    path: PathBuf,
}

impl BlockDecodeJob {
    /// Decodes the block from its compressed bytes into `out`, checked as
    /// [`PartReader::decode_block_bytes`] checks them.
    pub fn decode(&self, compressed: &[u8], out: &mut DecodedBlock) -> Result<(), ChunkError> {
        check_given_len(self.block, self.len, compressed, &self.path)?;
        out.decode(compressed, &self.expect, &self.path)
    }
}

/// Block `i`'s bytes as given must be as long as the part says it is.
fn check_given_len(i: usize, len: u64, compressed: &[u8], path: &Path) -> Result<(), ChunkError> {
    if compressed.len() as u64 != len {
        return Err(ChunkError::InvalidInput(format!(
            "block {i} of {} is {len} bytes, given {}",
            path.display(),
            compressed.len()
        )));
    }
    Ok(())
}

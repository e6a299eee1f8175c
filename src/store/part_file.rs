//! One part file of a store, open for reads: its footer and a few facts kept with it, the
//! open file, and its tail (metadata, footer), read on demand.
//!
//! What stays resident per part is small and does not grow with its lines: the footer, the
//! label names its streams carry, and (once a lookup needs it) its metadata index's
//! directory. The tail (stream list, block headers, postings: a few bytes per line) is
//! validated whole when the part is opened (crcs, rkyv validation, field limits:
//! [`PartReader::open_tail`]), then read again when a reader needs it
//! ([`LoadedPart::tail`]): bytes with the crc32c of those validated are used as they are,
//! any others are validated whole again (so rot is found with the file and offset); and it
//! is kept in the
//! shard's bounded [`PartCache`] rather than with the part, as the bloom region is. While a
//! reader (a query, a merge) holds a tail, every other reader of the part shares that copy.
//! Blocks are checked (crc, fields) every time they are decoded. An open part keeps its
//! file descriptor, so retention can unlink the file while a query still reads it.

use std::cell::{OnceCell, RefCell};
use std::path::{Path, PathBuf};
use std::rc::{Rc, Weak};

use super::StoreError;
use super::label_summary::LabelSummary;
use super::manifest::PartEntry;
use super::part_cache::{BloomRegion, PartCache};
use crate::chunk::pairs::PairDirectory;
use crate::chunk::{DecodedBlock, PART_ALIGN_BYTES, PartFooter, PartReader, footer_block_offset};
use crate::storage::{Disk, DiskFile, ReadBuf};

/// Bytes read at once, from a small block on, for the blocks after it (see
/// [`LoadedPart::read_block_ahead`]).
pub const READ_AHEAD_BYTES: u64 = 256 << 10;
/// Compressed blocks at least this large are read alone: the next one a scan needs is
/// rarely the next in the file, and one read per such block costs little beside decoding it.
pub const READ_AHEAD_BLOCK_MAX: u64 = 32 << 10;

/// What one reader (a scan, for one part) holds of a part beyond the block it asked for.
#[derive(Default)]
pub struct ReadAhead {
    start: u64,
    buf: Option<ReadBuf>,
}

/// A part's tail as read and validated: the file from the metadata's page to its end.
pub struct PartTail {
    buf: ReadBuf,
    offset: u64,
    footer: PartFooter,
    path: PathBuf,
}

impl PartTail {
    /// Reads `[offset, file_len)` of `file` and validates it whole, unless its crc32c is
    /// `accepted_crc`, that of the bytes validated when the part was opened: the same bytes
    /// need no second validation. Returns the tail and its bytes' crc32c.
    async fn read(
        file: &DiskFile,
        path: &Path,
        offset: u64,
        file_len: u64,
        accepted_crc: Option<u32>,
    ) -> Result<(PartTail, u32), StoreError> {
        let buf = file
            .read_at(offset, (file_len - offset) as usize)
            .await
            .map_err(|source| StoreError::Io {
                path: path.to_path_buf(),
                op: "reading a part's metadata",
                source,
            })?;
        if buf.len() as u64 != file_len - offset {
            return Err(StoreError::Corruption {
                path: path.to_path_buf(),
                offset: offset + buf.len() as u64,
                what: "the file ended early".into(),
            });
        }
        let crc = crc32c::crc32c(&buf);
        let footer = match accepted_crc {
            Some(accepted) if accepted == crc => PartFooter::decode(&buf, file_len, path)?,
            // New bytes (or rot since the open): checked whole, and refused with the file
            // and offset of what is wrong.
            _ => *PartReader::open_tail(&buf, offset, path)?.footer(),
        };
        let tail = PartTail {
            buf,
            offset,
            footer,
            path: path.to_path_buf(),
        };
        Ok((tail, crc))
    }

    /// The part's metadata, read in place.
    pub fn reader(&self) -> PartReader<'_> {
        // SAFETY: `buf`, `offset` and `path` are those `open_tail` accepted in `read` (or
        // bytes with the crc32c of those it accepted for this part at open), and the buffer
        // has not been written since (nothing hands out `&mut` to it).
        unsafe { PartReader::reopen_verified_tail(&self.buf, self.offset, self.footer, &self.path) }
    }

    /// The metadata read in place, with the bloom filters of `blooms` (from
    /// [`LoadedPart::blooms`]) when given.
    pub fn reader_with<'a>(&'a self, blooms: Option<&'a BloomRegion>) -> PartReader<'a> {
        let reader = self.reader();
        match blooms {
            Some(region) => reader.with_blooms(region.bytes()),
            None => reader,
        }
    }

    /// Memory the tail holds (its whole aligned buffer).
    pub fn held_bytes(&self) -> u64 {
        self.buf.len() as u64
    }
}

pub struct LoadedPart {
    pub entry: PartEntry,
    pub path: PathBuf,
    file: DiskFile,
    tail_offset: u64,
    footer: PartFooter,
    /// Names this part in the [`PartCache`]: given once per opened part in the process.
    cache_key: u64,
    /// crc32c of the tail validated at open: a tail read again with the same crc is the
    /// same bytes, used without a second validation.
    tail_crc32c: u32,
    /// The label names of the part's streams, sorted: a lookup by metadata asks whether a
    /// stream's labels judge a filter before it reads any tail.
    label_names: Box<[Box<str>]>,
    /// The sum of its blocks' decompressed bytes, which compaction picks its inputs by.
    uncompressed_bytes: u64,
    /// The tail while some reader holds it, shared by every other reader meanwhile.
    held_tail: RefCell<Weak<PartTail>>,
    /// The metadata index's directory, read by the first query that looks a pair up and
    /// kept: 8 bytes per 512 index entries.
    pair_directory: OnceCell<Rc<PairDirectory>>,
}

thread_local! {
    /// The next [`LoadedPart::cache_key`]: parts are opened and read on their core's thread.
    static NEXT_CACHE_KEY: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

impl LoadedPart {
    /// Opens a part and checks its tail. Bad bytes are [`StoreError::Corruption`] with the
    /// file and offset.
    pub async fn open(
        disk: &Disk,
        path: &Path,
        entry: PartEntry,
    ) -> Result<LoadedPart, StoreError> {
        let io = |op: &'static str| {
            move |source| StoreError::Io {
                path: path.to_path_buf(),
                op,
                source,
            }
        };
        let file = disk.open_read(path).await.map_err(io("opening a part"))?;
        let len = file.size().await.map_err(io("reading a part's size"))?;
        if len != entry.file_bytes {
            return Err(StoreError::Corruption {
                path: path.to_path_buf(),
                offset: len.min(entry.file_bytes),
                what: format!(
                    "the file is {len} bytes, the manifest says {}",
                    entry.file_bytes
                ),
            });
        }
        if len < PART_ALIGN_BYTES as u64 {
            return Err(StoreError::Corruption {
                path: path.to_path_buf(),
                offset: 0,
                what: format!("{len} bytes, shorter than one block"),
            });
        }
        let last = footer_block_offset(len);
        let block = file
            .read_at(last, PART_ALIGN_BYTES)
            .await
            .map_err(io("reading a part's footer"))?;
        let footer = PartFooter::decode(&block, len, path)?;
        let tail_offset = footer.tail_offset_meta_only();
        let (tail, tail_crc32c) = PartTail::read(&file, path, tail_offset, len, None).await?;
        let label_names = tail
            .reader()
            .meta()
            .postings
            .iter()
            .map(|p| Box::from(p.name.as_str()))
            .collect();
        let uncompressed_bytes = tail
            .reader()
            .blocks()
            .iter()
            .map(|b| u64::from(b.uncompressed_bytes.to_native()))
            .sum();
        let cache_key = NEXT_CACHE_KEY.with(|k| {
            let key = k.get();
            k.set(key + 1);
            key
        });
        Ok(LoadedPart {
            entry,
            path: path.to_path_buf(),
            file,
            tail_offset,
            footer,
            cache_key,
            tail_crc32c,
            label_names,
            uncompressed_bytes,
            held_tail: RefCell::new(Weak::new()),
            pair_directory: OnceCell::new(),
        })
    }

    /// The part's footer (kept resident).
    pub fn footer(&self) -> &PartFooter {
        &self.footer
    }

    /// The sum of its blocks' decompressed bytes.
    pub fn uncompressed_bytes(&self) -> u64 {
        self.uncompressed_bytes
    }

    /// This part's key in the [`PartCache`].
    pub fn cache_key(&self) -> u64 {
        self.cache_key
    }

    /// Whether some stream of the part has a label `name`.
    pub fn has_label_name(&self, name: &str) -> bool {
        self.label_names
            .binary_search_by(|n| (**n).cmp(name))
            .is_ok()
    }

    /// The part's tail: the copy another reader holds, or the one `cache` keeps, or read
    /// from the file and validated (then kept in `cache`, when given). Merges and rewrites
    /// pass no cache: they read each part once, and would push out what queries use.
    pub async fn tail(&self, cache: Option<&PartCache>) -> Result<Rc<PartTail>, StoreError> {
        // The cache first, so that its recency and counts see every read through it.
        if let Some(tail) = cache.and_then(|c| c.tail(self.cache_key)) {
            *self.held_tail.borrow_mut() = Rc::downgrade(&tail);
            return Ok(tail);
        }
        if let Some(tail) = self.held_tail.borrow().upgrade() {
            return Ok(tail);
        }
        let (tail, _) = PartTail::read(
            &self.file,
            &self.path,
            self.tail_offset,
            self.entry.file_bytes,
            Some(self.tail_crc32c),
        )
        .await?;
        let tail = Rc::new(tail);
        if tail.footer != self.footer {
            return Err(StoreError::Corruption {
                path: self.path.clone(),
                offset: footer_block_offset(self.entry.file_bytes),
                what: "the footer changed since the part was opened".into(),
            });
        }
        // Another reader may have read it meanwhile: the first copy is the one shared.
        if let Some(first) = self.held_tail.borrow().upgrade() {
            return Ok(first);
        }
        *self.held_tail.borrow_mut() = Rc::downgrade(&tail);
        if let Some(cache) = cache {
            cache.insert_tail(self.cache_key, Rc::clone(&tail));
        }
        Ok(tail)
    }

    /// The label names and values of the part's streams, by tenant: from `cache`, or built
    /// from its tail and then kept there. A tail not in the cache is read past it: label
    /// queries over a day read the tails of every part of the day once, and must not let
    /// them push out the summaries the next label query looks for.
    pub async fn label_summary(&self, cache: &PartCache) -> Result<Rc<LabelSummary>, StoreError> {
        if let Some(summary) = cache.labels(self.cache_key) {
            return Ok(summary);
        }
        let tail = match cache.tail(self.cache_key) {
            Some(tail) => tail,
            None => self.tail(None).await?,
        };
        let summary = Rc::new(LabelSummary::of(&tail.reader()));
        cache.insert_labels(self.cache_key, Rc::clone(&summary));
        Ok(summary)
    }

    /// The part's bloom region, from `cache` or read from the file (and then kept there);
    /// `None` when the part has none or its tail holds them ([`PartTail::reader`] has them
    /// then).
    /// A region whose crc does not match is
    /// [`StoreError::Corruption`] with the file and offset, as a rotten block is.
    pub async fn blooms(&self, cache: &PartCache) -> Result<Option<Rc<BloomRegion>>, StoreError> {
        let f = &self.footer;
        // No blooms, or the tail read at open holds them (they share its last block).
        if f.meta_offset <= f.bloom_offset || self.tail_offset <= f.bloom_offset {
            return Ok(None);
        }
        if let Some(region) = cache.blooms(self.cache_key) {
            return Ok(Some(region));
        }
        let start = f.tail_offset_with_blooms();
        let end = f.meta_offset.next_multiple_of(PART_ALIGN_BYTES as u64);
        let len = (f.meta_offset - f.bloom_offset) as usize;
        let at = (f.bloom_offset - start) as usize;
        let buf = self
            .read_covering(
                start,
                end,
                at + len,
                "reading a part's bloom filters",
                || "the file ended inside its bloom filters".into(),
            )
            .await?;
        let computed = crc32c::crc32c(&buf[at..at + len]);
        if computed != f.bloom_crc32c {
            return Err(StoreError::Corruption {
                path: self.path.clone(),
                offset: f.bloom_offset,
                what: format!(
                    "bloom region checksum mismatch (stored {:#010x}, computed {computed:#010x})",
                    f.bloom_crc32c
                ),
            });
        }
        let region = Rc::new(BloomRegion {
            buf,
            start: at,
            len,
        });
        cache.insert_blooms(self.cache_key, Rc::clone(&region));
        Ok(Some(region))
    }

    /// Reads the aligned range `[start, end)`, which must bring at least `needed` bytes: a
    /// shorter read means the file ended early, [`StoreError::Corruption`] saying `ended`.
    async fn read_covering(
        &self,
        start: u64,
        end: u64,
        needed: usize,
        op: &'static str,
        ended: impl FnOnce() -> String,
    ) -> Result<ReadBuf, StoreError> {
        let buf = self
            .file
            .read_at(start, (end - start) as usize)
            .await
            .map_err(|source| StoreError::Io {
                path: self.path.clone(),
                op,
                source,
            })?;
        if buf.len() < needed {
            return Err(StoreError::Corruption {
                path: self.path.clone(),
                offset: start + buf.len() as u64,
                what: ended(),
            });
        }
        Ok(buf)
    }

    /// Bytes held in memory for this part beyond its footer: its label names, and its index
    /// directory once read (its tail is in the [`PartCache`], or with its readers).
    pub fn resident_bytes(&self) -> u64 {
        self.label_names
            .iter()
            .map(|n| n.len() as u64 + 16)
            .sum::<u64>()
            + self.pair_directory.get().map_or(0, |d| d.resident_bytes())
    }

    /// Whether the part has a metadata index ([`crate::chunk::pairs`]).
    pub fn has_pair_index(&self) -> bool {
        self.footer.pair_entries > 0
    }

    /// The blocks that may hold an entry whose metadata index key is `key`, ascending, and
    /// the index bytes read to learn it; `None` when the part has no index (versions 1 and 2,
    /// or no metadata and no escapes): every block may. Reads the directory once per part,
    /// then the pages that can hold the key (usually one 4 KiB page). A page or directory
    /// whose crc does not match is [`StoreError::Corruption`] with the file and offset.
    pub async fn pair_blocks(&self, key: u32) -> Result<Option<(Vec<u32>, u64)>, StoreError> {
        let f = &self.footer;
        if f.pair_entries == 0 {
            return Ok(None);
        }
        let mut read = 0u64;
        let dir = match self.pair_directory.get() {
            Some(d) => d.clone(),
            None => {
                let (start, end) = (f.pair_dir_offset(), f.bloom_offset);
                let bytes = self
                    .read_range(start, end, "reading a part's metadata index")
                    .await?;
                read += end - start;
                let dir = PairDirectory::parse(
                    &bytes,
                    f.pairs_offset,
                    u64::from(f.pair_entries),
                    f.pair_dir_crc32c,
                )
                .map_err(|(offset, what)| StoreError::Corruption {
                    path: self.path.clone(),
                    offset,
                    what,
                })?;
                let dir = Rc::new(dir);
                // Another scan may have read it meanwhile: either copy is the same.
                let _ = self.pair_directory.set(dir.clone());
                dir
            }
        };
        let pages = dir.pages_for(key);
        let mut out = Vec::new();
        if !pages.is_empty() {
            let range = dir.byte_range(&pages);
            let bytes = self
                .read_range(range.start, range.end, "reading a part's metadata index")
                .await?;
            read += range.end - range.start;
            dir.blocks_with(key, &pages, &bytes, f.blocks, &mut out)
                .map_err(|(offset, what)| StoreError::Corruption {
                    path: self.path.clone(),
                    offset,
                    what,
                })?;
        }
        Ok(Some((out, read)))
    }

    /// The bytes `[start, end)` of the file, read through aligned direct I/O.
    async fn read_range(
        &self,
        start: u64,
        end: u64,
        op: &'static str,
    ) -> Result<Vec<u8>, StoreError> {
        let align = PART_ALIGN_BYTES as u64;
        let from = start / align * align;
        let to = end.next_multiple_of(align);
        let lo = (start - from) as usize;
        let hi = (end - from) as usize;
        let buf = self
            .read_covering(from, to, hi, op, || {
                "the file ended inside its metadata index".into()
            })
            .await?;
        Ok(buf[lo..hi].to_vec())
    }

    /// Reads and decodes block `i` (of `reader`, this part's [`PartTail::reader`]) into
    /// `out`.
    pub async fn read_block(
        &self,
        reader: &PartReader<'_>,
        i: usize,
        out: &mut DecodedBlock,
    ) -> Result<(), StoreError> {
        self.read_block_ahead(reader, i, out, &mut ReadAhead::default())
            .await
    }

    /// Reads and decodes block `i` into `out`, from `ahead` when an earlier read of this
    /// part brought it in. A small block is read with the [`READ_AHEAD_BYTES`] after it, kept
    /// in `ahead` for the next blocks: a scan over many small streams reads their blocks in
    /// file order, so one read serves many (a million one-line streams are a million blocks,
    /// and a direct read each would cost a disk round trip per stream).
    pub async fn read_block_ahead(
        &self,
        reader: &PartReader<'_>,
        i: usize,
        out: &mut DecodedBlock,
        ahead: &mut ReadAhead,
    ) -> Result<(), StoreError> {
        self.with_block_bytes(reader, i, ahead, |compressed| {
            Ok(reader.decode_block_bytes(i, compressed, out)?)
        })
        .await
    }

    /// The compressed bytes of block `i`, read as [`Self::read_block_ahead`] reads them, for
    /// a decode elsewhere (see [`PartReader::block_decode_job`]).
    pub async fn read_block_bytes_ahead(
        &self,
        reader: &PartReader<'_>,
        i: usize,
        ahead: &mut ReadAhead,
    ) -> Result<Vec<u8>, StoreError> {
        self.with_block_bytes(reader, i, ahead, |compressed| Ok(compressed.to_vec()))
            .await
    }

    /// Calls `use_bytes` with the compressed bytes of block `i`, from `ahead` or read (see
    /// [`Self::read_block_ahead`]).
    async fn with_block_bytes<R>(
        &self,
        reader: &PartReader<'_>,
        i: usize,
        ahead: &mut ReadAhead,
        use_bytes: impl FnOnce(&[u8]) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let range = reader
            .block_range(i)
            .ok_or_else(|| StoreError::Corruption {
                path: self.path.clone(),
                offset: 0,
                what: format!("no block {i}"),
            })?;
        if let Some(buf) = &ahead.buf
            && ahead.start <= range.start
            && range.end <= ahead.start + buf.len() as u64
        {
            let lo = (range.start - ahead.start) as usize;
            let hi = (range.end - ahead.start) as usize;
            return use_bytes(&buf[lo..hi]);
        }
        let align = PART_ALIGN_BYTES as u64;
        let start = range.start / align * align;
        let mut end = range.end.next_multiple_of(align);
        let small = range.end - range.start < READ_AHEAD_BLOCK_MAX;
        if small {
            // Up to the tail: the blocks end where the blooms and metadata begin.
            end = end.max((start + READ_AHEAD_BYTES).min(self.tail_offset.next_multiple_of(align)));
        }
        let lo = (range.start - start) as usize;
        let hi = (range.end - start) as usize;
        let buf = self
            .read_covering(start, end, hi, "reading a part block", || {
                format!("the file ended inside block {i}")
            })
            .await?;
        let used = use_bytes(&buf[lo..hi])?;
        if small {
            *ahead = ReadAhead {
                start,
                buf: Some(buf),
            };
        }
        Ok(used)
    }
}

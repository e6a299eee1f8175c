//! One part file of a store, open for queries: its tail (metadata, footer) held in an aligned
//! buffer and read in place, and the open file, from which blocks and bloom filters are read
//! on demand.
//!
//! The tail is checked whole once, at load ([`PartReader::open_tail`]: crcs, rkyv validation,
//! field limits); each query re-opens it without checks ([`LoadedPart::reader`]), since the
//! buffer is immutable from then on. The bloom region is read when a query can use it, checked
//! against its crc, and kept in the shard's bounded [`BloomCache`] rather than with the part:
//! resident memory then does not grow with the data stored. Blocks are checked (crc, fields)
//! every time they are decoded. An open part keeps its file descriptor, so retention can
//! unlink the file while a query still reads it.

use std::path::{Path, PathBuf};
use std::rc::Rc;

use super::StoreError;
use super::bloom_cache::{BloomCache, BloomRegion};
use super::manifest::PartEntry;
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

pub struct LoadedPart {
    pub entry: PartEntry,
    pub path: PathBuf,
    file: DiskFile,
    tail: ReadBuf,
    tail_offset: u64,
    footer: PartFooter,
    /// The metadata index's directory, read by the first query that looks a pair up and
    /// kept: 8 bytes per 512 index entries.
    pair_directory: std::cell::OnceCell<Rc<PairDirectory>>,
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
        let tail = file
            .read_at(tail_offset, (len - tail_offset) as usize)
            .await
            .map_err(io("reading a part's metadata"))?;
        if tail.len() as u64 != len - tail_offset {
            return Err(StoreError::Corruption {
                path: path.to_path_buf(),
                offset: tail_offset + tail.len() as u64,
                what: "the file ended early".into(),
            });
        }
        PartReader::open_tail(&tail, tail_offset, path)?;
        Ok(LoadedPart {
            entry,
            path: path.to_path_buf(),
            file,
            tail,
            tail_offset,
            footer,
            pair_directory: std::cell::OnceCell::new(),
        })
    }

    /// The part's metadata and blooms, read in place.
    pub fn reader(&self) -> PartReader<'_> {
        // SAFETY: `tail`, `tail_offset` and `path` are those `open_tail` accepted in `open`,
        // and the buffer has not been written since (nothing hands out `&mut` to it).
        unsafe {
            PartReader::reopen_verified_tail(&self.tail, self.tail_offset, self.footer, &self.path)
        }
    }

    /// The metadata read in place, with the bloom filters of `blooms` (from
    /// [`Self::blooms`]) when given.
    pub fn reader_with<'a>(&'a self, blooms: Option<&'a BloomRegion>) -> PartReader<'a> {
        let reader = self.reader();
        match blooms {
            Some(region) => reader.with_blooms(region.bytes()),
            None => reader,
        }
    }

    /// The part's bloom region, from `cache` or read from the file (and then kept there);
    /// `None` when the part has none or its tail holds them ([`Self::reader`] has them then).
    /// A region whose crc does not match is
    /// [`StoreError::Corruption`] with the file and offset, as a rotten block is.
    pub async fn blooms(&self, cache: &BloomCache) -> Result<Option<Rc<BloomRegion>>, StoreError> {
        let f = &self.footer;
        // No blooms, or the tail read at open holds them (they share its last block).
        if f.meta_offset <= f.bloom_offset || self.tail_offset <= f.bloom_offset {
            return Ok(None);
        }
        if let Some(region) = cache.get(&self.path) {
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
        cache.insert(&self.path, Rc::clone(&region));
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

    /// Bytes held in memory for this part (its tail, and its index directory once read).
    pub fn resident_bytes(&self) -> u64 {
        self.tail.len() as u64 + self.pair_directory.get().map_or(0, |d| d.resident_bytes())
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
                let dir = self
                    .reader()
                    .pair_directory(&bytes)?
                    .expect("the part has an index");
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

    /// Reads and decodes block `i` into `out`.
    pub async fn read_block(&self, i: usize, out: &mut DecodedBlock) -> Result<(), StoreError> {
        self.read_block_ahead(i, out, &mut ReadAhead::default())
            .await
    }

    /// Reads and decodes block `i` into `out`, from `ahead` when an earlier read of this
    /// part brought it in. A small block is read with the [`READ_AHEAD_BYTES`] after it, kept
    /// in `ahead` for the next blocks: a scan over many small streams reads their blocks in
    /// file order, so one read serves many (a million one-line streams are a million blocks,
    /// and a direct read each would cost a disk round trip per stream).
    pub async fn read_block_ahead(
        &self,
        i: usize,
        out: &mut DecodedBlock,
        ahead: &mut ReadAhead,
    ) -> Result<(), StoreError> {
        let range = self
            .reader()
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
            self.reader().decode_block_bytes(i, &buf[lo..hi], out)?;
            return Ok(());
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
        self.reader().decode_block_bytes(i, &buf[lo..hi], out)?;
        if small {
            *ahead = ReadAhead {
                start,
                buf: Some(buf),
            };
        }
        Ok(())
    }
}

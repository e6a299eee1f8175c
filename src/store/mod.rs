//! The storage engine of one shard: the part files that heads are sealed into, the manifest
//! that names them, and the rules that keep "an acknowledged line is found exactly once"
//! true across crashes at any step (see `docs/storage.md`).
//!
//! Which question it answers: "which immutable parts does this shard hold, and how does that
//! set change durably?" A [`Store`] owns one `shards/shard-NNNN` directory. Every change to
//! its set of parts (a seal, a compaction, a retention drop, a quarantine) is one manifest
//! replacement, done under one lock ([`Store::commit`]):
//!
//! 1. new part files are written to `.tmp` names, fdatasynced, renamed, and their directory
//!    fsynced ([`Store::write_part`]): durable, but not yet named;
//! 2. the manifest is replaced atomically (`manifest.tmp`, fdatasync, rename, fsync dir);
//! 3. only then are dropped parts unlinked (readers that opened them keep reading).
//!
//! At open, files the manifest does not name are crash garbage and are deleted; parts it names
//! are opened and checked; a part that fails its checks is moved to `quarantine/`, dropped from
//! the manifest and counted, so the shard serves everything else.
//!
//! - [`paths`]: every file and directory name.
//! - [`manifest`]: the manifest's byte layout.
//! - [`part_file`]: one part open for queries.
//! - [`part_cache`]: the part metadata and bloom filters read lately, bounded in bytes.
//! - [`compaction`]: merging small parts of a partition.
//! - [`retention`]: dropping old partitions by age and by size.
//! - [`rewrite`]: rewriting a part without deleted or expired lines.

pub mod compaction;
pub mod encoder;
pub mod label_summary;
pub mod manifest;
pub mod merge;
pub mod part_cache;
pub mod part_file;
pub mod part_writer;
pub mod paths;
pub mod retention;
pub mod rewrite;

#[cfg(test)]
mod tests;

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use crate::chunk::{ChunkError, PartWriterOptions, StreamBlockInput, encode_part};
use crate::metrics::Counter;
use crate::model::TimestampNs;
use crate::storage::{Disk, IoBuf};
use compaction::CompactionPolicy;
pub use encoder::{Encoder, drop_off_core, encode_off_core};
use manifest::{Manifest, PartEntry};
use part_file::LoadedPart;
use part_writer::PartDescription;
use paths::StorePaths;

/// Bytes written to a part file per direct-I/O write: large enough to keep the device busy,
/// small enough that the buffer is reused across parts instead of sized to each.
pub const PART_WRITE_CHUNK_BYTES: usize = 1 << 20;

/// Errors of the storage engine.
#[derive(Debug)]
pub enum StoreError {
    Io {
        path: PathBuf,
        op: &'static str,
        source: io::Error,
    },
    /// Bytes on disk are not what was written: the file, the offset and what is wrong.
    Corruption {
        path: PathBuf,
        offset: u64,
        what: String,
    },
    /// Input the writer refuses (a bug if it happens: sealing only gives valid input).
    Invalid(String),
}

impl StoreError {
    pub fn is_corruption(&self) -> bool {
        matches!(self, StoreError::Corruption { .. })
    }
}

impl From<ChunkError> for StoreError {
    fn from(e: ChunkError) -> Self {
        match e {
            ChunkError::Corruption { path, offset, what } => {
                StoreError::Corruption { path, offset, what }
            }
            other => StoreError::Invalid(other.to_string()),
        }
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Io { path, op, source } => {
                write!(f, "{op} failed for {}: {source}", path.display())
            }
            StoreError::Corruption { path, offset, what } => {
                write!(
                    f,
                    "corrupt file {} at offset {offset}: {what}",
                    path.display()
                )
            }
            StoreError::Invalid(why) => write!(f, "{why}"),
        }
    }
}

impl std::error::Error for StoreError {}

fn io_err(path: &Path, op: &'static str) -> impl FnOnce(io::Error) -> StoreError {
    let path = path.to_path_buf();
    move |source| StoreError::Io { path, op, source }
}

/// How a store writes parts.
#[derive(Debug, Clone, Copy)]
pub struct StoreOptions {
    /// Options of parts written by sealing.
    pub seal: PartWriterOptions,
    /// Options of parts written by compaction (a higher zstd level: cold data is read less).
    pub compact: PartWriterOptions,
    /// Options of parts written by compaction of cold partitions and bundles: the highest
    /// level that still encodes a step in seconds ([`COLD_ZSTD_LEVEL`]), with templates.
    pub cold: PartWriterOptions,
    /// Span of a partition in nanoseconds.
    pub partition_ns: i64,
    /// Compaction's I/O budget, bytes per second (read plus written); 0 is unlimited.
    pub compaction_bytes_per_second: u64,
    /// Which parts compaction merges.
    pub compaction: CompactionPolicy,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            seal: PartWriterOptions {
                zstd_level: SEAL_ZSTD_LEVEL,
                ..PartWriterOptions::default()
            },
            compact: PartWriterOptions {
                line_templates: crate::chunk::LineTemplates::Auto,
                ..PartWriterOptions::default()
            },
            cold: PartWriterOptions {
                zstd_level: COLD_ZSTD_LEVEL,
                line_templates: crate::chunk::LineTemplates::Auto,
                ..PartWriterOptions::default()
            },
            partition_ns: 86_400_000_000_000,
            compaction_bytes_per_second: crate::config::COMPACTION_BYTES_PER_SECOND_DEFAULT,
            compaction: CompactionPolicy::default(),
        }
    }
}

/// zstd level of sealing. Sealing must keep up with ingest (over 150 MB/s of lines per core
/// at full rate), which level 3 does and level 9 does not (about 60 MB/s, measured by
/// `cargo bench --bench chunk`); compaction rewrites parts at the configured level.
pub const SEAL_ZSTD_LEVEL: i32 = 3;

/// zstd level of cold data (partitions an hour past their end, and bundles). Measured on the
/// loghub corpus with templates: 158.6 KB at 19 against 176.9 KB at 9 and 161.5 KB at 17;
/// level 19 encodes about 1.6 MB/s of lines, so a cold step is bounded by
/// [`compaction::CompactionPolicy::cold_input_uncompressed_bytes_max`].
pub const COLD_ZSTD_LEVEL: i32 = 19;

/// Counters of a store, for `/metrics`.
#[derive(Default)]
pub struct StoreCounters {
    pub parts_written: Counter,
    pub part_bytes_written: Counter,
    pub sealed_entries: Counter,
    pub manifest_writes: Counter,
    pub quarantined_parts: Counter,
    pub garbage_files_removed: Counter,
    pub compactions: Counter,
    pub compacted_input_parts: Counter,
    pub compaction_bytes: Counter,
    pub retention_dropped_parts: Counter,
    pub retention_dropped_entries: Counter,
    pub retention_dropped_bytes: Counter,
    /// Parts replaced (or removed) because lines of theirs were deleted or expired.
    pub rewritten_parts: Counter,
}

/// An encoded part and what the manifest will say of it.
#[derive(Debug)]
pub struct NewPart {
    /// Start of the partition its entries fall in.
    pub partition_start: TimestampNs,
    /// The whole file ([`crate::chunk::encode_part`]).
    pub bytes: Vec<u8>,
    /// 0 for sealing; compaction writes one more than its inputs' highest.
    pub level: u32,
    pub entries: u64,
    pub min_ts: TimestampNs,
    pub max_ts: TimestampNs,
}

/// A change to the set of parts, applied by one manifest replacement.
#[derive(Default)]
pub struct Change {
    /// Parts written and durable, to name.
    pub add: Vec<LoadedPart>,
    /// Parts to drop (by id).
    pub remove: Vec<u64>,
    /// New `sealed_through` watermarks (stream id, seq); each only raises.
    pub watermarks: Vec<(u64, u64)>,
    /// A new WAL checkpoint (only raises).
    pub wal_checkpoint: Option<u64>,
    /// Foreign WALs sealed through a seq.
    pub foreign: Vec<(u32, u64)>,
    /// Foreign WAL entries to forget (their directories are gone).
    pub forget_foreign: Vec<u32>,
}

/// One shard directory's parts.
pub struct Store {
    disk: Disk,
    dir_shard: u32,
    paths: StorePaths,
    pub opts: StoreOptions,
    /// Read-only stores are those of shard numbers beyond the core count, served by another
    /// shard: nothing is written to them (their WAL was replayed into the serving shard).
    writable: bool,
    manifest: RefCell<Manifest>,
    /// The id the next part file gets. Kept apart from `manifest`, which a commit replaces
    /// after an await: a part written meanwhile (compaction writes without the lock) must not
    /// have its id handed out again, or a later part would be renamed over it.
    next_part_id: Cell<u64>,
    parts: RefCell<Vec<Rc<LoadedPart>>>,
    /// Serializes manifest changes (seal, compaction, retention, quarantine).
    lock: glommio::sync::Semaphore,
    /// Ids of parts being quarantined, so a part is moved once.
    quarantining: RefCell<Vec<u64>>,
    write_buf: RefCell<Option<IoBuf>>,
    total_bytes: Cell<u64>,
    /// Part files of changes whose commit failed: the manifest on disk may or may not name
    /// them (the failure may have come after its rename), so they stay until a later commit,
    /// which certainly does not name them, removes them.
    orphans: RefCell<Vec<PathBuf>>,
    /// The partition a compaction is writing into (one at a time): retention leaves its
    /// directory in place, so the compaction's new file always has a directory to go to.
    compacting: RefCell<Option<String>>,
    pub counters: StoreCounters,
}

impl Store {
    /// Opens (creating it if `writable` and missing) the store of shard directory `dir_shard`.
    pub async fn open(
        disk: Disk,
        data_dir: &Path,
        dir_shard: usize,
        opts: StoreOptions,
        writable: bool,
    ) -> Result<Store, StoreError> {
        let paths = StorePaths::new(data_dir, dir_shard);
        if writable {
            for d in [paths.parts(), paths.quarantine()] {
                disk.create_dir_all_durable(&d)
                    .await
                    .map_err(io_err(&d, "creating a store directory"))?;
            }
            let tmp = paths.manifest_tmp();
            if disk.exists(&tmp) {
                disk.remove(&tmp)
                    .await
                    .map_err(io_err(&tmp, "removing an unfinished manifest"))?;
            }
        }
        let manifest = read_manifest(&disk, &paths.manifest()).await?;
        let store = Store {
            disk,
            dir_shard: dir_shard as u32,
            paths,
            opts,
            writable,
            next_part_id: Cell::new(manifest.next_part_id),
            manifest: RefCell::new(manifest),
            parts: RefCell::new(Vec::new()),
            lock: glommio::sync::Semaphore::new(1),
            quarantining: RefCell::new(Vec::new()),
            write_buf: RefCell::new(None),
            total_bytes: Cell::new(0),
            orphans: RefCell::new(Vec::new()),
            compacting: RefCell::new(None),
            counters: StoreCounters::default(),
        };
        store.load_parts().await?;
        if writable {
            store.remove_garbage().await?;
        }
        Ok(store)
    }

    /// Opens every part the manifest names; quarantines those that fail their checks.
    async fn load_parts(&self) -> Result<(), StoreError> {
        let entries = self.manifest.borrow().parts.clone();
        let mut loaded = Vec::with_capacity(entries.len());
        let mut bad = Vec::new();
        for e in entries {
            let path = self.part_path(&e);
            match LoadedPart::open(&self.disk, &path, e.clone()).await {
                Ok(p) => loaded.push(Rc::new(p)),
                Err(err @ StoreError::Corruption { .. }) => {
                    eprintln!("shardlog: {err}; moving the part to quarantine");
                    bad.push(e);
                }
                Err(StoreError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                    eprintln!(
                        "shardlog: part {} named by the manifest is missing; dropping it from the manifest",
                        path.display()
                    );
                    bad.push(e);
                }
                Err(other) => return Err(other),
            }
        }
        loaded.sort_by_key(|p| (p.entry.partition_start, p.entry.min_ts, p.entry.id));
        self.total_bytes
            .set(loaded.iter().map(|p| p.entry.file_bytes).sum());
        *self.parts.borrow_mut() = loaded;
        if !bad.is_empty() && self.writable {
            let _guard = self.lock.acquire(1).await;
            for e in &bad {
                self.move_to_quarantine(e).await;
            }
            self.commit_locked(
                Change {
                    remove: bad.iter().map(|e| e.id).collect(),
                    ..Change::default()
                },
                || {},
            )
            .await?;
        }
        self.counters.quarantined_parts.add(bad.len() as u64);
        Ok(())
    }

    /// Deletes files under `parts/` that the manifest does not name (crash leftovers: parts
    /// written but never named, `.tmp` files), and empty partition directories.
    async fn remove_garbage(&self) -> Result<(), StoreError> {
        let named: std::collections::HashSet<(String, u64)> = self
            .manifest
            .borrow()
            .parts
            .iter()
            .map(|p| (p.partition.clone(), p.id))
            .collect();
        let parts_dir = self.paths.parts();
        let list = |d: &Path| {
            self.disk
                .list_dir(d)
                .map_err(io_err(d, "listing a store directory"))
        };
        for partition in list(&parts_dir)? {
            let Some(partition) = partition.to_str().map(str::to_string) else {
                continue;
            };
            let dir = parts_dir.join(&partition);
            if !self.disk.is_dir(&dir) {
                continue;
            }
            let mut removed = 0;
            let mut kept = 0;
            for name in list(&dir)? {
                let keep = name
                    .to_str()
                    .and_then(paths::parse_part_file_name)
                    .is_some_and(|id| named.contains(&(partition.clone(), id)));
                if keep {
                    kept += 1;
                    continue;
                }
                let path = dir.join(&name);
                self.disk
                    .remove(&path)
                    .await
                    .map_err(io_err(&path, "removing an unnamed part file"))?;
                removed += 1;
            }
            if removed > 0 {
                self.disk
                    .sync_dir(&dir)
                    .await
                    .map_err(io_err(&dir, "syncing a partition directory"))?;
                self.counters.garbage_files_removed.add(removed);
            }
            if kept == 0 {
                self.disk
                    .remove_dir(&dir)
                    .map_err(io_err(&dir, "removing an empty partition directory"))?;
                self.disk
                    .sync_dir(&parts_dir)
                    .await
                    .map_err(io_err(&parts_dir, "syncing the parts directory"))?;
            }
        }
        Ok(())
    }

    pub fn dir_shard(&self) -> u32 {
        self.dir_shard
    }

    pub fn paths(&self) -> &StorePaths {
        &self.paths
    }

    pub fn disk(&self) -> &Disk {
        &self.disk
    }

    pub fn is_writable(&self) -> bool {
        self.writable
    }

    fn part_path(&self, e: &PartEntry) -> PathBuf {
        self.paths.part(&e.partition, e.id)
    }

    /// The parts, ordered by partition and time. Clone of the list: a query keeps reading the
    /// parts it took even if a compaction or retention drops them meanwhile.
    pub fn parts(&self) -> Vec<Rc<LoadedPart>> {
        self.parts.borrow().clone()
    }

    pub fn part_count(&self) -> usize {
        self.parts.borrow().len()
    }

    /// Bytes of the part files named by the manifest.
    pub fn total_bytes(&self) -> u64 {
        self.total_bytes.get()
    }

    pub fn manifest(&self) -> std::cell::Ref<'_, Manifest> {
        self.manifest.borrow()
    }

    /// Takes the lock that serializes manifest changes.
    pub async fn lock(&self) -> glommio::sync::Permit<'_> {
        self.lock
            .acquire_permit(1)
            .await
            .expect("the store lock is never closed")
    }

    /// Makes an encoded part durable under its final name, in the partition its start time
    /// falls in; the part is not named by the manifest yet (give it to
    /// [`Store::commit_locked`] in a [`Change`]).
    pub async fn write_part(&self, part: NewPart) -> Result<LoadedPart, StoreError> {
        let partition = paths::partition_name(part.partition_start, self.opts.partition_ns);
        self.write_part_in(&partition, part).await
    }

    /// [`Store::write_part`] into the partition directory `partition`, whatever the current
    /// partition span: compaction keeps a part in the partition its inputs were in, even if
    /// the span was configured differently when they were written.
    pub(crate) async fn write_part_in(
        &self,
        partition: &str,
        part: NewPart,
    ) -> Result<LoadedPart, StoreError> {
        let NewPart {
            partition_start,
            bytes: encoded,
            level,
            entries,
            min_ts,
            max_ts,
        } = part;
        let mut writer = self.create_part_file(partition).await?;
        if let Err(e) = writer.write(&encoded).await {
            writer.abandon().await;
            return Err(e);
        }
        writer
            .finish(PartDescription {
                partition_start,
                level,
                entries,
                min_ts,
                max_ts,
            })
            .await
    }

    /// Replaces the manifest with `change` applied, then the in-memory set, then unlinks
    /// dropped files. The caller holds [`Store::lock`]. On error the manifest on disk is the
    /// old one or the new one, and the in-memory set is left as it was: a later commit
    /// (built from the in-memory set, as every commit is) replaces whichever it is, and only
    /// then are the failed change's new files removed.
    /// `on_swap` runs right after the in-memory set changes, in the same step (no yield
    /// between), for callers whose own state must change with it.
    pub async fn commit_locked(
        &self,
        change: Change,
        on_swap: impl FnOnce(),
    ) -> Result<(), StoreError> {
        let mut next = self.manifest.borrow().clone();
        next.generation += 1;
        // Every id handed out so far, named or not: a part written but never named (a crash,
        // a failed or abandoned step) is garbage, and its id is never used again.
        next.next_part_id = self.next_part_id.get();
        next.parts.retain(|p| !change.remove.contains(&p.id));
        next.parts
            .extend(change.add.iter().map(|p| p.entry.clone()));
        merge_watermarks(&mut next.watermarks, &change.watermarks);
        if let Some(c) = change.wal_checkpoint {
            next.wal_checkpoint = next.wal_checkpoint.max(c);
        }
        // A watermark at or below the checkpoint says nothing the checkpoint does not.
        let checkpoint = next.wal_checkpoint;
        next.watermarks.retain(|w| w.1 > checkpoint);
        for (shard, seq) in &change.foreign {
            match next.foreign.binary_search_by_key(shard, |f| f.0) {
                Ok(i) => next.foreign[i].1 = next.foreign[i].1.max(*seq),
                Err(i) => next.foreign.insert(i, (*shard, *seq)),
            }
        }
        next.foreign
            .retain(|f| !change.forget_foreign.contains(&f.0));
        if let Err(e) = write_manifest(&self.disk, &self.paths, &next).await {
            self.orphans
                .borrow_mut()
                .extend(change.add.iter().map(|p| p.path.clone()));
            return Err(e);
        }
        self.counters.manifest_writes.inc();
        // The manifest now on disk names none of them.
        let orphans: Vec<PathBuf> = std::mem::take(&mut *self.orphans.borrow_mut());
        let removed: Vec<Rc<LoadedPart>> = {
            let mut parts = self.parts.borrow_mut();
            let (gone, kept): (Vec<_>, Vec<_>) = parts
                .drain(..)
                .partition(|p| change.remove.contains(&p.entry.id));
            *parts = kept;
            parts.extend(change.add.into_iter().map(Rc::new));
            parts.sort_by_key(|p| (p.entry.partition_start, p.entry.min_ts, p.entry.id));
            self.total_bytes
                .set(parts.iter().map(|p| p.entry.file_bytes).sum());
            gone
        };
        *self.manifest.borrow_mut() = next;
        on_swap();
        let mut dirs = Vec::new();
        for p in removed {
            if self.disk.exists(&p.path) {
                // Not yet durable: a crash leaves the file, which the next open deletes as
                // garbage (the manifest no longer names it).
                let _ = self.disk.remove(&p.path).await;
                if let Some(d) = p.path.parent() {
                    dirs.push(d.to_path_buf());
                }
            }
        }
        for path in orphans {
            if self.disk.exists(&path) && self.disk.remove(&path).await.is_ok() {
                self.counters.garbage_files_removed.inc();
                if let Some(d) = path.parent() {
                    dirs.push(d.to_path_buf());
                }
            }
        }
        dirs.sort();
        dirs.dedup();
        for d in dirs {
            let _ = self.disk.sync_dir(&d).await;
        }
        Ok(())
    }

    /// A query found part `id` corrupt: move it aside and drop it from the manifest, once.
    pub async fn quarantine(&self, id: u64) {
        if !self.writable || self.quarantining.borrow().contains(&id) {
            return;
        }
        let Some(entry) = self
            .parts
            .borrow()
            .iter()
            .find(|p| p.entry.id == id)
            .map(|p| p.entry.clone())
        else {
            return;
        };
        self.quarantining.borrow_mut().push(id);
        let _guard = self.lock().await;
        self.move_to_quarantine(&entry).await;
        match self
            .commit_locked(
                Change {
                    remove: vec![id],
                    ..Change::default()
                },
                || {},
            )
            .await
        {
            Ok(()) => self.counters.quarantined_parts.inc(),
            Err(e) => eprintln!("shardlog: could not drop a corrupt part from the manifest: {e}"),
        }
        self.quarantining.borrow_mut().retain(|&q| q != id);
    }

    async fn move_to_quarantine(&self, e: &PartEntry) {
        let from = self.part_path(e);
        let to = self.paths.quarantined_part(&e.partition, e.id);
        if let Err(err) = self.disk.rename(&from, &to).await {
            eprintln!(
                "shardlog: could not move {} to quarantine: {err}",
                from.display()
            );
            return;
        }
        let _ = self.disk.sync_dir(&self.paths.quarantine()).await;
        eprintln!(
            "shardlog: part {} moved to {}",
            from.display(),
            to.display()
        );
    }
}

/// Encodes a part on the calling thread.
pub fn encode_now(
    streams: &[StreamBlockInput<'_>],
    opts: &PartWriterOptions,
) -> Result<Vec<u8>, StoreError> {
    encode_part(streams, opts).map_err(StoreError::from)
}

/// Reads a manifest; a missing one is the empty manifest of a new store.
pub async fn read_manifest(disk: &Disk, path: &Path) -> Result<Manifest, StoreError> {
    if !disk.exists(path) {
        return Ok(Manifest::default());
    }
    let file = disk
        .open_read(path)
        .await
        .map_err(io_err(path, "opening the manifest"))?;
    let len = file
        .size()
        .await
        .map_err(io_err(path, "reading the manifest's size"))?;
    let buf = file
        .read_at(0, (len as usize).next_multiple_of(4096).max(4096))
        .await
        .map_err(io_err(path, "reading the manifest"))?;
    let _ = file.close().await;
    Manifest::decode(&buf, path)
}

/// Replaces the manifest atomically: write the temp file, fdatasync, rename, fsync the dir.
pub async fn write_manifest(
    disk: &Disk,
    paths: &StorePaths,
    m: &Manifest,
) -> Result<(), StoreError> {
    let tmp = paths.manifest_tmp();
    if disk.exists(&tmp) {
        disk.remove(&tmp)
            .await
            .map_err(io_err(&tmp, "removing an unfinished manifest"))?;
    }
    let buf = IoBuf::padded_copy(&m.encode());
    let file = disk
        .create_new(&tmp)
        .await
        .map_err(io_err(&tmp, "creating the manifest"))?;
    let written = async {
        file.write_at(&buf, 0)
            .await
            .map_err(io_err(&tmp, "writing the manifest"))?;
        file.fdatasync()
            .await
            .map_err(io_err(&tmp, "syncing the manifest"))
    };
    if let Err(e) = written.await {
        let _ = file.close().await;
        // No `.tmp` outlives a failure.
        let _ = disk.remove(&tmp).await;
        return Err(e);
    }
    let _ = file.close().await;
    let path = paths.manifest();
    disk.rename(&tmp, &path)
        .await
        .map_err(io_err(&tmp, "renaming the manifest into place"))?;
    disk.sync_dir(paths.root())
        .await
        .map_err(io_err(paths.root(), "syncing the store directory"))
}

/// Merges `add` into `into` (sorted by stream, one entry per stream), keeping the higher
/// seq of a stream in both. Linear in both lengths: a seal round of a million new streams
/// brings a million watermarks, and inserting them one by one into the sorted vector moved
/// it a million times (most of a 75 s shutdown).
fn merge_watermarks(into: &mut Vec<(u64, u64)>, add: &[(u64, u64)]) {
    if add.is_empty() {
        return;
    }
    let mut add = add.to_vec();
    add.sort_unstable();
    let old = std::mem::take(into);
    into.reserve(old.len() + add.len());
    let (mut a, mut b) = (old.into_iter().peekable(), add.into_iter().peekable());
    loop {
        let next = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) if x.0 <= y.0 => a.next(),
            (Some(_), Some(_)) | (None, Some(_)) => b.next(),
            (Some(_), None) => a.next(),
            (None, None) => break,
        };
        if let Some((stream, seq)) = next {
            match into.last_mut() {
                Some(last) if last.0 == stream => last.1 = last.1.max(seq),
                _ => into.push((stream, seq)),
            }
        }
    }
}

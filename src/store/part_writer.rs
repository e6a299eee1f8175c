//! Writing one part file durably, a piece at a time.
//!
//! Which question it answers: "how do the bytes of a new part reach the disk, so that the
//! part is either whole under its final name or not there at all?" Sealing hands over a whole
//! encoded part; compaction streams one far larger than memory, as the
//! [`crate::chunk::PartEncoder`] produces it. Both go through [`PartFileWriter`]: pieces are
//! written with direct I/O to `<id>.part.tmp`, then the file is synced, renamed into place
//! and its directory synced. Until the manifest names it, a part is garbage that the next
//! open deletes; a writer abandoned on an error removes its temporary file at once, so that
//! it does not hold space until then.

use std::path::PathBuf;

use super::manifest::PartEntry;
use super::part_file::LoadedPart;
use super::{PART_WRITE_CHUNK_BYTES, Store, StoreError, io_err};
use crate::chunk::PART_ALIGN_BYTES;
use crate::model::TimestampNs;
use crate::storage::{DiskFile, IoBuf};

/// What the manifest will say of a part once its bytes are written.
#[derive(Debug, Clone, Copy)]
pub struct PartDescription {
    /// Start of the partition its entries fall in.
    pub partition_start: TimestampNs,
    /// 0 for sealing; compaction writes one more than its inputs' highest.
    pub level: u32,
    pub entries: u64,
    pub min_ts: TimestampNs,
    pub max_ts: TimestampNs,
}

/// A part file being written: its id is taken, its temporary file exists.
pub struct PartFileWriter<'s> {
    store: &'s Store,
    partition: String,
    id: u64,
    dir: PathBuf,
    tmp: PathBuf,
    path: PathBuf,
    file: DiskFile,
    written: u64,
}

impl Store {
    /// Starts a new part in the partition directory `partition` (created if needed).
    pub(crate) async fn create_part_file(
        &self,
        partition: &str,
    ) -> Result<PartFileWriter<'_>, StoreError> {
        let id = self.next_part_id.get();
        self.next_part_id.set(id + 1);
        let dir = self.paths.partition_dir(partition);
        self.disk
            .create_dir_all_durable(&dir)
            .await
            .map_err(io_err(&dir, "creating a partition directory"))?;
        let tmp = self.paths.part_tmp(partition, id);
        let path = self.paths.part(partition, id);
        let file = self
            .disk
            .create_new(&tmp)
            .await
            .map_err(io_err(&tmp, "creating a part file"))?;
        Ok(PartFileWriter {
            store: self,
            partition: partition.to_string(),
            id,
            dir,
            tmp,
            path,
            file,
            written: 0,
        })
    }
}

impl PartFileWriter<'_> {
    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Appends `bytes`, a multiple of [`PART_ALIGN_BYTES`] long (as
    /// [`crate::chunk::PartEncoder`] hands them out).
    pub async fn write(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        debug_assert_eq!(bytes.len() % PART_ALIGN_BYTES, 0);
        let store = self.store;
        let mut buf = store
            .write_buf
            .borrow_mut()
            .take()
            .unwrap_or_else(|| IoBuf::new(PART_WRITE_CHUNK_BYTES));
        let mut result = Ok(());
        for chunk in bytes.chunks(PART_WRITE_CHUNK_BYTES) {
            buf.set_len(chunk.len());
            buf.copy_from_slice(chunk);
            if let Err(e) = self.file.write_at(&buf, self.written).await {
                result = Err(e);
                break;
            }
            self.written += chunk.len() as u64;
        }
        buf.set_len(buf.capacity());
        *store.write_buf.borrow_mut() = Some(buf);
        result.map_err(io_err(&self.tmp, "writing a part file"))
    }

    /// Makes the file durable under its final name and opens it; the manifest does not name
    /// it yet (give it to [`Store::commit_locked`]). On error the temporary file is removed.
    pub async fn finish(self, description: PartDescription) -> Result<LoadedPart, StoreError> {
        let PartFileWriter {
            store,
            partition,
            id,
            dir,
            tmp,
            path,
            file,
            written,
        } = self;
        let finished = async {
            file.fdatasync()
                .await
                .map_err(io_err(&tmp, "syncing a part file"))?;
            let _ = file.close().await;
            store
                .disk
                .rename(&tmp, &path)
                .await
                .map_err(io_err(&tmp, "renaming a part file into place"))
        };
        if let Err(e) = finished.await {
            // No `.tmp` outlives a failure: it would hold space until the next start.
            let _ = store.disk.remove(&tmp).await;
            return Err(e);
        }
        store
            .disk
            .sync_dir(&dir)
            .await
            .map_err(io_err(&dir, "syncing a partition directory"))?;
        store.counters.parts_written.inc();
        store.counters.part_bytes_written.add(written);
        let entry = PartEntry {
            id,
            dir_shard: store.dir_shard,
            partition_start: description.partition_start,
            partition,
            file_bytes: written,
            entries: description.entries,
            min_ts: description.min_ts,
            max_ts: description.max_ts,
            level: description.level,
        };
        LoadedPart::open(&store.disk, &path, entry).await
    }

    /// Gives the part up: its temporary file is removed (a failure is left to the next open,
    /// which deletes unnamed files).
    pub async fn abandon(self) {
        let _ = self.file.close().await;
        let _ = self.store.disk.remove(&self.tmp).await;
    }
}

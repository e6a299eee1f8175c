//! The log's view of its storage device ([`crate::storage::Disk`]: the real disk through
//! glommio's direct I/O, or the simulated one of the crash tests): segment files and the WAL
//! directory, wrapped so that every error names the file and the operation.
//!
//! Fault injection is the disk's ([`crate::storage::FaultPlan`], shared by every file of one
//! [`Disk`]); the log adds nothing to it.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use glommio::io::DmaFile;

use super::segment::DMA_PROBE_FILE_NAME;
use super::{BLOCK_BYTES, WalError};
use crate::storage::{Disk, DiskFile, IoBuf};

fn io_err(path: &Path, op: &'static str) -> impl FnOnce(io::Error) -> WalError {
    let path = path.to_path_buf();
    move |source| WalError::Io { path, op, source }
}

/// Makes glommio's poll-ring probe for the device under `dir` give the right answer on this
/// executor thread. Nothing to do on a simulated disk.
///
/// glommio decides once per thread and device whether io_uring polled I/O works, by reading
/// block 0 of the first DMA file opened there. If that file is empty (a segment just created),
/// the read succeeds without reaching the device, the device is taken as pollable, and on a
/// device without poll queues every later direct read fails with EOPNOTSUPP. Opening a file
/// whose first block holds data first makes the probe a real device read. Call this before
/// any other DMA file is opened on the executor; the log does so in [`super::Wal::open`] and
/// [`super::replay_dir`]. Done once per open, a short blocking write of one block.
///
/// On a full disk the block cannot be written: a segment already in `dir` (it holds data
/// from its first block on) is read instead, so that a restart on a full disk still opens,
/// read-only. With neither, the probe is left to the first file opened, and said so.
pub async fn prime_dma_probe(disk: &Disk, dir: &Path) -> Result<(), WalError> {
    if disk.sim().is_some() {
        return Ok(());
    }
    let path = dir.join(DMA_PROBE_FILE_NAME);
    let err = |op, source| WalError::Io {
        path: path.clone(),
        op,
        source,
    };
    if let Err(e) = std::fs::write(&path, [0x5A; BLOCK_BYTES]) {
        // A failed write may still have created the file; it must not hold space.
        let _ = std::fs::remove_file(&path);
        if !super::space::is_no_space(&e) {
            return Err(err("writing the DMA probe file", e));
        }
        return prime_with_a_segment(dir).await;
    }
    let file = DmaFile::open(&path)
        .await
        .map_err(|e| err("opening the DMA probe file", e.into()))?;
    let _ = file.close().await;
    std::fs::remove_file(&path).map_err(|e| err("removing the DMA probe file", e))
}

/// The probe of [`prime_dma_probe`] without writing: reads the first segment of `dir` that
/// has a first block.
async fn prime_with_a_segment(dir: &Path) -> Result<(), WalError> {
    let segments = std::fs::read_dir(dir).map_err(io_err(dir, "listing the WAL directory"))?;
    for entry in segments.flatten() {
        let name = entry.file_name();
        let is_segment = name
            .to_str()
            .is_some_and(|n| super::segment::parse_segment_file_name(n).is_some());
        let long_enough = entry
            .metadata()
            .is_ok_and(|m| m.len() >= BLOCK_BYTES as u64);
        if !is_segment || !long_enough {
            continue;
        }
        if let Ok(file) = DmaFile::open(&entry.path()).await {
            let _ = file.close().await;
            return Ok(());
        }
    }
    eprintln!(
        "shardlog: no space under {} to prime the polled-I/O probe; the first data file \
         opened there primes it",
        dir.display()
    );
    Ok(())
}

/// One open segment file.
pub struct SegmentFile {
    file: DiskFile,
    /// The file's current name (it follows [`SegmentFile::rename`]), for error messages.
    path: PathBuf,
}

impl SegmentFile {
    /// Opens an existing segment for reading.
    pub async fn open_read(disk: &Disk, path: &Path) -> Result<SegmentFile, WalError> {
        let file = disk
            .open_read(path)
            .await
            .map_err(io_err(path, "opening a WAL segment for reading"))?;
        Ok(SegmentFile {
            file,
            path: path.to_path_buf(),
        })
    }

    /// Opens an existing segment for reading and writing (to truncate a torn tail).
    pub async fn open_write(disk: &Disk, path: &Path) -> Result<SegmentFile, WalError> {
        let file = disk
            .open_write(path)
            .await
            .map_err(io_err(path, "opening a WAL segment for writing"))?;
        Ok(SegmentFile {
            file,
            path: path.to_path_buf(),
        })
    }

    /// Creates a new file, failing if it exists.
    pub async fn create(disk: &Disk, path: &Path) -> Result<SegmentFile, WalError> {
        let file = disk
            .create_new(path)
            .await
            .map_err(io_err(path, "creating a WAL segment"))?;
        Ok(SegmentFile {
            file,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub async fn size(&self) -> Result<u64, WalError> {
        self.file
            .size()
            .await
            .map_err(io_err(&self.path, "reading the size of a WAL segment"))
    }

    /// Reads up to `len` bytes at block-aligned `pos`, copying them into `out`; returns how
    /// many were read (fewer at the end of the file).
    pub async fn read_into(
        &self,
        pos: u64,
        len: usize,
        out: &mut Vec<u8>,
    ) -> Result<usize, WalError> {
        let r = self
            .file
            .read_at(pos, len)
            .await
            .map_err(io_err(&self.path, "reading a WAL segment"))?;
        out.extend_from_slice(&r);
        Ok(r.len())
    }

    /// Writes all of `buf` (whole blocks) at block-aligned `pos`. The log never retries a
    /// write, so the plain OS error is returned for the caller to poison with.
    pub async fn write_all(&self, buf: &IoBuf, pos: u64) -> Result<(), io::Error> {
        self.file.write_at(buf, pos).await
    }

    /// `fdatasync`, returning how long it took.
    pub async fn sync(&self) -> Result<Duration, io::Error> {
        self.file.fdatasync().await
    }

    /// Reserves the segment's space, so that commits do not allocate as they go.
    pub async fn pre_allocate(&self, size: u64) -> Result<(), WalError> {
        self.file
            .pre_allocate(size)
            .await
            .map_err(io_err(&self.path, "preallocating a WAL segment"))
    }

    pub async fn truncate(&self, size: u64) -> Result<(), WalError> {
        self.file
            .truncate(size)
            .await
            .map_err(io_err(&self.path, "truncating a WAL segment"))
    }

    /// Renames the file (not durable until its directory is synced); `self.path` follows.
    pub async fn rename(&mut self, to: &Path) -> Result<(), WalError> {
        self.file
            .disk()
            .rename(&self.path, to)
            .await
            .map_err(io_err(&self.path, "renaming a new WAL segment"))?;
        self.path = to.to_path_buf();
        Ok(())
    }

    pub async fn close(self) -> Result<(), WalError> {
        self.file
            .close()
            .await
            .map_err(io_err(&self.path, "closing a WAL segment"))
    }
}

/// The WAL directory on its disk: lists, removes and syncs names.
pub struct WalDir {
    disk: Disk,
    path: PathBuf,
}

impl WalDir {
    /// The directory `path` of `disk`, which must exist.
    pub fn open(disk: &Disk, path: &Path) -> Result<WalDir, WalError> {
        if !disk.is_dir(path) {
            return Err(WalError::Io {
                path: path.to_path_buf(),
                op: "opening the WAL directory",
                source: io::Error::new(io::ErrorKind::NotFound, "no such directory"),
            });
        }
        Ok(WalDir {
            disk: disk.clone(),
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn disk(&self) -> &Disk {
        &self.disk
    }

    /// Makes the names created, renamed or removed in this directory durable.
    pub async fn sync(&self) -> Result<(), WalError> {
        self.disk
            .sync_dir(&self.path)
            .await
            .map_err(io_err(&self.path, "fsyncing the WAL directory"))
    }

    /// Removes a file in this directory (not yet durable: call [`WalDir::sync`]).
    pub async fn remove(&self, path: &Path) -> Result<(), WalError> {
        self.disk
            .remove(path)
            .await
            .map_err(io_err(path, "removing a WAL file"))
    }

    /// Renames a file of this directory (not yet durable: call [`WalDir::sync`]).
    pub async fn rename(&self, from: &Path, to: &Path) -> Result<(), WalError> {
        self.disk
            .rename(from, to)
            .await
            .map_err(io_err(from, "renaming a WAL file"))
    }

    /// The names in this directory, sorted.
    pub fn list(&self) -> Result<Vec<std::ffi::OsString>, WalError> {
        self.disk
            .list_dir(&self.path)
            .map_err(io_err(&self.path, "listing the WAL directory"))
    }
}

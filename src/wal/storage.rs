//! The storage underneath the log: glommio DMA files (O_DIRECT, io_uring) and the WAL
//! directory, wrapped so that every error names the file and the operation, and so that
//! tests and crash drills can make the disk fail on purpose ([`FaultPlan`]).
//!
//! Directory fsync goes through glommio's `Directory::sync` (an io_uring fdatasync on the
//! directory descriptor), so creating and removing segments never blocks the executor.

use std::cell::Cell;
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use glommio::io::{Directory, DmaBuffer, DmaFile, OpenOptions};

use super::segment::DMA_PROBE_FILE_NAME;
use super::{BLOCK_BYTES, WalError};

/// Failures to inject into the next writes and syncs, like a disk that starts failing.
/// Shared by every file of one log. All counters start disarmed.
#[derive(Debug, Default)]
pub struct FaultPlan {
    /// Fail the write that comes after this many more successful writes.
    fail_write_after: Cell<Option<u64>>,
    /// Fail the fdatasync that comes after this many more successful ones.
    fail_sync_after: Cell<Option<u64>>,
}

impl FaultPlan {
    /// Makes the write after `n` more successful writes fail with EIO.
    pub fn fail_write_after(&self, n: u64) {
        self.fail_write_after.set(Some(n));
    }

    /// Makes the fdatasync after `n` more successful ones fail with EIO.
    pub fn fail_sync_after(&self, n: u64) {
        self.fail_sync_after.set(Some(n));
    }

    fn trip(counter: &Cell<Option<u64>>) -> bool {
        match counter.get() {
            None => false,
            Some(0) => {
                counter.set(None);
                true
            }
            Some(n) => {
                counter.set(Some(n - 1));
                false
            }
        }
    }
}

/// An injected failure looks exactly like a dying disk's.
fn injected() -> io::Error {
    io::Error::from_raw_os_error(libc::EIO)
}

fn io_err(path: &Path, op: &'static str) -> impl FnOnce(glommio::GlommioError<()>) -> WalError {
    let path = path.to_path_buf();
    move |e| WalError::Io {
        path,
        op,
        source: e.into(),
    }
}

/// Makes glommio's poll-ring probe for the device under `dir` give the right answer on this
/// executor thread.
///
/// glommio decides once per thread and device whether io_uring polled I/O works, by reading
/// block 0 of the first DMA file opened there. If that file is empty (a segment just created),
/// the read succeeds without reaching the device, the device is taken as pollable, and on a
/// device without poll queues every later direct read fails with EOPNOTSUPP. Opening a file
/// whose first block holds data first makes the probe a real device read. Call this before
/// any other DMA file is opened on the executor; the log does so in [`super::Wal::open`] and
/// [`super::replay_dir`]. Done once per open, a short blocking write of one block.
pub async fn prime_dma_probe(dir: &Path) -> Result<(), WalError> {
    let path = dir.join(DMA_PROBE_FILE_NAME);
    let err = |op, source| WalError::Io {
        path: path.clone(),
        op,
        source,
    };
    std::fs::write(&path, [0x5A; BLOCK_BYTES]).map_err(|e| err("writing the DMA probe file", e))?;
    let file = DmaFile::open(&path)
        .await
        .map_err(|e| err("opening the DMA probe file", e.into()))?;
    let _ = file.close().await;
    std::fs::remove_file(&path).map_err(|e| err("removing the DMA probe file", e))
}

/// One open segment file.
pub struct SegmentFile {
    file: Rc<DmaFile>,
    path: PathBuf,
    faults: Rc<FaultPlan>,
}

impl SegmentFile {
    /// Opens an existing segment for reading.
    pub async fn open_read(path: &Path, faults: Rc<FaultPlan>) -> Result<SegmentFile, WalError> {
        let file = DmaFile::open(path)
            .await
            .map_err(io_err(path, "opening a WAL segment for reading"))?;
        Ok(SegmentFile {
            file: Rc::new(file),
            path: path.to_path_buf(),
            faults,
        })
    }

    /// Opens an existing segment for reading and writing (to truncate a torn tail).
    pub async fn open_write(path: &Path, faults: Rc<FaultPlan>) -> Result<SegmentFile, WalError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .dma_open(path)
            .await
            .map_err(io_err(path, "opening a WAL segment for writing"))?;
        Ok(SegmentFile {
            file: Rc::new(file),
            path: path.to_path_buf(),
            faults,
        })
    }

    /// Creates a new file, failing if it exists.
    pub async fn create(path: &Path, faults: Rc<FaultPlan>) -> Result<SegmentFile, WalError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .dma_open(path)
            .await
            .map_err(io_err(path, "creating a WAL segment"))?;
        Ok(SegmentFile {
            file: Rc::new(file),
            path: path.to_path_buf(),
            faults,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// An aligned buffer from glommio's I/O arena (memory registered once with io_uring).
    pub fn alloc(&self, size: usize) -> DmaBuffer {
        self.file.alloc_dma_buffer(size)
    }

    pub async fn size(&self) -> Result<u64, WalError> {
        self.file
            .file_size()
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
            .read_at_aligned(pos, len)
            .await
            .map_err(io_err(&self.path, "reading a WAL segment"))?;
        out.extend_from_slice(&r);
        Ok(r.len())
    }

    /// Writes all of `buf` at `pos`. A short write is an error: O_DIRECT writes of whole
    /// blocks are not expected to be short, and the log never retries a write.
    pub async fn write_all(&self, buf: DmaBuffer, pos: u64) -> Result<(), io::Error> {
        if FaultPlan::trip(&self.faults.fail_write_after) {
            return Err(injected());
        }
        let len = buf.len();
        let n = self
            .file
            .write_at(buf, pos)
            .await
            .map_err(io::Error::from)?;
        if n != len {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!("short write: {n} of {len} bytes at offset {pos}"),
            ));
        }
        Ok(())
    }

    /// `fdatasync`, returning how long it took.
    pub async fn sync(&self) -> Result<Duration, io::Error> {
        if FaultPlan::trip(&self.faults.fail_sync_after) {
            return Err(injected());
        }
        let start = Instant::now();
        self.file.fdatasync().await.map_err(io::Error::from)?;
        Ok(start.elapsed())
    }

    pub async fn pre_allocate(&self, size: u64) -> Result<(), WalError> {
        self.file
            .pre_allocate(size, false)
            .await
            .map_err(io_err(&self.path, "preallocating a WAL segment"))
    }

    pub async fn truncate(&self, size: u64) -> Result<(), WalError> {
        self.file
            .truncate(size)
            .await
            .map_err(io_err(&self.path, "truncating a WAL segment"))
    }

    /// Renames the file; `self.path` follows.
    pub async fn rename(&mut self, to: &Path) -> Result<(), WalError> {
        self.file
            .rename(to)
            .await
            .map_err(io_err(&self.path, "renaming a new WAL segment"))?;
        self.path = to.to_path_buf();
        Ok(())
    }

    pub async fn close(self) -> Result<(), WalError> {
        let path = self.path;
        match Rc::try_unwrap(self.file) {
            Ok(f) => f
                .close()
                .await
                .map_err(io_err(&path, "closing a WAL segment")),
            // Another reference still does I/O on it; it closes when that one drops.
            Err(_) => Ok(()),
        }
    }
}

/// The WAL directory, kept open to fsync it after segments are created or removed.
pub struct WalDir {
    dir: Directory,
    path: PathBuf,
}

impl WalDir {
    pub async fn open(path: &Path) -> Result<WalDir, WalError> {
        let dir = Directory::open(path)
            .await
            .map_err(io_err(path, "opening the WAL directory"))?;
        Ok(WalDir {
            dir,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub async fn sync(&self) -> Result<(), WalError> {
        self.dir
            .sync()
            .await
            .map_err(io_err(&self.path, "fsyncing the WAL directory"))
    }

    /// Removes a file in this directory (not yet durable: call [`WalDir::sync`]).
    pub fn remove(&self, path: &Path) -> Result<(), WalError> {
        std::fs::remove_file(path).map_err(|source| WalError::Io {
            path: path.to_path_buf(),
            op: "removing a WAL file",
            source,
        })
    }
}

//! The storage device under the WAL and the part files: one small set of file and directory
//! operations, done either on the real disk (glommio DMA files: O_DIRECT through io_uring) or
//! on a simulated disk ([`sim::SimDisk`]) that tests crash, tear and fail on purpose.
//!
//! Which question it answers: "what can the layers above assume the disk did?" Exactly what
//! POSIX promises, and no more:
//! - bytes written to a file are durable only after that file's `fdatasync` returned;
//! - a created, renamed or removed name is durable only after its directory was fsynced;
//! - a write that was not synced may be lost, kept, or kept in part (torn) by a crash;
//! - any operation may fail (EIO), and a failed `fdatasync` leaves the file's unsynced bytes
//!   undefined (the callers never retry it and then claim success: fsyncgate).
//!
//! [`Disk`] is a cheap handle (`Rc`); every file opened through it shares its [`FaultPlan`],
//! so a test can make "the disk" start failing after N more operations, whatever file they
//! touch. Errors are plain `io::Error`s; the callers add the path and the operation.
//!
//! Offsets and lengths of reads and writes are multiples of [`IO_ALIGN_BYTES`] (direct I/O
//! on the real disk needs that; the simulated disk checks it too, so a test catches an
//! unaligned access that production would hit).

pub mod sim;

use std::cell::Cell;
use std::ffi::OsString;
use std::io;
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use glommio::io::{Directory, DmaFile, OpenOptions, ReadResult};

pub use sim::SimDisk;

/// Alignment of every offset and length of file I/O, and of every I/O buffer's address.
pub const IO_ALIGN_BYTES: usize = 4096;

/// Failures to inject, like a disk that starts failing. Shared by every file of one [`Disk`].
/// All counters start disarmed.
#[derive(Debug, Default)]
pub struct FaultPlan {
    /// Fail the write that comes after this many more successful writes.
    fail_write_after: Cell<Option<u64>>,
    /// Fail the fdatasync (of a file or a directory) after this many more successful ones.
    fail_sync_after: Cell<Option<u64>>,
    /// Fail every operation (write, sync, create, rename, remove) after this many more.
    fail_any_after: Cell<Option<u64>>,
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

    /// Makes every mutating operation after `n` more successful ones fail with EIO, until
    /// [`FaultPlan::heal`].
    pub fn fail_any_after(&self, n: u64) {
        self.fail_any_after.set(Some(n));
    }

    /// Disarms every counter.
    pub fn heal(&self) {
        self.fail_write_after.set(None);
        self.fail_sync_after.set(None);
        self.fail_any_after.set(None);
    }

    fn trip_once(counter: &Cell<Option<u64>>) -> bool {
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

    /// `fail_any_after` stays tripped: a dead disk stays dead.
    fn trip_sticky(counter: &Cell<Option<u64>>) -> bool {
        match counter.get() {
            None => false,
            Some(0) => true,
            Some(n) => {
                counter.set(Some(n - 1));
                false
            }
        }
    }

    fn check_write(&self) -> io::Result<()> {
        if Self::trip_sticky(&self.fail_any_after) || Self::trip_once(&self.fail_write_after) {
            return Err(injected());
        }
        Ok(())
    }

    fn check_sync(&self) -> io::Result<()> {
        if Self::trip_sticky(&self.fail_any_after) || Self::trip_once(&self.fail_sync_after) {
            return Err(injected());
        }
        Ok(())
    }

    fn check_other(&self) -> io::Result<()> {
        if Self::trip_sticky(&self.fail_any_after) {
            return Err(injected());
        }
        Ok(())
    }
}

/// An injected failure looks exactly like a dying disk's.
fn injected() -> io::Error {
    io::Error::from(nix::errno::Errno::EIO)
}

fn check_aligned(what: &str, v: u64) -> io::Result<()> {
    if !v.is_multiple_of(IO_ALIGN_BYTES as u64) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{what} {v} is not a multiple of {IO_ALIGN_BYTES}"),
        ));
    }
    Ok(())
}

enum DiskKind {
    Real,
    Sim(SimDisk),
}

struct DiskInner {
    kind: DiskKind,
    faults: FaultPlan,
}

/// A handle on a storage device: the real one or a simulated one. Clone is cheap.
#[derive(Clone)]
pub struct Disk(Rc<DiskInner>);

impl Disk {
    /// The machine's disk, through glommio's direct I/O. Must be used on a glommio executor.
    pub fn real() -> Disk {
        Disk(Rc::new(DiskInner {
            kind: DiskKind::Real,
            faults: FaultPlan::default(),
        }))
    }

    /// A simulated disk (see [`sim`]).
    pub fn simulated(sim: SimDisk) -> Disk {
        Disk(Rc::new(DiskInner {
            kind: DiskKind::Sim(sim),
            faults: FaultPlan::default(),
        }))
    }

    /// The simulated disk under this handle, if it is one.
    pub fn sim(&self) -> Option<&SimDisk> {
        match &self.0.kind {
            DiskKind::Sim(s) => Some(s),
            DiskKind::Real => None,
        }
    }

    pub fn faults(&self) -> &FaultPlan {
        &self.0.faults
    }

    /// On a simulated disk that asks for it, lets other tasks run before an I/O, as waiting
    /// for a real device does.
    async fn sim_turn(&self) {
        if self.sim().is_some_and(|s| s.io_yields()) {
            futures_lite::future::yield_now().await;
        }
    }

    /// An aligned buffer of `size` bytes (zeroed), for [`DiskFile::write_at`].
    pub fn alloc(&self, size: usize) -> IoBuf {
        IoBuf::new(size)
    }

    /// Creates a directory and its missing parents. Not durable until the parent is synced
    /// ([`Disk::create_dir_all_durable`] does both).
    pub fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.faults().check_other()?;
        match &self.0.kind {
            DiskKind::Real => std::fs::create_dir_all(dir),
            DiskKind::Sim(s) => s.create_dir_all(dir),
        }
    }

    /// Creates a directory and its missing parents, and makes every new name durable.
    pub async fn create_dir_all_durable(&self, dir: &Path) -> io::Result<()> {
        let mut missing = Vec::new();
        let mut at = Some(dir);
        while let Some(d) = at {
            // A relative path's ancestors end in "", the working directory, which exists.
            if d.as_os_str().is_empty() || self.exists(d) {
                break;
            }
            missing.push(d.to_path_buf());
            at = d.parent();
        }
        self.create_dir_all(dir)?;
        for d in missing.iter().rev() {
            match d.parent() {
                Some(p) if p.as_os_str().is_empty() => self.sync_dir(Path::new(".")).await?,
                Some(p) => self.sync_dir(p).await?,
                None => {}
            }
        }
        Ok(())
    }

    pub fn exists(&self, path: &Path) -> bool {
        match &self.0.kind {
            DiskKind::Real => path.exists(),
            DiskKind::Sim(s) => s.exists(path),
        }
    }

    /// Names in a directory (files and directories), sorted. A missing directory is empty.
    pub fn list_dir(&self, dir: &Path) -> io::Result<Vec<OsString>> {
        let mut names = match &self.0.kind {
            DiskKind::Real => match std::fs::read_dir(dir) {
                Ok(rd) => rd
                    .map(|e| e.map(|e| e.file_name()))
                    .collect::<io::Result<Vec<_>>>()?,
                Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
                Err(e) => return Err(e),
            },
            DiskKind::Sim(s) => s.list_dir(dir),
        };
        names.sort();
        Ok(names)
    }

    /// Whether `path` names a directory.
    pub fn is_dir(&self, path: &Path) -> bool {
        match &self.0.kind {
            DiskKind::Real => path.is_dir(),
            DiskKind::Sim(s) => s.is_dir(path),
        }
    }

    /// Creates a new empty file for reading and writing; fails if the name exists.
    pub async fn create_new(&self, path: &Path) -> io::Result<DiskFile> {
        self.sim_turn().await;
        self.faults().check_other()?;
        let file = match &self.0.kind {
            DiskKind::Real => FileKind::Real(Rc::new(
                OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create_new(true)
                    .dma_open(path)
                    .await
                    .map_err(io::Error::from)?,
            )),
            DiskKind::Sim(s) => FileKind::Sim(s.create_new(path)?),
        };
        Ok(self.file(path, file))
    }

    /// Opens an existing file for reading.
    pub async fn open_read(&self, path: &Path) -> io::Result<DiskFile> {
        let file = match &self.0.kind {
            DiskKind::Real => {
                FileKind::Real(Rc::new(DmaFile::open(path).await.map_err(io::Error::from)?))
            }
            DiskKind::Sim(s) => FileKind::Sim(s.open(path)?),
        };
        Ok(self.file(path, file))
    }

    /// Opens an existing file for reading and writing.
    pub async fn open_write(&self, path: &Path) -> io::Result<DiskFile> {
        let file = match &self.0.kind {
            DiskKind::Real => FileKind::Real(Rc::new(
                OpenOptions::new()
                    .read(true)
                    .write(true)
                    .dma_open(path)
                    .await
                    .map_err(io::Error::from)?,
            )),
            DiskKind::Sim(s) => FileKind::Sim(s.open(path)?),
        };
        Ok(self.file(path, file))
    }

    fn file(&self, path: &Path, kind: FileKind) -> DiskFile {
        DiskFile {
            disk: self.clone(),
            path: path.to_path_buf(),
            kind,
        }
    }

    /// Renames a file, replacing `to` if it exists (atomic). Durable after
    /// [`Disk::sync_dir`] of the directories involved.
    pub async fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.sim_turn().await;
        self.faults().check_other()?;
        match &self.0.kind {
            DiskKind::Real => glommio::io::rename(from, to).await.map_err(io::Error::from),
            DiskKind::Sim(s) => s.rename(from, to),
        }
    }

    /// Removes a file. Durable after [`Disk::sync_dir`] of its directory. Readers that have it
    /// open keep reading it.
    pub async fn remove(&self, path: &Path) -> io::Result<()> {
        self.sim_turn().await;
        self.faults().check_other()?;
        match &self.0.kind {
            DiskKind::Real => std::fs::remove_file(path),
            DiskKind::Sim(s) => s.remove(path),
        }
    }

    /// Removes an empty directory. Durable after [`Disk::sync_dir`] of its parent.
    pub fn remove_dir(&self, path: &Path) -> io::Result<()> {
        self.faults().check_other()?;
        match &self.0.kind {
            DiskKind::Real => std::fs::remove_dir(path),
            DiskKind::Sim(s) => s.remove_dir(path),
        }
    }

    /// Makes the names in `dir` (creations, renames, removals) durable.
    pub async fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.sim_turn().await;
        self.faults().check_sync()?;
        match &self.0.kind {
            DiskKind::Real => {
                let d = Directory::open(dir).await.map_err(io::Error::from)?;
                d.sync().await.map_err(io::Error::from)?;
                d.close().await.map_err(io::Error::from)
            }
            DiskKind::Sim(s) => s.sync_dir(dir),
        }
    }
}

enum FileKind {
    Real(Rc<DmaFile>),
    Sim(sim::SimFile),
}

/// One open file of a [`Disk`].
pub struct DiskFile {
    disk: Disk,
    path: PathBuf,
    kind: FileKind,
}

impl DiskFile {
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn disk(&self) -> &Disk {
        &self.disk
    }

    /// Writes all of `buf` at `pos` (both aligned). A short write is an error: direct writes
    /// of whole blocks are not expected to be short, and nothing above retries a write.
    pub async fn write_at(&self, buf: &IoBuf, pos: u64) -> io::Result<()> {
        self.disk.sim_turn().await;
        check_aligned("write offset", pos)?;
        check_aligned("write length", buf.len() as u64)?;
        self.disk.faults().check_write()?;
        match &self.kind {
            FileKind::Real(f) => {
                let mut dma = f.alloc_dma_buffer(buf.len());
                dma.as_bytes_mut().copy_from_slice(buf);
                let n = f.write_at(dma, pos).await.map_err(io::Error::from)?;
                if n != buf.len() {
                    return Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        format!("short write: {n} of {} bytes at offset {pos}", buf.len()),
                    ));
                }
                Ok(())
            }
            FileKind::Sim(f) => f.write_at(buf, pos),
        }
    }

    /// Reads up to `len` bytes at `pos` (both aligned) into an aligned buffer; fewer at the
    /// end of the file.
    pub async fn read_at(&self, pos: u64, len: usize) -> io::Result<ReadBuf> {
        check_aligned("read offset", pos)?;
        check_aligned("read length", len as u64)?;
        match &self.kind {
            FileKind::Real(f) => Ok(ReadBuf::Dma(
                f.read_at_aligned(pos, len).await.map_err(io::Error::from)?,
            )),
            FileKind::Sim(f) => Ok(ReadBuf::Heap(f.read_at(pos, len)?)),
        }
    }

    /// `fdatasync`, returning how long it took.
    pub async fn fdatasync(&self) -> io::Result<Duration> {
        self.disk.sim_turn().await;
        self.disk.faults().check_sync()?;
        let start = Instant::now();
        match &self.kind {
            FileKind::Real(f) => f.fdatasync().await.map_err(io::Error::from)?,
            FileKind::Sim(f) => f.fdatasync()?,
        }
        Ok(start.elapsed())
    }

    pub async fn size(&self) -> io::Result<u64> {
        match &self.kind {
            FileKind::Real(f) => f.file_size().await.map_err(io::Error::from),
            FileKind::Sim(f) => Ok(f.size()),
        }
    }

    /// Reserves space for `size` bytes without changing the file's length.
    pub async fn pre_allocate(&self, size: u64) -> io::Result<()> {
        self.disk.faults().check_other()?;
        match &self.kind {
            FileKind::Real(f) => f.pre_allocate(size, true).await.map_err(io::Error::from),
            FileKind::Sim(f) => f.pre_allocate(size),
        }
    }

    /// Sets the file's length (a write: durable after [`DiskFile::fdatasync`]).
    pub async fn truncate(&self, size: u64) -> io::Result<()> {
        self.disk.faults().check_write()?;
        match &self.kind {
            FileKind::Real(f) => f.truncate(size).await.map_err(io::Error::from),
            FileKind::Sim(f) => f.truncate(size),
        }
    }

    pub async fn close(self) -> io::Result<()> {
        match self.kind {
            FileKind::Real(f) => match Rc::try_unwrap(f) {
                Ok(f) => f.close().await.map_err(io::Error::from),
                // Another reference still does I/O on it; it closes when that one drops.
                Err(_) => Ok(()),
            },
            FileKind::Sim(_) => Ok(()),
        }
    }
}

/// A zeroed, [`IO_ALIGN_BYTES`]-aligned heap buffer: what writes take and what the simulated
/// disk reads into. Dereferences to its bytes.
pub struct IoBuf {
    /// Backing store in whole aligned units, so the first byte is aligned.
    units: Vec<AlignedUnit>,
    len: usize,
}

#[derive(Clone, Copy)]
#[repr(C, align(4096))]
struct AlignedUnit([u8; IO_ALIGN_BYTES]);

impl IoBuf {
    pub fn new(len: usize) -> IoBuf {
        IoBuf {
            units: vec![AlignedUnit([0; IO_ALIGN_BYTES]); len.div_ceil(IO_ALIGN_BYTES)],
            len,
        }
    }

    /// A buffer holding `bytes`, zero-padded to a multiple of [`IO_ALIGN_BYTES`].
    pub fn padded_copy(bytes: &[u8]) -> IoBuf {
        let mut b = IoBuf::new(bytes.len().next_multiple_of(IO_ALIGN_BYTES));
        b[..bytes.len()].copy_from_slice(bytes);
        b
    }

    /// Capacity in bytes (a multiple of the alignment, at least `len`).
    pub fn capacity(&self) -> usize {
        self.units.len() * IO_ALIGN_BYTES
    }

    /// Changes the length within the capacity (new bytes keep what they held).
    pub fn set_len(&mut self, len: usize) {
        assert!(len <= self.capacity(), "IoBuf::set_len past its capacity");
        self.len = len;
    }

    /// Grows to at least `len` bytes of capacity and sets the length; contents are kept.
    pub fn resize(&mut self, len: usize) {
        let units = len.div_ceil(IO_ALIGN_BYTES);
        if units > self.units.len() {
            self.units.resize(units, AlignedUnit([0; IO_ALIGN_BYTES]));
        }
        self.len = len;
    }
}

impl Deref for IoBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: `units` is a contiguous, initialized array of plain bytes of at least
        // `len` bytes (`len <= capacity` is kept by every constructor and setter).
        unsafe { std::slice::from_raw_parts(self.units.as_ptr().cast::<u8>(), self.len) }
    }
}

impl DerefMut for IoBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `deref`, and `&mut self` makes the borrow unique.
        unsafe { std::slice::from_raw_parts_mut(self.units.as_mut_ptr().cast::<u8>(), self.len) }
    }
}

/// What a read returns: glommio's buffer on the real disk, a heap buffer on the simulated one.
/// Both start at an [`IO_ALIGN_BYTES`]-aligned address, so rkyv archives at 16-aligned file
/// offsets are aligned in memory.
pub enum ReadBuf {
    Dma(ReadResult),
    Heap(IoBuf),
}

impl Deref for ReadBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            ReadBuf::Dma(r) => r,
            ReadBuf::Heap(b) => b,
        }
    }
}

#[cfg(test)]
mod tests;

//! A simulated disk for crash tests: files and directories in memory, with the durable state
//! (what a power cut would leave) kept apart from the current one.
//!
//! The model is POSIX's promise and nothing kinder:
//! - a file's bytes become durable at its `fdatasync` (all of them, as they are then);
//! - a name (created, renamed, removed; files and directories) becomes durable when its
//!   parent directory is synced;
//! - [`SimDisk::crash`] throws away everything else: current state := durable state; files
//!   that no durable name reaches are gone. [`Crash::TearLastWrite`] keeps a prefix of the
//!   last unsynced write on top, the way a device that lost power mid-write does.
//!
//! Handles opened before a crash are dead after it (every operation fails with EIO), like
//! the file descriptors of a process that did not survive.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use super::{IO_ALIGN_BYTES, IoBuf};

/// What a crash keeps of unsynced writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Crash {
    /// Only what was synced survives.
    KeepSynced,
    /// What was synced, plus the first `bytes` of the last write that was not synced (if its
    /// file survives), as a device torn mid-write leaves it.
    TearLastWrite { bytes: usize },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Node {
    File(u64),
    Dir,
}

#[derive(Default)]
struct Inode {
    data: Vec<u8>,
    durable: Vec<u8>,
    /// Bytes reserved by `pre_allocate` (the file takes at least this much space).
    allocated: u64,
}

#[derive(Default)]
struct State {
    /// Current names (what the running process sees).
    names: BTreeMap<PathBuf, Node>,
    /// Durable names (what a crash leaves).
    durable_names: BTreeMap<PathBuf, Node>,
    inodes: HashMap<u64, Inode>,
    next_inode: u64,
    /// Bumped by every crash; handles of an older generation are dead.
    generation: u64,
    /// The last write not yet covered by an fdatasync of its file: inode, offset, bytes.
    last_unsynced_write: Option<(u64, u64, Vec<u8>)>,
    /// Count of mutating operations, for tests that crash "after operation N".
    ops: u64,
    /// Whether every I/O gives the executor a turn first, as a real device's does (tests of
    /// tasks that interleave around I/O); off by default, so crash sweeps keep their order.
    io_yields: bool,
    /// Bytes the device holds at most (`None`: unlimited). Files reached by a current name
    /// count with their length or their preallocation, whichever is larger; going past the
    /// capacity fails with ENOSPC, as a full file system does.
    capacity: Option<u64>,
}

/// The simulated device. Clone is cheap and shares the state.
#[derive(Clone, Default)]
pub struct SimDisk(Rc<RefCell<State>>);

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{}: no such file or directory", path.display()),
    )
}

fn no_space() -> io::Error {
    io::Error::from(nix::errno::Errno::ENOSPC)
}

impl State {
    fn used_bytes(&self) -> u64 {
        let mut seen = std::collections::HashSet::new();
        self.names
            .values()
            .filter_map(|n| match n {
                Node::File(i) if seen.insert(*i) => self.inodes.get(i),
                _ => None,
            })
            .map(|i| (i.data.len() as u64).max(i.allocated))
            .sum()
    }

    /// Fails with ENOSPC if inode `ino` growing to take `bytes` would pass the capacity.
    fn check_space(&self, ino: u64, bytes: u64) -> io::Result<()> {
        let Some(capacity) = self.capacity else {
            return Ok(());
        };
        let inode = &self.inodes[&ino];
        let now = (inode.data.len() as u64).max(inode.allocated);
        if bytes > now && self.used_bytes() + (bytes - now) > capacity {
            return Err(no_space());
        }
        Ok(())
    }
}

fn dead() -> io::Error {
    io::Error::from(nix::errno::Errno::EIO)
}

impl SimDisk {
    pub fn new() -> SimDisk {
        let disk = SimDisk::default();
        {
            let mut s = disk.0.borrow_mut();
            s.names.insert(PathBuf::from("/"), Node::Dir);
            s.durable_names.insert(PathBuf::from("/"), Node::Dir);
        }
        disk
    }

    /// Makes every I/O on this disk yield to other tasks first (see `State::io_yields`).
    pub fn set_io_yields(&self, on: bool) {
        self.0.borrow_mut().io_yields = on;
    }

    pub fn io_yields(&self) -> bool {
        self.0.borrow().io_yields
    }

    /// Limits the device to `bytes` (`None`: unlimited): later writes and preallocations that
    /// would need more fail with ENOSPC. Freeing space (removing files) lets them succeed.
    pub fn set_capacity(&self, bytes: Option<u64>) {
        self.0.borrow_mut().capacity = bytes;
    }

    /// Bytes used by the files current names reach.
    pub fn used_bytes(&self) -> u64 {
        self.0.borrow().used_bytes()
    }

    /// Mutating operations done so far (writes, syncs, creations, renames, removals).
    pub fn ops(&self) -> u64 {
        self.0.borrow().ops
    }

    /// Loses power: keeps what was durable (and, with [`Crash::TearLastWrite`], part of the
    /// last unsynced write). Open handles die.
    pub fn crash(&self, how: Crash) {
        let mut s = self.0.borrow_mut();
        s.generation += 1;
        let torn = s.last_unsynced_write.take();
        s.names = s.durable_names.clone();
        let live: std::collections::HashSet<u64> = s
            .names
            .values()
            .filter_map(|n| match n {
                Node::File(i) => Some(*i),
                Node::Dir => None,
            })
            .collect();
        s.inodes.retain(|i, _| live.contains(i));
        for inode in s.inodes.values_mut() {
            inode.data = inode.durable.clone();
        }
        if let (Crash::TearLastWrite { bytes }, Some((ino, pos, data))) = (how, torn)
            && let Some(inode) = s.inodes.get_mut(&ino)
        {
            let keep = bytes.min(data.len());
            let end = pos as usize + keep;
            if inode.data.len() < end {
                inode.data.resize(end, 0);
            }
            inode.data[pos as usize..end].copy_from_slice(&data[..keep]);
            inode.durable = inode.data.clone();
        }
    }

    /// The current bytes of a file (tests: to flip bits in, or to check).
    pub fn read_file(&self, path: &Path) -> io::Result<Vec<u8>> {
        let s = self.0.borrow();
        match s.names.get(path) {
            Some(Node::File(i)) => Ok(s.inodes[i].data.clone()),
            _ => Err(not_found(path)),
        }
    }

    /// Replaces a file's bytes, current and durable (tests: rot on a sealed file).
    pub fn corrupt_file(&self, path: &Path, edit: impl FnOnce(&mut Vec<u8>)) -> io::Result<()> {
        let mut s = self.0.borrow_mut();
        let Some(Node::File(i)) = s.names.get(path).copied() else {
            return Err(not_found(path));
        };
        let inode = s.inodes.get_mut(&i).expect("named inode exists");
        edit(&mut inode.data);
        inode.durable = inode.data.clone();
        Ok(())
    }

    fn parent_exists(s: &State, path: &Path) -> io::Result<()> {
        match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => match s.names.get(p) {
                Some(Node::Dir) => Ok(()),
                _ => Err(not_found(p)),
            },
            _ => Ok(()),
        }
    }

    pub(super) fn exists(&self, path: &Path) -> bool {
        self.0.borrow().names.contains_key(path)
    }

    pub(super) fn is_dir(&self, path: &Path) -> bool {
        self.0.borrow().names.get(path) == Some(&Node::Dir)
    }

    pub(super) fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut s = self.0.borrow_mut();
        s.ops += 1;
        for d in dir.ancestors().collect::<Vec<_>>().into_iter().rev() {
            if d.as_os_str().is_empty() {
                continue;
            }
            match s.names.get(d) {
                Some(Node::Dir) => {}
                Some(Node::File(_)) => {
                    return Err(io::Error::new(
                        io::ErrorKind::AlreadyExists,
                        format!("{} is a file", d.display()),
                    ));
                }
                None => {
                    s.names.insert(d.to_path_buf(), Node::Dir);
                }
            }
        }
        Ok(())
    }

    pub(super) fn list_dir(&self, dir: &Path) -> Vec<OsString> {
        let s = self.0.borrow();
        s.names
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name().map(|n| n.to_os_string()))
            .collect()
    }

    pub(super) fn create_new(&self, path: &Path) -> io::Result<SimFile> {
        let mut s = self.0.borrow_mut();
        s.ops += 1;
        Self::parent_exists(&s, path)?;
        if s.names.contains_key(path) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists", path.display()),
            ));
        }
        let ino = s.next_inode;
        s.next_inode += 1;
        s.inodes.insert(ino, Inode::default());
        s.names.insert(path.to_path_buf(), Node::File(ino));
        Ok(SimFile {
            disk: self.clone(),
            inode: ino,
            generation: s.generation,
        })
    }

    pub(super) fn open(&self, path: &Path) -> io::Result<SimFile> {
        let s = self.0.borrow();
        match s.names.get(path) {
            Some(Node::File(i)) => Ok(SimFile {
                disk: self.clone(),
                inode: *i,
                generation: s.generation,
            }),
            Some(Node::Dir) => Err(io::Error::new(
                io::ErrorKind::IsADirectory,
                format!("{} is a directory", path.display()),
            )),
            None => Err(not_found(path)),
        }
    }

    pub(super) fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut s = self.0.borrow_mut();
        s.ops += 1;
        Self::parent_exists(&s, to)?;
        let node = s.names.get(from).copied().ok_or_else(|| not_found(from))?;
        if node == Node::Dir {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "the simulated disk renames files only",
            ));
        }
        s.names.remove(from);
        s.names.insert(to.to_path_buf(), node);
        Ok(())
    }

    pub(super) fn remove(&self, path: &Path) -> io::Result<()> {
        let mut s = self.0.borrow_mut();
        s.ops += 1;
        match s.names.get(path) {
            Some(Node::File(_)) => {
                // The inode lives on while a durable name or an open handle reaches it; it is
                // collected at the next crash if no durable name does.
                s.names.remove(path);
                Ok(())
            }
            Some(Node::Dir) => Err(io::Error::new(
                io::ErrorKind::IsADirectory,
                format!("{} is a directory", path.display()),
            )),
            None => Err(not_found(path)),
        }
    }

    pub(super) fn remove_dir(&self, path: &Path) -> io::Result<()> {
        let mut s = self.0.borrow_mut();
        s.ops += 1;
        if s.names.get(path) != Some(&Node::Dir) {
            return Err(not_found(path));
        }
        if s.names.keys().any(|p| p.parent() == Some(path)) {
            return Err(io::Error::new(
                io::ErrorKind::DirectoryNotEmpty,
                format!("{} is not empty", path.display()),
            ));
        }
        s.names.remove(path);
        Ok(())
    }

    pub(super) fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut s = self.0.borrow_mut();
        s.ops += 1;
        if s.names.get(dir) != Some(&Node::Dir) {
            return Err(not_found(dir));
        }
        let in_dir = |p: &PathBuf| p.parent() == Some(dir);
        let current: Vec<(PathBuf, Node)> = s
            .names
            .iter()
            .filter(|(p, _)| in_dir(p))
            .map(|(p, n)| (p.clone(), *n))
            .collect();
        s.durable_names.retain(|p, _| !in_dir(p));
        s.durable_names.extend(current);
        Ok(())
    }
}

/// An open file of the simulated disk.
pub struct SimFile {
    disk: SimDisk,
    inode: u64,
    generation: u64,
}

impl SimFile {
    fn with<T>(&self, f: impl FnOnce(&mut State, u64) -> io::Result<T>) -> io::Result<T> {
        let mut s = self.disk.0.borrow_mut();
        if s.generation != self.generation || !s.inodes.contains_key(&self.inode) {
            return Err(dead());
        }
        f(&mut s, self.inode)
    }

    pub(super) fn write_at(&self, buf: &[u8], pos: u64) -> io::Result<()> {
        self.with(|s, ino| {
            s.ops += 1;
            s.check_space(ino, pos + buf.len() as u64)?;
            let inode = s.inodes.get_mut(&ino).expect("checked");
            let end = pos as usize + buf.len();
            if inode.data.len() < end {
                inode.data.resize(end, 0);
            }
            inode.data[pos as usize..end].copy_from_slice(buf);
            s.last_unsynced_write = Some((ino, pos, buf.to_vec()));
            Ok(())
        })
    }

    pub(super) fn read_at(&self, pos: u64, len: usize) -> io::Result<IoBuf> {
        self.with(|s, ino| {
            let data = &s.inodes[&ino].data;
            let start = (pos as usize).min(data.len());
            let end = (pos as usize + len).min(data.len());
            let mut out = IoBuf::new((end - start).next_multiple_of(IO_ALIGN_BYTES));
            out[..end - start].copy_from_slice(&data[start..end]);
            out.set_len(end - start);
            Ok(out)
        })
    }

    pub(super) fn fdatasync(&self) -> io::Result<()> {
        self.with(|s, ino| {
            s.ops += 1;
            let inode = s.inodes.get_mut(&ino).expect("checked");
            inode.durable = inode.data.clone();
            if s.last_unsynced_write.as_ref().is_some_and(|w| w.0 == ino) {
                s.last_unsynced_write = None;
            }
            Ok(())
        })
    }

    pub(super) fn size(&self) -> u64 {
        self.with(|s, ino| Ok(s.inodes[&ino].data.len() as u64))
            .unwrap_or(0)
    }

    /// Reserves `size` bytes for the file (its length stays as it is).
    pub(super) fn pre_allocate(&self, size: u64) -> io::Result<()> {
        // Not counted in `ops`: a reservation changes no bytes a crash could keep or lose.
        self.with(|s, ino| {
            s.check_space(ino, size)?;
            let inode = s.inodes.get_mut(&ino).expect("checked");
            inode.allocated = inode.allocated.max(size);
            Ok(())
        })
    }

    pub(super) fn truncate(&self, size: u64) -> io::Result<()> {
        self.with(|s, ino| {
            s.ops += 1;
            s.inodes
                .get_mut(&ino)
                .expect("checked")
                .data
                .resize(size as usize, 0);
            Ok(())
        })
    }
}

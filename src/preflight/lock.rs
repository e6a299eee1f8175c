//! One owner per data directory: an exclusive `flock(2)` on `<data>/shardlog.lock`, held for
//! the life of the process that writes the directory.
//!
//! Two servers on one data dir would each replay, append to and checkpoint the same WAL
//! segments and manifests, and the one that stops last would erase what the other
//! acknowledged. The lock makes the second one refuse to start instead.
//!
//! Why `flock` and not a PID file alone: the kernel drops a `flock` when the last descriptor
//! of its open file goes away, so a process killed with SIGKILL (or a host that lost power)
//! leaves a lock file behind but never a held lock; nothing has to guess whether a recorded
//! PID is still alive. The PID written into the file is only there to name the holder in the
//! second process's message and in `shardlog doctor`; it means something only while the lock
//! is held.
//!
//! The standard library opens every file with `O_CLOEXEC`, so a program the server might
//! start never inherits the lock. Over NFS, Linux emulates `flock` with byte-range locks,
//! which still exclude a second server on another host.
//!
//! [`holder`] (for `shardlog doctor`) takes a shared lock for an instant to see whether an
//! exclusive one is held; a `serve` starting in that same instant would be refused as if a
//! server held the dir, and can simply be started again.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{FlockArg, flock};

use crate::store::paths::LOCK_FILE;

/// Permissions of a lock file this process creates: readable by anyone who may look at the
/// data dir, so that an operator can `cat` the holder's PID.
const LOCK_FILE_MODE: u32 = 0o644;

/// Longest PID text read back from a lock file; anything longer is not a PID we wrote.
const PID_TEXT_BYTES_MAX: u64 = 32;

/// The held lock of one data directory; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct DataDirLock {
    file: File,
    path: PathBuf,
}

/// Why the data directory could not be locked.
#[derive(Debug)]
pub enum LockError {
    /// Another process holds the lock. `pid` is what it wrote into the file, if readable.
    Held { dir: PathBuf, pid: Option<u32> },
    /// The lock file could not be opened or created (most often: the directory is not
    /// writable by this user).
    Open {
        path: PathBuf,
        error: std::io::Error,
    },
    /// `flock` itself failed for another reason than contention.
    Flock {
        path: PathBuf,
        error: std::io::Error,
    },
    /// The PID could not be written into the lock file.
    WritePid {
        path: PathBuf,
        error: std::io::Error,
    },
}

impl std::fmt::Display for LockError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LockError::Held { dir, pid } => {
                let holder = match pid {
                    Some(pid) => format!("process {pid}"),
                    None => "another process (its PID is not written yet)".to_string(),
                };
                write!(
                    f,
                    "data dir {} is in use by {holder}, which holds {}: one server per data \
                     dir; stop that one first or give this one its own --data-dir",
                    dir.display(),
                    dir.join(LOCK_FILE).display()
                )
            }
            LockError::Open { path, error } => {
                write!(f, "cannot open the lock file {}: {error}", path.display())
            }
            LockError::Flock { path, error } => {
                write!(f, "cannot lock {}: {error}", path.display())
            }
            LockError::WritePid { path, error } => {
                write!(f, "cannot write the PID into {}: {error}", path.display())
            }
        }
    }
}

impl std::error::Error for LockError {}

impl DataDirLock {
    /// Takes the lock of `dir` without waiting, and writes this process's PID into the lock
    /// file. `dir` must exist. Creating the lock file is the only change made to `dir` when
    /// the lock is held by someone else.
    pub fn acquire(dir: &Path) -> Result<DataDirLock, LockError> {
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(LOCK_FILE_MODE)
            .open(&path)
            .map_err(|error| LockError::Open {
                path: path.clone(),
                error,
            })?;
        match flock(file.as_raw_fd(), FlockArg::LockExclusiveNonblock) {
            Ok(()) => {}
            Err(Errno::EWOULDBLOCK) => {
                return Err(LockError::Held {
                    dir: dir.to_path_buf(),
                    pid: read_pid(&mut file),
                });
            }
            Err(e) => {
                return Err(LockError::Flock {
                    path,
                    error: e.into(),
                });
            }
        }
        let write_pid = |file: &mut File| -> std::io::Result<()> {
            file.set_len(0)?;
            file.seek(SeekFrom::Start(0))?;
            writeln!(file, "{}", std::process::id())
        };
        match write_pid(&mut file) {
            Ok(()) => {}
            // The PID only tells a second process who holds the lock; the lock is the flock.
            // A full disk must not keep the server from starting (it serves read-only).
            Err(error) if crate::wal::is_no_space(&error) => {
                eprintln!(
                    "warning: no space to write the PID into {}: a second server will be \
                     refused without it",
                    path.display()
                );
            }
            Err(error) => {
                return Err(LockError::WritePid {
                    path: path.clone(),
                    error,
                });
            }
        }
        Ok(DataDirLock { file, path })
    }

    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for DataDirLock {
    fn drop(&mut self) {
        // The PID of a process that let go would only mislead a reader of the file; the lock
        // itself goes with the descriptor.
        let _ = self.file.set_len(0);
    }
}

/// Who holds the lock of `dir` right now, without taking it: `Ok(None)` when nobody does
/// (or there is no lock file), `Ok(Some(pid))` when a process does (`pid` as written, if
/// readable). Used by `shardlog doctor`, which must not create files in a live data dir.
pub fn holder(dir: &Path) -> Result<Option<Option<u32>>, LockError> {
    let path = dir.join(LOCK_FILE);
    let mut file = match OpenOptions::new().read(true).open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(LockError::Open { path, error }),
    };
    // A shared lock conflicts with the server's exclusive one, and is dropped at once.
    match flock(file.as_raw_fd(), FlockArg::LockSharedNonblock) {
        Ok(()) => {
            let _ = flock(file.as_raw_fd(), FlockArg::Unlock);
            Ok(None)
        }
        Err(Errno::EWOULDBLOCK) => Ok(Some(read_pid(&mut file))),
        Err(e) => Err(LockError::Flock {
            path,
            error: e.into(),
        }),
    }
}

/// The PID a holder wrote into its lock file, if the file holds one.
fn read_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.take(PID_TEXT_BYTES_MAX)
        .read_to_string(&mut text)
        .ok()?;
    text.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_with_the_holders_pid() {
        let dir = tempfile::tempdir().unwrap();
        let lock = DataDirLock::acquire(dir.path()).unwrap();
        let text = std::fs::read_to_string(lock.path()).unwrap();
        assert_eq!(text.trim(), std::process::id().to_string());
        // flock locks belong to the open file, so a second open in the same process
        // conflicts exactly as another process would.
        let err = DataDirLock::acquire(dir.path()).unwrap_err();
        match &err {
            LockError::Held { dir: d, pid } => {
                assert_eq!(d, dir.path());
                assert_eq!(*pid, Some(std::process::id()));
            }
            other => panic!("expected Held, got {other:?}"),
        }
        let msg = err.to_string();
        assert!(msg.contains(&dir.path().display().to_string()), "{msg}");
        assert!(msg.contains(&std::process::id().to_string()), "{msg}");
        assert_eq!(holder(dir.path()).unwrap(), Some(Some(std::process::id())));
        drop(lock);
        assert_eq!(holder(dir.path()).unwrap(), None);
        // Released: the next one takes it, although the file is still there.
        let again = DataDirLock::acquire(dir.path()).unwrap();
        assert_eq!(holder(dir.path()).unwrap(), Some(Some(std::process::id())));
        drop(again);
    }

    #[test]
    fn a_left_over_lock_file_does_not_block() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(LOCK_FILE), "4242\n").unwrap();
        assert_eq!(holder(dir.path()).unwrap(), None);
        let lock = DataDirLock::acquire(dir.path()).unwrap();
        let text = std::fs::read_to_string(lock.path()).unwrap();
        assert_eq!(text, format!("{}\n", std::process::id()), "PID replaced");
    }

    #[test]
    fn no_lock_file_means_no_holder_and_no_file_created() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(holder(dir.path()).unwrap(), None);
        assert!(!dir.path().join(LOCK_FILE).exists());
    }

    #[test]
    fn a_missing_dir_is_an_open_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let gone = dir.path().join("nope");
        let err = DataDirLock::acquire(&gone).unwrap_err();
        assert!(matches!(err, LockError::Open { .. }), "{err:?}");
        assert!(err.to_string().contains(LOCK_FILE), "{err}");
    }
}

//! What `serve` claims before it starts any executor: its data directory (created, resolved,
//! on a disk rather than in memory, and locked against a second server) and its listen
//! addresses (free of any other listener).
//!
//! Which question it answers: "may this process serve here, alone?" Each refusal is a typed
//! error whose message names the directory or the address, the key that set it and what to
//! do. The checks run on the main thread, in an order that touches as little as possible
//! when the answer is no: the directory is created if missing (a fresh install needs it) and
//! the lock file opened, but no other file of the directory is read or written until the lock
//! is held. `shardlog doctor` grades the same conditions through the same functions.
//!
//! - [`lock`]: the exclusive `flock` on `<data>/shardlog.lock`, and who holds it.
//! - [`addr`]: the plain-bind probe of every listen address.
//! - [`volatile`]: tmpfs and ramfs refused as a data directory.

pub mod addr;
pub mod lock;
pub mod volatile;

use std::path::PathBuf;

use crate::config::{Config, VolatilePolicy};
pub use addr::{AddrError, Listen, Proto};
pub use lock::{DataDirLock, LockError};
pub use volatile::VolatileDataDir;

/// Why `serve` refuses to start before any executor runs.
#[derive(Debug)]
pub enum PreflightError {
    CreateDir { dir: PathBuf, error: std::io::Error },
    ResolveDir { dir: PathBuf, error: std::io::Error },
    Volatile(VolatileDataDir),
    Lock(LockError),
    Addr(AddrError),
}

impl std::fmt::Display for PreflightError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PreflightError::CreateDir { dir, error } => write!(
                f,
                "cannot create data dir {} (--data-dir): {error}",
                dir.display()
            ),
            PreflightError::ResolveDir { dir, error } => write!(
                f,
                "cannot resolve data dir {} (--data-dir): {error}",
                dir.display()
            ),
            PreflightError::Volatile(e) => e.fmt(f),
            PreflightError::Lock(e) => e.fmt(f),
            PreflightError::Addr(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for PreflightError {}

/// Claims the data directory and the addresses of `config`, in this order: create the
/// directory, make its path absolute (in `config`), refuse memory file systems, take the
/// lock, probe every address. The returned lock must live as long as the server.
pub fn claim(config: &mut Config) -> Result<DataDirLock, PreflightError> {
    std::fs::create_dir_all(&config.data_dir).map_err(|error| PreflightError::CreateDir {
        dir: config.data_dir.clone(),
        error,
    })?;
    // An absolute path from here on: the WAL opens files relative to directories it holds
    // open, and messages should name the real place.
    config.data_dir =
        std::fs::canonicalize(&config.data_dir).map_err(|error| PreflightError::ResolveDir {
            dir: config.data_dir.clone(),
            error,
        })?;
    if config.volatile_data_dir == VolatilePolicy::Refuse {
        volatile::check(&config.data_dir).map_err(PreflightError::Volatile)?;
    }
    let lock = DataDirLock::acquire(&config.data_dir).map_err(PreflightError::Lock)?;
    addr::probe_all(&addr::listens(config)).map_err(PreflightError::Addr)?;
    Ok(lock)
}

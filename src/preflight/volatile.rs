//! A data directory in memory: tmpfs and ramfs keep nothing across a reboot, so a server
//! that acknowledges a line as durable there would be lying. Linux 6.6+ even accepts the
//! WAL's O_DIRECT opens on tmpfs, so without this check nothing would stop such a start.
//! `serve` refuses it unless `--allow-volatile-data-dir` says the operator means it (a
//! throw-away test server, a CI run).

use std::path::{Path, PathBuf};

/// `statfs` `f_type` of tmpfs (linux/magic.h `TMPFS_MAGIC`).
pub const TMPFS_MAGIC: u64 = 0x0102_1994;
/// `statfs` `f_type` of ramfs (linux/magic.h `RAMFS_MAGIC`).
pub const RAMFS_MAGIC: u64 = 0x8584_58f6;

/// What `statfs` says about the file system holding a directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsStat {
    /// The file system's magic number (`f_type`).
    pub magic: u64,
    /// Bytes free to unprivileged users.
    pub free_bytes: u64,
}

/// `statfs(2)` of `dir`.
pub fn statfs(dir: &Path) -> std::io::Result<FsStat> {
    let magic = nix::sys::statfs::statfs(dir)?.filesystem_type().0;
    // statvfs(3) counts free blocks in fragments, falling back to the block size (nix's
    // statfs does not show the fragment size).
    let st = nix::sys::statvfs::statvfs(dir)?;
    Ok(FsStat {
        // Magic numbers are 32-bit; the field's width and sign differ between architectures.
        magic: u64::from(magic as u32),
        free_bytes: st.blocks_available().saturating_mul(st.fragment_size()),
    })
}

/// The name of a memory file system's magic, or `None` for a file system on a device.
pub fn volatile_fs_name(magic: u64) -> Option<&'static str> {
    match magic {
        TMPFS_MAGIC => Some("tmpfs"),
        RAMFS_MAGIC => Some("ramfs"),
        _ => None,
    }
}

/// The data directory is on a memory file system and the operator did not allow it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolatileDataDir {
    pub dir: PathBuf,
    pub fs: &'static str,
}

impl std::fmt::Display for VolatileDataDir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "data dir {} is on {}: memory, not a disk. Every line acknowledged as durable \
             would be lost at reboot, and the WAL's O_DIRECT writes and fdatasync mean \
             nothing there (kernels before 6.6 refuse O_DIRECT on it outright). Put \
             --data-dir on ext4 or xfs, or pass --allow-volatile-data-dir for a throw-away \
             server",
            self.dir.display(),
            self.fs
        )
    }
}

impl std::error::Error for VolatileDataDir {}

/// Refuses a data dir on tmpfs or ramfs. A directory that cannot be `statfs`ed passes: the
/// WAL's own opens report what is wrong with it.
pub fn check(dir: &Path) -> Result<(), VolatileDataDir> {
    match statfs(dir).map(|st| volatile_fs_name(st.magic)) {
        Ok(Some(fs)) => Err(VolatileDataDir {
            dir: dir.to_path_buf(),
            fs,
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_file_systems_are_named() {
        assert_eq!(volatile_fs_name(TMPFS_MAGIC), Some("tmpfs"));
        assert_eq!(volatile_fs_name(RAMFS_MAGIC), Some("ramfs"));
        assert_eq!(volatile_fs_name(0xEF53), None);
        let e = VolatileDataDir {
            dir: "/dev/shm/x".into(),
            fs: "tmpfs",
        };
        let msg = e.to_string();
        for needle in [
            "/dev/shm/x",
            "tmpfs",
            "O_DIRECT",
            "--allow-volatile-data-dir",
        ] {
            assert!(msg.contains(needle), "{needle}: {msg}");
        }
    }

    #[test]
    fn the_build_dir_is_not_memory_and_dev_shm_is_when_tmpfs() {
        let target = Path::new(env!("CARGO_MANIFEST_DIR"));
        let st = statfs(target).unwrap();
        if volatile_fs_name(st.magic).is_none() {
            check(target).unwrap();
        }
        let shm = Path::new("/dev/shm");
        if let Ok(st) = statfs(shm)
            && st.magic == TMPFS_MAGIC
        {
            assert!(check(shm).unwrap_err().to_string().contains("tmpfs"));
        }
    }
}

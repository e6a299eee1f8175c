//! A directory on tmpfs for the tests of what `serve` and `doctor` say about memory file
//! systems: a tmpfs mounted for the test when it runs as root, else `/dev/shm` when that is
//! tmpfs. When neither is possible the test cannot check anything: [`Tmpfs::find`] applies
//! the rule of [`super::tools::missing`] (a failure under CI, a loud skip elsewhere).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::TestDir;
use super::tools::missing;

/// `statfs` magic of tmpfs (linux/magic.h).
pub const TMPFS_MAGIC: u64 = 0x0102_1994;

/// Size of the tmpfs mounted for a test: the server's WAL preallocates a segment per shard.
const TMPFS_SIZE: &str = "size=256m";

/// A data directory path on tmpfs; unmounted or removed on drop.
pub struct Tmpfs {
    pub path: PathBuf,
    pub mounted: bool,
}

impl Tmpfs {
    /// A tmpfs data dir (not created yet), or `None` after the skip rule.
    pub fn find(dir: &TestDir) -> Option<Tmpfs> {
        let mountpoint = dir.path().join("tmpfs");
        std::fs::create_dir_all(&mountpoint).ok()?;
        // Only root may mount; anyone else would just get an error from mount(8).
        let root = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("Uid:"))
                    .map(|l| l.split_whitespace().nth(1) == Some("0"))
            })
            .unwrap_or(false);
        let mounted = root
            && Command::new("mount")
                .args(["-t", "tmpfs", "-o", TMPFS_SIZE, "shardlog-test"])
                .arg(&mountpoint)
                .output()
                .is_ok_and(|o| o.status.success());
        if mounted {
            return Some(Tmpfs {
                path: mountpoint.join("data"),
                mounted: true,
            });
        }
        let shm = Path::new("/dev/shm");
        let is_tmpfs =
            shardlog::preflight::volatile::statfs(shm).is_ok_and(|st| st.magic == TMPFS_MAGIC);
        if is_tmpfs {
            return Some(Tmpfs {
                path: shm.join(format!(
                    "shardlog-test-{}-{}",
                    std::process::id(),
                    dir.path().file_name().unwrap().to_string_lossy()
                )),
                mounted: false,
            });
        }
        missing("no tmpfs: not root (cannot mount one) and /dev/shm is not tmpfs");
        None
    }

    pub fn path_arg(&self) -> String {
        self.path.to_str().expect("UTF-8 test path").to_string()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        if self.mounted {
            let _ = Command::new("umount")
                .arg(self.path.parent().unwrap())
                .status();
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

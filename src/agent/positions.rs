//! The positions file: for every file being shipped, how far its lines are safe (sent and
//! acknowledged, or written to the spool), keyed by the file's identity, (device, inode),
//! so that a rename does not lose the place and a new file at the same path starts afresh.
//!
//! Format (text, so that an operator can read and edit it):
//!
//! ```text
//! shardlog-agent-positions 1
//! <dev> <inode> <offset> <path>
//! ...
//! ```
//!
//! The path is the one the file was found under (its `filename` label), kept for humans and
//! for finding a file that was renamed while the agent was down; it is the rest of the line,
//! so it may hold spaces (a path with a newline is not tracked at all, see `tail.rs`).
//!
//! Writes are atomic: the whole file goes to `<file>.tmp`, which is fsynced and renamed over
//! the old one, then the directory is fsynced, so a crash leaves either the old or the new
//! file, never a torn one. What the disk is assumed to do: rename is atomic, and a rename is
//! durable once its directory is fsynced (POSIX and every Linux file system we support).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The first line of the file: a name and a version, so that a later format can tell.
const HEADER: &str = "shardlog-agent-positions 1";

/// A file's identity: it survives renames and tells a recreated path from the old file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FileId {
    pub dev: u64,
    pub inode: u64,
}

impl FileId {
    pub fn of(meta: &std::fs::Metadata) -> FileId {
        use std::os::unix::fs::MetadataExt;
        FileId {
            dev: meta.dev(),
            inode: meta.ino(),
        }
    }
}

/// How far one file is safe, and the path it is shipped under.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Position {
    pub offset: u64,
    pub path: PathBuf,
}

/// Every tracked file's position.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Positions {
    pub files: BTreeMap<FileId, Position>,
}

impl Positions {
    /// Reads the file at `path`; a missing file is an empty set (a first start). A file that
    /// does not parse is an error naming the line: starting from zero would ship everything
    /// again, so the operator decides.
    pub fn load(path: &Path) -> Result<Positions, String> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Positions::default()),
            Err(e) => {
                return Err(format!(
                    "cannot read positions file {}: {e}",
                    path.display()
                ));
            }
        };
        Positions::parse(&text).map_err(|e| format!("positions file {}: {e}", path.display()))
    }

    fn parse(text: &str) -> Result<Positions, String> {
        let mut lines = text.lines();
        if lines.next() != Some(HEADER) {
            return Err(format!("the first line is not `{HEADER}`"));
        }
        let mut positions = Positions::default();
        for (i, line) in lines.enumerate() {
            let bad = || {
                format!(
                    "line {} `{line}` is not `<dev> <inode> <offset> <path>`",
                    i + 2
                )
            };
            let mut parts = line.splitn(4, ' ');
            let mut number = || -> Result<u64, String> {
                parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)
            };
            let (dev, inode, offset) = (number()?, number()?, number()?);
            let path = parts.next().filter(|p| !p.is_empty()).ok_or_else(bad)?;
            positions.files.insert(
                FileId { dev, inode },
                Position {
                    offset,
                    path: PathBuf::from(path),
                },
            );
        }
        Ok(positions)
    }

    fn render(&self) -> String {
        let mut text = String::with_capacity(64 * (self.files.len() + 1));
        text.push_str(HEADER);
        text.push('\n');
        for (id, p) in &self.files {
            let path = p.path.to_string_lossy();
            debug_assert!(
                !path.contains('\n'),
                "paths with newlines are never tracked"
            );
            text.push_str(&format!("{} {} {} {}\n", id.dev, id.inode, p.offset, path));
        }
        text
    }

    /// Writes the set to `path` atomically and durably (see the module doc).
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        write_atomically(path, self.render().as_bytes())
    }
}

/// Writes `bytes` to `path` by way of a fsynced temporary file and a rename, then fsyncs the
/// directory so that the rename itself survives a crash.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = PathBuf::from(tmp_name);
    {
        let mut file = File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// Makes the names in `dir` durable (created, renamed or removed entries).
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Positions {
        let mut p = Positions::default();
        p.files.insert(
            FileId {
                dev: 2049,
                inode: 131,
            },
            Position {
                offset: 4096,
                path: "/var/log/app/a.log".into(),
            },
        );
        p.files.insert(
            FileId {
                dev: 2049,
                inode: 7,
            },
            Position {
                offset: 0,
                path: "/var/log/my app/with spaces.log".into(),
            },
        );
        p
    }

    #[test]
    fn round_trip_keeps_every_field() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("positions");
        assert_eq!(Positions::load(&path).unwrap(), Positions::default());
        let p = sample();
        p.save(&path).unwrap();
        assert_eq!(Positions::load(&path).unwrap(), p);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("shardlog-agent-positions 1\n2049 7 0 /var/log/my app"));
    }

    #[test]
    fn save_replaces_whole_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("positions");
        sample().save(&path).unwrap();
        let mut fewer = Positions::default();
        fewer.files.insert(
            FileId { dev: 1, inode: 2 },
            Position {
                offset: 3,
                path: "/x".into(),
            },
        );
        fewer.save(&path).unwrap();
        assert_eq!(Positions::load(&path).unwrap(), fewer);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("positions")]);
    }

    #[test]
    fn a_left_over_temporary_does_not_count() {
        // A crash between writing the temporary and the rename leaves the old file in force.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("positions");
        sample().save(&path).unwrap();
        std::fs::write(
            dir.path().join("positions.tmp"),
            "shardlog-agent-positions 1\n1 1 1",
        )
        .unwrap();
        assert_eq!(Positions::load(&path).unwrap(), sample());
        sample().save(&path).unwrap();
    }

    #[test]
    fn damaged_files_are_refused_with_the_line() {
        for (text, word) in [
            ("", "first line"),
            ("shardlog-agent-positions 2\n", "first line"),
            ("shardlog-agent-positions 1\n1 2 x /a\n", "line 2"),
            ("shardlog-agent-positions 1\n1 2 3\n", "line 2"),
        ] {
            let e = Positions::parse(text).unwrap_err();
            assert!(e.contains(word), "{text:?}: {e}");
        }
    }
}

//! Checks of the data directory: that it can be created and written, that no other server
//! holds it, which file system holds it, that O_DIRECT writes and reads round-trip there,
//! what one fdatasync costs, and free space.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

use super::host::bytes;
use super::report::Finding;
use crate::config::{Config, VolatilePolicy};
use crate::preflight::lock;
use crate::preflight::volatile::{RAMFS_MAGIC, TMPFS_MAGIC};

/// Size and alignment of the probe write: the WAL's block size, which direct I/O needs on
/// every common device.
pub const PROBE_BLOCK_BYTES: usize = 4096;
/// Write + fdatasync rounds timed for the fsync figure; the median of this many is stable
/// enough to tell an NVMe with power-loss protection from a disk that really flushes.
pub const FSYNC_ROUNDS: usize = 16;
/// A median fdatasync above this cannot meet a push acknowledgement p99 of 2 ms: every
/// acknowledgement waits for at least one.
pub const FSYNC_SLOW: Duration = Duration::from_millis(2);
/// Below this much free space, the fix is urgent: a 50 MB/s firehose fills it in about five
/// minutes.
pub const DISK_FREE_BYTES_WARN: u64 = 16 << 30;
/// Name of the probe file, removed after the check.
pub const PROBE_FILE_NAME: &str = ".shardlog-doctor-probe";

/// How a file system suits the WAL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsKind {
    /// Local, O_DIRECT-capable, journaled: what the WAL is tested on.
    Good,
    /// Memory: O_DIRECT may be accepted (Linux 6.6+) but nothing survives a reboot.
    Volatile,
    /// Works with O_DIRECT, with a caveat worth knowing.
    Caveat(&'static str),
    /// Over the network or through userspace: fsync means what the server says it means.
    Remote,
    Unknown,
}

/// Names a `statfs` `f_type` magic number (linux/magic.h) and says how it suits the WAL.
pub fn fs_name(magic: u64) -> (&'static str, FsKind) {
    match magic {
        0xEF53 => ("ext4", FsKind::Good),
        0x5846_5342 => ("xfs", FsKind::Good),
        TMPFS_MAGIC => ("tmpfs", FsKind::Volatile),
        RAMFS_MAGIC => ("ramfs", FsKind::Volatile),
        0x9123_683E => (
            "btrfs",
            FsKind::Caveat(
                "copy-on-write: direct writes into preallocated segments still allocate, and \
                 data checksums add latency; use `chattr +C` on the data dir or ext4/xfs",
            ),
        ),
        0x794c_7630 => (
            "overlayfs",
            FsKind::Caveat(
                "a container's layer: direct I/O passes through to the upper file system only \
                 on recent kernels, and the data vanishes with the container; mount a volume",
            ),
        ),
        0x2fc1_2fc1 => (
            "zfs",
            FsKind::Caveat(
                "OpenZFS before 2.3 accepts O_DIRECT but buffers it anyway; put the WAL on a \
                 dataset with sync=standard and a fast SLOG",
            ),
        ),
        0xF2F5_2010 => (
            "f2fs",
            FsKind::Caveat("log-structured: fine on flash, less tested than ext4/xfs"),
        ),
        0xca45_1a4e => (
            "bcachefs",
            FsKind::Caveat("young file system: less tested than ext4/xfs"),
        ),
        0x6969 => ("nfs", FsKind::Remote),
        0xFF53_4D42 | 0xFE53_4D42 => ("cifs/smb", FsKind::Remote),
        0x6573_5546 => ("fuse", FsKind::Remote),
        0x0102_1997 => ("9p", FsKind::Remote),
        _ => ("unknown", FsKind::Unknown),
    }
}

pub fn classify_fs(dir: &Path, magic: u64, volatile: VolatilePolicy) -> Finding {
    let (name, kind) = fs_name(magic);
    let dir = dir.display();
    let move_it = "put --data-dir on ext4 or xfs on a local disk, e.g.\n\
                   mkfs.xfs /dev/nvme0n1 && mount -o noatime /dev/nvme0n1 /var/lib/shardlog";
    match kind {
        FsKind::Good => Finding::ok("filesystem", format!("{dir} is on {name}")),
        FsKind::Volatile if volatile == VolatilePolicy::Allow => Finding::warn(
            "filesystem",
            format!(
                "{dir} is on {name}, allowed by --allow-volatile-data-dir: every acknowledged \
                 line is lost at reboot"
            ),
            move_it,
        ),
        FsKind::Volatile => Finding::fail(
            "filesystem",
            format!(
                "{dir} is on {name}: memory, not a disk; every acknowledged line would be lost \
                 at reboot (older kernels also refuse O_DIRECT there), so serve refuses it"
            ),
            format!("{move_it}\nor, for a throw-away server, pass --allow-volatile-data-dir"),
        ),
        FsKind::Caveat(why) => {
            Finding::warn("filesystem", format!("{dir} is on {name}: {why}"), move_it)
        }
        FsKind::Remote => Finding::warn(
            "filesystem",
            format!(
                "{dir} is on {name}: a network or userspace file system; fsync latency is a \
                 round trip and its durability is the server's promise, not the disk's"
            ),
            move_it,
        ),
        FsKind::Unknown => Finding::warn(
            "filesystem",
            format!("{dir} is on a file system shardlog does not know (statfs magic {magic:#x})"),
            move_it,
        ),
    }
}

/// `statfs` of `dir`: (file system magic, bytes free to unprivileged users).
pub fn statfs(dir: &Path) -> std::io::Result<(u64, u64)> {
    crate::preflight::volatile::statfs(dir).map(|st| (st.magic, st.free_bytes))
}

/// What the O_DIRECT probe measured.
#[derive(Debug, Clone)]
pub struct DirectProbe {
    /// Median of [`FSYNC_ROUNDS`] rounds of one 4 KiB direct write plus fdatasync.
    pub fsync_median: Duration,
    pub fsync_max: Duration,
}

/// Writes, syncs and reads back 4 KiB blocks with O_DIRECT in `dir`, then removes the file.
/// The error says which step failed.
pub fn probe_direct_io(dir: &Path) -> Result<DirectProbe, String> {
    let path = dir.join(PROBE_FILE_NAME);
    let result = direct_round_trip(&path);
    let _ = std::fs::remove_file(&path);
    result
}

fn direct_round_trip(path: &Path) -> Result<DirectProbe, String> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(nix::fcntl::OFlag::O_DIRECT.bits())
        .open(path)
        .map_err(|e| format!("open with O_DIRECT: {e}"))?;
    // Direct I/O needs a block-aligned buffer: take an aligned window of a larger one.
    let mut out = vec![0u8; 2 * PROBE_BLOCK_BYTES];
    let mut back = vec![0u8; 2 * PROBE_BLOCK_BYTES];
    let out = aligned(&mut out);
    let back = aligned(&mut back);
    let mut times = Vec::with_capacity(FSYNC_ROUNDS);
    for round in 0..FSYNC_ROUNDS {
        fill(out, round);
        let offset = (round * PROBE_BLOCK_BYTES) as u64;
        let start = Instant::now();
        write_block(&file, out, offset)?;
        file.sync_data().map_err(|e| format!("fdatasync: {e}"))?;
        times.push(start.elapsed());
        let n = file
            .read_at(back, offset)
            .map_err(|e| format!("direct read of 4 KiB: {e}"))?;
        if n != PROBE_BLOCK_BYTES || back != out {
            return Err(format!(
                "a direct read returned {n} bytes that differ from what was written"
            ));
        }
    }
    times.sort_unstable();
    Ok(DirectProbe {
        fsync_median: times[times.len() / 2],
        fsync_max: times[times.len() - 1],
    })
}

fn aligned(buf: &mut [u8]) -> &mut [u8] {
    let skip = buf.as_ptr().align_offset(PROBE_BLOCK_BYTES);
    &mut buf[skip..skip + PROBE_BLOCK_BYTES]
}

fn fill(block: &mut [u8], round: usize) {
    for (i, b) in block.iter_mut().enumerate() {
        *b = (i.wrapping_mul(31) ^ round) as u8;
    }
}

fn write_block(file: &File, block: &[u8], offset: u64) -> Result<(), String> {
    let n = file
        .write_at(block, offset)
        .map_err(|e| format!("direct write of 4 KiB: {e}"))?;
    if n != block.len() {
        return Err(format!("direct write of 4 KiB wrote {n} bytes"));
    }
    Ok(())
}

pub fn classify_direct_io(dir: &Path, probe: &Result<DirectProbe, String>) -> Vec<Finding> {
    match probe {
        Ok(p) => {
            let ms = |d: Duration| d.as_secs_f64() * 1e3;
            let timing = format!(
                "4 KiB write + fdatasync: median {:.2} ms, max {:.2} ms over {FSYNC_ROUNDS}",
                ms(p.fsync_median),
                ms(p.fsync_max)
            );
            let fsync = if p.fsync_median > FSYNC_SLOW {
                Finding::warn(
                    "fsync",
                    format!(
                        "{timing}: slower than {} ms, so every push acknowledgement waits at \
                         least that long",
                        FSYNC_SLOW.as_millis()
                    ),
                    "put the WAL on an NVMe with power-loss protection; measure with\n\
                     fio --name=wal --filename=<data-dir>/fio.tmp --size=256m --bs=4k \
                     --rw=write --ioengine=io_uring --direct=1 --fdatasync=1 --runtime=20 \
                     --time_based  (tuning/README.md, \"What fsync costs\")",
                )
            } else {
                Finding::ok("fsync", timing)
            };
            vec![
                Finding::ok("O_DIRECT", "4 KiB aligned writes and reads round-trip"),
                fsync,
            ]
        }
        Err(e) => vec![Finding::fail(
            "O_DIRECT",
            format!("in {}: {e}", dir.display()),
            "the WAL opens every segment with O_DIRECT: use ext4 or xfs on a local disk, \
             writable by the service user",
        )],
    }
}

pub fn classify_free(free: u64, cores: usize, segment_bytes: u64) -> Finding {
    // Each shard's WAL holds its active segment and the next one, preallocated ahead of need;
    // with less, `serve` starts but refuses writes (read-only, or disk full) until there is.
    let floor = 2 * cores as u64 * segment_bytes;
    let detail = format!("{} free", bytes(free));
    if free < floor {
        Finding::fail(
            "disk space",
            format!(
                "{detail}: {cores} shard(s) each need a {} WAL segment and the next one \
                 preallocated to take writes; serve would start read-only",
                bytes(segment_bytes)
            ),
            "free space on the data dir's file system, or lower --wal-segment-bytes-max",
        )
    } else if free < DISK_FREE_BYTES_WARN {
        Finding::warn(
            "disk space",
            format!(
                "{detail}: under {}, a busy server fills this in minutes",
                bytes(DISK_FREE_BYTES_WARN)
            ),
            "give the data dir its own large file system",
        )
    } else {
        Finding::ok("disk space", detail)
    }
}

/// Whether this user may create files in `dir` (`access(2)` with W_OK and X_OK).
fn writable(dir: &Path) -> std::io::Result<()> {
    nix::unistd::access(
        dir,
        nix::unistd::AccessFlags::W_OK | nix::unistd::AccessFlags::X_OK,
    )
    .map_err(std::io::Error::from)
}

/// Who holds the data dir's lock, as a finding; `true` in the second place when a server
/// holds it (the probes that write files then stay out of its way).
pub fn classify_lock(
    dir: &Path,
    holder: Result<Option<Option<u32>>, lock::LockError>,
) -> (Finding, bool) {
    let lock_path = dir.join(crate::store::paths::LOCK_FILE);
    match holder {
        Ok(None) => (
            Finding::ok(
                "data dir lock",
                format!("no other process holds {}", lock_path.display()),
            ),
            false,
        ),
        Ok(Some(pid)) => {
            let who = pid.map_or("a process whose PID is not written yet".to_string(), |p| {
                format!("process {p}")
            });
            let stop = pid.map_or(String::new(), |p| format!(", or `kill -TERM {p}`"));
            (
                Finding::fail(
                    "data dir lock",
                    format!(
                        "{} is held by {who} ({}): a second serve on this data dir refuses to \
                         start",
                        dir.display(),
                        lock_path.display()
                    ),
                    format!(
                        "stop the server that runs there first (`systemctl stop shardlog`{stop}), \
                         or give this one its own --data-dir"
                    ),
                ),
                true,
            )
        }
        Err(e) => (
            Finding::fail(
                "data dir lock",
                e.to_string(),
                format!(
                    "make {} readable and writable by the service user",
                    lock_path.display()
                ),
            ),
            false,
        ),
    }
}

/// All checks of the data directory, in order; stops early when it cannot be created or
/// written.
pub fn check_data_dir(config: &Config) -> Vec<Finding> {
    let dir = config.data_dir.as_path();
    if let Err(e) = std::fs::create_dir_all(dir) {
        return vec![Finding::fail(
            "data dir",
            format!("cannot create {}: {e}", dir.display()),
            format!(
                "mkdir -p {0} && chown shardlog: {0}  (or set --data-dir)",
                dir.display()
            ),
        )];
    }
    if let Err(e) = writable(dir) {
        return vec![Finding::fail(
            "data dir",
            format!(
                "{} is not writable by this user: {e}; serve could not take its lock or \
                 create its WAL",
                dir.display()
            ),
            format!(
                "chown -R shardlog: {}  (the user serve runs as), or set --data-dir",
                dir.display()
            ),
        )];
    }
    let mut out = vec![Finding::ok(
        "data dir",
        format!("{} exists and is writable", dir.display()),
    )];
    let (lock_finding, held) = classify_lock(dir, lock::holder(dir));
    out.push(lock_finding);
    let free = match statfs(dir) {
        Ok((magic, free)) => {
            out.push(classify_fs(dir, magic, config.volatile_data_dir));
            Some(free)
        }
        Err(e) => {
            out.push(Finding::warn(
                "filesystem",
                format!("statfs {}: {e}", dir.display()),
                "check that the data dir is on a mounted local file system",
            ));
            None
        }
    };
    if held {
        out.push(Finding::skip(
            "O_DIRECT",
            "not probed: a running server owns the data dir",
        ));
    } else {
        out.extend(classify_direct_io(dir, &probe_direct_io(dir)));
    }
    if let Some(free) = free {
        out.push(classify_free(
            free,
            config.cores,
            config.wal_segment_bytes_max,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::report::Status;
    use super::*;

    #[test]
    fn file_system_names_and_kinds() {
        assert_eq!(fs_name(0xEF53), ("ext4", FsKind::Good));
        assert_eq!(fs_name(0x5846_5342).1, FsKind::Good);
        assert_eq!(fs_name(0x0102_1994), ("tmpfs", FsKind::Volatile));
        assert!(matches!(fs_name(0x794c_7630).1, FsKind::Caveat(_)));
        assert_eq!(fs_name(0x6969).1, FsKind::Remote);
        assert_eq!(fs_name(0x1234).1, FsKind::Unknown);
        let dir = Path::new("/dev/shm/x");
        let refuse = VolatilePolicy::Refuse;
        let f = classify_fs(dir, 0x0102_1994, refuse);
        assert_eq!(f.status, Status::Fail);
        assert!(f.detail.contains("tmpfs") && f.detail.contains("/dev/shm/x"));
        let fix = f.fix.unwrap();
        assert!(fix.contains("ext4 or xfs") && fix.contains("--allow-volatile-data-dir"));
        // Allowed by the flag: serve starts, so it is a warning.
        let f = classify_fs(dir, RAMFS_MAGIC, VolatilePolicy::Allow);
        assert_eq!(f.status, Status::Warn);
        assert!(f.detail.contains("ramfs"), "{}", f.detail);
        assert_eq!(classify_fs(dir, 0xEF53, refuse).status, Status::Ok);
        assert!(classify_fs(dir, 0x1234, refuse).detail.contains("0x1234"));
    }

    #[test]
    fn lock_classification() {
        let dir = Path::new("/var/lib/shardlog");
        let (f, held) = classify_lock(dir, Ok(None));
        assert_eq!((f.status, held), (Status::Ok, false));
        let (f, held) = classify_lock(dir, Ok(Some(Some(4242))));
        assert_eq!((f.status, held), (Status::Fail, true));
        assert!(f.detail.contains("process 4242") && f.detail.contains("shardlog.lock"));
        assert!(f.fix.unwrap().contains("kill -TERM 4242"));
        let (f, _) = classify_lock(dir, Ok(Some(None)));
        assert!(f.detail.contains("not written yet"), "{}", f.detail);
    }

    #[test]
    fn a_held_lock_fails_and_keeps_the_probes_out() {
        let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/doctor-tests");
        std::fs::create_dir_all(&base).unwrap();
        let dir = tempfile::tempdir_in(&base).unwrap();
        let config = Config {
            data_dir: dir.path().to_path_buf(),
            ..crate::config::ServeArgs::default().resolve(1).unwrap()
        };
        let held = lock::DataDirLock::acquire(dir.path()).unwrap();
        let findings = check_data_dir(&config);
        let line = |check: &str| findings.iter().find(|f| f.check == check).unwrap();
        assert_eq!(line("data dir lock").status, Status::Fail);
        assert!(
            line("data dir lock")
                .detail
                .contains(&std::process::id().to_string())
        );
        assert_eq!(line("O_DIRECT").status, Status::Skip);
        drop(held);
        let findings = check_data_dir(&config);
        assert!(
            findings
                .iter()
                .any(|f| f.check == "data dir lock" && f.status == Status::Ok)
        );
    }

    #[test]
    fn free_space_thresholds() {
        let seg = 64 << 20;
        assert_eq!(classify_free(100 << 30, 4, seg).status, Status::Ok);
        assert_eq!(classify_free(1 << 30, 4, seg).status, Status::Warn);
        assert_eq!(classify_free(8 * seg - 1, 4, seg).status, Status::Fail);
        assert_eq!(classify_free(8 * seg, 4, seg).status, Status::Warn);
    }

    #[test]
    fn direct_io_classification() {
        let dir = Path::new("/d");
        let fast = Ok(DirectProbe {
            fsync_median: Duration::from_micros(300),
            fsync_max: Duration::from_micros(900),
        });
        let f = classify_direct_io(dir, &fast);
        assert_eq!((f[0].status, f[1].status), (Status::Ok, Status::Ok));
        assert!(f[1].detail.contains("median 0.30 ms"), "{}", f[1].detail);
        let slow = Ok(DirectProbe {
            fsync_median: Duration::from_millis(8),
            fsync_max: Duration::from_millis(20),
        });
        let f = classify_direct_io(dir, &slow);
        assert_eq!(f[1].status, Status::Warn);
        assert!(f[1].fix.as_ref().unwrap().contains("fio"));
        let f = classify_direct_io(dir, &Err("open with O_DIRECT: Invalid argument".into()));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].status, Status::Fail);
        assert!(f[0].detail.contains("Invalid argument"));
    }

    #[test]
    fn probe_on_the_build_file_system() {
        // The target directory is on the build's disk (/tmp may be tmpfs).
        let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/doctor-tests");
        std::fs::create_dir_all(&base).unwrap();
        let dir = tempfile::tempdir_in(&base).unwrap();
        let probe = probe_direct_io(dir.path());
        match statfs(dir.path()) {
            Ok((magic, _)) if fs_name(magic).1 == FsKind::Good => {
                let p = probe.expect("O_DIRECT works on ext4/xfs");
                assert!(p.fsync_median <= p.fsync_max);
            }
            other => eprintln!("note: build dir is not on ext4/xfs ({other:?}); probe: {probe:?}"),
        }
        assert!(
            !dir.path().join(PROBE_FILE_NAME).exists(),
            "probe file left behind"
        );
    }
}

//! The log's disk space: the next segment is created and preallocated ahead of need, so that
//! a full file system shows up before a record is taken, never in the middle of a commit.
//!
//! A preparer task keeps one spare segment ready (`next-{n}.wal.tmp`): created,
//! preallocated to `segment_bytes_max`, not yet named as a segment (its first seq is not
//! known). A rollover turns the spare into the next segment (header written and synced,
//! renamed to its final name, directory synced: writes into space already reserved) and
//! wakes the preparer for the next one. If the spare cannot be made (ENOSPC, EDQUOT, or any
//! other error creating it), the file is removed at once (no `.tmp` holds space), the log
//! records why ([`Space`]) and the preparer tries again with a growing backoff until it
//! succeeds: a full disk is a state that ends by itself when space is freed.
//!
//! Appends are taken only while they fit ([`fits`]): in the room left in the active segment,
//! or, when a spare is ready, in that room plus the spare's. An append that does not fit
//! waits while the preparer is still trying for the first time, and is refused with
//! [`super::WalError::NoSpace`] once it has failed: nothing of a refused record is written,
//! so seqs stay gapless and nothing acknowledged is at stake. This is unlike a failed write
//! or `fdatasync` of a commit, which poisons the log for good (fsyncgate).

use std::io;
use std::time::Duration;

use super::segment::{SegmentHeader, new_epoch, segment_file_name, spare_segment_file_name};
use super::storage::{SegmentFile, WalDir};
use super::{BLOCK_BYTES, SEGMENT_HEADER_BYTES, WalError, WalOptions, round_up_block};
use crate::storage::IoBuf;

/// First wait before preparing a spare again after a failure.
pub const SPARE_RETRY_MIN: Duration = Duration::from_millis(100);

/// Longest wait between two tries: how late, at most, writes resume after space is freed.
pub const SPARE_RETRY_MAX: Duration = Duration::from_secs(2);

/// Whether the next segment could be prepared.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Space {
    /// Not tried yet since the spare was last used.
    #[default]
    Unknown,
    Ready,
    /// The last try failed, and why.
    Failed(String),
}

/// What the append path knows of the space it may write into.
#[derive(Debug, Clone, Copy)]
pub struct Room {
    /// Whether a segment is active (a log opened with too little space has none).
    pub active: bool,
    /// Bytes left in the active segment (0 without one).
    pub active_left: u64,
    /// Whether a spare segment is ready.
    pub spare: bool,
}

/// Whether `queued` record bytes in `commits` commits, plus a new record of `record_bytes`,
/// are sure to fit the space prepared: each commit pads to a block; commits fill the active
/// segment, then go to the spare, and the rollover wastes at most the rest of the active
/// segment, which is less than one commit. Whatever is queued fits the spare alone, too.
/// Once the queue has drained, a record always fits a ready spare (one larger than a
/// segment is taken alone), so an append that waits here never waits for nothing.
pub fn fits(
    room: Room,
    opts: &WalOptions,
    queued: usize,
    commits: usize,
    record_bytes: usize,
) -> bool {
    let padding = (commits + 2) * BLOCK_BYTES;
    let need = (queued + record_bytes + padding) as u64;
    if room.active && need <= room.active_left {
        return true;
    }
    if !room.spare {
        return false;
    }
    let spare_left = opts.segment_bytes_max - SEGMENT_HEADER_BYTES as u64;
    if need <= spare_left {
        return true;
    }
    if (record_bytes + 2 * BLOCK_BYTES) as u64 > spare_left {
        // A record larger than a segment goes into a segment of its own, which grows past
        // its preallocation: take it alone.
        return queued == 0;
    }
    let waste = round_up_block(opts.commit_bytes_max.max(record_bytes)) as u64;
    need + waste <= room.active_left + spare_left
}

/// Whether an I/O error means "no space" (as opposed to a failing device or a refusal). By
/// kind as well as by errno: glommio's errors of a named file and operation reach us as an
/// `io::Error` that kept the kind (`StorageFull`, `QuotaExceeded`) but not the errno.
pub fn is_no_space(e: &io::Error) -> bool {
    use nix::errno::Errno;
    matches!(
        e.raw_os_error().map(Errno::from_i32),
        Some(Errno::ENOSPC | Errno::EDQUOT)
    ) || matches!(
        e.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    )
}

/// Why a segment could not be prepared or started.
#[derive(Debug, Clone)]
pub struct SpaceError {
    /// The file system is out of space (or quota), as opposed to refusing otherwise.
    pub no_space: bool,
    pub reason: String,
}

impl SpaceError {
    fn from_wal(e: &WalError) -> SpaceError {
        SpaceError {
            no_space: matches!(e, WalError::Io { source, .. } if is_no_space(source)),
            reason: e.to_string(),
        }
    }

    fn from_io(what: String, e: &io::Error) -> SpaceError {
        SpaceError {
            no_space: is_no_space(e),
            reason: format!("{what}: {e}"),
        }
    }
}

/// Creates the `n`th spare segment: the file, preallocated. Removes the file on any failure,
/// so that a failed preallocation holds no space. (Spares left by a crash are `.tmp` files,
/// which replay deletes.)
pub async fn create_spare(
    dir: &WalDir,
    opts: &WalOptions,
    n: u64,
) -> Result<SegmentFile, SpaceError> {
    let path = dir.path().join(spare_segment_file_name(n));
    let file = SegmentFile::create(dir.disk(), &path)
        .await
        .map_err(|e| SpaceError::from_wal(&e))?;
    if let Err(e) = file.pre_allocate(opts.segment_bytes_max).await {
        let _ = file.close().await;
        let _ = dir.remove(&path).await;
        let mut err = SpaceError::from_wal(&e);
        if err.no_space {
            err.reason = format!(
                "cannot reserve {} bytes for the next WAL segment in {}: the file system is full",
                opts.segment_bytes_max,
                dir.path().display()
            );
        }
        return Err(err);
    }
    Ok(file)
}

/// Turns the spare into the segment starting at `first_seq`: header written and synced,
/// renamed to its final name, directory synced (a final name always has a durable header).
/// Removes the file if any step fails.
pub async fn activate(
    dir: &WalDir,
    opts: &WalOptions,
    mut file: SegmentFile,
    first_seq: u64,
) -> Result<SegmentFile, SpaceError> {
    let header = SegmentHeader {
        shard_id: opts.shard_id,
        first_seq,
        epoch: new_epoch(),
    };
    let mut block = IoBuf::new(BLOCK_BYTES);
    header.encode(&mut block);
    let spare_path = file.path().to_path_buf();
    let path = dir.path().join(segment_file_name(first_seq));
    let steps = async {
        file.write_all(&block, 0).await.map_err(|e| {
            SpaceError::from_io(
                format!("writing a segment header to {}", spare_path.display()),
                &e,
            )
        })?;
        file.sync().await.map_err(|e| {
            SpaceError::from_io(format!("fdatasync of {}", spare_path.display()), &e)
        })?;
        file.rename(&path)
            .await
            .map_err(|e| SpaceError::from_wal(&e))?;
        dir.sync().await.map_err(|e| SpaceError::from_wal(&e))
    };
    match steps.await {
        Ok(()) => Ok(file),
        Err(e) => {
            let current = file.path().to_path_buf();
            let _ = file.close().await;
            let _ = dir.remove(&current).await;
            let _ = dir.sync().await;
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> WalOptions {
        WalOptions {
            segment_bytes_max: 1 << 20,
            commit_bytes_max: 64 << 10,
            ..WalOptions::default()
        }
    }

    #[test]
    fn no_space_is_told_by_errno_or_by_kind() {
        assert!(is_no_space(&io::Error::from(nix::errno::Errno::ENOSPC)));
        assert!(is_no_space(&io::Error::from(nix::errno::Errno::EDQUOT)));
        // As glommio hands over an error of a named file and operation: kind kept, errno not.
        let described = io::Error::new(
            io::Error::from(nix::errno::Errno::ENOSPC).kind(),
            "No space left on device (os error 28), op: Pre-allocate space",
        );
        assert_eq!(described.raw_os_error(), None);
        assert!(is_no_space(&described));
        assert!(!is_no_space(&io::Error::from(nix::errno::Errno::EIO)));
        assert!(!is_no_space(&io::Error::from(nix::errno::Errno::EMFILE)));
    }

    #[test]
    fn a_record_fits_the_active_segment_or_the_spare() {
        let o = opts();
        let room = |active_left, spare| Room {
            active: true,
            active_left,
            spare,
        };
        assert!(fits(room(100 << 10, false), &o, 0, 0, 1000));
        assert!(!fits(room(8 << 10, false), &o, 0, 0, 1000));
        assert!(fits(room(8 << 10, true), &o, 0, 0, 1000));
        // Queued bytes count, as do the blocks their commits pad to.
        assert!(!fits(room(100 << 10, false), &o, 90 << 10, 1, 1000));
        assert!(fits(room(100 << 10, true), &o, 90 << 10, 1, 1000));
        // Without an active segment, only a spare makes room.
        let none = Room {
            active: false,
            active_left: 0,
            spare: false,
        };
        assert!(!fits(none, &o, 0, 0, 10));
        assert!(fits(
            Room {
                spare: true,
                ..none
            },
            &o,
            0,
            0,
            10
        ));
        // A record larger than a segment is taken alone, into a spare.
        assert!(fits(
            Room {
                spare: true,
                ..none
            },
            &o,
            0,
            0,
            2 << 20
        ));
        assert!(!fits(
            Room {
                spare: true,
                ..none
            },
            &o,
            10,
            1,
            2 << 20
        ));
        // Whatever the active segment has left, a lone record fits a ready spare: an append
        // never waits on an empty queue.
        let tiny = WalOptions {
            segment_bytes_max: 24 << 10,
            commit_bytes_max: 8 << 10,
            ..WalOptions::default()
        };
        for record in [20, 5000, 12 << 10, (20 << 10) - 8192, 40 << 10] {
            assert!(fits(room(0, true), &tiny, 0, 0, record), "{record}");
        }
    }
}

#[cfg(test)]
mod disk_full_tests {
    use std::path::Path;

    use super::super::{Wal, WalError, WalOptions};
    use crate::storage::{Disk, SimDisk};
    use crate::testing::run_local as run;

    const DIR: &str = "/wal";
    const SEGMENT: u64 = 64 << 10;

    fn opts() -> WalOptions {
        WalOptions {
            segment_bytes_max: SEGMENT,
            commit_interval: std::time::Duration::ZERO,
            commit_bytes_max: 8 << 10,
            ..WalOptions::default()
        }
    }

    fn tmp_files(sim: &SimDisk) -> Vec<String> {
        Disk::simulated(sim.clone())
            .list_dir(Path::new(DIR))
            .expect("list")
            .into_iter()
            .filter_map(|n| n.into_string().ok())
            .filter(|n| n.ends_with(".tmp"))
            .collect()
    }

    async fn open(sim: &SimDisk) -> Wal {
        let disk = Disk::simulated(sim.clone());
        Wal::open(&disk, Path::new(DIR), opts(), false, |_, _| Ok(()))
            .await
            .expect("open")
            .0
    }

    /// Waits (bounded) until the log's preparer has given its verdict on the next segment.
    async fn settle(wal: &Wal, ready: bool) {
        for _ in 0..2000 {
            let s = wal.stats();
            if (s.no_space.is_none() && s.spares_prepared > 0) == ready
                && (ready || s.no_space.is_some())
            {
                return;
            }
            glommio::timer::sleep(std::time::Duration::from_millis(1)).await;
        }
        panic!("the preparer gave no verdict: {:?}", wal.stats());
    }

    /// A full file system: appends beyond the active segment are refused with `NoSpace`
    /// (nothing written, the log not stopped, no `.tmp` left holding space), and taken again
    /// by themselves once space is freed; replay then finds every acknowledged record, with
    /// gapless seqs.
    #[test]
    fn a_full_disk_refuses_appends_until_space_is_freed() {
        run(|| async {
            let sim = SimDisk::new();
            // Room for the first segment and a little more: not for a spare.
            sim.set_capacity(Some(SEGMENT + SEGMENT / 2));
            let wal = open(&sim).await;
            settle(&wal, false).await;
            assert!(tmp_files(&sim).is_empty(), "{:?}", tmp_files(&sim));
            let body = vec![7u8; 3000];
            let mut acked = 0u64;
            let refused = loop {
                match wal.append(&body).await {
                    Ok(_) => acked += 1,
                    Err(e) => break e,
                }
                assert!(acked < 100, "never refused");
            };
            assert!(matches!(refused, WalError::NoSpace { .. }), "{refused}");
            assert!(acked > 5, "the active segment took only {acked} records");
            let s = wal.stats();
            assert!(s.poisoned.is_none() && s.no_space.is_some(), "{s:?}");
            // Space comes back: the spare is prepared, and appends go on into a new segment.
            sim.set_capacity(None);
            settle(&wal, true).await;
            for _ in 0..30 {
                wal.append(&body)
                    .await
                    .expect("an append once there is space");
            }
            assert!(wal.stats().segments_created >= 2);
            wal.close().await.expect("close");
            drop(wal);
            assert!(tmp_files(&sim).is_empty(), "{:?}", tmp_files(&sim));
            let disk = Disk::simulated(sim.clone());
            let mut seqs = Vec::new();
            Wal::open(&disk, Path::new(DIR), opts(), false, |seq, _| {
                seqs.push(seq);
                Ok(())
            })
            .await
            .expect("reopen");
            assert_eq!(seqs, (1..=acked + 30).collect::<Vec<_>>());
        });
    }

    /// Too little space for even the first segment: the log opens taking no records (the
    /// shard serves queries), and takes them once there is space.
    #[test]
    fn a_log_opened_without_space_takes_records_once_there_is_some() {
        run(|| async {
            let sim = SimDisk::new();
            sim.set_capacity(Some(SEGMENT / 2));
            let wal = open(&sim).await;
            assert!(!wal.stats().writable);
            let e = wal.append(b"x").await.unwrap_err();
            assert!(matches!(e, WalError::NoSpace { .. }), "{e}");
            assert!(tmp_files(&sim).is_empty(), "{:?}", tmp_files(&sim));
            sim.set_capacity(None);
            settle(&wal, true).await;
            assert_eq!(wal.append(b"x").await.expect("taken now"), 1);
            wal.close().await.expect("close");
        });
    }
}

//! Tests of the writer and replay on real files, through O_DIRECT on a real file system.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use super::record::decode_record;
use super::*;
use crate::storage::Disk;

/// A scratch directory on the build's file system: /tmp may be tmpfs, which refuses O_DIRECT.
fn scratch() -> tempfile::TempDir {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/wal-tests");
    std::fs::create_dir_all(&base).unwrap();
    tempfile::Builder::new()
        .prefix("wal")
        .tempdir_in(base)
        .unwrap()
}

use crate::testing::run_local as run;

/// Opens the log in `dir` on the real disk, without repair, ignoring replayed records.
async fn open_fresh(dir: &Path, opts: WalOptions) -> (Wal, ReplayReport) {
    Wal::open(&Disk::real(), dir, opts, false, |_, _| Ok(()))
        .await
        .unwrap()
}

fn small_opts() -> WalOptions {
    WalOptions {
        segment_bytes_max: 64 << 10,
        commit_interval: Duration::from_millis(1),
        commit_bytes_max: 16 << 10,
        shard_id: 3,
        first_seq_min: 1,
    }
}

/// A body that names its writer and index and ends in a non-zero byte, 20 to 20 + `spread`
/// bytes long.
pub(super) fn body_spread(task: usize, i: usize, spread: usize) -> Vec<u8> {
    let mut b = format!("task {task} record {i} ").into_bytes();
    b.resize(20 + (task * 131 + i * 977) % spread, b'a' + (i % 26) as u8);
    b
}

fn body(task: usize, i: usize) -> Vec<u8> {
    body_spread(task, i, 3000)
}

type Seen = Rc<RefCell<Vec<(u64, Vec<u8>)>>>;

fn collector() -> (Seen, impl FnMut(u64, &[u8]) -> Result<(), String>) {
    let seen: Seen = Rc::default();
    let s = seen.clone();
    (seen, move |seq, b: &[u8]| {
        s.borrow_mut().push((seq, b.to_vec()));
        Ok(())
    })
}

async fn replay_all(
    dir: &Path,
    repair: bool,
) -> Result<(ReplayReport, Vec<(u64, Vec<u8>)>), WalError> {
    let (seen, on) = collector();
    let report = replay_dir(&Disk::real(), dir, repair, on).await?;
    let records = seen.borrow().clone();
    Ok((report, records))
}

/// Appends `per_task` records from each of `tasks` concurrent tasks; returns seq -> body.
async fn append_concurrently(
    wal: &Rc<Wal>,
    tasks: usize,
    per_task: usize,
) -> BTreeMap<u64, Vec<u8>> {
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let wal = wal.clone();
            glommio::spawn_local(async move {
                let mut out = Vec::new();
                for i in 0..per_task {
                    let b = body(t, i);
                    let seq = wal.append(&b).await.unwrap();
                    out.push((seq, b));
                }
                out
            })
        })
        .collect();
    let mut all = BTreeMap::new();
    for h in handles {
        for (seq, b) in h.await {
            assert!(all.insert(seq, b).is_none(), "seq {seq} handed out twice");
        }
    }
    all
}

#[test]
fn concurrent_appends_replay_once_in_order_and_seq_continues() {
    let tmp = scratch();
    let dir = tmp.path().join("shard-003");
    run(move || async move {
        let (wal, report) = open_fresh(&dir, small_opts()).await;
        assert_eq!(report.next_seq, 1);
        let wal = Rc::new(wal);
        let written = append_concurrently(&wal, 8, 40).await;
        assert_eq!(
            written.keys().copied().collect::<Vec<_>>(),
            (1..=320).collect::<Vec<_>>()
        );
        let stats = wal.stats();
        assert_eq!(stats.records, 320);
        assert_eq!(stats.durable_seq, 320);
        assert!(
            stats.segments_created > 1,
            "64 KiB segments must roll over: {stats:?}"
        );
        assert_eq!(stats.fsync_latency.count, stats.commits);
        assert_eq!(stats.commit_latency.count, stats.commits);
        // A commit's time holds its fdatasync's.
        assert!(stats.commit_latency.sum >= stats.fsync_latency.sum);
        wal.close().await.unwrap();
        assert!(matches!(wal.append(b"late").await, Err(WalError::Closed)));
        drop(wal);

        let (seen, on) = collector();
        let (wal, report) = Wal::open(&Disk::real(), &dir, small_opts(), false, on)
            .await
            .unwrap();
        let expected: Vec<_> = written.into_iter().collect();
        assert_eq!(*seen.borrow(), expected);
        assert_eq!(report.records, 320);
        assert_eq!(
            (report.first_seq, report.last_seq, report.next_seq),
            (Some(1), Some(320), 321)
        );
        assert_eq!(report.torn_tails_truncated, 0);
        assert_eq!(report.shard_ids, vec![3]);
        assert!(report.foreign_segments.is_empty());
        assert_eq!(wal.append(b"after reopen").await.unwrap(), 321);
        wal.close().await.unwrap();
        drop(wal);

        // Reopening without appending leaves an empty segment; the next open replaces it and
        // the seq still continues.
        let (wal, _) = open_fresh(&dir, small_opts()).await;
        wal.close().await.unwrap();
        drop(wal);
        let (wal, report) = open_fresh(&dir, small_opts()).await;
        assert_eq!(report.records, 321);
        assert_eq!(wal.append(b"x").await.unwrap(), 322);
        wal.close().await.unwrap();
    });
}

#[test]
fn group_commit_groups_concurrent_appends() {
    let tmp = scratch();
    let dir = tmp.path().to_path_buf();
    run(move || async move {
        let opts = WalOptions {
            commit_interval: Duration::from_millis(5),
            ..small_opts()
        };
        let (wal, _) = open_fresh(&dir, opts).await;
        let wal = Rc::new(wal);
        append_concurrently(&wal, 100, 3).await;
        let stats = wal.stats();
        assert_eq!(stats.records, 300);
        assert!(
            stats.commits * 5 <= stats.records,
            "expected at least 5 records per commit: {stats:?}"
        );
        assert_eq!(stats.bytes_written % BLOCK_BYTES as u64, 0);
        wal.close().await.unwrap();
    });
}

#[test]
fn large_records_and_limits() {
    let tmp = scratch();
    let dir = tmp.path().to_path_buf();
    run(move || async move {
        let (wal, _) = open_fresh(&dir, small_opts()).await;
        let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8 + 1).collect();
        assert_eq!(wal.append(b"small").await.unwrap(), 1);
        assert_eq!(wal.append(&big).await.unwrap(), 2);
        assert_eq!(wal.append(b"after").await.unwrap(), 3);
        let too_big = vec![1u8; RECORD_BODY_BYTES_MAX + 1];
        let err = wal.append(&too_big).await.unwrap_err();
        assert!(matches!(err, WalError::RecordTooLarge { .. }), "{err}");
        assert!(err.to_string().contains("16777217"), "{err}");
        wal.close().await.unwrap();
        drop(wal);
        let (report, records) = replay_all(&dir, false).await.unwrap();
        assert_eq!(report.records, 3);
        assert_eq!(records[1].1, big);
    });
}

#[test]
fn invalid_options_are_refused_with_the_field_named() {
    let tmp = scratch();
    let dir = tmp.path().to_path_buf();
    run(move || async move {
        let opts = WalOptions {
            commit_bytes_max: 0,
            ..small_opts()
        };
        let err = Wal::open(&Disk::real(), &dir, opts, false, |_, _| Ok(()))
            .await
            .err()
            .unwrap();
        assert!(err.to_string().contains("commit_bytes_max"), "{err}");
    });
}

/// Records of one segment file as (start, end, seq).
fn record_extents(bytes: &[u8]) -> Vec<(usize, usize, u64)> {
    let mut out = Vec::new();
    let mut pos = SEGMENT_HEADER_BYTES;
    while pos < bytes.len() {
        match decode_record(bytes, pos).unwrap() {
            Some((h, _)) => {
                out.push((pos, pos + h.record_bytes(), h.seq));
                pos += h.record_bytes();
            }
            None if pos.is_multiple_of(BLOCK_BYTES) => break,
            None => pos = (pos / BLOCK_BYTES + 1) * BLOCK_BYTES,
        }
    }
    out
}

fn last_segment(dir: &Path) -> PathBuf {
    segment_files(&Disk::real(), dir).unwrap().pop().unwrap().1
}

#[test]
fn torn_tail_at_every_byte_of_the_last_record_is_cut_and_counted() {
    let tmp = scratch();
    let dir = tmp.path().to_path_buf();
    run(move || async move {
        let (wal, _) = open_fresh(&dir, small_opts()).await;
        for i in 0..5 {
            wal.append(&body(0, i)).await.unwrap();
        }
        // The last record alone in its commit, spanning two blocks.
        let last: Vec<u8> = (0..4100u32).map(|i| (i % 200) as u8 + 1).collect();
        assert_eq!(wal.append(&last).await.unwrap(), 6);
        wal.close().await.unwrap();
        drop(wal);

        let (_, all) = replay_all(&dir, false).await.unwrap();
        assert_eq!(all.len(), 6);
        let path = last_segment(&dir);
        let original = std::fs::read(&path).unwrap();
        let extents = record_extents(&original);
        let (start, end, seq) = *extents.last().unwrap();
        assert_eq!(seq, 6);
        assert_eq!(start % BLOCK_BYTES, 0, "a lone commit starts a block");
        let padding_end = end.div_ceil(BLOCK_BYTES) * BLOCK_BYTES;

        // Every byte of the torn record; the padding after it (where a cut loses nothing)
        // sampled, its last byte included.
        let cuts = (start..end)
            .chain((end..padding_end).step_by(61))
            .chain([padding_end - 1]);
        for cut in cuts {
            for zero_fill in [false, true] {
                std::fs::write(&path, &original).unwrap();
                if zero_fill {
                    let mut b = original.clone();
                    b[cut..].fill(0);
                    std::fs::write(&path, &b).unwrap();
                } else {
                    std::fs::OpenOptions::new()
                        .write(true)
                        .open(&path)
                        .unwrap()
                        .set_len(cut as u64)
                        .unwrap();
                }
                let ctx = format!("cut at {cut}, zero_fill {zero_fill}");
                let (report, records) = replay_all(&dir, false).await.expect(&ctx);
                let whole = cut >= end;
                let expected = if whole { &all[..] } else { &all[..5] };
                assert_eq!(records, expected, "{ctx}");
                // A cut exactly at the commit's first block leaves bytes identical to a
                // commit never written: nothing to tell apart, nothing to count.
                let torn = !whole && cut != start;
                assert_eq!(report.torn_tails_truncated, torn as u64, "{ctx}");
                assert_eq!(report.torn_bytes_discarded > 0, torn, "{ctx}: {report:?}");
                assert_eq!(report.next_seq, if whole { 7 } else { 6 }, "{ctx}");

                let (again, records) = replay_all(&dir, false).await.expect(&ctx);
                assert_eq!(records, expected, "second replay, {ctx}");
                assert_eq!(again.torn_tails_truncated, 0, "second replay, {ctx}");
            }
        }
    });
}

#[test]
fn torn_commit_keeps_its_whole_records_and_reopen_appends_after_them() {
    let tmp = scratch();
    let dir = tmp.path().to_path_buf();
    run(move || async move {
        let opts = WalOptions {
            commit_interval: Duration::from_millis(20),
            segment_bytes_max: 1 << 20,
            ..small_opts()
        };
        let (wal, _) = open_fresh(&dir, opts.clone()).await;
        let wal = Rc::new(wal);
        append_concurrently(&wal, 4, 1).await;
        wal.close().await.unwrap();
        drop(wal);
        let path = last_segment(&dir);
        let mut bytes = std::fs::read(&path).unwrap();
        let extents = record_extents(&bytes);
        assert_eq!(extents.len(), 4);
        // Damage the third record's body: records 1 and 2 (same commit) survive.
        let (start, _, _) = extents[2];
        bytes[start + 40] ^= 0xFF;
        std::fs::write(&path, &bytes).unwrap();

        let (seen, on) = collector();
        let (wal, report) = Wal::open(&Disk::real(), &dir, opts, false, on)
            .await
            .unwrap();
        assert_eq!(
            seen.borrow().iter().map(|r| r.0).collect::<Vec<_>>(),
            vec![1, 2]
        );
        assert_eq!(report.torn_tails_truncated, 1);
        assert_eq!(wal.stats().torn_tails_truncated, 1);
        assert_eq!(wal.append(b"next").await.unwrap(), 3);
        wal.close().await.unwrap();
        drop(wal);
        let (report, records) = replay_all(&dir, false).await.unwrap();
        assert_eq!(
            records.iter().map(|r| r.0).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        assert_eq!(report.torn_tails_truncated, 0);
    });
}

/// Writes records until there are at least `n` segments; returns all records.
async fn fill_segments(dir: &Path, n: usize) -> Vec<(u64, Vec<u8>)> {
    let (wal, _) = open_fresh(dir, small_opts()).await;
    let mut i = 0;
    while segment_files(&Disk::real(), dir).unwrap().len() < n {
        wal.append(&body(1, i)).await.unwrap();
        i += 1;
    }
    wal.append(&body(2, 0)).await.unwrap();
    wal.close().await.unwrap();
    drop(wal);
    replay_all(dir, false).await.unwrap().1
}

#[test]
fn corruption_in_an_earlier_segment_names_file_and_offset_and_repair_skips_it() {
    let tmp = scratch();
    let dir = tmp.path().to_path_buf();
    run(move || async move {
        let all = fill_segments(&dir, 3).await;
        let (_, first) = segment_files(&Disk::real(), &dir).unwrap().remove(0);
        let mut bytes = std::fs::read(&first).unwrap();
        let extents = record_extents(&bytes);
        let (start, end, bad_seq) = extents[2];
        let last_seq_in_first = extents.last().unwrap().2;
        bytes[(start + end) / 2] ^= 0x01;
        std::fs::write(&first, &bytes).unwrap();

        let err = replay_all(&dir, false).await.unwrap_err();
        match &err {
            WalError::Corruption { path, offset, what } => {
                assert_eq!(path, &first);
                assert_eq!(*offset, start as u64);
                assert!(what.contains("checksum"), "{what}");
            }
            other => panic!("expected corruption, got {other}"),
        }
        let msg = err.to_string();
        assert!(
            msg.contains(&first.display().to_string()) && msg.contains(&start.to_string()),
            "{msg}"
        );

        // Opening the log refuses too, and changes nothing on disk.
        assert!(
            Wal::open(&Disk::real(), &dir, small_opts(), false, |_, _| Ok(()))
                .await
                .is_err()
        );

        let (report, records) = replay_all(&dir, true).await.unwrap();
        assert_eq!(report.repairs.len(), 1, "{report:?}");
        assert_eq!(report.repairs[0].path, first);
        assert_eq!(report.repairs[0].offset, start as u64);
        let expected: Vec<_> = all
            .iter()
            .filter(|(s, _)| *s < bad_seq || *s > last_seq_in_first)
            .cloned()
            .collect();
        assert_eq!(records, expected);

        // A repaired open appends after the last intact record.
        let (wal, report) = Wal::open(&Disk::real(), &dir, small_opts(), true, |_, _| Ok(()))
            .await
            .unwrap();
        assert_eq!(report.next_seq, all.len() as u64 + 1);
        assert_eq!(
            wal.append(b"after repair").await.unwrap(),
            all.len() as u64 + 1
        );
        wal.close().await.unwrap();
    });
}

#[test]
fn zeroed_blocks_followed_by_a_later_commit_are_corruption_not_a_torn_tail() {
    let tmp = scratch();
    let dir = tmp.path().to_path_buf();
    run(move || async move {
        let opts = WalOptions {
            segment_bytes_max: 1 << 20,
            ..small_opts()
        };
        let (wal, _) = open_fresh(&dir, opts).await;
        for i in 0..4 {
            wal.append(&body(0, i)).await.unwrap();
        }
        wal.close().await.unwrap();
        drop(wal);
        let path = last_segment(&dir);
        let mut bytes = std::fs::read(&path).unwrap();
        let extents = record_extents(&bytes);
        for (variant, damage) in ["zeroed", "flipped"].iter().enumerate() {
            let mut b = bytes.clone();
            let (start, end, _) = extents[1];
            if variant == 0 {
                b[start..end].fill(0);
            } else {
                b[start + 5] ^= 0x40;
            }
            std::fs::write(&path, &b).unwrap();
            let err = replay_all(&dir, false).await.unwrap_err();
            match &err {
                WalError::Corruption { offset, what, .. } => {
                    assert_eq!(*offset, start as u64, "{damage}");
                    assert!(what.contains("seq 3"), "{damage}: {what}");
                }
                other => panic!("{damage}: expected corruption, got {other}"),
            }
        }
        // Repair on the last segment cuts it at the damage so seqs are not reused.
        let (start, _, _) = extents[1];
        bytes[start + 5] ^= 0x40;
        std::fs::write(&path, &bytes).unwrap();
        let (report, records) = replay_all(&dir, true).await.unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(report.next_seq, 2);
        let (report, records) = replay_all(&dir, false).await.unwrap();
        assert_eq!((records.len(), report.repairs.len()), (1, 0));
    });
}

#[test]
fn unwritten_trailing_segment_and_temp_files_are_removed() {
    let tmp = scratch();
    let dir = tmp.path().to_path_buf();
    run(move || async move {
        let all = fill_segments(&dir, 2).await;
        let next = all.len() as u64 + 1;
        let zero_header = dir.join(segment_file_name(next));
        std::fs::write(&zero_header, vec![0u8; 8192]).unwrap();
        let temp = dir.join(segment::temp_segment_file_name(next + 5));
        std::fs::write(&temp, b"partial").unwrap();
        let (report, records) = replay_all(&dir, false).await.unwrap();
        assert_eq!(records, all);
        assert_eq!(report.torn_segments_deleted, 1);
        assert!(!zero_header.exists() && !temp.exists());

        // A short header too.
        std::fs::write(&zero_header, b"SHLG").unwrap();
        let (report, _) = replay_all(&dir, false).await.unwrap();
        assert_eq!(report.torn_segments_deleted, 1);

        // A damaged header that is not the last segment's is corruption at byte 32 (its CRC).
        let (_, first) = segment_files(&Disk::real(), &dir).unwrap().remove(0);
        let mut bytes = std::fs::read(&first).unwrap();
        bytes[20] ^= 1;
        std::fs::write(&first, &bytes).unwrap();
        match replay_all(&dir, false).await.unwrap_err() {
            WalError::Corruption { path, offset, .. } => assert_eq!((path, offset), (first, 32)),
            other => panic!("expected corruption, got {other}"),
        }
    });
}

#[test]
fn foreign_shard_segments_are_reported() {
    let tmp = scratch();
    let dir = tmp.path().to_path_buf();
    run(move || async move {
        fill_segments(&dir, 1).await;
        let opts = WalOptions {
            shard_id: 9,
            ..small_opts()
        };
        let (wal, report) = open_fresh(&dir, opts).await;
        assert_eq!(report.shard_ids, vec![3]);
        assert_eq!(report.foreign_segments.len(), 1);
        wal.close().await.unwrap();
    });
}

#[test]
fn a_failed_fdatasync_poisons_the_log_and_is_never_retried() {
    let tmp = scratch();
    let dir = tmp.path().to_path_buf();
    run(move || async move {
        let opts = WalOptions {
            commit_interval: Duration::from_millis(10),
            ..small_opts()
        };
        let (wal, _) = open_fresh(&dir, opts).await;
        let wal = Rc::new(wal);
        assert_eq!(wal.append(b"durable").await.unwrap(), 1);
        wal.faults().fail_sync_after(0);
        let tasks: Vec<_> = (0..5)
            .map(|i| {
                let wal = wal.clone();
                glommio::spawn_local(async move { wal.append(&body(i, i)).await })
            })
            .collect();
        for t in tasks {
            match t.await {
                Err(WalError::Poisoned { reason }) => {
                    assert!(
                        reason.contains("fdatasync") && reason.contains(".wal"),
                        "{reason}"
                    );
                }
                other => panic!("expected poisoned, got {other:?}"),
            }
        }
        // Later appends fail at once, even though the disk would work again.
        assert!(matches!(
            wal.append(b"later").await,
            Err(WalError::Poisoned { .. })
        ));
        let stats = wal.stats();
        assert!(stats.poisoned.is_some());
        assert_eq!(stats.durable_seq, 1);
        assert!(matches!(wal.close().await, Err(WalError::Poisoned { .. })));
        drop(wal);

        // What was acknowledged is there after a restart; the failed commit may or may not be.
        let (wal, report) = open_fresh(&dir, small_opts()).await;
        assert_eq!(report.first_seq, Some(1));
        assert!(wal.append(b"fresh").await.unwrap() >= 2);
        wal.close().await.unwrap();
    });
}

#[test]
fn a_failed_write_poisons_the_log_at_rollover_too() {
    let tmp = scratch();
    let dir = tmp.path().to_path_buf();
    run(move || async move {
        let (wal, _) = open_fresh(&dir, small_opts()).await;
        wal.append(b"one").await.unwrap();
        wal.faults().fail_write_after(0);
        let err = wal.append(b"two").await.unwrap_err();
        assert!(err.to_string().contains("write of"), "{err}");
        drop(wal);

        // A rollover whose header write fails poisons as well. Each record below is one
        // single-block commit, so 15 of them fill a 64 KiB segment after its header.
        let (wal, _) = open_fresh(&dir, small_opts()).await;
        let before = segment_files(&Disk::real(), &dir).unwrap().len();
        for i in 0..15 {
            wal.append(&body(3, i)).await.unwrap();
        }
        assert_eq!(segment_files(&Disk::real(), &dir).unwrap().len(), before);
        wal.faults().fail_write_after(0);
        let err = wal.append(&body(3, 15)).await.unwrap_err();
        assert!(
            err.to_string().contains("starting a new WAL segment"),
            "{err}"
        );
        assert!(wal.close().await.is_err());
        drop(wal);
        let (report, _) = replay_all(&dir, false).await.unwrap();
        assert_eq!(report.last_seq, Some(16));
    });
}

#[test]
fn checkpoint_removes_only_fully_covered_segments() {
    let tmp = scratch();
    let dir = tmp.path().to_path_buf();
    run(move || async move {
        fill_segments(&dir, 3).await;
        let (wal, report) = open_fresh(&dir, small_opts()).await;
        let segments = segment_files(&Disk::real(), &dir).unwrap();
        assert_eq!(segments.len(), 4);
        let second_first = segments[1].0;
        assert_eq!(
            wal.remove_segments_through(second_first - 2).await.unwrap(),
            0
        );
        assert_eq!(
            wal.remove_segments_through(second_first - 1).await.unwrap(),
            1
        );
        assert_eq!(wal.remove_segments_through(u64::MAX).await.unwrap(), 2);
        assert_eq!(
            segment_files(&Disk::real(), &dir).unwrap().len(),
            1,
            "the active segment stays"
        );
        assert_eq!(wal.append(b"x").await.unwrap(), report.next_seq);
        wal.close().await.unwrap();
        drop(wal);
        let (report, _) = replay_all(&dir, false).await.unwrap();
        assert_eq!(report.records, 1);
    });
}

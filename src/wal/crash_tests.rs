//! Crash tests of the log on the simulated disk ([`crate::storage::SimDisk`]): power cuts at
//! every operation of a workload, torn last writes, a disk that dies, a crash during recovery.
//!
//! Whatever happened, the next open (without repair) must succeed and replay every
//! acknowledged record exactly once, in order, with gapless seqs from 1; anything else it
//! replays must be a whole record that was appended (acknowledged or not), never a piece of
//! one; and the reopened log must continue the seqs.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

use super::record::{RECORD_HEADER_BYTES, decode_record};
use super::*;
use crate::storage::sim::Crash;
use crate::storage::{Disk, SimDisk};

const DIR: &str = "/data/wal/shard-0001";

use crate::testing::run_local as run;

/// Small commits and segments, so that a short workload has many commits and rollovers
/// (every point of which is a crash point); no commit tick, so that runs are deterministic.
fn opts() -> WalOptions {
    WalOptions {
        segment_bytes_max: 24 << 10,
        commit_interval: Duration::ZERO,
        commit_bytes_max: 8 << 10,
        shard_id: 1,
        first_seq_min: 1,
    }
}

/// A body unique to its writer and index, from 20 bytes to more than a block (so records
/// straddle blocks), ending in a non-zero byte.
fn body(task: usize, i: usize) -> Vec<u8> {
    super::tests::body_spread(task, i, 6000)
}

/// What the appenders did: acknowledged records by seq, and every body ever appended.
#[derive(Default)]
struct Appended {
    acked: BTreeMap<u64, Vec<u8>>,
    attempted: HashSet<Vec<u8>>,
    tasks_done: usize,
}

type Shared = Rc<RefCell<Appended>>;

/// Replayed records, `(seq, body)`.
type Records = Vec<(u64, Vec<u8>)>;

/// `tasks` concurrent appenders of `per_task` records each; a task stops at its first error.
fn spawn_appenders(
    wal: &Rc<Wal>,
    log: &Shared,
    tasks: usize,
    per_task: usize,
) -> Vec<glommio::Task<()>> {
    (0..tasks)
        .map(|t| {
            let (wal, log) = (wal.clone(), log.clone());
            glommio::spawn_local(async move {
                for i in 0..per_task {
                    let b = body(t, i);
                    log.borrow_mut().attempted.insert(b.clone());
                    match wal.append(&b).await {
                        Ok(seq) => {
                            let dup = log.borrow_mut().acked.insert(seq, b);
                            assert!(dup.is_none(), "seq {seq} acknowledged twice");
                        }
                        Err(_) => break,
                    }
                }
                log.borrow_mut().tasks_done += 1;
            })
        })
        .collect()
}

/// Opens a log on `disk`, runs the appenders to their end and closes the log; failures (of
/// the open, of appends, of the close) are what the disk's fault plan made them.
async fn workload(disk: &Disk, tasks: usize, per_task: usize) -> Appended {
    let log: Shared = Rc::default();
    if let Ok((wal, _)) = Wal::open(disk, Path::new(DIR), opts(), false, |_, _| Ok(())).await {
        let wal = Rc::new(wal);
        for t in spawn_appenders(&wal, &log, tasks, per_task) {
            t.await;
        }
        let _ = wal.close().await;
    }
    Rc::try_unwrap(log).ok().expect("tasks ended").into_inner()
}

/// What a recovery found, for the sweeps to check that they reach the cases they mean to.
#[derive(Default)]
struct Recovered {
    replayed: u64,
    unacked_replayed: u64,
    torn_tails: u64,
}

/// Restarts on the same simulated disk (a new handle: a new process, with a healthy fault
/// plan) and checks everything the module doc promises; then appends one record and checks
/// that a second replay is clean and includes it.
async fn recover_and_check(sim: &SimDisk, appended: &Appended, ctx: &str) -> Recovered {
    let disk = Disk::simulated(sim.clone());
    let dir = Path::new(DIR);
    let seen: Rc<RefCell<Records>> = Rc::default();
    let s = seen.clone();
    let (wal, report) = Wal::open(&disk, dir, opts(), false, move |seq, b: &[u8]| {
        s.borrow_mut().push((seq, b.to_vec()));
        Ok(())
    })
    .await
    .unwrap_or_else(|e| panic!("{ctx}: recovery failed: {e}"));
    let records = seen.borrow().clone();

    let seqs: Vec<u64> = records.iter().map(|r| r.0).collect();
    let gapless: Vec<u64> = (1..=records.len() as u64).collect();
    assert_eq!(seqs, gapless, "{ctx}: replayed seqs are not 1..=n in order");
    for (seq, b) in &appended.acked {
        let replayed = records.get(*seq as usize - 1).map(|r| &r.1);
        assert_eq!(
            replayed,
            Some(b),
            "{ctx}: acknowledged seq {seq} lost or changed"
        );
    }
    let mut bodies = HashSet::new();
    for (seq, b) in &records {
        assert!(
            appended.attempted.contains(b),
            "{ctx}: seq {seq} replayed a body never appended ({} bytes)",
            b.len()
        );
        assert!(bodies.insert(b), "{ctx}: seq {seq} replays a body twice");
    }
    assert!(report.repairs.is_empty(), "{ctx}: {report:?}");
    assert!(report.torn_tails_truncated <= 1, "{ctx}: {report:?}");
    assert_eq!(report.next_seq, records.len() as u64 + 1, "{ctx}");

    let next = wal
        .append(b"after recovery")
        .await
        .unwrap_or_else(|e| panic!("{ctx}: append after recovery: {e}"));
    assert_eq!(next, records.len() as u64 + 1, "{ctx}");
    wal.close().await.unwrap();
    drop(wal);
    let mut again = Vec::new();
    let report2 = replay_dir(&disk, dir, false, |seq, b| {
        again.push((seq, b.to_vec()));
        Ok(())
    })
    .await
    .unwrap_or_else(|e| panic!("{ctx}: second replay failed: {e}"));
    assert_eq!(report2.torn_tails_truncated, 0, "{ctx}: {report2:?}");
    assert_eq!(again.len(), records.len() + 1, "{ctx}");
    assert_eq!(again[..records.len()], records[..], "{ctx}");

    Recovered {
        replayed: records.len() as u64,
        unacked_replayed: records.len() as u64 - appended.acked.len() as u64,
        torn_tails: report.torn_tails_truncated,
    }
}

/// Crash modes: what was synced only, and torn last writes cut inside a record header, inside
/// a block, at and around block boundaries, and not at all (the whole write landed but its
/// `fdatasync` never returned).
const CRASHES: [Crash; 8] = [
    Crash::KeepSynced,
    Crash::TearLastWrite { bytes: 17 },
    Crash::TearLastWrite { bytes: 1000 },
    Crash::TearLastWrite { bytes: 4095 },
    Crash::TearLastWrite { bytes: 4096 },
    Crash::TearLastWrite { bytes: 4097 },
    Crash::TearLastWrite { bytes: 7000 },
    Crash::TearLastWrite { bytes: usize::MAX },
];

/// The disk dies after `n` more operations (every later one fails, like a power cut), then
/// loses power for real.
async fn run_cut(n: u64, crash: Crash, tasks: usize, per_task: usize) -> (SimDisk, Appended) {
    let sim = SimDisk::new();
    let disk = Disk::simulated(sim.clone());
    disk.faults().fail_any_after(n);
    let appended = workload(&disk, tasks, per_task).await;
    sim.crash(crash);
    (sim, appended)
}

#[test]
fn power_cut_after_every_operation_keeps_exactly_the_acknowledged_records() {
    run(|| async {
        const TASKS: usize = 4;
        const PER_TASK: usize = 15;
        let mut totals = Recovered::default();
        let mut cuts = 0;
        for n in 0.. {
            for crash in CRASHES {
                let (sim, appended) = run_cut(n, crash, TASKS, PER_TASK).await;
                let ctx = format!("cut after {n} operations, {crash:?}");
                let r = recover_and_check(&sim, &appended, &ctx).await;
                totals.replayed += r.replayed;
                totals.unacked_replayed += r.unacked_replayed;
                totals.torn_tails += r.torn_tails;
                cuts += 1;
            }
            // Past the workload's last operation the cut changes nothing: stop there.
            let (_, appended) = run_cut(n, Crash::KeepSynced, TASKS, PER_TASK).await;
            if appended.acked.len() == TASKS * PER_TASK {
                break;
            }
        }
        // The sweep reached what it is for: torn tails, and unacknowledged records that were
        // written whole before the cut.
        assert!(cuts > 100 * CRASHES.len(), "only {cuts} cuts");
        assert!(totals.torn_tails > 0, "no torn tail in the sweep");
        assert!(
            totals.unacked_replayed > 0,
            "no unacknowledged record replayed"
        );
    });
}

#[test]
fn power_cut_during_recovery_then_recovery_again_keeps_the_acknowledged_records() {
    run(|| async {
        const TASKS: usize = 3;
        const PER_TASK: usize = 10;
        let mut torn_cases = 0;
        for n in 0.. {
            for crash in [
                Crash::TearLastWrite { bytes: 17 },
                Crash::TearLastWrite { bytes: 1000 },
                Crash::TearLastWrite { bytes: 5000 },
            ] {
                // Only crashes that leave a torn tail give the recovery something to cut (runs
                // are deterministic, so a first run tells).
                let (sim, _) = run_cut(n, crash, TASKS, PER_TASK).await;
                let disk = Disk::simulated(sim.clone());
                let (_, report) = Wal::open(&disk, Path::new(DIR), opts(), false, |_, _| Ok(()))
                    .await
                    .unwrap();
                if report.torn_tails_truncated == 0 {
                    continue;
                }
                torn_cases += 1;
                // The recovery (cutting the torn tail, creating the new segment) is cut at each
                // of its operations, and the second crash keeps what was synced or tears the
                // recovery's own last write.
                for m in 0..12 {
                    for second in [Crash::KeepSynced, Crash::TearLastWrite { bytes: 2000 }] {
                        let (sim, appended) = run_cut(n, crash, TASKS, PER_TASK).await;
                        let disk = Disk::simulated(sim.clone());
                        disk.faults().fail_any_after(m);
                        let cut_recovery =
                            Wal::open(&disk, Path::new(DIR), opts(), false, |_, _| Ok(())).await;
                        if let Ok((wal, _)) = cut_recovery {
                            let _ = wal.close().await;
                        }
                        sim.crash(second);
                        let ctx = format!(
                            "cut after {n} operations, {crash:?}, recovery cut after {m}, {second:?}"
                        );
                        recover_and_check(&sim, &appended, &ctx).await;
                    }
                }
            }
            let (_, appended) = run_cut(n, Crash::KeepSynced, TASKS, PER_TASK).await;
            if appended.acked.len() == TASKS * PER_TASK {
                break;
            }
        }
        assert!(
            torn_cases >= 10,
            "only {torn_cases} crashes left a torn tail"
        );
    });
}

#[test]
fn crash_with_appends_in_flight_loses_only_unacknowledged_records() {
    run(|| async {
        const TASKS: usize = 4;
        const PER_TASK: usize = 8;
        let mut crashes_with_records_in_flight = 0;
        for acks in 0..=TASKS * PER_TASK {
            let sim = SimDisk::new();
            let disk = Disk::simulated(sim.clone());
            let (wal, _) = Wal::open(&disk, Path::new(DIR), opts(), false, |_, _| Ok(()))
                .await
                .unwrap();
            let wal = Rc::new(wal);
            let log: Shared = Rc::default();
            let tasks = spawn_appenders(&wal, &log, TASKS, PER_TASK);
            let reached = || {
                let l = log.borrow();
                l.acked.len() >= acks || l.tasks_done == TASKS
            };
            while !reached() {
                futures_lite::future::yield_now().await;
            }
            if log.borrow().attempted.len() > log.borrow().acked.len() {
                crashes_with_records_in_flight += 1;
            }
            // The power goes: the process's later disk operations all fail, and the disk keeps
            // what was synced. (Only that: the simulated disk completes a write and its
            // fdatasync without yielding, so at this task's yield points no write is unsynced
            // and a tear would keep nothing; torn writes are the other tests' business.)
            disk.faults().fail_any_after(0);
            sim.crash(Crash::KeepSynced);
            for t in tasks {
                t.await;
            }
            let _ = wal.close().await;
            drop(wal);
            let appended = Rc::try_unwrap(log).ok().expect("tasks ended").into_inner();
            let ctx = format!("crash after {acks} acknowledgements");
            recover_and_check(&sim, &appended, &ctx).await;
        }
        assert!(
            crashes_with_records_in_flight > TASKS * PER_TASK / 2,
            "only {crashes_with_records_in_flight} crashes had appends in flight"
        );
    });
}

#[test]
fn torn_in_flight_commit_keeps_its_whole_records_and_cuts_the_rest() {
    run(|| async {
        // Two acknowledged records, then five appended together whose commit is written but
        // whose fdatasync fails; the crash keeps `tear` bytes of that write.
        async fn scenario(tear: Option<usize>) -> (SimDisk, Appended, Vec<Vec<u8>>) {
            let sim = SimDisk::new();
            let disk = Disk::simulated(sim.clone());
            let (wal, _) = Wal::open(&disk, Path::new(DIR), opts(), false, |_, _| Ok(()))
                .await
                .unwrap();
            let mut appended = Appended::default();
            for i in 0..2 {
                let b = body(9, i);
                appended.attempted.insert(b.clone());
                appended.acked.insert(wal.append(&b).await.unwrap(), b);
            }
            // Lengths chosen so that the commit holds five records and straddles a block.
            let in_flight: Vec<Vec<u8>> = [300, 2500, 40, 1800, 900]
                .iter()
                .enumerate()
                .map(|(i, &len)| {
                    let mut b = format!("in flight {i} ").into_bytes();
                    b.resize(len, b'k' + i as u8);
                    b
                })
                .collect();
            wal.faults().fail_sync_after(0);
            let wal = Rc::new(wal);
            let tasks: Vec<_> = in_flight
                .iter()
                .map(|b| {
                    let (wal, b) = (wal.clone(), b.clone());
                    glommio::spawn_local(async move { wal.append(&b).await })
                })
                .collect();
            for (t, b) in tasks.into_iter().zip(&in_flight) {
                appended.attempted.insert(b.clone());
                assert!(t.await.is_err(), "its fdatasync failed: never acknowledged");
            }
            let _ = wal.close().await;
            if let Some(bytes) = tear {
                sim.crash(Crash::TearLastWrite { bytes });
            }
            (sim, appended, in_flight)
        }

        // Where the commit lies: the end of the last segment, before the crash.
        let (sim, _, in_flight) = scenario(None).await;
        let disk = Disk::simulated(sim.clone());
        let (_, last) = segment_files(&disk, Path::new(DIR)).unwrap().pop().unwrap();
        let bytes = sim.read_file(&last).unwrap();
        let lens: Vec<usize> = in_flight
            .iter()
            .map(|b| RECORD_HEADER_BYTES + b.len())
            .collect();
        let commit_len: usize = lens.iter().sum();
        let start = bytes.len() - round_up_block(commit_len);
        let (h, _) = decode_record(&bytes, start).unwrap().unwrap();
        assert_eq!(h.seq, 3, "the in-flight commit starts at {start}");
        // Record extents relative to the commit start.
        let mut extents = Vec::new();
        let mut at = 0;
        for len in &lens {
            extents.push((at, at + len));
            at += len;
        }

        let mut tears: Vec<usize> = (0..round_up_block(commit_len)).step_by(97).collect();
        for &(s, e) in &extents {
            tears.extend([
                s,
                s + 1,
                s + RECORD_HEADER_BYTES - 1,
                s + RECORD_HEADER_BYTES,
            ]);
            tears.extend([e - 1, e, e + 1]);
        }
        tears.extend([BLOCK_BYTES - 1, BLOCK_BYTES, BLOCK_BYTES + 1, usize::MAX]);
        tears.sort();
        tears.dedup();
        for tear in tears {
            let (sim, appended, _) = scenario(Some(tear)).await;
            let ctx = format!("torn after {tear} bytes of the commit at {start}");
            let r = recover_and_check(&sim, &appended, &ctx).await;
            let whole = extents.iter().filter(|&&(_, e)| e <= tear).count() as u64;
            assert_eq!(r.replayed, 2 + whole, "{ctx}");
            let cut_inside = extents.iter().any(|&(s, e)| s < tear && tear < e);
            assert_eq!(r.torn_tails, cut_inside as u64, "{ctx}");
        }
    });
}

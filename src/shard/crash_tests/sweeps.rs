//! The sweeps: the workload of [`super`] cut at every disk operation, during recovery, and
//! during the take-over of a removed core's WAL.

use std::rc::Rc;

use super::*;

#[test]
fn power_cut_at_every_shard_operation_keeps_every_acknowledged_line_once() {
    run(|| async {
        let config = config();
        let days = Days::now();
        // The clean run: how many operations there are to cut at, and what they reach.
        let (sim, appended, reached) = run_cut(Cut::Never, Crash::KeepSynced, &config, days).await;
        let ops = sim.ops();
        let found = recover_and_check(&sim, &appended, &config, days, "clean run").await;
        // Everything but the old partition, which retention dropped.
        let today = appended.attempted.values().filter(|l| l.ts >= days.today);
        assert_eq!(found.acked as usize, today.count());
        assert_eq!(found.old_kept, 0);
        // The workload reaches what the sweep is for.
        assert_eq!(appended.acked.len(), appended.attempted.len());
        let old = appended.attempted.values().filter(|l| l.ts < days.today);
        assert_eq!(appended.retention.len(), old.count(), "{reached:?}");
        assert!(
            appended
                .retention
                .values()
                .all(|r| *r == Retention::Dropped),
            "{reached:?}"
        );
        assert!(reached.watermarks > 0, "{reached:?}");
        assert!(reached.head_lines > 0, "{reached:?}");
        // On the simulated disk an encode takes a fixed number of scheduler turns, so waves of
        // appends end while their seal round is in progress, in every run.
        assert!(
            reached.waves_during_seal == OVERLAP_ROUNDS.len(),
            "{reached:?}"
        );
        assert!(reached.retention_dropped_parts >= 2, "{reached:?}");
        assert!(reached.parts_written >= 2 * ROUNDS as u64, "{reached:?}");
        assert!(reached.compactions >= 2, "{reached:?}");
        assert!(reached.wal_segments_created >= 3, "{reached:?}");
        assert!(reached.wal_checkpoint > 0, "{reached:?}");

        let mut totals = Found::default();
        let mut cuts = 0;
        for n in 0..=ops {
            for crash in CRASHES {
                let (sim, appended, _) = run_cut(Cut::DiskDies(n), crash, &config, days).await;
                let ctx = format!("disk dead after {n} of {ops} operations, {crash:?}");
                let f = recover_and_check(&sim, &appended, &config, days, &ctx).await;
                totals.acked += f.acked;
                totals.unacked += f.unacked;
                totals.old_kept += f.old_kept;
                cuts += 1;
            }
        }
        eprintln!(
            "{cuts} cuts over {ops} operations ({reached:?}): {} acknowledged lines found, \
             {} unacknowledged, {} of the old partition",
            totals.acked, totals.unacked, totals.old_kept
        );
        assert!(totals.unacked > 0, "no unacknowledged line ever came back");
    });
}

#[test]
fn one_failed_write_or_sync_anywhere_keeps_every_acknowledged_line_once() {
    run(|| async {
        let config = config();
        let days = Days::now();
        // Writes and syncs are each fewer than all operations: past their last one the cut
        // changes nothing.
        let (sim, _, _) = run_cut(Cut::Never, Crash::KeepSynced, &config, days).await;
        let ops = sim.ops();
        let mut totals = Found::default();
        let mut cuts = 0;
        for n in 0..ops {
            // Only what was synced: the workload goes on after the failure and syncs later
            // writes, so by the power cut there is rarely an unsynced write left to tear.
            for cut in [Cut::OneWrite(n), Cut::OneSync(n)] {
                let (sim, appended, _) = run_cut(cut, Crash::KeepSynced, &config, days).await;
                let ctx = format!("{cut:?}, KeepSynced");
                let f = recover_and_check(&sim, &appended, &config, days, &ctx).await;
                totals.acked += f.acked;
                totals.unacked += f.unacked;
                totals.old_kept += f.old_kept;
                cuts += 1;
            }
        }
        eprintln!(
            "{cuts} one-shot failures: {} acknowledged lines found, {} unacknowledged, {} of \
             the old partition",
            totals.acked, totals.unacked, totals.old_kept
        );
    });
}

#[test]
fn power_cut_during_recovery_then_recovery_again_keeps_every_acknowledged_line_once() {
    run(|| async {
        let config = config();
        let days = Days::now();
        let (sim, _, _) = run_cut(Cut::Never, Crash::KeepSynced, &config, days).await;
        let ops = sim.ops();
        let mut cuts = 0;
        // Every few cut points of the workload (a recovery after each of them is cut at each
        // of its own operations).
        for n in (0..=ops).step_by(13) {
            for crash in [
                Crash::KeepSynced,
                Crash::TearLastWrite { bytes: usize::MAX },
            ] {
                // How many operations the recovery does.
                let (sim, _, _) = run_cut(Cut::DiskDies(n), crash, &config, days).await;
                let before = sim.ops();
                let (disk, shard, _) = recover(&sim, &config, "counting").await;
                let recovery_ops = sim.ops() - before;
                kill(&disk, Some(shard)).await;
                for m in 0..recovery_ops {
                    for second in [Crash::KeepSynced, Crash::TearLastWrite { bytes: 1000 }] {
                        let (sim, appended, _) =
                            run_cut(Cut::DiskDies(n), crash, &config, days).await;
                        let outcome = cut_recovery(&sim, &config, m, second).await;
                        let ctx = format!(
                            "disk dead after {n} operations, {crash:?}, recovery cut after {m} \
                             of {recovery_ops} ({outcome}), {second:?}"
                        );
                        recover_and_check(&sim, &appended, &config, days, &ctx).await;
                        cuts += 1;
                    }
                }
            }
        }
        assert!(cuts > 100, "only {cuts} recoveries were cut");
    });
}

#[test]
fn the_workload_is_deterministic() {
    // The sweeps name a failing cut by its operation number: that must mean the same
    // operation in every run.
    run(|| async {
        let config = config();
        let days = Days::now();
        let mut seen = Vec::new();
        for _ in 0..5 {
            let (sim, appended, reached) =
                run_cut(Cut::Never, Crash::KeepSynced, &config, days).await;
            let disk = Disk::simulated(sim.clone());
            let mut files = Vec::new();
            let mut dirs = vec![std::path::PathBuf::from("/data")];
            while let Some(d) = dirs.pop() {
                for name in disk.list_dir(&d).expect("list") {
                    let p = d.join(name);
                    if disk.is_dir(&p) {
                        dirs.push(p);
                    } else {
                        files.push((p.clone(), sim.read_file(&p).expect("read").len()));
                    }
                }
            }
            files.sort();
            seen.push((
                sim.ops(),
                appended.acked.len(),
                format!("{reached:?}"),
                files,
            ));
        }
        assert!(seen.windows(2).all(|w| w[0] == w[1]), "{seen:#?}");
    });
}

/// Two cores run (shard 1 seals some of its lines, keeps others in its WAL), the power goes,
/// and the server restarts on one core: shard 0 replays shard 1's WAL, seals it into its own
/// store and deletes it, and serves shard 1's store read-only. That take-over is cut at each
/// of its operations, the power goes again, and the next start must still find every
/// acknowledged line exactly once.
#[test]
fn power_cut_during_the_take_over_of_a_removed_core_keeps_every_acknowledged_line_once() {
    run(|| async {
        let one = config();
        let two = config_for(2);
        let days = Days::now();

        // Two cores: shard 1 gets three rounds (the first two sealed by size), shard 0 one.
        async fn two_cores(two: &Config, days: Days) -> (SimDisk, Appended) {
            let sim = SimDisk::new();
            let disk = Disk::simulated(sim.clone());
            let mut appended = Appended {
                attempted: HashMap::new(),
                acked: HashSet::new(),
                retention: HashMap::new(),
            };
            let shards: Vec<Rc<Shard>> = (0..2)
                .map(|id| Rc::new(Shard::with_disk(id, disk.clone())))
                .collect();
            for s in &shards {
                s.recover(two).await.expect("recovery on a healthy disk");
            }
            for (id, r) in [(1, 0), (1, 1), (1, 2), (0, 3)] {
                for b in 0..WAVES * BATCHES_PER_WAVE {
                    let lines = batch_lines(days, r, b);
                    shards[id]
                        .append(encode(&lines), Protocol::LokiPush)
                        .await
                        .expect("append on a healthy disk");
                    for l in lines {
                        appended.acked.insert(l.text.clone());
                        appended.attempted.insert(l.text.clone(), l);
                    }
                }
                if r < 2 {
                    shards[id].seal_round(SealMode::Due).await.expect("seal");
                }
            }
            disk.faults().fail_any_after(0);
            for s in shards {
                let _ = s.close().await;
            }
            sim.crash(Crash::KeepSynced);
            (sim, appended)
        }

        // The take-over, uncut, and how many operations it does.
        let (sim, appended) = two_cores(&two, days).await;
        assert!(Disk::simulated(sim.clone()).exists(&Shard::wal_dir(&one.data_dir, 1)));
        let before = sim.ops();
        recover_and_check(&sim, &appended, &one, days, "take-over").await;
        let (sim, _) = two_cores(&two, days).await;
        let (disk, shard, _) = recover(&sim, &one, "counting").await;
        let ops = sim.ops() - before;
        assert!(
            !disk.exists(&Shard::wal_dir(&one.data_dir, 1)),
            "shard 1's WAL is gone"
        );
        kill(&disk, Some(shard)).await;

        let mut cuts = 0;
        for m in 0..ops {
            for crash in CRASHES {
                let (sim, appended) = two_cores(&two, days).await;
                let outcome = cut_recovery(&sim, &one, m, crash).await;
                let ctx =
                    format!("take-over cut after {m} of {ops} operations ({outcome}), {crash:?}");
                recover_and_check(&sim, &appended, &one, days, &ctx).await;
                cuts += 1;
            }
        }
        assert!(cuts > 40, "only {cuts} cuts");
    });
}

//! Transient failures of sealing on the simulated disk: a round that fails (the disk full,
//! then freed) is retried and loses nothing, reads each entry once meanwhile, and leaves no
//! file holding space; the heads budget holds while sealing fails, refusing pushes after a
//! bounded wait and holding syslog back until sealing works again.

use std::path::Path;
use std::rc::Rc;

use super::seal::SealMode;
use super::{LogsRequest, Protocol, Refusal, Shard};
use crate::config::{Config, ServeArgs};
use crate::logql::parse_log_selector;
use crate::model::{BatchBuilder, Labels, stream_hash};
use crate::query::params::Direction;
use crate::storage::{Disk, SimDisk};
use crate::testing::run_local as run;

/// A one-core configuration on the simulated disk: heads sealed at the smallest block size,
/// never by age, and commits as soon as possible (shared with `scan_tests`).
pub(super) fn config(heads_bytes_max: Option<u64>) -> Config {
    ServeArgs {
        data_dir: Some("/data".into()),
        cores: Some(1),
        seal_bytes: Some(crate::chunk::part::BLOCK_BYTES_TARGET_MIN),
        seal_age: Some("1d".into()),
        wal_commit_interval_us: Some(0),
        heads_bytes_max,
        ..Default::default()
    }
    .resolve(1)
    .expect("a valid configuration")
}

pub(super) fn batch(from: usize, to: usize, pad: usize) -> crate::model::Batch {
    let labels = Labels::from_pairs([("app", "seal")]);
    let id = stream_hash("t", &labels);
    let mut b = BatchBuilder::new("t");
    let now = crate::ingest::listeners::now_ns();
    for i in from..to {
        let line = format!("line {i} {}", "x".repeat(pad));
        b.push(id, &labels, now + i as i64, &line, &[]);
    }
    b.finish()
}

pub(super) async fn lines(shard: &Shard) -> Vec<String> {
    let r = LogsRequest {
        tenants: "t".into(),
        selector: parse_log_selector(r#"{app="seal"}"#, true)
            .expect("a selector")
            .selector,
        start: 0,
        end: i64::MAX,
        limit: 1 << 20,
        direction: Direction::Forward,
        pipeline: Default::default(),
        control: Default::default(),
    };
    let mut out: Vec<String> = shard
        .logs(&r)
        .await
        .expect("the query")
        .streams
        .into_iter()
        .flat_map(|s| s.entries.into_iter().map(|(_, l, ..)| l))
        .collect();
    out.sort();
    out
}

pub(super) fn expected(n: usize) -> Vec<String> {
    let mut v: Vec<String> = (0..n)
        .map(|i| format!("line {i} {}", "x".repeat(100)))
        .collect();
    v.sort();
    v
}

/// Files whose name ends in `.tmp` anywhere on the disk, but the WAL's spare segment (which
/// is meant to exist).
fn stray_tmp_files(sim: &SimDisk) -> Vec<String> {
    let disk = Disk::simulated(sim.clone());
    let mut out = Vec::new();
    let mut dirs = vec![Path::new("/data").to_path_buf()];
    while let Some(d) = dirs.pop() {
        for name in disk.list_dir(&d).unwrap_or_default() {
            let p = d.join(&name);
            if disk.is_dir(&p) {
                dirs.push(p);
            } else if let Some(n) = name.to_str()
                && n.ends_with(".tmp")
                && !n.starts_with("next-")
            {
                out.push(p.display().to_string());
            }
        }
    }
    out
}

#[test]
fn a_seal_round_that_fails_on_a_full_disk_is_retried_and_loses_nothing() {
    run(|| async {
        let sim = SimDisk::new();
        let shard = Rc::new(Shard::with_disk(0, Disk::simulated(sim.clone())));
        shard.recover(&config(None)).await.expect("recovery");
        shard
            .append(batch(0, 200, 100), Protocol::LokiPush)
            .await
            .expect("append");
        // The disk fills: the round's part cannot be written.
        sim.set_capacity(Some(sim.used_bytes()));
        assert!(shard.seal_round(SealMode::All).await.is_err());
        assert_eq!(shard.counters.seal_failures.get(), 1);
        assert!(shard.seal_failed.borrow().is_some());
        assert_eq!(
            shard.sealing.borrow().len(),
            1,
            "the failed round stays readable"
        );
        assert!(
            stray_tmp_files(&sim).is_empty(),
            "{:?}",
            stray_tmp_files(&sim)
        );
        // Lines appended meanwhile go to new heads (the active WAL segment has room), and
        // every line is read once.
        shard
            .append(batch(200, 250, 100), Protocol::LokiPush)
            .await
            .expect("append");
        assert_eq!(lines(&shard).await, expected(250));
        // Space comes back: the next round writes the failed round's heads, then the new.
        sim.set_capacity(None);
        shard.seal_round(SealMode::All).await.expect("the retry");
        assert!(shard.seal_failed.borrow().is_none());
        assert!(shard.sealing.borrow().is_empty());
        assert_eq!(lines(&shard).await, expected(250));
        assert!(
            stray_tmp_files(&sim).is_empty(),
            "{:?}",
            stray_tmp_files(&sim)
        );
        shard.close().await.expect("close");
        drop(shard);
        // After a power cut, the restart finds every line once.
        sim.crash(crate::storage::sim::Crash::KeepSynced);
        let again = Rc::new(Shard::with_disk(0, Disk::simulated(sim.clone())));
        again.recover(&config(None)).await.expect("recovery");
        assert_eq!(lines(&again).await, expected(250));
    });
}

#[test]
fn the_heads_budget_holds_while_sealing_fails() {
    run(|| async {
        let sim = SimDisk::new();
        let shard = Rc::new(Shard::with_disk(0, Disk::simulated(sim.clone())));
        // A 1 MiB budget: appends wait past 2 MiB of unsealed lines.
        shard
            .recover(&config(Some(1 << 20)))
            .await
            .expect("recovery");
        sim.set_capacity(Some(sim.used_bytes() + (6 << 20)));
        // About 2 MiB of lines (no sealer runs in this test): just under the budget.
        for k in 0..20 {
            shard
                .append(batch(k * 100, k * 100 + 100, 1000), Protocol::LokiPush)
                .await
                .expect("append under the budget");
        }
        // Sealing cannot write (the disk is full for parts); one more batch goes over.
        sim.set_capacity(Some(sim.used_bytes()));
        let _ = shard.seal_round(SealMode::All).await;
        shard
            .append(batch(2000, 2100, 1000), Protocol::LokiPush)
            .await
            .expect("the last append under the budget");
        assert!(shard.health().iter().any(|c| c.name() == "heads_full"));
        // A push waits, bounded, then is refused: nothing of it stored.
        let refused = shard
            .append(batch(5000, 5010, 10), Protocol::LokiPush)
            .await
            .expect_err("over the budget");
        assert_eq!(refused.refusal, Refusal::Overloaded);
        // Syslog waits instead, until sealing works again.
        let waiting = {
            let shard = shard.clone();
            glommio::spawn_local(async move {
                shard
                    .append(batch(6000, 6010, 10), Protocol::SyslogTcp)
                    .await
            })
        };
        glommio::timer::sleep(std::time::Duration::from_millis(300)).await;
        sim.set_capacity(None);
        shard
            .seal_round(SealMode::All)
            .await
            .expect("sealing again");
        waiting
            .await
            .expect("the syslog batch, taken once memory is back");
        assert!(shard.health().is_empty(), "{:?}", shard.health());
        let found = lines(&shard).await;
        assert_eq!(found.len(), 2100 + 10);
        assert!(!found.iter().any(|l| l.starts_with("line 5000 ")));
    });
}

/// One quiet stream cannot pin the WAL: past `wal_bytes_max` the heads holding the oldest
/// segments are sealed early, and the checkpoint deletes those segments.
#[test]
fn a_quiet_stream_does_not_pin_the_wal_past_its_bound() {
    run(|| async {
        let mut c = ServeArgs {
            data_dir: Some("/data".into()),
            cores: Some(1),
            seal_bytes: Some(256 << 10),
            seal_age: Some("1d".into()),
            wal_commit_interval_us: Some(0),
            wal_segment_bytes_max: Some(1 << 20),
            wal_bytes_max: Some(3 << 20),
            ..Default::default()
        }
        .resolve(1)
        .expect("a valid configuration");
        c.heads_bytes_max = 64 << 20;
        let sim = SimDisk::new();
        let shard = Rc::new(Shard::with_disk(0, Disk::simulated(sim.clone())));
        shard.recover(&c).await.expect("recovery");
        let quiet = Labels::from_pairs([("app", "quiet")]);
        let mut b = BatchBuilder::new("t");
        b.push(stream_hash("t", &quiet), &quiet, 1, "the only line", &[]);
        shard
            .append(b.finish(), Protocol::LokiPush)
            .await
            .expect("append");
        let mut most_segments = 0;
        for k in 0..60 {
            shard
                .append(batch(k * 100, k * 100 + 100, 1000), Protocol::LokiPush)
                .await
                .expect("append");
            shard.seal_round(SealMode::Due).await.expect("seal");
            let wal = shard.wal.borrow().clone().expect("open");
            most_segments = most_segments.max(wal.segment_first_seqs().len());
        }
        // 3 MiB of 1 MiB segments, plus the active one filling, plus one for a round.
        assert!(most_segments <= 5, "{most_segments} segments");
        assert!(shard.counters.wal_early_seals.get() >= 1);
        assert_eq!(lines(&shard).await.len(), 6000);
    });
}

//! The duplicate check through [`Shard::apply`], as live appends and replay run it: against
//! the live head (in order and out of order), heads taken by a seal round, and fingerprints of
//! sealed heads; the window and the memory bound; replay after a crash on the simulated disk;
//! and a property test against a set of (stream, timestamp, line).

use std::collections::HashSet;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;

use super::super::seal::{SealMode, SealingSet};
use super::super::{DiscardReason, Protocol, Shard};
use super::{EQUAL_TS_SCAN_MAX, RecentlySealed};
use crate::config::{Config, ServeArgs};
use crate::model::{Batch, BatchBuilder, Duplicates, Labels, TimestampNs, stream_hash};
use crate::storage::sim::Crash;
use crate::storage::{Disk, SimDisk};
use crate::testing::run_local as run;

const APPS: [&str; 2] = ["a", "b"];

fn labels(app: &str) -> Labels {
    Labels::from_pairs([("app", app)])
}

fn batch(duplicates: Duplicates, entries: &[(&str, TimestampNs, &str)]) -> Batch {
    let mut b = BatchBuilder::with_duplicates("t", duplicates);
    for &(app, ts, line) in entries {
        let l = labels(app);
        b.push(stream_hash("t", &l), &l, ts, line, &[("trace", "x")]);
    }
    b.finish()
}

/// A shard with no WAL or store: `apply` and the heads only.
fn shard() -> Shard {
    Shard::with_disk(0, Disk::simulated(SimDisk::new()))
}

/// Applies `b` as the live path does (record `seq` of the shard's own WAL); returns the
/// entries that entered heads.
fn apply(shard: &Shard, seq: u64, b: &Batch) -> u64 {
    shard
        .apply(seq, &b.bytes, None, true)
        .expect("a valid batch")
}

fn duplicates_counted(shard: &Shard) -> u64 {
    // Counted as acknowledged batches are applied.
    shard.catch_up();
    shard.counters.discarded[DiscardReason::Duplicate as usize].get()
}

/// The (timestamp, line) of every entry of `app` in its live head and in seal rounds.
fn unsealed(shard: &Shard, app: &str) -> Vec<(TimestampNs, String)> {
    let id = stream_hash("t", &labels(app));
    let mut out = Vec::new();
    let mut add = |h: &super::super::head::StreamHead| {
        if h.id == id {
            out.extend((0..h.len()).map(|i| (h.ts(i), h.entry(i).line.to_string())));
        }
    };
    for set in shard.sealing.borrow().iter() {
        set.heads.iter().for_each(&mut add);
    }
    shard.heads().heads().for_each(&mut add);
    out.sort();
    out
}

/// Takes every head into a seal round, as step 1 of a round does.
fn take_all(shard: &Shard) -> Arc<SealingSet> {
    let taken = shard.heads_mut().take_heads(|_| true);
    let set = Arc::new(SealingSet::new(taken, None));
    shard.sealing.borrow_mut().push(set.clone());
    set
}

/// Commits a round as its commit step does: the set stops being read, its heads are
/// remembered.
fn commit(shard: &Shard, set: &Arc<SealingSet>) {
    shard.sealing.borrow_mut().retain(|s| !Arc::ptr_eq(s, set));
    shard.remember_sealed_runs(super::sealed_runs(&set.heads));
}

#[test]
fn a_batch_applied_twice_is_stored_once() {
    let s = shard();
    let b = batch(
        Duplicates::Drop,
        &[("a", 10, "one"), ("a", 20, "two"), ("b", 10, "one")],
    );
    assert_eq!(apply(&s, 1, &b), 3);
    assert_eq!(apply(&s, 2, &b), 0);
    assert_eq!(duplicates_counted(&s), 3);
    assert_eq!(
        unsealed(&s, "a"),
        [(10, "one".to_string()), (20, "two".to_string())]
    );
    // The record of only duplicates left the heads' seqs alone.
    let id = stream_hash("t", &labels("a"));
    let streams = s.heads();
    let head = streams.head(streams.index_of(id).unwrap());
    assert_eq!((head.first_seq, head.last_seq), (1, 1));
}

#[test]
fn other_time_or_other_line_is_no_duplicate_and_metadata_is_not_compared() {
    let s = shard();
    apply(&s, 1, &batch(Duplicates::Drop, &[("a", 10, "one")]));
    let others = batch(
        Duplicates::Drop,
        &[("a", 10, "two"), ("a", 11, "one"), ("b", 10, "one")],
    );
    assert_eq!(apply(&s, 2, &others), 3);
    // Other metadata, same stream, time and line: the same entry, as in Loki.
    let mut b = BatchBuilder::with_duplicates("t", Duplicates::Drop);
    let l = labels("a");
    b.push(stream_hash("t", &l), &l, 10, "one", &[("trace", "other")]);
    assert_eq!(apply(&s, 3, &b.finish()), 0);
    assert_eq!(duplicates_counted(&s), 1);
}

#[test]
fn duplicates_within_one_batch_are_dropped() {
    let s = shard();
    let b = batch(
        Duplicates::Drop,
        &[
            ("a", 10, "x"),
            ("a", 10, "x"),
            ("a", 10, "y"),
            ("a", 10, "x"),
        ],
    );
    assert_eq!(apply(&s, 1, &b), 2);
    assert_eq!(duplicates_counted(&s), 2);
}

#[test]
fn batches_that_keep_duplicates_store_every_copy() {
    let s = shard();
    let b = batch(Duplicates::Keep, &[("a", 10, "x"), ("a", 10, "x")]);
    assert_eq!(apply(&s, 1, &b), 2);
    assert_eq!(apply(&s, 2, &b), 2);
    assert_eq!(duplicates_counted(&s), 0);
    assert_eq!(unsealed(&s, "a").len(), 4);
    // A later push to the same stream is still checked against them.
    assert_eq!(apply(&s, 3, &batch(Duplicates::Drop, &[("a", 10, "x")])), 0);
}

#[test]
fn out_of_order_head_finds_duplicates_through_its_index() {
    let s = shard();
    let entries: Vec<(TimestampNs, String)> = (0..200)
        .map(|i| ((i * 7919) % 200, format!("line {i}")))
        .collect();
    let b = |es: &[(TimestampNs, String)]| {
        let v: Vec<(&str, TimestampNs, &str)> =
            es.iter().map(|(t, l)| ("a", *t, l.as_str())).collect();
        batch(Duplicates::Drop, &v)
    };
    assert_eq!(apply(&s, 1, &b(&entries)), 200);
    {
        let streams = s.heads();
        let head = &streams.heads().next().unwrap();
        assert!(!head.in_order());
        assert!(
            head.index_bytes() > 0,
            "an out-of-order head keeps an index"
        );
    }
    assert_eq!(apply(&s, 2, &b(&entries[50..150])), 0);
    // Same times, other lines; same lines, other times.
    let shifted: Vec<_> = entries
        .iter()
        .map(|(t, l)| (*t, format!("{l}!")))
        .chain(entries.iter().map(|(t, l)| (t + 1000, l.clone())))
        .collect();
    assert_eq!(apply(&s, 3, &b(&shifted)), 400);
    assert_eq!(duplicates_counted(&s), 100);
}

#[test]
fn in_order_head_keeps_no_index_until_a_long_run_of_one_timestamp() {
    let s = shard();
    let lines: Vec<String> = (0..100).map(|i| format!("same time {i}")).collect();
    let run: Vec<(&str, TimestampNs, &str)> = lines.iter().map(|l| ("a", 5, l.as_str())).collect();
    assert_eq!(
        apply(&s, 1, &batch(Duplicates::Drop, &run[..EQUAL_TS_SCAN_MAX])),
        16
    );
    assert_eq!(s.heads().heads().next().unwrap().index_bytes(), 0);
    assert_eq!(apply(&s, 2, &batch(Duplicates::Drop, &run)), 100 - 16);
    let streams = s.heads();
    assert!(streams.heads().next().unwrap().in_order());
    assert!(streams.heads().next().unwrap().index_bytes() > 0);
    drop(streams);
    assert_eq!(apply(&s, 3, &batch(Duplicates::Drop, &run)), 0);
}

#[test]
fn a_head_never_asked_answers_exactly_without_an_index() {
    let s = shard();
    let b = batch(
        Duplicates::Keep,
        &[
            ("a", 30, "c"),
            ("a", 10, "a"),
            ("a", 20, "b"),
            ("a", 10, "a2"),
        ],
    );
    apply(&s, 1, &b);
    let streams = s.heads();
    let head = &streams.heads().next().unwrap();
    assert_eq!(head.index_bytes(), 0);
    assert!(head.holds(10, "a2"));
    assert!(head.holds(20, "b"));
    assert!(!head.holds(20, "a"));
    assert!(!head.holds(40, "c"));
}

#[test]
fn duplicates_of_heads_in_a_seal_round_and_of_sealed_heads_are_dropped() {
    let s = shard();
    let b = batch(Duplicates::Drop, &[("a", 10, "one"), ("a", 20, "two")]);
    apply(&s, 1, &b);
    let set = take_all(&s);
    assert_eq!(apply(&s, 2, &b), 0, "against the round in progress");
    commit(&s, &set);
    assert_eq!(s.recently_sealed.borrow().len(), 2);
    assert_eq!(apply(&s, 3, &b), 0, "against the fingerprints");
    assert_eq!(
        apply(&s, 4, &batch(Duplicates::Drop, &[("a", 10, "other")])),
        1
    );
    assert_eq!(duplicates_counted(&s), 4);
    // A head that only took entries that keep duplicates leaves no fingerprints.
    apply(&s, 5, &batch(Duplicates::Keep, &[("b", 10, "k")]));
    let set = take_all(&s);
    commit(&s, &set);
    assert_eq!(s.recently_sealed.borrow().len(), 3);
}

#[test]
fn sealed_fingerprints_expire_after_the_window() {
    let s = shard();
    *s.recently_sealed.borrow_mut() = RecentlySealed::new(Duration::ZERO, 1 << 20);
    let b = batch(Duplicates::Drop, &[("a", 10, "one")]);
    apply(&s, 1, &b);
    let set = take_all(&s);
    commit(&s, &set);
    assert_eq!(apply(&s, 2, &b), 1, "the window ended: stored again");
    assert_eq!(s.recently_sealed.borrow().len(), 0);
}

#[test]
fn the_memory_bound_forgets_the_oldest_sealed_entries_first() {
    let s = shard();
    // Room for one sealed head of two entries, not two.
    *s.recently_sealed.borrow_mut() = RecentlySealed::new(Duration::from_secs(600), 200);
    let first = batch(Duplicates::Drop, &[("a", 10, "one"), ("a", 11, "two")]);
    let second = batch(Duplicates::Drop, &[("b", 10, "one"), ("b", 11, "two")]);
    apply(&s, 1, &first);
    let set = take_all(&s);
    commit(&s, &set);
    apply(&s, 2, &second);
    let set = take_all(&s);
    commit(&s, &set);
    assert_eq!(s.recently_sealed.borrow().evicted(), 2);
    assert_eq!(apply(&s, 3, &second), 0, "the newest are remembered");
    assert_eq!(apply(&s, 4, &first), 2, "the oldest were forgotten");
}

fn config() -> Config {
    ServeArgs {
        data_dir: Some("/data".into()),
        cores: Some(1),
        seal_age: Some("1d".into()),
        wal_commit_interval_us: Some(0),
        ..Default::default()
    }
    .resolve(1)
    .expect("a valid configuration")
}

async fn open(sim: &SimDisk) -> (Disk, Rc<Shard>) {
    let disk = Disk::simulated(sim.clone());
    let shard = Rc::new(Shard::with_disk(0, disk.clone()));
    shard.recover(&config()).await.expect("recovery");
    (disk, shard)
}

/// The process dies: nothing more reaches the disk, then the power goes.
async fn crash(sim: &SimDisk, disk: Disk, shard: Rc<Shard>) {
    disk.faults().fail_any_after(0);
    let _ = shard.close().await;
    drop(shard);
    sim.crash(Crash::KeepSynced);
}

async fn append(shard: &Shard, b: &Batch) {
    shard
        .append(b.clone(), Protocol::LokiPush)
        .await
        .expect("append");
}

#[test]
fn replay_drops_the_same_duplicates_as_the_live_path() {
    run(|| async {
        let sim = SimDisk::new();
        let (disk, shard) = open(&sim).await;
        let b = batch(Duplicates::Drop, &[("a", 10, "one"), ("a", 20, "two")]);
        let c = batch(Duplicates::Drop, &[("a", 20, "two"), ("a", 30, "three")]);
        append(&shard, &b).await;
        append(&shard, &b).await;
        append(&shard, &c).await;
        let live = unsealed(&shard, "a");
        assert_eq!(live.len(), 3);
        assert_eq!(duplicates_counted(&shard), 3);
        crash(&sim, disk, shard).await;

        let (disk, shard) = open(&sim).await;
        assert_eq!(unsealed(&shard, "a"), live, "replay kept the same entries");
        assert_eq!(shard.counters.replayed_entries.get(), 3);
        assert_eq!(duplicates_counted(&shard), 0, "counted when first dropped");
        crash(&sim, disk, shard).await;
    });
}

#[test]
fn replay_remembers_entries_sealed_before_the_crash() {
    run(|| async {
        let sim = SimDisk::new();
        let (disk, shard) = open(&sim).await;
        let b = batch(Duplicates::Drop, &[("a", 10, "one"), ("a", 20, "two")]);
        append(&shard, &b).await;
        shard.seal_round(SealMode::All).await.expect("seal");
        // The retry after the seal: dropped against the fingerprints; its record stays in
        // the WAL, after the checkpoint.
        append(&shard, &b).await;
        assert!(unsealed(&shard, "a").is_empty());
        assert_eq!(duplicates_counted(&shard), 2);
        crash(&sim, disk, shard).await;

        let (disk, shard) = open(&sim).await;
        assert!(
            unsealed(&shard, "a").is_empty(),
            "replay dropped the retry against the sealed record it read"
        );
        assert_eq!(shard.recently_sealed.borrow().len(), 2);
        append(&shard, &b).await;
        assert!(unsealed(&shard, "a").is_empty(), "and so does a new retry");
        crash(&sim, disk, shard).await;
    });
}

/// One step of the property test.
#[derive(Debug, Clone)]
enum Op {
    /// A batch that drops duplicates.
    Push(Vec<Key>),
    /// A seal round takes every head.
    Take,
    /// The oldest round in progress commits.
    Commit,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => prop::collection::vec((0..APPS.len(), 0..6i64, 0..3usize), 1..6).prop_map(Op::Push),
        1 => Just(Op::Take),
        1 => Just(Op::Commit),
    ]
}

const LINES: [&str; 3] = ["x", "y", "zz"];

/// An entry of the model: (stream, timestamp, line) indexes.
type Key = (usize, TimestampNs, usize);

proptest! {
    /// Whatever the mix of pushes and seal rounds, an entry is stored exactly when the
    /// model (a set of every (stream, timestamp, line) stored so far) does not hold it, and
    /// the heads and rounds in progress hold exactly the model's unsealed entries.
    #[test]
    fn the_check_agrees_with_a_set_of_entries(ops in prop::collection::vec(op(), 1..40)) {
        let s = shard();
        let mut stored: HashSet<Key> = HashSet::new();
        let mut unsealed_model: HashSet<Key> = HashSet::new();
        let mut rounds: Vec<(Arc<SealingSet>, Vec<Key>)> = Vec::new();
        let mut dropped = 0u64;
        for (seq, op) in ops.into_iter().enumerate() {
            match op {
                Op::Push(entries) => {
                    let mut expected = 0;
                    for e in &entries {
                        if stored.insert(*e) {
                            unsealed_model.insert(*e);
                            expected += 1;
                        } else {
                            dropped += 1;
                        }
                    }
                    let v: Vec<(&str, TimestampNs, &str)> = entries
                        .iter()
                        .map(|&(a, t, l)| (APPS[a], t, LINES[l]))
                        .collect();
                    let got = apply(&s, seq as u64 + 1, &batch(Duplicates::Drop, &v));
                    prop_assert_eq!(got, expected);
                }
                Op::Take => {
                    let taken: Vec<_> = unsealed_model
                        .iter()
                        .filter(|e| !rounds.iter().any(|(_, r)| r.contains(e)))
                        .copied()
                        .collect();
                    rounds.push((take_all(&s), taken));
                }
                Op::Commit => {
                    if !rounds.is_empty() {
                        let (set, entries) = rounds.remove(0);
                        commit(&s, &set);
                        for e in entries {
                            unsealed_model.remove(&e);
                        }
                    }
                }
            }
        }
        prop_assert_eq!(duplicates_counted(&s), dropped);
        for (a, app) in APPS.iter().enumerate() {
            let mut want: Vec<(TimestampNs, String)> = unsealed_model
                .iter()
                .filter(|e| e.0 == a)
                .map(|&(_, t, l)| (t, LINES[l].to_string()))
                .collect();
            want.sort();
            prop_assert_eq!(unsealed(&s, app), want);
        }
    }
}

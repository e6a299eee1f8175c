//! Crash tests of a whole shard on the simulated disk ([`crate::storage::SimDisk`]): WAL,
//! heads, seal rounds, manifest, WAL checkpoints, compaction and retention together.
//!
//! The workload is cut at every disk operation (the disk dies: that operation and every later
//! one fail; or just that one write or sync fails and the disk works on), the process goes
//! away, the power goes (keeping what was synced, or tearing the last unsynced write), and a
//! new shard recovers on what is left. Whatever the cut:
//! - every acknowledged line is found exactly once, with its labels, time and metadata;
//! - no line is found twice, and every line found was appended (acknowledged or not);
//! - a line whose partition retention dropped (durably, while the line was in a part) stays
//!   dropped;
//! - a second crash right after the recovery changes nothing.
//!
//! Streams fill at different rates, so size-triggered seal rounds take some heads and leave
//! others: the checkpoint lags behind the sealed streams' watermarks and replay must skip
//! per stream what is already in parts.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::rc::Rc;
use std::sync::Arc;

use super::seal::SealMode;
use super::{LabelsRequest, LogsRequest, Protocol, Shard, ShardAnswer, ShardRequest};
use crate::config::{Config, ServeArgs};
use crate::model::{BatchBuilder, Labels, TimestampNs, stream_hash};
use crate::query::params::Direction;
use crate::storage::sim::Crash;
use crate::storage::{Disk, SimDisk};

const DAY: i64 = 86_400_000_000_000;
const MS: i64 = 1_000_000;
/// The streams: (tenant, app label, line bytes about); every stream also has `host="h1"`.
/// `web` passes the seal size (4 KiB) with every batch, `ssh` every few rounds, `db` is
/// sealed only by the rounds that seal everything.
const STREAMS: [(&str, &str, usize); 3] = [
    ("acme", "web", 1100),
    ("acme", "db", 40),
    ("globex", "ssh", 190),
];
const TENANTS: [&str; 2] = ["acme", "globex"];
/// Rounds of appends, each followed by a seal round.
const ROUNDS: usize = 6;
/// Rounds whose seal round takes every head (the others take the heads due by size).
const SEAL_ALL_AFTER: [usize; 1] = [3];
/// Rounds whose seal round starts before their last wave of appends: those appends go into
/// new heads while the taken ones are encoded and written.
const OVERLAP_ROUNDS: [usize; 2] = [3, 5];
/// Rounds after which retention and compaction run.
const MAINTAIN_AFTER: [usize; 2] = [2, 5];
/// Rounds whose batches also carry lines of the old partition (which retention drops).
const OLD_ROUNDS: usize = 2;
/// Batches per round, appended concurrently in waves (so that commits group several).
const BATCHES_PER_WAVE: usize = 2;
const WAVES: usize = 2;
const ENTRIES_PER_STREAM: usize = 4;
/// What a power cut keeps: what was synced, and that plus a torn last write (inside its first
/// block, its whole first block, all of it: the write landed but its sync never returned).
const CRASHES: [Crash; 4] = [
    Crash::KeepSynced,
    Crash::TearLastWrite { bytes: 1000 },
    Crash::TearLastWrite { bytes: 4096 },
    Crash::TearLastWrite { bytes: usize::MAX },
];

use crate::testing::run_local as run;

/// One core, the smallest seal size, a commit per wakeup (no commit tick) and a seal age no
/// test reaches (seal rounds take heads by size only): runs are deterministic. Retention of
/// three days.
fn config() -> Config {
    config_for(1)
}

fn config_for(cores: usize) -> Config {
    let mut c = ServeArgs {
        data_dir: Some("/data".into()),
        cores: Some(cores),
        seal_bytes: Some(crate::chunk::part::BLOCK_BYTES_TARGET_MIN),
        seal_age: Some("1d".into()),
        retention: Some("3d".into()),
        wal_commit_interval_us: Some(0),
        ..Default::default()
    }
    .resolve(cores)
    .expect("a valid configuration");
    // Below the flag's 1 MiB floor (the WAL's own floor is two blocks), so that the few KiB
    // of this workload roll segments over and checkpoints delete whole segments.
    c.wal_segment_bytes_max = 16 << 10;
    c
}

/// One log line as the test compares them. Texts are unique, so a text names its line.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Line {
    tenant: String,
    app: String,
    ts: TimestampNs,
    text: String,
    metadata: Vec<(String, String)>,
}

/// The partitions the workload writes into: today's (kept) and one ten days old (dropped by
/// the three-day retention). Retention compares with the wall clock, so these are real dates.
#[derive(Clone, Copy)]
struct Days {
    today: TimestampNs,
    old: TimestampNs,
}

impl Days {
    fn now() -> Days {
        let today = crate::store::paths::partition_start(crate::ingest::listeners::now_ns(), DAY);
        Days {
            today,
            old: today - 10 * DAY,
        }
    }
}

/// What retention did to one acknowledged line of the old partition, as far as the workload
/// knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Retention {
    /// Never dropped: the line must be found once.
    Kept,
    /// A retention pass touched the disk while the line was in a part, but no drop reported
    /// success: found once or not at all.
    Maybe,
    /// A drop committed (its manifest is durable) while the line was in a part: never found.
    Dropped,
}

/// What the workload did.
struct Appended {
    /// Every line handed to an append, by text.
    attempted: HashMap<String, Line>,
    /// Texts of the lines whose append returned `Ok`.
    acked: HashSet<String>,
    /// Acknowledged lines of the old partition that retention may have dropped (absent:
    /// [`Retention::Kept`]).
    retention: HashMap<String, Retention>,
}

/// What a clean run reached, to check that the sweep cuts through everything it means to.
#[derive(Debug, Default)]
struct Reached {
    parts_written: u64,
    compactions: u64,
    retention_dropped_parts: u64,
    wal_segments_created: u64,
    wal_checkpoint: u64,
    /// Streams whose watermark is above the checkpoint at the end (replay skips per stream).
    watermarks: usize,
    /// Lines in heads at the end (replayed by the next start).
    head_lines: usize,
    /// Waves of appends made durable while a seal round was encoding or writing.
    waves_during_seal: usize,
}

/// The lines of batch `b` of round `r` (one tenant's streams).
fn batch_lines(days: Days, r: usize, b: usize) -> Vec<Line> {
    let tenant = TENANTS[b % TENANTS.len()];
    let mut out = Vec::new();
    for (si, &(t, app, bytes)) in STREAMS.iter().enumerate() {
        if t != tenant {
            continue;
        }
        let mut starts = vec![days.today];
        if r < OLD_ROUNDS && b < TENANTS.len() {
            starts.push(days.old);
        }
        for start in starts {
            for i in 0..ENTRIES_PER_STREAM {
                let slot = ((r * WAVES * BATCHES_PER_WAVE + b) * 10) as i64;
                // Stream 1 arrives newest first (heads sort before sealing); entries 0 and 1
                // of the others share a timestamp (ties).
                let within = match si {
                    1 => (ENTRIES_PER_STREAM - i) as i64,
                    _ => i.max(1) as i64,
                };
                let mut text = format!(
                    "{tenant}/{app} round {r} batch {b} entry {i} day {}",
                    start / DAY
                );
                let pad = bytes.saturating_sub(text.len()) + (r * 7 + b * 13 + i * 29) % 40;
                text.extend(std::iter::repeat_n((b'a' + (i % 26) as u8) as char, pad));
                let metadata = if i % 3 == 0 {
                    vec![("trace_id".to_string(), format!("r{r}b{b}i{i}"))]
                } else {
                    Vec::new()
                };
                out.push(Line {
                    tenant: tenant.to_string(),
                    app: app.to_string(),
                    ts: start + (slot + within) * MS,
                    text,
                    metadata,
                });
            }
        }
    }
    out
}

fn labels_of(app: &str) -> Labels {
    Labels::from_pairs([("app", app), ("host", "h1")])
}

fn encode(lines: &[Line]) -> crate::model::Batch {
    let mut b = BatchBuilder::new(&lines[0].tenant);
    for l in lines {
        let labels = labels_of(&l.app);
        let md: Vec<(&str, &str)> = l
            .metadata
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        b.push(stream_hash(&l.tenant, &labels), &labels, l.ts, &l.text, &md);
    }
    b.finish()
}

/// Texts of the lines in heads (live, or taken by a seal round that did not commit): the
/// lines that are not in parts.
fn lines_in_heads(shard: &Shard) -> HashSet<String> {
    let mut out = HashSet::new();
    let mut add = |h: &super::head::StreamHead| {
        for i in 0..h.len() {
            out.insert(h.entry(i).line.to_string());
        }
    };
    for h in shard.heads().heads() {
        add(h);
    }
    for set in shard.sealing.borrow().iter() {
        for h in &set.heads {
            add(h);
        }
    }
    out
}

/// Starts a seal round (none once sealing failed, as the sealer does) and lets it run until
/// it has taken its heads and waits for their encoding, or has ended.
async fn start_seal_round(shard: &Rc<Shard>, mode: SealMode) -> glommio::Task<()> {
    let ended = Rc::new(std::cell::Cell::new(false));
    let (s, e) = (shard.clone(), ended.clone());
    let task = glommio::spawn_local(async move {
        if s.seal_failed.borrow().is_none() {
            let _ = s.seal_round(mode).await;
        }
        e.set(true);
    });
    for _ in 0..1000 {
        if ended.get() || !shard.sealing.borrow().is_empty() {
            break;
        }
        futures_lite::future::yield_now().await;
    }
    task
}

/// The server's life on `disk` until the workload ends: recover, then rounds of concurrent
/// appends each followed by a seal round (none once sealing failed, as the sealer does), with
/// retention and compaction after some rounds. Whatever fails is what the disk's fault plan
/// made fail. Returns the shard (still running) and what was appended.
async fn workload(
    disk: &Disk,
    config: &Config,
    days: Days,
    ctx: &str,
) -> (Option<Rc<Shard>>, Appended, Reached) {
    let log = Rc::new(RefCell::new(Appended {
        attempted: HashMap::new(),
        acked: HashSet::new(),
        retention: HashMap::new(),
    }));
    let shard = Rc::new(Shard::with_disk(0, disk.clone()));
    if shard.recover(config).await.is_err() {
        let appended = Rc::try_unwrap(log).ok().expect("no tasks").into_inner();
        return (None, appended, Reached::default());
    }
    let sim = disk.sim().expect("a simulated disk").clone();
    let mut waves_during_seal = 0;
    for r in 0..ROUNDS {
        let mode = if SEAL_ALL_AFTER.contains(&r) {
            SealMode::All
        } else {
            SealMode::Due
        };
        let mut overlapped = None;
        for w in 0..WAVES {
            if w == WAVES - 1 && OVERLAP_ROUNDS.contains(&r) {
                overlapped = Some(start_seal_round(&shard, mode).await);
            }
            let tasks: Vec<_> = (0..BATCHES_PER_WAVE)
                .map(|k| {
                    let b = w * BATCHES_PER_WAVE + k;
                    let lines = batch_lines(days, r, b);
                    {
                        let mut l = log.borrow_mut();
                        for line in &lines {
                            l.attempted.insert(line.text.clone(), line.clone());
                        }
                    }
                    let (shard, log) = (shard.clone(), log.clone());
                    glommio::spawn_local(async move {
                        if shard
                            .append(encode(&lines), Protocol::LokiPush)
                            .await
                            .is_ok()
                        {
                            log.borrow_mut()
                                .acked
                                .extend(lines.into_iter().map(|l| l.text));
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await;
            }
            if overlapped.is_some() && !shard.sealing.borrow().is_empty() {
                waves_during_seal += 1;
                let ctx = format!("{ctx}: while round {r} seals");
                let found = everything(&shard, &ctx).await;
                check_live(&found, &log.borrow(), days, &ctx);
            }
        }
        match overlapped {
            Some(round) => round.await,
            None => {
                if shard.seal_failed.borrow().is_none() {
                    let _ = shard.seal_round(mode).await;
                }
            }
        }
        if MAINTAIN_AFTER.contains(&r) {
            let settings = shard.seal_settings.get().expect("recovered");
            let dropped = || shard.metrics().storage.retention_dropped_parts;
            let (ops_before, dropped_before) = (sim.ops(), dropped());
            // Lines in heads are not in the partition retention drops (a restart brings them
            // back from the WAL, even those of a seal round that failed).
            let in_heads = lines_in_heads(&shard);
            shard.maintain(settings).await;
            let outcome = if dropped() > dropped_before {
                Retention::Dropped
            } else if sim.ops() != ops_before {
                Retention::Maybe
            } else {
                Retention::Kept
            };
            let mut l = log.borrow_mut();
            let l = &mut *l;
            for text in &l.acked {
                if l.attempted[text].ts >= days.today || in_heads.contains(text) {
                    continue;
                }
                let state = l.retention.entry(text.clone()).or_insert(Retention::Kept);
                *state = match (*state, outcome) {
                    (Retention::Dropped, _) | (_, Retention::Dropped) => Retention::Dropped,
                    (Retention::Maybe, _) | (_, Retention::Maybe) => Retention::Maybe,
                    _ => Retention::Kept,
                };
            }
        }
    }
    let m = shard.metrics();
    let reached = Reached {
        parts_written: m.storage.parts_written,
        compactions: m.storage.compactions,
        retention_dropped_parts: m.storage.retention_dropped_parts,
        wal_segments_created: m.wal.as_ref().map_or(0, |w| w.segments_created),
        wal_checkpoint: m.storage.wal_checkpoint,
        watermarks: shard
            .store
            .borrow()
            .as_ref()
            .map_or(0, |s| s.manifest().watermarks.len()),
        head_lines: lines_in_heads(&shard).len(),
        waves_during_seal,
    };
    let appended = Rc::try_unwrap(log).ok().expect("tasks ended").into_inner();
    let ctx = format!("{ctx}: at the end");
    check_live(&everything(&shard, &ctx).await, &appended, days, &ctx);
    (Some(shard), appended, reached)
}

/// The process dies: its disk handle fails everything from now on (so nothing it still runs
/// reaches the disk), and the shard and its WAL committer go away.
async fn kill(disk: &Disk, shard: Option<Rc<Shard>>) {
    disk.faults().fail_any_after(0);
    if let Some(shard) = shard {
        // Ends the committer task (nothing of it reaches the dead disk); the result is the
        // dead disk's.
        let _ = shard.close().await;
        drop(shard);
    }
}

/// Every line a shard answers with, per tenant, over all time; checks that the index stats
/// count the same lines.
async fn everything(shard: &Shard, ctx: &str) -> Vec<Line> {
    let selector = crate::logql::parse_log_selector(r#"{host="h1"}"#, true)
        .expect("selector")
        .selector;
    let mut out = Vec::new();
    for tenant in TENANTS {
        let req = LogsRequest {
            tenants: (*tenant).into(),
            selector: selector.clone(),
            start: 0,
            end: i64::MAX,
            limit: 1 << 20,
            direction: Direction::Forward,
            pipeline: Default::default(),
            control: Default::default(),
        };
        let found_before = out.len();
        match shard.answer(ShardRequest::Logs(Arc::new(req))).await {
            ShardAnswer::Logs(p) => {
                for s in p.streams {
                    let app = s.labels.get("app").expect("app label").to_string();
                    assert_eq!(s.labels, labels_of(&app), "{ctx}");
                    for (ts, text, md, _) in s.entries {
                        out.push(Line {
                            tenant: tenant.to_string(),
                            app: app.clone(),
                            ts,
                            text,
                            metadata: md,
                        });
                    }
                }
            }
            other => panic!("{ctx}: the query of {tenant} failed: {other:?}"),
        }
        let req = LabelsRequest {
            tenant: tenant.to_string(),
            matchers: selector.matchers.clone(),
            start: 0,
            end: i64::MAX,
        };
        match shard.answer(ShardRequest::Stats(Arc::new(req))).await {
            ShardAnswer::Stats(s, _) => assert_eq!(
                s.entries,
                (out.len() - found_before) as u64,
                "{ctx}: index stats of {tenant} disagree with the query"
            ),
            other => panic!("{ctx}: the stats of {tenant} failed: {other:?}"),
        }
    }
    out.sort();
    out
}

/// Recovers a new shard on `sim` (a new process: a new disk handle with a healthy fault plan)
/// and returns it with every line it holds.
async fn recover(sim: &SimDisk, config: &Config, ctx: &str) -> (Disk, Rc<Shard>, Vec<Line>) {
    let disk = Disk::simulated(sim.clone());
    let shard = Rc::new(Shard::with_disk(0, disk.clone()));
    shard
        .recover(config)
        .await
        .unwrap_or_else(|e| panic!("{ctx}: recovery failed: {e}"));
    let lines = everything(&shard, ctx).await;
    (disk, shard, lines)
}

/// What a recovery found, for the sweep to check that it reaches the cases it means to.
#[derive(Default)]
struct Found {
    acked: u64,
    unacked: u64,
    old_kept: u64,
}

fn check(found: &[Line], appended: &Appended, days: Days, ctx: &str) -> Found {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for l in found {
        let Some(expected) = appended.attempted.get(&l.text) else {
            panic!("{ctx}: a line that was never appended: {l:?}");
        };
        assert_eq!(l, expected, "{ctx}: a line came back changed");
        *counts.entry(l.text.as_str()).or_default() += 1;
    }
    let mut f = Found::default();
    for (text, &n) in &counts {
        assert_eq!(n, 1, "{ctx}: found {n} times: {text}");
        if appended.acked.contains(*text) {
            f.acked += 1;
        } else {
            f.unacked += 1;
        }
    }
    let old_partition = |l: &Line| l.ts < days.today;
    for text in &appended.acked {
        let line = &appended.attempted[text];
        let n = counts.get(text.as_str()).copied().unwrap_or(0);
        if old_partition(line) {
            match appended.retention.get(text).unwrap_or(&Retention::Kept) {
                Retention::Kept => {
                    assert_eq!(n, 1, "{ctx}: acknowledged (old partition) lost: {text}")
                }
                Retention::Maybe => {}
                Retention::Dropped => {
                    assert_eq!(n, 0, "{ctx}: dropped by retention, yet back: {text}")
                }
            }
            f.old_kept += n as u64;
        } else {
            assert_eq!(n, 1, "{ctx}: acknowledged line lost: {text}");
        }
    }
    f
}

/// Where the workload's disk fails.
#[derive(Debug, Clone, Copy)]
enum Cut {
    Never,
    /// The operation after `n` more and every later one fail (a dead disk, a power cut).
    DiskDies(u64),
    /// Only the write after `n` more writes fails; the disk works on.
    OneWrite(u64),
    /// Only the sync (of a file or a directory) after `n` more syncs fails.
    OneSync(u64),
}

/// The workload on a fresh disk that fails as `cut` says, then the process dies and the power
/// goes.
async fn run_cut(
    cut: Cut,
    crash: Crash,
    config: &Config,
    days: Days,
) -> (SimDisk, Appended, Reached) {
    let sim = SimDisk::new();
    let disk = Disk::simulated(sim.clone());
    match cut {
        Cut::Never => {}
        Cut::DiskDies(n) => disk.faults().fail_any_after(n),
        Cut::OneWrite(n) => disk.faults().fail_write_after(n),
        Cut::OneSync(n) => disk.faults().fail_sync_after(n),
    }
    let ctx = format!("{cut:?} before the crash");
    let (shard, appended, reached) = workload(&disk, config, days, &ctx).await;
    kill(&disk, shard).await;
    sim.crash(crash);
    (sim, appended, reached)
}

/// Recovers, checks, crashes again right after the recovery and checks that a second
/// recovery finds the same lines; then appends to the recovered shard (a size-triggered seal
/// round between two batches), crashes and checks that a third recovery finds those lines
/// too: the WAL's seqs go on past everything the manifest counts as sealed.
async fn recover_and_check(
    sim: &SimDisk,
    appended: &Appended,
    config: &Config,
    days: Days,
    ctx: &str,
) -> Found {
    let (disk, shard, first) = recover(sim, config, ctx).await;
    let found = check(&first, appended, days, ctx);
    kill(&disk, Some(shard)).await;
    sim.crash(Crash::KeepSynced);
    let ctx2 = format!("{ctx}, then a crash right after recovery");
    let (disk, shard, second) = recover(sim, config, &ctx2).await;
    assert!(
        first == second,
        "{ctx2}: the second recovery found {} lines, the first {}",
        second.len(),
        first.len()
    );
    let mut expected = second;
    for b in 0..TENANTS.len() {
        let lines = batch_lines(days, ROUNDS, b);
        shard
            .append(encode(&lines), Protocol::LokiPush)
            .await
            .unwrap_or_else(|e| panic!("{ctx2}: appending after recovery: {e}"));
        expected.extend(lines);
        if b == 0 {
            shard
                .seal_round(SealMode::Due)
                .await
                .unwrap_or_else(|e| panic!("{ctx2}: sealing after recovery: {e}"));
        }
    }
    expected.sort();
    kill(&disk, Some(shard)).await;
    sim.crash(Crash::KeepSynced);
    let ctx3 = format!("{ctx2}, appends, a crash");
    let (disk, shard, third) = recover(sim, config, &ctx3).await;
    assert!(
        third == expected,
        "{ctx3}: the third recovery found {} lines, {} expected",
        third.len(),
        expected.len()
    );
    kill(&disk, Some(shard)).await;
    found
}

/// While the shard runs (the disk dead or not), a query finds every acknowledged line of
/// today's partition exactly once (the old partition's may be dropped by retention), and
/// nothing else twice or never appended.
/// Recovers shard 0 on `sim` with the disk dying after `m` operations, then the process goes
/// and the power with it (`crash`). Says how the cut recovery itself ended, for messages.
async fn cut_recovery(sim: &SimDisk, config: &Config, m: u64, crash: Crash) -> &'static str {
    let disk = Disk::simulated(sim.clone());
    disk.faults().fail_any_after(m);
    let shard = Rc::new(Shard::with_disk(0, disk.clone()));
    let outcome = if shard.recover(config).await.is_ok() {
        "it succeeded"
    } else {
        "it failed"
    };
    kill(&disk, Some(shard)).await;
    sim.crash(crash);
    outcome
}

fn check_live(found: &[Line], appended: &Appended, days: Days, ctx: &str) {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for l in found {
        let Some(expected) = appended.attempted.get(&l.text) else {
            panic!("{ctx}: a line that was never appended: {l:?}");
        };
        assert_eq!(l, expected, "{ctx}: a line came back changed");
        let n = counts.entry(l.text.as_str()).or_default();
        *n += 1;
        assert_eq!(*n, 1, "{ctx}: found twice: {}", l.text);
    }
    for text in &appended.acked {
        if appended.attempted[text].ts >= days.today {
            assert!(
                counts.contains_key(text.as_str()),
                "{ctx}: acknowledged line not found: {text}"
            );
        }
    }
}

mod sweeps;

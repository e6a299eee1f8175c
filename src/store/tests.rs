//! The store on the simulated disk: compaction, retention and seal-like writes keep every
//! acknowledged line exactly once, whatever operation a crash cuts them at; queries that
//! took parts keep reading them after the parts are dropped.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use super::*;
use crate::chunk::{DecodedBlock, EntryInput, StreamBlockInput};
use crate::model::{Labels, stream_hash};
use crate::storage::SimDisk;
use crate::storage::sim::Crash;

const DAY: i64 = 86_400_000_000_000;
/// 2025-11-25T00:00Z.
const DAY0: i64 = 1_764_028_800_000_000_000;
const DATA_DIR: &str = "/data";
const CRASHES: [Crash; 3] = [
    Crash::KeepSynced,
    Crash::TearLastWrite { bytes: 4096 },
    Crash::TearLastWrite { bytes: 1000 },
];

use crate::testing::corpus_dir;
use crate::testing::run_local as run;

/// One entry, as the tests compare them: found exactly once, or the test fails.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Line {
    stream: u64,
    ts: i64,
    line: String,
    metadata: Vec<(String, String)>,
}

struct TestStream {
    id: u64,
    tenant: &'static str,
    labels: Labels,
    corpus: Vec<String>,
}

/// Three streams of two tenants, each with the lines of one loghub file.
fn test_streams() -> Vec<TestStream> {
    [
        ("acme", "Apache_2k.log"),
        ("acme", "HDFS_2k.log"),
        ("globex", "OpenSSH_2k.log"),
    ]
    .into_iter()
    .map(|(tenant, file)| {
        let labels = Labels::from_pairs([("app", file), ("host", "h1")]);
        let path = corpus_dir().join(file);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("the loghub corpus file {}: {e}", path.display()));
        TestStream {
            id: stream_hash(tenant, &labels),
            tenant,
            labels,
            corpus: text.lines().map(str::to_string).collect(),
        }
    })
    .collect()
}

/// A part to write, and the lines it holds.
#[derive(Clone)]
struct FixturePart {
    partition_start: i64,
    bytes: Vec<u8>,
    entries: u64,
    min_ts: i64,
    max_ts: i64,
    lines: Vec<Line>,
}

/// Part `k` of the partition starting at `partition_start`: `per_stream` corpus lines of
/// each stream. Timestamps repeat across parts (every third line has the same time in every
/// part: ties) and interleave otherwise.
fn make_part(
    streams: &[TestStream],
    partition_start: i64,
    k: usize,
    per_stream: usize,
) -> FixturePart {
    make_part_with(streams, partition_start, k, per_stream, &test_opts().seal)
}

/// [`make_part`], encoded with `opts`.
fn make_part_with(
    streams: &[TestStream],
    partition_start: i64,
    k: usize,
    per_stream: usize,
    opts: &crate::chunk::PartWriterOptions,
) -> FixturePart {
    let mut lines = Vec::new();
    let mut per: Vec<Vec<Line>> = Vec::new();
    for s in streams {
        let mut v = Vec::new();
        for i in 0..per_stream {
            let line = s.corpus[(k * per_stream + i) % s.corpus.len()].clone();
            let jitter = if i % 3 == 0 { 0 } else { k as i64 };
            let metadata = if i % 4 == 0 {
                vec![("trace_id".to_string(), format!("t{k}-{i}"))]
            } else {
                Vec::new()
            };
            v.push(Line {
                stream: s.id,
                ts: partition_start + 1000 * i as i64 + jitter,
                line,
                metadata,
            });
        }
        per.push(v);
    }
    let md: Vec<Vec<Vec<(&str, &str)>>> = per
        .iter()
        .map(|v| {
            v.iter()
                .map(|l| {
                    l.metadata
                        .iter()
                        .map(|(a, b)| (a.as_str(), b.as_str()))
                        .collect()
                })
                .collect()
        })
        .collect();
    let entries: Vec<Vec<EntryInput<'_>>> = per
        .iter()
        .zip(&md)
        .map(|(v, m)| {
            v.iter()
                .zip(m)
                .map(|(l, m)| (l.ts, l.line.as_str(), m.as_slice()))
                .collect()
        })
        .collect();
    let inputs: Vec<StreamBlockInput<'_>> = streams
        .iter()
        .zip(&entries)
        .map(|(s, e)| StreamBlockInput {
            stream_id: s.id,
            tenant: s.tenant,
            labels: &s.labels,
            entries: e,
        })
        .collect();
    let bytes = encode_now(&inputs, opts).expect("encode");
    for v in per {
        lines.extend(v);
    }
    FixturePart {
        partition_start,
        bytes,
        entries: lines.len() as u64,
        min_ts: lines.iter().map(|l| l.ts).min().expect("lines"),
        max_ts: lines.iter().map(|l| l.ts).max().expect("lines"),
        lines,
    }
}

/// Small blocks (several per stream and part), fast zstd levels, no I/O budget.
fn test_opts() -> StoreOptions {
    let mut o = StoreOptions {
        compaction_bytes_per_second: 0,
        ..StoreOptions::default()
    };
    o.seal.zstd_level = 1;
    o.seal.block_bytes_target = crate::chunk::part::BLOCK_BYTES_TARGET_MIN;
    o.compact.zstd_level = 3;
    o.compact.block_bytes_target = crate::chunk::part::BLOCK_BYTES_TARGET_MIN;
    // The fixtures' timestamps are old: cold recompression would rewrite every partition and
    // hide the merges these tests count (it has its own test in `compaction`).
    o.compaction.recompress_cold_after = None;
    o
}

fn sorted(mut v: Vec<Line>) -> Vec<Line> {
    v.sort();
    v
}

fn lines_of(parts: &[&FixturePart]) -> Vec<Line> {
    sorted(parts.iter().flat_map(|p| p.lines.iter().cloned()).collect())
}

async fn open_store(sim: &SimDisk) -> Store {
    open_store_with(sim, test_opts()).await
}

async fn open_store_with(sim: &SimDisk, opts: StoreOptions) -> Store {
    Store::open(
        Disk::simulated(sim.clone()),
        Path::new(DATA_DIR),
        0,
        opts,
        true,
    )
    .await
    .expect("open the store")
}

/// [`test_opts`] with cold compaction on (the fixtures' days are long past), at a fast level.
fn cold_opts() -> StoreOptions {
    let mut o = test_opts();
    o.compaction.recompress_cold_after = Some(std::time::Duration::from_secs(3600));
    o.cold.zstd_level = 3;
    o.cold.block_bytes_target = crate::chunk::part::BLOCK_BYTES_TARGET_MIN;
    o
}

/// Writes parts and names them in one manifest change, as a seal round does.
async fn seal_like(store: &Store, parts: &[&FixturePart]) -> Result<(), StoreError> {
    let _guard = store.lock().await;
    let mut add = Vec::new();
    for p in parts {
        add.push(
            store
                .write_part(NewPart {
                    partition_start: p.partition_start,
                    bytes: p.bytes.clone(),
                    level: 0,
                    entries: p.entries,
                    min_ts: p.min_ts,
                    max_ts: p.max_ts,
                })
                .await?,
        );
    }
    store
        .commit_locked(
            Change {
                add,
                ..Change::default()
            },
            || {},
        )
        .await
}

/// A store on a new simulated disk holding `parts`, one seal round each.
async fn build(parts: &[FixturePart]) -> (SimDisk, Rc<Store>) {
    build_with(parts, test_opts()).await
}

async fn build_with(parts: &[FixturePart], opts: StoreOptions) -> (SimDisk, Rc<Store>) {
    let sim = SimDisk::new();
    let store = open_store_with(&sim, opts).await;
    for p in parts {
        seal_like(&store, &[p]).await.expect("seal");
    }
    (sim, Rc::new(store))
}

/// Every entry of `parts`, sorted.
async fn read_parts(parts: &[Rc<LoadedPart>]) -> Vec<Line> {
    let mut out = Vec::new();
    for p in parts {
        for (id, _) in stream_ids(p).await {
            out.extend(read_stream(p, id).await);
        }
    }
    sorted(out)
}

async fn read_all(store: &Store) -> Vec<Line> {
    read_parts(&store.parts()).await
}

async fn stream_ids(p: &LoadedPart) -> Vec<(u64, String)> {
    p.tail(None)
        .await
        .expect("read a part's metadata")
        .reader()
        .streams()
        .iter()
        .map(|s| (s.id.to_native(), s.tenant.as_str().to_string()))
        .collect()
}

/// The entries of one stream of a part, in stored order.
async fn read_stream(p: &LoadedPart, stream: u64) -> Vec<Line> {
    let tail = p.tail(None).await.expect("read a part's metadata");
    let r = tail.reader();
    let blocks = r
        .meta()
        .stream_index(stream)
        .map(|i| r.streams()[i].block_range())
        .unwrap_or(0..0);
    let mut out = Vec::new();
    let mut b = DecodedBlock::new();
    for i in blocks {
        p.read_block(&r, i, &mut b).await.expect("read a block");
        out.extend(b.iter().map(|e| {
            Line {
                stream,
                ts: e.ts,
                line: e.line.to_string(),
                metadata: e
                    .metadata
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            }
        }));
    }
    out
}

/// Files under `parts/` are exactly the parts the manifest names; no empty partition
/// directory, no unfinished manifest, nothing quarantined.
fn assert_no_garbage(store: &Store) {
    let disk = store.disk();
    let named: HashSet<PathBuf> = store.parts().iter().map(|p| p.path.clone()).collect();
    assert_eq!(store.manifest().parts.len(), named.len());
    let parts_dir = store.paths().parts();
    let mut seen = 0;
    for d in disk.list_dir(&parts_dir).expect("list") {
        let d = parts_dir.join(d);
        assert!(
            disk.is_dir(&d),
            "{} is not a partition directory",
            d.display()
        );
        let files = disk.list_dir(&d).expect("list");
        assert!(
            !files.is_empty(),
            "empty partition directory {}",
            d.display()
        );
        for f in files {
            let f = d.join(f);
            assert!(named.contains(&f), "unnamed file {}", f.display());
            seen += 1;
        }
    }
    assert_eq!(seen, named.len(), "a named part has no file");
    assert!(!disk.exists(&store.paths().manifest_tmp()));
    assert!(
        disk.list_dir(&store.paths().quarantine())
            .expect("list")
            .is_empty()
    );
}

/// A change to a store whose every crash point is tried.
trait Scenario {
    /// The parts the store holds before the step.
    fn initial(&self) -> &[FixturePart];
    /// The step; `true` if it did all it meant to.
    async fn step(&self, store: &Store) -> bool;
    /// The line sets allowed after a crash at any point of the step.
    fn allowed(&self) -> Vec<Vec<Line>>;
    /// Finishes the work after recovery (as the running server would) and checks the end
    /// state.
    async fn finish(&self, store: &Store);
    /// The store's options.
    fn opts(&self) -> StoreOptions {
        test_opts()
    }
}

/// Runs the step once cleanly to count its disk operations, then for each operation `n`
/// and each crash kind: builds the store again, lets the disk fail from operation `n` on,
/// runs the step, crashes, reopens the store and checks the lines, the files, and that the
/// work can be finished.
async fn sweep(s: &impl Scenario) {
    let (sim, store) = build_with(s.initial(), s.opts()).await;
    let before = sim.ops();
    assert!(s.step(&store).await, "the step succeeds on a healthy disk");
    let ops = sim.ops() - before;
    assert!(ops > 0);
    let allowed = s.allowed();
    let mut outcomes = HashSet::new();
    for n in 0..=ops {
        for how in CRASHES {
            let (sim, store) = build_with(s.initial(), s.opts()).await;
            store.disk().faults().fail_any_after(n);
            let done = s.step(&store).await;
            assert!(n < ops || done, "no failure is injected at n = {ops}");
            drop(store);
            sim.crash(how);
            let store = open_store_with(&sim, s.opts()).await;
            assert_no_garbage(&store);
            let lines = read_all(&store).await;
            let Some(k) = allowed.iter().position(|a| *a == lines) else {
                panic!(
                    "crash after {n} of {ops} operations ({how:?}): {} lines, not an allowed set",
                    lines.len()
                );
            };
            outcomes.insert(k);
            s.finish(&store).await;
            assert_no_garbage(&store);
        }
    }
    assert_eq!(
        outcomes.len(),
        allowed.len(),
        "every allowed outcome is reached by some crash point"
    );
}

struct CompactionScenario {
    parts: Vec<FixturePart>,
}

impl CompactionScenario {
    /// Five small parts of day 0 (compacted), two of day 1 (too few to be).
    fn new() -> CompactionScenario {
        let streams = test_streams();
        let mut parts: Vec<FixturePart> =
            (0..5).map(|k| make_part(&streams, DAY0, k, 40)).collect();
        parts.extend((0..2).map(|k| make_part(&streams, DAY0 + DAY, 5 + k, 40)));
        CompactionScenario { parts }
    }
}

impl Scenario for CompactionScenario {
    fn initial(&self) -> &[FixturePart] {
        &self.parts
    }

    async fn step(&self, store: &Store) -> bool {
        matches!(store.compact_once().await, Ok(Some(r)) if r.committed)
    }

    fn allowed(&self) -> Vec<Vec<Line>> {
        vec![lines_of(&self.parts.iter().collect::<Vec<_>>())]
    }

    async fn finish(&self, store: &Store) {
        while let Some(r) = store.compact_once().await.expect("compact") {
            assert!(r.committed);
        }
        assert_eq!(store.part_count(), 3, "day 0 merged into one part");
        assert_eq!(read_all(store).await, self.allowed()[0]);
    }
}

#[test]
fn compaction_keeps_every_line_once_across_a_crash_at_any_operation() {
    run(|| async { sweep(&CompactionScenario::new()).await });
}

struct RetentionScenario {
    parts: Vec<FixturePart>,
    keep_bytes: u64,
}

impl RetentionScenario {
    /// Days 0 and 1 of two parts each, day 2 of one. Day 0 is dropped by age, day 1 by
    /// size.
    fn new() -> RetentionScenario {
        let streams = test_streams();
        let parts: Vec<FixturePart> = [(0, 0), (0, 1), (1, 2), (1, 3), (2, 4)]
            .into_iter()
            .map(|(day, k)| make_part(&streams, DAY0 + day * DAY, k, 30))
            .collect();
        let keep_bytes = parts[2..].iter().map(|p| p.bytes.len() as u64).sum::<u64>() - 1;
        RetentionScenario { parts, keep_bytes }
    }

    fn now(&self) -> i64 {
        DAY0 + 3 * DAY
    }

    async fn apply(&self, store: &Store) -> Result<retention::RetentionReport, StoreError> {
        store
            .apply_retention(
                self.now(),
                Some(std::time::Duration::from_secs(2 * 86_400 + 3600)),
                Some(self.keep_bytes),
            )
            .await
    }
}

impl Scenario for RetentionScenario {
    fn initial(&self) -> &[FixturePart] {
        &self.parts
    }

    async fn step(&self, store: &Store) -> bool {
        matches!(self.apply(store).await, Ok(r) if r.parts == 4)
    }

    fn allowed(&self) -> Vec<Vec<Line>> {
        let p = &self.parts;
        vec![
            lines_of(&[&p[0], &p[1], &p[2], &p[3], &p[4]]),
            lines_of(&[&p[2], &p[3], &p[4]]),
            lines_of(&[&p[4]]),
        ]
    }

    async fn finish(&self, store: &Store) {
        self.apply(store).await.expect("retention");
        assert_eq!(read_all(store).await, self.allowed()[2]);
    }
}

#[test]
fn retention_drops_whole_partitions_across_a_crash_at_any_operation() {
    run(|| async { sweep(&RetentionScenario::new()).await });
}

struct SealScenario {
    base: Vec<FixturePart>,
    new: Vec<FixturePart>,
}

impl Scenario for SealScenario {
    fn initial(&self) -> &[FixturePart] {
        &self.base
    }

    async fn step(&self, store: &Store) -> bool {
        seal_like(store, &self.new.iter().collect::<Vec<_>>())
            .await
            .is_ok()
    }

    fn allowed(&self) -> Vec<Vec<Line>> {
        let all: Vec<&FixturePart> = self.base.iter().chain(&self.new).collect();
        vec![
            lines_of(&self.base.iter().collect::<Vec<_>>()),
            lines_of(&all),
        ]
    }

    async fn finish(&self, store: &Store) {
        // A restart replays the WAL and seals again what the manifest does not hold.
        if read_all(store).await == self.allowed()[0] {
            assert!(self.step(store).await);
        }
        assert_eq!(read_all(store).await, self.allowed()[1]);
    }
}

#[test]
fn a_seal_round_is_wholly_named_or_absent_after_a_crash_at_any_operation() {
    run(|| async {
        let streams = test_streams();
        let s = SealScenario {
            base: vec![make_part(&streams, DAY0, 0, 30)],
            // One part into an existing partition, one into a new one.
            new: vec![
                make_part(&streams, DAY0, 1, 30),
                make_part(&streams, DAY0 + DAY, 2, 30),
            ],
        };
        sweep(&s).await;
    });
}

/// Each stream of `merged`: the entries of `inputs` in time order, ties in input (part id)
/// order.
async fn assert_merged_in_time_order(
    streams: &[TestStream],
    inputs: &[Rc<LoadedPart>],
    merged: &LoadedPart,
) {
    for s in streams {
        let mut expected = Vec::new();
        for p in inputs {
            expected.extend(read_stream(p, s.id).await);
        }
        expected.sort_by_key(|l| l.ts);
        assert_eq!(read_stream(merged, s.id).await, expected);
    }
}

#[test]
fn compaction_merges_tenants_in_time_order_with_older_parts_first_on_ties() {
    run(|| async {
        let streams = test_streams();
        let parts: Vec<FixturePart> = (0..4).map(|k| make_part(&streams, DAY0, k, 50)).collect();
        let (_sim, store) = build(&parts).await;
        let before = store.parts();
        let report = store.compact_once().await.unwrap().expect("a compaction");
        assert!(report.committed);
        assert_eq!(
            report.inputs,
            before.iter().map(|p| p.entry.id).collect::<Vec<_>>()
        );
        assert_eq!(report.level, 1);
        assert_eq!(report.entries, 4 * 3 * 50);
        assert_eq!(store.part_count(), 1);
        let merged = store.parts()[0].clone();
        assert_eq!(merged.entry.id, report.output);
        assert_eq!(merged.entry.level, 1);
        assert_eq!(merged.entry.entries, report.entries);
        assert_eq!(merged.entry.min_ts, DAY0);
        assert_eq!(
            stream_ids(&merged)
                .await
                .iter()
                .map(|s| s.1.as_str())
                .collect::<HashSet<_>>(),
            HashSet::from(["acme", "globex"])
        );
        assert_merged_in_time_order(&streams, &before, &merged).await;
        assert_eq!(store.counters.compactions.get(), 1);
        assert_eq!(store.counters.compacted_input_parts.get(), 4);
        assert!(store.counters.compaction_bytes.get() >= report.output_bytes);
        assert_eq!(store.compact_once().await.unwrap(), None);
        assert_no_garbage(&store);
    });
}

/// A merge streams: streams longer than a merge chunk are encoded a piece at a time, and
/// each stream still comes out in time order with ties in input order, every line once.
#[test]
fn compaction_streams_long_streams_in_pieces_in_time_order() {
    run(|| async {
        let streams = test_streams();
        let parts: Vec<FixturePart> = (0..6).map(|k| make_part(&streams, DAY0, k, 5000)).collect();
        let (_sim, store) = build(&parts).await;
        let before = store.parts();
        let shortest: usize = streams
            .iter()
            .map(|s| {
                parts
                    .iter()
                    .flat_map(|p| &p.lines)
                    .filter(|l| l.stream == s.id)
                    .map(|l| l.line.len())
                    .sum()
            })
            .min()
            .unwrap();
        assert!(
            shortest > super::merge::MERGE_CHUNK_BYTES,
            "a stream of {shortest} bytes spans several chunks"
        );
        let report = store.compact_once().await.unwrap().expect("a compaction");
        assert!(report.committed);
        assert_eq!(report.entries, 6 * 3 * 5000);
        let merged = store.parts()[0].clone();
        assert_merged_in_time_order(&streams, &before, &merged).await;
        assert_no_garbage(&store);
    });
}

/// A store holding two parts of 1 MiB blocks, each with blocks past
/// [`super::merge::DECODE_ON_CORE_BYTES_MAX`] of body, which compaction decodes with an
/// encoder job (inline on the simulated disk; the thread itself is the encoder module's).
async fn store_with_large_blocks() -> (Vec<TestStream>, SimDisk, Rc<Store>) {
    let mut opts = test_opts();
    opts.seal.block_bytes_target = crate::chunk::part::BLOCK_BYTES_TARGET_DEFAULT;
    opts.compact.block_bytes_target = crate::chunk::part::BLOCK_BYTES_TARGET_DEFAULT;
    opts.compaction.min_small_parts = 2;
    let streams = test_streams();
    let parts: Vec<FixturePart> = (0..2)
        .map(|k| make_part_with(&streams, DAY0, k, 5000, &opts.seal))
        .collect();
    let (sim, store) = build_with(&parts, opts).await;
    for p in store.parts() {
        let tail = p.tail(None).await.expect("the tail");
        let largest = tail
            .reader()
            .blocks()
            .iter()
            .map(|b| b.uncompressed_bytes.to_native() as usize)
            .max()
            .expect("blocks");
        assert!(
            largest >= super::merge::DECODE_ON_CORE_BYTES_MAX,
            "{largest}"
        );
    }
    (streams, sim, store)
}

/// Compaction decodes large input blocks with an encoder job, small ones where it reads
/// them: the merged part holds every line once, each stream in time order.
#[test]
fn compaction_decodes_large_blocks_off_the_core_without_loss() {
    run(|| async {
        let (streams, _sim, store) = store_with_large_blocks().await;
        let before = store.parts();
        let report = store.compact_once().await.unwrap().expect("a compaction");
        assert!(report.committed);
        assert_eq!(report.entries, 2 * 3 * 5000);
        let merged = store.parts()[0].clone();
        assert_merged_in_time_order(&streams, &before, &merged).await;
        assert_no_garbage(&store);
    });
}

/// A large input block that rots is found by its decode in the encoder job as by any other:
/// the compaction fails, the part goes to quarantine, the other part stays whole.
#[test]
fn compaction_quarantines_a_rotten_large_block_decoded_off_the_core() {
    run(|| async {
        let (_streams, sim, store) = store_with_large_blocks().await;
        let (rotten, kept) = (store.parts()[0].clone(), store.parts()[1].clone());
        let expected = read_parts(std::slice::from_ref(&kept)).await;
        let block = {
            let tail = rotten.tail(None).await.expect("the tail");
            let reader = tail.reader();
            let i = (0..reader.blocks().len())
                .max_by_key(|&i| reader.blocks()[i].uncompressed_bytes.to_native())
                .expect("blocks");
            reader.block_range(i).expect("a range")
        };
        sim.corrupt_file(&rotten.path, |bytes| {
            bytes[((block.start + block.end) / 2) as usize] ^= 0x5a;
        })
        .expect("rot the part");
        let err = store.compact_once().await.expect_err("a rotten input");
        assert!(err.is_corruption(), "{err}");
        let ids: Vec<u64> = store.parts().iter().map(|p| p.entry.id).collect();
        assert_eq!(ids, vec![kept.entry.id]);
        assert_eq!(read_all(&store).await, expected);
    });
}

#[test]
fn queries_keep_reading_parts_that_compaction_and_retention_dropped() {
    run(|| async {
        let streams = test_streams();
        let parts: Vec<FixturePart> = (0..4).map(|k| make_part(&streams, DAY0, k, 30)).collect();
        let all = lines_of(&parts.iter().collect::<Vec<_>>());
        let (_sim, store) = build(&parts).await;

        let taken = store.parts();
        store.compact_once().await.unwrap().expect("a compaction");
        for p in &taken {
            assert!(!store.disk().exists(&p.path), "the input file is unlinked");
        }
        assert_eq!(read_parts(&taken).await, all);

        let taken = store.parts();
        let report = store
            .apply_retention(
                DAY0 + 10 * DAY,
                Some(std::time::Duration::from_secs(1)),
                None,
            )
            .await
            .unwrap();
        assert_eq!(report.partitions, vec!["2025-11-25".to_string()]);
        assert_eq!(store.part_count(), 0);
        assert!(!store.disk().exists(&taken[0].path));
        assert_eq!(read_parts(&taken).await, all);
        assert_no_garbage(&store);
    });
}

struct BundleScenario {
    parts: Vec<FixturePart>,
}

impl BundleScenario {
    /// Five cold days of one small part each: bundled into one part in one step.
    fn new() -> BundleScenario {
        let streams = test_streams();
        let parts = (0..5)
            .map(|d| make_part(&streams, DAY0 + d * DAY, d as usize, 10))
            .collect();
        BundleScenario { parts }
    }
}

impl Scenario for BundleScenario {
    fn initial(&self) -> &[FixturePart] {
        &self.parts
    }

    async fn step(&self, store: &Store) -> bool {
        matches!(store.compact_once().await, Ok(Some(r)) if r.committed)
    }

    fn allowed(&self) -> Vec<Vec<Line>> {
        vec![lines_of(&self.parts.iter().collect::<Vec<_>>())]
    }

    async fn finish(&self, store: &Store) {
        while let Some(r) = store.compact_once().await.expect("compact") {
            assert!(r.committed);
        }
        let parts = store.parts();
        assert_eq!(parts.len(), 1, "five sparse days in one bundle");
        assert_eq!(parts[0].entry.partition, "2025-11-25--2025-11-29");
        assert_eq!(parts[0].entry.partition_start, DAY0);
        assert_eq!(read_all(store).await, self.allowed()[0]);
    }

    fn opts(&self) -> StoreOptions {
        cold_opts()
    }
}

#[test]
fn bundling_keeps_every_line_once_across_a_crash_at_any_operation() {
    run(|| async { sweep(&BundleScenario::new()).await });
}

#[test]
fn retention_drops_the_expired_lines_of_a_bundle() {
    run(|| async {
        let streams = test_streams();
        let parts: Vec<FixturePart> = (0..5)
            .map(|d| make_part(&streams, DAY0 + d * DAY, d as usize, 10))
            .collect();
        let (_sim, store) = build_with(&parts, cold_opts()).await;
        let r = store.compact_once().await.unwrap().expect("a bundle");
        assert!(r.committed && r.inputs.len() == 5);
        assert_eq!(r.partition, "2025-11-25--2025-11-29");
        assert_no_garbage(&store);

        // Days 0 and 1 are past the age: the bundle is rewritten without them.
        let now = DAY0 + 5 * DAY;
        let age = Some(std::time::Duration::from_secs(3 * 86_400));
        let r = store.apply_retention(now, age, None).await.unwrap();
        assert_eq!(
            (r.parts, r.entries),
            (1, parts[0].entries + parts[1].entries)
        );
        assert_eq!(
            read_all(&store).await,
            lines_of(&[&parts[2], &parts[3], &parts[4]])
        );
        assert!(
            store
                .parts()
                .iter()
                .all(|p| p.entry.min_ts >= DAY0 + 2 * DAY)
        );
        // Nothing more to drop; then the whole bundle once its newest line is past the age.
        let r = store.apply_retention(now, age, None).await.unwrap();
        assert_eq!(r, retention::RetentionReport::default());
        let r = store
            .apply_retention(now + 3 * DAY, age, None)
            .await
            .unwrap();
        assert_eq!(r.partitions, vec!["2025-11-25--2025-11-29".to_string()]);
        assert_eq!(store.part_count(), 0);
        assert_no_garbage(&store);
    });
}

/// A store written by part format version 1 (`testdata/v1-data`, shard 0) is read whole and
/// rewritten at the current version by compaction, without losing a line.
#[test]
fn compaction_upgrades_version_1_parts_without_loss() {
    run(|| async {
        let tmp = tempfile::tempdir().expect("a temporary directory");
        let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/v1-data/shards");
        copy_tree(&from, &tmp.path().join("shards"));
        let opts = StoreOptions {
            compaction_bytes_per_second: 0,
            ..StoreOptions::default()
        };
        let store = Store::open(Disk::real(), tmp.path(), 0, opts, true)
            .await
            .expect("open the version 1 store");
        let version =
            |s: &Store| -> Vec<u32> { s.parts().iter().map(|p| p.footer().version).collect() };
        assert!(!version(&store).is_empty() && version(&store).iter().all(|&v| v == 1));
        let before = read_all(&store).await;
        assert_eq!(
            before.len(),
            210,
            "shard 0 holds 7 of the 10 streams' 30 lines"
        );
        while let Some(r) = store.compact_once().await.expect("compact") {
            assert!(r.committed);
        }
        assert_eq!(version(&store), vec![crate::chunk::PART_FORMAT_VERSION]);
        assert_eq!(read_all(&store).await, before);
    });
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create a directory");
    for e in std::fs::read_dir(from).expect("read a directory") {
        let e = e.expect("an entry");
        if e.file_type().expect("a type").is_dir() {
            copy_tree(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).expect("copy a file");
        }
    }
}

#[test]
fn retention_drops_oldest_partitions_by_age_then_by_size() {
    run(|| async {
        let streams = test_streams();
        let parts: Vec<FixturePart> = (0..4)
            .map(|d| make_part(&streams, DAY0 + d * DAY, d as usize, 20))
            .collect();
        let (_sim, store) = build(&parts).await;
        let now = DAY0 + 4 * DAY;
        let hours = |h: u64| Some(std::time::Duration::from_secs(h * 3600));

        // Nothing is old enough, no size cap: nothing to do.
        let r = store
            .apply_retention(now, hours(24 * 5), None)
            .await
            .unwrap();
        assert_eq!(r, retention::RetentionReport::default());

        // Day 0's newest line is about 4 days old.
        let r = store
            .apply_retention(now, hours(24 * 3 + 12), None)
            .await
            .unwrap();
        assert_eq!(r.partitions, vec!["2025-11-25".to_string()]);
        assert_eq!((r.parts, r.entries), (1, parts[0].entries));
        assert_eq!(r.bytes, parts[0].bytes.len() as u64);
        assert!(
            !store
                .disk()
                .exists(&store.paths().partition_dir("2025-11-25"))
        );

        // A size cap that holds exactly the last two days.
        let cap = parts[2].bytes.len() as u64 + parts[3].bytes.len() as u64;
        let r = store.apply_retention(now, None, Some(cap)).await.unwrap();
        assert_eq!(r.partitions, vec!["2025-11-26".to_string()]);
        assert_eq!(store.total_bytes(), cap);
        assert_eq!(read_all(&store).await, lines_of(&[&parts[2], &parts[3]]));

        assert_eq!(store.counters.retention_dropped_parts.get(), 2);
        assert_eq!(
            store.counters.retention_dropped_entries.get(),
            parts[0].entries + parts[1].entries
        );
        assert_no_garbage(&store);
    });
}

#[test]
fn compaction_abandons_its_part_when_retention_drops_the_inputs_meanwhile() {
    run(|| async {
        let streams = test_streams();
        let parts: Vec<FixturePart> = (0..4).map(|k| make_part(&streams, DAY0, k, 30)).collect();
        let (_sim, store) = build(&parts).await;
        let compaction = glommio::spawn_local({
            let store = store.clone();
            async move { store.compact_once().await }
        });
        // Let the compaction pick its inputs and start merging (the scheduler may need more
        // than one turn to start the spawned task).
        for _ in 0..1000 {
            if store.compacting.borrow().is_some() {
                break;
            }
            futures_lite::future::yield_now().await;
        }
        assert!(store.compacting.borrow().is_some());
        let r = store
            .apply_retention(
                DAY0 + 10 * DAY,
                Some(std::time::Duration::from_secs(1)),
                None,
            )
            .await
            .unwrap();
        assert_eq!(r.parts, 4);
        let report = compaction.await.unwrap().expect("a compaction");
        assert!(!report.committed);
        assert_eq!(store.part_count(), 0);
        assert_eq!(store.counters.compactions.get(), 0);
        assert_no_garbage(&store);
        assert!(
            store
                .disk()
                .list_dir(&store.paths().parts())
                .unwrap()
                .is_empty()
        );
    });
}

#[test]
fn read_only_stores_are_trimmed_by_retention_but_never_compacted() {
    run(|| async {
        let streams = test_streams();
        let mut parts: Vec<FixturePart> =
            (0..4).map(|k| make_part(&streams, DAY0, k, 10)).collect();
        parts.push(make_part(&streams, DAY0 + DAY, 4, 10));
        let (sim, store) = build(&parts).await;
        drop(store);
        let open_ro = || {
            Store::open(
                Disk::simulated(sim.clone()),
                Path::new(DATA_DIR),
                0,
                test_opts(),
                false,
            )
        };
        let ro = open_ro().await.unwrap();
        let ops = sim.ops();
        assert_eq!(ro.compact_once().await.unwrap(), None);
        assert_eq!(sim.ops(), ops, "compaction wrote nothing");
        assert_eq!(ro.part_count(), 5);
        let r = ro
            .apply_retention(
                DAY0 + DAY + 1000 * 1000,
                Some(std::time::Duration::from_secs(3600)),
                None,
            )
            .await
            .unwrap();
        assert_eq!(r.partitions, vec!["2025-11-25".to_string()]);
        drop(ro);
        let ro = open_ro().await.unwrap();
        assert_eq!(read_all(&ro).await, lines_of(&[&parts[4]]));
        assert_no_garbage(&ro);
    });
}

/// A part written while another step's manifest replacement waits on the disk (compaction
/// writes its part without the store's lock) keeps its id: the commit must not hand the same
/// id out again, or a later part is renamed over it and a manifest names a file that holds
/// other lines, or none. For every interleaving point of the two steps, after a reopen every
/// part is named once and every line is there once.
#[test]
fn a_part_written_during_a_commit_keeps_its_own_id() {
    run(|| async {
        let streams = test_streams();
        let fixtures: Vec<FixturePart> = (0..3).map(|k| make_part(&streams, DAY0, k, 20)).collect();
        let mut interleavings = 0;
        for turns in 0..40 {
            let sim = SimDisk::new();
            sim.set_io_yields(true);
            let store = Rc::new(open_store(&sim).await);
            // One step names a part under the lock, as a seal round does...
            let sealing = {
                let (store, part) = (store.clone(), fixtures[0].clone());
                glommio::spawn_local(async move { seal_like(&store, &[&part]).await })
            };
            for _ in 0..turns {
                futures_lite::future::yield_now().await;
            }
            // ...while another writes one without it, as compaction does, and names it later.
            let committing_before = store.lock.available() == 0;
            let p = &fixtures[1];
            let written = store
                .write_part(NewPart {
                    partition_start: p.partition_start,
                    bytes: p.bytes.clone(),
                    level: 1,
                    entries: p.entries,
                    min_ts: p.min_ts,
                    max_ts: p.max_ts,
                })
                .await
                .expect("write a part");
            sealing.await.expect("the seal");
            interleavings += usize::from(committing_before);
            {
                let _guard = store.lock().await;
                store
                    .commit_locked(
                        Change {
                            add: vec![written],
                            ..Change::default()
                        },
                        || {},
                    )
                    .await
                    .expect("name the part");
            }
            seal_like(&store, &[&fixtures[2]])
                .await
                .expect("another seal");
            let ids: Vec<u64> = store.manifest().parts.iter().map(|p| p.id).collect();
            let unique: HashSet<u64> = ids.iter().copied().collect();
            assert_eq!(unique.len(), ids.len(), "turns {turns}: part ids {ids:?}");
            drop(store);
            let reopened = open_store(&sim).await;
            assert_eq!(reopened.part_count(), 3, "turns {turns}");
            assert_eq!(
                read_all(&reopened).await,
                lines_of(&fixtures.iter().collect::<Vec<_>>()),
                "turns {turns}"
            );
        }
        assert!(interleavings > 0, "no part was written during a commit");
    });
}

#[test]
fn watermarks_merge_in_order_keeping_the_higher_seq() {
    let mut w = vec![(1, 10), (5, 50), (9, 90)];
    super::merge_watermarks(&mut w, &[(9, 80), (3, 30), (5, 55), (12, 1), (3, 31)]);
    assert_eq!(w, vec![(1, 10), (3, 31), (5, 55), (9, 90), (12, 1)]);
    super::merge_watermarks(&mut w, &[]);
    assert_eq!(w.len(), 5);
    // A million new streams at once, as a seal round of one-line streams brings.
    let mut w = vec![(0, 1)];
    let add: Vec<(u64, u64)> = (0..1_000_000u64).rev().map(|s| (s, s + 2)).collect();
    super::merge_watermarks(&mut w, &add);
    assert_eq!(w.len(), 1_000_000);
    assert_eq!(w[0], (0, 2));
    assert!(w.windows(2).all(|p| p[0].0 < p[1].0));
}

/// Drops the lines holding `needle` of the streams whose `app` label is `app`, as a delete
/// request with a line filter does.
struct DropContaining {
    app: &'static str,
    needle: &'static str,
}

impl rewrite::LineDropper for DropContaining {
    fn for_stream(
        &self,
        _tenant: &str,
        labels: &Labels,
        _min: i64,
        _max: i64,
    ) -> Option<rewrite::StreamRule<'_>> {
        (labels.get("app") == Some(self.app)).then(|| {
            Box::new(move |_ts: i64, line: &str, _metadata: &[(&str, &str)]| {
                line.contains(self.needle)
                    .then_some(rewrite::DropReason::Deleted)
            }) as rewrite::StreamRule<'_>
        })
    }
}

const HDFS_INFO: DropContaining = DropContaining {
    app: "HDFS_2k.log",
    needle: "INFO",
};

struct RewriteScenario {
    parts: Vec<FixturePart>,
    /// Lines of the streams the dropper drops from, by their id.
    dropped_stream: u64,
}

impl RewriteScenario {
    fn new() -> RewriteScenario {
        let streams = test_streams();
        let parts = (0..2).map(|k| make_part(&streams, DAY0, k, 40)).collect();
        RewriteScenario {
            parts,
            dropped_stream: streams[1].id,
        }
    }

    fn without_dropped(&self, lines: Vec<Line>) -> Vec<Line> {
        lines
            .into_iter()
            .filter(|l| !(l.stream == self.dropped_stream && l.line.contains("INFO")))
            .collect()
    }
}

impl Scenario for RewriteScenario {
    fn initial(&self) -> &[FixturePart] {
        &self.parts
    }

    /// Rewrites the oldest part.
    async fn step(&self, store: &Store) -> bool {
        let first = store.parts()[0].clone();
        matches!(store.rewrite_part(&first, &HDFS_INFO).await, Ok(r) if r.committed)
    }

    fn allowed(&self) -> Vec<Vec<Line>> {
        let p = &self.parts;
        let mut first_rewritten = self.without_dropped(p[0].lines.clone());
        first_rewritten.extend(p[1].lines.iter().cloned());
        vec![lines_of(&[&p[0], &p[1]]), sorted(first_rewritten)]
    }

    async fn finish(&self, store: &Store) {
        for part in store.parts() {
            store
                .rewrite_part(&part, &HDFS_INFO)
                .await
                .expect("rewrite");
        }
        let all = lines_of(&self.parts.iter().collect::<Vec<_>>());
        assert_eq!(read_all(store).await, sorted(self.without_dropped(all)));
        // Nothing is left to drop: the parts are not rewritten again.
        for part in store.parts() {
            let r = store
                .rewrite_part(&part, &HDFS_INFO)
                .await
                .expect("rewrite");
            assert!(!r.committed && r.dropped.is_empty(), "{r:?}");
        }
    }
}

#[test]
fn a_rewrite_drops_lines_exactly_once_across_a_crash_at_any_operation() {
    assert!(
        RewriteScenario::new().parts[0]
            .lines
            .iter()
            .any(|l| l.line.contains("INFO")),
        "the fixture holds lines to drop"
    );
    run(|| async { sweep(&RewriteScenario::new()).await });
}

#[test]
fn a_rewrite_reads_nothing_it_cannot_drop_and_drops_an_emptied_part() {
    run(|| async {
        let streams = test_streams();
        let parts: Vec<FixturePart> = (0..2).map(|k| make_part(&streams, DAY0, k, 20)).collect();
        let (_sim, store) = build(&parts).await;
        let first = store.parts()[0].clone();
        let none = DropContaining {
            app: "no such app",
            needle: "",
        };
        let r = store.rewrite_part(&first, &none).await.unwrap();
        assert!(r.untouched && !r.committed, "{r:?}");
        // Every line of every stream: the part goes without a replacement.
        struct All;
        impl rewrite::LineDropper for All {
            fn for_stream(
                &self,
                _: &str,
                _: &Labels,
                _: i64,
                _: i64,
            ) -> Option<rewrite::StreamRule<'_>> {
                Some(Box::new(|_, _, _| Some(rewrite::DropReason::Expired)))
            }
        }
        let r = store.rewrite_part(&first, &All).await.unwrap();
        assert!(r.committed && r.output.is_none(), "{r:?}");
        assert_eq!(r.dropped_lines(), first.entry.entries);
        assert_eq!(read_all(&store).await, lines_of(&[&parts[1]]));
        assert_no_garbage(&store);
        // A part dropped meanwhile (here: already gone) is not brought back.
        let r = store.rewrite_part(&first, &HDFS_INFO).await.unwrap();
        assert!(!r.committed, "{r:?}");
        assert_eq!(read_all(&store).await, lines_of(&[&parts[1]]));
        assert_no_garbage(&store);
    });
}

/// A part keeps none of its metadata resident: its tail is read when a reader asks, shared
/// while a reader holds it, kept in a part cache by recency within its bytes, and read
/// again (and validated again) once neither holds it.
#[test]
fn a_parts_metadata_is_read_on_demand_and_kept_only_by_the_cache_and_its_readers() {
    run(|| async {
        let streams = test_streams();
        let parts: Vec<FixturePart> = (0..3).map(|k| make_part(&streams, DAY0, k, 400)).collect();
        let (_sim, store) = build(&parts).await;
        let loaded = store.parts();
        assert_eq!(loaded.len(), 3);
        // What parts keep resident is their label names, not their tails.
        for p in &loaded {
            assert!(p.resident_bytes() < 256, "{}", p.resident_bytes());
            assert!(p.has_label_name("app") && p.has_label_name("host"));
            assert!(!p.has_label_name("trace_id"));
        }
        // A reader holding a tail shares it with the next, with or without a cache.
        let held = loaded[0].tail(None).await.expect("tail");
        let again = loaded[0].tail(None).await.expect("tail");
        assert!(Rc::ptr_eq(&held, &again));
        drop((held, again));

        // A cache with room for one tail keeps the most recently read one.
        let one = loaded[0].tail(None).await.expect("tail").held_bytes();
        let cache = part_cache::PartCache::new(one + one / 2);
        let metadata = &cache.counters[part_cache::Kind::Metadata as usize];
        let first = loaded[0].tail(Some(&cache)).await.expect("tail");
        drop(first);
        assert_eq!(metadata.misses.get(), 1);
        let first_again = loaded[0].tail(Some(&cache)).await.expect("tail");
        assert_eq!(metadata.hits.get(), 1);
        drop(first_again);
        let second = loaded[1].tail(Some(&cache)).await.expect("tail");
        drop(second);
        assert_eq!(metadata.evictions.get(), 1);
        assert!(cache.held_bytes() <= cache.max_bytes());
        // The evicted tail is read again, and reads the same.
        let reread = loaded[0].tail(Some(&cache)).await.expect("tail");
        assert_eq!(metadata.misses.get(), 3);
        assert_eq!(
            reread.reader().streams().len(),
            streams.len(),
            "every stream of the part"
        );
        drop(reread);
        // Every line is still found through tails read on demand.
        let expected = sorted(parts.iter().flat_map(|p| p.lines.clone()).collect());
        assert_eq!(read_all(&store).await, expected);
    });
}

/// A part whose metadata rots on disk after it was opened fails the next read of its tail
/// with the file and offset, and a merge that needs it quarantines the part.
#[test]
fn metadata_that_rots_after_open_is_found_when_the_tail_is_read_again() {
    run(|| async {
        let streams = test_streams();
        let parts: Vec<FixturePart> = (0..4).map(|k| make_part(&streams, DAY0, k, 50)).collect();
        let (sim, store) = build(&parts).await;
        let victim = store.parts()[0].clone();
        let meta_offset = victim.footer().meta_offset;
        sim.corrupt_file(&victim.path, |bytes| {
            bytes[meta_offset as usize + 40] ^= 0x5a;
        })
        .expect("corrupt the metadata");
        let err = match victim.tail(None).await {
            Ok(_) => panic!("a rotten tail was accepted"),
            Err(e) => e,
        };
        assert!(err.is_corruption(), "{err}");
        let text = err.to_string();
        assert!(
            text.contains(&victim.path.display().to_string()) && text.contains("metadata"),
            "{text}"
        );
        // Compaction reads every input's tail first: the rotten part goes to quarantine and
        // the step fails without writing anything.
        assert!(store.compact_once().await.is_err());
        assert_eq!(store.parts().len(), 3);
        assert_eq!(store.counters.quarantined_parts.get(), 1);
        let kept = sorted(parts[1..].iter().flat_map(|p| p.lines.clone()).collect());
        assert_eq!(read_all(&store).await, kept);
    });
}

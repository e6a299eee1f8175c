//! Queries interleaved with seal rounds at every one of their yields, on the simulated disk.
//!
//! A seal round takes live heads, encodes and writes their parts, and commits them, while a
//! query that started before it is part-way through those same heads. For every yield point
//! `k` of a query (its scans yield after every few head entries and between part blocks), a
//! seal round starts once the query has yielded `k` times; whatever the point:
//! - the query answers exactly what a query run alone at its start answers (every entry once,
//!   in the query's order, cut at its limit), and `/index/stats` counts the same;
//! - nothing panics (the landed scan indexed the emptied live head after a round took it);
//! - lines appended while the query runs are found at most once.
//!
//! The sweep checks that it reached what it means to test: rounds that started mid-scan, and
//! rounds that committed (their parts in the manifest, their set released) mid-scan.

use std::cell::Cell;
use std::collections::HashSet;
use std::rc::Rc;

use super::scan::ScanYield;
use super::seal::SealMode;
use super::{LabelsRequest, LogsRequest, Protocol, Shard};
use crate::config::Config;
use crate::logql::parse_log_selector;
use crate::model::{BatchBuilder, Labels, TimestampNs, stream_hash};
use crate::query::params::Direction;
use crate::storage::{Disk, SimDisk};
use crate::testing::run_local as run;

const MS: i64 = 1_000_000;
/// Head entries a scan visits between yields in these tests: small, so that a head of a few
/// dozen entries has many yield points.
const ENTRIES_PER_YIELD: usize = 1;
/// Entries of the hot stream before the query starts: the first half is sealed into a part
/// first, so the query reads a part and a head.
const HOT_ENTRIES: usize = 200;
/// A seal round that has not started after this many turns of the sweep's waiting loop means
/// the query ended first: the sweep is past the query's last yield.
const WAIT_TURNS_MAX: usize = 10_000;

fn config() -> Config {
    super::seal_tests::config(None)
}

pub(super) fn now_ms() -> TimestampNs {
    crate::ingest::listeners::now_ns() / MS * MS
}

/// A batch of `app` lines `from..to`, one millisecond apart after `t0`; every third line says
/// "match", and line 7 of every ten arrives out of order (one second early).
pub(super) fn batch(
    app: &str,
    t0: TimestampNs,
    from: usize,
    to: usize,
    tag: &str,
) -> crate::model::Batch {
    let labels = Labels::from_pairs([("app", app)]);
    let id = stream_hash("t", &labels);
    let mut b = BatchBuilder::new("t");
    for i in from..to {
        let word = if i % 3 == 0 { "match" } else { "other" };
        let ts = if i % 10 == 7 {
            t0 + i as i64 * MS - 1000 * MS
        } else {
            t0 + i as i64 * MS
        };
        b.push(
            id,
            &labels,
            ts,
            &format!("{app} {tag} line {i} {word}"),
            &[],
        );
    }
    b.finish()
}

pub(super) async fn new_shard(t0: TimestampNs) -> Rc<Shard> {
    let disk = Disk::simulated(SimDisk::new());
    let shard = Rc::new(Shard::with_disk(0, disk));
    shard.recover(&config()).await.expect("recovery");
    shard.scan_yield.set((ScanYield::Always, ENTRIES_PER_YIELD));
    let half = HOT_ENTRIES / 2;
    shard
        .append(batch("hot", t0, 0, half, "before"), Protocol::LokiPush)
        .await
        .expect("append");
    shard.seal_round(SealMode::All).await.expect("first seal");
    for (from, to) in [(half, half + 10), (half + 10, HOT_ENTRIES)] {
        shard
            .append(batch("hot", t0, from, to, "before"), Protocol::LokiPush)
            .await
            .expect("append");
    }
    shard
        .append(batch("cold", t0, 0, 5, "before"), Protocol::LokiPush)
        .await
        .expect("append");
    shard
}

pub(super) fn request(query: &str, direction: Direction, limit: usize) -> LogsRequest {
    LogsRequest {
        tenants: "t".into(),
        selector: parse_log_selector(query, true).expect("a query").selector,
        start: 0,
        end: i64::MAX,
        limit,
        direction,
        pipeline: Default::default(),
        control: Default::default(),
    }
}

pub(super) type Found = Vec<(TimestampNs, String)>;

pub(super) async fn logs(shard: &Shard, r: &LogsRequest) -> Found {
    let partial = shard.logs(r).await.expect("the query");
    let mut out = Vec::new();
    for s in partial.streams {
        out.extend(s.entries.into_iter().map(|(ts, line, ..)| (ts, line)));
    }
    out
}

async fn stats_entries(shard: &Shard) -> u64 {
    let r = LabelsRequest {
        tenant: "t".into(),
        matchers: parse_log_selector(r#"{app=~".+"}"#, true)
            .expect("a selector")
            .selector
            .matchers,
        start: 0,
        end: i64::MAX,
    };
    shard.stats(&r).await.expect("stats").0.entries
}

/// What one point of the sweep reached.
#[derive(Default, Clone, Copy)]
struct Reached {
    started_mid_query: bool,
    committed_mid_query: bool,
}

/// Runs `r` on a fresh shard with a seal round (and appends) starting at its `k`th yield.
/// Returns `None` once `k` is past the query's last yield.
async fn interleave(r: &LogsRequest, k: u64) -> Option<Reached> {
    let t0 = now_ms();
    let shard = new_shard(t0).await;
    let alone = logs(&shard, r).await;
    let stats_alone = stats_entries(&shard).await;
    let yields_before = shard.scan_counters.yields.get();
    let query_done = Rc::new(Cell::new(false));
    let reached = Rc::new(Cell::new(Reached::default()));
    let sealer = {
        let (shard, query_done, reached) = (shard.clone(), query_done.clone(), reached.clone());
        glommio::spawn_local(async move {
            let mut turns = 0;
            while shard.scan_counters.yields.get() - yields_before < k && !query_done.get() {
                turns += 1;
                assert!(turns < WAIT_TURNS_MAX, "the query stopped yielding");
                futures_lite::future::yield_now().await;
            }
            if query_done.get() {
                return;
            }
            let mut now = reached.get();
            now.started_mid_query = true;
            reached.set(now);
            // New lines for the stream whose head the round takes, arriving mid-query.
            let appended = shard.append(
                batch("hot", t0, HOT_ENTRIES, HOT_ENTRIES + 4, "during"),
                Protocol::LokiPush,
            );
            let (sealed, appended) =
                futures_lite::future::zip(shard.seal_round(SealMode::All), appended).await;
            sealed.expect("the seal round");
            appended.expect("the append");
            if !query_done.get() {
                let mut now = reached.get();
                now.committed_mid_query = true;
                reached.set(now);
            }
        })
    };
    let found = logs(&shard, r).await;
    query_done.set(true);
    sealer.await;
    let reached = reached.get();
    if !reached.started_mid_query {
        return None;
    }
    let ctx = format!(
        "{} {:?} limit {}: seal at yield {k}",
        r.selector, r.direction, r.limit
    );
    let mut seen = HashSet::new();
    for (_, line) in &found {
        assert!(seen.insert(line.clone()), "{ctx}: {line} found twice");
    }
    let before: Found = found
        .iter()
        .filter(|(_, l)| !l.contains(" during "))
        .cloned()
        .collect();
    if r.limit >= HOT_ENTRIES * 2 {
        assert_eq!(before, alone, "{ctx}: the lines there at the start");
        // The lines appended mid-query are the only ones the query may add.
        assert!(found.len() - before.len() <= 4, "{ctx}");
    } else {
        // With a limit, lines appended mid-query may displace lines of the first answer, but
        // never reorder or duplicate them: the first answer's lines come in the same order.
        let kept: Found = alone
            .iter()
            .filter(|e| before.contains(e))
            .cloned()
            .collect();
        assert_eq!(before, kept, "{ctx}: order of the lines there at the start");
        assert_eq!(found.len(), alone.len(), "{ctx}: the limit");
    }
    // After the round, the shard (parts plus heads) counts what it counted alone plus the
    // lines appended mid-query.
    assert_eq!(
        stats_entries(&shard).await,
        stats_alone + 4,
        "{ctx}: index stats"
    );
    Some(reached)
}

/// Sweeps the seal round's start over every yield point of each query.
fn sweep(query: &'static str, direction: Direction, limit: usize) {
    run(move || async move {
        let r = request(query, direction, limit);
        let mut all = Reached::default();
        let mut points = 0;
        for k in 0.. {
            let Some(reached) = interleave(&r, k).await else {
                break;
            };
            points += 1;
            all.started_mid_query |= reached.started_mid_query;
            all.committed_mid_query |= reached.committed_mid_query;
        }
        assert!(
            points >= HOT_ENTRIES / 2 / ENTRIES_PER_YIELD,
            "{query}: {points} yield points"
        );
        assert!(all.started_mid_query, "{query}: no round started mid-query");
        assert!(
            all.committed_mid_query,
            "{query}: no round committed mid-query"
        );
    });
}

#[test]
fn forward_scan_with_a_seal_round_at_every_yield() {
    sweep(r#"{app="hot"}"#, Direction::Forward, 1000);
}

#[test]
fn backward_filtered_scan_with_a_seal_round_at_every_yield() {
    sweep(r#"{app=~"hot|cold"} |= "match""#, Direction::Backward, 1000);
}

#[test]
fn limited_scan_with_a_seal_round_at_every_yield() {
    sweep(r#"{app="hot"} != "nomatch-zzz""#, Direction::Backward, 7);
}

/// The case the issue reported: a filter that matches nothing scans whole heads.
#[test]
fn needle_scan_with_a_seal_round_at_every_yield() {
    run(|| async {
        let r = request(r#"{app="hot"} |= "nomatch-zzz""#, Direction::Backward, 100);
        let mut points = 0;
        for k in 0.. {
            let Some(_) = interleave(&r, k).await else {
                break;
            };
            points += 1;
        }
        assert!(
            points >= HOT_ENTRIES / 2 / ENTRIES_PER_YIELD,
            "{points} yield points"
        );
    });
}

#[test]
fn pins_keep_committed_rounds_only_while_their_scans_run() {
    run(|| async {
        let shard = new_shard(now_ms()).await;
        let pin = shard.scan_pins.pin();
        shard
            .append(batch("hot", now_ms(), 100, 110, "x"), Protocol::LokiPush)
            .await
            .expect("append");
        shard.seal_round(SealMode::All).await.expect("seal");
        assert_eq!(
            pin.borrow().len(),
            1,
            "a running scan keeps the committed round"
        );
        drop(pin);
        shard.seal_round(SealMode::All).await.expect("seal");
        shard
            .append(batch("hot", now_ms(), 110, 120, "y"), Protocol::LokiPush)
            .await
            .expect("append");
        shard.seal_round(SealMode::All).await.expect("seal");
        assert_eq!(
            shard.scan_pins.live_count(),
            0,
            "no scan runs: nothing is kept"
        );
    });
}

/// Streams sealed and then evicted from memory are answered from the parts' postings: log
/// queries, index stats, label names and values, and series find exactly what they found
/// while the streams were resident; a stream written again after its eviction is found once,
/// with its old lines and its new ones.
#[test]
fn evicted_streams_are_answered_from_their_parts() {
    run(|| async {
        let t0 = now_ms();
        let shard = new_shard(t0).await;
        shard.seal_round(SealMode::All).await.expect("seal");
        let all = request(r#"{app=~".+"}"#, Direction::Forward, 10_000);
        let hot = request(r#"{app="hot"}"#, Direction::Backward, 10_000);
        let matchers = all.selector.matchers.clone();
        let series = async |shard: &Shard| {
            let mut s = shard
                .series(&super::SeriesRequest {
                    tenant: "t".into(),
                    selectors: vec![matchers.clone()],
                    start: 0,
                    end: i64::MAX,
                })
                .await
                .expect("series");
            s.sort();
            s
        };
        let names_of = async |shard: &Shard, tenant: &str| {
            shard
                .label_names(tenant, &[], 0, i64::MAX)
                .await
                .expect("label names")
        };
        let values_of = async |shard: &Shard| {
            shard
                .label_values("t", "app", &[], 0, i64::MAX)
                .await
                .expect("label values")
        };
        let lines = logs(&shard, &all).await;
        let hot_lines = logs(&shard, &hot).await;
        let stats = stats_entries(&shard).await;
        let names = names_of(&shard, "t").await;
        let values = values_of(&shard).await;
        let series_before = series(&shard).await;
        assert_eq!(lines.len(), HOT_ENTRIES + 5);
        assert_eq!(values, ["cold", "hot"]);
        // Every read answers as it did before the streams left the registry.
        let answers_as_before = async |shard: &Shard| {
            assert_eq!(logs(shard, &all).await, lines);
            assert_eq!(logs(shard, &hot).await, hot_lines);
            assert_eq!(stats_entries(shard).await, stats);
            assert_eq!(names_of(shard, "t").await, names);
            assert_eq!(values_of(shard).await, values);
            assert_eq!(series(shard).await, series_before);
        };

        assert_eq!(shard.evict_idle_streams(std::time::Duration::ZERO), 2);
        assert!(shard.heads().is_empty());
        answers_as_before(&shard).await;
        assert!(names_of(&shard, "other").await.is_empty());
        // With a part cache too small for any part's metadata, every read reads the tails it
        // needs again, and answers the same.
        *shard.part_cache.borrow_mut() = Rc::new(crate::store::part_cache::PartCache::new(0));
        answers_as_before(&shard).await;
        let cache = shard.part_cache();
        assert_eq!(cache.held_bytes(), 0);
        assert!(
            cache.counters[crate::store::part_cache::Kind::Metadata as usize]
                .misses
                .get()
                >= 6
        );

        shard
            .append(
                batch("hot", t0, HOT_ENTRIES, HOT_ENTRIES + 4, "again"),
                Protocol::LokiPush,
            )
            .await
            .expect("append");
        assert_eq!(shard.heads().len(), 1);
        let again = logs(&shard, &all).await;
        assert_eq!(again.len(), lines.len() + 4);
        let distinct: HashSet<&String> = again.iter().map(|(_, l)| l).collect();
        assert_eq!(distinct.len(), again.len(), "each line once");
        assert_eq!(stats_entries(&shard).await, stats + 4);
        assert_eq!(series(&shard).await, series_before);
    });
}

/// Label queries without a selector answer a part the range holds whole by its label
/// summary, kept in the part cache (the second query reads no tail), and a part the range
/// holds in part stream by stream: a stream with no entry in the range is not counted.
#[test]
fn label_queries_use_summaries_of_whole_parts_and_streams_of_the_rest() {
    use crate::logql::{LabelMatcher, MatchOp};
    use crate::store::part_cache::Kind;
    run(|| async {
        let t0 = now_ms();
        let early = t0 - 3_600_000 * MS;
        let shard = new_shard(t0).await;
        shard
            .append(batch("early", early, 0, 20, "x"), Protocol::LokiPush)
            .await
            .expect("append");
        shard.seal_round(SealMode::All).await.expect("seal");
        assert_eq!(shard.evict_idle_streams(std::time::Duration::ZERO), 3);
        let cache = shard.part_cache();
        let counter = |kind: Kind, hits: bool| {
            let c = &cache.counters[kind as usize];
            if hits { c.hits.get() } else { c.misses.get() }
        };
        let values = async |start: TimestampNs, matchers: &[LabelMatcher]| {
            shard
                .label_values("t", "app", matchers, start, i64::MAX)
                .await
                .expect("label values")
        };
        assert_eq!(values(0, &[]).await, ["cold", "early", "hot"]);
        let (built, tails_read) = (counter(Kind::Labels, false), counter(Kind::Metadata, false));
        assert!(built >= 1, "summaries were built");
        // Again: every summary comes from the cache, and no tail is looked for.
        assert_eq!(values(0, &[]).await, ["cold", "early", "hot"]);
        assert_eq!(counter(Kind::Labels, false), built);
        assert!(counter(Kind::Labels, true) >= built);
        assert_eq!(counter(Kind::Metadata, false), tails_read);
        let names = shard
            .label_names("t", &[], 0, i64::MAX)
            .await
            .expect("names");
        assert_eq!(names, ["app"]);
        assert!(
            shard
                .label_names("u", &[], 0, i64::MAX)
                .await
                .expect("names")
                .is_empty()
        );
        // From half an hour ago: the early stream has no entry in the range, whether its
        // part is held in part (it shares a part with the others) or not at all.
        let recent = t0 - 1_800_000 * MS;
        assert_eq!(values(recent, &[]).await, ["cold", "hot"]);
        // With a selector, stream by stream over every part.
        let early_only = [LabelMatcher::new("app", MatchOp::Eq, "early").expect("matcher")];
        assert_eq!(values(0, &early_only).await, ["early"]);
        assert!(values(recent, &early_only).await.is_empty());
    });
}

/// A scrape of `/metrics` is answered at once while every query turn of the shard is taken:
/// monitoring must not wait for slow queries.
#[test]
fn metrics_are_answered_while_queries_hold_every_turn() {
    run(|| async {
        let shard = new_shard(now_ms()).await;
        shard.set_query_concurrency(1);
        let permits = shard.query_permits.borrow().clone();
        let _turn = permits.acquire().await;
        // A query waits for the turn...
        let logs_answer = shard.answer(super::ShardRequest::Logs(std::sync::Arc::new(request(
            r#"{app="hot"}"#,
            Direction::Forward,
            10,
        ))));
        assert!(
            futures_lite::future::poll_once(Box::pin(logs_answer))
                .await
                .is_none()
        );
        // ...and a scrape does not.
        let metrics =
            futures_lite::future::poll_once(Box::pin(shard.answer(super::ShardRequest::Metrics)))
                .await;
        assert!(matches!(metrics, Some(super::ShardAnswer::Metrics(_))));
    });
}

//! The tails one shard knows, and the entries it queues for them as it applies batches.
//!
//! Which question it answers: "which of the entries this shard just made visible does each
//! tail want, and how much may wait for the forwarder?" [`ShardTails::offer`] runs inside
//! the shard's apply (after the WAL commit, on the ingest path), so it only selects streams
//! (once per stream, cached), runs the leading line filters and copies what passes into a
//! bounded queue; a full queue drops the entry and notes it. [`ShardTails::take_work`] hands
//! the queues to the core's forwarder task, and [`process`] runs the rest of the pipeline
//! there, off the ingest path, after it has left out what a delete request hides (as a
//! query's scan does: a line deleted while a tail is open is not shown by it either).

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use ahash::AHashMap;

use super::{
    DroppedEntry, SHARD_QUEUE_BYTES_MAX, SHARD_QUEUE_ENTRIES_MAX, TAILS_PER_SHARD_MAX,
    TAILS_PER_TENANT_MAX, TailBatch, TailKey, TailSpec, TailedEntry, note_dropped,
};
use crate::deletion::book::{DeleteBook, StreamDeletes};
use crate::model::{Labels, MetadataPair, StreamId, TimestampNs};
use crate::query::QueryError;
use crate::query::pipeline::LabelsBuilder;
use crate::runtime::wake::Signal;

/// Streams whose selection a tail remembers before it starts over: a shard with more live
/// streams than this re-checks the matchers of some, which is correct, only slower.
const SELECTED_STREAMS_CACHED_MAX: usize = 64 * 1024;

/// Distinct output label sets remembered per stream while processing, as the log sink does.
const CATEGORIES_CACHED_MAX: usize = 4096;

/// An entry waiting for the forwarder: the leading filters passed, the pipeline not yet run.
#[derive(Debug)]
pub struct QueuedEntry {
    /// The stream's labels, shared by every queued entry of the stream.
    pub labels: Arc<Labels>,
    pub ts: TimestampNs,
    pub line: String,
    pub metadata: Vec<MetadataPair>,
}

/// What the forwarder takes for one tail.
#[derive(Debug)]
pub struct TailWork {
    pub spec: Arc<TailSpec>,
    pub entries: Vec<QueuedEntry>,
    pub dropped: Vec<DroppedEntry>,
    pub dropped_unlisted: u64,
}

struct ShardTail {
    spec: Arc<TailSpec>,
    /// Per stream: its labels when the selector picks it, `None` when it does not.
    streams: AHashMap<StreamId, Option<Arc<Labels>>>,
    queue: Vec<QueuedEntry>,
    queued_bytes: usize,
    dropped: Vec<DroppedEntry>,
    dropped_unlisted: u64,
}

impl ShardTail {
    fn has_work(&self) -> bool {
        !self.queue.is_empty() || !self.dropped.is_empty() || self.dropped_unlisted > 0
    }
}

/// The tails of one shard. Not `Send`: it lives on its core.
#[derive(Default)]
pub struct ShardTails {
    tails: RefCell<Vec<ShardTail>>,
    /// Wakes the forwarder when a queue has something.
    ready: Signal,
    /// Entries dropped on this shard since it started, for `/metrics`.
    dropped_total: std::cell::Cell<u64>,
}

impl ShardTails {
    /// Starts queueing entries for `spec`. Refused (as Loki refuses a tail) when the tenant
    /// already has [`TAILS_PER_TENANT_MAX`] tails, or the shard [`TAILS_PER_SHARD_MAX`].
    /// Starting a tail twice is one tail.
    pub fn start(&self, spec: Arc<TailSpec>) -> Result<(), QueryError> {
        let mut tails = self.tails.borrow_mut();
        if tails.iter().any(|t| t.spec.key == spec.key) {
            return Ok(());
        }
        let of_tenant = tails
            .iter()
            .filter(|t| t.spec.tenant == spec.tenant)
            .count();
        if of_tenant >= TAILS_PER_TENANT_MAX {
            return Err(QueryError::Limit {
                limit: "max_concurrent_tail_requests",
                message: format!(
                    "max concurrent tail requests limit exceeded, count > limit ({} > {})",
                    of_tenant + 1,
                    TAILS_PER_TENANT_MAX
                ),
            });
        }
        if tails.len() >= TAILS_PER_SHARD_MAX {
            return Err(QueryError::Limit {
                limit: "max_concurrent_tail_requests",
                message: format!(
                    "too many tails are open ({}, all tenants together)",
                    tails.len()
                ),
            });
        }
        tails.push(ShardTail {
            spec,
            streams: AHashMap::default(),
            queue: Vec::new(),
            queued_bytes: 0,
            dropped: Vec::new(),
            dropped_unlisted: 0,
        });
        Ok(())
    }

    /// Forgets a tail and what it had queued.
    pub fn stop(&self, key: TailKey) {
        self.tails.borrow_mut().retain(|t| t.spec.key != key);
    }

    pub fn len(&self) -> usize {
        self.tails.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.tails.borrow().is_empty()
    }

    /// Whether any tail is of `tenant`: a batch of another tenant costs nothing more.
    pub fn tails_tenant(&self, tenant: &str) -> bool {
        self.tails.borrow().iter().any(|t| t.spec.tenant == tenant)
    }

    /// Entries dropped for tails: on this shard's queues, and (counted here by the core) in
    /// the core's inboxes.
    pub fn dropped_total(&self) -> u64 {
        self.dropped_total.get()
    }

    /// Counts entries a tail inbox of this core dropped.
    pub fn count_dropped(&self, entries: u64) {
        self.dropped_total.set(self.dropped_total.get() + entries);
    }

    /// One entry the shard just applied, of stream `stream` with `labels`, of `tenant`:
    /// queued for every tail that selects the stream and whose leading line filters pass.
    /// Never waits: a full queue drops the entry (and notes it for the client).
    pub fn offer(
        &self,
        tenant: &str,
        stream: StreamId,
        labels: &Labels,
        ts: TimestampNs,
        line: &str,
        metadata: &[(&str, &str)],
    ) {
        let mut tails = self.tails.borrow_mut();
        let mut queued = false;
        for tail in tails.iter_mut() {
            let spec = &tail.spec;
            if spec.tenant != tenant {
                continue;
            }
            if tail.streams.len() >= SELECTED_STREAMS_CACHED_MAX
                && !tail.streams.contains_key(&stream)
            {
                tail.streams.clear();
            }
            let selected = tail.streams.entry(stream).or_insert_with(|| {
                let picked = spec
                    .selector
                    .matchers
                    .iter()
                    .all(|m| m.matches(labels.get(&m.name)));
                picked.then(|| Arc::new(labels.clone()))
            });
            let Some(stream_labels) = selected else {
                continue;
            };
            if !spec
                .selector
                .filters
                .iter()
                .all(|f| f.matches(line.as_bytes()))
            {
                continue;
            }
            queued = true;
            if tail.queue.len() >= SHARD_QUEUE_ENTRIES_MAX
                || tail.queued_bytes + line.len() > SHARD_QUEUE_BYTES_MAX
            {
                self.dropped_total.set(self.dropped_total.get() + 1);
                let dropped = DroppedEntry {
                    ts,
                    labels: stream_labels.clone(),
                };
                note_dropped(&mut tail.dropped, &mut tail.dropped_unlisted, [dropped]);
                continue;
            }
            tail.queued_bytes += line.len();
            tail.queue.push(QueuedEntry {
                labels: stream_labels.clone(),
                ts,
                line: line.to_string(),
                metadata: metadata
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            });
        }
        if queued {
            self.ready.notify();
        }
    }

    /// Waits until some tail has queued or dropped entries (at once if one already has).
    pub async fn ready(&self) {
        if self.tails.borrow().iter().any(ShardTail::has_work) {
            return;
        }
        self.ready.wait().await;
    }

    /// Takes every tail's queue and dropped entries.
    pub fn take_work(&self) -> Vec<TailWork> {
        let mut tails = self.tails.borrow_mut();
        let mut work = Vec::new();
        for tail in tails.iter_mut().filter(|t| t.has_work()) {
            tail.queued_bytes = 0;
            work.push(TailWork {
                spec: tail.spec.clone(),
                entries: std::mem::take(&mut tail.queue),
                dropped: std::mem::take(&mut tail.dropped),
                dropped_unlisted: std::mem::take(&mut tail.dropped_unlisted),
            });
        }
        work
    }
}

/// Runs the tail's pipeline (the stages after its leading line filters) on the queued
/// entries that no request of `book` deletes: what passes, with its labels after the
/// pipeline, goes to the receiving core.
pub fn process(work: TailWork, book: &DeleteBook) -> TailBatch {
    let TailWork {
        spec,
        mut entries,
        dropped,
        dropped_unlisted,
    } = work;
    if book.has_active() {
        leave_out_deleted(&mut entries, &spec.tenant, book);
    }
    let mut batch = TailBatch {
        key: spec.key,
        entries: Vec::with_capacity(entries.len()),
        dropped,
        dropped_unlisted,
    };
    let pipeline = &spec.pipeline;
    if pipeline.is_noop() {
        batch
            .entries
            .extend(entries.into_iter().map(|e| TailedEntry {
                ts: e.ts,
                labels: e.labels,
                line: e.line,
                metadata: e.metadata,
                parsed: Vec::new(),
            }));
        return batch;
    }
    // Consecutive entries of one stream share a builder and their output label sets.
    let mut current: Option<(Arc<Labels>, LabelsBuilder)> = None;
    let mut categories: AHashMap<u64, Rc<Categories>> = AHashMap::default();
    for e in entries {
        let same_stream = current
            .as_ref()
            .is_some_and(|(labels, _)| Arc::ptr_eq(labels, &e.labels));
        if !same_stream {
            categories.clear();
            current = Some((e.labels.clone(), LabelsBuilder::new(&e.labels)));
        }
        let Some((_, lbs)) = current.as_mut() else {
            continue;
        };
        lbs.reset(e.metadata.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let Some(line) = pipeline.run(e.ts, &e.line, lbs) else {
            continue;
        };
        let line = line.into_owned();
        let hash = lbs.labels_hash();
        let c = match categories.get(&hash) {
            Some(c) => c.clone(),
            None => {
                let split = lbs.categorized();
                let c = Rc::new(Categories {
                    stream: Arc::new(split.stream),
                    metadata: split.structured_metadata.pairs().to_vec(),
                    parsed: split.parsed.pairs().to_vec(),
                });
                if categories.len() >= CATEGORIES_CACHED_MAX {
                    categories.clear();
                }
                categories.insert(hash, c.clone());
                c
            }
        };
        batch.entries.push(TailedEntry {
            ts: e.ts,
            labels: c.stream.clone(),
            line,
            metadata: c.metadata.clone(),
            parsed: c.parsed.clone(),
        });
    }
    batch
}

/// Removes the entries a delete request of `book` hides, with the requests that select each
/// stream looked up once per run of its entries (the queue holds a stream's entries
/// together, in the order they were applied).
fn leave_out_deleted(entries: &mut Vec<QueuedEntry>, tenant: &str, book: &DeleteBook) {
    let mut current: Option<(Arc<Labels>, StreamDeletes)> = None;
    entries.retain(|e| {
        let same_stream = current
            .as_ref()
            .is_some_and(|(labels, _)| Arc::ptr_eq(labels, &e.labels));
        if !same_stream {
            current = Some((e.labels.clone(), book.for_stream(tenant, &e.labels)));
        }
        let Some((_, deletes)) = current.as_ref() else {
            return true;
        };
        if deletes.is_empty() {
            return true;
        }
        let metadata: Vec<(&str, &str)> = if deletes.reads_metadata() {
            e.metadata
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect()
        } else {
            Vec::new()
        };
        !deletes.hides(e.ts, &e.line, &metadata)
    });
}

/// An output label set split for the categorised encoding.
struct Categories {
    stream: Arc<Labels>,
    metadata: Vec<MetadataPair>,
    parsed: Vec<MetadataPair>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logql::{Expr, parse_expr};
    use crate::query::pipeline::Pipeline;

    fn spec(core: usize, id: u64, tenant: &str, query: &str) -> Arc<TailSpec> {
        let Ok(Expr::Log(expr)) = parse_expr(query) else {
            panic!("not a log query: {query}");
        };
        Arc::new(TailSpec {
            key: TailKey { core, id },
            tenant: tenant.to_string(),
            pipeline: Arc::new(Pipeline::new(&expr.stages).unwrap()),
            selector: expr.selector,
        })
    }

    fn app(name: &str) -> Labels {
        Labels::from_pairs([("app", name)])
    }

    #[test]
    fn queues_entries_of_selected_streams_that_pass_the_leading_filters() {
        let tails = ShardTails::default();
        tails
            .start(spec(0, 1, "t", r#"{app="a"} |= "keep""#))
            .unwrap();
        tails.offer("t", 1, &app("a"), 10, "keep me", &[("k", "v")]);
        tails.offer("t", 1, &app("a"), 11, "drop me", &[]);
        tails.offer("t", 2, &app("b"), 12, "keep, other stream", &[]);
        tails.offer("other", 1, &app("a"), 13, "keep, other tenant", &[]);
        let work = tails.take_work();
        assert_eq!(work.len(), 1);
        let entries = &work[0].entries;
        assert_eq!(entries.len(), 1);
        assert_eq!((entries[0].ts, entries[0].line.as_str()), (10, "keep me"));
        assert_eq!(entries[0].metadata, vec![("k".into(), "v".into())]);
        assert!(tails.take_work().is_empty(), "taken once");
    }

    #[test]
    fn a_full_queue_drops_and_lists_what_it_dropped_without_growing() {
        let tails = ShardTails::default();
        tails.start(spec(0, 1, "t", r#"{app="a"}"#)).unwrap();
        let extra = DROPPED_ENTRIES_MAX_FOR_TEST + 5;
        for i in 0..(SHARD_QUEUE_ENTRIES_MAX + extra) {
            tails.offer("t", 1, &app("a"), i as i64, "x", &[]);
        }
        let work = tails.take_work();
        assert_eq!(work[0].entries.len(), SHARD_QUEUE_ENTRIES_MAX);
        assert_eq!(work[0].dropped.len(), DROPPED_ENTRIES_MAX_FOR_TEST);
        assert_eq!(work[0].dropped_unlisted, 5);
        assert_eq!(work[0].dropped[0].ts, SHARD_QUEUE_ENTRIES_MAX as i64);
        assert_eq!(*work[0].dropped[0].labels, app("a"));
        assert_eq!(tails.dropped_total(), extra as u64);
        // Taking the work frees the queue.
        tails.offer("t", 1, &app("a"), 0, "x", &[]);
        assert_eq!(tails.take_work()[0].entries.len(), 1);
    }

    const DROPPED_ENTRIES_MAX_FOR_TEST: usize = super::super::DROPPED_ENTRIES_MAX;

    #[test]
    fn a_tenant_gets_at_most_its_tails_and_stopping_frees_a_place() {
        let tails = ShardTails::default();
        for id in 0..TAILS_PER_TENANT_MAX as u64 {
            tails.start(spec(0, id, "t", r#"{app="a"}"#)).unwrap();
        }
        // The same tail again is the same tail.
        tails.start(spec(0, 0, "t", r#"{app="a"}"#)).unwrap();
        let refused = tails.start(spec(1, 99, "t", r#"{app="a"}"#)).unwrap_err();
        assert!(
            refused
                .to_string()
                .contains("max concurrent tail requests limit exceeded, count > limit (11 > 10)"),
            "{refused}"
        );
        tails.start(spec(1, 99, "u", r#"{app="a"}"#)).unwrap();
        tails.stop(TailKey { core: 0, id: 3 });
        tails.start(spec(1, 100, "t", r#"{app="a"}"#)).unwrap();
        assert_eq!(tails.len(), TAILS_PER_TENANT_MAX + 1);
    }

    #[test]
    fn processing_leaves_out_what_a_delete_request_hides() {
        use crate::deletion::request::{DeleteRequest, Status};
        let request = |id: &str, tenant: &str, query: &str| DeleteRequest {
            request_id: id.into(),
            tenant: tenant.into(),
            query: query.into(),
            start_ms: 0,
            end_ms: 10_000,
            created_at_ms: 0,
            status: Status::Received,
        };
        let book = DeleteBook::new(vec![
            request("a", "t", r#"{app="a"} |= "secret""#),
            request("b", "t", r#"{app="b"} | trace="x""#),
            request("c", "other", r#"{app="a"}"#),
        ])
        .unwrap();
        let tails = ShardTails::default();
        tails.start(spec(0, 1, "t", r#"{app=~"a|b"}"#)).unwrap();
        tails.offer("t", 1, &app("a"), 1_000_000_000, "a secret", &[]);
        tails.offer("t", 1, &app("a"), 2_000_000_000, "a public", &[]);
        // After the request's end: not deleted.
        tails.offer("t", 1, &app("a"), 20_000_000_000, "a later secret", &[]);
        tails.offer(
            "t",
            2,
            &app("b"),
            1_000_000_000,
            "b traced",
            &[("trace", "x")],
        );
        tails.offer(
            "t",
            2,
            &app("b"),
            1_000_000_000,
            "b other",
            &[("trace", "y")],
        );
        let batch = process(tails.take_work().pop().unwrap(), &book);
        let lines: Vec<&str> = batch.entries.iter().map(|e| e.line.as_str()).collect();
        assert_eq!(lines, ["a public", "a later secret", "b other"]);
    }

    #[test]
    fn processing_runs_the_pipeline_and_splits_the_labels() {
        let tails = ShardTails::default();
        tails
            .start(spec(2, 7, "t", r#"{app="a"} | logfmt | level="error""#))
            .unwrap();
        tails.offer(
            "t",
            1,
            &app("a"),
            1,
            "level=error msg=boom",
            &[("trace", "x")],
        );
        tails.offer("t", 1, &app("a"), 2, "level=info msg=fine", &[]);
        let batch = process(tails.take_work().pop().unwrap(), &DeleteBook::default());
        assert_eq!(batch.key, TailKey { core: 2, id: 7 });
        assert_eq!(batch.entries.len(), 1);
        let e = &batch.entries[0];
        assert_eq!((e.ts, e.line.as_str()), (1, "level=error msg=boom"));
        assert_eq!(*e.labels, app("a"));
        assert_eq!(e.metadata, vec![("trace".into(), "x".into())]);
        assert!(e.parsed.contains(&("level".into(), "error".into())));
    }

    #[test]
    fn stopped_tails_get_nothing_and_idle_shards_have_no_work() {
        let tails = ShardTails::default();
        tails.start(spec(0, 1, "t", r#"{app=~".+"}"#)).unwrap();
        assert!(tails.tails_tenant("t") && !tails.tails_tenant("u"));
        tails.stop(TailKey { core: 0, id: 1 });
        tails.offer("t", 1, &app("a"), 1, "x", &[]);
        assert!(tails.take_work().is_empty() && tails.is_empty());
    }
}

//! The sink of a log query on one shard: the first `limit` entries in the query's direction
//! over every stream the shard scans, in one bounded heap.
//!
//! Order: by timestamp in the direction; between equal timestamps by stream labels, then by
//! arrival (the order the scan pushed them), which is the order the receiving core's merge
//! ([`crate::query::merge`]) keeps. The heap holds at most `limit` entries whatever the number
//! of matching streams, and its worst timestamp is the scan's cutoff once it is full.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::rc::Rc;
use std::sync::Arc;

use ahash::AHashMap;

use super::{QueryControl, ScanSink, ScanSpec};
use crate::logql::LogSelector;
use crate::model::{Labels, MetadataPair, TimestampNs};
use crate::query::QueryError;
use crate::query::merge::{Partial, PartialStream};
use crate::query::needles::required_literals;
use crate::query::params::Direction;
use crate::query::pipeline::{LabelsBuilder, Pipeline};
use crate::shard::Shard;
use crate::tenants::federation::TenantScope;

/// A log query as one shard runs it.
#[derive(Debug)]
pub struct LogsRequest {
    pub tenants: TenantScope,
    pub selector: LogSelector,
    pub start: TimestampNs,
    pub end: TimestampNs,
    pub limit: usize,
    pub direction: Direction,
    /// The stages after the leading line filters, compiled once for every core.
    pub pipeline: Arc<Pipeline>,
    /// Cancellation and the byte budget, shared by every shard's part of the query.
    pub control: Arc<QueryControl>,
}

/// Runs a log query on one shard: the first `limit` entries over all its streams.
pub async fn run(shard: &Shard, r: &LogsRequest) -> Result<Partial, QueryError> {
    let spec = ScanSpec {
        tenants: r.tenants.clone(),
        matchers: r.selector.matchers.clone(),
        start: r.start,
        end: r.end,
        direction: r.direction,
        filters: r.selector.filters.clone(),
        bloom: required_literals(&r.selector.filters),
        pairs: r.pipeline.pair_query(),
        control: r.control.clone(),
    };
    let mut sink = TopEntries::new(r.limit, r.direction, r.pipeline.clone());
    shard.scan(&spec, &mut sink).await?;
    Ok(sink.finish())
}

/// One kept entry.
struct Kept {
    ts: TimestampNs,
    /// The entry's stream labels after the pipeline.
    labels: Rc<Labels>,
    seq: u64,
    line: String,
    metadata: Vec<MetadataPair>,
    parsed: Vec<MetadataPair>,
    direction: Direction,
}

/// An output label set split as Loki's categorised encoding needs it.
struct Categories {
    stream: Rc<Labels>,
    metadata: Vec<MetadataPair>,
    parsed: Vec<MetadataPair>,
}

/// Distinct output label sets remembered per stream before the cache starts over.
const CATEGORIES_CACHED_MAX: usize = 4096;

impl Kept {
    /// `Less`: taken first (better).
    fn take_order(&self, other: &Self) -> Ordering {
        let by_time = match self.direction {
            Direction::Forward => self.ts.cmp(&other.ts),
            Direction::Backward => other.ts.cmp(&self.ts),
        };
        by_time
            .then_with(|| self.labels.cmp(&other.labels))
            .then(self.seq.cmp(&other.seq))
    }
}

impl PartialEq for Kept {
    fn eq(&self, other: &Self) -> bool {
        self.take_order(other) == Ordering::Equal
    }
}
impl Eq for Kept {}
impl PartialOrd for Kept {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Kept {
    /// The heap's top is the worst kept entry.
    fn cmp(&self, other: &Self) -> Ordering {
        self.take_order(other)
    }
}

/// The first `limit` entries of a shard (see the module doc).
pub struct TopEntries {
    limit: usize,
    direction: Direction,
    heap: BinaryHeap<Kept>,
    pipeline: Arc<Pipeline>,
    /// The current stream's labels, and its builder when there is a pipeline.
    labels: Rc<Labels>,
    builder: Option<LabelsBuilder>,
    /// The current stream's output label sets by [`LabelsBuilder::labels_hash`].
    categories: AHashMap<u64, Rc<Categories>>,
    seq: u64,
}

impl TopEntries {
    pub fn new(limit: usize, direction: Direction, pipeline: Arc<Pipeline>) -> TopEntries {
        TopEntries {
            limit,
            direction,
            heap: BinaryHeap::with_capacity(limit.min(4096)),
            pipeline,
            labels: Rc::new(Labels::default()),
            builder: None,
            categories: AHashMap::default(),
            seq: 0,
        }
    }

    /// Whether an entry at `ts` might be kept: the heap has room, or `ts` is not beyond the
    /// worst kept entry's (a tie is settled by [`TopEntries::keep`]).
    fn might_keep(&self, ts: TimestampNs) -> bool {
        if self.limit == 0 {
            return false;
        }
        if self.heap.len() < self.limit {
            return true;
        }
        self.heap
            .peek()
            .is_some_and(|worst| !super::beyond(self.direction, ts, Some(worst.ts)))
    }

    /// Keeps an entry with stream labels `labels` (the stream's, or the pipeline's output).
    pub fn keep(
        &mut self,
        ts: TimestampNs,
        labels: Rc<Labels>,
        line: String,
        metadata: Vec<MetadataPair>,
        parsed: Vec<MetadataPair>,
    ) {
        self.seq += 1;
        self.heap.push(Kept {
            ts,
            labels,
            seq: self.seq,
            line,
            metadata,
            parsed,
            direction: self.direction,
        });
        if self.heap.len() > self.limit {
            self.heap.pop();
        }
    }

    /// The kept entries as streams ordered by labels, each in direction order.
    pub fn finish(self) -> Partial {
        let mut sorted = self.heap.into_sorted_vec();
        // Stable: entries of one stream stay in direction order.
        sorted.sort_by(|a, b| a.labels.cmp(&b.labels));
        let mut streams: Vec<PartialStream> = Vec::new();
        for k in sorted {
            let entry = (k.ts, k.line, k.metadata, k.parsed);
            match streams.last_mut() {
                Some(s) if s.labels == *k.labels => s.entries.push(entry),
                _ => streams.push(PartialStream {
                    labels: Rc::unwrap_or_clone(k.labels),
                    entries: vec![entry],
                }),
            }
        }
        Partial { streams }
    }
}

impl ScanSink for TopEntries {
    fn begin_stream(&mut self, labels: &Labels) {
        self.labels = Rc::new(labels.clone());
        self.categories.clear();
        self.builder = (!self.pipeline.is_noop()).then(|| LabelsBuilder::new(labels));
    }

    fn cutoff(&self) -> Option<TimestampNs> {
        if self.heap.len() < self.limit {
            return None;
        }
        self.heap.peek().map(|worst| worst.ts)
    }

    fn push(
        &mut self,
        ts: TimestampNs,
        line: &str,
        metadata: &[(&str, &str)],
    ) -> Result<(), QueryError> {
        if !self.might_keep(ts) {
            return Ok(());
        }
        let Some(lbs) = self.builder.as_mut() else {
            let metadata = metadata
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            let labels = self.labels.clone();
            self.keep(ts, labels, line.to_string(), metadata, Vec::new());
            return Ok(());
        };
        lbs.reset(metadata.iter().copied());
        let Some(out) = self.pipeline.run(ts, line, lbs) else {
            return Ok(());
        };
        let hash = lbs.labels_hash();
        let categories = match self.categories.get(&hash) {
            Some(c) => c.clone(),
            None => {
                let c = lbs.categorized();
                let c = Rc::new(Categories {
                    stream: Rc::new(c.stream),
                    metadata: c.structured_metadata.pairs().to_vec(),
                    parsed: c.parsed.pairs().to_vec(),
                });
                if self.categories.len() >= CATEGORIES_CACHED_MAX {
                    self.categories.clear();
                }
                self.categories.insert(hash, c.clone());
                c
            }
        };
        self.keep(
            ts,
            categories.stream.clone(),
            out.into_owned(),
            categories.metadata.clone(),
            categories.parsed.clone(),
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(app: &str) -> Labels {
        Labels::from_pairs([("app", app)])
    }

    #[test]
    fn keeps_the_first_limit_over_all_streams() {
        let mut sink = TopEntries::new(3, Direction::Forward, Default::default());
        sink.begin_stream(&labels("b"));
        for ts in [5, 1, 9] {
            sink.push(ts, "b", &[]).unwrap();
        }
        sink.begin_stream(&labels("a"));
        for ts in [1, 2, 7] {
            sink.push(ts, "a", &[("k", "v")]).unwrap();
        }
        assert_eq!(sink.cutoff(), Some(2));
        let p = sink.finish();
        let got: Vec<(String, Vec<i64>)> = p
            .streams
            .iter()
            .map(|s| {
                (
                    s.labels.get("app").unwrap().to_string(),
                    s.entries.iter().map(|e| e.0).collect(),
                )
            })
            .collect();
        // Ties at ts 1: stream "a" sorts first.
        assert_eq!(got, vec![("a".into(), vec![1, 2]), ("b".into(), vec![1])]);
        assert_eq!(p.streams[0].entries[0].2, vec![("k".into(), "v".into())]);
    }

    #[test]
    fn backward_keeps_the_newest() {
        let mut sink = TopEntries::new(2, Direction::Backward, Default::default());
        sink.begin_stream(&labels("a"));
        for ts in [1, 4, 3, 2] {
            sink.push(ts, "x", &[]).unwrap();
        }
        assert_eq!(sink.cutoff(), Some(3));
        assert!(super::super::beyond(Direction::Backward, 2, sink.cutoff()));
        let p = sink.finish();
        assert_eq!(
            p.streams[0].entries.iter().map(|e| e.0).collect::<Vec<_>>(),
            vec![4, 3]
        );
    }

    #[test]
    fn zero_limit_keeps_nothing() {
        let mut sink = TopEntries::new(0, Direction::Forward, Default::default());
        sink.begin_stream(&labels("a"));
        sink.push(1, "x", &[]).unwrap();
        assert!(sink.finish().streams.is_empty());
    }
}

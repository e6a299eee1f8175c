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

use super::{QueryControl, ScanSink, ScanSpec};
use crate::chunk::required_literals;
use crate::logql::LogSelector;
use crate::model::{Labels, MetadataPair, TimestampNs};
use crate::query::QueryError;
use crate::query::merge::{Partial, PartialStream};
use crate::query::params::Direction;
use crate::shard::Shard;

/// A log query as one shard runs it.
#[derive(Debug)]
pub struct LogsRequest {
    pub tenant: String,
    pub selector: LogSelector,
    pub start: TimestampNs,
    pub end: TimestampNs,
    pub limit: usize,
    pub direction: Direction,
    /// Cancellation and the byte budget, shared by every shard's part of the query.
    pub control: Arc<QueryControl>,
}

/// Runs a log query on one shard: the first `limit` entries over all its streams.
pub async fn run(shard: &Shard, r: &LogsRequest) -> Result<Partial, QueryError> {
    let spec = ScanSpec {
        tenant: r.tenant.clone(),
        matchers: r.selector.matchers.clone(),
        start: r.start,
        end: r.end,
        direction: r.direction,
        filters: r.selector.filters.clone(),
        bloom: required_literals(&r.selector.filters),
        control: r.control.clone(),
    };
    let mut sink = TopEntries::new(r.limit, r.direction);
    shard.scan(&spec, &mut sink).await?;
    Ok(sink.finish())
}

/// One kept entry.
struct Kept {
    ts: TimestampNs,
    labels: Rc<Labels>,
    seq: u64,
    line: String,
    metadata: Vec<MetadataPair>,
    direction: Direction,
}

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
    labels: Rc<Labels>,
    seq: u64,
}

impl TopEntries {
    pub fn new(limit: usize, direction: Direction) -> TopEntries {
        TopEntries {
            limit,
            direction,
            heap: BinaryHeap::with_capacity(limit.min(4096)),
            labels: Rc::new(Labels::default()),
            seq: 0,
        }
    }

    /// Whether an entry at `ts` of the current stream would be kept.
    fn would_keep(&self, ts: TimestampNs) -> bool {
        if self.heap.len() < self.limit {
            return true;
        }
        let Some(worst) = self.heap.peek() else {
            return false;
        };
        let by_time = match self.direction {
            Direction::Forward => ts.cmp(&worst.ts),
            Direction::Backward => worst.ts.cmp(&ts),
        };
        // A later arrival of the same stream at the same time loses the tie.
        by_time.then_with(|| self.labels.as_ref().cmp(&worst.labels)) == Ordering::Less
    }

    /// Keeps an entry with labels `labels` (the stream's, or the pipeline's output).
    pub fn keep(
        &mut self,
        ts: TimestampNs,
        labels: Rc<Labels>,
        line: String,
        metadata: Vec<MetadataPair>,
    ) {
        self.seq += 1;
        self.heap.push(Kept {
            ts,
            labels,
            seq: self.seq,
            line,
            metadata,
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
            match streams.last_mut() {
                Some(s) if s.labels == *k.labels => s.entries.push((k.ts, k.line, k.metadata)),
                _ => streams.push(PartialStream {
                    labels: Rc::unwrap_or_clone(k.labels),
                    entries: vec![(k.ts, k.line, k.metadata)],
                }),
            }
        }
        Partial { streams }
    }
}

impl ScanSink for TopEntries {
    fn begin_stream(&mut self, labels: &Labels) {
        self.labels = Rc::new(labels.clone());
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
        if !self.would_keep(ts) {
            return Ok(());
        }
        let metadata = metadata
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let labels = self.labels.clone();
        self.keep(ts, labels, line.to_string(), metadata);
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
        let mut sink = TopEntries::new(3, Direction::Forward);
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
        let mut sink = TopEntries::new(2, Direction::Backward);
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
        let mut sink = TopEntries::new(0, Direction::Forward);
        sink.begin_stream(&labels("a"));
        sink.push(1, "x", &[]).unwrap();
        assert!(sink.finish().streams.is_empty());
    }
}

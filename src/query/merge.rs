//! The k-way merge of the shards' partial results of a log query into the response.
//!
//! Each shard answers with a [`Partial`]: its streams, each with entries sorted in the query
//! direction, at most `limit` entries in all. The merge keeps exactly the first `limit`
//! entries of the union in direction order, merges streams with equal labels coming from
//! different shards (after a change of core count one stream's data can live on two), and
//! returns the streams ordered by labels, each with its kept entries in direction order.
//!
//! Order between equal timestamps is deterministic: by stream labels, then by the position of
//! the stream in the partials (partial index, stream index), then by position in the stream.
//! Cost: O(limit · log k) for k input streams, and no entry is copied, only moved.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap};

use crate::model::{Labels, MetadataPair, TimestampNs};

use super::params::Direction;

/// One log entry of a partial result: timestamp, line, structured metadata, and the labels
/// the query's parsers extracted (Loki's categories; the stream's own labels are the
/// stream's).
pub type PartialEntry = (TimestampNs, String, Vec<MetadataPair>, Vec<MetadataPair>);

/// One stream of a partial result.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PartialStream {
    pub labels: Labels,
    /// Sorted in the query direction (oldest first for forward, newest first for backward).
    pub entries: Vec<PartialEntry>,
}

/// What one shard returns for a log query.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Partial {
    pub streams: Vec<PartialStream>,
}

/// The head of one input stream in the merge heap.
struct MergeEntry {
    ts: TimestampNs,
    /// Index of the output stream (streams sorted by labels), the first tie-breaker.
    stream: u32,
    /// Index of the input stream (partials in order, then their streams in order).
    source: u32,
    entry: PartialEntry,
    direction: Direction,
}

impl MergeEntry {
    /// The order in which entries are taken: `Less` is taken first.
    fn take_order(&self, other: &Self) -> Ordering {
        let by_time = match self.direction {
            Direction::Forward => self.ts.cmp(&other.ts),
            Direction::Backward => other.ts.cmp(&self.ts),
        };
        by_time
            .then(self.stream.cmp(&other.stream))
            .then(self.source.cmp(&other.source))
    }
}

impl PartialEq for MergeEntry {
    fn eq(&self, other: &Self) -> bool {
        self.take_order(other) == Ordering::Equal
    }
}

impl Eq for MergeEntry {}

impl PartialOrd for MergeEntry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for MergeEntry {
    /// Reversed: `BinaryHeap` pops the greatest, and the merge wants the first to take.
    fn cmp(&self, other: &Self) -> Ordering {
        other.take_order(self)
    }
}

/// Whether `next` may follow `prev` within one stream sorted in `direction`.
fn in_direction(direction: Direction, prev: TimestampNs, next: TimestampNs) -> bool {
    match direction {
        Direction::Forward => prev <= next,
        Direction::Backward => prev >= next,
    }
}

/// Merges partial results into at most `limit` entries, in streams ordered by labels.
pub fn merge_partials(
    partials: Vec<Partial>,
    direction: Direction,
    limit: usize,
) -> Vec<PartialStream> {
    // Output streams: one per distinct label set, in label order.
    let mut stream_of: BTreeMap<Labels, u32> = BTreeMap::new();
    for s in partials.iter().flat_map(|p| &p.streams) {
        stream_of.entry(s.labels.clone()).or_insert(0);
    }
    let mut out: Vec<PartialStream> = Vec::with_capacity(stream_of.len());
    for (i, (labels, idx)) in stream_of.iter_mut().enumerate() {
        *idx = u32::try_from(i).expect("fewer than 2^32 streams in a result");
        out.push(PartialStream {
            labels: labels.clone(),
            entries: Vec::new(),
        });
    }

    let mut sources: Vec<std::vec::IntoIter<PartialEntry>> = Vec::new();
    let mut heap: BinaryHeap<MergeEntry> = BinaryHeap::new();
    for s in partials.into_iter().flat_map(|p| p.streams) {
        let stream = stream_of[&s.labels];
        let source = u32::try_from(sources.len()).expect("fewer than 2^32 input streams");
        let mut entries = s.entries.into_iter();
        if let Some(entry) = entries.next() {
            heap.push(MergeEntry {
                ts: entry.0,
                stream,
                source,
                entry,
                direction,
            });
        }
        sources.push(entries);
    }

    let mut taken = 0;
    while taken < limit {
        let Some(head) = heap.pop() else { break };
        if let Some(next) = sources[head.source as usize].next() {
            // The shards sort each stream; a violation is a bug on their side.
            debug_assert!(
                in_direction(direction, head.ts, next.0),
                "partial stream not sorted {direction:?}: {} then {}",
                head.ts,
                next.0
            );
            heap.push(MergeEntry {
                ts: next.0,
                stream: head.stream,
                source: head.source,
                entry: next,
                direction,
            });
        }
        out[head.stream as usize].entries.push(head.entry);
        taken += 1;
    }
    out.retain(|s| !s.entries.is_empty());
    out
}

/// Loki's `interval` on a log query (`readStreams`): walking the entries in direction order
/// over every stream, an entry is kept only if it lies at least `interval_ns` after (forward)
/// or before (backward) the last kept one; the first is always kept. Loki thins the entries
/// its querier read, so the result may hold fewer than `limit` entries.
pub fn thin_to_interval(
    streams: Vec<PartialStream>,
    direction: Direction,
    interval_ns: i64,
) -> Vec<PartialStream> {
    if interval_ns <= 0 {
        return streams;
    }
    // Every entry's (timestamp, stream, position), in the merge's order: by time in the
    // direction, then by stream (streams are sorted by labels).
    let mut order: Vec<(TimestampNs, usize, usize)> = streams
        .iter()
        .enumerate()
        .flat_map(|(si, s)| s.entries.iter().enumerate().map(move |(i, e)| (e.0, si, i)))
        .collect();
    match direction {
        Direction::Forward => order.sort(),
        Direction::Backward => {
            order.sort_by(|a, b| b.0.cmp(&a.0).then((a.1, a.2).cmp(&(b.1, b.2))))
        }
    }
    let mut keep: Vec<Vec<bool>> = streams
        .iter()
        .map(|s| vec![false; s.entries.len()])
        .collect();
    let mut last: Option<TimestampNs> = None;
    for (ts, si, i) in order {
        let due = match (last, direction) {
            (None, _) => true,
            (Some(l), Direction::Forward) => ts >= l.saturating_add(interval_ns),
            (Some(l), Direction::Backward) => ts <= l.saturating_sub(interval_ns),
        };
        if due {
            keep[si][i] = true;
            last = Some(ts);
        }
    }
    let mut out: Vec<PartialStream> = streams
        .into_iter()
        .zip(keep)
        .map(|(s, keep)| PartialStream {
            labels: s.labels,
            entries: s
                .entries
                .into_iter()
                .zip(keep)
                .filter_map(|(e, k)| k.then_some(e))
                .collect(),
        })
        .collect();
    out.retain(|s| !s.entries.is_empty());
    out
}

/// Appends the streams of a later time window (in the query direction) to `acc`, keeping at
/// most `limit` entries in all: the window's first ones in direction order. Windows do not
/// overlap, so a stream's entries stay in direction order.
pub fn append_window(
    acc: &mut Vec<PartialStream>,
    window: Vec<PartialStream>,
    direction: Direction,
    limit: usize,
) {
    let held: usize = acc.iter().map(|s| s.entries.len()).sum();
    let room = limit.saturating_sub(held);
    let window = merge_partials(vec![Partial { streams: window }], direction, room);
    for s in window {
        match acc.iter_mut().find(|a| a.labels == s.labels) {
            Some(a) => a.entries.extend(s.entries),
            None => acc.push(s),
        }
    }
    acc.sort_by(|a, b| a.labels.cmp(&b.labels));
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn labels(app: &str) -> Labels {
        Labels::from_pairs([("app", app)])
    }

    fn stream(app: &str, ts: &[i64]) -> PartialStream {
        PartialStream {
            labels: labels(app),
            entries: ts
                .iter()
                .map(|&t| (t, format!("{app}@{t}"), Vec::new(), Vec::new()))
                .collect(),
        }
    }

    #[test]
    fn takes_the_newest_backward_and_merges_equal_labels() {
        let a = Partial {
            streams: vec![stream("a", &[9, 5, 1]), stream("b", &[8, 2])],
        };
        let b = Partial {
            streams: vec![stream("a", &[7, 6]), stream("c", &[3])],
        };
        let out = merge_partials(vec![a, b], Direction::Backward, 4);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].labels, labels("a"));
        let ts: Vec<i64> = out[0].entries.iter().map(|e| e.0).collect();
        assert_eq!(ts, [9, 7, 6]);
        assert_eq!(out[1].labels, labels("b"));
        assert_eq!(out[1].entries.len(), 1);
    }

    #[test]
    fn forward_and_ties() {
        let a = Partial {
            streams: vec![stream("b", &[1, 2]), stream("a", &[2, 3])],
        };
        let out = merge_partials(vec![a], Direction::Forward, 3);
        // Taken: b@1, then the tie at 2 goes to the smaller labels (a@2), then b@2; a@3 is
        // beyond the limit.
        let flat: Vec<(String, i64)> = out
            .iter()
            .flat_map(|s| s.entries.iter().map(|e| (s.labels.to_string(), e.0)))
            .collect();
        assert_eq!(
            flat,
            [
                (r#"{app="a"}"#.to_string(), 2),
                (r#"{app="b"}"#.to_string(), 1),
                (r#"{app="b"}"#.to_string(), 2)
            ]
        );
    }

    #[test]
    fn empty_inputs_and_zero_limit() {
        assert!(merge_partials(Vec::new(), Direction::Forward, 10).is_empty());
        let a = Partial {
            streams: vec![stream("a", &[1])],
        };
        assert!(merge_partials(vec![a.clone()], Direction::Forward, 0).is_empty());
        let empty = Partial {
            streams: vec![stream("z", &[])],
        };
        assert_eq!(
            merge_partials(vec![a, empty], Direction::Forward, 10).len(),
            1
        );
    }

    /// The reference: everything flattened with its tie-breaking keys, sorted, cut at limit,
    /// grouped by labels.
    fn reference(partials: &[Partial], direction: Direction, limit: usize) -> Vec<PartialStream> {
        let mut all = Vec::new();
        let mut source = 0;
        for p in partials {
            for s in &p.streams {
                for (pos, e) in s.entries.iter().enumerate() {
                    all.push((e.0, s.labels.clone(), source, pos, e.clone()));
                }
                source += 1;
            }
        }
        all.sort_by(|a, b| {
            let t = match direction {
                Direction::Forward => a.0.cmp(&b.0),
                Direction::Backward => b.0.cmp(&a.0),
            };
            t.then(a.1.cmp(&b.1))
                .then(a.2.cmp(&b.2))
                .then(a.3.cmp(&b.3))
        });
        all.truncate(limit);
        let mut grouped: BTreeMap<Labels, Vec<PartialEntry>> = BTreeMap::new();
        for (_, l, _, _, e) in all {
            grouped.entry(l).or_default().push(e);
        }
        grouped
            .into_iter()
            .map(|(labels, entries)| PartialStream { labels, entries })
            .collect()
    }

    fn arb_partials(direction: Direction) -> impl Strategy<Value = Vec<Partial>> {
        let stream =
            (0..4u8, proptest::collection::vec(0..20i64, 0..12)).prop_map(move |(app, mut ts)| {
                ts.sort_unstable();
                if direction == Direction::Backward {
                    ts.reverse();
                }
                let app = format!("s{app}");
                PartialStream {
                    labels: labels(&app),
                    entries: ts
                        .iter()
                        .enumerate()
                        .map(|(i, &t)| {
                            (
                                t,
                                format!("{app}#{i}"),
                                vec![("k".into(), i.to_string())],
                                Vec::new(),
                            )
                        })
                        .collect(),
                }
            });
        let partial =
            proptest::collection::vec(stream, 0..4).prop_map(|streams| Partial { streams });
        proptest::collection::vec(partial, 0..4)
    }

    fn check(
        partials: Vec<Partial>,
        direction: Direction,
        limit: usize,
    ) -> Result<(), TestCaseError> {
        let want = reference(&partials, direction, limit);
        let got = merge_partials(partials, direction, limit);
        prop_assert_eq!(got, want);
        Ok(())
    }

    proptest! {
        #[test]
        fn equals_sort_and_take_forward(p in arb_partials(Direction::Forward), limit in 0..40usize) {
            check(p, Direction::Forward, limit)?;
        }

        #[test]
        fn equals_sort_and_take_backward(p in arb_partials(Direction::Backward), limit in 0..40usize) {
            check(p, Direction::Backward, limit)?;
        }
    }

    fn entry(ts: TimestampNs) -> PartialEntry {
        (ts, format!("l{ts}"), Vec::new(), Vec::new())
    }

    fn timestamps(streams: &[PartialStream]) -> Vec<Vec<TimestampNs>> {
        streams
            .iter()
            .map(|s| s.entries.iter().map(|e| e.0).collect())
            .collect()
    }

    #[test]
    fn interval_keeps_one_entry_per_interval_over_all_streams() {
        let streams = || {
            vec![
                PartialStream {
                    labels: labels("a"),
                    entries: vec![entry(0), entry(5), entry(10), entry(25)],
                },
                PartialStream {
                    labels: labels("b"),
                    entries: vec![entry(3), entry(12), entry(20)],
                },
            ]
        };
        // Forward: 0, then the first at >= 10 (10, stream a), then >= 20 (20, b).
        let fwd = thin_to_interval(streams(), Direction::Forward, 10);
        assert_eq!(timestamps(&fwd), vec![vec![0, 10], vec![20]]);
        // Backward over the same entries, newest first: 25, <= 15: 12, <= 2: 0.
        let mut back = streams();
        for s in &mut back {
            s.entries.reverse();
        }
        let back = thin_to_interval(back, Direction::Backward, 10);
        assert_eq!(timestamps(&back), vec![vec![25, 0], vec![12]]);
        // No interval: unchanged.
        assert_eq!(
            thin_to_interval(streams(), Direction::Forward, 0),
            streams()
        );
    }

    #[test]
    fn windows_append_up_to_the_limit() {
        let mut acc = vec![PartialStream {
            labels: labels("b"),
            entries: vec![entry(1), entry(2)],
        }];
        let later = vec![
            PartialStream {
                labels: labels("a"),
                entries: vec![entry(11), entry(14)],
            },
            PartialStream {
                labels: labels("b"),
                entries: vec![entry(12)],
            },
        ];
        append_window(&mut acc, later, Direction::Forward, 4);
        assert_eq!(timestamps(&acc), vec![vec![11], vec![1, 2, 12]]);
    }
}

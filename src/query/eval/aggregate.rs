//! Vector aggregations at one step (`sum`, `avg`, `min`, `max`, `stddev`, `stdvar`,
//! `count`, `topk`, `bottomk`, `sort`, `sort_desc`, `approx_topk`), as Loki's
//! `VectorAggEvaluator` computes them.
//!
//! Which question it answers: "what does this aggregation give for this step's vector?"
//! Samples are grouped by their `by` labels (or all but their `without` labels; no grouping
//! is one group). `avg` is a running mean that keeps infinities, `stddev`/`stdvar` are
//! population statistics by Welford's method, `min`/`max` skip NaN unless every value is.
//! `topk`/`bottomk` keep `k` samples per group in a binary heap with Go's `container/heap`
//! algorithm, so ties are resolved as Loki and Prometheus resolve them for the same input
//! order (input vectors are in label order here); `approx_topk` is `topk` computed exactly.
//! Selections come out by value (descending for `topk`/`sort_desc`, ascending for
//! `bottomk`/`sort`, NaN last), each group in turn, groups in order of first appearance.

use std::cmp::Ordering;
use std::sync::Arc;

use crate::logql::{Grouping, VectorOp};
use crate::model::Labels;

use super::Sample;
use super::labels_index::{LabelsCache, LabelsIndex};

/// The labels of the group a sample with these labels falls into. A label with an empty
/// value (set by a parser) stays, as in Loki's vector aggregation.
pub(crate) fn group_labels(labels: &Labels, grouping: Option<&Grouping>) -> Labels {
    match grouping {
        None => Labels::default(),
        Some(g) if g.without => Labels::from_pairs_keeping_empty(
            labels
                .pairs()
                .iter()
                .filter(|(k, _)| k != "__name__" && !g.labels.iter().any(|n| n == k))
                .cloned(),
        ),
        Some(g) => Labels::from_pairs_keeping_empty(
            labels
                .pairs()
                .iter()
                .filter(|(k, _)| g.labels.iter().any(|n| n == k))
                .cloned(),
        ),
    }
}

/// Which way a selection heap orders: Loki's `vectorByValueHeap` keeps the smallest on top
/// (for the largest `k`), `vectorByReverseValueHeap` the largest.
#[derive(Clone, Copy, PartialEq, Eq)]
enum HeapOrder {
    SmallestOnTop,
    LargestOnTop,
}

impl HeapOrder {
    /// The heap's `Less`: NaN is less than anything, so it is the first to go.
    fn less(self, a: f64, b: f64) -> bool {
        if a.is_nan() {
            return true;
        }
        match self {
            HeapOrder::SmallestOnTop => a < b,
            HeapOrder::LargestOnTop => a > b,
        }
    }

    /// The output order, `sort.Reverse` of the heap order, made total: NaN last.
    fn output(self, a: f64, b: f64) -> Ordering {
        match (a.is_nan(), b.is_nan()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            (false, false) => {
                let ord = a.partial_cmp(&b).unwrap_or(Ordering::Equal);
                match self {
                    HeapOrder::SmallestOnTop => ord.reverse(),
                    HeapOrder::LargestOnTop => ord,
                }
            }
        }
    }
}

/// Go's `container/heap` over samples.
struct GoHeap {
    order: HeapOrder,
    items: Vec<Sample>,
}

impl GoHeap {
    fn less(&self, i: usize, j: usize) -> bool {
        match (self.items.get(i), self.items.get(j)) {
            (Some(a), Some(b)) => self.order.less(a.value, b.value),
            _ => false,
        }
    }

    fn up(&mut self, mut j: usize) {
        while j > 0 {
            let i = (j - 1) / 2;
            if !self.less(j, i) {
                break;
            }
            self.items.swap(i, j);
            j = i;
        }
    }

    fn down(&mut self, i0: usize, n: usize) {
        let mut i = i0;
        loop {
            let j1 = 2 * i + 1;
            if j1 >= n {
                break;
            }
            let mut j = j1;
            let j2 = j1 + 1;
            if j2 < n && self.less(j2, j1) {
                j = j2;
            }
            if !self.less(j, i) {
                break;
            }
            self.items.swap(i, j);
            i = j;
        }
    }

    fn push(&mut self, s: Sample) {
        self.items.push(s);
        self.up(self.items.len() - 1);
    }

    fn pop(&mut self) {
        let Some(n) = self.items.len().checked_sub(1) else {
            return;
        };
        self.items.swap(0, n);
        self.down(0, n);
        self.items.pop();
    }

    fn top(&self) -> Option<f64> {
        self.items.first().map(|s| s.value)
    }

    /// The kept samples in output order (a stable sort of the heap array, as Go's
    /// insertion sort does for the small heaps of `topk`).
    fn into_sorted(mut self) -> Vec<Sample> {
        let order = self.order;
        self.items.sort_by(|a, b| order.output(a.value, b.value));
        self.items
    }
}

struct Group {
    labels: Arc<Labels>,
    value: f64,
    mean: f64,
    count: usize,
    heap: Option<GoHeap>,
}

/// One step of a vector aggregation.
pub(crate) fn aggregate(
    op: VectorOp,
    grouping: Option<&Grouping>,
    param: Option<i64>,
    input: Vec<Sample>,
    cache: &mut LabelsCache,
) -> Vec<Sample> {
    let selects = matches!(
        op,
        VectorOp::Topk | VectorOp::Bottomk | VectorOp::ApproxTopk
    );
    let k = usize::try_from(param.unwrap_or(0)).unwrap_or(0);
    if selects && k < 1 {
        return Vec::new();
    }
    let heap_order = match op {
        VectorOp::Topk | VectorOp::ApproxTopk | VectorOp::SortDesc => {
            Some(HeapOrder::SmallestOnTop)
        }
        VectorOp::Bottomk | VectorOp::Sort => Some(HeapOrder::LargestOnTop),
        _ => None,
    };
    let mut index: LabelsIndex<usize> = LabelsIndex::default();
    let mut groups: Vec<Group> = Vec::new();
    for s in input {
        let key = cache.get_or_insert(&s.labels, |l| group_labels(l, grouping));
        let slot = index.get(&key);
        let Some(group) = slot.and_then(|i| groups.get_mut(i)) else {
            let heap = heap_order.map(|order| {
                let mut h = GoHeap {
                    order,
                    items: Vec::new(),
                };
                h.push(s.clone());
                h
            });
            index.insert(Arc::clone(&key), groups.len());
            groups.push(Group {
                labels: key,
                value: match op {
                    VectorOp::Stddev | VectorOp::Stdvar => 0.0,
                    _ => s.value,
                },
                mean: s.value,
                count: 1,
                heap,
            });
            continue;
        };
        let v = s.value;
        match op {
            VectorOp::Sum => group.value += v,
            VectorOp::Avg => {
                group.count += 1;
                // An infinite mean stays as it is unless the opposite infinity or a NaN
                // arrives: `Inf + (x - Inf)` would otherwise turn it into NaN.
                let keep = group.mean.is_infinite()
                    && ((v.is_infinite() && (group.mean > 0.0) == (v > 0.0))
                        || (!v.is_infinite() && !v.is_nan()));
                if !keep {
                    group.mean += (v - group.mean) / group.count as f64;
                }
            }
            VectorOp::Max => {
                if group.value < v || group.value.is_nan() {
                    group.value = v;
                }
            }
            VectorOp::Min => {
                if group.value > v || group.value.is_nan() {
                    group.value = v;
                }
            }
            VectorOp::Count => group.count += 1,
            VectorOp::Stddev | VectorOp::Stdvar => {
                group.count += 1;
                let delta = v - group.mean;
                group.mean += delta / group.count as f64;
                group.value += delta * (v - group.mean);
            }
            VectorOp::Topk | VectorOp::ApproxTopk | VectorOp::Bottomk => {
                if let Some(heap) = group.heap.as_mut() {
                    let top = heap.top().unwrap_or(f64::NAN);
                    let better = match heap.order {
                        HeapOrder::SmallestOnTop => top < v,
                        HeapOrder::LargestOnTop => top > v,
                    };
                    if heap.items.len() < k || better || top.is_nan() {
                        if heap.items.len() == k {
                            heap.pop();
                        }
                        heap.push(s);
                    }
                }
            }
            VectorOp::Sort | VectorOp::SortDesc => {
                if let Some(heap) = group.heap.as_mut() {
                    heap.push(s);
                }
            }
        }
    }
    let mut out = Vec::with_capacity(groups.len());
    for g in groups {
        if let Some(heap) = g.heap {
            out.extend(heap.into_sorted());
            continue;
        }
        let value = match op {
            VectorOp::Avg => g.mean,
            VectorOp::Count => g.count as f64,
            VectorOp::Stddev => (g.value / g.count as f64).sqrt(),
            VectorOp::Stdvar => g.value / g.count as f64,
            _ => g.value,
        };
        out.push(Sample {
            labels: g.labels,
            value,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_keep_empty_values_as_loki_does() {
        let l = Labels::from_pairs_keeping_empty([("app", "a"), ("user", "")]);
        let by = Grouping {
            without: false,
            labels: vec!["user".into()],
        };
        assert_eq!(group_labels(&l, Some(&by)).to_string(), r#"{user=""}"#);
        let without = Grouping {
            without: true,
            labels: vec!["app".into()],
        };
        assert_eq!(group_labels(&l, Some(&without)).to_string(), r#"{user=""}"#);
        assert_eq!(group_labels(&l, None), Labels::default());
    }
}

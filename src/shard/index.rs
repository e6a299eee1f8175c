//! The shard's stream registry and label index: stream id -> head, and per tenant,
//! label name -> value -> streams (postings), so that matchers select streams without
//! looking at every stream and `/labels` answers without scanning data.

use std::collections::BTreeMap;

use ahash::AHashMap;

use super::head::StreamHead;
use crate::logql::{LabelMatcher, MatchOp};
use crate::model::{Labels, StreamId, TimestampNs};

/// Index of a stream in [`Streams::heads`].
pub type StreamIdx = u32;

#[derive(Default)]
struct TenantIndex {
    /// Every stream of the tenant, in creation order.
    all: Vec<StreamIdx>,
    /// name -> value -> streams, each list in creation order.
    postings: BTreeMap<String, BTreeMap<String, Vec<StreamIdx>>>,
}

/// All streams of one shard.
#[derive(Default)]
pub struct Streams {
    heads: Vec<StreamHead>,
    /// Per stream, the time range of its entries in parts (`None`: nothing sealed), so that
    /// streams whose data is only in parts are still selected.
    sealed: Vec<Option<(TimestampNs, TimestampNs)>>,
    by_id: AHashMap<StreamId, StreamIdx>,
    tenants: AHashMap<String, TenantIndex>,
}

impl Streams {
    /// The head of stream `id`, created (and indexed) if new.
    pub fn get_or_create(
        &mut self,
        id: StreamId,
        tenant: &str,
        labels: impl FnOnce() -> Labels,
    ) -> StreamIdx {
        if let Some(&idx) = self.by_id.get(&id) {
            return idx;
        }
        let idx = self.heads.len() as StreamIdx;
        let labels = labels();
        let tenant_index = self.tenants.entry(tenant.to_string()).or_default();
        tenant_index.all.push(idx);
        for (k, v) in labels.pairs() {
            tenant_index
                .postings
                .entry(k.clone())
                .or_default()
                .entry(v.clone())
                .or_default()
                .push(idx);
        }
        self.heads.push(StreamHead::new(id, tenant, labels));
        self.sealed.push(None);
        self.by_id.insert(id, idx);
        idx
    }

    pub fn head(&self, idx: StreamIdx) -> &StreamHead {
        &self.heads[idx as usize]
    }

    pub fn head_mut(&mut self, idx: StreamIdx) -> &mut StreamHead {
        &mut self.heads[idx as usize]
    }

    pub fn len(&self) -> usize {
        self.heads.len()
    }

    pub fn index_of(&self, id: StreamId) -> Option<StreamIdx> {
        self.by_id.get(&id).copied()
    }

    pub fn heads(&self) -> &[StreamHead] {
        &self.heads
    }

    /// Takes the entries of every non-empty head that `due` picks, leaving empty heads. The
    /// taken entries count as sealed for stream selection from now on: they stay readable (in
    /// a sealing set, then in parts), so the stream must stay selectable for their range.
    pub fn take_heads(&mut self, mut due: impl FnMut(&StreamHead) -> bool) -> Vec<StreamHead> {
        let mut taken = Vec::new();
        for idx in 0..self.heads.len() {
            let h = &mut self.heads[idx];
            if h.is_empty() || !due(h) {
                continue;
            }
            let (min, max) = (h.min_ts(), h.max_ts());
            taken.push(h.take());
            self.note_sealed(idx as StreamIdx, min, max);
        }
        taken
    }

    /// Forgets every stream's sealed time range (before recomputing them).
    pub fn clear_sealed(&mut self) {
        self.sealed.fill(None);
    }

    /// Widens the sealed time range of a stream.
    pub fn note_sealed(&mut self, idx: StreamIdx, min: TimestampNs, max: TimestampNs) {
        let r = &mut self.sealed[idx as usize];
        *r = Some(match *r {
            Some((lo, hi)) => (lo.min(min), hi.max(max)),
            None => (min, max),
        });
    }

    /// Whether stream `idx` may have entries in `[start, end)`, in its head or in parts.
    fn overlaps(&self, idx: StreamIdx, start: TimestampNs, end: TimestampNs) -> bool {
        self.heads[idx as usize].overlaps(start, end)
            || self.sealed[idx as usize].is_some_and(|(lo, hi)| lo < end && hi >= start)
    }

    pub fn is_empty(&self) -> bool {
        self.heads.is_empty()
    }

    /// The streams with unsealed entries or sealed ones at or after `since`, by tenant.
    pub fn recent_by_tenant(&self, since: TimestampNs) -> Vec<(String, Vec<StreamId>)> {
        let mut out: Vec<(String, Vec<StreamId>)> = Vec::new();
        for (tenant, t) in &self.tenants {
            let ids: Vec<StreamId> = t
                .all
                .iter()
                .filter(|&&idx| {
                    !self.heads[idx as usize].is_empty()
                        || self.sealed[idx as usize].is_some_and(|(_, end)| end >= since)
                })
                .map(|&idx| self.heads[idx as usize].id)
                .collect();
            if !ids.is_empty() {
                out.push((tenant.clone(), ids));
            }
        }
        out.sort();
        out
    }

    pub fn entries_total(&self) -> u64 {
        self.heads.iter().map(|h| h.len() as u64).sum()
    }

    /// Streams of `tenant` matching every matcher that have data in `[start, end)`.
    /// An empty matcher list selects every stream of the tenant.
    pub fn select(
        &self,
        tenant: &str,
        matchers: &[LabelMatcher],
        start: TimestampNs,
        end: TimestampNs,
    ) -> Vec<StreamIdx> {
        let Some(t) = self.tenants.get(tenant) else {
            return Vec::new();
        };
        // The shortest postings list of an equality matcher bounds the candidates.
        let mut candidates: Option<&Vec<StreamIdx>> = None;
        for m in matchers {
            if m.op == MatchOp::Eq && !m.value.is_empty() {
                let list = t.postings.get(&m.name).and_then(|vals| vals.get(&m.value));
                match list {
                    None => return Vec::new(),
                    Some(l) if candidates.is_none_or(|c| l.len() < c.len()) => candidates = Some(l),
                    Some(_) => {}
                }
            }
        }
        candidates
            .unwrap_or(&t.all)
            .iter()
            .copied()
            .filter(|&idx| {
                let h = &self.heads[idx as usize];
                self.overlaps(idx, start, end)
                    && matchers.iter().all(|m| m.matches(h.labels.get(&m.name)))
            })
            .collect()
    }

    /// Label names of the tenant's streams with data in the range (optionally only of
    /// streams matching `matchers`), sorted.
    pub fn label_names(
        &self,
        tenant: &str,
        matchers: &[LabelMatcher],
        start: TimestampNs,
        end: TimestampNs,
    ) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for idx in self.select(tenant, matchers, start, end) {
            for (k, _) in self.heads[idx as usize].labels.pairs() {
                if let Err(pos) = names.binary_search(k) {
                    names.insert(pos, k.clone());
                }
            }
        }
        names
    }

    /// Values of label `name` over the selected streams, sorted.
    pub fn label_values(
        &self,
        tenant: &str,
        name: &str,
        matchers: &[LabelMatcher],
        start: TimestampNs,
        end: TimestampNs,
    ) -> Vec<String> {
        let Some(t) = self.tenants.get(tenant) else {
            return Vec::new();
        };
        let Some(values) = t.postings.get(name) else {
            return Vec::new();
        };
        values
            .iter()
            .filter(|(_, streams)| {
                streams.iter().any(|&idx| {
                    let h = &self.heads[idx as usize];
                    self.overlaps(idx, start, end)
                        && matchers.iter().all(|m| m.matches(h.labels.get(&m.name)))
                })
            })
            .map(|(v, _)| v.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logql::LabelMatcher;

    fn eq(name: &str, value: &str) -> LabelMatcher {
        LabelMatcher::new(name, MatchOp::Eq, value).unwrap()
    }

    fn streams() -> Streams {
        let mut s = Streams::default();
        for (id, app, host) in [(1, "a", "h1"), (2, "b", "h1"), (3, "a", "h2")] {
            let labels = Labels::from_pairs([("app", app), ("host", host)]);
            let idx = s.get_or_create(id, "t", || labels);
            s.head_mut(idx).push(100, "x", &[]);
        }
        let idx = s.get_or_create(4, "other", || Labels::from_pairs([("app", "a")]));
        s.head_mut(idx).push(100, "y", &[]);
        s
    }

    #[test]
    fn select_by_postings_and_tenant() {
        let mut s = streams();
        assert_eq!(s.select("t", &[eq("app", "a")], 0, 200), vec![0, 2]);
        assert_eq!(
            s.select("t", &[eq("app", "a"), eq("host", "h2")], 0, 200),
            vec![2]
        );
        assert_eq!(
            s.select("t", &[eq("app", "zzz")], 0, 200),
            Vec::<u32>::new()
        );
        assert_eq!(s.select("t", &[], 0, 200).len(), 3);
        assert_eq!(
            s.select("t", &[eq("app", "a")], 101, 200),
            Vec::<u32>::new()
        );
        assert_eq!(s.select("other", &[eq("app", "a")], 0, 200), vec![3]);
        assert_eq!(s.get_or_create(2, "t", || unreachable!()), 1);
    }

    #[test]
    fn label_names_and_values() {
        let s = streams();
        assert_eq!(s.label_names("t", &[], 0, 200), vec!["app", "host"]);
        assert_eq!(s.label_values("t", "app", &[], 0, 200), vec!["a", "b"]);
        assert_eq!(
            s.label_values("t", "host", &[eq("app", "b")], 0, 200),
            vec!["h1"]
        );
        assert!(s.label_values("nobody", "app", &[], 0, 200).is_empty());
    }
}

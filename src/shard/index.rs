//! The shard's resident stream registry and label index: stream id -> head, and per tenant,
//! label name -> value -> streams (postings), so that matchers select streams without
//! looking at every stream.
//!
//! Only streams that are written hold a slot here: a stream whose entries are all sealed and
//! that has gone `stream_idle_period` without a line is evicted ([`Streams::evict_idle`]),
//! and its slot is reused. Its data stays selectable through the postings of the parts that
//! hold it ([`super::select`]), so a stream that no longer receives lines costs nothing in
//! memory here, and a restart brings back only the streams its WAL holds.

use std::collections::BTreeMap;
use std::time::Instant;

use ahash::{AHashMap, AHashSet};

use super::head::StreamHead;
use crate::logql::{LabelMatcher, MatchOp};
use crate::model::{Labels, StreamId, TimestampNs};

/// Index of a stream's slot in [`Streams`]. A slot is reused once its stream is evicted:
/// whoever keeps an index across a yield checks the stream id it finds there.
pub type StreamIdx = u32;

#[derive(Default)]
struct TenantIndex {
    /// Every resident stream of the tenant.
    all: Vec<StreamIdx>,
    /// name -> value -> resident streams.
    postings: BTreeMap<String, BTreeMap<String, Vec<StreamIdx>>>,
}

/// The resident streams of one shard.
pub struct Streams {
    /// One slot per stream; `None` once its stream is evicted (boxed: an empty slot costs a
    /// pointer, not a head).
    heads: Vec<Option<Box<StreamHead>>>,
    /// Per slot, the time range of the stream's entries taken by seal rounds of this
    /// process (`None`: none), so that a stream whose entries are being sealed stays
    /// selected; what is in parts is found through the parts' own postings.
    sealed: Vec<Option<(TimestampNs, TimestampNs)>>,
    /// Per slot, the second (since `clock`) of the stream's last write.
    touched: Vec<u32>,
    /// Slots of evicted streams, for the next new streams.
    free: Vec<StreamIdx>,
    by_id: AHashMap<StreamId, StreamIdx>,
    tenants: AHashMap<String, TenantIndex>,
    clock: Instant,
}

impl Default for Streams {
    fn default() -> Self {
        Streams {
            heads: Vec::new(),
            sealed: Vec::new(),
            touched: Vec::new(),
            free: Vec::new(),
            by_id: AHashMap::new(),
            tenants: AHashMap::new(),
            clock: Instant::now(),
        }
    }
}

impl Streams {
    fn now_s(&self) -> u32 {
        self.clock.elapsed().as_secs() as u32
    }

    /// The head of stream `id`, created (and indexed) if new; either way the stream counts
    /// as written now.
    pub fn get_or_create(
        &mut self,
        id: StreamId,
        tenant: &str,
        labels: impl FnOnce() -> Labels,
    ) -> StreamIdx {
        let now = self.now_s();
        if let Some(&idx) = self.by_id.get(&id) {
            self.touched[idx as usize] = now;
            return idx;
        }
        let labels = labels();
        let idx = match self.free.pop() {
            Some(idx) => idx,
            None => {
                self.heads.push(None);
                self.sealed.push(None);
                self.touched.push(0);
                (self.heads.len() - 1) as StreamIdx
            }
        };
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
        let i = idx as usize;
        self.heads[i] = Some(Box::new(StreamHead::new(id, tenant, labels)));
        self.sealed[i] = None;
        self.touched[i] = now;
        self.by_id.insert(id, idx);
        idx
    }

    /// The head in slot `idx`, which must hold a stream (an index from [`Streams::select`]
    /// or [`Streams::index_of`] taken without a yield since).
    pub fn head(&self, idx: StreamIdx) -> &StreamHead {
        self.heads[idx as usize]
            .as_deref()
            .expect("a stream index is used before any yield")
    }

    /// The head in slot `idx`, if it still holds a stream.
    pub fn slot(&self, idx: StreamIdx) -> Option<&StreamHead> {
        self.heads.get(idx as usize).and_then(|h| h.as_deref())
    }

    pub fn head_mut(&mut self, idx: StreamIdx) -> &mut StreamHead {
        self.heads[idx as usize]
            .as_deref_mut()
            .expect("a stream index is used before any yield")
    }

    /// Resident streams.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn index_of(&self, id: StreamId) -> Option<StreamIdx> {
        self.by_id.get(&id).copied()
    }

    /// Every resident stream's head.
    pub fn heads(&self) -> impl Iterator<Item = &StreamHead> {
        self.heads.iter().filter_map(|h| h.as_deref())
    }

    /// Takes the entries of every non-empty head that `due` picks, leaving empty heads. The
    /// taken entries count as sealed for stream selection from now on: they stay readable (in
    /// a sealing set, then in parts), so the stream must stay selectable for their range.
    pub fn take_heads(&mut self, mut due: impl FnMut(&StreamHead) -> bool) -> Vec<StreamHead> {
        let mut taken = Vec::new();
        for idx in 0..self.heads.len() {
            let Some(h) = self.heads[idx].as_deref_mut() else {
                continue;
            };
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

    /// Whether stream `idx` may have entries in `[start, end)` in its head or in heads
    /// being sealed.
    fn overlaps(&self, idx: StreamIdx, start: TimestampNs, end: TimestampNs) -> bool {
        self.head(idx).overlaps(start, end)
            || self.sealed[idx as usize].is_some_and(|(lo, hi)| lo < end && hi >= start)
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// The resident streams with unsealed entries, by tenant.
    pub fn unsealed_by_tenant(&self) -> Vec<(String, Vec<StreamId>)> {
        let mut out: Vec<(String, Vec<StreamId>)> = Vec::new();
        for (tenant, t) in &self.tenants {
            let ids: Vec<StreamId> = t
                .all
                .iter()
                .map(|&idx| self.head(idx))
                .filter(|h| !h.is_empty())
                .map(|h| h.id)
                .collect();
            if !ids.is_empty() {
                out.push((tenant.clone(), ids));
            }
        }
        out.sort();
        out
    }

    pub fn entries_total(&self) -> u64 {
        self.heads().map(|h| h.len() as u64).sum()
    }

    /// Resident streams of `tenant` matching every matcher that may have entries in
    /// `[start, end)` in their heads or in heads being sealed. An empty matcher list
    /// selects every stream of the tenant.
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
                let h = self.head(idx);
                self.overlaps(idx, start, end)
                    && matchers.iter().all(|m| m.matches(h.labels.get(&m.name)))
            })
            .collect()
    }

    /// Evicts the streams with nothing unsealed that were last written `idle_s` seconds ago
    /// or longer and that no seal round in progress holds (`sealing`); returns how many.
    /// Their slots are reused by new streams. The postings lists that held them are each
    /// filtered once, so an eviction costs about the size of the lists it touches.
    pub fn evict_idle(&mut self, idle_s: u32, sealing: &AHashSet<StreamId>) -> usize {
        let now = self.now_s();
        let mut gone: AHashSet<StreamIdx> = AHashSet::new();
        for (i, slot) in self.heads.iter().enumerate() {
            if let Some(h) = slot.as_deref()
                && h.is_empty()
                && now.saturating_sub(self.touched[i]) >= idle_s
                && !sealing.contains(&h.id)
            {
                gone.insert(i as StreamIdx);
            }
        }
        if gone.is_empty() {
            return 0;
        }
        // (tenant, name, value) of every postings list that loses a stream.
        let mut lists: AHashSet<(String, String, String)> = AHashSet::new();
        for &idx in &gone {
            let h = self.heads[idx as usize].take().expect("picked above");
            self.by_id.remove(&h.id);
            self.sealed[idx as usize] = None;
            for (k, v) in h.labels.pairs() {
                lists.insert((h.tenant.clone(), k.clone(), v.clone()));
            }
        }
        for (tenant, name, value) in lists {
            let Some(t) = self.tenants.get_mut(&tenant) else {
                continue;
            };
            let Some(values) = t.postings.get_mut(&name) else {
                continue;
            };
            if let Some(list) = values.get_mut(&value) {
                list.retain(|idx| !gone.contains(idx));
                if list.is_empty() {
                    values.remove(&value);
                }
            }
            if values.is_empty() {
                t.postings.remove(&name);
            }
        }
        for t in self.tenants.values_mut() {
            t.all.retain(|idx| !gone.contains(idx));
        }
        self.tenants.retain(|_, t| !t.all.is_empty());
        self.free.extend(gone.iter().copied());
        // Trailing empty slots go, so a shard that held a burst of streams gives their slots
        // back.
        while self.heads.last().is_some_and(|h| h.is_none()) {
            self.heads.pop();
            self.sealed.pop();
            self.touched.pop();
        }
        let len = self.heads.len() as StreamIdx;
        self.free.retain(|&idx| idx < len);
        if self.heads.capacity() > 2 * self.heads.len().max(1024) {
            self.heads.shrink_to_fit();
            self.sealed.shrink_to_fit();
            self.touched.shrink_to_fit();
            self.free.shrink_to_fit();
        }
        // A shard that held a burst of streams gives their table back.
        if self.by_id.capacity() > 4 * self.by_id.len().max(1024) {
            self.by_id.shrink_to_fit();
        }
        gone.len()
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
    fn idle_sealed_streams_leave_and_their_slots_are_reused() {
        let mut s = streams();
        // Nothing is evicted while a head holds entries.
        assert_eq!(s.evict_idle(0, &AHashSet::new()), 0);
        let taken = s.take_heads(|h| h.id != 3);
        assert_eq!(taken.len(), 3);
        // A stream a seal round still holds stays, and so does one written recently.
        assert_eq!(s.evict_idle(3600, &AHashSet::new()), 0);
        assert_eq!(s.evict_idle(0, &AHashSet::from_iter([1])), 2);
        assert_eq!(s.len(), 2);
        assert_eq!(s.index_of(2), None);
        assert_eq!(s.index_of(4), None);
        assert_eq!(s.index_of(1), Some(0));
        // Evicted streams are gone from the postings and from their tenant.
        assert_eq!(s.select("t", &[eq("app", "b")], 0, 200), Vec::<u32>::new());
        assert_eq!(s.select("t", &[eq("app", "a")], 0, 200), vec![0, 2]);
        assert_eq!(s.select("other", &[], 0, 200), Vec::<u32>::new());
        // The trailing empty slot went; the inner one is reused by the next new stream.
        assert_eq!(
            s.get_or_create(5, "t", || Labels::from_pairs([("app", "c")])),
            1
        );
        assert_eq!(s.select("t", &[eq("app", "c")], 0, 0), Vec::<u32>::new());
        s.head_mut(1).push(150, "z", &[]);
        assert_eq!(s.select("t", &[eq("app", "c")], 0, 200), vec![1]);
        assert_eq!(s.heads().count(), 3);
    }
}

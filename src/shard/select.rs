//! Which streams a read covers: the resident ones the registry selects ([`super::index`]),
//! and those whose data is only in parts, found through each part's own postings.
//!
//! A stream that stops receiving lines is sealed, then evicted from the registry once idle
//! (`stream_idle_period`), and a restart brings back only the streams its WAL holds: what
//! the parts hold is read from the parts, never kept twice in memory. A resident stream is
//! selected through the registry (its heads, and the heads seal rounds are taking), and
//! again, without a second copy, when a part has its entries; the union is by stream id.

use std::rc::Rc;
use std::sync::Arc;

use ahash::AHashSet;

use super::Shard;
use super::index::StreamIdx;
use super::parts::PartList;
use crate::logql::{LabelMatcher, MatchOp};
use crate::model::{Labels, StreamId, TimestampNs};
use crate::query::QueryError;
use crate::store::Store;
use crate::store::label_summary::LabelSummary;
use crate::store::part_file::LoadedPart;

/// Evictions of at least this many streams at once give the freed memory back to the
/// system: a burst of short-lived streams would otherwise leave the process as large as at
/// its peak, its heap holes too scattered for the allocator to return by itself.
const TRIM_AFTER_EVICTED: usize = 10_000;

/// One stream a read selected.
pub(super) struct Selected {
    pub id: StreamId,
    pub tenant: Rc<str>,
    pub labels: SelectedLabels,
    /// Its registry slot when it is resident (then its heads are read too).
    pub idx: Option<StreamIdx>,
}

/// The labels of a selected stream: shared with its resident head, or read from the part
/// that selected it when needed, so that a read over a million streams only in parts does
/// not hold a million label sets at once.
pub(super) enum SelectedLabels {
    Shared(Arc<Labels>),
    /// Stream `stream` of part `part` of the read's part list.
    InPart {
        part: u32,
        stream: u32,
    },
}

impl SelectedLabels {
    /// The label set, built from the part's metadata if the stream is not resident.
    pub fn get(&self, parts: &PartList) -> Arc<Labels> {
        match self {
            SelectedLabels::Shared(labels) => Arc::clone(labels),
            SelectedLabels::InPart { part, stream } => {
                let reader = parts[*part as usize].tail.reader();
                let s = &reader.streams()[*stream as usize];
                Arc::new(Labels::from_pairs(
                    s.labels.iter().map(|p| (p.name.as_str(), p.value.as_str())),
                ))
            }
        }
    }
}

impl Shard {
    /// Appends to `out` the streams of `tenant` matching every matcher with entries in
    /// `[start, end)`: resident ones first, then those only `parts` hold, each once. Must
    /// not yield: the slots it returns are valid until the caller's next yield.
    pub(super) fn select_streams(
        &self,
        tenant: &str,
        matchers: &[LabelMatcher],
        start: TimestampNs,
        end: TimestampNs,
        parts: &PartList,
        out: &mut Vec<Selected>,
    ) {
        let streams = self.heads();
        let shared_tenant: Rc<str> = Rc::from(tenant);
        let mut seen: AHashSet<StreamId> = AHashSet::new();
        for idx in streams.select(tenant, matchers, start, end) {
            let h = streams.head(idx);
            seen.insert(h.id);
            out.push(Selected {
                id: h.id,
                tenant: shared_tenant.clone(),
                labels: SelectedLabels::Shared(Arc::clone(&h.labels)),
                idx: Some(idx),
            });
        }
        for (part_index, part) in parts.iter().enumerate() {
            let reader = part.tail.reader();
            let meta = reader.meta();
            let part_streams = reader.streams();
            // The shortest postings list of an equality matcher bounds the candidates; a
            // value no stream of the part has rules the part out.
            let mut candidates: Option<&[rkyv::rend::u32_le]> = None;
            let mut ruled_out = false;
            for m in matchers {
                if m.op == MatchOp::Eq && !m.value.is_empty() {
                    let list = meta.postings(&m.name, &m.value);
                    if list.is_empty() {
                        ruled_out = true;
                        break;
                    }
                    if candidates.is_none_or(|c| list.len() < c.len()) {
                        candidates = Some(list);
                    }
                }
            }
            if ruled_out {
                continue;
            }
            let indexes: Box<dyn Iterator<Item = usize>> = match candidates {
                Some(list) => Box::new(list.iter().map(|i| i.to_native() as usize)),
                None => Box::new(0..part_streams.len()),
            };
            for si in indexes {
                let Some(s) = part_streams.get(si) else {
                    continue;
                };
                let id = s.id.to_native();
                if s.tenant.as_str() != tenant
                    || seen.contains(&id)
                    || !matchers.iter().all(|m| m.matches(s.label(&m.name)))
                {
                    continue;
                }
                let in_range = reader.blocks()[s.block_range()]
                    .iter()
                    .any(|b| b.max_ts.to_native() >= start && b.min_ts.to_native() < end);
                if !in_range {
                    continue;
                }
                seen.insert(id);
                let idx = streams.index_of(id);
                let labels = match idx {
                    Some(idx) => SelectedLabels::Shared(Arc::clone(&streams.head(idx).labels)),
                    None => SelectedLabels::InPart {
                        part: part_index as u32,
                        stream: si as u32,
                    },
                };
                out.push(Selected {
                    id,
                    tenant: shared_tenant.clone(),
                    labels,
                    idx,
                });
            }
        }
    }

    /// The streams of `tenant` matching `matchers` with entries in `[start, end)`, over
    /// every part of the range (returned with them, for [`SelectedLabels::get`]).
    pub(super) async fn selected(
        &self,
        tenant: &str,
        matchers: &[LabelMatcher],
        start: TimestampNs,
        end: TimestampNs,
    ) -> Result<(Vec<Selected>, PartList), QueryError> {
        let parts = self.parts_with_tails(start, end, &|_| true).await?;
        // No yield since the parts were looked at.
        let mut out = Vec::new();
        self.select_streams(tenant, matchers, start, end, &parts, &mut out);
        Ok((out, parts))
    }

    /// What label queries read: the label summaries of the parts `[start, end)` holds whole,
    /// and the streams selected from the registry and from the other parts (returned with
    /// them, for [`SelectedLabels::get`]).
    ///
    /// Without matchers a part the range holds whole answers by its summary, every stream
    /// of it having entries in the range; that reads no tail once the summary is in the part
    /// cache. With matchers every stream is judged on its own labels, so every part of the
    /// range is read as [`Self::selected`] does.
    async fn label_sources(
        &self,
        tenant: &str,
        matchers: &[LabelMatcher],
        start: TimestampNs,
        end: TimestampNs,
    ) -> Result<(Vec<Rc<LabelSummary>>, Vec<Selected>, PartList), QueryError> {
        if !matchers.is_empty() {
            let (selected, parts) = self.selected(tenant, matchers, start, end).await?;
            return Ok((Vec::new(), selected, parts));
        }
        let whole = |p: &LoadedPart| p.entry.min_ts >= start && p.entry.max_ts < end;
        let cache = self.part_cache();
        let mut summaries: ahash::AHashMap<*const LoadedPart, (Rc<LoadedPart>, Rc<LabelSummary>)> =
            Default::default();
        loop {
            let missing: Vec<(Rc<Store>, Rc<LoadedPart>)> = self
                .parts_in(start, end)
                .into_iter()
                .filter(|(_, p)| whole(p) && !summaries.contains_key(&Rc::as_ptr(p)))
                .collect();
            let cache = cache.clone();
            let read = self
                .read_parts(&missing, move |part| {
                    let cache = cache.clone();
                    async move { part.label_summary(&cache).await }
                })
                .await?;
            for ((_, part), summary) in missing.iter().zip(read) {
                summaries.insert(Rc::as_ptr(part), (part.clone(), summary));
            }
            let parts = self.parts_with_tails(start, end, &|p| !whole(p)).await?;
            // No yield since `parts_with_tails` looked at the parts: a part held whole that a
            // seal round or a compaction added meanwhile is summarized in another turn.
            let now_whole: ahash::AHashSet<*const LoadedPart> = self
                .parts_in(start, end)
                .iter()
                .filter(|(_, p)| whole(p))
                .map(|(_, p)| Rc::as_ptr(p))
                .collect();
            if now_whole.iter().all(|p| summaries.contains_key(p)) {
                let mut selected = Vec::new();
                self.select_streams(tenant, matchers, start, end, &parts, &mut selected);
                // Only the parts of this last look: one that retention, a delete or a
                // quarantine removed meanwhile no longer answers.
                let summaries = summaries
                    .into_iter()
                    .filter(|(p, _)| now_whole.contains(p))
                    .map(|(_, (_, s))| s)
                    .collect();
                return Ok((summaries, selected, parts));
            }
        }
    }

    /// Label names of the tenant's streams with data in the range (optionally only of
    /// streams matching `matchers`), sorted.
    pub(super) async fn label_names(
        &self,
        tenant: &str,
        matchers: &[LabelMatcher],
        start: TimestampNs,
        end: TimestampNs,
    ) -> Result<Vec<String>, QueryError> {
        let mut names: Vec<String> = Vec::new();
        let (summaries, selected, parts) = self.label_sources(tenant, matchers, start, end).await?;
        for summary in &summaries {
            merge_sorted_into(&mut names, summary.names(tenant));
        }
        for s in selected {
            for (k, _) in s.labels.get(&parts).pairs() {
                insert_sorted(&mut names, k);
            }
        }
        Ok(names)
    }

    /// Values of label `name` over the selected streams, sorted.
    pub(super) async fn label_values(
        &self,
        tenant: &str,
        name: &str,
        matchers: &[LabelMatcher],
        start: TimestampNs,
        end: TimestampNs,
    ) -> Result<Vec<String>, QueryError> {
        let mut values: Vec<String> = Vec::new();
        let (summaries, selected, parts) = self.label_sources(tenant, matchers, start, end).await?;
        for summary in &summaries {
            merge_sorted_into(&mut values, summary.values(tenant, name));
        }
        for s in selected {
            if let Some(v) = s.labels.get(&parts).get(name) {
                insert_sorted(&mut values, v);
            }
        }
        Ok(values)
    }

    /// Evicts the resident streams gone `idle` without a line whose entries are all sealed
    /// (see [`super::index::Streams::evict_idle`]), and the sealed entries' fingerprints past
    /// their window; returns how many streams left.
    pub fn evict_idle_streams(&self, idle: std::time::Duration) -> usize {
        // The duplicate check's fingerprints of sealed entries expire as Loki pushes arrive;
        // a shard no push reaches any more must let them go too.
        self.expire_fingerprints();
        let sealing: AHashSet<StreamId> = self
            .sealing
            .borrow()
            .iter()
            .flat_map(|set| set.heads.iter().map(|h| h.id))
            .collect();
        let idle_s = idle.as_secs().min(u64::from(u32::MAX)) as u32;
        let evicted = self.heads_mut().evict_idle(idle_s, &sealing);
        if evicted >= TRIM_AFTER_EVICTED {
            crate::runtime::allocator::give_back_freed_memory();
        }
        evicted
    }

    /// The streams of the parts with an entry at or after `since`, by tenant (to count
    /// active streams again after a restart). A part whose metadata cannot be read is left
    /// out (the query that reads it next quarantines it).
    pub(super) async fn part_streams_since(
        &self,
        since: TimestampNs,
    ) -> Vec<(String, Vec<StreamId>)> {
        let mut by_tenant: ahash::AHashMap<String, Vec<StreamId>> = Default::default();
        let cache = self.part_cache();
        for (_, part) in self.parts_in(since, TimestampNs::MAX) {
            let tail = match part.tail(Some(&cache)).await {
                Ok(tail) => tail,
                Err(e) => {
                    eprintln!("shard {}: {e}", self.id);
                    continue;
                }
            };
            let reader = tail.reader();
            for s in reader.streams() {
                let recent = reader.blocks()[s.block_range()]
                    .iter()
                    .any(|b| b.max_ts.to_native() >= since);
                if recent {
                    match by_tenant.get_mut(s.tenant.as_str()) {
                        Some(ids) => ids.push(s.id.to_native()),
                        None => {
                            by_tenant.insert(s.tenant.to_string(), vec![s.id.to_native()]);
                        }
                    }
                }
            }
        }
        by_tenant.into_iter().collect()
    }
}

/// Inserts `v` into the sorted, distinct `acc` unless it is there.
fn insert_sorted(acc: &mut Vec<String>, v: &str) {
    if let Err(pos) = acc.binary_search_by(|x| x.as_str().cmp(v)) {
        acc.insert(pos, v.to_string());
    }
}

/// Merges the sorted, distinct `incoming` into the sorted, distinct `acc`, in one pass: a
/// label query merges the same few thousand values from every part of its range, where an
/// insertion per value would search `acc` each time.
fn merge_sorted_into<'a>(acc: &mut Vec<String>, incoming: impl Iterator<Item = &'a str>) {
    let mut out = Vec::with_capacity(acc.len());
    let mut kept = std::mem::take(acc).into_iter().peekable();
    for v in incoming {
        while let Some(k) = kept.next_if(|k| k.as_str() < v) {
            out.push(k);
        }
        match kept.next_if(|k| k == v) {
            Some(k) => out.push(k),
            None => out.push(v.to_string()),
        }
    }
    out.extend(kept);
    *acc = out;
}

#[cfg(test)]
mod tests {
    use super::merge_sorted_into;

    #[test]
    fn merging_sorted_lists_keeps_them_sorted_and_distinct() {
        let mut acc: Vec<String> = Vec::new();
        merge_sorted_into(&mut acc, ["b", "d"].into_iter());
        merge_sorted_into(&mut acc, ["a", "b", "c", "e"].into_iter());
        merge_sorted_into(&mut acc, std::iter::empty());
        merge_sorted_into(&mut acc, ["e", "f"].into_iter());
        assert_eq!(acc, ["a", "b", "c", "d", "e", "f"]);
    }
}

//! Query evaluation over everything a shard holds: live heads, heads being sealed, and the
//! parts of its stores.
//!
//! The plan for a log query: the parts of the range are fixed with their tails
//! ([`super::parts`]), the registry's and the parts' postings select streams
//! ([`super::select`]), the parts' metadata indexes and bloom filters rule out what they can
//! ([`super::pruning`]); for each stream,
//! its live head and any head taken by a seal round in progress are scanned, then, in every
//! part whose time range overlaps the query, the stream's blocks whose time range overlaps
//! are read unless their bloom filter says a required literal of the line filters cannot
//! occur in them ([`crate::query::needles::required_literals`]). Each source gives the first `limit`
//! entries in the query's direction; the shard merges them. Scans yield between blocks and
//! every [`SCAN_ENTRIES_PER_YIELD`](crate::config::SCAN_ENTRIES_PER_YIELD) head entries, holding no
//! `RefCell` borrow across a yield.
//!
//! What a scan reads is fixed when it starts, without a yield ([`ScanSnapshot`]): the parts,
//! and each selected stream's live head (by generation) and heads being sealed. A seal round
//! may take a live head, and commit its parts, while the scan yields: the scan then reads the
//! same entries at the same indexes from that round's set, which the scan's pin keeps after
//! the commit, and never the round's new parts, which it did not take. So each entry that was
//! in the shard when the scan started is read exactly once.
//!
//! Lines that a delete request still being applied covers are skipped by every scan, in
//! heads and parts alike ([`crate::deletion`]): a stream no request selects pays nothing,
//! a part block outside every request's range is handled as if there were none.
//!
//! A block that fails its checks fails the query (with the file and offset) and its part is
//! quarantined: a query never silently answers with less than the shard holds.

use std::cell::RefCell;
use std::rc::{Rc, Weak};
use std::sync::Arc;

use super::head::StreamHead;
use super::index::StreamIdx;
use super::parts::{PartInRead, PartList};
use super::pruning::{BloomSlot, BloomVerdicts, PairSlot, PrefetchedPairs, part_pairs};
use super::seal::SealingSet;
use super::select::SelectedLabels;
use super::{IndexStats, LabelsRequest, Shard};
use crate::chunk::DecodedBlock;
use crate::deletion::book::{DeleteBook, StreamDeletes};
use crate::logql::LabelMatcher;
use crate::metrics::Counter;
use crate::model::{Labels, StreamId, TimestampNs};

/// Entries a scan handles between two looks at whether the core is due to run its other
/// task queues: the look is cheap, but not free, and most lines take well under a
/// microsecond.
const PREEMPT_CHECK_ENTRIES: usize = 32;
use crate::query::QueryError;
use crate::query::exec::QueryStats;
use crate::query::exec::logs::LogsRequest;
use crate::query::exec::{ScanSink, ScanSpec, beyond};
use crate::query::merge::Partial;
use crate::query::pairs::PairQuery;
use crate::query::params::Direction;
use crate::store::StoreError;
use crate::store::part_file::{LoadedPart, ReadAhead};
use crate::tenants::federation::tenant_labels;

/// What queries read from parts, for `/metrics` and the bloom-skip figures.
#[derive(Default)]
pub struct ScanCounters {
    /// Blocks of selected streams whose time range overlapped a query.
    pub blocks_considered: Counter,
    /// Of those, blocks a bloom filter ruled out.
    pub blocks_skipped_by_bloom: Counter,
    /// Of those, blocks the structured-metadata index ruled out.
    pub blocks_skipped_by_metadata_index: Counter,
    /// Blocks read and decoded.
    pub blocks_scanned: Counter,
    /// Line bytes of the blocks decoded.
    pub line_bytes_scanned: Counter,
    /// Times a scan gave the core back (between blocks, and every so many head entries).
    pub yields: Counter,
    /// Scans stopped because their query was cancelled (client gone, timeout).
    pub scans_cancelled: Counter,
}

/// Why a part scan stopped: the part could not be read, or the query stopped it.
enum ScanError {
    Store(StoreError),
    Query(QueryError),
}

impl From<StoreError> for ScanError {
    fn from(e: StoreError) -> ScanError {
        ScanError::Store(e)
    }
}

impl From<QueryError> for ScanError {
    fn from(e: QueryError) -> ScanError {
        ScanError::Query(e)
    }
}

/// A head to read: the live head of a stream as it was when the scan started, or one taken
/// by a seal round.
#[derive(Clone)]
enum HeadRef {
    /// The live head of stream `id` at index `idx`, of `generation`. If a seal round takes
    /// it while the scan yields, the same entries are found in that round's set.
    Live {
        idx: StreamIdx,
        id: StreamId,
        generation: u64,
    },
    Sealing(Arc<SealingSet>, usize),
}

/// What one scan reads, fixed when it starts and without a yield: the parts, and for each
/// selected stream its heads. Seal rounds that commit while the scan runs leave their sets
/// in its pin, so a head taken from under the scan is still read, and read once.
struct ScanSnapshot {
    parts: PartList,
    streams: Vec<SnapshotStream>,
    pin: Pin,
    /// The delete requests when the scan started.
    book: Rc<DeleteBook>,
    /// Whether the streams' labels carry their tenant (a multi-tenant read).
    label_tenants: bool,
}

struct SnapshotStream {
    id: StreamId,
    tenant: Rc<str>,
    labels: SelectedLabels,
    heads: Vec<HeadRef>,
}

impl ScanSnapshot {
    /// A stream's labels as the read sees them, and the delete requests that select it
    /// (its lines they cover are skipped). Built as the scan reaches the stream, so a scan
    /// holds one label set at a time for the streams only parts hold.
    fn view(&self, stream: &SnapshotStream) -> (Arc<Labels>, StreamDeletes) {
        let labels = stream.labels.get(&self.parts);
        let deletes = if self.book.has_active() {
            self.book.for_stream(&stream.tenant, &labels)
        } else {
            StreamDeletes::default()
        };
        // A multi-tenant read tells the tenants' streams apart by a label, added here,
        // before any pipeline or grouping sees the stream.
        let labels = if self.label_tenants {
            Arc::new(tenant_labels(&labels, &stream.tenant))
        } else {
            labels
        };
        (labels, deletes)
    }
}

/// Whether a selected stream may hold a line that passes the query's requirements: when a
/// requirement no parser precedes applies to it (its labels do not judge it), only if one
/// of its heads holds the pair, or one of the kept parts names a block of the stream for
/// it (a part without answers counts as yes). So a trace lookup reads the streams that have
/// the trace, not every stream the selector matches.
fn stream_may_match(
    s: &super::select::Selected,
    pairs: &PairQuery,
    prefetched: &PrefetchedPairs,
    parts: &PartList,
    registry: &super::index::Streams,
    sealing: &[Arc<SealingSet>],
) -> bool {
    let has_label = |name: &str| match &s.labels {
        SelectedLabels::Shared(labels) => labels.get(name).is_some(),
        SelectedLabels::InPart { part, stream } => parts[*part as usize].tail.reader().streams()
            [*stream as usize]
            .label(name)
            .is_some(),
    };
    let reqs: Vec<usize> = pairs
        .applicable(has_label)
        .into_iter()
        .filter(|&r| !pairs.requirements()[r].parsed)
        .collect();
    let Some(&first) = reqs.first() else {
        return true;
    };
    let key = pairs.requirements()[first].key;
    if s.idx.is_some_and(|idx| registry.head(idx).has_pair(key)) {
        return true;
    }
    let sealing_has = sealing.iter().any(|set| {
        set.index_of(s.id)
            .is_some_and(|i| set.heads[i].has_pair(key))
    });
    if sealing_has {
        return true;
    }
    parts.iter().any(|p| {
        let reader = p.tail.reader();
        let Some(si) = reader.meta().stream_index(s.id) else {
            return false;
        };
        match prefetched.get(&Rc::as_ptr(&p.part)) {
            Some((_, pp)) => !pp.rules_out(&reader.streams()[si].block_range(), &reqs, pairs),
            None => true,
        }
    })
}

/// How many of a stream's blocks `range` overlap `[start, end)`: they are in time order and
/// do not overlap one another, so the overlapping ones are contiguous.
fn overlapping_blocks(
    reader: &crate::chunk::PartReader<'_>,
    range: std::ops::Range<usize>,
    start: TimestampNs,
    end: TimestampNs,
) -> usize {
    let blocks = &reader.blocks()[range];
    let lo = blocks.partition_point(|b| b.max_ts.to_native() < start);
    let hi = blocks.partition_point(|b| b.min_ts.to_native() < end);
    hi.saturating_sub(lo)
}

/// One read-ahead window per part of the scan, each following the scan through its part.
fn read_ahead_per_part(snapshot: &ScanSnapshot) -> Vec<ReadAhead> {
    snapshot
        .parts
        .iter()
        .map(|_| ReadAhead::default())
        .collect()
}

/// A weak handle on a scan's [`Pin`]: the registry does not keep a finished scan's rounds.
type PinRef = Weak<RefCell<Vec<Arc<SealingSet>>>>;

/// The seal rounds one scan keeps (see [`ScanSnapshot`]).
pub(super) type Pin = Rc<RefCell<Vec<Arc<SealingSet>>>>;

/// The pins of the scans running on a shard (see [`ScanSnapshot`]). A pin lives as long as
/// its scan; a committed seal round is added to every live pin, so its memory is held only
/// until the scans that started before it end.
#[derive(Default)]
pub struct ScanPins {
    live: RefCell<Vec<PinRef>>,
}

impl ScanPins {
    pub(super) fn pin(&self) -> Pin {
        let pin = Pin::default();
        let mut live = self.live.borrow_mut();
        live.retain(|p| p.strong_count() > 0);
        live.push(Rc::downgrade(&pin));
        pin
    }

    /// Pins of scans still running.
    #[cfg(test)]
    pub(super) fn live_count(&self) -> usize {
        self.live
            .borrow()
            .iter()
            .filter(|p| p.strong_count() > 0)
            .count()
    }

    /// A seal round's parts are in the manifest: scans that started before keep its heads.
    pub fn retire(&self, set: &Arc<SealingSet>) {
        self.live.borrow_mut().retain(|p| match p.upgrade() {
            Some(pin) => {
                pin.borrow_mut().push(set.clone());
                true
            }
            None => false,
        });
    }
}

/// How scans give the core back between batches of work: when the task queue's time slice
/// is used up (the server), or at every point (tests that interleave a scan with seal rounds
/// at each of its yields).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanYield {
    IfNeeded,
    #[cfg_attr(not(test), allow(dead_code))]
    Always,
}

impl Shard {
    /// Gives the core back between batches of scan work (see [`ScanYield`]).
    async fn scan_yield(&self) {
        self.scan_counters.yields.inc();
        match self.scan_yield.get().0 {
            ScanYield::IfNeeded => {
                glommio::yield_if_needed().await;
                self.query_pacer.pace().await;
            }
            ScanYield::Always => futures_lite::future::yield_now().await,
        }
    }

    /// Head entries a scan visits between yields.
    fn scan_entries_per_yield(&self) -> usize {
        self.scan_yield.get().1
    }

    /// Fixes what a scan of the streams of `tenants` matching `matchers` over `[start, end)`
    /// reads (see [`ScanSnapshot`]): the parts of the range, the streams selected in the
    /// registry and in those same parts, and each stream's heads.
    async fn snapshot(
        &self,
        tenants: &[&str],
        matchers: &[LabelMatcher],
        start: TimestampNs,
        end: TimestampNs,
        label_tenants: bool,
    ) -> Result<ScanSnapshot, QueryError> {
        let parts = self.parts_with_tails(start, end, &|_| true).await?;
        // No yield since the parts were looked at.
        Ok(self.snapshot_of(tenants, matchers, (start, end), label_tenants, parts, None))
    }

    /// [`Shard::snapshot`] of `parts` (from [`Shard::parts_with_tails`], with no yield since);
    /// with `pairs`, without the resident streams none of whose heads and kept parts can hold
    /// a line that passes them. Must not yield.
    fn snapshot_of(
        &self,
        tenants: &[&str],
        matchers: &[LabelMatcher],
        (start, end): (TimestampNs, TimestampNs),
        label_tenants: bool,
        parts: PartList,
        pairs: Option<(&PairQuery, &QueryStats, &PrefetchedPairs)>,
    ) -> ScanSnapshot {
        let (pairs, stats) = match pairs {
            Some((p, s, f)) => (Some((p, f)), Some(s)),
            None => (None, None),
        };
        let pin = self.scan_pins.pin();
        let mut selected = Vec::new();
        for tenant in tenants {
            self.select_streams(tenant, matchers, start, end, &parts, &mut selected);
        }
        // In id order, which is the order of each part's blocks: the reads of consecutive
        // small streams fall in one read-ahead window.
        selected.sort_unstable_by_key(|s| s.id);
        let streams = self.heads();
        let sealing = self.sealing.borrow();
        let mut skipped_lines = 0u64;
        let streams: Vec<SnapshotStream> = selected
            .into_iter()
            .filter(|s| {
                let Some((pairs, prefetched)) = pairs else {
                    return true;
                };
                let may = stream_may_match(s, pairs, prefetched, &parts, &streams, &sealing);
                if !may && let Some(idx) = s.idx {
                    skipped_lines += streams.head(idx).len() as u64;
                }
                may
            })
            .map(|s| {
                let mut heads = Vec::new();
                if let Some(idx) = s.idx {
                    heads.push(HeadRef::Live {
                        idx,
                        id: s.id,
                        generation: streams.head(idx).generation(),
                    });
                }
                for set in sealing.iter() {
                    if let Some(i) = set.index_of(s.id) {
                        heads.push(HeadRef::Sealing(set.clone(), i));
                    }
                }
                SnapshotStream {
                    id: s.id,
                    tenant: s.tenant,
                    labels: s.labels,
                    heads,
                }
            })
            .collect();
        if let Some(stats) = stats {
            QueryStats::add(&stats.head_lines_skipped_by_metadata_index, skipped_lines);
        }
        ScanSnapshot {
            parts,
            streams,
            pin,
            book: self.delete_book(),
            label_tenants,
        }
    }

    /// Reads a head. A live head that a seal round took since the scan started is found in
    /// that round's set (still sealing, or committed and kept by the scan's pin), and `h`
    /// points there from now on.
    fn with_head<T>(&self, h: &mut HeadRef, pin: &Pin, f: impl FnOnce(&StreamHead) -> T) -> T {
        if let HeadRef::Live {
            idx,
            id,
            generation,
        } = *h
        {
            {
                // The slot may hold another stream by now: this one's head was taken by a
                // seal round before the stream was evicted, and is found below.
                let streams = self.heads();
                if let Some(live) = streams.slot(idx)
                    && live.id == id
                    && live.generation() == generation
                {
                    return f(live);
                }
            }
            let taken = self
                .sealing
                .borrow()
                .iter()
                .chain(pin.borrow().iter())
                .find_map(|set| set.find(id, generation).map(|i| (set.clone(), i)));
            // Every round that takes a head is in `sealing` until it commits and in every
            // pin from then on; a scan that cannot find the head would silently answer with
            // less than the shard holds.
            let (set, i) = taken.expect("a taken head is sealing or pinned by the scan");
            *h = HeadRef::Sealing(set, i);
        }
        match h {
            HeadRef::Sealing(set, i) => f(&set.heads[*i]),
            HeadRef::Live { .. } => unreachable!("resolved above"),
        }
    }

    /// The narrow view a query's shard part runs through (see [`crate::query::exec`]): selects
    /// the streams, fixes what the scan reads ([`ScanSnapshot`]), and hands every entry in
    /// `[start, end)` that passes the leading line filters to `sink`, stream by stream, each
    /// source in the spec's direction. Entries beyond the sink's cutoff are skipped, and a
    /// source sorted by time stops at the first. Checks the query's control between blocks
    /// and batches of head entries: a cancelled query stops here on every shard.
    pub async fn scan(&self, spec: &ScanSpec, sink: &mut dyn ScanSink) -> Result<(), QueryError> {
        // A part that waited for its turn past the query's end stops before any work.
        self.check(spec)?;
        let (tenants, matchers) = spec.tenants.select(&spec.matchers);
        let label_tenants = spec.tenants.labels_streams();
        // A lookup by metadata asks every part's index first, all at once, and leaves out
        // the parts that cannot hold a match before any stream is selected in them: a trace
        // id is in one part of hundreds.
        let prefetched = self.prefetch_pairs(spec).await?;
        let snapshot = self
            .snapshot_without(&tenants, &matchers, spec, label_tenants, &prefetched)
            .await?;
        let mut block = DecodedBlock::new();
        let mut ahead = read_ahead_per_part(&snapshot);
        // What each part's blooms say, worked out once per scan (when the first stream
        // needs it) for every selected stream, not once per stream.
        let mut blooms: Vec<BloomSlot> = snapshot.parts.iter().map(|_| None).collect();
        let ids: Vec<StreamId> = snapshot.streams.iter().map(|s| s.id).collect();
        // Likewise each part's metadata index answers, once per scan.
        let mut pairs: Vec<PairSlot> = snapshot
            .parts
            .iter()
            .map(|p| {
                prefetched
                    .get(&Rc::as_ptr(&p.part))
                    .map(|(_, pp)| pp.clone())
            })
            .collect();
        for stream in &snapshot.streams {
            let (labels, deletes) = snapshot.view(stream);
            sink.begin_stream(&labels);
            let deletes = &deletes;
            // The requirements the metadata index judges for this stream, by index.
            let reqs = spec.pairs.applicable(|name| labels.get(name).is_some());
            for mut src in stream.heads.iter().cloned() {
                self.scan_head(&mut src, &snapshot.pin, spec, &reqs, deletes, sink)
                    .await?;
            }
            for (((p, ahead), blooms), pairs) in snapshot
                .parts
                .iter()
                .zip(&mut ahead)
                .zip(&mut blooms)
                .zip(&mut pairs)
            {
                let read = (&mut block, ahead, blooms, pairs);
                let scope = (&ids[..], &reqs[..], deletes);
                self.scan_part_stream(p, stream.id, spec, scope, sink, read)
                    .await
                    .map_err(|e| match e {
                        ScanError::Store(e) => {
                            QueryError::Storage(self.part_failed(&p.store, &p.part, e))
                        }
                        ScanError::Query(e) => e,
                    })?;
            }
        }
        Ok(())
    }

    /// [`Shard::snapshot`] over the query's range, without the parts whose metadata index
    /// rules every line out (counted as skipped, with their blocks in range): their tails are
    /// not read, unless the range cuts them (to count their blocks in it).
    async fn snapshot_without(
        &self,
        tenants: &[&str],
        matchers: &[LabelMatcher],
        spec: &ScanSpec,
        label_tenants: bool,
        prefetched: &PrefetchedPairs,
    ) -> Result<ScanSnapshot, QueryError> {
        let stats = &spec.control.stats;
        let mut ruled_out: ahash::AHashSet<*const LoadedPart> = Default::default();
        for (ptr, (part, pp)) in prefetched {
            if !pp.rules_out_part(part, &spec.pairs) {
                continue;
            }
            ruled_out.insert(*ptr);
            // A part inside the range has all its blocks in it: no need to look at each.
            let n = if part.entry.min_ts >= spec.start && part.entry.max_ts < spec.end {
                u64::from(part.footer().blocks)
            } else {
                let tail = part
                    .tail(Some(&self.part_cache()))
                    .await
                    .map_err(|e| QueryError::Storage(format!("shard {}: {e}", self.id)))?;
                tail.reader()
                    .blocks()
                    .iter()
                    .filter(|b| {
                        b.max_ts.to_native() >= spec.start && b.min_ts.to_native() < spec.end
                    })
                    .count() as u64
            };
            self.scan_counters.blocks_considered.add(n);
            self.scan_counters.blocks_skipped_by_metadata_index.add(n);
            QueryStats::add(&stats.blocks_considered, n);
            QueryStats::add(&stats.blocks_skipped_by_metadata_index, n);
            QueryStats::add(&stats.parts_skipped_by_metadata_index, 1);
        }
        let keep = |part: &Rc<LoadedPart>| !ruled_out.contains(&Rc::as_ptr(part));
        let parts = self.parts_with_tails(spec.start, spec.end, &keep).await?;
        // No yield since the parts were looked at.
        Ok(self.snapshot_of(
            tenants,
            matchers,
            (spec.start, spec.end),
            label_tenants,
            parts,
            (!spec.pairs.is_empty()).then_some((&*spec.pairs, &**stats, prefetched)),
        ))
    }

    /// A log query's partial answer: the first `limit` entries over the shard.
    pub(crate) async fn logs(&self, r: &LogsRequest) -> Result<Partial, QueryError> {
        crate::query::exec::logs::run(self, r).await
    }

    /// Stops the scan if its query was cancelled, counting it.
    pub(super) fn check(&self, spec: &ScanSpec) -> Result<(), QueryError> {
        let checked = spec.control.check();
        if checked.is_err() {
            self.scan_counters.scans_cancelled.inc();
        }
        checked
    }

    /// The entries of stream `id` in one part, in direction order. Blocks of a stream are in
    /// time order and do not overlap, and entries in a block are sorted, so the scan stops at
    /// the first entry beyond the sink's cutoff.
    async fn scan_part_stream(
        &self,
        p: &PartInRead,
        id: StreamId,
        spec: &ScanSpec,
        (ids, reqs, deletes): (&[StreamId], &[usize], &StreamDeletes),
        sink: &mut dyn ScanSink,
        (block, ahead, blooms, pairs): (
            &mut DecodedBlock,
            &mut ReadAhead,
            &mut BloomSlot,
            &mut PairSlot,
        ),
    ) -> Result<(), ScanError> {
        let (part, tail) = (&p.part, &p.tail);
        let Some(si) = tail.reader().meta().stream_index(id) else {
            return Ok(());
        };
        let stats = &spec.control.stats;
        let range = tail.reader().streams()[si].block_range();
        // The metadata index is asked once per part and scan, for parts that hold a selected
        // stream; a stream none of whose blocks holds a required pair is passed over whole.
        let pair_blocks = if reqs.is_empty() || !part.has_pair_index() {
            None
        } else {
            if pairs.is_none() {
                *pairs = Some(Rc::new(part_pairs(part, &spec.pairs, stats).await?));
            }
            pairs.clone()
        };
        if let Some(pp) = &pair_blocks
            && pp.rules_out(&range, reqs, &spec.pairs)
        {
            let n = overlapping_blocks(&tail.reader(), range, spec.start, spec.end) as u64;
            self.scan_counters.blocks_considered.add(n);
            self.scan_counters.blocks_skipped_by_metadata_index.add(n);
            QueryStats::add(&stats.blocks_considered, n);
            QueryStats::add(&stats.blocks_skipped_by_metadata_index, n);
            return Ok(());
        }
        // Blooms are read (or found in the cache) only for queries they can prune, and only
        // for parts that hold a selected stream.
        let parsed_pairs =
            pair_blocks.is_some() && reqs.iter().any(|&r| spec.pairs.requirements()[r].parsed);
        if blooms.is_none() && (!spec.bloom.is_empty() || parsed_pairs) {
            // The region is let go once worked out (the part cache keeps it if it fits).
            let region = part.blooms(&self.part_cache()).await?;
            let reader = tail.reader_with(region.as_deref());
            *blooms = Some(BloomVerdicts::work_out(&reader, ids, spec));
        }
        let verdicts = blooms.as_ref();
        let reader = tail.reader();
        let forward = spec.direction == Direction::Forward;
        let mut blocks: Vec<usize> = range.collect();
        if !forward {
            blocks.reverse();
        }
        for bi in blocks {
            let b = &reader.blocks()[bi];
            let (min, max) = (b.min_ts.to_native(), b.max_ts.to_native());
            if max < spec.start || min >= spec.end {
                continue;
            }
            // The whole block is beyond the cutoff: so is every later block.
            let nearest = if forward { min } else { max };
            if beyond(spec.direction, nearest, sink.cutoff()) {
                break;
            }
            self.scan_counters.blocks_considered.inc();
            QueryStats::add(&stats.blocks_considered, 1);
            if let Some(pp) = &pair_blocks
                && !pp.may_hold(bi, reqs, &spec.pairs, verdicts)
            {
                self.scan_counters.blocks_skipped_by_metadata_index.inc();
                QueryStats::add(&stats.blocks_skipped_by_metadata_index, 1);
                continue;
            }
            if verdicts.is_some_and(|v| v.rules_out_line(bi)) {
                self.scan_counters.blocks_skipped_by_bloom.inc();
                QueryStats::add(&stats.blocks_skipped_by_bloom, 1);
                continue;
            }
            self.check(spec)?;
            spec.control.read(b.lines_bytes.to_native())?;
            part.read_block_ahead(&reader, bi, block, ahead).await?;
            self.scan_counters.blocks_scanned.inc();
            self.scan_counters
                .line_bytes_scanned
                .add(b.lines_bytes.to_native());
            QueryStats::add(&stats.blocks_decoded, 1);
            QueryStats::add(
                &stats.compressed_bytes,
                u64::from(b.compressed_len.to_native()),
            );
            QueryStats::add(&stats.decompressed_lines, u64::from(b.entries.to_native()));
            QueryStats::add(&stats.decompressed_bytes, b.lines_bytes.to_native());
            let lo = block.partition_point(spec.start);
            let hi = block.partition_point(spec.end);
            let block: &DecodedBlock = block;
            // Delete requests that cover part of the block: its lines are tested one by one.
            let deletes_here = deletes.overlaps(min, max);
            if spec.filters.is_empty()
                && !deletes_here
                && sink.cutoff().is_none()
                && sink.push_block(block, lo, hi)?
            {
                self.scan_yield().await;
                continue;
            }
            let mut metadata: Vec<(&str, &str)> = Vec::new();
            let mut more = true;
            for k in 0..hi.saturating_sub(lo) {
                let i = if forward { lo + k } else { hi - 1 - k };
                let e = block.entry(i);
                if beyond(spec.direction, e.ts, sink.cutoff()) {
                    more = false;
                    break;
                }
                let hidden = deletes_here && {
                    metadata.clear();
                    if deletes.reads_metadata() {
                        metadata.extend(e.metadata.iter());
                    }
                    deletes.hides(e.ts, e.line, &metadata)
                };
                if !hidden && spec.filters.iter().all(|f| f.matches(e.line.as_bytes())) {
                    metadata.clear();
                    metadata.extend(e.metadata.iter());
                    sink.push(e.ts, e.line, &metadata)?;
                }
                // A pipeline may make each line expensive (a `line_format` that repeats
                // it, a hard regex): a block's worth of them must not keep the core from
                // its other queues, nor from the watchdog's heartbeat.
                if (k + 1) % PREEMPT_CHECK_ENTRIES == 0 && glommio::executor().need_preempt() {
                    self.scan_yield().await;
                    self.check(spec)?;
                }
            }
            if !more {
                break;
            }
            self.scan_yield().await;
        }
        Ok(())
    }

    /// The entries of one head in direction order (ties: arrival order). Yields every
    /// [`Shard::scan_entries_per_yield`] entries without holding a borrow across the yield.
    async fn scan_head(
        &self,
        src: &mut HeadRef,
        pin: &Pin,
        spec: &ScanSpec,
        reqs: &[usize],
        deletes: &StreamDeletes,
        sink: &mut dyn ScanSink,
    ) -> Result<(), QueryError> {
        let forward = spec.direction == Direction::Forward;
        let per_yield = self.scan_entries_per_yield();
        // A required pair no parser can set: only the entries that carry it can pass, and
        // the head's index names them (ascending, so in time order when the head is).
        let pair_key = reqs
            .iter()
            .map(|&r| &spec.pairs.requirements()[r])
            .find(|r| !r.parsed)
            .map(|r| r.key);
        let (range, in_order, listed) = self.with_head(src, pin, |h| {
            let range = h.candidate_range(spec.start, spec.end);
            let listed = pair_key.map(|k| h.entries_with_pair(k));
            (range, h.in_order(), listed)
        });
        let stats = &spec.control.stats;
        let (range, listed) = match listed {
            Some(list) => {
                let skipped = range.len().saturating_sub(list.len());
                QueryStats::add(&stats.head_lines_skipped_by_metadata_index, skipped as u64);
                (0..list.len(), Some(list))
            }
            None => (range, None),
        };
        let mut pos_fwd = range.start;
        let mut pos_back = range.end;
        loop {
            self.check(spec)?;
            let done = self.with_head(src, pin, |h| -> Result<bool, QueryError> {
                // Borrows the head: one buffer per batch, reused across its entries.
                let mut metadata: Vec<(&str, &str)> = Vec::new();
                let mut visited = 0;
                let mut bytes = 0u64;
                while visited < per_yield && pos_fwd < pos_back {
                    // Expensive pipelines: end the batch early when the core is due to
                    // serve its other queues (see `scan_part_stream`).
                    if visited > 0
                        && visited % PREEMPT_CHECK_ENTRIES == 0
                        && glommio::executor().need_preempt()
                    {
                        break;
                    }
                    let pos = if forward {
                        pos_fwd += 1;
                        pos_fwd - 1
                    } else {
                        pos_back -= 1;
                        pos_back
                    };
                    let i = listed.as_ref().map_or(pos, |l| l[pos]);
                    visited += 1;
                    let ts = h.ts(i);
                    if ts < spec.start || ts >= spec.end {
                        continue;
                    }
                    if beyond(spec.direction, ts, sink.cutoff()) {
                        // In an ordered head every later entry is beyond it too.
                        if in_order {
                            pos_fwd = pos_back;
                            break;
                        }
                        continue;
                    }
                    let e = h.entry(i);
                    bytes += e.line.len() as u64;
                    if !spec.filters.iter().all(|f| f.matches(e.line.as_bytes())) {
                        continue;
                    }
                    metadata.clear();
                    if deletes.is_empty() {
                        metadata.extend(e.metadata.iter());
                    } else {
                        if deletes.reads_metadata() {
                            metadata.extend(e.metadata.iter());
                        }
                        if deletes.hides(e.ts, e.line, &metadata) {
                            continue;
                        }
                        metadata.clear();
                        metadata.extend(e.metadata.iter());
                    }
                    sink.push(e.ts, e.line, &metadata)?;
                }
                QueryStats::add(&stats.head_lines, visited as u64);
                QueryStats::add(&stats.head_bytes, bytes);
                spec.control.read(bytes)?;
                Ok(pos_fwd >= pos_back)
            })?;
            if done {
                break;
            }
            self.scan_yield().await;
        }
        Ok(())
    }

    /// Exact counts for `/index/stats`: heads are counted entry by entry; a part block wholly
    /// inside the range is counted from its header, one that straddles an end is decoded.
    pub(super) async fn stats(
        &self,
        r: &LabelsRequest,
    ) -> Result<(IndexStats, Vec<StreamId>), String> {
        let snapshot = self
            .snapshot(&[r.tenant.as_str()], &r.matchers, r.start, r.end, false)
            .await
            .map_err(|e| e.to_string())?;
        let mut s = IndexStats::default();
        let mut ids = Vec::new();
        let mut block = DecodedBlock::new();
        let mut ahead = read_ahead_per_part(&snapshot);
        for stream in snapshot.streams {
            let id = stream.id;
            let mut stream_entries = 0;
            for mut src in stream.heads {
                let (entries, bytes) =
                    self.with_head(&mut src, &snapshot.pin, |h| h.count_in(r.start, r.end));
                if entries > 0 {
                    s.chunks += 1;
                    s.entries += entries;
                    s.bytes += bytes;
                    stream_entries += entries;
                }
            }
            for (p, ahead) in snapshot.parts.iter().zip(&mut ahead) {
                let counted = self
                    .count_part_stream(p, id, r.start, r.end, (&mut block, ahead))
                    .await
                    .map_err(|e| self.part_failed(&p.store, &p.part, e))?;
                s.chunks += counted.chunks;
                s.entries += counted.entries;
                s.bytes += counted.bytes;
                stream_entries += counted.entries;
            }
            if stream_entries > 0 {
                s.streams += 1;
                ids.push(id);
            }
        }
        Ok((s, ids))
    }

    async fn count_part_stream(
        &self,
        p: &PartInRead,
        id: StreamId,
        start: TimestampNs,
        end: TimestampNs,
        (block, ahead): (&mut DecodedBlock, &mut ReadAhead),
    ) -> Result<IndexStats, StoreError> {
        let reader = p.tail.reader();
        let mut s = IndexStats::default();
        let Some(si) = reader.meta().stream_index(id) else {
            return Ok(s);
        };
        for bi in reader.streams()[si].block_range() {
            let b = &reader.blocks()[bi];
            let (min, max) = (b.min_ts.to_native(), b.max_ts.to_native());
            if max < start || min >= end {
                continue;
            }
            let (entries, bytes) = if min >= start && max < end {
                (u64::from(b.entries.to_native()), b.lines_bytes.to_native())
            } else {
                p.part.read_block_ahead(&reader, bi, block, ahead).await?;
                let lo = block.partition_point(start);
                let hi = block.partition_point(end);
                let bytes = (lo..hi).map(|i| block.line_bytes(i).len() as u64).sum();
                ((hi - lo) as u64, bytes)
            };
            if entries > 0 {
                s.chunks += 1;
                s.entries += entries;
                s.bytes += bytes;
            }
        }
        Ok(s)
    }
}

//! Which blocks and parts a scan can skip without reading them: what the parts' bloom
//! filters say of the scan's blocks ([`BloomVerdicts`]), and what their structured-metadata
//! indexes say of the query's pairs ([`PartPairs`], asked for every part of the range before
//! the scan fixes its snapshot, [`Shard::prefetch_pairs`]).

use std::rc::Rc;

use super::Shard;
use crate::model::StreamId;
use crate::query::QueryError;
use crate::query::exec::{QueryStats, ScanSpec};
use crate::query::pairs::PairQuery;
use crate::store::part_file::LoadedPart;
use crate::store::{Store, StoreError};

/// What a part's bloom filters say of one scan's blocks: `None` until a stream asks, then
/// [`BloomVerdicts`] worked out for every selected stream at once.
pub(super) type BloomSlot = Option<BloomVerdicts>;

/// Which blocks of a part, among those of a scan's selected streams in its range, the part's
/// bloom filters rule out: for the line filters, and for each requirement of the query's
/// [`PairQuery`] that a parser precedes (its value cannot occur in the block's text). Worked
/// out once per part and scan, when the first stream needs it, so that the scan does not
/// hold every part's bloom region (a few bytes per line) while it runs: a needle query over
/// 100 M lines held 600 MB of them. A bit set is a certain "no"; a block never worked out
/// is a "maybe".
pub(super) struct BloomVerdicts {
    line: Vec<u64>,
    /// By requirement index; `None` for requirements no parser precedes.
    parsed: Vec<Option<Vec<u64>>>,
}

fn rule_out(set: &mut [u64], block: usize) {
    set[block / 64] |= 1 << (block % 64);
}

fn ruled_out(set: &[u64], block: usize) -> bool {
    set.get(block / 64)
        .is_some_and(|w| w >> (block % 64) & 1 == 1)
}

impl BloomVerdicts {
    /// Probes `reader` (with its blooms) for the blocks in `[spec.start, spec.end)` of the
    /// streams `ids`.
    pub(super) fn work_out(
        reader: &crate::chunk::PartReader<'_>,
        ids: &[StreamId],
        spec: &ScanSpec,
    ) -> Self {
        let words = reader.blocks().len().div_ceil(64);
        let requirements = spec.pairs.requirements();
        let mut line = vec![0u64; words];
        let mut parsed: Vec<Option<Vec<u64>>> = requirements
            .iter()
            .map(|r| r.parsed.then(|| vec![0u64; words]))
            .collect();
        for &id in ids {
            let Some(si) = reader.meta().stream_index(id) else {
                continue;
            };
            for bi in reader.streams()[si].block_range() {
                let b = &reader.blocks()[bi];
                if b.max_ts.to_native() < spec.start || b.min_ts.to_native() >= spec.end {
                    continue;
                }
                if !reader.may_match(bi, &spec.bloom) {
                    rule_out(&mut line, bi);
                }
                for (r, set) in parsed.iter_mut().enumerate() {
                    if let Some(set) = set
                        && !reader.may_match(bi, &requirements[r].line_needle)
                    {
                        rule_out(set, bi);
                    }
                }
            }
        }
        BloomVerdicts { line, parsed }
    }

    /// Whether no line of block `bi` can pass the line filters.
    pub(super) fn rules_out_line(&self, bi: usize) -> bool {
        ruled_out(&self.line, bi)
    }

    /// Whether the value requirement `r` asks for cannot occur in the text of block `bi`.
    pub(super) fn rules_out_parsed(&self, r: usize, bi: usize) -> bool {
        self.parsed
            .get(r)
            .and_then(|s| s.as_ref())
            .is_some_and(|s| ruled_out(s, bi))
    }
}

/// A part's answers from its structured-metadata index for one scan, asked for by the first
/// stream that needs them: per requirement of the query's [`PairQuery`], the blocks that may
/// hold its pair (`None`: the part has no index, every block may), and the blocks with a line
/// a parser may unescape.
pub(super) struct PartPairs {
    per_requirement: Vec<Option<Vec<u32>>>,
    escapes: Option<Vec<u32>>,
}

impl PartPairs {
    /// Whether block `bi` may hold a line that passes every requirement of `reqs` (indexes in
    /// `query`'s requirements): see [`crate::query::pairs`].
    pub(super) fn may_hold(
        &self,
        bi: usize,
        reqs: &[usize],
        query: &PairQuery,
        blooms: Option<&BloomVerdicts>,
    ) -> bool {
        let bi32 = bi as u32;
        reqs.iter().all(|&r| {
            let Some(blocks) = &self.per_requirement[r] else {
                return true;
            };
            if blocks.binary_search(&bi32).is_ok() {
                return true;
            }
            let req = &query.requirements()[r];
            if !req.parsed {
                return false;
            }
            // A parser may take the value from a line: only if the line may hold it.
            let unescapes = self
                .escapes
                .as_ref()
                .is_none_or(|e| e.binary_search(&bi32).is_ok());
            unescapes || blooms.is_none_or(|v| !v.rules_out_parsed(r, bi))
        })
    }

    /// Whether none of the blocks `range` of a stream may hold a pair that a requirement
    /// without a parser asks for: the stream has nothing in this part.
    pub(super) fn rules_out(
        &self,
        range: &std::ops::Range<usize>,
        reqs: &[usize],
        query: &PairQuery,
    ) -> bool {
        reqs.iter().any(|&r| {
            let Some(blocks) = &self.per_requirement[r] else {
                return false;
            };
            if query.requirements()[r].parsed {
                return false;
            }
            let lo = blocks.partition_point(|&b| (b as usize) < range.start);
            blocks.get(lo).is_none_or(|&b| b as usize >= range.end)
        })
    }
}

/// Asks a part's metadata index for every requirement of `query` (and for the blocks with
/// escapes when a parser precedes one), counting the index bytes read.
pub(super) async fn part_pairs(
    part: &LoadedPart,
    query: &PairQuery,
    stats: &QueryStats,
) -> Result<PartPairs, StoreError> {
    let mut per_requirement = Vec::with_capacity(query.requirements().len());
    let mut read_total = 0;
    for r in query.requirements() {
        let found = part.pair_blocks(r.key).await?;
        read_total += found.as_ref().map_or(0, |(_, read)| *read);
        per_requirement.push(found.map(|(blocks, _)| blocks));
    }
    let escapes = if query.requirements().iter().any(|r| r.parsed) {
        let found = part.pair_blocks(crate::chunk::pairs::escape_key()).await?;
        read_total += found.as_ref().map_or(0, |(_, read)| *read);
        found.map(|(blocks, _)| blocks)
    } else {
        None
    };
    QueryStats::add(&stats.metadata_index_bytes_read, read_total);
    Ok(PartPairs {
        per_requirement,
        escapes,
    })
}

impl PartPairs {
    /// Whether no line of the part can pass the requirements, whatever stream it is in:
    /// a requirement no parser precedes names no block, and no stream of the part has the
    /// label it filters on (which would judge it instead of the metadata).
    pub(super) fn rules_out_part(&self, part: &LoadedPart, query: &PairQuery) -> bool {
        query
            .applicable(|name| part.has_label_name(name))
            .into_iter()
            .any(|r| {
                let empty = self.per_requirement[r]
                    .as_ref()
                    .is_some_and(|b| b.is_empty());
                empty && !query.requirements()[r].parsed
            })
    }
}

/// Index lookups in flight at once, per scan, before it fixes its snapshot: a lookup is one
/// 4 KiB read (two the first time), so the disk's queue depth, not the core, bounds them.
const PAIR_LOOKUPS_IN_FLIGHT: usize = 128;

/// A part's [`PartPairs`] for one scan: `None` until a stream asks.
pub(super) type PairSlot = Option<Rc<PartPairs>>;

/// The index answers [`Shard::prefetch_pairs`] gathered, by part address.
pub(super) type PrefetchedPairs =
    ahash::AHashMap<*const LoadedPart, (Rc<LoadedPart>, Rc<PartPairs>)>;

impl Shard {
    /// Every part's metadata index answers for the query's requirements, at most
    /// [`PAIR_LOOKUPS_IN_FLIGHT`] reading at a time; keyed by the part's address (the map
    /// holds each part, so no other part can take its address meanwhile). A part asked
    /// after the query was cancelled has no answer (and the query stops here).
    pub(super) async fn prefetch_pairs(
        &self,
        spec: &ScanSpec,
    ) -> Result<PrefetchedPairs, QueryError> {
        let mut out = PrefetchedPairs::default();
        if spec.pairs.is_empty() {
            return Ok(out);
        }
        let parts: Vec<(Rc<Store>, Rc<LoadedPart>)> = self
            .parts_in(spec.start, spec.end)
            .into_iter()
            .filter(|(_, p)| p.has_pair_index())
            .collect();
        // Every part's lookup is spawned at once; a semaphore keeps at most
        // `PAIR_LOOKUPS_IN_FLIGHT` reading, so a slow read holds up one slot, not a batch.
        let slots = Rc::new(glommio::sync::Semaphore::new(PAIR_LOOKUPS_IN_FLIGHT as u64));
        let tasks: Vec<_> = parts
            .iter()
            .map(|(_, part)| {
                let (part, query, stats) =
                    (part.clone(), spec.pairs.clone(), spec.control.stats.clone());
                let (slots, control) = (slots.clone(), spec.control.clone());
                glommio::spawn_local(async move {
                    // Held until the lookup ends; the semaphore is never closed.
                    let _slot = glommio::sync::Semaphore::acquire_static_permit(&slots, 1).await;
                    if control.is_cancelled() {
                        return Ok(None);
                    }
                    part_pairs(&part, &query, &stats).await.map(Some)
                })
            })
            .collect();
        for ((store, part), task) in parts.iter().zip(tasks) {
            match task.await {
                Ok(Some(pp)) => {
                    out.insert(Rc::as_ptr(part), (part.clone(), Rc::new(pp)));
                }
                Ok(None) => {}
                Err(e) => return Err(QueryError::Storage(self.part_failed(store, part, e))),
            }
        }
        self.check(spec)?;
        Ok(out)
    }
}

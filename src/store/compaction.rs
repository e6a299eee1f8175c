//! Compaction: merges the small parts of one partition into one part, so that a partition
//! ends up as a few large parts instead of one small part per seal round.
//!
//! Which question it answers: "which parts are merged, into what, and how does the merge
//! change the store without a line ever being lost or counted twice?"
//!
//! One step ([`Store::compact_once`]):
//! 1. picks the inputs ([`pick_inputs`]): the parts of the oldest partition that has at
//!    least [`CompactionPolicy::min_small_parts`] small parts, or more than
//!    [`CompactionPolicy::parts_per_partition_max`] parts. A partition may hold several
//!    tenants; a part holds streams of any tenant, so they are merged together;
//! 2. reads every block of the inputs, in part id order, and merges each stream's entries in
//!    time order (a tie keeps the entry of the older part first, then the order within its
//!    part: exactly the order a query of the inputs sees);
//! 3. encodes the merged streams off the core with the compaction options (a higher zstd
//!    level than sealing) and writes the part durably, at level `max(input levels) + 1`;
//! 4. under the store's lock, checks that every input is still named (a retention drop or a
//!    quarantine may have removed one meanwhile: then the new part is deleted and nothing
//!    changes) and replaces the manifest once: the new part in, the inputs out. The in-memory
//!    set changes in the same step, and only then are the old files unlinked.
//!
//! A crash before step 4's manifest is durable leaves the old parts (the new file is
//! garbage, deleted at the next open); after it, the new part (the old files are garbage).
//! Queries that took the old parts keep reading them: an open part keeps its file.
//!
//! Reads and writes are paced ([`IoPacer`]) to `compaction_bytes_per_second`, and the task
//! yields between blocks, so compaction never takes the disk or the core from ingest and
//! queries. The store's lock is held only for step 4, so sealing is not held up by a merge.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::merge::merge_memory_bytes;
use super::part_file::LoadedPart;
use super::{Change, Store, StoreError};
use crate::model::TimestampNs;

/// Which parts compaction merges, and how much at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompactionPolicy {
    /// A part under this many file bytes is small: a seal round's part, or a merge of few.
    pub small_part_bytes: u64,
    /// A partition with at least this many small parts is compacted.
    pub min_small_parts: usize,
    /// A partition with more parts than this is compacted (its smallest parts first), even
    /// if they are not small.
    pub parts_per_partition_max: usize,
    /// Parts merged by one step at most.
    pub inputs_max: usize,
    /// Memory one step holds at most, as [`merge_memory_bytes`] reckons it from the number
    /// of inputs and their tails: the merge streams the lines, so what grows is the new
    /// part's tail (block headers, blooms, metadata index), not its size.
    pub memory_bytes_max: u64,
    /// A partition that ended at least this long ago and still holds parts written by
    /// sealing (level 0, zstd at the sealing level) has them rewritten at the compaction
    /// level, even a single one: sealing compresses fast to keep up with ingest, cold data is
    /// worth the slower, smaller encoding. `None`: never.
    pub recompress_cold_after: Option<Duration>,
    /// A cold partition whose parts take fewer file bytes than this is sparse: it is bundled
    /// with the sparse cold partitions next to it in time into one part of a bundle
    /// directory ([`super::paths::bundle_name`]), so that a part's fixed cost (alignment,
    /// footer, metadata, a stream's labels) is paid once for many days, not per day.
    pub bundle_partition_bytes_max: u64,
    /// Uncompressed bytes of one step on cold data at most: cold steps encode at the cold
    /// level ([`super::COLD_ZSTD_LEVEL`], about 2 MB/s), on the core's encoder thread that
    /// sealing also uses.
    pub cold_input_uncompressed_bytes_max: u64,
    /// Parts bundled by one step at most: sparse partitions are small, so a step is bounded
    /// by its bytes; without this, the inputs of a step and the open files it holds are.
    pub bundle_inputs_max: usize,
}

/// 8 MiB: about eight seal rounds of one busy stream; over it a part is worth keeping.
pub const SMALL_PART_BYTES_DEFAULT: u64 = 8 << 20;
pub const MIN_SMALL_PARTS_DEFAULT: usize = 4;
pub const PARTS_PER_PARTITION_MAX_DEFAULT: usize = 8;
pub const INPUTS_MAX_DEFAULT: usize = 32;
/// 64 MiB per core at most while merging: with tails at about a tenth of the lines' bytes,
/// parts of a few GiB of lines.
pub const MEMORY_BYTES_MAX_DEFAULT: u64 = 64 << 20;
/// A partition is cold an hour after its end: late lines are rare by then.
pub const RECOMPRESS_COLD_AFTER_DEFAULT: Duration = Duration::from_secs(3600);
/// 4 MiB: a day of a quiet shard; bundles grow to about this size and then stay.
pub const BUNDLE_PARTITION_BYTES_MAX_DEFAULT: u64 = 4 << 20;
/// 16 MiB of lines: about 8 s of the encoder thread at the cold level, a delay sealing can
/// take (its heads stay in memory and in the WAL meanwhile).
pub const COLD_INPUT_UNCOMPRESSED_BYTES_MAX_DEFAULT: u64 = 16 << 20;
/// A cold partition of at most this many cold steps' worth of lines is rewritten at the cold
/// level; a larger one at the compaction level (see [`pick_inputs`]).
pub const COLD_PARTITION_STEPS_MAX: u64 = 16;
/// Bundling a year of daily partitions takes one step, not a dozen that each re-encode the
/// bundle so far.
pub const BUNDLE_INPUTS_MAX_DEFAULT: usize = 1024;

impl Default for CompactionPolicy {
    fn default() -> Self {
        CompactionPolicy {
            small_part_bytes: SMALL_PART_BYTES_DEFAULT,
            min_small_parts: MIN_SMALL_PARTS_DEFAULT,
            parts_per_partition_max: PARTS_PER_PARTITION_MAX_DEFAULT,
            inputs_max: INPUTS_MAX_DEFAULT,
            memory_bytes_max: MEMORY_BYTES_MAX_DEFAULT,
            recompress_cold_after: Some(RECOMPRESS_COLD_AFTER_DEFAULT),
            bundle_partition_bytes_max: BUNDLE_PARTITION_BYTES_MAX_DEFAULT,
            cold_input_uncompressed_bytes_max: COLD_INPUT_UNCOMPRESSED_BYTES_MAX_DEFAULT,
            bundle_inputs_max: BUNDLE_INPUTS_MAX_DEFAULT,
        }
    }
}

/// What one compaction step did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompactionReport {
    /// The partition directory the inputs were in.
    pub partition: String,
    /// Ids of the merged parts, ascending.
    pub inputs: Vec<u64>,
    /// Id of the new part.
    pub output: u64,
    /// Whether the manifest now names the new part instead of the inputs. `false` when an
    /// input was dropped (retention, quarantine) during the merge: the new part was deleted
    /// and the store is as before.
    pub committed: bool,
    pub input_bytes: u64,
    pub output_bytes: u64,
    pub entries: u64,
    pub level: u32,
}

/// One part as [`pick_inputs`] sees it.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    pub entry: &'a super::manifest::PartEntry,
    /// Uncompressed bytes of its blocks (what bounds a cold step's time).
    pub uncompressed_bytes: u64,
    /// File bytes after its blocks: metadata index, blooms, metadata, footer. A merge's
    /// output holds about as much as its inputs' together, in memory until it is written.
    pub tail_bytes: u64,
    /// File bytes from its metadata's page on: what a merge reads of it and holds.
    pub meta_bytes: u64,
}

/// A partition as [`pick_inputs`] groups parts: (start, directory, shard directory).
type PartitionKey<'a> = (TimestampNs, &'a str, u32);

/// A partition and its parts, by index into the candidates.
type PartitionParts<'k, 'a> = (&'k PartitionKey<'a>, &'k Vec<usize>);

/// What a compaction step writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pick {
    /// The inputs, by index into the candidates, ascending by part id.
    pub parts: Vec<usize>,
    /// The partition directory of the output (a bundle's is new).
    pub partition: String,
    /// The start of the output's partition (a bundle's first partition's).
    pub partition_start: TimestampNs,
    /// Whether the inputs are cold: the output is written with the cold options.
    pub cold: bool,
}

/// The parts to merge next; `None` if no partition needs compaction. Partitions are
/// considered oldest first (by start, then name), parts are grouped by (shard directory,
/// partition directory). The first rule that applies to a partition decides:
/// 1. it has at least [`CompactionPolicy::min_small_parts`] small parts: they are merged;
/// 2. it is cold and sparse, and so is the partition after it: they are bundled, with as
///    many sparse cold partitions after them as fit in one step;
/// 3. it is cold and holds parts written by sealing: all of it is rewritten;
/// 4. it has more than [`CompactionPolicy::parts_per_partition_max`] parts.
///
/// `cold_before`: partitions ending at or before it are cold (see
/// [`CompactionPolicy::recompress_cold_after`]); `partition_ns` is the partition span.
pub fn pick_inputs(
    parts: &[Candidate<'_>],
    policy: &CompactionPolicy,
    cold_before: Option<(TimestampNs, i64)>,
) -> Option<Pick> {
    let mut by: BTreeMap<PartitionKey<'_>, Vec<usize>> = BTreeMap::new();
    for (i, c) in parts.iter().enumerate() {
        by.entry((
            c.entry.partition_start,
            c.entry.partition.as_str(),
            c.entry.dir_shard,
        ))
        .or_default()
        .push(i);
    }
    let partitions: Vec<PartitionParts<'_, '_>> = by.iter().collect();
    let is_cold = |key: &PartitionKey<'_>| {
        cold_before.is_some_and(|(before, span)| key.0.saturating_add(span) <= before)
    };
    let is_sparse = |members: &[usize]| {
        let bytes: u64 = members.iter().map(|&i| parts[i].entry.file_bytes).sum();
        bytes < policy.bundle_partition_bytes_max
    };
    let inputs_max = policy.inputs_max.max(2);
    for (at, &(key, members)) in partitions.iter().enumerate() {
        let cold = is_cold(key);
        let small: Vec<usize> = members
            .iter()
            .copied()
            .filter(|&i| parts[i].entry.file_bytes < policy.small_part_bytes)
            .collect();
        if small.len() < policy.min_small_parts.max(2)
            && cold
            && is_sparse(members)
            && let Some(pick) = bundle(
                parts,
                &partitions[at..],
                policy.bundle_inputs_max.max(2),
                policy.cold_input_uncompressed_bytes_max,
                policy.memory_bytes_max,
                |k, m| is_cold(k) && is_sparse(m),
            )
        {
            return Some(pick);
        }
        let sealed: Vec<usize> = members
            .iter()
            .copied()
            .filter(|&i| parts[i].entry.level == 0)
            .collect();
        let mut chosen = if small.len() >= policy.min_small_parts.max(2) {
            // Oldest first: the order they were sealed in.
            let mut s = small;
            s.sort_by_key(|&i| parts[i].entry.id);
            s
        } else if cold && !sealed.is_empty() {
            // A cold partition: what sealing wrote is rewritten at the cold level.
            let mut s = sealed;
            s.sort_by_key(|&i| parts[i].entry.id);
            s
        } else if members.len() > policy.parts_per_partition_max {
            // Smallest first, as many as bring the partition back to the maximum (a merge of
            // k parts removes k - 1).
            let mut s = members.clone();
            s.sort_by_key(|&i| (parts[i].entry.file_bytes, parts[i].entry.id));
            s.truncate((members.len() - policy.parts_per_partition_max + 1).max(2));
            s
        } else {
            continue;
        };
        chosen.truncate(inputs_max);
        // Cold steps encode at the cold level (about 2 MB/s of lines): a partition that
        // small steps can rewrite in reasonable time gets them. A larger one is merged as a
        // warm one is, at the compaction level, into parts as large as memory allows: the
        // cold level could never keep up with it, and parts capped at a cold step's size
        // would leave it in thousands of small parts.
        let partition_bytes: u64 = members.iter().map(|&i| parts[i].uncompressed_bytes).sum();
        let cold_level = cold
            && partition_bytes
                <= policy
                    .cold_input_uncompressed_bytes_max
                    .saturating_mul(COLD_PARTITION_STEPS_MAX);
        let bytes_max = if cold_level {
            policy.cold_input_uncompressed_bytes_max
        } else {
            u64::MAX
        };
        let (mut total, mut tails, mut metas) = (0u64, 0u64, 0u64);
        let fit = chosen
            .iter()
            .enumerate()
            .take_while(|&(n, &i)| {
                total = total.saturating_add(parts[i].uncompressed_bytes);
                tails = tails.saturating_add(parts[i].tail_bytes);
                metas = metas.saturating_add(parts[i].meta_bytes);
                total <= bytes_max
                    && merge_memory_bytes(n + 1, tails, metas) <= policy.memory_bytes_max
            })
            .count();
        chosen.truncate(fit);
        // A single part is worth a step only when it was written by sealing and is cold: it
        // is rewritten at a higher level, once (its output is not level 0).
        let rewrite_alone = cold && chosen.len() == 1 && parts[chosen[0]].entry.level == 0;
        if chosen.len() >= 2 || rewrite_alone {
            chosen.sort_by_key(|&i| parts[i].entry.id);
            return Some(Pick {
                parts: chosen,
                partition: key.1.to_string(),
                partition_start: key.0,
                cold: cold_level,
            });
        }
    }
    None
}

/// A bundle of the first partitions of `run` (oldest first) that are sparse and cold
/// (`bundled`), in the same shard directory, within the step's bounds; `None` unless at
/// least two partitions fit.
fn bundle(
    parts: &[Candidate<'_>],
    run: &[PartitionParts<'_, '_>],
    inputs_max: usize,
    bytes_max: u64,
    memory_max: u64,
    bundled: impl Fn(&PartitionKey<'_>, &[usize]) -> bool,
) -> Option<Pick> {
    let (first, _) = run[0];
    let (mut chosen, mut total, mut last) = (Vec::new(), 0u64, first.1);
    let (mut tails, mut metas) = (0u64, 0u64);
    let mut taken = 0usize;
    for &(key, members) in run {
        let bytes: u64 = members.iter().map(|&i| parts[i].uncompressed_bytes).sum();
        let tail: u64 = members.iter().map(|&i| parts[i].tail_bytes).sum();
        let meta: u64 = members.iter().map(|&i| parts[i].meta_bytes).sum();
        if key.2 != first.2
            || !bundled(key, members)
            || chosen.len() + members.len() > inputs_max
            || total.saturating_add(bytes) > bytes_max
            || merge_memory_bytes(
                chosen.len() + members.len(),
                tails.saturating_add(tail),
                metas.saturating_add(meta),
            ) > memory_max
        {
            break;
        }
        chosen.extend_from_slice(members);
        total += bytes;
        tails += tail;
        metas += meta;
        last = key.1;
        taken += 1;
    }
    if taken < 2 {
        return None;
    }
    chosen.sort_by_key(|&i| parts[i].entry.id);
    Some(Pick {
        parts: chosen,
        partition: super::paths::bundle_name(first.1, last),
        partition_start: first.0,
        cold: true,
    })
}

/// How long to wait before starting I/O that brings the bytes charged since `elapsed` ago to
/// `bytes`, so that the average rate never exceeds `bytes_per_second` (0: no limit).
pub fn pacing_delay(bytes: u64, bytes_per_second: u64, elapsed: Duration) -> Duration {
    if bytes_per_second == 0 {
        return Duration::ZERO;
    }
    let due_ns = u128::from(bytes) * 1_000_000_000 / u128::from(bytes_per_second);
    let due = Duration::from_nanos(u64::try_from(due_ns).unwrap_or(u64::MAX));
    due.saturating_sub(elapsed)
}

/// Paces I/O to a byte budget: each charge is paid for before the I/O starts, so at the end
/// of any I/O the bytes done since the start are at most the budget times the time taken.
pub struct IoPacer {
    bytes_per_second: u64,
    start: Instant,
    charged: u64,
}

impl IoPacer {
    pub fn new(bytes_per_second: u64) -> IoPacer {
        IoPacer {
            bytes_per_second,
            start: Instant::now(),
            charged: 0,
        }
    }

    /// Charges `bytes` of I/O about to be done; sleeps until the budget allows it.
    pub async fn charge(&mut self, bytes: u64) {
        self.charged = self.charged.saturating_add(bytes);
        let wait = pacing_delay(self.charged, self.bytes_per_second, self.start.elapsed());
        if !wait.is_zero() {
            glommio::timer::sleep(wait).await;
        }
    }

    /// Bytes charged so far.
    pub fn charged(&self) -> u64 {
        self.charged
    }
}

/// File bytes of a part after its blocks (see [`Candidate::tail_bytes`]).
pub fn tail_bytes(part: &LoadedPart) -> u64 {
    part.entry
        .file_bytes
        .saturating_sub(part.footer().blocks_end())
}

/// File bytes of a part from its metadata's page on (see [`Candidate::meta_bytes`]).
pub fn meta_bytes(part: &LoadedPart) -> u64 {
    part.entry
        .file_bytes
        .saturating_sub(part.footer().tail_offset_meta_only())
}

/// Clears [`Store::compacting`] however the step ends.
pub(super) struct CompactingMark<'a>(pub(super) &'a Store);

impl Drop for CompactingMark<'_> {
    fn drop(&mut self) {
        *self.0.compacting.borrow_mut() = None;
    }
}

impl Store {
    /// Runs one compaction step (see the module doc) with `self.opts.compaction`. Returns
    /// `None` if no partition needs it, the store is read-only, or another step is running.
    ///
    /// Errors: a corrupt input is quarantined and its error returned (the next step picks
    /// from what is left). Any other error is the disk's: as with sealing, the caller should
    /// stop changing the store (the next open cleans up whatever the step left).
    pub async fn compact_once(&self) -> Result<Option<CompactionReport>, StoreError> {
        if !self.writable || self.compacting.borrow().is_some() {
            return Ok(None);
        }
        let (inputs, pick): (Vec<Rc<LoadedPart>>, Pick) = {
            let parts = self.parts();
            let candidates: Vec<Candidate<'_>> = parts
                .iter()
                .map(|p| Candidate {
                    entry: &p.entry,
                    uncompressed_bytes: p.uncompressed_bytes(),
                    tail_bytes: tail_bytes(p),
                    meta_bytes: meta_bytes(p),
                })
                .collect();
            let cold_before = self.opts.compaction.recompress_cold_after.map(|after| {
                let now = crate::ingest::listeners::now_ns();
                (
                    now.saturating_sub(after.as_nanos() as i64),
                    self.opts.partition_ns,
                )
            });
            match pick_inputs(&candidates, &self.opts.compaction, cold_before) {
                Some(pick) => (pick.parts.iter().map(|&i| parts[i].clone()).collect(), pick),
                None => return Ok(None),
            }
        };
        let partition = pick.partition.clone();
        // Set in the same step as the pick (no await between): a retention drop of this
        // partition from now on leaves its directory for the new file.
        *self.compacting.borrow_mut() = Some(partition.clone());
        let _mark = CompactingMark(self);
        let mut pacer = IoPacer::new(self.opts.compaction_bytes_per_second);

        let level = inputs.iter().map(|p| p.entry.level).max().unwrap_or(0) + 1;
        let opts = if pick.cold {
            self.opts.cold
        } else {
            self.opts.compact
        };
        let input_partitions: std::collections::BTreeSet<String> =
            inputs.iter().map(|p| p.entry.partition.clone()).collect();
        let merged = self
            .merge_parts(
                &inputs,
                &partition,
                pick.partition_start,
                level,
                opts,
                &|_, _, _, _| None,
                false,
                &mut pacer,
            )
            .await?;
        let entries = merged.written;
        let expected: u64 = inputs.iter().map(|p| p.footer().entries).sum();
        let new = match merged.part {
            Some(new) if merged.read == expected => new,
            new => {
                if let Some(new) = new {
                    let _guard = self.lock().await;
                    self.discard_unnamed(new).await;
                }
                return Err(StoreError::Invalid(format!(
                    "compaction read {} entries from parts {:?} that hold {expected}",
                    merged.read,
                    inputs.iter().map(|p| p.entry.id).collect::<Vec<_>>()
                )));
            }
        };
        let output_bytes = new.entry.file_bytes;
        let mut report = CompactionReport {
            partition,
            inputs: inputs.iter().map(|p| p.entry.id).collect(),
            output: new.entry.id,
            committed: false,
            input_bytes: inputs.iter().map(|p| p.entry.file_bytes).sum(),
            output_bytes,
            entries,
            level,
        };
        drop(inputs);

        let _guard = self.lock().await;
        let all_named = {
            let parts = self.parts.borrow();
            report
                .inputs
                .iter()
                .all(|id| parts.iter().any(|p| p.entry.id == *id))
        };
        if !all_named {
            self.discard_unnamed(new).await;
            return Ok(Some(report));
        }
        self.commit_locked(
            Change {
                add: vec![new],
                remove: report.inputs.clone(),
                ..Change::default()
            },
            || {},
        )
        .await?;
        report.committed = true;
        // A bundle empties the partitions it took: their directories go (a failure is left
        // to the next open, which removes empty partition directories).
        for gone in input_partitions.iter().filter(|p| **p != report.partition) {
            let named = self
                .manifest
                .borrow()
                .parts
                .iter()
                .any(|p| &p.partition == gone);
            if !named {
                self.remove_partition_dir(gone).await;
            }
        }
        self.counters.compactions.inc();
        self.counters
            .compacted_input_parts
            .add(report.inputs.len() as u64);
        self.counters.compaction_bytes.add(pacer.charged());
        Ok(Some(report))
    }

    /// Deletes a part the manifest does not name (an abandoned compaction's), and its
    /// partition directory if no named part is left in it. Under the lock. Failures are left
    /// to the next open, which deletes unnamed files and empty partition directories.
    pub(crate) async fn discard_unnamed(&self, part: LoadedPart) {
        let path = part.path.clone();
        let partition = part.entry.partition.clone();
        drop(part);
        let dir = self.paths.partition_dir(&partition);
        if self.disk.remove(&path).await.is_err() || self.disk.sync_dir(&dir).await.is_err() {
            return;
        }
        let in_use = self
            .manifest
            .borrow()
            .parts
            .iter()
            .any(|p| p.partition == partition);
        if !in_use {
            self.remove_partition_dir(&partition).await;
        }
    }

    /// Removes an empty partition directory durably; a failure (say, a file left by a failed
    /// unlink) is left to the next open.
    pub(crate) async fn remove_partition_dir(&self, partition: &str) {
        let dir = self.paths.partition_dir(partition);
        if self.disk.remove_dir(&dir).is_ok() {
            let _ = self.disk.sync_dir(&self.paths.parts()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::manifest::PartEntry;

    fn entry(id: u64, partition_start: i64, file_bytes: u64) -> PartEntry {
        PartEntry {
            id,
            dir_shard: 0,
            partition_start,
            partition: format!("p{partition_start}"),
            file_bytes,
            entries: 1,
            min_ts: partition_start,
            max_ts: partition_start,
            level: 0,
        }
    }

    fn pick(entries: &[PartEntry], policy: &CompactionPolicy) -> Option<Vec<u64>> {
        let c: Vec<Candidate<'_>> = entries
            .iter()
            .map(|e| Candidate {
                entry: e,
                uncompressed_bytes: e.file_bytes * 4,
                tail_bytes: e.file_bytes / 8,
                meta_bytes: e.file_bytes / 64,
            })
            .collect();
        pick_inputs(&c, policy, None).map(|p| p.parts.into_iter().map(|i| entries[i].id).collect())
    }

    #[test]
    fn picks_small_parts_of_the_oldest_partition_that_has_enough() {
        let p = CompactionPolicy::default();
        let small = 1 << 20;
        let big = 64 << 20;
        let mut parts = vec![
            // Partition 1: three small parts, one big: not enough small ones.
            entry(1, 1, small),
            entry(2, 1, small),
            entry(3, 1, small),
            entry(4, 1, big),
            // Partition 2: four small parts and a big one.
            entry(9, 2, small),
            entry(5, 2, big),
            entry(7, 2, small),
            entry(6, 2, small),
            entry(8, 2, small),
        ];
        assert_eq!(pick(&parts, &p), Some(vec![6, 7, 8, 9]));
        parts.push(entry(10, 1, small));
        assert_eq!(pick(&parts, &p), Some(vec![1, 2, 3, 10]));
    }

    #[test]
    fn a_partition_over_the_part_count_merges_its_smallest_parts() {
        let p = CompactionPolicy {
            memory_bytes_max: 1 << 30,
            ..CompactionPolicy::default()
        };
        let mut parts: Vec<PartEntry> = (0..10).map(|i| entry(i, 5, (20 + i) << 20)).collect();
        // Ten big parts, eight allowed: merging the three smallest leaves eight.
        assert_eq!(pick(&parts, &p), Some(vec![0, 1, 2]));
        parts.truncate(8);
        assert_eq!(pick(&parts, &p), None);
    }

    #[test]
    fn a_merge_is_bounded_by_count_and_memory() {
        let p = CompactionPolicy {
            inputs_max: 5,
            ..CompactionPolicy::default()
        };
        let parts: Vec<PartEntry> = (0..40).map(|i| entry(i, 5, 1 << 20)).collect();
        assert_eq!(pick(&parts, &p), Some(vec![0, 1, 2, 3, 4]));
        let p = CompactionPolicy {
            // A merge of n of these parts holds 6 MiB + n x (1.5 MiB + twice a 128 KiB
            // tail + 16 KiB of metadata): two fit, not three.
            memory_bytes_max: 11 << 20,
            ..CompactionPolicy::default()
        };
        assert_eq!(pick(&parts, &p), Some(vec![0, 1]));
        let p = CompactionPolicy {
            memory_bytes_max: 8 << 20,
            ..CompactionPolicy::default()
        };
        assert_eq!(pick(&parts, &p), None, "one part alone is not a merge");
    }

    fn candidates(parts: &[PartEntry]) -> Vec<Candidate<'_>> {
        parts
            .iter()
            .map(|e| Candidate {
                entry: e,
                uncompressed_bytes: 1 << 20,
                tail_bytes: 1 << 17,
                meta_bytes: 1 << 14,
            })
            .collect()
    }

    #[test]
    fn a_cold_partition_is_rewritten_at_the_compaction_level_once() {
        let p = CompactionPolicy::default();
        let day = 86_400_000_000_000;
        let mut one = vec![entry(0, 5, 1 << 20)];
        let end = one[0].partition_start + day;
        // Still warm: nothing to do with one part.
        assert_eq!(
            pick_inputs(&candidates(&one), &p, Some((end - 1, day))).map(|p| p.parts),
            None
        );
        // Cold: the single sealed part is rewritten.
        assert_eq!(
            pick_inputs(&candidates(&one), &p, Some((end, day))).map(|p| p.parts),
            Some(vec![0])
        );
        // Once rewritten (level 1), never again.
        one[0].level = 1;
        assert_eq!(
            pick_inputs(&candidates(&one), &p, Some((end, day))).map(|p| p.parts),
            None
        );
    }

    /// Candidates of `parts` with these uncompressed bytes and tails.
    fn with_tails(
        parts: &[PartEntry],
        uncompressed: impl Fn(&PartEntry) -> u64,
        tail_bytes: u64,
    ) -> Vec<Candidate<'_>> {
        parts
            .iter()
            .map(|e| Candidate {
                entry: e,
                uncompressed_bytes: uncompressed(e),
                tail_bytes,
                meta_bytes: tail_bytes / 8,
            })
            .collect()
    }

    #[test]
    fn a_cold_rewrite_takes_what_sealing_wrote_never_a_merged_part_alone() {
        let p = CompactionPolicy::default();
        let day = 86_400_000_000_000;
        // A merged part first (by id), then two sealed ones: the sealed ones are rewritten
        // together, the merged part is left alone.
        let mut parts = [
            entry(0, 5, 64 << 20),
            entry(1, 5, 5 << 20),
            entry(2, 5, 5 << 20),
        ];
        parts[0].level = 2;
        let c = with_tails(&parts, |e| e.file_bytes, 1 << 20);
        let end = parts[0].partition_start + day;
        let pick = pick_inputs(&c, &p, Some((end, day))).expect("a cold rewrite");
        assert_eq!(pick.parts, vec![1, 2]);
        // With nothing sealed left, a merged part is never rewritten alone.
        parts[1].level = 1;
        parts[2].level = 1;
        let c = with_tails(&parts, |e| e.file_bytes, 1 << 20);
        assert_eq!(pick_inputs(&c, &p, Some((end, day))).map(|p| p.parts), None);
    }

    #[test]
    fn a_cold_partition_too_large_for_cold_steps_is_merged_at_the_compaction_level() {
        let p = CompactionPolicy::default();
        let day = 86_400_000_000_000;
        let cold_step = p.cold_input_uncompressed_bytes_max;
        let make = |n: u64, each: u64| -> Vec<PartEntry> {
            (0..n).map(|i| entry(i, 5, each / 4)).collect()
        };
        let pick = |parts: &[PartEntry]| {
            let c = with_tails(parts, |e| e.file_bytes * 4, 64 << 10);
            let end = parts[0].partition_start + day;
            pick_inputs(&c, &p, Some((end, day))).expect("a step")
        };
        // Small: cold steps of at most one cold step's lines.
        let small = make(8, cold_step / 2);
        let step = pick(&small);
        assert!(step.cold);
        assert_eq!(step.parts.len(), 2);
        // Larger than COLD_PARTITION_STEPS_MAX steps: one merge at the compaction level, as
        // many parts as memory allows, past the cold step's size.
        let large = make(24, cold_step);
        let step = pick(&large);
        assert!(!step.cold);
        assert!(step.parts.len() > 2, "{:?}", step.parts);
    }

    #[test]
    fn sparse_cold_partitions_are_bundled_up_to_the_first_that_is_not() {
        let p = CompactionPolicy::default();
        let day = 86_400_000_000_000;
        let mut parts: Vec<PartEntry> = (0..6).map(|d| entry(d as u64, d * day, 8 << 10)).collect();
        // Day 3 is not sparse: days 0-2 are bundled, days 4-5 wait for the next step.
        parts[3].file_bytes = 64 << 20;
        parts[3].level = 1;
        let c = candidates(&parts);
        let pick = pick_inputs(&c, &p, Some((10 * day, day))).expect("a bundle");
        assert_eq!(pick.parts, vec![0, 1, 2]);
        assert_eq!(pick.partition, format!("p0--p{}", 2 * day));
        assert_eq!(pick.partition_start, 0);
        assert!(pick.cold);
        // Without cold data nothing is bundled: each sealed part alone is not worth a step.
        assert_eq!(pick_inputs(&c, &p, None), None);
        // Day 0 alone is cold: rewritten alone, not bundled.
        let alone = pick_inputs(&c, &p, Some((day, day))).expect("a cold rewrite");
        assert_eq!((alone.parts, alone.partition.as_str()), (vec![0], "p0"));
    }

    #[test]
    fn pacing_keeps_the_average_rate_under_the_budget() {
        let mib = 1 << 20;
        assert_eq!(
            pacing_delay(10 * mib, 10 * mib, Duration::ZERO),
            Duration::from_secs(1)
        );
        assert_eq!(
            pacing_delay(10 * mib, 10 * mib, Duration::from_millis(400)),
            Duration::from_millis(600)
        );
        assert_eq!(
            pacing_delay(10 * mib, 10 * mib, Duration::from_secs(2)),
            Duration::ZERO
        );
        assert_eq!(pacing_delay(u64::MAX, 0, Duration::ZERO), Duration::ZERO);
        assert_eq!(
            pacing_delay(u64::MAX, 1, Duration::ZERO),
            Duration::from_nanos(u64::MAX)
        );
    }
}

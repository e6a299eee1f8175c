//! Retention: drops whole partitions of a store, oldest first, by age and by size.
//!
//! Bundles (old sparse partitions compacted into one part, see `compaction.rs`) are
//! partitions too, dropped whole once their newest line is past the age; before that, the
//! lines of a bundle past the age are dropped by rewriting it (`rewrite.rs`), so that a
//! bundle never keeps a line longer than the partitions it took would have.
//!
//! Which question it answers: "which data is deleted, and how, so that a crash never leaves
//! part of a partition counted?" A partition is dropped by one manifest replacement that
//! removes all its parts (the same manifest-first rule as every change: after a crash the
//! partition is wholly there or wholly gone); then its files are unlinked and its directory
//! removed. Queries that took the parts before keep reading them: an open part keeps its
//! file, which an unlink does not truncate.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use super::part_file::LoadedPart;
use super::paths::is_bundle;
use super::rewrite::{DropReason, LineDropper, StreamRule};
use super::{Change, Store, StoreError};
use crate::model::{Labels, TimestampNs};

/// Drops the lines older than a cutoff (from bundles that straddle it).
struct ExpiredBefore(TimestampNs);

impl LineDropper for ExpiredBefore {
    fn for_stream(
        &self,
        _tenant: &str,
        _labels: &Labels,
        min: TimestampNs,
        _max: TimestampNs,
    ) -> Option<StreamRule<'_>> {
        let cutoff = self.0;
        (min < cutoff).then(|| -> StreamRule<'_> {
            Box::new(move |ts, _, _| (ts < cutoff).then_some(DropReason::Expired))
        })
    }
}

/// What a retention pass dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// Names of the dropped partitions, oldest first.
    pub partitions: Vec<String>,
    pub parts: u64,
    pub entries: u64,
    pub bytes: u64,
}

/// The parts of one partition directory.
struct Partition {
    name: String,
    parts: Vec<Rc<LoadedPart>>,
}

impl Partition {
    /// The time of its newest line.
    fn max_ts(&self) -> TimestampNs {
        self.parts
            .iter()
            .map(|p| p.entry.max_ts)
            .max()
            .unwrap_or(TimestampNs::MIN)
    }
}

/// The parts grouped by partition directory, oldest partition first.
fn partitions_oldest_first(parts: Vec<Rc<LoadedPart>>) -> Vec<Partition> {
    let mut by: BTreeMap<(TimestampNs, String), Vec<Rc<LoadedPart>>> = BTreeMap::new();
    for p in parts {
        by.entry((p.entry.partition_start, p.entry.partition.clone()))
            .or_default()
            .push(p);
    }
    by.into_iter()
        .map(|((_, name), parts)| Partition { name, parts })
        .collect()
}

impl Store {
    /// Drops whole partitions, oldest first (by partition start):
    /// 1. every partition whose newest line is older than `now_ns - max_age`;
    /// 2. then, while the store's part files take more than `keep_bytes`, the oldest
    ///    partition left (even the newest one: a byte cap protects the disk).
    ///
    /// `keep_bytes` is this store's share of the byte budget: a disk-size cap is global
    /// across shards, so the caller splits it (each shard's store enforces its own share,
    /// without coordination). `None` skips a rule.
    ///
    /// Each partition is one manifest replacement removing all its parts; then its files are
    /// unlinked and its directory removed (durably). A partition that a compaction is writing
    /// into keeps its (empty) directory: the compaction finds its inputs gone, deletes its
    /// new file and removes the directory.
    ///
    /// Read-only stores (of shard numbers beyond the core count) are trimmed too: the one
    /// shard serving such a store is the only one that changes it, under its lock, and only
    /// by retention.
    ///
    /// An error is the disk's: the partitions dropped before it are in the report's counters
    /// and in the manifest; the caller should stop changing the store, as with sealing.
    pub async fn apply_retention(
        &self,
        now_ns: TimestampNs,
        max_age: Option<Duration>,
        keep_bytes: Option<u64>,
    ) -> Result<RetentionReport, StoreError> {
        let mut report = RetentionReport::default();
        let guard = self.lock().await;
        let cutoff = max_age.map(|age| {
            now_ns.saturating_sub(TimestampNs::try_from(age.as_nanos()).unwrap_or(i64::MAX))
        });
        for partition in partitions_oldest_first(self.parts()) {
            let too_old = cutoff.is_some_and(|c| partition.max_ts() < c);
            let too_big = keep_bytes.is_some_and(|k| self.total_bytes() > k);
            if too_old || too_big {
                self.drop_partition_locked(partition, &mut report).await?;
            }
        }
        drop(guard);
        // A bundle spans many partitions: the lines of it that are past the age go by a
        // rewrite, so that bundling never keeps a line longer than a partition would.
        let Some(cutoff) = cutoff else {
            return Ok(report);
        };
        let straddling: Vec<Rc<LoadedPart>> = self
            .parts()
            .into_iter()
            .filter(|p| is_bundle(&p.entry.partition) && p.entry.min_ts < cutoff)
            .collect();
        for part in straddling {
            let r = self.rewrite_part(&part, &ExpiredBefore(cutoff)).await?;
            if r.committed {
                report.parts += 1;
                report.entries += r.dropped_lines();
                self.counters
                    .retention_dropped_entries
                    .add(r.dropped_lines());
            }
        }
        Ok(report)
    }

    /// Drops every part of `partition` from the manifest, then its files and directory. The
    /// caller holds the lock.
    async fn drop_partition_locked(
        &self,
        partition: Partition,
        report: &mut RetentionReport,
    ) -> Result<(), StoreError> {
        let ids: Vec<u64> = partition.parts.iter().map(|p| p.entry.id).collect();
        let entries: u64 = partition.parts.iter().map(|p| p.entry.entries).sum();
        let bytes: u64 = partition.parts.iter().map(|p| p.entry.file_bytes).sum();
        let name = partition.name;
        drop(partition.parts);
        self.commit_locked(
            Change {
                remove: ids.clone(),
                ..Change::default()
            },
            || {},
        )
        .await?;
        self.counters.retention_dropped_parts.add(ids.len() as u64);
        self.counters.retention_dropped_entries.add(entries);
        self.counters.retention_dropped_bytes.add(bytes);
        report.parts += ids.len() as u64;
        report.entries += entries;
        report.bytes += bytes;
        // Sealing only writes under the lock, which is held; a compaction writes without it.
        let compacting = self.compacting.borrow().as_deref() == Some(name.as_str());
        let still_named = self
            .manifest
            .borrow()
            .parts
            .iter()
            .any(|p| p.partition == name);
        if !compacting && !still_named {
            self.remove_partition_dir(&name).await;
        }
        report.partitions.push(name);
        Ok(())
    }
}

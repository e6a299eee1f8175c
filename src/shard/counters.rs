//! What a shard counts, and the snapshot of it that `/metrics` shows.
//!
//! Which question it answers: "how many lines did this core take, refuse or throw away, and
//! why?" [`CoreCounters`] are the live counts of one core, both as the receiver of requests
//! (discards, truncations) and as the owner of streams (lines made durable), in total and
//! per tenant; [`DiscardReason`] names why a line went, and indexes the discard counters.
//! [`Shard::metrics`] reads them, with the WAL's, the part stores' and the scans' own
//! counters, into a [`ShardMetrics`] that can cross cores.

use std::cell::RefCell;

use super::{DeletionCounts, NotReady, Protocol, Shard};
use crate::metrics::{Counter, HistogramSnapshot};
use crate::wal::WalStats;

/// Why lines were refused or thrown away, for `shardlog_discarded_lines_total{reason}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiscardReason {
    /// A push line over `line_bytes_max` (the whole request is refused).
    LineTooLong,
    /// A push or jsonline body that could not be decoded, or broke a rule Loki has no
    /// reason of its own for (a timestamp outside the accepted range).
    InvalidRequest,
    /// A body over the size limit.
    TooLarge,
    /// Syslog bytes that framing had to skip (the rest of an oversized frame, a bad count).
    FramingError,
    /// Lines refused because the owner shard's WAL stopped accepting writes.
    WalUnavailable,
    /// A request with an invalid tenant id.
    InvalidTenant,
    /// Lines refused because the owner shard's disk had no space for its WAL.
    NoSpace,
    /// Lines refused because the owner shard's unsealed lines were over their budget.
    Overloaded,
    /// A Loki push entry equal (stream, timestamp, line) to one its stream holds (see
    /// [`super::dedupe`]); its push was still answered 204.
    Duplicate,
    /// A push over its tenant's ingestion rate (Loki's `rate_limited`).
    RateLimited,
    /// A pushed entry older than its tenant's `reject_old_samples_max_age`.
    GreaterThanMaxSampleAge,
    /// An entry of a new stream over its tenant's active stream limit.
    StreamLimit,
    /// An entry of a stream over its own rate (Loki's `per_stream_rate_limit`).
    PerStreamRateLimit,
    /// A pushed entry further ahead of the clock than `creation_grace_period`.
    TooFarInFuture,
    /// A push stream with more labels than `max_label_names_per_series`.
    MaxLabelNamesPerSeries,
    /// A push stream with a label name over `max_label_name_length`.
    LabelNameTooLong,
    /// A push stream with a label value over `max_label_value_length`.
    LabelValueTooLong,
    /// A push stream naming a label twice.
    DuplicateLabelNames,
    /// A push stream whose labels do not parse or whose label name is not one.
    InvalidLabels,
    /// A push stream without a label.
    MissingLabels,
    /// A pushed entry with more structured metadata bytes than Loki's default.
    StructuredMetadataTooLarge,
    /// A pushed entry with more structured metadata pairs than Loki's default.
    StructuredMetadataTooMany,
}

impl DiscardReason {
    pub const ALL: [DiscardReason; 22] = [
        DiscardReason::LineTooLong,
        DiscardReason::InvalidRequest,
        DiscardReason::TooLarge,
        DiscardReason::FramingError,
        DiscardReason::WalUnavailable,
        DiscardReason::InvalidTenant,
        DiscardReason::NoSpace,
        DiscardReason::Overloaded,
        DiscardReason::Duplicate,
        DiscardReason::RateLimited,
        DiscardReason::GreaterThanMaxSampleAge,
        DiscardReason::StreamLimit,
        DiscardReason::PerStreamRateLimit,
        DiscardReason::TooFarInFuture,
        DiscardReason::MaxLabelNamesPerSeries,
        DiscardReason::LabelNameTooLong,
        DiscardReason::LabelValueTooLong,
        DiscardReason::DuplicateLabelNames,
        DiscardReason::InvalidLabels,
        DiscardReason::MissingLabels,
        DiscardReason::StructuredMetadataTooLarge,
        DiscardReason::StructuredMetadataTooMany,
    ];

    pub fn name(self) -> &'static str {
        match self {
            DiscardReason::LineTooLong => "line_too_long",
            DiscardReason::InvalidRequest => "invalid_request",
            DiscardReason::TooLarge => "too_large",
            DiscardReason::FramingError => "framing_error",
            DiscardReason::WalUnavailable => "wal_unavailable",
            DiscardReason::InvalidTenant => "invalid_tenant",
            DiscardReason::NoSpace => "disk_full",
            DiscardReason::Overloaded => "heads_full",
            DiscardReason::Duplicate => "duplicate",
            DiscardReason::RateLimited => "rate_limited",
            DiscardReason::GreaterThanMaxSampleAge => "greater_than_max_sample_age",
            DiscardReason::StreamLimit => "stream_limit",
            DiscardReason::PerStreamRateLimit => "per_stream_rate_limit",
            DiscardReason::TooFarInFuture => "too_far_in_future",
            DiscardReason::MaxLabelNamesPerSeries => "max_label_names_per_series",
            DiscardReason::LabelNameTooLong => "label_name_too_long",
            DiscardReason::LabelValueTooLong => "label_value_too_long",
            DiscardReason::DuplicateLabelNames => "duplicate_label_names",
            DiscardReason::InvalidLabels => "invalid_labels",
            DiscardReason::MissingLabels => "missing_labels",
            DiscardReason::StructuredMetadataTooLarge => "structured_metadata_too_large",
            DiscardReason::StructuredMetadataTooMany => "structured_metadata_too_many",
        }
    }
}

// Counters are arrays indexed by `reason as usize` and rendered in the order of
// `DiscardReason::ALL`: the two orders must be one.
const _: () = {
    let mut i = 0;
    while i < DiscardReason::ALL.len() {
        assert!(DiscardReason::ALL[i] as usize == i);
        i += 1;
    }
};

/// Counters of one core, both as a receiver (discards, truncations) and as an owner
/// (lines made durable).
#[derive(Default)]
pub struct CoreCounters {
    pub ingested_lines: [Counter; Protocol::ALL.len()],
    pub ingested_bytes: [Counter; Protocol::ALL.len()],
    pub discarded: [Counter; DiscardReason::ALL.len()],
    pub frames_truncated: Counter,
    pub invalid_utf8_lines: Counter,
    pub timestamps_clamped: Counter,
    pub udp_datagrams: Counter,
    pub queries: Counter,
    pub replayed_records: Counter,
    pub replayed_entries: Counter,
    /// Appends that waited for sealing to free memory.
    pub memory_waits: Counter,
    /// Seal rounds that failed (and were retried).
    pub seal_failures: Counter,
    /// Heads sealed before they were due, to keep the WAL under `wal_bytes_max`.
    pub wal_early_seals: Counter,
    /// The same counts per tenant (where the tenant is known).
    tenants: RefCell<std::collections::HashMap<String, TenantCounts>>,
}

/// One tenant's lines on one core: made durable here as owner, discarded here as receiver.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TenantCounts {
    pub ingested_lines: u64,
    pub ingested_bytes: u64,
    pub discarded: [u64; DiscardReason::ALL.len()],
    /// Lines cut to `max_line_size` (`max_line_size_truncate`) and stored, and the bytes
    /// cut off them: Loki's mutated samples and bytes of reason `line_too_long`.
    pub truncated_lines: u64,
    pub truncated_bytes: u64,
}

impl CoreCounters {
    pub fn discard(&self, reason: DiscardReason, lines: u64) {
        self.discarded[reason as usize].add(lines);
    }

    /// [`CoreCounters::discard`] for lines of a known tenant.
    pub fn discard_for(&self, tenant: &str, reason: DiscardReason, lines: u64) {
        self.discard(reason, lines);
        self.for_tenant(tenant, |c| c.discarded[reason as usize] += lines);
    }

    /// Counts lines of `tenant` cut to its `max_line_size`, and the bytes cut off them.
    pub fn truncated_for(&self, tenant: &str, lines: u64, bytes: u64) {
        self.for_tenant(tenant, |c| {
            c.truncated_lines += lines;
            c.truncated_bytes += bytes;
        });
    }

    pub(super) fn ingested_for(&self, tenant: &str, lines: u64, bytes: u64) {
        self.for_tenant(tenant, |c| {
            c.ingested_lines += lines;
            c.ingested_bytes += bytes;
        });
    }

    fn for_tenant(&self, tenant: &str, f: impl FnOnce(&mut TenantCounts)) {
        let mut tenants = self.tenants.borrow_mut();
        match tenants.get_mut(tenant) {
            Some(c) => f(c),
            None => f(tenants.entry(tenant.to_string()).or_default()),
        }
    }

    /// Every tenant's counts, by tenant.
    pub fn tenants(&self) -> Vec<(String, TenantCounts)> {
        by_tenant(&self.tenants.borrow())
    }
}

/// A copy of a per-tenant map, sorted by tenant, so that a snapshot of per-tenant counts
/// does not depend on the hash map's order (which changes from run to run).
pub(super) fn by_tenant<V: Clone>(map: &std::collections::HashMap<String, V>) -> Vec<(String, V)> {
    let mut all: Vec<_> = map.iter().map(|(t, v)| (t.clone(), v.clone())).collect();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    all
}

/// Everything `/metrics` shows of one shard.
#[derive(Debug, Clone)]
pub struct ShardMetrics {
    pub shard: usize,
    /// What keeps the shard from taking every write (empty: nothing).
    pub health: Vec<NotReady>,
    pub ingested_lines: [u64; Protocol::ALL.len()],
    pub ingested_bytes: [u64; Protocol::ALL.len()],
    pub discarded: [u64; DiscardReason::ALL.len()],
    /// The same per tenant, for the tenants this core has seen.
    pub tenants: Vec<(String, TenantCounts)>,
    /// Active streams per tenant on this shard (Loki's stream limit's count).
    pub active_streams: Vec<(String, u64)>,
    pub frames_truncated: u64,
    pub invalid_utf8_lines: u64,
    pub timestamps_clamped: u64,
    pub udp_datagrams: u64,
    pub udp_kernel_drops: u64,
    pub queries: u64,
    pub query_seconds: HistogramSnapshot,
    pub streams: u64,
    pub head_entries: u64,
    /// Tails registered with the shard, and entries dropped for tails whose client or
    /// forwarder was too slow (on this shard's queues and this core's inboxes).
    pub tails: u64,
    pub tail_dropped_entries: u64,
    pub replayed_records: u64,
    pub replayed_entries: u64,
    pub wal: Option<WalStats>,
    pub storage: StorageMetrics,
    pub edge: crate::metrics::edge::EdgeMetrics,
    pub memory: MemoryMetrics,
}

/// What the part cache keeps, by kind ([`crate::store::part_cache::Kind`]).
pub const PART_CACHE_KINDS: usize = crate::store::part_cache::Kind::ALL.len();

/// The core's share of `memory_max` and what it holds now, for `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct MemoryMetrics {
    /// The budget as started (`None`: a shard made outside the server).
    pub budget: Option<crate::config::memory::MemoryBudget>,
    /// Unsealed entries: live heads and seal rounds in progress.
    pub heads_bytes: u64,
    /// Unfinished requests (the edge's count).
    pub requests_bytes: u64,
    /// Part metadata, bloom filters and label summaries kept for queries (the part cache),
    /// and the cache's hits, misses and evictions, by what was kept (metadata, blooms, labels:
    /// [`crate::store::part_cache::Kind`]).
    pub part_cache_bytes: u64,
    pub part_cache_hits: [u64; PART_CACHE_KINDS],
    pub part_cache_misses: [u64; PART_CACHE_KINDS],
    pub part_cache_evictions: [u64; PART_CACHE_KINDS],
    /// What parts keep resident beyond their footers: label names and index directories.
    pub part_resident_bytes: u64,
    /// The duplicate check's fingerprints of recently sealed entries.
    pub fingerprints_bytes: u64,
}

/// The part stores and scans of one shard, for `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct StorageMetrics {
    pub parts: u64,
    pub part_bytes: u64,
    /// Bytes parts keep resident beyond their footers (their metadata and blooms are in
    /// the part cache).
    pub part_resident_bytes: u64,
    pub parts_written: u64,
    pub part_bytes_written: u64,
    pub sealed_entries: u64,
    pub sealing_failed: bool,
    pub seal_failures: u64,
    pub wal_early_seals: u64,
    pub manifest_writes: u64,
    pub wal_checkpoint: u64,
    pub quarantined_parts: u64,
    pub garbage_files_removed: u64,
    pub compactions: u64,
    pub compacted_input_parts: u64,
    pub compaction_bytes: u64,
    pub retention_dropped_parts: u64,
    pub retention_dropped_entries: u64,
    pub retention_dropped_bytes: u64,
    /// Parts rewritten without deleted or expired lines.
    pub rewritten_parts: u64,
    /// Deletion and per-tenant retention counts, by tenant.
    pub deletion: Vec<(String, DeletionCounts)>,
    /// Appends that waited for sealing to free memory (ingest faster than sealing).
    pub appends_waited_for_sealing: u64,
    /// Line bytes not yet in parts: live heads and seal rounds in progress.
    pub unsealed_line_bytes: u64,
    /// Fingerprints of recently sealed entries held for the duplicate check, and those the
    /// memory bound dropped before their window ended.
    pub duplicate_fingerprints: u64,
    pub duplicate_fingerprints_evicted: u64,
    pub blocks_considered: u64,
    pub blocks_skipped_by_bloom: u64,
    pub blocks_skipped_by_metadata_index: u64,
    pub blocks_scanned: u64,
    pub line_bytes_scanned: u64,
    pub scans_cancelled: u64,
    /// Pauses scans took to leave the core to ingest (see `runtime::pacer`), and their total.
    pub query_pauses_for_ingest: u64,
    pub query_paused_for_ingest_ms: u64,
}

impl Shard {
    /// The part stores' and the scans' counts, for [`ShardMetrics::storage`].
    fn storage_metrics(&self) -> StorageMetrics {
        let mut m = StorageMetrics {
            sealing_failed: self.seal_failed.borrow().is_some(),
            seal_failures: self.counters.seal_failures.get(),
            wal_early_seals: self.counters.wal_early_seals.get(),
            appends_waited_for_sealing: self.counters.memory_waits.get(),
            unsealed_line_bytes: self.head_bytes.get() + self.sealing_bytes.get(),
            duplicate_fingerprints: self.recently_sealed.borrow().len(),
            duplicate_fingerprints_evicted: self.recently_sealed.borrow().evicted(),
            blocks_considered: self.scan_counters.blocks_considered.get(),
            blocks_skipped_by_bloom: self.scan_counters.blocks_skipped_by_bloom.get(),
            blocks_skipped_by_metadata_index: self
                .scan_counters
                .blocks_skipped_by_metadata_index
                .get(),
            blocks_scanned: self.scan_counters.blocks_scanned.get(),
            scans_cancelled: self.scan_counters.scans_cancelled.get(),
            line_bytes_scanned: self.scan_counters.line_bytes_scanned.get(),
            query_pauses_for_ingest: self.query_pacer.pauses.get(),
            query_paused_for_ingest_ms: self.query_pacer.paused_ns.get() / 1_000_000,
            deletion: self.deletion_counts(),
            ..StorageMetrics::default()
        };
        if let Some(s) = self.store.borrow().as_ref() {
            m.wal_checkpoint = s.manifest().wal_checkpoint;
        }
        for store in self.all_stores() {
            let c = &store.counters;
            let parts = store.parts();
            m.parts += parts.len() as u64;
            m.part_bytes += store.total_bytes();
            m.part_resident_bytes += parts.iter().map(|p| p.resident_bytes()).sum::<u64>();
            m.parts_written += c.parts_written.get();
            m.part_bytes_written += c.part_bytes_written.get();
            m.sealed_entries += c.sealed_entries.get();
            m.manifest_writes += c.manifest_writes.get();
            m.quarantined_parts += c.quarantined_parts.get();
            m.garbage_files_removed += c.garbage_files_removed.get();
            m.compactions += c.compactions.get();
            m.compacted_input_parts += c.compacted_input_parts.get();
            m.compaction_bytes += c.compaction_bytes.get();
            m.retention_dropped_parts += c.retention_dropped_parts.get();
            m.retention_dropped_entries += c.retention_dropped_entries.get();
            m.retention_dropped_bytes += c.retention_dropped_bytes.get();
            m.rewritten_parts += c.rewritten_parts.get();
        }
        m
    }

    /// The budget's use on this core, for [`ShardMetrics::memory`].
    fn memory_metrics(&self) -> MemoryMetrics {
        let cache = self.part_cache();
        let by_kind = |get: fn(&crate::store::part_cache::PartCacheCounters) -> u64| {
            cache.counters.each_ref().map(get)
        };
        MemoryMetrics {
            budget: self.memory_budget.get(),
            heads_bytes: self.head_bytes.get() + self.sealing_bytes.get(),
            requests_bytes: self.edge.body_bytes_held(),
            part_cache_bytes: cache.held_bytes(),
            part_cache_hits: by_kind(|c| c.hits.get()),
            part_cache_misses: by_kind(|c| c.misses.get()),
            part_cache_evictions: by_kind(|c| c.evictions.get()),
            part_resident_bytes: self
                .all_stores()
                .iter()
                .flat_map(|s| s.parts())
                .map(|p| p.resident_bytes())
                .sum(),
            fingerprints_bytes: self.recently_sealed.borrow().bytes() as u64,
        }
    }

    /// Everything `/metrics` shows of this shard, as it is now.
    pub fn metrics(&self) -> ShardMetrics {
        let streams = self.heads();
        let c = &self.counters;
        ShardMetrics {
            shard: self.id,
            health: self.health(),
            ingested_lines: std::array::from_fn(|i| c.ingested_lines[i].get()),
            ingested_bytes: std::array::from_fn(|i| c.ingested_bytes[i].get()),
            discarded: std::array::from_fn(|i| c.discarded[i].get()),
            tenants: c.tenants(),
            active_streams: self.active_streams.counts(),
            frames_truncated: c.frames_truncated.get(),
            invalid_utf8_lines: c.invalid_utf8_lines.get(),
            timestamps_clamped: c.timestamps_clamped.get(),
            udp_datagrams: c.udp_datagrams.get(),
            udp_kernel_drops: crate::ingest::listeners::udp_kernel_drops(
                &self.udp_socket_inodes.borrow(),
            ),
            queries: c.queries.get(),
            query_seconds: self.query_seconds.snapshot(),
            streams: streams.len() as u64,
            head_entries: streams.entries_total(),
            tails: self.tails.len() as u64,
            tail_dropped_entries: self.tails.dropped_total(),
            replayed_records: c.replayed_records.get(),
            replayed_entries: c.replayed_entries.get(),
            wal: self.wal.borrow().as_ref().map(|w| w.stats()),
            storage: self.storage_metrics(),
            edge: self.edge.snapshot(),
            memory: self.memory_metrics(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_count_adds_to_the_total_and_tenants_are_listed_in_order() {
        let c = CoreCounters::default();
        c.discard_for("b", DiscardReason::StreamLimit, 3);
        c.discard_for("a", DiscardReason::StreamLimit, 2);
        c.discard(DiscardReason::TooLarge, 1);
        c.truncated_for("a", 1, 10);
        assert_eq!(c.discarded[DiscardReason::StreamLimit as usize].get(), 5);
        assert_eq!(c.discarded[DiscardReason::TooLarge as usize].get(), 1);
        let t = c.tenants();
        let names: Vec<&str> = t.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(t[0].1.discarded[DiscardReason::StreamLimit as usize], 2);
        assert_eq!((t[0].1.truncated_lines, t[0].1.truncated_bytes), (1, 10));
        assert_eq!(t[1].1.discarded.iter().sum::<u64>(), 3);
    }
}

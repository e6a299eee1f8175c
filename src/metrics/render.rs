//! Renders the shards' metric snapshots in the Prometheus text exposition format.
//! Every name is prefixed `shardlog_`; per-shard series carry a `shard` label.
//! The edge, memory, tenant and deletion sections are rendered in `sections`.

use std::fmt::Write;

use super::HistogramSnapshot;
use super::edge::{ListenerKind, ListenerMetrics};
use crate::shard::{DiscardReason, Protocol, ShardMetrics, StorageMetrics};

mod sections;
use sections::{deletion_series, edge, memory, tenant_series};

/// Picks one of a WAL's latency histograms out of its stats.
type WalHistogram = fn(&crate::wal::WalStats) -> &HistogramSnapshot;

/// The whole `/metrics` page.
pub fn render(shards: &[ShardMetrics], ready: bool) -> String {
    let mut out = String::with_capacity(8 * 1024);
    let mut shards: Vec<&ShardMetrics> = shards.iter().collect();
    shards.sort_by_key(|s| s.shard);

    header(
        &mut out,
        "shardlog_ready",
        "gauge",
        "1 when every shard takes writes and answers queries, and the server is not stopping.",
    );
    let _ = writeln!(out, "shardlog_ready {}", ready as u8);
    header(
        &mut out,
        "shardlog_shard_ready",
        "gauge",
        "1 when the shard takes every write (see shardlog_shard_not_ready for why not).",
    );
    for s in &shards {
        let _ = writeln!(
            out,
            "shardlog_shard_ready{{shard=\"{}\"}} {}",
            s.shard,
            u8::from(s.health.is_empty())
        );
    }
    header(
        &mut out,
        "shardlog_shard_not_ready",
        "gauge",
        "1 while the condition keeps the shard from taking writes: recovering, read_only (no \
         space for a WAL segment at start), disk_full, heads_full (behind on sealing), \
         wal_stopped (a failed write or fsync; needs a restart).",
    );
    for s in &shards {
        for reason in crate::shard::NotReady::NAMES {
            let holds = s.health.iter().any(|c| c.name() == reason);
            let _ = writeln!(
                out,
                "shardlog_shard_not_ready{{reason=\"{reason}\",shard=\"{}\"}} {}",
                s.shard,
                u8::from(holds)
            );
        }
    }

    header(
        &mut out,
        "shardlog_ingested_lines_total",
        "counter",
        "Lines made durable, by protocol and owner shard.",
    );
    for s in &shards {
        for p in Protocol::ALL {
            let _ = writeln!(
                out,
                "shardlog_ingested_lines_total{{protocol=\"{}\",shard=\"{}\"}} {}",
                p.name(),
                s.shard,
                s.ingested_lines[p as usize]
            );
        }
    }
    header(
        &mut out,
        "shardlog_ingested_bytes_total",
        "counter",
        "Line bytes made durable, by protocol and owner shard.",
    );
    for s in &shards {
        for p in Protocol::ALL {
            let _ = writeln!(
                out,
                "shardlog_ingested_bytes_total{{protocol=\"{}\",shard=\"{}\"}} {}",
                p.name(),
                s.shard,
                s.ingested_bytes[p as usize]
            );
        }
    }
    header(
        &mut out,
        "shardlog_discarded_lines_total",
        "counter",
        "Lines (or requests, where the line count is unknown) refused or thrown away, by reason.",
    );
    for r in DiscardReason::ALL {
        let total: u64 = shards.iter().map(|s| s.discarded[r as usize]).sum();
        let _ = writeln!(
            out,
            "shardlog_discarded_lines_total{{reason=\"{}\"}} {total}",
            r.name()
        );
    }
    tenant_series(&mut out, &shards);
    deletion_series(&mut out, &shards);
    per_shard(
        &mut out,
        &shards,
        "shardlog_duplicate_fingerprints",
        "gauge",
        "Fingerprints of recently sealed entries held for the duplicate check.",
        |s| s.storage.duplicate_fingerprints,
    );
    per_shard(
        &mut out,
        &shards,
        "shardlog_duplicate_fingerprints_evicted_total",
        "counter",
        "Fingerprints dropped by the memory bound before their window ended (the duplicate \
         check then reaches less far back than 5 minutes).",
        |s| s.storage.duplicate_fingerprints_evicted,
    );
    let sum = |f: fn(&ShardMetrics) -> u64| -> u64 { shards.iter().map(|s| f(s)).sum() };
    simple(
        &mut out,
        "shardlog_udp_dropped_total",
        "counter",
        "Syslog datagrams the kernel dropped because a socket buffer was full (from /proc/net/udp).",
        sum(|s| s.udp_kernel_drops),
    );
    simple(
        &mut out,
        "shardlog_udp_datagrams_total",
        "counter",
        "Syslog datagrams received.",
        sum(|s| s.udp_datagrams),
    );
    simple(
        &mut out,
        "shardlog_syslog_frames_truncated_total",
        "counter",
        "Syslog frames longer than the frame limit, stored cut to it.",
        sum(|s| s.frames_truncated),
    );
    simple(
        &mut out,
        "shardlog_invalid_utf8_lines_total",
        "counter",
        "Lines whose invalid UTF-8 was replaced with U+FFFD.",
        sum(|s| s.invalid_utf8_lines),
    );
    simple(
        &mut out,
        "shardlog_timestamps_clamped_total",
        "counter",
        "Entries whose timestamp was too far in the future, or (syslog) outside the accepted \
         range, and was set to the receive time.",
        sum(|s| s.timestamps_clamped),
    );

    per_shard(
        &mut out,
        &shards,
        "shardlog_streams",
        "gauge",
        "Streams resident in each shard's memory: written within stream_idle_period, or with unsealed entries.",
        |s| s.streams,
    );
    per_shard(
        &mut out,
        &shards,
        "shardlog_head_entries",
        "gauge",
        "Entries in the in-memory head chunks of each shard.",
        |s| s.head_entries,
    );
    per_shard(
        &mut out,
        &shards,
        "shardlog_tails",
        "gauge",
        "Live tails (/loki/api/v1/tail) registered with each shard.",
        |s| s.tails,
    );
    per_shard(
        &mut out,
        &shards,
        "shardlog_tail_dropped_entries_total",
        "counter",
        "Entries dropped for tails whose client read slower than its stream (reported to the client as dropped_entries).",
        |s| s.tail_dropped_entries,
    );
    type StorageSeries = (
        &'static str,
        &'static str,
        &'static str,
        fn(&StorageMetrics) -> u64,
    );
    let storage: [StorageSeries; 30] = [
        (
            "shardlog_unsealed_line_bytes",
            "gauge",
            "Line bytes in memory not yet sealed into parts.",
            |s| s.unsealed_line_bytes,
        ),
        (
            "shardlog_appends_waited_for_sealing_total",
            "counter",
            "Appends that waited because sealing was behind ingest (memory bound).",
            |s| s.appends_waited_for_sealing,
        ),
        (
            "shardlog_parts",
            "gauge",
            "Part files named by the shard's manifests.",
            |s| s.parts,
        ),
        (
            "shardlog_part_bytes",
            "gauge",
            "Bytes of the shard's part files.",
            |s| s.part_bytes,
        ),
        (
            "shardlog_part_resident_bytes",
            "gauge",
            "Bytes parts keep in memory beyond their footers (label names, index \
             directories); their metadata and blooms are in the part cache.",
            |s| s.part_resident_bytes,
        ),
        (
            "shardlog_parts_written_total",
            "counter",
            "Part files written (sealing and compaction).",
            |s| s.parts_written,
        ),
        (
            "shardlog_part_bytes_written_total",
            "counter",
            "Bytes of part files written.",
            |s| s.part_bytes_written,
        ),
        (
            "shardlog_sealed_entries_total",
            "counter",
            "Entries sealed from heads into parts.",
            |s| s.sealed_entries,
        ),
        (
            "shardlog_sealing_failed",
            "gauge",
            "1 while sealing fails (it is retried with backoff; the WAL keeps the data).",
            |s| u64::from(s.sealing_failed),
        ),
        (
            "shardlog_wal_early_seals_total",
            "counter",
            "Heads sealed before they were due, to keep the WAL under wal_bytes_max.",
            |s| s.wal_early_seals,
        ),
        (
            "shardlog_seal_failures_total",
            "counter",
            "Seal rounds that failed (EMFILE, ENOSPC, EIO on a new file) and were retried.",
            |s| s.seal_failures,
        ),
        (
            "shardlog_manifest_writes_total",
            "counter",
            "Atomic manifest replacements.",
            |s| s.manifest_writes,
        ),
        (
            "shardlog_wal_checkpoint_seq",
            "gauge",
            "WAL seq at or below which every record is in parts.",
            |s| s.wal_checkpoint,
        ),
        (
            "shardlog_quarantined_parts_total",
            "counter",
            "Corrupt parts moved to quarantine.",
            |s| s.quarantined_parts,
        ),
        (
            "shardlog_garbage_files_removed_total",
            "counter",
            "Unnamed files left by a crash, removed at start.",
            |s| s.garbage_files_removed,
        ),
        (
            "shardlog_compactions_total",
            "counter",
            "Compactions that replaced small parts with one.",
            |s| s.compactions,
        ),
        (
            "shardlog_compacted_parts_total",
            "counter",
            "Parts merged away by compaction.",
            |s| s.compacted_input_parts,
        ),
        (
            "shardlog_compaction_bytes_total",
            "counter",
            "Bytes read and written by compaction.",
            |s| s.compaction_bytes,
        ),
        (
            "shardlog_rewritten_parts_total",
            "counter",
            "Parts rewritten (or dropped) without lines a delete request or a tenant's \
             retention removed.",
            |s| s.rewritten_parts,
        ),
        (
            "shardlog_retention_dropped_parts_total",
            "counter",
            "Parts dropped by retention.",
            |s| s.retention_dropped_parts,
        ),
        (
            "shardlog_retention_dropped_entries_total",
            "counter",
            "Entries dropped by retention.",
            |s| s.retention_dropped_entries,
        ),
        (
            "shardlog_retention_dropped_bytes_total",
            "counter",
            "Part bytes dropped by retention.",
            |s| s.retention_dropped_bytes,
        ),
        (
            "shardlog_query_blocks_considered_total",
            "counter",
            "Part blocks of selected streams in a query's time range.",
            |s| s.blocks_considered,
        ),
        (
            "shardlog_query_blocks_skipped_by_bloom_total",
            "counter",
            "Of those, blocks a bloom filter ruled out.",
            |s| s.blocks_skipped_by_bloom,
        ),
        (
            "shardlog_query_blocks_skipped_by_metadata_index_total",
            "counter",
            "Of those, blocks the structured-metadata index ruled out.",
            |s| s.blocks_skipped_by_metadata_index,
        ),
        (
            "shardlog_query_blocks_scanned_total",
            "counter",
            "Part blocks read and decoded by queries.",
            |s| s.blocks_scanned,
        ),
        (
            "shardlog_query_line_bytes_scanned_total",
            "counter",
            "Line bytes of the part blocks decoded by queries.",
            |s| s.line_bytes_scanned,
        ),
        (
            "shardlog_query_scans_cancelled_total",
            "counter",
            "Shard scans stopped because their query was cancelled (client gone, timeout).",
            |s| s.scans_cancelled,
        ),
        (
            "shardlog_query_pauses_for_ingest_total",
            "counter",
            "Pauses scans took to leave a core busy with ingest to it (query_cpu_share_min).",
            |s| s.query_pauses_for_ingest,
        ),
        (
            "shardlog_query_paused_for_ingest_milliseconds_total",
            "counter",
            "Total length of those pauses.",
            |s| s.query_paused_for_ingest_ms,
        ),
    ];
    for (name, kind, help, get) in storage {
        per_shard(&mut out, &shards, name, kind, help, |s| get(&s.storage));
    }
    per_shard(
        &mut out,
        &shards,
        "shardlog_queries_total",
        "counter",
        "Query API requests received by each core.",
        |s| s.queries,
    );
    per_shard(
        &mut out,
        &shards,
        "shardlog_wal_bytes_written_total",
        "counter",
        "Bytes written to the WAL (whole blocks, padding included).",
        |s| s.wal.as_ref().map_or(0, |w| w.bytes_written),
    );
    per_shard(
        &mut out,
        &shards,
        "shardlog_wal_records_total",
        "counter",
        "WAL records appended.",
        |s| s.wal.as_ref().map_or(0, |w| w.records),
    );
    per_shard(
        &mut out,
        &shards,
        "shardlog_wal_commits_total",
        "counter",
        "WAL group commits (write + fdatasync).",
        |s| s.wal.as_ref().map_or(0, |w| w.commits),
    );
    per_shard(
        &mut out,
        &shards,
        "shardlog_wal_torn_tails_truncated_total",
        "counter",
        "Torn WAL tails truncated during recovery.",
        |s| s.wal.as_ref().map_or(0, |w| w.torn_tails_truncated),
    );
    per_shard(
        &mut out,
        &shards,
        "shardlog_wal_failed",
        "gauge",
        "1 when the shard's WAL stopped accepting writes after a failed write or fsync.",
        |s| s.wal.as_ref().is_some_and(|w| w.poisoned.is_some()) as u64,
    );

    edge(&mut out, &shards);
    memory(&mut out, &shards);

    let wal_histograms: [(&str, &str, WalHistogram); 2] = [
        (
            "shardlog_wal_fsync_seconds",
            "Duration of each WAL group commit's fdatasync.",
            |w| &w.fsync_latency,
        ),
        (
            "shardlog_wal_commit_seconds",
            "Duration of each WAL group commit: its direct write and fdatasync, as the core \
             sees them (acknowledgements wait for this).",
            |w| &w.commit_latency,
        ),
    ];
    for (name, help, pick) in wal_histograms {
        header(&mut out, name, "histogram", help);
        for s in &shards {
            if let Some(w) = &s.wal {
                histogram(&mut out, name, &format!("shard=\"{}\"", s.shard), pick(w));
            }
        }
    }
    header(
        &mut out,
        "shardlog_query_seconds",
        "histogram",
        "Duration of query API requests, by the core that received them.",
    );
    for s in &shards {
        histogram(
            &mut out,
            "shardlog_query_seconds",
            &format!("shard=\"{}\"", s.shard),
            &s.query_seconds,
        );
    }
    out
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn simple(out: &mut String, name: &str, kind: &str, help: &str, value: u64) {
    header(out, name, kind, help);
    let _ = writeln!(out, "{name} {value}");
}

fn per_shard(
    out: &mut String,
    shards: &[&ShardMetrics],
    name: &str,
    kind: &str,
    help: &str,
    f: impl Fn(&ShardMetrics) -> u64,
) {
    header(out, name, kind, help);
    for s in shards {
        let _ = writeln!(out, "{name}{{shard=\"{}\"}} {}", s.shard, f(s));
    }
}

/// Cumulative `_bucket` lines, then `_sum` and `_count`.
fn histogram(out: &mut String, name: &str, labels: &str, h: &HistogramSnapshot) {
    let mut cumulative = 0;
    for (bound, count) in h.bounds.iter().zip(&h.counts) {
        cumulative += count;
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {cumulative}");
    }
    let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", h.count);
    let _ = writeln!(out, "{name}_sum{{{labels}}} {}", h.sum);
    let _ = writeln!(out, "{name}_count{{{labels}}} {}", h.count);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{DISK_LATENCY_BUCKETS, Histogram, REQUEST_LATENCY_BUCKETS};

    #[test]
    fn renders_required_series() {
        let h = Histogram::new(DISK_LATENCY_BUCKETS);
        h.observe(0.002);
        let m = ShardMetrics {
            health: vec![crate::shard::NotReady::DiskFull("ENOSPC".into())],
            shard: 1,
            // By protocol rather than by position, so that a new protocol changes nothing.
            ingested_lines: std::array::from_fn(|i| match Protocol::ALL[i] {
                Protocol::SyslogTcp => 5,
                Protocol::LokiPush => 2,
                _ => 0,
            }),
            ingested_bytes: std::array::from_fn(|i| match Protocol::ALL[i] {
                Protocol::SyslogTcp => 50,
                Protocol::LokiPush => 20,
                _ => 0,
            }),
            discarded: std::array::from_fn(|i| match DiscardReason::ALL[i] {
                DiscardReason::InvalidRequest => 1,
                DiscardReason::Duplicate => 4,
                _ => 0,
            }),
            tenants: vec![(
                "team-a".into(),
                crate::shard::TenantCounts {
                    ingested_lines: 7,
                    ingested_bytes: 70,
                    discarded: std::array::from_fn(|i| match DiscardReason::ALL[i] {
                        DiscardReason::RateLimited => 9,
                        DiscardReason::DuplicateLabelNames => 2,
                        _ => 0,
                    }),
                    truncated_lines: 3,
                    truncated_bytes: 300,
                },
            )],
            active_streams: vec![("team-a".into(), 3)],
            frames_truncated: 0,
            invalid_utf8_lines: 0,
            timestamps_clamped: 0,
            udp_datagrams: 0,
            udp_kernel_drops: 3,
            queries: 0,
            query_seconds: Histogram::new(REQUEST_LATENCY_BUCKETS).snapshot(),
            streams: 2,
            head_entries: 7,
            tails: 0,
            tail_dropped_entries: 0,
            replayed_records: 0,
            replayed_entries: 0,
            wal: None,
            storage: StorageMetrics {
                quarantined_parts: 1,
                ..StorageMetrics::default()
            },
            edge: crate::metrics::edge::EdgeMetrics {
                http_requests_over_budget: 4,
                ..Default::default()
            },
            memory: crate::shard::MemoryMetrics {
                budget: Some(
                    crate::config::memory::plan(
                        crate::config::memory::MemoryAsked::default(),
                        2,
                        24 << 30,
                        33 << 20,
                    )
                    .unwrap(),
                ),
                heads_bytes: 1234,
                part_cache_bytes: 4096,
                ..Default::default()
            },
        };
        let mut other_core = m.clone();
        other_core.shard = 0;
        let text = render(&[m, other_core], true);
        assert!(
            text.contains("shardlog_memory_max_bytes 402653184"),
            "{text}"
        );
        assert!(text.contains("shardlog_memory_used_bytes{shard=\"1\",use=\"heads\"} 1234"));
        assert!(text.contains("shardlog_memory_used_bytes{shard=\"0\",use=\"part_cache\"} 4096"));
        assert!(text.contains("shardlog_part_cache_misses_total{shard=\"0\",kind=\"metadata\"} 0"));
        assert!(text.contains("shardlog_memory_budget_bytes{shard=\"1\",use=\"compaction\"}"));
        assert!(text.contains("shardlog_memory_resident_peak_bytes "));
        assert!(text.contains("shardlog_tenant_ingested_lines_total{tenant=\"team-a\"} 14"));
        assert!(text.contains("shardlog_tenant_active_streams{tenant=\"team-a\"} 6"));
        assert!(text.contains("shardlog_tenant_ingested_bytes_total{tenant=\"team-a\"} 140"));
        assert!(text.contains(
            "shardlog_tenant_discarded_lines_total{reason=\"rate_limited\",tenant=\"team-a\"} 18"
        ));
        assert!(text.contains(
            "shardlog_tenant_discarded_lines_total{reason=\"duplicate_label_names\",\
             tenant=\"team-a\"} 4"
        ));
        assert!(!text.contains("shardlog_tenant_discarded_lines_total{reason=\"duplicate\""));
        assert!(text.contains(
            "shardlog_tenant_mutated_lines_total{reason=\"line_too_long\",tenant=\"team-a\"} 6"
        ));
        assert!(text.contains(
            "shardlog_tenant_mutated_bytes_total{reason=\"line_too_long\",tenant=\"team-a\"} 600"
        ));
        assert!(
            text.contains("shardlog_ingested_lines_total{protocol=\"syslog_tcp\",shard=\"1\"} 5")
        );
        assert!(text.contains("shardlog_discarded_lines_total{reason=\"invalid_request\"} 2"));
        assert!(text.contains("shardlog_discarded_lines_total{reason=\"duplicate\"} 8"));
        assert!(text.contains("shardlog_duplicate_fingerprints{shard=\"1\"} 0"));
        assert!(text.contains("shardlog_udp_dropped_total 6"));
        assert!(text.contains("shardlog_quarantined_parts_total{shard=\"1\"} 1"));
        assert!(text.contains("# TYPE shardlog_wal_fsync_seconds histogram"));
        assert!(text.contains("# TYPE shardlog_wal_commit_seconds histogram"));
        assert!(text.contains("shardlog_http_requests_over_budget_total{shard=\"1\"} 4"));
        assert!(text.contains("shardlog_connections_open{listener=\"syslog_tcp\",shard=\"1\"} 0"));
        assert!(text.contains("shardlog_shard_ready{shard=\"1\"} 0"));
        assert!(text.contains("shardlog_shard_not_ready{reason=\"disk_full\",shard=\"1\"} 1"));
        assert!(text.contains("shardlog_shard_not_ready{reason=\"heads_full\",shard=\"1\"} 0"));
        let _ = h;
    }
}

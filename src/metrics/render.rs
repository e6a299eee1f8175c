//! Renders the shards' metric snapshots in the Prometheus text exposition format.
//! Every name is prefixed `shardlog_`; per-shard series carry a `shard` label.

use std::fmt::Write;

use super::HistogramSnapshot;
use super::edge::{ListenerKind, ListenerMetrics};
use crate::shard::{DiscardReason, Protocol, ShardMetrics, StorageMetrics};

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

/// Connections per listener and the request budget of each core.
fn edge(out: &mut String, shards: &[&ShardMetrics]) {
    type ListenerSeries = (
        &'static str,
        &'static str,
        &'static str,
        fn(&ListenerMetrics) -> u64,
    );
    let listeners: [ListenerSeries; 7] = [
        (
            "shardlog_connections_open",
            "gauge",
            "Connections open, by listener and core (one cap per core covers both listeners).",
            |l| l.connections_open,
        ),
        (
            "shardlog_connections_accepted_total",
            "counter",
            "Connections accepted, by listener and core.",
            |l| l.connections_accepted,
        ),
        (
            "shardlog_accept_errors_total",
            "counter",
            "Failed accept calls (EMFILE, ENFILE, aborted connections), by listener and core.",
            |l| l.accept_errors,
        ),
        (
            "shardlog_accept_paused_total",
            "counter",
            "Times a listener stopped accepting because the core's connection cap was reached.",
            |l| l.accept_paused_at_cap,
        ),
        (
            "shardlog_connections_closed_over_budget_total",
            "counter",
            "Syslog connections closed because their long frame found no room in the core's \
             request budget.",
            |l| l.closed_over_budget,
        ),
        (
            "shardlog_connections_paused_for_writes_total",
            "counter",
            "Times a connection stopped being read while a shard refused writes for a while \
             (a full disk, unsealed lines over budget).",
            |l| l.paused_for_writes,
        ),
        (
            "shardlog_connections_paused_for_rate_total",
            "counter",
            "Times a syslog connection stopped being read while its tenant was over its \
             ingestion rate.",
            |l| l.paused_for_rate,
        ),
    ];
    for (name, kind, help, get) in listeners {
        header(out, name, kind, help);
        for s in shards {
            for (i, k) in ListenerKind::ALL.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "{name}{{listener=\"{}\",shard=\"{}\"}} {}",
                    k.name(),
                    s.shard,
                    get(&s.edge.listeners[i])
                );
            }
        }
    }
    type Get = fn(&super::edge::EdgeMetrics) -> u64;
    let relp_tls: [(&str, &str, Get); 6] = [
        (
            "shardlog_relp_acknowledged_total",
            "RELP syslog commands answered 200 OK, each once its line was durable.",
            |e| e.relp_acknowledged,
        ),
        (
            "shardlog_relp_refused_total",
            "RELP commands answered 500 (a refused batch, a command out of place or unknown).",
            |e| e.relp_refused,
        ),
        (
            "shardlog_relp_broken_frames_total",
            "RELP connections closed because their bytes were not RELP frames.",
            |e| e.relp_broken_frames,
        ),
        (
            "shardlog_tls_handshake_failures_total",
            "TLS handshakes of the syslog and RELP listeners that failed or timed out.",
            |e| e.tls_handshake_failures,
        ),
        (
            "shardlog_tls_reloads_total",
            "Times a core took a changed TLS certificate, key or client CA into use.",
            |e| e.tls_reloads,
        ),
        (
            "shardlog_tls_reload_failures_total",
            "Times changed TLS files could not be used; the previous certificate stayed.",
            |e| e.tls_reload_failures,
        ),
    ];
    for (name, help, get) in relp_tls {
        per_shard(out, shards, name, "counter", help, |s| get(&s.edge));
    }
    per_shard(
        out,
        shards,
        "shardlog_http_requests_total",
        "counter",
        "HTTP requests read completely and handed to a handler.",
        |s| s.edge.http_requests,
    );
    per_shard(
        out,
        shards,
        "shardlog_http_requests_rejected_total",
        "counter",
        "HTTP requests refused by the connection layer (400, 408, 413, 417, 431, 501).",
        |s| s.edge.http_requests_rejected,
    );
    per_shard(
        out,
        shards,
        "shardlog_http_requests_over_budget_total",
        "counter",
        "HTTP requests answered 503 because the core's budget for unfinished request bodies \
         had no room for them.",
        |s| s.edge.http_requests_over_budget,
    );
    per_shard(
        out,
        shards,
        "shardlog_http_requests_abandoned_total",
        "counter",
        "Read requests whose client closed the connection before the answer; their query is \
         cancelled on every core.",
        |s| s.edge.http_requests_abandoned,
    );
    per_shard(
        out,
        shards,
        "shardlog_request_body_bytes_held",
        "gauge",
        "Bytes of unfinished request bodies (and long syslog frames) charged to the core's \
         budget.",
        |s| s.edge.body_bytes_held,
    );
}

/// The memory budget (`memory_max`), each core's shares of it and what they hold now, and
/// the process's resident memory beside them.
fn memory(out: &mut String, shards: &[&ShardMetrics]) {
    if let Some(b) = shards.iter().find_map(|s| s.memory.budget) {
        simple(
            out,
            "shardlog_memory_max_bytes",
            "gauge",
            "The memory budget of the process (memory_max).",
            b.memory_max,
        );
    }
    let (resident, peak) = process_resident_bytes();
    simple(
        out,
        "shardlog_memory_resident_bytes",
        "gauge",
        "Resident memory of the process now (VmRSS).",
        resident,
    );
    simple(
        out,
        "shardlog_memory_resident_peak_bytes",
        "gauge",
        "The most resident memory the process has had (VmHWM).",
        peak,
    );
    header(
        out,
        "shardlog_memory_budget_bytes",
        "gauge",
        "Each core's share of memory_max by use, at its worst-case cost: base, heads (live \
         and sealing heads, their slack and encoded parts), requests, queries (one query's \
         states), part_cache (part metadata and blooms) and compaction (one merge).",
    );
    for s in shards {
        let Some(b) = s.memory.budget else { continue };
        for (name, bytes) in b.charges() {
            let _ = writeln!(
                out,
                "shardlog_memory_budget_bytes{{shard=\"{}\",use=\"{name}\"}} {bytes}",
                s.shard
            );
        }
    }
    header(
        out,
        "shardlog_memory_used_bytes",
        "gauge",
        "What each core holds now, by use: heads (unsealed entries, live and sealing), \
         requests (unfinished bodies), part_cache (part metadata, blooms and label summaries read \
         lately), parts (what parts keep resident: label names, index directories), \
         fingerprints (the duplicate check's record of recently sealed entries).",
    );
    for s in shards {
        let m = &s.memory;
        for (name, bytes) in [
            ("heads", m.heads_bytes),
            ("requests", m.requests_bytes),
            ("part_cache", m.part_cache_bytes),
            ("parts", m.part_resident_bytes),
            ("fingerprints", m.fingerprints_bytes),
        ] {
            let _ = writeln!(
                out,
                "shardlog_memory_used_bytes{{shard=\"{}\",use=\"{name}\"}} {bytes}",
                s.shard
            );
        }
    }
    for (name, help, get) in [
        (
            "shardlog_part_cache_hits_total",
            "Part metadata, bloom regions and label summaries a reader found in the core's part cache.",
            (|m| m.part_cache_hits)
                as fn(&crate::shard::MemoryMetrics) -> [u64; crate::shard::PART_CACHE_KINDS],
        ),
        (
            "shardlog_part_cache_misses_total",
            "Part metadata, bloom regions and label summaries a reader read or built from their part file.",
            |m| m.part_cache_misses,
        ),
        (
            "shardlog_part_cache_evictions_total",
            "Part metadata, bloom regions and label summaries dropped from the part cache to make room.",
            |m| m.part_cache_evictions,
        ),
    ] {
        header(out, name, "counter", help);
        for s in shards {
            for (kind, n) in crate::store::part_cache::Kind::ALL
                .iter()
                .map(|k| k.name())
                .zip(get(&s.memory))
            {
                let _ = writeln!(out, "{name}{{shard=\"{}\",kind=\"{kind}\"}} {n}", s.shard);
            }
        }
    }
}

/// The process's resident bytes now and at most (`VmRSS`, `VmHWM`); 0 where unknown.
fn process_resident_bytes() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kib| kib * 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn simple(out: &mut String, name: &str, kind: &str, help: &str, value: u64) {
    header(out, name, kind, help);
    let _ = writeln!(out, "{name} {value}");
}

/// Per-tenant lines ingested and discarded, summed over cores. Tenant ids are validated
/// (no quotes, backslashes or newlines), so they stand in label values as they are.
fn tenant_series(out: &mut String, shards: &[&ShardMetrics]) {
    let mut sums: std::collections::BTreeMap<&str, crate::shard::TenantCounts> = Default::default();
    for s in shards {
        for (tenant, c) in &s.tenants {
            let sum = sums.entry(tenant.as_str()).or_default();
            sum.ingested_lines += c.ingested_lines;
            sum.ingested_bytes += c.ingested_bytes;
            for (total, n) in sum.discarded.iter_mut().zip(c.discarded) {
                *total += n;
            }
            sum.truncated_lines += c.truncated_lines;
            sum.truncated_bytes += c.truncated_bytes;
        }
    }
    for (name, help, get) in [
        (
            "shardlog_tenant_ingested_lines_total",
            "Lines made durable, by tenant.",
            (|c| c.ingested_lines) as fn(&crate::shard::TenantCounts) -> u64,
        ),
        (
            "shardlog_tenant_ingested_bytes_total",
            "Line bytes made durable, by tenant.",
            |c| c.ingested_bytes,
        ),
    ] {
        header(out, name, "counter", help);
        for (tenant, c) in &sums {
            let _ = writeln!(out, "{name}{{tenant=\"{tenant}\"}} {}", get(c));
        }
    }
    let mut active: std::collections::BTreeMap<&str, u64> = Default::default();
    for s in shards {
        for (tenant, n) in &s.active_streams {
            *active.entry(tenant.as_str()).or_default() += n;
        }
    }
    let name = "shardlog_tenant_active_streams";
    header(
        out,
        name,
        "gauge",
        "Streams written within the idle period (Loki's stream limit's count), by tenant.",
    );
    for (tenant, n) in &active {
        let _ = writeln!(out, "{name}{{tenant=\"{tenant}\"}} {n}");
    }
    let name = "shardlog_tenant_discarded_lines_total";
    header(
        out,
        name,
        "counter",
        "Lines (or requests, where the line count is unknown) refused or thrown away, by \
         tenant and reason (Loki's reason names where Loki has them).",
    );
    for (tenant, c) in &sums {
        for r in DiscardReason::ALL {
            let n = c.discarded[r as usize];
            if n > 0 {
                let _ = writeln!(
                    out,
                    "{name}{{reason=\"{}\",tenant=\"{tenant}\"}} {n}",
                    r.name()
                );
            }
        }
    }
    // Loki's `loki_mutated_samples_total` and `loki_mutated_bytes_total`: lines stored
    // changed. Cutting a line to `max_line_size` is the one change made, under Loki's reason
    // for it.
    for (name, help, get) in [
        (
            "shardlog_tenant_mutated_lines_total",
            "Lines stored changed, by tenant and reason (line_too_long: cut to max_line_size).",
            (|c| c.truncated_lines) as fn(&crate::shard::TenantCounts) -> u64,
        ),
        (
            "shardlog_tenant_mutated_bytes_total",
            "Bytes taken off lines stored changed, by tenant and reason.",
            |c| c.truncated_bytes,
        ),
    ] {
        header(out, name, "counter", help);
        for (tenant, c) in &sums {
            let n = get(c);
            if n > 0 {
                let _ = writeln!(
                    out,
                    "{name}{{reason=\"{}\",tenant=\"{tenant}\"}} {n}",
                    DiscardReason::LineTooLong.name()
                );
            }
        }
    }
}

/// Per-tenant delete requests and lines removed by deletion and retention, summed over
/// cores (Loki's compactor has `loki_compactor_delete_requests_received_total{user}` and
/// the lines deleted per user).
fn deletion_series(out: &mut String, shards: &[&ShardMetrics]) {
    let mut sums: std::collections::BTreeMap<&str, crate::shard::DeletionCounts> =
        Default::default();
    for s in shards {
        for (tenant, c) in &s.storage.deletion {
            let sum = sums.entry(tenant.as_str()).or_default();
            sum.requests_received += c.requests_received;
            sum.deleted_lines += c.deleted_lines;
            sum.retention_dropped_lines += c.retention_dropped_lines;
        }
    }
    for (name, help, get) in [
        (
            "shardlog_delete_requests_received_total",
            "Delete requests received, by tenant.",
            (|c| c.requests_received) as fn(&crate::shard::DeletionCounts) -> u64,
        ),
        (
            "shardlog_deleted_lines_total",
            "Lines removed from part files by delete requests, by tenant.",
            |c| c.deleted_lines,
        ),
        (
            "shardlog_retention_dropped_lines_total",
            "Lines removed from part files by the tenant's retention, by tenant.",
            |c| c.retention_dropped_lines,
        ),
    ] {
        header(out, name, "counter", help);
        for (tenant, c) in &sums {
            let _ = writeln!(out, "{name}{{tenant=\"{tenant}\"}} {}", get(c));
        }
    }
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

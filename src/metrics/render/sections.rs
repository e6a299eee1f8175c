//! The page's larger sections: the edge (connections per listener, each core's request
//! budget), the memory budget and its shares, and the per-tenant and deletion series.

use super::*;

/// Connections per listener and the request budget of each core.
pub(super) fn edge(out: &mut String, shards: &[&ShardMetrics]) {
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
    type Get = fn(&crate::metrics::edge::EdgeMetrics) -> u64;
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
pub(super) fn memory(out: &mut String, shards: &[&ShardMetrics]) {
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
pub(super) fn process_resident_bytes() -> (u64, u64) {
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

/// Per-tenant lines ingested and discarded, summed over cores. Tenant ids are validated
/// (no quotes, backslashes or newlines), so they stand in label values as they are.
pub(super) fn tenant_series(out: &mut String, shards: &[&ShardMetrics]) {
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
pub(super) fn deletion_series(out: &mut String, shards: &[&ShardMetrics]) {
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

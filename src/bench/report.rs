//! The report of a run: every figure in one serialisable [`Report`], written as
//! `report.json` (machine-readable), `report.md` (tables a person reads, with the charts)
//! and printed as a summary table on stdout.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::BenchError;
use super::machine::Machine;
use super::stats::{LatencySummary, Second, SourceTotals, format_us};
use super::verify::Check;

/// Error messages kept in the report: the first few say what went wrong; thousands of the
/// same would bury it.
pub const ERRORS_SHOWN_MAX: usize = 10;

/// What the server process cost and left behind. Every field is optional: an existing
/// server (no `--spawn`) cannot be measured from `/proc`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ServerFigures {
    pub spawned: bool,
    pub version: Option<String>,
    pub cores: Option<usize>,
    /// User + system CPU seconds during the load and its verification.
    pub cpu_seconds: Option<f64>,
    pub cpu_seconds_per_million_lines: Option<f64>,
    /// `cpu_seconds` over the run's seconds, in percent of one CPU.
    pub cpu_busy_percent: Option<f64>,
    /// Peak resident set size (VmHWM) at the end of the run.
    pub peak_rss_bytes: Option<u64>,
    /// `du` of the data directory after the server stopped (preallocated WAL segments
    /// included).
    pub bytes_on_disk: Option<u64>,
    pub bytes_on_disk_apparent: Option<u64>,
    pub bytes_on_disk_per_line: Option<f64>,
    /// Bytes the WAL wrote (its own counter), per stored line: the durable cost of a line.
    pub wal_bytes_written: Option<u64>,
    pub wal_bytes_per_line: Option<f64>,
    /// Which CPUs the server's threads were allowed to run on, read back from `/proc`.
    pub thread_placement: Option<String>,
    pub exit: Option<String>,
    pub exit_clean: Option<bool>,
}

/// One query kind's figures.
#[derive(Clone, Debug, Serialize)]
pub struct QueryLatency {
    pub queries: u64,
    pub errors: u64,
    #[serde(flatten)]
    pub latency: LatencySummary,
    /// Percentile distribution `(percentile, µs)`.
    pub curve: Vec<(f64, u64)>,
}

/// One round of one server (several with `--compare`).
#[derive(Clone, Debug, Serialize)]
pub struct RoundSummary {
    pub round: usize,
    pub server: &'static str,
    pub run_id: String,
    pub lines_sent: u64,
    pub lines_stored: u64,
    pub seconds: f64,
    pub lines_per_sec: f64,
    pub cpu_seconds: Option<f64>,
    /// CPU seconds per second of the round, in percent of one CPU: near 100% per core the
    /// server is the bottleneck, well below it the senders are.
    pub cpu_busy_percent: Option<f64>,
    pub peak_rss_bytes: Option<u64>,
    pub passed: bool,
    pub note: String,
}

/// The comparison with another server.
#[derive(Clone, Debug, Serialize)]
pub struct Comparison {
    pub against: &'static str,
    pub shardlog_lines_per_sec: f64,
    pub other_lines_per_sec: f64,
    /// shardlog / other: above 1 means shardlog was faster.
    pub ratio: f64,
    /// What the other server lost, if anything (it does not fail the run).
    pub other_losses: Vec<String>,
    pub how: String,
}

/// How the run was set up.
#[derive(Clone, Debug, Serialize)]
pub struct Setup {
    pub command_line: String,
    pub target: String,
    pub duration_seconds: f64,
    pub count: Option<u64>,
    pub connections: usize,
    pub rate_lines_per_sec: Option<u64>,
    pub line_source: String,
    pub streams: usize,
    pub batch: usize,
    pub encoding: String,
    pub syslog_format: String,
    pub framing: String,
    pub server_cores: Option<usize>,
    pub server_cpus: Option<Vec<usize>>,
    pub client_cpus: Option<Vec<usize>>,
    pub machine: Machine,
}

/// Every figure of a run.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub scenario: &'static str,
    pub passed: bool,
    pub verdict: String,
    pub run_id: String,
    pub started_at: String,
    pub lines_sent: u64,
    pub lines_acked: u64,
    pub lines_stored: u64,
    /// Stored lines per second, from the start of the load until the last line was
    /// acknowledged (push) or stored (syslog).
    pub lines_per_sec: f64,
    /// Bytes of log line text (the payload) per second, at the same rate.
    pub bytes_per_sec: f64,
    /// Bytes on the wire per second (framing, JSON or protobuf+snappy included).
    pub wire_bytes_per_sec: f64,
    pub seconds: f64,
    pub errors: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ack_latency_us: Option<LatencySummary>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ack_latency_curve: Vec<(f64, u64)>,
    pub query_latency_us: BTreeMap<String, QueryLatency>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metric_queries_skipped: Option<String>,
    pub server: ServerFigures,
    pub sources: BTreeMap<String, SourceTotals>,
    pub verification: Vec<Check>,
    pub rounds: Vec<RoundSummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compare: Option<Comparison>,
    pub setup: Setup,
    pub timeline: Vec<Second>,
    pub first_errors: Vec<String>,
    pub charts: Vec<String>,
}

/// Writes `report.json` and `report.md` into `dir` (the charts are drawn before, and named
/// in `report.charts`); returns the markdown path.
pub fn write(dir: &Path, report: &Report) -> Result<PathBuf, BenchError> {
    let json = serde_json::to_string_pretty(report)
        .map_err(|e| BenchError::new(format!("serialise the report: {e}")))?;
    let write = |name: &str, text: &str| -> Result<PathBuf, BenchError> {
        let p = dir.join(name);
        std::fs::write(&p, text)
            .map_err(|e| BenchError::new(format!("write {}: {e}", p.display())))?;
        Ok(p)
    };
    write("report.json", &json)?;
    write("report.md", &markdown(report))
}

/// `1234567` -> `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub fn format_bytes(b: f64) -> String {
    const KIB: f64 = 1024.0;
    if b >= KIB * KIB * KIB {
        format!("{:.2} GiB", b / (KIB * KIB * KIB))
    } else if b >= KIB * KIB {
        format!("{:.1} MiB", b / (KIB * KIB))
    } else if b >= KIB {
        format!("{:.1} KiB", b / KIB)
    } else {
        format!("{b:.0} B")
    }
}

fn opt<T>(v: Option<T>, f: impl Fn(T) -> String) -> String {
    v.map_or_else(|| "n/a".to_string(), f)
}

fn latency_cells(l: &LatencySummary) -> String {
    format!(
        "{} | {} | {} | {} | {}",
        format_us(l.p50),
        format_us(l.p90),
        format_us(l.p99),
        format_us(l.p999),
        format_us(l.max)
    )
}

/// The summary table: what stdout shows at the end and the report opens with.
pub fn summary_table(r: &Report) -> String {
    let mut t = String::from("| figure | value |\n|---|---|\n");
    let mut row = |k: &str, v: String| {
        let _ = writeln!(t, "| {k} | {v} |");
    };
    row("scenario", r.scenario.to_string());
    row(
        "verification",
        format!("{} — {}", if r.passed { "PASS" } else { "FAIL" }, r.verdict),
    );
    row("lines sent", thousands(r.lines_sent));
    row("lines acknowledged", thousands(r.lines_acked));
    row("lines stored", thousands(r.lines_stored));
    row(
        "throughput",
        format!("{} lines/s", thousands(r.lines_per_sec.round() as u64)),
    );
    row(
        "bandwidth",
        format!(
            "{:.1} MB/s of log lines, {:.1} MB/s on the wire",
            r.bytes_per_sec / 1e6,
            r.wire_bytes_per_sec / 1e6
        ),
    );
    if let Some(a) = &r.ack_latency_us {
        row(
            "push ack latency p50 / p90 / p99 / p99.9 / max",
            latency_cells(a).replace(" | ", " / "),
        );
    }
    for (kind, q) in &r.query_latency_us {
        row(
            &format!("query `{kind}` p50 / p99 ({} queries)", q.queries),
            format!(
                "{} / {}",
                format_us(q.latency.p50),
                format_us(q.latency.p99)
            ),
        );
    }
    let cpu_label = if r.query_latency_us.is_empty() {
        "server CPU per million lines"
    } else {
        "server CPU per million lines (queries included)"
    };
    row(
        cpu_label,
        opt(r.server.cpu_seconds_per_million_lines, |v| {
            format!("{v:.2} s")
        }),
    );
    row(
        "server CPU busy",
        opt(r.server.cpu_busy_percent, |v| format!("{v:.0}% of one CPU")),
    );
    row(
        "server peak RSS",
        opt(r.server.peak_rss_bytes, |v| format_bytes(v as f64)),
    );
    row(
        "bytes on disk per line",
        opt(r.server.bytes_on_disk_per_line, |v| format!("{v:.0} B")),
    );
    row(
        "WAL bytes written per line",
        opt(r.server.wal_bytes_per_line, |v| format!("{v:.0} B")),
    );
    if let Some(c) = &r.compare {
        row(
            &format!("vs {}", c.against),
            format!(
                "shardlog {} lines/s, {} {} lines/s, ratio {:.2}",
                thousands(c.shardlog_lines_per_sec.round() as u64),
                c.against,
                thousands(c.other_lines_per_sec.round() as u64),
                c.ratio
            ),
        );
        if !c.other_losses.is_empty() {
            row(&format!("{} losses", c.against), c.other_losses.join("; "));
        }
    }
    row("errors", thousands(r.errors));
    t
}

/// The whole markdown report.
pub fn markdown(r: &Report) -> String {
    let mut m = String::new();
    let _ = writeln!(m, "# shardlog bench: {}\n", r.scenario);
    let _ = writeln!(
        m,
        "Run `{}`, started {}. Verification: **{}** — {}.\n",
        r.run_id,
        r.started_at,
        if r.passed { "PASS" } else { "FAIL" },
        r.verdict
    );
    m.push_str("## Figures\n\n");
    m.push_str(&summary_table(r));
    m.push_str(
        "\nThroughput counts stored lines from the start of the load until the last one was \
         acknowledged (push) or stored (syslog). \"Acknowledged\" is a push answered 2xx, or a \
         syslog TCP frame written whole to the socket (the protocol has no acknowledgement).\n\n",
    );

    m.push_str(
        "## Verification\n\nThrough `/loki/api/v1/index/stats` over this run's streams only.\n\n",
    );
    m.push_str("| source | selector | expected | stored | streams | kernel drops | result |\n|---|---|---|---|---|---|---|\n");
    for c in &r.verification {
        let expected = if c.expected_min == c.expected_max {
            thousands(c.expected_min)
        } else {
            format!(
                "{} – {}",
                thousands(c.expected_min),
                thousands(c.expected_max)
            )
        };
        let _ = writeln!(
            m,
            "| {} | `{}` | {expected} | {} | {} | {} | {} |",
            c.source,
            c.selector,
            thousands(c.stored),
            c.streams_stored,
            opt(c.kernel_drops, thousands),
            c.message
        );
    }
    m.push('\n');

    if !r.sources.is_empty() {
        m.push_str("## Traffic by source\n\n| source | lines sent | acked | refused | unknown | line bytes | wire bytes | requests/writes | errors |\n|---|---|---|---|---|---|---|---|---|\n");
        for (name, t) in &r.sources {
            let _ = writeln!(
                m,
                "| {name} | {} | {} | {} | {} | {} | {} | {} | {} |",
                thousands(t.lines_sent),
                if name == "push" {
                    thousands(t.lines_acked)
                } else {
                    "–".to_string()
                },
                thousands(t.lines_refused),
                thousands(t.lines_unknown),
                format_bytes(t.line_bytes as f64),
                format_bytes(t.wire_bytes as f64),
                thousands(t.requests),
                thousands(t.errors)
            );
        }
        m.push('\n');
    }

    if let Some(a) = &r.ack_latency_us {
        m.push_str("## Push acknowledgement latency\n\nFrom the first byte of the request to the last byte of the `204`, per request (HDR histogram).\n\n");
        m.push_str(
            "| requests | p50 | p90 | p99 | p99.9 | max | mean |\n|---|---|---|---|---|---|---|\n",
        );
        let _ = writeln!(
            m,
            "| {} | {} | {} |\n",
            thousands(a.count),
            latency_cells(a),
            format_us(a.mean.round() as u64)
        );
    }
    if !r.query_latency_us.is_empty() || r.metric_queries_skipped.is_some() {
        m.push_str("## Query latency by kind\n\nRange queries over the run's push streams while the ingest runs.\n\n");
        m.push_str("| kind | queries | errors | p50 | p90 | p99 | p99.9 | max |\n|---|---|---|---|---|---|---|---|\n");
        for (kind, q) in &r.query_latency_us {
            let _ = writeln!(
                m,
                "| {kind} | {} | {} | {} |",
                thousands(q.queries),
                thousands(q.errors),
                latency_cells(&q.latency)
            );
        }
        if let Some(why) = &r.metric_queries_skipped {
            let _ = writeln!(m, "\nMetric queries were skipped: {why}");
        }
        m.push('\n');
    }

    if let Some(c) = &r.compare {
        let _ = writeln!(m, "## Comparison with {}\n\n{}\n", c.against, c.how);
        m.push_str("| round | server | lines sent | lines stored | seconds | lines/s | CPU s | CPU busy | peak RSS | note |\n|---|---|---|---|---|---|---|---|---|---|\n");
        for s in &r.rounds {
            let _ = writeln!(
                m,
                "| {} | {} | {} | {} | {:.2} | {} | {} | {} | {} | {} |",
                s.round,
                s.server,
                thousands(s.lines_sent),
                thousands(s.lines_stored),
                s.seconds,
                thousands(s.lines_per_sec.round() as u64),
                opt(s.cpu_seconds, |v| format!("{v:.2}")),
                opt(s.cpu_busy_percent, |v| format!("{v:.0}%")),
                opt(s.peak_rss_bytes, |v| format_bytes(v as f64)),
                s.note
            );
        }
        let _ = writeln!(
            m,
            "\n**shardlog {} lines/s vs {} {} lines/s: ratio {:.2}.**\n",
            thousands(c.shardlog_lines_per_sec.round() as u64),
            c.against,
            thousands(c.other_lines_per_sec.round() as u64),
            c.ratio
        );
    }

    if !r.charts.is_empty() {
        m.push_str("## Charts\n\n");
        for c in &r.charts {
            let _ = writeln!(m, "![{c}]({c})\n");
        }
    }

    m.push_str("## Setup\n\n| item | value |\n|---|---|\n");
    let s = &r.setup;
    let mut row = |k: &str, v: String| {
        let _ = writeln!(m, "| {k} | {v} |");
    };
    row("command", format!("`{}`", s.command_line));
    row("target", s.target.clone());
    row("machine", s.machine.describe());
    row(
        "server",
        format!(
            "shardlog {}, {} cores, threads: {}",
            r.server.version.as_deref().unwrap_or("unknown version"),
            opt(r.server.cores.or(s.server_cores), |c| c.to_string()),
            r.server
                .thread_placement
                .as_deref()
                .unwrap_or("not measured")
        ),
    );
    row(
        "server CPUs requested",
        opt(s.server_cpus.as_ref(), |c| format!("{c:?}")),
    );
    row(
        "client CPUs",
        opt(s.client_cpus.as_ref(), |c| format!("{c:?}")).replace("n/a", "not pinned"),
    );
    let time_bound = format!("{:.1} s", s.duration_seconds);
    row(
        "bounds",
        match s.count {
            Some(c) if s.duration_seconds >= super::options::DURATION_MAX.as_secs_f64() => {
                format!("{} lines (and at most {time_bound})", thousands(c))
            }
            Some(c) => format!(
                "{time_bound} or {} lines, whichever comes first",
                thousands(c)
            ),
            None => time_bound,
        },
    );
    row(
        "rate",
        opt(s.rate_lines_per_sec, |r| {
            format!("{} lines/s", thousands(r))
        })
        .replace("n/a", "unlimited"),
    );
    row("connections", s.connections.to_string());
    row("lines", s.line_source.clone());
    row("streams", s.streams.to_string());
    row(
        "batch",
        format!("{} lines per push request / syslog write", s.batch),
    );
    row("push encoding", s.encoding.clone());
    row(
        "syslog",
        format!("{}, {} framing", s.syslog_format, s.framing),
    );
    row(
        "server exit",
        r.server.exit.clone().unwrap_or_else(|| "n/a".into()),
    );
    m.push('\n');

    if !r.first_errors.is_empty() {
        let _ = writeln!(
            m,
            "## Errors ({} in all; the first {})\n",
            thousands(r.errors),
            r.first_errors.len()
        );
        for e in &r.first_errors {
            let _ = writeln!(m, "- {e}");
        }
        m.push('\n');
    }
    m
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A report with every section filled, for the writing tests here and in `charts`.
    pub(crate) fn sample() -> Report {
        let lat = LatencySummary {
            count: 10,
            p50: 800,
            p90: 1200,
            p99: 1900,
            p999: 2500,
            max: 4000,
            mean: 900.0,
        };
        let mut queries = BTreeMap::new();
        queries.insert(
            "label".to_string(),
            QueryLatency {
                queries: 12,
                errors: 0,
                latency: lat,
                curve: vec![(0.0, 100), (50.0, 800), (99.0, 1900), (100.0, 4000)],
            },
        );
        let mut sources = BTreeMap::new();
        sources.insert(
            "push".to_string(),
            SourceTotals {
                lines_sent: 1000,
                lines_acked: 1000,
                ..Default::default()
            },
        );
        Report {
            scenario: "push",
            passed: true,
            verdict: "no loss".into(),
            run_id: "bench-x".into(),
            started_at: "2025-01-01T00:00:00Z".into(),
            lines_sent: 1000,
            lines_acked: 1000,
            lines_stored: 1000,
            lines_per_sec: 123456.7,
            bytes_per_sec: 2.5e7,
            wire_bytes_per_sec: 3e7,
            seconds: 1.5,
            errors: 0,
            ack_latency_us: Some(lat),
            ack_latency_curve: vec![
                (0.0, 100),
                (50.0, 800),
                (90.0, 1200),
                (99.0, 1900),
                (100.0, 4000),
            ],
            query_latency_us: queries,
            metric_queries_skipped: Some("the server answered 400".into()),
            server: ServerFigures {
                spawned: true,
                peak_rss_bytes: Some(50 << 20),
                cpu_seconds_per_million_lines: Some(2.5),
                ..Default::default()
            },
            sources,
            verification: vec![Check {
                source: "push",
                selector: r#"{bench_run="bench-x"}"#.into(),
                expected_min: 1000,
                expected_max: 1000,
                stored: 1000,
                streams_stored: 8,
                kernel_drops: None,
                passed: true,
                message: "all 1000 lines stored, no loss".into(),
                stored_after_ms: Some(1500),
            }],
            rounds: Vec::new(),
            compare: None,
            setup: Setup {
                command_line: "shardlog bench push --spawn".into(),
                target: "spawned".into(),
                duration_seconds: 10.0,
                count: Some(1000),
                connections: 4,
                rate_lines_per_sec: None,
                line_source: "generated".into(),
                streams: 8,
                batch: 1000,
                encoding: "protobuf".into(),
                syslog_format: "rfc5424".into(),
                framing: "octet".into(),
                server_cores: Some(1),
                server_cpus: Some(vec![0]),
                client_cpus: None,
                machine: Machine::read(),
            },
            timeline: vec![Second {
                t: 1.0,
                lines_sent: 600,
                lines_acked: 600,
                line_bytes: 60_000,
                errors: 0,
                p99_us: 1900,
            }],
            first_errors: vec!["push answered 500: boom".into()],
            charts: vec!["throughput.svg".into()],
        }
    }

    #[test]
    fn json_has_the_required_keys() {
        let dir = tempfile::tempdir().unwrap();
        let md = write(dir.path(), &sample()).unwrap();
        assert!(md.ends_with("report.md"));
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join("report.json")).unwrap())
                .unwrap();
        for key in [
            "scenario",
            "lines_sent",
            "lines_acked",
            "lines_stored",
            "lines_per_sec",
            "bytes_per_sec",
        ] {
            assert!(v.get(key).is_some(), "missing {key}");
        }
        for key in ["p50", "p90", "p99", "p999", "max"] {
            assert!(
                v["ack_latency_us"][key].is_u64(),
                "missing ack_latency_us.{key}"
            );
        }
        assert_eq!(v["query_latency_us"]["label"]["p99"], 1900);
        assert_eq!(v["server"]["peak_rss_bytes"], 50 << 20);
        assert!(v["server"].get("bytes_on_disk_per_line").is_some());
    }

    #[test]
    fn markdown_has_the_tables() {
        let md = markdown(&sample());
        assert!(md.starts_with("# shardlog bench: push\n"));
        assert!(md.contains("| lines stored | 1,000 |"), "{md}");
        assert!(md.contains("| throughput | 123,457 lines/s |"), "{md}");
        assert!(
            md.contains("| 10 | 800 µs | 1.20 ms | 1.90 ms | 2.50 ms | 4.00 ms | 900 µs |"),
            "{md}"
        );
        assert!(md.contains("| label | 12 | 0 | 800 µs |"), "{md}");
        assert!(md.contains("Metric queries were skipped: the server answered 400"));
        assert!(md.contains("![throughput.svg](throughput.svg)"));
        assert!(md.contains("- push answered 500: boom"));
        // Every table row has as many cells as its header.
        let mut header_cells = 0;
        for line in md.lines() {
            if !line.starts_with('|') {
                header_cells = 0;
                continue;
            }
            let cells = line.trim_matches('|').split('|').count();
            if header_cells == 0 {
                header_cells = cells;
            } else {
                assert_eq!(cells, header_cells, "{line}");
            }
        }
    }

    #[test]
    fn numbers() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(format_bytes(512.0), "512 B");
        assert_eq!(format_bytes(3.0 * 1048576.0), "3.0 MiB");
    }
}

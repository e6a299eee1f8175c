//! The benchmark harness, `shardlog bench`: drives a real server with real traffic and
//! writes a report a person would rather look at than read.
//!
//! Which question it answers: "how fast is this server on this machine, and did it keep
//! every line?" A run spawns `shardlog serve` on loopback with a fresh data directory (or
//! targets an existing server), sends one scenario's traffic from plain threads with
//! blocking sockets (so that the client does not compete with the server's executors for
//! io_uring), bounded in count and time and optionally rate limited, then verifies through
//! the query API that the server holds exactly what was acknowledged, and writes
//! `report.md`, `report.json` and SVG charts.
//!
//! The parts: [`options`] (flags and their validation), [`lines`] (replayed files or
//! generated realistic lines), [`rate`] (token bucket and bounds), the senders
//! ([`load_syslog`], [`load_push`], [`load_query`], run together by [`load`]), [`stats`]
//! (counters, HDR histograms, progress), [`target`] (the spawned server and `/proc`),
//! [`verify`] (loss verification), [`compare`] (syslog-ng as a baseline), [`report`] and
//! [`charts`].

pub mod charts;
pub mod compare;
pub mod http;
pub mod lines;
pub mod load;
pub mod load_push;
pub mod load_query;
pub mod load_syslog;
pub mod machine;
pub mod options;
pub mod rate;
pub mod report;
pub mod stats;
pub mod target;
pub mod verify;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub use options::BenchArgs;

use http::HttpClient;
use load::{LoadOutcome, run_load};
use machine::Machine;
use options::{Plan, Scenario};
use rate::Budget;
use report::{Comparison, QueryLatency, Report, RoundSummary, ServerFigures, Setup};
use stats::{LatencySummary, SourceTotals, merge, new_histogram, percentile_curve};
use target::{Shardlog, disk_usage, metric_sum};
use verify::{Check, ExpectKind};

/// A harness error: the run could not be carried out (bad option, no server, I/O). A run
/// that was carried out but lost data is not an error: it is a failed report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BenchError(String);

impl BenchError {
    pub fn new(msg: impl Into<String>) -> BenchError {
        BenchError(msg.into())
    }
}

impl std::fmt::Display for BenchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BenchError {}

/// The first distinct error messages of a run, and how many there were in all.
#[derive(Debug, Default)]
pub struct ErrorLog {
    kept: Mutex<Vec<String>>,
    total: AtomicU64,
}

impl ErrorLog {
    pub fn note(&self, msg: String) {
        self.total.fetch_add(1, Ordering::Relaxed);
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        if kept.len() < report::ERRORS_SHOWN_MAX && !kept.contains(&msg) {
            kept.push(msg);
        }
    }

    pub fn take(&self) -> (Vec<String>, u64) {
        let kept = std::mem::take(&mut *self.kept.lock().unwrap_or_else(|e| e.into_inner()));
        (kept, self.total.load(Ordering::Relaxed))
    }
}

/// The first pause after a failed request or write; doubled per consecutive failure.
pub const ERROR_BACKOFF_MS_MIN: u64 = 10;
/// The longest pause between retries: the run stays responsive to its deadline.
pub const ERROR_BACKOFF_MS_MAX: u64 = 1000;
/// Consecutive failures of one sender after which the whole run stops: the server is gone
/// or refuses everything, and going on would only measure errors.
pub const SENDER_FAILURES_MAX: u32 = 30;

/// Waits after the `failures`-th consecutive failure of a sender; false when the sender
/// should stop (the run is over, or it failed too often and stopped the run).
pub fn sender_backoff(budget: &Budget, failures: u32) -> bool {
    if failures >= SENDER_FAILURES_MAX {
        budget.stop();
        return false;
    }
    let pause = (ERROR_BACKOFF_MS_MIN << failures.min(7)).min(ERROR_BACKOFF_MS_MAX);
    std::thread::sleep(Duration::from_millis(pause));
    !budget.is_over()
}

/// Runs the harness; returns the process exit code: 0 when every check passed, 1 when the
/// run found loss (or the server did not stop cleanly), 2 when it could not run.
pub fn run(args: BenchArgs) -> i32 {
    let command_line = std::env::args().collect::<Vec<_>>().join(" ");
    match execute(args, command_line) {
        Ok(true) => 0,
        Ok(false) => 1,
        Err(e) => {
            eprintln!("shardlog bench: {e}");
            2
        }
    }
}

/// One round against one server.
struct RoundResult {
    server: &'static str,
    round: usize,
    run_id: String,
    load: LoadOutcome,
    checks: Vec<Check>,
    lines_stored: u64,
    seconds: f64,
    figures: ServerFigures,
}

fn execute(args: BenchArgs, command_line: String) -> Result<bool, BenchError> {
    let plan = Plan::from_args(args)?;
    let machine = Machine::read();
    if let Some(cpus) = &plan.client_cpus {
        target::set_affinity(0, cpus)
            .map_err(|e| BenchError::new(format!("--client-cpus {cpus:?}: {e}")))?;
    }
    let now = time::OffsetDateTime::now_utc();
    let dir = report_dir(&plan, now)?;
    let syslog_ng = match plan.compare {
        Some(_) => Some(compare::find_syslog_ng().ok_or_else(|| {
            BenchError::new(
                "--compare syslog-ng: syslog-ng is not installed (Debian: apt-get install syslog-ng-core)",
            )
        })?),
        None => None,
    };
    let rounds_wanted = if syslog_ng.is_some() { plan.rounds } else { 1 };
    let mut rounds = Vec::new();
    for r in 1..=rounds_wanted {
        rounds.push(shardlog_round(&plan, &dir, r, rounds_wanted, now)?);
        if let Some(bin) = &syslog_ng {
            rounds.push(syslog_ng_round(bin, &plan, &dir, r, now)?);
        }
    }
    let started_at = now
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let mut report = build_report(&plan, machine, command_line, started_at, &rounds);
    report.charts = charts::draw_all(&dir, &report)?;
    let md = report::write(&dir, &report)?;
    println!("\n{}", report::summary_table(&report));
    println!("report: {}", md.display());
    Ok(report.passed)
}

/// `--out`, or `target/bench-report/<UTC timestamp>/` (under `CARGO_TARGET_DIR` if set).
fn report_dir(plan: &Plan, now: time::OffsetDateTime) -> Result<PathBuf, BenchError> {
    let dir = match &plan.out {
        Some(d) => d.clone(),
        None => {
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("target"));
            let base = target.join("bench-report").join(stamp(now));
            let mut dir = base.clone();
            let mut n = 2;
            while dir.exists() {
                dir = PathBuf::from(format!("{}-{n}", base.display()));
                n += 1;
            }
            dir
        }
    };
    std::fs::create_dir_all(&dir).map_err(|e| {
        BenchError::new(format!(
            "create the report directory {}: {e}",
            dir.display()
        ))
    })?;
    // Absolute, so that the paths printed and handed to the spawned server (its data
    // directory) do not depend on a working directory.
    std::path::absolute(&dir).map_err(|e| {
        BenchError::new(format!(
            "resolve the report directory {}: {e}",
            dir.display()
        ))
    })
}

/// `20250601t101500`: sortable, and valid in a label value, a hostname and a file name.
pub(crate) fn stamp(now: time::OffsetDateTime) -> String {
    format!(
        "{}{:02}{:02}t{:02}{:02}{:02}",
        now.year(),
        now.month() as u8,
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    )
}

/// A run id unique to this process and round: tags every stream the round writes.
fn run_id(now: time::OffsetDateTime, round: usize, server: &str) -> String {
    format!(
        "bench-{}-{:x}-{server}{round}",
        stamp(now),
        std::process::id()
    )
}

fn shardlog_round(
    plan: &Plan,
    dir: &Path,
    round: usize,
    rounds: usize,
    now: time::OffsetDateTime,
) -> Result<RoundResult, BenchError> {
    let run_id = run_id(now, round, "s");
    let round_dir = if rounds > 1 {
        dir.join(format!("round-{round}-shardlog"))
    } else {
        dir.to_path_buf()
    };
    std::fs::create_dir_all(&round_dir)
        .map_err(|e| BenchError::new(format!("create {}: {e}", round_dir.display())))?;
    let server = match plan.spawn {
        true => Some(Shardlog::spawn(plan, &round_dir)?),
        false => None,
    };
    let ep = match (&server, plan.external) {
        (Some(s), _) => s.endpoints,
        (None, Some(ep)) => ep,
        (None, None) => unreachable!("a plan without --spawn has external endpoints"),
    };
    let mut client = HttpClient::new(ep.http);
    let ready = client.request("GET", "/ready", &[], b"");
    if !matches!(&ready, Ok(r) if r.status == 200) {
        return Err(BenchError::new(format!(
            "no ready server at {} ({}): start one, or use --spawn",
            ep.http,
            match ready {
                Ok(r) => format!("/ready answered {}", r.status),
                Err(e) => e.to_string(),
            }
        )));
    }
    let version = server_version(&mut client);
    let metrics_before = metrics_text(&mut client);
    let drops_before =
        metric_sum(&metrics_before, "shardlog_udp_dropped_total").unwrap_or(0.0) as u64;
    let wal_before = metric_sum(&metrics_before, "shardlog_wal_bytes_written_total");
    let cpu_before = server.as_ref().and_then(|s| s.process.cpu_seconds());

    let label = format!("shardlog {}", plan.scenario.name());
    let load = run_load(plan, plan.scenario, ep, &run_id, &label);
    let expectations = load.expectations(&run_id);
    let checks = verify::wait_and_check(
        ep.http,
        &plan.tenant,
        &expectations,
        load.start_ns,
        load.started,
        drops_before,
    )
    .map_err(|e| BenchError::new(format!("verification could not ask the server: {e}")))?;
    let lines_stored: u64 = checks.iter().map(|c| c.stored).sum();

    let mut seconds = load.last_ack_seconds.unwrap_or(load.send_seconds);
    for c in checks.iter().filter(|c| c.source != load::PUSH) {
        let stored_at = c
            .stored_after_ms
            .map_or(load.send_seconds, |ms| ms as f64 / 1000.0);
        seconds = seconds.max(stored_at);
    }
    let wal_after = metric_sum(
        &metrics_text(&mut client),
        "shardlog_wal_bytes_written_total",
    );
    let mut figures = ServerFigures {
        spawned: server.is_some(),
        version,
        cores: plan
            .cores
            .or(server.as_ref().map(|_| options::online_cpus())),
        wal_bytes_written: wal_before
            .zip(wal_after)
            .map(|(b, a)| (a - b).max(0.0) as u64),
        ..ServerFigures::default()
    };
    if let Some(s) = server {
        figures.cpu_seconds = cpu_before.zip(s.process.cpu_seconds()).map(|(b, a)| a - b);
        figures.peak_rss_bytes = s.process.peak_rss_bytes();
        figures.thread_placement = Some(s.process.thread_placement());
        let data_dir = s.data_dir.clone();
        let stop = s.process.stop();
        figures.exit = Some(if stop.clean() {
            "exit 0 after SIGTERM".to_string()
        } else {
            format!("{} (expected exit 0 after SIGTERM)", stop.description)
        });
        figures.exit_clean = Some(stop.clean());
        let (allocated, apparent) = disk_usage(&data_dir);
        figures.bytes_on_disk = Some(allocated);
        figures.bytes_on_disk_apparent = Some(apparent);
        if !plan.keep_data {
            let _ = std::fs::remove_dir_all(&data_dir);
        }
    }
    per_line(&mut figures, lines_stored);
    Ok(RoundResult {
        server: "shardlog",
        round,
        run_id,
        load,
        checks,
        lines_stored,
        seconds,
        figures,
    })
}

/// Fills in the per-line figures from the totals.
fn per_line(f: &mut ServerFigures, lines: u64) {
    if lines == 0 {
        return;
    }
    let l = lines as f64;
    f.cpu_seconds_per_million_lines = f.cpu_seconds.map(|c| c / l * 1e6);
    f.bytes_on_disk_per_line = f.bytes_on_disk.map(|b| b as f64 / l);
    f.wal_bytes_per_line = f.wal_bytes_written.map(|b| b as f64 / l);
}

fn syslog_ng_round(
    binary: &Path,
    plan: &Plan,
    dir: &Path,
    round: usize,
    now: time::OffsetDateTime,
) -> Result<RoundResult, BenchError> {
    let run_id = run_id(now, round, "n");
    let round_dir = dir.join(format!("round-{round}-syslog-ng"));
    let ng = compare::SyslogNg::start(binary, plan, &round_dir)?;
    let ep = options::Endpoints {
        http: ng.addr,
        syslog_tcp: ng.addr,
        syslog_udp: ng.addr,
    };
    let cpu_before = ng.process.cpu_seconds();
    let load = run_load(plan, Scenario::SyslogTcp, ep, &run_id, "syslog-ng");
    let (lines, seconds) = ng.wait_output(load.started)?;
    let mut figures = ServerFigures {
        spawned: true,
        version: Some("syslog-ng".into()),
        cpu_seconds: cpu_before.zip(ng.process.cpu_seconds()).map(|(b, a)| a - b),
        peak_rss_bytes: ng.process.peak_rss_bytes(),
        thread_placement: Some(ng.process.thread_placement()),
        ..ServerFigures::default()
    };
    let out_file = ng.out_file.clone();
    // syslog-ng has written all it will: its exit status is not part of the comparison.
    let stop = ng.process.stop();
    figures.exit = Some(stop.description);
    figures.bytes_on_disk = std::fs::metadata(&out_file).ok().map(|m| m.len());
    if !plan.keep_data {
        let _ = std::fs::remove_file(&out_file);
    }
    per_line(&mut figures, lines);
    let sent = load
        .sources
        .get(load::SYSLOG_TCP)
        .map_or(0, |t| t.lines_sent);
    let unknown = load
        .sources
        .get(load::SYSLOG_TCP)
        .map_or(0, |t| t.lines_unknown);
    let kind = ExpectKind::Exact {
        expected: sent,
        unknown,
    };
    let (passed, message) = verify::judge(kind, lines, 0);
    let checks = vec![Check {
        source: "syslog-ng",
        selector: format!("lines in {}", out_file.display()),
        expected_min: sent,
        expected_max: sent + unknown,
        stored: lines,
        streams_stored: 0,
        kernel_drops: None,
        passed,
        message,
        stored_after_ms: Some((seconds * 1000.0) as u64),
    }];
    Ok(RoundResult {
        server: "syslog-ng",
        round,
        run_id,
        load,
        checks,
        lines_stored: lines,
        seconds,
        figures,
    })
}

fn server_version(client: &mut HttpClient) -> Option<String> {
    let r = client
        .request("GET", "/loki/api/v1/status/buildinfo", &[], b"")
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&r.body).ok()?;
    let version = v.get("version")?.as_str()?.to_string();
    match v
        .get("revision")
        .and_then(|r| r.as_str())
        .filter(|r| !r.is_empty())
    {
        Some(rev) => Some(format!("{version} ({rev})")),
        None => Some(version),
    }
}

fn metrics_text(client: &mut HttpClient) -> String {
    client
        .request("GET", "/metrics", &[], b"")
        .map(|r| r.text())
        .unwrap_or_default()
}

/// Adds up the shardlog rounds into the report's figures; syslog-ng rounds go into the
/// comparison only.
fn build_report(
    plan: &Plan,
    machine: Machine,
    command_line: String,
    started_at: String,
    rounds: &[RoundResult],
) -> Report {
    let ours: Vec<&RoundResult> = rounds.iter().filter(|r| r.server == "shardlog").collect();
    let first = ours.first().expect("at least one shardlog round");
    let mut sources: BTreeMap<String, SourceTotals> = BTreeMap::new();
    let mut lines_sent = 0;
    let mut lines_acked = 0;
    let mut lines_stored = 0;
    let mut line_bytes = 0;
    let mut wire_bytes = 0;
    let mut seconds = 0.0;
    let mut errors = 0;
    let mut ack = new_histogram();
    let mut have_ack = false;
    let mut queries: BTreeMap<String, (hdrhistogram::Histogram<u64>, u64, u64)> = BTreeMap::new();
    let mut verification = Vec::new();
    let mut first_errors = Vec::new();
    let mut server = first.figures.clone();
    let (mut cpu, mut disk, mut wal, mut rss) = (Some(0.0), Some(0), Some(0), None::<u64>);
    let mut exit_clean = true;
    for r in &ours {
        let total = r.load.total();
        lines_sent += total.lines_sent;
        lines_acked += r.load.lines_acked();
        lines_stored += r.lines_stored;
        line_bytes += total.line_bytes;
        wire_bytes += total.wire_bytes;
        errors += total.errors + r.load.queries.iter().map(|q| q.errors).sum::<u64>();
        seconds += r.seconds;
        for (name, t) in &r.load.sources {
            sources.entry(name.to_string()).or_default().add(t);
        }
        if let Some(h) = &r.load.ack_latency {
            merge(&mut ack, h);
            have_ack = true;
        }
        for q in &r.load.queries {
            let e = queries
                .entry(q.kind.name().to_string())
                .or_insert_with(|| (new_histogram(), 0, 0));
            merge(&mut e.0, &q.latency);
            e.1 += q.done - q.errors;
            e.2 += q.errors;
        }
        verification.extend(r.checks.iter().cloned().map(|mut c| {
            if ours.len() > 1 {
                c.message = format!("round {}: {}", r.round, c.message);
            }
            c
        }));
        for e in &r.load.errors {
            if first_errors.len() < report::ERRORS_SHOWN_MAX && !first_errors.contains(e) {
                first_errors.push(e.clone());
            }
        }
        cpu = cpu.zip(r.figures.cpu_seconds).map(|(a, b)| a + b);
        disk = disk.zip(r.figures.bytes_on_disk).map(|(a, b)| a + b);
        wal = wal.zip(r.figures.wal_bytes_written).map(|(a, b)| a + b);
        rss = rss.max(r.figures.peak_rss_bytes);
        exit_clean &= r.figures.exit_clean.unwrap_or(true);
    }
    server.cpu_seconds = cpu;
    server.bytes_on_disk = disk;
    server.bytes_on_disk_apparent = None;
    server.wal_bytes_written = wal;
    server.peak_rss_bytes = rss;
    per_line(&mut server, lines_stored);
    server.cpu_busy_percent = server.cpu_seconds.map(|c| c / seconds.max(1e-9) * 100.0);

    let seconds = seconds.max(1e-9);
    let stored_share = if lines_sent > 0 {
        lines_stored as f64 / lines_sent as f64
    } else {
        0.0
    };
    let ingested = lines_acked + sources.get(load::SYSLOG_UDP).map_or(0, |_| lines_stored);
    let mut problems: Vec<String> = verification
        .iter()
        .filter(|c| !c.passed)
        .map(|c| format!("{}: {}", c.source, c.message))
        .collect();
    if !exit_clean {
        problems.push(format!(
            "the server did not stop cleanly: {}",
            server.exit.clone().unwrap_or_default()
        ));
    }
    if ingested == 0 {
        problems.push("nothing was acknowledged or stored: the run measured nothing".into());
    }
    let passed = problems.is_empty();
    let verdict = if passed {
        verification
            .iter()
            .map(|c| format!("{}: {}", c.source, c.message))
            .collect::<Vec<_>>()
            .join("; ")
    } else {
        problems.join("; ")
    };

    let compare = plan.compare.map(|_| {
        let rate = |name: &str| {
            let (l, s) = rounds
                .iter()
                .filter(|r| r.server == name)
                .fold((0u64, 0.0), |(l, s), r| (l + r.lines_stored, s + r.seconds));
            if s > 0.0 { l as f64 / s } else { 0.0 }
        };
        let ours = rate("shardlog");
        let theirs = rate("syslog-ng");
        Comparison {
            against: "syslog-ng",
            shardlog_lines_per_sec: ours,
            other_lines_per_sec: theirs,
            ratio: if theirs > 0.0 { ours / theirs } else { 0.0 },
            other_losses: rounds
                .iter()
                .filter(|r| r.server == "syslog-ng")
                .flat_map(|r| r.checks.iter().filter(|c| !c.passed))
                .map(|c| c.message.clone())
                .collect(),
            how: format!(
                "The same senders ({} connections, {} {} framing, {} s per run) against shardlog \
                 (every line durable in its WAL and indexed; time until all were stored) and \
                 syslog-ng relaying to a file (time until its file last grew), alternating, {} \
                 round(s) each, each server pinned to the same CPUs.",
                plan.connections,
                format!("{:?}", plan.syslog_format).to_lowercase(),
                format!("{:?}", plan.framing).to_lowercase(),
                plan.duration.as_secs_f64(),
                plan.rounds
            ),
        }
    });
    let round_summaries = rounds
        .iter()
        .map(|r| RoundSummary {
            round: r.round,
            server: r.server,
            run_id: r.run_id.clone(),
            lines_sent: r.load.total().lines_sent,
            lines_stored: r.lines_stored,
            seconds: r.seconds,
            lines_per_sec: r.lines_stored as f64 / r.seconds.max(1e-9),
            cpu_seconds: r.figures.cpu_seconds,
            cpu_busy_percent: r
                .figures
                .cpu_seconds
                .map(|c| c / r.seconds.max(1e-9) * 100.0),
            peak_rss_bytes: r.figures.peak_rss_bytes,
            passed: r.checks.iter().all(|c| c.passed),
            note: r
                .checks
                .iter()
                .map(|c| c.message.clone())
                .collect::<Vec<_>>()
                .join("; "),
        })
        .collect();

    let ack_latency = have_ack.then(|| LatencySummary::of(&ack));
    Report {
        scenario: plan.scenario.name(),
        passed,
        verdict,
        run_id: first.run_id.clone(),
        started_at,
        lines_sent,
        lines_acked,
        lines_stored,
        lines_per_sec: lines_stored as f64 / seconds,
        bytes_per_sec: line_bytes as f64 * stored_share / seconds,
        wire_bytes_per_sec: wire_bytes as f64 * stored_share / seconds,
        seconds,
        errors,
        ack_latency_us: ack_latency,
        ack_latency_curve: if have_ack {
            percentile_curve(&ack)
        } else {
            Vec::new()
        },
        query_latency_us: queries
            .into_iter()
            .map(|(k, (h, done, errs))| {
                (
                    k,
                    QueryLatency {
                        queries: done,
                        errors: errs,
                        latency: LatencySummary::of(&h),
                        curve: percentile_curve(&h),
                    },
                )
            })
            .collect(),
        metric_queries_skipped: first.load.metric_skipped.clone(),
        server,
        sources,
        verification,
        rounds: round_summaries,
        compare,
        setup: Setup {
            command_line,
            target: match plan.external {
                None => "a `shardlog serve` spawned on loopback with a fresh data directory".into(),
                Some(ep) => format!(
                    "an existing server at http {} syslog {}",
                    ep.http, ep.syslog_tcp
                ),
            },
            duration_seconds: plan.duration.as_secs_f64(),
            count: plan.count,
            connections: plan.connections,
            rate_lines_per_sec: match plan.scenario {
                Scenario::Query => Some(plan.rate.unwrap_or(load::QUERY_INGEST_RATE_DEFAULT)),
                _ => plan.rate,
            },
            line_source: plan.corpus.describe(),
            streams: plan.streams,
            batch: plan.batch,
            encoding: format!("{:?}", plan.encoding).to_lowercase(),
            syslog_format: format!("{:?}", plan.syslog_format).to_lowercase(),
            framing: format!("{:?}", plan.framing).to_lowercase(),
            server_cores: plan.cores,
            server_cpus: plan.server_cpus.clone(),
            client_cpus: plan.client_cpus.clone(),
            machine,
        },
        timeline: first.load.timeline.clone(),
        first_errors,
        charts: Vec::new(),
    }
}

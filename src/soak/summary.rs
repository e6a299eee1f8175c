//! What a soak did and found, for a person: one record per server incarnation, the lines
//! per lane, the queries per kind, and the violations; printed at the end and written to
//! `summary.txt` in the soak's directory.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;

use super::findings::Findings;
use super::ledger::{Outcome, WorkerLedger};
use super::queries::{KindStats, QueryKind};
use super::verify::LaneCheck;

/// Counters read from `/metrics` during each incarnation (they restart at zero with the
/// process, so the run's figure is the sum of each incarnation's last reading).
pub const COUNTERS: &[&str] = &[
    "shardlog_parts_written_total",
    "shardlog_sealed_entries_total",
    "shardlog_manifest_writes_total",
    "shardlog_compactions_total",
    "shardlog_compacted_parts_total",
    "shardlog_retention_dropped_parts_total",
    "shardlog_retention_dropped_entries_total",
    "shardlog_wal_torn_tails_truncated_total",
    "shardlog_appends_waited_for_sealing_total",
    "shardlog_discarded_lines_total",
    "shardlog_quarantined_parts_total",
];

/// How one incarnation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    Killed,
    Stopped(String),
    Crashed(String),
    /// Still running (the last one, until the final stop) or never started properly.
    Other(String),
}

/// One incarnation of the server.
#[derive(Debug, Clone)]
pub struct IncarnationRecord {
    pub number: u32,
    pub pid: i32,
    pub profile: &'static str,
    pub ready_after: Option<Duration>,
    pub lived: Duration,
    pub ended: Ended,
    pub peak_rss_bytes: u64,
    pub counters: BTreeMap<&'static str, f64>,
}

/// Everything the summary shows.
#[derive(Default)]
pub struct Summary {
    pub seed: u64,
    pub duration: Duration,
    pub rate: u64,
    pub cores: usize,
    pub server: String,
    pub corpus: String,
    pub out: String,
    pub incarnations: Vec<IncarnationRecord>,
    pub ledgers: Vec<WorkerLedger>,
    pub ack_latency: Option<Histogram<u64>>,
    pub queries: BTreeMap<QueryKind, KindStats>,
    pub checks: BTreeMap<&'static str, LaneCheck>,
    pub stored_per_tenant: BTreeMap<&'static str, u64>,
    pub verification: Option<String>,
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn mib(bytes: u64) -> String {
    format!("{:.0} MiB", bytes as f64 / (1024.0 * 1024.0))
}

impl Summary {
    /// Lines and requests per lane and outcome.
    fn lanes(&self) -> BTreeMap<&'static str, BTreeMap<&'static str, (u64, u64)>> {
        let mut out: BTreeMap<&'static str, BTreeMap<&'static str, (u64, u64)>> = BTreeMap::new();
        for l in &self.ledgers {
            let lane = out.entry(l.lane.name()).or_default();
            for b in &l.batches {
                let e = lane.entry(b.outcome.name()).or_default();
                e.0 += u64::from(b.lines);
                e.1 += 1;
            }
        }
        out
    }

    /// The counter's sum over the incarnations.
    pub fn counter(&self, name: &str) -> f64 {
        self.incarnations
            .iter()
            .filter_map(|i| i.counters.get(name))
            .sum()
    }

    pub fn render(&self, findings: &Findings) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "\n== shardlog soak ==");
        let _ = writeln!(
            s,
            "seed {} (replay: --seed {}), load {:?} at {} lines/s, {} cores, server {}",
            self.seed, self.seed, self.duration, self.rate, self.cores, self.server
        );
        let _ = writeln!(s, "corpus: {}", self.corpus);
        let _ = writeln!(s, "directory: {}", self.out);
        let kills = self
            .incarnations
            .iter()
            .filter(|i| i.ended == Ended::Killed)
            .count();
        let stops = self
            .incarnations
            .iter()
            .filter(|i| matches!(i.ended, Ended::Stopped(_)))
            .count();
        let crashes = self
            .incarnations
            .iter()
            .filter(|i| matches!(i.ended, Ended::Crashed(_)))
            .count();
        let _ = writeln!(
            s,
            "\nserver: {} incarnations, {kills} kill -9, {stops} graceful stops, {crashes} crashes",
            self.incarnations.len()
        );
        for i in &self.incarnations {
            let ended = match &i.ended {
                Ended::Killed => "kill -9".to_string(),
                Ended::Stopped(how) => format!("SIGTERM: {how}"),
                Ended::Crashed(how) => format!("CRASHED: {how}"),
                Ended::Other(how) => how.clone(),
            };
            let _ = writeln!(
                s,
                "  #{:<3} pid {:<8} {:<13} ready after {:>6}  lived {:>7.1}s  peak RSS {:>8}  {ended}",
                i.number,
                i.pid,
                i.profile,
                i.ready_after
                    .map_or("-".into(), |d| format!("{:.2}s", d.as_secs_f64())),
                i.lived.as_secs_f64(),
                mib(i.peak_rss_bytes)
            );
        }
        let max_ready = self
            .incarnations
            .iter()
            .filter_map(|i| i.ready_after)
            .max()
            .unwrap_or_default();
        let peak = self
            .incarnations
            .iter()
            .map(|i| i.peak_rss_bytes)
            .max()
            .unwrap_or(0);
        let _ = writeln!(
            s,
            "  slowest /ready {:.2}s, highest peak RSS {}",
            max_ready.as_secs_f64(),
            mib(peak)
        );
        let _ = writeln!(s, "\nserver counters (sum over incarnations):");
        for name in COUNTERS {
            let _ = writeln!(
                s,
                "  {:<45} {}",
                name.trim_start_matches("shardlog_"),
                thousands(self.counter(name) as u64)
            );
        }
        let _ = writeln!(
            s,
            "\nlines sent, per lane and outcome (lines / requests or writes):"
        );
        for (lane, outcomes) in self.lanes() {
            let parts: Vec<String> = outcomes
                .iter()
                .map(|(o, (lines, reqs))| {
                    format!("{o} {} / {}", thousands(*lines), thousands(*reqs))
                })
                .collect();
            let _ = writeln!(s, "  {lane:<15} {}", parts.join(", "));
        }
        if let Some(h) = &self.ack_latency
            && !h.is_empty()
        {
            let _ = writeln!(
                s,
                "push acknowledgement latency: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
                h.value_at_quantile(0.5) as f64 / 1000.0,
                h.value_at_quantile(0.99) as f64 / 1000.0,
                h.max() as f64 / 1000.0
            );
        }
        let _ = writeln!(
            s,
            "\nqueries (ok / failed while ready / failed during stops / wrong, slowest):"
        );
        for (kind, q) in &self.queries {
            let _ = writeln!(
                s,
                "  {:<18} {} / {} / {} / {}, {:.2}s",
                kind.name(),
                thousands(q.ok),
                q.failed_while_ready,
                q.failed_while_stopping,
                q.wrong,
                q.slowest.as_secs_f64()
            );
        }
        let _ = writeln!(s, "\nverification:");
        match &self.verification {
            Some(v) => {
                let _ = writeln!(s, "  {v}");
            }
            None => {
                let _ = writeln!(s, "  read back per tenant: {:?}", self.stored_per_tenant);
                for (lane, c) in &self.checks {
                    let _ = writeln!(
                        s,
                        "  {lane:<15} required {} found {}; optional {} found {}{}",
                        thousands(c.required),
                        thousands(c.required_found),
                        thousands(c.optional),
                        thousands(c.optional_found),
                        if c.refused_found > 0 {
                            format!(
                                " (of them {} from refused pushes)",
                                thousands(c.refused_found)
                            )
                        } else {
                            String::new()
                        }
                    );
                }
            }
        }
        let notes = findings.notes();
        if !notes.is_empty() {
            let _ = writeln!(s, "\nnotes:");
            for n in notes {
                let _ = writeln!(s, "  - {n}");
            }
        }
        let mut violations = findings.violations();
        violations.sort_by_key(|(kind, _, _)| rank(kind));
        let total = findings.total();
        if violations.is_empty() {
            let _ = writeln!(s, "\nPASSED: no violation");
        } else {
            let _ = writeln!(s, "\nFAILED: {total} violations");
            for (kind, n, messages) in violations {
                let _ = writeln!(s, "  {kind}: {n}");
                let shown = match rank(kind) {
                    RANK_FOLLOW_ON => FOLLOW_ON_MESSAGES_SHOWN,
                    _ => messages.len(),
                };
                for m in messages.iter().take(shown) {
                    let _ = writeln!(s, "    - {}", m.replace('\n', "\n      "));
                }
            }
        }
        s
    }
}

/// Where a kind of violation is listed: causes first (a crash, a lost line), then wrong
/// answers and bad stops, then the failed requests that usually follow from those.
fn rank(kind: &str) -> u8 {
    match kind {
        "crash" | "restart-failed" | "start-failed" => 0,
        "loss" | "duplicate" | "stored-unsent" | "unknown-line" | "restart-check"
        | "stats-mismatch" => 1,
        k if k.starts_with("wrong-") => 1,
        "query-wrong-answer" | "graceful-stop" | "server-error-output" | "server-state" => 2,
        _ => RANK_FOLLOW_ON,
    }
}

/// The rank of failed requests, coverage and verification errors.
const RANK_FOLLOW_ON: u8 = 3;
/// Messages shown per follow-on kind: a dead core fails thousands of requests the same way.
const FOLLOW_ON_MESSAGES_SHOWN: usize = 5;

/// The lines of a ledger with `outcome`.
pub fn lines_with(ledgers: &[WorkerLedger], outcome: Outcome) -> u64 {
    ledgers
        .iter()
        .flat_map(|l| &l.batches)
        .filter(|b| b.outcome == outcome)
        .map(|b| u64::from(b.lines))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_numbers() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(mib(3 << 20), "3 MiB");
    }

    #[test]
    fn renders_a_verdict() {
        let f = Findings::default();
        let s = Summary::default().render(&f);
        assert!(s.contains("PASSED"), "{s}");
        f.violation("loss", "line x".into());
        let s = Summary::default().render(&f);
        assert!(
            s.contains("FAILED: 1 violations") && s.contains("line x"),
            "{s}"
        );
    }
}

//! What the supervisor checks besides the load: after each restart, that the server holds
//! at least what it must and at most what it may (`/index/stats`); at the end, every line
//! read back (see [`super::verify`]); and that the run exercised what it is for (seals,
//! compactions, retention).

use std::time::Instant;

use super::lanes::{JOB_OLD, JOB_PUSH, SYSLOG_HOST, TENANT_OLD, TENANT_PUSH, TENANT_SYSLOG};
use super::ledger::{Outcome, WorkerLedger};
use super::server::Incarnation;
use super::summary::{Summary, lines_with};
use super::supervise::Run;
use super::verify::{Verifier, index_stats, read_all};
use crate::ingest::listeners::now_ns;

/// Margin around the run's time range when reading lines back and counting them.
const RANGE_SLACK_NS: i64 = 60 * 1_000_000_000;
/// How far before the run the old lane's lines may lie beyond the retention window: the
/// lane writes them up to three hours beyond it, and a margin.
const OLD_BEYOND_RETENTION_NS: i64 = 5 * 3600 * 1_000_000_000;

impl Run {
    /// `(start, old_start, end)`: the range of the run's current lines, the start of the old
    /// lane's range, and the end of both.
    fn ranges(&self) -> (i64, i64, i64) {
        let start = self.run_start_ns - RANGE_SLACK_NS;
        let old_start = start - (self.shared.retention.as_nanos() as i64) - OLD_BEYOND_RETENTION_NS;
        (start, old_start, now_ns() + RANGE_SLACK_NS)
    }

    /// Before the load resumes: each tenant holds at least what it must and at most what
    /// may have reached the server (from `/index/stats`).
    pub(super) fn restart_check(&self, inc: &Incarnation) {
        let (start, old_start, end) = self.ranges();
        let t = &self.shared.tallies;
        let tenants = [
            (
                TENANT_PUSH,
                format!(r#"{{job="{JOB_PUSH}"}}"#),
                start,
                t.push.get(),
            ),
            (
                TENANT_OLD,
                format!(r#"{{job="{JOB_OLD}"}}"#),
                old_start,
                (0, t.old.get().1),
            ),
            (
                TENANT_SYSLOG,
                format!(r#"{{host="{SYSLOG_HOST}"}}"#),
                start,
                t.syslog.get(),
            ),
        ];
        for (tenant, selector, from, (must, may)) in tenants {
            match index_stats(inc.endpoints.http, tenant, &selector, from, end) {
                Ok(n) if n < must => self.shared.findings.violation(
                    "restart-check",
                    format!(
                        "just after incarnation {} became ready, tenant {tenant} holds {n} lines of {selector}, fewer than the {must} it must hold (acknowledged or confirmed so far): {} lost",
                        inc.number,
                        must - n
                    ),
                ),
                Ok(n) if n > may => self.shared.findings.violation(
                    "restart-check",
                    format!(
                        "just after incarnation {} became ready, tenant {tenant} holds {n} lines of {selector}, more than the {may} that were ever sent: {} duplicated",
                        inc.number,
                        n - may
                    ),
                ),
                Ok(_) => {}
                Err(e) => self.shared.findings.violation(
                    "restart-check",
                    format!("just after incarnation {} became ready: {e}", inc.number),
                ),
            }
        }
    }

    /// Starts one more incarnation and reads every line back; then stops it (exit 0).
    pub(super) fn verify(&mut self, ledgers: &[WorkerLedger], summary: &mut Summary) {
        if !self.restart() {
            summary.verification = Some("not possible: the server did not start again".into());
            return;
        }
        self.shared.life.go_stopping();
        let inc = self.inc.as_ref().expect("just started");
        let http = inc.endpoints.http;
        println!(
            "soak: reading every line back from incarnation {}",
            inc.number
        );
        let (start, old_start, end) = self.ranges();
        let shared = self.shared.clone();
        let mut verifier = Verifier::new(
            shared.seed,
            shared.streams,
            &shared.corpus.lines,
            ledgers,
            &shared.findings,
        );
        let tenants = [
            (TENANT_PUSH, format!(r#"{{job="{JOB_PUSH}"}}"#), start, true),
            (
                TENANT_SYSLOG,
                format!(r#"{{host="{SYSLOG_HOST}"}}"#),
                start,
                true,
            ),
            (
                TENANT_OLD,
                format!(r#"{{job="{JOB_OLD}"}}"#),
                old_start,
                false,
            ),
        ];
        let began = Instant::now();
        for (tenant, selector, from, cross_check) in tenants {
            let read = read_all(http, tenant, &selector, from, end, |e| {
                verifier.visit(tenant, e)
            });
            match read {
                Ok(n) => {
                    summary.stored_per_tenant.insert(tenant, n);
                    // Retention may drop old lines between the read and the count, so only
                    // the other tenants are cross-checked.
                    if cross_check {
                        match index_stats(http, tenant, &selector, from, end) {
                            Ok(s) if s == n => {}
                            Ok(s) => shared.findings.violation(
                                "stats-mismatch",
                                format!("tenant {tenant}: /index/stats counts {s} lines of {selector}, query_range returned {n}"),
                            ),
                            Err(e) => shared.findings.violation("verification", e),
                        }
                    }
                }
                Err(e) => shared.findings.violation("verification", e),
            }
        }
        summary.checks = verifier.finish();
        println!(
            "soak: read back {:?} in {:.1}s",
            summary.stored_per_tenant,
            began.elapsed().as_secs_f64()
        );
        let acked = lines_with(ledgers, Outcome::Acked);
        if acked == 0 {
            shared.findings.violation(
                "coverage",
                "no push was ever acknowledged: the soak proved nothing".into(),
            );
        }
        self.end_current();
    }

    /// A soak that never sealed, compacted or dropped anything tested less than it says.
    pub(super) fn coverage(&self, summary: &Summary) {
        let wanted = [
            ("shardlog_parts_written_total", "sealed no part"),
            ("shardlog_compactions_total", "ran no compaction"),
            (
                "shardlog_retention_dropped_parts_total",
                "had retention drop nothing",
            ),
        ];
        for (counter, what) in wanted {
            if summary.counter(counter) <= 0.0 {
                self.shared.findings.violation(
                    "coverage",
                    format!("the soak {what} ({counter} stayed 0): its settings did not do what they are for"),
                );
            }
        }
    }
}

//! Watching an incarnation between the supervisor's stops: whether the process is still
//! there, whether its output shows a failure (a panic leaves the process half alive), its
//! counters, `/ready` and peak RSS every few seconds, and a progress line.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::summary::COUNTERS;
use super::supervise::{Failure, Run, WATCH_POLL_MS};
use crate::bench::http::HttpClient;
use crate::bench::target::metric_sum;

/// How often `/metrics`, `/ready` and the peak RSS are read while an incarnation runs.
const SCRAPE_INTERVAL_MS: u64 = 2_000;
/// How long `/metrics` and `/ready` may take to answer the supervisor while the server is
/// up: they read counters, nothing more; a server that cannot answer them in this long is
/// stuck (and the supervisor must keep to its kill schedule).
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a progress line is printed.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(10);

impl Run {
    /// Watches the current incarnation until `until`: how it went wrong, if it did.
    pub(super) fn watch(&mut self, until: Instant, next_progress: &mut Instant) -> Option<Failure> {
        let mut next_scrape = Instant::now();
        while Instant::now() < until {
            let inc = self.inc.as_mut()?;
            if let Some(status) = inc.exited() {
                return Some(Failure::Exited(status));
            }
            if Instant::now() >= next_scrape {
                if let Some(first) = inc.scan_log() {
                    return Some(Failure::Wrote(first));
                }
                self.scrape();
                next_scrape = Instant::now() + Duration::from_millis(SCRAPE_INTERVAL_MS);
            }
            if Instant::now() >= *next_progress {
                self.progress();
                *next_progress = Instant::now() + PROGRESS_INTERVAL;
            }
            std::thread::sleep(Duration::from_millis(WATCH_POLL_MS));
        }
        None
    }

    pub(super) fn progress(&self) {
        let left = self
            .shared
            .deadline
            .saturating_duration_since(Instant::now());
        let t = &self.shared.tallies;
        println!(
            "soak: {:>5.0}s left, incarnation {}, acknowledged push lines {}, old {}, syslog written {}, queries ok {}, violations {}",
            left.as_secs_f64(),
            self.shared.life.incarnation(),
            t.push.get().0,
            t.old.get().1,
            t.syslog.get().1,
            self.shared.queries_ok.load(Ordering::Relaxed),
            self.findings().total()
        );
    }

    /// Reads `/metrics`, `/ready` and the peak RSS of the current incarnation.
    pub(super) fn scrape(&mut self) {
        let Some(inc) = self.inc.as_mut() else { return };
        inc.sample_rss();
        let number = inc.number;
        let mut client = HttpClient::with_timeout(inc.endpoints.http, SCRAPE_TIMEOUT);
        let up = self.shared.life.is_up();
        match client.request("GET", "/metrics", &[], b"") {
            Ok(r) if r.status == 200 => {
                let text = r.text();
                for name in COUNTERS {
                    if let Some(v) = metric_sum(&text, name) {
                        self.counters.insert(name, v);
                    }
                }
                let quarantined =
                    metric_sum(&text, "shardlog_quarantined_parts_total").unwrap_or(0.0);
                let sealing = metric_sum(&text, "shardlog_sealing_failed").unwrap_or(0.0);
                let wal = metric_sum(&text, "shardlog_wal_failed").unwrap_or(0.0);
                if (quarantined > 0.0 || sealing > 0.0 || wal > 0.0) && !self.flagged {
                    self.flagged = true;
                    self.shared.findings.violation(
                        "server-state",
                        format!(
                            "incarnation {number}: quarantined parts {quarantined}, shards with sealing stopped {sealing}, shards with the WAL stopped {wal} (all must stay 0 on a healthy disk)"
                        ),
                    );
                }
            }
            other if up => self.shared.findings.suspect(
                number,
                "metrics-failed-while-ready",
                format!(
                    "incarnation {number}: /metrics {}",
                    match other {
                        Ok(r) => format!("answered {}", r.status),
                        Err(e) => e.to_string(),
                    }
                ),
            ),
            _ => {}
        }
        match client.request("GET", "/ready", &[], b"") {
            Ok(r) if r.status == 200 => {}
            other if self.shared.life.is_up() => self.shared.findings.suspect(
                number,
                "not-ready-while-up",
                format!(
                    "incarnation {number}: /ready {} while nothing was stopping it",
                    match other {
                        Ok(r) => format!("answered {}: {}", r.status, r.text().trim()),
                        Err(e) => e.to_string(),
                    }
                ),
            ),
            _ => {}
        }
    }
}

/// When the next progress line is due, from now.
pub(super) fn next_progress() -> Instant {
    Instant::now() + PROGRESS_INTERVAL
}

//! The run of a soak: start the server, start the senders and query workers, then until
//! the duration is over let each incarnation live a random while and end it with `kill -9`
//! or (one time in [`GRACEFUL_ONE_IN`]) SIGTERM, which must exit 0; restart it on the same
//! data dir, check that it holds what it must before the load resumes, and watch it in
//! between: any exit the soak did not cause is a crash, reported with the process's exit
//! status or signal and the tail of its output, and its data dir is copied aside before the
//! restart touches it. At the end: a graceful stop, one more start, and the read-back of
//! every line (see [`super::verify`]).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::corpus::Corpus;
use super::findings::Findings;
use super::lanes::{
    JOB_OLD, JOB_PUSH, Rng, SYSLOG_HOST, TENANT_OLD, TENANT_PUSH, TENANT_SYSLOG, WORKERS,
};
use super::ledger::{Outcome, WorkerLedger};
use super::life::Life;
use super::options::{Plan, SoakArgs};
use super::push::{PushResult, push_worker};
use super::queries::{KindStats, QueryKind, probe, query_worker};
use super::server::{Incarnation, LOG_TAIL_LINES, Profile, StartError, Supervisor, describe};
use super::summary::{COUNTERS, Ended, IncarnationRecord, Summary, lines_with};
use super::syslog::{DRAIN_TIMEOUT_MS, syslog_worker};
use super::verify::{Verifier, index_stats, read_all};
use super::{Shared, SoakError};
use crate::bench::http::HttpClient;
use crate::bench::stats::new_histogram;
use crate::bench::target::metric_sum;
use crate::ingest::listeners::now_ns;

/// One stop in this many is a graceful SIGTERM; the others are `kill -9`. Kills find more
/// (they land anywhere), graceful stops check the stop path and confirm syslog lines.
pub const GRACEFUL_ONE_IN: u64 = 4;
/// How often the supervisor looks at the process: a crash is noticed within this.
const WATCH_POLL_MS: u64 = 50;
/// How often `/metrics`, `/ready` and the peak RSS are read while an incarnation runs.
const SCRAPE_INTERVAL_MS: u64 = 2_000;
/// How long `/metrics` and `/ready` may take to answer the supervisor while the server is
/// up: they read counters, nothing more; a server that cannot answer them in this long is
/// stuck (and the supervisor must keep to its kill schedule).
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a progress line is printed.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(10);
/// How long the supervisor waits for requests in flight to end after the server is gone:
/// a request to a dead server fails at once, and none takes longer than the client's
/// request timeout (60 s).
const IDLE_TIMEOUT_MS: u64 = 70_000;
/// How long a graceful stop waits for the syslog senders to drain their connections.
const DRAIN_WAIT_MS: u64 = DRAIN_TIMEOUT_MS + 5_000;
/// Lines kept per incarnation of its output that show it went wrong.
const FAILURE_LINES_MAX: usize = 5;
/// Margin around the run's time range when reading lines back and counting them.
const RANGE_SLACK_NS: i64 = 60 * 1_000_000_000;

/// How the supervisor ends an incarnation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    Kill,
    /// SIGTERM; `drain` asks the syslog senders to close their connections first (not at
    /// the final stop, when they have already done so and ended).
    Graceful {
        drain: bool,
    },
}

/// How a watched incarnation went wrong on its own.
enum Failure {
    /// The process ended.
    Exited(std::process::ExitStatus),
    /// It wrote a failure (a panic, an allocator abort message) and is still running.
    Wrote(String),
}

/// The run's state on the supervisor's thread.
struct Run {
    plan: Plan,
    sup: Supervisor,
    rng: Rng,
    shared: Arc<Shared>,
    inc: Option<Incarnation>,
    /// Counters of the current incarnation, as last read.
    counters: BTreeMap<&'static str, f64>,
    /// Whether the current incarnation's counters already raised a violation.
    flagged: bool,
    records: Vec<IncarnationRecord>,
    run_start_ns: i64,
}

pub fn execute(args: SoakArgs) -> Result<bool, SoakError> {
    let plan = Plan::from_args(args)?;
    let findings = Findings::default();
    let corpus = Corpus::load(plan.corpus.as_deref(), plan.seed, &findings)?;
    let sup = Supervisor::new(&plan.server, &plan.out, plan.cores, plan.retention());
    if sup.data_dir.exists() {
        return Err(SoakError::new(format!(
            "{} exists: a soak starts from a fresh data dir (give another --out)",
            sup.data_dir.display()
        )));
    }
    println!(
        "soak: seed {} (replay with --seed {}), {:?} at {} lines/s, {} cores, restarts every {:?}..{:?}",
        plan.seed,
        plan.seed,
        plan.duration,
        plan.rate,
        plan.cores,
        plan.restart_min,
        plan.restart_max
    );
    println!(
        "soak: corpus {}; directory {}",
        corpus.description,
        plan.out.display()
    );
    let mut rng = Rng::new(plan.seed);
    let run_start_ns = now_ns();
    let mut sup = sup;
    let first = match sup.start(pick_profile(&mut rng, &plan.profiles)) {
        Ok(inc) => inc,
        Err(StartError::Soak(e)) => return Err(e),
        Err(StartError::Server(e)) => {
            // A server that does not come up on a fresh data dir is a finding like any other.
            findings.violation("start-failed", e);
            let summary = Summary {
                seed: plan.seed,
                duration: plan.duration,
                rate: plan.rate,
                cores: plan.cores,
                server: plan.server.display().to_string(),
                corpus: corpus.description.clone(),
                out: plan.out.display().to_string(),
                ..Summary::default()
            };
            println!("{}", summary.render(&findings));
            println!("soak: directory kept at {}", plan.out.display());
            return Ok(false);
        }
    };
    let shared = Arc::new(Shared {
        seed: plan.seed,
        streams: plan.streams,
        rate: plan.rate,
        retention: plan.retention(),
        corpus,
        life: Life::default(),
        findings,
        tallies: Default::default(),
        samples: Default::default(),
        drains: Default::default(),
        deadline: Instant::now() + plan.duration,
        queries_ok: Default::default(),
    });
    let mut run = Run {
        plan,
        sup,
        rng,
        shared,
        inc: None,
        counters: BTreeMap::new(),
        flagged: false,
        records: Vec::new(),
        run_start_ns,
    };
    run.announce(&first);
    run.shared.life.go_up(first.number, first.endpoints);
    run.inc = Some(first);
    run.go()
}

fn pick_profile(rng: &mut Rng, profiles: &[Profile]) -> Profile {
    profiles[rng.between(0, profiles.len() as u64 - 1) as usize]
}

fn spawn<T: Send + 'static>(name: String, f: impl FnOnce() -> T + Send + 'static) -> JoinHandle<T> {
    std::thread::Builder::new()
        .name(name)
        .spawn(f)
        .expect("spawn a soak thread")
}

impl Run {
    fn findings(&self) -> &Findings {
        &self.shared.findings
    }

    fn announce(&self, inc: &Incarnation) {
        println!(
            "soak: incarnation {} pid {} ({}) ready after {:.2}s on http {}",
            inc.number,
            inc.pid,
            inc.profile.name,
            inc.ready_after.unwrap_or_default().as_secs_f64(),
            inc.endpoints.http
        );
    }

    fn go(mut self) -> Result<bool, SoakError> {
        let kinds = probe(&self.shared);
        let mut pushers: Vec<JoinHandle<PushResult>> = Vec::new();
        let mut syslogs: Vec<JoinHandle<WorkerLedger>> = Vec::new();
        for (w, (lane, share)) in WORKERS.iter().enumerate() {
            let (s, lane, share, w) = (self.shared.clone(), *lane, *share, w as u16);
            let name = format!("soak-{}-{w}", lane.name());
            if lane.is_syslog() {
                syslogs.push(spawn(name, move || syslog_worker(w, lane, share, s)));
            } else {
                pushers.push(spawn(name, move || push_worker(w, lane, share, s)));
            }
        }
        let queriers: Vec<JoinHandle<BTreeMap<QueryKind, KindStats>>> =
            (0..self.plan.query_workers)
                .map(|i| {
                    let (s, k) = (self.shared.clone(), kinds.clone());
                    spawn(format!("soak-query-{i}"), move || query_worker(i, k, s))
                })
                .collect();

        let syslog_senders = syslogs.len() as u64;
        let mut crashed_out = false;
        let mut next_progress = Instant::now() + PROGRESS_INTERVAL;
        while Instant::now() < self.shared.deadline {
            let life_ms = self.rng.between(
                self.plan.restart_min.as_millis() as u64,
                self.plan.restart_max.as_millis() as u64,
            );
            let graceful = self.rng.one_in(GRACEFUL_ONE_IN);
            let until = (Instant::now() + Duration::from_millis(life_ms)).min(self.shared.deadline);
            match self.watch(until, &mut next_progress) {
                Some(failure) => {
                    self.crash(failure);
                    if !self.plan.keep_going {
                        crashed_out = true;
                        break;
                    }
                }
                None if Instant::now() >= self.shared.deadline => break,
                None => self.stop(
                    if graceful {
                        Stop::Graceful { drain: true }
                    } else {
                        Stop::Kill
                    },
                    syslog_senders,
                ),
            }
            if !self.restart() {
                crashed_out = true;
                break;
            }
        }

        // The load ends; the senders finish their requests (syslog senders drain).
        self.shared.life.end();
        let mut ledgers = Vec::new();
        let mut ack_latency = new_histogram();
        for h in pushers {
            match h.join() {
                Ok(r) => {
                    let _ = ack_latency.add(&r.ack_latency);
                    ledgers.push(r.ledger);
                }
                Err(_) => self
                    .findings()
                    .violation("soak-thread", "a push sender panicked".into()),
            }
        }
        for h in syslogs {
            match h.join() {
                Ok(l) => ledgers.push(l),
                Err(_) => self
                    .findings()
                    .violation("soak-thread", "a syslog sender panicked".into()),
            }
        }
        let mut queries: BTreeMap<QueryKind, KindStats> = BTreeMap::new();
        for h in queriers {
            match h.join() {
                Ok(stats) => {
                    for (k, s) in stats {
                        let q = queries.entry(k).or_default();
                        q.ok += s.ok;
                        q.failed_while_ready += s.failed_while_ready;
                        q.failed_while_stopping += s.failed_while_stopping;
                        q.wrong += s.wrong;
                        q.slowest = q.slowest.max(s.slowest);
                    }
                }
                Err(_) => self
                    .findings()
                    .violation("soak-thread", "a query worker panicked".into()),
            }
        }
        self.end_current();
        ledgers.sort_by_key(|l| l.worker);
        for l in &mut ledgers {
            l.confirmed_conns = self.shared.drains.confirmed_of(l.worker);
        }

        let mut summary = Summary {
            seed: self.plan.seed,
            duration: self.plan.duration,
            rate: self.plan.rate,
            cores: self.plan.cores,
            server: self.plan.server.display().to_string(),
            corpus: self.shared.corpus.description.clone(),
            out: self.plan.out.display().to_string(),
            ack_latency: Some(ack_latency),
            queries,
            ..Summary::default()
        };
        if crashed_out {
            println!("soak: the load stopped early after a crash; verifying what was stored");
        }
        self.verify(&ledgers, &mut summary);
        summary.incarnations = std::mem::take(&mut self.records);
        summary.ledgers = ledgers;
        if !crashed_out {
            // A load cut short by a crash has its finding; missing coverage is its echo.
            self.coverage(&summary);
        }
        let text = summary.render(self.findings());
        println!("{text}");
        let summary_path = self.plan.out.join("summary.txt");
        if let Err(e) = std::fs::write(&summary_path, &text) {
            eprintln!("soak: cannot write {}: {e}", summary_path.display());
        }
        let passed = self.findings().total() == 0;
        if passed && !self.plan.keep_data {
            let _ = std::fs::remove_dir_all(&self.sup.data_dir);
        } else {
            println!("soak: data dir kept at {}", self.sup.data_dir.display());
        }
        println!("soak: summary in {}", summary_path.display());
        Ok(passed)
    }

    /// Watches the current incarnation until `until`: how it went wrong, if it did.
    fn watch(&mut self, until: Instant, next_progress: &mut Instant) -> Option<Failure> {
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

    fn progress(&self) {
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
    fn scrape(&mut self) {
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

    /// Records the end of the current incarnation: its figures, its output's failure lines,
    /// and the judgement of its suspects.
    fn finish_incarnation(&mut self, ended: Ended, crash_noticed: Option<Instant>) {
        let Some(inc) = self.inc.take() else { return };
        // A crash's message already shows its first failure.
        let failures = match ended {
            Ended::Crashed(_) => Vec::new(),
            _ => inc.failure_lines(),
        };
        for line in failures.iter().take(FAILURE_LINES_MAX) {
            self.shared.findings.violation(
                "server-error-output",
                format!(
                    "incarnation {} ({}) wrote: {line}",
                    inc.number,
                    inc.log_path.display()
                ),
            );
        }
        if failures.len() > FAILURE_LINES_MAX {
            self.shared.findings.more(
                "server-error-output",
                (failures.len() - FAILURE_LINES_MAX) as u64,
            );
        }
        let noise = self.shared.findings.settle(inc.number, crash_noticed);
        if noise > 0 {
            self.shared.findings.note(format!(
                "{noise} requests failed around the crash of incarnation {} (counted in the crash)",
                inc.number
            ));
        }
        self.records.push(IncarnationRecord {
            number: inc.number,
            pid: inc.pid,
            profile: inc.profile.name,
            ready_after: inc.ready_after,
            lived: inc.started.elapsed(),
            ended,
            peak_rss_bytes: inc.peak_rss_bytes,
            counters: std::mem::take(&mut self.counters),
        });
        self.flagged = false;
    }

    fn wait_idle(&self) {
        if !self
            .shared
            .life
            .wait_idle(Duration::from_millis(IDLE_TIMEOUT_MS))
        {
            self.shared.findings.violation(
                "soak-stuck",
                format!(
                    "{} requests still in flight {IDLE_TIMEOUT_MS} ms after the server was gone",
                    self.shared.life.in_flight()
                ),
            );
        }
    }

    /// Ends the current incarnation the soak's way.
    fn stop(&mut self, how: Stop, syslog_senders: u64) {
        let Some(inc) = self.inc.as_mut() else { return };
        inc.sample_rss();
        let life = &self.shared.life;
        let ended = match how {
            Stop::Kill => {
                life.go_stopping();
                inc.kill9();
                println!("soak: incarnation {} killed (kill -9)", inc.number);
                Ended::Killed
            }
            Stop::Graceful { drain } => {
                let generation = if drain {
                    let g = life.request_drain();
                    let deadline = Instant::now() + Duration::from_millis(DRAIN_WAIT_MS);
                    while life.drained() < syslog_senders && Instant::now() < deadline {
                        std::thread::sleep(Duration::from_millis(WATCH_POLL_MS));
                    }
                    g
                } else {
                    life.drain_generation()
                };
                life.go_stopping();
                let number = inc.number;
                let (clean, how) = match inc.terminate() {
                    Ok(e) if e.status.is_some_and(|s| s.code() == Some(0)) => (true, e.description),
                    Ok(e) => (false, e.description),
                    Err(e) => (false, e),
                };
                if !clean {
                    self.shared.findings.violation(
                        "graceful-stop",
                        format!(
                            "SIGTERM to incarnation {number} (pid {}): {how}, must exit 0; last lines of {}:\n{}",
                            inc.pid,
                            inc.log_path.display(),
                            inc.log_tail(LOG_TAIL_LINES)
                        ),
                    );
                }
                let confirmed = self.shared.drains.settle(number, generation, clean);
                self.shared.tallies.syslog.add(confirmed, 0);
                println!(
                    "soak: incarnation {number} stopped (SIGTERM: {how}); {confirmed} syslog lines confirmed"
                );
                Ended::Stopped(how)
            }
        };
        life.go_down();
        self.wait_idle();
        self.finish_incarnation(ended, None);
    }

    /// The current incarnation went wrong without the soak's doing: a crash. One that is
    /// still running (a panicked core leaves the process half alive) is killed first.
    fn crash(&mut self, failure: Failure) {
        let noticed = Instant::now();
        self.shared.life.go_down();
        let Some(inc) = self.inc.as_mut() else { return };
        let (how, short) = match failure {
            Failure::Exited(status) => {
                let how = match inc.failure_lines().into_iter().next() {
                    Some(line) => format!("{} (first failure: {line})", describe(&status)),
                    None => describe(&status),
                };
                (how, describe(&status))
            }
            Failure::Wrote(first) => {
                inc.kill9();
                let how = format!(
                    "a failure written and the process still running (a failed core must stop the process; killed by the soak): {}",
                    first.replace('\n', " / ")
                );
                let line = first.lines().next().unwrap_or("").to_string();
                (how, format!("kept running after: {line}"))
            }
        };
        let copy = self.plan.out.join(format!("crash-{}-data", inc.number));
        let copied = match copy_tree(&self.sup.data_dir, &copy) {
            Ok(bytes) => format!(
                "its data dir as it was is copied to {} ({bytes} bytes)",
                copy.display()
            ),
            Err(e) => format!("copying its data dir to {} failed: {e}", copy.display()),
        };
        self.shared.findings.violation(
            "crash",
            format!(
                "incarnation {} (pid {}, profile {}) ended on its own with {how}, after {:.1}s of life; {copied}; last {LOG_TAIL_LINES} lines of {}:\n{}",
                inc.number,
                inc.pid,
                inc.profile.name,
                inc.started.elapsed().as_secs_f64(),
                inc.log_path.display(),
                inc.log_tail(LOG_TAIL_LINES)
            ),
        );
        self.wait_idle();
        self.finish_incarnation(Ended::Crashed(short), Some(noticed));
    }

    /// Starts the next incarnation, checks what it holds, and lets the load resume; false
    /// when it could not start (a violation).
    fn restart(&mut self) -> bool {
        let profile = pick_profile(&mut self.rng, &self.plan.profiles);
        let inc = match self.sup.start(profile) {
            Ok(inc) => inc,
            Err(e) => {
                self.shared.findings.violation(
                    "restart-failed",
                    format!("the server did not come back on its data dir: {e}"),
                );
                return false;
            }
        };
        self.announce(&inc);
        self.restart_check(&inc);
        self.shared.life.go_up(inc.number, inc.endpoints);
        self.inc = Some(inc);
        true
    }

    /// Before the load resumes: each tenant holds at least what it must and at most what
    /// may have reached the server (from `/index/stats`).
    fn restart_check(&self, inc: &Incarnation) {
        let start = self.run_start_ns - RANGE_SLACK_NS;
        let old_start =
            start - (self.shared.retention.as_nanos() as i64) - 5 * 3600 * 1_000_000_000;
        let end = now_ns() + RANGE_SLACK_NS;
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
    fn verify(&mut self, ledgers: &[WorkerLedger], summary: &mut Summary) {
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
        let start = self.run_start_ns - RANGE_SLACK_NS;
        let old_start =
            start - (self.shared.retention.as_nanos() as i64) - 5 * 3600 * 1_000_000_000;
        let end = now_ns() + RANGE_SLACK_NS;
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

    /// Ends the current incarnation, if any, with a graceful stop; one that has exited on
    /// its own meanwhile is a crash.
    fn end_current(&mut self) {
        let Some(inc) = self.inc.as_mut() else { return };
        match inc.exited() {
            Some(status) => self.crash(Failure::Exited(status)),
            None => self.stop(Stop::Graceful { drain: false }, 0),
        }
    }

    /// A soak that never sealed, compacted or dropped anything tested less than it says.
    fn coverage(&self, summary: &Summary) {
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

/// Copies a directory tree (regular files and directories); returns the bytes copied.
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<u64> {
    std::fs::create_dir_all(to)?;
    let mut bytes = 0;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let target = to.join(entry.file_name());
        if kind.is_dir() {
            bytes += copy_tree(&entry.path(), &target)?;
        } else if kind.is_file() {
            bytes += std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_a_tree() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("src");
        std::fs::create_dir_all(src.join("wal/shard-0")).unwrap();
        std::fs::write(src.join("wal/shard-0/a.wal"), b"12345").unwrap();
        std::fs::write(src.join("manifest"), b"xy").unwrap();
        let n = copy_tree(&src, &d.path().join("copy")).unwrap();
        assert_eq!(n, 7);
        assert_eq!(
            std::fs::read(d.path().join("copy/wal/shard-0/a.wal")).unwrap(),
            b"12345"
        );
    }
}

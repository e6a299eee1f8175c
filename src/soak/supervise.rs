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
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::corpus::Corpus;
use super::findings::Findings;
use super::lanes::{Rng, WORKERS};
use super::ledger::WorkerLedger;
use super::life::Life;
use super::options::{Plan, SoakArgs};
use super::push::{PushResult, push_worker};
use super::queries::{KindStats, QueryKind, probe, query_worker};
use super::server::{Incarnation, LOG_TAIL_LINES, Profile, StartError, Supervisor, describe};
use super::summary::{Ended, IncarnationRecord, Summary};
use super::syslog::{DRAIN_TIMEOUT_MS, syslog_worker};
use super::{Shared, SoakError};
use crate::bench::stats::new_histogram;
use crate::ingest::listeners::now_ns;

/// One stop in this many is a graceful SIGTERM; the others are `kill -9`. Kills find more
/// (they land anywhere), graceful stops check the stop path and confirm syslog lines.
pub const GRACEFUL_ONE_IN: u64 = 4;
/// How often the supervisor looks at the process: a crash is noticed within this.
pub(super) const WATCH_POLL_MS: u64 = 50;
/// How long the supervisor waits for requests in flight to end after the server is gone:
/// a request to a dead server fails at once, and none takes longer than the client's
/// request timeout (60 s).
const IDLE_TIMEOUT_MS: u64 = 70_000;
/// How long a graceful stop waits for the syslog senders to drain their connections.
const DRAIN_WAIT_MS: u64 = DRAIN_TIMEOUT_MS + 5_000;
/// Lines kept per incarnation of its output that show it went wrong.
const FAILURE_LINES_MAX: usize = 5;

/// How the supervisor ends an incarnation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Stop {
    Kill,
    /// SIGTERM; `drain` asks the syslog senders to close their connections first (not at
    /// the final stop, when they have already done so and ended).
    Graceful {
        drain: bool,
    },
}

/// How a watched incarnation went wrong on its own.
pub(super) enum Failure {
    /// The process ended.
    Exited(std::process::ExitStatus),
    /// It wrote a failure (a panic, an allocator abort message) and is still running.
    Wrote(String),
}

/// The run's state on the supervisor's thread.
pub(super) struct Run {
    pub(super) plan: Plan,
    pub(super) sup: Supervisor,
    pub(super) rng: Rng,
    pub(super) shared: Arc<Shared>,
    pub(super) inc: Option<Incarnation>,
    /// Counters of the current incarnation, as last read.
    pub(super) counters: BTreeMap<&'static str, f64>,
    /// Whether the current incarnation's counters already raised a violation.
    pub(super) flagged: bool,
    pub(super) records: Vec<IncarnationRecord>,
    pub(super) run_start_ns: i64,
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
    pub(super) fn findings(&self) -> &Findings {
        &self.shared.findings
    }

    pub(super) fn announce(&self, inc: &Incarnation) {
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
        let mut next_progress = super::watch::next_progress();
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

    /// Records the end of the current incarnation: its figures, its output's failure lines,
    /// and the judgement of its suspects.
    pub(super) fn finish_incarnation(&mut self, ended: Ended, crash_noticed: Option<Instant>) {
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

    pub(super) fn wait_idle(&self) {
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
    pub(super) fn stop(&mut self, how: Stop, syslog_senders: u64) {
        // The counters the incarnation ends with: the watch reads them only every few
        // seconds, and not at all while everything is read back, when a slow (debug) server
        // on a loaded machine finishes the compactions that the load kept it from.
        self.scrape();
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
    pub(super) fn crash(&mut self, failure: Failure) {
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
    pub(super) fn restart(&mut self) -> bool {
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

    /// Ends the current incarnation, if any, with a graceful stop; one that has exited on
    /// its own meanwhile is a crash.
    pub(super) fn end_current(&mut self) {
        let Some(inc) = self.inc.as_mut() else { return };
        match inc.exited() {
            Some(status) => self.crash(Failure::Exited(status)),
            None => self.stop(Stop::Graceful { drain: false }, 0),
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

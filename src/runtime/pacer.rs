//! Keeps a core's query work to a share of its wall time while ingest is busy on it.
//!
//! Task-queue shares alone do not protect ingest: glommio gives the query queue every moment
//! the ingest queue is not runnable (waiting for the network, for an fsync), so a looping
//! query keeps the executor thread 100% busy. That time is taken from what shares cannot see:
//! the encoder thread that compresses sealed blocks on the same core, the kernel's network
//! and io_uring work, and the latency of every I/O completion ingest waits for (reaped only
//! when the executor returns to its reactor). Measured on one core, a looping query took
//! about 37% of it under a 20% share, and push ingest lost a third of its rate.
//!
//! So while ingest is busy on the core (it ran at least [`INGEST_BUSY_FRACTION`] of the last
//! [`WINDOW`]), queries get what the rest of the CPU's work leaves, less a reserve it can
//! grow into: each window, the CPU's busy time (`/proc/stat`: the executor, its encoder
//! thread, the kernel's network work, and any other process on it, such as a load generator
//! or the service whose logs these are) less the query queue's runtime gives the others'
//! share, and queries may use `1 - others - reserve`, but never less than a floor so that
//! they always progress. Without `/proc/stat`, the CPU time of the executor and encoder
//! threads stands for the CPU's.
//!
//! Scans pause at their yield points while the query queue's runtime (glommio's own
//! accounting) is over that share of the wall time. The pauses are timers, so the executor
//! really goes idle and the CPU goes to whoever needs it. A core that ingests little keeps
//! most of its time for queries; one saturated by ingest gives them the floor.

use std::cell::RefCell;
use std::time::{Duration, Instant};

use glommio::TaskQueueHandle;

/// The span over which the core's use is judged and the query share recomputed.
/// `/proc/stat` counts in ticks of 10 ms: 200 ms make the busy share exact to 5%.
pub const WINDOW: Duration = Duration::from_millis(200);
/// Ingest counts as busy once it ran this share of the last window (its idle timers and a
/// trickle of lines do not slow queries down).
pub const INGEST_BUSY_FRACTION: f64 = 0.05;
/// Query time a core may bank while ingest is busy, so a short query is not paused at all.
const CREDIT_MAX: Duration = Duration::from_millis(20);

/// How much of a core queries may take while ingest is busy on it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QueryShare {
    /// Share of the core left idle for ingest to grow into (0: none).
    pub reserve: f64,
    /// The least share queries keep however busy the core is (1: never pace).
    pub floor: f64,
}

impl QueryShare {
    pub const DEFAULT: QueryShare = QueryShare {
        reserve: crate::config::QUERY_CPU_HEADROOM_DEFAULT,
        floor: crate::config::QUERY_CPU_SHARE_MIN_DEFAULT,
    };
    /// Queries are never paced.
    pub const OFF: QueryShare = QueryShare {
        reserve: 0.0,
        floor: 1.0,
    };
}

/// What the pacer reads at each yield point: cumulative times.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub now: Instant,
    pub ingest_runtime: Duration,
    pub query_runtime: Duration,
    /// Busy time of the CPU this core runs on (read only when [`PaceState::window_due`]).
    pub core_cpu: Duration,
}

/// The pacing arithmetic, apart from clocks and executors (see the module docs).
#[derive(Debug)]
pub struct PaceState {
    limits: QueryShare,
    /// The share queries may use now.
    share: f64,
    last: Option<Sample>,
    /// The sample that opened the current window.
    window: Option<Sample>,
    ingest_busy: bool,
    /// Query runtime beyond its share, in seconds (negative: credit).
    debt: f64,
}

impl PaceState {
    pub fn new(limits: QueryShare) -> PaceState {
        let limits = QueryShare {
            reserve: limits.reserve.clamp(0.0, 1.0),
            floor: limits.floor.clamp(0.01, 1.0),
        };
        PaceState {
            limits,
            share: 1.0,
            last: None,
            window: None,
            ingest_busy: false,
            debt: 0.0,
        }
    }

    /// The share queries may use now.
    pub fn share(&self) -> f64 {
        self.share
    }

    /// Whether a sample taken now closes a window (and so needs the CPU's busy time).
    pub fn window_due(&self, now: Instant) -> bool {
        self.window
            .is_none_or(|w| now.saturating_duration_since(w.now) >= WINDOW)
    }

    /// Takes a new sample and says how long the query should pause before going on.
    pub fn observe(&mut self, s: Sample) -> Duration {
        if self.limits.floor >= 1.0 {
            return Duration::ZERO;
        }
        let Some(last) = self.last.replace(s) else {
            self.window = Some(s);
            return Duration::ZERO;
        };
        let w = *self.window.get_or_insert(s);
        let span = s.now.saturating_duration_since(w.now).as_secs_f64();
        let ingest_ran = s
            .ingest_runtime
            .saturating_sub(w.ingest_runtime)
            .as_secs_f64();
        if span >= WINDOW.as_secs_f64() {
            self.ingest_busy = ingest_ran >= INGEST_BUSY_FRACTION * span;
            let query_ran = s
                .query_runtime
                .saturating_sub(w.query_runtime)
                .as_secs_f64();
            let cpu = s.core_cpu.saturating_sub(w.core_cpu).as_secs_f64();
            let others = ((cpu - query_ran) / span).max(0.0);
            self.share = (1.0 - others - self.limits.reserve).clamp(self.limits.floor, 1.0);
            self.window = Some(s);
        } else if ingest_ran >= INGEST_BUSY_FRACTION * WINDOW.as_secs_f64() {
            // Enough ingest already in this window: no need to wait for its end.
            self.ingest_busy = true;
        }
        if !self.ingest_busy || self.share >= 1.0 {
            self.debt = 0.0;
            return Duration::ZERO;
        }
        let wall = s.now.saturating_duration_since(last.now).as_secs_f64();
        let ran = s
            .query_runtime
            .saturating_sub(last.query_runtime)
            .as_secs_f64();
        self.debt = (self.debt + ran - self.share * wall).max(-CREDIT_MAX.as_secs_f64());
        if self.debt <= 0.0 {
            return Duration::ZERO;
        }
        // Paused for debt / share, the query's share of that wall time pays the debt off.
        Duration::from_secs_f64(self.debt / self.share)
    }
}

/// One core's pacer: the queues it watches and its state.
pub struct QueryPacer {
    queues: RefCell<Option<(TaskQueueHandle, TaskQueueHandle)>>,
    state: RefCell<PaceState>,
    /// Runtime of the ingest and query queues so far: glommio's stats are reset by each
    /// read, so the pacer sums them.
    runtimes: std::cell::Cell<(Duration, Duration)>,
    /// The CPU's busy time at the last window's end.
    core_cpu: std::cell::Cell<Duration>,
    /// Pauses taken and their total length, for `/metrics`.
    pub pauses: crate::metrics::Counter,
    pub paused_ns: crate::metrics::Counter,
}

impl Default for QueryPacer {
    fn default() -> Self {
        QueryPacer {
            queues: RefCell::new(None),
            state: RefCell::new(PaceState::new(QueryShare::OFF)),
            runtimes: Default::default(),
            core_cpu: Default::default(),
            pauses: Default::default(),
            paused_ns: Default::default(),
        }
    }
}

impl QueryPacer {
    /// Watches these queues of the current executor and keeps queries to `limits`.
    pub fn configure(&self, ingest: TaskQueueHandle, query: TaskQueueHandle, limits: QueryShare) {
        *self.queues.borrow_mut() = Some((ingest, query));
        *self.state.borrow_mut() = PaceState::new(limits);
    }

    /// The share of the core queries may use now (1 while ingest is quiet).
    pub fn share(&self) -> f64 {
        self.state.borrow().share()
    }

    /// Called by scans between batches: pauses while the query queue is over its share.
    pub async fn pace(&self) {
        let Some((ingest, query)) = *self.queues.borrow() else {
            return;
        };
        let ex = glommio::executor();
        let (Ok(i), Ok(q)) = (ex.task_queue_stats(ingest), ex.task_queue_stats(query)) else {
            return;
        };
        let (ingest_runtime, query_runtime) = self.runtimes.get();
        let totals = (ingest_runtime + i.runtime(), query_runtime + q.runtime());
        self.runtimes.set(totals);
        let now = Instant::now();
        let core_cpu = if self.state.borrow().window_due(now) {
            let busy = cpu_busy_time();
            self.core_cpu.set(busy);
            busy
        } else {
            self.core_cpu.get()
        };
        let pause = self.state.borrow_mut().observe(Sample {
            now,
            ingest_runtime: totals.0,
            query_runtime: totals.1,
            core_cpu,
        });
        if pause.is_zero() {
            return;
        }
        self.pauses.inc();
        self.paused_ns.add(pause.as_nanos() as u64);
        glommio::timer::sleep(pause).await;
    }
}

/// Busy time of the CPU the calling thread runs on, from `/proc/stat`; without it, the CPU
/// time of this thread and of its core's encoder thread.
fn cpu_busy_time() -> Duration {
    // SAFETY: no arguments; returns -1 on error.
    let cpu = unsafe { libc::sched_getcpu() };
    let from_proc = usize::try_from(cpu).ok().and_then(|cpu| {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        cpu_busy_ticks(&stat, cpu)
    });
    match from_proc {
        Some(ticks) => {
            // SAFETY: no arguments.
            let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
            Duration::from_nanos(ticks.saturating_mul(1_000_000_000 / hz))
        }
        None => {
            cpu_clock_time(libc::CLOCK_THREAD_CPUTIME_ID).unwrap_or_default()
                + crate::store::encoder::encoder_cpu_time()
        }
    }
}

/// Busy ticks of `cpu` in a `/proc/stat` text: user, nice, system, irq, softirq and steal
/// (idle and iowait are not busy; guest time is inside user).
fn cpu_busy_ticks(stat: &str, cpu: usize) -> Option<u64> {
    let name = format!("cpu{cpu}");
    let line = stat
        .lines()
        .find(|l| l.split_ascii_whitespace().next() == Some(name.as_str()))?;
    let f: Vec<u64> = line
        .split_ascii_whitespace()
        .skip(1)
        .map(|v| v.parse().ok())
        .collect::<Option<_>>()?;
    let at = |i: usize| f.get(i).copied().unwrap_or(0);
    (f.len() >= 4).then(|| at(0) + at(1) + at(2) + at(5) + at(6) + at(7))
}

/// The time of a CPU-time clock (`None`: the clock is gone, as a thread that ended).
pub fn cpu_clock_time(clock: libc::clockid_t) -> Option<Duration> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec for the call to write; a bad clock id is an error
    // return, not undefined behaviour.
    let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
    (rc == 0).then(|| Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A core simulated millisecond by millisecond: ingest wants `ingest` of each one (its
    /// executor and encoder work together), a query wants all the rest.
    struct Core {
        state: PaceState,
        t0: Instant,
        ms: u64,
        ingest_ms: f64,
        query_ms: u64,
        paused_until: u64,
    }

    impl Core {
        fn new(limits: QueryShare) -> Core {
            let mut c = Core {
                state: PaceState::new(limits),
                t0: Instant::now(),
                ms: 0,
                ingest_ms: 0.0,
                query_ms: 0,
                paused_until: 0,
            };
            c.observe();
            c
        }

        fn observe(&mut self) -> Duration {
            let ingest = Duration::from_secs_f64(self.ingest_ms / 1000.0);
            let query = Duration::from_millis(self.query_ms);
            self.state.observe(Sample {
                now: self.t0 + Duration::from_millis(self.ms),
                ingest_runtime: ingest,
                query_runtime: query,
                core_cpu: ingest + query,
            })
        }

        /// One millisecond in which ingest used `ingest` of it and the query `query` ms.
        fn step(&mut self, ingest: f64, query: u64) -> Duration {
            self.ms += 1;
            self.ingest_ms += ingest;
            self.query_ms += query;
            self.observe()
        }

        /// Runs `ms` milliseconds. An unpaused query takes 40% of them whatever ingest
        /// wants (as glommio gives the query queue the moments ingest waits for I/O); the
        /// others go to ingest, which uses `ingest` of each.
        fn run(&mut self, ms: u64, ingest: f64, query_wants: bool) -> (f64, f64) {
            let (i0, q0) = (self.ingest_ms, self.query_ms);
            for _ in 0..ms {
                self.ms += 1;
                let query_runs = query_wants && self.ms > self.paused_until;
                if query_runs && self.ms % 100 >= 60 {
                    self.query_ms += 1;
                } else {
                    self.ingest_ms += ingest;
                }
                let pause = self.observe();
                if !pause.is_zero() {
                    self.paused_until = self.ms + pause.as_millis() as u64;
                }
            }
            (
                (self.ingest_ms - i0) / ms as f64,
                (self.query_ms - q0) as f64 / ms as f64,
            )
        }
    }

    #[test]
    fn busy_ticks_come_from_the_cpu_line_without_idle_and_iowait() {
        let stat = "cpu  10 1 5 1000 7 2 3 4 0 0\n\
                    cpu0 1 2 3 400 5 6 7 8 9 10\n\
                    cpu1 10 20 30 600 50 60 70 80 90 100\n\
                    intr 12345\n";
        assert_eq!(cpu_busy_ticks(stat, 0), Some(1 + 2 + 3 + 6 + 7 + 8));
        assert_eq!(cpu_busy_ticks(stat, 1), Some(10 + 20 + 30 + 60 + 70 + 80));
        assert_eq!(cpu_busy_ticks(stat, 2), None);
        assert_eq!(cpu_busy_ticks("cpu0 1 x 3 4\n", 0), None);
        // Old kernels have fewer columns.
        assert_eq!(cpu_busy_ticks("cpu0 1 2 3 4\n", 0), Some(6));
    }

    #[test]
    fn a_core_saturated_by_ingest_gives_queries_their_floor() {
        let mut core = Core::new(QueryShare::DEFAULT);
        let (_, query) = core.run(20_000, 0.95, true);
        assert!((0.07..=0.14).contains(&query), "query share {query}");
        assert!((core.state.share() - 0.1).abs() < 1e-9);
    }

    #[test]
    fn a_core_with_light_ingest_leaves_queries_most_of_it() {
        let mut core = Core::new(QueryShare::DEFAULT);
        let (_, query) = core.run(20_000, 0.2, true);
        assert!(query > 0.35, "query share {query}");
    }

    #[test]
    fn a_query_runs_freely_while_ingest_is_quiet() {
        let mut core = Core::new(QueryShare::DEFAULT);
        let (_, query) = core.run(20_000, 0.01, true);
        assert!(query > 0.39, "query share {query}");
    }

    #[test]
    fn off_never_pauses() {
        let mut core = Core::new(QueryShare::OFF);
        let (_, query) = core.run(20_000, 0.95, true);
        assert!(query > 0.39, "query share {query}");
        assert!(core.state.share() >= 1.0);
    }

    #[test]
    fn a_short_query_under_ingest_is_not_paused() {
        let mut core = Core::new(QueryShare::DEFAULT);
        core.run(1000, 0.5, false);
        // A 15 ms query fits in the credit banked while no query ran...
        for _ in 0..15 {
            assert!(core.step(0.5, 1).is_zero());
        }
        // ...a longer one does not.
        assert!((0..30).any(|_| !core.step(0.5, 1).is_zero()));
    }

    #[test]
    fn pacing_stops_when_ingest_goes_quiet() {
        let mut core = Core::new(QueryShare::DEFAULT);
        core.run(1000, 0.9, false);
        assert!((0..100).any(|_| !core.step(0.5, 1).is_zero()));
        // Two windows without ingest: the debt is forgiven.
        for _ in 0..(2 * WINDOW.as_millis() + 50) {
            core.step(0.0, 1);
        }
        assert!(core.step(0.0, 1).is_zero());
    }
}

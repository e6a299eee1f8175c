//! Fail-stop: a core that dies takes the whole process with it, at once.
//!
//! A server with one dead core is worse than a dead server: its listeners keep accepting
//! connections nobody serves, its streams' writes and every query hang, and `/ready` may
//! still say yes. So any panic on any thread of `serve` (a core's executor, an encoder thread)
//! ends the process with [`FAIL_STOP_EXIT_CODE`] right after the panic message, and a
//! watchdog thread ends it the same way if a core stops turning (its heartbeat older than
//! `core_stall_max`) or its executor returns while the server is not stopping. systemd
//! restarts it (`Restart=on-failure`), and the WAL makes that safe: everything acknowledged is
//! durable, and a restart replays it.
//!
//! Tests reach these paths through fault injection, read once at start from
//! [`FAULT_ENV`]: `panic:CORE:AFTER_MS` panics core CORE's executor AFTER_MS milliseconds after
//! the server is ready, `stall:CORE:AFTER_MS` blocks its thread instead. Nothing else reads
//! it; an unset or malformed value injects nothing (a malformed one says so).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::Lifecycle;

/// Exit status of a fail-stop (`EX_SOFTWARE`): distinct from 1 (a failure to start or to
/// stop cleanly) and 2 (a refused configuration), so that logs and units tell them apart.
pub const FAIL_STOP_EXIT_CODE: i32 = 70;

/// How often the watchdog looks.
const WATCHDOG_INTERVAL: Duration = Duration::from_millis(500);

/// The environment variable of fault injection (see the module doc).
pub const FAULT_ENV: &str = "SHARDLOG_TEST_FAULT";

/// Ends the process at once: a fail-stop.
pub fn fail_stop(why: &str) -> ! {
    eprintln!(
        "shardlog: {why}; stopping the whole process (fail-stop, exit {FAIL_STOP_EXIT_CODE}): \
         a restart replays the write-ahead log, so nothing acknowledged is lost"
    );
    std::process::exit(FAIL_STOP_EXIT_CODE)
}

/// Makes a panic on any thread a fail-stop, after the usual panic message.
pub fn install_panic_hook() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        report(info);
        let thread = std::thread::current();
        fail_stop(&format!(
            "thread {} panicked",
            thread.name().unwrap_or("(unnamed)")
        ));
    }));
}

/// When each core last proved it is turning, in milliseconds since the process started.
pub struct Heartbeats {
    started: Instant,
    last_ms: Vec<AtomicU64>,
    /// Set (to 1) when a core's executor has returned.
    exited: Vec<AtomicU64>,
}

impl Heartbeats {
    pub fn new(cores: usize) -> Heartbeats {
        Heartbeats {
            started: Instant::now(),
            last_ms: (0..cores).map(|_| AtomicU64::new(0)).collect(),
            exited: (0..cores).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    pub fn beat(&self, core: usize) {
        self.last_ms[core].store(self.now_ms(), Ordering::Release);
    }

    pub fn exited(&self, core: usize) {
        self.exited[core].store(1, Ordering::Release);
    }
}

/// Starts the watchdog thread: once every core is ready, it ends the process if a core's
/// heartbeat is older than `stall_max`, or a core's executor returned, while the server is
/// not stopping.
pub fn start_watchdog(lifecycle: Arc<Lifecycle>, stall_max: Duration) {
    let spawned = std::thread::Builder::new()
        .name("watchdog".into())
        .spawn(move || {
            loop {
                std::thread::sleep(WATCHDOG_INTERVAL);
                if lifecycle.is_stopping() {
                    return;
                }
                if !lifecycle.all_recovered() {
                    continue;
                }
                let beats = &lifecycle.heartbeats;
                let now = beats.now_ms();
                for core in 0..beats.last_ms.len() {
                    if beats.exited[core].load(Ordering::Acquire) != 0 {
                        fail_stop(&format!("core {core}'s executor stopped while serving"));
                    }
                    let last = beats.last_ms[core].load(Ordering::Acquire);
                    let stalled = Duration::from_millis(now.saturating_sub(last));
                    if stalled > stall_max {
                        fail_stop(&format!(
                            "core {core} has not turned for {stalled:?} (core_stall_max is \
                             {stall_max:?}): a task is blocking its thread"
                        ));
                    }
                }
            }
        });
    if let Err(e) = spawned {
        eprintln!("shardlog: cannot start the watchdog, stalled cores go unnoticed: {e}");
    }
}

/// A fault to inject (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Panic { core: usize, after: Duration },
    Stall { core: usize, after: Duration },
}

impl Fault {
    /// The fault [`FAULT_ENV`] asks for, if any.
    pub fn from_env() -> Option<Fault> {
        let value = std::env::var(FAULT_ENV).ok()?;
        let fault = Fault::parse(&value);
        if fault.is_none() {
            eprintln!(
                "shardlog: ignoring {FAULT_ENV}={value:?}: expected panic:CORE:AFTER_MS or \
                 stall:CORE:AFTER_MS"
            );
        }
        fault
    }

    fn parse(value: &str) -> Option<Fault> {
        let mut parts = value.split(':');
        let kind = parts.next()?;
        let core = parts.next()?.parse().ok()?;
        let after = Duration::from_millis(parts.next()?.parse().ok()?);
        if parts.next().is_some() {
            return None;
        }
        match kind {
            "panic" => Some(Fault::Panic { core, after }),
            "stall" => Some(Fault::Stall { core, after }),
            _ => None,
        }
    }

    fn core(self) -> usize {
        match self {
            Fault::Panic { core, .. } | Fault::Stall { core, .. } => core,
        }
    }

    /// On core `core`, once the server is ready: waits, then does the harm.
    pub async fn inject_on(self, core: usize) {
        if self.core() != core {
            return;
        }
        match self {
            Fault::Panic { after, .. } => {
                glommio::timer::sleep(after).await;
                panic!("injected fault: core {core} panics ({FAULT_ENV})");
            }
            Fault::Stall { after, .. } => {
                glommio::timer::sleep(after).await;
                eprintln!("shardlog: injected fault: core {core} blocks its thread ({FAULT_ENV})");
                loop {
                    std::thread::sleep(Duration::from_secs(3600));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_parse_or_are_ignored() {
        assert_eq!(
            Fault::parse("panic:1:250"),
            Some(Fault::Panic {
                core: 1,
                after: Duration::from_millis(250)
            })
        );
        assert_eq!(
            Fault::parse("stall:0:0"),
            Some(Fault::Stall {
                core: 0,
                after: Duration::ZERO
            })
        );
        for bad in [
            "",
            "panic",
            "panic:x:1",
            "panic:1",
            "boom:1:1",
            "panic:1:1:1",
        ] {
            assert_eq!(Fault::parse(bad), None, "{bad}");
        }
    }
}

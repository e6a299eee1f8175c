//! The soak, `shardlog soak`: runs a real server under mixed load for a set time, kills it
//! (`kill -9`) and stops it (SIGTERM) at random moments, restarts it on the same data dir,
//! and checks that it never crashed, never failed a request while ready, and holds every
//! acknowledged line exactly once.
//!
//! Which question it answers: "is this server safe to run?" Not how fast it is (that is
//! `shardlog bench`), but whether hours of ordinary traffic, with sealing, compaction and
//! retention running all the time and the process dying at any moment, lose, duplicate or
//! damage a line, crash the process, or leave it answering errors.
//!
//! The parts: [`options`] (flags and their validation), [`corpus`] (the lines' text),
//! [`lanes`] (what each sender sends and how each line is marked and rebuilt), [`ledger`]
//! (what was sent and how it ended, and so what must be stored), [`life`] (the server's
//! phase as the threads see it), [`push`] and [`syslog`] (the senders), [`queries`] (the
//! query workers and their checks), [`server`] (spawning, stopping and watching the
//! server), [`supervise`] (the run: the kill and restart schedule, crashes, restarts),
//! `watch` (the incarnation between stops) and `checks` (after each restart and at the
//! end), [`verify`] (reading everything back), [`findings`] and [`summary`].
//!
//! The settings make everything happen often: parts of a few KiB up to 1 MiB, seal ages of
//! half a second to five seconds, a small heads budget, 1 MiB WAL segments, hour-wide
//! partitions, and a retention window that the old-timestamp lane writes beyond, so that
//! retention drops partitions during the run (while it never touches the checked lines).

mod checks;
pub mod corpus;
pub mod findings;
pub mod lanes;
pub mod ledger;
pub mod life;
pub mod options;
pub mod push;
pub mod queries;
pub mod server;
pub mod summary;
pub mod supervise;
pub mod syslog;
pub mod verify;
mod watch;

use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

pub use options::{CORPUS_DIR_DEFAULT, SoakArgs};

/// A soak error: the soak could not be carried out (bad option, no binary, the first start
/// failed, I/O). A soak that ran and found something is not an error: it is a failed run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SoakError(pub String);

impl SoakError {
    pub fn new(msg: impl Into<String>) -> SoakError {
        SoakError(msg.into())
    }
}

impl std::fmt::Display for SoakError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SoakError {}

/// What every thread of a soak shares.
pub struct Shared {
    pub seed: u64,
    pub streams: usize,
    pub rate: u64,
    /// The server's retention window (see [`options::Plan::retention`]).
    pub retention: Duration,
    pub corpus: corpus::Corpus,
    pub life: life::Life,
    pub findings: findings::Findings,
    pub tallies: ledger::Tallies,
    pub samples: push::AckSamples,
    pub drains: syslog::Drains,
    /// When the load ends.
    pub deadline: Instant,
    /// Answers judged right, over all query workers (for the progress line).
    pub queries_ok: AtomicU64,
}

/// Runs a soak; returns the process exit code: 0 when nothing was found, 1 when the soak
/// found a violation, 2 when it could not run.
pub fn run(args: SoakArgs) -> i32 {
    match supervise::execute(args) {
        Ok(true) => 0,
        Ok(false) => 1,
        Err(e) => {
            eprintln!("shardlog soak: {e}");
            2
        }
    }
}

//! Each core's part encoder thread: zstd and bloom building at sealing and compaction sizes
//! take tens to thousands of milliseconds, which would stall ingest and queries on the core.
//!
//! The work goes to this executor's own encoder threads ([`ENCODERS`]), not to glommio's
//! blocking pool: glommio runs file creation, renames and directory syncs there, and a WAL
//! segment rollover queued behind a long compaction stalled every append for seconds. The
//! encoder threads inherit the executor's CPU affinity: the work is this core's.
//!
//! There are three, one per [`Encoder`] class, at three priorities (Linux nice values,
//! which are per thread):
//! - Sealing that keeps up runs at [`SEAL_NICE`], below the executor. At equal priority the
//!   scheduler gave the seal encoder half of the core whenever both could run: a request
//!   being parsed took twice as long, and the io_uring worker that issues the WAL's direct
//!   writes (a thread on the same CPU) waited its turn, so that a 0.5 ms write was
//!   acknowledged after 3 to 6 ms (measured at 80% of the maximum push rate).
//! - Sealing that has fallen behind ([`Encoder::SealBehind`]: the heads grew by half their
//!   budget while the last round encoded) runs at the executor's priority, so that it takes
//!   its share of the core before ingest has to wait for memory.
//! - Compaction and part rewrites can wait: theirs runs at the lowest ([`BACKGROUND_NICE`])
//!   and takes the CPU time that ingest and sealing leave. With one thread for both, a seal
//!   round queued behind a compaction's encode (1 to 2 s at level 9 on a busy core,
//!   measured), so its heads grew meanwhile and the next round was as much larger.
//!
//! The result comes back through a shared slot that the waiting task polls on a timer, never
//! through a waker: a glommio task's waker must not be woken or dropped on another thread
//! (glommio 0.9's cross-thread waker path can free a task twice; see `runtime::mesh`). An
//! encode takes milliseconds at the least, so polling every few hundred microseconds, then
//! less often, costs nothing that matters.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::StoreError;
use crate::chunk::ChunkError;
use crate::storage::Disk;

/// First wait between two looks at an encode's slot: about the shortest encode.
const POLL_INTERVAL_MIN: Duration = Duration::from_micros(200);

/// Longest wait between two looks: what a long encode may be late by, against ones that take
/// hundreds of milliseconds or more.
const POLL_INTERVAL_MAX: Duration = Duration::from_millis(5);

/// Scheduler turns an encode takes on a simulated disk (see [`encode_off_core`]).
const SIM_ENCODE_TURNS: usize = 64;

/// The nice value of the background encoder thread: the lowest priority, so that the
/// executor and the seal encoders on the same CPU take it over as soon as they can run.
pub const BACKGROUND_NICE: libc::c_int = 19;

/// The nice value of the seal encoder thread while sealing keeps up: the executor gets
/// about nine tenths of the core when both want it (weights 1024 against 110), and the seal
/// encoder still comes before compaction.
pub const SEAL_NICE: libc::c_int = 10;

type EncodeJob = Box<dyn FnOnce() + Send>;

/// Which of the executor's encoder threads runs a job (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoder {
    /// Sealing that keeps up with ingest, at [`SEAL_NICE`].
    Seal,
    /// Sealing that has fallen behind, at the executor's priority.
    SealBehind,
    /// Compaction and part rewrites, at [`BACKGROUND_NICE`].
    Background,
}

/// How many [`Encoder`] classes there are.
const ENCODER_CLASSES: usize = 3;

impl Encoder {
    fn index(self) -> usize {
        self as usize
    }

    /// The nice value the class's thread runs at (0 is the executor's).
    pub fn nice(self) -> libc::c_int {
        match self {
            Encoder::Seal => SEAL_NICE,
            Encoder::SealBehind => 0,
            Encoder::Background => BACKGROUND_NICE,
        }
    }

    /// The end of the thread's name, after the executor's.
    fn thread_suffix(self) -> &'static str {
        match self {
            Encoder::Seal => "encode",
            Encoder::SealBehind => "encode+",
            Encoder::Background => "compact",
        }
    }
}

thread_local! {
    /// The encoder threads of this executor, by [`Encoder`], each started on first use.
    static ENCODERS: RefCell<[Option<std::sync::mpsc::Sender<EncodeJob>>; ENCODER_CLASSES]> =
        const { RefCell::new([None, None, None]) };
    /// The CPU-time clocks of those threads, for the query pacer (see `runtime::pacer`).
    static ENCODER_CLOCKS: std::cell::Cell<[Option<libc::clockid_t>; ENCODER_CLASSES]> =
        const { std::cell::Cell::new([None; ENCODER_CLASSES]) };
}

/// CPU time this executor's encoder threads have used (zero before they start).
pub fn encoder_cpu_time() -> Duration {
    ENCODER_CLOCKS
        .get()
        .into_iter()
        .flatten()
        .filter_map(crate::runtime::pacer::cpu_clock_time)
        .sum()
}

/// Where the encoder thread leaves a result for the waiting task.
struct Outcome<R> {
    value: Mutex<Option<R>>,
    done: AtomicBool,
}

/// Runs `build(&inputs)` on this core's encoder thread of class `encoder` and returns its
/// result.
///
/// On a simulated disk the work runs inline, then yields a fixed number of times: crash tests
/// name a crash by its operation number, which must mean the same operation in every run, and
/// an encoder thread would make the interleaving of tasks depend on its speed.
pub async fn encode_off_core<T, R, F>(
    disk: &Disk,
    encoder: Encoder,
    inputs: T,
    build: F,
) -> Result<R, StoreError>
where
    T: Send + 'static,
    R: Send + 'static,
    F: FnOnce(&T) -> Result<R, ChunkError> + Send + 'static,
{
    if disk.sim().is_some() {
        let r = build(&inputs);
        // Stand for the encoding time with a fixed number of turns, so that other tasks
        // (appends, queries) run while a seal round is in progress, the same way every run.
        for _ in 0..SIM_ENCODE_TURNS {
            futures_lite::future::yield_now().await;
        }
        return r.map_err(StoreError::from);
    }
    let outcome = Arc::new(Outcome {
        value: Mutex::new(None),
        done: AtomicBool::new(false),
    });
    let slot = outcome.clone();
    let job: EncodeJob = Box::new(move || {
        let r = build(&inputs);
        drop(inputs);
        *slot.value.lock().expect("only this job writes the slot") = Some(r);
        slot.done.store(true, Ordering::Release);
    });
    send_job(encoder, job);
    let mut nap = POLL_INTERVAL_MIN;
    loop {
        if outcome.done.load(Ordering::Acquire) {
            let r = outcome
                .value
                .lock()
                .expect("the job finished writing")
                .take();
            return match r {
                Some(r) => r.map_err(StoreError::from),
                None => Err(StoreError::Invalid(
                    "an encode result was taken twice".into(),
                )),
            };
        }
        // The job (and its copy of the slot) is dropped without a result only if it panicked.
        if Arc::strong_count(&outcome) == 1 && !outcome.done.load(Ordering::Acquire) {
            return Err(StoreError::Invalid(
                "the encoder thread stopped before finishing a part".into(),
            ));
        }
        glommio::timer::sleep(nap).await;
        nap = (nap * 2).min(POLL_INTERVAL_MAX);
    }
}

/// Drops `value` on this core's encoder thread of class `encoder`, after the jobs queued
/// there: for the memory of a seal round's heads (up to the heads budget, in blocks of
/// their own), whose unmapping took tens of milliseconds of the core per round, measured.
/// If `value` is a reference others still hold, only the count goes down there. On a
/// simulated disk it is dropped at once (see [`encode_off_core`]).
pub fn drop_off_core<T: Send + 'static>(disk: &Disk, encoder: Encoder, value: T) {
    if disk.sim().is_some() {
        drop(value);
        return;
    }
    send_job(encoder, Box::new(move || drop(value)));
}

/// Queues `job` on this executor's encoder thread of class `encoder`, starting the thread
/// if it is not running.
fn send_job(encoder: Encoder, job: EncodeJob) {
    ENCODERS.with(|e| {
        let mut e = e.borrow_mut();
        let sender = e[encoder.index()].get_or_insert_with(|| spawn_encoder(encoder));
        if let Err(std::sync::mpsc::SendError(job)) = sender.send(job) {
            // The thread is gone (it panicked on a previous job): start another.
            let fresh = spawn_encoder(encoder);
            let _ = fresh.send(job);
            *sender = fresh;
        }
    });
}

fn spawn_encoder(encoder: Encoder) -> std::sync::mpsc::Sender<EncodeJob> {
    let (tx, rx) = std::sync::mpsc::channel::<EncodeJob>();
    let name = format!(
        "{}-{}",
        std::thread::current().name().unwrap_or("shardlog"),
        encoder.thread_suffix()
    );
    let thread = std::thread::Builder::new()
        .name(name)
        .spawn(move || {
            if encoder.nice() != 0 {
                lower_priority(encoder.nice());
            }
            while let Ok(job) = rx.recv() {
                job();
            }
        })
        .expect("spawning a part encoder thread");
    let mut clock: libc::clockid_t = 0;
    // SAFETY: the thread is alive (its receiver waits for our sender) and `clock` is a valid
    // place for the id.
    let rc = unsafe {
        libc::pthread_getcpuclockid(
            std::os::unix::thread::JoinHandleExt::as_pthread_t(&thread),
            &mut clock,
        )
    };
    let mut clocks = ENCODER_CLOCKS.get();
    clocks[encoder.index()] = (rc == 0).then_some(clock);
    ENCODER_CLOCKS.set(clocks);
    tx
}

/// Gives the calling thread the nice value `nice` (on Linux the nice value is a thread's
/// own). If that fails, the thread keeps working at its priority, and says so.
fn lower_priority(nice: libc::c_int) {
    // SAFETY: gettid takes no argument; setpriority only changes the scheduling priority
    // of the thread it names, this one.
    let rc = unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice)
    };
    if rc != 0 {
        eprintln!(
            "shardlog: cannot lower the priority of an encoder thread to nice {nice}: {}",
            std::io::Error::last_os_error()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{WakerThreads, run_local};

    /// The encoder thread never touches the waiting task's waker.
    #[test]
    fn an_encode_wakes_nothing_off_the_core() {
        run_local(|| async {
            let threads = WakerThreads::default();
            for n in 0..50u64 {
                let r = threads
                    .track(encode_off_core(&Disk::real(), Encoder::Seal, n, |n| {
                        std::thread::sleep(Duration::from_micros(300));
                        Ok(n * 2)
                    }))
                    .await
                    .expect("the encode");
                assert_eq!(r, n * 2);
            }
            threads.assert_all_on_this_thread();
        });
    }

    /// A value handed to `drop_off_core` is dropped on the encoder thread, not here.
    #[test]
    fn a_value_dropped_off_the_core_is_dropped_there() {
        struct Noted(std::sync::mpsc::Sender<std::thread::ThreadId>);
        impl Drop for Noted {
            fn drop(&mut self) {
                let _ = self.0.send(std::thread::current().id());
            }
        }
        run_local(|| async {
            let (tx, rx) = std::sync::mpsc::channel();
            drop_off_core(&Disk::real(), Encoder::Seal, Noted(tx));
            let dropped_on = rx.recv().expect("the value is dropped");
            assert_ne!(dropped_on, std::thread::current().id());
        });
    }

    /// Each class's thread runs at its own priority: sealing below the executor, sealing
    /// that fell behind at the executor's, compaction at the lowest.
    #[test]
    fn each_encoder_thread_runs_at_its_classes_nice_value() {
        run_local(|| async {
            for encoder in [Encoder::Seal, Encoder::SealBehind, Encoder::Background] {
                let nice = encode_off_core(&Disk::real(), encoder, (), |_| {
                    // SAFETY: gettid takes no argument; getpriority reads this thread's nice
                    // value.
                    let nice = unsafe {
                        libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t)
                    };
                    Ok(nice)
                })
                .await
                .expect("the encode");
                // A test runner that itself runs at a lower priority starts the threads there.
                // SAFETY: as above, for the calling thread.
                let base = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
                assert_eq!(nice, encoder.nice().max(base), "{encoder:?}");
            }
        });
    }

    #[test]
    fn an_encode_error_comes_back() {
        run_local(|| async {
            let r: Result<u8, _> = encode_off_core(&Disk::real(), Encoder::Background, (), |_| {
                Err(ChunkError::TooLarge {
                    what: "a test input",
                    value: 1,
                    max: 0,
                })
            })
            .await;
            assert!(r.is_err());
        });
    }
}

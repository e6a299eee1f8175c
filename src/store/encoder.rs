//! Each core's part encoder thread: zstd and bloom building at sealing and compaction sizes
//! take tens to thousands of milliseconds, which would stall ingest and queries on the core.
//!
//! The work goes to this executor's own encoder threads ([`ENCODERS`]), not to glommio's
//! blocking pool: glommio runs file creation, renames and directory syncs there, and a WAL
//! segment rollover queued behind a long compaction stalled every append for seconds. The
//! encoder threads inherit the executor's CPU affinity: the work is this core's.
//!
//! There are two, one per [`Encoder`] class. Sealing must keep up with ingest, so its thread
//! runs at the executor's priority. Compaction and part rewrites can wait, so theirs runs at
//! the lowest ([`BACKGROUND_NICE`]) and takes the CPU time that ingest and sealing leave;
//! it also pauses itself while the core has ingest in flight ([`crate::runtime::courtesy`]).
//! With one thread for both, a seal round queued behind a compaction's encode (1 to 2 s at
//! level 9 on a busy core, measured), so its heads grew meanwhile and the next round was as
//! much larger; and at the same priority, the executor got only half of its core whenever
//! a compaction was encoding.
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
/// executor and the seal encoder on the same CPU take it over as soon as they can run.
pub const BACKGROUND_NICE: libc::c_int = 19;

type EncodeJob = Box<dyn FnOnce() + Send>;

/// Which of the executor's encoder threads runs a job (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoder {
    /// Sealing, at the executor's priority.
    Seal,
    /// Compaction and part rewrites, at [`BACKGROUND_NICE`].
    Background,
}

impl Encoder {
    fn index(self) -> usize {
        self as usize
    }
}

thread_local! {
    /// The encoder threads of this executor, by [`Encoder`], each started on first use.
    static ENCODERS: RefCell<[Option<std::sync::mpsc::Sender<EncodeJob>>; 2]> =
        const { RefCell::new([None, None]) };
    /// The CPU-time clocks of those threads, for the query pacer (see `runtime::pacer`).
    static ENCODER_CLOCKS: std::cell::Cell<[Option<libc::clockid_t>; 2]> =
        const { std::cell::Cell::new([None, None]) };
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
    let suffix = match encoder {
        Encoder::Seal => "encode",
        Encoder::Background => "compact",
    };
    let name = format!(
        "{}-{suffix}",
        std::thread::current().name().unwrap_or("shardlog")
    );
    let core = crate::runtime::courtesy::this_core();
    let thread = std::thread::Builder::new()
        .name(name)
        .spawn(move || {
            if encoder == Encoder::Background {
                lower_priority();
                // Compaction also steps aside while the core has ingest in flight.
                crate::runtime::courtesy::yield_to(core);
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

/// Gives the calling thread the nice value [`BACKGROUND_NICE`] (on Linux the nice value is
/// a thread's own). If that fails, the thread keeps working at its priority, and says so.
fn lower_priority() {
    // SAFETY: gettid takes no argument; setpriority only changes the scheduling priority
    // of the thread it names, this one.
    let rc = unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, BACKGROUND_NICE)
    };
    if rc != 0 {
        eprintln!(
            "shardlog: cannot lower the priority of the compaction encoder thread: {}",
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

    /// The compaction thread pauses at its pause points while its core has ingest in
    /// flight; the seal thread never does.
    #[test]
    fn compaction_pauses_for_ingest_and_sealing_does_not() {
        use crate::runtime::courtesy::{Busy, PAUSE_MAX, pause_point, this_core};
        run_local(|| async {
            let core = this_core();
            let busy = Busy::enter();
            encode_off_core(&Disk::real(), Encoder::Seal, (), |_| {
                pause_point();
                Ok(())
            })
            .await
            .expect("the seal encode");
            assert_eq!(core.paused(), Duration::ZERO, "sealing paused");
            encode_off_core(&Disk::real(), Encoder::Background, (), |_| {
                pause_point();
                Ok(())
            })
            .await
            .expect("the compaction encode");
            // The core stayed busy throughout: the pause ran to its bound.
            assert!(core.paused() >= PAUSE_MAX);
            drop(busy);
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

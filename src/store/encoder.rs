//! Each core's part encoder thread: zstd and bloom building at sealing and compaction sizes
//! take tens to thousands of milliseconds, which would stall ingest and queries on the core.
//!
//! The work goes to this executor's own encoder thread ([`ENCODER`]), not to glommio's
//! blocking pool: glommio runs file creation, renames and directory syncs there, and a WAL
//! segment rollover queued behind a long compaction stalled every append for seconds. The
//! encoder thread inherits the executor's CPU affinity: the work is this core's.
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

type EncodeJob = Box<dyn FnOnce() + Send>;

thread_local! {
    /// The encoder thread of this executor, started on first use.
    static ENCODER: RefCell<Option<std::sync::mpsc::Sender<EncodeJob>>> =
        const { RefCell::new(None) };
    /// The CPU-time clock of that thread, for the query pacer (see `runtime::pacer`).
    static ENCODER_CLOCK: std::cell::Cell<Option<libc::clockid_t>> =
        const { std::cell::Cell::new(None) };
}

/// CPU time this executor's encoder thread has used (zero before it starts).
pub fn encoder_cpu_time() -> Duration {
    ENCODER_CLOCK
        .get()
        .and_then(crate::runtime::pacer::cpu_clock_time)
        .unwrap_or_default()
}

/// Where the encoder thread leaves a result for the waiting task.
struct Outcome<R> {
    value: Mutex<Option<R>>,
    done: AtomicBool,
}

/// Runs `build(&inputs)` on this core's encoder thread and returns its result.
///
/// On a simulated disk the work runs inline, then yields a fixed number of times: crash tests
/// name a crash by its operation number, which must mean the same operation in every run, and
/// an encoder thread would make the interleaving of tasks depend on its speed.
pub async fn encode_off_core<T, R, F>(disk: &Disk, inputs: T, build: F) -> Result<R, StoreError>
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
    ENCODER.with(|e| {
        let mut e = e.borrow_mut();
        let sender = e.get_or_insert_with(spawn_encoder);
        if let Err(std::sync::mpsc::SendError(job)) = sender.send(job) {
            // The thread is gone (it panicked on a previous job): start another.
            let fresh = spawn_encoder();
            let _ = fresh.send(job);
            *sender = fresh;
        }
    });
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

fn spawn_encoder() -> std::sync::mpsc::Sender<EncodeJob> {
    let (tx, rx) = std::sync::mpsc::channel::<EncodeJob>();
    let name = format!(
        "{}-encode",
        std::thread::current().name().unwrap_or("shardlog")
    );
    let thread = std::thread::Builder::new()
        .name(name)
        .spawn(move || {
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
    ENCODER_CLOCK.set((rc == 0).then_some(clock));
    tx
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
                    .track(encode_off_core(&Disk::real(), n, |n| {
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

    #[test]
    fn an_encode_error_comes_back() {
        run_local(|| async {
            let r: Result<u8, _> = encode_off_core(&Disk::real(), (), |_| {
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

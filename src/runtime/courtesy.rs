//! Compaction steps aside while its core has ingest in flight.
//!
//! Which question it answers: "may this background encoder take the CPU now?" Each core's
//! compaction encoder is a thread of its own on the core's CPU ([`crate::store::encoder`]),
//! at nice 19. Under EEVDF that is not enough: a core that answered a burst of pushes has
//! used more than its fair share, so on its next wake-up it is not eligible at once, and a
//! compaction thread that happens to be running keeps the CPU for its whole slice. Measured
//! at 80% of the maximum push rate (`perf sched timehist`), the core then waited up to 8 ms
//! for the CPU with a push to read, 4 ms of it behind compaction.
//!
//! So compaction pauses itself: at [`pause_point`]s between pieces of its work (a block's
//! body, its compression, every [`crate::chunk`] bloom stretch), it sleeps while its core
//! has a push or a batch in flight ([`Busy`]), for at most [`PAUSE_MAX`] at a time, so that it
//! still moves under a continuous firehose. Sealing does not pause: it must keep up with
//! ingest, and pausing it let the unsealed lines reach their limit (pushes refused) in a
//! measured run at 80% load. A lower priority is not used for the same reason the other
//! way round: it would put compaction below every process on the machine, not only below
//! its own core, and it already has the lowest.

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The longest one pause lasts while ingest stays busy: a burst of pushes is answered well
/// within it, and under a continuous firehose compaction still gets a turn this often.
pub const PAUSE_MAX: Duration = Duration::from_millis(20);

/// How often a paused encoder looks again: well below a push's answer time.
const PAUSE_STEP: Duration = Duration::from_micros(100);

/// One core's ingest state, shared with its compaction encoder.
#[derive(Default, Debug)]
pub struct Courtesy {
    /// Pushes and batch sends in flight on the core.
    busy: AtomicUsize,
    /// Encoder threads pausing now.
    pausing: AtomicUsize,
    /// Time encoders spent paused, in nanoseconds.
    paused_ns: AtomicU64,
}

impl Courtesy {
    /// Whether the core has ingest in flight.
    pub fn is_busy(&self) -> bool {
        self.busy.load(Ordering::Acquire) > 0
    }

    /// How many encoder threads are pausing now.
    pub fn pausing(&self) -> usize {
        self.pausing.load(Ordering::Acquire)
    }

    /// Time the encoders have spent paused for ingest.
    pub fn paused(&self) -> Duration {
        Duration::from_nanos(self.paused_ns.load(Ordering::Relaxed))
    }
}

thread_local! {
    /// On an executor thread: its core's state (made on first use), `false`. On an encoder
    /// thread that yields ([`yield_to`]): its core's state, `true`. Elsewhere: nothing, and
    /// [`pause_point`] does nothing.
    static CORE: RefCell<Option<(Arc<Courtesy>, bool)>> = const { RefCell::new(None) };
}

/// This executor's [`Courtesy`], shared with the encoder threads it starts.
pub fn this_core() -> Arc<Courtesy> {
    CORE.with(|c| {
        c.borrow_mut()
            .get_or_insert_with(|| (Arc::default(), false))
            .0
            .clone()
    })
}

/// Makes the calling (encoder) thread pause for `core`'s ingest at its [`pause_point`]s.
pub fn yield_to(core: Arc<Courtesy>) {
    CORE.with(|c| *c.borrow_mut() = Some((core, true)));
}

/// Ingest in flight on this executor's core, while the guard lives.
#[must_use = "the core counts as busy only while the guard lives"]
pub struct Busy(Arc<Courtesy>);

impl Busy {
    pub fn enter() -> Busy {
        let core = this_core();
        core.busy.fetch_add(1, Ordering::AcqRel);
        Busy(core)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Called by encoders between pieces of work: on a thread that yields to its core, sleeps
/// while the core has ingest in flight, for at most [`PAUSE_MAX`]. Returns at once on any
/// other thread, and when the core is idle.
pub fn pause_point() {
    let Some(core) = CORE.with(|c| {
        c.borrow()
            .as_ref()
            .and_then(|(core, yields)| yields.then(|| core.clone()))
    }) else {
        return;
    };
    if !core.is_busy() {
        return;
    }
    core.pausing.fetch_add(1, Ordering::AcqRel);
    let started = Instant::now();
    while core.is_busy() {
        let waited = started.elapsed();
        if waited >= PAUSE_MAX {
            break;
        }
        std::thread::sleep(PAUSE_STEP.min(PAUSE_MAX - waited));
    }
    core.paused_ns
        .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
    core.pausing.fetch_sub(1, Ordering::AcqRel);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    /// Runs `f` on a fresh thread that yields to `core`.
    fn on_encoder<R: Send + 'static>(
        core: &Arc<Courtesy>,
        f: impl FnOnce() -> R + Send + 'static,
    ) -> std::thread::JoinHandle<R> {
        let core = core.clone();
        std::thread::spawn(move || {
            yield_to(core);
            f()
        })
    }

    #[test]
    fn a_thread_that_yields_to_nothing_never_pauses() {
        let core = this_core();
        let _busy = Busy::enter();
        assert!(core.is_busy());
        // This test's thread plays the executor here, not an encoder.
        pause_point();
        assert_eq!(core.paused(), Duration::ZERO);
    }

    #[test]
    fn an_encoder_waits_while_its_core_is_busy_and_goes_on_once_it_is_not() {
        let core = this_core();
        let busy = Busy::enter();
        let released = Arc::new(AtomicBool::new(false));
        let seen = released.clone();
        let watched = core.clone();
        let encoder = on_encoder(&core, move || {
            // Pauses again after each bounded pause, as a long encode would.
            loop {
                pause_point();
                if seen.load(Ordering::Acquire) {
                    return true;
                }
                if !watched.is_busy() {
                    return false;
                }
            }
        });
        while core.pausing() == 0 {
            std::thread::yield_now();
        }
        released.store(true, Ordering::Release);
        drop(busy);
        assert!(
            encoder.join().unwrap(),
            "the encoder went on before the core was released"
        );
        assert_eq!(core.pausing(), 0);
        assert!(core.paused() > Duration::ZERO);
    }

    #[test]
    fn a_pause_ends_by_itself_when_ingest_never_stops() {
        let core = this_core();
        let _busy = Busy::enter();
        // Joins: the pause is bounded (a hang here fails the test by its timeout).
        on_encoder(&core, pause_point).join().unwrap();
        assert!(core.is_busy());
        assert!(core.paused() >= PAUSE_MAX);
    }

    #[test]
    fn an_idle_core_costs_an_encoder_nothing() {
        let core = this_core();
        on_encoder(&core, || {
            for _ in 0..1000 {
                pause_point();
            }
        })
        .join()
        .unwrap();
        assert_eq!(core.paused(), Duration::ZERO);
    }

    #[test]
    fn busy_counts_every_guard_until_the_last_is_dropped() {
        let core = this_core();
        let a = Busy::enter();
        let b = Busy::enter();
        drop(a);
        assert!(core.is_busy());
        drop(b);
        assert!(!core.is_busy());
    }
}

//! The server's life as the soak's threads see it: whether it is up (ready and not being
//! stopped), stopping, or down, which incarnation it is, and where it listens.
//!
//! Every request a sender or query worker makes is a [`Turn`]: it starts only while the
//! server is up or stopping, and knows at its end whether the server stayed up throughout,
//! which is what decides if a failure is the server's fault (a 5xx while ready) or the
//! soak's own doing (a kill). Turns are counted, so that after a stop the supervisor can wait
//! until no request is in flight before it checks what the server holds: the count is
//! raised before the phase is read, and the supervisor changes the phase before it reads
//! the count (both sequentially consistent), so no request can slip past the check.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How often a waiting thread looks at the phase again.
pub const PHASE_POLL_MS: u64 = 10;

/// Phases, in the low bits of the state word; the incarnation is in the high bits.
const UP: u64 = 0;
const STOPPING: u64 = 1;
const DOWN: u64 = 2;
const PHASE_BITS: u64 = 4;

/// Where the current incarnation listens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Endpoints {
    pub http: SocketAddr,
    pub syslog_tcp: SocketAddr,
}

/// The shared view of the server's life.
#[derive(Debug)]
pub struct Life {
    /// `incarnation * PHASE_BITS + phase`.
    state: AtomicU64,
    in_flight: AtomicU64,
    over: AtomicBool,
    endpoints: Mutex<Option<Endpoints>>,
    /// Graceful stops ask syslog senders to close their connections first: the generation
    /// of the latest request, and how many senders have done it since.
    drain_generation: AtomicU64,
    drained: AtomicU64,
}

impl Default for Life {
    fn default() -> Self {
        Life {
            state: AtomicU64::new(DOWN),
            in_flight: AtomicU64::new(0),
            over: AtomicBool::new(false),
            endpoints: Mutex::new(None),
            drain_generation: AtomicU64::new(0),
            drained: AtomicU64::new(0),
        }
    }
}

/// One request against the server.
#[must_use]
pub struct Turn<'a> {
    life: &'a Life,
    state: u64,
    pub endpoints: Endpoints,
    pub incarnation: u32,
}

impl Turn<'_> {
    /// Whether the server was up from the start of this turn until now: a failure seen
    /// now is then the server's, not a stop's.
    pub fn up_throughout(&self) -> bool {
        self.state % PHASE_BITS == UP && self.life.state.load(Ordering::SeqCst) == self.state
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.life.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Life {
    /// Starts a request if the server is up or stopping; `None` while it is down.
    pub fn begin(&self) -> Option<Turn<'_>> {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        let state = self.state.load(Ordering::SeqCst);
        let endpoints = *self.endpoints.lock().unwrap_or_else(|e| e.into_inner());
        match (state % PHASE_BITS, endpoints) {
            (UP | STOPPING, Some(endpoints)) => Some(Turn {
                life: self,
                state,
                endpoints,
                incarnation: (state / PHASE_BITS) as u32,
            }),
            _ => {
                self.in_flight.fetch_sub(1, Ordering::SeqCst);
                None
            }
        }
    }

    /// Like [`Life::begin`], waiting while the server is down; `None` once the soak is over.
    pub fn begin_waiting(&self) -> Option<Turn<'_>> {
        loop {
            if self.is_over() {
                return None;
            }
            if let Some(turn) = self.begin() {
                return Some(turn);
            }
            std::thread::sleep(Duration::from_millis(PHASE_POLL_MS));
        }
    }

    pub fn incarnation(&self) -> u32 {
        (self.state.load(Ordering::SeqCst) / PHASE_BITS) as u32
    }

    pub fn is_up(&self) -> bool {
        self.state.load(Ordering::SeqCst) % PHASE_BITS == UP
    }

    /// Incarnation `n` is ready at `endpoints`: requests may start.
    pub fn go_up(&self, n: u32, endpoints: Endpoints) {
        *self.endpoints.lock().unwrap_or_else(|e| e.into_inner()) = Some(endpoints);
        self.state
            .store(u64::from(n) * PHASE_BITS + UP, Ordering::SeqCst);
    }

    /// The supervisor is about to stop the server: requests may go on, but none of them
    /// counts as made while the server was up.
    pub fn go_stopping(&self) {
        let n = self.state.load(Ordering::SeqCst) / PHASE_BITS;
        self.state
            .store(n * PHASE_BITS + STOPPING, Ordering::SeqCst);
    }

    /// The server is gone: no new request starts.
    pub fn go_down(&self) {
        let n = self.state.load(Ordering::SeqCst) / PHASE_BITS;
        self.state.store(n * PHASE_BITS + DOWN, Ordering::SeqCst);
    }

    /// Waits until no request is in flight; false if some still are after `timeout`.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.in_flight.load(Ordering::SeqCst) > 0 {
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(PHASE_POLL_MS));
        }
        true
    }

    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// The load ends: senders and query workers finish their current request and return.
    pub fn end(&self) {
        self.over.store(true, Ordering::SeqCst);
    }

    pub fn is_over(&self) -> bool {
        self.over.load(Ordering::SeqCst)
    }

    /// Asks every syslog sender to close its connection cleanly; returns the generation to
    /// wait for with [`Life::drained_since`].
    pub fn request_drain(&self) -> u64 {
        self.drained.store(0, Ordering::SeqCst);
        self.drain_generation.fetch_add(1, Ordering::SeqCst) + 1
    }

    pub fn drain_generation(&self) -> u64 {
        self.drain_generation.load(Ordering::SeqCst)
    }

    /// A syslog sender has answered the drain request.
    pub fn note_drained(&self) {
        self.drained.fetch_add(1, Ordering::SeqCst);
    }

    pub fn drained(&self) -> u64 {
        self.drained.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep() -> Endpoints {
        Endpoints {
            http: ([127, 0, 0, 1], 1).into(),
            syslog_tcp: ([127, 0, 0, 1], 2).into(),
        }
    }

    #[test]
    fn turns_follow_the_phase() {
        let life = Life::default();
        assert!(life.begin().is_none(), "down at first");
        assert_eq!(life.in_flight(), 0);
        life.go_up(1, ep());
        let turn = life.begin().unwrap();
        assert_eq!(turn.incarnation, 1);
        assert!(turn.up_throughout());
        assert_eq!(life.in_flight(), 1);
        assert!(!life.wait_idle(Duration::from_millis(20)));
        life.go_stopping();
        assert!(!turn.up_throughout(), "a stop came in between");
        let during_stop = life.begin().unwrap();
        assert!(!during_stop.up_throughout());
        drop((turn, during_stop));
        assert!(life.wait_idle(Duration::from_millis(20)));
        life.go_down();
        assert!(life.begin().is_none());
        life.go_up(2, ep());
        let t = life.begin().unwrap();
        assert_eq!(t.incarnation, 2);
        assert!(t.up_throughout());
        drop(t);
        life.end();
        assert!(life.begin_waiting().is_none());
    }

    #[test]
    fn drains_are_counted_per_request() {
        let life = Life::default();
        let g = life.request_drain();
        assert_eq!(life.drain_generation(), g);
        life.note_drained();
        assert_eq!(life.drained(), 1);
        let g2 = life.request_drain();
        assert!(g2 > g);
        assert_eq!(life.drained(), 0);
    }
}

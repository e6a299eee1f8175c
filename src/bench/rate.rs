//! How much the senders may send: a token bucket shared by all senders (`--rate`) and a
//! line budget (`--count`) with a deadline (`--duration`).
//!
//! Senders ask for a whole batch at once (a push request, a syslog write), so the bucket
//! lets its balance go negative: a batch larger than the burst is granted and the next one
//! waits until the debt is paid. The long-run rate is exact either way, and no batch size
//! can deadlock the bucket.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How many seconds of tokens may accumulate while senders are idle: a short burst is what
/// real senders do after a pause, but a long one would break the rate the run asked for.
pub const BURST_SECONDS: f64 = 0.05;

/// A token bucket of lines per second, shared by every sender of a run.
#[derive(Debug)]
pub struct TokenBucket {
    lines_per_sec: f64,
    burst_lines: f64,
    state: Mutex<BucketState>,
}

#[derive(Debug)]
struct BucketState {
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket of `lines_per_sec` (at least 1).
    pub fn new(lines_per_sec: u64, now: Instant) -> TokenBucket {
        assert!(lines_per_sec > 0, "a rate of zero would never send");
        let rate = lines_per_sec as f64;
        let burst = (rate * BURST_SECONDS).max(1.0);
        TokenBucket {
            lines_per_sec: rate,
            burst_lines: burst,
            state: Mutex::new(BucketState {
                tokens: burst,
                last: now,
            }),
        }
    }

    /// Takes `lines` tokens at `now` and says how long the caller must wait before sending
    /// them (zero when the bucket held enough).
    pub fn reserve_at(&self, lines: u64, now: Instant) -> Duration {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        // A caller that read the clock before another caller's later `now` must not roll
        // time back.
        let elapsed = now.saturating_duration_since(s.last).as_secs_f64();
        if now > s.last {
            s.last = now;
        }
        s.tokens = (s.tokens + elapsed * self.lines_per_sec).min(self.burst_lines);
        s.tokens -= lines as f64;
        if s.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-s.tokens / self.lines_per_sec)
        }
    }

    /// Takes `lines` tokens and sleeps until they may be sent, but never past `deadline`;
    /// returns false when the deadline came first (the caller then stops without sending).
    pub fn acquire(&self, lines: u64, deadline: Instant) -> bool {
        let now = Instant::now();
        let wait = self.reserve_at(lines, now);
        if now + wait > deadline {
            return false;
        }
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
        true
    }
}

/// The bound of a run: an optional total line count and a deadline, plus a stop flag that
/// ends it early (on an error that makes going on pointless).
#[derive(Debug)]
pub struct Budget {
    remaining: Option<AtomicU64>,
    deadline: Instant,
    stopped: AtomicBool,
}

impl Budget {
    pub fn new(count: Option<u64>, deadline: Instant) -> Budget {
        Budget {
            remaining: count.map(AtomicU64::new),
            deadline,
            stopped: AtomicBool::new(false),
        }
    }

    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Grants up to `want` lines: fewer near the end of the count, zero when the count is
    /// spent, the deadline has passed or the run was stopped.
    pub fn take(&self, want: u64) -> u64 {
        if self.is_over() {
            return 0;
        }
        let Some(remaining) = &self.remaining else {
            return want;
        };
        let mut current = remaining.load(Ordering::Relaxed);
        loop {
            let granted = current.min(want);
            if granted == 0 {
                return 0;
            }
            match remaining.compare_exchange_weak(
                current,
                current - granted,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return granted,
                Err(actual) => current = actual,
            }
        }
    }

    /// Gives back lines that were granted but not sent (the rate limiter hit the deadline).
    pub fn give_back(&self, lines: u64) {
        if let Some(r) = &self.remaining {
            r.fetch_add(lines, Ordering::Relaxed);
        }
    }

    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Relaxed);
    }

    /// Lines the next batch of a sender may carry: up to `want` taken from the budget, then
    /// paced by `bucket` if the run is rate-limited. 0 means the run is over for this sender
    /// (count or deadline reached; what the bucket could not grant in time is given back).
    pub fn take_paced(&self, want: u64, bucket: Option<&TokenBucket>) -> u64 {
        let n = self.take(want);
        if n > 0
            && let Some(b) = bucket
            && !b.acquire(n, self.deadline())
        {
            self.give_back(n);
            return 0;
        }
        n
    }

    /// True once the deadline has passed, the count is spent or the run was stopped.
    pub fn is_over(&self) -> bool {
        self.stopped.load(Ordering::Relaxed)
            || Instant::now() >= self.deadline
            || self
                .remaining
                .as_ref()
                .is_some_and(|r| r.load(Ordering::Relaxed) == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Simulates senders asking for batches back to back for 10 simulated seconds and checks
    /// that what was granted is the rate, not more and not much less.
    #[test]
    fn bucket_holds_the_rate_over_time() {
        for (rate, batch) in [(1000u64, 10u64), (50_000, 1000), (100, 1000), (7, 1)] {
            let t0 = Instant::now();
            let bucket = TokenBucket::new(rate, t0);
            let mut now = t0;
            let mut sent = 0u64;
            let end = t0 + Duration::from_secs(10);
            loop {
                let wait = bucket.reserve_at(batch, now);
                now += wait;
                if now > end {
                    break;
                }
                sent += batch;
            }
            let expected = rate as f64 * 10.0;
            let burst = (rate as f64 * BURST_SECONDS).max(1.0) + batch as f64;
            assert!(
                (sent as f64) <= expected + burst && (sent as f64) >= expected - batch as f64,
                "rate {rate} batch {batch}: sent {sent} in 10 s, expected about {expected}"
            );
        }
    }

    #[test]
    fn bucket_burst_is_bounded_after_idle() {
        let t0 = Instant::now();
        let bucket = TokenBucket::new(1000, t0);
        // After an hour idle only the burst (50 lines) is free.
        let later = t0 + Duration::from_secs(3600);
        assert_eq!(bucket.reserve_at(50, later), Duration::ZERO);
        let wait = bucket.reserve_at(100, later);
        assert!((wait.as_secs_f64() - 0.1).abs() < 1e-9, "{wait:?}");
        // A clock read before the last one does not create tokens.
        let wait = bucket.reserve_at(1, t0);
        assert!(wait > Duration::from_millis(100), "{wait:?}");
    }

    #[test]
    fn acquire_refuses_past_the_deadline() {
        let bucket = TokenBucket::new(10, Instant::now());
        let deadline = Instant::now() + Duration::from_millis(50);
        assert!(
            !bucket.acquire(1000, deadline),
            "100 s of tokens cannot fit in 50 ms"
        );
    }

    #[test]
    fn budget_grants_exactly_the_count_across_threads() {
        let budget = std::sync::Arc::new(Budget::new(
            Some(10_007),
            Instant::now() + Duration::from_secs(60),
        ));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let b = budget.clone();
                std::thread::spawn(move || {
                    let mut got = 0;
                    loop {
                        let n = b.take(100);
                        if n == 0 {
                            return got;
                        }
                        got += n;
                    }
                })
            })
            .collect();
        let total: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(total, 10_007);
        assert!(budget.is_over());
        budget.give_back(5);
        assert_eq!(budget.take(100), 5);
    }

    #[test]
    fn take_paced_gives_back_what_the_bucket_cannot_grant_in_time() {
        let soon = Instant::now() + Duration::from_millis(50);
        let budget = Budget::new(Some(1000), soon);
        assert_eq!(budget.take_paced(10, None), 10);
        // 1 line/s cannot pay for 500 lines before the deadline: nothing is sent, and the
        // lines stay in the budget.
        let slow = TokenBucket::new(1, Instant::now());
        assert_eq!(budget.take_paced(500, Some(&slow)), 0);
        assert_eq!(budget.take(2000), 990);
    }

    #[test]
    fn budget_ends_at_the_deadline_or_stop() {
        let past = Budget::new(None, Instant::now());
        assert_eq!(past.take(10), 0);
        let b = Budget::new(None, Instant::now() + Duration::from_secs(60));
        assert_eq!(b.take(10), 10);
        b.stop();
        assert_eq!(b.take(10), 0);
    }
}

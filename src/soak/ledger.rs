//! The record of everything a soak sent: per sender, every batch with its first sequence
//! number, its line count, its timestamp and how it ended, and from that what the server
//! must hold of each line.
//!
//! The rules, per line:
//! - a push answered 2xx is acknowledged: present exactly once (old-timestamp lines: at
//!   most once, since retention may have dropped them by design);
//! - a push that got no answer after it was sent whole, a 5xx or a refusal (4xx, 429, 503):
//!   at most once (a refused push should not be stored at all; the summary counts those
//!   that were, without failing the run, because another check owns that rule);
//! - a push that was never sent whole: absent (the server cannot have read a whole body);
//! - syslog TCP has no acknowledgement: at most once, except the lines of a connection that
//!   the soak closed and the server closed back before a graceful stop that exited 0: those
//!   the server had read before it stopped, and a graceful stop commits what it read, so
//!   they must be present exactly once.

use std::sync::atomic::{AtomicU64, Ordering};

use super::lanes::Lane;

/// How a batch ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Push answered 2xx.
    Acked,
    /// Push sent whole, then no answer, or a 5xx other than 503.
    Unknown,
    /// Push answered 4xx, 429 or 503.
    Refused,
    /// Push not sent whole (connect or write failed): nothing can be stored.
    NotSent,
    /// Syslog: every byte written to the socket.
    Written,
    /// Syslog: the write failed part way; frames before the failure may be stored.
    Cut,
}

impl Outcome {
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Acked => "acknowledged",
            Outcome::Unknown => "unanswered",
            Outcome::Refused => "refused",
            Outcome::NotSent => "not sent",
            Outcome::Written => "written",
            Outcome::Cut => "cut by a write error",
        }
    }
}

/// What the server must hold of one line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    ExactlyOnce,
    AtMostOnce,
    Absent,
}

/// One batch: lines `first_seq .. first_seq + lines` of a sender.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchRecord {
    pub first_seq: u32,
    pub lines: u32,
    /// Timestamp of the first line; line `i` of a push batch has `ts_ns + i`, every line of
    /// a syslog write has `ts_ns` (one header timestamp per write).
    pub ts_ns: i64,
    pub outcome: Outcome,
    /// The server incarnation the batch was sent to (1 is the first).
    pub incarnation: u32,
    /// Syslog: the sender's connection number (0 for pushes).
    pub conn: u32,
}

/// Everything one sender sent, in sequence order.
#[derive(Clone, Debug)]
pub struct WorkerLedger {
    pub worker: u16,
    pub lane: Lane,
    pub next_seq: u32,
    pub batches: Vec<BatchRecord>,
    /// Syslog connections closed cleanly before a graceful stop that exited 0.
    pub confirmed_conns: Vec<u32>,
}

impl WorkerLedger {
    pub fn new(worker: u16, lane: Lane) -> WorkerLedger {
        WorkerLedger {
            worker,
            lane,
            next_seq: 0,
            batches: Vec::new(),
            confirmed_conns: Vec::new(),
        }
    }

    /// Takes the sequence numbers of a new batch of `lines`.
    pub fn reserve(&mut self, lines: u32) -> u32 {
        let first = self.next_seq;
        self.next_seq = first
            .checked_add(lines)
            .expect("a sender sends fewer than 2^32 lines in a soak");
        first
    }

    /// Records a batch taken with [`WorkerLedger::reserve`], in order.
    pub fn record(&mut self, batch: BatchRecord) {
        debug_assert!(
            self.batches
                .last()
                .is_none_or(|b| b.first_seq + b.lines <= batch.first_seq)
        );
        self.batches.push(batch);
    }

    /// The batch holding line `seq`.
    pub fn batch_of(&self, seq: u32) -> Option<&BatchRecord> {
        let i = self.batches.partition_point(|b| b.first_seq <= seq);
        let b = self.batches.get(i.checked_sub(1)?)?;
        (seq < b.first_seq + b.lines).then_some(b)
    }

    /// The timestamp line `seq` must be stored with.
    pub fn expected_ts(&self, batch: &BatchRecord, seq: u32) -> i64 {
        if self.lane.is_syslog() {
            batch.ts_ns
        } else {
            batch.ts_ns + i64::from(seq - batch.first_seq)
        }
    }

    /// What the server must hold of the lines of `batch`.
    pub fn expect(&self, batch: &BatchRecord) -> Expect {
        match batch.outcome {
            Outcome::Acked if self.lane == Lane::Old => Expect::AtMostOnce,
            Outcome::Acked => Expect::ExactlyOnce,
            Outcome::Written if self.confirmed_conns.binary_search(&batch.conn).is_ok() => {
                Expect::ExactlyOnce
            }
            Outcome::NotSent => Expect::Absent,
            Outcome::Unknown | Outcome::Refused | Outcome::Written | Outcome::Cut => {
                Expect::AtMostOnce
            }
        }
    }
}

/// Running line counts of one tenant, for the cheap check after each restart: the server
/// must hold at least `must` and at most `may` lines of the tenant.
#[derive(Debug, Default)]
pub struct Tally {
    must: AtomicU64,
    may: AtomicU64,
}

impl Tally {
    pub fn add(&self, must: u64, may: u64) {
        self.must.fetch_add(must, Ordering::SeqCst);
        self.may.fetch_add(may, Ordering::SeqCst);
    }

    /// `(must, may)`.
    pub fn get(&self) -> (u64, u64) {
        (
            self.must.load(Ordering::SeqCst),
            self.may.load(Ordering::SeqCst),
        )
    }
}

/// The tallies of the three tenants.
#[derive(Debug, Default)]
pub struct Tallies {
    pub push: Tally,
    pub old: Tally,
    pub syslog: Tally,
}

impl Tallies {
    pub fn of(&self, lane: Lane) -> &Tally {
        match lane {
            Lane::Old => &self.old,
            Lane::SyslogOctet | Lane::SyslogNewline => &self.syslog,
            _ => &self.push,
        }
    }

    /// Counts a finished batch: acknowledged pushes are a must (but old lines may be gone);
    /// anything that may have reached the server is a may.
    pub fn count(&self, lane: Lane, lines: u64, outcome: Outcome) {
        let must = match (lane, outcome) {
            (Lane::Old, _) => 0,
            (_, Outcome::Acked) => lines,
            _ => 0,
        };
        let may = match outcome {
            Outcome::NotSent => 0,
            _ => lines,
        };
        self.of(lane).add(must, may);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(first_seq: u32, lines: u32, outcome: Outcome, conn: u32) -> BatchRecord {
        BatchRecord {
            first_seq,
            lines,
            ts_ns: 1000 * i64::from(first_seq),
            outcome,
            incarnation: 1,
            conn,
        }
    }

    #[test]
    fn finds_batches_and_timestamps() {
        let mut l = WorkerLedger::new(0, Lane::JsonSmall);
        for (lines, outcome) in [(3, Outcome::Acked), (2, Outcome::Unknown)] {
            let first = l.reserve(lines);
            l.record(batch(first, lines, outcome, 0));
        }
        assert_eq!(l.next_seq, 5);
        let b = *l.batch_of(4).unwrap();
        assert_eq!((b.first_seq, b.outcome), (3, Outcome::Unknown));
        assert_eq!(l.expected_ts(&b, 4), 3001);
        assert_eq!(l.batch_of(0).unwrap().first_seq, 0);
        assert!(l.batch_of(5).is_none());
        assert_eq!(l.expect(l.batch_of(1).unwrap()), Expect::ExactlyOnce);
        assert_eq!(l.expect(&b), Expect::AtMostOnce);
        assert_eq!(l.expect(&batch(9, 1, Outcome::NotSent, 0)), Expect::Absent);
    }

    #[test]
    fn syslog_lines_are_exact_only_on_confirmed_connections() {
        let mut l = WorkerLedger::new(7, Lane::SyslogOctet);
        l.confirmed_conns = vec![2, 5];
        assert_eq!(
            l.expect(&batch(0, 9, Outcome::Written, 2)),
            Expect::ExactlyOnce
        );
        assert_eq!(
            l.expect(&batch(0, 9, Outcome::Written, 3)),
            Expect::AtMostOnce
        );
        assert_eq!(l.expect(&batch(0, 9, Outcome::Cut, 5)), Expect::AtMostOnce);
        let b = batch(10, 4, Outcome::Written, 2);
        assert_eq!(l.expected_ts(&b, 13), b.ts_ns);
        let old = WorkerLedger::new(6, Lane::Old);
        assert_eq!(
            old.expect(&batch(0, 1, Outcome::Acked, 0)),
            Expect::AtMostOnce
        );
    }

    #[test]
    fn tallies_bound_what_the_server_may_hold() {
        let t = Tallies::default();
        t.count(Lane::JsonLarge, 10, Outcome::Acked);
        t.count(Lane::JsonSmall, 3, Outcome::Unknown);
        t.count(Lane::JsonSmall, 4, Outcome::NotSent);
        t.count(Lane::Old, 5, Outcome::Acked);
        t.count(Lane::SyslogNewline, 6, Outcome::Written);
        assert_eq!(t.push.get(), (10, 13));
        assert_eq!(t.old.get(), (0, 5));
        assert_eq!(t.syslog.get(), (0, 6));
    }
}

//! Syslog TCP senders: one thread per sender, one connection at a time, RFC 5424 messages
//! whose MSG is a marked line, framed by octet counting or by newline.
//!
//! Syslog over TCP has no acknowledgement, so a written line may be stored at most once.
//! Before a graceful stop the supervisor asks every sender to drain: finish its write, shut
//! down its side of the connection and wait until the server closes its side, which the
//! server does only after it has read everything. Those connections are then pending; if
//! the stop exits 0, they are confirmed, and every line written on them must be present
//! (see [`super::ledger`]).

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::Shared;
use super::lanes::{
    Lane, Rng, SALT_THREAD, SYSLOG_HOST, SYSLOG_PROCID_BASE, line_text, mix, stream_index,
    syslog_priority,
};
use super::ledger::{BatchRecord, Outcome, WorkerLedger};
use crate::bench::rate::TokenBucket;

/// How long a write may block on the server's backpressure before the connection is given
/// up: a server that reads nothing for this long while ready is stuck, not slow.
pub const WRITE_TIMEOUT_MS: u64 = 30_000;
/// How long a connect may take on loopback before the server is taken to be down.
pub const CONNECT_TIMEOUT_MS: u64 = 5_000;
/// How long a drain waits for the server to close its side after reading everything:
/// the server first commits what it read, which takes a group commit or two.
pub const DRAIN_TIMEOUT_MS: u64 = 10_000;
/// The first pause after a failed connect or write; doubled per failure up to the maximum.
const BACKOFF_MS_MIN: u64 = 10;
const BACKOFF_MS_MAX: u64 = 500;

/// A connection that was drained, waiting for the stop that follows to exit 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Drained {
    pub worker: u16,
    pub conn: u32,
    pub lines: u64,
    pub incarnation: u32,
    pub generation: u64,
}

/// Drained connections, pending until a graceful stop confirms them.
#[derive(Debug, Default)]
pub struct Drains {
    pending: Mutex<Vec<Drained>>,
    confirmed: Mutex<Vec<Drained>>,
}

impl Drains {
    pub fn add(&self, d: Drained) {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(d);
    }

    /// Incarnation `incarnation` stopped after drain `generation`: confirms its connections
    /// if the stop exited 0 (`clean`), forgets them otherwise; returns the lines confirmed.
    pub fn settle(&self, incarnation: u32, generation: u64, clean: bool) -> u64 {
        let pending: Vec<Drained> =
            std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()));
        let confirmed: Vec<Drained> = pending
            .into_iter()
            .filter(|d| clean && d.incarnation == incarnation && d.generation == generation)
            .collect();
        let lines = confirmed.iter().map(|d| d.lines).sum();
        self.confirmed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(confirmed);
        lines
    }

    /// The confirmed connections of worker `w`, sorted.
    pub fn confirmed_of(&self, w: u16) -> Vec<u32> {
        let mut v: Vec<u32> = self
            .confirmed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|d| d.worker == w)
            .map(|d| d.conn)
            .collect();
        v.sort_unstable();
        v
    }
}

/// The open connection of a sender.
struct Conn {
    stream: TcpStream,
    id: u32,
    incarnation: u32,
    /// Lines of whole writes on it so far.
    lines: u64,
}

fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let s = TcpStream::connect_timeout(&addr, Duration::from_millis(CONNECT_TIMEOUT_MS))?;
    s.set_write_timeout(Some(Duration::from_millis(WRITE_TIMEOUT_MS)))?;
    Ok(s)
}

/// Shuts down the sending side and waits until the server closes its side: true when it
/// did so cleanly (end of stream) within [`DRAIN_TIMEOUT_MS`].
fn drain(mut s: TcpStream) -> bool {
    if s.shutdown(Shutdown::Write).is_err() {
        return false;
    }
    if s.set_read_timeout(Some(Duration::from_millis(DRAIN_TIMEOUT_MS)))
        .is_err()
    {
        return false;
    }
    let mut buf = [0u8; 512];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            // The server never writes on a syslog connection; anything read is ignored.
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return false,
        }
    }
}

/// `2025-06-01T10:15:00.123456Z` for microseconds since the epoch.
fn rfc5424_stamp(us: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        t.month() as u8,
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    )
}

/// Appends the frames of lines `first .. first + n` of worker `w`, all stamped `us`.
pub fn build_frames(
    shared: &Shared,
    lane: Lane,
    w: u16,
    first: u32,
    n: u32,
    us: i64,
    out: &mut Vec<u8>,
) {
    let stamp = rfc5424_stamp(us);
    for seq in first..first + n {
        let k = stream_index(shared.seed, lane, shared.streams, w, seq);
        let text = line_text(&shared.corpus.lines, shared.seed, w, seq);
        let msg = format!(
            "<{}>1 {stamp} {SYSLOG_HOST} app{k} {} - - {text}",
            syslog_priority(k),
            SYSLOG_PROCID_BASE + k
        );
        match lane {
            Lane::SyslogOctet => {
                out.extend_from_slice(format!("{} ", msg.len()).as_bytes());
                out.extend_from_slice(msg.as_bytes());
            }
            _ => {
                out.extend_from_slice(msg.as_bytes());
                out.push(b'\n');
            }
        }
    }
}

/// One syslog sender's loop, until the soak's load ends; ends with a drain.
pub fn syslog_worker(w: u16, lane: Lane, share_permille: u64, shared: Arc<Shared>) -> WorkerLedger {
    let mut ledger = WorkerLedger::new(w, lane);
    let mut rng = Rng::new(mix(shared.seed, w, 0, SALT_THREAD));
    let rate = (shared.rate * share_permille / 1000).max(1);
    let bucket = TokenBucket::new(rate, Instant::now());
    let life = &shared.life;
    let mut conn: Option<Conn> = None;
    let mut next_conn = 1u32;
    let mut seen_drain = life.drain_generation();
    // After a drain, the sender waits for the stop to happen before it connects again.
    let mut drained_in: Option<u32> = None;
    let mut last_us = 0i64;
    let mut failures = 0u32;
    let mut buf = Vec::new();
    let finish = |c: Conn, generation: u64| {
        let (id, lines, incarnation) = (c.id, c.lines, c.incarnation);
        if drain(c.stream) && lines > 0 {
            shared.drains.add(Drained {
                worker: w,
                conn: id,
                lines,
                incarnation,
                generation,
            });
        }
    };
    loop {
        let generation = life.drain_generation();
        if generation != seen_drain {
            seen_drain = generation;
            if let Some(c) = conn.take() {
                finish(c, generation);
            }
            drained_in = Some(life.incarnation());
            life.note_drained();
        }
        if life.is_over() {
            if let Some(c) = conn.take() {
                finish(c, generation);
            }
            break;
        }
        if drained_in == Some(life.incarnation()) {
            std::thread::sleep(Duration::from_millis(super::life::PHASE_POLL_MS));
            continue;
        }
        let (low, high) = lane.batch_lines();
        let n = rng.between(low, high);
        if !bucket.acquire(n, shared.deadline) {
            // The load's time is up: wait for the supervisor to end it, then drain.
            std::thread::sleep(Duration::from_millis(super::life::PHASE_POLL_MS));
            continue;
        }
        let Some(turn) = life.begin() else {
            std::thread::sleep(Duration::from_millis(super::life::PHASE_POLL_MS));
            continue;
        };
        if conn
            .as_ref()
            .is_some_and(|c| c.incarnation != turn.incarnation)
        {
            // The server it was connected to is gone.
            conn = None;
        }
        if conn.is_none() {
            match connect(turn.endpoints.syslog_tcp) {
                Ok(stream) => {
                    conn = Some(Conn {
                        stream,
                        id: next_conn,
                        incarnation: turn.incarnation,
                        lines: 0,
                    });
                    next_conn += 1;
                }
                Err(e) => {
                    if turn.up_throughout() {
                        shared.findings.suspect(
                            turn.incarnation,
                            "syslog-failed-while-ready",
                            format!(
                                "{} connect to {} failed while the server was ready: {e}",
                                lane.name(),
                                turn.endpoints.syslog_tcp
                            ),
                        );
                    }
                    drop(turn);
                    failures += 1;
                    std::thread::sleep(Duration::from_millis(
                        (BACKOFF_MS_MIN << failures.min(6)).min(BACKOFF_MS_MAX),
                    ));
                    continue;
                }
            }
        }
        let c = conn.as_mut().expect("connected above");
        let n = n as u32;
        let first = ledger.reserve(n);
        // One timestamp per write, strictly increasing per sender, microsecond precision
        // (what RFC 5424 carries).
        let us = (crate::ingest::listeners::now_ns() / 1000).max(last_us + 1);
        last_us = us;
        buf.clear();
        build_frames(&shared, lane, w, first, n, us, &mut buf);
        let started = Instant::now();
        let written = c.stream.write_all(&buf);
        let outcome = match written {
            Ok(()) => Outcome::Written,
            Err(_) => Outcome::Cut,
        };
        ledger.record(BatchRecord {
            first_seq: first,
            lines: n,
            ts_ns: us * 1000,
            outcome,
            incarnation: turn.incarnation,
            conn: c.id,
        });
        shared.tallies.count(lane, u64::from(n), outcome);
        match written {
            Ok(()) => {
                c.lines += u64::from(n);
                failures = 0;
            }
            Err(e) => {
                if turn.up_throughout() {
                    shared.findings.suspect(
                        turn.incarnation,
                        "syslog-failed-while-ready",
                        format!(
                            "{} write of {n} lines (soak={w}.{first}..) on connection {} failed after {:?} while the server was ready: {e}",
                            lane.name(),
                            c.id,
                            started.elapsed()
                        ),
                    );
                }
                conn = None;
                drop(turn);
                failures += 1;
                std::thread::sleep(Duration::from_millis(
                    (BACKOFF_MS_MIN << failures.min(6)).min(BACKOFF_MS_MAX),
                ));
            }
        }
    }
    ledger
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_carry_microseconds() {
        assert_eq!(
            rfc5424_stamp(1_700_000_000_123_456),
            "2023-11-14T22:13:20.123456Z"
        );
        assert_eq!(rfc5424_stamp(0), "1970-01-01T00:00:00.000000Z");
    }

    #[test]
    fn drains_confirm_only_a_clean_stop_of_their_incarnation() {
        let d = Drains::default();
        let drained = |worker, conn, incarnation, generation| Drained {
            worker,
            conn,
            lines: 10,
            incarnation,
            generation,
        };
        d.add(drained(7, 3, 2, 1));
        d.add(drained(7, 1, 2, 1));
        d.add(drained(8, 1, 1, 1));
        assert_eq!(d.settle(2, 1, true), 20);
        assert_eq!(d.confirmed_of(7), vec![1, 3]);
        assert!(d.confirmed_of(8).is_empty());
        d.add(drained(8, 2, 3, 2));
        assert_eq!(d.settle(3, 2, false), 0, "a stop that did not exit 0");
        assert!(d.confirmed_of(8).is_empty());
    }
}

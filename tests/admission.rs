//! What a core lets in, against the real binary: unfinished request bodies stay within the
//! core's budget, whatever many clients declare and send.
//!
//! The case this guards against: 300 connections each declaring a body of 9 MiB less one byte,
//! sending all of it but the last byte and waiting, took a server from 199 MB to 3.13 GB of
//! resident memory. With a budget per core, the server takes as many of those bodies as the
//! budget holds and answers the others 503 with `Retry-After` before reading them; its peak
//! resident memory (`VmHWM`) stays within the budget plus a fixed allowance.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::loki::{metric_sum, parse_metrics};
use common::{Server, ServerOptions, TestDir, labels, now_ns};
use serde_json::json;

/// The budget the test server runs with, per core: small, so that the difference between
/// "bounded" and "not" is large on any machine.
const BUDGET_BYTES_PER_CORE: u64 = 32 << 20;

/// The declared body: the largest the server accepts by default (push_body_bytes_max plus
/// the raw-body slack) less one byte.
const DECLARED_BYTES: usize = 9 * 1024 * 1024 - 1;

/// Connections of the case reported; fewer if the test process may not open that many.
const CONNECTIONS: usize = 300;

/// What the server may hold beyond its budgets: per-connection read buffers (8 KiB each),
/// tasks, and one body vector reallocating per core at a time.
const ALLOWANCE_BYTES: u64 = 96 << 20;

/// The whole exchange must end within this: the server answers each refusal at once and
/// reads each admitted body as fast as loopback carries it.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(120);

/// Bytes written per connection per round, so that every connection makes progress.
const WRITE_STEP_BYTES: usize = 64 * 1024;

#[derive(Debug, PartialEq)]
enum State {
    /// Still sending its body.
    Sending,
    /// Sent all but the last byte; the server holds the body and waits.
    Holding,
    /// Answered before the body was read: status and `Retry-After`.
    Answered(u16, Option<String>),
    /// Closed or reset without an answer.
    Lost(String),
}

struct Client {
    stream: TcpStream,
    sent: usize,
    received: Vec<u8>,
    state: State,
}

/// Parses a response head: status and `Retry-After`, once the head is complete.
fn parse_answer(bytes: &[u8]) -> Option<(u16, Option<String>)> {
    let text = String::from_utf8_lossy(bytes);
    let head_end = text.find("\r\n\r\n")?;
    let mut lines = text[..head_end].lines();
    let status = lines.next()?.get(9..12)?.parse().ok()?;
    let retry_after = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(n, _)| n.eq_ignore_ascii_case("retry-after"))
        .map(|(_, v)| v.trim().to_string());
    Some((status, retry_after))
}

impl Client {
    fn connect(server: &Server) -> Client {
        let mut stream = TcpStream::connect(server.http).expect("connect to the server");
        let head = format!(
            "POST /loki/api/v1/push HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n\
             Content-Length: {DECLARED_BYTES}\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).expect("send the head");
        stream.set_nonblocking(true).expect("non-blocking socket");
        Client {
            stream,
            sent: 0,
            received: Vec::new(),
            state: State::Sending,
        }
    }

    /// Reads whatever the server sent; returns whether anything happened.
    fn poll_read(&mut self) -> bool {
        let mut buf = [0u8; 4096];
        match self.stream.read(&mut buf) {
            Ok(0) => {
                self.state = match parse_answer(&self.received) {
                    Some((s, r)) => State::Answered(s, r),
                    None => State::Lost("closed without an answer".into()),
                };
                true
            }
            Ok(n) => {
                self.received.extend_from_slice(&buf[..n]);
                if let Some((s, r)) = parse_answer(&self.received) {
                    self.state = State::Answered(s, r);
                }
                true
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => false,
            Err(e) => {
                self.state = match parse_answer(&self.received) {
                    Some((s, r)) => State::Answered(s, r),
                    None => State::Lost(e.to_string()),
                };
                true
            }
        }
    }

    /// Sends the next piece of the body, never its last byte.
    fn poll_write(&mut self, body: &[u8]) -> bool {
        let target = DECLARED_BYTES - 1;
        let end = (self.sent + WRITE_STEP_BYTES).min(target);
        match self.stream.write(&body[self.sent..end]) {
            Ok(n) => {
                self.sent += n;
                if self.sent == target {
                    self.state = State::Holding;
                }
                n > 0
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => false,
            // The server closed after answering; the answer is read next.
            Err(_) => self.poll_read(),
        }
    }
}

fn connections() -> usize {
    // SAFETY: getrlimit writes one rlimit struct into the value we own.
    let soft = unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur
        } else {
            1024
        }
    };
    CONNECTIONS
        .min((soft as usize).saturating_sub(128) / 2)
        .max(16)
}

#[test]
fn unfinished_bodies_stay_within_the_budget() {
    let dir = TestDir::new("admission-budget");
    let options = ServerOptions {
        syslog: false,
        extra_args: vec![
            "--request-bodies-bytes-max".into(),
            BUDGET_BYTES_PER_CORE.to_string(),
        ],
        ..ServerOptions::default()
    };
    let server = Server::start_with(&dir, &options);
    let before = server.memory();
    let body = vec![b'x'; DECLARED_BYTES];
    let n = connections();
    let mut clients: Vec<Client> = (0..n).map(|_| Client::connect(&server)).collect();

    let deadline = Instant::now() + EXCHANGE_TIMEOUT;
    while clients.iter().any(|c| c.state == State::Sending) {
        assert!(
            Instant::now() < deadline,
            "the exchange did not settle within {EXCHANGE_TIMEOUT:?}: {} sending",
            clients.iter().filter(|c| c.state == State::Sending).count()
        );
        let mut progress = false;
        for c in clients.iter_mut().filter(|c| c.state == State::Sending) {
            progress |= c.poll_read();
            if c.state == State::Sending {
                progress |= c.poll_write(&body);
            }
        }
        if !progress {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    // Holding clients may still get an answer only if the server gave up on them; none is
    // expected within the read timeout, which is far longer than this test.
    let after = server.memory();

    let holding = clients.iter().filter(|c| c.state == State::Holding).count();
    let refused: Vec<&State> = clients
        .iter()
        .map(|c| &c.state)
        .filter(|s| matches!(s, State::Answered(..) | State::Lost(_)))
        .collect();
    let budget_total = BUDGET_BYTES_PER_CORE * common::server::TEST_CORES as u64;
    let most_held = (BUDGET_BYTES_PER_CORE as usize / DECLARED_BYTES) * common::server::TEST_CORES;
    eprintln!(
        "{n} connections: {holding} held, {} refused; RSS before {} MiB (peak {} MiB), \
         after {} MiB (peak {} MiB); budget {} MiB",
        refused.len(),
        before.rss >> 20,
        before.peak >> 20,
        after.rss >> 20,
        after.peak >> 20,
        budget_total >> 20
    );
    assert!(holding >= 1, "no body was admitted at all");
    assert!(
        holding <= most_held,
        "{holding} bodies of {DECLARED_BYTES} bytes held; the budgets hold at most {most_held}"
    );
    for state in &refused {
        match state {
            State::Answered(503, Some(retry)) => {
                assert!(retry.parse::<u64>().is_ok(), "Retry-After {retry:?}")
            }
            other => panic!("a refused body must get 503 with Retry-After, got {other:?}"),
        }
    }
    assert!(
        after.peak <= before.peak + budget_total + ALLOWANCE_BYTES,
        "peak RSS {} MiB exceeds the {} MiB before plus the {} MiB budget plus {} MiB",
        after.peak >> 20,
        before.peak >> 20,
        budget_total >> 20,
        ALLOWANCE_BYTES >> 20
    );

    // The refusals are counted, and once the clients are gone the budget is free again.
    let samples = parse_metrics(&server.metrics());
    let counted = metric_sum(&samples, "shardlog_http_requests_over_budget_total", &[]);
    assert_eq!(counted as usize, refused.len());
    drop(clients);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let samples = parse_metrics(&server.metrics());
        if metric_sum(&samples, "shardlog_request_body_bytes_held", &[]) == 0.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "body bytes still held after the clients closed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // Ordinary pushes work afterwards.
    let ts = now_ns().to_string();
    server.push_json_ok(&json!({"streams": [{
        "stream": {"test": "after-flood"},
        "values": [[ts, "still serving"]]
    }]}));
    let got = server.query_all("{test=\"after-flood\"}", false);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].line, "still serving");
    assert_eq!(got[0].labels, labels(&[("test", "after-flood")]));
}

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

/// The budget the test server runs with, per core: the smallest the server accepts with the
/// default push limit (four times 8 MiB, plus 1 MiB), so that the difference between "bounded"
/// and "not" is large on any machine.
const BUDGET_BYTES_PER_CORE: u64 = 33 << 20;

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
    let soft = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map_or(1024, |(soft, _)| soft);
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

/// A keep-alive HTTP/1.1 connection: the test's own slot, kept while the core is at its cap.
struct KeepAlive {
    reader: std::io::BufReader<TcpStream>,
}

impl KeepAlive {
    fn open(server: &Server) -> KeepAlive {
        let stream = TcpStream::connect(server.http).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("read timeout");
        KeepAlive {
            reader: std::io::BufReader::new(stream),
        }
    }

    /// GET on this connection: status and body.
    fn get(&mut self, path: &str) -> (u16, String) {
        use std::io::BufRead;
        let request = format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n");
        self.reader
            .get_mut()
            .write_all(request.as_bytes())
            .expect("send");
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("status line");
        let status = line
            .get(9..12)
            .and_then(|s| s.parse().ok())
            .expect("status");
        let mut length = 0;
        loop {
            let mut header = String::new();
            self.reader.read_line(&mut header).expect("header");
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().expect("content-length");
            }
        }
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body).expect("body");
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    fn stored(&mut self, query: &str) -> u64 {
        let path = format!(
            "/loki/api/v1/index/stats?{}",
            common::http::encode_query(&[
                ("query", query),
                ("start", &(now_ns() - 3_600_000_000_000).to_string()),
                ("end", &(now_ns() + 3_600_000_000_000).to_string()),
            ])
        );
        let (status, body) = self.get(&path);
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).expect("stats JSON");
        v["entries"].as_u64().expect("entries")
    }

    fn wait_stored(&mut self, query: &str, want: u64) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let n = self.stored(query);
            if n >= want || Instant::now() > deadline {
                return n;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Whether a connection's request stays unanswered for a moment (the server has not
/// accepted it).
fn unanswered(stream: &mut TcpStream) -> bool {
    stream
        .set_read_timeout(Some(Duration::from_millis(500)))
        .expect("read timeout");
    let mut byte = [0u8; 1];
    let pending = matches!(stream.read(&mut byte), Err(e) if e.kind() == ErrorKind::WouldBlock);
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("read timeout");
    pending
}

#[test]
fn http_and_syslog_share_one_connection_cap_and_wait_beyond_it() {
    let dir = TestDir::new("admission-cap");
    let options = ServerOptions {
        cores: 1,
        extra_args: vec!["--connections-max".into(), "3".into()],
        ..ServerOptions::default()
    };
    let server = Server::start_with(&dir, &options);
    let syslog = std::net::SocketAddr::from(([127, 0, 0, 1], server.syslog_port));
    let line = |n: usize| format!("<13>1 - host capapp - - - capped line {n}\n");
    let query = "{app=\"capapp\"}";
    let ready = b"GET /ready HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";

    // The cap of three filled: this HTTP connection and two syslog connections.
    let mut http = KeepAlive::open(&server);
    assert_eq!(http.get("/ready").0, 200);
    let mut first = TcpStream::connect(syslog).expect("syslog");
    let mut second = TcpStream::connect(syslog).expect("syslog");
    first.write_all(line(1).as_bytes()).unwrap();
    second.write_all(line(2).as_bytes()).unwrap();
    assert_eq!(http.wait_stored(query, 2), 2);

    // The syslog listener, which filled the cap, takes no more: the kernel holds the next one.
    let mut waiting_syslog = TcpStream::connect(syslog).expect("syslog");
    waiting_syslog.write_all(line(3).as_bytes()).unwrap();
    // The HTTP listener was already waiting in accept when the cap filled, so it may take one
    // connection beyond it (the documented bound: one per other listener); then it pauses too.
    let mut beyond = TcpStream::connect(server.http).expect("connect");
    beyond.write_all(ready).unwrap();
    let _ = unanswered(&mut beyond);
    let mut waiting_http = TcpStream::connect(server.http).expect("connect");
    waiting_http.write_all(ready).unwrap();
    assert!(unanswered(&mut waiting_http), "HTTP served beyond the cap");
    assert_eq!(http.stored(query), 2, "syslog read beyond the cap");

    // Slots freed: the waiting connections are taken in, and nothing they sent was lost.
    drop(first);
    drop(second);
    let mut answer = String::new();
    waiting_http.read_to_string(&mut answer).expect("answer");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(http.wait_stored(query, 3), 3);
    drop((waiting_syslog, beyond));

    let (_, metrics) = http.get("/metrics");
    let samples = parse_metrics(&metrics);
    for listener in ["http", "syslog_tcp"] {
        let paused = metric_sum(
            &samples,
            "shardlog_accept_paused_total",
            &[("listener", listener)],
        );
        assert!(paused >= 1.0, "{listener} never paused at the cap");
    }
}

/// A small compressed push that decodes into more than the core's whole budget is refused
/// with 413 before anything is stored (it could never fit); ordinary pushes are unaffected.
#[test]
fn a_push_too_large_to_hold_decoded_is_refused_whole() {
    use flate2::Compression;
    use flate2::write::GzEncoder;
    let dir = TestDir::new("admission-decoded");
    let options = ServerOptions {
        syslog: false,
        extra_args: vec![
            "--request-bodies-bytes-max".into(),
            BUDGET_BYTES_PER_CORE.to_string(),
        ],
        ..ServerOptions::default()
    };
    let server = Server::start_with(&dir, &options);
    // About 290,000 one-byte lines: under the 8 MiB push limit as JSON, but their decoded
    // entries take more than the 33 MiB budget; gzip makes the body a few hundred KiB.
    let ts = now_ns();
    let values: Vec<_> = (0..290_000)
        .map(|i| json!([(ts + i).to_string(), "a"]))
        .collect();
    let body = json!({"streams": [{"stream": {"test": "decoded"}, "values": values}]});
    let mut gz = GzEncoder::new(Vec::new(), Compression::default());
    gz.write_all(body.to_string().as_bytes()).unwrap();
    let gz = gz.finish().unwrap();
    let r = server.post(
        "/loki/api/v1/push",
        &[
            ("Content-Type", "application/json"),
            ("Content-Encoding", "gzip"),
        ],
        &gz,
    );
    assert_eq!(r.status, 413, "{}", r.text());
    assert!(
        r.text().contains("request_bodies_bytes_max"),
        "{}",
        r.text()
    );
    assert_eq!(server.index_stats("{test=\"decoded\"}").entries, 0);

    server.push_json_ok(&json!({"streams": [{"stream": {"test": "decoded"},
        "values": [[ts.to_string(), "small enough"]]}]}));
    assert_eq!(server.query_all("{test=\"decoded\"}", false).len(), 1);
    let samples = parse_metrics(&server.metrics());
    assert_eq!(
        metric_sum(&samples, "shardlog_request_body_bytes_held", &[]),
        0.0
    );
}

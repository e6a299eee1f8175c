//! Tests of [`super::server`] over real sockets: a glommio executor on its own thread runs
//! [`serve`] on 127.0.0.1, and the test talks to it with `std::net::TcpStream`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream as StdStream};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use glommio::LocalExecutorBuilder;
use glommio::net::TcpListener;
use glommio::timer::sleep;

use super::*;
use crate::http::admission::AdmissionLimits;

/// Counters read back after the server stopped.
#[derive(Debug)]
struct Outcome {
    accepted: u64,
    /// Times the accept loop paused at the connection cap.
    paused: u64,
    requests: u64,
    rejected: u64,
    over_budget: u64,
    open_at_end: u64,
    /// Body bytes still charged after every connection ended (must be 0).
    held_at_end: u64,
    /// From the stop request to `serve` returning.
    stopped_after: Duration,
}

struct TestServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: glommio::ExecutorJoinHandle<Outcome>,
}

/// The handler every test uses: echoes method, path, query and body; `/slow` answers after
/// 300 ms, `/close` asks to close, `/empty` answers 204.
async fn echo(req: Request) -> Response {
    match req.path.as_str() {
        "/slow" => sleep(Duration::from_millis(300)).await,
        "/close" => return Response::text(200, "bye").with_header("Connection", "close"),
        "/empty" => return Response::no_content(),
        "/upgrade" => return upgrade_to_shouting(),
        _ => {}
    }
    let mut body = format!("{} {}?{}\n", req.method, req.path, req.query).into_bytes();
    body.extend_from_slice(&req.body);
    Response::new(200)
        .with_header("X-Peer-Loopback", req.peer.ip().is_loopback().to_string())
        .with_header("X-Tenant", req.header("X-Scope-OrgID").unwrap_or("-"))
        .with_body(body)
}

/// `/upgrade`: switches to a line protocol that answers every line in capitals, until the
/// client closes, and says "bye" when the server stops.
fn upgrade_to_shouting() -> Response {
    let task =
        crate::http::response::Upgrade::new(|up: crate::http::response::Upgraded| async move {
            let crate::http::response::Upgraded {
                mut stream,
                read_ahead,
                shutdown,
            } = up;
            let mut pending = read_ahead;
            let mut buf = [0u8; 256];
            loop {
                while let Some(nl) = pending.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = pending.drain(..=nl).collect();
                    if stream.write_all(&line.to_ascii_uppercase()).await.is_err() {
                        return;
                    }
                }
                let read = or(async { Some(stream.read(&mut buf).await) }, async {
                    shutdown.wait().await;
                    None
                })
                .await;
                match read {
                    Some(Ok(0) | Err(_)) => return,
                    Some(Ok(n)) => pending.extend_from_slice(&buf[..n]),
                    None => {
                        let _ = stream.write_all(b"bye\n").await;
                        return;
                    }
                }
            }
        });
    Response::switching_protocols("shout", vec![("X-Proto".into(), "1".into())], task)
}

impl Response {
    fn with_body(mut self, body: Vec<u8>) -> Response {
        self.body = body;
        self
    }
}

/// The admission of most tests: room for everything they send.
const ROOMY: AdmissionLimits = AdmissionLimits {
    connections_max: 10_000,
    body_bytes_max: 1 << 30,
};

fn start(limits: ServerLimits) -> TestServer {
    start_admitting(limits, ROOMY)
}

fn start_admitting(limits: ServerLimits, admission: AdmissionLimits) -> TestServer {
    let (tx, rx) = mpsc::channel();
    let stop = Arc::new(AtomicBool::new(false));
    let stop_flag = stop.clone();
    let thread = LocalExecutorBuilder::default()
        .spawn(move || async move {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            let shutdown = Shutdown::new();
            let stats = Rc::new(EdgeStats::default());
            let admission = Admission::new(admission, stats.clone());
            // The stop request crosses threads as an atomic; the signal itself is core-local.
            let trigger = shutdown.clone();
            glommio::spawn_local(async move {
                while !stop_flag.load(Ordering::SeqCst) {
                    sleep(Duration::from_millis(5)).await;
                }
                trigger.trigger();
            })
            .detach();
            let queue = glommio::executor().current_task_queue();
            serve(listener, limits, queue, shutdown, admission, 0, echo)
                .await
                .unwrap();
            Outcome {
                accepted: stats.http.connections_accepted.get(),
                paused: stats.http.accept_paused_at_cap.get(),
                requests: stats.http_requests.get(),
                rejected: stats.http_requests_rejected.get(),
                over_budget: stats.http_requests_over_budget.get(),
                open_at_end: stats.connections_open(),
                held_at_end: stats.body_bytes_held(),
                stopped_after: Duration::ZERO,
            }
        })
        .unwrap();
    let addr = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    TestServer { addr, stop, thread }
}

impl TestServer {
    fn connect(&self) -> StdStream {
        let s = StdStream::connect(self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s
    }

    fn stop(self) -> Outcome {
        let asked = Instant::now();
        self.stop.store(true, Ordering::SeqCst);
        let mut outcome = self.thread.join().unwrap();
        outcome.stopped_after = asked.elapsed();
        outcome
    }
}

fn small_limits() -> ServerLimits {
    ServerLimits {
        header_bytes_max: 1024,
        body_bytes_max: 4096,
        idle_timeout: Duration::from_secs(5),
        read_timeout: Duration::from_secs(5),
        ..ServerLimits::default()
    }
}

#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap()
    }
}

/// Reads one response; `head_request` says that no body follows whatever the length says.
fn read_reply(r: &mut BufReader<StdStream>, head_request: bool) -> Reply {
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    assert!(line.starts_with("HTTP/1.1 "), "bad status line {line:?}");
    let status = line[9..12].parse().unwrap();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        let line = line.trim_end_matches("\r\n");
        if line.is_empty() {
            break;
        }
        let (n, v) = line.split_once(": ").unwrap();
        headers.push((n.to_string(), v.to_string()));
    }
    let mut reply = Reply {
        status,
        headers,
        body: Vec::new(),
    };
    if !head_request && let Some(len) = reply.header("Content-Length") {
        reply.body = vec![0; len.parse().unwrap()];
        r.read_exact(&mut reply.body).unwrap();
    }
    reply
}

/// Sends `request` on a new connection and reads one response.
fn exchange(server: &TestServer, request: &[u8]) -> (Reply, BufReader<StdStream>) {
    let mut s = server.connect();
    s.write_all(request).unwrap();
    let mut r = BufReader::new(s);
    let reply = read_reply(&mut r, request.starts_with(b"HEAD "));
    (reply, r)
}

/// Asserts that the server closes the connection (after any bytes still in flight).
fn assert_closed(r: &mut BufReader<StdStream>) {
    let mut rest = Vec::new();
    match r.read_to_end(&mut rest) {
        Ok(_) => assert!(rest.is_empty(), "unexpected bytes {rest:?}"),
        Err(e) => assert_eq!(e.kind(), io::ErrorKind::ConnectionReset, "{e}"),
    }
}

#[test]
fn get_with_query_and_headers() {
    let server = start(small_limits());
    let (reply, _) = exchange(
        &server,
        b"GET /loki/api/v1/query%20x?query=%7Bapp%3D%22a%22%7D&limit=5 HTTP/1.1\r\n\
          Host: t\r\nX-Scope-OrgID: tenant-1\r\n\r\n",
    );
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.text(),
        "GET /loki/api/v1/query x?query=%7Bapp%3D%22a%22%7D&limit=5\n"
    );
    assert_eq!(reply.header("X-Tenant"), Some("tenant-1"));
    assert_eq!(reply.header("X-Peer-Loopback"), Some("true"));
    assert!(reply.header("Date").is_some_and(|d| d.ends_with(" GMT")));
    assert_eq!(
        reply.header("Connection"),
        None,
        "keep-alive is the HTTP/1.1 default"
    );
    let outcome = server.stop();
    assert_eq!((outcome.accepted, outcome.requests), (1, 1));
}

#[test]
fn post_with_content_length() {
    let server = start(small_limits());
    let (reply, _) = exchange(
        &server,
        b"POST /loki/api/v1/push HTTP/1.1\r\nContent-Length: 11\r\n\r\nhello world",
    );
    assert_eq!(reply.status, 200);
    assert_eq!(reply.text(), "POST /loki/api/v1/push?\nhello world");
    server.stop();
}

#[test]
fn chunked_body_across_writes() {
    let server = start(small_limits());
    let mut s = server.connect();
    s.write_all(b"POST /p HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel")
        .unwrap();
    std::thread::sleep(Duration::from_millis(50));
    s.write_all(b"lo\r\n6;ext\r\n world\r").unwrap();
    std::thread::sleep(Duration::from_millis(50));
    s.write_all(b"\n0\r\n\r\nGET /after HTTP/1.1\r\n\r\n")
        .unwrap();
    let mut r = BufReader::new(s);
    let reply = read_reply(&mut r, false);
    assert_eq!(reply.text(), "POST /p?\nhello world");
    let reply = read_reply(&mut r, false);
    assert_eq!(reply.text(), "GET /after?\n");
    server.stop();
}

#[test]
fn expect_100_continue() {
    let server = start(small_limits());
    let mut s = server.connect();
    s.write_all(b"POST /p HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2000\r\n\r\n")
        .unwrap();
    let mut interim = [0u8; 25];
    s.read_exact(&mut interim).unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    s.write_all(&[b'x'; 2000]).unwrap();
    let mut r = BufReader::new(s);
    let reply = read_reply(&mut r, false);
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body.len(), "POST /p?\n".len() + 2000);
    server.stop();
}

#[test]
fn keep_alive_serves_two_requests_on_one_connection() {
    let server = start(small_limits());
    let (first, mut r) = exchange(&server, b"GET /one HTTP/1.1\r\n\r\n");
    assert_eq!(first.text(), "GET /one?\n");
    r.get_mut().write_all(b"GET /two HTTP/1.1\r\n\r\n").unwrap();
    let second = read_reply(&mut r, false);
    assert_eq!(second.text(), "GET /two?\n");
    let outcome = server.stop();
    assert_eq!((outcome.accepted, outcome.requests), (1, 2));
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let server = start(small_limits());
    let mut s = server.connect();
    s.write_all(
        b"GET /slow HTTP/1.1\r\n\r\n\
          POST /b HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc\
          GET /empty HTTP/1.1\r\n\r\n\
          GET /c?z HTTP/1.1\r\n\r\n",
    )
    .unwrap();
    let mut r = BufReader::new(s);
    assert_eq!(read_reply(&mut r, false).text(), "GET /slow?\n");
    assert_eq!(read_reply(&mut r, false).text(), "POST /b?\nabc");
    assert_eq!(read_reply(&mut r, false).status, 204);
    assert_eq!(read_reply(&mut r, false).text(), "GET /c?z\n");
    server.stop();
}

#[test]
fn oversize_head_is_431() {
    let server = start(small_limits());
    let mut request = b"GET / HTTP/1.1\r\nX-Big: ".to_vec();
    request.resize(4000, b'a');
    request.extend_from_slice(b"\r\n\r\n");
    let (reply, mut r) = exchange(&server, &request);
    assert_eq!(reply.status, 431);
    assert_eq!(reply.header("Connection"), Some("close"));
    assert!(reply.text().contains("1024 bytes"), "{}", reply.text());
    assert_closed(&mut r);
    let outcome = server.stop();
    assert_eq!((outcome.requests, outcome.rejected), (0, 1));
}

#[test]
fn oversize_body_is_413_before_it_is_sent() {
    let server = start(small_limits());
    // Declared length over the limit: answered at once, the client never sends the body.
    let (reply, mut r) = exchange(
        &server,
        b"POST /p HTTP/1.1\r\nContent-Length: 104857600\r\nExpect: 100-continue\r\n\r\n",
    );
    assert_eq!(reply.status, 413);
    assert!(reply.text().contains("4096 bytes"));
    assert_closed(&mut r);
    // A chunked body is refused as soon as a chunk would cross the limit.
    let (reply, mut r) = exchange(
        &server,
        b"POST /p HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2000\r\n",
    );
    assert_eq!(reply.status, 413);
    assert_closed(&mut r);
    server.stop();
}

#[test]
fn garbage_is_400_and_closes() {
    let server = start(small_limits());
    let (reply, mut r) = exchange(
        &server,
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
    );
    assert_eq!(reply.status, 400);
    assert_closed(&mut r);
    let (reply, _) = exchange(
        &server,
        b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    );
    assert_eq!(reply.status, 400);
    let outcome = server.stop();
    assert_eq!(outcome.rejected, 2);
}

#[test]
fn slow_request_times_out_with_408() {
    let server = start(ServerLimits {
        read_timeout: Duration::from_millis(300),
        ..small_limits()
    });
    let started = Instant::now();
    let s = server.connect();
    // Slowloris: one byte every 20 ms never completes the head in time, and each byte would
    // reset a per-read timeout; the deadline covers the whole request.
    let dripper = {
        let mut s = s.try_clone().unwrap();
        std::thread::spawn(move || {
            // 170 bytes take 3.4 s: far past the deadline, so only a per-request deadline
            // answers within the bound below, even on a loaded machine.
            let mut head = b"POST /p HTTP/1.1\r\nX-Slow: ".to_vec();
            head.resize(170, b'a');
            for b in head.iter() {
                if s.write_all(std::slice::from_ref(b)).is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let mut r = BufReader::new(s);
    let reply = read_reply(&mut r, false);
    let waited = started.elapsed();
    assert_eq!(reply.status, 408);
    assert!(reply.text().contains("300 ms"), "{}", reply.text());
    assert!(
        waited >= Duration::from_millis(300) && waited < Duration::from_millis(2000),
        "answered after {waited:?}"
    );
    dripper.join().unwrap();
    assert_closed(&mut r);
    server.stop();
}

#[test]
fn idle_connection_is_closed_after_idle_timeout() {
    let server = start(ServerLimits {
        idle_timeout: Duration::from_millis(200),
        ..small_limits()
    });
    let (reply, mut r) = exchange(&server, b"GET / HTTP/1.1\r\n\r\n");
    assert_eq!(reply.status, 200);
    let started = Instant::now();
    assert_closed(&mut r);
    assert!(started.elapsed() < Duration::from_secs(4));
    let outcome = server.stop();
    assert_eq!(outcome.open_at_end, 0);
}

#[test]
fn head_has_length_but_no_body() {
    let server = start(small_limits());
    let (reply, mut r) = exchange(&server, b"HEAD /h HTTP/1.1\r\n\r\n");
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.header("Content-Length"),
        Some("9"),
        "the length of \"HEAD /h?\\n\""
    );
    // If a body had been sent, it would be read here as the next status line.
    r.get_mut()
        .write_all(b"GET /next HTTP/1.1\r\n\r\n")
        .unwrap();
    assert_eq!(read_reply(&mut r, false).text(), "GET /next?\n");
    server.stop();
}

#[test]
fn http10_and_connection_close() {
    let server = start(small_limits());
    let (reply, mut r) = exchange(&server, b"GET /old HTTP/1.0\r\n\r\n");
    assert_eq!(reply.header("Connection"), Some("close"));
    assert_closed(&mut r);
    let (reply, _) = exchange(
        &server,
        b"GET /old HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    );
    assert_eq!(reply.header("Connection"), Some("keep-alive"));
    let (reply, mut r) = exchange(&server, b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n");
    assert_eq!(reply.header("Connection"), Some("close"));
    assert_closed(&mut r);
    let (reply, mut r) = exchange(&server, b"GET /close HTTP/1.1\r\n\r\n");
    assert_eq!(
        (reply.status, reply.header("Connection")),
        (200, Some("close"))
    );
    assert_closed(&mut r);
    server.stop();
}

#[test]
fn connections_over_the_cap_wait_in_the_backlog() {
    let server = start_admitting(
        small_limits(),
        AdmissionLimits {
            connections_max: 1,
            ..ROOMY
        },
    );
    let (_, first) = exchange(&server, b"GET /1 HTTP/1.1\r\n\r\n");
    // The kernel completes the second connection, but the server does not accept it while
    // the first one is open: its request stays unanswered.
    let mut second = server.connect();
    second.write_all(b"GET /2 HTTP/1.1\r\n\r\n").unwrap();
    second
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut byte = [0u8; 1];
    let early = second.read(&mut byte);
    assert!(
        matches!(&early, Err(e) if e.kind() == io::ErrorKind::WouldBlock),
        "served beyond the cap: {early:?}"
    );
    // Once the first closes, the second is accepted and served.
    drop(first);
    second
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let reply = read_reply(&mut BufReader::new(second), false);
    assert_eq!(reply.text(), "GET /2?\n");
    let outcome = server.stop();
    assert_eq!(outcome.accepted, 2);
    assert!(outcome.paused >= 1, "{outcome:?}");
}

#[test]
fn bodies_beyond_the_budget_get_503_before_they_are_read() {
    let limits = ServerLimits {
        body_bytes_max: 16_000,
        ..small_limits()
    };
    let server = start_admitting(
        limits,
        AdmissionLimits {
            body_bytes_max: 6_000,
            ..ROOMY
        },
    );
    // One body of 4,000 declared bytes holds most of the budget while it arrives.
    let mut holding = server.connect();
    holding
        .write_all(b"POST /a HTTP/1.1\r\nContent-Length: 4000\r\n\r\n")
        .unwrap();
    holding.write_all(&[b'a'; 100]).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    // Another 4,000 would exceed 6,000: refused at once, before any of it is read, with a
    // reason and a time to retry.
    let (reply, mut r) = exchange(
        &server,
        b"POST /b HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4000\r\n\r\n",
    );
    assert_eq!(reply.status, 503);
    assert_eq!(reply.header("Retry-After"), Some("1"));
    assert!(
        reply.text().contains("request_bodies_bytes_max"),
        "{}",
        reply.text()
    );
    assert_closed(&mut r);
    // A chunked body is charged as it grows, and refused mid-way when the budget runs out.
    let mut chunked = server.connect();
    chunked
        .write_all(b"POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")
        .unwrap();
    let _ = chunked.write_all(format!("{:x}\r\n", 9000).as_bytes());
    let _ = chunked.write_all(&[b'c'; 9000]);
    let reply = read_reply(&mut BufReader::new(chunked), false);
    assert_eq!(reply.status, 503);
    // The first body finishes and is handled; its charge is released, so a retry fits.
    holding.write_all(&[b'a'; 3900]).unwrap();
    let reply = read_reply(&mut BufReader::new(holding), false);
    assert_eq!(
        (reply.status, reply.body.len()),
        (200, "POST /a?\n".len() + 4000)
    );
    let (reply, _) = exchange(
        &server,
        &[
            &b"POST /b HTTP/1.1\r\nContent-Length: 4000\r\n\r\n"[..],
            &[b'b'; 4000],
        ]
        .concat(),
    );
    assert_eq!(reply.status, 200);
    // A connection that ends mid-body gives its charge back too.
    let mut abandoned = server.connect();
    abandoned
        .write_all(b"POST /d HTTP/1.1\r\nContent-Length: 5000\r\n\r\nxyz")
        .unwrap();
    std::thread::sleep(Duration::from_millis(50));
    drop(abandoned);
    let outcome = server.stop();
    assert_eq!(outcome.over_budget, 2, "{outcome:?}");
    assert_eq!(outcome.held_at_end, 0, "{outcome:?}");
}

#[test]
fn shutdown_stops_accepting_and_finishes_in_flight_requests() {
    let server = start(small_limits());
    let addr = server.addr;
    // One idle keep-alive connection and one with a request in progress.
    let (_, mut idle) = exchange(&server, b"GET / HTTP/1.1\r\n\r\n");
    // ...and one whose head is still arriving: abandoned, not waited for.
    let mut partial = server.connect();
    partial.write_all(b"GET / HTTP/1.1\r\nHost:").unwrap();
    let mut busy = server.connect();
    busy.write_all(b"GET /slow HTTP/1.1\r\n\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let stopping = std::thread::spawn(move || server.stop());
    let mut busy = BufReader::new(busy);
    let reply = read_reply(&mut busy, false);
    assert_eq!(reply.text(), "GET /slow?\n");
    assert_eq!(reply.header("Connection"), Some("close"));
    assert_closed(&mut busy);
    assert_closed(&mut idle);
    assert_closed(&mut BufReader::new(partial));
    let outcome = stopping.join().unwrap();
    assert_eq!(outcome.open_at_end, 0);
    assert!(
        outcome.stopped_after < Duration::from_secs(2),
        "{outcome:?}"
    );
    // The listener is gone: nothing accepts on the port any more.
    match StdStream::connect_timeout(&addr, Duration::from_secs(1)) {
        Err(_) => {}
        Ok(s) => {
            let mut r = BufReader::new(s);
            assert_closed(&mut r);
        }
    }
}

#[test]
fn a_request_line_longer_than_the_head_limit_is_refused() {
    // No newline within header_bytes_max: the head can never complete, and must be refused
    // rather than wait for a line end that cannot fit.
    let server = start(ServerLimits::default());
    let mut s = server.connect();
    let line = format!(
        "GET /{} HTTP/1.1\r\n\r\n",
        "a".repeat(2 * HEADER_BYTES_MAX_DEFAULT)
    );
    let _ = s.write_all(line.as_bytes());
    let reply = read_reply(&mut BufReader::new(s), false);
    assert_eq!(reply.status, 431);
    let outcome = server.stop();
    assert_eq!(outcome.rejected, 1);
}

#[test]
fn invalid_limits_are_refused() {
    let bad = ServerLimits {
        read_timeout: Duration::ZERO,
        ..ServerLimits::default()
    };
    assert!(bad.validate().unwrap_err().contains("read_timeout"));
    assert!(ServerLimits::default().validate().is_ok());
}

#[test]
fn large_body_arrives_intact_across_many_reads() {
    let server = start(ServerLimits::default());
    let body: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let mut s = server.connect();
    s.write_all(
        format!(
            "POST /big HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .unwrap();
    let writer = {
        let mut s = s.try_clone().unwrap();
        let body = body.clone();
        std::thread::spawn(move || {
            for piece in body.chunks(100_000) {
                s.write_all(piece).unwrap();
            }
        })
    };
    let mut r = BufReader::new(s);
    let reply = read_reply(&mut r, false);
    writer.join().unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(&reply.body[.."POST /big?\n".len()], b"POST /big?\n");
    assert!(
        reply.body["POST /big?\n".len()..] == body[..],
        "body corrupted"
    );
    server.stop();
}

#[test]
fn refusal_lets_a_client_finish_sending_its_body() {
    // Clients such as Python's requests send the whole body before reading: if the server
    // closed with body bytes unread, the kernel would reset the connection and their send
    // would fail with "connection reset" instead of showing the 413.
    let server = start(small_limits());
    let s = server.connect();
    let writer = {
        let mut s = s.try_clone().unwrap();
        std::thread::spawn(move || -> io::Result<()> {
            s.write_all(b"POST /p HTTP/1.1\r\nContent-Length: 200000\r\n\r\n")?;
            for _ in 0..20 {
                std::thread::sleep(Duration::from_millis(5));
                s.write_all(&[b'x'; 10_000])?;
            }
            Ok(())
        })
    };
    let sent = writer.join().unwrap();
    assert!(sent.is_ok(), "sending the body failed: {sent:?}");
    let mut r = BufReader::new(s);
    assert_eq!(read_reply(&mut r, false).status, 413);
    assert_closed(&mut r);
    server.stop();
}

#[test]
fn shutdown_wakes_an_accept_loop_with_no_connections() {
    let server = start(small_limits());
    let outcome = server.stop();
    assert_eq!(outcome.accepted, 0);
    // The stop is polled every 5 ms by the test; the accept loop itself wakes at once.
    assert!(
        outcome.stopped_after < Duration::from_secs(1),
        "{outcome:?}"
    );
}

#[test]
fn an_upgrade_hands_the_socket_and_its_read_ahead_to_the_task() {
    let server = start(small_limits());
    let mut s = server.connect();
    // The first line of the new protocol arrives with the request head, in one write.
    s.write_all(b"GET /upgrade HTTP/1.1\r\nUpgrade: shout\r\n\r\nhello\n")
        .unwrap();
    let mut r = BufReader::new(s);
    let reply = read_reply(&mut r, false);
    assert_eq!(reply.status, 101);
    assert_eq!(reply.header("Connection"), Some("Upgrade"));
    assert_eq!(reply.header("Upgrade"), Some("shout"));
    assert_eq!(reply.header("X-Proto"), Some("1"));
    assert_eq!(reply.header("Content-Length"), None);
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    assert_eq!(line, "HELLO\n");
    r.get_mut().write_all(b"again\n").unwrap();
    line.clear();
    r.read_line(&mut line).unwrap();
    assert_eq!(line, "AGAIN\n");
    drop(r);
    let outcome = server.stop();
    assert_eq!(outcome.open_at_end, 0, "{outcome:?}");
}

#[test]
fn a_stop_reaches_an_upgraded_connection_and_waits_for_it() {
    let server = start(small_limits());
    let mut s = server.connect();
    s.write_all(b"GET /upgrade HTTP/1.1\r\n\r\n").unwrap();
    let mut r = BufReader::new(s);
    assert_eq!(read_reply(&mut r, false).status, 101);
    let stopping = std::thread::spawn(move || server.stop());
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    assert_eq!(line, "bye\n");
    assert_closed(&mut r);
    let outcome = stopping.join().unwrap();
    assert_eq!(outcome.open_at_end, 0, "{outcome:?}");
    assert!(
        outcome.stopped_after < Duration::from_secs(2),
        "{outcome:?}"
    );
}

//! Live tailing (`/loki/api/v1/tail`) against the real binary, with a real WebSocket client
//! (tungstenite's blocking client, the crate the server's side is built on): lines pushed
//! after the upgrade arrive, filters and tenants keep the others out, `start` replays
//! history first (without what a delete request hides, nor does it send such lines live),
//! `delay_for` holds lines back, a client that stops reading gets
//! `dropped_entries` while pushes keep their pace, a closed client's tail is unregistered,
//! and a stopping server closes every tail with a close frame.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use async_tungstenite::tungstenite::client::IntoClientRequest;
use async_tungstenite::tungstenite::http::HeaderName;
use async_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use async_tungstenite::tungstenite::{self, Message, WebSocket};
use common::http::encode_query;
use common::loki::{metric_sum, parse_metrics, path_with_query};
use common::server::{Signal, call, send_signal};
use common::{Server, TestDir, now_ns};
use serde_json::{Value, json};

type Ws = WebSocket<TcpStream>;

/// How long a test waits for a line it expects.
const ARRIVAL_WAIT: Duration = Duration::from_secs(10);

/// How long a read blocks before the test looks at its deadline again.
const READ_SLICE: Duration = Duration::from_millis(100);

/// Opens a tail; panics unless the server upgrades the connection.
fn tail(server: &Server, params: &[(&str, &str)], headers: &[(&str, &str)]) -> Ws {
    try_tail(server, params, headers).unwrap_or_else(|e| panic!("tail {params:?}: {e}"))
}

/// Opens a tail; `Err` carries the status and body of a refusal.
fn try_tail(
    server: &Server,
    params: &[(&str, &str)],
    headers: &[(&str, &str)],
) -> Result<Ws, String> {
    let url = format!(
        "ws://{}/loki/api/v1/tail?{}",
        server.http,
        encode_query(params)
    );
    let mut request = url.into_client_request().expect("a valid URL");
    for (name, value) in headers {
        request.headers_mut().insert(
            HeaderName::from_bytes(name.as_bytes()).expect("a header name"),
            value.parse().expect("a header value"),
        );
    }
    let stream = TcpStream::connect(server.http).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("read timeout");
    match tungstenite::client::client(request, stream) {
        Ok((ws, response)) => {
            assert_eq!(response.status(), 101);
            ws.get_ref()
                .set_read_timeout(Some(READ_SLICE))
                .expect("read timeout");
            Ok(ws)
        }
        Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(response))) => {
            let body = response
                .body()
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default();
            Err(format!("{} {body}", response.status().as_u16()))
        }
        Err(e) => panic!("handshake failed: {e}"),
    }
}

/// What a tail client reads.
enum Read {
    Message(Value),
    Closed(Option<(CloseCode, String)>),
    TimedOut,
}

/// The next tail message (pings are answered by the client library), a close, or nothing
/// before `until`.
fn read(ws: &mut Ws, until: Instant) -> Read {
    loop {
        if Instant::now() >= until {
            return Read::TimedOut;
        }
        match ws.read() {
            Ok(Message::Text(text)) => {
                let value: Value = serde_json::from_str(&text)
                    .unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
                return Read::Message(value);
            }
            Ok(Message::Close(frame)) => {
                return Read::Closed(frame.map(|f| (f.code, f.reason.to_string())));
            }
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(tungstenite::Error::ConnectionClosed) => return Read::Closed(None),
            Err(e) => panic!("tail read failed: {e}"),
        }
    }
}

/// One line a tail delivered.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Line {
    ts: i64,
    line: String,
    labels: BTreeMap<String, String>,
}

fn string_map(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), v.as_str().expect("a string").to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// The lines of one message, checking its shape on the way.
fn lines_of(message: &Value) -> Vec<Line> {
    let streams = message["streams"]
        .as_array()
        .unwrap_or_else(|| panic!("no streams array: {message}"));
    let mut out = Vec::new();
    for stream in streams {
        let labels = string_map(&stream["stream"]);
        for value in stream["values"].as_array().expect("values") {
            let ts = value[0].as_str().expect("ts string").parse().expect("ts");
            let line = value[1].as_str().expect("line string").to_string();
            out.push(Line {
                ts,
                line,
                labels: labels.clone(),
            });
        }
    }
    out
}

/// Reads messages until `done` holds for the lines so far (or the wait ends); returns the
/// lines and the messages.
fn read_until(
    ws: &mut Ws,
    wait: Duration,
    done: impl Fn(&[Line]) -> bool,
) -> (Vec<Line>, Vec<Value>) {
    let until = Instant::now() + wait;
    let (mut lines, mut messages) = (Vec::new(), Vec::new());
    while !done(&lines) {
        match read(ws, until) {
            Read::Message(m) => {
                lines.extend(lines_of(&m));
                messages.push(m);
            }
            Read::Closed(frame) => panic!("the tail closed: {frame:?}"),
            Read::TimedOut => break,
        }
    }
    (lines, messages)
}

fn has_line(lines: &[Line], text: &str) -> bool {
    lines.iter().any(|l| l.line == text)
}

/// Pushes lines to several streams of `job` (so that both shards own some) at `ts`, `ts+1`...
fn push(server: &Server, tenant: Option<&str>, job: &str, ts: i64, lines: &[&str]) {
    let mut streams: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for (i, line) in lines.iter().enumerate() {
        let pod = format!("pod-{}", i % 4);
        streams
            .entry(pod)
            .or_default()
            .push(json!([(ts + i as i64).to_string(), line]));
    }
    let body = json!({"streams": streams.into_iter().map(|(pod, values)| {
        json!({"stream": {"job": job, "pod": pod}, "values": values})
    }).collect::<Vec<_>>()});
    let response = match tenant {
        Some(t) => server.push_json_as(t, &body),
        None => server.push_json(&body),
    };
    assert_eq!(response.status, 204, "push failed: {}", response.text());
}

fn tails_registered(server: &Server) -> f64 {
    metric_sum(&parse_metrics(&server.metrics()), "shardlog_tails", &[])
}

fn wait_for_tails(server: &Server, want: f64) {
    let until = Instant::now() + ARRIVAL_WAIT;
    while tails_registered(server) != want {
        assert!(
            Instant::now() < until,
            "shardlog_tails stayed at {} (want {want})",
            tails_registered(server)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn pushed_lines_reach_the_tail_and_filters_and_tenants_keep_others_out() {
    let dir = TestDir::new("tail-live");
    let server = Server::start(&dir);
    let mut ws = tail(
        &server,
        &[("query", r#"{job="live"} |= "keep""#)],
        &[("X-Scope-OrgID", "a")],
    );
    // Two shards, each with a registration for the one tail.
    assert_eq!(tails_registered(&server), 2.0);
    let now = now_ns();
    push(
        &server,
        Some("a"),
        "live",
        now,
        &["keep 1", "drop 2", "keep 3", "keep 4 \"quoted\"", "drop 5"],
    );
    push(&server, Some("a"), "other", now, &["keep other job"]);
    push(&server, Some("b"), "live", now, &["keep other tenant"]);
    let (lines, messages) = read_until(&mut ws, ARRIVAL_WAIT, |l| l.len() >= 3);
    // Anything else would have come with or right after them.
    let (more, _) = read_until(&mut ws, Duration::from_millis(500), |_| false);
    let got: BTreeSet<&str> = lines.iter().chain(&more).map(|l| l.line.as_str()).collect();
    assert_eq!(
        got,
        BTreeSet::from(["keep 1", "keep 3", "keep 4 \"quoted\""]),
        "{messages:?}"
    );
    for l in &lines {
        assert_eq!(l.labels["job"], "live");
        assert!(l.labels["pod"].starts_with("pod-"));
        assert!(l.ts >= now && l.ts < now + 5, "{l:?}");
    }
    assert!(
        messages.iter().all(|m| m.get("dropped_entries").is_none()),
        "{messages:?}"
    );
    // Closing the client unregisters the tail from every shard.
    ws.close(None).expect("send close");
    let until = Instant::now() + ARRIVAL_WAIT;
    while !matches!(read(&mut ws, until), Read::Closed(_)) {
        assert!(Instant::now() < until, "no close reply");
    }
    wait_for_tails(&server, 0.0);
}

#[test]
fn start_replays_the_newest_history_lines_then_live_ones() {
    let dir = TestDir::new("tail-history");
    let server = Server::start(&dir);
    let minute = 60_000_000_000i64;
    let old = now_ns() - 10 * minute;
    let history: Vec<String> = (0..8).map(|i| format!("old {i}")).collect();
    let refs: Vec<&str> = history.iter().map(String::as_str).collect();
    push(&server, None, "hist", old, &refs);
    // Before `start`: not replayed.
    push(&server, None, "hist", now_ns() - 90 * minute, &["too old"]);
    let start = (old - minute).to_string();
    let mut ws = tail(
        &server,
        &[
            ("query", r#"{job="hist"}"#),
            ("start", start.as_str()),
            ("limit", "5"),
        ],
        &[],
    );
    let (replayed, _) = read_until(&mut ws, ARRIVAL_WAIT, |l| l.len() >= 5);
    let texts: Vec<&str> = replayed.iter().map(|l| l.line.as_str()).collect();
    // The newest `limit` lines, oldest first.
    assert_eq!(texts, ["old 3", "old 4", "old 5", "old 6", "old 7"]);
    push(&server, None, "hist", now_ns(), &["new 1"]);
    let (live, _) = read_until(&mut ws, ARRIVAL_WAIT, |l| has_line(l, "new 1"));
    assert_eq!(
        live.iter().map(|l| l.line.as_str()).collect::<Vec<_>>(),
        ["new 1"],
        "history is sent once"
    );
}

#[test]
fn deleted_lines_are_neither_replayed_nor_sent_live() {
    let dir = TestDir::new("tail-deleted");
    let server = Server::start(&dir);
    let minute = 60_000_000_000i64;
    let old = now_ns() - 10 * minute;
    push(
        &server,
        None,
        "del",
        old,
        &["secret 0", "public 1", "secret 2", "public 3"],
    );
    // Delete the secret lines of the last hour (the default tenant, as the push above).
    let start_s = ((old - minute) / 1_000_000_000).to_string();
    let path = path_with_query(
        "/loki/api/v1/delete",
        &[("query", r#"{job="del"} |= "secret""#), ("start", &start_s)],
    );
    let r = call(&server, "POST", &path, &[], &[]);
    assert_eq!(r.status, 204, "delete: {}", r.text());
    let start = (old - minute).to_string();
    let mut ws = tail(
        &server,
        &[("query", r#"{job="del"}"#), ("start", start.as_str())],
        &[],
    );
    let (replayed, _) = read_until(&mut ws, ARRIVAL_WAIT, |l| l.len() >= 2);
    let texts: BTreeSet<&str> = replayed.iter().map(|l| l.line.as_str()).collect();
    assert_eq!(texts, BTreeSet::from(["public 1", "public 3"]));
    // Lines pushed now with timestamps inside the deleted range are hidden as they come.
    push(
        &server,
        None,
        "del",
        old + 100,
        &["secret late", "public late"],
    );
    push(&server, None, "del", now_ns(), &["public now"]);
    let (live, _) = read_until(&mut ws, ARRIVAL_WAIT, |l| has_line(l, "public now"));
    let texts: BTreeSet<&str> = live.iter().map(|l| l.line.as_str()).collect();
    assert_eq!(texts, BTreeSet::from(["public late", "public now"]));
}

#[test]
fn delay_for_holds_lines_back_for_that_long() {
    let dir = TestDir::new("tail-delay");
    let server = Server::start(&dir);
    let mut ws = tail(
        &server,
        &[("query", r#"{job="slowpoke"}"#), ("delay_for", "2")],
        &[],
    );
    let pushed = Instant::now();
    push(&server, None, "slowpoke", now_ns(), &["late"]);
    let (lines, _) = read_until(&mut ws, ARRIVAL_WAIT, |l| has_line(l, "late"));
    assert!(has_line(&lines, "late"));
    let waited = pushed.elapsed();
    assert!(
        waited >= Duration::from_millis(1900),
        "sent after {waited:?}"
    );
}

#[test]
fn a_client_slower_than_its_stream_gets_dropped_entries_and_pushes_never_wait() {
    let dir = TestDir::new("tail-slow");
    let server = Server::start(&dir);
    let mut ws = tail(&server, &[("query", r#"{job="flood"}"#)], &[]);
    // The client stops reading. What the sockets hold (a few MiB) plus the tail's bounded
    // queues is far less than the 32 MiB pushed below.
    let payload = "x".repeat(4000);
    let (pushes, per_push) = (32usize, 250usize);
    let mut slowest = Duration::ZERO;
    let base = now_ns();
    for p in 0..pushes {
        let lines: Vec<String> = (0..per_push)
            .map(|i| format!("{:06} {payload}", p * per_push + i))
            .collect();
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        let started = Instant::now();
        push(&server, None, "flood", base + (p * per_push) as i64, &refs);
        slowest = slowest.max(started.elapsed());
    }
    // Ingest does not wait for the tail: every push was answered promptly, and all of it is
    // stored.
    assert!(
        slowest < Duration::from_secs(5),
        "a push took {slowest:?} while the tail client was not reading"
    );
    let total = pushes * per_push;
    assert_eq!(
        server.wait_for_count(r#"{job="flood"}"#, total as u64, 20_000),
        total as u64
    );
    // The client reads again: what the server held back arrives, then, once the client has
    // caught up, a last line shows that the tail still works; the messages list what was
    // dropped (drops ride with the next message that has entries, as in Loki).
    let (mut received, mut dropped) = (Vec::new(), Vec::new());
    let mut final_pushed = false;
    let until = Instant::now() + Duration::from_secs(60);
    while !has_line(&received, "final") {
        let quiet = Instant::now() + Duration::from_secs(3);
        match read(&mut ws, quiet.min(until)) {
            Read::Message(m) => {
                received.extend(lines_of(&m));
                if let Some(d) = m.get("dropped_entries") {
                    dropped.extend(d.as_array().expect("dropped_entries array").clone());
                }
            }
            Read::Closed(frame) => panic!("the tail closed: {frame:?}"),
            Read::TimedOut if !final_pushed && Instant::now() < until => {
                push(&server, None, "flood", now_ns(), &["final"]);
                final_pushed = true;
            }
            Read::TimedOut => panic!(
                "no final line after {} lines and {} drops",
                received.len(),
                dropped.len()
            ),
        }
    }
    assert!(!dropped.is_empty(), "{} lines, no drops", received.len());
    assert!(received.len() < total, "{} lines", received.len());
    let unique: BTreeSet<&str> = received.iter().map(|l| l.line.as_str()).collect();
    assert_eq!(unique.len(), received.len(), "a line came twice");
    for d in &dropped {
        let ts: i64 = d["timestamp"].as_str().expect("timestamp").parse().unwrap();
        assert!(ts >= base && ts < base + total as i64, "{d}");
        assert_eq!(d["labels"]["job"], "flood", "{d}");
    }
    let counted = metric_sum(
        &parse_metrics(&server.metrics()),
        "shardlog_tail_dropped_entries_total",
        &[],
    );
    assert!(
        counted >= dropped.len() as f64,
        "{counted} < {}",
        dropped.len()
    );
}

#[test]
fn a_stopping_server_closes_its_tails_with_a_close_frame() {
    let dir = TestDir::new("tail-shutdown");
    let mut server = Server::start(&dir);
    let mut ws = tail(&server, &[("query", r#"{job="bye"}"#)], &[]);
    push(&server, None, "bye", now_ns(), &["before the stop"]);
    let (lines, _) = read_until(&mut ws, ARRIVAL_WAIT, |l| has_line(l, "before the stop"));
    assert!(has_line(&lines, "before the stop"));
    send_signal(server.pid(), Signal::SIGTERM);
    let until = Instant::now() + Duration::from_secs(10);
    let frame = loop {
        match read(&mut ws, until) {
            Read::Message(_) => {}
            Read::Closed(frame) => break frame,
            Read::TimedOut => panic!("no close frame after SIGTERM"),
        }
    };
    assert_eq!(
        frame,
        Some((CloseCode::Away, "server shutting down".to_string()))
    );
    // The client's reply completes the closing handshake; then the server exits cleanly.
    let _ = read(&mut ws, Instant::now() + Duration::from_secs(2));
    let status = server
        .wait_exit(Duration::from_secs(15))
        .expect("the server exits after SIGTERM");
    assert_eq!(status.code(), Some(0), "{}", server.output());
}

#[test]
fn bad_tail_requests_are_refused_before_the_upgrade() {
    let dir = TestDir::new("tail-refusals");
    let server = Server::start(&dir);
    let refused = |params: &[(&str, &str)]| {
        try_tail(&server, params, &[]).err().unwrap_or_else(|| {
            panic!("{params:?} was upgraded");
        })
    };
    let e = refused(&[("query", r#"{job="x"}"#), ("delay_for", "6")]);
    assert!(
        e.starts_with("400 ") && e.contains("delay_for can't be greater than 5"),
        "{e}"
    );
    let e = refused(&[("query", r#"count_over_time({job="x"}[1m])"#)]);
    assert!(e.starts_with("400 "), "{e}");
    let e = refused(&[("query", r#"{job="x""#)]);
    assert!(e.starts_with("400 ") && e.contains("parse error"), "{e}");
    let e = refused(&[("query", r#"{job="x"}"#), ("limit", "0")]);
    assert!(
        e.starts_with("400 ") && e.contains("limit must be a positive value"),
        "{e}"
    );
    // A plain GET is not a WebSocket handshake.
    let plain = server.get("/loki/api/v1/tail?query=%7Bjob%3D%22x%22%7D");
    assert_eq!(plain.status, 400);
    assert!(
        plain.text().contains("'upgrade' token not found"),
        "{}",
        plain.text()
    );
    // A tenant has at most ten tails at once (Loki's max_concurrent_tail_requests).
    let open: Vec<Ws> = (0..10)
        .map(|_| {
            tail(
                &server,
                &[("query", r#"{job="x"}"#)],
                &[("X-Scope-OrgID", "t")],
            )
        })
        .collect();
    let e = try_tail(
        &server,
        &[("query", r#"{job="x"}"#)],
        &[("X-Scope-OrgID", "t")],
    )
    .expect_err("an eleventh tail is refused");
    assert!(
        e.starts_with("400 ") && e.contains("max concurrent tail requests limit exceeded"),
        "{e}"
    );
    // Another tenant is not affected.
    drop(tail(
        &server,
        &[("query", r#"{job="x"}"#)],
        &[("X-Scope-OrgID", "u")],
    ));
    drop(open);
    // Dropped connections (no close frame) are unregistered too.
    wait_for_tails(&server, 0.0);
}

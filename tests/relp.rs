//! RELP from librelp, the library of rsyslog's `omrelp`: every message the server answered
//! `200 OK` is durable (a SIGKILL right after the client's last answer loses none, and none is
//! stored twice), the session is spoken as librelp expects it (offers, answers in order,
//! `close`, `serverclose` at shutdown), and bytes that are not RELP close only their own
//! session. RELP over TLS is in `tests/syslog_tls.rs`.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::loki::{INGEST_WAIT_MS, metric_sum, parse_metrics};
use common::relp::{relp_send, send};
use common::server::{Signal, free_tcp_port, send_signal};
use common::tools::corpus_lines;
use common::{Server, ServerOptions, TestDir, labels};

/// A server with a RELP listener on `port` and no plain syslog listener.
fn relp_server(dir: &TestDir, port: u16) -> Server {
    let options = ServerOptions {
        syslog: false,
        extra_args: vec!["--relp-addr".into(), format!("127.0.0.1:{port}")],
        ..ServerOptions::default()
    };
    Server::start_with(dir, &options)
}

/// `n` RFC 5424 messages of `app`, each a numbered corpus line (`#i ...`), stamped with the
/// receive time (NILVALUE timestamp).
fn messages(app: &str, n: usize) -> Option<Vec<String>> {
    let corpus = corpus_lines("Linux_2k.log")?;
    Some(
        (0..n)
            .map(|i| {
                format!(
                    "<14>1 - relphost {app} 4242 - - #{i} {}",
                    corpus[i % corpus.len()]
                )
            })
            .collect(),
    )
}

/// How often each number `#i` is stored under `app`, checking every entry's labels.
fn stored_numbers(server: &Server, app: &str) -> BTreeMap<usize, usize> {
    let want = labels(&[
        ("app", app),
        ("facility", "user"),
        ("host", "relphost"),
        ("level", "info"),
    ]);
    let mut seen = BTreeMap::new();
    for e in server.query_all(&format!(r#"{{app="{app}"}}"#), true) {
        assert_eq!(e.labels, want, "labels of {:?}", e.line);
        // PROCID is structured metadata, as over syslog TCP.
        assert_eq!(e.metadata.get("procid").map(String::as_str), Some("4242"));
        let n: usize = e.line[1..]
            .split(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no number in {:?}", e.line));
        *seen.entry(n).or_insert(0) += 1;
    }
    seen
}

#[test]
fn acknowledged_lines_survive_a_kill_exactly_once() {
    let Some(client) = relp_send() else { return };
    let Some(lines) = messages("relpkill", 3000) else {
        return;
    };
    let dir = TestDir::new("relp-kill");
    let port = free_tcp_port();
    let mut server = relp_server(&dir, port);
    // A small window makes many rounds, each its own group commit.
    let sent = send(&client, port, &["--window", "16"], &lines);
    assert!(sent.ok, "relp_send failed: {}", sent.stderr);
    assert_eq!(sent.sent, Some(3000));
    // Every message was answered: killed now, nothing may be lost.
    server.kill9();
    let server = Server::start_with(
        &dir,
        &ServerOptions {
            syslog: false,
            ..ServerOptions::default()
        },
    );
    let seen = stored_numbers(&server, "relpkill");
    let missing: Vec<usize> = (0..3000)
        .filter(|i| !seen.contains_key(i))
        .take(10)
        .collect();
    assert!(
        missing.is_empty(),
        "acknowledged but lost (first 10): {missing:?}"
    );
    let twice: Vec<_> = seen.iter().filter(|(_, c)| **c > 1).take(10).collect();
    assert!(twice.is_empty(), "stored more than once: {twice:?}");
    assert_eq!(seen.len(), 3000);
}

#[test]
fn a_large_window_is_answered_whole_and_counted() {
    let Some(client) = relp_send() else { return };
    let Some(lines) = messages("relpwindow", 4000) else {
        return;
    };
    let dir = TestDir::new("relp-window");
    let port = free_tcp_port();
    let server = relp_server(&dir, port);
    let sent = send(&client, port, &["--window", "1024"], &lines);
    assert!(sent.ok, "relp_send failed: {}", sent.stderr);
    let seen = stored_numbers(&server, "relpwindow");
    assert_eq!(seen.len(), 4000);
    let metrics = parse_metrics(&server.metrics());
    assert_eq!(
        metric_sum(&metrics, "shardlog_relp_acknowledged_total", &[]),
        4000.0
    );
    assert_eq!(
        metric_sum(
            &metrics,
            "shardlog_ingested_lines_total",
            &[("protocol", "relp")]
        ),
        4000.0
    );
    assert_eq!(
        metric_sum(
            &metrics,
            "shardlog_connections_accepted_total",
            &[("listener", "relp")]
        ),
        1.0
    );
}

/// A RELP session over a plain socket, reading the server's frames.
struct Session {
    stream: TcpStream,
    pending: Vec<u8>,
}

impl Session {
    fn connect(port: u16) -> Session {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        Session {
            stream,
            pending: Vec::new(),
        }
    }

    fn send(&mut self, txnr: u32, command: &str, data: &str) {
        let frame = if data.is_empty() {
            format!("{txnr} {command} 0\n")
        } else {
            format!("{txnr} {command} {} {data}\n", data.len())
        };
        self.stream
            .write_all(frame.as_bytes())
            .expect("send a frame");
    }

    /// The next frame from the server as `(txnr, command, data)`; `None` at end of stream.
    fn read(&mut self) -> Option<(u32, String, String)> {
        loop {
            if let Some(frame) = self.take_frame() {
                return Some(frame);
            }
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.pending.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return None,
                Err(e) => panic!("reading a RELP answer: {e}"),
            }
        }
    }

    fn take_frame(&mut self) -> Option<(u32, String, String)> {
        let text = String::from_utf8_lossy(&self.pending).into_owned();
        let mut parts = text.splitn(3, ' ');
        let txnr: u32 = parts.next()?.parse().ok()?;
        let command = parts.next()?.to_string();
        let rest = parts.next()?;
        let digits = rest.find([' ', '\n'])?;
        let len: usize = rest[..digits].parse().ok()?;
        let header = text.len() - rest.len() + digits;
        let data_start = if len > 0 { header + 1 } else { header };
        if self.pending.len() < data_start + len + 1 {
            return None;
        }
        assert_eq!(self.pending[data_start + len], b'\n', "trailer of {text:?}");
        let data =
            String::from_utf8_lossy(&self.pending[data_start..data_start + len]).into_owned();
        self.pending.drain(..data_start + len + 1);
        Some((txnr, command, data))
    }
}

#[test]
fn a_session_is_answered_in_order_and_each_answer_means_durable() {
    let dir = TestDir::new("relp-session");
    let port = free_tcp_port();
    let server = relp_server(&dir, port);
    let mut s = Session::connect(port);

    // A command before `open` is a protocol error: 500, and the session is closed.
    s.send(1, "syslog", "<14>1 - h early - - - too early");
    let (txnr, command, data) = s.read().expect("an answer");
    assert_eq!((txnr, command.as_str()), (1, "rsp"));
    assert!(data.starts_with("500 "), "{data}");
    assert!(s.read().is_none(), "the session must be closed");

    let mut s = Session::connect(port);
    s.send(
        1,
        "open",
        "relp_version=0\nrelp_software=test\ncommands=syslog",
    );
    let (txnr, command, data) = s.read().expect("the open answer");
    assert_eq!((txnr, command.as_str()), (1, "rsp"));
    assert!(data.starts_with("200 OK\nrelp_version=0\n"), "{data}");
    assert!(data.contains("\ncommands=syslog"), "{data}");

    // Several commands in one write: answered in order, unknown ones refused, hints not.
    s.send(2, "syslog", "<14>1 - h inorder - - - first");
    s.send(3, "starttls", "");
    s.send(0, "somehint", "");
    s.send(4, "syslog", "<14>1 - h inorder - - - second");
    let answers: Vec<_> = (0..3).map(|_| s.read().expect("an answer")).collect();
    assert_eq!(answers[0], (2, "rsp".into(), "200 OK".into()));
    assert_eq!((answers[1].0, answers[1].2.starts_with("500 ")), (3, true));
    assert_eq!(answers[2], (4, "rsp".into(), "200 OK".into()));
    // 200 OK was sent after the WAL commit: the lines are there at once.
    assert_eq!(server.index_stats(r#"{app="inorder"}"#).entries, 2);

    // A resent message (its own timestamp, the same text) is stored once, as a retried
    // push is.
    let resent = "<14>1 2026-01-02T03:04:05.123456Z h inorder - - - resent";
    s.send(5, "syslog", resent);
    s.send(6, "syslog", resent);
    assert_eq!(s.read(), Some((5, "rsp".into(), "200 OK".into())));
    assert_eq!(s.read(), Some((6, "rsp".into(), "200 OK".into())));
    s.send(7, "close", "");
    assert_eq!(s.read(), Some((7, "rsp".into(), String::new())));
    assert!(
        s.read().is_none(),
        "the server closes after answering close"
    );
    let stored: Vec<String> = server
        .query_all(r#"{app="inorder"}"#, false)
        .into_iter()
        .map(|e| e.line)
        .collect();
    assert_eq!(stored, ["first", "second"]);
    let resent = server.query_range(&[
        ("query", r#"{app="inorder"} |= "resent""#),
        ("start", "1767322800000000000"), // 2026-01-02T03:00:00Z
        ("end", "1767326400000000000"),
        ("limit", "10"),
    ]);
    assert_eq!(common::entries(&resent).len(), 1, "{resent}");
    let metrics = parse_metrics(&server.metrics());
    assert_eq!(
        metric_sum(
            &metrics,
            "shardlog_discarded_lines_total",
            &[("reason", "duplicate")]
        ),
        1.0
    );
}

#[test]
fn bytes_that_are_not_relp_close_only_their_session() {
    let dir = TestDir::new("relp-broken");
    let port = free_tcp_port();
    let server = relp_server(&dir, port);
    let mut broken = Session::connect(port);
    broken
        .stream
        .write_all(b"<14>this is plain syslog, not RELP\n")
        .unwrap();
    assert!(broken.read().is_none(), "a broken session is closed");

    // An over-long message is cut, not refused, and the session goes on.
    let mut s = Session::connect(port);
    s.send(1, "open", "relp_version=0\ncommands=syslog");
    assert!(s.read().expect("open answer").2.starts_with("200 OK"));
    let long = format!("<14>1 - h longone - - - {}", "x".repeat(70_000));
    s.send(2, "syslog", &long);
    s.send(3, "syslog", "<14>1 - h longone - - - after");
    assert_eq!(s.read(), Some((2, "rsp".into(), "200 OK".into())));
    assert_eq!(s.read(), Some((3, "rsp".into(), "200 OK".into())));
    let lines: Vec<usize> = server
        .query_all(r#"{app="longone"}"#, false)
        .iter()
        .map(|e| e.line.len())
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines.iter().all(|&n| n < 66_000), "{lines:?}");
    let metrics = parse_metrics(&server.metrics());
    assert_eq!(
        metric_sum(&metrics, "shardlog_relp_broken_frames_total", &[]),
        1.0
    );
    assert_eq!(
        metric_sum(&metrics, "shardlog_syslog_frames_truncated_total", &[]),
        1.0,
        "{}",
        server.metrics()
    );
}

#[test]
fn shutdown_answers_what_it_owes_then_hints_serverclose() {
    let dir = TestDir::new("relp-shutdown");
    let port = free_tcp_port();
    let mut server = relp_server(&dir, port);
    let mut s = Session::connect(port);
    s.send(1, "open", "relp_version=0\ncommands=syslog");
    assert!(s.read().expect("open answer").2.starts_with("200 OK"));
    s.send(2, "syslog", "<14>1 - h bye - - - last words");
    assert_eq!(s.read(), Some((2, "rsp".into(), "200 OK".into())));
    send_signal(server.pid(), Signal::SIGTERM);
    assert_eq!(s.read(), Some((0, "serverclose".into(), String::new())));
    assert!(s.read().is_none());
    let status = server
        .wait_exit(Duration::from_millis(INGEST_WAIT_MS))
        .expect("the server exits");
    assert!(status.success(), "{status:?}");
}

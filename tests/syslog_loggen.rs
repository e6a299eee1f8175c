//! Syslog load from syslog-ng's `loggen` over several connections at once. loggen numbers
//! its messages per connection (`seq: NNNNNNNNNN, thread: TTTT`), so the stored lines tell
//! exactly which messages arrived: none may be missing, none duplicated, and the total must
//! equal what loggen reports it sent. Also real lines: a loghub corpus through loggen's file
//! reader, every message present once and in order.

mod common;

use std::collections::BTreeMap;
use std::process::Command;

use common::loki::{INGEST_WAIT_MS, labels};
use common::tools::{corpus_lines, require_program, run_checked};
use common::{Entry, Server, TestDir};

fn have_loggen() -> bool {
    require_program("loggen", "Debian package syslog-ng-core")
}

/// Runs loggen against the server and returns the total it reports having sent.
fn loggen(server: &Server, args: &[&str]) -> u64 {
    let output = run_checked(
        Command::new("loggen")
            .env("TZ", "UTC")
            .args(args)
            .arg("127.0.0.1")
            .arg(server.syslog_port.to_string()),
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let summary = format!("{stdout}{stderr}");
    // The summary line: "average rate = ... msg/sec, count=6000, time=..., ...".
    summary
        .lines()
        .filter(|line| line.contains("average rate"))
        .find_map(|line| {
            let count = line.split("count=").nth(1)?;
            count.split(',').next()?.trim().parse().ok()
        })
        .unwrap_or_else(|| panic!("no `count=` in loggen's summary:\n{summary}"))
}

/// `(thread, seq)` of a loggen line: `...seq: 0000000012, thread: 0003, runid: ...`.
fn seq_and_thread(line: &str) -> (u64, u64) {
    let number_after = |key: &str| -> u64 {
        let start = line
            .find(key)
            .unwrap_or_else(|| panic!("no {key:?} in {line:?}"))
            + key.len();
        line[start..]
            .split(',')
            .next()
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("bad {key:?} in {line:?}"))
    };
    (number_after("thread: "), number_after("seq: "))
}

/// Checks that every connection's sequence is complete (0..per_thread, each once) and that
/// every entry carries the labels loggen's header implies.
fn check_sequences(
    server: &Server,
    app_query: &str,
    threads: u64,
    per_thread: u64,
    want_labels: &BTreeMap<String, String>,
) {
    for thread in 0..threads {
        let query = format!(r#"{app_query} |= "thread: {thread:04},""#);
        let got: Vec<Entry> = server.query_all(&query, true);
        let mut seqs: Vec<u64> = got
            .iter()
            .map(|e| {
                assert_eq!(&e.labels, want_labels, "labels of {:?}", e.line);
                let (t, seq) = seq_and_thread(&e.line);
                assert_eq!(
                    t, thread,
                    "line filter matched another thread: {:?}",
                    e.line
                );
                seq
            })
            .collect();
        seqs.sort_unstable();
        let duplicates: Vec<_> = seqs
            .windows(2)
            .filter(|w| w[0] == w[1])
            .map(|w| w[0])
            .take(10)
            .collect();
        assert!(
            duplicates.is_empty(),
            "thread {thread}: duplicated seqs {duplicates:?}"
        );
        let missing: Vec<u64> = (0..per_thread)
            .filter(|s| seqs.binary_search(s).is_err())
            .take(10)
            .collect();
        assert!(
            missing.is_empty(),
            "thread {thread}: missing seqs (first 10) {missing:?} of {per_thread}"
        );
        assert_eq!(
            seqs.len() as u64,
            per_thread,
            "thread {thread}: seqs beyond what was sent"
        );
    }
}

fn wait_total(server: &Server, query: &str, sent: u64) {
    let stored = server.wait_for_count(query, sent, INGEST_WAIT_MS);
    assert_eq!(stored, sent, "{query}: stored vs sent by loggen");
}

#[test]
fn rfc5424_octet_counted_over_four_connections() {
    if !have_loggen() {
        return;
    }
    let dir = TestDir::new("loggen-5424");
    let server = Server::start(&dir);
    const CONNECTIONS: u64 = 4;
    // Per connection below one query's limit, since each connection is read back by itself.
    const PER_CONNECTION: u64 = 4000;
    let sent = loggen(
        &server,
        &[
            "--inet",
            "--stream",
            "--syslog-proto",
            "--rate",
            "20000",
            "--number",
            &PER_CONNECTION.to_string(),
            "--active-connections",
            &CONNECTIONS.to_string(),
            "--quiet",
        ],
    );
    assert_eq!(sent, CONNECTIONS * PER_CONNECTION, "loggen's own count");
    wait_total(&server, r#"{app="prg00000"}"#, sent);
    // loggen sends "<38>1 ... localhost prg00000 1234 - - " (auth.info, PROCID 1234).
    let want = labels(&[
        ("host", "localhost"),
        ("app", "prg00000"),
        ("facility", "auth"),
        ("level", "info"),
    ]);
    check_sequences(
        &server,
        r#"{app="prg00000"}"#,
        CONNECTIONS,
        PER_CONNECTION,
        &want,
    );
    let sample = server.query_all(
        r#"{app="prg00000"} |= "thread: 0000, " |= "seq: 0000000000,""#,
        true,
    );
    assert_eq!(sample.len(), 1);
    assert_eq!(sample[0].metadata, labels(&[("procid", "1234")]));
    assert!(
        sample[0]
            .line
            .trim_start_matches('\u{feff}')
            .starts_with("seq: 0000000000, thread: 0000, runid: "),
        "stored line is the MSG part: {:?}",
        sample[0].line
    );
}

#[test]
fn bsd_newline_framed_over_two_connections() {
    if !have_loggen() {
        return;
    }
    let dir = TestDir::new("loggen-bsd");
    let server = Server::start(&dir);
    const CONNECTIONS: u64 = 2;
    const PER_CONNECTION: u64 = 4500;
    let sent = loggen(
        &server,
        &[
            "--inet",
            "--stream",
            "--rate",
            "20000",
            "--number",
            &PER_CONNECTION.to_string(),
            "--active-connections",
            &CONNECTIONS.to_string(),
            "--quiet",
        ],
    );
    assert_eq!(sent, CONNECTIONS * PER_CONNECTION);
    wait_total(&server, r#"{app="prg00000"}"#, sent);
    let want = labels(&[
        ("host", "localhost"),
        ("app", "prg00000"),
        ("facility", "auth"),
        ("level", "info"),
    ]);
    check_sequences(
        &server,
        r#"{app="prg00000"}"#,
        CONNECTIONS,
        PER_CONNECTION,
        &want,
    );
}

#[test]
fn udp_datagrams_at_a_modest_rate() {
    if !have_loggen() {
        return;
    }
    let dir = TestDir::new("loggen-udp");
    let server = Server::start(&dir);
    const PER_CONNECTION: u64 = 500;
    let sent = loggen(
        &server,
        &[
            "--inet",
            "--dgram",
            "--syslog-proto",
            // One message per datagram as RFC 5426 has it: without this loggen puts an
            // RFC 6587 octet count in front of each datagram too.
            "--no-framing",
            "--rate",
            "2000",
            "--number",
            &PER_CONNECTION.to_string(),
            "--quiet",
        ],
    );
    assert_eq!(sent, PER_CONNECTION);
    // Loopback at this rate does not overflow the socket buffer, so all arrive.
    wait_total(&server, r#"{app="prg00000"}"#, sent);
    let want = labels(&[
        ("host", "localhost"),
        ("app", "prg00000"),
        ("facility", "auth"),
        ("level", "info"),
    ]);
    check_sequences(&server, r#"{app="prg00000"}"#, 1, PER_CONNECTION, &want);
}

#[test]
fn corpus_through_the_file_reader() {
    if !have_loggen() {
        return;
    }
    let Some(lines) = corpus_lines("OpenSSH_2k.log") else {
        return;
    };
    let dir = TestDir::new("loggen-corpus");
    let server = Server::start(&dir);
    // loggen's file reader wants a PRI; the loghub lines are BSD lines without one and with
    // CRLF ends. It keeps host and program and sends the rest as the message.
    let file = dir.path().join("openssh-pri.log");
    let prefixed: String = lines.iter().map(|l| format!("<38>{l}\n")).collect();
    std::fs::write(&file, prefixed).expect("write corpus copy");
    let sent = loggen(
        &server,
        &[
            "--inet",
            "--stream",
            "--rate",
            "20000",
            "--number",
            &lines.len().to_string(),
            "--read-file",
            file.to_str().expect("utf-8 path"),
            "--quiet",
        ],
    );
    assert_eq!(sent, lines.len() as u64);
    wait_total(&server, r#"{app="sshd"}"#, sent);
    let got = server.query_all(r#"{app="sshd"}"#, true);
    for (i, (entry, original)) in got.iter().zip(&lines).enumerate() {
        let (_, message) = original
            .split_once("]: ")
            .expect("loghub OpenSSH lines have `sshd[pid]: `");
        assert_eq!(
            entry.line,
            message,
            "line {} differs (or is out of order)",
            i + 1
        );
        let pid = original
            .split_once("sshd[")
            .and_then(|(_, rest)| rest.split_once(']'))
            .expect("pid")
            .0;
        assert_eq!(entry.metadata, labels(&[("procid", pid)]), "line {}", i + 1);
        assert_eq!(
            entry.labels,
            labels(&[
                ("host", "LabSZ"),
                ("app", "sshd"),
                ("facility", "auth"),
                ("level", "info")
            ])
        );
    }
}

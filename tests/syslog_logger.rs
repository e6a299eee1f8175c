//! Syslog ingest from util-linux `logger`, the sender every Linux machine has: RFC 5424 and
//! RFC 3164, over TCP with octet counting and with newline framing, and over UDP; labels
//! (`host`, `app`, `facility`, `level`), the stored line (the MSG part) and structured
//! metadata (PROCID, MSGID, SD params) checked exactly; and two loghub corpora replayed line
//! by line, every line present exactly once and in order. Plus raw TCP bytes for what
//! `logger` cannot send: mixed framing on one connection and a message without PRI.
//!
//! Syslog has no acknowledgement, so each check first waits (bounded) for the expected
//! number of entries in index stats, then compares content exactly.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::TcpStream;
use std::process::Command;

use common::loki::{INGEST_WAIT_MS, labels};
use common::tools::{corpus_lines, hostname, require_program, run_checked};
use common::{Entry, Server, TestDir};

fn have_logger() -> bool {
    require_program("logger", "Debian package bsdutils / util-linux")
}

/// `logger` aimed at the test server; TZ=UTC so RFC 3164 local times are UTC.
fn logger(server: &Server) -> Command {
    let mut command = Command::new("logger");
    command
        .env("TZ", "UTC")
        .args(["-n", "127.0.0.1", "-P"])
        .arg(server.syslog_port.to_string());
    command
}

/// Waits for exactly `expected` entries of `query`, then returns them (categorized: metadata
/// apart from labels), in time order.
fn wait_entries(server: &Server, query: &str, expected: usize) -> Vec<Entry> {
    let count = server.wait_for_count(query, expected as u64, INGEST_WAIT_MS);
    assert_eq!(
        count, expected as u64,
        "{query}: entries after waiting {INGEST_WAIT_MS} ms"
    );
    let got = server.query_all(query, true);
    assert_eq!(
        got.len(),
        expected,
        "{query}: query and index stats disagree"
    );
    got
}

/// The metadata without `logger`'s own `timeQuality` SD element, whose `isSynced` and
/// `syncAccuracy` depend on the machine's clock discipline; that element is checked apart.
fn metadata_without_time_quality(entry: &Entry) -> BTreeMap<String, String> {
    let (quality, rest): (BTreeMap<_, _>, BTreeMap<_, _>) = entry
        .metadata
        .clone()
        .into_iter()
        .partition(|(k, _)| k.starts_with("timeQuality_"));
    assert_eq!(
        quality.get("timeQuality_tzKnown").map(String::as_str),
        Some("1"),
        "logger's [timeQuality tzKnown=\"1\" ...] becomes metadata: {:?}",
        entry.metadata
    );
    rest
}

fn short_hostname() -> String {
    hostname()
        .split('.')
        .next()
        .expect("split yields one part")
        .to_string()
}

#[test]
fn rfc5424_over_tcp_octet_counting_and_newline() {
    if !have_logger() {
        return;
    }
    let dir = TestDir::new("logger-5424");
    let server = Server::start(&dir);
    let host = hostname();

    run_checked(logger(&server).args([
        "--rfc5424",
        "-T",
        "--octet-count",
        "-t",
        "app5424",
        "--id=123",
        "-p",
        "local3.warning",
        "--msgid",
        "MID1",
        "--sd-id",
        "meta",
        "--sd-param",
        "tier=\"gold\"",
        "--sd-param",
        "zone=\"eu 1\"",
        "hello rfc5424 octet counting",
    ]));
    let got = wait_entries(&server, r#"{app="app5424"}"#, 1);
    let entry = &got[0];
    assert_eq!(entry.line, "hello rfc5424 octet counting");
    assert_eq!(
        entry.labels,
        labels(&[
            ("host", &host),
            ("app", "app5424"),
            ("facility", "local3"),
            ("level", "warning")
        ])
    );
    assert_eq!(
        metadata_without_time_quality(entry),
        labels(&[
            ("procid", "123"),
            ("msgid", "MID1"),
            ("meta_tier", "gold"),
            ("meta_zone", "eu 1")
        ])
    );
    // Metadata is not a label: a plain query folds it into the stream, like Loki...
    let plain = server.query_all(r#"{app="app5424"}"#, false);
    assert_eq!(
        plain[0].labels.get("procid").map(String::as_str),
        Some("123")
    );
    // ...but the label index does not know it.
    let names = server.get("/loki/api/v1/labels").json();
    for name in ["procid", "msgid", "meta_tier"] {
        assert!(
            !names["data"]
                .as_array()
                .expect("labels")
                .contains(&name.into()),
            "{name} became a label: {names}"
        );
    }

    // Newline framing (logger's default over TCP), several messages on one connection each.
    for i in 0..3 {
        run_checked(logger(&server).args([
            "--rfc5424",
            "-T",
            "-t",
            "app5424nl",
            "-p",
            "user.info",
            &format!("newline framed {i}"),
        ]));
    }
    let got = wait_entries(&server, r#"{app="app5424nl"}"#, 3);
    let lines: Vec<_> = got.iter().map(|e| e.line.as_str()).collect();
    assert_eq!(
        lines,
        ["newline framed 0", "newline framed 1", "newline framed 2"]
    );
    for entry in &got {
        assert_eq!(
            entry.labels,
            labels(&[
                ("host", &host),
                ("app", "app5424nl"),
                ("facility", "user"),
                ("level", "info")
            ])
        );
        assert_eq!(
            metadata_without_time_quality(entry),
            BTreeMap::new(),
            "no PROCID/MSGID given"
        );
    }
}

#[test]
fn rfc3164_over_tcp_and_both_over_udp() {
    if !have_logger() {
        return;
    }
    let dir = TestDir::new("logger-3164");
    let server = Server::start(&dir);
    let short = short_hostname();

    run_checked(logger(&server).args([
        "--rfc3164",
        "-T",
        "-t",
        "app3164",
        "--id=4242",
        "-p",
        "local3.warning",
        "hello rfc3164 over tcp",
    ]));
    let got = wait_entries(&server, r#"{app="app3164"}"#, 1);
    assert_eq!(got[0].line, "hello rfc3164 over tcp");
    assert_eq!(
        got[0].labels,
        labels(&[
            ("host", &short),
            ("app", "app3164"),
            ("facility", "local3"),
            ("level", "warning")
        ])
    );
    assert_eq!(got[0].metadata, labels(&[("procid", "4242")]));

    run_checked(logger(&server).args([
        "--rfc5424",
        "-d",
        "-t",
        "udp5424",
        "--id=7",
        "-p",
        "mail.err",
        "via udp 5424",
    ]));
    let got = wait_entries(&server, r#"{app="udp5424"}"#, 1);
    assert_eq!(got[0].line, "via udp 5424");
    assert_eq!(
        got[0].labels,
        labels(&[
            ("host", &hostname()),
            ("app", "udp5424"),
            ("facility", "mail"),
            ("level", "error")
        ])
    );
    assert_eq!(
        metadata_without_time_quality(&got[0]),
        labels(&[("procid", "7")])
    );

    run_checked(logger(&server).args([
        "--rfc3164",
        "-d",
        "-t",
        "udp3164",
        "-p",
        "daemon.notice",
        "via udp 3164",
    ]));
    let got = wait_entries(&server, r#"{app="udp3164"}"#, 1);
    assert_eq!(got[0].line, "via udp 3164");
    assert_eq!(
        got[0].labels,
        labels(&[
            ("host", &short),
            ("app", "udp3164"),
            ("facility", "daemon"),
            ("level", "notice")
        ])
    );
}

#[test]
fn every_facility_and_severity_name() {
    if !have_logger() {
        return;
    }
    let dir = TestDir::new("logger-prio");
    let server = Server::start(&dir);
    let cases = [
        ("user.debug", "user", "debug"),
        ("mail.info", "mail", "info"),
        ("daemon.notice", "daemon", "notice"),
        ("auth.err", "auth", "error"),
        ("syslog.crit", "syslog", "critical"),
        ("lpr.warning", "lpr", "warning"),
        ("news.alert", "news", "alert"),
        ("uucp.info", "uucp", "info"),
        ("cron.info", "cron", "info"),
        ("authpriv.info", "authpriv", "info"),
        ("ftp.info", "ftp", "info"),
        ("local0.emerg", "local0", "emergency"),
        ("local7.debug", "local7", "debug"),
    ];
    for (priority, _, _) in &cases {
        run_checked(logger(&server).args([
            "--rfc5424",
            "-T",
            "--octet-count",
            "-t",
            "prio",
            "-p",
            priority,
            &format!("priority {priority}"),
        ]));
    }
    let got = wait_entries(&server, r#"{app="prio"}"#, cases.len());
    let by_line: BTreeMap<&str, &Entry> = got.iter().map(|e| (e.line.as_str(), e)).collect();
    for (priority, facility, level) in &cases {
        let entry = by_line
            .get(format!("priority {priority}").as_str())
            .unwrap_or_else(|| panic!("{priority} missing: {got:?}"));
        assert_eq!(entry.labels["facility"], *facility, "{priority}");
        assert_eq!(entry.labels["level"], *level, "{priority}");
    }
    let levels = server.get("/loki/api/v1/label/level/values").json();
    assert_eq!(
        levels["data"],
        serde_json::json!([
            "alert",
            "critical",
            "debug",
            "emergency",
            "error",
            "info",
            "notice",
            "warning"
        ])
    );
}

fn replay_corpus(server: &Server, dir: &TestDir, name: &str, tag: &str, logger_args: &[&str]) {
    let Some(lines) = corpus_lines(name) else {
        return;
    };
    assert_eq!(lines.len(), 2000, "{name} has 2000 lines");
    let file = dir.path().join(format!("{tag}.log"));
    std::fs::write(&file, lines.join("\n") + "\n").expect("write corpus copy");
    run_checked(
        logger(server)
            .args(logger_args)
            .args(["-t", tag, "-f"])
            .arg(&file),
    );
    let got = wait_entries(server, &format!(r#"{{app="{tag}"}}"#), lines.len());
    let got_lines: Vec<&str> = got.iter().map(|e| e.line.as_str()).collect();
    for (i, (got, want)) in got_lines.iter().zip(&lines).enumerate() {
        assert_eq!(
            got,
            want,
            "{name} line {} differs (or is out of order)",
            i + 1
        );
    }
    let streams: std::collections::BTreeSet<_> = got.iter().map(|e| e.labels.clone()).collect();
    assert_eq!(streams.len(), 1, "one sender, one stream: {streams:?}");
}

#[test]
fn corpus_replay_rfc5424_octet_counting() {
    if !have_logger() {
        return;
    }
    let dir = TestDir::new("logger-corpus-5424");
    let server = Server::start(&dir);
    replay_corpus(
        &server,
        &dir,
        "Linux_2k.log",
        "corpus-linux",
        &["--rfc5424", "-T", "--octet-count", "-p", "auth.info"],
    );
}

#[test]
fn corpus_replay_rfc3164_newline() {
    if !have_logger() {
        return;
    }
    let dir = TestDir::new("logger-corpus-3164");
    let server = Server::start(&dir);
    replay_corpus(
        &server,
        &dir,
        "OpenSSH_2k.log",
        "corpus-ssh",
        &["--rfc3164", "-T", "-p", "authpriv.notice"],
    );
}

/// Syslog's own timestamp format for now, in UTC: `Nov  5 14:01:21`.
fn rfc3164_now() -> String {
    let now = time::OffsetDateTime::now_utc();
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{} {:>2} {:02}:{:02}:{:02}",
        months[now.month() as usize - 1],
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    )
}

#[test]
fn raw_tcp_mixed_framing_and_missing_pri() {
    let dir = TestDir::new("syslog-raw");
    let server = Server::start(&dir);
    let frames = [
        "<13>1 - rawhost rawapp 77 - - octet framed".to_string(),
        "<13>1 - rawhost rawapp - - - counted with its LF\n".to_string(),
    ];
    let mut bytes = Vec::new();
    // Octet counting without a trailing LF, then with the LF inside the count.
    for frame in &frames {
        bytes.extend_from_slice(format!("{} {frame}", frame.len()).as_bytes());
    }
    // Then newline framing on the same connection.
    bytes.extend_from_slice(b"<13>1 - rawhost rawapp - - - newline framed\n");
    // A BSD line without PRI: level unknown.
    bytes.extend_from_slice(
        format!("{} rawhost nopri[9]: no PRI at all\n", rfc3164_now()).as_bytes(),
    );
    // One more octet-counted frame after the newline ones.
    let last = "<14>1 - rawhost rawapp - - - last one";
    bytes.extend_from_slice(format!("{} {last}", last.len()).as_bytes());
    let mut stream =
        TcpStream::connect(("127.0.0.1", server.syslog_port)).expect("connect syslog TCP");
    // Written in small pieces, so frames are split across reads.
    for chunk in bytes.chunks(7) {
        stream.write_all(chunk).expect("send");
    }
    drop(stream);

    let got = wait_entries(&server, r#"{host="rawhost"}"#, 5);
    let mut lines: Vec<&str> = got.iter().map(|e| e.line.as_str()).collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            "counted with its LF",
            "last one",
            "newline framed",
            "no PRI at all",
            "octet framed"
        ]
    );
    let nopri = got
        .iter()
        .find(|e| e.line == "no PRI at all")
        .expect("no-PRI line");
    assert_eq!(
        nopri.labels.get("level").map(String::as_str),
        Some("unknown"),
        "{nopri:?}"
    );
    assert_eq!(nopri.labels.get("app").map(String::as_str), Some("nopri"));
    assert_eq!(nopri.metadata, labels(&[("procid", "9")]));
    let octet = got
        .iter()
        .find(|e| e.line == "octet framed")
        .expect("octet line");
    assert_eq!(octet.metadata, labels(&[("procid", "77")]));
    assert_eq!(
        octet.labels,
        labels(&[
            ("host", "rawhost"),
            ("app", "rawapp"),
            ("facility", "user"),
            ("level", "notice")
        ])
    );
}

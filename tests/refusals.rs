//! Refused means not stored, against the real binary: a push answered 503 while the server
//! recovers its WAL or stops gracefully has stored nothing, and a push answered 204 is there
//! after a restart. Pushers keep sending distinct lines through the whole window; afterwards
//! every line is classified by the answer its request got:
//! - 204: must be present exactly once;
//! - 503, or a connection that could not be made: must be absent;
//! - anything else (a reset mid-request, a 500): unknown, and only checked not to be doubled.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::http;
use common::{Server, ServerOptions, TestDir, now_ns};
use serde_json::json;

/// Concurrent pushers; each writes its own stream, so that streams land on both shards.
const PUSHERS: usize = 4;

/// Lines per push: a request's lines share its fate.
const LINES_PER_PUSH: usize = 3;

/// Pushes per pusher at most, so that each stream stays under the query limit.
const PUSHES_MAX: usize = 1_000;

/// Consecutive connection failures after which a pusher of the stop test concludes that the
/// server has exited.
const GONE_AFTER_FAILURES: usize = 20;

/// Pause after a failed connection, so that a pusher waiting for a server does not spin.
const RETRY_PAUSE: Duration = Duration::from_millis(5);

/// How one push request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Stored,
    Refused,
    NotConnected,
    Unknown,
}

/// The lines of one pusher, by the fate of their request.
#[derive(Debug, Default)]
struct Outcome {
    pusher: usize,
    lines: BTreeMap<String, Fate>,
    refused_503: usize,
}

fn push(addr: SocketAddr, tag: &str, pusher: usize, lines: &[String], ts: i64) -> Fate {
    let values: Vec<_> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| json!([(ts + i as i64).to_string(), l]))
        .collect();
    let body = json!({"streams": [{
        "stream": {"test": tag, "pusher": pusher.to_string()},
        "values": values
    }]});
    let headers = [("Content-Type", "application/json")];
    match http::request(
        addr,
        "POST",
        "/loki/api/v1/push",
        &headers,
        body.to_string().as_bytes(),
    ) {
        Ok(r) if r.status == 204 => Fate::Stored,
        Ok(r) if r.status == 503 => Fate::Refused,
        Ok(_) => Fate::Unknown,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => Fate::NotConnected,
        Err(_) => Fate::Unknown,
    }
}

/// Starts a pusher that sends distinct lines until `stop` is set, [`PUSHES_MAX`] is reached,
/// or (with `until_gone`) the server stops taking connections.
fn pusher(
    addr: SocketAddr,
    tag: &'static str,
    k: usize,
    stop: Arc<AtomicBool>,
    stored: Arc<AtomicUsize>,
    until_gone: bool,
) -> JoinHandle<Outcome> {
    std::thread::spawn(move || {
        let mut out = Outcome {
            pusher: k,
            ..Outcome::default()
        };
        let base = now_ns();
        let mut failures = 0;
        for i in 0..PUSHES_MAX {
            if stop.load(Ordering::SeqCst) || (until_gone && failures >= GONE_AFTER_FAILURES) {
                break;
            }
            let lines: Vec<String> = (0..LINES_PER_PUSH)
                .map(|j| format!("{tag}-p{k}-{i}-{j}"))
                .collect();
            let fate = push(addr, tag, k, &lines, base + (i * LINES_PER_PUSH) as i64);
            match fate {
                Fate::Stored => {
                    stored.fetch_add(1, Ordering::SeqCst);
                    failures = 0;
                }
                Fate::Refused => out.refused_503 += 1,
                Fate::NotConnected => {
                    failures += 1;
                    std::thread::sleep(RETRY_PAUSE);
                }
                Fate::Unknown => {}
            }
            for l in lines {
                out.lines.insert(l, fate);
            }
        }
        out
    })
}

/// How many times each line of the pusher's stream is stored.
fn stored_lines(server: &Server, tag: &str, pusher: usize) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for e in server.query_all(&format!("{{test=\"{tag}\", pusher=\"{pusher}\"}}"), false) {
        *counts.entry(e.line).or_insert(0) += 1;
    }
    counts
}

/// Checks the two definite sets; returns (stored, refused, unknown) line counts.
fn check(server: &Server, tag: &str, outcomes: &[Outcome]) -> (usize, usize, usize) {
    let (mut stored, mut refused, mut unknown) = (0, 0, 0);
    for o in outcomes {
        let found = stored_lines(server, tag, o.pusher);
        for (line, fate) in &o.lines {
            let n = found.get(line).copied().unwrap_or(0);
            match fate {
                Fate::Stored => {
                    stored += 1;
                    assert_eq!(n, 1, "line {line} was answered 204 and is stored {n} times");
                }
                Fate::Refused | Fate::NotConnected => {
                    refused += 1;
                    assert_eq!(n, 0, "line {line} was refused ({fate:?}) but is stored");
                }
                Fate::Unknown => {
                    unknown += 1;
                    assert!(n <= 1, "line {line} is stored {n} times");
                }
            }
        }
        let pushed: usize = found.keys().filter(|l| !o.lines.contains_key(*l)).count();
        assert_eq!(pushed, 0, "lines stored that no request carried");
    }
    (stored, refused, unknown)
}

/// Waits until every pusher has had `pushes` acknowledged (or a bound passes).
fn wait_for_acks(stored: &AtomicUsize, pushes: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while stored.load(Ordering::SeqCst) < pushes && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn pushes_during_graceful_stop_are_stored_exactly_when_acknowledged() {
    const TAG: &str = "stop";
    let dir = TestDir::new("refusals-stop");
    let options = ServerOptions {
        syslog: false,
        ..ServerOptions::default()
    };
    let mut server = Server::start_with(&dir, &options);
    let stop = Arc::new(AtomicBool::new(false));
    let stored = Arc::new(AtomicUsize::new(0));
    let pushers: Vec<_> = (0..PUSHERS)
        .map(|k| pusher(server.http, TAG, k, stop.clone(), stored.clone(), true))
        .collect();
    wait_for_acks(&stored, PUSHERS * 20);
    server.terminate_ok();
    let outcomes: Vec<Outcome> = pushers.into_iter().map(|p| p.join().unwrap()).collect();

    let server = Server::start_with(&dir, &options);
    let (acked, refused, unknown) = check(&server, TAG, &outcomes);
    let answered_503: usize = outcomes.iter().map(|o| o.refused_503).sum();
    eprintln!(
        "graceful stop: {acked} lines acknowledged, {refused} refused ({answered_503} pushes \
         answered 503), {unknown} unknown"
    );
    assert!(acked > 0, "nothing was acknowledged before the stop");
}

/// The bulk written before the kill, so that recovery replays a WAL long enough for pushes
/// to arrive while `/ready` is 503: one stream, so that one shard replays it all while the
/// other is ready at once (the case where a refused push could reach a ready shard).
const BULK_PUSHES: usize = 48;
const BULK_LINES_PER_PUSH: usize = 4_000;
const BULK_LINE_BYTES: usize = 240;

fn write_bulk(server: &Server) {
    let filler = "b".repeat(BULK_LINE_BYTES);
    let base = now_ns() - 3_600_000_000_000;
    for p in 0..BULK_PUSHES {
        let values: Vec<_> = (0..BULK_LINES_PER_PUSH)
            .map(|i| {
                let n = p * BULK_LINES_PER_PUSH + i;
                json!([(base + n as i64).to_string(), format!("bulk {n} {filler}")])
            })
            .collect();
        server.push_json_ok(&json!({"streams": [{"stream": {"test": "bulk"}, "values": values}]}));
    }
}

#[test]
fn pushes_during_recovery_are_stored_exactly_when_acknowledged() {
    const TAG: &str = "recovery";
    let dir = TestDir::new("refusals-recovery");
    // Nothing is sealed before the kill: the whole bulk stays in the WAL for the restart.
    let options = ServerOptions {
        syslog: false,
        extra_args: vec![
            "--seal-age".into(),
            "24h".into(),
            "--heads-bytes-max".into(),
            (1u64 << 30).to_string(),
            "--memory-max".into(),
            "8GiB".into(),
        ],
        ..ServerOptions::default()
    };
    let mut server = Server::start_with(&dir, &options);
    write_bulk(&server);
    server.kill9();

    let mut server = Server::start_unready(&dir, &options);
    let stop = Arc::new(AtomicBool::new(false));
    let stored = Arc::new(AtomicUsize::new(0));
    let pushers: Vec<_> = (0..PUSHERS)
        .map(|k| pusher(server.http, TAG, k, stop.clone(), stored.clone(), false))
        .collect();
    server.wait_ready().unwrap_or_else(|e| panic!("{e}"));
    // Some pushes after the server is ready, so that the 204 side is checked too.
    let acked_at_ready = stored.load(Ordering::SeqCst);
    wait_for_acks(&stored, acked_at_ready + PUSHERS * 5);
    stop.store(true, Ordering::SeqCst);
    let outcomes: Vec<Outcome> = pushers.into_iter().map(|p| p.join().unwrap()).collect();

    let answered_503: usize = outcomes.iter().map(|o| o.refused_503).sum();
    let (acked, refused, unknown) = check(&server, TAG, &outcomes);
    eprintln!(
        "recovery: {acked} lines acknowledged, {refused} refused ({answered_503} pushes \
         answered 503), {unknown} unknown"
    );
    assert!(
        answered_503 > 0,
        "no push arrived while the WAL was replayed: the test checked nothing; make the bulk \
         larger"
    );
    assert!(acked > 0, "nothing was acknowledged after recovery");
    let bulk = server.index_stats("{test=\"bulk\"}").entries;
    assert_eq!(
        bulk as usize,
        BULK_PUSHES * BULK_LINES_PER_PUSH,
        "bulk lines lost"
    );
}

/// Chained filters beyond the stage limit are refused with 400 naming the limit (the reported
/// query had 14,000 regexes), and timestamps outside the shared range are refused alike by
/// both push formats and by JSON lines; a syslog time outside it is replaced and counted.
#[test]
fn oversized_queries_and_out_of_range_times_are_refused() {
    let dir = TestDir::new("refusals-limits");
    let server = Server::start(&dir);
    let ts = now_ns();
    server.push_json_ok(&json!({"streams": [{"stream": {"test": "limits"},
        "values": [[ts.to_string(), "a line"]]}]}));

    // As a form body, as Grafana posts long queries (a URL this long is refused as a head).
    let query = |filters: usize| {
        let q = format!("{{test=\"limits\"}}{}", " |~ \"a\"".repeat(filters));
        let form = common::http::encode_query(&[("query", q.as_str()), ("limit", "10")]);
        server.post(
            "/loki/api/v1/query_range",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            form.as_bytes(),
        )
    };
    let ok = query(128);
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(common::entries(&ok.json()).len(), 1);
    for filters in [129, 14_000] {
        let refused = query(filters);
        assert_eq!(refused.status, 400, "{filters} filters: {}", refused.text());
        assert!(
            refused.text().contains("pipeline_stages_max"),
            "{}",
            refused.text()
        );
    }

    for bad in [i64::MIN, -1] {
        let r = server.push_json(&json!({"streams": [{"stream": {"test": "limits"},
            "values": [[bad.to_string(), "bad time"]]}]}));
        assert_eq!(r.status, 400, "JSON {bad}: {}", r.text());
        assert!(
            r.text().contains("outside the accepted range"),
            "{}",
            r.text()
        );
        let request = common::proto::PushRequest {
            streams: vec![common::proto::StreamAdapter {
                labels: "{test=\"limits\"}".into(),
                entries: vec![common::proto::EntryAdapter::new(bad, "bad time", &[])],
                hash: 0,
            }],
        };
        let r = server.push_protobuf(&request);
        assert_eq!(r.status, 400, "protobuf {bad}: {}", r.text());
        assert!(
            r.text().contains("outside the accepted range"),
            "{}",
            r.text()
        );
    }
    let r = server.post(
        "/insert/jsonline",
        &[],
        br#"{"_time":"1969-12-31T23:59:59Z","_msg":"bad time","test":"limits"}"#,
    );
    assert_eq!(r.status, 400, "jsonline: {}", r.text());
    assert!(
        r.text().contains("outside the accepted range"),
        "{}",
        r.text()
    );
    let stored = server.query_all("{test=\"limits\"}", false);
    assert_eq!(stored.len(), 1, "a refused line was stored: {stored:?}");
}

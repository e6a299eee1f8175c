//! Query limits and cancellation against the real binary: each limit answers its own error
//! naming it, a query that times out or whose client goes away stops the scans of every
//! shard (counted in `shardlog_query_scans_cancelled_total`), and a core's full query queue
//! answers 429. A query on a core busy with ingest pauses to leave it the core
//! (`shardlog_query_pauses_for_ingest_total`) and still answers in full.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::loki::{metric_sum, parse_metrics, path_with_query};
use common::{Server, TestDir, now_ns};
use serde_json::json;

/// Lines pushed for the slow queries: enough that scanning them with a regex takes far
/// longer than the timeouts below, on every shard.
const PUSHES: usize = 40;
const LINES_PER_PUSH: usize = 5_000;
/// A query that makes every scan read every line and work hard on each: each line is
/// repeated `repeat` times, then searched for a pattern that matches nothing and that no
/// bloom filter can rule out (case-insensitive).
fn slow_query(repeat: usize) -> String {
    format!(
        r#"{{app=~"slow.+"}} | line_format "{{{{ repeat {repeat} __line__ }}}}" |~ "(?i)nomatch[0-9]+zzz""#
    )
}

/// How long the tests that need a query still running want it to take.
const SLOW_QUERY_TARGET: Duration = Duration::from_secs(2);
/// The repeat count of the query that sizes the slow one.
const CALIBRATION_REPEAT: usize = 10;

/// The repeat count that makes [`slow_query`] take about [`SLOW_QUERY_TARGET`] on this
/// server: a debug build runs the pipeline many times slower than a release one, and a
/// loaded machine slower still, so the work is sized by timing a smaller query once (no
/// assertion is made on any time).
fn calibrated_repeat(server: &Server) -> usize {
    let started = Instant::now();
    let r = server.get(&slow_query_path(CALIBRATION_REPEAT));
    assert_eq!(r.status, 200, "{}", r.text());
    let took = started.elapsed().as_secs_f64().max(1e-3);
    let scale = SLOW_QUERY_TARGET.as_secs_f64() / took;
    ((CALIBRATION_REPEAT as f64 * scale) as usize).clamp(1, 5_000)
}

fn start(extra: &[&str]) -> (TestDir, Server) {
    Server::start_http_only("query-limits", extra)
}

/// Pushes the corpus, in streams spread over both shards.
fn load(server: &Server) -> Option<()> {
    let corpus = common::tools::corpus_lines("HDFS_2k.log")?;
    let t0 = now_ns() - 600 * 1_000_000_000;
    for push in 0..PUSHES {
        let values: Vec<_> = (0..LINES_PER_PUSH)
            .map(|i| {
                let n = push * LINES_PER_PUSH + i;
                json!([
                    (t0 + n as i64).to_string(),
                    corpus[n % corpus.len()].clone()
                ])
            })
            .collect();
        let app = format!("slow{}", push % 8);
        server.push_json_ok(&json!({"streams": [{"stream": {"app": app}, "values": values}]}));
    }
    Some(())
}

fn cancelled_scans(server: &Server) -> f64 {
    metric_sum(
        &parse_metrics(&server.metrics()),
        "shardlog_query_scans_cancelled_total",
        &[],
    )
}

fn slow_query_path(repeat: usize) -> String {
    path_with_query(
        "/loki/api/v1/query_range",
        &[
            ("query", &slow_query(repeat)),
            ("since", "1h"),
            ("limit", "10"),
        ],
    )
}

#[test]
fn a_timed_out_query_is_504_and_stops_every_shard() {
    let (_dir, mut server) = start(&["--query-timeout", "5ms"]);
    if load(&server).is_none() {
        return;
    }
    let r = server.get(&slow_query_path(CALIBRATION_REPEAT));
    assert_eq!(r.status, 504, "{}", r.text());
    assert!(r.text().contains("query_timeout"), "{}", r.text());
    let deadline = Instant::now() + Duration::from_secs(10);
    while cancelled_scans(&server) < 1.0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        cancelled_scans(&server) >= 1.0,
        "no scan saw the cancellation:\n{}",
        server.metrics()
    );
    server.terminate_ok();
}

#[test]
fn a_client_that_goes_away_cancels_its_query() {
    let (_dir, mut server) = start(&[]);
    if load(&server).is_none() {
        return;
    }
    let path = slow_query_path(calibrated_repeat(&server));
    let before = cancelled_scans(&server);
    for _ in 0..4 {
        let mut s = TcpStream::connect(server.http).expect("connect");
        write!(s, "GET {} HTTP/1.1\r\nHost: x\r\n\r\n", path).expect("send");
        std::thread::sleep(Duration::from_millis(20));
        drop(s);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let abandoned = |server: &Server| {
        metric_sum(
            &parse_metrics(&server.metrics()),
            "shardlog_http_requests_abandoned_total",
            &[],
        )
    };
    while (abandoned(&server) < 1.0 || cancelled_scans(&server) <= before)
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(abandoned(&server) >= 1.0, "{}", server.metrics());
    assert!(
        cancelled_scans(&server) > before,
        "the abandoned queries' scans ran to their end"
    );
    // The server still answers.
    let r = server.get(&path_with_query(
        "/loki/api/v1/query_range",
        &[
            ("query", r#"{app="slow0"}"#),
            ("since", "1h"),
            ("limit", "1"),
        ],
    ));
    assert_eq!(r.status, 200, "{}", r.text());
    server.terminate_ok();
}

#[test]
fn a_query_under_ingest_pauses_for_it_and_answers_in_full() {
    // Queries get a fixed fifth of a core busy with ingest: the headroom is larger than any
    // core's idle share, so the floor decides.
    let (_dir, mut server) = start(&[
        "--query-cpu-share-min",
        "0.2",
        "--query-cpu-headroom",
        "0.9",
    ]);
    if load(&server).is_none() {
        return;
    }
    // Every line passes the filter, after work that makes the scan take a while.
    let repeat = (calibrated_repeat(&server) / 4).max(1);
    let query = format!(
        r#"sum(count_over_time({{app=~"slow.+"}} | line_format "{{{{ repeat {repeat} __line__ }}}}" !~ "(?i)nomatch[0-9]+zzz" [1h]))"#
    );
    let pauses = |server: &Server| {
        metric_sum(
            &parse_metrics(&server.metrics()),
            "shardlog_query_pauses_for_ingest_total",
            &[],
        )
    };
    let corpus = common::tools::corpus_lines("HDFS_2k.log").expect("loaded above");
    let stop = std::sync::atomic::AtomicBool::new(false);
    let answer = std::thread::scope(|scope| {
        for pusher in 0..2 {
            let (server, corpus, stop) = (&server, &corpus, &stop);
            scope.spawn(move || {
                let mut round = 0i64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let t0 = now_ns() - 60 * 1_000_000_000;
                    let values: Vec<_> = corpus
                        .iter()
                        .enumerate()
                        .map(|(i, line)| {
                            json!([(t0 + round * 10_000 + i as i64).to_string(), line])
                        })
                        .collect();
                    let app = format!("ingest{pusher}-{}", round % 16);
                    server.push_json_ok(
                        &json!({"streams": [{"stream": {"app": app}, "values": values}]}),
                    );
                    round += 1;
                }
            });
        }
        // Ingest gets going before the query starts.
        std::thread::sleep(Duration::from_millis(500));
        let r = server.get(&path_with_query(
            "/loki/api/v1/query",
            &[("query", &query), ("time", &now_ns().to_string())],
        ));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        r
    });
    assert_eq!(answer.status, 200, "{}", answer.text());
    let body: serde_json::Value = serde_json::from_str(&answer.text()).expect("JSON");
    assert_eq!(
        body["data"]["result"][0]["value"][1],
        json!((PUSHES * LINES_PER_PUSH).to_string()),
        "{body}"
    );
    assert!(
        pauses(&server) >= 1.0,
        "no scan paused for ingest:\n{}",
        server.metrics()
    );
    server.terminate_ok();
}

#[test]
fn each_limit_names_itself() {
    let (_dir, mut server) = start(&[
        "--max-query-bytes-read",
        "64KiB",
        "--max-query-length",
        "2d",
    ]);
    if load(&server).is_none() {
        return;
    }
    let get =
        |params: &[(&str, &str)]| server.get(&path_with_query("/loki/api/v1/query_range", params));
    let r = get(&[("query", r#"{app="slow0"}"#), ("limit", "5001")]);
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(
        r.text().contains("max_entries_limit_per_query"),
        "{}",
        r.text()
    );

    let r = get(&[("query", r#"{app="slow0"}"#), ("since", "72h")]);
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("limit: 2d"), "{}", r.text());

    let r = get(&[("query", &slow_query(CALIBRATION_REPEAT)), ("since", "1h")]);
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("max_query_bytes_read"), "{}", r.text());
    server.terminate_ok();
}

#[test]
fn a_full_query_queue_answers_429() {
    let (_dir, mut server) = start(&[
        "--max-concurrent",
        "1",
        "--max-outstanding-requests-per-tenant",
        "1",
    ]);
    if load(&server).is_none() {
        return;
    }
    let addr = server.http;
    let path = slow_query_path(calibrated_repeat(&server));
    let clients: Vec<_> = (0..16)
        .map(|_| {
            let path = path.clone();
            std::thread::spawn(move || {
                common::http::request(addr, "GET", &path, &[], &[])
                    .expect("an answer")
                    .status
            })
        })
        .collect();
    let statuses: Vec<u16> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 429),
        "{statuses:?}"
    );
    assert!(
        statuses.contains(&429),
        "no query was refused: {statuses:?}"
    );
    assert!(statuses.contains(&200), "no query ran: {statuses:?}");
    server.terminate_ok();
}

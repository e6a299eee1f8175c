//! Streams that stop receiving lines leave memory: once sealed and idle for
//! `stream_idle_period`, a stream holds no slot in its shard (`shardlog_streams` drops to
//! zero), yet every read still finds its lines, labels and series through the parts; a
//! restart brings back only what the WAL holds; and a stream written again after leaving is
//! one stream with its old and new lines.

mod common;

use std::time::{Duration, Instant};

use common::loki::{metric_sum, parse_metrics, path_with_query};
use common::{Server, ServerOptions, TestDir, now_ns};
use serde_json::{Value, json};

/// Streams pushed: `{app="a<n % APPS>", inst="i<n>"}`, one line each.
const STREAMS: usize = 20_000;
const STREAMS_PER_PUSH: usize = 5_000;
const APPS: usize = 4;
/// How long the test waits for the sweep to empty the shards.
const EVICTION_WAIT: Duration = Duration::from_secs(60);

fn options() -> ServerOptions {
    ServerOptions {
        syslog: false,
        extra_args: ["--seal-age", "200ms", "--stream-idle-period", "1s"]
            .map(String::from)
            .to_vec(),
        ..ServerOptions::default()
    }
}

fn resident(server: &Server) -> f64 {
    metric_sum(&parse_metrics(&server.metrics()), "shardlog_streams", &[])
}

/// Waits until the shards hold `expected` resident streams; returns what they hold then.
fn wait_resident(server: &Server, expected: f64) -> f64 {
    let deadline = Instant::now() + EVICTION_WAIT;
    loop {
        let now = resident(server);
        if now == expected || Instant::now() > deadline {
            return now;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn count(server: &Server, query: &str) -> f64 {
    let r = server.get(&path_with_query(
        "/loki/api/v1/query",
        &[("query", query), ("time", &now_ns().to_string())],
    ));
    assert_eq!(r.status, 200, "{query}: {}", r.text());
    let body: Value = r.json();
    body["data"]["result"][0]["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

fn strings(server: &Server, path: &str, params: &[(&str, &str)]) -> Vec<String> {
    let r = server.get(&path_with_query(path, params));
    assert_eq!(r.status, 200, "{path}: {}", r.text());
    let body: Value = r.json();
    body["data"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn series_count(server: &Server, selector: &str) -> usize {
    let r = server.get(&path_with_query(
        "/loki/api/v1/series",
        &[("match[]", selector), ("since", "1h")],
    ));
    assert_eq!(r.status, 200, "{}", r.text());
    let body: Value = r.json();
    body["data"].as_array().map(Vec::len).unwrap_or(0)
}

/// Every read finds all `lines` lines of the `STREAMS` streams.
fn reads_find_everything(server: &Server, lines: usize, when: &str) {
    let all = r#"sum(count_over_time({app=~".+"}[1h]))"#;
    assert_eq!(count(server, all), lines as f64, "{when}: {all}");
    let one = r#"sum(count_over_time({app="a1"}[1h]))"#;
    assert!(
        count(server, one) >= (STREAMS / APPS) as f64,
        "{when}: {one}"
    );
    let stats = server.index_stats(r#"{app=~".+"}"#);
    assert_eq!(stats.streams, STREAMS as u64, "{when}: index stats");
    assert_eq!(stats.entries, lines as u64, "{when}: index stats");
    assert_eq!(
        strings(server, "/loki/api/v1/labels", &[("since", "1h")]),
        ["app", "inst"],
        "{when}: label names"
    );
    let apps = strings(server, "/loki/api/v1/label/app/values", &[("since", "1h")]);
    assert_eq!(apps.len(), APPS, "{when}: app values");
    let insts = strings(
        server,
        "/loki/api/v1/label/inst/values",
        &[("since", "1h"), ("query", r#"{app="a2"}"#)],
    );
    assert_eq!(
        insts.len(),
        STREAMS / APPS,
        "{when}: inst values of one app"
    );
    assert_eq!(
        series_count(server, r#"{app="a3"}"#),
        STREAMS / APPS,
        "{when}: series"
    );
}

fn push_streams(server: &Server, t0: i64) {
    let corpus = common::tools::corpus_lines("OpenSSH_2k.log").expect("the corpus");
    for push in 0..STREAMS / STREAMS_PER_PUSH {
        let streams: Vec<Value> = (0..STREAMS_PER_PUSH)
            .map(|i| {
                let n = push * STREAMS_PER_PUSH + i;
                json!({
                    "stream": {"app": format!("a{}", n % APPS), "inst": format!("i{n}")},
                    "values": [[(t0 + n as i64).to_string(), corpus[n % corpus.len()].clone()]],
                })
            })
            .collect();
        server.push_json_ok(&json!({ "streams": streams }));
    }
}

/// One more line for stream `n`, at `ts`.
fn push_again(server: &Server, n: usize, ts: i64, line: &str) {
    server.push_json_ok(&json!({"streams": [{
        "stream": {"app": format!("a{}", n % APPS), "inst": format!("i{n}")},
        "values": [[ts.to_string(), line]],
    }]}));
}

#[test]
fn idle_streams_leave_memory_and_stay_readable_across_restarts() {
    let dir = TestDir::new("idle-streams");
    let mut server = Server::start_with(&dir, &options());
    let t0 = now_ns() - 600 * 1_000_000_000;
    push_streams(&server, t0);
    assert!(
        resident(&server) > 0.0,
        "the pushed streams are resident first"
    );

    // Sealed, then idle: every stream leaves its shard; reads find them all in parts.
    assert_eq!(wait_resident(&server, 0.0), 0.0, "idle streams left memory");
    reads_find_everything(&server, STREAMS, "after eviction");

    // A stream written again is resident again, and one stream with both lines.
    push_again(
        &server,
        7,
        t0 + 1_000_000_000,
        "written again after eviction",
    );
    assert_eq!(resident(&server), 1.0);
    reads_find_everything(&server, STREAMS + 1, "written again");
    assert_eq!(
        count(
            &server,
            r#"sum(count_over_time({app="a3", inst="i7"}[1h]))"#
        ),
        2.0
    );

    // A graceful stop seals everything: the restarted server holds no stream in memory.
    server.terminate_ok();
    let mut server = Server::start_with(&dir, &options());
    assert_eq!(resident(&server), 0.0, "nothing resident after a restart");
    reads_find_everything(&server, STREAMS + 1, "after a restart");

    // An acknowledged line the WAL holds at a crash comes back resident, with its stream's
    // sealed lines beside it.
    push_again(&server, 8, t0 + 2_000_000_000, "written before the crash");
    server.kill9();
    let server = Server::start_with(&dir, &options());
    reads_find_everything(&server, STREAMS + 2, "after a crash");
    assert_eq!(
        count(
            &server,
            r#"sum(count_over_time({app="a0", inst="i8"}[1h]))"#
        ),
        2.0
    );
    assert_eq!(
        wait_resident(&server, 0.0),
        0.0,
        "the recovered stream leaves too"
    );
}

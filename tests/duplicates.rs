//! A client retry does not double lines, against the real binary: a Loki push sent twice
//! (JSON, protobuf, or one of each) is stored once and the second copy is counted in
//! `shardlog_discarded_lines_total{reason="duplicate"}`, both while the first copy is in
//! memory and after it was sealed into a part; a retry after `kill -9` and a restart is
//! dropped too. Entries that differ only in line or only in timestamp are all kept.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::loki::{metric_sum, parse_metrics};
use common::proto::{EntryAdapter, PushRequest, StreamAdapter};
use common::server::POLL_INTERVAL_MS;
use common::{Server, ServerOptions, TestDir, now_ns};
use serde_json::{Value, json};

/// Streams per batch: with two cores, some land on each shard.
const STREAMS: usize = 6;
const LINES_PER_STREAM: usize = 25;
const LINES: usize = STREAMS * LINES_PER_STREAM;

/// The longest the sealing test waits for its batch to be sealed (`--seal-age 1s`, checked
/// every quarter of it).
const SEAL_WAIT_MS: u64 = 20_000;

/// One stream of a batch: its `job` label and its (timestamp, line) entries.
struct Stream {
    job: String,
    entries: Vec<(i64, String)>,
}

/// `STREAMS` streams `{test=<tag>, job=<tag>-<s>}` of `LINES_PER_STREAM` lines 1 ms apart,
/// from ten minutes ago.
fn streams(tag: &str) -> Vec<Stream> {
    let base = now_ns() - 600 * 1_000_000_000;
    (0..STREAMS)
        .map(|s| Stream {
            job: format!("{tag}-{s}"),
            entries: (0..LINES_PER_STREAM)
                .map(|i| {
                    let ts = base + (i * STREAMS + s) as i64 * 1_000_000;
                    (ts, format!("{tag} stream {s} line {i}"))
                })
                .collect(),
        })
        .collect()
}

fn json_body(tag: &str, streams: &[Stream]) -> Value {
    let list: Vec<Value> = streams
        .iter()
        .map(|s| {
            let values: Vec<Value> = s
                .entries
                .iter()
                .enumerate()
                .map(|(i, (ts, line))| {
                    if i % 2 == 0 {
                        json!([ts.to_string(), line, {"attempt": "first"}])
                    } else {
                        json!([ts.to_string(), line])
                    }
                })
                .collect();
            json!({"stream": {"test": tag, "job": s.job}, "values": values})
        })
        .collect();
    json!({ "streams": list })
}

fn protobuf_body(tag: &str, streams: &[Stream]) -> PushRequest {
    PushRequest {
        streams: streams
            .iter()
            .map(|s| StreamAdapter {
                labels: format!(r#"{{test="{tag}", job="{}"}}"#, s.job),
                entries: s
                    .entries
                    .iter()
                    .map(|(ts, line)| EntryAdapter::new(*ts, line, &[]))
                    .collect(),
                hash: 0,
            })
            .collect(),
    }
}

fn push_json(server: &Server, body: &Value) {
    let r = server.push_json(body);
    assert_eq!(r.status, 204, "JSON push: {}", r.text());
}

fn push_protobuf(server: &Server, body: &PushRequest) {
    let r = server.push_protobuf(body);
    assert_eq!(r.status, 204, "protobuf push: {}", r.text());
}

fn duplicates_counted(server: &Server) -> u64 {
    metric(
        server,
        "shardlog_discarded_lines_total",
        &[("reason", "duplicate")],
    )
}

fn metric(server: &Server, name: &str, filter: &[(&str, &str)]) -> u64 {
    metric_sum(&parse_metrics(&server.metrics()), name, filter) as u64
}

/// Every stream holds its lines exactly once, in time order.
fn assert_stored_once(server: &Server, tag: &str, streams: &[Stream], ctx: &str) {
    for s in streams {
        let got: Vec<(i64, String)> = server
            .query_all(&format!(r#"{{test="{tag}", job="{}"}}"#, s.job), false)
            .into_iter()
            .map(|e| (e.ts, e.line))
            .collect();
        assert_eq!(got, s.entries, "{ctx}: stream {}", s.job);
    }
    let stats = server.index_stats(&format!(r#"{{test="{tag}"}}"#));
    assert_eq!(stats.entries, LINES as u64, "{ctx}: index stats");
}

#[test]
fn a_batch_pushed_twice_is_stored_once() {
    let dir = TestDir::new("dup-twice");
    let server = Server::start(&dir);

    let json_streams = streams("dup-json");
    let body = json_body("dup-json", &json_streams);
    push_json(&server, &body);
    push_json(&server, &body);
    assert_stored_once(&server, "dup-json", &json_streams, "JSON pushed twice");
    assert_eq!(duplicates_counted(&server), LINES as u64);
    // The first copy's structured metadata stays (metadata is not part of the key).
    let first = server.query_all(
        &format!(r#"{{test="dup-json", job="{}"}}"#, json_streams[0].job),
        true,
    );
    assert_eq!(
        first[0].metadata,
        BTreeMap::from([("attempt".to_string(), "first".to_string())])
    );

    let proto_streams = streams("dup-proto");
    let request = protobuf_body("dup-proto", &proto_streams);
    push_protobuf(&server, &request);
    push_protobuf(&server, &request);
    assert_stored_once(
        &server,
        "dup-proto",
        &proto_streams,
        "protobuf pushed twice",
    );
    assert_eq!(duplicates_counted(&server), 2 * LINES as u64);

    // The retry in the other encoding is the same entries.
    push_json(&server, &json_body("dup-proto", &proto_streams));
    assert_stored_once(&server, "dup-proto", &proto_streams, "JSON after protobuf");
    assert_eq!(duplicates_counted(&server), 3 * LINES as u64);
    let ingested = metric(&server, "shardlog_ingested_lines_total", &[]);
    assert_eq!(ingested, 5 * LINES as u64, "every copy was made durable");
}

#[test]
fn equal_lines_at_other_times_and_other_lines_at_one_time_are_kept() {
    let dir = TestDir::new("dup-distinct");
    let server = Server::start(&dir);
    let ts = now_ns() - 60 * 1_000_000_000;
    let t = |d: i64| (ts + d).to_string();
    push_json(
        &server,
        &json!({"streams": [{"stream": {"test": "distinct"}, "values": [
            [t(0), "one"], [t(0), "two"], [t(1), "one"], [t(0), "one"]
        ]}]}),
    );
    // A second push: the same line at yet another time, another line at the first time,
    // and one real duplicate.
    push_json(
        &server,
        &json!({"streams": [{"stream": {"test": "distinct"}, "values": [
            [t(2), "one"], [t(0), "three"], [t(1), "one"]
        ]}]}),
    );
    let mut got: Vec<(i64, String)> = server
        .query_all(r#"{test="distinct"}"#, false)
        .into_iter()
        .map(|e| (e.ts - ts, e.line))
        .collect();
    // Entries of one timestamp come in no promised order.
    got.sort();
    let want: Vec<(i64, String)> = [(0, "one"), (0, "three"), (0, "two"), (1, "one"), (2, "one")]
        .iter()
        .map(|&(d, l)| (d, l.to_string()))
        .collect();
    assert_eq!(got, want);
    assert_eq!(duplicates_counted(&server), 2);
}

#[test]
fn a_batch_pushed_again_after_it_was_sealed_is_stored_once() {
    let dir = TestDir::new("dup-sealed");
    let options = ServerOptions {
        extra_args: ["--seal-bytes", "65536", "--seal-age", "1s"]
            .map(String::from)
            .to_vec(),
        ..ServerOptions::default()
    };
    let server = Server::start_with(&dir, &options);
    let list = streams("dup-sealed");
    let request = protobuf_body("dup-sealed", &list);
    push_protobuf(&server, &request);

    let deadline = Instant::now() + Duration::from_millis(SEAL_WAIT_MS);
    while metric(&server, "shardlog_sealed_entries_total", &[]) < LINES as u64 {
        assert!(
            Instant::now() < deadline,
            "the batch was not sealed within {SEAL_WAIT_MS} ms"
        );
        std::thread::sleep(Duration::from_millis(POLL_INTERVAL_MS));
    }
    assert!(metric(&server, "shardlog_parts", &[]) > 0);
    assert_eq!(metric(&server, "shardlog_head_entries", &[]), 0);
    assert_eq!(
        metric(&server, "shardlog_duplicate_fingerprints", &[]),
        LINES as u64
    );

    push_protobuf(&server, &request);
    push_json(&server, &json_body("dup-sealed", &list));
    assert_stored_once(&server, "dup-sealed", &list, "pushed again after sealing");
    assert_eq!(duplicates_counted(&server), 2 * LINES as u64);
    assert_eq!(metric(&server, "shardlog_head_entries", &[]), 0);
}

#[test]
fn a_retry_after_kill_9_and_a_restart_is_stored_once() {
    let dir = TestDir::new("dup-restart");
    let mut server = Server::start(&dir);
    let list = streams("dup-restart");
    let body = json_body("dup-restart", &list);
    push_json(&server, &body);
    server.kill9();
    // The client never got its answer and sends the batch again to the restarted server,
    // which replayed the first copy from its WAL.
    let server = Server::start(&dir);
    push_json(&server, &body);
    assert_stored_once(&server, "dup-restart", &list, "retried after a restart");
    assert_eq!(duplicates_counted(&server), LINES as u64);
}

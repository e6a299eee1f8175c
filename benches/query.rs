//! Query-path benchmarks that do not need an executor: the k-way merge of shards' partial
//! results as the shard count grows, the HTTP request head parser, and the JSON string
//! writer that every returned line and label goes through.
//!
//! `benches/logql.rs` already measures the merge of two partials; here the same merge runs
//! over 4, 16 and 64 partials of real corpus lines, which is how it scales with cores. Head
//! parsing is measured on the requests Loki clients and Grafana really send (requests/s);
//! the JSON writer on loghub lines as they are and as JSON log lines that need escaping
//! (bytes/s).

use std::hint::black_box;

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use shardlog::config::QUERY_ENTRIES_MAX;
use shardlog::http::json;
use shardlog::http::request::{Parse, parse_head};
use shardlog::http::server::HEADER_BYTES_MAX_DEFAULT;
use shardlog::model::Labels;
use shardlog::query::merge::{Partial, PartialStream, merge_partials};
use shardlog::query::params::Direction;

#[path = "common/corpus.rs"]
mod corpus;
use corpus::CORPUS_DIR;

/// Streams each shard answers with: one per corpus file it holds lines of.
const STREAMS_PER_SHARD: usize = 10;

fn corpus_lines() -> Vec<String> {
    let mut lines = Vec::new();
    for (_, text) in corpus::files() {
        lines.extend(text.lines().map(str::to_string));
    }
    assert!(!lines.is_empty(), "no corpus lines in {CORPUS_DIR}");
    lines
}

/// What `shards` shards answer to a backward query with the default limit: each returns
/// its own newest `limit` entries over its streams, newest first, with interleaved times.
fn partials(shards: usize, lines: &[String]) -> Vec<Partial> {
    let limit = QUERY_ENTRIES_MAX as usize;
    let per_stream = limit / STREAMS_PER_SHARD;
    let mut next_line = 0usize;
    (0..shards)
        .map(|shard| Partial {
            streams: (0..STREAMS_PER_SHARD)
                .map(|s| PartialStream {
                    labels: Labels::from_pairs([
                        ("host", format!("node-{shard:02}")),
                        ("app", format!("app-{s}")),
                    ]),
                    entries: (0..per_stream as i64)
                        .rev()
                        .map(|i| {
                            let line = lines[next_line % lines.len()].clone();
                            next_line += 1;
                            let ts = 1_700_000_000_000_000_000
                                + i * 1_000_000
                                + (s * shards + shard) as i64 * 97;
                            (ts, line, Vec::new(), Vec::new())
                        })
                        .collect(),
                })
                .collect(),
        })
        .collect()
}

fn merge_by_shards(c: &mut Criterion) {
    let lines = corpus_lines();
    let limit = QUERY_ENTRIES_MAX as usize;
    let mut g = c.benchmark_group("query_merge_by_shards");
    // Entries returned per second: each merge yields `limit` of them.
    g.throughput(Throughput::Elements(limit as u64));
    for shards in [4usize, 16, 64] {
        let input = partials(shards, &lines);
        let out = merge_partials(input.clone(), Direction::Backward, limit);
        let returned: usize = out.iter().map(|s| s.entries.len()).sum();
        assert_eq!(returned, limit, "the merge fills the limit");
        g.bench_with_input(BenchmarkId::from_parameter(shards), &input, |b, input| {
            b.iter_batched(
                || input.clone(),
                |p| black_box(merge_partials(p, Direction::Backward, limit)),
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

/// Request heads as real clients send them.
fn request_heads() -> Vec<(&'static str, Vec<u8>)> {
    let push_protobuf = "POST /loki/api/v1/push HTTP/1.1\r\n\
        Host: shardlog.internal:3100\r\n\
        User-Agent: promtail/2.9.4\r\n\
        Content-Length: 48213\r\n\
        Content-Type: application/x-protobuf\r\n\
        X-Scope-OrgID: team-payments\r\n\
        Accept-Encoding: gzip\r\n\r\n";
    let push_json = "POST /loki/api/v1/push HTTP/1.1\r\n\
        Host: 10.20.0.15:3100\r\n\
        User-Agent: Go-http-client/1.1\r\n\
        Transfer-Encoding: chunked\r\n\
        Content-Type: application/json\r\n\
        Content-Encoding: gzip\r\n\r\n";
    let query_range = "GET /loki/api/v1/query_range?direction=backward&end=1700003600000000000\
        &limit=1000&query=%7Bapp%3D%22api%22%2C%20env%3D~%22prod%7Cstaging%22%7D%20%7C%3D%20%22\
        error%22%20%21%3D%20%22timeout%22&start=1700000000000000000&step=15s HTTP/1.1\r\n\
        Host: shardlog.internal:3100\r\n\
        User-Agent: Grafana/10.4.1\r\n\
        Accept: application/json, text/plain, */*\r\n\
        Accept-Encoding: deflate, gzip\r\n\
        X-Grafana-Org-Id: 1\r\n\
        X-Query-Tags: Source=grafana-explore\r\n\
        X-Scope-OrgID: team-payments\r\n\
        Connection: keep-alive\r\n\r\n";
    let ready = "GET /ready HTTP/1.1\r\nHost: localhost:3100\r\nUser-Agent: kube-probe/1.29\r\n\
        Accept: */*\r\nConnection: close\r\n\r\n";
    vec![
        ("push_protobuf", push_protobuf.as_bytes().to_vec()),
        ("push_json_chunked", push_json.as_bytes().to_vec()),
        ("grafana_query_range", query_range.as_bytes().to_vec()),
        ("readiness_probe", ready.as_bytes().to_vec()),
    ]
}

fn head_parsing(c: &mut Criterion) {
    let mut g = c.benchmark_group("http_parse_head");
    for (name, head) in request_heads() {
        match parse_head(&head, HEADER_BYTES_MAX_DEFAULT) {
            Parse::Complete(h) => assert_eq!(h.head_bytes, head.len(), "{name}"),
            other => panic!("{name} does not parse: {other:?}"),
        }
        g.throughput(Throughput::Elements(1));
        g.bench_function(format!("{name}_requests"), |b| {
            b.iter(|| black_box(parse_head(black_box(&head), HEADER_BYTES_MAX_DEFAULT)))
        });
    }
    g.finish();
}

fn json_strings(c: &mut Criterion) {
    let lines = corpus_lines();
    // The same lines as the JSON log lines many services write: quotes and backslashes to
    // escape in every line.
    let json_lines: Vec<String> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let mut body = String::new();
            json::string(&mut body, l);
            format!(
                r#"{{"ts":"2024-05-01T12:00:{:02}Z","level":"info","msg":{body}}}"#,
                i % 60
            )
        })
        .collect();
    let mut g = c.benchmark_group("http_json_string");
    for (name, set) in [("loghub_lines", &lines), ("json_log_lines", &json_lines)] {
        let bytes: usize = set.iter().map(String::len).sum();
        let mut out = String::with_capacity(bytes * 2);
        g.throughput(Throughput::Bytes(bytes as u64));
        g.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                for l in set.iter() {
                    json::string(&mut out, black_box(l));
                }
                out.len()
            })
        });
    }
    g.finish();
}

#[path = "common/criterion_config.rs"]
mod criterion_config;
use criterion_config::config;

criterion_group! {
    name = benches;
    config = config();
    targets = merge_by_shards, head_parsing, json_strings
}
criterion_main!(benches);

//! Decoding throughput of push bodies built from real logs (the loghub corpus): a 1000-line
//! Loki push as JSON and as protobuf+snappy, and 1000 JSON lines in the seed's shape.
//! Reported in lines/s (`elements`) and in body bytes/s.

use criterion::{BenchmarkId, Criterion, Throughput, black_box, criterion_group, criterion_main};
use shardlog::ingest::jsonline::{JsonLineParams, decode_jsonline};
use shardlog::ingest::push::{self, PushEntry, PushLimits, PushStream, decode_push};
use shardlog::model::Labels;

#[path = "common/corpus.rs"]
mod corpus;
/// Lines per request: a typical Promtail/Alloy batch of 1 MiB holds a few thousand lines.
const LINES_PER_REQUEST: usize = 1000;
/// Lines taken from each corpus file, so that a request mixes ten streams of real logs.
const LINES_PER_FILE: usize = LINES_PER_REQUEST / 10;

/// Ten streams, one per corpus file, labelled like a Promtail scrape.
fn corpus_streams() -> Vec<PushStream> {
    let mut ts = 1_700_000_000_000_000_000i64;
    corpus::files()
        .iter()
        .map(|(name, text)| {
            let app = name.trim_end_matches("_2k").to_lowercase();
            let entries = text
                .lines()
                .take(LINES_PER_FILE)
                .enumerate()
                .map(|(i, line)| {
                    ts += 1_000_000;
                    let metadata = if i % 4 == 0 {
                        vec![("trace_id".to_string(), format!("{:016x}", ts as u64))]
                    } else {
                        vec![]
                    };
                    PushEntry {
                        timestamp_ns: ts,
                        line: line.to_string(),
                        metadata,
                    }
                })
                .collect();
            PushStream {
                labels: Labels::from_pairs([
                    ("app", app.as_str()),
                    ("env", "bench"),
                    ("host", "node-1"),
                ]),
                entries,
            }
        })
        .collect()
}

fn jsonline_body(streams: &[PushStream]) -> Vec<u8> {
    let mut out = String::new();
    for s in streams {
        for e in &s.entries {
            let obj = serde_json::json!({
                "timestamp": e.timestamp_ns.to_string(),
                "service_name": s.labels.get("app"),
                "log_level": "INFO",
                "message": e.line,
                "trace_id": format!("{:x}", e.timestamp_ns),
            });
            out.push_str(&obj.to_string());
            out.push('\n');
        }
    }
    out.into_bytes()
}

fn bench_push(c: &mut Criterion) {
    let streams = corpus_streams();
    let lines: usize = streams.iter().map(|s| s.entries.len()).sum();
    assert_eq!(
        lines, LINES_PER_REQUEST,
        "the corpus has ten files of at least 100 lines"
    );
    let limits = PushLimits::default();
    let json = push::json::encode(&streams);
    let protobuf = push::proto::encode(&streams);
    let jsonl = jsonline_body(&streams);
    let params = JsonLineParams::default();
    // The bodies must decode to what was encoded, or the numbers mean nothing.
    assert_eq!(
        decode_push(Some("application/json"), None, &json, &limits)
            .unwrap()
            .streams,
        streams
    );
    assert_eq!(
        decode_push(Some("application/x-protobuf"), None, &protobuf, &limits)
            .unwrap()
            .streams,
        streams
    );
    assert_eq!(
        decode_jsonline(&params, &jsonl, 0, &limits)
            .unwrap()
            .rows
            .len(),
        lines
    );

    for by_bytes in [false, true] {
        let unit = if by_bytes { "bytes" } else { "lines" };
        let mut group = c.benchmark_group(format!("push_decode_{unit}"));
        let cases: [(&str, &[u8]); 3] = [
            ("json", &json),
            ("protobuf_snappy", &protobuf),
            ("jsonline", &jsonl),
        ];
        for (name, body) in cases {
            group.throughput(if by_bytes {
                Throughput::Bytes(body.len() as u64)
            } else {
                Throughput::Elements(lines as u64)
            });
            group.bench_with_input(BenchmarkId::new(name, lines), body, |b, body| match name {
                "json" => b.iter(|| {
                    decode_push(Some("application/json"), None, black_box(body), &limits).unwrap()
                }),
                "protobuf_snappy" => b.iter(|| {
                    decode_push(
                        Some("application/x-protobuf"),
                        None,
                        black_box(body),
                        &limits,
                    )
                    .unwrap()
                }),
                _ => b.iter(|| decode_jsonline(&params, black_box(body), 0, &limits).unwrap()),
            });
        }
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2));
    targets = bench_push
}
criterion_main!(benches);

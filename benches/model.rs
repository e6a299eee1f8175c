//! Data-model benchmarks on real logs: the stream hash every ingested line pays (alone and
//! with the label set built around it, as the syslog path does), and the batch codec that
//! carries lines from the parsing core to the owner shard (encode with `BatchBuilder`,
//! decode with `BatchReader`).
//!
//! Label sets come from the loghub corpus: one per line, with the labels the syslog listener
//! attaches (host, app, facility, level from the line itself) or the labels a Kubernetes
//! Loki client sends. Throughput is in label sets (hashes) per second, and in lines and line
//! bytes per second for the batch codec.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use shardlog::config::BATCH_BYTES_TARGET;
use shardlog::model::{BatchBuilder, BatchItem, BatchReader, Labels, stream_hash};

#[path = "common/corpus.rs"]
mod corpus;
use corpus::CORPUS_DIR;
const TENANT: &str = "fake";
/// Distinct hosts the corpus lines are spread over: a mid-sized fleet behind one server.
const HOSTS: usize = 64;

/// `(app, line)` for every corpus line, files in name order.
fn corpus() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (name, text) in corpus::files() {
        let app = name.trim_end_matches("_2k").to_lowercase();
        out.extend(text.lines().map(|l| (app.clone(), l.to_string())));
    }
    assert!(!out.is_empty(), "no corpus lines in {CORPUS_DIR}");
    out
}

/// The level a log line states, as a syslog severity name; `info` when it states none.
fn level_of(line: &str) -> &'static str {
    const LEVELS: [(&str, &str); 6] = [
        ("FATAL", "crit"),
        ("ERROR", "err"),
        ("WARN", "warning"),
        ("INFO", "info"),
        ("DEBUG", "debug"),
        ("TRACE", "debug"),
    ];
    LEVELS
        .iter()
        .find(|(word, _)| line.contains(word))
        .map_or("info", |(_, name)| name)
}

/// The label pairs the syslog listener builds for a line (host, app, facility, level).
fn syslog_pairs(i: usize, app: &str, line: &str) -> [(String, String); 4] {
    let facility = ["daemon", "auth", "local0", "user"][i % 4];
    [
        ("host".into(), format!("node-{:02}.dc1", i % HOSTS)),
        ("app".into(), app.to_string()),
        ("facility".into(), facility.to_string()),
        ("level".into(), level_of(line).to_string()),
    ]
}

/// The labels a Kubernetes log shipper sends with a push.
fn kubernetes_labels(i: usize, app: &str, line: &str) -> Labels {
    Labels::from_pairs([
        ("cluster", "prod-eu-west-1".to_string()),
        ("namespace", format!("team-{}", i % 7)),
        ("app", app.to_string()),
        (
            "pod",
            format!("{app}-7d9f8c6b5-{:05x}", (i * 7919) % 0xfffff),
        ),
        ("container", app.to_string()),
        ("job", format!("team-{}/{app}", i % 7)),
        ("stream", ["stdout", "stderr"][i % 2].to_string()),
        ("level", level_of(line).to_string()),
    ])
}

fn stream_hashing(c: &mut Criterion) {
    let lines = corpus();
    let syslog: Vec<[(String, String); 4]> = lines
        .iter()
        .enumerate()
        .map(|(i, (app, line))| syslog_pairs(i, app, line))
        .collect();
    let syslog_labels: Vec<Labels> = syslog
        .iter()
        .map(|p| Labels::from_pairs(p.iter().cloned()))
        .collect();
    let k8s: Vec<Labels> = lines
        .iter()
        .enumerate()
        .map(|(i, (app, line))| kubernetes_labels(i, app, line))
        .collect();

    let mut g = c.benchmark_group("stream_hash");
    g.throughput(Throughput::Elements(lines.len() as u64));
    g.bench_function("syslog_4_labels", |b| {
        b.iter(|| {
            let mut acc = 0u64;
            for l in &syslog_labels {
                acc ^= stream_hash(TENANT, black_box(l));
            }
            acc
        })
    });
    g.bench_function("kubernetes_8_labels", |b| {
        b.iter(|| {
            let mut acc = 0u64;
            for l in &k8s {
                acc ^= stream_hash(TENANT, black_box(l));
            }
            acc
        })
    });
    // What the syslog path pays per line: sort the pairs into a label set, then hash it.
    g.bench_function("syslog_build_labels_and_hash", |b| {
        b.iter(|| {
            let mut acc = 0u64;
            for pairs in &syslog {
                let labels = Labels::from_pairs(
                    black_box(pairs)
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str())),
                );
                acc ^= stream_hash(TENANT, &labels);
            }
            acc
        })
    });
    g.finish();
}

/// One entry to encode: its stream, labels, timestamp, line and syslog metadata.
struct Entry {
    stream: u64,
    labels: Labels,
    ts: i64,
    line: String,
    procid: String,
}

fn entries() -> Vec<Entry> {
    corpus()
        .into_iter()
        .enumerate()
        .map(|(i, (app, line))| {
            let labels = Labels::from_pairs(syslog_pairs(i, &app, &line));
            Entry {
                stream: stream_hash(TENANT, &labels),
                labels,
                ts: 1_700_000_000_000_000_000 + i as i64 * 1_000_003,
                procid: (1000 + i % 4000).to_string(),
                line,
            }
        })
        .collect()
}

/// Encodes every entry, cutting a batch at the listener's byte target; returns the batches.
fn encode_all(builder: &mut BatchBuilder, entries: &[Entry]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for e in entries {
        builder.push(
            e.stream,
            &e.labels,
            e.ts,
            &e.line,
            &[("procid", e.procid.as_str())],
        );
        if builder.encoded_len() >= BATCH_BYTES_TARGET {
            out.push(builder.finish().bytes);
        }
    }
    if !builder.is_empty() {
        out.push(builder.finish().bytes);
    }
    out
}

/// Decodes every batch as the owner shard does; returns the line bytes seen.
fn decode_all(batches: &[Vec<u8>]) -> u64 {
    let mut line_bytes = 0u64;
    for body in batches {
        let reader = BatchReader::new(body).expect("valid batch");
        for item in reader {
            if let BatchItem::Entry { line, metadata, .. } = item.expect("valid item") {
                line_bytes += line.len() as u64 + metadata.len() as u64;
            }
        }
    }
    line_bytes
}

fn batch_codec(c: &mut Criterion) {
    let entries = entries();
    let line_bytes: u64 = entries.iter().map(|e| e.line.len() as u64).sum();
    let mut builder = BatchBuilder::new(TENANT);
    let batches = encode_all(&mut builder, &entries);
    let decoded = decode_all(&batches);
    assert_eq!(decoded, line_bytes + entries.len() as u64, "round trip");

    for (unit, throughput) in [
        ("lines", Throughput::Elements(entries.len() as u64)),
        ("bytes", Throughput::Bytes(line_bytes)),
    ] {
        let mut g = c.benchmark_group(format!("batch_{unit}"));
        g.throughput(throughput);
        g.bench_function("encode_builder", |b| {
            b.iter(|| encode_all(&mut builder, black_box(&entries)))
        });
        g.bench_function("decode_reader", |b| {
            b.iter(|| decode_all(black_box(&batches)))
        });
        g.finish();
    }
}

#[path = "common/criterion_config.rs"]
mod criterion_config;
use criterion_config::config;

criterion_group! {
    name = benches;
    config = config();
    targets = stream_hashing, batch_codec
}
criterion_main!(benches);

//! Syslog ingestion hot paths on real logs: TCP framing, and parse + conversion to an entry.
//!
//! The messages are built from the loghub samples in `testdata/loghub` (20 000 lines
//! from ten systems): RFC 5424 messages as rsyslog or `loggen -P` send them (octet-counted,
//! with the counted trailing LF), and RFC 3164 messages as a BSD syslog daemon sends them.
//! Throughput is reported in lines (messages) per second and in bytes per second.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use shardlog::ingest::framing::{Decoded, FRAME_BYTES_MAX_DEFAULT, Framer};
use shardlog::ingest::syslog::{ParseContext, label_pairs, metadata, parse, to_entry};
use shardlog::model::stream_hash_sorted;

#[path = "common/corpus.rs"]
mod corpus;

/// The loghub files; Linux and OpenSSH are syslog files whose header is reused.
const CORPUS_FILES: [&str; 10] = [
    "Linux_2k.log",
    "OpenSSH_2k.log",
    "Android_2k.log",
    "Apache_2k.log",
    "HDFS_2k.log",
    "HPC_2k.log",
    "Hadoop_2k.log",
    "OpenStack_2k.log",
    "Spark_2k.log",
    "Zookeeper_2k.log",
];

/// 2024-01-01T00:00:00Z, the first timestamp of the generated messages.
const START_NS: i64 = 1_704_067_200_000_000_000;

struct Corpus {
    rfc5424: Vec<Vec<u8>>,
    rfc3164: Vec<Vec<u8>>,
}

/// Builds one RFC 5424 and one RFC 3164 message per corpus line.
fn load_corpus() -> Corpus {
    let ctx = ParseContext {
        now_ns: START_NS + 365 * 86_400 * 1_000_000_000,
    };
    let mut corpus = Corpus {
        rfc5424: Vec::new(),
        rfc3164: Vec::new(),
    };
    for file in CORPUS_FILES {
        let text = corpus::file(file);
        let app = file.trim_end_matches("_2k.log").to_ascii_lowercase();
        for (i, line) in text.split(|&b| b == b'\n').enumerate() {
            if line.is_empty() {
                continue;
            }
            let parsed = parse(line, &ctx);
            let host = parsed.hostname.unwrap_or("node-17");
            let app = parsed.app_name.unwrap_or(&app);
            let procid = parsed.procid.unwrap_or("-");
            let msg = String::from_utf8_lossy(line);
            let msg = match parsed.hostname {
                Some(_) => parsed.message.clone(),
                None => msg,
            };
            let secs = i % 60;
            let micros = (i * 7919) % 1_000_000;
            corpus.rfc5424.push(
                format!(
                    "<30>1 2024-01-01T00:{:02}:{secs:02}.{micros:06}+00:00 {host} {app} {procid} - - {msg}\n",
                    (i / 60) % 60
                )
                .into_bytes(),
            );
            let pid = if procid == "-" {
                String::new()
            } else {
                format!("[{procid}]")
            };
            corpus.rfc3164.push(
                format!(
                    "<38>Jan {:>2} 12:{:02}:{secs:02} {host} {app}{pid}: {msg}",
                    1 + i % 28,
                    (i / 60) % 60
                )
                .into_bytes(),
            );
        }
    }
    corpus
}

fn bytes_of(messages: &[Vec<u8>]) -> u64 {
    messages.iter().map(|m| m.len() as u64).sum()
}

fn framing(c: &mut Criterion, corpus: &Corpus) {
    let mut octet_stream = Vec::new();
    let mut newline_stream = Vec::new();
    for m in &corpus.rfc5424 {
        octet_stream.extend_from_slice(format!("{} ", m.len()).as_bytes());
        octet_stream.extend_from_slice(m);
        newline_stream.extend_from_slice(m);
    }
    let lines = corpus.rfc5424.len() as u64;
    let mut group = c.benchmark_group("syslog_framing");
    for (name, stream) in [
        ("octet_counted_rfc5424", &octet_stream),
        ("newline_rfc5424", &newline_stream),
    ] {
        group.throughput(Throughput::Elements(lines));
        group.bench_function(format!("{name}_lines"), |b| {
            b.iter(|| frame_all(stream));
        });
        group.throughput(Throughput::Bytes(stream.len() as u64));
        group.bench_function(format!("{name}_bytes"), |b| {
            b.iter(|| frame_all(stream));
        });
    }
    group.finish();
}

/// Frames a whole stream as a connection would, returning the number of messages.
fn frame_all(stream: &[u8]) -> usize {
    let mut framer = Framer::new(FRAME_BYTES_MAX_DEFAULT);
    let mut at = 0;
    let mut frames = 0;
    loop {
        match framer.decode(&stream[at..], true) {
            Decoded::Frame {
                message, consumed, ..
            } => {
                black_box(message);
                frames += 1;
                at += consumed;
            }
            Decoded::Skipped { consumed, .. } => at += consumed,
            Decoded::NeedMore => return frames,
        }
    }
}

fn parsing(c: &mut Criterion, corpus: &Corpus) {
    let ctx = ParseContext {
        now_ns: START_NS + 86_400 * 1_000_000_000,
    };
    let mut group = c.benchmark_group("syslog_parse_to_entry");
    for (name, messages) in [("rfc5424", &corpus.rfc5424), ("rfc3164", &corpus.rfc3164)] {
        let parse_to_entry = |b: &mut criterion::Bencher<'_>| {
            b.iter(|| {
                for m in messages {
                    let parsed = parse(m, &ctx);
                    black_box(to_entry(&parsed, &ctx, Some("192.0.2.1")));
                }
            });
        };
        group.throughput(Throughput::Elements(messages.len() as u64));
        group.bench_function(format!("{name}_lines"), parse_to_entry);
        group.throughput(Throughput::Bytes(bytes_of(messages)));
        group.bench_function(format!("{name}_bytes"), parse_to_entry);
        // What a syslog listener does per message: parse, borrowed sorted labels, stream
        // hash, metadata; no label set is built.
        group.throughput(Throughput::Elements(messages.len() as u64));
        group.bench_function(format!("{name}_listener_path_lines"), |b| {
            b.iter(|| {
                for m in messages {
                    let parsed = parse(m, &ctx);
                    let labels = label_pairs(&parsed, Some("192.0.2.1"));
                    let id = stream_hash_sorted("fake", labels.iter().copied());
                    black_box((id, metadata(&parsed)));
                }
            });
        });
        // Without the label set, the one allocation per message.
        group.throughput(Throughput::Elements(messages.len() as u64));
        group.bench_function(format!("{name}_parse_only_lines"), |b| {
            b.iter(|| {
                for m in messages {
                    black_box(parse(m, &ctx));
                }
            });
        });
    }
    group.finish();
}

fn benches(c: &mut Criterion) {
    let corpus = load_corpus();
    framing(c, &corpus);
    parsing(c, &corpus);
}

criterion_group!(syslog, benches);
criterion_main!(syslog);

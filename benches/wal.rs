//! WAL record codec benchmarks on real logs: encoding a batch body into a record (header,
//! both CRC32Cs, copy) and decoding plus verifying it, as replay does.
//!
//! Bodies are `BatchBuilder` batches of 1000 loghub corpus lines each (one stream per corpus
//! file), so the figures are per line and per byte of what the WAL really carries.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use shardlog::model::{BatchBuilder, Labels, stream_hash};
use shardlog::wal::{BLOCK_BYTES, decode_record, encode_record};

#[path = "common/corpus.rs"]
mod corpus;

/// Lines per batch body, a typical ingest batch.
const LINES_PER_BATCH: usize = 1000;

struct Bodies {
    bodies: Vec<Vec<u8>>,
    lines: u64,
}

fn corpus_bodies() -> Bodies {
    let mut bodies = Vec::new();
    let mut lines = 0u64;
    let mut builder = BatchBuilder::new("bench");
    for (app, text) in corpus::files() {
        let labels = Labels::from_pairs([("app", app.as_str()), ("host", "bench-1")]);
        let stream = stream_hash("bench", &labels);
        for (i, line) in text.lines().enumerate() {
            builder.push(
                stream,
                &labels,
                1_700_000_000_000_000_000 + i as i64,
                line,
                &[],
            );
            if builder.entries() as usize == LINES_PER_BATCH {
                lines += LINES_PER_BATCH as u64;
                bodies.push(builder.finish().bytes);
            }
        }
    }
    assert!(!bodies.is_empty(), "corpus too small for one batch");
    Bodies { bodies, lines }
}

fn bench_codec(c: &mut Criterion) {
    let Bodies { bodies, lines } = corpus_bodies();
    let body_bytes: u64 = bodies.iter().map(|b| b.len() as u64).sum();

    // All bodies encoded back to back, each commit padded as the writer does.
    let mut log = Vec::new();
    let mut starts = Vec::new();
    for (i, b) in bodies.iter().enumerate() {
        starts.push(log.len());
        encode_record(i as u64 + 1, b, &mut log);
        log.resize(log.len().div_ceil(BLOCK_BYTES) * BLOCK_BYTES, 0);
    }

    let mut out = Vec::with_capacity(log.len());
    let encode = |out: &mut Vec<u8>| {
        out.clear();
        for (i, b) in bodies.iter().enumerate() {
            encode_record(i as u64 + 1, black_box(b), out);
        }
    };
    let decode = || {
        let mut seen = 0u64;
        for &s in &starts {
            let (h, body) = decode_record(black_box(&log), s).unwrap().unwrap();
            seen += h.body_len as u64 + body.len() as u64;
        }
        seen
    };

    for (unit, throughput) in [
        ("lines", Throughput::Elements(lines)),
        ("bytes", Throughput::Bytes(body_bytes)),
    ] {
        let mut g = c.benchmark_group(format!("wal_record_{unit}"));
        g.throughput(throughput);
        g.bench_function("encode", |b| b.iter(|| encode(&mut out)));
        g.bench_function("decode_verify", |b| b.iter(|| black_box(decode())));
        g.finish();
    }
}

criterion_group!(benches, bench_codec);
criterion_main!(benches);

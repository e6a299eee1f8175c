//! The duplicate check's cost per line (`shardlog::shard::dedupe`), on loghub lines.
//!
//! A head of realistic size is what `--seal-bytes` lets one stream hold by default (1 MiB
//! of lines, a few thousand loghub lines). Measured, in lines per second:
//! - `head_push`: appending every line to an empty head, without the check (`plain`, as
//!   syslog does) and with it before every append, timestamps in order (`checked_in_order`,
//!   a Loki push client) and shuffled (`checked_out_of_order`: the head goes out of order at
//!   once and keeps its index up from then on). The difference is what the check adds to
//!   ingest.
//! - `head_retry`: the whole head pushed again, every line a duplicate found in the head, in
//!   order (binary search, line compared) and out of order (index lookup, line compared);
//!   and the same timestamps with other lines (`in_order_misses`).
//! - `sealed`: the fingerprints of a sealed head taken at commit (`remember_head`), and a
//!   retry of it checked against the fingerprints of a full memory of other heads
//!   (`retry_lookup`, xxh3 plus binary search in the stream's runs).

use std::hint::black_box;
use std::time::Instant;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use shardlog::config::SEAL_BYTES_DEFAULT;
use shardlog::model::{Labels, TimestampNs};
use shardlog::shard::dedupe::{Fingerprint, RecentlySealed, fingerprints};
use shardlog::shard::head::StreamHead;

#[path = "common/corpus.rs"]
mod corpus;

/// Nanoseconds between consecutive lines of the head: a busy stream's spacing.
const STEP_NS: TimestampNs = 1_000;

/// The first corpus lines that fill a head of `SEAL_BYTES_DEFAULT`, with timestamps
/// `STEP_NS` apart.
fn head_lines() -> Vec<(TimestampNs, String)> {
    let mut out = Vec::new();
    let mut bytes = 0;
    for (_, text) in corpus::files() {
        for line in text.lines() {
            if bytes + line.len() > SEAL_BYTES_DEFAULT {
                return out;
            }
            bytes += line.len();
            out.push((out.len() as TimestampNs * STEP_NS, line.to_string()));
        }
    }
    out
}

/// The same lines in a fixed shuffled order (a multiplicative permutation).
fn shuffled(lines: &[(TimestampNs, String)]) -> Vec<(TimestampNs, String)> {
    let n = lines.len();
    let step = (1..n)
        .rev()
        .find(|s| gcd(*s, n) == 1 && *s > n / 3)
        .unwrap_or(1);
    (0..n).map(|i| lines[(i * step) % n].clone()).collect()
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}

fn empty_head() -> StreamHead {
    StreamHead::new(1, "fake", Labels::from_pairs([("app", "bench")]))
}

fn filled(lines: &[(TimestampNs, String)], checked: bool) -> StreamHead {
    let mut h = empty_head();
    for (ts, line) in lines {
        if checked {
            assert!(!h.holds_mut(*ts, line));
        }
        h.push(*ts, line, &[]);
    }
    h
}

fn head_push(c: &mut Criterion) {
    let lines = head_lines();
    let mixed = shuffled(&lines);
    let mut g = c.benchmark_group("head_push");
    g.throughput(Throughput::Elements(lines.len() as u64));
    g.bench_function("plain", |b| {
        b.iter(|| black_box(filled(black_box(&lines), false)))
    });
    g.bench_function("checked_in_order", |b| {
        b.iter(|| black_box(filled(black_box(&lines), true)))
    });
    g.bench_function("plain_out_of_order", |b| {
        b.iter(|| black_box(filled(black_box(&mixed), false)))
    });
    g.bench_function("checked_out_of_order", |b| {
        b.iter(|| black_box(filled(black_box(&mixed), true)))
    });
    g.finish();
}

fn head_retry(c: &mut Criterion) {
    let lines = head_lines();
    let mixed = shuffled(&lines);
    let in_order = filled(&lines, true);
    let out_of_order = filled(&mixed, true);
    assert!(in_order.index_bytes() == 0 && out_of_order.index_bytes() > 0);
    let others: Vec<(TimestampNs, String)> =
        lines.iter().map(|(ts, l)| (*ts, format!("{l} "))).collect();
    let all_held = |h: &StreamHead, ls: &[(TimestampNs, String)]| {
        ls.iter().filter(|(ts, l)| h.holds(*ts, l)).count()
    };
    assert_eq!(all_held(&in_order, &lines), lines.len());
    assert_eq!(all_held(&out_of_order, &lines), lines.len());
    assert_eq!(all_held(&in_order, &others), 0);
    let mut g = c.benchmark_group("head_retry");
    g.throughput(Throughput::Elements(lines.len() as u64));
    g.bench_function("in_order_hits", |b| {
        b.iter(|| all_held(black_box(&in_order), black_box(&lines)))
    });
    g.bench_function("in_order_misses", |b| {
        b.iter(|| all_held(black_box(&in_order), black_box(&others)))
    });
    g.bench_function("out_of_order_hits", |b| {
        b.iter(|| all_held(black_box(&out_of_order), black_box(&mixed)))
    });
    g.finish();
    eprintln!(
        "head of {} lines: index of an out-of-order head {} bytes ({:.1} per line)",
        lines.len(),
        out_of_order.index_bytes(),
        out_of_order.index_bytes() as f64 / lines.len() as f64
    );
}

fn sealed(c: &mut Criterion) {
    let lines = head_lines();
    let head = filled(&lines, true);
    let mut g = c.benchmark_group("sealed");
    g.throughput(Throughput::Elements(lines.len() as u64));
    g.bench_function("remember_head", |b| {
        b.iter_batched(
            RecentlySealed::default,
            |mut r| {
                r.add_sealed(head.id, fingerprints(&head), Instant::now());
                r
            },
            BatchSize::LargeInput,
        )
    });
    // A full memory: this stream's head among as many other streams' heads as fit.
    let mut recent = RecentlySealed::default();
    let now = Instant::now();
    let fps = fingerprints(&head);
    let mut other = 2;
    while recent.evicted() == 0 {
        recent.add_sealed(other, fps.clone(), now);
        other += 1;
    }
    recent.add_sealed(head.id, fps, now);
    let retry = |r: &RecentlySealed| {
        lines
            .iter()
            .filter(|(ts, l)| r.contains(head.id, &Fingerprint::of(*ts, l)))
            .count()
    };
    assert_eq!(retry(&recent), lines.len());
    g.bench_function("retry_lookup", |b| b.iter(|| retry(black_box(&recent))));
    g.finish();
    eprintln!(
        "fingerprint memory: {} fingerprints of {} streams in {} bytes",
        recent.len(),
        other - 1,
        recent.bytes()
    );
}

#[path = "common/criterion_config.rs"]
mod criterion_config;
use criterion_config::config;

criterion_group! {
    name = benches;
    config = config();
    targets = head_push, head_retry, sealed
}
criterion_main!(benches);

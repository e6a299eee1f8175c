//! LogQL hot paths: parsing typical queries, line filters scanning real log lines (loghub
//! corpus), and the k-way merge of two shards' partial results.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use shardlog::logql::{parse_expr, parse_log_selector};
use shardlog::model::Labels;
use shardlog::query::merge::{Partial, PartialStream, merge_partials};
use shardlog::query::params::Direction;

#[path = "common/corpus.rs"]
mod corpus;

const QUERIES: [&str; 4] = [
    r#"{app="nginx"}"#,
    r#"{app="api", env=~"prod|staging", pod!~"canary-.*"} |= "error" != "timeout""#,
    r#"{job="varlogs"} |~ "(?i)fail(ed|ure)" !~ `\d{3} OK` |= ip("10.0.0.0/8") or "host""#,
    r#"{namespace="dev", container_name="cart"} |> "<_> level=error <_>" or "<_> panic <_>""#,
];

fn parse(c: &mut Criterion) {
    let mut g = c.benchmark_group("logql_parse");
    g.throughput(Throughput::Elements(QUERIES.len() as u64));
    g.bench_function("typical_queries", |b| {
        b.iter(|| {
            for q in QUERIES {
                black_box(parse_expr(black_box(q)).unwrap());
            }
        })
    });
    g.finish();
}

/// Every line of the corpus files, without their newlines.
fn corpus_lines() -> Vec<Vec<u8>> {
    corpus::files()
        .into_iter()
        .flat_map(|(_, text)| {
            text.split('\n')
                .filter(|l| !l.is_empty())
                .map(|l| l.as_bytes().to_vec())
                .collect::<Vec<_>>()
        })
        .collect()
}

fn line_filters(c: &mut Criterion) {
    let lines = corpus_lines();
    let bytes: usize = lines.iter().map(Vec::len).sum();
    let mut g = c.benchmark_group("logql_line_filter");
    g.throughput(Throughput::Bytes(bytes as u64));
    for (name, filter) in [
        ("contains_literal", r#"|= "error""#),
        ("not_contains_literal", r#"!= "INFO""#),
        ("regex_literal_only", r#"|~ "Exception""#),
        ("regex_case_insensitive", r#"|~ "(?i)fail(ed|ure)?""#),
        ("regex_ipv4", r#"|~ "\\d+\\.\\d+\\.\\d+\\.\\d+""#),
        ("pattern", r#"|> "<_> error <_>""#),
        ("ip_cidr", r#"|= ip("10.0.0.0/8")"#),
    ] {
        let selector = parse_log_selector(&format!(r#"{{app="x"}} {filter}"#), true)
            .unwrap()
            .selector;
        let kept = lines.iter().filter(|l| selector.matches_line(l)).count();
        eprintln!("{name}: keeps {kept} of {} lines", lines.len());
        g.bench_function(name, |b| {
            b.iter(|| {
                lines
                    .iter()
                    .filter(|l| selector.matches_line(black_box(l)))
                    .count()
            })
        });
    }
    g.finish();
}

/// Two shards' answers of 5000 entries each, over 20 streams, newest first.
fn two_partials() -> Vec<Partial> {
    (0..2i64)
        .map(|shard| Partial {
            streams: (0..10i64)
                .map(|s| PartialStream {
                    labels: Labels::from_pairs([("app", format!("app-{shard}-{s}"))]),
                    entries: (0..500i64)
                        .rev()
                        .map(|i| {
                            let ts = 1_700_000_000_000_000_000 + i * 1_000_000 + s * 7 + shard;
                            (
                                ts,
                                format!("line {i} of stream {s}"),
                                Vec::new(),
                                Vec::new(),
                            )
                        })
                        .collect(),
                })
                .collect(),
        })
        .collect()
}

fn merge(c: &mut Criterion) {
    let limit = 5000;
    let input = two_partials();
    let mut g = c.benchmark_group("query_merge");
    g.throughput(Throughput::Elements(limit as u64));
    g.bench_function("two_partials_5000_each", |b| {
        b.iter_batched(
            || input.clone(),
            |p| black_box(merge_partials(p, Direction::Backward, limit)),
            criterion::BatchSize::LargeInput,
        )
    });
    g.finish();
}

#[path = "common/criterion_config.rs"]
mod criterion_config;
use criterion_config::config;

criterion_group! {
    name = benches;
    config = config();
    targets = parse, line_filters, merge
}
criterion_main!(benches);

//! The memory budget on the real binary. A server given a small `--memory-max` takes a
//! bounded firehose of Loki pushes of real lines across many streams, while it seals,
//! compacts and answers needle queries (which read part metadata and bloom filters through
//! the bounded part cache),
//! and its peak resident memory stays within the budget plus a stated slack; every
//! acknowledged line is then found. `/metrics` shows the budget and its use. A budget the
//! server cannot keep refuses the start, by name.
//!
//! The bound is on memory, not time: the firehose is as fast as the machine allows and the
//! assertion holds at any speed.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::http::request;
use common::loki::{metric_sum, now_ns, parse_metrics, push_until_acknowledged};
use common::{Server, ServerOptions, TestDir};
use serde_json::json;

/// The budget given to the server (two cores: the least they need is about 200 MiB).
const MEMORY_MAX_MIB: u64 = 256;
/// What the process may hold beyond the budget: the budget counts what the data path holds
/// (heads at their worst, requests, caches, a merge), and allocator fragmentation and the
/// test build's unoptimized code sit on top of it.
const SLACK_MIB: u64 = 32;
const SENDERS: usize = 4;
const BATCHES_PER_SENDER: usize = 200;
const LINES_PER_BATCH: usize = 1000;
/// Streams the firehose spreads over, so that many heads grow at once and the heads budget,
/// not the per-stream seal size, decides when they are sealed.
const STREAMS: usize = 2000;
const STREAMS_PER_BATCH: usize = 50;
const CORPUS: &[&str] = &[
    "Android_2k.log",
    "Apache_2k.log",
    "HDFS_2k.log",
    "HPC_2k.log",
    "Hadoop_2k.log",
    "Linux_2k.log",
    "OpenSSH_2k.log",
    "OpenStack_2k.log",
    "Spark_2k.log",
    "Zookeeper_2k.log",
];

fn corpus() -> Option<Vec<String>> {
    let mut all = Vec::new();
    for f in CORPUS {
        all.extend(common::tools::corpus_lines(f)?);
    }
    Some(all)
}

#[test]
fn peak_memory_stays_within_a_small_budget_under_a_firehose_of_many_streams() {
    let Some(lines) = corpus() else { return };
    let lines = Arc::new(lines);
    let dir = TestDir::new("memory-budget");
    let options = ServerOptions {
        cores: 2,
        syslog: false,
        extra_args: vec!["--memory-max".into(), format!("{MEMORY_MAX_MIB}MiB")],
        ..ServerOptions::default()
    };
    let server = Server::start_with(&dir, &options);
    let metrics = parse_metrics(&server.metrics());
    assert_eq!(
        metric_sum(&metrics, "shardlog_memory_max_bytes", &[]),
        (MEMORY_MAX_MIB << 20) as f64
    );
    for share in [
        "heads",
        "requests",
        "queries",
        "part_cache",
        "compaction",
        "fingerprints",
    ] {
        assert!(
            metric_sum(&metrics, "shardlog_memory_budget_bytes", &[("use", share)]) > 0.0,
            "no budget for {share}"
        );
    }

    let base = now_ns() - 3_600_000_000_000;
    let acknowledged = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let senders: Vec<_> = (0..SENDERS)
        .map(|sender| {
            let (lines, acknowledged, addr) = (Arc::clone(&lines), Arc::clone(&acknowledged), server.http);
            std::thread::spawn(move || {
                for batch in 0..BATCHES_PER_SENDER {
                    let n = (sender * BATCHES_PER_SENDER + batch) * LINES_PER_BATCH;
                    let streams: Vec<_> = (0..STREAMS_PER_BATCH)
                        .map(|k| {
                            let stream = (n / LINES_PER_BATCH * STREAMS_PER_BATCH + k) % STREAMS;
                            let per = LINES_PER_BATCH / STREAMS_PER_BATCH;
                            let values: Vec<_> = (0..per)
                                .map(|i| {
                                    let at = n + k * per + i;
                                    // Every line its own timestamp: none is a duplicate.
                                    json!([(base + at as i64).to_string(), lines[at % lines.len()]])
                                })
                                .collect();
                            json!({"stream": {"job": "firehose", "s": stream.to_string()}, "values": values})
                        })
                        .collect();
                    let body = json!({ "streams": streams }).to_string();
                    push_until_acknowledged(addr, body.as_bytes());
                    acknowledged.fetch_add(LINES_PER_BATCH as u64, Ordering::Relaxed);
                }
            })
        })
        .collect();
    // Needle queries meanwhile: they read bloom filters through the cache.
    let querier = {
        let (done, addr) = (Arc::clone(&done), server.http);
        let start = (base - 1_000_000_000).to_string();
        std::thread::spawn(move || {
            let mut answered = 0;
            while !done.load(Ordering::Relaxed) {
                let path = common::loki::path_with_query(
                    "/loki/api/v1/query_range",
                    &[
                        (
                            "query",
                            "{job=\"firehose\"} |= \"blk_-1608999687919862906\"",
                        ),
                        ("limit", "100"),
                        ("start", &start),
                        ("end", &(now_ns() + 1).to_string()),
                    ],
                );
                let r = request(addr, "GET", &path, &[], &[]).expect("a query");
                assert_eq!(r.status, 200, "{}", r.text());
                answered += 1;
                std::thread::sleep(Duration::from_millis(200));
            }
            answered
        })
    };
    for s in senders {
        s.join().expect("a sender panicked");
    }
    done.store(true, Ordering::Relaxed);
    let answered = querier.join().expect("the querier panicked");
    assert!(answered > 0);
    let memory = server.memory();
    let total = acknowledged.load(Ordering::Relaxed);
    assert_eq!(
        total,
        (SENDERS * BATCHES_PER_SENDER * LINES_PER_BATCH) as u64
    );

    let metrics = parse_metrics(&server.metrics());
    let held = |share: &str| metric_sum(&metrics, "shardlog_memory_used_bytes", &[("use", share)]);
    eprintln!(
        "{total} lines acknowledged, {answered} queries answered; resident {} MiB, peak {} MiB \
         of a {MEMORY_MAX_MIB} MiB budget; held now: heads {:.0} KiB, part cache {:.0} KiB, \
         resident in parts {:.0} KiB; parts {}",
        memory.rss >> 20,
        memory.peak >> 20,
        held("heads") / 1024.0,
        held("part_cache") / 1024.0,
        held("parts") / 1024.0,
        metric_sum(&metrics, "shardlog_parts", &[]),
    );
    // Parts keep no metadata resident: what they hold grows with neither lines nor parts
    // (label names and index directories), and what is read of them is in the part cache,
    // within its share of the budget.
    let budget =
        |share: &str| metric_sum(&metrics, "shardlog_memory_budget_bytes", &[("use", share)]);
    assert!(
        held("part_cache") <= budget("part_cache"),
        "the part cache holds {} bytes over its share of {}",
        held("part_cache"),
        budget("part_cache")
    );
    // The duplicate check remembers the pushed lines it sealed within its own share.
    assert!(held("fingerprints") > 0.0, "no fingerprints were kept");
    assert!(
        held("fingerprints") <= budget("fingerprints"),
        "the fingerprints hold {} bytes over their share of {}",
        held("fingerprints"),
        budget("fingerprints")
    );
    assert!(
        held("parts") < (1 << 20) as f64,
        "parts keep {} bytes resident",
        held("parts")
    );
    assert!(
        memory.peak <= (MEMORY_MAX_MIB + SLACK_MIB) << 20,
        "peak resident memory {} MiB is over the budget of {MEMORY_MAX_MIB} MiB plus \
         {SLACK_MIB} MiB of slack",
        memory.peak >> 20
    );
    // Every acknowledged line is stored, once.
    let found = server.wait_for_count("{job=\"firehose\"}", total, 60_000);
    assert_eq!(found, total);
}

/// Runs `serve` on one core with `extra` flags, to its exit (a refusal exits at once).
fn serve_to_exit(extra: &[&str]) -> (std::process::ExitStatus, String) {
    let dir = TestDir::new("memory-budget-refused");
    let data = dir.data_dir();
    let http = format!("127.0.0.1:{}", common::server::free_tcp_port());
    let mut args = vec![
        "serve",
        "--data-dir",
        data.to_str().unwrap(),
        "--http-addr",
        &http,
        "--syslog-tcp-addr",
        "",
        "--syslog-udp-addr",
        "",
        "--cores",
        "1",
    ];
    args.extend_from_slice(extra);
    common::server::run_to_exit(&args, 10_000)
}

#[test]
fn a_budget_that_cannot_be_kept_refuses_the_start_by_name() {
    let (status, output) = serve_to_exit(&["--memory-max", "64MiB"]);
    assert_eq!(status.code(), Some(2), "{output}");
    assert!(output.contains("memory_max"), "{output}");
    // Explicit shares that do not fit are named too.
    let (status, output) =
        serve_to_exit(&["--memory-max", "256MiB", "--heads-bytes-max", "512MiB"]);
    assert_eq!(status.code(), Some(2), "{output}");
    assert!(output.contains("heads_bytes_max"), "{output}");
}

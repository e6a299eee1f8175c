//! Compaction and retention on the real binary: small parts of a partition are merged into
//! one with every line still found once; partitions older than `--retention` are dropped
//! and counted; `--retention-max-bytes` drops the oldest partitions first.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::loki::{metric_sum, parse_metrics};
use common::{Server, ServerOptions, TestDir, now_ns};
use serde_json::json;

const DAY_NS: i64 = 86_400_000_000_000;

fn options(extra: &[&str]) -> ServerOptions {
    let mut extra_args: Vec<String> = ["--seal-age", "300ms", "--seal-bytes", "65536"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    extra_args.extend(extra.iter().map(|s| s.to_string()));
    ServerOptions {
        cores: 1,
        syslog: false,
        extra_args,
        ..ServerOptions::default()
    }
}

/// As [`options`], with cold rewrites and bundling off: the retention test counts partition
/// directories, and a cold step would bundle its 40-day-old and 2-day-old partitions (both
/// cold and sparse) into one before or between its phases.
fn retention_options(extra: &[&str]) -> ServerOptions {
    let mut args = vec!["--compaction-cold-after", "off"];
    args.extend_from_slice(extra);
    options(&args)
}

fn corpus(file: &str, n: usize) -> Vec<String> {
    let mut lines = common::tools::corpus_lines(file).expect("the loghub corpus");
    lines.truncate(n);
    lines
}

fn push(server: &Server, app: &str, base: i64, lines: &[String]) {
    let values: Vec<_> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| json!([(base + i as i64 * 1_000_000).to_string(), l]))
        .collect();
    server.push_json_ok(&json!({"streams": [{"stream": {"app": app}, "values": values}]}));
}

fn metric(server: &Server, name: &str) -> f64 {
    metric_sum(&parse_metrics(&server.metrics()), name, &[])
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Part files per partition directory of shard 0.
fn partitions(data: &Path) -> Vec<(String, Vec<PathBuf>)> {
    let root = data.join("shards/shard-0000/parts");
    let mut out: Vec<(String, Vec<PathBuf>)> = std::fs::read_dir(&root)
        .into_iter()
        .flatten()
        .flatten()
        .map(|d| {
            let mut files: Vec<PathBuf> = std::fs::read_dir(d.path())
                .into_iter()
                .flatten()
                .flatten()
                .map(|f| f.path())
                .filter(|p| p.extension().is_some_and(|e| e == "part"))
                .collect();
            files.sort();
            (d.file_name().to_string_lossy().into_owned(), files)
        })
        .collect();
    out.sort();
    out
}

/// Every line of `app` in `[start, end)`, forward.
fn lines(server: &Server, app: &str, start: i64, end: i64) -> Vec<String> {
    let start = start.to_string();
    let end = end.to_string();
    let body = server.query_range(&[
        ("query", &format!("{{app=\"{app}\"}}")),
        ("start", &start),
        ("end", &end),
        ("limit", "5000"),
        ("direction", "forward"),
    ]);
    body["data"]["result"]
        .as_array()
        .expect("result")
        .iter()
        .flat_map(|s| s["values"].as_array().expect("values").clone())
        .map(|v| v[1].as_str().expect("line").to_string())
        .collect()
}

/// `label/app/values` over `[start, end)`.
fn app_values(server: &Server, start: i64, end: i64) -> Vec<String> {
    let (start, end) = (start.to_string(), end.to_string());
    let path = common::loki::path_with_query(
        "/loki/api/v1/label/app/values",
        &[("start", &start), ("end", &end)],
    );
    let r = server.get(&path);
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|v| v.as_str().expect("a value").to_string())
        .collect()
}

#[test]
fn small_parts_are_compacted_and_every_line_stays_once() {
    let dir = TestDir::new("storage-compaction");
    let data = dir.data_dir();
    let server = Server::start_with(&dir, &options(&[]));
    let all = corpus("HDFS_2k.log", 1000);
    let base = now_ns() - 3_600_000_000_000;
    // Five pushes, each sealed on its own: five small parts of today's partition.
    for (k, chunk) in all.chunks(200).enumerate() {
        push(&server, "hdfs", base + k as i64 * 1_000_000_000, chunk);
        let want = (k + 1) as f64;
        wait_for("a seal", || {
            metric(&server, "shardlog_parts_written_total") >= want
                || metric(&server, "shardlog_compactions_total") >= 1.0
        });
    }
    // A compaction merges the small parts there are when it runs: all five, or the first
    // four when the fifth is sealed after it (that one is too few to merge alone).
    wait_for("a compaction", || {
        metric(&server, "shardlog_compactions_total") >= 1.0
            && partitions(&data).iter().all(|(_, f)| f.len() <= 2)
    });
    assert!(metric(&server, "shardlog_compacted_parts_total") >= 4.0);
    let got = lines(&server, "hdfs", base - 1, now_ns() + 1);
    assert_eq!(got, all, "every line once, in order, after compaction");
}

#[test]
fn retention_drops_old_partitions_by_age_then_by_size() {
    let dir = TestDir::new("storage-retention");
    let data = dir.data_dir();
    let now = now_ns();
    let old = now - 40 * DAY_NS;
    let two_days = now - 2 * DAY_NS;
    let recent = now - 3_600_000_000_000;
    let lines_of = corpus("OpenSSH_2k.log", 300);
    {
        let mut server = Server::start_with(&dir, &retention_options(&[]));
        push(&server, "old", old, &lines_of);
        push(&server, "twodays", two_days, &lines_of);
        push(&server, "recent", recent, &lines_of);
        wait_for("three partitions", || partitions(&data).len() == 3);
        server.terminate_ok();
    }

    // Age: 30 days drops the 40-day-old partition only, and counts it.
    {
        let mut server = Server::start_with(&dir, &retention_options(&["--retention", "30d"]));
        wait_for("the age rule", || {
            metric(&server, "shardlog_retention_dropped_entries_total") >= 300.0
        });
        assert_eq!(
            metric(&server, "shardlog_retention_dropped_parts_total"),
            1.0
        );
        assert_eq!(partitions(&data).len(), 2);
        assert!(lines(&server, "old", old - 1, old + DAY_NS).is_empty());
        // The dropped stream is gone from the label index too.
        assert_eq!(
            app_values(&server, old - DAY_NS, now + 1),
            ["recent", "twodays"]
        );
        assert_eq!(lines(&server, "recent", recent - 1, now + 1), lines_of);
        server.terminate_ok();
    }

    // Size: a cap that fits only the newest partition drops the older one first.
    let newest: u64 = partitions(&data)
        .last()
        .expect("a partition")
        .1
        .iter()
        .map(|p| std::fs::metadata(p).expect("part").len())
        .sum();
    let cap = newest.to_string();
    let server = Server::start_with(&dir, &retention_options(&["--retention-max-bytes", &cap]));
    wait_for("the size rule", || partitions(&data).len() == 1);
    assert!(lines(&server, "twodays", two_days - 1, two_days + DAY_NS).is_empty());
    assert_eq!(lines(&server, "recent", recent - 1, now + 1), lines_of);
    assert!(metric(&server, "shardlog_retention_dropped_bytes_total") > 0.0);
}

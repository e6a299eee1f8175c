//! Rot in sealed part files, on the real binary: a flipped byte in a block fails the query
//! that needs it with the file and offset, the part is quarantined and counted, and the
//! server keeps serving every other part; a part whose footer was overwritten is found at
//! start-up, quarantined, and the server starts anyway.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::loki::{metric_sum, parse_metrics};
use common::{Server, ServerOptions, TestDir, now_ns};
use serde_json::json;

const LINES: usize = 300;

fn options() -> ServerOptions {
    ServerOptions {
        cores: 1,
        extra_args: vec![
            "--seal-age".into(),
            "500ms".into(),
            "--seal-bytes".into(),
            "65536".into(),
        ],
        ..ServerOptions::default()
    }
}

fn corpus_lines(file: &str) -> Vec<String> {
    let mut lines = common::tools::corpus_lines(file).expect("the loghub corpus");
    lines.truncate(LINES);
    lines
}

fn push(server: &Server, app: &str, lines: &[String]) {
    let base = now_ns() - 60_000_000_000;
    let values: Vec<_> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| json!([(base + i as i64).to_string(), l]))
        .collect();
    server.push_json_ok(&json!({"streams": [{"stream": {"app": app}, "values": values}]}));
}

/// Part files of the store of shard 0, sorted by name (ids are given in order).
fn parts(data: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let root = data.join("shards/shard-0000/parts");
    for day in std::fs::read_dir(&root).into_iter().flatten().flatten() {
        for f in std::fs::read_dir(day.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            if f.path().extension().is_some_and(|e| e == "part") {
                out.push(f.path());
            }
        }
    }
    out.sort();
    out
}

fn wait_for_parts(data: &Path, n: usize) -> Vec<PathBuf> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let p = parts(data);
        if p.len() >= n {
            return p;
        }
        assert!(Instant::now() < deadline, "no {n} sealed parts after 20 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn metric(server: &Server, name: &str) -> f64 {
    metric_sum(&parse_metrics(&server.metrics()), name, &[])
}

fn count(server: &Server, app: &str) -> usize {
    server.query_all(&format!("{{app=\"{app}\"}}"), false).len()
}

#[test]
fn a_rotten_block_fails_its_query_and_is_quarantined_while_others_serve() {
    let dir = TestDir::new("storage-corruption");
    let data = dir.data_dir();
    let mut server = Server::start_with(&dir, &options());
    push(&server, "linux", &corpus_lines("Linux_2k.log"));
    let first = wait_for_parts(&data, 1);
    push(&server, "ssh", &corpus_lines("OpenSSH_2k.log"));
    let all = wait_for_parts(&data, 2);
    assert_eq!(count(&server, "linux"), LINES);
    assert_eq!(count(&server, "ssh"), LINES);

    // Flip one byte inside the first block of the part holding `linux` (the header is 64
    // bytes; the block starts right after it).
    let linux_part = first[0].clone();
    let mut bytes = std::fs::read(&linux_part).unwrap();
    bytes[64 + 40] ^= 0x10;
    std::fs::write(&linux_part, &bytes).unwrap();

    let start = (now_ns() - 3_600_000_000_000).to_string();
    let end = (now_ns() + 60_000_000_000).to_string();
    let r = server.query_range_response(
        &[
            ("query", "{app=\"linux\"}"),
            ("start", &start),
            ("end", &end),
            ("limit", "1000"),
        ],
        &[],
    );
    assert_eq!(
        r.status,
        500,
        "a corrupt block must fail the query: {}",
        r.text()
    );
    let text = r.text();
    assert!(
        text.contains(
            &linux_part
                .file_name()
                .unwrap()
                .to_string_lossy()
                .to_string()
        ) && text.contains("offset"),
        "the error names the file and offset: {text}"
    );

    // The part goes to quarantine and is counted; the other part is still served.
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(&server, "shardlog_quarantined_parts_total") < 1.0 {
        assert!(Instant::now() < deadline, "the part was not quarantined");
        std::thread::sleep(Duration::from_millis(20));
    }
    let quarantine = data.join("shards/shard-0000/quarantine");
    assert_eq!(std::fs::read_dir(&quarantine).unwrap().count(), 1);
    assert!(!linux_part.exists());
    assert_eq!(count(&server, "ssh"), LINES);
    assert_eq!(count(&server, "linux"), 0);

    // Overwrite the footer of the other part while stopped: start-up finds it, moves it
    // aside, says where, and serves.
    server.terminate_ok();
    let ssh_part = all
        .iter()
        .find(|p| **p != linux_part)
        .expect("a second part")
        .clone();
    let mut bytes = std::fs::read(&ssh_part).unwrap();
    let n = bytes.len();
    bytes[n - 4096..].fill(0);
    std::fs::write(&ssh_part, &bytes).unwrap();
    let server = Server::start_with(&dir, &options());
    assert_eq!(metric(&server, "shardlog_quarantined_parts_total"), 1.0);
    assert!(!ssh_part.exists());
    assert_eq!(std::fs::read_dir(&quarantine).unwrap().count(), 2);
    let out = server.output();
    assert!(
        out.contains(&ssh_part.file_name().unwrap().to_string_lossy().to_string())
            && out.contains("offset"),
        "start-up names the corrupt part and the offset: {out}"
    );
    assert_eq!(count(&server, "ssh"), 0);
}

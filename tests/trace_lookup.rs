//! Trace lookup on the real binary: entries in the problem statement's shape
//! (`{"timestamp","service_name","log_level","message","trace_id"}`) go in through
//! `/insert/jsonline` with `trace_id` kept as structured metadata, and
//! `{service_name=~".+"} | trace_id="..."` returns exactly the lines that carry the id,
//! wherever they are: live heads, sealed parts, compacted parts, on both cores, after a
//! `kill -9` and restart, and across two tenants in one multi-tenant read. The response's
//! `stats` show the metadata index at work (blocks skipped, few lines read), and a part whose
//! index is damaged fails the query with the file and offset, and is quarantined.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::loki::{metric_sum, parse_metrics};
use common::{Server, ServerOptions, TestDir, now_ns};
use serde_json::Value;

/// Lines per trace, as the issue's figures take them.
const LINES_PER_TRACE: usize = 10;
/// Services (streams): each trace's lines go to one service.
const SERVICES: usize = 12;
/// Traces per batch.
const TRACES_PER_BATCH: usize = 150;
const TENANTS: [&str; 2] = ["team-a", "team-b"];

/// Small sealing thresholds: each batch is sealed on its own within the test's wait.
const SEAL_SOON: [&str; 4] = ["--seal-age", "300ms", "--seal-bytes", "65536"];
/// Thresholds no batch reaches: lines stay in heads.
const SEAL_LATE: [&str; 4] = ["--seal-age", "1h", "--seal-bytes", "16MiB"];

fn options(extra: &[&str]) -> ServerOptions {
    options_sealing(SEAL_SOON, extra)
}

fn options_sealing(seal: [&str; 4], extra: &[&str]) -> ServerOptions {
    let extra_args: Vec<String> = seal.iter().chain(extra).map(|s| s.to_string()).collect();
    ServerOptions {
        syslog: false,
        extra_args,
        ..ServerOptions::default()
    }
}

/// A small xorshift generator: the same ids on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// What was sent: per tenant and trace id, its (timestamp, line) pairs.
#[derive(Default)]
struct Sent {
    traces: BTreeMap<(String, String), BTreeSet<(i64, String)>>,
}

impl Sent {
    fn ids(&self, tenant: &str) -> Vec<String> {
        self.traces
            .keys()
            .filter(|(t, _)| t == tenant)
            .map(|(_, id)| id.clone())
            .collect()
    }
}

/// Pushes one batch of traces to `tenant` as JSON lines, messages from the corpus.
fn push_batch(server: &Server, tenant: &str, rng: &mut Rng, base: i64, sent: &mut Sent) {
    let corpus = common::tools::corpus_lines("OpenSSH_2k.log").expect("the loghub corpus");
    let mut body = String::new();
    for t in 0..TRACES_PER_BATCH {
        let id = format!("{:016x}", rng.next());
        let service = format!("svc-{:02}", rng.next() as usize % SERVICES);
        for k in 0..LINES_PER_TRACE {
            let ts = base + (t * LINES_PER_TRACE + k) as i64 * 1_000_000;
            let message = &corpus[(rng.next() as usize) % corpus.len()];
            let level = ["INFO", "WARN", "ERROR"][k % 3];
            let object = serde_json::json!({
                "timestamp": ts,
                "service_name": service,
                "log_level": level,
                "message": message,
                "trace_id": id,
            });
            body.push_str(&object.to_string());
            body.push('\n');
            sent.traces
                .entry((tenant.to_string(), id.clone()))
                .or_default()
                .insert((ts, message.clone()));
        }
    }
    let r = server.post(
        "/insert/jsonline",
        &[("X-Scope-OrgID", tenant)],
        body.as_bytes(),
    );
    assert!(
        r.status == 200 || r.status == 204,
        "{}: {}",
        r.status,
        r.text()
    );
}

fn query(server: &Server, org: &str, q: &str) -> (u16, Value) {
    let start = (now_ns() - 48 * 3_600_000_000_000).to_string();
    let end = (now_ns() + 3_600_000_000_000).to_string();
    let r = server.query_range_response(
        &[
            ("query", q),
            ("start", &start),
            ("end", &end),
            ("limit", "1000"),
            ("direction", "forward"),
        ],
        &[("X-Scope-OrgID", org)],
    );
    let status = r.status;
    let body = if status == 200 {
        r.json()
    } else {
        Value::String(r.text())
    };
    (status, body)
}

fn lines_of(body: &Value) -> BTreeSet<(i64, String)> {
    body["data"]["result"]
        .as_array()
        .expect("result")
        .iter()
        .flat_map(|s| s["values"].as_array().expect("values").clone())
        .map(|v| {
            let ts: i64 = v[0].as_str().expect("ts").parse().expect("ns");
            (ts, v[1].as_str().expect("line").to_string())
        })
        .collect()
}

fn stat(body: &Value, path: &[&str]) -> u64 {
    let mut v = &body["data"]["stats"];
    for p in path {
        v = &v[*p];
    }
    v.as_u64()
        .unwrap_or_else(|| panic!("stats {path:?} in {}", body["data"]["stats"]))
}

/// Every trace of `sample` ids (all tenants) is found exactly, alone, by id; and ids never
/// sent find nothing. Returns the summed stats of blocks skipped by the metadata index.
fn check_lookups(server: &Server, sent: &Sent, what: &str) -> u64 {
    let mut skipped = 0;
    for tenant in TENANTS {
        for (n, id) in sent.ids(tenant).iter().enumerate().step_by(23) {
            let want = &sent.traces[&(tenant.to_string(), id.clone())];
            let q = format!(r#"{{service_name=~".+"}} | trace_id="{id}""#);
            let (status, body) = query(server, tenant, &q);
            assert_eq!(status, 200, "{what}: {q}: {body}");
            assert_eq!(&lines_of(&body), want, "{what}: {q} as {tenant}");
            skipped += stat(&body, &["index", "blocksSkippedByMetadataIndex"]);
            // Only the trace's lines, or a few more, are visited in heads.
            let heads = stat(&body, &["querier", "store", "chunk", "headChunkLines"]);
            assert!(
                heads <= 4 * LINES_PER_TRACE as u64,
                "{what}: {heads} head lines visited for one trace"
            );
            // Combined with a line filter and a parser, the same lines (or none).
            if n % 2 == 0 {
                let first = want.iter().next().expect("a line");
                let word = first.1.split_whitespace().next().expect("a word");
                let q = format!(r#"{{service_name=~".+"}} |= "{word}" | json | trace_id="{id}""#);
                let (status, body) = query(server, tenant, &q);
                assert_eq!(status, 200, "{what}: {q}: {body}");
                let filtered: BTreeSet<_> = want
                    .iter()
                    .filter(|(_, l)| l.contains(word))
                    .cloned()
                    .collect();
                assert_eq!(lines_of(&body), filtered, "{what}: {q}");
            }
        }
        let (status, body) = query(
            server,
            tenant,
            r#"{service_name=~".+"} | trace_id="0000000000000000""#,
        );
        assert_eq!(status, 200);
        assert!(lines_of(&body).is_empty(), "{what}: an unknown id");
    }
    // One multi-tenant read finds each tenant's trace.
    let org = TENANTS.join("|");
    for tenant in TENANTS {
        let id = &sent.ids(tenant)[0];
        let q = format!(r#"{{service_name=~".+"}} | trace_id="{id}""#);
        let (status, body) = query(server, &org, &q);
        assert_eq!(status, 200, "{what}: {q} as {org}: {body}");
        assert_eq!(
            &lines_of(&body),
            &sent.traces[&(tenant.to_string(), id.clone())],
            "{what}: {q} as {org}"
        );
    }
    skipped
}

fn metric(server: &Server, name: &str) -> f64 {
    metric_sum(&parse_metrics(&server.metrics()), name, &[])
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn part_files(data: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![data.join("shards")];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() && !p.ends_with("quarantine") {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "part") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn a_trace_is_found_exactly_in_heads_parts_compacted_parts_and_after_a_restart() {
    let dir = TestDir::new("trace-lookup");
    let mut server = Server::start_with(&dir, &options(&["--multi-tenant-queries"]));
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    let mut sent = Sent::default();
    let base = now_ns() - 3_600_000_000_000;

    // Batches sealed one by one: several small parts per shard, then compacted.
    for b in 0..5 {
        for (i, tenant) in TENANTS.iter().enumerate() {
            let at = base + (b * 2 + i as i64) * 60_000_000_000;
            push_batch(&server, tenant, &mut rng, at, &mut sent);
        }
        let want = (b + 1) as f64;
        wait_for("a seal", || {
            metric(&server, "shardlog_parts_written_total") >= want
        });
    }
    wait_for("a compaction", || {
        metric(&server, "shardlog_compactions_total") >= 1.0
    });
    let skipped = check_lookups(&server, &sent, "sealed and compacted parts");
    assert!(skipped > 0, "the metadata index skipped no block");
    assert!(
        metric(
            &server,
            "shardlog_query_blocks_skipped_by_metadata_index_total"
        ) > 0.0
    );

    // Lines still in heads, found by the heads' own index, beside the parts.
    let slow = options_sealing(SEAL_LATE, &["--multi-tenant-queries"]);
    server.terminate_ok();
    let mut server = Server::start_with(&dir, &slow);
    for (i, tenant) in TENANTS.iter().enumerate() {
        let at = base + (20 + i as i64) * 60_000_000_000;
        push_batch(&server, tenant, &mut rng, at, &mut sent);
    }
    let (_, body) = query(
        &server,
        TENANTS[0],
        &format!(
            r#"{{service_name=~".+"}} | trace_id="{}""#,
            sent.ids(TENANTS[0]).last().unwrap()
        ),
    );
    assert!(stat(&body, &["index", "headLinesSkippedByMetadataIndex"]) > 0);
    check_lookups(&server, &sent, "heads and parts");

    // kill -9: the heads come back from the WAL, and every trace is still exact.
    server.kill9();
    let server = Server::start_with(&dir, &slow);
    check_lookups(&server, &sent, "after kill -9 and restart");
}

#[test]
fn a_damaged_metadata_index_fails_the_query_with_its_file_and_offset() {
    let dir = TestDir::new("trace-lookup-corrupt");
    let mut server = Server::start_with(&dir, &options(&[]));
    let mut rng = Rng(0xfeed_0042);
    let mut sent = Sent::default();
    push_batch(
        &server,
        TENANTS[0],
        &mut rng,
        now_ns() - 600_000_000_000,
        &mut sent,
    );
    wait_for("a seal", || {
        metric(&server, "shardlog_parts_written_total") >= 1.0
    });
    server.terminate_ok();
    // The footer says where the index's directory is: flip its first byte.
    let part = part_files(&dir.data_dir())
        .into_iter()
        .next()
        .expect("a part file");
    let mut bytes = std::fs::read(&part).unwrap();
    let footer = bytes.len() - 96;
    let le64 = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap());
    let le32 = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
    assert!(
        le32(footer + 88) >= 3,
        "a format version with the metadata index"
    );
    let (pairs_offset, entries) = (le64(footer + 64), le32(footer + 72));
    assert!(entries > 0, "the part has a metadata index");
    let dir_offset = pairs_offset as usize + entries as usize * 8;
    bytes[dir_offset] ^= 0x40;
    std::fs::write(&part, &bytes).unwrap();

    let server = Server::start_with(&dir, &options(&[]));
    let id = &sent.ids(TENANTS[0])[0];
    let q = format!(r#"{{service_name=~".+"}} | trace_id="{id}""#);
    let (status, body) = query(&server, TENANTS[0], &q);
    assert_eq!(status, 500, "{body}");
    let text = body.to_string();
    assert!(
        text.contains(&part.display().to_string())
            || text.contains(part.file_name().unwrap().to_str().unwrap()),
        "{text}"
    );
    assert!(text.contains(&format!("offset {dir_offset}")), "{text}");
    assert!(text.contains("metadata index directory checksum"), "{text}");
    wait_for("the quarantine", || {
        metric(&server, "shardlog_quarantined_parts_total") >= 1.0
    });
}

/// After a parser the value may come from the line: a trace id written only inside the line's
/// JSON is found by `| json | trace_id=...` (and not without the parser), even when the line
/// writes it with an escape, so that it is not a substring of the line; the index skips only
/// the blocks where neither the metadata nor the line can give it.
#[test]
fn after_a_parser_a_trace_id_in_the_line_is_found_even_escaped() {
    let dir = TestDir::new("trace-lookup-parsed");
    let server = Server::start_with(&dir, &options(&[]));
    let base = now_ns() - 600_000_000_000;
    let plain = "7a7a7a7a00000001";
    let escaped = "7a7a7a7a00000002";
    // `\u0037` is `7`: the escaped id is not a substring of its line.
    let escaped_line = format!(
        r#"{{"trace_id":"\u0037{}","msg":"escaped"}}"#,
        &escaped[1..]
    );
    let lines = [
        (
            base,
            format!(r#"{{"trace_id":"{plain}","msg":"in the line"}}"#),
        ),
        (base + 1_000_000, escaped_line.clone()),
        (base + 2_000_000, r#"{"msg":"no trace"}"#.to_string()),
    ];
    let mut body = String::new();
    for (ts, message) in &lines {
        let object = serde_json::json!({
            "timestamp": ts,
            "service_name": "svc-json",
            "message": message,
        });
        body.push_str(&object.to_string());
        body.push('\n');
    }
    // Other traces, as metadata, in the same stream and in others.
    let mut rng = Rng(0x0bad_cafe);
    let mut sent = Sent::default();
    push_batch(&server, "fake", &mut rng, base + 10_000_000, &mut sent);
    let r = server.post("/insert/jsonline", &[], body.as_bytes());
    assert!(r.status == 200 || r.status == 204, "{}", r.text());
    wait_for("a seal", || {
        metric(&server, "shardlog_parts_written_total") >= 2.0
    });
    for (id, line) in [(plain, &lines[0].1), (escaped, &escaped_line)] {
        let q = format!(r#"{{service_name=~".+"}} | json | trace_id="{id}""#);
        let (status, body) = query(&server, "fake", &q);
        assert_eq!(status, 200, "{q}: {body}");
        let got: Vec<String> = lines_of(&body).into_iter().map(|(_, l)| l).collect();
        assert_eq!(got, vec![line.clone()], "{q}");
        let q = format!(r#"{{service_name=~".+"}} | trace_id="{id}""#);
        let (_, body) = query(&server, "fake", &q);
        assert!(lines_of(&body).is_empty(), "{q}: the id is not metadata");
    }
    // A trace sent as metadata is found after the parser too, and other blocks are skipped.
    let id = &sent.ids("fake")[0];
    let q = format!(r#"{{service_name=~".+"}} | json | trace_id="{id}""#);
    let (status, body) = query(&server, "fake", &q);
    assert_eq!(status, 200, "{q}: {body}");
    assert_eq!(
        &lines_of(&body),
        &sent.traces[&("fake".to_string(), id.clone())]
    );
    let skipped = stat(&body, &["index", "blocksSkippedByMetadataIndex"])
        + stat(&body, &["index", "blocksSkippedByBloom"]);
    assert!(skipped > 0, "{}", body["data"]["stats"]);
}

//! Loki pushes from real clients and hand-built bodies: curl with JSON (plain, gzip,
//! deflate), protobuf + snappy built here, the Python `python-logging-loki` handler, and
//! JSON lines. Every accepted push is read back exactly (lines, order, labels, structured
//! metadata); every malformed push is a 400 that stores nothing; an oversized one is a 413.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::Command;

use common::loki::{CATEGORIZE_LABELS, metric_sum, parse_metrics, path_with_query};
use common::proto::{EntryAdapter, PushRequest, StreamAdapter};
use common::tools::{python_venv, require_program, run_checked};
use common::{Entry, Server, TestDir, entries, labels, now_ns};
use serde_json::json;

fn curl_push(server: &Server, dir: &TestDir, body: &[u8], extra_headers: &[&str]) -> u16 {
    let body_path = dir.path().join("curl-body");
    std::fs::write(&body_path, body).expect("write curl body");
    let url = format!("http://{}/loki/api/v1/push", server.http);
    let mut command = Command::new("curl");
    command.args([
        "-sS",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-H",
        "Content-Type: application/json",
    ]);
    for header in extra_headers {
        command.args(["-H", header]);
    }
    command
        .arg("--data-binary")
        .arg(format!("@{}", body_path.display()))
        .arg(url);
    let output = run_checked(&mut command);
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .expect("curl prints the status code")
}

/// A JSON push body with two streams (one with structured metadata) and the entries it
/// should produce, as a categorized query returns them.
fn json_body(job: &str, base_ns: i64) -> (serde_json::Value, Vec<Entry>) {
    let mut want = Vec::new();
    let mut plain = Vec::new();
    let mut with_meta = Vec::new();
    for i in 0..50i64 {
        let ts = base_ns + i * 1000;
        if i % 5 == 0 {
            let line =
                format!("{job} entry {i} with metadata \"quoted\" and unicode \u{e9}\u{4e16}");
            let trace = format!("trace-{i}");
            with_meta.push(json!([ts.to_string(), line, {"trace_id": trace, "user": "u1"}]));
            want.push(Entry {
                ts,
                line,
                labels: labels(&[("job", job), ("kind", "meta")]),
                metadata: labels(&[("trace_id", &trace), ("user", "u1")]),
            });
        } else {
            let line = format!("{job} entry {i}\twith a tab");
            plain.push(json!([ts.to_string(), line]));
            want.push(Entry {
                ts,
                line,
                labels: labels(&[("job", job), ("kind", "plain")]),
                metadata: BTreeMap::new(),
            });
        }
    }
    let body = json!({"streams": [
        {"stream": {"job": job, "kind": "plain"}, "values": plain},
        {"stream": {"job": job, "kind": "meta"}, "values": with_meta},
    ]});
    want.sort_by_key(|e| e.ts);
    (body, want)
}

/// Reads `{job="..."}` back both ways: categorized (metadata apart) must equal `want`;
/// plain (Loki's default) folds the metadata into the stream labels.
fn assert_stored(server: &Server, job: &str, want: &[Entry]) {
    let query = format!(r#"{{job="{job}"}}"#);
    let got = server.query_all(&query, true);
    assert_eq!(got, want, "categorized read-back of {job}");
    let folded: Vec<Entry> = want
        .iter()
        .map(|e| {
            let mut labels = e.labels.clone();
            labels.extend(e.metadata.clone());
            Entry {
                labels,
                metadata: BTreeMap::new(),
                ..e.clone()
            }
        })
        .collect();
    assert_eq!(
        server.query_all(&query, false),
        folded,
        "plain read-back of {job}"
    );
}

#[test]
fn curl_json_plain_gzip_and_deflate() {
    if !require_program("curl", "apt-get install curl") {
        return;
    }
    let dir = TestDir::new("push-curl");
    let server = Server::start(&dir);
    let base = now_ns() - 600 * 1_000_000_000;

    let (body, want) = json_body("curl-plain", base);
    assert_eq!(
        curl_push(&server, &dir, body.to_string().as_bytes(), &[]),
        204
    );
    assert_stored(&server, "curl-plain", &want);

    let (body, want) = json_body("curl-gzip", base);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(body.to_string().as_bytes()).expect("gzip");
    let gz = gz.finish().expect("gzip finish");
    assert_eq!(
        curl_push(&server, &dir, &gz, &["Content-Encoding: gzip"]),
        204
    );
    assert_stored(&server, "curl-gzip", &want);

    // Loki reads `deflate` as a raw DEFLATE stream (Go's compress/flate).
    let (body, want) = json_body("curl-deflate", base);
    let mut deflate =
        flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    deflate
        .write_all(body.to_string().as_bytes())
        .expect("deflate");
    let deflate = deflate.finish().expect("deflate finish");
    assert_eq!(
        curl_push(&server, &dir, &deflate, &["Content-Encoding: deflate"]),
        204
    );
    assert_stored(&server, "curl-deflate", &want);

    // Tenants through curl too.
    let (body, _) = json_body("curl-tenant", base);
    assert_eq!(
        curl_push(
            &server,
            &dir,
            body.to_string().as_bytes(),
            &["X-Scope-OrgID: curl-team"]
        ),
        204
    );
    assert_eq!(
        server.index_stats(r#"{job="curl-tenant"}"#).entries,
        0,
        "pushed to another tenant"
    );
}

#[test]
fn protobuf_snappy() {
    let dir = TestDir::new("push-proto");
    let server = Server::start(&dir);
    let base = now_ns() - 600 * 1_000_000_000;
    let mut want = Vec::new();
    let mut web = Vec::new();
    let mut db = Vec::new();
    for i in 0..200i64 {
        let ts = base + i * 1_000_000;
        if i % 3 == 0 {
            let line = format!("db query {i} took {}ms", i * 7);
            db.push(EntryAdapter::new(
                ts,
                &line,
                &[("query_id", &format!("q{i}"))],
            ));
            want.push(Entry {
                ts,
                line,
                labels: labels(&[("job", "proto"), ("app", "db"), ("quote", "we\"ird")]),
                metadata: labels(&[("query_id", &format!("q{i}"))]),
            });
        } else {
            let line = format!("GET /item/{i} 200");
            web.push(EntryAdapter::new(ts, &line, &[]));
            want.push(Entry {
                ts,
                line,
                labels: labels(&[("job", "proto"), ("app", "web")]),
                metadata: BTreeMap::new(),
            });
        }
    }
    let request = PushRequest {
        streams: vec![
            StreamAdapter {
                labels: r#"{job="proto", app="web"}"#.into(),
                entries: web,
                hash: 0,
            },
            StreamAdapter {
                labels: r#"{app="db", job="proto", quote="we\"ird"}"#.into(),
                entries: db,
                hash: 0,
            },
        ],
    };
    let response = server.push_protobuf(&request);
    assert_eq!(response.status, 204, "protobuf push: {}", response.text());
    want.sort_by_key(|e| e.ts);
    assert_stored(&server, "proto", &want);
    let stats = server.index_stats(r#"{job="proto"}"#);
    assert_eq!((stats.streams, stats.entries), (2, 200));
}

#[test]
fn python_logging_loki() {
    let Some(python) = python_venv() else { return };
    let dir = TestDir::new("push-python");
    let server = Server::start(&dir);
    const RECORDS: usize = 300;
    let run_id = format!("{}", now_ns());
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python/push_logging_loki.py"
    );
    let url = format!("http://{}/loki/api/v1/push", server.http);
    run_checked(
        Command::new(python)
            .arg(script)
            .arg(&url)
            .arg(&run_id)
            .arg(RECORDS.to_string()),
    );

    let got = server.query_all(&format!(r#"{{app="pyclient", run="{run_id}"}}"#), false);
    assert_eq!(got.len(), RECORDS, "every record stored once");
    for (i, entry) in got.iter().enumerate() {
        assert_eq!(
            entry.line,
            format!("record {i} of {RECORDS} from python"),
            "in order"
        );
        let severity = if i % 2 == 0 { "info" } else { "warning" };
        assert_eq!(
            entry.labels,
            labels(&[
                ("app", "pyclient"),
                ("run", &run_id),
                ("severity", severity),
                ("logger", "shardlog-test")
            ])
        );
    }
    let stats = server.index_stats(&format!(r#"{{run="{run_id}"}}"#));
    assert_eq!((stats.streams, stats.entries), (2, RECORDS as u64));
}

#[test]
fn jsonline_insert() {
    let dir = TestDir::new("push-jsonline");
    let server = Server::start(&dir);
    let recent = now_ns() - 300 * 1_000_000_000;
    let recent_rfc = time::OffsetDateTime::from_unix_timestamp_nanos(recent as i128)
        .expect("time")
        .format(&time::format_description::well_known::Rfc3339)
        .expect("rfc3339");
    let body = format!(
        concat!(
            r#"{{"timestamp":"2024-01-01T12:00:00Z","service_name":"serviceA","log_level":"INFO","message":"user login ok","trace_id":"a1b2"}}"#,
            "\n",
            r#"{{"timestamp":"{}","service_name":"serviceA","log_level":"ERROR","message":"disk full","trace_id":"c3d4"}}"#,
            "\n"
        ),
        recent_rfc
    );
    let response = server.post(
        "/insert/jsonline",
        &[("Content-Type", "application/stream+json")],
        body.as_bytes(),
    );
    assert!(
        response.status == 200 || response.status == 204,
        "jsonline insert: {} {}",
        response.status,
        response.text()
    );

    let read = |start: &str, end: &str| {
        let response = server.query_range_response(
            &[
                ("query", r#"{service_name="serviceA"}"#),
                ("start", start),
                ("end", end),
                ("direction", "forward"),
            ],
            &[CATEGORIZE_LABELS],
        );
        assert_eq!(response.status, 200, "{}", response.text());
        entries(&response.json())
    };
    let seed_day = read("2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z");
    assert_eq!(seed_day.len(), 1, "the seed-shaped line: {seed_day:?}");
    let entry = &seed_day[0];
    assert_eq!(entry.ts, 1_704_110_400_000_000_000);
    assert_eq!(entry.line, "user login ok");
    // Every non-message field is kept, trace_id as metadata rather than a label (it is
    // unbounded); service_name is a stream label (the query above found it).
    let mut fields = entry.labels.clone();
    fields.extend(entry.metadata.clone());
    assert_eq!(
        fields,
        labels(&[
            ("service_name", "serviceA"),
            ("log_level", "INFO"),
            ("trace_id", "a1b2")
        ]),
        "fields of the stored entry: labels {:?} metadata {:?}",
        entry.labels,
        entry.metadata
    );
    assert_eq!(
        entry.metadata.get("trace_id").map(String::as_str),
        Some("a1b2")
    );

    let now_window = read(&(recent - 1).to_string(), &(now_ns() + 1).to_string());
    assert_eq!(now_window.len(), 1);
    assert_eq!(now_window[0].line, "disk full");
    assert_eq!(
        now_window[0].ts, recent,
        "RFC 3339 time kept to the nanosecond"
    );
}

fn ingested_lines(server: &Server) -> f64 {
    metric_sum(
        &parse_metrics(&server.metrics()),
        "shardlog_ingested_lines_total",
        &[],
    )
}

#[test]
fn malformed_pushes_are_400_and_store_nothing() {
    let dir = TestDir::new("push-malformed");
    let server = Server::start(&dir);
    let ts = (now_ns() - 60 * 1_000_000_000).to_string();
    let before = ingested_lines(&server);

    let json_cases: Vec<(&str, String)> = vec![
        ("not JSON", "this is not json".into()),
        (
            "truncated",
            r#"{"streams":[{"stream":{"job":"bad"},"values":[["1","x"]"#.into(),
        ),
        ("streams not an array", r#"{"streams":"none"}"#.into()),
        (
            "timestamp not a number",
            r#"{"streams":[{"stream":{"job":"bad"},"values":[["soon","x"]]}]}"#.into(),
        ),
        (
            "line not a string",
            format!(r#"{{"streams":[{{"stream":{{"job":"bad"}},"values":[["{ts}",42]]}}]}}"#),
        ),
        (
            "value not a pair",
            format!(r#"{{"streams":[{{"stream":{{"job":"bad"}},"values":[["{ts}"]]}}]}}"#),
        ),
        (
            "invalid label name",
            format!(r#"{{"streams":[{{"stream":{{"bad-name":"x"}},"values":[["{ts}","x"]]}}]}}"#),
        ),
        (
            "no labels",
            format!(r#"{{"streams":[{{"stream":{{}},"values":[["{ts}","x"]]}}]}}"#),
        ),
    ];
    for (what, body) in &json_cases {
        let response = server.post(
            "/loki/api/v1/push",
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        );
        assert_eq!(response.status, 400, "{what}: {}", response.text());
        assert!(!response.text().trim().is_empty(), "{what}: a 400 says why");
    }

    let valid = PushRequest {
        streams: vec![StreamAdapter {
            labels: r#"{job="bad"}"#.into(),
            entries: vec![EntryAdapter::new(now_ns(), "x", &[])],
            hash: 0,
        }],
    };
    let encoded = prost::Message::encode_to_vec(&valid);
    let snappy = |bytes: &[u8]| {
        snap::raw::Encoder::new()
            .compress_vec(bytes)
            .expect("snappy")
    };
    let bad_labels = PushRequest {
        streams: vec![StreamAdapter {
            labels: r#"{job="bad""#.into(),
            entries: vec![EntryAdapter::new(now_ns(), "x", &[])],
            hash: 0,
        }],
    };
    let proto_cases: Vec<(&str, Vec<u8>)> = vec![
        ("not snappy", b"\xff\xff\xff\xff garbage".to_vec()),
        ("protobuf without snappy", encoded.clone()),
        ("snappy of garbage", snappy(b"\x0a\xff\xff\xff\xff\x0f")),
        ("truncated protobuf", snappy(&encoded[..encoded.len() - 3])),
        (
            "unparsable label string",
            snappy(&prost::Message::encode_to_vec(&bad_labels)),
        ),
    ];
    for (what, body) in &proto_cases {
        let response = server.post(
            "/loki/api/v1/push",
            &[("Content-Type", "application/x-protobuf")],
            body,
        );
        assert_eq!(response.status, 400, "{what}: {}", response.text());
    }
    let response = server.post(
        "/loki/api/v1/push",
        &[
            ("Content-Type", "application/json"),
            ("Content-Encoding", "gzip"),
        ],
        br#"{"streams":[]}"#,
    );
    assert_eq!(
        response.status,
        400,
        "gzip header on a plain body: {}",
        response.text()
    );

    assert_eq!(server.index_stats(r#"{job="bad"}"#).entries, 0);
    assert_eq!(
        ingested_lines(&server),
        before,
        "a rejected push stored lines"
    );

    // Still healthy: a good push after all that works.
    let response = server
        .push_json(&json!({"streams": [{"stream": {"job": "good"}, "values": [[ts, "fine"]]}]}));
    assert_eq!(response.status, 204, "{}", response.text());
    assert_eq!(server.query_all(r#"{job="good"}"#, false).len(), 1);
}

/// Bigger than any sane push body limit (Loki's own is far lower), so the server must refuse
/// it rather than buffer it.
const OVERSIZE_BYTES: usize = 128 * 1024 * 1024;

#[test]
fn oversize_push_is_413() {
    let dir = TestDir::new("push-oversize");
    let server = Server::start(&dir);
    let ts = (now_ns() - 60 * 1_000_000_000).to_string();
    let prefix = format!(r#"{{"streams":[{{"stream":{{"job":"big"}},"values":[["{ts}",""#);
    let suffix = r#""]]}]}"#;
    let mut body = Vec::with_capacity(OVERSIZE_BYTES + 256);
    body.extend_from_slice(prefix.as_bytes());
    body.resize(OVERSIZE_BYTES, b'x');
    body.extend_from_slice(suffix.as_bytes());
    let response = common::http::request(
        server.http,
        "POST",
        "/loki/api/v1/push",
        &[("Content-Type", "application/json")],
        &body,
    )
    .expect("the server answers an oversized push");
    assert_eq!(response.status, 413, "{}", response.text());

    // The same through gzip: small on the wire, too large once inflated.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&body).expect("gzip");
    let gz = gz.finish().expect("gzip finish");
    assert!(gz.len() < 1024 * 1024);
    let response = server.post(
        "/loki/api/v1/push",
        &[
            ("Content-Type", "application/json"),
            ("Content-Encoding", "gzip"),
        ],
        &gz,
    );
    assert_eq!(response.status, 413, "gzip bomb: {}", response.text());
    assert_eq!(server.index_stats(r#"{job="big"}"#).entries, 0);

    // A plain request after the refusals still works.
    let ok = server
        .push_json(&json!({"streams": [{"stream": {"job": "small"}, "values": [[ts, "fits"]]}]}));
    assert_eq!(ok.status, 204, "{}", ok.text());
    let path = path_with_query("/loki/api/v1/labels", &[]);
    assert_eq!(server.get(&path).status, 200);
}

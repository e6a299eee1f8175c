//! OTLP logs over HTTP (`POST /otlp/v1/logs`) from the real OpenTelemetry Python SDK and its
//! OTLP/HTTP exporter (protobuf), and from curl (JSON, gzip): every record is read back over
//! LogQL with the stream labels Loki 3 gives it (`service_name`, `service_namespace`, ...),
//! its structured metadata (`severity_text`, `trace_id`, `span_id`, attributes) and its
//! `detected_level`. A record refused by a limit is reported in `partial_success` while the
//! others are stored; a malformed body is a 400 that stores nothing; a body of another type
//! is a 415.

mod common;

use std::io::Write;
use std::process::Command;

use common::loki::{CATEGORIZE_LABELS, metric_sum, parse_metrics};
use common::tools::{python_venv, require_program, run_checked};
use common::{Discovery, Entry, Server, ServerOptions, TestDir, now_ns};
use serde_json::json;

/// A server with the server's defaults for discovery (`service_name`, `detected_level`).
fn start(name: &str, extra: &[&str]) -> (TestDir, Server) {
    let dir = TestDir::new(name);
    let options = ServerOptions {
        syslog: false,
        discovery: Discovery::Defaults,
        extra_args: extra.iter().map(|s| s.to_string()).collect(),
        ..ServerOptions::default()
    };
    let server = Server::start_with(&dir, &options);
    (dir, server)
}

/// Posts `body` with curl to `/otlp/v1/logs`; the status and the answer's body.
fn curl_otlp(server: &Server, dir: &TestDir, body: &[u8], headers: &[&str]) -> (u16, Vec<u8>) {
    let body_path = dir.path().join("otlp-body");
    let out_path = dir.path().join("otlp-answer");
    std::fs::write(&body_path, body).expect("write the body");
    let mut command = Command::new("curl");
    command
        .args(["-sS", "-o"])
        .arg(&out_path)
        .args(["-w", "%{http_code}"]);
    for header in headers {
        command.args(["-H", header]);
    }
    command
        .arg("--data-binary")
        .arg(format!("@{}", body_path.display()))
        .arg(format!("http://{}/otlp/v1/logs", server.http));
    let output = run_checked(&mut command);
    let status = String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .expect("curl prints the status code");
    (status, std::fs::read(&out_path).unwrap_or_default())
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(bytes).expect("gzip");
    gz.finish().expect("gzip finish")
}

fn get<'a>(map: &'a std::collections::BTreeMap<String, String>, key: &str) -> &'a str {
    map.get(key)
        .map(String::as_str)
        .unwrap_or_else(|| panic!("no {key} in {map:?}"))
}

#[test]
fn the_opentelemetry_python_sdk_exports_and_every_record_reads_back() {
    let Some(python) = python_venv() else { return };
    let (_dir, server) = start("otlp-python", &[]);
    const RECORDS: usize = 40;
    let run_id = format!("run{}", now_ns());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/otlp_sdk_logs.py");
    let endpoint = format!("http://{}/otlp/v1/logs", server.http);
    let output = run_checked(
        Command::new(python)
            .arg(script)
            .arg(&endpoint)
            .arg(&run_id)
            .arg(RECORDS.to_string()),
    );
    let sent: Vec<serde_json::Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("the script prints JSON lines"))
        .collect();
    assert_eq!(sent.len(), RECORDS);

    let query = format!(r#"{{service_instance_id="{run_id}"}}"#);
    let got: Vec<Entry> = server.query_all(&query, true);
    assert_eq!(got.len(), RECORDS + 1, "every record stored once: {got:#?}");
    let (records, map_body) = got.split_at(RECORDS);
    for (i, (entry, sent)) in records.iter().zip(&sent).enumerate() {
        assert_eq!(
            entry.line,
            format!("otel record {i} of {RECORDS}"),
            "in order"
        );
        // The resource attributes of Loki's list are the stream's labels, nothing else.
        assert_eq!(
            entry.labels,
            common::labels(&[
                ("deployment_environment", "test"),
                ("service_instance_id", &run_id),
                ("service_name", "pyotel"),
                ("service_namespace", "shop"),
            ]),
            "record {i}"
        );
        let md = &entry.metadata;
        assert_eq!(get(md, "host_name"), "otel-host");
        assert_eq!(get(md, "scope_name"), "shardlog-test");
        assert!(md.contains_key("code_line_number"), "{md:?}");
        assert!(md.contains_key("observed_timestamp"), "{md:?}");
        if i % 2 == 0 {
            assert_eq!(get(md, "severity_text"), "INFO");
            assert_eq!(get(md, "severity_number"), "9");
            assert_eq!(get(md, "detected_level"), "info");
            assert_eq!(get(md, "order_id"), i.to_string());
            assert!(!md.contains_key("trace_id"), "{md:?}");
        } else {
            assert_eq!(get(md, "severity_text"), "WARN");
            assert_eq!(get(md, "severity_number"), "13");
            assert_eq!(get(md, "detected_level"), "warn");
            assert_eq!(get(md, "trace_id"), sent["trace_id"].as_str().unwrap());
            assert_eq!(get(md, "span_id"), sent["span_id"].as_str().unwrap());
            let flags: u32 = get(md, "flags").parse().expect("flags are a number");
            assert_eq!(flags & 1, 1, "a sampled span's trace flags");
        }
    }
    // A map body is stored as the collector's JSON text of it.
    assert_eq!(map_body[0].line, r#"{"event":"checkout","items":3}"#);

    // LogQL over the mapped names: a label, a metadata field, detected_level.
    let warn = server.query_all(
        &format!(
            r#"{{service_name="pyotel", service_instance_id="{run_id}"}} | detected_level="warn""#
        ),
        true,
    );
    assert_eq!(warn.len(), RECORDS / 2);
    let one_trace = sent[1]["trace_id"].as_str().unwrap();
    let traced = server.query_all(&format!(r#"{query} | trace_id="{one_trace}""#), true);
    assert_eq!(traced.len(), 1);
    assert_eq!(traced[0].line, format!("otel record 1 of {RECORDS}"));

    let metrics = parse_metrics(&server.metrics());
    assert_eq!(
        metric_sum(
            &metrics,
            "shardlog_ingested_lines_total",
            &[("protocol", "otlp")]
        ),
        (RECORDS + 1) as f64
    );
}

/// An OTLP/JSON body of records `lines` for `service`, as the JS exporter writes it.
fn json_body(service: &str, base_ns: i64, lines: &[&str]) -> serde_json::Value {
    let records: Vec<serde_json::Value> = lines
        .iter()
        .enumerate()
        .map(|(i, line)| {
            json!({
                "timeUnixNano": (base_ns + i as i64).to_string(),
                "severityText": "Error",
                "body": {"stringValue": line},
                "attributes": [{"key": "http.route", "value": {"stringValue": "/pay"}},
                               {"key": "attempt", "value": {"intValue": i}}],
                "traceId": "0af7651916cd43dd8448eb211c80319c",
                "spanId": "b7ad6b7169203331",
            })
        })
        .collect();
    json!({"resourceLogs": [{
        "resource": {"attributes": [
            {"key": "service.name", "value": {"stringValue": service}},
            {"key": "k8s.pod.name", "value": {"stringValue": "pod-1"}}
        ]},
        "scopeLogs": [{"scope": {"name": "js-logger"}, "logRecords": records}]
    }]})
}

#[test]
fn curl_json_and_gzip_partial_success_and_refusals() {
    if !require_program("curl", "apt-get install curl") {
        return;
    }
    let (dir, server) = start("otlp-curl", &["--line-bytes-max", "64"]);
    let base = now_ns() - 60 * 1_000_000_000;

    // JSON under gzip: 200 with an empty ExportLogsServiceResponse.
    let body = json_body("web-json", base, &["payment declined", "retrying"]);
    let (status, answer) = curl_otlp(
        &server,
        &dir,
        &gzip(body.to_string().as_bytes()),
        &["Content-Type: application/json", "Content-Encoding: gzip"],
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
    assert_eq!(answer, b"{}");
    let got = server.query_all(r#"{service_name="web-json"}"#, true);
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].line, "payment declined");
    assert_eq!(
        got[0].labels,
        common::labels(&[("k8s_pod_name", "pod-1"), ("service_name", "web-json")])
    );
    let md = &got[1].metadata;
    assert_eq!(get(md, "http_route"), "/pay");
    assert_eq!(get(md, "attempt"), "1");
    assert_eq!(get(md, "trace_id"), "0af7651916cd43dd8448eb211c80319c");
    assert_eq!(get(md, "span_id"), "b7ad6b7169203331");
    assert_eq!(get(md, "scope_name"), "js-logger");
    assert_eq!(get(md, "detected_level"), "error");

    // One record over the line limit: refused alone, reported as a partial success.
    let long = "x".repeat(100);
    let body = json_body("web-partial", base, &["short", &long, "also short"]);
    let (status, answer) = curl_otlp(
        &server,
        &dir,
        body.to_string().as_bytes(),
        &["Content-Type: application/json", "X-Scope-OrgID: team-otel"],
    );
    assert_eq!(status, 200);
    let answer: serde_json::Value = serde_json::from_slice(&answer).expect("a JSON answer");
    assert_eq!(answer["partialSuccess"]["rejectedLogRecords"], "1");
    let message = answer["partialSuccess"]["errorMessage"].as_str().unwrap();
    assert!(message.contains("Max entry size '64' bytes"), "{message}");
    let response = server.query_range_response(
        &[
            ("query", r#"{service_name="web-partial"}"#),
            ("start", &(base - 1_000_000_000).to_string()),
            ("end", &(now_ns() + 1_000_000_000).to_string()),
        ],
        &[("X-Scope-OrgID", "team-otel"), CATEGORIZE_LABELS],
    );
    let lines: Vec<String> = common::entries(&response.json())
        .into_iter()
        .map(|e| e.line)
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines.contains(&"short".to_string()) && lines.contains(&"also short".to_string()));
    assert!(
        server
            .query_all(r#"{service_name="web-partial"}"#, false)
            .is_empty(),
        "the tenant's records are its own"
    );

    // A malformed protobuf body: 400 with a google.rpc.Status, nothing stored.
    let before = server.index_stats(r#"{service_name=~".+"}"#).entries;
    let (status, answer) = curl_otlp(
        &server,
        &dir,
        &[0x0a, 0xff, 0xff, 0x01, 0x02],
        &["Content-Type: application/x-protobuf"],
    );
    assert_eq!(status, 400);
    assert!(
        String::from_utf8_lossy(&answer).contains("cannot decode OTLP protobuf"),
        "{answer:?}"
    );
    // Malformed JSON too, and a body of a type that is not OTLP's.
    let (status, answer) = curl_otlp(
        &server,
        &dir,
        br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"traceId":"nothex"}]}]}]}"#,
        &["Content-Type: application/json"],
    );
    assert_eq!(status, 400);
    let answer: serde_json::Value = serde_json::from_slice(&answer).expect("a JSON Status");
    assert!(
        answer["message"].as_str().unwrap().contains("traceId"),
        "{answer}"
    );
    let (status, _) = curl_otlp(&server, &dir, b"hello", &["Content-Type: text/plain"]);
    assert_eq!(status, 415);
    assert_eq!(
        server.index_stats(r#"{service_name=~".+"}"#).entries,
        before,
        "refused bodies stored nothing"
    );
}

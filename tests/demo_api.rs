//! The demo's API (`POST /ingest`, `GET /logs`, `GET /logs/recent`, `GET /stats`,
//! `POST /simulate`), driven by the demo README's own curl commands against the real
//! binary: what `/ingest` acknowledges is found by LogQL with the mapped labels and
//! metadata, `/logs` answers the demo's LogEntry shape newest first, `/stats` counts
//! exactly, a malformed body is a JSON 400 that stores nothing, and `/simulate` is refused
//! unless `--enable-simulate`, with which it stores 10,000 lines.

mod common;

use std::process::Command;

use common::Server;
use common::loki::{metric_sum, parse_metrics};
use common::tools::{require_program, run_checked};
use serde_json::Value;

fn curl_present() -> bool {
    require_program("curl", "apt-get install curl")
}

/// Runs curl with the README's arguments, `http://localhost:8080` replaced by the server's
/// address; the status and the parsed JSON answer.
fn curl(server: &Server, args: &[&str]) -> (u16, Value) {
    let base = format!("http://{}", server.http);
    let mut command = Command::new("curl");
    command.args(["-sS", "-w", "\n%{http_code}"]);
    for a in args {
        command.arg(a.replace("http://localhost:8080", &base));
    }
    let output = run_checked(&mut command);
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').expect("curl prints the status last");
    let status: u16 = status.trim().parse().expect("a status code");
    let value = serde_json::from_str(body)
        .unwrap_or_else(|e| panic!("answer to {args:?} is not JSON ({e}): {body}"));
    (status, value)
}

fn get(server: &Server, path: &str) -> Value {
    let (status, v) = curl(server, &[&format!("http://localhost:8080{path}")]);
    assert_eq!(status, 200, "GET {path}: {v}");
    v
}

fn stats(server: &Server) -> Value {
    get(server, "/stats")
}

fn ingest(server: &Server, body: &str) -> (u16, Value) {
    curl(
        server,
        &[
            "-X",
            "POST",
            "http://localhost:8080/ingest",
            "-H",
            "Content-Type: application/json",
            "-d",
            body,
        ],
    )
}

/// The README's "Basic Log Ingestion" example.
const README_BASIC: &str = r#"{
        "level": "ERROR",
        "message": "Payment processing failed",
        "service": "payment-service"
      }"#;

/// The README's `POST /ingest` entry.
const README_ENTRY: &str = r#"{
      "level": "ERROR",
      "message": "Database connection failed",
      "service": "user-service",
      "metadata": {
        "user_id": 123
      }
    }"#;

#[test]
fn readme_examples_store_query_and_count() {
    if !curl_present() {
        return;
    }
    let (_dir, server) = Server::start_http_only("demo-api", &[]);

    // Acknowledged entries: one object each, answered once durable.
    for body in [README_BASIC, README_ENTRY] {
        let (status, v) = ingest(&server, body);
        assert_eq!(status, 200, "{v}");
        assert_eq!(v, serde_json::json!({"accepted": 1}));
    }

    // "Get all ERROR logs": newest first, in the demo's LogEntry shape.
    let errors = get(&server, "/logs?level=ERROR");
    let errors = errors.as_array().expect("an array of entries");
    assert_eq!(errors.len(), 2, "{errors:?}");
    let newest = &errors[0];
    assert_eq!(newest["message"], "Database connection failed");
    assert_eq!(newest["level"], "ERROR");
    assert_eq!(newest["service"], "user-service");
    assert_eq!(newest["metadata"], serde_json::json!({"user_id": "123"}));
    assert_eq!(errors[1]["message"], "Payment processing failed");
    assert_eq!(errors[1]["metadata"], serde_json::json!({}));
    for e in errors {
        let ts = e["timestamp"].as_str().expect("an RFC 3339 timestamp");
        assert!(ts.ends_with('Z') && ts.contains('T'), "{ts}");
        let id = e["id"].as_str().expect("an id");
        assert_eq!(id.len(), 36, "{id}");
    }
    assert!(errors[0]["timestamp"].as_str() >= errors[1]["timestamp"].as_str());
    assert_ne!(errors[0]["id"], errors[1]["id"]);
    // Ids are stable: the same entry, asked again, has the same id.
    let again = get(&server, "/logs?level=ERROR");
    assert_eq!(again[0]["id"], newest["id"]);

    // Levels match whatever their case; services exactly; limits bound the answer.
    assert_eq!(
        get(&server, "/logs?level=error").as_array().unwrap().len(),
        2
    );
    assert_eq!(
        get(&server, "/logs?level=INFO").as_array().unwrap().len(),
        0
    );
    let payment = get(&server, "/logs?service=payment-service");
    assert_eq!(payment.as_array().unwrap().len(), 1);
    assert_eq!(payment[0]["message"], "Payment processing failed");
    let one = get(&server, "/logs?level=ERROR&limit=1");
    assert_eq!(one.as_array().unwrap().len(), 1);
    assert_eq!(one[0]["message"], "Database connection failed");
    let (status, v) = curl(&server, &["http://localhost:8080/logs?limit=0"]);
    assert_eq!(status, 400, "{v}");
    assert!(v["error"].as_str().unwrap().contains("limit"), "{v}");
    let (status, v) = curl(&server, &["http://localhost:8080/logs?limit=100000000"]);
    assert_eq!(status, 400, "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("max_entries_limit_per_query"),
        "{v}"
    );

    // "Get recent logs".
    let recent = get(&server, "/logs/recent");
    assert_eq!(recent.as_array().unwrap().len(), 2);
    assert_eq!(recent[0]["message"], "Database connection failed");

    // The same lines through Loki's API, with the mapped labels and metadata.
    let found = server.query_all(r#"{service_name="user-service", level="ERROR"}"#, true);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].line, "Database connection failed");
    assert_eq!(
        found[0].metadata.get("user_id").map(String::as_str),
        Some("123")
    );
    let found = server.query_all(
        r#"{service_name="user-service", level="ERROR"} | user_id="123""#,
        false,
    );
    assert_eq!(found.len(), 1, "{found:?}");
    let found = server.query_all(r#"{service_name="payment-service"}"#, true);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        found[0].labels.get("level").map(String::as_str),
        Some("ERROR")
    );

    // "Check throughput statistics": exact counts.
    let s = stats(&server);
    assert_eq!(s["total_processed"], 2, "{s}");
    assert_eq!(s["total_dropped"], 0, "{s}");
    assert_eq!(s["logs_in_storage"], 2, "{s}");
    assert!(s["uptime_seconds"].as_u64().is_some(), "{s}");
    assert!(s["avg_throughput"].as_f64().unwrap() >= 0.0, "{s}");

    // Malformed input: a JSON 400 that stores nothing and is counted as dropped.
    for bad in [
        r#"{"level": "ERROR", "message": "#,
        r#"{"level": "ERROR"}"#,
        r#"{"level": "ERROR", "message": "x", "metadata": "not an object"}"#,
    ] {
        let (status, v) = ingest(&server, bad);
        assert_eq!(status, 400, "{bad}: {v}");
        assert!(!v["error"].as_str().unwrap().is_empty(), "{v}");
    }
    let s = stats(&server);
    assert_eq!(s["total_processed"], 2, "{s}");
    assert_eq!(s["total_dropped"], 3, "{s}");
    assert_eq!(s["logs_in_storage"], 2, "{s}");

    // After N more acknowledged ingests, exactly N more are counted and stored.
    const N: u64 = 20;
    for i in 0..N {
        let body = format!(r#"{{"level":"INFO","message":"line {i}","service":"batch"}}"#);
        assert_eq!(ingest(&server, &body).0, 200);
    }
    let s = stats(&server);
    assert_eq!(s["total_processed"], 2 + N, "{s}");
    assert_eq!(s["logs_in_storage"], 2 + N, "{s}");
    let batch = get(&server, "/logs?service=batch");
    let batch = batch.as_array().unwrap();
    assert_eq!(batch.len() as u64, N);
    assert_eq!(batch[0]["message"], format!("line {}", N - 1));
    let samples = parse_metrics(&server.metrics());
    assert_eq!(
        metric_sum(
            &samples,
            "shardlog_ingested_lines_total",
            &[("protocol", "demo")]
        ),
        (2 + N) as f64
    );

    // Another tenant sees only its own.
    let (status, _) = curl(
        &server,
        &[
            "-X",
            "POST",
            "http://localhost:8080/ingest",
            "-H",
            "X-Scope-OrgID: other",
            "-d",
            r#"{"level":"WARN","message":"theirs","service":"x"}"#,
        ],
    );
    assert_eq!(status, 200);
    let (_, theirs) = curl(
        &server,
        &["-H", "X-Scope-OrgID: other", "http://localhost:8080/stats"],
    );
    assert_eq!(theirs["total_processed"], 1, "{theirs}");
    assert_eq!(theirs["logs_in_storage"], 1, "{theirs}");
    assert_eq!(stats(&server)["total_processed"], 2 + N);

    // "Simulate 10k logs" is off without --enable-simulate, and stores nothing.
    let (status, v) = curl(&server, &["-X", "POST", "http://localhost:8080/simulate"]);
    assert_eq!(status, 403, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("--enable-simulate"),
        "{v}"
    );
    assert_eq!(stats(&server)["logs_in_storage"], 2 + N);

    // Wrong methods are refused, in JSON too.
    let (status, v) = curl(&server, &["http://localhost:8080/ingest"]);
    assert_eq!(status, 405, "{v}");
}

#[test]
fn simulate_stores_ten_thousand_lines() {
    if !curl_present() {
        return;
    }
    // Heads are sealed into parts soon, so that the counts and reads below cover both.
    let (_dir, server) = Server::start_http_only(
        "demo-simulate",
        &["--enable-simulate", "--seal-age", "300ms"],
    );

    // The README's "Performance Testing" commands.
    let (status, v) = curl(&server, &["-X", "POST", "http://localhost:8080/simulate"]);
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["generated"], 10_000, "{v}");
    assert!(v["duration_ms"].as_u64().is_some(), "{v}");
    assert!(v["throughput"].as_f64().unwrap() > 0.0, "{v}");
    let (status, s) = curl(&server, &["http://localhost:8080/stats"]);
    assert_eq!(status, 200);
    assert_eq!(s["total_processed"], 10_000, "{s}");
    assert_eq!(s["total_dropped"], 0, "{s}");
    assert_eq!(s["logs_in_storage"], 10_000, "{s}");

    // Every line went through the ingest path: Loki's API finds them all, labelled.
    let stored = server.index_stats(r#"{service_name=~".+-service|api-gateway"}"#);
    assert_eq!(stored.entries, 10_000);
    let samples = parse_metrics(&server.metrics());
    assert_eq!(
        metric_sum(
            &samples,
            "shardlog_ingested_lines_total",
            &[("protocol", "demo")]
        ),
        10_000.0
    );

    // Once sealed into parts, the same counts and reads.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let samples = parse_metrics(&server.metrics());
        if metric_sum(&samples, "shardlog_sealed_entries_total", &[]) >= 10_000.0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the simulated lines were not sealed"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let s = stats(&server);
    assert_eq!(s["total_processed"], 10_000, "{s}");
    assert_eq!(s["logs_in_storage"], 10_000, "{s}");

    // The 100 newest, newest first, in the demo's shape.
    let recent = get(&server, "/logs/recent");
    let recent = recent.as_array().unwrap();
    assert_eq!(recent.len(), 100);
    for pair in recent.windows(2) {
        let ts = |e: &Value| e["timestamp"].as_str().unwrap().to_string();
        assert!(ts(&pair[0]) > ts(&pair[1]), "{pair:?}");
    }
    for e in recent {
        let level = e["level"].as_str().unwrap();
        assert!(
            ["DEBUG", "INFO", "WARN", "ERROR", "CRITICAL"].contains(&level),
            "{e}"
        );
        assert!(!e["message"].as_str().unwrap().is_empty());
        assert_eq!(e["metadata"]["source"], "simulate");
    }
    let errors = get(&server, "/logs?level=ERROR&limit=5000");
    for e in errors.as_array().unwrap() {
        assert_eq!(e["level"], "ERROR");
    }

    // `count` is bounded, and a bad one is a JSON 400 that stores nothing.
    for bad in ["0", "x", "100001"] {
        let url = format!("http://localhost:8080/simulate?count={bad}");
        let (status, v) = curl(&server, &["-X", "POST", &url]);
        assert_eq!(status, 400, "count={bad}: {v}");
    }
    let (status, v) = curl(
        &server,
        &["-X", "POST", "http://localhost:8080/simulate?count=250"],
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["generated"], 250);
    let s = stats(&server);
    assert_eq!(s["total_processed"], 10_250, "{s}");
    assert_eq!(s["logs_in_storage"], 10_250, "{s}");

    // The largest count is taken whole.
    let (status, v) = curl(
        &server,
        &["-X", "POST", "http://localhost:8080/simulate?count=100000"],
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["generated"], 100_000);
    assert_eq!(stats(&server)["logs_in_storage"], 110_250);
}

#[test]
fn entries_refused_for_their_time_are_named_and_the_rest_stored() {
    if !curl_present() {
        return;
    }
    let (_dir, server) = Server::start_http_only(
        "demo-too-old",
        &["--reject-old-samples", "--reject-old-samples-max-age", "1h"],
    );
    // As a Loki push: the entry older than `reject_old_samples_max_age` is refused and
    // counted, the other one is stored, and the 400 says both.
    let (status, v) = ingest(
        &server,
        r#"[{"level":"INFO","message":"now","service":"s"},
            {"level":"INFO","message":"then","service":"s","timestamp":"2001-02-03T04:05:06Z"}]"#,
    );
    assert_eq!(status, 400, "{v}");
    let error = v["error"].as_str().unwrap();
    assert!(error.contains("too old"), "{error}");
    assert!(error.contains("1 other entries"), "{error}");
    let s = stats(&server);
    assert_eq!(s["total_processed"], 1, "{s}");
    assert_eq!(s["total_dropped"], 1, "{s}");
    assert_eq!(s["logs_in_storage"], 1, "{s}");
    let logs = get(&server, "/logs?service=s");
    assert_eq!(logs.as_array().unwrap().len(), 1);
    assert_eq!(logs[0]["message"], "now");

    // A timestamp, when given, is the entry's.
    let when = time::OffsetDateTime::now_utc() - time::Duration::minutes(10);
    let when = when.replace_nanosecond(123_456_789).unwrap();
    let text = when
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let body =
        format!(r#"{{"level":"INFO","message":"dated","service":"d","timestamp":"{text}"}}"#);
    assert_eq!(ingest(&server, &body).0, 200);
    let dated = get(&server, "/logs?service=d");
    let shown = dated[0]["timestamp"].as_str().unwrap();
    let shown =
        time::OffsetDateTime::parse(shown, &time::format_description::well_known::Rfc3339).unwrap();
    assert_eq!(shown, when);
}

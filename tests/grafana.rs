//! The requests Grafana's Loki data source, Explore and Logs Drilldown send, replayed
//! against the real binary: each answer has Loki's shape.

mod common;

use common::loki::path_with_query;
use common::{Server, ServerOptions, TestDir, now_ns};
use serde_json::{Value, json};

fn start() -> (TestDir, Server) {
    let dir = TestDir::new("grafana");
    let server = Server::start_with(
        &dir,
        &ServerOptions {
            syslog: false,
            ..ServerOptions::default()
        },
    );
    (dir, server)
}

/// Apache lines from the corpus as logfmt and JSON, in streams of two apps.
fn load(server: &Server) -> Option<()> {
    let corpus = common::tools::corpus_lines("Apache_2k.log")?;
    let now = now_ns();
    let mut streams = Vec::new();
    for (app, format) in [("x", "logfmt"), ("y", "json")] {
        let values: Vec<Value> = corpus
            .iter()
            .take(600)
            .enumerate()
            .map(|(i, raw)| {
                let level = if raw.contains("[error]") {
                    "error"
                } else {
                    "info"
                };
                let ts = now - (600 - i as i64) * 1_000_000_000;
                let line = if format == "json" {
                    json!({"level": level, "status": 200 + (i % 4) * 100, "msg": raw}).to_string()
                } else {
                    format!("level={level} status={} msg={raw:?}", 200 + (i % 4) * 100)
                };
                json!([ts.to_string(), line, {"pod": format!("pod-{}", i % 3)}])
            })
            .collect();
        streams.push(json!({"stream": {"app": app, "format": format}, "values": values}));
    }
    server.push_json_ok(&json!({ "streams": streams }));
    Some(())
}

fn get(server: &Server, path: &str, params: &[(&str, &str)]) -> Value {
    let r = server.get(&path_with_query(path, params));
    assert_eq!(r.status, 200, "{path} {params:?}: {}", r.text());
    r.json()
}

#[test]
fn grafana_requests_get_lokis_shapes() {
    let (_dir, mut server) = start();
    if load(&server).is_none() {
        return;
    }
    // "Save & test".
    let v = get(
        &server,
        "/loki/api/v1/query",
        &[("query", "vector(1)+vector(1)")],
    );
    assert_eq!(v["data"]["resultType"], "vector", "{v}");
    assert_eq!(v["data"]["result"][0]["value"][1], "2", "{v}");

    // Explore's log volume histogram. Steps are aligned down to the step, so the range
    // reaches past now for the last window to hold the newest lines.
    let now_s = now_ns() / 1_000_000_000;
    let (start, end) = ((now_s - 900).to_string(), (now_s + 120).to_string());
    let v = get(
        &server,
        "/loki/api/v1/query_range",
        &[
            (
                "query",
                r#"sum by (level) (count_over_time({app="x"} | logfmt [1m]))"#,
            ),
            ("start", &start),
            ("end", &end),
            ("step", "60"),
        ],
    );
    assert_eq!(v["data"]["resultType"], "matrix", "{v}");
    let result = v["data"]["result"].as_array().expect("a result list");
    assert!(!result.is_empty(), "{v}");
    let total: f64 = result
        .iter()
        .flat_map(|s| s["values"].as_array().unwrap().iter())
        .map(|p| p[1].as_str().unwrap().parse::<f64>().unwrap())
        .sum();
    // Windows of 1m every 1m: each line is counted exactly once.
    assert_eq!(total, 600.0, "{v}");
    for s in result {
        assert!(s["metric"]["level"].is_string(), "{s}");
    }

    // Explore's logs with Grafana's encoding flag: flags inside data, three-element values.
    let r = server.get_with(
        &path_with_query(
            "/loki/api/v1/query_range",
            &[
                ("query", r#"{app="y"} | json | status >= 400"#),
                ("since", "15m"),
                ("limit", "10"),
            ],
        ),
        &[("X-Loki-Response-Encoding-Flags", "categorize-labels")],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["data"]["encodingFlags"][0], "categorize-labels", "{v}");
    for s in v["data"]["result"].as_array().unwrap() {
        assert_eq!(s["stream"]["app"], "y");
        for value in s["values"].as_array().unwrap() {
            assert_eq!(value.as_array().unwrap().len(), 3, "{value}");
            assert!(value[2]["structuredMetadata"]["pod"].is_string(), "{value}");
            let status: u32 = value[2]["parsed"]["status"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!(status >= 400);
        }
    }

    // Logs Drilldown.
    let v = get(
        &server,
        "/loki/api/v1/detected_labels",
        &[("query", r#"{app=~".+"}"#), ("since", "1h")],
    );
    let labels: Vec<&str> = v["detectedLabels"]
        .as_array()
        .expect("detectedLabels")
        .iter()
        .map(|l| l["label"].as_str().unwrap())
        .collect();
    assert!(labels.contains(&"app") && labels.contains(&"format"), "{v}");

    let v = get(
        &server,
        "/loki/api/v1/detected_fields",
        &[("query", r#"{app="x"}"#), ("since", "1h")],
    );
    let fields = v["fields"].as_array().expect("fields");
    let status = fields
        .iter()
        .find(|f| f["label"] == "status")
        .expect("status field");
    assert_eq!(status["type"], "int", "{v}");
    assert_eq!(status["parsers"][0], "logfmt", "{v}");
    assert!(fields.iter().any(|f| f["label"] == "pod"), "{v}");

    let v = get(
        &server,
        "/loki/api/v1/detected_field/status/values",
        &[("query", r#"{app="y"}"#), ("since", "1h")],
    );
    let mut values: Vec<&str> = v["values"]
        .as_array()
        .expect("values")
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect();
    values.sort();
    assert_eq!(values, ["200", "300", "400", "500"], "{v}");

    let v = get(
        &server,
        "/loki/api/v1/index/volume",
        &[("query", r#"{app=~".+"}"#), ("since", "1h")],
    );
    assert_eq!(v["data"]["resultType"], "vector", "{v}");
    let apps: Vec<&str> = v["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["metric"]["app"].as_str().unwrap())
        .collect();
    assert_eq!(apps.len(), 2, "{v}");

    let v = get(
        &server,
        "/loki/api/v1/index/volume_range",
        &[("query", r#"{app="x"}"#), ("since", "1h"), ("step", "600")],
    );
    assert_eq!(v["data"]["resultType"], "matrix", "{v}");

    let v = get(
        &server,
        "/loki/api/v1/patterns",
        &[("query", r#"{app="x"}"#), ("since", "1h")],
    );
    let patterns = v["data"].as_array().expect("a list of patterns");
    assert!(!patterns.is_empty(), "{v}");
    assert!(
        patterns[0]["pattern"].as_str().unwrap().contains("<_>"),
        "{v}"
    );
    assert!(patterns[0]["samples"][0][1].as_u64().unwrap() > 0, "{v}");

    let v = get(
        &server,
        "/loki/api/v1/format_query",
        &[("query", r#"{app="x"}|="a""#)],
    );
    assert_eq!(v["data"], r#"{app="x"} |= "a""#, "{v}");

    let v = get(&server, "/loki/api/v1/drilldown-limits", &[]);
    assert_eq!(v["limits"]["max_query_series"], 500, "{v}");

    // An invalid UTF-8 query string is refused, not rewritten.
    let r = server.get("/loki/api/v1/query_range?query=%7Bapp%3D%22%ff%22%7D");
    assert_eq!(r.status, 400, "{}", r.text());
    server.terminate_ok();
}

//! Loki 3's ingest-time discovery with the server's defaults, on every input: a Loki push, a
//! JSON-lines body and a syslog TCP line each get `service_name` (from the first listed label
//! they have, else `unknown_service`) and `detected_level` structured metadata (from a level
//! label, a field of the line or a level word), read back over LogQL; a tenant whose limits
//! file turns both off gets its lines as sent.

mod common;

use std::io::Write;
use std::net::TcpStream;

use common::loki::INGEST_WAIT_MS;
use common::{Discovery, Server, ServerOptions, TestDir, labels, now_ns};
use serde_json::json;

#[test]
fn every_input_gets_service_name_and_detected_level() {
    let dir = TestDir::new("discovery");
    let limits = dir.path().join("limits.yaml");
    std::fs::write(
        &limits,
        "overrides:\n  plain:\n    discover_service_name: []\n    discover_log_levels: false\n",
    )
    .expect("write the limits file");
    let options = ServerOptions {
        discovery: Discovery::Defaults,
        extra_args: vec!["--limits-file".into(), limits.display().to_string()],
        ..ServerOptions::default()
    };
    let server = Server::start_with(&dir, &options);
    let ts = now_ns() - 60 * 1_000_000_000;

    // Loki push: `job` gives the service; the level comes from the line.
    server.push_json_ok(&json!({"streams": [
        {"stream": {"job": "billing", "env": "prod"}, "values": [
            [ts.to_string(), "level=error msg=\"card declined\""],
            [(ts + 1).to_string(), r#"{"lvl":"debug","msg":"tick"}"#],
            [(ts + 2).to_string(), "[WARN] slow response"],
            [(ts + 3).to_string(), "nothing to see"],
        ]},
        {"stream": {"env": "prod", "level": "INFO"}, "values": [
            [(ts + 4).to_string(), "ERROR in the line, but the label decides"],
        ]},
    ]}));
    let got = server.query_all(r#"{env="prod"}"#, true);
    let view: Vec<(&str, &str, &str)> = got
        .iter()
        .map(|e| {
            (
                e.line.as_str(),
                e.labels["service_name"].as_str(),
                e.metadata["detected_level"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        view,
        [
            ("level=error msg=\"card declined\"", "billing", "error"),
            (r#"{"lvl":"debug","msg":"tick"}"#, "billing", "debug"),
            ("[WARN] slow response", "billing", "warn"),
            ("nothing to see", "billing", "unknown"),
            (
                "ERROR in the line, but the label decides",
                "unknown_service",
                "info"
            ),
        ]
    );
    let errors = server.query_all(
        r#"{service_name="billing"} | detected_level="error""#,
        false,
    );
    assert_eq!(errors.len(), 1);

    // JSON lines: `app` is a stream field by default, and gives the service.
    let body = format!(
        "{}\n",
        json!({"timestamp": ts + 10, "app": "cart", "level": "WARNING", "message": "low stock"})
    );
    let response = server.post("/insert/jsonline", &[], body.as_bytes());
    assert_eq!(response.status, 204, "{}", response.text());
    let got = server.query_all(r#"{app="cart"}"#, true);
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].labels,
        labels(&[
            ("app", "cart"),
            ("level", "WARNING"),
            ("service_name", "cart")
        ])
    );
    assert_eq!(got[0].metadata["detected_level"], "warn");

    // Syslog TCP: `app` gives the service, the severity the level (warning is `warn`; a
    // severity Loki has no word for, `notice`, stays as it is).
    let mut tcp = TcpStream::connect(("127.0.0.1", server.syslog_port)).expect("connect syslog");
    for (pri, msg) in [(44, "disk almost full"), (45, "config reloaded")] {
        // No time (`-`): the receive time stands in, within the query's window.
        let frame = format!("<{pri}>1 - web1 nginx 42 - - {msg}");
        write!(tcp, "{} {frame}", frame.len()).expect("send a syslog frame");
    }
    drop(tcp);
    assert_eq!(
        server.wait_for_count(r#"{app="nginx"}"#, 2, INGEST_WAIT_MS),
        2
    );
    let got = server.query_all(r#"{app="nginx"}"#, true);
    // Both lines may share their receive time: compared in line order.
    let mut view: Vec<(&str, &str, &str)> = got
        .iter()
        .map(|e| {
            (
                e.line.as_str(),
                e.labels["service_name"].as_str(),
                e.metadata["detected_level"].as_str(),
            )
        })
        .collect();
    view.sort();
    assert_eq!(
        view,
        [
            ("config reloaded", "nginx", "notice"),
            ("disk almost full", "nginx", "warn"),
        ]
    );

    // The tenant whose limits turn discovery off: stored as sent.
    let response = server.push_json_as(
        "plain",
        &json!({"streams": [{"stream": {"job": "raw"}, "values": [[ts.to_string(), "ERROR x"]]}]}),
    );
    assert_eq!(response.status, 204, "{}", response.text());
    let response = server.query_range_response(
        &[
            ("query", r#"{job="raw"}"#),
            ("start", &(ts - 1).to_string()),
            ("end", &(now_ns() + 1_000_000_000).to_string()),
        ],
        &[("X-Scope-OrgID", "plain"), common::loki::CATEGORIZE_LABELS],
    );
    let got = common::entries(&response.json());
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].labels, labels(&[("job", "raw")]));
    assert!(got[0].metadata.is_empty(), "{:?}", got[0].metadata);
}

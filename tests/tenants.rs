//! Tenants against the real binary: with `--auth-enabled` a request without `X-Scope-OrgID`
//! is Loki's 401 and stores nothing; a tenant over its ingestion rate gets Loki's 429 text
//! with `Retry-After`, counted as `rate_limited`, while another tenant pushes on untouched,
//! and nothing of a refused push is stored. Label limits refuse with Loki's 400 texts; a
//! limits file overrides them per tenant and is re-read while the server runs; a broken one
//! stops the server from starting. A refused push counts each of its entries under Loki's
//! reason for the rule it broke. Entries older than `reject_old_samples_max_age` are
//! refused with Loki's message while the rest of their push is stored; long lines are cut
//! for a tenant with `max_line_size_truncate`, and counted as mutated. Query limits are overridden per tenant. At the
//! active stream limit only new streams
//! are refused (Loki's 429 text), and the other streams of their push are stored. Syslog's
//! tenant keeps the same rate: TCP is slowed down
//! (every line kept), UDP datagrams over it are dropped and counted; each syslog listener
//! (`[[syslog]]` sections) stores under its own tenant, whose limits hold for its lines.
//! A stream over its own rate (`per_stream_rate_limit`) is refused whole with Loki's 429
//! text while the push's other streams are stored; entries beyond `creation_grace_period`
//! are refused with Loki's 400 text.

mod common;

use common::loki::{metric_sum, parse_metrics, path_with_query};
use common::server::run_to_exit;
use common::{Server, ServerOptions, TestDir, now_ns};
use serde_json::{Value, json};

fn start(name: &str, extra: &[&str]) -> (TestDir, Server) {
    Server::start_http_only(name, extra)
}

/// An HTTP-only server whose limits file (returned, to be rewritten) holds `yaml`.
fn start_with_limits(name: &str, yaml: &str) -> (TestDir, Server, std::path::PathBuf) {
    let dir = TestDir::new(name);
    let file = dir.path().join("limits.yaml");
    std::fs::write(&file, yaml).unwrap();
    let options = ServerOptions {
        syslog: false,
        extra_args: vec!["--limits-file".into(), file.display().to_string()],
        ..ServerOptions::default()
    };
    let server = Server::start_with(&dir, &options);
    (dir, server, file)
}

/// A push of `lines` to stream `{app}`.
fn push_body(app: &str, lines: &[String], t0: i64) -> Value {
    let values: Vec<_> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| json!([(t0 + i as i64).to_string(), l]))
        .collect();
    json!({"streams": [{"stream": {"app": app}, "values": values}]})
}

/// Entries of `{app}` the tenant can read back.
fn count(server: &Server, tenant: &str, app: &str) -> u64 {
    let r = server.get_with(
        &path_with_query(
            "/loki/api/v1/query",
            &[
                (
                    "query",
                    &format!(r#"sum(count_over_time({{app="{app}"}}[1h]))"#),
                ),
                ("time", &now_ns().to_string()),
            ],
        ),
        &[("X-Scope-OrgID", tenant)],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    v["data"]["result"][0]["value"][1]
        .as_str()
        .map_or(0, |n| n.parse().expect("a count"))
}

#[test]
fn with_auth_enabled_a_request_without_a_tenant_is_401() {
    let (_dir, mut server) = start("tenants-auth", &["--auth-enabled"]);
    let lines = vec!["a line without a tenant".to_string()];
    let r = server.push_json(&push_body("noauth", &lines, now_ns()));
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(r.text().trim(), "no org id");
    let r = server.get(&path_with_query(
        "/loki/api/v1/query_range",
        &[("query", r#"{app="noauth"}"#), ("since", "1h")],
    ));
    assert_eq!(r.status, 401, "{}", r.text());
    let r = server.get("/loki/api/v1/labels");
    assert_eq!(r.status, 401, "{}", r.text());
    let r = server.get(&path_with_query(
        "/loki/api/v1/tail",
        &[("query", r#"{app="noauth"}"#)],
    ));
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(r.text().trim(), "no org id");
    // With a tenant, the same push is stored and read back; nothing went to `fake`.
    let r = server.push_json_as("team-a", &push_body("noauth", &lines, now_ns()));
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(count(&server, "team-a", "noauth"), 1);
    assert_eq!(count(&server, "fake", "noauth"), 0);
    server.terminate_ok();
}

#[test]
fn a_tenant_over_its_rate_gets_429_and_another_is_untouched() {
    // 64 KiB a second, 128 KiB at once.
    let (_dir, mut server) = start(
        "tenants-rate",
        &[
            "--ingestion-rate-mb",
            "0.0625",
            "--ingestion-burst-size-mb",
            "0.125",
        ],
    );
    let Some(corpus) = common::tools::corpus_lines("HDFS_2k.log") else {
        return;
    };
    let lines: Vec<String> = corpus.into_iter().take(800).collect();
    let bytes: usize = lines.iter().map(|l| l.len()).sum();
    let bytes_f64 = bytes as f64;
    assert!(bytes < 128 << 10 && 2 * bytes > 128 << 10, "{bytes} bytes");
    let t0 = now_ns() - 60_000_000_000;
    let r = server.push_json_as("noisy", &push_body("rated", &lines, t0));
    assert_eq!(r.status, 204, "{}", r.text());
    // The burst is spent: the next push is refused whole, with Loki's text.
    let r = server.push_json_as("noisy", &push_body("rated", &lines, t0 + 1_000_000));
    assert_eq!(r.status, 429, "{}", r.text());
    let expected = format!(
        "ingestion rate limit exceeded for user noisy (limit: 65536 bytes/sec) while \
         attempting to ingest '800' lines totaling '{bytes}' bytes, reduce log volume or \
         contact your Loki administrator to see if the limit can be increased"
    );
    assert_eq!(r.text().trim(), expected);
    let retry: u64 = r
        .header("Retry-After")
        .expect("Retry-After")
        .parse()
        .expect("seconds");
    assert!((1..=3).contains(&retry), "Retry-After {retry}");
    // Another tenant has a budget of its own.
    let r = server.push_json_as("quiet", &push_body("rated", &lines, t0));
    assert_eq!(r.status, 204, "{}", r.text());
    // A push larger than the burst never fits.
    let big: Vec<String> = lines.iter().cycle().take(3200).cloned().collect();
    let r = server.push_json_as("other", &push_body("rated", &big, t0));
    assert_eq!(r.status, 429, "{}", r.text());
    assert!(r.header("Retry-After").is_some());

    // Nothing of the refused pushes was stored, and they are counted.
    assert_eq!(count(&server, "noisy", "rated"), 800);
    assert_eq!(count(&server, "quiet", "rated"), 800);
    assert_eq!(count(&server, "other", "rated"), 0);
    let refused = metric_sum(
        &parse_metrics(&server.metrics()),
        "shardlog_discarded_lines_total",
        &[("reason", "rate_limited")],
    );
    assert_eq!(refused, 4000.0);
    let metrics = parse_metrics(&server.metrics());
    let of = |name: &str, labels: &[(&str, &str)]| metric_sum(&metrics, name, labels);
    let rate_limited = |tenant| {
        of(
            "shardlog_tenant_discarded_lines_total",
            &[("reason", "rate_limited"), ("tenant", tenant)],
        )
    };
    assert_eq!(rate_limited("noisy"), 800.0);
    assert_eq!(rate_limited("other"), 3200.0);
    assert_eq!(rate_limited("quiet"), 0.0);
    for tenant in ["noisy", "quiet"] {
        let lines = of(
            "shardlog_tenant_ingested_lines_total",
            &[("tenant", tenant)],
        );
        assert_eq!(lines, 800.0, "{tenant}");
        let bytes = of(
            "shardlog_tenant_ingested_bytes_total",
            &[("tenant", tenant)],
        );
        assert_eq!(bytes, bytes_f64, "{tenant}");
    }
    // After Retry-After, the budget has refilled.
    std::thread::sleep(std::time::Duration::from_secs(retry));
    let r = server.push_json_as("noisy", &push_body("rated", &lines, t0 + 2_000_000));
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(count(&server, "noisy", "rated"), 1600);
    server.terminate_ok();
}

/// A one-line push to a stream with these labels, as `tenant`.
fn push_labels(
    server: &Server,
    tenant: &str,
    labels: &[(String, String)],
) -> common::http::Response {
    let stream: serde_json::Map<String, Value> = labels
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    server.push_json_as(
        tenant,
        &json!({"streams": [{"stream": stream, "values": [[now_ns().to_string(), "a line"]]}]}),
    )
}

fn labels(n: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|i| (format!("l{i:02}"), "v".to_string()))
        .collect()
}

fn discarded(server: &Server, reason: &str) -> f64 {
    metric_sum(
        &parse_metrics(&server.metrics()),
        "shardlog_discarded_lines_total",
        &[("reason", reason)],
    )
}

#[test]
fn label_limits_refuse_with_lokis_texts_and_store_nothing() {
    let (_dir, mut server) = start("tenants-labels", &[]);
    // Loki's defaults: 15 labels, names of 1024 bytes, values of 2048.
    let r = push_labels(&server, "t", &labels(15));
    assert_eq!(r.status, 204, "{}", r.text());
    let r = push_labels(&server, "t", &labels(16));
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(
        r.text().trim().ends_with("has 16 label names; limit 15"),
        "{}",
        r.text()
    );
    assert!(
        r.text().starts_with("entry for stream '{l00=\"v\""),
        "{}",
        r.text()
    );
    let long_name = "n".repeat(1025);
    let r = push_labels(&server, "t", &[(long_name, "v".into())]);
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("has label name too long"), "{}", r.text());
    assert!(
        r.text().contains("(1025 bytes; limit 1024)"),
        "{}",
        r.text()
    );
    let long_value = "v".repeat(2049);
    let r = push_labels(&server, "t", &[("app".into(), long_value)]);
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(
        r.text().contains("has label value too long"),
        "{}",
        r.text()
    );
    assert!(
        r.text().contains("(2049 bytes; limit 2048)"),
        "{}",
        r.text()
    );
    // Each refusal is counted under Loki's reason for its rule, not as a bad request.
    for reason in [
        "max_label_names_per_series",
        "label_name_too_long",
        "label_value_too_long",
    ] {
        assert_eq!(discarded(&server, reason), 1.0, "{reason}");
    }
    assert_eq!(discarded(&server, "invalid_request"), 0.0);
    // The accepted stream was stored, nothing of the refused ones.
    let values = |name: &str| {
        let path = format!("/loki/api/v1/label/{name}/values?since=1h");
        let r = server.get_with(&path, &[("X-Scope-OrgID", "t")]);
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()["data"].clone()
    };
    assert_eq!(values("l14"), json!(["v"]));
    assert_eq!(values("l15"), json!([]));
    assert_eq!(values("app"), json!([]));
    server.terminate_ok();
}

#[test]
fn the_limits_file_overrides_per_tenant_and_is_reread_while_running() {
    let (_dir, mut server, file) = start_with_limits(
        "tenants-file",
        "overrides:\n  small:\n    max_label_names_per_series: 2\n    max_streams_per_user: 0\n",
    );
    let r = push_labels(&server, "small", &labels(3));
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("limit 2"), "{}", r.text());
    // Another tenant keeps the defaults.
    let r = push_labels(&server, "other", &labels(3));
    assert_eq!(r.status, 204, "{}", r.text());

    // Raised while running: applies within seconds, on whichever core takes the push.
    std::fs::write(
        &file,
        "overrides:\n  small:\n    max_label_names_per_series: 5\n",
    )
    .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut accepted = 0;
    while accepted < 10 && std::time::Instant::now() < deadline {
        let r = push_labels(&server, "small", &labels(3));
        if r.status == 204 {
            accepted += 1;
        } else {
            accepted = 0;
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }
    assert_eq!(accepted, 10, "the raised limit never applied on every core");

    // A broken change is reported and the previous limits stay.
    std::fs::write(&file, "overrides:\n  small: [oops\n").unwrap();
    std::thread::sleep(std::time::Duration::from_secs(5));
    let r = push_labels(&server, "small", &labels(6));
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("limit 5"), "{}", r.text());
    server.terminate_ok();
    let output = server.output();
    assert!(
        output.contains("ignored: overrides.small.max_streams_per_user"),
        "{output}"
    );
    assert!(output.contains("limits file reloaded"), "{output}");
    assert!(output.contains("the previous limits stay"), "{output}");
}

#[test]
fn a_broken_limits_file_stops_the_server_from_starting() {
    let dir = TestDir::new("tenants-bad-file");
    let file = dir.path().join("limits.yaml");
    std::fs::write(&file, "overrides:\n  t1:\n    ingestion_rate_mb: fast\n").unwrap();
    let data = dir.data_dir();
    let (status, output) = run_to_exit(
        &[
            "serve",
            "--data-dir",
            data.to_str().unwrap(),
            "--http-addr",
            "127.0.0.1:0",
            "--syslog-tcp-addr",
            "",
            "--syslog-udp-addr",
            "",
            "--limits-file",
            file.to_str().unwrap(),
        ],
        10_000,
    );
    assert!(!status.success(), "{output}");
    assert!(
        output.contains("limits_file") && output.contains("limits.yaml"),
        "{output}"
    );
}

#[test]
fn syslog_over_its_rate_slows_tcp_and_drops_udp_counted() {
    // 64 KiB a second and at once, for the syslog tenant `fake`.
    let dir = TestDir::new("tenants-syslog");
    let options = ServerOptions {
        extra_args: [
            "--ingestion-rate-mb",
            "0.0625",
            "--ingestion-burst-size-mb",
            "0.0625",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        ..ServerOptions::default()
    };
    let mut server = Server::start_with(&dir, &options);
    let Some(corpus) = common::tools::corpus_lines("HDFS_2k.log") else {
        return;
    };
    let message = |app: &str, line: &str| format!("<14>1 - h {app} - - - {line}");
    // TCP: about twice the burst on one connection; every line is kept.
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", server.syslog_port)).unwrap();
    let mut sent = 0usize;
    for line in &corpus {
        let m = message("tcpapp", line);
        sent += m.len();
        std::io::Write::write_all(&mut tcp, format!("{m}\n").as_bytes()).unwrap();
    }
    assert!(sent > 2 * (64 << 10), "{sent} bytes");
    drop(tcp);
    let n = corpus.len() as u64;
    assert_eq!(server.wait_for_count(r#"{app="tcpapp"}"#, n, 60_000), n);
    let paused = metric_sum(
        &parse_metrics(&server.metrics()),
        "shardlog_connections_paused_for_rate_total",
        &[("listener", "syslog_tcp")],
    );
    assert!(paused >= 1.0, "the connection was never slowed down");

    // UDP right after: the budget is spent, so datagrams beyond it are dropped and counted;
    // the others are kept.
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for (i, line) in corpus.iter().take(1000).enumerate() {
        // A breath now and then, so that the kernel's receive buffer never overflows.
        if i % 50 == 49 {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        udp.send_to(
            message("udpapp", line).as_bytes(),
            ("127.0.0.1", server.syslog_port),
        )
        .unwrap();
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let (mut kept, mut dropped) = (0, 0.0);
    while std::time::Instant::now() < deadline {
        kept = server.index_stats(r#"{app="udpapp"}"#).entries;
        dropped = discarded(&server, "rate_limited");
        if kept as f64 + dropped >= 1000.0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(dropped >= 1.0, "no datagram was over the rate");
    assert_eq!(
        kept as f64 + dropped,
        1000.0,
        "kept {kept}, dropped {dropped}"
    );
    server.terminate_ok();
}

/// The lines of `{app="<app>"}` the tenant reads back, oldest first.
fn lines_of(server: &Server, tenant: &str, app: &str) -> Vec<String> {
    let r = server.get_with(
        &path_with_query(
            "/loki/api/v1/query_range",
            &[
                ("query", &format!(r#"{{app="{app}"}}"#)),
                ("since", "6h"),
                ("direction", "forward"),
                ("limit", "100"),
            ],
        ),
        &[("X-Scope-OrgID", tenant)],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    let mut lines = Vec::new();
    for stream in v["data"]["result"].as_array().unwrap() {
        for value in stream["values"].as_array().unwrap() {
            lines.push(value[1].as_str().unwrap().to_string());
        }
    }
    lines
}

#[test]
fn old_entries_are_refused_with_lokis_message_and_the_rest_is_stored() {
    let (_dir, mut server) = start(
        "tenants-old",
        &["--reject-old-samples", "--reject-old-samples-max-age", "1h"],
    );
    let hour = 3_600_000_000_000i64;
    let now = now_ns();
    // 2020-01-01T00:00:00Z, an hour and a half ago, and a minute ago.
    let body = json!({"streams": [{"stream": {"app": "old"}, "values": [
        ["1577836800000000000", "from 2020"],
        [(now - 3 * hour / 2).to_string(), "too old too"],
        [(now - 60_000_000_000).to_string(), "recent"],
    ]}]});
    let r = server.push_json_as("t", &body);
    assert_eq!(r.status, 400, "{}", r.text());
    let text = r.text();
    assert!(
        text.starts_with(
            "1 errors like: entry for stream '{app=\"old\"}' has timestamp too old: \
             2020-01-01T00:00:00Z, oldest acceptable timestamp is: "
        ),
        "{text}"
    );
    assert_eq!(text.matches("1 errors like: ").count(), 2, "{text}");
    // The recent entry was stored; the old ones were not, and are counted.
    assert_eq!(lines_of(&server, "t", "old"), ["recent"]);
    let metrics = parse_metrics(&server.metrics());
    let refused = metric_sum(
        &metrics,
        "shardlog_tenant_discarded_lines_total",
        &[("reason", "greater_than_max_sample_age"), ("tenant", "t")],
    );
    assert_eq!(refused, 2.0);
    // A push of only recent entries is untouched.
    let r = server.push_json_as("t", &push_body("old", &["new".to_string()], now_ns()));
    assert_eq!(r.status, 204, "{}", r.text());
    server.terminate_ok();
}

#[test]
fn long_lines_are_cut_or_refused_as_the_tenant_says() {
    let (_dir, mut server, _file) = start_with_limits(
        "tenants-long",
        "overrides:\n  cut:\n    max_line_size: 100\n    max_line_size_truncate: true\n  \
         strict:\n    max_line_size: 100\n",
    );
    let long = "x".repeat(299) + "é";
    let body = push_body("long", std::slice::from_ref(&long), now_ns());
    let r = server.push_json_as("cut", &body);
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(lines_of(&server, "cut", "long"), ["x".repeat(100)]);
    let r = server.push_json_as("strict", &body);
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(
        r.text().starts_with("Max entry size '100' bytes exceeded"),
        "{}",
        r.text()
    );
    // Everyone else has the server's 256 KiB.
    let r = server.push_json_as("other", &body);
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(lines_of(&server, "other", "long"), [long]);
    server.terminate_ok();
}

/// A protobuf push as `tenant`, snappy-compressed as Loki clients send it.
fn push_protobuf_as(
    server: &Server,
    tenant: &str,
    request: &common::proto::PushRequest,
) -> common::http::Response {
    server.post(
        "/loki/api/v1/push",
        &[
            ("Content-Type", "application/x-protobuf"),
            ("X-Scope-OrgID", tenant),
        ],
        &common::proto::encode_snappy(request),
    )
}

/// A refused push stores nothing, so every entry of it is counted as discarded, under Loki's
/// reason for the rule it broke; a body that does not parse counts once. Lines cut to fit
/// are stored and counted as mutated, with the bytes cut off.
#[test]
fn refused_entries_are_counted_under_lokis_reasons_and_cut_lines_as_mutated() {
    let (_dir, mut server, _file) = start_with_limits(
        "tenants-reasons",
        "overrides:\n  cut:\n    max_line_size: 100\n    max_line_size_truncate: true\n  \
         v:\n    max_line_size: 100\n",
    );
    let t0 = now_ns();
    let ts = |i: i64| (t0 + i).to_string();
    let refused = |r: common::http::Response| assert_eq!(r.status, 400, "{}", r.text());
    // (a) One line too long: the push's three entries, over two streams, are refused.
    refused(server.push_json_as(
        "v",
        &json!({"streams": [
            {"stream": {"app": "a"}, "values": [[ts(0), "short"]]},
            {"stream": {"app": "b"}, "values": [[ts(1), "x".repeat(101)], [ts(2), "short"]]},
        ]}),
    ));
    // (b) Too many labels, on a stream of two entries.
    let many: serde_json::Map<String, Value> = labels(16)
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    refused(server.push_json_as(
        "v",
        &json!({"streams": [{"stream": many, "values": [[ts(3), "a"], [ts(4), "b"]]}]}),
    ));
    // (c) A label name too long, then a label value too long.
    refused(push_labels(&server, "v", &[("n".repeat(1025), "v".into())]));
    refused(push_labels(
        &server,
        "v",
        &[("app".into(), "v".repeat(2049))],
    ));
    // (d) A label name twice, which a protobuf label string can say, on two entries.
    let request = common::proto::PushRequest {
        streams: vec![common::proto::StreamAdapter {
            labels: r#"{app="d", app="e"}"#.into(),
            entries: vec![
                common::proto::EntryAdapter::new(t0, "one", &[]),
                common::proto::EntryAdapter::new(t0 + 1, "two", &[]),
            ],
            hash: 0,
        }],
    };
    refused(push_protobuf_as(&server, "v", &request));
    // A body that does not parse has no entries to count: it counts once.
    refused(server.post(
        "/loki/api/v1/push",
        &[("Content-Type", "application/json"), ("X-Scope-OrgID", "v")],
        b"{\"streams\": [",
    ));
    // (e) Cut to fit: two lines of 301 bytes lose 201 each, a short one is whole.
    let long = "x".repeat(299) + "é";
    let r = server.push_json_as(
        "cut",
        &push_body("long", &[long.clone(), "short".into(), long], t0),
    );
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(
        lines_of(&server, "cut", "long"),
        ["x".repeat(100), "short".into(), "x".repeat(100)]
    );

    for app in ["a", "b"] {
        assert_eq!(count(&server, "v", app), 0, "{app}");
    }
    let metrics = parse_metrics(&server.metrics());
    let of = |name: &str, reason: &str, tenant: &str| {
        metric_sum(&metrics, name, &[("reason", reason), ("tenant", tenant)])
    };
    let discarded = "shardlog_tenant_discarded_lines_total";
    for (reason, lines) in [
        ("line_too_long", 3.0),
        ("max_label_names_per_series", 2.0),
        ("label_name_too_long", 1.0),
        ("label_value_too_long", 1.0),
        ("duplicate_label_names", 2.0),
        ("invalid_request", 1.0),
    ] {
        assert_eq!(of(discarded, reason, "v"), lines, "{reason}");
        // The per-core series, summed, say the same: no other tenant was refused.
        let total = metric_sum(
            &metrics,
            "shardlog_discarded_lines_total",
            &[("reason", reason)],
        );
        assert_eq!(total, lines, "{reason}");
    }
    assert_eq!(of(discarded, "line_too_long", "cut"), 0.0);
    let mutated_lines = "shardlog_tenant_mutated_lines_total";
    let mutated_bytes = "shardlog_tenant_mutated_bytes_total";
    assert_eq!(of(mutated_lines, "line_too_long", "cut"), 2.0);
    assert_eq!(of(mutated_bytes, "line_too_long", "cut"), 402.0);
    assert_eq!(of(mutated_lines, "line_too_long", "v"), 0.0);
    server.terminate_ok();
}

#[test]
fn at_the_stream_limit_only_new_streams_are_refused() {
    // One core, so that the whole limit is its own (it is divided over the cores).
    let dir = TestDir::new("tenants-streams");
    let options = ServerOptions {
        cores: 1,
        syslog: false,
        extra_args: vec!["--max-global-streams-per-user".into(), "3".into()],
        ..ServerOptions::default()
    };
    let mut server = Server::start_with(&dir, &options);
    let now = now_ns();
    let entry = |app: &str, i: i64| json!({"stream": {"app": app}, "values": [[(now + i).to_string(), format!("{app} {i}")]]});
    let push = |tenant: &str, streams: Vec<Value>| {
        server.push_json_as(tenant, &json!({ "streams": streams }))
    };
    let r = push("t", vec![entry("a", 0), entry("b", 0), entry("c", 0)]);
    assert_eq!(r.status, 204, "{}", r.text());
    // A fourth stream is refused with Loki's text...
    let r = push("t", vec![entry("d", 1)]);
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(
        r.text().trim(),
        "maximum active stream limit exceeded when trying to create stream {app=\"d\"}, reduce \
         the number of active streams (reduce labels or reduce label values), or contact your \
         Loki administrator to see if the limit can be increased, user: 't'"
    );
    assert!(r.header("Retry-After").is_some());
    // ...while the active ones keep flowing, also in a push with a new one.
    let r = push("t", vec![entry("a", 2)]);
    assert_eq!(r.status, 204, "{}", r.text());
    let r = push("t", vec![entry("b", 3), entry("e", 3)]);
    assert_eq!(r.status, 429, "{}", r.text());
    assert!(r.text().contains("stream {app=\"e\"}"), "{}", r.text());
    // Another tenant has its own count.
    let r = push("u", vec![entry("d", 4)]);
    assert_eq!(r.status, 204, "{}", r.text());

    assert_eq!(lines_of(&server, "t", "a"), ["a 0", "a 2"]);
    assert_eq!(lines_of(&server, "t", "b"), ["b 0", "b 3"]);
    assert!(lines_of(&server, "t", "d").is_empty());
    assert!(lines_of(&server, "t", "e").is_empty());
    assert_eq!(lines_of(&server, "u", "d"), ["d 4"]);
    let refused = metric_sum(
        &parse_metrics(&server.metrics()),
        "shardlog_tenant_discarded_lines_total",
        &[("reason", "stream_limit"), ("tenant", "t")],
    );
    assert_eq!(refused, 2.0);
    server.terminate_ok();
}

#[test]
fn syslog_streams_over_the_limit_are_counted_and_the_connection_goes_on() {
    let dir = TestDir::new("tenants-syslog-streams");
    let options = ServerOptions {
        cores: 1,
        // Groups of 80 KB: each group's batches are awaited before the next read, so a
        // refusal that closed the connection would cut off the last group.
        extra_args: [
            "--max-global-streams-per-user",
            "1",
            "--syslog-tcp-unacked-bytes-max",
            "64KiB",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        ..ServerOptions::default()
    };
    let mut server = Server::start_with(&dir, &options);
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", server.syslog_port)).unwrap();
    for (app, n) in [("one", 10), ("two", 10), ("one", 10)] {
        for i in 0..n {
            let pad = "x".repeat(8000);
            let line = format!("<14>1 - h {app} - - - {app} {i} {pad}\n");
            std::io::Write::write_all(&mut tcp, line.as_bytes()).unwrap();
        }
        // One batch per group, so that the second `one` group comes after the refusal.
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    // Every line of the first stream arrived, after the second was refused on the same
    // connection.
    assert_eq!(server.wait_for_count(r#"{app="one"}"#, 20, 30_000), 20);
    assert_eq!(server.index_stats(r#"{app="two"}"#).entries, 0);
    let refused = metric_sum(
        &parse_metrics(&server.metrics()),
        "shardlog_tenant_discarded_lines_total",
        &[("reason", "stream_limit"), ("tenant", "fake")],
    );
    assert_eq!(refused, 10.0);
    drop(tcp);
    server.terminate_ok();
}

#[test]
fn query_limits_are_the_asking_tenants() {
    let (_dir, mut server, _file) = start_with_limits(
        "tenants-query-limits",
        "overrides:\n  small:\n    max_entries_limit_per_query: 10\n    max_query_series: 1\n    \
         max_query_length: 2h\n",
    );
    for tenant in ["small", "big"] {
        for app in ["a", "b"] {
            let r = server.push_json_as(tenant, &push_body(app, &["x".to_string()], now_ns()));
            assert_eq!(r.status, 204, "{}", r.text());
        }
    }
    let ask = |tenant: &str, params: &[(&str, &str)]| {
        server.get_with(
            &path_with_query("/loki/api/v1/query_range", params),
            &[("X-Scope-OrgID", tenant)],
        )
    };
    let logs = [
        ("query", r#"{app=~".+"}"#),
        ("since", "1h"),
        ("limit", "11"),
    ];
    let r = ask("small", &logs);
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("(11 > 10)"), "{}", r.text());
    assert_eq!(ask("big", &logs).status, 200);
    let long = [("query", r#"{app=~".+"}"#), ("since", "3h"), ("limit", "5")];
    let r = ask("small", &long);
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("limit: 2h"), "{}", r.text());
    assert_eq!(ask("big", &long).status, 200);
    let by_app = [
        (
            "query",
            r#"sum by (app) (count_over_time({app=~".+"}[1h]))"#,
        ),
        ("since", "1h"),
        ("step", "3600"),
        // Loki checks `limit` against max_entries_limit_per_query on metric queries too.
        ("limit", "5"),
    ];
    let r = ask("small", &by_app);
    assert!(
        r.text().contains("maximum number of series (1)"),
        "{}",
        r.text()
    );
    let r = ask("big", &by_app);
    assert_eq!(r.status, 200, "{}", r.text());
    // Logs Drilldown reads the asking tenant's limits.
    let limits = |tenant: &str| {
        let r = server.get_with(
            "/loki/api/v1/drilldown-limits",
            &[("X-Scope-OrgID", tenant)],
        );
        r.json()["limits"]["max_entries_limit_per_query"].clone()
    };
    assert_eq!(limits("small"), json!(10));
    assert_eq!(limits("big"), json!(5000));
    server.terminate_ok();
}

/// `logger` sending `lines` tagged `app` to `port` over `protocol` (`--tcp` or `--udp`).
fn logger_send(port: u16, protocol: &str, app: &str, lines: &[String]) {
    for line in lines {
        let status = std::process::Command::new("logger")
            .env("TZ", "UTC")
            .args(["-n", "127.0.0.1", "-P", &port.to_string(), protocol])
            .args(["--rfc5424", "-t", app, line])
            .status()
            .expect("logger runs");
        assert!(status.success(), "logger {protocol} to {port}");
    }
}

/// Lines the tenant reads of `{app}`, waiting (bounded) until `expected` are there.
fn wait_lines(server: &Server, tenant: &str, app: &str, expected: usize) -> Vec<String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let lines = lines_of(server, tenant, app);
        if lines.len() >= expected || std::time::Instant::now() > deadline {
            return lines;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn each_syslog_listener_stores_under_its_tenant_with_its_limits() {
    if !common::tools::require_program("logger", "Debian package bsdutils / util-linux") {
        return;
    }
    // The default listener stores under `alpha`; a [[syslog]] section adds one for `beta`,
    // whose rate (64 KiB a second and at once) is the limits file's.
    let dir = TestDir::new("tenants-syslog-listeners");
    let (_, beta_port) = common::server::free_ports(true);
    let config = dir.path().join("shardlog.toml");
    std::fs::write(
        &config,
        format!(
            "syslog_tenant = \"alpha\"\n\n[[syslog]]\nlisten = \"127.0.0.1:{beta_port}\"\n\
             protocols = [\"tcp\", \"udp\"]\ntenant = \"beta\"\n"
        ),
    )
    .unwrap();
    let limits = dir.path().join("limits.yaml");
    std::fs::write(
        &limits,
        "overrides:\n  beta:\n    ingestion_rate_mb: 0.0625\n    ingestion_burst_size_mb: 0.0625\n",
    )
    .unwrap();
    let options = ServerOptions {
        extra_args: vec![
            "--config".into(),
            config.display().to_string(),
            "--limits-file".into(),
            limits.display().to_string(),
        ],
        ..ServerOptions::default()
    };
    let mut server = Server::start_with(&dir, &options);
    let alpha_port = server.syslog_port;

    // Isolation: each tenant reads exactly the lines its listener received, over both
    // protocols, and nothing of the other's.
    let said = |who: &str, proto: &str| -> Vec<String> {
        (0..3).map(|i| format!("{who} over {proto} {i}")).collect()
    };
    logger_send(alpha_port, "--tcp", "tcpapp", &said("alpha", "tcp"));
    logger_send(alpha_port, "--udp", "udpapp", &said("alpha", "udp"));
    logger_send(beta_port, "--tcp", "tcpapp", &said("beta", "tcp"));
    logger_send(beta_port, "--udp", "udpapp", &said("beta", "udp"));
    for tenant in ["alpha", "beta"] {
        for (app, proto) in [("tcpapp", "tcp"), ("udpapp", "udp")] {
            assert_eq!(
                wait_lines(&server, tenant, app, 3),
                said(tenant, proto),
                "{tenant} {app}"
            );
        }
    }
    assert!(lines_of(&server, "fake", "tcpapp").is_empty());

    // Limits: a datagram flood to beta's listener goes over beta's rate and is dropped and
    // counted under beta; the same flood to alpha's listener (no rate) is kept whole.
    let Some(corpus) = common::tools::corpus_lines("HDFS_2k.log") else {
        return;
    };
    let message = |line: &str| format!("<14>1 - h flood - - - {line}");
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let sent = 1000;
    for port in [beta_port, alpha_port] {
        for (i, line) in corpus.iter().take(sent).enumerate() {
            // A breath now and then, so that the kernel's receive buffer never overflows.
            if i % 50 == 49 {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            udp.send_to(message(line).as_bytes(), ("127.0.0.1", port))
                .unwrap();
        }
    }
    let dropped_of = |tenant: &str| {
        metric_sum(
            &parse_metrics(&server.metrics()),
            "shardlog_tenant_discarded_lines_total",
            &[("reason", "rate_limited"), ("tenant", tenant)],
        )
    };
    let entries_of = |tenant: &str| {
        let r = server.get_with(
            &path_with_query(
                "/loki/api/v1/index/stats",
                &[("query", r#"{app="flood"}"#), ("since", "1000h")],
            ),
            &[("X-Scope-OrgID", tenant)],
        );
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()["entries"].as_f64().unwrap()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let (mut beta, mut alpha) = ((0.0, 0.0), 0.0);
    while std::time::Instant::now() < deadline {
        beta = (entries_of("beta"), dropped_of("beta"));
        alpha = entries_of("alpha");
        if beta.0 + beta.1 >= sent as f64 && alpha >= sent as f64 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(
        beta.1 >= 1.0,
        "no datagram to beta's listener was over beta's rate"
    );
    assert_eq!(
        beta.0 + beta.1,
        sent as f64,
        "beta kept {}, dropped {}",
        beta.0,
        beta.1
    );
    assert_eq!((alpha, dropped_of("alpha")), (sent as f64, 0.0));
    server.terminate_ok();
}

/// Lines the tenant discarded for `reason`, by `/metrics`.
fn discarded_of(server: &Server, tenant: &str, reason: &str) -> f64 {
    metric_sum(
        &parse_metrics(&server.metrics()),
        "shardlog_tenant_discarded_lines_total",
        &[("reason", reason), ("tenant", tenant)],
    )
}

#[test]
fn a_stream_over_its_own_rate_is_refused_whole_and_the_others_stored() {
    // 1 KiB a second per stream, 2 KiB at once.
    let (_dir, server) = start(
        "tenants-stream-rate",
        &[
            "--per-stream-rate-limit",
            "1KiB",
            "--per-stream-rate-limit-burst",
            "2KiB",
        ],
    );
    let t0 = now_ns() - 1_000_000_000;
    let line = |i: usize| format!("{i:04} {}", "x".repeat(495));
    let first: Vec<String> = (0..3).map(line).collect();
    let r = server.push_json_as("t", &push_body("fast", &first, t0));
    assert_eq!(r.status, 204, "{}", r.text());
    // Right after, 1500 more bytes for `fast` do not fit its budget; `slow` is untouched.
    let more: Vec<String> = (3..6).map(line).collect();
    let body = json!({"streams": [
        {"stream": {"app": "fast"}, "values": more.iter().enumerate()
            .map(|(i, l)| json!([(t0 + 10 + i as i64).to_string(), l])).collect::<Vec<_>>()},
        {"stream": {"app": "slow"}, "values": [[(t0 + 20).to_string(), "slow line"]]},
    ]});
    let r = server.push_json_as("t", &body);
    assert_eq!(r.status, 429, "{}", r.text());
    assert!(r.header("retry-after").is_some());
    let text = r.text();
    assert!(
        text.contains(
            "ignored, reason: 'Per stream rate limit exceeded (limit: 1KB/sec) while attempting \
             to ingest for stream '{app=\"fast\"}' totaling 500B, consider splitting a stream \
             via additional labels or contact your Loki administrator to see if the limit can \
             be increased',"
        ),
        "{text}"
    );
    assert!(
        text.trim_end()
            .ends_with("user 't', total ignored: 3 out of 3 for stream: {app=\"fast\"}"),
        "{text}"
    );
    // The refused stream's part is stored not at all, the other stream's whole.
    assert_eq!(lines_of(&server, "t", "fast"), first);
    assert_eq!(lines_of(&server, "t", "slow"), ["slow line"]);
    assert_eq!(discarded_of(&server, "t", "per_stream_rate_limit"), 3.0);
    // Another tenant's stream of the same labels has its own budget.
    let r = server.push_json_as("u", &push_body("fast", &first, t0));
    assert_eq!(r.status, 204, "{}", r.text());
}

#[test]
fn entries_too_far_in_the_future_are_refused_with_lokis_message() {
    let (_dir, server) = start("tenants-grace", &["--creation-grace-period", "1m"]);
    let now = now_ns();
    let ahead = now + 5 * 60 * 1_000_000_000;
    let body = json!({"streams": [{"stream": {"app": "g"}, "values": [
        [now.to_string(), "on time"],
        [ahead.to_string(), "from the future"],
    ]}]});
    let r = server.push_json_as("t", &body);
    assert_eq!(r.status, 400, "{}", r.text());
    let expected = format!(
        "entry for stream '{{app=\"g\"}}' has timestamp too new: {}",
        time::OffsetDateTime::from_unix_timestamp(ahead / 1_000_000_000)
            .unwrap()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    );
    assert_eq!(r.text().trim(), expected);
    assert_eq!(lines_of(&server, "t", "g"), ["on time"]);
    assert_eq!(discarded_of(&server, "t", "too_far_in_future"), 1.0);
    // Within the grace period an entry is stored with its own time, not clamped.
    let soon = now + 30 * 1_000_000_000;
    let r = server.push_json_as(
        "t",
        &json!({"streams": [{"stream": {"app": "soon"}, "values": [[soon.to_string(), "soon"]]}]}),
    );
    assert_eq!(r.status, 204, "{}", r.text());
    let v = server
        .get_with(
            &path_with_query(
                "/loki/api/v1/query_range",
                &[
                    ("query", r#"{app="soon"}"#),
                    ("start", &(now - 1_000_000_000).to_string()),
                    ("end", &(now + 60 * 1_000_000_000).to_string()),
                ],
            ),
            &[("X-Scope-OrgID", "t")],
        )
        .json();
    assert_eq!(
        v["data"]["result"][0]["values"][0][0],
        soon.to_string(),
        "{v}"
    );
}

#[test]
fn the_active_streams_gauge_counts_per_tenant_and_survives_a_restart() {
    let dir = TestDir::new("tenants-active-gauge");
    let options = ServerOptions {
        syslog: false,
        ..ServerOptions::default()
    };
    let mut server = Server::start_with(&dir, &options);
    let t0 = now_ns() - 1_000_000_000;
    for (tenant, apps) in [("t", &["a", "b", "c"][..]), ("u", &["a"][..])] {
        for app in apps {
            let r = server.push_json_as(tenant, &push_body(app, &["x".to_string()], t0));
            assert_eq!(r.status, 204, "{}", r.text());
        }
    }
    let gauge = |server: &Server, tenant: &str| {
        metric_sum(
            &parse_metrics(&server.metrics()),
            "shardlog_tenant_active_streams",
            &[("tenant", tenant)],
        )
    };
    assert_eq!((gauge(&server, "t"), gauge(&server, "u")), (3.0, 1.0));
    server.terminate_ok();
    // Rebuilt from the streams the WAL replay recovers.
    let server = Server::start_with(&dir, &options);
    assert_eq!((gauge(&server, "t"), gauge(&server, "u")), (3.0, 1.0));
}

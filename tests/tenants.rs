//! Tenants against the real binary: with `--auth-enabled` a request without `X-Scope-OrgID`
//! is Loki's 401 and stores nothing; a tenant over its ingestion rate gets Loki's 429 text
//! with `Retry-After`, counted as `rate_limited`, while another tenant pushes on untouched,
//! and nothing of a refused push is stored.

mod common;

use common::loki::{metric_sum, parse_metrics, path_with_query};
use common::{Server, ServerOptions, TestDir, now_ns};
use serde_json::{Value, json};

fn start(name: &str, extra: &[&str]) -> (TestDir, Server) {
    let dir = TestDir::new(name);
    let options = ServerOptions {
        syslog: false,
        extra_args: extra.iter().map(|s| s.to_string()).collect(),
        ..ServerOptions::default()
    };
    let server = Server::start_with(&dir, &options);
    (dir, server)
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
    // After Retry-After, the budget has refilled.
    std::thread::sleep(std::time::Duration::from_secs(retry));
    let r = server.push_json_as("noisy", &push_body("rated", &lines, t0 + 2_000_000));
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(count(&server, "noisy", "rated"), 1600);
    server.terminate_ok();
}

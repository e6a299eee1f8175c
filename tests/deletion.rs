//! Deletion and per-tenant retention against the real binary.
//!
//! - Loki's delete API: a `POST /loki/api/v1/delete` with a selector, a line filter and a
//!   time range hides the lines it covers from log and metric queries as soon as it is
//!   answered 204, including lines still in heads, and nothing else: not the tenant's other
//!   streams or lines, not another tenant's identical lines. The request is listed with
//!   Loki's fields, only to its tenant; once every part holding its lines was rewritten it
//!   is `processed`, and the part files on disk (decoded here) no longer hold them.
//! - Bad requests get Loki's 400 texts; a request can be cancelled within the cancel period
//!   (its lines come back), never by another tenant. A query with a pipeline (a parser and
//!   label filters) deletes the lines that pass it.
//! - A kill -9 while a part is being rewritten (the test pauses the rewrite just before and
//!   just after its manifest commit): after the restart the lines stay hidden, and the next
//!   passes remove them from disk.
//! - Retention per tenant (`retention_period`, `retention_stream` in the limits file): a
//!   pass removes expired lines, by the highest-priority matching rule, and only the
//!   tenant's.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::loki::{metric_sum, parse_metrics, path_with_query};
use common::server::call;
use common::{Server, ServerOptions, TestDir, entries, now_ns};
use serde_json::{Value, json};

const SECOND_NS: i64 = 1_000_000_000;
const HOUR_NS: i64 = 3600 * SECOND_NS;
/// How long the background passes get to finish a delete (rewrites of a few small parts,
/// after a seal of at most `SEAL_AGE`).
const PROCESS_WAIT: Duration = Duration::from_secs(30);
/// Heads are sealed quickly, so that lines that were in heads when a delete arrived reach
/// parts (and are rewritten) within the test.
const SEAL_AGE: &str = "500ms";

fn options(extra: &[&str]) -> ServerOptions {
    let mut args: Vec<String> = vec!["--seal-age".into(), SEAL_AGE.into()];
    args.extend(extra.iter().map(|s| s.to_string()));
    ServerOptions {
        syslog: false,
        extra_args: args,
        ..ServerOptions::default()
    }
}

/// Pushes `lines` (one a second from `t0`) to stream `{app}` of `tenant`.
fn push(server: &Server, tenant: &str, app: &str, t0: i64, lines: &[String]) {
    let values: Vec<Value> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| json!([(t0 + i as i64 * SECOND_NS).to_string(), l]))
        .collect();
    let body = json!({"streams": [{"stream": {"app": app}, "values": values}]});
    let r = server.push_json_as(tenant, &body);
    assert_eq!(r.status, 204, "push: {}", r.text());
}

/// Lines `"<tenant> <app> secret i"` and `"<tenant> <app> public i"`, alternating.
fn lines(tenant: &str, app: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let kind = if i % 2 == 0 { "secret" } else { "public" };
            format!("{tenant} {app} {kind} {i}")
        })
        .collect()
}

/// Every line of `query` for `tenant` from `since_ns` ago to now.
fn query_lines(server: &Server, tenant: &str, query: &str, since_ns: i64) -> Vec<String> {
    let start = (now_ns() - since_ns).to_string();
    let end = (now_ns() + SECOND_NS).to_string();
    let r = server.query_range_response(
        &[
            ("query", query),
            ("start", &start),
            ("end", &end),
            ("limit", "5000"),
            ("direction", "forward"),
        ],
        &[("X-Scope-OrgID", tenant)],
    );
    assert_eq!(r.status, 200, "{query}: {}", r.text());
    entries(&r.json()).into_iter().map(|e| e.line).collect()
}

/// The value of an instant metric query for `tenant` (0 when the result is empty).
fn count(server: &Server, tenant: &str, query: &str) -> u64 {
    let r = server.get_with(
        &path_with_query(
            "/loki/api/v1/query",
            &[("query", query), ("time", &now_ns().to_string())],
        ),
        &[("X-Scope-OrgID", tenant)],
    );
    assert_eq!(r.status, 200, "{query}: {}", r.text());
    r.json()["data"]["result"][0]["value"][1]
        .as_str()
        .map_or(0, |n| n.parse().expect("a count"))
}

fn delete_path(params: &[(&str, &str)]) -> String {
    path_with_query("/loki/api/v1/delete", params)
}

/// `POST /loki/api/v1/delete` as `tenant`; returns the status, the body and the request id.
fn post_delete(server: &Server, tenant: &str, params: &[(&str, &str)]) -> (u16, String, String) {
    let r = call(
        server,
        "POST",
        &delete_path(params),
        &[("X-Scope-OrgID", tenant)],
        &[],
    );
    let id = r.header("X-Delete-Request-ID").unwrap_or("").to_string();
    (r.status, r.text(), id)
}

/// A status as Loki lists one: `received`, `processed`, or `<n>% Complete` while some of the
/// work (Loki's day shards, our cores) is done.
fn is_loki_status(status: &Value) -> bool {
    let s = status.as_str().unwrap_or("");
    s == "received"
        || s == "processed"
        || s.strip_suffix("% Complete")
            .and_then(|n| n.parse::<u32>().ok())
            .is_some_and(|n| n < 100)
}

fn list_deletes(server: &Server, tenant: &str) -> Value {
    let r = server.get_with("/loki/api/v1/delete", &[("X-Scope-OrgID", tenant)]);
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

/// Waits until the tenant's request `id` is `processed`.
fn wait_processed(server: &Server, tenant: &str, id: &str) {
    let deadline = Instant::now() + PROCESS_WAIT;
    loop {
        let list = list_deletes(server, tenant);
        let status = list
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["request_id"] == id)
            .map(|r| r["status"].clone());
        if status == Some(json!("processed")) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "request {id} not processed after {PROCESS_WAIT:?}: {list}; server output:\n{}",
            server.output()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Every line in the part files under the data directory, decoded.
fn lines_on_disk(data_dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let shards = data_dir.join("shards");
    for shard in std::fs::read_dir(&shards).unwrap() {
        let parts = shard.unwrap().path().join("parts");
        let Ok(partitions) = std::fs::read_dir(&parts) else {
            continue;
        };
        for partition in partitions {
            for file in std::fs::read_dir(partition.unwrap().path()).unwrap() {
                let path = file.unwrap().path();
                if path.extension().and_then(|e| e.to_str()) != Some("part") {
                    continue;
                }
                let bytes = std::fs::read(&path).unwrap();
                let reader = shardlog::chunk::PartReader::open(&bytes, &path)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                for i in 0..reader.blocks().len() {
                    let block = reader.block(i).unwrap();
                    out.extend(block.iter().map(|e| e.line.to_string()));
                }
            }
        }
    }
    out
}

/// Waits until every line pushed is in a part (nothing left in heads).
fn wait_sealed(server: &Server, lines: u64) {
    let deadline = Instant::now() + PROCESS_WAIT;
    loop {
        let sealed = metric_sum(
            &parse_metrics(&server.metrics()),
            "shardlog_sealed_entries_total",
            &[],
        );
        if sealed as u64 >= lines {
            return;
        }
        assert!(Instant::now() < deadline, "only {sealed} of {lines} sealed");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn secs(ns: i64) -> String {
    (ns / SECOND_NS).to_string()
}

#[test]
fn deleted_lines_vanish_from_queries_at_once_and_from_disk_after_the_rewrite() {
    let dir = TestDir::new("deletion-basic");
    let server = Server::start_with(&dir, &options(&["--delete-request-cancel-period", "0s"]));
    let t0 = now_ns() - 10 * 60 * SECOND_NS;
    // Sealed before the delete: these lines are in parts.
    push(&server, "alpha", "web", t0, &lines("alpha", "web", 20));
    push(&server, "alpha", "db", t0, &lines("alpha", "db", 20));
    push(&server, "beta", "web", t0, &lines("beta", "web", 20));
    wait_sealed(&server, 60);
    // Still in heads when the delete arrives.
    let t1 = t0 + 60 * SECOND_NS;
    let late: Vec<String> = lines("alpha", "web", 20)
        .into_iter()
        .map(|l| format!("{l} late"))
        .collect();
    push(&server, "alpha", "web", t1, &late);

    let (status, body, id) = post_delete(
        &server,
        "alpha",
        &[
            ("query", r#"{app="web"} |= "secret""#),
            ("start", &secs(t0 - SECOND_NS)),
            ("end", &secs(now_ns())),
        ],
    );
    assert_eq!(status, 204, "{body}");
    assert_eq!(id.len(), 8, "Loki's request ids are 8 hex digits: {id:?}");

    // At once: gone from log and metric queries, heads included; the rest untouched.
    let web = query_lines(&server, "alpha", r#"{app="web"}"#, HOUR_NS);
    assert_eq!(web.len(), 20, "{web:?}");
    assert!(web.iter().all(|l| l.contains("public")), "{web:?}");
    assert_eq!(
        count(
            &server,
            "alpha",
            r#"sum(count_over_time({app="web"} |= "secret" [1h]))"#
        ),
        0
    );
    assert_eq!(
        count(
            &server,
            "alpha",
            r#"sum(count_over_time({app="web"} [1h]))"#
        ),
        20
    );
    assert_eq!(
        query_lines(&server, "alpha", r#"{app="db"}"#, HOUR_NS).len(),
        20
    );
    assert_eq!(
        query_lines(&server, "beta", r#"{app="web"}"#, HOUR_NS).len(),
        20
    );

    // Listed with Loki's fields, to its tenant only.
    let list = list_deletes(&server, "alpha");
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    let r = &list[0];
    assert_eq!(r["request_id"], id.as_str());
    assert_eq!(r["query"], r#"{app="web"} |= "secret""#);
    assert!(
        r["start_time"].is_number() && r["end_time"].is_number() && r["created_at"].is_number()
    );
    assert!(is_loki_status(&r["status"]), "{r}");
    assert_eq!(list_deletes(&server, "beta"), json!([]));
    // Filtered by overlap with a range, as Loki does.
    let overlapping = |start: i64, end: i64| {
        let path = delete_path(&[("start", &secs(start)), ("end", &secs(end))]);
        let r = server.get_with(&path, &[("X-Scope-OrgID", "alpha")]);
        assert_eq!(r.status, 200, "{}", r.text());
        r.json().as_array().unwrap().len()
    };
    assert_eq!(overlapping(t0, t0 + SECOND_NS), 1);
    assert_eq!(overlapping(t0 - 3 * HOUR_NS, t0 - 2 * HOUR_NS), 0);

    // After the rewrite: processed, and the part files no longer hold the lines.
    wait_processed(&server, "alpha", &id);
    wait_sealed(&server, 80);
    let disk = lines_on_disk(&server.data_dir);
    assert!(
        !disk.iter().any(|l| l.starts_with("alpha web secret")),
        "deleted lines still on disk"
    );
    for prefix in ["alpha web public", "alpha db secret", "beta web secret"] {
        let n = disk.iter().filter(|l| l.starts_with(prefix)).count();
        let expected = if prefix == "alpha web public" { 20 } else { 10 };
        assert_eq!(n, expected, "{prefix}: {disk:?}");
    }
    let metrics = parse_metrics(&server.metrics());
    assert_eq!(
        metric_sum(
            &metrics,
            "shardlog_deleted_lines_total",
            &[("tenant", "alpha")]
        ),
        20.0
    );
    assert_eq!(
        metric_sum(
            &metrics,
            "shardlog_delete_requests_received_total",
            &[("tenant", "alpha")]
        ),
        1.0
    );
    assert!(metric_sum(&metrics, "shardlog_rewritten_parts_total", &[]) >= 1.0);
    // Processed: queries no longer test lines against it, and still see none of them.
    let web = query_lines(&server, "alpha", r#"{app="web"}"#, HOUR_NS);
    assert_eq!(web.len(), 20, "{web:?}");
}

#[test]
fn bad_requests_get_lokis_texts_and_a_request_is_cancelled_by_its_tenant_only() {
    let dir = TestDir::new("deletion-cancel");
    let server = Server::start_with(&dir, &options(&[]));
    let t0 = now_ns() - 5 * 60 * SECOND_NS;
    push(&server, "alpha", "web", t0, &lines("alpha", "web", 10));
    let start = secs(t0 - SECOND_NS);
    let cases: [(&[(&str, &str)], &str); 4] = [
        (&[("start", "1600000000")], "query not set"),
        (&[("query", "{app=")], "invalid query expression"),
        (&[("query", r#"{app="web"}"#)], "start time not set"),
        (
            &[
                ("query", r#"{app="web"}"#),
                ("start", "1600000000"),
                ("end", "4000000000"),
            ],
            "deletes in the future are not allowed",
        ),
    ];
    for (params, text) in cases {
        let (status, body, _) = post_delete(&server, "alpha", params);
        assert_eq!((status, body.trim()), (400, text), "{params:?}");
    }

    let (status, body, id) = post_delete(
        &server,
        "alpha",
        &[("query", r#"{app="web"}"#), ("start", &start)],
    );
    assert_eq!(status, 204, "{body}");
    assert!(query_lines(&server, "alpha", r#"{app="web"}"#, HOUR_NS).is_empty());
    let status = &list_deletes(&server, "alpha")[0]["status"];
    assert!(
        is_loki_status(status) && status != "processed",
        "not processed yet: {status}"
    );

    // Another tenant cannot see or cancel it.
    let cancel = |tenant: &str, id: &str| {
        call(
            &server,
            "DELETE",
            &delete_path(&[("request_id", id)]),
            &[("X-Scope-OrgID", tenant)],
            &[],
        )
    };
    let r = cancel("beta", &id);
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(
        r.text().trim(),
        "could not find delete request with given id"
    );
    assert_eq!(cancel("alpha", "ffffffff").status, 404);
    let r = cancel("alpha", &id);
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(list_deletes(&server, "alpha"), json!([]));
    assert_eq!(
        query_lines(&server, "alpha", r#"{app="web"}"#, HOUR_NS).len(),
        10,
        "a cancelled request hides nothing"
    );

    // A pipeline after the selector, as Loki allows: a line goes if it passes all of it.
    let (status, body, _) = post_delete(
        &server,
        "alpha",
        &[
            (
                "query",
                r#"{app="web"} | pattern "<_> <_> <kind> <n>" | kind="secret" and n < 6"#,
            ),
            ("start", &start),
        ],
    );
    assert_eq!(status, 204, "{body}");
    let mut left = query_lines(&server, "alpha", r#"{app="web"}"#, HOUR_NS);
    left.sort();
    let mut expected: Vec<String> = lines("alpha", "web", 10)
        .into_iter()
        .filter(|l| {
            !["secret 0", "secret 2", "secret 4"]
                .iter()
                .any(|s| l.ends_with(s))
        })
        .collect();
    expected.sort();
    assert_eq!(left, expected);
}

/// One kill -9 with the rewrite stopped at `point`, then a restart without the pause.
fn kill_during_rewrite(point: &str) {
    let dir = TestDir::new(&format!("deletion-crash-{point}"));
    let opts = options(&["--delete-request-cancel-period", "0s"]);
    let mut server =
        Server::start_unready_with_env(&dir, &opts, &[("SHARDLOG_TEST_REWRITE_PAUSE", point)]);
    server.wait_ready().unwrap();
    let t0 = now_ns() - 10 * 60 * SECOND_NS;
    push(&server, "alpha", "web", t0, &lines("alpha", "web", 40));
    push(&server, "alpha", "api", t0, &lines("alpha", "api", 40));
    wait_sealed(&server, 80);
    let (status, body, id) = post_delete(
        &server,
        "alpha",
        &[
            ("query", r#"{app=~"web|api"} |= "secret""#),
            ("start", &secs(t0 - SECOND_NS)),
        ],
    );
    assert_eq!(status, 204, "{body}");
    let marker = format!("a part rewrite stops {point}");
    let deadline = Instant::now() + PROCESS_WAIT;
    while !server.output().contains(&marker) {
        assert!(
            Instant::now() < deadline,
            "the rewrite never reached {point}: {}",
            server.output()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    server.kill9();

    let server = Server::start_with(&dir, &opts);
    for app in ["web", "api"] {
        let got = query_lines(&server, "alpha", &format!(r#"{{app="{app}"}}"#), HOUR_NS);
        assert_eq!(got.len(), 20, "{point}: {app}: {got:?}");
        assert!(got.iter().all(|l| l.contains("public")), "{point}: {got:?}");
    }
    assert_eq!(list_deletes(&server, "alpha")[0]["request_id"], id.as_str());
    wait_processed(&server, "alpha", &id);
    let disk = lines_on_disk(&server.data_dir);
    assert!(
        !disk.iter().any(|l| l.contains("secret")),
        "{point}: deleted lines still on disk"
    );
    assert_eq!(
        disk.iter().filter(|l| l.contains("public")).count(),
        40,
        "{point}: kept lines lost or doubled"
    );
}

#[test]
fn a_kill_while_a_part_is_rewritten_keeps_lines_hidden_and_the_restart_removes_them() {
    kill_during_rewrite("written");
    kill_during_rewrite("committed");
}

#[test]
fn retention_per_tenant_drops_expired_lines_by_the_matching_rule() {
    let dir = TestDir::new("deletion-retention");
    let limits = dir.path().join("limits.yaml");
    std::fs::write(
        &limits,
        "overrides:\n  alpha:\n    retention_period: 72h\n    retention_stream:\n    - selector: '{app=\"short\"}'\n      priority: 1\n      period: 48h\n",
    )
    .unwrap();
    let server = Server::start_with(
        &dir,
        &options(&[
            "--limits-file",
            &limits.display().to_string(),
            "--retention-interval",
            "1s",
        ]),
    );
    let now = now_ns();
    let line = |what: &str| vec![what.to_string(), format!("{what} again")];
    // `short`: 48h; `other`: the tenant's 72h; beta keeps everything.
    push(
        &server,
        "alpha",
        "short",
        now - 60 * HOUR_NS,
        &line("short expired"),
    );
    push(
        &server,
        "alpha",
        "short",
        now - HOUR_NS,
        &line("short kept"),
    );
    push(
        &server,
        "alpha",
        "other",
        now - 60 * HOUR_NS,
        &line("other kept"),
    );
    push(
        &server,
        "alpha",
        "other",
        now - 100 * HOUR_NS,
        &line("other expired"),
    );
    push(
        &server,
        "beta",
        "short",
        now - 100 * HOUR_NS,
        &line("beta kept"),
    );
    let deadline = Instant::now() + PROCESS_WAIT;
    loop {
        let dropped = metric_sum(
            &parse_metrics(&server.metrics()),
            "shardlog_retention_dropped_lines_total",
            &[("tenant", "alpha")],
        );
        if dropped >= 4.0 {
            assert_eq!(dropped, 4.0);
            break;
        }
        assert!(Instant::now() < deadline, "{dropped} lines dropped");
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut alpha = query_lines(&server, "alpha", r#"{app=~"short|other"}"#, 120 * HOUR_NS);
    alpha.sort();
    assert_eq!(
        alpha,
        [
            "other kept",
            "other kept again",
            "short kept",
            "short kept again"
        ]
    );
    assert_eq!(
        query_lines(&server, "beta", r#"{app="short"}"#, 120 * HOUR_NS).len(),
        2
    );
    let disk = lines_on_disk(&server.data_dir);
    assert!(!disk.iter().any(|l| l.contains("expired")), "{disk:?}");
}

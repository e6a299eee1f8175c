//! Multi-tenant reads against the real binary, as Loki's `MultiTenantQuerier` answers them.
//! With `--multi-tenant-queries`, `X-Scope-OrgID: a|b` reads exactly the union of `a`'s and
//! `b`'s data, every stream and series labelled `__tenant_id__`, and a `__tenant_id__`
//! matcher picks tenants; a third tenant's data never shows. Without the flag such a read is
//! refused with Loki's `multiple org IDs present`, and a push naming two tenants is refused
//! always.

mod common;

use std::collections::BTreeMap;

use common::loki::path_with_query;
use common::{Server, TestDir, now_ns};
use serde_json::{Value, json};

const TENANTS: [&str; 3] = ["alpha", "beta", "gamma"];

/// Lines each tenant pushes to `{app="web"}` and `{app="db"}`.
const LINES_PER_STREAM: usize = 5;

/// Pushes `LINES_PER_STREAM` lines to two streams as each tenant; lines name their tenant.
fn push_all(server: &Server, t0: i64) {
    for (n, tenant) in TENANTS.iter().enumerate() {
        let streams: Vec<Value> = ["web", "db"]
            .iter()
            .map(|app| {
                let values: Vec<Value> = (0..LINES_PER_STREAM)
                    .map(|i| {
                        let ts = t0 + (n * 100 + i) as i64 * 1_000_000;
                        json!([ts.to_string(), format!("{tenant} {app} line {i}")])
                    })
                    .collect();
                json!({"stream": {"app": app}, "values": values})
            })
            .collect();
        let r = server.push_json_as(tenant, &json!({ "streams": streams }));
        assert_eq!(r.status, 204, "push as {tenant}: {}", r.text());
    }
}

fn get(server: &Server, org: &str, path: &str, params: &[(&str, &str)]) -> common::http::Response {
    server.get_with(&path_with_query(path, params), &[("X-Scope-OrgID", org)])
}

fn get_ok(server: &Server, org: &str, path: &str, params: &[(&str, &str)]) -> Value {
    let r = get(server, org, path, params);
    assert_eq!(r.status, 200, "{path} {params:?} as {org}: {}", r.text());
    r.json()
}

fn range(t0: i64) -> (String, String) {
    (
        (t0 - 60_000_000_000).to_string(),
        (now_ns() + 60_000_000_000).to_string(),
    )
}

/// Lines of a log query by their stream's labels.
fn lines_by_stream(
    server: &Server,
    org: &str,
    query: &str,
    t0: i64,
) -> BTreeMap<String, Vec<String>> {
    let (start, end) = range(t0);
    let v = get_ok(
        server,
        org,
        "/loki/api/v1/query_range",
        &[
            ("query", query),
            ("start", &start),
            ("end", &end),
            ("limit", "1000"),
            ("direction", "forward"),
        ],
    );
    let mut out = BTreeMap::new();
    for s in v["data"]["result"].as_array().expect("streams") {
        let lines: Vec<String> = s["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e[1].as_str().unwrap().to_string())
            .collect();
        out.insert(s["stream"].to_string(), lines);
    }
    out
}

fn stream_key(app: &str, tenant: &str) -> String {
    json!({"__tenant_id__": tenant, "app": app}).to_string()
}

fn expected_lines(tenant: &str, app: &str) -> Vec<String> {
    (0..LINES_PER_STREAM)
        .map(|i| format!("{tenant} {app} line {i}"))
        .collect()
}

#[test]
fn a_read_of_two_tenants_sees_exactly_their_union_labelled_by_tenant() {
    let (_dir, server) = Server::start_http_only("mtq-union", &["--multi-tenant-queries"]);
    let t0 = now_ns() - 10_000_000_000;
    push_all(&server, t0);

    // Log query: the union of alpha's and beta's streams, each labelled, gamma absent.
    let found = lines_by_stream(&server, "alpha|beta", r#"{app=~"web|db"}"#, t0);
    let mut want = BTreeMap::new();
    for tenant in ["alpha", "beta"] {
        for app in ["web", "db"] {
            want.insert(stream_key(app, tenant), expected_lines(tenant, app));
        }
    }
    assert_eq!(found, want);

    // The order of the header does not matter, and a tenant listed twice is read once.
    assert_eq!(
        lines_by_stream(&server, "beta|alpha|beta", r#"{app=~"web|db"}"#, t0),
        want
    );

    // A `__tenant_id__` matcher picks tenants; line filters and parsers still apply.
    let only_beta = lines_by_stream(
        &server,
        "alpha|beta",
        r#"{app="web", __tenant_id__="beta"}"#,
        t0,
    );
    assert_eq!(
        only_beta,
        BTreeMap::from([(stream_key("web", "beta"), expected_lines("beta", "web"))])
    );
    let not_alpha = lines_by_stream(
        &server,
        "alpha|beta|gamma",
        r#"{__tenant_id__!="alpha", app="db"} |= "line 3""#,
        t0,
    );
    assert_eq!(
        not_alpha,
        BTreeMap::from([
            (stream_key("db", "beta"), vec!["beta db line 3".to_string()]),
            (
                stream_key("db", "gamma"),
                vec!["gamma db line 3".to_string()]
            ),
        ])
    );
    // A tenant the header does not list is not read, whatever the matcher says.
    assert!(
        lines_by_stream(
            &server,
            "alpha|beta",
            r#"{app="web", __tenant_id__="gamma"}"#,
            t0
        )
        .is_empty()
    );

    // One tenant, even written twice, is an ordinary read: no tenant label.
    let single = lines_by_stream(&server, "alpha|alpha", r#"{app="web"}"#, t0);
    assert_eq!(
        single,
        BTreeMap::from([(
            json!({"app": "web"}).to_string(),
            expected_lines("alpha", "web")
        )])
    );
}

#[test]
fn metric_queries_see_the_tenant_label_before_aggregating() {
    let (_dir, server) = Server::start_http_only("mtq-metric", &["--multi-tenant-queries"]);
    let t0 = now_ns() - 10_000_000_000;
    push_all(&server, t0);
    let time = now_ns().to_string();
    let instant = |org: &str, query: &str| -> BTreeMap<String, String> {
        let v = get_ok(
            &server,
            org,
            "/loki/api/v1/query",
            &[("query", query), ("time", &time)],
        );
        v["data"]["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["metric"].to_string(),
                    s["value"][1].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let per = LINES_PER_STREAM * 2;
    assert_eq!(
        instant(
            "alpha|gamma",
            r#"sum by (__tenant_id__) (count_over_time({app=~".+"}[1h]))"#
        ),
        BTreeMap::from([
            (
                json!({"__tenant_id__": "alpha"}).to_string(),
                per.to_string()
            ),
            (
                json!({"__tenant_id__": "gamma"}).to_string(),
                per.to_string()
            ),
        ])
    );
    // Without grouping the tenants add up.
    assert_eq!(
        instant(
            "alpha|beta|gamma",
            r#"sum(count_over_time({app=~".+"}[1h]))"#
        ),
        BTreeMap::from([("{}".to_string(), (per * 3).to_string())])
    );
    // Each stream's series carries its tenant; a tenant matcher picks in a metric query too.
    assert_eq!(
        instant(
            "alpha|beta",
            r#"count_over_time({app="db", __tenant_id__=~"b.*"}[1h])"#
        ),
        BTreeMap::from([(stream_key("db", "beta"), LINES_PER_STREAM.to_string())])
    );
    // Volume: the tenants' bytes together, per series of the selector's labels.
    let (start, end) = range(t0);
    let v = get_ok(
        &server,
        "alpha|beta",
        "/loki/api/v1/index/volume",
        &[
            ("query", r#"{app="web"}"#),
            ("start", &start),
            ("end", &end),
        ],
    );
    let bytes: usize = ["alpha", "beta"]
        .iter()
        .flat_map(|t| expected_lines(t, "web"))
        .map(|l| l.len())
        .sum();
    assert_eq!(v["data"]["result"][0]["value"][1], bytes.to_string(), "{v}");
}

#[test]
fn labels_series_and_stats_cover_the_listed_tenants() {
    let (_dir, server) = Server::start_http_only("mtq-meta", &["--multi-tenant-queries"]);
    let t0 = now_ns() - 10_000_000_000;
    push_all(&server, t0);
    // Another label only gamma has: not seen by a read of alpha and beta.
    let r = server.push_json_as(
        "gamma",
        &json!({"streams": [{"stream": {"app": "web", "secret": "g"}, "values": [[t0.to_string(), "gamma secret"]]}]}),
    );
    assert_eq!(r.status, 204, "{}", r.text());
    let (start, end) = range(t0);
    let window = [("start", start.as_str()), ("end", end.as_str())];

    let names = get_ok(&server, "alpha|beta", "/loki/api/v1/labels", &window);
    assert_eq!(names["data"], json!(["__tenant_id__", "app"]));
    let names = get_ok(&server, "gamma|beta", "/loki/api/v1/labels", &window);
    assert_eq!(names["data"], json!(["__tenant_id__", "app", "secret"]));
    let values = get_ok(
        &server,
        "beta|alpha",
        "/loki/api/v1/label/__tenant_id__/values",
        &window,
    );
    assert_eq!(values["data"], json!(["alpha", "beta"]));
    let values = get_ok(
        &server,
        "alpha|beta",
        "/loki/api/v1/label/app/values",
        &window,
    );
    assert_eq!(values["data"], json!(["db", "web"]));

    let mut params = window.to_vec();
    params.push(("match[]", r#"{app="web"}"#));
    let series = get_ok(&server, "alpha|beta", "/loki/api/v1/series", &params);
    assert_eq!(
        series["data"],
        json!([
            {"__tenant_id__": "alpha", "app": "web"},
            {"__tenant_id__": "beta", "app": "web"},
        ])
    );
    params.pop();
    params.push(("match[]", r#"{app="web", __tenant_id__="beta"}"#));
    let series = get_ok(&server, "alpha|beta", "/loki/api/v1/series", &params);
    assert_eq!(
        series["data"],
        json!([{"__tenant_id__": "beta", "app": "web"}])
    );

    let mut params = window.to_vec();
    params.push(("query", r#"{app=~".+"}"#));
    let stats = get_ok(&server, "alpha|beta", "/loki/api/v1/index/stats", &params);
    assert_eq!(stats["streams"], 4, "{stats}");
    assert_eq!(stats["entries"], (LINES_PER_STREAM * 4) as u64, "{stats}");
}

#[test]
fn without_the_flag_two_tenants_are_refused_as_loki_refuses_them() {
    let dir = TestDir::new("mtq-off");
    let server = Server::start_with(
        &dir,
        &common::ServerOptions {
            syslog: false,
            ..common::ServerOptions::default()
        },
    );
    let t0 = now_ns() - 10_000_000_000;
    push_all(&server, t0);
    let (start, end) = range(t0);
    for (path, params) in [
        (
            "/loki/api/v1/query_range",
            vec![
                ("query", r#"{app="web"}"#),
                ("start", start.as_str()),
                ("end", end.as_str()),
            ],
        ),
        ("/loki/api/v1/labels", vec![]),
        ("/loki/api/v1/series", vec![("match[]", r#"{app="web"}"#)]),
    ] {
        let r = get(&server, "alpha|beta", path, &params);
        assert_eq!(
            (r.status, r.text().trim()),
            (500, "multiple org IDs present"),
            "{path}"
        );
    }
    // One tenant written twice is that tenant.
    let single = lines_by_stream(&server, "alpha|alpha", r#"{app="web"}"#, t0);
    assert_eq!(
        single.values().next(),
        Some(&expected_lines("alpha", "web"))
    );
    // A bad id among several is the validation's 400.
    let r = get(&server, "alpha|b/c", "/loki/api/v1/labels", &[]);
    assert_eq!(r.status, 400, "{}", r.text());

    // A push names one tenant, with or without the flag; nothing of it is stored.
    let r = server.push_json_as(
        "alpha|beta",
        &json!({"streams": [{"stream": {"app": "pushed"}, "values": [[now_ns().to_string(), "x"]]}]}),
    );
    assert_eq!(
        (r.status, r.text().trim()),
        (400, "multiple org IDs present")
    );
    assert!(lines_by_stream(&server, "alpha", r#"{app="pushed"}"#, t0).is_empty());
}

#[test]
fn a_tail_names_one_tenant_even_with_the_flag() {
    let (_dir, server) = Server::start_http_only("mtq-tail", &["--multi-tenant-queries"]);
    let r = get(
        &server,
        "alpha|beta",
        "/loki/api/v1/tail",
        &[("query", r#"{app="web"}"#)],
    );
    assert_eq!(
        (r.status, r.text().trim()),
        (400, "multiple org IDs present")
    );
    let r = server.push_json_as(
        "alpha|beta",
        &json!({"streams": [{"stream": {"app": "pushed"}, "values": [[now_ns().to_string(), "x"]]}]}),
    );
    assert_eq!(
        (r.status, r.text().trim()),
        (400, "multiple org IDs present")
    );
}

//! Tenant isolation against the real binary, as a property: for random tenants, streams and
//! lines pushed over both cores, every read endpoint asked as one tenant answers with that
//! tenant's data only. Each tenant's label values, lines, rule group (its name, alert and
//! expression) and delete request carry a marker of its own, so an answer that holds another
//! tenant's marker (in a line, a label value, a pattern, a field, a rule, an alert, a delete
//! request) is a leak, whichever endpoint gave it; counts must equal the tenant's own.

mod common;

use std::collections::BTreeMap;

use common::loki::path_with_query;
use common::{Server, ServerOptions, TestDir, now_ns};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Value, json};

/// Random cases, each with fresh tenants on the same server.
const CASES: u32 = 12;

/// One tenant's pushes: (app, env, line words) per entry.
#[derive(Debug, Clone)]
struct TenantData {
    entries: Vec<(u8, u8, Vec<u8>)>,
}

fn tenant_data() -> impl Strategy<Value = TenantData> {
    prop::collection::vec((0u8..3, 0u8..2, prop::collection::vec(0u8..6, 1..6)), 1..40)
        .prop_map(|entries| TenantData { entries })
}

const WORDS: [&str; 6] = [
    "error",
    "GET",
    "status=500",
    "user=ann",
    "took 3ms",
    "{\"k\":1}",
];

fn marker(tenant: &str) -> String {
    format!("mark{tenant}")
}

/// Pushes a tenant's entries, a few per request, and returns how many it pushed.
fn push(server: &Server, tenant: &str, data: &TenantData, t0: i64) -> u64 {
    let mark = marker(tenant);
    for (chunk_no, chunk) in data.entries.chunks(7).enumerate() {
        let mut streams: BTreeMap<(u8, u8), Vec<Value>> = BTreeMap::new();
        for (i, (app, env, words)) in chunk.iter().enumerate() {
            let text: Vec<&str> = words.iter().map(|w| WORDS[*w as usize]).collect();
            let ts = t0 + (chunk_no * 7 + i) as i64 * 1_000_000;
            streams.entry((*app, *env)).or_default().push(json!([
                ts.to_string(),
                format!("{mark} {}", text.join(" ")),
                {"trace": format!("{mark}-trace")}
            ]));
        }
        let streams: Vec<Value> = streams
            .into_iter()
            .map(|((app, env), values)| {
                json!({
                    "stream": {
                        "app": format!("app{app}"),
                        "env": format!("env{env}"),
                        "owner": mark,
                    },
                    "values": values,
                })
            })
            .collect();
        let r = server.push_json_as(tenant, &json!({ "streams": streams }));
        assert_eq!(r.status, 204, "{}", r.text());
    }
    // A rule group of its own, whose expression and alert name hold the marker.
    let group = format!(
        "name: g{mark}\ninterval: 1s\nrules:\n  - alert: A{mark}\n    expr: sum(count_over_time({{owner=\"{mark}\"}}[1h])) > 0\n    annotations:\n      summary: \"{{{{ $value }}}} {mark}\"\n"
    );
    let r = server.post(
        &format!("/loki/api/v1/rules/ns{mark}"),
        &[("X-Scope-OrgID", tenant)],
        group.as_bytes(),
    );
    assert_eq!(r.status, 202, "{}", r.text());
    // A delete request of its own that holds the marker and matches none of its lines.
    let query = format!(r#"{{owner="{mark}"}} |= "nothing-matches-{mark}""#);
    let r = server.post(
        &path_with_query(
            "/loki/api/v1/delete",
            &[("query", &query), ("start", "1000000000")],
        ),
        &[("X-Scope-OrgID", tenant)],
        b"",
    );
    assert_eq!(r.status, 204, "{}", r.text());
    data.entries.len() as u64
}

/// `GET path?params` as `tenant`; the body must be 200.
fn get(server: &Server, tenant: &str, path: &str, params: &[(&str, &str)]) -> String {
    let r = server.get_with(&path_with_query(path, params), &[("X-Scope-OrgID", tenant)]);
    assert_eq!(r.status, 200, "{path} as {tenant}: {}", r.text());
    r.text()
}

/// Asks every read endpoint as `tenant`; fails if an answer holds another tenant's marker
/// or if the counts are not the tenant's own.
fn check_tenant(server: &Server, tenant: &str, others: &[String], own_entries: u64) {
    let all = r#"{app=~".+"}"#;
    let since = ("since", "1h");
    let answers = [
        (
            "log query",
            get(
                server,
                tenant,
                "/loki/api/v1/query_range",
                &[("query", all), since, ("limit", "5000")],
            ),
        ),
        (
            "metric query",
            get(
                server,
                tenant,
                "/loki/api/v1/query_range",
                &[
                    (
                        "query",
                        r#"sum by (owner) (count_over_time({app=~".+"} | logfmt [1h]))"#,
                    ),
                    since,
                    ("step", "3600"),
                ],
            ),
        ),
        (
            "labels",
            get(server, tenant, "/loki/api/v1/labels", &[since]),
        ),
        (
            "label values",
            get(server, tenant, "/loki/api/v1/label/owner/values", &[since]),
        ),
        (
            "series",
            get(
                server,
                tenant,
                "/loki/api/v1/series",
                &[("match[]", all), since],
            ),
        ),
        (
            "index stats",
            get(
                server,
                tenant,
                "/loki/api/v1/index/stats",
                &[("query", all), since],
            ),
        ),
        (
            "volume",
            get(
                server,
                tenant,
                "/loki/api/v1/index/volume",
                &[("query", all), since],
            ),
        ),
        (
            "detected labels",
            get(
                server,
                tenant,
                "/loki/api/v1/detected_labels",
                &[("query", all), since],
            ),
        ),
        (
            "detected fields",
            get(
                server,
                tenant,
                "/loki/api/v1/detected_fields",
                &[("query", all), since],
            ),
        ),
        (
            "patterns",
            get(
                server,
                tenant,
                "/loki/api/v1/patterns",
                &[("query", all), since],
            ),
        ),
        ("rules", get(server, tenant, "/loki/api/v1/rules", &[])),
        (
            "prometheus rules",
            get(server, tenant, "/prometheus/api/v1/rules", &[]),
        ),
        (
            "prometheus alerts",
            get(server, tenant, "/prometheus/api/v1/alerts", &[]),
        ),
        (
            "delete requests",
            get(server, tenant, "/loki/api/v1/delete", &[]),
        ),
    ];
    for (what, body) in &answers {
        for other in others {
            assert!(
                !body.contains(other.as_str()),
                "{what} as {tenant} holds {other}: {body}"
            );
        }
    }
    let own = marker(tenant);
    // The log query returns exactly the tenant's own lines.
    let v: Value = serde_json::from_str(&answers[0].1).unwrap();
    let mut lines = 0;
    for stream in v["data"]["result"].as_array().unwrap() {
        assert_eq!(stream["stream"]["owner"], own.as_str(), "{stream}");
        lines += stream["values"].as_array().unwrap().len() as u64;
    }
    assert_eq!(lines, own_entries, "log query as {tenant}");
    // The label values are the tenant's own marker, and stats count its entries.
    let v: Value = serde_json::from_str(&answers[3].1).unwrap();
    assert_eq!(v["data"], json!([own]), "label values as {tenant}");
    let v: Value = serde_json::from_str(&answers[5].1).unwrap();
    assert_eq!(v["entries"], json!(own_entries), "index stats as {tenant}");
    // Its own rule group is listed.
    let rules = &answers.iter().find(|(w, _)| *w == "rules").unwrap().1;
    assert!(
        rules.contains(&format!("A{own}")),
        "rules as {tenant}: {rules}"
    );
    let deletes = &answers
        .iter()
        .find(|(w, _)| *w == "delete requests")
        .unwrap()
        .1;
    assert!(
        deletes.contains(&own),
        "delete requests as {tenant}: {deletes}"
    );
}

#[test]
fn no_answer_holds_another_tenants_data() {
    let dir = TestDir::new("tenant-isolation");
    let mut server = Server::start_with(
        &dir,
        &ServerOptions {
            syslog: false,
            ..ServerOptions::default()
        },
    );
    let mut runner = TestRunner::new(Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    });
    let case = std::cell::Cell::new(0u32);
    let result = runner.run(
        &prop::collection::vec(tenant_data(), 2..4),
        |tenants: Vec<TenantData>| {
            // Fresh tenant names per case (shrinking reruns get new ones too), some of them
            // prefixes of others, so that a match on a prefix would show.
            let n = case.get();
            case.set(n + 1);
            let names: Vec<String> = (0..tenants.len())
                .map(|i| format!("c{n}t{}", "x".repeat(i + 1)))
                .collect();
            let t0 = now_ns() - 600_000_000_000;
            let counts: Vec<u64> = names
                .iter()
                .zip(&tenants)
                .map(|(name, data)| push(&server, name, data, t0))
                .collect();
            for (i, name) in names.iter().enumerate() {
                // Markers of the others that are not a prefix of this tenant's own.
                let own = marker(name);
                let others: Vec<String> = names
                    .iter()
                    .filter(|o| *o != name)
                    .map(|o| marker(o))
                    .filter(|m| !own.starts_with(m.as_str()))
                    .collect();
                check_tenant(&server, name, &others, counts[i]);
            }
            Ok(())
        },
    );
    if let Err(e) = result {
        panic!("{e}");
    }
    server.terminate_ok();
}

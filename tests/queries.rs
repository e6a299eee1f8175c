//! The Loki query API against a real server with two shards: `query_range` parameter rules
//! (limit, direction, start/end, since, timestamp formats), line filters, label matchers,
//! `/labels`, `/label/<name>/values`, `/series`, `/index/stats`, errors for bad queries,
//! tenants, buildinfo and `/metrics`.
//!
//! The seed is sixteen streams whose labels are chosen so that both shards own eight of
//! them, with globally distinct timestamps, so that every expected answer can be computed
//! exactly from the seed.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::loki::{self, metric_sum, parse_metrics, path_with_query};
use common::{Entry, Server, TestDir, entries, now_ns};
use serde_json::{Value, json};
use shardlog::model::{Labels, owner_shard, stream_hash};

const STREAMS: usize = 16;
const ENTRIES_PER_STREAM: usize = 20;
const TOTAL: usize = STREAMS * ENTRIES_PER_STREAM;
const STEP_NS: i64 = 1_000_000;
const WORDS: [&str; 4] = ["alpha", "beta", "gamma", "delta"];

/// The seeded data and what the test expects of it.
struct Seed {
    base_ns: i64,
    /// All entries in time order; `k` (the position) is encoded in each line.
    entries: Vec<Entry>,
}

impl Seed {
    fn ts(&self, k: usize) -> i64 {
        self.base_ns + k as i64 * STEP_NS
    }

    fn matching(&self, keep: impl Fn(&Entry) -> bool) -> Vec<Entry> {
        self.entries.iter().filter(|e| keep(e)).cloned().collect()
    }
}

/// Stream labels for stream `i`: the `idx` values are picked so that streams alternate
/// between the two shards (stream_hash is the server's placement function).
fn stream_labels(i: usize) -> BTreeMap<String, String> {
    let parity = if i.is_multiple_of(2) { "even" } else { "odd" };
    let wanted_shard = i % 2;
    for salt in 0.. {
        let idx = if salt == 0 {
            format!("{i:02}")
        } else {
            format!("{i:02}-{salt}")
        };
        let pairs = [
            ("job", "queries"),
            ("idx", idx.as_str()),
            ("parity", parity),
        ];
        let hash = stream_hash("fake", &Labels::from_pairs(pairs));
        if owner_shard(hash, 2) == wanted_shard {
            return loki::labels(&pairs);
        }
    }
    unreachable!()
}

fn seed(server: &Server) -> Seed {
    // Twenty minutes back: inside Loki's default one-hour window and any retention.
    let base_ns = (now_ns() - 20 * 60 * 1_000_000_000) / 1_000_000 * 1_000_000;
    let mut all = Vec::new();
    let mut streams = Vec::new();
    for i in 0..STREAMS {
        let labels = stream_labels(i);
        let mut values = Vec::new();
        for j in 0..ENTRIES_PER_STREAM {
            let k = j * STREAMS + i;
            let ts = base_ns + k as i64 * STEP_NS;
            let error = if k.is_multiple_of(10) { " error" } else { "" };
            let line = format!("k={k:04} stream={i:02} {}{error}", WORDS[k % 4]);
            values.push(json!([ts.to_string(), line]));
            all.push(Entry {
                ts,
                line,
                labels: labels.clone(),
                metadata: BTreeMap::new(),
            });
        }
        streams.push(json!({"stream": labels, "values": values}));
    }
    // Two pushes, so that the seed spans more than one request.
    let (first, second) = streams.split_at(STREAMS / 2);
    server.push_json_ok(&json!({ "streams": first }));
    server.push_json_ok(&json!({ "streams": second }));
    all.sort_by_key(|e| e.ts);
    Seed {
        base_ns,
        entries: all,
    }
}

/// A query over the whole seed window with extra parameters.
fn range(server: &Server, seed: &Seed, query: &str, extra: &[(&str, &str)]) -> Value {
    let start = seed.base_ns.to_string();
    let end = (seed.ts(TOTAL) + 1).to_string();
    let mut params = vec![
        ("query", query),
        ("start", start.as_str()),
        ("end", end.as_str()),
    ];
    let has = |name: &str| extra.iter().any(|(k, _)| *k == name);
    if !has("limit") {
        params.push(("limit", "5000"));
    }
    params.extend_from_slice(extra);
    server.query_range(&params)
}

fn lines(list: &[Entry]) -> Vec<String> {
    list.iter().map(|e| e.line.clone()).collect()
}

/// Asserts that each stream's values are in the order `direction` asks for.
fn assert_stream_order(response: &Value, forward: bool) {
    for stream in response["data"]["result"].as_array().expect("result array") {
        let ts: Vec<i64> = stream["values"]
            .as_array()
            .expect("values")
            .iter()
            .map(|v| v[0].as_str().expect("ts").parse().expect("ts number"))
            .collect();
        let mut expected = ts.clone();
        expected.sort();
        if !forward {
            expected.reverse();
        }
        assert_eq!(ts, expected, "values of {} out of order", stream["stream"]);
    }
}

#[test]
fn limit_and_direction() {
    let dir = TestDir::new("queries-limit");
    let server = Server::start(&dir);
    let seed = seed(&server);

    let forward = range(
        &server,
        &seed,
        r#"{job="queries"}"#,
        &[("limit", "7"), ("direction", "forward")],
    );
    assert_stream_order(&forward, true);
    assert_eq!(
        lines(&loki::sorted(entries(&forward), true)),
        lines(&seed.entries[..7])
    );

    let backward = range(
        &server,
        &seed,
        r#"{job="queries"}"#,
        &[("limit", "7"), ("direction", "backward")],
    );
    assert_stream_order(&backward, false);
    let newest: Vec<Entry> = seed.entries[TOTAL - 7..].iter().rev().cloned().collect();
    assert_eq!(
        lines(&loki::sorted(entries(&backward), false)),
        lines(&newest)
    );

    // Loki's defaults: direction backward, limit 100.
    let default = range(&server, &seed, r#"{job="queries"}"#, &[("limit", "5")]);
    let newest: Vec<Entry> = seed.entries[TOTAL - 5..].iter().rev().cloned().collect();
    assert_eq!(
        lines(&loki::sorted(entries(&default), false)),
        lines(&newest)
    );
    let start = seed.base_ns.to_string();
    let end = (seed.ts(TOTAL) + 1).to_string();
    let unlimited = server.query_range(&[
        ("query", r#"{job="queries"}"#),
        ("start", &start),
        ("end", &end),
    ]);
    assert_eq!(
        entries(&unlimited).len(),
        100,
        "Loki's default limit is 100"
    );

    // Everything, forward: all entries in time order, each with its stream's labels.
    let all = range(
        &server,
        &seed,
        r#"{job="queries"}"#,
        &[("direction", "forward")],
    );
    assert_eq!(loki::sorted(entries(&all), true), seed.entries);
}

#[test]
fn start_end_and_since() {
    let dir = TestDir::new("queries-range");
    let server = Server::start(&dir);
    let seed = seed(&server);

    // start is inclusive, end exclusive, in nanoseconds.
    let start = seed.ts(10).to_string();
    let end = seed.ts(20).to_string();
    let window = server.query_range(&[
        ("query", r#"{job="queries"}"#),
        ("start", &start),
        ("end", &end),
        ("direction", "forward"),
        ("limit", "1000"),
    ]);
    assert_eq!(
        lines(&loki::sorted(entries(&window), true)),
        lines(&seed.entries[10..20])
    );

    // The same window as RFC 3339 and as float seconds (Loki accepts both).
    let rfc3339 = |ns: i64| {
        time::OffsetDateTime::from_unix_timestamp_nanos(ns as i128)
            .expect("valid time")
            .format(&time::format_description::well_known::Rfc3339)
            .expect("format RFC 3339")
    };
    let window_rfc = server.query_range(&[
        ("query", r#"{job="queries"}"#),
        ("start", &rfc3339(seed.ts(10))),
        ("end", &rfc3339(seed.ts(20))),
        ("direction", "forward"),
    ]);
    assert_eq!(
        lines(&loki::sorted(entries(&window_rfc), true)),
        lines(&seed.entries[10..20])
    );
    let seconds = |ns: i64| format!("{}.{:09}", ns / 1_000_000_000, ns % 1_000_000_000);
    let window_secs = server.query_range(&[
        ("query", r#"{job="queries"}"#),
        ("start", &seconds(seed.ts(10))),
        ("end", &seconds(seed.ts(20))),
        ("direction", "forward"),
    ]);
    assert_eq!(
        lines(&loki::sorted(entries(&window_secs), true)),
        lines(&seed.entries[10..20])
    );

    // `since` and the default window (the last hour) relative to now.
    let now = now_ns();
    let old = now - 2 * 3600 * 1_000_000_000;
    let recent = now - 5 * 60 * 1_000_000_000;
    server.push_json_ok(&json!({"streams": [{
        "stream": {"job": "since"},
        "values": [[old.to_string(), "two hours ago"], [recent.to_string(), "five minutes ago"]]
    }]}));
    let since_1h = server.query_range(&[("query", r#"{job="since"}"#), ("since", "1h")]);
    assert_eq!(lines(&entries(&since_1h)), ["five minutes ago"]);
    let since_3h = server.query_range(&[
        ("query", r#"{job="since"}"#),
        ("since", "3h"),
        ("direction", "forward"),
    ]);
    assert_eq!(
        lines(&loki::sorted(entries(&since_3h), true)),
        ["two hours ago", "five minutes ago"]
    );
    let default_window = server.query_range(&[("query", r#"{job="since"}"#)]);
    assert_eq!(lines(&entries(&default_window)), ["five minutes ago"]);

    // POST with a form body answers like GET.
    let form = common::http::encode_query(&[
        ("query", r#"{job="queries"}"#),
        ("start", &start),
        ("end", &end),
        ("direction", "forward"),
    ]);
    let posted = server.post(
        "/loki/api/v1/query_range",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        form.as_bytes(),
    );
    assert_eq!(posted.status, 200, "POST query_range: {}", posted.text());
    assert_eq!(
        lines(&loki::sorted(entries(&posted.json()), true)),
        lines(&seed.entries[10..20])
    );

    // The instant endpoint refuses log queries, as Loki 3 does.
    let instant_path = path_with_query(
        "/loki/api/v1/query",
        &[
            ("query", r#"{job="since"}"#),
            ("limit", "1"),
            ("direction", "backward"),
        ],
    );
    let instant = server.get(&instant_path);
    assert_eq!(instant.status, 400, "instant query: {}", instant.text());
    assert!(
        instant.text().contains("not supported as an instant query"),
        "{}",
        instant.text()
    );
}

#[test]
fn line_filters_and_label_matchers() {
    let dir = TestDir::new("queries-filters");
    let server = Server::start(&dir);
    let seed = seed(&server);

    let check = |query: &str, keep: &dyn Fn(&Entry) -> bool| {
        let got = loki::sorted(
            entries(&range(&server, &seed, query, &[("direction", "forward")])),
            true,
        );
        let want = seed.matching(keep);
        assert!(
            !want.is_empty() || query.contains("nothing"),
            "vacuous check {query}"
        );
        assert_eq!(lines(&got), lines(&want), "query {query}");
        assert_eq!(got, want, "labels differ for {query}");
    };
    let label = |e: &Entry, name: &str| e.labels[name].clone();

    check(r#"{job="queries"} |= "alpha""#, &|e| {
        e.line.contains("alpha")
    });
    check(r#"{job="queries"} != "alpha""#, &|e| {
        !e.line.contains("alpha")
    });
    check(r#"{job="queries"} |~ "k=00[0-9]5""#, &|e| {
        e.line.starts_with("k=00") && e.line.as_bytes()[5] == b'5'
    });
    check(r#"{job="queries"} !~ "alpha|beta""#, &|e| {
        !e.line.contains("alpha") && !e.line.contains("beta")
    });
    check(r#"{job="queries"} |= "error" != "gamma""#, &|e| {
        e.line.contains("error") && !e.line.contains("gamma")
    });
    check(r#"{job="queries"} |= "nothing matches this""#, &|_| false);

    let idx3 = stream_labels(3)["idx"].clone();
    check(&format!(r#"{{job="queries", idx="{idx3}"}}"#), &|e| {
        label(e, "idx") == idx3
    });
    check(&format!(r#"{{job="queries", idx!="{idx3}"}}"#), &|e| {
        label(e, "idx") != idx3
    });
    check(r#"{job="queries", idx=~"0[0-4].*"}"#, &|e| {
        let idx = label(e, "idx");
        idx.starts_with('0') && (b'0'..=b'4').contains(&idx.as_bytes()[1])
    });
    check(r#"{job="queries", idx!~"1.*"}"#, &|e| {
        !label(e, "idx").starts_with('1')
    });
    check(r#"{parity="odd"}"#, &|e| label(e, "parity") == "odd");
    check(r#"{parity="odd", idx=~"1.*"} |= "beta""#, &|e| {
        label(e, "parity") == "odd" && label(e, "idx").starts_with('1') && e.line.contains("beta")
    });
}

#[test]
fn labels_values_series_and_stats() {
    let dir = TestDir::new("queries-meta");
    let server = Server::start(&dir);
    let seed = seed(&server);
    let start = seed.base_ns.to_string();
    let end = (seed.ts(TOTAL) + 1).to_string();
    let window = [("start", start.as_str()), ("end", end.as_str())];

    let names = server.get(&path_with_query("/loki/api/v1/labels", &window));
    assert_eq!(names.status, 200, "{}", names.text());
    assert_eq!(
        names.json(),
        json!({"status": "success", "data": ["idx", "job", "parity"]})
    );

    let values = server.get(&path_with_query("/loki/api/v1/label/idx/values", &window));
    assert_eq!(values.status, 200, "{}", values.text());
    let mut want: Vec<String> = (0..STREAMS)
        .map(|i| stream_labels(i)["idx"].clone())
        .collect();
    want.sort();
    assert_eq!(values.json(), json!({"status": "success", "data": want}));
    let parity = server.get(&path_with_query(
        "/loki/api/v1/label/parity/values",
        &window,
    ));
    assert_eq!(parity.json()["data"], json!(["even", "odd"]));
    let unknown = server.get(&path_with_query(
        "/loki/api/v1/label/nosuch/values",
        &window,
    ));
    assert_eq!(unknown.status, 200, "{}", unknown.text());
    let unknown_values = &unknown.json()["data"];
    assert!(
        unknown_values.is_null() || unknown_values == &json!([]),
        "values of a label nobody has: {unknown_values}"
    );

    let mut series_params = vec![("match[]", r#"{job="queries", parity="even"}"#)];
    series_params.extend_from_slice(&window);
    let series = server.get(&path_with_query("/loki/api/v1/series", &series_params));
    assert_eq!(series.status, 200, "{}", series.text());
    let got: BTreeSet<BTreeMap<String, String>> = series.json()["data"]
        .as_array()
        .expect("series data array")
        .iter()
        .map(loki::string_map)
        .collect();
    let want: BTreeSet<_> = (0..STREAMS).step_by(2).map(stream_labels).collect();
    assert_eq!(got, want);
    // Several match[] give the union.
    let idx1 = stream_labels(1)["idx"].clone();
    let one_odd = format!(r#"{{idx="{idx1}"}}"#);
    let mut union_params = vec![
        ("match[]", r#"{parity="even"}"#),
        ("match[]", one_odd.as_str()),
    ];
    union_params.extend_from_slice(&window);
    let union = server.get(&path_with_query("/loki/api/v1/series", &union_params));
    assert_eq!(
        union.json()["data"].as_array().expect("series").len(),
        STREAMS / 2 + 1
    );

    let stats = server.index_stats(r#"{job="queries"}"#);
    assert_eq!(stats.streams, STREAMS as u64);
    assert_eq!(stats.entries, TOTAL as u64);
    let line_bytes: usize = seed.entries.iter().map(|e| e.line.len()).sum();
    assert_eq!(
        stats.bytes, line_bytes as u64,
        "index/stats bytes are the bytes of the lines"
    );
    assert!(
        stats.chunks >= 1 && stats.chunks <= stats.entries,
        "{stats:?}"
    );
    let odd = server.index_stats(r#"{job="queries", parity="odd"}"#);
    assert_eq!(
        (odd.streams, odd.entries),
        ((STREAMS / 2) as u64, (TOTAL / 2) as u64)
    );
    let none = server.index_stats(r#"{job="nosuch"}"#);
    assert_eq!((none.streams, none.entries, none.bytes), (0, 0, 0));
}

#[test]
fn bad_queries_are_400() {
    let dir = TestDir::new("queries-bad");
    let server = Server::start(&dir);
    let _seed = seed(&server);
    let cases: &[&[(&str, &str)]] = &[
        &[("query", r#"{job="queries""#)],
        &[("query", r#"job="queries""#)],
        &[("query", "{}")],
        &[("query", r#"{job="queries"} |= "#)],
        &[("query", r#"{job=~"("}"#)],
        &[("query", r#"{job="queries"} |~ "(""#)],
        &[("query", r#"{job="queries"}"#), ("limit", "abc")],
        &[("query", r#"{job="queries"}"#), ("limit", "-1")],
        &[("query", r#"{job="queries"}"#), ("direction", "sideways")],
        &[("query", r#"{job="queries"}"#), ("start", "yesterday")],
        &[
            ("query", r#"{job="queries"}"#),
            ("start", "2000"),
            ("end", "1000"),
        ],
        &[("query", r#"{job="queries"}"#), ("since", "forever")],
        &[("limit", "10")],
    ];
    for params in cases {
        let response = server.query_range_response(params, &[]);
        assert_eq!(
            response.status,
            400,
            "{params:?} should be rejected, got: {}",
            response.text()
        );
        assert!(!response.body.is_empty(), "{params:?}: a 400 says why");
    }
    let bad_stats = server.get(&path_with_query(
        "/loki/api/v1/index/stats",
        &[("query", "{")],
    ));
    assert_eq!(bad_stats.status, 400, "{}", bad_stats.text());
    let bad_series = server.get(&path_with_query("/loki/api/v1/series", &[("match[]", "{")]));
    assert_eq!(bad_series.status, 400, "{}", bad_series.text());
    let missing = server.get("/loki/api/v1/nosuch");
    assert_eq!(missing.status, 404, "{}", missing.text());
}

#[test]
fn tenants_are_isolated() {
    let dir = TestDir::new("queries-tenants");
    let server = Server::start(&dir);
    let seed = seed(&server);
    let ts = seed.ts(0).to_string();
    let response = server.push_json_as(
        "team-b",
        &json!({"streams": [{"stream": {"job": "queries"}, "values": [[ts, "tenant b line"]]}]}),
    );
    assert_eq!(response.status, 204, "{}", response.text());

    let default = server.index_stats(r#"{job="queries"}"#);
    assert_eq!(
        default.entries, TOTAL as u64,
        "tenant b's line leaked into the default tenant"
    );
    let path = path_with_query(
        "/loki/api/v1/query_range",
        &[
            ("query", r#"{job="queries"}"#),
            ("start", &seed.base_ns.to_string()),
            ("end", &(seed.ts(TOTAL) + 1).to_string()),
        ],
    );
    let as_b = server.get_with(&path, &[("X-Scope-OrgID", "team-b")]);
    assert_eq!(as_b.status, 200, "{}", as_b.text());
    assert_eq!(lines(&entries(&as_b.json())), ["tenant b line"]);
    // "fake" is the default tenant's name.
    let as_fake = server.get_with(&path, &[("X-Scope-OrgID", "fake")]);
    assert_eq!(entries(&as_fake.json()).len(), 100);

    for bad in ["..", ".", "a/b"] {
        let response = server.push_json_as(
            bad,
            &json!({"streams": [{"stream": {"job": "x"}, "values": [[ts, "no"]]}]}),
        );
        assert_eq!(
            response.status,
            400,
            "tenant {bad:?} accepted: {}",
            response.text()
        );
    }
}

#[test]
fn buildinfo_and_metrics() {
    let dir = TestDir::new("queries-metrics");
    let server = Server::start(&dir);

    let build = server.get("/loki/api/v1/status/buildinfo");
    assert_eq!(build.status, 200, "{}", build.text());
    let version = build.json()["version"].as_str().map(str::to_string);
    assert!(
        version.is_some_and(|v| !v.is_empty()),
        "buildinfo without version: {}",
        build.text()
    );

    let before = parse_metrics(&server.metrics());
    let _seed = seed(&server);
    let text = server.metrics();
    for name in [
        "shardlog_ingested_lines_total",
        "shardlog_ingested_bytes_total",
        "shardlog_discarded_lines_total",
        "shardlog_udp_dropped_total",
        "shardlog_wal_fsync_seconds",
        "shardlog_wal_bytes_written_total",
    ] {
        assert!(text.contains(name), "/metrics lacks {name}:\n{text}");
    }
    let after = parse_metrics(&text);
    let lines_delta = metric_sum(&after, "shardlog_ingested_lines_total", &[])
        - metric_sum(&before, "shardlog_ingested_lines_total", &[]);
    assert_eq!(
        lines_delta, TOTAL as f64,
        "ingested lines counted once each"
    );
    let bytes_delta = metric_sum(&after, "shardlog_ingested_bytes_total", &[])
        - metric_sum(&before, "shardlog_ingested_bytes_total", &[]);
    assert!(
        bytes_delta >= TOTAL as f64 * 10.0,
        "ingested bytes: {bytes_delta}"
    );
    // Both shards own seeded streams, so both wrote and synced their WAL.
    for shard in ["0", "1"] {
        let written = metric_sum(
            &after,
            "shardlog_wal_bytes_written_total",
            &[("shard", shard)],
        );
        assert!(written > 0.0, "shard {shard} wrote no WAL bytes:\n{text}");
    }
    let fsyncs = metric_sum(&after, "shardlog_wal_fsync_seconds_count", &[]);
    assert!(fsyncs >= 2.0, "WAL fsyncs counted: {fsyncs}");
    let udp = metric_sum(&after, "shardlog_udp_dropped_total", &[]);
    assert_eq!(udp, 0.0);
}

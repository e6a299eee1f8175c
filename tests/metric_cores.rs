//! Partial states merge exactly: the same data and the same random metric queries give the
//! same answer on one core as on two (where every query's streams are spread over two
//! shards, each answering partial states the receiving core merges). And a log query answers
//! exactly what a reference sort-and-take over all pushed lines gives.

mod common;

use std::collections::BTreeMap;

use common::loki::{entries, path_with_query};
use common::{Server, ServerOptions, TestDir, now_ns};
use serde_json::{Value, json};

/// A small deterministic generator (SplitMix64), so a failure names a seed to replay.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

const APPS: [&str; 6] = ["api", "db", "web", "cache", "auth", "queue"];
const LEVELS: [&str; 3] = ["info", "warn", "error"];
const SECOND: i64 = 1_000_000_000;

struct Line {
    labels: BTreeMap<String, String>,
    ts: i64,
    text: String,
}

/// Lines over the last 20 minutes in 18 streams; each a logfmt line with a status, a
/// duration and a size.
fn data(rng: &mut Rng, t0: i64) -> Vec<Line> {
    (0..3000)
        .map(|i| {
            let app = rng.pick(&APPS);
            let level = rng.pick(&LEVELS);
            let status = [200, 200, 201, 404, 500, 503][rng.below(6) as usize];
            let text = format!(
                "level={level} status={status} duration={}ms size={}B msg=\"request {i}\"",
                rng.below(900) + 1,
                rng.below(5000)
            );
            Line {
                labels: [("app", app), ("level", level)]
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                ts: t0 + rng.below(20 * 60) as i64 * SECOND + i as i64,
                text,
            }
        })
        .collect()
}

fn push(server: &Server, lines: &[Line]) {
    let mut streams: BTreeMap<&BTreeMap<String, String>, Vec<Value>> = BTreeMap::new();
    for l in lines {
        streams
            .entry(&l.labels)
            .or_default()
            .push(json!([l.ts.to_string(), l.text]));
    }
    let streams: Vec<Value> = streams
        .into_iter()
        .map(|(labels, values)| json!({"stream": labels, "values": values}))
        .collect();
    server.push_json_ok(&json!({ "streams": streams }));
}

/// A random metric query over the data.
fn query(rng: &mut Rng) -> String {
    let sel = match rng.below(3) {
        0 => r#"{app=~".+"}"#.to_string(),
        1 => format!(r#"{{app="{}"}}"#, rng.pick(&APPS)),
        _ => format!(r#"{{level!="{}", app=~".+"}}"#, rng.pick(&LEVELS)),
    };
    let range = rng.pick(&["1m", "2m", "5m", "7m"]);
    let stage = rng.pick(&[
        "",
        " | logfmt",
        " | logfmt | status >= 500",
        " |= \"request 1\"",
    ]);
    let leaf = match rng.below(9) {
        0 => format!("count_over_time({sel}{stage} [{range}])"),
        1 => format!("rate({sel}{stage} [{range}])"),
        2 => format!("bytes_over_time({sel}{stage} [{range}])"),
        3 => {
            format!("sum_over_time({sel} | logfmt | unwrap duration(duration) [{range}]) by (app)")
        }
        4 => format!("avg_over_time({sel} | logfmt | unwrap bytes(size) [{range}]) by (level)"),
        5 => format!("max_over_time({sel} | logfmt | unwrap status [{range}]) by (app)"),
        6 => format!(
            "quantile_over_time(0.9, {sel} | logfmt | unwrap duration(duration) [{range}]) by (app)"
        ),
        7 => format!("stddev_over_time({sel} | logfmt | unwrap status [{range}]) by (level)"),
        _ => format!("first_over_time({sel} | logfmt | unwrap status [{range}]) by (app)"),
    };
    match rng.below(8) {
        0 => leaf,
        1 => format!("sum by (app) ({leaf})"),
        2 => format!("avg by (level) ({leaf})"),
        3 => format!("topk(2, sum by (app) ({leaf}))"),
        4 => format!("max without (level) ({leaf})"),
        5 => format!("count({leaf})"),
        6 => format!(
            "sum by (app) ({leaf}) / on (app) sum by (app) (count_over_time({sel}[{range}]))"
        ),
        _ => format!("stdvar by (app) ({leaf}) > bool 0"),
    }
}

/// Values compared as numbers (to 1e-9 relative), the rest exactly.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::String(x), Value::String(y)) => match (x.parse::<f64>(), y.parse::<f64>()) {
            (Ok(x), Ok(y)) => {
                x == y || (x.is_nan() && y.is_nan()) || (x - y).abs() <= 1e-9 * x.abs().max(y.abs())
            }
            _ => x == y,
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

#[test]
fn two_cores_answer_as_one_and_logs_match_a_reference() {
    let seed = std::env::var("SHARDLOG_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_u64);
    let mut rng = Rng(seed);
    let now = now_ns() / SECOND * SECOND;
    let t0 = now - 25 * 60 * SECOND;
    let lines = data(&mut rng, t0);
    let (dir1, dir2) = (TestDir::new("cores-one"), TestDir::new("cores-two"));
    let start = |dir: &TestDir, cores: usize| {
        Server::start_with(
            dir,
            &ServerOptions {
                cores,
                syslog: false,
                ..ServerOptions::default()
            },
        )
    };
    let (mut one, mut two) = (start(&dir1, 1), start(&dir2, 2));
    push(&one, &lines);
    push(&two, &lines);
    let (start_s, end_s) = ((t0 / SECOND).to_string(), (now / SECOND).to_string());

    let mut compared = 0;
    for i in 0..120 {
        let q = query(&mut rng);
        let params: Vec<(&str, &str)> = if i % 3 == 0 {
            vec![("query", &q), ("time", &end_s)]
        } else {
            vec![
                ("query", &q),
                ("start", &start_s),
                ("end", &end_s),
                ("step", "47"),
            ]
        };
        let path = if i % 3 == 0 {
            "/loki/api/v1/query"
        } else {
            "/loki/api/v1/query_range"
        };
        let path = path_with_query(path, &params);
        let (a, b) = (one.get(&path), two.get(&path));
        assert_eq!(
            a.status,
            b.status,
            "seed {seed:#x} {q}: {} vs {}",
            a.text(),
            b.text()
        );
        if a.status != 200 {
            continue;
        }
        let (a, b) = (a.json(), b.json());
        assert!(
            same(&a["data"]["result"], &b["data"]["result"]),
            "seed {seed:#x}: {q}\none core:  {}\ntwo cores: {}",
            a["data"]["result"],
            b["data"]["result"]
        );
        compared += 1;
    }
    assert!(compared >= 100, "only {compared} queries answered 200");

    // Log queries: the first `limit` of every matching line in time order, ties by labels.
    for (query, needle, limit, forward) in [
        (r#"{app=~".+"}"#, "", 100, true),
        (r#"{app=~".+"} |= "status=500""#, "status=500", 37, false),
        (r#"{app="db"}"#, "", 5000, false),
    ] {
        let mut want: Vec<(i64, String)> = lines
            .iter()
            .filter(|l| query.contains("=~") || l.labels["app"] == "db")
            .filter(|l| l.text.contains(needle))
            .map(|l| (l.ts, l.text.clone()))
            .collect();
        want.sort();
        if !forward {
            want.reverse();
        }
        want.truncate(limit);
        let path = path_with_query(
            "/loki/api/v1/query_range",
            &[
                ("query", query),
                ("start", &start_s),
                ("end", &(now / SECOND + 1).to_string()),
                ("limit", &limit.to_string()),
                ("direction", if forward { "forward" } else { "backward" }),
            ],
        );
        for server in [&one, &two] {
            let r = server.get(&path);
            assert_eq!(r.status, 200, "{}", r.text());
            let mut got: Vec<(i64, String)> = entries(&r.json())
                .into_iter()
                .map(|e| (e.ts, e.line))
                .collect();
            got.sort();
            if !forward {
                got.reverse();
            }
            let mut want_sorted = want.clone();
            want_sorted.sort();
            if !forward {
                want_sorted.reverse();
            }
            assert_eq!(got, want_sorted, "{query} limit {limit}");
        }
    }
    one.terminate_ok();
    two.terminate_ok();
}

//! The Loki HTTP API as the tests use it: pushes (JSON, protobuf + snappy), queries parsed
//! into flat entries, index stats, waiting for asynchronous ingest (syslog) to land, and the
//! Prometheus metrics text.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::http::{self, Response, encode_query};
use super::server::{POLL_INTERVAL_MS, Server, call};

/// The `limit` the tests ask for when they want everything: Loki's default
/// `max_entries_limit_per_query`. Tests keep each query's expected result below it.
pub const QUERY_LIMIT: usize = 5000;

/// How far back the tests' default query window reaches. The tests write lines stamped
/// "now" (syslog senders) or minutes to hours back (pushes); two days also cover a sender
/// whose RFC 3164 timestamp (no zone) is read in another zone, and stay far below any
/// maximum query range a server may enforce.
pub const LOOKBACK_NS: i64 = 48 * 3600 * 1_000_000_000;

/// How far past "now" the default window ends: Loki's `end` is exclusive, and a zone-less
/// RFC 3164 timestamp may be read as up to a day ahead.
pub const LOOKAHEAD_NS: i64 = 24 * 3600 * 1_000_000_000;

/// How long to wait for syslog lines (which have no acknowledgement) to become queryable.
pub const INGEST_WAIT_MS: u64 = 20_000;

/// The header that asks for structured metadata separately from stream labels.
pub const CATEGORIZE_LABELS: (&str, &str) = ("X-Loki-Response-Encoding-Flags", "categorize-labels");

pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos() as i64
}

/// One log entry of a query result, with the labels of the stream it came in.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Entry {
    pub ts: i64,
    pub line: String,
    pub labels: BTreeMap<String, String>,
    /// Structured metadata; only filled for categorized responses.
    pub metadata: BTreeMap<String, String>,
}

/// The Loki stats of `/loki/api/v1/index/stats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexStats {
    pub streams: u64,
    pub chunks: u64,
    pub entries: u64,
    pub bytes: u64,
}

/// Flattens a `streams` result into entries, in the order the response lists them.
pub fn entries(response: &Value) -> Vec<Entry> {
    assert_eq!(response["status"], "success", "query failed: {response}");
    assert_eq!(
        response["data"]["resultType"], "streams",
        "not a streams result: {response}"
    );
    let mut out = Vec::new();
    let streams = response["data"]["result"]
        .as_array()
        .expect("result is an array");
    for stream in streams {
        let labels = string_map(&stream["stream"]);
        for value in stream["values"].as_array().expect("values is an array") {
            let value = value.as_array().expect("a value is an array");
            assert!(
                value.len() == 2 || value.len() == 3,
                "a value is [ts, line] or [ts, line, {{...}}]: {value:?}"
            );
            let ts: i64 = value[0]
                .as_str()
                .expect("timestamp is a string")
                .parse()
                .expect("timestamp is integer nanoseconds");
            let line = value[1].as_str().expect("line is a string").to_string();
            let metadata = match value.get(2) {
                Some(extra) => string_map(&extra["structuredMetadata"]),
                None => BTreeMap::new(),
            };
            out.push(Entry {
                ts,
                line,
                labels: labels.clone(),
                metadata,
            });
        }
    }
    out
}

/// Entries sorted by timestamp (ties keep the response order), forward or backward.
pub fn sorted(mut list: Vec<Entry>, forward: bool) -> Vec<Entry> {
    list.sort_by_key(|e| e.ts);
    if !forward {
        list.reverse();
    }
    list
}

/// A JSON object of strings as a map; `null` or absent gives an empty map.
pub fn string_map(value: &Value) -> BTreeMap<String, String> {
    match value {
        Value::Null => BTreeMap::new(),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.as_str()
                        .unwrap_or_else(|| panic!("{k} is not a string"))
                        .to_string(),
                )
            })
            .collect(),
        other => panic!("expected an object of strings, got {other}"),
    }
}

pub fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

impl Server {
    pub fn get(&self, path: &str) -> Response {
        call(self, "GET", path, &[], &[])
    }

    pub fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Response {
        call(self, "GET", path, headers, &[])
    }

    pub fn post(&self, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
        call(self, "POST", path, headers, body)
    }

    /// A JSON push; the caller checks the status (204 expected on success).
    pub fn push_json(&self, body: &Value) -> Response {
        self.post(
            "/loki/api/v1/push",
            &[("Content-Type", "application/json")],
            body.to_string().as_bytes(),
        )
    }

    /// A JSON push for a tenant.
    pub fn push_json_as(&self, tenant: &str, body: &Value) -> Response {
        self.post(
            "/loki/api/v1/push",
            &[
                ("Content-Type", "application/json"),
                ("X-Scope-OrgID", tenant),
            ],
            body.to_string().as_bytes(),
        )
    }

    /// A JSON push that must succeed with 204.
    pub fn push_json_ok(&self, body: &Value) {
        let response = self.push_json(body);
        assert_eq!(response.status, 204, "push failed: {}", response.text());
    }

    /// A protobuf push, snappy-compressed as Loki clients (Promtail, Alloy) send it.
    pub fn push_protobuf(&self, request: &super::proto::PushRequest) -> Response {
        let body = super::proto::encode_snappy(request);
        self.post(
            "/loki/api/v1/push",
            &[("Content-Type", "application/x-protobuf")],
            &body,
        )
    }

    /// `GET /loki/api/v1/query_range` with raw parameters.
    pub fn query_range_response(
        &self,
        params: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> Response {
        let path = format!("/loki/api/v1/query_range?{}", encode_query(params));
        self.get_with(&path, headers)
    }

    /// `query_range` that must succeed; returns the parsed body.
    pub fn query_range(&self, params: &[(&str, &str)]) -> Value {
        let response = self.query_range_response(params, &[]);
        assert_eq!(
            response.status,
            200,
            "query_range {params:?} failed: {}",
            response.text()
        );
        response.json()
    }

    /// Every entry of `query` in the default window, forward, up to [`QUERY_LIMIT`];
    /// with `categorize` structured metadata comes apart from the labels.
    pub fn query_all(&self, query: &str, categorize: bool) -> Vec<Entry> {
        let start = (now_ns() - LOOKBACK_NS).to_string();
        let end = (now_ns() + LOOKAHEAD_NS).to_string();
        let limit = QUERY_LIMIT.to_string();
        let params = [
            ("query", query),
            ("start", start.as_str()),
            ("end", end.as_str()),
            ("limit", limit.as_str()),
            ("direction", "forward"),
        ];
        let headers: &[(&str, &str)] = if categorize {
            &[CATEGORIZE_LABELS]
        } else {
            &[]
        };
        let response = self.query_range_response(&params, headers);
        assert_eq!(
            response.status,
            200,
            "query {query} failed: {}",
            response.text()
        );
        let list = entries(&response.json());
        assert!(
            list.len() < QUERY_LIMIT,
            "query {query} hit the limit of {QUERY_LIMIT}: the test must ask for less"
        );
        sorted(list, true)
    }

    /// `/loki/api/v1/index/stats` for `query` over the default window.
    pub fn index_stats(&self, query: &str) -> IndexStats {
        let start = (now_ns() - LOOKBACK_NS).to_string();
        let end = (now_ns() + LOOKAHEAD_NS).to_string();
        let path = format!(
            "/loki/api/v1/index/stats?{}",
            encode_query(&[("query", query), ("start", &start), ("end", &end)])
        );
        let response = self.get(&path);
        assert_eq!(
            response.status,
            200,
            "index/stats {query} failed: {}",
            response.text()
        );
        let body = response.json();
        let field = |name: &str| {
            body[name]
                .as_u64()
                .unwrap_or_else(|| panic!("index/stats without {name}: {body}"))
        };
        IndexStats {
            streams: field("streams"),
            chunks: field("chunks"),
            entries: field("entries"),
            bytes: field("bytes"),
        }
    }

    /// Polls index stats until `query` has at least `expected` entries or `timeout_ms`
    /// passes, then returns the last count (callers assert equality, so a shortfall fails
    /// with the numbers and an excess shows duplicates).
    pub fn wait_for_count(&self, query: &str, expected: u64, timeout_ms: u64) -> u64 {
        let deadline = Instant::now() + Duration::from_millis(timeout_ms);
        loop {
            let count = self.index_stats(query).entries;
            if count >= expected || Instant::now() > deadline {
                return count;
            }
            std::thread::sleep(Duration::from_millis(POLL_INTERVAL_MS));
        }
    }

    /// The Prometheus text of `/metrics`.
    pub fn metrics(&self) -> String {
        let response = self.get("/metrics");
        assert_eq!(response.status, 200, "/metrics failed: {}", response.text());
        response.text()
    }
}

/// One sample of the Prometheus text format: name, labels, value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Parses the samples of a Prometheus text exposition (comments skipped). Panics on lines
/// that are not valid samples, since a scraper would reject them too.
pub fn parse_metrics(text: &str) -> Vec<Sample> {
    let mut samples = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (series, rest) = match line.find('{') {
            Some(_) => {
                let close = line
                    .rfind('}')
                    .unwrap_or_else(|| panic!("unclosed labels: {line}"));
                (&line[..close + 1], &line[close + 1..])
            }
            None => {
                let space = line
                    .find(' ')
                    .unwrap_or_else(|| panic!("sample without value: {line}"));
                (&line[..space], &line[space..])
            }
        };
        let value_text = rest
            .split_whitespace()
            .next()
            .unwrap_or_else(|| panic!("no value: {line}"));
        let value: f64 = match value_text {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("bad sample value in {line}")),
        };
        let (name, labels) = match series.find('{') {
            Some(open) => (
                &series[..open],
                parse_label_block(&series[open + 1..series.len() - 1]),
            ),
            None => (series, BTreeMap::new()),
        };
        samples.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    samples
}

fn parse_label_block(block: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut rest = block.trim();
    while !rest.is_empty() {
        let eq = rest
            .find('=')
            .unwrap_or_else(|| panic!("label without '=': {block}"));
        let name = rest[..eq].trim().to_string();
        let after = &rest[eq + 1..];
        assert!(after.starts_with('"'), "label value not quoted: {block}");
        let mut value = String::new();
        let mut chars = after[1..].char_indices();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, other)) => value.push(other),
                    None => panic!("dangling escape: {block}"),
                },
                '"' => {
                    end = Some(i + 2);
                    break;
                }
                c => value.push(c),
            }
        }
        let end = end.unwrap_or_else(|| panic!("unterminated label value: {block}"));
        labels.insert(name, value);
        rest = after[end..].trim_start_matches(',').trim();
    }
    labels
}

/// The sum of every sample named `name` whose labels include all of `filter`.
pub fn metric_sum(samples: &[Sample], name: &str, filter: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            filter
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .sum()
}

/// URL path with an encoded query string.
pub fn path_with_query(path: &str, params: &[(&str, &str)]) -> String {
    format!("{path}?{}", http::encode_query(params))
}

/// Pushes one JSON body until it is acknowledged (204). A 503 or 429 (memory or sealing
/// behind, a rate limit) is not an acknowledgement: it is retried after a pause, as Loki
/// clients do; any other answer fails the test.
pub fn push_until_acknowledged(addr: std::net::SocketAddr, body: &[u8]) {
    for _ in 0..600 {
        match http::request(
            addr,
            "POST",
            "/loki/api/v1/push",
            &[("Content-Type", "application/json")],
            body,
        ) {
            Ok(r) if r.status == 204 => return,
            Ok(r) if r.status == 503 || r.status == 429 => {
                std::thread::sleep(Duration::from_millis(100))
            }
            Ok(r) => panic!("push refused with {}: {}", r.status, r.text()),
            Err(e) => panic!("push failed: {e}"),
        }
    }
    panic!("a push was not acknowledged after 600 tries");
}

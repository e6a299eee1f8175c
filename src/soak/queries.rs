//! Query workers: LogQL and the label, series and stats endpoints, run over the soak's own
//! streams while it ingests, seals, compacts and applies retention, each answer checked.
//!
//! Which question it answers: "does every query keep working, and keep being right, while
//! the data moves between heads and parts?" A query that fails while the server is ready is
//! a suspect (see [`super::findings`]); an answer that is wrong is a violation at once: a
//! line filter that matches nothing must return nothing, every line of a filter must carry
//! its needle, entries come in the asked direction, and an acknowledged line (a sample from
//! the push senders) is found exactly once by its marker.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::Shared;
use super::lanes::{JOB_OLD, JOB_PUSH, Rng, SYSLOG_HOST, TENANT_OLD, TENANT_PUSH, TENANT_SYSLOG};
use super::push::AckSample;
use crate::bench::http::{HttpClient, encode_query};
use crate::ingest::listeners::now_ns;

/// The longest pause between two queries of a worker (a random pause in `0..=` this):
/// queries overlap seal rounds often without taking a whole core from the server.
pub const QUERY_PAUSE_MS_MAX: u64 = 50;
/// One in this many queries checks an acknowledged sample, when there is one.
const READ_ACK_ONE_IN: u64 = 4;
/// One in this many of the other queries is [`QueryKind::HotNoMatch`], the full scan of
/// the hot streams' heads that meets seal rounds most (the rest are picked evenly).
const HOT_NO_MATCH_ONE_IN: u64 = 3;
/// A needle no line carries: the scan goes through every head and block of the range and
/// returns nothing, the query that met a seal round in the field.
const NO_MATCH: &str = "nomatch-zzz-soak";

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum QueryKind {
    HotNoMatch,
    AllNoMatch,
    CommonWord,
    HotForward,
    SmallStreams,
    MetricRange,
    Instant,
    Labels,
    LabelValues,
    Series,
    Stats,
    SyslogNoMatch,
    SyslogApp,
    OldRange,
    ReadAck,
}

impl QueryKind {
    /// Every kind the workers pick from at random (read-your-acks is picked separately).
    pub const RANDOM: [QueryKind; 14] = [
        QueryKind::HotNoMatch,
        QueryKind::AllNoMatch,
        QueryKind::CommonWord,
        QueryKind::HotForward,
        QueryKind::SmallStreams,
        QueryKind::MetricRange,
        QueryKind::Instant,
        QueryKind::Labels,
        QueryKind::LabelValues,
        QueryKind::Series,
        QueryKind::Stats,
        QueryKind::SyslogNoMatch,
        QueryKind::SyslogApp,
        QueryKind::OldRange,
    ];

    pub fn name(self) -> &'static str {
        match self {
            QueryKind::HotNoMatch => "hot-nomatch",
            QueryKind::AllNoMatch => "all-nomatch-regex",
            QueryKind::CommonWord => "common-word",
            QueryKind::HotForward => "hot-forward",
            QueryKind::SmallStreams => "small-streams",
            QueryKind::MetricRange => "metric-range",
            QueryKind::Instant => "instant",
            QueryKind::Labels => "labels",
            QueryKind::LabelValues => "label-values",
            QueryKind::Series => "series",
            QueryKind::Stats => "index-stats",
            QueryKind::SyslogNoMatch => "syslog-nomatch",
            QueryKind::SyslogApp => "syslog-app",
            QueryKind::OldRange => "old-range",
            QueryKind::ReadAck => "read-your-ack",
        }
    }
}

/// One request: tenant, path with query string, and how to judge the answer.
pub struct Query {
    pub kind: QueryKind,
    pub tenant: &'static str,
    pub path: String,
    pub check: Check,
}

/// What a right answer looks like.
pub enum Check {
    /// Log lines: at most `limit`, in `forward` order or backward, each containing
    /// `needle` if given, and none at all if `empty`.
    Streams {
        limit: usize,
        forward: bool,
        needle: Option<String>,
        empty: bool,
    },
    /// Exactly this line at this timestamp, once.
    One(Box<AckSample>),
    /// A metric result (`matrix` or `vector`).
    Metric,
    /// `data` is a list (labels, label values, series).
    List,
    /// `/index/stats`: an object with `entries`.
    Stats,
}

fn range_path(query: &str, extra: &[(&str, &str)]) -> String {
    let mut params = vec![("query", query)];
    params.extend_from_slice(extra);
    format!("/loki/api/v1/query_range?{}", encode_query(&params))
}

/// Builds a query of `kind`; `sample` is used by [`QueryKind::ReadAck`] only.
pub fn build(kind: QueryKind, shared: &Shared, sample: Option<AckSample>) -> Option<Query> {
    let push = format!(r#"{{job="{JOB_PUSH}"}}"#);
    let hot = format!(r#"{{job="{JOB_PUSH}", lane="large"}}"#);
    let word = shared
        .corpus
        .common_word
        .replace('\\', "\\\\")
        .replace('"', "\\\"");
    let streams = |limit: usize, forward: bool, needle: Option<&str>, empty: bool| Check::Streams {
        limit,
        forward,
        needle: needle.map(str::to_string),
        empty,
    };
    let (tenant, path, check) = match kind {
        QueryKind::HotNoMatch => (
            TENANT_PUSH,
            range_path(
                &format!(r#"{hot} |= "{NO_MATCH}""#),
                &[("since", "5m"), ("limit", "100")],
            ),
            streams(100, false, None, true),
        ),
        QueryKind::AllNoMatch => (
            TENANT_PUSH,
            // Every line starts with its marker, so this regex filter keeps none of them.
            range_path(
                &format!(r#"{push} !~ "^soak=""#),
                &[("since", "30s"), ("limit", "100")],
            ),
            streams(100, false, None, true),
        ),
        QueryKind::CommonWord => (
            TENANT_PUSH,
            range_path(
                &format!(r#"{push} |= "{word}""#),
                &[("since", "1m"), ("limit", "100")],
            ),
            streams(100, false, Some(&shared.corpus.common_word), false),
        ),
        QueryKind::HotForward => (
            TENANT_PUSH,
            range_path(
                &format!(r#"{{job="{JOB_PUSH}", lane="large", s="hot0"}}"#),
                &[
                    ("since", "30s"),
                    ("limit", "1000"),
                    ("direction", "forward"),
                ],
            ),
            streams(1000, true, Some("soak="), false),
        ),
        QueryKind::SmallStreams => (
            TENANT_PUSH,
            range_path(
                &format!(r#"{{job="{JOB_PUSH}", lane="small", s=~"1.*"}}"#),
                &[("since", "2m"), ("limit", "500")],
            ),
            streams(500, false, Some("soak="), false),
        ),
        QueryKind::MetricRange => (
            TENANT_PUSH,
            range_path(
                &format!("sum by (lane) (count_over_time({push}[1m]))"),
                &[("since", "5m"), ("step", "10s")],
            ),
            Check::Metric,
        ),
        QueryKind::Instant => (
            TENANT_PUSH,
            format!(
                "/loki/api/v1/query?{}",
                encode_query(&[("query", &format!("sum(rate({push}[1m]))"))])
            ),
            Check::Metric,
        ),
        QueryKind::Labels => (
            TENANT_PUSH,
            format!("/loki/api/v1/labels?{}", encode_query(&[("since", "5m")])),
            Check::List,
        ),
        QueryKind::LabelValues => (
            TENANT_PUSH,
            format!(
                "/loki/api/v1/label/s/values?{}",
                encode_query(&[("since", "5m")])
            ),
            Check::List,
        ),
        QueryKind::Series => (
            TENANT_PUSH,
            format!(
                "/loki/api/v1/series?{}",
                encode_query(&[("match[]", &hot), ("since", "5m")])
            ),
            Check::List,
        ),
        QueryKind::Stats => (
            TENANT_PUSH,
            format!(
                "/loki/api/v1/index/stats?{}",
                encode_query(&[("query", &push), ("since", "5m")])
            ),
            Check::Stats,
        ),
        QueryKind::SyslogNoMatch => (
            TENANT_SYSLOG,
            range_path(
                &format!(r#"{{host="{SYSLOG_HOST}"}} |= "{NO_MATCH}""#),
                &[("since", "5m"), ("limit", "100")],
            ),
            streams(100, false, None, true),
        ),
        QueryKind::SyslogApp => (
            TENANT_SYSLOG,
            range_path(
                &format!(r#"{{host="{SYSLOG_HOST}", app="app3"}}"#),
                &[("since", "2m"), ("limit", "200")],
            ),
            streams(200, false, Some("soak="), false),
        ),
        QueryKind::OldRange => {
            // The old lines' range, which retention is dropping at the same time.
            let end = now_ns() - shared.retention.as_nanos() as i64;
            let start = end - 4 * 3600 * 1_000_000_000;
            (
                TENANT_OLD,
                range_path(
                    &format!(r#"{{job="{JOB_OLD}"}}"#),
                    &[
                        ("start", &start.to_string()),
                        ("end", &end.to_string()),
                        ("limit", "500"),
                    ],
                ),
                streams(500, false, Some("soak="), false),
            )
        }
        QueryKind::ReadAck => {
            let s = sample?;
            let start = s.ts_ns.to_string();
            let end = (s.ts_ns + 1).to_string();
            (
                s.tenant,
                range_path(
                    &format!(r#"{} |= "{}""#, s.labels, s.marker),
                    &[
                        ("start", &start),
                        ("end", &end),
                        ("limit", "10"),
                        ("direction", "forward"),
                    ],
                ),
                Check::One(Box::new(s)),
            )
        }
    };
    Some(Query {
        kind,
        tenant,
        path,
        check,
    })
}

/// What is wrong with an answer, or `None` when it is right.
pub fn judge(check: &Check, body: &[u8]) -> Option<String> {
    let v: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return Some(format!("the answer is not JSON: {e}")),
    };
    let data = &v["data"];
    match check {
        Check::Streams {
            limit,
            forward,
            needle,
            empty,
        } => {
            if data["resultType"] != "streams" {
                return Some(format!(
                    "resultType {} instead of streams",
                    data["resultType"]
                ));
            }
            let mut total = 0;
            for stream in data["result"].as_array().map_or(&[][..], Vec::as_slice) {
                let mut last: Option<i64> = None;
                for value in stream["values"].as_array().map_or(&[][..], Vec::as_slice) {
                    total += 1;
                    let ts: i64 = value[0].as_str().and_then(|t| t.parse().ok()).unwrap_or(-1);
                    let line = value[1].as_str().unwrap_or("");
                    if let Some(prev) = last
                        && ((*forward && ts < prev) || (!*forward && ts > prev))
                    {
                        return Some(format!(
                            "entries out of {} order in {}: {ts} after {prev}",
                            if *forward { "forward" } else { "backward" },
                            stream["stream"]
                        ));
                    }
                    last = Some(ts);
                    if let Some(n) = needle
                        && !line.contains(n.as_str())
                    {
                        return Some(format!("line {line:?} lacks the filter's {n:?}"));
                    }
                }
            }
            if *empty && total > 0 {
                return Some(format!("{total} entries for a filter that matches no line"));
            }
            if total > *limit {
                return Some(format!("{total} entries for limit {limit}"));
            }
            None
        }
        Check::One(sample) => {
            let mut found = Vec::new();
            for stream in data["result"].as_array().map_or(&[][..], Vec::as_slice) {
                for value in stream["values"].as_array().map_or(&[][..], Vec::as_slice) {
                    found.push((
                        value[0].as_str().unwrap_or("").to_string(),
                        value[1].as_str().unwrap_or("").to_string(),
                    ));
                }
            }
            let want = (sample.ts_ns.to_string(), sample.line.clone());
            if found.len() == 1 && found[0] == want {
                return None;
            }
            Some(format!(
                "acknowledged line {:?} of {} (acknowledged by incarnation {}) found {} times: {:?}",
                sample.marker.trim_end(),
                sample.labels,
                sample.incarnation,
                found.len(),
                found.iter().take(3).collect::<Vec<_>>()
            ))
        }
        Check::Metric => match data["resultType"].as_str() {
            Some("matrix" | "vector") => None,
            other => Some(format!("resultType {other:?} for a metric query")),
        },
        Check::List => (!data.is_array()).then(|| format!("data is not a list: {data}")),
        Check::Stats => v["entries"]
            .as_u64()
            .is_none()
            .then(|| format!("no entries in {v}")),
    }
}

/// Per kind: answers, failures and the slowest answer.
#[derive(Debug, Default, Clone)]
pub struct KindStats {
    pub ok: u64,
    pub failed_while_ready: u64,
    pub failed_while_stopping: u64,
    pub wrong: u64,
    pub slowest: Duration,
}

/// Asks each kind once while the first incarnation is up; returns the kinds the server
/// answers, and notes the others (a query the server does not implement is not a failure).
pub fn probe(shared: &Shared) -> Vec<QueryKind> {
    let mut kept = Vec::new();
    let Some(turn) = shared.life.begin() else {
        return QueryKind::RANDOM.to_vec();
    };
    let mut client = HttpClient::new(turn.endpoints.http);
    for kind in QueryKind::RANDOM {
        let Some(q) = build(kind, shared, None) else {
            continue;
        };
        match client.request("GET", &q.path, &[("X-Scope-OrgID", q.tenant)], b"") {
            Ok(r) if (400..500).contains(&r.status) => shared.findings.note(format!(
                "the server does not answer {} queries ({}: {}); left out",
                kind.name(),
                r.status,
                r.text().trim().chars().take(200).collect::<String>()
            )),
            _ => kept.push(kind),
        }
    }
    kept
}

/// One query worker's loop, until the soak's load ends.
pub fn query_worker(
    index: usize,
    kinds: Vec<QueryKind>,
    shared: Arc<Shared>,
) -> BTreeMap<QueryKind, KindStats> {
    let mut stats: BTreeMap<QueryKind, KindStats> = BTreeMap::new();
    let mut rng = Rng::new(super::lanes::mix(shared.seed, 0xFFFF, index as u32, 4));
    let mut client: Option<(u32, HttpClient)> = None;
    let life = &shared.life;
    while !life.is_over() && Instant::now() < shared.deadline && !kinds.is_empty() {
        std::thread::sleep(Duration::from_millis(rng.between(0, QUERY_PAUSE_MS_MAX)));
        let query = match rng.one_in(READ_ACK_ONE_IN) {
            true => shared
                .samples
                .take(rng.one_in(2))
                .and_then(|s| build(QueryKind::ReadAck, &shared, Some(s))),
            false => None,
        };
        let Some(query) = query.or_else(|| {
            let hot = rng.one_in(HOT_NO_MATCH_ONE_IN) && kinds.contains(&QueryKind::HotNoMatch);
            let kind = match hot {
                true => QueryKind::HotNoMatch,
                false => kinds[rng.between(0, kinds.len() as u64 - 1) as usize],
            };
            build(kind, &shared, None)
        }) else {
            continue;
        };
        let Some(turn) = life.begin_waiting() else {
            break;
        };
        if client.as_ref().is_none_or(|(i, _)| *i != turn.incarnation) {
            client = Some((turn.incarnation, HttpClient::new(turn.endpoints.http)));
        }
        let (_, http) = client.as_mut().expect("a client for this incarnation");
        let started = Instant::now();
        let result = http.request("GET", &query.path, &[("X-Scope-OrgID", query.tenant)], b"");
        let took = started.elapsed();
        let s = stats.entry(query.kind).or_default();
        s.slowest = s.slowest.max(took);
        let failure = match &result {
            Ok(r) if r.status == 200 => match judge(&query.check, &r.body) {
                None => {
                    s.ok += 1;
                    shared
                        .queries_ok
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    continue;
                }
                Some(wrong) => {
                    s.wrong += 1;
                    shared.findings.violation(
                        "query-wrong-answer",
                        format!(
                            "{} query (tenant {}, incarnation {}) {}: {wrong}",
                            query.kind.name(),
                            query.tenant,
                            turn.incarnation,
                            query.path
                        ),
                    );
                    continue;
                }
            },
            Ok(r) => format!(
                "answered {}: {}",
                r.status,
                r.text().trim().chars().take(300).collect::<String>()
            ),
            Err(e) => e.to_string(),
        };
        if turn.up_throughout() {
            s.failed_while_ready += 1;
            shared.findings.suspect(
                turn.incarnation,
                "query-failed-while-ready",
                format!(
                    "{} query (tenant {}, incarnation {}) {} {failure} after {took:?} while the server was ready",
                    query.kind.name(),
                    query.tenant,
                    turn.incarnation,
                    query.path
                ),
            );
        } else {
            s.failed_while_stopping += 1;
        }
    }
    stats
}

#[cfg(test)]
mod tests {
    use super::*;

    fn streams(needle: Option<&str>, empty: bool, forward: bool) -> Check {
        Check::Streams {
            limit: 3,
            forward,
            needle: needle.map(str::to_string),
            empty,
        }
    }

    fn answer(values: &[(&str, &str)]) -> Vec<u8> {
        let values: Vec<Value> = values
            .iter()
            .map(|(t, l)| serde_json::json!([t, l]))
            .collect();
        serde_json::json!({"status": "success", "data": {"resultType": "streams",
            "result": [{"stream": {"job": "soak"}, "values": values}]}})
        .to_string()
        .into_bytes()
    }

    #[test]
    fn judges_log_answers() {
        let ok = answer(&[("3", "soak=1.2 a"), ("2", "soak=1.3 b")]);
        assert_eq!(judge(&streams(Some("soak="), false, false), &ok), None);
        let e = judge(&streams(None, false, true), &ok).unwrap();
        assert!(e.contains("out of forward order"), "{e}");
        let e = judge(&streams(None, true, false), &ok).unwrap();
        assert!(e.contains("matches no line"), "{e}");
        let e = judge(&streams(Some(" a"), false, false), &ok).unwrap();
        assert!(e.contains("lacks"), "{e}");
        let many = answer(&[("4", "x"), ("3", "x"), ("2", "x"), ("1", "x")]);
        assert!(
            judge(&streams(None, false, false), &many)
                .unwrap()
                .contains("limit 3")
        );
        assert!(judge(&Check::List, b"{\"data\": {}}").is_some());
        assert!(judge(&Check::List, b"{\"data\": []}").is_none());
        assert!(judge(&Check::Stats, b"{\"entries\": 3}").is_none());
        assert!(
            judge(&Check::Metric, b"not json")
                .unwrap()
                .contains("not JSON")
        );
    }

    #[test]
    fn judges_read_your_acks() {
        let sample = AckSample {
            tenant: TENANT_PUSH,
            labels: crate::model::Labels::from_pairs([("job", "soak")]),
            marker: "soak=1.2 ".into(),
            line: "soak=1.2 a".into(),
            ts_ns: 3,
            incarnation: 1,
        };
        let check = Check::One(Box::new(sample));
        assert_eq!(judge(&check, &answer(&[("3", "soak=1.2 a")])), None);
        assert!(
            judge(&check, &answer(&[]))
                .unwrap()
                .contains("found 0 times")
        );
        let twice = answer(&[("3", "soak=1.2 a"), ("3", "soak=1.2 a")]);
        assert!(judge(&check, &twice).unwrap().contains("found 2 times"));
        assert!(judge(&check, &answer(&[("4", "soak=1.2 a")])).is_some());
    }
}

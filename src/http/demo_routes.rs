//! The demo's API: the five routes of the small Go demo among the seeds (`POST /ingest`,
//! `GET /logs`, `GET /logs/recent`, `GET /stats`, `POST /simulate`), so that its users'
//! scripts work against this server unchanged.
//!
//! Which question it answers: "how do the demo's requests map onto our own ingest and query
//! paths?" Each route is thin: `/ingest` decodes the demo's entry shape
//! ([`crate::ingest::demo`]) and stores it through the same batches, rate, budget and WAL
//! commit as `/insert/jsonline`, answering only once it is durable; `/simulate` feeds
//! generated lines (the benchmark harness's, see [`super::demo_simulate`]) through that
//! same path; `/logs` is a LogQL log query (`{service_name="x", level=~"(?i)error"}`,
//! newest first); `/stats` is read from the counters `/metrics` shows and from the index
//! stats path. The tenant is `X-Scope-OrgID` (default `fake`), as everywhere. Errors are
//! JSON, `{"error": "..."}`, with the status the same refusal has on the Loki routes.
//!
//! An entry's `id` is not stored: it is derived from what is (tenant, stream, timestamp and
//! line), so it is stable across queries and restarts, and two entries equal in all four
//! share it.

use std::rc::Rc;
use std::time::{Duration, Instant};

use super::ingest_routes::{
    Batches, StreamLevel, charge_rate, count_refused, count_truncated, decoded_bytes,
    entry_metadata, hold_decoded, push_limits, rate_size,
};
use super::json;
use super::loki::{param, params, tenant};
use super::query_routes::{check_limit, error_response};
use super::request::Request;
use super::response::Response;
use crate::ingest::demo::{LEVEL_LABEL, SERVICE_LABEL, decode_ingest};
use crate::ingest::discovery::DETECTED_LEVEL;
use crate::ingest::jsonline::JsonLines;
use crate::ingest::listeners::now_ns;
use crate::ingest::push::{PushEntry, PushError};
use crate::ingest::time_range::{TIMESTAMP_NS_MAX, TIMESTAMP_NS_MIN};
use crate::logql::{self, Expr};
use crate::model::{Duplicates, Labels, stream_hash};
use crate::query::QueryError;
use crate::query::engine::{self, Running, expect_answers};
use crate::query::merge::PartialStream;
use crate::query::params::Direction;
use crate::runtime::Core;
use crate::shard::{LabelsRequest, Protocol, ShardAnswer, ShardRequest};
use crate::tenants::federation::TenantScope;

/// Entries `/logs` answers without `limit`, and `/logs/recent` always: the demo's 100.
pub const LOGS_LIMIT_DEFAULT: u32 = 100;
/// Entries of one round of [`store`]: each round is committed before the next is sent, so
/// that one batch stays far below the WAL's record size whatever the lines (a simulation's
/// lines are many; an `/ingest` body is one round).
pub const STORE_ROUND_LINES: usize = 5_000;
/// How far back `/logs` looks when the tenant has no `max_query_length`: Loki's default.
const LOGS_LOOKBACK_DEFAULT: Duration = crate::config::limits::QUERY_LENGTH_MAX_DEFAULT;

/// `{"error": message}` with `status`.
pub(super) fn json_error(status: u16, message: &str) -> Response {
    let mut body = String::from(r#"{"error":"#);
    json::string(&mut body, message.trim_end());
    body.push('}');
    Response::json(status, body.into_bytes())
}

/// A text answer of the shared ingest or query machinery as a JSON error: the same status
/// and headers (`Retry-After`), its text as the message.
pub fn as_json(r: Response) -> Response {
    let text = String::from_utf8_lossy(&r.body).into_owned();
    let mut out = json_error(r.status, &text);
    for (name, value) in r.headers {
        if !name.eq_ignore_ascii_case("content-type") {
            out = out.with_header(name, value);
        }
    }
    out
}

/// Counts a refused request as the Loki routes do, and answers it as JSON.
pub(super) fn refuse(core: &Core, tenant: &str, e: PushError) -> Response {
    count_refused(core, tenant, &e);
    json_error(e.status(), e.message())
}

/// `POST /ingest`: one demo entry (or an array of them), answered `200 {"accepted": N}` once
/// durable.
pub async fn ingest(core: &Rc<Core>, req: &Request) -> Response {
    let tenant = match tenant(core, req, true) {
        Ok(t) => t,
        Err(r) => return as_json(r),
    };
    let limits = core.limits.for_tenant(&tenant);
    let JsonLines { rows, truncated } =
        match decode_ingest(&req.body, now_ns(), &push_limits(core, &limits)) {
            Ok(d) => d,
            Err(e) => return refuse(core, &tenant, e),
        };
    store(core, req, &tenant, rows, truncated)
        .await
        .map_or_else(as_json, |n| {
            Response::json(200, format!(r#"{{"accepted":{n}}}"#).into_bytes())
        })
}

/// Stores decoded rows as `/insert/jsonline` stores its rows: the tenant's rate, the core's
/// budget, then batches per owner, answered once every owner has made its batch durable.
/// Returns how many entries were stored, or the refusal (as text, as the Loki routes give
/// it).
pub(super) async fn store(
    core: &Rc<Core>,
    req: &Request,
    tenant: &str,
    rows: Vec<(Labels, PushEntry)>,
    truncated: crate::ingest::push::Truncated,
) -> Result<usize, Response> {
    let limits = core.limits.for_tenant(tenant);
    charge_rate(
        core,
        tenant,
        &limits,
        rate_size(rows.iter().map(|(_, e)| e)),
    )?;
    let labels: usize = rows
        .iter()
        .flat_map(|(l, _)| l.pairs())
        .map(|(k, v)| k.len() + v.len())
        .sum();
    hold_decoded(
        core,
        tenant,
        req,
        decoded_bytes(rows.iter().map(|(_, e)| e)) + labels,
    )?;
    count_truncated(core, tenant, truncated);
    let mut stored = 0;
    // Entries refused for their time: the others are stored, as a Loki push stores them,
    // and the answer is a 400 that names them.
    let mut too_old_text: Vec<String> = Vec::new();
    for round in rows.chunks(STORE_ROUND_LINES) {
        // As JSON lines: an entry without a timestamp takes the receive time, so equal
        // entries of one request are distinct events, not retries.
        let mut batches = Batches::new(core, tenant, &limits, Duplicates::Keep);
        for (labels, e) in round {
            let id = stream_hash(tenant, labels);
            let md = entry_metadata(&StreamLevel::of(&limits, labels), e);
            batches.push(id, labels, e.timestamp_ns, &e.line, &md);
        }
        let (answer, too_old) = batches.commit_counted(Protocol::Demo).await;
        if answer.status != 204 {
            return Err(with_stored(answer, stored));
        }
        stored += round.len() - too_old.entries as usize;
        if too_old.entries > 0 {
            too_old_text.push(too_old.text());
        }
    }
    if !too_old_text.is_empty() {
        let text = format!("{}\n", too_old_text.join("; "));
        return Err(with_stored(Response::text(400, &text), stored));
    }
    Ok(stored)
}

/// A refusal of part of a request whose other `stored` entries are durable says so.
fn with_stored(r: Response, stored: usize) -> Response {
    if stored == 0 {
        return r;
    }
    let text = String::from_utf8_lossy(&r.body);
    let text = format!(
        "{} ({stored} other entries of the request were stored)\n",
        text.trim_end()
    );
    Response {
        body: text.into_bytes(),
        ..r
    }
}

/// Which read of the demo's API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Read {
    /// `GET /logs?level=&service=&limit=`.
    Logs,
    /// `GET /logs/recent`: the 100 newest.
    Recent,
    /// `GET /stats`.
    Stats,
}

/// Answers a read in the core's `query` task queue, as the Loki query routes are answered
/// (see [`super::loki`]): a heavy read must not take the core from ingest.
pub async fn read(core: Rc<Core>, req: Request, what: Read) -> Response {
    let tq = core.query_tq;
    let task = glommio::spawn_local_into(async move { read_here(&core, &req, what).await }, tq);
    match task {
        Ok(task) => task.await,
        Err(e) => json_error(500, &format!("cannot schedule the query: {e}")),
    }
}

async fn read_here(core: &Rc<Core>, req: &Request, what: Read) -> Response {
    let tenant = match tenant(core, req, false) {
        Ok(t) => t,
        Err(r) => return as_json(r),
    };
    let params = match params(req) {
        Ok(p) => p,
        Err(r) => return as_json(r),
    };
    core.shard.counters.queries.inc();
    let started = Instant::now();
    let admitted = match core.queries.admit(&core.config.query) {
        Ok(a) => a,
        Err(e) => return as_json(error_response(&e)),
    };
    let scope = TenantScope::single(&tenant);
    let result = match what {
        Read::Logs => logs(core, &scope, LogsQuery::from_params(&params)).await,
        Read::Recent => logs(core, &scope, Ok(LogsQuery::recent())).await,
        Read::Stats => stats(core, &tenant).await,
    };
    drop(admitted);
    core.shard
        .query_seconds
        .observe(started.elapsed().as_secs_f64());
    result.unwrap_or_else(|e| as_json(error_response(&e)))
}

/// The filters of `/logs`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogsQuery {
    pub level: Option<String>,
    pub service: Option<String>,
    pub limit: u32,
}

impl LogsQuery {
    fn recent() -> LogsQuery {
        LogsQuery {
            level: None,
            service: None,
            limit: LOGS_LIMIT_DEFAULT,
        }
    }

    /// `level`, `service` and `limit`; an empty value is no filter.
    pub fn from_params(params: &[(String, String)]) -> Result<LogsQuery, QueryError> {
        let some = |name| param(params, name).filter(|v| !v.is_empty());
        let limit = match some("limit") {
            None => LOGS_LIMIT_DEFAULT,
            Some(v) => match v.parse::<u32>() {
                Ok(n) if n > 0 => n,
                _ => {
                    return Err(QueryError::bad_request(format!(
                        "invalid limit '{}': a positive whole number is expected",
                        crate::ingest::push::validate::echo(v)
                    )));
                }
            },
        };
        Ok(LogsQuery {
            level: some("level").map(str::to_string),
            service: some("service").map(str::to_string),
            limit,
        })
    }

    /// The LogQL selector of the filters: `service` exactly, `level` whatever its case (the
    /// demo sends `ERROR`, a syslog line's level is `error`); no filter selects every stream
    /// with a service, which every `/ingest` entry has.
    pub fn selector(&self) -> String {
        let quote = crate::query::template::go_quote;
        let mut matchers = Vec::new();
        if let Some(service) = &self.service {
            matchers.push(format!("{SERVICE_LABEL}={}", quote(service)));
        }
        if let Some(level) = &self.level {
            let pattern = format!("(?i){}", regex::escape(level));
            matchers.push(format!("{LEVEL_LABEL}=~{}", quote(&pattern)));
        }
        if matchers.is_empty() {
            matchers.push(format!("{SERVICE_LABEL}=~\".+\""));
        }
        format!("{{{}}}", matchers.join(", "))
    }
}

/// `/logs` and `/logs/recent`: a LogQL log query, newest first, as a JSON array of entries
/// in the demo's LogEntry shape.
async fn logs(
    core: &Rc<Core>,
    scope: &TenantScope,
    query: Result<LogsQuery, QueryError>,
) -> Result<Response, QueryError> {
    let query = query?;
    check_limit(core, scope, query.limit)?;
    let Expr::Log(expr) = logql::parse_expr(&query.selector())? else {
        unreachable!("a selector is a log query")
    };
    // Entries a little ahead of the clock are stored as sent (`future_skew_max`).
    let end = now_ns()
        .saturating_add(i64::try_from(core.config.future_skew_max.as_nanos()).unwrap_or(0))
        .saturating_add(1);
    let lookback = core
        .query_limits_in(scope)
        .max_query_length
        .unwrap_or(LOGS_LOOKBACK_DEFAULT);
    let start = end.saturating_sub(i64::try_from(lookback.as_nanos()).unwrap_or(i64::MAX));
    let limit = query.limit as usize;
    let streams =
        engine::logs_in(core, scope, expr, (start, end), limit, Direction::Backward).await?;
    let tenant = scope.ids().first().map_or("", String::as_str);
    let body = entries_json(tenant, &streams, limit);
    Ok(Response::json(200, body.into_bytes()))
}

/// The entries of `streams`, newest first (ties in stream order), at most `limit`, as the
/// demo's LogEntry objects.
fn entries_json(tenant: &str, streams: &[PartialStream], limit: usize) -> String {
    let mut refs: Vec<(usize, usize)> = streams
        .iter()
        .enumerate()
        .flat_map(|(si, s)| (0..s.entries.len()).map(move |i| (si, i)))
        .collect();
    refs.sort_by_key(|&(si, i)| std::cmp::Reverse(streams[si].entries[i].0));
    refs.truncate(limit);
    let mut out = String::with_capacity(256 * refs.len() + 2);
    out.push('[');
    for (n, (si, i)) in refs.into_iter().enumerate() {
        if n > 0 {
            out.push(',');
        }
        let s = &streams[si];
        let (ts, line, md, _) = &s.entries[i];
        let label = |name: &str| s.labels.get(name);
        let level = label(LEVEL_LABEL)
            .or_else(|| {
                md.iter()
                    .find(|(k, _)| k == DETECTED_LEVEL)
                    .map(|(_, v)| v.as_str())
            })
            .unwrap_or("");
        out.push_str(r#"{"id":"#);
        json::string(&mut out, &entry_id(tenant, &s.labels, *ts, line));
        out.push_str(r#","timestamp":"#);
        json::string(&mut out, &rfc3339_nanos(*ts));
        out.push_str(r#","level":"#);
        json::string(&mut out, level);
        out.push_str(r#","message":"#);
        json::string(&mut out, line);
        out.push_str(r#","service":"#);
        json::string(&mut out, label(SERVICE_LABEL).unwrap_or(""));
        out.push_str(r#","metadata":"#);
        // `detected_level` is the server's, not the sender's.
        json::string_map(
            &mut out,
            md.iter()
                .filter(|(k, _)| k != DETECTED_LEVEL)
                .map(|(k, v)| (k.as_str(), v.as_str())),
        );
        out.push('}');
    }
    out.push(']');
    out
}

/// A stable id of a stored entry, in the UUID text form the demo's ids have: the 128-bit
/// xxh3 of tenant, stream, timestamp and line.
pub fn entry_id(tenant: &str, labels: &Labels, ts: i64, line: &str) -> String {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    for part in [tenant.as_bytes(), labels.to_string().as_bytes()] {
        h.update(&(part.len() as u64).to_le_bytes());
        h.update(part);
    }
    h.update(&ts.to_le_bytes());
    h.update(line.as_bytes());
    let hex = format!("{:032x}", h.digest128());
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// RFC 3339 in UTC with nanoseconds, always nine digits (`2024-01-02T03:04:05.000000006Z`),
/// so that the text sorts as the time does; Go's `time.Parse` (the demo's clients) reads it.
pub fn rfc3339_nanos(ts: i64) -> String {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:9]Z"
    );
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ts))
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| ts.to_string())
}

/// `/stats`: the tenant's lines stored and discarded since the server started (summed over
/// every core's counters, as `/metrics` shows them per tenant), the uptime, and the entries
/// the tenant has stored (heads and parts, by the index stats path).
async fn stats(core: &Rc<Core>, tenant: &str) -> Result<Response, QueryError> {
    let answers = core
        .fan_out(ShardRequest::Metrics)
        .await
        .map_err(QueryError::Storage)?;
    let (mut processed, mut dropped) = (0u64, 0u64);
    for answer in answers {
        if let ShardAnswer::Metrics(m) = answer
            && let Some((_, c)) = m.tenants.iter().find(|(t, _)| t == tenant)
        {
            processed += c.ingested_lines;
            dropped += c.discarded.iter().sum::<u64>();
        }
    }
    let uptime = core.lifecycle.started.elapsed().as_secs_f64();
    let req = std::sync::Arc::new(LabelsRequest {
        tenant: tenant.to_string(),
        matchers: Vec::new(),
        // Every time an entry may have (the range is `[start, end)`).
        start: TIMESTAMP_NS_MIN,
        end: TIMESTAMP_NS_MAX + 1,
    });
    let scope = TenantScope::single(tenant);
    let running = Running::new(&core.query_limits_in(&scope));
    let answers = engine::ask_all(
        core,
        ShardRequest::Stats(req),
        &running.control,
        running.timeout,
    )
    .await?;
    running.finish();
    let stored: u64 = expect_answers(answers, "stats", |a| match a {
        ShardAnswer::Stats(s, _) => Ok(s.entries),
        other => Err(other),
    })?
    .into_iter()
    .sum();
    let throughput = if uptime > 0.0 {
        processed as f64 / uptime
    } else {
        0.0
    };
    let body = format!(
        r#"{{"total_processed":{processed},"total_dropped":{dropped},"uptime_seconds":{},"avg_throughput":{:.2},"logs_in_storage":{stored}}}"#,
        uptime as u64, throughput
    );
    Ok(Response::json(200, body.into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn selectors_of_the_filters() {
        let q = |p: &[(&str, &str)]| LogsQuery::from_params(&pairs(p)).unwrap();
        assert_eq!(q(&[]).selector(), r#"{service_name=~".+"}"#);
        assert_eq!(q(&[]).limit, LOGS_LIMIT_DEFAULT);
        assert_eq!(
            q(&[
                ("level", "ERROR"),
                ("service", "user-service"),
                ("limit", "5")
            ])
            .selector(),
            r#"{service_name="user-service", level=~"(?i)ERROR"}"#
        );
        // Regex characters of a level are literal; quotes are escaped.
        assert_eq!(
            q(&[("level", "a.b"), ("service", "x\"y")]).selector(),
            r#"{service_name="x\"y", level=~"(?i)a\\.b"}"#
        );
        for s in [
            q(&[("level", "ERROR")]).selector(),
            q(&[("level", "a.b"), ("service", "x\"y")]).selector(),
        ] {
            assert!(matches!(logql::parse_expr(&s), Ok(Expr::Log(_))), "{s}");
        }
        for bad in ["0", "-1", "x", "99999999999"] {
            assert!(LogsQuery::from_params(&pairs(&[("limit", bad)])).is_err());
        }
    }

    #[test]
    fn entries_are_newest_first_in_the_demo_shape() {
        let labels = Labels::from_pairs([("level", "ERROR"), ("service_name", "user-service")]);
        let other = Labels::from_pairs([("level", "INFO"), ("service_name", "b")]);
        let md = vec![
            ("user_id".to_string(), "123".to_string()),
            (DETECTED_LEVEL.to_string(), "error".to_string()),
        ];
        let streams = vec![
            PartialStream {
                labels: labels.clone(),
                entries: vec![(3_000_000_001, "newest".into(), md, vec![])],
            },
            PartialStream {
                labels: other,
                entries: vec![
                    (2_000_000_000, "middle".into(), vec![], vec![]),
                    (1_000_000_000, "oldest".into(), vec![], vec![]),
                ],
            },
        ];
        let v: serde_json::Value =
            serde_json::from_str(&entries_json("fake", &streams, 2)).unwrap();
        let v = v.as_array().unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[0]["message"], "newest");
        assert_eq!(v[0]["timestamp"], "1970-01-01T00:00:03.000000001Z");
        assert_eq!(v[0]["level"], "ERROR");
        assert_eq!(v[0]["service"], "user-service");
        assert_eq!(v[0]["metadata"], serde_json::json!({"user_id": "123"}));
        assert_eq!(
            v[0]["id"],
            entry_id("fake", &labels, 3_000_000_001, "newest").as_str()
        );
        assert_eq!(v[1]["message"], "middle");
        assert_eq!(v[1]["timestamp"], "1970-01-01T00:00:02.000000000Z");
    }

    #[test]
    fn ids_are_stable_and_tell_entries_apart() {
        let l = Labels::from_pairs([("service_name", "a")]);
        let id = entry_id("fake", &l, 1, "x");
        assert_eq!(id, entry_id("fake", &l, 1, "x"));
        assert_eq!(id.len(), 36);
        assert_eq!(id.matches('-').count(), 4);
        assert_ne!(id, entry_id("fake", &l, 2, "x"));
        assert_ne!(id, entry_id("fake", &l, 1, "y"));
        assert_ne!(id, entry_id("other", &l, 1, "x"));
    }
}

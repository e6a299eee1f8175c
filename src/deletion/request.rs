//! One delete request: what Loki's compactor keeps of it (`deletionproto.DeleteRequest`),
//! how the HTTP parameters become one (Loki's `request_handler.go`: its checks, in its order,
//! with its error texts), and how the list is rendered as Loki renders it.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::logql::{LabelMatcher, LineFilter};
use crate::model::{Labels, TimestampNs};
use crate::query::pipeline::Pipeline;

/// Loki's statuses: `received` until every line the request covers is gone from disk, then
/// `processed` (Loki's partial `N% Complete` only exists for requests it splits by interval,
/// which this server does not do).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Received,
    Processed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Received => "received",
            Status::Processed => "processed",
        }
    }
}

/// A delete request as stored: times in milliseconds, as Loki's `model.Time`; the range is
/// inclusive at both ends, as Loki's filter (`ts.Before(start) || ts.After(end)` keeps a
/// line).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteRequest {
    pub request_id: String,
    pub tenant: String,
    pub query: String,
    pub start_ms: i64,
    pub end_ms: i64,
    pub created_at_ms: i64,
    pub status: Status,
}

/// A request made ready to test lines: its selector's matchers, the line filters right after
/// it, the rest of its pipeline if it has one, and its range in nanoseconds.
#[derive(Debug)]
pub struct CompiledRequest {
    pub request: DeleteRequest,
    pub matchers: Vec<LabelMatcher>,
    pub filters: Vec<LineFilter>,
    /// The stages after the leading line filters (parsers, label filters, ...): a line is
    /// deleted only if it passes them, as Loki runs a delete query's whole pipeline.
    pub pipeline: Option<Pipeline>,
    /// First and last nanosecond covered, both included.
    pub first_ns: TimestampNs,
    pub last_ns: TimestampNs,
}

impl CompiledRequest {
    /// Compiles a stored request; its query was checked when it was received, so an error
    /// here means the file was not written by this server.
    pub fn new(request: DeleteRequest) -> Result<Arc<CompiledRequest>, String> {
        let (matchers, filters, pipeline) = parse_deletion_query(&request.query)?;
        Ok(Arc::new(CompiledRequest {
            pipeline,
            first_ns: request.start_ms.saturating_mul(1_000_000),
            // Loki keeps a line when `ts.After(end)`, `end` being a millisecond time: the
            // last nanosecond deleted is the end's millisecond itself.
            last_ns: request.end_ms.saturating_mul(1_000_000),
            request,
            matchers,
            filters,
        }))
    }

    /// Whether the request's selector selects a stream with these labels.
    pub fn selects(&self, labels: &Labels) -> bool {
        self.matchers.iter().all(|m| m.matches(labels.get(&m.name)))
    }

    /// Whether `[min, max]` (both included) overlaps the request's range.
    pub fn overlaps(&self, min: TimestampNs, max: TimestampNs) -> bool {
        max >= self.first_ns && min <= self.last_ns
    }

    /// Whether a line of a selected stream (`labels`), with its structured metadata, is
    /// deleted by this request: in its range, through its line filters and, if it has one,
    /// its pipeline.
    pub fn deletes(
        &self,
        ts: TimestampNs,
        line: &str,
        labels: &Labels,
        metadata: &[(&str, &str)],
    ) -> bool {
        ts >= self.first_ns
            && ts <= self.last_ns
            && self.filters.iter().all(|f| f.matches(line.as_bytes()))
            && self.pipeline.as_ref().is_none_or(|p| {
                p.run_once(ts, line, labels, metadata.iter().copied())
                    .is_some()
            })
    }

    /// Whether [`CompiledRequest::deletes`] reads structured metadata (only a pipeline does).
    pub fn reads_metadata(&self) -> bool {
        self.pipeline.is_some()
    }
}

/// A refused request: the HTTP status and Loki's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub status: u16,
    pub message: String,
}

fn bad(message: impl Into<String>) -> Refused {
    Refused {
        status: 400,
        message: message.into(),
    }
}

/// What a delete query compiles to: matchers, leading line filters, the other stages.
pub type DeletionQuery = (Vec<LabelMatcher>, Vec<LineFilter>, Option<Pipeline>);

/// Loki's `parseDeletionQuery`: any text `ParseLogSelector` refuses is `invalid query
/// expression` (so is a pipeline that does not compile, which Loki finds when it applies
/// the request).
pub fn parse_deletion_query(query: &str) -> Result<DeletionQuery, String> {
    let invalid = || "invalid query expression".to_string();
    let expr = crate::logql::parse_log_selector(query, false).map_err(|_| invalid())?;
    let pipeline = if expr.stages.is_empty() {
        None
    } else {
        Some(Pipeline::new(&expr.stages).map_err(|_| invalid())?)
    };
    Ok((expr.selector.matchers, expr.selector.filters, pipeline))
}

/// Loki's `parseTime`: empty is now; RFC 3339; otherwise exactly ten digits of Unix seconds
/// (`util.ParseTime`). Milliseconds; `None`: neither form.
pub fn parse_time(text: &str, now_ms: i64) -> Option<i64> {
    if text.is_empty() {
        return Some(now_ms);
    }
    if let Ok(t) = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
    {
        return i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok();
    }
    if text.len() != 10 {
        return None;
    }
    let secs: f64 = text.parse().ok()?;
    secs.is_finite().then(|| (secs * 1000.0).round() as i64)
}

/// The parameters of a `POST /loki/api/v1/delete`, checked as Loki does, in its order:
/// `query`, then `start`, then `end`. `max_interval` (Loki's split of line-filter requests
/// into intervals) is checked but not needed: a request here is applied whole.
pub fn from_params(
    tenant: &str,
    param: impl Fn(&str) -> Option<String>,
    now_ms: i64,
    now_ns: i64,
) -> Result<DeleteRequest, Refused> {
    let query = param("query").unwrap_or_default();
    if query.is_empty() {
        return Err(bad("query not set"));
    }
    let (_, filters, pipeline) = parse_deletion_query(&query).map_err(bad)?;
    let start = param("start").unwrap_or_default();
    if start.is_empty() {
        return Err(bad("start time not set"));
    }
    let start_ms = parse_time(&start, now_ms)
        .ok_or_else(|| bad("invalid start time: require unix seconds or RFC3339 format"))?;
    let end_ms = parse_time(&param("end").unwrap_or_default(), now_ms)
        .ok_or_else(|| bad("invalid end time: require unix seconds or RFC3339 format"))?;
    if end_ms > now_ms {
        return Err(bad("deletes in the future are not allowed"));
    }
    if start_ms >= end_ms {
        return Err(bad("start time can't be greater than or equal to end time"));
    }
    // Loki's `HasFilter`: line filters, or any other stage.
    if (!filters.is_empty() || pipeline.is_some())
        && let Some(text) = param("max_interval")
        && !text.is_empty()
    {
        check_max_interval(&text, end_ms - start_ms)?;
    }
    Ok(DeleteRequest {
        request_id: request_id(tenant, &query, now_ns),
        tenant: tenant.to_string(),
        query,
        start_ms,
        end_ms,
        created_at_ms: now_ms,
        status: Status::Received,
    })
}

/// Loki's `interval` check of `max_interval` (its server maximum is 0, no limit, by default).
fn check_max_interval(text: &str, range_ms: i64) -> Result<(), Refused> {
    let invalid = || bad("invalid max_interval: valid time units are 's', 'm', 'h'");
    let ns = crate::logql::duration::parse_logql_duration(text).map_err(|_| invalid())?;
    if ns < 1_000_000_000 {
        return Err(invalid());
    }
    if ns / 1_000_000 > range_ms {
        return Err(bad(format!(
            "max_interval can't be greater than the interval to be deleted ({})",
            go_duration_ms(range_ms)
        )));
    }
    Ok(())
}

/// A millisecond span as Go's `time.Duration.String` writes it (`1h0m0s`, `1m30.5s`).
fn go_duration_ms(ms: i64) -> String {
    let (h, rest) = (ms / 3_600_000, ms % 3_600_000);
    let (m, rest) = (rest / 60_000, rest % 60_000);
    let secs = if rest % 1000 == 0 {
        format!("{}s", rest / 1000)
    } else {
        let s = format!("{}.{:03}", rest / 1000, rest % 1000);
        format!("{}s", s.trim_end_matches('0'))
    };
    if h > 0 {
        format!("{h}h{m}m{secs}")
    } else if m > 0 {
        format!("{m}m{secs}")
    } else if rest == 0 {
        "0s".to_string()
    } else if rest < 1000 {
        format!("{rest}ms")
    } else {
        secs
    }
}

/// Loki's `generateUniqueID`: FNV-1 32 of the tenant, the time in nanoseconds (8 bytes,
/// little-endian) and the query, as 8 hex digits.
pub fn request_id(tenant: &str, query: &str, now_ns: i64) -> String {
    let mut h: u32 = 0x811c_9dc5;
    let bytes = tenant
        .bytes()
        .chain(now_ns.to_le_bytes())
        .chain(query.bytes());
    for b in bytes {
        h = h.wrapping_mul(0x0100_0193);
        h ^= u32::from(b);
    }
    format!("{h:08x}")
}

/// A `model.Time` as Loki's JSON writes it: seconds, with the milliseconds as a fraction
/// when there are any (`1700000000`, `1700000000.25`).
fn model_time(ms: i64) -> String {
    let (s, frac) = (ms.div_euclid(1000), ms.rem_euclid(1000));
    if frac == 0 {
        s.to_string()
    } else {
        format!("{s}.{}", format!("{frac:03}").trim_end_matches('0'))
    }
}

/// The body of `GET /loki/api/v1/delete`: the tenant's requests, oldest first, with Loki's
/// field names (`user_id` blanked, as Loki does).
/// Loki's status of a request whose work is split in `total` pieces (Loki's are its day
/// shards, ours the cores), `done` of them applied: `received`, `processed`, or in between
/// `<percent>% Complete` (Loki's `deleteRequestStatus`).
pub fn progress_status(done: usize, total: usize) -> String {
    if done == 0 {
        return Status::Received.as_str().to_string();
    }
    if done >= total {
        return Status::Processed.as_str().to_string();
    }
    format!("{}% Complete", done * 100 / total)
}

/// The list `GET` answers, with each request's status as `status_of` gives it.
pub fn render_list(
    requests: &[&DeleteRequest],
    status_of: impl Fn(&DeleteRequest) -> String,
) -> String {
    let mut sorted: Vec<&&DeleteRequest> = requests.iter().collect();
    sorted.sort_by_key(|r| (r.created_at_ms, r.request_id.clone()));
    let mut out = String::from("[");
    for (i, r) in sorted.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&format!(
            r#"{{"request_id":{},"start_time":{},"end_time":{},"query":{},"status":{},"created_at":{},"user_id":""}}"#,
            serde_json::Value::from(r.request_id.as_str()),
            model_time(r.start_ms),
            model_time(r.end_ms),
            serde_json::Value::from(r.query.as_str()),
            serde_json::Value::from(status_of(r)),
            model_time(r.created_at_ms),
        ));
    }
    out.push_str("]\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW_MS: i64 = 1_700_000_000_000;

    fn post(params: &[(&str, &str)]) -> Result<DeleteRequest, Refused> {
        let params: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        from_params(
            "t1",
            |name| {
                params
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.clone())
            },
            NOW_MS,
            NOW_MS * 1_000_000,
        )
    }

    fn refused(params: &[(&str, &str)]) -> String {
        let e = post(params).unwrap_err();
        assert_eq!(e.status, 400);
        e.message
    }

    #[test]
    fn loki_checks_in_loki_order_with_loki_texts() {
        assert_eq!(refused(&[("start", "1")]), "query not set");
        assert_eq!(
            refused(&[("query", "{app=")]),
            "invalid query expression",
            "a query that does not parse"
        );
        assert_eq!(refused(&[("query", r#"{app="a"}"#)]), "start time not set");
        assert_eq!(
            refused(&[("query", r#"{app="a"}"#), ("start", "17000000")]),
            "invalid start time: require unix seconds or RFC3339 format"
        );
        assert_eq!(
            refused(&[
                ("query", r#"{app="a"}"#),
                ("start", "1600000000"),
                ("end", "x")
            ]),
            "invalid end time: require unix seconds or RFC3339 format"
        );
        assert_eq!(
            refused(&[
                ("query", r#"{app="a"}"#),
                ("start", "1600000000"),
                ("end", "1800000000")
            ]),
            "deletes in the future are not allowed"
        );
        assert_eq!(
            refused(&[
                ("query", r#"{app="a"}"#),
                ("start", "1600000000"),
                ("end", "1600000000")
            ]),
            "start time can't be greater than or equal to end time"
        );
        assert_eq!(
            refused(&[
                ("query", r#"{app="a"} | regexp "no named group""#),
                ("start", "1600000000")
            ]),
            "invalid query expression",
            "a pipeline that does not compile"
        );
        assert_eq!(
            refused(&[
                ("query", r#"{app="a"} |= "x""#),
                ("start", "1699999000"),
                ("end", "1700000000"),
                ("max_interval", "1h")
            ]),
            "max_interval can't be greater than the interval to be deleted (16m40s)"
        );
        assert_eq!(
            refused(&[
                ("query", r#"{app="a"} |= "x""#),
                ("start", "1699999000"),
                ("max_interval", "10ms")
            ]),
            "invalid max_interval: valid time units are 's', 'm', 'h'"
        );
    }

    #[test]
    fn a_valid_request_keeps_its_range_and_gets_an_id() {
        let r = post(&[
            ("query", r#"{app="a"} |= "secret" != "keep""#),
            ("start", "2023-11-14T22:00:00.5Z"),
            ("end", "1700000000"),
        ])
        .unwrap();
        assert_eq!(r.start_ms, 1_699_999_200_500);
        assert_eq!(r.end_ms, 1_700_000_000_000);
        assert_eq!(r.created_at_ms, NOW_MS);
        assert_eq!(r.status, Status::Received);
        assert_eq!(r.request_id.len(), 8);
        assert!(r.request_id.bytes().all(|b| b.is_ascii_hexdigit()));
        // No end: now.
        let r = post(&[("query", r#"{app="a"}"#), ("start", "1600000000")]).unwrap();
        assert_eq!(r.end_ms, NOW_MS);
    }

    #[test]
    fn ids_are_fnv1_32_of_tenant_time_and_query() {
        // FNV-1 32 of the empty input is its offset basis.
        let mut h: u32 = 0x811c_9dc5;
        for b in "t".bytes().chain(5i64.to_le_bytes()).chain("q".bytes()) {
            h = h.wrapping_mul(0x0100_0193) ^ u32::from(b);
        }
        assert_eq!(request_id("t", "q", 5), format!("{h:08x}"));
        assert_ne!(request_id("t", "q", 5), request_id("t", "q", 6));
        assert_ne!(request_id("t", "q", 5), request_id("u", "q", 5));
    }

    #[test]
    fn the_filter_deletes_selected_lines_in_the_inclusive_range() {
        let r = post(&[
            ("query", r#"{app="a"} |= "secret""#),
            ("start", "1600000000"),
            ("end", "1600000010"),
        ])
        .unwrap();
        let c = CompiledRequest::new(r).unwrap();
        let s = 1_600_000_000_000_000_000i64;
        let end = 1_600_000_010_000_000_000i64;
        let app = Labels::from_pairs([("app", "a"), ("x", "y")]);
        assert!(c.selects(&app));
        assert!(!c.selects(&Labels::from_pairs([("app", "b")])));
        let deletes = |ts, line| c.deletes(ts, line, &app, &[]);
        assert!(deletes(s, "a secret"));
        assert!(deletes(end, "a secret"), "the end is included");
        assert!(!deletes(end + 1, "a secret"));
        assert!(!deletes(s - 1, "a secret"));
        assert!(!deletes(s + 5, "nothing to hide"));
        assert!(c.overlaps(end, end + 100));
        assert!(!c.overlaps(end + 1, end + 100));
    }

    #[test]
    fn a_pipeline_deletes_the_lines_it_keeps_with_labels_and_metadata() {
        let r = post(&[
            (
                "query",
                r#"{app="a"} | logfmt | level="debug" or trace_id="t1""#,
            ),
            ("start", "1600000000"),
            ("end", "1600000010"),
        ])
        .unwrap();
        let c = CompiledRequest::new(r).unwrap();
        assert!(c.reads_metadata());
        let app = Labels::from_pairs([("app", "a")]);
        let t = 1_600_000_005_000_000_000i64;
        assert!(c.deletes(t, "level=debug msg=x", &app, &[]));
        assert!(!c.deletes(t, "level=info msg=x", &app, &[]));
        assert!(c.deletes(t, "level=info msg=x", &app, &[("trace_id", "t1")]));
    }

    #[test]
    fn times_parse_as_loki_parses_them() {
        assert_eq!(parse_time("", 7), Some(7));
        assert_eq!(parse_time("1600000000", 0), Some(1_600_000_000_000));
        // Not ten characters: neither seconds nor RFC 3339.
        assert_eq!(parse_time("1600000000.5", 0), None);
        assert_eq!(parse_time("160000000", 0), None);
        assert_eq!(
            parse_time("2020-09-13T12:26:40Z", 0),
            Some(1_600_000_000_000)
        );
    }

    #[test]
    fn the_list_has_lokis_fields_oldest_first() {
        let a = DeleteRequest {
            request_id: "0000000b".into(),
            tenant: "t".into(),
            query: r#"{app="a"}"#.into(),
            start_ms: 1_600_000_000_000,
            end_ms: 1_600_000_000_250,
            created_at_ms: 2,
            status: Status::Processed,
        };
        let b = DeleteRequest {
            request_id: "0000000a".into(),
            created_at_ms: 1,
            status: Status::Received,
            ..a.clone()
        };
        let v: serde_json::Value =
            serde_json::from_str(&render_list(&[&a, &b], |r| r.status.as_str().to_string()))
                .unwrap();
        assert_eq!(v[0]["request_id"], "0000000a");
        assert_eq!(v[0]["status"], "received");
        assert_eq!(v[1]["status"], "processed");
        assert_eq!(v[1]["start_time"], 1_600_000_000i64);
        assert_eq!(v[1]["end_time"], 1_600_000_000.25);
        assert_eq!(v[1]["query"], r#"{app="a"}"#);
        assert_eq!(v[1]["user_id"], "");
        assert_eq!(render_list(&[], |_| String::new()), "[]\n");
        assert_eq!(progress_status(0, 2), "received");
        assert_eq!(progress_status(1, 2), "50% Complete");
        assert_eq!(progress_status(1, 3), "33% Complete");
        assert_eq!(progress_status(3, 3), "processed");
    }
}

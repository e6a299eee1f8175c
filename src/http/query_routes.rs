//! The read side of Loki's API: `query_range`, `query`, `labels`, `label/<name>/values`,
//! `series` and `index/stats`. Each parses Loki's parameters, asks every shard
//! ([`Core::fan_out`]) and merges the answers into Loki's response shape.

use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_lite::future;

use super::json;
use super::loki::{param, params, tenant};
use super::request::Request;
use super::response::Response;
use crate::config::{QUERY_ENTRIES_MAX, QUERY_TIMEOUT_SECONDS};
use crate::ingest::listeners::now_ns;
use crate::logql::{self, Expr, LabelMatcher};
use crate::model::Labels;
use crate::query::merge::{PartialStream, merge_partials};
use crate::query::params::{self as qp, Direction};
use crate::runtime::Core;
use crate::shard::{
    IndexStats, LabelsRequest, LogsRequest, SeriesRequest, ShardAnswer, ShardRequest,
};

pub async fn route(core: &Rc<Core>, req: &Request, sub: &str) -> Response {
    let tenant = match tenant(core, req, false) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let params = params(req);
    let started = Instant::now();
    core.shard.counters.queries.inc();
    let result = match sub {
        "query_range" => query_range(core, &tenant, &params, categorize_labels(req)).await,
        "query" => query_instant(core, &tenant, &params, categorize_labels(req)).await,
        "labels" | "label" => labels(core, &tenant, &params).await,
        "series" => series(core, &tenant, &params).await,
        "index/stats" => index_stats(core, &tenant, &params).await,
        s if s.starts_with("label/") && s.ends_with("/values") => {
            let name = &s["label/".len()..s.len() - "/values".len()];
            label_values(core, &tenant, name, &params).await
        }
        _ => Err(Response::text(404, "404 page not found\n")),
    };
    core.shard
        .query_seconds
        .observe(started.elapsed().as_secs_f64());
    result.unwrap_or_else(|r| r)
}

type Answer = Result<Response, Response>;

/// Whether the client asked for Loki's categorised-labels encoding (Grafana does).
fn categorize_labels(req: &Request) -> bool {
    req.header("x-loki-response-encoding-flags")
        .is_some_and(|v| v.split(',').any(|f| f.trim() == "categorize-labels"))
}

fn bad_request(msg: impl std::fmt::Display) -> Response {
    Response::text(400, &format!("{msg}\n"))
}

/// Asks every shard, bounded by the query timeout.
async fn ask_all(core: &Rc<Core>, req: ShardRequest) -> Result<Vec<ShardAnswer>, Response> {
    let timeout = Duration::from_secs(QUERY_TIMEOUT_SECONDS);
    let answer = future::or(async { Some(core.fan_out(req).await) }, async {
        glommio::timer::sleep(timeout).await;
        None
    })
    .await;
    match answer {
        Some(Ok(a)) => {
            // A shard that could not read data it needed (a corrupt part, a failing disk)
            // fails the whole query: a partial answer would silently hide lines.
            if let Some(why) = a.iter().find_map(|a| match a {
                ShardAnswer::Failed(why) => Some(why),
                _ => None,
            }) {
                return Err(Response::text(500, &format!("{why}\n")));
            }
            Ok(a)
        }
        Some(Err(e)) => Err(Response::text(500, &format!("{e}\n"))),
        None => Err(Response::text(
            504,
            &format!("query timed out after {QUERY_TIMEOUT_SECONDS}s\n"),
        )),
    }
}

fn parse_log_query(q: &str) -> Result<logql::LogSelector, Response> {
    match logql::parse_expr(q) {
        Ok(Expr::Log(expr)) if expr.stages.is_empty() => Ok(expr.selector),
        Ok(_) => Err(bad_request(
            "not supported yet: only log queries of a selector and line filters are",
        )),
        Err(e) => Err(bad_request(e)),
    }
}

fn check_limit(limit: u32) -> Result<(), Response> {
    if limit > QUERY_ENTRIES_MAX {
        return Err(bad_request(format!(
            "max entries limit per query exceeded, limit > max_entries_limit_per_query ({limit} > {QUERY_ENTRIES_MAX})"
        )));
    }
    Ok(())
}

async fn query_range(
    core: &Rc<Core>,
    tenant: &str,
    params: &[(String, String)],
    categorize: bool,
) -> Answer {
    let q = qp::parse_range_query(params, now_ns()).map_err(bad_request)?;
    check_limit(q.limit)?;
    let selector = parse_log_query(&q.query)?;
    // Loki's log range is `[start, end)`, as the shards take it.
    logs(
        core,
        tenant,
        selector,
        (q.start_ns, q.end_ns),
        q.limit,
        q.direction,
        categorize,
    )
    .await
}

/// An instant log query covers the hour before `time` (Loki's default look-back), newest
/// first unless asked otherwise.
async fn query_instant(
    core: &Rc<Core>,
    tenant: &str,
    params: &[(String, String)],
    categorize: bool,
) -> Answer {
    let q = qp::parse_instant_query(params, now_ns()).map_err(bad_request)?;
    check_limit(q.limit)?;
    let selector = parse_log_query(&q.query)?;
    let end = q.time_ns.saturating_add(1);
    let start = q.time_ns.saturating_sub(3600 * 1_000_000_000);
    logs(
        core,
        tenant,
        selector,
        (start, end),
        q.limit,
        q.direction,
        categorize,
    )
    .await
}

async fn logs(
    core: &Rc<Core>,
    tenant: &str,
    selector: logql::LogSelector,
    (start, end): (i64, i64),
    limit: u32,
    direction: Direction,
    categorize: bool,
) -> Answer {
    let started = Instant::now();
    let req = Arc::new(LogsRequest {
        tenant: tenant.to_string(),
        selector,
        start,
        end,
        limit: limit as usize,
        direction,
    });
    let answers = ask_all(core, ShardRequest::Logs(req)).await?;
    let partials = answers
        .into_iter()
        .filter_map(|a| match a {
            ShardAnswer::Logs(p) => Some(p),
            _ => None,
        })
        .collect();
    let streams = merge_partials(partials, direction, limit as usize);
    let body = streams_response(&streams, categorize, started.elapsed());
    Ok(Response::json(200, body.into_bytes()))
}

/// Loki's `streams` result. Without the categorize-labels flag, Loki folds an entry's
/// structured metadata into its stream's labels (so entries with different metadata land in
/// different result streams); with it, metadata is returned as the third element of each
/// value, and the stream keeps only its own labels.
fn streams_response(streams: &[PartialStream], categorize: bool, took: Duration) -> String {
    let mut out = String::with_capacity(1024);
    out.push_str(r#"{"status":"success","data":{"resultType":"streams","result":["#);
    let mut first_stream = true;
    let mut entries_total = 0usize;
    let mut bytes_total = 0usize;
    for s in streams {
        // Group the stream's entries by their folded label set, keeping first-seen order.
        let mut groups: Vec<(Labels, Vec<usize>)> = Vec::new();
        for (i, (_, _, md)) in s.entries.iter().enumerate() {
            let key = if md.is_empty() || categorize {
                s.labels.clone()
            } else {
                let extra = md
                    .iter()
                    .filter(|(k, _)| s.labels.get(k).is_none())
                    .map(|(k, v)| (k.as_str(), v.as_str()));
                Labels::from_pairs(
                    s.labels
                        .pairs()
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str()))
                        .chain(extra),
                )
            };
            match groups.iter_mut().find(|(l, _)| *l == key) {
                Some((_, idx)) => idx.push(i),
                None => groups.push((key, vec![i])),
            }
        }
        for (labels, idx) in groups {
            if !first_stream {
                out.push(',');
            }
            first_stream = false;
            out.push_str(r#"{"stream":"#);
            json::string_map(
                &mut out,
                labels.pairs().iter().map(|(k, v)| (k.as_str(), v.as_str())),
            );
            out.push_str(r#","values":["#);
            for (n, i) in idx.into_iter().enumerate() {
                let (ts, line, md) = &s.entries[i];
                entries_total += 1;
                bytes_total += line.len();
                if n > 0 {
                    out.push(',');
                }
                out.push_str("[\"");
                out.push_str(&ts.to_string());
                out.push_str("\",");
                json::string(&mut out, line);
                if categorize && !md.is_empty() {
                    out.push_str(r#",{"structuredMetadata":"#);
                    json::string_map(&mut out, md.iter().map(|(k, v)| (k.as_str(), v.as_str())));
                    out.push('}');
                }
                out.push(']');
            }
            out.push_str("]}");
        }
    }
    out.push_str(&format!(
        r#"],"stats":{{"summary":{{"execTime":{},"totalEntriesReturned":{entries_total},"totalBytesProcessed":{bytes_total},"totalLinesProcessed":{entries_total}}}}}}}"#,
        took.as_secs_f64()
    ));
    if categorize {
        out.push_str(r#","encodingFlags":["categorize-labels"]"#);
    }
    out.push('}');
    out
}

/// Matchers of an optional `query` parameter (Loki's `/labels?query={...}`).
fn optional_matchers(params: &[(String, String)]) -> Result<Vec<LabelMatcher>, Response> {
    match param(params, "query") {
        None | Some("") => Ok(Vec::new()),
        Some(q) => logql::parse_matchers(q, false).map_err(bad_request),
    }
}

fn labels_request(
    tenant: &str,
    params: &[(String, String)],
    matchers: Vec<LabelMatcher>,
) -> Result<Arc<LabelsRequest>, Response> {
    let (start, end) = qp::parse_label_range(params, now_ns()).map_err(bad_request)?;
    Ok(Arc::new(LabelsRequest {
        tenant: tenant.to_string(),
        matchers,
        start,
        end: end.saturating_add(1),
    }))
}

fn strings_response(answers: Vec<ShardAnswer>) -> Response {
    let mut all: Vec<String> = answers
        .into_iter()
        .flat_map(|a| match a {
            ShardAnswer::Strings(v) => v,
            _ => Vec::new(),
        })
        .collect();
    all.sort();
    all.dedup();
    let mut out = String::from(r#"{"status":"success","data":"#);
    json::string_array(&mut out, all.iter().map(|s| s.as_str()));
    out.push('}');
    Response::json(200, out.into_bytes())
}

async fn labels(core: &Rc<Core>, tenant: &str, params: &[(String, String)]) -> Answer {
    let req = labels_request(tenant, params, optional_matchers(params)?)?;
    Ok(strings_response(
        ask_all(core, ShardRequest::LabelNames(req)).await?,
    ))
}

async fn label_values(
    core: &Rc<Core>,
    tenant: &str,
    name: &str,
    params: &[(String, String)],
) -> Answer {
    let req = labels_request(tenant, params, optional_matchers(params)?)?;
    Ok(strings_response(
        ask_all(core, ShardRequest::LabelValues(req, name.to_string())).await?,
    ))
}

async fn series(core: &Rc<Core>, tenant: &str, params: &[(String, String)]) -> Answer {
    let mut selectors = Vec::new();
    for (k, v) in params {
        if k == "match[]" || k == "match" {
            selectors.push(logql::parse_matchers(v, false).map_err(bad_request)?);
        }
    }
    if selectors.is_empty() {
        // Loki lists every stream when no matcher is given.
        selectors.push(Vec::new());
    }
    let (start, end) = qp::parse_label_range(params, now_ns()).map_err(bad_request)?;
    let req = Arc::new(SeriesRequest {
        tenant: tenant.to_string(),
        selectors,
        start,
        end: end.saturating_add(1),
    });
    let mut all: Vec<Labels> = ask_all(core, ShardRequest::Series(req))
        .await?
        .into_iter()
        .flat_map(|a| match a {
            ShardAnswer::Series(v) => v,
            _ => Vec::new(),
        })
        .collect();
    all.sort();
    all.dedup();
    let mut out = String::from(r#"{"status":"success","data":["#);
    for (i, l) in all.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json::string_map(
            &mut out,
            l.pairs().iter().map(|(k, v)| (k.as_str(), v.as_str())),
        );
    }
    out.push_str("]}");
    Ok(Response::json(200, out.into_bytes()))
}

async fn index_stats(core: &Rc<Core>, tenant: &str, params: &[(String, String)]) -> Answer {
    let q = param(params, "query").ok_or_else(|| bad_request("missing query parameter"))?;
    let matchers = logql::parse_matchers(q, false).map_err(bad_request)?;
    let req = labels_request(tenant, params, matchers)?;
    let mut total = IndexStats::default();
    let mut streams: Vec<u64> = Vec::new();
    for a in ask_all(core, ShardRequest::Stats(req)).await? {
        if let ShardAnswer::Stats(s, ids) = a {
            total.add(&s);
            streams.extend(ids);
        }
    }
    // A stream with data on two shards (after a core-count change) is one stream.
    streams.sort_unstable();
    streams.dedup();
    total.streams = streams.len() as u64;
    let body = format!(
        r#"{{"streams":{},"chunks":{},"entries":{},"bytes":{}}}"#,
        total.streams, total.chunks, total.entries, total.bytes
    );
    Ok(Response::json(200, body.into_bytes()))
}

//! The read side of Loki's API: `query_range`, `query`, `labels`, `label/<name>/values`,
//! `series` and `index/stats`. Each parses Loki's parameters, runs the query through the
//! engine ([`crate::query::engine`]: admission, fan-out, timeout, cancellation) and renders
//! the merged answer in Loki's response shape. Errors are [`QueryError`]s rendered with
//! Loki's statuses; nothing here evaluates a query.

use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::json;
use super::loki::{param, params, read_tenants};
use super::query_render as render;
use super::read_routes;
use super::request::Request;
use super::response::Response;
use crate::ingest::listeners::now_ns;
use crate::logql::{self, Expr, LabelMatcher};
use crate::model::Labels;
use crate::query::QueryError;
use crate::query::engine::{self, Running, ask_all, expect_answers};
use crate::query::exec::QueryStats;
use crate::query::merge::PartialStream;
use crate::query::params::{self as qp, Direction};
use crate::query::plan::Steps;
use crate::runtime::Core;
use crate::shard::{IndexStats, LabelsRequest, SeriesRequest, ShardAnswer, ShardRequest};
use crate::tenants::federation::{TENANT_LABEL, TenantScope};

pub async fn route(core: &Rc<Core>, req: &Request, sub: &str) -> Response {
    let scope = match read_tenants(core, req) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let tenant = &scope;
    let params = match params(req) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let started = Instant::now();
    core.shard.counters.queries.inc();
    let admitted = match core.queries.admit(&core.config.query) {
        Ok(a) => a,
        Err(e) => return error_response(&e),
    };
    let result = match sub {
        "query_range" => query_range(core, tenant, &params, categorize_labels(req)).await,
        "query" => query_instant(core, tenant, &params).await,
        "labels" | "label" => labels(core, tenant, &params).await,
        "series" => series(core, tenant, &params).await,
        "index/stats" => index_stats(core, tenant, &params).await,
        "index/volume" => read_routes::volume(core, tenant, &params, false).await,
        "index/volume_range" => read_routes::volume(core, tenant, &params, true).await,
        "format_query" => read_routes::format_query(&params),
        "detected_labels" => read_routes::detected_labels(core, tenant, &params).await,
        "detected_fields" => read_routes::detected_fields(core, tenant, &params, None).await,
        "patterns" => read_routes::patterns(core, tenant, &params).await,
        s if s.starts_with("detected_field/") && s.ends_with("/values") => {
            let name = &s["detected_field/".len()..s.len() - "/values".len()];
            read_routes::detected_fields(core, tenant, &params, Some(name)).await
        }
        "drilldown-limits" => Ok(read_routes::drilldown_limits(core, tenant)),
        s if s.starts_with("label/") && s.ends_with("/values") => {
            let name = &s["label/".len()..s.len() - "/values".len()];
            label_values(core, tenant, name, &params).await
        }
        _ => Ok(Response::text(404, "404 page not found\n")),
    };
    drop(admitted);
    core.shard
        .query_seconds
        .observe(started.elapsed().as_secs_f64());
    result.unwrap_or_else(|e| error_response(&e))
}

type Answer = Result<Response, QueryError>;

/// Loki answers errors as plain text with the status of their kind.
pub fn error_response(e: &QueryError) -> Response {
    Response::text(e.status(), &format!("{e}\n"))
}

/// Whether the client asked for Loki's categorised-labels encoding (Grafana does).
pub(crate) fn categorize_labels(req: &Request) -> bool {
    req.header("x-loki-response-encoding-flags")
        .is_some_and(|v| v.split(',').any(|f| f.trim() == "categorize-labels"))
}

fn bad_param(e: qp::ParamError) -> QueryError {
    QueryError::bad_request(e.message())
}

/// Asks every shard within the query timeout; the query is cancelled on every shard if
/// this future is dropped first (the client went away).
async fn ask(
    core: &Rc<Core>,
    req: ShardRequest,
    running: &Running,
) -> Result<Vec<ShardAnswer>, QueryError> {
    ask_all(core, req, &running.control, running.timeout).await
}

/// Loki's query frontend aligns a metric range query to its step (the metric splitter's
/// `alignStartEnd`, which runs whenever `split_queries_by_interval` is set, as by default):
/// start rounded down and end rounded up to a multiple of the step, the step taken in whole
/// milliseconds. Points then fall on multiples of the step, and the last one may lie after
/// the requested end.
fn step_align(start_ns: i64, end_ns: i64, step_ns: i64) -> (i64, i64) {
    const NS_PER_MS: i64 = 1_000_000;
    let step = (step_ns / NS_PER_MS).max(1).saturating_mul(NS_PER_MS);
    let start = start_ns - start_ns.rem_euclid(step);
    let end = match end_ns.rem_euclid(step) {
        0 => end_ns,
        rem => end_ns.saturating_add(step - rem),
    };
    (start, end)
}

/// Loki's refusal of a log query on the instant endpoint (Loki 3.x).
const INSTANT_LOG_QUERY: &str = "log queries are not supported as an instant query type, please change your query to a range query type";

pub(crate) fn check_limit(core: &Core, tenant: &TenantScope, limit: u32) -> Result<(), QueryError> {
    let max = core.query_limits_in(tenant).max_entries_limit_per_query;
    if limit > max {
        return Err(QueryError::Limit {
            limit: "max_entries_limit_per_query",
            message: format!(
                "max entries limit per query exceeded, limit > max_entries_limit_per_query ({limit} > {max})"
            ),
        });
    }
    Ok(())
}

/// Loki's `max_query_length`: the range a query may cover.
pub(crate) fn check_length(
    core: &Core,
    tenant: &TenantScope,
    start: i64,
    end: i64,
) -> Result<(), QueryError> {
    if let Some(max) = core.query_limits_in(tenant).max_query_length {
        let length = Duration::from_nanos(end.saturating_sub(start).max(0) as u64);
        if length > max {
            return Err(QueryError::Limit {
                limit: "max_query_length",
                message: format!(
                    "the query time range exceeds the limit (query length: {}, limit: {})",
                    crate::config::units::duration_text(length),
                    crate::config::units::duration_text(max)
                ),
            });
        }
    }
    Ok(())
}

async fn query_range(
    core: &Rc<Core>,
    tenant: &TenantScope,
    params: &[(String, String)],
    categorize: bool,
) -> Answer {
    let q = qp::parse_range_query(params, now_ns()).map_err(bad_param)?;
    check_limit(core, tenant, q.limit)?;
    check_length(core, tenant, q.start_ns, q.end_ns)?;
    let expr = match logql::parse_expr(&q.query)? {
        Expr::Log(expr) => expr,
        Expr::Sample(expr) => {
            let started = Instant::now();
            let step = q.step_or_default().as_nanos() as i64;
            let (start, end) = step_align(q.start_ns, q.end_ns, step);
            let steps = Steps::range(start, end, step);
            let stats = Arc::new(QueryStats::default());
            let result = engine::metric_counted(core, tenant, &expr, steps, stats.clone()).await?;
            let body = render::metric_response(&result, started.elapsed(), &stats);
            return Ok(Response::json(200, body.into_bytes()));
        }
    };
    // Loki's log range is `[start, end)`, as the shards take it.
    let interval_ns = q
        .interval
        .map_or(0, |i| i64::try_from(i.as_nanos()).unwrap_or(i64::MAX));
    if interval_ns > 0 {
        let started = Instant::now();
        let range = (q.start_ns, q.end_ns);
        let streams = engine::logs_at_interval(
            core,
            tenant,
            expr,
            range,
            q.limit as usize,
            q.direction,
            interval_ns,
        )
        .await?;
        let body = streams_response(
            &streams,
            categorize,
            q.direction,
            (started.elapsed(), &QueryStats::default()),
        );
        return Ok(Response::json(200, body.into_bytes()));
    }
    logs(
        core,
        tenant,
        expr,
        (q.start_ns, q.end_ns),
        q.limit,
        q.direction,
        categorize,
    )
    .await
}

/// An instant query: a metric query evaluated once, at `time`. Log queries are refused
/// there, as Loki 3 refuses them.
async fn query_instant(
    core: &Rc<Core>,
    tenant: &TenantScope,
    params: &[(String, String)],
) -> Answer {
    let q = qp::parse_instant_query(params, now_ns()).map_err(bad_param)?;
    check_limit(core, tenant, q.limit)?;
    match logql::parse_expr(&q.query)? {
        Expr::Log(_) => Err(QueryError::bad_request(INSTANT_LOG_QUERY)),
        Expr::Sample(expr) => {
            let started = Instant::now();
            let stats = Arc::new(QueryStats::default());
            let steps = Steps::instant(q.time_ns);
            let result = engine::metric_counted(core, tenant, &expr, steps, stats.clone()).await?;
            let body = render::metric_response(&result, started.elapsed(), &stats);
            Ok(Response::json(200, body.into_bytes()))
        }
    }
}

async fn logs(
    core: &Rc<Core>,
    tenant: &TenantScope,
    expr: logql::LogExpr,
    range: (i64, i64),
    limit: u32,
    direction: Direction,
    categorize: bool,
) -> Answer {
    let started = Instant::now();
    let stats = Arc::new(QueryStats::default());
    let limit = limit as usize;
    let streams =
        engine::logs_counted(core, tenant, expr, range, limit, direction, stats.clone()).await?;
    let body = streams_response(&streams, categorize, direction, (started.elapsed(), &stats));
    Ok(Response::json(200, body.into_bytes()))
}

/// Where each entry of a result stream comes from: (partial stream, entry) indexes.
type EntryRefs = Vec<(usize, usize)>;

/// Loki's `streams` result. Without the categorize-labels flag, Loki folds an entry's
/// structured metadata and parsed labels into its stream's labels (so entries with different
/// metadata land in different result streams); with it, they are returned as the third
/// element of each value, and the stream keeps only its own labels. Streams come in Loki's
/// order: sorted by the text of their label set (`{a="x", b="y"}` compared as a string, as
/// Loki's `Streams.Less` and its frontend's merge do), whatever the direction; entries of
/// one stream in the query direction.
fn streams_response(
    streams: &[PartialStream],
    categorize: bool,
    direction: Direction,
    (took, stats): (Duration, &QueryStats),
) -> String {
    let mut out = String::with_capacity(1024);
    out.push_str(r#"{"status":"success","data":{"resultType":"streams","result":["#);
    let mut first_stream = true;
    let mut entries_total = 0usize;
    // Group every entry by its folded label set: (stream, entry) indices per group.
    let mut groups: Vec<(Labels, Vec<(usize, usize)>)> = Vec::new();
    let mut group_of: ahash::AHashMap<Labels, usize> = ahash::AHashMap::new();
    for (si, s) in streams.iter().enumerate() {
        for (i, (_, _, md, parsed)) in s.entries.iter().enumerate() {
            let key = if (md.is_empty() && parsed.is_empty()) || categorize {
                s.labels.clone()
            } else {
                let extra = md
                    .iter()
                    .chain(parsed)
                    .filter(|(k, _)| s.labels.get(k).is_none())
                    .map(|(k, v)| (k.as_str(), v.as_str()));
                Labels::from_pairs_keeping_empty(
                    s.labels
                        .pairs()
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str()))
                        .chain(extra),
                )
            };
            match group_of.get(&key) {
                Some(&g) => groups[g].1.push((si, i)),
                None => {
                    group_of.insert(key.clone(), groups.len());
                    groups.push((key, vec![(si, i)]));
                }
            }
        }
    }
    // A group fed by two result streams (a parsed label equal to another stream's own label)
    // has two runs in direction order: one run again (stable, so ties keep their order).
    for (_, idx) in &mut groups {
        if idx.first().map(|f| f.0) != idx.last().map(|l| l.0) {
            let ts = |&(si, i): &(usize, usize)| streams[si].entries[i].0;
            match direction {
                Direction::Forward => idx.sort_by_key(ts),
                Direction::Backward => idx.sort_by_key(|e| std::cmp::Reverse(ts(e))),
            }
        }
    }
    let mut groups: Vec<(String, Labels, EntryRefs)> = groups
        .into_iter()
        .map(|(labels, idx)| (loki_labels_text(&labels), labels, idx))
        .collect();
    groups.sort_by(|a, b| a.0.cmp(&b.0));
    for (_, labels, idx) in groups {
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
        for (n, (si, i)) in idx.into_iter().enumerate() {
            let (ts, line, md, parsed) = &streams[si].entries[i];
            entries_total += 1;
            if n > 0 {
                out.push(',');
            }
            out.push_str("[\"");
            out.push_str(&ts.to_string());
            out.push_str("\",");
            json::string(&mut out, line);
            if categorize {
                // Loki's categorized encoding: always a third element, its keys only
                // when they have labels.
                out.push_str(",{");
                if !md.is_empty() {
                    out.push_str(r#""structuredMetadata":"#);
                    json::string_map(&mut out, md.iter().map(|(k, v)| (k.as_str(), v.as_str())));
                }
                if !parsed.is_empty() {
                    if !md.is_empty() {
                        out.push(',');
                    }
                    out.push_str(r#""parsed":"#);
                    json::string_map(
                        &mut out,
                        parsed.iter().map(|(k, v)| (k.as_str(), v.as_str())),
                    );
                }
                out.push('}');
            }
            out.push(']');
        }
        out.push_str("]}");
    }
    out.push_str(r#"],"stats":"#);
    out.push_str(&stats.json(took.as_secs_f64(), entries_total));
    // Loki puts the flags inside `data`, where Grafana reads them.
    if categorize {
        out.push_str(r#","encodingFlags":["categorize-labels"]"#);
    }
    out.push_str("}}");
    out
}

/// A label set as Prometheus' `Labels.String` writes it, the key Loki sorts result streams
/// by: `{name="value", ...}` with Go-quoted values.
fn loki_labels_text(labels: &Labels) -> String {
    let mut text = String::from("{");
    for (i, (k, v)) in labels.pairs().iter().enumerate() {
        if i > 0 {
            text.push_str(", ");
        }
        text.push_str(k);
        text.push('=');
        text.push_str(&crate::query::template::go_quote(v));
    }
    text.push('}');
    text
}

/// Matchers of an optional `query` parameter (Loki's `/labels?query={...}`).
fn optional_matchers(params: &[(String, String)]) -> Result<Vec<LabelMatcher>, QueryError> {
    match param(params, "query") {
        None | Some("") => Ok(Vec::new()),
        Some(q) => Ok(logql::parse_matchers(q, false)?),
    }
}

fn labels_request(
    tenant: &str,
    params: &[(String, String)],
    matchers: Vec<LabelMatcher>,
) -> Result<Arc<LabelsRequest>, QueryError> {
    let (start, end) = qp::parse_label_range(params, now_ns()).map_err(bad_param)?;
    Ok(Arc::new(LabelsRequest {
        tenant: tenant.to_string(),
        matchers,
        start,
        end: end.saturating_add(1),
    }))
}

/// Every shard's strings for each tenant of the read, sorted and distinct.
async fn strings_of(
    core: &Rc<Core>,
    scope: &TenantScope,
    params: &[(String, String)],
    values_of: Option<&str>,
) -> Result<Vec<String>, QueryError> {
    let (tenants, matchers) = scope.select(&optional_matchers(params)?);
    let mut all: Vec<String> = Vec::new();
    for tenant in tenants {
        let req = labels_request(tenant, params, matchers.clone())?;
        let req = match values_of {
            Some(name) => ShardRequest::LabelValues(req, name.to_string()),
            None => ShardRequest::LabelNames(req),
        };
        let running = Running::new(&core.query_limits_in(scope));
        let answers = ask(core, req, &running).await?;
        running.finish();
        all.extend(
            expect_answers(answers, "label", |a| match a {
                ShardAnswer::Strings(v) => Ok(v),
                other => Err(other),
            })?
            .into_iter()
            .flatten(),
        );
    }
    all.sort();
    all.dedup();
    Ok(all)
}

fn strings_response(all: &[String]) -> Answer {
    let mut out = String::from(r#"{"status":"success","data":"#);
    json::string_array(&mut out, all.iter().map(|s| s.as_str()));
    out.push('}');
    Ok(Response::json(200, out.into_bytes()))
}

/// `/labels`: a multi-tenant read adds `__tenant_id__` to the names, as Loki's
/// `MultiTenantQuerier.Label` does.
async fn labels(core: &Rc<Core>, scope: &TenantScope, params: &[(String, String)]) -> Answer {
    let mut names = strings_of(core, scope, params, None).await?;
    if scope.is_multi() && !names.iter().any(|n| n == TENANT_LABEL) {
        names.push(TENANT_LABEL.to_string());
        names.sort();
    }
    strings_response(&names)
}

/// `/label/<name>/values`. With multi-tenant queries on, the values of `__tenant_id__` are
/// the read's tenants, whatever the streams hold (Loki's `MultiTenantQuerier.Label`).
async fn label_values(
    core: &Rc<Core>,
    scope: &TenantScope,
    name: &str,
    params: &[(String, String)],
) -> Answer {
    if name == TENANT_LABEL && core.config.multi_tenant_queries {
        return strings_response(scope.ids());
    }
    strings_response(&strings_of(core, scope, params, Some(name)).await?)
}

/// `/series`. In a multi-tenant read each series carries `__tenant_id__` unless it has a
/// label of that name already (Loki's `MultiTenantQuerier.Series`), and a `__tenant_id__`
/// matcher of a `match[]` selector picks the tenants that selector reads.
async fn series(core: &Rc<Core>, scope: &TenantScope, params: &[(String, String)]) -> Answer {
    let mut selectors = Vec::new();
    for (k, v) in params {
        if k == "match[]" || k == "match" {
            selectors.push(logql::parse_matchers(v, false)?);
        }
    }
    if selectors.is_empty() {
        // Loki lists every stream when no matcher is given.
        selectors.push(Vec::new());
    }
    let (start, end) = qp::parse_label_range(params, now_ns()).map_err(bad_param)?;
    let mut all: Vec<Labels> = Vec::new();
    for tenant in scope.ids() {
        let of_tenant: Vec<Vec<LabelMatcher>> = selectors
            .iter()
            .filter_map(|sel| {
                let (tenants, rest) = scope.select(sel);
                tenants.contains(&tenant.as_str()).then_some(rest)
            })
            .collect();
        if of_tenant.is_empty() {
            continue;
        }
        let req = Arc::new(SeriesRequest {
            tenant: tenant.to_string(),
            selectors: of_tenant,
            start,
            end: end.saturating_add(1),
        });
        let running = Running::new(&core.query_limits_in(scope));
        let answers = ask(core, ShardRequest::Series(req), &running).await?;
        running.finish();
        let found = expect_answers(answers, "series", |a| match a {
            ShardAnswer::Series(v) => Ok(v),
            other => Err(other),
        })?
        .into_iter()
        .flatten();
        if scope.is_multi() {
            all.extend(found.map(|l| {
                match l.get(TENANT_LABEL) {
                    Some(_) => l,
                    None => Labels::from_pairs(
                        l.pairs()
                            .iter()
                            .map(|(k, v)| (k.as_str(), v.as_str()))
                            .chain([(TENANT_LABEL, tenant.as_str())]),
                    ),
                }
            }));
        } else {
            all.extend(found);
        }
    }
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

/// `/index/stats`: a multi-tenant read sums its tenants' (Loki's `stats.MergeStats`).
async fn index_stats(core: &Rc<Core>, scope: &TenantScope, params: &[(String, String)]) -> Answer {
    let q =
        param(params, "query").ok_or_else(|| QueryError::bad_request("missing query parameter"))?;
    let (tenants, matchers) = scope.select(&logql::parse_matchers(q, false)?);
    let mut total = IndexStats::default();
    let mut streams: Vec<u64> = Vec::new();
    for tenant in tenants {
        let req = labels_request(tenant, params, matchers.clone())?;
        let running = Running::new(&core.query_limits_in(scope));
        let answers = ask(core, ShardRequest::Stats(req), &running).await?;
        running.finish();
        let stats = expect_answers(answers, "stats", |a| match a {
            ShardAnswer::Stats(s, ids) => Ok((s, ids)),
            other => Err(other),
        })?;
        for (s, ids) in stats {
            total.add(&s);
            streams.extend(ids);
        }
    }
    // A stream with data on two shards (after a core-count change) is one stream; the stream
    // id hashes the tenant in, so two tenants' streams never collide.
    streams.sort_unstable();
    streams.dedup();
    total.streams = streams.len() as u64;
    let body = format!(
        r#"{{"streams":{},"chunks":{},"entries":{},"bytes":{}}}"#,
        total.streams, total.chunks, total.entries, total.bytes
    );
    Ok(Response::json(200, body.into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    #[test]
    fn step_align_rounds_start_down_and_end_up() {
        assert_eq!(
            step_align(1_242 * S, 8_559 * S, 60 * S),
            (1_200 * S, 8_580 * S)
        );
        // Already aligned: unchanged.
        assert_eq!(
            step_align(1_200 * S, 8_580 * S, 60 * S),
            (1_200 * S, 8_580 * S)
        );
        // The step counts in whole milliseconds.
        assert_eq!(
            step_align(1_000_000_500, 2_000_000_500, 1_500_000),
            (1_000_000_000, 2_001_000_000)
        );
    }

    fn stream(
        labels: &[(&str, &str)],
        entries: Vec<crate::query::merge::PartialEntry>,
    ) -> PartialStream {
        PartialStream {
            labels: Labels::from_pairs(labels.iter().copied()),
            entries,
        }
    }

    fn result_labels(body: &str) -> Vec<String> {
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        v["data"]["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["stream"].to_string())
            .collect()
    }

    #[test]
    fn streams_come_sorted_by_label_text_with_empty_parsed_values() {
        let parsed = |v: &str| vec![("user".to_string(), v.to_string())];
        let streams = vec![stream(
            &[("app", "a")],
            vec![
                (3, "x".into(), Vec::new(), parsed("bob")),
                (2, "y".into(), Vec::new(), parsed("")),
                (1, "z".into(), Vec::new(), Vec::new()),
            ],
        )];
        let body = streams_response(
            &streams,
            false,
            Direction::Backward,
            (Duration::ZERO, &QueryStats::default()),
        );
        // `{app="a", user=...}` sorts before `{app="a"}`: ',' < '}' in the text.
        assert_eq!(
            result_labels(&body),
            vec![
                r#"{"app":"a","user":""}"#,
                r#"{"app":"a","user":"bob"}"#,
                r#"{"app":"a"}"#
            ]
        );
    }

    #[test]
    fn one_label_set_from_two_streams_merges_in_direction() {
        let streams = vec![
            stream(
                &[("app", "a")],
                vec![(1, "p1".into(), Vec::new(), vec![("b".into(), "2".into())])],
            ),
            stream(
                &[("app", "a"), ("b", "2")],
                vec![(2, "s2".into(), Vec::new(), Vec::new())],
            ),
        ];
        let body = streams_response(
            &streams,
            false,
            Direction::Backward,
            (Duration::ZERO, &QueryStats::default()),
        );
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let result = v["data"]["result"].as_array().unwrap();
        assert_eq!(result.len(), 1);
        assert_eq!(result[0]["values"][0][1], "s2");
        assert_eq!(result[0]["values"][1][1], "p1");
    }
}

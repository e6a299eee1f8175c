//! The rest of the read API Grafana's Explore and Logs Drilldown call besides queries:
//! `/index/volume` and `/index/volume_range` (bytes per series, computed exactly by the
//! metric engine as `sum by (...) (bytes_over_time(...))`), `/detected_labels`,
//! `/detected_fields` and `/detected_field/<name>/values`, `/patterns` (mined at query time
//! on every shard, merged here), `/format_query` and `/drilldown-limits`.

use std::rc::Rc;
use std::time::Instant;

use super::json;
use super::loki::param;
use super::query_render;
use super::response::Response;
use crate::ingest::listeners::now_ns;
use crate::logql::{
    self, Expr, Grouping, LogExpr, LogRange, LogSelector, RangeAggregation, RangeOp, SampleExpr,
    VectorAggregation, VectorOp,
};
use crate::query::eval::{MetricResult, Series};
use crate::query::fields::{
    DEFAULT_FIELD_LIMIT, FieldValuesCollector, FieldsCollector, LabelsCollector,
    render_field_values_json, render_fields_json, render_labels_json,
};
use crate::query::params as qp;
use crate::query::patterns::render_json;
use crate::query::plan::Steps;
use crate::query::{QueryError, engine};
use crate::runtime::Core;
use crate::tenants::federation::TenantScope;

/// Series a volume answer lists by default (Loki's `defaultVolumeLimit`).
const VOLUME_LIMIT_DEFAULT: usize = 100;

/// `/index/volume` (instant: one value per series over `[start, end]`) and
/// `/index/volume_range` (one value per step).
pub async fn volume(
    core: &Rc<Core>,
    tenant: &TenantScope,
    params: &[(String, String)],
    range: bool,
) -> Result<Response, QueryError> {
    let started = Instant::now();
    let q = qp::parse_range_query(params, now_ns())
        .map_err(|e| QueryError::bad_request(e.message()))?;
    let query =
        param(params, "query").ok_or_else(|| QueryError::bad_request("missing query parameter"))?;
    let matchers = logql::parse_matchers(query, true)?;
    let limit = match param(params, "limit") {
        None | Some("") => VOLUME_LIMIT_DEFAULT,
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| QueryError::bad_request("limit must be a positive integer"))?,
    };
    let by_labels = match param(params, "aggregateBy") {
        None | Some("") | Some("series") => false,
        Some("labels") => true,
        Some(other) => {
            return Err(QueryError::bad_request(format!(
                "invalid aggregateBy '{other}': must be series or labels"
            )));
        }
    };
    // Loki groups by `targetLabels` when given, else by the names the selector matches on.
    let mut names: Vec<String> = match param(params, "targetLabels") {
        Some(t) if !t.is_empty() => t.split(',').map(|s| s.trim().to_string()).collect(),
        _ => matchers.iter().map(|m| m.name.clone()).collect(),
    };
    names.sort();
    names.dedup();
    let selector = LogSelector {
        matchers,
        filters: Vec::new(),
    };
    let (steps, range_ns) = if range {
        let step = q.step_or_default().as_nanos() as i64;
        (Steps::range(q.start_ns, q.end_ns, step), step)
    } else {
        (Steps::instant(q.end_ns), (q.end_ns - q.start_ns).max(1))
    };
    let groups: Vec<Vec<String>> = if by_labels {
        names.iter().map(|n| vec![n.clone()]).collect()
    } else {
        vec![names.clone()]
    };
    let mut series: Vec<Series> = Vec::new();
    for group in groups {
        let expr = volume_expr(selector.clone(), range_ns, group.clone());
        let result = engine::metric_in(core, tenant, &expr, steps).await?;
        let mut found = match result {
            MetricResult::Matrix(s) => s,
            MetricResult::Vector(v) => v
                .into_iter()
                .map(|(labels, ts, v)| Series {
                    labels,
                    points: vec![(ts, v)],
                })
                .collect(),
            MetricResult::Scalar(..) => Vec::new(),
        };
        if by_labels {
            // One series per label name, its volume over every stream that has it.
            for s in &mut found {
                s.labels = crate::model::Labels::from_pairs(group.iter().map(|n| (n.as_str(), "")));
            }
            found.retain(|s| !s.points.is_empty());
            if let Some(first) = found.first().cloned() {
                let mut total = first;
                for s in found.iter().skip(1) {
                    add_points(&mut total.points, &s.points);
                }
                series.push(total);
            }
        } else {
            series.extend(found);
        }
    }
    // Largest first, then the top `limit`.
    let total = |s: &Series| s.points.iter().map(|p| p.1).sum::<f64>();
    series.sort_by(|a, b| total(b).total_cmp(&total(a)).then(a.labels.cmp(&b.labels)));
    series.truncate(limit);
    let result = if range {
        series.sort_by(|a, b| a.labels.cmp(&b.labels));
        MetricResult::Matrix(series)
    } else {
        MetricResult::Vector(
            series
                .into_iter()
                .filter_map(|s| s.points.last().map(|&(ts, v)| (s.labels, ts, v)))
                .collect(),
        )
    };
    let body = query_render::metric_response(&result, started.elapsed(), &Default::default());
    Ok(Response::json(200, body.into_bytes()))
}

fn add_points(into: &mut Vec<(i64, f64)>, from: &[(i64, f64)]) {
    for &(ts, v) in from {
        match into.iter_mut().find(|p| p.0 == ts) {
            Some(p) => p.1 += v,
            None => into.push((ts, v)),
        }
    }
    into.sort_by_key(|p| p.0);
}

/// `sum by (names) (bytes_over_time({selector}[range]))`.
fn volume_expr(selector: LogSelector, range_ns: i64, names: Vec<String>) -> SampleExpr {
    SampleExpr::Vector(VectorAggregation {
        op: VectorOp::Sum,
        inner: Box::new(SampleExpr::Range(RangeAggregation {
            op: RangeOp::BytesOverTime,
            range: LogRange {
                log: LogExpr {
                    selector,
                    stages: Vec::new(),
                },
                range_ns,
                offset_ns: 0,
                unwrap: None,
            },
            param: None,
            grouping: None,
        })),
        grouping: Some(Grouping {
            without: false,
            labels: names,
        }),
        param: None,
    })
}

/// Lines Loki reads for `/detected_fields` by default (its `line_limit`).
const DETECTED_LINES_DEFAULT: usize = 1000;

fn count_param(
    params: &[(String, String)],
    names: &[&str],
    default: usize,
) -> Result<usize, QueryError> {
    for name in names {
        if let Some(v) = param(params, name).filter(|v| !v.is_empty()) {
            return v.parse::<usize>().ok().filter(|&n| n > 0).ok_or_else(|| {
                QueryError::bad_request(format!("{name} must be a positive integer"))
            });
        }
    }
    Ok(default)
}

/// The range of a detected_* or patterns request (Loki's defaults: the last hour).
fn range_of(params: &[(String, String)]) -> Result<qp::RangeQuery, QueryError> {
    qp::parse_range_query(params, now_ns()).map_err(|e| QueryError::bad_request(e.message()))
}

/// `/detected_labels`: the labels of the streams a selector picks, with their cardinality.
/// A multi-tenant read merges its tenants' labels (Loki's `MultiTenantQuerier`).
pub async fn detected_labels(
    core: &Rc<Core>,
    scope: &TenantScope,
    params: &[(String, String)],
) -> Result<Response, QueryError> {
    let q = range_of(params)?;
    let matchers = match param(params, "query") {
        None | Some("") | Some("{}") => Vec::new(),
        Some(text) => logql::parse_matchers(text, false)?,
    };
    let (tenants, matchers) = scope.select(&matchers);
    let mut collector = LabelsCollector::default();
    for tenant in tenants {
        let req = std::sync::Arc::new(crate::shard::SeriesRequest {
            tenant: tenant.to_string(),
            selectors: vec![matchers.clone()],
            start: q.start_ns,
            end: q.end_ns.saturating_add(1),
        });
        let running = engine::Running::new(&core.query_limits_in(scope));
        let answers = engine::ask_all(
            core,
            crate::shard::ShardRequest::Series(req),
            &running.control,
            running.timeout,
        )
        .await?;
        running.finish();
        for streams in engine::expect_answers(answers, "series", |a| match a {
            crate::shard::ShardAnswer::Series(v) => Ok(v),
            other => Err(other),
        })? {
            for labels in &streams {
                collector.add_stream(labels);
            }
        }
    }
    Ok(Response::json(
        200,
        render_labels_json(&collector.finish()).into_bytes(),
    ))
}

/// `/detected_fields` (and `/detected_field/<name>/values` with `name`): the fields of the
/// newest `line_limit` lines of a log query, found as Loki finds them (json, logfmt,
/// structured metadata, and the labels the query's own parsers set). A multi-tenant read
/// finds none, as Loki's `MultiTenantQuerier.DetectedFields` (not supported there).
pub async fn detected_fields(
    core: &Rc<Core>,
    scope: &TenantScope,
    params: &[(String, String)],
    name: Option<&str>,
) -> Result<Response, QueryError> {
    let q = range_of(params)?;
    let Some(tenant) = scope.single_id() else {
        let limit = count_param(params, &["limit", "field_limit"], DEFAULT_FIELD_LIMIT)?;
        let body = match name {
            Some(n) => {
                render_field_values_json(&FieldValuesCollector::new(n, limit).finish(), limit)
            }
            None => render_fields_json(&FieldsCollector::new(limit).finish(), limit),
        };
        return Ok(Response::json(200, body.into_bytes()));
    };
    let expr = match logql::parse_expr(&q.query)? {
        Expr::Log(expr) => expr,
        Expr::Sample(_) => {
            return Err(QueryError::bad_request(
                "detected fields need a log query, not a metric query",
            ));
        }
    };
    let limit = count_param(params, &["limit", "field_limit"], DEFAULT_FIELD_LIMIT)?;
    let lines = count_param(params, &["line_limit"], DETECTED_LINES_DEFAULT)?
        .min(core.query_limits(tenant).max_entries_limit_per_query as usize);
    let streams = engine::logs(
        core,
        tenant,
        expr,
        (q.start_ns, q.end_ns.saturating_add(1)),
        lines,
        crate::query::params::Direction::Backward,
    )
    .await?;
    let mut fields = FieldsCollector::new(limit);
    let mut values = name.map(|n| FieldValuesCollector::new(n, limit));
    for s in &streams {
        for (_, line, md, parsed) in &s.entries {
            let md: Vec<(&str, &str)> = md.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let parsed: Vec<(&str, &str)> = parsed
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            match values.as_mut() {
                Some(v) => v.add_entry(line, &md, &parsed, &s.labels),
                None => fields.add_entry(line, &md, &parsed, &s.labels),
            }
        }
    }
    let body = match values {
        Some(v) => render_field_values_json(&v.finish(), limit),
        None => render_fields_json(&fields.finish(), limit),
    };
    Ok(Response::json(200, body.into_bytes()))
}

/// `/patterns`: the log patterns of the lines a selector picks, with counts per step.
pub async fn patterns(
    core: &Rc<Core>,
    tenant: &TenantScope,
    params: &[(String, String)],
) -> Result<Response, QueryError> {
    let q = range_of(params)?;
    let selector = match logql::parse_expr(&q.query)? {
        Expr::Log(expr) if expr.stages.is_empty() => expr.selector,
        _ => {
            return Err(QueryError::bad_request(
                "patterns take a stream selector, optionally with line filters",
            ));
        }
    };
    let miner = engine::patterns(
        core,
        tenant,
        selector,
        (q.start_ns, q.end_ns.saturating_add(1)),
    )
    .await?;
    let step = q.step_or_default().as_nanos() as i64;
    let found = miner.finish(q.start_ns, q.end_ns, step);
    Ok(Response::json(200, render_json(&found).into_bytes()))
}

/// `/format_query`: the query in LogQL's canonical form.
pub fn format_query(params: &[(String, String)]) -> Result<Response, QueryError> {
    let query = param(params, "query").unwrap_or_default();
    let expr: Expr = logql::parse_expr(query)?;
    let mut out = String::from(r#"{"status":"success","data":"#);
    json::string(&mut out, &expr.to_string());
    out.push('}');
    Ok(Response::json(200, out.into_bytes()))
}

/// `/drilldown-limits`: the limits Logs Drilldown adapts to, as Loki names them (the
/// asking tenant's).
pub fn drilldown_limits(core: &Core, tenant: &TenantScope) -> Response {
    let q = &core.query_limits_in(tenant);
    let max_query_length = q
        .max_query_length
        .map(crate::config::units::duration_text)
        .unwrap_or_else(|| "0s".into());
    let body = format!(
        r#"{{"limits":{{"max_entries_limit_per_query":{},"max_query_series":{},"max_query_length":{},"query_timeout":{},"max_query_bytes_read":{},"volume_enabled":true,"discover_log_levels":false,"discover_service_name":[]}},"pattern_ingester_enabled":true,"version":"{}"}}"#,
        q.max_entries_limit_per_query,
        q.max_query_series,
        json_str(&max_query_length),
        json_str(&crate::config::units::duration_text(q.query_timeout)),
        q.max_query_bytes_read,
        env!("CARGO_PKG_VERSION"),
    );
    Response::json(200, body.into_bytes())
}

fn json_str(s: &str) -> String {
    let mut out = String::new();
    json::string(&mut out, s);
    out
}

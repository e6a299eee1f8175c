//! Loki's HTTP API on top of the connection layer: routing, tenants, readiness, build info
//! and metrics. Ingest routes are in [`super::ingest_routes`], query routes in
//! [`super::query_routes`], the demo's API in [`super::demo_routes`].

use std::rc::Rc;

use super::demo_routes::Read;
use super::request::Request;
use super::response::Response;
use crate::model::DEFAULT_TENANT;
use crate::runtime::Core;
use crate::shard::{DiscardReason, ShardAnswer, ShardRequest};
use crate::tenants::federation::{
    TENANT_SEPARATOR, TOO_MANY_ORG_IDS, TenantScope, parse_org_ids, single_org_id,
};

/// Routes one request of this core's HTTP server.
///
/// Every refusal is decided before anything reaches a shard: a push that is answered 503 or
/// 507 (recovering, stopping, a shard out of disk or behind on sealing) has stored nothing, so
/// the client's retry cannot store it twice. Queries are answered whenever every shard has
/// recovered, whatever keeps writes out (a full disk, a read-only start).
pub async fn route(core: Rc<Core>, req: Request) -> Response {
    let path = req.path.trim_end_matches('/').to_string();
    let method = req.method.as_str();
    match (method, path.as_str()) {
        ("GET", "/ready") => ready(&core),
        ("GET", "/metrics") => metrics(&core).await,
        ("GET", "/loki/api/v1/status/buildinfo") => buildinfo(),
        ("POST", "/loki/api/v1/push") | ("POST", "/api/prom/push") => {
            if let Some(refused) = core.lifecycle.write_refusal() {
                return Response::refused_write(&refused);
            }
            super::ingest_routes::push(&core, &req).await
        }
        ("POST", "/insert/jsonline") => {
            if let Some(refused) = core.lifecycle.write_refusal() {
                return Response::refused_write(&refused);
            }
            super::ingest_routes::jsonline(&core, &req).await
        }
        ("POST", "/otlp/v1/logs") => super::otlp_route::logs(&core, &req).await,
        ("POST", "/ingest") => {
            if let Some(refused) = core.lifecycle.write_refusal() {
                return super::demo_routes::as_json(Response::refused_write(&refused));
            }
            super::demo_routes::ingest(&core, &req).await
        }
        ("POST", "/simulate") => super::demo_simulate::simulate(&core, &req).await,
        ("GET", "/logs" | "/logs/recent" | "/stats") => {
            if let Some(refused) = not_answering(&core) {
                return super::demo_routes::as_json(refused);
            }
            let what = match path.as_str() {
                "/logs" => Read::Logs,
                "/logs/recent" => Read::Recent,
                _ => Read::Stats,
            };
            super::demo_routes::read(core, req, what).await
        }
        (_, "/ingest" | "/simulate" | "/logs" | "/logs/recent" | "/stats") => {
            super::demo_routes::as_json(Response::text(405, "method not allowed\n"))
        }
        ("GET", "/loki/api/v1/tail") => {
            if let Some(refused) = not_answering(&core) {
                return refused;
            }
            super::tail_route::tail(&core, &req).await
        }
        (_, "/loki/api/v1/delete") => {
            if let Some(refused) = not_answering(&core) {
                return refused;
            }
            super::delete_route::route(&core, &req).await
        }
        (_, p) if rules_path(p).is_some() => {
            let rest = rules_path(p).unwrap_or_default().to_string();
            super::rules_routes::rules(&core, &req, &rest).await
        }
        ("GET", "/prometheus/api/v1/rules") => super::rules_routes::prometheus_rules(&core, &req),
        ("GET", "/prometheus/api/v1/alerts") => super::rules_routes::prometheus_alerts(&core, &req),
        ("GET" | "POST", p) if p.starts_with("/loki/api/v1/") => {
            if let Some(refused) = not_answering(&core) {
                return refused;
            }
            let sub = p["/loki/api/v1/".len()..].to_string();
            in_query_queue(core, req, sub).await
        }
        (_, "/ready" | "/metrics" | "/loki/api/v1/push" | "/insert/jsonline" | "/otlp/v1/logs") => {
            Response::text(405, "method not allowed\n")
        }
        _ => Response::text(404, "404 page not found\n"),
    }
}

/// The part after `rules` of a rules API path (`/loki/api/v1/rules...`, or Loki's older
/// `/api/prom/rules...`).
fn rules_path(path: &str) -> Option<&str> {
    ["/loki/api/v1/rules", "/api/prom/rules"]
        .iter()
        .find_map(|prefix| path.strip_prefix(prefix))
        .filter(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Answers a read request in the core's `query` task queue rather than the connection's
/// (`ingest`) one: merging the shards' answers, evaluating the rest of a metric query and
/// rendering the response are the query's cost, and at ingest priority a heavy query would
/// take the core from pushes and syslog on the same core. Dropping the returned future (the
/// client went away) drops the task, which cancels the query on every shard.
/// `sub` is the path after `/loki/api/v1/`, as [`route`] matched it.
async fn in_query_queue(core: Rc<Core>, req: Request, sub: String) -> Response {
    let tq = core.query_tq;
    let task = glommio::spawn_local_into(
        async move { super::query_routes::route(&core, &req, &sub).await },
        tq,
    );
    match task {
        Ok(task) => task.await,
        // Only a handle to a queue that does not exist fails, and the core made this one.
        Err(e) => Response::text(500, &format!("cannot schedule the query: {e}\n")),
    }
}

/// 503 for a query while a WAL is being replayed or the server is stopping.
fn not_answering(core: &Core) -> Option<Response> {
    if core.lifecycle.is_stopping() {
        Some(Response::text(503, "shutting down\n"))
    } else if !core.lifecycle.all_recovered() {
        Some(Response::text(
            503,
            "not ready: replaying the write-ahead log\n",
        ))
    } else {
        None
    }
}

/// `/ready`: 200 only while every shard takes writes and answers queries; otherwise 503 with
/// one line per reason (which shard, and why).
fn ready(core: &Core) -> Response {
    if core.lifecycle.is_ready() {
        return Response::text(200, "ready\n");
    }
    let mut body = String::from("not ready:\n");
    for reason in core.lifecycle.not_ready_reasons() {
        body.push_str(&reason);
        body.push('\n');
    }
    Response::text(503, &body)
}

fn buildinfo() -> Response {
    let body = format!(
        r#"{{"version":"{}","revision":"{}","branch":"","buildUser":"","buildDate":"","goVersion":"","rustVersion":"{}"}}"#,
        env!("CARGO_PKG_VERSION"),
        option_env!("SHARDLOG_GIT_REVISION").unwrap_or(""),
        option_env!("CARGO_PKG_RUST_VERSION").unwrap_or(""),
    );
    Response::json(200, body.into_bytes())
}

async fn metrics(core: &Rc<Core>) -> Response {
    match core.fan_out(ShardRequest::Metrics).await {
        Ok(answers) => {
            let shards: Vec<_> = answers
                .into_iter()
                .filter_map(|a| match a {
                    ShardAnswer::Metrics(m) => Some(*m),
                    _ => None,
                })
                .collect();
            let mut text = crate::metrics::render::render(&shards, core.lifecycle.is_ready());
            core.ruler.render_metrics(&mut text);
            Response {
                body: text.into_bytes(),
                ..Response::new(200)
            }
            .with_header("content-type", "text/plain; version=0.0.4; charset=utf-8")
        }
        Err(e) => Response::text(500, &format!("{e}\n")),
    }
}

/// The request's one tenant: `X-Scope-OrgID`, validated as Loki does, or Loki's
/// single-tenant default unless `auth_enabled` (then a missing id is Loki's 401 `no org id`).
/// An invalid id, or several different ones (`a|b`, dskit's `multiple org IDs present`), is
/// a 400 that names the problem (and is counted for pushes), as Loki's push and tail answer.
pub fn tenant(core: &Core, req: &Request, counts_as_discard: bool) -> Result<String, Response> {
    match req.header("x-scope-orgid") {
        None if core.config.auth_enabled => {
            if counts_as_discard {
                core.shard.counters.discard(DiscardReason::InvalidTenant, 1);
            }
            Err(Response::text(401, "no org id\n"))
        }
        None => Ok(DEFAULT_TENANT.to_string()),
        Some(id) => match single_org_id(id) {
            Ok(id) => Ok(id),
            Err(e) => {
                if counts_as_discard {
                    core.shard.counters.discard(DiscardReason::InvalidTenant, 1);
                }
                Err(Response::text(400, &format!("{e}\n")))
            }
        },
    }
}

/// The tenants a read covers: those `X-Scope-OrgID` lists (`a|b`, see
/// [`crate::tenants::federation`]) with `--multi-tenant-queries`, else exactly one. Without
/// the flag, several tenants are refused with dskit's `multiple org IDs present` and the 500
/// Loki's querier answers it with (its single-tenant querier fails on `tenant.TenantID`, an
/// error Loki does not class as the client's).
pub fn read_tenants(core: &Core, req: &Request) -> Result<TenantScope, Response> {
    match req.header("x-scope-orgid") {
        Some(header) if header.contains(TENANT_SEPARATOR) => {
            let ids = parse_org_ids(header).map_err(|e| Response::text(400, &format!("{e}\n")))?;
            if ids.len() > 1 && !core.config.multi_tenant_queries {
                return Err(Response::text(500, &format!("{TOO_MANY_ORG_IDS}\n")));
            }
            Ok(TenantScope::of(ids))
        }
        _ => tenant(core, req, false).map(|t| TenantScope::single(&t)),
    }
}

/// Query-string and form parameters of a request, in order (URL first, then a form body).
/// Bytes that do not decode to UTF-8 are a 400, naming the parameter.
pub fn params(req: &Request) -> Result<Vec<(String, String)>, Response> {
    let bad =
        |e: crate::query::params::ParamError| Response::text(400, &format!("{}\n", e.message()));
    let mut out = crate::query::params::parse_query_string(&req.query).map_err(bad)?;
    let is_form = req
        .header("content-type")
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    if req.method == super::request::Method::Post && is_form {
        let body = std::str::from_utf8(&req.body)
            .map_err(|_| Response::text(400, "the form body is not valid UTF-8\n"))?;
        out.extend(crate::query::params::parse_query_string(body).map_err(bad)?);
    }
    Ok(out)
}

/// The first value of parameter `name`.
pub fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

//! Loki's log deletion API (`/loki/api/v1/delete`, as Loki's compactor serves it):
//! `POST`/`PUT` adds a request (204, `X-Delete-Request-ID`), `GET` lists the tenant's, and
//! `DELETE ?request_id=` cancels one. Every call is confined to the request's tenant. The
//! work is [`crate::deletion`]'s; this file only parses, checks and answers.

use std::rc::Rc;

use super::loki::{param, params, tenant};
use super::request::{Method, Request};
use super::response::Response;
use crate::deletion::book::BookChange;
use crate::deletion::request::{self, Status};
use crate::runtime::Core;
use crate::shard::{ShardAnswer, ShardRequest};

pub async fn route(core: &Rc<Core>, req: &Request) -> Response {
    let tenant = match tenant(core, req, false) {
        Ok(t) => t,
        Err(refused) => return refused,
    };
    let params = match params(req) {
        Ok(p) => p,
        Err(refused) => return refused,
    };
    match req.method {
        Method::Post | Method::Put => add(core, &tenant, &params).await,
        Method::Get => list(core, &tenant, &params).await,
        Method::Delete => cancel(core, &tenant, &params).await,
        _ => Response::text(405, "method not allowed\n"),
    }
}

async fn add(core: &Rc<Core>, tenant: &str, params: &[(String, String)]) -> Response {
    let now_ms = crate::deletion::now_ms();
    let now_ns = crate::ingest::listeners::now_ns();
    let new = match request::from_params(
        tenant,
        |name| param(params, name).map(str::to_string),
        now_ms,
        now_ns,
    ) {
        Ok(r) => r,
        Err(refused) => {
            return Response::text(refused.status, &format!("{}\n", refused.message));
        }
    };
    let id = new.request_id.clone();
    if let Err(e) = apply(core, BookChange::Add(new)).await {
        return Response::text(500, &format!("{e}\n"));
    }
    core.shard
        .count_deletion(tenant, |c| c.requests_received += 1);
    Response::new(204).with_header("X-Delete-Request-ID", id)
}

/// The tenant's requests; with both `start` and `end`, only those whose range overlaps
/// theirs, as Loki filters. A request some cores have applied and others not yet is
/// `<percent>% Complete`, as Loki shows one whose day shards are partly processed.
async fn list(core: &Rc<Core>, tenant: &str, params: &[(String, String)]) -> Response {
    let book = core.shard.delete_book();
    let mut requests = book.of_tenant(tenant);
    let (start, end) = (param(params, "start"), param(params, "end"));
    if let (Some(start), Some(end)) = (start, end)
        && !start.is_empty()
        && !end.is_empty()
    {
        let now = crate::deletion::now_ms();
        let Some(start) = request::parse_time(start, now) else {
            return Response::text(
                400,
                "invalid start time: require unix seconds or RFC3339 format\n",
            );
        };
        let Some(end) = request::parse_time(end, now) else {
            return Response::text(
                400,
                "invalid end time: require unix seconds or RFC3339 format\n",
            );
        };
        requests.retain(|r| r.start_ms <= end && r.end_ms >= start);
    }
    let mut done = Default::default();
    if requests.iter().any(|r| r.status == Status::Received) {
        done = match cores_done(core).await {
            Ok(d) => d,
            Err(e) => return Response::text(500, &format!("{e}\n")),
        };
    }
    let shards = core.shards;
    let body = request::render_list(&requests, |r| match r.status {
        Status::Processed => Status::Processed.as_str().to_string(),
        Status::Received => {
            request::progress_status(done.get(&r.request_id).copied().unwrap_or(0), shards)
        }
    });
    Response::json(200, body.into_bytes())
}

/// For each request some core has applied, how many cores have.
async fn cores_done(core: &Rc<Core>) -> Result<ahash::AHashMap<String, usize>, String> {
    let mut done: ahash::AHashMap<String, usize> = Default::default();
    for a in core.fan_out(ShardRequest::DeletesDone).await? {
        match a {
            ShardAnswer::DeletesDone(ids) => {
                for id in ids {
                    *done.entry(id).or_default() += 1;
                }
            }
            ShardAnswer::Failed(e) => return Err(e.to_string()),
            other => return Err(format!("unexpected {} answer", other.kind())),
        }
    }
    Ok(done)
}

async fn cancel(core: &Rc<Core>, tenant: &str, params: &[(String, String)]) -> Response {
    let request_id = param(params, "request_id").unwrap_or_default().to_string();
    let book = core.shard.delete_book();
    let Some(found) = book.find(tenant, &request_id) else {
        return Response::text(404, "could not find delete request with given id\n");
    };
    // A request some core has applied is partly on disk already: cancelling it would bring
    // back only the lines of the others (Loki refuses once any of its shards is processed).
    let partly_done = match cores_done(core).await {
        Ok(done) => done.contains_key(&request_id),
        Err(e) => return Response::text(500, &format!("{e}\n")),
    };
    if found.status == Status::Processed || partly_done {
        return Response::text(
            400,
            "deletion of request which is in process or already processed is not allowed\n",
        );
    }
    let period = core.config.delete_request_cancel_period;
    let deadline = found
        .created_at_ms
        .saturating_add(i64::try_from(period.as_millis()).unwrap_or(i64::MAX));
    if deadline < crate::deletion::now_ms() && param(params, "force") != Some("true") {
        return Response::text(
            400,
            &format!(
                "Cancellation of partially completed delete request or delete request past the deadline of {} since its creation is not allowed. To force, use the ?force query parameter\n",
                go_duration(period)
            ),
        );
    }
    let change = BookChange::Cancel {
        tenant: tenant.to_string(),
        request_id,
    };
    match apply(core, change).await {
        Ok(()) => Response::new(204),
        Err(e) => Response::text(500, &format!("{e}\n")),
    }
}

/// Gives a change to every shard; done when each has applied it and core 0 has it on disk.
async fn apply(core: &Rc<Core>, change: BookChange) -> Result<(), String> {
    let answers = core.fan_out(ShardRequest::Deletes(change)).await?;
    for a in answers {
        match a {
            ShardAnswer::Deletes => {}
            ShardAnswer::Failed(e) => return Err(e.to_string()),
            other => return Err(format!("unexpected {} answer to a delete", other.kind())),
        }
    }
    Ok(())
}

/// A duration as Go's `time.Duration.String` writes whole seconds (`24h0m0s`).
fn go_duration(d: std::time::Duration) -> String {
    let s = d.as_secs();
    match (s / 3600, s % 3600 / 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m{s}s"),
        (h, m, s) => format!("{h}h{m}m{s}s"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations_read_as_go_writes_them() {
        use std::time::Duration;
        assert_eq!(super::go_duration(Duration::from_secs(86400)), "24h0m0s");
        assert_eq!(super::go_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(super::go_duration(Duration::ZERO), "0s");
    }
}

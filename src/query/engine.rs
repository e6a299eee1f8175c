//! The receiving core's side of a query: admission, fan-out to every shard, the timeout and
//! cancellation, and the typed collection of the shards' answers.
//!
//! Which question it answers: "may this query run now, and what did every shard say?"
//! A core admits at most `max_concurrent + max_outstanding_requests_per_tenant` queries at
//! once (429 beyond, as Loki's queue does); each shard runs at most `max_concurrent` query
//! parts at once ([`ShardPermits`]), in the `query` task queue, the receiving core's own part
//! included, so a heavy query never runs at ingest priority. A query that times out, or
//! whose client goes away (its future is dropped), cancels its [`QueryControl`], which every
//! shard's scan checks between blocks.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use futures_lite::future;
use glommio::sync::Semaphore;

use super::QueryError;
use super::eval::{EvalLimits, MetricResult, evaluate};
use super::exec::logs::LogsRequest;
use super::exec::metric::MetricRequest;
use super::exec::patterns::PatternsRequest;
use super::exec::{QueryControl, QueryStats};
use super::merge::{PartialStream, append_window, merge_partials, thin_to_interval};
use super::params::Direction;
use super::patterns::PatternMiner;
use super::pipeline::Pipeline;
use super::plan::{Steps, plan_metric};
use super::sample::LeafPartial;
use crate::config::QueryLimits;
use crate::logql::{LogExpr, LogSelector, SampleExpr};
use crate::runtime::Core;
use crate::shard::{ShardAnswer, ShardRequest};
use crate::tenants::federation::TenantScope;

/// Queries admitted on one core (running or waiting for their shards).
#[derive(Default)]
pub struct Admission {
    admitted: Cell<usize>,
}

/// A query's place on its receiving core, released on drop.
pub struct Admitted<'a> {
    admission: &'a Admission,
}

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        self.admission
            .admitted
            .set(self.admission.admitted.get().saturating_sub(1));
    }
}

impl Admission {
    /// Takes a place, or refuses with 429 when the core's queue is full.
    pub fn admit(&self, limits: &QueryLimits) -> Result<Admitted<'_>, QueryError> {
        let cap = limits.max_concurrent + limits.max_outstanding_requests_per_tenant;
        if self.admitted.get() >= cap {
            return Err(QueryError::TooManyQueued {
                queued_max: limits.max_outstanding_requests_per_tenant,
            });
        }
        self.admitted.set(self.admitted.get() + 1);
        Ok(Admitted { admission: self })
    }

    pub fn admitted(&self) -> usize {
        self.admitted.get()
    }
}

/// How many query parts a shard runs at once; the others wait their turn.
pub struct ShardPermits {
    permits: Rc<Semaphore>,
}

impl ShardPermits {
    pub fn new(max_concurrent: usize) -> ShardPermits {
        ShardPermits {
            permits: Rc::new(Semaphore::new(max_concurrent.max(1) as u64)),
        }
    }

    /// Waits for a turn; the turn ends when the returned permit is dropped.
    pub async fn acquire(&self) -> glommio::sync::StaticPermit {
        // Only a closed semaphore fails, and this one is never closed.
        Semaphore::acquire_static_permit(&self.permits, 1)
            .await
            .expect("the query semaphore is never closed")
    }
}

/// Cancels the query on every shard when dropped before [`Running::finish`]: the client
/// went away or the timeout passed while the shards were still scanning.
pub struct Running {
    pub control: Arc<QueryControl>,
    /// The tenant's `query_timeout`.
    pub timeout: std::time::Duration,
    finished: bool,
}

impl Running {
    pub fn new(limits: &QueryLimits) -> Running {
        Running::with_stats(limits, Arc::default())
    }

    /// [`Running::new`], its scans counting what they read into `stats`.
    pub fn with_stats(limits: &QueryLimits, stats: Arc<QueryStats>) -> Running {
        Running {
            control: Arc::new(QueryControl::new(limits.max_query_bytes_read).with_stats(stats)),
            timeout: limits.query_timeout,
            finished: false,
        }
    }

    pub fn finish(mut self) {
        self.finished = true;
    }

    /// Asks every shard with this query's control and the configured timeout
    /// ([`ask_all`]), then takes each answer's `what` part ([`expect_answers`]): the one
    /// round trip every kind of read makes.
    pub async fn ask<T>(
        self,
        core: &Rc<Core>,
        req: ShardRequest,
        what: &str,
        pick: impl Fn(ShardAnswer) -> Result<T, ShardAnswer>,
    ) -> Result<Vec<T>, QueryError> {
        let answers = ask_all(core, req, &self.control, self.timeout).await?;
        self.finish();
        expect_answers(answers, what, pick)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if !self.finished {
            self.control.cancel();
        }
    }
}

/// Asks every shard, within the query timeout. On timeout the query is cancelled on every
/// shard. A shard that failed fails the query with its error.
pub async fn ask_all(
    core: &Rc<Core>,
    req: ShardRequest,
    control: &Arc<QueryControl>,
    timeout: Duration,
) -> Result<Vec<ShardAnswer>, QueryError> {
    let answer = future::or(async { Some(core.fan_out(req).await) }, async {
        glommio::timer::sleep(timeout).await;
        None
    })
    .await;
    let answers = match answer {
        Some(Ok(a)) => a,
        Some(Err(e)) => return Err(QueryError::NotReady(e)),
        None => {
            control.cancel();
            return Err(QueryError::Timeout(timeout));
        }
    };
    // A shard that could not read data it needed (a corrupt part, a failing disk) or hit a
    // limit fails the whole query: a partial answer would silently hide lines.
    let mut out = Vec::with_capacity(answers.len());
    for a in answers {
        match a {
            ShardAnswer::Failed(e) => return Err(e),
            a => out.push(a),
        }
    }
    Ok(out)
}

/// Runs a metric query: plans it, asks every shard for the partial states of its range
/// aggregations, merges them per leaf and evaluates the rest of the tree here.
pub async fn metric(
    core: &Rc<Core>,
    tenant: &str,
    expr: &SampleExpr,
    steps: Steps,
) -> Result<MetricResult, QueryError> {
    metric_in(core, &TenantScope::single(tenant), expr, steps).await
}

/// [`metric`] over the tenants of `scope`: in a multi-tenant read every stream carries
/// `__tenant_id__` before any aggregation, so `sum` adds the tenants up and `sum by
/// (__tenant_id__)` keeps them apart, as in Loki.
pub async fn metric_in(
    core: &Rc<Core>,
    scope: &TenantScope,
    expr: &SampleExpr,
    steps: Steps,
) -> Result<MetricResult, QueryError> {
    metric_counted(core, scope, expr, steps, Arc::default()).await
}

/// [`metric_in`], counting what its scans read into `stats` (a response's `stats`).
pub async fn metric_counted(
    core: &Rc<Core>,
    scope: &TenantScope,
    expr: &SampleExpr,
    steps: Steps,
    stats: Arc<QueryStats>,
) -> Result<MetricResult, QueryError> {
    let limits = &core.query_limits_in(scope);
    let plan = Arc::new(plan_metric(expr, steps)?);
    let eval_limits = EvalLimits {
        max_series: limits.max_query_series,
    };
    if plan.leaves().is_empty() {
        // Literals only (Grafana's `vector(1)+vector(1)`): nothing to read.
        return evaluate(&plan, Vec::new(), &eval_limits);
    }
    let running = Running::with_stats(limits, stats);
    let req = MetricRequest::new(
        scope.clone(),
        plan.clone(),
        usize::try_from(limits.query_memory_bytes_max).unwrap_or(usize::MAX),
        limits.max_query_series,
        running.control.clone(),
    )?;
    let per_shard = running
        .ask(
            core,
            ShardRequest::Metric(Arc::new(req)),
            "metric",
            |a| match a {
                ShardAnswer::Metric(p) => Ok(p),
                other => Err(other),
            },
        )
        .await?;
    let mut merged: Vec<Option<LeafPartial>> = (0..plan.leaves().len()).map(|_| None).collect();
    for partials in per_shard {
        for p in partials {
            let slot = merged.get_mut(p.leaf()).ok_or_else(|| {
                QueryError::Internal(format!("a shard answered for leaf {}", p.leaf()))
            })?;
            match slot {
                Some(m) => m.merge(p)?,
                None => *slot = Some(p),
            }
        }
    }
    let merged = merged
        .into_iter()
        .zip(plan.leaves())
        .map(|(m, leaf)| m.unwrap_or_else(|| leaf.empty_partial()))
        .collect();
    evaluate(&plan, merged, &eval_limits)
}

/// Runs a log query: every shard keeps its first `limit` entries after the pipeline, and
/// the receiving core merges them into the first `limit` overall.
pub async fn logs(
    core: &Rc<Core>,
    tenant: &str,
    expr: LogExpr,
    range: (i64, i64),
    limit: usize,
    direction: Direction,
) -> Result<Vec<PartialStream>, QueryError> {
    logs_in(
        core,
        &TenantScope::single(tenant),
        expr,
        range,
        limit,
        direction,
    )
    .await
}

/// [`logs`] over the tenants of `scope`, each stream of a multi-tenant read labelled with
/// its tenant.
pub async fn logs_in(
    core: &Rc<Core>,
    scope: &TenantScope,
    expr: LogExpr,
    (start, end): (i64, i64),
    limit: usize,
    direction: Direction,
) -> Result<Vec<PartialStream>, QueryError> {
    logs_counted(
        core,
        scope,
        expr,
        (start, end),
        limit,
        direction,
        Arc::default(),
    )
    .await
}

/// [`logs_in`], counting what its scans read into `stats` (a response's `stats`).
pub async fn logs_counted(
    core: &Rc<Core>,
    scope: &TenantScope,
    expr: LogExpr,
    (start, end): (i64, i64),
    limit: usize,
    direction: Direction,
    stats: Arc<QueryStats>,
) -> Result<Vec<PartialStream>, QueryError> {
    let pipeline = Arc::new(Pipeline::new(&expr.stages)?);
    let running = Running::with_stats(&core.query_limits_in(scope), stats);
    let req = Arc::new(LogsRequest {
        tenants: scope.clone(),
        selector: expr.selector,
        pipeline,
        start,
        end,
        limit,
        direction,
        control: running.control.clone(),
    });
    let partials = running
        .ask(core, ShardRequest::Logs(req), "logs", |a| match a {
            ShardAnswer::Logs(p) => Ok(p),
            other => Err(other),
        })
        .await?;
    Ok(merge_partials(partials, direction, limit))
}

/// The time windows Loki's query frontend splits a log query into
/// (`split_queries_by_interval`, 1h by default): boundaries at multiples of the split, the
/// first window starting at `start` and the last ending at `end`.
pub const LOG_QUERY_SPLIT_NS: i64 = 3_600 * 1_000_000_000;

/// `[start, end)` cut at multiples of `split_ns` (Loki's `util.ForInterval`), in time order.
pub fn split_windows(start: i64, end: i64, split_ns: i64) -> Vec<(i64, i64)> {
    let mut windows = Vec::new();
    if split_ns <= 0 || start >= end {
        return vec![(start, end)];
    }
    let mut from = start;
    let mut boundary = start - start.rem_euclid(split_ns);
    while from < end {
        boundary = boundary.saturating_add(split_ns);
        let to = boundary.min(end);
        windows.push((from, to));
        from = to;
    }
    windows
}

/// A log query with Loki's `interval`: as Loki's frontend and querier answer it. The range
/// is split into [`LOG_QUERY_SPLIT_NS`] windows taken in the query direction; in each, the
/// first `limit` entries are read and thinned to one per `interval` ([`thin_to_interval`]);
/// the windows' entries are appended until `limit` entries are held. So the answer depends
/// on the split, and may hold fewer than `limit` entries, exactly as Loki's does.
pub async fn logs_at_interval(
    core: &Rc<Core>,
    scope: &TenantScope,
    expr: LogExpr,
    (start, end): (i64, i64),
    limit: usize,
    direction: Direction,
    interval_ns: i64,
) -> Result<Vec<PartialStream>, QueryError> {
    let mut windows = split_windows(start, end, LOG_QUERY_SPLIT_NS);
    if direction == Direction::Backward {
        windows.reverse();
    }
    let read_all = async {
        let mut out: Vec<PartialStream> = Vec::new();
        for window in windows {
            if out.iter().map(|s| s.entries.len()).sum::<usize>() >= limit {
                break;
            }
            let read = logs_in(core, scope, expr.clone(), window, limit, direction).await?;
            append_window(
                &mut out,
                thin_to_interval(read, direction, interval_ns),
                direction,
                limit,
            );
        }
        Ok(out)
    };
    // `query_timeout` bounds the whole request, as in Loki, not each window's read: a month
    // read hour by hour would otherwise run for 720 timeouts. A window's read still running
    // at the deadline is dropped, which cancels it on every shard.
    let timeout = core.query_limits_in(scope).query_timeout;
    future::or(read_all, async {
        glommio::timer::sleep(timeout).await;
        Err(QueryError::Timeout(timeout))
    })
    .await
}

/// Mines the log patterns of the lines a selector picks in `[start, end)`.
pub async fn patterns(
    core: &Rc<Core>,
    scope: &TenantScope,
    selector: LogSelector,
    (start, end): (i64, i64),
) -> Result<PatternMiner, QueryError> {
    let running = Running::new(&core.query_limits_in(scope));
    let req = Arc::new(PatternsRequest {
        tenants: scope.clone(),
        selector,
        start,
        end,
        control: running.control.clone(),
    });
    let miners = running
        .ask(core, ShardRequest::Patterns(req), "patterns", |a| match a {
            ShardAnswer::Patterns(m) => Ok(m),
            other => Err(other),
        })
        .await?;
    let mut merged: Option<PatternMiner> = None;
    for m in miners {
        match merged.as_mut() {
            Some(all) => all.merge(*m),
            None => merged = Some(*m),
        }
    }
    Ok(merged.unwrap_or_else(|| PatternMiner::new(Default::default())))
}

/// Takes the answers of one kind; an answer of another kind is a bug, reported as one.
pub fn expect_answers<T>(
    answers: Vec<ShardAnswer>,
    what: &str,
    pick: impl Fn(ShardAnswer) -> Result<T, ShardAnswer>,
) -> Result<Vec<T>, QueryError> {
    answers
        .into_iter()
        .map(|a| {
            pick(a).map_err(|other| {
                QueryError::Internal(format!(
                    "a shard answered {} to a {what} request",
                    other.kind()
                ))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_windows_cut_at_multiples_of_the_split() {
        const H: i64 = LOG_QUERY_SPLIT_NS;
        assert_eq!(
            split_windows(H / 2, 2 * H + 5, H),
            vec![(H / 2, H), (H, 2 * H), (2 * H, 2 * H + 5)]
        );
        assert_eq!(split_windows(H, 2 * H, H), vec![(H, 2 * H)]);
        assert_eq!(split_windows(5, 5, H), vec![(5, 5)]);
    }

    #[test]
    fn admission_refuses_beyond_the_queue() {
        let limits = QueryLimits {
            max_concurrent: 1,
            max_outstanding_requests_per_tenant: 1,
            ..QueryLimits::default()
        };
        let a = Admission::default();
        let first = a.admit(&limits).unwrap();
        let _second = a.admit(&limits).unwrap();
        assert_eq!(
            a.admit(&limits).err().map(|e| e.status()),
            Some(429),
            "a third query waits beyond max_concurrent + the queue"
        );
        drop(first);
        assert!(a.admit(&limits).is_ok());
    }

    #[test]
    fn a_dropped_query_is_cancelled_and_a_finished_one_is_not() {
        let r = Running::new(&QueryLimits::default());
        let control = r.control.clone();
        drop(r);
        assert!(control.is_cancelled());
        let r = Running::new(&QueryLimits::default());
        let control = r.control.clone();
        r.finish();
        assert!(!control.is_cancelled());
    }
}

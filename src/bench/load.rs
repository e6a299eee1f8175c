//! One load run: the sender threads of a scenario against one set of endpoints, bounded by
//! the run's count and deadline, with the progress thread, and what they measured.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::ErrorLog;
use super::load_push::{PushLoad, push_sender, run_matcher};
use super::load_query::{
    KindStats, QUERY_TAIL_MS_MAX, QueryKind, QueryLoad, metric_support, query_worker,
};
use super::load_syslog::{SyslogLoad, tcp_sender, udp_sender};
use super::options::{Endpoints, Plan, Scenario};
use super::rate::{Budget, TokenBucket};
use super::stats::{Progress, Second, SharedHistogram, SourceCounters, SourceTotals, Watched};
use super::verify::{ExpectKind, Expectation};

/// The background ingest rate of the `query` scenario when `--rate` is not given: a steady
/// stream that keeps heads growing without saturating a small machine, so that the query
/// latencies measure queries, not an overloaded server.
pub const QUERY_INGEST_RATE_DEFAULT: u64 = 20_000;

/// Sources of a run, by name.
pub const PUSH: &str = "push";
pub const SYSLOG_TCP: &str = "syslog-tcp";
pub const SYSLOG_UDP: &str = "syslog-udp";

/// One query kind's measurements.
pub struct QueryFigures {
    pub kind: QueryKind,
    pub latency: Histogram<u64>,
    pub done: u64,
    pub errors: u64,
}

/// What one load run measured.
pub struct LoadOutcome {
    pub started: Instant,
    pub start_ns: i64,
    pub sources: BTreeMap<&'static str, SourceTotals>,
    pub ack_latency: Option<Histogram<u64>>,
    pub queries: Vec<QueryFigures>,
    /// Why metric queries were not run, when they were not.
    pub metric_skipped: Option<String>,
    pub timeline: Vec<Second>,
    /// Seconds from the start until the last sender finished.
    pub send_seconds: f64,
    /// Seconds from the start until the last push acknowledgement.
    pub last_ack_seconds: Option<f64>,
    pub errors: Vec<String>,
    pub errors_total: u64,
    /// How the run's pushes were encoded, which decides how its streams are found.
    pub push_encoding: super::options::Encoding,
}

impl LoadOutcome {
    /// What the server must hold for this run, per source.
    pub fn expectations(&self, run_id: &str) -> Vec<Expectation> {
        let mut out = Vec::new();
        for (name, t) in &self.sources {
            let (selector, kind) = match *name {
                PUSH => (
                    format!("{{{}}}", run_matcher(self.push_encoding, run_id)),
                    ExpectKind::Exact {
                        expected: t.lines_acked,
                        unknown: t.lines_unknown,
                    },
                ),
                SYSLOG_TCP => (
                    format!(r#"{{host="{run_id}"}}"#),
                    ExpectKind::Exact {
                        expected: t.lines_sent,
                        unknown: t.lines_unknown,
                    },
                ),
                _ => (
                    format!(r#"{{host="{run_id}"}}"#),
                    ExpectKind::Datagrams { sent: t.lines_sent },
                ),
            };
            out.push(Expectation {
                source: name,
                selector,
                kind,
            });
        }
        out
    }

    /// Lines the server accepted at the transport level: pushes answered 2xx, syslog TCP
    /// frames written whole (the protocol has no acknowledgement). UDP has neither.
    pub fn lines_acked(&self) -> u64 {
        self.sources
            .iter()
            .map(|(name, t)| match *name {
                PUSH => t.lines_acked,
                SYSLOG_TCP => t.lines_sent,
                _ => 0,
            })
            .sum()
    }

    pub fn total(&self) -> SourceTotals {
        let mut sum = SourceTotals::default();
        for t in self.sources.values() {
            sum.add(t);
        }
        sum
    }
}

/// Runs `scenario` (the plan's, or syslog-tcp for a comparison round) against `ep`.
pub fn run_load(
    plan: &Plan,
    scenario: Scenario,
    ep: Endpoints,
    run_id: &str,
    label: &str,
) -> LoadOutcome {
    let started = Instant::now();
    let start_ns = crate::ingest::listeners::now_ns();
    let deadline = started + plan.duration;
    let budget = Arc::new(Budget::new(plan.count, deadline));
    // In the mixed scenario a line count is split between push and syslog TCP, so that one
    // fast source cannot take the whole count and leave the other unmeasured.
    let (push_budget, tcp_budget) = match (scenario, plan.count) {
        (Scenario::Mixed, Some(count)) => (
            Arc::new(Budget::new(Some(count - count / 2), deadline)),
            Arc::new(Budget::new(Some(count / 2), deadline)),
        ),
        _ => (budget.clone(), budget.clone()),
    };
    let errors = Arc::new(ErrorLog::default());
    let rate = match scenario {
        Scenario::Query => Some(plan.rate.unwrap_or(QUERY_INGEST_RATE_DEFAULT)),
        _ => plan.rate,
    };
    let bucket = rate.map(|r| Arc::new(TokenBucket::new(r, started)));
    let (push_conns, tcp_conns, udp_socks, query_workers) = match scenario {
        Scenario::SyslogTcp => (0, plan.connections, 0, 0),
        Scenario::SyslogUdp => (0, 0, plan.connections, 0),
        Scenario::Push => (plan.connections, 0, 0, 0),
        Scenario::Query => (1, 0, 0, plan.connections),
        Scenario::Mixed => (plan.connections, plan.connections, 0, 1),
    };

    let push_counters = Arc::new(SourceCounters::default());
    let ack_latency = Arc::new(SharedHistogram::default());
    let last_ack_us = Arc::new(AtomicU64::new(0));
    let tcp_counters = Arc::new(SourceCounters::default());
    let udp_counters = Arc::new(SourceCounters::default());

    let mut watched = Watched {
        sources: Vec::new(),
        latency: None,
        acked_is_sent: Vec::new(),
    };
    let mut ingest = Vec::new();
    if push_conns > 0 {
        watched.sources.push(push_counters.clone());
        watched.acked_is_sent.push(false);
        watched.latency = Some(ack_latency.clone());
        let load = PushLoad {
            run_id: run_id.to_string(),
            tenant: plan.tenant.clone(),
            corpus: plan.corpus.clone(),
            streams: plan.streams,
            batch: plan.batch,
            encoding: plan.encoding,
            budget: push_budget,
            bucket: bucket.clone(),
            counters: push_counters.clone(),
            latency: ack_latency.clone(),
            errors: errors.clone(),
            started,
            last_ack_us: last_ack_us.clone(),
        };
        for i in 0..push_conns {
            let l = load.clone();
            ingest.push(spawn(format!("bench-push-{i}"), move || {
                push_sender(i, ep.http, l)
            }));
        }
    }
    let syslog = |counters: &Arc<SourceCounters>, budget: &Arc<Budget>| SyslogLoad {
        run_id: run_id.to_string(),
        corpus: plan.corpus.clone(),
        streams: plan.streams,
        batch: plan.batch,
        format: plan.syslog_format,
        framing: plan.framing,
        budget: budget.clone(),
        bucket: bucket.clone(),
        counters: counters.clone(),
        errors: errors.clone(),
    };
    if tcp_conns > 0 {
        watched.sources.push(tcp_counters.clone());
        watched.acked_is_sent.push(true);
        let load = syslog(&tcp_counters, &tcp_budget);
        for i in 0..tcp_conns {
            let l = load.clone();
            ingest.push(spawn(format!("bench-tcp-{i}"), move || {
                tcp_sender(i, ep.syslog_tcp, l)
            }));
        }
    }
    if udp_socks > 0 {
        watched.sources.push(udp_counters.clone());
        watched.acked_is_sent.push(true);
        let load = syslog(&udp_counters, &budget);
        for i in 0..udp_socks {
            let l = load.clone();
            ingest.push(spawn(format!("bench-udp-{i}"), move || {
                udp_sender(i, ep.syslog_udp, l)
            }));
        }
    }

    let ingest_done = Arc::new(AtomicBool::new(false));
    let mut metric_skipped = None;
    let mut query_stats = Arc::new(Vec::new());
    let mut queriers = Vec::new();
    if query_workers > 0 {
        let mut load = QueryLoad {
            run_id: run_id.to_string(),
            tenant: plan.tenant.clone(),
            tokens: plan.corpus.query_tokens(),
            first_service: plan.corpus.kind_name(0).to_string(),
            kinds: QueryKind::ALL.to_vec(),
            stats: Arc::new(
                QueryKind::ALL
                    .iter()
                    .map(|k| (*k, KindStats::default()))
                    .collect(),
            ),
            ingest_done: ingest_done.clone(),
            hard_deadline: started + plan.duration + Duration::from_millis(QUERY_TAIL_MS_MAX),
            start_ns,
            errors: errors.clone(),
        };
        metric_skipped = metric_support(ep.http, &load);
        if metric_skipped.is_some() {
            load.kinds.retain(|k| *k != QueryKind::Metric);
        }
        query_stats = load.stats.clone();
        if watched.latency.is_none() {
            watched.latency = Some(query_stats[0].1.latency.clone());
        }
        for i in 0..query_workers {
            let l = load.clone();
            queriers.push(spawn(format!("bench-query-{i}"), move || {
                query_worker(i, ep.http, l)
            }));
        }
    }

    let progress = Progress::start(label.to_string(), started, watched);
    for h in ingest {
        let _ = h.join();
    }
    let send_seconds = started.elapsed().as_secs_f64();
    ingest_done.store(true, Ordering::Relaxed);
    for h in queriers {
        let _ = h.join();
    }
    let timeline = progress.finish();

    let mut sources = BTreeMap::new();
    if push_conns > 0 {
        sources.insert(PUSH, push_counters.totals());
    }
    if tcp_conns > 0 {
        sources.insert(SYSLOG_TCP, tcp_counters.totals());
    }
    if udp_socks > 0 {
        sources.insert(SYSLOG_UDP, udp_counters.totals());
    }
    let last_ack = last_ack_us.load(Ordering::Relaxed);
    let queries = query_stats
        .iter()
        .filter(|(k, _)| !(metric_skipped.is_some() && *k == QueryKind::Metric))
        .map(|(k, s)| QueryFigures {
            kind: *k,
            latency: s.latency.snapshot(),
            done: s.done.load(Ordering::Relaxed),
            errors: s.errors.load(Ordering::Relaxed),
        })
        .collect();
    let (errors, errors_total) = errors.take();
    LoadOutcome {
        started,
        start_ns,
        sources,
        ack_latency: (push_conns > 0).then(|| ack_latency.snapshot()),
        queries,
        metric_skipped,
        timeline,
        send_seconds,
        last_ack_seconds: (last_ack > 0).then_some(last_ack as f64 / 1e6),
        errors,
        errors_total,
        push_encoding: plan.encoding,
    }
}

fn spawn<F: FnOnce() + Send + 'static>(name: String, f: F) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name(name)
        .spawn(f)
        .expect("spawn a sender thread")
}

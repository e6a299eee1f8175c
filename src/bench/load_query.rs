//! Query workers: each sends LogQL range queries of every kind in turn over the run's push
//! streams while ingest goes on, and records each kind's latency.
//!
//! Kinds: `label` (a stream selector alone), `substring` (a line filter on a phrase many
//! lines carry), `rare-token` (a line filter on a token almost no line carries: a full
//! scan that returns little) and `metric` (`count_over_time` by service), the last only
//! when the server answers metric queries.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::ErrorLog;
use super::http::{HttpClient, encode_query};
use super::lines::QueryTokens;
use super::load_push::RUN_LABEL;
use super::stats::{LatencyRecorder, SharedHistogram};

/// Entries a log query asks for: a Grafana panel's default page.
pub const QUERY_LIMIT: &str = "100";
/// Each kind runs at least this often before the workers stop, so that even a short run
/// reports a latency per kind.
pub const QUERIES_PER_KIND_MIN: u64 = 5;
/// How long query workers may go on after the ingest ends to reach
/// [`QUERIES_PER_KIND_MIN`]; bounded so that a slow server cannot stall the run.
pub const QUERY_TAIL_MS_MAX: u64 = 30_000;
/// The step of the metric query: Grafana's choice for a few minutes on a wide panel.
const METRIC_STEP: &str = "5s";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QueryKind {
    Label,
    Substring,
    RareToken,
    Metric,
}

impl QueryKind {
    pub const ALL: [QueryKind; 4] = [
        QueryKind::Label,
        QueryKind::Substring,
        QueryKind::RareToken,
        QueryKind::Metric,
    ];

    pub fn name(self) -> &'static str {
        match self {
            QueryKind::Label => "label",
            QueryKind::Substring => "substring",
            QueryKind::RareToken => "rare-token",
            QueryKind::Metric => "metric",
        }
    }

    /// The LogQL of this kind for a run.
    pub fn logql(self, run_id: &str, tokens: &QueryTokens, first_service: &str) -> String {
        let sel = format!(r#"{RUN_LABEL}="{run_id}""#);
        match self {
            QueryKind::Label => format!(r#"{{{sel}, service="{first_service}"}}"#),
            QueryKind::Substring => format!(r#"{{{sel}}} |= "{}""#, escape(&tokens.common)),
            QueryKind::RareToken => format!(r#"{{{sel}}} |= "{}""#, escape(&tokens.rare)),
            QueryKind::Metric => {
                format!(r#"sum by (service) (count_over_time({{{sel}}}[1m]))"#)
            }
        }
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// One kind's shared measurements.
#[derive(Default)]
pub struct KindStats {
    pub latency: Arc<SharedHistogram>,
    pub done: AtomicU64,
    pub errors: AtomicU64,
}

/// What the query workers of a run share.
#[derive(Clone)]
pub struct QueryLoad {
    pub run_id: String,
    pub tenant: String,
    pub tokens: QueryTokens,
    pub first_service: String,
    pub kinds: Vec<QueryKind>,
    pub stats: Arc<Vec<(QueryKind, KindStats)>>,
    /// Set when the ingest has ended.
    pub ingest_done: Arc<AtomicBool>,
    pub hard_deadline: Instant,
    /// Nanoseconds since the epoch when the run started: the start of every query range.
    pub start_ns: i64,
    pub errors: Arc<ErrorLog>,
}

impl QueryLoad {
    fn finished(&self) -> bool {
        if Instant::now() >= self.hard_deadline {
            return true;
        }
        self.ingest_done.load(Ordering::Relaxed)
            && self
                .stats
                .iter()
                .filter(|(k, _)| self.kinds.contains(k))
                .all(|(_, s)| s.done.load(Ordering::Relaxed) >= QUERIES_PER_KIND_MIN)
    }

    fn path(&self, kind: QueryKind) -> String {
        let q = kind.logql(&self.run_id, &self.tokens, &self.first_service);
        let start = self.start_ns.to_string();
        let end = (crate::ingest::listeners::now_ns() + 1).to_string();
        let mut params = vec![("query", q.as_str()), ("start", &start), ("end", &end)];
        match kind {
            QueryKind::Metric => params.push(("step", METRIC_STEP)),
            _ => params.push(("limit", QUERY_LIMIT)),
        }
        format!("/loki/api/v1/query_range?{}", encode_query(&params))
    }
}

/// Asks the server one metric query: `None` when it answers it, otherwise why it does not
/// (the report says so, and the kind is skipped).
pub fn metric_support(addr: SocketAddr, load: &QueryLoad) -> Option<String> {
    let mut client = HttpClient::new(addr);
    let path = load.path(QueryKind::Metric);
    match client.request("GET", &path, &[("X-Scope-OrgID", &load.tenant)], b"") {
        Ok(r) if r.status == 200 => None,
        Ok(r) => Some(format!(
            "the server answered {} to `{}`: {}",
            r.status,
            QueryKind::Metric.logql(&load.run_id, &load.tokens, &load.first_service),
            r.text().trim().chars().take(200).collect::<String>()
        )),
        Err(e) => Some(format!("the metric query probe failed: {e}")),
    }
}

/// One worker's loop: the kinds in turn, starting at its own offset.
pub fn query_worker(index: usize, addr: SocketAddr, load: QueryLoad) {
    let mut client = HttpClient::new(addr);
    let mut recorders: Vec<(QueryKind, LatencyRecorder)> = load
        .stats
        .iter()
        .map(|(k, s)| (*k, LatencyRecorder::new(s.latency.clone())))
        .collect();
    let headers = [("X-Scope-OrgID", load.tenant.as_str())];
    let mut i = index;
    while !load.finished() {
        let kind = load.kinds[i % load.kinds.len()];
        i += 1;
        let path = load.path(kind);
        let t0 = Instant::now();
        let result = client.request("GET", &path, &headers, b"");
        let latency = t0.elapsed();
        let stats = &load
            .stats
            .iter()
            .find(|(k, _)| *k == kind)
            .expect("kind has stats")
            .1;
        match result {
            Ok(r) if r.status == 200 => {
                if let Some((_, rec)) = recorders.iter_mut().find(|(k, _)| *k == kind) {
                    rec.record(latency);
                }
                stats.done.fetch_add(1, Ordering::Relaxed);
            }
            other => {
                stats.errors.fetch_add(1, Ordering::Relaxed);
                load.errors.note(match other {
                    Ok(r) => format!(
                        "{} query answered {}: {}",
                        kind.name(),
                        r.status,
                        r.text().chars().take(300).collect::<String>()
                    ),
                    Err(e) => format!("{} query: {e}", kind.name()),
                });
                // A failing server should not be hammered in a tight loop.
                std::thread::sleep(Duration::from_millis(super::ERROR_BACKOFF_MS_MIN));
                // Errors count towards the minimum too: a kind that always fails must not
                // keep the run going until the hard deadline.
                stats.done.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logql;

    #[test]
    fn every_kind_is_valid_logql() {
        let tokens = QueryTokens {
            common: r#"Failed "pass""#.into(),
            rare: "oom-kill".into(),
        };
        for kind in QueryKind::ALL {
            let q = kind.logql("run-1", &tokens, "sshd");
            if kind == QueryKind::Metric {
                assert!(q.starts_with("sum by (service) (count_over_time("), "{q}");
                continue;
            }
            logql::parse_expr(&q).unwrap_or_else(|e| panic!("{q}: {e:?}"));
            assert!(q.contains(r#"bench_run="run-1""#), "{q}");
        }
        assert!(
            QueryKind::Substring
                .logql("r", &tokens, "s")
                .contains(r#"|= "Failed \"pass\"""#)
        );
    }
}

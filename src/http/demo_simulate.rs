//! `POST /simulate` of the demo's API: generates realistic lines and stores them through
//! the same path as `/ingest` (see [`super::demo_routes`]), so that the demo's performance
//! test runs against the real ingest path. Off unless `--enable-simulate`: one request
//! fills a tenant with made-up lines.
//!
//! The lines are the benchmark harness's ([`LineSource`]: sshd, nginx, kernel, an
//! application's JSON logs, PostgreSQL), each kind with a service named as the demo names
//! its services, and the level Loki would detect in the line, spelled as the demo spells
//! levels.

use std::rc::Rc;
use std::time::Instant;

use super::demo_routes::{as_json, json_error, refuse, store};
use super::ingest_routes::push_limits;
use super::loki::{param, params, tenant};
use super::request::Request;
use super::response::Response;
use crate::bench::lines::{LineCorpus, LineSource};
use crate::ingest::demo::{LEVEL_LABEL, SERVICE_LABEL};
use crate::ingest::listeners::now_ns;
use crate::ingest::push::validate::{self, display_pairs};
use crate::ingest::push::{PushEntry, PushError, PushLimits, Truncated};
use crate::model::Labels;
use crate::runtime::Core;

/// Lines `/simulate` generates without `count`: the demo's 10,000.
pub const SIMULATE_LINES_DEFAULT: usize = 10_000;
/// Lines `/simulate` generates and stores at once: what they hold until durable (about 3.7
/// KB per line as the request budget charges them, 7.4 MB) fits the least request budget
/// (33 MiB) several times over.
const SIMULATE_LINES_PER_STORE: usize = 2_000;
/// Lines one `/simulate` may generate: ten times the demo's default. One request should not
/// keep a core's ingest queue for more than a few seconds.
pub const SIMULATE_LINES_MAX: usize = 100_000;
/// The demo's services, one per kind of the harness's generated lines (sshd, nginx, kernel,
/// an application's JSON logs, PostgreSQL), named as the demo names its services.
const SIMULATED_SERVICES: &[&str] = &[
    "auth-service",
    "api-gateway",
    "node-service",
    "payment-service",
    "user-service",
];

/// `POST /simulate?count=N`: generates `N` lines (default [`SIMULATE_LINES_DEFAULT`]) and
/// stores them as `/ingest` stores its entries; answered once all are durable.
pub async fn simulate(core: &Rc<Core>, req: &Request) -> Response {
    if !core.config.enable_simulate {
        return json_error(
            403,
            "POST /simulate is off on this server; start it with --enable-simulate (or \
             enable_simulate = true in its TOML file) to generate test lines",
        );
    }
    if let Some(refused) = core.lifecycle.write_refusal() {
        return as_json(Response::refused_write(&refused));
    }
    let tenant = match tenant(core, req, true) {
        Ok(t) => t,
        Err(r) => return as_json(r),
    };
    let params = match params(req) {
        Ok(p) => p,
        Err(r) => return as_json(r),
    };
    let count = match param(&params, "count") {
        None | Some("") => SIMULATE_LINES_DEFAULT,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=SIMULATE_LINES_MAX).contains(&n) => n,
            _ => {
                return json_error(
                    400,
                    &format!(
                        "invalid count '{}': a whole number from 1 to {SIMULATE_LINES_MAX} is \
                         expected",
                        crate::ingest::push::validate::echo(v)
                    ),
                );
            }
        },
    };
    let started = Instant::now();
    let limits = push_limits(core, &core.limits.for_tenant(&tenant));
    // Generated and stored a slice at a time, so that what one request holds until durable
    // fits the core's request budget whatever the count (a failure after the first slice
    // leaves the slices before it stored, and says so in its error).
    let mut stored = 0;
    let mut left = count;
    let held_before = req.charge.bytes();
    let outcome = loop {
        // What the previous slice held is durable now: its charge goes back.
        req.charge.shrink_to(held_before);
        if left == 0 {
            break Ok(stored);
        }
        let n = left.min(SIMULATE_LINES_PER_STORE);
        let (rows, truncated) = match simulated_rows(n, now_ns(), &limits) {
            Ok(r) => r,
            Err(e) => return refuse(core, &tenant, e),
        };
        match store(core, req, &tenant, rows, truncated).await {
            Ok(k) => stored += k,
            Err(r) if stored == 0 => break Err(r),
            Err(r) => {
                eprintln!("POST /simulate: {stored} of {count} lines stored before a refusal");
                break Err(r);
            }
        }
        left -= n;
    };
    match outcome {
        Ok(n) => {
            let took = started.elapsed();
            let throughput = n as f64 / took.as_secs_f64().max(1e-9);
            let body = format!(
                r#"{{"generated":{n},"duration_ms":{},"throughput":{:.0}}}"#,
                took.as_millis(),
                throughput
            );
            Response::json(200, body.into_bytes())
        }
        Err(r) => as_json(r),
    }
}

/// `count` generated lines in the demo's shape: the harness's realistic lines, one kind
/// after another, each with its kind's service and the level Loki would detect in it
/// (`INFO` where it finds none), upper case as the demo writes levels. Timestamps end at
/// `now_ns`, one nanosecond apart, so that the newest line is the last generated. Each line
/// passes the same validation as an `/ingest` entry.
pub fn simulated_rows(
    count: usize,
    now_ns: i64,
    limits: &PushLimits,
) -> Result<(Vec<(Labels, PushEntry)>, Truncated), PushError> {
    let mut source = LineSource::new(&LineCorpus::default(), now_ns as u64);
    let kinds = SIMULATED_SERVICES.len();
    // Label sets repeat: (service, level) pairs are few, validated once each.
    let mut known: Vec<((usize, &'static str), Labels)> = Vec::new();
    let mut rows = Vec::with_capacity(count);
    let mut truncated = Truncated::default();
    let mut line = String::new();
    for i in 0..count {
        let k = i % kinds;
        line.clear();
        source.next_line(k, &mut line);
        let level = demo_level(crate::ingest::discovery::level::from_line(&line));
        let labels = match known.iter().find(|(key, _)| *key == (k, level)) {
            Some((_, l)) => l.clone(),
            None => {
                let pairs = vec![
                    (LEVEL_LABEL.to_string(), level.to_string()),
                    (SERVICE_LABEL.to_string(), SIMULATED_SERVICES[k].to_string()),
                ];
                let shown = display_pairs(&pairs);
                let l = validate::labels(pairs, &shown, limits).map_err(|v| v.refusing(count))?;
                known.push(((k, level), l.clone()));
                l
            }
        };
        let mut entry = PushEntry {
            timestamp_ns: now_ns - (count - 1 - i) as i64,
            line: line.clone(),
            metadata: vec![("source".to_string(), "simulate".to_string())],
        };
        truncated.add(validate::fit_line(&mut entry, limits));
        validate::entry(&entry, &labels, limits).map_err(|v| v.refusing(count))?;
        rows.push((labels, entry));
    }
    Ok((rows, truncated))
}

/// The demo's spelling of a level Loki detects.
fn demo_level(detected: &str) -> &'static str {
    match detected {
        "trace" | "debug" => "DEBUG",
        "warn" => "WARN",
        "error" => "ERROR",
        "critical" | "fatal" => "CRITICAL",
        _ => "INFO",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::discovery::Discovery;

    fn limits() -> PushLimits {
        PushLimits {
            body_bytes_max: 1 << 20,
            line_bytes_max: 256 * 1024,
            labels_per_stream_max: 15,
            label_name_bytes_max: 1024,
            label_value_bytes_max: 2048,
            truncate_long_lines: false,
            service_name_from: Discovery::loki_defaults().service_name_from,
        }
    }

    #[test]
    fn simulated_lines_are_demo_shaped() {
        let (rows, truncated) = simulated_rows(1_000, 5_000_000_000, &limits()).unwrap();
        assert_eq!(rows.len(), 1_000);
        assert_eq!(truncated.lines, 0);
        assert_eq!(rows.last().unwrap().1.timestamp_ns, 5_000_000_000);
        assert!(
            rows.windows(2)
                .all(|w| w[0].1.timestamp_ns < w[1].1.timestamp_ns)
        );
        let mut services = std::collections::BTreeSet::new();
        let mut levels = std::collections::BTreeSet::new();
        for (labels, e) in &rows {
            assert!(!e.line.is_empty());
            services.insert(labels.get("service_name").unwrap().to_string());
            levels.insert(labels.get("level").unwrap().to_string());
        }
        assert_eq!(services.len(), SIMULATED_SERVICES.len());
        assert!(levels.contains("INFO"), "{levels:?}");
        assert!(levels.len() >= 2, "{levels:?}");
        assert!(levels.iter().all(|l| l == &l.to_uppercase()));
    }
}

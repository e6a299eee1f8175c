//! Loss verification: after the load, the harness asks the server through its query API
//! (`/loki/api/v1/index/stats` over the run's own streams) how many lines it holds, and
//! compares that with what the senders know was acknowledged or sent.
//!
//! - Push: every acknowledged line must be stored; lines of requests whose fate is unknown
//!   (a transport error after the body went out) may or may not be. Anything outside
//!   `acked ..= acked + unknown` fails the run.
//! - Syslog TCP has no acknowledgement: every line written whole to the socket must be
//!   stored once the server has read and committed it (a frame cut by a write error may be).
//! - Syslog UDP may lose datagrams under overload, by design; the server counts the kernel's
//!   drops. The run fails only when stored + dropped falls short of sent (a loss nobody
//!   counted) or more is stored than was sent.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::http::{HttpClient, encode_query};
use super::target::metric_sum;

/// The longest the verification waits for the server to store what was sent. Syslog TCP
/// data sits in socket buffers and the server's batches when the senders stop: seconds at
/// most; two minutes means lines are missing, not late.
pub const VERIFY_TIMEOUT_MS: u64 = 120_000;
/// The verification gives up earlier when the stored count has not moved for this long.
pub const VERIFY_STALL_MS: u64 = 10_000;
/// UDP: a datagram is stored within milliseconds or never; when the count has not moved for
/// this long the rest is taken as dropped.
pub const UDP_SETTLE_MS: u64 = 2_000;
/// How often the server is asked: fine enough to time "all stored" to a few milliseconds.
pub const VERIFY_POLL_MS: u64 = 20;
/// The query range around the run: syslog timestamps come from the message (second
/// precision for RFC 3164), so a day on either side covers any clock detail.
const RANGE_SLACK_NS: i64 = 86_400 * 1_000_000_000;

/// What the server should hold for one source of the run.
#[derive(Clone, Debug, PartialEq)]
pub struct Expectation {
    pub source: &'static str,
    /// LogQL selector of exactly this run's streams of this source.
    pub selector: String,
    pub kind: ExpectKind,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ExpectKind {
    /// `expected` lines must be stored; up to `unknown` more may be.
    Exact { expected: u64, unknown: u64 },
    /// UDP: `sent` datagrams, some of which the kernel may have dropped.
    Datagrams { sent: u64 },
}

/// The outcome for one source.
#[derive(Clone, Debug, Serialize)]
pub struct Check {
    pub source: &'static str,
    pub selector: String,
    pub expected_min: u64,
    pub expected_max: u64,
    pub stored: u64,
    pub streams_stored: u64,
    /// UDP only: datagrams the kernel dropped at the server's sockets during the run.
    pub kernel_drops: Option<u64>,
    pub passed: bool,
    pub message: String,
    /// Milliseconds from the start of the load until everything expected was stored.
    pub stored_after_ms: Option<u64>,
}

/// Judges a stored count against an expectation: pass or fail, and why.
pub fn judge(kind: ExpectKind, stored: u64, kernel_drops: u64) -> (bool, String) {
    match kind {
        ExpectKind::Exact { expected, unknown } => {
            let max = expected + unknown;
            if stored < expected {
                (
                    false,
                    format!(
                        "LOSS: {} of {expected} acknowledged/sent lines are not stored (stored {stored})",
                        expected - stored
                    ),
                )
            } else if stored > max {
                (
                    false,
                    format!(
                        "DUPLICATES: stored {stored} lines, more than the {expected} sent{}",
                        if unknown > 0 {
                            format!(" plus {unknown} of uncertain fate")
                        } else {
                            String::new()
                        }
                    ),
                )
            } else if unknown > 0 {
                (
                    true,
                    format!(
                        "all {expected} acknowledged lines stored; {} of {unknown} lines of failed requests were stored too",
                        stored - expected
                    ),
                )
            } else {
                (true, format!("all {expected} lines stored, no loss"))
            }
        }
        ExpectKind::Datagrams { sent } => {
            if stored > sent {
                (
                    false,
                    format!(
                        "DUPLICATES: stored {stored} lines, more than the {sent} datagrams sent"
                    ),
                )
            } else if stored + kernel_drops < sent {
                (
                    false,
                    format!(
                        "LOSS: sent {sent}, stored {stored}, kernel dropped {kernel_drops}: {} datagrams lost without being counted",
                        sent - stored - kernel_drops
                    ),
                )
            } else if stored < sent {
                (
                    true,
                    format!(
                        "sent {sent}, stored {stored}, the kernel dropped {} (counted by the server; UDP loss under overload is expected)",
                        sent - stored
                    ),
                )
            } else {
                (true, format!("all {sent} datagrams stored, no drops"))
            }
        }
    }
}

impl ExpectKind {
    fn bounds(self) -> (u64, u64) {
        match self {
            ExpectKind::Exact { expected, unknown } => (expected, expected + unknown),
            ExpectKind::Datagrams { sent } => (0, sent),
        }
    }

    /// Whether waiting longer cannot change the verdict for the better.
    fn settled(self, stored: u64, drops: u64) -> bool {
        match self {
            ExpectKind::Exact { expected, .. } => stored >= expected,
            ExpectKind::Datagrams { sent } => stored + drops >= sent,
        }
    }
}

/// Index stats for a selector: (entries, streams).
pub fn index_stats(
    client: &mut HttpClient,
    tenant: &str,
    selector: &str,
    start_ns: i64,
) -> Result<(u64, u64), String> {
    let start = (start_ns - RANGE_SLACK_NS).to_string();
    let end = (crate::ingest::listeners::now_ns() + RANGE_SLACK_NS).to_string();
    let qs = encode_query(&[("query", selector), ("start", &start), ("end", &end)]);
    let r = client
        .request(
            "GET",
            &format!("/loki/api/v1/index/stats?{qs}"),
            &[("X-Scope-OrgID", tenant)],
            b"",
        )
        .map_err(|e| format!("index/stats: {e}"))?;
    if r.status != 200 {
        return Err(format!("index/stats answered {}: {}", r.status, r.text()));
    }
    let v: serde_json::Value =
        serde_json::from_slice(&r.body).map_err(|e| format!("index/stats is not JSON: {e}"))?;
    let field = |name: &str| v.get(name).and_then(|x| x.as_u64());
    match (field("entries"), field("streams")) {
        (Some(e), Some(s)) => Ok((e, s)),
        _ => Err(format!("index/stats lacks entries/streams: {}", r.text())),
    }
}

/// The server's count of kernel UDP drops (`shardlog_udp_dropped_total`).
pub fn udp_drops(client: &mut HttpClient) -> Result<u64, String> {
    let r = client
        .request("GET", "/metrics", &[], b"")
        .map_err(|e| format!("/metrics: {e}"))?;
    if r.status != 200 {
        return Err(format!("/metrics answered {}", r.status));
    }
    Ok(metric_sum(&r.text(), "shardlog_udp_dropped_total").unwrap_or(0.0) as u64)
}

/// Polls the server until every expectation is settled, nothing has moved for a while, or
/// [`VERIFY_TIMEOUT_MS`]; then judges each. `drops_before` is the UDP drop counter before
/// the load, `load_start` when it began.
pub fn wait_and_check(
    http: SocketAddr,
    tenant: &str,
    expectations: &[Expectation],
    start_ns: i64,
    load_start: Instant,
    drops_before: u64,
) -> Result<Vec<Check>, String> {
    let mut client = HttpClient::new(http);
    let began = Instant::now();
    let udp = expectations
        .iter()
        .any(|e| matches!(e.kind, ExpectKind::Datagrams { .. }));
    let stall = Duration::from_millis(if udp { UDP_SETTLE_MS } else { VERIFY_STALL_MS });
    let mut last: Vec<(u64, u64)> = vec![(0, 0); expectations.len()];
    let mut settled_at: Vec<Option<Duration>> = vec![None; expectations.len()];
    let mut last_change = Instant::now();
    let mut drops = 0;
    loop {
        if udp {
            drops = udp_drops(&mut client)?.saturating_sub(drops_before);
        }
        let mut all_settled = true;
        for (i, e) in expectations.iter().enumerate() {
            let now = index_stats(&mut client, tenant, &e.selector, start_ns)?;
            if now != last[i] {
                last[i] = now;
                last_change = Instant::now();
            }
            let settled = e.kind.settled(now.0, drops);
            if settled && settled_at[i].is_none() {
                settled_at[i] = Some(load_start.elapsed());
            }
            all_settled &= settled;
        }
        let waited = began.elapsed();
        if all_settled
            || last_change.elapsed() >= stall
            || waited >= Duration::from_millis(VERIFY_TIMEOUT_MS)
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(VERIFY_POLL_MS));
    }
    // Once settled, a last look after a pause catches lines beyond the expected count
    // (duplicates) that were still on their way.
    std::thread::sleep(Duration::from_millis(VERIFY_POLL_MS * 10));
    let mut checks = Vec::new();
    for (i, e) in expectations.iter().enumerate() {
        let (stored, streams) = index_stats(&mut client, tenant, &e.selector, start_ns)?;
        let d = if udp {
            udp_drops(&mut client)?.saturating_sub(drops_before)
        } else {
            0
        };
        let (passed, message) = judge(e.kind, stored, d);
        let (min, max) = e.kind.bounds();
        checks.push(Check {
            source: e.source,
            selector: e.selector.clone(),
            expected_min: min,
            expected_max: max,
            stored,
            streams_stored: streams,
            kernel_drops: matches!(e.kind, ExpectKind::Datagrams { .. }).then_some(d),
            passed,
            message,
            stored_after_ms: settled_at[i].map(|t| t.as_millis() as u64),
        });
    }
    Ok(checks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_expectations() {
        let k = ExpectKind::Exact {
            expected: 100,
            unknown: 0,
        };
        assert!(judge(k, 100, 0).0);
        let (ok, msg) = judge(k, 97, 0);
        assert!(!ok && msg.contains("3 of 100"), "{msg}");
        let (ok, msg) = judge(k, 101, 0);
        assert!(!ok && msg.contains("DUPLICATES"), "{msg}");
        let k = ExpectKind::Exact {
            expected: 100,
            unknown: 50,
        };
        assert!(judge(k, 100, 0).0);
        assert!(judge(k, 150, 0).0);
        assert!(!judge(k, 151, 0).0);
        assert!(!judge(k, 99, 0).0);
        // Kernel drops never excuse a loss on a reliable transport.
        assert!(
            !judge(
                ExpectKind::Exact {
                    expected: 10,
                    unknown: 0
                },
                5,
                5
            )
            .0
        );
    }

    #[test]
    fn udp_expectations() {
        let k = ExpectKind::Datagrams { sent: 1000 };
        assert!(judge(k, 1000, 0).0);
        let (ok, msg) = judge(k, 900, 100);
        assert!(ok && msg.contains("dropped 100"), "{msg}");
        let (ok, msg) = judge(k, 900, 40);
        assert!(!ok && msg.contains("60 datagrams lost"), "{msg}");
        assert!(!judge(k, 1001, 0).0);
        assert!(k.settled(900, 100) && !k.settled(900, 99));
    }
}

//! Loki push senders: one thread per sender, one keep-alive connection per server
//! incarnation, one request in flight, each request a batch of marked lines spread over its
//! lane's streams, encoded as JSON or as protobuf in raw snappy, as Loki clients send them.
//!
//! Every batch goes into the sender's ledger with how it ended. A failure while the server
//! was up is a suspect (see [`super::findings`]): pushes are valid, so a 5xx, a 4xx other
//! than 429, or a refused connection while `/ready` said 200 is the server's fault. A 503 is
//! not: it is the server's backpressure when its heads are full.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::Shared;
use super::lanes::{Lane, Rng, SALT_THREAD, line_text, mix, stream_index, stream_labels};
use super::ledger::{BatchRecord, Outcome, WorkerLedger};
use crate::bench::http::{HttpClient, HttpError};
use crate::bench::rate::TokenBucket;
use crate::bench::stats::new_histogram;
use crate::ingest::listeners::now_ns;
use crate::ingest::push::{PushEntry, PushStream, json, proto};
use crate::model::Labels;

/// The first pause after a failed push; doubled per consecutive failure up to the maximum,
/// so that a refusing server is not hammered and a restarted one is found again quickly.
const BACKOFF_MS_MIN: u64 = 10;
const BACKOFF_MS_MAX: u64 = 500;
/// Acknowledged lines kept for the query workers' read-your-acks checks: the newest few
/// hundred, which is where a line moves from a head into a part.
pub const ACK_SAMPLES_MAX: usize = 512;
/// One in this many acknowledged small batches gives a sample (every large batch does):
/// a few samples per second at the default rate.
const SAMPLE_SMALL_ONE_IN: u64 = 8;
/// How far beyond the retention window old lines lie: at least an hour (so that their
/// whole partition, an hour wide, is older than the window) plus up to two more.
const OLD_BEYOND_RETENTION_S_MIN: u64 = 3600;
const OLD_BEYOND_RETENTION_S_MAX: u64 = 3 * 3600;

/// An acknowledged line a query must find exactly once while the server is up.
#[derive(Debug, Clone)]
pub struct AckSample {
    pub tenant: &'static str,
    pub labels: Labels,
    pub marker: String,
    pub line: String,
    pub ts_ns: i64,
    /// The incarnation that acknowledged it.
    pub incarnation: u32,
}

/// The newest acknowledged samples, shared by senders and query workers.
#[derive(Debug, Default)]
pub struct AckSamples(Mutex<VecDeque<AckSample>>);

impl AckSamples {
    pub fn push(&self, s: AckSample) {
        let mut q = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if q.len() == ACK_SAMPLES_MAX {
            q.pop_front();
        }
        q.push_back(s);
    }

    /// The newest sample (a line that may still be in a head) or the oldest kept (one that
    /// has probably been sealed since); removed, so that each is checked once.
    pub fn take(&self, newest: bool) -> Option<AckSample> {
        let mut q = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if newest { q.pop_back() } else { q.pop_front() }
    }
}

/// What one push sender did: its ledger and its acknowledgement latencies (µs).
pub struct PushResult {
    pub ledger: WorkerLedger,
    pub ack_latency: Histogram<u64>,
}

/// Classifies a push's result (the same rule as the benchmark's senders).
fn outcome_of(result: &Result<u16, &HttpError>) -> Outcome {
    use crate::bench::load_push::{PushOutcome, classify};
    match classify(result) {
        PushOutcome::Acked => Outcome::Acked,
        PushOutcome::Refused => Outcome::Refused,
        PushOutcome::Unknown => Outcome::Unknown,
        PushOutcome::NotSent => Outcome::NotSent,
    }
}

/// The streams of a batch: lines `first .. first + n` of worker `w`, the lines of each
/// stream in sequence order, line `i` at `ts_ns + i`.
pub fn build_batch(
    shared: &Shared,
    lane: Lane,
    w: u16,
    first: u32,
    n: u32,
    ts_ns: i64,
) -> Vec<PushStream> {
    let mut by_stream: BTreeMap<u64, PushStream> = BTreeMap::new();
    for i in 0..n {
        let seq = first + i;
        let k = stream_index(shared.seed, lane, shared.streams, w, seq);
        by_stream
            .entry(k)
            .or_insert_with(|| PushStream {
                labels: stream_labels(lane, k),
                entries: Vec::new(),
            })
            .entries
            .push(PushEntry {
                timestamp_ns: ts_ns + i64::from(i),
                line: line_text(&shared.corpus.lines, shared.seed, w, seq),
                metadata: Vec::new(),
            });
    }
    by_stream.into_values().collect()
}

/// One push sender's loop, until the soak's load ends.
pub fn push_worker(w: u16, lane: Lane, share_permille: u64, shared: Arc<Shared>) -> PushResult {
    let mut ledger = WorkerLedger::new(w, lane);
    let mut ack_latency = new_histogram();
    let mut rng = Rng::new(mix(shared.seed, w, 0, SALT_THREAD));
    let rate = (shared.rate * share_permille / 1000).max(1);
    let bucket = TokenBucket::new(rate, Instant::now());
    let life = &shared.life;
    let mut client: Option<(u32, HttpClient)> = None;
    let mut failures = 0u32;
    loop {
        let (low, high) = lane.batch_lines();
        let n = rng.between(low, high);
        if life.is_over() || !bucket.acquire(n, shared.deadline) {
            break;
        }
        let Some(turn) = life.begin_waiting() else {
            break;
        };
        if client.as_ref().is_none_or(|(i, _)| *i != turn.incarnation) {
            client = Some((turn.incarnation, HttpClient::new(turn.endpoints.http)));
        }
        let (_, http) = client.as_mut().expect("a client for this incarnation");
        let n = n as u32;
        let first = ledger.reserve(n);
        let ts_ns = match lane {
            Lane::Old => {
                let beyond = rng.between(OLD_BEYOND_RETENTION_S_MIN, OLD_BEYOND_RETENTION_S_MAX);
                now_ns() - (shared.retention.as_secs() + beyond) as i64 * 1_000_000_000
            }
            _ => now_ns(),
        };
        let streams = build_batch(&shared, lane, w, first, n, ts_ns);
        let protobuf = match lane {
            Lane::ProtoSmall | Lane::ProtoLarge => true,
            Lane::Old => rng.one_in(2),
            _ => false,
        };
        let (body, content_type) = match protobuf {
            true => (proto::encode(&streams), "application/x-protobuf"),
            false => (json::encode(&streams), "application/json"),
        };
        let headers = [
            ("Content-Type", content_type),
            ("X-Scope-OrgID", lane.tenant()),
        ];
        let sent = Instant::now();
        let result = http.request("POST", "/loki/api/v1/push", &headers, &body);
        let latency = sent.elapsed();
        let outcome = outcome_of(&result.as_ref().map(|r| r.status));
        ledger.record(BatchRecord {
            first_seq: first,
            lines: n,
            ts_ns,
            outcome,
            incarnation: turn.incarnation,
            conn: 0,
        });
        shared.tallies.count(lane, u64::from(n), outcome);
        if outcome == Outcome::Acked {
            ack_latency.saturating_record((latency.as_micros() as u64).max(1));
            failures = 0;
            let sample = matches!(lane, Lane::JsonLarge | Lane::ProtoLarge)
                || (lane != Lane::Old && rng.one_in(SAMPLE_SMALL_ONE_IN));
            if sample {
                let i = rng.between(0, u64::from(n) - 1) as u32;
                let seq = first + i;
                let k = stream_index(shared.seed, lane, shared.streams, w, seq);
                shared.samples.push(AckSample {
                    tenant: lane.tenant(),
                    labels: stream_labels(lane, k),
                    marker: super::lanes::marker(w, seq),
                    line: line_text(&shared.corpus.lines, shared.seed, w, seq),
                    ts_ns: ts_ns + i64::from(i),
                    incarnation: turn.incarnation,
                });
            }
            continue;
        }
        let answer = match &result {
            Ok(r) => format!(
                "answered {}: {}",
                r.status,
                r.text().trim().chars().take(200).collect::<String>()
            ),
            Err(e) => e.to_string(),
        };
        let fault = match &result {
            Ok(r) => r.status != 503 && r.status != 429,
            Err(_) => true,
        };
        if fault && turn.up_throughout() {
            shared.findings.suspect(
                turn.incarnation,
                "push-failed-while-ready",
                format!(
                    "{} push of {n} lines (soak={w}.{first}..) to incarnation {} {answer} after {latency:?} while the server was ready",
                    lane.name(),
                    turn.incarnation
                ),
            );
        }
        drop(turn);
        failures += 1;
        let pause = (BACKOFF_MS_MIN << failures.min(6)).min(BACKOFF_MS_MAX);
        std::thread::sleep(Duration::from_millis(pause));
    }
    PushResult {
        ledger,
        ack_latency,
    }
}

//! Loki push senders: one thread per HTTP/1.1 keep-alive connection, one request in flight,
//! each request a batch of lines spread over the run's streams, encoded as Loki clients
//! encode it (JSON, or protobuf in a raw snappy block), with every acknowledgement's latency
//! recorded.
//!
//! Stream `k` is `{bench_run="<run id>", service="<kind>", instance="i<k>"}`, so the
//! verification counts exactly this run's lines with `{bench_run="<run id>"}`. OTLP has no
//! free-form labels (only Loki's list of resource attributes becomes labels), so an OTLP
//! run's stream `k` is the resource `service.namespace=<run id>, service.name=<kind>,
//! service.instance.id=i<k>`, counted with `{service_namespace="<run id>"}`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use super::http::{HttpClient, HttpError};
use super::lines::{LineCorpus, LineSource, unix_now_secs};
use super::options::Encoding;
use super::rate::{Budget, TokenBucket};
use super::stats::{LatencyRecorder, SharedHistogram, SourceCounters};
use super::{ErrorLog, sender_backoff};
use crate::ingest::push::{PushEntry, PushStream, json, proto};
use crate::model::Labels;

/// The label that tags every stream of a run with the run id.
pub const RUN_LABEL: &str = "bench_run";

/// What every push sender of a run shares.
#[derive(Clone)]
pub struct PushLoad {
    pub run_id: String,
    pub tenant: String,
    pub corpus: LineCorpus,
    pub streams: usize,
    pub batch: usize,
    pub encoding: Encoding,
    pub budget: Arc<Budget>,
    pub bucket: Option<Arc<TokenBucket>>,
    pub counters: Arc<SourceCounters>,
    pub latency: Arc<SharedHistogram>,
    pub errors: Arc<ErrorLog>,
    /// When the load started, and the latest acknowledgement since then (µs).
    pub started: Instant,
    pub last_ack_us: Arc<AtomicU64>,
}

/// The matcher that picks exactly one run's streams, by how its lines are sent.
pub fn run_matcher(encoding: Encoding, run_id: &str) -> String {
    match encoding {
        Encoding::Otlp => format!(r#"service_namespace="{run_id}""#),
        Encoding::Json | Encoding::Protobuf => format!(r#"{RUN_LABEL}="{run_id}""#),
    }
}

/// The labels of stream `k` of a run.
pub fn stream_labels(run_id: &str, corpus: &LineCorpus, k: usize) -> Labels {
    Labels::from_pairs([
        (RUN_LABEL, run_id.to_string()),
        ("service", corpus.kind_name(k).to_string()),
        ("instance", format!("i{k}")),
    ])
}

/// How a push request ended, for the counters and the verification bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    /// 2xx: every line is durable.
    Acked,
    /// The server refused it (4xx, 429, 503 while not ready): nothing was stored.
    Refused,
    /// A 5xx other than 503, or no answer after the body went out: it may have been stored.
    Unknown,
    /// The request never went out whole: nothing was stored.
    NotSent,
}

/// Classifies a request's result.
pub fn classify(result: &Result<u16, &HttpError>) -> PushOutcome {
    match result {
        Ok(200..=299) => PushOutcome::Acked,
        Ok(503) | Ok(400..=499) => PushOutcome::Refused,
        Ok(_) => PushOutcome::Unknown,
        Err(HttpError::NotSent(_)) => PushOutcome::NotSent,
        Err(HttpError::NoResponse(_)) => PushOutcome::Unknown,
    }
}

/// One connection's sender loop.
pub fn push_sender(index: usize, addr: SocketAddr, load: PushLoad) {
    let mut client = HttpClient::new(addr);
    let mut src = LineSource::new(&load.corpus, 0x9054_0000 + index as u64);
    let mut recorder = LatencyRecorder::new(load.latency.clone());
    let labels: Vec<Labels> = (0..load.streams)
        .map(|k| stream_labels(&load.run_id, &load.corpus, k))
        .collect();
    let (content_type, path) = match load.encoding {
        Encoding::Json => ("application/json", "/loki/api/v1/push"),
        Encoding::Protobuf => ("application/x-protobuf", "/loki/api/v1/push"),
        Encoding::Otlp => ("application/x-protobuf", "/otlp/v1/logs"),
    };
    let headers = [
        ("Content-Type", content_type),
        ("X-Scope-OrgID", load.tenant.as_str()),
    ];
    let mut next_stream = index % load.streams;
    let mut clock = SenderClock::new(index);
    let mut failures = 0u32;
    let c = &load.counters;
    loop {
        let n = load
            .budget
            .take_paced(load.batch as u64, load.bucket.as_deref());
        if n == 0 {
            break;
        }
        src.set_time(unix_now_secs());
        let (streams, line_bytes) =
            build_batch(&mut src, &labels, &mut next_stream, n as usize, &mut clock);
        let body = match load.encoding {
            Encoding::Json => json::encode(&streams),
            Encoding::Protobuf => proto::encode(&streams),
            Encoding::Otlp => otlp_body(&streams),
        };
        let sent_at = Instant::now();
        let result = client.request("POST", path, &headers, &body);
        let latency = sent_at.elapsed();
        let outcome = classify(&result.as_ref().map(|r| r.status));
        SourceCounters::add(&c.requests, 1);
        if outcome != PushOutcome::NotSent {
            SourceCounters::add(&c.lines_sent, n);
            SourceCounters::add(&c.line_bytes, line_bytes);
            SourceCounters::add(&c.wire_bytes, body.len() as u64);
        }
        match outcome {
            PushOutcome::Acked => {
                recorder.record(latency);
                SourceCounters::add(&c.lines_acked, n);
                let at = load.started.elapsed().as_micros() as u64;
                load.last_ack_us.fetch_max(at, Ordering::Relaxed);
                failures = 0;
                continue;
            }
            PushOutcome::Refused => SourceCounters::add(&c.lines_refused, n),
            PushOutcome::Unknown => SourceCounters::add(&c.lines_unknown, n),
            PushOutcome::NotSent => load.budget.give_back(n),
        }
        SourceCounters::add(&c.errors, 1);
        load.errors.note(match &result {
            Ok(r) => format!(
                "push answered {}: {}",
                r.status,
                r.text().chars().take(300).collect::<String>()
            ),
            Err(e) => format!("push to {addr}: {e}"),
        });
        failures += 1;
        if !sender_backoff(&load.budget, failures) {
            break;
        }
    }
}

/// Nanoseconds between two timestamps of one sender. Sender `i` uses only the nanoseconds
/// equal to `i` modulo this, and never goes back in time, so no two entries of a run share a
/// stream, a timestamp and a line: the server drops such an exact duplicate, as Loki does,
/// and verification would count it as lost.
pub const TIMESTAMP_STRIDE: i64 = 1024;

/// The timestamps one sender gives its entries (see [`TIMESTAMP_STRIDE`]).
pub struct SenderClock {
    lane: i64,
    next_ns: i64,
}

impl SenderClock {
    pub fn new(sender: usize) -> SenderClock {
        SenderClock {
            lane: sender as i64 % TIMESTAMP_STRIDE,
            next_ns: 0,
        }
    }

    /// The first timestamp of a batch of `n` entries (then one every stride), from now.
    fn batch_start(&mut self, n: usize) -> i64 {
        let now = crate::ingest::listeners::now_ns();
        let start = (now - now.rem_euclid(TIMESTAMP_STRIDE) + self.lane).max(self.next_ns);
        self.next_ns = start + n as i64 * TIMESTAMP_STRIDE;
        start
    }
}

/// Builds one request's streams from `n` lines dealt round-robin over the run's streams,
/// starting at `next_stream`; returns them and the bytes of their lines.
pub fn build_batch(
    src: &mut LineSource,
    labels: &[Labels],
    next_stream: &mut usize,
    n: usize,
    clock: &mut SenderClock,
) -> (Vec<PushStream>, u64) {
    let used = n.min(labels.len());
    let mut streams: Vec<PushStream> = (0..used)
        .map(|j| PushStream {
            labels: labels[(*next_stream + j) % labels.len()].clone(),
            entries: Vec::with_capacity(n / used + 1),
        })
        .collect();
    let base_ns = clock.batch_start(n);
    let mut bytes = 0u64;
    for j in 0..n {
        let k = (*next_stream + j) % labels.len();
        let mut line = String::new();
        src.next_line(k, &mut line);
        bytes += line.len() as u64;
        streams[j % used].entries.push(PushEntry {
            timestamp_ns: base_ns + j as i64 * TIMESTAMP_STRIDE,
            line,
            metadata: Vec::new(),
        });
    }
    *next_stream = (*next_stream + n) % labels.len();
    (streams, bytes)
}

/// One OTLP export request of `streams`, each a resource (see the module doc) with one scope
/// whose records are the stream's entries: the body a string, the time the entry's.
pub fn otlp_body(streams: &[PushStream]) -> Vec<u8> {
    use crate::ingest::otlp::proto::opentelemetry::proto::{
        collector::logs::v1::ExportLogsServiceRequest,
        common::v1::{AnyValue, KeyValue, any_value::Value},
        logs::v1::{LogRecord, ResourceLogs, ScopeLogs},
        resource::v1::Resource,
    };
    use prost::Message;
    let text = |s: &str| AnyValue {
        value: Some(Value::StringValue(s.to_string())),
    };
    let attribute = |key: &str, value: Option<&str>| KeyValue {
        key: key.to_string(),
        value: Some(text(value.unwrap_or_default())),
        ..Default::default()
    };
    let request = ExportLogsServiceRequest {
        resource_logs: streams
            .iter()
            .map(|s| ResourceLogs {
                resource: Some(Resource {
                    attributes: vec![
                        attribute("service.namespace", s.labels.get(RUN_LABEL)),
                        attribute("service.name", s.labels.get("service")),
                        attribute("service.instance.id", s.labels.get("instance")),
                    ],
                    ..Default::default()
                }),
                scope_logs: vec![ScopeLogs {
                    log_records: s
                        .entries
                        .iter()
                        .map(|e| LogRecord {
                            time_unix_nano: e.timestamp_ns as u64,
                            body: Some(text(&e.line)),
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                }],
                ..Default::default()
            })
            .collect(),
    };
    request.encode_to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::push::PushLimits;

    #[test]
    fn otlp_batches_map_to_one_stream_per_resource() {
        use crate::ingest::otlp::mapping::map_request;
        use crate::ingest::otlp::proto::opentelemetry::proto::collector::logs::v1::ExportLogsServiceRequest;
        use prost::Message;
        let corpus = LineCorpus::default();
        let labels: Vec<Labels> = (0..3).map(|k| stream_labels("r1", &corpus, k)).collect();
        let mut src = LineSource::new(&corpus, 3);
        let mut clock = SenderClock::new(0);
        let (streams, _) = build_batch(&mut src, &labels, &mut 0, 9, &mut clock);
        let body = otlp_body(&streams);
        let request = ExportLogsServiceRequest::decode(&body[..]).unwrap();
        let mapped = map_request(request, 0, &PushLimits::default());
        assert_eq!(mapped.streams.len(), 3);
        for (sent, got) in streams.iter().zip(&mapped.streams) {
            assert_eq!(got.labels.get("service_namespace"), Some("r1"));
            assert_eq!(got.labels.get("service_name"), sent.labels.get("service"));
            assert_eq!(
                got.labels.get("service_instance_id"),
                sent.labels.get("instance")
            );
            let lines: Vec<&str> = got.entries.iter().map(|e| e.line.as_str()).collect();
            let want: Vec<&str> = sent.entries.iter().map(|e| e.line.as_str()).collect();
            assert_eq!(lines, want);
        }
        assert_eq!(
            run_matcher(Encoding::Otlp, "r1"),
            r#"service_namespace="r1""#
        );
    }

    #[test]
    fn batches_spread_over_streams_and_decode() {
        let corpus = LineCorpus::default();
        let labels: Vec<Labels> = (0..3).map(|k| stream_labels("r1", &corpus, k)).collect();
        let mut src = LineSource::new(&corpus, 3);
        let mut next = 2;
        let mut clock = SenderClock::new(0);
        let (streams, bytes) = build_batch(&mut src, &labels, &mut next, 7, &mut clock);
        assert_eq!(next, (2 + 7) % 3);
        assert_eq!(streams.len(), 3);
        assert_eq!(streams.iter().map(|s| s.entries.len()).sum::<usize>(), 7);
        assert_eq!(streams[0].labels.get("instance"), Some("i2"));
        assert_eq!(streams[0].labels.get(RUN_LABEL), Some("r1"));
        let total: usize = streams
            .iter()
            .flat_map(|s| &s.entries)
            .map(|e| e.line.len())
            .sum();
        assert_eq!(total as u64, bytes);
        // Both encodings decode back, as the server will decode them.
        let limits = PushLimits::default();
        assert_eq!(
            json::decode(&json::encode(&streams), &limits)
                .unwrap()
                .streams,
            streams
        );
        assert_eq!(
            proto::decode(&proto::encode(&streams), &limits)
                .unwrap()
                .streams,
            streams
        );
        // Fewer lines than streams: one stream per line.
        let (few, _) = build_batch(&mut src, &labels, &mut next, 2, &mut clock);
        assert_eq!(few.len(), 2);
    }

    #[test]
    fn senders_never_share_a_timestamp_and_never_go_back() {
        let mut clocks: Vec<SenderClock> = (0..4).map(SenderClock::new).collect();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..50 {
            for clock in &mut clocks {
                let start = clock.batch_start(100);
                for j in 0..100 {
                    let ts = start + j * TIMESTAMP_STRIDE;
                    assert!(seen.insert(ts), "timestamp {ts} given twice");
                }
                assert!(clock.next_ns > start);
            }
        }
    }

    #[test]
    fn outcomes() {
        let io = || std::io::Error::other("x");
        assert_eq!(classify(&Ok(204)), PushOutcome::Acked);
        assert_eq!(classify(&Ok(400)), PushOutcome::Refused);
        assert_eq!(classify(&Ok(429)), PushOutcome::Refused);
        assert_eq!(classify(&Ok(503)), PushOutcome::Refused);
        assert_eq!(classify(&Ok(500)), PushOutcome::Unknown);
        assert_eq!(
            classify(&Err(&HttpError::NotSent(io()))),
            PushOutcome::NotSent
        );
        assert_eq!(
            classify(&Err(&HttpError::NoResponse(io()))),
            PushOutcome::Unknown
        );
    }
}

//! Checking what the server holds against what the soak sent.
//!
//! - After each restart, before the load resumes: a cheap bound per tenant from
//!   `/index/stats` (at least every acknowledged line, at most every line that may have
//!   reached the server).
//! - At the end: every line of every tenant is read back through `query_range`, page by page
//!   in forward order, and each one is identified by its marker and checked: its stream, its
//!   text and its timestamp must be the ones it was sent with, and the number of times each
//!   line is stored must fit its batch's outcome (see [`super::ledger`]). The count read
//!   back must equal what `/index/stats` says.
//!
//! Paging: a page of [`PAGE_ENTRIES`] entries ends at some timestamp `t`; the entries at `t`
//! may go on in the next page, so a full page keeps only its entries before `t`, and the
//! next page starts at `t` (inclusive). Every timestamp's entries are thus counted in one
//! page, and a duplicate is seen as a duplicate, never as a re-read.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde_json::Value;

use super::findings::Findings;
use super::lanes::{
    SYSLOG_PROCID_BASE, expected_labels, lane_of, line_text, parse_marker, stream_index,
};
use super::ledger::{Expect, WorkerLedger};
use crate::bench::http::{HttpClient, encode_query};
use crate::config::QUERY_ENTRIES_MAX;
use crate::model::Labels;

/// Entries per read-back page: the most one query may return.
pub const PAGE_ENTRIES: u32 = QUERY_ENTRIES_MAX;

/// Entries and streams of a selector in `[start_ns, end_ns]` from `/index/stats`.
pub fn index_stats(
    http: SocketAddr,
    tenant: &str,
    selector: &str,
    start_ns: i64,
    end_ns: i64,
) -> Result<u64, String> {
    let qs = encode_query(&[
        ("query", selector),
        ("start", &start_ns.to_string()),
        ("end", &end_ns.to_string()),
    ]);
    let r = HttpClient::new(http)
        .request(
            "GET",
            &format!("/loki/api/v1/index/stats?{qs}"),
            &[("X-Scope-OrgID", tenant)],
            b"",
        )
        .map_err(|e| format!("index/stats of {selector} (tenant {tenant}): {e}"))?;
    if r.status != 200 {
        return Err(format!(
            "index/stats of {selector} (tenant {tenant}) answered {}: {}",
            r.status,
            r.text().trim()
        ));
    }
    let v: Value = serde_json::from_slice(&r.body)
        .map_err(|e| format!("index/stats of {selector}: not JSON: {e}"))?;
    v["entries"]
        .as_u64()
        .ok_or_else(|| format!("index/stats of {selector}: no entries in {v}"))
}

/// One stored entry as the read-back sees it.
pub struct Stored<'a> {
    /// The stream's labels (structured metadata apart).
    pub labels: &'a serde_json::Map<String, Value>,
    pub ts_ns: i64,
    pub line: &'a str,
    /// Structured metadata, if the entry has any.
    pub metadata: Option<&'a serde_json::Map<String, Value>>,
}

/// Asks for Loki's categorised labels, so that a stream's labels and an entry's structured
/// metadata come apart (otherwise the metadata is merged into the stream's labels).
const CATEGORIZE: (&str, &str) = ("X-Loki-Response-Encoding-Flags", "categorize-labels");
/// How often the read-back says how far it is.
const PROGRESS_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

/// The label sets of the streams of `selector` in `[start_ns, end_ns]` (`/series`).
pub fn series(
    client: &mut HttpClient,
    tenant: &str,
    selector: &str,
    start_ns: i64,
    end_ns: i64,
) -> Result<Vec<serde_json::Map<String, Value>>, String> {
    let qs = encode_query(&[
        ("match[]", selector),
        ("start", &start_ns.to_string()),
        ("end", &end_ns.to_string()),
    ]);
    let r = client
        .request(
            "GET",
            &format!("/loki/api/v1/series?{qs}"),
            &[("X-Scope-OrgID", tenant)],
            b"",
        )
        .map_err(|e| format!("series of {selector} (tenant {tenant}): {e}"))?;
    if r.status != 200 {
        return Err(format!(
            "series of {selector} (tenant {tenant}) answered {}: {}",
            r.status,
            r.text().trim()
        ));
    }
    let v: Value = serde_json::from_slice(&r.body)
        .map_err(|e| format!("series of {selector}: not JSON: {e}"))?;
    let list = v["data"]
        .as_array()
        .ok_or_else(|| format!("series of {selector}: no list in {v}"))?;
    list.iter()
        .map(|s| {
            s.as_object()
                .cloned()
                .ok_or_else(|| format!("series of {selector}: {s} is not a label set"))
        })
        .collect()
}

/// The selector of exactly these labels (and of any stream with more labels).
fn exact_selector(labels: &serde_json::Map<String, Value>) -> String {
    let pairs: Vec<String> = labels
        .iter()
        .map(|(k, v)| {
            let v = v.as_str().unwrap_or("");
            format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))
        })
        .collect();
    format!("{{{}}}", pairs.join(", "))
}

/// Reads every entry of `selector` in `[start_ns, end_ns]` and hands each to `visit`;
/// returns how many there were. Stream by stream (the streams from `/series`), each in
/// forward pages: a query's cost grows with the entries each stream contributes to it, so
/// one stream at a time keeps every page as cheap as its own entries.
pub fn read_all(
    http: SocketAddr,
    tenant: &str,
    selector: &str,
    start_ns: i64,
    end_ns: i64,
    mut visit: impl FnMut(Stored<'_>),
) -> Result<u64, String> {
    let mut client = HttpClient::new(http);
    let streams = series(&mut client, tenant, selector, start_ns, end_ns)?;
    let mut total = 0u64;
    let mut said = std::time::Instant::now();
    for (i, labels) in streams.iter().enumerate() {
        total += read_stream(&mut client, tenant, labels, start_ns, end_ns, &mut visit)?;
        if said.elapsed() >= PROGRESS_INTERVAL {
            println!(
                "soak: read back {total} lines of tenant {tenant}, stream {} of {}",
                i + 1,
                streams.len()
            );
            said = std::time::Instant::now();
        }
    }
    Ok(total)
}

/// Reads one stream (entries of streams with more labels, which its selector also matches,
/// are left to their own turn).
fn read_stream(
    client: &mut HttpClient,
    tenant: &str,
    labels: &serde_json::Map<String, Value>,
    start_ns: i64,
    end_ns: i64,
    visit: &mut impl FnMut(Stored<'_>),
) -> Result<u64, String> {
    let selector = exact_selector(labels);
    let mut from = start_ns;
    let mut total = 0u64;
    loop {
        let qs = encode_query(&[
            ("query", &selector),
            ("start", &from.to_string()),
            ("end", &end_ns.to_string()),
            ("limit", &PAGE_ENTRIES.to_string()),
            ("direction", "forward"),
        ]);
        let r = client
            .request(
                "GET",
                &format!("/loki/api/v1/query_range?{qs}"),
                &[("X-Scope-OrgID", tenant), CATEGORIZE],
                b"",
            )
            .map_err(|e| format!("reading back {selector} (tenant {tenant}) from {from}: {e}"))?;
        if r.status != 200 {
            return Err(format!(
                "reading back {selector} (tenant {tenant}) from {from}: answered {}: {}",
                r.status,
                r.text().trim().chars().take(300).collect::<String>()
            ));
        }
        let v: Value = serde_json::from_slice(&r.body)
            .map_err(|e| format!("reading back {selector}: not JSON: {e}"))?;
        let empty = Vec::new();
        let result = v["data"]["result"].as_array().unwrap_or(&empty);
        // Entries of this stream (a page counts toward the limit with every stream the
        // selector matched, so the page's fullness is judged over all of them).
        let mut page: Vec<Stored<'_>> = Vec::new();
        let mut page_len = 0u64;
        let mut first: Option<i64> = None;
        let mut last: Option<i64> = None;
        for s in result {
            let Some(stream) = s["stream"].as_object() else {
                return Err(format!(
                    "reading back {selector}: a result without stream labels"
                ));
            };
            for value in s["values"].as_array().unwrap_or(&empty) {
                let ts = value[0]
                    .as_str()
                    .and_then(|t| t.parse::<i64>().ok())
                    .ok_or_else(|| format!("reading back {selector}: bad timestamp in {value}"))?;
                page_len += 1;
                first = Some(first.map_or(ts, |f: i64| f.min(ts)));
                last = Some(last.map_or(ts, |l: i64| l.max(ts)));
                if stream == labels {
                    let metadata = value[2]["structuredMetadata"].as_object();
                    page.push(Stored {
                        labels: stream,
                        ts_ns: ts,
                        line: value[1].as_str().unwrap_or(""),
                        metadata,
                    });
                }
            }
        }
        let full = page_len >= u64::from(PAGE_ENTRIES);
        let Some(last) = last else {
            return Ok(total);
        };
        if last < from {
            return Err(format!(
                "reading back {selector}: an entry at {last}, before the start {from} asked for"
            ));
        }
        if full && first == Some(last) {
            return Err(format!(
                "reading back {selector}: {PAGE_ENTRIES} or more entries share timestamp {last}; cannot page past them"
            ));
        }
        for e in page.into_iter().filter(|e| !full || e.ts_ns < last) {
            total += 1;
            visit(e);
        }
        if !full {
            return Ok(total);
        }
        from = last;
    }
}

/// Lines of one lane as verified.
#[derive(Debug, Default, Clone, Copy)]
pub struct LaneCheck {
    /// Lines that had to be there exactly once, and how many of them were.
    pub required: u64,
    pub required_found: u64,
    /// Lines that could be there at most once (unanswered, refused, unacknowledged syslog,
    /// old lines), and how many of them were.
    pub optional: u64,
    pub optional_found: u64,
    /// Lines of refused pushes that were stored anyway.
    pub refused_found: u64,
}

/// The read-back check: counts every stored line by its marker, then judges the counts.
pub struct Verifier<'a> {
    seed: u64,
    streams: usize,
    corpus: &'a [String],
    ledgers: &'a [WorkerLedger],
    counts: Vec<Vec<u8>>,
    findings: &'a Findings,
}

impl<'a> Verifier<'a> {
    pub fn new(
        seed: u64,
        streams: usize,
        corpus: &'a [String],
        ledgers: &'a [WorkerLedger],
        findings: &'a Findings,
    ) -> Verifier<'a> {
        let counts = ledgers
            .iter()
            .map(|l| vec![0u8; l.next_seq as usize])
            .collect();
        Verifier {
            seed,
            streams,
            corpus,
            ledgers,
            counts,
            findings,
        }
    }

    /// Checks one stored entry of `tenant` and counts it.
    pub fn visit(&mut self, tenant: &str, e: Stored<'_>) {
        let Some((w, seq)) = parse_marker(e.line) else {
            self.findings.violation(
                "unknown-line",
                format!(
                    "tenant {tenant} holds a line without a soak marker at {} in {}: {:?}",
                    e.ts_ns,
                    Value::Object(e.labels.clone()),
                    e.line.chars().take(120).collect::<String>()
                ),
            );
            return;
        };
        let ledger = self.ledgers.iter().position(|l| l.worker == w);
        let found = ledger.and_then(|i| {
            let l = &self.ledgers[i];
            let b = l.batch_of(seq)?;
            (l.lane.tenant() == tenant).then_some((i, l, *b))
        });
        let Some((i, ledger, batch)) = found else {
            self.findings.violation(
                "unknown-line",
                format!(
                    "tenant {tenant} holds line soak={w}.{seq}, which no sender of this tenant sent (at {} in {})",
                    e.ts_ns,
                    Value::Object(e.labels.clone())
                ),
            );
            return;
        };
        let count = &mut self.counts[i][seq as usize];
        *count = count.saturating_add(1);
        let lane = ledger.lane;
        let id = format!(
            "soak={w}.{seq} ({} lane, batch of {} lines from soak={w}.{} {} by incarnation {})",
            lane.name(),
            batch.lines,
            batch.first_seq,
            batch.outcome.name(),
            batch.incarnation
        );
        if let Some(want) = expected_labels(self.seed, self.streams, w, seq).map(stored_labels) {
            let same = want.len() == e.labels.len()
                && want
                    .pairs()
                    .iter()
                    .all(|(k, v)| e.labels.get(k).and_then(Value::as_str) == Some(v.as_str()));
            if !same {
                self.findings.violation(
                    "wrong-stream",
                    format!(
                        "line {id} is stored in {} but was sent to {want}",
                        Value::Object(e.labels.clone())
                    ),
                );
            }
        }
        if lane.is_syslog() {
            let k = stream_index(self.seed, lane, self.streams, w, seq);
            let want = (SYSLOG_PROCID_BASE + k).to_string();
            let got = e
                .metadata
                .and_then(|m| m.get("procid"))
                .and_then(Value::as_str);
            if got != Some(want.as_str()) {
                self.findings.violation(
                    "wrong-metadata",
                    format!(
                        "line {id} carries structured metadata {:?}, sent with procid {want}",
                        e.metadata
                    ),
                );
            }
        }
        let text = line_text(self.corpus, self.seed, w, seq);
        if e.line != text {
            self.findings.violation(
                "wrong-content",
                format!(
                    "line {id} is stored as {:?}, sent as {:?}",
                    e.line.chars().take(200).collect::<String>(),
                    text.chars().take(200).collect::<String>()
                ),
            );
        }
        let ts = ledger.expected_ts(&batch, seq);
        if e.ts_ns != ts {
            self.findings.violation(
                "wrong-timestamp",
                format!("line {id} is stored at {} ns, sent at {ts} ns", e.ts_ns),
            );
        }
        debug_assert_eq!(lane_of(w), Some(lane));
    }

    /// Judges every line of every batch by the counts; returns the figures per lane name.
    pub fn finish(self) -> BTreeMap<&'static str, LaneCheck> {
        let mut out: BTreeMap<&'static str, LaneCheck> = BTreeMap::new();
        for (ledger, counts) in self.ledgers.iter().zip(&self.counts) {
            let lane = ledger.lane;
            let check = out.entry(lane.name()).or_default();
            for b in &ledger.batches {
                let expect = ledger.expect(b);
                for seq in b.first_seq..b.first_seq + b.lines {
                    let n = counts[seq as usize];
                    let describe = || {
                        let labels = expected_labels(self.seed, self.streams, ledger.worker, seq)
                            .map(|l| l.to_string())
                            .unwrap_or_default();
                        format!(
                            "line soak={}.{seq} of stream {labels} in tenant {} at {} ns ({} lane, batch of {} lines from soak={}.{} {} by incarnation {}{})",
                            ledger.worker,
                            lane.tenant(),
                            ledger.expected_ts(b, seq),
                            lane.name(),
                            b.lines,
                            ledger.worker,
                            b.first_seq,
                            b.outcome.name(),
                            b.incarnation,
                            if lane.is_syslog() {
                                format!(", connection {}", b.conn)
                            } else {
                                String::new()
                            }
                        )
                    };
                    match expect {
                        Expect::ExactlyOnce => {
                            check.required += 1;
                            if n >= 1 {
                                check.required_found += 1;
                            }
                            if n == 0 {
                                self.findings.violation(
                                    "loss",
                                    format!("{} is missing: expected exactly once", describe()),
                                );
                            }
                        }
                        Expect::AtMostOnce => {
                            check.optional += 1;
                            if n >= 1 {
                                check.optional_found += 1;
                                if b.outcome == super::ledger::Outcome::Refused {
                                    check.refused_found += 1;
                                }
                            }
                        }
                        Expect::Absent => {
                            if n > 0 {
                                self.findings.violation(
                                    "stored-unsent",
                                    format!(
                                        "{} is stored {n} times, but its request was never sent whole",
                                        describe()
                                    ),
                                );
                            }
                        }
                    }
                    if n > 1 {
                        self.findings
                            .violation("duplicate", format!("{} is stored {n} times", describe()));
                    }
                }
            }
        }
        out
    }
}

/// The labels a line sent with `sent` is stored under: the server's default discovery adds
/// Loki 3's `service_name` to a stream that has none, on every input.
fn stored_labels(sent: Labels) -> Labels {
    let discovery = crate::ingest::discovery::Discovery::loki_defaults();
    let Some(service) = discovery.service_name(|n| sent.get(n)) else {
        return sent;
    };
    let mut pairs: Vec<(&str, &str)> = sent
        .pairs()
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    pairs.push((crate::ingest::discovery::SERVICE_NAME, service));
    Labels::from_pairs(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::soak::lanes::{Lane, WORKERS, stream_index, stream_labels};
    use crate::soak::ledger::{BatchRecord, Outcome};

    const SEED: u64 = 11;
    const STREAMS: usize = 5;

    fn corpus() -> Vec<String> {
        vec!["alpha".into(), "beta gamma".into()]
    }

    /// Ledgers of every worker; worker 0 (json-small) sent one acknowledged batch of 3 lines
    /// and one unanswered of 2; worker 4 (proto-small) one never sent of 1.
    fn ledgers() -> Vec<WorkerLedger> {
        let mut all: Vec<WorkerLedger> = WORKERS
            .iter()
            .enumerate()
            .map(|(w, (lane, _))| WorkerLedger::new(w as u16, *lane))
            .collect();
        for (lines, outcome) in [(3, Outcome::Acked), (2, Outcome::Unknown)] {
            let first = all[0].reserve(lines);
            all[0].record(BatchRecord {
                first_seq: first,
                lines,
                ts_ns: 1000 + i64::from(first) * 10,
                outcome,
                incarnation: 1,
                conn: 0,
            });
        }
        let first = all[4].reserve(1);
        all[4].record(BatchRecord {
            first_seq: first,
            lines: 1,
            ts_ns: 5000,
            outcome: Outcome::NotSent,
            incarnation: 1,
            conn: 0,
        });
        all
    }

    fn stored(
        w: u16,
        seq: u32,
        ledgers: &[WorkerLedger],
    ) -> (serde_json::Map<String, Value>, i64, String) {
        let lane = ledgers[w as usize].lane;
        let labels = stored_labels(stream_labels(
            lane,
            stream_index(SEED, lane, STREAMS, w, seq),
        ));
        let map = labels
            .pairs()
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        let l = &ledgers[w as usize];
        let ts = l.expected_ts(l.batch_of(seq).unwrap(), seq);
        (map, ts, line_text(&corpus(), SEED, w, seq))
    }

    fn run(
        entries: &[(serde_json::Map<String, Value>, i64, String)],
    ) -> (Findings, BTreeMap<&'static str, LaneCheck>) {
        let findings = Findings::default();
        let ledgers = ledgers();
        let corpus = corpus();
        let mut v = Verifier::new(SEED, STREAMS, &corpus, &ledgers, &findings);
        for (labels, ts, line) in entries {
            v.visit(
                "soak",
                Stored {
                    labels,
                    ts_ns: *ts,
                    line,
                    metadata: None,
                },
            );
        }
        let checks = v.finish();
        (findings, checks)
    }

    fn kinds(f: &Findings) -> Vec<&'static str> {
        f.violations().iter().map(|(k, _, _)| *k).collect()
    }

    #[test]
    fn all_acknowledged_lines_once_passes() {
        let l = ledgers();
        let entries: Vec<_> = (0..4).map(|seq| stored(0, seq, &l)).collect();
        let (f, checks) = run(&entries);
        assert_eq!(f.total(), 0, "{:?}", f.violations());
        let c = checks[Lane::JsonSmall.name()];
        assert_eq!(
            (c.required, c.required_found, c.optional, c.optional_found),
            (3, 3, 2, 1)
        );
    }

    #[test]
    fn loss_duplicates_and_damage_are_violations() {
        let l = ledgers();
        let mut entries = vec![
            stored(0, 0, &l),
            stored(0, 0, &l),
            stored(0, 3, &l),
            stored(0, 3, &l),
        ];
        let (f, _) = run(&entries);
        assert_eq!(kinds(&f), vec!["duplicate", "loss"]);
        let loss = &f.violations()[1];
        assert_eq!(loss.1, 2, "lines 1 and 2 are missing");
        assert!(
            loss.2[0].contains("soak=0.1 ") && loss.2[0].contains("acknowledged"),
            "{:?}",
            loss.2
        );

        entries = (0..3).map(|seq| stored(0, seq, &l)).collect();
        entries[0].2.push('!');
        entries[1].1 += 1;
        entries[2]
            .0
            .insert("s".into(), Value::String("elsewhere".into()));
        entries.push(stored(4, 0, &l));
        entries.push((serde_json::Map::new(), 1, "no marker".into()));
        entries.push((serde_json::Map::new(), 1, "soak=0.99 never sent".into()));
        let (f, _) = run(&entries);
        let mut k = kinds(&f);
        k.sort_unstable();
        assert_eq!(
            k,
            vec![
                "stored-unsent",
                "unknown-line",
                "wrong-content",
                "wrong-stream",
                "wrong-timestamp"
            ]
        );
    }
}

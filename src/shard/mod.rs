//! What one core owns: its streams' head chunks, their label index, its WAL, and the
//! evaluation of a query over them.
//!
//! Which question it answers: "what does this shard hold, and which of it matches?" A shard
//! lives on one executor and is never shared across threads: its state sits in `RefCell`s
//! and no borrow is ever held across an `.await`. Other cores reach it only through
//! [`ShardRequest`] messages on the mesh (see [`crate::runtime`]).

pub mod head;
pub mod index;

use std::cell::RefCell;
use std::collections::BinaryHeap;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;

use crate::config::{Config, SCAN_ENTRIES_PER_YIELD};
use crate::logql::{LabelMatcher, LogSelector};
use crate::metrics::{Counter, Histogram, HistogramSnapshot, REQUEST_LATENCY_BUCKETS};
use crate::model::{BatchItem, BatchReader, Labels, StreamId, TimestampNs};
use crate::query::merge::{Partial, PartialStream};
use crate::query::params::Direction;
use crate::wal::{Wal, WalError, WalOptions, WalStats};
use index::{StreamIdx, Streams};

/// How a batch arrived, for the per-protocol counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    SyslogTcp,
    SyslogUdp,
    LokiPush,
    JsonLine,
}

impl Protocol {
    pub const ALL: [Protocol; 4] = [
        Protocol::SyslogTcp,
        Protocol::SyslogUdp,
        Protocol::LokiPush,
        Protocol::JsonLine,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Protocol::SyslogTcp => "syslog_tcp",
            Protocol::SyslogUdp => "syslog_udp",
            Protocol::LokiPush => "loki_push",
            Protocol::JsonLine => "jsonline",
        }
    }
}

/// A question for one shard. `Send`: it crosses the mesh.
#[derive(Debug, Clone)]
pub enum ShardRequest {
    Logs(Arc<LogsRequest>),
    LabelNames(Arc<LabelsRequest>),
    LabelValues(Arc<LabelsRequest>, String),
    Series(Arc<SeriesRequest>),
    Stats(Arc<LabelsRequest>),
    Metrics,
}

#[derive(Debug)]
pub struct LogsRequest {
    pub tenant: String,
    pub selector: LogSelector,
    pub start: TimestampNs,
    pub end: TimestampNs,
    pub limit: usize,
    pub direction: Direction,
}

#[derive(Debug)]
pub struct LabelsRequest {
    pub tenant: String,
    pub matchers: Vec<LabelMatcher>,
    pub start: TimestampNs,
    pub end: TimestampNs,
}

#[derive(Debug)]
pub struct SeriesRequest {
    pub tenant: String,
    /// Streams matching any one of these selectors.
    pub selectors: Vec<Vec<LabelMatcher>>,
    pub start: TimestampNs,
    pub end: TimestampNs,
}

/// Exact counts for `/index/stats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IndexStats {
    pub streams: u64,
    pub chunks: u64,
    pub entries: u64,
    pub bytes: u64,
}

impl IndexStats {
    pub fn add(&mut self, o: &IndexStats) {
        self.streams += o.streams;
        self.chunks += o.chunks;
        self.entries += o.entries;
        self.bytes += o.bytes;
    }
}

/// A shard's answer. `Send`: it crosses the mesh back.
#[derive(Debug)]
pub enum ShardAnswer {
    Logs(Partial),
    Strings(Vec<String>),
    Series(Vec<Labels>),
    Stats(IndexStats),
    Metrics(Box<ShardMetrics>),
}

/// Why lines were refused or thrown away, for `shardlog_discarded_lines_total{reason}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiscardReason {
    /// A push line over `line_bytes_max` (the whole request is refused, as Loki does).
    LineTooLong,
    /// A push or jsonline body that could not be decoded or failed validation.
    InvalidRequest,
    /// A body over the size limit.
    TooLarge,
    /// Syslog bytes that framing had to skip (the rest of an oversized frame, a bad count).
    FramingError,
    /// Lines refused because the owner shard's WAL stopped accepting writes.
    WalUnavailable,
    /// A request with an invalid tenant id.
    InvalidTenant,
}

impl DiscardReason {
    pub const ALL: [DiscardReason; 6] = [
        DiscardReason::LineTooLong,
        DiscardReason::InvalidRequest,
        DiscardReason::TooLarge,
        DiscardReason::FramingError,
        DiscardReason::WalUnavailable,
        DiscardReason::InvalidTenant,
    ];

    pub fn name(self) -> &'static str {
        match self {
            DiscardReason::LineTooLong => "line_too_long",
            DiscardReason::InvalidRequest => "invalid_request",
            DiscardReason::TooLarge => "too_large",
            DiscardReason::FramingError => "framing_error",
            DiscardReason::WalUnavailable => "wal_unavailable",
            DiscardReason::InvalidTenant => "invalid_tenant",
        }
    }
}

/// Counters of one core, both as a receiver (discards, truncations) and as an owner
/// (lines made durable).
#[derive(Default)]
pub struct CoreCounters {
    pub ingested_lines: [Counter; 4],
    pub ingested_bytes: [Counter; 4],
    pub discarded: [Counter; 6],
    pub frames_truncated: Counter,
    pub invalid_utf8_lines: Counter,
    pub timestamps_clamped: Counter,
    pub udp_datagrams: Counter,
    pub queries: Counter,
    pub replayed_records: Counter,
    pub replayed_entries: Counter,
}

impl CoreCounters {
    pub fn discard(&self, reason: DiscardReason, lines: u64) {
        self.discarded[reason as usize].add(lines);
    }
}

/// Everything `/metrics` shows of one shard.
#[derive(Debug, Clone)]
pub struct ShardMetrics {
    pub shard: usize,
    pub ingested_lines: [u64; 4],
    pub ingested_bytes: [u64; 4],
    pub discarded: [u64; 6],
    pub frames_truncated: u64,
    pub invalid_utf8_lines: u64,
    pub timestamps_clamped: u64,
    pub udp_datagrams: u64,
    pub udp_kernel_drops: u64,
    pub queries: u64,
    pub query_seconds: HistogramSnapshot,
    pub streams: u64,
    pub head_entries: u64,
    pub replayed_records: u64,
    pub replayed_entries: u64,
    pub wal: Option<WalStats>,
}

/// One core's storage: WAL and heads.
pub struct Shard {
    pub id: usize,
    pub counters: CoreCounters,
    pub query_seconds: Histogram,
    /// Inode of this core's syslog UDP socket, to read its kernel drop count (0: none).
    pub udp_socket_inode: std::cell::Cell<u64>,
    streams: RefCell<Streams>,
    wal: RefCell<Option<Rc<Wal>>>,
}

impl Shard {
    pub fn new(id: usize) -> Shard {
        Shard {
            id,
            counters: CoreCounters::default(),
            query_seconds: Histogram::new(REQUEST_LATENCY_BUCKETS),
            udp_socket_inode: std::cell::Cell::new(0),
            streams: RefCell::new(Streams::default()),
            wal: RefCell::new(None),
        }
    }

    /// The WAL directory of shard `id`.
    pub fn wal_dir(data_dir: &std::path::Path, id: usize) -> PathBuf {
        data_dir.join("wal").join(format!("shard-{id:04}"))
    }

    /// Replays this shard's WAL (and the WALs of shards that no longer exist because the core
    /// count shrank and whose number maps to this shard) into the heads, then opens the WAL
    /// for writing. Runs before the server says it is ready.
    pub async fn recover(&self, config: &Config) -> Result<(), WalError> {
        let dir = Shard::wal_dir(&config.data_dir, self.id);
        std::fs::create_dir_all(&dir).map_err(|source| WalError::Io {
            path: dir.clone(),
            op: "create directory",
            source,
        })?;
        // glommio decides once per executor and device whether polled direct reads work, by
        // reading the first DMA file it opens; make that a file with data in it (in this
        // shard's own directory: the shards start concurrently).
        let disk = crate::storage::Disk::real();
        crate::wal::prime_dma_probe(&disk, &dir).await?;
        // WAL directories of shard numbers beyond the current count: their data is still
        // replayed (by shard `n % cores`) so that nothing written before a restart with fewer
        // cores is lost or hidden. Their files stay until a checkpoint covers them.
        let wal_root = config.data_dir.join("wal");
        let mut orphans = Vec::new();
        if let Ok(rd) = std::fs::read_dir(&wal_root) {
            for e in rd.flatten() {
                let name = e.file_name();
                let Some(n) = name
                    .to_str()
                    .and_then(|s| s.strip_prefix("shard-"))
                    .and_then(|s| s.parse::<usize>().ok())
                else {
                    continue;
                };
                if n >= config.cores && n % config.cores == self.id {
                    orphans.push(e.path());
                }
            }
        }
        orphans.sort();
        for dir in orphans {
            let report = crate::wal::replay_dir(&disk, &dir, config.wal_repair, |_, body| {
                self.replayed(self.apply(body))
            })
            .await?;
            eprintln!(
                "shard {}: replayed orphan WAL {} ({report:?})",
                self.id,
                dir.display()
            );
        }
        let opts = WalOptions {
            segment_bytes_max: config.wal_segment_bytes_max,
            commit_interval: config.wal_commit_interval,
            commit_bytes_max: crate::wal::COMMIT_BYTES_MAX_DEFAULT,
            shard_id: self.id as u32,
        };
        let (wal, report) = Wal::open(&disk, &dir, opts, config.wal_repair, |_, body| {
            self.replayed(self.apply(body))
        })
        .await?;
        eprintln!("shard {}: WAL recovered ({report:?})", self.id);
        *self.wal.borrow_mut() = Some(Rc::new(wal));
        Ok(())
    }

    /// Makes a batch durable, then visible. Resolves after the WAL's group commit holding it
    /// has been fdatasync'ed; an error means nothing of it is acknowledged.
    pub async fn append(
        &self,
        batch: &crate::model::Batch,
        protocol: Protocol,
    ) -> Result<(), String> {
        let wal = self.wal.borrow().clone();
        let Some(wal) = wal else {
            return Err(format!("shard {} is not open for writes", self.id));
        };
        if let Err(e) = wal.append(&batch.bytes).await {
            self.counters
                .discard(DiscardReason::WalUnavailable, batch.entries as u64);
            return Err(format!("shard {}: {e}", self.id));
        }
        if let Err(e) = self.apply(&batch.bytes) {
            // The batch was encoded by this process; failing to read it back is a bug, but
            // the data is durable and replay will report the same problem with its offset.
            eprintln!("shard {}: cannot apply a durable batch: {e}", self.id);
            return Err(e.to_string());
        }
        self.counters.ingested_lines[protocol as usize].add(batch.entries as u64);
        self.counters.ingested_bytes[protocol as usize].add(batch.line_bytes);
        Ok(())
    }

    /// Inserts a batch's entries into the heads (live appends and WAL replay).
    fn apply(&self, body: &[u8]) -> Result<u64, crate::model::batch::BatchError> {
        let reader = BatchReader::new(body)?;
        let tenant = reader.tenant();
        let mut streams = self.streams.borrow_mut();
        let mut local: Vec<StreamIdx> = Vec::new();
        let mut entries = 0;
        for item in reader {
            match item? {
                BatchItem::Stream { id, labels, .. } => {
                    let idx = streams.get_or_create(id as StreamId, tenant, || {
                        Labels::from_pairs(labels.iter().copied())
                    });
                    local.push(idx);
                }
                BatchItem::Entry {
                    stream_index,
                    ts,
                    line,
                    metadata,
                } => {
                    let idx = local[stream_index as usize];
                    streams.head_mut(idx).push(ts, line, &metadata);
                    entries += 1;
                }
            }
        }
        Ok(entries)
    }

    /// Counts a replayed record; a batch that does not decode stops recovery (its CRC was
    /// right, so the WAL writer wrote it that way: a bug to report, not data to skip).
    fn replayed(
        &self,
        applied: Result<u64, crate::model::batch::BatchError>,
    ) -> Result<(), String> {
        let entries = applied.map_err(|e| e.to_string())?;
        self.counters.replayed_records.inc();
        self.counters.replayed_entries.add(entries);
        Ok(())
    }

    /// Commits what is pending and closes the WAL (graceful shutdown).
    pub async fn close(&self) -> Result<(), WalError> {
        let wal = self.wal.borrow_mut().take();
        match wal {
            Some(wal) => wal.close().await,
            None => Ok(()),
        }
    }

    pub async fn answer(&self, req: ShardRequest) -> ShardAnswer {
        match req {
            ShardRequest::Logs(r) => ShardAnswer::Logs(self.logs(&r).await),
            ShardRequest::LabelNames(r) => ShardAnswer::Strings(self.streams.borrow().label_names(
                &r.tenant,
                &r.matchers,
                r.start,
                r.end,
            )),
            ShardRequest::LabelValues(r, name) => ShardAnswer::Strings(
                self.streams
                    .borrow()
                    .label_values(&r.tenant, &name, &r.matchers, r.start, r.end),
            ),
            ShardRequest::Series(r) => ShardAnswer::Series(self.series(&r)),
            ShardRequest::Stats(r) => ShardAnswer::Stats(self.stats(&r)),
            ShardRequest::Metrics => ShardAnswer::Metrics(Box::new(self.metrics())),
        }
    }

    fn series(&self, r: &SeriesRequest) -> Vec<Labels> {
        let streams = self.streams.borrow();
        let mut picked: Vec<StreamIdx> = Vec::new();
        for sel in &r.selectors {
            picked.extend(streams.select(&r.tenant, sel, r.start, r.end));
        }
        picked.sort_unstable();
        picked.dedup();
        picked
            .into_iter()
            .map(|i| streams.head(i).labels.clone())
            .collect()
    }

    fn stats(&self, r: &LabelsRequest) -> IndexStats {
        let streams = self.streams.borrow();
        let mut s = IndexStats::default();
        for idx in streams.select(&r.tenant, &r.matchers, r.start, r.end) {
            let (entries, bytes) = streams.head(idx).count_in(r.start, r.end);
            if entries > 0 {
                s.streams += 1;
                // One head chunk per stream until heads are sealed into part files.
                s.chunks += 1;
                s.entries += entries;
                s.bytes += bytes;
            }
        }
        s
    }

    /// Finds the first `limit` matching entries of each selected stream in the query's
    /// direction, then keeps the first `limit` over all of them. Yields every
    /// [`SCAN_ENTRIES_PER_YIELD`] entries without holding a borrow across the yield.
    async fn logs(&self, r: &LogsRequest) -> Partial {
        let selected =
            self.streams
                .borrow()
                .select(&r.tenant, &r.selector.matchers, r.start, r.end);
        let mut partial = Partial::default();
        for idx in selected {
            let entries = self.scan_stream(idx, r).await;
            if !entries.is_empty() {
                let labels = self.streams.borrow().head(idx).labels.clone();
                partial.streams.push(PartialStream { labels, entries });
            }
        }
        let streams = crate::query::merge::merge_partials(vec![partial], r.direction, r.limit);
        Partial { streams }
    }

    /// The first `limit` entries of one stream in direction order (ties: arrival order).
    async fn scan_stream(
        &self,
        idx: StreamIdx,
        r: &LogsRequest,
    ) -> Vec<(TimestampNs, String, Vec<(String, String)>)> {
        let forward = r.direction == Direction::Forward;
        let (range, in_order) = {
            let s = self.streams.borrow();
            let h = s.head(idx);
            (h.candidate_range(r.start, r.end), h.in_order())
        };
        // Key: (ts, arrival index), ordered so that the heap's top is the worst kept entry.
        let mut kept: BinaryHeap<(i128, usize)> = BinaryHeap::new();
        let key = |ts: TimestampNs, i: usize| -> (i128, usize) {
            if forward {
                (ts as i128, i)
            } else {
                (-(ts as i128), usize::MAX - i)
            }
        };
        let mut pos_fwd = range.start;
        let mut pos_back = range.end;
        loop {
            let done = {
                let s = self.streams.borrow();
                let h = s.head(idx);
                let mut visited = 0;
                while visited < SCAN_ENTRIES_PER_YIELD && pos_fwd < pos_back {
                    let i = if forward {
                        pos_fwd += 1;
                        pos_fwd - 1
                    } else {
                        pos_back -= 1;
                        pos_back
                    };
                    visited += 1;
                    let ts = h.ts(i);
                    if ts < r.start || ts >= r.end {
                        continue;
                    }
                    let k = key(ts, i);
                    if kept.len() == r.limit && kept.peek().is_some_and(|top| *top <= k) {
                        // In an ordered head every later entry is worse still.
                        if in_order {
                            pos_fwd = pos_back;
                            break;
                        }
                        continue;
                    }
                    let e = h.entry(i);
                    if !r
                        .selector
                        .filters
                        .iter()
                        .all(|f| f.matches(e.line.as_bytes()))
                    {
                        continue;
                    }
                    kept.push(k);
                    if kept.len() > r.limit {
                        kept.pop();
                    }
                }
                pos_fwd >= pos_back
            };
            if done {
                break;
            }
            glommio::yield_if_needed().await;
        }
        let mut order = kept.into_sorted_vec();
        order.dedup();
        let s = self.streams.borrow();
        let h = s.head(idx);
        order
            .into_iter()
            .map(|(_, i)| {
                let i = if forward { i } else { usize::MAX - i };
                let e = h.entry(i);
                (
                    e.ts,
                    e.line.to_string(),
                    e.metadata
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                )
            })
            .collect()
    }

    pub fn metrics(&self) -> ShardMetrics {
        let c = &self.counters;
        let streams = self.streams.borrow();
        ShardMetrics {
            shard: self.id,
            ingested_lines: std::array::from_fn(|i| c.ingested_lines[i].get()),
            ingested_bytes: std::array::from_fn(|i| c.ingested_bytes[i].get()),
            discarded: std::array::from_fn(|i| c.discarded[i].get()),
            frames_truncated: c.frames_truncated.get(),
            invalid_utf8_lines: c.invalid_utf8_lines.get(),
            timestamps_clamped: c.timestamps_clamped.get(),
            udp_datagrams: c.udp_datagrams.get(),
            udp_kernel_drops: crate::ingest::listeners::udp_kernel_drops(
                self.udp_socket_inode.get(),
            ),
            queries: c.queries.get(),
            query_seconds: self.query_seconds.snapshot(),
            streams: streams.len() as u64,
            head_entries: streams.entries_total(),
            replayed_records: c.replayed_records.get(),
            replayed_entries: c.replayed_entries.get(),
            wal: self.wal.borrow().as_ref().map(|w| w.stats()),
        }
    }
}

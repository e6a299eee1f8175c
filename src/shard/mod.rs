//! What one core owns: its streams' head chunks, their label index, its WAL, its part store,
//! and the evaluation of a query over all of them.
//!
//! Which question it answers: "what does this shard hold, and which of it matches?" A shard
//! lives on one executor and is never shared across threads: its state sits in `RefCell`s
//! and no borrow is ever held across an `.await`. Other cores reach it only through
//! [`ShardRequest`] messages on the mesh (see [`crate::runtime`]).

#[cfg(test)]
mod apply_tests;
mod counters;
pub mod dedupe;
mod deletes;
#[cfg(test)]
mod deletes_tests;
pub mod head;
mod health;
pub mod index;
mod parts;
mod pruning;
mod recover;
mod scan;
#[cfg(test)]
mod scan_tests;
mod seal;
#[cfg(test)]
mod seal_tests;
mod select;

#[cfg(test)]
mod crash_tests;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use crate::logql::LabelMatcher;
use crate::metrics::{Histogram, REQUEST_LATENCY_BUCKETS};
use crate::model::{BatchItem, BatchReader, Duplicates, Labels, StreamId, TimestampNs};
use crate::query::merge::Partial;
use crate::wal::Wal;
pub use counters::{
    CoreCounters, DiscardReason, MemoryMetrics, PART_CACHE_KINDS, ShardMetrics, StorageMetrics,
    TenantCounts,
};
pub use health::{AppendError, NotReady, Refusal};
use index::Streams;

/// How long a push waits for sealing to bring unsealed lines back under their budget before
/// it is refused with 503: a seal round usually ends within this, and a client that waits
/// longer for its answer is better told to retry.
pub const HEADS_FULL_WAIT_MAX: std::time::Duration = std::time::Duration::from_secs(2);

/// The part cache of a shard made outside the server (tests, tools): the server sizes it
/// from `memory_max` ([`Shard::set_memory_budget`]).
pub const PART_CACHE_BYTES_DEFAULT: u64 = 16 << 20;

/// How often a syslog batch refused for lack of space is tried again (the WAL's preparer
/// retries at about this pace too).
pub const SPACE_RETRY_INTERVAL: std::time::Duration = std::time::Duration::from_millis(250);

/// How a batch arrived, for the per-protocol counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    SyslogTcp,
    SyslogUdp,
    /// Syslog over TLS (RFC 5425).
    SyslogTls,
    /// RELP, over TLS or not: each message is answered once durable.
    Relp,
    LokiPush,
    JsonLine,
    /// OTLP logs over HTTP (`POST /otlp/v1/logs`).
    Otlp,
    /// The demo's API (`POST /ingest`, `POST /simulate`).
    Demo,
}

impl Protocol {
    /// Whether batches of this protocol wait, rather than being refused, while the shard is
    /// out of space or memory for a while: syslog senders cannot be told to retry, so their
    /// connections are slowed down instead; HTTP clients are answered and retry. RELP could
    /// be refused, but its senders resend what is refused at once and forever, so it is
    /// slowed down like the other syslog transports.
    pub fn waits_for_space(self) -> bool {
        self.is_syslog()
    }

    /// Whether lines of this protocol come from a syslog sender. Such a sender cannot be
    /// refused per stream (a batch holds many streams and the transport answers, if at all,
    /// per message): its tenant's rate slows it down instead.
    pub fn is_syslog(self) -> bool {
        matches!(
            self,
            Protocol::SyslogTcp | Protocol::SyslogUdp | Protocol::SyslogTls | Protocol::Relp
        )
    }

    pub const ALL: [Protocol; 8] = [
        Protocol::SyslogTcp,
        Protocol::SyslogUdp,
        Protocol::SyslogTls,
        Protocol::Relp,
        Protocol::LokiPush,
        Protocol::JsonLine,
        Protocol::Otlp,
        Protocol::Demo,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Protocol::SyslogTcp => "syslog_tcp",
            Protocol::SyslogUdp => "syslog_udp",
            Protocol::SyslogTls => "syslog_tls",
            Protocol::Relp => "relp",
            Protocol::LokiPush => "loki_push",
            Protocol::JsonLine => "jsonline",
            Protocol::Otlp => "otlp",
            Protocol::Demo => "demo",
        }
    }
}

/// A question for one shard. `Send`: it crosses the mesh.
#[derive(Debug, Clone)]
pub enum ShardRequest {
    Logs(Arc<LogsRequest>),
    Metric(Arc<crate::query::exec::metric::MetricRequest>),
    Patterns(Arc<crate::query::exec::patterns::PatternsRequest>),
    LabelNames(Arc<LabelsRequest>),
    LabelValues(Arc<LabelsRequest>, String),
    Series(Arc<SeriesRequest>),
    Stats(Arc<LabelsRequest>),
    Metrics,
    /// Start queueing new entries for a tail ([`crate::tail`]).
    TailStart(Arc<crate::tail::TailSpec>),
    /// Stop queueing entries for a tail.
    TailStop(crate::tail::TailKey),
    /// A change to the delete requests every shard holds ([`crate::deletion`]).
    Deletes(crate::deletion::book::BookChange),
    /// Which delete requests has this shard applied?
    DeletesDone,
}

pub use crate::query::exec::logs::LogsRequest;
pub use deletes::DeletionCounts;

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
    /// The partial state of every leaf of a metric query, in plan order.
    Metric(Vec<crate::query::sample::LeafPartial>),
    /// The patterns mined from the shard's matching lines.
    Patterns(Box<crate::query::patterns::PatternMiner>),
    Strings(Vec<String>),
    Series(Vec<Labels>),
    /// Counts, and the ids of the streams counted (a stream can have data on two shards after
    /// a core-count change: the receiving core counts it once).
    Stats(IndexStats, Vec<StreamId>),
    Metrics(Box<ShardMetrics>),
    /// A tail was started or stopped here.
    Tail,
    /// A change to the delete requests was applied (and, on the shard that keeps the file,
    /// made durable).
    Deletes,
    /// The delete requests this shard has applied.
    DeletesDone(Vec<String>),
    /// The shard could not answer: it could not read data the question needs (a corrupt
    /// part, a failing disk), the query hit a limit or was cancelled. The query fails rather
    /// than answer with less than there is.
    Failed(crate::query::QueryError),
}

impl ShardAnswer {
    /// The kind of answer, for the error that reports a mismatched one.
    pub fn kind(&self) -> &'static str {
        match self {
            ShardAnswer::Logs(_) => "logs",
            ShardAnswer::Metric(_) => "metric",
            ShardAnswer::Patterns(_) => "patterns",
            ShardAnswer::Strings(_) => "strings",
            ShardAnswer::Series(_) => "series",
            ShardAnswer::Stats(..) => "stats",
            ShardAnswer::Metrics(_) => "metrics",
            ShardAnswer::Tail => "tail",
            ShardAnswer::Deletes => "deletes",
            ShardAnswer::DeletesDone(_) => "deletes_done",
            ShardAnswer::Failed(_) => "failed",
        }
    }
}

/// One core's storage: WAL and heads.
pub struct Shard {
    pub id: usize,
    /// Turns for query parts (see [`crate::query::engine::ShardPermits`]).
    query_permits: RefCell<Rc<crate::query::engine::ShardPermits>>,
    pub counters: CoreCounters,
    /// The active streams of each tenant this shard owns (Loki's stream limit), rebuilt
    /// from the recovered heads at start-up.
    pub active_streams: crate::tenants::streams::ActiveStreams,
    pub query_seconds: Histogram,
    /// Inodes of this core's syslog UDP sockets (one per UDP listener), to read their kernel
    /// drop counts.
    pub udp_socket_inodes: RefCell<Vec<u64>>,
    /// This core's listeners: connections and request bytes held (kept and counted by
    /// `crate::http::admission`).
    pub edge: Rc<crate::metrics::edge::EdgeStats>,
    streams: RefCell<Streams>,
    wal: RefCell<Option<Rc<Wal>>>,
    /// Batches with a WAL seq not applied to the heads yet, in seq order: those whose commit
    /// is not durable yet, then durable ones waiting for [`Shard::catch_up`].
    pending: RefCell<std::collections::VecDeque<PendingBatch>>,
    /// Highest WAL seq known durable (the WAL's durable hook, [`Shard::on_durable`]).
    durable_seq: std::cell::Cell<u64>,
    /// Raised when batches became durable: the applier task moves them into the heads.
    apply_wanted: Rc<crate::runtime::wake::Signal>,
    /// Highest WAL seq applied to the heads.
    applied_seq: std::cell::Cell<u64>,
    /// Bytes live heads hold ([`head::StreamHead::held_bytes`]), to seal early when memory
    /// fills.
    head_bytes: std::cell::Cell<u64>,
    /// Bytes held by heads taken by seal rounds not committed yet.
    sealing_bytes: std::cell::Cell<u64>,
    /// Notified when a seal round ends: appends waiting for memory re-check.
    sealed: crate::runtime::wake::Event,
    /// Set when the live heads pass `heads_bytes_max`: the sealer starts a round at once.
    seal_wanted: crate::runtime::wake::Signal,
    /// This shard's part store, and the stores of shard numbers beyond the core count that it
    /// serves read-only.
    store: RefCell<Option<Rc<crate::store::Store>>>,
    foreign_stores: RefCell<Vec<Rc<crate::store::Store>>>,
    /// Bloom filters of this shard's parts (and those it serves) that queries read lately.
    part_cache: RefCell<Rc<crate::store::part_cache::PartCache>>,
    /// This core's share of `memory_max`, for `/metrics`.
    memory_budget: std::cell::Cell<Option<crate::config::memory::MemoryBudget>>,
    /// Heads taken by a seal round whose parts are not in the manifest yet: still read by
    /// queries until the round commits.
    sealing: RefCell<Vec<Arc<seal::SealingSet>>>,
    /// Seal rounds that committed while scans were running, kept for those scans.
    scan_pins: scan::ScanPins,
    /// Fingerprints of recently sealed entries, for the duplicate check.
    recently_sealed: RefCell<dedupe::RecentlySealed>,
    /// How scans yield, and after how many head entries (tests make every point a yield).
    scan_yield: std::cell::Cell<(scan::ScanYield, usize)>,
    seal_settings: std::cell::Cell<Option<seal::SealSettings>>,
    /// Why sealing stopped (a disk error): the WAL keeps everything meanwhile.
    seal_failed: RefCell<Option<String>>,
    pub scan_counters: scan::ScanCounters,
    /// Keeps scans to their share of the core while ingest is busy on it.
    pub query_pacer: crate::runtime::pacer::QueryPacer,
    /// The disk under the WAL and the stores: the real one, or a simulated one in crash tests.
    disk: crate::storage::Disk,
    /// The tails every core registered here, and what this shard queued for them.
    pub tails: crate::tail::registry::ShardTails,
    /// The delete requests, and this shard's progress in applying them.
    deletes: deletes::ShardDeletes,
}

/// A batch in the WAL's commit queue, waiting for its commit to become durable.
struct PendingBatch {
    seq: u64,
    bytes: Rc<Vec<u8>>,
    protocol: Protocol,
    entries: u64,
    line_bytes: u64,
    tenant: Rc<str>,
}

impl Shard {
    /// A shard on the real disk. Must be made on its executor's thread.
    pub fn new(id: usize) -> Shard {
        Shard::with_disk(id, crate::storage::Disk::real())
    }

    pub fn with_disk(id: usize, disk: crate::storage::Disk) -> Shard {
        Shard {
            disk,
            id,
            counters: CoreCounters::default(),
            active_streams: Default::default(),
            query_seconds: Histogram::new(REQUEST_LATENCY_BUCKETS),
            udp_socket_inodes: RefCell::new(Vec::new()),
            edge: Rc::default(),
            streams: RefCell::new(Streams::default()),
            wal: RefCell::new(None),
            pending: RefCell::new(std::collections::VecDeque::new()),
            durable_seq: std::cell::Cell::new(0),
            apply_wanted: Rc::default(),
            applied_seq: std::cell::Cell::new(0),
            head_bytes: std::cell::Cell::new(0),
            sealing_bytes: std::cell::Cell::new(0),
            sealed: crate::runtime::wake::Event::default(),
            seal_wanted: crate::runtime::wake::Signal::default(),
            store: RefCell::new(None),
            foreign_stores: RefCell::new(Vec::new()),
            sealing: RefCell::new(Vec::new()),
            scan_pins: scan::ScanPins::default(),
            recently_sealed: RefCell::default(),
            scan_yield: std::cell::Cell::new((
                scan::ScanYield::IfNeeded,
                crate::config::SCAN_ENTRIES_PER_YIELD,
            )),
            seal_settings: std::cell::Cell::new(None),
            seal_failed: RefCell::new(None),
            scan_counters: scan::ScanCounters::default(),
            query_pacer: Default::default(),
            query_permits: RefCell::new(Rc::new(crate::query::engine::ShardPermits::new(
                crate::config::QUERY_CONCURRENCY_DEFAULT,
            ))),
            tails: Default::default(),
            deletes: Default::default(),
            part_cache: RefCell::new(Rc::new(crate::store::part_cache::PartCache::new(
                PART_CACHE_BYTES_DEFAULT,
            ))),
            memory_budget: std::cell::Cell::new(None),
        }
    }

    /// Takes this core's share of the memory budget: sizes the part cache and the duplicate
    /// check's fingerprints, and shows the
    /// shares in `/metrics` (set before the shard answers queries).
    pub fn set_memory_budget(&self, budget: crate::config::memory::MemoryBudget) {
        *self.part_cache.borrow_mut() = Rc::new(crate::store::part_cache::PartCache::new(
            budget.part_cache_bytes_max,
        ));
        self.recently_sealed
            .borrow_mut()
            .set_bytes_max(budget.duplicate_fingerprints_bytes_max as usize);
        self.memory_budget.set(Some(budget));
    }

    /// The cache of part metadata and bloom filters that queries read.
    pub fn part_cache(&self) -> Rc<crate::store::part_cache::PartCache> {
        Rc::clone(&self.part_cache.borrow())
    }

    /// How many query parts this shard runs at once (set before it answers queries).
    pub fn set_query_concurrency(&self, max_concurrent: usize) {
        *self.query_permits.borrow_mut() =
            Rc::new(crate::query::engine::ShardPermits::new(max_concurrent));
    }

    /// Makes a batch durable, then visible. Resolves once the WAL's group commit holding it
    /// has been fdatasync'ed; the batch is in the heads before anything reads them (see
    /// [`Shard::on_durable`]). An error means nothing of it is stored here, and says why
    /// ([`AppendError`]).
    ///
    /// Backpressure depends on how the batch arrived. Syslog has no way to refuse a line, so
    /// its batches wait while the shard cannot take them for a reason that ends by itself (a
    /// full disk, unsealed lines over their budget): their connections stop being read
    /// meanwhile. HTTP clients can retry, so a push waits at most [`HEADS_FULL_WAIT_MAX`] for
    /// sealing to free memory and is refused at once on a full disk.
    pub async fn append(
        &self,
        batch: crate::model::Batch,
        protocol: Protocol,
    ) -> Result<(), AppendError> {
        let wal = self.wal.borrow().clone();
        let Some(wal) = wal else {
            return Err(AppendError::new(
                Refusal::NotOpen,
                format!("shard {} is not open for writes", self.id),
            ));
        };
        let entries = batch.entries as u64;
        let line_bytes = batch.line_bytes;
        let tenant: Rc<str> = batch.reader().map_or("".into(), |r| r.tenant().into());
        if let Err(e) = self.wait_for_memory(protocol).await {
            self.counters
                .discard_for(&tenant, DiscardReason::Overloaded, entries);
            return Err(e);
        }
        let bytes = Rc::new(batch.bytes);
        loop {
            let appended = wal
                .append_with(&bytes, |seq| {
                    // No await between getting the seq and queueing: the durable hook finds
                    // every durable batch here, in seq order.
                    self.pending.borrow_mut().push_back(PendingBatch {
                        seq,
                        bytes: bytes.clone(),
                        protocol,
                        entries,
                        line_bytes,
                        tenant: tenant.clone(),
                    })
                })
                .await;
            let e = match appended {
                Ok(_) => return Ok(()),
                Err(e) => e,
            };
            let (refusal, reason) = match e {
                crate::wal::WalError::NoSpace { .. } if protocol.waits_for_space() => {
                    // Nothing of the record was written: try again once space may be back.
                    glommio::timer::sleep(SPACE_RETRY_INTERVAL).await;
                    continue;
                }
                crate::wal::WalError::NoSpace { .. } => (Refusal::NoSpace, DiscardReason::NoSpace),
                crate::wal::WalError::Closed => (Refusal::NotOpen, DiscardReason::WalUnavailable),
                _ => (Refusal::WalStopped, DiscardReason::WalUnavailable),
            };
            if wal.stats().poisoned.is_some() {
                // Nothing queued beyond what is durable will ever be: what is goes into the
                // heads (it was acknowledged), the rest is dropped.
                self.catch_up();
                self.pending.borrow_mut().clear();
            }
            self.counters.discard_for(&tenant, reason, entries);
            return Err(AppendError::new(refusal, format!("shard {}: {e}", self.id)));
        }
    }

    /// Backpressure on memory: while unsealed lines (live heads plus seal rounds in progress)
    /// hold more than twice `heads_bytes_max`, sealing is behind ingest (or failing for now),
    /// and appends wait for a seal round to end rather than let memory grow without bound,
    /// whatever sealing is doing. Pushes wait at most [`HEADS_FULL_WAIT_MAX`], then are
    /// refused ([`Refusal::Overloaded`]); syslog waits as long as it takes.
    async fn wait_for_memory(&self, protocol: Protocol) -> Result<(), AppendError> {
        let deadline =
            (!protocol.waits_for_space()).then(|| std::time::Instant::now() + HEADS_FULL_WAIT_MAX);
        while let Some(why) = self.heads_over_budget() {
            self.counters.memory_waits.inc();
            let left = match deadline {
                Some(d) => d.saturating_duration_since(std::time::Instant::now()),
                None => HEADS_FULL_WAIT_MAX,
            };
            if left.is_zero() {
                return Err(AppendError::new(
                    Refusal::Overloaded,
                    format!("shard {}: {why}", self.id),
                ));
            }
            // A seal round ending wakes the wait; the timer bounds it when rounds fail.
            futures_lite::future::or(self.sealed.wait(), glommio::timer::sleep(left)).await;
        }
        Ok(())
    }

    /// Why unsealed lines are over their budget (twice `heads_bytes_max`), if they are.
    fn heads_over_budget(&self) -> Option<String> {
        let settings = self.seal_settings.get()?;
        // Acknowledged batches count from their answer on, applied or not.
        self.catch_up();
        let limit = settings.heads_bytes_max.saturating_mul(2);
        let held = self.head_bytes.get() + self.sealing_bytes.get();
        if held <= limit {
            return None;
        }
        let sealing = match self.seal_failed.borrow().as_ref() {
            Some(why) => format!("sealing fails for now, and is retried: {why}"),
            None => "sealing is behind ingest".to_string(),
        };
        Some(format!(
            "{held} bytes of unsealed lines, over the budget of {limit} (twice \
             heads_bytes_max); {sealing}"
        ))
    }

    /// The WAL's durable hook: batches up to `through` are durable, so their pushes are
    /// answered now, and the applier task moves them into the heads just after.
    ///
    /// Why not apply here: the hook runs in the committer before the commit's waiters are
    /// woken, and applying a commit of four 1,000-line pushes takes about a millisecond of
    /// the core. Every push of the commit waited for all of it (and the next commit behind
    /// it). Whoever reads the heads first applies what is durable ([`Shard::heads`]), so an
    /// acknowledged line is found by any query that starts after its answer.
    fn on_durable(&self, through: u64) {
        self.durable_seq.set(self.durable_seq.get().max(through));
        self.apply_wanted.notify();
    }

    /// Applies every durable batch not yet in the heads, in seq order. Cheap when there is
    /// none; never holds a borrow of the heads when it returns.
    fn catch_up(&self) {
        let through = self.durable_seq.get();
        loop {
            let next = {
                let mut pending = self.pending.borrow_mut();
                match pending.front() {
                    Some(p) if p.seq <= through => pending.pop_front(),
                    _ => None,
                }
            };
            let Some(p) = next else { break };
            if let Err(e) = self.apply(p.seq, &p.bytes, None, true) {
                // The batch was encoded by this process; failing to read it back is a bug,
                // but the data is durable and replay will report the same problem with its
                // offset.
                eprintln!("shard {}: cannot apply a durable batch: {e}", self.id);
                continue;
            }
            self.counters.ingested_lines[p.protocol as usize].add(p.entries);
            self.counters.ingested_bytes[p.protocol as usize].add(p.line_bytes);
            self.counters
                .ingested_for(&p.tenant, p.entries, p.line_bytes);
        }
    }

    /// The heads, with every durable batch in them: every reader of the heads goes through
    /// here (or [`Shard::heads_mut`]), so that an acknowledged line is always visible.
    fn heads(&self) -> std::cell::Ref<'_, Streams> {
        self.catch_up();
        self.streams.borrow()
    }

    /// [`Shard::heads`], to change them.
    fn heads_mut(&self) -> std::cell::RefMut<'_, Streams> {
        self.catch_up();
        self.streams.borrow_mut()
    }

    /// The applier: applies durable batches once their pushes have been answered. It is
    /// woken by [`Shard::on_durable`], which the WAL calls just after waking the commit's
    /// waiters, so they run (and answer) first. It holds the shard weakly, and ends with it.
    async fn run_applier(shard: std::rc::Weak<Shard>, wanted: Rc<crate::runtime::wake::Signal>) {
        loop {
            wanted.wait().await;
            match shard.upgrade() {
                Some(shard) => shard.catch_up(),
                None => return,
            }
        }
    }

    /// Inserts the entries of WAL record `seq` into the heads (live appends and replay).
    /// Entries of streams that `sealed` says are already in parts are skipped. `own`: the
    /// record is from this shard's WAL (its seq counts for the checkpoint). If the batch
    /// drops duplicates, an entry its stream already holds is dropped ([`dedupe`]), and
    /// counted when live (`sealed` is `None`).
    fn apply(
        &self,
        seq: u64,
        body: &[u8],
        sealed: Option<&crate::store::manifest::Manifest>,
        own: bool,
    ) -> Result<u64, crate::model::batch::BatchError> {
        let reader = BatchReader::new(body)?;
        let tenant = reader.tenant();
        let drop_duplicates = reader.duplicates() == Duplicates::Drop;
        let now = drop_duplicates.then(|| self.expire_fingerprints());
        // Live entries only: a replayed one was offered to tails before the restart, or
        // before any tail of this process existed.
        let tailed = sealed.is_none() && self.tails.tails_tenant(tenant);
        let mut streams = self.streams.borrow_mut();
        let mut local: Vec<dedupe::Target> = Vec::new();
        let mut entries = 0;
        let mut bytes = 0;
        let mut duplicates = 0;
        for item in reader {
            match item? {
                BatchItem::Stream { id, labels, .. } => {
                    let id = id as StreamId;
                    if sealed.is_some_and(|m| seq <= m.sealed_through(id)) {
                        local.push(dedupe::Target::Sealed(id));
                        continue;
                    }
                    let idx = streams
                        .get_or_create(id, tenant, || Labels::from_pairs(labels.iter().copied()));
                    let elsewhere = drop_duplicates.then(|| self.elsewhere(id));
                    local.push(dedupe::Target::Head {
                        idx,
                        noted: false,
                        elsewhere,
                    });
                }
                BatchItem::Entry {
                    stream_index,
                    ts,
                    line,
                    metadata,
                } => {
                    let (idx, noted, elsewhere) = match &mut local[stream_index as usize] {
                        dedupe::Target::Sealed(id) => {
                            if let Some(now) = now {
                                self.remember_sealed_entry(*id, ts, line, now);
                            }
                            continue;
                        }
                        dedupe::Target::Head {
                            idx,
                            noted,
                            elsewhere,
                        } => (*idx, noted, elsewhere),
                    };
                    let head = streams.head_mut(idx);
                    if let Some(elsewhere) = elsewhere
                        && self.is_duplicate(head, elsewhere, ts, line)
                    {
                        duplicates += 1;
                        continue;
                    }
                    // A record whose entries of this stream were all duplicates leaves the
                    // head's seqs (and so the WAL it pins) alone.
                    if !*noted {
                        head.note_seq(seq);
                        *noted = true;
                    }
                    if tailed {
                        self.tails
                            .offer(tenant, head.id, &head.labels, ts, line, &metadata);
                    }
                    let before = head.held_bytes();
                    head.push(ts, line, &metadata);
                    entries += 1;
                    bytes += head.held_bytes() - before;
                }
            }
        }
        if own {
            self.applied_seq.set(self.applied_seq.get().max(seq));
        }
        self.head_bytes.set(self.head_bytes.get() + bytes);
        if let Some(settings) = self.seal_settings.get()
            && self.head_bytes.get() > settings.heads_bytes_max
        {
            self.seal_wanted.notify();
        }
        if sealed.is_none() {
            self.counters.discard(DiscardReason::Duplicate, duplicates);
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

    /// Graceful shutdown: commits what is pending, closes the WAL, then seals every head so
    /// that the next start replays nothing.
    pub async fn close(&self) -> Result<(), String> {
        let wal = self.wal.borrow().clone();
        if let Some(wal) = &wal {
            wal.close().await.map_err(|e| e.to_string())?;
        }
        let can_seal = self.store.borrow().is_some();
        if can_seal && let Err(e) = self.seal_round(seal::SealMode::All).await {
            eprintln!(
                "shard {}: sealing at shutdown failed (the WAL keeps the data): {e}",
                self.id
            );
        }
        self.wal.borrow_mut().take();
        Ok(())
    }

    /// Answers one question of a query, in turn with the shard's other query parts (at most
    /// `max_concurrent` run at once).
    pub async fn answer(&self, req: ShardRequest) -> ShardAnswer {
        // Tails are registered at once, never behind the queries waiting for a turn.
        match req {
            ShardRequest::TailStart(spec) => {
                return match self.tails.start(spec) {
                    Ok(()) => ShardAnswer::Tail,
                    Err(why) => ShardAnswer::Failed(why),
                };
            }
            ShardRequest::TailStop(key) => {
                self.tails.stop(key);
                return ShardAnswer::Tail;
            }
            // Bookkeeping, never behind queries either: a delete is answered once every
            // shard filters with it.
            ShardRequest::Deletes(change) => {
                return match self.change_deletes(&change) {
                    Ok(()) => ShardAnswer::Deletes,
                    Err(why) => ShardAnswer::Failed(crate::query::QueryError::Storage(why)),
                };
            }
            ShardRequest::DeletesDone => return ShardAnswer::DeletesDone(self.deletes_done()),
            // A scrape reads counters: it must not wait for slow queries to finish, or
            // monitoring goes blind exactly when the server is busiest.
            ShardRequest::Metrics => return ShardAnswer::Metrics(Box::new(self.metrics())),
            _ => {}
        }
        let permits = self.query_permits.borrow().clone();
        let _turn = permits.acquire().await;
        match req {
            ShardRequest::Logs(r) => match self.logs(&r).await {
                Ok(p) => ShardAnswer::Logs(p),
                Err(why) => ShardAnswer::Failed(why),
            },
            ShardRequest::Metric(r) => match crate::query::exec::metric::run(self, &r).await {
                Ok(p) => ShardAnswer::Metric(p),
                Err(why) => ShardAnswer::Failed(why),
            },
            ShardRequest::Patterns(r) => match crate::query::exec::patterns::run(self, &r).await {
                Ok(m) => ShardAnswer::Patterns(Box::new(m)),
                Err(why) => ShardAnswer::Failed(why),
            },
            ShardRequest::LabelNames(r) => {
                match self
                    .label_names(&r.tenant, &r.matchers, r.start, r.end)
                    .await
                {
                    Ok(names) => ShardAnswer::Strings(names),
                    Err(why) => ShardAnswer::Failed(why),
                }
            }
            ShardRequest::LabelValues(r, name) => match self
                .label_values(&r.tenant, &name, &r.matchers, r.start, r.end)
                .await
            {
                Ok(values) => ShardAnswer::Strings(values),
                Err(why) => ShardAnswer::Failed(why),
            },
            ShardRequest::Series(r) => match self.series(&r).await {
                Ok(series) => ShardAnswer::Series(series),
                Err(why) => ShardAnswer::Failed(why),
            },
            ShardRequest::Stats(r) => match self.stats(&r).await {
                Ok((s, ids)) => ShardAnswer::Stats(s, ids),
                Err(why) => ShardAnswer::Failed(crate::query::QueryError::Storage(why)),
            },
            // Answered above, without a turn.
            ShardRequest::Metrics => ShardAnswer::Metrics(Box::new(self.metrics())),
            ShardRequest::TailStart(_) | ShardRequest::TailStop(_) => ShardAnswer::Tail,
            ShardRequest::Deletes(_) => ShardAnswer::Deletes,
            ShardRequest::DeletesDone => ShardAnswer::DeletesDone(self.deletes_done()),
        }
    }

    async fn series(&self, r: &SeriesRequest) -> Result<Vec<Labels>, crate::query::QueryError> {
        let parts = self.parts_with_tails(r.start, r.end, &|_| true).await?;
        // No yield since the parts were looked at.
        let mut picked = Vec::new();
        for sel in &r.selectors {
            self.select_streams(&r.tenant, sel, r.start, r.end, &parts, &mut picked);
        }
        picked.sort_unstable_by_key(|s| s.id);
        picked.dedup_by_key(|s| s.id);
        Ok(picked
            .into_iter()
            .map(|s| Labels::clone(&s.labels.get(&parts)))
            .collect())
    }

    /// Counts as active the recovered streams with unsealed entries (they wrote within the
    /// last seal age) or sealed entries within the idle period, so that the stream limit and
    /// the active streams gauge hold across a restart (a graceful stop seals every head).
    pub async fn activate_recovered_streams(&self, idle: std::time::Duration) {
        let idle = idle.as_nanos().min(i64::MAX as u128) as i64;
        let since = crate::ingest::listeners::now_ns().saturating_sub(idle);
        let in_parts = self.part_streams_since(since).await;
        let unsealed = self.heads().unsealed_by_tenant();
        for (tenant, ids) in unsealed.into_iter().chain(in_parts) {
            self.active_streams.admit(&tenant, ids.into_iter(), 0);
        }
    }
}

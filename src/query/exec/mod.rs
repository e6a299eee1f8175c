//! A shard's part of a query: what to scan, and the sinks that scanned entries go into.
//!
//! Which question it answers: "given what this shard holds, what is its partial answer?"
//! The shard offers a narrow view ([`crate::shard::Shard::scan`]): it selects streams with
//! the label index, fixes a snapshot of their heads and parts, skips blocks by time and bloom
//! filter, runs the leading line filters, and hands every remaining entry to a [`ScanSink`]
//! in the query's direction. The sinks here do the rest: [`logs::TopEntries`] keeps the
//! first `limit` entries of the whole shard (one bounded heap, whatever the number of
//! streams), and tells the scan where its cutoff is, so that sources sorted by time stop as
//! soon as nothing further can be kept.
//!
//! Every scan of a query shares one [`QueryControl`]: cancellation (the client went away,
//! the timeout passed) and the byte budget reach every shard through it, and each scan checks
//! it between blocks and batches of head entries.

pub mod logs;
pub mod metric;
pub mod patterns;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::chunk::{BloomQuery, DecodedBlock};
use crate::logql::{LabelMatcher, LineFilter};
use crate::model::{Labels, TimestampNs};
use crate::query::QueryError;
use crate::query::params::Direction;
use crate::tenants::federation::TenantScope;

/// What a shard scans for one query: the streams, the time range `[start, end)`, the order,
/// and the line filters every entry must pass before it reaches the sink.
#[derive(Debug)]
pub struct ScanSpec {
    /// The tenants read; a `__tenant_id__` matcher of a multi-tenant read picks among them.
    pub tenants: TenantScope,
    pub matchers: Vec<LabelMatcher>,
    pub start: TimestampNs,
    pub end: TimestampNs,
    pub direction: Direction,
    /// The leading line filters, run on the stored line.
    pub filters: Vec<LineFilter>,
    /// Needles a line must contain, for skipping blocks by bloom filter.
    pub bloom: BloomQuery,
    /// `name="value"` filters every result line passes, for skipping blocks and head
    /// entries by the structured-metadata index.
    pub pairs: Arc<crate::query::pairs::PairQuery>,
    pub control: Arc<QueryControl>,
}

/// Where a scan hands its entries.
pub trait ScanSink {
    /// The entries that follow, up to the next call, belong to the stream with these labels.
    fn begin_stream(&mut self, labels: &Labels);

    /// The timestamp beyond which, in the scan's direction, no entry can be kept any more:
    /// the scan skips such entries, and stops a source sorted by time at the first one.
    /// An entry *at* the cutoff may still be kept (ties are broken by the sink).
    fn cutoff(&self) -> Option<TimestampNs>;

    /// One entry of the current stream inside the range that passed the leading filters.
    fn push(
        &mut self,
        ts: TimestampNs,
        line: &str,
        metadata: &[(&str, &str)],
    ) -> Result<(), QueryError>;

    /// The entries `lo..hi` of a decoded part block at once, offered when no line filter
    /// applies and the sink has no cutoff. A sink that only counts lines or sums their
    /// lengths takes them here without a call per line and returns true; by default it
    /// returns false and the scan pushes them one by one.
    fn push_block(
        &mut self,
        _block: &DecodedBlock,
        _lo: usize,
        _hi: usize,
    ) -> Result<bool, QueryError> {
        Ok(false)
    }
}

/// Whether `ts` is beyond `cutoff` in `direction` (see [`ScanSink::cutoff`]).
#[inline]
pub fn beyond(direction: Direction, ts: TimestampNs, cutoff: Option<TimestampNs>) -> bool {
    match (cutoff, direction) {
        (None, _) => false,
        (Some(c), Direction::Forward) => ts > c,
        (Some(c), Direction::Backward) => ts < c,
    }
}

/// What every shard's scan of one query shares: whether to stop, and how much it may read.
#[derive(Debug)]
pub struct QueryControl {
    cancelled: AtomicBool,
    /// Why it was stopped, when the stop is a limit (kept by the first to stop it).
    bytes_read: AtomicU64,
    /// `max_query_bytes_read` (0: no limit).
    bytes_read_max: u64,
    /// What the scans read and skipped, for the response's `stats`.
    pub stats: Arc<QueryStats>,
}

/// What the scans of one query read and skipped, summed over every shard, as the response's
/// `stats` reports them (Loki's names where Loki has the figure).
#[derive(Debug, Default)]
pub struct QueryStats {
    /// Part blocks of selected streams whose time range overlapped the query.
    pub blocks_considered: AtomicU64,
    /// Of those, blocks the line filters' gram blooms ruled out.
    pub blocks_skipped_by_bloom: AtomicU64,
    /// Of those, blocks the structured-metadata index ruled out.
    pub blocks_skipped_by_metadata_index: AtomicU64,
    /// Parts the structured-metadata index ruled out whole, before selecting streams in them.
    pub parts_skipped_by_metadata_index: AtomicU64,
    /// Blocks read and decoded, their compressed bytes, lines and line bytes.
    pub blocks_decoded: AtomicU64,
    pub compressed_bytes: AtomicU64,
    pub decompressed_lines: AtomicU64,
    pub decompressed_bytes: AtomicU64,
    /// Head entries visited, and their line bytes.
    pub head_lines: AtomicU64,
    pub head_bytes: AtomicU64,
    /// Head entries the metadata index let a scan pass over without visiting them.
    pub head_lines_skipped_by_metadata_index: AtomicU64,
    /// Bytes of metadata index directories and pages read.
    pub metadata_index_bytes_read: AtomicU64,
}

impl QueryStats {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// The figures as JSON members of Loki's `stats` object (`summary`, `querier`, `index`),
    /// with shardlog's own after Loki's in `index`.
    pub fn json(&self, exec_secs: f64, entries_returned: usize) -> String {
        let g = Self::get;
        let lines = g(&self.decompressed_lines) + g(&self.head_lines);
        let bytes = g(&self.decompressed_bytes) + g(&self.head_bytes);
        let per_sec = |n: u64| {
            if exec_secs > 0.0 {
                (n as f64 / exec_secs) as u64
            } else {
                0
            }
        };
        format!(
            concat!(
                r#"{{"summary":{{"execTime":{},"totalEntriesReturned":{},"#,
                r#""totalBytesProcessed":{},"totalLinesProcessed":{},"#,
                r#""bytesProcessedPerSecond":{},"linesProcessedPerSecond":{}}},"#,
                r#""querier":{{"store":{{"totalChunksRef":{},"totalChunksDownloaded":{},"#,
                r#""chunk":{{"headChunkLines":{},"headChunkBytes":{},"#,
                r#""decompressedLines":{},"decompressedBytes":{},"compressedBytes":{}}}}}}},"#,
                r#""index":{{"totalChunks":{},"postFilterChunks":{},"#,
                r#""blocksSkippedByBloom":{},"blocksSkippedByMetadataIndex":{},"#,
                r#""partsSkippedByMetadataIndex":{},"#,
                r#""headLinesSkippedByMetadataIndex":{},"metadataIndexBytesRead":{}}}}}"#
            ),
            exec_secs,
            entries_returned,
            bytes,
            lines,
            per_sec(bytes),
            per_sec(lines),
            g(&self.blocks_considered),
            g(&self.blocks_decoded),
            g(&self.head_lines),
            g(&self.head_bytes),
            g(&self.decompressed_lines),
            g(&self.decompressed_bytes),
            g(&self.compressed_bytes),
            g(&self.blocks_considered),
            g(&self.blocks_decoded),
            g(&self.blocks_skipped_by_bloom),
            g(&self.blocks_skipped_by_metadata_index),
            g(&self.parts_skipped_by_metadata_index),
            g(&self.head_lines_skipped_by_metadata_index),
            g(&self.metadata_index_bytes_read),
        )
    }
}

impl QueryControl {
    pub fn new(bytes_read_max: u64) -> QueryControl {
        QueryControl {
            cancelled: AtomicBool::new(false),
            bytes_read: AtomicU64::new(0),
            bytes_read_max,
            stats: Arc::default(),
        }
    }

    /// This control, counting into `stats` (which the caller keeps to report them).
    pub fn with_stats(mut self, stats: Arc<QueryStats>) -> QueryControl {
        self.stats = stats;
        self
    }

    /// Stops every scan of the query at its next check.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::Relaxed);
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }

    /// Between blocks and batches: `Canceled` once the query was stopped.
    pub fn check(&self) -> Result<(), QueryError> {
        if self.is_cancelled() {
            return Err(QueryError::Canceled);
        }
        Ok(())
    }

    /// Counts line bytes about to be read; over `max_query_bytes_read` the query fails.
    pub fn read(&self, bytes: u64) -> Result<(), QueryError> {
        let total = self.bytes_read.fetch_add(bytes, Ordering::Relaxed) + bytes;
        if self.bytes_read_max > 0 && total > self.bytes_read_max {
            return Err(QueryError::Limit {
                limit: "max_query_bytes_read",
                message: format!(
                    "the query would read too many bytes (read so far: {total}, limit: {}); \
                     narrow the selector or the time range, or raise max_query_bytes_read",
                    self.bytes_read_max
                ),
            });
        }
        Ok(())
    }

    pub fn bytes_read(&self) -> u64 {
        self.bytes_read.load(Ordering::Relaxed)
    }
}

impl Default for QueryControl {
    fn default() -> Self {
        QueryControl::new(0)
    }
}

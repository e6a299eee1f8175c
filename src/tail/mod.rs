//! Live tailing (`/loki/api/v1/tail`): new lines matching a log query, pushed to a WebSocket
//! client as they become visible.
//!
//! Which question it answers: "which new lines does each tail client get, and what happens
//! when a client is slower than the stream?" A tail lives on the core that accepted its
//! connection (the receiving core) and is registered with every shard ([`TailSpec`], over
//! the mesh as a [`crate::shard::ShardRequest`]). Each shard ([`registry::ShardTails`])
//! looks at every entry it applies after its WAL commit: entries of streams the tail's
//! selector picks that pass its leading line filters are queued, bounded, for the core's
//! forwarder task, which runs the rest of the pipeline in the query task queue and sends the
//! results to the receiving core ([`TailBatch`], over the mesh). There each tail has an
//! [`inbox::Inbox`], bounded too, that its WebSocket session ([`session`]) drains in
//! timestamp order, `delay_for` seconds behind, at most [`ENTRIES_PER_MESSAGE_MAX`] entries a
//! message.
//!
//! Nothing on the ingest path ever waits for a tail: a full queue on a shard, a full inbox or
//! a full mesh channel drops the entry, and the dropped entries' labels and timestamps
//! (the first [`DROPPED_ENTRIES_MAX`]) reach the client with its next message as Loki's
//! `dropped_entries`. Appending an entry costs a tail a hash lookup per entry of a tailed
//! tenant, the leading line filters on the entries of selected streams, and a copy of the
//! lines that pass.

pub mod inbox;
pub mod registry;
pub mod render;
pub mod session;

use std::sync::Arc;
use std::time::Duration;

use crate::logql::LogSelector;
use crate::model::{Labels, MetadataPair, TimestampNs};
use crate::query::pipeline::Pipeline;

/// Most entries in one WebSocket message (Loki's `maxEntriesPerTailResponse`).
pub const ENTRIES_PER_MESSAGE_MAX: usize = 100;

/// Most dropped entries remembered for the next message (Loki's
/// `maxDroppedEntriesPerTailResponse`): beyond it, drops are still counted but not listed.
pub const DROPPED_ENTRIES_MAX: usize = 1000;

/// Most entries waiting in a tail's inbox on its receiving core, and their line bytes: what a
/// client that reads slower than its stream can hold back before entries are dropped. Loki
/// buffers ten responses of up to 100 entries on its querier.
pub const INBOX_ENTRIES_MAX: usize = 1000;
pub const INBOX_BYTES_MAX: usize = 8 * 1024 * 1024;

/// Most entries (and their line bytes) a shard queues for one tail before its forwarder
/// takes them; beyond, entries are dropped on the shard.
pub const SHARD_QUEUE_ENTRIES_MAX: usize = 1000;
pub const SHARD_QUEUE_BYTES_MAX: usize = 4 * 1024 * 1024;

/// Loki's `max_concurrent_tail_requests` default: tails of one tenant open at once. Every
/// shard knows every tail, so each counts them all and refuses one more.
pub const TAILS_PER_TENANT_MAX: usize = 10;

/// Most tails a shard keeps, all tenants together: bounds what tails can make a shard hold
/// (each may queue [`SHARD_QUEUE_BYTES_MAX`]).
pub const TAILS_PER_SHARD_MAX: usize = 64;

/// Loki's largest `delay_for`, in seconds.
pub const DELAY_FOR_MAX_SECONDS: u64 = 5;

/// Loki's `tail_max_duration` default: a tail is closed after this long.
pub const TAIL_DURATION_MAX: Duration = Duration::from_secs(3600);

/// How often the session pings its client (Loki's `wsPingPeriod`): a dead connection is
/// noticed by a failing write even when no line arrives.
pub const PING_INTERVAL: Duration = Duration::from_secs(1);

/// Names one tail: the receiving core, and a number unique on that core.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TailKey {
    pub core: usize,
    pub id: u64,
}

/// A tail as every shard sees it. `Send + Sync`: one instance is shared by all cores.
#[derive(Debug)]
pub struct TailSpec {
    pub key: TailKey,
    pub tenant: String,
    /// The streams, and the leading line filters a shard runs as it applies an entry.
    pub selector: LogSelector,
    /// The stages after the leading line filters, run by the shard's forwarder.
    pub pipeline: Arc<Pipeline>,
}

/// An entry a tail sends: labels after the pipeline, split as the categorised encoding needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TailedEntry {
    pub ts: TimestampNs,
    /// The stream labels after the pipeline (without structured metadata and parsed labels).
    pub labels: Arc<Labels>,
    pub line: String,
    pub metadata: Vec<MetadataPair>,
    pub parsed: Vec<MetadataPair>,
}

/// An entry that was dropped before its client got it: Loki reports its labels and time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DroppedEntry {
    pub ts: TimestampNs,
    pub labels: Arc<Labels>,
}

/// What a shard's forwarder sends to a tail's receiving core: entries that passed the whole
/// pipeline, and those the shard had to drop since its last batch. `Send`: it crosses the
/// mesh.
#[derive(Debug)]
pub struct TailBatch {
    pub key: TailKey,
    pub entries: Vec<TailedEntry>,
    pub dropped: Vec<DroppedEntry>,
    /// Drops beyond the listed ones.
    pub dropped_unlisted: u64,
}

/// Appends `entries` to a bounded list of dropped entries; what does not fit is counted.
pub(crate) fn note_dropped(
    list: &mut Vec<DroppedEntry>,
    unlisted: &mut u64,
    entries: impl IntoIterator<Item = DroppedEntry>,
) {
    for e in entries {
        if list.len() < DROPPED_ENTRIES_MAX {
            list.push(e);
        } else {
            *unlisted += 1;
        }
    }
}

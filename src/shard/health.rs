//! Whether a shard takes writes, and why not: what an append refused with says, and what
//! `/ready` and `/metrics` report.
//!
//! Which question it answers: "can this shard take a batch now, and if not, is that a state
//! that ends by itself?" Every refusal is typed ([`AppendError`], [`Refusal`]) so that the
//! HTTP layer can answer as an operator expects: 507 for a full disk, 503 with `Retry-After`
//! for a shard behind on sealing or not open yet, 500 for a log stopped by a failed write.
//! A refused batch is never partly stored in the refusing shard, but for one refusal:
//! [`Refusal::StreamLimit`] takes out only the entries of the tenant's new streams over its
//! limit and stores the rest, as Loki does.

use std::fmt;

use super::Shard;

/// Why a shard refused a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not open for writes: recovering, or stopping. Retry shortly (HTTP 503).
    NotOpen,
    /// The disk has no space for the WAL. Writes resume once space is freed (HTTP 507).
    NoSpace,
    /// Unsealed lines are over their budget: sealing is behind ingest or failing for now.
    /// Retry after a moment (HTTP 503 with `Retry-After`).
    Overloaded,
    /// The WAL stopped for good after a failed write or fsync: only a restart, which replays
    /// what is durable, brings the shard back (HTTP 500).
    WalStopped,
    /// Some streams of the batch were new and over their tenant's active stream limit: their
    /// entries were taken out and the batch's other entries stored (HTTP 429 with Loki's
    /// text). Retried later, they start once some of the tenant's streams go idle.
    StreamLimit,
    /// Some streams of the batch were over their own rate (`per_stream_rate_limit`): their
    /// entries were taken out and the batch's other entries stored (HTTP 429 with Loki's
    /// text).
    StreamRateLimit,
}

impl Refusal {
    /// Whether the condition ends by itself (the client should retry).
    pub fn is_transient(self) -> bool {
        self != Refusal::WalStopped
    }
}

/// A batch a shard did not take, and why. Nothing of it was stored in that shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendError {
    pub refusal: Refusal,
    pub reason: String,
}

impl AppendError {
    pub fn new(refusal: Refusal, reason: impl Into<String>) -> AppendError {
        AppendError {
            refusal,
            reason: reason.into(),
        }
    }
}

impl fmt::Display for AppendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for AppendError {}

/// A condition that makes a shard not ready: it does not take writes, or not all of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotReady {
    /// Replaying its WAL.
    Recovering,
    /// Opened without space for a WAL segment: it answers queries but takes no writes.
    ReadOnly(String),
    /// The WAL cannot prepare its next segment: writes are refused until space is freed.
    DiskFull(String),
    /// Unsealed lines are over their budget: writes wait, then are refused.
    HeadsFull(String),
    /// The WAL stopped after a failed write or fsync.
    WalStopped(String),
}

impl NotReady {
    /// The name `/metrics` uses (`shardlog_shard_not_ready{reason=...}`).
    pub fn name(&self) -> &'static str {
        match self {
            NotReady::Recovering => "recovering",
            NotReady::ReadOnly(_) => "read_only",
            NotReady::DiskFull(_) => "disk_full",
            NotReady::HeadsFull(_) => "heads_full",
            NotReady::WalStopped(_) => "wal_stopped",
        }
    }

    /// Every name, for a complete set of `/metrics` series.
    pub const NAMES: [&'static str; 5] = [
        "recovering",
        "read_only",
        "disk_full",
        "heads_full",
        "wal_stopped",
    ];

    /// How an append is refused while this holds.
    pub fn refusal(&self) -> Refusal {
        match self {
            NotReady::Recovering => Refusal::NotOpen,
            NotReady::ReadOnly(_) | NotReady::DiskFull(_) => Refusal::NoSpace,
            NotReady::HeadsFull(_) => Refusal::Overloaded,
            NotReady::WalStopped(_) => Refusal::WalStopped,
        }
    }
}

impl fmt::Display for NotReady {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotReady::Recovering => f.write_str("replaying the write-ahead log"),
            NotReady::ReadOnly(why) => write!(
                f,
                "read-only: no space for a write-ahead log segment ({why}); queries are \
                 answered, writes resume once space is freed"
            ),
            NotReady::DiskFull(why) => write!(
                f,
                "disk full: {why}; writes are refused until space is freed"
            ),
            NotReady::HeadsFull(why) => write!(f, "behind on sealing: {why}"),
            NotReady::WalStopped(why) => write!(
                f,
                "write-ahead log stopped after a failed write or fsync ({why}); restart the \
                 server to recover from what is durable"
            ),
        }
    }
}

impl Shard {
    /// What keeps this shard from taking every write now, worst first. Empty: ready.
    pub fn health(&self) -> Vec<NotReady> {
        let mut out = Vec::new();
        let wal = self.wal.borrow().clone();
        let Some(wal) = wal else {
            out.push(NotReady::Recovering);
            return out;
        };
        let stats = wal.stats();
        if let Some(why) = stats.poisoned {
            out.push(NotReady::WalStopped(why));
            return out;
        }
        if let Some(why) = stats.no_space {
            if stats.writable {
                out.push(NotReady::DiskFull(why));
            } else {
                out.push(NotReady::ReadOnly(why));
            }
        }
        if let Some(why) = self.heads_over_budget() {
            out.push(NotReady::HeadsFull(why));
        }
        out
    }

    /// The first condition that refuses writes now, as an append would be refused.
    pub fn write_refusal(&self) -> Option<AppendError> {
        self.health()
            .into_iter()
            .next()
            .map(|n| AppendError::new(n.refusal(), format!("shard {}: {n}", self.id)))
    }
}

//! The data model every subsystem shares: tenants, label sets, stream ids and the encoded
//! batch that carries entries from the core that parsed them to the shard that owns them.
//!
//! Which question it answers: "what is a stream, who owns it, and what crosses a core?"
//! A stream is a tenant plus a sorted label set; its id is a stable seeded hash of both
//! ([`stream_hash`]); its owner is `id % shard_count`. Entries cross cores only inside a
//! [`batch::Batch`], whose bytes are also the body of a WAL record.

pub mod batch;
pub mod labels;
pub mod tenant;

pub use batch::{Batch, BatchBuilder, BatchItem, BatchReader, Duplicates, SkimmedItem};
pub use labels::{Labels, stream_hash, stream_hash_sorted};
pub use tenant::{DEFAULT_TENANT, validate_tenant};

/// A stream's stable id: [`stream_hash`] of tenant and sorted labels.
pub type StreamId = u64;

/// Nanoseconds since the Unix epoch, as Loki counts them.
pub type TimestampNs = i64;

/// The shard that owns a stream, for a given number of shards.
pub fn owner_shard(stream: StreamId, shard_count: usize) -> usize {
    assert!(shard_count > 0, "a server has at least one shard");
    (stream % shard_count as u64) as usize
}

/// One key/value pair of structured metadata attached to an entry (Loki's "structured
/// metadata": syslog PROCID/MSGID/SD-params, push metadata, jsonline extra fields).
pub type MetadataPair = (String, String);

//! shardlog: a thread-per-core log aggregation server.
//!
//! The folders are the architecture (see the README's architecture section):
//! - [`model`]: tenants, labels, stream ids, the encoded batch that crosses cores.
//! - [`config`]: the TOML file and the flags, defaults, validation.
//! - [`runtime`]: executors pinned per core, the channel mesh, shutdown.
//! - [`ingest`]: syslog framing and parsing, Loki push and JSON-lines decoding, listeners.
//! - [`wal`]: the per-shard direct-I/O write-ahead log with group commit and replay.
//! - [`shard`]: what one core owns: streams, head chunks, their label index.
//! - [`logql`]: the LogQL lexer, parser and line/label matchers.
//! - [`query`]: Loki query parameters, per-shard evaluation, the cross-shard merge.
//! - [`http`]: the HTTP/1.1 server and the Loki-compatible routes.
//! - [`tail`]: live tailing: tails registered with every shard, their inboxes and sessions.
//! - [`metrics`]: counters, histograms and the Prometheus exposition.
//! - [`storage`]: the disk under the WAL and the parts, real or simulated for crash tests.
//! - [`store`]: a shard's part files and manifest: sealing, checkpoints, compaction, retention.
//! - [`chunk`]: the immutable, compressed part files that head chunks are sealed into.
//! - [`bench`]: the benchmark harness (`shardlog bench`) that drives a real server.
//! - [`preflight`]: what `serve` claims before it starts: the data dir's lock, its addresses.
//! - [`soak`]: the soak (`shardlog soak`): mixed load, kills and restarts, every line checked.
//! - [`doctor`]: host checks (`shardlog doctor`).
//! - [`ruler`]: alerting and recording rules, and the notifications they send.

pub mod agent;
pub mod bench;
pub mod chunk;
pub mod config;
pub mod deletion;
pub mod doctor;
pub mod http;
pub mod ingest;
pub mod logql;
pub mod metrics;
pub mod model;
pub mod preflight;
pub mod query;
pub mod ruler;
pub mod runtime;
pub mod shard;
pub mod soak;
pub mod storage;
pub mod store;
pub mod tail;
pub mod tenants;
pub mod wal;

#[cfg(test)]
mod testing;

//! Deleting lines: Loki's log deletion API, and per-tenant retention, both applied by
//! rewriting part files in the background.
//!
//! Which question it answers: "once a tenant asked for lines to go, how do they disappear
//! from every answer at once, and from the disk soon after, whatever crashes meanwhile?"
//!
//! - A `POST /loki/api/v1/delete` (parsed and checked as Loki does: [`request`]) is made
//!   durable by core 0 in `<data>/delete_requests` ([`file`]) and given to every shard
//!   ([`book::DeleteBook`]) before it is answered 204. From then on every scan skips the
//!   lines it covers, in heads and parts alike (`shard/scan.rs`), so no query shows them.
//! - Each core's pass ([`worker`]) rewrites the parts of its store that hold covered lines
//!   without them (`store/rewrite.rs`: manifest-first, as compaction). Lines still in heads
//!   keep being filtered until a seal puts them in a part, which the next pass rewrites. A
//!   shard has applied a request when no part of its store and no head holds a line of it;
//!   once every shard has, core 0 marks the request `processed` in the file, and scans stop
//!   testing lines against it.
//! - As Loki, the rewrite waits `delete_request_cancel_period` after the request (24 h by
//!   default), during which a `DELETE` may cancel it; the lines are hidden meanwhile.
//! - A crash at any point leaves the request in the file with its status: the lines stay
//!   hidden, each part is the old one or the rewritten one, and the passes after the restart
//!   finish the work.
//! - Retention per tenant (`retention_period`, `retention_stream` in the limits file) drops
//!   expired lines by the same rewrite, every `retention_interval`; a part whose lines all
//!   expired is dropped whole. Expired lines are not hidden before a pass removes them (nor
//!   are they in Loki).
//!
//! Limitation: the read-only stores of shard numbers beyond the core count (after the core
//! count went down) cannot be rewritten; a request that covers lines there stays `received`,
//! and keeps hiding them, and per-tenant retention leaves their lines (the global
//! `retention` still drops their partitions).

pub mod book;
pub mod file;
pub mod request;
pub mod worker;

/// Now, in milliseconds since the epoch (Loki's `model.Now()`).
pub fn now_ms() -> i64 {
    crate::ingest::listeners::now_ns() / 1_000_000
}

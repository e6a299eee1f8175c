//! The query path around LogQL: Loki's HTTP parameter rules ([`params`]) and the merge of the
//! shards' partial results into one response ([`merge`]).
//!
//! Which question it answers: "what exactly did the client ask for, and how do per-shard
//! answers become one?" Per-shard evaluation and planning join this module later.

pub mod merge;
pub mod params;

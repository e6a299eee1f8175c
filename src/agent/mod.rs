//! `shardlog agent`: a file-shipping agent in the same binary, for hosts that write log files.
//!
//! - [`config`]: the TOML file.
//! - [`tail`]: globs, file identity, rotation, reading whole lines.
//! - [`records`]: the line splitter and the multiline assembler.
//! - [`positions`]: the positions file, written atomically.
//! - [`spool`]: the bounded on-disk queue of batches.
//! - [`client`]: one push over HTTP, and the backoff between failures.
//! - [`metrics`]: the agent's `/metrics`.

pub mod client;
pub mod config;
pub mod metrics;
pub mod positions;
pub mod records;
pub mod spool;
pub mod tail;

//! `shardlog agent`: a file-shipping agent in the same binary, for hosts that write log files.
//!
//! - [`config`]: the TOML file.
//! - [`records`]: the line splitter and the multiline assembler.
//! - [`positions`]: the positions file, written atomically.

pub mod config;
pub mod positions;
pub mod records;

//! Ingestion: everything between a socket and an encoded batch bound for its owner shard.
//!
//! Which question it answers: "what did the sender mean, and which stream is it?" Framing
//! splits a TCP byte stream into syslog messages, the parsers turn messages and HTTP bodies
//! into entries with labels and structured metadata (the demo API's `/ingest` entries in
//! [`demo`]), and the listeners (one per protocol on every core, SO_REUSEPORT) batch entries
//! per owner shard and wait for durability.

pub mod demo;
pub mod discovery;
pub mod frame_buffer;
pub mod framing;
pub mod jsonline;
pub mod listeners;
pub mod otlp;
pub mod push;
pub mod relp;
pub mod syslog;
pub mod time_range;
pub mod tls;

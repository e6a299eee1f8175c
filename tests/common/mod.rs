//! The integration-test harness: it starts the real `shardlog` binary on free loopback ports
//! with its own data directory, talks to it over real sockets, and stops or kills it.
//!
//! - [`server`]: process lifecycle (start, wait for `/ready`, SIGTERM, SIGKILL, restart on
//!   the same data directory) and the temporary directories.
//! - [`http`]: a small blocking HTTP/1.1 client.
//! - [`loki`]: pushes, queries, index stats, waiting for syslog lines, metrics parsing.
//! - [`proto`]: Loki's push protobuf and its snappy framing.
//! - [`tools`]: external senders (`logger`, `loggen`, Python) and the skip/fail rule.
//! - [`peers`]: the real Alertmanager and Prometheus the ruler talks to.
//! - [`tmpfs`]: a tmpfs directory for the tests of volatile data dirs.
//! - [`tls`]: a CA and the server and client certificates it signs, per test.
//! - [`relp`]: the librelp client (`tests/clients/relp_send.c`), built once per binary.

// Each test binary compiles this module and uses only part of it.
#![allow(dead_code)]

pub mod http;
pub mod loki;
pub mod peers;
pub mod proto;
pub mod relp;
pub mod server;
pub mod tls;
pub mod tmpfs;
pub mod tools;

// Re-exported for brevity in the tests; each test binary uses a different subset.
#[allow(unused_imports)]
pub use loki::{Entry, IndexStats, QUERY_LIMIT, entries, labels, now_ns};
#[allow(unused_imports)]
pub use server::{Discovery, Server, ServerOptions, TestDir};

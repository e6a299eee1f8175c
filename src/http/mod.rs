//! The HTTP/1.1 server: connections on glommio sockets, request parsing, response encoding.
//!
//! Which question it answers: "how does a request get from a socket to a handler and its
//! answer back?" [`server`] owns connections (accept loop, keep-alive, pipelining, timeouts,
//! limits, graceful stop), [`request`] parses heads and bodies from bytes (pure functions,
//! property-tested), [`response`] encodes answers, [`admission`] decides which connections
//! and request bodies a core takes in (one cap and one budget per core, shared with the
//! syslog TCP listener). The Loki API is handlers on top of this layer: [`loki`] routes,
//! [`ingest_routes`] (push, jsonline), [`otlp_route`] (OTLP logs), [`query_routes`] (queries, labels, series, stats),
//! [`tail_route`] (live tailing over a WebSocket), [`delete_route`] (log deletion),
//! [`demo_routes`] (the demo's API: `/ingest`, `/logs`, `/stats`, `/simulate`);
//! [`json`] writes the responses. No tokio runtime and no hyper.

pub mod admission;
pub mod delete_route;
pub mod demo_routes;
pub mod demo_simulate;
pub mod ingest_routes;
pub mod json;
pub mod loki;
pub mod otlp_route;
pub mod query_render;
pub mod query_routes;
pub mod read_routes;
pub mod request;
pub mod response;
pub mod rules_routes;
pub mod server;
pub mod tail_route;

//! The HTTP/1.1 server: connections on glommio sockets, request parsing, response encoding.
//!
//! Which question it answers: "how does a request get from a socket to a handler and its
//! answer back?" [`server`] owns connections (accept loop, keep-alive, pipelining, timeouts,
//! limits, graceful stop), [`request`] parses heads and bodies from bytes (pure functions,
//! property-tested), [`response`] encodes answers. Routes are handlers on top of this layer;
//! no tokio runtime and no hyper are involved.

pub mod request;
pub mod response;
pub mod server;

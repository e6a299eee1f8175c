//! The ruler: rules evaluated on a schedule, the alerts they raise and the samples they
//! record, and how those leave the server.
//!
//! - [`outbox`]: the queue and thread that deliver alerts, webhook notices and samples.
//! - [`alertmanager`], [`webhook`], [`remote_write`]: the bodies each destination takes.
//! - [`http_client`]: the small blocking HTTP/1.1 client they are posted with.

pub mod alertmanager;
pub mod http_client;
pub mod outbox;
pub mod remote_write;
pub mod webhook;

#[cfg(test)]
mod fake_peer;

//! The counters and gauges of one core's edge: the connections its listeners hold and the bytes
//! of unfinished requests it keeps in memory.
//!
//! Which question it answers: "how much is this core taking in right now, and how much did it
//! turn away?" The gauges here are also the accounting itself: the admission layer
//! (`crate::http::admission`) charges and releases connections and body bytes through
//! [`EdgeStats`], so what `/metrics` shows is exactly what the limits are checked against.
//! Like every metric of a shard, these are single-threaded `Cell`s on the core that owns them.

use std::cell::Cell;

use super::Counter;

/// The kinds of stream listener a core runs; each has its own series.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListenerKind {
    Http,
    SyslogTcp,
    /// Syslog over TLS (RFC 5425).
    SyslogTls,
    /// RELP, over TLS or not.
    Relp,
}

impl ListenerKind {
    pub const ALL: [ListenerKind; 4] = [
        ListenerKind::Http,
        ListenerKind::SyslogTcp,
        ListenerKind::SyslogTls,
        ListenerKind::Relp,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ListenerKind::Http => "http",
            ListenerKind::SyslogTcp => "syslog_tcp",
            ListenerKind::SyslogTls => "syslog_tls",
            ListenerKind::Relp => "relp",
        }
    }
}

/// What one listener of a core did.
#[derive(Debug, Default)]
pub struct ListenerStats {
    pub connections_accepted: Counter,
    /// Failed `accept` calls (EMFILE, ENFILE, ECONNABORTED, ...).
    pub accept_errors: Counter,
    /// Times the accept loop stopped accepting for a moment because the core's connection cap
    /// was reached (the kernel backlog holds the newcomers meanwhile).
    pub accept_paused_at_cap: Counter,
    /// Connections closed by the server because the core's request budget stayed full (syslog
    /// frames that could not grow their buffer).
    pub closed_over_budget: Counter,
    /// Times a connection stopped being read because a shard refused writes for a while (a
    /// full disk, unsealed lines over budget): syslog's backpressure.
    pub paused_for_writes: Counter,
    /// Times a syslog connection stopped being read because its tenant was over its
    /// ingestion rate (syslog cannot refuse a line, so the sender is slowed down).
    pub paused_for_rate: Counter,
    open: Cell<u64>,
}

impl ListenerStats {
    /// Connections of this listener open now.
    pub fn open(&self) -> u64 {
        self.open.get()
    }
}

/// The edge of one core: its listeners and the request bytes it holds.
#[derive(Debug, Default)]
pub struct EdgeStats {
    pub http: ListenerStats,
    pub syslog_tcp: ListenerStats,
    pub syslog_tls: ListenerStats,
    pub relp: ListenerStats,
    /// RELP `syslog` commands answered `200 OK`, each once its line was durable.
    pub relp_acknowledged: Counter,
    /// RELP commands answered `500` (a refused batch, a command out of place or unknown).
    pub relp_refused: Counter,
    /// RELP connections closed because their bytes were not RELP frames.
    pub relp_broken_frames: Counter,
    /// TLS handshakes that failed or timed out (no certificate, an untrusted one, not TLS).
    pub tls_handshake_failures: Counter,
    /// Times a core took a changed certificate, key or client CA into use.
    pub tls_reloads: Counter,
    /// Times changed TLS files could not be used (the previous certificate stayed).
    pub tls_reload_failures: Counter,
    /// HTTP requests read completely and handed to a handler.
    pub http_requests: Counter,
    /// HTTP requests refused by the connection layer (400, 408, 413, 417, 431, 501).
    pub http_requests_rejected: Counter,
    /// HTTP requests answered 503 because the core's budget for unfinished request bodies
    /// had no room for them.
    pub http_requests_over_budget: Counter,
    /// Read requests whose client closed the connection before the answer (their query is
    /// cancelled on every core).
    pub http_requests_abandoned: Counter,
    body_bytes_held: Cell<u64>,
}

impl EdgeStats {
    pub fn listener(&self, kind: ListenerKind) -> &ListenerStats {
        match kind {
            ListenerKind::Http => &self.http,
            ListenerKind::SyslogTcp => &self.syslog_tcp,
            ListenerKind::SyslogTls => &self.syslog_tls,
            ListenerKind::Relp => &self.relp,
        }
    }

    /// Connections open on this core, every listener together.
    pub fn connections_open(&self) -> u64 {
        ListenerKind::ALL
            .iter()
            .map(|&k| self.listener(k).open())
            .sum()
    }

    /// Bytes charged to the core's budget for unfinished requests now.
    pub fn body_bytes_held(&self) -> u64 {
        self.body_bytes_held.get()
    }

    /// Counts a connection in; only the admission layer's slot guard calls this.
    pub(crate) fn connection_opened(&self, kind: ListenerKind) {
        let open = &self.listener(kind).open;
        open.set(open.get() + 1);
    }

    /// Counts a connection out; pairs with [`EdgeStats::connection_opened`].
    pub(crate) fn connection_closed(&self, kind: ListenerKind) {
        let open = &self.listener(kind).open;
        assert!(open.get() > 0, "a connection closed that was never opened");
        open.set(open.get() - 1);
    }

    /// Adds bytes to the held gauge; only the admission layer's charge guard calls this.
    pub(crate) fn hold_body_bytes(&self, bytes: u64) {
        self.body_bytes_held.set(self.body_bytes_held.get() + bytes);
    }

    /// Gives back bytes; pairs with [`EdgeStats::hold_body_bytes`].
    pub(crate) fn release_body_bytes(&self, bytes: u64) {
        let held = self.body_bytes_held.get();
        assert!(held >= bytes, "released {bytes} body bytes of {held} held");
        self.body_bytes_held.set(held - bytes);
    }

    /// A `Send` copy for `/metrics`.
    pub fn snapshot(&self) -> EdgeMetrics {
        let listener = |s: &ListenerStats| ListenerMetrics {
            connections_open: s.open(),
            connections_accepted: s.connections_accepted.get(),
            accept_errors: s.accept_errors.get(),
            accept_paused_at_cap: s.accept_paused_at_cap.get(),
            closed_over_budget: s.closed_over_budget.get(),
            paused_for_writes: s.paused_for_writes.get(),
            paused_for_rate: s.paused_for_rate.get(),
        };
        EdgeMetrics {
            listeners: ListenerKind::ALL.map(|k| listener(self.listener(k))),
            relp_acknowledged: self.relp_acknowledged.get(),
            relp_refused: self.relp_refused.get(),
            relp_broken_frames: self.relp_broken_frames.get(),
            tls_handshake_failures: self.tls_handshake_failures.get(),
            tls_reloads: self.tls_reloads.get(),
            tls_reload_failures: self.tls_reload_failures.get(),
            http_requests: self.http_requests.get(),
            http_requests_rejected: self.http_requests_rejected.get(),
            http_requests_over_budget: self.http_requests_over_budget.get(),
            http_requests_abandoned: self.http_requests_abandoned.get(),
            body_bytes_held: self.body_bytes_held(),
        }
    }
}

/// One listener's values at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListenerMetrics {
    pub connections_open: u64,
    pub connections_accepted: u64,
    pub accept_errors: u64,
    pub accept_paused_at_cap: u64,
    pub closed_over_budget: u64,
    pub paused_for_writes: u64,
    pub paused_for_rate: u64,
}

/// A core's edge at one moment; `listeners` is indexed as [`ListenerKind::ALL`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EdgeMetrics {
    pub listeners: [ListenerMetrics; ListenerKind::ALL.len()],
    pub relp_acknowledged: u64,
    pub relp_refused: u64,
    pub relp_broken_frames: u64,
    pub tls_handshake_failures: u64,
    pub tls_reloads: u64,
    pub tls_reload_failures: u64,
    pub http_requests: u64,
    pub http_requests_rejected: u64,
    pub http_requests_over_budget: u64,
    pub http_requests_abandoned: u64,
    pub body_bytes_held: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauges_pair_up_and_snapshot() {
        let s = EdgeStats::default();
        s.connection_opened(ListenerKind::Http);
        s.connection_opened(ListenerKind::SyslogTcp);
        s.connection_opened(ListenerKind::SyslogTcp);
        assert_eq!(s.connections_open(), 3);
        s.connection_closed(ListenerKind::SyslogTcp);
        s.hold_body_bytes(10);
        s.release_body_bytes(4);
        let m = s.snapshot();
        assert_eq!(m.listeners[0].connections_open, 1);
        assert_eq!(m.listeners[1].connections_open, 1);
        assert_eq!(m.body_bytes_held, 6);
    }

    #[test]
    #[should_panic(expected = "released")]
    fn releasing_more_than_held_is_a_bug() {
        let s = EdgeStats::default();
        s.hold_body_bytes(1);
        s.release_body_bytes(2);
    }
}

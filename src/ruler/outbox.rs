//! The outbox: everything the ruler tells the outside world, queued without waiting and
//! delivered by one thread of its own.
//!
//! Which question it answers: "how do alerts and recorded samples leave the server without a
//! core ever waiting on a network peer?" The ruler runs on glommio executors, which must not
//! block; delivery is blocking HTTP with timeouts and retries. So [`Outbox`] is a cloneable,
//! `Send + Sync` handle whose `send_*` methods only append to a bounded queue under a lock
//! held for the append (never during I/O), and one std thread, `shardlog-notify`, takes
//! batches from the queues and posts them:
//!
//! - **Alerts** go to every configured Alertmanager (`POST <url>/api/v2/alerts`, the v2 API),
//!   at most [`ALERTS_PER_REQUEST_MAX`] per request and one tenant per request (its
//!   `X-Scope-OrgID`, for multi-tenant Alertmanagers, as Loki's ruler sends). As in
//!   Prometheus' notifier, a failed request is counted and logged and not retried: the ruler
//!   sends every active alert again at its next resend, which is the retry. A batch that no
//!   Alertmanager took is counted as dropped, as Prometheus counts it.
//! - **Webhook notices** go to every webhook URL, one JSON object per request. There is no
//!   resend behind them, so a failure that may pass (a connection error, a timeout, a 5xx) is
//!   retried [`RETRIES_MAX`] times with backoff before it is counted as an error.
//! - **Samples** of recording rules go to every remote-write URL as Prometheus remote write
//!   1.0, at most [`SAMPLES_PER_REQUEST_MAX`] per request, one tenant per request; 5xx and
//!   connection failures are retried with backoff as Prometheus retries them, 4xx (including
//!   429, as Prometheus' default `retry_on_http_429: false`) are not, since the same body
//!   would be refused again.
//!
//! Alerts go first, then webhook notices, then samples: one slow remote-write receiver
//! delays an alert by at most one request of samples.
//!
//! Each queue holds at most `queue_capacity` items (alerts, notices, samples). When a send
//! would overflow it, the oldest queued items are dropped to make room, as Prometheus'
//! notifier drops them (a newer alert state supersedes an older one), the drop is counted,
//! and the send returns `false`. The queues live in memory only: what is queued at exit is
//! lost, and the ruler's state, not the outbox, is what survives a restart.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::alertmanager::{self, ALERTS_PATH, ALERTS_PER_REQUEST_MAX};
use super::http_client::{Client, Endpoint, HttpError, Response, UrlError};
use super::remote_write::{self, SAMPLES_PER_REQUEST_MAX};
use super::webhook;

/// Items each queue holds (Prometheus' `--alertmanager.notification-queue-capacity` default).
pub const QUEUE_CAPACITY_DEFAULT: usize = 10_000;

/// How long one request may take, connection to answer (Prometheus' Alertmanager timeout).
pub const TIMEOUT_DEFAULT: Duration = Duration::from_secs(10);

/// Retries of a webhook or remote-write request after a failure that may pass: enough to
/// ride out a receiver's restart or a dropped connection, few enough that samples queued
/// behind a dead receiver do not hold the thread for long (Prometheus retries remote write
/// without end, but has a queue per receiver).
pub const RETRIES_MAX: u32 = 3;

/// The first pause before a retry, doubled after each (Prometheus' `min_backoff`)...
const BACKOFF_MIN: Duration = Duration::from_millis(30);
/// ...up to this (Prometheus' `max_backoff`).
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Where notifications go and how long a request may take.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxConfig {
    /// Alertmanagers' base URLs (with their path prefix, if any); `/api/v2/alerts` is added.
    pub alertmanager_urls: Vec<String>,
    /// URLs that webhook notices are posted to as they are.
    pub webhook_urls: Vec<String>,
    /// Remote-write receivers' full URLs (`http://prometheus:9090/api/v1/write`).
    pub remote_write_urls: Vec<String>,
    pub timeout: Duration,
    /// Items each queue holds (see the module doc).
    pub queue_capacity: usize,
}

impl Default for OutboxConfig {
    fn default() -> OutboxConfig {
        OutboxConfig {
            alertmanager_urls: Vec::new(),
            webhook_urls: Vec::new(),
            remote_write_urls: Vec::new(),
            timeout: TIMEOUT_DEFAULT,
            queue_capacity: QUEUE_CAPACITY_DEFAULT,
        }
    }
}

/// The configured URLs, parsed.
struct Destinations {
    alertmanagers: Vec<Endpoint>,
    webhooks: Vec<Endpoint>,
    remote_writes: Vec<Endpoint>,
}

impl OutboxConfig {
    /// Parses every URL; the error names the setting and the URL.
    fn destinations(&self) -> Result<Destinations, String> {
        let parse = |flag: &str, urls: &[String]| {
            urls.iter()
                .map(|u| Endpoint::parse(u).map_err(|e: UrlError| format!("--{flag}: {e}")))
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(Destinations {
            alertmanagers: parse("alertmanager-url", &self.alertmanager_urls)?
                .iter()
                .map(|e| e.join(ALERTS_PATH))
                .collect(),
            webhooks: parse("webhook-url", &self.webhook_urls)?,
            remote_writes: parse("remote-write-url", &self.remote_write_urls)?,
        })
    }

    /// Checks what [`Outbox::start`] checks, without starting anything (for the
    /// configuration's validation).
    pub fn validate(&self) -> Result<(), String> {
        if self.timeout.is_zero() {
            return Err("--notify-timeout: must be above zero".into());
        }
        if self.queue_capacity == 0 {
            return Err("the notification queue capacity must be at least 1".into());
        }
        self.destinations().map(|_| ())
    }
}

/// One alert for Alertmanager, as the ruler computed it.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertNotice {
    pub labels: Vec<(String, String)>,
    pub annotations: Vec<(String, String)>,
    pub starts_at_ms: i64,
    /// `Some` in the past for a resolved alert; for a firing one, when it lapses unless sent
    /// again (Prometheus sends four resend intervals ahead).
    pub ends_at_ms: Option<i64>,
    pub generator_url: String,
}

/// One event for a plain webhook (see `webhook` for the body).
#[derive(Clone, Debug, PartialEq)]
pub struct WebhookNotice {
    pub rule: String,
    pub level: String,
    pub message: String,
    pub count: u64,
    pub window: String,
    pub time_ms: i64,
    pub labels: Vec<(String, String)>,
    /// `firing` or `resolved`.
    pub state: String,
}

/// One series of a recording rule and its samples (Unix ms, value).
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// With `__name__`; sorted when encoded.
    pub labels: Vec<(String, String)>,
    pub samples: Vec<(i64, f64)>,
}

/// What the outbox did since it started, for `/metrics`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OutboxStats {
    /// Alerts an Alertmanager took, counted once per Alertmanager.
    pub alerts_sent: u64,
    /// Alerts in requests that failed, counted once per Alertmanager.
    pub alerts_errors: u64,
    /// Alerts dropped from a full queue, or that no Alertmanager took.
    pub alerts_dropped: u64,
    /// Notices a webhook took, counted once per URL.
    pub webhooks_sent: u64,
    /// Notices that failed after their retries, counted once per URL.
    pub webhooks_errors: u64,
    /// Notices dropped from a full queue.
    pub webhooks_dropped: u64,
    /// Samples a remote-write receiver took, counted once per receiver.
    pub samples_sent: u64,
    /// Samples in requests that failed after their retries, counted once per receiver.
    pub samples_errors: u64,
    /// Samples dropped from a full queue.
    pub samples_dropped: u64,
    /// Alerts and notices waiting.
    pub queue_length: u64,
    /// Samples waiting.
    pub samples_pending: u64,
}

/// The ruler's handle on the notifier thread (see the module doc). Cloning is cheap; the
/// thread ends when the last clone is dropped.
#[derive(Clone)]
pub struct Outbox {
    handle: Arc<Handle>,
}

/// Closes the queues when the last [`Outbox`] goes.
struct Handle {
    shared: Arc<Shared>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shared.lock().closing = true;
        self.shared.wake.notify_all();
    }
}

struct Shared {
    queues: Mutex<Queues>,
    /// The thread waits on it for work.
    wake: Condvar,
    /// [`Outbox::drain`] waits on it for empty queues.
    idle: Condvar,
    capacity: usize,
    alertmanagers: usize,
    webhooks: usize,
    remote_writes: usize,
    counters: Counters,
}

#[derive(Default)]
struct Queues {
    alerts: VecDeque<(Arc<str>, AlertNotice)>,
    webhooks: VecDeque<WebhookNotice>,
    series: VecDeque<(Arc<str>, Series)>,
    /// Samples in `series`, the unit of its capacity.
    samples: usize,
    /// A batch is being delivered.
    in_flight: bool,
    closing: bool,
}

impl Queues {
    fn is_empty(&self) -> bool {
        self.alerts.is_empty() && self.webhooks.is_empty() && self.series.is_empty()
    }
}

#[derive(Default)]
struct Counters {
    alerts_sent: AtomicU64,
    alerts_errors: AtomicU64,
    alerts_dropped: AtomicU64,
    webhooks_sent: AtomicU64,
    webhooks_errors: AtomicU64,
    webhooks_dropped: AtomicU64,
    samples_sent: AtomicU64,
    samples_errors: AtomicU64,
    samples_dropped: AtomicU64,
}

impl Shared {
    fn new(capacity: usize, destinations: &Destinations) -> Shared {
        Shared {
            queues: Mutex::new(Queues::default()),
            wake: Condvar::new(),
            idle: Condvar::new(),
            capacity,
            alertmanagers: destinations.alertmanagers.len(),
            webhooks: destinations.webhooks.len(),
            remote_writes: destinations.remote_writes.len(),
            counters: Counters::default(),
        }
    }

    /// The queues; a panic elsewhere while holding them leaves them consistent (every
    /// change is a single push or pop), so a poisoned lock is taken as it is.
    fn lock(&self) -> MutexGuard<'_, Queues> {
        self.queues.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Outbox {
    /// Checks every URL and starts the `shardlog-notify` thread; with no URL at all, the
    /// outbox is [`Outbox::disabled`] and no thread starts. The error names the bad URL.
    pub fn start(config: OutboxConfig) -> std::io::Result<Outbox> {
        let invalid = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, e);
        config.validate().map_err(invalid)?;
        let destinations = config.destinations().map_err(invalid)?;
        if destinations.alertmanagers.is_empty()
            && destinations.webhooks.is_empty()
            && destinations.remote_writes.is_empty()
        {
            return Ok(Outbox::disabled());
        }
        let shared = Arc::new(Shared::new(config.queue_capacity, &destinations));
        let worker = Worker {
            shared: shared.clone(),
            client: Client::new(config.timeout),
            destinations,
        };
        std::thread::Builder::new()
            .name("shardlog-notify".into())
            .spawn(move || worker.run())?;
        Ok(Outbox {
            handle: Arc::new(Handle { shared }),
        })
    }

    /// An outbox with nowhere to send: every send is accepted and forgotten.
    pub fn disabled() -> Outbox {
        let none = Destinations {
            alertmanagers: Vec::new(),
            webhooks: Vec::new(),
            remote_writes: Vec::new(),
        };
        Outbox {
            handle: Arc::new(Handle {
                shared: Arc::new(Shared::new(1, &none)),
            }),
        }
    }

    fn shared(&self) -> &Shared {
        &self.handle.shared
    }

    /// The queues, for a test to see when the thread has let go of them.
    #[cfg(test)]
    fn shared_weak(&self) -> std::sync::Weak<Shared> {
        Arc::downgrade(&self.handle.shared)
    }

    /// Queues `alerts` of `tenant` for every Alertmanager; never blocks. False if the queue
    /// overflowed and alerts were dropped (counted; see the module doc). With no
    /// Alertmanager configured the alerts are forgotten and the answer is true.
    pub fn send_alerts(&self, tenant: &str, alerts: Vec<AlertNotice>) -> bool {
        let shared = self.shared();
        if shared.alertmanagers == 0 || alerts.is_empty() {
            return true;
        }
        let Some(tenant) = checked_tenant(tenant) else {
            shared
                .counters
                .alerts_dropped
                .fetch_add(alerts.len() as u64, Relaxed);
            return false;
        };
        let mut queues = shared.lock();
        let incoming = alerts.len();
        let overflow = (queues.alerts.len() + incoming).saturating_sub(shared.capacity);
        // The oldest go first: queued ones, then (for a batch larger than the queue) the
        // first of the batch itself.
        let from_queue = overflow.min(queues.alerts.len());
        queues.alerts.drain(..from_queue);
        queues.alerts.extend(
            alerts
                .into_iter()
                .skip(overflow - from_queue)
                .map(|a| (tenant.clone(), a)),
        );
        drop(queues);
        shared.wake.notify_one();
        self.dropped(&shared.counters.alerts_dropped, overflow, "alerts")
    }

    /// Queues `notice` for every webhook URL; never blocks. False if the queue overflowed.
    pub fn send_webhook(&self, notice: WebhookNotice) -> bool {
        let shared = self.shared();
        if shared.webhooks == 0 {
            return true;
        }
        let mut queues = shared.lock();
        let overflow = (queues.webhooks.len() + 1).saturating_sub(shared.capacity);
        queues.webhooks.drain(..overflow);
        queues.webhooks.push_back(notice);
        drop(queues);
        shared.wake.notify_one();
        self.dropped(
            &shared.counters.webhooks_dropped,
            overflow,
            "webhook notices",
        )
    }

    /// Queues the samples of `tenant` for every remote-write receiver; never blocks. False
    /// if the queue overflowed and samples were dropped (whole series, oldest first).
    pub fn send_samples(&self, tenant: &str, series: Vec<Series>) -> bool {
        let shared = self.shared();
        let series: Vec<Series> = series
            .into_iter()
            .filter(|s| !s.samples.is_empty())
            .collect();
        if shared.remote_writes == 0 || series.is_empty() {
            return true;
        }
        let Some(tenant) = checked_tenant(tenant) else {
            let samples: usize = series.iter().map(|s| s.samples.len()).sum();
            shared
                .counters
                .samples_dropped
                .fetch_add(samples as u64, Relaxed);
            return false;
        };
        let mut queues = shared.lock();
        let mut dropped = 0;
        for s in series {
            queues.samples += s.samples.len();
            queues.series.push_back((tenant.clone(), s));
        }
        // Whole series leave from the front until the rest fits; a single series larger
        // than the queue goes too.
        while queues.samples > shared.capacity {
            let (_, old) = queues.series.pop_front().expect("samples are queued");
            queues.samples -= old.samples.len();
            dropped += old.samples.len();
        }
        drop(queues);
        shared.wake.notify_one();
        self.dropped(&shared.counters.samples_dropped, dropped, "samples")
    }

    fn dropped(&self, counter: &AtomicU64, n: usize, what: &str) -> bool {
        if n == 0 {
            return true;
        }
        counter.fetch_add(n as u64, Relaxed);
        eprintln!(
            "shardlog: notify: the queue of {what} is full ({} items): dropped the {n} oldest",
            self.shared().capacity
        );
        false
    }

    /// Waits until everything queued has been delivered or given up on, for at most
    /// `within`; true if the queues are empty. It blocks: for shutdown and tests, never on
    /// an executor.
    pub fn drain(&self, within: Duration) -> bool {
        let shared = self.shared();
        let deadline = Instant::now() + within;
        let mut queues = shared.lock();
        while !queues.is_empty() || queues.in_flight {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            queues = shared
                .idle
                .wait_timeout(queues, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        true
    }

    /// The counters and queue lengths now.
    pub fn stats(&self) -> OutboxStats {
        let shared = self.shared();
        let c = &shared.counters;
        let (queue_length, samples_pending) = {
            let q = shared.lock();
            ((q.alerts.len() + q.webhooks.len()) as u64, q.samples as u64)
        };
        OutboxStats {
            alerts_sent: c.alerts_sent.load(Relaxed),
            alerts_errors: c.alerts_errors.load(Relaxed),
            alerts_dropped: c.alerts_dropped.load(Relaxed),
            webhooks_sent: c.webhooks_sent.load(Relaxed),
            webhooks_errors: c.webhooks_errors.load(Relaxed),
            webhooks_dropped: c.webhooks_dropped.load(Relaxed),
            samples_sent: c.samples_sent.load(Relaxed),
            samples_errors: c.samples_errors.load(Relaxed),
            samples_dropped: c.samples_dropped.load(Relaxed),
            queue_length,
            samples_pending,
        }
    }

    /// Appends the outbox's metrics in the Prometheus text format, under the names of
    /// Prometheus' notifier (`prometheus_notifications_*`) and remote-write queue
    /// (`prometheus_remote_storage_samples_*`) with our prefix.
    pub fn render_metrics(&self, out: &mut String) {
        let s = self.stats();
        let shared = self.shared();
        let per_kind = |out: &mut String, name: &str, help: &str, alerts: u64, webhooks: u64| {
            header(out, name, "counter", help);
            let _ = writeln!(out, "{name}{{kind=\"alertmanager\"}} {alerts}");
            let _ = writeln!(out, "{name}{{kind=\"webhook\"}} {webhooks}");
        };
        per_kind(
            out,
            "shardlog_notifications_sent_total",
            "Alerts an Alertmanager took (kind=alertmanager, once per Alertmanager) and \
             notices a webhook took (kind=webhook, once per URL).",
            s.alerts_sent,
            s.webhooks_sent,
        );
        per_kind(
            out,
            "shardlog_notifications_errors_total",
            "Alerts and webhook notices in requests that failed, once per destination.",
            s.alerts_errors,
            s.webhooks_errors,
        );
        per_kind(
            out,
            "shardlog_notifications_dropped_total",
            "Alerts and webhook notices dropped from a full queue, and alerts no \
             Alertmanager took.",
            s.alerts_dropped,
            s.webhooks_dropped,
        );
        let gauge = |out: &mut String, name: &str, help: &str, value: u64| {
            header(out, name, "gauge", help);
            let _ = writeln!(out, "{name} {value}");
        };
        let counter = |out: &mut String, name: &str, help: &str, value: u64| {
            header(out, name, "counter", help);
            let _ = writeln!(out, "{name} {value}");
        };
        gauge(
            out,
            "shardlog_notifications_queue_length",
            "Alerts and webhook notices waiting to be sent.",
            s.queue_length,
        );
        gauge(
            out,
            "shardlog_notifications_queue_capacity",
            "Items each notification queue holds.",
            shared.capacity as u64,
        );
        gauge(
            out,
            "shardlog_notifications_alertmanagers_discovered",
            "Alertmanagers configured.",
            shared.alertmanagers as u64,
        );
        counter(
            out,
            "shardlog_remote_write_samples_total",
            "Recording-rule samples a remote-write receiver took, once per receiver.",
            s.samples_sent,
        );
        counter(
            out,
            "shardlog_remote_write_samples_failed_total",
            "Samples in remote-write requests that failed after their retries.",
            s.samples_errors,
        );
        counter(
            out,
            "shardlog_remote_write_samples_dropped_total",
            "Samples dropped from a full remote-write queue.",
            s.samples_dropped,
        );
        gauge(
            out,
            "shardlog_remote_write_samples_pending",
            "Samples waiting to be sent.",
            s.samples_pending,
        );
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// The tenant as a shared string, if it is a valid tenant id (and so a valid header value).
fn checked_tenant(tenant: &str) -> Option<Arc<str>> {
    match crate::model::validate_tenant(tenant) {
        Ok(()) => Some(Arc::from(tenant)),
        Err(e) => {
            eprintln!("shardlog: notify: not sending for an invalid tenant: {e}");
            None
        }
    }
}

/// One request's worth of work, taken from the queues.
enum Batch {
    Alerts(Arc<str>, Vec<AlertNotice>),
    Webhook(WebhookNotice),
    Samples(Arc<str>, Vec<Series>),
}

/// The `shardlog-notify` thread's state.
struct Worker {
    shared: Arc<Shared>,
    client: Client,
    destinations: Destinations,
}

impl Worker {
    fn run(mut self) {
        while let Some(batch) = self.next_batch() {
            self.deliver(batch);
            let mut queues = self.shared.lock();
            queues.in_flight = false;
            if queues.is_empty() {
                self.shared.idle.notify_all();
            }
        }
        // Closed: what is still queued is dropped, and counted.
        let mut queues = self.shared.lock();
        let c = &self.shared.counters;
        c.alerts_dropped
            .fetch_add(queues.alerts.len() as u64, Relaxed);
        c.webhooks_dropped
            .fetch_add(queues.webhooks.len() as u64, Relaxed);
        c.samples_dropped.fetch_add(queues.samples as u64, Relaxed);
        *queues = Queues {
            closing: true,
            ..Queues::default()
        };
        self.shared.idle.notify_all();
    }

    /// Waits for work: alerts first, then notices, then samples; `None` once closed.
    fn next_batch(&self) -> Option<Batch> {
        let mut queues = self.shared.lock();
        loop {
            if queues.closing {
                return None;
            }
            if let Some((tenant, _)) = queues.alerts.front() {
                let tenant = tenant.clone();
                let n = queues
                    .alerts
                    .iter()
                    .take(ALERTS_PER_REQUEST_MAX)
                    .take_while(|(t, _)| *t == tenant)
                    .count();
                let alerts = queues.alerts.drain(..n).map(|(_, a)| a).collect();
                queues.in_flight = true;
                return Some(Batch::Alerts(tenant, alerts));
            }
            if let Some(notice) = queues.webhooks.pop_front() {
                queues.in_flight = true;
                return Some(Batch::Webhook(notice));
            }
            if let Some((tenant, _)) = queues.series.front() {
                let tenant = tenant.clone();
                let mut series = Vec::new();
                let mut samples = 0;
                // At least one series, however long; then more while they fit.
                while let Some((t, s)) = queues.series.front() {
                    let fits = samples + s.samples.len() <= SAMPLES_PER_REQUEST_MAX;
                    if *t != tenant || (!series.is_empty() && !fits) {
                        break;
                    }
                    let (_, s) = queues.series.pop_front().expect("just seen");
                    samples += s.samples.len();
                    series.push(s);
                }
                queues.samples -= samples;
                queues.in_flight = true;
                return Some(Batch::Samples(tenant, series));
            }
            queues = self
                .shared
                .wake
                .wait(queues)
                .unwrap_or_else(|p| p.into_inner());
        }
    }

    fn deliver(&mut self, batch: Batch) {
        let c = &self.shared.counters;
        match batch {
            Batch::Alerts(tenant, alerts) => {
                let body = alertmanager::encode_alerts(&alerts);
                let n = alerts.len() as u64;
                let headers = [
                    ("Content-Type", "application/json"),
                    ("X-Scope-OrgID", &*tenant),
                ];
                let mut taken = false;
                for endpoint in &self.destinations.alertmanagers {
                    // No retry: the ruler's next resend is the retry (see the module doc).
                    match self.client.post(endpoint, &headers, &body) {
                        Ok(r) if r.is_success() => {
                            c.alerts_sent.fetch_add(n, Relaxed);
                            taken = true;
                        }
                        outcome => {
                            c.alerts_errors.fetch_add(n, Relaxed);
                            log_failure("alerts", n, endpoint, &outcome);
                        }
                    }
                }
                if !taken {
                    c.alerts_dropped.fetch_add(n, Relaxed);
                }
            }
            Batch::Webhook(notice) => {
                let body = webhook::encode_webhook(&notice);
                let headers = [("Content-Type", "application/json")];
                for i in 0..self.destinations.webhooks.len() {
                    let endpoint = &self.destinations.webhooks[i];
                    match post_with_retries(&mut self.client, endpoint, &headers, &body) {
                        Ok(r) if r.is_success() => c.webhooks_sent.fetch_add(1, Relaxed),
                        outcome => {
                            log_failure("webhook notices", 1, endpoint, &outcome);
                            c.webhooks_errors.fetch_add(1, Relaxed)
                        }
                    };
                }
            }
            Batch::Samples(tenant, series) => {
                let body = remote_write::encode(&series);
                let n: u64 = series.iter().map(|s| s.samples.len() as u64).sum();
                let mut headers: Vec<(&str, &str)> = remote_write::HEADERS.to_vec();
                headers.push(("X-Scope-OrgID", &tenant));
                for endpoint in &self.destinations.remote_writes {
                    match post_with_retries(&mut self.client, endpoint, &headers, &body) {
                        Ok(r) if r.is_success() => c.samples_sent.fetch_add(n, Relaxed),
                        outcome => {
                            log_failure("samples", n, endpoint, &outcome);
                            c.samples_errors.fetch_add(n, Relaxed)
                        }
                    };
                }
            }
        }
    }
}

/// Posts, retrying failures that may pass (connection errors, timeouts, 5xx) up to
/// [`RETRIES_MAX`] times with doubling pauses; returns the last outcome.
fn post_with_retries(
    client: &mut Client,
    endpoint: &Endpoint,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Response, HttpError> {
    let mut pause = BACKOFF_MIN;
    let mut attempt = 0;
    loop {
        let outcome = client.post(endpoint, headers, body);
        let transient = match &outcome {
            Ok(r) => r.status >= 500,
            Err(e) => e.is_transient(),
        };
        if !transient || attempt == RETRIES_MAX {
            return outcome;
        }
        attempt += 1;
        std::thread::sleep(pause);
        pause = (pause * 2).min(BACKOFF_MAX);
    }
}

fn log_failure(what: &str, n: u64, endpoint: &Endpoint, outcome: &Result<Response, HttpError>) {
    let why = match outcome {
        Ok(r) => format!("status {}: {}", r.status, r.body_text()),
        Err(e) => e.to_string(),
    };
    eprintln!(
        "shardlog: notify: {n} {what} not sent to {}: {why}",
        endpoint.url
    );
}

#[cfg(test)]
#[path = "outbox_tests.rs"]
mod tests;

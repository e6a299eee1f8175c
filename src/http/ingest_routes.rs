//! `POST /loki/api/v1/push` and `POST /insert/jsonline`: decode, batch per owner shard,
//! wait until every owner has made its batch durable, then answer `204 No Content`.
//!
//! All or nothing on input: a request that fails to decode or validate stores nothing. Once
//! decoded, batches go to their owners concurrently; if one owner cannot write (its WAL
//! stopped), the answer is 500 and the client retries, as it would with Loki.
//!
//! A decoded request is held in memory until its batches are durable, so before anything is
//! sent its decoded size is added to the request's charge on the core's budget for unfinished
//! requests (503 with `Retry-After` if the budget has no room now, 413 if it never will): a
//! small compressed body cannot hold megabytes through a slow commit unaccounted.

use std::rc::Rc;
use std::time::Duration;

use super::loki::tenant;
use super::request::{OVER_BUDGET_RETRY_AFTER_SECONDS, Request};
use super::response::Response;
use crate::ingest::discovery::{LevelDiscovery, add_detected_level, level_from_labels};
use crate::ingest::jsonline::{JsonLineParams, JsonLines, decode_jsonline};
use crate::ingest::listeners::now_ns;
use crate::ingest::push::validate::echo;
use crate::ingest::push::{
    Decoded, PushEntry, PushError, PushLimits, Rule, Truncated, decode_push, decompress,
};
use crate::model::{BatchBuilder, Duplicates, Labels, owner_shard, stream_hash};
use crate::runtime::Core;
use crate::shard::{AppendError, DiscardReason, Protocol, Refusal};
use crate::tenants::limits::TenantLimits;
use crate::tenants::rate::Refused;
use crate::tenants::rate_limited_message;

/// What a push is decoded under: the server's sizes and the tenant's label limits.
pub(super) fn push_limits(core: &Core, tenant: &TenantLimits) -> PushLimits {
    PushLimits {
        body_bytes_max: core.config.push_body_bytes_max,
        line_bytes_max: tenant.max_line_size,
        labels_per_stream_max: tenant.max_label_names_per_series,
        label_name_bytes_max: tenant.max_label_name_length,
        label_value_bytes_max: tenant.max_label_value_length,
        truncate_long_lines: tenant.max_line_size_truncate,
        service_name_from: tenant.discovery.service_name_from.clone(),
    }
}

/// The discard reason of a validation rule: Loki's name for it where Loki has one.
pub(super) fn discard_reason(rule: Rule) -> DiscardReason {
    match rule {
        Rule::LineTooLong => DiscardReason::LineTooLong,
        Rule::MaxLabelNamesPerSeries => DiscardReason::MaxLabelNamesPerSeries,
        Rule::LabelNameTooLong => DiscardReason::LabelNameTooLong,
        Rule::LabelValueTooLong => DiscardReason::LabelValueTooLong,
        Rule::DuplicateLabelNames => DiscardReason::DuplicateLabelNames,
        Rule::InvalidLabels => DiscardReason::InvalidLabels,
        Rule::MissingLabels => DiscardReason::MissingLabels,
        Rule::StructuredMetadataTooLarge => DiscardReason::StructuredMetadataTooLarge,
        Rule::StructuredMetadataTooMany => DiscardReason::StructuredMetadataTooMany,
        Rule::Other => DiscardReason::InvalidRequest,
    }
}

/// Answers a request that could not be decoded or validated, and counts it: a validation
/// refusal as the entries of the request (all refused) under the rule's reason; a body that
/// could not be decoded, or that was too large or of a type not decoded, as one request,
/// whose entries are not known.
pub(super) fn refuse(core: &Core, tenant: &str, e: PushError) -> Response {
    count_refused(core, tenant, &e);
    Response::text(e.status(), &format!("{e}\n"))
}

/// Counts a request refused with `e` as [`refuse`] does, for routes that answer in a shape
/// of their own.
pub(super) fn count_refused(core: &Core, tenant: &str, e: &PushError) {
    let (reason, lines) = match e {
        PushError::Invalid { violation, lines } => (discard_reason(violation.rule), *lines),
        PushError::BadRequest(_) | PushError::UnsupportedMediaType(_) => {
            (DiscardReason::InvalidRequest, 1)
        }
        PushError::TooLarge(_) => (DiscardReason::TooLarge, 1),
    };
    core.shard.counters.discard_for(tenant, reason, lines);
}

/// Counts the lines of a request that were cut to fit (`max_line_size_truncate`), once the
/// request is past its tenant's rate and the core's budget: from then on they are stored
/// (short of a failed write), and a refused request's lines are counted as discarded
/// instead. Loki counts them as mutated samples, not as discarded ones.
pub(super) fn count_truncated(core: &Core, tenant: &str, truncated: Truncated) {
    if truncated.lines > 0 {
        core.shard
            .counters
            .truncated_for(tenant, truncated.lines, truncated.bytes);
    }
}

/// Structured metadata an entry is stored with: as sent, and its `detected_level` when the
/// tenant's `discover_log_levels` is on (after validation, as in Loki's distributor, so it
/// does not count toward the metadata limits). Borrowed: no allocation per entry while the
/// pairs fit inline.
pub(super) fn entry_metadata<'a>(
    levels: &StreamLevel<'a>,
    e: &'a PushEntry,
) -> smallvec::SmallVec<[(&'a str, &'a str); 8]> {
    let mut md: smallvec::SmallVec<[(&str, &str); 8]> = e
        .metadata
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    if let StreamLevel::Detect(from_labels) = levels {
        add_detected_level(&mut md, *from_labels, &e.line);
    }
    md
}

/// Whether a stream's entries get `detected_level`, and the level its labels give them:
/// looked up once per stream, not per entry.
pub(super) enum StreamLevel<'a> {
    Off,
    Detect(Option<&'a str>),
}

impl<'a> StreamLevel<'a> {
    pub(super) fn of(limits: &TenantLimits, labels: &'a Labels) -> StreamLevel<'a> {
        match limits.discovery.log_levels {
            LevelDiscovery::Off => StreamLevel::Off,
            LevelDiscovery::On => StreamLevel::Detect(level_from_labels(|n| labels.get(n))),
        }
    }
}

/// Bytes a decoded entry holds beyond its line and metadata: the entry's own structures and
/// string headers, and its part of the batch header and per-entry encoding.
const DECODED_ENTRY_OVERHEAD_BYTES: usize = 128;

/// What a decoded request holds until its batches are durable: each line and metadata pair
/// twice (decoded, then encoded into its batch) and [`DECODED_ENTRY_OVERHEAD_BYTES`] each.
pub(super) fn decoded_bytes<'a>(entries: impl Iterator<Item = &'a PushEntry>) -> usize {
    entries
        .map(|e| {
            let metadata: usize = e.metadata.iter().map(|(k, v)| k.len() + v.len()).sum();
            2 * (e.line.len() + metadata) + DECODED_ENTRY_OVERHEAD_BYTES
        })
        .sum()
}

/// Lines and bytes (line and structured metadata, as Loki counts them) of some entries.
pub(super) fn rate_size<'a>(entries: impl Iterator<Item = &'a PushEntry>) -> (u64, u64) {
    entries.fold((0, 0), |(lines, bytes), e| {
        let metadata: usize = e.metadata.iter().map(|(k, v)| k.len() + v.len()).sum();
        (lines + 1, bytes + (e.line.len() + metadata) as u64)
    })
}

/// Charges a request to its tenant's ingestion rate, or answers Loki's 429 with the time it
/// would take to fit as `Retry-After`. Nothing of a refused request is stored.
pub(super) fn charge_rate(
    core: &Core,
    tenant: &str,
    limits: &TenantLimits,
    (lines, bytes): (u64, u64),
) -> Result<(), Response> {
    let limit = &limits.ingestion_rate;
    let retry_after = match core.lifecycle.ingestion_rates.take(tenant, bytes, limit) {
        Ok(()) => return Ok(()),
        Err(Refused::Later(wait)) => wait,
        // Larger than the burst: it never fits whole; the client may split it.
        Err(Refused::Never) => Duration::from_secs_f64(bytes as f64 / limit.bytes_per_second),
    };
    core.shard
        .counters
        .discard_for(tenant, DiscardReason::RateLimited, lines);
    let message = rate_limited_message(tenant, limit, lines, bytes);
    Err(Response::text(429, &format!("{message}\n")).with_header(
        "Retry-After",
        (retry_after.as_secs_f64().ceil() as u64).max(1).to_string(),
    ))
}

/// Adds `decoded` bytes to the request's charge, or answers why not.
pub(super) fn hold_decoded(
    core: &Core,
    tenant: &str,
    req: &Request,
    decoded: usize,
) -> Result<(), Response> {
    let total = req.charge.bytes().saturating_add(decoded);
    req.charge.grow_to(total).map_err(|e| {
        core.shard.edge.http_requests_over_budget.inc();
        if e.can_ever_fit() {
            Response::text(503, &format!("{e}\n"))
                .with_header("Retry-After", OVER_BUDGET_RETRY_AFTER_SECONDS.to_string())
        } else {
            core.shard
                .counters
                .discard_for(tenant, DiscardReason::TooLarge, 1);
            Response::text(413, &format!("{e}\n"))
        }
    })
}

pub async fn push(core: &Rc<Core>, req: &Request) -> Response {
    // The core's compaction pauses while a push is decoded and stored
    // (`runtime::courtesy`).
    let _busy = crate::runtime::courtesy::Busy::enter();
    let tenant = match tenant(core, req, true) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let limits = core.limits.for_tenant(&tenant);
    let Decoded { streams, truncated } = match decode_push(
        req.header("content-type"),
        req.header("content-encoding"),
        &req.body,
        &push_limits(core, &limits),
    ) {
        Ok(d) => d,
        Err(e) => return refuse(core, &tenant, e),
    };
    let size = rate_size(streams.iter().flat_map(|s| &s.entries));
    if let Err(refused) = charge_rate(core, &tenant, &limits, size) {
        return refused;
    }
    let decoded = decoded_bytes(streams.iter().flat_map(|s| &s.entries));
    if let Err(refused) = hold_decoded(core, &tenant, req, decoded) {
        return refused;
    }
    count_truncated(core, &tenant, truncated);
    // Loki's ingester drops an exact duplicate (stream, timestamp, line), and Loki clients
    // rely on it to retry a push they got no answer to.
    let mut batches = Batches::new(core, &tenant, &limits, Duplicates::Drop);
    batches.reserve(size);
    for stream in &streams {
        let id = stream_hash(&tenant, &stream.labels);
        let levels = StreamLevel::of(&limits, &stream.labels);
        for e in &stream.entries {
            let md = entry_metadata(&levels, e);
            batches.push(id, &stream.labels, e.timestamp_ns, &e.line, &md);
        }
    }
    batches.commit(Protocol::LokiPush).await
}

pub async fn jsonline(core: &Rc<Core>, req: &Request) -> Response {
    let _busy = crate::runtime::courtesy::Busy::enter();
    let tenant = match tenant(core, req, true) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let params = match JsonLineParams::from_query(&req.query) {
        Ok(p) => p,
        Err(e) => return refuse(core, &tenant, e),
    };
    let limits = core.limits.for_tenant(&tenant);
    let decode_limits = push_limits(core, &limits);
    let body = match decompress(
        req.header("content-encoding"),
        &req.body,
        decode_limits.body_bytes_max,
    ) {
        Ok(b) => b,
        Err(e) => return refuse(core, &tenant, e),
    };
    let JsonLines { rows, truncated } =
        match decode_jsonline(&params, &body, now_ns(), &decode_limits) {
            Ok(d) => d,
            Err(e) => return refuse(core, &tenant, e),
        };
    drop(body);
    let size = rate_size(rows.iter().map(|(_, e)| e));
    if let Err(refused) = charge_rate(core, &tenant, &limits, size) {
        return refused;
    }
    // Each row carries its own labels, held as long as the row.
    let labels: usize = rows
        .iter()
        .flat_map(|(l, _)| l.pairs())
        .map(|(k, v)| k.len() + v.len())
        .sum();
    if let Err(refused) = hold_decoded(
        core,
        &tenant,
        req,
        decoded_bytes(rows.iter().map(|(_, e)| e)) + labels,
    ) {
        return refused;
    }
    count_truncated(core, &tenant, truncated);
    // VictoriaLogs keeps equal rows, and a row without a time field takes the request's
    // receive time: equal messages of one body would look like duplicates.
    let mut batches = Batches::new(core, &tenant, &limits, Duplicates::Keep);
    batches.reserve(size);
    for (labels, e) in &rows {
        let id = stream_hash(&tenant, labels);
        let md = entry_metadata(&StreamLevel::of(&limits, labels), e);
        batches.push(id, labels, e.timestamp_ns, &e.line, &md);
    }
    batches.commit(Protocol::JsonLine).await
}

/// One request's entries, gathered per owner shard.
pub(super) struct Batches<'a> {
    core: &'a Rc<Core>,
    tenant: &'a str,
    builders: Vec<BatchBuilder>,
    now_ns: i64,
    skew_max_ns: i64,
    /// Entries older than this are refused (`reject_old_samples`), with Loki's messages.
    oldest_ns: Option<i64>,
    /// Entries newer than this are refused (`creation_grace_period`), for Loki pushes.
    newest_ns: Option<i64>,
    too_old: TooOld,
}

/// Entries a push refused for their time (too old, or too far in the future): Loki stores
/// the rest of the push and answers 400 with one message per refused entry, grouped as its
/// `GroupedErrors` groups them.
#[derive(Default)]
pub(super) struct TooOld {
    pub(super) entries: u64,
    /// Of `entries`, those too far in the future (the others are too old).
    too_new: u64,
    /// Distinct messages in the order first seen, with how many entries gave each.
    messages: Vec<(String, u64)>,
}

/// Messages a 400 repeats at most; the rest are counted in a last one.
const TOO_OLD_MESSAGES_MAX: usize = 100;

impl TooOld {
    fn add(&mut self, message: String) {
        self.entries += 1;
        if let Some((_, n)) = self.messages.iter_mut().find(|(m, _)| *m == message) {
            *n += 1;
        } else if self.messages.len() < TOO_OLD_MESSAGES_MAX {
            self.messages.push((message, 1));
        }
    }

    /// Loki's `GroupedErrors` text: `N errors like: ` before a message when there are
    /// several, joined by `; `.
    pub(super) fn text(&self) -> String {
        let several = self.messages.len() > 1;
        let mut parts: Vec<String> = self
            .messages
            .iter()
            .map(|(m, n)| {
                if several || *n > 1 {
                    format!("{n} errors like: {m}")
                } else {
                    m.clone()
                }
            })
            .collect();
        let shown: u64 = self.messages.iter().map(|(_, n)| n).sum();
        if self.entries > shown {
            parts.push(format!(
                "{} more entries with timestamps out of range",
                self.entries - shown
            ));
        }
        parts.join("; ")
    }
}

/// Loki's time format in validation messages (Go's RFC 3339, whole seconds, UTC).
fn rfc3339_seconds(ns: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ns.div_euclid(1_000_000_000))
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ns.to_string())
}

impl<'a> Batches<'a> {
    pub(super) fn new(
        core: &'a Rc<Core>,
        tenant: &'a str,
        limits: &TenantLimits,
        duplicates: Duplicates,
    ) -> Batches<'a> {
        let now_ns = now_ns();
        Batches {
            core,
            tenant,
            builders: (0..core.shards)
                .map(|_| BatchBuilder::with_duplicates(tenant, duplicates))
                .collect(),
            now_ns,
            skew_max_ns: core.config.future_skew_max.as_nanos() as i64,
            oldest_ns: limits.reject_old_samples.then(|| {
                let age =
                    i64::try_from(limits.reject_old_samples_max_age.as_nanos()).unwrap_or(i64::MAX);
                now_ns.saturating_sub(age)
            }),
            // Loki refuses a pushed entry beyond `creation_grace_period` (its client can be
            // told, and resend with a right clock), so a Loki push does so here too, and never
            // clamps. JSON lines keep `future_skew_max`'s clamp, as syslog does: their
            // senders have no per-entry refusal to act on.
            newest_ns: (duplicates == Duplicates::Drop).then(|| {
                let grace =
                    i64::try_from(limits.creation_grace_period.as_nanos()).unwrap_or(i64::MAX);
                now_ns.saturating_add(grace)
            }),
            too_old: TooOld::default(),
        }
    }

    /// Makes room in the builders for a request's entries, `(entries, bytes)` as
    /// [`rate_size`] counts them, spread evenly over the shards (streams are hashed to
    /// them); a builder that gets more than its share grows once or twice.
    pub(super) fn reserve(&mut self, (entries, bytes): (u64, u64)) {
        let shards = self.builders.len().max(1);
        for b in &mut self.builders {
            b.reserve_entries(
                usize::try_from(entries).unwrap_or(0).div_ceil(shards),
                usize::try_from(bytes).unwrap_or(0).div_ceil(shards),
            );
        }
    }

    pub(super) fn push(
        &mut self,
        id: u64,
        labels: &Labels,
        ts: i64,
        line: &str,
        md: &[(&str, &str)],
    ) {
        if let Some(oldest) = self.oldest_ns
            && ts < oldest
        {
            // Loki's `validation.GreaterThanMaxSampleAgeErrorMsg`.
            self.too_old.add(format!(
                "entry for stream '{}' has timestamp too old: {}, oldest acceptable timestamp \
                 is: {}",
                echo(&labels.to_string()),
                rfc3339_seconds(ts),
                rfc3339_seconds(oldest)
            ));
            return;
        }
        if let Some(newest) = self.newest_ns
            && ts > newest
        {
            // Loki's `validation.TooFarInFutureErrorMsg`.
            self.too_old.too_new += 1;
            self.too_old.add(format!(
                "entry for stream '{}' has timestamp too new: {}",
                echo(&labels.to_string()),
                rfc3339_seconds(ts)
            ));
            return;
        }
        let mut ts = ts;
        if self.newest_ns.is_none() && ts > self.now_ns.saturating_add(self.skew_max_ns) {
            self.core.shard.counters.timestamps_clamped.inc();
            ts = self.now_ns;
        }
        let owner = owner_shard(id, self.core.shards);
        self.builders[owner].push(id, labels, ts, line, md);
    }

    /// Sends every batch to its owner concurrently and answers once all are durable; if
    /// some entries were too old, the answer is Loki's 400 naming them (the others are
    /// stored, as Loki stores them).
    async fn commit(self, protocol: Protocol) -> Response {
        let (stored, too_old) = self.commit_counted(protocol).await;
        if too_old.entries == 0 || stored.status != 204 {
            return stored;
        }
        Response::text(400, &format!("{}\n", too_old.text()))
    }

    /// Sends every batch to its owner and waits until all are durable: the answer of the
    /// sends (204, or the worst refusal), and the entries refused for their time, counted as
    /// discarded when the rest was stored.
    pub(super) async fn commit_counted(mut self, protocol: Protocol) -> (Response, TooOld) {
        let (core, tenant) = (self.core, self.tenant);
        let too_old = std::mem::take(&mut self.too_old);
        let stored = self.send(protocol).await;
        if too_old.entries == 0 || stored.status != 204 {
            return (stored, too_old);
        }
        for (reason, n) in [
            (
                DiscardReason::GreaterThanMaxSampleAge,
                too_old.entries - too_old.too_new,
            ),
            (DiscardReason::TooFarInFuture, too_old.too_new),
        ] {
            if n > 0 {
                core.shard.counters.discard_for(tenant, reason, n);
            }
        }
        (stored, too_old)
    }

    /// Other cores' batches go out first, each in a task of its own; this core's batch is
    /// appended by this task itself, so that the WAL's commit wakes it directly and the push
    /// is answered before the commit's lines are applied (see `Shard::on_durable`), rather
    /// than after a second task hop.
    async fn send(self, protocol: Protocol) -> Response {
        let here = self.core.id;
        let mut local = None;
        let mut tasks = Vec::new();
        for (owner, mut builder) in self.builders.into_iter().enumerate() {
            if builder.is_empty() {
                continue;
            }
            let batch = builder.finish();
            if owner == here {
                local = Some(batch);
                continue;
            }
            let core = self.core.clone();
            let task = glommio::spawn_local_into(
                async move { core.send_batch(owner, batch, protocol).await },
                self.core.ingest_tq,
            )
            .expect("the ingest queue exists")
            .detach();
            tasks.push(task);
        }
        let mut results = Vec::with_capacity(tasks.len() + 1);
        if let Some(batch) = local {
            results.push(Some(self.core.send_batch(here, batch, protocol).await));
        }
        for t in tasks {
            results.push(t.await);
        }
        let mut failure: Option<AppendError> = None;
        for result in results {
            let e = match result {
                Some(Ok(())) => continue,
                Some(Err(e)) => e,
                None => AppendError::new(Refusal::NotOpen, "a batch send was cancelled"),
            };
            // The worst refusal decides the answer: a stopped WAL over a full disk over a
            // state that passes over new streams refused (whose batches stored the rest).
            let rank = |r: Refusal| match r {
                Refusal::WalStopped => 4,
                Refusal::NoSpace => 3,
                Refusal::Overloaded => 2,
                Refusal::NotOpen => 1,
                Refusal::StreamLimit | Refusal::StreamRateLimit => 0,
            };
            if failure
                .as_ref()
                .is_none_or(|f| rank(e.refusal) > rank(f.refusal))
            {
                failure = Some(e);
            }
        }
        match failure {
            None => Response::no_content(),
            Some(e) => Response::refused_write(&e),
        }
    }
}

//! Rewriting one part without some of its lines: deleted lines (Loki's deletion API) and
//! expired ones (per-tenant retention). The store does not know why a line goes; a
//! [`LineDropper`] says so, stream by stream.
//!
//! Which question it answers: "how does a part lose lines without a crash ever losing a line
//! that stays, or bringing back one that went?" One step ([`Store::rewrite_part`]) is
//! compaction's with one input:
//! 1. from the part's stream headers alone (tenant, labels, block time ranges), ask the
//!    dropper which streams may lose lines; none: nothing is read;
//! 2. read every block, keeping the lines the dropper keeps, in the part's order;
//! 3. nothing dropped: the part stays. Everything dropped: the manifest drops the part.
//!    Otherwise the kept lines are encoded off the core (compaction options, the part's
//!    level) and written durably under a new id in the same partition;
//! 4. under the store's lock, if the part is still named (a compaction, retention or
//!    quarantine may have removed it meanwhile: then the new file is deleted and nothing
//!    changes), one manifest replacement names the new part instead of the old.
//!
//! A crash before step 4's manifest is durable leaves the old part (the new file is garbage,
//! deleted at the next open), after it the new one: whoever asked for the rewrite must keep
//! hiding the dropped lines until it has seen the commit (the deletion requests stay in
//! their durable file until then).

use std::rc::Rc;
use std::time::Duration;

use super::compaction::{CompactingMark, IoPacer};
use super::part_file::LoadedPart;
use super::{Change, Store, StoreError};
use crate::model::{Labels, TimestampNs};

/// Why a line is dropped, for the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    Deleted,
    Expired,
}

/// What a rewrite drops of one stream: `Some(reason)` for a line (with its structured
/// metadata) to drop.
pub type StreamRule<'a> =
    Box<dyn Fn(TimestampNs, &str, &[(&str, &str)]) -> Option<DropReason> + 'a>;

/// Decides which lines a rewrite drops.
pub trait LineDropper {
    /// Whether lines of `tenant` may be dropped at all: a part's streams of other tenants
    /// are copied without a look at their labels.
    fn may_drop_tenant(&self, _tenant: &str) -> bool {
        true
    }

    /// Whether a line with a timestamp in `[min, max]` may be dropped at all: a part
    /// outside every rule's reach is left without reading its metadata.
    fn may_drop_in(&self, _min: TimestampNs, _max: TimestampNs) -> bool {
        true
    }

    /// The rule for a stream whose blocks span `[min, max]`, or `None` if none of its lines
    /// can be dropped (then its blocks are copied as they are).
    fn for_stream(
        &self,
        tenant: &str,
        labels: &Labels,
        min: TimestampNs,
        max: TimestampNs,
    ) -> Option<StreamRule<'_>>;
}

/// What a rewrite did to one part.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RewriteReport {
    /// The part could not lose lines (from its headers): nothing was read.
    pub untouched: bool,
    /// Nothing was looked at: a compaction or another rewrite was running, or the store is
    /// read-only.
    pub busy: bool,
    /// Lines dropped, by reason, per tenant (empty if none).
    pub dropped: Vec<(String, DropReason, u64)>,
    /// Whether the manifest changed: the part was replaced (or removed, if nothing was left).
    /// `false` with lines dropped: the part was removed by someone else meanwhile, or another
    /// rewrite or compaction was running; the caller tries again later.
    pub committed: bool,
    /// The part that replaced it, if any.
    pub output: Option<u64>,
}

impl RewriteReport {
    pub fn dropped_lines(&self) -> u64 {
        self.dropped.iter().map(|d| d.2).sum()
    }
}

/// Where a test stops a rewrite so that it can kill the process there
/// (`SHARDLOG_TEST_REWRITE_PAUSE=written|committed`): after the new part is durable but not
/// named, or after the manifest names it.
pub const REWRITE_PAUSE_ENV: &str = "SHARDLOG_TEST_REWRITE_PAUSE";

async fn pause_for_test(point: &str) {
    static PAUSE: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let wanted = PAUSE.get_or_init(|| std::env::var(REWRITE_PAUSE_ENV).ok());
    if wanted.as_deref() == Some(point) {
        eprintln!("shardlog: test pause: a part rewrite stops {point}");
        loop {
            glommio::timer::sleep(Duration::from_secs(3600)).await;
        }
    }
}

impl Store {
    /// Rewrites `part` without the lines `dropper` drops (see the module doc).
    pub async fn rewrite_part(
        &self,
        part: &Rc<LoadedPart>,
        dropper: &dyn LineDropper,
    ) -> Result<RewriteReport, StoreError> {
        let mut report = RewriteReport::default();
        if !self.writable || self.compacting.borrow().is_some() {
            report.busy = true;
            return Ok(report);
        }
        // Which streams may lose lines, from a stream's tenant, labels and blocks' time range;
        // the merge asks the same for each stream it writes.
        let rule_for = |tenant: &str, labels: &Labels, min: TimestampNs, max: TimestampNs| {
            if !dropper.may_drop_tenant(tenant) || min > max {
                return None;
            }
            dropper.for_stream(tenant, labels, min, max)
        };
        // Step 1: from the headers alone; no stream may lose a line: nothing is read but
        // the part's metadata (and not even that when its time range is out of reach).
        if !dropper.may_drop_in(part.entry.min_ts, part.entry.max_ts) {
            report.untouched = true;
            return Ok(report);
        }
        let tail = match part.tail(None).await {
            Ok(tail) => tail,
            Err(e) => {
                if e.is_corruption() {
                    eprintln!("shardlog: rewriting a part: {e}; moving the part to quarantine");
                    self.quarantine(part.entry.id).await;
                }
                return Err(e);
            }
        };
        // The read yielded: a compaction may have started meanwhile.
        if self.compacting.borrow().is_some() {
            report.busy = true;
            return Ok(report);
        }
        let may_drop = {
            let reader = tail.reader();
            reader.streams().iter().any(|s| {
                let (min, max) = s.block_range().fold((i64::MAX, i64::MIN), |(lo, hi), i| {
                    let b = &reader.blocks()[i];
                    (lo.min(b.min_ts.to_native()), hi.max(b.max_ts.to_native()))
                });
                let labels = Labels::from_pairs(
                    s.labels.iter().map(|p| (p.name.as_str(), p.value.as_str())),
                );
                rule_for(s.tenant.as_str(), &labels, min, max).is_some()
            })
        };
        if !may_drop {
            report.untouched = true;
            return Ok(report);
        }
        *self.compacting.borrow_mut() = Some(part.entry.partition.clone());
        let _mark = CompactingMark(self);
        let mut pacer = IoPacer::new(self.opts.compaction_bytes_per_second);

        // Steps 2 and 3: the kept lines stream into a new part, written only if a line went.
        let merged = match self
            .merge_parts(
                std::slice::from_ref(part),
                &part.entry.partition,
                part.entry.partition_start,
                part.entry.level,
                // A bundle holds cold data only: it keeps the cold encoding.
                if super::paths::is_bundle(&part.entry.partition) {
                    self.opts.cold
                } else {
                    self.opts.compact
                },
                &rule_for,
                true,
                &mut pacer,
            )
            .await
        {
            Ok(merged) => merged,
            Err(e) => {
                drop(_mark);
                return Err(e);
            }
        };
        if merged.dropped.is_empty() {
            return Ok(report);
        }
        report.dropped = merged.dropped;
        let new = merged.part;
        if new.is_some() {
            pause_for_test("written").await;
        }

        // Step 4.
        let guard = self.lock().await;
        let named = self
            .parts
            .borrow()
            .iter()
            .any(|p| p.entry.id == part.entry.id);
        if !named {
            if let Some(new) = new {
                self.discard_unnamed(new).await;
            }
            return Ok(report);
        }
        report.output = new.as_ref().map(|p| p.entry.id);
        self.commit_locked(
            Change {
                add: new.into_iter().collect(),
                remove: vec![part.entry.id],
                ..Change::default()
            },
            || {},
        )
        .await?;
        report.committed = true;
        self.counters.rewritten_parts.inc();
        drop(guard);
        pause_for_test("committed").await;
        Ok(report)
    }
}

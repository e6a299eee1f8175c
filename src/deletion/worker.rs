//! Each core's deletion pass, in its background queue: rewrites the parts of its own store
//! that hold lines of delete requests past their cancel period, or lines that per-tenant
//! retention let expire; says when it has applied a request. Core 0 also collects every
//! shard's progress and marks requests `processed` (see the module doc of
//! [`crate::deletion`]).

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::book::{BookChange, DeleteBook};
use super::request::CompiledRequest;
use crate::model::{Labels, TimestampNs};
use crate::runtime::Core;
use crate::shard::{ShardAnswer, ShardRequest};
use crate::store::rewrite::{DropReason, LineDropper, StreamRule};
use crate::tenants::limits::TenantRetention;

/// How often a core looks for delete requests to apply. A look with nothing to do costs a
/// borrow and a comparison; with work, the first pass rewrites and later ones only check
/// heads and the parts sealed since.
pub const PASS_INTERVAL: Duration = Duration::from_secs(1);

/// Loads the delete requests into this core's shard (core 0 keeps the file) and starts the
/// core's pass. An unreadable or corrupt file stops the server: starting without it would
/// show deleted lines again.
pub fn start(core: &Rc<Core>) -> Result<(), String> {
    let data_dir = core.config.data_dir.clone();
    let requests = super::file::read(&data_dir).map_err(|e| e.to_string())?;
    let book = DeleteBook::new(requests)?;
    core.shard
        .init_deletes(book, (core.id == 0).then_some(data_dir));
    let core = core.clone();
    let tq = core.background_tq;
    glommio::spawn_local_into(
        async move {
            let mut last_retention: Option<Instant> = None;
            while !core.lifecycle.is_stopping() {
                glommio::timer::sleep(PASS_INTERVAL).await;
                if !core.lifecycle.all_recovered() || core.lifecycle.is_stopping() {
                    continue;
                }
                let retention_due =
                    last_retention.is_none_or(|t| t.elapsed() >= core.config.retention_interval);
                if retention_due {
                    last_retention = Some(Instant::now());
                }
                pass(&core, retention_due).await;
                if core.id == 0 {
                    mark_processed(&core).await;
                }
            }
        },
        tq,
    )
    .map_err(|e| format!("cannot start the deletion pass: {e}"))?
    .detach();
    Ok(())
}

/// What one pass drops: lines of the ready delete requests, and expired lines.
struct Dropper<'a> {
    requests: &'a [Arc<CompiledRequest>],
    retention: &'a HashMap<String, TenantRetention>,
    now_ns: TimestampNs,
}

impl LineDropper for Dropper<'_> {
    fn may_drop_tenant(&self, tenant: &str) -> bool {
        self.retention.contains_key(tenant)
            || self.requests.iter().any(|r| r.request.tenant == tenant)
    }

    fn may_drop_in(&self, min: TimestampNs, max: TimestampNs) -> bool {
        self.requests.iter().any(|r| r.overlaps(min, max))
            || self.retention.values().any(|r| {
                r.shortest_period().is_some_and(|p| {
                    min < self
                        .now_ns
                        .saturating_sub(i64::try_from(p.as_nanos()).unwrap_or(i64::MAX))
                })
            })
    }

    fn for_stream(
        &self,
        tenant: &str,
        labels: &Labels,
        min: TimestampNs,
        max: TimestampNs,
    ) -> Option<StreamRule<'_>> {
        let requests: Vec<&CompiledRequest> = self
            .requests
            .iter()
            .filter(|r| r.request.tenant == tenant && r.overlaps(min, max) && r.selects(labels))
            .map(|r| &**r)
            .collect();
        let expired_before = self
            .retention
            .get(tenant)
            .and_then(|r| r.period_for(labels))
            .map(|p| {
                self.now_ns
                    .saturating_sub(i64::try_from(p.as_nanos()).unwrap_or(i64::MAX))
            })
            .filter(|&cutoff| min < cutoff);
        if requests.is_empty() && expired_before.is_none() {
            return None;
        }
        let labels = labels.clone();
        Some(Box::new(move |ts, line, metadata| {
            if expired_before.is_some_and(|cutoff| ts < cutoff) {
                Some(DropReason::Expired)
            } else if requests
                .iter()
                .any(|r| r.deletes(ts, line, &labels, metadata))
            {
                Some(DropReason::Deleted)
            } else {
                None
            }
        }))
    }
}

/// One pass over this core's store (see the module doc).
async fn pass(core: &Rc<Core>, retention_due: bool) {
    let shard = &core.shard;
    let book = shard.delete_book();
    let cancel_ms =
        i64::try_from(core.config.delete_request_cancel_period.as_millis()).unwrap_or(i64::MAX);
    let now_ms = super::now_ms();
    let ready: Vec<Arc<CompiledRequest>> = book
        .active()
        .filter(|r| r.request.created_at_ms.saturating_add(cancel_ms) <= now_ms)
        .cloned()
        .collect();
    let retention: HashMap<String, TenantRetention> = if retention_due {
        core.limits.retentions().into_iter().collect()
    } else {
        HashMap::new()
    };
    if ready.is_empty() && retention.is_empty() {
        return;
    }
    let Some(store) = shard.own_store() else {
        return;
    };
    let dropper = Dropper {
        requests: &ready,
        retention: &retention,
        now_ns: crate::ingest::listeners::now_ns(),
    };
    for part in store.parts() {
        let id = part.entry.id;
        let pending = ready
            .iter()
            .any(|r| !shard.is_part_clean(&r.request.request_id, id));
        if !pending && retention.is_empty() {
            continue;
        }
        if core.lifecycle.is_stopping() {
            return;
        }
        let report = match store.rewrite_part(&part, &dropper).await {
            Ok(r) => r,
            Err(e) => {
                eprintln!("shard {}: rewriting part {id}: {e}", shard.id);
                break;
            }
        };
        if report.busy {
            continue;
        }
        if report.committed {
            for (tenant, reason, n) in &report.dropped {
                shard.count_deletion(tenant, |c| match reason {
                    DropReason::Deleted => c.deleted_lines += n,
                    DropReason::Expired => c.retention_dropped_lines += n,
                });
            }
        }
        // The part, if it lost nothing, or the part that replaced it, holds no line of any
        // ready request: the dropper tested each of them.
        let clean = if report.dropped.is_empty() {
            Some(id)
        } else if report.committed {
            report.output
        } else {
            None
        };
        if let Some(clean) = clean {
            for r in &ready {
                shard.mark_part_clean(&r.request.request_id, clean);
            }
        }
    }
    // Read-only stores do not change: what they hold is read (their parts' metadata
    // included) before the look below.
    let mut foreign_hold = Vec::with_capacity(ready.len());
    for r in &ready {
        foreign_hold.push(foreign_stores_hold(core, r).await);
    }
    // Checked without a yield: a seal round that commits between the look at the parts and
    // the look at the heads would otherwise hide lines from both.
    for (r, foreign) in ready.iter().zip(foreign_hold) {
        let rid = &r.request.request_id;
        if shard.is_delete_done(rid) || foreign {
            continue;
        }
        if shard.all_parts_clean(rid) && !shard.heads_hold(r) {
            shard.mark_delete_done(rid);
        }
    }
}

/// Whether a read-only store (which cannot be rewritten) may hold lines of `r`, from its
/// part headers. A part whose metadata cannot be read counts as holding them: the request is
/// not called done on a guess.
async fn foreign_stores_hold(core: &Core, r: &CompiledRequest) -> bool {
    for store in core.shard.foreign_stores().iter() {
        for part in store.parts() {
            if !r.overlaps(part.entry.min_ts, part.entry.max_ts) {
                continue;
            }
            let tail = match part.tail(None).await {
                Ok(tail) => tail,
                Err(e) => {
                    eprintln!("shard {}: {e}", core.shard.id);
                    return true;
                }
            };
            let reader = tail.reader();
            let holds = reader.streams().iter().any(|s| {
                s.tenant.as_str() == r.request.tenant
                    && s.block_range().any(|i| {
                        let b = &reader.blocks()[i];
                        r.overlaps(b.min_ts.to_native(), b.max_ts.to_native())
                    })
                    && r.selects(&Labels::from_pairs(
                        s.labels.iter().map(|p| (p.name.as_str(), p.value.as_str())),
                    ))
            });
            if holds {
                return true;
            }
        }
    }
    false
}

/// Core 0: the requests every shard has applied become `processed` (in the file first).
async fn mark_processed(core: &Rc<Core>) {
    let book = core.shard.delete_book();
    if !book.has_active() {
        return;
    }
    let answers = match core.fan_out(ShardRequest::DeletesDone).await {
        Ok(a) => a,
        Err(e) => {
            eprintln!("shardlog: deletion: asking the shards for their progress: {e}");
            return;
        }
    };
    let mut done: Vec<String> = book
        .active()
        .map(|r| r.request.request_id.clone())
        .collect();
    for answer in &answers {
        match answer {
            ShardAnswer::DeletesDone(ids) => done.retain(|id| ids.contains(id)),
            _ => return,
        }
    }
    if done.is_empty() {
        return;
    }
    match core
        .fan_out(ShardRequest::Deletes(BookChange::Processed(done)))
        .await
    {
        Ok(answers) => {
            for a in answers {
                if let ShardAnswer::Failed(e) = a {
                    eprintln!("shardlog: deletion: marking requests processed: {e}");
                }
            }
        }
        Err(e) => eprintln!("shardlog: deletion: marking requests processed: {e}"),
    }
}

//! What a shard keeps of deletion: its copy of the delete requests ([`DeleteBook`]), which
//! its scans filter with, what its background pass has done for each request, and its
//! deletion counters. The pass itself is in [`crate::deletion::worker`].

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::rc::Rc;

use super::Shard;
use crate::deletion::book::{BookChange, DeleteBook};
use crate::deletion::request::CompiledRequest;
use crate::store::Store;

/// One tenant's deletion counts on one core.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeletionCounts {
    /// Delete requests received (on the core that answered the `POST`).
    pub requests_received: u64,
    /// Lines removed from parts by delete requests.
    pub deleted_lines: u64,
    /// Lines removed from parts by the tenant's retention.
    pub retention_dropped_lines: u64,
}

/// A shard's deletion state.
#[derive(Default)]
pub struct ShardDeletes {
    book: RefCell<Rc<DeleteBook>>,
    /// Where the book is persisted: set on the one shard that writes the file (core 0).
    file_dir: RefCell<Option<PathBuf>>,
    /// Per request id, the parts of the own store known to hold none of its lines.
    clean_parts: RefCell<HashMap<String, HashSet<u64>>>,
    /// Requests this shard has applied: no line of theirs in its heads or parts.
    done: RefCell<HashSet<String>>,
    counts: RefCell<HashMap<String, DeletionCounts>>,
}

impl Shard {
    /// The delete requests as this shard knows them.
    pub fn delete_book(&self) -> Rc<DeleteBook> {
        self.deletes.book.borrow().clone()
    }

    /// Starts with the book read from the file; `file_dir`: this shard writes the file.
    pub fn init_deletes(&self, book: DeleteBook, file_dir: Option<PathBuf>) {
        *self.deletes.book.borrow_mut() = Rc::new(book);
        *self.deletes.file_dir.borrow_mut() = file_dir;
    }

    /// Applies a change to the book: the shard that owns the file writes it durably first,
    /// so a change is acknowledged only once it would survive a crash.
    pub(super) fn change_deletes(&self, change: &BookChange) -> Result<(), String> {
        let current = self.delete_book();
        let Some(next) = current.with(change)? else {
            return Ok(());
        };
        if let Some(dir) = self.deletes.file_dir.borrow().as_ref() {
            crate::deletion::file::write(dir, next.all()).map_err(|e| e.to_string())?;
        }
        // A request that no longer applies needs no more bookkeeping.
        let gone: Vec<String> = match change {
            BookChange::Processed(ids) => ids.clone(),
            BookChange::Cancel { request_id, .. } => vec![request_id.clone()],
            BookChange::Add(_) => Vec::new(),
        };
        let mut clean = self.deletes.clean_parts.borrow_mut();
        let mut done = self.deletes.done.borrow_mut();
        for id in &gone {
            clean.remove(id);
            done.remove(id);
        }
        drop((clean, done));
        *self.deletes.book.borrow_mut() = Rc::new(next);
        Ok(())
    }

    /// Ids of the requests this shard has applied.
    pub(super) fn deletes_done(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.deletes.done.borrow().iter().cloned().collect();
        ids.sort();
        ids
    }

    pub fn mark_delete_done(&self, request_id: &str) {
        self.deletes
            .done
            .borrow_mut()
            .insert(request_id.to_string());
    }

    pub fn is_delete_done(&self, request_id: &str) -> bool {
        self.deletes.done.borrow().contains(request_id)
    }

    /// Records that part `part` of the own store holds no line of `request_id`.
    pub fn mark_part_clean(&self, request_id: &str, part: u64) {
        self.deletes
            .clean_parts
            .borrow_mut()
            .entry(request_id.to_string())
            .or_default()
            .insert(part);
    }

    pub fn is_part_clean(&self, request_id: &str, part: u64) -> bool {
        self.deletes
            .clean_parts
            .borrow()
            .get(request_id)
            .is_some_and(|s| s.contains(&part))
    }

    /// Whether every part of the own store is known clean of `request_id`.
    pub fn all_parts_clean(&self, request_id: &str) -> bool {
        let Some(store) = self.own_store() else {
            return true;
        };
        let clean = self.deletes.clean_parts.borrow();
        let set = clean.get(request_id);
        store
            .parts()
            .iter()
            .all(|p| set.is_some_and(|s| s.contains(&p.entry.id)))
    }

    /// Whether a head (live, or taken by a seal round not committed yet) holds a line the
    /// request deletes: then the request is not applied here until those lines are sealed
    /// and their part rewritten. Does not yield.
    pub fn heads_hold(&self, req: &CompiledRequest) -> bool {
        let end = req.last_ns.saturating_add(1);
        let streams = self.heads();
        let selected = streams.select(&req.request.tenant, &req.matchers, req.first_ns, end);
        let holds = |h: &super::head::StreamHead| {
            h.candidate_range(req.first_ns, end).any(|i| {
                let e = h.entry(i);
                let metadata: Vec<(&str, &str)> = if req.reads_metadata() {
                    e.metadata.iter().collect()
                } else {
                    Vec::new()
                };
                req.deletes(e.ts, e.line, &h.labels, &metadata)
            })
        };
        for &idx in &selected {
            let h = streams.head(idx);
            if holds(h) {
                return true;
            }
            for set in self.sealing.borrow().iter() {
                if let Some(i) = set.index_of(h.id)
                    && holds(&set.heads[i])
                {
                    return true;
                }
            }
        }
        false
    }

    /// This shard's own part store, once recovered.
    pub fn own_store(&self) -> Option<Rc<Store>> {
        self.store.borrow().clone()
    }

    /// The read-only stores of shard numbers beyond the core count that this shard serves.
    pub fn foreign_stores(&self) -> Vec<Rc<Store>> {
        self.foreign_stores.borrow().clone()
    }

    /// Adds to a tenant's deletion counts.
    pub fn count_deletion(&self, tenant: &str, f: impl FnOnce(&mut DeletionCounts)) {
        f(self
            .deletes
            .counts
            .borrow_mut()
            .entry(tenant.to_string())
            .or_default());
    }

    /// Every tenant's deletion counts on this core, by tenant.
    pub(super) fn deletion_counts(&self) -> Vec<(String, DeletionCounts)> {
        super::counters::by_tenant(&self.deletes.counts.borrow())
    }
}

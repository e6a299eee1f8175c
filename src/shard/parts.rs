//! The parts a read covers: those of every store this shard serves (its own, and those it
//! stands in for) whose time range overlaps the read's, each with its tail read (or found in
//! the part cache) before the read fixes what it covers ([`Shard::parts_with_tails`]); and
//! what a part that cannot be read does to the read ([`Shard::part_failed`]).

use std::rc::Rc;

use super::Shard;
use crate::model::TimestampNs;
use crate::query::QueryError;
use crate::store::part_file::{LoadedPart, PartTail};
use crate::store::{Store, StoreError};

/// Part tails a query reads at once before it fixes its snapshot: each read is one direct
/// read of the metadata pages, and a few in flight keep the disk busy while the core checks
/// the ones that came back.
pub(super) const TAIL_READS_IN_FLIGHT: usize = 8;

/// One part a read covers: the store it belongs to, and its tail, held for the read.
pub(super) struct PartInRead {
    pub store: Rc<Store>,
    pub part: Rc<LoadedPart>,
    pub tail: Rc<PartTail>,
}

/// The parts a read covers ([`Shard::parts_with_tails`]).
pub(super) type PartList = Vec<PartInRead>;

impl Shard {
    /// The parts of every store whose time range overlaps `[start, end)` and that `keep`
    /// keeps, each with its tail, which is read (or found in the part cache) first. The
    /// parts are looked at again after the reads, until a look finds every tail read: that
    /// look is returned, with no yield since, so the caller can fix its snapshot on it before
    /// its next yield (a seal round that commits meanwhile adds a part, whose tail is read in
    /// the next turn).
    pub(super) async fn parts_with_tails(
        &self,
        start: TimestampNs,
        end: TimestampNs,
        keep: &dyn Fn(&Rc<LoadedPart>) -> bool,
    ) -> Result<PartList, QueryError> {
        let cache = self.part_cache();
        let mut read: ahash::AHashMap<*const LoadedPart, (Rc<LoadedPart>, Rc<PartTail>)> =
            Default::default();
        loop {
            let mut parts = self.parts_in(start, end);
            parts.retain(|(_, p)| keep(p));
            let missing: Vec<_> = parts
                .iter()
                .filter(|(_, p)| !read.contains_key(&Rc::as_ptr(p)))
                .cloned()
                .collect();
            if missing.is_empty() {
                return Ok(parts
                    .into_iter()
                    .map(|(store, part)| {
                        let tail = read[&Rc::as_ptr(&part)].1.clone();
                        PartInRead { store, part, tail }
                    })
                    .collect());
            }
            let cache = cache.clone();
            let tails = self
                .read_parts(&missing, move |part| {
                    let cache = cache.clone();
                    async move { part.tail(Some(&cache)).await }
                })
                .await?;
            for ((_, part), tail) in missing.iter().zip(tails) {
                read.insert(Rc::as_ptr(part), (part.clone(), tail));
            }
        }
    }

    /// `read` of each of `parts`, [`TAIL_READS_IN_FLIGHT`] at a time: the reads overlap one
    /// another, and the checks share the core between them. The first part that cannot be
    /// read fails the whole ([`Self::part_failed`]).
    pub(super) async fn read_parts<T: 'static, F>(
        &self,
        parts: &[(Rc<Store>, Rc<LoadedPart>)],
        read: impl Fn(Rc<LoadedPart>) -> F,
    ) -> Result<Vec<T>, QueryError>
    where
        F: std::future::Future<Output = Result<T, StoreError>> + 'static,
    {
        let mut out = Vec::with_capacity(parts.len());
        for window in parts.chunks(TAIL_READS_IN_FLIGHT) {
            let tasks: Vec<_> = window
                .iter()
                .map(|(_, part)| glommio::spawn_local(read(part.clone())))
                .collect();
            for ((store, part), task) in window.iter().zip(tasks) {
                let value = task
                    .await
                    .map_err(|e| QueryError::Storage(self.part_failed(store, part, e)))?;
                out.push(value);
            }
        }
        Ok(out)
    }

    /// Every store this shard serves: its own, then those it stands in for.
    pub(super) fn all_stores(&self) -> Vec<Rc<Store>> {
        let mut out: Vec<Rc<Store>> = self.store.borrow().iter().cloned().collect();
        out.extend(self.foreign_stores.borrow().iter().cloned());
        out
    }

    /// The parts of every store whose time range overlaps `[start, end)`, taken once per
    /// query (not once per stream), with the store each belongs to.
    pub(super) fn parts_in(
        &self,
        start: TimestampNs,
        end: TimestampNs,
    ) -> Vec<(Rc<Store>, Rc<LoadedPart>)> {
        let mut out = Vec::new();
        for store in self.all_stores() {
            for part in store.parts() {
                if part.entry.max_ts >= start && part.entry.min_ts < end {
                    out.push((store.clone(), part));
                }
            }
        }
        out
    }

    /// A part could not be read: quarantine it if it is corrupt, and say why the query fails.
    pub(super) fn part_failed(
        &self,
        store: &Rc<Store>,
        part: &LoadedPart,
        e: StoreError,
    ) -> String {
        if e.is_corruption() {
            let store = store.clone();
            let id = part.entry.id;
            glommio::spawn_local(async move { store.quarantine(id).await }).detach();
            format!(
                "shard {}: {e}; the part is moved to quarantine, and this query cannot be \
                 answered in full",
                self.id
            )
        } else {
            format!("shard {}: {e}", self.id)
        }
    }
}

//! The active streams each tenant has on one shard, for Loki's stream limit
//! (`max_global_streams_per_user`).
//!
//! A stream is active from the batch that writes it until it has gone `stream_idle_period`
//! ([`STREAM_IDLE_PERIOD`] unless set) without a line (Loki's `chunk_idle_period`: an ingester keeps an idle stream that long).
//! At the limit only *new* streams are refused: a stream that is active keeps flowing. Loki
//! turns the global limit into a per-ingester one by dividing it over the ingesters; here it
//! is divided over the cores, which own streams by hash, so each holds about its share. The
//! owner decides, before its WAL sees the batch, which streams of a batch may start; the
//! others' entries are taken out of the batch (see `runtime::Core::append_here`).

use std::cell::RefCell;
use std::time::{Duration, Instant};

use ahash::{AHashMap, AHashSet};

use crate::model::StreamId;

/// How long a stream stays active, and resident, without a line by default (Loki's
/// `chunk_idle_period` default).
pub const STREAM_IDLE_PERIOD: Duration = Duration::from_secs(30 * 60);
/// How often each core forgets the streams gone idle, at most: a shorter idle period is
/// swept twice per period.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// How often to sweep for streams idle for `idle`.
pub fn sweep_interval(idle: Duration) -> Duration {
    SWEEP_INTERVAL.min(idle / 2).max(Duration::from_millis(100))
}

/// The active streams of every tenant on one shard, with when each last wrote.
pub struct ActiveStreams {
    epoch: Instant,
    tenants: RefCell<AHashMap<String, AHashMap<StreamId, u32>>>,
}

impl Default for ActiveStreams {
    fn default() -> Self {
        ActiveStreams {
            epoch: Instant::now(),
            tenants: Default::default(),
        }
    }
}

impl ActiveStreams {
    fn now_s(&self) -> u32 {
        self.epoch.elapsed().as_secs() as u32
    }

    /// Notes that `tenant` writes `streams` now and returns those it may not start: new
    /// streams beyond `limit` active ones on this shard (0: no limit).
    pub fn admit(
        &self,
        tenant: &str,
        streams: impl Iterator<Item = StreamId>,
        limit: usize,
    ) -> AHashSet<StreamId> {
        self.admit_at(tenant, streams, limit, self.now_s())
    }

    fn admit_at(
        &self,
        tenant: &str,
        streams: impl Iterator<Item = StreamId>,
        limit: usize,
        now_s: u32,
    ) -> AHashSet<StreamId> {
        let mut refused = AHashSet::new();
        let mut tenants = self.tenants.borrow_mut();
        let active = match tenants.get_mut(tenant) {
            Some(a) => a,
            None => tenants.entry(tenant.to_string()).or_default(),
        };
        for id in streams {
            if let Some(seen) = active.get_mut(&id) {
                *seen = now_s;
            } else if limit == 0 || active.len() < limit {
                active.insert(id, now_s);
            } else {
                refused.insert(id);
            }
        }
        refused
    }

    /// Forgets the streams idle for `idle`; returns how many.
    pub fn sweep(&self, idle: Duration) -> usize {
        self.sweep_at(self.now_s(), idle.as_secs().min(u64::from(u32::MAX)) as u32)
    }

    fn sweep_at(&self, now_s: u32, idle_s: u32) -> usize {
        let mut forgotten = 0;
        let mut tenants = self.tenants.borrow_mut();
        for active in tenants.values_mut() {
            let before = active.len();
            active.retain(|_, seen| now_s.saturating_sub(*seen) < idle_s);
            forgotten += before - active.len();
        }
        tenants.retain(|_, active| !active.is_empty());
        forgotten
    }

    /// Active streams per tenant on this shard, by tenant.
    pub fn counts(&self) -> Vec<(String, u64)> {
        let mut all: Vec<(String, u64)> = self
            .tenants
            .borrow()
            .iter()
            .map(|(t, a)| (t.clone(), a.len() as u64))
            .collect();
        all.sort();
        all
    }
}

/// The share of a global stream limit one of `cores` shards enforces (0: no limit).
pub fn local_limit(global: usize, cores: usize) -> usize {
    if global == 0 {
        0
    } else {
        global.div_ceil(cores.max(1))
    }
}

/// Loki's refusal of a new stream over the limit (`validation.StreamLimitErrorMsg`).
pub fn stream_limit_message(labels: &str, tenant: &str) -> String {
    format!(
        "maximum active stream limit exceeded when trying to create stream {labels}, reduce the \
         number of active streams (reduce labels or reduce label values), or contact your Loki \
         administrator to see if the limit can be increased, user: '{tenant}'"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_the_limit_only_new_streams_are_refused() {
        let a = ActiveStreams::default();
        assert!(a.admit_at("t", [1, 2, 3].into_iter(), 3, 0).is_empty());
        // 4 is new: refused; 1 and 2 are active and keep flowing.
        let refused = a.admit_at("t", [1, 4, 2].into_iter(), 3, 10);
        assert_eq!(refused.into_iter().collect::<Vec<_>>(), [4]);
        // Another tenant has its own count.
        assert!(a.admit_at("u", [4, 5, 6].into_iter(), 3, 10).is_empty());
        assert_eq!(a.counts(), [("t".to_string(), 3), ("u".to_string(), 3)]);
        // No limit: everything starts.
        assert!(a.admit_at("t", 100..200, 0, 10).is_empty());
    }

    #[test]
    fn idle_streams_stop_counting() {
        let a = ActiveStreams::default();
        assert!(a.admit_at("t", [1, 2].into_iter(), 2, 0).is_empty());
        assert!(a.admit_at("t", [1].into_iter(), 2, 100).is_empty());
        // 2 has not written for the idle period, 1 has.
        assert_eq!(a.sweep_at(150, 120), 1);
        assert!(a.admit_at("t", [3].into_iter(), 2, 150).is_empty());
        assert_eq!(a.admit_at("t", [4].into_iter(), 2, 150).len(), 1);
        // Everything idle: the tenant is forgotten.
        assert_eq!(a.sweep_at(1000, 120), 2);
        assert!(a.counts().is_empty());
    }

    #[test]
    fn the_global_limit_is_divided_over_the_cores() {
        assert_eq!(local_limit(0, 4), 0);
        assert_eq!(local_limit(5000, 1), 5000);
        assert_eq!(local_limit(5000, 3), 1667);
        assert_eq!(local_limit(1, 4), 1);
    }
}

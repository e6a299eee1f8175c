//! What every core knows of every shard's health, for `/ready` and for refusing a write
//! before any of it reaches a shard.
//!
//! Each core publishes its own shard's [`NotReady`] conditions here (a few times a second,
//! and at once when its shard signals a change); any core reads the whole board. The board is
//! the only cross-thread state besides the lifecycle flags: an atomic per shard for the cheap
//! question ("is it taking writes?"), and the conditions themselves behind a mutex that only
//! publishing and the answers to `/ready` and refused requests touch, never the data path.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::shard::{AppendError, NotReady};

/// One shard's published health.
#[derive(Default)]
struct Entry {
    /// No condition holds: the shard takes every write.
    clear: AtomicBool,
    conditions: Mutex<Vec<NotReady>>,
}

/// The health of every shard, as last published.
pub struct HealthBoard {
    shards: Vec<Entry>,
}

impl HealthBoard {
    /// A board on which every shard is still recovering.
    pub fn new(shards: usize) -> HealthBoard {
        HealthBoard {
            shards: (0..shards)
                .map(|_| Entry {
                    clear: AtomicBool::new(false),
                    conditions: Mutex::new(vec![NotReady::Recovering]),
                })
                .collect(),
        }
    }

    /// Shard `shard`'s conditions now.
    pub fn publish(&self, shard: usize, conditions: Vec<NotReady>) {
        let e = &self.shards[shard];
        let clear = conditions.is_empty();
        *e.conditions
            .lock()
            .expect("never poisoned: no panic holds it") = conditions;
        e.clear.store(clear, Ordering::Release);
    }

    /// Whether every shard takes every write.
    pub fn all_clear(&self) -> bool {
        self.shards.iter().all(|e| e.clear.load(Ordering::Acquire))
    }

    /// Every condition of every shard, as `(shard, condition)`.
    pub fn conditions(&self) -> Vec<(usize, NotReady)> {
        let mut out = Vec::new();
        for (i, e) in self.shards.iter().enumerate() {
            if e.clear.load(Ordering::Acquire) {
                continue;
            }
            let conditions = e.conditions.lock().expect("never poisoned").clone();
            out.extend(conditions.into_iter().map(|c| (i, c)));
        }
        out
    }

    /// How a write would be refused now by some shard, if any would: the worst condition
    /// (a stopped WAL, then a full disk, then the rest), so that a request is refused before
    /// anything of it reaches a shard. A request is refused if any shard would refuse it,
    /// whichever shards its streams belong to: partial acceptance is what this avoids.
    pub fn write_refusal(&self) -> Option<AppendError> {
        if self.all_clear() {
            return None;
        }
        let rank = |c: &NotReady| match c {
            NotReady::WalStopped(_) => 4,
            NotReady::ReadOnly(_) => 3,
            NotReady::DiskFull(_) => 2,
            NotReady::HeadsFull(_) => 1,
            NotReady::Recovering => 0,
        };
        self.conditions()
            .into_iter()
            .max_by_key(|(_, c)| rank(c))
            .map(|(shard, c)| AppendError::new(c.refusal(), format!("shard {shard}: {c}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shard::Refusal;

    #[test]
    fn the_worst_condition_decides_and_clearing_makes_ready() {
        let board = HealthBoard::new(2);
        assert!(!board.all_clear());
        assert_eq!(
            board.write_refusal().map(|e| e.refusal),
            Some(Refusal::NotOpen)
        );
        board.publish(0, Vec::new());
        board.publish(1, vec![NotReady::HeadsFull("behind".into())]);
        assert_eq!(
            board.write_refusal().map(|e| e.refusal),
            Some(Refusal::Overloaded)
        );
        board.publish(0, vec![NotReady::DiskFull("ENOSPC".into())]);
        let e = board.write_refusal().expect("refused");
        assert_eq!(e.refusal, Refusal::NoSpace);
        assert!(e.reason.starts_with("shard 0: disk full"), "{e}");
        assert_eq!(board.conditions().len(), 2);
        board.publish(0, Vec::new());
        board.publish(1, Vec::new());
        assert!(board.all_clear());
        assert!(board.write_refusal().is_none());
    }
}

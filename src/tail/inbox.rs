//! The receiving core's side of its tails: one bounded inbox per tail, filled by the shards'
//! batches and drained by the tail's WebSocket session.
//!
//! Which question it answers: "which entries does a tail's next message carry, and which
//! were dropped because its client was slower than its stream?" Entries wait in timestamp
//! order (arrival order between equal timestamps), as Loki's tailer merges its ingesters'
//! streams, and are released once `delay_for` has passed since their timestamp. An inbox
//! that holds [`INBOX_ENTRIES_MAX`] entries or [`INBOX_BYTES_MAX`] line bytes drops what
//! arrives, noting it for the next message: a batch is never refused or waited for.

use std::cell::{Cell, RefCell};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::rc::Rc;

use ahash::AHashMap;

use super::{
    DroppedEntry, ENTRIES_PER_MESSAGE_MAX, INBOX_BYTES_MAX, INBOX_ENTRIES_MAX, TailBatch, TailKey,
    TailedEntry, note_dropped,
};
use crate::model::TimestampNs;
use crate::runtime::wake::Signal;

/// The tails of one receiving core. Not `Send`: it lives on its core.
#[derive(Default)]
pub struct Inboxes {
    core: Cell<usize>,
    next_id: Cell<u64>,
    open: RefCell<AHashMap<u64, Rc<Inbox>>>,
    /// Tails whose session ended without unregistering them (its task was dropped), for the
    /// core's clean-up task.
    orphans: RefCell<Vec<TailKey>>,
    orphaned: Signal,
}

impl Inboxes {
    pub fn new(core: usize) -> Inboxes {
        let inboxes = Inboxes::default();
        inboxes.core.set(core);
        inboxes
    }

    /// Opens an inbox for a new tail; it is closed when the returned handle is dropped.
    pub fn open(self: &Rc<Self>) -> OpenInbox {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        let key = TailKey {
            core: self.core.get(),
            id,
        };
        let inbox = Rc::new(Inbox::default());
        self.open.borrow_mut().insert(id, inbox.clone());
        OpenInbox {
            key,
            inbox,
            inboxes: self.clone(),
        }
    }

    /// Hands a shard's batch to its tail, and returns how many of its entries the inbox had
    /// no room for. A batch for a tail that has ended is dropped (and not counted: nobody
    /// waits for it).
    pub fn deliver(&self, batch: TailBatch) -> u64 {
        if batch.key.core != self.core.get() {
            return 0;
        }
        let inbox = self.open.borrow().get(&batch.key.id).cloned();
        inbox.map_or(0, |inbox| inbox.deliver(batch))
    }

    /// Notes a tail still registered with the shards whose session is gone: synchronous, so
    /// that a drop can call it; [`Inboxes::orphans`] hands it to a task that unregisters it.
    pub fn orphan(&self, key: TailKey) {
        self.orphans.borrow_mut().push(key);
        self.orphaned.notify();
    }

    /// Waits for orphaned tails and takes them.
    pub async fn orphans(&self) -> Vec<TailKey> {
        loop {
            let taken = std::mem::take(&mut *self.orphans.borrow_mut());
            if !taken.is_empty() {
                return taken;
            }
            self.orphaned.wait().await;
        }
    }

    /// Tails open on this core.
    pub fn len(&self) -> usize {
        self.open.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.open.borrow().is_empty()
    }
}

/// A tail's inbox while its session runs; closing it (on drop) makes later batches for it
/// be dropped on arrival.
pub struct OpenInbox {
    pub key: TailKey,
    pub inbox: Rc<Inbox>,
    inboxes: Rc<Inboxes>,
}

impl Drop for OpenInbox {
    fn drop(&mut self) {
        self.inboxes.open.borrow_mut().remove(&self.key.id);
    }
}

/// One waiting entry: ordered by timestamp, then arrival.
struct Waiting {
    ts: TimestampNs,
    seq: u64,
    entry: TailedEntry,
}

impl PartialEq for Waiting {
    fn eq(&self, other: &Self) -> bool {
        (self.ts, self.seq) == (other.ts, other.seq)
    }
}
impl Eq for Waiting {}
impl PartialOrd for Waiting {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Waiting {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.ts, self.seq).cmp(&(other.ts, other.seq))
    }
}

/// One tail's entries on their way to its client.
#[derive(Default)]
pub struct Inbox {
    waiting: RefCell<BinaryHeap<Reverse<Waiting>>>,
    bytes: Cell<usize>,
    seq: Cell<u64>,
    dropped: RefCell<Vec<DroppedEntry>>,
    dropped_unlisted: Cell<u64>,
    /// Wakes the session when something arrived.
    arrived: Signal,
}

/// What one message carries: the entries (oldest first) and the drops noted since the last
/// message.
#[derive(Debug, Default)]
pub struct Taken {
    pub entries: Vec<TailedEntry>,
    pub dropped: Vec<DroppedEntry>,
    pub dropped_unlisted: u64,
}

impl Inbox {
    /// Adds a batch; returns how many of its entries did not fit.
    pub fn deliver(&self, batch: TailBatch) -> u64 {
        let mut dropped = self.dropped.borrow_mut();
        let mut unlisted = self.dropped_unlisted.get() + batch.dropped_unlisted;
        note_dropped(&mut dropped, &mut unlisted, batch.dropped);
        let mut waiting = self.waiting.borrow_mut();
        let mut refused = 0;
        for entry in batch.entries {
            let bytes = self.bytes.get();
            if waiting.len() >= INBOX_ENTRIES_MAX || bytes + entry.line.len() > INBOX_BYTES_MAX {
                refused += 1;
                let d = DroppedEntry {
                    ts: entry.ts,
                    labels: entry.labels,
                };
                note_dropped(&mut dropped, &mut unlisted, [d]);
                continue;
            }
            self.bytes.set(bytes + entry.line.len());
            let seq = self.seq.get();
            self.seq.set(seq + 1);
            waiting.push(Reverse(Waiting {
                ts: entry.ts,
                seq,
                entry,
            }));
        }
        self.dropped_unlisted.set(unlisted);
        self.arrived.notify();
        refused
    }

    /// Waits until something arrives (at once if something arrived since the last wait).
    pub async fn arrived(&self) {
        self.arrived.wait().await;
    }

    /// When the oldest waiting entry is due (its timestamp plus `delay_ns`), if any waits.
    pub fn next_due(&self, delay_ns: i64) -> Option<TimestampNs> {
        self.waiting
            .borrow()
            .peek()
            .map(|Reverse(w)| w.ts.saturating_add(delay_ns))
    }

    /// Takes up to [`ENTRIES_PER_MESSAGE_MAX`] entries whose timestamp plus `delay_ns` is
    /// before `now_ns`, oldest first, and, with them, the drops noted so far. Drops wait for
    /// a message with entries, as in Loki.
    pub fn take_due(&self, now_ns: TimestampNs, delay_ns: i64) -> Taken {
        let mut waiting = self.waiting.borrow_mut();
        let mut taken = Taken::default();
        while taken.entries.len() < ENTRIES_PER_MESSAGE_MAX {
            let due = waiting
                .peek()
                .is_some_and(|Reverse(w)| w.ts.saturating_add(delay_ns) < now_ns);
            if !due {
                break;
            }
            let Some(Reverse(w)) = waiting.pop() else {
                break;
            };
            self.bytes
                .set(self.bytes.get().saturating_sub(w.entry.line.len()));
            taken.entries.push(w.entry);
        }
        if !taken.entries.is_empty() {
            taken.dropped = std::mem::take(&mut *self.dropped.borrow_mut());
            taken.dropped_unlisted = self.dropped_unlisted.replace(0);
        }
        taken
    }

    /// Entries waiting.
    pub fn len(&self) -> usize {
        self.waiting.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.waiting.borrow().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Labels;
    use std::sync::Arc;

    fn entry(ts: i64, line: &str) -> TailedEntry {
        TailedEntry {
            ts,
            labels: Arc::new(Labels::from_pairs([("app", "a")])),
            line: line.to_string(),
            metadata: Vec::new(),
            parsed: Vec::new(),
        }
    }

    fn batch(key: TailKey, entries: Vec<TailedEntry>) -> TailBatch {
        TailBatch {
            key,
            entries,
            dropped: Vec::new(),
            dropped_unlisted: 0,
        }
    }

    #[test]
    fn entries_leave_in_timestamp_order_once_their_delay_passed() {
        let inboxes = Rc::new(Inboxes::new(3));
        let open = inboxes.open();
        assert_eq!(open.key.core, 3);
        inboxes.deliver(batch(open.key, vec![entry(30, "c"), entry(10, "a")]));
        inboxes.deliver(batch(open.key, vec![entry(20, "b"), entry(10, "a2")]));
        assert_eq!(open.inbox.next_due(5), Some(15));
        let taken = open.inbox.take_due(26, 5);
        let lines: Vec<_> = taken.entries.iter().map(|e| e.line.as_str()).collect();
        assert_eq!(lines, ["a", "a2", "b"]);
        assert!(
            open.inbox.take_due(35, 5).entries.is_empty(),
            "30 + 5 is not before 35"
        );
        assert_eq!(open.inbox.take_due(36, 5).entries.len(), 1);
        assert!(open.inbox.is_empty());
    }

    #[test]
    fn a_full_inbox_drops_and_the_next_message_lists_the_drops() {
        let inboxes = Rc::new(Inboxes::new(0));
        let open = inboxes.open();
        let many: Vec<_> = (0..INBOX_ENTRIES_MAX as i64 + 3)
            .map(|i| entry(i, "x"))
            .collect();
        assert_eq!(inboxes.deliver(batch(open.key, many)), 3);
        assert_eq!(open.inbox.len(), INBOX_ENTRIES_MAX);
        let first = open.inbox.take_due(i64::MAX, 0);
        assert_eq!(first.entries.len(), ENTRIES_PER_MESSAGE_MAX);
        let dropped: Vec<_> = first.dropped.iter().map(|d| d.ts).collect();
        assert_eq!(dropped, [1000, 1001, 1002]);
        assert!(
            open.inbox.take_due(i64::MAX, 0).dropped.is_empty(),
            "listed once"
        );
    }

    #[test]
    fn drops_wait_for_a_message_with_entries() {
        let inboxes = Rc::new(Inboxes::new(0));
        let open = inboxes.open();
        let mut b = batch(open.key, Vec::new());
        b.dropped = vec![DroppedEntry {
            ts: 5,
            labels: Arc::new(Labels::default()),
        }];
        b.dropped_unlisted = 2;
        inboxes.deliver(b);
        assert!(open.inbox.take_due(100, 0).dropped.is_empty());
        inboxes.deliver(batch(open.key, vec![entry(1, "x")]));
        let taken = open.inbox.take_due(100, 0);
        assert_eq!((taken.dropped.len(), taken.dropped_unlisted), (1, 2));
    }

    #[test]
    fn orphaned_tails_reach_the_clean_up_once() {
        crate::testing::run_local(|| async {
            let inboxes = Inboxes::new(0);
            let key = TailKey { core: 0, id: 5 };
            inboxes.orphan(key);
            assert_eq!(inboxes.orphans().await, vec![key]);
            let again = futures_lite::future::poll_once(inboxes.orphans()).await;
            assert!(again.is_none(), "nothing is left to take");
        });
    }

    #[test]
    fn batches_for_closed_tails_are_dropped() {
        let inboxes = Rc::new(Inboxes::new(0));
        let open = inboxes.open();
        let key = open.key;
        drop(open);
        assert!(inboxes.is_empty());
        inboxes.deliver(batch(key, vec![entry(1, "x")]));
        let other = inboxes.open();
        assert_ne!(other.key, key, "ids are not reused");
        assert!(other.inbox.is_empty());
    }
}

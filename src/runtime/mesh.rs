//! The channel mesh between cores: what crosses it, and how answers come back.
//!
//! Every exchange between cores is a request and a reply, and both travel over glommio's
//! channel mesh: a batch for the shard that owns its streams ([`MeshMsg::Append`], answered by
//! [`MeshMsg::Appended`] once it is durable), or a question for a shard ([`MeshMsg::Query`],
//! answered by [`MeshMsg::Answered`]); only a tail's entries ([`MeshMsg::Tail`]) go one
//! way. The asking task waits on a [`PendingReply`], a slot of
//! its own core's [`Replies`]; the core's receiver task fills the slot when the reply arrives
//! and wakes the waiting task, on that task's own thread.
//!
//! Why replies do not use a future-aware channel such as `futures_channel::oneshot`: such a
//! channel stores the waiting task's waker and wakes, and at times drops, it on the replying
//! core's thread. glommio 0.9 counts a task's references atomically but resurrects a task
//! whose last reference is dropped on a foreign thread in two steps (decrement to zero, then
//! clone and send the clone home), while the owning thread's `JoinHandle::drop` destroys a
//! completed task as soon as it *reads* a count of zero. When the owner reads between the
//! two steps, the task is freed and the foreign thread then increments, reads and queues the
//! freed header: the queued wake frees it again (`free(): double free detected in tcache 2`)
//! or decrements a count below zero (`Waker invariant broken ... refcount: -1`). The oneshot
//! leaves such a waker behind when the receiver polls again while the sender is taking the
//! previous one; the shared state, waker included, is then freed by whichever side lets go
//! last, often the replying core. Over the mesh, the replying core only pushes a message into
//! a lock-free queue and signals the owner's eventfd: no waker ever crosses a thread.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::rc::Rc;
use std::sync::Mutex;
use std::task::{Poll, Waker};

use ahash::AHashMap;
use glommio::channels::channel_mesh::{Full, MeshBuilder};

use crate::model::Batch;
use crate::shard::{AppendError, Protocol, ShardAnswer, ShardRequest};

/// One mesh builder per core, cloned on the thread that makes the seats.
///
/// glommio 0.9's `MeshBuilder` keeps its peer list in an `Rc` yet declares itself `Send`:
/// cloning it on the executors' threads at once (as a builder cloned inside the closure
/// given to `LocalExecutorPoolBuilder::on_all_shards` is) races on the `Rc`'s count, which
/// can free the list while a peer still uses it (`malloc(): unaligned tcache chunk detected`
/// at start, seen once in some sixty starts). Here every clone is made on one thread before
/// any executor starts, and each executor takes one, moving it: no count changes on two
/// threads at once but the drops at the end of each executor's `join`, which can only leave
/// the count too high (the list, a few bytes, is then never freed), never too low.
pub struct MeshSeats {
    /// The seats, and the builder they were cloned from (dropped with them).
    seats: Mutex<(Vec<Builder>, Builder)>,
}

type Builder = MeshBuilder<MeshMsg, Full>;

impl MeshSeats {
    /// Seats for `peers` executors on a mesh of channels of `capacity` messages.
    pub fn new(peers: usize, capacity: usize) -> MeshSeats {
        let original = MeshBuilder::full(peers, capacity);
        let seats = (0..peers).map(|_| original.clone()).collect();
        MeshSeats {
            seats: Mutex::new((seats, original)),
        }
    }

    /// This executor's seat. Each of the `peers` executors takes one, once.
    pub fn take(&self) -> MeshBuilder<MeshMsg, Full> {
        self.seats
            .lock()
            .expect("never poisoned: nothing panics holding it")
            .0
            .pop()
            .expect("one seat per executor")
    }
}

/// Names one request of one core until its reply arrives.
pub type RequestId = u64;

/// What crosses the mesh: batches and questions for a shard, and their replies.
pub enum MeshMsg {
    /// A batch for the shard that owns its streams.
    Append {
        id: RequestId,
        batch: Batch,
        protocol: Protocol,
    },
    /// A question for a shard.
    Query { id: RequestId, req: ShardRequest },
    /// The batch of request `id` is durable (or was refused, and why).
    Appended {
        id: RequestId,
        result: Result<(), AppendError>,
    },
    /// The answer to question `id`.
    Answered { id: RequestId, answer: ShardAnswer },
    /// Entries for a tail whose receiving core is the recipient; no reply (see
    /// [`crate::tail`]).
    Tail(crate::tail::TailBatch),
}

/// A reply, as delivered to the waiting task.
pub enum Reply {
    Appended(Result<(), AppendError>),
    Answered(ShardAnswer),
}

/// One waiting request: where its reply goes and who waits for it.
#[derive(Default)]
struct Slot {
    reply: RefCell<Option<Reply>>,
    waker: RefCell<Option<Waker>>,
}

/// The requests of one core that wait for a reply from another core. Not `Send`: it lives on
/// its core, and only that core's tasks touch it.
#[derive(Default)]
pub struct Replies {
    next_id: Cell<RequestId>,
    waiting: RefCell<AHashMap<RequestId, Rc<Slot>>>,
}

impl Replies {
    /// Makes a slot for a request about to be sent; the request carries the slot's id.
    pub fn register(&self) -> PendingReply<'_> {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        let slot = Rc::new(Slot::default());
        self.waiting.borrow_mut().insert(id, slot.clone());
        PendingReply {
            replies: self,
            id,
            slot,
        }
    }

    /// Hands a reply to the task waiting for request `id`. A reply nobody waits for any more
    /// (the request was abandoned, e.g. its client went away) is dropped.
    pub fn deliver(&self, id: RequestId, reply: Reply) {
        let Some(slot) = self.waiting.borrow_mut().remove(&id) else {
            return;
        };
        *slot.reply.borrow_mut() = Some(reply);
        if let Some(waker) = slot.waker.borrow_mut().take() {
            waker.wake();
        }
    }

    /// Requests still waiting for their reply.
    pub fn waiting(&self) -> usize {
        self.waiting.borrow().len()
    }
}

/// A request sent (or about to be) to another core. Dropping it abandons the request: a
/// late reply is then dropped on arrival.
pub struct PendingReply<'a> {
    replies: &'a Replies,
    pub id: RequestId,
    slot: Rc<Slot>,
}

impl PendingReply<'_> {
    /// Waits for the reply.
    pub async fn wait(&self) -> Reply {
        poll_fn(|cx| match self.slot.reply.borrow_mut().take() {
            Some(reply) => Poll::Ready(reply),
            None => {
                let mut waker = self.slot.waker.borrow_mut();
                match waker.as_ref() {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => *waker = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
        })
        .await
    }
}

impl Drop for PendingReply<'_> {
    fn drop(&mut self) {
        self.replies.waiting.borrow_mut().remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{WakerThreads, run_local};

    #[test]
    fn a_reply_wakes_the_waiting_task_once_and_abandoned_requests_are_forgotten() {
        run_local(|| async {
            let replies = Rc::new(Replies::default());
            let r = replies.clone();
            let waiter = glommio::spawn_local(async move {
                let pending = r.register();
                let id = pending.id;
                match pending.wait().await {
                    Reply::Appended(result) => (id, result),
                    Reply::Answered(_) => panic!("wrong reply kind"),
                }
            });
            futures_lite::future::yield_now().await;
            assert_eq!(replies.waiting(), 1);
            let full = AppendError::new(crate::shard::Refusal::NoSpace, "full");
            replies.deliver(0, Reply::Appended(Err(full.clone())));
            let (id, result) = waiter.await;
            assert_eq!((id, result), (0, Err(full)));
            assert_eq!(replies.waiting(), 0);
            let abandoned = replies.register();
            assert_eq!(replies.waiting(), 1);
            drop(abandoned);
            assert_eq!(replies.waiting(), 0);
            // A late reply for it is dropped quietly.
            replies.deliver(1, Reply::Appended(Ok(())));
        });
    }

    /// The property the mesh replies exist for: a task on one core that waits for another
    /// core's reply has its waker cloned, woken and dropped only on its own thread, however
    /// often it is polled while the reply is on its way.
    #[test]
    fn replies_from_another_core_never_touch_the_waiting_task_waker_off_its_thread() {
        crate::testing::run_pair(
            |senders, replies, peer| async move {
                let threads = WakerThreads::default();
                for _ in 0..500 {
                    let pending = replies.register();
                    let sent = senders
                        .send_to(
                            peer,
                            MeshMsg::Query {
                                id: pending.id,
                                req: ShardRequest::Metrics,
                            },
                        )
                        .await;
                    assert!(sent.is_ok(), "the peer listens");
                    // Poll the wait again and again while the reply travels (as a task
                    // woken by stale wakers would be).
                    let reply = threads
                        .track(futures_lite::future::or(pending.wait(), async {
                            loop {
                                glommio::timer::sleep(std::time::Duration::from_micros(5)).await;
                            }
                        }))
                        .await;
                    assert!(matches!(reply, Reply::Answered(ShardAnswer::Failed(_))));
                }
                threads.assert_all_on_this_thread();
            },
            |msg| match msg {
                MeshMsg::Query { id, .. } => Some(MeshMsg::Answered {
                    id,
                    answer: ShardAnswer::Failed(crate::query::QueryError::Internal("test".into())),
                }),
                _ => None,
            },
        );
    }
}

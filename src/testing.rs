//! Helpers shared by the unit tests of several modules.

use std::future::Future;

// The same file serves the integration tests and the benches (included by path), and each
// of them uses a different part of it.
#[allow(dead_code)]
mod environment;
pub use environment::{corpus_dir, missing, shared_logql_file};

/// Runs `f` to completion on a fresh glommio executor (its own thread), as the server's
/// cores do, and fails the test if it panics.
pub fn run_local<F, Fut>(f: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + 'static,
{
    glommio::LocalExecutorBuilder::default()
        .spawn(f)
        .expect("a test executor")
        .join()
        .expect("the test's executor thread");
}

/// Records on which threads the wakers handed to tracked futures are cloned, woken and
/// dropped: for the rule that a glommio task's waker never leaves its thread (see
/// `runtime::mesh`).
pub struct WakerThreads {
    inner: std::sync::Arc<WakerTrack>,
}

struct WakerTrack {
    owner: std::thread::ThreadId,
    /// The real waker of the task polling the tracked future.
    outer: std::sync::Mutex<Option<std::task::Waker>>,
    ops: std::sync::atomic::AtomicU64,
    foreign_ops: std::sync::atomic::AtomicU64,
}

impl Default for WakerThreads {
    fn default() -> WakerThreads {
        WakerThreads {
            inner: std::sync::Arc::new(WakerTrack {
                owner: std::thread::current().id(),
                outer: std::sync::Mutex::new(None),
                ops: Default::default(),
                foreign_ops: Default::default(),
            }),
        }
    }
}

impl WakerTrack {
    fn note(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        self.ops.fetch_add(1, Relaxed);
        if std::thread::current().id() != self.owner {
            self.foreign_ops.fetch_add(1, Relaxed);
        }
    }
}

mod tracked_waker {
    //! A waker whose every clone, wake and drop is noted by its [`super::WakerTrack`].
    use super::WakerTrack;
    use std::sync::Arc;
    use std::task::{RawWaker, RawWakerVTable, Waker};

    static VTABLE: RawWakerVTable = RawWakerVTable::new(clone, wake, wake_by_ref, drop);

    pub fn new(track: &Arc<WakerTrack>) -> Waker {
        let raw = RawWaker::new(Arc::into_raw(track.clone()).cast(), &VTABLE);
        // SAFETY: the vtable functions below treat the data pointer as the `Arc<WakerTrack>`
        // it was made from, and balance its count: clone adds one, wake and drop take one.
        unsafe { Waker::from_raw(raw) }
    }

    fn track<'a>(data: *const ()) -> &'a WakerTrack {
        // SAFETY: `data` came from `Arc::into_raw` and its count is held by this waker.
        unsafe { &*data.cast::<WakerTrack>() }
    }

    fn forward(data: *const ()) {
        if let Some(w) = track(data).outer.lock().expect("not poisoned").as_ref() {
            w.wake_by_ref();
        }
    }

    fn clone(data: *const ()) -> RawWaker {
        track(data).note();
        // SAFETY: as in `new`; one more waker now holds a count.
        unsafe { Arc::increment_strong_count(data.cast::<WakerTrack>()) };
        RawWaker::new(data, &VTABLE)
    }

    fn wake(data: *const ()) {
        wake_by_ref(data);
        drop(data);
    }

    fn wake_by_ref(data: *const ()) {
        track(data).note();
        forward(data);
    }

    fn drop(data: *const ()) {
        track(data).note();
        // SAFETY: releases the count this waker held.
        unsafe { Arc::decrement_strong_count(data.cast::<WakerTrack>()) };
    }
}

impl WakerThreads {
    /// Polls `f` with a tracked waker standing for the polling task's own.
    pub async fn track<F: Future>(&self, f: F) -> F::Output {
        let mut f = std::pin::pin!(f);
        std::future::poll_fn(|cx| {
            *self.inner.outer.lock().expect("not poisoned") = Some(cx.waker().clone());
            let waker = tracked_waker::new(&self.inner);
            let mut tracked = std::task::Context::from_waker(&waker);
            f.as_mut().poll(&mut tracked)
        })
        .await
    }

    /// Fails if any tracked waker was touched off the thread that made this tracker, or if
    /// none was touched at all (then the test proves nothing).
    pub fn assert_all_on_this_thread(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        let (ops, foreign) = (
            self.inner.ops.load(Relaxed),
            self.inner.foreign_ops.load(Relaxed),
        );
        assert!(
            ops > 0,
            "no waker was cloned, woken or dropped: nothing was tested"
        );
        assert_eq!(
            foreign, 0,
            "{foreign} of {ops} waker operations ran on another thread"
        );
    }
}

/// Runs two executors joined by a channel mesh of [`crate::runtime::mesh::MeshMsg`], as two
/// cores of the server are. Executor 0 runs `driver` (with its senders, its reply slots and
/// the peer's id); both answer what arrives with `respond` and deliver replies to their
/// slots, until the driver ends.
pub fn run_pair<D, DF, R>(driver: D, respond: R)
where
    D: FnOnce(
            std::rc::Rc<glommio::channels::channel_mesh::Senders<crate::runtime::mesh::MeshMsg>>,
            std::rc::Rc<crate::runtime::mesh::Replies>,
            usize,
        ) -> DF
        + Send
        + Clone
        + 'static,
    DF: Future<Output = ()> + 'static,
    R: Fn(crate::runtime::mesh::MeshMsg) -> Option<crate::runtime::mesh::MeshMsg>
        + Send
        + Sync
        + Clone
        + 'static,
{
    use crate::runtime::mesh::{MeshMsg, MeshSeats, Replies, Reply};
    use std::rc::Rc;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    let mesh = Arc::new(MeshSeats::new(2, 64));
    let done = Arc::new(AtomicBool::new(false));
    let handles = glommio::LocalExecutorPoolBuilder::new(glommio::PoolPlacement::Unbound(2))
        .on_all_shards(move || {
            let (mesh, done, driver, respond) =
                (mesh.take(), done.clone(), driver.clone(), respond.clone());
            async move {
                let (senders, mut receivers) = mesh.join().await.expect("the mesh joins");
                let senders = Rc::new(senders);
                let replies = Rc::new(Replies::default());
                let me = senders.peer_id();
                for (from, rx) in receivers.streams() {
                    let (senders, replies, respond) =
                        (senders.clone(), replies.clone(), respond.clone());
                    glommio::spawn_local(async move {
                        while let Some(msg) = rx.recv().await {
                            match msg {
                                MeshMsg::Appended { id, result } => {
                                    replies.deliver(id, Reply::Appended(result))
                                }
                                MeshMsg::Answered { id, answer } => {
                                    replies.deliver(id, Reply::Answered(answer))
                                }
                                other => {
                                    if let Some(reply) = respond(other) {
                                        let _ = senders.send_to(from, reply).await;
                                    }
                                }
                            }
                        }
                    })
                    .detach();
                }
                if me == 0 {
                    driver(senders, replies, 1).await;
                    done.store(true, Ordering::Release);
                } else {
                    while !done.load(Ordering::Acquire) {
                        glommio::timer::sleep(std::time::Duration::from_millis(1)).await;
                    }
                }
            }
        })
        .expect("two test executors");
    for r in handles.join_all() {
        r.expect("a test executor panicked");
    }
}

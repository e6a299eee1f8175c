//! A per-core shutdown notification: listeners and connections await [`Shutdown::wait`]
//! next to their socket operation instead of polling a flag on a timer.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

/// Waiters are keyed so that a wait future dropped before the trigger (a read won the race)
/// removes its waker: the table holds only live waiters, however many reads a connection does.
#[derive(Default)]
pub struct Shutdown {
    triggered: Cell<bool>,
    next_key: Cell<u64>,
    waiters: RefCell<ahash::AHashMap<u64, Waker>>,
}

impl Shutdown {
    pub fn new() -> Rc<Shutdown> {
        Rc::new(Shutdown::default())
    }

    pub fn is_triggered(&self) -> bool {
        self.triggered.get()
    }

    /// Wakes every waiter, once.
    pub fn trigger(&self) {
        if self.triggered.replace(true) {
            return;
        }
        let waiters = std::mem::take(&mut *self.waiters.borrow_mut());
        for (_, w) in waiters {
            w.wake();
        }
    }

    /// Resolves when [`Shutdown::trigger`] has been called.
    pub fn wait(self: &Rc<Self>) -> impl Future<Output = ()> + use<> {
        let key = self.next_key.get();
        self.next_key.set(key + 1);
        Wait {
            shutdown: self.clone(),
            key,
        }
    }
}

struct Wait {
    shutdown: Rc<Shutdown>,
    key: u64,
}

impl Future for Wait {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.shutdown.triggered.get() {
            return Poll::Ready(());
        }
        self.shutdown
            .waiters
            .borrow_mut()
            .insert(self.key, cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for Wait {
    fn drop(&mut self) {
        self.shutdown.waiters.borrow_mut().remove(&self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wakes_waiters() {
        glommio::LocalExecutorBuilder::default()
            .spawn(|| async move {
                let s = Shutdown::new();
                let s2 = s.clone();
                let t = glommio::spawn_local(async move {
                    s2.wait().await;
                    1
                });
                glommio::timer::sleep(std::time::Duration::from_millis(5)).await;
                assert!(!s.is_triggered());
                s.trigger();
                assert_eq!(t.await, 1);
                s.wait().await;
                assert!(s.waiters.borrow().is_empty());
            })
            .unwrap()
            .join()
            .unwrap();
    }
}

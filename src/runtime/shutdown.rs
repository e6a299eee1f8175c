//! A per-core stop signal: listeners and connections await [`Shutdown::wait`] next to their
//! socket operation instead of polling a flag on a timer.

use std::cell::Cell;
use std::rc::Rc;

use glommio::sync::Semaphore;

/// A core-local stop signal, cheap to clone. [`Shutdown::trigger`] wakes every task waiting in
/// [`Shutdown::wait`] (accept loops and idle connections) and stays set.
#[derive(Debug, Clone)]
pub struct Shutdown {
    inner: Rc<ShutdownInner>,
}

#[derive(Debug)]
struct ShutdownInner {
    triggered: Cell<bool>,
    /// Never signalled, only closed: closing wakes every waiter at once, and a waiter that is
    /// dropped (its connection got data first) leaves the semaphore's list in O(1).
    waiters: Semaphore,
}

impl Default for Shutdown {
    fn default() -> Shutdown {
        Shutdown::new()
    }
}

impl Shutdown {
    pub fn new() -> Shutdown {
        Shutdown {
            inner: Rc::new(ShutdownInner {
                triggered: Cell::new(false),
                waiters: Semaphore::new(0),
            }),
        }
    }

    pub fn trigger(&self) {
        self.inner.triggered.set(true);
        self.inner.waiters.close();
    }

    pub fn is_triggered(&self) -> bool {
        self.inner.triggered.get()
    }

    /// Completes once [`Shutdown::trigger`] has been called.
    pub async fn wait(&self) {
        if self.is_triggered() {
            return;
        }
        // The semaphore has no units and is only ever closed, so this returns exactly when the
        // signal is triggered (as an Err, which is the point).
        let _ = self.inner.waiters.acquire(1).await;
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
            })
            .unwrap()
            .join()
            .unwrap();
    }
}

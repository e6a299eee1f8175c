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

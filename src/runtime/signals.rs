//! SIGTERM and SIGINT handling without async-signal-safety worries: the signals are blocked
//! in every thread (the mask is inherited by the executors spawned afterwards) and one plain
//! thread waits for them with `sigwait`, then flips the shutdown flag. A second signal while
//! draining exits at once, as operators expect from a second Ctrl-C.

use std::sync::Arc;

use nix::sys::signal::{SigSet, Signal};

use super::Lifecycle;

/// Blocks SIGTERM/SIGINT in the calling thread (and so in threads it spawns later) and
/// starts the thread that waits for them. Call before starting the executors.
pub fn install(lifecycle: Arc<Lifecycle>) -> std::io::Result<()> {
    on_stop_signals("signals", "shardlog", move || lifecycle.stop())
}

/// Blocks SIGTERM/SIGINT in the calling thread (and in the threads it spawns afterwards) and
/// starts a thread named `thread` that takes them: the first calls `stop`, a second exits at
/// once (status 130). `program` names the process in the two lines it logs. The server and
/// the agent both stop this way.
pub fn on_stop_signals(
    thread: &str,
    program: &'static str,
    stop: impl Fn() + Send + 'static,
) -> std::io::Result<()> {
    // No handler runs in signal context: the signals stay blocked and are taken by sigwait.
    let mut set = SigSet::empty();
    set.add(Signal::SIGTERM);
    set.add(Signal::SIGINT);
    set.thread_block()?;
    std::thread::Builder::new()
        .name(thread.into())
        .spawn(move || {
            let mut seen = 0;
            loop {
                let Ok(sig) = set.wait() else {
                    continue;
                };
                seen += 1;
                if seen == 1 {
                    eprintln!("{program}: signal {sig} received, stopping gracefully");
                    stop();
                } else {
                    eprintln!("{program}: second signal, exiting now");
                    std::process::exit(130);
                }
            }
        })?;
    Ok(())
}

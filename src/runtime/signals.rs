//! SIGTERM and SIGINT handling without async-signal-safety worries: the signals are blocked
//! in every thread (the mask is inherited by the executors spawned afterwards) and one plain
//! thread waits for them with `sigwait`, then flips the shutdown flag. A second signal while
//! draining exits at once, as operators expect from a second Ctrl-C.

use std::sync::Arc;

use super::Lifecycle;

/// Blocks SIGTERM/SIGINT in the calling thread (and so in threads it spawns later) and
/// starts the thread that waits for them. Call before starting the executors.
pub fn install(lifecycle: Arc<Lifecycle>) -> std::io::Result<()> {
    // SAFETY: plain libc calls on a sigset_t we own; no handler runs in signal context.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        let rc = libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        if rc != 0 {
            return Err(std::io::Error::from_raw_os_error(rc));
        }
        set
    };
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let mut seen = 0;
            loop {
                let mut sig: libc::c_int = 0;
                // SAFETY: `set` is a valid, initialised signal set.
                let rc = unsafe { libc::sigwait(&set, &mut sig) };
                if rc != 0 {
                    continue;
                }
                seen += 1;
                if seen == 1 {
                    eprintln!("shardlog: signal {sig} received, stopping gracefully");
                    lifecycle.stop();
                } else {
                    eprintln!("shardlog: second signal, exiting now");
                    std::process::exit(130);
                }
            }
        })?;
    Ok(())
}

//! Start-up on a machine whose CPUs are all busy, against the real binary: several
//! two-core servers start at once while spinning threads hold every CPU, and each must
//! become ready and store a push. glommio 0.9 can park an executor that still has runnable
//! tasks when its preemption timer fired while the thread was off the CPU; with nothing
//! pending to wake it, a core stayed in its start-up for good (`runtime::keep_awake` is the
//! remedy). Seen in CI as a server not ready after 30 s while a build ran beside the tests.
//!
//! The bound is the harness's readiness timeout, a liveness bound, not a speed figure: a
//! ready server answers in a few seconds even here.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::{Server, ServerOptions, TestDir, now_ns};
use serde_json::json;

/// Spinning threads per CPU: more runnable threads than CPUs, so that executors are
/// preempted by the scheduler mid-turn, the condition of the hang.
const SPINNERS_PER_CPU: usize = 2;

/// Servers started at once, and rounds of them.
const SERVERS: usize = 4;
const ROUNDS: usize = 3;

/// Busy CPUs until dropped.
struct Spinners {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Spinners {
    fn start() -> Spinners {
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..cpus * SPINNERS_PER_CPU)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut x = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        x = std::hint::black_box(
                            x.wrapping_mul(6364136223846793005).wrapping_add(1),
                        );
                    }
                })
            })
            .collect();
        Spinners { stop, threads }
    }
}

impl Drop for Spinners {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

#[test]
fn two_core_servers_start_and_store_while_every_cpu_is_busy() {
    let _spinners = Spinners::start();
    for round in 0..ROUNDS {
        let starts: Vec<_> = (0..SERVERS)
            .map(|k| {
                std::thread::spawn(move || {
                    let dir = TestDir::new(&format!("busy-machine-{round}-{k}"));
                    let options = ServerOptions {
                        cores: 2,
                        syslog: false,
                        ..ServerOptions::default()
                    };
                    // Panics with the server's output if it is not ready in time.
                    let server = Server::start_with(&dir, &options);
                    let body = json!({"streams": [{
                        "stream": {"app": format!("busy-{k}")},
                        "values": [[now_ns().to_string(), format!("round {round} server {k}")]],
                    }]});
                    let r = server.push_json(&body);
                    assert_eq!(r.status, 204, "push: {}", r.text());
                    drop(server);
                    drop(dir);
                })
            })
            .collect();
        for s in starts {
            s.join()
                .expect("a server started, became ready and stored a push");
        }
    }
}

//! Accept loops out of file descriptors, against the real binary: a server started with a low
//! RLIMIT_NOFILE and a connection cap above it runs out of descriptors in `accept` (EMFILE).
//! It must back off instead of spinning, count the failed accepts, say so once rather than
//! once per call, and serve again as soon as descriptors are free.
//!
//! This file holds one test on purpose: the limit is lowered for the whole test process while
//! the server is spawned (a child inherits it), which would disturb tests running beside it.

mod common;

use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::loki::{metric_sum, parse_metrics};
use common::{Server, ServerOptions, TestDir, now_ns};
use serde_json::json;

/// The server's soft file limit: a one-core server uses about fifteen descriptors for its
/// rings, sockets and WAL, which leaves a few dozen for connections.
const SERVER_NOFILE: u64 = 64;

/// Client connections opened: well beyond what the server can accept.
const CLIENTS: usize = 120;

/// How long the server is kept out of descriptors.
const STARVED_FOR: Duration = Duration::from_secs(3);

/// Failed accepts allowed per second starved, beyond the first few of the back-off ramp: the
/// back-off reaches one attempt per second per listener; the old fixed 50 ms pause made 20
/// per second, and a loop that spins makes thousands.
const ACCEPT_ERRORS_PER_SECOND_MAX: f64 = 4.0;
const ACCEPT_ERRORS_RAMP: f64 = 12.0;

fn set_nofile_soft(soft: u64) -> u64 {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (old, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    setrlimit(Resource::RLIMIT_NOFILE, soft.min(hard), hard).expect("setrlimit");
    old
}

#[test]
fn accept_backs_off_when_descriptors_run_out_and_recovers() {
    let dir = TestDir::new("accept-emfile");
    let options = ServerOptions {
        cores: 1,
        syslog: false,
        extra_args: vec!["--connections-max".into(), "10000".into()],
        ..ServerOptions::default()
    };
    let old = set_nofile_soft(SERVER_NOFILE);
    let server = Server::start_with(&dir, &options);
    set_nofile_soft(old);

    // Idle connections: the server accepts until it has no descriptor left; the kernel holds
    // the rest in the listen backlog.
    let started = Instant::now();
    let clients: Vec<TcpStream> = (0..CLIENTS)
        .map(|_| TcpStream::connect(server.http).expect("connect"))
        .collect();
    std::thread::sleep(STARVED_FOR);
    drop(clients);
    let starved = started.elapsed().as_secs_f64();

    // Served again once descriptors are free (the back-off is at most a second).
    let metrics = server.metrics();
    let errors = metric_sum(
        &parse_metrics(&metrics),
        "shardlog_accept_errors_total",
        &[("listener", "http")],
    );
    let bound = ACCEPT_ERRORS_RAMP + ACCEPT_ERRORS_PER_SECOND_MAX * starved;
    eprintln!("{errors} failed accepts in {starved:.1} s out of descriptors (bound {bound:.0})");
    assert!(
        errors >= 1.0,
        "the server never ran out of descriptors: the test checked nothing"
    );
    assert!(
        errors <= bound,
        "{errors} failed accepts in {starved:.1} s: the loop spins"
    );
    let said = server.output().matches("accept failed").count();
    assert!(
        (1..=2).contains(&said),
        "the failure is said {said} times, expected once per episode"
    );

    server.push_json_ok(&json!({"streams": [{"stream": {"test": "emfile"},
        "values": [[now_ns().to_string(), "after the drought"]]}]}));
    assert_eq!(server.query_all("{test=\"emfile\"}", false).len(), 1);
}

//! Sealing when file descriptors run out, against the real binary. The reported case: 2 ×
//! 9,990 idle connections for 20 s made a seal round fail with "Too many open files", and
//! sealing never resumed (1.49 GB of unsealed lines and 2,084 WAL segments later).
//!
//! - With the default connection cap, derived from RLIMIT_NOFILE less a reserve for data
//!   files, idle connections cannot take the descriptors sealing needs: the extra clients
//!   wait in the kernel's backlog, and seal rounds do not fail.
//! - With a cap set above the limit (an operator's mistake), connections do take every
//!   descriptor and seal rounds fail with EMFILE; they are retried with backoff and counted,
//!   and once the connections close, sealing resumes by itself and every line is there.
//!
//! The limit is lowered for the whole test process while a server is spawned (the child
//! inherits it), so the two tests take a lock around that.

mod common;

use std::net::TcpStream;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::loki::{metric_sum, parse_metrics};
use common::{Server, ServerOptions, TestDir, now_ns};
use serde_json::json;

/// Held while the test process's RLIMIT_NOFILE is lowered for a spawn.
static LIMIT_LOWERED: Mutex<()> = Mutex::new(());

/// Streams pushed before the connections arrive: each seal round writes a part per shard.
const STREAMS: usize = 20;

/// How long the idle connections stay: several seal-age periods.
const HELD_FOR: Duration = Duration::from_secs(4);

/// Starts a server with RLIMIT_NOFILE `soft` and heads sealed one second after their first
/// line, so that seal rounds run while connections are held.
fn start(dir: &TestDir, soft: u64, extra: &[&str]) -> Server {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let mut args: Vec<String> = vec!["--seal-age".into(), "1s".into()];
    args.extend(extra.iter().map(|a| a.to_string()));
    let options = ServerOptions {
        syslog: false,
        extra_args: args,
        ..ServerOptions::default()
    };
    let _lowered = LIMIT_LOWERED.lock().unwrap_or_else(|e| e.into_inner());
    let (old, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    setrlimit(Resource::RLIMIT_NOFILE, soft.min(hard), hard).expect("setrlimit");
    let server = Server::start_with(dir, &options);
    setrlimit(Resource::RLIMIT_NOFILE, old, hard).expect("restore RLIMIT_NOFILE");
    server
}

/// Pushes one line to each of [`STREAMS`] streams, `round` telling the rounds apart.
fn push_round(server: &Server, round: usize) {
    let ts = now_ns();
    let streams: Vec<_> = (0..STREAMS)
        .map(|s| {
            json!({"stream": {"test": "emfile-seal", "s": s.to_string()},
                   "values": [[ts.to_string(), format!("round {round} stream {s}")]]})
        })
        .collect();
    server.push_json_ok(&json!({ "streams": streams }));
}

/// Opens `n` idle connections to the server (the kernel completes them whether or not the
/// server accepts them) and holds them for [`HELD_FOR`].
fn hold_connections(server: &Server, n: usize) {
    let clients: Vec<TcpStream> = (0..n)
        .map(|_| TcpStream::connect(server.http).expect("connect"))
        .collect();
    std::thread::sleep(HELD_FOR);
    drop(clients);
}

fn metric(server: &Server, name: &str) -> f64 {
    metric_sum(&parse_metrics(&server.metrics()), name, &[])
}

/// Waits until every line is sealed (none unsealed in heads or in failed rounds, and
/// sealing not failing), or panics after `timeout`.
fn wait_all_sealed(server: &Server, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let metrics = parse_metrics(&server.metrics());
        let unsealed = metric_sum(&metrics, "shardlog_unsealed_line_bytes", &[])
            + metric_sum(&metrics, "shardlog_head_entries", &[])
            + metric_sum(&metrics, "shardlog_sealing_failed", &[]);
        if unsealed == 0.0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "heads still unsealed {timeout:?} after the connections closed; output:\n{}",
            server.output()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_default_connection_cap_keeps_descriptors_for_sealing() {
    let dir = TestDir::new("emfile-reserve");
    // 64 + 1024 per core reserved for the process and its data files, 100 per core for
    // connections.
    let server = start(&dir, 64 + 2 * 1024 + 2 * 100, &[]);
    assert!(
        server.output().contains("at most 100 per core"),
        "{}",
        server.output()
    );
    push_round(&server, 0);
    hold_connections(&server, 600);
    push_round(&server, 1);
    wait_all_sealed(&server, Duration::from_secs(30));

    assert_eq!(metric(&server, "shardlog_seal_failures_total"), 0.0);
    assert_eq!(metric(&server, "shardlog_accept_errors_total"), 0.0);
    assert!(metric(&server, "shardlog_accept_paused_total") >= 1.0);
    assert_eq!(
        server.query_all("{test=\"emfile-seal\"}", false).len(),
        2 * STREAMS
    );
}

#[test]
fn sealing_out_of_descriptors_is_retried_and_resumes_by_itself() {
    let dir = TestDir::new("emfile-seal");
    // The server uses a few dozen descriptors for its rings, sockets and WAL; the explicit
    // cap lets connections take the rest.
    let server = start(&dir, 160, &["--connections-max", "10000"]);
    push_round(&server, 0);
    hold_connections(&server, 300);

    // Descriptors are back: the failed rounds are retried (backoff of at most 5 s).
    wait_all_sealed(&server, Duration::from_secs(30));
    let failures = metric(&server, "shardlog_seal_failures_total");
    let output = server.output();
    assert!(
        failures >= 1.0,
        "no seal round ran out of descriptors: the test checked nothing; output:\n{output}"
    );
    assert!(output.contains("sealing failed"), "{output}");
    assert!(output.contains("sealing works again"), "{output}");
    assert_eq!(server.get("/ready").status, 200);

    // Sealing goes on as usual afterwards.
    push_round(&server, 1);
    wait_all_sealed(&server, Duration::from_secs(30));
    let stored = server.query_all("{test=\"emfile-seal\"}", false);
    assert_eq!(stored.len(), 2 * STREAMS, "every line once: {stored:?}");
}

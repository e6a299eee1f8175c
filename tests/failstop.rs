//! Fail-stop, against the real binary: a core whose executor panics or stops turning takes
//! the whole process down at once with exit status 70, instead of leaving a server whose
//! other core keeps answering `/ready` while half of its connections, pushes and every query
//! hang. Nothing acknowledged before the death is lost: a restart replays the WAL.
//!
//! The faults are injected through the test-only `SHARDLOG_TEST_FAULT` variable
//! (`src/runtime/failstop.rs`), a few hundred milliseconds after the server is ready, while
//! a client pushes to streams of both shards.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use common::{Server, ServerOptions, TestDir, now_ns};
use serde_json::json;

/// The exit status of a fail-stop (`EX_SOFTWARE`), as `src/runtime/failstop.rs` defines it.
const FAIL_STOP_EXIT_CODE: i32 = 70;

/// How long the process may take to exit after the fault: not a speed figure, a bound that
/// tells a fail-stop from a server left half alive (the reported one took 61 s to stop even
/// when asked to).
const EXIT_WITHIN: Duration = Duration::from_secs(20);

/// Streams pushed to: enough that both shards own some.
const STREAMS: usize = 16;

/// Requests a pusher sends at most: its lines must fit one query of the check.
const PUSHES_MAX: usize = 250;

/// Pushes one line to each of [`STREAMS`] streams per request until told to stop, the server
/// stops answering or [`PUSHES_MAX`]; returns the lines that were acknowledged (204).
fn pusher(server: &Server, stop: Arc<AtomicBool>) -> JoinHandle<Vec<String>> {
    let addr = server.http;
    std::thread::spawn(move || {
        let mut acknowledged = Vec::new();
        let mut n = 0usize;
        while !stop.load(Ordering::Relaxed) && n < PUSHES_MAX {
            let ts = now_ns();
            let lines: Vec<String> = (0..STREAMS).map(|s| format!("line {n} of {s}")).collect();
            let streams: Vec<_> = lines
                .iter()
                .enumerate()
                .map(|(s, line)| {
                    json!({"stream": {"test": "failstop", "s": s.to_string()},
                           "values": [[ts.to_string(), line]]})
                })
                .collect();
            let body = serde_json::to_vec(&json!({ "streams": streams })).expect("encode");
            match common::http::request(
                addr,
                "POST",
                "/loki/api/v1/push",
                &[("Content-Type", "application/json")],
                &body,
            ) {
                Ok(r) if r.status == 204 => acknowledged.extend(lines),
                Ok(_) => {}
                Err(_) => break,
            }
            n += 1;
            std::thread::sleep(Duration::from_millis(5));
        }
        acknowledged
    })
}

/// Starts a server with `fault` injected and a pusher running, waits for the process to
/// exit by itself, and checks that it was a fail-stop; then restarts it on the same data
/// dir and checks that every acknowledged line is there.
fn dies_whole_and_loses_nothing(name: &str, fault: &str, extra_args: &[&str], says: &str) {
    let dir = TestDir::new(name);
    let options = ServerOptions {
        extra_args: extra_args.iter().map(|a| a.to_string()).collect(),
        ..ServerOptions::default()
    };
    let mut server =
        Server::start_unready_with_env(&dir, &options, &[("SHARDLOG_TEST_FAULT", fault)]);
    server
        .wait_ready()
        .expect("the server becomes ready before its fault");
    let stop = Arc::new(AtomicBool::new(false));
    let pushing = pusher(&server, stop.clone());

    let status = server.wait_exit(EXIT_WITHIN);
    stop.store(true, Ordering::Relaxed);
    let acknowledged = pushing.join().expect("pusher thread");
    let output = server.output();
    let status = status.unwrap_or_else(|| {
        panic!("the server still runs {EXIT_WITHIN:?} after its fault; output:\n{output}")
    });
    assert_eq!(
        status.code(),
        Some(FAIL_STOP_EXIT_CODE),
        "a dead core must end the process with {FAIL_STOP_EXIT_CODE}: {status}; output:\n{output}"
    );
    assert!(
        output.contains(says),
        "the output must say {says:?}:\n{output}"
    );
    assert!(output.contains("fail-stop"), "{output}");
    assert!(
        !acknowledged.is_empty(),
        "nothing was pushed before the fault: the test checked nothing"
    );

    let restarted = Server::start(&dir);
    let mut stored: Vec<String> = restarted
        .query_all("{test=\"failstop\"}", false)
        .into_iter()
        .map(|e| e.line)
        .collect();
    stored.sort();
    let mut expected = acknowledged;
    expected.sort();
    let missing: Vec<&String> = expected
        .iter()
        .filter(|l| stored.binary_search(l).is_err())
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged lines missing after the restart, e.g. {:?}",
        missing.len(),
        expected.len(),
        &missing[..missing.len().min(5)]
    );
}

#[test]
fn a_panic_in_one_executor_ends_the_whole_process() {
    dies_whole_and_loses_nothing(
        "failstop-panic",
        "panic:1:700",
        &[],
        "injected fault: core 1 panics",
    );
}

#[test]
fn a_core_that_stops_turning_ends_the_whole_process() {
    dies_whole_and_loses_nothing(
        "failstop-stall",
        "stall:0:700",
        &["--core-stall-max", "2s"],
        "core 0 has not turned",
    );
}

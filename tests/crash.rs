//! Durability across crashes and stops of the real process.
//!
//! `kill -9` loop: a pusher sends batches as fast as the server acknowledges them while the
//! test kills the server at a random moment; after each restart on the same data directory
//! every acknowledged line of every round so far must be there exactly once, and no line at
//! all may be there twice (a WAL replayed twice, or a record applied from two segments,
//! would show as duplicates). Unacknowledged batches may or may not have landed.
//!
//! Sealing into parts and WAL checkpoints run throughout (small seal size and age), so the
//! kills also land in the middle of part writes and manifest replacements.
//!
//! Graceful stop: SIGTERM exits 0 and everything pushed is there after the restart.
//!
//! The random kill moments come from the clock; the seed is printed, and
//! `SHARDLOG_CRASH_SEED` replays a run.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::loki::LOOKBACK_NS;
use common::{Server, ServerOptions, TestDir, now_ns};
use serde_json::json;
use shardlog::model::{Labels, owner_shard, stream_hash};

/// Kill-and-restart rounds; each takes about a second, which keeps the test near 20 s.
const ROUNDS: usize = 8;
/// Streams per batch: several, so that one acknowledged push spans both shards and the
/// acknowledgement has to wait for both WALs.
const STREAMS_PER_BATCH: usize = 4;
const LINES_PER_STREAM: usize = 5;
const LINES_PER_BATCH: usize = STREAMS_PER_BATCH * LINES_PER_STREAM;
/// Batches per round at most, so that one stream's lines in a round stay below one query's
/// limit; more than the server acknowledges before the latest kill, so kills land mid-push.
const BATCHES_PER_ROUND_MAX: usize = 900;
/// The window in which the kill falls, after the server is ready.
const KILL_AFTER_MS_MIN: u64 = 5;
const KILL_AFTER_MS_MAX: u64 = 1200;

/// WAL segment size for the kill loop: the smallest the server accepts, so that segments
/// fill and roll over during the rounds (a kill can land mid-rollover), and so that the
/// preallocated segment each restart opens stays cheap to replay.
const WAL_SEGMENT_BYTES: u64 = 1 << 20;

/// Sealing runs all the time during the kill rounds (small heads, short age), so kills land
/// in every step of it: part writes, manifest replacements, WAL checkpoints.
fn options() -> ServerOptions {
    ServerOptions {
        extra_args: vec![
            "--wal-segment-bytes-max".into(),
            WAL_SEGMENT_BYTES.to_string(),
            "--seal-bytes".into(),
            "16384".into(),
            "--seal-age".into(),
            "200ms".into(),
        ],
        ..ServerOptions::default()
    }
}

/// A small xorshift generator: enough to spread kill moments, and reproducible by seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low + 1)
    }
}

fn seed() -> u64 {
    let seed = match std::env::var("SHARDLOG_CRASH_SEED") {
        Ok(text) => text.parse().expect("SHARDLOG_CRASH_SEED is a number"),
        Err(_) => now_ns() as u64 | 1,
    };
    eprintln!("crash test seed: {seed} (SHARDLOG_CRASH_SEED={seed} replays it)");
    seed
}

/// `part` label values for one round, chosen so that the streams alternate between the two
/// shards (the server places streams by `stream_hash`).
fn parts(round: usize) -> Vec<String> {
    let round_text = round.to_string();
    (0..STREAMS_PER_BATCH)
        .map(|s| {
            (0..)
                .map(|salt| format!("p{s}-{salt}"))
                .find(|part| {
                    let labels = Labels::from_pairs([
                        ("job", "crash"),
                        ("round", round_text.as_str()),
                        ("part", part.as_str()),
                    ]);
                    owner_shard(stream_hash("fake", &labels), 2) == s % 2
                })
                .expect("some salt lands on each shard")
        })
        .collect()
}

fn line(round: usize, batch: usize, stream: usize, i: usize) -> String {
    format!("crash round={round} batch={batch} stream={stream} i={i}")
}

fn batch_body(t0: i64, round: usize, batch: usize, parts: &[String]) -> Vec<u8> {
    let streams: Vec<_> = parts
        .iter()
        .enumerate()
        .map(|(s, part)| {
            let values: Vec<_> = (0..LINES_PER_STREAM)
                .map(|i| {
                    let n = (round * BATCHES_PER_ROUND_MAX + batch) * LINES_PER_BATCH
                        + s * LINES_PER_STREAM
                        + i;
                    json!([(t0 + n as i64 * 1000).to_string(), line(round, batch, s, i)])
                })
                .collect();
            json!({"stream": {"job": "crash", "round": round.to_string(), "part": part}, "values": values})
        })
        .collect();
    json!({ "streams": streams }).to_string().into_bytes()
}

/// Pushes batches of `round` until the server goes away or the round's budget is spent;
/// returns the batches answered 204. Any other answer fails the test.
fn push_until_killed(
    http: std::net::SocketAddr,
    t0: i64,
    round: usize,
    acked: Arc<Mutex<Vec<usize>>>,
) {
    let parts = parts(round);
    for batch in 0..BATCHES_PER_ROUND_MAX {
        let body = batch_body(t0, round, batch, &parts);
        match common::http::request(
            http,
            "POST",
            "/loki/api/v1/push",
            &[("Content-Type", "application/json")],
            &body,
        ) {
            Ok(response) if response.status == 204 => acked.lock().expect("acked list").push(batch),
            Ok(response) => panic!(
                "round {round} batch {batch}: status {} {}",
                response.status,
                response.text()
            ),
            Err(_) => return, // killed: the answer never came
        }
    }
}

/// Every acknowledged line of `round` exactly once; no line of it twice. Read stream by
/// stream, so that each query stays below the query limit.
fn verify_round(server: &Server, round: usize, acked: &[usize]) {
    let mut counts: HashMap<String, usize> = HashMap::new();
    let mut stored = 0;
    for part in parts(round) {
        let query = format!(r#"{{job="crash", round="{round}", part="{part}"}}"#);
        let got = server.query_all(&query, false);
        stored += got.len();
        for entry in got {
            *counts.entry(entry.line).or_default() += 1;
        }
    }
    let duplicated: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(
        duplicated.is_empty(),
        "round {round}: lines stored more than once: {duplicated:?}"
    );
    let mut missing = Vec::new();
    for &batch in acked {
        for s in 0..STREAMS_PER_BATCH {
            for i in 0..LINES_PER_STREAM {
                let want = line(round, batch, s, i);
                if !counts.contains_key(&want) {
                    missing.push(want);
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "round {round}: {} acknowledged lines lost after kill -9 (of {} acked batches), e.g. {:?}",
        missing.len(),
        acked.len(),
        &missing[..missing.len().min(5)]
    );
    let stats = server.index_stats(&format!(r#"{{job="crash", round="{round}"}}"#));
    assert_eq!(
        stats.entries, stored as u64,
        "round {round}: index stats disagree with the query"
    );
}

#[test]
fn kill9_loses_no_acknowledged_line() {
    let dir = TestDir::new("crash-kill9");
    let mut rng = Rng(seed());
    let t0 = now_ns() - LOOKBACK_NS / 2;
    let mut acked_per_round: Vec<Vec<usize>> = Vec::new();
    for round in 0..ROUNDS {
        let mut server = Server::start_with(&dir, &options());
        for (earlier, acked) in acked_per_round.iter().enumerate() {
            verify_round(&server, earlier, acked);
        }
        let acked = Arc::new(Mutex::new(Vec::new()));
        let pusher = {
            let acked = Arc::clone(&acked);
            let http = server.http;
            std::thread::spawn(move || push_until_killed(http, t0, round, acked))
        };
        let kill_after = rng.between(KILL_AFTER_MS_MIN, KILL_AFTER_MS_MAX);
        std::thread::sleep(Duration::from_millis(kill_after));
        server.kill9();
        pusher.join().expect("pusher thread");
        let acked = acked.lock().expect("acked list").clone();
        eprintln!(
            "round {round}: killed after {kill_after} ms, {} batches acknowledged",
            acked.len()
        );
        acked_per_round.push(acked);
    }
    let total: usize = acked_per_round.iter().map(Vec::len).sum();
    assert!(
        total > 0,
        "no batch was ever acknowledged: the test proved nothing"
    );

    // A last restart checks every round, then a graceful stop and one more restart.
    let mut server = Server::start_with(&dir, &options());
    for (round, acked) in acked_per_round.iter().enumerate() {
        verify_round(&server, round, acked);
    }
    let samples = common::loki::parse_metrics(&server.metrics());
    assert!(
        common::loki::metric_sum(&samples, "shardlog_parts", &[]) > 0.0,
        "the rounds sealed nothing: the kills never landed in sealing"
    );
    server.terminate_ok();
    let server = Server::start_with(&dir, &options());
    for (round, acked) in acked_per_round.iter().enumerate() {
        verify_round(&server, round, acked);
    }
}

#[test]
fn sigterm_exits_zero_and_keeps_data() {
    let dir = TestDir::new("crash-sigterm");
    let mut server = Server::start_with(&dir, &options());
    let t0 = now_ns() - 600 * 1_000_000_000;
    let parts = parts(0);
    for batch in 0..10 {
        let response = server.post(
            "/loki/api/v1/push",
            &[("Content-Type", "application/json")],
            &batch_body(t0, 0, batch, &parts),
        );
        assert_eq!(response.status, 204, "{}", response.text());
    }
    server.terminate_ok();

    let mut server = Server::start_with(&dir, &options());
    let acked: Vec<usize> = (0..10).collect();
    verify_round(&server, 0, &acked);
    assert_eq!(
        server.query_all(r#"{job="crash"}"#, false).len(),
        10 * LINES_PER_BATCH
    );

    // SIGINT is a graceful stop too.
    let status = server.stop_with(common::server::Signal::SIGINT);
    assert_eq!(
        status.code(),
        Some(0),
        "SIGINT must exit 0; output:\n{}",
        server.output()
    );
    let server = Server::start_with(&dir, &options());
    verify_round(&server, 0, &acked);
}

/// A damaged record in an earlier WAL segment (not a torn tail) stops start-up with a message
/// that names the file, the offset and the repair flag; `--wal-repair` starts anyway, losing
/// only what the damaged segment held after the damage.
#[test]
fn wal_corruption_stops_startup_unless_repaired() {
    let dir = TestDir::new("crash-corruption");
    let t0 = now_ns() - 600 * 1_000_000_000;
    let parts = parts(0);
    // Two runs, so that shard 0 has an earlier segment (each start opens a new one). Nothing
    // is sealed (a stop would seal everything and the next start would checkpoint the WAL
    // away), so the runs end with kill -9 and a long seal age.
    let unsealed = ServerOptions {
        extra_args: vec!["--seal-age".into(), "24h".into()],
        ..ServerOptions::default()
    };
    let options = || unsealed.clone();
    for run in 0..2 {
        let mut server = Server::start_with(&dir, &options());
        for batch in 0..5 {
            let response = server.post(
                "/loki/api/v1/push",
                &[("Content-Type", "application/json")],
                &batch_body(t0, 0, run * 5 + batch, &parts),
            );
            assert_eq!(response.status, 204, "{}", response.text());
        }
        server.kill9();
    }
    let wal = dir.data_dir().join("wal").join("shard-0000");
    let mut segments: Vec<_> = std::fs::read_dir(&wal)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "wal"))
        .collect();
    segments.sort();
    assert!(
        segments.len() >= 2,
        "two runs make two segments: {segments:?}"
    );
    // Flip a byte in the body of the first record of the first segment (block 1 holds the
    // first commit; the record header is 32 bytes).
    let first = &segments[0];
    let mut bytes = std::fs::read(first).unwrap();
    bytes[4096 + 40] ^= 0xff;
    std::fs::write(first, &bytes).unwrap();

    let (http_port, syslog_port) = common::server::free_ports(true);
    let args = common::server::server_args(&dir, &options(), http_port, syslog_port);
    let failure = match Server::spawn_ready(&dir, &args, http_port, syslog_port) {
        Ok(_) => panic!("a corrupt WAL must stop start-up"),
        Err(failure) => failure,
    };
    let name = first.file_name().unwrap().to_string_lossy().to_string();
    assert!(failure.contains("WAL corruption"), "{failure}");
    assert!(
        failure.contains(&name),
        "the message names the file: {failure}"
    );
    assert!(failure.contains("--wal-repair"), "{failure}");

    let mut repaired = options();
    repaired.extra_args.push("--wal-repair".into());
    let server = Server::start_with(&dir, &repaired);
    let lines = server.query_all(r#"{job="crash"}"#, false).len();
    assert!(
        lines > 0 && lines < 10 * LINES_PER_BATCH,
        "{lines} lines after repair"
    );
}

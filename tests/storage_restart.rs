//! The real logs survive every kind of restart, exactly once and in order.
//!
//! The ten loghub corpus files are pushed through the Loki API, one stream per file
//! (`{app="<file stem>", source="corpus"}`), with explicit timestamps 1 ms apart, so that
//! what comes back can be compared line for line: every line exactly once, in time order,
//! byte for byte. The same check runs after ingest, after a graceful stop (SIGTERM) and
//! restart, after `kill -9` and a restart with fewer cores (the WAL of the shard that no
//! longer exists is replayed by another one), after new lines were pushed to some of the
//! same streams under the new core count, and after another `kill -9` and a restart with
//! the original core count (one stream's lines now live on two shards). Index stats, label
//! names and label values must agree with the lines each time.
//!
//! The server runs with small sealing thresholds (`--seal-bytes`, `--seal-age`), so that
//! once heads are sealed into part files the same checks cover lines read from parts, from
//! heads and from both; until then every line stays in the WAL and the checks hold the same.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::http::encode_query;
use common::loki::string_map;
use common::server::POLL_INTERVAL_MS;
use common::tools::{corpus_dir, missing};
use common::{QUERY_LIMIT, Server, ServerOptions, TestDir, labels, now_ns};
use serde_json::{Value, json};

/// Sealing thresholds small enough that a corpus file (150 to 600 KB) seals by size several
/// times over, and the rest of every stream by age within the test's wait.
const SEAL_BYTES: &str = "65536";
const SEAL_AGE: &str = "1s";

/// The longest the test waits for age-based sealing to write a part file. Only a bound: the
/// checks are the same whether or not a part was written (today nothing is sealed and the
/// whole wait passes).
const SEAL_WAIT_MS: u64 = 2_000;

/// Lines per push request: several requests per file, so that a stream's lines come from
/// several WAL records and group commits.
const LINES_PER_PUSH: usize = 500;

/// Timestamp step between consecutive lines of one stream.
const LINE_STEP_NS: i64 = 1_000_000;

/// Lines pushed after the core-count change to each of the streams in [`LATE_APPS`].
const LATE_LINES: usize = 300;

/// Streams that get lines after the core-count change (first and last file by name, so that
/// whichever shard each landed on before, the change moves at least one to a new owner on a
/// 2 -> 1 -> 2 sequence of core counts).
const LATE_APPS: [usize; 2] = [0, 9];

/// One stream as the test expects it back: its lines with their timestamps, in order.
struct Stream {
    app: String,
    lines: Vec<(i64, String)>,
}

impl Stream {
    fn selector(&self) -> String {
        format!(r#"{{app="{}", source="corpus"}}"#, self.app)
    }
}

/// The corpus files as streams, files sorted by name; `None` (after the missing-tool rule)
/// when the corpus is not there.
fn corpus_streams(base_ns: i64) -> Option<Vec<Stream>> {
    let dir = corpus_dir();
    let Ok(read) = std::fs::read_dir(&dir) else {
        missing(&format!("loghub corpus at {}", dir.display()));
        return None;
    };
    let mut files: Vec<PathBuf> = read
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    files.sort();
    assert_eq!(
        files.len(),
        10,
        "the loghub corpus has ten files: {files:?}"
    );
    let streams = files
        .iter()
        .map(|path| {
            let text = std::fs::read_to_string(path)
                .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
            // `lines()` drops the CRLF ends of the files; everything else of a line (trailing
            // spaces, escapes such as `\042`) is part of it and must come back unchanged.
            let lines = text
                .lines()
                .enumerate()
                .map(|(i, l)| (base_ns + i as i64 * LINE_STEP_NS, l.to_string()))
                .collect();
            Stream {
                app: path
                    .file_stem()
                    .expect("a file name")
                    .to_string_lossy()
                    .into_owned(),
                lines,
            }
        })
        .collect();
    Some(streams)
}

fn options(cores: usize) -> ServerOptions {
    ServerOptions {
        cores,
        syslog: false,
        extra_args: vec![
            "--seal-bytes".into(),
            SEAL_BYTES.into(),
            "--seal-age".into(),
            SEAL_AGE.into(),
        ],
        ..ServerOptions::default()
    }
}

/// Pushes `lines` of `app` in requests of [`LINES_PER_PUSH`], each acknowledged with 204.
fn push(server: &Server, app: &str, lines: &[(i64, String)]) {
    for chunk in lines.chunks(LINES_PER_PUSH) {
        let values: Vec<Value> = chunk
            .iter()
            .map(|(ts, line)| json!([ts.to_string(), line]))
            .collect();
        server.push_json_ok(&json!({
            "streams": [{"stream": {"app": app, "source": "corpus"}, "values": values}]
        }));
    }
}

/// The query window: from well before the first line to just after now (`end` is exclusive).
struct Window {
    start: String,
    end: String,
}

impl Window {
    fn new(base_ns: i64) -> Window {
        Window {
            start: (base_ns - 60 * 1_000_000_000).to_string(),
            end: (now_ns() + 60 * 1_000_000_000).to_string(),
        }
    }
}

/// Every line of `stream` exactly once, in time order, byte for byte, as one stream of the
/// response (the server merges one stream's lines from several shards into one).
fn check_stream(server: &Server, stream: &Stream, window: &Window, when: &str) {
    let query = stream.selector();
    let limit = QUERY_LIMIT.to_string();
    let body = server.query_range(&[
        ("query", &query),
        ("start", &window.start),
        ("end", &window.end),
        ("limit", &limit),
        ("direction", "forward"),
    ]);
    assert!(
        stream.lines.len() < QUERY_LIMIT,
        "{when}: the test must keep each stream below the query limit"
    );
    let result = body["data"]["result"]
        .as_array()
        .unwrap_or_else(|| panic!("{when}: {query}: no result array"));
    assert_eq!(
        result.len(),
        1,
        "{when}: {query}: expected one stream, got {}",
        result.len()
    );
    assert_eq!(
        string_map(&result[0]["stream"]),
        labels(&[("app", &stream.app), ("source", "corpus")]),
        "{when}: {query}: stream labels"
    );
    let values = result[0]["values"]
        .as_array()
        .unwrap_or_else(|| panic!("{when}: {query}: no values"));
    let got: Vec<(i64, &str)> = values
        .iter()
        .map(|v| {
            let ts = v[0]
                .as_str()
                .and_then(|t| t.parse().ok())
                .unwrap_or_else(|| panic!("{when}: {query}: bad timestamp in {v}"));
            let line = v[1]
                .as_str()
                .unwrap_or_else(|| panic!("{when}: {query}: bad line in {v}"));
            (ts, line)
        })
        .collect();
    if let Some(i) = (0..got.len().min(stream.lines.len()))
        .find(|&i| got[i].0 != stream.lines[i].0 || got[i].1 != stream.lines[i].1)
    {
        panic!(
            "{when}: {query}: entry {i} differs\n  want {:?}\n  got  {:?}\n({} lines wanted, {} returned)",
            stream.lines[i],
            got[i],
            stream.lines.len(),
            got.len()
        );
    }
    assert_eq!(
        got.len(),
        stream.lines.len(),
        "{when}: {query}: every line exactly once (extra or missing lines at the end)"
    );
}

/// The `data` array of strings of a labels or label-values answer.
fn strings(server: &Server, path: &str, window: &Window, when: &str) -> BTreeSet<String> {
    let path = format!(
        "{path}?{}",
        encode_query(&[("start", &window.start), ("end", &window.end)])
    );
    let response = server.get(&path);
    assert_eq!(response.status, 200, "{when}: {path}: {}", response.text());
    let body = response.json();
    body["data"]
        .as_array()
        .unwrap_or_else(|| panic!("{when}: {path}: no data array: {body}"))
        .iter()
        .map(|v| {
            v.as_str()
                .unwrap_or_else(|| panic!("{when}: {path}: not a string: {v}"))
                .to_string()
        })
        .collect()
}

/// Every stream line for line, and index stats, label names and `app` values that agree.
fn check_all(server: &Server, streams: &[Stream], base_ns: i64, when: &str) {
    let window = Window::new(base_ns);
    for stream in streams {
        check_stream(server, stream, &window, when);
    }
    let stats = server.index_stats(r#"{source="corpus"}"#);
    let entries: usize = streams.iter().map(|s| s.lines.len()).sum();
    let bytes: usize = streams
        .iter()
        .flat_map(|s| s.lines.iter().map(|(_, l)| l.len()))
        .sum();
    assert_eq!(stats.entries, entries as u64, "{when}: index stats entries");
    assert_eq!(stats.bytes, bytes as u64, "{when}: index stats bytes");
    // Distinct streams, as Loki counts them, even when a stream has lines on two shards after
    // a core-count change.
    assert_eq!(
        stats.streams,
        streams.len() as u64,
        "{when}: index stats streams"
    );

    let names = strings(server, "/loki/api/v1/labels", &window, when);
    assert!(
        names.contains("app") && names.contains("source"),
        "{when}: label names {names:?}"
    );
    let apps = strings(server, "/loki/api/v1/label/app/values", &window, when);
    let want: BTreeSet<String> = streams.iter().map(|s| s.app.clone()).collect();
    assert_eq!(apps, want, "{when}: label values of app");
}

/// Part files under the data directory (none until sealing exists).
fn part_files(dir: &Path) -> usize {
    let Ok(read) = std::fs::read_dir(dir) else {
        return 0;
    };
    read.filter_map(Result::ok)
        .map(|e| {
            let path = e.path();
            if path.is_dir() {
                part_files(&path)
            } else {
                usize::from(path.extension().is_some_and(|x| x == "part"))
            }
        })
        .sum()
}

/// Waits up to [`SEAL_WAIT_MS`] for a part file to appear; returns how many there are.
fn wait_for_parts(data_dir: &Path) -> usize {
    let deadline = Instant::now() + Duration::from_millis(SEAL_WAIT_MS);
    loop {
        let parts = part_files(data_dir);
        if parts > 0 || Instant::now() > deadline {
            return parts;
        }
        std::thread::sleep(Duration::from_millis(POLL_INTERVAL_MS));
    }
}

#[test]
fn corpus_survives_restarts_and_core_changes_exactly_once_in_order() {
    // An hour back: inside every default query window, and old enough that no line is
    // clamped as being in the future.
    let base_ns = now_ns() - 3600 * 1_000_000_000;
    let Some(mut streams) = corpus_streams(base_ns) else {
        return;
    };
    let dir = TestDir::new("storage-restart");

    let mut server = Server::start_with(&dir, &options(2));
    for stream in &streams {
        push(&server, &stream.app, &stream.lines);
    }
    check_all(&server, &streams, base_ns, "after ingest");
    let parts = wait_for_parts(&dir.data_dir());
    eprintln!("part files after ingest: {parts}");
    check_all(&server, &streams, base_ns, "after the sealing wait");

    server.terminate_ok();
    let mut server = Server::start_with(&dir, &options(2));
    check_all(&server, &streams, base_ns, "after SIGTERM and restart");

    server.kill9();
    let mut server = Server::start_with(&dir, &options(1));
    check_all(
        &server,
        &streams,
        base_ns,
        "after kill -9 and restart on 1 core",
    );

    // New lines to some of the same streams, now owned by the only shard; later than every
    // line of the corpus, so each stream stays in time order.
    let late_base = base_ns + 10_000 * LINE_STEP_NS;
    for &i in &LATE_APPS {
        let stream = &mut streams[i];
        let late: Vec<(i64, String)> = (0..LATE_LINES)
            .map(|n| {
                (
                    late_base + n as i64 * LINE_STEP_NS,
                    format!("late line {n} of {} after the core change", stream.app),
                )
            })
            .collect();
        push(&server, &stream.app, &late);
        stream.lines.extend(late);
    }
    check_all(&server, &streams, base_ns, "after new lines on 1 core");
    let parts = wait_for_parts(&dir.data_dir());
    eprintln!("part files after new lines on 1 core: {parts}");

    server.kill9();
    let server = Server::start_with(&dir, &options(2));
    check_all(
        &server,
        &streams,
        base_ns,
        "after kill -9 and restart on 2 cores",
    );
}

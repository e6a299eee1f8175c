//! `shardlog agent` against the real server, both as real processes: files written, rotated
//! both ways (rename and create, copytruncate), a file that appears later, multiline records,
//! the server stopped while the agent has lines to ship and started again, the agent killed
//! with SIGKILL and started again. At the end every line written is stored exactly once (the
//! server's duplicate drop removes what the agent sent twice around its crash), and the
//! agent's own `/metrics` agree.
//!
//! The lines are real log lines from `testdata/loghub/` (OpenSSH, Linux syslog, Hadoop and
//! Spark; see the README there for the licence). Waits have deadlines, but nothing is timed.

mod common;

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::loki::{metric_sum, parse_metrics};
use common::server::{free_ports, send_signal, server_args, wait_timeout};
use common::{Server, ServerOptions, TestDir};
use nix::sys::signal::Signal;

/// How long lines may take to reach the server, including a server restart and the agent's
/// backoff (`backoff_max` below is 500 ms).
const ARRIVAL_WAIT: Duration = Duration::from_secs(60);

/// Unique lines of a loghub file, in file order (a few lines of these logs repeat exactly).
fn loghub(name: &str) -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/loghub")
        .join(name);
    let text = std::fs::read_to_string(&path).expect("read the loghub sample");
    let mut seen = std::collections::HashSet::new();
    text.lines()
        .map(|l| l.trim_end_matches('\r').to_string())
        .filter(|l| !l.is_empty() && seen.insert(l.clone()))
        .collect()
}

/// Hands out lines of one corpus in order, so that no line is written twice.
struct Source {
    lines: std::vec::IntoIter<String>,
}

impl Source {
    fn new(name: &str) -> Source {
        Source {
            lines: loghub(name).into_iter(),
        }
    }

    fn take(&mut self, n: usize) -> Vec<String> {
        let out: Vec<String> = self.lines.by_ref().take(n).collect();
        assert_eq!(out.len(), n, "the corpus has enough unique lines");
        out
    }
}

fn append(path: &Path, lines: &[String]) {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open a log file");
    for l in lines {
        writeln!(f, "{l}").expect("write a log line");
    }
}

/// A running `shardlog agent`.
struct Agent {
    child: Option<Child>,
    config: PathBuf,
    log: PathBuf,
    metrics: SocketAddr,
    starts: usize,
}

impl Agent {
    fn start(config: &Path, log_dir: &Path, metrics: SocketAddr) -> Agent {
        let mut agent = Agent {
            child: None,
            config: config.to_path_buf(),
            log: log_dir.to_path_buf(),
            metrics,
            starts: 0,
        };
        agent.spawn();
        agent
    }

    fn spawn(&mut self) {
        self.spawn_with_env(&[]);
        self.wait_for(
            |m| m.contains("shardlog_agent_buffer_bytes"),
            "its /metrics",
        );
    }

    fn spawn_with_env(&mut self, env: &[(&str, &str)]) {
        let log = File::create(self.log.join(format!("agent-{}.log", self.starts)))
            .expect("create the agent's log");
        self.starts += 1;
        let child = Command::new(env!("CARGO_BIN_EXE_shardlog"))
            .args(["agent", "--config"])
            .arg(&self.config)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone"))
            .stderr(log)
            .spawn()
            .expect("spawn shardlog agent");
        self.child = Some(child);
    }

    /// Waits for an agent started with a crash fault to die of it.
    fn wait_crash(&mut self) {
        use std::os::unix::process::ExitStatusExt;
        let mut child = self.child.take().expect("agent running");
        let status = wait_timeout(&mut child, ARRIVAL_WAIT).unwrap_or_else(|| {
            send_signal(child.id() as i32, Signal::SIGKILL);
            panic!("the agent did not hit its fault\n{}", self.output());
        });
        assert_eq!(status.signal(), Some(9), "{status:?}\n{}", self.output());
    }

    fn kill9(&mut self) {
        let mut child = self.child.take().expect("agent running");
        send_signal(child.id() as i32, Signal::SIGKILL);
        child.wait().expect("reap the agent");
    }

    fn terminate(&mut self) -> i32 {
        let mut child = self.child.take().expect("agent running");
        send_signal(child.id() as i32, Signal::SIGTERM);
        let status = wait_timeout(&mut child, Duration::from_secs(30)).unwrap_or_else(|| {
            send_signal(child.id() as i32, Signal::SIGKILL);
            panic!(
                "the agent did not stop within 30 s of SIGTERM\n{}",
                self.output()
            );
        });
        status.code().unwrap_or(-1)
    }

    fn output(&self) -> String {
        (0..self.starts)
            .map(|i| {
                std::fs::read_to_string(self.log.join(format!("agent-{i}.log"))).unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join("--- restart ---\n")
    }

    fn metrics_text(&self) -> Option<String> {
        let response = common::http::request(self.metrics, "GET", "/metrics", &[], &[]).ok()?;
        (response.status == 200).then(|| response.text())
    }

    /// Waits until the agent's metrics satisfy `ok`; panics after [`ARRIVAL_WAIT`].
    fn wait_for(&self, ok: impl Fn(&str) -> bool, what: &str) -> String {
        let deadline = Instant::now() + ARRIVAL_WAIT;
        loop {
            if let Some(text) = self.metrics_text()
                && ok(&text)
            {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "the agent did not reach {what}; its output:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- agent output ---\n{}\n--- end ---", self.output());
        }
        if let Some(mut child) = self.child.take() {
            send_signal(child.id() as i32, Signal::SIGKILL);
            let _ = child.wait();
        }
    }
}

/// Every line of `query` as stored, with its `filename` label, sorted by line.
fn stored(server: &Server, query: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = server
        .query_all(query, false)
        .into_iter()
        .map(|e| {
            (
                e.line,
                e.labels.get("filename").cloned().unwrap_or_default(),
            )
        })
        .collect();
    out.sort();
    out
}

/// Waits until `query` holds exactly `expected` (line, filename) pairs, each once.
fn wait_exactly(server: &Server, agent: &Agent, query: &str, expected: &[(String, String)]) {
    let mut want = expected.to_vec();
    want.sort();
    let deadline = Instant::now() + ARRIVAL_WAIT;
    loop {
        let got = stored(server, query);
        if got == want {
            return;
        }
        if Instant::now() > deadline || got.len() > want.len() {
            let missing: Vec<_> = want.iter().filter(|w| !got.contains(w)).take(5).collect();
            let mut counts: BTreeMap<&(String, String), usize> = BTreeMap::new();
            for g in &got {
                *counts.entry(g).or_default() += 1;
            }
            let doubled: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).take(5).collect();
            let extra: Vec<_> = got.iter().filter(|g| !want.contains(g)).take(5).collect();
            panic!(
                "{query}: {} stored, {} expected; missing {missing:?}, doubled {doubled:?}, unexpected {extra:?}\nagent output:\n{}",
                got.len(),
                want.len(),
                agent.output()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn tagged(lines: &[String], filename: &Path) -> Vec<(String, String)> {
    lines
        .iter()
        .map(|l| (l.clone(), filename.display().to_string()))
        .collect()
}

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .expect("probe a port")
        .local_addr()
        .expect("its address")
}

#[test]
fn the_agent_ships_every_line_once_through_rotations_outages_and_a_crash() {
    let dir = TestDir::new("agent");
    let options = ServerOptions {
        syslog: false,
        ..ServerOptions::default()
    };
    let (http_port, _) = free_ports(false);
    let args = server_args(&dir, &options, http_port, 0);
    let mut server =
        Server::spawn_ready(&dir, &args, http_port, 0).unwrap_or_else(|e| panic!("{e}"));

    let logs = dir.path().join("logs");
    let multi = dir.path().join("multi");
    std::fs::create_dir_all(&logs).unwrap();
    std::fs::create_dir_all(&multi).unwrap();
    let metrics_addr = free_addr();
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            r#"
positions_file = "{state}/positions"
buffer_dir = "{state}/buffer"
metrics_addr = "{metrics_addr}"
poll_interval = "100ms"

[client]
url = "http://127.0.0.1:{http_port}/loki/api/v1/push"
batch_wait = "200ms"
batch_bytes = "16KiB"
timeout = "5s"
retries_max = 3
backoff_min = "50ms"
backoff_max = "500ms"

[[files]]
paths = ["{logs}/*.log"]
exclude = ["{logs}/ignored*.log"]
labels = {{ job = "agent" }}

[[files]]
paths = ["{multi}/*.log"]
labels = {{ job = "agent-multi" }}
[files.multiline]
start = '^\d{{4}}-\d{{2}}-\d{{2}}'
timeout = "500ms"
lines_max = 20
"#,
            state = dir.path().join("agent").display(),
            logs = logs.display(),
            multi = multi.display(),
        ),
    )
    .unwrap();

    let mut ssh = Source::new("OpenSSH_2k.log");
    let mut linux = Source::new("Linux_2k.log");
    let a = logs.join("a.log");
    let b = logs.join("b.log");
    let mut expected: Vec<(String, String)> = Vec::new();

    // Lines written before the agent starts are read from the start of the file.
    let first = ssh.take(60);
    append(&a, &first);
    expected.extend(tagged(&first, &a));
    append(&logs.join("ignored.log"), &linux.take(3));
    let mut agent = Agent::start(&config, dir.path(), metrics_addr);
    wait_exactly(&server, &agent, "{job=\"agent\"}", &expected);

    // Rename and create: the writer adds lines, the file is renamed away from the glob, the
    // writer still appends to the old file before it reopens, then writes the new one. The
    // old file's lines keep the stream they had (filename a.log).
    let before = ssh.take(20);
    append(&a, &before);
    std::fs::rename(&a, logs.join("a.log.1")).unwrap();
    let late = ssh.take(5);
    append(&logs.join("a.log.1"), &late);
    let after = ssh.take(20);
    append(&a, &after);
    for part in [&before, &late, &after] {
        expected.extend(tagged(part, &a));
    }
    wait_exactly(&server, &agent, "{job=\"agent\"}", &expected);

    // Copytruncate: once the agent has read b.log, it is copied and truncated in place.
    let b_first = linux.take(30);
    append(&b, &b_first);
    expected.extend(tagged(&b_first, &b));
    wait_exactly(&server, &agent, "{job=\"agent\"}", &expected);
    std::fs::copy(&b, logs.join("b.log.1")).unwrap();
    OpenOptions::new()
        .write(true)
        .open(&b)
        .unwrap()
        .set_len(0)
        .unwrap();
    let b_after = linux.take(10);
    append(&b, &b_after);
    expected.extend(tagged(&b_after, &b));

    // A file that appears later.
    let c = logs.join("c.log");
    let c_lines = linux.take(15);
    append(&c, &c_lines);
    expected.extend(tagged(&c_lines, &c));
    wait_exactly(&server, &agent, "{job=\"agent\"}", &expected);

    // Multiline: Hadoop records start with a date; Spark lines stand for their continuation
    // lines. The last record has no successor and is sent by the timeout.
    let hadoop = loghub("Hadoop_2k.log");
    let spark = loghub("Spark_2k.log");
    let m = multi.join("hadoop.log");
    let mut records = Vec::new();
    let mut text_lines = Vec::new();
    let mut s = 0;
    for (i, start) in hadoop.iter().take(12).enumerate() {
        let continuation = &spark[s..s + i % 3];
        s += i % 3;
        text_lines.push(start.clone());
        text_lines.extend(continuation.iter().cloned());
        let mut record = start.clone();
        for c in continuation {
            record.push('\n');
            record.push_str(c);
        }
        records.push(record);
    }
    append(&m, &text_lines);
    wait_exactly(
        &server,
        &agent,
        "{job=\"agent-multi\"}",
        &tagged(&records, &m),
    );

    // The server stops while the agent has lines to ship: the agent retries, spools, and
    // sends everything once the server is back on the same port.
    server.terminate_ok();
    let during = ssh.take(40);
    for chunk in during.chunks(10) {
        append(&a, chunk);
        std::thread::sleep(Duration::from_millis(150));
    }
    expected.extend(tagged(&during, &a));
    agent.wait_for(
        |t| {
            let s = parse_metrics(t);
            metric_sum(&s, "shardlog_agent_send_retries_total", &[]) > 0.0
                && metric_sum(&s, "shardlog_agent_buffer_batches", &[]) > 0.0
                && metric_sum(
                    &s,
                    "shardlog_agent_bytes_behind",
                    &[("path", &a.display().to_string())],
                ) == 0.0
        },
        "retries with the lines read and spooled while the server is down",
    );
    server = Server::spawn_ready(&dir, &args, http_port, 0).unwrap_or_else(|e| panic!("{e}"));
    wait_exactly(&server, &agent, "{job=\"agent\"}", &expected);

    // SIGKILL while lines are being written, then a restart: nothing lost, nothing twice.
    let crash = ssh.take(60);
    for chunk in crash[..30].chunks(5) {
        append(&a, chunk);
        std::thread::sleep(Duration::from_millis(40));
    }
    agent.kill9();
    append(&a, &crash[30..]);
    expected.extend(tagged(&crash, &a));
    agent.spawn();
    wait_exactly(&server, &agent, "{job=\"agent\"}", &expected);

    // The agent's own metrics: every file fully read and acknowledged, the spool empty.
    let text = agent.wait_for(
        |t| {
            let s = parse_metrics(t);
            metric_sum(&s, "shardlog_agent_bytes_behind", &[]) == 0.0
                && metric_sum(&s, "shardlog_agent_buffer_bytes", &[]) == 0.0
        },
        "nothing behind and an empty spool",
    );
    let samples = parse_metrics(&text);
    let a_label = a.display().to_string();
    // The restarted agent read at least the lines written while it was dead.
    assert!(
        metric_sum(
            &samples,
            "shardlog_agent_lines_read_total",
            &[("path", &a_label)]
        ) >= 30.0,
        "{text}"
    );
    assert!(
        metric_sum(&samples, "shardlog_agent_lines_sent_total", &[]) >= 30.0,
        "{text}"
    );
    assert_eq!(
        metric_sum(&samples, "shardlog_agent_batches_dropped_total", &[]),
        0.0
    );
    assert!(
        !text.contains("ignored.log"),
        "excluded files are not read: {text}"
    );

    // A crash in the one window that makes a duplicate: after the server's 204 and before the
    // batch leaves the spool. The restarted agent sends that batch again, same bytes and
    // timestamps, and the server drops the copy.
    let discarded = |server: &Server| {
        metric_sum(
            &parse_metrics(&server.metrics()),
            "shardlog_discarded_lines_total",
            &[("reason", "duplicate")],
        )
    };
    let duplicates_before = discarded(&server);
    agent.terminate();
    let window = ssh.take(25);
    append(&a, &window);
    expected.extend(tagged(&window, &a));
    agent.spawn_with_env(&[("SHARDLOG_TEST_FAULT", "agent-crash-after-ack")]);
    agent.wait_crash();
    // The lines are stored already; the restarted agent must still send the batch again (its
    // spool holds it) and count it as sent once the server has answered.
    agent.spawn();
    let text = agent.wait_for(
        |t| {
            let s = parse_metrics(t);
            metric_sum(&s, "shardlog_agent_buffer_bytes", &[]) == 0.0
                && metric_sum(&s, "shardlog_agent_lines_sent_total", &[]) >= 25.0
        },
        "the batch sent again and the spool empty",
    );
    assert_eq!(
        metric_sum(
            &parse_metrics(&text),
            "shardlog_agent_lines_read_total",
            &[]
        ),
        0.0,
        "the lines of that batch were not read again from the file: {text}"
    );
    // The server answered that push after its duplicate check, so the count is there now.
    assert!(
        discarded(&server) >= duplicates_before + 25.0,
        "the batch acknowledged before the crash was sent again and dropped as a duplicate"
    );
    wait_exactly(&server, &agent, "{job=\"agent\"}", &expected);

    assert_eq!(agent.terminate(), 0, "SIGTERM exits 0");
    // Nothing changed after the graceful stop.
    wait_exactly(&server, &agent, "{job=\"agent\"}", &expected);
}

/// A small seeded generator (xorshift64*), so that a failing run can be repeated with
/// `SHARDLOG_TEST_SEED`.
struct Rng(u64);

impl Rng {
    fn seeded() -> Rng {
        let seed = std::env::var("SHARDLOG_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        eprintln!("random rotations: SHARDLOG_TEST_SEED={seed}");
        Rng(seed | 1)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

/// The shortest life of a file before the random test rotates it: longer than the agent is
/// ever down in that test (at most 800 ms) plus a few of its polls.
const GENERATION_LIFE_MIN: Duration = Duration::from_millis(1200);

/// Files the random test writes, and lines written to each.
const RANDOM_FILES: usize = 3;
const RANDOM_LINES: usize = 1500;

/// Writes `RANDOM_LINES` numbered lines to each file in bursts, and rotates a file now and
/// then: renamed away and created again (a few lines still going to the renamed file, as a
/// writer that reopens late does), or copied and truncated. A copytruncate loses whatever
/// the reader had not read when the file was cut (logrotate says so of its own
/// `copytruncate`), so it is done only when the agent has nothing of that file left to read;
/// when the agent is down, a rename is done instead. A file lives at least
/// [`GENERATION_LIFE_MIN`] before it is rotated: a tailer that polls can only follow a file
/// it has seen, and one created and renamed away while the agent is down, or between two of
/// its polls, was never seen (with rotations hours apart, as in practice, that cannot
/// happen). Returns the rotations done.
fn write_randomly(logs: &Path, agent_metrics: SocketAddr, seed: u64) -> (usize, usize) {
    let mut rng = Rng(seed | 1);
    let mut corpus = Source::new("Hadoop_2k.log");
    let texts = corpus.take(1000);
    let mut written = [0usize; RANDOM_FILES];
    let mut born = [Instant::now(); RANDOM_FILES];
    let (mut renames, mut truncates) = (0, 0);
    while written.iter().any(|&n| n < RANDOM_LINES) {
        let f = rng.below(RANDOM_FILES as u64) as usize;
        if written[f] == RANDOM_LINES {
            continue;
        }
        let path = logs.join(format!("w{f}.log"));
        let line = |n: usize| format!("w{f} #{n:06} {}", texts[(n * 7 + f) % texts.len()]);
        let burst = (1 + rng.below(10) as usize).min(RANDOM_LINES - written[f]);
        let lines: Vec<String> = (written[f]..written[f] + burst).map(line).collect();
        append(&path, &lines);
        written[f] += burst;
        std::thread::sleep(Duration::from_millis(2 + rng.below(10)));
        if rng.below(20) != 0
            || written[f] == RANDOM_LINES
            || born[f].elapsed() < GENERATION_LIFE_MIN
        {
            continue;
        }
        born[f] = Instant::now();
        // The agent's `bytes_behind` is as of its last poll: a few polls after the last
        // write, zero means it has read (and spooled) all of this file.
        std::thread::sleep(Duration::from_millis(200));
        let behind = common::http::request(agent_metrics, "GET", "/metrics", &[], &[])
            .ok()
            .filter(|r| r.status == 200)
            .map(|r| {
                metric_sum(
                    &parse_metrics(&r.text()),
                    "shardlog_agent_bytes_behind",
                    &[("path", &path.display().to_string())],
                )
            });
        if rng.below(2) == 0 && behind == Some(0.0) {
            let copy = logs.join(format!("w{f}.log.copy{truncates}"));
            std::fs::copy(&path, copy).unwrap();
            OpenOptions::new()
                .write(true)
                .open(&path)
                .unwrap()
                .set_len(0)
                .unwrap();
            truncates += 1;
            eprintln!(
                "writer: w{f}.log copytruncated after line {}",
                written[f] - 1
            );
        } else {
            let old = logs.join(format!("w{f}.log.{renames}"));
            std::fs::rename(&path, &old).unwrap();
            let late = (1 + rng.below(3) as usize).min(RANDOM_LINES - written[f]);
            let lines: Vec<String> = (written[f]..written[f] + late).map(line).collect();
            append(&old, &lines);
            eprintln!(
                "writer: w{f}.log renamed to {} after line {}, then lines {}..{} written to it",
                old.display(),
                written[f] - 1,
                written[f],
                written[f] + late
            );
            written[f] += late;
            renames += 1;
        }
    }
    (renames, truncates)
}

/// Rotations both ways at random moments while a writer writes, a SIGKILL of the agent and
/// an outage of the server at random moments too: in the end every line is stored once, and
/// in order per file (the agent's timestamps follow the order it reads).
#[test]
fn random_rotations_a_crash_and_an_outage_lose_and_repeat_nothing() {
    let dir = TestDir::new("agent-random");
    let options = ServerOptions {
        syslog: false,
        ..ServerOptions::default()
    };
    let (http_port, _) = free_ports(false);
    let args = server_args(&dir, &options, http_port, 0);
    let mut server =
        Server::spawn_ready(&dir, &args, http_port, 0).unwrap_or_else(|e| panic!("{e}"));
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let metrics_addr = free_addr();
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            r#"
positions_file = "{state}/positions"
buffer_dir = "{state}/buffer"
metrics_addr = "{metrics_addr}"
poll_interval = "50ms"

[client]
url = "http://127.0.0.1:{http_port}/loki/api/v1/push"
batch_wait = "100ms"
batch_bytes = "8KiB"
timeout = "5s"
retries_max = 3
backoff_min = "50ms"
backoff_max = "300ms"

[[files]]
paths = ["{logs}/*.log"]
labels = {{ job = "agent-random" }}
"#,
            state = dir.path().join("agent").display(),
            logs = logs.display(),
        ),
    )
    .unwrap();
    let mut rng = Rng::seeded();
    let writer_seed = rng.below(u64::MAX);
    let mut agent = Agent::start(&config, dir.path(), metrics_addr);
    let writer = {
        let logs = logs.clone();
        std::thread::spawn(move || write_randomly(&logs, metrics_addr, writer_seed))
    };
    // A crash of the agent and an outage of the server, each at a random moment while the
    // writer writes (it takes a few seconds).
    std::thread::sleep(Duration::from_millis(300 + rng.below(1500)));
    eprintln!("test: agent killed");
    agent.kill9();
    std::thread::sleep(Duration::from_millis(100 + rng.below(700)));
    agent.spawn();
    eprintln!("test: agent started again");
    std::thread::sleep(Duration::from_millis(rng.below(1000)));
    server.terminate_ok();
    eprintln!("test: server stopped");
    std::thread::sleep(Duration::from_millis(300 + rng.below(1000)));
    let mut server =
        Server::spawn_ready(&dir, &args, http_port, 0).unwrap_or_else(|e| panic!("{e}"));
    eprintln!("test: server started again");
    let (renames, truncates) = writer.join().expect("the writer");
    eprintln!("random rotations: {renames} renames, {truncates} copytruncates");

    // Every line, once, in order per file.
    let total = RANDOM_FILES * RANDOM_LINES;
    let query = r#"{job="agent-random"}"#;
    let deadline = Instant::now() + ARRIVAL_WAIT;
    let mut got = Vec::new();
    while Instant::now() < deadline {
        got = server.query_all(query, false);
        if got.len() >= total {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut per_file: BTreeMap<String, Vec<(i64, usize)>> = BTreeMap::new();
    for e in &got {
        let (file, rest) = e.line.split_once(" #").expect("a numbered line");
        let n: usize = rest[..6].parse().expect("its number");
        per_file
            .entry(file.to_string())
            .or_default()
            .push((e.ts, n));
    }
    assert_eq!(per_file.len(), RANDOM_FILES, "{:?}", per_file.keys());
    for (file, mut entries) in per_file {
        entries.sort();
        let numbers: Vec<usize> = entries.iter().map(|&(_, n)| n).collect();
        let mut sorted = numbers.clone();
        sorted.sort_unstable();
        sorted.dedup();
        let missing: Vec<usize> = (0..RANDOM_LINES)
            .filter(|n| sorted.binary_search(n).is_err())
            .take(10)
            .collect();
        assert!(
            missing.is_empty(),
            "{file}: lines missing (first 10) {missing:?}\n{}",
            agent.output()
        );
        assert_eq!(
            numbers.len(),
            RANDOM_LINES,
            "{file}: lines stored more than once"
        );
        let out_of_order: Vec<_> = numbers.windows(2).filter(|w| w[0] > w[1]).take(5).collect();
        assert!(
            out_of_order.is_empty(),
            "{file}: stored out of the order written: {out_of_order:?}"
        );
    }
    agent.terminate();
    server.terminate_ok();
}

/// A TLS-terminating proxy in front of the server, as a hosted Loki's gateway or an nginx
/// is: it answers 401 to a request without the `Authorization` header it wants, and forwards
/// the others. Returns its address.
fn https_proxy(certs: &common::tls::Certs, upstream: SocketAddr, want_auth: String) -> SocketAddr {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use std::io::Read;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&certs.server_cert)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(&certs.server_key).unwrap();
    #[allow(deprecated)]
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = std::sync::Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for tcp in listener.incoming().flatten() {
            let (config, want_auth) = (config.clone(), want_auth.clone());
            std::thread::spawn(move || {
                let conn = rustls::ServerConnection::new(config).unwrap();
                let mut tls = rustls::StreamOwned::new(conn, tcp);
                let mut request = Vec::new();
                let mut chunk = [0u8; 16384];
                let (head_len, auth, body_len) = loop {
                    let Ok(n) = tls.read(&mut chunk) else { return };
                    if n == 0 {
                        return;
                    }
                    request.extend_from_slice(&chunk[..n]);
                    let mut headers = [httparse::EMPTY_HEADER; 32];
                    let mut parsed = httparse::Request::new(&mut headers);
                    if let Ok(httparse::Status::Complete(head_len)) = parsed.parse(&request) {
                        let value = |name: &str| {
                            parsed
                                .headers
                                .iter()
                                .find(|h| h.name.eq_ignore_ascii_case(name))
                                .map(|h| String::from_utf8_lossy(h.value).into_owned())
                        };
                        let body_len: usize = value("content-length")
                            .and_then(|v| v.parse().ok())
                            .unwrap_or(0);
                        break (head_len, value("authorization"), body_len);
                    }
                };
                while request.len() < head_len + body_len {
                    match tls.read(&mut chunk) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&chunk[..n]),
                    }
                }
                let answer = if auth.as_deref() == Some(want_auth.as_str()) {
                    let mut up = std::net::TcpStream::connect(upstream).unwrap();
                    up.write_all(&request).unwrap();
                    let mut answer = Vec::new();
                    let _ = up.read_to_end(&mut answer);
                    answer
                } else {
                    b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 12\r\nConnection: close\r\n\r\nunauthorized"
                        .to_vec()
                };
                let _ = tls.write_all(&answer);
                tls.conn.send_close_notify();
                let _ = tls.flush();
            });
        }
    });
    addr
}

/// An `https://` push URL with basic auth, as hosted Lokis take it: the agent checks the
/// proxy's certificate against `client.ca_file` and sends its credentials; with a wrong
/// password every batch is refused (401) and dropped, counted.
#[test]
fn pushes_over_https_with_basic_auth() {
    let dir = TestDir::new("agent-https");
    let options = ServerOptions {
        syslog: false,
        ..ServerOptions::default()
    };
    let (http_port, _) = free_ports(false);
    let args = server_args(&dir, &options, http_port, 0);
    let server = Server::spawn_ready(&dir, &args, http_port, 0).unwrap_or_else(|e| panic!("{e}"));
    let certs = common::tls::make(dir.path(), "agent");
    // base64("tenant-1:s3cret")
    let proxy = https_proxy(
        &certs,
        server.http,
        "Basic dGVuYW50LTE6czNjcmV0".to_string(),
    );
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let config = |name: &str, password: &str| {
        let path = dir.path().join(format!("{name}.toml"));
        let metrics = free_addr();
        std::fs::write(
            &path,
            format!(
                r#"
positions_file = "{state}/positions"
buffer_dir = "{state}/buffer"
metrics_addr = "{metrics}"
poll_interval = "50ms"

[client]
url = "https://localhost:{port}/loki/api/v1/push"
ca_file = "{ca}"
batch_wait = "100ms"

[client.basic_auth]
username = "tenant-1"
password = "{password}"

[[files]]
paths = ["{logs}/{name}.log"]
labels = {{ job = "{name}" }}
"#,
                state = dir.path().join(name).display(),
                port = proxy.port(),
                ca = certs.ca.display(),
                logs = logs.display(),
            ),
        )
        .unwrap();
        (path, metrics)
    };
    let mut source = Source::new("Zookeeper_2k.log");
    let lines = source.take(200);
    let file = logs.join("https.log");
    append(&file, &lines);
    let (path, metrics) = config("https", "s3cret");
    let agent = Agent::start(&path, dir.path(), metrics);
    wait_exactly(&server, &agent, r#"{job="https"}"#, &tagged(&lines, &file));

    // A wrong password: the proxy refuses, the agent drops the batch and counts it.
    let wrong = source.take(10);
    append(&logs.join("wrong.log"), &wrong);
    let (path, metrics) = config("wrong", "guess");
    let wrong_agent = Agent::start(&path, dir.path(), metrics);
    wrong_agent.wait_for(
        |t| {
            metric_sum(
                &parse_metrics(t),
                "shardlog_agent_batches_dropped_total",
                &[],
            ) >= 1.0
        },
        "a batch refused with 401 and dropped",
    );
    assert_eq!(server.index_stats(r#"{job="wrong"}"#).entries, 0);
}

/// A configuration the agent cannot use is refused at once, exit status 2, with the key.
#[test]
fn a_bad_configuration_is_refused_with_its_key() {
    let dir = TestDir::new("agent-config");
    let cases = [
        (
            "[[files]]\npaths = [\"/var/log/*.log\"]\nmultilne = { start = \"^x\" }\n",
            "multilne",
        ),
        (
            "[client]\nurl = \"ftp://logs.example/loki/api/v1/push\"\n[[files]]\npaths = [\"/a\"]\n",
            "http:// or https://",
        ),
        (
            "[client]\nurl = \"https://logs.example/\"\nca_file = \"/nonexistent/ca.pem\"\n[[files]]\npaths = [\"/a\"]\n",
            "client.ca_file",
        ),
        (
            "[[files]]\npaths = [\"/a\"]\n[files.multiline]\nstart = \"(unclosed\"\n",
            "multiline.start",
        ),
        ("positions_file = \"p\"\n", "[[files]]"),
    ];
    for (i, (text, word)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("bad-{i}.toml"));
        std::fs::write(&path, text).unwrap();
        let path = path.display().to_string();
        let (status, output) = common::server::run_to_exit(&["agent", "--config", &path], 10_000);
        assert_eq!(status.code(), Some(2), "{text}: {output}");
        assert!(
            output.contains(word),
            "{text}: the message names `{word}`: {output}"
        );
    }
    let (status, output) = common::server::run_to_exit(&["agent", "--help"], 10_000);
    assert!(status.success() && output.contains("--config"), "{output}");
}

//! `shardlog agent`: a file-shipping agent in the same binary, for hosts that write log files.
//! It tails the files that globs match, joins multiline records, and pushes batches with
//! Loki's push protocol (protobuf, raw snappy) to any Loki-compatible server, ours by default.
//! See `docs/agent.md` for the operator's view.
//!
//! The agent is not on the server's data path: it runs on plain std threads, a reader (this
//! module's loop: files to batches to the spool) and a sender (the spool to the server), plus
//! the metrics listener and the signal thread.
//!
//! The guarantee is at least once, and the rule that gives it: a file's position advances
//! only for lines that are in a batch written to the spool (fsynced) — and a batch leaves the
//! spool only after the server's `204` (or a permanent 4xx refusal, which is counted). So a
//! crash at any moment loses nothing: what was not yet spooled is read again from the file,
//! what was spooled is sent again from the spool, with the same bytes and timestamps, and the
//! server's duplicate drop removes the copy of a batch it had acknowledged just before the
//! crash. That window is the only place a duplicate can come from.
//!
//! - [`config`]: the TOML file.
//! - [`tail`]: globs, file identity, rotation, reading whole lines.
//! - [`records`]: the line splitter and the multiline assembler.
//! - [`positions`]: the positions file, written atomically.
//! - [`spool`]: the bounded on-disk queue of batches.
//! - [`client`]: one push over HTTP, and the backoff between failures.
//! - [`metrics`]: the agent's `/metrics`.

pub mod client;
pub mod config;
pub mod metrics;
pub mod positions;
pub mod records;
pub mod spool;
pub mod tail;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Args;

use crate::ingest::push::{PushEntry, PushStream};
use crate::model::Labels;

use self::client::{Backoff, Outcome};
use self::config::{AgentConfig, ClientConfig};
use self::metrics::{FileFigures, Metrics};
use self::positions::{FileId, Positions};
use self::spool::{Advance, Spool, SpoolBatch};
use self::tail::{Event, Files};

/// Exit status when the agent cannot start (bad configuration, unusable state directory).
const EXIT_REFUSED: i32 = 2;
/// How long a stopping agent waits for the sender to empty the spool (not at all while the
/// server is failing); what is left is sent at the next start.
const DRAIN_ON_STOP: Duration = Duration::from_secs(5);
/// How long the sender sleeps at a time while it waits, so that it notices a stop quickly.
const SENDER_NAP: Duration = Duration::from_millis(100);
/// The value of `SHARDLOG_TEST_FAULT` (the server's fault-injection variable) that makes the
/// agent kill itself right after the server's `204` for a batch and before that batch leaves
/// the spool: the one window where a crash makes a duplicate, which the integration test must
/// be able to hit every time, not by chance.
const FAULT_CRASH_AFTER_ACK: &str = "agent-crash-after-ack";

/// `shardlog agent --config FILE`.
#[derive(Args, Debug, Clone)]
pub struct AgentArgs {
    /// The agent's TOML file (see docs/agent.md).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
}

/// Runs the agent until SIGTERM or SIGINT; returns the exit status.
pub fn run(args: AgentArgs) -> i32 {
    let config = match AgentConfig::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("shardlog agent: {e}");
            return EXIT_REFUSED;
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    if let Err(e) = install_signals(stop.clone()) {
        eprintln!("shardlog agent: cannot set up signal handling: {e}");
        return EXIT_REFUSED;
    }
    match Agent::start(config, stop) {
        Ok(agent) => agent.run(),
        Err(e) => {
            eprintln!("shardlog agent: {e}");
            EXIT_REFUSED
        }
    }
}

/// SIGTERM and SIGINT are blocked in every thread and taken by one that waits for them, as
/// the server does; a second one exits at once.
fn install_signals(stop: Arc<AtomicBool>) -> std::io::Result<()> {
    crate::runtime::signals::on_stop_signals("agent-signals", "shardlog agent", move || {
        stop.store(true, Ordering::SeqCst)
    })
}

struct Agent {
    config: AgentConfig,
    positions: Positions,
    spool: Arc<Spool>,
    files: Files,
    metrics: Arc<Metrics>,
    stop: Arc<AtomicBool>,
    batch: Batch,
    /// The last timestamp given: entries get distinct, increasing timestamps (across all
    /// streams, which needs no map per stream), or the server's duplicate drop would take two
    /// equal lines read together for one.
    last_ts: i64,
}

impl Agent {
    fn start(config: AgentConfig, stop: Arc<AtomicBool>) -> Result<Agent, String> {
        let mut positions = Positions::load(&config.positions_file)?;
        if let Some(dir) = config.positions_file.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        let spool = Arc::new(Spool::open(
            &config.buffer_dir,
            config.buffer_bytes_max,
            &mut positions,
        )?);
        let mut files = Files::new(config.files.clone(), config.line_bytes_max);
        files.resume(&mut positions, Instant::now());
        positions.save(&config.positions_file).map_err(|e| {
            format!(
                "cannot write positions file {}: {e}",
                config.positions_file.display()
            )
        })?;
        let metrics = Arc::new(Metrics::default());
        if let Some(addr) = config.metrics_addr {
            let bound = metrics::serve(addr, metrics.clone())
                .map_err(|e| format!("cannot listen for /metrics on {addr}: {e}"))?;
            eprintln!("shardlog agent: metrics on http://{bound}/metrics");
        }
        eprintln!(
            "shardlog agent: shipping to {}://{}{}, {} file(s) tracked, {} batch(es) in the spool",
            if config.client.url.https {
                "https"
            } else {
                "http"
            },
            config.client.url.authority,
            config.client.url.path,
            files.tailers().count(),
            spool.len()
        );
        Ok(Agent {
            config,
            positions,
            spool,
            files,
            metrics,
            stop,
            batch: Batch::default(),
            last_ts: i64::MIN,
        })
    }

    fn run(mut self) -> i32 {
        let sender_stop = Arc::new(AtomicBool::new(false));
        let sender = {
            let (client, spool, metrics, stop) = (
                self.config.client.clone(),
                self.spool.clone(),
                self.metrics.clone(),
                sender_stop.clone(),
            );
            std::thread::Builder::new()
                .name("agent-sender".into())
                .spawn(move || send_loop(&client, &spool, &metrics, &stop))
                .expect("spawn the sender thread")
        };
        while !self.stop.load(Ordering::SeqCst) {
            let more = self.poll(Instant::now());
            self.publish_metrics();
            if !more {
                std::thread::sleep(self.config.poll_interval);
            }
        }
        // Stopping: what was read goes to the spool, then the sender gets a moment to send.
        // If the spool cannot take it, nothing is lost: the positions did not move, and the
        // next start reads those lines again.
        if !self.batch.is_empty() {
            self.commit();
        }
        let deadline = Instant::now() + DRAIN_ON_STOP;
        while !self.spool.is_empty()
            && Instant::now() < deadline
            && !self.metrics.failing.load(Ordering::Relaxed)
        {
            std::thread::sleep(SENDER_NAP);
        }
        sender_stop.store(true, Ordering::SeqCst);
        self.spool.wake();
        let _ = sender.join();
        eprintln!(
            "shardlog agent: stopped; {} batch(es) left in the spool for the next start",
            self.spool.len()
        );
        0
    }

    /// One round: expand the globs, read what is new (unless the spool is full), cut a batch
    /// if it is big or old enough. Returns whether there is more to read right away.
    fn poll(&mut self, now: Instant) -> bool {
        let mut events = Vec::new();
        self.files.discover(&self.positions, now, &mut events);
        // Backpressure: a full spool, or a batch that could not be spooled, stops reading.
        let mut more = false;
        let room = (self.config.client.batch_bytes as usize).saturating_sub(self.batch.bytes);
        if !self.spool.is_full() && room > 0 {
            more = self.files.read(now, room, &mut events) > 0;
        }
        for event in events {
            self.take(event);
        }
        let batch_due = self.batch.bytes >= self.config.client.batch_bytes as usize
            || self
                .batch
                .started
                .is_some_and(|s| now.saturating_duration_since(s) >= self.config.client.batch_wait);
        if batch_due && !self.commit() {
            return false;
        }
        more && !self.spool.is_full()
    }

    fn take(&mut self, event: Event) {
        let now = Instant::now();
        match event {
            Event::Record { id, record } => {
                let t = self.files.get(id).expect("a record's file is tracked");
                let group = &self.files.groups()[t.group];
                let path = t.path.clone();
                let labels = Labels::from_pairs(
                    group
                        .labels
                        .iter()
                        .cloned()
                        .chain([("filename".to_string(), path.display().to_string())]),
                );
                let key = labels.to_string();
                let ts = unix_now_ns().max(self.last_ts.saturating_add(1));
                self.last_ts = ts;
                self.batch.add(key, labels, ts, record.text, now);
                self.batch.advance(
                    id,
                    Advance::To {
                        offset: record.end_offset,
                        path,
                    },
                    now,
                );
            }
            Event::Truncated { id } => {
                let path = self.files.get(id).expect("tracked").path.clone();
                self.batch.advance(id, Advance::To { offset: 0, path }, now);
            }
            Event::Forget { id, path } => self.batch.advance(id, Advance::Forget { path }, now),
        }
    }

    /// Writes the batch to the spool and moves the positions; `false` if the spool cannot
    /// be written now (the batch is kept and tried again).
    fn commit(&mut self) -> bool {
        let batch = self.batch.to_spool();
        if let Err(e) = self.spool.write(&batch) {
            eprintln!(
                "shardlog agent: cannot write to the spool {}: {e}; reading is paused",
                self.config.buffer_dir.display()
            );
            return false;
        }
        self.batch = Batch::default();
        self.positions.apply(&batch.advances);
        if let Err(e) = self.positions.save(&self.config.positions_file) {
            // The spool holds the advances, so nothing is lost; the next save catches up.
            eprintln!(
                "shardlog agent: cannot write positions file {}: {e}",
                self.config.positions_file.display()
            );
        }
        true
    }

    fn publish_metrics(&self) {
        let mut figures: BTreeMap<String, FileFigures> = BTreeMap::new();
        for (path, lines) in self.files.lines_read() {
            figures
                .entry(path.display().to_string())
                .or_default()
                .lines_read = *lines;
        }
        for t in self.files.tailers() {
            let safe = self.positions.files.get(&t.id).map_or(0, |p| p.offset);
            let behind = if t.is_finished() {
                0
            } else {
                t.size.saturating_sub(safe)
            };
            figures
                .entry(t.path.display().to_string())
                .or_default()
                .bytes_behind += behind;
        }
        *self.metrics.files.lock().expect("metrics lock") = figures;
        self.metrics
            .buffer_bytes
            .store(self.spool.bytes(), Ordering::Relaxed);
        self.metrics
            .buffer_batches
            .store(self.spool.len() as u64, Ordering::Relaxed);
    }
}

/// The batch being filled: entries by stream, and the position each file moves to.
#[derive(Default)]
struct Batch {
    streams: BTreeMap<String, PushStream>,
    advances: Vec<(FileId, Advance)>,
    entries: u32,
    bytes: usize,
    started: Option<Instant>,
}

impl Batch {
    fn add(&mut self, key: String, labels: Labels, ts: i64, line: String, now: Instant) {
        self.started.get_or_insert(now);
        self.bytes += line.len();
        self.entries += 1;
        self.streams
            .entry(key)
            .or_insert_with(|| PushStream {
                labels,
                entries: Vec::new(),
            })
            .entries
            .push(PushEntry {
                timestamp_ns: ts,
                line,
                metadata: Vec::new(),
            });
    }

    fn advance(&mut self, id: FileId, advance: Advance, now: Instant) {
        self.started.get_or_insert(now);
        // Only the last advance of a file matters; a truncation after records must stay
        // after them, so the old one is removed rather than overwritten in place.
        self.advances.retain(|(i, _)| *i != id);
        self.advances.push((id, advance));
    }

    fn is_empty(&self) -> bool {
        self.started.is_none()
    }

    fn to_spool(&self) -> SpoolBatch {
        let streams: Vec<PushStream> = self.streams.values().cloned().collect();
        SpoolBatch {
            entries: self.entries,
            advances: self.advances.clone(),
            body: if streams.is_empty() {
                Vec::new()
            } else {
                crate::ingest::push::proto::encode(&streams)
            },
        }
    }
}

fn unix_now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// The sender: takes the oldest spooled batch, pushes it until the server takes it, removes
/// it. Failures wait with backoff; after `retries_max` failures in a row the server is
/// reported down and the wait stays at `backoff_max` until it answers again. Nothing is
/// dropped for an unreachable server: the batch is in the spool.
fn send_loop(client: &ClientConfig, spool: &Spool, metrics: &Metrics, stop: &AtomicBool) {
    let seed = unix_now_ns() as u64 ^ u64::from(std::process::id());
    let mut backoff = Backoff::new(client.backoff_min, client.backoff_max, seed);
    let crash_after_ack = std::env::var(crate::runtime::failstop::FAULT_ENV)
        .is_ok_and(|f| f == FAULT_CRASH_AFTER_ACK);
    while !stop.load(Ordering::SeqCst) {
        let Some((seq, batch)) = spool.oldest(SENDER_NAP) else {
            continue;
        };
        let outcome = if batch.body.is_empty() {
            Outcome::Accepted
        } else {
            client::push(client, &batch.body)
        };
        match outcome {
            Outcome::Accepted | Outcome::Refused(_) => {
                if let Outcome::Refused(why) = &outcome {
                    eprintln!(
                        "shardlog agent: batch of {} entries refused for good, dropped: {why}",
                        batch.entries
                    );
                    metrics.batches_dropped.fetch_add(1, Ordering::Relaxed);
                } else {
                    metrics
                        .lines_sent
                        .fetch_add(u64::from(batch.entries), Ordering::Relaxed);
                }
                if crash_after_ack && batch.entries > 0 {
                    eprintln!("shardlog agent: test fault {FAULT_CRASH_AFTER_ACK}: killing myself");
                    let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
                }
                if backoff.failures() >= client.retries_max {
                    eprintln!("shardlog agent: the server answers again");
                }
                backoff.reset();
                metrics.failing.store(false, Ordering::Relaxed);
                if let Err(e) = spool.remove(seq) {
                    // The batch would be sent twice; the server drops the copy. Retry later.
                    eprintln!("shardlog agent: cannot remove a sent batch from the spool: {e}");
                    nap(stop, client.backoff_min);
                }
            }
            Outcome::Retry(why) => {
                metrics.send_retries.fetch_add(1, Ordering::Relaxed);
                metrics.failing.store(true, Ordering::Relaxed);
                let wait = if backoff.failures() + 1 >= client.retries_max {
                    if backoff.failures() + 1 == client.retries_max {
                        eprintln!(
                            "shardlog agent: {} failed pushes in a row ({why}); batches wait in the spool, retrying every {:?} at most",
                            client.retries_max, client.backoff_max
                        );
                    }
                    backoff.next_wait().max(client.backoff_max / 2)
                } else {
                    backoff.next_wait()
                };
                nap(stop, wait);
            }
        }
    }
}

/// Sleeps `wait`, waking early when the agent stops.
fn nap(stop: &AtomicBool, wait: Duration) {
    let until = Instant::now() + wait;
    while !stop.load(Ordering::SeqCst) {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        std::thread::sleep(left.min(SENDER_NAP));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::sync::Mutex;

    /// Real lines of testdata/loghub/OpenSSH_2k.log (Loghub's; its README there has the
    /// licence).
    const SSH: [&str; 3] = [
        "Dec 10 06:55:46 LabSZ sshd[24200]: reverse mapping checking getaddrinfo for ns.marryaldkfaczcz.com [173.234.31.186] failed - POSSIBLE BREAK-IN ATTEMPT!",
        "Dec 10 06:55:46 LabSZ sshd[24200]: Invalid user webmaster from 173.234.31.186",
        "Dec 10 06:55:48 LabSZ sshd[24200]: Failed password for invalid user webmaster from 173.234.31.186 port 38926 ssh2",
    ];

    /// What the scripted server was sent: each request's head and body.
    type Requests = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

    /// A server that answers each connection with the next status of `script` and keeps
    /// what it was sent.
    fn scripted_server(script: Vec<u16>) -> (u16, Requests) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        std::thread::spawn(move || {
            for (status, stream) in script.into_iter().zip(listener.incoming()) {
                let mut stream = stream.unwrap();
                let mut data = Vec::new();
                let mut chunk = [0u8; 4096];
                let (head, length) = loop {
                    let n = stream.read(&mut chunk).unwrap();
                    data.extend_from_slice(&chunk[..n]);
                    if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&data[..end]).into_owned();
                        let length: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("Content-Length: "))
                            .unwrap()
                            .parse()
                            .unwrap();
                        data.drain(..end + 4);
                        break (head, length);
                    }
                };
                while data.len() < length {
                    let n = stream.read(&mut chunk).unwrap();
                    data.extend_from_slice(&chunk[..n]);
                }
                record.lock().unwrap().push((head, data));
                let body = if status == 204 { "" } else { "entry refused" };
                write!(
                    stream,
                    "HTTP/1.1 {status} X\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                )
                .unwrap();
            }
        });
        (port, seen)
    }

    fn batch(n: u32) -> SpoolBatch {
        let stream = PushStream {
            labels: Labels::from_pairs([("job", "t")]),
            entries: (0..n)
                .map(|i| PushEntry {
                    timestamp_ns: i64::from(i) + 1,
                    line: SSH[i as usize % 3].to_string(),
                    metadata: Vec::new(),
                })
                .collect(),
        };
        SpoolBatch {
            entries: n,
            advances: Vec::new(),
            body: crate::ingest::push::proto::encode(&[stream]),
        }
    }

    fn config(dir: &std::path::Path, port: u16, extra: &str) -> AgentConfig {
        AgentConfig::parse(&format!(
            r#"
            positions_file = "{dir}/positions"
            buffer_dir = "{dir}/buffer"
            metrics_addr = ""
            {extra}
            [client]
            url = "http://127.0.0.1:{port}/loki/api/v1/push"
            tenant = "team-a"
            timeout = "2s"
            backoff_min = "10ms"
            backoff_max = "50ms"
            batch_bytes = "1KiB"
            batch_wait = "0s"
            [[files]]
            paths = ["{dir}/*.log"]
            labels = {{ job = "ssh" }}
            "#,
            dir = dir.display()
        ))
        .unwrap()
    }

    fn wait_until(what: &str, ok: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !ok() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn the_sender_retries_5xx_drops_4xx_and_removes_only_what_is_settled() {
        let (port, seen) = scripted_server(vec![503, 204, 400, 429, 204]);
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path(), port, "");
        let spool =
            Arc::new(Spool::open(&config.buffer_dir, 1 << 20, &mut Positions::default()).unwrap());
        for n in [3, 2, 1] {
            spool.write(&batch(n)).unwrap();
        }
        let metrics = Arc::new(Metrics::default());
        let stop = Arc::new(AtomicBool::new(false));
        let sender = {
            let (client, spool, metrics, stop) = (
                config.client.clone(),
                spool.clone(),
                metrics.clone(),
                stop.clone(),
            );
            std::thread::spawn(move || send_loop(&client, &spool, &metrics, &stop))
        };
        wait_until("an empty spool", || spool.is_empty());
        stop.store(true, Ordering::SeqCst);
        sender.join().unwrap();
        // 3 entries after a 503, 2 refused for good, 1 after a 429.
        assert_eq!(metrics.lines_sent.load(Ordering::Relaxed), 4);
        assert_eq!(metrics.send_retries.load(Ordering::Relaxed), 2);
        assert_eq!(metrics.batches_dropped.load(Ordering::Relaxed), 1);
        let seen = seen.lock().unwrap();
        let bodies: Vec<&Vec<u8>> = seen.iter().map(|(_, b)| b).collect();
        let (b3, b2, b1) = (batch(3).body, batch(2).body, batch(1).body);
        assert_eq!(
            bodies,
            vec![&b3, &b3, &b2, &b1, &b1],
            "oldest first, same bytes"
        );
        let head = &seen[0].0;
        assert!(
            head.starts_with("POST /loki/api/v1/push HTTP/1.1"),
            "{head}"
        );
        assert!(
            head.contains("Content-Type: application/x-protobuf"),
            "{head}"
        );
        assert!(head.contains("X-Scope-OrgID: team-a"), "{head}");
    }

    #[test]
    fn a_full_spool_stops_reading_until_batches_leave_it() {
        let dir = tempfile::tempdir().unwrap();
        // Nothing listens: the sender is not even started, the spool only fills.
        let config = config(dir.path(), 9, "buffer_bytes_max = \"4KiB\"");
        let log = dir.path().join("auth.log");
        let text: String = (0..300).map(|i| format!("{} #{i}\n", SSH[i % 3])).collect();
        std::fs::write(&log, &text).unwrap();
        let mut agent = Agent::start(config.clone(), Arc::new(AtomicBool::new(false))).unwrap();
        let offset =
            |agent: &Agent| -> u64 { agent.positions.files.values().map(|p| p.offset).sum() };
        for _ in 0..50 {
            agent.poll(Instant::now());
        }
        let spooled = agent.spool.bytes();
        assert!(spooled >= 4096, "the spool filled: {spooled}");
        // Over the bound by one batch at most (1 KiB of lines, compressed, plus its header).
        assert!(spooled < 4096 + 2048, "{spooled}");
        let stalled = offset(&agent);
        assert!(stalled > 0 && stalled < text.len() as u64, "{stalled}");
        // The positions file on disk agrees with the spool: what is not in it is unread.
        let saved = Positions::load(&config.positions_file).unwrap();
        assert_eq!(saved, agent.positions);
        // Batches leave the spool: reading goes on, and in the end every byte is spooled.
        let mut sent = 0;
        for _ in 0..1000 {
            while let Some((seq, b)) = agent.spool.oldest(Duration::ZERO) {
                sent += b.entries;
                agent.spool.remove(seq).unwrap();
            }
            agent.poll(Instant::now());
            if offset(&agent) == text.len() as u64 && agent.batch.is_empty() {
                break;
            }
        }
        while let Some((seq, b)) = agent.spool.oldest(Duration::ZERO) {
            sent += b.entries;
            agent.spool.remove(seq).unwrap();
        }
        assert_eq!(offset(&agent), text.len() as u64);
        assert_eq!(sent, 300);
    }

    #[test]
    fn equal_lines_get_distinct_timestamps_and_the_filename_label() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path(), 9, "");
        let log = dir.path().join("auth.log");
        std::fs::write(&log, format!("{0}\n{0}\n{0}\n{1}\n", SSH[1], SSH[2])).unwrap();
        let mut agent = Agent::start(config, Arc::new(AtomicBool::new(false))).unwrap();
        agent.poll(Instant::now());
        let (_, batch) = agent.spool.oldest(Duration::ZERO).expect("a batch");
        let decoded = crate::ingest::push::proto::decode(&batch.body, &Default::default()).unwrap();
        assert_eq!(decoded.streams.len(), 1);
        let stream = &decoded.streams[0];
        assert_eq!(stream.labels.get("job"), Some("ssh"));
        assert_eq!(stream.labels.get("filename"), Some(log.to_str().unwrap()));
        let ts: Vec<i64> = stream.entries.iter().map(|e| e.timestamp_ns).collect();
        assert_eq!(ts.len(), 4);
        assert!(ts.windows(2).all(|w| w[0] < w[1]), "{ts:?}");
        assert_eq!(batch.entries, 4);
    }
}

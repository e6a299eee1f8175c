//! rsyslog's own RELP output, `omrelp`, against the RELP listener: rsyslogd (unpacked from
//! Debian's packages by `tests/rsyslog/unpack.sh`, never installed) tails corpus files with
//! `imfile` and forwards them with its default forwarding template. shardlog is killed with
//! SIGKILL in the middle of the stream and restarted on the same port; rsyslog resends what
//! it had no answer for. In the end every line is there, and none twice: what shardlog
//! answered was durable, and what rsyslog resent carried its own timestamp and was dropped as
//! a duplicate.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::loki::{metric_sum, parse_metrics};
use common::server::{Signal, free_tcp_port, send_signal};
use common::tools::{corpus_lines, missing};
use common::{Server, ServerOptions, TestDir};

/// Corpus files sent, one rsyslog input (and so one `app`) each.
const FILES: [&str; 4] = ["Linux", "OpenSSH", "Apache", "HDFS"];
/// Lines per file: half written before the kill, half after.
const LINES: usize = 2000;
/// How long the whole stream may take to arrive.
const ARRIVAL_WAIT: Duration = Duration::from_secs(120);

/// The unpacked rsyslog: `$SHARDLOG_TEST_RSYSLOG`, else `target/ci-rsyslog`.
fn rsyslog_root() -> Option<PathBuf> {
    let root = match std::env::var_os("SHARDLOG_TEST_RSYSLOG") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/ci-rsyslog"),
    };
    if root.join("usr/sbin/rsyslogd").is_file()
        && root
            .join("usr/lib/x86_64-linux-gnu/rsyslog/omrelp.so")
            .is_file()
    {
        return Some(root);
    }
    missing(&format!(
        "no rsyslog with omrelp at {} (run tests/rsyslog/unpack.sh {0}, or set \
         SHARDLOG_TEST_RSYSLOG)",
        root.display()
    ));
    None
}

/// rsyslogd in the foreground with its own config, work directory and pid file.
struct Rsyslog(Child);

impl Rsyslog {
    fn start(root: &Path, dir: &Path, relp_port: u16) -> Rsyslog {
        let work = dir.join("rsyslog-work");
        std::fs::create_dir_all(&work).unwrap();
        let mut conf = format!(
            "global(workDirectory=\"{}\")\n\
             module(load=\"imfile\" mode=\"polling\" PollingInterval=\"1\")\n\
             module(load=\"omrelp\")\n",
            work.display()
        );
        for name in FILES {
            conf.push_str(&format!(
                "input(type=\"imfile\" File=\"{}\" Tag=\"{name}\" Facility=\"local0\" \
                 Severity=\"info\")\n",
                dir.join(format!("{name}.log")).display()
            ));
        }
        // Resend forever, once a second, from an in-memory queue: what a broken session
        // left unanswered is sent again.
        conf.push_str(&format!(
            "action(type=\"omrelp\" target=\"127.0.0.1\" port=\"{relp_port}\" \
             action.resumeRetryCount=\"-1\" action.resumeInterval=\"1\" \
             queue.type=\"LinkedList\" queue.size=\"100000\")\n"
        ));
        let conf_path = dir.join("rsyslog.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let libs = root.join("usr/lib/x86_64-linux-gnu");
        let child = Command::new(root.join("usr/sbin/rsyslogd"))
            .arg("-n")
            .arg("-f")
            .arg(&conf_path)
            .arg("-i")
            .arg(dir.join("rsyslogd.pid"))
            .arg("-M")
            .arg(libs.join("rsyslog"))
            .env("LD_LIBRARY_PATH", &libs)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start rsyslogd");
        Rsyslog(child)
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        send_signal(self.0.id() as i32, Signal::SIGKILL);
        let _ = self.0.wait();
    }
}

/// Appends lines `from..to` (1-based numbers) of corpus file `name` as `name#n text`.
fn append(dir: &Path, name: &str, corpus: &[String], from: usize, to: usize) {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("{name}.log")))
        .unwrap();
    let mut text = String::new();
    for n in from..to {
        text.push_str(&format!("{name}#{} {}\n", n + 1, corpus[n % corpus.len()]));
    }
    file.write_all(text.as_bytes()).unwrap();
    file.sync_all().unwrap();
}

fn relp_lines(server: &Server) -> f64 {
    metric_sum(
        &parse_metrics(&server.metrics()),
        "shardlog_ingested_lines_total",
        &[("protocol", "relp")],
    )
}

fn options(relp_port: u16) -> ServerOptions {
    ServerOptions {
        syslog: false,
        extra_args: vec!["--relp-addr".into(), format!("127.0.0.1:{relp_port}")],
        ..ServerOptions::default()
    }
}

#[test]
fn omrelp_loses_nothing_across_a_kill_and_stores_each_line_once() {
    let Some(root) = rsyslog_root() else { return };
    let mut corpora = BTreeMap::new();
    for name in FILES {
        let Some(lines) = corpus_lines(&format!("{name}_2k.log")) else {
            return;
        };
        corpora.insert(name, lines);
    }
    let dir = TestDir::new("relp-rsyslog");
    let relp_port = free_tcp_port();
    let mut server = Server::start_with(&dir, &options(relp_port));
    for (name, corpus) in &corpora {
        append(dir.path(), name, corpus, 0, LINES / 2);
    }
    let _rsyslog = Rsyslog::start(&root, dir.path(), relp_port);

    // Kill once part of the stream has arrived: rsyslog has answered and unanswered
    // messages, and more to read.
    let deadline = Instant::now() + ARRIVAL_WAIT;
    while relp_lines(&server) < 200.0 {
        assert!(
            Instant::now() < deadline,
            "rsyslog sent nothing: {}",
            server.output()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    server.kill9();
    // The second half is written while shardlog is down: rsyslog reads it, queues it and
    // resends once the listener is back.
    for (name, corpus) in &corpora {
        append(dir.path(), name, corpus, LINES / 2, LINES);
    }
    std::thread::sleep(Duration::from_secs(1));
    let server = Server::start_with(&dir, &options(relp_port));

    for name in FILES {
        let query = format!(r#"{{app="{name}"}}"#);
        let deadline = Instant::now() + ARRIVAL_WAIT;
        let mut got = Vec::new();
        while Instant::now() < deadline {
            got = server.query_all(&query, false);
            if got.len() >= LINES {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let mut seen: BTreeMap<usize, usize> = BTreeMap::new();
        for e in &got {
            let n: usize = e
                .line
                .strip_prefix(&format!("{name}#"))
                .and_then(|rest| rest.split(' ').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("not a line of {name}: {:?}", e.line));
            *seen.entry(n).or_insert(0) += 1;
        }
        let lost: Vec<usize> = (1..=LINES)
            .filter(|n| !seen.contains_key(n))
            .take(10)
            .collect();
        assert!(lost.is_empty(), "{name}: lines lost (first 10): {lost:?}");
        let twice: Vec<(&usize, &usize)> = seen.iter().filter(|(_, c)| **c > 1).collect();
        assert!(twice.is_empty(), "{name}: lines stored twice: {twice:?}");
    }
    let metrics = parse_metrics(&server.metrics());
    eprintln!(
        "resent duplicates dropped after the restart: {}",
        metric_sum(
            &metrics,
            "shardlog_discarded_lines_total",
            &[("reason", "duplicate")]
        )
    );
}

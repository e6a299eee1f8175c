//! The server under soak: `shardlog serve` spawned on loopback with the soak's data dir and
//! settings that make sealing, compaction and retention happen all the time, restarted on
//! the same data dir after every kill or stop, and watched: how each incarnation ended,
//! its peak RSS, what it wrote to stderr.
//!
//! The settings of an incarnation are one of a few [`Profile`]s, chosen at random per
//! incarnation: tiny parts and a short seal age (many seals, heavy compaction), large heads
//! (scans that yield in the middle of a head while a seal takes it), and a small heads
//! budget (every head sealed at once). A data dir must work with any of them.

use std::fs::File;
use std::net::SocketAddr;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::Pid;

use super::SoakError;
use super::lanes::TENANT_SYSLOG;
use super::life::Endpoints;
use crate::bench::http::HttpClient;
use crate::bench::target::{free_ports, kib_field};

/// How long an incarnation may take to answer `/ready` 200 after it was started: replay of
/// a few seconds of WAL and the load of a few hundred parts, on a loaded 2-core machine.
/// Longer is a violation (a restart that does not come back is an outage).
pub const READY_TIMEOUT_MS: u64 = 60_000;
/// How long a graceful stop may take: finishing in-flight batches, committing the WAL and
/// sealing every head. Longer is a violation, and the process is then killed.
pub const STOP_TIMEOUT_MS: u64 = 30_000;
/// How often `/ready` is polled while an incarnation starts.
const READY_POLL_MS: u64 = 50;
/// Starts on other ports when the soak's ports were taken in the meantime (another
/// process's ephemeral port can land on a port the server let go of).
const START_ATTEMPTS_MAX: usize = 4;
/// Lines of the server's output kept in a violation's message.
pub const LOG_TAIL_LINES: usize = 40;
/// WAL segments of 1 MiB, the smallest the server takes: segments fill and roll over all
/// the time, so kills land in rollovers, and replay after a kill stays short.
const WAL_SEGMENT_BYTES: &str = "1048576";
/// Parts of an hour each: the old-timestamp lane fills a few old partitions, which
/// retention drops whole.
const PARTITION: &str = "1h";
/// zstd level of compacted parts: the default (9) would spend the shared machine's CPU on
/// compression ratios the soak does not measure.
const COMPACTION_ZSTD_LEVEL: &str = "3";
/// Output read per look for failures: bounds the soak's memory if the server floods its
/// log (a dead core makes every batch for it print a refusal).
const LOG_SCAN_BYTES_MAX: u64 = 16 << 20;
/// Lines shown from a failure on: the marker line and the message that follows it.
const FAILURE_CONTEXT_LINES: usize = 3;
/// Markers of a server that went wrong, looked for in its output after each incarnation,
/// whether or not the process exited: a panicked executor can leave the process alive.
pub const FAILURE_MARKERS: &[&str] = &[
    "panicked at",
    "double free",
    "free(): ",
    "malloc(): ",
    "corrupted",
    "Segmentation fault",
    "invariant broken",
];

/// The memory budget of every incarnation: the profiles' heads budgets (up to 256 MiB per
/// core) with the default shares of the rest.
pub const SOAK_MEMORY_MAX: &str = "2GiB";

/// Server settings of one incarnation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Profile {
    pub name: &'static str,
    pub seal_bytes: &'static str,
    pub seal_age: &'static str,
    pub heads_bytes_max: &'static str,
}

/// The profiles an incarnation is given one of (`--profile` narrows the choice).
pub const PROFILES: &[Profile] = &[
    // Parts of a few KiB sealed twice a second: many seal rounds and manifest writes, and
    // compaction busy merging them.
    Profile {
        name: "tiny-parts",
        seal_bytes: "4096",
        seal_age: "500ms",
        heads_bytes_max: "268435456",
    },
    // Heads of up to 256 KiB per stream for two seconds: a scan of the hot streams yields
    // several times per head, and a seal round takes heads while scans are inside them.
    Profile {
        name: "large-heads",
        seal_bytes: "262144",
        seal_age: "2s",
        heads_bytes_max: "268435456",
    },
    // Heads sealed only by age, after ten seconds: the hot streams' heads reach tens of
    // thousands of entries, so a scan of one yields several times inside it.
    Profile {
        name: "huge-heads",
        seal_bytes: "16777216",
        seal_age: "10s",
        heads_bytes_max: "268435456",
    },
    // A heads budget of 4 MiB per core that the large batches exceed within seconds, so
    // every head is sealed at once, whatever its size or age.
    Profile {
        name: "heads-budget",
        seal_bytes: "1048576",
        seal_age: "5s",
        heads_bytes_max: "4194304",
    },
];

/// One run of the server process.
pub struct Incarnation {
    pub number: u32,
    pub profile: Profile,
    pub pid: i32,
    child: Option<Child>,
    pub log_path: PathBuf,
    pub endpoints: Endpoints,
    pub started: Instant,
    pub ready_after: Option<Duration>,
    /// The highest VmHWM read from `/proc/<pid>/status` while it ran.
    pub peak_rss_bytes: u64,
    /// How much of its output [`Incarnation::scan_log`] has looked at.
    log_scanned: u64,
}

/// How an incarnation ended.
#[derive(Debug, Clone)]
pub struct Ending {
    pub status: Option<ExitStatus>,
    pub description: String,
}

/// `exit 0`, `exit 101`, `signal 6 (SIGABRT), core dumped`.
pub fn describe(status: &ExitStatus) -> String {
    if let Some(code) = status.code() {
        return format!("exit {code}");
    }
    let sig = status.signal().unwrap_or(0);
    let name = match Signal::try_from(sig) {
        Ok(Signal::SIGABRT) => " (SIGABRT)",
        Ok(Signal::SIGSEGV) => " (SIGSEGV)",
        Ok(Signal::SIGKILL) => " (SIGKILL)",
        Ok(Signal::SIGTERM) => " (SIGTERM)",
        Ok(Signal::SIGBUS) => " (SIGBUS)",
        Ok(Signal::SIGILL) => " (SIGILL)",
        _ => "",
    };
    let core = if status.core_dumped() {
        ", core dumped"
    } else {
        ""
    };
    format!("signal {sig}{name}{core}")
}

fn signal(pid: i32, sig: Signal) {
    // `pid` is our own child, not yet reaped, so it cannot have been reused by another
    // process.
    let _ = nix::sys::signal::kill(Pid::from_raw(pid), sig);
}

impl Incarnation {
    /// The exit status if the process has ended (it is then reaped).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        let status = self.child.as_mut()?.try_wait().ok().flatten()?;
        self.child = None;
        Some(status)
    }

    /// Reads VmHWM and keeps the highest value seen.
    pub fn sample_rss(&mut self) {
        if self.child.is_none() {
            return;
        }
        if let Some(kib) = std::fs::read_to_string(format!("/proc/{}/status", self.pid))
            .ok()
            .and_then(|s| kib_field(&s, "VmHWM:"))
        {
            self.peak_rss_bytes = self.peak_rss_bytes.max(kib * 1024);
        }
    }

    /// SIGKILL and reap.
    pub fn kill9(&mut self) -> Ending {
        self.sample_rss();
        let Some(mut child) = self.child.take() else {
            return Ending {
                status: None,
                description: "already gone".into(),
            };
        };
        signal(self.pid, Signal::SIGKILL);
        let status = child.wait().ok();
        Ending {
            description: status.as_ref().map_or("unknown".into(), describe),
            status,
        }
    }

    /// SIGTERM, then wait up to [`STOP_TIMEOUT_MS`]; `Err` (after a SIGKILL) if it did not
    /// exit in time.
    pub fn terminate(&mut self) -> Result<Ending, String> {
        self.sample_rss();
        let Some(mut child) = self.child.take() else {
            return Ok(Ending {
                status: None,
                description: "already gone".into(),
            });
        };
        signal(self.pid, Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_millis(STOP_TIMEOUT_MS);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Ok(Ending {
                    description: describe(&status),
                    status: Some(status),
                });
            }
            if Instant::now() > deadline {
                signal(self.pid, Signal::SIGKILL);
                let _ = child.wait();
                return Err(format!(
                    "did not exit within {STOP_TIMEOUT_MS} ms of SIGTERM (killed)"
                ));
            }
            std::thread::sleep(Duration::from_millis(READY_POLL_MS));
        }
    }

    /// The last `n` lines of its output.
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Lines of its output that show it went wrong (see [`FAILURE_MARKERS`]).
    pub fn failure_lines(&self) -> Vec<String> {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        failure_lines(&text)
            .into_iter()
            .map(str::to_string)
            .collect()
    }

    /// The first failure in the output written since the last call, with the lines that
    /// follow it (a panic's message is on the next line): how a server that went wrong but
    /// kept running is noticed.
    pub fn scan_log(&mut self) -> Option<String> {
        use std::io::{Read, Seek, SeekFrom};
        let mut f = File::open(&self.log_path).ok()?;
        f.seek(SeekFrom::Start(self.log_scanned)).ok()?;
        let mut new = Vec::new();
        f.take(LOG_SCAN_BYTES_MAX).read_to_end(&mut new).ok()?;
        // Whole lines only: the rest is looked at next time.
        let whole = new.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        self.log_scanned += whole as u64;
        let text = String::from_utf8_lossy(&new[..whole]);
        let lines: Vec<&str> = text.lines().collect();
        let first = lines
            .iter()
            .position(|l| FAILURE_MARKERS.iter().any(|m| l.contains(m)))?;
        Some(lines[first..lines.len().min(first + FAILURE_CONTEXT_LINES)].join("\n"))
    }
}

/// The lines of `text` that carry a [`FAILURE_MARKERS`] marker.
fn failure_lines(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| FAILURE_MARKERS.iter().any(|m| l.contains(m)))
        .collect()
}

impl Drop for Incarnation {
    fn drop(&mut self) {
        // No error path may leave a server running.
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Starts incarnations of the server on one data dir.
pub struct Supervisor {
    pub server: PathBuf,
    pub data_dir: PathBuf,
    pub out: PathBuf,
    pub cores: usize,
    pub retention: Duration,
    ports: Option<(u16, u16)>,
    started: u32,
}

impl Supervisor {
    pub fn new(server: &Path, out: &Path, cores: usize, retention: Duration) -> Supervisor {
        Supervisor {
            server: server.to_path_buf(),
            data_dir: out.join("data"),
            out: out.to_path_buf(),
            cores,
            retention,
            ports: None,
            started: 0,
        }
    }

    fn command(&self, profile: &Profile, http: u16, syslog: u16) -> Command {
        let mut cmd = Command::new(&self.server);
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(["--http-addr", &format!("127.0.0.1:{http}")])
            .args(["--syslog-tcp-addr", &format!("127.0.0.1:{syslog}")])
            .args(["--syslog-udp-addr", ""])
            .args(["--syslog-tenant", TENANT_SYSLOG])
            .args(["--cores", &self.cores.to_string()])
            .args(["--wal-segment-bytes-max", WAL_SEGMENT_BYTES])
            .args(["--partition", PARTITION])
            .args([
                "--retention",
                &format!("{}h", self.retention.as_secs() / 3600),
            ])
            .args(["--zstd-level", COMPACTION_ZSTD_LEVEL])
            .args(["--seal-bytes", profile.seal_bytes])
            .args(["--seal-age", profile.seal_age])
            .args(["--heads-bytes-max", profile.heads_bytes_max])
            // Room for the profiles' heads beside the default shares of everything else.
            .args(["--memory-max", SOAK_MEMORY_MAX])
            .env("RUST_BACKTRACE", "1")
            .stdin(Stdio::null());
        // A soak that is itself killed (a test's timeout, a closed terminal) must not leave
        // its server running: the kernel kills the server when the thread that started it
        // (the supervisor, which lives for the whole soak) ends.
        // SAFETY: the closure runs in the child between fork and exec and only calls
        // prctl(2), which is async-signal-safe and touches no memory of ours.
        unsafe {
            cmd.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)
            });
        }
        cmd
    }

    /// Starts the next incarnation with `profile` and waits until `/ready` answers 200.
    pub fn start(&mut self, profile: Profile) -> Result<Incarnation, StartError> {
        let mut last = String::new();
        for attempt in 0..START_ATTEMPTS_MAX {
            let (http, syslog) = match (self.ports, attempt) {
                (Some(p), 0) => p,
                _ => free_ports().map_err(|e| SoakError::new(e.to_string()))?,
            };
            self.started += 1;
            let number = self.started;
            let log_path = self.out.join(format!("server-{number}.log"));
            let log = File::create(&log_path)
                .map_err(|e| SoakError::new(format!("create {}: {e}", log_path.display())))?;
            let log2 = log
                .try_clone()
                .map_err(|e| SoakError::new(format!("{}: {e}", log_path.display())))?;
            let mut cmd = self.command(&profile, http, syslog);
            cmd.stdout(log2).stderr(log);
            let child = cmd
                .spawn()
                .map_err(|e| SoakError::new(format!("start {}: {e}", self.server.display())))?;
            let mut inc = Incarnation {
                number,
                profile,
                pid: child.id() as i32,
                child: Some(child),
                log_path,
                endpoints: Endpoints {
                    http: SocketAddr::from(([127, 0, 0, 1], http)),
                    syslog_tcp: SocketAddr::from(([127, 0, 0, 1], syslog)),
                },
                started: Instant::now(),
                ready_after: None,
                peak_rss_bytes: 0,
                log_scanned: 0,
            };
            match wait_ready(&mut inc) {
                Ok(took) => {
                    inc.ready_after = Some(took);
                    self.ports = Some((http, syslog));
                    return Ok(inc);
                }
                Err(e) if e.contains("in use") || e.contains("Address already") => last = e,
                Err(e) => return Err(StartError::Server(e)),
            }
        }
        Err(StartError::Server(format!(
            "the server did not start after {START_ATTEMPTS_MAX} attempts: {last}"
        )))
    }
}

/// Why an incarnation did not start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartError {
    /// The soak could not start it (no free port, no log file, no binary): not the
    /// server's fault.
    Soak(SoakError),
    /// It ran but exited before it was ready, or was not ready within
    /// [`READY_TIMEOUT_MS`] (it is then killed): the server's fault, with its output.
    Server(String),
}

impl From<SoakError> for StartError {
    fn from(e: SoakError) -> StartError {
        StartError::Soak(e)
    }
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Soak(e) => write!(f, "{e}"),
            StartError::Server(e) => f.write_str(e),
        }
    }
}

fn wait_ready(inc: &mut Incarnation) -> Result<Duration, String> {
    let deadline = inc.started + Duration::from_millis(READY_TIMEOUT_MS);
    loop {
        if let Some(status) = inc.exited() {
            return Err(format!(
                "incarnation {} (pid {}) exited with {} before it was ready; its output ({}):\n{}",
                inc.number,
                inc.pid,
                describe(&status),
                inc.log_path.display(),
                inc.log_tail(LOG_TAIL_LINES)
            ));
        }
        let mut c = HttpClient::new(inc.endpoints.http);
        if let Ok(r) = c.request("GET", "/ready", &[], b"")
            && r.status == 200
        {
            return Ok(inc.started.elapsed());
        }
        if Instant::now() > deadline {
            inc.kill9();
            return Err(format!(
                "incarnation {} (pid {}) was not ready within {READY_TIMEOUT_MS} ms (killed); its output ({}):\n{}",
                inc.number,
                inc.pid,
                inc.log_path.display(),
                inc.log_tail(LOG_TAIL_LINES)
            ));
        }
        std::thread::sleep(Duration::from_millis(READY_POLL_MS));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_failures_in_new_output_only() {
        let d = tempfile::tempdir().unwrap();
        let log_path = d.path().join("server-1.log");
        std::fs::write(&log_path, "serving\nshard 0: recovered\n").unwrap();
        let mut inc = Incarnation {
            number: 1,
            profile: PROFILES[0],
            pid: 0,
            child: None,
            log_path: log_path.clone(),
            endpoints: Endpoints {
                http: ([127, 0, 0, 1], 1).into(),
                syslog_tcp: ([127, 0, 0, 1], 1).into(),
            },
            started: Instant::now(),
            ready_after: None,
            peak_rss_bytes: 0,
            log_scanned: 0,
        };
        assert_eq!(inc.scan_log(), None);
        let panic = "thread 'shard-1' panicked at src/shard/head.rs:205:24:\nindex out of bounds\nstack backtrace:\n   0: x\n";
        std::fs::write(
            &log_path,
            format!("serving\nshard 0: recovered\n{panic}half a li"),
        )
        .unwrap();
        assert_eq!(
            inc.scan_log().as_deref(),
            Some(
                "thread 'shard-1' panicked at src/shard/head.rs:205:24:\nindex out of bounds\nstack backtrace:"
            )
        );
        assert_eq!(inc.scan_log(), None, "each failure is found once");
        assert_eq!(inc.failure_lines().len(), 1);
    }

    #[test]
    fn describes_exits_and_signals() {
        assert_eq!(describe(&ExitStatus::from_raw(0)), "exit 0");
        assert_eq!(describe(&ExitStatus::from_raw(101 << 8)), "exit 101");
        assert_eq!(
            describe(&ExitStatus::from_raw(Signal::SIGABRT as i32)),
            "signal 6 (SIGABRT)"
        );
        assert_eq!(
            describe(&ExitStatus::from_raw(Signal::SIGSEGV as i32 | 0x80)),
            "signal 11 (SIGSEGV), core dumped"
        );
    }
}

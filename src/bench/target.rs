//! The server under test: a `shardlog serve` that the harness spawns on loopback with a
//! fresh data directory (or an existing server it is pointed at), and what the harness reads
//! about a spawned process from `/proc`: CPU time, peak RSS, the CPUs its threads run on.
//!
//! CPU pinning works on threads, not on the process: glommio pins each executor thread to a
//! CPU of its own choosing among all online CPUs, whatever the affinity it inherited. So the
//! harness pins the new process at once and every thread of it again once it is ready
//! (what `taskset -a -p` does), and the report lists where the threads actually ran.

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sched::CpuSet;
use nix::sys::signal::Signal;
use nix::unistd::{Pid, SysconfVar, sysconf};

use super::BenchError;
use super::http::HttpClient;
use super::options::{Endpoints, Plan, online_cpus};

/// How long a spawned server may take to answer `/ready`: WAL replay of a fresh data dir is
/// instant, 60 s leaves room for a loaded machine.
pub const READY_TIMEOUT_MS: u64 = 60_000;
/// How long a graceful stop (SIGTERM) may take before the harness kills the process and
/// reports it: the server finishes in-flight batches and commits the WAL, which takes
/// milliseconds, not tens of seconds.
pub const SHUTDOWN_TIMEOUT_MS: u64 = 30_000;
/// How often readiness is polled.
pub const POLL_INTERVAL_MS: u64 = 50;
/// Starts retried when a probed free port was taken by another process in between.
const START_ATTEMPTS_MAX: usize = 4;

/// A process the harness started (shardlog or syslog-ng).
pub struct ServerProcess {
    child: Option<Child>,
    pub pid: i32,
    pub name: &'static str,
    pub log_path: PathBuf,
}

/// How a spawned process ended.
#[derive(Debug, Clone)]
pub struct StopResult {
    /// The exit code, or `None` when it died by a signal.
    pub code: Option<i32>,
    /// Whether it had to be killed after [`SHUTDOWN_TIMEOUT_MS`].
    pub killed: bool,
    pub description: String,
}

impl StopResult {
    pub fn clean(&self) -> bool {
        self.code == Some(0) && !self.killed
    }
}

impl ServerProcess {
    /// Starts `command` with its output in `log_path`, pinned to `cpus` (or to every online
    /// CPU, so that it does not inherit the harness's own pinning).
    pub fn spawn(
        name: &'static str,
        mut command: Command,
        log_path: PathBuf,
        cpus: Option<&[usize]>,
    ) -> Result<ServerProcess, BenchError> {
        let log = File::create(&log_path)
            .map_err(|e| BenchError::new(format!("create {}: {e}", log_path.display())))?;
        let log2 = log
            .try_clone()
            .map_err(|e| BenchError::new(format!("{}: {e}", log_path.display())))?;
        command.stdin(Stdio::null()).stdout(log2).stderr(log);
        let child = command
            .spawn()
            .map_err(|e| BenchError::new(format!("start {name}: {e}")))?;
        let pid = child.id() as i32;
        let p = ServerProcess {
            child: Some(child),
            pid,
            name,
            log_path,
        };
        // Early, so that threads the process starts inherit it; without a CPU list, this
        // undoes the harness's own `--client-cpus` pinning, which the child inherited.
        let all: Vec<usize> = (0..online_cpus()).collect();
        p.pin(cpus.unwrap_or(&all))?;
        Ok(p)
    }

    /// Pins every thread of the process to `cpus`.
    pub fn pin(&self, cpus: &[usize]) -> Result<(), BenchError> {
        for tid in self.threads() {
            // A thread that ended in between is not an error.
            if let Err(e) = set_affinity(tid, cpus)
                && e.raw_os_error() != Some(Errno::ESRCH as i32)
            {
                return Err(BenchError::new(format!(
                    "pin {} thread {tid} to CPUs {cpus:?}: {e}",
                    self.name
                )));
            }
        }
        Ok(())
    }

    fn threads(&self) -> Vec<i32> {
        let dir = format!("/proc/{}/task", self.pid);
        let mut tids: Vec<i32> = std::fs::read_dir(dir)
            .map(|d| {
                d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        if tids.is_empty() {
            tids.push(self.pid);
        }
        tids
    }

    /// `name: cpus` for each thread, e.g. `shardlog-0: 0`, grouped: where it really runs.
    pub fn thread_placement(&self) -> String {
        let mut groups: BTreeMap<(String, String), usize> = BTreeMap::new();
        for tid in self.threads() {
            let base = format!("/proc/{}/task/{tid}", self.pid);
            let comm = std::fs::read_to_string(format!("{base}/comm")).unwrap_or_default();
            let status = std::fs::read_to_string(format!("{base}/status")).unwrap_or_default();
            let cpus = status_field(&status, "Cpus_allowed_list:")
                .unwrap_or("?")
                .to_string();
            *groups.entry((comm.trim().to_string(), cpus)).or_default() += 1;
        }
        group_placement(&groups)
    }

    /// User + system CPU seconds of the whole process so far.
    pub fn cpu_seconds(&self) -> Option<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).ok()?;
        cpu_seconds_from_stat(&stat, clock_ticks_per_sec())
    }

    /// The peak resident set size (VmHWM) so far.
    pub fn peak_rss_bytes(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).ok()?;
        kib_field(&status, "VmHWM:").map(|k| k * 1024)
    }

    /// The exit status if the process has already ended.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.as_mut()?.try_wait().ok().flatten()
    }

    /// The last lines of its log, for error messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// SIGTERM, then wait up to [`SHUTDOWN_TIMEOUT_MS`], then SIGKILL.
    pub fn stop(mut self) -> StopResult {
        let Some(mut child) = self.child.take() else {
            return StopResult {
                code: None,
                killed: false,
                description: "not running".into(),
            };
        };
        signal(self.pid, Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_millis(SHUTDOWN_TIMEOUT_MS);
        loop {
            match child.try_wait() {
                Ok(Some(status)) => {
                    return StopResult {
                        code: status.code(),
                        killed: false,
                        description: status.to_string(),
                    };
                }
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(POLL_INTERVAL_MS))
                }
                _ => {
                    let _ = child.kill();
                    let status = child.wait().ok();
                    return StopResult {
                        code: status.and_then(|s| s.code()),
                        killed: true,
                        description: format!(
                            "did not stop within {SHUTDOWN_TIMEOUT_MS} ms of SIGTERM; killed"
                        ),
                    };
                }
            }
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        // An error path that leaves a server running must not leak the process.
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn signal(pid: i32, sig: Signal) {
    // `pid` is our own unreaped child, so it cannot have been reused by another process.
    let _ = nix::sys::signal::kill(Pid::from_raw(pid), sig);
}

/// `iou-wrk-123 on 0-1` and `iou-wrk-456 on 0-1` become `iou-wrk ×2 on 0-1`: thread names
/// without their numbers, counted, with the CPUs each may run on.
fn group_placement(threads: &BTreeMap<(String, String), usize>) -> String {
    let mut by_kind: BTreeMap<(String, String), usize> = BTreeMap::new();
    for ((comm, cpus), n) in threads {
        let kind = comm.trim_end_matches(|c: char| c.is_ascii_digit() || c == '-');
        let kind = if kind.is_empty() { comm.as_str() } else { kind };
        *by_kind.entry((kind.to_string(), cpus.clone())).or_default() += n;
    }
    by_kind
        .iter()
        .map(|((kind, cpus), n)| match n {
            1 => format!("{kind} on {cpus}"),
            n => format!("{kind} ×{n} on {cpus}"),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// sched_setaffinity(2) for one thread (or process) id.
pub fn set_affinity(tid: i32, cpus: &[usize]) -> io::Result<()> {
    let limit = CpuSet::count();
    if let Some(c) = cpus.iter().find(|c| **c >= limit) {
        return Err(io::Error::other(format!(
            "CPU {c} is beyond the {limit} a cpu_set_t holds"
        )));
    }
    let mut set = CpuSet::new();
    for c in cpus {
        set.set(*c)?;
    }
    Ok(nix::sched::sched_setaffinity(Pid::from_raw(tid), &set)?)
}

fn clock_ticks_per_sec() -> f64 {
    match sysconf(SysconfVar::CLK_TCK) {
        Ok(Some(t)) if t > 0 => t as f64,
        _ => 100.0,
    }
}

/// utime + stime of a `/proc/<pid>/stat` line, in seconds. The command name (field 2) is in
/// parentheses and may hold spaces, so fields are counted after its closing parenthesis.
pub fn cpu_seconds_from_stat(stat: &str, ticks_per_sec: f64) -> Option<f64> {
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After the name: state is field 3, utime field 14 and stime field 15 of the line.
    let utime: u64 = fields.get(14 - 3)?.parse().ok()?;
    let stime: u64 = fields.get(15 - 3)?.parse().ok()?;
    Some((utime + stime) as f64 / ticks_per_sec)
}

fn status_field<'a>(status: &'a str, key: &str) -> Option<&'a str> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .map(str::trim)
}

/// A `Key:   1234 kB` field of `/proc/.../status` or `/proc/meminfo`.
pub fn kib_field(text: &str, key: &str) -> Option<u64> {
    status_field(text, key)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// A `shardlog serve` started by the harness.
pub struct Shardlog {
    pub process: ServerProcess,
    pub endpoints: Endpoints,
    pub data_dir: PathBuf,
}

impl Shardlog {
    /// Starts `serve` of this very binary in `dir/data` on free loopback ports and waits for
    /// `/ready`.
    pub fn spawn(plan: &Plan, dir: &Path) -> Result<Shardlog, BenchError> {
        let exe = std::env::current_exe()
            .map_err(|e| BenchError::new(format!("cannot find this binary to spawn it: {e}")))?;
        let data_dir = dir.join("data");
        let mut last = String::new();
        for attempt in 0..START_ATTEMPTS_MAX {
            let (http_port, syslog_port) = free_ports()?;
            let ip = "127.0.0.1";
            let mut cmd = Command::new(&exe);
            cmd.arg("serve")
                .arg("--data-dir")
                .arg(&data_dir)
                .args(["--http-addr", &format!("{ip}:{http_port}")])
                .args(["--syslog-tcp-addr", &format!("{ip}:{syslog_port}")])
                .args(["--syslog-udp-addr", &format!("{ip}:{syslog_port}")])
                .args(["--syslog-tenant", &plan.tenant]);
            if let Some(c) = plan.cores {
                cmd.args(["--cores", &c.to_string()]);
            }
            let log = dir.join(format!("server-{attempt}.log"));
            let mut process =
                ServerProcess::spawn("shardlog", cmd, log, plan.server_cpus.as_deref())?;
            let syslog: SocketAddr = ([127, 0, 0, 1], syslog_port).into();
            let endpoints = Endpoints {
                http: ([127, 0, 0, 1], http_port).into(),
                syslog_tcp: syslog,
                syslog_udp: syslog,
            };
            match wait_ready(&mut process, endpoints.http) {
                Ok(()) => {
                    // Only when asked: otherwise glommio's own pinning of its executors
                    // (one CPU each) stays as the server chose it.
                    if let Some(cpus) = &plan.server_cpus {
                        process.pin(cpus)?;
                    }
                    return Ok(Shardlog {
                        process,
                        endpoints,
                        data_dir,
                    });
                }
                Err(e) if e.contains("in use") => last = e,
                Err(e) => return Err(BenchError::new(e)),
            }
        }
        Err(BenchError::new(format!(
            "the server did not start after {START_ATTEMPTS_MAX} attempts: {last}"
        )))
    }
}

fn wait_ready(p: &mut ServerProcess, http: SocketAddr) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_millis(READY_TIMEOUT_MS);
    loop {
        if let Some(status) = p.exited() {
            return Err(format!(
                "the spawned server exited ({status}) before it was ready; its log ({}):\n{}",
                p.log_path.display(),
                p.log_tail()
            ));
        }
        let mut c = HttpClient::new(http);
        if let Ok(r) = c.request("GET", "/ready", &[], b"")
            && r.status == 200
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "the spawned server was not ready after {READY_TIMEOUT_MS} ms; its log ({}):\n{}",
                p.log_path.display(),
                p.log_tail()
            ));
        }
        std::thread::sleep(Duration::from_millis(POLL_INTERVAL_MS));
    }
}

/// A free loopback port for HTTP and one free for both TCP and UDP (syslog).
pub fn free_ports() -> Result<(u16, u16), BenchError> {
    let probe = |e: io::Error| BenchError::new(format!("cannot bind a loopback port: {e}"));
    let http = TcpListener::bind("127.0.0.1:0").map_err(probe)?;
    let http_port = http.local_addr().map_err(probe)?.port();
    for _ in 0..100 {
        let tcp = TcpListener::bind("127.0.0.1:0").map_err(probe)?;
        let port = tcp.local_addr().map_err(probe)?.port();
        if port != http_port && UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return Ok((http_port, port));
        }
    }
    Err(BenchError::new(
        "no loopback port is free for both TCP and UDP",
    ))
}

/// Disk usage of a directory tree: (allocated bytes as `du` counts them, apparent bytes).
pub fn disk_usage(dir: &Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let mut allocated = 0;
    let mut apparent = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(m) = e.metadata() else { continue };
            if m.is_dir() {
                stack.push(e.path());
            }
            allocated += m.blocks() * 512;
            apparent += m.len();
        }
    }
    (allocated, apparent)
}

/// Sum of every sample of a metric in Prometheus text (`name` or `name{...}`).
pub fn metric_sum(text: &str, name: &str) -> Option<f64> {
    let mut found = None;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        if !(rest.starts_with(' ') || rest.starts_with('{')) {
            continue;
        }
        let value = rest.rsplit(' ').next()?.parse::<f64>().ok()?;
        *found.get_or_insert(0.0) += value;
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_proc_stat_with_spaces_in_the_name() {
        let stat =
            "4242 (shard log) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 3 0 100 0 0";
        assert_eq!(cpu_seconds_from_stat(stat, 100.0), Some(3.0));
        assert_eq!(cpu_seconds_from_stat("garbage", 100.0), None);
        // Our own process reads back something plausible.
        let own = std::fs::read_to_string("/proc/self/stat").unwrap();
        assert!(cpu_seconds_from_stat(&own, clock_ticks_per_sec()).is_some());
    }

    #[test]
    fn reads_status_fields() {
        let s = "Name:\tx\nVmHWM:\t  123456 kB\nCpus_allowed_list:\t0-1\n";
        assert_eq!(kib_field(s, "VmHWM:"), Some(123456));
        assert_eq!(status_field(s, "Cpus_allowed_list:"), Some("0-1"));
        assert_eq!(kib_field(s, "VmRSS:"), None);
    }

    #[test]
    fn groups_threads_by_name() {
        let mut t = BTreeMap::new();
        t.insert(("iou-wrk-12".to_string(), "0-1".to_string()), 1);
        t.insert(("iou-wrk-13".to_string(), "0-1".to_string()), 1);
        t.insert(("shard-1".to_string(), "0".to_string()), 1);
        t.insert(("shard-2".to_string(), "1".to_string()), 1);
        assert_eq!(
            group_placement(&t),
            "iou-wrk ×2 on 0-1; shard on 0; shard on 1"
        );
    }

    #[test]
    fn sums_metrics() {
        let text = "# HELP shardlog_udp_dropped_total x\n# TYPE shardlog_udp_dropped_total counter\nshardlog_udp_dropped_total 7\nshardlog_udp_dropped_total_other 100\nshardlog_wal_bytes_written_total{shard=\"0\"} 10\nshardlog_wal_bytes_written_total{shard=\"1\"} 5\n";
        assert_eq!(metric_sum(text, "shardlog_udp_dropped_total"), Some(7.0));
        assert_eq!(
            metric_sum(text, "shardlog_wal_bytes_written_total"),
            Some(15.0)
        );
        assert_eq!(metric_sum(text, "shardlog_nothing"), None);
    }

    #[test]
    fn affinity_of_this_thread() {
        let all: Vec<usize> = (0..online_cpus()).collect();
        set_affinity(0, &all).unwrap();
        assert!(set_affinity(0, &[1 << 20]).is_err());
    }

    #[test]
    fn disk_usage_counts_files() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("sub")).unwrap();
        std::fs::write(d.path().join("sub/f"), vec![1u8; 10_000]).unwrap();
        let (allocated, apparent) = disk_usage(d.path());
        assert!(apparent >= 10_000, "{apparent}");
        assert!(allocated >= 8192, "{allocated}");
    }
}

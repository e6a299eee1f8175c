//! Starting, stopping and killing the real `shardlog` binary for a test.
//!
//! Every server gets its own free loopback ports and a data directory under
//! `CARGO_TARGET_TMPDIR` (never tmpfs: the WAL opens its files with O_DIRECT, which tmpfs
//! refuses). Its stdout and stderr go to a file beside the data directory so that a failing
//! test can print them; on a failing test the directory is kept for a post-mortem.

use std::cell::Cell;
use std::fs::File;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::errno::Errno;
pub use nix::sys::signal::Signal;
use nix::unistd::Pid;

use super::http::{self, Response};

/// How long a server may take to replay its WAL and answer `/ready` 200. Replay of the small
/// logs these tests write takes milliseconds; 30 s leaves room for a loaded CI machine.
pub const READY_TIMEOUT_MS: u64 = 30_000;

/// How long a graceful stop (SIGTERM) may take before the harness escalates to SIGKILL.
pub const SHUTDOWN_TIMEOUT_MS: u64 = 15_000;

/// How often `/ready` and index stats are polled.
pub const POLL_INTERVAL_MS: u64 = 50;

/// How many times a start is retried when the ports picked turned out to be taken by
/// another process in between (the free-port probe can race with parallel tests).
const START_ATTEMPTS_MAX: usize = 4;

/// Shards every test server runs with: two, so that streams are spread across cores and the
/// cross-core paths (mesh, fan-out queries, merge) are exercised on a 2-core machine.
pub const TEST_CORES: usize = 2;

/// A per-test directory under `CARGO_TARGET_TMPDIR` holding the data directory and the
/// server logs. Removed when the test passes, kept (and its path printed) when it fails.
pub struct TestDir {
    dir: Option<tempfile::TempDir>,
    starts: Cell<usize>,
}

impl TestDir {
    pub fn new(name: &str) -> TestDir {
        let base = Path::new(env!("CARGO_TARGET_TMPDIR"));
        std::fs::create_dir_all(base).expect("create CARGO_TARGET_TMPDIR");
        let dir = tempfile::Builder::new()
            .prefix(&format!("{name}-"))
            .tempdir_in(base)
            .expect("create a test directory under CARGO_TARGET_TMPDIR");
        TestDir {
            dir: Some(dir),
            starts: Cell::new(0),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir
            .as_ref()
            .expect("test dir present until drop")
            .path()
    }

    /// The server's data directory (created by the server itself on first start).
    pub fn data_dir(&self) -> PathBuf {
        self.path().join("data")
    }

    fn next_log_path(&self) -> PathBuf {
        let n = self.starts.get();
        self.starts.set(n + 1);
        self.path().join(format!("server-{n}.log"))
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if std::thread::panicking()
            && let Some(dir) = self.dir.take()
        {
            let kept = dir.keep();
            eprintln!("test failed: keeping {}", kept.display());
        }
    }
}

/// Options for one server start; `Default` is what most tests want.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    pub cores: usize,
    /// Whether to open the syslog listeners (TCP and UDP on one port).
    pub syslog: bool,
    /// Further command-line arguments, appended after the harness's own.
    pub extra_args: Vec<String>,
    /// Whether streams and entries get Loki 3's `service_name` and `detected_level`.
    pub discovery: Discovery,
}

/// Loki 3's ingest-time discovery in a test server. Off unless a test asks: the tests of
/// the other features compare stored label sets and metadata exactly as they sent them,
/// and the tests of discovery (`tests/otlp.rs`, `tests/discovery.rs`) run with the
/// server's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Discovery {
    /// `--discover-service-name= --discover-log-levels=false`.
    Off,
    /// The server's defaults (Loki's): both on.
    Defaults,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            cores: TEST_CORES,
            syslog: true,
            extra_args: Vec::new(),
            discovery: Discovery::Off,
        }
    }
}

/// Resident memory of a server process, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    pub rss: u64,
    /// The highest `rss` since the process started.
    pub peak: u64,
}

/// A running `shardlog serve`. Stopped on drop: SIGTERM, then SIGKILL after
/// [`SHUTDOWN_TIMEOUT_MS`].
pub struct Server {
    child: Option<Child>,
    pub http: SocketAddr,
    /// The syslog port, open for both TCP and UDP (0 when syslog is disabled).
    pub syslog_port: u16,
    pub data_dir: PathBuf,
    log_path: PathBuf,
}

impl Server {
    /// Starts a server with default options in `dir` and waits until it is ready.
    pub fn start(dir: &TestDir) -> Server {
        Server::start_with(dir, &ServerOptions::default())
    }

    /// Starts an HTTP-only server (no syslog listeners) with `extra` flags in a new `TestDir`
    /// named `name`, and waits until it is ready.
    pub fn start_http_only(name: &str, extra: &[&str]) -> (TestDir, Server) {
        let dir = TestDir::new(name);
        let options = ServerOptions {
            syslog: false,
            extra_args: extra.iter().map(|s| s.to_string()).collect(),
            ..ServerOptions::default()
        };
        let server = Server::start_with(&dir, &options);
        (dir, server)
    }

    /// Starts a server and waits until `/ready` answers 200; panics with the server's output
    /// if it exits or does not become ready within [`READY_TIMEOUT_MS`].
    pub fn start_with(dir: &TestDir, options: &ServerOptions) -> Server {
        let mut last_failure = String::new();
        for _ in 0..START_ATTEMPTS_MAX {
            let (http_port, syslog_port) = free_ports(options.syslog);
            let args = server_args(dir, options, http_port, syslog_port);
            match Server::spawn_ready(dir, &args, http_port, syslog_port) {
                Ok(server) => return server,
                Err(failure) if failure.contains("in use") => {
                    // Another process took a port between the probe and the bind: retry.
                    last_failure = failure;
                }
                Err(failure) => panic!("{failure}"),
            }
        }
        panic!("server did not start after {START_ATTEMPTS_MAX} attempts: {last_failure}");
    }

    /// Runs `shardlog` with exactly `args` (e.g. `serve --config FILE`) and waits until it
    /// answers `/ready` on `http_port`; `Err` carries the reason and the server's output.
    pub fn spawn_ready(
        dir: &TestDir,
        args: &[String],
        http_port: u16,
        syslog_port: u16,
    ) -> Result<Server, String> {
        let mut server = Server::spawn(dir, args, http_port, syslog_port);
        server.wait_ready()?;
        Ok(server)
    }

    /// Starts a server without waiting for it to be ready (for tests of what it does while
    /// it recovers); [`Server::wait_ready`] waits later.
    pub fn start_unready(dir: &TestDir, options: &ServerOptions) -> Server {
        Server::start_unready_with_env(dir, options, &[])
    }

    /// [`Server::start_unready`] with further environment variables for the server (the
    /// test-only fault injection, `SHARDLOG_TEST_FAULT`).
    pub fn start_unready_with_env(
        dir: &TestDir,
        options: &ServerOptions,
        env: &[(&str, &str)],
    ) -> Server {
        let (http_port, syslog_port) = free_ports(options.syslog);
        let args = server_args(dir, options, http_port, syslog_port);
        Server::spawn_with_env(dir, &args, http_port, syslog_port, env)
    }

    fn spawn(dir: &TestDir, args: &[String], http_port: u16, syslog_port: u16) -> Server {
        Server::spawn_with_env(dir, args, http_port, syslog_port, &[])
    }

    fn spawn_with_env(
        dir: &TestDir,
        args: &[String],
        http_port: u16,
        syslog_port: u16,
        env: &[(&str, &str)],
    ) -> Server {
        let log_path = dir.next_log_path();
        let log = File::create(&log_path).expect("create server log file");
        let child = Command::new(env!("CARGO_BIN_EXE_shardlog"))
            .args(args)
            .current_dir(dir.path())
            .env("RUST_BACKTRACE", "1")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log file handle"))
            .stderr(log)
            .spawn()
            .expect("spawn the shardlog binary");
        Server {
            child: Some(child),
            http: SocketAddr::from(([127, 0, 0, 1], http_port)),
            syslog_port,
            data_dir: dir.data_dir(),
            log_path,
        }
    }

    /// Waits until `/ready` answers 200; `Err` (with the server's output) if the server exits
    /// first or is not ready within [`READY_TIMEOUT_MS`].
    pub fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_millis(READY_TIMEOUT_MS);
        loop {
            if let Some(status) = self
                .child_mut()
                .try_wait()
                .expect("poll the server process")
            {
                self.child = None;
                return Err(format!(
                    "server exited with {status} before it was ready; its output:\n{}",
                    self.output()
                ));
            }
            if let Ok(response) = http::request(self.http, "GET", "/ready", &[], &[])
                && response.status == 200
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "server not ready after {READY_TIMEOUT_MS} ms; its output:\n{}",
                    self.output()
                ));
            }
            std::thread::sleep(Duration::from_millis(POLL_INTERVAL_MS));
        }
    }

    fn child_mut(&mut self) -> &mut Child {
        self.child.as_mut().expect("server process still owned")
    }

    /// Everything the server wrote to stdout and stderr so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_else(|e| format!("<no log: {e}>"))
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("server running").id() as i32
    }

    /// The server's resident memory now and its peak so far (`VmRSS`, `VmHWM` of
    /// `/proc/<pid>/status`), in bytes.
    pub fn memory(&self) -> Memory {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read the server's /proc status");
        let field = |name: &str| -> u64 {
            let line = status
                .lines()
                .find(|l| l.starts_with(name))
                .unwrap_or_else(|| panic!("no {name} in /proc status:\n{status}"));
            let kib: u64 = line[name.len()..]
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .unwrap_or_else(|_| panic!("bad {name} line {line:?}"));
            kib * 1024
        };
        Memory {
            rss: field("VmRSS:"),
            peak: field("VmHWM:"),
        }
    }

    /// SIGKILL: the process dies at once, in the middle of whatever it was doing.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            send_signal(child.id() as i32, Signal::SIGKILL);
            child.wait().expect("reap killed server");
        }
    }

    /// SIGTERM and wait for the exit; panics if the server does not stop within
    /// [`SHUTDOWN_TIMEOUT_MS`] (it is then killed).
    pub fn terminate(&mut self) -> ExitStatus {
        self.stop_with(Signal::SIGTERM)
    }

    /// SIGTERM, and asserts the graceful stop exited 0 (the server's output is in the message).
    pub fn terminate_ok(&mut self) {
        let status = self.terminate();
        assert_eq!(
            status.code(),
            Some(0),
            "SIGTERM must exit 0; output:\n{}",
            self.output()
        );
    }

    /// Sends `signal` (SIGTERM or SIGINT: a graceful stop) and waits for the exit, as
    /// [`Server::terminate`] does.
    pub fn stop_with(&mut self, signal: Signal) -> ExitStatus {
        let mut child = self.child.take().expect("server running");
        send_signal(child.id() as i32, signal);
        match wait_timeout(&mut child, Duration::from_millis(SHUTDOWN_TIMEOUT_MS)) {
            Some(status) => status,
            None => {
                send_signal(child.id() as i32, Signal::SIGKILL);
                let _ = child.wait();
                panic!(
                    "server did not exit within {SHUTDOWN_TIMEOUT_MS} ms of SIGTERM; its output:\n{}",
                    self.output()
                );
            }
        }
    }

    /// Waits for the server to exit by itself; `None` if it still runs after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let child = self.child.as_mut().expect("server process still owned");
        let status = wait_timeout(child, timeout)?;
        self.child = None;
        Some(status)
    }

    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => child.try_wait().expect("poll server").is_none(),
            None => false,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let output = self.output();
            let tail: String = tail_lines(&output, 80);
            eprintln!(
                "--- server output ({}) ---\n{tail}\n--- end ---",
                self.log_path.display()
            );
        }
        if let Some(mut child) = self.child.take() {
            send_signal(child.id() as i32, Signal::SIGTERM);
            if wait_timeout(&mut child, Duration::from_millis(SHUTDOWN_TIMEOUT_MS)).is_none() {
                send_signal(child.id() as i32, Signal::SIGKILL);
                let _ = child.wait();
            }
        }
    }
}

fn tail_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

pub fn server_args(
    dir: &TestDir,
    options: &ServerOptions,
    http_port: u16,
    syslog_port: u16,
) -> Vec<String> {
    let syslog_addr = if options.syslog {
        format!("127.0.0.1:{syslog_port}")
    } else {
        String::new()
    };
    let mut args: Vec<String> = vec![
        "serve".into(),
        "--data-dir".into(),
        dir.data_dir().display().to_string(),
        "--http-addr".into(),
        format!("127.0.0.1:{http_port}"),
        "--syslog-tcp-addr".into(),
        syslog_addr.clone(),
        "--syslog-udp-addr".into(),
        syslog_addr,
        "--cores".into(),
        options.cores.to_string(),
    ];
    if options.discovery == Discovery::Off {
        args.push("--discover-service-name=".into());
        args.push("--discover-log-levels=false".into());
    }
    args.extend(options.extra_args.iter().cloned());
    args
}

/// A TCP port on 127.0.0.1 free at the time of the call (for listeners a test names itself).
pub fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind a probe port")
        .local_addr()
        .expect("probe port address")
        .port()
}

/// Picks a free HTTP port and, if wanted, one port free for both TCP and UDP (syslog).
pub fn free_ports(syslog: bool) -> (u16, u16) {
    let http = TcpListener::bind("127.0.0.1:0").expect("bind a probe port");
    let http_port = http.local_addr().expect("probe port address").port();
    if !syslog {
        return (http_port, 0);
    }
    loop {
        let tcp = TcpListener::bind("127.0.0.1:0").expect("bind a probe port");
        let port = tcp.local_addr().expect("probe port address").port();
        if port != http_port && UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return (http_port, port);
        }
    }
}

pub fn send_signal(pid: i32, signal: Signal) {
    // The pid is our own child's, which is not reaped yet, so it cannot have been reused by
    // another process; one that has exited already is no error.
    let sent = nix::sys::signal::kill(Pid::from_raw(pid), signal);
    assert!(
        matches!(sent, Ok(()) | Err(Errno::ESRCH)),
        "kill({pid}, {signal}) failed: {sent:?}"
    );
}

pub fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("poll child process") {
            return Some(status);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `shardlog` with the given arguments to completion (for configuration errors that
/// must exit at once); fails the test if it is still running after `timeout_ms`.
pub fn run_to_exit(args: &[&str], timeout_ms: u64) -> (ExitStatus, String) {
    let dir = TestDir::new("run");
    let log_path = dir.path().join("output.log");
    let log = File::create(&log_path).expect("create output file");
    let mut child = Command::new(env!("CARGO_BIN_EXE_shardlog"))
        .args(args)
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("clone log handle"))
        .stderr(log)
        .spawn()
        .expect("spawn the shardlog binary");
    let status = wait_timeout(&mut child, Duration::from_millis(timeout_ms));
    let output = std::fs::read_to_string(&log_path).unwrap_or_default();
    match status {
        Some(status) => (status, output),
        None => {
            send_signal(child.id() as i32, Signal::SIGKILL);
            let _ = child.wait();
            panic!(
                "`shardlog {}` still running after {timeout_ms} ms; output:\n{output}",
                args.join(" ")
            );
        }
    }
}

/// Sends a request to the server; panics on transport errors.
pub fn call(
    server: &Server,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    http::request(server.http, method, path, headers, body).unwrap_or_else(|e| {
        panic!(
            "{method} {path} failed: {e}; server output:\n{}",
            tail_lines(&server.output(), 40)
        )
    })
}

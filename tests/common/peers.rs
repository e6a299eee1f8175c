//! Real peers of the ruler, started on free loopback ports with their own configuration
//! and data directory: Debian's `prometheus-alertmanager` (alerts read back from its v2 API)
//! and `prometheus` with its remote-write receiver (samples read back with PromQL). Each is
//! killed when its test ends, pass or panic. Without them installed a test is skipped
//! (loudly); under CI it fails, since `.ci/run` installs them.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::TestDir;
use super::http::{Response, encode_query, request};
use super::server::wait_timeout;
use super::tools::{find_program, missing};

/// How long a peer may take to answer `/-/ready` after it starts: Prometheus replays an empty
/// TSDB in well under a second, but a loaded 2-core machine is slower.
pub const PEER_START_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a sent notification may take to show in the peer's API.
pub const VISIBLE_TIMEOUT: Duration = Duration::from_secs(10);

pub const ALERTMANAGER: &str = "prometheus-alertmanager";
pub const PROMETHEUS: &str = "prometheus";

/// A peer process, killed when the test ends, pass or panic.
pub struct Peer {
    name: &'static str,
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Peer {
    /// Starts `program` with `args` (its listen address is added as `--web.listen-address`)
    /// and waits for `/-/ready`.
    pub fn start(name: &'static str, program: &Path, args: &[String], dir: &Path) -> Peer {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log).expect("create the peer's log");
        let child = Command::new(program)
            .args(args)
            .arg(format!("--web.listen-address={addr}"))
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("clone the log file"))
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
        let mut peer = Peer {
            name,
            child,
            addr,
            log,
        };
        peer.wait_ready();
        peer
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + PEER_START_TIMEOUT;
        loop {
            if request(self.addr, "GET", "/-/ready", &[], b"").is_ok_and(|r| r.status == 200) {
                return;
            }
            if let Some(status) = self.child.try_wait().expect("poll the peer") {
                panic!("{} exited with {status}: {}", self.name, self.output());
            }
            assert!(
                Instant::now() < deadline,
                "{} not ready after {PEER_START_TIMEOUT:?}: {}",
                self.name,
                self.output()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn get(&self, path: &str) -> Response {
        let r = request(self.addr, "GET", path, &[], b"")
            .unwrap_or_else(|e| panic!("GET {path} from {}: {e}", self.name));
        assert_eq!(r.status, 200, "GET {path}: {}", r.text());
        r
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        if wait_timeout(&mut self.child, Duration::from_secs(10)).is_none() {
            eprintln!(
                "{} (pid {}) did not exit after SIGKILL",
                self.name,
                self.child.id()
            );
        }
    }
}

/// The installed program, or `None` after the skip-or-fail rule.
pub fn program(name: &str) -> Option<PathBuf> {
    let debian = Path::new("/usr/bin").join(name);
    if debian.is_file() {
        return Some(debian);
    }
    if let Some(found) = find_program(name) {
        return Some(found);
    }
    missing(&format!(
        "`{name}` is not installed (Debian package {name}; .ci/run installs it)"
    ));
    None
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_millis() as i64
}

pub fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

/// Polls `check` until it gives `Some`, for at most [`VISIBLE_TIMEOUT`].
pub fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + VISIBLE_TIMEOUT;
    loop {
        if let Some(found) = check() {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within {VISIBLE_TIMEOUT:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn start_alertmanager(dir: &TestDir) -> Option<Peer> {
    let program = program(ALERTMANAGER)?;
    // Every alert goes to a receiver with no integrations: the test reads the alerts back
    // from the API, not from a notification.
    let config = dir.path().join("alertmanager.yml");
    std::fs::write(
        &config,
        "route:\n  receiver: blackhole\n  group_wait: 0s\nreceivers:\n  - name: blackhole\n",
    )
    .expect("write alertmanager.yml");
    let storage = dir.path().join("alertmanager-data");
    std::fs::create_dir_all(&storage).expect("create the Alertmanager's data dir");
    let args = [
        format!("--config.file={}", config.display()),
        format!("--storage.path={}", storage.display()),
        // No gossip: an empty cluster address keeps it from binding port 9094.
        "--cluster.listen-address=".to_string(),
        "--log.level=warn".to_string(),
    ];
    Some(Peer::start("alertmanager", &program, &args, dir.path()))
}

pub fn start_prometheus(dir: &TestDir) -> Option<Peer> {
    let program = program(PROMETHEUS)?;
    let config = dir.path().join("prometheus.yml");
    // Nothing to scrape: every sample comes through remote write.
    std::fs::write(&config, "global:\n  scrape_interval: 1m\n").expect("write prometheus.yml");
    let storage = dir.path().join("prometheus-data");
    let args = [
        format!("--config.file={}", config.display()),
        format!("--storage.tsdb.path={}", storage.display()),
        "--web.enable-remote-write-receiver".to_string(),
        "--log.level=warn".to_string(),
    ];
    Some(Peer::start("prometheus", &program, &args, dir.path()))
}

/// The result of an instant query, as Prometheus' JSON.
pub fn query(prometheus: &Peer, expr: &str, at_ms: i64) -> serde_json::Value {
    let at = format!("{:.3}", at_ms as f64 / 1000.0);
    let r = prometheus.get(&format!(
        "/api/v1/query?{}",
        encode_query(&[("query", expr), ("time", &at)])
    ));
    let body = r.json();
    assert_eq!(body["status"], "success", "{body}");
    body["data"]["result"].clone()
}

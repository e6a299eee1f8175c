//! The outbox against the real peers it is written for: Debian's `prometheus-alertmanager`
//! and `prometheus` (with its remote-write receiver), each started on a free loopback port
//! with its own configuration and data directory, and read back through their own HTTP APIs.
//!
//! No shardlog server is needed: the tests drive `shardlog::ruler::outbox::Outbox` from the
//! library, as the ruler does. Without the peers installed the tests are skipped (loudly), and
//! under CI they fail, since `.ci/run` installs them.

mod common;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::http::{Response, encode_query, request};
use common::tools::{find_program, missing};
use common::{TestDir, server::wait_timeout};
use shardlog::ruler::outbox::{AlertNotice, Outbox, OutboxConfig, Series};

/// How long a peer may take to answer `/-/ready` after it starts: Prometheus replays an empty
/// TSDB in well under a second, but a loaded 2-core machine is slower.
const PEER_START_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a sent notification may take to show in the peer's API.
const VISIBLE_TIMEOUT: Duration = Duration::from_secs(10);

const ALERTMANAGER: &str = "prometheus-alertmanager";
const PROMETHEUS: &str = "prometheus";

/// A peer process, killed when the test ends, pass or panic.
struct Peer {
    name: &'static str,
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Peer {
    /// Starts `program` with `args` (its listen address is added as `--web.listen-address`)
    /// and waits for `/-/ready`.
    fn start(name: &'static str, program: &Path, args: &[String], dir: &Path) -> Peer {
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

    fn get(&self, path: &str) -> Response {
        let r = request(self.addr, "GET", path, &[], b"")
            .unwrap_or_else(|e| panic!("GET {path} from {}: {e}", self.name));
        assert_eq!(r.status, 200, "GET {path}: {}", r.text());
        r
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn output(&self) -> String {
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
fn program(name: &str) -> Option<PathBuf> {
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

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_millis() as i64
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

/// Polls `check` until it gives `Some`, for at most [`VISIBLE_TIMEOUT`].
fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
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

fn start_alertmanager(dir: &TestDir) -> Option<Peer> {
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

/// Our alert among Alertmanager's active ones, by its `test_run` label.
fn alert_in(alertmanager: &Peer, run: &str) -> Option<serde_json::Value> {
    let alerts = alertmanager.get("/api/v2/alerts").json();
    alerts
        .as_array()
        .expect("/api/v2/alerts is an array")
        .iter()
        .find(|a| a["labels"]["test_run"] == run)
        .cloned()
}

#[test]
fn alertmanager_shows_a_sent_alert_with_its_labels_and_annotations_then_resolves_it() {
    let dir = TestDir::new("notify-alertmanager");
    let Some(alertmanager) = start_alertmanager(&dir) else {
        return;
    };
    // The URL with a trailing slash, as users often write it.
    let outbox = Outbox::start(OutboxConfig {
        alertmanager_urls: vec![format!("{}/", alertmanager.url())],
        timeout: Duration::from_secs(5),
        ..OutboxConfig::default()
    })
    .expect("the outbox starts");
    let run = format!("run-{}", std::process::id());
    let started = now_ms() - 60_000;
    let alert = AlertNotice {
        labels: pairs(&[
            ("alertname", "ShardlogHighErrorRate"),
            ("severity", "page"),
            ("app", "api"),
            ("test_run", &run),
        ]),
        annotations: pairs(&[
            ("summary", "api logs 12 errors a minute"),
            ("description", "{app=\"api\"} |= \"error\" over 1m: 12"),
        ]),
        starts_at_ms: started,
        // Firing: valid for a few resend intervals, as Prometheus sends it.
        ends_at_ms: Some(now_ms() + 5 * 60_000),
        generator_url: "http://shardlog.example:3100/rules".into(),
    };
    assert!(outbox.send_alerts("tenant-a", vec![alert.clone()]));
    assert!(outbox.drain(VISIBLE_TIMEOUT), "the alert was not delivered");
    let stats = outbox.stats();
    assert_eq!(
        (stats.alerts_sent, stats.alerts_errors, stats.alerts_dropped),
        (1, 0, 0),
        "{}",
        alertmanager.output()
    );

    let shown = eventually("the alert in /api/v2/alerts", || {
        alert_in(&alertmanager, &run)
    });
    assert_eq!(shown["labels"]["alertname"], "ShardlogHighErrorRate");
    assert_eq!(shown["labels"]["severity"], "page");
    assert_eq!(shown["labels"]["app"], "api");
    assert_eq!(
        shown["annotations"]["summary"],
        "api logs 12 errors a minute"
    );
    assert_eq!(
        shown["annotations"]["description"],
        "{app=\"api\"} |= \"error\" over 1m: 12"
    );
    assert_eq!(shown["generatorURL"], "http://shardlog.example:3100/rules");
    assert_eq!(shown["status"]["state"], "active");
    let starts_at = shown["startsAt"].as_str().expect("startsAt");
    let parsed =
        time::OffsetDateTime::parse(starts_at, &time::format_description::well_known::Rfc3339)
            .expect("startsAt is RFC 3339");
    assert_eq!(
        parsed.unix_timestamp_nanos() / 1_000_000,
        i128::from(started),
        "{starts_at}"
    );

    // Resolved: the same labels with an end in the past. Alertmanager's API lists only
    // alerts that have not ended.
    let resolved = AlertNotice {
        ends_at_ms: Some(now_ms() - 1_000),
        ..alert
    };
    assert!(outbox.send_alerts("tenant-a", vec![resolved]));
    assert!(outbox.drain(VISIBLE_TIMEOUT));
    assert_eq!(outbox.stats().alerts_sent, 2);
    eventually("the resolved alert gone from /api/v2/alerts", || {
        alert_in(&alertmanager, &run).is_none().then_some(())
    });
    // Still known to Alertmanager, as resolved, in its alert groups' history: the API with
    // the filter for inactive alerts off shows nothing active for this run either.
    let active = alertmanager
        .get(&format!(
            "/api/v2/alerts?{}",
            encode_query(&[
                ("active", "true"),
                ("filter", &format!("test_run=\"{run}\""))
            ])
        ))
        .json();
    assert_eq!(active.as_array().map(Vec::len), Some(0), "{active}");
}

#[test]
fn an_alertmanager_that_is_down_counts_errors_and_the_one_that_is_up_still_gets_the_alert() {
    let dir = TestDir::new("notify-alertmanager-down");
    let Some(alertmanager) = start_alertmanager(&dir) else {
        return;
    };
    let closed = TcpListener::bind("127.0.0.1:0").expect("a free port");
    let down = format!("http://{}", closed.local_addr().expect("its address"));
    drop(closed);
    let outbox = Outbox::start(OutboxConfig {
        alertmanager_urls: vec![down, alertmanager.url()],
        timeout: Duration::from_secs(5),
        ..OutboxConfig::default()
    })
    .expect("the outbox starts");
    let run = format!("down-{}", std::process::id());
    let alert = AlertNotice {
        labels: pairs(&[("alertname", "ShardlogTest"), ("test_run", &run)]),
        annotations: Vec::new(),
        starts_at_ms: now_ms(),
        ends_at_ms: None,
        generator_url: String::new(),
    };
    assert!(outbox.send_alerts("fake", vec![alert]));
    assert!(outbox.drain(VISIBLE_TIMEOUT));
    let stats = outbox.stats();
    assert_eq!(
        (stats.alerts_sent, stats.alerts_errors, stats.alerts_dropped),
        (1, 1, 0)
    );
    eventually("the alert in /api/v2/alerts", || {
        alert_in(&alertmanager, &run)
    });
}

fn start_prometheus(dir: &TestDir) -> Option<Peer> {
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
fn query(prometheus: &Peer, expr: &str, at_ms: i64) -> serde_json::Value {
    let at = format!("{:.3}", at_ms as f64 / 1000.0);
    let r = prometheus.get(&format!(
        "/api/v1/query?{}",
        encode_query(&[("query", expr), ("time", &at)])
    ));
    let body = r.json();
    assert_eq!(body["status"], "success", "{body}");
    body["data"]["result"].clone()
}

#[test]
fn prometheus_stores_remote_written_samples_and_answers_queries_with_them() {
    let dir = TestDir::new("notify-prometheus");
    let Some(prometheus) = start_prometheus(&dir) else {
        return;
    };
    let outbox = Outbox::start(OutboxConfig {
        remote_write_urls: vec![format!("{}/api/v1/write", prometheus.url())],
        timeout: Duration::from_secs(5),
        ..OutboxConfig::default()
    })
    .expect("the outbox starts");
    // Whole seconds, so that the values Prometheus gives back carry the same timestamps.
    let now = now_ms() / 1000 * 1000;
    let times = [now - 60_000, now - 30_000, now];
    let series = vec![
        Series {
            // Out of order on purpose: the outbox sorts them, as remote write requires.
            labels: pairs(&[
                ("job", "shardlog"),
                ("__name__", "app:log_errors:rate1m"),
                ("app", "api"),
            ]),
            samples: times
                .iter()
                .zip([0.5, 1.25, 2.0])
                .map(|(t, v)| (*t, v))
                .collect(),
        },
        Series {
            labels: pairs(&[
                ("__name__", "app:log_errors:rate1m"),
                ("app", "web"),
                ("job", "shardlog"),
            ]),
            samples: vec![(now, 7.0)],
        },
    ];
    assert!(outbox.send_samples("tenant-a", series));
    assert!(outbox.drain(VISIBLE_TIMEOUT));
    let stats = outbox.stats();
    assert_eq!(
        (stats.samples_sent, stats.samples_errors),
        (4, 0),
        "{}",
        prometheus.output()
    );

    let result = eventually("the samples queryable", || {
        let r = query(&prometheus, "app:log_errors:rate1m", now);
        (r.as_array().map(Vec::len) == Some(2)).then_some(r)
    });
    let mut by_app: Vec<(String, String)> = result
        .as_array()
        .expect("a vector")
        .iter()
        .map(|s| {
            assert_eq!(s["metric"]["job"], "shardlog");
            assert_eq!(s["metric"]["__name__"], "app:log_errors:rate1m");
            (
                s["metric"]["app"].as_str().unwrap().to_string(),
                s["value"][1].as_str().unwrap().to_string(),
            )
        })
        .collect();
    by_app.sort();
    assert_eq!(
        by_app,
        [
            ("api".to_string(), "2".to_string()),
            ("web".to_string(), "7".to_string())
        ]
    );
    // Every sample of the series, at its own timestamp.
    let range = query(&prometheus, "app:log_errors:rate1m{app=\"api\"}[2m]", now);
    let values: Vec<(i64, String)> = range[0]["values"]
        .as_array()
        .expect("a matrix")
        .iter()
        .map(|v| {
            (
                (v[0].as_f64().unwrap() * 1000.0).round() as i64,
                v[1].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        values,
        [
            (times[0], "0.5".to_string()),
            (times[1], "1.25".to_string()),
            (times[2], "2".to_string())
        ]
    );

    // A sample Prometheus refuses (another value at a timestamp it has) is a 400: counted as
    // an error, not retried, and the stored value stays.
    let duplicate = vec![Series {
        labels: pairs(&[
            ("__name__", "app:log_errors:rate1m"),
            ("app", "web"),
            ("job", "shardlog"),
        ]),
        samples: vec![(now, 99.0)],
    }];
    assert!(outbox.send_samples("tenant-a", duplicate));
    assert!(outbox.drain(VISIBLE_TIMEOUT));
    let stats = outbox.stats();
    assert_eq!((stats.samples_sent, stats.samples_errors), (4, 1));
    let web = query(&prometheus, "app:log_errors:rate1m{app=\"web\"}", now);
    assert_eq!(web[0]["value"][1], "7");
}

//! The ruler against the real binary: rule files in the rules directory are loaded and
//! reloaded when they change, a bad file is reported with its path and line while the
//! others keep running; the rules API creates, shows and deletes groups per tenant (and
//! never shows one tenant's rules to another); an alerting rule goes pending, then firing
//! after its `for`, with its labels and templated annotations in Prometheus' alerts API;
//! after a kill -9 it is still firing with the same `activeAt`; it resolves when the
//! condition stops. The `[[alert]]` lines of the TOML file fire as the line that crosses
//! their threshold arrives, and post the demo's webhook payload; their counts and alerts
//! survive a kill -9 and a clean restart without firing again.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::http::request;
use common::{Server, ServerOptions, TestDir, now_ns};
use serde_json::{Value, json};

fn start(dir: &TestDir, extra: &[&str]) -> Server {
    let options = ServerOptions {
        syslog: false,
        extra_args: extra.iter().map(|s| s.to_string()).collect(),
        ..ServerOptions::default()
    };
    Server::start_with(dir, &options)
}

fn push_lines(server: &Server, tenant: &str, app: &str, lines: &[&str]) {
    let t0 = now_ns();
    let values: Vec<_> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| json!([(t0 + i as i64).to_string(), l]))
        .collect();
    let body = json!({"streams": [{"stream": {"app": app}, "values": values}]});
    let r = server.push_json_as(tenant, &body);
    assert_eq!(r.status, 204, "{}", r.text());
}

fn send(server: &Server, method: &str, path: &str, tenant: &str, body: &str) -> (u16, String) {
    let r = request(
        server.http,
        method,
        path,
        &[
            ("X-Scope-OrgID", tenant),
            ("Content-Type", "application/yaml"),
        ],
        body.as_bytes(),
    )
    .expect("the server answers");
    (r.status, r.text())
}

fn alerts(server: &Server, tenant: &str) -> Vec<Value> {
    let (status, body) = send(server, "GET", "/prometheus/api/v1/alerts", tenant, "");
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    v["data"]["alerts"].as_array().cloned().unwrap_or_default()
}

/// Polls `f` every 50 ms until it returns `Some`, for at most `secs` seconds.
fn wait_for<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

const RULES: &str = r#"groups:
  - name: errors
    interval: 1s
    rules:
      - alert: HighErrors
        expr: sum by (app) (count_over_time({app="web"} |= "error" [4s])) > 2
        for: 2s
        labels:
          severity: page
        annotations:
          summary: "{{ $labels.app }} logged {{ $value }} errors"
"#;

#[test]
fn rule_files_load_reload_and_report_bad_files_without_stopping_the_others() {
    let dir = TestDir::new("ruler-files");
    let rules = dir.path().join("rules");
    std::fs::create_dir_all(rules.join("team-a")).unwrap();
    std::fs::write(rules.join("team-a/web.yaml"), RULES).unwrap();
    let bad = "groups:\n  - name: broken\n    rules:\n      - alert: X\n        expr: count_over_time({app=\"web\"})\n";
    std::fs::write(rules.join("team-a/broken.yaml"), bad).unwrap();
    let rules_dir = rules.display().to_string();
    let server = start(&dir, &["--rules-dir", &rules_dir]);
    let (status, body) = send(&server, "GET", "/loki/api/v1/rules", "team-a", "");
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("web.yaml:") && body.contains("HighErrors"),
        "{body}"
    );
    assert!(!body.contains("broken"), "{body}");
    // The bad file is reported with its path and the line of its rule.
    let log = wait_for(5, "the bad file's report", || {
        let out = server.output();
        out.contains("broken.yaml:4:").then_some(out)
    });
    assert!(
        log.contains("group \"broken\", rule 1, \"X\": could not parse expression"),
        "{log}"
    );
    let metrics = server.metrics();
    assert!(
        metrics.contains("shardlog_ruler_files_failed 1"),
        "{metrics}"
    );
    // Fixing it loads it within seconds; another tenant sees none of it.
    std::fs::write(
        rules.join("team-a/broken.yaml"),
        bad.replace("})", "}[1m])"),
    )
    .unwrap();
    wait_for(5, "the fixed file", || {
        let (_, body) = send(&server, "GET", "/loki/api/v1/rules", "team-a", "");
        body.contains("broken").then_some(())
    });
    let (status, body) = send(&server, "GET", "/loki/api/v1/rules", "team-b", "");
    assert_eq!((status, body.as_str()), (404, "no rule groups found\n"));
    let (_, body) = send(&server, "GET", "/prometheus/api/v1/rules", "team-b", "");
    assert_eq!(body, r#"{"data":{"groups":[]},"status":"success"}"#);
}

#[test]
fn the_rules_api_creates_shows_and_deletes_groups_per_tenant() {
    let dir = TestDir::new("ruler-api");
    let server = start(&dir, &["--auth-enabled"]);
    let group = "name: g1\ninterval: 30s\nrules:\n  - record: app:lines:count1m\n    expr: sum by (app) (count_over_time({app=\"web\"}[1m]))\n";
    let (status, body) = send(&server, "POST", "/loki/api/v1/rules/team-ns", "a", group);
    assert_eq!(status, 202, "{body}");
    assert_eq!(
        body,
        r#"{"status":"success","data":null,"errorType":"","error":""}"#
    );
    let (status, body) = send(&server, "GET", "/loki/api/v1/rules/team-ns/g1", "a", "");
    assert_eq!(status, 200);
    assert!(body.starts_with("name: g1\ninterval: 30s\n"), "{body}");
    // Written where a rules directory keeps it: the data dir's `rules/<tenant>/<namespace>`.
    let file = server.data_dir.join("rules/a/team-ns");
    assert!(
        std::fs::read_to_string(&file)
            .unwrap()
            .contains("app:lines:count1m")
    );
    // Tenant b sees nothing of a's; without a tenant the API is 401 as every endpoint.
    let (status, _) = send(&server, "GET", "/loki/api/v1/rules/team-ns/g1", "b", "");
    assert_eq!(status, 404);
    let r = request(server.http, "GET", "/loki/api/v1/rules", &[], &[]).unwrap();
    assert_eq!(r.status, 401);
    // A group that does not validate is refused with the reason and changes nothing.
    let (status, body) = send(
        &server,
        "POST",
        "/loki/api/v1/rules/team-ns",
        "a",
        "name: g2\nrules:\n  - alert: A\n    expr: '{app=\"web\"}'\n",
    );
    assert_eq!(status, 400);
    assert!(body.contains("could not parse expression"), "{body}");
    let (status, body) = send(&server, "POST", "/loki/api/v1/rules/..", "a", group);
    assert_eq!(status, 400, "{body}");
    // Prometheus' rules API shows the group and its rule with its health.
    let (_, body) = send(
        &server,
        "GET",
        "/prometheus/api/v1/rules?type=record",
        "a",
        "",
    );
    let v: Value = serde_json::from_str(&body).unwrap();
    let g = &v["data"]["groups"][0];
    assert_eq!(g["name"], "g1");
    assert_eq!(g["file"], "team-ns");
    assert_eq!(g["interval"], 30.0);
    assert_eq!(g["rules"][0]["type"], "recording");
    let (_, body) = send(
        &server,
        "GET",
        "/prometheus/api/v1/rules?type=alert",
        "a",
        "",
    );
    assert_eq!(body, r#"{"data":{"groups":[]},"status":"success"}"#);
    // Deleting the group, then the (now empty) namespace.
    let (status, _) = send(&server, "DELETE", "/loki/api/v1/rules/team-ns/g1", "a", "");
    assert_eq!(status, 202);
    let (status, _) = send(&server, "GET", "/loki/api/v1/rules", "a", "");
    assert_eq!(status, 404);
    assert!(!file.exists());
    let (status, _) = send(&server, "DELETE", "/loki/api/v1/rules/team-ns", "a", "");
    assert_eq!(status, 404);
}

#[test]
fn an_alert_fires_after_for_survives_a_kill_and_resolves() {
    let dir = TestDir::new("ruler-alert");
    let rules = dir.path().join("rules");
    std::fs::create_dir_all(rules.join("fake")).unwrap();
    std::fs::write(rules.join("fake/web.yaml"), RULES).unwrap();
    let rules_dir = rules.display().to_string();
    let flags = [
        "--rules-dir",
        rules_dir.as_str(),
        "--ruler-resend-delay",
        "1s",
    ];
    let mut server = start(&dir, &flags);
    push_lines(
        &server,
        "fake",
        "web",
        &["error a", "error b", "error c", "ok"],
    );
    let first = wait_for(5, "a pending alert", || {
        alerts(&server, "fake").first().cloned()
    });
    let fired = wait_for(8, "the alert firing after `for`", || {
        // Keep the condition true while waiting.
        push_lines(&server, "fake", "web", &["error d", "error e", "error f"]);
        alerts(&server, "fake")
            .into_iter()
            .find(|a| a["state"] == "firing")
    });
    assert_eq!(first["state"], "pending", "{first}");
    assert_eq!(fired["activeAt"], first["activeAt"]);
    assert_eq!(fired["labels"]["alertname"], "HighErrors");
    assert_eq!(fired["labels"]["severity"], "page");
    assert_eq!(fired["labels"]["app"], "web");
    let summary = fired["annotations"]["summary"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(summary.starts_with("web logged "), "{summary}");
    // kill -9, restart: still firing, with the same activeAt, at once.
    server.kill9();
    drop(server);
    let server = start(&dir, &flags);
    let after = alerts(&server, "fake");
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!(after[0]["state"], "firing", "{after:?}");
    assert_eq!(after[0]["activeAt"], fired["activeAt"]);
    // The lines age out of the 4 s window: the alert resolves and leaves the alerts API.
    wait_for(15, "the alert resolving", || {
        alerts(&server, "fake").is_empty().then_some(())
    });
    let (_, body) = send(&server, "GET", "/prometheus/api/v1/rules", "fake", "");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v["data"]["groups"][0]["rules"][0]["state"], "inactive",
        "{v}"
    );
    assert_eq!(v["data"]["groups"][0]["rules"][0]["health"], "ok", "{v}");
}

/// A webhook receiver on loopback: each POST body, with when it arrived.
fn webhook_receiver() -> (String, mpsc::Receiver<(Instant, Value)>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                loop {
                    let mut length = 0usize;
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    loop {
                        let mut h = String::new();
                        if reader.read_line(&mut h).unwrap_or(0) == 0 {
                            return;
                        }
                        if h == "\r\n" {
                            break;
                        }
                        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0; length];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    let at = Instant::now();
                    if let Ok(v) = serde_json::from_slice(&body) {
                        let _ = tx.send((at, v));
                    }
                    let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
                }
            });
        }
    });
    (url, rx)
}

#[test]
fn alert_lines_fire_as_the_crossing_line_arrives() {
    let dir = TestDir::new("ruler-alert-lines");
    let (hook, received) = webhook_receiver();
    let config = dir.path().join("shardlog.toml");
    std::fs::write(
        &config,
        r#"
[[alert]]
name = "HighErrorRate"
level = "error"
threshold = 10
window = "1m"

[[alert]]
name = "DatabaseCritical"
level = "critical"
keyword = "database"
threshold = 3
window = "30s"
"#,
    )
    .unwrap();
    let config = config.display().to_string();
    let server = start(&dir, &["--config", &config, "--webhook-url", &hook]);
    // The two rules, as LogQL, in the rules API.
    let (status, body) = send(
        &server,
        "GET",
        "/loki/api/v1/rules/shardlog-alerts",
        "fake",
        "",
    );
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains(r#"sum(count_over_time({level="critical"} |= "database" [30s])) >= 3"#),
        "{body}"
    );
    assert!(
        body.contains(r#"sum(count_over_time({level="error"} [1m])) >= 10"#),
        "{body}"
    );
    let push = |level: &str, line: &str| {
        let body = json!({"streams": [{"stream": {"app": "db", "level": level},
            "values": [[now_ns().to_string(), line]]}]});
        server.push_json_ok(&body);
    };
    push("critical", "database connection lost");
    push("critical", "disk failure");
    push("error", "database slow");
    push("critical", "database connection lost");
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        alerts(&server, "fake").is_empty(),
        "two lines do not cross 3"
    );
    let crossed = Instant::now();
    push("critical", "database connection lost");
    let (at, payload) = received
        .recv_timeout(Duration::from_secs(10))
        .expect("the webhook is called");
    let latency = at.duration_since(crossed);
    eprintln!("alert latency from the crossing push to the webhook: {latency:?}");
    assert_eq!(payload["rule"], "DatabaseCritical", "{payload}");
    assert_eq!(payload["level"], "critical");
    assert_eq!(payload["count"], 3);
    assert_eq!(payload["window"], "30s");
    assert_eq!(payload["state"], "firing");
    assert!(
        payload["message"]
            .as_str()
            .unwrap()
            .starts_with("3 lines at level critical")
    );
    assert!(
        payload["time"].as_str().unwrap().ends_with('Z'),
        "{payload}"
    );
    let firing = alerts(&server, "fake");
    assert_eq!(firing.len(), 1);
    assert_eq!(firing[0]["labels"]["alertname"], "DatabaseCritical");
    // Ten error lines in a minute fire the other one.
    for i in 0..10 {
        push("error", &format!("request {i} failed"));
    }
    let (_, payload) = received
        .recv_timeout(Duration::from_secs(10))
        .expect("the second alert's webhook");
    assert_eq!(payload["rule"], "HighErrorRate", "{payload}");
    assert_eq!(
        payload["count"], 10,
        "the earlier error line and nine of these"
    );
}

#[test]
fn alert_line_windows_and_alerts_survive_restarts() {
    let dir = TestDir::new("ruler-alert-lines-restart");
    let (hook, received) = webhook_receiver();
    let config = dir.path().join("shardlog.toml");
    std::fs::write(
        &config,
        r#"
[[alert]]
name = "DatabaseCritical"
level = "critical"
keyword = "database"
threshold = 3
window = "5m"
"#,
    )
    .unwrap();
    let config = config.display().to_string();
    let flags = ["--config", config.as_str(), "--webhook-url", hook.as_str()];
    let push = |server: &Server, line: &str| {
        let body = json!({"streams": [{"stream": {"app": "db", "level": "critical"},
            "values": [[now_ns().to_string(), line]]}]});
        server.push_json_ok(&body);
    };
    let mut server = start(&dir, &flags);
    push(&server, "database connection lost");
    push(&server, "database connection lost");
    // The window is saved at most once a second while it changes: after that, a kill -9
    // keeps both lines counted.
    std::thread::sleep(Duration::from_millis(2500));
    server.kill9();
    drop(server);
    let mut server = start(&dir, &flags);
    assert!(alerts(&server, "fake").is_empty(), "two lines do not fire");
    push(&server, "database connection lost");
    let (_, payload) = received
        .recv_timeout(Duration::from_secs(10))
        .expect("the third line, after the restart, fires the alert");
    assert_eq!(payload["state"], "firing", "{payload}");
    assert_eq!(payload["count"], 3, "{payload}");
    let fired = alerts(&server, "fake");
    assert_eq!(fired.len(), 1, "{fired:?}");
    // A clean stop while it fires: it is firing at once after the restart, since the same
    // time, and no second "firing" notice goes out.
    server.terminate_ok();
    drop(server);
    let server = start(&dir, &flags);
    let after = alerts(&server, "fake");
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!(after[0]["state"], "firing", "{after:?}");
    assert_eq!(after[0]["activeAt"], fired[0]["activeAt"]);
    push(&server, "database connection lost");
    std::thread::sleep(Duration::from_secs(2));
    let again: Vec<Value> = received.try_iter().map(|(_, v)| v).collect();
    assert!(
        again.iter().all(|v| v["state"] != "firing"),
        "the restart did not fire it again: {again:?}"
    );
}

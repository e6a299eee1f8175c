//! The ruler end to end with the real peers it is written for (see `common::peers`): an
//! alerting rule fires after its `for`, Debian's `prometheus-alertmanager` shows it with our
//! labels and annotations, a kill -9 and restart of shardlog in between does not re-fire it
//! (Alertmanager keeps its `startsAt`), and it resolves there when the lines stop. A
//! recording rule's samples, and the `ALERTS` series of the alerting rule, reach the real
//! `prometheus` through remote write and are queryable there.

mod common;

use std::time::{Duration, Instant};

use common::peers::{Peer, eventually, now_ms, query, start_alertmanager, start_prometheus};
use common::{Server, ServerOptions, TestDir, now_ns};
use serde_json::{Value, json};

fn start(dir: &TestDir, extra: &[String]) -> Server {
    let options = ServerOptions {
        syslog: false,
        extra_args: extra.to_vec(),
        ..ServerOptions::default()
    };
    Server::start_with(dir, &options)
}

fn push_errors(server: &Server, n: usize) {
    let t0 = now_ns();
    let values: Vec<_> = (0..n)
        .map(|i| json!([(t0 + i as i64).to_string(), format!("GET /api error {i}")]))
        .collect();
    let body = json!({"streams": [{"stream": {"app": "web"}, "values": values}]});
    server.push_json_ok(&body);
}

/// Our alert among Alertmanager's, by its `test_run` label.
fn in_alertmanager(am: &Peer, run: &str) -> Option<Value> {
    am.get("/api/v2/alerts")
        .json()
        .as_array()?
        .iter()
        .find(|a| a["labels"]["test_run"] == run)
        .cloned()
}

fn write_rules(dir: &TestDir, run: &str) -> String {
    let rules = dir.path().join("rules");
    std::fs::create_dir_all(rules.join("fake")).unwrap();
    let text = format!(
        r#"groups:
  - name: web
    interval: 1s
    rules:
      - alert: WebErrors
        expr: sum by (app) (count_over_time({{app="web"}} |= "error" [3s])) > 0
        for: 2s
        labels:
          severity: page
          test_run: {run}
        annotations:
          summary: "{{{{ $labels.app }}}} logs errors"
      - record: app:error_lines:count1m
        expr: sum by (app) (count_over_time({{app="web"}} |= "error" [1m]))
"#
    );
    std::fs::write(rules.join("fake/web.yaml"), text).unwrap();
    rules.display().to_string()
}

#[test]
fn an_alert_reaches_alertmanager_after_for_survives_a_restart_and_resolves() {
    let dir = TestDir::new("ruler-alertmanager");
    let Some(am) = start_alertmanager(&dir) else {
        return;
    };
    let run = format!("run-{}", std::process::id());
    let flags = vec![
        "--rules-dir".to_string(),
        write_rules(&dir, &run),
        "--alertmanager-url".to_string(),
        am.url(),
        "--ruler-resend-delay".to_string(),
        "1s".to_string(),
    ];
    let mut server = start(&dir, &flags);
    let began = Instant::now();
    push_errors(&server, 3);
    // Pending first: nothing in Alertmanager before `for` has passed.
    std::thread::sleep(Duration::from_millis(1200));
    if began.elapsed() < Duration::from_millis(1900) {
        assert!(
            in_alertmanager(&am, &run).is_none(),
            "sent before `for` passed"
        );
    }
    let fired = eventually("the alert in Alertmanager", || {
        push_errors(&server, 1);
        in_alertmanager(&am, &run)
    });
    assert_eq!(fired["labels"]["alertname"], "WebErrors", "{fired}");
    assert_eq!(fired["labels"]["severity"], "page");
    assert_eq!(fired["labels"]["app"], "web");
    assert_eq!(fired["annotations"]["summary"], "web logs errors");
    assert_eq!(fired["status"]["state"], "active", "{fired}");
    let starts_at = fired["startsAt"].clone();
    // kill -9 and restart while the condition holds: the same alert, not a new one.
    server.kill9();
    drop(server);
    let server = start(&dir, &flags);
    push_errors(&server, 1);
    std::thread::sleep(Duration::from_millis(2500));
    push_errors(&server, 1);
    let again = in_alertmanager(&am, &run).expect("still in Alertmanager");
    assert_eq!(
        again["startsAt"], starts_at,
        "re-fired after the restart: {again}"
    );
    // No more errors: the 3 s window empties, the alert resolves in Alertmanager.
    eventually(
        "the alert resolved in Alertmanager",
        || match in_alertmanager(&am, &run) {
            None => Some(()),
            Some(a) if a["status"]["state"] != "active" => Some(()),
            Some(_) => None,
        },
    );
}

#[test]
fn recorded_samples_and_alerts_series_are_queryable_in_prometheus() {
    let dir = TestDir::new("ruler-prometheus");
    let Some(prometheus) = start_prometheus(&dir) else {
        return;
    };
    let run = format!("run-{}", std::process::id());
    let flags = vec![
        "--rules-dir".to_string(),
        write_rules(&dir, &run),
        "--remote-write-url".to_string(),
        format!("{}/api/v1/write", prometheus.url()),
    ];
    let server = start(&dir, &flags);
    push_errors(&server, 5);
    let recorded = eventually("the recorded series in Prometheus", || {
        let r = query(&prometheus, "app:error_lines:count1m", now_ms());
        r.as_array().filter(|a| !a.is_empty()).cloned()
    });
    assert_eq!(recorded[0]["metric"]["app"], "web", "{recorded:?}");
    let value: f64 = recorded[0]["value"][1].as_str().unwrap().parse().unwrap();
    assert!(value >= 5.0, "{recorded:?}");
    let alerts = eventually("ALERTS in Prometheus", || {
        push_errors(&server, 1);
        let r = query(
            &prometheus,
            &format!(r#"ALERTS{{alertname="WebErrors",test_run="{run}"}}"#),
            now_ms(),
        );
        r.as_array().filter(|a| !a.is_empty()).cloned()
    });
    let state = alerts[0]["metric"]["alertstate"].as_str().unwrap();
    assert!(state == "pending" || state == "firing", "{alerts:?}");
    let for_state = query(
        &prometheus,
        &format!(r#"ALERTS_FOR_STATE{{alertname="WebErrors",test_run="{run}"}}"#),
        now_ms(),
    );
    assert!(!for_state.as_array().unwrap().is_empty(), "{for_state}");
}

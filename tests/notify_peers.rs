//! The outbox against the real peers it is written for: Debian's `prometheus-alertmanager`
//! and `prometheus` (with its remote-write receiver), each started on a free loopback port
//! with its own configuration and data directory, and read back through their own HTTP APIs.
//!
//! No shardlog server is needed: the tests drive `shardlog::ruler::outbox::Outbox` from the
//! library, as the ruler does. Without the peers installed the tests are skipped (loudly), and
//! under CI they fail, since `.ci/run` installs them.

mod common;

use std::net::TcpListener;
use std::time::Duration;

use common::TestDir;
use common::http::encode_query;
use common::peers::{
    Peer, VISIBLE_TIMEOUT, eventually, now_ms, pairs, query, start_alertmanager, start_prometheus,
};
use shardlog::ruler::outbox::{AlertNotice, Outbox, OutboxConfig, Series};

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

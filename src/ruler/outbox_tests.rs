use std::time::Duration;

use prost::Message;

use super::*;
use crate::ruler::fake_peer::{FakePeer, Recorded, Reply};
use crate::ruler::remote_write::WriteRequest;

const DRAIN: Duration = Duration::from_secs(20);

fn config() -> OutboxConfig {
    OutboxConfig {
        timeout: Duration::from_secs(5),
        ..OutboxConfig::default()
    }
}

fn alert(n: usize) -> AlertNotice {
    AlertNotice {
        labels: vec![
            ("alertname".into(), "HighErrors".into()),
            ("n".into(), n.to_string()),
        ],
        annotations: vec![("summary".into(), format!("alert {n}"))],
        starts_at_ms: 1_796_518_923_456,
        ends_at_ms: None,
        generator_url: String::new(),
    }
}

fn series(name: &str, samples: usize) -> Series {
    Series {
        labels: vec![("__name__".into(), name.into())],
        samples: (0..samples).map(|i| (1_000 * i as i64, i as f64)).collect(),
    }
}

fn notice(rule: &str) -> WebhookNotice {
    WebhookNotice {
        rule: rule.into(),
        level: "error".into(),
        message: "12 error lines in 1m".into(),
        count: 12,
        window: "1m".into(),
        time_ms: 0,
        labels: Vec::new(),
        state: "firing".into(),
    }
}

/// The `n` labels of the alerts in one Alertmanager request.
fn alert_numbers(request: &Recorded) -> Vec<String> {
    let value: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["labels"]["n"].as_str().unwrap().to_string())
        .collect()
}

fn decode_samples(request: &Recorded) -> WriteRequest {
    let raw = snap::raw::Decoder::new()
        .decompress_vec(&request.body)
        .unwrap();
    WriteRequest::decode(raw.as_slice()).unwrap()
}

#[test]
fn every_alertmanager_gets_every_alert_in_batches_of_64_one_tenant_each() {
    let plain = FakePeer::start(|_, _| Reply::Status(200, ""));
    let prefixed = FakePeer::start(|_, _| Reply::Status(200, ""));
    let outbox = Outbox::start(OutboxConfig {
        alertmanager_urls: vec![plain.url(), format!("{}/am/", prefixed.url())],
        ..config()
    })
    .unwrap();
    assert!(outbox.send_alerts("team-a", (0..130).map(alert).collect()));
    assert!(outbox.send_alerts("team-b", vec![alert(1000), alert(1001)]));
    assert!(outbox.drain(DRAIN));
    for (peer, path) in [(&plain, "/api/v2/alerts"), (&prefixed, "/am/api/v2/alerts")] {
        let requests = peer.requests();
        let sizes: Vec<usize> = requests.iter().map(|r| alert_numbers(r).len()).collect();
        assert_eq!(sizes, [64, 64, 2, 2]);
        let tenants: Vec<&str> = requests
            .iter()
            .map(|r| r.header("X-Scope-OrgID").unwrap())
            .collect();
        assert_eq!(tenants, ["team-a", "team-a", "team-a", "team-b"]);
        let all: Vec<String> = requests.iter().flat_map(alert_numbers).collect();
        let expected: Vec<String> = (0..130).chain(1000..1002).map(|n| n.to_string()).collect();
        assert_eq!(all, expected, "in order, each once");
        for r in &requests {
            assert_eq!((r.method.as_str(), r.target.as_str()), ("POST", path));
            assert_eq!(r.header("Content-Type"), Some("application/json"));
        }
    }
    let stats = outbox.stats();
    assert_eq!(
        (stats.alerts_sent, stats.alerts_errors, stats.alerts_dropped),
        (264, 0, 0)
    );
    assert_eq!(stats.queue_length, 0);
}

#[test]
fn a_failing_alertmanager_is_counted_not_retried_and_the_others_still_get_the_alerts() {
    let failing = FakePeer::start(|_, _| Reply::Status(500, "boom"));
    let working = FakePeer::start(|_, _| Reply::Status(200, ""));
    let outbox = Outbox::start(OutboxConfig {
        alertmanager_urls: vec![failing.url(), working.url()],
        ..config()
    })
    .unwrap();
    assert!(outbox.send_alerts("t", vec![alert(1), alert(2), alert(3)]));
    assert!(outbox.drain(DRAIN));
    assert_eq!(
        failing.requests().len(),
        1,
        "the ruler's resend is the retry"
    );
    assert_eq!(working.requests().len(), 1);
    let stats = outbox.stats();
    assert_eq!(
        (stats.alerts_sent, stats.alerts_errors, stats.alerts_dropped),
        (3, 3, 0)
    );
}

#[test]
fn alerts_no_alertmanager_took_are_dropped_and_a_stalled_one_times_out() {
    let stalled = FakePeer::start(|_, _| Reply::Stall(Duration::from_secs(3)));
    let outbox = Outbox::start(OutboxConfig {
        alertmanager_urls: vec![stalled.url()],
        timeout: Duration::from_millis(200),
        ..config()
    })
    .unwrap();
    let started = Instant::now();
    assert!(outbox.send_alerts("t", vec![alert(1), alert(2)]));
    assert!(outbox.drain(DRAIN));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let stats = outbox.stats();
    assert_eq!(
        (stats.alerts_sent, stats.alerts_errors, stats.alerts_dropped),
        (0, 2, 2)
    );
}

#[test]
fn samples_are_retried_on_5xx_and_connection_failures_until_taken() {
    let peer = FakePeer::start(|n, _| match n {
        0 => Reply::Status(503, "busy"),
        1 => Reply::Hangup,
        _ => Reply::Status(204, ""),
    });
    let outbox = Outbox::start(OutboxConfig {
        remote_write_urls: vec![format!("{}/api/v1/write", peer.url())],
        ..config()
    })
    .unwrap();
    assert!(outbox.send_samples(
        "tenant-1",
        vec![series("errors:rate1m", 3), series("lines:count", 2)]
    ));
    assert!(outbox.drain(DRAIN));
    let requests = peer.requests();
    assert_eq!(requests.len(), 3);
    let last = &requests[2];
    assert_eq!(last.target, "/api/v1/write");
    assert_eq!(last.header("Content-Encoding"), Some("snappy"));
    assert_eq!(last.header("Content-Type"), Some("application/x-protobuf"));
    assert_eq!(
        last.header("X-Prometheus-Remote-Write-Version"),
        Some("0.1.0")
    );
    assert_eq!(last.header("X-Scope-OrgID"), Some("tenant-1"));
    let written = decode_samples(last);
    assert_eq!(written.timeseries.len(), 2);
    assert_eq!(written.timeseries[0].labels[0].value, "errors:rate1m");
    assert_eq!(written.timeseries[0].samples.len(), 3);
    let stats = outbox.stats();
    assert_eq!((stats.samples_sent, stats.samples_errors), (5, 0));
}

#[test]
fn samples_refused_with_4xx_are_not_retried() {
    let peer = FakePeer::start(|_, _| Reply::Status(400, "out of order sample"));
    let outbox = Outbox::start(OutboxConfig {
        remote_write_urls: vec![peer.url()],
        ..config()
    })
    .unwrap();
    assert!(outbox.send_samples("t", vec![series("m", 4)]));
    assert!(outbox.drain(DRAIN));
    assert_eq!(peer.requests().len(), 1);
    let stats = outbox.stats();
    assert_eq!((stats.samples_sent, stats.samples_errors), (0, 4));
}

#[test]
fn retries_stop_after_the_last_one() {
    let peer = FakePeer::start(|_, _| Reply::Status(502, ""));
    let outbox = Outbox::start(OutboxConfig {
        remote_write_urls: vec![peer.url()],
        ..config()
    })
    .unwrap();
    assert!(outbox.send_samples("t", vec![series("m", 1)]));
    assert!(outbox.drain(DRAIN));
    assert_eq!(peer.requests().len(), 1 + RETRIES_MAX as usize);
    assert_eq!(outbox.stats().samples_errors, 1);
}

#[test]
fn samples_are_split_into_requests_of_at_most_2000() {
    let peer = FakePeer::start(|_, _| Reply::Status(204, ""));
    let outbox = Outbox::start(OutboxConfig {
        remote_write_urls: vec![peer.url()],
        ..config()
    })
    .unwrap();
    // 1500 + 1500 do not fit one request; a single series of 2500 goes alone.
    assert!(outbox.send_samples(
        "t",
        vec![
            series("a", 1500),
            series("b", 1500),
            series("c", 2500),
            series("d", 10)
        ]
    ));
    assert!(outbox.drain(DRAIN));
    let per_request: Vec<Vec<usize>> = peer
        .requests()
        .iter()
        .map(|r| {
            decode_samples(r)
                .timeseries
                .iter()
                .map(|t| t.samples.len())
                .collect()
        })
        .collect();
    assert_eq!(per_request, [vec![1500], vec![1500], vec![2500], vec![10]]);
    assert_eq!(outbox.stats().samples_sent, 5510);
}

#[test]
fn a_full_queue_drops_the_oldest_counts_them_and_says_so() {
    let peer = FakePeer::start(|_, _| Reply::Status(200, ""));
    let outbox = Outbox::start(OutboxConfig {
        alertmanager_urls: vec![peer.url()],
        remote_write_urls: vec![peer.url()],
        queue_capacity: 3,
        ..config()
    })
    .unwrap();
    assert!(!outbox.send_alerts("t", (0..5).map(alert).collect()));
    assert!(!outbox.send_samples("t", vec![series("old", 2), series("new", 3)]));
    assert!(outbox.drain(DRAIN));
    let delivered: Vec<String> = peer
        .requests()
        .iter()
        .filter(|r| r.target == "/api/v2/alerts")
        .flat_map(alert_numbers)
        .collect();
    assert_eq!(delivered, ["2", "3", "4"], "the newest three");
    let written: Vec<String> = peer
        .requests()
        .iter()
        .filter(|r| r.target == "/")
        .flat_map(|r| decode_samples(r).timeseries)
        .map(|t| t.labels[0].value.clone())
        .collect();
    assert_eq!(written, ["new"]);
    let stats = outbox.stats();
    assert_eq!((stats.alerts_sent, stats.alerts_dropped), (3, 2));
    assert_eq!((stats.samples_sent, stats.samples_dropped), (3, 2));
}

#[test]
fn a_notice_queued_behind_a_slow_webhook_overflows_a_queue_of_one() {
    let peer = FakePeer::start(|n, _| match n {
        0 => Reply::Stall(Duration::from_millis(500)),
        _ => Reply::Status(200, ""),
    });
    let outbox = Outbox::start(OutboxConfig {
        webhook_urls: vec![format!("{}/hook", peer.url())],
        queue_capacity: 1,
        ..config()
    })
    .unwrap();
    assert!(outbox.send_webhook(notice("first")));
    // Once the thread holds the first, the queue has room for exactly one more.
    let until = Instant::now() + Duration::from_secs(5);
    while outbox.stats().queue_length > 0 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(outbox.send_webhook(notice("second")));
    assert!(!outbox.send_webhook(notice("third")));
    assert!(outbox.drain(DRAIN));
    let rules: Vec<String> = peer
        .requests()
        .iter()
        .map(|r| {
            assert_eq!(r.target, "/hook");
            assert_eq!(r.header("Content-Type"), Some("application/json"));
            let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
            v["rule"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(rules, ["first", "third"]);
    let stats = outbox.stats();
    assert_eq!((stats.webhooks_sent, stats.webhooks_dropped), (2, 1));
}

#[test]
fn webhook_failures_that_may_pass_are_retried() {
    let peer = FakePeer::start(|n, _| match n {
        0 => Reply::Status(500, ""),
        _ => Reply::Status(200, ""),
    });
    let outbox = Outbox::start(OutboxConfig {
        webhook_urls: vec![peer.url()],
        ..config()
    })
    .unwrap();
    assert!(outbox.send_webhook(notice("r")));
    assert!(outbox.drain(DRAIN));
    assert_eq!(peer.requests().len(), 2);
    let stats = outbox.stats();
    assert_eq!((stats.webhooks_sent, stats.webhooks_errors), (1, 0));
}

#[test]
fn bad_urls_stop_the_start_with_the_flag_and_the_url() {
    let error = Outbox::start(OutboxConfig {
        alertmanager_urls: vec!["http://ok:9093".into(), "https://am:9093".into()],
        ..config()
    })
    .err()
    .unwrap();
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
    let text = error.to_string();
    assert!(text.contains("--alertmanager-url"), "{text}");
    assert!(text.contains("https://am:9093"), "{text}");
    let error = Outbox::start(OutboxConfig {
        remote_write_urls: vec!["prometheus:9090".into()],
        ..config()
    })
    .err()
    .unwrap();
    assert!(error.to_string().contains("--remote-write-url"), "{error}");
    let error = Outbox::start(OutboxConfig {
        timeout: Duration::ZERO,
        ..config()
    })
    .err()
    .unwrap();
    assert!(error.to_string().contains("--notify-timeout"), "{error}");
}

#[test]
fn with_nowhere_to_send_everything_is_accepted_and_nothing_counted() {
    for outbox in [Outbox::disabled(), Outbox::start(config()).unwrap()] {
        assert!(outbox.send_alerts("t", vec![alert(1)]));
        assert!(outbox.send_webhook(notice("r")));
        assert!(outbox.send_samples("t", vec![series("m", 1)]));
        assert!(outbox.drain(Duration::from_millis(1)));
        assert_eq!(outbox.stats(), OutboxStats::default());
    }
}

#[test]
fn an_invalid_tenant_is_refused_and_counted() {
    let peer = FakePeer::start(|_, _| Reply::Status(200, ""));
    let outbox = Outbox::start(OutboxConfig {
        alertmanager_urls: vec![peer.url()],
        remote_write_urls: vec![peer.url()],
        ..config()
    })
    .unwrap();
    assert!(!outbox.send_alerts("bad\r\nX-Injected: 1", vec![alert(1)]));
    assert!(!outbox.send_samples("", vec![series("m", 2)]));
    assert!(outbox.drain(DRAIN));
    assert!(peer.requests().is_empty());
    let stats = outbox.stats();
    assert_eq!((stats.alerts_dropped, stats.samples_dropped), (1, 2));
}

#[test]
fn the_outbox_is_send_and_sync_and_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<Outbox>();
    let peer = FakePeer::start(|_, _| Reply::Status(200, ""));
    let outbox = Outbox::start(OutboxConfig {
        alertmanager_urls: vec![peer.url()],
        ..config()
    })
    .unwrap();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let outbox = outbox.clone();
            std::thread::spawn(move || {
                for i in 0..25 {
                    assert!(outbox.send_alerts("t", vec![alert(t * 100 + i)]));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert!(outbox.drain(DRAIN));
    assert_eq!(outbox.stats().alerts_sent, 100);
    let mut all: Vec<String> = peer.requests().iter().flat_map(alert_numbers).collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 100);
}

#[test]
fn metrics_carry_prometheus_names_and_the_counts() {
    let peer = FakePeer::start(|_, _| Reply::Status(200, ""));
    let outbox = Outbox::start(OutboxConfig {
        alertmanager_urls: vec![peer.url()],
        remote_write_urls: vec![peer.url()],
        ..config()
    })
    .unwrap();
    assert!(outbox.send_alerts("t", vec![alert(1), alert(2)]));
    assert!(outbox.send_samples("t", vec![series("m", 7)]));
    assert!(outbox.drain(DRAIN));
    let mut text = String::new();
    outbox.render_metrics(&mut text);
    for line in [
        "shardlog_notifications_sent_total{kind=\"alertmanager\"} 2",
        "shardlog_notifications_sent_total{kind=\"webhook\"} 0",
        "shardlog_notifications_errors_total{kind=\"alertmanager\"} 0",
        "shardlog_notifications_dropped_total{kind=\"alertmanager\"} 0",
        "shardlog_notifications_queue_length 0",
        "shardlog_notifications_queue_capacity 10000",
        "shardlog_notifications_alertmanagers_discovered 1",
        "shardlog_remote_write_samples_total 7",
        "shardlog_remote_write_samples_failed_total 0",
        "shardlog_remote_write_samples_dropped_total 0",
        "shardlog_remote_write_samples_pending 0",
        "# TYPE shardlog_notifications_sent_total counter",
        "# TYPE shardlog_notifications_queue_length gauge",
    ] {
        assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
    }
    // Every sample line belongs to a family declared just before it.
    for l in text.lines().filter(|l| !l.starts_with('#')) {
        let name = l.split(['{', ' ']).next().unwrap();
        assert!(text.contains(&format!("# TYPE {name} ")), "{l}");
    }
}

#[test]
fn the_thread_ends_when_the_last_handle_is_dropped_even_with_work_queued() {
    let peer = FakePeer::start(|_, _| Reply::Stall(Duration::from_millis(300)));
    let outbox = Outbox::start(OutboxConfig {
        alertmanager_urls: vec![peer.url()],
        ..config()
    })
    .unwrap();
    let shared = outbox.shared_weak();
    let clone = outbox.clone();
    assert!(outbox.send_alerts("t", vec![alert(1)]));
    assert!(outbox.send_alerts("u", vec![alert(2)]));
    drop(outbox);
    // A clone keeps it running.
    std::thread::sleep(Duration::from_millis(50));
    assert!(shared.upgrade().is_some());
    drop(clone);
    // The request under way finishes (or times out); what is still queued is dropped, and
    // the thread lets go of the queues.
    let until = Instant::now() + Duration::from_secs(10);
    while shared.upgrade().is_some() {
        assert!(
            Instant::now() < until,
            "the notifier thread is still running"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        peer.requests().len(),
        1,
        "the queued batch was not sent after close"
    );
}

#[test]
fn alerts_queued_behind_samples_go_before_them() {
    let peer = FakePeer::start(|n, _| match n {
        0 => Reply::Stall(Duration::from_millis(300)),
        _ => Reply::Status(200, ""),
    });
    let outbox = Outbox::start(OutboxConfig {
        alertmanager_urls: vec![peer.url()],
        remote_write_urls: vec![format!("{}/write", peer.url())],
        ..config()
    })
    .unwrap();
    assert!(outbox.send_samples("t", vec![series("first", 1)]));
    let until = Instant::now() + Duration::from_secs(5);
    while outbox.stats().samples_pending > 0 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(5));
    }
    // The thread is inside the first (stalled) request: these two wait behind it.
    assert!(outbox.send_samples("t", vec![series("second", 1)]));
    assert!(outbox.send_alerts("t", vec![alert(1)]));
    assert!(outbox.drain(DRAIN));
    let targets: Vec<String> = peer.requests().into_iter().map(|r| r.target).collect();
    assert_eq!(targets, ["/write", "/api/v2/alerts", "/write"]);
}

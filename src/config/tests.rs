use clap::Parser;

use super::*;

#[derive(Parser)]
struct Flags {
    #[command(flatten)]
    args: ServeArgs,
}

fn flags(list: &[&str]) -> Result<ServeArgs, String> {
    let mut argv = vec!["shardlog"];
    argv.extend_from_slice(list);
    Flags::try_parse_from(argv)
        .map(|f| f.args)
        .map_err(|e| e.to_string())
}

fn file(text: &str) -> Result<ServeArgs, String> {
    toml::from_str(text).map_err(|e| e.to_string())
}

#[test]
fn defaults_resolve() {
    let c = ServeArgs::default().resolve(2).unwrap();
    assert_eq!(c.cores, 2);
    assert_eq!(c.http_addr.port(), 3100);
    assert_eq!(c.syslog_tcp_addr.unwrap().port(), 5514);
    assert_eq!(c.data_dir, PathBuf::from("./shardlog-data"));
    assert_eq!(c.syslog_tenant, "fake");
    assert_eq!(c.volatile_data_dir, VolatilePolicy::Refuse);
    assert_eq!(c.wal_commit_interval, Duration::from_millis(1));
    assert_eq!(c.future_skew_max, Duration::from_secs(600));
}

#[test]
fn errors_name_the_key() {
    let e = ServeArgs {
        cores: Some(0),
        ..Default::default()
    }
    .resolve(2)
    .unwrap_err();
    assert!(e.0.contains("`cores`") && e.0.contains("--cores"), "{e}");
    let e = ServeArgs {
        http_addr: Some("nonsense".into()),
        ..Default::default()
    }
    .resolve(2)
    .unwrap_err();
    assert!(e.0.contains("--http-addr"), "{e}");
    let e = ServeArgs {
        cores: Some(64),
        ..Default::default()
    }
    .resolve(2)
    .unwrap_err();
    assert!(e.0.contains("online"), "{e}");
}

#[test]
fn empty_syslog_addr_turns_listener_off() {
    let c = ServeArgs {
        syslog_udp_addr: Some(String::new()),
        ..Default::default()
    }
    .resolve(1)
    .unwrap();
    assert!(c.syslog_udp_addr.is_none());
    assert!(c.syslog_tcp_addr.is_some());
}

#[test]
fn a_bare_port_means_every_interface() {
    let c = flags(&[
        "--http-addr",
        ":3100",
        "--syslog-tcp-addr",
        ":514",
        "--syslog-udp-addr",
        "127.0.0.1:9",
    ])
    .unwrap()
    .resolve(1)
    .unwrap();
    assert_eq!(c.http_addr, "0.0.0.0:3100".parse::<SocketAddr>().unwrap());
    assert_eq!(c.syslog_tcp_addr, Some("0.0.0.0:514".parse().unwrap()));
    assert_eq!(c.syslog_udp_addr, Some("127.0.0.1:9".parse().unwrap()));
    let c = file("syslog_udp_addr = \":5514\"\n")
        .unwrap()
        .resolve(1)
        .unwrap();
    assert_eq!(c.syslog_udp_addr, Some("0.0.0.0:5514".parse().unwrap()));
    for bad_addr in [":", ":http", ":99999", "3100"] {
        let e = flags(&["--http-addr", bad_addr])
            .unwrap()
            .resolve(1)
            .unwrap_err();
        assert!(e.0.contains("--http-addr") && e.0.contains(":PORT"), "{e}");
    }
}

#[test]
fn sizes_take_units_in_flags_and_file() {
    let c = flags(&[
        "--line-bytes-max",
        "64KiB",
        "--push-body-bytes-max",
        "4MiB",
        "--wal-segment-bytes-max",
        "16MiB",
        "--heads-bytes-max",
        "1GB",
        "--memory-max",
        "8GiB",
        "--retention-max-bytes",
        "500GiB",
        "--syslog-frame-bytes-max",
        "8192",
    ])
    .unwrap()
    .resolve(1)
    .unwrap();
    assert_eq!(c.line_bytes_max, 64 << 10);
    assert_eq!(c.push_body_bytes_max, 4 << 20);
    assert_eq!(c.wal_segment_bytes_max, 16 << 20);
    assert_eq!(c.heads_bytes_max, 1_000_000_000);
    assert_eq!(c.memory.memory_max, 8 << 30);
    // A share that the budget cannot hold is refused by name, before anything starts.
    let e = flags(&["--heads-bytes-max", "1GB", "--memory-max", "256MiB"])
        .unwrap()
        .resolve(1)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("memory_max") && e.contains("heads_bytes_max"),
        "{e}"
    );
    assert_eq!(c.retention_max_bytes, 500 << 30);
    assert_eq!(c.syslog_frame_bytes_max, 8192);
    let c = file(
        "line_bytes_max = \"128KiB\"\nseal_bytes = 65536\ncompaction_bytes_per_second = \"32MiB\"\n",
    )
    .unwrap()
    .resolve(1)
    .unwrap();
    assert_eq!(c.line_bytes_max, 128 << 10);
    assert_eq!(c.seal_bytes, 65536);
    assert_eq!(c.compaction_bytes_per_second, 32 << 20);
}

#[test]
fn compaction_cold_after_defaults_to_an_hour_and_can_be_turned_off() {
    let cold = |args: &[&str]| {
        flags(args)
            .unwrap()
            .resolve(1)
            .map(|c| c.compaction_cold_after)
    };
    assert_eq!(cold(&[]).unwrap(), Some(Duration::from_secs(3600)));
    assert_eq!(
        cold(&["--compaction-cold-after", "2d"]).unwrap(),
        Some(Duration::from_secs(2 * 86400))
    );
    assert_eq!(cold(&["--compaction-cold-after", "off"]).unwrap(), None);
    assert_eq!(cold(&["--compaction-cold-after", "0"]).unwrap(), None);
    assert_eq!(cold(&["--compaction-cold-after", "0s"]).unwrap(), None);
    let e = cold(&["--compaction-cold-after", "1s"])
        .unwrap_err()
        .to_string();
    assert!(e.contains("compaction_cold_after"), "{e}");
    let c = file("compaction_cold_after = \"off\"\n")
        .unwrap()
        .resolve(1)
        .unwrap();
    assert_eq!(c.compaction_cold_after, None);
}

#[test]
fn bad_sizes_name_the_key_and_the_forms() {
    let e = flags(&["--line-bytes-max", "8XB"]).unwrap_err();
    assert!(e.contains("--line-bytes-max") && e.contains("8MiB"), "{e}");
    let e = file("line_bytes_max = \"8XB\"\n").unwrap_err();
    assert!(e.contains("line_bytes_max") && e.contains("8MiB"), "{e}");
    // Out of range: the message shows the bounds with units.
    let e = flags(&["--line-bytes-max", "17MiB"])
        .unwrap()
        .resolve(1)
        .unwrap_err();
    assert!(
        e.0.contains("--line-bytes-max") && e.0.contains("16MiB"),
        "{e}"
    );
    let e = flags(&["--wal-segment-bytes-max", "1100000"])
        .unwrap()
        .resolve(1)
        .unwrap_err();
    assert!(e.0.contains("4KiB"), "{e}");
}

#[test]
fn durations_take_units_and_the_older_forms_still_work() {
    let c = flags(&["--wal-commit-interval", "500us", "--future-skew-max", "1h"])
        .unwrap()
        .resolve(1)
        .unwrap();
    assert_eq!(c.wal_commit_interval, Duration::from_micros(500));
    assert_eq!(c.future_skew_max, Duration::from_secs(3600));
    let c = flags(&[
        "--wal-commit-interval-us",
        "250",
        "--future-skew-seconds-max",
        "30",
    ])
    .unwrap()
    .resolve(1)
    .unwrap();
    assert_eq!(c.wal_commit_interval, Duration::from_micros(250));
    assert_eq!(c.future_skew_max, Duration::from_secs(30));
    let c = file("wal_commit_interval_us = 0\nfuture_skew_seconds_max = 60\n")
        .unwrap()
        .resolve(1)
        .unwrap();
    assert_eq!(c.wal_commit_interval, Duration::ZERO);
    assert_eq!(c.future_skew_max, Duration::from_secs(60));
    let c = file("wal_commit_interval = \"2ms\"\nfuture_skew_max = \"10m\"\n")
        .unwrap()
        .resolve(1)
        .unwrap();
    assert_eq!(c.wal_commit_interval, Duration::from_millis(2));
    assert_eq!(c.future_skew_max, Duration::from_secs(600));
}

#[test]
fn the_two_forms_of_one_key_do_not_mix() {
    let e = flags(&[
        "--wal-commit-interval",
        "1ms",
        "--wal-commit-interval-us",
        "5",
    ])
    .unwrap_err();
    assert!(e.contains("--wal-commit-interval"), "{e}");
    let e = file("future_skew_max = \"1m\"\nfuture_skew_seconds_max = 5\n")
        .unwrap()
        .resolve(1)
        .unwrap_err();
    assert!(e.0.contains("future_skew_seconds_max"), "{e}");
    // A flag in either form replaces both forms of the file.
    let from_file = file("wal_commit_interval_us = 5\n").unwrap();
    let c = flags(&["--wal-commit-interval", "3ms"])
        .unwrap()
        .over(from_file)
        .resolve(1)
        .unwrap();
    assert_eq!(c.wal_commit_interval, Duration::from_millis(3));
}

#[test]
fn bad_durations_name_the_key_and_the_forms() {
    for (args, key) in [
        (["--seal-age", "5"], "--seal-age"),
        (["--future-skew-max", "ten minutes"], "--future-skew-max"),
        (["--wal-commit-interval", "2s"], "--wal-commit-interval"),
        (["--partition", "90m"], "--partition"),
    ] {
        let e = flags(&args).unwrap().resolve(1).unwrap_err();
        assert!(e.0.contains(key), "{e}");
    }
    let e = flags(&["--seal-age", "5"]).unwrap().resolve(1).unwrap_err();
    assert!(
        e.0.contains("a unit is needed") && e.0.contains("500ms"),
        "{e}"
    );
    let e = flags(&["--wal-commit-interval", "2s"])
        .unwrap()
        .resolve(1)
        .unwrap_err();
    assert!(e.0.contains("between 0 and 1s"), "{e}");
}

#[test]
fn volatile_data_dir_flag_and_key() {
    let c = flags(&["--allow-volatile-data-dir"])
        .unwrap()
        .resolve(1)
        .unwrap();
    assert_eq!(c.volatile_data_dir, VolatilePolicy::Allow);
    let c = file("allow_volatile_data_dir = true\n")
        .unwrap()
        .resolve(1)
        .unwrap();
    assert_eq!(c.volatile_data_dir, VolatilePolicy::Allow);
}

#[test]
fn file_keys_and_flag_precedence() {
    let file: ServeArgs =
        toml::from_str("data_dir = \"/var/lib/x\"\ncores = 1\nhttp_addr = \"127.0.0.1:9\"\n")
            .unwrap();
    let flags = ServeArgs {
        cores: Some(2),
        ..Default::default()
    };
    let c = flags.over(file).resolve(2).unwrap();
    assert_eq!(c.cores, 2);
    assert_eq!(c.data_dir, PathBuf::from("/var/lib/x"));
    assert_eq!(c.http_addr.port(), 9);
    let unknown: Result<ServeArgs, _> = toml::from_str("no_such_key = 1");
    assert!(unknown.unwrap_err().to_string().contains("no_such_key"));
}

#[test]
fn listen_summary_reads_as_words() {
    let c = flags(&["--http-addr", ":3100", "--syslog-udp-addr", ""])
        .unwrap()
        .resolve(1)
        .unwrap();
    assert_eq!(
        c.listen_summary(),
        "http 0.0.0.0:3100, syslog tcp 0.0.0.0:5514, syslog udp off"
    );
}

#[test]
fn admission_keys() {
    let c = ServeArgs::default().resolve(2).unwrap();
    assert_eq!(c.connections_max, None, "derived at start");
    assert_eq!(
        c.request_bodies_bytes_max as u64,
        c.memory.request_bodies_bytes_max
    );
    let from_file = file("connections_max = 500\nrequest_bodies_bytes_max = \"64MiB\"\n").unwrap();
    let c = ServeArgs::default().over(from_file).resolve(2).unwrap();
    assert_eq!(c.connections_max, Some(500));
    assert_eq!(c.request_bodies_bytes_max, 64 << 20);
    let c = flags(&["--request-bodies-bytes-max", "40MiB"])
        .unwrap()
        .resolve(2)
        .unwrap();
    assert_eq!(c.request_bodies_bytes_max, 40 << 20);
    // A budget that could not hold the largest push would refuse it forever.
    let e = ServeArgs {
        request_bodies_bytes_max: Some(1 << 20),
        ..Default::default()
    }
    .resolve(2)
    .unwrap_err();
    assert!(e.0.contains("--request-bodies-bytes-max"), "{e}");
    let derived = ServeArgs {
        connections_max: Some(0),
        ..Default::default()
    };
    assert_eq!(derived.resolve(2).unwrap().connections_max, None);
    let e = ServeArgs {
        connections_max: Some(CONNECTIONS_MAX_LIMIT + 1),
        ..Default::default()
    }
    .resolve(2)
    .unwrap_err();
    assert!(e.0.contains("--connections-max"), "{e}");
}

#[test]
fn query_cpu_shares_are_fractions_within_their_ranges() {
    let d = ServeArgs::default().resolve(2).unwrap();
    assert_eq!(d.query.cpu_share_min, QUERY_CPU_SHARE_MIN_DEFAULT);
    assert_eq!(d.query.cpu_headroom, QUERY_CPU_HEADROOM_DEFAULT);
    let c = flags(&["--query-cpu-share-min", "1", "--query-cpu-headroom", "0"])
        .unwrap()
        .resolve(2)
        .unwrap();
    assert_eq!((c.query.cpu_share_min, c.query.cpu_headroom), (1.0, 0.0));
    let c = file("query_cpu_share_min = 0.25\nquery_cpu_headroom = 0.5\n")
        .unwrap()
        .resolve(2)
        .unwrap();
    assert_eq!((c.query.cpu_share_min, c.query.cpu_headroom), (0.25, 0.5));
    for (key, bad) in [
        ("--query-cpu-share-min", "0"),
        ("--query-cpu-share-min", "1.5"),
        ("--query-cpu-headroom", "0.95"),
        ("--query-cpu-headroom", "-0.1"),
    ] {
        let e = flags(&[&format!("{key}={bad}")])
            .unwrap()
            .resolve(2)
            .unwrap_err();
        assert!(
            e.0.contains(&key[2..].replace('-', "_")),
            "{key} {bad}: {e}"
        );
    }
}

#[test]
fn notification_keys_from_flags_and_file() {
    let c = ServeArgs::default().resolve(1).unwrap();
    assert!(c.outbox.alertmanager_urls.is_empty());
    assert_eq!(c.outbox.timeout, Duration::from_secs(10));
    // Repeated flags and commas, as Loki's -ruler.alertmanager-url takes them.
    let c = flags(&[
        "--alertmanager-url",
        "http://am1:9093,http://am2:9093/prefix/",
        "--alertmanager-url",
        "http://am3:9093",
        "--remote-write-url",
        "http://prometheus:9090/api/v1/write",
        "--webhook-url",
        "http://hooks/alert",
        "--notify-timeout",
        "2s",
    ])
    .unwrap()
    .resolve(1)
    .unwrap();
    assert_eq!(
        c.outbox.alertmanager_urls,
        [
            "http://am1:9093",
            "http://am2:9093/prefix/",
            "http://am3:9093"
        ]
    );
    assert_eq!(
        c.outbox.remote_write_urls,
        ["http://prometheus:9090/api/v1/write"]
    );
    assert_eq!(c.outbox.webhook_urls, ["http://hooks/alert"]);
    assert_eq!(c.outbox.timeout, Duration::from_secs(2));
    // The file takes a list or one comma-separated string; flags win over it.
    let from_file = file(
        "alertmanager_url = \"http://a:1, http://b:2\"\nwebhook_url = [\"http://w/x\"]\n\
         notify_timeout = \"30s\"\n",
    )
    .unwrap();
    let c = flags(&["--webhook-url", "http://flag/y"])
        .unwrap()
        .over(from_file)
        .resolve(1)
        .unwrap();
    assert_eq!(c.outbox.alertmanager_urls, ["http://a:1", "http://b:2"]);
    assert_eq!(c.outbox.webhook_urls, ["http://flag/y"]);
    assert_eq!(c.outbox.timeout, Duration::from_secs(30));
}

#[test]
fn a_bad_notification_url_or_timeout_names_its_key_and_the_url() {
    for (args, key, says) in [
        (
            &["--alertmanager-url", "https://am:9093"][..],
            "--alertmanager-url",
            "https://am:9093",
        ),
        (
            &["--remote-write-url", "prometheus:9090"][..],
            "--remote-write-url",
            "prometheus:9090",
        ),
        (
            &["--webhook-url", "http://h:0/x"][..],
            "--webhook-url",
            "http://h:0/x",
        ),
        (&["--notify-timeout", "0"][..], "--notify-timeout", "zero"),
        (&["--notify-timeout", "2h"][..], "--notify-timeout", "10m"),
    ] {
        let e = flags(args).unwrap().resolve(1).unwrap_err();
        assert!(e.0.contains(key) && e.0.contains(says), "{args:?}: {e}");
    }
}

#[test]
fn discovery_keys_default_to_loki_and_turn_off() {
    use crate::ingest::discovery::{DISCOVER_SERVICE_NAME_DEFAULT, LevelDiscovery};
    let d = ServeArgs::default()
        .resolve(2)
        .unwrap()
        .tenant_limits
        .discovery;
    assert_eq!(
        d.service_name_from.len(),
        DISCOVER_SERVICE_NAME_DEFAULT.len()
    );
    assert_eq!(d.log_levels, LevelDiscovery::On);
    let off = flags(&["--discover-service-name=", "--discover-log-levels=false"])
        .unwrap()
        .resolve(2)
        .unwrap()
        .tenant_limits
        .discovery;
    assert!(off.service_name_from.is_empty());
    assert_eq!(off.log_levels, LevelDiscovery::Off);
    let some = flags(&[
        "--discover-service-name",
        "svc,app",
        "--discover-service-name",
        "job",
    ])
    .unwrap()
    .resolve(2)
    .unwrap()
    .tenant_limits
    .discovery;
    assert_eq!(&*some.service_name_from, &["svc", "app", "job"]);
    let from_file = file("discover_service_name = []\ndiscover_log_levels = false\n")
        .unwrap()
        .resolve(2)
        .unwrap()
        .tenant_limits
        .discovery;
    assert!(from_file.service_name_from.is_empty());
    assert_eq!(from_file.log_levels, LevelDiscovery::Off);
    let e = flags(&["--discover-service-name", "k8s.pod"])
        .unwrap()
        .resolve(2)
        .unwrap_err();
    assert!(
        e.0.contains("--discover-service-name") && e.0.contains("k8s.pod"),
        "{e}"
    );
}

//! Configuration of the real binary: bad flag values and bad TOML stop the server at once with
//! a non-zero exit and a message naming the key at fault; a TOML file with the same keys as
//! the flags configures a working server; flags override the file.

mod common;

use std::io::Write;
use std::net::TcpStream;

use common::loki::{metric_sum, parse_metrics};
use common::server::{free_ports, run_to_exit};
use common::{Server, TestDir, now_ns};
use serde_json::json;

/// How long a configuration error may take to stop the process: it is found before any
/// executor starts, so a second is generous; ten allow for a loaded machine.
const CONFIG_ERROR_EXIT_MS: u64 = 10_000;

/// Runs `shardlog serve` with `args`, expects a quick non-zero exit, and returns its output.
fn rejected(args: &[&str]) -> String {
    let mut full = vec!["serve"];
    full.extend_from_slice(args);
    let (status, output) = run_to_exit(&full, CONFIG_ERROR_EXIT_MS);
    assert!(
        !status.success(),
        "`shardlog {}` should fail, exited {status}; output:\n{output}",
        full.join(" ")
    );
    assert!(
        !output.trim().is_empty(),
        "`shardlog {}` failed silently",
        full.join(" ")
    );
    output
}

fn assert_names(output: &str, keys: &[&str]) {
    assert!(
        keys.iter().any(|key| output.contains(key)),
        "the message should name one of {keys:?}; it was:\n{output}"
    );
}

#[test]
fn bad_flag_values_name_the_flag() {
    assert_names(&rejected(&["--cores", "0"]), &["cores"]);
    assert_names(&rejected(&["--cores", "many"]), &["cores"]);
    assert_names(
        &rejected(&["--http-addr", "nonsense"]),
        &["http-addr", "http_addr"],
    );
    assert_names(
        &rejected(&["--syslog-tcp-addr", "127.0.0.1:99999"]),
        &["syslog-tcp-addr", "syslog_tcp_addr"],
    );
    assert_names(&rejected(&["--no-such-flag"]), &["no-such-flag"]);
    // Sizes and durations: the key and the accepted forms.
    let out = rejected(&["--line-bytes-max", "8XB"]);
    assert_names(&out, &["line-bytes-max"]);
    assert_names(&out, &["8MiB"]);
    let out = rejected(&["--seal-age", "5"]);
    assert_names(&out, &["seal-age"]);
    assert_names(&out, &["10m"]);
    assert_names(
        &rejected(&[
            "--wal-commit-interval",
            "1ms",
            "--wal-commit-interval-us",
            "5",
        ]),
        &["wal-commit-interval"],
    );
    assert_names(
        &rejected(&["--config", "/nonexistent/shardlog.toml"]),
        &["/nonexistent/shardlog.toml"],
    );
}

fn write_config(dir: &TestDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    let mut file = std::fs::File::create(&path).expect("create config file");
    file.write_all(text.as_bytes()).expect("write config file");
    path.display().to_string()
}

#[test]
fn bad_toml_names_the_key() {
    let dir = TestDir::new("config-bad");
    let data = dir.data_dir();
    let unknown = write_config(
        &dir,
        "unknown.toml",
        &format!(
            "data_dir = {:?}\nno_such_key = 3\n",
            data.display().to_string()
        ),
    );
    assert_names(&rejected(&["--config", &unknown]), &["no_such_key"]);
    let zero = write_config(&dir, "zero.toml", "cores = 0\n");
    assert_names(&rejected(&["--config", &zero]), &["cores"]);
    let addr = write_config(&dir, "addr.toml", "http_addr = \"nonsense\"\n");
    assert_names(&rejected(&["--config", &addr]), &["http_addr", "http-addr"]);
    let wrong_type = write_config(&dir, "type.toml", "cores = \"two\"\n");
    assert_names(&rejected(&["--config", &wrong_type]), &["cores"]);
    let size = write_config(&dir, "size.toml", "heads_bytes_max = \"lots\"\n");
    let out = rejected(&["--config", &size]);
    assert_names(&out, &["heads_bytes_max"]);
    assert_names(&out, &["8MiB"]);
    let syntax = write_config(&dir, "syntax.toml", "cores = \n");
    rejected(&["--config", &syntax]);
}

#[test]
fn toml_file_configures_the_server() {
    let dir = TestDir::new("config-file");
    let (http_port, syslog_port) = free_ports(true);
    let config = write_config(
        &dir,
        "shardlog.toml",
        &format!(
            "data_dir = {:?}\nhttp_addr = \"127.0.0.1:{http_port}\"\n\
             syslog_tcp_addr = \"127.0.0.1:{syslog_port}\"\nsyslog_udp_addr = \"\"\ncores = 2\n\
             line_bytes_max = \"64KiB\"\nwal_segment_bytes_max = \"8MiB\"\n\
             wal_commit_interval = \"2ms\"\nfuture_skew_max = \"10m\"\n",
            dir.data_dir().display().to_string()
        ),
    );
    let args = vec!["serve".to_string(), "--config".to_string(), config.clone()];
    let server =
        Server::spawn_ready(&dir, &args, http_port, syslog_port).unwrap_or_else(|e| panic!("{e}"));
    assert!(dir.data_dir().is_dir(), "data_dir from the file is used");

    // Syslog TCP on the configured port.
    let mut syslog =
        TcpStream::connect(("127.0.0.1", syslog_port)).expect("syslog TCP from the config file");
    syslog
        .write_all(b"<14>1 - confhost confapp - - - from the config file test\n")
        .expect("send syslog line");
    drop(syslog);
    let query = r#"{app="confapp"}"#;
    assert_eq!(
        server.wait_for_count(query, 1, common::loki::INGEST_WAIT_MS),
        1
    );
    assert_eq!(
        server.query_all(query, false)[0].line,
        "from the config file test"
    );

    // Two shards, as configured: streams land on both.
    let ts = (now_ns() - 60 * 1_000_000_000).to_string();
    let streams: Vec<_> = (0..32)
        .map(|i| json!({"stream": {"job": "config", "n": i.to_string()}, "values": [[ts, "x"]]}))
        .collect();
    server.push_json_ok(&json!({ "streams": streams }));
    // `line_bytes_max = "64KiB"` from the file: one byte more is refused as Loki does.
    let long = "x".repeat(64 * 1024 + 1);
    let refused = server.push_json(&json!({
        "streams": [{"stream": {"job": "config-long"}, "values": [[ts, long]]}]
    }));
    assert_eq!(
        refused.status, 400,
        "a 64KiB + 1 line with line_bytes_max = \"64KiB\""
    );
    let samples = parse_metrics(&server.metrics());
    for shard in ["0", "1"] {
        assert!(
            metric_sum(
                &samples,
                "shardlog_wal_bytes_written_total",
                &[("shard", shard)]
            ) > 0.0,
            "cores = 2 from the file: shard {shard} wrote nothing"
        );
    }
    assert!(
        samples
            .iter()
            .filter(|s| s.name == "shardlog_wal_bytes_written_total")
            .all(|s| s.labels.get("shard").is_none_or(|v| v == "0" || v == "1")),
        "more than two shards"
    );
    drop(server);

    // A flag overrides the file; `:PORT` listens on every interface, loopback included.
    let (other_http, _) = free_ports(false);
    let args = vec![
        "serve".to_string(),
        "--config".to_string(),
        config,
        "--http-addr".to_string(),
        format!(":{other_http}"),
        "--syslog-tcp-addr".to_string(),
        String::new(),
    ];
    let server = Server::spawn_ready(&dir, &args, other_http, 0).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        server.index_stats(r#"{job="config"}"#).entries,
        32,
        "data from the first run"
    );
}

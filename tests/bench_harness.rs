//! `shardlog bench --spawn` end to end: a very short run of every scenario against a server
//! the harness starts itself, checking that the report files exist and parse, that
//! `report.json` carries the required figures, and that the run found no loss.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

#[path = "common/tools.rs"]
#[allow(dead_code)]
mod tools;

/// Lines per run: enough to cross several batches, connections and streams, few enough that
/// every scenario finishes in a second or two on a loaded 2-core machine.
const LINES: &str = "2000";

/// A fresh report directory under `CARGO_TARGET_TMPDIR` (never tmpfs: the spawned server's
/// data directory goes inside it, and its WAL needs O_DIRECT).
fn out_dir(name: &str) -> PathBuf {
    let base = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-harness");
    std::fs::create_dir_all(&base).unwrap();
    let dir = base.join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn bench(args: &[&str], out: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_shardlog"))
        .arg("bench")
        .args(args)
        .arg("--out")
        .arg(out)
        .stdin(Stdio::null())
        .output()
        .expect("run shardlog bench")
}

fn explain(o: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Runs a scenario and checks everything every scenario must have; returns report.json.
fn run_scenario(name: &str, args: &[&str]) -> serde_json::Value {
    let out = out_dir(name);
    let o = bench(args, &out);
    assert!(o.status.success(), "{}", explain(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains(&format!("report: {}", out.join("report.md").display())),
        "{}",
        explain(&o)
    );
    assert!(
        stdout.contains("| lines stored |"),
        "no summary table: {stdout}"
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("lines/s"), "no progress line: {stderr}");

    let md = std::fs::read_to_string(out.join("report.md")).expect("report.md");
    assert!(
        md.contains("## Verification") && md.contains("## Setup"),
        "{md}"
    );
    let json = std::fs::read_to_string(out.join("report.json")).expect("report.json");
    let v: serde_json::Value = serde_json::from_str(&json).expect("report.json parses");
    for key in [
        "scenario",
        "lines_sent",
        "lines_acked",
        "lines_stored",
        "lines_per_sec",
        "bytes_per_sec",
    ] {
        assert!(v.get(key).is_some(), "report.json lacks {key}: {json}");
    }
    assert_eq!(v["scenario"], args[0]);
    assert_eq!(v["passed"], true, "{}", v["verdict"]);
    assert!(v["lines_stored"].as_u64().unwrap() > 0);
    assert!(v["lines_per_sec"].as_f64().unwrap() > 0.0);
    for key in [
        "cpu_seconds_per_million_lines",
        "peak_rss_bytes",
        "bytes_on_disk_per_line",
    ] {
        assert!(
            !v["server"][key].is_null(),
            "spawned server figure {key} missing: {}",
            v["server"]
        );
    }
    assert_eq!(v["server"]["exit_clean"], true, "{}", v["server"]);
    for check in v["verification"].as_array().unwrap() {
        assert_eq!(check["passed"], true, "{check}");
    }
    for chart in v["charts"].as_array().unwrap() {
        let text = std::fs::read_to_string(out.join(chart.as_str().unwrap())).unwrap();
        assert!(
            text.trim_start().starts_with("<svg") && text.trim_end().ends_with("</svg>"),
            "{chart} is not an SVG document"
        );
    }
    assert!(out.join("throughput.svg").is_file());
    // The spawned server's data directory is removed after the run.
    assert!(!out.join("data").exists());
    v
}

fn assert_no_loss(v: &serde_json::Value) {
    assert_eq!(v["lines_stored"], v["lines_acked"], "{}", v["verification"]);
    assert_eq!(v["lines_sent"], v["lines_acked"], "{}", v["verification"]);
}

fn assert_ack_latency(v: &serde_json::Value) {
    for key in ["p50", "p90", "p99", "p999", "max"] {
        assert!(
            v["ack_latency_us"][key].as_u64().unwrap() > 0,
            "ack_latency_us.{key}: {}",
            v["ack_latency_us"]
        );
    }
}

#[test]
fn push_json_and_protobuf() {
    for encoding in ["json", "protobuf"] {
        let v = run_scenario(
            &format!("push-{encoding}"),
            &[
                "push",
                "--spawn",
                "--count",
                LINES,
                "--batch",
                "100",
                "--encoding",
                encoding,
            ],
        );
        assert_no_loss(&v);
        assert_eq!(v["lines_stored"], 2000);
        assert_ack_latency(&v);
        assert_eq!(v["verification"][0]["streams_stored"], 8);
    }
}

#[test]
fn syslog_tcp_octet_and_newline() {
    let v = run_scenario(
        "syslog-tcp",
        &["syslog-tcp", "--spawn", "--count", LINES, "--batch", "100"],
    );
    assert_no_loss(&v);
    assert_eq!(v["lines_stored"], 2000);
    let v = run_scenario(
        "syslog-tcp-3164",
        &[
            "syslog-tcp",
            "--spawn",
            "--count",
            LINES,
            "--syslog-format",
            "rfc3164",
            "--streams",
            "3",
        ],
    );
    assert_no_loss(&v);
    assert_eq!(v["verification"][0]["streams_stored"], 3);
}

#[test]
fn syslog_udp_counts_every_datagram() {
    // Rate limited so that a quiet loopback drops nothing; the check itself accepts
    // counted kernel drops, never uncounted loss.
    let v = run_scenario(
        "syslog-udp",
        &["syslog-udp", "--spawn", "--count", LINES, "--rate", "20000"],
    );
    let check = &v["verification"][0];
    let stored = check["stored"].as_u64().unwrap();
    let drops = check["kernel_drops"].as_u64().unwrap();
    assert_eq!(v["lines_sent"], 2000);
    assert!(stored + drops >= 2000 && stored <= 2000, "{check}");
}

#[test]
fn query_reports_latency_by_kind() {
    let v = run_scenario(
        "query",
        &["query", "--spawn", "--count", LINES, "--rate", "10000"],
    );
    assert_no_loss(&v);
    for kind in ["label", "substring", "rare-token"] {
        let q = &v["query_latency_us"][kind];
        assert!(q["queries"].as_u64().unwrap() >= 5, "{kind}: {q}");
        assert_eq!(q["errors"], 0, "{kind}: {q}");
        assert!(q["p99"].as_u64().unwrap() > 0, "{kind}: {q}");
    }
    // Metric queries run when the server answers them, and are reported as skipped (with
    // the server's reason) when it does not.
    assert!(
        !v["query_latency_us"]["metric"].is_null() || v["metric_queries_skipped"].is_string(),
        "{v}"
    );
}

#[test]
fn mixed_verifies_each_source() {
    let v = run_scenario("mixed", &["mixed", "--spawn", "--count", LINES]);
    assert_no_loss(&v);
    let sources: Vec<&str> = v["verification"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["source"].as_str().unwrap())
        .collect();
    assert_eq!(sources, ["push", "syslog-tcp"]);
    assert_ack_latency(&v);
}

#[test]
fn replays_real_log_files() {
    let files: Vec<PathBuf> = ["OpenSSH_2k.log", "Linux_2k.log"]
        .iter()
        .map(|f| tools::corpus_dir().join(f))
        .collect();
    if let Some(absent) = files.iter().find(|p| !p.is_file()) {
        tools::missing(&format!("corpus file {}", absent.display()));
        return;
    }
    let mut args = vec!["push", "--spawn", "--count", LINES, "--lines"];
    let names: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
    args.extend(names.iter().map(String::as_str));
    let v = run_scenario("replay", &args);
    assert_no_loss(&v);
    assert!(
        v["setup"]["line_source"]
            .as_str()
            .unwrap()
            .contains("replayed files"),
        "{}",
        v["setup"]
    );
}

#[test]
fn compare_with_syslog_ng() {
    // The same search as the harness's own, which also looks in sbin directories that a
    // user's PATH may lack.
    if shardlog::bench::compare::find_syslog_ng().is_none() {
        tools::missing("`syslog-ng` is not installed (Debian package syslog-ng-core)");
        return;
    }
    let v = run_scenario(
        "compare",
        &[
            "syslog-tcp",
            "--spawn",
            "--count",
            LINES,
            "--compare",
            "syslog-ng",
            "--rounds",
            "1",
        ],
    );
    assert_no_loss(&v);
    let c = &v["compare"];
    assert!(c["other_lines_per_sec"].as_f64().unwrap() > 0.0, "{c}");
    assert!(c["ratio"].as_f64().unwrap() > 0.0, "{c}");
    assert_eq!(c["other_losses"].as_array().unwrap().len(), 0, "{c}");
    let servers: Vec<&str> = v["rounds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["server"].as_str().unwrap())
        .collect();
    assert_eq!(servers, ["shardlog", "syslog-ng"]);
}

#[test]
fn no_server_is_an_error_that_says_what_to_do() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = out_dir("no-server");
    let o = bench(
        &[
            "push",
            "--count",
            "10",
            "--http-addr",
            &format!("127.0.0.1:{port}"),
        ],
        &out,
    );
    assert_eq!(o.status.code(), Some(2), "{}", explain(&o));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("no ready server") && stderr.contains("--spawn"),
        "{stderr}"
    );
}

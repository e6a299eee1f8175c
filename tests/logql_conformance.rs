//! The LogQL conformance cases taken from Loki's tests (`../shared/logql/parse.jsonl` and
//! `pipeline.jsonl`), run black-box over HTTP against the real binary with the shared
//! runner (`../shared/tools/logql_conformance.py`). The cases and the runner stay outside
//! the repository (their licence is not ours): under CI a missing directory fails the test;
//! elsewhere it is skipped, loudly. Prints the pass counts; no case may be answered "not
//! supported", and the pass rate may not fall below [`PASS_RATE_MIN`].

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{Server, ServerOptions, TestDir};

/// The share of testable cases that must pass. Every case a failure is kept for on purpose
/// is listed in `src/logql/conformance_tests.rs` and `src/query/pipeline/conformance_tests.rs`.
const PASS_RATE_MIN: f64 = 0.97;

/// A file under `../shared`, found beside the LogQL cases. The cases are looked up with the
/// unit tests' rule (src/testing/environment.rs): CI must have them.
fn shared(rel: &str) -> Option<PathBuf> {
    let cases = common::tools::shared_logql_file("parse.jsonl")?;
    let path = cases.parent()?.parent()?.join(rel);
    if !path.is_file() {
        assert!(
            !common::tools::in_ci(),
            "{} is missing beside the LogQL cases",
            path.display()
        );
        common::tools::skip(&format!("{} is missing", path.display()));
        return None;
    }
    Some(path)
}

#[test]
fn loki_cases_pass_over_http() {
    let (Some(parse), Some(pipeline), Some(runner)) = (
        shared("logql/parse.jsonl"),
        shared("logql/pipeline.jsonl"),
        shared("tools/logql_conformance.py"),
    ) else {
        return;
    };
    if !common::tools::require_program("python3", "apt-get install python3") {
        return;
    }
    let dir = TestDir::new("logql-conformance");
    let mut server = Server::start_with(
        &dir,
        &ServerOptions {
            syslog: false,
            ..ServerOptions::default()
        },
    );
    let out = dir.path().join("conformance.json");
    let run = common::tools::run_checked(
        Command::new("python3")
            .arg(&runner)
            .arg("--url")
            .arg(format!("http://{}", server.http))
            .arg("--json-out")
            .arg(&out)
            .arg(&parse)
            .arg(&pipeline),
    );
    let report = String::from_utf8_lossy(&run.stdout);
    eprintln!("{report}");
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&out).expect("the runner wrote its report"))
            .expect("a JSON report");
    let s = &summary["summary"];
    let count = |k: &str| s[k].as_u64().unwrap_or(0);
    let (pass, fail, unsupported) = (count("pass"), count("fail"), count("unsupported"));
    eprintln!(
        "LogQL conformance over HTTP: {pass} pass, {fail} fail, {unsupported} unsupported, {} skipped of {}",
        count("skipped"),
        count("total")
    );
    assert_eq!(unsupported, 0, "cases answered as not supported:\n{report}");
    let rate = pass as f64 / (pass + fail).max(1) as f64;
    assert!(
        rate >= PASS_RATE_MIN,
        "pass rate {rate:.3} below {PASS_RATE_MIN}:\n{report}"
    );
    server.terminate_ok();
}

//! External tools some tests drive (`logger`, `loggen`, curl, a Python venv with a Loki
//! client) and the test data: finding them, and the rule for when they are missing. Under
//! CI (`CI` set) a missing tool fails the test, because `.ci/run` installs them and a silent
//! skip would hide a broken setup; on a developer machine the test is skipped, loudly: it
//! prints `SKIPPED` and is listed in the summary `make test` prints at the end. The places
//! and the rule are those of the unit tests, from one file (`src/testing/environment.rs`).

use std::path::PathBuf;
use std::process::Command;

#[path = "../../src/testing/environment.rs"]
mod environment;
// Each test binary uses a different subset.
#[allow(unused_imports)]
pub use environment::{corpus_dir, in_ci, missing, shared_logql_file, skip};

/// Where a program is on `PATH`, if anywhere.
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// Whether the test may go on: true if `name` is installed; under CI a missing tool panics;
/// elsewhere it prints why the test is skipped and returns false.
pub fn require_program(name: &str, install_hint: &str) -> bool {
    if find_program(name).is_some() {
        return true;
    }
    missing(&format!("`{name}` is not installed ({install_hint})"))
}

/// The Python interpreter of the venv with `tests/python/requirements.txt` installed:
/// `$SHARDLOG_TEST_VENV`, else `target/ci-venv` in the package directory. `None` (after
/// the CI rule above) when there is none or it lacks one of the clients the tests drive:
/// the Loki client and the OpenTelemetry SDK with its OTLP/HTTP exporter.
pub fn python_venv() -> Option<PathBuf> {
    let venv = match std::env::var_os("SHARDLOG_TEST_VENV") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/ci-venv"),
    };
    let python = venv.join("bin/python");
    if !python.is_file() {
        missing(&format!(
            "no Python venv at {} (set SHARDLOG_TEST_VENV, or: python3 -m venv target/ci-venv && \
             target/ci-venv/bin/pip install -r tests/python/requirements.txt)",
            venv.display()
        ));
        return None;
    }
    let probe = Command::new(&python)
        .args([
            "-c",
            "import logging_loki, opentelemetry.sdk._logs, \
             opentelemetry.exporter.otlp.proto.http._log_exporter",
        ])
        .output();
    match probe {
        Ok(output) if output.status.success() => Some(python),
        _ => {
            missing(&format!(
                "the venv at {} lacks python-logging-loki or the OpenTelemetry SDK (pip install -r \
                 tests/python/requirements.txt)",
                venv.display()
            ));
            None
        }
    }
}

/// The machine's host name as the kernel reports it (what `logger` puts in its header).
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .expect("read /proc/sys/kernel/hostname")
        .trim()
        .to_string()
}

/// Runs a command to completion; panics with its output if it fails.
pub fn run_checked(command: &mut Command) -> std::process::Output {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("could not run {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed with {}:\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// The lines of a corpus file without their CRLF ends, or `None` (after the CI rule) when
/// the corpus is not there.
pub fn corpus_lines(name: &str) -> Option<Vec<String>> {
    let path = corpus_dir().join(name);
    match std::fs::read_to_string(&path) {
        Ok(text) => Some(
            text.lines()
                .map(|l| l.trim_end_matches('\r').to_string())
                .collect(),
        ),
        Err(e) => {
            missing(&format!("corpus file {} unreadable: {e}", path.display()));
            None
        }
    }
}

//! What a test needs from outside its own code, where it is, and what happens when it is
//! not there. One file for every kind of test: the unit tests reach it as
//! `crate::testing`, the integration tests through `tests/common/tools.rs` and the benches
//! through `benches/common/corpus.rs`, both of which include it by path, so that the places
//! and the rule are written once.
//!
//! - The Loghub corpus is part of the repository, in `testdata/loghub` ([`CORPUS_DIR`]).
//! - The LogQL conformance cases are not: their licence is not ours, so they stay in
//!   `../shared/logql` beside the checkout ([`shared_logql_file`]).
//! - Programs (`logger`, `loggen`, `curl`, `syslog-ng`, a Python venv) are the machine's.
//!
//! The rule when something is missing ([`missing`]): under CI (`CI` set and not `false` or
//! `0`) the test fails, because `.ci/run` installs everything and a skip there would hide a
//! broken setup. Elsewhere the test is skipped, and a skip must never look like a pass. Rust's
//! test harness cannot mark a test skipped once it runs (it reports `ok`), so a skipping test
//! prints `SKIPPED` to stderr and appends one line to the file `$SHARDLOG_TEST_SKIPS` names;
//! `make test` empties that file before the run and prints its lines at the end, loudly.
//!
//! One exception: the shared LogQL cases may be absent on purpose under CI too, in the step of
//! `.ci/run` that tests a clone with nothing beside it. It says so with `SHARDLOG_NO_SHARED=1`,
//! and those tests then skip (loudly) instead of failing; every other rule stays as under CI.

use std::io::Write;
use std::path::{Path, PathBuf};

/// The Loghub samples (ten files of 2,000 real log lines), part of the repository.
pub const CORPUS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/loghub");

/// The LogQL conformance cases taken from Loki's tests: beside the checkout, never inside it.
pub const SHARED_LOGQL_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/logql");

/// The file a skipping test appends its line to; `make test` sets it and prints the file.
const SKIPS_FILE_VAR: &str = "SHARDLOG_TEST_SKIPS";

/// Set (to anything but `0` or `false`) where `../shared` is absent on purpose.
const NO_SHARED_VAR: &str = "SHARDLOG_NO_SHARED";

/// Whether an environment variable is set to something that means yes.
fn flag(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// True when running under CI, where everything a test needs must be present.
pub fn in_ci() -> bool {
    flag("CI")
}

/// The corpus directory as a path.
pub fn corpus_dir() -> PathBuf {
    PathBuf::from(CORPUS_DIR)
}

/// Whether the test may go on without `what`: under CI it panics (the setup is broken);
/// elsewhere it reports the skip (see the module doc) and returns false, for
/// `if !... { return }`.
pub fn missing(what: &str) -> bool {
    if in_ci() {
        panic!("{what}; CI must provide it (see .ci/run)");
    }
    skip(what);
    false
}

/// The path of one file of the shared LogQL cases, or `None` after reporting a skip: under
/// CI their absence fails the test unless `SHARDLOG_NO_SHARED` says it is deliberate.
pub fn shared_logql_file(name: &str) -> Option<PathBuf> {
    let path = Path::new(SHARED_LOGQL_DIR).join(name);
    if path.is_file() {
        return Some(path);
    }
    let what = format!(
        "the LogQL conformance cases are not at {} (they stay outside the repository, whose \
         licence is not theirs: put Loki's cases in ../shared/logql beside the checkout)",
        path.display()
    );
    if in_ci() && !flag(NO_SHARED_VAR) {
        panic!(
            "{what}; CI must provide them, or set {NO_SHARED_VAR}=1 where they are absent on purpose"
        );
    }
    skip(&what);
    None
}

/// Reports that the running test checks nothing: `SKIPPED` on stderr, and one line naming
/// the test binary, the test and the reason in `$SHARDLOG_TEST_SKIPS` when that is set. A
/// skip that cannot be written there fails the test, since it would otherwise read as a pass.
pub fn skip(what: &str) {
    let test = std::thread::current()
        .name()
        .unwrap_or("unnamed test")
        .to_string();
    let binary = test_binary();
    eprintln!("SKIPPED: {binary}: {test}: {what}");
    let Some(path) = std::env::var_os(SKIPS_FILE_VAR) else {
        return;
    };
    // One write of one line in append mode: the tests of several processes append to the
    // same file without interleaving inside a line.
    let line = format!("{binary}: {test}: {}\n", what.replace('\n', " "));
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| f.write_all(line.as_bytes()));
    if let Err(e) = written {
        panic!(
            "the skip could not be recorded in {}: {e}",
            Path::new(&path).display()
        );
    }
}

/// The name of the running test binary without cargo's hash suffix (`push_clients`,
/// `shardlog` for the unit tests).
fn test_binary() -> String {
    let exe = std::env::current_exe().unwrap_or_default();
    let stem = exe
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    match stem.rsplit_once('-') {
        Some((name, hash)) if hash.bytes().all(|b| b.is_ascii_hexdigit()) => name.to_string(),
        _ => stem,
    }
}

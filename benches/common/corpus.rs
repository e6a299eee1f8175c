//! The loghub corpus for benchmarks: real logs of ten systems, in `testdata/loghub`. Its
//! place is written once for every kind of test, in `src/testing/environment.rs`.
//!
//! A missing corpus file is a panic naming the path, never a skip: a benchmark on other lines
//! would not measure what it says, and one that returned early would pass the criterion test
//! mode of `make test` while checking nothing.

// Each bench uses a different part of this module and of the file it includes.
#![allow(dead_code)]

#[path = "../../src/testing/environment.rs"]
mod environment;
pub use environment::CORPUS_DIR;

/// `(name, text)` of every `*.log` file of the corpus, in name order (`name` is the file
/// stem, e.g. `OpenSSH_2k`).
pub fn files() -> Vec<(String, String)> {
    let mut paths: Vec<_> = std::fs::read_dir(CORPUS_DIR)
        .unwrap_or_else(|e| panic!("the loghub corpus under {CORPUS_DIR}: {e}"))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no *.log files in {CORPUS_DIR}");
    paths
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            (name, text)
        })
        .collect()
}

/// The bytes of one corpus file, e.g. `Linux_2k.log`.
pub fn file(name: &str) -> Vec<u8> {
    let path = format!("{CORPUS_DIR}/{name}");
    std::fs::read(&path).unwrap_or_else(|e| panic!("corpus file {path}: {e}"))
}

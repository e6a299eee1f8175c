//! The loghub corpus for benchmarks: real logs of ten systems beside the repository.

/// Where the corpus lives, relative to this package.
pub const CORPUS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/corpus/loghub");

/// `(name, text)` of every `*.log` file of the corpus, in name order (`name` is the file
/// stem, e.g. `OpenSSH_2k`). Panics with the path when the corpus is missing: a benchmark
/// on other lines would not measure what it says.
pub fn files() -> Vec<(String, String)> {
    let mut paths: Vec<_> = std::fs::read_dir(CORPUS_DIR)
        .unwrap_or_else(|e| panic!("the loghub corpus under {CORPUS_DIR}: {e}"))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    paths.sort();
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

//! Data directories written by part format versions 1, 2 and 3 are read by this build, every
//! line of them.
//!
//! `testdata/v1-data/`, `testdata/v2-data/` and `testdata/v3-data/` were written by the server
//! when parts were at those versions (see their `README.md`): 30 lines of each loghub corpus
//! file, one stream per file (`{app="<file stem>", source="v1"}`, `"v2"`, `"v3"`), line `i` at
//! `BASE_NS + (i % 3) days + i ms`, so the lines fall in three day partitions of two shards;
//! from version 2 on, each line carries `trace_id` as structured metadata, three lines per
//! id. Version 3's directory holds both sealed parts and cold parts compacted with line
//! templates into a bundle. The test copies a directory, starts the server on it and asks for
//! every stream (and, from version 2 on, for traces by id: version 2's parts have no metadata
//! index, so every block is read); then stops it (which may have compacted the cold
//! partitions into parts of the current format) and asks again after a restart.

mod common;

use std::path::Path;

use common::loki::{CATEGORIZE_LABELS, string_map};
use common::tools::corpus_dir;
use common::{QUERY_LIMIT, Server, ServerOptions, TestDir, labels};

/// The first timestamp of the data directory, as `testdata/v1-data/make.py` writes it.
const BASE_NS: i64 = 1_700_000_000_000_000_000;
const DAY_NS: i64 = 86_400_000_000_000;
const LINE_STEP_NS: i64 = 1_000_000;
/// Lines of each corpus file in the directory.
const LINES_PER_FILE: usize = 30;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("create {}: {e}", to.display()));
    for entry in std::fs::read_dir(from).unwrap_or_else(|e| panic!("read {}: {e}", from.display()))
    {
        let entry = entry.expect("a directory entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("a file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else if entry
            .path()
            .extension()
            .is_none_or(|x| x != "py" && x != "md")
        {
            std::fs::copy(entry.path(), &target)
                .unwrap_or_else(|e| panic!("copy {}: {e}", entry.path().display()));
        }
    }
}

/// (app, lines with timestamps) of every stream the directory holds, files sorted by name.
fn expected() -> Vec<(String, Vec<(i64, String)>)> {
    let dir = corpus_dir();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.expect("an entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 10, "the loghub corpus has ten files");
    files
        .iter()
        .map(|path| {
            let text = std::fs::read_to_string(path).expect("a corpus file");
            let mut lines: Vec<(i64, String)> = text
                .lines()
                .take(LINES_PER_FILE)
                .enumerate()
                .map(|(i, l)| {
                    let ts = BASE_NS + (i as i64 % 3) * DAY_NS + i as i64 * LINE_STEP_NS;
                    (ts, l.to_string())
                })
                .collect();
            lines.sort_by_key(|l| l.0);
            let app = path.file_stem().expect("a name").to_string_lossy().into();
            (app, lines)
        })
        .collect()
}

/// The trace ids of the directories from version 2 on: `<app>-<i / 3>` for line `i`.
fn check_traces(server: &Server, source: &str, when: &str) {
    let start = (BASE_NS - DAY_NS).to_string();
    let end = (BASE_NS + 4 * DAY_NS).to_string();
    for (app, _) in expected() {
        let text = std::fs::read_to_string(corpus_dir().join(format!("{app}.log")))
            .expect("a corpus file");
        let lines: Vec<&str> = text.lines().take(LINES_PER_FILE).collect();
        for k in [0usize, 4, 9] {
            let id = format!("{app}-{k:04x}");
            let query = format!(r#"{{source="{source}"}} | trace_id="{id}""#);
            let body = server.query_range(&[
                ("query", &query),
                ("start", &start),
                ("end", &end),
                ("direction", "forward"),
            ]);
            let mut got: Vec<String> = body["data"]["result"]
                .as_array()
                .expect("a result array")
                .iter()
                .flat_map(|s| s["values"].as_array().expect("values").clone())
                .map(|v| v[1].as_str().expect("a line").to_string())
                .collect();
            got.sort();
            let mut want: Vec<String> = (3 * k..3 * k + 3).map(|i| lines[i].to_string()).collect();
            want.sort();
            assert_eq!(got, want, "{when}: {query}");
        }
    }
}

fn check(server: &Server, source: &str, when: &str) {
    // The query range limit is 30 days: the directory spans three.
    let start = (BASE_NS - DAY_NS).to_string();
    let end = (BASE_NS + 4 * DAY_NS).to_string();
    let limit = QUERY_LIMIT.to_string();
    for (app, lines) in expected() {
        let query = format!(r#"{{app="{app}", source="{source}"}}"#);
        // Categorized: the lines of version 2 on carry metadata, which would otherwise split the
        // stream into one result stream per trace id.
        let response = server.query_range_response(
            &[
                ("query", &query),
                ("start", &start),
                ("end", &end),
                ("limit", &limit),
                ("direction", "forward"),
            ],
            &[CATEGORIZE_LABELS],
        );
        assert_eq!(response.status, 200, "{when}: {query}: {}", response.text());
        let body = response.json();
        let result = body["data"]["result"].as_array().expect("a result array");
        assert_eq!(result.len(), 1, "{when}: {query}: one stream");
        assert_eq!(
            string_map(&result[0]["stream"]),
            labels(&[("app", &app), ("source", source)]),
            "{when}: {query}"
        );
        let got: Vec<(i64, String)> = result[0]["values"]
            .as_array()
            .expect("values")
            .iter()
            .map(|v| {
                let ts = v[0].as_str().and_then(|t| t.parse().ok()).expect("a time");
                (ts, v[1].as_str().expect("a line").to_string())
            })
            .collect();
        assert_eq!(got, lines, "{when}: {query}: every line, once, in order");
    }
    // A needle that occurs in one stream only: the blooms of the others must not hide it.
    let body = server.query_range(&[
        (
            "query",
            &format!(r#"{{source="{source}"}} |= "PacketResponder""#),
        ),
        ("start", &start),
        ("end", &end),
        ("limit", &limit),
    ]);
    let found: usize = body["data"]["result"]
        .as_array()
        .expect("a result array")
        .iter()
        .map(|s| s["values"].as_array().expect("values").len())
        .sum();
    let want: usize = expected()
        .iter()
        .flat_map(|(_, lines)| lines)
        .filter(|(_, l)| l.contains("PacketResponder"))
        .count();
    assert!(want > 0, "the needle occurs in the data");
    assert_eq!(found, want, "{when}: needle query");
}

fn read_whole(version: u32) {
    let dir = TestDir::new(&format!("storage-v{version}-data"));
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("testdata/v{version}-data"));
    copy_dir(&source, &dir.data_dir());
    let options = ServerOptions {
        syslog: false,
        ..ServerOptions::default()
    };
    let label = format!("v{version}");
    let mut server = Server::start_with(&dir, &options);
    check(
        &server,
        &label,
        &format!("first start on the version {version} directory"),
    );
    if version >= 2 {
        check_traces(&server, &label, &format!("version {version} parts"));
    }
    server.terminate_ok();
    let mut server = Server::start_with(&dir, &options);
    check(&server, &label, "after a restart");
    if version >= 2 {
        check_traces(&server, &label, "after a restart");
    }
    server.terminate_ok();
}

#[test]
fn a_data_dir_of_part_format_1_is_read_whole() {
    read_whole(1);
}

#[test]
fn a_data_dir_of_part_format_2_is_read_whole_and_its_traces_found() {
    read_whole(2);
}

#[test]
fn a_data_dir_of_part_format_3_is_read_whole_and_its_traces_found() {
    read_whole(3);
}

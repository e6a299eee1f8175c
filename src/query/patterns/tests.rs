use proptest::prelude::*;

use super::*;

const SECOND: i64 = 1_000_000_000;
/// 2023-11-14T22:00:00Z, on a whole hour so that step buckets start there.
const T0: i64 = 1_699_999_200 * SECOND;

/// The lines of a loghub sample (CRLF endings removed), or `None` when the corpus is absent.
fn loghub(file: &str) -> Option<Vec<String>> {
    let path = crate::testing::corpus_dir().join(file);
    let Ok(text) = std::fs::read_to_string(&path) else {
        crate::testing::missing(&format!("corpus file {}", path.display()));
        return None;
    };
    Some(
        text.lines()
            .map(|l| l.trim_end_matches('\r').to_owned())
            .filter(|l| !l.is_empty())
            .collect(),
    )
}

/// Keeps every pattern, however small.
fn keep_all() -> PatternConfig {
    PatternConfig {
        min_pattern_lines: 0,
        max_patterns: usize::MAX,
        ..PatternConfig::default()
    }
}

/// Mines lines one second apart from `T0`.
fn mine(lines: &[String], config: PatternConfig) -> PatternMiner {
    let mut miner = PatternMiner::new(config);
    for (i, line) in lines.iter().enumerate() {
        miner.add(T0 + i as i64 * SECOND, line);
    }
    miner
}

fn whole_range(miner: &PatternMiner, lines: usize) -> Vec<Pattern> {
    miner.finish(T0, T0 + lines as i64 * SECOND, 60 * SECOND)
}

fn total(patterns: &[Pattern]) -> u64 {
    patterns.iter().map(Pattern::total).sum()
}

#[test]
fn hdfs_block_lines_collapse_into_a_handful_of_patterns() {
    let Some(lines) = loghub("HDFS_2k.log") else {
        return;
    };
    let miner = mine(&lines, keep_all());
    let patterns = whole_range(&miner, lines.len());
    // Every line has a place in some pattern but for two with more than 80 tokens.
    assert_eq!(total(&patterns), lines.len() as u64 - 2);
    assert!(
        patterns.len() <= 20,
        "{} patterns: {:#?}",
        patterns.len(),
        patterns.iter().map(|p| &p.pattern).collect::<Vec<_>>()
    );
    // The nine shapes of the sample, each with its variable parts blanked out.
    assert!(patterns.iter().any(|p| p.pattern
        == "<_> <_> <_> INFO dfs.DataNode$PacketResponder: PacketResponder <_> for block <_> terminating"
        && p.total() > 300));
    assert!(
        patterns
            .iter()
            .any(|p| p.pattern == "<_> <_> <_> INFO dfs.FSDataset: Deleting block <_> file <_>")
    );
    assert!(total(&patterns[..9]) >= 1950);
    for p in &patterns[..9] {
        assert!(
            p.total() >= 80 && !p.pattern.contains("blk_"),
            "{}",
            p.pattern
        );
    }
    assert!(
        patterns
            .iter()
            .all(|p| p.level == Level::Info || p.level == Level::Warn)
    );
    // With Loki's pruning (30 lines at least), what is left still holds nearly every line.
    let pruned = PatternMiner::finish(
        &mine(&lines, PatternConfig::default()),
        T0,
        T0 + lines.len() as i64 * SECOND,
        60 * SECOND,
    );
    assert!(pruned.len() <= 10);
    assert!(total(&pruned) * 100 >= lines.len() as u64 * 95);
}

#[test]
fn apache_lines_split_by_shape_and_level() {
    let Some(lines) = loghub("Apache_2k.log") else {
        return;
    };
    let miner = mine(&lines, keep_all());
    let patterns = whole_range(&miner, lines.len());
    assert_eq!(total(&patterns), lines.len() as u64);
    assert!(patterns.len() <= 30, "{} patterns", patterns.len());
    let found = |text: &str, level: Level| {
        patterns
            .iter()
            .any(|p| p.level == level && p.pattern.contains(text) && p.pattern.contains("<_>"))
    };
    assert!(found("jk2_init() Found child", Level::Unknown));
    assert!(found("mod_jk child workerEnv in error state", Level::Error));
}

#[test]
fn merged_shards_add_up_to_the_single_miner() {
    let Some(lines) = loghub("HDFS_2k.log") else {
        return;
    };
    let single = whole_range(&mine(&lines, keep_all()), lines.len());
    let mut shards: Vec<PatternMiner> = (0..4).map(|_| PatternMiner::new(keep_all())).collect();
    for (i, line) in lines.iter().enumerate() {
        shards[i % 4].add(T0 + i as i64 * SECOND, line);
    }
    let mut merged = PatternMiner::new(keep_all());
    for shard in shards {
        merged.merge(shard);
    }
    let patterns = whole_range(&merged, lines.len());
    assert_eq!(total(&patterns), total(&single));
    assert!(patterns.len() <= single.len() + 5);
    assert_eq!(patterns[0].pattern, single[0].pattern);
    assert_eq!(patterns[0].total(), single[0].total());
}

#[test]
fn identical_patterns_sum_exactly() {
    let lines: Vec<String> = (0..40)
        .map(|i| format!("user {i} logged in from host{}", i % 3))
        .collect();
    let a = mine(&lines, PatternConfig::default());
    let b = mine(&lines, PatternConfig::default());
    let alone = whole_range(&a, lines.len());
    let mut merged = a;
    merged.merge(b);
    let both = whole_range(&merged, lines.len());
    assert_eq!(alone.len(), 1);
    assert_eq!(both.len(), 1);
    assert_eq!(both[0].pattern, "user <_> logged in from <_>");
    assert_eq!(both[0].pattern, alone[0].pattern);
    let doubled: Vec<(i64, u64)> = alone[0].samples.iter().map(|&(t, n)| (t, 2 * n)).collect();
    assert_eq!(both[0].samples, doubled);
}

#[test]
fn samples_are_counted_per_step_within_the_range() {
    let mut miner = PatternMiner::new(keep_all());
    // 10 lines in each of three minutes, then nothing for two minutes, then 10 more.
    for minute in [0i64, 1, 2, 5] {
        for i in 0..10 {
            let ts = T0 + minute * 60 * SECOND + i * 5 * SECOND;
            miner.add(ts, &format!("request {i} done in {}ms", i * 7));
        }
    }
    let patterns = miner.finish(T0, T0 + 10 * 60 * SECOND, 60 * SECOND);
    assert_eq!(patterns.len(), 1);
    let t = T0 / SECOND;
    assert_eq!(
        patterns[0].samples,
        [
            (t, 10),
            (t + 60, 10),
            (t + 120, 10),
            (t + 180, 0),
            (t + 240, 0),
            (t + 300, 10)
        ]
    );
    // At the sample interval the buckets come as they are, gaps left out (nothing at 50 s).
    let patterns = miner.finish(T0, T0 + 61 * SECOND, 10 * SECOND);
    let buckets: Vec<(i64, u64)> = patterns[0].samples.iter().map(|s| (s.0 - t, s.1)).collect();
    assert_eq!(
        buckets,
        [(0, 2), (10, 2), (20, 2), (30, 2), (40, 2), (60, 2)]
    );
    // A range that starts mid-bucket leaves that bucket out, as Loki's does.
    let patterns = miner.finish(T0 + 3 * SECOND, T0 + 30 * SECOND, 10 * SECOND);
    let buckets: Vec<i64> = patterns[0].samples.iter().map(|s| s.0 - t).collect();
    assert_eq!(buckets, [10, 20]);
    // Nothing in range, nothing returned.
    assert!(
        miner
            .finish(T0 - 3600 * SECOND, T0 - 60 * SECOND, 60 * SECOND)
            .is_empty()
    );
}

#[test]
fn small_patterns_are_pruned_and_the_largest_come_first() {
    let mut miner = PatternMiner::new(PatternConfig::default());
    for i in 0..50 {
        miner.add(
            T0 + i * SECOND,
            &format!("cache miss for key k{i} after {i} tries"),
        );
    }
    for i in 0..40 {
        miner.add(
            T0 + i * SECOND,
            &format!("connection {i} closed by peer p{i}"),
        );
    }
    for i in 0..10 {
        miner.add(T0 + i * SECOND, &format!("rare event number {i} seen here"));
    }
    let patterns = miner.finish(T0, T0 + 100 * SECOND, 60 * SECOND);
    let summary: Vec<(&str, u64)> = patterns
        .iter()
        .map(|p| (p.pattern.as_str(), p.total()))
        .collect();
    assert_eq!(
        summary,
        [
            ("cache miss for key <_> after <_> tries", 50),
            ("connection <_> closed by peer <_>", 40)
        ]
    );
}

#[test]
fn logfmt_and_json_streams_use_their_tokenizers() {
    let mut logfmt = PatternMiner::new(keep_all());
    for i in 0..5 {
        logfmt.add(
            T0 + i * SECOND,
            &format!(
                r#"ts=2024-01-01T00:00:0{i}Z level=info msg="request done" status=200 took={i}ms"#
            ),
        );
    }
    let patterns = whole_range(&logfmt, 5);
    assert_eq!(patterns.len(), 1);
    assert_eq!(
        patterns[0].pattern,
        r#"ts=<_> level=info msg="request done" status=200 took=<_>"#
    );
    assert_eq!(patterns[0].level, Level::Info);

    let mut json = PatternMiner::new(keep_all());
    for i in 0..5 {
        json.add(
            T0 + i * SECOND,
            &format!(r#"{{"level":"error","msg":"upload of file f{i} failed after {i} retries"}}"#),
        );
    }
    let patterns = whole_range(&json, 5);
    assert_eq!(patterns.len(), 1);
    assert_eq!(
        patterns[0].pattern,
        "<_>upload of file <_> failed after <_> retries<_>"
    );
    assert_eq!(patterns[0].level, Level::Error);
}

#[test]
fn given_levels_file_patterns_apart() {
    let mut miner = PatternMiner::new(keep_all());
    for i in 0..6 {
        let level = if i % 2 == 0 { "WARNING" } else { "debug" };
        miner.add_with_level(
            T0 + i * SECOND,
            &format!("job {i} finished with code 0"),
            Level::from_value(level),
        );
    }
    let patterns = whole_range(&miner, 6);
    let levels: Vec<(Level, u64)> = patterns.iter().map(|p| (p.level, p.total())).collect();
    assert_eq!(levels, [(Level::Debug, 3), (Level::Warn, 3)]);
}

#[test]
fn json_shape_is_lokis() {
    let patterns = [
        Pattern {
            pattern: r#"<_> level=info msg="a & b""#.into(),
            level: Level::Info,
            samples: vec![(1_700_000_000, 3), (1_700_000_060, 0)],
        },
        Pattern {
            pattern: "x".into(),
            level: Level::Unknown,
            samples: vec![],
        },
    ];
    assert_eq!(
        render_json(&patterns),
        r#"{"status":"success","data":[{"pattern":"\u003c_\u003e level=info msg=\"a \u0026 b\"","level":"info","samples":[[1700000000,3],[1700000060,0]]},{"pattern":"x","level":"unknown","samples":[]}]}"#
    );
    assert_eq!(render_json(&[]), r#"{"status":"success","data":[]}"#);
    let parsed: serde_json::Value = serde_json::from_str(&render_json(&patterns)).unwrap();
    assert_eq!(
        parsed["data"][0]["pattern"],
        r#"<_> level=info msg="a & b""#
    );
}

#[test]
fn miners_can_move_between_cores() {
    fn is_send<T: Send>() {}
    is_send::<PatternMiner>();
}

/// Lines of words, numbers, punctuation, logfmt and JSON pieces, and arbitrary text.
fn line_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        proptest::collection::vec(
            prop_oneof![
                "[a-z]{1,8}",
                "[0-9]{1,6}",
                Just("=".to_string()),
                Just("\"".to_string()),
                Just("<_>".to_string()),
                Just("«".to_string()),
                Just("level=error".to_string()),
                "[ -~]{0,4}",
            ],
            0..100
        )
        .prop_map(|words| words.join(" ")),
        "\\{\"(msg|log|level)\":\"[ -~]{0,40}\"\\}",
        "([a-z]{1,5}=(\"[ -~]{0,10}\"|[a-z0-9]{0,5}) ){0,10}",
    ]
}

proptest! {
    #[test]
    fn random_lines_never_panic(
        lines in proptest::collection::vec((line_strategy(), -10i64..10_000), 1..60),
        split in 1usize..4,
        step in 0i64..200,
    ) {
        let config = PatternConfig {
            max_clusters: 8,
            min_pattern_lines: 0,
            ..PatternConfig::default()
        };
        let mut miners: Vec<PatternMiner> =
            (0..split).map(|_| PatternMiner::new(config.clone())).collect();
        for (i, (line, offset)) in lines.iter().enumerate() {
            miners[i % split].add(T0 + offset * SECOND, line);
        }
        let mut merged = PatternMiner::new(config);
        for miner in miners {
            merged.merge(miner);
        }
        let patterns = merged.finish(T0 - 20 * SECOND, T0 + 10_000 * SECOND, step * SECOND);
        prop_assert!(total(&patterns) <= lines.len() as u64);
        let body = render_json(&patterns);
        prop_assert!(serde_json::from_str::<serde_json::Value>(&body).is_ok());
    }
}

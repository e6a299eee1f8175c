//! Log patterns, as Loki's pattern ingester finds them (pkg/pattern, pkg/pattern/drain) and
//! `/loki/api/v1/patterns` returns them.
//!
//! Which question it answers: "what do these lines look like, with the variable parts
//! blanked out, and how many lines of each shape came when?" A [`PatternMiner`] plays one
//! Loki stream: the format of its first line picks the tokenizer (plain text, logfmt or the
//! message field of JSON), and each level (`detected_level`, or detected from the line as
//! Loki's distributor does) has its own Drain tree. [`PatternMiner::finish`] reads each
//! cluster's counts over the query's range per step and keeps what Loki's querier keeps:
//! patterns with at least 30 lines in the range, the 300 largest, largest first.
//!
//! Merging: a Drain tree is not mergeable (what it learns depends on the order lines come
//! in), so [`PatternMiner::merge`] re-clusters: every cluster of the other miner goes into
//! this miner's tree of the same format and level as if it were a line carrying the
//! cluster's counts, joining the most similar cluster (the tokens that differ becoming
//! `<_>`) or starting a new one. Identical patterns therefore add up exactly, as Loki's
//! querier adds up the same pattern from several streams and ingesters; patterns that are
//! merely similar fold into one where Loki would list them apart. Clusters go in smallest
//! first, so that when the 300-cluster bound evicts, it evicts the small ones. A shard mines
//! its streams (one miner per stream is Loki's unit; one per shard also works) and sends its
//! miner; the receiving core merges them and calls `finish`.
//!
//! Bounds: lines longer than `max_line_length` (3000 bytes) or with fewer than 4 or more
//! than 80 tokens are not mined; at most `max_clusters` clusters per tree; tree nodes are
//! pruned; sample buckets per cluster are at most the lines it counted. Differences from
//! Loki, all from mining at query time rather than at ingestion: lines may come in any time
//! order (Loki drops a stream's out-of-order lines); the eviction limiter pauses for ten
//! minutes of log time rather than wall time.

mod drain;
mod level;
mod tokenizer;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;

use drain::{Drain, DrainConfig, SampleRange};
pub use level::{Level, detect_level};
pub use tokenizer::{LogFormat, detect_log_format};

/// Loki's smallest step for pattern samples (`drain.TimeResolution`).
const TIME_RESOLUTION_MS: i64 = 10_000;

/// The settings of the miner; [`Default`] is Loki's (`drain.DefaultConfig`, the pattern
/// ingester's flags and its querier's pruning constants).
#[derive(Clone, Debug)]
pub struct PatternConfig {
    /// Drain's tree depth, the token-count layer and the leaf included (`LogClusterDepth`).
    pub log_cluster_depth: usize,
    /// The share of equal tokens a line needs to join a cluster (`SimTh`).
    pub similarity_threshold: f64,
    /// Children per tree node (`MaxChildren`).
    pub max_children: usize,
    /// Clusters per tree (format and level) before the least recently used is evicted.
    pub max_clusters: usize,
    /// Evictions per line let through above which training pauses (`MaxEvictionRatio`).
    pub max_eviction_ratio: f64,
    /// Longer lines (for JSON: message fields) are not mined (`MaxAllowedLineLength`).
    pub max_line_length: usize,
    /// The width of a cluster's count buckets (`SampleInterval`).
    pub sample_interval_ms: i64,
    /// The span of a chunk of samples (`MaxChunkAge`); steps sum within a chunk.
    pub max_chunk_age_ms: i64,
    /// Patterns with fewer lines in the queried range are left out (`minClusterSize`).
    pub min_pattern_lines: u64,
    /// At most this many patterns are returned, the largest (`maxPatterns`).
    pub max_patterns: usize,
}

impl Default for PatternConfig {
    fn default() -> PatternConfig {
        PatternConfig {
            log_cluster_depth: 30,
            similarity_threshold: 0.3,
            max_children: 15,
            max_clusters: 300,
            max_eviction_ratio: 0.25,
            max_line_length: 3000,
            sample_interval_ms: 10_000,
            max_chunk_age_ms: 3_600_000,
            min_pattern_lines: 30,
            max_patterns: 300,
        }
    }
}

impl PatternConfig {
    fn drain_config(&self) -> DrainConfig {
        DrainConfig {
            // Loki requires a depth of at least 3 (it panics below); the tree proper is the
            // depth minus the token-count layer and the leaf.
            max_node_depth: self.log_cluster_depth.max(3) - 2,
            similarity_threshold: self.similarity_threshold,
            max_children: self.max_children.max(1),
            max_clusters: self.max_clusters.max(1),
            max_eviction_ratio: self.max_eviction_ratio,
            max_line_length: self.max_line_length,
            sample_interval_ms: self.sample_interval_ms.max(1),
        }
    }
}

/// One pattern of the answer: its text, its level, and its line counts per step
/// (`(unix seconds, lines)`, ascending).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern {
    pub pattern: String,
    pub level: Level,
    pub samples: Vec<(i64, u64)>,
}

impl Pattern {
    /// The lines it counts in the range.
    pub fn total(&self) -> u64 {
        self.samples
            .iter()
            .fold(0u64, |t, (_, n)| t.saturating_add(*n))
    }
}

/// Mines the lines of a stream (or of several) for patterns. `Send`: a shard mines, then
/// sends its miner to the receiving core.
#[derive(Debug)]
pub struct PatternMiner {
    config: PatternConfig,
    /// Guessed from the first line, as Loki guesses a stream's format.
    format: Option<LogFormat>,
    /// One tree per format and level (a merged miner may hold several formats).
    drains: Vec<((LogFormat, Level), Drain)>,
}

impl PatternMiner {
    pub fn new(config: PatternConfig) -> PatternMiner {
        PatternMiner {
            config,
            format: None,
            drains: Vec::new(),
        }
    }

    /// Mines a line, filed under the level Loki's distributor would detect in it.
    pub fn add(&mut self, ts_ns: i64, line: &str) {
        self.add_with_level(ts_ns, line, detect_level(line));
    }

    /// Mines a line whose level is known (its `detected_level`; see [`Level::from_value`]).
    pub fn add_with_level(&mut self, ts_ns: i64, line: &str, level: Level) {
        let format = *self.format.get_or_insert_with(|| detect_log_format(line));
        self.drain_mut(format, level).train(line, ts_ns);
    }

    fn drain_mut(&mut self, format: LogFormat, level: Level) -> &mut Drain {
        let key = (format, level);
        let index = match self.drains.iter().position(|(k, _)| *k == key) {
            Some(i) => i,
            None => {
                let drain = Drain::new(format, self.config.drain_config());
                self.drains.push((key, drain));
                self.drains.len() - 1
            }
        };
        &mut self.drains[index].1
    }

    /// Folds another miner's clusters into this one (see the module comment: re-clustered,
    /// identical patterns summed exactly).
    pub fn merge(&mut self, other: PatternMiner) {
        if self.format.is_none() {
            self.format = other.format;
        }
        for ((format, level), drain) in other.drains {
            let mut clusters = drain.into_clusters();
            // Smallest first: the largest are then the most recently used, the last evicted.
            clusters.sort_by_key(|c| c.samples.total());
            let target = self.drain_mut(format, level);
            for cluster in clusters {
                target.absorb(cluster);
            }
        }
    }

    /// The patterns of `[start_ns, end_ns]` with their counts per `step_ns` (at least 10 s):
    /// Loki's pattern querier's answer, largest first.
    pub fn finish(&self, start_ns: i64, end_ns: i64, step_ns: i64) -> Vec<Pattern> {
        let through_ms = end_ns / 1_000_000 + i64::from(end_ns % 1_000_000 != 0);
        let range = SampleRange {
            from_ms: start_ns / 1_000_000,
            through_ms,
            step_ms: (step_ns / 1_000_000).max(TIME_RESOLUTION_MS),
            chunk_age_ms: self.config.max_chunk_age_ms.max(1),
        };
        let mut series: HashMap<(String, Level), BTreeMap<i64, u64>> = HashMap::new();
        for ((_, level), drain) in &self.drains {
            for cluster in drain.clusters() {
                let pattern = drain.pattern(cluster);
                if pattern.is_empty() {
                    continue;
                }
                let samples = series.entry((pattern, *level)).or_default();
                cluster
                    .samples
                    .add_range(&range, self.config.sample_interval_ms, samples);
            }
        }
        let mut patterns: Vec<Pattern> = series
            .into_iter()
            .filter(|(_, samples)| !samples.is_empty())
            .map(|((pattern, level), samples)| Pattern {
                pattern,
                level,
                samples: samples
                    .into_iter()
                    .map(|(ts_ms, n)| (ts_ms / 1000, n))
                    .collect(),
            })
            .filter(|p| p.total() >= self.config.min_pattern_lines)
            .collect();
        patterns.sort_by(|a, b| {
            b.total()
                .cmp(&a.total())
                .then_with(|| a.pattern.cmp(&b.pattern))
                .then_with(|| a.level.cmp(&b.level))
        });
        patterns.truncate(self.config.max_patterns);
        patterns
    }
}

/// The body of `/loki/api/v1/patterns`, as Loki writes it:
/// `{"status":"success","data":[{"pattern":"<_> took <_>","level":"info","samples":[[1700000000,42],...]}]}`,
/// the pattern with `<`, `>` and `&` escaped (`\u003c_\u003e`), as Loki's encoder does.
pub fn render_json(patterns: &[Pattern]) -> String {
    let mut out = String::with_capacity(64 + patterns.len() * 128);
    out.push_str(r#"{"status":"success","data":["#);
    for (i, p) in patterns.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(r#"{"pattern":"#);
        json_string_html_escaped(&mut out, &p.pattern);
        out.push_str(r#","level":""#);
        out.push_str(p.level.as_str());
        out.push_str(r#"","samples":["#);
        for (j, (ts, n)) in p.samples.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            let _ = write!(out, "[{ts},{n}]");
        }
        out.push_str("]}");
    }
    out.push_str("]}");
    out
}

/// A JSON string as jsoniter's `WriteStringWithHTMLEscaped` writes it.
fn json_string_html_escaped(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

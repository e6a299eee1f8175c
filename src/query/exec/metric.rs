//! The shard part of a metric query: every range aggregation (leaf) of the plan scans its
//! lines, runs its pipeline, extracts a sample (1, the line's bytes, or the unwrapped label)
//! and adds it to the leaf's accumulator, whose mergeable partial state goes back to the
//! receiving core (see [`crate::query::plan`] and [`crate::query::sample`]).
//!
//! A leaf without stages that counts lines or sums their bytes (`count_over_time`, `rate`,
//! `bytes_over_time`, `bytes_rate`, `absent_over_time`) is a counting leaf: a line's series
//! is its stream's unless its structured metadata reaches the output labels (a key the
//! grouping keeps, or an error label), so such lines skip the labels builder, and a decoded
//! block whose metadata cannot reach them is added interval run by interval run.

use std::sync::Arc;

use super::{QueryControl, ScanSink, ScanSpec};
use crate::chunk::BloomQuery;
use crate::chunk::DecodedBlock;
use crate::logql::{LineFilter, Stage};
use crate::model::{Labels, TimestampNs};
use crate::query::QueryError;
use crate::query::needles::required_literals;
use crate::query::params::Direction;
use crate::query::pipeline::{DUPLICATE_SUFFIX, LabelsBuilder, Pipeline, SAMPLE_EXTRACTION_ERR};
use crate::query::plan::{LeafPlan, MetricPlan, SampleSource};
use crate::query::sample::{LeafAccumulator, LeafPartial, OutputGrouping, convert};
use crate::shard::Shard;
use crate::tenants::federation::TenantScope;

/// What a leaf runs on every shard, compiled once on the receiving core.
#[derive(Debug)]
pub struct LeafExec {
    filters: Vec<LineFilter>,
    bloom: BloomQuery,
    pipeline: Pipeline,
    /// The pipeline storing only the labels the leaf reads ([`Pipeline::lean`]), when the
    /// output grouping keeps named labels only.
    lean: Option<Pipeline>,
    /// The label filters written after `unwrap`, run once the sample is extracted.
    post_filters: Pipeline,
}

impl LeafExec {
    pub fn new(leaf: &LeafPlan) -> Result<LeafExec, QueryError> {
        let log = leaf.log();
        let post: Vec<Stage> = leaf
            .unwrap()
            .map(|u| {
                u.post_filters
                    .iter()
                    .cloned()
                    .map(Stage::LabelFilter)
                    .collect()
            })
            .unwrap_or_default();
        // The labels a sample without error reads: its grouping's, the unwrapped label
        // and those the post-filters read.
        let lean = match leaf.output_grouping() {
            OutputGrouping::By(names) => Some((names.clone(), false)),
            OutputGrouping::Nothing => Some((Vec::new(), true)),
            OutputGrouping::All | OutputGrouping::Without(_) => None,
        };
        let lean = match lean {
            Some((mut wanted, no_labels)) => {
                if let Some(u) = leaf.unwrap() {
                    wanted.push(u.label.clone());
                }
                let post_filters = Pipeline::new(&post)?;
                post_filters.label_names(&mut wanted);
                Pipeline::lean(&log.stages, &wanted, no_labels)?
            }
            None => None,
        };
        Ok(LeafExec {
            filters: log.selector.filters.clone(),
            bloom: required_literals(&log.selector.filters),
            pipeline: Pipeline::new(&log.stages)?,
            lean,
            post_filters: Pipeline::new(&post)?,
        })
    }
}

/// A metric query as one shard runs it.
#[derive(Debug)]
pub struct MetricRequest {
    pub tenants: TenantScope,
    pub plan: Arc<MetricPlan>,
    /// One per leaf of the plan, in order.
    pub leaves: Vec<LeafExec>,
    /// Memory the partial states of all leaves may hold on one core.
    pub memory_bytes_max: usize,
    /// `max_query_series` (0: none), checked on the shards for the leaves that
    /// [`LeafPlan::bounds_series`].
    pub series_max: usize,
    pub control: Arc<QueryControl>,
}

impl MetricRequest {
    pub fn new(
        tenants: TenantScope,
        plan: Arc<MetricPlan>,
        memory_bytes_max: usize,
        series_max: usize,
        control: Arc<QueryControl>,
    ) -> Result<MetricRequest, QueryError> {
        let leaves = plan
            .leaves()
            .iter()
            .map(LeafExec::new)
            .collect::<Result<_, _>>()?;
        Ok(MetricRequest {
            tenants,
            plan,
            leaves,
            memory_bytes_max,
            series_max,
            control,
        })
    }
}

/// Runs every leaf of a metric query on one shard.
pub async fn run(shard: &Shard, r: &MetricRequest) -> Result<Vec<LeafPartial>, QueryError> {
    let mut out = Vec::with_capacity(r.leaves.len());
    let mut budget = r.memory_bytes_max;
    for (leaf, exec) in r.plan.leaves().iter().zip(&r.leaves) {
        let (start, end) = leaf.scan_range();
        let spec = ScanSpec {
            tenants: r.tenants.clone(),
            matchers: leaf.log().selector.matchers.clone(),
            start,
            end,
            direction: Direction::Forward,
            filters: exec.filters.clone(),
            bloom: exec.bloom.clone(),
            pairs: exec.pipeline.pair_query(),
            control: r.control.clone(),
        };
        let acc = leaf
            .accumulator(budget)
            .with_series_max(if leaf.bounds_series() {
                r.series_max
            } else {
                0
            });
        let mut sink = SampleSink::new(leaf, exec, acc);
        shard.scan(&spec, &mut sink).await?;
        budget = budget.saturating_sub(sink.acc.memory_bytes());
        out.push(sink.acc.finish());
    }
    Ok(out)
}

impl SampleSink<'_> {
    /// Runs `pipeline` on a line and extracts its sample: `None` when the line gives none.
    /// The line's labels are left in the builder.
    fn sample(
        &mut self,
        pipeline: &Pipeline,
        ts: TimestampNs,
        line: &str,
        metadata: &[(&str, &str)],
    ) -> Result<Option<f64>, QueryError> {
        let Some(lbs) = self.builder.as_mut() else {
            return Err(QueryError::Internal(
                "a scan pushed an entry before its stream".into(),
            ));
        };
        lbs.reset(metadata.iter().copied());
        let Some(out) = pipeline.run(ts, line, lbs) else {
            return Ok(None);
        };
        Ok(Some(match self.leaf.sample_source() {
            SampleSource::LineCount => 1.0,
            SampleSource::LineBytes => out.len() as f64,
            SampleSource::Unwrap(u) => {
                // A line without the label gives no sample (Loki: grafana/loki#6713).
                let value = match lbs.get(&u.label) {
                    None | Some("") => return Ok(None),
                    Some(v) => convert(u.conversion, v),
                };
                let value = match value {
                    Ok(v) => v,
                    Err(details) => {
                        lbs.set_error(SAMPLE_EXTRACTION_ERR);
                        lbs.set_error_details(&details);
                        0.0
                    }
                };
                if !self.exec.post_filters.is_noop()
                    && self.exec.post_filters.run(ts, &out, lbs).is_none()
                {
                    return Ok(None);
                }
                value
            }
        }))
    }
}

/// What a counting leaf adds per line (see the module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Counting {
    Lines,
    Bytes,
}

/// Turns a leaf's lines into samples.
struct SampleSink<'a> {
    leaf: &'a LeafPlan,
    exec: &'a LeafExec,
    acc: LeafAccumulator,
    builder: Option<LabelsBuilder>,
    /// Set for a counting leaf (see the module doc).
    counting: Option<Counting>,
    /// A counting leaf's series slot for the current stream, once a line has needed it.
    stream_slot: Option<u32>,
    /// The last interval a counting line fell in, with its times `(open, closed]`.
    interval: Option<(i64, i64, u32)>,
    /// Whether the pipeline's label filters drop the current stream's lines by its labels
    /// alone (unless a line's structured metadata says otherwise).
    stream_ruled_out: bool,
}

impl<'a> SampleSink<'a> {
    fn new(leaf: &'a LeafPlan, exec: &'a LeafExec, acc: LeafAccumulator) -> SampleSink<'a> {
        let counting = match (exec.pipeline.is_noop(), leaf.sample_source()) {
            (true, SampleSource::LineCount) => Some(Counting::Lines),
            (true, SampleSource::LineBytes) => Some(Counting::Bytes),
            _ => None,
        };
        SampleSink {
            leaf,
            exec,
            acc,
            builder: None,
            counting,
            stream_slot: None,
            interval: None,
            stream_ruled_out: false,
        }
    }

    /// Whether the current stream's labels rule a line with this structured metadata out
    /// (see [`Pipeline::rules_out_stream`]).
    #[inline]
    fn ruled_out<'k>(&self, mut metadata_keys: impl Iterator<Item = &'k str>) -> bool {
        self.stream_ruled_out
            && !metadata_keys.any(|k| self.exec.pipeline.reads_metadata_for_verdict(k))
    }

    /// The interval of a line at `ts`, or `None` when no window holds it.
    #[inline]
    fn interval_of(&mut self, ts: TimestampNs) -> Option<u32> {
        if let Some((open, closed, j)) = self.interval
            && open < ts
            && ts <= closed
        {
            return Some(j);
        }
        let j = self.acc.windows().interval_of(ts)?;
        if let Some((open, closed)) = self.acc.windows().interval_span(j) {
            self.interval = Some((open, closed, j));
        }
        Some(j)
    }

    /// The current stream's series slot for a counting leaf.
    fn stream_slot(&mut self) -> Result<u32, QueryError> {
        if let Some(slot) = self.stream_slot {
            return Ok(slot);
        }
        let Some(lbs) = self.builder.as_ref() else {
            return Err(QueryError::Internal(
                "a scan pushed an entry before its stream".into(),
            ));
        };
        let slot = self
            .acc
            .slot_of(lbs.stream_hash(), || lbs.stream().clone())?;
        self.stream_slot = Some(slot);
        Ok(slot)
    }

    /// Whether a structured metadata key leaves a counting line's series the stream's: it
    /// is not an error label and the output grouping drops the name the builder gives it.
    fn metadata_key_is_inert(&self, key: &str) -> bool {
        if key.starts_with("__") {
            // `__error__` and `__error_details__` set the line's error; other reserved
            // names take the general path too, to be safe.
            return false;
        }
        let renamed = self.builder.as_ref().is_some_and(|b| b.base_has(key));
        let is_name = |n: &String| {
            if renamed {
                n.strip_suffix(DUPLICATE_SUFFIX) == Some(key)
            } else {
                n == key
            }
        };
        match self.leaf.output_grouping() {
            OutputGrouping::All => false,
            OutputGrouping::Nothing => true,
            OutputGrouping::By(names) => !names.iter().any(is_name),
            OutputGrouping::Without(names) => names.iter().any(is_name),
        }
    }

    /// A counting leaf's line whose metadata is inert: one sample into the stream's series.
    #[inline]
    fn push_counting(
        &mut self,
        counting: Counting,
        ts: TimestampNs,
        line: &str,
    ) -> Result<(), QueryError> {
        let Some(j) = self.interval_of(ts) else {
            return Ok(());
        };
        let slot = self.stream_slot()?;
        let value = match counting {
            Counting::Lines => 1.0,
            Counting::Bytes => line.len() as f64,
        };
        self.acc.push_to_slot(slot, j, ts, value)
    }
}

impl ScanSink for SampleSink<'_> {
    fn begin_stream(&mut self, labels: &Labels) {
        self.builder = Some(LabelsBuilder::new(labels));
        self.stream_slot = None;
        self.stream_ruled_out = self.exec.pipeline.rules_out_stream(labels);
    }

    fn cutoff(&self) -> Option<TimestampNs> {
        None
    }

    fn push(
        &mut self,
        ts: TimestampNs,
        line: &str,
        metadata: &[(&str, &str)],
    ) -> Result<(), QueryError> {
        if self.ruled_out(metadata.iter().map(|(k, _)| *k)) {
            return Ok(());
        }
        if let Some(counting) = self.counting
            && metadata.iter().all(|(k, _)| self.metadata_key_is_inert(k))
        {
            return self.push_counting(counting, ts, line);
        }
        if !self.leaf.covers(ts) {
            return Ok(());
        }
        let exec = self.exec;
        let mut value = self.sample(
            exec.lean.as_ref().unwrap_or(&exec.pipeline),
            ts,
            line,
            metadata,
        )?;
        // A sample with an error keeps every label: the lean pipeline did not store them all.
        if exec.lean.is_some()
            && value.is_some()
            && self.builder.as_ref().is_some_and(|b| b.has_error())
        {
            value = self.sample(&exec.pipeline, ts, line, metadata)?;
        }
        let (Some(value), Some(lbs)) = (value, self.builder.as_ref()) else {
            return Ok(());
        };
        self.acc
            .push_hashed(lbs.labels_hash(), || lbs.labels(), ts, value)
    }

    fn push_block(
        &mut self,
        block: &DecodedBlock,
        lo: usize,
        hi: usize,
    ) -> Result<bool, QueryError> {
        // A block of a stream the filters rule out gives nothing, unless a line's metadata
        // could change the verdict.
        if self.ruled_out(block.metadata_keys()) {
            return Ok(true);
        }
        let Some(counting) = self.counting else {
            return Ok(false);
        };
        if !self.acc.takes_runs() || !block.metadata_keys().all(|k| self.metadata_key_is_inert(k)) {
            return Ok(false);
        }
        let Some(timestamps) = block.timestamps().get(lo..hi) else {
            return Ok(false);
        };
        // The stream's series is taken at the first line inside a window (`stream_slot`
        // when a run is added), as the per-line path does: a block with none must not make a
        // series, which would count against `max_query_series` and the memory budget
        // without ever giving a value.
        // The current run: its interval, its lines and their bytes.
        let mut run: Option<(u32, u64, u64)> = None;
        for (i, &ts) in (lo..hi).zip(timestamps) {
            let j = self.interval_of(ts);
            let Some(j) = j else {
                continue;
            };
            let bytes = match counting {
                Counting::Lines => 0,
                Counting::Bytes => block.line_len(i) as u64,
            };
            match &mut run {
                Some((rj, n, b)) if *rj == j => {
                    *n += 1;
                    *b += bytes;
                }
                _ => {
                    if let Some((rj, n, b)) = run.take() {
                        let s = self.stream_slot()?;
                        self.acc.push_run(s, rj, n, run_value(counting, n, b))?;
                    }
                    run = Some((j, 1, bytes));
                }
            }
        }
        if let Some((rj, n, b)) = run {
            let s = self.stream_slot()?;
            self.acc.push_run(s, rj, n, run_value(counting, n, b))?;
        }
        Ok(true)
    }
}

/// The sum of the values of a run of `lines` lines of `bytes` bytes, as their samples give it.
fn run_value(counting: Counting, lines: u64, bytes: u64) -> f64 {
    match counting {
        Counting::Lines => lines as f64,
        Counting::Bytes => bytes as f64,
    }
}

#[cfg(test)]
mod tests {
    //! The counting fast paths (per line and per decoded block) against the general path.

    use super::*;
    use crate::chunk::EntryInput;
    use crate::logql::parse_sample_expr;
    use crate::query::pipeline::{ERROR_LABEL, JSON_PARSER_ERR};
    use crate::query::plan::{Steps, plan_metric};

    const S: i64 = 1_000_000_000;

    /// Metadata sets: inert for some groupings, reaching the output or the error for others.
    const METADATA: &[&[(&str, &str)]] = &[
        &[],
        &[("trace", "t1")],
        &[("trace", "t2"), ("span", "")],
        &[("pod", "9")],
        &[("__error__", "boom")],
        &[("__error_details__", "why")],
        &[("__other", "x")],
    ];

    /// The finished table of a leaf after `feed`, by the fast paths or the general one.
    fn table_after(
        query: &str,
        fast: bool,
        feed: &dyn Fn(&mut SampleSink<'_>) -> Result<(), QueryError>,
    ) -> Result<String, QueryError> {
        let expr = parse_sample_expr(query).expect("a valid query");
        let plan = plan_metric(&expr, Steps::range(60 * S, 600 * S, 60 * S)).expect("a plan");
        let leaf = &plan.leaves()[0];
        let exec = LeafExec::new(leaf)?;
        let mut sink = SampleSink::new(leaf, &exec, leaf.accumulator(1 << 24));
        if !fast {
            sink.counting = None;
        }
        feed(&mut sink)?;
        Ok(format!("{:?}", sink.acc.finish().table))
    }

    /// Pseudo-random entries of one stream, sorted by time, some outside every window.
    fn entries(seed: u64, n: usize) -> Vec<(i64, String, usize)> {
        let mut x = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut ts = 30 * S;
        (0..n)
            .map(|_| {
                // Steps of up to 20 s, sometimes landing on an interval's closed end.
                ts += if next() % 5 == 0 {
                    (60 * S) - ts.rem_euclid(60 * S)
                } else {
                    (next() % (20 * S as u64)) as i64
                };
                let line = "x".repeat((next() % 40) as usize);
                let md = (next() % 4 == 0) as usize * (next() as usize % METADATA.len());
                (ts, line, md)
            })
            .collect()
    }

    const QUERIES: &[&str] = &[
        "count_over_time({app=\"a\"}[1m])",
        "sum by (app) (count_over_time({app=\"a\"}[1m]))",
        "sum by (trace) (count_over_time({app=\"a\"}[2m]))",
        "sum by (pod_extracted) (rate({app=\"a\"}[1m]))",
        "sum without (trace, span) (bytes_over_time({app=\"a\"}[1m]))",
        "sum by () (bytes_rate({app=\"a\"}[90s]))",
        "sum by (app, pod) (bytes_over_time({app=\"a\"}[30s]))",
        "absent_over_time({app=\"a\"}[1m])",
    ];

    #[test]
    fn counting_lines_match_the_general_path() {
        let stream = Labels::from_pairs([("app", "a"), ("pod", "1")]);
        for seed in 0..20 {
            let es = entries(seed, 300);
            let per_line = |sink: &mut SampleSink<'_>| -> Result<(), QueryError> {
                sink.begin_stream(&stream);
                for (ts, line, md) in &es {
                    let md = METADATA.get(*md).copied().unwrap_or_default();
                    sink.push(*ts, line, md)?;
                }
                Ok(())
            };
            // Blocks of 50 entries, each offered at once, over two streams' worth of calls.
            let per_block = |sink: &mut SampleSink<'_>| -> Result<(), QueryError> {
                sink.begin_stream(&stream);
                for chunk in es.chunks(50) {
                    let inputs: Vec<EntryInput<'_>> = chunk
                        .iter()
                        .map(|(ts, line, md)| {
                            (
                                *ts,
                                line.as_str(),
                                METADATA.get(*md).copied().unwrap_or_default(),
                            )
                        })
                        .collect();
                    let block = DecodedBlock::for_tests(&inputs);
                    let lo = 0;
                    let hi = block.len();
                    if !sink.push_block(&block, lo, hi)? {
                        for i in lo..hi {
                            let e = block.entry(i);
                            let md: Vec<(&str, &str)> = e.metadata.iter().collect();
                            sink.push(e.ts, e.line, &md)?;
                        }
                    }
                }
                Ok(())
            };
            for q in QUERIES {
                let general = table_after(q, false, &per_line).unwrap();
                assert_eq!(
                    table_after(q, true, &per_line).unwrap(),
                    general,
                    "{q} per line, seed {seed}"
                );
                assert_eq!(
                    table_after(q, true, &per_block).unwrap(),
                    general,
                    "{q} per block, seed {seed}"
                );
            }
        }
    }

    /// Lines for the parser stages: JSON (nested, escaped, truncated), logfmt (quoted,
    /// malformed), a key colliding with the stream, values that fail conversions.
    const PARSED_LINES: &[&str] = &[
        r#"{"status":503,"app":"x","duration":"12ms","level":"error","req":{"path":"/a","ms":3}}"#,
        r#"{"status":"200","duration":"1.5s","level":"info","msg":"a \"quoted\" word"}"#,
        r#"{"status":500,"duration":"oops","level":"err"}"#,
        r#"{"status":502,"level":"error","req":{"path":"/b"#,
        r#"{"status":"abc","level":"errata"}"#,
        r#"level=error status=500 duration=250us app=y msg="it failed""#,
        r#"level=info status=200 duration=3m2s"#,
        r#"level=err status=504 duration=7 x="#,
        r#"level="error" status= =bad duration=1h"#,
        r#"plain text without pairs"#,
        r#"level=error level=info status=501 status=200"#,
    ];

    const PARSED_QUERIES: &[&str] = &[
        "sum by (level) (rate({app=\"a\"} | logfmt | level=~\"err.*\" [1m]))",
        "sum by (level) (count_over_time({app=\"a\"} | logfmt --strict [1m]))",
        "sum by (app) (count_over_time({app=\"a\"} | json | status >= 500 [1m]))",
        "sum by (app) (count_over_time({app=\"a\"} | json | __error__=\"\" | status >= 500 [1m]))",
        "quantile_over_time(0.99, {app=\"a\"} | json | unwrap duration(duration) [1m]) by (app)",
        "quantile_over_time(0.5, {app=\"a\"} | json | __error__=\"\" | unwrap duration(duration) | level=\"error\" [1m]) by (level)",
        "sum by (app_extracted) (sum_over_time({app=\"a\"} | logfmt | unwrap status [1m]))",
        "max_over_time({app=\"a\"} | json | logfmt | unwrap status [1m]) by (req_path)",
        "sum by () (count_over_time({app=\"a\"} | json | level=\"error\" or req_ms > 1 [1m]))",
        "sum(bytes_over_time({app=\"a\"} | logfmt | status=\"500\" [1m]))",
    ];

    /// On lines the full pipeline reads without error, the lean one gives the same samples.
    /// (On the others it may stop before the error, as Loki does: see
    /// `lean_parsers_stop_once_they_have_the_labels_they_need`.)
    #[test]
    fn lean_parsers_match_the_full_pipeline() {
        let stream = Labels::from_pairs([("app", "a"), ("pod", "1")]);
        for q in PARSED_QUERIES {
            let expr = parse_sample_expr(q).expect("a valid query");
            let plan = plan_metric(&expr, Steps::range(60 * S, 780 * S, 60 * S)).unwrap();
            let leaf = &plan.leaves()[0];
            let exec = LeafExec::new(leaf).unwrap();
            assert!(exec.lean.is_some(), "{q} has a lean pipeline");
            let clean = |i: usize, line: &str| {
                let md = METADATA.get(i % 9).copied().unwrap_or_default();
                exec.pipeline
                    .run_once(0, line, &stream, md.iter().copied())
                    .is_none_or(|(_, labels)| labels.get(ERROR_LABEL).is_none())
            };
            let feed = |sink: &mut SampleSink<'_>| -> Result<(), QueryError> {
                sink.begin_stream(&stream);
                for (i, line) in PARSED_LINES.iter().cycle().take(200).enumerate() {
                    if !clean(i, line) {
                        continue;
                    }
                    let md = METADATA.get(i % 9).copied().unwrap_or_default();
                    sink.push(60 * S + (i as i64) * 3 * S, line, md)?;
                }
                Ok(())
            };
            let mut lean = SampleSink::new(leaf, &exec, leaf.accumulator(1 << 24));
            feed(&mut lean).unwrap();
            let full_exec = LeafExec {
                lean: None,
                ..LeafExec::new(leaf).unwrap()
            };
            let mut full = SampleSink::new(leaf, &full_exec, leaf.accumulator(1 << 24));
            feed(&mut full).unwrap();
            assert_eq!(
                format!("{:?}", lean.acc.finish().table),
                format!("{:?}", full.acc.finish().table),
                "{q}"
            );
        }
    }

    /// Loki's parser hints: a leaf that keeps only named labels reads a line until it has
    /// them, and one that keeps none and filters on none does not parse at all; what is
    /// broken further on sets no error.
    #[test]
    fn lean_parsers_stop_once_they_have_the_labels_they_need() {
        let stream = Labels::from_pairs([("app", "a")]);
        let count = |q: &str, line: &str| -> Result<String, QueryError> {
            let expr = parse_sample_expr(q).expect("a valid query");
            let plan = plan_metric(&expr, Steps::range(60 * S, 60 * S, 60 * S)).unwrap();
            let leaf = &plan.leaves()[0];
            let exec = LeafExec::new(leaf).unwrap();
            let mut sink = SampleSink::new(leaf, &exec, leaf.accumulator(1 << 24));
            sink.begin_stream(&stream);
            sink.push(30 * S, line, &[])?;
            Ok(format!("{:?}", sink.acc.finish().table))
        };
        let truncated = r#"{"status":503,"level":"error","msg":"cut sh"#;
        for q in [
            "sum(count_over_time({app=\"a\"} | json | status >= 500 [1m]))",
            "sum by (level) (count_over_time({app=\"a\"} | json | status >= 500 [1m]))",
            "sum(count_over_time({app=\"a\"} | json [1m]))",
            "sum(count_over_time({app=\"a\"} | logfmt --strict [1m]))",
        ] {
            let table = count(q, truncated).unwrap();
            assert!(!table.contains(ERROR_LABEL), "{q}: {table}");
            assert!(table.contains("Count(1.0)"), "{q}: {table}");
        }
        // The error comes before the labels, or every label is kept: it is seen.
        for q in [
            "sum by (msg) (count_over_time({app=\"a\"} | json [1m]))",
            "sum by (level) (count_over_time({app=\"a\"} | json | __error__=\"\" [1m]))",
            "count_over_time({app=\"a\"} | json [1m])",
        ] {
            let table = count(q, truncated).unwrap();
            assert!(
                table.contains(JSON_PARSER_ERR) || table == "Count([])",
                "{q}: {table}"
            );
        }
        let late = r#"level=error status= =bad"#;
        let table = count(
            "sum by (level) (count_over_time({app=\"a\"} | logfmt --strict [1m]))",
            late,
        )
        .unwrap();
        assert!(!table.contains(ERROR_LABEL), "{table}");
    }

    /// A stream whose label fails the query's filter gives nothing, block by block or line
    /// by line. A line with structured metadata of that name goes through the pipeline, which
    /// renames the metadata `level_extracted` (as Loki's builder does), so it is dropped too.
    #[test]
    fn streams_ruled_out_by_their_labels_give_only_lines_their_metadata_keeps() {
        let q = "sum by (level) (count_over_time({app=\"a\"} | logfmt | level=~\"err.*\" [1m]))";
        let expr = parse_sample_expr(q).expect("a valid query");
        let plan = plan_metric(&expr, Steps::range(60 * S, 60 * S, 60 * S)).unwrap();
        let leaf = &plan.leaves()[0];
        let exec = LeafExec::new(leaf).unwrap();
        let mut sink = SampleSink::new(leaf, &exec, leaf.accumulator(1 << 24));
        sink.begin_stream(&Labels::from_pairs([("app", "a"), ("level", "info")]));
        let plain = DecodedBlock::for_tests(&[(10 * S, "level=error", &[]), (20 * S, "x=1", &[])]);
        assert!(
            sink.push_block(&plain, 0, plain.len()).unwrap(),
            "the block is ruled out"
        );
        sink.push(30 * S, "level=error", &[]).unwrap();
        let overridden: &[(&str, &str)] = &[("level", "error")];
        let marked = DecodedBlock::for_tests(&[(40 * S, "msg=x", overridden)]);
        assert!(
            !sink.push_block(&marked, 0, marked.len()).unwrap(),
            "metadata may keep it"
        );
        sink.push(40 * S, "msg=x", overridden).unwrap();
        sink.begin_stream(&Labels::from_pairs([("app", "a"), ("level", "error")]));
        sink.push(50 * S, "msg=y", &[]).unwrap();
        let table = format!("{:?}", sink.acc.finish().table);
        assert_eq!(
            table,
            r#"Count([SeriesCells { labels: Labels { pairs: [("level", "error")] }, intervals: [0], cells: [Count(1.0)] }])"#
        );
    }

    #[test]
    fn a_block_with_no_line_in_a_window_makes_no_series() {
        // Steps 300 s apart with [1m]: windows (240,300] and (540,600]; the lines at 30 s
        // and 100 s are in none, as is an empty range of a block.
        let expr = parse_sample_expr("count_over_time({app=\"a\"}[1m])").unwrap();
        let plan = plan_metric(&expr, Steps::range(300 * S, 600 * S, 300 * S)).unwrap();
        let leaf = &plan.leaves()[0];
        let exec = LeafExec::new(leaf).unwrap();
        let mut sink = SampleSink::new(leaf, &exec, leaf.accumulator(1 << 24).with_series_max(1));
        let outside = DecodedBlock::for_tests(&[(30 * S, "x", &[]), (100 * S, "y", &[])]);
        for n in 0..3 {
            sink.begin_stream(&Labels::from_pairs([("app", "a"), ("n", &n.to_string())]));
            assert!(sink.push_block(&outside, 0, outside.len()).unwrap());
            assert!(sink.push_block(&outside, 1, 1).unwrap());
        }
        // One stream with a line in a window: one series, within a limit of one.
        sink.begin_stream(&Labels::from_pairs([("app", "a"), ("n", "9")]));
        let inside = DecodedBlock::for_tests(&[(290 * S, "z", &[])]);
        assert!(sink.push_block(&inside, 0, 1).unwrap());
        assert_eq!(sink.acc.finish().table.len(), 1);
    }

    #[test]
    fn only_named_groupings_and_plain_stages_are_lean() {
        for (q, lean) in [
            (
                "sum by (a) (count_over_time({app=\"a\"} | json [1m]))",
                true,
            ),
            ("count_over_time({app=\"a\"} | json [1m])", false),
            (
                "sum without (a) (count_over_time({app=\"a\"} | json [1m]))",
                false,
            ),
            (
                "sum by (a) (count_over_time({app=\"a\"} | json | line_format \"{{.b}}\" [1m]))",
                false,
            ),
            (
                "sum by (a) (count_over_time({app=\"a\"} | json x=\"y\" [1m]))",
                false,
            ),
            (
                "sum by (a) (count_over_time({app=\"a\"} | a=\"1\" [1m]))",
                false,
            ),
        ] {
            let expr = parse_sample_expr(q).unwrap();
            let plan = plan_metric(&expr, Steps::instant(60 * S)).unwrap();
            assert_eq!(
                LeafExec::new(&plan.leaves()[0]).unwrap().lean.is_some(),
                lean,
                "{q}"
            );
        }
    }

    #[test]
    fn only_stage_free_counting_leaves_count() {
        for (q, counting) in [
            ("count_over_time({app=\"a\"}[1m])", Some(Counting::Lines)),
            ("bytes_rate({app=\"a\"}[1m])", Some(Counting::Bytes)),
            ("count_over_time({app=\"a\"} | logfmt [1m])", None),
            ("sum_over_time({app=\"a\"} | unwrap v [1m])", None),
            ("rate({app=\"a\"} |= \"x\" [1m])", Some(Counting::Lines)),
        ] {
            let expr = parse_sample_expr(q).unwrap();
            let plan = plan_metric(&expr, Steps::instant(60 * S)).unwrap();
            let leaf = &plan.leaves()[0];
            let exec = LeafExec::new(leaf).unwrap();
            let sink = SampleSink::new(leaf, &exec, leaf.accumulator(1 << 20));
            assert_eq!(sink.counting, counting, "{q}");
        }
    }
}

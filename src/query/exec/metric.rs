//! The shard part of a metric query: every range aggregation (leaf) of the plan scans its
//! lines, runs its pipeline, extracts a sample (1, the line's bytes, or the unwrapped label)
//! and adds it to the leaf's accumulator, whose mergeable partial state goes back to the
//! receiving core (see [`crate::query::plan`] and [`crate::query::sample`]).

use std::sync::Arc;

use super::{QueryControl, ScanSink, ScanSpec};
use crate::chunk::BloomQuery;
use crate::logql::{LineFilter, Stage};
use crate::model::{Labels, TimestampNs};
use crate::query::QueryError;
use crate::query::needles::required_literals;
use crate::query::params::Direction;
use crate::query::pipeline::{LabelsBuilder, Pipeline, SAMPLE_EXTRACTION_ERR};
use crate::query::plan::{LeafPlan, MetricPlan, SampleSource};
use crate::query::sample::{LeafAccumulator, LeafPartial, convert};
use crate::shard::Shard;

/// What a leaf runs on every shard, compiled once on the receiving core.
#[derive(Debug)]
pub struct LeafExec {
    filters: Vec<LineFilter>,
    bloom: BloomQuery,
    pipeline: Pipeline,
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
        Ok(LeafExec {
            filters: log.selector.filters.clone(),
            bloom: required_literals(&log.selector.filters),
            pipeline: Pipeline::new(&log.stages)?,
            post_filters: Pipeline::new(&post)?,
        })
    }
}

/// A metric query as one shard runs it.
#[derive(Debug)]
pub struct MetricRequest {
    pub tenant: String,
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
        tenant: &str,
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
            tenant: tenant.to_string(),
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
            tenant: r.tenant.clone(),
            matchers: leaf.log().selector.matchers.clone(),
            start,
            end,
            direction: Direction::Forward,
            filters: exec.filters.clone(),
            bloom: exec.bloom.clone(),
            control: r.control.clone(),
        };
        let mut sink = SampleSink {
            leaf,
            exec,
            acc: leaf
                .accumulator(budget)
                .with_series_max(if leaf.bounds_series() {
                    r.series_max
                } else {
                    0
                }),
            builder: None,
        };
        shard.scan(&spec, &mut sink).await?;
        budget = budget.saturating_sub(sink.acc.memory_bytes());
        out.push(sink.acc.finish());
    }
    Ok(out)
}

/// Turns a leaf's lines into samples.
struct SampleSink<'a> {
    leaf: &'a LeafPlan,
    exec: &'a LeafExec,
    acc: LeafAccumulator,
    builder: Option<LabelsBuilder>,
}

impl ScanSink for SampleSink<'_> {
    fn begin_stream(&mut self, labels: &Labels) {
        self.builder = Some(LabelsBuilder::new(labels));
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
        if !self.leaf.covers(ts) {
            return Ok(());
        }
        let Some(lbs) = self.builder.as_mut() else {
            return Err(QueryError::Internal(
                "a scan pushed an entry before its stream".into(),
            ));
        };
        lbs.reset(metadata.iter().copied());
        let Some(out) = self.exec.pipeline.run(ts, line, lbs) else {
            return Ok(());
        };
        let value = match self.leaf.sample_source() {
            SampleSource::LineCount => 1.0,
            SampleSource::LineBytes => out.len() as f64,
            SampleSource::Unwrap(u) => {
                // A line without the label gives no sample (Loki: grafana/loki#6713).
                let value = match lbs.get(&u.label) {
                    None | Some("") => return Ok(()),
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
                    return Ok(());
                }
                value
            }
        };
        let lbs = &*lbs;
        self.acc
            .push_hashed(lbs.labels_hash(), || lbs.labels(), ts, value)
    }
}

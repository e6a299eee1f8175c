//! The shard part of `/loki/api/v1/patterns`: every line of the selected streams in the
//! range (after the leading line filters) goes into one Drain miner per shard; the receiving
//! core merges the miners and renders the patterns (see [`crate::query::patterns`]).

use std::sync::Arc;

use super::{QueryControl, ScanSink, ScanSpec};
use crate::logql::LogSelector;
use crate::model::{Labels, TimestampNs};
use crate::query::QueryError;
use crate::query::needles::required_literals;
use crate::query::params::Direction;
use crate::query::patterns::{PatternConfig, PatternMiner};
use crate::shard::Shard;
use crate::tenants::federation::TenantScope;

#[derive(Debug)]
pub struct PatternsRequest {
    pub tenants: TenantScope,
    pub selector: LogSelector,
    pub start: TimestampNs,
    pub end: TimestampNs,
    pub control: Arc<QueryControl>,
}

/// Mines the patterns of a shard's matching lines.
pub async fn run(shard: &Shard, r: &PatternsRequest) -> Result<PatternMiner, QueryError> {
    let spec = ScanSpec {
        tenants: r.tenants.clone(),
        matchers: r.selector.matchers.clone(),
        start: r.start,
        end: r.end,
        direction: Direction::Forward,
        filters: r.selector.filters.clone(),
        bloom: required_literals(&r.selector.filters),
        pairs: Default::default(),
        control: r.control.clone(),
    };
    let mut sink = MinerSink(PatternMiner::new(PatternConfig::default()));
    shard.scan(&spec, &mut sink).await?;
    Ok(sink.0)
}

struct MinerSink(PatternMiner);

impl ScanSink for MinerSink {
    fn begin_stream(&mut self, _labels: &Labels) {}

    fn cutoff(&self) -> Option<TimestampNs> {
        None
    }

    fn push(
        &mut self,
        ts: TimestampNs,
        line: &str,
        _metadata: &[(&str, &str)],
    ) -> Result<(), QueryError> {
        self.0.add(ts, line);
        Ok(())
    }
}

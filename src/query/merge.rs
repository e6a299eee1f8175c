//! placeholder until the merge lands.
use crate::model::Labels;
use super::params::Direction;
#[derive(Debug, Clone, Default)]
pub struct PartialStream { pub labels: Labels, pub entries: Vec<(i64, String, Vec<(String, String)>)> }
#[derive(Debug, Clone, Default)]
pub struct Partial { pub streams: Vec<PartialStream> }
pub fn merge_partials(partials: Vec<Partial>, _direction: Direction, _limit: usize) -> Vec<PartialStream> { partials.into_iter().flat_map(|p| p.streams).collect() }

//! placeholder until the params land.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction { Forward, Backward }

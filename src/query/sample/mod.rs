//! Samples and the shard side of metric queries: unwrap conversions, the time layout of a
//! range aggregation, and its mergeable per-series partial states.
//!
//! Which question it answers: "what does a shard keep of the samples a range aggregation
//! extracts, so that the receiving core can finish the answer exactly?" The caller runs a
//! leaf's pipeline on each line (and [`convert`] on the unwrapped label), then pushes the
//! sample into the leaf's [`LeafAccumulator`]. The state is kept per output series (after
//! the leaf's [`OutputGrouping`]) and per elementary interval of the leaf's [`Windows`]:
//! intervals, not steps, so that overlapping windows share state and a sample is stored
//! once. [`LeafPartial`]s of several shards merge exactly; `query::eval` reads the windows
//! out of the merged partial.

mod accumulator;
pub(crate) mod cells;
mod convert;
mod grouping;
pub(crate) mod table;
mod windows;

pub use accumulator::{LeafAccumulator, LeafPartial};
pub use convert::{convert, go_seconds, parse_go_float, parse_humanized_bytes};
pub use grouping::{
    ERROR_DETAILS_LABEL, ERROR_LABEL, OutputGrouping, PRESERVE_ERROR_LABEL, fails_query,
};
pub use windows::Windows;

pub(crate) use accumulator::cell_kind;

#[cfg(test)]
mod tests;

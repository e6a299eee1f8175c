//! placeholder
pub mod merge;
pub mod params;

//! The query engine: everything between a parsed LogQL expression and the merged answer.
//!
//! Which question it answers: "what does this query return?" `logql/` gives the syntax
//! tree; here `params` applies Loki's HTTP parameter rules, `plan` splits a query into the
//! part every shard runs and the part the receiving core runs, `pipeline` runs the stages of
//! a log query on one line with a labels builder, `sample` turns lines into samples and
//! mergeable per-series partial states, `exec` runs a shard's part of a plan against the
//! shard and pushes into a sink with a cutoff, and `merge` and `eval` finish the answer on
//! the receiving core; `template` is Go's text/template with Loki's functions, for
//! `line_format` and `label_format`; `patterns` mines log patterns (`/patterns`) and
//! `fields` detects fields and labels (`/detected_fields`, `/detected_labels`). Errors are
//! [`QueryError`] throughout.

pub mod engine;
pub mod error;
pub mod eval;
pub mod exec;
pub mod fields;
pub mod merge;
pub mod needles;
pub mod pairs;
pub mod params;
pub mod patterns;
pub mod pipeline;
pub mod plan;
pub mod sample;
pub mod template;

pub use error::QueryError;

#[cfg(test)]
pub(crate) mod testkit;

//! LogQL: the lexer, the recursive-descent parser, the syntax tree with its canonical printer,
//! and the compiled matchers that the query path runs against streams and lines.
//!
//! Which question it answers: "what does this query ask for, and does this stream / this line
//! match it?" [`parse_expr`] turns text into an [`Expr`]: all of LogQL as Loki 3 defines it
//! (log queries with every pipeline stage, range and vector aggregations, binary operators,
//! literals, `vector()`, `label_replace()`), accepted and refused as Loki's parser accepts and
//! refuses them, and printed back (`Display`) exactly as Loki's `String()` prints them. Label
//! matchers and line filters come out of the parser already compiled (regexes, substring
//! finders, patterns, IP ranges), are `Send + Sync`, and are shared by every core through an
//! `Arc`; the other stages are validated here and compiled by the query engine.
//!
//! Regular expressions use the `regex` crate (linear time, like Go's RE2). Differences from
//! Go that a user could notice:
//! - `\d`, `\w`, `\s` and `\b` are Unicode-aware (Go: ASCII only), so `\d` also matches e.g.
//!   Arabic-Indic digits.
//! - `\Q...\E` quoting and `\C` are not supported; `(?U)` (ungreedy) is.
//! - A `\x..`/octal escape in a string literal that produces invalid UTF-8 is refused (Go keeps
//!   the raw bytes).
//!
//! Label matchers are anchored like Prometheus' (`^(?s:re)$`: the whole value must match and
//! `.` matches a newline); line filters are unanchored.

mod ast;
pub mod duration;
pub(crate) mod go_compat;
mod ip;
mod label_set;
mod lexer;
mod matchers;
mod parser;
pub(crate) mod pattern;
mod regex_shape;

pub use ast::{
    BinOp, BinaryExpr, Cardinality, CmpOp, Expr, ExtractParam, Grouping, LabelFilterExpr,
    LabelFormatItem, LabelFormatSource, LabelReplace, LabelSpec, LogExpr, LogRange, LogSelector,
    ParserStage, RangeAggregation, RangeOp, SampleExpr, Stage, Unwrap, UnwrapConversion,
    VectorAggregation, VectorMatching, VectorOp, quote_go,
};
pub use label_set::{LABEL_SET_BYTES_MAX, parse_labels};
pub use matchers::{FilterOperand, LabelMatcher, LineFilter, LineFilterOp, MatchOp};
pub use parser::{
    MATCHER_REQUIRED_MSG, parse_expr, parse_log_selector, parse_matchers, parse_sample_expr,
};
pub use pattern::{PatternNode, pattern_nodes};

use std::fmt;

/// The longest query text accepted. Grafana's queries are a few hundred bytes and the longest
/// in Loki's own tests a few kilobytes; this bounds lexing and parsing work per request.
pub const QUERY_BYTES_MAX: usize = 128 * 1024;

/// The deepest nesting of parentheses, function calls and operators (a chain of binary
/// operators nests one level per operator, `a + b + c` is two levels deep). The parser, the
/// printer and the engine recurse over the tree; this bounds their stack use far below the
/// smallest thread stack we run on, while real queries nest fewer than ten levels.
pub const NESTING_DEPTH_MAX: usize = 64;

/// The largest compiled program of one regular expression (the `regex` crate's `size_limit`).
/// Legitimate selectors compile to a few kilobytes; a hostile `(a{1000}){1000}` would need
/// gigabytes. Exceeding it is a 400 error, not an allocation.
pub const REGEX_SIZE_BYTES_MAX: usize = 1024 * 1024;

/// The largest lazy-DFA cache of one regular expression (the `regex` crate's
/// `dfa_size_limit`), per thread using it. Above it the engine falls back to slower but
/// bounded-memory simulation instead of growing.
pub const REGEX_DFA_BYTES_MAX: usize = 2 * 1024 * 1024;

/// The most pipeline stages one query may have, over all its log queries, line filters
/// included (`!= "a" or "b"` is two stages, as Loki runs it; each comparison of a label
/// filter, each `label_format` item and each `drop`/`keep` label counts as one). Loki sets no such limit, but every stage runs for every line
/// every shard scans, and each filter's needle or regex is built before the query runs: a
/// query of 14,000 chained regex filters took 3.3 s and 156 MB before scanning a line.
/// Queries written by people and by Grafana have a handful of stages and generated ones a few
/// dozen; 128 leaves room for those and refuses the rest at parse time with a 400.
pub const PIPELINE_STAGES_MAX: usize = 128;

/// The most line filter operands one query may have: each `or` alternative is a needle or a
/// regex of its own, so `|= "a" or "b" or ...` is bounded like a chain of filters, for the
/// same reason as [`PIPELINE_STAGES_MAX`]. Twice the stages: every stage has at least one
/// operand, and this leaves room for `or` alternatives in some of them.
pub const LINE_FILTERS_MAX: usize = 2 * PIPELINE_STAGES_MAX;

/// Why a query was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// The text is not LogQL. Position is 1-based, in characters, of the offending token.
    Syntax {
        line: usize,
        col: usize,
        msg: String,
    },
    /// The text parses but means nothing runnable: a selector that would match every stream,
    /// an invalid regular expression, pattern or IP range, an aggregation Loki refuses, a limit
    /// exceeded.
    Invalid(String),
}

impl ParseError {
    /// The message without Loki's "parse error at ..." prefix.
    pub fn message(&self) -> &str {
        match self {
            ParseError::Syntax { msg, .. } => msg,
            ParseError::Invalid(msg) => msg,
        }
    }
}

impl fmt::Display for ParseError {
    /// Loki's wording: `parse error at line 1, col 8: syntax error: unexpected ...`, and
    /// `parse error : ...` for errors that have no position.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Syntax { line, col, msg } => {
                write!(f, "parse error at line {line}, col {col}: {msg}")
            }
            ParseError::Invalid(msg) => write!(f, "parse error : {msg}"),
        }
    }
}

impl std::error::Error for ParseError {}

#[cfg(test)]
mod conformance_tests;

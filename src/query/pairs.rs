//! Which blocks and head entries a query's `name="value"` label filters rule out by the
//! structured-metadata index ([`crate::chunk::pairs`] in parts, the per-head map in
//! [`crate::shard::head`]).
//!
//! Which question it answers: "can any line of this block pass `| trace_id="4bf9…"`?" A line
//! passes only if its label `trace_id`, at the filter, is that value. With Loki's label rules
//! (see [`crate::query::pipeline`]) the label comes from one of three places:
//! - the stream's own label of that name, when the stream has one (metadata and parsed keys of
//!   that name are then renamed `<name>_extracted`): the index says nothing, and the
//!   pipeline's prefilter judges the stream by its value;
//! - the line's structured metadata pair of that name;
//! - a parser before the filter (`json`, `logfmt`, `regexp`, `pattern`), which copies the value
//!   out of the line, and may unescape it only when the line has a `\` or U+FFFD.
//!
//! So a block can be skipped when the index says no entry of it carries the pair, and, when a
//! parser precedes the filter, its gram bloom says the value cannot occur in its lines and it
//! has no line a parser may unescape (the index's escape key). A filter on
//! `<name>_extracted` may be a renamed metadata pair: it never skips a stream that has
//! `<name>`. Only filters joined by `and` at the top of a filter stage count, only those that
//! nothing but line filters, value-copying parsers and other label filters precede, never on
//! an empty value (`= ""` matches lines without the label) nor on `__error__` and the other
//! names parsers do not copy.

use crate::chunk::BloomQuery;
use crate::chunk::pairs::pair_key;
use crate::logql::{self, LabelFilterExpr, MatchOp, ParserStage};
use crate::model::Labels;
use crate::query::pipeline::DUPLICATE_SUFFIX;

/// One `name="value"` filter every result line passes.
#[derive(Debug, Clone)]
pub struct PairRequirement {
    pub name: String,
    pub value: String,
    /// The index key of `name=value`.
    pub key: u32,
    /// Whether a parser precedes the filter: then the value may come from the line.
    pub parsed: bool,
    /// The value as a bloom needle, for blocks where a parser may take it from a line.
    pub line_needle: BloomQuery,
}

/// The requirements of a query's pipeline (see the module doc); empty when none applies.
#[derive(Debug, Clone, Default)]
pub struct PairQuery {
    requirements: Vec<PairRequirement>,
}

/// Requirements kept per query: each costs an index lookup per part.
const PAIR_REQUIREMENTS_MAX: usize = 8;

impl PairQuery {
    /// The requirements of `stages`, in the order they run (as the pipeline reorders them).
    pub fn of(stages: &[&logql::Stage]) -> PairQuery {
        let mut requirements = Vec::new();
        let mut parsed = false;
        for stage in stages {
            match stage {
                logql::Stage::LineFilter(_) => {}
                logql::Stage::Parser(
                    ParserStage::Json(_)
                    | ParserStage::Logfmt { .. }
                    | ParserStage::Regexp(_)
                    | ParserStage::Pattern(_),
                ) => parsed = true,
                logql::Stage::LabelFilter(expr) => conjuncts(expr, parsed, &mut requirements),
                _ => break,
            }
        }
        requirements.truncate(PAIR_REQUIREMENTS_MAX);
        PairQuery { requirements }
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    pub fn requirements(&self) -> &[PairRequirement] {
        &self.requirements
    }

    /// The indexes of the requirements the index can judge for a stream whose labels
    /// `has_label` answers for: not those whose label the stream has (or has under the name a
    /// metadata key is renamed from), which the stream's own value judges. The one rule the
    /// planner applies to resident streams, streams only parts hold, and whole parts.
    pub fn applicable(&self, has_label: impl Fn(&str) -> bool) -> Vec<usize> {
        self.requirements
            .iter()
            .enumerate()
            .filter(|(_, r)| {
                !has_label(&r.name)
                    && r.name
                        .strip_suffix(DUPLICATE_SUFFIX)
                        .is_none_or(|base| !has_label(base))
            })
            .map(|(i, _)| i)
            .collect()
    }

    /// [`Self::applicable`] for a stream with these labels.
    pub fn for_stream(&self, stream: &Labels) -> Vec<&PairRequirement> {
        self.applicable(|name| stream.get(name).is_some())
            .into_iter()
            .map(|i| &self.requirements[i])
            .collect()
    }
}

fn conjuncts(expr: &LabelFilterExpr, parsed: bool, out: &mut Vec<PairRequirement>) {
    match expr {
        LabelFilterExpr::And(a, b) => {
            conjuncts(a, parsed, out);
            conjuncts(b, parsed, out);
        }
        LabelFilterExpr::String(m)
            if m.op == MatchOp::Eq && !m.value.is_empty() && !m.name.starts_with("__") =>
        {
            let mut line_needle = BloomQuery::default();
            line_needle.push_clause(&[m.value.as_bytes().to_vec()]);
            out.push(PairRequirement {
                name: m.name.clone(),
                value: m.value.clone(),
                key: pair_key(&m.name, &m.value),
                parsed,
                line_needle,
            });
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(query: &str) -> PairQuery {
        let expr = match crate::logql::parse_expr(query).expect("query parses") {
            logql::Expr::Log(e) => e,
            other => panic!("not a log query: {other:?}"),
        };
        let stages: Vec<&logql::Stage> = expr.stages.iter().collect();
        PairQuery::of(&stages)
    }

    fn names(q: &PairQuery) -> Vec<(&str, bool)> {
        q.requirements()
            .iter()
            .map(|r| (r.name.as_str(), r.parsed))
            .collect()
    }

    #[test]
    fn equality_filters_joined_by_and_are_requirements() {
        let q = of(r#"{a="b"} |= "x" | trace_id="abc" and span_id="def""#);
        assert_eq!(names(&q), [("trace_id", false), ("span_id", false)]);
        assert_eq!(q.requirements()[0].key, pair_key("trace_id", "abc"));
        let q = of(r#"{a="b"} | json | trace_id="abc""#);
        assert_eq!(names(&q), [("trace_id", true)]);
    }

    #[test]
    fn filters_the_index_cannot_judge_are_left_out() {
        for query in [
            r#"{a="b"} | trace_id="abc" or span_id="def""#,
            r#"{a="b"} | trace_id!="abc""#,
            r#"{a="b"} | trace_id=~"abc""#,
            r#"{a="b"} | trace_id="""#,
            r#"{a="b"} | __error__="x""#,
            r#"{a="b"} | line_format "{{.x}}" | trace_id="abc""#,
            r#"{a="b"} | label_format trace_id=x | trace_id="abc""#,
            r#"{a="b"} | drop x | trace_id="abc""#,
        ] {
            assert!(of(query).is_empty(), "{query}");
        }
    }

    #[test]
    fn a_stream_with_the_label_is_judged_by_it_not_by_the_index() {
        let q = of(r#"{a="b"} | trace_id="abc" | service_extracted="x""#);
        let plain = Labels::from_pairs([("a".to_string(), "b".to_string())]);
        assert_eq!(q.for_stream(&plain).len(), 2);
        let with = Labels::from_pairs([("trace_id".to_string(), "abc".to_string())]);
        assert_eq!(q.for_stream(&with).len(), 1);
        let renamed = Labels::from_pairs([("service".to_string(), "s".to_string())]);
        assert_eq!(q.for_stream(&renamed).len(), 1);
    }
}

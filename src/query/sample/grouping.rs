//! Which output series a sample belongs to: the labels a range aggregation keeps.
//!
//! Which question it answers: "given a line's labels after the pipeline, what are the
//! labels of the series its sample is counted in?" Loki's sample extractor groups at the
//! source (`syntax/extractor.go`, `LabelsBuilder.GroupedLabels`):
//! - the range aggregation's own `by`/`without` (allowed for the unwrap operations), or else
//!   the grouping of a `sum` directly around a sum-like range aggregation (pushed down
//!   because summing per group first is exact);
//! - `by ()` and `absent_over_time` keep no labels at all;
//! - with `unwrap` and no `by`, the unwrapped label is removed (`without` gets it added);
//! - a sample carrying `__error__` keeps all its labels, so that the error reaches the
//!   evaluator, which fails the query with it.

use crate::logql::{Grouping, RangeOp};
use crate::model::Labels;

/// The label that marks a sample whose pipeline or conversion failed.
pub const ERROR_LABEL: &str = "__error__";
/// The label that carries the failure's details.
pub const ERROR_DETAILS_LABEL: &str = "__error_details__";
/// Set to `"true"` by a stage whose errors must not fail the query.
pub const PRESERVE_ERROR_LABEL: &str = "__preserve_error__";

/// How a leaf turns a line's labels into its output series' labels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OutputGrouping {
    /// Every label is kept.
    All,
    /// Only these labels (sorted) are kept.
    By(Vec<String>),
    /// These labels (sorted) are removed.
    Without(Vec<String>),
    /// No label is kept: all samples form one series.
    Nothing,
}

impl OutputGrouping {
    /// Loki's extractor grouping for a range aggregation: `own` is its `by`/`without`,
    /// `pushed` the grouping of a `sum` around it (used only when it has none of its own).
    pub fn for_leaf(
        op: RangeOp,
        own: Option<&Grouping>,
        pushed: Option<&Grouping>,
        unwrap_label: Option<&str>,
    ) -> OutputGrouping {
        let grouping = own.or(pushed);
        let (mut names, mut without, mut no_labels) = match grouping {
            Some(g) => (
                g.labels.clone(),
                g.without,
                !g.without && g.labels.is_empty(),
            ),
            None => (Vec::new(), false, false),
        };
        if op == RangeOp::AbsentOverTime {
            no_labels = true;
        }
        if let Some(label) = unwrap_label
            && (names.is_empty() || without)
        {
            without = true;
            names.push(label.to_string());
        }
        if no_labels {
            return OutputGrouping::Nothing;
        }
        names.sort();
        names.dedup();
        if names.is_empty() {
            OutputGrouping::All
        } else if without {
            OutputGrouping::Without(names)
        } else {
            OutputGrouping::By(names)
        }
    }

    /// The output labels of a sample with these labels.
    pub fn apply(&self, labels: Labels) -> Labels {
        if labels.get(ERROR_LABEL).is_some() {
            return labels;
        }
        match self {
            OutputGrouping::All => labels,
            OutputGrouping::Nothing => Labels::default(),
            OutputGrouping::By(names) => Labels::from_pairs_keeping_empty(
                labels
                    .pairs()
                    .iter()
                    .filter(|(k, _)| names.binary_search(k).is_ok())
                    .cloned(),
            ),
            OutputGrouping::Without(names) => Labels::from_pairs_keeping_empty(
                labels
                    .pairs()
                    .iter()
                    .filter(|(k, _)| names.binary_search(k).is_err())
                    .cloned(),
            ),
        }
    }
}

/// Whether a series with these labels fails the query when it has a sample in a window:
/// it carries `__error__` and no stage asked to keep its errors.
pub fn fails_query(labels: &Labels) -> bool {
    labels.get(ERROR_LABEL).is_some() && labels.get(PRESERVE_ERROR_LABEL) != Some("true")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn by(names: &[&str]) -> Grouping {
        Grouping {
            without: false,
            labels: names.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn without(names: &[&str]) -> Grouping {
        Grouping {
            without: true,
            labels: names.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn follows_lokis_extractor() {
        use OutputGrouping::*;
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            OutputGrouping::for_leaf(RangeOp::CountOverTime, None, None, None),
            All
        );
        assert_eq!(
            OutputGrouping::for_leaf(RangeOp::Rate, None, Some(&by(&["b", "a"])), None),
            By(s(&["a", "b"]))
        );
        assert_eq!(
            OutputGrouping::for_leaf(RangeOp::Rate, None, Some(&by(&[])), None),
            Nothing
        );
        assert_eq!(
            OutputGrouping::for_leaf(RangeOp::BytesRate, None, Some(&without(&[])), None),
            All
        );
        // The unwrapped label leaves the series unless named in `by`.
        assert_eq!(
            OutputGrouping::for_leaf(RangeOp::SumOverTime, None, None, Some("latency")),
            Without(s(&["latency"]))
        );
        assert_eq!(
            OutputGrouping::for_leaf(
                RangeOp::AvgOverTime,
                Some(&without(&["pod"])),
                None,
                Some("v")
            ),
            Without(s(&["pod", "v"]))
        );
        assert_eq!(
            OutputGrouping::for_leaf(RangeOp::AvgOverTime, Some(&by(&["pod"])), None, Some("v")),
            By(s(&["pod"]))
        );
        assert_eq!(
            OutputGrouping::for_leaf(RangeOp::AvgOverTime, Some(&by(&[])), None, Some("v")),
            Nothing
        );
        // The range aggregation's own grouping wins over a pushed-down one.
        assert_eq!(
            OutputGrouping::for_leaf(
                RangeOp::MaxOverTime,
                Some(&by(&["a"])),
                Some(&by(&["b"])),
                Some("v")
            ),
            By(s(&["a"]))
        );
        assert_eq!(
            OutputGrouping::for_leaf(RangeOp::AbsentOverTime, None, None, None),
            Nothing
        );
    }

    #[test]
    fn grouping_keeps_empty_parsed_values() {
        let l = Labels::from_pairs_keeping_empty([("app", "a"), ("user", "")]);
        let by = OutputGrouping::By(vec!["user".into()]);
        assert_eq!(by.apply(l.clone()).to_string(), r#"{user=""}"#);
        let without = OutputGrouping::Without(vec!["app".into()]);
        assert_eq!(without.apply(l).to_string(), r#"{user=""}"#);
    }

    #[test]
    fn errors_keep_every_label() {
        let g = OutputGrouping::By(vec!["app".into()]);
        let l = Labels::from_pairs([("app", "a"), ("pod", "1")]);
        assert_eq!(g.apply(l.clone()), Labels::from_pairs([("app", "a")]));
        let e = Labels::from_pairs([("app", "a"), ("pod", "1"), (ERROR_LABEL, "JSONParserErr")]);
        assert_eq!(g.apply(e.clone()), e);
        assert_eq!(OutputGrouping::Nothing.apply(e.clone()), e);
        assert!(fails_query(&e));
        let preserved = Labels::from_pairs([(ERROR_LABEL, "x"), (PRESERVE_ERROR_LABEL, "true")]);
        assert!(!fails_query(&preserved));
        assert!(!fails_query(&l));
    }
}

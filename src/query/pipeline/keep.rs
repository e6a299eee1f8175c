//! The `keep` stage: `| keep a, b="x"` removes every label but these (Loki's `KeepLabels`).
//!
//! Which question it answers: "which labels does this line keep?" A bare name keeps the
//! label; `name op "value"` keeps it only when the matcher matches. `__error__`,
//! `__error_details__` and `__preserve_error__` are always kept.

use std::borrow::Cow;

use super::labels::{ERROR_DETAILS_LABEL, ERROR_LABEL, LabelsBuilder, PRESERVE_ERROR_LABEL};
use super::{ParserHints, Stage};
use crate::logql::LabelSpec;
use crate::model::TimestampNs;

#[derive(Debug)]
pub(crate) struct KeepLabels {
    pub specs: Vec<LabelSpec>,
}

impl KeepLabels {
    fn keeps(&self, name: &str, value: &str) -> bool {
        self.specs.iter().any(|spec| match spec {
            LabelSpec::Name(n) => n == name,
            LabelSpec::Matcher(m) => m.name == name && m.matches(Some(value)),
        })
    }
}

impl Stage for KeepLabels {
    fn process<'a>(
        &self,
        _ts: TimestampNs,
        line: Cow<'a, str>,
        lbs: &mut LabelsBuilder,
        _hints: &ParserHints,
    ) -> Option<Cow<'a, str>> {
        if self.specs.is_empty() {
            return Some(line);
        }
        let mut doomed = std::mem::take(&mut lbs.scratch.pending);
        doomed.clear();
        lbs.for_each(|name, value| {
            let special = matches!(
                name,
                ERROR_LABEL | ERROR_DETAILS_LABEL | PRESERVE_ERROR_LABEL
            );
            if !special && !self.keeps(name, value) {
                doomed.push(name, "");
            }
        });
        for (name, _) in doomed.iter() {
            lbs.del(name);
        }
        lbs.scratch.pending = doomed;
        Some(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logql::{LabelMatcher, MatchOp};
    use crate::model::Labels;

    #[test]
    fn keeps_names_and_matches() {
        let stage = KeepLabels {
            specs: vec![
                LabelSpec::Matcher(LabelMatcher::new("namespace", MatchOp::Eq, "prod").unwrap()),
                LabelSpec::Name("app".into()),
                LabelSpec::Name("fizz".into()),
            ],
        };
        let stream = Labels::from_pairs([("app", "foo"), ("namespace", "prod"), ("env", "prod")]);
        let mut lbs = LabelsBuilder::new(&stream);
        lbs.reset([]);
        lbs.set_error("JSONParserErr");
        stage.process(0, Cow::Borrowed(""), &mut lbs, &ParserHints::default());
        assert_eq!(
            lbs.labels().to_string(),
            r#"{__error__="JSONParserErr", app="foo", namespace="prod"}"#
        );
    }
}

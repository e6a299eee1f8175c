//! The `drop` stage: `| drop a, b="x", __error__` removes labels (Loki's `DropLabels`).
//!
//! Which question it answers: "which labels does this line lose?" A bare name drops the
//! label; `name op "value"` drops it only when the matcher matches its current value. The
//! names `__error__` and `__error_details__` clear the error and its details instead.

use std::borrow::Cow;

use super::labels::{ERROR_DETAILS_LABEL, ERROR_LABEL, LabelsBuilder};
use super::{ParserHints, Stage};
use crate::logql::LabelSpec;
use crate::model::TimestampNs;

#[derive(Debug)]
pub(crate) struct DropLabels {
    pub specs: Vec<LabelSpec>,
}

impl Stage for DropLabels {
    fn process<'a>(
        &self,
        _ts: TimestampNs,
        line: Cow<'a, str>,
        lbs: &mut LabelsBuilder,
        _hints: &ParserHints,
    ) -> Option<Cow<'a, str>> {
        for spec in &self.specs {
            match spec {
                LabelSpec::Name(name) => match name.as_str() {
                    ERROR_LABEL => lbs.reset_error(),
                    ERROR_DETAILS_LABEL => lbs.reset_error_details(),
                    name => {
                        if lbs.get(name).is_some() {
                            lbs.del(name);
                        }
                    }
                },
                LabelSpec::Matcher(m) => match m.name.as_str() {
                    ERROR_LABEL => {
                        if m.matches(Some(lbs.error())) {
                            lbs.reset_error();
                        }
                    }
                    ERROR_DETAILS_LABEL => {
                        if m.matches(Some(lbs.error_details())) {
                            lbs.reset_error_details();
                        }
                    }
                    name => {
                        if m.matches(Some(lbs.get(name).unwrap_or(""))) {
                            lbs.del(name);
                        }
                    }
                },
            }
        }
        Some(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logql::{LabelMatcher, MatchOp};
    use crate::model::Labels;

    #[test]
    fn drops_by_name_and_matcher() {
        let stage = DropLabels {
            specs: vec![
                LabelSpec::Matcher(
                    LabelMatcher::new(ERROR_LABEL, MatchOp::Eq, "JSONParserErr").unwrap(),
                ),
                LabelSpec::Name(ERROR_DETAILS_LABEL.into()),
                LabelSpec::Name("app".into()),
                LabelSpec::Matcher(LabelMatcher::new("env", MatchOp::Eq, "dev").unwrap()),
            ],
        };
        let stream = Labels::from_pairs([("app", "foo"), ("env", "prod"), ("pod", "p")]);
        let mut lbs = LabelsBuilder::new(&stream);
        lbs.reset([]);
        lbs.set_error("JSONParserErr");
        lbs.set_error_details("json error");
        stage.process(0, Cow::Borrowed(""), &mut lbs, &ParserHints::default());
        assert_eq!(lbs.labels().to_string(), r#"{env="prod", pod="p"}"#);
        lbs.reset([]);
        lbs.set_error("LogfmtParserErr");
        stage.process(0, Cow::Borrowed(""), &mut lbs, &ParserHints::default());
        assert_eq!(lbs.error(), "LogfmtParserErr", "the matcher does not match");
    }
}

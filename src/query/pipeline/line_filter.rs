//! A line filter after another stage (`| json |= "error"`): runs on the line as it is at
//! that point (Loki's line filter stage). The filter itself is compiled in `crate::logql`.
//!
//! Which question it answers: "does the current line pass this filter?"

use std::borrow::Cow;

use super::labels::LabelsBuilder;
use super::{ParserHints, Stage};
use crate::logql::LineFilter;
use crate::model::TimestampNs;

#[derive(Debug)]
pub(crate) struct LineFilterStage {
    pub filter: LineFilter,
}

impl Stage for LineFilterStage {
    fn process<'a>(
        &self,
        _ts: TimestampNs,
        line: Cow<'a, str>,
        _lbs: &mut LabelsBuilder,
        _hints: &ParserHints,
    ) -> Option<Cow<'a, str>> {
        self.filter.matches(line.as_bytes()).then_some(line)
    }
}

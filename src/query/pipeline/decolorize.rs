//! The `decolorize` stage: removes ANSI colour and cursor sequences from the line (Loki's
//! `Decolorizer`, with its expression).
//!
//! Which question it answers: "what does this line say without its terminal escapes?"

use std::borrow::Cow;
use std::sync::LazyLock;

use super::labels::LabelsBuilder;
use super::{ParserHints, Stage};
use crate::model::TimestampNs;

/// Loki's expression (from acarl005/stripansi), with Go's ASCII `\d` written out.
const ANSI_PATTERN: &str = "[\u{1b}\u{9b}][\\[\\]()#;?]*(?:(?:(?:[a-zA-Z0-9]*(?:;[a-zA-Z0-9]*)*)?\u{7})|(?:(?:[0-9]{1,4}(?:;[0-9]{0,4})*)?[0-9A-PRZcf-ntqry=><~]))";

static ANSI: LazyLock<regex::Regex> = LazyLock::new(|| {
    regex::Regex::new(ANSI_PATTERN).expect("the ANSI pattern is a valid, fixed expression")
});

#[derive(Debug, Default)]
pub(crate) struct Decolorize;

impl Stage for Decolorize {
    fn process<'a>(
        &self,
        _ts: TimestampNs,
        line: Cow<'a, str>,
        _lbs: &mut LabelsBuilder,
        _hints: &ParserHints,
    ) -> Option<Cow<'a, str>> {
        // Every sequence starts with ESC or CSI: most lines have neither.
        if !line.contains(['\u{1b}', '\u{9b}']) {
            return Some(line);
        }
        match ANSI.replace_all(&line, "") {
            Cow::Borrowed(_) => Some(line),
            Cow::Owned(s) => Some(Cow::Owned(s)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Labels;

    #[test]
    fn colours_go() {
        let mut lbs = LabelsBuilder::new(&Labels::default());
        let run = |line: &str, lbs: &mut LabelsBuilder| {
            Decolorize
                .process(0, Cow::Borrowed(line), lbs, &ParserHints::default())
                .unwrap()
                .into_owned()
        };
        assert_eq!(
            run(
                "\u{1b}[0;32mgreen\u{1b}[0m \u{1b}[0;31mred\u{1b}[0m",
                &mut lbs
            ),
            "green red"
        );
        assert_eq!(run("plain", &mut lbs), "plain");
        assert_eq!(run("\u{1b}]0;title\u{7}text", &mut lbs), "text");
    }
}

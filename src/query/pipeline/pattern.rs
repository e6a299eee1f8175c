//! The `pattern` parser stage: `| pattern "<ip> - <_> [<ts>] \"<method> <path> <_>\""`
//! (Loki's `PatternParser` and its pattern matcher, pkg/logql/log/pattern).
//!
//! Which question it answers: "which labels do this pattern's captures take from the line?"
//! A leading literal must start the line; then each capture takes the text up to the next
//! occurrence of the literal after it. When a literal is missing, the capture before it takes
//! the rest of the line and matching stops (the captures after it are not set). `<_>` matches
//! without capturing. Captures are set even when empty.

use std::borrow::Cow;

use memchr::memmem::Finder;

use super::labels::{DUPLICATE_SUFFIX, LabelsBuilder};
use super::{ParserHints, Stage};
use crate::logql::pattern::check_parser_pattern;
use crate::logql::{PatternNode, pattern_nodes};
use crate::model::TimestampNs;

/// A capture after the leading literal, and the literal that ends it (none for the last).
#[derive(Debug)]
struct Step {
    /// `None` for `<_>`; else the label name and its name on a collision.
    capture: Option<(String, String)>,
    until: Option<Finder<'static>>,
}

#[derive(Debug)]
pub(crate) struct PatternParser {
    /// Literal text the line must start with.
    leading: Option<Vec<u8>>,
    steps: Vec<Step>,
}

/// Parses and validates a pattern as Loki's `pattern.New` does, with its error texts (the
/// checks are the parser's, which refuses such a pattern already).
fn parse_pattern(pattern: &str) -> Result<Vec<PatternNode>, String> {
    let nodes = pattern_nodes(pattern);
    if nodes.is_empty() {
        return Err(
            "parse error at line 1, col 1: syntax error: unexpected $end, expecting IDENTIFIER or LITERAL"
                .into(),
        );
    }
    check_parser_pattern(pattern)?;
    Ok(nodes)
}

impl PatternParser {
    pub fn new(pattern: &str) -> Result<PatternParser, String> {
        let mut nodes = parse_pattern(pattern)?.into_iter().peekable();
        let leading = match nodes.peek() {
            Some(PatternNode::Literal(_)) => match nodes.next() {
                Some(PatternNode::Literal(l)) => Some(l),
                _ => None,
            },
            _ => None,
        };
        // From here nodes alternate capture, literal, capture... (validated above).
        let mut steps = Vec::new();
        while let Some(node) = nodes.next() {
            let PatternNode::Capture(name) = node else {
                // A literal after a literal cannot happen: the lexer merges them.
                continue;
            };
            let capture =
                (name != "_").then(|| (name.clone(), format!("{name}{DUPLICATE_SUFFIX}")));
            let until = match nodes.next() {
                Some(PatternNode::Literal(l)) => Some(Finder::new(&l).into_owned()),
                _ => None,
            };
            steps.push(Step { capture, until });
        }
        Ok(PatternParser { leading, steps })
    }

    /// The captures of a line, in order, as Loki's `Matcher.Matches` finds them; calls `f`
    /// with each label name and value. Stops early when `f` says so (false).
    fn matches<'l>(&self, line: &'l str, mut f: impl FnMut(&Step, &'l str) -> bool) {
        if line.is_empty() {
            return;
        }
        let mut rest = line;
        if let Some(leading) = &self.leading {
            if !rest.as_bytes().starts_with(leading) {
                return;
            }
            rest = rest.get(leading.len()..).unwrap_or_default();
        }
        for step in &self.steps {
            let Some(until) = &step.until else {
                // Ending on a capture: it takes the rest.
                if step.capture.is_some() {
                    f(step, rest);
                }
                return;
            };
            let Some(i) = until.find(rest.as_bytes()) else {
                // The literal is missing: the capture takes the rest and matching stops.
                if step.capture.is_some() {
                    f(step, rest);
                }
                return;
            };
            let captured = rest.get(..i).unwrap_or_default();
            rest = rest.get(i + until.needle().len()..).unwrap_or_default();
            if step.capture.is_some() && !f(step, captured) {
                return;
            }
        }
    }
}

impl Stage for PatternParser {
    fn process<'a>(
        &self,
        _ts: TimestampNs,
        line: Cow<'a, str>,
        lbs: &mut LabelsBuilder,
        hints: &ParserHints,
    ) -> Option<Cow<'a, str>> {
        let mut kept = true;
        self.matches(&line, |step, value| {
            let Some((name, suffixed)) = &step.capture else {
                return true;
            };
            let name = lbs.parsed_name(name, suffixed);
            if !lbs.extract(name, value) {
                return true;
            }
            kept = hints.should_continue(name, lbs);
            kept
        });
        kept.then_some(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Labels;

    fn captures(pattern: &str, line: &str) -> Vec<(String, String)> {
        let parser = PatternParser::new(pattern).unwrap();
        let mut lbs = LabelsBuilder::new(&Labels::default());
        lbs.reset([]);
        parser
            .process(0, Cow::Borrowed(line), &mut lbs, &ParserHints::default())
            .unwrap();
        let mut out = Vec::new();
        lbs.for_each(|k, v| out.push((k.to_owned(), v.to_owned())));
        out
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn captures_follow_loki() {
        assert_eq!(
            captures("foo <foo> bar", "foo buzz bar"),
            pairs(&[("foo", "buzz")])
        );
        assert_eq!(
            captures("<foo> bar<baz>", " bar "),
            pairs(&[("foo", ""), ("baz", " ")])
        );
        assert_eq!(
            captures("<path>?<_>", "/api/plugins/status"),
            pairs(&[("path", "/api/plugins/status")])
        );
        assert_eq!(
            captures("<_> <id> [<level>] ", "ts 42 [Note] more"),
            pairs(&[("id", "42"), ("level", "Note")])
        );
        assert_eq!(captures("x<a>", "y"), pairs(&[]));
        assert_eq!(captures("<a>", ""), pairs(&[]));
    }

    #[test]
    fn construction_errors_follow_loki() {
        let err = |p: &str| PatternParser::new(p).unwrap_err();
        assert_eq!(err("<_>"), "at least one capture is required");
        assert_eq!(
            err("<f><f>"),
            "found consecutive capture '<f><f>': invalid expression"
        );
        assert_eq!(
            err("<f> f<f>"),
            "duplicate capture name (f): invalid expression"
        );
        assert_eq!(
            err(""),
            "parse error at line 1, col 1: syntax error: unexpected $end, expecting IDENTIFIER or LITERAL"
        );
    }
}

//! The `regexp` parser stage: `| regexp "(?P<status>\\d+) (?P<path>\\S+)"` sets one label
//! per named group (Loki's `RegexpParser`).
//!
//! Which question it answers: "which labels do this regex's named groups give for this
//! line?" The first match counts; a named group that did not take part gives an empty value;
//! a line that does not match gives nothing and is kept. Group names are sanitised and
//! renamed `<name>_extracted` on a collision, as for the other parsers.

use std::borrow::Cow;

use super::keys::sanitize_label_key;
use super::labels::{DUPLICATE_SUFFIX, LabelsBuilder};
use super::{ParserHints, Stage};
use crate::logql::{REGEX_DFA_BYTES_MAX, REGEX_SIZE_BYTES_MAX};
use crate::model::TimestampNs;

#[derive(Debug)]
struct Group {
    index: usize,
    /// The sanitised name, and the name on a collision.
    name: String,
    suffixed: String,
}

#[derive(Debug)]
pub(crate) struct RegexpParser {
    regex: regex::Regex,
    groups: Vec<Group>,
}

impl RegexpParser {
    pub fn new(pattern: &str) -> Result<RegexpParser, String> {
        let regex = regex::RegexBuilder::new(pattern)
            .size_limit(REGEX_SIZE_BYTES_MAX)
            .dfa_size_limit(REGEX_DFA_BYTES_MAX)
            .build()
            .map_err(|e| format!("error parsing regexp: {e}"))?;
        let mut groups = Vec::new();
        for (index, name) in regex.capture_names().enumerate() {
            let Some(name) = name else { continue };
            if name.is_empty() {
                return Err(format!("invalid extracted label name '{name}'"));
            }
            if groups.iter().any(|g: &(usize, &str)| g.1 == name) {
                return Err(format!("duplicate extracted label name '{name}'"));
            }
            groups.push((index, name));
        }
        if groups.is_empty() {
            return Err("at least one named capture must be supplied".into());
        }
        let groups = groups
            .into_iter()
            .filter_map(|(index, name)| {
                let mut sanitized = String::new();
                sanitize_label_key(name, true, &mut sanitized);
                (!sanitized.is_empty()).then(|| Group {
                    index,
                    suffixed: format!("{sanitized}{DUPLICATE_SUFFIX}"),
                    name: sanitized,
                })
            })
            .collect();
        Ok(RegexpParser { regex, groups })
    }
}

impl Stage for RegexpParser {
    fn process<'a>(
        &self,
        _ts: TimestampNs,
        line: Cow<'a, str>,
        lbs: &mut LabelsBuilder,
        hints: &ParserHints,
    ) -> Option<Cow<'a, str>> {
        let Some(captures) = self.regex.captures(&line) else {
            return Some(line);
        };
        for group in &self.groups {
            let name = lbs.parsed_name(&group.name, &group.suffixed);
            let value = captures.get(group.index).map_or("", |m| m.as_str());
            if !lbs.extract(name, value) {
                continue;
            }
            if !hints.should_continue(name, lbs) {
                return None;
            }
        }
        Some(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Labels;

    #[test]
    fn named_groups_become_labels() {
        let parser =
            RegexpParser::new(r"status=(?P<status>\w+),latency=(?P<latency>\w+)(ms|ns)(?P<x>!)?")
                .unwrap();
        let mut lbs = LabelsBuilder::new(&Labels::default());
        lbs.reset([("status", "400")]);
        let line = parser
            .process(
                0,
                Cow::Borrowed("status=200,latency=500ms"),
                &mut lbs,
                &ParserHints::default(),
            )
            .unwrap();
        assert_eq!(line, "status=200,latency=500ms");
        assert_eq!(lbs.get("status"), Some("400"));
        assert_eq!(lbs.get("status_extracted"), Some("200"));
        assert_eq!(lbs.get("latency"), Some("500"));
        assert_eq!(lbs.get("x"), Some(""));
    }

    #[test]
    fn construction_errors() {
        assert!(RegexpParser::new("blah (.*) (?P<foo>)").is_ok());
        assert!(RegexpParser::new("(.*)").is_err());
        assert!(RegexpParser::new("(?P<foo>a)(?P<foo>b)").is_err());
        assert!(RegexpParser::new("(?P<foo$>a)").is_err());
    }
}

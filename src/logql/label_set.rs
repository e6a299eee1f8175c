//! Prometheus' label-set syntax (`{job="api", env="prod"}`, optionally after a metric name),
//! read as Loki's `ParseLabels` reads a stream's labels.
//!
//! Which question it answers: "which labels does this label-set text name?" Names are
//! Prometheus identifiers or quoted strings, values are Go strings (double, single or back
//! quotes), `=` is the only operator, a trailing comma is allowed. As in Loki the result is
//! sorted by name and labels with an empty value are dropped (an empty value means the label
//! is absent). A name given twice is refused.

use super::ParseError;
use super::lexer::{error_at, string_at};

/// The longest label-set text accepted, as Loki's `maxStreamLabelsSize` (Prometheus' label
/// structures refuse larger ones).
pub const LABEL_SET_BYTES_MAX: usize = (1 << 24) - 1;

/// The label name Prometheus gives a metric name written before the braces.
const METRIC_NAME_LABEL: &str = "__name__";

/// Parses `{a="b", c="d"}` (or `name{...}`, or `name`) into labels sorted by name, without
/// empty values.
pub fn parse_labels(text: &str) -> Result<Vec<(String, String)>, ParseError> {
    if text.len() > LABEL_SET_BYTES_MAX {
        return Err(ParseError::Invalid(format!(
            "labels size {} MiB exceeds limit of {} MiB",
            text.len() >> 20,
            LABEL_SET_BYTES_MAX >> 20
        )));
    }
    let mut p = LabelSetParser { src: text, pos: 0 };
    let mut labels: Vec<(String, String)> = Vec::new();
    p.skip_space();
    if p.peek().is_some_and(is_metric_name_start) {
        let name = p.identifier(true);
        labels.push((METRIC_NAME_LABEL.to_string(), name));
        p.skip_space();
    }
    if p.peek() == Some('{') || labels.is_empty() {
        p.expect('{')?;
        p.skip_space();
        while p.peek() != Some('}') {
            let name = match p.peek() {
                Some('"' | '\'' | '`') => p.string()?,
                Some(c) if is_label_name_start(c) => p.identifier(false),
                _ => return Err(p.error("expected a label name")),
            };
            p.skip_space();
            p.expect('=')?;
            p.skip_space();
            let value = p.string()?;
            if labels.iter().any(|(n, _)| *n == name) {
                return Err(ParseError::Invalid(format!(
                    "duplicate label name {name:?}"
                )));
            }
            labels.push((name, value));
            p.skip_space();
            match p.peek() {
                Some(',') => {
                    p.pos += 1;
                    p.skip_space();
                }
                Some('}') => {}
                _ => return Err(p.error("expected , or }")),
            }
        }
        p.pos += 1;
    }
    p.skip_space();
    if p.pos != text.len() {
        return Err(p.error("unexpected text after the label set"));
    }
    labels.retain(|(_, v)| !v.is_empty());
    labels.sort();
    Ok(labels)
}

fn is_label_name_start(c: char) -> bool {
    c == '_' || c.is_ascii_alphabetic()
}

fn is_metric_name_start(c: char) -> bool {
    is_label_name_start(c) || c == ':'
}

struct LabelSetParser<'a> {
    src: &'a str,
    pos: usize,
}

impl LabelSetParser<'_> {
    fn peek(&self) -> Option<char> {
        self.src[self.pos..].chars().next()
    }

    fn skip_space(&mut self) {
        let rest = &self.src[self.pos..];
        self.pos += rest.len() - rest.trim_start().len();
    }

    fn error(&self, what: &str) -> ParseError {
        error_at(self.src, self.pos, format!("syntax error: {what}"))
    }

    fn expect(&mut self, c: char) -> Result<(), ParseError> {
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.error(&format!("expected {c}")))
        }
    }

    /// `[A-Za-z_][A-Za-z0-9_]*`, with `:` too in a metric name.
    fn identifier(&mut self, metric: bool) -> String {
        let rest = &self.src[self.pos..];
        let len = rest
            .char_indices()
            .find(|&(_, c)| !(c == '_' || c.is_ascii_alphanumeric() || (metric && c == ':')))
            .map_or(rest.len(), |(i, _)| i);
        self.pos += len;
        rest[..len].to_string()
    }

    fn string(&mut self) -> Result<String, ParseError> {
        let (s, end) = string_at(self.src, self.pos)?;
        self.pos = end;
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn label_sets() {
        assert_eq!(
            parse_labels(r#"{job="foo", env="a"}"#).unwrap(),
            pairs(&[("env", "a"), ("job", "foo")])
        );
        assert_eq!(
            parse_labels(r#"{job="foo", bar=""}"#).unwrap(),
            pairs(&[("job", "foo")])
        );
        assert_eq!(
            parse_labels(r#" { a = 'x\'y' , "b.c"=`z`, } "#).unwrap(),
            pairs(&[("a", "x'y"), ("b.c", "z")])
        );
        assert_eq!(
            parse_labels(r#"up{job="a"}"#).unwrap(),
            pairs(&[("__name__", "up"), ("job", "a")])
        );
        assert_eq!(parse_labels("{}").unwrap(), pairs(&[]));
        assert!(parse_labels(&"a".repeat(LABEL_SET_BYTES_MAX + 1)).is_err());
        for bad in [
            "",
            "{",
            r#"{a="b"} x"#,
            r#"{a!="b"}"#,
            r#"{a="b" c="d"}"#,
            r#"{a="b", a="c"}"#,
            r#"{1a="b"}"#,
            r#"{a=b}"#,
        ] {
            assert!(parse_labels(bad).is_err(), "{bad}");
        }
    }
}

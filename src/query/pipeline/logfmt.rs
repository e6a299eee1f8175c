//! The `logfmt` parser stage: `| logfmt [--strict] [--keep-empty]` (every pair) and
//! `| logfmt a="key", b` (only these keys). Loki's `LogfmtParser` and
//! `LogfmtExpressionParser` (pkg/logql/log/parser.go).
//!
//! Which question it answers: "which labels does this `key=value` line give?" Keys are
//! sanitised and renamed `<key>_extracted` on a collision with a stream label or the line's
//! structured metadata; the first occurrence of a name wins; empty values are skipped unless
//! `--keep-empty`; a value holding U+FFFD has it replaced by a space. Malformed pairs are
//! skipped, except with `--strict`, which stops at the first and sets
//! `__error__=LogfmtParserErr` with the decoder's message.
//!
//! With parameters, Loki's rules differ in small ways that are kept: every named label exists
//! (empty) even when its key is absent, a later occurrence of a key overwrites an earlier one,
//! and a value holding U+FFFD becomes empty.

use std::borrow::Cow;

use super::keys::sanitize_label_key;
use super::labels::{DUPLICATE_SUFFIX, ERROR_LABEL, LabelCategory, LabelsBuilder};
use super::logfmt_decoder::Decoder;
use super::text::{has_replacement_char, push_without_replacement, text};
use super::{LOGFMT_PARSER_ERR, ParserHints, Stage, set_error_label};
use crate::logql::ExtractParam;
use crate::model::TimestampNs;

/// `| logfmt` without parameters.
#[derive(Debug)]
pub(crate) struct LogfmtParser {
    pub strict: bool,
    pub keep_empty: bool,
}

impl Stage for LogfmtParser {
    fn process<'a>(
        &self,
        _ts: TimestampNs,
        line: Cow<'a, str>,
        lbs: &mut LabelsBuilder,
        hints: &ParserHints,
    ) -> Option<Cow<'a, str>> {
        if hints.skips_parsers(lbs) {
            return Some(line);
        }
        let mut key = std::mem::take(&mut lbs.scratch.key);
        let mut value = std::mem::take(&mut lbs.scratch.value);
        let mut decoder = Decoder::new(line.as_bytes());
        let mut kept = true;
        while !decoder.eol() {
            if !decoder.scan_keyval() {
                if self.strict {
                    break;
                }
                continue;
            }
            if !hints.may_want_key(decoder.key()) {
                continue;
            }
            sanitize_label_key(&text(decoder.key()), true, &mut key);
            if key.is_empty() {
                continue;
            }
            if lbs.base_has(&key) || lbs.has_in_category(&key, LabelCategory::StructuredMetadata) {
                key.push_str(DUPLICATE_SUFFIX);
            }
            if !hints.wants(&key) {
                continue;
            }
            value.clear();
            push_without_replacement(&mut value, &text(decoder.value()));
            if !self.keep_empty && value.is_empty() {
                continue;
            }
            if !lbs.extract(&key, &value) {
                continue;
            }
            if !hints.should_continue(&key, lbs) {
                kept = false;
                break;
            }
            if hints.all_required_extracted(lbs) {
                break;
            }
        }
        lbs.scratch.key = key;
        lbs.scratch.value = value;
        if !kept {
            return None;
        }
        if self.strict
            && let Some(err) = decoder.err()
        {
            set_error_label(lbs, LOGFMT_PARSER_ERR, Some(&err.to_string()));
            if !hints.should_continue(ERROR_LABEL, lbs) {
                return None;
            }
        }
        Some(line)
    }
}

/// `| logfmt a="key", b`: only the named keys.
#[derive(Debug)]
pub(crate) struct LogfmtExpressionParser {
    /// The labels to set, as written (a later duplicate replaces an earlier one, as Loki's
    /// map does).
    ids: Vec<String>,
    /// The key each label takes its value from; `None` for an expression of several parts,
    /// which Loki formats into a string no key can equal.
    keys: Vec<Option<String>>,
    strict: bool,
}

impl LogfmtExpressionParser {
    pub fn new(params: &[ExtractParam], strict: bool) -> Result<LogfmtExpressionParser, String> {
        if params.is_empty() {
            return Err("no logfmt expression provided".into());
        }
        let mut parser = LogfmtExpressionParser {
            ids: Vec::new(),
            keys: Vec::new(),
            strict,
        };
        for param in params {
            let expr = param.expr.as_deref().unwrap_or(&param.label);
            let path = parse_logfmt_path(expr)
                .map_err(|e| format!("cannot parse expression [{expr}]: {e}"))?;
            if param.label.is_empty() {
                return Err(format!("invalid extracted label name '{}'", param.label));
            }
            let key = match path.as_slice() {
                [single] => Some(single.clone()),
                _ => None,
            };
            match parser.ids.iter().position(|id| *id == param.label) {
                Some(i) => parser.keys[i] = key,
                None => {
                    parser.ids.push(param.label.clone());
                    parser.keys.push(key);
                }
            }
        }
        Ok(parser)
    }
}

impl Stage for LogfmtExpressionParser {
    fn process<'a>(
        &self,
        _ts: TimestampNs,
        line: Cow<'a, str>,
        lbs: &mut LabelsBuilder,
        _hints: &ParserHints,
    ) -> Option<Cow<'a, str>> {
        for id in &self.ids {
            if !lbs.base_has(id) && !lbs.has_in_category(id, LabelCategory::StructuredMetadata) {
                lbs.set(LabelCategory::Parsed, id, "");
            }
        }
        let mut key = std::mem::take(&mut lbs.scratch.key);
        let mut decoder = Decoder::new(line.as_bytes());
        while !decoder.eol() {
            if !decoder.scan_keyval() {
                if self.strict {
                    break;
                }
                continue;
            }
            sanitize_label_key(&text(decoder.key()), true, &mut key);
            if key.is_empty() {
                continue;
            }
            // Loki's `alwaysExtract` looks the key up among the label names.
            let always = self.ids.contains(&key);
            if !always && lbs.extracted(&key) {
                continue;
            }
            let raw = decoder.value();
            let value = if has_replacement_char(raw) {
                Cow::Borrowed("")
            } else {
                text(raw)
            };
            if let Some(i) = self.keys.iter().position(|k| k.as_deref() == Some(&key)) {
                key.clear();
                key.push_str(&self.ids[i]);
            }
            if self.ids.contains(&key) {
                if lbs.base_has(&key)
                    || lbs.has_in_category(&key, LabelCategory::StructuredMetadata)
                {
                    key.push_str(DUPLICATE_SUFFIX);
                    if lbs.extracted(&key) {
                        break;
                    }
                }
                lbs.set(LabelCategory::Parsed, &key, &value);
            }
        }
        lbs.scratch.key = key;
        if self.strict
            && let Some(err) = decoder.err()
        {
            set_error_label(lbs, LOGFMT_PARSER_ERR, Some(&err.to_string()));
        }
        Some(line)
    }
}

/// Parses the expression of a `logfmt` parameter (Loki's `logfmt` expression grammar: a key
/// or a quoted string, then quoted strings). Errors carry Loki's text.
pub(crate) fn parse_logfmt_path(expr: &str) -> Result<Vec<String>, String> {
    let is_start = |c: char| c.is_ascii_alphabetic() || c == '_';
    let mut chars = expr.chars().peekable();
    let mut parts = Vec::new();
    let mut lexer_error = None;
    while let Some(c) = chars.next() {
        match c {
            '\0' => break,
            ' ' | '\t' | '\n' => continue,
            c if is_start(c) => {
                let mut key = String::from(c);
                while let Some(&c) = chars.peek() {
                    if !(is_start(c) || c.is_ascii_digit()) {
                        break;
                    }
                    key.push(c);
                    chars.next();
                }
                // A key is only valid first; after it Loki's parser has reduced.
                if !parts.is_empty() {
                    return Err("syntax error: unexpected KEY".into());
                }
                parts.push(key);
            }
            '"' => {
                let mut s = String::new();
                for c in chars.by_ref() {
                    if c == '\0' || c == '"' || c == ']' {
                        break;
                    }
                    s.push(c);
                }
                parts.push(s);
            }
            c => {
                lexer_error = Some(format!("unexpected char {c}"));
                break;
            }
        }
    }
    if parts.is_empty() {
        return Err("syntax error: unexpected $end, expecting STRING or KEY".into());
    }
    match lexer_error {
        Some(e) => Err(e),
        None => Ok(parts),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Labels;

    fn run(stage: &dyn Stage, stream: &[(&str, &str)], line: &str) -> Vec<(String, String)> {
        let mut lbs = LabelsBuilder::new(&Labels::from_pairs(stream.iter().copied()));
        lbs.reset([]);
        stage
            .process(0, Cow::Borrowed(line), &mut lbs, &ParserHints::default())
            .unwrap();
        let mut out = Vec::new();
        lbs.for_each(|k, v| out.push((k.to_owned(), v.to_owned())));
        out.sort();
        out
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut v: Vec<_> = p
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn every_pair() {
        let lenient = LogfmtParser {
            strict: false,
            keep_empty: false,
        };
        assert_eq!(
            run(
                &lenient,
                &[("foo", "bar")],
                r#"foo="foo bar" foo.bar=10ms =x a=1 a=2 e="#
            ),
            pairs(&[
                ("foo", "bar"),
                ("foo_extracted", "foo bar"),
                ("foo_bar", "10ms"),
                ("a", "1")
            ])
        );
        let strict = LogfmtParser {
            strict: true,
            keep_empty: true,
        };
        assert_eq!(
            run(&strict, &[], "a=1 e =x b=2"),
            pairs(&[
                ("a", "1"),
                ("e", ""),
                ("__error__", "LogfmtParserErr"),
                (
                    "__error_details__",
                    "logfmt syntax error at pos 7 : unexpected '='"
                ),
            ])
        );
    }

    #[test]
    fn named_keys() {
        let params = [
            ExtractParam {
                label: "lvl".into(),
                expr: Some("level".into()),
            },
            ExtractParam {
                label: "app".into(),
                expr: None,
            },
            ExtractParam {
                label: "nope".into(),
                expr: Some("nope".into()),
            },
        ];
        let parser = LogfmtExpressionParser::new(&params, false).unwrap();
        assert_eq!(
            run(&parser, &[("app", "s")], "app=foo level=error app=bar"),
            pairs(&[
                ("app", "s"),
                ("app_extracted", "foo"),
                ("lvl", "error"),
                ("nope", "")
            ])
        );
    }

    #[test]
    fn expression_syntax() {
        assert_eq!(parse_logfmt_path("app").unwrap(), ["app"]);
        assert_eq!(parse_logfmt_path("id8").unwrap(), ["id8"]);
        assert_eq!(
            parse_logfmt_path("field with spaces").unwrap_err(),
            "syntax error: unexpected KEY"
        );
        assert_eq!(
            parse_logfmt_path("fieldwithÜFT8👌").unwrap_err(),
            "unexpected char Ü"
        );
        assert!(parse_logfmt_path("").is_err());
    }
}

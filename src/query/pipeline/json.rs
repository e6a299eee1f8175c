//! The `json` parser stage: `| json` (every field, nested keys joined by `_`) and
//! `| json a="b.c[0]", d` (only the named paths). Loki's `JSONParser` and
//! `JSONExpressionParser` (pkg/logql/log/parser.go).
//!
//! Which question it answers: "which labels does this JSON line give?" Without parameters:
//! strings, numbers and booleans of every object, at any depth (`{"a":{"b":1}}` gives
//! `a_b="1"`); arrays and nulls give nothing; keys are sanitised; a key that collides with a
//! stream label or the line's structured metadata becomes `<key>_extracted`; the first
//! occurrence of a name on a line wins. With parameters: each path's value (an object or
//! array as its JSON text, null as empty), and an empty value for a path not found. A line
//! the scanner cannot read sets `__error__=JSONParserErr` with the scanner's text in
//! `__error_details__`; the labels read before the error stay.

use std::borrow::Cow;

use super::json_path::{PathElement, parse_json_path};
use super::json_scan::{self, JsonError, Value, ValueType};
use super::keys::{append_sanitized, sanitize_label_key};
use super::labels::{DUPLICATE_SUFFIX, LabelCategory, LabelsBuilder};
use super::text::{push_without_replacement, text};
use super::{JSON_PARSER_ERR, ParserHints, Stage, set_error_label};
use crate::logql::ExtractParam;
use crate::model::TimestampNs;

/// How deep `| json` follows nested objects. Loki has no limit; the walk recurses once per
/// level, so this bounds its stack. Deeper objects are skipped like arrays (their fields give
/// no labels); real log lines nest a few levels.
pub(crate) const JSON_DEPTH_MAX: usize = 64;

/// `| json` without parameters.
#[derive(Debug, Default)]
pub(crate) struct JsonParser;

/// Why a walk over the line stopped early.
enum Stop {
    Json(JsonError),
    /// Every required label was read (Loki's `errFoundAllLabels`): the rest of the line is
    /// not.
    AllExtracted,
    /// A label filter of the query failed on a label just extracted: the line is dropped
    /// (Loki's `errLabelDoesNotMatch`).
    FilteredOut,
}

impl From<JsonError> for Stop {
    fn from(e: JsonError) -> Stop {
        Stop::Json(e)
    }
}

/// What the walk carries: the builder, the query's hints and the reused buffers.
struct Walk<'b> {
    lbs: &'b mut LabelsBuilder,
    hints: &'b ParserHints,
    /// Keys of the enclosing objects, back to back, and where each ends.
    prefix: Vec<u8>,
    prefix_ends: Vec<usize>,
    name: String,
    value: String,
    bytes: Vec<u8>,
}

impl Walk<'_> {
    fn object(&mut self, data: &[u8], depth: usize) -> Result<(), Stop> {
        json_scan::object_each(data, |key, value| self.field(key, value, depth))
    }

    fn field(&mut self, key: &[u8], value: Value<'_>, depth: usize) -> Result<(), Stop> {
        match value.ty {
            ValueType::String | ValueType::Number | ValueType::Boolean => {
                self.leaf(key, value)?;
                if self.hints.all_required_extracted(self.lbs) {
                    return Err(Stop::AllExtracted);
                }
                Ok(())
            }
            ValueType::Object if depth < JSON_DEPTH_MAX => {
                let prefix_len = self.prefix_ends.len();
                self.push_prefix(key);
                self.build_name();
                let walked = if self.hints.should_extract_prefix(&self.name) {
                    self.object(value.bytes, depth + 1)
                } else {
                    Ok(())
                };
                self.truncate_prefix(prefix_len);
                walked
            }
            _ => Ok(()),
        }
    }

    fn push_prefix(&mut self, part: &[u8]) {
        self.prefix.extend_from_slice(part);
        self.prefix_ends.push(self.prefix.len());
    }

    fn truncate_prefix(&mut self, parts: usize) {
        self.prefix_ends.truncate(parts);
        self.prefix
            .truncate(self.prefix_ends.last().copied().unwrap_or(0));
    }

    /// The label name of the current prefix: parts joined by `_`, blank parts left out.
    fn build_name(&mut self) {
        self.name.clear();
        let mut start = 0;
        for (i, &end) in self.prefix_ends.iter().enumerate() {
            let part = text(&self.prefix[start..end]);
            start = end;
            if part.trim().is_empty() {
                continue;
            }
            if i > 0 && !self.name.is_empty() {
                self.name.push('_');
            }
            append_sanitized(&mut self.name, &part);
        }
    }

    fn leaf(&mut self, key: &[u8], value: Value<'_>) -> Result<(), Stop> {
        if self.prefix_ends.is_empty() && !self.hints.may_want_key(key) {
            return Ok(());
        }
        let key_text = text(key);
        if self.prefix_ends.is_empty() {
            sanitize_label_key(&key_text, true, &mut self.name);
            if self.name.is_empty() {
                return Ok(());
            }
            if self.lbs.base_has(&self.name)
                || self
                    .lbs
                    .has_in_category(&self.name, LabelCategory::StructuredMetadata)
            {
                self.name.push_str(DUPLICATE_SUFFIX);
            }
        } else {
            let prefix_len = self.prefix_ends.len();
            self.push_prefix(key);
            self.build_name();
            if self.lbs.base_has(&self.name)
                || self
                    .lbs
                    .has_in_category(&self.name, LabelCategory::StructuredMetadata)
            {
                // Loki renames the last part and builds the name again.
                self.truncate_prefix(prefix_len);
                self.push_prefix(key);
                self.prefix.extend_from_slice(DUPLICATE_SUFFIX.as_bytes());
                if let Some(end) = self.prefix_ends.last_mut() {
                    *end = self.prefix.len();
                }
                self.build_name();
            }
            self.truncate_prefix(prefix_len);
        }
        if !self.hints.wants(&self.name) {
            return Ok(());
        }
        read_value(value, &mut self.bytes, &mut self.value);
        if !self.lbs.extract(&self.name, &self.value) {
            return Ok(());
        }
        if !self.hints.should_continue(&self.name, self.lbs) {
            return Err(Stop::FilteredOut);
        }
        Ok(())
    }
}

/// A scalar's label value: a string unescaped (empty if its escapes are invalid), a number
/// as written, a boolean as `true`/`false`.
fn read_value(value: Value<'_>, buf: &mut Vec<u8>, out: &mut String) {
    out.clear();
    match value.ty {
        ValueType::String => unescape_string(value.bytes, buf, out),
        ValueType::Number => out.push_str(&text(value.bytes)),
        ValueType::Boolean => out.push_str(if value.bytes == b"true" {
            "true"
        } else {
            "false"
        }),
        _ => {}
    }
}

/// Loki's `unescapeJSONString` into `out` (cleared first): the unescaped text, or nothing
/// when an escape is invalid; U+FFFD (invalid UTF-8 in Loki) becomes a space. `buf` is a
/// buffer the caller reuses.
pub(crate) fn unescape_string(bytes: &[u8], buf: &mut Vec<u8>, out: &mut String) {
    out.clear();
    let unescaped: &[u8] = if memchr::memchr(b'\\', bytes).is_none() {
        bytes
    } else if json_scan::unescape_into(bytes, buf).is_ok() {
        buf
    } else {
        return;
    };
    push_without_replacement(out, &text(unescaped));
}

impl Stage for JsonParser {
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
        let mut scratch = std::mem::take(&mut lbs.scratch);
        scratch.prefix.clear();
        scratch.prefix_ends.clear();
        let mut walk = Walk {
            lbs,
            hints,
            prefix: std::mem::take(&mut scratch.prefix),
            prefix_ends: std::mem::take(&mut scratch.prefix_ends),
            name: std::mem::take(&mut scratch.key),
            value: std::mem::take(&mut scratch.value),
            bytes: std::mem::take(&mut scratch.bytes),
        };
        let result = walk.object(line.as_bytes(), 0);
        scratch.prefix = walk.prefix;
        scratch.prefix_ends = walk.prefix_ends;
        scratch.key = walk.name;
        scratch.value = walk.value;
        scratch.bytes = walk.bytes;
        lbs.scratch = scratch;
        match result {
            Ok(()) | Err(Stop::AllExtracted) => Some(line),
            Err(Stop::FilteredOut) => None,
            Err(Stop::Json(e)) => {
                set_error_label(lbs, JSON_PARSER_ERR, Some(e.message()));
                Some(line)
            }
        }
    }
}

/// `| json a="b.c", d`: only these paths.
#[derive(Debug)]
pub(crate) struct JsonExpressionParser {
    /// The label of each path, as written.
    ids: Vec<String>,
    /// `<id>_extracted`, for collisions.
    suffixed: Vec<String>,
    /// The paths in the scanner's form (`[N]` for an index).
    paths: Vec<Vec<String>>,
}

impl JsonExpressionParser {
    pub fn new(params: &[ExtractParam]) -> Result<JsonExpressionParser, String> {
        let mut parser = JsonExpressionParser {
            ids: Vec::new(),
            suffixed: Vec::new(),
            paths: Vec::new(),
        };
        for param in params {
            let expr = param.expr.as_deref().unwrap_or(&param.label);
            let path = parse_json_path(expr)
                .map_err(|e| format!("cannot parse expression [{expr}]: {e}"))?;
            if param.label.is_empty() {
                return Err(format!("invalid extracted label name '{}'", param.label));
            }
            parser.ids.push(param.label.clone());
            parser
                .suffixed
                .push(format!("{}{DUPLICATE_SUFFIX}", param.label));
            parser
                .paths
                .push(path.iter().map(PathElement::to_scanner_key).collect());
        }
        Ok(parser)
    }
}

/// Whether a line can be JSON at all, by its first byte (Loki's `isValidJSONStart`).
fn is_valid_json_start(line: &str) -> bool {
    matches!(line.as_bytes().first(), Some(b'"' | b'{' | b'['))
}

impl Stage for JsonExpressionParser {
    fn process<'a>(
        &self,
        _ts: TimestampNs,
        line: Cow<'a, str>,
        lbs: &mut LabelsBuilder,
        _hints: &ParserHints,
    ) -> Option<Cow<'a, str>> {
        if line.is_empty() {
            return Some(line);
        }
        if !is_valid_json_start(&line) {
            set_error_label(lbs, JSON_PARSER_ERR, None);
            return Some(line);
        }
        let mut value = std::mem::take(&mut lbs.scratch.value);
        let mut buf = std::mem::take(&mut lbs.scratch.bytes);
        let mut matches = 0;
        json_scan::each_key(line.as_bytes(), &self.paths, |index, bytes, ty, err| {
            if let Some(err) = err {
                set_error_label(lbs, JSON_PARSER_ERR, Some(err.message()));
                return;
            }
            let Some(index) = index else { return };
            let name = lbs.parsed_name(&self.ids[index], &self.suffixed[index]);
            match ty {
                ValueType::Null => value.clear(),
                ValueType::Object => {
                    value.clear();
                    value.push_str(&text(bytes));
                }
                _ => unescape_string(bytes, &mut buf, &mut value),
            }
            lbs.set(LabelCategory::Parsed, name, &value);
            matches += 1;
        });
        lbs.scratch.value = value;
        lbs.scratch.bytes = buf;
        // Every path gets a label, empty when not found (unless the name exists already).
        if matches < self.ids.len() {
            for id in &self.ids {
                if lbs.get(id).is_none() {
                    lbs.set(LabelCategory::Parsed, id, "");
                }
            }
        }
        Some(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Labels;

    fn run(stage: &dyn Stage, stream: &[(&str, &str)], line: &str) -> Vec<(String, String)> {
        let mut lbs = LabelsBuilder::new(&Labels::from_pairs(stream.iter().copied()));
        lbs.reset([]);
        let kept = stage.process(0, Cow::Borrowed(line), &mut lbs, &ParserHints::default());
        assert!(kept.is_some());
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
    fn flattens_nested_objects() {
        let got = run(
            &JsonParser,
            &[("app", "foo")],
            r#"{"app":"bar","pod":{"uuid":"u","deployment":{"ref":"r"}},"arr":[1],"n":null,"b":true,"x":1.5,"1st":"a"}"#,
        );
        assert_eq!(
            got,
            pairs(&[
                ("app", "foo"),
                ("app_extracted", "bar"),
                ("pod_uuid", "u"),
                ("pod_deployment_ref", "r"),
                ("b", "true"),
                ("x", "1.5"),
                ("_1st", "a"),
            ])
        );
    }

    #[test]
    fn first_occurrence_wins_and_errors_keep_what_was_read() {
        let got = run(&JsonParser, &[], r#"{"a":"1","a":"2","b":"x"#);
        assert_eq!(
            got,
            pairs(&[
                ("a", "1"),
                ("__error__", "JSONParserErr"),
                (
                    "__error_details__",
                    "Value is string, but can't find closing '\"' symbol"
                ),
            ])
        );
    }

    #[test]
    fn nesting_beyond_the_limit_is_skipped() {
        let deep = format!(
            "{}\"v\":1{}",
            "{\"a\":".repeat(JSON_DEPTH_MAX + 5),
            "}".repeat(JSON_DEPTH_MAX + 5)
        );
        let line = format!("{{\"top\":1,\"deep\":{deep}}}");
        assert_eq!(run(&JsonParser, &[], &line), pairs(&[("top", "1")]));
    }

    #[test]
    fn expressions() {
        let params = |p: &[(&str, &str)]| -> Vec<ExtractParam> {
            p.iter()
                .map(|(l, e)| ExtractParam {
                    label: l.to_string(),
                    expr: Some(e.to_string()),
                })
                .collect()
        };
        let parser = JsonExpressionParser::new(&params(&[
            ("uuid", "pod.uuid"),
            ("p", "pod.params[1]"),
            ("obj", "pod.obj"),
            ("none", "missing"),
        ]))
        .unwrap();
        let got = run(
            &parser,
            &[("uuid", "stream")],
            r#"{"pod":{"uuid":"u\"1","params":[1,"two"],"obj":{"k": 1}}}"#,
        );
        assert_eq!(
            got,
            pairs(&[
                ("uuid", "stream"),
                ("uuid_extracted", "u\"1"),
                ("p", "two"),
                ("obj", r#"{"k": 1}"#),
                ("none", ""),
            ])
        );
        let got = run(&parser, &[], "not json");
        assert!(got.contains(&("__error__".to_string(), "JSONParserErr".to_string())));
        let err = JsonExpressionParser::new(&params(&[("a", "field with space")])).unwrap_err();
        assert_eq!(
            err,
            "cannot parse expression [field with space]: syntax error: unexpected FIELD"
        );
    }
}

//! The `unpack` stage: reads the JSON object Promtail's `pack` stage wrote, whose `_entry`
//! is the original line and whose other string fields are labels (Loki's `UnpackParser`).
//!
//! Which question it answers: "what was the line before it was packed, with which labels?"
//! Only a packed object (one with `_entry`) gives labels; the line becomes `_entry`. Other
//! fields than strings are ignored. A line that is not an object sets
//! `__error__=JSONParserErr`.

use std::borrow::Cow;

use super::json::unescape_string;
use super::json_scan::{self, JsonError, ValueType};
use super::keys::sanitize_label_key;
use super::labels::{DUPLICATE_SUFFIX, LabelCategory, LabelsBuilder};
use super::text::text;
use super::{JSON_PARSER_ERR, ParserHints, Stage, set_error_label};
use crate::model::TimestampNs;

/// The key that holds the packed line.
const PACKED_ENTRY_KEY: &[u8] = b"_entry";

/// What Loki says of a line that does not start with `{` (6 is jsoniter's ObjectValue).
const NOT_AN_OBJECT: &str = "expecting json object(6), but it is not";

#[derive(Debug, Default)]
pub(crate) struct UnpackParser;

impl Stage for UnpackParser {
    fn process<'a>(
        &self,
        _ts: TimestampNs,
        line: Cow<'a, str>,
        lbs: &mut LabelsBuilder,
        hints: &ParserHints,
    ) -> Option<Cow<'a, str>> {
        if line.is_empty() {
            return Some(line);
        }
        if !line.starts_with('{') {
            set_error_label(lbs, JSON_PARSER_ERR, Some(NOT_AN_OBJECT));
            return Some(line);
        }
        let mut pending = std::mem::take(&mut lbs.scratch.pending);
        let mut name = std::mem::take(&mut lbs.scratch.key);
        let mut value = std::mem::take(&mut lbs.scratch.value);
        let mut buf = std::mem::take(&mut lbs.scratch.bytes);
        pending.clear();
        let mut entry: Option<String> = None;
        let scanned = json_scan::object_each::<JsonError>(line.as_bytes(), |key, v| {
            if v.ty != ValueType::String {
                return Ok(());
            }
            if key == PACKED_ENTRY_KEY {
                let unescaped = json_scan::unescape(v.bytes)?;
                entry = Some(text(&unescaped).into_owned());
                return Ok(());
            }
            let mut key = text(key).into_owned();
            if lbs.base_has(&key) || lbs.has_in_category(&key, LabelCategory::StructuredMetadata) {
                key.push_str(DUPLICATE_SUFFIX);
            }
            if lbs.extracted(&key) {
                return Ok(());
            }
            sanitize_label_key(&key, true, &mut name);
            unescape_string(v.bytes, &mut buf, &mut value);
            pending.push(&name, &value);
            Ok(())
        });
        let result = match scanned {
            Err(e) => {
                set_error_label(lbs, JSON_PARSER_ERR, Some(e.message()));
                Some(line)
            }
            Ok(()) => match entry {
                // Not packed: nothing to unpack.
                None => Some(line),
                Some(entry) => {
                    let mut kept = true;
                    for (k, v) in pending.iter() {
                        lbs.set(LabelCategory::Parsed, k, v);
                        if !hints.should_continue(k, lbs) {
                            kept = false;
                            break;
                        }
                    }
                    kept.then_some(Cow::Owned(entry))
                }
            },
        };
        lbs.scratch.pending = pending;
        lbs.scratch.key = name;
        lbs.scratch.value = value;
        lbs.scratch.bytes = buf;
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Labels;

    fn run(stream: &[(&str, &str)], line: &str) -> (String, Vec<(String, String)>) {
        let mut lbs = LabelsBuilder::new(&Labels::from_pairs(stream.iter().copied()));
        lbs.reset([]);
        let out = UnpackParser
            .process(0, Cow::Borrowed(line), &mut lbs, &ParserHints::default())
            .unwrap()
            .into_owned();
        let mut labels = Vec::new();
        lbs.for_each(|k, v| labels.push((k.to_owned(), v.to_owned())));
        labels.sort();
        (out, labels)
    }

    #[test]
    fn unpacks_the_entry_and_string_fields() {
        let (line, labels) = run(
            &[("app", "bar")],
            r#"{"bar":1,"app":"foo","ns":"prod","_entry":"some \"msg\"","pod":{"uid":"1"}}"#,
        );
        assert_eq!(line, "some \"msg\"");
        let want: Vec<(String, String)> =
            [("app", "bar"), ("app_extracted", "foo"), ("ns", "prod")]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        assert_eq!(labels, want);
    }

    #[test]
    fn unpacked_without_entry_gives_nothing_and_non_objects_fail() {
        let (line, labels) = run(&[], r#"{"a":"b"}"#);
        assert_eq!((line.as_str(), labels.len()), (r#"{"a":"b"}"#, 0));
        let (_, labels) = run(&[], r#"["a"]"#);
        assert_eq!(labels[0], ("__error__".into(), "JSONParserErr".into()));
        assert_eq!(labels[1].1, NOT_AN_OBJECT);
        assert_eq!(run(&[], "").1.len(), 0);
    }
}

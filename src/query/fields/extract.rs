//! The fields of one log line as `detected_fields` sees them (Loki's `parseEntry`,
//! pkg/querier/queryrange/detected_fields.go): `| json` if the line reads as JSON, else
//! `| logfmt`, and for JSON the key path each field came from.
//!
//! Which question it answers: "which fields does this line have, found by which parser, and
//! where in the JSON?" The parsers are the pipeline's own stages, so names and values are
//! exactly those `| json` and `| logfmt` give in a query (a key that collides with a stream
//! label becomes `<key>_extracted`). The JSON paths come from a second walk over the line
//! that names fields the way the `json` stage does: raw keys (unescaped), the
//! `_extracted` suffix not included.

use std::collections::HashMap;

use crate::logql::{ParserStage, Stage};
use crate::model::Labels;
use crate::query::pipeline::json_scan::{self, JsonError, ValueType};
use crate::query::pipeline::keys::{append_sanitized, sanitize_label_key};
use crate::query::pipeline::{
    ERROR_DETAILS_LABEL, ERROR_LABEL, LabelCategory, LabelsBuilder, PRESERVE_ERROR_LABEL, Pipeline,
};

/// How deep the path walk follows nested objects: the `json` stage's bound, so that both
/// name the same fields.
const JSON_DEPTH_MAX: usize = 64;
/// What Loki appends to a key that collides with a stream label.
const DUPLICATE_SUFFIX: &str = "_extracted";

/// The parser a field was found by (Loki's `parsers` entries).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Parser {
    Json,
    Logfmt,
}

impl Parser {
    pub fn as_str(self) -> &'static str {
        match self {
            Parser::Json => "json",
            Parser::Logfmt => "logfmt",
        }
    }
}

/// What one line gave.
#[derive(Debug, Default)]
pub(crate) struct Extracted {
    /// The parser that read the line; `None` when neither could.
    pub parser: Option<Parser>,
    /// Field names and values, in the order the parser set them.
    pub fields: Vec<(String, String)>,
    /// For a JSON line: each field's key path.
    pub json_paths: HashMap<String, Vec<String>>,
}

impl Extracted {
    fn clear(&mut self) {
        self.parser = None;
        self.fields.clear();
        self.json_paths.clear();
    }
}

/// The two parsers and a labels builder kept for the stream of the last line.
#[derive(Debug)]
pub(crate) struct Extractor {
    json: Pipeline,
    logfmt: Pipeline,
    builder: Option<LabelsBuilder>,
}

impl Extractor {
    pub fn new() -> Extractor {
        let json = Stage::Parser(ParserStage::Json(Vec::new()));
        let logfmt = Stage::Parser(ParserStage::Logfmt {
            strict: false,
            keep_empty: false,
            params: Vec::new(),
        });
        // Parsers without parameters always compile; a default pipeline (which extracts
        // nothing) stands in should that ever change.
        Extractor {
            json: Pipeline::new(&[json]).unwrap_or_default(),
            logfmt: Pipeline::new(&[logfmt]).unwrap_or_default(),
            builder: None,
        }
    }

    /// Reads `line` of a stream with labels `stream` into `out`.
    pub fn extract(&mut self, line: &str, stream: &Labels, out: &mut Extracted) {
        out.clear();
        if self.builder.as_ref().is_none_or(|b| b.stream() != stream) {
            self.builder = Some(LabelsBuilder::new(stream));
        }
        let Some(lbs) = self.builder.as_mut() else {
            return;
        };
        // Loki's builder here holds the stream labels only: structured metadata does not
        // rename parsed keys.
        lbs.reset(std::iter::empty());
        let _ = self.json.run(0, line, lbs);
        let parser = if lbs.has_error() {
            lbs.reset(std::iter::empty());
            let _ = self.logfmt.run(0, line, lbs);
            if lbs.has_error() {
                return;
            }
            Parser::Logfmt
        } else {
            Parser::Json
        };
        out.parser = Some(parser);
        let lbs: &LabelsBuilder = lbs;
        lbs.for_each(|name, value| {
            if lbs.has_in_category(name, LabelCategory::Parsed) && !is_error_label(name) {
                out.fields.push((name.to_owned(), value.to_owned()));
            }
        });
        if parser == Parser::Json {
            let mut walk = PathWalk {
                lbs,
                keys: Vec::new(),
                out: &mut out.json_paths,
            };
            let _ = walk.object(line.as_bytes(), 0);
        }
    }
}

pub(crate) fn is_error_label(name: &str) -> bool {
    name == ERROR_LABEL || name == ERROR_DETAILS_LABEL || name == PRESERVE_ERROR_LABEL
}

/// Walks a JSON line as the `json` stage does, recording each scalar field's key path.
struct PathWalk<'a> {
    lbs: &'a LabelsBuilder,
    /// Keys of the enclosing objects.
    keys: Vec<String>,
    out: &'a mut HashMap<String, Vec<String>>,
}

impl PathWalk<'_> {
    fn object(&mut self, data: &[u8], depth: usize) -> Result<(), JsonError> {
        json_scan::object_each(data, |key, value| {
            let key = String::from_utf8_lossy(key).into_owned();
            match value.ty {
                ValueType::String | ValueType::Number | ValueType::Boolean => {
                    self.leaf(key);
                    Ok(())
                }
                ValueType::Object if depth < JSON_DEPTH_MAX => {
                    self.keys.push(key);
                    let walked = self.object(value.bytes, depth + 1);
                    self.keys.pop();
                    walked
                }
                _ => Ok(()),
            }
        })
    }

    fn leaf(&mut self, key: String) {
        let (name, path) = if self.keys.is_empty() {
            let mut name = String::new();
            sanitize_label_key(&key, true, &mut name);
            if name.is_empty() {
                return;
            }
            if self.lbs.base_has(&name) {
                name.push_str(DUPLICATE_SUFFIX);
            }
            (name, vec![key])
        } else {
            let mut parts = self.keys.clone();
            parts.push(key);
            let mut name = joined_name(&parts);
            if self.lbs.base_has(&name) {
                if let Some(last) = parts.last_mut() {
                    last.push_str(DUPLICATE_SUFFIX);
                }
                name = joined_name(&parts);
            }
            // Loki trims the suffix from every part of the path.
            let path = parts
                .into_iter()
                .map(|p| {
                    p.strip_suffix(DUPLICATE_SUFFIX)
                        .map(str::to_owned)
                        .unwrap_or(p)
                })
                .collect();
            (name, path)
        };
        // The first occurrence of a name on a line gives its value, so its path too.
        self.out.entry(name).or_insert(path);
    }
}

/// A nested field's name: the sanitised parts joined by `_`, blank parts left out.
fn joined_name(parts: &[String]) -> String {
    let mut name = String::new();
    for (i, part) in parts.iter().enumerate() {
        if part.trim().is_empty() {
            continue;
        }
        if i > 0 && !name.is_empty() {
            name.push('_');
        }
        append_sanitized(&mut name, part);
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    fn extract(line: &str, stream: &[(&str, &str)]) -> Extracted {
        let mut out = Extracted::default();
        Extractor::new().extract(line, &Labels::from_pairs(stream.iter().copied()), &mut out);
        out
    }

    fn fields(e: &Extracted) -> Vec<(&str, &str)> {
        e.fields
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    #[test]
    fn json_lines_give_fields_and_paths() {
        let e = extract(
            r#"{"level":"info","user":{"id":7,"name":"x y"},"tags":["a"],"app":"web","ok":true}"#,
            &[("app", "svc")],
        );
        assert_eq!(e.parser, Some(Parser::Json));
        assert_eq!(
            fields(&e),
            [
                ("level", "info"),
                ("user_id", "7"),
                ("user_name", "x y"),
                ("app_extracted", "web"),
                ("ok", "true")
            ]
        );
        assert_eq!(e.json_paths["user_id"], ["user", "id"]);
        assert_eq!(e.json_paths["app_extracted"], ["app"]);
        assert_eq!(e.json_paths["level"], ["level"]);
        assert!(!e.json_paths.contains_key("tags"));
    }

    #[test]
    fn nested_collisions_and_odd_keys_follow_the_json_stage() {
        let e = extract(r#"{"a":{"b":1}," 9x ":{"y-z":2}}"#, &[("a_b", "s")]);
        assert_eq!(fields(&e), [("a_b_extracted", "1"), ("_9x_y_z", "2")]);
        assert_eq!(e.json_paths["a_b_extracted"], ["a", "b"]);
        assert_eq!(e.json_paths["_9x_y_z"], [" 9x ", "y-z"]);
    }

    #[test]
    fn other_lines_fall_back_to_logfmt() {
        let e = extract(
            r#"level=warn msg="disk full" empty= app=x"#,
            &[("app", "svc")],
        );
        assert_eq!(e.parser, Some(Parser::Logfmt));
        assert_eq!(
            fields(&e),
            [
                ("level", "warn"),
                ("msg", "disk full"),
                ("app_extracted", "x")
            ]
        );
        assert!(e.json_paths.is_empty());
        let e = extract("plain text without pairs", &[]);
        assert_eq!(e.parser, Some(Parser::Logfmt));
        assert!(e.fields.is_empty());
        // Broken JSON is not JSON.
        let e = extract(r#"{"a":1,"b":"#, &[]);
        assert_eq!(e.parser, Some(Parser::Logfmt));
    }
}

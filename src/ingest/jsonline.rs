//! Decoding of JSON-lines bodies (`POST /insert/jsonline`, as VictoriaLogs accepts them):
//! one JSON object per line, each becoming one entry.
//!
//! Which question it answers: "which fields of this object are the time, the message and the
//! stream?" The query string names them (`_time_field`, `_msg_field`, `_stream_fields`, as in
//! VictoriaLogs); the defaults fit the common shape
//! `{"timestamp":"2024-01-01T12:00:00Z","service_name":"a","log_level":"INFO","message":"..",
//! "trace_id":"b"}`. Stream fields become labels (names sanitised to Loki's label rules), the
//! message field becomes the line (the whole object as sent when there is none), and every
//! other field becomes structured metadata: nested objects flattened with `.`-joined keys,
//! numbers, booleans and arrays as their JSON text, nulls dropped. Lines are checked with the
//! same rules as a Loki push, and a body is all-or-nothing.

mod timestamp;

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::ingest::push::validate::{self, display_pairs, echo};
use crate::ingest::push::{PushEntry, PushError, PushLimits, Truncated, Violation};
use crate::model::Labels;

use timestamp::parse_time;

/// Fields tried for the timestamp, in order, when the query names none.
pub const TIME_FIELDS_DEFAULT: &[&str] = &["timestamp", "time", "ts", "_time"];
/// Fields tried for the message, in order, when the query names none.
pub const MESSAGE_FIELDS_DEFAULT: &[&str] = &["message", "msg", "_msg", "log"];
/// Fields that become labels when present, when the query names none: low-cardinality
/// fields that identify where a line came from and how severe it is.
pub const STREAM_FIELDS_DEFAULT: &[&str] =
    &["service_name", "service", "app", "log_level", "level"];
/// The label of an object that has none of the stream fields: Loki's own default for a
/// stream whose service it cannot discover, so that such lines stay queryable.
pub const UNKNOWN_SERVICE_LABEL: (&str, &str) = ("service_name", "unknown_service");
/// Field names one query parameter may list. Stream fields are bounded again by the label
/// count limit; this bound only keeps a hostile query string from building a long list.
pub const FIELD_NAMES_PER_PARAM_MAX: usize = 64;

/// Which fields of each object are the time, the message and the stream labels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JsonLineParams {
    /// Candidates for the timestamp; the first present is used.
    pub time_fields: Vec<String>,
    /// Candidates for the message; the first present is used.
    pub message_fields: Vec<String>,
    /// Fields that become labels, every one that is present.
    pub stream_fields: Vec<String>,
}

impl Default for JsonLineParams {
    fn default() -> JsonLineParams {
        let owned = |names: &[&str]| names.iter().map(|s| s.to_string()).collect();
        JsonLineParams {
            time_fields: owned(TIME_FIELDS_DEFAULT),
            message_fields: owned(MESSAGE_FIELDS_DEFAULT),
            stream_fields: owned(STREAM_FIELDS_DEFAULT),
        }
    }
}

impl JsonLineParams {
    /// Reads the parameters from a URL query string (with or without the leading `?`).
    ///
    /// `_time_field`/`time_field`, `_msg_field`/`msg_field` and
    /// `_stream_fields`/`stream_fields` each take a comma-separated list of field names;
    /// an empty or absent parameter keeps the default. Other parameters are ignored, so that
    /// clients written for VictoriaLogs (`debug`, `_ignore_fields`, ...) still work.
    pub fn from_query(query: &str) -> Result<JsonLineParams, PushError> {
        let mut params = JsonLineParams::default();
        let query = query.strip_prefix('?').unwrap_or(query);
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let key = percent_decode(key)?;
            let slot = match key.as_str() {
                "_time_field" | "time_field" => &mut params.time_fields,
                "_msg_field" | "msg_field" => &mut params.message_fields,
                "_stream_fields" | "stream_fields" => &mut params.stream_fields,
                _ => continue,
            };
            let value = percent_decode(value)?;
            let names: Vec<String> = value
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
            if names.len() > FIELD_NAMES_PER_PARAM_MAX {
                return Err(PushError::BadRequest(format!(
                    "query parameter '{key}' lists {} fields; limit {FIELD_NAMES_PER_PARAM_MAX}",
                    names.len()
                )));
            }
            if !names.is_empty() {
                *slot = names;
            }
        }
        Ok(params)
    }
}

/// Decodes a URL query component: `%XX` escapes and `+` for a space.
fn percent_decode(s: &str) -> Result<String, PushError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = |b: Option<&u8>| b.and_then(|b| (*b as char).to_digit(16));
                match (hex(bytes.get(i + 1)), hex(bytes.get(i + 2))) {
                    (Some(hi), Some(lo)) => out.push((hi * 16 + lo) as u8),
                    _ => {
                        return Err(PushError::BadRequest(format!(
                            "invalid percent-encoding in query component '{}' at byte {i}",
                            echo(s)
                        )));
                    }
                }
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| {
        PushError::BadRequest(format!(
            "query component '{}' is not UTF-8 once decoded",
            echo(s)
        ))
    })
}

/// A decoded JSON-lines body.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JsonLines {
    /// Each line's labels and entry, in the order of the lines.
    pub rows: Vec<(Labels, PushEntry)>,
    /// What was cut off long lines to fit them.
    pub truncated: Truncated,
}

/// Decodes a JSON-lines body into labelled entries, in the order of the lines.
///
/// `body` is already decompressed (see [`crate::ingest::push::decompress`]); `now_ns` is the
/// timestamp of objects that carry none. Empty lines are skipped; lines end in `\n` or
/// `\r\n`. Errors name the 1-based line number; any error rejects the whole body.
pub fn decode_jsonline(
    params: &JsonLineParams,
    body: &[u8],
    now_ns: i64,
    limits: &PushLimits,
) -> Result<JsonLines, PushError> {
    crate::ingest::push::decompress::check_body_size(body, limits.body_bytes_max)?;
    // Some tools start a file with a UTF-8 byte order mark; it is not part of the JSON.
    let body = body.strip_prefix(b"\xef\xbb\xbf").unwrap_or(body);
    let mut out = JsonLines::default();
    // Consecutive lines usually share a stream: the last label set is kept so that labels
    // are built, validated and sorted once per run of lines, not once per line.
    let mut last: Option<(Vec<(String, String)>, Labels)> = None;
    // Fields borrow from the body where no escape had to be undone; the vector is reused.
    let mut fields: Fields<'_> = Vec::new();
    let mut number = 0;
    let mut start = 0;
    while start <= body.len() {
        let end = memchr::memchr(b'\n', &body[start..]).map_or(body.len(), |i| start + i);
        let raw = &body[start..end];
        start = end + 1;
        number += 1;
        let text = raw.strip_suffix(b"\r").unwrap_or(raw).trim_ascii();
        if text.is_empty() {
            continue;
        }
        fields.clear();
        parse_object(text, &mut fields)
            .map_err(|e| PushError::BadRequest(format!("cannot parse JSON line {number}: {e}")))?;
        let (pairs, entry) = entry_of(params, text, &fields, now_ns)
            .map_err(|e| PushError::BadRequest(format!("JSON line {number}: {e}")))?;
        let labels = match &last {
            Some((p, labels)) if same_pairs(p, &pairs) => labels.clone(),
            _ => {
                let owned: Vec<(String, String)> = pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                let shown = display_pairs(&owned);
                let labels = validate::labels(owned.clone(), &shown, limits)
                    .map_err(|v| at_line(number, v, body))?;
                last = Some((owned, labels.clone()));
                labels
            }
        };
        let mut entry = entry;
        out.truncated.add(validate::fit_line(&mut entry, limits));
        validate::entry(&entry, &labels, limits).map_err(|v| at_line(number, v, body))?;
        out.rows.push((labels, entry));
    }
    Ok(out)
}

fn same_pairs(owned: &[(String, String)], pairs: &[(Cow<'_, str>, Cow<'_, str>)]) -> bool {
    owned.len() == pairs.len()
        && owned
            .iter()
            .zip(pairs)
            .all(|((k, v), (pk, pv))| k == pk && v == pv)
}

/// The refusal of `body` for a violation on line `number`. Nothing of the body is stored,
/// so every entry it carries is counted: every line that is not blank, whether or not it
/// would have parsed. A body is decoded line by line, so that count costs a pass over the
/// body, made only when it is refused.
fn at_line(number: usize, v: Violation, body: &[u8]) -> PushError {
    let entries = body
        .split(|&b| b == b'\n')
        .filter(|line| !line.trim_ascii().is_empty())
        .count();
    Violation::new(v.rule, format!("JSON line {number}: {}", v.message)).refusing(entries)
}

/// Label pairs as found in one object, before they are validated.
type RawPairs<'f> = Vec<(Cow<'f, str>, Cow<'f, str>)>;

/// Splits one parsed object into its label pairs (borrowed from `fields`) and its entry.
fn entry_of<'f>(
    params: &JsonLineParams,
    text: &[u8],
    fields: &'f Fields<'_>,
    now_ns: i64,
) -> Result<(RawPairs<'f>, PushEntry), String> {
    let find = |names: &[String]| {
        names
            .iter()
            .find_map(|n| fields.iter().position(|(k, _)| k == n))
    };
    let time_at = find(&params.time_fields);
    let message_at = find(&params.message_fields);
    let timestamp_ns = match time_at {
        Some(i) => parse_time(&fields[i].1, now_ns).map_err(|why| {
            format!(
                "cannot parse the time field '{}': {why}",
                echo(&fields[i].0)
            )
        })?,
        None => now_ns,
    };
    let line = match message_at {
        Some(i) => fields[i].1.text().into_owned(),
        None => std::str::from_utf8(text)
            .map_err(|_| "the line is not UTF-8".to_string())?
            .to_string(),
    };
    let mut pairs = Vec::new();
    let mut metadata = Vec::new();
    for (i, (name, value)) in fields.iter().enumerate() {
        if Some(i) == time_at || Some(i) == message_at {
            continue;
        }
        let value = value.text();
        if params.stream_fields.iter().any(|s| s == name) {
            if !value.is_empty() {
                pairs.push((sanitize_label_name(name), value));
            }
        } else {
            metadata.push((name.to_string(), value.into_owned()));
        }
    }
    if pairs.is_empty() {
        pairs.push((
            Cow::Borrowed(UNKNOWN_SERVICE_LABEL.0),
            Cow::Borrowed(UNKNOWN_SERVICE_LABEL.1),
        ));
    }
    Ok((
        pairs,
        PushEntry {
            timestamp_ns,
            line,
            metadata,
        },
    ))
}

/// Maps a field name onto Loki's label name rules: characters outside `[a-zA-Z0-9_]` become
/// `_`, and a leading digit gets a `_` before it (as Loki's OTLP ingestion does).
fn sanitize_label_name(name: &str) -> Cow<'_, str> {
    if validate::is_label_name(name) {
        return Cow::Borrowed(name);
    }
    let mut out = String::with_capacity(name.len() + 1);
    if name.as_bytes().first().is_none_or(|b| b.is_ascii_digit()) {
        out.push('_');
    }
    out.extend(name.chars().map(|c| {
        if c.is_ascii_alphanumeric() || c == '_' {
            c
        } else {
            '_'
        }
    }));
    Cow::Owned(out)
}

/// One object's fields, flattened, in the order written; borrowed from the body where the
/// JSON text needed no unescaping.
type Fields<'b> = Vec<(Cow<'b, str>, FieldValue<'b>)>;

/// One field's value as parsed: scalars kept typed so that a numeric time keeps its value.
#[derive(Clone, Debug, PartialEq)]
enum FieldValue<'b> {
    Str(Cow<'b, str>),
    U64(u64),
    I64(i64),
    F64(f64),
    Bool(bool),
    /// An array, as compact JSON text.
    Json(String),
}

impl FieldValue<'_> {
    /// The value as stored in a label, a line or metadata: strings as they are, everything
    /// else as its JSON text.
    fn text(&self) -> Cow<'_, str> {
        match self {
            FieldValue::Str(s) => Cow::Borrowed(s),
            FieldValue::Json(s) => Cow::Borrowed(s),
            FieldValue::U64(v) => Cow::Owned(v.to_string()),
            FieldValue::I64(v) => Cow::Owned(v.to_string()),
            FieldValue::F64(v) => Cow::Owned(
                serde_json::Number::from_f64(*v).map_or_else(|| v.to_string(), |n| n.to_string()),
            ),
            FieldValue::Bool(v) => Cow::Borrowed(if *v { "true" } else { "false" }),
        }
    }
}

/// Parses one line into flattened `(name, value)` fields, in the order written.
fn parse_object<'b>(text: &'b [u8], out: &mut Fields<'b>) -> Result<(), String> {
    let mut de = serde_json::Deserializer::from_slice(text);
    let result = ObjectSeed { prefix: None, out }
        .deserialize(&mut de)
        .and_then(|()| de.end());
    result.map_err(|e| {
        // serde_json ends its messages with "at line 1 column N"; within one line only the
        // column says anything.
        let mut m = e.to_string();
        if let Some(at) = m.rfind(" at line ") {
            m.truncate(at);
        }
        if e.column() > 0 {
            format!("{m} at column {}", e.column())
        } else {
            m
        }
    })
}

/// A key, borrowed from the input when it holds no escapes.
struct Key<'b>(Cow<'b, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Key<'de>, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// Deserialises an object's members into `out`, names prefixed by `prefix.`.
struct ObjectSeed<'a, 'b> {
    prefix: Option<&'a str>,
    out: &'a mut Fields<'b>,
}

impl<'b> DeserializeSeed<'b> for ObjectSeed<'_, 'b> {
    type Value = ();
    fn deserialize<D: Deserializer<'b>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'b> Visitor<'b> for ObjectSeed<'_, 'b> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'b>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(Key(key)) = map.next_key::<Key<'b>>()? {
            let name = match self.prefix {
                Some(p) => Cow::Owned(format!("{p}.{key}")),
                None => key,
            };
            map.next_value_seed(FieldSeed {
                name,
                out: self.out,
            })?;
        }
        Ok(())
    }
}

/// Deserialises one member's value, recursing into objects.
struct FieldSeed<'a, 'b> {
    name: Cow<'b, str>,
    out: &'a mut Fields<'b>,
}

impl<'b> DeserializeSeed<'b> for FieldSeed<'_, 'b> {
    type Value = ();
    fn deserialize<D: Deserializer<'b>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'b> FieldSeed<'_, 'b> {
    fn push<E>(self, value: FieldValue<'b>) -> Result<(), E> {
        self.out.push((self.name, value));
        Ok(())
    }
}

impl<'b> Visitor<'b> for FieldSeed<'_, 'b> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'b str) -> Result<(), E> {
        self.push(FieldValue::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.push(FieldValue::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<(), E> {
        self.push(FieldValue::Str(Cow::Owned(v)))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.push(FieldValue::U64(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.push(FieldValue::I64(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.push(FieldValue::F64(v))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.push(FieldValue::Bool(v))
    }
    /// A null carries nothing to store (VictoriaLogs drops empty fields too).
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_map<A: MapAccess<'b>>(self, map: A) -> Result<(), A::Error> {
        ObjectSeed {
            prefix: Some(&self.name),
            out: self.out,
        }
        .visit_map(map)
    }
    fn visit_seq<A: SeqAccess<'b>>(self, seq: A) -> Result<(), A::Error> {
        let value = serde_json::Value::deserialize(de::value::SeqAccessDeserializer::new(seq))?;
        self.push(FieldValue::Json(value.to_string()))
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NOW: i64 = 1_000;

    fn decode(body: &str) -> Result<Vec<(Labels, PushEntry)>, PushError> {
        decode_jsonline(
            &JsonLineParams::default(),
            body.as_bytes(),
            NOW,
            &PushLimits::default(),
        )
        .map(|d| d.rows)
    }

    fn md(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn err(body: &str) -> String {
        match decode(body) {
            Err(e) if e.status() == 400 => e.to_string(),
            other => panic!("expected a 400 for {body}, got {other:?}"),
        }
    }

    /// A refused body counts every line that is not blank, before and after the one
    /// refused, under the rule it broke; lines cut to fit are counted as such.
    #[test]
    fn refusals_and_cuts_are_counted() {
        let body = "{\"msg\":\"a\"}\n\n{\"msg\":\"b\",\"app\":\"x\",\"app\":\"y\"}\r\n  \n{\"msg\":\"c\"}\n";
        match decode(body) {
            Err(PushError::Invalid { violation, lines }) => {
                assert_eq!(
                    violation.rule,
                    crate::ingest::push::Rule::DuplicateLabelNames
                );
                assert_eq!(lines, 3);
            }
            other => panic!("{other:?}"),
        }
        let limits = PushLimits {
            line_bytes_max: 3,
            truncate_long_lines: true,
            ..PushLimits::default()
        };
        let got = decode_jsonline(
            &JsonLineParams::default(),
            b"{\"msg\":\"abcdef\"}\n{\"msg\":\"ab\"}\n{\"msg\":\"abcd\"}",
            NOW,
            &limits,
        )
        .unwrap();
        assert_eq!(got.truncated, Truncated { lines: 2, bytes: 4 });
        assert_eq!(got.rows[0].1.line, "abc");
    }

    #[test]
    fn the_seed_shape() {
        let got = decode(
            r#"{"timestamp":"2024-01-01T12:00:00Z","service_name":"serviceA","log_level":"INFO","message":"user logged in","trace_id":"a1b2"}"#,
        )
        .unwrap();
        assert_eq!(got.len(), 1);
        let (labels, entry) = &got[0];
        assert_eq!(
            labels.to_string(),
            r#"{log_level="INFO", service_name="serviceA"}"#
        );
        assert_eq!(entry.timestamp_ns, 1_704_110_400_000_000_000);
        assert_eq!(entry.line, "user logged in");
        assert_eq!(entry.metadata, md(&[("trace_id", "a1b2")]));
    }

    #[test]
    fn times_outside_the_shared_range_are_refused() {
        for ts in [
            r#""-1""#,
            "-1.5",
            r#""1969-12-31T23:59:59Z""#,
            r#""2262-01-01T00:00:00Z""#,
        ] {
            let m = err(&format!(r#"{{"ts":{ts},"msg":"x"}}"#));
            assert!(m.contains("outside the accepted range"), "{ts}: {m}");
        }
        let edge = decode(r#"{"ts":"2255-03-14T16:00:00Z","msg":"x"}"#).unwrap();
        assert_eq!(
            edge[0].1.timestamp_ns,
            crate::ingest::time_range::TIMESTAMP_NS_MAX
        );
    }

    #[test]
    fn lines_crlf_empty_and_order() {
        let body = "\r\n{\"msg\":\"a\",\"app\":\"x\"}\r\n\n   \n{\"msg\":\"b\",\"app\":\"y\"}\n{\"msg\":\"c\",\"app\":\"x\"}";
        let got = decode(body).unwrap();
        let lines: Vec<(&str, &str)> = got
            .iter()
            .map(|(l, e)| (l.get("app").unwrap(), e.line.as_str()))
            .collect();
        assert_eq!(lines, vec![("x", "a"), ("y", "b"), ("x", "c")]);
        assert!(got.iter().all(|(_, e)| e.timestamp_ns == NOW));
        assert_eq!(decode("").unwrap(), vec![]);
        assert_eq!(
            decode("\u{feff}{\"msg\":\"bom\"}").unwrap()[0].1.line,
            "bom"
        );
        assert_eq!(decode("\n\r\n").unwrap(), vec![]);
    }

    #[test]
    fn other_fields_become_metadata() {
        let got = decode(
            r#"{"message":"m","level":"warn","n":12,"f":1.5,"neg":-3,"ok":true,"nothing":null,"arr":[1,"two",{"x":null}],"req":{"id":"r1","http":{"status":200}},"empty":{}}"#,
        )
        .unwrap();
        let (labels, e) = &got[0];
        assert_eq!(labels.to_string(), r#"{level="warn"}"#);
        assert_eq!(
            e.metadata,
            md(&[
                ("n", "12"),
                ("f", "1.5"),
                ("neg", "-3"),
                ("ok", "true"),
                ("arr", r#"[1,"two",{"x":null}]"#),
                ("req.id", "r1"),
                ("req.http.status", "200"),
            ])
        );
    }

    #[test]
    fn without_a_message_the_line_is_the_object() {
        let got = decode("  {\"service\":\"s\", \"x\":1}  \r\n").unwrap();
        assert_eq!(got[0].1.line, "{\"service\":\"s\", \"x\":1}");
        assert_eq!(got[0].1.metadata, md(&[("x", "1")]));
        // A non-string message is stored as its text.
        assert_eq!(decode(r#"{"msg":42,"app":"a"}"#).unwrap()[0].1.line, "42");
    }

    #[test]
    fn escaped_keys_and_values_are_unescaped() {
        let got = decode(r#"{"mes\u0073age":"a\nb","app":"x\"y","k\"":"\u00e9"}"#).unwrap();
        let (labels, e) = &got[0];
        assert_eq!(e.line, "a\nb");
        assert_eq!(labels.get("app"), Some("x\"y"));
        assert_eq!(e.metadata, md(&[("k\"", "é")]));
    }

    #[test]
    fn no_stream_fields_means_unknown_service() {
        let got = decode(r#"{"msg":"x","app":""}"#).unwrap();
        assert_eq!(got[0].0.to_string(), r#"{service_name="unknown_service"}"#);
    }

    #[test]
    fn custom_params() {
        let p = JsonLineParams::from_query(
            "?_time_field=when&_msg_field=text,body&_stream_fields=host%2Ckube.pod,1st&debug=1",
        )
        .unwrap();
        assert_eq!(p.time_fields, vec!["when"]);
        assert_eq!(p.message_fields, vec!["text", "body"]);
        assert_eq!(p.stream_fields, vec!["host", "kube.pod", "1st"]);
        let body = r#"{"when":1704110400123,"body":"b","host":"h1","kube":{"pod":"p-1"},"1st":"yes","message":"not the message","app":"ignored"}"#;
        let got = decode_jsonline(&p, body.as_bytes(), NOW, &PushLimits::default())
            .unwrap()
            .rows;
        let (labels, e) = &got[0];
        assert_eq!(
            labels.to_string(),
            r#"{_1st="yes", host="h1", kube_pod="p-1"}"#
        );
        assert_eq!(e.timestamp_ns, 1_704_110_400_123_000_000);
        assert_eq!(e.line, "b");
        assert_eq!(
            e.metadata,
            md(&[("message", "not the message"), ("app", "ignored")])
        );

        let alt = JsonLineParams::from_query("time_field=t&msg_field=m+x&stream_fields=").unwrap();
        assert_eq!(alt.time_fields, vec!["t"]);
        assert_eq!(alt.message_fields, vec!["m x"]);
        assert_eq!(alt.stream_fields, JsonLineParams::default().stream_fields);
        assert_eq!(
            JsonLineParams::from_query("").unwrap(),
            JsonLineParams::default()
        );
    }

    #[test]
    fn bad_queries() {
        for q in ["_msg_field=%zz", "_msg_field=%4", "_msg_field=%ff", "%"] {
            assert_eq!(
                JsonLineParams::from_query(q).unwrap_err().status(),
                400,
                "{q}"
            );
        }
        let many = format!("_stream_fields={}", vec!["a"; 65].join(","));
        assert!(
            JsonLineParams::from_query(&many)
                .unwrap_err()
                .to_string()
                .contains("limit 64")
        );
    }

    #[test]
    fn bad_lines_name_their_number() {
        let m = err("{\"msg\":\"ok\"}\n\n{\"msg\": }\n");
        assert!(m.starts_with("cannot parse JSON line 3: "), "{m}");
        assert!(m.contains("column"), "{m}");
        let m = err("[1,2]");
        assert!(
            m.starts_with("cannot parse JSON line 1: ") && m.contains("expected a JSON object"),
            "{m}"
        );
        let m = err("{\"msg\":\"a\"} {\"msg\":\"b\"}");
        assert!(m.contains("trailing characters"), "{m}");
        let m = err("{\"msg\":\"a\",\"time\":\"yesterday\"}");
        assert!(
            m.starts_with("JSON line 1: cannot parse the time field 'time'"),
            "{m}"
        );
        let m = err("{\"msg\":\"a\",\"time\":true}");
        assert!(m.contains("time field"), "{m}");
        let long = "x".repeat(300);
        let m = decode_jsonline(
            &JsonLineParams::default(),
            format!("{{\"msg\":\"ok\"}}\n{{\"msg\":\"{long}\",\"app\":\"a\"}}").as_bytes(),
            NOW,
            &PushLimits {
                line_bytes_max: 299,
                ..PushLimits::default()
            },
        )
        .unwrap_err()
        .to_string();
        assert!(
            m.starts_with(
                "JSON line 2: Max entry size '299' bytes exceeded for stream '{app=\"a\"}'"
            ),
            "{m}"
        );
        let m = err(r#"{"msg":"a","app":"x","app":"y"}"#);
        assert!(m.contains("duplicate label name"), "{m}");
        assert_eq!(
            decode_jsonline(
                &JsonLineParams::default(),
                b"{\"msg\":\"\xff\"}",
                NOW,
                &PushLimits::default()
            )
            .unwrap_err()
            .status(),
            400
        );
        let small = PushLimits {
            body_bytes_max: 4,
            ..PushLimits::default()
        };
        assert_eq!(
            decode_jsonline(&JsonLineParams::default(), b"{\"a\":1}", NOW, &small)
                .unwrap_err()
                .status(),
            413
        );
    }

    #[test]
    fn label_names_are_sanitised() {
        assert_eq!(sanitize_label_name("k8s.pod-name"), "k8s_pod_name");
        assert_eq!(sanitize_label_name("1st"), "_1st");
        assert_eq!(sanitize_label_name("é"), "_");
        assert_eq!(sanitize_label_name(""), "_");
        assert!(matches!(
            sanitize_label_name("log_level"),
            Cow::Borrowed("log_level")
        ));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode_jsonline(&JsonLineParams::default(), &body, NOW, &PushLimits::default());
        }

        #[test]
        fn json_like_lines_never_panic(body in r#"(\{("[a-z_.]{0,6}":("[a-z0-9:. -]{0,6}"|-?[0-9.e]{1,6}|true|null|\{\}|\[1\]|\{"a":"b"\})(,)?){0,4}\}\r?\n?){0,3}"#) {
            let _ = decode(&body);
        }

        #[test]
        fn arbitrary_queries_never_panic(q in "\\PC{0,40}") {
            let _ = JsonLineParams::from_query(&q);
        }

        #[test]
        fn fields_roundtrip(
            app in "[a-z]{1,8}",
            msg in "\\PC{0,30}",
            ts in 0i64..4_000_000_000_000_000_000,
            extra in proptest::collection::btree_map("[a-z]{1,6}", "\\PC{0,10}", 0..4),
        ) {
            let mut obj = serde_json::Map::new();
            obj.insert("app".into(), app.clone().into());
            obj.insert("msg".into(), msg.clone().into());
            obj.insert("ts".into(), ts.to_string().into());
            let extra: Vec<(String, String)> = extra
                .into_iter()
                .filter(|(k, _)| !["app", "msg", "ts"].contains(&k.as_str()) && !STREAM_FIELDS_DEFAULT.contains(&k.as_str())
                    && !TIME_FIELDS_DEFAULT.contains(&k.as_str()) && !MESSAGE_FIELDS_DEFAULT.contains(&k.as_str()))
                .collect();
            for (k, v) in &extra {
                obj.insert(k.clone(), v.clone().into());
            }
            let body = serde_json::Value::Object(obj).to_string();
            // Times beyond the shared range are refused: then the whole body is.
            let want_ts = if ts == 0 {
                Ok(NOW)
            } else {
                timestamp::scale_int(i128::from(ts))
                    .ok()
                    .filter(|&t| crate::ingest::time_range::in_range(t))
                    .ok_or(())
            };
            let Ok(want_ts) = want_ts else {
                prop_assert!(decode(&body).is_err());
                return Ok(());
            };
            let got = decode(&body).unwrap();
            prop_assert_eq!(got.len(), 1);
            prop_assert_eq!(got[0].0.get("app"), Some(app.as_str()));
            prop_assert_eq!(&got[0].1.line, &msg);
            prop_assert_eq!(got[0].1.timestamp_ns, want_ts);
            let mut got_md = got[0].1.metadata.clone();
            got_md.sort();
            prop_assert_eq!(got_md, extra);
        }
    }
}

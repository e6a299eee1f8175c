//! Decoding of the demo's `POST /ingest` body: the LogEntry shape of the small Go demo among
//! the seeds (`{"level","message","service","metadata"}`), mapped onto what a JSON line with
//! the default fields becomes.
//!
//! Which question it answers: "which stream, line and metadata is this demo entry?" The
//! mapping is the one `/insert/jsonline` applies to `{"service_name":..,"level":..,
//! "message":..}`: `service` becomes the `service_name` label (`unknown_service` when it is
//! absent or empty, as Loki names a stream without one), `level` the `level` label, as sent
//! (the demo sends `ERROR`, `INFO`, ...), `message` the line, and `metadata` structured
//! metadata: nested objects flattened with `.`-joined keys, numbers, booleans and arrays as
//! their JSON text, nulls dropped, as JSON lines flatten their other fields. An optional
//! `timestamp` is RFC 3339; without one the entry takes the receive time. An `id` is
//! accepted and ignored (ids are derived from what is stored; see
//! [`crate::http::demo_routes`]). Any other field is refused, so that a typo does not
//! silently drop data.
//!
//! A body is one entry object or an array of them, all or nothing: every entry passes the
//! same validation as a Loki push (label and line limits, metadata limits, the shared time
//! range) before anything is stored.

use serde_json::Value;

use crate::ingest::jsonline::{JsonLines, UNKNOWN_SERVICE_LABEL};
use crate::ingest::push::validate::{self, display_pairs, echo};
use crate::ingest::push::{PushEntry, PushError, PushLimits, Violation};

/// The label the demo's `service` becomes.
pub const SERVICE_LABEL: &str = "service_name";
/// The label the demo's `level` becomes.
pub const LEVEL_LABEL: &str = "level";
/// The fields an entry object may have.
pub const FIELDS: &[&str] = &["level", "message", "service", "metadata", "timestamp", "id"];
/// Depth of nested objects in `metadata` that is flattened; deeper values are kept as their
/// JSON text. Bounds the work and the key length a hostile body can cause.
pub const METADATA_DEPTH_MAX: usize = 8;

/// Decodes a demo `/ingest` body (one entry object or an array of them) into labelled
/// entries in the order sent. `now_ns` is the timestamp of entries that carry none.
pub fn decode_ingest(
    body: &[u8],
    now_ns: i64,
    limits: &PushLimits,
) -> Result<JsonLines, PushError> {
    crate::ingest::push::decompress::check_body_size(body, limits.body_bytes_max)?;
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| PushError::BadRequest(format!("the body is not valid JSON: {e}")))?;
    let objects = match value {
        Value::Array(items) => items,
        one @ Value::Object(_) => vec![one],
        other => {
            return Err(PushError::BadRequest(format!(
                "expected a log entry object (or an array of them), got {}",
                kind(&other)
            )));
        }
    };
    if objects.is_empty() {
        return Err(PushError::BadRequest(
            "the array holds no log entry".to_string(),
        ));
    }
    let entries = objects.len();
    let mut out = JsonLines::default();
    for (i, object) in objects.into_iter().enumerate() {
        let at = |m: String| {
            if entries == 1 {
                m
            } else {
                format!("entry {}: {m}", i + 1)
            }
        };
        let (pairs, mut entry) =
            entry_of(object, now_ns).map_err(|m| PushError::BadRequest(at(m)))?;
        let refused = |v: Violation| Violation::new(v.rule, at(v.message)).refusing(entries);
        let shown = display_pairs(&pairs);
        let labels = validate::labels(pairs, &shown, limits).map_err(refused)?;
        out.truncated.add(validate::fit_line(&mut entry, limits));
        validate::entry(&entry, &labels, limits).map_err(refused)?;
        out.rows.push((labels, entry));
    }
    Ok(out)
}

/// Splits one entry object into its label pairs and its entry.
fn entry_of(object: Value, now_ns: i64) -> Result<(Vec<(String, String)>, PushEntry), String> {
    let Value::Object(fields) = object else {
        return Err(format!(
            "expected a log entry object, got {}",
            kind(&object)
        ));
    };
    if let Some(unknown) = fields.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(format!(
            "unknown field '{}'; an entry has the fields {}",
            echo(unknown),
            FIELDS.join(", ")
        ));
    }
    // A string field, or None when it is absent or null.
    let optional = |name: &str| -> Result<Option<String>, String> {
        match fields.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(format!(
                "the field '{name}' must be a string, got {}",
                kind(other)
            )),
        }
    };
    let required = |name: &str| -> Result<String, String> {
        optional(name)?.ok_or_else(|| format!("the field '{name}' is missing"))
    };
    let line = required("message")?;
    let level = required("level")?;
    if level.is_empty() {
        return Err("the field 'level' is empty".to_string());
    }
    let mut pairs = vec![(LEVEL_LABEL.to_string(), level)];
    match optional("service")? {
        Some(service) if !service.is_empty() => pairs.push((SERVICE_LABEL.to_string(), service)),
        _ => pairs.push((
            UNKNOWN_SERVICE_LABEL.0.to_string(),
            UNKNOWN_SERVICE_LABEL.1.to_string(),
        )),
    }
    let timestamp_ns = match optional("timestamp")? {
        None => now_ns,
        Some(t) => parse_rfc3339(&t)?,
    };
    let mut metadata = Vec::new();
    match fields.get("metadata") {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            for (k, v) in m {
                flatten(k.clone(), v, 1, &mut metadata);
            }
        }
        Some(other) => {
            return Err(format!(
                "the field 'metadata' must be an object, got {}",
                kind(other)
            ));
        }
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

/// Adds `value` under `key` to `out`: objects flattened with `.`-joined keys (to
/// [`METADATA_DEPTH_MAX`]), strings as they are, other values as their JSON text, nulls
/// dropped.
fn flatten(key: String, value: &Value, depth: usize, out: &mut Vec<(String, String)>) {
    match value {
        Value::Null => {}
        Value::String(s) => out.push((key, s.clone())),
        Value::Object(m) if depth < METADATA_DEPTH_MAX => {
            for (k, v) in m {
                flatten(format!("{key}.{k}"), v, depth + 1, out);
            }
        }
        other => out.push((key, other.to_string())),
    }
}

/// Nanoseconds since the epoch of an RFC 3339 time.
fn parse_rfc3339(text: &str) -> Result<i64, String> {
    let t = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|e| {
            format!(
                "the field 'timestamp' is not an RFC 3339 time ('{}'): {e}",
                echo(text)
            )
        })?;
    i64::try_from(t.unix_timestamp_nanos())
        .map_err(|_| format!("the field 'timestamp' is out of range ('{}')", echo(text)))
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::discovery::Discovery;

    fn limits() -> PushLimits {
        PushLimits {
            body_bytes_max: 1 << 20,
            line_bytes_max: 256 * 1024,
            labels_per_stream_max: 15,
            label_name_bytes_max: 1024,
            label_value_bytes_max: 2048,
            truncate_long_lines: false,
            service_name_from: Discovery::loki_defaults().service_name_from,
        }
    }

    fn decode(body: &str) -> Result<JsonLines, PushError> {
        decode_ingest(body.as_bytes(), 42, &limits())
    }

    fn pairs(l: &crate::model::Labels) -> Vec<(&str, &str)> {
        l.pairs()
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    #[test]
    fn the_readme_entry() {
        let rows = decode(
            r#"{"level":"ERROR","message":"Database connection failed",
                "service":"user-service","metadata":{"user_id":123}}"#,
        )
        .unwrap()
        .rows;
        assert_eq!(rows.len(), 1);
        let (labels, e) = &rows[0];
        assert_eq!(
            pairs(labels),
            [("level", "ERROR"), ("service_name", "user-service")]
        );
        assert_eq!(e.line, "Database connection failed");
        assert_eq!(e.timestamp_ns, 42);
        assert_eq!(e.metadata, [("user_id".to_string(), "123".to_string())]);
    }

    #[test]
    fn metadata_is_flattened_as_json_lines_are() {
        let rows = decode(
            r#"{"level":"INFO","message":"m","metadata":{"a":{"b":"x","c":[1,2]},"d":true,
                "e":null,"f":1.5}}"#,
        )
        .unwrap()
        .rows;
        let md: Vec<(&str, &str)> = rows[0]
            .1
            .metadata
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            md,
            [("a.b", "x"), ("a.c", "[1,2]"), ("d", "true"), ("f", "1.5")]
        );
        // No service: Loki's name for a stream without one.
        assert_eq!(
            pairs(&rows[0].0),
            [("level", "INFO"), ("service_name", "unknown_service")]
        );
    }

    #[test]
    fn timestamps_are_rfc3339_or_the_receive_time() {
        let rows = decode(
            r#"[{"level":"WARN","message":"a","timestamp":"2024-01-02T03:04:05.000000006Z"},
                {"level":"WARN","message":"b","id":"ignored"}]"#,
        )
        .unwrap()
        .rows;
        assert_eq!(rows[0].1.timestamp_ns, 1_704_164_645_000_000_006);
        assert_eq!(rows[1].1.timestamp_ns, 42);
    }

    #[test]
    fn bad_entries_are_refused_with_a_reason() {
        let err = |body: &str| decode(body).unwrap_err().to_string();
        assert!(err("{").contains("not valid JSON"));
        assert!(err("3").contains("got a number"));
        assert!(err("[]").contains("no log entry"));
        assert!(err(r#"{"level":"INFO"}"#).contains("'message' is missing"));
        assert!(err(r#"{"message":"m"}"#).contains("'level' is missing"));
        assert!(err(r#"{"level":"","message":"m"}"#).contains("'level' is empty"));
        assert!(err(r#"{"level":1,"message":"m"}"#).contains("must be a string"));
        assert!(err(r#"{"level":"I","message":"m","lvl":"x"}"#).contains("unknown field 'lvl'"));
        assert!(err(r#"{"level":"I","message":"m","metadata":[1]}"#).contains("an object"));
        assert!(err(r#"{"level":"I","message":"m","timestamp":"yesterday"}"#).contains("RFC 3339"));
        // One bad entry refuses the whole array, named by its position.
        let e = decode(r#"[{"level":"I","message":"m"},{"level":"I"}]"#).unwrap_err();
        assert!(e.to_string().starts_with("entry 2: "), "{e}");
    }

    #[test]
    fn limits_refuse_every_entry_of_the_body() {
        let long = "x".repeat(256 * 1024 + 1);
        let body =
            format!(r#"[{{"level":"I","message":"ok"}},{{"level":"I","message":"{long}"}}]"#);
        match decode(&body).unwrap_err() {
            PushError::Invalid { violation, lines } => {
                assert_eq!(lines, 2);
                assert_eq!(violation.rule, crate::ingest::push::Rule::LineTooLong);
            }
            other => panic!("{other:?}"),
        }
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256)) {
            let _ = decode_ingest(&body, 42, &limits());
        }

        #[test]
        fn entry_like_bodies_never_panic(body in r#"\[?\{("(level|message|service|metadata|timestamp|id|x)":("[A-Za-z0-9:. -]{0,8}"|-?[0-9.e]{1,6}|true|null|\{\}|\[1\]|\{"a":\{"b":1\}\})(,)?){0,5}\}\]?"#) {
            let _ = decode(&body);
        }

        #[test]
        fn fields_map_onto_labels_line_and_metadata(
            level in "[A-Z]{1,8}",
            service in "[a-z-]{1,12}",
            message in "\\PC{0,40}",
            metadata in proptest::collection::btree_map("[a-z_]{1,6}", "\\PC{0,10}", 0..4),
        ) {
            let body = serde_json::json!({
                "level": level, "service": service, "message": message, "metadata": metadata,
            });
            let rows = decode(&body.to_string()).unwrap().rows;
            proptest::prop_assert_eq!(rows.len(), 1);
            let (labels, e) = &rows[0];
            proptest::prop_assert_eq!(labels.get("level"), Some(level.as_str()));
            proptest::prop_assert_eq!(labels.get("service_name"), Some(service.as_str()));
            proptest::prop_assert_eq!(&e.line, &message);
            let expected: Vec<(String, String)> = metadata.into_iter().collect();
            proptest::prop_assert_eq!(&e.metadata, &expected);
        }
    }
}

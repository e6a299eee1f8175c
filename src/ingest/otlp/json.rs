//! OTLP/JSON: `ExportLogsServiceRequest` in the JSON encoding the OTLP specification gives
//! (protobuf's JSON mapping with OTLP's own exceptions), decoded into the generated protobuf
//! messages, so that one mapping serves both encodings.
//!
//! What the OpenTelemetry exporters and the collector send, and what is accepted:
//!
//! - field names in lowerCamelCase (`resourceLogs`, `timeUnixNano`), and also the `.proto`
//!   names (`resource_logs`), as protobuf's JSON parsers and the collector accept both;
//!   unknown fields are ignored, as the specification requires, and `null` is an absent field;
//! - 64-bit integers (`timeUnixNano`, `intValue`) as decimal strings or as numbers;
//! - `traceId` and `spanId` as hexadecimal strings (not base64: OTLP's exception), of 16 and
//!   8 bytes, or empty;
//! - `severityNumber` as a number or as its enum name (`SEVERITY_NUMBER_INFO`);
//! - `bytesValue` in base64, `doubleValue` as a number or `"NaN"`, `"Infinity"`,
//!   `"-Infinity"`.
//!
//! Nesting is bounded by serde_json's recursion limit (128), so a deep body is a 400, not a
//! stack overflow.

use base64::Engine;
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

use super::proto::{
    AnyValue, ArrayValue, ExportLogsServiceRequest, InstrumentationScope, KeyValue, KeyValueList,
    LogRecord, Resource, ResourceLogs, ScopeLogs, any_value,
};

/// Decodes an OTLP/JSON body; the error says what was wrong and where.
pub fn decode(body: &[u8]) -> Result<ExportLogsServiceRequest, String> {
    let request: JRequest = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    Ok(request.into())
}

/// A field whose JSON `null` means absent.
fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct JRequest {
    #[serde(alias = "resource_logs", deserialize_with = "nullable")]
    resource_logs: Vec<JResourceLogs>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct JResourceLogs {
    #[serde(deserialize_with = "nullable")]
    resource: Option<JResource>,
    #[serde(alias = "scope_logs", deserialize_with = "nullable")]
    scope_logs: Vec<JScopeLogs>,
    #[serde(alias = "schema_url", deserialize_with = "nullable")]
    schema_url: String,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct JResource {
    #[serde(deserialize_with = "nullable")]
    attributes: Vec<JKeyValue>,
    #[serde(alias = "dropped_attributes_count", deserialize_with = "uint32")]
    dropped_attributes_count: u32,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct JScopeLogs {
    #[serde(deserialize_with = "nullable")]
    scope: Option<JScope>,
    #[serde(alias = "log_records", deserialize_with = "nullable")]
    log_records: Vec<JLogRecord>,
    #[serde(alias = "schema_url", deserialize_with = "nullable")]
    schema_url: String,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct JScope {
    #[serde(deserialize_with = "nullable")]
    name: String,
    #[serde(deserialize_with = "nullable")]
    version: String,
    #[serde(deserialize_with = "nullable")]
    attributes: Vec<JKeyValue>,
    #[serde(alias = "dropped_attributes_count", deserialize_with = "uint32")]
    dropped_attributes_count: u32,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct JLogRecord {
    #[serde(alias = "time_unix_nano", deserialize_with = "uint64")]
    time_unix_nano: u64,
    #[serde(alias = "observed_time_unix_nano", deserialize_with = "uint64")]
    observed_time_unix_nano: u64,
    #[serde(alias = "severity_number", deserialize_with = "severity_number")]
    severity_number: i32,
    #[serde(alias = "severity_text", deserialize_with = "nullable")]
    severity_text: String,
    #[serde(deserialize_with = "nullable")]
    body: Option<JAnyValue>,
    #[serde(deserialize_with = "nullable")]
    attributes: Vec<JKeyValue>,
    #[serde(alias = "dropped_attributes_count", deserialize_with = "uint32")]
    dropped_attributes_count: u32,
    #[serde(deserialize_with = "uint32")]
    flags: u32,
    #[serde(alias = "trace_id", deserialize_with = "trace_id")]
    trace_id: Vec<u8>,
    #[serde(alias = "span_id", deserialize_with = "span_id")]
    span_id: Vec<u8>,
    #[serde(alias = "event_name", deserialize_with = "nullable")]
    event_name: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct JKeyValue {
    #[serde(deserialize_with = "nullable")]
    key: String,
    #[serde(deserialize_with = "nullable")]
    value: Option<JAnyValue>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct JAnyValue {
    #[serde(alias = "string_value")]
    string_value: Option<String>,
    #[serde(alias = "bool_value")]
    bool_value: Option<bool>,
    #[serde(alias = "int_value", deserialize_with = "opt_int64")]
    int_value: Option<i64>,
    #[serde(alias = "double_value", deserialize_with = "opt_double")]
    double_value: Option<f64>,
    #[serde(alias = "array_value")]
    array_value: Option<JValues<JAnyValue>>,
    #[serde(alias = "kvlist_value")]
    kvlist_value: Option<JValues<JKeyValue>>,
    #[serde(alias = "bytes_value", deserialize_with = "opt_bytes")]
    bytes_value: Option<Vec<u8>>,
}

/// `ArrayValue` and `KeyValueList`: `{"values": [...]}`.
#[derive(Deserialize)]
#[serde(bound = "T: Deserialize<'de>")]
struct JValues<T> {
    #[serde(default, deserialize_with = "nullable_list")]
    values: Vec<T>,
}

/// A list whose JSON `null` means empty.
fn nullable_list<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

/// A protobuf JSON integer: a number, or a decimal string.
fn integer<'de, D: Deserializer<'de>>(d: D, what: &'static str) -> Result<Option<i128>, D::Error> {
    struct V(&'static str);
    impl<'de> Visitor<'de> for V {
        type Value = Option<i128>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            write!(f, "{} as a number or a decimal string", self.0)
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(v.into()))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(v.into()))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            // `1.7e18` is an integer written as a float, which protobuf's parsers accept.
            if v.fract() == 0.0 && v.abs() < 1.7e38 {
                Ok(Some(v as i128))
            } else {
                Err(E::custom(format!("{}: {v} is not an integer", self.0)))
            }
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            v.trim()
                .parse::<i128>()
                .map(Some)
                .map_err(|_| E::custom(format!("{}: {v:?} is not an integer", self.0)))
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(self)
        }
    }
    d.deserialize_any(V(what))
}

fn in_range<T: TryFrom<i128> + Default, E: de::Error>(v: Option<i128>, what: &str) -> Result<T, E> {
    match v {
        None => Ok(T::default()),
        Some(n) => T::try_from(n).map_err(|_| E::custom(format!("{what}: {n} is out of range"))),
    }
}

fn uint64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    in_range(integer(d, "a 64-bit unsigned integer")?, "uint64")
}

fn uint32<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    in_range(integer(d, "a 32-bit unsigned integer")?, "uint32")
}

fn opt_int64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    match integer(d, "intValue")? {
        None => Ok(None),
        Some(n) => in_range::<i64, D::Error>(Some(n), "intValue").map(Some),
    }
}

/// `severityNumber`: a number, or the enum value's name.
fn severity_number<'de, D: Deserializer<'de>>(d: D) -> Result<i32, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum N {
        Number(i64),
        Name(String),
    }
    match Option::<N>::deserialize(d)? {
        None => Ok(0),
        Some(N::Number(n)) => i32::try_from(n)
            .map_err(|_| de::Error::custom(format!("severityNumber {n} is out of range"))),
        Some(N::Name(name)) => {
            super::proto::opentelemetry::proto::logs::v1::SeverityNumber::from_str_name(&name)
                .map(|s| s as i32)
                .or_else(|| name.trim().parse().ok())
                .ok_or_else(|| de::Error::custom(format!("unknown severityNumber {name:?}")))
        }
    }
}

fn opt_double<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum F {
        Number(f64),
        Text(String),
    }
    match Option::<F>::deserialize(d)? {
        None => Ok(None),
        Some(F::Number(v)) => Ok(Some(v)),
        Some(F::Text(t)) => match t.as_str() {
            "NaN" => Ok(Some(f64::NAN)),
            "Infinity" => Ok(Some(f64::INFINITY)),
            "-Infinity" => Ok(Some(f64::NEG_INFINITY)),
            other => other
                .parse()
                .map(Some)
                .map_err(|_| de::Error::custom(format!("doubleValue {other:?} is not a number"))),
        },
    }
}

fn opt_bytes<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
    let Some(text) = Option::<String>::deserialize(d)? else {
        return Ok(None);
    };
    // Protobuf's JSON mapping takes standard or URL-safe base64, padded or not.
    let trimmed = text.trim_end_matches('=');
    base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(trimmed)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(trimmed))
        .map(Some)
        .map_err(|e| de::Error::custom(format!("bytesValue is not base64: {e}")))
}

/// A trace or span id: hexadecimal of exactly `len` bytes, or empty (no id).
fn hex_id<'de, D: Deserializer<'de>>(d: D, len: usize, what: &str) -> Result<Vec<u8>, D::Error> {
    let text: String = nullable(d)?;
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let bytes = text.as_bytes();
    if bytes.len() != 2 * len {
        return Err(de::Error::custom(format!(
            "{what} must be {} hexadecimal digits, got {:?}",
            2 * len,
            crate::ingest::push::validate::echo(&text)
        )));
    }
    let digit = |b: u8| (b as char).to_digit(16);
    bytes
        .chunks(2)
        .map(|pair| Some((digit(pair[0])? << 4 | digit(pair[1])?) as u8))
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(|| {
            de::Error::custom(format!(
                "{what} is not hexadecimal: {:?}",
                crate::ingest::push::validate::echo(&text)
            ))
        })
}

fn trace_id<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    hex_id(d, 16, "traceId")
}

fn span_id<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    hex_id(d, 8, "spanId")
}

impl From<JRequest> for ExportLogsServiceRequest {
    fn from(r: JRequest) -> Self {
        ExportLogsServiceRequest {
            resource_logs: r.resource_logs.into_iter().map(Into::into).collect(),
        }
    }
}

impl From<JResourceLogs> for ResourceLogs {
    fn from(r: JResourceLogs) -> Self {
        ResourceLogs {
            resource: r.resource.map(|res| Resource {
                attributes: res.attributes.into_iter().map(Into::into).collect(),
                dropped_attributes_count: res.dropped_attributes_count,
                entity_refs: Vec::new(),
            }),
            scope_logs: r.scope_logs.into_iter().map(Into::into).collect(),
            schema_url: r.schema_url,
        }
    }
}

impl From<JScopeLogs> for ScopeLogs {
    fn from(s: JScopeLogs) -> Self {
        ScopeLogs {
            scope: s.scope.map(|sc| InstrumentationScope {
                name: sc.name,
                version: sc.version,
                attributes: sc.attributes.into_iter().map(Into::into).collect(),
                dropped_attributes_count: sc.dropped_attributes_count,
            }),
            log_records: s.log_records.into_iter().map(Into::into).collect(),
            schema_url: s.schema_url,
        }
    }
}

impl From<JLogRecord> for LogRecord {
    fn from(l: JLogRecord) -> Self {
        LogRecord {
            time_unix_nano: l.time_unix_nano,
            observed_time_unix_nano: l.observed_time_unix_nano,
            severity_number: l.severity_number,
            severity_text: l.severity_text,
            body: l.body.map(Into::into),
            attributes: l.attributes.into_iter().map(Into::into).collect(),
            dropped_attributes_count: l.dropped_attributes_count,
            flags: l.flags,
            trace_id: l.trace_id,
            span_id: l.span_id,
            event_name: l.event_name,
        }
    }
}

impl From<JKeyValue> for KeyValue {
    fn from(kv: JKeyValue) -> Self {
        KeyValue {
            key: kv.key,
            value: kv.value.map(Into::into),
            key_strindex: 0,
        }
    }
}

impl From<JAnyValue> for AnyValue {
    /// The first value set, in the order of the `.proto` file; none: an empty value.
    fn from(v: JAnyValue) -> Self {
        use any_value::Value;
        let value = if let Some(s) = v.string_value {
            Some(Value::StringValue(s))
        } else if let Some(b) = v.bool_value {
            Some(Value::BoolValue(b))
        } else if let Some(i) = v.int_value {
            Some(Value::IntValue(i))
        } else if let Some(f) = v.double_value {
            Some(Value::DoubleValue(f))
        } else if let Some(a) = v.array_value {
            Some(Value::ArrayValue(ArrayValue {
                values: a.values.into_iter().map(Into::into).collect(),
            }))
        } else if let Some(kv) = v.kvlist_value {
            Some(Value::KvlistValue(KeyValueList {
                values: kv.values.into_iter().map(Into::into).collect(),
            }))
        } else {
            v.bytes_value.map(Value::BytesValue)
        };
        AnyValue { value }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A body as the OpenTelemetry JS and Python exporters and the collector send it.
    const EXPORTER_BODY: &str = r#"{
      "resourceLogs": [{
        "resource": {"attributes": [
          {"key": "service.name", "value": {"stringValue": "checkout"}},
          {"key": "host.cpu", "value": {"intValue": "8"}}
        ], "droppedAttributesCount": 0},
        "scopeLogs": [{
          "scope": {"name": "app.logger", "version": "1.2"},
          "logRecords": [{
            "timeUnixNano": "1700000000000000001",
            "observedTimeUnixNano": 1700000000000000002,
            "severityNumber": 17,
            "severityText": "ERROR",
            "body": {"stringValue": "payment failed"},
            "attributes": [
              {"key": "retry", "value": {"intValue": 3}},
              {"key": "ratio", "value": {"doubleValue": "NaN"}},
              {"key": "ok", "value": {"boolValue": false}},
              {"key": "raw", "value": {"bytesValue": "AAEC"}},
              {"key": "list", "value": {"arrayValue": {"values": [{"stringValue": "a"}, {"intValue": 1}]}}},
              {"key": "map", "value": {"kvlistValue": {"values": [{"key": "k", "value": {"stringValue": "v"}}]}}},
              {"key": "empty", "value": {}}
            ],
            "traceId": "5B8EFFF798038103D269B633813FC60C",
            "spanId": "eee19b7ec3c1b174",
            "flags": 1,
            "unknownField": {"ignored": true}
          }]
        }],
        "schemaUrl": "https://opentelemetry.io/schemas/1.21.0"
      }]
    }"#;

    #[test]
    fn decodes_what_exporters_send() {
        let r = decode(EXPORTER_BODY.as_bytes()).unwrap();
        let rl = &r.resource_logs[0];
        let attrs = &rl.resource.as_ref().unwrap().attributes;
        assert_eq!(attrs[0].key, "service.name");
        assert_eq!(
            attrs[1].value.as_ref().unwrap().value,
            Some(any_value::Value::IntValue(8))
        );
        let sl = &rl.scope_logs[0];
        assert_eq!(sl.scope.as_ref().unwrap().name, "app.logger");
        let l = &sl.log_records[0];
        assert_eq!(l.time_unix_nano, 1_700_000_000_000_000_001);
        assert_eq!(l.observed_time_unix_nano, 1_700_000_000_000_000_002);
        assert_eq!(l.severity_number, 17);
        assert_eq!(l.severity_text, "ERROR");
        assert_eq!(l.trace_id.len(), 16);
        assert_eq!(l.trace_id[0], 0x5b);
        assert_eq!(l.span_id, [0xee, 0xe1, 0x9b, 0x7e, 0xc3, 0xc1, 0xb1, 0x74]);
        assert_eq!(l.flags, 1);
        let value = |i: usize| l.attributes[i].value.as_ref().unwrap().value.clone();
        assert_eq!(value(0), Some(any_value::Value::IntValue(3)));
        assert!(matches!(value(1), Some(any_value::Value::DoubleValue(f)) if f.is_nan()));
        assert_eq!(value(2), Some(any_value::Value::BoolValue(false)));
        assert_eq!(value(3), Some(any_value::Value::BytesValue(vec![0, 1, 2])));
        assert!(matches!(value(4), Some(any_value::Value::ArrayValue(a)) if a.values.len() == 2));
        assert!(
            matches!(value(5), Some(any_value::Value::KvlistValue(kv)) if kv.values[0].key == "k")
        );
        assert_eq!(value(6), None);
    }

    #[test]
    fn proto_field_names_nulls_and_enum_names_are_accepted() {
        let body = r#"{"resource_logs":[{"resource":null,"scope_logs":[{"log_records":[
            {"time_unix_nano":null,"severity_number":"SEVERITY_NUMBER_WARN","body":{"string_value":"x"},
             "trace_id":"","attributes":null}]}]}]}"#;
        let r = decode(body.as_bytes()).unwrap();
        let l = &r.resource_logs[0].scope_logs[0].log_records[0];
        assert_eq!(l.severity_number, 13);
        assert_eq!(l.time_unix_nano, 0);
        assert!(l.trace_id.is_empty());
        assert_eq!(
            l.body.as_ref().unwrap().value,
            Some(any_value::Value::StringValue("x".into()))
        );
        assert_eq!(decode(b"{}").unwrap(), ExportLogsServiceRequest::default());
    }

    #[test]
    fn malformed_bodies_say_what_is_wrong() {
        for (body, says) in [
            (
                r#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"traceId":"xyz"}]}]}]}"#,
                "traceId",
            ),
            (
                r#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"spanId":"zzzzzzzzzzzzzzzz"}]}]}]}"#,
                "spanId",
            ),
            (
                r#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"timeUnixNano":"soon"}]}]}]}"#,
                "integer",
            ),
            (
                r#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"timeUnixNano":-1}]}]}]}"#,
                "range",
            ),
            (
                r#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"severityNumber":"LOUD"}]}]}]}"#,
                "severityNumber",
            ),
            (
                r#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"bytesValue":"!!"}}]}]}]}"#,
                "base64",
            ),
            (r#"{"resourceLogs":"#, "EOF"),
            (r#"[1,2]"#, "invalid type"),
        ] {
            let e = decode(body.as_bytes()).unwrap_err();
            assert!(e.contains(says), "{body}: {e}");
        }
        let deep = format!(
            "{}{}",
            r#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":"#,
            "{\"arrayValue\":{\"values\":[".repeat(200)
        );
        assert!(decode(deep.as_bytes()).unwrap_err().contains("recursion"));
    }
}

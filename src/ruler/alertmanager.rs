//! The body of `POST /api/v2/alerts`: alerts as Alertmanager's v2 API takes them.
//!
//! Which question it answers: "what bytes does Alertmanager expect for these alerts?" The
//! shape is Alertmanager's `PostableAlerts`, as Prometheus' `notifier` package writes it:
//!
//! ```text
//! [{"labels": {"alertname": "HighErrors", ...}, "annotations": {"summary": "..."},
//!   "startsAt": "2026-12-06T01:02:03.456Z", "endsAt": "2026-12-06T01:06:03.456Z",
//!   "generatorURL": "http://shardlog:3100/..."}, ...]
//! ```
//!
//! Times are RFC 3339 in UTC with milliseconds (Go's `strfmt.DateTime`). An alert without an
//! end has no `endsAt` (Alertmanager then resolves it `resolve_timeout` after the last time
//! it heard of it); a resolved alert has an `endsAt` in the past. A label or annotation
//! named twice keeps its last value, since a JSON object holds one value per name.

use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use super::outbox::AlertNotice;

/// The path Alertmanager's v2 API takes alerts on, below its URL (and path prefix).
pub const ALERTS_PATH: &str = "api/v2/alerts";

/// Alerts one request carries at most (Prometheus' `maxBatchSize` before 2.53).
pub const ALERTS_PER_REQUEST_MAX: usize = 64;

/// The earliest and latest instants RFC 3339's four-digit years can write, in Unix ms.
const RFC3339_MS_MIN: i64 = -62_167_219_200_000;
const RFC3339_MS_MAX: i64 = 253_402_300_799_999;

/// The JSON array for `alerts`.
pub fn encode_alerts(alerts: &[AlertNotice]) -> Vec<u8> {
    let array: Vec<Value> = alerts.iter().map(alert_json).collect();
    serde_json::to_vec(&array).expect("a JSON value always serializes")
}

fn alert_json(alert: &AlertNotice) -> Value {
    let mut object = Map::new();
    object.insert("labels".into(), label_set(&alert.labels));
    if !alert.annotations.is_empty() {
        object.insert("annotations".into(), label_set(&alert.annotations));
    }
    object.insert("startsAt".into(), json!(rfc3339_ms(alert.starts_at_ms)));
    if let Some(end) = alert.ends_at_ms {
        object.insert("endsAt".into(), json!(rfc3339_ms(end)));
    }
    if !alert.generator_url.is_empty() {
        object.insert("generatorURL".into(), json!(alert.generator_url));
    }
    Value::Object(object)
}

/// A label set as a JSON object.
pub(super) fn label_set(pairs: &[(String, String)]) -> Value {
    let mut object = Map::new();
    for (name, value) in pairs {
        object.insert(name.clone(), Value::String(value.clone()));
    }
    Value::Object(object)
}

/// `2026-12-06T01:02:03.456Z` for Unix milliseconds; instants outside years 0 to 9999 (which
/// RFC 3339 cannot write) are clamped to them.
pub fn rfc3339_ms(ms: i64) -> String {
    let ms = ms.clamp(RFC3339_MS_MIN, RFC3339_MS_MAX);
    let t = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .expect("clamped to the years time formats");
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(ends_at_ms: Option<i64>) -> AlertNotice {
        AlertNotice {
            labels: vec![
                ("alertname".into(), "HighErrors".into()),
                ("severity".into(), "page".into()),
            ],
            annotations: vec![("summary".into(), "12 errors in 1m".into())],
            starts_at_ms: 1_796_518_923_456,
            ends_at_ms,
            generator_url: "http://shardlog:3100/graph?g0.expr=x".into(),
        }
    }

    #[test]
    fn an_alert_has_the_fields_of_postable_alerts() {
        let body = encode_alerts(&[alert(Some(1_796_519_163_456))]);
        let value: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            value,
            json!([{
                "labels": {"alertname": "HighErrors", "severity": "page"},
                "annotations": {"summary": "12 errors in 1m"},
                "startsAt": "2026-12-06T01:02:03.456Z",
                "endsAt": "2026-12-06T01:06:03.456Z",
                "generatorURL": "http://shardlog:3100/graph?g0.expr=x"
            }])
        );
    }

    #[test]
    fn no_end_no_annotations_no_url_are_left_out() {
        let mut a = alert(None);
        a.annotations.clear();
        a.generator_url.clear();
        let value: Value = serde_json::from_slice(&encode_alerts(&[a])).unwrap();
        let object = value[0].as_object().unwrap();
        let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
        keys.sort();
        assert_eq!(keys, ["labels", "startsAt"]);
    }

    #[test]
    fn times_are_rfc3339_in_utc_with_milliseconds() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(rfc3339_ms(1_000_000_000_007), "2001-09-09T01:46:40.007Z");
        assert_eq!(rfc3339_ms(i64::MAX), "9999-12-31T23:59:59.999Z");
        assert_eq!(rfc3339_ms(i64::MIN), "0000-01-01T00:00:00.000Z");
        // What we write, Go's and the time crate's RFC 3339 parsers read back.
        let text = rfc3339_ms(1_796_518_923_456);
        let parsed =
            OffsetDateTime::parse(&text, &time::format_description::well_known::Rfc3339).unwrap();
        assert_eq!(parsed.unix_timestamp_nanos(), 1_796_518_923_456_000_000);
    }

    #[test]
    fn strings_are_escaped_and_a_repeated_label_keeps_its_last_value() {
        let mut a = alert(None);
        a.labels.push(("severity".into(), "ticket".into()));
        a.annotations = vec![("description".into(), "quote \" newline \n tab \t é".into())];
        let value: Value = serde_json::from_slice(&encode_alerts(&[a])).unwrap();
        assert_eq!(value[0]["labels"]["severity"], "ticket");
        assert_eq!(
            value[0]["annotations"]["description"],
            "quote \" newline \n tab \t é"
        );
    }
}

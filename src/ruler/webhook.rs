//! The body of a plain webhook: one JSON object per alert event, for users without an
//! Alertmanager.
//!
//! Which question it answers: "what does a webhook receiver get when an alert fires or
//! resolves?" The fields are those of the small demo's alert payload, plus the alert's
//! labels and whether it fires or resolves:
//!
//! ```text
//! {"rule": "many-errors", "level": "error", "message": "12 error lines in 1m",
//!  "count": 12, "window": "1m", "time": "2026-12-06T01:02:03.456Z",
//!  "labels": {"app": "api"}, "state": "firing"}
//! ```
//!
//! `time` is when the event happened, RFC 3339 in UTC with milliseconds.

use serde_json::{Map, Value, json};

use super::alertmanager::{label_set, rfc3339_ms};
use super::outbox::WebhookNotice;

/// The JSON object for `notice`.
pub fn encode_webhook(notice: &WebhookNotice) -> Vec<u8> {
    let mut object = Map::new();
    object.insert("rule".into(), json!(notice.rule));
    object.insert("level".into(), json!(notice.level));
    object.insert("message".into(), json!(notice.message));
    object.insert("count".into(), json!(notice.count));
    object.insert("window".into(), json!(notice.window));
    object.insert("time".into(), json!(rfc3339_ms(notice.time_ms)));
    object.insert("labels".into(), label_set(&notice.labels));
    object.insert("state".into(), json!(notice.state));
    serde_json::to_vec(&Value::Object(object)).expect("a JSON value always serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notice_has_the_demo_fields_and_labels_and_state() {
        let notice = WebhookNotice {
            rule: "many-errors".into(),
            level: "error".into(),
            message: "12 error lines in 1m".into(),
            count: 12,
            window: "1m".into(),
            time_ms: 1_796_518_923_456,
            labels: vec![("app".into(), "api".into())],
            state: "firing".into(),
        };
        let value: Value = serde_json::from_slice(&encode_webhook(&notice)).unwrap();
        assert_eq!(
            value,
            json!({
                "rule": "many-errors",
                "level": "error",
                "message": "12 error lines in 1m",
                "count": 12,
                "window": "1m",
                "time": "2026-12-06T01:02:03.456Z",
                "labels": {"app": "api"},
                "state": "firing"
            })
        );
    }

    #[test]
    fn a_count_beyond_f64_precision_stays_exact() {
        let notice = WebhookNotice {
            rule: String::new(),
            level: String::new(),
            message: String::new(),
            count: u64::MAX,
            window: String::new(),
            time_ms: 0,
            labels: Vec::new(),
            state: "resolved".into(),
        };
        let text = String::from_utf8(encode_webhook(&notice)).unwrap();
        assert!(text.contains("\"count\":18446744073709551615"), "{text}");
        assert!(text.contains("\"labels\":{}"), "{text}");
    }
}

//! One tail message as Loki writes it (`pkg/util/marshal`'s `EncodeTailResult`):
//! `{"streams":[{"stream":{...},"values":[["<ns>","<line>"]]}],"dropped_entries":[...]}`.
//!
//! Which question it answers: "what JSON does a tail client read?" Without Loki's
//! categorize-labels flag, an entry's structured metadata and parsed labels are folded into
//! its stream's labels; with it, they are the third element of the value and the message ends
//! with `"encodingFlags":["categorize-labels"]`. Consecutive entries with the same labels
//! share one stream object (Loki writes one per entry; readers see the same entries either
//! way). `dropped_entries` is present only when something was dropped, each with its
//! timestamp in nanoseconds as a string and its labels.

use crate::http::json;
use crate::model::Labels;

use super::{DroppedEntry, TailedEntry};

/// The labels an entry is shown under: its stream labels, plus (unless categorised) its
/// structured metadata and parsed labels that the stream does not already have.
fn shown_labels(e: &TailedEntry, categorize: bool) -> Labels {
    if categorize || (e.metadata.is_empty() && e.parsed.is_empty()) {
        return (*e.labels).clone();
    }
    let extra = e
        .metadata
        .iter()
        .chain(&e.parsed)
        .filter(|(k, _)| e.labels.get(k).is_none())
        .map(|(k, v)| (k.as_str(), v.as_str()));
    Labels::from_pairs_keeping_empty(
        e.labels
            .pairs()
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .chain(extra),
    )
}

fn labels_object(out: &mut String, labels: &Labels) {
    json::string_map(
        out,
        labels.pairs().iter().map(|(k, v)| (k.as_str(), v.as_str())),
    );
}

/// Writes one tail message.
pub fn message(entries: &[TailedEntry], dropped: &[DroppedEntry], categorize: bool) -> String {
    let line_bytes: usize = entries.iter().map(|e| e.line.len() + 48).sum();
    let mut out = String::with_capacity(64 + line_bytes + dropped.len() * 64);
    out.push_str(r#"{"streams":["#);
    let mut open: Option<Labels> = None;
    for e in entries {
        let labels = shown_labels(e, categorize);
        if open.as_ref() == Some(&labels) {
            out.push(',');
        } else {
            if open.is_some() {
                out.push_str("]},");
            }
            out.push_str(r#"{"stream":"#);
            labels_object(&mut out, &labels);
            out.push_str(r#","values":["#);
            open = Some(labels);
        }
        out.push_str("[\"");
        out.push_str(&e.ts.to_string());
        out.push_str("\",");
        json::string(&mut out, &e.line);
        if categorize {
            out.push_str(",{");
            if !e.metadata.is_empty() {
                out.push_str(r#""structuredMetadata":"#);
                json::string_map(
                    &mut out,
                    e.metadata.iter().map(|(k, v)| (k.as_str(), v.as_str())),
                );
            }
            if !e.parsed.is_empty() {
                if !e.metadata.is_empty() {
                    out.push(',');
                }
                out.push_str(r#""parsed":"#);
                json::string_map(
                    &mut out,
                    e.parsed.iter().map(|(k, v)| (k.as_str(), v.as_str())),
                );
            }
            out.push('}');
        }
        out.push(']');
    }
    if open.is_some() {
        out.push_str("]}");
    }
    out.push(']');
    if !dropped.is_empty() {
        out.push_str(r#","dropped_entries":["#);
        for (i, d) in dropped.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(r#"{"timestamp":""#);
            out.push_str(&d.ts.to_string());
            out.push('"');
            // Loki leaves out empty labels (`omitempty`).
            if !d.labels.is_empty() {
                out.push_str(r#","labels":"#);
                labels_object(&mut out, &d.labels);
            }
            out.push('}');
        }
        out.push(']');
    }
    if categorize {
        out.push_str(r#","encodingFlags":["categorize-labels"]"#);
    }
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};
    use std::sync::Arc;

    fn entry(ts: i64, app: &str, line: &str, md: &[(&str, &str)]) -> TailedEntry {
        TailedEntry {
            ts,
            labels: Arc::new(Labels::from_pairs([("app", app)])),
            line: line.to_string(),
            metadata: md
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            parsed: Vec::new(),
        }
    }

    fn parse(s: &str) -> Value {
        serde_json::from_str(s).unwrap_or_else(|e| panic!("{e}: {s}"))
    }

    #[test]
    fn entries_and_drops_in_loki_shape() {
        let entries = [
            entry(1, "a", "one", &[]),
            entry(2, "a", "two \"q\"", &[]),
            entry(3, "b", "three", &[("trace", "t1")]),
        ];
        let dropped = [DroppedEntry {
            ts: 9,
            labels: Arc::new(Labels::from_pairs([("app", "c")])),
        }];
        let got = parse(&message(&entries, &dropped, false));
        assert_eq!(
            got,
            json!({
                "streams": [
                    {"stream": {"app": "a"}, "values": [["1", "one"], ["2", "two \"q\""]]},
                    {"stream": {"app": "b", "trace": "t1"}, "values": [["3", "three"]]},
                ],
                "dropped_entries": [{"timestamp": "9", "labels": {"app": "c"}}],
            })
        );
    }

    #[test]
    fn categorised_entries_carry_their_metadata_apart() {
        let mut e = entry(3, "b", "three", &[("trace", "t1")]);
        e.parsed = vec![("level".into(), "info".into())];
        let got = parse(&message(&[e], &[], true));
        assert_eq!(
            got,
            json!({
                "streams": [{"stream": {"app": "b"}, "values": [["3", "three",
                    {"structuredMetadata": {"trace": "t1"}, "parsed": {"level": "info"}}]]}],
                "encodingFlags": ["categorize-labels"],
            })
        );
        assert_eq!(parse(&message(&[], &[], false)), json!({"streams": []}));
    }
}

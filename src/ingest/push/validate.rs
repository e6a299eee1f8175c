//! The checks Loki's distributor applies to every stream of a push, with its messages.
//!
//! Which question it answers: "would Loki have accepted this stream?" Labels: at least one,
//! names matching `[a-zA-Z_][a-zA-Z0-9_]*`, no name twice, counts and lengths within the
//! limits. Entries: a timestamp within the range every ingest path shares
//! ([`crate::ingest::time_range`]), line length within `line_bytes_max`, structured metadata
//! within Loki's default count and size. The same checks serve protobuf, JSON and JSON-lines
//! bodies. Each refusal names the [`Rule`] it enforces, so that it is counted under Loki's
//! reason for it; a line cut to fit says how many bytes were cut, so that it is counted too.

use crate::model::Labels;
use crate::model::batch::{BATCH_LABELS_PER_STREAM_MAX, BATCH_METADATA_PER_ENTRY_MAX};

use super::{PushEntry, PushLimits, PushStream, Rule, Truncated, Violation};

/// Structured metadata pairs per entry: Loki's `max_structured_metadata_entries_count`
/// default. Also well below the batch format's own bound.
pub const METADATA_PAIRS_PER_ENTRY_MAX: usize = 128;
/// Bytes of structured metadata (names plus values) per entry: Loki's
/// `max_structured_metadata_size` default (64 KiB).
pub const METADATA_BYTES_PER_ENTRY_MAX: usize = 64 << 10;
/// Bytes of one metadata name. The batch format stores names with a 16-bit length, and a
/// name is a key, not data: Loki's label name bound serves it well.
pub const METADATA_NAME_BYTES_MAX: usize = 1024;
/// How much of a client's input an error message repeats. Enough to recognise a label set
/// or a value; a 2 MiB line echoed back would only flood the client's logs.
pub const ECHO_BYTES_MAX: usize = 256;

const _: () = assert!(METADATA_PAIRS_PER_ENTRY_MAX <= BATCH_METADATA_PER_ENTRY_MAX);
const _: () = assert!(METADATA_NAME_BYTES_MAX <= u16::MAX as usize);

/// Client input cut to [`ECHO_BYTES_MAX`] bytes (at a character boundary) for a message.
pub fn echo(s: &str) -> String {
    if s.len() <= ECHO_BYTES_MAX {
        return s.to_string();
    }
    let mut end = ECHO_BYTES_MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

/// Whether `name` is a Prometheus/Loki label name: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn is_label_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z' | b'A'..=b'Z' | b'_'))
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Formats label pairs as sent, in Prometheus form, for messages about them.
pub fn display_pairs(pairs: &[(String, String)]) -> String {
    let mut s = String::from("{");
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        s.push_str(k);
        s.push_str("=\"");
        for c in v.chars() {
            match c {
                '"' => s.push_str("\\\""),
                '\\' => s.push_str("\\\\"),
                '\n' => s.push_str("\\n"),
                c => s.push(c),
            }
        }
        s.push('"');
    }
    s.push('}');
    s
}

/// Checks raw label pairs (as sent, in any order) and builds the stream's [`Labels`].
/// `shown` is how the stream is named in messages: the label string as the client sent it.
pub fn labels(
    mut pairs: Vec<(String, String)>,
    shown: &str,
    limits: &PushLimits,
) -> Result<Labels, Violation> {
    let shown = echo(shown);
    let get = |name: &str| {
        pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    if let Some(service) =
        crate::ingest::discovery::service_name::derive(&limits.service_name_from, get)
    {
        let service = service.to_string();
        pairs.push((crate::ingest::discovery::SERVICE_NAME.to_string(), service));
    }
    // The batch format carries at most this many labels and 16-bit lengths, whatever the
    // configuration says.
    let count_max = limits
        .labels_per_stream_max
        .min(BATCH_LABELS_PER_STREAM_MAX);
    let name_max = limits.label_name_bytes_max.min(u16::MAX as usize);
    let value_max = limits.label_value_bytes_max.min(u16::MAX as usize);
    if pairs.len() > count_max {
        return Err(Violation::new(
            Rule::MaxLabelNamesPerSeries,
            format!(
                "entry for stream '{shown}' has {} label names; limit {count_max}",
                pairs.len()
            ),
        ));
    }
    for (i, (name, value)) in pairs.iter().enumerate() {
        if !is_label_name(name) {
            return Err(Violation::new(
                Rule::InvalidLabels,
                format!(
                    "error parsing labels '{shown}': invalid label name '{}': a label name \
                     matches [a-zA-Z_][a-zA-Z0-9_]*",
                    echo(name)
                ),
            ));
        }
        if name.len() > name_max {
            return Err(Violation::new(
                Rule::LabelNameTooLong,
                format!(
                    "stream '{shown}' has label name too long: '{}' ({} bytes; limit \
                     {name_max})",
                    echo(name),
                    name.len()
                ),
            ));
        }
        if value.len() > value_max {
            return Err(Violation::new(
                Rule::LabelValueTooLong,
                format!(
                    "stream '{shown}' has label value too long: '{}' ({} bytes; limit \
                     {value_max})",
                    echo(value),
                    value.len()
                ),
            ));
        }
        if pairs[..i].iter().any(|(n, _)| n == name) {
            return Err(Violation::new(
                Rule::DuplicateLabelNames,
                format!("stream '{shown}' has duplicate label name: '{name}'"),
            ));
        }
    }
    let labels = Labels::from_pairs(pairs);
    if labels.is_empty() {
        return Err(Violation::new(
            Rule::MissingLabels,
            format!("error at least one label pair is required per stream (got '{shown}')"),
        ));
    }
    Ok(labels)
}

/// Cuts a line longer than the limit to it, at a character boundary, when the limits say
/// to (`truncate_long_lines`); a cut line is then within the limit for [`entry`]. Returns
/// the bytes cut off (0: the line is whole).
pub fn fit_line(entry: &mut PushEntry, limits: &PushLimits) -> usize {
    if !limits.truncate_long_lines || entry.line.len() <= limits.line_bytes_max {
        return 0;
    }
    let mut end = limits.line_bytes_max;
    while !entry.line.is_char_boundary(end) {
        end -= 1;
    }
    let cut = entry.line.len() - end;
    entry.line.truncate(end);
    cut
}

/// Checks one entry's timestamp, line and structured metadata. `labels` names the stream in
/// messages.
pub fn entry(entry: &PushEntry, labels: &Labels, limits: &PushLimits) -> Result<(), Violation> {
    if let Err(e) = crate::ingest::time_range::check(entry.timestamp_ns) {
        return Err(Violation::new(
            Rule::Other,
            format!("entry for stream '{}' has {e}", echo(&labels.to_string())),
        ));
    }
    if entry.line.len() > limits.line_bytes_max {
        return Err(Violation::new(
            Rule::LineTooLong,
            format!(
                "Max entry size '{}' bytes exceeded for stream '{}' while adding an entry with \
                 length '{}' bytes",
                limits.line_bytes_max,
                echo(&labels.to_string()),
                entry.line.len()
            ),
        ));
    }
    if entry.metadata.len() > METADATA_PAIRS_PER_ENTRY_MAX {
        return Err(Violation::new(
            Rule::StructuredMetadataTooMany,
            format!(
                "stream '{}' has too many structured metadata labels: '{}', limit: '{}'",
                echo(&labels.to_string()),
                entry.metadata.len(),
                METADATA_PAIRS_PER_ENTRY_MAX
            ),
        ));
    }
    let mut bytes = 0usize;
    for (name, value) in &entry.metadata {
        if name.is_empty() || name.len() > METADATA_NAME_BYTES_MAX {
            return Err(Violation::new(
                Rule::Other,
                format!(
                    "stream '{}' has a structured metadata name of {} bytes: '{}'; a name has 1 \
                     to {METADATA_NAME_BYTES_MAX} bytes",
                    echo(&labels.to_string()),
                    name.len(),
                    echo(name)
                ),
            ));
        }
        bytes += name.len() + value.len();
    }
    if bytes > METADATA_BYTES_PER_ENTRY_MAX {
        return Err(Violation::new(
            Rule::StructuredMetadataTooLarge,
            format!(
                "stream '{}' has structured metadata too large: '{bytes}' bytes, limit: \
                 '{METADATA_BYTES_PER_ENTRY_MAX}' bytes",
                echo(&labels.to_string())
            ),
        ));
    }
    Ok(())
}

/// Validates a whole stream: its labels, then each of its entries, cutting long lines to
/// fit where the limits say so and adding them to `truncated`.
pub fn stream(
    pairs: Vec<(String, String)>,
    shown: &str,
    mut entries: Vec<PushEntry>,
    limits: &PushLimits,
    truncated: &mut Truncated,
) -> Result<PushStream, Violation> {
    let labels = labels(pairs, shown, limits)?;
    for e in &mut entries {
        truncated.add(fit_line(e, limits));
        entry(e, &labels, limits)?;
    }
    Ok(PushStream { labels, entries })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_discovered_service_name_is_added_and_counted() {
        let limits = PushLimits {
            service_name_from: vec!["app".to_string(), "job".to_string()].into(),
            labels_per_stream_max: 3,
            ..PushLimits::default()
        };
        let got = labels(pairs(&[("job", "j"), ("app", "a")]), "", &limits).unwrap();
        assert_eq!(got.to_string(), r#"{app="a", job="j", service_name="a"}"#);
        let got = labels(pairs(&[("host", "h")]), "", &limits).unwrap();
        assert_eq!(
            got.to_string(),
            r#"{host="h", service_name="unknown_service"}"#
        );
        let own = labels(pairs(&[("service_name", "s"), ("app", "a")]), "", &limits).unwrap();
        assert_eq!(own.get("service_name"), Some("s"));
        // Three labels and the derived one are four: over the limit, as in Loki.
        let e = labels(
            pairs(&[("job", "j"), ("env", "e"), ("x", "y")]),
            "",
            &limits,
        )
        .unwrap_err();
        assert_eq!(e.rule, Rule::MaxLabelNamesPerSeries);
        // Off by default: the labels as sent.
        let sent = labels(pairs(&[("job", "j")]), "", &PushLimits::default()).unwrap();
        assert_eq!(sent.to_string(), r#"{job="j"}"#);
    }

    #[test]
    fn long_lines_are_cut_at_a_character_boundary_when_asked() {
        let limits = PushLimits {
            line_bytes_max: 5,
            truncate_long_lines: true,
            ..PushLimits::default()
        };
        let e = |line: &str| PushEntry {
            timestamp_ns: 1,
            line: line.to_string(),
            metadata: vec![],
        };
        let mut truncated = Truncated::default();
        let s = stream(
            pairs(&[("a", "b")]),
            "{a=\"b\"}",
            vec![e("abcdefgh"), e("abcdé"), e("abcdéf"), e("ab")],
            &limits,
            &mut truncated,
        )
        .unwrap();
        let lines: Vec<&str> = s.entries.iter().map(|e| e.line.as_str()).collect();
        // "abcdé" is 6 bytes: the cut falls inside é, so it goes before it.
        assert_eq!(lines, ["abcde", "abcd", "abcd", "ab"]);
        // Three lines were cut, of 3, 2 and 3 bytes; "ab" was not.
        assert_eq!(truncated, Truncated { lines: 3, bytes: 8 });
        let refused = PushLimits {
            truncate_long_lines: false,
            ..limits
        };
        let mut none = Truncated::default();
        let err = stream(
            pairs(&[("a", "b")]),
            "x",
            vec![e("abcdefgh")],
            &refused,
            &mut none,
        )
        .unwrap_err();
        assert_eq!(err.rule, Rule::LineTooLong);
        assert_eq!(none, Truncated::default());
    }

    fn bad(p: &[(&str, &str)], limits: &PushLimits) -> String {
        let shown = display_pairs(&pairs(p));
        match labels(pairs(p), &shown, limits) {
            Err(v) => v.message,
            Ok(l) => panic!("expected {shown} to be refused, got {l}"),
        }
    }

    /// Each label rule is counted under Loki's reason for it.
    #[test]
    fn label_refusals_name_their_rule() {
        let l = PushLimits::default();
        let rule = |p: Vec<(String, String)>| labels(p, "shown", &l).unwrap_err().rule;
        let many: Vec<(String, String)> = (0..16).map(|i| (format!("l{i}"), "v".into())).collect();
        assert_eq!(rule(many), Rule::MaxLabelNamesPerSeries);
        assert_eq!(
            rule(pairs(&[(&"n".repeat(1025), "v")])),
            Rule::LabelNameTooLong
        );
        assert_eq!(
            rule(pairs(&[("a", &"v".repeat(2049))])),
            Rule::LabelValueTooLong
        );
        assert_eq!(
            rule(pairs(&[("a", "1"), ("a", "2")])),
            Rule::DuplicateLabelNames
        );
        assert_eq!(rule(pairs(&[("a-b", "1")])), Rule::InvalidLabels);
        assert_eq!(rule(pairs(&[])), Rule::MissingLabels);
        // A label without a value is no label.
        assert_eq!(rule(pairs(&[("a", "")])), Rule::MissingLabels);
        // The count is checked first, as Loki checks it first.
        let many_bad: Vec<(String, String)> =
            (0..16).map(|i| (format!("{i}"), "v".into())).collect();
        assert_eq!(rule(many_bad), Rule::MaxLabelNamesPerSeries);
    }

    /// Each entry rule is counted under Loki's reason for it; those Loki has none for are
    /// [`Rule::Other`].
    #[test]
    fn entry_refusals_name_their_rule() {
        let l = PushLimits {
            line_bytes_max: 10,
            ..PushLimits::default()
        };
        let labels = Labels::from_pairs([("app", "x")]);
        let rule = |timestamp_ns: i64, line: &str, metadata: Vec<(String, String)>| {
            let e = PushEntry {
                timestamp_ns,
                line: line.into(),
                metadata,
            };
            entry(&e, &labels, &l).unwrap_err().rule
        };
        assert_eq!(rule(0, "0123456789a", vec![]), Rule::LineTooLong);
        let many = (0..129).map(|i| (format!("k{i}"), String::new())).collect();
        assert_eq!(rule(0, "", many), Rule::StructuredMetadataTooMany);
        let big = vec![("k".to_string(), "v".repeat(64 << 10))];
        assert_eq!(rule(0, "", big), Rule::StructuredMetadataTooLarge);
        let unnamed = vec![(String::new(), "v".to_string())];
        assert_eq!(rule(0, "", unnamed), Rule::Other);
        assert_eq!(rule(i64::MAX, "", vec![]), Rule::Other);
    }

    #[test]
    fn label_names() {
        for good in ["a", "_", "A_1", "__name__", "service_name"] {
            assert!(is_label_name(good), "{good}");
        }
        for bad in ["", "1a", "a-b", "a.b", "é", "a b", "a\0"] {
            assert!(!is_label_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn label_rules() {
        let l = PushLimits::default();
        let ok = labels(pairs(&[("b", "2"), ("a", "1")]), "{b=\"2\", a=\"1\"}", &l).unwrap();
        assert_eq!(ok.to_string(), r#"{a="1", b="2"}"#);
        assert!(bad(&[], &l).contains("at least one label pair is required"));
        assert!(bad(&[("a", "")], &l).contains("at least one label pair is required"));
        assert!(bad(&[("a-b", "1")], &l).contains("invalid label name 'a-b'"));
        assert!(bad(&[("a", "1"), ("a", "2")], &l).contains("duplicate label name: 'a'"));
        let many: Vec<(String, String)> = (0..16).map(|i| (format!("l{i}"), "v".into())).collect();
        let m = labels(many, "{...}", &l).unwrap_err().to_string();
        assert!(m.contains("has 16 label names; limit 15"), "{m}");
        let long_name = "n".repeat(1025);
        assert!(bad(&[(&long_name, "v")], &l).contains("label name too long"));
        let long_value = "v".repeat(2049);
        assert!(bad(&[("a", &long_value)], &l).contains("label value too long"));
        // The echo is cut, so the message stays short.
        assert!(bad(&[("a", &long_value)], &l).len() < 1000);
    }

    #[test]
    fn entry_rules() {
        let l = PushLimits {
            line_bytes_max: 10,
            ..PushLimits::default()
        };
        let labels = Labels::from_pairs([("app", "x")]);
        let e = |line: &str, md: Vec<(String, String)>| PushEntry {
            timestamp_ns: 0,
            line: line.into(),
            metadata: md,
        };
        assert!(entry(&e("0123456789", vec![]), &labels, &l).is_ok());
        let m = entry(&e("0123456789a", vec![]), &labels, &l)
            .unwrap_err()
            .to_string();
        assert_eq!(
            m,
            "Max entry size '10' bytes exceeded for stream '{app=\"x\"}' while adding an entry with length '11' bytes"
        );
        let many = (0..129).map(|i| (format!("k{i}"), String::new())).collect();
        assert!(
            entry(&e("", many), &labels, &l)
                .unwrap_err()
                .to_string()
                .contains("too many structured metadata")
        );
        let big = vec![("k".to_string(), "v".repeat(64 << 10))];
        assert!(
            entry(&e("", big), &labels, &l)
                .unwrap_err()
                .to_string()
                .contains("too large")
        );
        let unnamed = vec![(String::new(), "v".to_string())];
        assert!(entry(&e("", unnamed), &labels, &l).is_err());
    }

    #[test]
    fn echo_cuts_at_a_char_boundary() {
        let s = "é".repeat(200);
        let e = echo(&s);
        assert!(e.ends_with("...") && e.len() <= ECHO_BYTES_MAX + 3);
        assert_eq!(echo("short"), "short");
    }
}

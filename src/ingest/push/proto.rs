//! Protobuf push bodies: Loki's `logproto.PushRequest` in a raw snappy block.
//!
//! Which question it answers: "what does a Promtail/Alloy/Docker-driver push contain?" The
//! messages are declared by hand with prost's derive macros (field numbers from Loki's
//! `pkg/push/push.proto`), so no protoc or build script is needed:
//!
//! ```text
//! message PushRequest      { repeated StreamAdapter streams = 1; }
//! message StreamAdapter    { string labels = 1; repeated EntryAdapter entries = 2; uint64 hash = 3; }
//! message EntryAdapter     { google.protobuf.Timestamp timestamp = 1; string line = 2;
//!                            repeated LabelPairAdapter structuredMetadata = 3; }
//! message LabelPairAdapter { string name = 1; string value = 2; }
//! message Timestamp        { int64 seconds = 1; int32 nanos = 2; }
//! ```
//!
//! prost rejects strings that are not UTF-8, so an invalid line or label is a 400. The
//! `hash` field is ignored: the server computes its own stream id.

use super::decompress::snappy;
use super::labels::parse_label_set;
use super::validate::echo;
use super::{Decoded, PushEntry, PushError, PushLimits, PushStream, Rule, Violation, validate};

/// `logproto.PushRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PushRequest {
    #[prost(message, repeated, tag = "1")]
    pub streams: Vec<StreamAdapter>,
}

/// `logproto.StreamAdapter`: one stream, its labels as a string.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StreamAdapter {
    #[prost(string, tag = "1")]
    pub labels: String,
    #[prost(message, repeated, tag = "2")]
    pub entries: Vec<EntryAdapter>,
    #[prost(uint64, tag = "3")]
    pub hash: u64,
}

/// `logproto.EntryAdapter`: one entry.
#[derive(Clone, PartialEq, prost::Message)]
pub struct EntryAdapter {
    #[prost(message, optional, tag = "1")]
    pub timestamp: Option<Timestamp>,
    #[prost(string, tag = "2")]
    pub line: String,
    #[prost(message, repeated, tag = "3")]
    pub structured_metadata: Vec<LabelPairAdapter>,
}

/// `logproto.LabelPairAdapter`: one pair of structured metadata.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LabelPairAdapter {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `google.protobuf.Timestamp`.
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct Timestamp {
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

impl Timestamp {
    /// Nanoseconds since the epoch, if representable in an i64 and `nanos` is in
    /// `0..1_000_000_000` as the well-known type requires.
    pub fn to_unix_ns(self) -> Option<i64> {
        if !(0..1_000_000_000).contains(&self.nanos) {
            return None;
        }
        // In i128, so that the earliest representable instant (whose seconds times 1e9 is
        // below i64::MIN before the nanos are added) still converts.
        let ns = i128::from(self.seconds) * 1_000_000_000 + i128::from(self.nanos);
        i64::try_from(ns).ok()
    }

    pub fn from_unix_ns(ns: i64) -> Timestamp {
        Timestamp {
            seconds: ns.div_euclid(1_000_000_000),
            nanos: ns.rem_euclid(1_000_000_000) as i32,
        }
    }
}

/// Decodes and validates a snappy-compressed `PushRequest`. The message is decoded whole
/// before any stream is validated, so a refusal counts every entry of the request.
pub fn decode(body: &[u8], limits: &PushLimits) -> Result<Decoded, PushError> {
    let raw = snappy(body, limits.body_bytes_max)?;
    let request = <PushRequest as prost::Message>::decode(raw.as_slice())
        .map_err(|e| PushError::BadRequest(format!("cannot decode protobuf push request: {e}")))?;
    drop(raw);
    let lines = request.streams.iter().map(|s| s.entries.len()).sum();
    let mut decoded = Decoded::default();
    decoded.streams.reserve(request.streams.len());
    for (stream_index, s) in request.streams.into_iter().enumerate() {
        let pairs = parse_label_set(&s.labels).map_err(|v| v.refusing(lines))?;
        let mut entries = Vec::with_capacity(s.entries.len());
        for (entry_index, e) in s.entries.into_iter().enumerate() {
            let ts = e.timestamp.ok_or_else(|| {
                Violation::new(
                    Rule::Other,
                    format!(
                        "entry {entry_index} of stream {stream_index} '{}' has no timestamp",
                        echo(&s.labels)
                    ),
                )
                .refusing(lines)
            })?;
            let timestamp_ns = ts.to_unix_ns().ok_or_else(|| {
                Violation::new(
                    Rule::Other,
                    format!(
                        "entry {entry_index} of stream {stream_index} '{}' has an invalid \
                         timestamp: {} s {} ns is outside the accepted range {}",
                        echo(&s.labels),
                        ts.seconds,
                        ts.nanos,
                        crate::ingest::time_range::TIMESTAMP_RANGE_TEXT
                    ),
                )
                .refusing(lines)
            })?;
            entries.push(PushEntry {
                timestamp_ns,
                line: e.line,
                metadata: e
                    .structured_metadata
                    .into_iter()
                    .map(|p| (p.name, p.value))
                    .collect(),
            });
        }
        let stream = validate::stream(pairs, &s.labels, entries, limits, &mut decoded.truncated)
            .map_err(|v| v.refusing(lines))?;
        decoded.streams.push(stream);
    }
    Ok(decoded)
}

/// Encodes streams as a snappy-compressed `PushRequest`, as a Loki client sends them: the
/// inverse of [`decode`], for tests, benchmarks and push clients.
pub fn encode(streams: &[PushStream]) -> Vec<u8> {
    let request = PushRequest {
        streams: streams
            .iter()
            .map(|s| StreamAdapter {
                labels: s.labels.to_string(),
                entries: s
                    .entries
                    .iter()
                    .map(|e| EntryAdapter {
                        timestamp: Some(Timestamp::from_unix_ns(e.timestamp_ns)),
                        line: e.line.clone(),
                        structured_metadata: e
                            .metadata
                            .iter()
                            .map(|(name, value)| LabelPairAdapter {
                                name: name.clone(),
                                value: value.clone(),
                            })
                            .collect(),
                    })
                    .collect(),
                hash: 0,
            })
            .collect(),
    };
    let bytes = prost::Message::encode_to_vec(&request);
    snap::raw::Encoder::new()
        .compress_vec(&bytes)
        .expect("snappy compresses any input shorter than 4 GiB")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Labels;
    use prost::Message;

    fn body(request: &PushRequest) -> Vec<u8> {
        snap::raw::Encoder::new()
            .compress_vec(&request.encode_to_vec())
            .unwrap()
    }

    fn one(labels: &str, entries: Vec<EntryAdapter>) -> PushRequest {
        PushRequest {
            streams: vec![StreamAdapter {
                labels: labels.into(),
                entries,
                hash: 42,
            }],
        }
    }

    fn entry(seconds: i64, nanos: i32, line: &str, md: &[(&str, &str)]) -> EntryAdapter {
        EntryAdapter {
            timestamp: Some(Timestamp { seconds, nanos }),
            line: line.into(),
            structured_metadata: md
                .iter()
                .map(|(n, v)| LabelPairAdapter {
                    name: n.to_string(),
                    value: v.to_string(),
                })
                .collect(),
        }
    }

    #[test]
    fn decodes_a_request() {
        let req = PushRequest {
            streams: vec![
                StreamAdapter {
                    labels: r#"{env="prod", app="foo"}"#.into(),
                    entries: vec![
                        entry(1_700_000_000, 5, "first", &[]),
                        entry(1_700_000_001, 0, "second", &[("trace_id", "abc")]),
                    ],
                    hash: 7,
                },
                StreamAdapter {
                    labels: r#"{app="foo", env="prod"}"#.into(),
                    entries: vec![],
                    hash: 0,
                },
            ],
        };
        let got = decode(&body(&req), &PushLimits::default()).unwrap().streams;
        assert_eq!(got.len(), 2);
        assert_eq!(
            got[0].labels,
            Labels::from_pairs([("app", "foo"), ("env", "prod")])
        );
        assert_eq!(got[1].labels, got[0].labels);
        assert_eq!(got[0].entries[0].timestamp_ns, 1_700_000_000_000_000_005);
        assert_eq!(got[0].entries[1].line, "second");
        assert_eq!(
            got[0].entries[1].metadata,
            vec![("trace_id".to_string(), "abc".to_string())]
        );
    }

    #[test]
    fn negative_and_extreme_timestamps() {
        for ns in [0, -1, 1, i64::MIN, i64::MAX, -1_500_000_000] {
            assert_eq!(Timestamp::from_unix_ns(ns).to_unix_ns(), Some(ns), "{ns}");
        }
        assert_eq!(
            Timestamp {
                seconds: 0,
                nanos: -1
            }
            .to_unix_ns(),
            None
        );
        assert_eq!(
            Timestamp {
                seconds: 0,
                nanos: 1_000_000_000
            }
            .to_unix_ns(),
            None
        );
        assert_eq!(
            Timestamp {
                seconds: i64::MAX,
                nanos: 0
            }
            .to_unix_ns(),
            None
        );
        let err = decode(
            &body(&one("{a=\"b\"}", vec![entry(i64::MAX, 0, "x", &[])])),
            &PushLimits::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("invalid timestamp"), "{err}");
        // Representable but outside the range every ingest path shares: refused as JSON is.
        use crate::ingest::time_range::{TIMESTAMP_NS_MAX, TIMESTAMP_NS_MIN};
        for ns in [i64::MIN, -1, TIMESTAMP_NS_MAX + 1, i64::MAX] {
            let t = Timestamp::from_unix_ns(ns);
            let err = decode(
                &body(&one("{a=\"b\"}", vec![entry(t.seconds, t.nanos, "x", &[])])),
                &PushLimits::default(),
            )
            .unwrap_err();
            assert!(
                err.to_string().contains("outside the accepted range"),
                "{ns}: {err}"
            );
        }
        for ns in [TIMESTAMP_NS_MIN, TIMESTAMP_NS_MAX] {
            let t = Timestamp::from_unix_ns(ns);
            let got = decode(
                &body(&one("{a=\"b\"}", vec![entry(t.seconds, t.nanos, "x", &[])])),
                &PushLimits::default(),
            )
            .unwrap();
            assert_eq!(got.streams[0].entries[0].timestamp_ns, ns);
        }
        let mut missing = entry(0, 0, "x", &[]);
        missing.timestamp = None;
        let err = decode(
            &body(&one("{a=\"b\"}", vec![missing])),
            &PushLimits::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("has no timestamp"), "{err}");
    }

    #[test]
    fn invalid_utf8_is_a_400() {
        // Field 1 of StreamAdapter (labels) carrying the bytes 0xff 0xfe.
        let stream = [0x0a, 0x02, 0xff, 0xfe];
        let mut raw = vec![0x0a, stream.len() as u8];
        raw.extend_from_slice(&stream);
        let b = snap::raw::Encoder::new().compress_vec(&raw).unwrap();
        let err = decode(&b, &PushLimits::default()).unwrap_err();
        assert_eq!(err.status(), 400);
        assert!(
            err.to_string()
                .contains("cannot decode protobuf push request"),
            "{err}"
        );
    }

    #[test]
    fn malformed_protobuf_and_snappy() {
        let l = PushLimits::default();
        // A truncated message: field 1, length 10, two bytes.
        let b = snap::raw::Encoder::new()
            .compress_vec(&[0x0a, 0x0a, 0x01, 0x02])
            .unwrap();
        assert_eq!(decode(&b, &l).unwrap_err().status(), 400);
        // Plain protobuf without snappy.
        let plain = one("{a=\"b\"}", vec![entry(1, 0, "x", &[])]).encode_to_vec();
        assert_eq!(decode(&plain, &l).unwrap_err().status(), 400);
        // JSON sent as protobuf.
        assert_eq!(decode(br#"{"streams":[]}"#, &l).unwrap_err().status(), 400);
    }

    #[test]
    fn labels_and_lines_are_validated() {
        let l = PushLimits {
            line_bytes_max: 4,
            ..PushLimits::default()
        };
        let err = decode(&body(&one("{app=\"x\"", vec![])), &l).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("error parsing labels '{app=\"x\"'"),
            "{err}"
        );
        let err = decode(&body(&one("{}", vec![])), &l).unwrap_err();
        assert!(
            err.to_string()
                .contains("at least one label pair is required"),
            "{err}"
        );
        let err = decode(&body(&one("{1a=\"x\"}", vec![])), &l).unwrap_err();
        assert!(err.to_string().contains("invalid label name '1a'"), "{err}");
        let err = decode(&body(&one("{a=\"x\", a=\"y\"}", vec![])), &l).unwrap_err();
        assert!(err.to_string().contains("duplicate label name"), "{err}");
        let err = decode(
            &body(&one("{a=\"x\"}", vec![entry(1, 0, "12345", &[])])),
            &l,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Max entry size '4' bytes exceeded for stream '{a=\"x\"}' while adding an entry with length '5' bytes"
        );
    }

    #[test]
    fn all_or_nothing() {
        // The second stream is bad: nothing of the first is returned.
        let mut req = one("{a=\"x\"}", vec![entry(1, 0, "fine", &[])]);
        req.streams.push(StreamAdapter {
            labels: "{}".into(),
            entries: vec![],
            hash: 0,
        });
        match decode(&body(&req), &PushLimits::default()) {
            // The first stream's entry is refused too, and counted.
            Err(PushError::Invalid { violation, lines }) => {
                assert_eq!(violation.rule, Rule::MissingLabels);
                assert_eq!(lines, 1);
            }
            other => panic!("{other:?}"),
        }
    }

    /// Protobuf is where a client can repeat a label name; each rule is counted under its
    /// reason, and a missing timestamp under none of Loki's.
    #[test]
    fn refusals_name_their_rule() {
        let l = PushLimits::default();
        let rule = |req: PushRequest| match decode(&body(&req), &l) {
            Err(PushError::Invalid { violation, .. }) => violation.rule,
            other => panic!("{other:?}"),
        };
        let one_line = || vec![entry(1, 0, "x", &[])];
        assert_eq!(
            rule(one("{a=\"x\", a=\"y\"}", one_line())),
            Rule::DuplicateLabelNames
        );
        assert_eq!(rule(one("{a=\"x\"", one_line())), Rule::InvalidLabels);
        assert_eq!(rule(one("{}", one_line())), Rule::MissingLabels);
        let mut missing = entry(0, 0, "x", &[]);
        missing.timestamp = None;
        assert_eq!(rule(one("{a=\"b\"}", vec![missing])), Rule::Other);
    }

    #[test]
    fn snappy_declared_size_is_checked_against_the_limit() {
        let req = one("{a=\"x\"}", vec![entry(1, 0, &"y".repeat(10_000), &[])]);
        let l = PushLimits {
            body_bytes_max: 5_000,
            ..PushLimits::default()
        };
        assert_eq!(decode(&body(&req), &l).unwrap_err().status(), 413);
    }
}

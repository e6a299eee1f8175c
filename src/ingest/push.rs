//! Decoding of Loki push bodies (`POST /loki/api/v1/push`): pure functions from the bytes of
//! a request body to validated streams of entries, with no I/O.
//!
//! Which question it answers: "which streams and entries did this push request carry, and
//! would Loki have accepted it?" A body is first undone of its `Content-Encoding` (gzip,
//! deflate, identity; [`decompress`]), then decoded by `Content-Type`: JSON
//! (`{"streams":[{"stream":{..},"values":[["<ns>","<line>",{..}]]}]}`, [`json`]) or
//! protobuf `logproto.PushRequest` in a raw snappy block ([`proto`]). Every stream is then
//! validated the way Loki's distributor does ([`validate`]): label names, label counts and
//! lengths, line length, structured metadata size. A request is all-or-nothing: the first
//! problem rejects the whole body with a [`PushError`] that gives the HTTP status, the
//! message Loki would give and, for a broken validation rule, the [`Rule`] (Loki's discard
//! reason) and the entries refused with the body. Lines cut to fit (`max_line_size_truncate`)
//! are counted in the [`Decoded`] request.
//!
//! Every size is bounded before memory is committed to it: the decompressed size is checked
//! while inflating (a zip bomb costs at most `body_bytes_max + 1` bytes) and snappy's declared
//! length is checked before its buffer is allocated.

pub mod decompress;
pub mod json;
pub mod labels;
pub mod proto;
pub mod validate;

use std::fmt;

use crate::model::Labels;

pub use decompress::decompress;
pub use labels::parse_label_set;

/// Default bound on a decompressed push body. Loki's own server accepts gRPC messages of up
/// to 100 MiB, but its clients (Promtail, Alloy, the Docker driver) send batches of 1 MiB by
/// default; 8 MiB leaves room for generous batch settings while keeping one request's
/// decoded form (roughly twice the body) small next to a shard's memory.
pub const BODY_BYTES_MAX_DEFAULT: usize = 8 << 20;
/// Default bound on one log line: Loki's `max_line_size` default (256 KiB). Longer lines are
/// rejected like Loki does, not truncated, so that a client notices.
pub const LINE_BYTES_MAX_DEFAULT: usize = 256 << 10;
/// Default bound on labels per stream: Loki's `max_label_names_per_series` default.
pub const LABELS_PER_STREAM_MAX_DEFAULT: usize = 15;
/// Default bound on a label name: Loki's `max_label_name_length` default.
pub const LABEL_NAME_BYTES_MAX_DEFAULT: usize = 1024;
/// Default bound on a label value: Loki's `max_label_value_length` default.
pub const LABEL_VALUE_BYTES_MAX_DEFAULT: usize = 2048;

/// The limits one push request is checked against. All sizes are in bytes of UTF-8.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushLimits {
    /// Bound on the body after `Content-Encoding` and snappy are undone; checked while
    /// decompressing, so an oversized body is refused before it is held in memory.
    pub body_bytes_max: usize,
    /// Bound on one entry's line (Loki's `max_line_size`).
    pub line_bytes_max: usize,
    /// Bound on the number of labels of one stream (Loki's `max_label_names_per_series`).
    pub labels_per_stream_max: usize,
    /// Bound on one label name (Loki's `max_label_name_length`).
    pub label_name_bytes_max: usize,
    /// Bound on one label value (Loki's `max_label_value_length`).
    pub label_value_bytes_max: usize,
    /// A longer line is cut to `line_bytes_max` (at a character boundary) instead of
    /// refusing the request (Loki's `max_line_size_truncate`).
    pub truncate_long_lines: bool,
    /// Labels whose value becomes `service_name` for a stream without one, else
    /// `unknown_service` (the tenant's `discover_service_name`, see
    /// [`crate::ingest::discovery`]). It is added before the labels are checked, so it
    /// counts toward `labels_per_stream_max`, as in Loki. Empty: off, the default of these
    /// limits alone, which are the decoding rules; the server gives each request its
    /// tenant's list.
    pub service_name_from: std::sync::Arc<[String]>,
}

impl Default for PushLimits {
    fn default() -> PushLimits {
        PushLimits {
            body_bytes_max: BODY_BYTES_MAX_DEFAULT,
            line_bytes_max: LINE_BYTES_MAX_DEFAULT,
            labels_per_stream_max: LABELS_PER_STREAM_MAX_DEFAULT,
            label_name_bytes_max: LABEL_NAME_BYTES_MAX_DEFAULT,
            label_value_bytes_max: LABEL_VALUE_BYTES_MAX_DEFAULT,
            truncate_long_lines: false,
            service_name_from: std::sync::Arc::from(Vec::<String>::new()),
        }
    }
}

/// One decoded log entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushEntry {
    /// Nanoseconds since the Unix epoch, as sent (the caller applies retention and skew).
    pub timestamp_ns: i64,
    pub line: String,
    /// Structured metadata pairs in the order they were sent.
    pub metadata: Vec<(String, String)>,
}

/// One stream of a push request: its validated labels and its entries in the order sent.
/// Two streams of one request may carry the same labels; the caller groups them by hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushStream {
    pub labels: Labels,
    pub entries: Vec<PushEntry>,
}

/// One of Loki's validation rules for a stream or an entry. Each has a reason of its own in
/// Loki's `loki_discarded_samples_total{reason}` (`pkg/validation/validate.go`), which the
/// server's discard counters take over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// A line over `line_bytes_max` (Loki's `line_too_long`).
    LineTooLong,
    /// More labels than `labels_per_stream_max` (`max_label_names_per_series`).
    MaxLabelNamesPerSeries,
    /// A label name over `label_name_bytes_max` (`label_name_too_long`).
    LabelNameTooLong,
    /// A label value over `label_value_bytes_max` (`label_value_too_long`).
    LabelValueTooLong,
    /// A label name given twice (`duplicate_label_names`).
    DuplicateLabelNames,
    /// A label set that does not parse or a name that is not a label name
    /// (`invalid_labels`).
    InvalidLabels,
    /// No label with a value (`missing_labels`).
    MissingLabels,
    /// More structured metadata bytes than Loki's default allows
    /// (`structured_metadata_too_large`).
    StructuredMetadataTooLarge,
    /// More structured metadata pairs than Loki's default allows
    /// (`structured_metadata_too_many`).
    StructuredMetadataTooMany,
    /// A rule Loki has no reason of its own for: a timestamp outside the range every ingest
    /// path shares, a protobuf entry without one, a structured metadata name of no bytes or
    /// too many. Counted as a request that could not be decoded.
    Other,
}

/// A stream or entry that breaks a [`Rule`], with the message Loki would give.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub rule: Rule,
    pub message: String,
}

impl Violation {
    pub fn new(rule: Rule, message: String) -> Violation {
        Violation { rule, message }
    }

    /// The refusal of a request this violation is found in, whose `lines` entries are then
    /// all refused.
    pub fn refusing(self, lines: usize) -> PushError {
        PushError::Invalid {
            violation: self,
            lines: lines as u64,
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Lines cut to `line_bytes_max` because the limits say so (`truncate_long_lines`), and the
/// bytes cut off them. Loki counts such lines as mutated, not discarded: they are stored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Truncated {
    pub lines: u64,
    pub bytes: u64,
}

impl Truncated {
    /// Counts a line of which `cut_bytes` were cut off; a line not cut (0) is not counted.
    pub fn add(&mut self, cut_bytes: usize) {
        if cut_bytes > 0 {
            self.lines += 1;
            self.bytes += cut_bytes as u64;
        }
    }
}

/// A decoded and validated push request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Decoded {
    /// Every stream of the request in the order sent.
    pub streams: Vec<PushStream>,
    /// What was cut off long lines to fit them.
    pub truncated: Truncated,
}

/// Why a push request was refused. The variant is the HTTP status to answer with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PushError {
    /// 400: the body is malformed: its entries cannot be known, let alone counted.
    BadRequest(String),
    /// 400: the body was decoded, and a stream or entry of it breaks a validation rule. A
    /// request is all or nothing, so `lines` is every entry the request carried: none of
    /// them is stored. (Loki, which stores a push's valid streams, counts the entries of
    /// the refused stream; here the whole request is refused.)
    Invalid { violation: Violation, lines: u64 },
    /// 413: the body, once decompressed, is larger than `body_bytes_max`.
    TooLarge(String),
    /// 415: the `Content-Type` or `Content-Encoding` is not one this server decodes.
    UnsupportedMediaType(String),
}

impl PushError {
    /// The HTTP status code that answers this error.
    pub fn status(&self) -> u16 {
        match self {
            PushError::BadRequest(_) | PushError::Invalid { .. } => 400,
            PushError::TooLarge(_) => 413,
            PushError::UnsupportedMediaType(_) => 415,
        }
    }

    /// The message, without the status.
    pub fn message(&self) -> &str {
        match self {
            PushError::BadRequest(m)
            | PushError::TooLarge(m)
            | PushError::UnsupportedMediaType(m) => m,
            PushError::Invalid { violation, .. } => &violation.message,
        }
    }
}

impl fmt::Display for PushError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for PushError {}

/// The body formats of `POST /loki/api/v1/push`, chosen by `Content-Type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BodyFormat {
    Json,
    Protobuf,
}

/// Maps a `Content-Type` header to a body format. Parameters (`; charset=utf-8`) are ignored
/// and the media type is compared case-insensitively, as RFC 9110 says. Without a header the
/// body is sniffed: JSON starts with `{`; anything else is taken for snappy protobuf, which is
/// what Loki assumes when the header is missing.
fn body_format(content_type: Option<&str>, body: &[u8]) -> Result<BodyFormat, PushError> {
    let media = content_type
        .map(|ct| ct.split(';').next().unwrap_or("").trim())
        .unwrap_or("");
    if media.is_empty() {
        let first = body.iter().find(|b| !b.is_ascii_whitespace());
        return Ok(match first {
            Some(b'{') | None => BodyFormat::Json,
            Some(_) => BodyFormat::Protobuf,
        });
    }
    if media.eq_ignore_ascii_case("application/json") {
        Ok(BodyFormat::Json)
    } else if media.eq_ignore_ascii_case("application/x-protobuf")
        || media.eq_ignore_ascii_case("application/protobuf")
    {
        Ok(BodyFormat::Protobuf)
    } else {
        Err(PushError::UnsupportedMediaType(format!(
            "unsupported Content-Type '{}': a push body is application/json or \
             application/x-protobuf (snappy-compressed)",
            validate::echo(media)
        )))
    }
}

/// Decodes and validates one `POST /loki/api/v1/push` body.
///
/// `content_type` and `content_encoding` are the request's header values, if present. The
/// result holds every stream of the request in the order sent, each with validated labels;
/// an error rejects the whole request (nothing of it may be stored).
pub fn decode_push(
    content_type: Option<&str>,
    content_encoding: Option<&str>,
    body: &[u8],
    limits: &PushLimits,
) -> Result<Decoded, PushError> {
    let body = decompress(content_encoding, body, limits.body_bytes_max)?;
    match body_format(content_type, &body)? {
        BodyFormat::Json => json::decode(&body, limits),
        BodyFormat::Protobuf => proto::decode(&body, limits),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An entry as a test writes it: timestamp, line, metadata pairs.
    type TestEntry<'a> = (i64, &'a str, &'a [(&'a str, &'a str)]);

    fn stream(labels: &[(&str, &str)], entries: &[TestEntry]) -> PushStream {
        PushStream {
            labels: Labels::from_pairs(labels.iter().copied()),
            entries: entries
                .iter()
                .map(|(ts, line, md)| PushEntry {
                    timestamp_ns: *ts,
                    line: line.to_string(),
                    metadata: md
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                })
                .collect(),
        }
    }

    /// The streams of a decoded request, for comparisons that need not see the rest.
    fn streams(decoded: Result<Decoded, PushError>) -> Result<Vec<PushStream>, PushError> {
        decoded.map(|d| d.streams)
    }

    const JSON_BODY: &str = r#"{"streams":[{"stream":{"app":"foo"},"values":[["1","a"]]}]}"#;

    #[test]
    fn content_type_selects_the_decoder() {
        let limits = PushLimits::default();
        let want = vec![stream(&[("app", "foo")], &[(1, "a", &[])])];
        for ct in [
            None,
            Some("application/json"),
            Some("Application/JSON; charset=utf-8"),
            Some(""),
        ] {
            assert_eq!(
                streams(decode_push(ct, None, JSON_BODY.as_bytes(), &limits)),
                Ok(want.clone()),
                "{ct:?}"
            );
        }
        let pb = proto::encode(&want);
        for ct in [
            None,
            Some("application/x-protobuf"),
            Some("application/protobuf; foo=bar"),
        ] {
            assert_eq!(
                streams(decode_push(ct, None, &pb, &limits)),
                Ok(want.clone()),
                "{ct:?}"
            );
        }
        let err = decode_push(Some("text/plain"), None, JSON_BODY.as_bytes(), &limits).unwrap_err();
        assert_eq!(err.status(), 415);
        assert!(err.to_string().contains("text/plain"), "{err}");
    }

    #[test]
    fn protobuf_under_gzip_is_decompressed_twice() {
        use std::io::Write;
        let want = vec![stream(&[("app", "foo")], &[(5, "x", &[("k", "v")])])];
        let pb = proto::encode(&want);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&pb).unwrap();
        let body = gz.finish().unwrap();
        let got = decode_push(
            Some("application/x-protobuf"),
            Some("gzip"),
            &body,
            &PushLimits::default(),
        );
        assert_eq!(streams(got), Ok(want));
    }

    #[test]
    fn json_under_deflate_and_a_bomb_under_json() {
        use std::io::Write;
        let limits = PushLimits::default();
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        z.write_all(JSON_BODY.as_bytes()).unwrap();
        let body = z.finish().unwrap();
        let got = decode_push(Some("application/json"), Some("deflate"), &body, &limits);
        assert_eq!(
            streams(got),
            Ok(vec![stream(&[("app", "foo")], &[(1, "a", &[])])])
        );
        // 9 MiB of spaces (valid JSON whitespace) inflate past the 8 MiB limit.
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(b"{\"streams\":[]}").unwrap();
        gz.write_all(&vec![b' '; 9 << 20]).unwrap();
        let bomb = gz.finish().unwrap();
        let err = decode_push(Some("application/json"), Some("gzip"), &bomb, &limits).unwrap_err();
        assert!(matches!(err, PushError::TooLarge(_)), "{err}");
    }

    #[test]
    fn empty_requests_are_fine() {
        let limits = PushLimits::default();
        assert_eq!(
            decode_push(None, None, b"{}", &limits),
            Ok(Decoded::default())
        );
        assert_eq!(
            decode_push(None, None, br#"{"streams":[]}"#, &limits),
            Ok(Decoded::default())
        );
        assert_eq!(
            decode_push(
                Some("application/x-protobuf"),
                None,
                &proto::encode(&[]),
                &limits
            ),
            Ok(Decoded::default())
        );
        // An empty body is not a JSON document.
        assert_eq!(
            decode_push(None, None, b"", &limits).unwrap_err().status(),
            400
        );
    }

    #[test]
    fn status_codes() {
        assert_eq!(PushError::BadRequest("x".into()).status(), 400);
        let invalid = Violation::new(Rule::LineTooLong, "why".into()).refusing(3);
        assert_eq!(invalid.status(), 400);
        assert_eq!(invalid.to_string(), "why");
        assert_eq!(PushError::TooLarge("x".into()).status(), 413);
        assert_eq!(PushError::UnsupportedMediaType("x".into()).status(), 415);
        assert_eq!(PushError::TooLarge("why".into()).to_string(), "why");
    }

    mod props {
        use super::super::*;
        use proptest::prelude::*;

        fn arb_labels() -> impl Strategy<Value = Labels> {
            proptest::collection::vec(("[a-zA-Z_][a-zA-Z0-9_]{0,8}", "\\PC{1,12}"), 1..6)
                .prop_map(Labels::from_pairs)
        }

        fn arb_entry() -> impl Strategy<Value = PushEntry> {
            (
                // Mostly times in the shared range, so that round trips succeed; some anywhere.
                prop_oneof![
                    3 => crate::ingest::time_range::TIMESTAMP_NS_MIN..=crate::ingest::time_range::TIMESTAMP_NS_MAX,
                    1 => any::<i64>(),
                ],
                "\\PC{0,40}",
                proptest::collection::vec(("[a-z_]{1,6}", "\\PC{0,10}"), 0..3),
            )
                .prop_map(|(timestamp_ns, line, metadata)| PushEntry {
                    timestamp_ns,
                    line,
                    metadata,
                })
        }

        /// What decoding `streams` gives: them, unless a timestamp is outside the shared
        /// range, which refuses the whole request and counts all its entries.
        fn expected(streams: Vec<PushStream>) -> Result<Vec<PushStream>, PushError> {
            let all_in_range = streams
                .iter()
                .flat_map(|s| &s.entries)
                .all(|e| crate::ingest::time_range::in_range(e.timestamp_ns));
            if all_in_range {
                return Ok(streams);
            }
            let first = streams
                .iter()
                .flat_map(|s| s.entries.iter().map(move |e| (s, e)))
                .find(|(_, e)| !crate::ingest::time_range::in_range(e.timestamp_ns))
                .expect("one is out of range");
            let message = format!(
                "entry for stream '{}' has {}",
                validate::echo(&first.0.labels.to_string()),
                crate::ingest::time_range::OutOfRange {
                    ns: first.1.timestamp_ns
                }
            );
            let lines = streams.iter().map(|s| s.entries.len()).sum();
            Err(Violation::new(Rule::Other, message).refusing(lines))
        }

        fn arb_streams() -> impl Strategy<Value = Vec<PushStream>> {
            proptest::collection::vec(
                (arb_labels(), proptest::collection::vec(arb_entry(), 0..5))
                    .prop_map(|(labels, entries)| PushStream { labels, entries }),
                0..4,
            )
        }

        proptest! {
            #[test]
            fn arbitrary_bytes_never_panic(
                body in proptest::collection::vec(any::<u8>(), 0..512),
                ct in prop_oneof![Just(None), Just(Some("application/json")), Just(Some("application/x-protobuf"))],
                ce in prop_oneof![Just(None), Just(Some("gzip")), Just(Some("deflate")), Just(Some("identity"))],
            ) {
                let _ = decode_push(ct, ce, &body, &PushLimits::default());
            }

            #[test]
            fn arbitrary_protobuf_payloads_never_panic(payload in proptest::collection::vec(any::<u8>(), 0..512)) {
                // Valid snappy around random bytes, so that the protobuf decoder sees them.
                let body = snap::raw::Encoder::new().compress_vec(&payload).unwrap();
                let _ = decode_push(Some("application/x-protobuf"), None, &body, &PushLimits::default());
            }

            #[test]
            fn mutated_protobuf_requests_never_panic(streams in arb_streams(), at in any::<usize>(), byte in any::<u8>()) {
                let body = proto::encode(&streams);
                let mut raw = snap::raw::Decoder::new().decompress_vec(&body).unwrap();
                if !raw.is_empty() {
                    let i = at % raw.len();
                    raw[i] = byte;
                }
                let body = snap::raw::Encoder::new().compress_vec(&raw).unwrap();
                let _ = decode_push(Some("application/x-protobuf"), None, &body, &PushLimits::default());
            }

            #[test]
            fn json_like_bytes_never_panic(body in r#"\{"streams":\[\{"stream":\{"[a-z]{0,3}":"[a-z]{0,3}"\},"values":\[\["[0-9-]{0,4}","[a-z\\"]{0,4}"(,\{("[a-z]{0,2}":("[a-z]{0,2}"|1|null))?\})?\]\]\}\]\}"#) {
                let _ = decode_push(Some("application/json"), None, body.as_bytes(), &PushLimits::default());
            }

            #[test]
            fn roundtrip_protobuf(streams in arb_streams()) {
                let body = proto::encode(&streams);
                let got = decode_push(Some("application/x-protobuf"), None, &body, &PushLimits::default());
                prop_assert_eq!(got.map(|d| d.streams), expected(streams));
            }

            #[test]
            fn roundtrip_json(streams in arb_streams()) {
                let body = json::encode(&streams);
                let got = decode_push(Some("application/json"), None, &body, &PushLimits::default());
                prop_assert_eq!(got.map(|d| d.streams), expected(streams));
            }

            /// Both push formats accept exactly the same timestamps, those of the range every
            /// ingest path shares, wherever in i64 they fall.
            #[test]
            fn json_and_protobuf_accept_the_same_timestamps(
                ts in prop_oneof![
                    any::<i64>(),
                    crate::ingest::time_range::TIMESTAMP_NS_MIN - 1000..crate::ingest::time_range::TIMESTAMP_NS_MIN + 1000,
                    crate::ingest::time_range::TIMESTAMP_NS_MAX - 1000..crate::ingest::time_range::TIMESTAMP_NS_MAX + 1000,
                ],
            ) {
                let streams = vec![PushStream {
                    labels: Labels::from_pairs([("a", "b")]),
                    entries: vec![PushEntry { timestamp_ns: ts, line: "x".into(), metadata: vec![] }],
                }];
                let limits = PushLimits::default();
                let from_json = decode_push(Some("application/json"), None, &json::encode(&streams), &limits);
                let from_proto = decode_push(Some("application/x-protobuf"), None, &proto::encode(&streams), &limits);
                prop_assert_eq!(from_json.is_ok(), crate::ingest::time_range::in_range(ts));
                prop_assert_eq!(from_proto.is_ok(), crate::ingest::time_range::in_range(ts));
                if let Ok(got) = from_json {
                    prop_assert_eq!(got, from_proto.unwrap());
                }
            }
        }
    }
}

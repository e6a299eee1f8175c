//! JSON push bodies: `{"streams":[{"stream":{..},"values":[["<ns>","<line>",{..}]]}]}`.
//!
//! Which question it answers: "what does a JSON push (curl, Grafana Alloy's loki.write in
//! JSON mode, most hand-written clients) contain?" The body is deserialised straight into
//! entries by hand-written serde visitors: no `serde_json::Value` tree per line, one
//! allocation per line and per metadata string. Unknown fields are skipped. A timestamp is a
//! string of nanoseconds since the epoch, as Loki documents, or a JSON integer, which some
//! clients send. Structured metadata values must be strings. serde_json's messages carry the
//! line and column of the problem, which is what a client needs to find it.

use std::fmt;
use std::fmt::Write as _;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::validate::{self, display_pairs, echo};
use super::{Decoded, PushEntry, PushError, PushLimits, PushStream};

/// Bound on the capacity reserved from a sequence's size hint. serde_json gives no hint, but
/// other formats take it from the input; the input must not choose an allocation's size.
const RESERVE_ELEMENTS_MAX: usize = 4096;

/// Decodes and validates a JSON push body. The body is decoded whole before any stream is
/// validated, so a refusal counts every entry of the request.
pub fn decode(body: &[u8], limits: &PushLimits) -> Result<Decoded, PushError> {
    let request: Request = serde_json::from_slice(body)
        .map_err(|e| PushError::BadRequest(format!("cannot parse push request JSON: {e}")))?;
    let lines = request.streams.iter().map(|s| s.entries.len()).sum();
    let mut decoded = Decoded::default();
    decoded.streams.reserve(request.streams.len());
    for s in request.streams {
        let shown = display_pairs(&s.pairs);
        let stream = validate::stream(s.pairs, &shown, s.entries, limits, &mut decoded.truncated)
            .map_err(|v| v.refusing(lines))?;
        decoded.streams.push(stream);
    }
    Ok(decoded)
}

/// Encodes streams as a JSON push body, the inverse of [`decode`]: timestamps as strings,
/// metadata as a third element only when present. For tests, benchmarks and push clients.
pub fn encode(streams: &[PushStream]) -> Vec<u8> {
    let mut out = String::from(r#"{"streams":["#);
    for (i, s) in streams.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(r#"{"stream":{"#);
        for (j, (k, v)) in s.labels.pairs().iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            push_json_str(&mut out, k);
            out.push(':');
            push_json_str(&mut out, v);
        }
        out.push_str(r#"},"values":["#);
        for (j, e) in s.entries.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            let _ = write!(out, "[\"{}\",", e.timestamp_ns);
            push_json_str(&mut out, &e.line);
            if !e.metadata.is_empty() {
                out.push_str(",{");
                for (m, (k, v)) in e.metadata.iter().enumerate() {
                    if m > 0 {
                        out.push(',');
                    }
                    push_json_str(&mut out, k);
                    out.push(':');
                    push_json_str(&mut out, v);
                }
                out.push('}');
            }
            out.push(']');
        }
        out.push_str("]}");
    }
    out.push_str("]}");
    out.into_bytes()
}

fn push_json_str(out: &mut String, s: &str) {
    out.push_str(&serde_json::to_string(s).expect("a string always serialises"));
}

/// The request, as decoded before validation.
struct Request {
    streams: Vec<RawStream>,
}

/// One stream as sent: label pairs in the order written (duplicates kept for validation).
struct RawStream {
    pairs: Vec<(String, String)>,
    entries: Vec<PushEntry>,
}

/// The object keys this module knows; anything else is skipped.
enum Key {
    Streams,
    Stream,
    Values,
    Other,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Key, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
                Ok(match v {
                    "streams" => Key::Streams,
                    "stream" => Key::Stream,
                    "values" => Key::Values,
                    _ => Key::Other,
                })
            }
        }
        d.deserialize_identifier(V)
    }
}

impl<'de> Deserialize<'de> for Request {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Request, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Request;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(r#"a push request object {"streams":[...]}"#)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Request, A::Error> {
                let mut streams = Vec::new();
                while let Some(key) = map.next_key::<Key>()? {
                    match key {
                        Key::Streams => {
                            streams = map
                                .next_value::<Option<Streams>>()?
                                .map(|s| s.0)
                                .unwrap_or_default();
                        }
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(Request { streams })
            }
        }
        d.deserialize_map(V)
    }
}

struct Streams(Vec<RawStream>);

impl<'de> Deserialize<'de> for Streams {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Streams, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Streams;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an array of streams")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Streams, A::Error> {
                let mut out =
                    Vec::with_capacity(seq.size_hint().unwrap_or(0).min(RESERVE_ELEMENTS_MAX));
                while let Some(s) = seq.next_element::<RawStream>()? {
                    out.push(s);
                }
                Ok(Streams(out))
            }
        }
        d.deserialize_seq(V)
    }
}

impl<'de> Deserialize<'de> for RawStream {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<RawStream, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawStream;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(r#"a stream object {"stream":{...},"values":[...]}"#)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawStream, A::Error> {
                let mut pairs = Vec::new();
                let mut entries = Vec::new();
                while let Some(key) = map.next_key::<Key>()? {
                    match key {
                        Key::Stream => {
                            pairs = map
                                .next_value::<Option<StringMap<LabelValue>>>()?
                                .map(|m| m.0)
                                .unwrap_or_default();
                        }
                        Key::Values => {
                            entries = map
                                .next_value::<Option<Values>>()?
                                .map(|v| v.0)
                                .unwrap_or_default();
                        }
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(RawStream { pairs, entries })
            }
        }
        d.deserialize_map(V)
    }
}

/// A string that names what it is in type errors ("expected a string label value").
trait Named {
    const WHAT: &'static str;
}

/// A label value: the "stream" object's values must be strings.
struct LabelValue;
impl Named for LabelValue {
    const WHAT: &'static str = "a string label value";
}

/// A structured metadata value: strings only, as in Loki.
struct MetadataValue;
impl Named for MetadataValue {
    const WHAT: &'static str = "a string structured metadata value";
}

/// A log line.
struct LineValue;
impl Named for LineValue {
    const WHAT: &'static str = "a log line string";
}

/// A string whose type errors say what it is, per `N`.
struct NamedString<N>(String, std::marker::PhantomData<N>);

impl<'de, N: Named> Deserialize<'de> for NamedString<N> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<N>(std::marker::PhantomData<N>);
        impl<N: Named> Visitor<'_> for V<N> {
            type Value = NamedString<N>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(N::WHAT)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(NamedString(v.to_owned(), std::marker::PhantomData))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(NamedString(v, std::marker::PhantomData))
            }
        }
        d.deserialize_string(V(std::marker::PhantomData))
    }
}

/// A JSON object of string values, kept as pairs in the order written.
struct StringMap<N>(Vec<(String, String)>, std::marker::PhantomData<N>);

impl<'de, N: Named> Deserialize<'de> for StringMap<N> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<N>(std::marker::PhantomData<N>);
        impl<'de, N: Named> Visitor<'de> for V<N> {
            type Value = StringMap<N>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(f, "an object of {}s", N::WHAT.trim_start_matches("a "))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(k) = map.next_key::<String>()? {
                    let v = map.next_value::<NamedString<N>>()?;
                    out.push((k, v.0));
                }
                Ok(StringMap(out, std::marker::PhantomData))
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

struct Values(Vec<PushEntry>);

impl<'de> Deserialize<'de> for Values {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Values, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Values;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an array of entries")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Values, A::Error> {
                let mut out =
                    Vec::with_capacity(seq.size_hint().unwrap_or(0).min(RESERVE_ELEMENTS_MAX));
                while let Some(e) = seq.next_element::<Entry>()? {
                    out.push(e.0);
                }
                Ok(Values(out))
            }
        }
        d.deserialize_seq(V)
    }
}

struct Entry(PushEntry);

impl<'de> Deserialize<'de> for Entry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Entry, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Entry;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    r#"an entry ["<unix ns>", "<line>"] or ["<unix ns>", "<line>", {<metadata>}]"#,
                )
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Entry, A::Error> {
                let ts = seq
                    .next_element::<TimestampNs>()?
                    .ok_or_else(|| de::Error::invalid_length(0, &self))?;
                let line = seq
                    .next_element::<NamedString<LineValue>>()?
                    .ok_or_else(|| de::Error::invalid_length(1, &self))?;
                let metadata = seq
                    .next_element::<Option<StringMap<MetadataValue>>>()?
                    .flatten()
                    .map(|m| m.0)
                    .unwrap_or_default();
                if seq.next_element::<IgnoredAny>()?.is_some() {
                    return Err(de::Error::invalid_length(4, &self));
                }
                Ok(Entry(PushEntry {
                    timestamp_ns: ts.0,
                    line: line.0,
                    metadata,
                }))
            }
        }
        d.deserialize_seq(V)
    }
}

/// A timestamp in nanoseconds: a decimal string (Loki's documented form) or a JSON integer.
struct TimestampNs(i64);

impl<'de> Deserialize<'de> for TimestampNs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<TimestampNs, D::Error> {
        struct V;
        const WHAT: &str = "nanoseconds since the Unix epoch, as a string of digits";
        impl Visitor<'_> for V {
            type Value = TimestampNs;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(WHAT)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<TimestampNs, E> {
                v.parse::<i64>().map(TimestampNs).map_err(|_| {
                    E::custom(format!("invalid timestamp '{}': expected {WHAT}", echo(v)))
                })
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<TimestampNs, E> {
                Ok(TimestampNs(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<TimestampNs, E> {
                i64::try_from(v).map(TimestampNs).map_err(|_| {
                    E::custom(format!(
                        "invalid timestamp {v}: outside the accepted range {}",
                        crate::ingest::time_range::TIMESTAMP_RANGE_TEXT
                    ))
                })
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<TimestampNs, E> {
                // Integers beyond 2^64 and exponent forms (1.7e18) arrive as floats; accept
                // them when they are whole numbers in range.
                const LIMIT: f64 = 9.223_372_036_854_775e18;
                if v.fract() == 0.0 && (-LIMIT..LIMIT).contains(&v) {
                    Ok(TimestampNs(v as i64))
                } else {
                    Err(E::custom(format!("invalid timestamp {v}: expected {WHAT}")))
                }
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::push::{Rule, Truncated};
    use crate::model::Labels;

    fn decode_str(s: &str) -> Result<Vec<PushStream>, PushError> {
        decode(s.as_bytes(), &PushLimits::default()).map(|d| d.streams)
    }

    fn err(s: &str) -> String {
        match decode_str(s) {
            Err(e) if e.status() == 400 => e.to_string(),
            other => panic!("expected a 400 for {s}, got {other:?}"),
        }
    }

    fn md(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn decodes_entries_with_and_without_metadata() {
        let got = decode_str(
            r#"{"streams":[{"stream":{"job":"x","app":"foo"},"values":[
                ["1700000000000000001","plain line"],
                ["1700000000000000002","with md",{"trace_id":"abc","user":"u\"1"}],
                ["1700000000000000003","null md",null],
                ["1700000000000000004","empty md",{}]
            ]}]}"#,
        )
        .unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(
            got[0].labels,
            Labels::from_pairs([("app", "foo"), ("job", "x")])
        );
        let e = &got[0].entries;
        assert_eq!(e.len(), 4);
        assert_eq!(
            e[0],
            PushEntry {
                timestamp_ns: 1_700_000_000_000_000_001,
                line: "plain line".into(),
                metadata: vec![]
            }
        );
        assert_eq!(e[1].metadata, md(&[("trace_id", "abc"), ("user", "u\"1")]));
        assert!(e[2].metadata.is_empty() && e[3].metadata.is_empty());
    }

    #[test]
    fn numeric_timestamps_and_unknown_fields() {
        let got = decode_str(
            r#"{"extra":[1,{"a":2}],"streams":[{"hash":5,"stream":{"a":"b"},"values":[
                [1700000000000000000,"int"],[5,"small"],[1.7e18,"float"],["0","zero string"]
            ],"more":null}],"trailer":"x"}"#,
        )
        .unwrap();
        let ts: Vec<i64> = got[0].entries.iter().map(|e| e.timestamp_ns).collect();
        assert_eq!(
            ts,
            vec![1_700_000_000_000_000_000, 5, 1_700_000_000_000_000_000, 0]
        );
    }

    #[test]
    fn timestamps_outside_the_shared_range_are_refused() {
        use crate::ingest::time_range::{TIMESTAMP_NS_MAX, TIMESTAMP_NS_MIN};
        for ts in [
            i64::MIN.to_string(),
            "-1".to_string(),
            (TIMESTAMP_NS_MAX + 1).to_string(),
            i64::MAX.to_string(),
        ] {
            for quoted in [format!("\"{ts}\""), ts.clone()] {
                let body = format!(
                    r#"{{"streams":[{{"stream":{{"a":"b"}},"values":[[{quoted},"x"]]}}]}}"#
                );
                let m = err(&body);
                assert!(m.contains("outside the accepted range"), "{ts}: {m}");
            }
        }
        for ts in [TIMESTAMP_NS_MIN, TIMESTAMP_NS_MAX] {
            let body =
                format!(r#"{{"streams":[{{"stream":{{"a":"b"}},"values":[["{ts}","x"]]}}]}}"#);
            assert_eq!(decode_str(&body).unwrap()[0].entries[0].timestamp_ns, ts);
        }
    }

    #[test]
    fn wrong_types_say_what_was_expected() {
        let m = err(r#"{"streams":[{"stream":{"a":1},"values":[]}]}"#);
        assert!(
            m.contains("expected a string label value") && m.contains("line 1 column"),
            "{m}"
        );
        let m = err(r#"{"streams":[{"stream":{"a":"b"},"values":[["1",2]]}]}"#);
        assert!(m.contains("expected a log line string"), "{m}");
        let m = err(r#"{"streams":[{"stream":{"a":"b"},"values":[["1","x",{"k":5}]]}]}"#);
        assert!(
            m.contains("expected a string structured metadata value"),
            "{m}"
        );
        let m = err(r#"{"streams":[{"stream":{"a":"b"},"values":[["yesterday","x"]]}]}"#);
        assert!(m.contains("invalid timestamp 'yesterday'"), "{m}");
        let m = err(r#"{"streams":[{"stream":{"a":"b"},"values":[[1.5,"x"]]}]}"#);
        assert!(m.contains("invalid timestamp 1.5"), "{m}");
        let m = err(r#"{"streams":[{"stream":{"a":"b"},"values":[[18446744073709551615,"x"]]}]}"#);
        assert!(m.contains("outside the accepted range"), "{m}");
        let m = err(r#"{"streams":[{"stream":{"a":"b"},"values":[["1"]]}]}"#);
        assert!(m.contains("invalid length 1"), "{m}");
        let m = err(r#"{"streams":[{"stream":{"a":"b"},"values":[["1","x",{},4]]}]}"#);
        assert!(m.contains("invalid length 4"), "{m}");
        let m = err(r#"{"streams":{"stream":{}}}"#);
        assert!(m.contains("expected an array of streams"), "{m}");
        let m = err(r#"[]"#);
        assert!(m.contains("push request object"), "{m}");
    }

    #[test]
    fn malformed_json() {
        for body in [
            "",
            "{",
            r#"{"streams":[}"#,
            r#"{"streams":[]} trailing"#,
            "\u{feff}{}",
        ] {
            let m = err(body);
            assert!(
                m.starts_with("cannot parse push request JSON: "),
                "{body:?}: {m}"
            );
        }
        assert_eq!(
            decode(
                b"{\"streams\":[{\"stream\":{\"a\":\"\xff\"}}]}",
                &PushLimits::default()
            )
            .unwrap_err()
            .status(),
            400
        );
    }

    #[test]
    fn validation_applies() {
        let m = err(r#"{"streams":[{"stream":{},"values":[["1","x"]]}]}"#);
        assert!(m.contains("at least one label pair is required"), "{m}");
        let m = err(r#"{"streams":[{"values":[["1","x"]]}]}"#);
        assert!(m.contains("at least one label pair is required"), "{m}");
        let m = err(r#"{"streams":[{"stream":{"a-b":"x"}}]}"#);
        assert!(m.contains("error parsing labels '{a-b=\"x\"}'"), "{m}");
        let m = err(r#"{"streams":[{"stream":{"a":"x","a":"y"}}]}"#);
        assert!(m.contains("duplicate label name: 'a'"), "{m}");
        let long = "x".repeat(300);
        let m = decode(
            format!(r#"{{"streams":[{{"stream":{{"a":"b"}},"values":[["1","{long}"]]}}]}}"#)
                .as_bytes(),
            &PushLimits {
                line_bytes_max: 299,
                ..PushLimits::default()
            },
        )
        .unwrap_err()
        .to_string();
        assert!(
            m.starts_with("Max entry size '299' bytes exceeded for stream '{a=\"b\"}'"),
            "{m}"
        );
    }

    /// A refusal names its rule and counts every entry of the request, those of the
    /// streams before and after the one that broke the rule too: none is stored.
    #[test]
    fn refusals_count_every_entry_of_the_request() {
        let body = r#"{"streams":[
            {"stream":{"a":"1"},"values":[["1","x"],["2","y"]]},
            {"stream":{"a":"2","a":"3"},"values":[["1","x"]]},
            {"stream":{"a":"4"},"values":[["1","x"],["2","y"],["3","z"]]}
        ]}"#;
        match decode_str(body) {
            Err(PushError::Invalid { violation, lines }) => {
                assert_eq!(violation.rule, Rule::DuplicateLabelNames);
                assert_eq!(lines, 6);
            }
            other => panic!("{other:?}"),
        }
        // A body that does not parse has no entries to count.
        assert!(matches!(
            decode_str(r#"{"streams":[{"stream":{"a":"1"},"values":[["1","x"]"#),
            Err(PushError::BadRequest(_))
        ));
    }

    #[test]
    fn long_lines_cut_to_fit_are_counted() {
        let body = r#"{"streams":[{"stream":{"a":"b"},"values":[["1","0123456789"],["2","01"]]}]}"#;
        let limits = PushLimits {
            line_bytes_max: 4,
            truncate_long_lines: true,
            ..PushLimits::default()
        };
        let d = decode(body.as_bytes(), &limits).unwrap();
        assert_eq!(d.truncated, Truncated { lines: 1, bytes: 6 });
        assert_eq!(d.streams[0].entries[0].line, "0123");
    }

    #[test]
    fn escapes_in_lines_roundtrip() {
        let s = vec![PushStream {
            labels: Labels::from_pairs([("a", "q\"\\")]),
            entries: vec![PushEntry {
                timestamp_ns: 3,
                line: "tab\tnl\n\u{1}é".into(),
                metadata: md(&[("k", "\"")]),
            }],
        }];
        assert_eq!(
            decode(&encode(&s), &PushLimits::default()).map(|d| d.streams),
            Ok(s)
        );
    }
}

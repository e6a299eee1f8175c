//! The body of a Prometheus remote write 1.0 request: recording rules' samples as
//! `prompb.WriteRequest`, protobuf in a raw snappy block.
//!
//! Which question it answers: "what bytes does Prometheus (or Mimir) store these samples
//! from?" The messages are declared by hand with prost's derive macros, with the field numbers
//! of Prometheus' `prompb/remote.proto` and `prompb/types.proto` (the fields of 1.0 only):
//!
//! ```text
//! message WriteRequest { repeated TimeSeries timeseries = 1; }
//! message TimeSeries   { repeated Label labels = 1; repeated Sample samples = 2; }
//! message Label        { string name = 1; string value = 2; }
//! message Sample       { double value = 1; int64 timestamp = 2; }   // timestamp in Unix ms
//! ```
//!
//! The specification requires each series' labels sorted by name, without repeats, `__name__`
//! among them; a label named twice keeps its last value and a label with an empty value is
//! left out, as Prometheus' label builder does (an empty value means "no such label"). The
//! body is compressed with snappy's block format, not its framed format, and sent with
//! `Content-Encoding: snappy`, `Content-Type: application/x-protobuf` and
//! `X-Prometheus-Remote-Write-Version: 0.1.0` ([`HEADERS`]).

use prost::Message;

use super::outbox::Series;

/// The headers remote write 1.0 requires beside the body.
pub const HEADERS: [(&str, &str); 3] = [
    ("Content-Encoding", "snappy"),
    ("Content-Type", "application/x-protobuf"),
    ("X-Prometheus-Remote-Write-Version", "0.1.0"),
];

/// Samples one request carries at most (Prometheus' `max_samples_per_send` default), so that
/// a receiver's body limit is never reached by a large evaluation.
pub const SAMPLES_PER_REQUEST_MAX: usize = 2000;

/// `prometheus.WriteRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRequest {
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
}

/// `prometheus.TimeSeries`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
}

/// `prometheus.Label`.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Label {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `prometheus.Sample`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Sample {
    #[prost(double, tag = "1")]
    pub value: f64,
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

/// The `WriteRequest` for `series`, labels in the order the specification requires.
pub fn write_request(series: &[Series]) -> WriteRequest {
    WriteRequest {
        timeseries: series
            .iter()
            .map(|s| TimeSeries {
                labels: sorted_labels(&s.labels),
                samples: s
                    .samples
                    .iter()
                    .map(|&(timestamp, value)| Sample { value, timestamp })
                    .collect(),
            })
            .collect(),
    }
}

/// The compressed body for `series`.
pub fn encode(series: &[Series]) -> Vec<u8> {
    let bytes = write_request(series).encode_to_vec();
    snap::raw::Encoder::new()
        .compress_vec(&bytes)
        .expect("snappy compresses any input below 4 GiB")
}

/// Labels sorted by name, a repeated name keeping its last value, empty values left out.
fn sorted_labels(pairs: &[(String, String)]) -> Vec<Label> {
    let mut labels: Vec<Label> = Vec::with_capacity(pairs.len());
    // A stable sort keeps repeats in their given order, so the last of a run is the last
    // given.
    let mut order: Vec<&(String, String)> = pairs.iter().collect();
    order.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, value) in order {
        match labels.last_mut() {
            Some(last) if last.name == *name => last.value = value.clone(),
            _ => labels.push(Label {
                name: name.clone(),
                value: value.clone(),
            }),
        }
    }
    labels.retain(|l| !l.value.is_empty());
    labels
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    fn decode(body: &[u8]) -> WriteRequest {
        let raw = snap::raw::Decoder::new().decompress_vec(body).unwrap();
        WriteRequest::decode(raw.as_slice()).unwrap()
    }

    #[test]
    fn a_body_decodes_back_with_sorted_labels_and_its_samples() {
        let series = vec![
            Series {
                labels: pairs(&[
                    ("job", "api"),
                    ("__name__", "errors:rate1m"),
                    ("env", "prod"),
                ]),
                samples: vec![(1_000, 0.5), (2_000, f64::INFINITY)],
            },
            Series {
                labels: pairs(&[("__name__", "lines:count")]),
                samples: vec![(-5, -1.25)],
            },
        ];
        let request = decode(&encode(&series));
        assert_eq!(request.timeseries.len(), 2);
        let names: Vec<(&str, &str)> = request.timeseries[0]
            .labels
            .iter()
            .map(|l| (l.name.as_str(), l.value.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("__name__", "errors:rate1m"),
                ("env", "prod"),
                ("job", "api")
            ]
        );
        assert_eq!(
            request.timeseries[0].samples,
            [
                Sample {
                    value: 0.5,
                    timestamp: 1_000
                },
                Sample {
                    value: f64::INFINITY,
                    timestamp: 2_000
                }
            ]
        );
        assert_eq!(request.timeseries[1].samples[0].timestamp, -5);
        assert_eq!(request.timeseries[1].samples[0].value, -1.25);
    }

    #[test]
    fn field_numbers_and_wire_types_are_those_of_prompb() {
        let series = vec![Series {
            labels: pairs(&[("a", "b")]),
            samples: vec![(3, 1.0)],
        }];
        let bytes = write_request(&series).encode_to_vec();
        // WriteRequest.timeseries = 1, length-delimited (0x0a); inside, TimeSeries.labels = 1
        // (0x0a) holding Label name = 1 (0x0a) "a" and value = 2 (0x12) "b"; then
        // TimeSeries.samples = 2 (0x12) holding value = 1 as a double (0x09) and timestamp =
        // 2 as a varint (0x10).
        let expected = [
            0x0a, 0x15, // timeseries, 21 bytes
            0x0a, 0x06, 0x0a, 0x01, b'a', 0x12, 0x01, b'b', // labels
            0x12, 0x0b, 0x09, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f, 0x10, 0x03, // samples
        ];
        assert_eq!(bytes, expected);
    }

    #[test]
    fn repeated_names_keep_the_last_value_and_empty_values_are_left_out() {
        let labels = sorted_labels(&pairs(&[
            ("b", "1"),
            ("__name__", "m"),
            ("b", "2"),
            ("empty", ""),
            ("a", "x"),
        ]));
        let got: Vec<(&str, &str)> = labels
            .iter()
            .map(|l| (l.name.as_str(), l.value.as_str()))
            .collect();
        assert_eq!(got, [("__name__", "m"), ("a", "x"), ("b", "2")]);
    }

    #[test]
    fn the_body_is_a_raw_snappy_block_not_the_framed_format() {
        let series = vec![Series {
            labels: pairs(&[("__name__", "m")]),
            samples: (0..500).map(|i| (i, i as f64)).collect(),
        }];
        let body = encode(&series);
        let plain = write_request(&series).encode_to_vec();
        // The block format starts with the uncompressed length as a varint; the framed
        // format would start with its stream identifier chunk (0xff).
        assert_ne!(body[0], 0xff);
        assert_eq!(
            snap::raw::decompress_len(&body).unwrap(),
            plain.len(),
            "the block header holds the uncompressed length"
        );
        assert!(body.len() < plain.len());
        assert_eq!(decode(&body), write_request(&series));
    }
}

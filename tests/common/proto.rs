//! Loki's push protobuf (`logproto.PushRequest`), declared by hand with `prost` so that no
//! `protoc` is needed, and the raw snappy block compression Loki clients wrap it in.
//!
//! Field numbers follow Loki's `pkg/push/push.proto`: `PushRequest.streams = 1`;
//! `StreamAdapter.labels = 1, entries = 2, hash = 3`; `EntryAdapter.timestamp = 1,
//! line = 2, structuredMetadata = 3`; `LabelPairAdapter.name = 1, value = 2`;
//! `google.protobuf.Timestamp.seconds = 1, nanos = 2`.
//!
//! Declared here again on purpose, not imported from the server's `ingest::push::proto`: a
//! client that shares the server's declarations would mirror a wrong field number instead of
//! catching it.

#[derive(Clone, PartialEq, prost::Message)]
pub struct PushRequest {
    #[prost(message, repeated, tag = "1")]
    pub streams: Vec<StreamAdapter>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct StreamAdapter {
    /// The label set in LogQL selector syntax: `{app="x", env="y"}`.
    #[prost(string, tag = "1")]
    pub labels: String,
    #[prost(message, repeated, tag = "2")]
    pub entries: Vec<EntryAdapter>,
    #[prost(uint64, tag = "3")]
    pub hash: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct EntryAdapter {
    #[prost(message, optional, tag = "1")]
    pub timestamp: Option<Timestamp>,
    #[prost(string, tag = "2")]
    pub line: String,
    #[prost(message, repeated, tag = "3")]
    pub structured_metadata: Vec<LabelPairAdapter>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct LabelPairAdapter {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Timestamp {
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

impl EntryAdapter {
    /// An entry at `ts_ns` nanoseconds since the epoch, with structured metadata pairs.
    pub fn new(ts_ns: i64, line: &str, metadata: &[(&str, &str)]) -> EntryAdapter {
        EntryAdapter {
            timestamp: Some(Timestamp {
                seconds: ts_ns.div_euclid(1_000_000_000),
                nanos: ts_ns.rem_euclid(1_000_000_000) as i32,
            }),
            line: line.to_string(),
            structured_metadata: metadata
                .iter()
                .map(|(name, value)| LabelPairAdapter {
                    name: name.to_string(),
                    value: value.to_string(),
                })
                .collect(),
        }
    }
}

/// The request encoded and compressed with raw (block) snappy, as
/// `Content-Type: application/x-protobuf` bodies are.
pub fn encode_snappy(request: &PushRequest) -> Vec<u8> {
    let bytes = prost::Message::encode_to_vec(request);
    snap::raw::Encoder::new()
        .compress_vec(&bytes)
        .expect("snappy compresses any input below 4 GiB")
}

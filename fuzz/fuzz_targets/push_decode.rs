//! Loki push body decoding and validation on arbitrary bytes, as `POST /loki/api/v1/push`
//! takes them: the first byte picks the content type (JSON, protobuf in raw snappy, or none,
//! where the body's first byte decides) and whether the body is taken as gzip. Any result is
//! fine except a panic, a hang or an unbounded allocation.

#![no_main]

use std::hint::black_box;

use libfuzzer_sys::fuzz_target;
use shardlog::ingest::push::{PushLimits, decode_push};

fuzz_target!(|data: &[u8]| {
    let Some((&first, body)) = data.split_first() else {
        return;
    };
    let content_type = match first % 3 {
        0 => Some("application/json"),
        1 => Some("application/x-protobuf"),
        _ => None,
    };
    let content_encoding = (first & 4 != 0).then_some("gzip");
    let limits = PushLimits {
        body_bytes_max: 1 << 20,
        ..PushLimits::default()
    };
    match decode_push(content_type, content_encoding, body, &limits) {
        Ok(decoded) => {
            black_box(decoded);
        }
        Err(e) => {
            black_box(e.to_string());
        }
    }
});

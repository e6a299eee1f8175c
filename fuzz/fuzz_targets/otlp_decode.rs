//! OTLP logs request decoding and Loki's mapping on arbitrary bytes, as `POST /otlp/v1/logs`
//! takes them: the first byte picks protobuf or JSON and whether the body is taken as gzip,
//! the rest is the body. A request that decodes is mapped to streams under the default
//! limits, and its answer encoded. Any result is fine except a panic, a hang or an unbounded
//! allocation (the body limit holds after decompression).

#![no_main]

use std::hint::black_box;

use libfuzzer_sys::fuzz_target;
use shardlog::ingest::otlp::mapping::map_request;
use shardlog::ingest::otlp::{Encoding, decode, success_body};
use shardlog::ingest::push::PushLimits;

const BODY_BYTES_MAX: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let Some((&first, body)) = data.split_first() else {
        return;
    };
    let encoding = if first & 1 == 0 {
        Encoding::Protobuf
    } else {
        Encoding::Json
    };
    let content_encoding = (first & 2 != 0).then_some("gzip");
    match decode(encoding, content_encoding, body, BODY_BYTES_MAX) {
        Ok(request) => {
            let mapped = map_request(request, 1_700_000_000_000_000_000, &PushLimits::default());
            black_box(success_body(encoding, &mapped.rejected));
            black_box(mapped);
        }
        Err(e) => {
            black_box(e.to_string());
        }
    }
});

//! WAL record decoding on arbitrary bytes, as replay reads a segment: a record at every
//! offset, and the batch body of each record that decodes. Any result is fine except a panic,
//! a hang or an unbounded allocation.

#![no_main]

use std::hint::black_box;

use libfuzzer_sys::fuzz_target;
use shardlog::model::BatchReader;
use shardlog::wal::decode_record;

fuzz_target!(|data: &[u8]| {
    for offset in 0..data.len() {
        match decode_record(data, offset) {
            Ok(Some((header, body))) => {
                assert_eq!(body.len(), header.body_len as usize);
                if let Ok(reader) = BatchReader::new(body) {
                    for item in reader {
                        black_box(&item);
                    }
                }
            }
            Ok(None) => {}
            Err(e) => {
                black_box(e.to_string());
            }
        }
    }
});

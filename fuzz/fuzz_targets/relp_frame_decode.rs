//! RELP frame decoding on arbitrary bytes, as a session reads them: the bytes arrive in two
//! reads split where the first byte says, the decoder's limit is small enough for over-long
//! frames to be cut, and every `open` frame's offers are parsed. Any result is fine except a
//! panic, a hang, a frame outside the buffer or a decode that consumes nothing.

#![no_main]

use libfuzzer_sys::fuzz_target;
use shardlog::ingest::relp::frame::{Decoded, RelpDecoder, parse_offers};

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let split = usize::from(first) % (rest.len() + 1);
    let mut decoder = RelpDecoder::new(64 + usize::from(first));
    let mut buffer: Vec<u8> = Vec::new();
    for chunk in [&rest[..split], &rest[split..]] {
        buffer.extend_from_slice(chunk);
        loop {
            match decoder.decode(&buffer) {
                Decoded::Frame(frame) => {
                    assert!(frame.consumed > 0 && frame.consumed <= buffer.len());
                    if frame.command == b"open" {
                        let _ = parse_offers(frame.data);
                    }
                    let consumed = frame.consumed;
                    buffer.drain(..consumed);
                }
                Decoded::Skipped { consumed } => {
                    assert!(consumed > 0 && consumed <= buffer.len());
                    buffer.drain(..consumed);
                }
                Decoded::NeedMore => {
                    assert!(buffer.len() < decoder.buffer_bytes_min());
                    break;
                }
                Decoded::Invalid(_) => return,
            }
        }
    }
});

//! Manifest decoding on arbitrary bytes, as a shard's start reads it. Any result is fine
//! except a panic, a hang or an unbounded allocation; a manifest that decodes must encode
//! back to bytes that decode to the same manifest.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use shardlog::store::manifest::Manifest;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Manifest::decode(data, Path::new("manifest")) {
        let again = Manifest::decode(&m.encode(), Path::new("manifest")).expect("re-decodes");
        assert_eq!(again, m);
    }
});

//! A needle query over one part of the ten loghub files, written the way format version 1's
//! compaction wrote them and the way version 2's cold compaction writes them:
//! `cargo run --release --example needle_speed [BLOCK_BYTES]`.
//!
//! For each needle, every block's bloom is probed; the blocks that may hold it are decoded and
//! their lines searched. Prints bytes, blocks decoded and time per query, best of 20 runs.

use std::path::Path;
use std::time::{Duration, Instant};

use rkyv::util::AlignedVec;
use shardlog::chunk::{
    DecodedBlock, EntryInput, LineTemplates, PartReader, PartWriterOptions, StreamBlockInput,
    encode_part, tokens::NeedleProbe,
};
use shardlog::model::{Labels, stream_hash};

const NEEDLES: &[&str] = &[
    "blk_-1608999687919862906",
    "PacketResponder",
    "Failed password",
    "authentication failure",
    "NullPointerException",
    "session opened",
];

fn main() {
    let block: usize = std::env::args()
        .nth(1)
        .map_or(1 << 20, |b| b.parse().expect("block bytes"));
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/loghub");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("the corpus")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    files.sort();
    let texts: Vec<String> = files
        .iter()
        .map(|p| std::fs::read_to_string(p).expect("a file"))
        .collect();
    let labels: Vec<Labels> = files
        .iter()
        .map(|p| Labels::from_pairs([("app", p.file_stem().unwrap().to_str().unwrap())]))
        .collect();
    let entries: Vec<Vec<EntryInput<'_>>> = texts
        .iter()
        .map(|t| {
            t.lines()
                .enumerate()
                .map(|(i, l)| (i as i64 * 1_000_000, l, &[][..]))
                .collect()
        })
        .collect();
    let inputs: Vec<StreamBlockInput<'_>> = labels
        .iter()
        .zip(&entries)
        .map(|(l, e)| StreamBlockInput {
            stream_id: stream_hash("fake", l),
            tenant: "fake",
            labels: l,
            entries: e,
        })
        .collect();
    let v1 = PartWriterOptions {
        zstd_level: 9,
        block_bytes_target: block,
        bloom_bits_per_gram: 3.25,
        bloom_hashes: 2,
        line_templates: LineTemplates::Off,
    };
    let v2 = PartWriterOptions {
        zstd_level: 19,
        block_bytes_target: block,
        line_templates: LineTemplates::Auto,
        ..PartWriterOptions::default()
    };
    let v2_plain = PartWriterOptions {
        line_templates: LineTemplates::Off,
        ..v2
    };
    for (name, opts) in [
        ("v2 cold without templates (zstd 19, 2 bits k=1)", v2_plain),
        ("v1 compaction (zstd 9, 3.25 bits k=2, no templates)", v1),
        ("v2 cold (zstd 19, 2 bits k=1, templates)", v2),
    ] {
        let bytes = encode_part(&inputs, &opts).expect("encode");
        let mut buf = AlignedVec::<16>::with_capacity(bytes.len());
        buf.extend_from_slice(&bytes);
        let reader = PartReader::open(&buf, Path::new("p")).expect("open");
        println!(
            "{name}: {} bytes, {} blocks",
            bytes.len(),
            reader.blocks().len()
        );
        let mut block_buf = DecodedBlock::new();
        for needle in NEEDLES {
            let probe = NeedleProbe::new(needle.as_bytes()).expect("a needle");
            let mut best = Duration::MAX;
            let (mut decoded, mut found) = (0, 0);
            for _ in 0..20 {
                let start = Instant::now();
                (decoded, found) = (0, 0);
                for i in 0..reader.blocks().len() {
                    if reader.bloom(i).is_some_and(|b| !probe.may_occur(&b)) {
                        continue;
                    }
                    decoded += 1;
                    reader
                        .decode_block_into(i, &mut block_buf)
                        .expect("a block");
                    found += (0..block_buf.len())
                        .filter(|&j| memchr_find(block_buf.line_bytes(j), needle.as_bytes()))
                        .count();
                }
                best = best.min(start.elapsed());
            }
            println!(
                "  {needle:<28} {found:>5} lines, {decoded:>3} blocks decoded, {:>8.2} ms",
                best.as_secs_f64() * 1e3
            );
        }
    }
}

fn memchr_find(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

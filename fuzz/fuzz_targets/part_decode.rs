//! Part file decoding on arbitrary bytes: opening (footer, header, metadata checksum, rkyv
//! validation, every field against its limit) and decoding every block must give `Ok` or an
//! error, never a panic, a hang or an unbounded allocation.
//!
//! Random bytes almost never pass the checksums, so the first input byte chooses a mode: even
//! feeds the rest as is; odd first recomputes every checksum the rest claims to have (header,
//! bloom region, metadata, footer, and then each block's crc inside the archive), so that
//! mutations of a seed part reach the structural checks and the block body parser behind them.
//! A first byte with bit 1 set feeds the rest to the block body parser directly (behind zstd
//! and the crcs, mutations of a part rarely make a body that differs): two bytes of entry
//! count, four of line bytes, then the body, of format version 1 + (bits 2 and 3 as a number):
//! 1, 2 (the line layouts and templates of version 2), 3 (as 2 inside bodies) or 4 (the
//! timestamp layouts).
//!
//! A first byte with bit 3 set (and bit 1 clear) feeds the rest to the metadata index alone
//! (format version 3): the rest is its entries, and the directory is built for them with
//! true crcs, so that lookups reach the order and block-number checks.

#![no_main]

use std::hint::black_box;
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use rkyv::util::AlignedVec;
use shardlog::chunk::{
    DecodedBlock, PART_FOOTER_BYTES, PART_HEADER_BYTES, PartFooter, PartReader, fuzz_parse_body,
    pairs,
};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 2 == 2 {
        if rest.len() >= 6 {
            let entries = usize::from(u16::from_le_bytes([rest[0], rest[1]]));
            let lines_bytes = u64::from(u32::from_le_bytes(rest[2..6].try_into().unwrap()));
            let version = 1 + u32::from((mode >> 2) & 3);
            black_box(fuzz_parse_body(&rest[6..], version, entries, lines_bytes));
        }
        return;
    }
    if mode & 8 == 8 {
        pair_index(rest);
        return;
    }
    let mut buf = AlignedVec::<16>::with_capacity(rest.len());
    buf.extend_from_slice(rest);
    if mode & 1 == 1 {
        fix_file_checksums(&mut buf);
        fix_block_checksums(&mut buf);
    }
    exercise(&buf);
});

fn exercise(buf: &[u8]) {
    let path = Path::new("fuzz.part");
    let Ok(reader) = PartReader::open(buf, path) else {
        return;
    };
    let mut block = DecodedBlock::new();
    for i in 0..reader.blocks().len() {
        if let Some(bloom) = reader.bloom(i) {
            black_box(bloom.may_contain_gram(0x6f6f_6f66));
        }
        if reader.decode_block_into(i, &mut block).is_ok() {
            for e in block.iter() {
                black_box((e.ts, e.line.len()));
                for (k, v) in e.metadata.iter() {
                    black_box((k.len(), v.len()));
                }
            }
        }
    }
    // The metadata index: lookups of a few keys, among them the first key of every page.
    let f = *reader.footer();
    let mut keys = vec![0, u32::MAX, pairs::escape_key(), pairs::pair_key("trace_id", "abc")];
    if f.pair_entries > 0 {
        let at = f.pairs_offset as usize;
        keys.extend((0..f.pair_entries as usize).step_by(512).map(|e| {
            u32::from_le_bytes(buf[at + e * 8..at + e * 8 + 4].try_into().unwrap())
        }));
    }
    for key in keys {
        black_box(reader.pair_blocks(key).ok());
    }
    for from in [f.tail_offset_with_blooms(), f.tail_offset_meta_only()] {
        let tail = PartReader::open_tail(&buf[from as usize..], from, path);
        assert!(
            tail.is_ok(),
            "the tail of a part that opens whole opens too"
        );
    }
}

fn put_crc(buf: &mut [u8], at: usize, range: std::ops::Range<usize>) {
    let crc = crc32c::crc32c(&buf[range]);
    buf[at..at + 4].copy_from_slice(&crc.to_le_bytes());
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// Recomputes the header, bloom, metadata and footer checksums where the footer's offsets
/// are in range.
fn fix_file_checksums(buf: &mut [u8]) {
    let len = buf.len();
    if len < PART_HEADER_BYTES + PART_FOOTER_BYTES {
        return;
    }
    put_crc(buf, 60, 0..60);
    let foot = len - PART_FOOTER_BYTES;
    let bloom_offset = le_u64(buf, foot) as usize;
    let meta_offset = le_u64(buf, foot + 8) as usize;
    let meta_len = le_u64(buf, foot + 16) as usize;
    if bloom_offset <= meta_offset && meta_offset <= foot {
        put_crc(buf, foot + 60, bloom_offset..meta_offset);
    }
    if meta_offset
        .checked_add(meta_len)
        .is_some_and(|end| end <= foot)
    {
        put_crc(buf, foot + 56, meta_offset..meta_offset + meta_len);
    }
    // Version 3: the metadata index's page crcs (in its directory) and the directory's crc.
    if u32::from_le_bytes(buf[foot + 88..foot + 92].try_into().unwrap()) >= 3 {
        let pairs_offset = le_u64(buf, foot + 64) as usize;
        let entries = u32::from_le_bytes(buf[foot + 72..foot + 76].try_into().unwrap()) as usize;
        let pages = entries.div_ceil(512);
        let dir = pairs_offset.saturating_add(entries.saturating_mul(8));
        if pairs_offset > 0 && dir.saturating_add(pages * 8) <= bloom_offset.min(foot) {
            for p in 0..pages {
                let start = pairs_offset + p * 4096;
                let end = (start + 4096).min(dir);
                put_crc(buf, dir + p * 8 + 4, start..end);
            }
            put_crc(buf, foot + 76, dir..dir + pages * 8);
        }
    }
    put_crc(buf, foot + 92, foot..foot + 92);
}

/// The metadata index alone: `entries` as given, a directory with true first keys and crcs.
fn pair_index(entries: &[u8]) {
    let entries = &entries[..entries.len() / 8 * 8];
    let n = (entries.len() / 8) as u64;
    let mut dir = Vec::new();
    for page in entries.chunks(4096) {
        dir.extend_from_slice(&page[..4]);
        dir.extend_from_slice(&crc32c::crc32c(page).to_le_bytes());
    }
    let Ok(d) = pairs::PairDirectory::parse(&dir, 0, n, crc32c::crc32c(&dir)) else {
        return;
    };
    let keys = [0u32, u32::MAX, entries.first().map_or(0, |&b| u32::from(b))];
    for key in keys.into_iter().chain(entries.chunks(8).take(64).map(|e| {
        u32::from_le_bytes(e[..4].try_into().unwrap())
    })) {
        let pages = d.pages_for(key);
        let r = d.byte_range(&pages);
        let mut out = Vec::new();
        black_box(d.blocks_with(key, &pages, &entries[r.start as usize..r.end as usize], 1000, &mut out).is_ok());
    }
}

/// When the file opens, writes each block's true crc into its archived header and fixes the
/// metadata and footer checksums again.
fn fix_block_checksums(buf: &mut AlignedVec<16>) {
    let patches: Vec<(usize, u32)> = {
        let Ok(reader) = PartReader::open(buf, Path::new("fuzz.part")) else {
            return;
        };
        let base = buf.as_ptr() as usize;
        reader
            .blocks()
            .iter()
            .map(|b| {
                let start = b.offset.to_native() as usize;
                let end = start + b.compressed_len.to_native() as usize;
                let at = &b.crc32c as *const _ as usize - base;
                (at, crc32c::crc32c(&buf[start..end]))
            })
            .collect()
    };
    for (at, crc) in patches {
        buf[at..at + 4].copy_from_slice(&crc.to_le_bytes());
    }
    let len = buf.len();
    fix_file_checksums(&mut buf[..len]);
    let _ = PartFooter::decode(buf, len as u64, Path::new("fuzz.part"));
}

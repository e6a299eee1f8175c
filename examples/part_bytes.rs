//! Where the bytes of a data directory go: `cargo run --release --example part_bytes -- DIR`.
//!
//! With `PART_BYTES_BLOCKS=1` it also prints every block's entries and sizes.
//!
//! Walks `DIR/shards` (the WAL is not counted) and splits every part file into its regions:
//! header, data blocks, metadata index, blooms, metadata, alignment padding and footer, plus the manifests.
//! Inside the blocks, the columns are compressed alone at zstd level 3 to show their shares
//! (an estimate: in a block they share one zstd frame), and the block bytes are split in
//! those proportions.

use std::path::{Path, PathBuf};

use shardlog::chunk::{DecodedBlock, PART_FOOTER_BYTES, PART_HEADER_BYTES, PartReader};

#[derive(Default, Debug)]
struct Totals {
    parts: u64,
    files: u64,
    entries: u64,
    data_blocks: u64,
    header: u64,
    blocks: u64,
    blooms: u64,
    pairs: u64,
    meta: u64,
    padding: u64,
    footer: u64,
    manifest: u64,
    other: u64,
    /// Columns compressed alone: timestamps, line lengths, lines, metadata.
    col_ts: u64,
    col_len: u64,
    col_lines: u64,
    col_md: u64,
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(read) = std::fs::read_dir(dir) else {
        return;
    };
    for e in read.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push(p);
        }
    }
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn z(b: &[u8]) -> u64 {
    if b.is_empty() {
        return 0;
    }
    zstd::bulk::compress(b, 3).expect("zstd").len() as u64
}

fn part(path: &Path, t: &mut Totals) {
    let raw = std::fs::read(path).expect("read a part");
    // Aligned copy: the metadata is read in place.
    let mut words = vec![0u128; raw.len().div_ceil(16)];
    // SAFETY: u128 has no invalid bit patterns and the slice covers the allocation.
    let bytes =
        unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr() as *mut u8, words.len() * 16) };
    bytes[..raw.len()].copy_from_slice(&raw);
    let bytes = &bytes[..raw.len()];
    let reader = PartReader::open(bytes, path).expect("a valid part");
    let f = *reader.footer();
    let blocks_len = f.blocks_end() - PART_HEADER_BYTES as u64;
    // The metadata index (format 3) sits between the blocks and the blooms.
    let pairs_len = f.bloom_offset - f.blocks_end();
    let blooms_len = reader
        .blocks()
        .iter()
        .map(|b| u64::from(b.bloom_len.to_native()))
        .sum::<u64>();
    t.parts += 1;
    t.entries += f.entries;
    t.data_blocks += u64::from(f.blocks);
    t.header += PART_HEADER_BYTES as u64;
    t.blocks += blocks_len;
    t.blooms += blooms_len;
    t.pairs += pairs_len;
    t.meta += f.meta_len;
    t.footer += PART_FOOTER_BYTES as u64;
    t.padding += f.file_len
        - PART_HEADER_BYTES as u64
        - blocks_len
        - pairs_len
        - blooms_len
        - f.meta_len
        - PART_FOOTER_BYTES as u64;
    let mut block = DecodedBlock::new();
    for i in 0..reader.blocks().len() {
        reader.decode_block_into(i, &mut block).expect("a block");
        if std::env::var_os("PART_BYTES_BLOCKS").is_some() {
            let b = &reader.blocks()[i];
            println!(
                "block {i}: {} entries, {} B of lines, {} B of body, {} B compressed, first line {:?}",
                block.len(),
                b.lines_bytes.to_native(),
                b.uncompressed_bytes.to_native(),
                b.compressed_len.to_native(),
                block.line(0).chars().take(40).collect::<String>()
            );
        }
        let (mut ts, mut len, mut lines, mut md) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        shardlog::chunk::timestamps::encode_timestamps(block.timestamps(), &mut ts);
        for e in block.iter() {
            varint(&mut len, e.line.len() as u64);
            lines.extend_from_slice(e.line.as_bytes());
            varint(&mut md, e.metadata.len() as u64);
            for (k, v) in e.metadata.iter() {
                md.extend_from_slice(k.as_bytes());
                md.extend_from_slice(v.as_bytes());
            }
        }
        t.col_ts += z(&ts);
        t.col_len += z(&len);
        t.col_lines += z(&lines);
        t.col_md += z(&md);
    }
}

fn main() {
    let dir = std::env::args().nth(1).expect("usage: part_bytes DATA_DIR");
    let mut files = Vec::new();
    walk(&Path::new(&dir).join("shards"), &mut files);
    let mut t = Totals::default();
    for p in &files {
        t.files += 1;
        let size = std::fs::metadata(p).map_or(0, |m| m.len());
        let name = p.file_name().unwrap_or_default().to_string_lossy();
        if name.ends_with(".part") {
            part(p, &mut t);
        } else if name == "manifest" {
            t.manifest += size;
        } else {
            t.other += size;
        }
    }
    let total = t.header
        + t.blocks
        + t.pairs
        + t.blooms
        + t.meta
        + t.padding
        + t.footer
        + t.manifest
        + t.other;
    let cols = (t.col_ts + t.col_len + t.col_lines + t.col_md).max(1) as f64;
    let share = |c: u64| (t.blocks as f64 * c as f64 / cols).round() as u64;
    let per = |b: u64| b as f64 / t.entries.max(1) as f64;
    println!(
        "files {} parts {} blocks {} entries {}",
        t.files, t.parts, t.data_blocks, t.entries
    );
    let rows = [
        ("blocks", t.blocks),
        ("  timestamps (est.)", share(t.col_ts)),
        ("  line lengths (est.)", share(t.col_len)),
        ("  line text (est.)", share(t.col_lines)),
        ("  metadata (est.)", share(t.col_md)),
        ("metadata index", t.pairs),
        ("blooms", t.blooms),
        ("part metadata", t.meta),
        ("header", t.header),
        ("footer", t.footer),
        ("padding", t.padding),
        ("manifest", t.manifest),
        ("other files", t.other),
        ("total", total),
    ];
    for (what, b) in rows {
        println!("{what:<24} {b:>10} B {:>8.2} B/line", per(b));
    }
}

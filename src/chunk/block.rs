//! One data block: the encoder of its uncompressed body and [`DecodedBlock`], the reusable
//! buffer that a scan decodes blocks into. The body layout is in the [`super`] module doc.
//!
//! A decoded block keeps the decompressed body and offsets into it, so lines and metadata
//! are `&str` slices of one buffer: decoding a block allocates nothing once the buffer has
//! grown to the size of the largest block it has held.

use std::path::Path;

use super::lines::{LAYOUT_LENGTHS, LineTemplates, LinesIn, decode_lines, encode_lines};
use super::timestamps::{decode_timestamps, encode_timestamps};
use super::varint::{get_uvarint, put_uvarint, uvarint_len};
use super::{BLOCK_ENTRIES_MAX, ChunkError, METADATA_PAIRS_MAX};

/// The first format version whose templated lines may have clock slots (the `clock`
/// module); the same version brought the timestamp layouts.
const CLOCK_SLOTS_SINCE_VERSION: u32 = 4;

/// One entry as the writer takes it: timestamp (ns), line, structured metadata.
pub type EntryInput<'a> = (i64, &'a str, &'a [(&'a str, &'a str)]);

/// The least a body spends on one entry: one byte each of timestamp, length and metadata
/// count. A recorded entry count above `uncompressed_bytes / 3` is impossible.
pub(crate) const ENTRY_BYTES_MIN: usize = 3;

/// Bytes that an entry adds to a body, not counting its timestamp (which depends on the
/// previous one); the writer uses it to cut blocks at their target size.
pub(crate) fn entry_body_bytes(line: &str, metadata: &[(&str, &str)]) -> usize {
    let pairs: usize = metadata
        .iter()
        .map(|(k, v)| uvarint_len(k.len() as u64) + k.len() + uvarint_len(v.len() as u64) + v.len())
        .sum();
    uvarint_len(line.len() as u64) + line.len() + uvarint_len(metadata.len() as u64) + pairs
}

/// Appends the body of `entries` (sorted by time, at least one) to `out`, in the current
/// format version's layout; returns the sum of the line lengths.
pub(crate) fn encode_body(
    entries: &[EntryInput<'_>],
    templates: LineTemplates,
    out: &mut Vec<u8>,
) -> u64 {
    assert!(!entries.is_empty(), "a block holds at least one entry");
    let ts: Vec<i64> = entries.iter().map(|e| e.0).collect();
    encode_timestamps(&ts, out);
    let lines_bytes = entries.iter().map(|e| e.1.len() as u64).sum();
    encode_lines(
        entries.iter().map(|e| e.1),
        entries.len(),
        templates,
        &ts,
        out,
    );
    for &(_, _, md) in entries {
        put_uvarint(out, md.len() as u64);
    }
    for &(_, _, md) in entries {
        for (k, v) in md {
            put_uvarint(out, k.len() as u64);
            out.extend_from_slice(k.as_bytes());
            put_uvarint(out, v.len() as u64);
            out.extend_from_slice(v.as_bytes());
        }
    }
    lines_bytes
}

/// What the metadata says a block holds; the decoder checks the body against every field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BlockExpect {
    /// The part's format version: version 1 bodies have no line layout byte.
    pub version: u32,
    /// File offset of the compressed block, for error messages.
    pub offset: u64,
    pub crc32c: u32,
    pub entries: usize,
    pub uncompressed_bytes: usize,
    pub lines_bytes: u64,
    pub min_ts: i64,
    pub max_ts: i64,
}

/// A decoded block: timestamps, lines and metadata of its entries, borrowed from one
/// decompressed buffer. Create one per scan (or take one from a pool) and pass it to
/// [`super::PartReader::decode_block_into`] for every block: the buffers and the zstd
/// context are reused.
pub struct DecodedBlock {
    /// The decompressed body.
    body: Vec<u8>,
    /// Lines rebuilt from templates (see [`super::lines`]).
    text: Vec<u8>,
    /// Whether `lines` index `body` or `text`.
    lines_in: LinesIn,
    timestamps: Vec<i64>,
    /// `lines[i]` is the start and end of line `i` in `body` or `text`.
    lines: Vec<(u32, u32)>,
    /// `meta_offsets[i]..meta_offsets[i + 1]` are the indexes in `pairs` of entry `i`'s pairs.
    meta_offsets: Vec<u32>,
    /// Key start, key end, value start, value end, in `body`.
    pairs: Vec<[u32; 4]>,
    dctx: Option<zstd::bulk::Decompressor<'static>>,
}

/// One entry of a decoded block.
#[derive(Clone, Copy)]
pub struct Entry<'b> {
    pub ts: i64,
    pub line: &'b str,
    pub metadata: Metadata<'b>,
}

/// The structured metadata pairs of one entry.
#[derive(Clone, Copy)]
pub struct Metadata<'b> {
    block: &'b DecodedBlock,
    pairs: &'b [[u32; 4]],
}

impl<'b> Metadata<'b> {
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&'b str, &'b str)> + 'b {
        let block = self.block;
        self.pairs
            .iter()
            .map(move |&[ks, ke, vs, ve]| (block.str_at(ks, ke), block.str_at(vs, ve)))
    }

    /// The value of the first pair named `key`.
    pub fn get(&self, key: &str) -> Option<&'b str> {
        self.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }
}

impl std::fmt::Debug for Metadata<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl std::fmt::Debug for Entry<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("ts", &self.ts)
            .field("line", &self.line)
            .field("metadata", &self.metadata)
            .finish()
    }
}

impl Default for DecodedBlock {
    fn default() -> Self {
        DecodedBlock {
            body: Vec::new(),
            text: Vec::new(),
            lines_in: LinesIn::Body,
            timestamps: Vec::new(),
            lines: Vec::new(),
            meta_offsets: Vec::new(),
            pairs: Vec::new(),
            dctx: None,
        }
    }
}

impl DecodedBlock {
    pub fn new() -> DecodedBlock {
        DecodedBlock::default()
    }

    /// Entries in the block (0 before the first successful decode or after a failed one).
    pub fn len(&self) -> usize {
        self.timestamps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.timestamps.is_empty()
    }

    /// Timestamps in ns, ascending.
    pub fn timestamps(&self) -> &[i64] {
        &self.timestamps
    }

    /// Line `i`. Panics if `i >= len()`.
    pub fn line(&self, i: usize) -> &str {
        let bytes = self.line_bytes(i);
        // SAFETY: line ranges are only stored by `decode_lines`, which checked that the
        // region holding them is UTF-8 and that every range is on character boundaries;
        // neither buffer changes afterwards until `reset` clears the ranges, and every
        // failed decode calls `reset`.
        unsafe { std::str::from_utf8_unchecked(bytes) }
    }

    /// The bytes of line `i`, for filters that work on bytes. Panics if `i >= len()`.
    pub fn line_bytes(&self, i: usize) -> &[u8] {
        let (s, e) = self.lines[i];
        let buf = match self.lines_in {
            LinesIn::Body => &self.body,
            LinesIn::Text => &self.text,
        };
        &buf[s as usize..e as usize]
    }

    /// The metadata of entry `i`. Panics if `i >= len()`.
    pub fn metadata(&self, i: usize) -> Metadata<'_> {
        let (s, e) = (self.meta_offsets[i], self.meta_offsets[i + 1]);
        Metadata {
            block: self,
            pairs: &self.pairs[s as usize..e as usize],
        }
    }

    /// Entry `i`. Panics if `i >= len()`.
    pub fn entry(&self, i: usize) -> Entry<'_> {
        Entry {
            ts: self.timestamps[i],
            line: self.line(i),
            metadata: self.metadata(i),
        }
    }

    /// The entries in time order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = Entry<'_>> + '_ {
        (0..self.len()).map(|i| self.entry(i))
    }

    /// The byte length of line `i` (without touching its bytes). Panics if `i >= len()`.
    pub fn line_len(&self, i: usize) -> usize {
        let (s, e) = self.lines[i];
        (e - s) as usize
    }

    /// The structured metadata keys of every entry of the block, with repeats: a counting
    /// scan checks them once per block instead of once per line.
    pub fn metadata_keys(&self) -> impl Iterator<Item = &str> + '_ {
        self.pairs.iter().map(|p| self.str_at(p[0], p[1]))
    }

    /// The index of the first entry at or after `ts`.
    pub fn partition_point(&self, ts: i64) -> usize {
        self.timestamps.partition_point(|&t| t < ts)
    }

    fn str_at(&self, start: u32, end: u32) -> &str {
        let bytes = &self.body[start as usize..end as usize];
        // SAFETY: offsets are only stored by `parse_body`, which checked that every such range
        // lies in `body` on UTF-8 character boundaries of a region that `str::from_utf8`
        // validated; `body` is not changed afterwards until `reset` clears the offsets, and
        // every failed decode calls `reset`.
        unsafe { std::str::from_utf8_unchecked(bytes) }
    }

    fn reset(&mut self) {
        self.timestamps.clear();
        self.lines.clear();
        self.meta_offsets.clear();
        self.pairs.clear();
    }

    /// Checks `compressed` against `expect`, decompresses and parses it. On error the block
    /// is left empty.
    pub(crate) fn decode(
        &mut self,
        compressed: &[u8],
        expect: &BlockExpect,
        path: &Path,
    ) -> Result<(), ChunkError> {
        self.reset();
        let result = self.decode_inner(compressed, expect, path);
        if result.is_err() {
            self.reset();
        }
        result
    }

    fn decode_inner(
        &mut self,
        compressed: &[u8],
        expect: &BlockExpect,
        path: &Path,
    ) -> Result<(), ChunkError> {
        let crc = crc32c::crc32c(compressed);
        if crc != expect.crc32c {
            return Err(ChunkError::corrupt(
                path,
                expect.offset,
                format!(
                    "block checksum mismatch (stored {:#010x}, computed {crc:#010x})",
                    expect.crc32c
                ),
            ));
        }
        self.body.clear();
        self.body.reserve(expect.uncompressed_bytes);
        let dctx = self.dctx.get_or_insert_with(|| {
            zstd::bulk::Decompressor::new().expect("allocating a zstd decompression context")
        });
        // The output is bounded by the buffer's capacity, which is the recorded size (plus
        // whatever the allocator rounded up): a frame that claims or produces more fails here
        // or at the length check below, it never grows the buffer.
        dctx.decompress_to_buffer(compressed, &mut self.body)
            .map_err(|e| {
                ChunkError::corrupt(
                    path,
                    expect.offset,
                    format!("block does not decompress: {e}"),
                )
            })?;
        if self.body.len() != expect.uncompressed_bytes {
            return Err(ChunkError::corrupt(
                path,
                expect.offset,
                format!(
                    "block decompresses to {} bytes, its header says {}",
                    self.body.len(),
                    expect.uncompressed_bytes
                ),
            ));
        }
        let body = std::mem::take(&mut self.body);
        let parsed = self.parse_body(&body, expect);
        self.body = body;
        parsed.map_err(|what| ChunkError::corrupt(path, expect.offset, what))
    }

    /// Parses a decompressed body into the offset vectors. Errors say where in the body.
    fn parse_body(&mut self, b: &[u8], expect: &BlockExpect) -> Result<(), String> {
        let n = expect.entries;
        // Both were checked when the part was opened; asserted here because the
        // reservations below rely on them.
        assert!((1..=BLOCK_ENTRIES_MAX).contains(&n) && n * ENTRY_BYTES_MIN <= b.len());
        let mut pos = 0usize;
        let varint = |pos: &mut usize, what: &str| {
            let at = *pos;
            get_uvarint(b, pos).map_err(|e| format!("body byte {at}: bad {what} varint: {e:?}"))
        };

        decode_timestamps(b, &mut pos, expect.version, n, &mut self.timestamps)?;
        let (first, ts) = (self.timestamps[0], self.timestamps[n - 1]);
        if first != expect.min_ts {
            return Err(format!(
                "first timestamp {first} is not the block's min time {}",
                expect.min_ts
            ));
        }
        if ts != expect.max_ts {
            return Err(format!(
                "last timestamp {ts} is not the block's max time {}",
                expect.max_ts
            ));
        }

        let layout = if expect.version == 1 {
            LAYOUT_LENGTHS
        } else {
            let Some(&layout) = b.get(pos) else {
                return Err(format!("body byte {pos}: the body ends before its lines"));
            };
            pos += 1;
            layout
        };
        let mut lines = std::mem::take(&mut self.lines);
        let mut text = std::mem::take(&mut self.text);
        let clock = expect.version >= CLOCK_SLOTS_SINCE_VERSION;
        let decoded = decode_lines(
            b,
            &mut pos,
            layout,
            n,
            expect.lines_bytes,
            clock.then_some(&self.timestamps[..]),
            &mut lines,
            &mut text,
        );
        self.lines = lines;
        self.text = text;
        self.lines_in = decoded?;

        // Every pair takes at least two bytes (two zero lengths), which bounds the total
        // before anything is reserved for it.
        self.meta_offsets.reserve(n + 1);
        self.meta_offsets.push(0);
        let mut pairs_total = 0usize;
        for _ in 0..n {
            let at = pos;
            let count = varint(&mut pos, "metadata count")?;
            if count > METADATA_PAIRS_MAX as u64 {
                return Err(format!(
                    "body byte {at}: {count} metadata pairs, over the maximum {METADATA_PAIRS_MAX}"
                ));
            }
            pairs_total += count as usize;
            if pairs_total * 2 > b.len() - pos {
                return Err(format!(
                    "body byte {at}: {pairs_total} metadata pairs cannot fit in the body"
                ));
            }
            self.meta_offsets.push(pairs_total as u32);
        }
        self.pairs.reserve(pairs_total);
        for _ in 0..pairs_total {
            let (ks, ke) = Self::string(b, &mut pos, "metadata key")?;
            let (vs, ve) = Self::string(b, &mut pos, "metadata value")?;
            self.pairs.push([ks, ke, vs, ve]);
        }
        if pos != b.len() {
            return Err(format!(
                "body byte {pos}: {} bytes left after the last entry",
                b.len() - pos
            ));
        }
        Ok(())
    }

    /// Reads a varint-length UTF-8 string; returns its range in `b`.
    fn string(b: &[u8], pos: &mut usize, what: &str) -> Result<(u32, u32), String> {
        let at = *pos;
        let len = get_uvarint(b, pos).map_err(|e| format!("body byte {at}: bad {what}: {e:?}"))?;
        let start = *pos;
        if len > (b.len() - start) as u64 {
            return Err(format!(
                "body byte {at}: {what} length {len} runs past the body"
            ));
        }
        let end = start + len as usize;
        std::str::from_utf8(&b[start..end])
            .map_err(|_| format!("body byte {start}: {what} is not UTF-8"))?;
        *pos = end;
        Ok((start as u32, end as u32))
    }
}

/// Parses an uncompressed block body of format `version` said to hold `entries` entries and
/// `lines_bytes` line bytes, then reads every line and metadata pair: what a fuzz target
/// feeds arbitrary bodies to (the part decoder only reaches bodies behind zstd and crcs).
/// Returns whether the body parsed; it never panics, whatever the input.
#[doc(hidden)]
pub fn fuzz_parse_body(body: &[u8], version: u32, entries: usize, lines_bytes: u64) -> bool {
    if !(1..=BLOCK_ENTRIES_MAX).contains(&entries) || entries * ENTRY_BYTES_MIN > body.len() {
        return false;
    }
    // The header's time range, as a writer would have recorded it.
    let (mut pos, mut ts) = (0, Vec::new());
    if decode_timestamps(body, &mut pos, version, entries, &mut ts).is_err() {
        return false;
    }
    let (min_ts, max_ts) = (ts[0], ts[entries - 1]);
    let expect = BlockExpect {
        version,
        offset: 0,
        crc32c: 0,
        entries,
        uncompressed_bytes: body.len(),
        lines_bytes,
        min_ts,
        max_ts,
    };
    let mut block = DecodedBlock::new();
    let owned = body.to_vec();
    let parsed = block.parse_body(&owned, &expect);
    block.body = owned;
    if parsed.is_err() {
        return false;
    }
    for e in block.iter() {
        std::hint::black_box((e.ts, e.line.len()));
        for (k, v) in e.metadata.iter() {
            std::hint::black_box((k.len(), v.len()));
        }
    }
    true
}

#[cfg(test)]
impl DecodedBlock {
    /// A block holding `entries` (sorted by time, at least one), as a scan decodes it.
    pub(crate) fn for_tests(entries: &[EntryInput<'_>]) -> DecodedBlock {
        let mut body = Vec::new();
        let lines_bytes = encode_body(entries, LineTemplates::Auto, &mut body);
        let compressed = zstd::bulk::compress(&body, 1).expect("zstd compresses");
        let expect = BlockExpect {
            version: super::PART_FORMAT_VERSION,
            offset: 0,
            crc32c: crc32c::crc32c(&compressed),
            entries: entries.len(),
            uncompressed_bytes: body.len(),
            lines_bytes,
            min_ts: entries.first().map_or(0, |e| e.0),
            max_ts: entries.last().map_or(0, |e| e.0),
        };
        let mut block = DecodedBlock::new();
        block
            .decode(&compressed, &expect, Path::new("test"))
            .expect("a valid block");
        block
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::varint::zigzag;

    type OwnedEntry = (i64, String, Vec<(String, String)>);

    fn expect_for(compressed: &[u8], body: &[u8], entries: &[EntryInput<'_>]) -> BlockExpect {
        BlockExpect {
            version: crate::chunk::PART_FORMAT_VERSION,
            offset: 64,
            crc32c: crc32c::crc32c(compressed),
            entries: entries.len(),
            uncompressed_bytes: body.len(),
            lines_bytes: entries.iter().map(|e| e.1.len() as u64).sum(),
            min_ts: entries[0].0,
            max_ts: entries[entries.len() - 1].0,
        }
    }

    #[test]
    fn body_round_trip_and_reuse() {
        let md: &[(&str, &str)] = &[("trace_id", "abc"), ("é", "")];
        let entries: Vec<EntryInput<'_>> = vec![
            (-5, "first ünïcode", &[]),
            (-5, "", md),
            (i64::MAX, "last", &[]),
        ];
        let mut body = Vec::new();
        let lines = encode_body(&entries, LineTemplates::Auto, &mut body);
        assert_eq!(lines, 15 + 4, "bytes, not characters");
        // Deltas 0 and i64::MAX + 5: scaled by the latter, to 0 and 1.
        let expected_len: usize = entries
            .iter()
            .map(|e| entry_body_bytes(e.1, e.2))
            .sum::<usize>()
            + 1 // the timestamp layout byte
            + uvarint_len(i64::MAX.wrapping_sub(-5) as u64)
            + uvarint_len(zigzag(-5))
            + 1
            + 1
            + 1; // the line layout byte (newlines: one byte per line, as a short length)
        assert_eq!(body.len(), expected_len);
        let compressed = zstd::bulk::compress(&body, 3).unwrap();
        let expect = expect_for(&compressed, &body, &entries);
        let mut block = DecodedBlock::new();
        for _ in 0..2 {
            block.decode(&compressed, &expect, Path::new("p")).unwrap();
            let got: Vec<OwnedEntry> = block
                .iter()
                .map(|e| {
                    let md = e
                        .metadata
                        .iter()
                        .map(|(k, v)| (k.into(), v.into()))
                        .collect();
                    (e.ts, e.line.to_string(), md)
                })
                .collect();
            let want: Vec<OwnedEntry> = entries
                .iter()
                .map(|(t, l, m)| {
                    let md = m
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect();
                    (*t, l.to_string(), md)
                })
                .collect();
            assert_eq!(got, want);
            assert_eq!(block.metadata(1).get("trace_id"), Some("abc"));
            assert_eq!(block.partition_point(0), 2);
        }
        // A wrong expectation empties the block instead of leaving stale offsets behind.
        let bad = BlockExpect {
            lines_bytes: 1,
            ..expect
        };
        let err = block.decode(&compressed, &bad, Path::new("p")).unwrap_err();
        assert!(err.to_string().contains("line"), "{err}");
        assert!(block.is_empty());
    }

    #[test]
    fn decompression_is_bounded_by_the_recorded_size() {
        let line = "x".repeat(100_000);
        let entries: Vec<EntryInput<'_>> = vec![(1, &line, &[])];
        let mut body = Vec::new();
        encode_body(&entries, LineTemplates::Auto, &mut body);
        let compressed = zstd::bulk::compress(&body, 3).unwrap();
        let mut expect = expect_for(&compressed, &body, &entries);
        expect.uncompressed_bytes = 1000;
        let mut block = DecodedBlock::new();
        let err = block
            .decode(&compressed, &expect, Path::new("p"))
            .unwrap_err();
        assert!(err.is_corruption(), "{err}");
        assert!(
            block.body.capacity() < 50_000,
            "did not grow to the frame's size"
        );
    }
}

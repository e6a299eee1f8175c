//! The manifest: the one file that says which parts of a shard exist and how much of the WAL
//! they cover. It is replaced whole and atomically (write `manifest.tmp`, fdatasync, rename,
//! fsync the directory), so a crash leaves the old manifest or the new one.
//!
//! # Byte layout (format version 1, little-endian)
//!
//! ```text
//! header (32 bytes)
//!  0  8  magic b"SHLGMANI"
//!  8  4  format version (1)
//! 12  4  flags (0)
//! 16  8  payload length
//! 24  4  crc32c of the payload
//! 28  4  crc32c of header bytes 0..28
//! payload
//!     u64 generation           bumped by every write
//!     u64 next_part_id
//!     u64 wal_checkpoint       every record of the shard's own WAL with seq <= this is in parts
//!     u32 parts, then per part:
//!         u64 id, u32 dir_shard (the shard directory holding the file),
//!         i64 partition_start, u8 name length + partition name (ASCII),
//!         u64 file bytes, u64 entries, i64 min_ts, i64 max_ts, u32 level (compaction depth)
//!     u32 watermarks, then per stream: u64 stream id, u64 sealed_through
//!     u32 foreign WALs, then per WAL: u32 shard, u64 sealed_through
//! zero padding to a multiple of 4096 (the file is written with direct I/O)
//! ```
//!
//! `sealed_through[S]`: every entry of stream S from own-WAL records with seq <= it is in a
//! part. Foreign WALs are those of shard numbers beyond the current core count, replayed by
//! this shard and sealed: their records up to `sealed_through` are never replayed again.

use std::path::Path;

use super::StoreError;
use crate::model::TimestampNs;

pub const MANIFEST_MAGIC: [u8; 8] = *b"SHLGMANI";
pub const MANIFEST_FORMAT_VERSION: u32 = 1;
pub const MANIFEST_HEADER_BYTES: usize = 32;
/// Parts of one shard: at one part per seal round every few minutes, compaction keeps this far
/// below.
pub const MANIFEST_PARTS_MAX: usize = 1 << 20;
/// Watermarks (streams with sealed data newer than the checkpoint).
pub const MANIFEST_WATERMARKS_MAX: usize = 1 << 24;
pub const MANIFEST_FOREIGN_MAX: usize = 1 << 16;
/// A partition name is a date, maybe with an hour, or a bundle of two such names
/// (`paths::bundle_name`, at most 28 bytes).
pub const PARTITION_NAME_BYTES_MAX: usize = 32;
/// Payload bytes: the maximum counts of everything above.
pub const MANIFEST_PAYLOAD_BYTES_MAX: usize = 1 << 30;

/// One part named by the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartEntry {
    pub id: u64,
    /// The shard directory holding the file: this shard's own, or that of a shard number
    /// beyond the current core count whose parts this shard took over.
    pub dir_shard: u32,
    pub partition_start: TimestampNs,
    pub partition: String,
    pub file_bytes: u64,
    pub entries: u64,
    pub min_ts: TimestampNs,
    pub max_ts: TimestampNs,
    /// 0 for a part written by sealing; compaction writes max(inputs) + 1.
    pub level: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manifest {
    pub generation: u64,
    pub next_part_id: u64,
    pub wal_checkpoint: u64,
    pub parts: Vec<PartEntry>,
    /// Sorted by stream id.
    pub watermarks: Vec<(u64, u64)>,
    /// Sorted by shard.
    pub foreign: Vec<(u32, u64)>,
}

impl Manifest {
    pub fn sealed_through(&self, stream: u64) -> u64 {
        match self.watermarks.binary_search_by_key(&stream, |w| w.0) {
            Ok(i) => self.watermarks[i].1,
            Err(_) => 0,
        }
    }

    pub fn foreign_through(&self, shard: u32) -> u64 {
        self.foreign
            .iter()
            .find(|f| f.0 == shard)
            .map_or(0, |f| f.1)
    }

    /// The encoded file, padded to a multiple of 4096.
    pub fn encode(&self) -> Vec<u8> {
        let mut p = Vec::with_capacity(64 + self.parts.len() * 80 + self.watermarks.len() * 16);
        p.extend_from_slice(&self.generation.to_le_bytes());
        p.extend_from_slice(&self.next_part_id.to_le_bytes());
        p.extend_from_slice(&self.wal_checkpoint.to_le_bytes());
        p.extend_from_slice(&(self.parts.len() as u32).to_le_bytes());
        for e in &self.parts {
            p.extend_from_slice(&e.id.to_le_bytes());
            p.extend_from_slice(&e.dir_shard.to_le_bytes());
            p.extend_from_slice(&e.partition_start.to_le_bytes());
            p.push(e.partition.len() as u8);
            p.extend_from_slice(e.partition.as_bytes());
            p.extend_from_slice(&e.file_bytes.to_le_bytes());
            p.extend_from_slice(&e.entries.to_le_bytes());
            p.extend_from_slice(&e.min_ts.to_le_bytes());
            p.extend_from_slice(&e.max_ts.to_le_bytes());
            p.extend_from_slice(&e.level.to_le_bytes());
        }
        p.extend_from_slice(&(self.watermarks.len() as u32).to_le_bytes());
        for (s, w) in &self.watermarks {
            p.extend_from_slice(&s.to_le_bytes());
            p.extend_from_slice(&w.to_le_bytes());
        }
        p.extend_from_slice(&(self.foreign.len() as u32).to_le_bytes());
        for (s, w) in &self.foreign {
            p.extend_from_slice(&s.to_le_bytes());
            p.extend_from_slice(&w.to_le_bytes());
        }
        let mut out = Vec::with_capacity((MANIFEST_HEADER_BYTES + p.len()).next_multiple_of(4096));
        out.extend_from_slice(&MANIFEST_MAGIC);
        out.extend_from_slice(&MANIFEST_FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&(p.len() as u64).to_le_bytes());
        out.extend_from_slice(&crc32c::crc32c(&p).to_le_bytes());
        let hcrc = crc32c::crc32c(&out[..28]);
        out.extend_from_slice(&hcrc.to_le_bytes());
        out.extend_from_slice(&p);
        out.resize(out.len().next_multiple_of(4096), 0);
        out
    }

    /// Decodes and checks a manifest file's bytes; every error names the file and offset.
    pub fn decode(bytes: &[u8], path: &Path) -> Result<Manifest, StoreError> {
        Self::decode_unnamed(bytes, path).map_err(|e| match e {
            StoreError::Corruption { offset, what, .. } => StoreError::Corruption {
                path: path.to_path_buf(),
                offset,
                what,
            },
            other => other,
        })
    }

    fn decode_unnamed(bytes: &[u8], path: &Path) -> Result<Manifest, StoreError> {
        let bad = |offset: usize, what: String| StoreError::Corruption {
            path: path.to_path_buf(),
            offset: offset as u64,
            what,
        };
        if bytes.len() < MANIFEST_HEADER_BYTES {
            return Err(bad(
                0,
                format!("{} bytes, shorter than a header", bytes.len()),
            ));
        }
        let h = &bytes[..MANIFEST_HEADER_BYTES];
        let stored = u32::from_le_bytes(h[28..32].try_into().expect("4"));
        let computed = crc32c::crc32c(&h[..28]);
        if stored != computed {
            return Err(bad(
                28,
                format!(
                    "header checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"
                ),
            ));
        }
        if h[..8] != MANIFEST_MAGIC {
            return Err(bad(0, "not a manifest (bad magic)".into()));
        }
        let version = u32::from_le_bytes(h[8..12].try_into().expect("4"));
        if version != MANIFEST_FORMAT_VERSION {
            return Err(bad(
                8,
                format!("format version {version}, this build reads {MANIFEST_FORMAT_VERSION}"),
            ));
        }
        let flags = u32::from_le_bytes(h[12..16].try_into().expect("4"));
        if flags != 0 {
            return Err(bad(12, format!("unknown flags {flags:#x}")));
        }
        let len = u64::from_le_bytes(h[16..24].try_into().expect("8"));
        if len > MANIFEST_PAYLOAD_BYTES_MAX as u64
            || MANIFEST_HEADER_BYTES as u64 + len > bytes.len() as u64
        {
            return Err(bad(
                16,
                format!(
                    "payload length {len} does not fit the file of {} bytes",
                    bytes.len()
                ),
            ));
        }
        let payload = &bytes[MANIFEST_HEADER_BYTES..MANIFEST_HEADER_BYTES + len as usize];
        let stored = u32::from_le_bytes(h[24..28].try_into().expect("4"));
        let computed = crc32c::crc32c(payload);
        if stored != computed {
            return Err(bad(
                MANIFEST_HEADER_BYTES,
                format!(
                    "payload checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"
                ),
            ));
        }
        let mut r = Cursor {
            b: payload,
            pos: 0,
            base: MANIFEST_HEADER_BYTES,
        };
        let mut m = Manifest {
            generation: r.u64()?,
            next_part_id: r.u64()?,
            wal_checkpoint: r.u64()?,
            ..Manifest::default()
        };
        let n = r.count(MANIFEST_PARTS_MAX, "parts")?;
        for _ in 0..n {
            let at = r.offset();
            let id = r.u64()?;
            let dir_shard = r.u32()?;
            let partition_start = r.u64()? as i64;
            let name_len = r.u8()? as usize;
            if name_len == 0 || name_len > PARTITION_NAME_BYTES_MAX {
                return Err(bad(
                    r.offset() - 1,
                    format!("partition name of {name_len} bytes"),
                ));
            }
            let name = r.bytes(name_len)?;
            let partition = std::str::from_utf8(name)
                .ok()
                .filter(|s| s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
                .ok_or_else(|| {
                    bad(
                        r.offset() - name_len,
                        "partition name is not a date or a bundle of dates".into(),
                    )
                })?
                .to_string();
            let e = PartEntry {
                id,
                dir_shard,
                partition_start,
                partition,
                file_bytes: r.u64()?,
                entries: r.u64()?,
                min_ts: r.u64()? as i64,
                max_ts: r.u64()? as i64,
                level: r.u32()?,
            };
            if e.min_ts > e.max_ts {
                return Err(bad(
                    at,
                    format!("part {:#x} has min time after max time", e.id),
                ));
            }
            if !e.file_bytes.is_multiple_of(4096) || e.file_bytes == 0 {
                return Err(bad(
                    at,
                    format!(
                        "part {:#x} is {} bytes, not whole blocks",
                        e.id, e.file_bytes
                    ),
                ));
            }
            m.parts.push(e);
        }
        let n = r.count(MANIFEST_WATERMARKS_MAX, "watermarks")?;
        for _ in 0..n {
            let at = r.offset();
            let w = (r.u64()?, r.u64()?);
            if m.watermarks.last().is_some_and(|l| l.0 >= w.0) {
                return Err(bad(at, "watermarks are not sorted by stream".into()));
            }
            m.watermarks.push(w);
        }
        let n = r.count(MANIFEST_FOREIGN_MAX, "foreign WALs")?;
        for _ in 0..n {
            let at = r.offset();
            let f = (r.u32()?, r.u64()?);
            if m.foreign.last().is_some_and(|l| l.0 >= f.0) {
                return Err(bad(at, "foreign WALs are not sorted by shard".into()));
            }
            m.foreign.push(f);
        }
        if r.pos != payload.len() {
            return Err(bad(
                r.offset(),
                format!("{} bytes after the last field", payload.len() - r.pos),
            ));
        }
        if let Some(i) = bytes[MANIFEST_HEADER_BYTES + payload.len()..]
            .iter()
            .position(|&b| b != 0)
        {
            return Err(bad(
                MANIFEST_HEADER_BYTES + payload.len() + i,
                "non-zero padding".into(),
            ));
        }
        let mut ids: Vec<(u32, u64)> = m.parts.iter().map(|p| (p.dir_shard, p.id)).collect();
        ids.sort_unstable();
        if let Some(w) = ids.windows(2).find(|w| w[0] == w[1]) {
            return Err(bad(
                MANIFEST_HEADER_BYTES,
                format!("part {:#x} is named twice", w[0].1),
            ));
        }
        Ok(m)
    }
}

struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
    base: usize,
}

impl<'a> Cursor<'a> {
    fn offset(&self) -> usize {
        self.base + self.pos
    }

    fn bytes(&mut self, n: usize) -> Result<&'a [u8], StoreError> {
        if self.b.len() - self.pos < n {
            return Err(StoreError::Corruption {
                path: Default::default(),
                offset: self.offset() as u64,
                what: format!("payload ends inside a field of {n} bytes"),
            });
        }
        let s = &self.b[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, StoreError> {
        Ok(self.bytes(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, StoreError> {
        Ok(u32::from_le_bytes(self.bytes(4)?.try_into().expect("4")))
    }

    fn u64(&mut self) -> Result<u64, StoreError> {
        Ok(u64::from_le_bytes(self.bytes(8)?.try_into().expect("8")))
    }

    fn count(&mut self, max: usize, what: &str) -> Result<usize, StoreError> {
        let at = self.offset();
        let n = self.u32()? as usize;
        if n > max {
            return Err(StoreError::Corruption {
                path: Default::default(),
                offset: at as u64,
                what: format!("{n} {what}, over the limit {max}"),
            });
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Manifest {
        Manifest {
            generation: 7,
            next_part_id: 12,
            wal_checkpoint: 100,
            parts: vec![PartEntry {
                id: 11,
                dir_shard: 0,
                partition_start: 1_764_028_800_000_000_000,
                partition: "2025-11-25".into(),
                file_bytes: 8192,
                entries: 40,
                min_ts: 1,
                max_ts: 9,
                level: 0,
            }],
            watermarks: vec![(3, 120), (9, 130)],
            foreign: vec![(2, 55)],
        }
    }

    #[test]
    fn round_trip() {
        let m = sample();
        let bytes = m.encode();
        assert_eq!(bytes.len() % 4096, 0);
        assert_eq!(Manifest::decode(&bytes, Path::new("m")).unwrap(), m);
        assert_eq!(m.sealed_through(9), 130);
        assert_eq!(m.sealed_through(4), 0);
        assert_eq!(m.foreign_through(2), 55);
    }

    /// Writes the seed of the `manifest_decode` fuzz target (`fuzz/corpus/`, not committed):
    /// run with `--ignored` before `cargo fuzz run manifest_decode`.
    #[test]
    #[ignore]
    fn write_fuzz_seed() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/manifest_decode");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("sample"), sample().encode()).unwrap();
    }

    /// The seed, and any input a local fuzzing run added, decode without a panic; the seed
    /// decodes to the manifest it was written from.
    #[test]
    fn fuzz_seed_decodes() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/manifest_decode");
        for entry in std::fs::read_dir(&dir).into_iter().flatten() {
            let path = entry.unwrap().path();
            let _ = Manifest::decode(&std::fs::read(&path).unwrap(), &path);
        }
        let seed = sample().encode();
        assert_eq!(Manifest::decode(&seed, Path::new("m")).unwrap(), sample());
    }

    proptest! {
        /// Any single flipped bit is an error naming an offset, never a different manifest.
        #[test]
        fn every_bit_flip_is_detected(bit in 0usize..(4096 * 8)) {
            let mut bytes = sample().encode();
            bytes[bit / 8] ^= 1 << (bit % 8);
            match Manifest::decode(&bytes, Path::new("m")) {
                Err(StoreError::Corruption { .. }) => {}
                other => prop_assert!(false, "flip of bit {bit} gave {other:?}"),
            }
        }

        /// Arbitrary bytes never panic.
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = Manifest::decode(&bytes, Path::new("m"));
        }
    }
}

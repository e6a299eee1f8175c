//! Segment files: the header codec (pure) and every file name the log uses, in one place.

use std::fmt;
use std::path::{Path, PathBuf};

use super::{SEGMENT_HEADER_BYTES, WalError};
use crate::storage::Disk;

/// Segment header magic.
pub const SEGMENT_MAGIC: [u8; 8] = *b"SHLGWAL\0";

/// The format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// Bytes of the header fields covered by the header CRC.
const HEADER_FIELDS_BYTES: usize = 32;

/// File name suffix of a segment.
const SEGMENT_SUFFIX: &str = ".wal";

/// File name suffix of a segment being created (renamed to its final name once durable).
const TEMP_SUFFIX: &str = ".wal.tmp";

/// File name suffix of a segment moved aside by a repair (kept for inspection, never read).
const DAMAGED_SUFFIX: &str = ".wal.damaged";

/// A one-block file written and removed at open, see [`super::storage::prime_dma_probe`].
pub const DMA_PROBE_FILE_NAME: &str = "dma-probe.tmp";

/// Digits of the zero-padded first seq in a file name: `u64::MAX` has 20.
const SEQ_DIGITS: usize = 20;

/// The file name of the segment whose first record has `first_seq`.
pub fn segment_file_name(first_seq: u64) -> String {
    format!("{first_seq:0SEQ_DIGITS$}{SEGMENT_SUFFIX}")
}

/// The name a segment has while it is being created.
pub fn temp_segment_file_name(first_seq: u64) -> String {
    format!("{first_seq:0SEQ_DIGITS$}{TEMP_SUFFIX}")
}

/// Prefix of the name of the next segment while it waits, created and preallocated ahead of
/// need, for its first seq (and so its final name) to be known: `next-{n}.wal.tmp`, with `n`
/// counting the spares of this process (a new spare never takes the name of one being
/// started).
const SPARE_PREFIX: &str = "next-";

/// The name of the `n`th spare segment.
pub fn spare_segment_file_name(n: u64) -> String {
    format!("{SPARE_PREFIX}{n}{TEMP_SUFFIX}")
}

/// The name a segment gets when a repair moves it aside.
pub fn damaged_segment_file_name(first_seq: u64) -> String {
    format!("{first_seq:0SEQ_DIGITS$}{DAMAGED_SUFFIX}")
}

/// The first seq a segment file name stands for, or `None` if it is not a segment name.
pub fn parse_segment_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SEGMENT_SUFFIX)?;
    if digits.len() != SEQ_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Whether a file name is a leftover of an interrupted segment creation.
pub fn is_temp_segment_file_name(name: &str) -> bool {
    name.strip_prefix(SPARE_PREFIX)
        .and_then(|n| n.strip_suffix(TEMP_SUFFIX))
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        || name
            .strip_suffix(TEMP_SUFFIX)
            .is_some_and(|d| d.len() == SEQ_DIGITS && d.bytes().all(|b| b.is_ascii_digit()))
}

/// The segment files of `dir` on `disk` as `(first_seq, path)`, in seq order. Other files
/// are ignored; a missing directory has none.
pub fn segment_files(disk: &Disk, dir: &Path) -> Result<Vec<(u64, PathBuf)>, WalError> {
    let names = disk.list_dir(dir).map_err(|source| WalError::Io {
        path: dir.to_path_buf(),
        op: "listing the WAL directory",
        source,
    })?;
    let mut out: Vec<(u64, PathBuf)> = names
        .iter()
        .filter_map(|name| {
            let seq = name.to_str().and_then(parse_segment_file_name)?;
            Some((seq, dir.join(name)))
        })
        .collect();
    out.sort();
    Ok(out)
}

/// A decoded segment header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    pub shard_id: u32,
    pub first_seq: u64,
    pub epoch: u64,
}

/// Why a segment header block is not valid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeaderError {
    /// Fewer than a block of bytes: the file was cut during creation.
    Short {
        len: usize,
    },
    /// All zeros: created but the header never reached the disk.
    Zero,
    Magic,
    Crc {
        stored: u32,
        computed: u32,
    },
    Version {
        found: u32,
    },
}

impl HeaderError {
    /// A header that was never written (as opposed to one that was damaged).
    pub fn is_unwritten(&self) -> bool {
        matches!(self, HeaderError::Short { .. } | HeaderError::Zero)
    }
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderError::Short { len } => write!(
                f,
                "segment header cut short: {len} of {SEGMENT_HEADER_BYTES} bytes"
            ),
            HeaderError::Zero => write!(f, "segment header is all zeros"),
            HeaderError::Magic => write!(f, "not a shardlog WAL segment (bad magic)"),
            HeaderError::Crc { stored, computed } => write!(
                f,
                "segment header checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"
            ),
            HeaderError::Version { found } => write!(
                f,
                "segment format version {found}; this build reads version {FORMAT_VERSION}"
            ),
        }
    }
}

impl SegmentHeader {
    /// The header block, [`SEGMENT_HEADER_BYTES`] long.
    pub fn encode(&self, out: &mut [u8]) {
        let out = &mut out[..SEGMENT_HEADER_BYTES];
        out.fill(0);
        out[0..8].copy_from_slice(&SEGMENT_MAGIC);
        out[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        out[12..16].copy_from_slice(&self.shard_id.to_le_bytes());
        out[16..24].copy_from_slice(&self.first_seq.to_le_bytes());
        out[24..32].copy_from_slice(&self.epoch.to_le_bytes());
        let crc = crc32c::crc32c(&out[..HEADER_FIELDS_BYTES]);
        out[32..36].copy_from_slice(&crc.to_le_bytes());
    }

    pub fn decode(buf: &[u8]) -> Result<SegmentHeader, HeaderError> {
        if buf.len() < SEGMENT_HEADER_BYTES {
            return Err(HeaderError::Short { len: buf.len() });
        }
        let b = &buf[..SEGMENT_HEADER_BYTES];
        if b.iter().all(|&x| x == 0) {
            return Err(HeaderError::Zero);
        }
        if b[0..8] != SEGMENT_MAGIC {
            return Err(HeaderError::Magic);
        }
        let stored = u32::from_le_bytes(b[32..36].try_into().expect("4 bytes"));
        let computed = crc32c::crc32c(&b[..HEADER_FIELDS_BYTES]);
        if stored != computed {
            return Err(HeaderError::Crc { stored, computed });
        }
        let version = u32::from_le_bytes(b[8..12].try_into().expect("4 bytes"));
        if version != FORMAT_VERSION {
            return Err(HeaderError::Version { found: version });
        }
        Ok(SegmentHeader {
            shard_id: u32::from_le_bytes(b[12..16].try_into().expect("4 bytes")),
            first_seq: u64::from_le_bytes(b[16..24].try_into().expect("8 bytes")),
            epoch: u64::from_le_bytes(b[24..32].try_into().expect("8 bytes")),
        })
    }
}

/// A random epoch for a new segment: the kernel's random bytes (from `/dev/urandom`, since
/// neither the standard library nor nix wraps getrandom), mixed with the time and pid in the
/// unlikely case they cannot be read. It only needs to differ between incarnations, not to
/// be secret.
pub fn new_epoch() -> u64 {
    let mut r = [0u8; 8];
    let read = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut r));
    let random = if read.is_ok() {
        u64::from_le_bytes(r)
    } else {
        0
    };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let pid = u64::from(std::process::id());
    random ^ nanos.rotate_left(17) ^ pid.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names_sort_as_seqs_and_parse_back() {
        assert_eq!(segment_file_name(1), "00000000000000000001.wal");
        assert_eq!(segment_file_name(u64::MAX), "18446744073709551615.wal");
        assert!(segment_file_name(9) < segment_file_name(10));
        assert_eq!(
            parse_segment_file_name(&segment_file_name(12345)),
            Some(12345)
        );
        assert_eq!(parse_segment_file_name("12345.wal"), None);
        assert_eq!(parse_segment_file_name(&temp_segment_file_name(3)), None);
        assert!(is_temp_segment_file_name(&temp_segment_file_name(3)));
        assert!(!is_temp_segment_file_name(&segment_file_name(3)));
        assert_eq!(parse_segment_file_name("99999999999999999999.wal"), None);
    }

    #[test]
    fn header_round_trip_and_damage() {
        let h = SegmentHeader {
            shard_id: 3,
            first_seq: 1001,
            epoch: new_epoch(),
        };
        let mut block = vec![0u8; SEGMENT_HEADER_BYTES];
        h.encode(&mut block);
        assert_eq!(SegmentHeader::decode(&block), Ok(h));
        assert_eq!(
            SegmentHeader::decode(&block[..100]),
            Err(HeaderError::Short { len: 100 })
        );
        for i in 0..36 {
            let mut bad = block.clone();
            bad[i] ^= 1;
            assert!(SegmentHeader::decode(&bad).is_err(), "flip at {i}");
        }
        assert_eq!(
            SegmentHeader::decode(&vec![0u8; SEGMENT_HEADER_BYTES]),
            Err(HeaderError::Zero)
        );
    }

    proptest! {
        #[test]
        fn header_decode_never_panics(buf in proptest::collection::vec(any::<u8>(), 0..5000)) {
            let _ = SegmentHeader::decode(&buf);
        }
    }
}

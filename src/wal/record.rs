//! The record codec: pure functions over byte slices, no I/O, so that they can be unit
//! tested, property tested and fuzzed on their own. The layout is in the [`super`] module doc.

use std::fmt;

use super::{BLOCK_BYTES, RECORD_BODY_BYTES_MAX};

/// Bytes of a record header.
pub const RECORD_HEADER_BYTES: usize = 32;

/// Record magic, "WREC" little-endian. Every byte is non-zero, which is what lets a zero byte
/// mean "padding" at any record position.
pub const RECORD_MAGIC: u32 = u32::from_le_bytes(*b"WREC");

/// Record kind of a [`crate::model::Batch`] body, the only kind so far.
pub const RECORD_KIND_BATCH: u8 = 1;

/// A decoded record header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordHeader {
    pub kind: u8,
    pub seq: u64,
    pub body_len: u32,
    pub body_crc: u32,
}

impl RecordHeader {
    /// Header plus body.
    pub fn record_bytes(&self) -> usize {
        RECORD_HEADER_BYTES + self.body_len as usize
    }
}

/// Why the bytes at a record position are not a record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The buffer ends before the header or the body does; `needed` is the whole record's
    /// size when the header was readable, else the header's.
    Truncated { needed: usize, available: usize },
    /// The header checksum does not match: a torn or damaged header.
    HeaderCrc { stored: u32, computed: u32 },
    /// A checksummed header whose magic is not ours (another format or version).
    Magic { found: u32 },
    /// A checksummed header with a kind this version does not know.
    Kind { found: u8 },
    /// A checksummed header with non-zero pad or reserved bytes.
    Reserved,
    /// A checksummed header whose length is over [`RECORD_BODY_BYTES_MAX`].
    BodyTooLong { len: u32 },
    /// The body checksum does not match: a torn or damaged body.
    BodyCrc { stored: u32, computed: u32 },
    /// Padding (which starts with a zero byte) has a non-zero byte before the block ends.
    DirtyPadding { at: usize },
    /// The offset is past the end of the buffer.
    OutOfRange { offset: usize, len: usize },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Truncated { needed, available } => write!(
                f,
                "record cut short: needs {needed} bytes, only {available} present"
            ),
            DecodeError::HeaderCrc { stored, computed } => write!(
                f,
                "record header checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"
            ),
            DecodeError::Magic { found } => {
                write!(
                    f,
                    "record magic {found:#010x}, expected {RECORD_MAGIC:#010x}"
                )
            }
            DecodeError::Kind { found } => write!(f, "unknown record kind {found}"),
            DecodeError::Reserved => write!(f, "record header has non-zero reserved bytes"),
            DecodeError::BodyTooLong { len } => write!(
                f,
                "record body length {len} over the maximum {RECORD_BODY_BYTES_MAX}"
            ),
            DecodeError::BodyCrc { stored, computed } => write!(
                f,
                "record body checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"
            ),
            DecodeError::DirtyPadding { at } => {
                write!(f, "non-zero byte in commit padding at buffer offset {at}")
            }
            DecodeError::OutOfRange { offset, len } => {
                write!(f, "offset {offset} past the end of a {len}-byte buffer")
            }
        }
    }
}

impl std::error::Error for DecodeError {}

/// Appends one record (header and body) to `out`.
///
/// Panics if `body` is over [`RECORD_BODY_BYTES_MAX`]: the writer checks that first and
/// returns a typed error, so reaching here with a larger body is a bug.
pub fn encode_record(seq: u64, body: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    out.resize(start + RECORD_HEADER_BYTES + body.len(), 0);
    encode_record_into(seq, body, &mut out[start..]);
}

/// Writes one record into the front of `out`, which must have room for it; returns its size.
pub fn encode_record_into(seq: u64, body: &[u8], out: &mut [u8]) -> usize {
    assert!(
        body.len() <= RECORD_BODY_BYTES_MAX,
        "record body over the format bound"
    );
    assert!(seq > 0, "seq 0 is never written");
    let total = RECORD_HEADER_BYTES + body.len();
    let (h, rest) = out[..total].split_at_mut(RECORD_HEADER_BYTES);
    h[0..4].copy_from_slice(&RECORD_MAGIC.to_le_bytes());
    h[4] = RECORD_KIND_BATCH;
    h[5..8].fill(0);
    h[8..16].copy_from_slice(&seq.to_le_bytes());
    h[16..20].copy_from_slice(&(body.len() as u32).to_le_bytes());
    h[20..24].copy_from_slice(&crc32c::crc32c(body).to_le_bytes());
    h[24..28].fill(0);
    let header_crc = crc32c::crc32c(&h[0..28]);
    h[28..32].copy_from_slice(&header_crc.to_le_bytes());
    rest.copy_from_slice(body);
    total
}

/// Decodes and checks only a record header (all 32 bytes must be present in `h`).
pub fn decode_header(h: &[u8]) -> Result<RecordHeader, DecodeError> {
    if h.len() < RECORD_HEADER_BYTES {
        return Err(DecodeError::Truncated {
            needed: RECORD_HEADER_BYTES,
            available: h.len(),
        });
    }
    let stored = le_u32(&h[28..32]);
    let computed = crc32c::crc32c(&h[0..28]);
    if stored != computed {
        return Err(DecodeError::HeaderCrc { stored, computed });
    }
    let magic = le_u32(&h[0..4]);
    if magic != RECORD_MAGIC {
        return Err(DecodeError::Magic { found: magic });
    }
    if h[4] != RECORD_KIND_BATCH {
        return Err(DecodeError::Kind { found: h[4] });
    }
    if h[5..8] != [0, 0, 0] || le_u32(&h[24..28]) != 0 {
        return Err(DecodeError::Reserved);
    }
    let body_len = le_u32(&h[16..20]);
    if body_len as usize > RECORD_BODY_BYTES_MAX {
        return Err(DecodeError::BodyTooLong { len: body_len });
    }
    Ok(RecordHeader {
        kind: h[4],
        seq: u64::from_le_bytes(h[8..16].try_into().expect("8 bytes")),
        body_len,
        body_crc: le_u32(&h[20..24]),
    })
}

/// Decodes the record at `offset` of `buf`, whose first byte sits at a block boundary of the
/// file.
///
/// - `Ok(Some((header, body)))`: a whole record with both checksums right.
/// - `Ok(None)`: padding, i.e. a zero byte followed by zeros up to the block end (or the end
///   of `buf`, whichever is first). The next record, if any, starts at the next block.
/// - `Err(Truncated)`: `buf` ends inside the record; read more, or at the end of the file
///   it is a cut-short record.
/// - any other `Err`: these bytes are not a record this log wrote intact.
pub fn decode_record(
    buf: &[u8],
    offset: usize,
) -> Result<Option<(RecordHeader, &[u8])>, DecodeError> {
    if offset >= buf.len() {
        return Err(DecodeError::OutOfRange {
            offset,
            len: buf.len(),
        });
    }
    if buf[offset] == 0 {
        let block_end = (offset / BLOCK_BYTES + 1) * BLOCK_BYTES;
        let end = block_end.min(buf.len());
        return match buf[offset..end].iter().position(|&b| b != 0) {
            None => Ok(None),
            Some(i) => Err(DecodeError::DirtyPadding { at: offset + i }),
        };
    }
    let rest = &buf[offset..];
    let header = decode_header(rest)?;
    let total = header.record_bytes();
    if rest.len() < total {
        return Err(DecodeError::Truncated {
            needed: total,
            available: rest.len(),
        });
    }
    let body = &rest[RECORD_HEADER_BYTES..total];
    let computed = crc32c::crc32c(body);
    if computed != header.body_crc {
        return Err(DecodeError::BodyCrc {
            stored: header.body_crc,
            computed,
        });
    }
    Ok(Some((header, body)))
}

fn le_u32(b: &[u8]) -> u32 {
    u32::from_le_bytes(b[..4].try_into().expect("4 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trip_back_to_back_with_padding() {
        let mut buf = Vec::new();
        encode_record(7, b"hello", &mut buf);
        encode_record(8, b"", &mut buf);
        encode_record(9, &[0xAB; 5000], &mut buf);
        buf.resize(super::super::round_up_block(buf.len()), 0);
        let mut pos = 0;
        let mut seen = Vec::new();
        while pos < buf.len() {
            match decode_record(&buf, pos).unwrap() {
                Some((h, body)) => {
                    seen.push((h.seq, body.to_vec()));
                    pos += h.record_bytes();
                }
                None => pos = (pos / BLOCK_BYTES + 1) * BLOCK_BYTES,
            }
        }
        assert_eq!(
            seen,
            vec![(7, b"hello".to_vec()), (8, vec![]), (9, vec![0xAB; 5000])]
        );
    }

    #[test]
    fn every_single_byte_flip_is_detected() {
        let mut buf = Vec::new();
        encode_record(42, b"some body bytes", &mut buf);
        for i in 0..buf.len() {
            let mut bad = buf.clone();
            bad[i] ^= 0x10;
            let r = decode_record(&bad, 0);
            assert!(r.is_err(), "flip at {i} not detected: {r:?}");
        }
    }

    #[test]
    fn truncation_and_padding_are_told_apart() {
        let mut buf = Vec::new();
        encode_record(1, &[1; 100], &mut buf);
        for cut in 1..buf.len() {
            assert!(matches!(
                decode_record(&buf[..cut], 0),
                Err(DecodeError::Truncated { .. })
            ));
        }
        let mut block = vec![0u8; BLOCK_BYTES];
        assert_eq!(decode_record(&block, 10), Ok(None));
        block[4000] = 1;
        assert_eq!(
            decode_record(&block, 10),
            Err(DecodeError::DirtyPadding { at: 4000 })
        );
        assert_eq!(
            decode_record(&block, 4096),
            Err(DecodeError::OutOfRange {
                offset: 4096,
                len: 4096
            })
        );
    }

    #[test]
    fn checksummed_but_foreign_headers_are_named() {
        let mut buf = Vec::new();
        encode_record(1, b"x", &mut buf);
        buf[4] = 9;
        let crc = crc32c::crc32c(&buf[0..28]);
        buf[28..32].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(decode_record(&buf, 0), Err(DecodeError::Kind { found: 9 }));
        buf[4] = 1;
        buf[16..20].copy_from_slice(&(RECORD_BODY_BYTES_MAX as u32 + 1).to_le_bytes());
        let crc = crc32c::crc32c(&buf[0..28]);
        buf[28..32].copy_from_slice(&crc.to_le_bytes());
        assert!(matches!(
            decode_record(&buf, 0),
            Err(DecodeError::BodyTooLong { .. })
        ));
    }

    proptest! {
        #[test]
        fn decode_never_panics(buf in proptest::collection::vec(any::<u8>(), 0..9000), offset in 0usize..10000) {
            let _ = decode_record(&buf, offset);
        }

        #[test]
        fn decode_of_a_valid_header_with_random_tail_never_panics(
            seq in 1u64..u64::MAX, len in 0u32..u32::MAX, tail in proptest::collection::vec(any::<u8>(), 0..200)
        ) {
            let mut buf = vec![0u8; RECORD_HEADER_BYTES];
            buf[0..4].copy_from_slice(&RECORD_MAGIC.to_le_bytes());
            buf[4] = RECORD_KIND_BATCH;
            buf[8..16].copy_from_slice(&seq.to_le_bytes());
            buf[16..20].copy_from_slice(&len.to_le_bytes());
            let crc = crc32c::crc32c(&buf[0..28]);
            buf[28..32].copy_from_slice(&crc.to_le_bytes());
            buf.extend_from_slice(&tail);
            let _ = decode_record(&buf, 0);
        }

        #[test]
        fn round_trip(seq in 1u64..u64::MAX, body in proptest::collection::vec(any::<u8>(), 0..3000)) {
            let mut buf = Vec::new();
            encode_record(seq, &body, &mut buf);
            let (h, b) = decode_record(&buf, 0).unwrap().unwrap();
            prop_assert_eq!(h.seq, seq);
            prop_assert_eq!(b, &body[..]);
            prop_assert_eq!(h.record_bytes(), buf.len());
        }
    }
}

//! LEB128 unsigned varints and zigzag signed ones, as used inside block bodies. Decoding is
//! checked: a varint that runs past the buffer or past 64 bits is an error, never a panic.

/// Longest encoding of a u64: ceil(64 / 7).
pub const VARINT_BYTES_MAX: usize = 10;

/// Appends `v` as an unsigned LEB128 varint.
#[inline]
pub fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Bytes that [`put_uvarint`] writes for `v`.
#[inline]
pub fn uvarint_len(v: u64) -> usize {
    // 1 byte per started group of 7 significant bits, at least one.
    let bits = 64 - (v | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// Maps signed to unsigned so that small magnitudes stay short.
#[inline]
pub fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

#[inline]
pub fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Why a varint could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VarintError {
    /// The buffer ended inside the varint.
    Truncated,
    /// More than 64 bits, or a tenth byte above 1.
    Overflow,
}

/// Reads an unsigned varint at `*pos` and advances `*pos` past it.
#[inline]
pub fn get_uvarint(buf: &[u8], pos: &mut usize) -> Result<u64, VarintError> {
    let mut v: u64 = 0;
    for i in 0..VARINT_BYTES_MAX {
        let Some(&b) = buf.get(*pos + i) else {
            return Err(VarintError::Truncated);
        };
        if i == VARINT_BYTES_MAX - 1 && b > 1 {
            return Err(VarintError::Overflow);
        }
        v |= u64::from(b & 0x7f) << (7 * i);
        if b < 0x80 {
            *pos += i + 1;
            return Ok(v);
        }
    }
    Err(VarintError::Overflow)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn edges() {
        for v in [0u64, 1, 127, 128, 16383, 16384, u64::MAX - 1, u64::MAX] {
            let mut b = Vec::new();
            put_uvarint(&mut b, v);
            assert_eq!(b.len(), uvarint_len(v), "{v}");
            let mut pos = 0;
            assert_eq!(get_uvarint(&b, &mut pos), Ok(v));
            assert_eq!(pos, b.len());
        }
        let mut pos = 0;
        assert_eq!(
            get_uvarint(&[0x80, 0x80], &mut pos),
            Err(VarintError::Truncated)
        );
        assert_eq!(pos, 0, "no advance on error");
        let eleven = [0xffu8; 11];
        assert_eq!(get_uvarint(&eleven, &mut pos), Err(VarintError::Overflow));
        let mut ten = [0xffu8; 10];
        ten[9] = 0x02;
        assert_eq!(get_uvarint(&ten, &mut pos), Err(VarintError::Overflow));
        for v in [0i64, -1, 1, i64::MIN, i64::MAX] {
            assert_eq!(unzigzag(zigzag(v)), v);
        }
        assert_eq!(zigzag(-1), 1);
    }

    proptest! {
        #[test]
        fn round_trip(v in any::<u64>(), s in any::<i64>()) {
            let mut b = Vec::new();
            put_uvarint(&mut b, v);
            put_uvarint(&mut b, zigzag(s));
            let mut pos = 0;
            prop_assert_eq!(get_uvarint(&b, &mut pos), Ok(v));
            prop_assert_eq!(get_uvarint(&b, &mut pos).map(unzigzag), Ok(s));
            prop_assert_eq!(pos, b.len());
        }
    }
}

//! The timestamp column of a block body. Versions 1 to 3 write one layout and have no layout
//! byte; version 4 starts the column with a layout byte, chosen per block by the writer:
//!
//! ```text
//! 0 deltas   zigzag varint of the first timestamp, then n-1 unsigned varint deltas
//!            (versions 1 to 3: always this, without the byte)
//! 1 scaled   unsigned varint g (at least 2): every delta is a multiple of g; then the
//!            zigzag varint of the first timestamp, then n-1 unsigned varints delta / g
//! ```
//!
//! Entries are sorted by time, so deltas are never negative. Why a scale: timestamps are
//! nanoseconds, but most sources stamp to the second or the millisecond, so every delta of
//! a block is a multiple of 10^9 or 10^6 and its varint takes four or five bytes where one
//! would do. Divided by their greatest common divisor, they take one or two, and zstd finds
//! their repeats: on the ten loghub files with each line's own timestamp, the column
//! compressed alone at level 19 takes 17.1 KB against 34.0 KB unscaled (`benches/`
//! `storage-figures.sh line` gives the figures for whole parts).

use super::varint::{get_uvarint, put_uvarint, unzigzag, zigzag};

/// First timestamp, then deltas as they are.
pub(crate) const TS_LAYOUT_DELTAS: u8 = 0;
/// A common divisor of the deltas, then the deltas divided by it.
pub(crate) const TS_LAYOUT_SCALED: u8 = 1;

/// The first format version whose bodies start with a timestamp layout byte.
pub(crate) const TS_LAYOUT_SINCE_VERSION: u32 = 4;

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Appends the timestamp column of `ts` (ascending, at least one) in the current version's
/// layout: scaled when the deltas have a common divisor of 2 or more.
pub fn encode_timestamps(ts: &[i64], out: &mut Vec<u8>) {
    assert!(!ts.is_empty(), "a block holds at least one entry");
    let deltas = || {
        ts.windows(2).map(|w| {
            assert!(w[1] >= w[0], "entries of a block are sorted by timestamp");
            w[1].wrapping_sub(w[0]) as u64
        })
    };
    // 0 when there is no delta or every one is 0: nothing to scale.
    let scale = deltas().fold(0, gcd);
    if scale >= 2 {
        out.push(TS_LAYOUT_SCALED);
        put_uvarint(out, scale);
        put_uvarint(out, zigzag(ts[0]));
        for d in deltas() {
            put_uvarint(out, d / scale);
        }
    } else {
        out.push(TS_LAYOUT_DELTAS);
        put_uvarint(out, zigzag(ts[0]));
        for d in deltas() {
            put_uvarint(out, d);
        }
    }
}

/// Reads the timestamp column of a body of format `version` holding `n` entries from
/// `b[*pos..]` into `out` (cleared first), leaving `pos` after it. Errors say where in the
/// body; the caller checks the result against the block header's time range.
pub(crate) fn decode_timestamps(
    b: &[u8],
    pos: &mut usize,
    version: u32,
    n: usize,
    out: &mut Vec<i64>,
) -> Result<(), String> {
    out.clear();
    let varint = |pos: &mut usize, what: &str| {
        let at = *pos;
        get_uvarint(b, pos).map_err(|e| format!("body byte {at}: bad {what} varint: {e:?}"))
    };
    let scale = if version < TS_LAYOUT_SINCE_VERSION {
        1
    } else {
        let Some(&layout) = b.get(*pos) else {
            return Err(format!(
                "body byte {pos}: the body ends before its timestamps"
            ));
        };
        *pos += 1;
        match layout {
            TS_LAYOUT_DELTAS => 1,
            TS_LAYOUT_SCALED => {
                let at = *pos;
                let scale = varint(pos, "timestamp scale")?;
                if scale < 2 {
                    return Err(format!(
                        "body byte {at}: timestamp scale {scale}, a scaled layout's is at least 2"
                    ));
                }
                scale
            }
            other => {
                return Err(format!(
                    "body byte {}: unknown timestamp layout {other}",
                    *pos - 1
                ));
            }
        }
    };
    out.reserve(n);
    let mut ts = unzigzag(varint(pos, "timestamp")?);
    out.push(ts);
    for _ in 1..n {
        let at = *pos;
        let step = varint(pos, "timestamp delta")?;
        ts = step
            .checked_mul(scale)
            .and_then(|delta| ts.checked_add_unsigned(delta))
            .ok_or_else(|| format!("body byte {at}: timestamp delta {step} x {scale} overflows"))?;
        out.push(ts);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round_trip(ts: &[i64]) -> Vec<u8> {
        let mut body = Vec::new();
        encode_timestamps(ts, &mut body);
        let (mut pos, mut out) = (0, Vec::new());
        decode_timestamps(&body, &mut pos, TS_LAYOUT_SINCE_VERSION, ts.len(), &mut out)
            .expect("decodes");
        assert_eq!(out, ts);
        assert_eq!(pos, body.len(), "the column is read to its end");
        body
    }

    #[test]
    fn second_stamped_deltas_are_scaled_to_one_byte() {
        let base = 1_700_000_000_000_000_000i64;
        let ts: Vec<i64> = (0..100).map(|i| base + (i / 3) * 1_000_000_000).collect();
        let body = round_trip(&ts);
        assert_eq!(body[0], TS_LAYOUT_SCALED);
        // Layout, scale (5 bytes), first (9 bytes), 99 deltas of one byte.
        assert_eq!(body.len(), 1 + 5 + 9 + 99);
    }

    #[test]
    fn nanosecond_deltas_and_single_entries_stay_unscaled() {
        let body = round_trip(&[5, 6, 8, 1_000_000_011]);
        assert_eq!(body[0], TS_LAYOUT_DELTAS);
        let body = round_trip(&[-7]);
        assert_eq!(body, [TS_LAYOUT_DELTAS, 13]);
        let body = round_trip(&[42, 42, 42]);
        assert_eq!(body[0], TS_LAYOUT_DELTAS, "all deltas 0: nothing to scale");
        round_trip(&[i64::MIN, 0, i64::MAX]);
        round_trip(&[i64::MIN, i64::MAX]);
    }

    #[test]
    fn versions_before_4_have_no_layout_byte() {
        let mut body = Vec::new();
        put_uvarint(&mut body, zigzag(10));
        put_uvarint(&mut body, 5);
        let (mut pos, mut out) = (0, Vec::new());
        decode_timestamps(&body, &mut pos, 3, 2, &mut out).unwrap();
        assert_eq!(out, [10, 15]);
    }

    #[test]
    fn bad_columns_are_errors_that_say_where() {
        let decode = |b: &[u8], n: usize| {
            let (mut pos, mut out) = (0, Vec::new());
            decode_timestamps(b, &mut pos, TS_LAYOUT_SINCE_VERSION, n, &mut out)
        };
        assert!(
            decode(&[], 1)
                .unwrap_err()
                .contains("ends before its timestamps")
        );
        assert!(
            decode(&[7, 0], 1)
                .unwrap_err()
                .contains("unknown timestamp layout 7")
        );
        assert!(decode(&[1, 1, 0], 1).unwrap_err().contains("scale 1"));
        assert!(decode(&[1, 0, 0], 1).unwrap_err().contains("scale 0"));
        // Scale 2^62 times a step of 4 overflows u64; a step of 2 overflows the timestamp.
        let mut b = vec![TS_LAYOUT_SCALED];
        put_uvarint(&mut b, 1 << 62);
        put_uvarint(&mut b, zigzag(0));
        put_uvarint(&mut b, 4);
        assert!(decode(&b, 2).unwrap_err().contains("overflows"));
        b.truncate(b.len() - 1);
        put_uvarint(&mut b, 2);
        assert!(decode(&b, 2).unwrap_err().contains("overflows"));
        assert!(
            decode(&[0, 0], 2)
                .unwrap_err()
                .contains("bad timestamp delta")
        );
    }

    proptest! {
        #[test]
        fn any_sorted_timestamps_round_trip(
            first in any::<i64>(),
            unit in prop_oneof![Just(1u64), Just(1_000), Just(1_000_000), Just(1_000_000_000), 1u64..5_000],
            steps in proptest::collection::vec(0u64..10_000, 0..200),
        ) {
            let mut ts = vec![first];
            for s in steps {
                let last = *ts.last().unwrap();
                match s.checked_mul(unit).and_then(|d| last.checked_add_unsigned(d)) {
                    Some(t) => ts.push(t),
                    None => break,
                }
            }
            round_trip(&ts);
        }

        #[test]
        fn arbitrary_columns_never_panic(b in proptest::collection::vec(any::<u8>(), 0..64), n in 1usize..20) {
            let (mut pos, mut out) = (0, Vec::new());
            let _ = decode_timestamps(&b, &mut pos, TS_LAYOUT_SINCE_VERSION, n, &mut out);
        }
    }
}

//! Tests of the line column's layouts ([`super`]).

use super::*;
use crate::chunk::clock::clock_fields;

fn round_trip(lines: &[&str], templates: LineTemplates) -> u8 {
    round_trip_stamped(lines, &[], templates)[0]
}

/// Encodes and decodes `lines`, with `timestamps` (empty: none, as before version 4);
/// returns the column.
fn round_trip_stamped(lines: &[&str], timestamps: &[i64], templates: LineTemplates) -> Vec<u8> {
    let mut out = Vec::new();
    encode_lines(
        lines.iter().copied(),
        lines.len(),
        templates,
        timestamps,
        &mut out,
    );
    let total: u64 = lines.iter().map(|l| l.len() as u64).sum();
    let (mut ranges, mut text) = (Vec::new(), Vec::new());
    let mut pos = 1;
    let at = decode_lines(
        &out,
        &mut pos,
        out[0],
        lines.len(),
        total,
        (!timestamps.is_empty()).then_some(timestamps),
        &mut ranges,
        &mut text,
    )
    .unwrap();
    assert_eq!(pos, out.len());
    let buf = if at == LinesIn::Text { &text } else { &out };
    let got: Vec<&str> = ranges
        .iter()
        .map(|&(s, e)| std::str::from_utf8(&buf[s as usize..e as usize]).unwrap())
        .collect();
    assert_eq!(got, lines);
    out
}

/// Lines that print their own time as Zookeeper's do ("2015-07-29 17:41:44,747"), one in
/// ten a second late, with their timestamps (whole microseconds).
fn clock_lines(n: usize) -> (Vec<String>, Vec<i64>) {
    let base = 1_438_191_704_747_000_000i64;
    // Irregular steps of up to 2 s, as lines come.
    let ts: Vec<i64> = (0..n as i64)
        .scan(base, |t, i| {
            *t += (i * i * 7_919 % 2_000_003) * 1_000;
            Some(*t)
        })
        .collect();
    let lines = ts
        .iter()
        .enumerate()
        .map(|(i, &t)| {
            let f = clock_fields(t);
            let late = i64::from(i % 10 == 9);
            format!(
                "{:04}-{:02}-{:02} {:02}:{:02}:{:02},{:03} - INFO [conn {}] took {}ms",
                f[0],
                f[2],
                f[3],
                f[4],
                f[5],
                (f[6] + late) % 60,
                f[7],
                i % 4,
                i * 37 % 1000
            )
        })
        .collect();
    (lines, ts)
}

#[test]
fn clock_slots_take_printed_times_from_the_timestamps() {
    let (lines, ts) = clock_lines(200);
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let with = round_trip_stamped(&lines, &ts, LineTemplates::Auto);
    let without = round_trip_stamped(&lines, &[], LineTemplates::Auto);
    assert_eq!(with[0], LAYOUT_TEMPLATES);
    let z = |b: &[u8]| zstd::bulk::compress(b, 3).unwrap().len();
    assert!(
        z(&with) * 10 < z(&without) * 8,
        "clock slots: {} B compressed, delta slots: {} B",
        z(&with),
        z(&without)
    );
    // A body of a version before clock slots cannot hold one.
    let (mut ranges, mut text) = (Vec::new(), Vec::new());
    let total = lines.iter().map(|l| l.len() as u64).sum();
    let err = decode_lines(
        &with,
        &mut 1,
        with[0],
        lines.len(),
        total,
        None,
        &mut ranges,
        &mut text,
    )
    .unwrap_err();
    assert!(err.contains("clock slot"), "{err}");
    // Timestamps that are not the lines' still round-trip: the differences say it all.
    let shifted: Vec<i64> = ts.iter().map(|t| t + 3_600_000_000_000).collect();
    round_trip_stamped(&lines, &shifted, LineTemplates::Auto);
}

#[test]
fn clock_fields_are_chosen_by_exact_values() {
    let refs = [0i64, 61_000_000_000, 3_723_000_000_000];
    // Seconds 0, 1, 3: field 6 (second) and not field 5 (minute: 0, 1, 2).
    assert_eq!(clock_field(&[0, 1, 3], &refs, 1), Some(6));
    // Hours 0, 0, 1: field 4; the minutes' field agrees only for two of three.
    assert_eq!(clock_field(&[0, 0, 1], &refs, 1), Some(4));
    // Zeros: exactly the nanoseconds, which are 0 in every line: chance, not a clock.
    assert_eq!(clock_field(&[0, 0, 0], &refs, 1), None);
    // Under nine tenths exact: none.
    assert_eq!(clock_field(&[7, 1, 3], &refs, 1), None);
    // One value: a clock only if shorter than its text.
    assert_eq!(clock_field(&[1970], &refs[..1], 4), Some(0));
    assert_eq!(clock_field(&[0], &refs[..1], 2), None);
    assert_eq!(
        clock_field(&[0, 1, 3], &[], 1),
        None,
        "no timestamps, no clock"
    );
}

#[test]
fn layouts_round_trip() {
    let shaped: Vec<String> = (0..40)
        .map(|i| format!("081109 2036{i:02} {} INFO blk_-{}77 é", i % 3, i * 7919))
        .collect();
    let shaped: Vec<&str> = shaped.iter().map(String::as_str).collect();
    assert_eq!(round_trip(&shaped, LineTemplates::Auto), LAYOUT_TEMPLATES);
    assert_eq!(round_trip(&shaped, LineTemplates::Off), LAYOUT_NEWLINES);
    assert_eq!(
        round_trip(&["a\nb", "", "c"], LineTemplates::Off),
        LAYOUT_LENGTHS
    );
    // Every line its own shape: not worth templates.
    assert_eq!(
        round_trip(&["w1", "x2", "y3", "z4"], LineTemplates::Auto),
        LAYOUT_NEWLINES
    );
    let same = ["x\n1", "x\n2", "x\n3", "x\n4", "x\n5", "x\n6", "x\n7", ""];
    assert_eq!(round_trip(&same, LineTemplates::Auto), LAYOUT_TEMPLATES);
}

fn shaped_lines(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| match i % 3 {
            0 => format!("{i:06} INFO blk_{} served to /10.0.0.{}", i * 7919, i % 7),
            1 => format!("{i:06} WARN retry {} of 3", i % 4),
            _ => format!("{i:06} INFO done in {}ms", i * 13 % 1000),
        })
        .collect()
}

/// Every single-byte change and every truncation of a templated column decodes to a
/// result (the lines or an error), never a panic, and never rebuilds more than the header's
/// line bytes.
#[test]
fn damaged_templates_give_errors_not_panics() {
    let shaped = (shaped_lines(60), Vec::new());
    for (lines, ts) in [shaped, clock_lines(60)] {
        damage(&lines, &ts);
    }
}

fn damage(lines: &[String], ts: &[i64]) {
    let mut out = Vec::new();
    encode_lines(
        lines.iter().map(String::as_str),
        lines.len(),
        LineTemplates::Auto,
        ts,
        &mut out,
    );
    assert_eq!(out[0], LAYOUT_TEMPLATES);
    if !ts.is_empty() {
        assert!(out.contains(&SLOT_CLOCK), "the lines print their times");
    }
    let total: u64 = lines.iter().map(|l| l.len() as u64).sum();
    let (mut ranges, mut text) = (Vec::new(), Vec::new());
    let stamps = (!ts.is_empty()).then_some(ts);
    let mut decode = |b: &[u8], max: u64| {
        let mut pos = 1;
        let r = decode_lines(
            b,
            &mut pos,
            b[0],
            lines.len(),
            max,
            stamps,
            &mut ranges,
            &mut text,
        );
        assert!(text.len() as u64 <= max);
        r
    };
    assert!(decode(&out, total).is_ok());
    assert!(
        decode(&out, total - 1).is_err(),
        "more line bytes than the header's"
    );
    let mut copy = out.clone();
    for pos in 1..out.len() {
        for flip in [1u8, 0x80, 0xff] {
            copy[pos] ^= flip;
            let _ = decode(&copy, total);
            copy[pos] ^= flip;
        }
    }
    for end in 1..out.len() {
        assert!(decode(&out[..end], total).is_err(), "cut at {end}");
    }
}

proptest::proptest! {
    #[test]
    fn any_lines_round_trip(
        lines in proptest::collection::vec(
            proptest::prop_oneof![
                "[a-z ]{0,3}[0-9a-f]{1,6}( x=[0-9]{1,4})?\n?",
                "\\PC{0,20}",
            ],
            1..80,
        ),
        templates in proptest::prop_oneof![
            proptest::strategy::Just(LineTemplates::Off),
            proptest::strategy::Just(LineTemplates::Auto),
        ],
        first in proptest::prelude::any::<i64>(),
        stamped in proptest::prelude::any::<bool>(),
    ) {
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        // Timestamps one second apart from anywhere (saturating at the end of time), so
        // that numbers of the lines sometimes match a field.
        let ts: Vec<i64> = if stamped {
            (0..lines.len() as i64).map(|i| first.saturating_add(i * 1_000_000_000)).collect()
        } else {
            Vec::new()
        };
        round_trip_stamped(&lines, &ts, templates);
    }

    #[test]
    fn printed_times_round_trip(first in -4_000_000_000_000_000_000i64..4_000_000_000_000_000_000, step in 0i64..100_000_000_000, n in 1usize..60) {
        let ts: Vec<i64> = (0..n as i64).map(|i| first + i * step).collect();
        let lines: Vec<String> = ts
            .iter()
            .map(|&t| {
                let f = clock_fields(t);
                format!("{} {:06} {:06}.{:09} up {}s", f[15], f[14], f[10].rem_euclid(1_000_000), f[9], f[11] % 977)
            })
            .collect();
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        round_trip_stamped(&lines, &ts, LineTemplates::Auto);
    }
}

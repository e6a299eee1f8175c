//! The time field of a JSON line: RFC 3339 text or a Unix timestamp in any common unit.
//!
//! Which question it answers: "when did this object say it happened?" Text is RFC 3339 (a
//! space may stand for the `T`; without a zone the time is UTC). Numbers, as JSON numbers or
//! as strings of digits, are seconds, milliseconds, microseconds or nanoseconds, told apart
//! by magnitude as VictoriaLogs does. Decimal strings are scaled exactly, digit by digit.

use super::FieldValue;
use crate::ingest::push::validate::echo;

/// Numbers below this are seconds since the epoch (1e11 s is the year 5138).
const SECONDS_BELOW: u128 = 100_000_000_000;
/// Numbers below this (and not seconds) are milliseconds.
const MILLIS_BELOW: u128 = 100_000_000_000_000;
/// Numbers below this (and not milliseconds) are microseconds; larger ones are nanoseconds.
const MICROS_BELOW: u128 = 100_000_000_000_000_000;

/// The nanoseconds one unit of a number of this magnitude stands for.
fn unit_ns(magnitude: u128) -> u32 {
    if magnitude < SECONDS_BELOW {
        1_000_000_000
    } else if magnitude < MILLIS_BELOW {
        1_000_000
    } else if magnitude < MICROS_BELOW {
        1_000
    } else {
        1
    }
}

/// A time field's value in nanoseconds: RFC 3339 text, or a number of seconds, milliseconds,
/// microseconds or nanoseconds (told apart by magnitude), as a JSON number or a string.
/// Zero and the empty string mean "now", as in VictoriaLogs.
pub(super) fn parse_time(value: &FieldValue, now_ns: i64) -> Result<i64, String> {
    match value {
        FieldValue::Str(s) => parse_time_str(s.trim(), now_ns),
        FieldValue::U64(0) | FieldValue::I64(0) => Ok(now_ns),
        FieldValue::U64(v) => scale_int(i128::from(*v)),
        FieldValue::I64(v) => scale_int(i128::from(*v)),
        FieldValue::F64(v) => scale_float(*v),
        FieldValue::Bool(_) | FieldValue::Json(_) => {
            Err("expected an RFC 3339 time or a Unix timestamp".into())
        }
    }
}

fn parse_time_str(s: &str, now_ns: i64) -> Result<i64, String> {
    if s.is_empty() || s == "0" {
        return Ok(now_ns);
    }
    let digits = s.strip_prefix('-').unwrap_or(s);
    if digits.starts_with(|c: char| c.is_ascii_digit())
        && digits.bytes().all(|b| b.is_ascii_digit() || b == b'.')
    {
        return parse_decimal_time(s);
    }
    parse_rfc3339(s)
}

fn out_of_range() -> String {
    format!(
        "the time is outside the accepted range {}",
        crate::ingest::time_range::TIMESTAMP_RANGE_TEXT
    )
}

pub(super) fn scale_int(v: i128) -> Result<i64, String> {
    let ns = v * i128::from(unit_ns(v.unsigned_abs()));
    i64::try_from(ns).map_err(|_| out_of_range())
}

fn scale_float(v: f64) -> Result<i64, String> {
    if !v.is_finite() {
        return Err("expected a finite number".into());
    }
    let magnitude = v.abs();
    let unit = if magnitude >= u128::MAX as f64 {
        1
    } else {
        unit_ns(magnitude as u128)
    };
    let ns = (v * f64::from(unit)).round();
    const LIMIT: f64 = 9.223_372_036_854_775e18;
    if (-LIMIT..LIMIT).contains(&ns) {
        Ok(ns as i64)
    } else {
        Err(out_of_range())
    }
}

/// A decimal number as text, scaled exactly: `1704110400.123456789` keeps every digit.
fn parse_decimal_time(s: &str) -> Result<i64, String> {
    let bad = || format!("'{}' is not a number", echo(s));
    let (negative, unsigned) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (int_part, frac_part) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    if int_part.is_empty() || frac_part.contains('.') {
        return Err(bad());
    }
    // More than 20 digits cannot be a time in range, and would overflow the parse.
    if int_part.len() > 20 {
        return Err(out_of_range());
    }
    let int: u128 = int_part.parse().map_err(|_| bad())?;
    let unit = unit_ns(int);
    let mut ns = int * u128::from(unit);
    // The fraction contributes its leading digits down to one nanosecond; the rest is cut.
    let mut place = u128::from(unit) / 10;
    for b in frac_part.bytes() {
        if place == 0 {
            break;
        }
        ns += u128::from(b - b'0') * place;
        place /= 10;
    }
    let ns = i128::try_from(ns).map_err(|_| out_of_range())?;
    i64::try_from(if negative { -ns } else { ns }).map_err(|_| out_of_range())
}

/// RFC 3339 with `T` or a space between date and time; without a zone the time is UTC.
fn parse_rfc3339(s: &str) -> Result<i64, String> {
    use time::format_description::well_known::Rfc3339;
    use time::macros::format_description;
    let normalised;
    let s = if s.as_bytes().get(10) == Some(&b' ') {
        normalised = format!("{}T{}", &s[..10], &s[11..]);
        normalised.as_str()
    } else {
        s
    };
    let instant = match time::OffsetDateTime::parse(s, &Rfc3339) {
        Ok(t) => t,
        Err(with_zone) => {
            let local = format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second][optional [.[subsecond]]]"
            );
            time::PrimitiveDateTime::parse(s, local)
                .map(|t| t.assume_utc())
                .map_err(|_| format!("'{}' is not an RFC 3339 time: {with_zone}", echo(s)))?
        }
    };
    i64::try_from(instant.unix_timestamp_nanos()).map_err(|_| out_of_range())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::borrow::Cow;

    const NOW: i64 = 1_000;

    #[test]
    fn time_forms() {
        let t = |v: FieldValue| parse_time(&v, NOW);
        let s = |x: &str| t(FieldValue::Str(Cow::Borrowed(x)));
        const BASE: i64 = 1_704_110_400_000_000_000;
        assert_eq!(s("2024-01-01T12:00:00Z"), Ok(BASE));
        assert_eq!(s("2024-01-01T12:00:00.5Z"), Ok(BASE + 500_000_000));
        assert_eq!(s("2024-01-01T14:00:00.000000001+02:00"), Ok(BASE + 1));
        assert_eq!(s("2024-01-01T12:00:00"), Ok(BASE));
        assert_eq!(s("2024-01-01 12:00:00.25"), Ok(BASE + 250_000_000));
        assert_eq!(s("2024-01-01 12:00:00Z"), Ok(BASE));
        assert_eq!(s("1704110400"), Ok(BASE));
        assert_eq!(s("1704110400.123456789"), Ok(BASE + 123_456_789));
        assert_eq!(s("1704110400123"), Ok(BASE + 123_000_000));
        assert_eq!(s("1704110400123456"), Ok(BASE + 123_456_000));
        assert_eq!(s("1704110400123456789"), Ok(BASE + 123_456_789));
        assert_eq!(s("-1.5"), Ok(-1_500_000_000));
        assert_eq!(s(""), Ok(NOW));
        assert_eq!(s("0"), Ok(NOW));
        assert_eq!(t(FieldValue::U64(0)), Ok(NOW));
        assert_eq!(t(FieldValue::U64(1_704_110_400)), Ok(BASE));
        assert_eq!(
            t(FieldValue::I64(1_704_110_400_123)),
            Ok(BASE + 123_000_000)
        );
        assert_eq!(t(FieldValue::F64(1_704_110_400.5)), Ok(BASE + 500_000_000));
        assert_eq!(
            t(FieldValue::U64(1_704_110_400_123_456_789)),
            Ok(BASE + 123_456_789)
        );
        for bad in [
            "1.2.3",
            "12:00",
            "2024-13-01T00:00:00Z",
            "99999999999999999999999",
            "1e9",
            "-",
            ".",
        ] {
            assert!(s(bad).is_err(), "{bad}");
        }
        assert!(t(FieldValue::U64(u64::MAX)).is_err());
        assert!(t(FieldValue::F64(f64::MAX)).is_err());
        assert!(t(FieldValue::F64(-1e30)).is_err());
    }

    proptest! {
        #[test]
        fn arbitrary_time_strings_never_panic(s in "[0-9.:TZ+ -]{0,30}") {
            let _ = parse_time(&FieldValue::Str(Cow::Owned(s)), NOW);
        }
    }
}

//! Timestamps of syslog headers: RFC 3339 (RFC 5424 and ISO forms in BSD messages) and the
//! BSD `Mmm dd hh:mm:ss` form without a year, to nanoseconds since the epoch, with the
//! calendar arithmetic they need. Every field is range-checked; nothing here panics.

use super::{
    FRACTION_DIGITS_MAX, MISSING_YEAR_FUTURE_NS, NS_PER_DAY, NS_PER_SEC, ParseContext, SP,
};

/// An RFC 3339 timestamp at the front of `b`: `YYYY-MM-DDThh:mm:ss[.frac](Z|+hh:mm|+hhmm)`.
/// Without `zone_required`, a missing zone means UTC. Returns the time (`None` if outside
/// what i64 nanoseconds hold, years 1677..2262) and the bytes read; `None` if not a timestamp.
pub(super) fn parse_rfc3339(b: &[u8], zone_required: bool) -> Option<(Option<i64>, usize)> {
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't') {
        return None;
    }
    let year = number(&b[0..4])?;
    let month = number(&b[5..7])?;
    let day = number(&b[8..10])?;
    let (secs_of_day, mut i) = time_of_day(&b[11..])?;
    i += 11;
    let (nanos, frac_len) = fraction(&b[i..])?;
    i += frac_len;
    let offset_secs = match b.get(i) {
        Some(b'Z' | b'z') => {
            i += 1;
            0
        }
        Some(&sign @ (b'+' | b'-')) => {
            let hh = number(b.get(i + 1..i + 3)?)?;
            let (mm, len) = if b.get(i + 3) == Some(&b':') {
                (number(b.get(i + 4..i + 6)?)?, 6)
            } else {
                (number(b.get(i + 3..i + 5)?)?, 5)
            };
            if hh > 23 || mm > 59 {
                return None;
            }
            i += len;
            let secs = i64::from(hh * 3600 + mm * 60);
            if sign == b'+' { secs } else { -secs }
        }
        _ if zone_required => return None,
        _ => 0,
    };
    let days = days_from_civil_checked(i64::from(year), month, day)?;
    Some((to_ns(days, secs_of_day - offset_secs, nanos), i))
}

/// A BSD timestamp at the front of `b`: `Mmm dd hh:mm:ss` with the day space-padded or not,
/// optionally with a fraction. The year is inferred from `ctx.now_ns`.
pub(super) fn parse_bsd_timestamp(b: &[u8], ctx: &ParseContext) -> Option<(Option<i64>, usize)> {
    let month = month_number(b.get(0..3)?)?;
    if b.get(3) != Some(&SP) {
        return None;
    }
    let mut i = 4 + usize::from(b.get(4) == Some(&SP));
    let day_len = b[i..]
        .iter()
        .take(3)
        .take_while(|c| c.is_ascii_digit())
        .count();
    if !(1..=2).contains(&day_len) || b.get(i + day_len) != Some(&SP) {
        return None;
    }
    let day = number(&b[i..i + day_len])?;
    i += day_len + 1;
    let (secs_of_day, len) = time_of_day(&b[i..])?;
    i += len;
    let (nanos, frac_len) = fraction(&b[i..])?;
    i += frac_len;
    if !(1..=31).contains(&day) {
        return None;
    }
    Some((infer_year(month, day, secs_of_day, nanos, ctx.now_ns), i))
}

/// The time of a month/day/time without a year: the latest year in which it is not more
/// than [`MISSING_YEAR_FUTURE_NS`] after now. Eight years back reaches a leap year for a
/// February 29th.
pub(super) fn infer_year(
    month: u32,
    day: u32,
    secs_of_day: i64,
    nanos: i64,
    now_ns: i64,
) -> Option<i64> {
    let now_year = year_of_days(now_ns.div_euclid(NS_PER_DAY));
    let latest = now_ns.saturating_add(MISSING_YEAR_FUTURE_NS);
    (now_year - 8..=now_year + 1)
        .rev()
        .filter_map(|year| days_from_civil_checked(year, month, day))
        .filter_map(|days| to_ns(days, secs_of_day, nanos))
        .find(|&ns| ns <= latest)
}

/// `hh:mm:ss` (second 60 allowed for a leap second) as seconds of the day, and its length.
pub(super) fn time_of_day(b: &[u8]) -> Option<(i64, usize)> {
    let b = b.get(0..8)?;
    if b[2] != b':' || b[5] != b':' {
        return None;
    }
    let (h, m, s) = (number(&b[0..2])?, number(&b[3..5])?, number(&b[6..8])?);
    if h > 23 || m > 59 || s > 60 {
        return None;
    }
    Some((i64::from(h * 3600 + m * 60 + s), 8))
}

/// An optional `.digits` fraction of a second: nanoseconds and length (0 if absent).
pub(super) fn fraction(b: &[u8]) -> Option<(i64, usize)> {
    if b.first() != Some(&b'.') {
        return Some((0, 0));
    }
    let digits = b[1..]
        .iter()
        .take(FRACTION_DIGITS_MAX + 1)
        .take_while(|c| c.is_ascii_digit())
        .count();
    if !(1..=FRACTION_DIGITS_MAX).contains(&digits) {
        return None;
    }
    let scale = 10i64.pow((FRACTION_DIGITS_MAX - digits) as u32);
    Some((digits_value(&b[1..1 + digits]) as i64 * scale, digits + 1))
}

pub(super) fn to_ns(days: i64, secs: i64, nanos: i64) -> Option<i64> {
    days.checked_mul(86_400)?
        .checked_add(secs)?
        .checked_mul(NS_PER_SEC)?
        .checked_add(nanos)
}

pub(super) fn month_number(b: &[u8]) -> Option<u32> {
    const MONTHS: [&[u8; 3]; 12] = [
        b"jan", b"feb", b"mar", b"apr", b"may", b"jun", b"jul", b"aug", b"sep", b"oct", b"nov",
        b"dec",
    ];
    let lower = [
        b[0].to_ascii_lowercase(),
        b[1].to_ascii_lowercase(),
        b[2].to_ascii_lowercase(),
    ];
    MONTHS
        .iter()
        .position(|m| **m == lower)
        .map(|i| i as u32 + 1)
}

/// All-digit bytes as a number (short fields only).
pub(super) fn number(b: &[u8]) -> Option<u32> {
    b.iter()
        .all(u8::is_ascii_digit)
        .then(|| digits_value(b) as u32)
}

pub(super) fn digits_value(b: &[u8]) -> u64 {
    b.iter()
        .fold(0u64, |acc, &d| acc * 10 + u64::from(d - b'0'))
}

pub(super) fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

pub(super) fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date, `None` if the date does not exist.
/// (H. Hinnant's `days_from_civil`.)
pub(super) fn days_from_civil_checked(year: i64, month: u32, day: u32) -> Option<i64> {
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((month + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

/// The year of a day count since 1970-01-01 (H. Hinnant's `civil_from_days`).
pub(super) fn year_of_days(days: i64) -> i64 {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let year = yoe + era * 400;
    if mp >= 10 { year + 1 } else { year }
}

// ---- Names and the stored entry ----------------------------------------------------------

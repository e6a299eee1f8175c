//! Go's `time.Time` as Loki's template functions see it: instants with a location, Go's
//! reference-date layouts for formatting (`date`, `.Format`) and parsing (`toDate`,
//! `toDateInZone`), `Time.String()`, and `time.LoadLocation` over the system's zoneinfo.
//!
//! Which question it answers: "what text does Go print for this instant with this layout,
//! and what instant does Go read from this text?" The server's local time zone is UTC
//! (Loki uses the host's; the conformance expectations assume UTC), so `Local` behaves as
//! UTC but keeps its own identity, as in Go.
//!
//! Parsing a text against a layout is in `parse`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::zoneinfo::Zone;

mod parse;
pub(crate) use parse::parse_in_location;

const SECONDS_PER_DAY: i64 = 86_400;

/// The instants arithmetic may produce stay within ±2^62 seconds (± 146 billion years), so
/// that calendar and zone computations on them cannot overflow. Go's own range is wider
/// but its arithmetic wraps there.
pub(crate) const SECONDS_MAX: i64 = 1 << 62;

/// The years `Date` normalises into (the calendar of [`SECONDS_MAX`]).
const YEAR_MAX: i128 = 146_000_000_000;
const NANOS_PER_SECOND: i64 = 1_000_000_000;

/// Go's `time.Location`, as far as templates can obtain one.
#[derive(Clone, Debug)]
pub(crate) enum Location {
    /// `time.UTC`, and the zero `Time`'s location.
    Utc,
    /// `time.Local`: UTC on this server, but a distinct location (as Go's `==` sees it).
    Local,
    /// A zone made up by parsing (`FixedZone(name, offset)`).
    Fixed { name: Arc<str>, offset: i32 },
    /// A zone of the IANA database, read from the system's zoneinfo.
    Zone(Arc<Zone>),
}

impl Location {
    /// Go's `Location.lookup`: the zone abbreviation and UTC offset in effect at `sec`, and
    /// the interval `[start, end)` around it during which they hold.
    fn lookup(&self, sec: i64) -> (Arc<str>, i32, i64, i64) {
        match self {
            Location::Utc | Location::Local => (utc_name(), 0, i64::MIN, i64::MAX),
            Location::Fixed { name, offset } => (name.clone(), *offset, i64::MIN, i64::MAX),
            Location::Zone(z) => z.lookup(sec),
        }
    }

    /// Go's `Location.lookupName`: the offset of a zone abbreviation in this location
    /// around `unix`, if the location knows the abbreviation.
    fn lookup_name(&self, name: &str, unix: i64) -> Option<i32> {
        match self {
            // Go's Local on a UTC host is a one-zone location named "UTC".
            Location::Local => (name == "UTC").then_some(0),
            Location::Utc => None,
            Location::Fixed { name: n, offset } => (&**n == name).then_some(*offset),
            Location::Zone(z) => z.lookup_name(name, unix),
        }
    }

    fn same(&self, other: &Location) -> bool {
        match (self, other) {
            (Location::Utc, Location::Utc) | (Location::Local, Location::Local) => true,
            (Location::Fixed { name: a, offset: x }, Location::Fixed { name: b, offset: y }) => {
                a == b && x == y
            }
            (Location::Zone(a), Location::Zone(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

fn utc_name() -> Arc<str> {
    static UTC: std::sync::OnceLock<Arc<str>> = std::sync::OnceLock::new();
    UTC.get_or_init(|| Arc::from("UTC")).clone()
}

/// Go's `time.Time`: an instant (seconds and nanoseconds since the Unix epoch) and the
/// location it is shown in.
#[derive(Clone, Debug)]
pub(crate) struct Time {
    sec: i64,
    nsec: u32,
    loc: Location,
}

/// The zero `Time`: January 1, year 1, 00:00:00 UTC, what `toDate` returns on a parse error.
pub(crate) const ZERO_TIME_UNIX: i64 = -62_135_596_800;

impl Time {
    pub(crate) fn zero() -> Time {
        Time {
            sec: ZERO_TIME_UNIX,
            nsec: 0,
            loc: Location::Utc,
        }
    }

    /// Go's `time.Unix(sec, nsec)`, in the local location.
    pub(crate) fn unix(sec: i64, nsec: i64) -> Time {
        let sec = sec.wrapping_add(nsec.div_euclid(NANOS_PER_SECOND));
        let nsec = nsec.rem_euclid(NANOS_PER_SECOND) as u32;
        Time {
            sec,
            nsec,
            loc: Location::Local,
        }
    }

    /// Go's `time.Now()`.
    pub(crate) fn now() -> Time {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Time::unix(d.as_secs() as i64, i64::from(d.subsec_nanos()))
    }

    pub(crate) fn unix_sec(&self) -> i64 {
        self.sec
    }

    pub(crate) fn nanosecond(&self) -> u32 {
        self.nsec
    }

    /// Go's `UnixMilli`; out of range it wraps, as Go's arithmetic does.
    pub(crate) fn unix_milli(&self) -> i64 {
        self.sec
            .wrapping_mul(1000)
            .wrapping_add(i64::from(self.nsec / 1_000_000))
    }

    pub(crate) fn unix_micro(&self) -> i64 {
        self.sec
            .wrapping_mul(1_000_000)
            .wrapping_add(i64::from(self.nsec / 1000))
    }

    /// Go's `UnixNano`: undefined (here: wrapped) outside the years 1678 to 2262.
    pub(crate) fn unix_nano(&self) -> i64 {
        self.sec
            .wrapping_mul(NANOS_PER_SECOND)
            .wrapping_add(i64::from(self.nsec))
    }

    pub(crate) fn in_location(&self, loc: Location) -> Time {
        Time {
            sec: self.sec,
            nsec: self.nsec,
            loc,
        }
    }

    pub(crate) fn is_zero(&self) -> bool {
        self.sec == ZERO_TIME_UNIX && self.nsec == 0
    }

    /// Go's `==` on two `Time` values: same instant, same location.
    pub(crate) fn identical(&self, other: &Time) -> bool {
        self.sec == other.sec && self.nsec == other.nsec && self.loc.same(&other.loc)
    }

    pub(crate) fn cmp_instant(&self, other: &Time) -> std::cmp::Ordering {
        (self.sec, self.nsec).cmp(&(other.sec, other.nsec))
    }

    /// Adds a duration in nanoseconds (Go's `Add`).
    pub(crate) fn add_nanos(&self, d: i64) -> Time {
        let total = i128::from(self.nsec) + i128::from(d);
        let sec = i128::from(self.sec) + total.div_euclid(NANOS_PER_SECOND as i128);
        Time {
            sec: sec.clamp(-i128::from(SECONDS_MAX), i128::from(SECONDS_MAX)) as i64,
            nsec: total.rem_euclid(NANOS_PER_SECOND as i128) as u32,
            loc: self.loc.clone(),
        }
    }

    /// The difference in nanoseconds, saturated to Go's `Duration` range (Go's `Sub`).
    pub(crate) fn sub_nanos(&self, other: &Time) -> i64 {
        let d = (i128::from(self.sec) - i128::from(other.sec)) * NANOS_PER_SECOND as i128
            + i128::from(self.nsec)
            - i128::from(other.nsec);
        d.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
    }

    /// The zone abbreviation and offset in effect at this instant.
    pub(crate) fn zone(&self) -> (Arc<str>, i32) {
        let (name, offset, _, _) = self.loc.lookup(self.sec);
        (name, offset)
    }

    /// The wall clock of this instant in its location.
    pub(crate) fn civil(&self) -> Civil {
        let (_, offset) = self.zone();
        Civil::from_unix(self.sec.saturating_add(i64::from(offset)), self.nsec)
    }

    /// Go's `Date(year, month, day, hour, min, sec, nsec, loc)`, normalising overflowing
    /// fields as Go does.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn date(
        year: i64,
        month: i64,
        day: i64,
        hour: i64,
        min: i64,
        sec: i64,
        nsec: i64,
        loc: Location,
    ) -> Time {
        // Normalise month into [1, 12], carrying into the year, then everything below a day
        // into seconds; i128 and a clamped year keep absurd inputs from overflowing.
        let m0 = i128::from(month) - 1;
        let year = (i128::from(year) + m0.div_euclid(12)).clamp(-YEAR_MAX, YEAR_MAX) as i64;
        let month = (m0.rem_euclid(12) + 1) as u32;
        let days = i128::from(days_from_civil(year, month, 1)) + i128::from(day) - 1;
        let nsec_total = i128::from(nsec);
        let secs = days * SECONDS_PER_DAY as i128
            + i128::from(hour) * 3600
            + i128::from(min) * 60
            + i128::from(sec)
            + nsec_total.div_euclid(NANOS_PER_SECOND as i128);
        let nsec = nsec_total.rem_euclid(NANOS_PER_SECOND as i128) as u32;
        let mut unix = secs.clamp(-i128::from(SECONDS_MAX), i128::from(SECONDS_MAX)) as i64;
        // Look up the zone offset for the wall time, then adjust near a transition (Go's
        // two-step lookup).
        let (_, offset, start, end) = loc.lookup(unix);
        if offset != 0 {
            let utc = unix - i64::from(offset);
            let offset = if utc < start || utc >= end {
                loc.lookup(utc).1
            } else {
                offset
            };
            unix -= i64::from(offset);
        }
        Time {
            sec: unix,
            nsec,
            loc,
        }
    }

    /// Go's `AddDate`.
    pub(crate) fn add_date(&self, years: i64, months: i64, days: i64) -> Time {
        let c = self.civil();
        Time::date(
            c.year.saturating_add(years),
            i64::from(c.month).saturating_add(months),
            i64::from(c.day).saturating_add(days),
            i64::from(c.hour),
            i64::from(c.minute),
            i64::from(c.second),
            i64::from(c.nsec),
            self.loc.clone(),
        )
    }

    /// Go's `Time.String()` (without the monotonic clock reading `now` carries in Go).
    pub(crate) fn go_string(&self) -> String {
        self.format("2006-01-02 15:04:05.999999999 -0700 MST")
    }

    /// Go's `Time.Format(layout)`.
    pub(crate) fn format(&self, layout: &str) -> String {
        let (name, offset) = self.zone();
        let c = Civil::from_unix(self.sec.saturating_add(i64::from(offset)), self.nsec);
        let mut b = String::with_capacity(layout.len() + 10);
        let mut rest = layout;
        while !rest.is_empty() {
            let (prefix, std, suffix) = next_std_chunk(rest);
            b.push_str(prefix);
            rest = suffix;
            let Some(std) = std else { break };
            format_std(&mut b, std, &c, &name, offset);
        }
        b
    }
}

/// A wall-clock reading: the broken-down fields of an instant in some zone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Civil {
    pub(crate) year: i64,
    pub(crate) month: u32,
    pub(crate) day: u32,
    pub(crate) hour: u32,
    pub(crate) minute: u32,
    pub(crate) second: u32,
    pub(crate) nsec: u32,
    /// 0 is Sunday, as Go's `time.Weekday`.
    pub(crate) weekday: u32,
    /// 1 to 366.
    pub(crate) yday: u32,
}

impl Civil {
    fn from_unix(local_sec: i64, nsec: u32) -> Civil {
        let days = local_sec.div_euclid(SECONDS_PER_DAY);
        let secs = local_sec.rem_euclid(SECONDS_PER_DAY) as u32;
        let (year, month, day) = civil_from_days(days);
        let yday = (days - days_from_civil(year, 1, 1)) as u32 + 1;
        Civil {
            year,
            month,
            day,
            hour: secs / 3600,
            minute: secs / 60 % 60,
            second: secs % 60,
            nsec,
            weekday: (days + 4).rem_euclid(7) as u32,
            yday,
        }
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub(crate) fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

pub(crate) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

pub(crate) fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

pub(crate) fn days_in(month: u32, year: i64) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days in a non-leap year before the first of `month` (1-based; 13 is the whole year).
pub(crate) fn days_before(month: u32) -> u32 {
    const CUMULATIVE: [u32; 13] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334, 365];
    CUMULATIVE[(month.clamp(1, 13) - 1) as usize]
}

const LONG_MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const LONG_DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// The name Go prints for a `time.Month` (1-based); out of range `%!Month(n)`.
pub(crate) fn month_name(m: i64) -> String {
    if (1..=12).contains(&m) {
        LONG_MONTHS[(m - 1) as usize].to_string()
    } else {
        format!("%!Month({m})")
    }
}

/// The name Go prints for a `time.Weekday` (0 is Sunday); out of range `%!Weekday(n)`.
pub(crate) fn weekday_name(d: i64) -> String {
    if (0..7).contains(&d) {
        LONG_DAYS[d as usize].to_string()
    } else {
        format!("%!Weekday({d})")
    }
}

/// One element of a Go layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Std {
    LongMonth,
    Month,
    NumMonth,
    ZeroMonth,
    LongWeekDay,
    WeekDay,
    Day,
    UnderDay,
    ZeroDay,
    UnderYearDay,
    ZeroYearDay,
    Hour,
    Hour12,
    ZeroHour12,
    Minute,
    ZeroMinute,
    Second,
    ZeroSecond,
    LongYear,
    Year,
    PM,
    Pm,
    TZ,
    Iso8601TZ,
    Iso8601SecondsTZ,
    Iso8601ShortTZ,
    Iso8601ColonTZ,
    Iso8601ColonSecondsTZ,
    NumTZ,
    NumSecondsTz,
    NumShortTZ,
    NumColonTZ,
    NumColonSecondsTZ,
    /// `.000`: exactly `digits` digits, with `.` or `,` as the separator.
    FracSecond0 {
        digits: usize,
        sep: u8,
    },
    /// `.999`: up to `digits` digits, trailing zeros dropped.
    FracSecond9 {
        digits: usize,
        sep: u8,
    },
}

/// Go's `nextStdChunk`: the text before the first layout element, the element, and the rest.
fn next_std_chunk(layout: &str) -> (&str, Option<Std>, &str) {
    let l = layout.as_bytes();
    let at = |i: usize, s: &str| l.len() >= i + s.len() && &l[i..i + s.len()] == s.as_bytes();
    for i in 0..l.len() {
        let chunk = |n: usize, std: Std| (&layout[..i], Some(std), &layout[i + n..]);
        match l[i] {
            b'J' if at(i, "Jan") => {
                if at(i, "January") {
                    return chunk(7, Std::LongMonth);
                }
                if !starts_with_lower(&l[i + 3..]) {
                    return chunk(3, Std::Month);
                }
            }
            b'M' => {
                if at(i, "Mon") {
                    if at(i, "Monday") {
                        return chunk(6, Std::LongWeekDay);
                    }
                    if !starts_with_lower(&l[i + 3..]) {
                        return chunk(3, Std::WeekDay);
                    }
                }
                if at(i, "MST") {
                    return chunk(3, Std::TZ);
                }
            }
            b'0' => {
                if l.len() >= i + 2 && (b'1'..=b'6').contains(&l[i + 1]) {
                    let std = [
                        Std::ZeroMonth,
                        Std::ZeroDay,
                        Std::ZeroHour12,
                        Std::ZeroMinute,
                        Std::ZeroSecond,
                        Std::Year,
                    ][(l[i + 1] - b'1') as usize];
                    return chunk(2, std);
                }
                if at(i, "002") {
                    return chunk(3, Std::ZeroYearDay);
                }
            }
            b'1' => {
                if l.len() >= i + 2 && l[i + 1] == b'5' {
                    return chunk(2, Std::Hour);
                }
                return chunk(1, Std::NumMonth);
            }
            b'2' => {
                if at(i, "2006") {
                    return chunk(4, Std::LongYear);
                }
                return chunk(1, Std::Day);
            }
            b'_' => {
                if l.len() >= i + 2 && l[i + 1] == b'2' {
                    // `_2006` is a literal `_` and then the long year.
                    if at(i + 1, "2006") {
                        return (&layout[..i + 1], Some(Std::LongYear), &layout[i + 5..]);
                    }
                    return chunk(2, Std::UnderDay);
                }
                if at(i, "__2") {
                    return chunk(3, Std::UnderYearDay);
                }
            }
            b'3' => return chunk(1, Std::Hour12),
            b'4' => return chunk(1, Std::Minute),
            b'5' => return chunk(1, Std::Second),
            b'P' if at(i, "PM") => return chunk(2, Std::PM),
            b'p' if at(i, "pm") => return chunk(2, Std::Pm),
            b'-' => {
                for (s, std) in [
                    ("-070000", Std::NumSecondsTz),
                    ("-07:00:00", Std::NumColonSecondsTZ),
                    ("-0700", Std::NumTZ),
                    ("-07:00", Std::NumColonTZ),
                    ("-07", Std::NumShortTZ),
                ] {
                    if at(i, s) {
                        return chunk(s.len(), std);
                    }
                }
            }
            b'Z' => {
                for (s, std) in [
                    ("Z070000", Std::Iso8601SecondsTZ),
                    ("Z07:00:00", Std::Iso8601ColonSecondsTZ),
                    ("Z0700", Std::Iso8601TZ),
                    ("Z07:00", Std::Iso8601ColonTZ),
                    ("Z07", Std::Iso8601ShortTZ),
                ] {
                    if at(i, s) {
                        return chunk(s.len(), std);
                    }
                }
            }
            b'.' | b',' if i + 1 < l.len() && (l[i + 1] == b'0' || l[i + 1] == b'9') => {
                let ch = l[i + 1];
                let mut j = i + 1;
                while j < l.len() && l[j] == ch {
                    j += 1;
                }
                // Only a fraction if the run of digits ends here.
                if !(j < l.len() && l[j].is_ascii_digit()) {
                    let digits = j - (i + 1);
                    let sep = l[i];
                    let std = if ch == b'0' {
                        Std::FracSecond0 { digits, sep }
                    } else {
                        Std::FracSecond9 { digits, sep }
                    };
                    return (&layout[..i], Some(std), &layout[j..]);
                }
            }
            _ => {}
        }
    }
    (layout, None, "")
}

/// Go's `startsWithLowerCase`: `Janet` is not `Jan` followed by `et`.
fn starts_with_lower(s: &[u8]) -> bool {
    s.first().is_some_and(|c| c.is_ascii_lowercase())
}

/// Go's `appendInt`: the decimal form of `x`, zero-padded to `width` digits after the sign.
fn append_int(b: &mut String, x: i64, width: usize) {
    if x < 0 {
        b.push('-');
    }
    let digits = x.unsigned_abs().to_string();
    for _ in digits.len()..width {
        b.push('0');
    }
    b.push_str(&digits);
}

fn format_std(b: &mut String, std: Std, c: &Civil, name: &str, offset: i32) {
    match std {
        Std::Year => append_int(b, c.year % 100, 2),
        Std::LongYear => append_int(b, c.year, 4),
        Std::Month => b.push_str(&LONG_MONTHS[(c.month - 1) as usize][..3]),
        Std::LongMonth => b.push_str(LONG_MONTHS[(c.month - 1) as usize]),
        Std::NumMonth => append_int(b, i64::from(c.month), 0),
        Std::ZeroMonth => append_int(b, i64::from(c.month), 2),
        Std::WeekDay => b.push_str(&LONG_DAYS[c.weekday as usize][..3]),
        Std::LongWeekDay => b.push_str(LONG_DAYS[c.weekday as usize]),
        Std::Day => append_int(b, i64::from(c.day), 0),
        Std::UnderDay => {
            if c.day < 10 {
                b.push(' ');
            }
            append_int(b, i64::from(c.day), 0);
        }
        Std::ZeroDay => append_int(b, i64::from(c.day), 2),
        Std::UnderYearDay => {
            if c.yday < 100 {
                b.push(' ');
                if c.yday < 10 {
                    b.push(' ');
                }
            }
            append_int(b, i64::from(c.yday), 0);
        }
        Std::ZeroYearDay => append_int(b, i64::from(c.yday), 3),
        Std::Hour => append_int(b, i64::from(c.hour), 2),
        Std::Hour12 | Std::ZeroHour12 => {
            let hr = match c.hour % 12 {
                0 => 12,
                h => h,
            };
            append_int(b, i64::from(hr), if std == Std::Hour12 { 0 } else { 2 });
        }
        Std::Minute => append_int(b, i64::from(c.minute), 0),
        Std::ZeroMinute => append_int(b, i64::from(c.minute), 2),
        Std::Second => append_int(b, i64::from(c.second), 0),
        Std::ZeroSecond => append_int(b, i64::from(c.second), 2),
        Std::PM => b.push_str(if c.hour >= 12 { "PM" } else { "AM" }),
        Std::Pm => b.push_str(if c.hour >= 12 { "pm" } else { "am" }),
        Std::Iso8601TZ
        | Std::Iso8601ColonTZ
        | Std::Iso8601SecondsTZ
        | Std::Iso8601ShortTZ
        | Std::Iso8601ColonSecondsTZ
        | Std::NumTZ
        | Std::NumColonTZ
        | Std::NumSecondsTz
        | Std::NumShortTZ
        | Std::NumColonSecondsTZ => {
            let iso = matches!(
                std,
                Std::Iso8601TZ
                    | Std::Iso8601ColonTZ
                    | Std::Iso8601SecondsTZ
                    | Std::Iso8601ShortTZ
                    | Std::Iso8601ColonSecondsTZ
            );
            if iso && offset == 0 {
                b.push('Z');
                return;
            }
            let mut zone = offset / 60;
            let mut absoffset = offset;
            if zone < 0 {
                b.push('-');
                zone = -zone;
                absoffset = -absoffset;
            } else {
                b.push('+');
            }
            append_int(b, i64::from(zone / 60), 2);
            if matches!(
                std,
                Std::Iso8601ColonTZ
                    | Std::NumColonTZ
                    | Std::Iso8601ColonSecondsTZ
                    | Std::NumColonSecondsTZ
            ) {
                b.push(':');
            }
            if std != Std::NumShortTZ && std != Std::Iso8601ShortTZ {
                append_int(b, i64::from(zone % 60), 2);
            }
            if matches!(
                std,
                Std::Iso8601SecondsTZ
                    | Std::NumSecondsTz
                    | Std::NumColonSecondsTZ
                    | Std::Iso8601ColonSecondsTZ
            ) {
                if std == Std::NumColonSecondsTZ || std == Std::Iso8601ColonSecondsTZ {
                    b.push(':');
                }
                append_int(b, i64::from(absoffset % 60), 2);
            }
        }
        Std::TZ => {
            if !name.is_empty() {
                b.push_str(name);
                return;
            }
            // No abbreviation: Go prints the offset as -0700.
            let mut zone = offset / 60;
            if zone < 0 {
                b.push('-');
                zone = -zone;
            } else {
                b.push('+');
            }
            append_int(b, i64::from(zone / 60), 2);
            append_int(b, i64::from(zone % 60), 2);
        }
        Std::FracSecond0 { digits, sep } => {
            b.push(char::from(sep));
            let s = format!("{:09}", c.nsec);
            b.push_str(&s[..digits.min(9)]);
            // Go pads layouts with more than nine digits no further.
        }
        Std::FracSecond9 { digits, sep } => {
            if c.nsec == 0 {
                return;
            }
            let s = format!("{:09}", c.nsec);
            let s = &s[..digits.min(9)];
            let s = s.trim_end_matches('0');
            if !s.is_empty() {
                b.push(char::from(sep));
                b.push_str(s);
            }
        }
    }
}

/// The most zones kept in the process-wide cache of loaded locations (names that failed to
/// load are remembered too, so a bad name costs one file lookup, not one per line).
const LOCATION_CACHE_MAX: usize = 1024;

/// Go's `time.LoadLocation(name)`: `""` and `UTC` are UTC, `Local` is the server's zone,
/// anything else is read from the zoneinfo database. `None` when Go would fail.
pub(crate) fn load_location(name: &str) -> Option<Location> {
    match name {
        "" | "UTC" => return Some(Location::Utc),
        "Local" => return Some(Location::Local),
        _ => {}
    }
    // Go refuses names that could escape the zoneinfo directory.
    if name.contains("..") || name.starts_with('/') || name.starts_with('\\') || name.len() > 255 {
        return None;
    }
    static CACHE: Mutex<Option<HashMap<String, Option<Arc<Zone>>>>> = Mutex::new(None);
    if let Ok(guard) = CACHE.lock()
        && let Some(cached) = guard.as_ref().and_then(|m| m.get(name))
    {
        return cached.clone().map(Location::Zone);
    }
    let zone = super::zoneinfo::load(name).map(Arc::new);
    if let Ok(mut guard) = CACHE.lock() {
        let map = guard.get_or_insert_with(HashMap::new);
        if map.len() >= LOCATION_CACHE_MAX {
            map.clear();
        }
        map.insert(name.to_string(), zone.clone());
    }
    zone.map(Location::Zone)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(layout: &str, value: &str) -> Option<Time> {
        parse_in_location(layout, value, &Location::Utc).ok()
    }

    #[test]
    fn formats_the_reference_layouts() {
        let t = Time::unix(1_656_331_200, 123_456_789);
        assert_eq!(t.format("2006-01-02"), "2022-06-27");
        assert_eq!(
            t.format("2006-01-02T15:04:05.999999999Z07:00"),
            "2022-06-27T12:00:00.123456789Z"
        );
        assert_eq!(
            t.format("Mon Jan _2 15:04:05 MST 2006"),
            "Mon Jun 27 12:00:00 UTC 2022"
        );
        assert_eq!(t.format("3:04PM"), "12:00PM");
        assert_eq!(t.format(".000 ,00 .9"), ".123 ,12 .1");
        assert_eq!(t.format("January Monday 002 __2"), "June Monday 178 178");
        assert_eq!(t.format("-07:00 -0700 Z0700"), "+00:00 +0000 Z");
        assert_eq!(t.go_string(), "2022-06-27 12:00:00.123456789 +0000 UTC");
        assert_eq!(Time::zero().go_string(), "0001-01-01 00:00:00 +0000 UTC");
        assert_eq!(Time::unix(0, 0).format("Janet"), "Janet");
    }

    #[test]
    fn parses_like_go() {
        let t = utc("2006-01-02", "2021-11-02").unwrap();
        assert_eq!(t.unix_sec(), 1_635_811_200);
        let t = utc(
            "2006-01-02T15:04:05.999999999Z",
            "2023-03-10T01:32:40.340485723Z",
        )
        .unwrap();
        assert_eq!(t.unix_nano(), 1_678_411_960_340_485_723);
        let t = utc("2006-01-02T15:04:05Z07:00", "2023-03-10T01:32:40+02:00").unwrap();
        assert_eq!(t.unix_sec(), 1_678_404_760);
        assert_eq!(t.go_string(), "2023-03-10 01:32:40 +0200 +0200");
        // A fraction the layout does not mention is read anyway.
        let t = utc("2006-01-02 15:04:05", "2023-03-10 01:32:40.5").unwrap();
        assert_eq!(t.nanosecond(), 500_000_000);
        assert!(utc("2006-01-02", "2021-02-30").is_none());
        assert!(utc("2006-01-02", "2021-11-02x").is_none());
        let t = utc("Jan _2 3:04pm MST", "feb  3 4:05pm PST").unwrap();
        assert_eq!(t.go_string(), "0000-02-03 16:05:00 +0000 PST");
        let t = utc("02/Jan/2006:15:04:05 -0700", "10/Oct/2000:13:55:36 -0700").unwrap();
        assert_eq!(t.unix_sec(), 971_211_336);
    }

    #[test]
    fn civil_conversions_round_trip() {
        for days in [-800_000i64, -719_468, -1, 0, 1, 59, 365, 10_957, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        let t = Time::date(2021, 13, 1, 0, 0, 0, 0, Location::Utc);
        assert_eq!(t.format("2006-01-02"), "2022-01-01");
    }
}

//! The fields of an entry's timestamp that a line may print: what a "clock" slot of the
//! templates layout ([`super::lines`], format version 4) rebuilds its numbers from.
//!
//! Most log lines print their own time ("2015-07-29 17:41:44,747", "081109 203615",
//! "1131566461"), and a client that parsed it sent it as the entry's timestamp, so the
//! numbers are stored twice: once in the timestamp column, once among the line's variables.
//! A clock slot stores each variable as its difference from one field of its entry's
//! timestamp, which is 0 for every line whose printed time is the entry's: zstd then stores
//! the slot in a few bytes. Fields are of the time in UTC (what containers and most shippers
//! print); a line printed in another zone still has its minutes, seconds and fractions
//! taken from the timestamp, while its hour (never exact) keeps a delta slot, and a line
//! whose printed time is not its entry's keeps the delta slots it had (the writer's rule is
//! in [`super::lines`]).
//!
//! The field numbers are part of the format: never renumber them.

/// Fields a clock slot can name.
pub(crate) const CLOCK_FIELDS: usize = 16;

const NS_PER_SEC: i64 = 1_000_000_000;
const SECS_PER_DAY: i64 = 86_400;

/// Year, month (1-12) and day (1-31) of day `z` counted from 1970-01-01, in the proleptic
/// Gregorian calendar, for any day an i64 of nanoseconds can reach (H. Hinnant's
/// `civil_from_days`).
pub(crate) fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Every field of timestamp `ts` (ns since 1970, UTC), by field number (what [`FieldOf`]
/// computes one at a time, checked against this in the tests):
///
/// ```text
///  0 year            4 hour        8 microsecond of the second    12 unix microseconds
///  1 year % 100      5 minute      9 nanosecond of the second     13 yymmdd
///  2 month (1-12)    6 second     10 unix seconds                 14 hhmmss
///  3 day (1-31)      7 millisecond of the second  11 unix ms      15 yyyymmdd
/// ```
#[cfg(test)]
pub(crate) fn clock_fields(ts: i64) -> [i64; CLOCK_FIELDS] {
    let secs = ts.div_euclid(NS_PER_SEC);
    let ns = ts.rem_euclid(NS_PER_SEC);
    let (y, mo, d) = civil_from_days(secs.div_euclid(SECS_PER_DAY));
    let in_day = secs.rem_euclid(SECS_PER_DAY);
    let (h, mi, s) = (in_day / 3600, in_day / 60 % 60, in_day % 60);
    [
        y,
        y.rem_euclid(100),
        mo,
        d,
        h,
        mi,
        s,
        ns / 1_000_000,
        ns / 1_000,
        ns,
        secs,
        ts.div_euclid(1_000_000),
        ts.div_euclid(1_000),
        y.rem_euclid(100) * 10_000 + mo * 100 + d,
        h * 10_000 + mi * 100 + s,
        y * 10_000 + mo * 100 + d,
    ]
}

/// One field of many timestamps, as a decoder rebuilds a clock slot: the date of the last
/// day seen is kept, so that a slot of lines of one day (the usual block) computes its
/// calendar once.
pub(crate) struct FieldOf {
    field: usize,
    /// The last day seen (days since 1970) and its year, month and day.
    day: Option<(i64, (i64, i64, i64))>,
}

impl FieldOf {
    /// Field `field` (< [`CLOCK_FIELDS`]).
    pub(crate) fn new(field: usize) -> FieldOf {
        assert!(field < CLOCK_FIELDS, "a clock field number");
        FieldOf { field, day: None }
    }

    /// The field of `ts`: `clock_fields(ts)[field]`.
    pub(crate) fn of(&mut self, ts: i64) -> i64 {
        let secs = ts.div_euclid(NS_PER_SEC);
        let ns = ts.rem_euclid(NS_PER_SEC);
        let in_day = secs.rem_euclid(SECS_PER_DAY);
        let mut date = || {
            let day = secs.div_euclid(SECS_PER_DAY);
            match self.day {
                Some((d, ymd)) if d == day => ymd,
                _ => {
                    let ymd = civil_from_days(day);
                    self.day = Some((day, ymd));
                    ymd
                }
            }
        };
        match self.field {
            0 => date().0,
            1 => date().0.rem_euclid(100),
            2 => date().1,
            3 => date().2,
            4 => in_day / 3600,
            5 => in_day / 60 % 60,
            6 => in_day % 60,
            7 => ns / 1_000_000,
            8 => ns / 1_000,
            9 => ns,
            10 => secs,
            11 => ts.div_euclid(1_000_000),
            12 => ts.div_euclid(1_000),
            13 => {
                let (y, m, d) = date();
                y.rem_euclid(100) * 10_000 + m * 100 + d
            }
            14 => in_day / 3600 * 10_000 + in_day / 60 % 60 * 100 + in_day % 60,
            _ => {
                let (y, m, d) = date();
                y * 10_000 + m * 100 + d
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32, ns: u32) -> i64 {
        let date = time_of(y, mo, d);
        (date + i64::from(h * 3600 + mi * 60 + s)) * NS_PER_SEC + i64::from(ns)
    }

    /// Seconds since 1970 of a date, counted by days (the slow way, as a check).
    fn time_of(y: i32, mo: u32, d: u32) -> i64 {
        let leap = |y: i32| (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        let mut days = 0i64;
        if y >= 1970 {
            for yy in 1970..y {
                days += if leap(yy) { 366 } else { 365 };
            }
        } else {
            for yy in y..1970 {
                days -= if leap(yy) { 366 } else { 365 };
            }
        }
        let months = [
            31,
            if leap(y) { 29 } else { 28 },
            31,
            30,
            31,
            30,
            31,
            31,
            30,
            31,
            30,
            31,
        ];
        days += months[..mo as usize - 1].iter().sum::<i64>() + i64::from(d) - 1;
        days * SECS_PER_DAY
    }

    #[test]
    fn fields_of_known_times() {
        // "2015-07-29 17:41:44,747" (Zookeeper's corpus file).
        let f = clock_fields(ts(2015, 7, 29, 17, 41, 44, 747_000_000));
        assert_eq!(
            &f[..10],
            &[2015, 15, 7, 29, 17, 41, 44, 747, 747_000, 747_000_000]
        );
        assert_eq!(f[10], 1_438_191_704);
        assert_eq!(f[11], 1_438_191_704_747);
        assert_eq!(f[13..], [150_729, 174_144, 20_150_729]);
        // Before 1970: fields count forward within the second and the day.
        let f = clock_fields(ts(1969, 12, 31, 23, 59, 59, 1));
        assert_eq!(&f[..10], &[1969, 69, 12, 31, 23, 59, 59, 0, 0, 1]);
        assert_eq!(f[10], -1);
        // The ends of what i64 nanoseconds reach.
        assert_eq!(clock_fields(i64::MIN)[0], 1677);
        assert_eq!(clock_fields(i64::MAX)[0], 2262);
    }

    #[test]
    fn one_field_at_a_time_agrees_with_all_fields() {
        let mut readers: Vec<FieldOf> = (0..CLOCK_FIELDS).map(FieldOf::new).collect();
        let mut t = -3_000_000_000_000_000_000i64;
        while t < 3_000_000_000_000_000_000 {
            for probe in [t, t + 1, t + 86_399_999_999_999, t + 86_400_000_000_000] {
                let all = clock_fields(probe);
                for (f, r) in readers.iter_mut().enumerate() {
                    assert_eq!(r.of(probe), all[f], "field {f} of {probe}");
                }
            }
            t += 7_777_777_777_777_777;
        }
    }

    #[test]
    fn dates_agree_with_counting_days() {
        for y in [1678, 1900, 1969, 1970, 1999, 2000, 2024, 2100, 2261] {
            for (mo, d) in [(1, 1), (2, 28), (2, 29), (3, 1), (12, 31)] {
                if (mo, d) == (2, 29) && !(y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)) {
                    continue;
                }
                let f = clock_fields(ts(y, mo, d, 12, 0, 0, 0));
                assert_eq!(
                    (f[0], f[2], f[3]),
                    (i64::from(y), i64::from(mo), i64::from(d))
                );
            }
        }
    }
}

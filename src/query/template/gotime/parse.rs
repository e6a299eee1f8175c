//! Go's `time.Parse` and `time.ParseInLocation` for `toDate` and `toDateInZone`: the text
//! read against the reference-date layout chunk by chunk, with Go's rules for numbers,
//! fractions, month and day names, zone names and offsets, and its range checks.

use super::*;

/// Why a parse failed (only `toDate`'s callers see it, and they drop it, as sprig does).
#[derive(Debug)]
pub(crate) struct ParseTimeError;

pub(super) fn is_digit(s: &[u8], i: usize) -> bool {
    s.get(i).is_some_and(u8::is_ascii_digit)
}

/// Go's `getnum`: one or two digits (exactly two when `fixed`).
pub(super) fn getnum(s: &[u8], fixed: bool) -> Result<(i64, &[u8]), ParseTimeError> {
    if !is_digit(s, 0) {
        return Err(ParseTimeError);
    }
    if !is_digit(s, 1) {
        if fixed {
            return Err(ParseTimeError);
        }
        return Ok((i64::from(s[0] - b'0'), &s[1..]));
    }
    Ok((
        i64::from(s[0] - b'0') * 10 + i64::from(s[1] - b'0'),
        &s[2..],
    ))
}

/// Go's `getnum3`: up to three digits (exactly three when `fixed`).
pub(super) fn getnum3(s: &[u8], fixed: bool) -> Result<(i64, &[u8]), ParseTimeError> {
    let mut n = 0;
    let mut i = 0;
    while i < 3 && is_digit(s, i) {
        n = n * 10 + i64::from(s[i] - b'0');
        i += 1;
    }
    if i == 0 || (fixed && i != 3) {
        return Err(ParseTimeError);
    }
    Ok((n, &s[i..]))
}

/// Go's `atoi` for the short numeric fields of a layout: an optional sign and digits.
pub(super) fn atoi(s: &[u8]) -> Result<i64, ParseTimeError> {
    let (neg, digits) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) || digits.len() > 18 {
        return Err(ParseTimeError);
    }
    let mut n: i64 = 0;
    for d in digits {
        n = n * 10 + i64::from(d - b'0');
    }
    Ok(if neg { -n } else { n })
}

/// Go's `skip`: matches the literal layout text, where a space in the layout matches any
/// run of spaces.
pub(super) fn skip<'v>(mut value: &'v [u8], mut prefix: &[u8]) -> Result<&'v [u8], ParseTimeError> {
    while let Some(&p) = prefix.first() {
        if p == b' ' {
            if !value.is_empty() && value[0] != b' ' {
                return Err(ParseTimeError);
            }
            prefix = trim_leading_spaces(prefix);
            value = trim_leading_spaces(value);
            continue;
        }
        if value.first() != Some(&p) {
            return Err(ParseTimeError);
        }
        prefix = &prefix[1..];
        value = &value[1..];
    }
    Ok(value)
}

pub(super) fn trim_leading_spaces(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|&&c| c == b' ').count();
    &s[n..]
}

/// Go's `lookup`: which of `names` the value starts with, ASCII case-insensitively.
pub(super) fn lookup_name<'v>(
    names: &[&str],
    value: &'v [u8],
) -> Result<(usize, &'v [u8]), ParseTimeError> {
    for (i, name) in names.iter().enumerate() {
        let n = name.len();
        if value.len() >= n && value[..n].eq_ignore_ascii_case(name.as_bytes()) {
            return Ok((i, &value[n..]));
        }
    }
    Err(ParseTimeError)
}

/// Go's `parseNanoseconds`: the fraction after a `.` or `,` in `value[..nbytes]`.
pub(super) fn parse_nanoseconds(value: &[u8], nbytes: usize) -> Result<i64, ParseTimeError> {
    if !matches!(value.first(), Some(b'.' | b',')) {
        return Err(ParseTimeError);
    }
    let nbytes = nbytes.min(10);
    let mut ns = atoi(&value[1..nbytes])?;
    if ns < 0 {
        return Err(ParseTimeError);
    }
    for _ in nbytes..10 {
        ns *= 10;
    }
    Ok(ns)
}

/// Go's `parseTimeZone`: the length of a zone abbreviation at the start of `value`.
pub(super) fn parse_time_zone(value: &[u8]) -> Option<usize> {
    if value.len() < 3 {
        return None;
    }
    if value.len() >= 4 && (&value[..4] == b"ChST" || &value[..4] == b"MeST") {
        return Some(4);
    }
    if &value[..3] == b"GMT" {
        return Some(parse_gmt(value));
    }
    if value[0] == b'+' || value[0] == b'-' {
        return parse_signed_offset(value).map(|(n, _)| n);
    }
    let n_upper = value.iter().take_while(|c| c.is_ascii_uppercase()).count();
    match n_upper {
        0 | 1 | 2 | 6 => None,
        5 => (value[4] == b'T').then_some(5),
        4 => (value[3] == b'T' || &value[..4] == b"WITA").then_some(4),
        3 => Some(3),
        _ => None,
    }
}

/// Go's `parseGMT`: `GMT` optionally followed by a signed hour offset.
pub(super) fn parse_gmt(value: &[u8]) -> usize {
    let rest = &value[3..];
    if rest.is_empty() {
        return 3;
    }
    parse_signed_offset(rest).map_or(3, |(n, _)| 3 + n)
}

/// Go's `parseSignedOffset`: `+h`/`-h` hours (at most 23); the length and the seconds.
pub(super) fn parse_signed_offset(value: &[u8]) -> Option<(usize, i64)> {
    let sign = *value.first()?;
    if sign != b'-' && sign != b'+' {
        return None;
    }
    let digits = value[1..].iter().take_while(|c| c.is_ascii_digit()).count();
    if digits == 0 || digits > 18 {
        return None;
    }
    let x = atoi(&value[1..1 + digits]).ok()?;
    if x > 23 {
        return None;
    }
    Some((1 + digits, if sign == b'-' { -x * 3600 } else { x * 3600 }))
}

/// Go's `time.ParseInLocation(layout, value, loc)`.
pub(crate) fn parse_in_location(
    layout: &str,
    value: &str,
    loc: &Location,
) -> Result<Time, ParseTimeError> {
    let mut value = value.as_bytes();
    let mut layout_rest = layout;
    let mut pm_set = false;
    let mut am_set = false;
    let mut year: i64 = 0;
    let mut month: i64 = -1;
    let mut day: i64 = -1;
    let mut yday: i64 = -1;
    let mut hour: i64 = 0;
    let mut min: i64 = 0;
    let mut sec: i64 = 0;
    let mut nsec: i64 = 0;
    let mut z: Option<Location> = None;
    let mut zone_offset: i64 = -1;
    let mut zone_name: Option<String> = None;

    loop {
        let (prefix, std, suffix) = next_std_chunk(layout_rest);
        value = skip(value, prefix.as_bytes())?;
        let Some(std) = std else {
            if !value.is_empty() {
                return Err(ParseTimeError); // extra text
            }
            break;
        };
        layout_rest = suffix;
        match std {
            Std::Year => {
                if value.len() < 2 {
                    return Err(ParseTimeError);
                }
                let y = atoi(&value[..2])?;
                value = &value[2..];
                year = if y >= 69 { y + 1900 } else { y + 2000 };
            }
            Std::LongYear => {
                if value.len() < 4 || !is_digit(value, 0) {
                    return Err(ParseTimeError);
                }
                year = atoi(&value[..4])?;
                value = &value[4..];
            }
            Std::Month | Std::LongMonth => {
                let names: Vec<&str> = if std == Std::Month {
                    LONG_MONTHS.iter().map(|m| &m[..3]).collect()
                } else {
                    LONG_MONTHS.to_vec()
                };
                let (i, rest) = lookup_name(&names, value)?;
                month = i as i64 + 1;
                value = rest;
            }
            Std::NumMonth | Std::ZeroMonth => {
                let (m, rest) = getnum(value, std == Std::ZeroMonth)?;
                if !(1..=12).contains(&m) {
                    return Err(ParseTimeError);
                }
                month = m;
                value = rest;
            }
            Std::WeekDay | Std::LongWeekDay => {
                let names: Vec<&str> = if std == Std::WeekDay {
                    LONG_DAYS.iter().map(|d| &d[..3]).collect()
                } else {
                    LONG_DAYS.to_vec()
                };
                value = lookup_name(&names, value)?.1;
            }
            Std::Day | Std::UnderDay | Std::ZeroDay => {
                if std == Std::UnderDay && value.first() == Some(&b' ') {
                    value = &value[1..];
                }
                let (d, rest) = getnum(value, std == Std::ZeroDay)?;
                day = d;
                value = rest;
            }
            Std::UnderYearDay | Std::ZeroYearDay => {
                for _ in 0..2 {
                    if std == Std::UnderYearDay && value.first() == Some(&b' ') {
                        value = &value[1..];
                    }
                }
                let (d, rest) = getnum3(value, std == Std::ZeroYearDay)?;
                if !(1..=366).contains(&d) {
                    return Err(ParseTimeError);
                }
                yday = d;
                value = rest;
            }
            Std::Hour => {
                let (h, rest) = getnum(value, false)?;
                if !(0..24).contains(&h) {
                    return Err(ParseTimeError);
                }
                hour = h;
                value = rest;
            }
            Std::Hour12 | Std::ZeroHour12 => {
                let (h, rest) = getnum(value, std == Std::ZeroHour12)?;
                if !(0..=12).contains(&h) {
                    return Err(ParseTimeError);
                }
                hour = h;
                value = rest;
            }
            Std::Minute | Std::ZeroMinute => {
                let (m, rest) = getnum(value, std == Std::ZeroMinute)?;
                if !(0..60).contains(&m) {
                    return Err(ParseTimeError);
                }
                min = m;
                value = rest;
            }
            Std::Second | Std::ZeroSecond => {
                let (s, rest) = getnum(value, std == Std::ZeroSecond)?;
                if !(0..60).contains(&s) {
                    return Err(ParseTimeError);
                }
                sec = s;
                value = rest;
                // A fraction in the value that the layout does not ask for is still read.
                if value.len() >= 2 && matches!(value[0], b'.' | b',') && is_digit(value, 1) {
                    let (_, next, _) = next_std_chunk(layout_rest);
                    if !matches!(
                        next,
                        Some(Std::FracSecond0 { .. } | Std::FracSecond9 { .. })
                    ) {
                        let mut n = 2;
                        while n < value.len() && is_digit(value, n) {
                            n += 1;
                        }
                        nsec = parse_nanoseconds(value, n)?;
                        value = &value[n..];
                    }
                }
            }
            Std::PM | Std::Pm => {
                if value.len() < 2 {
                    return Err(ParseTimeError);
                }
                let p = &value[..2];
                let (am, pm) = if std == Std::PM {
                    (&b"AM"[..], &b"PM"[..])
                } else {
                    (&b"am"[..], &b"pm"[..])
                };
                if p == pm {
                    pm_set = true;
                } else if p == am {
                    am_set = true;
                } else {
                    return Err(ParseTimeError);
                }
                value = &value[2..];
            }
            Std::Iso8601TZ
            | Std::Iso8601ShortTZ
            | Std::Iso8601ColonTZ
            | Std::Iso8601SecondsTZ
            | Std::Iso8601ColonSecondsTZ
            | Std::NumTZ
            | Std::NumShortTZ
            | Std::NumColonTZ
            | Std::NumSecondsTz
            | Std::NumColonSecondsTZ => {
                let iso = matches!(
                    std,
                    Std::Iso8601TZ
                        | Std::Iso8601ShortTZ
                        | Std::Iso8601ColonTZ
                        | Std::Iso8601SecondsTZ
                        | Std::Iso8601ColonSecondsTZ
                );
                if iso && value.first() == Some(&b'Z') {
                    value = &value[1..];
                    z = Some(Location::Utc);
                    continue;
                }
                let (sign, hh, mm, ss, rest): (u8, &[u8], &[u8], &[u8], &[u8]) = match std {
                    Std::Iso8601ColonTZ | Std::NumColonTZ => {
                        if value.len() < 6 || value[3] != b':' {
                            return Err(ParseTimeError);
                        }
                        (value[0], &value[1..3], &value[4..6], b"00", &value[6..])
                    }
                    Std::NumShortTZ | Std::Iso8601ShortTZ => {
                        if value.len() < 3 {
                            return Err(ParseTimeError);
                        }
                        (value[0], &value[1..3], b"00", b"00", &value[3..])
                    }
                    Std::Iso8601ColonSecondsTZ | Std::NumColonSecondsTZ => {
                        if value.len() < 9 || value[3] != b':' || value[6] != b':' {
                            return Err(ParseTimeError);
                        }
                        (
                            value[0],
                            &value[1..3],
                            &value[4..6],
                            &value[7..9],
                            &value[9..],
                        )
                    }
                    Std::Iso8601SecondsTZ | Std::NumSecondsTz => {
                        if value.len() < 7 {
                            return Err(ParseTimeError);
                        }
                        (
                            value[0],
                            &value[1..3],
                            &value[3..5],
                            &value[5..7],
                            &value[7..],
                        )
                    }
                    _ => {
                        if value.len() < 5 {
                            return Err(ParseTimeError);
                        }
                        (value[0], &value[1..3], &value[3..5], b"00", &value[5..])
                    }
                };
                let hr = getnum(hh, true)?.0;
                let mi = getnum(mm, true)?.0;
                let se = getnum(ss, true)?.0;
                if hr > 24 || mi > 60 || se > 60 {
                    return Err(ParseTimeError);
                }
                let off = (hr * 60 + mi) * 60 + se;
                zone_offset = match sign {
                    b'+' => off,
                    b'-' => -off,
                    _ => return Err(ParseTimeError),
                };
                value = rest;
            }
            Std::TZ => {
                if value.len() >= 3 && &value[..3] == b"UTC" {
                    z = Some(Location::Utc);
                    value = &value[3..];
                    continue;
                }
                let n = parse_time_zone(value).ok_or(ParseTimeError)?;
                zone_name = Some(String::from_utf8_lossy(&value[..n]).into_owned());
                value = &value[n..];
            }
            Std::FracSecond0 { digits, .. } => {
                let ndigit = 1 + digits;
                if value.len() < ndigit {
                    return Err(ParseTimeError);
                }
                nsec = parse_nanoseconds(value, ndigit)?;
                value = &value[ndigit..];
            }
            Std::FracSecond9 { .. } => {
                if value.len() < 2 || !matches!(value[0], b'.' | b',') || !value[1].is_ascii_digit()
                {
                    continue; // fraction omitted
                }
                let mut i = 0;
                while i + 1 < value.len() && value[i + 1].is_ascii_digit() {
                    i += 1;
                }
                nsec = parse_nanoseconds(value, 1 + i)?;
                value = &value[1 + i..];
            }
        }
    }
    if pm_set && hour < 12 {
        hour += 12;
    } else if am_set && hour == 12 {
        hour = 0;
    }
    if yday >= 0 {
        let mut d: i64 = 0;
        let mut m: i64 = 0;
        let mut yd = yday;
        if is_leap(year) {
            if yd == 31 + 29 {
                m = 2;
                d = 29;
            } else if yd > 31 + 29 {
                yd -= 1;
            }
        }
        if !(1..=365).contains(&yd) {
            return Err(ParseTimeError);
        }
        if m == 0 {
            m = (yd - 1) / 31 + 1;
            if i64::from(days_before(m as u32 + 1)) < yd {
                m += 1;
            }
            d = yd - i64::from(days_before(m as u32));
        }
        if (month >= 0 && month != m) || (day >= 0 && day != d) {
            return Err(ParseTimeError);
        }
        month = m;
        day = d;
    } else {
        if month < 0 {
            month = 1;
        }
        if day < 0 {
            day = 1;
        }
    }
    if day < 1 || day > i64::from(days_in(month as u32, year)) {
        return Err(ParseTimeError);
    }
    if let Some(z) = z {
        return Ok(Time::date(year, month, day, hour, min, sec, nsec, z));
    }
    if zone_offset != -1 {
        let t = Time::date(year, month, day, hour, min, sec, nsec, Location::Utc);
        let unix = t.sec - zone_offset;
        let (name, offset, _, _) = loc.lookup(unix);
        let zone_matches = zone_name.as_deref().is_none_or(|n| n == &*name);
        if i64::from(offset) == zone_offset && zone_matches {
            return Ok(Time {
                sec: unix,
                nsec: t.nsec,
                loc: loc.clone(),
            });
        }
        return Ok(Time {
            sec: unix,
            nsec: t.nsec,
            loc: Location::Fixed {
                name: Arc::from(zone_name.unwrap_or_default()),
                offset: zone_offset as i32,
            },
        });
    }
    if let Some(zone_name) = zone_name {
        let t = Time::date(year, month, day, hour, min, sec, nsec, Location::Utc);
        if let Some(offset) = loc.lookup_name(&zone_name, t.sec) {
            return Ok(Time {
                sec: t.sec - i64::from(offset),
                nsec: t.nsec,
                loc: loc.clone(),
            });
        }
        // An unknown abbreviation: a made-up zone with that name and offset zero (or the
        // hours of a `GMT+h`).
        let mut offset = 0;
        if zone_name.len() > 3 && zone_name.starts_with("GMT") {
            offset = atoi(&zone_name.as_bytes()[3..]).unwrap_or(0) * 3600;
        }
        return Ok(Time {
            sec: t.sec - offset,
            nsec: t.nsec,
            loc: Location::Fixed {
                name: Arc::from(zone_name),
                offset: offset as i32,
            },
        });
    }
    Ok(Time::date(
        year,
        month,
        day,
        hour,
        min,
        sec,
        nsec,
        loc.clone(),
    ))
}

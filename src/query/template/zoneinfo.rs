//! IANA time zones from the system's zoneinfo files (TZif), for `toDateInZone`.
//!
//! Which question it answers: "what offset and abbreviation does zone X use at instant T?",
//! the way Go's `time.LoadLocation` and `Location.lookup` answer it, including the POSIX TZ
//! rule at the end of a file for instants after its last transition.

use std::sync::Arc;

/// Where Go looks for zoneinfo files on Unix (after `$ZONEINFO`).
const ZONEINFO_DIRS: [&str; 4] = [
    "/usr/share/zoneinfo/",
    "/usr/share/lib/zoneinfo/",
    "/usr/lib/locale/TZ/",
    "/etc/zoneinfo/",
];

/// The largest zoneinfo file read; real ones are a few kilobytes.
const ZONEINFO_BYTES_MAX: u64 = 1 << 20;

#[derive(Debug)]
struct ZoneType {
    name: Arc<str>,
    offset: i32,
    is_dst: bool,
}

#[derive(Debug, Clone, Copy)]
struct Transition {
    when: i64,
    index: u8,
}

/// A loaded zone: its offsets, its transitions, and the rule for later instants.
#[derive(Debug)]
pub(crate) struct Zone {
    zones: Vec<ZoneType>,
    tx: Vec<Transition>,
    extend: String,
}

/// Reads zone `name` as Go's `LoadLocation` does: `$ZONEINFO` (a directory), then the
/// system directories. `None` if no readable, valid file exists.
pub(crate) fn load(name: &str) -> Option<Zone> {
    let mut dirs: Vec<String> = Vec::new();
    if let Ok(z) = std::env::var("ZONEINFO")
        && !z.is_empty()
    {
        dirs.push(format!("{}/", z.trim_end_matches('/')));
    }
    dirs.extend(ZONEINFO_DIRS.iter().map(|d| d.to_string()));
    for dir in dirs {
        let path = format!("{dir}{name}");
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if !meta.is_file() || meta.len() > ZONEINFO_BYTES_MAX {
            continue;
        }
        if let Ok(data) = std::fs::read(&path)
            && let Some(z) = parse_tzif(&data)
        {
            return Some(z);
        }
    }
    None
}

struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.data.len() < n {
            return None;
        }
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        Some(head)
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// Go's `LoadLocationFromTZData`.
fn parse_tzif(data: &[u8]) -> Option<Zone> {
    let mut r = Reader { data };
    if r.take(4)? != b"TZif" {
        return None;
    }
    let version = r.take(1)?[0];
    r.take(15)?;
    let mut counts = [0usize; 6];
    for c in &mut counts {
        *c = r.u32()? as usize;
    }
    let [mut isutc, mut isstd, mut leap, mut time, mut typ, mut chars] = counts;
    let mut time_size = 4;
    if version >= b'2' {
        // Skip the 32-bit data and read the 64-bit header that follows it.
        let skip = time * 4 + time + typ * 6 + chars + leap * 8 + isstd + isutc;
        r.take(skip)?;
        if r.take(4)? != b"TZif" {
            return None;
        }
        r.take(16)?;
        for c in &mut counts {
            *c = r.u32()? as usize;
        }
        [isutc, isstd, leap, time, typ, chars] = counts;
        time_size = 8;
    }
    if typ == 0 || typ > 256 || time > 1 << 16 || chars > 1 << 16 {
        return None;
    }
    let tx_times = r.take(time * time_size)?;
    let tx_index = r.take(time)?;
    let types = r.take(typ * 6)?;
    let abbrevs = r.take(chars)?;
    r.take(leap * (time_size + 4))?;
    r.take(isstd)?;
    r.take(isutc)?;
    let mut zones = Vec::with_capacity(typ);
    for t in types.chunks_exact(6) {
        let offset = i32::from_be_bytes([t[0], t[1], t[2], t[3]]);
        let is_dst = t[4] != 0;
        let start = usize::from(t[5]);
        if start >= abbrevs.len().max(1) && !abbrevs.is_empty() {
            return None;
        }
        let rest = abbrevs.get(start..).unwrap_or(&[]);
        let end = rest.iter().position(|&c| c == 0).unwrap_or(rest.len());
        zones.push(ZoneType {
            name: Arc::from(String::from_utf8_lossy(&rest[..end]).as_ref()),
            offset,
            is_dst,
        });
    }
    let mut tx = Vec::with_capacity(time);
    for i in 0..time {
        let when = if time_size == 8 {
            let b = &tx_times[i * 8..i * 8 + 8];
            i64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
        } else {
            let b = &tx_times[i * 4..i * 4 + 4];
            i64::from(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        };
        let index = tx_index[i];
        if usize::from(index) >= zones.len() {
            return None;
        }
        tx.push(Transition { when, index });
    }
    if tx.is_empty() {
        // A fixed zone such as Etc/GMT+3: one transition covering all time, as Go builds.
        tx.push(Transition {
            when: i64::MIN,
            index: 0,
        });
    }
    // The footer of version 2+ files: "\n<POSIX TZ rule>\n".
    let mut extend = String::new();
    if version >= b'2'
        && r.data.len() > 2
        && r.data[0] == b'\n'
        && let Some(end) = r.data[1..].iter().position(|&c| c == b'\n')
    {
        extend = String::from_utf8_lossy(&r.data[1..1 + end]).into_owned();
    }
    Some(Zone { zones, tx, extend })
}

impl Zone {
    /// Go's `Location.lookup`: abbreviation, offset, and the interval they hold for.
    pub(crate) fn lookup(&self, sec: i64) -> (Arc<str>, i32, i64, i64) {
        let sec = sec.clamp(-super::gotime::SECONDS_MAX, super::gotime::SECONDS_MAX);
        if self.zones.is_empty() {
            return (Arc::from("UTC"), 0, i64::MIN, i64::MAX);
        }
        let first = self.tx.first().map_or(i64::MAX, |t| t.when);
        if sec < first {
            let z = &self.zones[self.lookup_first_zone()];
            return (z.name.clone(), z.offset, i64::MIN, first);
        }
        // Binary search for the last transition at or before `sec`.
        let mut lo = 0;
        let mut hi = self.tx.len();
        let mut end = i64::MAX;
        while hi - lo > 1 {
            let m = (lo + hi) / 2;
            let lim = self.tx[m].when;
            if sec < lim {
                end = lim;
                hi = m;
            } else {
                lo = m;
            }
        }
        let z = &self.zones[usize::from(self.tx[lo].index)];
        let start = self.tx[lo].when;
        if lo == self.tx.len() - 1
            && !self.extend.is_empty()
            && let Some(r) = tzset(&self.extend, start, sec)
        {
            return r;
        }
        (z.name.clone(), z.offset, start, end)
    }

    /// Go's `lookupFirstZone`: the zone for instants before the first transition.
    fn lookup_first_zone(&self) -> usize {
        if !self.tx.iter().any(|t| t.index == 0) {
            return 0;
        }
        if let Some(t) = self.tx.first()
            && self.zones[usize::from(t.index)].is_dst
        {
            for zi in (0..usize::from(t.index)).rev() {
                if !self.zones[zi].is_dst {
                    return zi;
                }
            }
        }
        self.zones.iter().position(|z| !z.is_dst).unwrap_or(0)
    }

    /// Go's `lookupName`: the offset of abbreviation `name`, preferring the zone actually in
    /// effect around `unix`.
    pub(crate) fn lookup_name(&self, name: &str, unix: i64) -> Option<i32> {
        for z in &self.zones {
            if &*z.name == name {
                let (n, offset, _, _) = self.lookup(unix - i64::from(z.offset));
                if &*n == name {
                    return Some(offset);
                }
            }
        }
        self.zones
            .iter()
            .find(|z| &*z.name == name)
            .map(|z| z.offset)
    }
}

/// A POSIX TZ transition rule: Julian day without leap days, zero-based day of year, or
/// month-week-weekday, each with a time of day in seconds.
#[derive(Clone, Copy)]
enum RuleKind {
    Julian,
    DayOfYear,
    MonthWeekDay,
}

#[derive(Clone, Copy)]
struct Rule {
    kind: RuleKind,
    day: i64,
    week: i64,
    mon: i64,
    time: i64,
}

/// Go's `tzset`: the zone the POSIX TZ string `s` gives at `sec` (after the last
/// transition at `last_tx`).
fn tzset(s: &str, last_tx: i64, sec: i64) -> Option<(Arc<str>, i32, i64, i64)> {
    let (std_name, s) = tzset_name(s)?;
    let (std_off, mut s) = tzset_offset(s)?;
    let std_offset = -std_off;
    if s.is_empty() || s.starts_with(',') {
        return Some((Arc::from(std_name), std_offset as i32, last_tx, i64::MAX));
    }
    let (dst_name, rest) = tzset_name(s)?;
    s = rest;
    let dst_offset = if s.is_empty() || s.starts_with(',') {
        std_offset + 3600
    } else {
        let (o, rest) = tzset_offset(s)?;
        s = rest;
        -o
    };
    let s = if s.is_empty() { ",M3.2.0,M11.1.0" } else { s };
    if !s.starts_with(',') && !s.starts_with(';') {
        return None;
    }
    let (start_rule, s) = tzset_rule(&s[1..])?;
    let s = s.strip_prefix(',')?;
    let (end_rule, s) = tzset_rule(s)?;
    if !s.is_empty() {
        return None;
    }
    let (year, _, _) = super::gotime::civil_from_days(sec.div_euclid(86_400));
    let year_start = super::gotime::days_from_civil(year, 1, 1) * 86_400;
    let ysec = sec - year_start;
    let mut start_sec = tzrule_time(year, start_rule, std_offset);
    let mut end_sec = tzrule_time(year, end_rule, dst_offset);
    let (mut std_name, mut dst_name) = (std_name, dst_name);
    let (mut std_offset, mut dst_offset) = (std_offset, dst_offset);
    if end_sec < start_sec {
        std::mem::swap(&mut start_sec, &mut end_sec);
        std::mem::swap(&mut std_name, &mut dst_name);
        std::mem::swap(&mut std_offset, &mut dst_offset);
    }
    Some(if ysec < start_sec {
        (
            Arc::from(std_name),
            std_offset as i32,
            year_start,
            start_sec + year_start,
        )
    } else if ysec >= end_sec {
        (
            Arc::from(std_name),
            std_offset as i32,
            end_sec + year_start,
            year_start + 365 * 86_400,
        )
    } else {
        (
            Arc::from(dst_name),
            dst_offset as i32,
            start_sec + year_start,
            end_sec + year_start,
        )
    })
}

fn tzset_name(s: &str) -> Option<(&str, &str)> {
    if s.is_empty() {
        return None;
    }
    if let Some(rest) = s.strip_prefix('<') {
        let end = rest.find('>')?;
        return Some((&rest[..end], &rest[end + 1..]));
    }
    let end = s
        .find(|c: char| c.is_ascii_digit() || c == ',' || c == '-' || c == '+')
        .unwrap_or(s.len());
    if end < 3 {
        return None;
    }
    Some((&s[..end], &s[end..]))
}

fn tzset_num(s: &str, min: i64, max: i64) -> Option<(i64, &str)> {
    let n = s.bytes().take_while(u8::is_ascii_digit).count();
    if n == 0 || n > 9 {
        return None;
    }
    let v: i64 = s[..n].parse().ok()?;
    if v < min || v > max {
        return None;
    }
    Some((v, &s[n..]))
}

/// `[+-]hh[:mm[:ss]]` in seconds.
fn tzset_offset(s: &str) -> Option<(i64, &str)> {
    let (neg, s) = match s.as_bytes().first() {
        Some(b'+') => (false, &s[1..]),
        Some(b'-') => (true, &s[1..]),
        _ => (false, s),
    };
    let (hours, mut s) = tzset_num(s, 0, 24 * 7)?;
    let mut off = hours * 3600;
    if let Some(rest) = s.strip_prefix(':') {
        let (mins, rest) = tzset_num(rest, 0, 59)?;
        off += mins * 60;
        s = rest;
        if let Some(rest) = s.strip_prefix(':') {
            let (secs, rest) = tzset_num(rest, 0, 59)?;
            off += secs;
            s = rest;
        }
    }
    Some((if neg { -off } else { off }, s))
}

fn tzset_rule(s: &str) -> Option<(Rule, &str)> {
    let (mut r, mut s) = if let Some(rest) = s.strip_prefix('J') {
        let (day, rest) = tzset_num(rest, 1, 365)?;
        (
            Rule {
                kind: RuleKind::Julian,
                day,
                week: 0,
                mon: 0,
                time: 0,
            },
            rest,
        )
    } else if let Some(rest) = s.strip_prefix('M') {
        let (mon, rest) = tzset_num(rest, 1, 12)?;
        let rest = rest.strip_prefix('.')?;
        let (week, rest) = tzset_num(rest, 1, 5)?;
        let rest = rest.strip_prefix('.')?;
        let (day, rest) = tzset_num(rest, 0, 6)?;
        (
            Rule {
                kind: RuleKind::MonthWeekDay,
                day,
                week,
                mon,
                time: 0,
            },
            rest,
        )
    } else {
        let (day, rest) = tzset_num(s, 0, 365)?;
        (
            Rule {
                kind: RuleKind::DayOfYear,
                day,
                week: 0,
                mon: 0,
                time: 0,
            },
            rest,
        )
    };
    if let Some(rest) = s.strip_prefix('/') {
        let (t, rest) = tzset_offset(rest)?;
        r.time = t;
        s = rest;
    } else {
        r.time = 2 * 3600;
    }
    Some((r, s))
}

/// Go's `tzruleTime`: seconds since the start of `year` at which rule `r` applies.
fn tzrule_time(year: i64, r: Rule, off: i64) -> i64 {
    let leap = super::gotime::is_leap(year);
    let s = match r.kind {
        RuleKind::Julian => {
            let mut s = (r.day - 1) * 86_400;
            if leap && r.day >= 60 {
                s += 86_400;
            }
            s
        }
        RuleKind::DayOfYear => r.day * 86_400,
        RuleKind::MonthWeekDay => {
            // Zeller's congruence: the weekday of the first of the month.
            let m1 = (r.mon + 9) % 12 + 1;
            let yy0 = if r.mon <= 2 { year - 1 } else { year };
            let yy1 = yy0 / 100;
            let yy2 = yy0 % 100;
            let mut dow = ((26 * m1 - 2) / 10 + 1 + yy2 + yy2 / 4 + yy1 / 4 - 2 * yy1) % 7;
            if dow < 0 {
                dow += 7;
            }
            let mut d = r.day - dow;
            if d < 0 {
                d += 7;
            }
            for _ in 1..r.week {
                if d + 7 >= i64::from(super::gotime::days_in(r.mon as u32, year)) {
                    break;
                }
                d += 7;
            }
            d += i64::from(super::gotime::days_before(r.mon as u32));
            if leap && r.mon > 2 {
                d += 1;
            }
            d * 86_400
        }
    };
    s + r.time - off
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn posix_rules_give_the_us_eastern_offsets() {
        let rule = "EST5EDT,M3.2.0,M11.1.0";
        // 2024-07-01T12:00:00Z is summer time; 2024-01-15T12:00:00Z winter time.
        let (name, off, _, _) = tzset(rule, 0, 1_719_835_200).unwrap();
        assert_eq!((&*name, off), ("EDT", -4 * 3600));
        let (name, off, _, _) = tzset(rule, 0, 1_705_320_000).unwrap();
        assert_eq!((&*name, off), ("EST", -5 * 3600));
        assert!(tzset("X", 0, 0).is_none());
    }

    #[test]
    fn system_zones_load_when_present() {
        let Some(z) = load("America/New_York") else {
            return; // no zoneinfo on this machine
        };
        let (name, off, _, _) = z.lookup(1_719_835_200);
        assert_eq!((&*name, off), ("EDT", -4 * 3600));
        let (name, off, _, _) = z.lookup(1_705_320_000);
        assert_eq!((&*name, off), ("EST", -5 * 3600));
        assert!(parse_tzif(b"TZif2").is_none());
        assert!(load("No/Such_Zone").is_none());
    }
}

//! Duration syntaxes: Go's `time.ParseDuration`, Prometheus' `model.ParseDuration`, and
//! LogQL's combination of the two (Go first, then Prometheus for `d`, `w`, `y`).
//!
//! All results are signed nanoseconds in an `i64`, the range Go's `time.Duration` has; a value
//! that does not fit is an error, never a wrap-around.

use std::fmt;

const NS_PER_MS: u64 = 1_000_000;
const NS_PER_S: u64 = 1_000_000_000;
const NS_PER_M: u64 = 60 * NS_PER_S;
const NS_PER_H: u64 = 60 * NS_PER_M;
const NS_PER_D: u64 = 24 * NS_PER_H;

/// Why a duration string was refused; the message follows the wording of the Go library
/// that defines the syntax.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DurationError(String);

impl fmt::Display for DurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DurationError {}

/// Prometheus units, largest first; a duration must use them in this order, each at most once.
const PROMETHEUS_UNITS: [(&str, u64); 7] = [
    ("y", 365 * NS_PER_D),
    ("w", 7 * NS_PER_D),
    ("d", NS_PER_D),
    ("h", NS_PER_H),
    ("m", NS_PER_M),
    ("s", NS_PER_S),
    ("ms", NS_PER_MS),
];

/// Prometheus' duration syntax (`1y2w3d4h5m6s7ms`, or `0`): integers only, units in
/// decreasing order, no sign. Used for `since` and inside LogQL ranges.
pub fn parse_prometheus_duration(s: &str) -> Result<i64, DurationError> {
    match s {
        "0" => return Ok(0),
        "" => return Err(DurationError("empty duration string".into())),
        _ => {}
    }
    let invalid = || DurationError(format!("not a valid duration string: {s:?}"));
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut total: u64 = 0;
    let mut last_unit_pos: Option<usize> = None;
    while i < bytes.len() {
        let digits_start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if i == digits_start {
            return Err(invalid());
        }
        let value: u64 = s[digits_start..i].parse().map_err(|_| invalid())?;
        let unit_start = i;
        while i < bytes.len() && !bytes[i].is_ascii_digit() {
            i += 1;
        }
        if i == unit_start {
            return Err(invalid());
        }
        let unit = &s[unit_start..i];
        let Some(pos) = PROMETHEUS_UNITS.iter().position(|(u, _)| *u == unit) else {
            return Err(DurationError(format!(
                "unknown unit {unit:?} in duration {s:?}"
            )));
        };
        if last_unit_pos.is_some_and(|last| pos <= last) {
            return Err(invalid());
        }
        last_unit_pos = Some(pos);
        let out_of_range = || DurationError("duration out of range".into());
        let add = value
            .checked_mul(PROMETHEUS_UNITS[pos].1)
            .ok_or_else(out_of_range)?;
        total = total.checked_add(add).ok_or_else(out_of_range)?;
        if total > i64::MAX as u64 {
            return Err(out_of_range());
        }
    }
    Ok(total as i64)
}

/// Go's `time.ParseDuration`: an optional sign, then one or more decimal numbers with an
/// optional fraction, each followed by a unit among `ns`, `us`, `µs`, `μs`, `ms`, `s`, `m`, `h`.
pub fn parse_go_duration(s: &str) -> Result<i64, DurationError> {
    let invalid = || DurationError(format!("time: invalid duration {s:?}"));
    let mut rest = s;
    let mut negative = false;
    if let Some(r) = rest.strip_prefix('-') {
        negative = true;
        rest = r;
    } else if let Some(r) = rest.strip_prefix('+') {
        rest = r;
    }
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let b = rest.as_bytes();
        if !(b[0] == b'.' || b[0].is_ascii_digit()) {
            return Err(invalid());
        }
        // Integer part.
        let mut i = 0;
        let mut whole: u64 = 0;
        while i < b.len() && b[i].is_ascii_digit() {
            whole = whole
                .checked_mul(10)
                .and_then(|v| v.checked_add(u64::from(b[i] - b'0')))
                .ok_or_else(invalid)?;
            i += 1;
        }
        let had_whole = i > 0;
        // Fraction: Go keeps digits while they fit and scales them with floating point.
        let mut frac: u64 = 0;
        let mut scale: f64 = 1.0;
        let mut had_frac = false;
        if i < b.len() && b[i] == b'.' {
            i += 1;
            let frac_start = i;
            let mut overflowed = false;
            while i < b.len() && b[i].is_ascii_digit() {
                if !overflowed {
                    match frac
                        .checked_mul(10)
                        .and_then(|v| v.checked_add(u64::from(b[i] - b'0')))
                    {
                        Some(v) if v <= (1 << 63) => {
                            frac = v;
                            scale *= 10.0;
                        }
                        _ => overflowed = true,
                    }
                }
                i += 1;
            }
            had_frac = i > frac_start;
        }
        if !had_whole && !had_frac {
            return Err(invalid());
        }
        let unit_start = i;
        while i < b.len() && b[i] != b'.' && !b[i].is_ascii_digit() {
            i += 1;
        }
        let unit = &rest[unit_start..i];
        if unit.is_empty() {
            return Err(DurationError(format!(
                "time: missing unit in duration {s:?}"
            )));
        }
        let unit_ns: u64 = match unit {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => NS_PER_MS,
            "s" => NS_PER_S,
            "m" => NS_PER_M,
            "h" => NS_PER_H,
            _ => {
                return Err(DurationError(format!(
                    "time: unknown unit {unit:?} in duration {s:?}"
                )));
            }
        };
        let mut v = whole.checked_mul(unit_ns).ok_or_else(invalid)?;
        if frac > 0 {
            v = v
                .checked_add((frac as f64 * (unit_ns as f64 / scale)) as u64)
                .ok_or_else(invalid)?;
        }
        total = total.checked_add(v).ok_or_else(invalid)?;
        if total > i64::MAX as u64 + u64::from(negative) {
            return Err(invalid());
        }
        rest = &rest[i..];
    }
    if negative {
        Ok((total as i128).wrapping_neg() as i64)
    } else {
        Ok(total as i64)
    }
}

/// LogQL's duration (ranges, `offset`, duration literals in label filters): Go's syntax,
/// falling back to Prometheus' for days, weeks and years. On failure the Prometheus error is
/// reported, as Loki does (`unknown unit "minutes" in duration "5minutes"`).
pub fn parse_logql_duration(s: &str) -> Result<i64, DurationError> {
    parse_go_duration(s).or_else(|_| parse_prometheus_duration(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_durations() {
        assert_eq!(parse_prometheus_duration("0"), Ok(0));
        assert_eq!(
            parse_prometheus_duration("1h30m"),
            Ok(90 * 60 * 1_000_000_000)
        );
        assert_eq!(parse_prometheus_duration("1d"), Ok(86_400 * 1_000_000_000));
        assert_eq!(parse_prometheus_duration("100ms"), Ok(100_000_000));
        assert_eq!(
            parse_prometheus_duration("1y"),
            Ok(365 * 86_400 * 1_000_000_000)
        );
        assert!(parse_prometheus_duration("").is_err());
        assert!(
            parse_prometheus_duration("1m1h").is_err(),
            "units out of order"
        );
        assert!(parse_prometheus_duration("1m1m").is_err(), "unit repeated");
        assert!(parse_prometheus_duration("1.5h").is_err());
        assert!(parse_prometheus_duration("-1h").is_err());
        assert!(
            parse_prometheus_duration("300y").is_err(),
            "overflows i64 ns"
        );
        assert_eq!(
            parse_prometheus_duration("5minutes")
                .unwrap_err()
                .to_string(),
            r#"unknown unit "minutes" in duration "5minutes""#
        );
    }

    #[test]
    fn go_durations() {
        assert_eq!(
            parse_go_duration("1h15m30.918273645s"),
            Ok(4_530_918_273_645)
        );
        assert_eq!(parse_go_duration("-1s"), Ok(-1_000_000_000));
        assert_eq!(parse_go_duration("1µs"), Ok(1_000));
        assert_eq!(parse_go_duration("1h0.0m0s"), Ok(3_600_000_000_000));
        assert_eq!(parse_go_duration(".5s"), Ok(500_000_000));
        assert_eq!(parse_go_duration("0"), Ok(0));
        assert!(parse_go_duration("1d").is_err());
        assert!(parse_go_duration("1").is_err());
        assert!(parse_go_duration(".s").is_err());
        assert!(parse_go_duration("").is_err());
        assert!(parse_go_duration("3000000h").is_err(), "overflows i64 ns");
    }

    #[test]
    fn logql_durations_match_loki_fixtures() {
        // Values from Loki's lexer tests (aux.jsonl, kind "duration").
        let cases: [(&str, i64); 11] = [
            ("1ns", 1),
            ("1s", 1_000_000_000),
            ("1us", 1_000),
            ("1m", 60_000_000_000),
            ("1h", 3_600_000_000_000),
            ("1µs", 1_000),
            ("1y", 31_536_000_000_000_000),
            ("1w", 604_800_000_000_000),
            ("1d", 86_400_000_000_000),
            ("1h15m30.918273645s", 4_530_918_273_645),
            ("-1s", -1_000_000_000),
        ];
        for (input, want) in cases {
            assert_eq!(parse_logql_duration(input), Ok(want), "{input}");
        }
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,24}") {
            let _ = parse_logql_duration(&s);
            let _ = parse_prometheus_duration(&s);
        }
    }
}

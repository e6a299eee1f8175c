//! Numbers, durations and byte sizes read and printed the way Loki's Go code does: Go's
//! `strconv.ParseFloat` and `Atoi`, `fmt`'s `%v` of a float, `time.Duration.String()`,
//! Prometheus' `model.Duration.String()` and go-humanize's `Bytes`/`ParseBytes`.
//!
//! Which question it answers: "what value does Loki read from this literal, and what text does
//! Loki print for this value?" The canonical printer and the parser both need the answer to be
//! Loki's exactly, or a query would print differently, or a literal would be accepted by one
//! and refused by the other.

/// Go's `strconv.ParseFloat(s, 64)` on the text of a NUMBER token: decimal with optional
/// fraction and exponent, `_` between digits, or hexadecimal with a mandatory `p` exponent.
/// A value too large for an `f64` is an error, as in Go (`value out of range`).
pub(crate) fn parse_go_float(s: &str) -> Result<f64, String> {
    let syntax = || format!("strconv.ParseFloat: parsing {}: invalid syntax", quote(s));
    let range = || {
        format!(
            "strconv.ParseFloat: parsing {}: value out of range",
            quote(s)
        )
    };
    let (negative, body) = match s.as_bytes().first() {
        Some(b'+') => (false, &s[1..]),
        Some(b'-') => (true, &s[1..]),
        _ => (false, s),
    };
    let lower = body.to_ascii_lowercase();
    if matches!(lower.as_str(), "inf" | "infinity") {
        return Ok(if negative {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        });
    }
    if lower == "nan" {
        return Ok(f64::NAN);
    }
    if body.contains('_') && !underscores_ok(body) {
        return Err(syntax());
    }
    let clean: String = body.chars().filter(|&c| c != '_').collect();
    let value = if let Some(hex) = clean
        .strip_prefix("0x")
        .or_else(|| clean.strip_prefix("0X"))
    {
        parse_hex_float(hex).ok_or_else(syntax)?
    } else {
        let valid = !clean.is_empty()
            && clean
                .bytes()
                .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'));
        if !valid {
            return Err(syntax());
        }
        clean.parse::<f64>().map_err(|_| syntax())?
    };
    if value.is_infinite() {
        return Err(range());
    }
    Ok(if negative { -value } else { value })
}

/// Go's rule for `_` in number literals: only between digits, or between a base prefix and a
/// digit.
fn underscores_ok(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    let mut hex = false;
    // `saw` is '^' at the start, '0' after a digit or base prefix, '_' after an underscore and
    // '!' after anything else.
    let mut saw = b'^';
    if b.len() >= 2 && b[0] == b'0' && matches!(b[1].to_ascii_lowercase(), b'b' | b'o' | b'x') {
        hex = b[1].eq_ignore_ascii_case(&b'x');
        i = 2;
        saw = b'0';
    }
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_digit() || (hex && c.is_ascii_hexdigit()) {
            saw = b'0';
        } else if c == b'_' {
            if saw != b'0' {
                return false;
            }
            saw = b'_';
        } else {
            if saw == b'_' {
                return false;
            }
            saw = b'!';
        }
        i += 1;
    }
    saw != b'_'
}

/// A hexadecimal float after `0x`: hex digits with an optional point, then a mandatory
/// `p` exponent (Go refuses `0x1A` as a float).
fn parse_hex_float(s: &str) -> Option<f64> {
    let lower = s.to_ascii_lowercase();
    let (mantissa, exponent) = lower.split_once('p')?;
    let exponent: i32 = exponent.parse().ok()?;
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int_part.is_empty() && frac_part.is_empty() {
        return None;
    }
    let mut value: f64 = 0.0;
    for c in int_part.chars() {
        value = value * 16.0 + f64::from(c.to_digit(16)?);
    }
    let mut scale = 1.0 / 16.0;
    for c in frac_part.chars() {
        value += f64::from(c.to_digit(16)?) * scale;
        scale /= 16.0;
    }
    Some(value * 2f64.powi(exponent))
}

/// Go's `strconv.Atoi`: an optional sign and decimal digits, within an `i64`.
pub(crate) fn parse_go_int(s: &str) -> Result<i64, String> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "strconv.Atoi: parsing {}: invalid syntax",
            quote(s)
        ));
    }
    s.parse::<i64>()
        .map_err(|_| format!("strconv.Atoi: parsing {}: value out of range", quote(s)))
}

fn quote(s: &str) -> String {
    super::ast::quote_go(s)
}

/// `fmt.Sprint(v)` of a float64 (`%v`, i.e. `%g` with the shortest digits): plain decimal
/// for decimal exponents from -4 to 5, exponent form (`1e+06`, `1e-05`) otherwise.
pub(crate) fn format_go_float(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0" } else { "0" }.into();
    }
    // `{:e}` gives the shortest digits that read back to `v`, as Go's shortest mode does.
    let sci = format!("{v:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if (-4..6).contains(&exp) {
        return format!("{v}");
    }
    let sign = if exp < 0 { '-' } else { '+' };
    format!("{mantissa}e{sign}{:02}", exp.unsigned_abs())
}

/// `strconv.FormatFloat(v, 'f', -1, 64)`: the shortest digits, never an exponent.
pub(crate) fn format_go_float_plain(v: f64) -> String {
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    format!("{v}")
}

/// Go's `time.Duration.String()`: `1h2m3.5s`, `5m0s`, `1.5ms`, `0s`.
pub(crate) fn format_go_duration(ns: i64) -> String {
    if ns == 0 {
        return "0s".into();
    }
    let negative = ns < 0;
    let u = ns.unsigned_abs();
    let mut out = String::new();
    if negative {
        out.push('-');
    }
    if u < 1_000_000_000 {
        // Below a second: one unit with a fraction.
        let (unit, scale) = if u < 1_000 {
            ("ns", 1)
        } else if u < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        out.push_str(&fraction(u, scale));
        out.push_str(unit);
        return out;
    }
    let hours = u / 3_600_000_000_000;
    let rest = u % 3_600_000_000_000;
    let minutes = rest / 60_000_000_000;
    let seconds_ns = rest % 60_000_000_000;
    if hours > 0 {
        out.push_str(&format!("{hours}h"));
    }
    if hours > 0 || minutes > 0 {
        out.push_str(&format!("{minutes}m"));
    }
    out.push_str(&fraction(seconds_ns, 1_000_000_000));
    out.push('s');
    out
}

/// `value / scale` with the fraction's trailing zeros removed (`1500, 1000` -> `1.5`).
fn fraction(value: u64, scale: u64) -> String {
    let whole = value / scale;
    let frac = value % scale;
    if frac == 0 {
        return whole.to_string();
    }
    let width = scale.to_string().len() - 1;
    let digits = format!("{frac:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// Prometheus' `model.Duration.String()`, as Loki prints a range: `5m`, `1h30m`, `1d`, `2w`,
/// `1y`; whole milliseconds only (a finer part is dropped), `0s` for zero.
pub(crate) fn format_prometheus_duration(ns: i64) -> String {
    let mut ms = ns / 1_000_000;
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    if ms < 0 {
        out.push('-');
        ms = -ms;
    }
    const MS_PER_DAY: i64 = 24 * 3_600_000;
    let units: [(&str, i64, bool); 7] = [
        ("y", 365 * MS_PER_DAY, true),
        ("w", 7 * MS_PER_DAY, true),
        ("d", MS_PER_DAY, false),
        ("h", 3_600_000, false),
        ("m", 60_000, false),
        ("s", 1_000, false),
        ("ms", 1, false),
    ];
    for (unit, mult, exact) in units {
        if exact && ms % mult != 0 {
            continue;
        }
        let v = ms / mult;
        if v > 0 {
            out.push_str(&format!("{v}{unit}"));
            ms -= v * mult;
        }
    }
    out
}

/// go-humanize's `Bytes` (SI units, one decimal under 10) with the space removed, as Loki
/// prints a bytes label filter: `10GB`, `2.6kB`, `42B`. It rounds, so `2.5KiB` prints as
/// `2.6kB`.
pub(crate) fn format_humanized_bytes(v: u64) -> String {
    if v < 10 {
        return format!("{v}B");
    }
    const SIZES: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let f = v as f64;
    let e = (f.ln() / 1000f64.ln()).floor();
    let suffix = SIZES[(e as usize).min(SIZES.len() - 1)];
    let val = (f / 1000f64.powf(e) * 10.0 + 0.5).floor() / 10.0;
    if val < 10.0 {
        format!("{val:.1}{suffix}")
    } else {
        format!("{val:.0}{suffix}")
    }
}

/// go-humanize's `ParseBytes`: a number (`,` allowed as a thousands separator) and an optional
/// unit among `B`, `k`/`kB`/`KiB`, `M`..., case-insensitive; binary units are powers of 1024.
pub(crate) fn parse_humanized_bytes(s: &str) -> Option<u64> {
    let split = s
        .char_indices()
        .find(|&(_, c)| !(c.is_numeric() || c == '.' || c == ','))
        .map_or(s.len(), |(i, _)| i);
    let number: String = s[..split].chars().filter(|&c| c != ',').collect();
    let value: f64 = number.parse().ok()?;
    let unit = s[split..].trim().to_lowercase();
    let mult: f64 = match unit.as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "ki" | "kib" => 1024.0,
        "m" | "mb" => 1e6,
        "mi" | "mib" => 1024f64.powi(2),
        "g" | "gb" => 1e9,
        "gi" | "gib" => 1024f64.powi(3),
        "t" | "tb" => 1e12,
        "ti" | "tib" => 1024f64.powi(4),
        "p" | "pb" => 1e15,
        "pi" | "pib" => 1024f64.powi(5),
        "e" | "eb" => 1e18,
        "ei" | "eib" => 1024f64.powi(6),
        _ => return None,
    };
    let bytes = value * mult;
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return None;
    }
    Some(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_read_as_go_reads_them() {
        assert_eq!(parse_go_float("1.5"), Ok(1.5));
        assert_eq!(parse_go_float(".5"), Ok(0.5));
        assert_eq!(parse_go_float("1."), Ok(1.0));
        assert_eq!(parse_go_float("1e6"), Ok(1e6));
        assert_eq!(parse_go_float("010"), Ok(10.0));
        assert_eq!(parse_go_float("1_000.5"), Ok(1000.5));
        assert_eq!(parse_go_float("0x1p3"), Ok(8.0));
        assert_eq!(parse_go_float("0x1.8p1"), Ok(3.0));
        assert!(parse_go_float("0x10").is_err(), "a hex float needs p");
        assert!(parse_go_float("0b1").is_err());
        assert!(parse_go_float("0o7").is_err());
        assert!(parse_go_float("1__0").is_err());
        assert!(
            parse_go_float("1e999")
                .unwrap_err()
                .contains("out of range")
        );
        assert_eq!(
            parse_go_float("0x10").unwrap_err(),
            r#"strconv.ParseFloat: parsing "0x10": invalid syntax"#
        );
        assert_eq!(parse_go_int("010"), Ok(10));
        assert!(parse_go_int("1.2").is_err());
        assert!(parse_go_int("0x10").is_err());
        assert!(parse_go_int("99999999999999999999").is_err());
    }

    #[test]
    fn floats_print_as_go_prints_them() {
        let cases: [(f64, &str); 13] = [
            (0.0, "0"),
            (1.6, "1.6"),
            (-2.0, "-2"),
            (100000.0, "100000"),
            (1e6, "1e+06"),
            (1234567.0, "1.234567e+06"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5e300, "1.5e+300"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (123456.7, "123456.7"),
        ];
        for (v, want) in cases {
            assert_eq!(format_go_float(v), want, "{v}");
        }
        assert_eq!(format_go_float_plain(0.99998), "0.99998");
        assert_eq!(format_go_float_plain(1e21), "1000000000000000000000");
    }

    #[test]
    fn durations_print_as_go_and_prometheus_print_them() {
        let s = 1_000_000_000;
        assert_eq!(format_go_duration(0), "0s");
        assert_eq!(format_go_duration(5 * 60 * s), "5m0s");
        assert_eq!(format_go_duration(3600 * s), "1h0m0s");
        assert_eq!(format_go_duration(250_000_000), "250ms");
        assert_eq!(format_go_duration(1_500_000), "1.5ms");
        assert_eq!(format_go_duration(1_500), "1.5µs");
        assert_eq!(format_go_duration(-s), "-1s");
        assert_eq!(format_go_duration(4_530_918_273_645), "1h15m30.918273645s");
        assert_eq!(format_go_duration(10 * 365 * 86_400 * s), "87600h0m0s");
        assert_eq!(format_prometheus_duration(5 * 60 * s), "5m");
        assert_eq!(format_prometheus_duration(90 * 60 * s), "1h30m");
        assert_eq!(format_prometheus_duration(86_400 * s), "1d");
        assert_eq!(format_prometheus_duration(14 * 86_400 * s), "2w");
        assert_eq!(format_prometheus_duration(90 * 86_400 * s), "90d");
        assert_eq!(format_prometheus_duration(365 * 86_400 * s), "1y");
        assert_eq!(format_prometheus_duration(10 * s + 5_000_000), "10s5ms");
        assert_eq!(format_prometheus_duration(0), "0s");
    }

    #[test]
    fn bytes_as_humanize_handles_them() {
        assert_eq!(format_humanized_bytes(10_000_000_000), "10GB");
        assert_eq!(format_humanized_bytes(2560), "2.6kB");
        assert_eq!(format_humanized_bytes(42), "42B");
        assert_eq!(format_humanized_bytes(0), "0B");
        assert_eq!(format_humanized_bytes(1000), "1.0kB");
        assert_eq!(parse_humanized_bytes("2.5KiB"), Some(2560));
        assert_eq!(parse_humanized_bytes("10GB"), Some(10_000_000_000));
        assert_eq!(parse_humanized_bytes("0B"), Some(0));
        assert_eq!(parse_humanized_bytes("123PiB"), Some(123 * 1024u64.pow(5)));
        assert_eq!(parse_humanized_bytes("5x"), None);
    }
}

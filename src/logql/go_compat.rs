//! Numbers, durations and byte sizes read and printed the way Loki's Go code does: Go's
//! `strconv.ParseFloat` and `Atoi`, `fmt`'s `%v` of a float, `time.Duration.String()`,
//! Prometheus' `model.Duration.String()` and go-humanize's `Bytes`/`ParseBytes`.
//!
//! Which question it answers: "what value does Loki read from this literal, and what text does
//! Loki print for this value?" The canonical printer and the parser both need the answer to be
//! Loki's exactly, or a query would print differently, or a literal would be accepted by one
//! and refused by the other.

/// Go's `strconv.ParseFloat(s, 64)`: decimal and hexadecimal (`0x1.8p3`) literals with
/// optional `_` digit separators, `inf`/`infinity` (signed, any case) and `nan` (any case).
/// A finite literal too large for `f64` is an error, as in Go.
pub fn parse_go_float(s: &str) -> Result<f64, String> {
    let syntax = || format!("strconv.ParseFloat: parsing {}: invalid syntax", quote(s));
    let range = || {
        format!(
            "strconv.ParseFloat: parsing {}: value out of range",
            quote(s)
        )
    };
    let (negative, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let signed = body.len() != s.len();
    if body.eq_ignore_ascii_case("inf") || body.eq_ignore_ascii_case("infinity") {
        return Ok(if negative {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        });
    }
    if body.eq_ignore_ascii_case("nan") {
        return if signed { Err(syntax()) } else { Ok(f64::NAN) };
    }
    let bytes = body.as_bytes();
    let is_hex = bytes.len() > 2 && bytes[0] == b'0' && (bytes[1] | 0x20) == b'x';
    if body.contains('_') && !underscores_ok(body, is_hex) {
        return Err(syntax());
    }
    let value = if is_hex {
        parse_hex_float(&body[2..]).ok_or_else(syntax)?
    } else {
        let clean: String = body.chars().filter(|&c| c != '_').collect();
        if !is_decimal_literal(&clean) {
            return Err(syntax());
        }
        clean.parse::<f64>().map_err(|_| syntax())?
    };
    if value.is_infinite() {
        return Err(range());
    }
    Ok(if negative { -value } else { value })
}

/// Digits with an optional `.`, at least one digit, then an optional exponent `e[+-]digits`.
pub(crate) fn is_decimal_literal(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    let mut digits = 0;
    let mut dot = false;
    while i < b.len() {
        match b[i] {
            b'0'..=b'9' => digits += 1,
            b'.' if !dot => dot = true,
            _ => break,
        }
        i += 1;
    }
    if digits == 0 {
        return false;
    }
    if i == b.len() {
        return true;
    }
    if b[i] | 0x20 != b'e' {
        return false;
    }
    i += 1;
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        i += 1;
    }
    i < b.len() && b[i..].iter().all(u8::is_ascii_digit)
}

/// Go's `underscoreOK`: an underscore only between digits (a base prefix counts as a digit).
fn underscores_ok(body: &str, hex: bool) -> bool {
    let b = body.as_bytes();
    let (mut saw, start) = if hex { (b'0', 2) } else { (b'^', 0) };
    for &c in b.iter().skip(start) {
        let digit = c.is_ascii_digit() || (hex && c.is_ascii_hexdigit());
        if digit {
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
    }
    saw != b'_'
}

/// The part after `0x` of a Go hexadecimal float: hex digits with an optional `.`, then a
/// mandatory binary exponent `p[+-]digits`. Exact up to 52 significant bits, which covers
/// every value written by a program that printed an `f64`.
fn parse_hex_float(s: &str) -> Option<f64> {
    let s: String = s.chars().filter(|&c| c != '_').collect();
    let (mantissa, exponent) = s.split_once(['p', 'P'])?;
    let mut value = 0f64;
    let mut digits = 0;
    let mut frac_digits: i32 = 0;
    let mut dot = false;
    for c in mantissa.chars() {
        if c == '.' && !dot {
            dot = true;
            continue;
        }
        let d = c.to_digit(16)?;
        value = value * 16.0 + f64::from(d);
        digits += 1;
        if dot {
            frac_digits = frac_digits.saturating_add(1);
        }
    }
    if digits == 0 {
        return None;
    }
    let (neg, exp_digits) = match exponent.as_bytes().first() {
        Some(b'-') => (true, &exponent[1..]),
        Some(b'+') => (false, &exponent[1..]),
        _ => (false, exponent),
    };
    if exp_digits.is_empty() || !exp_digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Beyond ±4000 every result is 0 or infinite; clamping keeps the arithmetic in range.
    let exp: i32 = exp_digits.parse::<i32>().unwrap_or(i32::MAX).min(4000);
    let exp = if neg { -exp } else { exp };
    let shift = exp.saturating_sub(frac_digits.saturating_mul(4));
    // Two steps so that neither power overflows on its own for subnormal results.
    let half = shift / 2;
    Some(value * 2f64.powi(half) * 2f64.powi(shift - half))
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

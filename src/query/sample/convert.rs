//! `| unwrap` conversions: a label value to the sample's float, with Loki's parsing rules.
//!
//! Which question it answers: "what number is this label value, or why is it none?" Loki
//! converts with Go's `strconv.ParseFloat` (plain `unwrap x`), `time.ParseDuration` then
//! `Seconds()` (`duration(x)`, `duration_seconds(x)`), and go-humanize's `ParseBytes`
//! (`bytes(x)`). On failure the caller sets `__error__="SampleExtractionErr"` and
//! `__error_details__` to the returned message, which follows the Go wording.

use crate::logql::UnwrapConversion;
use crate::logql::duration::parse_go_duration;
use crate::logql::quote_go;

/// The value of a label as the sample of `| unwrap`, or the reason it has none.
pub fn convert(conv: UnwrapConversion, value: &str) -> Result<f64, String> {
    match conv {
        UnwrapConversion::Float => parse_go_float(value),
        UnwrapConversion::Duration | UnwrapConversion::DurationSeconds => {
            let ns = parse_go_duration(value).map_err(|e| e.to_string())?;
            Ok(go_seconds(ns))
        }
        UnwrapConversion::Bytes => parse_humanized_bytes(value).map(|b| b as f64),
    }
}

/// Go's `time.Duration.Seconds()`: whole seconds plus the remainder, each converted apart.
pub fn go_seconds(ns: i64) -> f64 {
    let sec = ns / 1_000_000_000;
    let nsec = ns % 1_000_000_000;
    sec as f64 + nsec as f64 / 1e9
}

/// Go's `strconv.ParseFloat(s, 64)`: decimal and hexadecimal (`0x1.8p3`) literals with
/// optional `_` digit separators, `inf`/`infinity` (signed, any case) and `nan` (any case).
/// A finite literal too large for `f64` is an error, as in Go.
pub fn parse_go_float(s: &str) -> Result<f64, String> {
    let syntax = || {
        format!(
            "strconv.ParseFloat: parsing {}: invalid syntax",
            quote_go(s)
        )
    };
    let range = || {
        format!(
            "strconv.ParseFloat: parsing {}: value out of range",
            quote_go(s)
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
fn is_decimal_literal(s: &str) -> bool {
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

/// go-humanize's `ParseBytes`: a number (digits, `.` and `,` thousands separators) and an
/// optional unit, case-insensitive: `b`, `k`/`kb` (1000), `ki`/`kib` (1024), ... up to
/// exabytes. The result is truncated to whole bytes (`1.5B` is 1).
pub fn parse_humanized_bytes(s: &str) -> Result<u64, String> {
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == ','))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let num: String = num.chars().filter(|&c| c != ',').collect();
    let number: f64 = if is_decimal_literal(&num) && !num.contains(['e', 'E']) {
        num.parse().map_err(|_| float_syntax(&num))?
    } else {
        return Err(float_syntax(&num));
    };
    let unit = unit.trim().to_ascii_lowercase();
    let multiplier: u64 = match unit.as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "ki" | "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mi" | "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gi" | "gib" => 1 << 30,
        "t" | "tb" => 1_000_000_000_000,
        "ti" | "tib" => 1 << 40,
        "p" | "pb" => 1_000_000_000_000_000,
        "pi" | "pib" => 1 << 50,
        "e" | "eb" => 1_000_000_000_000_000_000,
        "ei" | "eib" => 1 << 60,
        _ => return Err(format!("unhandled size name: {unit}")),
    };
    let bytes = number * multiplier as f64;
    if bytes >= u64::MAX as f64 {
        return Err(format!("too large: {s}"));
    }
    Ok(bytes as u64)
}

fn float_syntax(num: &str) -> String {
    format!(
        "strconv.ParseFloat: parsing {}: invalid syntax",
        quote_go(num)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_follow_go() {
        assert_eq!(parse_go_float("1.5"), Ok(1.5));
        assert_eq!(parse_go_float("-2"), Ok(-2.0));
        assert_eq!(parse_go_float("+3e2"), Ok(300.0));
        assert_eq!(parse_go_float(".5"), Ok(0.5));
        assert_eq!(parse_go_float("5."), Ok(5.0));
        assert_eq!(parse_go_float("1_000.5"), Ok(1000.5));
        assert_eq!(parse_go_float("0x1p3"), Ok(8.0));
        assert_eq!(parse_go_float("0X1.8p3"), Ok(12.0));
        assert_eq!(parse_go_float("0x1p-2"), Ok(0.25));
        assert_eq!(parse_go_float("Inf"), Ok(f64::INFINITY));
        assert_eq!(parse_go_float("-infinity"), Ok(f64::NEG_INFINITY));
        assert!(parse_go_float("NaN").unwrap().is_nan());
        assert_eq!(parse_go_float("1e-400"), Ok(0.0));
        assert_eq!(
            parse_go_float("1e400"),
            Err(r#"strconv.ParseFloat: parsing "1e400": value out of range"#.to_string())
        );
        for bad in [
            "", "abc", "1x", "+nan", "infin", "1_", "_1", "1__0", "0x1", "1e", "e5", ".", "1 ",
            " 1", "1.2.3", "0b101",
        ] {
            assert!(parse_go_float(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            parse_go_float("abc"),
            Err(r#"strconv.ParseFloat: parsing "abc": invalid syntax"#.to_string())
        );
    }

    #[test]
    fn durations_are_seconds() {
        let d = |s| convert(UnwrapConversion::Duration, s);
        assert_eq!(d("2s"), Ok(2.0));
        assert_eq!(d("500ms"), Ok(0.5));
        assert_eq!(d("1h30m"), Ok(5400.0));
        assert_eq!(d("1.5h"), Ok(5400.0));
        assert_eq!(d("-5s"), Ok(-5.0));
        assert_eq!(convert(UnwrapConversion::DurationSeconds, "90s"), Ok(90.0));
        assert!(d("1d").is_err());
        assert!(d("5").is_err());
    }

    #[test]
    fn bytes_follow_humanize() {
        // The cases of Loki's conversion tests (conversions.logqltest).
        let cases: [(&str, u64); 17] = [
            ("1KB", 1000),
            ("1KiB", 1024),
            ("1MB", 1_000_000),
            ("1MiB", 1 << 20),
            ("1GB", 1_000_000_000),
            ("1GiB", 1 << 30),
            ("1TB", 1_000_000_000_000),
            ("1TiB", 1 << 40),
            ("1PB", 1_000_000_000_000_000),
            ("1PiB", 1 << 50),
            ("1.5KB", 1500),
            ("1024", 1024),
            ("2Kb", 2000),
            ("2,048", 2048),
            ("1.5B", 1),
            ("25MB", 25_000_000),
            ("3 k", 3000),
        ];
        for (input, want) in cases {
            assert_eq!(parse_humanized_bytes(input), Ok(want), "{input}");
            assert_eq!(
                convert(UnwrapConversion::Bytes, input),
                Ok(want as f64),
                "{input}"
            );
        }
        assert_eq!(
            parse_humanized_bytes("1XB"),
            Err("unhandled size name: xb".to_string())
        );
        assert!(parse_humanized_bytes("-1KB").is_err());
        assert!(parse_humanized_bytes("KB").is_err());
        assert!(parse_humanized_bytes("1e3").is_err());
        assert!(parse_humanized_bytes("99999999999EB").is_err());
    }

    proptest::proptest! {
        #[test]
        fn conversions_never_panic(s in "\\PC{0,24}") {
            for conv in [UnwrapConversion::Float, UnwrapConversion::Duration, UnwrapConversion::Bytes] {
                let _ = convert(conv, &s);
            }
        }

        #[test]
        fn plain_decimals_parse_like_rust(v in proptest::num::f64::NORMAL) {
            let text = format!("{v}");
            proptest::prop_assert_eq!(parse_go_float(&text), Ok(v));
            let text = format!("{v:e}");
            proptest::prop_assert_eq!(parse_go_float(&text), Ok(v));
        }
    }
}

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

use crate::logql::go_compat::is_decimal_literal;
pub use crate::logql::go_compat::parse_go_float;

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

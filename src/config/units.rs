//! Sizes and durations as operators write them, in flags and in the TOML file alike.
//!
//! - A size is a whole number of bytes (`262144`, or a TOML integer), or a number with a
//!   unit: `64KiB`, `8MiB`, `1GiB`, `2TiB` (powers of 1024) or `64KB`, `8MB`, `1GB`, `2TB`
//!   (powers of 1000), `B` for bytes; units are case-insensitive, a space may separate them
//!   from the number, and a fraction is allowed when the result is whole bytes (`1.5KiB`).
//!   Bare `k`, `M`, `G` are refused: half of the world reads them as 1000 and half as 1024.
//! - A duration is a number with a unit, Go's and Prometheus' syntaxes as LogQL takes them:
//!   `500ms`, `30s`, `10m`, `1h30m`, `1d`, `2w`, `250us`; `0` stands alone.
//!
//! Every error says what was given and lists the accepted forms; the caller adds the key.

use serde::Deserializer;
use serde::de::{self, Visitor};

/// What a size may look like, for error messages and `--help`.
pub const SIZE_FORMS: &str = "a number of bytes (65536) or a number with a unit: 64KiB, \
                              8MiB, 1GiB (x1024) or 64KB, 8MB, 1GB (x1000)";
/// What a duration may look like, for error messages and `--help`.
pub const DURATION_FORMS: &str = "a number with a unit: 250us, 500ms, 30s, 10m, 1h30m, 1d, 2w";

/// Units of a size, with how many bytes each stands for; matched case-insensitively.
const SIZE_UNITS: [(&str, u64); 9] = [
    ("b", 1),
    ("kb", 1000),
    ("mb", 1000 * 1000),
    ("gb", 1000 * 1000 * 1000),
    ("tb", 1000 * 1000 * 1000 * 1000),
    ("kib", 1 << 10),
    ("mib", 1 << 20),
    ("gib", 1 << 30),
    ("tib", 1 << 40),
];

/// Digits after the decimal point a size may have: enough for `1.125GiB`, few enough that
/// the arithmetic below stays exact in `u128`.
const SIZE_FRACTION_DIGITS_MAX: usize = 9;

/// Parses a size into bytes (see the module doc for the forms).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let s = text.trim();
    let refuse = |why: &str| format!("`{text}` is not a size ({why}); write {SIZE_FORMS}");
    let number_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = (&s[..number_end], s[number_end..].trim_start());
    if number.is_empty() {
        return Err(refuse("no number"));
    }
    let scale = if unit.is_empty() {
        1
    } else {
        let lower = unit.to_ascii_lowercase();
        SIZE_UNITS
            .iter()
            .find(|(u, _)| *u == lower)
            .map(|(_, scale)| *scale)
            .ok_or_else(|| refuse(&format!("unknown unit `{unit}`")))?
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty()
        || fraction.contains('.')
        || fraction.len() > SIZE_FRACTION_DIGITS_MAX
    {
        return Err(refuse("not a number"));
    }
    let too_big = || refuse("too large");
    let whole: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| too_big())?
    };
    let denominator = 10u128.pow(fraction.len() as u32);
    let numerator: u128 = if fraction.is_empty() {
        0
    } else {
        fraction.parse().map_err(|_| refuse("not a number"))?
    };
    let scale = u128::from(scale);
    let bytes = whole
        .checked_mul(scale)
        .and_then(|w| w.checked_add(numerator * scale / denominator))
        .ok_or_else(too_big)?;
    if !(numerator * scale).is_multiple_of(denominator) {
        return Err(refuse("not a whole number of bytes"));
    }
    u64::try_from(bytes).map_err(|_| too_big())
}

/// Parses a duration into nanoseconds (see the module doc for the forms).
pub fn parse_duration_ns(text: &str) -> Result<u64, String> {
    let s = text.trim();
    let refuse =
        |why: String| format!("`{text}` is not a duration ({why}); write {DURATION_FORMS}");
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && s != "0" {
        return Err(refuse("a unit is needed".to_string()));
    }
    let ns = crate::logql::duration::parse_logql_duration(s).map_err(|e| refuse(e.to_string()))?;
    u64::try_from(ns).map_err(|_| refuse("negative".to_string()))
}

/// `8388608` -> `8MiB`: the largest binary unit that divides the value, so that the text
/// parses back to the same number.
pub fn size_text(bytes: u64) -> String {
    for (unit, scale) in [
        ("TiB", 1u64 << 40),
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
    ] {
        if bytes >= scale && bytes.is_multiple_of(scale) {
            return format!("{}{unit}", bytes / scale);
        }
    }
    format!("{bytes}B")
}

/// `300 s` -> `5m`: whole days, hours, minutes, seconds, milliseconds or microseconds,
/// joined (`1h30m`), so that the text parses back to the same duration.
pub fn duration_text(d: std::time::Duration) -> String {
    if d.is_zero() {
        return "0".to_string();
    }
    let mut rest = d.as_micros();
    let mut out = String::new();
    for (unit, micros) in [
        ("d", 86_400_000_000u128),
        ("h", 3_600_000_000),
        ("m", 60_000_000),
        ("s", 1_000_000),
        ("ms", 1_000),
        ("us", 1),
    ] {
        if rest >= micros {
            out.push_str(&format!("{}{unit}", rest / micros));
            rest %= micros;
        }
    }
    out
}

/// clap's parser of a size flag (`--line-bytes-max 256KiB`).
pub fn size_flag(text: &str) -> Result<u64, String> {
    parse_size(text)
}

/// clap's parser of a size flag held in a `usize`.
pub fn size_flag_usize(text: &str) -> Result<usize, String> {
    let bytes = parse_size(text)?;
    usize::try_from(bytes).map_err(|_| format!("`{text}` is too large for this host"))
}

/// serde's reader of a size key: a TOML integer (bytes) or a string with a unit.
pub fn size_key<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<u64>,
{
    let bytes = deserializer.deserialize_any(SizeVisitor)?;
    T::try_from(bytes)
        .map(Some)
        .map_err(|_| de::Error::custom(format!("{bytes} bytes is too large for this host")))
}

struct SizeVisitor;

impl Visitor<'_> for SizeVisitor {
    type Value = u64;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "a size: {SIZE_FORMS}")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
        Ok(v)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
        u64::try_from(v).map_err(|_| E::custom(format!("{v} is negative; write {SIZE_FORMS}")))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<u64, E> {
        parse_size(v).map_err(E::custom)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn sizes_with_and_without_units() {
        assert_eq!(parse_size("262144"), Ok(262_144));
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("8MiB"), Ok(8 << 20));
        assert_eq!(parse_size("64KiB"), Ok(64 << 10));
        assert_eq!(parse_size("1GB"), Ok(1_000_000_000));
        assert_eq!(parse_size("1gib"), Ok(1 << 30));
        assert_eq!(parse_size(" 8 MiB "), Ok(8 << 20));
        assert_eq!(parse_size("512B"), Ok(512));
        assert_eq!(parse_size("1.5KiB"), Ok(1536));
        assert_eq!(parse_size("0.5MB"), Ok(500_000));
        assert_eq!(parse_size("2TiB"), Ok(2 << 40));
        assert!(parse_size("1PiB").unwrap_err().contains("unknown unit"));
    }

    #[test]
    fn bad_sizes_say_why_and_list_the_forms() {
        for (text, why) in [
            ("8M", "unknown unit `M`"),
            ("8k", "unknown unit `k`"),
            ("MiB", "no number"),
            ("", "no number"),
            ("-1", "no number"),
            ("1.2.3KiB", "not a number"),
            ("1.0001KB", "not a whole number of bytes"),
            ("0.3B", "not a whole number of bytes"),
            ("99999999999999999999999TiB", "too large"),
            ("20000000TiB", "too large"),
            ("8 MiB extra", "unknown unit"),
        ] {
            let e = parse_size(text).unwrap_err();
            assert!(e.contains(why), "{text}: {e}");
            assert!(
                e.contains("8MiB") && e.contains(&format!("`{text}`")),
                "{e}"
            );
        }
    }

    #[test]
    fn durations_need_a_unit() {
        let ns = |s| parse_duration_ns(s).map(Duration::from_nanos);
        assert_eq!(ns("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(ns("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(ns("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(ns("1d"), Ok(Duration::from_secs(86_400)));
        assert_eq!(ns("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(ns("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(ns("0"), Ok(Duration::ZERO));
        let e = parse_duration_ns("600").unwrap_err();
        assert!(e.contains("a unit is needed") && e.contains("10m"), "{e}");
        let e = parse_duration_ns("-5m").unwrap_err();
        assert!(e.contains("negative"), "{e}");
        let e = parse_duration_ns("5 minutes").unwrap_err();
        assert!(e.contains("`5 minutes`") && e.contains("500ms"), "{e}");
    }

    #[test]
    fn texts_parse_back_to_their_value() {
        for bytes in [
            0,
            1,
            480,
            1536,
            64 << 10,
            8 << 20,
            12 << 20,
            256 << 20,
            3 << 40,
        ] {
            assert_eq!(
                parse_size(&size_text(bytes)),
                Ok(bytes),
                "{}",
                size_text(bytes)
            );
        }
        assert_eq!(size_text(8 << 20), "8MiB");
        assert_eq!(size_text(1536), "1536B");
        for d in [
            Duration::from_secs(300),
            Duration::from_secs(86_400),
            Duration::from_secs(5400),
            Duration::from_millis(1),
            Duration::from_micros(1500),
            Duration::ZERO,
        ] {
            let text = duration_text(d);
            assert_eq!(parse_duration_ns(&text), Ok(d.as_nanos() as u64), "{text}");
        }
        assert_eq!(duration_text(Duration::from_secs(300)), "5m");
        assert_eq!(duration_text(Duration::from_millis(1)), "1ms");
    }

    #[test]
    fn toml_takes_integers_and_strings() {
        #[derive(serde::Deserialize, Debug)]
        struct K {
            #[serde(default, deserialize_with = "size_key")]
            a: Option<usize>,
            #[serde(default, deserialize_with = "size_key")]
            b: Option<u64>,
            #[serde(default, deserialize_with = "size_key")]
            c: Option<u64>,
        }
        let k: K = toml::from_str("a = 65536\nb = \"8MiB\"\n").unwrap();
        assert_eq!((k.a, k.b, k.c), (Some(65536), Some(8 << 20), None));
        let e = toml::from_str::<K>("b = \"8XB\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("b = \"8XB\"") && e.contains("8MiB"), "{e}");
        let e = toml::from_str::<K>("b = -3\n").unwrap_err().to_string();
        assert!(e.contains("negative"), "{e}");
        let e = toml::from_str::<K>("b = true\n").unwrap_err().to_string();
        assert!(e.contains("a size"), "{e}");
    }
}

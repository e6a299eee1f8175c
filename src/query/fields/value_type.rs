//! What kind of value a field holds, as Loki guesses it for `detected_fields`
//! (`determineType`, pkg/querier/queryrange/detected_fields.go), and how the values endpoint
//! rewrites byte sizes.
//!
//! Which question it answers: "is `42ms` a duration, and `5 MB` a size?" The first parse
//! that succeeds names the type: Go's `strconv.ParseInt`, `strconv.ParseFloat`,
//! `strconv.ParseBool`, `time.ParseDuration`, then go-humanize's `ParseBytes`; a string
//! otherwise.

use crate::logql::duration::parse_go_duration;
use crate::query::sample::{parse_go_float, parse_humanized_bytes};

/// Loki's `DetectedFieldType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FieldType {
    String,
    Int,
    Float,
    Boolean,
    Duration,
    Bytes,
}

impl FieldType {
    pub fn as_str(self) -> &'static str {
        match self {
            FieldType::String => "string",
            FieldType::Int => "int",
            FieldType::Float => "float",
            FieldType::Boolean => "boolean",
            FieldType::Duration => "duration",
            FieldType::Bytes => "bytes",
        }
    }

    /// Loki's `determineType`.
    pub fn of(value: &str) -> FieldType {
        if value.parse::<i64>().is_ok() {
            FieldType::Int
        } else if parse_go_float(value).is_ok() {
            FieldType::Float
        } else if is_go_bool(value) {
            FieldType::Boolean
        } else if parse_go_duration(value).is_ok() {
            FieldType::Duration
        } else if parse_humanized_bytes(value).is_ok() {
            FieldType::Bytes
        } else {
            FieldType::String
        }
    }
}

/// Go's `strconv.ParseBool`.
fn is_go_bool(value: &str) -> bool {
    matches!(
        value,
        "1" | "t" | "T" | "TRUE" | "true" | "True" | "0" | "f" | "F" | "FALSE" | "false" | "False"
    )
}

/// Unit endings that make a parsed value a byte size on the values endpoint (Loki's
/// `allowedBytesUnits`, matched as suffixes of the lowercased value).
const BYTE_UNIT_SUFFIXES: [&str; 25] = [
    "b", "kib", "kb", "mib", "mb", "gib", "gb", "tib", "tb", "pib", "pb", "eib", "eb", "ki", "k",
    "mi", "m", "gi", "g", "ti", "t", "pi", "p", "ei", "e",
];

/// A parsed field's value as `/detected_field/<name>/values` lists it: a size with a unit
/// is rewritten in go-humanize's SI form without its space (`5 MiB` becomes `5.2MB`), so it
/// can be pasted into a query; anything else is unchanged.
pub fn display_value(value: &str) -> String {
    let lower = value.to_lowercase();
    if !BYTE_UNIT_SUFFIXES.iter().any(|u| lower.ends_with(u)) {
        return value.to_owned();
    }
    match parse_humanized_bytes(value) {
        Ok(bytes) => humanize_bytes(bytes).replacen(' ', "", 1),
        Err(_) => value.to_owned(),
    }
}

/// go-humanize's `Bytes`: SI units, one decimal below 10.
fn humanize_bytes(bytes: u64) -> String {
    const SIZES: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    if bytes < 10 {
        return format!("{bytes} B");
    }
    let value = bytes as f64;
    let exponent = (value.ln() / 1000f64.ln()).floor();
    let suffix = SIZES[(exponent as usize).min(SIZES.len() - 1)];
    let scaled = (value / 1000f64.powf(exponent) * 10.0 + 0.5).floor() / 10.0;
    if scaled < 10.0 {
        format!("{scaled:.1} {suffix}")
    } else {
        format!("{scaled:.0} {suffix}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_follow_lokis_order() {
        for (value, expected) in [
            ("42", FieldType::Int),
            ("-7", FieldType::Int),
            ("1.5", FieldType::Float),
            ("1e3", FieldType::Float),
            ("NaN", FieldType::Float),
            ("99999999999999999999", FieldType::Float),
            ("true", FieldType::Boolean),
            ("F", FieldType::Boolean),
            ("1", FieldType::Int),
            ("150ms", FieldType::Duration),
            ("1h2m", FieldType::Duration),
            ("5m", FieldType::Duration),
            ("10KB", FieldType::Bytes),
            ("3 MiB", FieldType::Bytes),
            ("hello", FieldType::String),
            ("", FieldType::String),
            ("1.2.3", FieldType::String),
        ] {
            assert_eq!(FieldType::of(value), expected, "{value:?}");
        }
    }

    #[test]
    fn sizes_are_rewritten_for_queries() {
        assert_eq!(display_value("5 MiB"), "5.2MB");
        assert_eq!(display_value("1kib"), "1.0kB");
        assert_eq!(display_value("10b"), "10B");
        assert_eq!(display_value("7b"), "7B");
        assert_eq!(display_value("2500KB"), "2.5MB");
        assert_eq!(display_value("987654kb"), "988MB");
        assert_eq!(display_value("1024"), "1024");
        assert_eq!(display_value("debug"), "debug");
        assert_eq!(display_value("web"), "web");
    }
}

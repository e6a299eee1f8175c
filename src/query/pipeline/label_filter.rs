//! The label filter stage: `| level="error" and (latency > 250ms or size >= 1MB)` (Loki's
//! label filters, pkg/logql/log/label_filter.go).
//!
//! Which question it answers: "does this line's labels pass the filter?" A string comparison
//! sees an absent label as empty and reads `__error__` from the builder's error. A number,
//! duration, bytes or ip comparison drops a line without the label; when the label's value
//! does not convert, the line is kept and gets `__error__=LabelFilterErr` with the conversion
//! error in `__error_details__` (unless an error is already set). `or` stops at the first
//! true side; `and` evaluates both sides even when the first is false, as Loki does (the
//! second may set the error).

use std::borrow::Cow;

use super::labels::{ERROR_LABEL, LabelsBuilder};
use super::{LABEL_FILTER_ERR, ParserHints, Stage};
use crate::logql::{
    CmpOp, FilterOperand, LabelFilterExpr, LabelMatcher, LineFilter, LineFilterOp, duration,
    quote_go,
};
use crate::model::TimestampNs;

/// A compiled label filter.
#[derive(Clone, Debug)]
pub(crate) enum LabelFilter {
    And(Box<LabelFilter>, Box<LabelFilter>),
    Or(Box<LabelFilter>, Box<LabelFilter>),
    String(LabelMatcher),
    Number {
        name: String,
        op: CmpOp,
        value: f64,
    },
    Duration {
        name: String,
        op: CmpOp,
        value_ns: i64,
    },
    Bytes {
        name: String,
        op: CmpOp,
        value: u64,
    },
    Ip {
        name: String,
        negated: bool,
        /// The address test of `|= ip(...)`, run on the label's value.
        matcher: LineFilter,
    },
}

fn compare<T: PartialOrd>(op: CmpOp, a: T, b: T) -> bool {
    match op {
        CmpOp::Gt => a > b,
        CmpOp::Ge => a >= b,
        CmpOp::Lt => a < b,
        CmpOp::Le => a <= b,
        CmpOp::Eq => a == b,
        CmpOp::Ne => a != b,
    }
}

impl LabelFilter {
    pub fn new(expr: &LabelFilterExpr) -> Result<LabelFilter, String> {
        Ok(match expr {
            LabelFilterExpr::And(a, b) => {
                LabelFilter::And(Box::new(Self::new(a)?), Box::new(Self::new(b)?))
            }
            LabelFilterExpr::Or(a, b) => {
                LabelFilter::Or(Box::new(Self::new(a)?), Box::new(Self::new(b)?))
            }
            LabelFilterExpr::String(m) => LabelFilter::String(m.clone()),
            LabelFilterExpr::Number { name, op, value } => LabelFilter::Number {
                name: name.clone(),
                op: *op,
                value: *value,
            },
            LabelFilterExpr::Duration { name, op, value_ns } => LabelFilter::Duration {
                name: name.clone(),
                op: *op,
                value_ns: *value_ns,
            },
            LabelFilterExpr::Bytes { name, op, value } => LabelFilter::Bytes {
                name: name.clone(),
                op: *op,
                value: *value,
            },
            LabelFilterExpr::Ip {
                name,
                negated,
                pattern,
            } => LabelFilter::Ip {
                name: name.clone(),
                negated: *negated,
                matcher: LineFilter::new(
                    LineFilterOp::Contains,
                    vec![FilterOperand::Ip(pattern.clone())],
                )?,
            },
        })
    }

    /// Adds every label name the filter reads to `out`.
    pub fn label_names(&self, out: &mut Vec<String>) {
        match self {
            LabelFilter::And(a, b) | LabelFilter::Or(a, b) => {
                a.label_names(out);
                b.label_names(out);
            }
            LabelFilter::String(m) => out.push(m.name.clone()),
            LabelFilter::Number { name, .. }
            | LabelFilter::Duration { name, .. }
            | LabelFilter::Bytes { name, .. }
            | LabelFilter::Ip { name, .. } => out.push(name.clone()),
        }
    }

    /// The one label a single comparison reads; `None` for `and`/`or`. Parsers use it to run
    /// the filter as soon as they set that label (Loki's parser hints).
    pub fn single_label(&self) -> Option<&str> {
        match self {
            LabelFilter::And(..) | LabelFilter::Or(..) => None,
            LabelFilter::String(m) => Some(&m.name),
            LabelFilter::Number { name, .. }
            | LabelFilter::Duration { name, .. }
            | LabelFilter::Bytes { name, .. }
            | LabelFilter::Ip { name, .. } => Some(name),
        }
    }

    /// Whether the line passes; may set the error labels.
    pub fn test(&self, lbs: &mut LabelsBuilder) -> bool {
        match self {
            LabelFilter::And(a, b) => {
                let left = a.test(lbs);
                let right = b.test(lbs);
                left && right
            }
            LabelFilter::Or(a, b) => a.test(lbs) || b.test(lbs),
            LabelFilter::String(m) => {
                let value = if m.name == ERROR_LABEL {
                    lbs.error()
                } else {
                    lbs.get(&m.name).unwrap_or("")
                };
                m.matches(Some(value))
            }
            LabelFilter::Number { name, op, value } => {
                convert_and_compare(lbs, name, parse_go_float, |v| compare(*op, v, *value))
            }
            LabelFilter::Duration { name, op, value_ns } => convert_and_compare(
                lbs,
                name,
                |v| duration::parse_go_duration(v).map_err(|e| e.to_string()),
                |v| compare(*op, v, *value_ns),
            ),
            LabelFilter::Bytes { name, op, value } => {
                convert_and_compare(lbs, name, parse_humanized_bytes, |v| {
                    compare(*op, v, *value)
                })
            }
            LabelFilter::Ip {
                name,
                negated,
                matcher,
            } => {
                // Loki: with an error set, only string comparisons may drop the line.
                if lbs.has_error() {
                    return true;
                }
                match lbs.get(name) {
                    None => false,
                    Some(v) => matcher.matches(v.as_bytes()) != *negated,
                }
            }
        }
    }
}

/// Reads a label, converts it and compares it; an absent label fails, a conversion error
/// passes and sets `LabelFilterErr` unless an error is set already.
fn convert_and_compare<T>(
    lbs: &mut LabelsBuilder,
    name: &str,
    convert: impl FnOnce(&str) -> Result<T, String>,
    cmp: impl FnOnce(T) -> bool,
) -> bool {
    let Some(v) = lbs.get(name) else {
        return false;
    };
    match convert(v) {
        Ok(v) => cmp(v),
        Err(details) => {
            if !lbs.has_error() {
                lbs.set_error(LABEL_FILTER_ERR);
                lbs.set_error_details(&details);
            }
            true
        }
    }
}

/// The stage: one filter expression.
#[derive(Debug)]
pub(crate) struct LabelFilterStage {
    pub filter: LabelFilter,
}

impl Stage for LabelFilterStage {
    fn process<'a>(
        &self,
        _ts: TimestampNs,
        line: Cow<'a, str>,
        lbs: &mut LabelsBuilder,
        _hints: &ParserHints,
    ) -> Option<Cow<'a, str>> {
        self.filter.test(lbs).then_some(line)
    }
}

/// Go's `strconv.ParseFloat(s, 64)`: decimal and hexadecimal (`0x1p-2`) forms, `inf`,
/// `infinity`, `nan`, underscores between digits; an overflow is an error ("value out of
/// range"), an underflow is zero. Errors carry Go's text.
pub(crate) fn parse_go_float(s: &str) -> Result<f64, String> {
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
    let sign = if negative { -1.0 } else { 1.0 };
    if body.eq_ignore_ascii_case("inf") || body.eq_ignore_ascii_case("infinity") {
        return Ok(sign * f64::INFINITY);
    }
    if s.eq_ignore_ascii_case("nan") {
        return Ok(f64::NAN);
    }
    if body.starts_with(['+', '-']) || !underscores_ok(body) {
        return Err(syntax());
    }
    let cleaned: Cow<'_, str> = if body.contains('_') {
        Cow::Owned(body.replace('_', ""))
    } else {
        Cow::Borrowed(body)
    };
    let magnitude = if let Some(hex) = cleaned
        .strip_prefix("0x")
        .or_else(|| cleaned.strip_prefix("0X"))
    {
        parse_hex_float(hex).ok_or_else(syntax)?
    } else {
        // Rust's grammar for decimal floats is Go's, once the special words are handled:
        // refuse what Rust would read as one of them.
        if !cleaned
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
        {
            return Err(syntax());
        }
        cleaned.parse::<f64>().map_err(|_| syntax())?
    };
    if magnitude.is_infinite() {
        return Err(range());
    }
    Ok(sign * magnitude)
}

/// Go's `underscoreOK`: underscores only between digits (or after a base prefix).
fn underscores_ok(s: &str) -> bool {
    let b = s.as_bytes();
    let mut saw = b'^';
    let mut i = 0;
    let mut hex = false;
    if b.len() >= 2 && b[0] == b'0' && matches!(b[1] | 0x20, b'b' | b'o' | b'x') {
        i = 2;
        saw = b'0';
        hex = b[1] | 0x20 == b'x';
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
/// binary exponent `p[+-]N`.
fn parse_hex_float(s: &str) -> Option<f64> {
    let (mantissa, exponent) = s.split_once(['p', 'P'])?;
    let exponent: i32 = exponent.parse().ok()?;
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    let mut value = 0f64;
    for c in whole.chars() {
        value = value * 16.0 + f64::from(c.to_digit(16)?);
    }
    let mut scale = 1.0 / 16.0;
    for c in fraction.chars() {
        value += f64::from(c.to_digit(16)?) * scale;
        scale /= 16.0;
    }
    Some(value * 2f64.powi(exponent))
}

/// The multiplier of a go-humanize byte unit, lower-cased (`kib`, `mb`, `""`...): SI and IEC
/// units up to exabytes. `None` for a unit go-humanize does not know.
pub(crate) fn humanized_bytes_unit(unit: &str) -> Option<u64> {
    Some(match unit {
        "" | "b" => 1,
        "kib" | "ki" => 1 << 10,
        "kb" | "k" => 1_000,
        "mib" | "mi" => 1 << 20,
        "mb" | "m" => 1_000_000,
        "gib" | "gi" => 1 << 30,
        "gb" | "g" => 1_000_000_000,
        "tib" | "ti" => 1 << 40,
        "tb" | "t" => 1_000_000_000_000,
        "pib" | "pi" => 1 << 50,
        "pb" | "p" => 1_000_000_000_000_000,
        "eib" | "ei" => 1 << 60,
        "eb" | "e" => 1_000_000_000_000_000_000,
        _ => return None,
    })
}

/// go-humanize's `ParseBytes`, as Loki uses it: a number (commas allowed) and an optional
/// SI (`kB`, `MB`...) or IEC (`KiB`, `MiB`...) unit, case-insensitive, spaces allowed.
pub(crate) fn parse_humanized_bytes(s: &str) -> Result<u64, String> {
    let number_len = s
        .bytes()
        .take_while(|b| b.is_ascii_digit() || matches!(b, b'.' | b','))
        .count();
    let number = s[..number_len].replace(',', "");
    let f = parse_go_float(&number)?;
    let unit = s[number_len..].trim().to_lowercase();
    let multiplier =
        humanized_bytes_unit(&unit).ok_or_else(|| format!("unhandled size name: {unit}"))?;
    let bytes = f * multiplier as f64;
    if bytes >= u64::MAX as f64 {
        return Err(format!("too large: {s}"));
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logql::MatchOp;
    use crate::model::Labels;

    fn builder(pairs: &[(&str, &str)]) -> LabelsBuilder {
        let mut lbs = LabelsBuilder::new(&Labels::from_pairs(pairs.iter().copied()));
        lbs.reset([]);
        lbs
    }

    #[test]
    fn go_floats() {
        assert_eq!(parse_go_float("1.5"), Ok(1.5));
        assert_eq!(parse_go_float("-1e3"), Ok(-1000.0));
        assert_eq!(parse_go_float(".5"), Ok(0.5));
        assert_eq!(parse_go_float("1_000"), Ok(1000.0));
        assert_eq!(parse_go_float("0x1p-2"), Ok(0.25));
        assert_eq!(parse_go_float("+Inf"), Ok(f64::INFINITY));
        assert!(parse_go_float("NaN").unwrap().is_nan());
        assert_eq!(
            parse_go_float("abc"),
            Err(r#"strconv.ParseFloat: parsing "abc": invalid syntax"#.into())
        );
        assert!(parse_go_float("infinite").is_err());
        assert!(parse_go_float("1__0").is_err());
        assert!(parse_go_float("--1").is_err());
        assert!(parse_go_float("").is_err());
        assert_eq!(
            parse_go_float("1e400"),
            Err(r#"strconv.ParseFloat: parsing "1e400": value out of range"#.into())
        );
    }

    #[test]
    fn humanized_bytes() {
        assert_eq!(parse_humanized_bytes("42"), Ok(42));
        assert_eq!(parse_humanized_bytes("42kB"), Ok(42_000));
        assert_eq!(parse_humanized_bytes("42 KiB"), Ok(43_008));
        assert_eq!(parse_humanized_bytes("1,000 b"), Ok(1000));
        assert_eq!(parse_humanized_bytes("1.5GB"), Ok(1_500_000_000));
        assert_eq!(
            parse_humanized_bytes("2qb"),
            Err("unhandled size name: qb".into())
        );
        assert!(parse_humanized_bytes("MB").is_err());
    }

    #[test]
    fn conversion_errors_keep_the_line_and_set_the_error() {
        let f = LabelFilter::Duration {
            name: "d".into(),
            op: CmpOp::Gt,
            value_ns: 3_000_000_000,
        };
        let mut lbs = builder(&[("d", "2weeeeee")]);
        assert!(f.test(&mut lbs));
        assert_eq!(lbs.error(), LABEL_FILTER_ERR);
        assert_eq!(
            lbs.error_details(),
            r#"time: unknown unit "weeeeee" in duration "2weeeeee""#
        );
        let mut lbs = builder(&[]);
        assert!(!f.test(&mut lbs), "an absent label fails");
        let mut lbs = builder(&[("d", "5s")]);
        assert!(f.test(&mut lbs));
    }

    #[test]
    fn and_evaluates_both_sides() {
        let f = LabelFilter::And(
            Box::new(LabelFilter::String(
                LabelMatcher::new("a", MatchOp::Eq, "x").unwrap(),
            )),
            Box::new(LabelFilter::Number {
                name: "n".into(),
                op: CmpOp::Gt,
                value: 1.0,
            }),
        );
        let mut lbs = builder(&[("a", "y"), ("n", "many")]);
        assert!(!f.test(&mut lbs));
        assert_eq!(lbs.error(), LABEL_FILTER_ERR);
        let error_filter = LabelFilter::String(
            LabelMatcher::new(ERROR_LABEL, MatchOp::Eq, LABEL_FILTER_ERR).unwrap(),
        );
        assert!(error_filter.test(&mut lbs));
    }
}

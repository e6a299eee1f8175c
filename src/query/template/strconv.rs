//! Go's `strconv` parsing, for template literals and for the conversions of Loki's and
//! sprig's functions (`int`, `float64`, `bytes`, `unixToTime`).
//!
//! Which question it answers: "does Go read this text as a number or a string literal, and
//! as what?" Base prefixes, underscores, octal, hexadecimal floats, escapes, and Go's error
//! texts (`strconv.ParseInt: parsing "x": invalid syntax`).

use super::gofmt::quote;

/// Go's `strconv.ErrSyntax` text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SyntaxError;

impl std::fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("invalid syntax")
    }
}

/// What one escape or character of a quoted literal stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unquoted {
    Rune(char),
    /// A `\x` or octal escape: one byte, possibly not UTF-8.
    Byte(u8),
}

/// Go's `strconv.UnquoteChar`: the first character of `s` (after an opening quote) and the
/// rest.
pub(crate) fn unquote_char_any(s: &str, quote: char) -> Result<(Unquoted, &str), SyntaxError> {
    let mut chars = s.chars();
    let c = chars.next().ok_or(SyntaxError)?;
    if c == quote && (quote == '\'' || quote == '"') {
        return Err(SyntaxError);
    }
    if c != '\\' {
        return Ok((Unquoted::Rune(c), chars.as_str()));
    }
    let b = s.as_bytes();
    if b.len() <= 1 {
        return Err(SyntaxError);
    }
    let e = b[1];
    if !e.is_ascii() {
        return Err(SyntaxError);
    }
    let rest = &s[2..];
    let simple = |c: char| Ok((Unquoted::Rune(c), rest));
    match e {
        b'a' => simple('\x07'),
        b'b' => simple('\x08'),
        b'f' => simple('\x0c'),
        b'n' => simple('\n'),
        b'r' => simple('\r'),
        b't' => simple('\t'),
        b'v' => simple('\x0b'),
        b'\\' => simple('\\'),
        b'\'' | b'"' => {
            if char::from(e) != quote {
                return Err(SyntaxError);
            }
            simple(char::from(e))
        }
        b'x' | b'u' | b'U' => {
            let n = match e {
                b'x' => 2,
                b'u' => 4,
                _ => 8,
            };
            let digits = rest.get(..n).ok_or(SyntaxError)?;
            let v = u32::from_str_radix(digits, 16).map_err(|_| SyntaxError)?;
            if !digits.bytes().all(|d| d.is_ascii_hexdigit()) {
                return Err(SyntaxError);
            }
            let rest = &rest[n..];
            if e == b'x' {
                return Ok((Unquoted::Byte(v as u8), rest));
            }
            let c = char::from_u32(v).ok_or(SyntaxError)?;
            Ok((Unquoted::Rune(c), rest))
        }
        b'0'..=b'7' => {
            let digits = rest.as_bytes().get(..2).ok_or(SyntaxError)?;
            let mut v = u32::from(e - b'0');
            for d in digits {
                if !(b'0'..=b'7').contains(d) {
                    return Err(SyntaxError);
                }
                v = (v << 3) | u32::from(d - b'0');
            }
            if v > 255 {
                return Err(SyntaxError);
            }
            Ok((Unquoted::Byte(v as u8), &rest[2..]))
        }
        _ => Err(SyntaxError),
    }
}

/// `UnquoteChar` for a character constant: a byte escape stands for that code point.
pub(crate) fn unquote_char(s: &str, quote: char) -> Result<(char, &str), SyntaxError> {
    let (u, rest) = unquote_char_any(s, quote)?;
    Ok(match u {
        Unquoted::Rune(c) => (c, rest),
        Unquoted::Byte(b) => (char::from(b), rest),
    })
}

/// Go's `strconv.Unquote` for `"..."` and `` `...` `` literals. Bytes that do not form
/// UTF-8 (from `\x` escapes) become U+FFFD, as the result is a Rust string.
pub(crate) fn unquote(s: &str) -> Result<String, SyntaxError> {
    if s.len() < 2 {
        return Err(SyntaxError);
    }
    let first = s.as_bytes()[0];
    if first != s.as_bytes()[s.len() - 1] {
        return Err(SyntaxError);
    }
    let inner = &s[1..s.len() - 1];
    match first {
        b'`' => {
            if inner.contains('`') {
                return Err(SyntaxError);
            }
            // Carriage returns are dropped from raw strings.
            Ok(inner.replace('\r', ""))
        }
        b'"' => {
            let mut buf: Vec<u8> = Vec::with_capacity(inner.len());
            let mut rest = inner;
            while !rest.is_empty() {
                if rest.starts_with('\n') {
                    return Err(SyntaxError);
                }
                let (u, r) = unquote_char_any(rest, '"')?;
                match u {
                    Unquoted::Rune(c) => {
                        let mut b = [0u8; 4];
                        buf.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
                    }
                    Unquoted::Byte(b) => buf.push(b),
                }
                rest = r;
            }
            Ok(String::from_utf8(buf)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
        }
        _ => Err(SyntaxError),
    }
}

/// Go's `underscoreOK`: underscores only between digits (or after a base prefix).
fn underscore_ok(s: &str) -> bool {
    let b = s.as_bytes();
    let mut saw = b'^';
    let mut i = 0;
    let b = if !b.is_empty() && (b[0] == b'-' || b[0] == b'+') {
        &b[1..]
    } else {
        b
    };
    let mut hex = false;
    if b.len() >= 2 && b[0] == b'0' && matches!(b[1] | 0x20, b'b' | b'o' | b'x') {
        i = 2;
        saw = b'0';
        hex = b[1] | 0x20 == b'x';
    }
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_digit() || (hex && (b'a'..=b'f').contains(&(c | 0x20))) {
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

/// Why `ParseInt`/`ParseUint`/`ParseFloat` failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NumError {
    Syntax,
    Range,
}

/// Go's `strconv.ParseUint(s, base, 64)` for base 0 (prefix-detected, underscores allowed)
/// or an explicit base.
pub(crate) fn parse_uint_base(s: &str, base: u32) -> Result<u64, NumError> {
    if s.is_empty() {
        return Err(NumError::Syntax);
    }
    let base0 = base == 0;
    let b = s.as_bytes();
    let (base, digits) = if base0 {
        if b[0] == b'0' {
            if b.len() >= 3 && b[1] | 0x20 == b'b' {
                (2, &s[2..])
            } else if b.len() >= 3 && b[1] | 0x20 == b'o' {
                (8, &s[2..])
            } else if b.len() >= 3 && b[1] | 0x20 == b'x' {
                (16, &s[2..])
            } else {
                (8, &s[1..])
            }
        } else {
            (10, s)
        }
    } else {
        (base, s)
    };
    let mut n: u64 = 0;
    let mut underscores = false;
    let mut overflow = false;
    for c in digits.bytes() {
        let d = match c {
            b'_' if base0 => {
                underscores = true;
                continue;
            }
            b'0'..=b'9' => u32::from(c - b'0'),
            c if (c | 0x20).is_ascii_lowercase() => u32::from((c | 0x20) - b'a') + 10,
            _ => return Err(NumError::Syntax),
        };
        if d >= base {
            return Err(NumError::Syntax);
        }
        match n
            .checked_mul(u64::from(base))
            .and_then(|v| v.checked_add(u64::from(d)))
        {
            Some(v) => n = v,
            None => overflow = true,
        }
    }
    if underscores && !underscore_ok(s) {
        return Err(NumError::Syntax);
    }
    if overflow {
        return Err(NumError::Range);
    }
    Ok(n)
}

/// Go's `strconv.ParseInt(s, base, 64)`.
pub(crate) fn parse_int_base(s: &str, base: u32) -> Result<i64, NumError> {
    if s.is_empty() {
        return Err(NumError::Syntax);
    }
    let (neg, body) = match s.as_bytes()[0] {
        b'+' => (false, &s[1..]),
        b'-' => (true, &s[1..]),
        _ => (false, s),
    };
    let un = parse_uint_base(body, base).map_err(|e| {
        if e == NumError::Syntax {
            NumError::Syntax
        } else {
            NumError::Range
        }
    })?;
    // Underscores are checked on the whole text, sign included.
    if base == 0 && body.contains('_') && !underscore_ok(s) {
        return Err(NumError::Syntax);
    }
    if neg {
        if un > 1 << 63 {
            return Err(NumError::Range);
        }
        Ok((un as i64).wrapping_neg())
    } else {
        i64::try_from(un).map_err(|_| NumError::Range)
    }
}

pub(crate) fn parse_int(s: &str) -> Option<i64> {
    parse_int_base(s, 0).ok()
}

pub(crate) fn parse_uint(s: &str) -> Option<u64> {
    parse_uint_base(s, 0).ok()
}

/// Go's error text for a failed `strconv` parse.
pub(crate) fn num_error(func: &str, s: &str, e: NumError) -> String {
    let what = match e {
        NumError::Syntax => "invalid syntax",
        NumError::Range => "value out of range",
    };
    format!("strconv.{func}: parsing {}: {what}", quote(s))
}

/// Go's `strconv.ParseFloat(s, 64)`: decimal or hexadecimal (`0x1.8p3`), `Inf`, `NaN`,
/// underscores between digits. Out of range is an error carrying ±Inf, as in Go.
pub(crate) fn parse_float_checked(s: &str) -> Result<f64, (NumError, f64)> {
    let b = s.as_bytes();
    let (neg, body) = match b.first() {
        Some(b'+') => (false, &s[1..]),
        Some(b'-') => (true, &s[1..]),
        _ => (false, s),
    };
    let sign = if neg { -1.0 } else { 1.0 };
    let lower = body.to_ascii_lowercase();
    match lower.as_str() {
        "inf" | "infinity" => return Ok(sign * f64::INFINITY),
        "nan" => return Ok(f64::NAN),
        _ => {}
    }
    let bb = body.as_bytes();
    let hex = bb.len() >= 2 && bb[0] == b'0' && bb[1] | 0x20 == b'x';
    // Validate Go's grammar: digits with at most one point, then an exponent.
    let start = if hex { 2 } else { 0 };
    let mut i = start;
    let mut saw_digits = false;
    let mut saw_dot = false;
    let mut underscores = false;
    while i < bb.len() {
        let c = bb[i];
        if c == b'_' {
            underscores = true;
        } else if c == b'.' {
            if saw_dot {
                break;
            }
            saw_dot = true;
        } else if c.is_ascii_digit() || (hex && (b'a'..=b'f').contains(&(c | 0x20))) {
            saw_digits = true;
        } else {
            break;
        }
        i += 1;
    }
    if !saw_digits {
        return Err((NumError::Syntax, 0.0));
    }
    let mantissa_end = i;
    let exp_char = if hex { b'p' } else { b'e' };
    let mut exp: i64 = 0;
    if i < bb.len() && bb[i] | 0x20 == exp_char {
        i += 1;
        let mut esign = 1;
        if i < bb.len() && (bb[i] == b'+' || bb[i] == b'-') {
            if bb[i] == b'-' {
                esign = -1;
            }
            i += 1;
        }
        if i >= bb.len() || !bb[i].is_ascii_digit() {
            return Err((NumError::Syntax, 0.0));
        }
        while i < bb.len() && (bb[i].is_ascii_digit() || bb[i] == b'_') {
            if bb[i] == b'_' {
                underscores = true;
            } else if exp < 100_000 {
                exp = exp * 10 + i64::from(bb[i] - b'0');
            }
            i += 1;
        }
        exp *= esign;
    } else if hex {
        return Err((NumError::Syntax, 0.0));
    }
    if i != bb.len() {
        return Err((NumError::Syntax, 0.0));
    }
    if underscores && !underscore_ok(&s[..s.len() - (bb.len() - i)]) {
        return Err((NumError::Syntax, 0.0));
    }
    let v = if hex {
        let mut mant: f64 = 0.0;
        let mut frac_digits: i64 = 0;
        let mut in_frac = false;
        for &c in &bb[2..mantissa_end] {
            match c {
                b'_' => {}
                b'.' => in_frac = true,
                c => {
                    let d = (c as char).to_digit(16).unwrap_or(0);
                    mant = mant * 16.0 + f64::from(d);
                    if in_frac {
                        frac_digits += 1;
                    }
                }
            }
        }
        mant * 2f64.powi((exp - 4 * frac_digits).clamp(-2000, 2000) as i32)
    } else {
        let clean: String = body.chars().filter(|&c| c != '_').collect();
        clean.parse::<f64>().map_err(|_| (NumError::Syntax, 0.0))?
    };
    let v = sign * v;
    if v.is_infinite() {
        return Err((NumError::Range, v));
    }
    Ok(v)
}

pub(crate) fn parse_float(s: &str) -> Option<f64> {
    parse_float_checked(s).ok()
}

/// `fmt.Sscan` of a complex literal such as `1+2i`.
pub(crate) fn parse_complex(s: &str) -> Option<(f64, f64)> {
    let body = s.strip_suffix('i')?;
    let b = body.as_bytes();
    // The sign that starts the imaginary part: the last + or - not after an exponent mark.
    let split = (1..b.len())
        .rev()
        .find(|&i| (b[i] == b'+' || b[i] == b'-') && !matches!(b[i - 1] | 0x20, b'e' | b'p'))?;
    let re = parse_float(&body[..split])?;
    let im = parse_float(&body[split..])?;
    Some((re, im))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_follow_go() {
        assert_eq!(parse_int("0x1F"), Some(31));
        assert_eq!(parse_int("017"), Some(15));
        assert_eq!(parse_int("0o17"), Some(15));
        assert_eq!(parse_int("0b101"), Some(5));
        assert_eq!(parse_int("1_000"), Some(1000));
        assert_eq!(parse_int("-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_int("08"), None);
        assert_eq!(parse_int("_1"), None);
        assert_eq!(parse_int("1__0"), None);
        assert_eq!(
            parse_int_base("9223372036854775808", 10),
            Err(NumError::Range)
        );
        assert_eq!(
            num_error("ParseInt", "abc", NumError::Syntax),
            "strconv.ParseInt: parsing \"abc\": invalid syntax"
        );
    }

    #[test]
    fn floats_follow_go() {
        assert_eq!(parse_float("2.5"), Some(2.5));
        assert_eq!(parse_float(".5"), Some(0.5));
        assert_eq!(parse_float("5."), Some(5.0));
        assert_eq!(parse_float("1e3"), Some(1000.0));
        assert_eq!(parse_float("0x1.8p1"), Some(3.0));
        assert_eq!(parse_float("1_000.5"), Some(1000.5));
        assert_eq!(parse_float("-Inf"), Some(f64::NEG_INFINITY));
        assert!(parse_float("nan").unwrap().is_nan());
        assert_eq!(parse_float("0x1"), None);
        assert_eq!(parse_float("1e"), None);
        assert_eq!(parse_float(""), None);
        assert_eq!(parse_float("1e400"), None);
        assert_eq!(parse_complex("1+2i"), Some((1.0, 2.0)));
    }

    #[test]
    fn literals_unquote_as_in_go() {
        assert_eq!(unquote("\"a\\tb\\u00e9\\x41\\101\"").unwrap(), "a\tbéAA");
        assert_eq!(unquote("`a\\n\r`").unwrap(), "a\\n");
        assert!(unquote("\"\\'\"").is_err());
        assert!(unquote("\"\\q\"").is_err());
        assert_eq!(unquote_char("\\''", '\'').unwrap(), ('\'', "'"));
    }
}

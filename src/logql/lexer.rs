//! The LogQL lexer: text to tokens, each with its byte offset for error positions.
//!
//! It knows the whole LogQL token set (numbers, durations, byte sizes, ranges, all operators)
//! even where the parser does not evaluate the construct yet, so that a malformed literal is
//! reported as Loki reports it rather than as "not supported". Keywords are not tokens here:
//! LogQL lets most of them be label names (`{rate="x"}`), so the parser decides by context.

use super::ParseError;
use super::duration::parse_logql_duration;

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Tok {
    LBrace,
    RBrace,
    LParen,
    RParen,
    Comma,
    Dot,
    /// `=`
    Eq,
    /// `!=`
    Neq,
    /// `=~`
    Re,
    /// `!~`
    Nre,
    /// `|=`
    PipeExact,
    /// `|~`
    PipeMatch,
    /// `|>`
    PipePattern,
    /// `!>`
    NotPattern,
    /// `|`
    Pipe,
    /// `==`
    CmpEq,
    Gt,
    Gte,
    Lt,
    Lte,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    /// A string literal, unquoted.
    Str(String),
    /// A word: label name, keyword or function name, as written.
    Ident(String),
    Number(String),
    Duration(String),
    Bytes(String),
    /// `[5m]`, in nanoseconds.
    Range(i64),
    Eof,
}

#[derive(Clone, Debug)]
pub(crate) struct Token {
    pub tok: Tok,
    /// Byte offset of the token's first character in the query.
    pub pos: usize,
}

/// Operator and modifier words that are always keywords in LogQL.
const OPERATOR_KEYWORDS: [&str; 11] = [
    "or",
    "and",
    "unless",
    "by",
    "without",
    "bool",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "offset",
];

/// Pipeline stages introduced by a keyword after `|`; keywords too.
pub(crate) const STAGE_KEYWORDS: [&str; 10] = [
    "json",
    "logfmt",
    "regexp",
    "pattern",
    "unpack",
    "line_format",
    "label_format",
    "decolorize",
    "drop",
    "keep",
];

pub(crate) fn is_reserved(word: &str) -> bool {
    // Words that are always keywords in LogQL and therefore cannot name a label.
    OPERATOR_KEYWORDS
        .iter()
        .chain(STAGE_KEYWORDS.iter())
        .any(|r| r.eq_ignore_ascii_case(word))
        || word.eq_ignore_ascii_case("unwrap")
}

impl Tok {
    /// The token as Loki's parser names it in "unexpected X" messages.
    pub fn describe(&self) -> String {
        let s = match self {
            Tok::LBrace => "{",
            Tok::RBrace => "}",
            Tok::LParen => "(",
            Tok::RParen => ")",
            Tok::Comma => ",",
            Tok::Dot => ".",
            Tok::Eq => "=",
            Tok::Neq => "!=",
            Tok::Re => "=~",
            Tok::Nre => "!~",
            Tok::PipeExact => "|=",
            Tok::PipeMatch => "|~",
            Tok::PipePattern => "|>",
            Tok::NotPattern => "!>",
            Tok::Pipe => "|",
            Tok::CmpEq => "==",
            Tok::Gt => ">",
            Tok::Gte => ">=",
            Tok::Lt => "<",
            Tok::Lte => "<=",
            Tok::Add => "+",
            Tok::Sub => "-",
            Tok::Mul => "*",
            Tok::Div => "/",
            Tok::Mod => "%",
            Tok::Pow => "^",
            Tok::Str(_) => "STRING",
            Tok::Ident(w) if is_reserved(w) || w.eq_ignore_ascii_case("ip") => {
                return w.to_ascii_lowercase();
            }
            Tok::Ident(_) => "IDENTIFIER",
            Tok::Number(_) => "NUMBER",
            Tok::Duration(_) => "DURATION",
            Tok::Bytes(_) => "BYTES",
            Tok::Range(_) => "RANGE",
            Tok::Eof => "$end",
        };
        s.to_string()
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub(crate) fn line_col(src: &str, pos: usize) -> (usize, usize) {
    let pos = pos.min(src.len());
    let before = &src[..pos];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before[line_start..].chars().count() + 1;
    (line, col)
}

fn error_at(src: &str, pos: usize, msg: impl Into<String>) -> ParseError {
    let (line, col) = line_col(src, pos);
    ParseError::Syntax {
        line,
        col,
        msg: msg.into(),
    }
}

/// Splits the whole query into tokens, ending with [`Tok::Eof`].
pub(crate) fn lex(src: &str) -> Result<Vec<Token>, ParseError> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let start = i;
        let two = |next: u8| b.get(i + 1) == Some(&next);
        let (tok, len) = match c {
            b' ' | b'\t' | b'\n' | b'\r' => {
                i += 1;
                continue;
            }
            b'#' => {
                // A comment runs to the end of the line.
                i = b[i..]
                    .iter()
                    .position(|&x| x == b'\n')
                    .map_or(b.len(), |n| i + n);
                continue;
            }
            b'{' => (Tok::LBrace, 1),
            b'}' => (Tok::RBrace, 1),
            b'(' => (Tok::LParen, 1),
            b')' => (Tok::RParen, 1),
            b',' => (Tok::Comma, 1),
            b'+' => (Tok::Add, 1),
            b'-' => (Tok::Sub, 1),
            b'*' => (Tok::Mul, 1),
            b'/' => (Tok::Div, 1),
            b'%' => (Tok::Mod, 1),
            b'^' => (Tok::Pow, 1),
            b'=' if two(b'~') => (Tok::Re, 2),
            b'=' if two(b'=') => (Tok::CmpEq, 2),
            b'=' => (Tok::Eq, 1),
            b'!' if two(b'=') => (Tok::Neq, 2),
            b'!' if two(b'~') => (Tok::Nre, 2),
            b'!' if two(b'>') => (Tok::NotPattern, 2),
            b'|' if two(b'=') => (Tok::PipeExact, 2),
            b'|' if two(b'~') => (Tok::PipeMatch, 2),
            b'|' if two(b'>') => (Tok::PipePattern, 2),
            b'|' => (Tok::Pipe, 1),
            b'>' if two(b'=') => (Tok::Gte, 2),
            b'>' => (Tok::Gt, 1),
            b'<' if two(b'=') => (Tok::Lte, 2),
            b'<' => (Tok::Lt, 1),
            b'"' => {
                let (s, len) = lex_quoted(src, i)?;
                (Tok::Str(s), len)
            }
            b'`' => match b[i + 1..].iter().position(|&x| x == b'`') {
                Some(n) => (Tok::Str(src[i + 1..i + 1 + n].to_string()), n + 2),
                None => return Err(error_at(src, i, "literal not terminated")),
            },
            b'[' => lex_range(src, i)?,
            b'.' if b.get(i + 1).is_some_and(u8::is_ascii_digit) => lex_number(src, i),
            b'.' => (Tok::Dot, 1),
            b'0'..=b'9' => lex_number(src, i),
            _ => {
                let ch = src[i..].chars().next().unwrap_or('\u{fffd}');
                if ch == '_' || ch.is_alphabetic() {
                    let len = src[i..]
                        .char_indices()
                        .find(|&(_, c)| !(c == '_' || c.is_alphanumeric()))
                        .map_or(src.len() - i, |(n, _)| n);
                    (Tok::Ident(src[i..i + len].to_string()), len)
                } else {
                    return Err(error_at(
                        src,
                        i,
                        format!("syntax error: unexpected character {ch:?}"),
                    ));
                }
            }
        };
        out.push(Token { tok, pos: start });
        i += len;
    }
    out.push(Token {
        tok: Tok::Eof,
        pos: src.len(),
    });
    Ok(out)
}

/// A `[...]` range: the text up to `]` must be a LogQL duration.
fn lex_range(src: &str, start: usize) -> Result<(Tok, usize), ParseError> {
    let rest = &src[start + 1..];
    let Some(close) = rest.find(']') else {
        return Err(error_at(src, start, "missing closing ']' in duration"));
    };
    let text = rest[..close].trim();
    match parse_logql_duration(text) {
        Ok(ns) => Ok((Tok::Range(ns), close + 2)),
        Err(e) => Err(error_at(src, start, e.to_string())),
    }
}

/// A number-like word: a number (decimal, float, hex, binary, octal), a duration (`5m`,
/// `1h30m`) or a byte size (`10KiB`). Anything else number-like stays a NUMBER and the parser
/// rejects it where a number is not expected.
fn lex_number(src: &str, start: usize) -> (Tok, usize) {
    let b = src.as_bytes();
    let mut i = start;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_alphanumeric() || c == b'.' || c == b'_' {
            i += 1;
        } else if (c == b'+' || c == b'-')
            && is_exponent_start(&src[start..i])
            && b.get(i + 1).is_some_and(u8::is_ascii_digit)
        {
            // An exponent sign: 1e-3, 0x1p-2.
            i += 1;
        } else if src[i..].starts_with('\u{b5}') || src[i..].starts_with('\u{3bc}') {
            // The micro sign in `µs`.
            i += src[i..].chars().next().map_or(1, char::len_utf8);
        } else {
            break;
        }
    }
    let text = &src[start..i];
    let tok = if is_number(text) {
        Tok::Number(text.to_string())
    } else if parse_logql_duration(text).is_ok() {
        Tok::Duration(text.to_string())
    } else if is_bytes(text) {
        Tok::Bytes(text.to_string())
    } else {
        Tok::Number(text.to_string())
    };
    (tok, i - start)
}

/// Whether a number's text so far ends where an exponent sign may follow: `1e`, `1.5E`,
/// `0x1p`.
fn is_exponent_start(s: &str) -> bool {
    let lower = s.to_ascii_lowercase();
    if let Some(hex) = lower.strip_prefix("0x") {
        return hex.ends_with('p')
            && hex[..hex.len() - 1]
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == '.');
    }
    lower.ends_with('e')
        && lower[..lower.len() - 1]
            .chars()
            .all(|c| c.is_ascii_digit() || c == '.')
}

fn is_number(s: &str) -> bool {
    let lower = s.to_ascii_lowercase();
    if let Some(hex) = lower.strip_prefix("0x") {
        return !hex.is_empty()
            && hex
                .chars()
                .all(|c| c.is_ascii_hexdigit() || "p.+-".contains(c));
    }
    if let Some(bin) = lower.strip_prefix("0b") {
        return !bin.is_empty() && bin.chars().all(|c| c == '0' || c == '1');
    }
    if let Some(oct) = lower.strip_prefix("0o") {
        return !oct.is_empty() && oct.chars().all(|c| ('0'..='7').contains(&c));
    }
    s.parse::<f64>().is_ok() && !lower.contains("inf") && !lower.contains("nan")
}

/// Byte sizes as LogQL's `humanize.ParseBytes` reads them: a number and a unit.
fn is_bytes(s: &str) -> bool {
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    const UNITS: [&str; 22] = [
        "b", "kb", "kib", "mb", "mib", "gb", "gib", "tb", "tib", "pb", "pib", "eb", "eib", "k",
        "ki", "m", "mi", "g", "gi", "t", "ti", "p",
    ];
    num.parse::<f64>().is_ok() && UNITS.contains(&unit.to_ascii_lowercase().as_str())
}

/// A double-quoted Go string literal starting at `start`: returns the unquoted text and the
/// literal's length in bytes including the quotes.
fn lex_quoted(src: &str, start: usize) -> Result<(String, usize), ParseError> {
    let b = src.as_bytes();
    let mut out: Vec<u8> = Vec::new();
    let mut i = start + 1;
    loop {
        let Some(&c) = b.get(i) else {
            return Err(error_at(src, start, "literal not terminated"));
        };
        match c {
            b'"' => break,
            b'\n' => return Err(error_at(src, start, "literal not terminated")),
            b'\\' => {
                let esc_at = i;
                let bad = || error_at(src, esc_at, "invalid char escape");
                let Some(&e) = b.get(i + 1) else {
                    return Err(error_at(src, start, "literal not terminated"));
                };
                i += 2;
                match e {
                    b'a' => out.push(0x07),
                    b'b' => out.push(0x08),
                    b'f' => out.push(0x0c),
                    b'n' => out.push(b'\n'),
                    b'r' => out.push(b'\r'),
                    b't' => out.push(b'\t'),
                    b'v' => out.push(0x0b),
                    b'\\' => out.push(b'\\'),
                    b'"' => out.push(b'"'),
                    b'0'..=b'7' => {
                        let digits = src.get(i - 1..i + 2).ok_or_else(bad)?;
                        let v = u32::from_str_radix(digits, 8).map_err(|_| bad())?;
                        if v > 255 {
                            return Err(bad());
                        }
                        out.push(v as u8);
                        i += 2;
                    }
                    b'x' | b'u' | b'U' => {
                        let n = match e {
                            b'x' => 2,
                            b'u' => 4,
                            _ => 8,
                        };
                        let digits = src.get(i..i + n).ok_or_else(bad)?;
                        if !digits.bytes().all(|d| d.is_ascii_hexdigit()) {
                            return Err(bad());
                        }
                        let v = u32::from_str_radix(digits, 16).map_err(|_| bad())?;
                        i += n;
                        if e == b'x' {
                            out.push(v as u8);
                        } else {
                            let ch = char::from_u32(v).ok_or_else(bad)?;
                            let mut buf = [0u8; 4];
                            out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                        }
                    }
                    _ => return Err(bad()),
                }
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    let s = String::from_utf8(out).map_err(|_| {
        error_at(
            src,
            start,
            "string literal escapes produce invalid UTF-8; use \\u escapes for characters",
        )
    })?;
    Ok((s, i + 1 - start))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(src: &str) -> Vec<String> {
        lex(src)
            .unwrap()
            .into_iter()
            .filter(|t| t.tok != Tok::Eof)
            .map(|t| t.tok.describe())
            .collect()
    }

    #[test]
    fn selector_and_filters() {
        assert_eq!(
            kinds(r#"{foo="bar"}"#),
            ["{", "IDENTIFIER", "=", "STRING", "}"]
        );
        assert_eq!(
            kinds("{foo=\"bar\"} |~  `\\w+` != \"x\" !> \"y\" |> `z` !~ \"q\""),
            [
                "{",
                "IDENTIFIER",
                "=",
                "STRING",
                "}",
                "|~",
                "STRING",
                "!=",
                "STRING",
                "!>",
                "STRING",
                "|>",
                "STRING",
                "!~",
                "STRING"
            ]
        );
    }

    #[test]
    fn numbers_durations_bytes_ranges() {
        assert_eq!(kinds("123 1e6 0x1A 0x1p3 .5 1.5"), ["NUMBER"; 6]);
        assert_eq!(kinds("123ms 1h15m30.918273645s 5d"), ["DURATION"; 3]);
        assert_eq!(kinds("123KB 2.5KiB 0B"), ["BYTES"; 3]);
        let toks = lex("[5m]").unwrap();
        assert_eq!(toks[0].tok, Tok::Range(300_000_000_000));
    }

    #[test]
    fn comments() {
        assert_eq!(
            kinds("{foo=\"bar\"} #|~ \"\\\\w+\""),
            ["{", "IDENTIFIER", "=", "STRING", "}"]
        );
        assert!(kinds("#{foo=\"bar\"}").is_empty());
        assert_eq!(kinds("{foo=\"#\"}").len(), 5);
    }

    #[test]
    fn string_escapes() {
        let toks = lex(r#""a\"b\n\x41\101\u00e9\U0001F600""#).unwrap();
        assert_eq!(toks[0].tok, Tok::Str("a\"b\nAAé😀".into()));
        assert!(lex(r#""\q""#).is_err());
        assert!(lex(r#""\'""#).is_err());
        assert!(lex(r#""\xff""#).is_err(), "invalid UTF-8");
        assert!(lex("\"abc").is_err());
        assert!(lex("\"a\nb\"").is_err());
        assert_eq!(lex("`a\\nb`").unwrap()[0].tok, Tok::Str("a\\nb".into()));
    }

    #[test]
    fn errors_carry_positions() {
        let e = lex("{foo=\"bar}").unwrap_err();
        assert_eq!(
            e.to_string(),
            "parse error at line 1, col 6: literal not terminated"
        );
        let e = lex("rate({ foo = \"bar\" }[5minutes])").unwrap_err();
        assert_eq!(
            e.message(),
            r#"unknown unit "minutes" in duration "5minutes""#
        );
        let e = lex("rate({ foo = \"bar\" }[5)").unwrap_err();
        assert_eq!(e.message(), "missing closing ']' in duration");
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
    }
}

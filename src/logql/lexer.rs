//! The LogQL lexer: text to tokens, each with its byte offset for error positions.
//!
//! Which question it answers: "which token comes next, as Loki's lexer would say?" It mirrors
//! Loki's `lex.go` on top of Go's `text/scanner`, because what a word or a number-like run of
//! characters becomes decides whether a query is valid:
//! - Function names (`rate`, `sum`, `vector`, `ip`, `bytes`, `label_replace`, ...) are keywords
//!   only when a `(`, or `by (`/`without (`, follows; otherwise they are identifiers, so
//!   `{rate="x"}` and `| unwrap bytes` work. Other keywords (`by`, `or`, `json`, `unwrap`, ...)
//!   are keywords everywhere, case-insensitively.
//! - A number followed directly by duration or byte-size characters is a DURATION (`5m`,
//!   `-1s`, `1h15m30s`) or BYTES (`10KiB`); `[...]` is a RANGE (Prometheus durations only);
//!   `--strict` and `--keep-empty` are parser flags.
//! - `#` starts a comment to the end of the line, and so do Go's `//` and `/* */` (the
//!   scanner skips them).
//! - Any other single character is an IDENTIFIER token of its own, as in Loki, which the
//!   grammar then refuses where it expects something else.

use super::ParseError;
use super::ast::{RangeOp, VectorOp};
use super::duration::{parse_go_duration, parse_prometheus_duration};
use super::go_compat::parse_humanized_bytes;

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Tok {
    LBrace,
    RBrace,
    LParen,
    RParen,
    /// `]` outside a range: never valid, but a token of its own as in Loki.
    RBracket,
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
    /// A word that is not a keyword here (label name, unknown function, stray character).
    Ident(String),
    /// A number as written (`1`, `0.5`, `1e3`, `0x1p3`); the parser reads it as Go does.
    Number(String),
    /// A duration in nanoseconds (`250ms`, `-1s`, `1d`).
    Duration(i64),
    /// A byte size (`10KiB`, `2.5MB`).
    Bytes(u64),
    /// `[5m]`, in nanoseconds.
    Range(i64),
    /// `--strict`, `--keep-empty`.
    Flag(String),
    Kw(Kw),
    Eof,
}

/// Keywords: the words Loki's lexer turns into tokens of their own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kw {
    By,
    Without,
    Bool,
    Offset,
    On,
    Ignoring,
    GroupLeft,
    GroupRight,
    Or,
    And,
    Unless,
    Json,
    Regexp,
    Logfmt,
    Unpack,
    Pattern,
    LabelFormat,
    LineFormat,
    Decolorize,
    Drop,
    Keep,
    Unwrap,
    /// `ip(`
    Ip,
    /// `label_replace(`
    LabelReplace,
    /// `vector(`
    Vector,
    /// `bytes(` after `unwrap`
    BytesConv,
    /// `duration(`
    DurationConv,
    /// `duration_seconds(`
    DurationSecondsConv,
    /// `rate(`, `count_over_time(`, ...
    Range(RangeOp),
    /// `sum(`, `sum by (`, `topk(`, ...
    Agg(VectorOp),
}

/// Words that are keywords wherever they appear (Loki's `tokens` map).
const KEYWORDS: [(&str, Kw); 22] = [
    ("by", Kw::By),
    ("without", Kw::Without),
    ("bool", Kw::Bool),
    ("offset", Kw::Offset),
    ("on", Kw::On),
    ("ignoring", Kw::Ignoring),
    ("group_left", Kw::GroupLeft),
    ("group_right", Kw::GroupRight),
    ("or", Kw::Or),
    ("and", Kw::And),
    ("unless", Kw::Unless),
    ("json", Kw::Json),
    ("regexp", Kw::Regexp),
    ("logfmt", Kw::Logfmt),
    ("unpack", Kw::Unpack),
    ("pattern", Kw::Pattern),
    ("label_format", Kw::LabelFormat),
    ("line_format", Kw::LineFormat),
    ("decolorize", Kw::Decolorize),
    ("drop", Kw::Drop),
    ("keep", Kw::Keep),
    ("unwrap", Kw::Unwrap),
];

const RANGE_OPS: [RangeOp; 15] = [
    RangeOp::CountOverTime,
    RangeOp::Rate,
    RangeOp::RateCounter,
    RangeOp::BytesOverTime,
    RangeOp::BytesRate,
    RangeOp::AvgOverTime,
    RangeOp::SumOverTime,
    RangeOp::MinOverTime,
    RangeOp::MaxOverTime,
    RangeOp::StddevOverTime,
    RangeOp::StdvarOverTime,
    RangeOp::QuantileOverTime,
    RangeOp::FirstOverTime,
    RangeOp::LastOverTime,
    RangeOp::AbsentOverTime,
];

const VECTOR_OPS: [VectorOp; 12] = [
    VectorOp::Sum,
    VectorOp::Avg,
    VectorOp::Min,
    VectorOp::Max,
    VectorOp::Stddev,
    VectorOp::Stdvar,
    VectorOp::Count,
    VectorOp::Topk,
    VectorOp::Bottomk,
    VectorOp::Sort,
    VectorOp::SortDesc,
    VectorOp::ApproxTopk,
];

/// Words that are keywords only before `(` (or `by (`/`without (`): Loki's `functionTokens`.
fn function_keyword(lower: &str) -> Option<Kw> {
    if let Some(op) = RANGE_OPS.iter().find(|op| op.as_str() == lower) {
        return Some(Kw::Range(*op));
    }
    if let Some(op) = VECTOR_OPS.iter().find(|op| op.as_str() == lower) {
        return Some(Kw::Agg(*op));
    }
    Some(match lower {
        "vector" => Kw::Vector,
        "label_replace" => Kw::LabelReplace,
        "bytes" => Kw::BytesConv,
        "duration" => Kw::DurationConv,
        "duration_seconds" => Kw::DurationSecondsConv,
        "ip" => Kw::Ip,
        _ => return None,
    })
}

impl Kw {
    /// The keyword as Loki's parser names it in "unexpected X" messages: the word for plain
    /// keywords, the grammar's token name for function keywords.
    pub fn describe(self) -> String {
        if let Some((word, _)) = KEYWORDS.iter().find(|(_, k)| *k == self) {
            return (*word).to_string();
        }
        match self {
            Kw::Ip => "ip".into(),
            Kw::LabelReplace => "label_replace".into(),
            Kw::Vector => "VECTOR".into(),
            Kw::BytesConv => "BYTES_CONV".into(),
            Kw::DurationConv => "DURATION_CONV".into(),
            Kw::DurationSecondsConv => "DURATION_SECONDS_CONV".into(),
            Kw::Range(op) => op.as_str().to_ascii_uppercase(),
            Kw::Agg(op) => op.as_str().to_ascii_uppercase(),
            _ => format!("{self:?}"),
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Token {
    pub tok: Tok,
    /// Byte offset of the token's first character in the query.
    pub pos: usize,
}

impl Tok {
    /// The token as Loki's parser names it in "unexpected X" messages.
    pub fn describe(&self) -> String {
        let s = match self {
            Tok::LBrace => "{",
            Tok::RBrace => "}",
            Tok::LParen => "(",
            Tok::RParen => ")",
            Tok::RBracket => "]",
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
            Tok::Ident(_) => "IDENTIFIER",
            Tok::Number(_) => "NUMBER",
            Tok::Duration(_) => "DURATION",
            Tok::Bytes(_) => "BYTES",
            Tok::Range(_) => "RANGE",
            Tok::Flag(_) => "FUNCTION_FLAG",
            Tok::Kw(kw) => return kw.describe(),
            Tok::Eof => "$end",
        };
        s.to_string()
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub(crate) fn line_col(src: &str, pos: usize) -> (usize, usize) {
    let mut pos = pos.min(src.len());
    while !src.is_char_boundary(pos) {
        pos -= 1;
    }
    let before = &src[..pos];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before[line_start..].chars().count() + 1;
    (line, col)
}

pub(crate) fn error_at(src: &str, pos: usize, msg: impl Into<String>) -> ParseError {
    let (line, col) = line_col(src, pos);
    ParseError::Syntax {
        line,
        col,
        msg: msg.into(),
    }
}

/// Splits the whole query into tokens, ending with [`Tok::Eof`].
pub(crate) fn lex(src: &str) -> Result<Vec<Token>, ParseError> {
    let (tokens, error) = lex_prefix(src);
    match error {
        Some(e) => Err(e),
        None => Ok(tokens),
    }
}

/// The tokens up to the first lexical error (then without [`Tok::Eof`]), and that error.
/// Loki's lexer tests compare the tokens read before a broken literal.
pub(crate) fn lex_prefix(src: &str) -> (Vec<Token>, Option<ParseError>) {
    let mut lexer = Lexer { src, pos: 0 };
    let mut out = Vec::new();
    loop {
        match lexer.next_token() {
            Ok(Some(token)) => out.push(token),
            Ok(None) => {
                out.push(Token {
                    tok: Tok::Eof,
                    pos: src.len(),
                });
                return (out, None);
            }
            Err(e) => return (out, Some(e)),
        }
    }
}

struct Lexer<'a> {
    src: &'a str,
    /// Byte offset of the next character.
    pos: usize,
}

fn is_ident_start(c: char) -> bool {
    c == '_' || c.is_alphabetic()
}

fn is_ident_char(c: char) -> bool {
    c == '_' || c.is_alphabetic() || c.is_numeric()
}

fn is_duration_rune(c: char) -> bool {
    matches!(
        c,
        'n' | 'u' | '\u{b5}' | '\u{3bc}' | 'm' | 's' | 'h' | 'd' | 'w' | 'y'
    )
}

fn is_bytes_rune(c: char) -> bool {
    matches!(c, 'B' | 'i' | 'k' | 'K' | 'M' | 'G' | 'T' | 'P')
}

/// Loki's lexer durations: Prometheus' syntax first (`1d`, `1w`), then Go's (`1.5h`, `-1s`).
fn parse_lexer_duration(s: &str) -> Option<i64> {
    parse_prometheus_duration(s)
        .or_else(|_| parse_go_duration(s))
        .ok()
}

/// Whether the text after a function name makes it a call: `(` or `by (`/`without (`, with
/// any whitespace between (Loki's `isFunction`).
pub(crate) fn is_function_call(rest: &str) -> bool {
    let t = rest.trim_start_matches(char::is_whitespace);
    if t.starts_with('(') {
        return true;
    }
    for word in ["by", "without"] {
        if t.get(..word.len())
            .is_some_and(|w| w.eq_ignore_ascii_case(word))
        {
            return t[word.len()..]
                .trim_start_matches(char::is_whitespace)
                .starts_with('(');
        }
    }
    false
}

impl<'a> Lexer<'a> {
    fn rest(&self) -> &'a str {
        &self.src[self.pos..]
    }

    fn peek_char(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn char_at(&self, offset: usize) -> Option<char> {
        self.src.get(offset..).and_then(|s| s.chars().next())
    }

    fn err(&self, pos: usize, msg: impl Into<String>) -> ParseError {
        error_at(self.src, pos, msg)
    }

    /// The next token, `None` at the end of the query.
    fn next_token(&mut self) -> Result<Option<Token>, ParseError> {
        loop {
            self.pos += self
                .rest()
                .find(|c| !matches!(c, ' ' | '\t' | '\n' | '\r'))
                .unwrap_or(self.rest().len());
            let rest = self.rest();
            if rest.starts_with('#') || rest.starts_with("//") {
                self.pos += rest.find('\n').unwrap_or(rest.len());
                continue;
            }
            if let Some(comment) = rest.strip_prefix("/*") {
                match comment.find("*/") {
                    Some(end) => self.pos += end + 4,
                    None => return Err(self.err(self.pos, "comment not terminated")),
                }
                continue;
            }
            break;
        }
        let start = self.pos;
        let Some(c) = self.peek_char() else {
            return Ok(None);
        };
        let tok = if is_ident_start(c) {
            self.word()
        } else if c.is_ascii_digit()
            || (c == '.' && self.char_at(start + 1).is_some_and(|d| d.is_ascii_digit()))
        {
            self.number()?
        } else {
            match c {
                '"' => Tok::Str(self.quoted(b'"')?),
                '`' => Tok::Str(self.raw_string()?),
                '\'' => self.char_literal()?,
                '[' => self.range()?,
                '-' => self.minus(),
                _ => self.operator(c),
            }
        };
        Ok(Some(Token { tok, pos: start }))
    }

    /// An identifier, a keyword, or a function keyword when a call follows.
    fn word(&mut self) -> Tok {
        let rest = self.rest();
        let len = rest
            .char_indices()
            .find(|&(_, c)| !is_ident_char(c))
            .map_or(rest.len(), |(i, _)| i);
        let word = &rest[..len];
        self.pos += len;
        let lower = word.to_lowercase();
        if let Some(kw) = function_keyword(&lower) {
            return if is_function_call(self.rest()) {
                Tok::Kw(kw)
            } else {
                Tok::Ident(word.to_string())
            };
        }
        match KEYWORDS.iter().find(|(w, _)| *w == lower) {
            Some((_, kw)) => Tok::Kw(*kw),
            None => Tok::Ident(word.to_string()),
        }
    }

    /// Operators and punctuation; any other character is an identifier of its own.
    fn operator(&mut self, c: char) -> Tok {
        let two = self.rest().get(..2).unwrap_or("");
        let double = match two {
            "!=" => Some(Tok::Neq),
            "=~" => Some(Tok::Re),
            "!~" => Some(Tok::Nre),
            "!>" => Some(Tok::NotPattern),
            "|=" => Some(Tok::PipeExact),
            "|~" => Some(Tok::PipeMatch),
            "|>" => Some(Tok::PipePattern),
            "==" => Some(Tok::CmpEq),
            ">=" => Some(Tok::Gte),
            "<=" => Some(Tok::Lte),
            _ => None,
        };
        if let Some(tok) = double {
            self.pos += 2;
            return tok;
        }
        self.pos += c.len_utf8();
        match c {
            ',' => Tok::Comma,
            '.' => Tok::Dot,
            '{' => Tok::LBrace,
            '}' => Tok::RBrace,
            '(' => Tok::LParen,
            ')' => Tok::RParen,
            ']' => Tok::RBracket,
            '=' => Tok::Eq,
            '|' => Tok::Pipe,
            '+' => Tok::Add,
            '*' => Tok::Mul,
            '/' => Tok::Div,
            '%' => Tok::Mod,
            '^' => Tok::Pow,
            '>' => Tok::Gt,
            '<' => Tok::Lt,
            _ => Tok::Ident(c.to_string()),
        }
    }

    /// `-`: a parser flag (`--strict`), a negative duration (`-1s`) or the minus sign.
    fn minus(&mut self) -> Tok {
        let after = &self.src[self.pos + 1..];
        if after.starts_with('-') {
            let len = after
                .char_indices()
                .find(|&(_, c)| !(c.is_alphabetic() || c == '-'))
                .map_or(after.len(), |(i, _)| i);
            let flag = &self.src[self.pos..self.pos + 1 + len];
            if flag == "--strict" || flag == "--keep-empty" {
                self.pos += flag.len();
                return Tok::Flag(flag.to_string());
            }
        }
        self.pos += 1;
        if let Some((ns, len)) = self.duration_suffix("-") {
            self.pos += len;
            return Tok::Duration(ns);
        }
        Tok::Sub
    }

    /// Loki's `tryScanDuration`: the characters after `prefix` up to a space that can belong
    /// to a duration, if together they are one. Returns the value and the length consumed.
    fn duration_suffix(&self, prefix: &str) -> Option<(i64, usize)> {
        let rest = self.rest();
        let len = rest
            .char_indices()
            .find(|&(_, c)| {
                c.is_whitespace() || !(c.is_numeric() || is_duration_rune(c) || c == '.')
            })
            .map_or(rest.len(), |(i, _)| i);
        if len == 0 {
            return None;
        }
        parse_lexer_duration(&format!("{prefix}{}", &rest[..len])).map(|ns| (ns, len))
    }

    /// Loki's `tryScanBytes`, as [`Self::duration_suffix`] for byte sizes.
    fn bytes_suffix(&self, prefix: &str) -> Option<(u64, usize)> {
        let rest = self.rest();
        let len = rest
            .char_indices()
            .find(|&(_, c)| c.is_whitespace() || !(c.is_numeric() || is_bytes_rune(c) || c == '.'))
            .map_or(rest.len(), |(i, _)| i);
        if len == 0 {
            return None;
        }
        parse_humanized_bytes(&format!("{prefix}{}", &rest[..len])).map(|b| (b, len))
    }

    /// A Go number literal (Go's `text/scanner` rules and errors), then a duration or byte
    /// size if unit characters follow directly.
    fn number(&mut self) -> Result<Tok, ParseError> {
        let start = self.pos;
        let text_end = self.scan_go_number()?;
        self.pos = text_end;
        let text = &self.src[start..text_end];
        if let Some((ns, len)) = self.duration_suffix(text) {
            self.pos += len;
            return Ok(Tok::Duration(ns));
        }
        if let Some((bytes, len)) = self.bytes_suffix(text) {
            self.pos += len;
            return Ok(Tok::Bytes(bytes));
        }
        Ok(Tok::Number(text.to_string()))
    }

    /// Go's `scanNumber`: returns the end offset of the literal or the scanner's error.
    fn scan_go_number(&self) -> Result<usize, ParseError> {
        let b = self.src.as_bytes();
        let start = self.pos;
        let mut i = start;
        let at = |i: usize| b.get(i).copied().unwrap_or(0);
        let lower = |c: u8| c.to_ascii_lowercase();
        let mut base = 10u32;
        let mut prefix = 0u8;
        let mut has_digits = false;
        let mut has_sep = false;
        let mut invalid: Option<u8> = None;
        let mut is_float = false;
        let digits = |i: &mut usize, base: u32, invalid: &mut Option<u8>| -> (bool, bool) {
            let (mut d, mut s) = (false, false);
            loop {
                let c = at(*i);
                if c == b'_' {
                    s = true;
                } else if base <= 10 && c.is_ascii_digit() {
                    if u32::from(c - b'0') >= base && invalid.is_none() {
                        *invalid = Some(c);
                    }
                    d = true;
                } else if base == 16 && c.is_ascii_hexdigit() {
                    d = true;
                } else {
                    return (d, s);
                }
                *i += 1;
            }
        };
        let name = |prefix: u8| match prefix {
            b'x' => "hexadecimal literal",
            b'o' | b'0' => "octal literal",
            b'b' => "binary literal",
            _ => "decimal literal",
        };
        if at(i) != b'.' {
            if at(i) == b'0' {
                i += 1;
                match lower(at(i)) {
                    b'x' => {
                        i += 1;
                        (base, prefix) = (16, b'x');
                    }
                    b'o' => {
                        i += 1;
                        (base, prefix) = (8, b'o');
                    }
                    b'b' if matches!(at(i + 1), b'0' | b'1') => {
                        i += 1;
                        (base, prefix) = (2, b'b');
                    }
                    _ => {
                        (base, prefix) = (8, b'0');
                        has_digits = true;
                    }
                }
            }
            let (d, s) = digits(&mut i, base, &mut invalid);
            has_digits |= d;
            has_sep |= s;
            if at(i) == b'.' {
                i += 1;
                is_float = true;
            }
        } else {
            i += 1;
            is_float = true;
        }
        if is_float {
            if prefix == b'o' || prefix == b'b' {
                return Err(self.err(start, format!("invalid radix point in {}", name(prefix))));
            }
            let (d, s) = digits(&mut i, base, &mut invalid);
            has_digits |= d;
            has_sep |= s;
        }
        if !has_digits {
            return Err(self.err(start, format!("{} has no digits", name(prefix))));
        }
        let e = lower(at(i));
        if e == b'e' || (e == b'p' && prefix == b'x') {
            if e == b'e' && prefix != 0 && prefix != b'0' {
                return Err(self.err(
                    start,
                    format!("'{}' exponent requires decimal mantissa", at(i) as char),
                ));
            }
            i += 1;
            is_float = true;
            if matches!(at(i), b'+' | b'-') {
                i += 1;
            }
            let (d, s) = digits(&mut i, 10, &mut None);
            has_sep |= s;
            if !d {
                return Err(self.err(start, "exponent has no digits"));
            }
        } else if prefix == b'x' && is_float {
            return Err(self.err(start, "hexadecimal mantissa requires a 'p' exponent"));
        }
        if !is_float && let Some(c) = invalid {
            return Err(self.err(
                start,
                format!("invalid digit '{}' in {}", c as char, name(prefix)),
            ));
        }
        if has_sep && !separators_ok(&self.src[start..i]) {
            return Err(self.err(start, "'_' must separate successive digits"));
        }
        Ok(i)
    }

    /// `[...]`: the text up to `]` must be a Prometheus duration, as Loki reads ranges.
    fn range(&mut self) -> Result<Tok, ParseError> {
        let start = self.pos;
        let rest = &self.src[start + 1..];
        let Some(close) = rest.find(']') else {
            return Err(self.err(start, "missing closing ']' in duration"));
        };
        let ns = parse_prometheus_duration(&rest[..close])
            .map_err(|e| self.err(start, e.to_string()))?;
        self.pos = start + close + 2;
        Ok(Tok::Range(ns))
    }

    /// A backquoted string: everything up to the next backquote, newlines included.
    fn raw_string(&mut self) -> Result<String, ParseError> {
        let start = self.pos;
        let rest = &self.src[start + 1..];
        let Some(close) = rest.find('`') else {
            return Err(self.err(start, "literal not terminated"));
        };
        self.pos = start + close + 2;
        Ok(rest[..close].to_string())
    }

    /// A single-quoted Go character literal: valid text for Loki's scanner, which hands it to
    /// the grammar as an identifier (`'a'`), so it is refused wherever a name is not allowed.
    fn char_literal(&mut self) -> Result<Tok, ParseError> {
        let start = self.pos;
        let mut chars = self.src[start + 1..].char_indices();
        let mut count = 0;
        loop {
            match chars.next() {
                None | Some((_, '\n')) => return Err(self.err(start, "literal not terminated")),
                Some((i, '\'')) => {
                    self.pos = start + 1 + i + 1;
                    break;
                }
                Some((_, '\\')) => {
                    chars.next();
                    count += 1;
                }
                Some(_) => count += 1,
            }
        }
        if count != 1 {
            return Err(self.err(start, "invalid char literal"));
        }
        Ok(Tok::Ident(self.src[start..self.pos].to_string()))
    }

    /// A quoted Go string literal (`"..."`, or `'...'` in Prometheus label sets): returns the
    /// unquoted text.
    fn quoted(&mut self, quote: u8) -> Result<String, ParseError> {
        let src = self.src;
        let start = self.pos;
        let b = src.as_bytes();
        let mut out: Vec<u8> = Vec::new();
        let mut i = start + 1;
        loop {
            let Some(&c) = b.get(i) else {
                return Err(self.err(start, "literal not terminated"));
            };
            match c {
                c if c == quote => break,
                b'\n' => return Err(self.err(start, "literal not terminated")),
                b'\\' => {
                    let esc_at = i;
                    let bad = || error_at(src, esc_at, "invalid char escape");
                    let Some(&e) = b.get(i + 1) else {
                        return Err(self.err(start, "literal not terminated"));
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
                        e if e == quote => out.push(e),
                        b'0'..=b'7' => {
                            let digits = src.get(i - 1..i + 2).ok_or_else(bad)?;
                            let v = u32::from_str_radix(digits, 8).map_err(|_| bad())?;
                            if v > 255 {
                                return Err(error_at(src, esc_at, "invalid syntax"));
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
                                let ch = char::from_u32(v)
                                    .ok_or_else(|| error_at(src, esc_at, "invalid syntax"))?;
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
        self.pos = i + 1;
        String::from_utf8(out).map_err(|_| {
            self.err(
                start,
                "string literal escapes produce invalid UTF-8; use \\u escapes for characters",
            )
        })
    }
}

/// A string literal starting at byte `pos` of `src` (double-, single- or back-quoted): the
/// unquoted text and the offset after it. For Prometheus label sets, whose strings are Go's.
pub(crate) fn string_at(src: &str, pos: usize) -> Result<(String, usize), ParseError> {
    let mut lexer = Lexer { src, pos };
    let s = match src.as_bytes().get(pos) {
        Some(b'"') => lexer.quoted(b'"')?,
        Some(b'\'') => lexer.quoted(b'\'')?,
        Some(b'`') => lexer.raw_string()?,
        _ => return Err(error_at(src, pos, "syntax error: expected a string")),
    };
    Ok((s, lexer.pos))
}

/// Go's `invalidSep` check: `_` only between digits, or between a base prefix and a digit.
fn separators_ok(x: &str) -> bool {
    let b = x.as_bytes();
    let mut hex = false;
    let mut d = b'.';
    let mut i = 0;
    if b.len() >= 2 && b[0] == b'0' {
        let p = b[1].to_ascii_lowercase();
        if matches!(p, b'x' | b'o' | b'b') {
            hex = p == b'x';
            d = b'0';
            i = 2;
        }
    }
    while i < b.len() {
        let p = d;
        d = b[i];
        if d == b'_' {
            if p != b'0' {
                return false;
            }
        } else if d.is_ascii_digit() || (hex && d.is_ascii_hexdigit()) {
            d = b'0';
        } else {
            if p == b'_' {
                return false;
            }
            d = b'.';
        }
        i += 1;
    }
    d != b'_'
}

#[cfg(test)]
#[path = "lexer_tests.rs"]
mod tests;

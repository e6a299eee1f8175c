//! How the pattern miner cuts a line into tokens and glues a cluster's tokens back into a
//! pattern: Loki's line tokenizers (pkg/pattern/drain/line_tokenizer.go) and its guess of a
//! stream's format (`DetectLogFormat`, pkg/pattern/drain/metrics.go).
//!
//! Which question it answers: "which tokens does Drain compare for this line, and what does
//! a cluster of them print as?" Three tokenizers, chosen by the format guessed from a
//! stream's first line:
//! - plain text: words split at spaces, `=` and Unicode punctuation (but not `_ - . : /`),
//!   each punctuation character its own token, the spaces remembered to print the pattern;
//! - logfmt: alternating keys and values, the values of time and trace keys replaced by
//!   `<_>`; printed back as logfmt (quoted where needed);
//! - JSON: only the first string field among `log`, `message`, `msg`, `msg_`, `_msg`,
//!   `content`, tokenized as plain text and printed between two `<_>`.
//!
//! Tokens are bytes, as Go's strings are: a multi-byte punctuation character is cut after its
//! first byte exactly as Loki cuts it, so patterns come out byte for byte the same (and are
//! made valid UTF-8 only when printed).

use std::borrow::Cow;
use std::sync::OnceLock;

use regex::Regex;
use regex_syntax::hir::{Class, HirKind};

use crate::query::pipeline::json_scan::{self, ValueType};
use crate::query::pipeline::logfmt_decoder::Decoder;

/// The placeholder of a variable token (Loki's `ParamString`).
pub(crate) const PARAM: &[u8] = b"<_>";

/// A punctuation-tokenized line stops being cut after this many tokens; the rest of the
/// line is one last token (Loki's `len(tokens) >= 127`).
const PUNCTUATION_TOKENS_MAX: usize = 127;

/// The JSON fields whose text is mined, in order of preference (Loki's default
/// `pattern_ingester_tokenizable_json_fields_default`).
const JSON_MESSAGE_FIELDS: [&[u8]; 6] = [b"log", b"message", b"msg", b"msg_", b"_msg", b"content"];

/// How a stream's lines are encoded, guessed from its first line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LogFormat {
    Json,
    Logfmt,
    Unknown,
}

/// Loki's `DetectLogFormat`: JSON when the line is `{...}`, logfmt when the whole line is
/// `key=value` pairs, plain text otherwise.
pub fn detect_log_format(line: &str) -> LogFormat {
    static LOGFMT: OnceLock<Option<Regex>> = OnceLock::new();
    let bytes = line.as_bytes();
    if bytes.len() < 2 {
        return LogFormat::Unknown;
    }
    if bytes[0] == b'{' && bytes[bytes.len() - 1] == b'}' {
        return LogFormat::Json;
    }
    // Loki's expression, with Go's ASCII-only `\w` and `\S` spelled out. The regex crate
    // runs in linear time, so a long line costs no more than reading it.
    let logfmt = LOGFMT.get_or_init(|| {
        Regex::new(
            r#"^([0-9A-Za-z_]+?=([^"][^\t\n\x0C\r ]*?|".+?") )*?([0-9A-Za-z_]+?=([^"][^\t\n\x0C\r ]*?|".+?"))+$"#,
        )
        .ok()
    });
    match logfmt {
        Some(re) if re.is_match(line) => LogFormat::Logfmt,
        _ => LogFormat::Unknown,
    }
}

/// The tokens of one line, borrowed from it where possible, and where the spaces were:
/// `spaces_after[k] = i` means a space follows token `i` (`-1`: the line starts with one).
#[derive(Debug, Default)]
pub(crate) struct Tokens<'a> {
    pub tokens: Vec<Cow<'a, [u8]>>,
    pub spaces_after: Vec<i32>,
}

impl Tokens<'_> {
    fn clear(&mut self) {
        self.tokens.clear();
        self.spaces_after.clear();
    }
}

/// Cuts `line` for the tokenizer of `format`. False: the line is not mined (too long, a
/// logfmt syntax error, or a JSON line without a message field).
pub(crate) fn tokenize<'a>(
    format: LogFormat,
    line: &'a str,
    max_line_length: usize,
    out: &mut Tokens<'a>,
) -> bool {
    out.clear();
    match format {
        LogFormat::Unknown => {
            if line.len() > max_line_length {
                return false;
            }
            punctuation(line, out);
            true
        }
        LogFormat::Logfmt => {
            if line.len() > max_line_length {
                return false;
            }
            logfmt(line, out)
        }
        LogFormat::Json => match json_message(line) {
            Some(message) if message.len() <= max_line_length => {
                punctuation(message, out);
                true
            }
            _ => false,
        },
    }
}

/// Loki's punctuation tokenizer.
fn punctuation<'a>(line: &'a str, out: &mut Tokens<'a>) {
    let bytes = line.as_bytes();
    let mut start = 0;
    for (i, c) in line.char_indices() {
        if out.tokens.len() >= PUNCTUATION_TOKENS_MAX {
            break;
        }
        if is_letter(c) || is_number(c) || matches!(c, '_' | '-' | '.' | ':' | '/') {
            continue;
        }
        if c == ' ' || c == '=' || is_punct(c) {
            if i > start {
                out.tokens.push(Cow::Borrowed(&bytes[start..i]));
            }
            if c == ' ' {
                out.spaces_after.push(out.tokens.len() as i32 - 1);
            } else {
                // One byte, as Go's `line[i:i+1]`, even for a multi-byte character.
                out.tokens.push(Cow::Borrowed(&bytes[i..i + 1]));
            }
            start = i + 1;
        }
    }
    if start < bytes.len() {
        out.tokens.push(Cow::Borrowed(&bytes[start..]));
    }
}

/// Loki's logfmt tokenizer: key, value, key, value...; a line with a syntax error is not
/// mined.
fn logfmt<'a>(line: &'a str, out: &mut Tokens<'a>) -> bool {
    let mut dec = Decoder::new(line.as_bytes());
    while !dec.eol() && dec.scan_keyval() {
        let key = dec.key();
        out.tokens.push(Cow::Borrowed(key));
        if is_variable_field(key) {
            out.tokens.push(Cow::Borrowed(PARAM));
        } else {
            out.tokens.push(Cow::Owned(dec.value().to_vec()));
        }
    }
    dec.err().is_none()
}

/// Keys whose values change on every line whatever the message (Loki's `isVariableField`).
fn is_variable_field(key: &[u8]) -> bool {
    key.eq_ignore_ascii_case(b"ts")
        || key == b"t"
        || key.eq_ignore_ascii_case(b"traceID")
        || key.eq_ignore_ascii_case(b"time")
        || key.eq_ignore_ascii_case(b"timestamp")
}

/// The text of the preferred message field of a JSON line, still escaped (as the `jsonparser`
/// `Get` Loki calls returns it). Fields read before a syntax error count.
fn json_message(line: &str) -> Option<&str> {
    // Where each field's text is in the line (the scanner's values borrow the line, but its
    // callback does not say so, hence offsets).
    let mut found: [Option<(usize, usize)>; JSON_MESSAGE_FIELDS.len()] =
        [None; JSON_MESSAGE_FIELDS.len()];
    let data = line.as_bytes();
    let base = data.as_ptr() as usize;
    let _ = json_scan::object_each::<json_scan::JsonError>(data, |key, value| {
        if value.ty == ValueType::String
            && let Some(slot) = JSON_MESSAGE_FIELDS.iter().position(|f| *f == key)
            && found[slot].is_none()
        {
            let start = (value.bytes.as_ptr() as usize).wrapping_sub(base);
            found[slot] = Some((start, start.saturating_add(value.bytes.len())));
        }
        Ok(())
    });
    // The text lies between two quotes of the line, so it is valid UTF-8.
    found
        .into_iter()
        .flatten()
        .next()
        .and_then(|(start, end)| line.get(start..end))
}

/// Prints a cluster's tokens as its pattern (Loki's `Join` of the stream's tokenizer, then
/// `deduplicatePlaceholders`). Empty when logfmt cannot print a key; such clusters are not
/// reported.
pub(crate) fn join(format: LogFormat, tokens: &[Box<[u8]>], spaces_after: &[i32]) -> String {
    let bytes = match format {
        LogFormat::Unknown => join_spaced(tokens, spaces_after, Vec::new()),
        LogFormat::Json => {
            let mut out = join_spaced(tokens, spaces_after, PARAM.to_vec());
            out.extend_from_slice(PARAM);
            out
        }
        LogFormat::Logfmt => join_logfmt(tokens),
    };
    let bytes = deduplicate_placeholders(bytes);
    match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

/// Tokens back to back, with the remembered spaces. A line that started with a space left a
/// `-1` that never matches, so its pattern has no spaces at all: Loki's output, kept.
fn join_spaced(tokens: &[Box<[u8]>], spaces_after: &[i32], mut out: Vec<u8>) -> Vec<u8> {
    let mut next_space = 0;
    for (i, token) in tokens.iter().enumerate() {
        out.extend_from_slice(token);
        while next_space < spaces_after.len() && i as i32 == spaces_after[next_space] {
            out.push(b' ');
            next_space += 1;
        }
    }
    out
}

/// go-logfmt's encoder on the key/value pairs; empty when a key cannot be written.
fn join_logfmt(tokens: &[Box<[u8]>]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, pair) in tokens.chunks(2).enumerate() {
        let key = &pair[0];
        let value: &[u8] = pair.get(1).map_or(&[], |v| v);
        if key.is_empty() || needs_quotes(key) {
            return Vec::new();
        }
        if i > 0 {
            out.push(b' ');
        }
        out.extend_from_slice(key);
        out.push(b'=');
        if needs_quotes(value) {
            write_quoted(&mut out, value);
        } else {
            out.extend_from_slice(value);
        }
    }
    out
}

/// go-logfmt's `needsQuotedValueRune` (also its invalid-key test): a space or control
/// character, `=`, `"`, or U+FFFD (which invalid UTF-8 also decodes to).
fn needs_quotes(bytes: &[u8]) -> bool {
    String::from_utf8_lossy(bytes)
        .chars()
        .any(|c| c <= ' ' || c == '=' || c == '"' || c == char::REPLACEMENT_CHARACTER)
}

/// go-logfmt's quoted value: JSON-style escapes, U+FFFD as `\ufffd`.
fn write_quoted(out: &mut Vec<u8>, value: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    for chunk in value.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' | '"' => {
                    out.push(b'\\');
                    out.push(c as u8);
                }
                '\n' => out.extend_from_slice(b"\\n"),
                '\r' => out.extend_from_slice(b"\\r"),
                '\t' => out.extend_from_slice(b"\\t"),
                c if (c as u32) < 0x20 => {
                    let b = c as u8;
                    out.extend_from_slice(b"\\u00");
                    out.push(HEX[usize::from(b >> 4)]);
                    out.push(HEX[usize::from(b & 0xF)]);
                }
                char::REPLACEMENT_CHARACTER => out.extend_from_slice(b"\\ufffd"),
                c => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
            }
        }
        for _ in chunk.invalid() {
            out.extend_from_slice(b"\\ufffd");
        }
    }
    out.push(b'"');
}

/// Loki's `deduplicatePlaceholders`: a run of `<_><_>...` prints as one `<_>`. Ported with
/// its loop bounds, so its few misses (a run at the very end of a short line) are kept.
pub(crate) fn deduplicate_placeholders(line: Vec<u8>) -> Vec<u8> {
    let Some(first) = memchr::memmem::find(&line, b"<_><_>") else {
        return line;
    };
    let n = line.len();
    let mut out = Vec::with_capacity(n);
    let mut low = 0;
    let mut i = first;
    while i + 5 < n {
        if &line[i..i + 3] == PARAM {
            let mut high = i + 3;
            while high + 2 < n && &line[high..high + 3] == PARAM {
                high += 3;
            }
            out.extend_from_slice(&line[low..i + 3]);
            low = high;
            i = high;
        }
        i += 1;
    }
    out.extend_from_slice(&line[low..]);
    out
}

/// Go's `unicode.IsLetter`.
fn is_letter(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_alphabetic();
    }
    static LETTERS: OnceLock<Vec<(char, char)>> = OnceLock::new();
    in_class(LETTERS.get_or_init(|| unicode_class(r"\p{L}")), c)
}

/// Go's `unicode.IsNumber` (also what Drain's `hasNumbers` tests).
pub(crate) fn is_number(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_digit();
    }
    static NUMBERS: OnceLock<Vec<(char, char)>> = OnceLock::new();
    in_class(NUMBERS.get_or_init(|| unicode_class(r"\p{N}")), c)
}

/// Go's `unicode.IsPunct`: Unicode category P. In ASCII that leaves out the symbols
/// `$ + < = > ^ \` | ~`, which is why `<_>` stays one token.
fn is_punct(c: char) -> bool {
    if c.is_ascii() {
        return matches!(
            c,
            '!' | '"'
                | '#'
                | '%'
                | '&'
                | '\''
                | '('
                | ')'
                | '*'
                | ','
                | '-'
                | '.'
                | '/'
                | ':'
                | ';'
                | '?'
                | '@'
                | '['
                | '\\'
                | ']'
                | '_'
                | '{'
                | '}'
        );
    }
    static PUNCT: OnceLock<Vec<(char, char)>> = OnceLock::new();
    in_class(PUNCT.get_or_init(|| unicode_class(r"\p{P}")), c)
}

/// The ranges of a Unicode general category, from the tables the regex crate ships.
fn unicode_class(category: &str) -> Vec<(char, char)> {
    match regex_syntax::parse(category) {
        Ok(hir) => match hir.kind() {
            HirKind::Class(Class::Unicode(class)) => class
                .ranges()
                .iter()
                .map(|r| (r.start(), r.end()))
                .collect(),
            _ => Vec::new(),
        },
        Err(_) => Vec::new(),
    }
}

fn in_class(ranges: &[(char, char)], c: char) -> bool {
    ranges
        .binary_search_by(|&(lo, hi)| {
            if hi < c {
                std::cmp::Ordering::Less
            } else if lo > c {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cut(format: LogFormat, line: &str) -> Option<(Vec<String>, Vec<i32>)> {
        let mut out = Tokens::default();
        if !tokenize(format, line, 3000, &mut out) {
            return None;
        }
        Some((
            out.tokens
                .iter()
                .map(|t| String::from_utf8_lossy(t).into_owned())
                .collect(),
            out.spaces_after.clone(),
        ))
    }

    fn boxed(tokens: &[&str]) -> Vec<Box<[u8]>> {
        tokens.iter().map(|t| t.as_bytes().into()).collect()
    }

    #[test]
    fn formats_are_guessed_from_the_first_line() {
        assert_eq!(detect_log_format(r#"{"a":1}"#), LogFormat::Json);
        assert_eq!(
            detect_log_format(r#"level=info msg="hello world" n=1"#),
            LogFormat::Logfmt
        );
        assert_eq!(detect_log_format("a=1"), LogFormat::Logfmt);
        assert_eq!(detect_log_format("hello a=1"), LogFormat::Unknown);
        assert_eq!(detect_log_format("x"), LogFormat::Unknown);
        assert_eq!(
            detect_log_format("081109 203615 INFO dfs"),
            LogFormat::Unknown
        );
    }

    #[test]
    fn plain_lines_split_at_spaces_equals_and_punctuation() {
        let (tokens, spaces) =
            cut(LogFormat::Unknown, "level=info msg(a_b-c.d:e/f), done").unwrap();
        assert_eq!(
            tokens,
            [
                "level",
                "=",
                "info",
                "msg",
                "(",
                "a_b-c.d:e/f",
                ")",
                ",",
                "done"
            ]
        );
        assert_eq!(spaces, [2, 7]);
        let (tokens, _) = cut(LogFormat::Unknown, "a <_> $b+c").unwrap();
        assert_eq!(tokens, ["a", "<_>", "$b+c"]);
        let (_, spaces) = cut(LogFormat::Unknown, " a  b").unwrap();
        assert_eq!(spaces, [-1, 0, 0]);
    }

    #[test]
    fn plain_patterns_print_with_their_spaces() {
        let tokens = boxed(&["a", "=", "<_>", "b", "<_>", "<_>", "c"]);
        assert_eq!(
            join(LogFormat::Unknown, &tokens, &[2, 3, 5]),
            "a=<_> b <_> c"
        );
        // The `-1` of a leading space blocks every later space, as in Loki.
        assert_eq!(
            join(LogFormat::Unknown, &boxed(&["a", "b"]), &[-1, 0]),
            "ab"
        );
    }

    #[test]
    fn logfmt_lines_are_pairs_with_time_values_hidden() {
        let (tokens, _) = cut(
            LogFormat::Logfmt,
            r#"ts=2024-01-01T00:00:00Z level=info msg="a b""#,
        )
        .unwrap();
        assert_eq!(tokens, ["ts", "<_>", "level", "info", "msg", "a b"]);
        assert!(cut(LogFormat::Logfmt, r#"a="unterminated"#).is_none());
        let tokens = boxed(&["ts", "<_>", "msg", "a \"b\"", "empty", ""]);
        assert_eq!(
            join(LogFormat::Logfmt, &tokens, &[]),
            r#"ts=<_> msg="a \"b\"" empty="#
        );
        assert_eq!(join(LogFormat::Logfmt, &boxed(&["bad key", "v"]), &[]), "");
        assert_eq!(join(LogFormat::Logfmt, &boxed(&["k"]), &[]), "k=");
    }

    #[test]
    fn json_lines_mine_their_message() {
        let (tokens, _) = cut(LogFormat::Json, r#"{"level":"info","msg":"took 5ms"}"#).unwrap();
        assert_eq!(tokens, ["took", "5ms"]);
        // `message` comes before `msg` in Loki's list, wherever it is in the line.
        let (tokens, _) = cut(LogFormat::Json, r#"{"msg":"took 5ms","message":"other"}"#).unwrap();
        assert_eq!(tokens, ["other"]);
        assert!(cut(LogFormat::Json, r#"{"level":"info"}"#).is_none());
        assert!(cut(LogFormat::Json, r#"{"msg":5}"#).is_none());
        assert_eq!(
            join(LogFormat::Json, &boxed(&["took", "<_>"]), &[0]),
            "<_>took <_>"
        );
    }

    #[test]
    fn long_lines_are_not_mined() {
        let line = "a ".repeat(2000);
        assert!(cut(LogFormat::Unknown, &line).is_none());
    }

    #[test]
    fn placeholder_runs_collapse() {
        let dedup = |s: &str| String::from_utf8(deduplicate_placeholders(s.into())).unwrap();
        assert_eq!(dedup("<_><_><_> a <_><_>b"), "<_> a <_>b");
        assert_eq!(dedup("abc <_> d"), "abc <_> d");
        assert_eq!(dedup("x<_><_><_>y"), "x<_>y");
        assert_eq!(dedup(&"<_>".repeat(50)), "<_>");
        assert_eq!(dedup(&"<_> ".repeat(20)), "<_> ".repeat(20));
        assert_eq!(
            dedup(&format!("{} ", "<_>".repeat(7)).repeat(9)),
            "<_> ".repeat(9)
        );
        assert_eq!(dedup("<<<_><_><_>>>"), "<<<_>>>");
        assert_eq!(dedup("<_><<_>"), "<_><<_>");
        assert_eq!(
            dedup(&format!("{}<_><_>", "B".repeat(40))),
            format!("{}<_>", "B".repeat(40))
        );
    }

    #[test]
    fn unicode_classes_follow_go() {
        assert!(is_punct('«') && is_punct('、') && !is_punct('$') && !is_punct('<'));
        assert!(is_letter('é') && is_letter('字') && !is_letter('1'));
        assert!(is_number('٣') && is_number('½') && !is_number('a'));
        // A multi-byte punctuation character is cut after its first byte, as in Go.
        let (tokens, _) = cut(LogFormat::Unknown, "a«b").unwrap();
        assert_eq!(tokens.len(), 3);
    }
}

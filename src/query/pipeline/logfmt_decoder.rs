//! The logfmt decoder of Loki's `logfmt` stage (pkg/logql/log/logfmt/decode.go, adapted
//! from go-logfmt), with its error positions and messages.
//!
//! Which question it answers: "what is the next `key=value` of this line?" A key is anything
//! up to `=` or white space; a value is bare (up to white space) or quoted with JSON-like
//! escapes. A bare key without `=` is a key with an empty value. Errors are remembered (the
//! last one wins) and decoding resumes after the offending token; `--strict` stops at the
//! first.

use std::borrow::Cow;
use std::fmt;

use super::text::has_replacement_char;

/// A decoding error: its 1-based byte position and what was wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SyntaxError {
    pub pos: usize,
    pub msg: Cow<'static, str>,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "logfmt syntax error at pos {} : {}", self.pos, self.msg)
    }
}

pub(crate) struct Decoder<'a> {
    line: &'a [u8],
    pos: usize,
    key: Option<&'a [u8]>,
    value: Option<Cow<'a, [u8]>>,
    err: Option<SyntaxError>,
}

impl<'a> Decoder<'a> {
    pub fn new(line: &'a [u8]) -> Decoder<'a> {
        Decoder {
            line,
            pos: 0,
            key: None,
            value: None,
            err: None,
        }
    }

    /// Whether the whole line was read.
    pub fn eol(&self) -> bool {
        self.pos >= self.line.len()
    }

    /// The key of the last pair read.
    pub fn key(&self) -> &'a [u8] {
        self.key.unwrap_or_default()
    }

    /// The value of the last pair read (unquoted, unescaped); empty when there was none.
    pub fn value(&self) -> &[u8] {
        self.value.as_deref().unwrap_or_default()
    }

    /// The last error met.
    pub fn err(&self) -> Option<&SyntaxError> {
        self.err.as_ref()
    }

    fn syntax_error(&mut self, msg: &'static str) {
        self.err = Some(SyntaxError {
            pos: self.pos + 1,
            msg: Cow::Borrowed(msg),
        });
    }

    fn unexpected_byte(&mut self, c: u8) {
        let quoted = match c {
            b'\'' => "'\\''".to_string(),
            c => format!("'{}'", c as char),
        };
        self.err = Some(SyntaxError {
            pos: self.pos + 1,
            msg: Cow::Owned(format!("unexpected {quoted}")),
        });
    }

    /// Skips to the next white space after an error; always false.
    fn skip_value(&mut self) -> bool {
        match self.line[self.pos..].iter().position(|&c| c <= b' ') {
            Some(p) => self.pos += p,
            None => self.pos = self.line.len(),
        }
        false
    }

    /// Reads the next pair. False at the end of the line or on an error (see [`Decoder::err`]).
    pub fn scan_keyval(&mut self) -> bool {
        self.key = None;
        self.value = None;
        let line = self.line;
        // Leading garbage: control characters and spaces.
        match line[self.pos..].iter().position(|&c| c > b' ') {
            Some(p) => self.pos += p,
            None => {
                self.pos = line.len();
                return false;
            }
        }
        // The key.
        let start = self.pos;
        let mut multibyte = false;
        let mut i = self.pos;
        loop {
            let Some(&c) = line.get(i) else {
                self.pos = line.len();
                if self.pos > start {
                    let key = &line[start..];
                    self.key = Some(key);
                    if multibyte && has_replacement_char(key) {
                        self.syntax_error("invalid key");
                        return false;
                    }
                }
                return true;
            };
            if c == b'=' {
                self.pos = i;
                if self.pos > start {
                    let key = &line[start..self.pos];
                    self.key = Some(key);
                    if multibyte && has_replacement_char(key) {
                        self.syntax_error("invalid key");
                        return self.skip_value();
                    }
                }
                if self.key.is_none() {
                    self.unexpected_byte(c);
                    return self.skip_value();
                }
                break;
            } else if c == b'"' {
                self.pos = i;
                self.unexpected_byte(c);
                return self.skip_value();
            } else if c <= b' ' {
                self.pos = i;
                if self.pos > start {
                    let key = &line[start..self.pos];
                    self.key = Some(key);
                    if multibyte && has_replacement_char(key) {
                        self.syntax_error("invalid key");
                        return false;
                    }
                }
                return true;
            } else if c >= 0x80 {
                multibyte = true;
            }
            i += 1;
        }
        // After `=`.
        self.pos += 1;
        let Some(&c) = line.get(self.pos) else {
            return true;
        };
        if c <= b' ' {
            return true;
        }
        if c == b'"' {
            return self.quoted_value();
        }
        let start = self.pos;
        for (p, &c) in line[start..].iter().enumerate() {
            if c == b'=' || c == b'"' {
                self.pos = start + p;
                self.unexpected_byte(c);
                return self.skip_value();
            }
            if c <= b' ' {
                self.pos = start + p;
                if self.pos > start {
                    self.value = Some(Cow::Borrowed(&line[start..self.pos]));
                }
                return true;
            }
        }
        self.pos = line.len();
        if self.pos > start {
            self.value = Some(Cow::Borrowed(&line[start..]));
        }
        true
    }

    fn quoted_value(&mut self) -> bool {
        let line = self.line;
        let start = self.pos;
        let (mut has_escape, mut escaped) = (false, false);
        for (p, &c) in line[start + 1..].iter().enumerate() {
            if escaped {
                escaped = false;
            } else if c == b'\\' {
                has_escape = true;
                escaped = true;
            } else if c == b'"' {
                self.pos = start + p + 2;
                if has_escape {
                    match unquote(&line[start..self.pos]) {
                        Some(v) => self.value = Some(Cow::Owned(v)),
                        None => {
                            self.syntax_error("invalid quoted value");
                            return false;
                        }
                    }
                } else if self.pos - 1 > start + 1 {
                    self.value = Some(Cow::Borrowed(&line[start + 1..self.pos - 1]));
                }
                return true;
            }
        }
        self.pos = line.len();
        self.syntax_error("unterminated quoted value");
        false
    }
}

/// Four hex digits after `\u` (Go's `getu4`).
fn getu4(s: &[u8]) -> Option<u32> {
    if s.len() < 6 || s[0] != b'\\' || s[1] != b'u' {
        return None;
    }
    let hex = std::str::from_utf8(&s[2..6]).ok()?;
    u32::from_str_radix(hex, 16)
        .ok()
        .filter(|_| !hex.starts_with('+'))
}

/// Unquotes a quoted value with escapes (logfmt's `unquoteBytes`, from encoding/json): the
/// JSON escapes plus `\'`; an invalid escape or surrogate pair is refused or replaced as Go
/// does.
fn unquote(s: &[u8]) -> Option<Vec<u8>> {
    let inner = s.strip_prefix(b"\"")?.strip_suffix(b"\"")?;
    let mut out = Vec::with_capacity(inner.len());
    let mut r = 0;
    while r < inner.len() {
        match inner[r] {
            b'\\' => {
                r += 1;
                let c = *inner.get(r)?;
                let simple = match c {
                    b'"' | b'\\' | b'/' | b'\'' => Some(c),
                    b'b' => Some(0x08),
                    b'f' => Some(0x0c),
                    b'n' => Some(b'\n'),
                    b'r' => Some(b'\r'),
                    b't' => Some(b'\t'),
                    b'u' => None,
                    _ => return None,
                };
                if let Some(b) = simple {
                    out.push(b);
                    r += 1;
                    continue;
                }
                r -= 1;
                let mut code = getu4(&inner[r..])?;
                r += 6;
                if (0xD800..0xE000).contains(&code) {
                    let low = getu4(&inner[r..]);
                    match low {
                        Some(low) if code < 0xDC00 && (0xDC00..0xE000).contains(&low) => {
                            code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
                            r += 6;
                        }
                        _ => code = 0xFFFD,
                    }
                }
                let c = char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER);
                out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
            }
            b'"' => return None,
            c => {
                out.push(c);
                r += 1;
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(line: &str) -> (Vec<(String, String)>, Option<String>) {
        let mut dec = Decoder::new(line.as_bytes());
        let mut pairs = Vec::new();
        while !dec.eol() {
            if dec.scan_keyval() {
                pairs.push((
                    String::from_utf8_lossy(dec.key()).into_owned(),
                    String::from_utf8_lossy(dec.value()).into_owned(),
                ));
            }
        }
        (pairs, dec.err().map(|e| e.to_string()))
    }

    fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn pairs_and_values() {
        let (pairs, err) = decode(r#"a=1 b="two words" c d= e="x\ty\u00e9""#);
        assert_eq!(
            pairs,
            p(&[
                ("a", "1"),
                ("b", "two words"),
                ("c", ""),
                ("d", ""),
                ("e", "x\tyé")
            ])
        );
        assert_eq!(err, None);
    }

    #[test]
    fn errors_say_where() {
        let (pairs, err) = decode("foobar====wqe=sdad1r");
        assert_eq!(pairs, p(&[]));
        assert_eq!(
            err.unwrap(),
            "logfmt syntax error at pos 8 : unexpected '='"
        );
        let (pairs, err) = decode(r#"foo="foo bar" bu"zz=10ms"#);
        assert_eq!(pairs, p(&[("foo", "foo bar")]));
        assert_eq!(
            err.unwrap(),
            "logfmt syntax error at pos 17 : unexpected '\"'"
        );
        let (_, err) = decode("foo=\"unterminated");
        assert_eq!(
            err.unwrap(),
            "logfmt syntax error at pos 18 : unterminated quoted value"
        );
        let (_, err) = decode("b\u{fffd}r=1");
        assert_eq!(err.unwrap(), "logfmt syntax error at pos 6 : invalid key");
        let (_, err) = decode(r#"a="\q""#);
        assert_eq!(
            err.unwrap(),
            "logfmt syntax error at pos 7 : invalid quoted value"
        );
    }
}

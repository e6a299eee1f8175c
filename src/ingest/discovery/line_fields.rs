//! A field of a JSON or logfmt line, found without parsing the line into anything: the
//! scanners walk the bytes in place and borrow the value, as Loki's field detection does with
//! `jsonparser` and its logfmt decoder, so that reading a level costs no allocation.
//!
//! Both are lenient in the way Loki's are: they stop at the first byte that does not fit
//! and return what they found before it.

/// Loki's `isJSON`: the first non-space character is `{` and the last is `}`. As in Loki,
/// the first is found by Unicode's white space, the last byte by byte (a byte read as a
/// Latin-1 character).
pub fn is_json(line: &str) -> bool {
    let first = line.trim_start_matches(char::is_whitespace).bytes().next();
    let last = line
        .as_bytes()
        .iter()
        .rev()
        .find(|&&b| !matches!(b, b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | b' ' | 0x85 | 0xa0));
    first == Some(b'{') && last == Some(&b'}')
}

/// The raw (still escaped) value of the first string field, in document order, whose raw
/// key is one of `names`, looking into nested objects up to `depth_max` levels (1: the top
/// level only); as Loki's `getLevelUsingJSONParser`. Arrays are not looked into.
pub fn json_string_field<'a>(line: &'a [u8], names: &[&str], depth_max: usize) -> Option<&'a [u8]> {
    let mut s = Scanner { b: line, at: 0 };
    s.space();
    if s.peek()? != b'{' {
        return None;
    }
    s.object(names, 0, depth_max)
}

struct Scanner<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.at).copied()
    }

    fn space(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    /// At a `"`: the raw content of the string, and moves past its closing quote.
    fn string(&mut self) -> Option<&'a [u8]> {
        debug_assert_eq!(self.peek(), Some(b'"'));
        let start = self.at + 1;
        let mut i = start;
        while i < self.b.len() {
            match self.b[i] {
                b'\\' => i += 2,
                b'"' => {
                    self.at = i + 1;
                    return Some(&self.b[start..i]);
                }
                _ => i += 1,
            }
        }
        None
    }

    /// At a `{`: the first matching field of this object (and of the objects in it while
    /// `depth + 1 < depth_max`), leaving the position anywhere when found.
    fn object(&mut self, names: &[&str], depth: usize, depth_max: usize) -> Option<&'a [u8]> {
        self.at += 1;
        loop {
            self.space();
            match self.peek()? {
                b'}' => {
                    self.at += 1;
                    return None;
                }
                b',' => {
                    self.at += 1;
                    continue;
                }
                b'"' => {}
                _ => return None,
            }
            let key = self.string()?;
            self.space();
            if self.peek()? != b':' {
                return None;
            }
            self.at += 1;
            self.space();
            match self.peek()? {
                b'"' => {
                    let value = self.string()?;
                    if names.iter().any(|n| n.as_bytes() == key) {
                        return Some(value);
                    }
                }
                b'{' if depth + 1 < depth_max => {
                    // A nested object is searched, and passed over when it has no match:
                    // `object` consumed it up to its `}`.
                    if let Some(v) = self.object(names, depth + 1, depth_max) {
                        return Some(v);
                    }
                }
                _ => self.skip_value()?,
            }
        }
    }

    /// Moves past one value that is not searched: an object or array (with the strings in
    /// it), a number or a literal.
    fn skip_value(&mut self) -> Option<()> {
        match self.peek()? {
            b'{' | b'[' => {
                let mut open = 0usize;
                while let Some(b) = self.peek() {
                    match b {
                        b'"' => {
                            self.string()?;
                            continue;
                        }
                        b'{' | b'[' => open += 1,
                        b'}' | b']' => {
                            open -= 1;
                            if open == 0 {
                                self.at += 1;
                                return Some(());
                            }
                        }
                        _ => {}
                    }
                    self.at += 1;
                }
                None
            }
            b'"' => self.string().map(|_| ()),
            _ => {
                while let Some(b) = self.peek() {
                    if matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                        break;
                    }
                    self.at += 1;
                }
                Some(())
            }
        }
    }
}

/// The value of a logfmt field whose key equals one of `names` ignoring ASCII case, the
/// earliest of `names` winning, as Loki's `getValueUsingLogfmtParser` over its logfmt
/// decoder: keys run to `=` or a space, values are bare words or double-quoted strings. A
/// quoted value with escapes is passed over (it is never a bare level word); a byte that
/// breaks the grammar ends the scan with what was found.
pub fn logfmt_field<'a>(line: &'a [u8], names: &[&str]) -> Option<&'a [u8]> {
    let mut best: Option<(usize, &'a [u8])> = None;
    let mut at = 0;
    let n = line.len();
    loop {
        // Garbage before a key: control characters and spaces.
        while at < n && line[at] <= b' ' {
            at += 1;
        }
        if at >= n {
            break;
        }
        let start = at;
        while at < n && line[at] > b' ' && line[at] != b'=' && line[at] != b'"' {
            at += 1;
        }
        if at < n && line[at] == b'"' {
            return best.map(|(_, v)| v);
        }
        let key = &line[start..at];
        let mut value: Option<&'a [u8]> = None;
        if at < n && line[at] == b'=' {
            if key.is_empty() {
                return best.map(|(_, v)| v);
            }
            at += 1;
            if at < n && line[at] == b'"' {
                let vstart = at + 1;
                let mut i = vstart;
                let mut escaped = false;
                loop {
                    if i >= n {
                        // An unterminated quote ends the scan.
                        return best.map(|(_, v)| v);
                    }
                    match line[i] {
                        b'\\' => {
                            escaped = true;
                            i += 2;
                            continue;
                        }
                        b'"' => break,
                        _ => i += 1,
                    }
                }
                if !escaped && i > vstart {
                    value = Some(&line[vstart..i]);
                }
                at = i + 1;
            } else if at < n && line[at] > b' ' {
                let vstart = at;
                while at < n && line[at] > b' ' {
                    if line[at] == b'=' || line[at] == b'"' {
                        return best.map(|(_, v)| v);
                    }
                    at += 1;
                }
                value = Some(&line[vstart..at]);
            }
        }
        let rank = names
            .iter()
            .position(|name| key.eq_ignore_ascii_case(name.as_bytes()));
        if let Some(rank) = rank
            && best.is_none_or(|(r, _)| rank < r)
        {
            // Loki keeps the field's value even when it is empty (none here): an empty one
            // matches no level word either way.
            best = Some((rank, value.unwrap_or_default()));
            if rank == 0 {
                break;
            }
        }
    }
    best.map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAMES: &[&str] = &["level", "lvl"];

    #[test]
    fn json_detection_as_loki_does() {
        assert!(is_json("{}"));
        assert!(is_json(" \t{\"a\":1}\n"));
        assert!(is_json("\u{a0}{}"));
        assert!(!is_json("{"));
        assert!(!is_json("x {}"));
        // A last byte of a multi-byte character is read as Latin-1, as Loki reads it.
        assert!(!is_json("{}\u{a0}"));
    }

    #[test]
    fn json_fields_in_document_order() {
        let f = |l: &str| json_string_field(l.as_bytes(), NAMES, 2).map(|v| v.to_vec());
        assert_eq!(f(r#"{"lvl":"a","level":"b"}"#), Some(b"a".to_vec()));
        assert_eq!(f(r#"{"x":{"level":"n"},"lvl":"t"}"#), Some(b"n".to_vec()));
        assert_eq!(
            f(r#"{"x":[1,{"level":"n"}],"y":"s\"}","lvl":"t"}"#),
            Some(b"t".to_vec())
        );
        assert_eq!(f(r#"{"level":"a\"b"}"#), Some(br#"a\"b"#.to_vec()));
        assert_eq!(
            f(r#"{"level":null,"x":true,"lvl":"z"}"#),
            Some(b"z".to_vec())
        );
        assert_eq!(f(r#"{"level" "x"}"#), None);
        assert_eq!(f(r#"{"a":"b""#), None);
        assert_eq!(json_string_field(br#"{"x":{"level":"n"}}"#, NAMES, 1), None);
    }

    #[test]
    fn logfmt_fields_earliest_name_wins() {
        let f = |l: &str| logfmt_field(l.as_bytes(), NAMES).map(|v| v.to_vec());
        assert_eq!(f("lvl=a level=b"), Some(b"b".to_vec()));
        assert_eq!(f("LEVEL=x"), Some(b"x".to_vec()));
        assert_eq!(f(r#"a="q \"x\"" lvl="w""#), Some(b"w".to_vec()));
        assert_eq!(f("a b c lvl=d"), Some(b"d".to_vec()));
        // A quote inside a key or an unterminated value ends the scan.
        assert_eq!(f(r#"a"b=c lvl=d"#), None);
        assert_eq!(f(r#"lvl=d a="open"#), Some(b"d".to_vec()));
        assert_eq!(f("level="), Some(b"".to_vec()));
        assert_eq!(f("=x level=y"), None);
    }
}

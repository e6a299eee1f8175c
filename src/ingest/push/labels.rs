//! A strict parser for the label set string of protobuf pushes: `{app="foo", env="bar"}`.
//!
//! Which question it answers: "which label pairs does this string name?" The grammar is the
//! equality-only stream selector Loki parses there: optional spaces, `{`, pairs
//! `name = "value"` separated by commas (a trailing comma is allowed, as in PromQL), `}`.
//! Values are double-quoted with the escapes `\"`, `\\`, `\n`, `\t`, `\r`, or backquoted raw
//! strings without escapes. Names are checked by the validation that follows, so that the
//! parser's only job is the syntax; pairs come back in the order written, duplicates included.

use super::validate::echo;
use super::{Rule, Violation};

/// Parses a label set string. Errors name the string and the byte offset, and count as
/// Loki's `invalid_labels`.
pub fn parse_label_set(input: &str) -> Result<Vec<(String, String)>, Violation> {
    Parser {
        s: input.as_bytes(),
        pos: 0,
    }
    .set()
    .map_err(|(pos, what)| {
        Violation::new(
            Rule::InvalidLabels,
            format!(
                "error parsing labels '{}': {what} at byte {pos}",
                echo(input)
            ),
        )
    })
}

type ParseResult<T> = Result<T, (usize, String)>;

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn set(&mut self) -> ParseResult<Vec<(String, String)>> {
        let mut pairs = Vec::new();
        self.spaces();
        self.expect(b'{', "expected '{'")?;
        loop {
            self.spaces();
            if self.eat(b'}') {
                break;
            }
            let name = self.name()?;
            self.spaces();
            self.expect(
                b'=',
                &format!("expected '=' after label name '{}'", echo(&name)),
            )?;
            self.spaces();
            let value = self.value()?;
            pairs.push((name, value));
            self.spaces();
            if self.eat(b'}') {
                break;
            }
            self.expect(b',', "expected ',' or '}' after a label value")?;
        }
        self.spaces();
        if self.pos != self.s.len() {
            return Err((self.pos, "unexpected text after '}'".into()));
        }
        Ok(pairs)
    }

    fn spaces(&mut self) {
        while self
            .s
            .get(self.pos)
            .is_some_and(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        {
            self.pos += 1;
        }
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.s.get(self.pos) == Some(&b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, b: u8, what: &str) -> ParseResult<()> {
        if self.eat(b) {
            Ok(())
        } else {
            Err((self.pos, self.found(what)))
        }
    }

    /// `what`, followed by what was found instead.
    fn found(&self, what: &str) -> String {
        match self.rest_str().chars().next() {
            Some(c) => format!("{what}, found '{}'", c.escape_default()),
            None => format!("{what}, found the end of the string"),
        }
    }

    fn rest_str(&self) -> &str {
        // The input is a &str and `pos` only ever stops after ASCII bytes or at the end of a
        // value scanned by chars, so it is always a char boundary.
        std::str::from_utf8(&self.s[self.pos..]).unwrap_or("")
    }

    /// A label name: the longest run of `[a-zA-Z0-9_]`; its first character is checked by
    /// validation, which reports it with Loki's wording.
    fn name(&mut self) -> ParseResult<String> {
        let start = self.pos;
        while self
            .s
            .get(self.pos)
            .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_')
        {
            self.pos += 1;
        }
        if start == self.pos {
            return Err((self.pos, self.found("expected a label name")));
        }
        Ok(String::from_utf8_lossy(&self.s[start..self.pos]).into_owned())
    }

    fn value(&mut self) -> ParseResult<String> {
        let start = self.pos;
        let raw = match self.s.get(self.pos) {
            Some(b'"') => false,
            Some(b'`') => true,
            _ => return Err((self.pos, self.found("expected a quoted label value"))),
        };
        self.pos += 1;
        let mut out = String::new();
        let mut chars = self.rest_str().char_indices();
        let base = self.pos;
        while let Some((i, c)) = chars.next() {
            match c {
                '`' if raw => {
                    self.pos = base + i + 1;
                    return Ok(out);
                }
                '"' if !raw => {
                    self.pos = base + i + 1;
                    return Ok(out);
                }
                '\\' if !raw => {
                    let escaped = match chars.next() {
                        Some((_, '"')) => '"',
                        Some((_, '\\')) => '\\',
                        Some((_, 'n')) => '\n',
                        Some((_, 't')) => '\t',
                        Some((_, 'r')) => '\r',
                        Some((j, other)) => {
                            return Err((
                                base + j,
                                format!("unknown escape sequence '\\{}'", other.escape_default()),
                            ));
                        }
                        None => break,
                    };
                    out.push(escaped);
                }
                '\n' if !raw => {
                    return Err((base + i, "newline in a quoted label value".into()));
                }
                c => out.push(c),
            }
        }
        Err((start, "unterminated label value".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ok(s: &str) -> Vec<(String, String)> {
        parse_label_set(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn good_label_sets() {
        assert_eq!(
            ok(r#"{app="foo", env="bar"}"#),
            p(&[("app", "foo"), ("env", "bar")])
        );
        assert_eq!(
            ok(r#"{app="foo",env="bar",}"#),
            p(&[("app", "foo"), ("env", "bar")])
        );
        assert_eq!(ok(" { a = \"1\" } "), p(&[("a", "1")]));
        assert_eq!(ok("{}"), p(&[]));
        assert_eq!(ok(r#"{a="q\"b\\s\nn\tt"}"#), p(&[("a", "q\"b\\s\nn\tt")]));
        assert_eq!(ok(r#"{a=`raw\n"`}"#), p(&[("a", "raw\\n\"")]));
        assert_eq!(
            ok(r#"{a="héllo ✓", a="dup"}"#),
            p(&[("a", "héllo ✓"), ("a", "dup")])
        );
        assert_eq!(ok(r#"{a=""}"#), p(&[("a", "")]));
    }

    #[test]
    fn bad_label_sets() {
        for (s, why) in [
            ("", "expected '{'"),
            ("app=\"x\"", "expected '{'"),
            ("{app}", "expected '=' after label name 'app'"),
            ("{app=x}", "expected a quoted label value"),
            ("{app=\"x\"", "expected ',' or '}'"),
            ("{app=\"x", "unterminated label value"),
            ("{app=\"x\\", "unterminated label value"),
            ("{app=\"x\" env=\"y\"}", "expected ',' or '}'"),
            ("{app=\"x\"} extra", "unexpected text after '}'"),
            ("{app=\"\\q\"}", "unknown escape sequence '\\q'"),
            ("{=\"x\"}", "expected a label name"),
            ("{app.name=\"x\"}", "expected '=' after label name 'app'"),
            ("{app!=\"x\"}", "expected '='"),
            ("{app=~\"x\"}", "expected a quoted label value"),
            ("{,}", "expected a label name"),
            ("{a=\"x\n\"}", "newline"),
        ] {
            let e = parse_label_set(s).unwrap_err();
            assert_eq!(e.rule, Rule::InvalidLabels);
            let m = e.to_string();
            assert!(m.starts_with(&format!("error parsing labels '{s}'")), "{m}");
            assert!(m.contains(why), "{s:?}: {m}");
        }
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,40}") {
            let _ = parse_label_set(&s);
        }

        #[test]
        fn never_panics_on_near_misses(s in r#"[{}=",`\\a-c é\n]{0,24}"#) {
            let _ = parse_label_set(&s);
        }

        #[test]
        fn display_roundtrips(pairs in proptest::collection::vec(("[a-zA-Z_][a-zA-Z0-9_]{0,6}", "\\PC{0,10}"), 0..5)) {
            let labels = crate::model::Labels::from_pairs(pairs);
            let parsed = parse_label_set(&labels.to_string()).unwrap();
            prop_assert_eq!(parsed, labels.pairs().to_vec());
        }
    }
}

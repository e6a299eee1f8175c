//! Bytes the parsers cut out of a line, back to text.
//!
//! Which question it answers: "is this slice text, and does it hold U+FFFD?" The scanners
//! work on bytes and cut at ASCII delimiters of a valid UTF-8 line, so their slices are text;
//! the conversions still check, and fall back to a lossy copy rather than trust it. Loki,
//! reading bytes, sees U+FFFD where a line has invalid UTF-8 and replaces it in values; here
//! lines are always valid, and only a literal U+FFFD (or one an escape produced) is replaced.

use std::borrow::Cow;

/// The slice as text, borrowed when it is valid UTF-8 (always, for slices cut at ASCII
/// delimiters of a line).
pub(crate) fn text(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => String::from_utf8_lossy(bytes),
    }
}

/// Whether the bytes hold U+FFFD (EF BF BD).
pub(crate) fn has_replacement_char(bytes: &[u8]) -> bool {
    memchr::memchr_iter(0xEF, bytes).any(|i| bytes[i..].starts_with(&[0xEF, 0xBF, 0xBD]))
}

/// Appends `text` with U+FFFD replaced by a space (Loki's `removeInvalidUtf`).
pub(crate) fn push_without_replacement(out: &mut String, text: &str) {
    if !has_replacement_char(text.as_bytes()) {
        out.push_str(text);
        return;
    }
    out.extend(text.chars().map(|c| {
        if c == char::REPLACEMENT_CHARACTER {
            ' '
        } else {
            c
        }
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replacement_chars() {
        assert!(has_replacement_char("b\u{fffd}r".as_bytes()));
        assert!(!has_replacement_char("é€ ok".as_bytes()));
        let mut out = String::new();
        push_without_replacement(&mut out, "a\u{fffd}b");
        assert_eq!(out, "a b");
        assert_eq!(text(b"\xff"), "\u{fffd}");
    }
}

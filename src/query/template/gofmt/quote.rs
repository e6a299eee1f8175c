//! Go's quoting: `strconv.Quote` and its rune and ASCII forms, `%q`'s backquotes, and the
//! printable runes as `unicode.IsPrint` decides them (approximately).

/// An approximation of Go's `unicode.IsPrint`: letters, marks, numbers, punctuation,
/// symbols and the ASCII space; not controls, other spaces, format characters, private
/// use or noncharacters.
pub(crate) fn is_print(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    let u = u32::from(c);
    !matches!(u,
        0xAD | 0x600..=0x605 | 0x61C | 0x6DD | 0x70F | 0x890..=0x891 | 0x8E2 | 0x180E
        | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x206F | 0xFEFF | 0xFFF9..=0xFFFB
        | 0x110BD | 0x110CD | 0x13430..=0x1343F | 0x1BCA0..=0x1BCA3 | 0x1D173..=0x1D17A
        | 0xE0001 | 0xE0020..=0xE007F | 0xE000..=0xF8FF | 0xF0000..=0xFFFFD
        | 0x100000..=0x10FFFD | 0xFDD0..=0xFDEF)
        && u & 0xFFFE != 0xFFFE
}

/// Go's `strconv.Quote` (or `QuoteToASCII` when `ascii`) with the given quote character.
pub(crate) fn quote_with(s: &str, quote: char, ascii: bool) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        append_escaped_rune(&mut out, c, quote, ascii);
    }
    out.push(quote);
    out
}

/// Go's `strconv.Quote`.
pub(crate) fn quote(s: &str) -> String {
    quote_with(s, '"', false)
}

/// Go's `strconv.QuoteRune` / `QuoteRuneToASCII`.
pub(crate) fn quote_rune(c: char, ascii: bool) -> String {
    let mut out = String::from("'");
    append_escaped_rune(&mut out, c, '\'', ascii);
    out.push('\'');
    out
}

pub(super) fn append_escaped_rune(out: &mut String, c: char, quote: char, ascii: bool) {
    if c == quote || c == '\\' {
        out.push('\\');
        out.push(c);
        return;
    }
    if ascii {
        if c.is_ascii() && is_print(c) {
            out.push(c);
            return;
        }
    } else if is_print(c) {
        out.push(c);
        return;
    }
    match c {
        '\x07' => out.push_str("\\a"),
        '\x08' => out.push_str("\\b"),
        '\x0c' => out.push_str("\\f"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\x0b' => out.push_str("\\v"),
        c if (c as u32) < 0x20 || c == '\x7f' => out.push_str(&format!("\\x{:02x}", c as u32)),
        c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
        c => out.push_str(&format!("\\U{:08x}", c as u32)),
    }
}

/// Go's `strconv.CanBackquote`.
pub(crate) fn can_backquote(s: &str) -> bool {
    s.chars()
        .all(|c| c != '`' && c != '\u{FEFF}' && (c == '\t' || !c.is_control() || c as u32 > 0x9f))
        && !s.contains('\u{7f}')
}

/// Go's `%.10q` for lexer items: at most ten runes, quoted, then `...`.
pub(crate) fn quote_truncated(s: &str, runes: usize) -> String {
    match s.char_indices().nth(runes) {
        Some((i, _)) => format!("{}...", quote(&s[..i])),
        None => quote(s),
    }
}

/// Go's `%#U`: `U+0041 'A'`, the quoted rune only when printable.
pub(crate) fn unicode_notation(c: char) -> String {
    if is_print(c) {
        format!("U+{:04X} '{c}'", c as u32)
    } else {
        format!("U+{:04X}", c as u32)
    }
}

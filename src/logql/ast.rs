//! The syntax tree of a parsed query and its canonical printing (Loki's `String()` form:
//! `{app="foo", env!="dev"} |= "error" != "timeout"`).

use std::fmt::{self, Write};

use super::matchers::{FilterOperand, LabelMatcher, LineFilter};

/// A parsed LogQL query. Metric queries will become further variants.
#[derive(Clone, Debug)]
pub enum Expr {
    /// A log query: it returns log lines.
    Log(LogExpr),
}

/// A log query: a selector with its line filters. Pipeline stages (`| json`, label filters,
/// `line_format`, ...) will be added here, after the selector's own line filters.
#[derive(Clone, Debug)]
pub struct LogExpr {
    pub selector: LogSelector,
}

/// A stream selector and the line filters that follow it directly. Everything in it is
/// compiled and `Send + Sync`, so one instance is shared by all cores.
#[derive(Clone, Debug, Default)]
pub struct LogSelector {
    /// Which streams: every matcher must match the stream's labels.
    pub matchers: Vec<LabelMatcher>,
    /// Which lines: every filter must match, in this order.
    pub filters: Vec<LineFilter>,
}

impl LogSelector {
    /// Whether a stream with these labels is selected. `get` looks a label up by name.
    pub fn matches_labels<'a>(&self, get: impl Fn(&str) -> Option<&'a str>) -> bool {
        self.matchers.iter().all(|m| m.matches(get(&m.name)))
    }

    /// Whether a line passes every line filter.
    #[inline]
    pub fn matches_line(&self, line: &[u8]) -> bool {
        self.filters.iter().all(|f| f.matches(line))
    }

    /// Whether lines need to be looked at at all (no filters: every line passes).
    pub fn has_line_filters(&self) -> bool {
        !self.filters.is_empty()
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Log(e) => e.fmt(f),
        }
    }
}

impl fmt::Display for LogExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.selector.fmt(f)
    }
}

impl fmt::Display for LogSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_char('{')?;
        for (i, m) in self.matchers.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}{}{}", m.name, m.op.as_str(), Quoted(&m.value))?;
        }
        f.write_char('}')?;
        for filter in &self.filters {
            write!(f, " {filter}")?;
        }
        Ok(())
    }
}

impl fmt::Display for LineFilter {
    /// `|= "a" or ip("10.0.0.0/8")`: the operator once, the operands joined by `or`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.op().as_str())?;
        for (i, operand) in self.operands().iter().enumerate() {
            f.write_str(if i == 0 { " " } else { " or " })?;
            match operand {
                FilterOperand::Literal(s) => write!(f, "{}", Quoted(s))?,
                FilterOperand::Ip(s) => write!(f, "ip({})", Quoted(s))?,
            }
        }
        Ok(())
    }
}

/// Displays a string as Go's `strconv.Quote` does.
struct Quoted<'a>(&'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_char('"')?;
        for c in self.0.chars() {
            match c {
                '"' => f.write_str("\\\"")?,
                '\\' => f.write_str("\\\\")?,
                '\x07' => f.write_str("\\a")?,
                '\x08' => f.write_str("\\b")?,
                '\x0c' => f.write_str("\\f")?,
                '\n' => f.write_str("\\n")?,
                '\r' => f.write_str("\\r")?,
                '\t' => f.write_str("\\t")?,
                '\x0b' => f.write_str("\\v")?,
                c if (c as u32) < 0x20 || c == '\x7f' => write!(f, "\\x{:02x}", c as u32)?,
                c if !is_go_printable(c) && (c as u32) < 0x10000 => {
                    write!(f, "\\u{:04x}", c as u32)?
                }
                c if !is_go_printable(c) => write!(f, "\\U{:08x}", c as u32)?,
                c => f.write_char(c)?,
            }
        }
        f.write_char('"')
    }
}

/// An approximation of Go's `strconv.IsPrint` without Unicode tables: control characters,
/// spaces other than U+0020 and the common invisible format characters are not printable.
fn is_go_printable(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    !(c.is_control()
        || c.is_whitespace()
        || matches!(c, '\u{ad}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}')
        || matches!(c, '\u{2060}'..='\u{2064}' | '\u{feff}' | '\u{fff9}'..='\u{fffb}'))
}

/// Quotes a string the way Go's `strconv.Quote` does, as Loki prints string literals.
pub fn quote_go(s: &str) -> String {
    Quoted(s).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_follows_go() {
        assert_eq!(quote_go("plain"), r#""plain""#);
        assert_eq!(quote_go("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(quote_go("\n\t\x01\x7f"), r#""\n\t\x01\x7f""#);
        assert_eq!(quote_go("é😀"), "\"é😀\"");
        assert_eq!(quote_go("\u{a0}\u{feff}"), r#""\u00a0\ufeff""#);
    }
}

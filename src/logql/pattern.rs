//! Loki's pattern syntax (`<ip> - <_> "<method> <path>"`), for the pattern line filter
//! (`|> "<_> error <_>"`) and the `| pattern` parser stage: which patterns are valid, and
//! whether a line matches a line-filter pattern the way Loki's pattern package tests it.
//!
//! Syntax: `<name>` where name is `[A-Za-z_][A-Za-z0-9_]*` is a capture (`<_>` captures
//! without a name); anything else is literal text (`<1_>`, `<foo >` and `<>` are literals).
//! Line filters accept only the unnamed capture `<_>`, and never two captures in a row; the
//! parser stage needs at least one named capture, each name once, and never two captures in a
//! row.

/// One piece of a pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PatternNode {
    /// Text that must appear as written.
    Literal(Vec<u8>),
    /// `<name>`, or `<_>` (named `_`) which matches without extracting.
    Capture(String),
}

pub(crate) use PatternNode as Node;

/// The pieces of a pattern, adjacent literal bytes merged. Every text is a pattern; whether
/// it is a valid one depends on its use (see [`check_parser_pattern`]).
pub fn pattern_nodes(pattern: &str) -> Vec<PatternNode> {
    parse_nodes(pattern.as_bytes())
}

/// Loki's checks of a `| pattern "..."` stage (`pattern.New`): at least one named capture,
/// no two captures in a row, no name twice.
pub(crate) fn check_parser_pattern(pattern: &str) -> Result<(), String> {
    let nodes = parse_nodes(pattern.as_bytes());
    let names: Vec<&str> = nodes
        .iter()
        .filter_map(|n| match n {
            Node::Capture(name) if name != "_" => Some(name.as_str()),
            _ => None,
        })
        .collect();
    if names.is_empty() {
        return Err("at least one capture is required".into());
    }
    check_no_consecutive_captures(&nodes)?;
    for (i, name) in names.iter().enumerate() {
        if names[..i].contains(name) {
            return Err(format!(
                "duplicate capture name ({name}): invalid expression"
            ));
        }
    }
    Ok(())
}

fn check_no_consecutive_captures(nodes: &[Node]) -> Result<(), String> {
    for pair in nodes.windows(2) {
        if let [Node::Capture(a), Node::Capture(b)] = pair {
            return Err(format!(
                "found consecutive capture '<{a}><{b}>': invalid expression"
            ));
        }
    }
    Ok(())
}

#[derive(Clone, Debug)]
pub(crate) struct LinePattern {
    nodes: Vec<Node>,
    finders: Vec<Option<memchr::memmem::Finder<'static>>>,
}

/// Splits a pattern into literals and captures, as Loki's pattern lexer does. Shared with the
/// `pattern` parser stage (`crate::query::pipeline`), which accepts named captures.
pub(crate) fn parse_nodes(pattern: &[u8]) -> Vec<Node> {
    let mut nodes: Vec<Node> = Vec::new();
    let mut i = 0;
    let push_literal = |nodes: &mut Vec<Node>, bytes: &[u8]| {
        if let Some(Node::Literal(prev)) = nodes.last_mut() {
            prev.extend_from_slice(bytes);
        } else {
            nodes.push(Node::Literal(bytes.to_vec()));
        }
    };
    while i < pattern.len() {
        if pattern[i] == b'<' {
            let name_len = pattern[i + 1..]
                .iter()
                .enumerate()
                .take_while(|&(k, &c)| {
                    c == b'_' || c.is_ascii_alphabetic() || (k > 0 && c.is_ascii_digit())
                })
                .count();
            if name_len > 0 && pattern.get(i + 1 + name_len) == Some(&b'>') {
                let name = String::from_utf8_lossy(&pattern[i + 1..i + 1 + name_len]).into_owned();
                nodes.push(Node::Capture(name));
                i += name_len + 2;
                continue;
            }
        }
        push_literal(&mut nodes, &pattern[i..i + 1]);
        i += 1;
    }
    nodes
}

impl LinePattern {
    pub fn parse(pattern: &str) -> Result<LinePattern, String> {
        let nodes = parse_nodes(pattern.as_bytes());
        check_no_consecutive_captures(&nodes)?;
        if let Some(Node::Capture(name)) = nodes
            .iter()
            .find(|n| matches!(n, Node::Capture(name) if name != "_"))
        {
            return Err(format!("named captures are not allowed: found '<{name}>'"));
        }
        let finders = nodes
            .iter()
            .map(|n| match n {
                Node::Literal(l) => Some(memchr::memmem::Finder::new(l).into_owned()),
                Node::Capture(_) => None,
            })
            .collect();
        Ok(LinePattern { nodes, finders })
    }

    /// Loki's `Matcher.Test`: every literal found in order after the previous one; a wildcard
    /// must match at least one byte; a pattern ending in a literal must end the line, one
    /// ending in a wildcard must leave something for it. The empty pattern matches only the
    /// empty line.
    pub fn is_match(&self, line: &[u8]) -> bool {
        if line.is_empty() || self.nodes.is_empty() {
            return line.is_empty() && self.nodes.is_empty();
        }
        let mut off = 0;
        for (i, finder) in self.finders.iter().enumerate() {
            let Some(finder) = finder else { continue };
            let Some(j) = finder.find(&line[off..]) else {
                return false;
            };
            if i != 0 && j == 0 {
                // An empty wildcard, or a literal repeated back to back.
                return false;
            }
            off += j + finder.needle().len();
        }
        let ends_with_capture = matches!(self.nodes.last(), Some(Node::Capture(_)));
        ends_with_capture == (off != line.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, line: &str) -> bool {
        LinePattern::parse(p).unwrap().is_match(line.as_bytes())
    }

    #[test]
    fn syntax_follows_loki() {
        let lit = |s: &str| Node::Literal(s.as_bytes().to_vec());
        let cap = |s: &str| Node::Capture(s.into());
        assert_eq!(
            parse_nodes(b"<foo> bar f <f>"),
            [cap("foo"), lit(" bar f "), cap("f")]
        );
        assert_eq!(parse_nodes(b"<foo"), [lit("<foo")]);
        assert_eq!(parse_nodes(b"<foo ><bar>"), [lit("<foo >"), cap("bar")]);
        assert_eq!(parse_nodes(b"<>"), [lit("<>")]);
        assert_eq!(parse_nodes(b"<_>"), [cap("_")]);
        assert_eq!(parse_nodes(b"<1_>"), [lit("<1_>")]);
    }

    #[test]
    fn matching() {
        assert!(m("<_> bar <_>", "foo bar baz"));
        assert!(!m("<_> bar", "foo bar baz"));
        assert!(m("<_> baz", "foo bar baz"));
        assert!(m("foo <_>", "foo bar baz"));
        assert!(!m("<_> bar <_>", " bar "));
        assert!(m("<_>bar<_>", " bar "));
        assert!(!m("foo <_>", "foo"));
        assert!(m("", ""));
        assert!(!m("", "x"));
        assert!(m("<_>foo<_>", "test foo test"));
    }

    #[test]
    fn refused_patterns() {
        assert_eq!(
            LinePattern::parse("<foo>").unwrap_err(),
            "named captures are not allowed: found '<foo>'"
        );
        assert!(LinePattern::parse("<_><_>").is_err());
    }

    #[test]
    fn parser_patterns_follow_loki() {
        assert!(check_parser_pattern("<ip> - <_> <status>").is_ok());
        for bad in [
            "",
            "<_>",
            "<f><f>",
            "<f> f<d><b>",
            "<f> f<f>",
            "f<f><_>",
            "plain",
        ] {
            assert!(check_parser_pattern(bad).is_err(), "{bad}");
        }
    }
}

//! Compiled label matchers (`name=~"re"`) and line filters (`|= "text"`), the two tests the
//! query path runs millions of times: each is prepared once at parse time (regex compiled,
//! substring finder built, literal-only regexes turned into plain comparisons) and is
//! `Send + Sync`.

use std::fmt;

use memchr::memmem;

use super::ip::IpMatcher;
use super::pattern::LinePattern;
use super::{REGEX_DFA_BYTES_MAX, REGEX_SIZE_BYTES_MAX};

/// The comparison of a label matcher.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatchOp {
    /// `=`
    Eq,
    /// `!=`
    Neq,
    /// `=~`
    Re,
    /// `!~`
    Nre,
}

impl MatchOp {
    pub fn as_str(self) -> &'static str {
        match self {
            MatchOp::Eq => "=",
            MatchOp::Neq => "!=",
            MatchOp::Re => "=~",
            MatchOp::Nre => "!~",
        }
    }
}

/// How a label matcher tests a value, chosen once at compile time.
#[derive(Clone)]
enum ValueTest {
    /// Equality with a string (`=`, and `=~` of a regex without metacharacters).
    Equals(String),
    /// Membership in a set (`=~"a|b|c"`, as Grafana's multi-value variables write it).
    OneOf(Vec<String>),
    Regex(regex::Regex),
}

/// One label matcher of a stream selector.
#[derive(Clone)]
pub struct LabelMatcher {
    pub name: String,
    pub op: MatchOp,
    /// The value as written (the regex source for `=~` and `!~`).
    pub value: String,
    test: ValueTest,
}

impl fmt::Debug for LabelMatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}{:?}", self.name, self.op.as_str(), self.value)
    }
}

impl PartialEq for LabelMatcher {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.op == other.op && self.value == other.value
    }
}

/// Regex metacharacters of the `regex` crate's syntax; a pattern without any is a literal.
const REGEX_META: &[char] = &[
    '\\', '.', '+', '*', '?', '(', ')', '|', '[', ']', '{', '}', '^', '$',
];

fn is_regex_literal(re: &str) -> bool {
    !re.contains(REGEX_META)
}

/// Compiles a regex with the named size limits, so that a hostile pattern is an error and not
/// an allocation of gigabytes.
pub(crate) fn build_regex(pattern: &str) -> Result<regex::Regex, String> {
    regex::RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_BYTES_MAX)
        .dfa_size_limit(REGEX_DFA_BYTES_MAX)
        .build()
        .map_err(|e| regex_error(e, pattern))
}

fn build_bytes_regex(pattern: &str) -> Result<regex::bytes::Regex, String> {
    regex::bytes::RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_BYTES_MAX)
        .dfa_size_limit(REGEX_DFA_BYTES_MAX)
        .build()
        .map_err(|e| regex_error(e, pattern))
}

fn regex_error(e: regex::Error, pattern: &str) -> String {
    match e {
        regex::Error::CompiledTooBig(limit) => format!(
            "regular expression {pattern:?} is too complex: its compiled form exceeds {limit} bytes"
        ),
        e => format!("error parsing regexp {pattern:?}: {e}"),
    }
}

impl LabelMatcher {
    /// Compiles a matcher. Regexes are anchored at both ends, as in Prometheus.
    pub fn new(name: &str, op: MatchOp, value: &str) -> Result<LabelMatcher, String> {
        let test = match op {
            MatchOp::Eq | MatchOp::Neq => ValueTest::Equals(value.to_string()),
            // Text without metacharacters is always a valid regex: no need to compile it.
            MatchOp::Re | MatchOp::Nre if is_regex_literal(value) => {
                ValueTest::Equals(value.to_string())
            }
            MatchOp::Re | MatchOp::Nre if value.split('|').all(is_regex_literal) => {
                ValueTest::OneOf(value.split('|').map(str::to_string).collect())
            }
            MatchOp::Re | MatchOp::Nre => ValueTest::Regex(
                build_regex(&format!("^(?s:{value})$"))
                    .map_err(|e| format!("invalid matcher {name}{}{value:?}: {e}", op.as_str()))?,
            ),
        };
        Ok(LabelMatcher {
            name: name.to_string(),
            op,
            value: value.to_string(),
            test,
        })
    }

    /// Whether a label value satisfies the matcher. An absent label is the empty string, as
    /// in Prometheus: `{env!="prod"}` selects streams without `env`.
    #[inline]
    pub fn matches(&self, value: Option<&str>) -> bool {
        let v = value.unwrap_or("");
        let hit = match &self.test {
            ValueTest::Equals(s) => s == v,
            ValueTest::OneOf(set) => set.iter().any(|s| s == v),
            ValueTest::Regex(re) => re.is_match(v),
        };
        match self.op {
            MatchOp::Eq | MatchOp::Re => hit,
            MatchOp::Neq | MatchOp::Nre => !hit,
        }
    }
}

/// The operator of a line filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineFilterOp {
    /// `|=`: the line contains the text.
    Contains,
    /// `!=`
    NotContains,
    /// `|~`: the regex matches somewhere in the line.
    Regex,
    /// `!~`
    NotRegex,
    /// `|>`: the line matches the pattern (`<_>` is a wildcard).
    Pattern,
    /// `!>`
    NotPattern,
}

impl LineFilterOp {
    pub fn as_str(self) -> &'static str {
        match self {
            LineFilterOp::Contains => "|=",
            LineFilterOp::NotContains => "!=",
            LineFilterOp::Regex => "|~",
            LineFilterOp::NotRegex => "!~",
            LineFilterOp::Pattern => "|>",
            LineFilterOp::NotPattern => "!>",
        }
    }

    /// Negative filters keep the lines that the operands do not match.
    pub fn is_negative(self) -> bool {
        matches!(
            self,
            LineFilterOp::NotContains | LineFilterOp::NotRegex | LineFilterOp::NotPattern
        )
    }
}

/// One operand of a line filter, as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FilterOperand {
    /// A string: text, regex or pattern depending on the operator.
    Literal(String),
    /// `ip("192.168.0.0/16")`: an address, a CIDR prefix or a `from-to` range.
    Ip(String),
}

/// How one operand tests a line, chosen once at compile time.
#[derive(Clone)]
enum LineTest {
    /// The empty string is in every line.
    Always,
    /// Boxed: a finder is ~300 bytes and filters hold a vector of tests.
    Substring(Box<memmem::Finder<'static>>),
    Regex(regex::bytes::Regex),
    Pattern(LinePattern),
    Ip(IpMatcher),
}

impl LineTest {
    #[inline]
    fn is_match(&self, line: &[u8]) -> bool {
        match self {
            LineTest::Always => true,
            LineTest::Substring(f) => f.find(line).is_some(),
            LineTest::Regex(re) => re.is_match(line),
            LineTest::Pattern(p) => p.is_match(line),
            LineTest::Ip(ip) => ip.is_match(line),
        }
    }
}

/// One line filter: an operator and one or more operands joined by `or`. A positive filter
/// keeps a line that any operand matches; a negative filter has a single operand (the parser
/// splits `!= "a" or "b"` into `!= "a" != "b"`, as Loki does).
#[derive(Clone)]
pub struct LineFilter {
    op: LineFilterOp,
    operands: Vec<FilterOperand>,
    tests: Vec<LineTest>,
}

impl fmt::Debug for LineFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl PartialEq for LineFilter {
    fn eq(&self, other: &Self) -> bool {
        self.op == other.op && self.operands == other.operands
    }
}

impl LineFilter {
    /// Compiles a filter. Errors name the operand and what is wrong with it.
    pub fn new(op: LineFilterOp, operands: Vec<FilterOperand>) -> Result<LineFilter, String> {
        if operands.is_empty() {
            return Err("a line filter needs an operand".into());
        }
        if op.is_negative() && operands.len() > 1 {
            return Err(format!(
                "{} takes a single operand; write one filter per operand",
                op.as_str()
            ));
        }
        let tests = operands
            .iter()
            .map(|operand| compile_operand(op, operand))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(LineFilter {
            op,
            operands,
            tests,
        })
    }

    pub fn op(&self) -> LineFilterOp {
        self.op
    }

    pub fn operands(&self) -> &[FilterOperand] {
        &self.operands
    }

    /// Whether the filter keeps this line.
    #[inline]
    pub fn matches(&self, line: &[u8]) -> bool {
        let hit = match self.tests.as_slice() {
            [single] => single.is_match(line),
            tests => tests.iter().any(|t| t.is_match(line)),
        };
        hit != self.op.is_negative()
    }
}

fn compile_operand(op: LineFilterOp, operand: &FilterOperand) -> Result<LineTest, String> {
    match (op, operand) {
        (LineFilterOp::Contains | LineFilterOp::NotContains, FilterOperand::Ip(p)) => {
            Ok(LineTest::Ip(IpMatcher::parse(p)?))
        }
        (_, FilterOperand::Ip(_)) => Err(format!(
            "ip: invalid operation: ip() filters work with |= and !=, not {}",
            op.as_str()
        )),
        (LineFilterOp::Contains | LineFilterOp::NotContains, FilterOperand::Literal(s)) => {
            Ok(substring_test(s))
        }
        (LineFilterOp::Regex | LineFilterOp::NotRegex, FilterOperand::Literal(s)) => {
            if is_regex_literal(s) {
                Ok(substring_test(s))
            } else {
                Ok(LineTest::Regex(build_bytes_regex(s)?))
            }
        }
        (LineFilterOp::Pattern | LineFilterOp::NotPattern, FilterOperand::Literal(s)) => {
            Ok(LineTest::Pattern(LinePattern::parse(s)?))
        }
    }
}

fn substring_test(s: &str) -> LineTest {
    if s.is_empty() {
        LineTest::Always
    } else {
        LineTest::Substring(Box::new(memmem::Finder::new(s.as_bytes()).into_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(s: &str) -> FilterOperand {
        FilterOperand::Literal(s.into())
    }

    #[test]
    fn label_matchers() {
        let m = LabelMatcher::new("app", MatchOp::Eq, "foo").unwrap();
        assert!(m.matches(Some("foo")) && !m.matches(Some("foox")) && !m.matches(None));
        let m = LabelMatcher::new("app", MatchOp::Neq, "foo").unwrap();
        assert!(m.matches(None) && !m.matches(Some("foo")));
        let m = LabelMatcher::new("app", MatchOp::Re, "fo+").unwrap();
        assert!(
            m.matches(Some("foo")) && !m.matches(Some("xfoo")),
            "anchored"
        );
        let m = LabelMatcher::new("app", MatchOp::Re, ".*").unwrap();
        assert!(m.matches(None) && m.matches(Some("a\nb")), "(?s)");
        let m = LabelMatcher::new("app", MatchOp::Nre, "a|b").unwrap();
        assert!(m.matches(Some("c")) && !m.matches(Some("a")) && m.matches(Some("ab")));
        let m = LabelMatcher::new("app", MatchOp::Re, "a|b\\.c").unwrap();
        assert!(m.matches(Some("b.c")) && !m.matches(Some("bxc")));
        assert!(LabelMatcher::new("app", MatchOp::Re, "(").is_err());
        assert!(LabelMatcher::new("app", MatchOp::Re, "\\q").is_err());
    }

    #[test]
    fn hostile_regex_is_refused() {
        let err = LabelMatcher::new("app", MatchOp::Re, "((a{100}){100}){100}").unwrap_err();
        assert!(err.contains("too complex"), "{err}");
        let err = LineFilter::new(LineFilterOp::Regex, vec![lit("(\\w{500}){500}")]).unwrap_err();
        assert!(err.contains("too complex"), "{err}");
    }

    #[test]
    fn line_filters() {
        let f = LineFilter::new(LineFilterOp::Contains, vec![lit("foo"), lit("bar")]).unwrap();
        assert!(f.matches(b"a bar") && f.matches(b"foo") && !f.matches(b"baz"));
        let f = LineFilter::new(LineFilterOp::NotContains, vec![lit("")]).unwrap();
        assert!(!f.matches(b"anything") && !f.matches(b""));
        let f = LineFilter::new(LineFilterOp::Regex, vec![lit("(?i)short")]).unwrap();
        assert!(f.matches(b"this is a shorT line") && !f.matches(b"nope"));
        let f = LineFilter::new(LineFilterOp::NotRegex, vec![lit("f.*b")]).unwrap();
        assert!(f.matches(b"foo") && !f.matches(b"foobar"));
        let f = LineFilter::new(LineFilterOp::Regex, vec![lit("plain")]).unwrap();
        assert!(matches!(f.tests[0], LineTest::Substring(_)));
        assert!(f.matches(b"a plain line"));
        assert!(LineFilter::new(LineFilterOp::Regex, vec![lit("(")]).is_err());
        assert!(
            LineFilter::new(
                LineFilterOp::NotRegex,
                vec![FilterOperand::Ip("1.2.3.4".into())]
            )
            .is_err()
        );
        assert!(LineFilter::new(LineFilterOp::NotContains, vec![lit("a"), lit("b")]).is_err());
    }

    #[test]
    fn compiled_forms_are_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<LabelMatcher>();
        assert_send_sync::<LineFilter>();
    }
}

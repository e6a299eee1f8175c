//! The recursive-descent parser: tokens to [`Expr`], with Loki's error wording.
//!
//! Grammar handled today (Loki's, restricted to log queries):
//! ```text
//! expr      = logExpr | "(" expr ")"
//! logExpr   = selector { lineFilter }
//! selector  = "{" [ matcher { "," matcher } ] "}"
//! matcher   = IDENTIFIER ( "=" | "!=" | "=~" | "!~" ) STRING
//! lineFilter= ( "|=" | "!=" | "|~" | "!~" | "|>" | "!>" ) operand { "or" operand }
//! operand   = STRING | "ip" "(" STRING ")"
//! ```
//! Recognised but not evaluated (answered with [`ParseError::Unsupported`]): metric queries
//! (range and vector aggregations, literals, `vector()`, `label_replace()`), and pipeline
//! stages after `|` (parsers, label filters, formatting, `drop`/`keep`, `decolorize`).

use super::ast::{Expr, LogExpr, LogSelector};
use super::lexer::{STAGE_KEYWORDS, Tok, Token, is_reserved, lex, line_col};
use super::matchers::{FilterOperand, LabelMatcher, LineFilter, LineFilterOp, MatchOp};
use super::{
    LINE_FILTERS_MAX, NESTING_DEPTH_MAX, PIPELINE_STAGES_MAX, ParseError, QUERY_BYTES_MAX,
};

/// Loki's message when a selector could match every stream.
pub const MATCHER_REQUIRED_MSG: &str = "queries require at least one regexp or equality matcher that does not have an empty-compatible value. For instance, app=~\".*\" does not meet this requirement, but app=~\".+\" will";

/// The [`ParseError::Unsupported`] text for metric queries.
const METRIC_QUERIES: &str = "metric queries";

/// Range aggregations, vector aggregations and functions that start a metric query.
const METRIC_FUNCTIONS: [&str; 31] = [
    "count_over_time",
    "rate",
    "rate_counter",
    "bytes_over_time",
    "bytes_rate",
    "avg_over_time",
    "sum_over_time",
    "min_over_time",
    "max_over_time",
    "stdvar_over_time",
    "stddev_over_time",
    "quantile_over_time",
    "first_over_time",
    "last_over_time",
    "absent_over_time",
    "sum",
    "avg",
    "min",
    "max",
    "stddev",
    "stdvar",
    "count",
    "topk",
    "bottomk",
    "sort",
    "sort_desc",
    "approx_topk",
    "label_replace",
    "vector",
    "variants",
    "count_values",
];

/// Parses a query as Loki's `ParseExpr` does, including the requirement that a selector have
/// at least one matcher that cannot match the empty string.
pub fn parse_expr(q: &str) -> Result<Expr, ParseError> {
    let expr = parse_unvalidated(q)?;
    match &expr {
        Expr::Log(log) => validate_matchers(&log.selector.matchers)?,
        Expr::Sample(_) => return Err(ParseError::Unsupported(METRIC_QUERIES.into())),
    }
    Ok(expr)
}

/// Parses a log query (selector and line filters), as Loki's `ParseLogSelector`. With
/// `validate`, the selector must have a matcher that cannot match the empty string.
pub fn parse_log_selector(q: &str, validate: bool) -> Result<LogSelector, ParseError> {
    let expr = match parse_unvalidated(q) {
        Err(ParseError::Unsupported(what)) if what == METRIC_QUERIES => {
            return Err(ParseError::Invalid("only log selector is supported".into()));
        }
        other => other?,
    };
    let Expr::Log(log) = expr else {
        return Err(ParseError::Invalid("only log selector is supported".into()));
    };
    if validate {
        validate_matchers(&log.selector.matchers)?;
    }
    Ok(log.selector)
}

/// Parses a bare selector `{...}` as Loki's `ParseMatchers` (used by `match[]` of `/series`).
pub fn parse_matchers(q: &str, validate: bool) -> Result<Vec<LabelMatcher>, ParseError> {
    let only = || ParseError::Invalid("only label matchers is supported".into());
    let expr = match parse_unvalidated(q) {
        Err(ParseError::Unsupported(_)) => return Err(only()),
        other => other?,
    };
    let Expr::Log(log) = expr else {
        return Err(only());
    };
    if log.selector.has_line_filters() {
        return Err(only());
    }
    if validate {
        validate_matchers(&log.selector.matchers)?;
    }
    Ok(log.selector.matchers)
}

fn validate_matchers(matchers: &[LabelMatcher]) -> Result<(), ParseError> {
    let selective = matchers
        .iter()
        .any(|m| matches!(m.op, MatchOp::Eq | MatchOp::Re) && !m.matches(Some("")));
    if selective {
        Ok(())
    } else {
        Err(ParseError::Invalid(MATCHER_REQUIRED_MSG.into()))
    }
}

fn parse_unvalidated(q: &str) -> Result<Expr, ParseError> {
    if q.len() > QUERY_BYTES_MAX {
        return Err(ParseError::Invalid(format!(
            "query is {} bytes long, more than the {QUERY_BYTES_MAX} bytes allowed",
            q.len()
        )));
    }
    let toks = lex(q)?;
    let mut p = Parser {
        src: q,
        toks,
        pos: 0,
        depth: 0,
    };
    let expr = p.expr()?;
    p.expect_end(&expr, &Tok::Eof)?;
    Ok(expr)
}

struct Parser<'a> {
    src: &'a str,
    toks: Vec<Token>,
    pos: usize,
    depth: usize,
}

impl Parser<'_> {
    fn peek(&self) -> &Tok {
        &self.toks[self.pos].tok
    }

    fn peek_at(&self, ahead: usize) -> &Tok {
        let last = self.toks.len() - 1;
        &self.toks[(self.pos + ahead).min(last)].tok
    }

    fn bump(&mut self) -> Tok {
        let t = self.toks[self.pos].tok.clone();
        if self.pos + 1 < self.toks.len() {
            self.pos += 1;
        }
        t
    }

    /// `syntax error: unexpected X[, expecting Y]` at the current token.
    fn unexpected(&self, expecting: &str) -> ParseError {
        let tok = &self.toks[self.pos];
        let (line, col) = line_col(self.src, tok.pos);
        let mut msg = format!("syntax error: unexpected {}", tok.tok.describe());
        if !expecting.is_empty() {
            msg.push_str(", expecting ");
            msg.push_str(expecting);
        }
        ParseError::Syntax { line, col, msg }
    }

    fn expr(&mut self) -> Result<Expr, ParseError> {
        match self.peek().clone() {
            Tok::LBrace => Ok(Expr::Log(self.log_expr()?)),
            Tok::LParen => {
                self.depth += 1;
                if self.depth > NESTING_DEPTH_MAX {
                    return Err(ParseError::Invalid(format!(
                        "query nests parentheses deeper than {NESTING_DEPTH_MAX} levels"
                    )));
                }
                self.bump();
                let inner = self.expr()?;
                self.expect_end(&inner, &Tok::RParen)?;
                self.bump();
                self.depth -= 1;
                Ok(inner)
            }
            Tok::Ident(name) if self.starts_metric_call(&name) => {
                Err(ParseError::Unsupported(METRIC_QUERIES.into()))
            }
            Tok::Number(_) | Tok::Duration(_) | Tok::Bytes(_) | Tok::Sub | Tok::Add => {
                // Scalar literals and unary signs only appear in metric expressions.
                Err(ParseError::Unsupported(METRIC_QUERIES.into()))
            }
            _ => Err(self.unexpected("")),
        }
    }

    /// Whether a word followed by `(` (or by `by (`/`without (` for aggregations) is a metric
    /// function call, as Loki's lexer decides whether a word is a function keyword.
    fn starts_metric_call(&self, name: &str) -> bool {
        if !METRIC_FUNCTIONS
            .iter()
            .any(|f| f.eq_ignore_ascii_case(name))
        {
            return false;
        }
        match self.peek_at(1) {
            Tok::LParen => true,
            Tok::Ident(kw) => {
                (kw.eq_ignore_ascii_case("by") || kw.eq_ignore_ascii_case("without"))
                    && *self.peek_at(2) == Tok::LParen
            }
            _ => false,
        }
    }

    /// After a complete expression: the closing token must follow. A binary operator after a
    /// log query is Loki's "left leg" error; anything else is a syntax error.
    fn expect_end(&self, expr: &Expr, end: &Tok) -> Result<(), ParseError> {
        let tok = self.peek();
        if tok == end {
            return Ok(());
        }
        if let Some(op) = binary_op(tok) {
            let _ = expr;
            return Err(ParseError::Invalid(format!(
                "unexpected type for left leg of binary operation ({op}): a log query returns \
                 lines, not numbers; wrap it in a range aggregation such as count_over_time"
            )));
        }
        Err(self.unexpected(if *end == Tok::RParen { ")" } else { "" }))
    }

    fn log_expr(&mut self) -> Result<LogExpr, ParseError> {
        let matchers = self.selector()?;
        let filters = self.line_filters()?;
        if *self.peek() == Tok::Pipe {
            return Err(self.pipeline_stage());
        }
        Ok(LogExpr {
            selector: LogSelector { matchers, filters },
            stages: Vec::new(),
        })
    }

    fn selector(&mut self) -> Result<Vec<LabelMatcher>, ParseError> {
        debug_assert_eq!(*self.peek(), Tok::LBrace);
        self.bump();
        let mut matchers = Vec::new();
        if *self.peek() == Tok::RBrace {
            self.bump();
            return Ok(matchers);
        }
        loop {
            matchers.push(self.matcher(matchers.is_empty())?);
            match self.peek() {
                Tok::Comma => {
                    self.bump();
                }
                Tok::RBrace => {
                    self.bump();
                    return Ok(matchers);
                }
                _ => return Err(self.unexpected("} or ,")),
            }
        }
    }

    fn matcher(&mut self, first: bool) -> Result<LabelMatcher, ParseError> {
        let name = match self.peek() {
            Tok::Ident(name) if !is_reserved(name) => name.clone(),
            _ => {
                return Err(self.unexpected(if first {
                    "IDENTIFIER or }"
                } else {
                    "IDENTIFIER"
                }));
            }
        };
        self.bump();
        let op = match self.peek() {
            Tok::Eq => MatchOp::Eq,
            Tok::Neq => MatchOp::Neq,
            Tok::Re => MatchOp::Re,
            Tok::Nre => MatchOp::Nre,
            _ => return Err(self.unexpected("=, !=, =~ or !~")),
        };
        self.bump();
        let Tok::Str(value) = self.peek().clone() else {
            return Err(self.unexpected("STRING"));
        };
        self.bump();
        LabelMatcher::new(&name, op, &value).map_err(ParseError::Invalid)
    }

    /// The line filters after a selector. The limits are checked as the filters are read, so
    /// that an oversized query is refused before the needles and regexes beyond them are
    /// built.
    fn line_filters(&mut self) -> Result<Vec<LineFilter>, ParseError> {
        let mut filters = Vec::new();
        let mut operands_total = 0;
        loop {
            let op = match self.peek() {
                Tok::PipeExact => LineFilterOp::Contains,
                // `!=` is a line filter only before an operand; otherwise it is the
                // comparison operator (an error after a log query, reported by the caller).
                Tok::Neq if self.operand_follows(1) => LineFilterOp::NotContains,
                Tok::PipeMatch => LineFilterOp::Regex,
                Tok::Nre => LineFilterOp::NotRegex,
                Tok::PipePattern => LineFilterOp::Pattern,
                Tok::NotPattern => LineFilterOp::NotPattern,
                _ => return Ok(filters),
            };
            self.bump();
            let mut operands = vec![self.filter_operand()?];
            while matches!(self.peek(), Tok::Ident(w) if w.eq_ignore_ascii_case("or"))
                && self.operand_follows(1)
            {
                self.bump();
                operands.push(self.filter_operand()?);
                check_count(
                    "line filters",
                    operands_total + operands.len(),
                    LINE_FILTERS_MAX,
                )?;
            }
            operands_total += operands.len();
            check_count("line filters", operands_total, LINE_FILTERS_MAX)?;
            let stages = filters.len() + if op.is_negative() { operands.len() } else { 1 };
            check_count("pipeline stages", stages, PIPELINE_STAGES_MAX)?;
            if op.is_negative() {
                // not(a or b) == not(a) and not(b): Loki prints and runs it as a chain.
                for operand in operands {
                    filters.push(LineFilter::new(op, vec![operand]).map_err(ParseError::Invalid)?);
                }
            } else {
                filters.push(LineFilter::new(op, operands).map_err(ParseError::Invalid)?);
            }
        }
    }

    /// Whether the token `ahead` starts a filter operand: a string or `ip(`.
    fn operand_follows(&self, ahead: usize) -> bool {
        match self.peek_at(ahead) {
            Tok::Str(_) => true,
            Tok::Ident(w) => {
                w.eq_ignore_ascii_case("ip") && *self.peek_at(ahead + 1) == Tok::LParen
            }
            _ => false,
        }
    }

    fn filter_operand(&mut self) -> Result<FilterOperand, ParseError> {
        match self.peek().clone() {
            Tok::Str(s) => {
                self.bump();
                Ok(FilterOperand::Literal(s))
            }
            Tok::Ident(w) if w.eq_ignore_ascii_case("ip") && *self.peek_at(1) == Tok::LParen => {
                self.bump();
                self.bump();
                let Tok::Str(s) = self.peek().clone() else {
                    return Err(self.unexpected("STRING"));
                };
                self.bump();
                if *self.peek() != Tok::RParen {
                    return Err(self.unexpected(")"));
                }
                self.bump();
                Ok(FilterOperand::Ip(s))
            }
            _ => Err(self.unexpected("STRING or ip")),
        }
    }

    /// At `|` followed by a stage: every valid stage is unsupported for now; anything else
    /// after `|` is a syntax error.
    fn pipeline_stage(&mut self) -> ParseError {
        self.bump();
        match self.peek().clone() {
            Tok::Ident(w) => {
                let lower = w.to_ascii_lowercase();
                if STAGE_KEYWORDS.contains(&lower.as_str()) {
                    return ParseError::Unsupported(format!("pipeline stages (`| {lower}`)"));
                }
                if is_reserved(&w) {
                    return self.unexpected("");
                }
                match self.peek_at(1) {
                    Tok::Eq
                    | Tok::Neq
                    | Tok::Re
                    | Tok::Nre
                    | Tok::CmpEq
                    | Tok::Gt
                    | Tok::Gte
                    | Tok::Lt
                    | Tok::Lte => ParseError::Unsupported("label filters".into()),
                    _ => {
                        self.bump();
                        self.unexpected("")
                    }
                }
            }
            Tok::LParen => ParseError::Unsupported("label filters".into()),
            _ => self.unexpected(""),
        }
    }
}

/// Refuses a query with more than `max` of `what`, naming the limit.
fn check_count(what: &str, count: usize, max: usize) -> Result<(), ParseError> {
    if count > max {
        let limit = what.replace(' ', "_");
        return Err(ParseError::Invalid(format!(
            "the query has more than {max} {what} ({limit}_max); split it or use fewer, e.g. \
             one regex with alternatives instead of many filters"
        )));
    }
    Ok(())
}

/// The binary operator a token stands for, if any.
fn binary_op(tok: &Tok) -> Option<&'static str> {
    Some(match tok {
        Tok::Add => "+",
        Tok::Sub => "-",
        Tok::Mul => "*",
        Tok::Div => "/",
        Tok::Mod => "%",
        Tok::Pow => "^",
        Tok::CmpEq => "==",
        Tok::Neq => "!=",
        Tok::Gt => ">",
        Tok::Gte => ">=",
        Tok::Lt => "<",
        Tok::Lte => "<=",
        Tok::Ident(w) if w.eq_ignore_ascii_case("or") => "or",
        Tok::Ident(w) if w.eq_ignore_ascii_case("and") => "and",
        Tok::Ident(w) if w.eq_ignore_ascii_case("unless") => "unless",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canonical(q: &str) -> String {
        parse_expr(q).unwrap().to_string()
    }

    #[test]
    fn selectors_and_filters() {
        assert_eq!(canonical(r#"{ foo = "bar" }"#), r#"{foo="bar"}"#);
        assert_eq!(
            canonical(r#"{foo="bar", bar!="baz"} != "bip" !~ ".+bop""#),
            r#"{foo="bar", bar!="baz"} != "bip" !~ ".+bop""#
        );
        assert_eq!(
            canonical(r#"{app="foo"} != "foo" or "bar" or "baz" != "car""#),
            r#"{app="foo"} != "foo" != "bar" != "baz" != "car""#
        );
        assert_eq!(
            canonical(r#"{app="foo"} |= ip("127.0.0.1") or "foo""#),
            r#"{app="foo"} |= ip("127.0.0.1") or "foo""#
        );
        assert_eq!(
            canonical("({app=`a\"b`} |~ `\\d+`)"),
            r#"{app="a\"b"} |~ "\\d+""#
        );
        assert_eq!(
            canonical("{app=\"foo\"}\n# comment\n|= \"x\""),
            r#"{app="foo"} |= "x""#
        );
    }

    #[test]
    fn matcher_requirement() {
        for q in [
            r#"{foo!="bar"}"#,
            r#"{app=~".*"}"#,
            r#"{app=""}"#,
            "{}",
            r#"{a!~"x|y"}"#,
        ] {
            let e = parse_expr(q).unwrap_err();
            assert_eq!(e.message(), MATCHER_REQUIRED_MSG, "{q}");
            assert!(parse_log_selector(q, false).is_ok(), "{q}");
        }
        assert!(parse_expr(r#"{app=~".+", foo!="bar"}"#).is_ok());
    }

    #[test]
    fn syntax_errors_in_loki_wording() {
        let e = parse_expr(r#"{foo="bar"} foo"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            "parse error at line 1, col 13: syntax error: unexpected IDENTIFIER"
        );
        let e = parse_expr(r#"{foo="bar""#).unwrap_err();
        assert_eq!(
            e.message(),
            "syntax error: unexpected $end, expecting } or ,"
        );
        let e = parse_expr(r#"#{app="foo"} | json"#).unwrap_err();
        assert_eq!(e.message(), "syntax error: unexpected $end");
        let e = parse_expr(r#"unk({ foo = "bar" }[5m])"#).unwrap_err();
        assert_eq!(e.message(), "syntax error: unexpected IDENTIFIER");
        let e = parse_expr(r#"{foo="bar"} |= "x" [5m]"#).unwrap_err();
        assert_eq!(e.message(), "syntax error: unexpected RANGE");
        let e = parse_expr(r#"{foo="bar"} + {foo="bar"}"#).unwrap_err();
        assert!(
            e.message()
                .starts_with("unexpected type for left leg of binary operation (+)")
        );
        assert!(parse_expr(r#"{a="b",}"#).is_err());
        assert!(parse_expr(r#"{a="b"} |= "x" or"#).is_err());
        assert!(parse_expr(r#"{a="b"} |= ip("1.2.3.4""#).is_err());
        assert!(parse_expr(r#"{or="b"}"#).is_err());
        assert!(parse_expr(r#"{a="b"} | 5"#).is_err());
        assert!(parse_expr("").is_err());
    }

    #[test]
    fn unsupported_is_distinct() {
        for q in [
            r#"count_over_time({foo="bar"}[5m])"#,
            r#"sum by (x) (rate({foo="bar"}[5m]))"#,
            r#"{foo="bar"} | json"#,
            r#"{foo="bar"} |= "x" | logfmt | level="error""#,
            r#"{foo="bar"} | level="error""#,
            r#"{foo="bar"} | (a="b" or c="d")"#,
            "1 + 1",
        ] {
            assert!(
                matches!(parse_expr(q), Err(ParseError::Unsupported(_))),
                "{q}"
            );
        }
        assert_eq!(
            parse_log_selector(r#"rate({a="b"}[5m])"#, true)
                .unwrap_err()
                .message(),
            "only log selector is supported"
        );
        assert!(parse_matchers(r#"{a="b"} | json"#, true).is_err());
        assert!(parse_matchers(r#"{a="b"} |= "x""#, true).is_err());
        assert_eq!(parse_matchers(r#"{a="b", c=~"d"}"#, true).unwrap().len(), 2);
    }

    #[test]
    fn limits() {
        let deep = format!("{}{{a=\"b\"}}{}", "(".repeat(1000), ")".repeat(1000));
        assert!(matches!(parse_expr(&deep), Err(ParseError::Invalid(_))));
        let long = format!("{{a=\"{}\"}}", "x".repeat(QUERY_BYTES_MAX));
        assert!(matches!(parse_expr(&long), Err(ParseError::Invalid(_))));
    }

    #[test]
    fn selector_matches() {
        let s =
            parse_log_selector(r#"{app="api", env!="dev"} |= "error" != "timeout""#, true).unwrap();
        let labels = [("app", "api"), ("env", "prod")];
        let get = |n: &str| labels.iter().find(|(k, _)| *k == n).map(|(_, v)| *v);
        assert!(s.matches_labels(get));
        assert!(s.matches_line(b"an error happened"));
        assert!(!s.matches_line(b"an error: timeout"));
        assert!(!s.matches_line(b"all good"));
    }

    #[test]
    fn stages_and_filters_are_limited() {
        let chain = |n: usize, filter: &str| format!("{{app=\"a\"}}{}", filter.repeat(n));
        assert!(parse_expr(&chain(PIPELINE_STAGES_MAX, r#" |~ "x.y""#)).is_ok());
        let e = parse_expr(&chain(PIPELINE_STAGES_MAX + 1, r#" |~ "x.y""#)).unwrap_err();
        assert!(matches!(e, ParseError::Invalid(_)), "{e:?}");
        assert!(e.to_string().contains("pipeline_stages_max"), "{e}");
        // A negative `or` chain is run (and counted) as one stage per operand.
        let negative = format!(
            r#"{{app="a"}}{} != "a" or "b""#,
            r#" != "x""#.repeat(PIPELINE_STAGES_MAX - 1)
        );
        assert!(
            parse_expr(&negative)
                .unwrap_err()
                .to_string()
                .contains("pipeline_stages_max")
        );
        // `or` alternatives count as line filters, in one filter or across several.
        let ors = |n: usize| format!(r#"{{app="a"}} |= "a"{}"#, r#" or "b""#.repeat(n));
        assert!(parse_expr(&ors(LINE_FILTERS_MAX - 1)).is_ok());
        let e = parse_expr(&ors(LINE_FILTERS_MAX)).unwrap_err();
        assert!(e.to_string().contains("line_filters_max"), "{e}");
        let split = format!(
            r#"{{app="a"}}{}{}"#,
            r#" |= "a" or "b" or "c""#.repeat(LINE_FILTERS_MAX / 3),
            r#" |= "a" or "b" or "c""#
        );
        assert!(
            parse_expr(&split)
                .unwrap_err()
                .to_string()
                .contains("line_filters_max")
        );
        // The reported query: 14,000 chained regexes, refused without building them.
        let huge = chain(14_000, r#" |~ "a.*b""#);
        assert!(parse_expr(&huge).is_err());
    }

    proptest::proptest! {
        #[test]
        fn never_panics(q in "\\PC{0,64}") {
            let _ = parse_expr(&q);
        }

        #[test]
        fn never_panics_on_logql_like_input(
            q in proptest::collection::vec(
                proptest::sample::select(vec![
                    "{", "}", "(", ")", "[5m]", "[", "]", ",", "=", "!=", "=~", "!~", "|=",
                    "|~", "|>", "!>", "|", "\"a\"", "`b`", "\"", "`", "app", "or", "ip",
                    "json", "sum", "by", "1", "1.5", "5m", "#", "\n", " ", "\\", "+",
                ]),
                0..24,
            )
        ) {
            let q: String = q.concat();
            if let Ok(e) = parse_expr(&q) {
                // What is printed parses back to the same thing.
                let printed = e.to_string();
                let again = parse_expr(&printed).unwrap();
                proptest::prop_assert_eq!(printed, again.to_string());
            }
        }
    }
}

//! The recursive-descent parser: tokens to [`Expr`], accepting and refusing what Loki's
//! grammar (`syntax.y`) and its constructors (`ast.go`) accept and refuse, with Loki's wording.
//!
//! Which question it answers: "is this LogQL, and what does it say?" Grammar, in Loki's terms:
//! ```text
//! expr        = logExpr | metricExpr                       (binary operators join either)
//! logExpr     = selector { lineFilter | "|" stage } | "(" logExpr ")"
//! metricExpr  = rangeOp "(" [NUMBER ","] logRange ")" [grouping]
//!             | vectorOp [grouping] "(" [NUMBER ","] metricExpr ")" [grouping]
//!             | expr binOp ["bool"] [("on"|"ignoring") "(" labels ")" [group_x ["(" labels ")"]]] expr
//!             | ["+"|"-"] NUMBER | "vector" "(" NUMBER ")"
//!             | "label_replace" "(" metricExpr "," STRING "," STRING "," STRING "," STRING ")"
//!             | "(" metricExpr ")"
//! logRange    = selector [pipeline] [unwrap] RANGE [offset]
//!             | selector RANGE [offset] [pipeline] [unwrap]
//!             | "(" selector [pipeline] [unwrap] ")" RANGE [offset] | "(" logRange ")"
//! unwrap      = "|" "unwrap" (IDENTIFIER | convOp "(" IDENTIFIER ")") { "|" labelFilter }
//! ```
//! Binary operators bind as in Prometheus: `or` < `and`/`unless` < comparisons < `+ -` <
//! `* / %` < `^` (right-associative). Label filters bind `or` below `and`; `,` and plain
//! juxtaposition (`a="1" b="2"`) mean `and` with everything after them as their right operand,
//! which is how Loki's generated parser resolves them.
//!
//! Checks Loki makes while building the tree are made here too, at the same point or earlier:
//! compilable regexes (matchers, `regexp`, `label_replace`), valid patterns, parameters of
//! aggregations, which range aggregations take `unwrap` or a grouping, literals on either side
//! of `and`/`or`/`unless`. An expression of literals only is folded into one literal, as
//! Loki does (`1 + 2 * 3` is `7`).
//!
//! Selectors and metric expressions are parsed here; a selector's pipeline (line filters and
//! `|` stages) in [`pipeline`]; binary operators' precedence, modifiers and checks in
//! [`binary`].

use super::ast::{
    BinOp, BinaryExpr, Cardinality, CmpOp, Expr, ExtractParam, Grouping, LabelFilterExpr,
    LabelFormatItem, LabelFormatSource, LabelReplace, LabelSpec, LogExpr, LogRange, LogSelector,
    ParserStage, RangeAggregation, RangeOp, SampleExpr, Stage, Unwrap, UnwrapConversion,
    VectorAggregation, VectorMatching, VectorOp,
};
use super::go_compat::{parse_go_float, parse_go_int};
use super::lexer::{Kw, Tok, Token, lex, line_col};
use super::matchers::{
    FilterOperand, LabelMatcher, LineFilter, LineFilterOp, MatchOp, build_regex,
};
use super::pattern::check_parser_pattern;
use super::{
    LINE_FILTERS_MAX, NESTING_DEPTH_MAX, PIPELINE_STAGES_MAX, ParseError, QUERY_BYTES_MAX,
};

mod binary;
mod pipeline;

use binary::{binary, binary_op, precedence};

/// Loki's message when a selector could match every stream.
pub const MATCHER_REQUIRED_MSG: &str = "queries require at least one regexp or equality matcher that does not have an empty-compatible value. For instance, app=~\".*\" does not meet this requirement, but app=~\".+\" will";

/// Parses a query as Loki's `ParseExpr` does, including the requirement that every selector
/// in it have at least one matcher that cannot match the empty string.
pub fn parse_expr(q: &str) -> Result<Expr, ParseError> {
    let expr = parse_unvalidated(q)?;
    validate_selectors(&expr)?;
    Ok(expr)
}

/// Parses a metric query, as Loki's `ParseSampleExpr` (validated like [`parse_expr`]).
pub fn parse_sample_expr(q: &str) -> Result<SampleExpr, ParseError> {
    match parse_expr(q)? {
        Expr::Sample(e) => Ok(e),
        Expr::Log(_) => Err(ParseError::Invalid(
            "only sample expression supported".into(),
        )),
    }
}

/// Parses a log query (a selector and its pipeline), as Loki's `ParseLogSelector`. With
/// `validate`, the selector must have a matcher that cannot match the empty string.
pub fn parse_log_selector(q: &str, validate: bool) -> Result<LogExpr, ParseError> {
    let Expr::Log(log) = parse_unvalidated(q)? else {
        return Err(ParseError::Invalid("only log selector is supported".into()));
    };
    if validate {
        validate_matchers(&log.selector.matchers)?;
    }
    Ok(log)
}

/// Parses a bare selector `{...}` as Loki's `ParseMatchers` (used by `match[]` of `/series`).
pub fn parse_matchers(q: &str, validate: bool) -> Result<Vec<LabelMatcher>, ParseError> {
    let expr = if validate {
        parse_expr(q)?
    } else {
        parse_unvalidated(q)?
    };
    match expr {
        Expr::Log(log) if log.stages.is_empty() && !log.selector.has_line_filters() => {
            Ok(log.selector.matchers)
        }
        _ => Err(ParseError::Invalid(
            "only label matchers is supported".into(),
        )),
    }
}

/// Loki's check: a selector needs a matcher that the empty string does not satisfy (an
/// absent label), or it would select every stream.
fn validate_matchers(matchers: &[LabelMatcher]) -> Result<(), ParseError> {
    if matchers.iter().any(|m| !m.matches(Some(""))) {
        Ok(())
    } else {
        Err(ParseError::Invalid(MATCHER_REQUIRED_MSG.into()))
    }
}

fn validate_selectors(expr: &Expr) -> Result<(), ParseError> {
    match expr {
        Expr::Log(log) => validate_matchers(&log.selector.matchers),
        Expr::Sample(e) => validate_sample_selectors(e),
    }
}

fn validate_sample_selectors(e: &SampleExpr) -> Result<(), ParseError> {
    match e {
        SampleExpr::Range(r) => validate_matchers(&r.range.log.selector.matchers),
        SampleExpr::Vector(v) => validate_sample_selectors(&v.inner),
        SampleExpr::Binary(b) => {
            validate_sample_selectors(&b.lhs)?;
            validate_sample_selectors(&b.rhs)
        }
        SampleExpr::LabelReplace(l) => validate_sample_selectors(&l.inner),
        SampleExpr::Literal(_) | SampleExpr::VectorLiteral(_) => Ok(()),
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
        stages: 0,
        filter_operands: 0,
    };
    let node = p.expr(0)?;
    if *p.peek() != Tok::Eof {
        return Err(p.unexpected(""));
    }
    Ok(match node {
        Node::Log(log) => Expr::Log(log),
        Node::Sample(e, _) => Expr::Sample(e),
    })
}

/// A parsed expression before it is known where it ends up: a log query is valid at the top
/// and as an operand of a binary operator (where it is refused with Loki's message).
enum Node {
    Log(LogExpr),
    /// A metric expression and the depth of its tree (see [`NESTING_DEPTH_MAX`]).
    Sample(SampleExpr, usize),
}

struct Parser<'a> {
    src: &'a str,
    toks: Vec<Token>,
    pos: usize,
    /// Current recursion depth of the parser.
    depth: usize,
    /// Pipeline stages read so far in the whole query (see [`PIPELINE_STAGES_MAX`]).
    stages: usize,
    /// Line filter operands read so far in the whole query.
    filter_operands: usize,
}

/// A range aggregation's pipeline: the line filters directly after the selector, the other
/// stages and the `unwrap`.
#[derive(Default)]
struct Pipeline {
    filters: Vec<LineFilter>,
    stages: Vec<Stage>,
    unwrap: Option<Unwrap>,
}

impl Pipeline {
    fn is_empty(&self) -> bool {
        self.filters.is_empty() && self.stages.is_empty() && self.unwrap.is_none()
    }
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

    fn expect(&mut self, tok: &Tok, expecting: &str) -> Result<(), ParseError> {
        if self.peek() == tok {
            self.bump();
            Ok(())
        } else {
            Err(self.unexpected(expecting))
        }
    }

    fn expect_str(&mut self) -> Result<String, ParseError> {
        match self.peek().clone() {
            Tok::Str(s) => {
                self.bump();
                Ok(s)
            }
            _ => Err(self.unexpected("STRING")),
        }
    }

    fn expect_ident(&mut self, expecting: &str) -> Result<String, ParseError> {
        match self.peek().clone() {
            Tok::Ident(s) => {
                self.bump();
                Ok(s)
            }
            _ => Err(self.unexpected(expecting)),
        }
    }

    /// One more level of recursion; refused past [`NESTING_DEPTH_MAX`].
    fn enter(&mut self) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > NESTING_DEPTH_MAX {
            return Err(too_deep());
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth -= 1;
    }

    /// Counts pipeline stages and line filter operands against the query's limits, as they
    /// are read, so that an oversized query is refused before what lies beyond is compiled.
    fn count(&mut self, stages: usize, operands: usize) -> Result<(), ParseError> {
        self.stages += stages;
        self.filter_operands += operands;
        check_count("pipeline stages", self.stages, PIPELINE_STAGES_MAX)?;
        check_count("line filters", self.filter_operands, LINE_FILTERS_MAX)
    }

    /// An expression whose binary operators bind at least as tightly as `min_prec`.
    fn expr(&mut self, min_prec: u8) -> Result<Node, ParseError> {
        self.enter()?;
        let mut lhs = self.primary()?;
        while let Some(op) = binary_op(self.peek()) {
            let prec = precedence(op);
            if prec < min_prec {
                break;
            }
            self.bump();
            let (return_bool, matching) = self.binary_modifiers()?;
            let next_min = if op == BinOp::Pow { prec } else { prec + 1 };
            let rhs = self.expr(next_min)?;
            lhs = binary(op, return_bool, matching, lhs, rhs)?;
        }
        self.leave();
        Ok(lhs)
    }

    fn primary(&mut self) -> Result<Node, ParseError> {
        match self.peek().clone() {
            Tok::LBrace => Ok(Node::Log(self.log_expr()?)),
            Tok::LParen => {
                self.bump();
                let inner = self.expr(0)?;
                self.expect(&Tok::RParen, "")?;
                Ok(inner)
            }
            Tok::Number(_) | Tok::Add | Tok::Sub => {
                let value = self.literal()?;
                Ok(Node::Sample(SampleExpr::Literal(value), 1))
            }
            Tok::Kw(Kw::Range(op)) => self.range_aggregation(op),
            Tok::Kw(Kw::Agg(op)) => self.vector_aggregation(op),
            Tok::Kw(Kw::LabelReplace) => self.label_replace(),
            Tok::Kw(Kw::Vector) => self.vector(),
            _ => Err(self.unexpected("")),
        }
    }

    /// `NUMBER`, `+NUMBER` or `-NUMBER`, read as Go's `ParseFloat` reads it.
    fn literal(&mut self) -> Result<f64, ParseError> {
        let negative = match self.peek() {
            Tok::Sub => {
                self.bump();
                true
            }
            Tok::Add => {
                self.bump();
                false
            }
            _ => false,
        };
        let Tok::Number(text) = self.peek().clone() else {
            return Err(self.unexpected("NUMBER"));
        };
        self.bump();
        let value = parse_go_float(&text)
            .map_err(|e| ParseError::Invalid(format!("unable to parse literal as a float: {e}")))?;
        Ok(if negative { -value } else { value })
    }

    /// After `(`: `)` or `IDENTIFIER {"," IDENTIFIER} ")"`.
    fn labels_until_close(&mut self) -> Result<Vec<String>, ParseError> {
        let mut labels = Vec::new();
        if *self.peek() == Tok::RParen {
            self.bump();
            return Ok(labels);
        }
        loop {
            labels.push(self.expect_ident(if labels.is_empty() {
                "IDENTIFIER or )"
            } else {
                "IDENTIFIER"
            })?);
            match self.peek() {
                Tok::Comma => {
                    self.bump();
                }
                Tok::RParen => {
                    self.bump();
                    return Ok(labels);
                }
                _ => return Err(self.unexpected(", or )")),
            }
        }
    }

    /// `by (...)` or `without (...)`, if present.
    fn grouping(&mut self) -> Result<Option<Grouping>, ParseError> {
        let without = match self.peek() {
            Tok::Kw(Kw::By) => false,
            Tok::Kw(Kw::Without) => true,
            _ => return Ok(None),
        };
        self.bump();
        self.expect(&Tok::LParen, "(")?;
        let labels = self.labels_until_close()?;
        Ok(Some(Grouping { without, labels }))
    }

    /// An argument that must be a metric expression: a log query there is a syntax error at
    /// the token after it, as in Loki's grammar.
    fn metric_arg(&mut self) -> Result<(SampleExpr, usize), ParseError> {
        match self.expr(0)? {
            Node::Sample(e, depth) => Ok((e, depth)),
            Node::Log(_) => Err(self.unexpected("")),
        }
    }

    fn range_aggregation(&mut self, op: RangeOp) -> Result<Node, ParseError> {
        self.bump();
        self.expect(&Tok::LParen, "(")?;
        let param_text = match self.peek().clone() {
            Tok::Number(text) => {
                self.bump();
                self.expect(&Tok::Comma, ",")?;
                Some(text)
            }
            _ => None,
        };
        self.enter()?;
        let range = self.log_range()?;
        self.leave();
        self.expect(&Tok::RParen, ")")?;
        let grouping = self.grouping()?;
        // Loki's `newRangeAggregationExpr`: the parameter first, then `validate()`.
        let name = op.as_str();
        let param = match param_text {
            Some(text) if op != RangeOp::QuantileOverTime => {
                return Err(ParseError::Invalid(format!(
                    "parameter {text} not supported for operation {name}"
                )));
            }
            Some(text) => Some(parse_go_float(&text).map_err(|e| {
                ParseError::Invalid(format!("invalid parameter for operation {name}: {e}"))
            })?),
            None if op == RangeOp::QuantileOverTime => {
                return Err(ParseError::Invalid(format!(
                    "parameter required for operation {name}"
                )));
            }
            None => None,
        };
        check_range_aggregation(op, grouping.is_some(), range.unwrap.is_some())?;
        Ok(Node::Sample(
            SampleExpr::Range(RangeAggregation {
                op,
                range,
                param,
                grouping,
            }),
            1,
        ))
    }

    fn vector_aggregation(&mut self, op: VectorOp) -> Result<Node, ParseError> {
        self.bump();
        let before = self.grouping()?;
        self.expect(&Tok::LParen, "(")?;
        let param_text = match (self.peek().clone(), self.peek_at(1)) {
            (Tok::Number(text), Tok::Comma) => {
                self.bump();
                self.bump();
                Some(text)
            }
            _ => None,
        };
        let (inner, depth) = self.metric_arg()?;
        self.expect(&Tok::RParen, "")?;
        let grouping = match before {
            Some(g) => Some(g),
            None => self.grouping()?,
        };
        let name = op.as_str();
        // Loki's `mustNewVectorAggregationExpr`, then the `sort` check of `ParseExpr`.
        let param = match op {
            VectorOp::Topk | VectorOp::Bottomk | VectorOp::ApproxTopk => {
                let Some(text) = param_text else {
                    return Err(ParseError::Invalid(format!(
                        "parameter required for operation {name}"
                    )));
                };
                let k = parse_go_int(&text).map_err(|_| {
                    ParseError::Invalid(format!("invalid parameter {name}({text},"))
                })?;
                if k <= 0 {
                    return Err(ParseError::Invalid(format!(
                        "invalid parameter (must be greater than 0) {name}({text}"
                    )));
                }
                if op == VectorOp::ApproxTopk && grouping.is_some() {
                    return Err(ParseError::Invalid(format!(
                        "grouping not allowed for {name} aggregation"
                    )));
                }
                Some(k)
            }
            _ => {
                if let Some(text) = param_text {
                    return Err(ParseError::Invalid(format!(
                        "unsupported parameter for operation {name}({text},"
                    )));
                }
                None
            }
        };
        if matches!(op, VectorOp::Sort | VectorOp::SortDesc)
            && grouping.as_ref().is_some_and(|g| !g.labels.is_empty())
        {
            return Err(ParseError::Invalid(
                "sort and sort_desc doesn't allow grouping by ".into(),
            ));
        }
        // `by ()` aggregates everything into one series, as no grouping does.
        let grouping = grouping.filter(|g| g.without || !g.labels.is_empty());
        let depth = check_depth(depth + 1)?;
        Ok(Node::Sample(
            SampleExpr::Vector(VectorAggregation {
                op,
                inner: Box::new(inner),
                grouping,
                param,
            }),
            depth,
        ))
    }

    fn label_replace(&mut self) -> Result<Node, ParseError> {
        self.bump();
        self.expect(&Tok::LParen, "(")?;
        let (inner, depth) = self.metric_arg()?;
        let mut strings = [String::new(), String::new(), String::new(), String::new()];
        for s in &mut strings {
            self.expect(&Tok::Comma, ",")?;
            *s = self.expect_str()?;
        }
        self.expect(&Tok::RParen, ")")?;
        let [dst, replacement, src, regex] = strings;
        build_regex(&format!("^(?:{regex})$"))
            .map_err(|e| ParseError::Invalid(format!("invalid regex in label_replace: {e}")))?;
        let depth = check_depth(depth + 1)?;
        Ok(Node::Sample(
            SampleExpr::LabelReplace(Box::new(LabelReplace {
                inner,
                dst,
                replacement,
                src,
                regex,
            })),
            depth,
        ))
    }

    fn vector(&mut self) -> Result<Node, ParseError> {
        self.bump();
        self.expect(&Tok::LParen, "(")?;
        let Tok::Number(text) = self.peek().clone() else {
            return Err(self.unexpected("NUMBER"));
        };
        self.bump();
        self.expect(&Tok::RParen, ")")?;
        let value = parse_go_float(&text).map_err(|e| {
            ParseError::Invalid(format!("unable to parse vectorExpr as a float: {e}"))
        })?;
        Ok(Node::Sample(SampleExpr::VectorLiteral(value), 1))
    }

    fn log_expr(&mut self) -> Result<LogExpr, ParseError> {
        let matchers = self.selector()?;
        let pipeline = self.pipeline(false)?;
        Ok(LogExpr {
            selector: LogSelector {
                matchers,
                filters: pipeline.filters,
            },
            stages: pipeline.stages,
        })
    }

    /// The log range of a range aggregation, in any of the forms Loki's grammar has.
    fn log_range(&mut self) -> Result<LogRange, ParseError> {
        match self.peek() {
            Tok::LBrace => {
                let matchers = self.selector()?;
                let pipeline = self.pipeline(true)?;
                self.range_after_pipeline(matchers, pipeline)
            }
            Tok::LParen => {
                self.enter()?;
                self.bump();
                let range = if *self.peek() == Tok::LParen {
                    // `( logRange )` whose inside starts with a parenthesis itself.
                    let inner = self.log_range()?;
                    self.expect(&Tok::RParen, ")")?;
                    inner
                } else {
                    if *self.peek() != Tok::LBrace {
                        return Err(self.unexpected("{"));
                    }
                    let matchers = self.selector()?;
                    let pipeline = self.pipeline(true)?;
                    if matches!(self.peek(), Tok::Range(_)) {
                        // `( selector ... RANGE ... )`
                        let inner = self.range_after_pipeline(matchers, pipeline)?;
                        self.expect(&Tok::RParen, ")")?;
                        inner
                    } else {
                        // `( selector [pipeline] [unwrap] ) RANGE [offset]`
                        self.expect(&Tok::RParen, ")")?;
                        let Tok::Range(range_ns) = *self.peek() else {
                            return Err(self.unexpected("RANGE"));
                        };
                        self.bump();
                        let offset_ns = self.offset()?;
                        log_range(matchers, pipeline, range_ns, offset_ns)
                    }
                };
                self.leave();
                Ok(range)
            }
            _ => Err(self.unexpected("")),
        }
    }

    /// `RANGE [offset]`, then a pipeline and unwrap if none came before the range.
    fn range_after_pipeline(
        &mut self,
        matchers: Vec<LabelMatcher>,
        before: Pipeline,
    ) -> Result<LogRange, ParseError> {
        let Tok::Range(range_ns) = *self.peek() else {
            return Err(self.unexpected("RANGE"));
        };
        self.bump();
        let offset_ns = self.offset()?;
        let pipeline = if before.is_empty() {
            self.pipeline(true)?
        } else {
            before
        };
        Ok(log_range(matchers, pipeline, range_ns, offset_ns))
    }

    fn offset(&mut self) -> Result<i64, ParseError> {
        if *self.peek() != Tok::Kw(Kw::Offset) {
            return Ok(0);
        }
        self.bump();
        match *self.peek() {
            Tok::Duration(ns) => {
                self.bump();
                Ok(ns)
            }
            _ => Err(self.unexpected("DURATION")),
        }
    }

    fn selector(&mut self) -> Result<Vec<LabelMatcher>, ParseError> {
        self.expect(&Tok::LBrace, "{")?;
        let mut matchers = Vec::new();
        if *self.peek() == Tok::RBrace {
            self.bump();
            return Ok(matchers);
        }
        loop {
            let name = self.expect_ident(if matchers.is_empty() {
                "IDENTIFIER or }"
            } else {
                "IDENTIFIER"
            })?;
            matchers.push(self.matcher(name)?);
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

    /// The operator and value of a matcher whose name was read.
    fn matcher(&mut self, name: String) -> Result<LabelMatcher, ParseError> {
        let op = match self.peek() {
            Tok::Eq => MatchOp::Eq,
            Tok::Neq => MatchOp::Neq,
            Tok::Re => MatchOp::Re,
            Tok::Nre => MatchOp::Nre,
            _ => return Err(self.unexpected("=, !=, =~ or !~")),
        };
        self.bump();
        let value = self.expect_str()?;
        LabelMatcher::new(&name, op, &value).map_err(ParseError::Invalid)
    }
}

fn log_range(
    matchers: Vec<LabelMatcher>,
    pipeline: Pipeline,
    range_ns: i64,
    offset_ns: i64,
) -> LogRange {
    LogRange {
        log: LogExpr {
            selector: LogSelector {
                matchers,
                filters: pipeline.filters,
            },
            stages: pipeline.stages,
        },
        range_ns,
        offset_ns,
        unwrap: pipeline.unwrap,
    }
}

/// Loki's `RangeAggregationExpr.validate`: which operations take a grouping, which need an
/// unwrapped value and which must not have one.
fn check_range_aggregation(op: RangeOp, grouped: bool, unwrapped: bool) -> Result<(), ParseError> {
    use RangeOp::*;
    let name = op.as_str();
    if grouped
        && !matches!(
            op,
            AvgOverTime
                | StddevOverTime
                | StdvarOverTime
                | QuantileOverTime
                | MaxOverTime
                | MinOverTime
                | FirstOverTime
                | LastOverTime
        )
    {
        return Err(ParseError::Invalid(format!(
            "grouping not allowed for {name} aggregation"
        )));
    }
    let ok = if unwrapped {
        !matches!(op, CountOverTime | BytesOverTime | BytesRate)
    } else {
        matches!(
            op,
            BytesOverTime | BytesRate | CountOverTime | Rate | AbsentOverTime
        )
    };
    if ok {
        Ok(())
    } else if unwrapped {
        Err(ParseError::Invalid(format!(
            "invalid aggregation {name} with unwrap"
        )))
    } else {
        Err(ParseError::Invalid(format!(
            "invalid aggregation {name} without unwrap"
        )))
    }
}

/// Refuses a tree deeper than [`NESTING_DEPTH_MAX`]: evaluating and dropping it recurses.
fn check_depth(depth: usize) -> Result<usize, ParseError> {
    if depth > NESTING_DEPTH_MAX {
        return Err(too_deep());
    }
    Ok(depth)
}

fn too_deep() -> ParseError {
    ParseError::Invalid(format!(
        "query nests expressions deeper than {NESTING_DEPTH_MAX} levels (parentheses, function \
         calls, binary operators)"
    ))
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

#[cfg(test)]
#[path = "parser_tests.rs"]
mod tests;

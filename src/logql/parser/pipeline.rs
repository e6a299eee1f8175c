//! The log pipeline's grammar: line filters and `|` stages after a selector (parsers,
//! label filters, formats, `drop`/`keep`, `decolorize`, `unwrap`), with the checks Loki makes
//! while building them. The rest of the grammar is the parent's ([`super`]).

use super::*;

/// Loki's message when `regexp` has no named capture group.
const MISSING_CAPTURE_MSG: &str = "at least one named capture must be supplied";

/// Where a label filter expression stops: after `or` the right operand stops at the next
/// `or`, after `and` at the next `and` or `or`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum FilterLevel {
    Top,
    Or,
    And,
}

impl Parser<'_> {
    /// Line filters and `|` stages after a selector. With `allow_unwrap` (inside a range
    /// aggregation) it ends at `| unwrap ...`, which it reads too.
    pub(super) fn pipeline(&mut self, allow_unwrap: bool) -> Result<Pipeline, ParseError> {
        let mut pipeline = Pipeline::default();
        loop {
            if let Some(op) = line_filter_op(self.peek()) {
                let filters = self.line_filter(op)?;
                if pipeline.stages.is_empty() {
                    pipeline.filters.extend(filters);
                } else {
                    pipeline
                        .stages
                        .extend(filters.into_iter().map(Stage::LineFilter));
                }
                continue;
            }
            if *self.peek() != Tok::Pipe {
                return Ok(pipeline);
            }
            if *self.peek_at(1) == Tok::Kw(Kw::Unwrap) {
                if !allow_unwrap {
                    self.bump();
                    return Err(self.unexpected(""));
                }
                pipeline.unwrap = Some(self.unwrap()?);
                return Ok(pipeline);
            }
            self.bump();
            let stage = self.stage()?;
            pipeline.stages.push(stage);
        }
    }

    /// One line filter: the operator, then operands joined by `or`. A negative filter with
    /// several operands is split into one filter per operand (not(a or b) is not(a) and
    /// not(b)), as Loki runs and prints it.
    fn line_filter(&mut self, op: LineFilterOp) -> Result<Vec<LineFilter>, ParseError> {
        self.bump();
        let mut operands = vec![self.filter_operand()?];
        self.count(0, 1)?;
        while *self.peek() == Tok::Kw(Kw::Or) {
            self.bump();
            operands.push(self.filter_operand()?);
            self.count(0, 1)?;
        }
        if op.is_negative() {
            self.count(operands.len(), 0)?;
            operands
                .into_iter()
                .map(|operand| LineFilter::new(op, vec![operand]).map_err(ParseError::Invalid))
                .collect()
        } else {
            self.count(1, 0)?;
            Ok(vec![
                LineFilter::new(op, operands).map_err(ParseError::Invalid)?,
            ])
        }
    }

    fn filter_operand(&mut self) -> Result<FilterOperand, ParseError> {
        match self.peek().clone() {
            Tok::Str(s) => {
                self.bump();
                Ok(FilterOperand::Literal(s))
            }
            Tok::Kw(Kw::Ip) => Ok(FilterOperand::Ip(self.ip_call()?)),
            _ => Err(self.unexpected("STRING or ip")),
        }
    }

    /// `ip("...")`, at the `ip` keyword.
    fn ip_call(&mut self) -> Result<String, ParseError> {
        self.bump();
        self.expect(&Tok::LParen, "(")?;
        let s = self.expect_str()?;
        self.expect(&Tok::RParen, ")")?;
        Ok(s)
    }

    /// A stage after `|` (the `|` read).
    fn stage(&mut self) -> Result<Stage, ParseError> {
        let stage = match self.peek().clone() {
            Tok::Kw(Kw::Json) => {
                self.bump();
                Stage::Parser(ParserStage::Json(self.extract_params()?))
            }
            Tok::Kw(Kw::Logfmt) => {
                self.bump();
                let (mut strict, mut keep_empty) = (false, false);
                while let Tok::Flag(flag) = self.peek().clone() {
                    self.bump();
                    match flag.as_str() {
                        "--strict" => strict = true,
                        _ => keep_empty = true,
                    }
                }
                Stage::Parser(ParserStage::Logfmt {
                    strict,
                    keep_empty,
                    params: self.extract_params()?,
                })
            }
            Tok::Kw(Kw::Regexp) => {
                self.bump();
                let re = self.expect_str()?;
                check_regexp_parser(&re)?;
                Stage::Parser(ParserStage::Regexp(re))
            }
            Tok::Kw(Kw::Pattern) => {
                self.bump();
                let pattern = self.expect_str()?;
                check_parser_pattern(&pattern)
                    .map_err(|e| ParseError::Invalid(format!("invalid pattern parser: {e}")))?;
                Stage::Parser(ParserStage::Pattern(pattern))
            }
            Tok::Kw(Kw::Unpack) => {
                self.bump();
                Stage::Parser(ParserStage::Unpack)
            }
            Tok::Kw(Kw::LineFormat) => {
                self.bump();
                Stage::LineFormat(self.expect_str()?)
            }
            Tok::Kw(Kw::LabelFormat) => {
                self.bump();
                Stage::LabelFormat(self.label_format_items()?)
            }
            Tok::Kw(Kw::Decolorize) => {
                self.bump();
                Stage::Decolorize
            }
            Tok::Kw(Kw::Drop) => {
                self.bump();
                return Ok(Stage::Drop(self.label_specs()?));
            }
            Tok::Kw(Kw::Keep) => {
                self.bump();
                return Ok(Stage::Keep(self.label_specs()?));
            }
            Tok::Ident(_) | Tok::LParen => {
                // Counted per comparison, as they are read.
                return Ok(Stage::LabelFilter(
                    self.label_filter_expr(FilterLevel::Top)?,
                ));
            }
            _ => return Err(self.unexpected("")),
        };
        self.count(1, 0)?;
        Ok(stage)
    }

    /// The parameters of `json`/`logfmt`: `label="expression"` or `label`, comma-separated.
    fn extract_params(&mut self) -> Result<Vec<ExtractParam>, ParseError> {
        let mut params = Vec::new();
        if !matches!(self.peek(), Tok::Ident(_)) {
            return Ok(params);
        }
        loop {
            let label = self.expect_ident("IDENTIFIER")?;
            let expr = if *self.peek() == Tok::Eq {
                self.bump();
                Some(self.expect_str()?)
            } else {
                None
            };
            params.push(ExtractParam { label, expr });
            if *self.peek() != Tok::Comma {
                return Ok(params);
            }
            self.bump();
        }
    }

    /// `dst=src` and `dst="template"` items of `label_format`. Loki refuses (when it builds
    /// the stage) a label named twice, and `__error__`.
    fn label_format_items(&mut self) -> Result<Vec<LabelFormatItem>, ParseError> {
        let mut items: Vec<LabelFormatItem> = Vec::new();
        loop {
            let dst = self.expect_ident("IDENTIFIER")?;
            self.expect(&Tok::Eq, "=")?;
            let src = match self.peek().clone() {
                Tok::Ident(name) => LabelFormatSource::Rename(name),
                Tok::Str(template) => LabelFormatSource::Template(template),
                _ => return Err(self.unexpected("IDENTIFIER or STRING")),
            };
            self.bump();
            if dst == "__error__" {
                return Err(ParseError::Invalid(format!("{dst} cannot be formatted")));
            }
            if items.iter().any(|i| i.dst == dst) {
                return Err(ParseError::Invalid(format!(
                    "multiple label name '{dst}' not allowed in a single format operation"
                )));
            }
            if !items.is_empty() {
                self.count(1, 0)?;
            }
            items.push(LabelFormatItem { dst, src });
            if *self.peek() != Tok::Comma {
                return Ok(items);
            }
            self.bump();
        }
    }

    /// The labels of `drop`/`keep`: names or matchers, comma-separated.
    fn label_specs(&mut self) -> Result<Vec<LabelSpec>, ParseError> {
        let mut specs = Vec::new();
        loop {
            let name = self.expect_ident("IDENTIFIER")?;
            let spec = if matches!(self.peek(), Tok::Eq | Tok::Neq | Tok::Re | Tok::Nre) {
                LabelSpec::Matcher(self.matcher(name)?)
            } else {
                LabelSpec::Name(name)
            };
            self.count(1, 0)?;
            specs.push(spec);
            if *self.peek() != Tok::Comma {
                return Ok(specs);
            }
            self.bump();
        }
    }

    /// A label filter expression. `or` and `and` are left-associative with `and` binding
    /// tighter; after `,` or a plain space the whole rest is the right operand, so that
    /// `a, b or c` is `a and (b or c)`, as Loki's parser reads it. Such chains are collected
    /// in `heads` and nested from the right, without recursion.
    fn label_filter_expr(&mut self, level: FilterLevel) -> Result<LabelFilterExpr, ParseError> {
        self.enter()?;
        let mut level = level;
        let mut heads = Vec::new();
        let mut current = self.label_filter_atom()?;
        loop {
            match self.peek() {
                Tok::Kw(Kw::Or) if level == FilterLevel::Top => {
                    self.bump();
                    let rhs = self.label_filter_expr(FilterLevel::Or)?;
                    current = LabelFilterExpr::Or(Box::new(current), Box::new(rhs));
                }
                Tok::Kw(Kw::And) if level != FilterLevel::And => {
                    self.bump();
                    let rhs = self.label_filter_expr(FilterLevel::And)?;
                    current = LabelFilterExpr::And(Box::new(current), Box::new(rhs));
                }
                Tok::Comma | Tok::Ident(_) | Tok::LParen => {
                    if *self.peek() == Tok::Comma {
                        self.bump();
                    }
                    heads.push(current);
                    current = self.label_filter_atom()?;
                    level = FilterLevel::Top;
                }
                _ => break,
            }
        }
        while let Some(head) = heads.pop() {
            current = LabelFilterExpr::And(Box::new(head), Box::new(current));
        }
        self.leave();
        Ok(current)
    }

    /// One comparison, or a parenthesized label filter expression.
    fn label_filter_atom(&mut self) -> Result<LabelFilterExpr, ParseError> {
        let name = match self.peek().clone() {
            Tok::LParen => {
                self.bump();
                let inner = self.label_filter_expr(FilterLevel::Top)?;
                self.expect(&Tok::RParen, ")")?;
                return Ok(inner);
            }
            Tok::Ident(name) => name,
            _ => return Err(self.unexpected("")),
        };
        self.count(1, 0)?;
        self.bump();
        let op = self.peek().clone();
        let cmp = match op {
            Tok::Eq | Tok::CmpEq => CmpOp::Eq,
            Tok::Neq => CmpOp::Ne,
            Tok::Gt => CmpOp::Gt,
            Tok::Gte => CmpOp::Ge,
            Tok::Lt => CmpOp::Lt,
            Tok::Lte => CmpOp::Le,
            Tok::Re | Tok::Nre => {
                self.bump();
                let match_op = if op == Tok::Re {
                    MatchOp::Re
                } else {
                    MatchOp::Nre
                };
                let value = self.expect_str()?;
                return LabelMatcher::new(&name, match_op, &value)
                    .map(LabelFilterExpr::String)
                    .map_err(ParseError::Invalid);
            }
            _ => return Err(self.unexpected("")),
        };
        self.bump();
        let string_op = matches!(op, Tok::Eq | Tok::Neq);
        match self.peek().clone() {
            Tok::Str(value) if string_op => {
                self.bump();
                let match_op = if op == Tok::Eq {
                    MatchOp::Eq
                } else {
                    MatchOp::Neq
                };
                LabelMatcher::new(&name, match_op, &value)
                    .map(LabelFilterExpr::String)
                    .map_err(ParseError::Invalid)
            }
            Tok::Kw(Kw::Ip) if string_op => Ok(LabelFilterExpr::Ip {
                name,
                negated: op == Tok::Neq,
                pattern: self.ip_call()?,
            }),
            Tok::Duration(value_ns) => {
                self.bump();
                Ok(LabelFilterExpr::Duration {
                    name,
                    op: cmp,
                    value_ns,
                })
            }
            Tok::Bytes(value) => {
                self.bump();
                Ok(LabelFilterExpr::Bytes {
                    name,
                    op: cmp,
                    value,
                })
            }
            Tok::Number(_) | Tok::Add | Tok::Sub => Ok(LabelFilterExpr::Number {
                name,
                op: cmp,
                value: self.literal()?,
            }),
            _ => Err(self.unexpected("")),
        }
    }

    /// `| unwrap label` or `| unwrap conv(label)`, then `| labelFilter` post filters.
    fn unwrap(&mut self) -> Result<Unwrap, ParseError> {
        self.bump(); // |
        self.bump(); // unwrap
        let conversion = match self.peek() {
            Tok::Kw(Kw::BytesConv) => Some(UnwrapConversion::Bytes),
            Tok::Kw(Kw::DurationConv) => Some(UnwrapConversion::Duration),
            Tok::Kw(Kw::DurationSecondsConv) => Some(UnwrapConversion::DurationSeconds),
            _ => None,
        };
        let (label, conversion) = match conversion {
            Some(conversion) => {
                self.bump();
                self.expect(&Tok::LParen, "(")?;
                let label = self.expect_ident("IDENTIFIER")?;
                self.expect(&Tok::RParen, ")")?;
                (label, conversion)
            }
            None => (self.expect_ident("IDENTIFIER")?, UnwrapConversion::Float),
        };
        self.count(1, 0)?;
        let mut post_filters = Vec::new();
        while *self.peek() == Tok::Pipe {
            self.bump();
            post_filters.push(self.label_filter_expr(FilterLevel::Top)?);
        }
        Ok(Unwrap {
            label,
            conversion,
            post_filters,
        })
    }
}

fn line_filter_op(tok: &Tok) -> Option<LineFilterOp> {
    Some(match tok {
        Tok::PipeExact => LineFilterOp::Contains,
        Tok::Neq => LineFilterOp::NotContains,
        Tok::PipeMatch => LineFilterOp::Regex,
        Tok::Nre => LineFilterOp::NotRegex,
        Tok::PipePattern => LineFilterOp::Pattern,
        Tok::NotPattern => LineFilterOp::NotPattern,
        _ => return None,
    })
}

/// Loki's `NewRegexpParser` checks: the expression compiles and has named groups, each name
/// once.
fn check_regexp_parser(re: &str) -> Result<(), ParseError> {
    let invalid = |e: String| ParseError::Invalid(format!("invalid regexp parser: {e}"));
    let compiled = build_regex(re).map_err(invalid)?;
    let names: Vec<&str> = compiled.capture_names().flatten().collect();
    if names.is_empty() {
        return Err(invalid(MISSING_CAPTURE_MSG.into()));
    }
    Ok(())
}

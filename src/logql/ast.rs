//! The syntax tree of a parsed query and its canonical printing (Loki's `String()` form:
//! `{app="foo", env!="dev"} |= "error" != "timeout"`,
//! `sum by (app)(count_over_time({app="foo"} | json[5m]))`).
//!
//! Which question it answers: "what did the query say, in a form the engine can walk, and
//! how does Loki write it?" Everything in the tree is validated by the parser; matchers and
//! line filters come compiled.

use std::fmt::{self, Write};

use super::go_compat::{
    format_go_duration, format_go_float, format_go_float_plain, format_humanized_bytes,
    format_prometheus_duration,
};
use super::matchers::{FilterOperand, LabelMatcher, LineFilter, MatchOp};
use super::regex_shape::loki_simplifies_label_regex;

/// A parsed LogQL query: a log query (returns lines) or a metric query (returns samples).
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    /// A log query: it returns log lines.
    Log(LogExpr),
    /// A metric query: it returns a matrix (range), a vector or a scalar (instant).
    Sample(SampleExpr),
}

/// A log query: a selector with its leading line filters, then the pipeline stages in the
/// order written. Line filters that follow the selector directly sit in `selector.filters`
/// (they run first, against the original line, and feed bloom pruning); a line filter after
/// any other stage is a [`Stage::LineFilter`] in `stages`.
#[derive(Clone, Debug, PartialEq)]
pub struct LogExpr {
    pub selector: LogSelector,
    pub stages: Vec<Stage>,
}

/// A stream selector and the line filters that follow it directly. Everything in it is
/// compiled and `Send + Sync`, so one instance is shared by all cores.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LogSelector {
    /// Which streams: every matcher must match the stream's labels.
    pub matchers: Vec<LabelMatcher>,
    /// Which lines: every filter must match, in this order.
    pub filters: Vec<LineFilter>,
}

/// One pipeline stage after `|` (or a line filter after such a stage), as written. The query
/// engine (`crate::query::pipeline`) compiles each into something that runs on lines.
#[derive(Clone, Debug, PartialEq)]
pub enum Stage {
    /// `|= "x"`, `!~ "re"`, ... after another stage: runs on the line as it is at that point
    /// (after `line_format` or `decolorize`, the rewritten line).
    LineFilter(LineFilter),
    /// `| json`, `| logfmt`, `| regexp "..."`, `| pattern "..."`, `| unpack`.
    Parser(ParserStage),
    /// `| level="error" and latency > 250ms`.
    LabelFilter(LabelFilterExpr),
    /// `| line_format "{{.msg}}"`: the template text, already unquoted.
    LineFormat(String),
    /// `| label_format dst=src, dst2="{{.x}}"`.
    LabelFormat(Vec<LabelFormatItem>),
    /// `| decolorize`: removes ANSI colour sequences from the line.
    Decolorize,
    /// `| drop a, b="x"`: removes labels (a matcher drops only when it matches).
    Drop(Vec<LabelSpec>),
    /// `| keep a, b="x"`: keeps only these labels (a matcher keeps only when it matches).
    Keep(Vec<LabelSpec>),
}

/// A parser stage.
#[derive(Clone, Debug, PartialEq)]
pub enum ParserStage {
    /// `| json` (no parameters: every field, nested keys joined by `_`) or
    /// `| json a="x.y[0]", b` (only these; an omitted expression is the label name itself).
    Json(Vec<ExtractParam>),
    /// `| logfmt [--strict] [--keep-empty] [params]`.
    Logfmt {
        strict: bool,
        keep_empty: bool,
        params: Vec<ExtractParam>,
    },
    /// `| regexp "(?P<name>...)"`: the expression text, validated by the parser (it must have
    /// at least one named group).
    Regexp(String),
    /// `| pattern "<ip> - <_> ..."`: the pattern text, validated by the parser.
    Pattern(String),
    /// `| unpack`: the JSON object Promtail's `pack` stage wrote (`_entry` is the line).
    Unpack,
}

/// One `label="expression"` (or bare `label`) parameter of `json` or `logfmt`. Two are equal
/// when they extract the same path into the same label, however written.
#[derive(Clone, Debug, Eq)]
pub struct ExtractParam {
    /// The label to set.
    pub label: String,
    /// The path (`json`: `a.b[0]`, `["a b"]`; `logfmt`: a key), or `None` when written as a
    /// bare identifier (then the path is the label name).
    pub expr: Option<String>,
}

/// A label filter expression: comparisons joined by `and` (also written `,` or a space) and
/// `or`, grouped by parentheses.
#[derive(Clone, Debug, PartialEq)]
pub enum LabelFilterExpr {
    And(Box<LabelFilterExpr>, Box<LabelFilterExpr>),
    Or(Box<LabelFilterExpr>, Box<LabelFilterExpr>),
    /// `name = "value"`, `name =~ "re"`, ...: a label matcher on the value as a string.
    String(LabelMatcher),
    /// `name > 1.5`: the value parsed as a float (an unparsable value sets `__error__`).
    Number {
        name: String,
        op: CmpOp,
        value: f64,
    },
    /// `name > 250ms`: the value parsed as a Go duration, compared in nanoseconds.
    Duration {
        name: String,
        op: CmpOp,
        value_ns: i64,
    },
    /// `name > 20MB`: the value parsed as a humanized byte size.
    Bytes {
        name: String,
        op: CmpOp,
        value: u64,
    },
    /// `name = ip("10.0.0.0/8")` or `name != ip(...)`.
    Ip {
        name: String,
        negated: bool,
        pattern: String,
    },
}

/// A numeric comparison of a label filter or a binary operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    Gt,
    Ge,
    Lt,
    Le,
    Eq,
    Ne,
}

impl CmpOp {
    pub fn as_str(self) -> &'static str {
        match self {
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
        }
    }
}

/// One `dst=src` (rename) or `dst="{{ template }}"` item of `label_format`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabelFormatItem {
    pub dst: String,
    pub src: LabelFormatSource,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LabelFormatSource {
    /// `dst=src`: the value of label `src`, which is removed.
    Rename(String),
    /// `dst="..."`: a template evaluated per line.
    Template(String),
}

/// A label named in `drop`/`keep`: by name, or by name and value matcher.
#[derive(Clone, Debug, PartialEq)]
pub enum LabelSpec {
    Name(String),
    Matcher(LabelMatcher),
}

/// A metric query.
#[derive(Clone, Debug, PartialEq)]
pub enum SampleExpr {
    /// `count_over_time({...}[5m])`, `quantile_over_time(0.9, {...} | unwrap x [5m]) by (a)`.
    Range(RangeAggregation),
    /// `sum by (a) (...)`, `topk(5, ...)`, `sort(...)`.
    Vector(VectorAggregation),
    /// `a + b`, `a > bool 2`, `a and on (x) b`.
    Binary(BinaryExpr),
    /// A scalar literal: `2`, `-1.5`, `1e3`, or an expression of literals the parser folded.
    Literal(f64),
    /// `vector(2)`: a one-sample vector without labels at every step.
    VectorLiteral(f64),
    /// `label_replace(expr, "dst", "replacement", "src", "regex")`.
    LabelReplace(Box<LabelReplace>),
}

/// A range aggregation over a log range.
#[derive(Clone, Debug, PartialEq)]
pub struct RangeAggregation {
    pub op: RangeOp,
    pub range: LogRange,
    /// The first argument of `quantile_over_time` (the quantile, 0..=1 inclusive; outside it
    /// the result is ±Inf as in Prometheus).
    pub param: Option<f64>,
    /// `by (...)`/`without (...)` after the call (allowed for the unwrap aggregations).
    pub grouping: Option<Grouping>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RangeOp {
    CountOverTime,
    Rate,
    RateCounter,
    BytesOverTime,
    BytesRate,
    AvgOverTime,
    SumOverTime,
    MinOverTime,
    MaxOverTime,
    StddevOverTime,
    StdvarOverTime,
    QuantileOverTime,
    FirstOverTime,
    LastOverTime,
    AbsentOverTime,
}

impl RangeOp {
    pub fn as_str(self) -> &'static str {
        match self {
            RangeOp::CountOverTime => "count_over_time",
            RangeOp::Rate => "rate",
            RangeOp::RateCounter => "rate_counter",
            RangeOp::BytesOverTime => "bytes_over_time",
            RangeOp::BytesRate => "bytes_rate",
            RangeOp::AvgOverTime => "avg_over_time",
            RangeOp::SumOverTime => "sum_over_time",
            RangeOp::MinOverTime => "min_over_time",
            RangeOp::MaxOverTime => "max_over_time",
            RangeOp::StddevOverTime => "stddev_over_time",
            RangeOp::StdvarOverTime => "stdvar_over_time",
            RangeOp::QuantileOverTime => "quantile_over_time",
            RangeOp::FirstOverTime => "first_over_time",
            RangeOp::LastOverTime => "last_over_time",
            RangeOp::AbsentOverTime => "absent_over_time",
        }
    }
}

/// `{...} | stages [| unwrap ...] [5m] offset 1h`: the lines a range aggregation reads.
#[derive(Clone, Debug, PartialEq)]
pub struct LogRange {
    pub log: LogExpr,
    /// The range in nanoseconds (`[5m]`).
    pub range_ns: i64,
    /// `offset 1h` in nanoseconds (0 when absent).
    pub offset_ns: i64,
    /// `| unwrap latency`, with the label filters written after it.
    pub unwrap: Option<Unwrap>,
}

/// `| unwrap [duration(|duration_seconds(|bytes(]label[)] [| label filters]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Unwrap {
    pub label: String,
    pub conversion: UnwrapConversion,
    /// Label filters after the unwrap (`| unwrap x | __error__=""`), run on the extracted
    /// sample's labels.
    pub post_filters: Vec<LabelFilterExpr>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnwrapConversion {
    /// The value as a float.
    Float,
    /// `duration(x)` / `duration_seconds(x)`: a Go duration, in seconds.
    Duration,
    DurationSeconds,
    /// `bytes(x)`: a humanized byte size, in bytes.
    Bytes,
}

/// `by (a, b)` or `without (a, b)`. `by ()` is kept distinct from no grouping at all.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Grouping {
    pub without: bool,
    pub labels: Vec<String>,
}

/// A vector aggregation.
#[derive(Clone, Debug, PartialEq)]
pub struct VectorAggregation {
    pub op: VectorOp,
    pub inner: Box<SampleExpr>,
    /// `None` also for `by ()`, which means the same for a vector aggregation (one series).
    pub grouping: Option<Grouping>,
    /// `k` of `topk`, `bottomk` and `approx_topk`.
    pub param: Option<i64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VectorOp {
    Sum,
    Avg,
    Min,
    Max,
    Stddev,
    Stdvar,
    Count,
    Topk,
    Bottomk,
    Sort,
    SortDesc,
    ApproxTopk,
}

impl VectorOp {
    pub fn as_str(self) -> &'static str {
        match self {
            VectorOp::Sum => "sum",
            VectorOp::Avg => "avg",
            VectorOp::Min => "min",
            VectorOp::Max => "max",
            VectorOp::Stddev => "stddev",
            VectorOp::Stdvar => "stdvar",
            VectorOp::Count => "count",
            VectorOp::Topk => "topk",
            VectorOp::Bottomk => "bottomk",
            VectorOp::Sort => "sort",
            VectorOp::SortDesc => "sort_desc",
            VectorOp::ApproxTopk => "approx_topk",
        }
    }
}

/// A binary operation between two metric expressions (or a metric and a literal).
#[derive(Clone, Debug, PartialEq)]
pub struct BinaryExpr {
    pub op: BinOp,
    pub lhs: Box<SampleExpr>,
    pub rhs: Box<SampleExpr>,
    /// `bool` after a comparison: return 0/1 instead of filtering.
    pub return_bool: bool,
    /// `on (...)`/`ignoring (...)` with `group_left`/`group_right`; `None` matches on all
    /// labels, one to one (also written `ignoring ()`).
    pub matching: Option<VectorMatching>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinOp {
    Or,
    And,
    Unless,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

impl BinOp {
    pub fn as_str(self) -> &'static str {
        match self {
            BinOp::Or => "or",
            BinOp::And => "and",
            BinOp::Unless => "unless",
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Mod => "%",
            BinOp::Pow => "^",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
        }
    }

    /// `==`, `!=`, `>`, `>=`, `<`, `<=`: the operators `bool` applies to.
    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            BinOp::Eq | BinOp::Ne | BinOp::Gt | BinOp::Ge | BinOp::Lt | BinOp::Le
        )
    }

    /// `and`, `or`, `unless`: set operators (many to many).
    pub fn is_set(self) -> bool {
        matches!(self, BinOp::Or | BinOp::And | BinOp::Unless)
    }
}

/// How the two sides of a binary operation are matched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VectorMatching {
    /// `on (labels)` when true, `ignoring (labels)` when false.
    pub on: bool,
    pub labels: Vec<String>,
    pub cardinality: Cardinality,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum Cardinality {
    #[default]
    OneToOne,
    /// `group_left (include)`: many on the left to one on the right.
    ManyToOne(Vec<String>),
    /// `group_right (include)`: one on the left to many on the right.
    OneToMany(Vec<String>),
}

/// `label_replace(inner, "dst", "replacement", "src", "regex")`.
#[derive(Clone, Debug, PartialEq)]
pub struct LabelReplace {
    pub inner: SampleExpr,
    pub dst: String,
    pub replacement: String,
    pub src: String,
    /// The regex text; the parser checks that it compiles (anchored, as Prometheus does).
    pub regex: String,
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

impl ExtractParam {
    /// The path to extract: the expression, or the label name when none was written.
    pub fn path(&self) -> &str {
        self.expr.as_deref().unwrap_or(&self.label)
    }
}

impl PartialEq for ExtractParam {
    fn eq(&self, other: &Self) -> bool {
        self.label == other.label && self.path() == other.path()
    }
}

// The canonical printer: Loki's `String()` of every node, character for character, so that
// a query prints as Loki prints it and the printed text parses back to the same tree. (Where
// Loki's text loses information, it is lost here too: a bytes filter is printed rounded to
// humanize's precision, a range to whole milliseconds, `ignoring () group_left` without its
// modifiers. Where Loki's text cannot be parsed back, this printer differs: label names are
// printed as written, where Loki quotes names that are not Prometheus-style, and an empty
// `group_left ()` is written out before a parenthesized operand.)

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Log(e) => e.fmt(f),
            Expr::Sample(e) => e.fmt(f),
        }
    }
}

impl fmt::Display for LogExpr {
    /// `{app="foo"} |= "x" | json | level="error"`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.selector.fmt(f)?;
        for stage in &self.stages {
            write!(f, " {stage}")?;
        }
        Ok(())
    }
}

impl fmt::Display for LogSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_char('{')?;
        for (i, m) in self.matchers.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write_matcher(f, m)?;
        }
        f.write_char('}')?;
        for filter in &self.filters {
            write!(f, " {filter}")?;
        }
        Ok(())
    }
}

/// `name="value"`: Prometheus' matcher text.
fn write_matcher(f: &mut fmt::Formatter<'_>, m: &LabelMatcher) -> fmt::Result {
    write!(f, "{}{}{}", m.name, m.op.as_str(), Quoted(&m.value))
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

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stage::LineFilter(filter) => filter.fmt(f),
            Stage::Parser(parser) => parser.fmt(f),
            Stage::LabelFilter(filter) => write!(f, "| {filter}"),
            Stage::LineFormat(template) => write!(f, "| line_format {}", Quoted(template)),
            Stage::LabelFormat(items) => {
                f.write_str("| label_format ")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_char(',')?;
                    }
                    match &item.src {
                        LabelFormatSource::Rename(src) => write!(f, "{}={src}", item.dst)?,
                        LabelFormatSource::Template(t) => write!(f, "{}={}", item.dst, Quoted(t))?,
                    }
                }
                Ok(())
            }
            Stage::Decolorize => f.write_str("| decolorize"),
            Stage::Drop(specs) => write_label_specs(f, "drop", specs),
            Stage::Keep(specs) => write_label_specs(f, "keep", specs),
        }
    }
}

fn write_label_specs(f: &mut fmt::Formatter<'_>, stage: &str, specs: &[LabelSpec]) -> fmt::Result {
    write!(f, "| {stage} ")?;
    for (i, spec) in specs.iter().enumerate() {
        if i > 0 {
            f.write_char(',')?;
        }
        match spec {
            LabelSpec::Name(name) => f.write_str(name)?,
            LabelSpec::Matcher(m) => write_matcher(f, m)?,
        }
    }
    Ok(())
}

/// `a="x.y",b="b"`: every parameter with its path, as Loki prints them.
fn write_extract_params(f: &mut fmt::Formatter<'_>, params: &[ExtractParam]) -> fmt::Result {
    for (i, p) in params.iter().enumerate() {
        if i > 0 {
            f.write_char(',')?;
        }
        write!(f, "{}={}", p.label, Quoted(p.path()))?;
    }
    Ok(())
}

impl fmt::Display for ParserStage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParserStage::Json(params) if params.is_empty() => f.write_str("| json"),
            ParserStage::Json(params) => {
                f.write_str("| json ")?;
                write_extract_params(f, params)
            }
            ParserStage::Logfmt {
                strict,
                keep_empty,
                params,
            } => {
                f.write_str("| logfmt")?;
                if params.is_empty() {
                    if *strict {
                        f.write_str(" --strict")?;
                    }
                    if *keep_empty {
                        f.write_str(" --keep-empty")?;
                    }
                    return Ok(());
                }
                f.write_char(' ')?;
                if *strict {
                    f.write_str("--strict ")?;
                }
                if *keep_empty {
                    f.write_str("--keep-empty ")?;
                }
                write_extract_params(f, params)
            }
            ParserStage::Regexp(re) => write!(f, "| regexp {}", Quoted(re)),
            ParserStage::Pattern(p) => write!(f, "| pattern {}", Quoted(p)),
            ParserStage::Unpack => f.write_str("| unpack"),
        }
    }
}

impl fmt::Display for LabelFilterExpr {
    /// `( a , b )` for and, `( a or b )` for or, the comparisons as Loki prints them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LabelFilterExpr::And(a, b) => write!(f, "( {a} , {b} )"),
            LabelFilterExpr::Or(a, b) => write!(f, "( {a} or {b} )"),
            LabelFilterExpr::String(m)
                if m.op == MatchOp::Re && !loki_simplifies_label_regex(&m.value) =>
            {
                // Loki prints a regex it runs as a regex between backquotes.
                if m.value.contains('`') {
                    write!(f, "{}=~{}", m.name, Quoted(&m.value))
                } else {
                    write!(f, "{}=~`{}`", m.name, m.value)
                }
            }
            LabelFilterExpr::String(m) => write_matcher(f, m),
            LabelFilterExpr::Number { name, op, value } => {
                write!(f, "{name}{}{}", op.as_str(), format_go_float_plain(*value))
            }
            LabelFilterExpr::Duration { name, op, value_ns } => {
                write!(f, "{name}{}{}", op.as_str(), format_go_duration(*value_ns))
            }
            LabelFilterExpr::Bytes { name, op, value } => {
                write!(f, "{name}{}{}", op.as_str(), format_humanized_bytes(*value))
            }
            LabelFilterExpr::Ip {
                name,
                negated,
                pattern,
            } => {
                let op = if *negated { "!=" } else { "=" };
                write!(f, "{name}{op}ip({})", Quoted(pattern))
            }
        }
    }
}

impl fmt::Display for SampleExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SampleExpr::Range(r) => r.fmt(f),
            SampleExpr::Vector(v) => v.fmt(f),
            SampleExpr::Binary(b) => b.fmt(f),
            SampleExpr::Literal(v) => f.write_str(&format_go_float(*v)),
            SampleExpr::VectorLiteral(v) => write!(f, "vector({v:.6})"),
            SampleExpr::LabelReplace(l) => write!(
                f,
                "label_replace({},{},{},{},{})",
                l.inner,
                Quoted(&l.dst),
                Quoted(&l.replacement),
                Quoted(&l.src),
                Quoted(&l.regex)
            ),
        }
    }
}

impl fmt::Display for RangeAggregation {
    /// `quantile_over_time(0.99,{app="foo"} | unwrap latency[5m]) by (a)`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}(", self.op.as_str())?;
        if let Some(p) = self.param {
            write!(f, "{},", format_go_float_plain(p))?;
        }
        write!(f, "{})", self.range)?;
        if let Some(g) = &self.grouping {
            g.fmt(f)?;
        }
        Ok(())
    }
}

impl fmt::Display for LogRange {
    /// `{app="foo"} |= "x" | unwrap latency[5m] offset 1h0m0s`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.log.fmt(f)?;
        if let Some(u) = &self.unwrap {
            u.fmt(f)?;
        }
        write!(f, "[{}]", format_prometheus_duration(self.range_ns))?;
        if self.offset_ns != 0 {
            write!(f, " offset {}", format_go_duration(self.offset_ns))?;
        }
        Ok(())
    }
}

impl fmt::Display for Unwrap {
    /// ` | unwrap duration(latency) | __error__=""` (with the leading space, as Loki).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let conversion = match self.conversion {
            UnwrapConversion::Float => None,
            UnwrapConversion::Duration => Some("duration"),
            UnwrapConversion::DurationSeconds => Some("duration_seconds"),
            UnwrapConversion::Bytes => Some("bytes"),
        };
        match conversion {
            Some(c) => write!(f, " | unwrap {c}({})", self.label)?,
            None => write!(f, " | unwrap {}", self.label)?,
        }
        for filter in &self.post_filters {
            write!(f, " | {filter}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Grouping {
    /// ` by (a,b)` or ` without (a,b)` (with the leading space, as Loki).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.without { "without" } else { "by" };
        write!(f, " {kind} ({})", self.labels.join(","))
    }
}

impl fmt::Display for VectorAggregation {
    /// `sum by (a)(inner)`, `topk(5,inner)`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.op.as_str())?;
        if let Some(g) = &self.grouping {
            g.fmt(f)?;
        }
        f.write_char('(')?;
        if let Some(k) = self.param {
            write!(f, "{k},")?;
        }
        write!(f, "{})", self.inner)
    }
}

impl fmt::Display for BinaryExpr {
    /// `(lhs op rhs)`, with `bool` and the matching after the operator as Loki writes them
    /// (`(a / on (x) group_left (y) b)`, and two spaces when there is no group modifier).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({} {}", self.lhs, self.op.as_str())?;
        if self.return_bool {
            f.write_str(" bool")?;
        }
        if let Some(m) = &self.matching {
            // A `(` after `group_x` is read as its label list, so before a parenthesized
            // right operand an empty list is written out, where Loki writes none and could
            // not read its own text back.
            let empty = if matches!(*self.rhs, SampleExpr::Binary(_)) {
                " ()"
            } else {
                ""
            };
            let group = match &m.cardinality {
                Cardinality::OneToOne => String::new(),
                Cardinality::ManyToOne(l) if l.is_empty() => format!("group_left{empty}"),
                Cardinality::OneToMany(l) if l.is_empty() => format!("group_right{empty}"),
                Cardinality::ManyToOne(l) => format!("group_left ({})", l.join(",")),
                Cardinality::OneToMany(l) => format!("group_right ({})", l.join(",")),
            };
            if m.on || !m.labels.is_empty() {
                let kind = if m.on { "on" } else { "ignoring" };
                write!(f, " {kind} ({}) {group}", m.labels.join(","))?;
            }
        }
        write!(f, " {})", self.rhs)
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

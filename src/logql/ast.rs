//! The syntax tree of a parsed query and its canonical printing (Loki's `String()` form:
//! `{app="foo", env!="dev"} |= "error" != "timeout"`).

use std::fmt::{self, Write};

use super::matchers::{FilterOperand, LabelMatcher, LineFilter};

/// A parsed LogQL query: a log query (returns lines) or a metric query (returns samples).
#[derive(Clone, Debug)]
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
#[derive(Clone, Debug)]
pub struct LogExpr {
    pub selector: LogSelector,
    pub stages: Vec<Stage>,
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

/// One pipeline stage after `|` (or a line filter after such a stage), as written. The query
/// engine (`crate::query::pipeline`) compiles each into something that runs on lines.
#[derive(Clone, Debug)]
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
#[derive(Clone, Debug)]
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

/// One `label="expression"` (or bare `label`) parameter of `json` or `logfmt`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtractParam {
    /// The label to set.
    pub label: String,
    /// The path (`json`: `a.b[0]`, `["a b"]`; `logfmt`: a key), or `None` when written as a
    /// bare identifier (then the path is the label name).
    pub expr: Option<String>,
}

/// A label filter expression: comparisons joined by `and` (also written `,` or a space) and
/// `or`, grouped by parentheses.
#[derive(Clone, Debug)]
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
#[derive(Clone, Debug)]
pub enum LabelSpec {
    Name(String),
    Matcher(LabelMatcher),
}

/// A metric query.
#[derive(Clone, Debug)]
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
#[derive(Clone, Debug)]
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
#[derive(Clone, Debug)]
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
#[derive(Clone, Debug)]
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
#[derive(Clone, Debug)]
pub struct VectorAggregation {
    pub op: VectorOp,
    pub inner: Box<SampleExpr>,
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
#[derive(Clone, Debug)]
pub struct BinaryExpr {
    pub op: BinOp,
    pub lhs: Box<SampleExpr>,
    pub rhs: Box<SampleExpr>,
    /// `bool` after a comparison: return 0/1 instead of filtering.
    pub return_bool: bool,
    /// `on (...)`/`ignoring (...)` with `group_left`/`group_right`; `None` matches on all
    /// labels, one to one.
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
#[derive(Clone, Debug)]
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

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Log(e) => e.fmt(f),
            // Replaced by the canonical printer of metric queries.
            Expr::Sample(e) => write!(f, "{e:?}"),
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

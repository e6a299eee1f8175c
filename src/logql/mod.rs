//! placeholder until the LogQL parser lands: the types the shard and routes use.
use std::sync::Arc;
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchOp { Eq, Neq, Re, Nre }
#[derive(Debug, Clone)]
pub struct LabelMatcher { pub name: String, pub op: MatchOp, pub value: String }
impl LabelMatcher { pub fn matches(&self, value: Option<&str>) -> bool { let v = value.unwrap_or(""); match self.op { MatchOp::Eq => v == self.value, MatchOp::Neq => v != self.value, _ => true } } }
#[derive(Debug, Clone)]
pub struct LineFilter { pub needle: String }
impl LineFilter { pub fn matches(&self, line: &[u8]) -> bool { memchr::memmem::find(line, self.needle.as_bytes()).is_some() } }
#[derive(Debug, Clone)]
pub struct LogSelector { pub matchers: Vec<LabelMatcher>, pub filters: Vec<LineFilter> }
#[derive(Debug)]
pub enum ParseError { Syntax(String), Unsupported(String) }
impl std::fmt::Display for ParseError { fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { write!(f, "{self:?}") } }
#[derive(Debug)]
pub enum Expr { Log(LogSelector) }
pub fn parse_expr(_q: &str) -> Result<Expr, ParseError> { Err(ParseError::Unsupported("x".into())) }
pub fn parse_log_selector(_q: &str, _v: bool) -> Result<LogSelector, ParseError> { Err(ParseError::Unsupported("x".into())) }
pub type Shared = Arc<LogSelector>;

//! The functions a Loki template can call: Go's builtins (`and`, `eq`, `printf`, `index`,
//! ...), Loki's own (`__line__`, `regexReplaceAll`, `unixToTime`, ...) and the sprig
//! functions Loki exposes (`upper`, `trunc`, `add`, `date`, `default`, ...), with their Go
//! signatures and results.
//!
//! Which question it answers: "what does calling this function with these values return in
//! Loki?" The list and semantics are Loki's `pkg/logql/log/fmt.go` `functionMap` and the
//! sprig functions it copies; a name outside the list is a parse error, as in Loki. Where
//! Loki's `trunc` and `substr` would cut a UTF-8 sequence (sprig counts bytes) these count
//! runes, as Loki's own tested helpers do.
//!
//! The calls are dispatched here; the string functions' bodies are in `text`, the numeric
//! conversions and decimal arithmetic in `numbers`.

use std::borrow::Cow;
use std::rc::Rc;

use super::gofmt::{self, sprint, sprintf, sprintln};
use super::gotime::{self, Location, Time};
use super::strconv;
use super::value::{Kind, Value};
use super::{REGEX_DFA_BYTES_MAX, REGEX_SIZE_BYTES_MAX, TemplateData};

mod numbers;
mod text;
pub(crate) use numbers::*;
pub(crate) use text::*;

/// A Go parameter or result type, as far as the signatures here need one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ty {
    String,
    Int,
    Float,
    Time,
    Duration,
    /// `interface{}`: any value, nil included.
    Any,
    /// `reflect.Value`: any value, nil included, for Go's builtins.
    Reflect,
}

impl Ty {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Ty::String => "string",
            Ty::Int => "int",
            Ty::Float => "float64",
            Ty::Time => "time.Time",
            Ty::Duration => "time.Duration",
            Ty::Any => "interface {}",
            Ty::Reflect => "reflect.Value",
        }
    }

    /// Whether a value of this Go type is exactly `ty` (Go's `AssignableTo`).
    pub(crate) fn accepts(self, v: &Value<'_>) -> bool {
        match self {
            Ty::Any | Ty::Reflect => true,
            Ty::String => matches!(v, Value::Str(_)),
            Ty::Int => matches!(v, Value::Int(_)),
            Ty::Float => matches!(v, Value::Float(_)),
            Ty::Time => matches!(v, Value::Time(_)),
            Ty::Duration => matches!(v, Value::Duration(_)),
        }
    }

    pub(crate) fn can_be_nil(self) -> bool {
        matches!(self, Ty::Any | Ty::Reflect)
    }
}

/// A function's parameters: fixed ones, then an optional variadic tail.
pub(crate) struct Sig {
    pub(crate) params: &'static [Ty],
    pub(crate) variadic: Option<Ty>,
}

macro_rules! funcs {
    ($($id:ident = $name:literal ($($p:ident),*) $(... $v:ident)?;)*) => {
        /// A function of the template language.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub(crate) enum FuncId { $($id),* }

        const TABLE: &[(&str, FuncId)] = &[$(($name, FuncId::$id)),*];

        impl FuncId {
            pub(crate) fn sig(self) -> Sig {
                match self {
                    $(FuncId::$id => Sig {
                        params: &[$(Ty::$p),*],
                        variadic: funcs!(@v $($v)?),
                    }),*
                }
            }
        }
    };
    (@v) => { None };
    (@v $v:ident) => { Some(Ty::$v) };
}

funcs! {
    // Go's builtins.
    And = "and"(Reflect) ... Reflect;
    Call = "call"(Reflect) ... Reflect;
    Html = "html"() ... Any;
    Index = "index"(Reflect) ... Reflect;
    Slice = "slice"(Reflect) ... Reflect;
    Js = "js"() ... Any;
    Len = "len"(Reflect);
    Not = "not"(Reflect);
    Or = "or"(Reflect) ... Reflect;
    Print = "print"() ... Any;
    Printf = "printf"(String) ... Any;
    Println = "println"() ... Any;
    Urlquery = "urlquery"() ... Any;
    Eq = "eq"(Reflect) ... Reflect;
    Ge = "ge"(Reflect, Reflect);
    Gt = "gt"(Reflect, Reflect);
    Le = "le"(Reflect, Reflect);
    Lt = "lt"(Reflect, Reflect);
    Ne = "ne"(Reflect, Reflect);
    // Loki's functions.
    Line = "__line__"();
    Timestamp = "__timestamp__"();
    ToLower = "ToLower"(String);
    ToUpper = "ToUpper"(String);
    Replace = "Replace"(String, String, String, Int);
    Trim = "Trim"(String, String);
    TrimLeft = "TrimLeft"(String, String);
    TrimRight = "TrimRight"(String, String);
    TrimPrefix = "TrimPrefix"(String, String);
    TrimSuffix = "TrimSuffix"(String, String);
    TrimSpace = "TrimSpace"(String);
    RegexReplaceAll = "regexReplaceAll"(String, String, String);
    RegexReplaceAllLiteral = "regexReplaceAllLiteral"(String, String, String);
    Count = "count"(String, String);
    Urldecode = "urldecode"(String);
    Urlencode = "urlencode"(String);
    Bytes = "bytes"(String);
    Duration = "duration"(String);
    DurationSeconds = "duration_seconds"(String);
    UnixEpochMillis = "unixEpochMillis"(Time);
    UnixEpochNanos = "unixEpochNanos"(Time);
    ToDateInZone = "toDateInZone"(String, String, String);
    UnixToTime = "unixToTime"(String);
    AlignLeft = "alignLeft"(Int, String);
    AlignRight = "alignRight"(Int, String);
    B64dec = "b64dec"(String);
    // Sprig's functions that Loki copies.
    B64enc = "b64enc"(String);
    Lower = "lower"(String);
    Upper = "upper"(String);
    Title = "title"(String);
    Trunc = "trunc"(Int, String);
    Substr = "substr"(Int, Int, String);
    Contains = "contains"(String, String);
    HasPrefix = "hasPrefix"(String, String);
    HasSuffix = "hasSuffix"(String, String);
    Indent = "indent"(Int, String);
    Nindent = "nindent"(Int, String);
    SprigReplace = "replace"(String, String, String);
    Repeat = "repeat"(Int, String);
    SprigTrim = "trim"(String);
    TrimAll = "trimAll"(String, String);
    SprigTrimSuffix = "trimSuffix"(String, String);
    SprigTrimPrefix = "trimPrefix"(String, String);
    ToInt = "int"(Any);
    ToFloat64 = "float64"(Any);
    Add = "add"() ... Any;
    Sub = "sub"(Any, Any);
    Mul = "mul"(Any) ... Any;
    Div = "div"(Any, Any);
    Mod = "mod"(Any, Any);
    Addf = "addf"() ... Any;
    Subf = "subf"(Any) ... Any;
    Mulf = "mulf"(Any) ... Any;
    Divf = "divf"(Any) ... Any;
    Max = "max"(Any) ... Any;
    Min = "min"(Any) ... Any;
    Maxf = "maxf"(Any) ... Any;
    Minf = "minf"(Any) ... Any;
    Ceil = "ceil"(Any);
    Floor = "floor"(Any);
    Round = "round"(Any, Int) ... Float;
    FromJson = "fromJson"(String);
    Date = "date"(String, Any);
    ToDate = "toDate"(String, String);
    Now = "now"();
    UnixEpoch = "unixEpoch"(Time);
    Default = "default"(Any) ... Any;
}

/// The function called `name`, if a Loki template may call it.
pub(crate) fn lookup(name: &str) -> Option<FuncId> {
    TABLE.iter().find(|(n, _)| *n == name).map(|(_, id)| *id)
}

impl FuncId {
    /// Whether the first parameter is a regex (compiled once when it is a literal).
    pub(crate) fn takes_regex(self) -> bool {
        matches!(
            self,
            FuncId::RegexReplaceAll | FuncId::RegexReplaceAllLiteral | FuncId::Count
        )
    }
}

/// Compiles a template regex with the query engine's size limits, so that a hostile pattern
/// is an error, not gigabytes.
pub(crate) fn compile_regex(pattern: &str) -> Result<regex::Regex, String> {
    regex::RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_BYTES_MAX)
        .dfa_size_limit(REGEX_DFA_BYTES_MAX)
        .build()
        .map_err(|e| match e {
            regex::Error::CompiledTooBig(limit) => format!(
                "error parsing regexp: expression too large: compiled form exceeds {limit} bytes"
            ),
            e => format!("error parsing regexp: {e}"),
        })
}

/// Why a call failed: Go's error text (reported as `error calling f: ...`), or one of our
/// resource limits.
#[derive(Debug)]
pub(crate) enum CallError {
    Go(String),
    Limit(String),
}

impl From<String> for CallError {
    fn from(s: String) -> CallError {
        CallError::Go(s)
    }
}

impl From<&str> for CallError {
    fn from(s: &str) -> CallError {
        CallError::Go(s.to_string())
    }
}

/// What a call may use besides its arguments: the line being rendered and the render's
/// allocation budget.
pub(crate) struct Env<'a> {
    pub(crate) data: &'a dyn TemplateData,
    /// Bytes the render's functions may still read and build.
    pub(crate) bytes_left: usize,
    /// The largest single string a function may build.
    pub(crate) string_max: usize,
}

impl Env<'_> {
    /// Accounts for a string of `n` bytes about to be built.
    pub(crate) fn charge(&mut self, n: usize) -> Result<(), CallError> {
        if n > self.string_max {
            return Err(CallError::Limit(format!(
                "a template function would build {n} bytes, above the limit of {}",
                self.string_max
            )));
        }
        self.charge_work(n)
    }

    /// Accounts for `n` bytes read or built by a function.
    pub(crate) fn charge_work(&mut self, n: usize) -> Result<(), CallError> {
        if n > self.bytes_left {
            return Err(CallError::Limit(
                "the template's functions read and build more than the render's limit".into(),
            ));
        }
        self.bytes_left -= n;
        Ok(())
    }
}

type CallResult<'a> = Result<Value<'a>, CallError>;

fn s<'a, 'v>(v: &'v Value<'a>) -> &'v str {
    match v {
        Value::Str(s) => s,
        _ => "",
    }
}

fn int(v: &Value<'_>) -> i64 {
    v.int_of().unwrap_or(0)
}

fn time(v: &Value<'_>) -> Time {
    match v {
        Value::Time(t) => (**t).clone(),
        _ => Time::zero(),
    }
}

fn owned<'a>(s: String) -> Value<'a> {
    Value::string(s)
}

/// Calls `id` with arguments already checked against its signature.
pub(crate) fn call<'a>(
    id: FuncId,
    args: Vec<Value<'a>>,
    regex: Option<&Result<regex::Regex, String>>,
    env: &mut Env<'a>,
) -> CallResult<'a> {
    let a = &args;
    Ok(match id {
        FuncId::And | FuncId::Or => a.last().cloned().unwrap_or(Value::Nil),
        FuncId::Call => {
            return Err(match a.first() {
                None | Some(Value::Nil) => "call of nil".into(),
                Some(v) => format!("non-function of type {}", v.type_name()).into(),
            });
        }
        FuncId::Html => {
            let text = eval_args(a, env)?;
            env.charge(text.len() * 5)?;
            owned(html_escape(&text))
        }
        FuncId::Js => {
            let text = eval_args(a, env)?;
            env.charge(text.len() * 6)?;
            owned(js_escape(&text))
        }
        FuncId::Urlquery => {
            let text = eval_args(a, env)?;
            env.charge(text.len() * 3)?;
            owned(query_escape(&text))
        }
        FuncId::Index => index(a)?,
        FuncId::Slice => slice(a)?,
        FuncId::Len => match &a[0] {
            Value::Nil => {
                return Err("reflect: call of reflect.Value.Type on zero Value".into());
            }
            v => match v.len() {
                Some(n) => Value::Int(n as i64),
                None => return Err(format!("len of type {}", v.type_name()).into()),
            },
        },
        FuncId::Not => Value::Bool(!a[0].truth()),
        FuncId::Print => owned(limited(sprint(a, env.string_max), env)?),
        FuncId::Println => owned(limited(sprintln(a, env.string_max), env)?),
        FuncId::Printf => owned(limited(sprintf(s(&a[0]), &a[1..], env.string_max), env)?),
        FuncId::Eq => Value::Bool(eq(&a[0], &a[1..])?),
        FuncId::Ne => Value::Bool(!eq(&a[0], &a[1..2])?),
        FuncId::Lt => Value::Bool(lt(&a[0], &a[1])?),
        FuncId::Le => Value::Bool(lt(&a[0], &a[1])? || eq(&a[0], &a[1..2])?),
        FuncId::Gt => Value::Bool(!(lt(&a[0], &a[1])? || eq(&a[0], &a[1..2])?)),
        FuncId::Ge => Value::Bool(!lt(&a[0], &a[1])?),

        FuncId::Line => Value::str(env.data.line()),
        FuncId::Timestamp => Value::Time(Box::new(Time::unix(0, env.data.timestamp_ns()))),
        FuncId::ToLower | FuncId::Lower => owned(go_to_lower(s(&a[0]))),
        FuncId::ToUpper | FuncId::Upper => owned(go_to_upper(s(&a[0]))),
        FuncId::Title => owned(go_title(s(&a[0]))),
        FuncId::Replace => owned(replace_n(s(&a[0]), s(&a[1]), s(&a[2]), int(&a[3]), env)?),
        FuncId::SprigReplace => owned(replace_n(s(&a[2]), s(&a[0]), s(&a[1]), -1, env)?),
        FuncId::Trim => owned(trim_cutset(s(&a[0]), s(&a[1]), true, true).to_string()),
        FuncId::TrimAll => owned(trim_cutset(s(&a[1]), s(&a[0]), true, true).to_string()),
        FuncId::TrimLeft => owned(trim_cutset(s(&a[0]), s(&a[1]), true, false).to_string()),
        FuncId::TrimRight => owned(trim_cutset(s(&a[0]), s(&a[1]), false, true).to_string()),
        FuncId::TrimPrefix => owned(trim_prefix(s(&a[0]), s(&a[1])).to_string()),
        FuncId::SprigTrimPrefix => owned(trim_prefix(s(&a[1]), s(&a[0])).to_string()),
        FuncId::TrimSuffix => owned(trim_suffix(s(&a[0]), s(&a[1])).to_string()),
        FuncId::SprigTrimSuffix => owned(trim_suffix(s(&a[1]), s(&a[0])).to_string()),
        FuncId::TrimSpace | FuncId::SprigTrim => owned(s(&a[0]).trim().to_string()),
        FuncId::RegexReplaceAll | FuncId::RegexReplaceAllLiteral => {
            let compiled;
            let re = match regex {
                Some(r) => r.as_ref().map_err(|e| CallError::Go(e.clone()))?,
                None => {
                    compiled = compile_regex(s(&a[0]))?;
                    &compiled
                }
            };
            let literal = id == FuncId::RegexReplaceAllLiteral;
            owned(regex_replace(re, s(&a[1]), s(&a[2]), literal, env)?)
        }
        FuncId::Count => {
            let compiled;
            let re = match regex {
                Some(r) => r.as_ref().map_err(|e| CallError::Go(e.clone()))?,
                None => {
                    compiled = compile_regex(s(&a[0]))?;
                    &compiled
                }
            };
            Value::Int(re.find_iter(s(&a[1])).count() as i64)
        }
        FuncId::Urldecode => owned(query_unescape(s(&a[0]))?),
        FuncId::Urlencode => {
            env.charge(s(&a[0]).len() * 3)?;
            owned(query_escape(s(&a[0])))
        }
        FuncId::Bytes => Value::Float(parse_bytes(s(&a[0]))?),
        FuncId::Duration | FuncId::DurationSeconds => {
            let d = crate::logql::duration::parse_go_duration(s(&a[0]))
                .map_err(|e| CallError::Go(e.to_string()))?;
            Value::Float((d / 1_000_000_000) as f64 + (d % 1_000_000_000) as f64 / 1e9)
        }
        FuncId::UnixEpochMillis => owned(time(&a[0]).unix_milli().to_string()),
        FuncId::UnixEpochNanos => owned(time(&a[0]).unix_nano().to_string()),
        FuncId::UnixEpoch => owned(time(&a[0]).unix_sec().to_string()),
        FuncId::ToDateInZone => {
            let loc = gotime::load_location(s(&a[1])).unwrap_or(Location::Utc);
            let t = gotime::parse_in_location(s(&a[0]), s(&a[2]), &loc)
                .unwrap_or_else(|_| Time::zero());
            Value::Time(Box::new(t))
        }
        FuncId::ToDate => {
            let t = gotime::parse_in_location(s(&a[0]), s(&a[1]), &Location::Local)
                .unwrap_or_else(|_| Time::zero());
            Value::Time(Box::new(t))
        }
        FuncId::UnixToTime => Value::Time(Box::new(unix_to_time(s(&a[0]))?)),
        FuncId::Now => Value::Time(Box::new(Time::now())),
        FuncId::Date => {
            let t = match &a[1] {
                Value::Time(t) => (**t).clone(),
                Value::Int(n) | Value::Int64(n) => Time::unix(*n, 0),
                _ => Time::now(),
            };
            owned(t.in_location(Location::Local).format(s(&a[0])))
        }
        FuncId::AlignLeft | FuncId::AlignRight => {
            let count = int(&a[0]);
            env.charge(count.max(0) as usize)?;
            owned(align(count, s(&a[1]), id == FuncId::AlignLeft))
        }
        FuncId::B64dec => owned(b64_decode_loki(s(&a[0]))),
        FuncId::B64enc => {
            env.charge(s(&a[0]).len() / 3 * 4 + 4)?;
            owned(b64_encode(s(&a[0]).as_bytes()))
        }
        FuncId::Trunc => owned(trunc(int(&a[0]), s(&a[1]))),
        FuncId::Substr => owned(substring(int(&a[0]), int(&a[1]), s(&a[2]))),
        FuncId::Contains => Value::Bool(s(&a[1]).contains(s(&a[0]))),
        FuncId::HasPrefix => Value::Bool(s(&a[1]).starts_with(s(&a[0]))),
        FuncId::HasSuffix => Value::Bool(s(&a[1]).ends_with(s(&a[0]))),
        FuncId::Indent | FuncId::Nindent => {
            let spaces = int(&a[0]);
            if spaces < 0 {
                return Err("strings: negative Repeat count".into());
            }
            let text = s(&a[1]);
            let lines = text.matches('\n').count() + 1;
            env.charge(
                (spaces as usize)
                    .saturating_mul(lines)
                    .saturating_add(text.len() + 1),
            )?;
            let pad = " ".repeat(spaces as usize);
            let mut out = String::new();
            if id == FuncId::Nindent {
                out.push('\n');
            }
            out.push_str(&pad);
            out.push_str(&text.replace('\n', &format!("\n{pad}")));
            owned(out)
        }
        FuncId::Repeat => {
            let count = int(&a[0]);
            if count < 0 {
                return Err("strings: negative Repeat count".into());
            }
            let text = s(&a[1]);
            env.charge(text.len().saturating_mul(count as usize))?;
            owned(text.repeat(count as usize))
        }
        FuncId::ToInt => Value::Int(to_int64(&a[0])),
        FuncId::ToFloat64 => Value::Float(to_float64(&a[0])),
        FuncId::Add => Value::Int64(a.iter().fold(0i64, |acc, v| acc.wrapping_add(to_int64(v)))),
        FuncId::Sub => Value::Int64(to_int64(&a[0]).wrapping_sub(to_int64(&a[1]))),
        FuncId::Mul => Value::Int64(
            a[1..]
                .iter()
                .fold(to_int64(&a[0]), |acc, v| acc.wrapping_mul(to_int64(v))),
        ),
        FuncId::Div | FuncId::Mod => {
            let x = to_int64(&a[0]);
            let y = to_int64(&a[1]);
            if y == 0 {
                return Err("runtime error: integer divide by zero".into());
            }
            Value::Int64(if id == FuncId::Div {
                x.wrapping_div(y)
            } else {
                x.wrapping_rem(y)
            })
        }
        FuncId::Addf => {
            let first = Value::Float(0.0);
            Value::Float(decimal_op(&first, a, DecOp::Add)?)
        }
        FuncId::Subf => Value::Float(decimal_op(&a[0], &a[1..], DecOp::Sub)?),
        FuncId::Mulf => Value::Float(decimal_op(&a[0], &a[1..], DecOp::Mul)?),
        FuncId::Divf => Value::Float(decimal_op(&a[0], &a[1..], DecOp::Div)?),
        FuncId::Max => Value::Int64(a[1..].iter().fold(to_int64(&a[0]), |m, v| {
            let x = to_int64(v);
            if x > m { x } else { m }
        })),
        FuncId::Min => Value::Int64(a[1..].iter().fold(to_int64(&a[0]), |m, v| {
            let x = to_int64(v);
            if x < m { x } else { m }
        })),
        FuncId::Maxf => Value::Float(
            a[1..]
                .iter()
                .fold(to_float64(&a[0]), |m, v| go_max(m, to_float64(v))),
        ),
        FuncId::Minf => Value::Float(
            a[1..]
                .iter()
                .fold(to_float64(&a[0]), |m, v| go_min(m, to_float64(v))),
        ),
        FuncId::Ceil => Value::Float(to_float64(&a[0]).ceil()),
        FuncId::Floor => Value::Float(to_float64(&a[0]).floor()),
        FuncId::Round => {
            let round_on = match a.get(2) {
                Some(Value::Float(f)) => *f,
                _ => 0.5,
            };
            let val = to_float64(&a[0]);
            let pow = go_pow10(int(&a[1]) as f64);
            let digit = pow * val;
            let frac = digit.fract();
            let r = if frac >= round_on {
                digit.ceil()
            } else {
                digit.floor()
            };
            Value::Float(r / pow)
        }
        FuncId::FromJson => match serde_json::from_str::<serde_json::Value>(s(&a[0])) {
            Ok(v) => Value::from_json(v),
            Err(_) => Value::Nil,
        },
        FuncId::Default => {
            let given = a.get(1);
            match given {
                Some(g) if !g.is_empty() => g.clone(),
                _ => a[0].clone(),
            }
        }
    })
}

fn limited(s: Option<String>, env: &mut Env<'_>) -> Result<String, CallError> {
    match s {
        Some(s) => {
            env.charge(s.len())?;
            Ok(s)
        }
        None => Err(CallError::Limit(
            "a template function would build more than the render's limit".into(),
        )),
    }
}

/// `evalArgs` of `html`, `js` and `urlquery`: a single string as is, else `fmt.Sprint`.
fn eval_args(a: &[Value<'_>], env: &mut Env<'_>) -> Result<String, CallError> {
    if let [Value::Str(s)] = a {
        return Ok(s.to_string());
    }
    limited(sprint(a, env.string_max), env)
}

/// Go's `index` builtin.
fn index<'a>(a: &[Value<'a>]) -> CallResult<'a> {
    let mut item = a[0].clone();
    if item.is_nil() {
        return Err("index of untyped nil".into());
    }
    for ix in &a[1..] {
        item = match item {
            Value::Str(s) => {
                let x = index_arg(ix, s.len())?;
                match s.as_bytes().get(x) {
                    Some(b) => Value::Uint8(*b),
                    None => return Err("reflect: string index out of range".into()),
                }
            }
            Value::List(l) => {
                let x = index_arg(ix, l.len())?;
                match l.get(x) {
                    Some(v) => v.clone(),
                    None => return Err("reflect: slice index out of range".into()),
                }
            }
            Value::Labels(d) => {
                let key = map_key(ix)?;
                Value::str(d.get(key))
            }
            Value::Map(m) => {
                let key = map_key(ix)?;
                m.get(key).cloned().unwrap_or(Value::Nil)
            }
            Value::Nil => return Err("index of nil pointer".into()),
            other => {
                return Err(format!("can't index item of type {}", other.type_name()).into());
            }
        };
    }
    Ok(item)
}

fn map_key<'v>(ix: &'v Value<'_>) -> Result<&'v str, CallError> {
    match ix {
        Value::Str(s) => Ok(s),
        Value::Nil => Err("value is nil; should be of type string".into()),
        v => Err(format!("value has type {}; should be string", v.type_name()).into()),
    }
}

/// Go's `indexArg`: an integer index in `[0, cap]`.
fn index_arg(ix: &Value<'_>, cap: usize) -> Result<usize, CallError> {
    let x: i128 = match ix {
        Value::Uint8(u) => i128::from(*u),
        Value::Nil => return Err("cannot index slice/array with nil".into()),
        v => match v.int_of() {
            Some(i) => i128::from(i),
            None => {
                return Err(format!("cannot index slice/array with type {}", v.type_name()).into());
            }
        },
    };
    if x < 0 || x > cap as i128 {
        return Err(format!("index out of range: {x}").into());
    }
    Ok(x as usize)
}

/// Go's `slice` builtin.
fn slice<'a>(a: &[Value<'a>]) -> CallResult<'a> {
    let item = &a[0];
    let indexes = &a[1..];
    if item.is_nil() {
        return Err("slice of untyped nil".into());
    }
    if indexes.len() > 3 {
        return Err(format!("too many slice indexes: {}", indexes.len()).into());
    }
    let cap = match item {
        Value::Str(s) => {
            if indexes.len() == 3 {
                return Err("cannot 3-index slice a string".into());
            }
            s.len()
        }
        Value::List(l) => l.len(),
        v => return Err(format!("can't slice item of type {}", v.type_name()).into()),
    };
    let mut idx = [0usize, cap, 0];
    for (i, ix) in indexes.iter().enumerate() {
        idx[i] = index_arg(ix, cap)?;
    }
    if idx[0] > idx[1] {
        return Err(format!("invalid slice index: {} > {}", idx[0], idx[1]).into());
    }
    if indexes.len() == 3 && idx[1] > idx[2] {
        return Err(format!("invalid slice index: {} > {}", idx[1], idx[2]).into());
    }
    Ok(match item {
        Value::Str(s) => {
            let bytes = &s.as_bytes()[idx[0]..idx[1]];
            owned(String::from_utf8_lossy(bytes).into_owned())
        }
        Value::List(l) => Value::List(Rc::new(l[idx[0]..idx[1]].to_vec())),
        _ => Value::Nil,
    })
}

/// Go's `eq`: `a == b || a == c || ...`.
pub(crate) fn eq(a: &Value<'_>, rest: &[Value<'_>]) -> Result<bool, CallError> {
    if rest.is_empty() {
        return Err("missing argument for comparison".into());
    }
    let k1 = a.basic_kind();
    for b in rest {
        let k2 = b.basic_kind();
        let truth = if k1 != k2 {
            match (k1, k2) {
                (Kind::Int, Kind::Uint) => a.int_of().unwrap_or(0) == uint_of(b) as i64,
                (Kind::Uint, Kind::Int) => b.int_of().unwrap_or(0) == uint_of(a) as i64,
                _ => {
                    if !a.is_nil() && !b.is_nil() {
                        return Err(format!(
                            "incompatible types for comparison: {} and {}",
                            a.type_name(),
                            b.type_name()
                        )
                        .into());
                    }
                    false
                }
            }
        } else {
            match (a, b) {
                (Value::Bool(x), Value::Bool(y)) => x == y,
                (Value::Float(x), Value::Float(y)) => x == y,
                (Value::Complex(r1, i1), Value::Complex(r2, i2)) => r1 == r2 && i1 == i2,
                (Value::Str(x), Value::Str(y)) => x == y,
                (Value::Uint8(x), Value::Uint8(y)) => x == y,
                _ if k1 == Kind::Int => a.int_of() == b.int_of(),
                _ => eq_other(a, b)?,
            }
        };
        if truth {
            return Ok(true);
        }
    }
    Ok(false)
}

fn uint_of(v: &Value<'_>) -> u64 {
    match v {
        Value::Uint8(u) => u64::from(*u),
        _ => 0,
    }
}

/// `eq` on values without a basic kind: nils, times, maps, lists.
fn eq_other(a: &Value<'_>, b: &Value<'_>) -> Result<bool, CallError> {
    if a.is_nil() || b.is_nil() {
        return Ok(a.is_nil() && b.is_nil());
    }
    if a.kind_name() != b.kind_name() {
        return Err(format!(
            "non-comparable types {}: {}, {}: {}",
            gofmt::sprint_value(a),
            a.type_name(),
            b.type_name(),
            gofmt::sprint_value(b)
        )
        .into());
    }
    match (a, b) {
        (Value::Time(x), Value::Time(y)) => Ok(x.identical(y)),
        _ => Err(format!(
            "non-comparable type {}: {}",
            gofmt::sprint_value(b),
            b.type_name()
        )
        .into()),
    }
}

/// Go's `lt`.
fn lt(a: &Value<'_>, b: &Value<'_>) -> Result<bool, CallError> {
    let k1 = a.basic_kind();
    let k2 = b.basic_kind();
    if k1 == Kind::Invalid || k2 == Kind::Invalid {
        return Err("invalid type for comparison".into());
    }
    if k1 != k2 {
        return match (k1, k2) {
            (Kind::Int, Kind::Uint) => {
                let x = a.int_of().unwrap_or(0);
                Ok(x < 0 || (x as u64) < uint_of(b))
            }
            (Kind::Uint, Kind::Int) => {
                let y = b.int_of().unwrap_or(0);
                Ok(y >= 0 && uint_of(a) < y as u64)
            }
            _ => Err(format!(
                "incompatible types for comparison: {} and {}",
                a.type_name(),
                b.type_name()
            )
            .into()),
        };
    }
    Ok(match (a, b) {
        (Value::Float(x), Value::Float(y)) => x < y,
        (Value::Str(x), Value::Str(y)) => x < y,
        (Value::Uint8(x), Value::Uint8(y)) => x < y,
        _ if k1 == Kind::Int => a.int_of() < b.int_of(),
        _ => return Err("invalid type for comparison".into()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_helpers_match_loki() {
        assert_eq!(trunc(-1, "Hello, 世界"), "界");
        assert_eq!(substring(1, 8, "Hello, 世界"), "ello, 世");
        assert_eq!(align(20, "Hello, 世界", false), "           Hello, 世界");
        assert_eq!(
            go_title("hello wORLD foo_bar x-y"),
            "Hello WORLD Foo_bar X-Y"
        );
        assert_eq!(go_to_upper("straße"), "STRAßE");
        assert_eq!(b64_decode_loki("Zm9vYmE"), "fooba");
        assert_eq!(b64_decode_loki("Zm9vYg"), "foob");
        assert_eq!(
            b64_decode_loki("Zm9v!"),
            "illegal base64 data at input byte 4"
        );
        assert_eq!(
            b64_encode(b"i'm a string, encode me!"),
            "aSdtIGEgc3RyaW5nLCBlbmNvZGUgbWUh"
        );
        assert_eq!(query_escape("a b&c/é"), "a+b%26c%2F%C3%A9");
        assert_eq!(query_unescape("a+b%26").unwrap(), "a b&");
        assert!(
            matches!(query_unescape("%zz"), Err(CallError::Go(m)) if m == "invalid URL escape \"%zz\"")
        );
        assert_eq!(
            html_escape("<a href='x'>&\"</a>"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&#34;&lt;/a&gt;"
        );
        assert_eq!(js_escape("a'b=<"), "a\\'b\\u003D\\u003C");
    }

    #[test]
    fn conversions_follow_cast() {
        assert_eq!(to_int64(&Value::str("2.5")), 2);
        assert_eq!(to_int64(&Value::str("0x10")), 16);
        assert_eq!(to_int64(&Value::str("abc")), 0);
        assert_eq!(to_int64(&Value::Float(-2.7)), -2);
        assert_eq!(to_float64(&Value::str("3.5")), 3.5);
        assert_eq!(to_float64(&Value::str("1e400")), 0.0);
        assert_eq!(parse_bytes("3 kB").unwrap(), 3000.0);
        assert_eq!(parse_bytes("3MB").unwrap(), 3e6);
        assert_eq!(parse_bytes("1,000 KiB").unwrap(), 1_024_000.0);
    }

    #[test]
    fn float_math_is_decimal() {
        let f = |v: f64| Value::Float(v);
        assert_eq!(
            decimal_op(&f(0.0), &[f(1.1), f(2.2)], DecOp::Add).unwrap(),
            3.3
        );
        assert_eq!(
            decimal_op(&f(10.0), &[f(2.0), f(4.0)], DecOp::Div).unwrap(),
            1.25
        );
        assert_eq!(
            decimal_op(&f(5.5), &[f(2.0), f(1.5)], DecOp::Sub).unwrap(),
            2.0
        );
        assert_eq!(
            decimal_op(&f(1.0), &[f(3.0)], DecOp::Div).unwrap(),
            0.3333333333333333
        );
        assert!(decimal_op(&f(1.0), &[f(0.0)], DecOp::Div).is_err());
        assert_eq!(go_max(-0.0, 0.0).to_bits(), 0.0f64.to_bits());
    }
}

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

use std::borrow::Cow;
use std::rc::Rc;

use super::gofmt::{self, sprint, sprintf, sprintln};
use super::gotime::{self, Location, Time};
use super::strconv;
use super::value::{Kind, Value};
use super::{REGEX_DFA_BYTES_MAX, REGEX_SIZE_BYTES_MAX, TemplateData};

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

/// Go's `strings.ToUpper`: each rune by its simple upper-case mapping.
fn go_to_upper(s: &str) -> String {
    if s.is_ascii() {
        return s.to_ascii_uppercase();
    }
    s.chars().map(simple_upper).collect()
}

fn simple_upper(c: char) -> char {
    let mut u = c.to_uppercase();
    match (u.next(), u.next()) {
        (Some(x), None) => x,
        _ => c,
    }
}

/// Go's `strings.ToLower`: each rune by its simple lower-case mapping.
fn go_to_lower(s: &str) -> String {
    if s.is_ascii() {
        return s.to_ascii_lowercase();
    }
    s.chars()
        .map(|c| {
            if c == '\u{130}' {
                return 'i';
            }
            let mut l = c.to_lowercase();
            match (l.next(), l.next()) {
                (Some(x), None) => x,
                _ => c,
            }
        })
        .collect()
}

/// Go's `unicode.ToTitle`: the upper case, except for the four digraphs with a title case.
fn to_title(c: char) -> char {
    match c {
        '\u{1C4}'..='\u{1C6}' => '\u{1C5}',
        '\u{1C7}'..='\u{1C9}' => '\u{1C8}',
        '\u{1CA}'..='\u{1CC}' => '\u{1CB}',
        '\u{1F1}'..='\u{1F3}' => '\u{1F2}',
        c => simple_upper(c),
    }
}

/// Go's `strings.Title`: the first letter of each word in title case.
fn go_title(s: &str) -> String {
    let is_separator = |c: char| {
        if c.is_ascii() {
            return !(c.is_ascii_alphanumeric() || c == '_');
        }
        if c.is_alphabetic() || c.is_numeric() {
            return false;
        }
        c.is_whitespace()
    };
    let mut prev = ' ';
    s.chars()
        .map(|c| {
            let out = if is_separator(prev) { to_title(c) } else { c };
            prev = c;
            out
        })
        .collect()
}

/// Go's `strings.Replace(s, old, new, n)`, refusing results above the render's budget.
fn replace_n(
    s: &str,
    old: &str,
    new: &str,
    n: i64,
    env: &mut Env<'_>,
) -> Result<String, CallError> {
    if n == 0 || old == new {
        return Ok(s.to_string());
    }
    let matches = if old.is_empty() {
        s.chars().count() + 1
    } else {
        s.matches(old).count()
    };
    let matches = if n < 0 {
        matches
    } else {
        matches.min(n as usize)
    };
    env.charge(s.len().saturating_add(matches.saturating_mul(new.len())))?;
    Ok(if n < 0 {
        s.replace(old, new)
    } else {
        s.replacen(old, new, n as usize)
    })
}

fn trim_cutset<'s>(s: &'s str, cutset: &str, left: bool, right: bool) -> &'s str {
    if s.is_empty() || cutset.is_empty() {
        return s;
    }
    let f = |c: char| cutset.contains(c);
    match (left, right) {
        (true, true) => s.trim_matches(f),
        (true, false) => s.trim_start_matches(f),
        _ => s.trim_end_matches(f),
    }
}

fn trim_prefix<'s>(s: &'s str, prefix: &str) -> &'s str {
    s.strip_prefix(prefix).unwrap_or(s)
}

fn trim_suffix<'s>(s: &'s str, suffix: &str) -> &'s str {
    s.strip_suffix(suffix).unwrap_or(s)
}

/// Go's `Regexp.ReplaceAllString` (`$1`, `${name}` expanded) or `ReplaceAllLiteralString`.
fn regex_replace(
    re: &regex::Regex,
    s: &str,
    repl: &str,
    literal: bool,
    env: &mut Env<'_>,
) -> Result<String, CallError> {
    let mut out = String::with_capacity(s.len());
    let mut last = 0;
    for caps in re.captures_iter(s) {
        let Some(m) = caps.get(0) else { continue };
        out.push_str(&s[last..m.start()]);
        if literal {
            out.push_str(repl);
        } else {
            caps.expand(repl, &mut out);
        }
        last = m.end();
        if out.len() > env.string_max {
            return Err(CallError::Limit(
                "a regex replacement would build more than the render's limit".into(),
            ));
        }
    }
    out.push_str(&s[last..]);
    env.charge(out.len())?;
    Ok(out)
}

/// Loki's `trunc`: the first `c` runes, or the last `-c` runes when `c` is negative.
pub(crate) fn trunc(c: i64, s: &str) -> String {
    let runes: Vec<char> = s.chars().collect();
    let l = runes.len() as i64;
    if c < 0 && l + c > 0 {
        return runes[(l + c) as usize..].iter().collect();
    }
    if c >= 0 && l > c {
        return runes[..c as usize].iter().collect();
    }
    s.to_string()
}

/// Loki's `substring(start, end, s)` in runes.
pub(crate) fn substring(start: i64, end: i64, s: &str) -> String {
    let runes: Vec<char> = s.chars().collect();
    let l = runes.len() as i64;
    let end = end.min(l);
    let start = start.min(l);
    if start < 0 {
        if end < 0 {
            return String::new();
        }
        return runes[..end as usize].iter().collect();
    }
    if end < 0 {
        return runes[start as usize..].iter().collect();
    }
    if start > end {
        return String::new();
    }
    runes[start as usize..end as usize].iter().collect()
}

/// Loki's `alignLeft`/`alignRight`: pad with spaces or cut to `count` runes.
pub(crate) fn align(count: i64, src: &str, left: bool) -> String {
    let runes: Vec<char> = src.chars().collect();
    let l = runes.len() as i64;
    if count < 0 || count == l {
        return src.to_string();
    }
    let pad = count - l;
    if pad > 0 {
        let spaces = " ".repeat(pad as usize);
        return if left {
            format!("{src}{spaces}")
        } else {
            format!("{spaces}{src}")
        };
    }
    if left {
        runes[..count as usize].iter().collect()
    } else {
        runes[(l - count) as usize..].iter().collect()
    }
}

/// Loki's `unixToTime`: an epoch in days, seconds, milliseconds, microseconds or
/// nanoseconds, told apart by its length.
fn unix_to_time(epoch: &str) -> Result<Time, CallError> {
    let i = strconv::parse_int_base(epoch, 10).map_err(|e| {
        CallError::Go(format!(
            "unable to parse time '{epoch}': {}",
            strconv::num_error("ParseInt", epoch, e)
        ))
    })?;
    Ok(match epoch.len() {
        5 => Time::unix(i.wrapping_mul(86_400), 0),
        10 => Time::unix(i, 0),
        13 => Time::unix(0, i.wrapping_mul(1_000_000)),
        16 => Time::unix(0, i.wrapping_mul(1000)),
        19 => Time::unix(0, i),
        _ => {
            return Err(format!("unable to parse time '{epoch}': %!w(<nil>)").into());
        }
    })
}

/// go-humanize's `ParseBytes`: `3 kB`, `3MB`, `1.5 GiB`, `1,000` bytes.
fn parse_bytes(s: &str) -> Result<f64, CallError> {
    let last_digit = s
        .bytes()
        .take_while(|&c| c.is_ascii_digit() || c == b'.' || c == b',')
        .count();
    let num: String = s[..last_digit].chars().filter(|&c| c != ',').collect();
    let f = strconv::parse_float_checked(&num)
        .map_err(|(e, _)| CallError::Go(strconv::num_error("ParseFloat", &num, e)))?;
    let extra = s[last_digit..].trim().to_lowercase();
    let m: u64 = match extra.as_str() {
        "" | "b" => 1,
        "kib" | "ki" => 1 << 10,
        "kb" | "k" => 1000,
        "mib" | "mi" => 1 << 20,
        "mb" | "m" => 1_000_000,
        "gib" | "gi" => 1 << 30,
        "gb" | "g" => 1_000_000_000,
        "tib" | "ti" => 1 << 40,
        "tb" | "t" => 1_000_000_000_000,
        "pib" | "pi" => 1 << 50,
        "pb" | "p" => 1_000_000_000_000_000,
        "eib" | "ei" => 1 << 60,
        "eb" | "e" => 1_000_000_000_000_000_000,
        _ => return Err(format!("unhandled size name: {extra}").into()),
    };
    let v = f * m as f64;
    if v >= u64::MAX as f64 {
        return Err(format!("too large: {s}").into());
    }
    Ok((v as u64) as f64)
}

/// Go's `url.QueryEscape`.
pub(crate) fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(b))
            }
            b' ' => out.push('+'),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Go's `url.QueryUnescape`.
fn query_unescape(s: &str) -> Result<String, CallError> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if i + 2 >= b.len() || !b[i + 1].is_ascii_hexdigit() || !b[i + 2].is_ascii_hexdigit() {
                let bad = &b[i..(i + 3).min(b.len())];
                return Err(format!(
                    "invalid URL escape {}",
                    gofmt::quote(&String::from_utf8_lossy(bad))
                )
                .into());
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
                out.push(hex(b[i + 1]) << 4 | hex(b[i + 2]));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Ok(String::from_utf8(out)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
}

/// Go's `template.HTMLEscapeString`.
fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\0' => out.push('\u{FFFD}'),
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// Go's `template.JSEscapeString`.
fn js_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '<' => out.push_str("\\u003C"),
            '>' => out.push_str("\\u003E"),
            '&' => out.push_str("\\u0026"),
            '=' => out.push_str("\\u003D"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u00{:02X}", c as u32)),
            c if c.is_ascii() => out.push(c),
            c if gofmt::is_print(c) => out.push(c),
            c => out.push_str(&format!("\\u{:04X}", c as u32)),
        }
    }
    out
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Go's `base64.StdEncoding.EncodeToString`.
fn b64_encode(b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len().div_ceil(3) * 4);
    for chunk in b.chunks(3) {
        let v = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(B64[(v >> shift & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn b64_value(c: u8) -> Option<u32> {
    B64.iter().position(|&x| x == c).map(|p| p as u32)
}

/// Go's `base64.StdEncoding.DecodeString`, with its error offsets.
fn b64_decode(src: &[u8]) -> Result<Vec<u8>, usize> {
    let mut out = Vec::with_capacity(src.len() / 4 * 3);
    let mut si = 0;
    let newline = |c: u8| c == b'\n' || c == b'\r';
    loop {
        let mut dbuf = [0u32; 4];
        let mut dlen = 4;
        let mut j = 0;
        let mut trailing_error = None;
        while j < 4 {
            if si == src.len() {
                if j == 0 {
                    return Ok(out);
                }
                return Err(si - j);
            }
            let c = src[si];
            si += 1;
            if let Some(v) = b64_value(c) {
                dbuf[j] = v;
                j += 1;
                continue;
            }
            if newline(c) {
                continue;
            }
            if c != b'=' {
                return Err(si - 1);
            }
            match j {
                0 | 1 => return Err(si - 1),
                2 => {
                    while si < src.len() && newline(src[si]) {
                        si += 1;
                    }
                    if si == src.len() {
                        return Err(src.len());
                    }
                    if src[si] != b'=' {
                        return Err(si - 1);
                    }
                    si += 1;
                }
                _ => {}
            }
            while si < src.len() && newline(src[si]) {
                si += 1;
            }
            if si < src.len() {
                trailing_error = Some(si);
            }
            dlen = j;
            break;
        }
        let val = dbuf[0] << 18 | dbuf[1] << 12 | dbuf[2] << 6 | dbuf[3];
        let bytes = [(val >> 16) as u8, (val >> 8) as u8, val as u8];
        out.extend_from_slice(&bytes[..dlen - 1]);
        if let Some(e) = trailing_error {
            return Err(e);
        }
        if dlen < 4 {
            return Ok(out);
        }
    }
}

/// Loki's `b64dec`: pads a short input, decodes, and returns Go's error text on failure.
fn b64_decode_loki(v: &str) -> String {
    let mut v = v.to_string();
    let rem = v.len() % 4;
    if rem != 0 && rem != 1 {
        v.push_str(&"=".repeat(4 - rem));
    }
    match b64_decode(v.as_bytes()) {
        Ok(b) => String::from_utf8(b)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
        Err(at) => format!("illegal base64 data at input byte {at}"),
    }
}

/// Go's float-to-int conversion on amd64: truncation, and the minimum on overflow or NaN.
fn go_f64_to_i64(f: f64) -> i64 {
    /// 2^63, exactly.
    const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;
    if (-TWO_POW_63..TWO_POW_63).contains(&f) {
        f as i64
    } else {
        i64::MIN
    }
}

/// spf13/cast's `trimDecimal`: `"2.5"` reads as `"2"` for an integer conversion.
fn trim_decimal(s: &str) -> Cow<'_, str> {
    if !s.contains('.') {
        return Cow::Borrowed(s);
    }
    let b = s.as_bytes();
    let sign = usize::from(matches!(b.first(), Some(b'+' | b'-')));
    let int_end = sign + b[sign..].iter().take_while(|c| c.is_ascii_digit()).count();
    let rest = &b[int_end..];
    let frac_ok = rest.first() == Some(&b'.') && rest[1..].iter().all(u8::is_ascii_digit);
    if !frac_ok {
        return Cow::Borrowed(s);
    }
    match &s[..int_end] {
        "" => Cow::Borrowed("0"),
        "-" => Cow::Borrowed("-0"),
        "+" => Cow::Borrowed("+0"),
        i => Cow::Borrowed(i),
    }
}

/// spf13/cast's `ToInt64` (and `ToInt`): numbers converted, booleans 1/0, strings parsed
/// (base prefixes allowed, a fraction dropped), anything else 0.
pub(crate) fn to_int64(v: &Value<'_>) -> i64 {
    match v {
        Value::Int(i)
        | Value::Int64(i)
        | Value::Month(i)
        | Value::Weekday(i)
        | Value::Duration(i) => *i,
        Value::Uint8(u) => i64::from(*u),
        Value::Float(f) => go_f64_to_i64(*f),
        Value::Bool(b) => i64::from(*b),
        Value::Str(s) => {
            if s.is_empty() {
                return 0;
            }
            strconv::parse_int_base(&trim_decimal(s), 0).unwrap_or(0)
        }
        _ => 0,
    }
}

/// spf13/cast's `ToFloat64`.
pub(crate) fn to_float64(v: &Value<'_>) -> f64 {
    match v {
        Value::Int(i)
        | Value::Int64(i)
        | Value::Month(i)
        | Value::Weekday(i)
        | Value::Duration(i) => *i as f64,
        Value::Uint8(u) => f64::from(*u),
        Value::Float(f) => *f,
        Value::Bool(b) => f64::from(u8::from(*b)),
        Value::Str(s) => {
            if s.is_empty() {
                return 0.0;
            }
            strconv::parse_float_checked(s).unwrap_or(0.0)
        }
        _ => 0.0,
    }
}

/// Go's `math.Max`.
fn go_max(x: f64, y: f64) -> f64 {
    if x == f64::INFINITY || y == f64::INFINITY {
        return f64::INFINITY;
    }
    if x.is_nan() || y.is_nan() {
        return f64::NAN;
    }
    if x == 0.0 && x == y {
        return if x.is_sign_negative() { y } else { x };
    }
    if x > y { x } else { y }
}

/// Go's `math.Min`.
fn go_min(x: f64, y: f64) -> f64 {
    if x == f64::NEG_INFINITY || y == f64::NEG_INFINITY {
        return f64::NEG_INFINITY;
    }
    if x.is_nan() || y.is_nan() {
        return f64::NAN;
    }
    if x == 0.0 && x == y {
        return if x.is_sign_negative() { x } else { y };
    }
    if x < y { x } else { y }
}

/// `math.Pow(10, p)`: exact for the integral powers a double holds exactly.
fn go_pow10(p: f64) -> f64 {
    if p.fract() == 0.0 && p.abs() <= 22.0 {
        let mut v = 1.0;
        for _ in 0..p.abs() as i32 {
            v *= 10.0;
        }
        return if p < 0.0 { 1.0 / v } else { v };
    }
    10f64.powf(p)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum DecOp {
    Add,
    Sub,
    Mul,
    Div,
}

/// A decimal `mant * 10^exp`, standing in for shopspring/decimal in sprig's float math.
#[derive(Clone, Copy)]
struct Dec {
    mant: i128,
    exp: i32,
}

impl Dec {
    /// `decimal.NewFromFloat`: the shortest decimal that reads back as `f`.
    fn from_f64(f: f64) -> Result<Dec, CallError> {
        if f.is_nan() || f.is_infinite() {
            return Err(format!(
                "Cannot create a Decimal from {}",
                gofmt::sprint_value(&Value::Float(f))
            )
            .into());
        }
        if f == 0.0 {
            return Ok(Dec { mant: 0, exp: 0 });
        }
        let text = format!("{:e}", f.abs());
        let (m, e) = text.split_once('e').unwrap_or((&text, "0"));
        let digits: String = m.chars().filter(char::is_ascii_digit).collect();
        let mant: i128 = digits.parse().unwrap_or(0);
        let exp: i32 = e.parse::<i32>().unwrap_or(0) - (digits.len() as i32 - 1);
        Ok(Dec {
            mant: if f < 0.0 { -mant } else { mant },
            exp,
        })
    }

    fn to_f64(self) -> f64 {
        format!("{}e{}", self.mant, self.exp).parse().unwrap_or(0.0)
    }

    fn scaled(self, exp: i32) -> Option<i128> {
        let shift = u32::try_from(self.exp - exp).ok()?;
        10i128.checked_pow(shift)?.checked_mul(self.mant)
    }

    fn op(self, other: Dec, op: DecOp) -> Result<Option<Dec>, CallError> {
        Ok(match op {
            DecOp::Add | DecOp::Sub => {
                let exp = self.exp.min(other.exp);
                let (Some(a), Some(b)) = (self.scaled(exp), other.scaled(exp)) else {
                    return Ok(None);
                };
                let m = if op == DecOp::Add {
                    a.checked_add(b)
                } else {
                    a.checked_sub(b)
                };
                m.map(|mant| Dec { mant, exp })
            }
            DecOp::Mul => self.mant.checked_mul(other.mant).map(|mant| Dec {
                mant,
                exp: self.exp + other.exp,
            }),
            DecOp::Div => {
                if other.mant == 0 {
                    return Err("decimal division by 0".into());
                }
                // Round to 16 decimal places, halves away from zero (decimal.DivRound).
                let k = self.exp - other.exp + 16;
                let (n, d) = if k >= 0 {
                    let Some(p) = 10i128.checked_pow(k as u32) else {
                        return Ok(None);
                    };
                    (self.mant.checked_mul(p), Some(other.mant))
                } else {
                    let Some(p) = 10i128.checked_pow((-k) as u32) else {
                        return Ok(None);
                    };
                    (Some(self.mant), other.mant.checked_mul(p))
                };
                let (Some(n), Some(d)) = (n, d) else {
                    return Ok(None);
                };
                let mut q = n / d;
                let r = n % d;
                if r.unsigned_abs().saturating_mul(2) >= d.unsigned_abs() {
                    let Some(rounded) = q.checked_add(if (n < 0) != (d < 0) { -1 } else { 1 })
                    else {
                        return Ok(None);
                    };
                    q = rounded;
                }
                Some(Dec { mant: q, exp: -16 })
            }
        })
    }
}

/// Sprig's `addf`/`subf`/`mulf`/`divf`: decimal arithmetic on the shortest decimal forms
/// of the operands (so `addf 1.1 2.2` is 3.3), falling back to floating point where the
/// decimal would not fit.
fn decimal_op(first: &Value<'_>, rest: &[Value<'_>], op: DecOp) -> Result<f64, CallError> {
    let mut acc = Dec::from_f64(to_float64(first))?;
    let mut float = to_float64(first);
    let mut exact = true;
    for v in rest {
        let x = to_float64(v);
        let d = Dec::from_f64(x)?;
        if exact {
            match acc.op(d, op)? {
                Some(r) => {
                    acc = r;
                    float = r.to_f64();
                    continue;
                }
                None => exact = false,
            }
        }
        float = match op {
            DecOp::Add => float + x,
            DecOp::Sub => float - x,
            DecOp::Mul => float * x,
            DecOp::Div => {
                if x == 0.0 {
                    return Err("decimal division by 0".into());
                }
                float / x
            }
        };
    }
    Ok(if exact { acc.to_f64() } else { float })
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

//! The dynamic values a template computes with, standing in for Go's `reflect.Value`.
//!
//! Which question it answers: "what Go type would this value have in Loki, and how does Go
//! treat it?" Go's template engine type-checks function arguments at run time (an `int64`
//! is not an `int`), so the variants keep Go's types apart where Loki's functions tell them
//! apart, and carry Go's type names for its error messages.

use std::cell::OnceCell;
use std::collections::BTreeMap;
use std::fmt;
use std::ops::Deref;
use std::rc::Rc;

use super::TemplateData;
use super::gotime::Time;

/// A string value: borrowed from the template or the data, or built by a function and
/// shared, so that copying a value (into a variable, a loop, an argument) never copies text.
#[derive(Clone)]
pub(crate) enum Text<'a> {
    Borrowed(&'a str),
    Shared(Rc<str>),
}

impl Deref for Text<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        match self {
            Text::Borrowed(s) => s,
            Text::Shared(s) => s,
        }
    }
}

impl PartialEq for Text<'_> {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl PartialOrd for Text<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some((**self).cmp(&**other))
    }
}

impl fmt::Debug for Text<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// Name-value pairs sorted by name.
pub(crate) type SortedLabels = Rc<[(Rc<str>, Rc<str>)]>;

/// The data a render runs on: the labels of one line, Loki's `map[string]string`. The
/// sorted list and the count are computed once per render, when first needed.
pub(crate) struct Labels<'a> {
    pub(crate) data: &'a dyn TemplateData,
    sorted: OnceCell<SortedLabels>,
}

impl<'a> Labels<'a> {
    pub(crate) fn new(data: &'a dyn TemplateData) -> Labels<'a> {
        Labels {
            data,
            sorted: OnceCell::new(),
        }
    }

    /// A label's value; a missing label is the empty string (`missingkey=zero`).
    pub(crate) fn get(&self, name: &str) -> &'a str {
        self.data.label(name).unwrap_or("")
    }

    /// The labels by name, as Go iterates and prints a map.
    pub(crate) fn sorted(&self) -> SortedLabels {
        self.sorted
            .get_or_init(|| {
                let mut pairs: Vec<(Rc<str>, Rc<str>)> = Vec::new();
                self.data
                    .for_each_label(&mut |k, v| pairs.push((Rc::from(k), Rc::from(v))));
                pairs.sort();
                pairs.dedup_by(|a, b| a.0 == b.0);
                pairs.into()
            })
            .clone()
    }
}

/// One value. `'a` is the lifetime of the render: label values and string literals are
/// borrowed, not copied.
#[derive(Clone)]
pub(crate) enum Value<'a> {
    /// Go's invalid `reflect.Value`: an untyped nil, a missing map entry of interface type.
    Nil,
    Bool(bool),
    /// Go's `int` (64 bits, as on every platform Loki runs on).
    Int(i64),
    Int64(i64),
    /// A byte: what `index` returns for a string.
    Uint8(u8),
    Float(f64),
    Complex(f64, f64),
    Str(Text<'a>),
    Time(Box<Time>),
    /// `time.Month`, 1 to 12, printed by name.
    Month(i64),
    /// `time.Weekday`, 0 (Sunday) to 6, printed by name.
    Weekday(i64),
    /// `time.Duration` in nanoseconds, printed as `1h2m3s`.
    Duration(i64),
    /// The data the template runs on: Loki's `map[string]string` of labels.
    Labels(&'a Labels<'a>),
    /// `map[string]interface{}`, from `fromJson`.
    Map(Rc<BTreeMap<Rc<str>, Value<'a>>>),
    /// `[]interface{}`, from `fromJson`.
    List(Rc<Vec<Value<'a>>>),
}

/// Go's comparison kinds (`text/template`'s `basicKind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Invalid,
    Bool,
    Complex,
    Int,
    Float,
    String,
    Uint,
}

impl<'a> Value<'a> {
    pub(crate) fn str(s: &'a str) -> Value<'a> {
        Value::Str(Text::Borrowed(s))
    }

    pub(crate) fn string(s: String) -> Value<'a> {
        Value::Str(Text::Shared(Rc::from(s)))
    }

    pub(crate) fn is_nil(&self) -> bool {
        matches!(self, Value::Nil)
    }

    /// Go's `reflect.Type.String()` of the value.
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            Value::Nil => "<nil>",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Int64(_) => "int64",
            Value::Uint8(_) => "uint8",
            Value::Float(_) => "float64",
            Value::Complex(..) => "complex128",
            Value::Str(_) => "string",
            Value::Time(_) => "time.Time",
            Value::Month(_) => "time.Month",
            Value::Weekday(_) => "time.Weekday",
            Value::Duration(_) => "time.Duration",
            Value::Labels(_) => "map[string]string",
            Value::Map(_) => "map[string]interface {}",
            Value::List(_) => "[]interface {}",
        }
    }

    /// Go's `reflect.Kind().String()`, for the few messages that name a kind.
    pub(crate) fn kind_name(&self) -> &'static str {
        match self {
            Value::Nil => "invalid",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Int64(_) | Value::Month(_) | Value::Weekday(_) | Value::Duration(_) => "int64",
            Value::Uint8(_) => "uint8",
            Value::Float(_) => "float64",
            Value::Complex(..) => "complex128",
            Value::Str(_) => "string",
            Value::Time(_) => "struct",
            Value::Labels(_) | Value::Map(_) => "map",
            Value::List(_) => "slice",
        }
    }

    pub(crate) fn basic_kind(&self) -> Kind {
        match self {
            Value::Bool(_) => Kind::Bool,
            Value::Int(_)
            | Value::Int64(_)
            | Value::Month(_)
            | Value::Weekday(_)
            | Value::Duration(_) => Kind::Int,
            Value::Uint8(_) => Kind::Uint,
            Value::Float(_) => Kind::Float,
            Value::Complex(..) => Kind::Complex,
            Value::Str(_) => Kind::String,
            _ => Kind::Invalid,
        }
    }

    /// The integer of an int-kinded value (Go's `reflect.Value.Int()`).
    pub(crate) fn int_of(&self) -> Option<i64> {
        match self {
            Value::Int(i)
            | Value::Int64(i)
            | Value::Month(i)
            | Value::Weekday(i)
            | Value::Duration(i) => Some(*i),
            _ => None,
        }
    }

    /// The length Go's `len` reports, if the value has one.
    pub(crate) fn len(&self) -> Option<usize> {
        match self {
            Value::Str(s) => Some(s.len()),
            Value::Map(m) => Some(m.len()),
            Value::List(l) => Some(l.len()),
            Value::Labels(d) => Some(d.sorted().len()),
            _ => None,
        }
    }

    /// Go's `isTrue`: the truth of `if`, `with`, `and`, `or`, `not`.
    pub(crate) fn truth(&self) -> bool {
        match self {
            Value::Nil => false,
            Value::Bool(b) => *b,
            Value::Int(i)
            | Value::Int64(i)
            | Value::Month(i)
            | Value::Weekday(i)
            | Value::Duration(i) => *i != 0,
            Value::Uint8(u) => *u != 0,
            Value::Float(f) => *f != 0.0,
            Value::Complex(r, i) => *r != 0.0 || *i != 0.0,
            Value::Str(s) => !s.is_empty(),
            Value::Time(_) => true,
            Value::Labels(_) | Value::Map(_) | Value::List(_) => self.len().unwrap_or(0) > 0,
        }
    }

    /// Sprig's `empty`: the zero value of its type (a `Time` is never empty).
    pub(crate) fn is_empty(&self) -> bool {
        !self.truth() && !matches!(self, Value::Time(_))
    }

    /// Converts a JSON document into Go's `interface{}` shapes (`encoding/json`'s defaults:
    /// every number a `float64`).
    pub(crate) fn from_json(v: serde_json::Value) -> Value<'a> {
        match v {
            serde_json::Value::Null => Value::Nil,
            serde_json::Value::Bool(b) => Value::Bool(b),
            serde_json::Value::Number(n) => Value::Float(n.as_f64().unwrap_or(0.0)),
            serde_json::Value::String(s) => Value::string(s),
            serde_json::Value::Array(a) => {
                Value::List(Rc::new(a.into_iter().map(Value::from_json).collect()))
            }
            serde_json::Value::Object(o) => Value::Map(Rc::new(
                o.into_iter()
                    .map(|(k, v)| (Rc::from(k), Value::from_json(v)))
                    .collect(),
            )),
        }
    }
}

impl fmt::Debug for Value<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}({})",
            self.type_name(),
            super::gofmt::sprint_value(self)
        )
    }
}

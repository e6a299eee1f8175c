//! Calls: Go's `evalCall` and `evalArg` (argument counts, run-time type checks against
//! the signatures, Go's messages), and the methods a template may call on a value
//! (`Time.Format`, `Duration.Seconds`, ...).

use super::*;

impl<'a> State<'a, '_> {
    /// Go's `evalCall`: checks the argument count, evaluates the arguments against the
    /// parameter types, and calls.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn eval_call(
        &mut self,
        dot: &Value<'a>,
        callee: Callee<'a>,
        node: At<'a>,
        name: &str,
        args: Option<&'a [Arg]>,
        final_: Option<Value<'a>>,
        regex: Option<&Result<regex::Regex, String>>,
    ) -> EResult<Value<'a>> {
        let args: &'a [Arg] = match args {
            Some(a) if !a.is_empty() => &a[1..],
            _ => &[],
        };
        let sig = callee.sig();
        let num_in = args.len() + usize::from(final_.is_some());
        let num_fixed = sig.params.len();
        if sig.variadic.is_some() {
            if num_in < num_fixed {
                return Err(self.errorf(format!(
                    "wrong number of args for {name}: want at least {num_fixed} got {}",
                    args.len()
                )));
            }
        } else if num_in != num_fixed {
            return Err(self.errorf(format!(
                "wrong number of args for {name}: want {num_fixed} got {num_in}"
            )));
        }
        // `and` and `or` short-circuit.
        if let Callee::Func(f @ (FuncId::And | FuncId::Or)) = callee {
            let want = f == FuncId::Or;
            let mut v = Value::Nil;
            for arg in args {
                v = self.eval_arg(dot, Ty::Reflect, arg)?;
                if v.truth() == want {
                    return Ok(v);
                }
            }
            if let Some(f) = final_ {
                v = f;
            }
            return Ok(v);
        }
        let mut argv: Vec<Value<'a>> = Vec::with_capacity(num_in);
        let fixed_args = if sig.variadic.is_some() {
            num_fixed.min(args.len())
        } else {
            args.len()
        };
        for (i, arg) in args[..fixed_args].iter().enumerate() {
            let ty = sig.params.get(i).copied().unwrap_or(Ty::Any);
            argv.push(self.eval_arg(dot, ty, arg)?);
        }
        if let Some(vty) = sig.variadic {
            for arg in &args[fixed_args..] {
                argv.push(self.eval_arg(dot, vty, arg)?);
            }
        }
        if let Some(f) = final_ {
            let ty = match sig.variadic {
                Some(vty) => {
                    if num_in - 1 < num_fixed {
                        sig.params[num_in - 1]
                    } else {
                        vty
                    }
                }
                None => sig.params.last().copied().unwrap_or(Ty::Any),
            };
            argv.push(self.validate_type(f, ty)?);
        }
        // Functions read their string arguments: that work counts against the render.
        let read: usize = argv
            .iter()
            .map(|v| match v {
                Value::Str(s) => s.len(),
                _ => 0,
            })
            .sum();
        if self.env.charge_work(read).is_err() {
            return Err(self.limit("the template's functions read more than the render's limit"));
        }
        let result = match callee {
            Callee::Func(FuncId::Call) => {
                let callee_name = match args.first() {
                    Some(a) => a.to_string(),
                    None => gofmt::sprint_value(&argv[0]),
                };
                Err(CallError::Go(match &argv[0] {
                    Value::Nil => "call of nil".to_string(),
                    v => format!("non-function {callee_name} of type {}", v.type_name()),
                }))
            }
            Callee::Func(f) => funcs::call(f, argv, regex, &mut self.env),
            Callee::Method(m, recv) => Ok(m.call(&recv, &argv)),
        };
        match result {
            Ok(v) => Ok(v),
            Err(CallError::Go(msg)) => {
                self.at(node);
                Err(self.errorf(format!("error calling {name}: {msg}")))
            }
            Err(CallError::Limit(msg)) => Err(self.limit(msg)),
        }
    }

    /// Go's `validateType`: the value must have exactly the parameter's type.
    pub(super) fn validate_type(&self, value: Value<'a>, ty: Ty) -> EResult<Value<'a>> {
        if value.is_nil() {
            if ty.can_be_nil() {
                return Ok(Value::Nil);
            }
            return Err(self.errorf(format!("invalid value; expected {}", ty.name())));
        }
        if !ty.accepts(&value) {
            return Err(self.errorf(format!(
                "wrong type for value; expected {}; got {}",
                ty.name(),
                value.type_name()
            )));
        }
        Ok(value)
    }

    /// Go's `evalArg`: an argument evaluated for a parameter of type `ty`.
    pub(super) fn eval_arg(&mut self, dot: &Value<'a>, ty: Ty, arg: &'a Arg) -> EResult<Value<'a>> {
        self.at(At::Arg(arg));
        match arg {
            Arg::Dot { .. } => return self.validate_type(dot.clone(), ty),
            Arg::Nil { .. } => {
                if ty.can_be_nil() {
                    return Ok(Value::Nil);
                }
                return Err(self.errorf(format!("cannot assign nil to {}", ty.name())));
            }
            Arg::Field { ident, .. } => {
                let v = self.eval_field_chain(
                    dot,
                    dot.clone(),
                    ident,
                    Some(std::slice::from_ref(arg)),
                    None,
                )?;
                return self.validate_type(v, ty);
            }
            Arg::Variable(v) => {
                let v = self.eval_variable_node(dot, v, None, None)?;
                return self.validate_type(v, ty);
            }
            Arg::Pipe(p) => {
                let v = self.eval_pipeline(dot, p)?;
                return self.validate_type(v, ty);
            }
            Arg::Identifier { func, name, .. } => {
                let v = self.eval_call(
                    dot,
                    Callee::Func(*func),
                    At::Arg(arg),
                    name,
                    None,
                    None,
                    None,
                )?;
                return self.validate_type(v, ty);
            }
            Arg::Chain { .. } => {
                let v = self.eval_chain_node(dot, arg, None, None)?;
                return self.validate_type(v, ty);
            }
            _ => {}
        }
        match ty {
            Ty::Float => match arg {
                Arg::Number(n) if n.is_float => Ok(Value::Float(n.float64)),
                _ => Err(self.errorf(format!("expected float; found {arg}"))),
            },
            Ty::Int => match arg {
                Arg::Number(n) if n.is_int => Ok(Value::Int(n.int64)),
                _ => Err(self.errorf(format!("expected integer; found {arg}"))),
            },
            Ty::Duration => match arg {
                Arg::Number(n) if n.is_int => Ok(Value::Duration(n.int64)),
                _ => Err(self.errorf(format!("expected integer; found {arg}"))),
            },
            Ty::String => match arg {
                Arg::String { text, .. } => Ok(Value::str(text)),
                _ => Err(self.errorf(format!("expected string; found {arg}"))),
            },
            Ty::Any | Ty::Reflect => match arg {
                Arg::Bool { val, .. } => Ok(Value::Bool(*val)),
                Arg::Number(n) => self.ideal_constant(arg, n),
                Arg::String { text, .. } => Ok(Value::str(text)),
                _ => Err(self.errorf(format!(
                    "can't handle assignment of {arg} to empty interface argument"
                ))),
            },
            Ty::Time => {
                Err(self.errorf(format!("can't handle {arg} for arg of type {}", ty.name())))
            }
        }
    }
}

/// What a call calls: a function, or a method bound to its receiver.
#[derive(Clone)]
pub(super) enum Callee<'a> {
    Func(FuncId),
    Method(Method, Value<'a>),
}

impl Callee<'_> {
    pub(super) fn sig(&self) -> funcs::Sig {
        match self {
            Callee::Func(f) => f.sig(),
            Callee::Method(m, _) => m.sig(),
        }
    }
}

/// The methods of Go's time types that a template can call (`.Unix`, `.Format "..."`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Method {
    Unix,
    UnixMilli,
    UnixMicro,
    UnixNano,
    Year,
    Month,
    Day,
    Hour,
    Minute,
    Second,
    Nanosecond,
    YearDay,
    Weekday,
    Format,
    String,
    Utc,
    Local,
    IsZero,
    Before,
    After,
    Equal,
    Compare,
    Add,
    Sub,
    AddDate,
    Hours,
    Minutes,
    Seconds,
    Milliseconds,
    Microseconds,
    Nanoseconds,
}

impl Method {
    pub(super) fn lookup(receiver: &Value<'_>, name: &str) -> Option<Method> {
        use Method as M;
        match receiver {
            Value::Time(_) => Some(match name {
                "Unix" => M::Unix,
                "UnixMilli" => M::UnixMilli,
                "UnixMicro" => M::UnixMicro,
                "UnixNano" => M::UnixNano,
                "Year" => M::Year,
                "Month" => M::Month,
                "Day" => M::Day,
                "Hour" => M::Hour,
                "Minute" => M::Minute,
                "Second" => M::Second,
                "Nanosecond" => M::Nanosecond,
                "YearDay" => M::YearDay,
                "Weekday" => M::Weekday,
                "Format" => M::Format,
                "String" => M::String,
                "UTC" => M::Utc,
                "Local" => M::Local,
                "IsZero" => M::IsZero,
                "Before" => M::Before,
                "After" => M::After,
                "Equal" => M::Equal,
                "Compare" => M::Compare,
                "Add" => M::Add,
                "Sub" => M::Sub,
                "AddDate" => M::AddDate,
                _ => return None,
            }),
            Value::Duration(_) => Some(match name {
                "Hours" => M::Hours,
                "Minutes" => M::Minutes,
                "Seconds" => M::Seconds,
                "Milliseconds" => M::Milliseconds,
                "Microseconds" => M::Microseconds,
                "Nanoseconds" => M::Nanoseconds,
                "String" => M::String,
                _ => return None,
            }),
            Value::Month(_) | Value::Weekday(_) => (name == "String").then_some(M::String),
            _ => None,
        }
    }

    pub(super) fn sig(self) -> funcs::Sig {
        let params: &'static [Ty] = match self {
            Method::Format => &[Ty::String],
            Method::Before | Method::After | Method::Equal | Method::Compare | Method::Sub => {
                &[Ty::Time]
            }
            Method::Add => &[Ty::Duration],
            Method::AddDate => &[Ty::Int, Ty::Int, Ty::Int],
            _ => &[],
        };
        funcs::Sig {
            params,
            variadic: None,
        }
    }

    pub(super) fn call<'a>(self, recv: &Value<'a>, args: &[Value<'a>]) -> Value<'a> {
        let t = match recv {
            Value::Time(t) => (**t).clone(),
            _ => Time::zero(),
        };
        let arg_time = |i: usize| match args.get(i) {
            Some(Value::Time(t)) => (**t).clone(),
            _ => Time::zero(),
        };
        let arg_int = |i: usize| args.get(i).and_then(Value::int_of).unwrap_or(0);
        let d = recv.int_of().unwrap_or(0);
        let c = || t.civil();
        match self {
            Method::Unix => Value::Int64(t.unix_sec()),
            Method::UnixMilli => Value::Int64(t.unix_milli()),
            Method::UnixMicro => Value::Int64(t.unix_micro()),
            Method::UnixNano => Value::Int64(t.unix_nano()),
            Method::Year => Value::Int(c().year),
            Method::Month => Value::Month(i64::from(c().month)),
            Method::Day => Value::Int(i64::from(c().day)),
            Method::Hour => Value::Int(i64::from(c().hour)),
            Method::Minute => Value::Int(i64::from(c().minute)),
            Method::Second => Value::Int(i64::from(c().second)),
            Method::Nanosecond => Value::Int(i64::from(t.nanosecond())),
            Method::YearDay => Value::Int(i64::from(c().yday)),
            Method::Weekday => Value::Weekday(i64::from(c().weekday)),
            Method::Format => {
                let layout = match args.first() {
                    Some(Value::Str(s)) => s.as_ref(),
                    _ => "",
                };
                Value::string(t.format(layout))
            }
            Method::String => Value::string(match recv {
                Value::Time(t) => t.go_string(),
                Value::Duration(d) => gofmt::duration_string(*d),
                Value::Month(m) => crate::query::template::gotime::month_name(*m),
                Value::Weekday(w) => crate::query::template::gotime::weekday_name(*w),
                _ => String::new(),
            }),
            Method::Utc => Value::Time(Box::new(t.in_location(Location::Utc))),
            Method::Local => Value::Time(Box::new(t.in_location(Location::Local))),
            Method::IsZero => Value::Bool(t.is_zero()),
            Method::Before => Value::Bool(t.cmp_instant(&arg_time(0)).is_lt()),
            Method::After => Value::Bool(t.cmp_instant(&arg_time(0)).is_gt()),
            Method::Equal => Value::Bool(t.cmp_instant(&arg_time(0)).is_eq()),
            Method::Compare => Value::Int(t.cmp_instant(&arg_time(0)) as i64),
            Method::Add => Value::Time(Box::new(t.add_nanos(arg_int(0)))),
            Method::Sub => Value::Duration(t.sub_nanos(&arg_time(0))),
            Method::AddDate => {
                Value::Time(Box::new(t.add_date(arg_int(0), arg_int(1), arg_int(2))))
            }
            Method::Hours => Value::Float(duration_float(d, 3_600_000_000_000)),
            Method::Minutes => Value::Float(duration_float(d, 60_000_000_000)),
            Method::Seconds => Value::Float(duration_float(d, 1_000_000_000)),
            Method::Milliseconds => Value::Int64(d / 1_000_000),
            Method::Microseconds => Value::Int64(d / 1000),
            Method::Nanoseconds => Value::Int64(d),
        }
    }
}

/// Go's `Duration.Hours()` and friends: whole units plus the fraction.
pub(super) fn duration_float(d: i64, unit: i64) -> f64 {
    (d / unit) as f64 + (d % unit) as f64 / unit as f64
}

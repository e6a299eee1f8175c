//! Go's numeric conversions and arithmetic as Loki's templates run them: float-to-int on
//! amd64, spf13/cast's `ToInt64`/`ToFloat64` (as sprig converts), Go's `math.Max`, `Min`
//! and `Pow10`, and the exact decimal arithmetic of the `addf`/`subf`/`mulf`/`divf` family.

use super::*;

/// Go's float-to-int conversion on amd64: truncation, and the minimum on overflow or NaN.
pub(super) fn go_f64_to_i64(f: f64) -> i64 {
    /// 2^63, exactly.
    const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;
    if (-TWO_POW_63..TWO_POW_63).contains(&f) {
        f as i64
    } else {
        i64::MIN
    }
}

/// spf13/cast's `trimDecimal`: `"2.5"` reads as `"2"` for an integer conversion.
pub(super) fn trim_decimal(s: &str) -> Cow<'_, str> {
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
pub(super) fn go_max(x: f64, y: f64) -> f64 {
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
pub(super) fn go_min(x: f64, y: f64) -> f64 {
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
pub(super) fn go_pow10(p: f64) -> f64 {
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
pub(super) enum DecOp {
    Add,
    Sub,
    Mul,
    Div,
}

/// A decimal `mant * 10^exp`, standing in for shopspring/decimal in sprig's float math.
#[derive(Clone, Copy)]
pub(super) struct Dec {
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
pub(super) fn decimal_op(
    first: &Value<'_>,
    rest: &[Value<'_>],
    op: DecOp,
) -> Result<f64, CallError> {
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

//! Go's float formatting: `strconv.FormatFloat` (shortest and fixed-precision forms in
//! `e`, `f`, `g` and `x`), and `fmt`'s `#` flag on floats.

/// The `#` flag on floats: keep the decimal point and trailing zeros (Go's `fmtFloat`).
pub(super) fn sharp_float(num: String, verb: char, prec: i32) -> String {
    let mut digits: i32 = match verb {
        'v' | 'g' | 'G' | 'x' => {
            if prec == -1 {
                6
            } else {
                prec
            }
        }
        _ => 0,
    };
    let b = num.as_bytes();
    let mut head = num.clone();
    let mut tail = String::new();
    let mut has_point = false;
    let mut saw_nonzero = false;
    for i in 1..b.len() {
        match b[i] {
            b'.' => has_point = true,
            b'p' | b'P' => {
                tail = num[i..].to_string();
                head = num[..i].to_string();
                break;
            }
            b'e' | b'E' if verb != 'x' && verb != 'X' => {
                tail = num[i..].to_string();
                head = num[..i].to_string();
                break;
            }
            c => {
                if c != b'0' {
                    saw_nonzero = true;
                }
                if saw_nonzero {
                    digits -= 1;
                }
            }
        }
    }
    if !has_point {
        if head.len() == 2 && head.as_bytes()[1] == b'0' {
            digits -= 1;
        }
        head.push('.');
    }
    while digits > 0 {
        head.push('0');
        digits -= 1;
    }
    head + &tail
}

/// The decimal digits of `|v|` and the position of the decimal point: `v = 0.d1d2... *
/// 10^dp`. `sig` is the number of significant digits to round to, `None` for the shortest
/// digits that read back as `v`. Trailing zeros are dropped, as Go's `decimal` does.
pub(super) fn decimal_digits(v: f64, sig: Option<usize>) -> (Vec<u8>, i32) {
    let s = match sig {
        None => format!("{:e}", v.abs()),
        Some(n) => format!("{:.*e}", n.saturating_sub(1), v.abs()),
    };
    let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let mut digits: Vec<u8> = mant.bytes().filter(u8::is_ascii_digit).collect();
    while digits.len() > 1 && digits.last() == Some(&b'0') {
        digits.pop();
    }
    if digits == b"0" {
        return (Vec::new(), 0);
    }
    (digits, exp + 1)
}

/// Go's `strconv.FormatFloat(v, fmt, prec, 64)` for `e`, `E`, `f`, `g`, `G`, `b`, `x`, `X`.
pub(crate) fn format_float(v: f64, fmt: u8, prec: i32) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    let neg = v.is_sign_negative();
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    match fmt {
        b'b' => {
            let bits = v.to_bits();
            let mut exp = ((bits >> 52) & 0x7ff) as i64;
            let mut mant = bits & ((1 << 52) - 1);
            if exp == 0 {
                exp = 1;
            } else {
                mant |= 1 << 52;
            }
            exp -= 1023 + 52;
            out.push_str(&format!(
                "{mant}p{}{}",
                if exp >= 0 { "+" } else { "" },
                exp
            ));
            out
        }
        b'x' | b'X' => {
            out.push_str(&format_hex_float(v.abs(), fmt == b'X'));
            out
        }
        b'f' => {
            let p = if prec < 0 {
                let (digits, dp) = decimal_digits(v, None);
                (digits.len() as i32 - dp).max(0) as usize
            } else {
                prec as usize
            };
            out.push_str(&format!("{:.*}", p, v.abs()));
            out
        }
        b'e' | b'E' => {
            let (digits, dp, p) = if prec < 0 {
                let (d, dp) = decimal_digits(v, None);
                let p = d.len().saturating_sub(1);
                (d, dp, p)
            } else {
                let (d, dp) = decimal_digits(v, Some(prec as usize + 1));
                (d, dp, prec as usize)
            };
            fmt_e(&mut out, &digits, dp, p, fmt);
            out
        }
        b'g' | b'G' => {
            let shortest = prec < 0;
            let (digits, dp) = if shortest {
                decimal_digits(v, None)
            } else {
                decimal_digits(v, Some(prec.max(1) as usize))
            };
            let mut p = if shortest {
                digits.len() as i32
            } else {
                prec.max(1)
            };
            let nd = digits.len() as i32;
            let mut eprec = p;
            if eprec > nd && nd >= dp {
                eprec = nd;
            }
            if shortest {
                eprec = 6;
            }
            let exp = dp - 1;
            if exp < -4 || exp >= eprec {
                if p > nd {
                    p = nd;
                }
                let e = if fmt == b'g' { b'e' } else { b'E' };
                fmt_e(&mut out, &digits, dp, (p - 1).max(0) as usize, e);
            } else {
                if p > dp {
                    p = nd;
                }
                fmt_f(&mut out, &digits, dp, (p - dp).max(0) as usize);
            }
            out
        }
        _ => {
            out.push_str(&format!("%{}", char::from(fmt)));
            out
        }
    }
}

/// Go's `fmtE`: `d.ddde±dd`.
pub(super) fn fmt_e(out: &mut String, digits: &[u8], dp: i32, prec: usize, e: u8) {
    out.push(char::from(*digits.first().unwrap_or(&b'0')));
    if prec > 0 {
        out.push('.');
        for i in 1..=prec {
            out.push(char::from(*digits.get(i).unwrap_or(&b'0')));
        }
    }
    out.push(char::from(e));
    let exp = if digits.is_empty() { 0 } else { dp - 1 };
    out.push(if exp < 0 { '-' } else { '+' });
    let exp = exp.unsigned_abs();
    if exp < 10 {
        out.push('0');
    }
    out.push_str(&exp.to_string());
}

/// Go's `fmtF`: `ddd.ddd` with `prec` fractional digits from the decimal digits.
pub(super) fn fmt_f(out: &mut String, digits: &[u8], dp: i32, prec: usize) {
    if dp > 0 {
        for i in 0..dp as usize {
            out.push(char::from(*digits.get(i).unwrap_or(&b'0')));
        }
    } else {
        out.push('0');
    }
    if prec > 0 {
        out.push('.');
        for i in 1..=prec as i32 {
            let j = dp + i - 1;
            let c = if j < 0 {
                b'0'
            } else {
                *digits.get(j as usize).unwrap_or(&b'0')
            };
            out.push(char::from(c));
        }
    }
}

/// Go's `%x` of a float with the shortest precision: `0x1.8p+01`.
pub(super) fn format_hex_float(v: f64, upper: bool) -> String {
    if v == 0.0 {
        return if upper { "0X0P+00" } else { "0x0p+00" }.into();
    }
    let bits = v.to_bits();
    let mut exp = ((bits >> 52) & 0x7ff) as i64;
    let mut mant = bits & ((1 << 52) - 1);
    if exp == 0 {
        // Subnormal: normalise.
        exp = -1022;
        while mant & (1 << 52) == 0 {
            mant <<= 1;
            exp -= 1;
        }
        mant &= (1 << 52) - 1;
    } else {
        exp -= 1023;
    }
    let mut frac = format!("{mant:013x}");
    while frac.ends_with('0') {
        frac.pop();
    }
    let mut s = String::from("0x1");
    if !frac.is_empty() {
        s.push('.');
        s.push_str(&frac);
    }
    s.push('p');
    s.push(if exp < 0 { '-' } else { '+' });
    let e = exp.unsigned_abs();
    if e < 10 {
        s.push('0');
    }
    s.push_str(&e.to_string());
    if upper { s.to_uppercase() } else { s }
}

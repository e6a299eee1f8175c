//! Go's `fmt` and `strconv` printing, for `print`, `printf`, `println`, for the text of
//! every value a template prints, and for Go's error messages.
//!
//! Which question it answers: "what text does Go's `fmt` produce for these values?" Verbs,
//! flags, widths, precisions, argument indexes and Go's inline error forms (`%!d(string=x)`,
//! `%!(EXTRA ...)`, `%!v(MISSING)`) follow `fmt/print.go` and `fmt/format.go`; floats follow
//! `strconv.FormatFloat`.
//!
//! Float formatting is in `float`, quoting in `quote`.

use super::gotime::{month_name, weekday_name};
use super::value::Value;

mod float;
mod quote;
pub(crate) use float::*;
pub(crate) use quote::*;

/// `fmt.Sprint(v)`: the text Go prints for a value with `%v`.
pub(crate) fn sprint_value(v: &Value<'_>) -> String {
    let mut p = Printer::new(usize::MAX);
    p.print_arg(v, 'v');
    p.buf
}

/// `fmt.Sprint(args...)`: spaces between operands when neither is a string.
pub(crate) fn sprint(args: &[Value<'_>], limit: usize) -> Option<String> {
    let mut p = Printer::new(limit);
    let mut prev_string = false;
    for (i, arg) in args.iter().enumerate() {
        let is_string = matches!(arg, Value::Str(_));
        if i > 0 && !is_string && !prev_string {
            p.write_str(" ");
        }
        p.print_arg(arg, 'v');
        prev_string = is_string;
    }
    p.finish()
}

/// `fmt.Sprintln(args...)`: spaces between all operands and a newline.
pub(crate) fn sprintln(args: &[Value<'_>], limit: usize) -> Option<String> {
    let mut p = Printer::new(limit);
    for (i, arg) in args.iter().enumerate() {
        if i > 0 {
            p.write_str(" ");
        }
        p.print_arg(arg, 'v');
    }
    p.write_str("\n");
    p.finish()
}

/// `fmt.Sprintf(format, args...)`. `None` when the result would exceed `limit` bytes.
pub(crate) fn sprintf(format: &str, args: &[Value<'_>], limit: usize) -> Option<String> {
    let mut p = Printer::new(limit);
    p.do_printf(format, args);
    p.finish()
}

/// Go's `fmt` state for one verb.
#[derive(Clone, Copy, Default)]
struct Flags {
    wid: usize,
    wid_present: bool,
    prec: usize,
    prec_present: bool,
    minus: bool,
    plus: bool,
    sharp: bool,
    space: bool,
    zero: bool,
    plus_v: bool,
    sharp_v: bool,
}

/// Go's `fmt` limits widths and precisions to this (`tooLarge`).
const FMT_NUMBER_MAX: usize = 1_000_000;

struct Printer {
    buf: String,
    f: Flags,
    limit: usize,
    overflow: bool,
    good_arg_num: bool,
    reordered: bool,
}

impl Printer {
    fn new(limit: usize) -> Printer {
        Printer {
            buf: String::new(),
            f: Flags::default(),
            limit,
            overflow: false,
            good_arg_num: true,
            reordered: false,
        }
    }

    fn finish(self) -> Option<String> {
        (!self.overflow).then_some(self.buf)
    }

    fn write_str(&mut self, s: &str) {
        if self.overflow {
            return;
        }
        if self.buf.len() + s.len() > self.limit {
            self.overflow = true;
            return;
        }
        self.buf.push_str(s);
    }

    fn write_char(&mut self, c: char) {
        let mut b = [0u8; 4];
        self.write_str(c.encode_utf8(&mut b));
    }

    fn write_padding(&mut self, n: usize) {
        if n == 0 || self.overflow {
            return;
        }
        if self.buf.len().saturating_add(n) > self.limit {
            self.overflow = true;
            return;
        }
        let pad = if self.f.zero && !self.f.minus {
            '0'
        } else {
            ' '
        };
        self.buf.extend(std::iter::repeat_n(pad, n));
    }

    /// Go's `fmt.pad`: `s` padded to the width, counted in runes.
    fn pad(&mut self, s: &str) {
        if !self.f.wid_present || self.f.wid == 0 {
            self.write_str(s);
            return;
        }
        let width = self.f.wid.saturating_sub(s.chars().count());
        if !self.f.minus {
            self.write_padding(width);
            self.write_str(s);
        } else {
            self.write_str(s);
            let zero = self.f.zero;
            self.f.zero = false;
            self.write_padding(width);
            self.f.zero = zero;
        }
    }

    fn truncate<'s>(&self, s: &'s str) -> &'s str {
        if self.f.prec_present {
            match s.char_indices().nth(self.f.prec) {
                Some((i, _)) => &s[..i],
                None => s,
            }
        } else {
            s
        }
    }

    fn print_arg(&mut self, arg: &Value<'_>, verb: char) {
        if let Value::Nil = arg {
            match verb {
                'T' | 'v' => self.pad("<nil>"),
                _ => self.bad_verb(arg, verb),
            }
            return;
        }
        if verb == 'T' {
            self.fmt_s(arg.type_name());
            return;
        }
        if verb == 'p' {
            self.bad_verb(arg, verb);
            return;
        }
        self.print_value(arg, verb, 0);
    }

    fn print_value(&mut self, arg: &Value<'_>, verb: char, depth: usize) {
        match arg {
            Value::Nil => {
                if depth > 0 {
                    if self.f.sharp_v {
                        self.write_str("interface {}(nil)");
                    } else {
                        self.pad("<nil>");
                    }
                } else {
                    self.print_arg(arg, verb);
                }
            }
            Value::Bool(b) => match verb {
                't' | 'v' => self.pad(if *b { "true" } else { "false" }),
                _ => self.bad_verb(arg, verb),
            },
            Value::Int(i) | Value::Int64(i) => self.fmt_integer_verb(*i as u64, true, verb, arg),
            Value::Uint8(u) => self.fmt_integer_verb(u64::from(*u), false, verb, arg),
            Value::Float(v) => self.fmt_float_verb(*v, verb, arg),
            Value::Complex(re, im) => self.fmt_complex(*re, *im, verb, arg),
            Value::Str(s) => self.fmt_string(s, verb, arg),
            // Named types with a String method: the method serves the string verbs.
            Value::Time(_) | Value::Month(_) | Value::Weekday(_) | Value::Duration(_)
                if matches!(verb, 'v' | 's' | 'x' | 'X' | 'q') && !self.f.sharp_v =>
            {
                let s = match arg {
                    Value::Time(t) => t.go_string(),
                    Value::Month(m) => month_name(*m),
                    Value::Weekday(d) => weekday_name(*d),
                    Value::Duration(d) => duration_string(*d),
                    _ => String::new(),
                };
                self.fmt_string(&s, verb, arg);
            }
            Value::Month(i) | Value::Weekday(i) | Value::Duration(i) => {
                self.fmt_integer_verb(*i as u64, true, verb, arg)
            }
            Value::Time(t) => {
                if self.f.sharp_v {
                    let s = t.go_string();
                    self.write_str(&s);
                } else {
                    self.bad_verb(arg, verb);
                }
            }
            Value::Labels(labels) => {
                let pairs = labels.sorted();
                self.open_map(arg);
                for (i, (k, v)) in pairs.iter().enumerate() {
                    self.map_separator(i);
                    self.print_value(&Value::str(k), verb, depth + 1);
                    self.write_str(":");
                    self.print_value(&Value::str(v), verb, depth + 1);
                }
                self.close_map();
            }
            Value::Map(m) => {
                self.open_map(arg);
                for (i, (k, v)) in m.iter().enumerate() {
                    self.map_separator(i);
                    self.print_value(&Value::str(k), verb, depth + 1);
                    self.write_str(":");
                    self.print_value(v, verb, depth + 1);
                }
                self.close_map();
            }
            Value::List(l) => {
                if self.f.sharp_v {
                    self.write_str(arg.type_name());
                    self.write_str("{");
                } else {
                    self.write_str("[");
                }
                for (i, v) in l.iter().enumerate() {
                    if i > 0 {
                        self.write_str(if self.f.sharp_v { ", " } else { " " });
                    }
                    self.print_value(v, verb, depth + 1);
                }
                self.write_str(if self.f.sharp_v { "}" } else { "]" });
            }
        }
    }

    fn open_map(&mut self, arg: &Value<'_>) {
        if self.f.sharp_v {
            self.write_str(arg.type_name());
            self.write_str("{");
        } else {
            self.write_str("map[");
        }
    }

    fn map_separator(&mut self, i: usize) {
        if i > 0 {
            self.write_str(if self.f.sharp_v { ", " } else { " " });
        }
    }

    fn close_map(&mut self) {
        self.write_str(if self.f.sharp_v { "}" } else { "]" });
    }

    /// Go's `badVerb`: `%!z(type=value)`.
    fn bad_verb(&mut self, arg: &Value<'_>, verb: char) {
        self.write_str("%!");
        self.write_char(verb);
        self.write_str("(");
        if arg.is_nil() {
            self.write_str("<nil>");
        } else {
            self.write_str(arg.type_name());
            self.write_str("=");
            self.print_arg(arg, 'v');
        }
        self.write_str(")");
    }

    fn fmt_string(&mut self, s: &str, verb: char, arg: &Value<'_>) {
        match verb {
            'v' => {
                if self.f.sharp_v {
                    self.fmt_q(s);
                } else {
                    self.fmt_s(s);
                }
            }
            's' => self.fmt_s(s),
            'x' => self.fmt_sx(s, "0123456789abcdefx"),
            'X' => self.fmt_sx(s, "0123456789ABCDEFX"),
            'q' => self.fmt_q(s),
            _ => self.bad_verb(arg, verb),
        }
    }

    fn fmt_s(&mut self, s: &str) {
        let s = self.truncate(s);
        self.pad(s);
    }

    /// Go's `fmtSbx`: the bytes of `s` in hexadecimal.
    fn fmt_sx(&mut self, s: &str, digits: &str) {
        let digits = digits.as_bytes();
        let mut bytes = s.as_bytes();
        if self.f.prec_present && self.f.prec < bytes.len() {
            bytes = &bytes[..self.f.prec];
        }
        let mut out = String::new();
        if bytes.is_empty() {
            if self.f.wid_present {
                self.write_padding(self.f.wid);
            }
            return;
        }
        if self.f.sharp && !self.f.space {
            out.push('0');
            out.push(char::from(digits[16]));
        }
        for (i, b) in bytes.iter().enumerate() {
            if self.f.space && i > 0 {
                out.push(' ');
            }
            if self.f.space && self.f.sharp {
                out.push('0');
                out.push(char::from(digits[16]));
            }
            out.push(char::from(digits[usize::from(b >> 4)]));
            out.push(char::from(digits[usize::from(b & 0xf)]));
        }
        let zero = self.f.zero;
        self.f.zero = false;
        self.pad(&out);
        self.f.zero = zero;
    }

    fn fmt_q(&mut self, s: &str) {
        let s = self.truncate(s);
        if self.f.sharp && can_backquote(s) {
            let q = format!("`{s}`");
            self.pad(&q);
            return;
        }
        let q = if self.f.plus {
            quote_with(s, '"', true)
        } else {
            quote_with(s, '"', false)
        };
        self.pad(&q);
    }

    fn fmt_integer_verb(&mut self, v: u64, signed: bool, verb: char, arg: &Value<'_>) {
        match verb {
            'v' => {
                if self.f.sharp_v && !signed {
                    self.fmt_integer(v, 16, signed, 'v', b"0123456789abcdefx", true);
                } else {
                    self.fmt_integer(v, 10, signed, verb, b"0123456789abcdefx", false);
                }
            }
            'd' => self.fmt_integer(v, 10, signed, verb, b"0123456789abcdefx", false),
            'b' => self.fmt_integer(v, 2, signed, verb, b"0123456789abcdefx", false),
            'o' | 'O' => self.fmt_integer(v, 8, signed, verb, b"0123456789abcdefx", false),
            'x' => self.fmt_integer(v, 16, signed, verb, b"0123456789abcdefx", false),
            'X' => self.fmt_integer(v, 16, signed, verb, b"0123456789ABCDEFX", false),
            'c' => {
                let c = char::from_u32(v as u32)
                    .filter(|_| v <= 0x10FFFF)
                    .unwrap_or('\u{FFFD}');
                let mut b = [0u8; 4];
                let s = c.encode_utf8(&mut b).to_string();
                self.pad(&s);
            }
            'q' => {
                let c = char::from_u32(v as u32)
                    .filter(|_| v <= 0x10FFFF)
                    .unwrap_or('\u{FFFD}');
                let q = quote_rune(c, self.f.plus);
                self.pad(&q);
            }
            'U' => {
                let mut s = format!("U+{v:04X}");
                if self.f.sharp
                    && v <= 0x10FFFF
                    && let Some(c) = char::from_u32(v as u32)
                    && is_print(c)
                {
                    s.push_str(&format!(" '{c}'"));
                }
                let zero = self.f.zero;
                self.f.zero = false;
                self.pad(&s);
                self.f.zero = zero;
            }
            _ => self.bad_verb(arg, verb),
        }
    }

    /// Go's `fmtInteger`.
    fn fmt_integer(
        &mut self,
        u: u64,
        base: u64,
        signed: bool,
        verb: char,
        digits: &[u8],
        sharp_v_hex: bool,
    ) {
        let negative = signed && (u as i64) < 0;
        let mut u = if negative {
            (u as i64).unsigned_abs()
        } else {
            u
        };
        let mut prec = 0usize;
        if self.f.prec_present {
            prec = self.f.prec;
            if prec == 0 && u == 0 {
                let zero = self.f.zero;
                self.f.zero = false;
                self.write_padding(self.f.wid);
                self.f.zero = zero;
                return;
            }
        } else if self.f.zero && !self.f.minus && self.f.wid_present {
            prec = self.f.wid;
            if negative || self.f.plus || self.f.space {
                prec = prec.saturating_sub(1);
            }
        }
        let mut rev: Vec<u8> = Vec::new();
        loop {
            rev.push(digits[(u % base) as usize]);
            u /= base;
            if u == 0 {
                break;
            }
        }
        while rev.len() < prec {
            rev.push(b'0');
        }
        if self.f.sharp || sharp_v_hex {
            match base {
                2 => rev.extend_from_slice(b"b0"),
                8 if rev.last() != Some(&b'0') => rev.push(b'0'),
                16 => {
                    rev.push(digits[16]);
                    rev.push(b'0');
                }
                _ => {}
            }
        }
        if verb == 'O' {
            rev.extend_from_slice(b"o0");
        }
        if negative {
            rev.push(b'-');
        } else if self.f.plus {
            rev.push(b'+');
        } else if self.f.space {
            rev.push(b' ');
        }
        rev.reverse();
        let s = String::from_utf8_lossy(&rev).into_owned();
        let zero = self.f.zero;
        self.f.zero = false;
        self.pad(&s);
        self.f.zero = zero;
    }

    fn fmt_float_verb(&mut self, v: f64, verb: char, arg: &Value<'_>) {
        match verb {
            'v' => self.fmt_float(v, 'g', -1),
            'b' | 'g' | 'G' | 'x' | 'X' => self.fmt_float(v, verb, -1),
            'f' | 'e' | 'E' | 'F' => self.fmt_float(v, verb, 6),
            _ => self.bad_verb(arg, verb),
        }
    }

    /// Go's `fmt.fmtFloat`.
    fn fmt_float(&mut self, v: f64, verb: char, prec: i32) {
        let prec = if self.f.prec_present {
            self.f.prec.min(FMT_NUMBER_MAX) as i32
        } else {
            prec
        };
        let verb = if verb == 'F' { 'f' } else { verb };
        let body = format_float(v, verb as u8, prec);
        // `num` carries an explicit sign, as Go's buffer does.
        let mut num = if body.starts_with('-') || body.starts_with('+') {
            body
        } else {
            format!("+{body}")
        };
        if self.f.space && num.starts_with('+') && !self.f.plus {
            num.replace_range(0..1, " ");
        }
        let second = num.as_bytes().get(1).copied();
        if second == Some(b'I') || second == Some(b'N') {
            let zero = self.f.zero;
            self.f.zero = false;
            if second == Some(b'N') && !self.f.space && !self.f.plus {
                num.remove(0);
            }
            self.pad(&num);
            self.f.zero = zero;
            return;
        }
        if self.f.sharp && verb != 'b' {
            num = sharp_float(num, verb, prec);
        }
        if self.f.plus || !num.starts_with('+') {
            if self.f.zero && !self.f.minus && self.f.wid_present && self.f.wid > num.len() {
                let (sign, rest) = num.split_at(1);
                self.write_str(sign);
                self.write_padding(self.f.wid - num.len());
                self.write_str(rest);
                return;
            }
            self.pad(&num);
            return;
        }
        self.pad(&num[1..]);
    }

    fn fmt_complex(&mut self, re: f64, im: f64, verb: char, arg: &Value<'_>) {
        if !matches!(
            verb,
            'v' | 'b' | 'g' | 'G' | 'x' | 'X' | 'f' | 'F' | 'e' | 'E'
        ) {
            self.bad_verb(arg, verb);
            return;
        }
        let old = self.f;
        self.write_str("(");
        self.fmt_float_verb(re, verb, arg);
        self.f.plus = true;
        self.fmt_float_verb(im, verb, arg);
        self.write_str("i)");
        self.f = old;
    }

    /// Go's `doPrintf`.
    fn do_printf(&mut self, format: &str, a: &[Value<'_>]) {
        let fb = format.as_bytes();
        let end = fb.len();
        let mut arg_num = 0usize;
        let mut after_index;
        self.reordered = false;
        let mut i = 0;
        'format: while i < end {
            if self.overflow {
                return;
            }
            self.good_arg_num = true;
            let lasti = i;
            while i < end && fb[i] != b'%' {
                i += 1;
            }
            if i > lasti {
                self.write_str(&format[lasti..i]);
            }
            if i >= end {
                break;
            }
            i += 1;
            self.f = Flags::default();
            while i < end {
                match fb[i] {
                    b'#' => self.f.sharp = true,
                    b'0' => self.f.zero = true,
                    b'+' => self.f.plus = true,
                    b'-' => self.f.minus = true,
                    b' ' => self.f.space = true,
                    c => {
                        if c.is_ascii_lowercase() && arg_num < a.len() {
                            let verb = char::from(c);
                            if verb == 'v' {
                                self.f.sharp_v = self.f.sharp;
                                self.f.sharp = false;
                                self.f.plus_v = self.f.plus;
                                self.f.plus = false;
                            }
                            self.print_arg(&a[arg_num], verb);
                            arg_num += 1;
                            i += 1;
                            continue 'format;
                        }
                        break;
                    }
                }
                i += 1;
            }
            (arg_num, i, after_index) = self.arg_number(arg_num, format, i, a.len());
            if i < end && fb[i] == b'*' {
                i += 1;
                let (n, ok, next) = int_from_arg(a, arg_num);
                arg_num = next;
                self.f.wid_present = ok;
                if !ok {
                    self.write_str("%!(BADWIDTH)");
                }
                if n < 0 {
                    self.f.minus = true;
                    self.f.zero = false;
                }
                self.f.wid = n.unsigned_abs() as usize;
                after_index = false;
            } else {
                let (n, ok, next) = parse_num(fb, i, end);
                self.f.wid = n;
                self.f.wid_present = ok;
                i = next;
                if after_index && self.f.wid_present {
                    self.good_arg_num = false;
                }
            }
            if i + 1 < end && fb[i] == b'.' {
                i += 1;
                if after_index {
                    self.good_arg_num = false;
                }
                (arg_num, i, after_index) = self.arg_number(arg_num, format, i, a.len());
                if i < end && fb[i] == b'*' {
                    i += 1;
                    let (n, ok, next) = int_from_arg(a, arg_num);
                    arg_num = next;
                    self.f.prec_present = ok;
                    self.f.prec = n.max(0) as usize;
                    if n < 0 {
                        self.f.prec_present = false;
                    }
                    if !ok {
                        self.write_str("%!(BADPREC)");
                    }
                    after_index = false;
                } else {
                    let (n, ok, next) = parse_num(fb, i, end);
                    self.f.prec = if ok { n } else { 0 };
                    self.f.prec_present = true;
                    i = next;
                }
            }
            if !after_index {
                (arg_num, i, _) = self.arg_number(arg_num, format, i, a.len());
            }
            if i >= end {
                self.write_str("%!(NOVERB)");
                break;
            }
            let Some(verb) = format[i..].chars().next() else {
                break;
            };
            i += verb.len_utf8();
            match verb {
                '%' => self.write_str("%"),
                _ if !self.good_arg_num => {
                    self.write_str("%!");
                    self.write_char(verb);
                    self.write_str("(BADINDEX)");
                }
                _ if arg_num >= a.len() => {
                    self.write_str("%!");
                    self.write_char(verb);
                    self.write_str("(MISSING)");
                }
                'w' => {
                    // Sprintf has no error to wrap.
                    self.bad_verb(&a[arg_num], verb);
                    arg_num += 1;
                }
                _ => {
                    if verb == 'v' {
                        self.f.sharp_v = self.f.sharp;
                        self.f.sharp = false;
                        self.f.plus_v = self.f.plus;
                        self.f.plus = false;
                    }
                    self.print_arg(&a[arg_num], verb);
                    arg_num += 1;
                }
            }
        }
        if !self.reordered && arg_num < a.len() {
            self.f = Flags::default();
            self.write_str("%!(EXTRA ");
            for (k, arg) in a[arg_num..].iter().enumerate() {
                if k > 0 {
                    self.write_str(", ");
                }
                if arg.is_nil() {
                    self.write_str("<nil>");
                } else {
                    self.write_str(arg.type_name());
                    self.write_str("=");
                    self.print_arg(arg, 'v');
                }
            }
            self.write_str(")");
        }
    }

    /// Go's `argNumber`: an explicit `[n]` argument index at `i`.
    fn arg_number(
        &mut self,
        arg_num: usize,
        format: &str,
        i: usize,
        num_args: usize,
    ) -> (usize, usize, bool) {
        let fb = format.as_bytes();
        if i >= fb.len() || fb[i] != b'[' {
            return (arg_num, i, false);
        }
        self.reordered = true;
        let (index, wid, ok) = parse_arg_number(&fb[i..]);
        if ok && index < num_args {
            return (index, i + wid, true);
        }
        self.good_arg_num = false;
        (arg_num, i + wid, ok)
    }
}

/// Go's `parseArgNumber`: `[n]` (one-based) at the start of `f`.
fn parse_arg_number(f: &[u8]) -> (usize, usize, bool) {
    if f.len() < 3 {
        return (0, 1, false);
    }
    for i in 1..f.len() {
        if f[i] == b']' {
            let (n, ok, newi) = parse_num(f, 1, i);
            if !ok || newi != i || n == 0 {
                return (usize::MAX, i + 1, ok && newi == i);
            }
            return (n - 1, i + 1, true);
        }
    }
    (0, 1, false)
}

/// Go's `parsenum`.
fn parse_num(s: &[u8], start: usize, end: usize) -> (usize, bool, usize) {
    if start >= end {
        return (0, false, end);
    }
    let mut num = 0usize;
    let mut is_num = false;
    let mut i = start;
    while i < end && s[i].is_ascii_digit() {
        if num > FMT_NUMBER_MAX {
            return (0, false, end);
        }
        num = num * 10 + usize::from(s[i] - b'0');
        is_num = true;
        i += 1;
    }
    (num, is_num, i)
}

/// Go's `intFromArg`: a `*` width or precision taken from the arguments.
fn int_from_arg(a: &[Value<'_>], arg_num: usize) -> (i64, bool, usize) {
    let Some(arg) = a.get(arg_num) else {
        return (0, false, arg_num);
    };
    let (n, ok) = match arg {
        Value::Int(i)
        | Value::Int64(i)
        | Value::Month(i)
        | Value::Weekday(i)
        | Value::Duration(i) => (*i, true),
        Value::Uint8(u) => (i64::from(*u), true),
        _ => (0, false),
    };
    if !(-(FMT_NUMBER_MAX as i64)..=FMT_NUMBER_MAX as i64).contains(&n) {
        return (0, false, arg_num + 1);
    }
    (n, ok, arg_num + 1)
}

/// Go's `time.Duration.String()`: `1h2m3.5s`, `1.5ms`, `0s`.
pub(crate) fn duration_string(d: i64) -> String {
    if d == 0 {
        return "0s".into();
    }
    let neg = d < 0;
    let u = d.unsigned_abs();
    let mut out = String::new();
    if u < 1_000_000_000 {
        // Below a second: a unit smaller than seconds.
        let (unit, scale) = if u < 1_000 {
            ("ns", 1)
        } else if u < 1_000_000 {
            ("\u{b5}s", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        out.push_str(&fraction_string(u, scale));
        out.push_str(unit);
    } else {
        let secs_total = u / 1_000_000_000;
        let nanos = u % 1_000_000_000;
        let hours = secs_total / 3600;
        let mins = secs_total / 60 % 60;
        let secs = secs_total % 60;
        if hours > 0 {
            out.push_str(&format!("{hours}h"));
        }
        if hours > 0 || mins > 0 {
            out.push_str(&format!("{mins}m"));
        }
        out.push_str(&fraction_string(
            secs * 1_000_000_000 + nanos,
            1_000_000_000,
        ));
        out.push('s');
    }
    if neg {
        out.insert(0, '-');
    }
    out
}

/// `v / scale` with the fraction's trailing zeros dropped.
fn fraction_string(v: u64, scale: u64) -> String {
    let whole = v / scale;
    let frac = v % scale;
    if frac == 0 {
        return whole.to_string();
    }
    let width = scale.ilog10() as usize;
    let f = format!("{frac:0width$}");
    format!("{whole}.{}", f.trim_end_matches('0'))
}

#[cfg(test)]
mod tests;

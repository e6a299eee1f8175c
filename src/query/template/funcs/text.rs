//! Go's and sprig's string functions as Loki's templates run them: case mappings by rune,
//! trimming, replacing, truncating and padding by rune, URL, HTML and JavaScript escaping,
//! and base64 with Go's error for bad input.

use super::*;

/// Go's `strings.ToUpper`: each rune by its simple upper-case mapping.
pub(super) fn go_to_upper(s: &str) -> String {
    if s.is_ascii() {
        return s.to_ascii_uppercase();
    }
    s.chars().map(simple_upper).collect()
}

pub(super) fn simple_upper(c: char) -> char {
    let mut u = c.to_uppercase();
    match (u.next(), u.next()) {
        (Some(x), None) => x,
        _ => c,
    }
}

/// Go's `strings.ToLower`: each rune by its simple lower-case mapping.
pub(super) fn go_to_lower(s: &str) -> String {
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
pub(super) fn to_title(c: char) -> char {
    match c {
        '\u{1C4}'..='\u{1C6}' => '\u{1C5}',
        '\u{1C7}'..='\u{1C9}' => '\u{1C8}',
        '\u{1CA}'..='\u{1CC}' => '\u{1CB}',
        '\u{1F1}'..='\u{1F3}' => '\u{1F2}',
        c => simple_upper(c),
    }
}

/// Go's `strings.Title`: the first letter of each word in title case.
pub(super) fn go_title(s: &str) -> String {
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
pub(super) fn replace_n(
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

pub(super) fn trim_cutset<'s>(s: &'s str, cutset: &str, left: bool, right: bool) -> &'s str {
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

pub(super) fn trim_prefix<'s>(s: &'s str, prefix: &str) -> &'s str {
    s.strip_prefix(prefix).unwrap_or(s)
}

pub(super) fn trim_suffix<'s>(s: &'s str, suffix: &str) -> &'s str {
    s.strip_suffix(suffix).unwrap_or(s)
}

/// Go's `Regexp.ReplaceAllString` (`$1`, `${name}` expanded) or `ReplaceAllLiteralString`.
pub(super) fn regex_replace(
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
pub(super) fn unix_to_time(epoch: &str) -> Result<Time, CallError> {
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
pub(super) fn parse_bytes(s: &str) -> Result<f64, CallError> {
    let last_digit = s
        .bytes()
        .take_while(|&c| c.is_ascii_digit() || c == b'.' || c == b',')
        .count();
    let num: String = s[..last_digit].chars().filter(|&c| c != ',').collect();
    let f = strconv::parse_float_checked(&num)
        .map_err(|(e, _)| CallError::Go(strconv::num_error("ParseFloat", &num, e)))?;
    let extra = s[last_digit..].trim().to_lowercase();
    let m = crate::query::pipeline::humanized_bytes_unit(&extra)
        .ok_or_else(|| CallError::from(format!("unhandled size name: {extra}")))?;
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
pub(super) fn query_unescape(s: &str) -> Result<String, CallError> {
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
pub(super) fn html_escape(s: &str) -> String {
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
pub(super) fn js_escape(s: &str) -> String {
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

pub(super) const B64: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Go's `base64.StdEncoding.EncodeToString`.
pub(super) fn b64_encode(b: &[u8]) -> String {
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

pub(super) fn b64_value(c: u8) -> Option<u32> {
    B64.iter().position(|&x| x == c).map(|p| p as u32)
}

/// Go's `base64.StdEncoding.DecodeString`, with its error offsets.
pub(super) fn b64_decode(src: &[u8]) -> Result<Vec<u8>, usize> {
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
pub(super) fn b64_decode_loki(v: &str) -> String {
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

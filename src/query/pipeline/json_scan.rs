//! A lenient JSON scanner that reads values in place, ported from the `jsonparser` package
//! Loki's `json` and `unpack` stages use (github.com/grafana/jsonparser), quirks included.
//!
//! Which question it answers: "which keys and values does this line hold, and where does it
//! stop making sense?" It does not validate: numbers are any token that starts with a digit
//! or `-`, nested values are only checked for balanced brackets, and whatever it cannot read
//! is reported with the package's own error texts, which Loki puts in `__error_details__`.
//! Loki's results (which labels a malformed line still yields, which error it gets) follow
//! from these rules, so they are kept as they are rather than replaced by a strict parser.
//!
//! Never panics on input: every index is checked. Nothing here recurses except
//! [`search_keys`] through arrays, one level per element of a query's path (bounded by the
//! path length the stage accepts).

use std::borrow::Cow;

/// The kind of a value, as the scanner sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ValueType {
    String,
    Number,
    Object,
    Array,
    Boolean,
    Null,
    /// Only with an error (an `EachKey` malformed-JSON callback).
    Unknown,
}

/// What went wrong, with the package's messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum JsonError {
    UnknownValueType,
    MalformedJson,
    MalformedString,
    MalformedArray,
    MalformedObject,
    MalformedStringEscape,
}

impl JsonError {
    pub fn message(self) -> &'static str {
        match self {
            JsonError::UnknownValueType => "Unknown value type",
            JsonError::MalformedJson => "Malformed JSON error",
            JsonError::MalformedString => "Value is string, but can't find closing '\"' symbol",
            JsonError::MalformedArray => "Value is array, but can't find closing ']' symbol",
            JsonError::MalformedObject => {
                "Value looks like object, but can't find closing '}' symbol"
            }
            JsonError::MalformedStringEscape => {
                "Encountered an invalid escape sequence in a string"
            }
        }
    }
}

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\n' | b'\r' | b'\t')
}

/// The position of the first non-whitespace byte.
fn next_token(data: &[u8]) -> Option<usize> {
    data.iter().position(|&c| !is_space(c))
}

/// The length of a bare token (number, `true`, `null`...).
fn token_end(data: &[u8]) -> usize {
    data.iter()
        .position(|&c| matches!(c, b' ' | b'\n' | b'\r' | b'\t' | b',' | b'}' | b']'))
        .unwrap_or(data.len())
}

/// Where a string whose opening quote was just read ends (one past its closing quote), and
/// whether it holds a backslash. Once a backslash was seen, a quote ends the string only after
/// an even number of backslashes, as in the Go package.
fn string_end(data: &[u8]) -> (Option<usize>, bool) {
    // Before any backslash, the first quote ends the string.
    match memchr::memchr2(b'"', b'\\', data) {
        None => return (None, false),
        Some(i) if data[i] == b'"' => return (Some(i + 1), false),
        Some(_) => {}
    }
    // After one, a quote ends it when an even number of backslashes precede it.
    for i in memchr::memchr_iter(b'"', data) {
        let backslashes = data[..i].iter().rev().take_while(|&&c| c == b'\\').count();
        if backslashes % 2 == 0 {
            return (Some(i + 1), true);
        }
    }
    (None, true)
}

/// The end (one past the closing symbol) of the object or array that starts `data`.
fn block_end(data: &[u8], open: u8, close: u8) -> Option<usize> {
    let mut level: i64 = 0;
    let mut i = 0;
    while i < data.len() {
        let c = data[i];
        if c == b'"' {
            let (end, _) = string_end(data.get(i + 1..).unwrap_or_default());
            i += end?;
        } else if c == open {
            level += 1;
        } else if c == close {
            level -= 1;
            if level == 0 {
                return Some(i + 1);
            }
        }
        i += 1;
    }
    None
}

/// The type of the value at `offset` and where it ends.
fn get_type(data: &[u8], offset: usize) -> Result<(ValueType, usize), JsonError> {
    let rest = data.get(offset..).unwrap_or_default();
    match rest.first() {
        Some(b'"') => match string_end(&rest[1..]).0 {
            Some(idx) => Ok((ValueType::String, offset + idx + 1)),
            None => Err(JsonError::MalformedString),
        },
        Some(b'[') => block_end(rest, b'[', b']')
            .map(|end| (ValueType::Array, offset + end))
            .ok_or(JsonError::MalformedArray),
        Some(b'{') => block_end(rest, b'{', b'}')
            .map(|end| (ValueType::Object, offset + end))
            .ok_or(JsonError::MalformedObject),
        Some(&first) => {
            let end = token_end(rest);
            let value = &rest[..end];
            let ty = match first {
                b't' | b'f' if value == b"true" || value == b"false" => ValueType::Boolean,
                b'u' | b'n' if value == b"null" => ValueType::Null,
                b'0'..=b'9' | b'-' => ValueType::Number,
                _ => return Err(JsonError::UnknownValueType),
            };
            Ok((ty, offset + end))
        }
        None => Err(JsonError::MalformedJson),
    }
}

/// A value read by [`get`]: its bytes (a string without its quotes, still escaped), its
/// type, and where it ends in the data it was read from.
pub(crate) struct Value<'a> {
    pub bytes: &'a [u8],
    pub ty: ValueType,
    pub end: usize,
}

/// The first value in `data` (the package's `Get` without a key path).
pub(crate) fn get(data: &[u8]) -> Result<Value<'_>, JsonError> {
    let start = next_token(data).ok_or(JsonError::MalformedJson)?;
    let (ty, end) = get_type(data, start)?;
    let bytes = if ty == ValueType::String {
        &data[start + 1..end - 1]
    } else {
        &data[start..end]
    };
    Ok(Value { bytes, ty, end })
}

/// Calls `f` with each key (unescaped) and value of the object that `data` holds, in order.
/// Stops at the first error, `f`'s own included.
pub(crate) fn object_each<E: From<JsonError>>(
    data: &[u8],
    mut f: impl FnMut(&[u8], Value<'_>) -> Result<(), E>,
) -> Result<(), E> {
    let byte = |i: usize| data.get(i).copied();
    let mut offset = next_token(data).ok_or(JsonError::MalformedObject)?;
    if byte(offset) != Some(b'{') {
        return Err(JsonError::MalformedObject.into());
    }
    offset += 1;
    offset += next_token(&data[offset..]).ok_or(JsonError::MalformedJson)?;
    if byte(offset) == Some(b'}') {
        return Ok(());
    }
    while offset < data.len() {
        match data[offset] {
            b'"' => offset += 1,
            b'}' => return Ok(()),
            _ => return Err(JsonError::MalformedObject.into()),
        }
        let (end, escaped) = string_end(&data[offset..]);
        let end = end.ok_or(JsonError::MalformedJson)?;
        let raw_key = &data[offset..offset + end - 1];
        offset += end;
        let key = if escaped {
            unescape(raw_key).map_err(|_| JsonError::MalformedStringEscape)?
        } else {
            Cow::Borrowed(raw_key)
        };
        offset += next_token(&data[offset..]).ok_or(JsonError::MalformedJson)?;
        if byte(offset) != Some(b':') {
            return Err(JsonError::MalformedJson.into());
        }
        offset += 1;
        let value = get(&data[offset..])?;
        let value_end = value.end;
        f(&key, value)?;
        offset += value_end;
        offset += next_token(&data[offset..]).ok_or(JsonError::MalformedArray)?;
        match data[offset] {
            b'}' => return Ok(()),
            b',' => offset += 1,
            _ => return Err(JsonError::MalformedObject.into()),
        }
        offset += next_token(&data[offset..]).ok_or(JsonError::MalformedArray)?;
    }
    Err(JsonError::MalformedObject.into())
}

/// Calls `f` with each element of the array that starts `data` (after whitespace): its bytes
/// (a string without quotes), type and the package's offset of it. Returns where the scan
/// stopped, as the package does (the callers use it even after an error).
fn array_each(
    data: &[u8],
    mut f: impl FnMut(&[u8], ValueType, usize),
) -> (Option<usize>, Option<JsonError>) {
    if data.is_empty() {
        return (None, Some(JsonError::MalformedObject));
    }
    let Some(first) = next_token(data) else {
        return (None, Some(JsonError::MalformedJson));
    };
    let mut offset = first + 1;
    match next_token(data.get(offset..).unwrap_or_default()) {
        Some(n) => offset += n,
        None => return (Some(offset), Some(JsonError::MalformedJson)),
    }
    if data[offset] == b']' {
        return (Some(offset), None);
    }
    loop {
        let value = match get(&data[offset..]) {
            Ok(v) => v,
            Err(e) => return (Some(offset), Some(e)),
        };
        if value.end == 0 {
            break;
        }
        f(
            value.bytes,
            value.ty,
            offset + value.end - value.bytes.len(),
        );
        offset += value.end;
        match next_token(&data[offset..]) {
            Some(n) => offset += n,
            None => return (Some(offset), Some(JsonError::MalformedArray)),
        }
        match data[offset] {
            b']' => break,
            b',' => offset += 1,
            _ => return (Some(offset), Some(JsonError::MalformedArray)),
        }
    }
    (Some(offset), None)
}

/// The index of a `[N]` path element, as the package reads it where it must be one (`]` at
/// the end, Go's `strconv.Atoi` inside): `None` when it is not an index.
fn array_index(key: &str) -> Option<i64> {
    go_atoi(key.strip_prefix('[')?.strip_suffix(']')?)
}

/// The index of a path element that starts with `[`, as `EachKey` reads it: the brackets'
/// places are assumed and a bad number is 0 (Go's ignored `Atoi` error).
fn assumed_index(key: &str) -> i64 {
    key.get(1..key.len().saturating_sub(1))
        .and_then(go_atoi)
        .unwrap_or(0)
}

fn go_atoi(s: &str) -> Option<i64> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Where the value at `keys` starts in `data` (the package's `searchKeys`), for a key path
/// below an array element. Levels are signed as in the package, where a stray `}` can take
/// them below zero; where the package would then index out of bounds, this gives up.
fn search_keys(data: &[u8], keys: &[String]) -> Option<usize> {
    if keys.is_empty() {
        return Some(0);
    }
    let key_at = |level: i64| usize::try_from(level).ok().and_then(|l| keys.get(l));
    let (mut key_level, mut level) = (0i64, 0i64);
    let mut last_matched = true;
    let mut i = 0;
    while i < data.len() {
        match data[i] {
            b'"' => {
                i += 1;
                let key_begin = i;
                let (end, escaped) = string_end(&data[i..]);
                i += end?;
                let key_end = i - 1;
                i += next_token(&data[i..])?;
                if data[i] == b':' {
                    if level < 1 {
                        return None;
                    }
                    let raw = &data[key_begin..key_end];
                    let key = if escaped {
                        unescape(raw).ok()?
                    } else {
                        Cow::Borrowed(raw)
                    };
                    let wanted = key_at(level - 1)?;
                    if *key == *wanted.as_bytes() {
                        last_matched = true;
                        if key_level == level - 1 {
                            key_level += 1;
                            if key_level == keys.len() as i64 {
                                return Some(i + 1);
                            }
                        }
                    } else {
                        last_matched = false;
                    }
                } else {
                    i -= 1;
                }
            }
            b'{' => {
                if last_matched {
                    level += 1;
                } else {
                    i += block_end(&data[i..], b'{', b'}')? - 1;
                }
            }
            b'}' => {
                level -= 1;
                if level == key_level {
                    key_level -= 1;
                }
            }
            b'[' => {
                let wanted = key_at(level).filter(|k| k.starts_with('['));
                if key_level == level
                    && let Some(wanted) = wanted
                {
                    let index = array_index(wanted)?;
                    let mut current = 0i64;
                    let mut found: Option<(usize, usize)> = None;
                    let array = &data[i..];
                    array_each(array, |value, ty, offset| {
                        if current == index {
                            found = Some(if ty == ValueType::String {
                                (offset.saturating_sub(2), value.len() + 2)
                            } else {
                                (offset, value.len())
                            });
                        }
                        current += 1;
                    });
                    let (offset, len) = found?;
                    let value = array.get(offset..offset + len)?;
                    let rest = keys.get(usize::try_from(level).ok()? + 1..)?;
                    return Some(i + offset + search_keys(value, rest)?);
                }
                i += block_end(&data[i..], b'[', b']')? - 1;
            }
            b':' => return None,
            _ => {}
        }
        i += 1;
    }
    None
}

/// Whether `path` starts with the keys of the enclosing objects (the package's `sameTree`:
/// compared up to the shorter of the two).
fn same_tree(path: &[String], enclosing: &[Cow<'_, [u8]>]) -> bool {
    path.iter()
        .zip(enclosing)
        .all(|(p, e)| p.as_bytes() == &**e)
}

/// Finds the values of several key paths in one pass (the package's `EachKey`) and calls
/// `f(path index, value bytes, type, error)` for each path found, in the order found. A path
/// element `[N]` indexes an array. Like the package, it calls `f(None, .., Some(error))` when
/// it meets a key outside any object.
pub(crate) fn each_key(
    data: &[u8],
    paths: &[Vec<String>],
    mut f: impl FnMut(Option<usize>, &[u8], ValueType, Option<JsonError>),
) {
    let mut level: i64 = 0;
    let mut paths_matched = 0;
    let mut path_flags = vec![false; paths.len()];
    let max_path = paths.iter().map(Vec::len).max().unwrap_or(0);
    let mut paths_buf: Vec<Cow<'_, [u8]>> = vec![Cow::Borrowed(&[][..]); max_path];
    let mut i: usize = 0;
    while i < data.len() {
        match data[i] {
            b'"' => {
                i += 1;
                let key_begin = i;
                let (end, escaped) = string_end(&data[i..]);
                let Some(end) = end else { return };
                i += end;
                let key_end = i - 1;
                let Some(value_offset) = next_token(&data[i..]) else {
                    return;
                };
                i += value_offset;
                if data[i] == b':' {
                    let mut matched = false;
                    let raw = &data[key_begin..key_end];
                    let key = if escaped {
                        match unescape(raw) {
                            Ok(k) => k,
                            Err(_) => return,
                        }
                    } else {
                        Cow::Borrowed(raw)
                    };
                    if max_path as i64 >= level {
                        if level < 1 {
                            f(
                                None,
                                &[],
                                ValueType::Unknown,
                                Some(JsonError::MalformedJson),
                            );
                            return;
                        }
                        let depth = level as usize;
                        paths_buf[depth - 1] = key.clone();
                        for (pi, p) in paths.iter().enumerate() {
                            if p.len() != depth
                                || path_flags[pi]
                                || *key != *p[depth - 1].as_bytes()
                                || !same_tree(p, &paths_buf[..depth])
                            {
                                continue;
                            }
                            matched = true;
                            paths_matched += 1;
                            path_flags[pi] = true;
                            match get(data.get(i + 1..).unwrap_or_default()) {
                                Ok(v) => f(Some(pi), v.bytes, v.ty, None),
                                Err(e) => f(Some(pi), &[], ValueType::Unknown, Some(e)),
                            }
                            if paths_matched == paths.len() {
                                break;
                            }
                        }
                        if paths_matched == paths.len() {
                            return;
                        }
                    }
                    if !matched {
                        // As the package does: step to just before the value and skip it
                        // when it is an object (one past the object, then back one below).
                        match next_token(data.get(i + 1..).unwrap_or_default()) {
                            Some(n) => i += n,
                            None => i -= 1,
                        }
                        if data.get(i) == Some(&b'{') {
                            let skip = block_end(&data[i..], b'{', b'}').map_or(0, |e| e + 1);
                            i += skip;
                        }
                    }
                    if i < data.len() && matches!(data[i], b'{' | b'}' | b'[' | b'"') {
                        i -= 1;
                    }
                } else {
                    i -= 1;
                }
            }
            b'{' => level += 1,
            b'}' => level -= 1,
            b'[' => {
                if level < 0 {
                    f(
                        None,
                        &[],
                        ValueType::Unknown,
                        Some(JsonError::MalformedJson),
                    );
                    return;
                }
                let depth = level as usize;
                let enclosing = &paths_buf[..depth.min(max_path)];
                let mut wanted_indexes: Vec<i64> = Vec::new();
                let mut index_paths = vec![false; paths.len()];
                for (pi, p) in paths.iter().enumerate() {
                    let Some(element) = p.get(depth) else {
                        continue;
                    };
                    if path_flags[pi] || !element.starts_with('[') || !same_tree(p, enclosing) {
                        continue;
                    }
                    if element.len() > 2 {
                        wanted_indexes.push(assumed_index(element));
                        index_paths[pi] = true;
                    }
                }
                if wanted_indexes.is_empty() {
                    match block_end(&data[i..], b'[', b']') {
                        Some(skip) => i += skip - 1,
                        None => return,
                    }
                } else {
                    // The array is one more level; its closing `]` takes it back.
                    level += 1;
                    let mut current = 0i64;
                    let (array_end, _) = array_each(&data[i..], |value, ty, _| {
                        if wanted_indexes.contains(&current) {
                            for (pi, p) in paths.iter().enumerate() {
                                if !index_paths[pi] || assumed_index(&p[depth]) != current {
                                    continue;
                                }
                                let found = search_keys(value, &p[depth + 1..]);
                                paths_matched += 1;
                                path_flags[pi] = true;
                                let Some(of) = found else { continue };
                                let rest = value.get(of..).unwrap_or_default();
                                if ty == ValueType::String {
                                    // The quotes are gone: the value is the rest as is.
                                    f(Some(pi), rest, ty, None);
                                } else {
                                    match get(rest) {
                                        Ok(v) => f(Some(pi), v.bytes, v.ty, None),
                                        Err(e) => f(Some(pi), &[], ValueType::Unknown, Some(e)),
                                    }
                                }
                            }
                        }
                        current += 1;
                    });
                    if paths_matched == paths.len() {
                        return;
                    }
                    // The package adds the offset minus one even when the scan failed
                    // (offset -1 then moves back two bytes; here it stays in bounds).
                    match array_end {
                        Some(end) => i = (i + end).saturating_sub(1),
                        None => i = i.saturating_sub(2),
                    }
                }
            }
            b']' => level -= 1,
            _ => {}
        }
        i += 1;
    }
}

/// Unescapes the inside of a JSON string (the package's `Unescape`): the two-character
/// escapes, `\uXXXX` and surrogate pairs. A code point that is not a character becomes
/// U+FFFD. Borrowed when there is nothing to unescape.
pub(crate) fn unescape(input: &[u8]) -> Result<Cow<'_, [u8]>, JsonError> {
    if memchr::memchr(b'\\', input).is_none() {
        return Ok(Cow::Borrowed(input));
    }
    let mut out = Vec::with_capacity(input.len());
    unescape_into(input, &mut out)?;
    Ok(Cow::Owned(out))
}

/// [`unescape`] into a buffer the caller reuses (cleared first).
pub(crate) fn unescape_into(input: &[u8], out: &mut Vec<u8>) -> Result<(), JsonError> {
    out.clear();
    let Some(first) = memchr::memchr(b'\\', input) else {
        out.extend_from_slice(input);
        return Ok(());
    };
    out.extend_from_slice(&input[..first]);
    let mut rest = &input[first..];
    while !rest.is_empty() {
        let consumed = unescape_one(rest, out).ok_or(JsonError::MalformedStringEscape)?;
        rest = &rest[consumed..];
        match memchr::memchr(b'\\', rest) {
            Some(next) => {
                out.extend_from_slice(&rest[..next]);
                rest = &rest[next..];
            }
            None => {
                out.extend_from_slice(rest);
                break;
            }
        }
    }
    Ok(())
}

/// Decodes the escape at the start of `input` into `out`; returns how many bytes it used.
fn unescape_one(input: &[u8], out: &mut Vec<u8>) -> Option<usize> {
    if input.len() < 2 || input[0] != b'\\' {
        return None;
    }
    let simple = match input[1] {
        b'"' => b'"',
        b'\\' => b'\\',
        b'/' => b'/',
        b'b' => 0x08,
        b'f' => 0x0c,
        b'n' => b'\n',
        b'r' => b'\r',
        b't' => b'\t',
        b'u' => {
            let (code, used) = decode_unicode_escape(input)?;
            let c = char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER);
            out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
            return Some(used);
        }
        _ => return None,
    };
    out.push(simple);
    Some(2)
}

/// Four hex digits after a two-byte prefix that is assumed, not checked (as in the package).
fn decode_single_unicode_escape(input: &[u8]) -> Option<u32> {
    let hex = input.get(2..6)?;
    hex.iter()
        .try_fold(0u32, |acc, &c| Some(acc << 4 | (c as char).to_digit(16)?))
}

fn decode_unicode_escape(input: &[u8]) -> Option<(u32, usize)> {
    let r = decode_single_unicode_escape(input)?;
    if r <= 0xFFFF && !(0xD800..=0xDFFF).contains(&r) {
        return Some((r, 6));
    }
    let r2 = decode_single_unicode_escape(input.get(6..)?)?;
    if r2 < 0xDC00 {
        return None;
    }
    Some((0x10000 + ((r - 0xD800) << 10) + (r2 - 0xDC00), 12))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys_of(line: &str) -> Result<Vec<(String, String, ValueType)>, JsonError> {
        let mut out = Vec::new();
        object_each::<JsonError>(line.as_bytes(), |k, v| {
            out.push((
                String::from_utf8_lossy(k).into_owned(),
                String::from_utf8_lossy(v.bytes).into_owned(),
                v.ty,
            ));
            Ok(())
        })?;
        Ok(out)
    }

    #[test]
    fn object_each_reads_in_place() {
        let got =
            keys_of(r#" {"a": "x\"y", "b":1.5e3, "c":{"d":[1]}, "e":null, "f":true} "#).unwrap();
        let types: Vec<_> = got
            .iter()
            .map(|(k, v, t)| (k.as_str(), v.as_str(), *t))
            .collect();
        assert_eq!(
            types,
            [
                ("a", r#"x\"y"#, ValueType::String),
                ("b", "1.5e3", ValueType::Number),
                ("c", r#"{"d":[1]}"#, ValueType::Object),
                ("e", "null", ValueType::Null),
                ("f", "true", ValueType::Boolean),
            ]
        );
        assert_eq!(keys_of("{}").unwrap(), []);
        // Lenient as the Go package: a number is any token starting with a digit.
        assert_eq!(keys_of(r#"{"n":12ab}"#).unwrap()[0].1, "12ab");
    }

    #[test]
    fn errors_carry_the_package_messages() {
        assert_eq!(keys_of("{n}"), Err(JsonError::MalformedObject));
        assert_eq!(keys_of(""), Err(JsonError::MalformedObject));
        assert_eq!(keys_of("[1]"), Err(JsonError::MalformedObject));
        assert_eq!(keys_of(r#"{"a":"#), Err(JsonError::MalformedJson));
        assert_eq!(keys_of(r#"{"a":tru}"#), Err(JsonError::UnknownValueType));
        assert_eq!(keys_of(r#"{"a":"x"#), Err(JsonError::MalformedString));
        assert_eq!(keys_of(r#"{"a":{"b":1}"#), Err(JsonError::MalformedArray));
        assert_eq!(
            JsonError::MalformedObject.message(),
            "Value looks like object, but can't find closing '}' symbol"
        );
    }

    #[test]
    fn unescape_follows_the_package() {
        let u =
            |s: &str| unescape(s.as_bytes()).map(|b| String::from_utf8(b.into_owned()).unwrap());
        assert_eq!(u(r#"plain"#).unwrap(), "plain");
        assert_eq!(u(r#"a\"b\\c\/d\n"#).unwrap(), "a\"b\\c/d\n");
        assert_eq!(u(r#"\u00e9\ud83d\ude00"#).unwrap(), "é😀");
        assert!(u(r#"\ud83d"#).is_err(), "a lone high surrogate");
        assert!(u(r#"\q"#).is_err());
        assert!(u(r#"\u12"#).is_err());
        // An impossible pair decodes to the replacement character, as Go's EncodeRune does.
        assert_eq!(u(r#"\udfff\uffff"#).unwrap(), "\u{fffd}");
    }

    fn each(line: &str, paths: &[&[&str]]) -> Vec<(Option<usize>, String)> {
        let paths: Vec<Vec<String>> = paths
            .iter()
            .map(|p| p.iter().map(|s| s.to_string()).collect())
            .collect();
        let mut out = Vec::new();
        each_key(line.as_bytes(), &paths, |i, v, _, _| {
            out.push((i, String::from_utf8_lossy(v).into_owned()))
        });
        out
    }

    #[test]
    fn each_key_finds_paths() {
        let line = r#"{"app":"foo","pod":{"uuid":"u1","params":[1,2,{"x":"y"},"s"]},"n":null}"#;
        assert_eq!(each(line, &[&["app"]]), [(Some(0), "foo".into())]);
        assert_eq!(each(line, &[&["pod", "uuid"]]), [(Some(0), "u1".into())]);
        assert_eq!(
            each(line, &[&["pod", "params", "[3]"]]),
            [(Some(0), "s".into())]
        );
        assert_eq!(
            each(line, &[&["pod", "params", "[2]", "x"]]),
            [(Some(0), "y".into())]
        );
        assert_eq!(
            each(line, &[&["pod", "params"]]),
            [(Some(0), r#"[1,2,{"x":"y"},"s"]"#.into())]
        );
        assert_eq!(each(line, &[&["missing"]]), []);
        let both = each(line, &[&["n"], &["app"]]);
        assert_eq!(both.len(), 2);
    }

    #[test]
    fn scanning_garbage_never_panics() {
        for line in [
            "",
            "{",
            "}",
            "[",
            "]",
            "\"",
            ":",
            "{\"",
            "{\"a\"",
            "{\"a\":",
            "[[[",
            "]]]{",
            "{\"a\":[",
            "{\"a\":[1,",
            "\"a\":1",
            "{\"\\",
            "[\"a\":1]",
            "{\"a\"}",
        ] {
            let _ = keys_of(line);
            let _ = each(line, &[&["a"], &["[0]"], &["a", "[1]", "b"]]);
            let _ = get(line.as_bytes());
        }
    }
}

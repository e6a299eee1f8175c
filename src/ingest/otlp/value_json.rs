//! An OTLP map or array value as JSON text, byte for byte as Go's `json.Marshal` writes the
//! collector's `AsRaw()` of it, which is what Loki stores for such a body or attribute: map
//! keys sorted (a repeated key keeps its last value), strings with Go's escaping (`<`, `>`,
//! `&`, U+2028 and U+2029 as `\u` escapes), numbers in JavaScript's format, bytes in base64,
//! an empty value as `null`.

use std::fmt::Write;

use super::mapping::{base64_text, double_text};
use super::proto::{AnyValue, any_value::Value};

/// Go's encoder refuses NaN and the infinities; so does this.
#[derive(Debug)]
pub struct Unsupported;

/// Writes `value` as JSON to `out`.
pub fn write(value: &AnyValue, out: &mut String) -> Result<(), Unsupported> {
    match &value.value {
        None | Some(Value::StringValueStrindex(_)) => out.push_str("null"),
        Some(Value::StringValue(s)) => string(s, out),
        Some(Value::BoolValue(b)) => out.push_str(if *b { "true" } else { "false" }),
        Some(Value::IntValue(i)) => {
            let _ = write!(out, "{i}");
        }
        Some(Value::DoubleValue(f)) => {
            if !f.is_finite() {
                return Err(Unsupported);
            }
            out.push_str(&double_text(*f));
        }
        Some(Value::BytesValue(b)) => string(&base64_text(b), out),
        Some(Value::ArrayValue(a)) => {
            out.push('[');
            for (i, v) in a.values.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write(v, out)?;
            }
            out.push(']');
        }
        Some(Value::KvlistValue(map)) => {
            // Sorted by key; of equal keys the last, as a Go map built from the list keeps.
            let mut entries: Vec<(&str, Option<&AnyValue>)> = Vec::new();
            for kv in &map.values {
                entries.retain(|(k, _)| *k != kv.key);
                entries.push((&kv.key, kv.value.as_ref()));
            }
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                string(k, out);
                out.push(':');
                match v {
                    Some(v) => write(v, out)?,
                    None => out.push_str("null"),
                }
            }
            out.push('}');
        }
    }
    Ok(())
}

/// A JSON string as Go's encoder escapes it (HTML-safe).
fn string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

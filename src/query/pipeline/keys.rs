//! How parsers turn the keys they extract into label names (Loki's `sanitizeLabelKey` and
//! `appendSanitized`, pkg/logql/log/util.go).
//!
//! Which question it answers: "what label does key `cou-nter` become?" Surrounding white
//! space is trimmed, every character outside `[A-Za-z0-9_]` becomes one `_`, and a name that
//! would start with a digit gets a leading `_`.

/// Whether a character is kept as is in a label name.
fn is_label_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Appends the label name for `key` to `out` (cleared first). With `is_prefix`, a name that
/// starts with a digit gets a leading `_`. The result may be empty (a blank key).
pub(crate) fn sanitize_label_key(key: &str, is_prefix: bool, out: &mut String) {
    out.clear();
    // Most keys are label names already.
    let bytes = key.as_bytes();
    if bytes.first().is_some_and(|b| !b.is_ascii_digit())
        && bytes
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'_')
    {
        out.push_str(key);
        return;
    }
    let key = key.trim();
    if key.is_empty() {
        return;
    }
    if is_prefix && key.as_bytes()[0].is_ascii_digit() {
        out.push('_');
    }
    out.extend(key.chars().map(|c| if is_label_char(c) { c } else { '_' }));
}

/// Appends `key` sanitised to a name being built part by part (nested JSON keys): a blank key
/// adds nothing, and only a name's first part gets the leading `_` before a digit.
pub(crate) fn append_sanitized(out: &mut String, key: &str) {
    let bytes = key.as_bytes();
    if bytes.first().is_some_and(|b| !b.is_ascii_digit())
        && bytes
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'_')
    {
        out.push_str(key);
        return;
    }
    let key = key.trim();
    if key.is_empty() {
        return;
    }
    if out.is_empty() && key.as_bytes()[0].is_ascii_digit() {
        out.push('_');
    }
    out.extend(key.chars().map(|c| if is_label_char(c) { c } else { '_' }));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sanitize(key: &str) -> String {
        let mut out = String::new();
        sanitize_label_key(key, true, &mut out);
        out
    }

    #[test]
    fn keys_become_label_names() {
        assert_eq!(sanitize("  "), "");
        assert_eq!(sanitize("1 1 1"), "_1_1_1");
        assert_eq!(sanitize("$a$bc"), "_a_bc");
        assert_eq!(sanitize("cou-nter"), "cou_nter");
        assert_eq!(sanitize("ÜFT8👌"), "_FT8_");
        let mut out = String::from("pod");
        out.push('_');
        append_sanitized(&mut out, " 9lives ");
        assert_eq!(out, "pod_9lives");
        let mut out = String::new();
        append_sanitized(&mut out, "9lives");
        assert_eq!(out, "_9lives");
    }
}

//! The line column of a block body (format version 2): three layouts, chosen per block by
//! the writer, named by one byte before the column. Version 1 bodies have no such byte and
//! are always [`LAYOUT_LENGTHS`].
//!
//! ```text
//! 0 lengths    n unsigned varints (line byte lengths), then the line bytes concatenated
//! 1 newlines   each line followed by b'\n' (used when no line of the block holds a b'\n')
//! 2 templates  varint T (templates, 1..=n); T templates, each: varint k (variables), then
//!              k + 1 static pieces as varint length + bytes; n varint template ids (< T);
//!              then the slots, by template, then by slot 0..k, each holding the variables
//!              of that template's lines in line order: a kind byte, then
//!                0 text     each variable followed by b'\n'
//!                1 deltas   varint width w (1..=18), then each value's difference from the
//!                           previous (from 0) in decimal ('-' if negative) followed by b'\n';
//!                           values are w-digit decimal numbers, zero-padded
//!                2 clock    (version 4 on) varint width w (1..=18), one byte f (< 16), then
//!                           each value's difference from field f of its line's timestamp
//!                           (the `clock` module) in decimal ('-' if negative) followed by
//!                           b'\n'; values are w-digit decimal numbers, zero-padded
//! ```
//!
//! A templated line is `static_0 var_0 static_1 var_1 ... static_k`. The writer takes as
//! variables the maximal runs of hex digits (`0-9a-fA-F`) that hold a decimal digit, so a
//! variable never holds b'\n' and every other byte is static. Why: log lines are a few shapes
//! filled with numbers and ids; with the shapes stored once and each slot's values side by
//! side (timestamps next to timestamps, ids next to ids), zstd finds far more repeats than in
//! the lines as written. Measured on the ten loghub corpus files at zstd level 19: 158.6 KB
//! against 189.2 KB for the lines as they are (16% less); at level 3, 192 KB against 252 KB.
//!
//! Clock slots (version 4) take the numbers a line prints of its own time from the entry's
//! timestamp, which the timestamp column already holds: on the ten files, each line stamped
//! with the time it prints, the templated lines take 128 KB at level 19 against 158 KB with
//! delta slots alone (a model of the layout in Python; `benches/storage-figures.sh line`
//! gives the figures for whole parts).
//!
//! Decoding needs no knowledge of how variables were chosen: any split round-trips. Every
//! count and length is checked against the body's length and the block header's line bytes
//! before anything is allocated for it.

use std::collections::HashMap;

use super::clock::{CLOCK_FIELDS, FieldOf};
use super::varint::{get_uvarint, put_uvarint};

pub(crate) const LAYOUT_LENGTHS: u8 = 0;
pub(crate) const LAYOUT_NEWLINES: u8 = 1;
pub(crate) const LAYOUT_TEMPLATES: u8 = 2;

/// Templates pay for their table and ids when lines repeat their shapes: a block is templated
/// only if it has at least this many lines per distinct template.
pub(crate) const LINES_PER_TEMPLATE_MIN: usize = 4;

/// A slot of variables as they are, each followed by b'\n'.
const SLOT_TEXT: u8 = 0;
/// A slot of decimal numbers of one width: varint width, then each value's difference from
/// the previous one (from 0 for the first) in decimal, with a '-' if negative, followed by
/// b'\n'. The values are written back zero-padded to the width.
const SLOT_DELTAS: u8 = 1;
/// A slot of decimal numbers of one width taken from their lines' timestamps: varint width,
/// a field byte, then each value's difference from that field of its line's timestamp, as
/// in a delta slot.
const SLOT_CLOCK: u8 = 2;
/// Digits of a number in a delta or clock slot: 18 keep every value, every delta and every
/// difference from a clock field in an i64 (a difference may take 19 digits, which
/// `parse_delta` reads).
const SLOT_DIGITS_MAX: usize = 18;
/// A numeric slot may be a clock slot when at least this share of its values (in tenths)
/// are exactly a field of their timestamps: the rest pay their difference.
const CLOCK_EXACT_TENTHS_MIN: usize = 9;

/// Whether the writer tries the templates layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineTemplates {
    /// Lines as written (lengths or newlines): the cheapest to encode, for sealing.
    Off,
    /// Templates where lines repeat their shapes: a scan over the lines and a hash lookup
    /// per line, for compaction.
    Auto,
}

/// Where the variables of `line` are: maximal runs of hex digits holding a decimal digit.
fn variables(line: &[u8], out: &mut Vec<(u32, u32)>) {
    let mut i = 0;
    while i < line.len() {
        if !line[i].is_ascii_hexdigit() {
            i += 1;
            continue;
        }
        let start = i;
        let mut digit = false;
        while i < line.len() && line[i].is_ascii_hexdigit() {
            digit |= line[i].is_ascii_digit();
            i += 1;
        }
        if digit {
            out.push((start as u32, i as u32));
        }
    }
}

/// Appends the line column of `lines` to `out`, layout byte first. `timestamps` are the
/// lines' (one each) when the body's version has clock slots, else empty.
pub(crate) fn encode_lines<'a>(
    lines: impl Iterator<Item = &'a str> + Clone,
    n: usize,
    templates: LineTemplates,
    timestamps: &[i64],
    out: &mut Vec<u8>,
) {
    if templates == LineTemplates::Auto && encode_templates(lines.clone(), n, timestamps, out) {
        return;
    }
    if lines.clone().any(|l| l.as_bytes().contains(&b'\n')) {
        out.push(LAYOUT_LENGTHS);
        for l in lines.clone() {
            put_uvarint(out, l.len() as u64);
        }
        for l in lines {
            out.extend_from_slice(l.as_bytes());
        }
    } else {
        out.push(LAYOUT_NEWLINES);
        for l in lines {
            out.extend_from_slice(l.as_bytes());
            out.push(b'\n');
        }
    }
}

/// The templates layout, if the lines have few enough shapes; `false` (nothing written)
/// otherwise.
fn encode_templates<'a>(
    lines: impl Iterator<Item = &'a str>,
    n: usize,
    timestamps: &[i64],
    out: &mut Vec<u8>,
) -> bool {
    let mut ids: HashMap<Vec<u8>, u32> = HashMap::new();
    // Per template: its encoded form (k, pieces) and its lines.
    let mut shapes: Vec<(Vec<u8>, usize, Vec<u32>)> = Vec::new();
    let mut line_ids = Vec::with_capacity(n);
    // Every line's variables, flattened; `var_starts[i]` is line i's first.
    let mut vars: Vec<(u32, u32)> = Vec::new();
    let mut var_starts = Vec::with_capacity(n + 1);
    let mut key = Vec::new();
    let all: Vec<&str> = lines.collect();
    for (i, line) in all.iter().enumerate() {
        let b = line.as_bytes();
        let first = vars.len();
        var_starts.push(first);
        variables(b, &mut vars);
        key.clear();
        put_uvarint(&mut key, (vars.len() - first) as u64);
        let mut at = 0usize;
        for &(s, e) in &vars[first..] {
            put_uvarint(&mut key, u64::from(s) - at as u64);
            key.extend_from_slice(&b[at..s as usize]);
            at = e as usize;
        }
        put_uvarint(&mut key, (b.len() - at) as u64);
        key.extend_from_slice(&b[at..]);
        let id = match ids.get(key.as_slice()) {
            Some(&id) => id,
            None => {
                let id = shapes.len() as u32;
                ids.insert(key.clone(), id);
                shapes.push((key.clone(), vars.len() - first, Vec::new()));
                id
            }
        };
        shapes[id as usize].2.push(i as u32);
        line_ids.push(id);
        if shapes.len() * LINES_PER_TEMPLATE_MIN > n.max(LINES_PER_TEMPLATE_MIN) {
            return false;
        }
    }
    var_starts.push(vars.len());
    out.push(LAYOUT_TEMPLATES);
    put_uvarint(out, shapes.len() as u64);
    for (encoded, _, _) in &shapes {
        out.extend_from_slice(encoded);
    }
    for id in line_ids {
        put_uvarint(out, u64::from(id));
    }
    let mut slot: Vec<&[u8]> = Vec::new();
    // The timestamps of the template's lines, for the numeric slots that print them.
    let mut slot_ts: Vec<i64> = Vec::new();
    for (_, k, members) in &shapes {
        slot_ts.clear();
        if timestamps.len() == n {
            slot_ts.extend(members.iter().map(|&line| timestamps[line as usize]));
        }
        for j in 0..*k {
            slot.clear();
            slot.extend(members.iter().map(|&line| {
                let (s, e) = vars[var_starts[line as usize] + j];
                &all[line as usize].as_bytes()[s as usize..e as usize]
            }));
            encode_slot(&slot, &slot_ts, out);
        }
    }
    true
}

/// The field of the lines' timestamps that the numbers `values` (of `width` digits) print,
/// if any.
///
/// - Several values: of the fields that change over the slot's lines and that at least
///   [`CLOCK_EXACT_TENTHS_MIN`] tenths of the values are exactly (every difference in an
///   i64), the one they are most often, then the lowest number. A field that is one value
///   over the lines only subtracts a constant, which deltas do as well, and its "matches" are
///   chance: a slot of zeros is exactly the second of lines stamped on whole seconds (on the
///   corpus stamped every 0.3 days, such slots took 1.1 KB more than their deltas).
/// - One value (written as text otherwise, `width + 1` bytes): the lowest field it is
///   exactly, if the clock slot (width, field, "0\n": 4 bytes) is shorter.
fn clock_field(values: &[i64], timestamps: &[i64], width: usize) -> Option<usize> {
    if timestamps.len() != values.len() || values.is_empty() {
        return None;
    }
    if values.len() == 1 {
        // Text: the width and b'\n'; the clock slot: width, field, "0\n".
        if width < 4 {
            return None;
        }
        return (0..CLOCK_FIELDS).find(|&f| values[0] == FieldOf::new(f).of(timestamps[0]));
    }
    let need = (values.len() * CLOCK_EXACT_TENTHS_MIN).div_ceil(10);
    // Fields are computed value by value, not kept per line (16 of them per line of a block
    // of a million short lines would be 128 MB), and a field is dropped at its first miss
    // past the tenth allowed: a slot that prints no time costs a few values per field.
    let misses_max = values.len() - need;
    let mut best: Option<(usize, usize)> = None;
    for f in 0..CLOCK_FIELDS {
        let mut of = FieldOf::new(f);
        let first = of.of(timestamps[0]);
        let (mut exact, mut misses, mut varies) = (0, 0, false);
        for (&v, &t) in values.iter().zip(timestamps) {
            let x = of.of(t);
            varies |= x != first;
            if v == x {
                exact += 1;
            } else if v.checked_sub(x).is_none() {
                misses = usize::MAX;
                break;
            } else {
                misses += 1;
                if misses > misses_max {
                    break;
                }
            }
        }
        // Strictly more: of equals, the lowest field number.
        if varies && misses <= misses_max && best.is_none_or(|(most, _)| exact > most) {
            best = Some((exact, f));
        }
    }
    best.map(|(_, f)| f)
}

/// Appends one slot's variables: decimal numbers of one width as differences from the field
/// of their lines' timestamps they print (`timestamps`, one per variable; empty when the body
/// has no clock slots), else as deltas (counters, times of day, sequence numbers grow by
/// small steps); anything else as it is.
fn encode_slot(vars: &[&[u8]], timestamps: &[i64], out: &mut Vec<u8>) {
    let width = vars[0].len();
    let numeric = (1..=SLOT_DIGITS_MAX).contains(&width)
        && vars
            .iter()
            .all(|v| v.len() == width && v.iter().all(u8::is_ascii_digit));
    // At most 18 digits: every value and delta fits in an i64.
    let values: Vec<i64> = if numeric {
        vars.iter()
            .map(|v| v.iter().fold(0i64, |x, d| x * 10 + i64::from(d - b'0')))
            .collect()
    } else {
        Vec::new()
    };
    let clock = if numeric {
        clock_field(&values, timestamps, width)
    } else {
        None
    };
    if let Some(f) = clock {
        out.push(SLOT_CLOCK);
        put_uvarint(out, width as u64);
        out.push(f as u8);
        let mut of = FieldOf::new(f);
        for (x, &t) in values.iter().zip(timestamps) {
            // Checked by `clock_field`: the difference fits.
            out.extend_from_slice((x - of.of(t)).to_string().as_bytes());
            out.push(b'\n');
        }
    } else if numeric && vars.len() > 1 {
        out.push(SLOT_DELTAS);
        put_uvarint(out, width as u64);
        let mut prev = 0i64;
        for x in values {
            out.extend_from_slice((x - prev).to_string().as_bytes());
            out.push(b'\n');
            prev = x;
        }
    } else {
        out.push(SLOT_TEXT);
        for v in vars {
            out.extend_from_slice(v);
            out.push(b'\n');
        }
    }
}

/// Where decoded lines are: in the body (lengths, newlines) or rebuilt in the text buffer
/// (templates).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LinesIn {
    Body,
    Text,
}

fn varint(b: &[u8], pos: &mut usize, what: &str) -> Result<u64, String> {
    let at = *pos;
    get_uvarint(b, pos).map_err(|e| format!("body byte {at}: bad {what} varint: {e:?}"))
}

/// Reads the line column at `*pos` of body `b` for `n` lines holding `lines_bytes` bytes.
/// `ranges` gets each line's (start, end) in the body or in `text`; on success `*pos` is past
/// the column. Line bytes are checked to be UTF-8 with every line on character boundaries.
/// `timestamps` are the lines' when the body's version has clock slots (`None`: a clock
/// slot is an error).
#[allow(clippy::too_many_arguments)]
pub(crate) fn decode_lines(
    b: &[u8],
    pos: &mut usize,
    layout: u8,
    n: usize,
    lines_bytes: u64,
    timestamps: Option<&[i64]>,
    ranges: &mut Vec<(u32, u32)>,
    text: &mut Vec<u8>,
) -> Result<LinesIn, String> {
    ranges.clear();
    ranges.reserve(n);
    match layout {
        LAYOUT_LENGTHS => {
            let mut total = 0u64;
            for _ in 0..n {
                let at = *pos;
                let len = varint(b, pos, "line length")?;
                total = total.saturating_add(len);
                if total > b.len() as u64 {
                    return Err(format!(
                        "body byte {at}: line length {len} runs past the body ({} bytes)",
                        b.len()
                    ));
                }
                ranges.push(((total - len) as u32, total as u32));
            }
            let start = *pos;
            if start as u64 + total > b.len() as u64 {
                return Err(format!(
                    "body byte {start}: {total} line bytes run past the body ({} bytes)",
                    b.len()
                ));
            }
            check_total(total, lines_bytes)?;
            let end = start + total as usize;
            check_utf8(&b[start..end], start, ranges)?;
            for r in ranges.iter_mut() {
                *r = (r.0 + start as u32, r.1 + start as u32);
            }
            *pos = end;
            Ok(LinesIn::Body)
        }
        LAYOUT_NEWLINES => {
            let start = *pos;
            for _ in 0..n {
                let from = *pos;
                let Some(len) = memchr::memchr(b'\n', &b[from..]) else {
                    return Err(format!(
                        "body byte {from}: {} of {n} lines end before the body does",
                        ranges.len()
                    ));
                };
                ranges.push((from as u32, (from + len) as u32));
                *pos = from + len + 1;
            }
            check_total((*pos - start - n) as u64, lines_bytes)?;
            // b'\n' is ASCII, so every line starts and ends on a character boundary.
            std::str::from_utf8(&b[start..*pos]).map_err(|e| {
                format!(
                    "body byte {}: line bytes are not UTF-8",
                    start + e.valid_up_to()
                )
            })?;
            Ok(LinesIn::Body)
        }
        LAYOUT_TEMPLATES => {
            decode_templates(b, pos, n, lines_bytes, timestamps, ranges, text)?;
            Ok(LinesIn::Text)
        }
        other => Err(format!(
            "body byte {}: unknown line layout {other}",
            *pos - 1
        )),
    }
}

fn check_total(total: u64, lines_bytes: u64) -> Result<(), String> {
    if total != lines_bytes {
        return Err(format!(
            "lines hold {total} bytes, the block header says {lines_bytes}"
        ));
    }
    Ok(())
}

/// Checks that `region` is UTF-8 and that every range (relative to it) is on boundaries.
fn check_utf8(region: &[u8], at: usize, ranges: &[(u32, u32)]) -> Result<(), String> {
    let s = std::str::from_utf8(region).map_err(|e| {
        format!(
            "body byte {}: line bytes are not UTF-8",
            at + e.valid_up_to()
        )
    })?;
    for &(start, end) in ranges {
        if !s.is_char_boundary(start as usize) || !s.is_char_boundary(end as usize) {
            return Err(format!(
                "body byte {}: a line boundary splits a UTF-8 character",
                at + end as usize
            ));
        }
    }
    Ok(())
}

fn decode_templates(
    b: &[u8],
    pos: &mut usize,
    n: usize,
    lines_bytes: u64,
    timestamps: Option<&[i64]>,
    ranges: &mut Vec<(u32, u32)>,
    text: &mut Vec<u8>,
) -> Result<(), String> {
    let at = *pos;
    let count = varint(b, pos, "template count")?;
    if count == 0 || count > n as u64 {
        return Err(format!("body byte {at}: {count} templates for {n} lines"));
    }
    // Per template: range of its pieces in `pieces`; every piece takes at least a byte.
    let count = count as usize;
    let mut shapes: Vec<(usize, usize)> = Vec::with_capacity(count);
    let mut pieces: Vec<(usize, usize)> = Vec::new();
    for t in 0..count {
        let at = *pos;
        let k = varint(b, pos, "template variables")?;
        if k >= (b.len() - *pos) as u64 {
            return Err(format!(
                "body byte {at}: template {t} has {k} variables, more than the body can hold"
            ));
        }
        let first = pieces.len();
        for _ in 0..=k {
            let at = *pos;
            let len = varint(b, pos, "template piece length")?;
            if len > (b.len() - *pos) as u64 {
                return Err(format!(
                    "body byte {at}: template piece of {len} bytes runs past the body"
                ));
            }
            pieces.push((*pos, *pos + len as usize));
            *pos += len as usize;
        }
        shapes.push((first, pieces.len()));
    }
    let mut ids = Vec::with_capacity(n);
    let mut uses = vec![0usize; count];
    for _ in 0..n {
        let at = *pos;
        let id = varint(b, pos, "template id")?;
        if id >= count as u64 {
            return Err(format!(
                "body byte {at}: template {id} of {count} templates"
            ));
        }
        ids.push(id as usize);
        uses[id as usize] += 1;
    }
    // The timestamps of each template's lines, in line order: template t's are
    // `by_template[ts_start[t]..ts_start[t] + uses[t]]`.
    let mut ts_start = Vec::with_capacity(count);
    let mut by_template = Vec::new();
    if let Some(timestamps) = timestamps {
        if timestamps.len() != n {
            return Err(format!("{} timestamps for {n} lines", timestamps.len()));
        }
        let mut at = 0;
        for &u in &uses {
            ts_start.push(at);
            at += u;
        }
        by_template.resize(n, 0i64);
        let mut fill = ts_start.clone();
        for (&t, &ts) in ids.iter().zip(timestamps) {
            by_template[fill[t]] = ts;
            fill[t] += 1;
        }
    }
    // Variables: slot (t, j) starts at `slot_start[t] + j * uses[t]` in `vars`; each is a
    // range of the body, or of `nums` for numbers rebuilt from deltas or timestamps.
    let mut slot_start = Vec::with_capacity(count);
    let mut vars: Vec<(bool, usize, usize)> = Vec::new();
    let mut nums: Vec<u8> = Vec::new();
    for (t, &(first, end)) in shapes.iter().enumerate() {
        slot_start.push(vars.len());
        let slot_ts = timestamps.map(|_| &by_template[ts_start[t]..ts_start[t] + uses[t]]);
        for _ in 0..end - first - 1 {
            decode_slot(b, pos, uses[t], lines_bytes, slot_ts, &mut vars, &mut nums)
                .map_err(|e| format!("template {t}: {e}"))?;
        }
    }
    text.clear();
    // Bounded: the header's line bytes are at most a body's maximum (checked at open).
    text.reserve(lines_bytes as usize);
    let mut seen = vec![0usize; count];
    for &t in &ids {
        let (first, end) = shapes[t];
        let k = end - first - 1;
        let start = text.len();
        for j in 0..=k {
            let (s, e) = pieces[first + j];
            extend_bounded(text, &b[s..e], lines_bytes)?;
            if j < k {
                let (in_nums, s, e) = vars[slot_start[t] + j * uses[t] + seen[t]];
                let from = if in_nums { &nums } else { b };
                extend_bounded(text, &from[s..e], lines_bytes)?;
            }
        }
        seen[t] += 1;
        ranges.push((start as u32, text.len() as u32));
    }
    check_total(text.len() as u64, lines_bytes)?;
    check_utf8(text, 0, ranges).map_err(|e| format!("rebuilt lines: {e}"))
}

/// Reads one slot of `count` variables at `*pos` into `vars` (numbers into `nums`, which
/// stays within `lines_bytes`). `timestamps` are the slot's lines' (`None`: the body's
/// version has no clock slots).
fn decode_slot(
    b: &[u8],
    pos: &mut usize,
    count: usize,
    lines_bytes: u64,
    timestamps: Option<&[i64]>,
    vars: &mut Vec<(bool, usize, usize)>,
    nums: &mut Vec<u8>,
) -> Result<(), String> {
    let at = *pos;
    let Some(&kind) = b.get(at) else {
        return Err(format!("body byte {at}: the body ends before a slot"));
    };
    *pos += 1;
    let next = |pos: &mut usize| {
        let from = *pos;
        match memchr::memchr(b'\n', &b[from..]) {
            Some(len) => {
                *pos = from + len + 1;
                Ok((from, from + len))
            }
            None => Err(format!(
                "body byte {from}: variables end before the body does"
            )),
        }
    };
    match kind {
        SLOT_TEXT => {
            for _ in 0..count {
                let (s, e) = next(pos)?;
                vars.push((false, s, e));
            }
        }
        SLOT_DELTAS | SLOT_CLOCK => {
            let at = *pos;
            let width = varint(b, pos, "slot width")?;
            if !(1..=SLOT_DIGITS_MAX as u64).contains(&width) {
                return Err(format!("body byte {at}: numbers of {width} digits"));
            }
            let width = width as usize;
            let limit = 10i64.pow(width as u32);
            // A clock slot's values are differences from a field of their timestamps.
            let mut clock = if kind == SLOT_CLOCK {
                let Some(timestamps) = timestamps else {
                    return Err(format!(
                        "body byte {}: a clock slot in a body of a version without them",
                        at - 1
                    ));
                };
                let Some(&field) = b.get(*pos) else {
                    return Err(format!("body byte {}: the body ends in a slot", *pos));
                };
                if usize::from(field) >= CLOCK_FIELDS {
                    return Err(format!("body byte {}: unknown clock field {field}", *pos));
                }
                *pos += 1;
                Some((timestamps, FieldOf::new(usize::from(field))))
            } else {
                None
            };
            let mut value = 0i64;
            for i in 0..count {
                let (s, e) = next(pos)?;
                let delta = parse_delta(&b[s..e])
                    .ok_or_else(|| format!("body byte {s}: not a number difference"))?;
                let base = match &mut clock {
                    Some((ts, field)) => field.of(ts[i]),
                    None => value,
                };
                value = base
                    .checked_add(delta)
                    .filter(|v| (0..limit).contains(v))
                    .ok_or_else(|| format!("body byte {s}: a number out of {width} digits"))?;
                if (nums.len() + width) as u64 > lines_bytes {
                    return Err(format!(
                        "body byte {s}: numbers pass the block header's {lines_bytes} line bytes"
                    ));
                }
                let start = nums.len();
                push_padded(nums, value as u64, width);
                vars.push((true, start, nums.len()));
            }
        }
        other => return Err(format!("body byte {at}: unknown slot kind {other}")),
    }
    Ok(())
}

/// A difference as the writer writes it: an optional '-', then 1 to 19 decimal digits.
fn parse_delta(t: &[u8]) -> Option<i64> {
    let (negative, digits) = match t.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, t),
    };
    if digits.is_empty() || digits.len() > SLOT_DIGITS_MAX + 1 {
        return None;
    }
    let mut v = 0i64;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(i64::from(d - b'0'))?;
    }
    Some(if negative { -v } else { v })
}

/// Appends `value` in decimal, zero-padded to `width` digits (the caller checked that it
/// fits), without formatting machinery: a slot can hold a number per line.
fn push_padded(out: &mut Vec<u8>, mut value: u64, width: usize) {
    let start = out.len();
    out.resize(start + width, b'0');
    for at in (start..start + width).rev() {
        out[at] = b'0' + (value % 10) as u8;
        value /= 10;
    }
    debug_assert_eq!(value, 0, "the value fits in the width");
}

/// Appends `bytes` unless the text would pass `max` bytes: the header bounds what is rebuilt.
fn extend_bounded(text: &mut Vec<u8>, bytes: &[u8], max: u64) -> Result<(), String> {
    if (text.len() + bytes.len()) as u64 > max {
        return Err(format!(
            "rebuilt lines pass the block header's {max} line bytes"
        ));
    }
    text.extend_from_slice(bytes);
    Ok(())
}

#[cfg(test)]
#[path = "lines_tests.rs"]
mod tests;

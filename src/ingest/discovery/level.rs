//! `detected_level` as Loki 3's distributor finds it (`FieldDetector.extractLogLevel` in
//! `pkg/distributor/field_detection.go`), in this order:
//!
//! 1. an entry that already carries `detected_level` keeps it, normalized;
//! 2. a stream label of [`LEVEL_FIELDS`] (the first of the list the stream has), normalized;
//! 3. a structured metadata field of the same list (OTLP's `severity_text` is one);
//! 4. OTLP's `severity_number` in the metadata, by the ranges of the OpenTelemetry log data
//!    model;
//! 5. the line: a JSON object's first string field of the list (document order, two levels
//!    deep), or a logfmt line's field of the list (the earliest of the list wins), when
//!    that value is a level word; otherwise the first level word in the line that stands
//!    alone between word boundaries (`[ERROR]`, `error:`, ` WARN `), and `unknown` if none.
//!
//! Normalizing maps the spellings Loki knows (`WARNING`, `wrn`, `err`, `information`, ...)
//! case-insensitively to `trace`, `debug`, `info`, `warn`, `error`, `critical` or `fatal`;
//! any other value is kept as it is (a syslog `notice` stays `notice`).
//!
//! One difference from Loki: Loki lower-cases the whole line with Unicode rules before it
//! looks for level words; this matches the ASCII words case-insensitively in place, which
//! finds the same words (no lower-casing of a non-ASCII character yields one of them) and
//! allocates nothing.

use super::line_fields;

/// The structured metadata name Loki gives the level (`constants.LevelLabel`).
pub const DETECTED_LEVEL: &str = "detected_level";

pub const TRACE: &str = "trace";
pub const DEBUG: &str = "debug";
pub const INFO: &str = "info";
pub const WARN: &str = "warn";
pub const ERROR: &str = "error";
pub const CRITICAL: &str = "critical";
pub const FATAL: &str = "fatal";
pub const UNKNOWN: &str = "unknown";

/// Labels, metadata fields and line fields that hold a level: Loki's
/// `DefaultAllowedLevelFields` (its `log_level_fields` default), in its order.
pub const LEVEL_FIELDS: &[&str] = &[
    "level",
    "LEVEL",
    "Level",
    "log.level",
    "severity",
    "SEVERITY",
    "Severity",
    "SeverityText",
    "lvl",
    "LVL",
    "Lvl",
    "severity_text",
    "Severity_Text",
    "SEVERITY_TEXT",
];

/// How deep into a JSON line a level field is looked for: Loki's
/// `log_level_from_json_max_depth` default (the top level and the objects in it).
pub const JSON_LEVEL_DEPTH_MAX: usize = 2;

/// The metadata name of an OTLP record's severity number (Loki's `OTLPSeverityNumber`).
pub const OTLP_SEVERITY_NUMBER: &str = "severity_number";

/// The words looked for in a line, in Loki's order (`levelPatterns`): at one position the
/// first that matches wins.
const LINE_WORDS: &[(&str, &str)] = &[
    ("trace", TRACE),
    ("debug", DEBUG),
    ("fatal", FATAL),
    ("critical", CRITICAL),
    ("error", ERROR),
    ("err", ERROR),
    ("warning", WARN),
    ("warn", WARN),
    ("info", INFO),
];

/// Loki's `normalizeLogLevel`: a known spelling as its level, any other value unchanged.
pub fn normalize(value: &str) -> &str {
    known_level(value.as_bytes()).unwrap_or(value)
}

/// The level a value spells, if it is one of the spellings Loki knows.
fn known_level(v: &[u8]) -> Option<&'static str> {
    let is = |word: &str| v.eq_ignore_ascii_case(word.as_bytes());
    if is("trace") || is("trc") {
        Some(TRACE)
    } else if is("debug") || is("dbg") {
        Some(DEBUG)
    } else if is("info") || is("inf") || is("information") {
        Some(INFO)
    } else if is("warn") || is("wrn") || is("warning") {
        Some(WARN)
    } else if is("error") || is("err") {
        Some(ERROR)
    } else if is("critical") {
        Some(CRITICAL)
    } else if is("fatal") {
        Some(FATAL)
    } else {
        None
    }
}

/// The level of an OTLP severity number, by the ranges of the log data model: 1-4 trace,
/// 5-8 debug, 9-12 info, 13-16 warn, 17-20 error, 21-24 fatal; 0 (unspecified) and anything
/// above 24 unknown. A value that is not a number is `info`, as in Loki.
pub fn from_severity_number(text: &str) -> &'static str {
    let Ok(n) = text.parse::<i64>() else {
        return INFO;
    };
    match n {
        0 => UNKNOWN,
        i64::MIN..=4 => TRACE,
        5..=8 => DEBUG,
        9..=12 => INFO,
        13..=16 => WARN,
        17..=20 => ERROR,
        21..=24 => FATAL,
        _ => UNKNOWN,
    }
}

/// The level of a line with no level label or metadata (step 5 of the module doc).
pub fn from_line(line: &str) -> &'static str {
    let bytes = line.as_bytes();
    let field = if line_fields::is_json(line) {
        line_fields::json_string_field(bytes, LEVEL_FIELDS, JSON_LEVEL_DEPTH_MAX)
    } else if memchr::memchr(b'=', bytes).is_some() {
        line_fields::logfmt_field(bytes, LEVEL_FIELDS)
    } else {
        return level_word(bytes);
    };
    field
        .and_then(known_level)
        .unwrap_or_else(|| level_word(bytes))
}

/// Bytes that may follow a level word (Loki's `isRightWordBoundary`).
fn right_boundary(b: u8) -> bool {
    matches!(
        b,
        b' ' | b'\t'
            | b'\n'
            | b'['
            | b']'
            | b'('
            | b')'
            | b'{'
            | b'}'
            | b':'
            | b','
            | b'!'
            | b'"'
            | b'\''
            | b'='
            | b'|'
    )
}

/// Loki's `detectLevelFromLogLine`: the level of the earliest word of [`LINE_WORDS`] that
/// stands alone (word boundaries on both sides), matched case-insensitively; `unknown` if
/// none. One pass over the line, [`SCAN_CHUNK`] bytes at a time: a chunk's positions that may
/// start a word (at 0 or after a left boundary, on one of the words' first letters) are found
/// as a bit mask by vector compares ([`chunk_masks`]), and only those are tried against the
/// words that start with the letter there. Every line of a push goes through here, and one
/// table lookup and branch per byte took a sixth of the ingest path's time.
pub(crate) fn level_word(line: &[u8]) -> &'static str {
    // Whether the byte before the chunk is a left boundary; the start of the line is one.
    let mut boundary_before = true;
    let mut base = 0;
    let mut tail = [0u8; SCAN_CHUNK];
    while base < line.len() {
        let chunk: &[u8; SCAN_CHUNK] = match line[base..].first_chunk() {
            Some(c) => c,
            None => {
                // The last, shorter chunk, padded with zeros: neither letters nor boundaries.
                let rest = &line[base..];
                tail[..rest.len()].copy_from_slice(rest);
                &tail
            }
        };
        let (starts_word, boundaries) = chunk_masks(chunk);
        let mut candidates = starts_word & ((boundaries << 1) | u32::from(boundary_before));
        while candidates != 0 {
            let at = base + candidates.trailing_zeros() as usize;
            candidates &= candidates - 1;
            if let Some(level) = word_at(line, at) {
                return level;
            }
        }
        boundary_before = boundaries >> (SCAN_CHUNK - 1) != 0;
        base += SCAN_CHUNK;
    }
    UNKNOWN
}

/// Bytes [`level_word`] looks at per step: one bit each in a `u32` mask.
const SCAN_CHUNK: usize = 32;

/// For each byte of a chunk (bit i for byte i): whether it is the first letter of a word
/// of [`LINE_WORDS`] in either case, and whether it is a left boundary. On x86-64 with
/// SSE2 (every x86-64 CPU), 16 bytes per comparison; elsewhere byte by byte.
#[inline]
fn chunk_masks(chunk: &[u8; SCAN_CHUNK]) -> (u32, u32) {
    #[cfg(target_arch = "x86_64")]
    {
        let (lo, hi) = chunk.split_at(16);
        let (f_lo, b_lo) = sse2::masks16(lo.try_into().expect("16 bytes"));
        let (f_hi, b_hi) = sse2::masks16(hi.try_into().expect("16 bytes"));
        (
            u32::from(f_lo) | u32::from(f_hi) << 16,
            u32::from(b_lo) | u32::from(b_hi) << 16,
        )
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let mut first = 0u32;
        let mut boundary = 0u32;
        for (i, &b) in chunk.iter().enumerate() {
            first |= u32::from(FIRST_LETTERS.contains(&(b | 0x20))) << i;
            boundary |= u32::from(LEFT_BOUNDARIES.contains(&b)) << i;
        }
        (first, boundary)
    }
}

/// The first letters of [`LINE_WORDS`], lower case. `byte | 0x20` lower-cases a letter, and
/// no byte that is not one of these letters in either case becomes one of them.
const FIRST_LETTERS: [u8; 7] = [b't', b'd', b'f', b'c', b'e', b'w', b'i'];

/// Bytes that may stand before a level word (Loki's `isLeftWordBoundary`): a colon may not,
/// so that `misc:error` is not a level.
const LEFT_BOUNDARIES: [u8; 10] = [
    b' ', b'\t', b'\n', b'[', b'(', b'{', b'"', b'\'', b'=', b'|',
];

#[cfg(target_arch = "x86_64")]
mod sse2 {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
        _mm_setzero_si128,
    };

    /// [`super::chunk_masks`] for 16 bytes.
    #[inline]
    pub(super) fn masks16(bytes: &[u8; 16]) -> (u16, u16) {
        // SAFETY: SSE2 is part of x86-64: every CPU this code runs on has it.
        unsafe { masks16_sse2(bytes) }
    }

    #[target_feature(enable = "sse2")]
    fn masks16_sse2(bytes: &[u8; 16]) -> (u16, u16) {
        // SAFETY: `bytes` is 16 readable bytes, and `_mm_loadu_si128` reads 16 bytes with
        // no alignment requirement.
        let v = unsafe { _mm_loadu_si128(bytes.as_ptr().cast::<__m128i>()) };
        let lower = _mm_or_si128(v, _mm_set1_epi8(0x20));
        let mut first = _mm_setzero_si128();
        for c in super::FIRST_LETTERS {
            first = _mm_or_si128(first, _mm_cmpeq_epi8(lower, _mm_set1_epi8(c as i8)));
        }
        let mut boundary = _mm_setzero_si128();
        for c in super::LEFT_BOUNDARIES {
            boundary = _mm_or_si128(boundary, _mm_cmpeq_epi8(v, _mm_set1_epi8(c as i8)));
        }
        (
            _mm_movemask_epi8(first) as u16,
            _mm_movemask_epi8(boundary) as u16,
        )
    }
}

/// The level of the first word of [`LINE_WORDS`] (in its order) that starts at `at` and is
/// followed by a right boundary or the end of the line. Only the words with the letter at
/// `at` first are tried: most candidates are other words ("the", "for", "in").
#[inline]
fn word_at(line: &[u8], at: usize) -> Option<&'static str> {
    let words: &[(&str, &'static str)] = match line[at] | 0x20 {
        b't' => &LINE_WORDS[0..1],
        b'd' => &LINE_WORDS[1..2],
        b'f' => &LINE_WORDS[2..3],
        b'c' => &LINE_WORDS[3..4],
        b'e' => &LINE_WORDS[4..6],
        b'w' => &LINE_WORDS[6..8],
        b'i' => &LINE_WORDS[8..9],
        _ => &[],
    };
    words.iter().find_map(|(word, level)| {
        let end = at + word.len();
        (end <= line.len()
            && line[at..end].eq_ignore_ascii_case(word.as_bytes())
            && (end == line.len() || right_boundary(line[end])))
        .then_some(*level)
    })
}

/// The level a stream's labels give its entries (step 2 of the module doc), looked up by
/// `label`: the same for every entry of the stream, so a caller with many entries of one
/// stream asks once, not per entry.
pub fn from_labels<'a>(label: impl Fn(&str) -> Option<&'a str>) -> Option<&'a str> {
    LEVEL_FIELDS.iter().find_map(|f| label(f)).map(normalize)
}

/// Adds `detected_level` to an entry's structured metadata `md` (or normalizes the one it
/// carries), from the level its stream's labels give (`stream_level`, see [`from_labels`]),
/// the metadata and the line, by the rules of the module doc. The value is a static word or
/// borrowed from the label or metadata it was read from, so this allocates nothing unless
/// `md` outgrows its inline capacity.
pub fn add_detected_level<'a, A: smallvec::Array<Item = (&'a str, &'a str)>>(
    md: &mut smallvec::SmallVec<A>,
    stream_level: Option<&'a str>,
    line: &'a str,
) {
    if let Some(slot) = md.iter_mut().find(|(k, _)| *k == DETECTED_LEVEL) {
        slot.1 = normalize(slot.1);
        return;
    }
    let level = if let Some(v) = stream_level {
        v
    } else if md.is_empty() {
        from_line(line)
    } else if let Some(v) = LEVEL_FIELDS
        .iter()
        .find_map(|f| md.iter().find(|(k, _)| k == f).map(|(_, v)| *v))
    {
        normalize(v)
    } else if let Some((_, n)) = md.iter().find(|(k, _)| *k == OTLP_SEVERITY_NUMBER) {
        from_severity_number(n)
    } else {
        from_line(line)
    };
    md.push((DETECTED_LEVEL, level));
}

#[cfg(test)]
mod tests {
    use super::*;
    use smallvec::SmallVec;

    fn detect(labels: &[(&str, &str)], md: &[(&str, &str)], line: &str) -> String {
        let mut md: SmallVec<[(&str, &str); 8]> = md.iter().copied().collect();
        let stream_level =
            from_labels(|name| labels.iter().find(|(n, _)| *n == name).map(|(_, v)| *v));
        add_detected_level(&mut md, stream_level, line);
        let found: Vec<&str> = md
            .iter()
            .filter(|(k, _)| *k == DETECTED_LEVEL)
            .map(|(_, v)| *v)
            .collect();
        assert_eq!(found.len(), 1, "exactly one detected_level in {md:?}");
        found[0].to_string()
    }

    fn line(l: &str) -> String {
        detect(&[], &[], l)
    }

    /// Loki's `detectLevelFromLogLine` as it reads: each word searched in turn, the
    /// earliest standing alone winning, the list's order deciding at one position.
    fn level_word_reference(line: &[u8]) -> &'static str {
        let lower = line.to_ascii_lowercase();
        let mut best: Option<(usize, &'static str)> = None;
        for (word, level) in LINE_WORDS {
            let w = word.as_bytes();
            let found = (0..lower.len()).find(|&at| {
                lower[at..].starts_with(w)
                    && (at == 0 || LEFT_BOUNDARIES.contains(&lower[at - 1]))
                    && (at + w.len() == lower.len() || right_boundary(lower[at + w.len()]))
            });
            if let Some(at) = found
                && best.is_none_or(|(b, _)| at < b)
            {
                best = Some((at, level));
            }
        }
        best.map_or(UNKNOWN, |(_, level)| level)
    }

    proptest::proptest! {
        #[test]
        fn the_level_word_scan_finds_what_lokis_search_finds(
            parts in proptest::collection::vec(
                proptest::sample::select(vec![
                    "error", "ERR", "Warn", "warning", "info", "INFOrmation", "debug",
                    "trace", "fatal", "critical", "misc:", "x", "tee", " ", "[", "]", "=",
                    ":", ",", "|", "\"", "(", "{", "é", "e", "i",
                ]),
                0..96,
            )
        ) {
            let line = parts.concat();
            proptest::prop_assert_eq!(
                level_word(line.as_bytes()),
                level_word_reference(line.as_bytes()),
                "{:?}",
                line
            );
        }
    }

    /// `word_at` tries only the words of the letter at hand: each word must be among them.
    #[test]
    fn every_level_word_is_found_by_its_first_letter() {
        for (word, level) in LINE_WORDS {
            for w in [word.to_string(), word.to_ascii_uppercase()] {
                assert_eq!(word_at(w.as_bytes(), 0), Some(*level), "{w}");
                assert_eq!(level_word(format!("x [{w}] y").as_bytes()), *level, "{w}");
            }
        }
    }

    #[test]
    fn lines_longer_than_a_scan_chunk_find_words_across_chunk_edges() {
        for pad in 0..2 * SCAN_CHUNK {
            let line = format!("{} warn", "x".repeat(pad));
            assert_eq!(level_word(line.as_bytes()), WARN, "{pad}");
            // The word straddling an edge still needs its left boundary.
            let glued = format!("{}warn", "x".repeat(pad + 1));
            assert_eq!(level_word(glued.as_bytes()), UNKNOWN, "{pad}");
        }
    }

    #[test]
    fn normalizes_the_spellings_loki_knows() {
        for (v, want) in [
            ("ERROR", ERROR),
            ("err", ERROR),
            ("WaRn", WARN),
            ("warning", WARN),
            ("wrn", WARN),
            ("InFo", INFO),
            ("information", INFO),
            ("inf", INFO),
            ("Debug", DEBUG),
            ("dbg", DEBUG),
            ("tRaCe", TRACE),
            ("trc", TRACE),
            ("CRITICAL", CRITICAL),
            ("FaTaL", FATAL),
            ("informational", "informational"),
            ("notice", "notice"),
            ("emergency", "emergency"),
        ] {
            assert_eq!(normalize(v), want, "{v}");
        }
    }

    #[test]
    fn a_label_comes_first_then_metadata_then_the_line() {
        assert_eq!(detect(&[("level", "WARNING")], &[], "level=error"), WARN);
        assert_eq!(detect(&[("lvl", "dbg")], &[("level", "error")], "x"), DEBUG);
        // The list's order decides between labels, not the labels' own.
        assert_eq!(
            detect(&[("severity", "error"), ("level", "info")], &[], ""),
            INFO
        );
        assert_eq!(
            detect(&[("app", "a")], &[("severity_text", "WARN")], ""),
            WARN
        );
        assert_eq!(detect(&[("level", "notice")], &[], "ERROR"), "notice");
        // A level that is not a known spelling is kept as it is.
        assert_eq!(detect(&[], &[("SeverityText", "Verbose")], ""), "Verbose");
        assert_eq!(detect(&[], &[], "[ERROR] disk full"), ERROR);
        assert_eq!(detect(&[], &[], "all fine"), UNKNOWN);
    }

    #[test]
    fn an_existing_detected_level_is_normalized_not_doubled() {
        assert_eq!(
            detect(&[("level", "info")], &[("detected_level", "ERR")], ""),
            ERROR
        );
        assert_eq!(detect(&[], &[("detected_level", "odd")], "WARN"), "odd");
    }

    #[test]
    fn otlp_severity_numbers_map_by_range() {
        for (n, want) in [
            ("0", UNKNOWN),
            ("1", TRACE),
            ("4", TRACE),
            ("5", DEBUG),
            ("9", INFO),
            ("12", INFO),
            ("13", WARN),
            ("17", ERROR),
            ("20", ERROR),
            ("21", FATAL),
            ("24", FATAL),
            ("25", UNKNOWN),
            ("x", INFO),
        ] {
            assert_eq!(detect(&[], &[("severity_number", n)], "ERROR"), want, "{n}");
        }
        // A severity text wins over the number.
        assert_eq!(
            detect(
                &[],
                &[("severity_number", "9"), ("severity_text", "ERROR")],
                ""
            ),
            ERROR
        );
    }

    #[test]
    fn json_lines_use_their_level_field() {
        assert_eq!(line(r#"{"level":"error","msg":"x"}"#), ERROR);
        assert_eq!(line(r#" {"msg":"ok","severity":"WARNING"} "#), WARN);
        // One level of nesting is searched, two are not.
        assert_eq!(line(r#"{"log":{"level":"debug"},"msg":"x"}"#), DEBUG);
        assert_eq!(line(r#"{"a":{"b":{"level":"dbg"}}}"#), UNKNOWN);
        // The first field of the list in document order, even if later ones would match.
        assert_eq!(line(r#"{"lvl":"info","level":"error"}"#), INFO);
        // Not a string: no field, so the words of the line decide.
        assert_eq!(line(r#"{"level":3,"msg":"error occurred"}"#), ERROR);
        assert_eq!(line(r#"{"level":"verbose","msg":"warn here"}"#), WARN);
        assert_eq!(line(r#"{"message": "error occurred"}"#), ERROR);
        assert_eq!(line(r#"{"errorCode": 123}"#), UNKNOWN);
        // Fields inside arrays and strings are not fields (and `wrn` is no word of a line).
        assert_eq!(line(r#"{"a":[{"level":"wrn"}],"b":"x"}"#), UNKNOWN);
        assert_eq!(line(r#"{"a":"\"level\":\"wrn\""}"#), UNKNOWN);
        assert_eq!(line(r#"{"b":"x","level":"wrn"}"#), WARN);
    }

    #[test]
    fn logfmt_lines_use_their_level_field() {
        assert_eq!(
            line(
                r#"foo=bar msg="message with keyword error but it should not get picked up" level=warn"#
            ),
            WARN
        );
        assert_eq!(line(r#"Foo=bar MSG="x" Severity=critical"#), CRITICAL);
        assert_eq!(line(r#"foo=bar level=inFO"#), INFO);
        // A field that is not a level word: the words of the line decide.
        assert_eq!(line(r#"foo=bar msg="keyword" level=NA"#), UNKNOWN);
        assert_eq!(line(r#"level=NA msg="error here""#), ERROR);
        // `level` (first of the list) wins over an earlier `lvl`.
        assert_eq!(line("lvl=debug level=error"), ERROR);
        assert_eq!(
            line(r#"event='x' level='info' ts='2022-10-13T16:29:27Z'"#),
            INFO
        );
        assert_eq!(line("error=something"), ERROR);
        assert_eq!(line("errorCode=123"), UNKNOWN);
        assert_eq!(line(r#"msg="say \"hi\"" level=debug"#), DEBUG);
    }

    #[test]
    fn level_words_stand_alone() {
        for (word, want) in LINE_WORDS {
            for l in [
                format!("this is a {word} message"),
                format!("this is a {} message", word.to_uppercase()),
                format!("{word} occurred"),
                format!("an {word}"),
                format!("{word}: something happened"),
                format!("{word}, something happened"),
                format!("{word}! something happened"),
                format!("({word}) something happened"),
                format!("[{word}] connection failed"),
                format!("2024-01-01T10:00:00Z {word}: connection failed"),
            ] {
                assert_eq!(line(&l), *want, "{l}");
            }
        }
        for l in [
            "this is a terror attack",
            "there were multiple errors",
            "error123 occurred",
            "123error occurred",
            "myError occurred",
            "debugging the issue",
            "information is available",
            "warnings issued",
            "criticality assessment",
            "tracer bullet",
            "",
            "error_code is 500",
            "trace_id is abc123",
            "misc:error happened",
            "[errors] occurred",
        ] {
            assert_eq!(line(l), UNKNOWN, "{l}");
        }
        // The earliest word wins, whatever the list's order.
        assert_eq!(line("INFO retrying after error"), INFO);
        assert_eq!(line("error then info"), ERROR);
        assert_eq!(line("caf\u{e9} WARN x"), WARN);
    }

    #[test]
    fn detection_does_not_allocate_the_metadata() {
        let mut md: SmallVec<[(&str, &str); 8]> = SmallVec::new();
        md.push(("trace_id", "abc"));
        add_detected_level(&mut md, None, "GET / 200 error");
        assert!(!md.spilled());
        assert_eq!(
            md.as_slice(),
            &[("trace_id", "abc"), ("detected_level", "error")]
        );
    }
}

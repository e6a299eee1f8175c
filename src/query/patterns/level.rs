//! The level of a log line, as Loki's distributor detects it for `detected_level`
//! (pkg/distributor/field_detection.go) and as the pattern ingester files patterns by it
//! (pkg/pattern/stream.go).
//!
//! Which question it answers: "under which level does this line's pattern appear?" A JSON
//! line's `level`-like field (two objects deep at most), else a logfmt line's, else the
//! first level word standing alone in the line (`error`, `WARN`, `[info]`...); `unknown`
//! when there is none. A level given by the caller (a `detected_level` structured metadata
//! value) is normalised the same way.

use crate::query::pipeline::json_scan::{self, JsonError, ValueType};
use crate::query::pipeline::logfmt_decoder::Decoder;

/// The levels patterns are filed under (Loki's `constants.LogLevels`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Level {
    Unknown,
    Debug,
    Info,
    Warn,
    Error,
    Fatal,
    Critical,
    Trace,
}

// Field names that hold a line's level (Loki's `DefaultAllowedLevelFields`), as ingest's
// `detected_level` reads them; JSON keys must match exactly, logfmt keys in any case, the
// first name listed winning.
use crate::ingest::discovery::level::LEVEL_FIELDS;

/// How deep a JSON line is searched for a level field (Loki's default
/// `log_level_from_json_max_depth`: the top object and the objects in it).
const JSON_LEVEL_DEPTH: usize = 2;

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Unknown => "unknown",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
            Level::Fatal => "fatal",
            Level::Critical => "critical",
            Level::Trace => "trace",
        }
    }

    /// A level value given as is (a `detected_level`, a `level` label): Loki's
    /// `normalizeLogLevel`, then anything it does not know is `unknown`, as the pattern
    /// ingester files it.
    pub fn from_value(value: &str) -> Level {
        normalize(value.as_bytes()).unwrap_or(Level::Unknown)
    }
}

/// Loki's `normalizeLogLevel` on the names and abbreviations it knows.
fn normalize(value: &[u8]) -> Option<Level> {
    let is = |name: &str| value.eq_ignore_ascii_case(name.as_bytes());
    Some(if is("trace") || is("trc") {
        Level::Trace
    } else if is("debug") || is("dbg") {
        Level::Debug
    } else if is("info") || is("inf") || is("information") {
        Level::Info
    } else if is("warn") || is("wrn") || is("warning") {
        Level::Warn
    } else if is("error") || is("err") {
        Level::Error
    } else if is("critical") {
        Level::Critical
    } else if is("fatal") {
        Level::Fatal
    } else if is("unknown") {
        Level::Unknown
    } else {
        return None;
    })
}

/// The level Loki's distributor gives a line that carries none in its labels or metadata
/// (`extractLogLevelFromLogLine`).
pub fn detect_level(line: &str) -> Level {
    let value = if is_json(line) {
        json_level(line.as_bytes())
    } else if line.contains('=') {
        logfmt_level(line.as_bytes())
    } else {
        return level_from_words(line);
    };
    value
        .and_then(|v| normalize(&v).filter(|l| *l != Level::Unknown))
        .unwrap_or_else(|| level_from_words(line))
}

/// Loki's `isJSON`: `{` and `}` first and last but for white space. The backward scan reads
/// bytes as Latin-1 characters as Go's does, so a trailing 0x85 or 0xA0 byte counts as space.
fn is_json(line: &str) -> bool {
    let first = line.chars().find(|c| !is_go_space(*c));
    let last = line
        .bytes()
        .rev()
        .map(char::from)
        .find(|c| !is_go_space(*c));
    first == Some('{') && last == Some('}')
}

/// Go's `unicode.IsSpace`.
fn is_go_space(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n' | '\u{0B}' | '\u{0C}' | '\r' | ' ' | '\u{85}' | '\u{A0}'
    ) || { !c.is_ascii() && c.is_whitespace() }
}

/// The first string value of a level field, depth first, in the top object or one below
/// (Loki's `getLevelUsingJSONParser`).
fn json_level(data: &[u8]) -> Option<Vec<u8>> {
    enum Stop {
        Found(Vec<u8>),
        Json,
    }
    impl From<JsonError> for Stop {
        fn from(_: JsonError) -> Stop {
            Stop::Json
        }
    }
    fn walk(data: &[u8], depth: usize) -> Result<(), Stop> {
        if depth >= JSON_LEVEL_DEPTH {
            return Ok(());
        }
        json_scan::object_each(data, |key, value| match value.ty {
            ValueType::String if LEVEL_FIELDS.iter().any(|f| f.as_bytes() == key) => {
                Err(Stop::Found(value.bytes.to_vec()))
            }
            ValueType::Object => walk(value.bytes, depth + 1),
            _ => Ok(()),
        })
    }
    match walk(data, 0) {
        Err(Stop::Found(value)) => Some(value),
        _ => None,
    }
}

/// The value of the preferred level key of a logfmt line, keys compared in any case
/// (Loki's `getValueUsingLogfmtParser`); reading stops at the first syntax error.
fn logfmt_level(line: &[u8]) -> Option<Vec<u8>> {
    let mut dec = Decoder::new(line);
    let mut best: Option<(usize, Vec<u8>)> = None;
    while !dec.eol() && dec.scan_keyval() {
        let key = dec.key();
        let Some(rank) = LEVEL_FIELDS
            .iter()
            .position(|f| key.eq_ignore_ascii_case(f.as_bytes()))
        else {
            continue;
        };
        if best.as_ref().is_none_or(|(b, _)| rank < *b) {
            best = Some((rank, dec.value().to_vec()));
            if rank == 0 {
                break;
            }
        }
    }
    best.map(|(_, v)| v)
}

/// Loki's `detectLevelFromLogLine`, as ingest applies it for `detected_level` (one scan,
/// no lowercased copy of the line).
fn level_from_words(line: &str) -> Level {
    use crate::ingest::discovery::level as words;
    match words::level_word(line.as_bytes()) {
        words::TRACE => Level::Trace,
        words::DEBUG => Level::Debug,
        words::INFO => Level::Info,
        words::WARN => Level::Warn,
        words::ERROR => Level::Error,
        words::CRITICAL => Level::Critical,
        words::FATAL => Level::Fatal,
        _ => Level::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_use_their_level_field() {
        assert_eq!(detect_level(r#"{"level":"WARN","msg":"x"}"#), Level::Warn);
        assert_eq!(detect_level(r#" {"a":{"severity":"err"}} "#), Level::Error);
        // Two objects deep is too deep; the words of the line decide then.
        assert_eq!(
            detect_level(r#"{"a":{"b":{"level":"x"}},"m":"info here"}"#),
            Level::Info
        );
        assert_eq!(detect_level(r#"{"level":"notice"}"#), Level::Unknown);
    }

    #[test]
    fn logfmt_lines_use_their_level_key() {
        assert_eq!(detect_level("ts=1 LVL=dbg level=error"), Level::Error);
        assert_eq!(detect_level("ts=1 lvl=dbg"), Level::Debug);
        assert_eq!(detect_level("ts=1 msg=hello"), Level::Unknown);
        assert_eq!(detect_level("ts=1 msg=\"fatal: oops\""), Level::Fatal);
    }

    #[test]
    fn plain_lines_use_the_first_level_word() {
        assert_eq!(
            detect_level("2024 [ERROR] disk full, warn later"),
            Level::Error
        );
        assert_eq!(detect_level("INFO starting"), Level::Info);
        assert_eq!(detect_level("misc:error information"), Level::Unknown);
        assert_eq!(detect_level("warning: low memory"), Level::Warn);
        assert_eq!(
            detect_level("081109 203615 148 INFO dfs.DataNode"),
            Level::Info
        );
        assert_eq!(detect_level("errors happen"), Level::Unknown);
    }

    #[test]
    fn given_values_are_normalised() {
        assert_eq!(Level::from_value("WARNING"), Level::Warn);
        assert_eq!(Level::from_value("inf"), Level::Info);
        assert_eq!(Level::from_value("notice"), Level::Unknown);
        assert_eq!(Level::from_value("Critical").as_str(), "critical");
    }
}

//! The one range of timestamps that every ingest path accepts: Loki push in JSON and in
//! protobuf, JSON lines, and syslog (where a message carries its own time).
//!
//! Which question it answers: "is this a time a log line can have?" Push and JSON-lines
//! requests with an entry outside the range are refused whole with a 400 that names the range
//! (checked with the other entry rules in [`crate::ingest::push::validate::entry`]); a syslog
//! message has no way to be refused, so its time is replaced with the receive time and
//! counted, as a time too far in the future already is. Times inside the range but ahead of
//! the server's clock by more than the configured skew are clamped later, by the listeners.

use std::fmt;

/// The earliest accepted time: the Unix epoch. No sender of these protocols wrote a line
/// before it, and negative times come from bugs (an `i64::MIN` sentinel, a signed overflow)
/// that would then break the arithmetic on time ranges (a query's start minus its range, the
/// start of a partition).
pub const TIMESTAMP_NS_MIN: i64 = 0;

/// The latest accepted time: 9e18 ns, 2255-03-14T16:00:00Z. Nanoseconds in an i64 end in
/// April 2262; stopping seven years short leaves room for the additions done on stored times
/// (partition ends, query steps and ranges) without overflow.
pub const TIMESTAMP_NS_MAX: i64 = 9_000_000_000_000_000_000;

/// The range as text, for messages.
pub const TIMESTAMP_RANGE_TEXT: &str = "1970-01-01T00:00:00Z to 2255-03-14T16:00:00Z";

/// Whether `ns` (nanoseconds since the epoch) is a time any ingest path accepts.
pub fn in_range(ns: i64) -> bool {
    (TIMESTAMP_NS_MIN..=TIMESTAMP_NS_MAX).contains(&ns)
}

/// Checks a timestamp against the range.
pub fn check(ns: i64) -> Result<i64, OutOfRange> {
    if in_range(ns) {
        Ok(ns)
    } else {
        Err(OutOfRange { ns })
    }
}

/// A timestamp outside [`TIMESTAMP_NS_MIN`]..=[`TIMESTAMP_NS_MAX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutOfRange {
    pub ns: i64,
}

impl fmt::Display for OutOfRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "timestamp {} ns is outside the accepted range {TIMESTAMP_RANGE_TEXT}",
            self.ns
        )
    }
}

impl std::error::Error for OutOfRange {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds() {
        assert!(in_range(0));
        assert!(in_range(1_700_000_000_000_000_000));
        assert!(in_range(TIMESTAMP_NS_MAX));
        for bad in [-1, i64::MIN, TIMESTAMP_NS_MAX + 1, i64::MAX] {
            assert_eq!(check(bad), Err(OutOfRange { ns: bad }));
        }
        assert!(
            OutOfRange { ns: -1 }
                .to_string()
                .contains("1970-01-01T00:00:00Z to 2255-03-14T16:00:00Z")
        );
        // The text says what the constants say.
        let max_secs = TIMESTAMP_NS_MAX / 1_000_000_000;
        let t = time::OffsetDateTime::from_unix_timestamp(max_secs).unwrap();
        let text = t
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap();
        assert!(TIMESTAMP_RANGE_TEXT.ends_with(&text), "{text}");
    }
}

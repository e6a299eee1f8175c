//! Loki's HTTP query parameters: timestamps, durations, `start`/`end`/`since`, `limit`,
//! `direction`, `step`, `interval`, and form decoding of the query string.
//!
//! The rules and error texts follow Loki's `pkg/loghttp` (`params.go`, `query.go`):
//! - a timestamp is RFC 3339 (with optional fraction), or a number: with a `.` it is float
//!   seconds (rounded to the millisecond) unless its integer part exceeds 1e10, in which case
//!   it is nanoseconds; an integer up to 1e10 is seconds, above is nanoseconds;
//! - `end` defaults to now, `start` to `min(end, now) - since`, `since` to one hour (for the
//!   label, series and stats endpoints too: Loki's code uses the same bounds everywhere);
//! - `limit` defaults to 100 and must be positive; `direction` is `forward` or `backward`
//!   (any case), default backward;
//! - `step` and `interval` are float seconds or Prometheus durations; `step` defaults to
//!   `max(floor(range_s / 250), 1)` seconds, must be positive and give at most 11,000 points.

use std::fmt;
use std::time::Duration;

use crate::logql::duration::parse_prometheus_duration;

const NS_PER_S: i64 = 1_000_000_000;

/// The default `limit` of log queries, as in Loki.
pub const DEFAULT_LIMIT: u32 = 100;

/// The default look-back when `start` is absent, as in Loki.
pub const DEFAULT_SINCE_NS: i64 = 3600 * NS_PER_S;

/// The most points a range query may return per series, as in Loki: enough for 60 s
/// resolution over a week or 1 h resolution over a year.
pub const POINTS_PER_SERIES_MAX: i64 = 11_000;

/// Loki's default step divides the range into this many steps.
const DEFAULT_STEP_DIVISOR: i64 = 250;

/// Integer timestamps up to this value are seconds, larger ones nanoseconds (Loki's rule).
const SECONDS_THRESHOLD: f64 = 1e10;

/// A parameter that cannot be used; the message says which and why (HTTP 400).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamError(String);

impl ParamError {
    fn new(msg: impl Into<String>) -> ParamError {
        ParamError(msg.into())
    }

    pub fn message(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ParamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ParamError {}

/// The order in which log entries are returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Oldest first.
    Forward,
    /// Newest first (Loki's default).
    Backward,
}

/// `/loki/api/v1/query_range`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RangeQuery {
    pub query: String,
    pub start_ns: i64,
    pub end_ns: i64,
    pub limit: u32,
    pub direction: Direction,
    /// The step as given; `None` means the default, see [`RangeQuery::step_or_default`].
    pub step: Option<Duration>,
    /// Metric queries: only one point per interval (as given; `None` means every point).
    pub interval: Option<Duration>,
}

impl RangeQuery {
    /// The step the query runs with: the given one, or Loki's default for the range.
    pub fn step_or_default(&self) -> Duration {
        self.step
            .unwrap_or_else(|| default_step(self.start_ns, self.end_ns))
    }
}

/// `/loki/api/v1/query`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstantQuery {
    pub query: String,
    pub time_ns: i64,
    pub limit: u32,
    pub direction: Direction,
}

fn default_step(start_ns: i64, end_ns: i64) -> Duration {
    let range_s = (end_ns.saturating_sub(start_ns) / NS_PER_S).max(0);
    Duration::from_secs((range_s / DEFAULT_STEP_DIVISOR).max(1) as u64)
}

/// The first value of a parameter, as Go's `Form.Get`; an empty value counts as absent, as
/// in Loki.
fn get<'a>(params: &'a [(String, String)], key: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

/// Parses a timestamp (see the module doc) into nanoseconds since the Unix epoch.
pub fn parse_time(s: &str) -> Result<i64, ParamError> {
    let invalid = || {
        ParamError::new(format!(
            "invalid timestamp {s:?}: expected RFC 3339, Unix seconds or Unix nanoseconds"
        ))
    };
    let out_of_range = || ParamError::new(format!("timestamp {s:?} is out of range"));
    if let Ok(t) = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339) {
        return i64::try_from(t.unix_timestamp_nanos()).map_err(|_| out_of_range());
    }
    if s.contains('.') {
        let t: f64 = s.parse().map_err(|_| invalid())?;
        if !t.is_finite() {
            return Err(ParamError::new("floating point timestamp is NaN or Inf"));
        }
        let (whole, frac) = (t.trunc(), t.fract());
        if whole.abs() >= i64::MAX as f64 {
            return Err(ParamError::new(
                "floating point timestamp exceeds integer range",
            ));
        }
        if whole <= SECONDS_THRESHOLD {
            let ms = (frac * 1000.0).round() as i64;
            return (whole as i64)
                .checked_mul(NS_PER_S)
                .and_then(|ns| ns.checked_add(ms * 1_000_000))
                .ok_or_else(out_of_range);
        }
        return Ok(whole as i64);
    }
    let v: i64 = s.parse().map_err(|_| invalid())?;
    if v as f64 <= SECONDS_THRESHOLD {
        v.checked_mul(NS_PER_S).ok_or_else(out_of_range)
    } else {
        Ok(v)
    }
}

/// Nanoseconds from float seconds (`30`, `0.5`) or a Prometheus duration (`1h30m`), as Loki
/// reads `step` and `interval`. May be negative or zero; callers check.
fn parse_seconds_or_duration(s: &str) -> Result<i64, ParamError> {
    // Go's ParseFloat takes "inf" and "nan"; they are not durations.
    if let Ok(secs) = s.parse::<f64>()
        && s.bytes().any(|b| b.is_ascii_digit())
    {
        let ns = secs * NS_PER_S as f64;
        if !ns.is_finite() || ns >= i64::MAX as f64 || ns <= i64::MIN as f64 {
            return Err(ParamError::new(format!(
                "cannot parse {s:?} to a valid duration. It overflows int64"
            )));
        }
        return Ok(ns as i64);
    }
    parse_prometheus_duration(s)
        .map_err(|_| ParamError::new(format!("cannot parse {s:?} to a valid duration")))
}

/// A duration given as float seconds (`30`, `0.5`) or as a Prometheus duration (`1h30m`,
/// `5m`, `1d`, `1w`, `1y`, `100ms`), as Loki accepts for `step`. Negative values are refused.
pub fn parse_duration(s: &str) -> Result<Duration, ParamError> {
    let ns = parse_seconds_or_duration(s)?;
    u64::try_from(ns)
        .map(Duration::from_nanos)
        .map_err(|_| ParamError::new(format!("duration {s:?} must not be negative")))
}

fn parse_limit(params: &[(String, String)]) -> Result<u32, ParamError> {
    let Some(s) = get(params, "limit") else {
        return Ok(DEFAULT_LIMIT);
    };
    let v: i64 = s.parse().map_err(|_| {
        ParamError::new(format!("invalid limit {s:?}: expected a positive integer"))
    })?;
    if v <= 0 {
        return Err(ParamError::new("limit must be a positive value"));
    }
    u32::try_from(v)
        .map_err(|_| ParamError::new(format!("limit {v} is too large (at most {})", u32::MAX)))
}

fn parse_direction(params: &[(String, String)]) -> Result<Direction, ParamError> {
    match get(params, "direction") {
        None => Ok(Direction::Backward),
        Some(s) if s.eq_ignore_ascii_case("forward") => Ok(Direction::Forward),
        Some(s) if s.eq_ignore_ascii_case("backward") => Ok(Direction::Backward),
        Some(s) => Err(ParamError::new(format!("invalid direction '{s}'"))),
    }
}

/// `start`, `end` and `since` into a `(start_ns, end_ns)` pair, with Loki's defaults.
fn bounds(params: &[(String, String)], now_ns: i64) -> Result<(i64, i64), ParamError> {
    let since = match get(params, "since") {
        None => DEFAULT_SINCE_NS,
        Some(s) => parse_prometheus_duration(s)
            .map_err(|e| ParamError::new(format!("could not parse 'since' parameter: {e}")))?,
    };
    let end = match get(params, "end") {
        None => now_ns,
        Some(s) => parse_time(s)
            .map_err(|e| ParamError::new(format!("could not parse 'end' parameter: {e}")))?,
    };
    // A future end does not move the default start into the future.
    let end_or_now = end.min(now_ns);
    let start = match get(params, "start") {
        None => end_or_now.saturating_sub(since),
        Some(s) => parse_time(s)
            .map_err(|e| ParamError::new(format!("could not parse 'start' parameter: {e}")))?,
    };
    Ok((start, end))
}

/// Parses the parameters of `/loki/api/v1/query_range`.
pub fn parse_range_query(
    params: &[(String, String)],
    now_ns: i64,
) -> Result<RangeQuery, ParamError> {
    let query = get(params, "query").unwrap_or_default().to_string();
    let (start_ns, end_ns) = bounds(params, now_ns)?;
    if end_ns < start_ns {
        return Err(ParamError::new(
            "end timestamp must not be before or equal to start time",
        ));
    }
    let limit = parse_limit(params)?;
    let direction = parse_direction(params)?;
    let step = match get(params, "step") {
        None => None,
        Some(s) => {
            let ns = parse_seconds_or_duration(s)?;
            if ns <= 0 {
                return Err(ParamError::new(
                    "zero or negative query resolution step widths are not accepted. Try a positive integer",
                ));
            }
            Some(Duration::from_nanos(ns as u64))
        }
    };
    let step_ns = step.map_or_else(
        || default_step(start_ns, end_ns).as_nanos() as i64,
        |s| s.as_nanos() as i64,
    );
    if (end_ns - start_ns) / step_ns > POINTS_PER_SERIES_MAX {
        return Err(ParamError::new(
            "exceeded maximum resolution of 11,000 points per time series. Try increasing the value of the step parameter",
        ));
    }
    let interval = match get(params, "interval") {
        None => None,
        Some(s) => {
            let ns = parse_seconds_or_duration(s)?;
            if ns < 0 {
                return Err(ParamError::new("interval must be >= 0"));
            }
            Some(Duration::from_nanos(ns as u64))
        }
    };
    Ok(RangeQuery {
        query,
        start_ns,
        end_ns,
        limit,
        direction,
        step,
        interval,
    })
}

/// Parses the parameters of `/loki/api/v1/query`.
pub fn parse_instant_query(
    params: &[(String, String)],
    now_ns: i64,
) -> Result<InstantQuery, ParamError> {
    let query = get(params, "query").unwrap_or_default().to_string();
    let limit = parse_limit(params)?;
    let time_ns = match get(params, "time") {
        None => now_ns,
        Some(s) => parse_time(s)?,
    };
    let direction = parse_direction(params)?;
    Ok(InstantQuery {
        query,
        time_ns,
        limit,
        direction,
    })
}

/// `start`/`end`/`since` of `/labels`, `/label/<name>/values`, `/series` and `/index/stats`.
/// Loki does not check the order there; an end before the start is refused here because it
/// can only be a mistake.
pub fn parse_label_range(
    params: &[(String, String)],
    now_ns: i64,
) -> Result<(i64, i64), ParamError> {
    let (start, end) = bounds(params, now_ns)?;
    if end < start {
        return Err(ParamError::new(
            "end timestamp must not be before or equal to start time",
        ));
    }
    Ok((start, end))
}

/// Decodes `application/x-www-form-urlencoded` text (a URL query string or a POST body):
/// `&`-separated `key=value` pairs, `+` as space, `%XX` escapes. Repeated keys are kept in
/// order (`match[]` of `/series`). Malformed escapes are kept literally, as browsers and Go's
/// `url.ParseQuery` tolerate them; bytes that decode to invalid UTF-8 are refused (replacing
/// them would run a different query than the one sent).
pub fn parse_query_string(qs: &str) -> Result<Vec<(String, String)>, ParamError> {
    qs.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let key = form_decode(k).map_err(|_| {
                ParamError::new("a parameter name is not valid UTF-8 once percent-decoded")
            })?;
            let value = form_decode(v).map_err(|_| {
                ParamError(format!(
                    "parameter '{key}' is not valid UTF-8 once percent-decoded"
                ))
            })?;
            Ok((key, value))
        })
        .collect()
}

fn form_decode(s: &str) -> Result<String, std::string::FromUtf8Error> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = |c: u8| (c as char).to_digit(16);
                match (
                    b.get(i + 1).and_then(|&c| hex(c)),
                    b.get(i + 2).and_then(|&c| hex(c)),
                ) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 3;
                        continue;
                    }
                    _ => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000 * NS_PER_S;

    fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn timestamps() {
        assert_eq!(parse_time("1700000000"), Ok(1_700_000_000 * NS_PER_S));
        assert_eq!(
            parse_time("1700000000000000000"),
            Ok(1_700_000_000_000_000_000)
        );
        assert!(
            parse_time("10000000000").is_err(),
            "1e10 seconds is beyond year 2262"
        );
        assert_eq!(parse_time("10000000001"), Ok(10_000_000_001));
        assert_eq!(parse_time("1700000000.5"), Ok(1_700_000_000_500_000_000));
        assert_eq!(
            parse_time("1700000000.1234"),
            Ok(1_700_000_000_123_000_000),
            "ms rounding"
        );
        assert_eq!(
            parse_time("1700000000000000000.5"),
            Ok(1_700_000_000_000_000_000)
        );
        assert_eq!(
            parse_time("2023-11-14T22:13:20Z"),
            Ok(1_700_000_000 * NS_PER_S)
        );
        assert_eq!(
            parse_time("2023-11-14T23:13:20.000000001+01:00"),
            Ok(1_700_000_000 * NS_PER_S + 1)
        );
        assert_eq!(parse_time("0"), Ok(0));
        assert_eq!(parse_time("-5"), Ok(-5 * NS_PER_S));
        for bad in [
            "abc",
            "1e9",
            "nan.",
            "inf",
            "2023-13-01T00:00:00Z",
            "9999999999.9e300",
        ] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
        assert!(
            parse_time("9300000000").is_err(),
            "seconds beyond year 2262"
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("1w"), Ok(Duration::from_secs(604_800)));
        assert_eq!(parse_duration("1y"), Ok(Duration::from_secs(365 * 86_400)));
        assert_eq!(parse_duration("100ms"), Ok(Duration::from_millis(100)));
        assert!(parse_duration("-1").is_err());
        assert!(parse_duration("1e300").is_err());
        assert!(parse_duration("inf").is_err());
        assert!(parse_duration("5 minutes").is_err());
    }

    #[test]
    fn range_query_defaults() {
        let q = parse_range_query(&p(&[("query", "{a=\"b\"}")]), NOW).unwrap();
        assert_eq!(q.query, "{a=\"b\"}");
        assert_eq!((q.start_ns, q.end_ns), (NOW - DEFAULT_SINCE_NS, NOW));
        assert_eq!(q.limit, 100);
        assert_eq!(q.direction, Direction::Backward);
        assert_eq!(q.step, None);
        assert_eq!(q.step_or_default(), Duration::from_secs(14));
        assert_eq!(q.interval, None);
    }

    #[test]
    fn range_query_params() {
        let q = parse_range_query(
            &p(&[
                ("query", "x"),
                ("since", "5m"),
                ("limit", "7"),
                ("direction", "FORWARD"),
                ("step", "15s"),
                ("interval", "2"),
            ]),
            NOW,
        )
        .unwrap();
        assert_eq!((q.start_ns, q.end_ns), (NOW - 300 * NS_PER_S, NOW));
        assert_eq!((q.limit, q.direction), (7, Direction::Forward));
        assert_eq!(q.step, Some(Duration::from_secs(15)));
        assert_eq!(q.interval, Some(Duration::from_secs(2)));
        // A future end does not push the default start forward.
        let future = (NOW / NS_PER_S + 7200).to_string();
        let q = parse_range_query(&p(&[("end", &future)]), NOW).unwrap();
        assert_eq!(q.start_ns, NOW - DEFAULT_SINCE_NS);
        // An explicit start wins over since.
        let q = parse_range_query(&p(&[("start", "1000"), ("since", "5m")]), NOW).unwrap();
        assert_eq!(q.start_ns, 1000 * NS_PER_S);
    }

    #[test]
    fn range_query_errors() {
        let err = |pairs: &[(&str, &str)]| parse_range_query(&p(pairs), NOW).unwrap_err().0;
        assert_eq!(
            err(&[("start", "2000"), ("end", "1000")]),
            "end timestamp must not be before or equal to start time"
        );
        assert_eq!(err(&[("direction", "up")]), "invalid direction 'up'");
        assert_eq!(err(&[("limit", "0")]), "limit must be a positive value");
        assert_eq!(err(&[("limit", "-3")]), "limit must be a positive value");
        assert!(err(&[("limit", "x")]).contains("invalid limit"));
        assert!(err(&[("step", "0")]).starts_with("zero or negative"));
        assert!(err(&[("step", "-1s")]).contains("cannot parse"));
        assert!(err(&[("step", "1ms")]).starts_with("exceeded maximum resolution"));
        assert_eq!(err(&[("interval", "-1")]), "interval must be >= 0");
        assert!(err(&[("since", "1.5h")]).starts_with("could not parse 'since' parameter"));
        assert!(err(&[("end", "yesterday")]).starts_with("could not parse 'end' parameter"));
        assert!(err(&[("start", "yesterday")]).starts_with("could not parse 'start' parameter"));
    }

    #[test]
    fn instant_and_label_ranges() {
        let q = parse_instant_query(&p(&[("query", "q"), ("time", "1000")]), NOW).unwrap();
        assert_eq!(
            (q.time_ns, q.limit, q.direction),
            (1000 * NS_PER_S, 100, Direction::Backward)
        );
        let q = parse_instant_query(&p(&[]), NOW).unwrap();
        assert_eq!(q.time_ns, NOW);
        assert!(parse_instant_query(&p(&[("limit", "0")]), NOW).is_err());
        assert_eq!(
            parse_label_range(&p(&[]), NOW),
            Ok((NOW - DEFAULT_SINCE_NS, NOW))
        );
        assert_eq!(
            parse_label_range(&p(&[("since", "6h")]), NOW),
            Ok((NOW - 6 * 3600 * NS_PER_S, NOW))
        );
        assert!(parse_label_range(&p(&[("start", "2000"), ("end", "1000")]), NOW).is_err());
    }

    #[test]
    fn query_strings() {
        assert_eq!(
            parse_query_string(
                "query=%7Bapp%3D%22x%22%7D+%7C%3D+%22a+b%22&limit=10&&match[]=a&match%5B%5D=b&flag"
            )
            .unwrap(),
            p(&[
                ("query", "{app=\"x\"} |= \"a b\""),
                ("limit", "10"),
                ("match[]", "a"),
                ("match[]", "b"),
                ("flag", ""),
            ])
        );
        assert_eq!(parse_query_string("a=%zz%4").unwrap(), p(&[("a", "%zz%4")]));
        let invalid = parse_query_string("query=%7Ba%3D%22%ff%22%7D").unwrap_err();
        assert!(invalid.message().contains("'query'"), "{invalid:?}");
        assert!(parse_query_string("").unwrap().is_empty());
    }

    proptest::proptest! {
        #[test]
        fn never_panic(s in "\\PC{0,40}") {
            let _ = parse_time(&s);
            let _ = parse_duration(&s);
            let params = parse_query_string(&s).unwrap_or_default();
            let _ = parse_range_query(&params, NOW);
            let _ = parse_instant_query(&params, NOW);
        }

        #[test]
        fn form_roundtrip(v in "\\PC{0,40}") {
            let encoded: String = v.bytes().map(|b| format!("%{b:02X}")).collect();
            let decoded = parse_query_string(&format!("k={encoded}"));
            proptest::prop_assert_eq!(decoded, Ok(vec![("k".to_string(), v)]));
        }
    }
}

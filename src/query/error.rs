//! Why a query failed, typed from the shard to the HTTP response, with Loki's statuses.
//!
//! Every step of the read path (parameters, parsing, planning, shard scans, merging,
//! evaluation) returns a [`QueryError`]; the HTTP layer only renders it with
//! [`QueryError::status`]. A limit names itself, so the user knows which one to raise.

use std::fmt;
use std::time::Duration;

use crate::logql::ParseError;

#[derive(Clone, Debug, PartialEq)]
pub enum QueryError {
    /// The query text is not valid LogQL (400).
    Parse(ParseError),
    /// A parameter or the query's shape is wrong: a bad `step`, `end` before `start`, a log
    /// query where a metric one is needed (400).
    BadRequest(String),
    /// A per-query limit was exceeded; `limit` is its configuration name, as Loki names it
    /// (`max_entries_limit_per_query`, `max_query_series`, `max_query_length`,
    /// `max_query_bytes_read`, `query_memory_bytes_max`) (400).
    Limit {
        limit: &'static str,
        message: String,
    },
    /// A line's pipeline failed where Loki fails the query: a sample with `__error__` left in
    /// a metric query (400).
    Pipeline(String),
    /// Too many queries are queued on this core (429, as Loki's
    /// `max_outstanding_requests_per_tenant`).
    TooManyQueued { queued_max: usize },
    /// The client went away before the answer (499).
    Canceled,
    /// The server is starting or stopping (503).
    NotReady(String),
    /// `query_timeout` passed (504).
    Timeout(Duration),
    /// A shard could not read data the query needs (a corrupt part, a failing disk): the
    /// query fails rather than answer with less than there is (500).
    Storage(String),
    /// A bug: a mesh answer of the wrong kind, an invariant broken (500).
    Internal(String),
}

impl QueryError {
    /// The HTTP status Loki answers with for this kind of failure.
    pub fn status(&self) -> u16 {
        match self {
            QueryError::Parse(_)
            | QueryError::BadRequest(_)
            | QueryError::Limit { .. }
            | QueryError::Pipeline(_) => 400,
            QueryError::TooManyQueued { .. } => 429,
            QueryError::Canceled => 499,
            QueryError::NotReady(_) => 503,
            QueryError::Timeout(_) => 504,
            QueryError::Storage(_) | QueryError::Internal(_) => 500,
        }
    }

    pub fn bad_request(msg: impl Into<String>) -> QueryError {
        QueryError::BadRequest(msg.into())
    }

    /// More than `max` series, with Loki's `NewSeriesLimitError` text.
    pub fn series_limit(max: usize) -> QueryError {
        QueryError::Limit {
            limit: "max_query_series",
            message: format!(
                "maximum number of series ({max}) reached for a single query; consider reducing query cardinality by adding more specific stream selectors, reducing the time range, or aggregating results with functions like sum(), count() or topk()"
            ),
        }
    }
}

impl From<ParseError> for QueryError {
    fn from(e: ParseError) -> QueryError {
        QueryError::Parse(e)
    }
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueryError::Parse(e) => e.fmt(f),
            QueryError::BadRequest(m) | QueryError::Pipeline(m) => f.write_str(m),
            QueryError::Limit { message, .. } => f.write_str(message),
            QueryError::TooManyQueued { queued_max } => write!(
                f,
                "too many outstanding requests: more than {queued_max} queries are waiting on this core"
            ),
            QueryError::Canceled => f.write_str("context canceled"),
            QueryError::NotReady(m) => f.write_str(m),
            QueryError::Timeout(d) => write!(
                f,
                "query timed out after {}s (query_timeout)",
                d.as_secs_f64()
            ),
            QueryError::Storage(m) | QueryError::Internal(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for QueryError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_loki() {
        assert_eq!(QueryError::bad_request("x").status(), 400);
        assert_eq!(
            QueryError::Limit {
                limit: "max_query_series",
                message: "m".into()
            }
            .status(),
            400
        );
        assert_eq!(QueryError::TooManyQueued { queued_max: 1 }.status(), 429);
        assert_eq!(QueryError::Canceled.status(), 499);
        assert_eq!(QueryError::Timeout(Duration::from_secs(1)).status(), 504);
        assert_eq!(QueryError::Storage("x".into()).status(), 500);
    }
}

//! The limits each tenant's requests are held to, with Loki's names, and the limits file
//! that overrides them per tenant (`limits_file`): the ingest limits (`ingestion_rate_mb`,
//! `ingestion_burst_size_mb`, `max_global_streams_per_user`, `per_stream_rate_limit` and its
//! burst, `creation_grace_period`, the label limits, `reject_old_samples` and its max age,
//! `max_line_size_truncate`) and the query limits ([`QueryLimits`]: of these the limits file
//! overrides `max_entries_limit_per_query`, `max_query_series`, `max_query_length` and
//! `query_timeout`; the others hold for every tenant).
//!
//! Which question it answers: "what may each tenant do unless the limits file says
//! otherwise, and is it possible?" The keys are fields of [`ServeArgs`] like every other key
//! (one flag set and one TOML schema, whose unknown keys are refused); their defaults and
//! bounds are in [`super::limits`]. Here they are validated into the [`TenantLimits`] and
//! [`QueryLimits`] that [`crate::tenants::limits`] applies each tenant's overrides to, each
//! error naming its key.

use std::time::Duration;

use super::limits::*;
use super::{
    ConfigError, ServeArgs, bad, duration, duration_within, fraction, parse_duration, size,
};
use crate::tenants::IngestionRate;
use crate::tenants::limits::{LimitsFile, TenantLimits};

/// The bounds every query runs within (see the flags of the same names).
#[derive(Clone, Debug, PartialEq)]
pub struct QueryLimits {
    pub max_entries_limit_per_query: u32,
    pub max_query_series: usize,
    /// `None`: no limit.
    pub max_query_length: Option<Duration>,
    pub query_timeout: Duration,
    /// 0: no limit.
    pub max_query_bytes_read: u64,
    pub query_memory_bytes_max: u64,
    pub max_concurrent: usize,
    pub max_outstanding_requests_per_tenant: usize,
    /// See `runtime::pacer`: queries' least share of a core busy with ingest, and the idle
    /// share they leave ingest.
    pub cpu_share_min: f64,
    pub cpu_headroom: f64,
}

impl Default for QueryLimits {
    fn default() -> Self {
        QueryLimits {
            max_entries_limit_per_query: QUERY_ENTRIES_MAX,
            max_query_series: QUERY_SERIES_MAX,
            max_query_length: Some(QUERY_LENGTH_MAX_DEFAULT),
            query_timeout: Duration::from_secs(QUERY_TIMEOUT_SECONDS),
            max_query_bytes_read: 0,
            query_memory_bytes_max: QUERY_MEMORY_BYTES_MAX_DEFAULT,
            max_concurrent: QUERY_CONCURRENCY_DEFAULT,
            max_outstanding_requests_per_tenant: QUERY_QUEUED_MAX_DEFAULT,
            cpu_share_min: QUERY_CPU_SHARE_MIN_DEFAULT,
            cpu_headroom: QUERY_CPU_HEADROOM_DEFAULT,
        }
    }
}

impl ServeArgs {
    /// The limits of every tenant the limits file does not override.
    pub(super) fn tenant_limits(&self) -> Result<TenantLimits, ConfigError> {
        const MIB: f64 = 1024.0 * 1024.0;
        let rate = fraction(
            "ingestion_rate_mb",
            self.ingestion_rate_mb,
            INGESTION_RATE_MB_DEFAULT,
            0.0..=1e6,
        )?;
        let burst = fraction(
            "ingestion_burst_size_mb",
            self.ingestion_burst_size_mb,
            INGESTION_BURST_SIZE_MB_DEFAULT,
            0.0..=1e6,
        )?;
        if rate > 0.0 && burst <= 0.0 {
            return Err(bad(
                "ingestion_burst_size_mb",
                "must be above 0 when ingestion_rate_mb is set",
            ));
        }
        let count = |key: &str, v: Option<usize>, default: usize| match v {
            None => Ok(default),
            Some(0) => Err(bad(key, "must be at least 1")),
            Some(n) => Ok(n),
        };
        let reject_old_samples_max_age = duration(
            "reject_old_samples_max_age",
            self.reject_old_samples_max_age.as_deref(),
            REJECT_OLD_SAMPLES_MAX_AGE_DEFAULT,
            Duration::from_secs(1),
            Duration::from_secs(100 * 365 * 86400),
        )?
        .expect("a default is given");
        let max_line_size = size(
            "line_bytes_max",
            self.line_bytes_max,
            LINE_BYTES_MAX_DEFAULT,
            1..=LINE_BYTES_LIMIT,
        )?;
        let per_stream_rate = self
            .per_stream_rate_limit
            .unwrap_or(PER_STREAM_RATE_LIMIT_DEFAULT);
        let per_stream_burst = self
            .per_stream_rate_limit_burst
            .unwrap_or(PER_STREAM_RATE_LIMIT_BURST_DEFAULT);
        if per_stream_rate > 0 && per_stream_burst == 0 {
            return Err(bad(
                "per_stream_rate_limit_burst",
                "must be above 0 when per_stream_rate_limit is set",
            ));
        }
        let creation_grace_period = match self.creation_grace_period.as_deref().map(str::trim) {
            None => CREATION_GRACE_PERIOD_DEFAULT,
            // Loki's meaning of 0: no entry may be ahead of the server's clock.
            Some("0") => Duration::ZERO,
            Some(text) => duration_within(
                "creation_grace_period",
                parse_duration("creation_grace_period", text)?,
                Duration::ZERO..=FUTURE_SKEW_MAX_LIMIT,
            )?,
        };
        let mut discovery = crate::ingest::discovery::Discovery::loki_defaults();
        if let Some(list) = &self.discover_service_name {
            // `--discover-service-name ''` gives one empty name: the empty list, off.
            let list: Vec<String> = list.iter().filter(|n| !n.is_empty()).cloned().collect();
            crate::ingest::discovery::Discovery::check_service_name_list(&list)
                .map_err(|e| bad("discover_service_name", e))?;
            discovery.service_name_from = list.into();
        }
        if self.discover_log_levels == Some(false) {
            discovery.log_levels = crate::ingest::discovery::LevelDiscovery::Off;
        }
        Ok(TenantLimits {
            discovery,
            per_stream_rate: IngestionRate {
                bytes_per_second: per_stream_rate as f64,
                burst_bytes: per_stream_burst as f64,
            },
            creation_grace_period,
            max_global_streams_per_user: self
                .max_global_streams_per_user
                .unwrap_or(MAX_GLOBAL_STREAMS_PER_USER_DEFAULT),
            reject_old_samples: self.reject_old_samples,
            reject_old_samples_max_age,
            max_line_size,
            max_line_size_truncate: self.max_line_size_truncate,
            ingestion_rate: IngestionRate {
                bytes_per_second: rate * MIB,
                burst_bytes: burst * MIB,
            },
            max_label_names_per_series: count(
                "max_label_names_per_series",
                self.max_label_names_per_series,
                MAX_LABEL_NAMES_PER_SERIES_DEFAULT,
            )?,
            max_label_name_length: count(
                "max_label_name_length",
                self.max_label_name_length,
                MAX_LABEL_NAME_LENGTH_DEFAULT,
            )?,
            max_label_value_length: count(
                "max_label_value_length",
                self.max_label_value_length,
                MAX_LABEL_VALUE_LENGTH_DEFAULT,
            )?,
        })
    }

    /// The query limits of every tenant the limits file does not override.
    pub(super) fn query_limits(&self) -> Result<QueryLimits, ConfigError> {
        let d = QueryLimits::default();
        let count = |key: &str, v: Option<usize>, default: usize| match v {
            None => Ok(default),
            Some(0) => Err(bad(key, "must be at least 1")),
            Some(n) if n > COUNT_LIMIT_MAX => Err(bad(
                key,
                format!("must be at most {COUNT_LIMIT_MAX}, got {n}"),
            )),
            Some(n) => Ok(n),
        };
        let max_query_length = duration(
            "max_query_length",
            self.max_query_length.as_deref(),
            Duration::ZERO,
            Duration::from_secs(1),
            Duration::from_secs(100 * 365 * 86400),
        )?;
        Ok(QueryLimits {
            max_entries_limit_per_query: count(
                "max_entries_limit_per_query",
                self.max_entries_limit_per_query.map(|n| n as usize),
                d.max_entries_limit_per_query as usize,
            )? as u32,
            max_query_series: count(
                "max_query_series",
                self.max_query_series,
                d.max_query_series,
            )?,
            // Absent: Loki's default; `0`: off.
            max_query_length: match self.max_query_length {
                None => d.max_query_length,
                Some(_) => max_query_length,
            },
            query_timeout: duration(
                "query_timeout",
                self.query_timeout.as_deref(),
                d.query_timeout,
                Duration::from_millis(1),
                Duration::from_secs(86400),
            )?
            .expect("a default is given"),
            max_query_bytes_read: self.max_query_bytes_read.unwrap_or(0),
            query_memory_bytes_max: size(
                "query_memory_bytes_max",
                self.query_memory_bytes_max,
                d.query_memory_bytes_max,
                BUDGET_BYTES_MIN..=BUDGET_BYTES_LIMIT,
            )?,
            max_concurrent: count("max_concurrent", self.max_concurrent, d.max_concurrent)?,
            max_outstanding_requests_per_tenant: count(
                "max_outstanding_requests_per_tenant",
                self.max_outstanding_requests_per_tenant,
                d.max_outstanding_requests_per_tenant,
            )?,
            cpu_share_min: fraction(
                "query_cpu_share_min",
                self.query_cpu_share_min,
                d.cpu_share_min,
                0.01..=1.0,
            )?,
            cpu_headroom: fraction(
                "query_cpu_headroom",
                self.query_cpu_headroom,
                d.cpu_headroom,
                0.0..=0.9,
            )?,
        })
    }

    /// Reads the limits file once at start, so that a file that does not parse stops the
    /// server with the key's name instead of leaving every tenant at the defaults (while it
    /// runs, a bad edit keeps the previous limits).
    pub(super) fn check_limits_file(&self) -> Result<(), ConfigError> {
        if let Some(path) = &self.limits_file {
            LimitsFile::read(path).map_err(|e| bad("limits_file", e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_left_out_take_the_named_defaults() {
        let l = ServeArgs::default().tenant_limits().unwrap();
        let mib = 1024.0 * 1024.0;
        assert_eq!(
            l.ingestion_rate.bytes_per_second,
            INGESTION_RATE_MB_DEFAULT * mib
        );
        assert_eq!(
            l.ingestion_rate.burst_bytes,
            INGESTION_BURST_SIZE_MB_DEFAULT * mib
        );
        assert_eq!(
            l.per_stream_rate.bytes_per_second,
            PER_STREAM_RATE_LIMIT_DEFAULT as f64
        );
        assert_eq!(
            l.max_global_streams_per_user,
            MAX_GLOBAL_STREAMS_PER_USER_DEFAULT
        );
        assert_eq!(l.creation_grace_period, CREATION_GRACE_PERIOD_DEFAULT);
        assert_eq!(l.max_line_size, LINE_BYTES_MAX_DEFAULT);
        let l = ServeArgs {
            ingestion_rate_mb: Some(4.0),
            per_stream_rate_limit: Some(3 << 20),
            creation_grace_period: Some("0".into()),
            ..Default::default()
        }
        .tenant_limits()
        .unwrap();
        assert_eq!(l.ingestion_rate.bytes_per_second, 4.0 * mib);
        assert_eq!(l.per_stream_rate.bytes_per_second, (3 << 20) as f64);
        assert_eq!(
            l.creation_grace_period,
            Duration::ZERO,
            "Loki's 0: none ahead"
        );
    }

    #[test]
    fn a_rate_without_a_burst_and_a_zero_count_name_their_key() {
        let e = ServeArgs {
            ingestion_rate_mb: Some(4.0),
            ingestion_burst_size_mb: Some(0.0),
            ..Default::default()
        }
        .tenant_limits()
        .unwrap_err();
        assert!(e.0.contains("--ingestion-burst-size-mb"), "{e}");
        let e = ServeArgs {
            per_stream_rate_limit: Some(1 << 20),
            per_stream_rate_limit_burst: Some(0),
            ..Default::default()
        }
        .tenant_limits()
        .unwrap_err();
        assert!(e.0.contains("--per-stream-rate-limit-burst"), "{e}");
        let e = ServeArgs {
            max_label_names_per_series: Some(0),
            ..Default::default()
        }
        .tenant_limits()
        .unwrap_err();
        assert!(e.0.contains("--max-label-names-per-series"), "{e}");
        let e = ServeArgs {
            limits_file: Some("/nonexistent/limits.yaml".into()),
            ..Default::default()
        }
        .resolve(1)
        .unwrap_err();
        assert!(e.0.contains("--limits-file"), "{e}");
    }
}

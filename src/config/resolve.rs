//! Resolving the keys: the file read and laid under the flags ([`ServeArgs::load`]), then
//! every value checked against its bounds and defaulted ([`ServeArgs::resolve`]) into a
//! [`Config`], each error naming its key.

use super::*;

/// Keys kept under their older names, each a number in the unit its name carries, beside a
/// newer key that takes units (`wal_commit_interval = "1ms"`); a file or command line gives
/// one form or the other.
pub const OLDER_FORMS: [&str; 2] = ["wal_commit_interval_us", "future_skew_seconds_max"];

/// A key that has an older form in another unit: whichever form the flags give wins over
/// both forms in the file, so that the two never mix across sources.
fn either_form<A, B>(
    flags: (Option<A>, Option<B>),
    file: (Option<A>, Option<B>),
) -> (Option<A>, Option<B>) {
    if flags.0.is_some() || flags.1.is_some() {
        flags
    } else {
        file
    }
}

impl ServeArgs {
    /// Reads the TOML file named by `--config`, if any, and lays the flags over it.
    pub fn load(self) -> Result<ServeArgs, ConfigError> {
        let Some(path) = self.config.clone() else {
            return Ok(self);
        };
        let file = read_file(&path)?;
        Ok(self.over(file))
    }

    /// `self` (flags) wins over `file` key by key.
    pub(super) fn over(self, file: ServeArgs) -> ServeArgs {
        let (wal_commit_interval, wal_commit_interval_us) = either_form(
            (self.wal_commit_interval, self.wal_commit_interval_us),
            (file.wal_commit_interval, file.wal_commit_interval_us),
        );
        let (future_skew_max, future_skew_seconds_max) = either_form(
            (self.future_skew_max, self.future_skew_seconds_max),
            (file.future_skew_max, file.future_skew_seconds_max),
        );
        ServeArgs {
            config: self.config,
            data_dir: self.data_dir.or(file.data_dir),
            allow_volatile_data_dir: self.allow_volatile_data_dir || file.allow_volatile_data_dir,
            http_addr: self.http_addr.or(file.http_addr),
            syslog_tcp_addr: self.syslog_tcp_addr.or(file.syslog_tcp_addr),
            syslog_udp_addr: self.syslog_udp_addr.or(file.syslog_udp_addr),
            syslog_tls_addr: self.syslog_tls_addr.or(file.syslog_tls_addr),
            relp_addr: self.relp_addr.or(file.relp_addr),
            relp_tls_addr: self.relp_tls_addr.or(file.relp_tls_addr),
            tls_cert_file: self.tls_cert_file.or(file.tls_cert_file),
            tls_key_file: self.tls_key_file.or(file.tls_key_file),
            tls_client_ca_file: self.tls_client_ca_file.or(file.tls_client_ca_file),
            cores: self.cores.or(file.cores),
            wal_repair: self.wal_repair || file.wal_repair,
            syslog_tenant: self.syslog_tenant.or(file.syslog_tenant),
            syslog: if self.syslog.is_empty() {
                file.syslog
            } else {
                self.syslog
            },
            auth_enabled: self.auth_enabled || file.auth_enabled,
            multi_tenant_queries: self.multi_tenant_queries || file.multi_tenant_queries,
            enable_simulate: self.enable_simulate || file.enable_simulate,
            ingestion_rate_mb: self.ingestion_rate_mb.or(file.ingestion_rate_mb),
            ingestion_burst_size_mb: self
                .ingestion_burst_size_mb
                .or(file.ingestion_burst_size_mb),
            max_global_streams_per_user: self
                .max_global_streams_per_user
                .or(file.max_global_streams_per_user),
            per_stream_rate_limit: self.per_stream_rate_limit.or(file.per_stream_rate_limit),
            per_stream_rate_limit_burst: self
                .per_stream_rate_limit_burst
                .or(file.per_stream_rate_limit_burst),
            creation_grace_period: self.creation_grace_period.or(file.creation_grace_period),
            max_label_names_per_series: self
                .max_label_names_per_series
                .or(file.max_label_names_per_series),
            max_label_name_length: self.max_label_name_length.or(file.max_label_name_length),
            max_label_value_length: self.max_label_value_length.or(file.max_label_value_length),
            discover_service_name: self.discover_service_name.or(file.discover_service_name),
            discover_log_levels: self.discover_log_levels.or(file.discover_log_levels),
            limits_file: self.limits_file.or(file.limits_file),
            reject_old_samples: self.reject_old_samples || file.reject_old_samples,
            reject_old_samples_max_age: self
                .reject_old_samples_max_age
                .or(file.reject_old_samples_max_age),
            max_line_size_truncate: self.max_line_size_truncate || file.max_line_size_truncate,
            syslog_frame_bytes_max: self.syslog_frame_bytes_max.or(file.syslog_frame_bytes_max),
            line_bytes_max: self.line_bytes_max.or(file.line_bytes_max),
            push_body_bytes_max: self.push_body_bytes_max.or(file.push_body_bytes_max),
            wal_commit_interval,
            wal_commit_interval_us,
            wal_segment_bytes_max: self.wal_segment_bytes_max.or(file.wal_segment_bytes_max),
            syslog_tcp_unacked_bytes_max: self
                .syslog_tcp_unacked_bytes_max
                .or(file.syslog_tcp_unacked_bytes_max),
            syslog_udp_recv_buffer_bytes: self
                .syslog_udp_recv_buffer_bytes
                .or(file.syslog_udp_recv_buffer_bytes),
            future_skew_max,
            future_skew_seconds_max,
            seal_bytes: self.seal_bytes.or(file.seal_bytes),
            seal_age: self.seal_age.or(file.seal_age),
            stream_idle_period: self.stream_idle_period.or(file.stream_idle_period),
            partition: self.partition.or(file.partition),
            zstd_level: self.zstd_level.or(file.zstd_level),
            seal_zstd_level: self.seal_zstd_level.or(file.seal_zstd_level),
            retention: self.retention.or(file.retention),
            retention_max_bytes: self.retention_max_bytes.or(file.retention_max_bytes),
            retention_interval: self.retention_interval.or(file.retention_interval),
            delete_request_cancel_period: self
                .delete_request_cancel_period
                .or(file.delete_request_cancel_period),
            compaction_bytes_per_second: self
                .compaction_bytes_per_second
                .or(file.compaction_bytes_per_second),
            compaction_cold_after: self.compaction_cold_after.or(file.compaction_cold_after),
            heads_bytes_max: self.heads_bytes_max.or(file.heads_bytes_max),
            memory_max: self.memory_max.or(file.memory_max),
            part_cache_bytes_max: self.part_cache_bytes_max.or(file.part_cache_bytes_max),
            compaction_input_bytes_max: self
                .compaction_input_bytes_max
                .or(file.compaction_input_bytes_max),
            duplicate_fingerprints_bytes_max: self
                .duplicate_fingerprints_bytes_max
                .or(file.duplicate_fingerprints_bytes_max),
            wal_bytes_max: self.wal_bytes_max.or(file.wal_bytes_max),
            core_stall_max: self.core_stall_max.or(file.core_stall_max),
            connections_max: self.connections_max.or(file.connections_max),
            request_bodies_bytes_max: self
                .request_bodies_bytes_max
                .or(file.request_bodies_bytes_max),
            max_entries_limit_per_query: self
                .max_entries_limit_per_query
                .or(file.max_entries_limit_per_query),
            max_query_series: self.max_query_series.or(file.max_query_series),
            max_query_length: self.max_query_length.or(file.max_query_length),
            query_timeout: self.query_timeout.or(file.query_timeout),
            max_query_bytes_read: self.max_query_bytes_read.or(file.max_query_bytes_read),
            query_memory_bytes_max: self.query_memory_bytes_max.or(file.query_memory_bytes_max),
            max_concurrent: self.max_concurrent.or(file.max_concurrent),
            max_outstanding_requests_per_tenant: self
                .max_outstanding_requests_per_tenant
                .or(file.max_outstanding_requests_per_tenant),
            query_cpu_share_min: self.query_cpu_share_min.or(file.query_cpu_share_min),
            query_cpu_headroom: self.query_cpu_headroom.or(file.query_cpu_headroom),
            rules_dir: self.rules_dir.or(file.rules_dir),
            ruler_evaluation_interval: self
                .ruler_evaluation_interval
                .or(file.ruler_evaluation_interval),
            ruler_resend_delay: self.ruler_resend_delay.or(file.ruler_resend_delay),
            ruler_external_url: self.ruler_external_url.or(file.ruler_external_url),
            alert: if self.alert.is_empty() {
                file.alert
            } else {
                self.alert
            },
            alertmanager_url: either_list(self.alertmanager_url, file.alertmanager_url),
            remote_write_url: either_list(self.remote_write_url, file.remote_write_url),
            webhook_url: either_list(self.webhook_url, file.webhook_url),
            notify_timeout: self.notify_timeout.or(file.notify_timeout),
        }
    }

    /// Applies defaults and validates every key. `online_cpus` is the number of CPUs the
    /// process may run on.
    pub fn resolve(self, online_cpus: usize) -> Result<Config, ConfigError> {
        let query = self.query_limits()?;
        let tenant_limits = self.tenant_limits()?;
        let outbox = self.outbox()?;
        self.check_limits_file()?;
        let cores = self.cores.unwrap_or(online_cpus);
        if cores == 0 {
            return Err(bad("cores", "must be at least 1, got 0"));
        }
        if cores > online_cpus {
            return Err(bad(
                "cores",
                format!("{cores} cores asked for but only {online_cpus} CPUs are online"),
            ));
        }
        if cores > SHARDS_MAX {
            return Err(bad("cores", format!("at most {SHARDS_MAX}, got {cores}")));
        }
        let http_addr = addr(
            "http_addr",
            self.http_addr.as_deref().unwrap_or(HTTP_ADDR_DEFAULT),
        )?
        .ok_or_else(|| bad("http_addr", "must not be empty"))?;
        let syslog_tcp_addr = addr(
            "syslog_tcp_addr",
            self.syslog_tcp_addr
                .as_deref()
                .unwrap_or(SYSLOG_ADDR_DEFAULT),
        )?;
        let syslog_udp_addr = addr(
            "syslog_udp_addr",
            self.syslog_udp_addr
                .as_deref()
                .unwrap_or(SYSLOG_ADDR_DEFAULT),
        )?;
        let syslog_tls_addr = addr(
            "syslog_tls_addr",
            self.syslog_tls_addr.as_deref().unwrap_or(""),
        )?;
        let relp_addr = addr("relp_addr", self.relp_addr.as_deref().unwrap_or(""))?;
        let relp_tls_addr = addr("relp_tls_addr", self.relp_tls_addr.as_deref().unwrap_or(""))?;
        let syslog_tenant = self
            .syslog_tenant
            .clone()
            .unwrap_or_else(|| crate::model::DEFAULT_TENANT.to_string());
        validate_tenant(&syslog_tenant).map_err(|e| bad("syslog_tenant", e))?;
        let syslog_listeners = syslog::resolve_sections(
            &self.syslog,
            &syslog::SyslogListener {
                tcp_addr: syslog_tcp_addr,
                udp_addr: syslog_udp_addr,
                tls_addr: syslog_tls_addr,
                relp_addr,
                relp_tls_addr,
                tenant: syslog_tenant.clone(),
            },
        )?;
        let wants_tls = syslog_tls_addr.is_some()
            || relp_tls_addr.is_some()
            || syslog_listeners
                .iter()
                .any(|l| l.tls_addr.is_some() || l.relp_tls_addr.is_some());
        let tls = self.tls_files(wants_tls)?;
        let data_dir = self
            .data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(DATA_DIR_DEFAULT));
        if data_dir.as_os_str().is_empty() {
            return Err(bad("data_dir", "must not be empty"));
        }
        let syslog_frame_bytes_max = size(
            "syslog_frame_bytes_max",
            self.syslog_frame_bytes_max,
            SYSLOG_FRAME_BYTES_MAX_DEFAULT,
            SYSLOG_FRAME_BYTES_MIN..=SYSLOG_FRAME_BYTES_LIMIT,
        )?;
        let line_bytes_max = size(
            "line_bytes_max",
            self.line_bytes_max,
            LINE_BYTES_MAX_DEFAULT,
            1..=LINE_BYTES_LIMIT,
        )?;
        let push_body_bytes_max = size(
            "push_body_bytes_max",
            self.push_body_bytes_max,
            PUSH_BODY_BYTES_MAX_DEFAULT,
            PUSH_BODY_BYTES_MIN..=PUSH_BODY_BYTES_LIMIT,
        )?;
        let wal_commit_interval = match (&self.wal_commit_interval, self.wal_commit_interval_us) {
            (Some(_), Some(_)) => {
                return Err(bad(
                    "wal_commit_interval",
                    "give it or its older form `wal_commit_interval_us`, not both",
                ));
            }
            (_, Some(us)) => Some(Duration::from_micros(us)),
            (Some(text), None) => Some(parse_duration("wal_commit_interval", text)?),
            (None, None) => None,
        };
        let wal_commit_interval = duration_within(
            "wal_commit_interval",
            wal_commit_interval.unwrap_or(WAL_COMMIT_INTERVAL_DEFAULT),
            Duration::ZERO..=WAL_COMMIT_INTERVAL_LIMIT,
        )?;
        let wal_segment_bytes_max = size(
            "wal_segment_bytes_max",
            self.wal_segment_bytes_max,
            WAL_SEGMENT_BYTES_MAX_DEFAULT,
            WAL_SEGMENT_BYTES_MIN..=WAL_SEGMENT_BYTES_LIMIT,
        )?;
        if !wal_segment_bytes_max.is_multiple_of(4096) {
            return Err(bad(
                "wal_segment_bytes_max",
                format!(
                    "must be a multiple of 4KiB, got {}",
                    size_text(wal_segment_bytes_max)
                ),
            ));
        }
        let syslog_tcp_unacked_bytes_max = size(
            "syslog_tcp_unacked_bytes_max",
            self.syslog_tcp_unacked_bytes_max,
            SYSLOG_TCP_UNACKED_BYTES_MAX_DEFAULT,
            SOCKET_BYTES_MIN..=SOCKET_BYTES_LIMIT,
        )?;
        let syslog_udp_recv_buffer_bytes = size(
            "syslog_udp_recv_buffer_bytes",
            self.syslog_udp_recv_buffer_bytes,
            SYSLOG_UDP_RECV_BUFFER_BYTES_DEFAULT,
            SOCKET_BYTES_MIN..=SOCKET_BYTES_LIMIT,
        )?;
        let future_skew_max = match (&self.future_skew_max, self.future_skew_seconds_max) {
            (Some(_), Some(_)) => {
                return Err(bad(
                    "future_skew_max",
                    "give it or its older form `future_skew_seconds_max`, not both",
                ));
            }
            (_, Some(secs)) => Some(Duration::from_secs(secs)),
            (Some(text), None) => Some(parse_duration("future_skew_max", text)?),
            (None, None) => None,
        };
        let future_skew_max = duration_within(
            "future_skew_max",
            future_skew_max.unwrap_or(FUTURE_SKEW_MAX_DEFAULT),
            Duration::ZERO..=FUTURE_SKEW_MAX_LIMIT,
        )?;
        let seal_bytes = size(
            "seal_bytes",
            self.seal_bytes,
            SEAL_BYTES_DEFAULT,
            crate::chunk::part::BLOCK_BYTES_TARGET_MIN..=crate::chunk::BLOCK_BYTES_TARGET_LIMIT,
        )?;
        let seal_age = duration(
            "seal_age",
            self.seal_age.as_deref(),
            SEAL_AGE_DEFAULT,
            Duration::from_millis(100),
            Duration::from_secs(86400),
        )?
        .expect("a default is given");
        let stream_idle_period = duration(
            "stream_idle_period",
            self.stream_idle_period.as_deref(),
            crate::tenants::streams::STREAM_IDLE_PERIOD,
            Duration::from_secs(1),
            Duration::from_secs(7 * 86400),
        )?
        .expect("a default is given");
        let partition = duration(
            "partition",
            self.partition.as_deref(),
            PARTITION_DEFAULT,
            Duration::from_secs(3600),
            Duration::from_secs(7 * 86400),
        )?
        .expect("a default is given");
        if !partition.as_secs().is_multiple_of(3600) || partition.subsec_nanos() != 0 {
            return Err(bad(
                "partition",
                format!(
                    "must be a whole number of hours, got {}",
                    duration_text(partition)
                ),
            ));
        }
        let zstd_level = self
            .zstd_level
            .unwrap_or(crate::chunk::part::ZSTD_LEVEL_DEFAULT);
        let levels = zstd::compression_level_range();
        if !levels.contains(&zstd_level) {
            return Err(bad(
                "zstd_level",
                format!("{zstd_level} is outside zstd's range {levels:?}"),
            ));
        }
        let seal_zstd_level = self
            .seal_zstd_level
            .unwrap_or(crate::store::SEAL_ZSTD_LEVEL);
        if !levels.contains(&seal_zstd_level) {
            return Err(bad(
                "seal_zstd_level",
                format!("{seal_zstd_level} is outside zstd's range {levels:?}"),
            ));
        }
        let retention = duration(
            "retention",
            self.retention.as_deref(),
            Duration::ZERO,
            Duration::from_secs(3600),
            Duration::from_secs(100 * 365 * 86400),
        )?;
        let retention_interval = duration(
            "retention_interval",
            self.retention_interval.as_deref(),
            RETENTION_INTERVAL_DEFAULT,
            Duration::from_secs(1),
            Duration::from_secs(7 * 86400),
        )?
        .expect("a default is given");
        let delete_request_cancel_period = match self.delete_request_cancel_period.as_deref() {
            None => DELETE_REQUEST_CANCEL_PERIOD_DEFAULT,
            Some(text) => duration_within(
                "delete_request_cancel_period",
                parse_duration("delete_request_cancel_period", text)?,
                Duration::ZERO..=Duration::from_secs(365 * 86400),
            )?,
        };
        let compaction_cold_after = match self.compaction_cold_after.as_deref().map(str::trim) {
            None => Some(crate::store::compaction::RECOMPRESS_COLD_AFTER_DEFAULT),
            Some("off") | Some("") => None,
            Some(text) => match parse_duration("compaction_cold_after", text)? {
                d if d.is_zero() => None,
                d => Some(duration_within(
                    "compaction_cold_after",
                    d,
                    Duration::from_secs(60)..=Duration::from_secs(365 * 86400),
                )?),
            },
        };
        let compaction_bytes_per_second = size(
            "compaction_bytes_per_second",
            self.compaction_bytes_per_second,
            COMPACTION_BYTES_PER_SECOND_DEFAULT,
            BUDGET_BYTES_MIN..=BUDGET_BYTES_LIMIT,
        )?;
        let wal_bytes_max = size(
            "wal_bytes_max",
            self.wal_bytes_max,
            WAL_BYTES_MAX_DEFAULT,
            WAL_BYTES_MAX_MIN..=BUDGET_BYTES_LIMIT,
        )?;
        let core_stall_max = duration(
            "core_stall_max",
            self.core_stall_max.as_deref(),
            CORE_STALL_MAX_DEFAULT,
            CORE_STALL_MAX_MIN,
            CORE_STALL_MAX_LIMIT,
        )?
        .expect("a default is given");
        // 0, like no value, asks for the cap derived from the file limit at start.
        let connections_max = match self.connections_max {
            None | Some(0) => None,
            Some(n) if n > CONNECTIONS_MAX_LIMIT => {
                return Err(bad(
                    "connections_max",
                    format!("must be at most {CONNECTIONS_MAX_LIMIT}, got {n}"),
                ));
            }
            Some(n) => Some(n),
        };
        // The largest push must fit whole, or its client would be refused forever: its raw
        // body, its lines decoded and encoded (twice its decoded size), and the entries' own
        // structures (as much again for short lines).
        let request_floor = 4 * push_body_bytes_max + PUSH_RAW_BODY_SLACK_BYTES;
        // Explicit shares are checked against their own bounds first, then the budget.
        let given = |key: &str, value: Option<u64>, min: u64| {
            value
                .map(|v| size(key, Some(v), v, min..=BUDGET_BYTES_LIMIT))
                .transpose()
        };
        let asked = memory::MemoryAsked {
            memory_max: given("memory_max", self.memory_max, BUDGET_BYTES_MIN)?,
            heads_bytes_max: given(
                "heads_bytes_max",
                self.heads_bytes_max,
                memory::HEADS_BYTES_MIN.min(BUDGET_BYTES_MIN),
            )?,
            request_bodies_bytes_max: self
                .request_bodies_bytes_max
                .map(|v| {
                    size(
                        "request_bodies_bytes_max",
                        Some(v),
                        v,
                        request_floor..=REQUEST_BODIES_BYTES_LIMIT,
                    )
                })
                .transpose()?
                .map(|v| v as u64),
            query_memory_bytes_max: self.query_memory_bytes_max,
            part_cache_bytes_max: given(
                "part_cache_bytes_max",
                self.part_cache_bytes_max,
                memory::PART_CACHE_BYTES_MIN,
            )?,
            compaction_input_bytes_max: given(
                "compaction_input_bytes_max",
                self.compaction_input_bytes_max,
                BUDGET_BYTES_MIN,
            )?,
            duplicate_fingerprints_bytes_max: given(
                "duplicate_fingerprints_bytes_max",
                self.duplicate_fingerprints_bytes_max,
                memory::FINGERPRINTS_BYTES_MIN,
            )?,
        };
        let memory = memory::plan(
            asked,
            cores,
            memory::machine_memory_bytes(),
            request_floor as u64,
        )?;
        let mut query = query;
        query.query_memory_bytes_max = memory.query_memory_bytes_max;
        let heads_bytes_max = memory.heads_bytes_max;
        let request_bodies_bytes_max = memory.request_bodies_bytes_max as usize;
        let ruler = self.ruler_config(&data_dir, &http_addr, &syslog_tenant)?;
        Ok(Config {
            ruler,
            query,
            outbox,
            connections_max,
            request_bodies_bytes_max,
            heads_bytes_max,
            memory,
            wal_bytes_max,
            core_stall_max,
            seal_bytes,
            seal_age,
            stream_idle_period,
            partition,
            zstd_level,
            seal_zstd_level,
            retention,
            retention_max_bytes: self.retention_max_bytes.unwrap_or(0),
            retention_interval,
            delete_request_cancel_period,
            compaction_bytes_per_second,
            compaction_cold_after,
            data_dir,
            volatile_data_dir: if self.allow_volatile_data_dir {
                VolatilePolicy::Allow
            } else {
                VolatilePolicy::Refuse
            },
            http_addr,
            syslog_tcp_addr,
            syslog_udp_addr,
            syslog_tls_addr,
            relp_addr,
            relp_tls_addr,
            tls,
            cores,
            wal_repair: self.wal_repair,
            syslog_tenant,
            syslog_listeners,
            auth_enabled: self.auth_enabled,
            multi_tenant_queries: self.multi_tenant_queries,
            enable_simulate: self.enable_simulate,
            tenant_limits,
            limits_file: self.limits_file.clone(),
            syslog_frame_bytes_max,
            line_bytes_max,
            push_body_bytes_max,
            wal_commit_interval,
            wal_segment_bytes_max,
            syslog_tcp_unacked_bytes_max,
            syslog_udp_recv_buffer_bytes,
            future_skew_max,
        })
    }
}

impl ServeArgs {
    /// The TLS files, checked at start (read and parsed, so that a wrong path or a key that
    /// does not match stops `serve` with the file named). They are required when a TLS
    /// listener is configured, and refused without one, where they would do nothing.
    fn tls_files(&self, wanted: bool) -> Result<Option<crate::ingest::tls::TlsFiles>, ConfigError> {
        let given = self.tls_cert_file.is_some()
            || self.tls_key_file.is_some()
            || self.tls_client_ca_file.is_some();
        if !wanted {
            return match given {
                false => Ok(None),
                true => Err(bad(
                    "tls_cert_file",
                    "TLS files are given but no TLS listener is: set syslog_tls_addr, \
                     relp_tls_addr or a [[syslog]] section with protocol \"tls\" or \"relp-tls\"",
                )),
            };
        }
        let required = |key: &str, value: &Option<PathBuf>| {
            value.clone().ok_or_else(|| {
                bad(
                    key,
                    "is required by the TLS listeners (syslog_tls_addr, relp_tls_addr)",
                )
            })
        };
        let files = crate::ingest::tls::TlsFiles {
            cert: required("tls_cert_file", &self.tls_cert_file)?,
            key: required("tls_key_file", &self.tls_key_file)?,
            client_ca: self.tls_client_ca_file.clone(),
        };
        crate::ingest::tls::server_config(&files).map_err(|e| bad("tls_cert_file", e))?;
        Ok(Some(files))
    }

    /// The ruler's destinations, every URL checked, so that a typo stops `serve` at start
    /// rather than the first alert.
    fn outbox(&self) -> Result<crate::ruler::outbox::OutboxConfig, ConfigError> {
        use crate::ruler::http_client::Endpoint;
        use crate::ruler::outbox::{OutboxConfig, QUEUE_CAPACITY_DEFAULT, TIMEOUT_DEFAULT};
        let checked = |key: &str, urls: &[String]| {
            urls.iter()
                .map(|url| {
                    Endpoint::parse(url)
                        .map(|_| url.trim().to_string())
                        .map_err(|e| bad(key, e))
                })
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(OutboxConfig {
            alertmanager_urls: checked("alertmanager_url", &self.alertmanager_url)?,
            remote_write_urls: checked("remote_write_url", &self.remote_write_url)?,
            webhook_urls: checked("webhook_url", &self.webhook_url)?,
            timeout: duration(
                "notify_timeout",
                self.notify_timeout.as_deref(),
                TIMEOUT_DEFAULT,
                NOTIFY_TIMEOUT_MIN,
                NOTIFY_TIMEOUT_MAX,
            )?
            .expect("a default is given"),
            queue_capacity: QUEUE_CAPACITY_DEFAULT,
        })
    }
}

/// A list key: the flags' list if they give one, else the file's.
fn either_list(flags: Vec<String>, file: Vec<String>) -> Vec<String> {
    if flags.is_empty() { file } else { flags }
}

fn read_file(path: &Path) -> Result<ServeArgs, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError(format!("cannot read config file {}: {e}", path.display())))?;
    toml::from_str(&text).map_err(|e| ConfigError(format!("config file {}: {e}", path.display())))
}

pub(super) fn parse_duration(key: &str, text: &str) -> Result<Duration, ConfigError> {
    units::parse_duration_ns(text)
        .map(Duration::from_nanos)
        .map_err(|e| bad(key, e))
}

pub(super) fn duration_within(
    key: &str,
    d: Duration,
    range: std::ops::RangeInclusive<Duration>,
) -> Result<Duration, ConfigError> {
    if !range.contains(&d) {
        return Err(bad(
            key,
            format!(
                "must be between {} and {}, got {}",
                duration_text(*range.start()),
                duration_text(*range.end()),
                duration_text(d)
            ),
        ));
    }
    Ok(d)
}

/// Parses a duration key (`30d`, `5m`, `500ms`) within `[min, max]`. `0` or an empty value is
/// `None` (off) when the default is zero; otherwise the default applies when the key is absent.
pub(super) fn duration(
    key: &str,
    value: Option<&str>,
    default: Duration,
    min: Duration,
    max: Duration,
) -> Result<Option<Duration>, ConfigError> {
    let d = match value.map(str::trim) {
        None => default,
        Some("") | Some("0") => Duration::ZERO,
        Some(v) => parse_duration(key, v)?,
    };
    if d.is_zero() {
        if default.is_zero() {
            return Ok(None);
        }
        return Err(bad(key, "must not be zero"));
    }
    duration_within(key, d, min..=max).map(Some)
}

/// A share of something (a float key) within `range`.
pub(super) fn fraction(
    key: &str,
    value: Option<f64>,
    default: f64,
    range: std::ops::RangeInclusive<f64>,
) -> Result<f64, ConfigError> {
    let v = value.unwrap_or(default);
    if !range.contains(&v) {
        return Err(bad(
            key,
            format!(
                "must be between {} and {}, got {v}",
                range.start(),
                range.end()
            ),
        ));
    }
    Ok(v)
}

/// Parses a listen address; an empty string means "off", and a bare `:PORT` means every
/// interface (`0.0.0.0:PORT`), as Go servers such as Loki write it.
pub(super) fn addr(key: &str, value: &str) -> Result<Option<SocketAddr>, ConfigError> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    let full;
    let target = match value.strip_prefix(':') {
        Some(port) => {
            full = format!("0.0.0.0:{port}");
            full.as_str()
        }
        None => value,
    };
    let mut addrs = target.to_socket_addrs().map_err(|e| {
        bad(
            key,
            format!("'{value}' is not a HOST:PORT or :PORT address ({e})"),
        )
    })?;
    addrs
        .next()
        .map(Some)
        .ok_or_else(|| bad(key, format!("'{value}' resolves to no address")))
}

/// A size key within its bounds, or its default; the message shows sizes with units.
pub(super) fn size<T>(
    key: &str,
    value: Option<T>,
    default: T,
    range: std::ops::RangeInclusive<T>,
) -> Result<T, ConfigError>
where
    T: Copy + PartialOrd + TryInto<u64>,
{
    let v = value.unwrap_or(default);
    if !range.contains(&v) {
        let text = |n: T| size_text(n.try_into().unwrap_or(u64::MAX));
        return Err(bad(
            key,
            format!(
                "must be between {} and {}, got {}",
                text(*range.start()),
                text(*range.end()),
                text(v)
            ),
        ));
    }
    Ok(v)
}

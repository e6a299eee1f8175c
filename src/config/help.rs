//! The defaults `shardlog serve --help` (and `doctor --help`) shows beside each flag.
//!
//! The keys of [`ServeArgs`](super::ServeArgs) are `Option`s, so that a key left out of the
//! flags can still come from the TOML file; clap's own `default_value` would fill them in
//! and hide the file. So the defaults are added to the help text here instead, formatted
//! from the same constants [`ServeArgs::resolve`](super::ServeArgs::resolve) applies, and a
//! test checks that every flag has one.

use clap::{Arg, Command};

use super::limits::*;
use super::units::{DURATION_FORMS, SIZE_FORMS, duration_text, size_text};

/// The default of the settings that `memory_max` sizes (see [`super::memory`]).
const SHARE: &str = "a share of memory_max";

/// The default of every key, as `--help` shows it, by clap argument id (the key's name).
pub fn defaults() -> Vec<(&'static str, String)> {
    let size = |n: u64| size_text(n);
    let size_usize = |n: usize| size_text(n as u64);
    vec![
        ("data_dir", DATA_DIR_DEFAULT.to_string()),
        ("allow_volatile_data_dir", "off".to_string()),
        ("http_addr", HTTP_ADDR_DEFAULT.to_string()),
        ("syslog_tcp_addr", SYSLOG_ADDR_DEFAULT.to_string()),
        ("syslog_udp_addr", SYSLOG_ADDR_DEFAULT.to_string()),
        ("syslog_tls_addr", "off".to_string()),
        ("relp_addr", "off".to_string()),
        ("relp_tls_addr", "off".to_string()),
        ("tls_cert_file", "none".to_string()),
        ("tls_key_file", "none".to_string()),
        (
            "tls_client_ca_file",
            "none: no client certificate is asked for".to_string(),
        ),
        ("cores", "every CPU this process may run on".to_string()),
        ("wal_repair", "off".to_string()),
        ("auth_enabled", "off".to_string()),
        ("multi_tenant_queries", "off".to_string()),
        ("enable_simulate", "off".to_string()),
        ("syslog_tenant", crate::model::DEFAULT_TENANT.to_string()),
        ("ingestion_rate_mb", "0, no limit".to_string()),
        (
            "ingestion_burst_size_mb",
            INGESTION_BURST_SIZE_MB_DEFAULT.to_string(),
        ),
        (
            "max_label_names_per_series",
            MAX_LABEL_NAMES_PER_SERIES_DEFAULT.to_string(),
        ),
        (
            "max_label_name_length",
            MAX_LABEL_NAME_LENGTH_DEFAULT.to_string(),
        ),
        (
            "max_label_value_length",
            MAX_LABEL_VALUE_LENGTH_DEFAULT.to_string(),
        ),
        ("limits_file", "none".to_string()),
        (
            "discover_service_name",
            crate::ingest::discovery::DISCOVER_SERVICE_NAME_DEFAULT.join(","),
        ),
        ("discover_log_levels", "true".to_string()),
        ("reject_old_samples", "off".to_string()),
        ("max_global_streams_per_user", "0, no limit".to_string()),
        ("per_stream_rate_limit", "0, no limit".to_string()),
        (
            "per_stream_rate_limit_burst",
            size(PER_STREAM_RATE_LIMIT_BURST_DEFAULT),
        ),
        (
            "creation_grace_period",
            crate::config::units::duration_text(CREATION_GRACE_PERIOD_DEFAULT),
        ),
        (
            "reject_old_samples_max_age",
            duration_text(REJECT_OLD_SAMPLES_MAX_AGE_DEFAULT),
        ),
        ("max_line_size_truncate", "off".to_string()),
        (
            "syslog_frame_bytes_max",
            size_usize(SYSLOG_FRAME_BYTES_MAX_DEFAULT),
        ),
        ("line_bytes_max", size_usize(LINE_BYTES_MAX_DEFAULT)),
        (
            "push_body_bytes_max",
            size_usize(PUSH_BODY_BYTES_MAX_DEFAULT),
        ),
        (
            "wal_commit_interval",
            duration_text(WAL_COMMIT_INTERVAL_DEFAULT),
        ),
        (
            "wal_commit_interval_us",
            WAL_COMMIT_INTERVAL_DEFAULT.as_micros().to_string(),
        ),
        ("wal_segment_bytes_max", size(WAL_SEGMENT_BYTES_MAX_DEFAULT)),
        (
            "syslog_tcp_unacked_bytes_max",
            size_usize(SYSLOG_TCP_UNACKED_BYTES_MAX_DEFAULT),
        ),
        (
            "syslog_udp_recv_buffer_bytes",
            size_usize(SYSLOG_UDP_RECV_BUFFER_BYTES_DEFAULT),
        ),
        ("future_skew_max", duration_text(FUTURE_SKEW_MAX_DEFAULT)),
        (
            "future_skew_seconds_max",
            FUTURE_SKEW_MAX_DEFAULT.as_secs().to_string(),
        ),
        ("seal_bytes", size_usize(SEAL_BYTES_DEFAULT)),
        ("seal_age", duration_text(SEAL_AGE_DEFAULT)),
        (
            "stream_idle_period",
            duration_text(crate::tenants::streams::STREAM_IDLE_PERIOD),
        ),
        ("partition", duration_text(PARTITION_DEFAULT)),
        (
            "zstd_level",
            crate::chunk::part::ZSTD_LEVEL_DEFAULT.to_string(),
        ),
        ("seal_zstd_level", crate::store::SEAL_ZSTD_LEVEL.to_string()),
        ("retention", "0, keep everything".to_string()),
        ("retention_max_bytes", "0, no cap".to_string()),
        (
            "retention_interval",
            duration_text(RETENTION_INTERVAL_DEFAULT),
        ),
        (
            "delete_request_cancel_period",
            duration_text(DELETE_REQUEST_CANCEL_PERIOD_DEFAULT),
        ),
        (
            "memory_max",
            "128MiB + 128MiB per core, at most a quarter of the machine's memory".to_string(),
        ),
        ("heads_bytes_max", SHARE.to_string()),
        ("part_cache_bytes_max", SHARE.to_string()),
        (
            "compaction_input_bytes_max",
            format!("{SHARE}, at most 256MiB"),
        ),
        ("duplicate_fingerprints_bytes_max", SHARE.to_string()),
        ("wal_bytes_max", size(WAL_BYTES_MAX_DEFAULT)),
        ("core_stall_max", duration_text(CORE_STALL_MAX_DEFAULT)),
        (
            "compaction_bytes_per_second",
            size(COMPACTION_BYTES_PER_SECOND_DEFAULT),
        ),
        (
            "compaction_cold_after",
            duration_text(crate::store::compaction::RECOMPRESS_COLD_AFTER_DEFAULT),
        ),
        (
            "connections_max",
            format!(
                "0, (RLIMIT_NOFILE - {PROCESS_FDS_RESERVED} - {DATA_FDS_RESERVED_PER_CORE} per \
                 core) / cores, at most {CONNECTIONS_MAX_DEFAULT_CEILING}"
            ),
        ),
        ("request_bodies_bytes_max", SHARE.to_string()),
        ("max_entries_limit_per_query", QUERY_ENTRIES_MAX.to_string()),
        ("max_query_series", QUERY_SERIES_MAX.to_string()),
        ("max_query_length", duration_text(QUERY_LENGTH_MAX_DEFAULT)),
        (
            "query_timeout",
            duration_text(std::time::Duration::from_secs(QUERY_TIMEOUT_SECONDS)),
        ),
        ("max_query_bytes_read", "0, no limit".to_string()),
        ("query_memory_bytes_max", SHARE.to_string()),
        ("max_concurrent", QUERY_CONCURRENCY_DEFAULT.to_string()),
        (
            "max_outstanding_requests_per_tenant",
            QUERY_QUEUED_MAX_DEFAULT.to_string(),
        ),
        (
            "query_cpu_share_min",
            QUERY_CPU_SHARE_MIN_DEFAULT.to_string(),
        ),
        ("query_cpu_headroom", QUERY_CPU_HEADROOM_DEFAULT.to_string()),
        ("rules_dir", "rules in the data dir".to_string()),
        (
            "ruler_evaluation_interval",
            duration_text(super::ruler::RULER_EVALUATION_INTERVAL_DEFAULT),
        ),
        (
            "ruler_resend_delay",
            duration_text(super::ruler::RULER_RESEND_DELAY_DEFAULT),
        ),
        ("ruler_external_url", "http://<http_addr>".to_string()),
        ("alertmanager_url", "none".to_string()),
        ("remote_write_url", "none".to_string()),
        ("webhook_url", "none".to_string()),
        (
            "notify_timeout",
            duration_text(crate::ruler::outbox::TIMEOUT_DEFAULT),
        ),
    ]
}

/// Appends `[default: X]` to the help of every flag of `cmd` that is a configuration key,
/// and the forms sizes, durations and addresses take after the list.
pub fn show_defaults(cmd: Command) -> Command {
    let defaults = defaults();
    let forms = format!(
        "Sizes: {SIZE_FORMS}.\nDurations: {DURATION_FORMS}; `0` alone.\nAddresses: HOST:PORT, \
         or :PORT for every interface."
    );
    cmd.after_help(forms).mut_args(|arg| {
        match defaults.iter().find(|(id, _)| *id == arg.get_id().as_str()) {
            Some((_, text)) => with_default(arg, text),
            None => arg,
        }
    })
}

fn with_default(arg: Arg, text: &str) -> Arg {
    let append = |help: Option<&clap::builder::StyledStr>| {
        let help = help.map(|h| h.to_string()).unwrap_or_default();
        format!("{} [default: {text}]", help.trim_end())
    };
    let help = append(arg.get_help());
    let long = arg.get_long_help().map(|h| append(Some(h)));
    let arg = arg.help(help);
    match long {
        Some(long) => arg.long_help(long),
        None => arg,
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;
    use crate::config::ServeArgs;

    #[derive(Parser)]
    struct Serve {
        #[command(flatten)]
        args: ServeArgs,
    }

    #[test]
    fn every_key_shows_its_default_and_every_default_is_a_key() {
        let cmd = show_defaults(Serve::command());
        let ids: Vec<String> = cmd
            .get_arguments()
            .map(|a| a.get_id().to_string())
            .filter(|id| id != "config")
            .collect();
        for id in &ids {
            let arg = cmd.get_arguments().find(|a| a.get_id() == id).unwrap();
            let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
            assert!(
                help.contains("[default: "),
                "--{id} shows no default: {help}"
            );
        }
        for (id, _) in defaults() {
            assert!(ids.iter().any(|i| i == id), "default for unknown key {id}");
        }
    }

    #[test]
    fn defaults_are_the_resolved_ones_and_parse_back() {
        let c = ServeArgs::default().resolve(1).unwrap();
        let d = |key: &str| defaults().into_iter().find(|(k, _)| *k == key).unwrap().1;
        let size = |key: &str| crate::config::units::parse_size(&d(key)).unwrap();
        assert_eq!(size("line_bytes_max"), c.line_bytes_max as u64);
        assert_eq!(
            c.memory.memory_max,
            super::super::memory::default_memory_max(
                super::super::memory::machine_memory_bytes(),
                1
            )
        );
        assert_eq!(size("wal_segment_bytes_max"), c.wal_segment_bytes_max);
        let dur = |key: &str| {
            std::time::Duration::from_nanos(
                crate::config::units::parse_duration_ns(&d(key)).unwrap(),
            )
        };
        assert_eq!(dur("seal_age"), c.seal_age);
        assert_eq!(dur("stream_idle_period"), c.stream_idle_period);
        assert_eq!(dur("future_skew_max"), c.future_skew_max);
        assert_eq!(dur("wal_commit_interval"), c.wal_commit_interval);
        assert_eq!(d("http_addr"), c.http_addr.to_string());
    }

    #[test]
    fn help_text_carries_the_default() {
        let mut cmd = show_defaults(Serve::command());
        let help = cmd.render_long_help().to_string();
        assert!(help.contains("[default: 256KiB]"), "{help}");
        assert!(help.contains("[default: 0.0.0.0:3100]"), "{help}");
        assert!(help.contains("[default: 5m]"), "{help}");
    }
}

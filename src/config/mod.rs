//! Configuration: one set of keys, given by a TOML file (`--config FILE`) and by flags.
//!
//! Which question it answers: "what was the server asked to do, and is it possible?" Every
//! key is a field of [`ServeArgs`], which is both the clap flag set (`--data-dir`) and the
//! TOML schema (`data_dir = "..."`, the flag's name with `_` for `-`). Precedence: built-in
//! defaults < file < flags. [`ServeArgs::resolve`] validates everything into a [`Config`]
//! and names the key in every error.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use serde::Deserialize;

use crate::model::validate_tenant;

pub mod limits;

pub use limits::*;

/// Flags of `shardlog serve`; also the schema of the TOML file.
#[derive(Args, Deserialize, Debug, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct ServeArgs {
    /// TOML configuration file; flags given on the command line override its keys.
    #[arg(long, value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,

    /// Where the WAL and the part files live. Must support O_DIRECT (not tmpfs).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// HTTP listener (Loki API, push, metrics). Default 0.0.0.0:3100.
    #[arg(long, value_name = "ADDR")]
    pub http_addr: Option<String>,

    /// Syslog TCP listener; an empty value turns it off. Default 0.0.0.0:5514.
    #[arg(long, value_name = "ADDR")]
    pub syslog_tcp_addr: Option<String>,

    /// Syslog UDP listener; an empty value turns it off. Default 0.0.0.0:5514.
    #[arg(long, value_name = "ADDR")]
    pub syslog_udp_addr: Option<String>,

    /// Number of cores (shards) to run, each pinned to its own CPU. Default: all online CPUs.
    #[arg(long, value_name = "N")]
    pub cores: Option<usize>,

    /// Skip corrupt WAL regions during recovery instead of refusing to start.
    #[arg(long)]
    #[serde(default)]
    pub wal_repair: bool,

    /// Tenant that syslog listeners store their lines under.
    #[arg(long, value_name = "TENANT")]
    pub syslog_tenant: Option<String>,

    /// Largest syslog frame; longer frames are cut to this size and counted.
    #[arg(long, value_name = "BYTES")]
    pub syslog_frame_bytes_max: Option<usize>,

    /// Largest accepted line (Loki's max_line_size); longer push lines are refused with 400.
    #[arg(long, value_name = "BYTES")]
    pub line_bytes_max: Option<usize>,

    /// Largest push body after decompression; larger bodies get 413.
    #[arg(long, value_name = "BYTES")]
    pub push_body_bytes_max: Option<usize>,

    /// Group-commit tick of the WAL, in microseconds.
    #[arg(long, value_name = "MICROSECONDS")]
    pub wal_commit_interval_us: Option<u64>,

    /// Size of one WAL segment file.
    #[arg(long, value_name = "BYTES")]
    pub wal_segment_bytes_max: Option<u64>,

    /// Bytes a syslog TCP connection may have sent that are not yet durable before the
    /// server stops reading it (backpressure).
    #[arg(long, value_name = "BYTES")]
    pub syslog_tcp_unacked_bytes_max: Option<usize>,

    /// Kernel receive buffer requested for each syslog UDP socket.
    #[arg(long, value_name = "BYTES")]
    pub syslog_udp_recv_buffer_bytes: Option<usize>,

    /// How far in the future a timestamp may be before it is clamped to now (and counted).
    #[arg(long, value_name = "SECONDS")]
    pub future_skew_seconds_max: Option<u64>,

    /// A stream's head is sealed into a part once its lines reach this many bytes.
    #[arg(long, value_name = "BYTES")]
    pub seal_bytes: Option<usize>,

    /// A stream's head is sealed once its oldest entry arrived this long ago (e.g. `5m`),
    /// which also bounds how much WAL a restart replays.
    #[arg(long, value_name = "DURATION")]
    pub seal_age: Option<String>,

    /// Time span of one partition of part files (e.g. `1d`, `6h`); retention drops whole
    /// partitions.
    #[arg(long, value_name = "DURATION")]
    pub partition: Option<String>,

    /// zstd level of compacted parts (cold data: smaller, slower to write).
    #[arg(long, value_name = "LEVEL")]
    pub zstd_level: Option<i32>,

    /// zstd level of parts written by sealing, which must keep up with ingest.
    #[arg(long, value_name = "LEVEL")]
    pub seal_zstd_level: Option<i32>,

    /// Drop partitions whose newest line is older than this (e.g. `30d`); empty or `0`: keep
    /// everything.
    #[arg(long, value_name = "DURATION")]
    pub retention: Option<String>,

    /// Drop the oldest partitions while the part files of all shards take more than this
    /// many bytes; 0: no cap.
    #[arg(long, value_name = "BYTES")]
    pub retention_max_bytes: Option<u64>,

    /// Line bytes that a core's unsealed heads may hold before all of them are sealed at
    /// once, whatever their size or age.
    #[arg(long, value_name = "BYTES")]
    pub heads_bytes_max: Option<u64>,

    /// Bytes per second that compaction may read plus write, per core.
    #[arg(long, value_name = "BYTES")]
    pub compaction_bytes_per_second: Option<u64>,

    /// Open connections per core, HTTP and syslog TCP together; at the cap a core stops
    /// accepting for a moment and newcomers wait in the kernel's backlog. Default (or 0): the
    /// soft RLIMIT_NOFILE less a reserve for data files (64 + 1024 per core), divided by the
    /// cores, at most 10000.
    #[arg(long, value_name = "N")]
    pub connections_max: Option<usize>,

    /// Bytes that the unfinished request bodies of one core may hold together; a request
    /// beyond it is answered 503 with Retry-After before its body is read. Default 256 MiB.
    #[arg(long, value_name = "BYTES")]
    pub request_bodies_bytes_max: Option<usize>,
}

/// The validated configuration the server runs with.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub http_addr: SocketAddr,
    pub syslog_tcp_addr: Option<SocketAddr>,
    pub syslog_udp_addr: Option<SocketAddr>,
    pub cores: usize,
    pub wal_repair: bool,
    pub syslog_tenant: String,
    pub syslog_frame_bytes_max: usize,
    pub line_bytes_max: usize,
    pub push_body_bytes_max: usize,
    pub wal_commit_interval: Duration,
    pub wal_segment_bytes_max: u64,
    pub syslog_tcp_unacked_bytes_max: usize,
    pub syslog_udp_recv_buffer_bytes: usize,
    pub future_skew_max: Duration,
    pub seal_bytes: usize,
    pub seal_age: Duration,
    pub partition: Duration,
    pub zstd_level: i32,
    pub seal_zstd_level: i32,
    /// `None`: keep everything.
    pub retention: Option<Duration>,
    /// 0: no cap.
    pub retention_max_bytes: u64,
    pub compaction_bytes_per_second: u64,
    pub heads_bytes_max: u64,
    /// `None`: derived from RLIMIT_NOFILE when the server starts
    /// (`crate::http::admission::derive_connections_max`).
    pub connections_max: Option<usize>,
    pub request_bodies_bytes_max: usize,
}

/// A configuration error; the message names the key and what was wrong.
#[derive(Debug)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

fn bad(key: &str, msg: impl std::fmt::Display) -> ConfigError {
    ConfigError(format!(
        "invalid value for `{key}` (--{}): {msg}",
        key.replace('_', "-")
    ))
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
    fn over(self, file: ServeArgs) -> ServeArgs {
        ServeArgs {
            config: self.config,
            data_dir: self.data_dir.or(file.data_dir),
            http_addr: self.http_addr.or(file.http_addr),
            syslog_tcp_addr: self.syslog_tcp_addr.or(file.syslog_tcp_addr),
            syslog_udp_addr: self.syslog_udp_addr.or(file.syslog_udp_addr),
            cores: self.cores.or(file.cores),
            wal_repair: self.wal_repair || file.wal_repair,
            syslog_tenant: self.syslog_tenant.or(file.syslog_tenant),
            syslog_frame_bytes_max: self.syslog_frame_bytes_max.or(file.syslog_frame_bytes_max),
            line_bytes_max: self.line_bytes_max.or(file.line_bytes_max),
            push_body_bytes_max: self.push_body_bytes_max.or(file.push_body_bytes_max),
            wal_commit_interval_us: self.wal_commit_interval_us.or(file.wal_commit_interval_us),
            wal_segment_bytes_max: self.wal_segment_bytes_max.or(file.wal_segment_bytes_max),
            syslog_tcp_unacked_bytes_max: self
                .syslog_tcp_unacked_bytes_max
                .or(file.syslog_tcp_unacked_bytes_max),
            syslog_udp_recv_buffer_bytes: self
                .syslog_udp_recv_buffer_bytes
                .or(file.syslog_udp_recv_buffer_bytes),
            future_skew_seconds_max: self
                .future_skew_seconds_max
                .or(file.future_skew_seconds_max),
            seal_bytes: self.seal_bytes.or(file.seal_bytes),
            seal_age: self.seal_age.or(file.seal_age),
            partition: self.partition.or(file.partition),
            zstd_level: self.zstd_level.or(file.zstd_level),
            seal_zstd_level: self.seal_zstd_level.or(file.seal_zstd_level),
            retention: self.retention.or(file.retention),
            retention_max_bytes: self.retention_max_bytes.or(file.retention_max_bytes),
            compaction_bytes_per_second: self
                .compaction_bytes_per_second
                .or(file.compaction_bytes_per_second),
            heads_bytes_max: self.heads_bytes_max.or(file.heads_bytes_max),
            connections_max: self.connections_max.or(file.connections_max),
            request_bodies_bytes_max: self
                .request_bodies_bytes_max
                .or(file.request_bodies_bytes_max),
        }
    }

    /// Applies defaults and validates every key. `online_cpus` is the number of CPUs the
    /// process may run on.
    pub fn resolve(self, online_cpus: usize) -> Result<Config, ConfigError> {
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
        let syslog_tenant = self
            .syslog_tenant
            .unwrap_or_else(|| crate::model::DEFAULT_TENANT.to_string());
        validate_tenant(&syslog_tenant).map_err(|e| bad("syslog_tenant", e))?;
        let data_dir = self
            .data_dir
            .unwrap_or_else(|| PathBuf::from(DATA_DIR_DEFAULT));
        if data_dir.as_os_str().is_empty() {
            return Err(bad("data_dir", "must not be empty"));
        }
        let syslog_frame_bytes_max = within(
            "syslog_frame_bytes_max",
            self.syslog_frame_bytes_max,
            SYSLOG_FRAME_BYTES_MAX_DEFAULT,
            480,
            SYSLOG_FRAME_BYTES_LIMIT,
        )?;
        let line_bytes_max = within(
            "line_bytes_max",
            self.line_bytes_max,
            LINE_BYTES_MAX_DEFAULT,
            1,
            LINE_BYTES_LIMIT,
        )?;
        let push_body_bytes_max = within(
            "push_body_bytes_max",
            self.push_body_bytes_max,
            PUSH_BODY_BYTES_MAX_DEFAULT,
            1024,
            PUSH_BODY_BYTES_LIMIT,
        )?;
        let wal_commit_interval_us = within(
            "wal_commit_interval_us",
            self.wal_commit_interval_us.map(|v| v as usize),
            WAL_COMMIT_INTERVAL_US_DEFAULT as usize,
            0,
            WAL_COMMIT_INTERVAL_US_LIMIT as usize,
        )?;
        let wal_segment_bytes_max = within(
            "wal_segment_bytes_max",
            self.wal_segment_bytes_max.map(|v| v as usize),
            WAL_SEGMENT_BYTES_MAX_DEFAULT as usize,
            1 << 20,
            1 << 34,
        )? as u64;
        if !wal_segment_bytes_max.is_multiple_of(4096) {
            return Err(bad("wal_segment_bytes_max", "must be a multiple of 4096"));
        }
        let syslog_tcp_unacked_bytes_max = within(
            "syslog_tcp_unacked_bytes_max",
            self.syslog_tcp_unacked_bytes_max,
            SYSLOG_TCP_UNACKED_BYTES_MAX_DEFAULT,
            64 * 1024,
            1 << 30,
        )?;
        let syslog_udp_recv_buffer_bytes = within(
            "syslog_udp_recv_buffer_bytes",
            self.syslog_udp_recv_buffer_bytes,
            SYSLOG_UDP_RECV_BUFFER_BYTES_DEFAULT,
            64 * 1024,
            1 << 30,
        )?;
        let future_skew_seconds_max = within(
            "future_skew_seconds_max",
            self.future_skew_seconds_max.map(|v| v as usize),
            FUTURE_SKEW_SECONDS_MAX_DEFAULT as usize,
            0,
            365 * 86400,
        )? as u64;
        let seal_bytes = within(
            "seal_bytes",
            self.seal_bytes,
            SEAL_BYTES_DEFAULT,
            crate::chunk::part::BLOCK_BYTES_TARGET_MIN,
            crate::chunk::BLOCK_BYTES_TARGET_LIMIT,
        )?;
        let seal_age = duration(
            "seal_age",
            self.seal_age.as_deref(),
            SEAL_AGE_DEFAULT,
            Duration::from_millis(100),
            Duration::from_secs(86400),
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
            return Err(bad("partition", "must be a whole number of hours"));
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
        let compaction_bytes_per_second = within(
            "compaction_bytes_per_second",
            self.compaction_bytes_per_second.map(|v| v as usize),
            COMPACTION_BYTES_PER_SECOND_DEFAULT as usize,
            1 << 20,
            1 << 40,
        )? as u64;
        let heads_bytes_max = within(
            "heads_bytes_max",
            self.heads_bytes_max.map(|v| v as usize),
            HEADS_BYTES_MAX_DEFAULT as usize,
            1 << 20,
            1 << 40,
        )? as u64;
        // 0, like no value, asks for the cap derived from the file limit at start.
        let connections_max = match self.connections_max {
            None | Some(0) => None,
            Some(n) => Some(within(
                "connections_max",
                Some(n),
                n,
                1,
                CONNECTIONS_MAX_LIMIT,
            )?),
        };
        // The largest push must fit whole, or its client would be refused forever: its raw
        // body, its lines decoded and encoded (twice its decoded size), and the entries' own
        // structures (as much again for short lines).
        let request_bodies_bytes_max = within(
            "request_bodies_bytes_max",
            self.request_bodies_bytes_max,
            REQUEST_BODIES_BYTES_MAX_DEFAULT,
            4 * push_body_bytes_max + PUSH_RAW_BODY_SLACK_BYTES,
            REQUEST_BODIES_BYTES_LIMIT,
        )?;
        Ok(Config {
            connections_max,
            request_bodies_bytes_max,
            heads_bytes_max,
            seal_bytes,
            seal_age,
            partition,
            zstd_level,
            seal_zstd_level,
            retention,
            retention_max_bytes: self.retention_max_bytes.unwrap_or(0),
            compaction_bytes_per_second,
            data_dir,
            http_addr,
            syslog_tcp_addr,
            syslog_udp_addr,
            cores,
            wal_repair: self.wal_repair,
            syslog_tenant,
            syslog_frame_bytes_max,
            line_bytes_max,
            push_body_bytes_max,
            wal_commit_interval: Duration::from_micros(wal_commit_interval_us as u64),
            wal_segment_bytes_max,
            syslog_tcp_unacked_bytes_max,
            syslog_udp_recv_buffer_bytes,
            future_skew_max: Duration::from_secs(future_skew_seconds_max),
        })
    }
}

fn read_file(path: &Path) -> Result<ServeArgs, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError(format!("cannot read config file {}: {e}", path.display())))?;
    toml::from_str(&text).map_err(|e| ConfigError(format!("config file {}: {e}", path.display())))
}

/// Parses a duration key (`30d`, `5m`, `500ms`) within `[min, max]`. `0` or an empty value is
/// `None` (off) when the default is zero; otherwise the default applies when the key is absent.
fn duration(
    key: &str,
    value: Option<&str>,
    default: Duration,
    min: Duration,
    max: Duration,
) -> Result<Option<Duration>, ConfigError> {
    let d = match value.map(str::trim) {
        None => default,
        Some("") | Some("0") => Duration::ZERO,
        Some(v) => {
            let ns = crate::logql::duration::parse_prometheus_duration(v)
                .or_else(|_| crate::logql::duration::parse_go_duration(v))
                .map_err(|e| bad(key, format!("`{v}` is not a duration: {e}")))?;
            if ns < 0 {
                return Err(bad(key, format!("`{v}` is negative")));
            }
            Duration::from_nanos(ns as u64)
        }
    };
    if d.is_zero() {
        if default.is_zero() {
            return Ok(None);
        }
        return Err(bad(key, "must not be zero"));
    }
    if d < min || d > max {
        return Err(bad(key, format!("{d:?} is outside {min:?}..={max:?}")));
    }
    Ok(Some(d))
}

/// Parses a listen address; an empty string means "off".
fn addr(key: &str, value: &str) -> Result<Option<SocketAddr>, ConfigError> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    let mut addrs = value
        .to_socket_addrs()
        .map_err(|e| bad(key, format!("'{value}' is not a HOST:PORT address ({e})")))?;
    addrs
        .next()
        .map(Some)
        .ok_or_else(|| bad(key, format!("'{value}' resolves to no address")))
}

fn within(
    key: &str,
    value: Option<usize>,
    default: usize,
    min: usize,
    max: usize,
) -> Result<usize, ConfigError> {
    let v = value.unwrap_or(default);
    if v < min || v > max {
        return Err(bad(
            key,
            format!("must be between {min} and {max}, got {v}"),
        ));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_resolve() {
        let c = ServeArgs::default().resolve(2).unwrap();
        assert_eq!(c.cores, 2);
        assert_eq!(c.http_addr.port(), 3100);
        assert_eq!(c.syslog_tcp_addr.unwrap().port(), 5514);
        assert_eq!(c.data_dir, PathBuf::from("./shardlog-data"));
        assert_eq!(c.syslog_tenant, "fake");
    }

    #[test]
    fn errors_name_the_key() {
        let e = ServeArgs {
            cores: Some(0),
            ..Default::default()
        }
        .resolve(2)
        .unwrap_err();
        assert!(e.0.contains("`cores`") && e.0.contains("--cores"), "{e}");
        let e = ServeArgs {
            http_addr: Some("nonsense".into()),
            ..Default::default()
        }
        .resolve(2)
        .unwrap_err();
        assert!(e.0.contains("--http-addr"), "{e}");
        let e = ServeArgs {
            cores: Some(64),
            ..Default::default()
        }
        .resolve(2)
        .unwrap_err();
        assert!(e.0.contains("online"), "{e}");
    }

    #[test]
    fn empty_syslog_addr_turns_listener_off() {
        let c = ServeArgs {
            syslog_udp_addr: Some(String::new()),
            ..Default::default()
        }
        .resolve(1)
        .unwrap();
        assert!(c.syslog_udp_addr.is_none());
        assert!(c.syslog_tcp_addr.is_some());
    }

    #[test]
    fn file_keys_and_flag_precedence() {
        let file: ServeArgs =
            toml::from_str("data_dir = \"/var/lib/x\"\ncores = 1\nhttp_addr = \"127.0.0.1:9\"\n")
                .unwrap();
        let flags = ServeArgs {
            cores: Some(2),
            ..Default::default()
        };
        let c = flags.over(file).resolve(2).unwrap();
        assert_eq!(c.cores, 2);
        assert_eq!(c.data_dir, PathBuf::from("/var/lib/x"));
        assert_eq!(c.http_addr.port(), 9);
        let unknown: Result<ServeArgs, _> = toml::from_str("no_such_key = 1");
        assert!(unknown.unwrap_err().to_string().contains("no_such_key"));
    }

    #[test]
    fn admission_keys() {
        let c = ServeArgs::default().resolve(2).unwrap();
        assert_eq!(c.connections_max, None, "derived at start");
        assert_eq!(c.request_bodies_bytes_max, REQUEST_BODIES_BYTES_MAX_DEFAULT);
        let file: ServeArgs =
            toml::from_str("connections_max = 500\nrequest_bodies_bytes_max = 67108864\n").unwrap();
        let c = ServeArgs::default().over(file).resolve(2).unwrap();
        assert_eq!(c.connections_max, Some(500));
        assert_eq!(c.request_bodies_bytes_max, 64 << 20);
        // A budget smaller than one push body could never admit the largest push.
        let e = ServeArgs {
            request_bodies_bytes_max: Some(1 << 20),
            ..Default::default()
        }
        .resolve(2)
        .unwrap_err();
        assert!(e.0.contains("--request-bodies-bytes-max"), "{e}");
        let derived = ServeArgs {
            connections_max: Some(0),
            ..Default::default()
        };
        assert_eq!(derived.resolve(2).unwrap().connections_max, None);
        let e = ServeArgs {
            connections_max: Some(CONNECTIONS_MAX_LIMIT + 1),
            ..Default::default()
        }
        .resolve(2)
        .unwrap_err();
        assert!(e.0.contains("--connections-max"), "{e}");
    }
}

//! Configuration: one set of keys, given by a TOML file (`--config FILE`) and by flags.
//!
//! Which question it answers: "what was the server asked to do, and is it possible?" Every
//! key is a field of [`ServeArgs`], which is both the clap flag set (`--data-dir`) and the
//! TOML schema (`data_dir = "..."`, the flag's name with `_` for `-`). Precedence: built-in
//! defaults < file < flags. [`ServeArgs::resolve`] validates everything into a [`Config`]
//! and names the key in every error.
//!
//! - `resolve`: the file laid under the flags, and every key checked and defaulted.
//! - [`limits`]: every default and bound, each with why it has its value.
//! - [`tenants`]: the ingest and query limits every tenant has unless the limits file
//!   overrides them.
//! - [`units`]: sizes (`8MiB`) and durations (`10m`) as flags and TOML values.
//! - [`help`]: the defaults shown by `serve --help`, from the same constants.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use serde::Deserialize;

use crate::model::validate_tenant;

pub mod help;
pub mod limits;
pub mod memory;
mod resolve;
pub mod ruler;
pub mod syslog;
pub mod tenants;
pub mod units;
pub use resolve::OLDER_FORMS;
use resolve::{addr, duration, duration_within, fraction, parse_duration, size};

pub use ruler::RulerConfig;
pub use tenants::QueryLimits;

pub use limits::*;
use units::{duration_text, size_text};

/// Flags of `shardlog serve`; also the schema of the TOML file. Defaults are added to each
/// flag's help by [`help::show_defaults`], from the constants the resolver uses.
#[derive(Args, Deserialize, Debug, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct ServeArgs {
    /// TOML configuration file; flags given on the command line override its keys.
    #[arg(long, value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,

    /// Where the WAL and the part files live: a local ext4 or xfs file system (O_DIRECT;
    /// not tmpfs). One server per data dir: a second one refuses to start.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Accept a data dir on tmpfs or ramfs, whose lines are lost at reboot (test servers).
    #[arg(long)]
    #[serde(default)]
    pub allow_volatile_data_dir: bool,

    /// HTTP listener (Loki API, push, metrics); `:3100` means every interface.
    #[arg(long, value_name = "ADDR")]
    pub http_addr: Option<String>,

    /// Syslog TCP listener; `:5514` means every interface, an empty value turns it off.
    #[arg(long, value_name = "ADDR")]
    pub syslog_tcp_addr: Option<String>,

    /// Syslog UDP listener; `:5514` means every interface, an empty value turns it off.
    #[arg(long, value_name = "ADDR")]
    pub syslog_udp_addr: Option<String>,

    /// Syslog over TLS listener (RFC 5425: octet-counted frames inside TLS); off unless
    /// given, and then `--tls-cert-file` and `--tls-key-file` are required.
    #[arg(long, value_name = "ADDR")]
    pub syslog_tls_addr: Option<String>,

    /// RELP listener (rsyslog's `omrelp`): every message is answered `200 OK` only once it
    /// is durable. Off unless given.
    #[arg(long, value_name = "ADDR")]
    pub relp_addr: Option<String>,

    /// RELP over TLS listener (rsyslog's `omrelp` with `tls="on"`); off unless given.
    #[arg(long, value_name = "ADDR")]
    pub relp_tls_addr: Option<String>,

    /// PEM certificate chain (leaf first) of the TLS listeners; re-read when it changes.
    #[arg(long, value_name = "FILE")]
    pub tls_cert_file: Option<PathBuf>,

    /// PEM private key of the TLS listeners; re-read when it changes.
    #[arg(long, value_name = "FILE")]
    pub tls_key_file: Option<PathBuf>,

    /// PEM CA certificates: when given, TLS clients must present a certificate that chains
    /// to one of them, or the handshake fails.
    #[arg(long, value_name = "FILE")]
    pub tls_client_ca_file: Option<PathBuf>,

    /// Number of cores (shards) to run, each pinned to its own CPU.
    #[arg(long, value_name = "N")]
    pub cores: Option<usize>,

    /// Skip corrupt WAL regions during recovery instead of refusing to start.
    #[arg(long)]
    #[serde(default)]
    pub wal_repair: bool,

    /// Tenant that the default syslog listener (`--syslog-tcp-addr`, `--syslog-udp-addr`)
    /// stores its lines under.
    #[arg(long, value_name = "TENANT")]
    pub syslog_tenant: Option<String>,

    /// More syslog listeners, each with its own tenant: `[[syslog]]` sections of the TOML
    /// file (`listen`, `protocols`, `tenant`; see [`syslog::SyslogSection`]).
    #[arg(skip)]
    #[serde(default)]
    pub syslog: Vec<syslog::SyslogSection>,

    /// Require `X-Scope-OrgID` on every push and query (401 without it), as Loki's
    /// `auth_enabled`; off, a request without it is tenant `fake`.
    #[arg(long)]
    #[serde(default)]
    pub auth_enabled: bool,

    /// Let a read name several tenants (`X-Scope-OrgID: a|b`) and answer from all of them,
    /// each stream labelled `__tenant_id__`, as Loki's `multi_tenant_queries_enabled`; off,
    /// such a read is refused as Loki refuses it.
    #[arg(long)]
    #[serde(default)]
    pub multi_tenant_queries: bool,

    /// Answer `POST /simulate` of the demo's API, which generates lines and stores them as
    /// any other input's; off, it is refused with 403, so that a production server cannot be
    /// filled with made-up lines by one request.
    #[arg(long)]
    #[serde(default)]
    pub enable_simulate: bool,

    /// Each tenant's ingestion rate over all cores, in MiB a second (Loki's
    /// `ingestion_rate_mb`); a push over it is refused with 429. 0: no limit.
    #[arg(long, value_name = "MIB")]
    pub ingestion_rate_mb: Option<f64>,

    /// The bytes a tenant may push at once beyond its rate, in MiB (Loki's
    /// `ingestion_burst_size_mb`); also the largest push it may make.
    #[arg(long, value_name = "MIB")]
    pub ingestion_burst_size_mb: Option<f64>,

    /// Active streams a tenant may have over all cores (Loki's `max_global_streams_per_user`,
    /// divided over the cores as Loki divides it over ingesters); at the limit only new
    /// streams are refused. 0: no limit.
    #[arg(long, value_name = "N")]
    pub max_global_streams_per_user: Option<usize>,

    /// Bytes a second one stream may take (Loki's `per_stream_rate_limit`, on the core that
    /// owns the stream); a push over it is refused for that stream (429), its other streams
    /// stored. 0: no limit. Syslog is held by the tenant's rate only.
    #[arg(long, value_name = "SIZE", value_parser = units::size_flag)]
    #[serde(default, deserialize_with = "units::size_key")]
    pub per_stream_rate_limit: Option<u64>,

    /// Bytes one stream may take at once beyond its rate (Loki's
    /// `per_stream_rate_limit_burst`).
    #[arg(long, value_name = "SIZE", value_parser = units::size_flag)]
    #[serde(default, deserialize_with = "units::size_key")]
    pub per_stream_rate_limit_burst: Option<u64>,

    /// How far ahead of the server's clock a pushed entry may be (Loki's
    /// `creation_grace_period`): later entries are refused (400 naming them, the rest of the
    /// push stored, counted as `too_far_in_future`). Syslog and JSON lines, which cannot be
    /// refused per entry, are clamped by --future-skew-max instead.
    #[arg(long, value_name = "DURATION")]
    pub creation_grace_period: Option<String>,

    /// Labels one pushed stream may have (Loki's `max_label_names_per_series`).
    #[arg(long, value_name = "N")]
    pub max_label_names_per_series: Option<usize>,

    /// Bytes of one label name of a pushed stream (Loki's `max_label_name_length`).
    #[arg(long, value_name = "N")]
    pub max_label_name_length: Option<usize>,

    /// Bytes of one label value of a pushed stream (Loki's `max_label_value_length`).
    #[arg(long, value_name = "N")]
    pub max_label_value_length: Option<usize>,

    /// Refuse pushed entries older than --reject-old-samples-max-age (Loki's
    /// `reject_old_samples`): they are dropped, the rest of the push is stored, and the answer
    /// is 400 naming them, as Loki does.
    #[arg(long)]
    #[serde(default)]
    pub reject_old_samples: bool,

    /// How old an accepted entry may be with --reject-old-samples (Loki's
    /// `reject_old_samples_max_age`).
    #[arg(long, value_name = "DURATION")]
    pub reject_old_samples_max_age: Option<String>,

    /// Cut pushed lines longer than --line-bytes-max to it instead of refusing the push
    /// (Loki's `max_line_size_truncate`).
    #[arg(long)]
    #[serde(default)]
    pub max_line_size_truncate: bool,

    /// Labels whose value becomes `service_name` when a stream has none, the first present
    /// first, else `unknown_service` (Loki's `discover_service_name`, with its default list);
    /// comma-separated or repeated. An empty value turns it off.
    #[arg(long, value_name = "LABELS", value_delimiter = ',')]
    pub discover_service_name: Option<Vec<String>>,

    /// Give every entry a `detected_level` structured metadata field, from a level label or
    /// field, an OTLP severity, or the line (Loki's `discover_log_levels`): `true` or
    /// `false`.
    #[arg(long, value_name = "BOOL")]
    pub discover_log_levels: Option<bool>,

    /// Per-tenant overrides of these limits, in the YAML shape of Loki's runtime config
    /// (`overrides: {<tenant>: {<limit>: <value>}}`), re-read when it changes.
    #[arg(long, value_name = "PATH")]
    pub limits_file: Option<PathBuf>,

    /// Largest syslog frame; longer frames are cut to this size and counted.
    #[arg(long, value_name = "SIZE", value_parser = units::size_flag_usize)]
    #[serde(default, deserialize_with = "units::size_key")]
    pub syslog_frame_bytes_max: Option<usize>,

    /// Largest accepted line (Loki's max_line_size); longer push lines are refused with 400.
    #[arg(long, value_name = "SIZE", value_parser = units::size_flag_usize)]
    #[serde(default, deserialize_with = "units::size_key")]
    pub line_bytes_max: Option<usize>,

    /// Largest push body after decompression; larger bodies get 413.
    #[arg(long, value_name = "SIZE", value_parser = units::size_flag_usize)]
    #[serde(default, deserialize_with = "units::size_key")]
    pub push_body_bytes_max: Option<usize>,

    /// Group-commit tick of the WAL (`0`: commit as soon as the previous commit is done).
    #[arg(
        long,
        value_name = "DURATION",
        conflicts_with = "wal_commit_interval_us"
    )]
    pub wal_commit_interval: Option<String>,

    /// The same tick as a number of microseconds (the older form of --wal-commit-interval).
    #[arg(long, value_name = "MICROSECONDS")]
    pub wal_commit_interval_us: Option<u64>,

    /// Size of one WAL segment file (a multiple of 4KiB).
    #[arg(long, value_name = "SIZE", value_parser = units::size_flag)]
    #[serde(default, deserialize_with = "units::size_key")]
    pub wal_segment_bytes_max: Option<u64>,

    /// Bytes a syslog TCP connection may have sent that are not yet durable before the
    /// server stops reading it (backpressure).
    #[arg(long, value_name = "SIZE", value_parser = units::size_flag_usize)]
    #[serde(default, deserialize_with = "units::size_key")]
    pub syslog_tcp_unacked_bytes_max: Option<usize>,

    /// Kernel receive buffer requested for each syslog UDP socket.
    #[arg(long, value_name = "SIZE", value_parser = units::size_flag_usize)]
    #[serde(default, deserialize_with = "units::size_key")]
    pub syslog_udp_recv_buffer_bytes: Option<usize>,

    /// How far in the future a timestamp may be before it is clamped to now (and counted).
    #[arg(
        long,
        value_name = "DURATION",
        conflicts_with = "future_skew_seconds_max"
    )]
    pub future_skew_max: Option<String>,

    /// The same bound as a number of seconds (the older form of --future-skew-max).
    #[arg(long, value_name = "SECONDS")]
    pub future_skew_seconds_max: Option<u64>,

    /// A stream's head is sealed into a part once its lines reach this size.
    #[arg(long, value_name = "SIZE", value_parser = units::size_flag_usize)]
    #[serde(default, deserialize_with = "units::size_key")]
    pub seal_bytes: Option<usize>,

    /// A stream's head is sealed once its oldest entry arrived this long ago, which also
    /// bounds how much WAL a restart replays.
    #[arg(long, value_name = "DURATION")]
    pub seal_age: Option<String>,

    /// A stream that has gone this long without a line stops counting as active (for
    /// `max_global_streams_per_user`) and, once its entries are sealed, leaves memory: its
    /// data is then found through the parts' indexes (Loki's `chunk_idle_period`).
    #[arg(long, value_name = "DURATION")]
    pub stream_idle_period: Option<String>,

    /// Time span of one partition of part files (whole hours); retention drops whole
    /// partitions.
    #[arg(long, value_name = "DURATION")]
    pub partition: Option<String>,

    /// zstd level of compacted parts (cold data: smaller, slower to write).
    #[arg(long, value_name = "LEVEL")]
    pub zstd_level: Option<i32>,

    /// zstd level of parts written by sealing, which must keep up with ingest.
    #[arg(long, value_name = "LEVEL")]
    pub seal_zstd_level: Option<i32>,

    /// Drop partitions whose newest line is older than this (e.g. `30d`); `0` or empty: keep
    /// everything.
    #[arg(long, value_name = "DURATION")]
    pub retention: Option<String>,

    /// Drop the oldest partitions while the part files of all shards take more than this;
    /// `0`: no cap.
    #[arg(long, value_name = "SIZE", value_parser = units::size_flag)]
    #[serde(default, deserialize_with = "units::size_key")]
    pub retention_max_bytes: Option<u64>,

    /// How often each core drops the lines that per-tenant retention (`retention_period`,
    /// `retention_stream` in the limits file) let expire (Loki's `compaction_interval`).
    #[arg(long, value_name = "DURATION")]
    pub retention_interval: Option<String>,

    /// How long a delete request can be cancelled; its lines are hidden at once, but removed
    /// from disk only after it (Loki's `delete_request_cancel_period`). `0`: at once.
    #[arg(long, value_name = "DURATION")]
    pub delete_request_cancel_period: Option<String>,

    /// Memory the whole process may use: every cache and queue sizes itself from it (see
    /// `src/config/memory.rs`), and the server refuses to start with a budget it cannot
    /// keep. Default: 128 MiB plus 128 MiB per core, at most a quarter of the machine.
    #[arg(long, value_name = "SIZE", value_parser = units::size_flag)]
    #[serde(default, deserialize_with = "units::size_key")]
    pub memory_max: Option<u64>,

    /// Bytes of part metadata (stream lists, block headers, postings) and bloom filters a
    /// core keeps in memory for queries, most recently used first (read from the part files
    /// on demand, never kept with every part). Default: a share of `memory_max`. Its former
    /// name, `bloom_cache_bytes_max`, is still read.
    #[arg(long, value_name = "SIZE", value_parser = units::size_flag, alias = "bloom-cache-bytes-max")]
    #[serde(
        default,
        deserialize_with = "units::size_key",
        alias = "bloom_cache_bytes_max"
    )]
    pub part_cache_bytes_max: Option<u64>,

    /// Memory one compaction merge holds at most: a block per input, two chunks of merged
    /// lines, and the new part's index, blooms and block headers (merges stream their lines,
    /// so this bounds how many parts a merge takes and how large a part grows, by its tail).
    /// Default: a share of `memory_max`, at most 256 MiB.
    #[arg(long, value_name = "SIZE", value_parser = units::size_flag)]
    #[serde(default, deserialize_with = "units::size_key")]
    pub compaction_input_bytes_max: Option<u64>,

    /// Memory the duplicate check's fingerprints of recently sealed entries take at most per
    /// core (16 bytes a line): past it the oldest go first, and the 5-minute window within
    /// which a retried Loki push is recognised shrinks. Default: a share of `memory_max`.
    #[arg(long, value_name = "SIZE", value_parser = units::size_flag)]
    #[serde(default, deserialize_with = "units::size_key")]
    pub duplicate_fingerprints_bytes_max: Option<u64>,

    /// Line bytes that a core's unsealed heads may hold before all of them are sealed at
    /// once, whatever their size or age.
    #[arg(long, value_name = "SIZE", value_parser = units::size_flag)]
    #[serde(default, deserialize_with = "units::size_key")]
    pub heads_bytes_max: Option<u64>,

    /// WAL bytes (segment files) a core may keep on disk: past this, the heads holding the
    /// oldest segments are sealed early, so that one quiet stream cannot pin the log.
    #[arg(long, value_name = "SIZE", value_parser = units::size_flag)]
    #[serde(default, deserialize_with = "units::size_key")]
    pub wal_bytes_max: Option<u64>,

    /// How long a core may go without turning before the watchdog ends the process
    /// (fail-stop): a task blocking a core's thread is a bug, and a half-alive server is
    /// worse than a restart.
    #[arg(long, value_name = "DURATION")]
    pub core_stall_max: Option<String>,

    /// Bytes per second that compaction may read plus write, per core (e.g. `64MiB`).
    #[arg(long, value_name = "SIZE", value_parser = units::size_flag)]
    #[serde(default, deserialize_with = "units::size_key")]
    pub compaction_bytes_per_second: Option<u64>,

    /// A partition this long past its end is cold: what sealing wrote there is rewritten at
    /// the cold zstd level, and sparse cold partitions are bundled into one part. `off` (or
    /// `0`): partitions are only merged, never recompressed or bundled.
    #[arg(long, value_name = "DURATION")]
    pub compaction_cold_after: Option<String>,

    /// Open connections per core, HTTP and syslog TCP together; at the cap a core stops
    /// accepting for a moment and newcomers wait in the kernel's backlog. 0: the soft
    /// RLIMIT_NOFILE less a reserve for data files, divided by the cores.
    #[arg(long, value_name = "N")]
    pub connections_max: Option<usize>,

    /// Bytes that the unfinished requests of one core may hold together (bodies, decoded
    /// pushes until durable, long syslog frames); a request beyond it is answered 503 with
    /// Retry-After, before its body is read when its length is declared.
    #[arg(long, value_name = "SIZE", value_parser = units::size_flag_usize)]
    #[serde(default, deserialize_with = "units::size_key")]
    pub request_bodies_bytes_max: Option<usize>,

    /// Entries one log query may return (Loki's name and default, 5000); a larger `limit`
    /// is refused with 400.
    #[arg(long, value_name = "N")]
    pub max_entries_limit_per_query: Option<u32>,

    /// Series one metric query may return, and hold at any step of its evaluation (Loki's
    /// name and default, 500).
    #[arg(long, value_name = "N")]
    pub max_query_series: Option<usize>,

    /// The longest time range one query may cover (Loki's default 30d1h); `0`: no limit.
    #[arg(long, value_name = "DURATION")]
    pub max_query_length: Option<String>,

    /// How long a query may run before it is cancelled on every core and answered 504.
    #[arg(long, value_name = "DURATION")]
    pub query_timeout: Option<String>,

    /// Line bytes one query may read from storage, over all cores; `0`: no limit.
    #[arg(long, value_name = "SIZE", value_parser = units::size_flag)]
    #[serde(default, deserialize_with = "units::size_key")]
    pub max_query_bytes_read: Option<u64>,

    /// Memory one query's partial states may hold on one core (kept samples, series): a
    /// query over it stops with an error that names this limit.
    #[arg(long, value_name = "SIZE", value_parser = units::size_flag)]
    #[serde(default, deserialize_with = "units::size_key")]
    pub query_memory_bytes_max: Option<u64>,

    /// Queries a core runs at once (its own shard's part of every query counts); the rest
    /// wait in its queue (Loki's querier `max_concurrent`).
    #[arg(long, value_name = "N")]
    pub max_concurrent: Option<usize>,

    /// Queries that may wait on one core; beyond it a query is refused with 429 (Loki's
    /// `max_outstanding_requests_per_tenant`).
    #[arg(long, value_name = "N")]
    pub max_outstanding_requests_per_tenant: Option<usize>,

    /// While ingest is busy on a core, the least share of it queries keep (0.01 to 1; 1:
    /// queries are never held back for ingest).
    #[arg(long, value_name = "FRACTION")]
    pub query_cpu_share_min: Option<f64>,

    /// While ingest is busy on a core, the share of it queries leave idle beyond what ingest
    /// and sealing use, for ingest to grow into (0 to 0.9).
    #[arg(long, value_name = "FRACTION")]
    pub query_cpu_headroom: Option<f64>,

    /// Where the rule files are: one folder per tenant, one file per namespace (Loki's
    /// `local` rule storage). Default: `rules` in the data dir.
    #[arg(long, value_name = "DIR")]
    pub rules_dir: Option<PathBuf>,

    /// How often a rule group without an `interval` is evaluated (Loki's
    /// `evaluation_interval`).
    #[arg(long, value_name = "DURATION")]
    pub ruler_evaluation_interval: Option<String>,

    /// How often a firing alert is sent to Alertmanager again (Prometheus' `resend_delay`).
    #[arg(long, value_name = "DURATION")]
    pub ruler_resend_delay: Option<String>,

    /// The URL this server is reached at, for the links alerts carry (`generatorURL`).
    #[arg(long, value_name = "URL")]
    pub ruler_external_url: Option<String>,

    /// One-line alerts (TOML only): `[[alert]]` with `name`, `selector`, `level`, `keyword`,
    /// `threshold`, `window`, `tenant`; compiled to LogQL rules and evaluated as lines arrive.
    #[arg(skip)]
    #[serde(default)]
    pub alert: Vec<crate::ruler::demo::AlertLine>,

    /// Alertmanager the ruler sends alerts to: its base URL, `http://` only, with its path
    /// prefix if any (`/api/v2/alerts` is added). Repeat the flag or separate URLs with
    /// commas for several; each gets every alert.
    #[arg(long, value_name = "URL", value_delimiter = ',')]
    #[serde(default, deserialize_with = "url_list")]
    pub alertmanager_url: Vec<String>,

    /// Prometheus remote-write receiver that recording rules' samples go to (its full URL,
    /// e.g. `http://prometheus:9090/api/v1/write`). Repeatable, or comma-separated.
    #[arg(long, value_name = "URL", value_delimiter = ',')]
    #[serde(default, deserialize_with = "url_list")]
    pub remote_write_url: Vec<String>,

    /// URL that each alert event is posted to as a plain JSON object, for users without an
    /// Alertmanager. Repeatable, or comma-separated.
    #[arg(long, value_name = "URL", value_delimiter = ',')]
    #[serde(default, deserialize_with = "url_list")]
    pub webhook_url: Vec<String>,

    /// How long one notification request (Alertmanager, webhook, remote write) may take.
    #[arg(long, value_name = "DURATION")]
    pub notify_timeout: Option<String>,
}

impl Config {
    /// Every syslog listener: the default one (`syslog_tcp_addr`, `syslog_udp_addr`, under
    /// `syslog_tenant`) first, then the `[[syslog]]` sections.
    pub fn all_syslog_listeners(&self) -> Vec<syslog::SyslogListener> {
        std::iter::once(syslog::SyslogListener {
            tcp_addr: self.syslog_tcp_addr,
            udp_addr: self.syslog_udp_addr,
            tls_addr: self.syslog_tls_addr,
            relp_addr: self.relp_addr,
            relp_tls_addr: self.relp_tls_addr,
            tenant: self.syslog_tenant.clone(),
        })
        .chain(self.syslog_listeners.iter().cloned())
        .collect()
    }
}

/// The validated configuration the server runs with.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub volatile_data_dir: VolatilePolicy,
    pub http_addr: SocketAddr,
    pub syslog_tcp_addr: Option<SocketAddr>,
    pub syslog_udp_addr: Option<SocketAddr>,
    pub syslog_tls_addr: Option<SocketAddr>,
    pub relp_addr: Option<SocketAddr>,
    pub relp_tls_addr: Option<SocketAddr>,
    /// The certificate, key and client CA of every TLS listener; set when one is.
    pub tls: Option<crate::ingest::tls::TlsFiles>,
    pub cores: usize,
    pub wal_repair: bool,
    pub syslog_tenant: String,
    /// The `[[syslog]]` listeners, beyond the default one.
    pub syslog_listeners: Vec<syslog::SyslogListener>,
    pub auth_enabled: bool,
    pub multi_tenant_queries: bool,
    /// Whether `POST /simulate` is answered (see [`crate::http::demo_routes`]).
    pub enable_simulate: bool,
    /// Every tenant's limits unless the limits file overrides them.
    pub tenant_limits: crate::tenants::limits::TenantLimits,
    pub limits_file: Option<PathBuf>,
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
    pub stream_idle_period: Duration,
    pub partition: Duration,
    pub zstd_level: i32,
    pub seal_zstd_level: i32,
    /// `None`: keep everything.
    pub retention: Option<Duration>,
    /// 0: no cap.
    pub retention_max_bytes: u64,
    /// Per-tenant retention passes, this often.
    pub retention_interval: Duration,
    /// Delete requests are applied to disk this long after they are received.
    pub delete_request_cancel_period: Duration,
    pub compaction_bytes_per_second: u64,
    /// `None`: cold partitions are neither recompressed nor bundled.
    pub compaction_cold_after: Option<Duration>,
    pub heads_bytes_max: u64,
    /// How `memory_max` is shared (the shares above are taken from it).
    pub memory: memory::MemoryBudget,
    pub wal_bytes_max: u64,
    pub core_stall_max: Duration,
    /// `None`: derived from RLIMIT_NOFILE when the server starts
    /// (`crate::http::admission::derive_connections_max`).
    pub connections_max: Option<usize>,
    pub request_bodies_bytes_max: usize,
    /// The ruler's settings and the TOML alerts.
    pub ruler: RulerConfig,
    pub query: QueryLimits,
    /// Where the ruler's alerts, webhook notices and samples go (checked URLs).
    pub outbox: crate::ruler::outbox::OutboxConfig,
}

/// Whether a data dir on tmpfs or ramfs is accepted (`--allow-volatile-data-dir`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VolatilePolicy {
    Refuse,
    Allow,
}

impl Config {
    /// The listeners in words, for the start-up log: `http 0.0.0.0:3100, syslog tcp
    /// 0.0.0.0:5514, syslog udp off`.
    pub fn listen_summary(&self) -> String {
        let show = |a: Option<SocketAddr>| a.map_or("off".to_string(), |a| a.to_string());
        let mut text = format!(
            "http {}, syslog tcp {}, syslog udp {}",
            self.http_addr,
            show(self.syslog_tcp_addr),
            show(self.syslog_udp_addr)
        );
        // The listeners that are off by default are named only when on.
        for (name, at) in [
            ("syslog tls", self.syslog_tls_addr),
            ("relp", self.relp_addr),
            ("relp tls", self.relp_tls_addr),
        ] {
            if let Some(at) = at {
                text.push_str(&format!(", {name} {at}"));
            }
        }
        text
    }
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

/// A list of URLs in the file: a TOML array, or one string of comma-separated URLs as Loki's
/// `alertmanager_url` takes them.
fn url_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Urls {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Urls::deserialize(d)? {
        Urls::One(text) => text
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(String::from)
            .collect(),
        Urls::Many(list) => list,
    })
}

#[cfg(test)]
mod tests;

//! Every default and hard limit of the server in one place, each with why it has its value.

/// Loki's port, so that Grafana and Loki clients need no change but the host.
pub const HTTP_ADDR_DEFAULT: &str = "0.0.0.0:3100";
/// An unprivileged syslog port; production uses 514 with CAP_NET_BIND_SERVICE.
pub const SYSLOG_ADDR_DEFAULT: &str = "0.0.0.0:5514";
pub const DATA_DIR_DEFAULT: &str = "./shardlog-data";

/// More shards than this would only be a configuration mistake on today's machines, and the
/// WAL directory names are formatted for it.
pub const SHARDS_MAX: usize = 1024;

/// RFC 5425 asks receivers to take at least 8 KiB and syslog-ng's default is 64 KiB.
pub const SYSLOG_FRAME_BYTES_MAX_DEFAULT: usize = 64 * 1024;
/// RFC 3164 allows 1024-byte messages and RFC 5424 asks every receiver to take 480 octets:
/// a smaller frame limit would cut ordinary messages.
pub const SYSLOG_FRAME_BYTES_MIN: usize = 480;
/// The upper bound an operator may configure: a frame is held whole in a connection buffer.
pub const SYSLOG_FRAME_BYTES_LIMIT: usize = 16 * 1024 * 1024;

/// Loki's `max_line_size` default is 256 KiB.
pub const LINE_BYTES_MAX_DEFAULT: usize = 256 * 1024;
pub const LINE_BYTES_LIMIT: usize = 16 * 1024 * 1024;

/// Loki's distributor refuses bodies over this after decompression by default.
pub const PUSH_BODY_BYTES_MAX_DEFAULT: usize = 8 * 1024 * 1024;
/// Below 1 KiB not even one stream with a few labels and a short line fits in a push.
pub const PUSH_BODY_BYTES_MIN: usize = 1024;
/// A push is held whole in memory and becomes one WAL record per owner shard, which the WAL
/// bounds at 16 MiB.
pub const PUSH_BODY_BYTES_LIMIT: usize = 12 * 1024 * 1024;

/// About 1 ms: long enough to group the commits of a busy core, short enough that a push
/// acknowledgement is dominated by the fsync itself.
pub const WAL_COMMIT_INTERVAL_DEFAULT: std::time::Duration = std::time::Duration::from_millis(1);
/// A push waits for the tick before its fsync: past a second, clients time out first.
pub const WAL_COMMIT_INTERVAL_LIMIT: std::time::Duration = std::time::Duration::from_secs(1);

/// 64 MiB segments: few files, and a checkpoint can free space in useful steps.
pub const WAL_SEGMENT_BYTES_MAX_DEFAULT: u64 = 64 * 1024 * 1024;
/// Below 1 MiB a busy shard would create and preallocate a new segment file every few
/// commits.
pub const WAL_SEGMENT_BYTES_MIN: u64 = 1 << 20;
/// Each shard preallocates one segment at start: 16 GiB is already more than most disks
/// should give a single file that may be mostly empty.
pub const WAL_SEGMENT_BYTES_LIMIT: u64 = 16 << 30;

/// Per connection; a few group commits' worth, so that a fast sender keeps the WAL busy
/// without holding more than this in memory per connection.
pub const SYSLOG_TCP_UNACKED_BYTES_MAX_DEFAULT: usize = 4 * 1024 * 1024;

/// Absorbs bursts of about 20k datagrams while a core is busy.
pub const SYSLOG_UDP_RECV_BUFFER_BYTES_DEFAULT: usize = 8 * 1024 * 1024;
/// Bounds of the per-socket byte limits above: below 64 KiB (one datagram, a few reads) a
/// socket stalls on every burst; above 1 GiB one connection could hold a core's memory.
pub const SOCKET_BYTES_MIN: usize = 64 * 1024;
pub const SOCKET_BYTES_LIMIT: usize = 1 << 30;

/// Timestamps more than this ahead of the server's clock are clamped to now (Loki's
/// `creation_grace_period` default is 10 minutes).
pub const FUTURE_SKEW_MAX_DEFAULT: std::time::Duration = std::time::Duration::from_secs(600);
/// A year: further ahead is no clock skew but a wrong clock, and the line is clamped anyway.
pub const FUTURE_SKEW_MAX_LIMIT: std::time::Duration = std::time::Duration::from_secs(365 * 86400);

/// A head is sealed at about 1 MiB of lines: one zstd block's worth (see `chunk::part`).
pub const SEAL_BYTES_DEFAULT: usize = 1 << 20;

/// A head is sealed at the latest 5 minutes after its oldest entry arrived, so a restart
/// replays at most a few minutes of WAL.
pub const SEAL_AGE_DEFAULT: std::time::Duration = std::time::Duration::from_secs(300);

/// WAL segment files a core keeps at most by default: 4 GiB, dozens of default segments, far
/// more than a few minutes of heads pin at the ingest rates a core sustains, and small next
/// to a log server's disk. Past it the oldest heads are sealed early.
pub const WAL_BYTES_MAX_DEFAULT: u64 = 4 << 30;
/// Below two default segments (the active one and the spare), sealing early could not bring
/// the log under its bound.
pub const WAL_BYTES_MAX_MIN: u64 = 2 << 20;

/// A core that has not turned for 30 seconds is stuck (a scan or seal step yields every few
/// milliseconds; a loaded machine delays a heartbeat by far less): the process fail-stops.
pub const CORE_STALL_MAX_DEFAULT: std::time::Duration = std::time::Duration::from_secs(30);
/// A second: below, a busy but healthy core could be taken for a stuck one.
pub const CORE_STALL_MAX_MIN: std::time::Duration = std::time::Duration::from_secs(1);
/// An hour: beyond, a stuck server stays half alive too long to be worth waiting for.
pub const CORE_STALL_MAX_LIMIT: std::time::Duration = std::time::Duration::from_secs(3600);

/// One partition per day, as Loki's and VictoriaLogs' daily indexes.
pub const PARTITION_DEFAULT: std::time::Duration = std::time::Duration::from_secs(86400);

/// Compaction reads plus writes at most 64 MiB/s per core by default: a small share of a
/// disk's bandwidth, so ingest and queries keep theirs.
pub const COMPACTION_BYTES_PER_SECOND_DEFAULT: u64 = 64 << 20;

/// Per-tenant retention passes every 10 minutes, as Loki's compactor runs (its
/// `compaction_interval`): a pass reads only part headers unless lines expired.
pub const RETENTION_INTERVAL_DEFAULT: std::time::Duration = std::time::Duration::from_secs(600);

/// Loki's `delete_request_cancel_period`: a day in which a delete request can be cancelled
/// before its lines are removed from disk.
pub const DELETE_REQUEST_CANCEL_PERIOD_DEFAULT: std::time::Duration =
    std::time::Duration::from_secs(86400);
/// Bounds of the per-core byte budgets (heads, compaction): below 1 MiB nothing useful fits
/// (a head seals at up to 1 MiB, a compaction reads whole blocks); 1 TiB is beyond any host.
pub const BUDGET_BYTES_MIN: u64 = 1 << 20;
pub const BUDGET_BYTES_LIMIT: u64 = 1 << 40;

/// Entries one query may return (Loki's `max_entries_limit_per_query` default).
pub const QUERY_ENTRIES_MAX: u32 = 5000;
/// Series one metric query may return (Loki's `max_query_series` default).
pub const QUERY_SERIES_MAX: usize = 500;
/// Loki's `max_query_length` default: 30 days and 1 hour.
pub const QUERY_LENGTH_MAX_DEFAULT: std::time::Duration =
    std::time::Duration::from_secs(721 * 3600);
/// Memory one query's partial states may hold on one core where no server budget applies
/// (the server takes its share of `memory_max` instead, see `super::memory`).
pub const QUERY_MEMORY_BYTES_MAX_DEFAULT: u64 = 512 << 20;
/// Queries one core runs at once by default (Loki's querier `max_concurrent` is 4).
pub const QUERY_CONCURRENCY_DEFAULT: usize = 4;
/// Queries that may wait on one core by default (Loki's
/// `max_outstanding_requests_per_tenant` is 2048).
pub const QUERY_QUEUED_MAX_DEFAULT: usize = 2048;
/// While ingest is busy on a core, queries keep at least this share of it...
pub const QUERY_CPU_SHARE_MIN_DEFAULT: f64 = 0.1;
/// ...and leave this share idle beyond what ingest and sealing use (see `runtime::pacer`).
pub const QUERY_CPU_HEADROOM_DEFAULT: f64 = 0.2;
/// Each tenant's ingestion rate (MiB/s) and burst (MiB) by default: no limit. Loki's
/// defaults (4 and 6) suit a cluster shared by many teams; a single-tenant log firehose, the
/// common case here, would be refused above about 16 k lines a second. Set them to Loki's
/// numbers, or others, when tenants share the server.
pub const INGESTION_RATE_MB_DEFAULT: f64 = 0.0;
pub const INGESTION_BURST_SIZE_MB_DEFAULT: f64 = 6.0;
/// Active streams per tenant by default: no limit, for the same reason as the rate (Loki's
/// 5000 would refuse a fleet's syslog, host by app by level, in a single tenant).
pub const MAX_GLOBAL_STREAMS_PER_USER_DEFAULT: usize = 0;
/// A stream's rate by default: no limit, as for the tenant's rate and stream count. Loki's
/// 3 MB a second (MiB) is sized for a cluster whose streams shard over ingesters; here one
/// stream of a single-tenant firehose (a bulk load, a busy host's app) may rightly go faster,
/// and a refusal would lose it. Set it to Loki's `3MiB` when tenants share the server.
pub const PER_STREAM_RATE_LIMIT_DEFAULT: u64 = 0;
/// The burst once a stream rate is set (Loki's `per_stream_rate_limit_burst`, 15MB).
pub const PER_STREAM_RATE_LIMIT_BURST_DEFAULT: u64 = 15 << 20;
/// How far ahead of the clock a pushed entry may be (Loki's `creation_grace_period`).
pub const CREATION_GRACE_PERIOD_DEFAULT: std::time::Duration = std::time::Duration::from_secs(600);
/// How old a pushed entry may be when `reject_old_samples` is on (Loki's default, a week).
pub const REJECT_OLD_SAMPLES_MAX_AGE_DEFAULT: std::time::Duration =
    std::time::Duration::from_secs(7 * 86400);
/// Loki's defaults for a pushed stream's labels: how many, and the bytes of a name and a value.
pub use crate::ingest::push::{
    LABEL_NAME_BYTES_MAX_DEFAULT as MAX_LABEL_NAME_LENGTH_DEFAULT,
    LABEL_VALUE_BYTES_MAX_DEFAULT as MAX_LABEL_VALUE_LENGTH_DEFAULT,
    LABELS_PER_STREAM_MAX_DEFAULT as MAX_LABEL_NAMES_PER_SERIES_DEFAULT,
};
/// The largest value accepted for a count limit.
pub const COUNT_LIMIT_MAX: usize = 100_000_000;
/// How long a query may run before it is cancelled (Loki's `query_timeout` default 1m).
pub const QUERY_TIMEOUT_SECONDS: u64 = 60;
/// Entries a shard scans between yields, so that ingest on the same core never waits long.
pub const SCAN_ENTRIES_PER_YIELD: usize = 16 * 1024;

/// Bytes of encoded batch a listener gathers per owner before sending it on.
pub const BATCH_BYTES_TARGET: usize = 256 * 1024;

/// Messages waiting in each mesh channel: enough for every connection of a core to have a
/// batch in flight, small enough to push back on senders when an owner falls behind.
pub const MESH_CHANNEL_CAPACITY: usize = 1024;

/// Extra raw bytes an HTTP push body may have over `push_body_bytes_max`: the raw body may be
/// compressed framing around the decoded one, whose own size the decoders check.
pub const PUSH_RAW_BODY_SLACK_BYTES: usize = 1024 * 1024;

/// Bytes that the unfinished requests of one core may hold together (HTTP bodies being read
/// and handled, with what a decoded push holds until it is durable, and syslog frames longer
/// than a connection's first buffer) are a share of `memory_max` (`super::memory`): a flood
/// of large unfinished bodies (300 connections of 9 MiB once took 3 GB) stays within it. A
/// request beyond it is answered 503 with `Retry-After`, before its body is read when its
/// length is declared. At least four times `push_body_bytes_max` (see `resolve`), so that
/// the largest push always fits. At most:
pub const REQUEST_BODIES_BYTES_LIMIT: usize = 1 << 40;

/// Default ceiling of the per-core connection cap (HTTP and syslog TCP together) when it is
/// derived from RLIMIT_NOFILE: each open connection keeps a read buffer (8 KiB for HTTP,
/// 16 KiB for syslog) and a task, so 10,000 idle connections cost about 200 MiB per core.
/// A larger cap can be set explicitly.
pub const CONNECTIONS_MAX_DEFAULT_CEILING: usize = 10_000;
/// The smallest per-core connection cap derived from a low RLIMIT_NOFILE: below it a core
/// could not serve a handful of clients and a scraper; the start-up log then says that the
/// file limit is too low for the data files and the connections together.
pub const CONNECTIONS_MAX_DEFAULT_FLOOR: usize = 64;
/// The largest explicit per-core connection cap: beyond this the idle buffers alone would
/// take gigabytes per core.
pub const CONNECTIONS_MAX_LIMIT: usize = 1_000_000;

/// File descriptors kept per core for its data files when the connection cap is derived:
/// the WAL segment being written and the next one preallocated, one descriptor per part file
/// it serves (compaction keeps a daily partition to about 8 parts per shard, so 1024 covers
/// some 120 days of retention with room for a compaction's inputs and outputs), manifest
/// replacements, and the core's io_uring rings and mesh channels.
pub const DATA_FDS_RESERVED_PER_CORE: u64 = 1024;
/// File descriptors kept for the process as a whole: stdio, the data-dir lock, the signal
/// thread, `/proc` reads.
pub const PROCESS_FDS_RESERVED: u64 = 64;

/// Bounds of `notify_timeout`: below a millisecond no peer answers; above ten minutes a dead
/// Alertmanager would hold every later notification for that long (one thread sends them).
pub const NOTIFY_TIMEOUT_MIN: std::time::Duration = std::time::Duration::from_millis(1);
pub const NOTIFY_TIMEOUT_MAX: std::time::Duration = std::time::Duration::from_secs(600);

//! The command line of `shardlog bench` ([`BenchArgs`]) and its validation into a [`Plan`]:
//! every option checked against a named limit, with a message that says what was given and
//! what is allowed.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

use super::BenchError;
use super::lines::LineCorpus;

/// A run with neither `--duration` nor `--count` stops after this long: every run is
/// bounded, and 10 s is enough for the throughput to settle on a small machine.
pub const DURATION_DEFAULT: Duration = Duration::from_secs(10);
/// The longest run one invocation may ask for: a day. Longer soaks are a series of runs.
pub const DURATION_MAX: Duration = Duration::from_secs(24 * 3600);
/// Sender threads (connections, sockets or query workers) per source. Each is an OS thread
/// with a blocking socket; beyond a few hundred the client measures its own scheduler.
pub const CONNECTIONS_MAX: usize = 512;
/// Lines per push request or per syslog write. 100k lines of ~200 bytes is ~20 MB, more
/// than the server's default push body limit (8 MiB): a larger batch could only be refused.
pub const BATCH_LINES_MAX: usize = 100_000;
/// Distinct label sets per run; each stream is a series in the server's index. A million
/// is far beyond any single-node Loki's active-stream limit.
pub const STREAMS_MAX: usize = 1_000_000;
/// Rounds of `--compare`: each round runs both servers once for the whole duration.
pub const ROUNDS_MAX: usize = 20;
/// Default streams per run: a handful per template, like a small fleet of services.
pub const STREAMS_DEFAULT: usize = 8;
/// Default lines per push request / syslog write: what Promtail and Alloy send per batch
/// under load (their 1 MiB batch holds about this many ordinary lines).
pub const BATCH_LINES_DEFAULT: usize = 1000;

/// What traffic to send.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// Syslog over TCP, one thread per connection.
    SyslogTcp,
    /// Syslog over UDP, one thread per sender socket.
    SyslogUdp,
    /// Loki pushes over HTTP/1.1 keep-alive connections, one request in flight per connection.
    Push,
    /// Queries of every kind while a background push ingest runs.
    Query,
    /// Push, syslog TCP and queries at once.
    Mixed,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::SyslogTcp => "syslog-tcp",
            Scenario::SyslogUdp => "syslog-udp",
            Scenario::Push => "push",
            Scenario::Query => "query",
            Scenario::Mixed => "mixed",
        }
    }

    /// Connections when none are given: enough to keep both cores of a small machine busy.
    fn connections_default(self) -> usize {
        match self {
            Scenario::SyslogTcp | Scenario::SyslogUdp | Scenario::Push => 4,
            Scenario::Query | Scenario::Mixed => 2,
        }
    }
}

/// Push body encoding.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// `application/json`, as curl and simple clients send.
    Json,
    /// `application/x-protobuf` with raw snappy, as Promtail, Alloy and the Docker driver send.
    Protobuf,
    /// OTLP/HTTP protobuf to `/otlp/v1/logs`, as the OpenTelemetry collector exports: each
    /// stream a resource whose `service.namespace` is the run id (label `service_namespace`).
    Otlp,
}

/// Syslog message grammar.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyslogFormat {
    Rfc5424,
    Rfc3164,
}

/// Syslog TCP framing (RFC 6587).
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// `LEN SP MSG`, what RFC 5425 senders and `loggen -P` use.
    Octet,
    /// `MSG LF`, the traditional form.
    Newline,
}

/// What `--compare` runs against.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompareWith {
    /// syslog-ng relaying to a file.
    SyslogNg,
}

/// Flags of `shardlog bench`.
#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// What traffic to send.
    #[arg(value_enum)]
    pub scenario: Scenario,

    /// Start a `shardlog serve` of this binary on loopback with a fresh data dir.
    #[arg(long)]
    pub spawn: bool,

    /// HTTP address of an existing server (ignored with --spawn).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:3100")]
    pub http_addr: String,

    /// Syslog address (TCP and UDP) of an existing server (ignored with --spawn).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:5514")]
    pub syslog_addr: String,

    /// Tenant of pushes and queries (X-Scope-OrgID); syslog lines go to the server's
    /// syslog tenant, which must be the same for verification to see them.
    #[arg(long, value_name = "TENANT", default_value = "fake")]
    pub tenant: String,

    /// How long to send, e.g. 30s, 2m, 500ms (default 10s when --count is not given).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub duration: Option<Duration>,

    /// How many lines to send in total; with --duration, whichever comes first.
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,

    /// Connections (TCP), sender sockets (UDP) or query workers (default 4, or 2 for query
    /// and mixed).
    #[arg(long, value_name = "N")]
    pub connections: Option<usize>,

    /// Total lines per second over all senders (token bucket); unlimited when not given.
    #[arg(long, value_name = "LINES_PER_SEC")]
    pub rate: Option<u64>,

    /// Replay these log files (one line per entry, cycled) instead of generated lines.
    #[arg(long, value_name = "FILE", num_args = 1..)]
    pub lines: Vec<PathBuf>,

    /// Distinct label sets (streams) the run writes.
    #[arg(long, value_name = "N", default_value_t = STREAMS_DEFAULT)]
    pub streams: usize,

    /// Lines per push request, or per syslog TCP write.
    #[arg(long, value_name = "N", default_value_t = BATCH_LINES_DEFAULT)]
    pub batch: usize,

    /// Push body encoding.
    #[arg(long, value_enum, default_value = "protobuf")]
    pub encoding: Encoding,

    /// Syslog message grammar.
    #[arg(long, value_enum, default_value = "rfc5424")]
    pub syslog_format: SyslogFormat,

    /// Syslog TCP framing (default: octet for RFC 5424, newline for RFC 3164).
    #[arg(long, value_enum)]
    pub framing: Option<Framing>,

    /// Cores of the spawned server (default: all online CPUs).
    #[arg(long, value_name = "N")]
    pub cores: Option<usize>,

    /// CPUs the spawned server (and syslog-ng) may run on, e.g. 0 or 0-1 or 0,2.
    #[arg(long, value_name = "LIST", value_parser = parse_cpu_list_arg)]
    pub server_cpus: Option<CpuList>,

    /// CPUs the harness itself runs on.
    #[arg(long, value_name = "LIST", value_parser = parse_cpu_list_arg)]
    pub client_cpus: Option<CpuList>,

    /// Report directory (default target/bench-report/<timestamp>/).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// Also run the same syslog load against another server, alternating, and compare.
    #[arg(long, value_enum)]
    pub compare: Option<CompareWith>,

    /// Rounds of --compare (each round runs both servers once).
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub rounds: usize,

    /// Keep the spawned server's data directory after the run (it is removed by default).
    #[arg(long)]
    pub keep_data: bool,
}

/// A list of CPU numbers as one flag value (`0-1,3`), sorted and deduplicated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpuList(pub Vec<usize>);

fn parse_cpu_list_arg(text: &str) -> Result<CpuList, String> {
    parse_cpu_list(text).map(CpuList)
}

/// Where the traffic goes: resolved socket addresses.
#[derive(Clone, Copy, Debug)]
pub struct Endpoints {
    pub http: SocketAddr,
    pub syslog_tcp: SocketAddr,
    pub syslog_udp: SocketAddr,
}

/// The validated options of one invocation.
#[derive(Clone, Debug)]
pub struct Plan {
    pub scenario: Scenario,
    pub spawn: bool,
    pub external: Option<Endpoints>,
    pub tenant: String,
    pub duration: Duration,
    pub count: Option<u64>,
    pub connections: usize,
    pub rate: Option<u64>,
    pub corpus: LineCorpus,
    pub line_files: Vec<PathBuf>,
    pub streams: usize,
    pub batch: usize,
    pub encoding: Encoding,
    pub syslog_format: SyslogFormat,
    pub framing: Framing,
    pub cores: Option<usize>,
    pub server_cpus: Option<Vec<usize>>,
    pub client_cpus: Option<Vec<usize>>,
    pub out: Option<PathBuf>,
    pub compare: Option<CompareWith>,
    pub rounds: usize,
    pub keep_data: bool,
}

impl Plan {
    pub fn from_args(a: BenchArgs) -> Result<Plan, BenchError> {
        let connections = a
            .connections
            .unwrap_or_else(|| a.scenario.connections_default());
        in_range("--connections", connections, 1, CONNECTIONS_MAX)?;
        in_range("--batch", a.batch, 1, BATCH_LINES_MAX)?;
        in_range("--streams", a.streams, 1, STREAMS_MAX)?;
        in_range("--rounds", a.rounds, 1, ROUNDS_MAX)?;
        if a.count == Some(0) {
            return Err(BenchError::new("--count must be at least 1"));
        }
        if a.rate == Some(0) {
            return Err(BenchError::new(
                "--rate must be at least 1 line/s (leave it out for unlimited)",
            ));
        }
        if let Some(d) = a.duration
            && (d.is_zero() || d > DURATION_MAX)
        {
            return Err(BenchError::new(format!(
                "--duration {d:?} is out of range: give between 1ms and {}h",
                DURATION_MAX.as_secs() / 3600
            )));
        }
        let duration = match (a.duration, a.count) {
            (Some(d), _) => d,
            // A count alone is still bounded in time, by the longest allowed run.
            (None, Some(_)) => DURATION_MAX,
            (None, None) => DURATION_DEFAULT,
        };
        if a.compare.is_some() && a.scenario != Scenario::SyslogTcp {
            return Err(BenchError::new(format!(
                "--compare syslog-ng compares syslog TCP relaying; it needs the syslog-tcp scenario, not {}",
                a.scenario.name()
            )));
        }
        if a.compare.is_some() && !a.spawn {
            return Err(BenchError::new(
                "--compare needs --spawn: both servers must run on the same machine under the same conditions",
            ));
        }
        if !a.spawn && (a.server_cpus.is_some() || a.cores.is_some()) {
            return Err(BenchError::new(
                "--server-cpus and --cores apply to a spawned server: add --spawn",
            ));
        }
        let server_cpus = a.server_cpus.map(|l| l.0);
        let client_cpus = a.client_cpus.map(|l| l.0);
        let online = online_cpus();
        for (flag, cpus) in [
            ("--server-cpus", &server_cpus),
            ("--client-cpus", &client_cpus),
        ] {
            if let Some(list) = cpus
                && let Some(bad) = list.iter().find(|c| **c >= online)
            {
                return Err(BenchError::new(format!(
                    "{flag}: CPU {bad} does not exist (this machine has CPUs 0-{})",
                    online - 1
                )));
            }
        }
        if let Some(c) = a.cores {
            in_range("--cores", c, 1, crate::config::SHARDS_MAX)?;
        }
        let external = if a.spawn {
            None
        } else {
            let syslog = resolve("--syslog-addr", &a.syslog_addr)?;
            Some(Endpoints {
                http: resolve("--http-addr", &a.http_addr)?,
                syslog_tcp: syslog,
                syslog_udp: syslog,
            })
        };
        crate::model::validate_tenant(&a.tenant)
            .map_err(|e| BenchError::new(format!("--tenant: {e}")))?;
        if a.encoding == Encoding::Otlp && a.scenario != Scenario::Push {
            // The query scenario's selectors and the mixed scenario's verification name the
            // Loki push labels (`bench_run`, `service`), which OTLP resources do not carry.
            return Err(BenchError::new(
                "--encoding otlp: only the push scenario sends OTLP (query and mixed push Loki \
                 pushes)",
            ));
        }
        let corpus = LineCorpus::load(&a.lines)?;
        let framing = a.framing.unwrap_or(match a.syslog_format {
            SyslogFormat::Rfc5424 => Framing::Octet,
            SyslogFormat::Rfc3164 => Framing::Newline,
        });
        Ok(Plan {
            scenario: a.scenario,
            spawn: a.spawn,
            external,
            tenant: a.tenant,
            duration,
            count: a.count,
            connections,
            rate: a.rate,
            corpus,
            line_files: a.lines,
            streams: a.streams,
            batch: a.batch,
            encoding: a.encoding,
            syslog_format: a.syslog_format,
            framing,
            cores: a.cores,
            server_cpus,
            client_cpus,
            out: a.out,
            compare: a.compare,
            rounds: a.rounds,
            keep_data: a.keep_data,
        })
    }
}

fn in_range(flag: &str, value: usize, min: usize, max: usize) -> Result<(), BenchError> {
    if value < min || value > max {
        return Err(BenchError::new(format!(
            "{flag} {value} is out of range: give between {min} and {max}"
        )));
    }
    Ok(())
}

fn resolve(flag: &str, addr: &str) -> Result<SocketAddr, BenchError> {
    addr.to_socket_addrs()
        .map_err(|e| BenchError::new(format!("{flag} {addr:?}: {e}")))?
        .next()
        .ok_or_else(|| BenchError::new(format!("{flag} {addr:?} resolves to no address")))
}

/// CPUs the kernel has online (the highest CPU number + 1 of `/sys/.../online`, or what the
/// standard library sees when sysfs is not there).
pub fn online_cpus() -> usize {
    std::fs::read_to_string("/sys/devices/system/cpu/online")
        .ok()
        .and_then(|s| parse_cpu_list(s.trim()).ok())
        .and_then(|l| l.iter().max().map(|m| m + 1))
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Parses `30s`, `2m`, `500ms`, `1h`, `1.5s`; a bare number is seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration: write e.g. 30s, 2m, 500ms"))?;
    let seconds_per_unit = match unit {
        "" | "s" => 1.0,
        "ms" => 0.001,
        "m" => 60.0,
        "h" => 3600.0,
        _ => {
            return Err(format!(
                "{text:?}: unknown unit {unit:?} (use ms, s, m or h)"
            ));
        }
    };
    let seconds = value * seconds_per_unit;
    if !seconds.is_finite() || seconds < 0.0 || seconds > DURATION_MAX.as_secs_f64() {
        return Err(format!("{text:?} is out of range"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// The largest CPU number a list may name; Linux's `NR_CPUS` is at most 8192.
const CPU_NUMBER_MAX: usize = 8191;

/// Parses a CPU list as `taskset -c` takes it: `0`, `0-3`, `0,2,4-5`. Sorted, deduplicated.
pub fn parse_cpu_list(text: &str) -> Result<Vec<usize>, String> {
    let mut cpus = Vec::new();
    for part in text.split(',').map(str::trim) {
        let number = |s: &str| -> Result<usize, String> {
            s.trim()
                .parse::<usize>()
                .ok()
                .filter(|n| *n <= CPU_NUMBER_MAX)
                .ok_or_else(|| format!("{text:?} is not a CPU list like 0 or 0-3 or 0,2"))
        };
        match part.split_once('-') {
            Some((lo, hi)) => {
                let (lo, hi) = (number(lo)?, number(hi)?);
                if lo > hi {
                    return Err(format!("{text:?}: range {lo}-{hi} is backwards"));
                }
                cpus.extend(lo..=hi);
            }
            None => cpus.push(number(part)?),
        }
    }
    cpus.sort_unstable();
    cpus.dedup();
    Ok(cpus)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(clap::Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        args: BenchArgs,
    }

    fn parse(argv: &[&str]) -> Result<BenchArgs, String> {
        use clap::Parser;
        Cli::try_parse_from(std::iter::once("bench").chain(argv.iter().copied()))
            .map(|c| c.args)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn command_line_parses_into_a_plan() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        let a = parse(&[
            "syslog-tcp",
            "--spawn",
            "--server-cpus",
            "0",
            "--client-cpus",
            "0-1",
            "--duration",
            "2s",
            "--connections",
            "3",
            "--framing",
            "newline",
        ])
        .unwrap();
        assert_eq!(a.server_cpus, Some(CpuList(vec![0])));
        let plan = Plan::from_args(a).unwrap();
        assert_eq!(plan.duration, Duration::from_secs(2));
        assert_eq!(plan.connections, 3);
        assert_eq!(plan.framing, Framing::Newline);
        assert_eq!(plan.client_cpus, Some(vec![0, 1]));

        let plan = Plan::from_args(parse(&["push", "--count", "5"]).unwrap()).unwrap();
        assert_eq!(plan.count, Some(5));
        assert!(
            plan.external.is_some(),
            "without --spawn the default addresses are targeted"
        );
        assert_eq!(plan.framing, Framing::Octet);
    }

    #[test]
    fn bad_plans_say_why() {
        let err = |argv: &[&str]| {
            Plan::from_args(parse(argv).unwrap())
                .unwrap_err()
                .to_string()
        };
        assert!(err(&["push", "--count", "0"]).contains("--count"));
        assert!(err(&["push", "--connections", "0"]).contains("--connections 0 is out of range"));
        assert!(err(&["push", "--spawn", "--compare", "syslog-ng"]).contains("syslog-tcp"));
        assert!(err(&["syslog-tcp", "--compare", "syslog-ng"]).contains("--spawn"));
        assert!(err(&["push", "--server-cpus", "0"]).contains("--spawn"));
        assert!(err(&["push", "--spawn", "--server-cpus", "4000"]).contains("does not exist"));
        assert!(
            err(&["push", "--lines", "/nonexistent/file.log"]).contains("/nonexistent/file.log")
        );
        assert!(parse(&["push", "--duration", "soon"]).is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("10 parsecs").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("1000000h").is_err());
    }

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0"), Ok(vec![0]));
        assert_eq!(parse_cpu_list("3,0-1,1"), Ok(vec![0, 1, 3]));
        assert!(parse_cpu_list("1-0").is_err());
        assert!(parse_cpu_list("a").is_err());
        assert!(parse_cpu_list("").is_err());
        assert!(parse_cpu_list("99999").is_err());
    }
}

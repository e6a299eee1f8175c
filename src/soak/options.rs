//! The command line of `shardlog soak` ([`SoakArgs`]) and its validation into a [`Plan`]:
//! every option checked against a named limit, with a message that says what was given and
//! what is allowed.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::SoakError;
use super::server::{PROFILES, Profile};
use crate::bench::options::{online_cpus, parse_duration};

/// Where the real log lines come from unless `--corpus` says otherwise, relative to the
/// directory the soak runs in (the repository root under `make soak`). The one place that
/// names the corpus: tests and the Makefile take it from here.
pub const CORPUS_DIR_DEFAULT: &str = "testdata/loghub";
/// A soak with no `--duration` runs this long: long enough for several kill and restart
/// cycles, compactions and retention passes, short enough to run before a merge.
pub const DURATION_DEFAULT: &str = "10m";
/// The longest soak one invocation may ask for: a day (longer soaks are a series of runs;
/// the retention window the soak sets grows with the duration, see [`Plan::retention`]).
pub const DURATION_MAX: Duration = Duration::from_secs(24 * 3600);
/// The shortest soak: enough for the server to start, take traffic and be verified once.
pub const DURATION_MIN: Duration = Duration::from_secs(5);
/// Lines per second over every sender when `--rate` is not given: enough to keep heads
/// sealing, parts compacting and queries yielding mid-scan, while leaving most of a shared
/// 2-core machine to its other users (the server takes well under a core at this rate).
pub const RATE_DEFAULT: u64 = 20_000;
/// The highest `--rate`: the verification reads every line back, and a soak is not a
/// throughput benchmark (`shardlog bench` is).
pub const RATE_MAX: u64 = 1_000_000;
/// The lowest `--rate`: every lane needs a share of at least a few lines per second.
pub const RATE_MIN: u64 = 100;
/// The default window in which each incarnation of the server is stopped (kill -9 or
/// SIGTERM): long enough for seals, compactions and retention passes to happen in between.
pub const RESTART_MIN_DEFAULT: &str = "20s";
pub const RESTART_MAX_DEFAULT: &str = "60s";
/// The shortest life an incarnation may be given: start-up, replay and `/ready` take about
/// a second, and a server killed before it took traffic tests only start-up.
pub const RESTART_INTERVAL_MIN: Duration = Duration::from_secs(2);
/// Query workers by default: enough to keep a query running during most seal rounds.
pub const QUERY_WORKERS_DEFAULT: usize = 4;
/// More query workers than this measure the client's scheduler, not the server.
pub const QUERY_WORKERS_MAX: usize = 64;
/// Streams the small-batch lanes spread their lines over by default ("many streams").
pub const STREAMS_DEFAULT: usize = 200;
/// Each stream is a label set in the server's index and a head in its memory.
pub const STREAMS_MAX: usize = 100_000;
/// Shards of the spawned server by default: two, so that pushes span shards and queries
/// fan out, on the 2-core machines the project runs on.
pub const CORES_DEFAULT: usize = 2;

/// Flags of `shardlog soak`.
#[derive(Args, Debug, Clone)]
pub struct SoakArgs {
    /// How long to run the load, e.g. 2m, 30m (the final verification comes after it).
    #[arg(long, value_name = "DURATION", default_value = DURATION_DEFAULT, value_parser = parse_duration)]
    pub duration: Duration,

    /// Seed of every random choice (kill moments, stop kinds, server settings, batch sizes,
    /// streams); printed at the start. Timing still varies between runs with one seed.
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,

    /// Lines per second over all senders (token buckets, split between the lanes).
    #[arg(long, value_name = "LINES_PER_SEC", default_value_t = RATE_DEFAULT)]
    pub rate: u64,

    /// Shortest life of one server incarnation before it is killed or stopped.
    #[arg(long, value_name = "DURATION", default_value = RESTART_MIN_DEFAULT, value_parser = parse_duration)]
    pub restart_min: Duration,

    /// Longest life of one server incarnation before it is killed or stopped.
    #[arg(long, value_name = "DURATION", default_value = RESTART_MAX_DEFAULT, value_parser = parse_duration)]
    pub restart_max: Duration,

    /// Cores (shards) of the spawned server (default 2, or 1 on a 1-CPU machine).
    #[arg(long, value_name = "N")]
    pub cores: Option<usize>,

    /// The `shardlog` binary to soak (default: this one).
    #[arg(long, value_name = "FILE")]
    pub server: Option<PathBuf>,

    /// Directory of `*.log` files whose lines the soak sends (default
    /// testdata/loghub; generated lines when that default is missing).
    #[arg(long, value_name = "DIR")]
    pub corpus: Option<PathBuf>,

    /// Where the data dir, the server logs and the summary go (default
    /// target/soak/<timestamp>/).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// Query workers running at the same time as the ingest.
    #[arg(long, value_name = "N", default_value_t = QUERY_WORKERS_DEFAULT)]
    pub query_workers: usize,

    /// Streams the small-batch pushes spread over.
    #[arg(long, value_name = "N", default_value_t = STREAMS_DEFAULT)]
    pub streams: usize,

    /// After a crash, keep the evidence, restart and go on until the duration is over
    /// (default: stop the load at the first crash and verify).
    #[arg(long)]
    pub keep_going: bool,

    /// Keep the data dir of a passing run (a failing run always keeps it).
    #[arg(long)]
    pub keep_data: bool,

    /// Give incarnations only these server settings (repeatable; default all of
    /// tiny-parts, large-heads, huge-heads, heads-budget).
    #[arg(long = "profile", value_name = "NAME")]
    pub profiles: Vec<String>,
}

/// The validated options of one soak.
#[derive(Clone, Debug)]
pub struct Plan {
    pub duration: Duration,
    pub seed: u64,
    pub rate: u64,
    pub restart_min: Duration,
    pub restart_max: Duration,
    pub cores: usize,
    pub server: PathBuf,
    /// `None`: the default directory, which may be missing (generated lines then).
    pub corpus: Option<PathBuf>,
    pub out: PathBuf,
    pub query_workers: usize,
    pub streams: usize,
    pub keep_going: bool,
    pub keep_data: bool,
    /// The server settings incarnations are given one of at random.
    pub profiles: Vec<Profile>,
}

impl Plan {
    pub fn from_args(args: SoakArgs) -> Result<Plan, SoakError> {
        if args.duration < DURATION_MIN || args.duration > DURATION_MAX {
            return Err(SoakError::new(format!(
                "--duration {:?} is outside {DURATION_MIN:?}..={DURATION_MAX:?}",
                args.duration
            )));
        }
        if !(RATE_MIN..=RATE_MAX).contains(&args.rate) {
            return Err(SoakError::new(format!(
                "--rate {} is outside {RATE_MIN}..={RATE_MAX} lines per second",
                args.rate
            )));
        }
        if args.restart_min < RESTART_INTERVAL_MIN {
            return Err(SoakError::new(format!(
                "--restart-min {:?} is below {RESTART_INTERVAL_MIN:?}: an incarnation needs time to start and take traffic",
                args.restart_min
            )));
        }
        if args.restart_max < args.restart_min {
            return Err(SoakError::new(format!(
                "--restart-max {:?} is below --restart-min {:?}",
                args.restart_max, args.restart_min
            )));
        }
        let online = online_cpus();
        let cores = args.cores.unwrap_or(CORES_DEFAULT.min(online));
        if cores == 0 || cores > online {
            return Err(SoakError::new(format!(
                "--cores {cores}: between 1 and the {online} online CPUs"
            )));
        }
        if args.query_workers > QUERY_WORKERS_MAX {
            return Err(SoakError::new(format!(
                "--query-workers {} is more than {QUERY_WORKERS_MAX}",
                args.query_workers
            )));
        }
        if args.streams == 0 || args.streams > STREAMS_MAX {
            return Err(SoakError::new(format!(
                "--streams {} is outside 1..={STREAMS_MAX}",
                args.streams
            )));
        }
        let server = match args.server {
            Some(p) => p,
            None => std::env::current_exe()
                .map_err(|e| SoakError::new(format!("cannot find this binary to spawn it: {e}")))?,
        };
        if !server.is_file() {
            return Err(SoakError::new(format!(
                "--server {}: no such file",
                server.display()
            )));
        }
        let mut profiles = Vec::new();
        for name in &args.profiles {
            match PROFILES.iter().find(|p| p.name == name) {
                Some(p) => profiles.push(*p),
                None => {
                    let known: Vec<&str> = PROFILES.iter().map(|p| p.name).collect();
                    return Err(SoakError::new(format!(
                        "--profile {name}: not one of {}",
                        known.join(", ")
                    )));
                }
            }
        }
        if profiles.is_empty() {
            profiles = PROFILES.to_vec();
        }
        let seed = args.seed.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
        let out = match args.out {
            Some(d) => d,
            None => default_out_dir(),
        };
        std::fs::create_dir_all(&out)
            .map_err(|e| SoakError::new(format!("create {}: {e}", out.display())))?;
        // Absolute, so that the paths printed and handed to the server do not depend on a
        // working directory.
        let out = std::path::absolute(&out)
            .map_err(|e| SoakError::new(format!("resolve {}: {e}", out.display())))?;
        Ok(Plan {
            duration: args.duration,
            seed,
            rate: args.rate,
            restart_min: args.restart_min,
            restart_max: args.restart_max,
            cores,
            server,
            corpus: args.corpus,
            out,
            query_workers: args.query_workers,
            streams: args.streams,
            keep_going: args.keep_going,
            keep_data: args.keep_data,
            profiles,
        })
    }

    /// The server's `--retention`: whole hours, at least an hour more than the soak lasts,
    /// so that retention never drops a line of the current run (their partitions always
    /// hold a line younger than the window), while the old-timestamp lane writes lines
    /// older than it, which retention drops during the run.
    pub fn retention(&self) -> Duration {
        let hours = self.duration.as_secs().div_ceil(3600) + 1;
        Duration::from_secs(hours * 3600)
    }
}

/// `target/soak/<UTC timestamp>` (under `CARGO_TARGET_DIR` if set), made unique.
fn default_out_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target"));
    let stamp = crate::bench::stamp(time::OffsetDateTime::now_utc());
    let base = target.join("soak").join(stamp);
    let mut dir = base.clone();
    let mut n = 2;
    while dir.exists() {
        dir = PathBuf::from(format!("{}-{n}", base.display()));
        n += 1;
    }
    dir
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: SoakArgs,
    }

    fn plan(extra: &[&str]) -> Result<Plan, SoakError> {
        let out = tempfile::tempdir().unwrap();
        let mut argv = vec!["soak", "--out", out.path().to_str().unwrap()];
        argv.extend_from_slice(extra);
        Plan::from_args(Cli::try_parse_from(argv).unwrap().args)
    }

    #[test]
    fn defaults_and_limits() {
        let p = plan(&["--seed", "7"]).unwrap();
        assert_eq!(p.duration, Duration::from_secs(600));
        assert_eq!(p.seed, 7);
        assert_eq!(p.retention(), Duration::from_secs(2 * 3600));
        assert!(
            plan(&["--duration", "1s"])
                .unwrap_err()
                .0
                .contains("--duration")
        );
        assert!(plan(&["--rate", "5"]).unwrap_err().0.contains("--rate"));
        let e = plan(&["--restart-min", "30s", "--restart-max", "10s"]).unwrap_err();
        assert!(e.0.contains("--restart-max"), "{e}");
        assert!(
            plan(&["--restart-min", "1s"])
                .unwrap_err()
                .0
                .contains("below")
        );
        assert!(
            plan(&["--streams", "0"])
                .unwrap_err()
                .0
                .contains("--streams")
        );
        assert_eq!(p.profiles.len(), PROFILES.len());
        let p = plan(&["--profile", "huge-heads", "--profile", "tiny-parts"]).unwrap();
        let names: Vec<&str> = p.profiles.iter().map(|p| p.name).collect();
        assert_eq!(names, ["huge-heads", "tiny-parts"]);
        let e = plan(&["--profile", "nope"]).unwrap_err();
        assert!(
            e.0.contains("not one of") && e.0.contains("huge-heads"),
            "{e}"
        );
        assert!(
            plan(&["--server", "/nonexistent/shardlog"])
                .unwrap_err()
                .0
                .contains("no such file")
        );
    }

    #[test]
    fn retention_outlasts_the_run() {
        let mut p = plan(&["--seed", "1"]).unwrap();
        for (secs, hours) in [(5, 2), (3600, 2), (3601, 3), (86400, 25)] {
            p.duration = Duration::from_secs(secs);
            assert_eq!(p.retention(), Duration::from_secs(hours * 3600), "{secs}");
            assert!(p.retention() >= p.duration + Duration::from_secs(3600));
        }
    }
}

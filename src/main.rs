//! The `shardlog` command: `shardlog serve` runs the server, `shardlog agent` ships log files
//! to one.

use std::time::{Duration, Instant};

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use shardlog::config::ServeArgs;
use shardlog::config::help::show_defaults;
use shardlog::config::units::duration_text;

#[derive(Parser)]
#[command(
    name = "shardlog",
    version,
    about = "A thread-per-core log aggregation server: syslog and Loki push in, LogQL out."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (every key of the TOML file is also a flag).
    Serve(Box<ServeArgs>),
    /// Drive a server with real traffic and write a report (see `shardlog bench --help`).
    Bench(Box<shardlog::bench::BenchArgs>),
    /// Check the host and the data directory, and say what to fix.
    Doctor(Box<shardlog::doctor::DoctorArgs>),
    /// Run a server under mixed load with kills and restarts, and check every line (see
    /// `shardlog soak --help`).
    Soak(Box<shardlog::soak::SoakArgs>),
    /// Ship log files to a Loki-compatible server: tail, follow rotations, push (see
    /// docs/agent.md).
    Agent(shardlog::agent::AgentArgs),
}

/// Exit status of a server that refused to start: a bad key, a data dir or an address it
/// cannot have. Status 1 is left for a server that started and then failed.
const EXIT_REFUSED: i32 = 2;

fn main() {
    // `serve` and `doctor` take the same keys; both show their defaults in `--help`.
    let command = Cli::command()
        .mut_subcommand("serve", show_defaults)
        .mut_subcommand("doctor", show_defaults);
    let cli = Cli::from_arg_matches(&command.get_matches()).unwrap_or_else(|e| e.exit());
    match cli.command {
        Command::Serve(args) => std::process::exit(serve(*args)),
        Command::Bench(args) => std::process::exit(shardlog::bench::run(*args)),
        Command::Doctor(args) => std::process::exit(shardlog::doctor::run(*args)),
        Command::Soak(args) => std::process::exit(shardlog::soak::run(*args)),
        Command::Agent(args) => std::process::exit(shardlog::agent::run(args)),
    }
}

/// Resolves the configuration, claims the data dir and the addresses, runs the server;
/// returns the exit status.
fn serve(args: ServeArgs) -> i32 {
    let started = Instant::now();
    shardlog::runtime::allocator::configure();
    let online = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut config = match args.load().and_then(|a| a.resolve(online)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("shardlog: {e}");
            return EXIT_REFUSED;
        }
    };
    let lock = match shardlog::preflight::claim(&mut config) {
        Ok(lock) => lock,
        Err(e) => {
            eprintln!("shardlog: {e}");
            return EXIT_REFUSED;
        }
    };
    eprintln!(
        "shardlog: starting {} core(s) as process {}, data in {}",
        config.cores,
        std::process::id(),
        config.data_dir.display()
    );
    let code = shardlog::runtime::run(config);
    // Released only now: the executors have closed their WALs.
    drop(lock);
    if code == 0 {
        eprintln!(
            "shardlog: stopped cleanly after {}",
            uptime_text(started.elapsed())
        );
    }
    code
}

/// `12.3 s` under a minute, `1h2m3s` beyond.
fn uptime_text(d: Duration) -> String {
    if d < Duration::from_secs(60) {
        format!("{:.1} s", d.as_secs_f64())
    } else {
        duration_text(Duration::from_secs(d.as_secs()))
    }
}

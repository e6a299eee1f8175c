//! The `shardlog` command: `shardlog serve` runs the server.

use clap::{Parser, Subcommand};
use shardlog::config::ServeArgs;

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
}

fn main() {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            let online = std::thread::available_parallelism().map_or(1, |n| n.get());
            let mut config = match (*args).load().and_then(|a| a.resolve(online)) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("shardlog: {e}");
                    std::process::exit(2);
                }
            };
            if let Err(e) = std::fs::create_dir_all(&config.data_dir) {
                eprintln!(
                    "shardlog: cannot create data_dir {}: {e}",
                    config.data_dir.display()
                );
                std::process::exit(2);
            }
            // An absolute path from here on: the WAL opens files relative to directories it
            // holds open, and messages should name the real place.
            match std::fs::canonicalize(&config.data_dir) {
                Ok(dir) => config.data_dir = dir,
                Err(e) => {
                    eprintln!(
                        "shardlog: cannot resolve data_dir {}: {e}",
                        config.data_dir.display()
                    );
                    std::process::exit(2);
                }
            }
            eprintln!(
                "shardlog: serving on http {} syslog tcp {:?} udp {:?}, {} cores, data in {}",
                config.http_addr,
                config.syslog_tcp_addr,
                config.syslog_udp_addr,
                config.cores,
                config.data_dir.display()
            );
            std::process::exit(shardlog::runtime::run(config));
        }
        Command::Bench(args) => std::process::exit(shardlog::bench::run(*args)),
        Command::Doctor(args) => std::process::exit(shardlog::doctor::run(*args)),
        Command::Soak(args) => std::process::exit(shardlog::soak::run(*args)),
    }
}

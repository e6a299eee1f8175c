//! placeholder: the benchmark harness (`shardlog bench`).
use clap::Args;

/// Flags of `shardlog bench`.
#[derive(Args, Debug, Clone)]
pub struct BenchArgs {}

/// Runs the harness; returns the process exit code.
pub fn run(_args: BenchArgs) -> i32 {
    eprintln!("shardlog bench: not built yet");
    2
}

//! placeholder: host checks (`shardlog doctor`).
use clap::Args;

/// Flags of `shardlog doctor`.
#[derive(Args, Debug, Clone)]
pub struct DoctorArgs {}

/// Runs the checks; returns the process exit code.
pub fn run(_args: DoctorArgs) -> i32 {
    eprintln!("shardlog doctor: not built yet");
    2
}

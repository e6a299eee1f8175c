//! Host checks (`shardlog doctor`): can `shardlog serve` run here with this configuration,
//! and what should be fixed first?
//!
//! Which question it answers: "will the server start, keep what it acknowledges, and run as
//! fast as the hardware allows on this host?" It takes exactly the flags and TOML file of
//! `serve` ([`ServeArgs`] flattened into [`DoctorArgs`]), so it checks the configuration that
//! will run, and prints one aligned line per check: `ok`, `skip` (the host does not expose
//! what the check reads), `warn` (serve runs, slower or less safely) or `FAIL` (serve would
//! not start, or would not keep what it acknowledges), each warning and failure followed by
//! the command that fixes it. The exit status is 1 when any check failed, else 0.
//!
//! - [`report`]: findings, their aligned rendering and the exit code.
//! - [`host`]: kernel, io_uring, the glommio executor, CPUs, governor.
//! - [`limits`]: memlock and open files against what the shards need.
//! - [`disk`]: the data directory: file system, O_DIRECT round trip, fsync cost, free space.
//! - [`net`]: `net.core.rmem_max` against the UDP buffer, and the listen addresses.
//!
//! Every condition that makes `serve` refuse to start or exit is a `FAIL` here: an invalid
//! key, io_uring or an executor that does not start, a memlock or open-files limit below
//! what the shards need, too many cores, a data dir that cannot be created or written, is
//! held by another server ([`crate::preflight::lock`]), or is on tmpfs without
//! `--allow-volatile-data-dir`, and an address something else listens on. A fix is only
//! suggested where it can work on this host (no `ulimit -n` above the hard limit).
//!
//! The checks read `/proc`, `/sys` and resource limits, create the data directory (as
//! `serve` would), write and remove one probe file in it (not while a server holds it), and
//! bind each listen address for an instant. They change nothing else.

pub mod disk;
pub mod host;
pub mod limits;
pub mod net;
pub mod report;

use clap::Args;
use nix::sys::resource::Resource;

use crate::config::{Config, ServeArgs};
use host::{CAP_IPC_LOCK, CAP_NET_ADMIN, CAP_SYS_RESOURCE, has_cap};
use limits::HardLimits;
use report::{Finding, Status};

/// Flags of `shardlog doctor`: the same as `shardlog serve`, so that the configuration
/// checked is the one that will run.
#[derive(Args, Debug, Clone, Default)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// Runs the checks, prints them on stdout; returns the process exit code.
pub fn run(args: DoctorArgs) -> i32 {
    let findings = check_all(args.serve);
    print!("{}", report::render(&findings));
    report::exit_code(&findings)
}

/// Every check, in the order they are printed.
pub fn check_all(args: ServeArgs) -> Vec<Finding> {
    let available = host::available_cpus();
    let (config, requested_cores, config_finding) = resolve(args, available);
    let cores = config.as_ref().map_or(available, |c| c.cores);
    let mut out = vec![config_finding];

    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let kernel = host::parse_kernel_version(&release);
    out.push(host::classify_kernel(&release));
    let io_uring = host::check_io_uring();
    let io_uring_works = io_uring.status != Status::Fail;
    out.push(io_uring);
    out.push(if io_uring_works {
        host::classify_executor(host::probe_executor())
    } else {
        Finding::skip("executor", "not tried: io_uring is not available")
    });

    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let caps = host::parse_cap_eff(&status).unwrap_or(0);
    let hard_limits = if has_cap(caps, CAP_SYS_RESOURCE) {
        HardLimits::Raisable
    } else {
        HardLimits::Fixed
    };
    match limits::rlimit(Resource::RLIMIT_MEMLOCK) {
        Some(limit) => out.push(limits::classify_memlock(
            limit,
            cores,
            kernel,
            has_cap(caps, CAP_IPC_LOCK),
            hard_limits,
        )),
        None => out.push(Finding::skip("memlock", "getrlimit(RLIMIT_MEMLOCK) failed")),
    }
    match limits::rlimit(Resource::RLIMIT_NOFILE) {
        Some(limit) => out.push(limits::classify_nofile(limit, cores, hard_limits)),
        None => out.push(Finding::skip(
            "open files",
            "getrlimit(RLIMIT_NOFILE) failed",
        )),
    }
    out.extend(host::check_cores(requested_cores));
    let online = std::fs::read_to_string("/sys/devices/system/cpu/online")
        .ok()
        .and_then(|t| host::parse_cpu_list(&t))
        .unwrap_or_default();
    out.push(host::check_governors(&online));

    let Some(config) = config else {
        out.push(Finding::skip(
            "data dir",
            "not checked: the configuration above is invalid",
        ));
        return out;
    };
    out.extend(disk::check_data_dir(&config));
    out.push(net::classify_rmem(
        host::read_proc_u64("/proc/sys/net/core/rmem_max"),
        config.syslog_udp_recv_buffer_bytes,
        config.syslog_udp_addr.is_some(),
        has_cap(caps, CAP_NET_ADMIN),
    ));
    out.extend(net::check_listens(&config));
    out
}

/// Loads the TOML file and validates every key as `serve` does, except `cores`, which the
/// cores check reports on its own (with the CPU counts). Returns the configuration (with the
/// core count `serve` would use, or the available CPUs if the requested one is invalid),
/// the requested core count, and the finding for the `config` line.
fn resolve(args: ServeArgs, available: usize) -> (Option<Config>, Option<usize>, Finding) {
    let source = match &args.config {
        Some(path) => format!("{}", path.display()),
        None => "flags and defaults".to_string(),
    };
    let loaded = match args.load() {
        Ok(a) => a,
        Err(e) => {
            let fix = "correct the file; `shardlog serve --help` lists every key";
            return (None, None, Finding::fail("config", e.to_string(), fix));
        }
    };
    let requested = loaded.cores;
    // Cores this host does not have are reported apart; the rest of the configuration
    // (the memory budget too) is checked for the cores asked for when the host has them.
    let without_cores = ServeArgs {
        cores: requested.filter(|&c| c >= 1 && c <= available),
        ..loaded
    };
    match without_cores.resolve(available) {
        Ok(mut config) => {
            if let Some(c) = requested.filter(|&c| c >= 1 && c <= available) {
                config.cores = c;
            }
            let detail = format!(
                "{source}: data dir {}, {} shard(s), http {}, syslog tcp {}, udp {}",
                config.data_dir.display(),
                config.cores,
                config.http_addr,
                addr_or_off(config.syslog_tcp_addr),
                addr_or_off(config.syslog_udp_addr)
            );
            (Some(config), requested, Finding::ok("config", detail))
        }
        Err(e) => (
            None,
            requested,
            Finding::fail(
                "config",
                format!("{source}: {e}"),
                "correct that key; `shardlog serve --help` lists every key",
            ),
        ),
    }
}

fn addr_or_off(addr: Option<std::net::SocketAddr>) -> String {
    addr.map_or("off".to_string(), |a| a.to_string())
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;

    fn example_config() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tuning/shardlog.toml")
    }

    /// The example in tuning/ is read by the real loader and sets every key, so that it
    /// cannot fall behind the configuration.
    #[test]
    fn tuning_example_config_loads_and_sets_every_key() {
        let text = std::fs::read_to_string(example_config()).unwrap();
        let file: ServeArgs = toml::from_str(&text).expect("tuning/shardlog.toml parses");
        let loaded = ServeArgs {
            config: Some(example_config()),
            ..Default::default()
        }
        .load()
        .expect("the real loader reads tuning/shardlog.toml");
        let config = loaded
            .clone()
            .resolve(crate::config::SHARDS_MAX)
            .expect("tuning/shardlog.toml resolves");
        assert_eq!(config.data_dir, PathBuf::from("/var/lib/shardlog"));
        assert_eq!(config.syslog_tcp_addr.unwrap().port(), 514);
        // Every key of the schema is present in the file (the Debug form lists each field
        // once; a `None` means the example forgot a key added since).
        // The `[[alert]]` tables are checked apart: each sets every field of its own.
        let alerts = format!("{:?}", file.alert);
        assert_eq!(file.alert.len(), 2, "{alerts}");
        assert!(
            !alerts.contains("None"),
            "an [[alert]] leaves a field out: {alerts}"
        );
        let debug = format!(
            "{:?}",
            ServeArgs {
                config: Some(example_config()),
                alert: Vec::new(),
                ..file
            }
        );
        // Keys the example leaves out: the older forms of keys it sets in the newer one, and
        // the limits file and TLS files, which it shows commented out (paths the host may
        // not have).
        let unset: Vec<&str> = debug
            .match_indices(": None")
            .map(|(i, _)| debug[..i].rsplit([' ', '{']).next().unwrap())
            .collect();
        let expected: Vec<&str> = ["tls_cert_file", "tls_key_file", "tls_client_ca_file"]
            .into_iter()
            .chain(std::iter::once("limits_file"))
            .chain(crate::config::OLDER_FORMS.iter().copied())
            .collect();
        assert_eq!(
            unset, expected,
            "a key is missing from the example: {debug}"
        );
        assert!(text.contains("# limits_file = "));
        let keys = text
            .lines()
            .take_while(|l| !l.starts_with("[[alert]]"))
            .filter(|l| !l.trim_start().starts_with('#') && l.contains('='))
            .count();
        // All fields but `config`, which only exists as a flag, the older forms, the
        // commented-out limits file and three TLS files, `syslog`, whose keys are those of
        // its section (counted above, before the `[[alert]]` tables), and `alert`, checked
        // apart above.
        assert!(
            text.contains("\n[[syslog]]\n"),
            "the example shows a [[syslog]] section"
        );
        let fields = debug.matches(": ").count() - 7 - crate::config::OLDER_FORMS.len();
        assert_eq!(keys, fields, "{debug}");
    }

    #[test]
    fn bad_config_is_one_failing_line_and_host_checks_still_run() {
        let args = ServeArgs {
            http_addr: Some("nonsense".into()),
            ..Default::default()
        };
        let findings = check_all(args);
        assert_eq!(findings[0].check, "config");
        assert_eq!(findings[0].status, Status::Fail);
        assert!(
            findings[0].detail.contains("--http-addr"),
            "{}",
            findings[0].detail
        );
        assert!(findings.iter().any(|f| f.check == "kernel"));
        assert!(
            findings
                .iter()
                .any(|f| f.check == "data dir" && f.status == Status::Skip)
        );
        assert_eq!(report::exit_code(&findings), 1);
    }

    #[test]
    fn too_many_cores_is_reported_by_the_cores_check_not_the_config_line() {
        let (config, requested, finding) = resolve(
            ServeArgs {
                cores: Some(999),
                ..Default::default()
            },
            2,
        );
        assert_eq!(finding.status, Status::Ok, "{}", finding.detail);
        assert_eq!(requested, Some(999));
        assert_eq!(config.unwrap().cores, 2);
    }
}

//! Checks of the host itself: kernel, io_uring, the glommio executor, CPUs and their
//! frequency governor (resource limits are in [`super::limits`]).
//!
//! Each check is a pure `classify_*` function over numbers and text read from `/proc`, `/sys`
//! and `getrlimit` (tested below with made-up hosts), plus a thin `check_*` wrapper that reads
//! the real values.

use std::os::fd::RawFd;
use std::time::Duration;

use nix::errno::Errno;

use super::report::Finding;
use crate::config::SHARDS_MAX;

/// glommio needs io_uring features of Linux 5.8 (its documented minimum).
pub const KERNEL_MIN: (u32, u32) = (5, 8);
/// From Linux 5.12 on, io_uring charges its rings to the memory cgroup instead of the
/// memlock limit; only registered buffers still count against memlock.
pub const KERNEL_RING_MEMCG: (u32, u32) = (5, 12);

/// glommio's `Reactor::new` refuses to start an executor when RLIMIT_MEMLOCK is below this
/// (`MIN_MEMLOCK_LIMIT` in glommio 0.9's `sys/uring.rs`).
pub const GLOMMIO_MEMLOCK_MIN_BYTES: u64 = 512 * 1024;
/// I/O memory each executor registers with io_uring: glommio's `DEFAULT_IO_MEMORY`, which
/// the runtime does not change.
pub const GLOMMIO_IO_MEMORY_BYTES: u64 = 10 << 20;
/// Rings per executor (main, latency, poll); each registers the same I/O memory, and the
/// kernel charges each registration separately.
pub const GLOMMIO_RINGS_PER_EXECUTOR: u64 = 3;
/// Submission queue depth of each ring (glommio's `DEFAULT_RING_SUBMISSION_DEPTH`).
pub const GLOMMIO_RING_DEPTH: u64 = 128;

/// Capability bits of `CapEff` in `/proc/self/status` (linux/capability.h).
pub const CAP_NET_BIND_SERVICE: u32 = 10;
pub const CAP_NET_ADMIN: u32 = 12;
pub const CAP_IPC_LOCK: u32 = 14;
pub const CAP_SYS_ADMIN: u32 = 21;
/// Lets a process raise its own hard resource limits (`ulimit -H`), as root can.
pub const CAP_SYS_RESOURCE: u32 = 24;

/// How long the executor probe may take before it is reported as hanging.
const EXECUTOR_PROBE_TIMEOUT: Duration = Duration::from_secs(10);

// ---- kernel ----

/// `"6.8.0-45-generic"` -> `(6, 8)`.
pub fn parse_kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.trim().split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

pub fn classify_kernel(release: &str) -> Finding {
    let Some(version) = parse_kernel_version(release) else {
        return Finding::warn(
            "kernel",
            format!("cannot read a version from '{}'", release.trim()),
            "check `uname -r`: shardlog needs Linux 5.8 or later",
        );
    };
    let release = release.trim();
    if version < KERNEL_MIN {
        return Finding::fail(
            "kernel",
            format!("{release}: glommio needs Linux 5.8 or later for io_uring"),
            "upgrade the kernel (Debian 11+, Ubuntu 20.10+, RHEL 9+ ship one)",
        );
    }
    let rings = if version >= KERNEL_RING_MEMCG {
        "io_uring rings are charged to the memory cgroup (>= 5.12)"
    } else {
        "io_uring rings are charged to the memlock limit (< 5.12)"
    };
    Finding::ok("kernel", format!("{release}: {rings}"))
}

// ---- io_uring ----

/// Tries `io_uring_setup` with a tiny ring and closes it; `Err(errno)` when the kernel
/// refuses.
pub fn probe_io_uring_setup() -> Result<(), Errno> {
    use nix::libc;
    // `struct io_uring_params` is 120 bytes of u32/u64 fields; all zero asks for defaults.
    let mut params = [0u64; 15];
    // SAFETY: a raw syscall because neither nix nor rustix wraps io_uring_setup safely (it
    // writes through a pointer). It reads and writes exactly one io_uring_params (120 bytes)
    // at the pointer, which is a live, 8-aligned buffer of that size.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_io_uring_setup,
            4 as libc::c_uint,
            params.as_mut_ptr() as *mut libc::c_void,
        )
    };
    if fd < 0 {
        return Err(Errno::last());
    }
    // The descriptor was just returned to us and is closed exactly once.
    let _ = nix::unistd::close(fd as RawFd);
    Ok(())
}

const SYSCTL_FIX: &str = "sysctl -w kernel.io_uring_disabled=0\n\
     echo 'kernel.io_uring_disabled = 0' > /etc/sysctl.d/60-shardlog-io-uring.conf";

/// Combines `kernel.io_uring_disabled` (absent before Linux 6.6) with what `io_uring_setup`
/// answered.
pub fn classify_io_uring(disabled: Option<u64>, setup: Result<(), Errno>) -> Finding {
    let knob = match disabled {
        None => "no kernel.io_uring_disabled (kernel before 6.6)".to_string(),
        Some(v) => format!("kernel.io_uring_disabled = {v}"),
    };
    match (setup, disabled) {
        (Ok(()), None | Some(0)) => {
            Finding::ok("io_uring", format!("io_uring_setup works; {knob}"))
        }
        (Ok(()), Some(_)) => Finding::warn(
            "io_uring",
            format!(
                "io_uring_setup works for this process (CAP_SYS_ADMIN or kernel.io_uring_group), \
                 but {knob} refuses it to other users such as a service account"
            ),
            SYSCTL_FIX,
        ),
        (Err(Errno::ENOSYS), _) => Finding::fail(
            "io_uring",
            "io_uring_setup: ENOSYS, the kernel is built without io_uring",
            "boot a kernel with CONFIG_IO_URING=y (every distribution kernel since 5.8 has it)",
        ),
        (Err(Errno::EPERM), Some(v)) if v > 0 => Finding::fail(
            "io_uring",
            format!("io_uring_setup: EPERM, {knob}"),
            SYSCTL_FIX,
        ),
        (Err(Errno::EPERM), _) => Finding::fail(
            "io_uring",
            format!(
                "io_uring_setup: EPERM although {knob}: a seccomp filter or LSM blocks it \
                 (Docker's default seccomp profile does)"
            ),
            "allow io_uring_setup, io_uring_enter and io_uring_register: for Docker, \
             `--security-opt seccomp=<profile allowing them>`; in systemd, keep them out of \
             SystemCallFilter deny lists",
        ),
        (Err(Errno::ENOMEM), _) => Finding::fail(
            "io_uring",
            "io_uring_setup: ENOMEM, the ring does not fit in the memlock limit",
            "raise the memlock limit as the memlock line says",
        ),
        (Err(errno), _) => Finding::fail(
            "io_uring",
            format!(
                "io_uring_setup failed: {}; {knob}",
                std::io::Error::from(errno)
            ),
            "check `dmesg` and the kernel's io_uring support",
        ),
    }
}

pub fn check_io_uring() -> Finding {
    let disabled = read_proc_u64("/proc/sys/kernel/io_uring_disabled");
    classify_io_uring(disabled, probe_io_uring_setup())
}

/// Starts one glommio executor the way `serve` does (default I/O memory and ring depth) on
/// its own thread and runs an empty task on it.
pub fn probe_executor() -> Result<(), String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("doctor-executor".into())
        .spawn(move || {
            let result = glommio::LocalExecutorBuilder::default()
                .name("doctor")
                .spawn(|| async {})
                .map_err(|e| e.to_string())
                .and_then(|h| h.join().map_err(|e| e.to_string()));
            let _ = tx.send(result);
        })
        .map_err(|e| format!("cannot start a thread: {e}"))?;
    match rx.recv_timeout(EXECUTOR_PROBE_TIMEOUT) {
        Ok(result) => result,
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Err(format!(
            "no answer after {} s",
            EXECUTOR_PROBE_TIMEOUT.as_secs()
        )),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            Err("the executor thread panicked".to_string())
        }
    }
}

pub fn classify_executor(result: Result<(), String>) -> Finding {
    match result {
        Ok(()) => Finding::ok(
            "executor",
            format!(
                "a glommio executor starts ({GLOMMIO_RINGS_PER_EXECUTOR} rings of \
                 {GLOMMIO_RING_DEPTH} entries, {} I/O memory)",
                bytes(GLOMMIO_IO_MEMORY_BYTES)
            ),
        ),
        Err(e) => Finding::fail(
            "executor",
            format!("a glommio executor does not start: {e}"),
            "see the io_uring and memlock lines",
        ),
    }
}

// ---- CPUs ----

/// Parses a kernel CPU list such as `0-3,8,10-11` (used by `/sys/.../cpu/online` and
/// `Cpus_allowed_list`).
pub fn parse_cpu_list(text: &str) -> Option<Vec<usize>> {
    let text = text.trim();
    let mut cpus = Vec::new();
    if text.is_empty() {
        return Some(cpus);
    }
    for part in text.split(',') {
        let part = part.trim();
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (usize, usize) = (a.parse().ok()?, b.parse().ok()?);
                // A range longer than the kernel's CPU limit is garbage, not a CPU list.
                if a > b || b - a > 1 << 16 {
                    return None;
                }
                cpus.extend(a..=b);
            }
            None => cpus.push(part.parse().ok()?),
        }
    }
    cpus.sort_unstable();
    cpus.dedup();
    Some(cpus)
}

/// The value of one `Key:\tvalue` line of `/proc/self/status`.
pub fn status_field<'a>(status: &'a str, key: &str) -> Option<&'a str> {
    status.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k == key).then_some(v.trim())
    })
}

/// The effective capability set from `/proc/self/status`.
pub fn parse_cap_eff(status: &str) -> Option<u64> {
    u64::from_str_radix(status_field(status, "CapEff")?, 16).ok()
}

pub fn has_cap(caps: u64, bit: u32) -> bool {
    caps & (1u64 << bit) != 0
}

/// What the host offers the shards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuView {
    /// What `serve` validates `--cores` against (`available_parallelism`: the affinity mask,
    /// further bounded by a cgroup CPU quota).
    pub available: usize,
    /// CPUs in this process's affinity mask (`sched_getaffinity`).
    pub allowed: Vec<usize>,
    /// CPUs online (`/sys/devices/system/cpu/online`): where glommio places the shards.
    pub online: Vec<usize>,
    /// CPUs of this process's cgroup cpuset, when one is readable.
    pub cpuset: Option<Vec<usize>>,
}

pub fn classify_cores(requested: Option<usize>, view: &CpuView) -> Vec<Finding> {
    let mut out = Vec::new();
    let cores = requested.unwrap_or(view.available);
    let flag = requested.map_or(String::new(), |c| format!("--cores {c}: "));
    if cores == 0 || cores > SHARDS_MAX {
        out.push(Finding::fail(
            "cores",
            format!("{flag}must be between 1 and {SHARDS_MAX}"),
            format!("--cores {}", view.available.clamp(1, SHARDS_MAX)),
        ));
    } else if cores > view.available {
        out.push(Finding::fail(
            "cores",
            format!(
                "{flag}asks for {cores} shards, one per CPU, but this process may use only {} \
                 CPU(s); serve refuses to start",
                view.available
            ),
            format!(
                "--cores {} (or fewer: leave a core for NIC interrupts, see tuning/README.md)",
                view.available
            ),
        ));
    } else {
        out.push(Finding::ok(
            "cores",
            format!(
                "{flag}{cores} shard(s) on {} available CPU(s), {} online",
                view.available,
                view.online.len()
            ),
        ));
    }
    let outside = |set: &[usize]| -> Vec<usize> {
        let v: Vec<usize> = view
            .online
            .iter()
            .copied()
            .filter(|c| !set.contains(c))
            .collect();
        if set.is_empty() { Vec::new() } else { v }
    };
    let fenced = view.cpuset.as_deref().map(outside).unwrap_or_default();
    let masked = outside(&view.allowed);
    let placement = "shards are pinned to CPUs chosen among all online CPUs (glommio's \
                     MaxSpread over CpuSet::online, in no fixed order), not among those this \
                     process may use";
    if !fenced.is_empty() {
        out.push(Finding::fail(
            "cpu placement",
            format!(
                "the cgroup cpuset excludes CPUs {}; {placement}, and an executor placed on an \
                 excluded CPU panics at start (\"failed to bind blocking thread\")",
                cpu_list(&fenced)
            ),
            "remove the cpuset restriction (systemd: no AllowedCPUs=; docker: no --cpuset-cpus) \
             and size --cores instead",
        ));
    } else if !masked.is_empty() {
        out.push(Finding::warn(
            "cpu placement",
            format!(
                "this process may run on CPUs {} only, but {placement}: the taskset/CPUAffinity \
                 mask does not keep shards off CPUs {}",
                cpu_list(&view.allowed),
                cpu_list(&masked)
            ),
            "drop the CPU mask and size --cores instead; steer NIC interrupts with IRQ \
             affinity (tuning/README.md, \"Cores\")",
        ));
    }
    out
}

pub fn check_cores(requested: Option<usize>) -> Vec<Finding> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let allowed = status_field(&status, "Cpus_allowed_list")
        .and_then(parse_cpu_list)
        .unwrap_or_default();
    let online = std::fs::read_to_string("/sys/devices/system/cpu/online")
        .ok()
        .and_then(|t| parse_cpu_list(&t))
        .unwrap_or_else(|| allowed.clone());
    let cpuset = std::fs::read_to_string("/proc/self/cgroup")
        .ok()
        .and_then(|t| read_cpuset(&t));
    let view = CpuView {
        available: available_cpus(),
        allowed,
        online,
        cpuset,
    };
    classify_cores(requested, &view)
}

/// Where this process's cpuset lives, from `/proc/self/cgroup`: the cgroup v1 `cpuset`
/// hierarchy when mounted, else the v2 unified one. Returns the file to read.
pub fn cpuset_file(proc_cgroup: &str) -> Option<String> {
    let mut v2 = None;
    for line in proc_cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let path = path.trim_end_matches('/');
        if controllers.split(',').any(|c| c == "cpuset") {
            return Some(format!("/sys/fs/cgroup/cpuset{path}/cpuset.effective_cpus"));
        }
        if controllers.is_empty() {
            v2 = Some(format!("/sys/fs/cgroup{path}/cpuset.cpus.effective"));
        }
    }
    v2
}

fn read_cpuset(proc_cgroup: &str) -> Option<Vec<usize>> {
    let text = std::fs::read_to_string(cpuset_file(proc_cgroup)?).ok()?;
    parse_cpu_list(&text).filter(|cpus| !cpus.is_empty())
}

/// The CPU count `serve` validates `--cores` against.
pub fn available_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// `[0, 1, 2, 5]` -> `0-2,5`.
pub fn cpu_list(cpus: &[usize]) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < cpus.len() {
        let start = cpus[i];
        let mut end = start;
        while i + 1 < cpus.len() && cpus[i + 1] == end + 1 {
            i += 1;
            end = cpus[i];
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    parts.join(",")
}

/// Governors of the given CPUs, `(cpu, governor)`; empty when cpufreq is not exposed.
pub fn classify_governors(governors: &[(usize, String)]) -> Finding {
    if governors.is_empty() {
        return Finding::skip(
            "cpu governor",
            "no cpufreq in /sys (a virtual machine, or no frequency driver): nothing to set",
        );
    }
    let slow: Vec<usize> = governors
        .iter()
        .filter(|(_, g)| g != "performance")
        .map(|(c, _)| *c)
        .collect();
    let mut names: Vec<&str> = governors.iter().map(|(_, g)| g.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    if slow.is_empty() {
        Finding::ok("cpu governor", "performance on every CPU")
    } else {
        Finding::warn(
            "cpu governor",
            format!(
                "{} on CPUs {}: cores that clock down between bursts add latency to the first \
                 batches of the next one",
                names.join("/"),
                cpu_list(&slow)
            ),
            "cpupower frequency-set -g performance",
        )
    }
}

pub fn check_governors(cpus: &[usize]) -> Finding {
    let governors: Vec<(usize, String)> = cpus
        .iter()
        .filter_map(|&c| {
            let path = format!("/sys/devices/system/cpu/cpu{c}/cpufreq/scaling_governor");
            std::fs::read_to_string(path)
                .ok()
                .map(|g| (c, g.trim().to_string()))
        })
        .collect();
    classify_governors(&governors)
}

// ---- helpers ----

/// Reads a `/proc/sys` file holding one integer.
pub fn read_proc_u64(path: &str) -> Option<u64> {
    parse_u64_text(&std::fs::read_to_string(path).ok()?)
}

pub fn parse_u64_text(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

/// `10485760` -> `10 MiB`; exact binary units where they divide, else one decimal.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if value.fract() == 0.0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::super::report::Status;
    use super::*;

    #[test]
    fn kernel_versions() {
        assert_eq!(parse_kernel_version("6.18.44-fc-v669"), Some((6, 18)));
        assert_eq!(parse_kernel_version("5.4.0-150-generic\n"), Some((5, 4)));
        assert_eq!(parse_kernel_version("garbage"), None);
        assert_eq!(classify_kernel("5.4.0").status, Status::Fail);
        assert_eq!(classify_kernel("5.10.0").status, Status::Ok);
        assert!(classify_kernel("5.10.0").detail.contains("memlock"));
        assert!(classify_kernel("6.1.0").detail.contains("memory cgroup"));
        assert_eq!(classify_kernel("x").status, Status::Warn);
    }

    #[test]
    fn io_uring_classification() {
        assert_eq!(classify_io_uring(Some(0), Ok(())).status, Status::Ok);
        assert_eq!(classify_io_uring(None, Ok(())).status, Status::Ok);
        assert_eq!(classify_io_uring(Some(1), Ok(())).status, Status::Warn);
        let f = classify_io_uring(Some(2), Err(Errno::EPERM));
        assert_eq!(f.status, Status::Fail);
        assert!(f.fix.unwrap().contains("kernel.io_uring_disabled=0"));
        let f = classify_io_uring(Some(0), Err(Errno::EPERM));
        assert!(f.detail.contains("seccomp"), "{}", f.detail);
        assert!(
            classify_io_uring(None, Err(Errno::ENOSYS))
                .detail
                .contains("ENOSYS")
        );
        assert!(
            classify_io_uring(None, Err(Errno::ENOMEM))
                .fix
                .unwrap()
                .contains("memlock line")
        );
        assert_eq!(
            classify_io_uring(None, Err(Errno::EIO)).status,
            Status::Fail
        );
    }

    #[test]
    fn cpu_lists() {
        assert_eq!(
            parse_cpu_list("0-3,8,10-11\n"),
            Some(vec![0, 1, 2, 3, 8, 10, 11])
        );
        assert_eq!(parse_cpu_list("0"), Some(vec![0]));
        assert_eq!(parse_cpu_list(""), Some(vec![]));
        assert_eq!(parse_cpu_list("3-1"), None);
        assert_eq!(parse_cpu_list("a-b"), None);
        assert_eq!(parse_cpu_list("0-99999999999"), None);
        assert_eq!(cpu_list(&[0, 1, 2, 5, 7, 8]), "0-2,5,7-8");
        assert_eq!(cpu_list(&[]), "");
    }

    #[test]
    fn status_fields_and_capabilities() {
        let status = "Name:\tshardlog\nCpus_allowed_list:\t0-1\nCapEff:\t000001fffeffffff\n";
        assert_eq!(status_field(status, "Cpus_allowed_list"), Some("0-1"));
        assert_eq!(status_field(status, "Missing"), None);
        let caps = parse_cap_eff(status).unwrap();
        assert!(has_cap(caps, CAP_IPC_LOCK) && has_cap(caps, CAP_NET_ADMIN));
        let caps = parse_cap_eff("CapEff:\t0000000000000400\n").unwrap();
        assert!(has_cap(caps, CAP_NET_BIND_SERVICE) && !has_cap(caps, CAP_IPC_LOCK));
    }

    #[test]
    fn cores_classification() {
        let view = CpuView {
            available: 2,
            allowed: vec![0, 1],
            online: vec![0, 1],
            cpuset: Some(vec![0, 1]),
        };
        let f = classify_cores(Some(999), &view);
        assert_eq!(f[0].status, Status::Fail);
        assert!(f[0].detail.contains("--cores 999") && f[0].detail.contains("only 2"));
        assert_eq!(f.len(), 1);
        assert_eq!(classify_cores(None, &view)[0].status, Status::Ok);
        assert_eq!(classify_cores(Some(0), &view)[0].status, Status::Fail);
        // taskset: shards escape the mask, which is worth a warning only.
        let masked = CpuView {
            available: 1,
            allowed: vec![1],
            online: vec![0, 1],
            cpuset: Some(vec![0, 1]),
        };
        let f = classify_cores(Some(1), &masked);
        assert_eq!(f[0].status, Status::Ok);
        assert_eq!(f[1].status, Status::Warn);
        assert!(f[1].detail.contains("off CPUs 0"), "{}", f[1].detail);
        // A cpuset: pinning outside it panics the executor.
        let fenced = CpuView {
            cpuset: Some(vec![1]),
            ..masked
        };
        let f = classify_cores(Some(1), &fenced);
        assert_eq!(f[1].status, Status::Fail);
        assert!(f[1].detail.contains("excludes CPUs 0"), "{}", f[1].detail);
        assert!(f[1].fix.as_ref().unwrap().contains("AllowedCPUs"));
    }

    #[test]
    fn cpuset_file_from_proc_cgroup() {
        let v1 = "9:name=systemd:/\n3:cpuset:/doc-test\n0::/\n";
        assert_eq!(
            cpuset_file(v1).as_deref(),
            Some("/sys/fs/cgroup/cpuset/doc-test/cpuset.effective_cpus")
        );
        let root_v1 = "4:cpu,cpuset:/\n";
        assert_eq!(
            cpuset_file(root_v1).as_deref(),
            Some("/sys/fs/cgroup/cpuset/cpuset.effective_cpus")
        );
        let v2 = "0::/system.slice/shardlog.service\n";
        assert_eq!(
            cpuset_file(v2).as_deref(),
            Some("/sys/fs/cgroup/system.slice/shardlog.service/cpuset.cpus.effective")
        );
        assert_eq!(cpuset_file("garbage"), None);
    }

    #[test]
    fn governors() {
        assert_eq!(classify_governors(&[]).status, Status::Skip);
        let all = [
            (0, "performance".to_string()),
            (1, "performance".to_string()),
        ];
        assert_eq!(classify_governors(&all).status, Status::Ok);
        let mixed = [(0, "performance".to_string()), (1, "powersave".to_string())];
        let f = classify_governors(&mixed);
        assert_eq!(f.status, Status::Warn);
        assert!(f.detail.contains("CPUs 1"), "{}", f.detail);
    }

    #[test]
    fn byte_sizes() {
        assert_eq!(bytes(10 << 20), "10 MiB");
        assert_eq!(bytes(512 * 1024), "512 KiB");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(12), "12 B");
    }

    #[test]
    fn probes_run_on_this_host() {
        // Whatever this host answers, the probes return instead of hanging or panicking, and
        // their classification names the check.
        let f = classify_io_uring(Some(0), probe_io_uring_setup());
        assert_eq!(f.check, "io_uring");
    }
}

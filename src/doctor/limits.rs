//! Resource limits of the process against what the shards need: locked memory (io_uring's
//! registered buffers) and open files (one per connection). Each fix suggests `ulimit` only
//! where it can work on this host: up to the hard limit, or beyond it when the process may
//! raise its hard limits (CAP_SYS_RESOURCE); otherwise it names the places that set hard
//! limits (systemd's `LimitNOFILE`/`LimitMEMLOCK`, `limits.conf`).

use nix::sys::resource::{RLIM_INFINITY, Resource, getrlimit};

use super::host::{
    GLOMMIO_IO_MEMORY_BYTES, GLOMMIO_MEMLOCK_MIN_BYTES, GLOMMIO_RING_DEPTH,
    GLOMMIO_RINGS_PER_EXECUTOR, KERNEL_RING_MEMCG, bytes,
};
use super::report::Finding;

/// Open files a busy server wants: one per syslog TCP and HTTP connection, so tens of
/// thousands of senders need this many; systemd units commonly grant 1M.
pub const NOFILE_TARGET: u64 = 65_536;
/// What the fixes suggest: the kernel's default `fs.nr_open`, the most a limit may be set to
/// without raising that too, and what tuning/shardlog.service grants.
pub const NOFILE_SUGGESTED: u64 = 1_048_576;
/// Descriptors one shard holds before any client connects: 3 io_uring rings, eventfds and
/// timers, 3 listeners, the WAL directory and its open segment, with room to spare.
pub const FDS_PER_SHARD_AT_START: u64 = 16;
/// Descriptors the process holds besides the shards (stdio, signal thread, blocking pool).
pub const FDS_PROCESS_BASE: u64 = 64;

// ---- memlock ----

/// Locked memory `cores` executors ask for: every ring registers the I/O memory, and before
/// Linux 5.12 the rings themselves count too.
pub fn memlock_needed_bytes(cores: usize, kernel: Option<(u32, u32)>) -> u64 {
    let registered = GLOMMIO_RINGS_PER_EXECUTOR * GLOMMIO_IO_MEMORY_BYTES;
    let rings = match kernel {
        Some(v) if v >= KERNEL_RING_MEMCG => 0,
        _ => GLOMMIO_RINGS_PER_EXECUTOR * ring_bytes(GLOMMIO_RING_DEPTH),
    };
    cores as u64 * (registered + rings)
}

/// Kernel memory of one ring: 64-byte SQEs, twice as many 16-byte CQEs, the 4-byte SQ index
/// array and a page of ring headers, rounded up to pages.
fn ring_bytes(depth: u64) -> u64 {
    let raw = depth * 64 + 2 * depth * 16 + depth * 4 + 4096;
    raw.div_ceil(4096) * 4096
}

/// A soft and a hard resource limit, `None` standing for unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub soft: Option<u64>,
    pub hard: Option<u64>,
}

/// Whether this process may raise its own hard limits (CAP_SYS_RESOURCE: root).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HardLimits {
    /// Only the soft limit can move, up to the hard one.
    Fixed,
    /// `ulimit` may raise the hard limit too.
    Raisable,
}

/// How to get the memlock limit to unlimited on this host: `ulimit -l` only where it can
/// work (the hard limit is already unlimited, or the shell may raise it), else the places
/// that set hard limits.
fn memlock_fix(hard: Option<u64>, hard_limits: HardLimits) -> String {
    let durable = "systemd: LimitMEMLOCK=infinity (tuning/shardlog.service); \
                   /etc/security/limits.conf: `shardlog - memlock unlimited`, then log in again";
    if hard.is_none() || hard_limits == HardLimits::Raisable {
        format!("ulimit -l unlimited  ({durable})")
    } else {
        format!(
            "the hard limit is {}, so `ulimit -l` cannot raise it; raise the hard limit:\n{durable}",
            hard.map_or("unlimited".to_string(), bytes)
        )
    }
}

pub fn classify_memlock(
    limit: Limit,
    cores: usize,
    kernel: Option<(u32, u32)>,
    cap_ipc_lock: bool,
    hard_limits: HardLimits,
) -> Finding {
    let need = memlock_needed_bytes(cores, kernel);
    let shown = limit.soft.map_or("unlimited".to_string(), bytes);
    let accounting = match kernel {
        Some(v) if v >= KERNEL_RING_MEMCG => {
            "rings are charged to the memory cgroup, memlock bounds only registered buffers"
        }
        _ => "rings and registered buffers count against memlock",
    };
    if cap_ipc_lock {
        return Finding::ok(
            "memlock",
            format!("{shown}, not enforced: the process has CAP_IPC_LOCK"),
        );
    }
    let fix = || memlock_fix(limit.hard, hard_limits);
    match limit.soft {
        None => Finding::ok("memlock", format!("unlimited; {accounting}")),
        Some(l) if l < GLOMMIO_MEMLOCK_MIN_BYTES => Finding::fail(
            "memlock",
            format!(
                "{shown}: glommio refuses to start an executor below {}",
                bytes(GLOMMIO_MEMLOCK_MIN_BYTES)
            ),
            fix(),
        ),
        Some(l) if l < need => Finding::warn(
            "memlock",
            format!(
                "{shown} < {} for {cores} executor(s) ({} I/O memory x {GLOMMIO_RINGS_PER_EXECUTOR} \
                 rings each; {accounting}): buffer registration fails and storage I/O uses \
                 unregistered buffers, which is slower",
                bytes(need),
                bytes(GLOMMIO_IO_MEMORY_BYTES)
            ),
            fix(),
        ),
        Some(_) => Finding::ok(
            "memlock",
            format!(
                "{shown} >= {} for {cores} executor(s); {accounting}",
                bytes(need)
            ),
        ),
    }
}

// ---- open files ----

/// How to raise the open-files limit to `want` on this host: `ulimit -n` only up to what the
/// hard limit allows (or beyond it where the shell may raise the hard limit), else the
/// places that set hard limits.
fn nofile_fix(limit: Limit, want: u64, hard_limits: HardLimits) -> String {
    let durable = format!(
        "systemd: LimitNOFILE={NOFILE_SUGGESTED} (tuning/shardlog.service); \
         /etc/security/limits.conf: `shardlog - nofile {NOFILE_SUGGESTED}`, then log in again"
    );
    match limit.hard {
        _ if hard_limits == HardLimits::Raisable => {
            format!("ulimit -n {NOFILE_SUGGESTED}  ({durable})")
        }
        None => format!("ulimit -n {NOFILE_SUGGESTED}  ({durable})"),
        Some(hard) if hard >= NOFILE_SUGGESTED => {
            format!("ulimit -n {NOFILE_SUGGESTED}  ({durable})")
        }
        Some(hard) if hard >= want && limit.soft.is_some_and(|s| s < hard) => format!(
            "ulimit -n {hard}  (the hard limit; for more, raise the hard limit:\n{durable})"
        ),
        Some(hard) => format!(
            "the hard limit is {hard}, so `ulimit -n` cannot go past it; raise the hard \
             limit:\n{durable}"
        ),
    }
}

/// RLIMIT_NOFILE of this process against what `cores` shards need.
pub fn classify_nofile(limit: Limit, cores: usize, hard_limits: HardLimits) -> Finding {
    let floor = FDS_PROCESS_BASE + cores as u64 * FDS_PER_SHARD_AT_START;
    let show = |v: Option<u64>| v.map_or("unlimited".to_string(), |v| v.to_string());
    let detail = format!("soft {}, hard {}", show(limit.soft), show(limit.hard));
    match limit.soft {
        Some(s) if s < floor => Finding::fail(
            "open files",
            format!("{detail}: {cores} shard(s) need about {floor} before the first connection"),
            nofile_fix(limit, floor, hard_limits),
        ),
        Some(s) if s < NOFILE_TARGET => Finding::warn(
            "open files",
            format!(
                "{detail}: below {NOFILE_TARGET}; each syslog TCP or HTTP connection takes one, \
                 and accepts fail with EMFILE at the limit"
            ),
            nofile_fix(limit, NOFILE_TARGET, hard_limits),
        ),
        _ => Finding::ok("open files", format!("{detail} (>= {NOFILE_TARGET})")),
    }
}

/// Soft and hard limit of a resource; `None` stands for unlimited.
pub fn rlimit(resource: Resource) -> Option<Limit> {
    let (soft, hard) = getrlimit(resource).ok()?;
    let v = |x: u64| (x != RLIM_INFINITY).then_some(x);
    Some(Limit {
        soft: v(soft),
        hard: v(hard),
    })
}

#[cfg(test)]
mod tests {
    use super::super::report::Status;
    use super::*;

    const USER: HardLimits = HardLimits::Fixed;
    const ROOT: HardLimits = HardLimits::Raisable;

    fn limit(soft: Option<u64>, hard: Option<u64>) -> Limit {
        Limit { soft, hard }
    }

    #[test]
    fn memlock_needs_and_classification() {
        let new = Some((6, 1));
        let old = Some((5, 10));
        assert_eq!(memlock_needed_bytes(2, new), 2 * 3 * (10 << 20));
        assert!(memlock_needed_bytes(2, old) > memlock_needed_bytes(2, new));
        let unlimited_hard = |soft| limit(soft, None);
        // The shipped default of many distributions (8 MiB) starts executors but cannot hold
        // the registered buffers of even one.
        let f = classify_memlock(unlimited_hard(Some(8 << 20)), 1, new, false, USER);
        assert_eq!(f.status, Status::Warn, "{}", f.detail);
        assert!(f.fix.unwrap().contains("LimitMEMLOCK=infinity"));
        assert_eq!(
            classify_memlock(unlimited_hard(Some(64 << 10)), 1, new, false, USER).status,
            Status::Fail
        );
        assert_eq!(
            classify_memlock(unlimited_hard(Some(64 << 10)), 1, new, true, USER).status,
            Status::Ok
        );
        assert_eq!(
            classify_memlock(unlimited_hard(None), 64, new, false, USER).status,
            Status::Ok
        );
        assert_eq!(
            classify_memlock(unlimited_hard(Some(1 << 30)), 4, new, false, USER).status,
            Status::Ok
        );
        // Exactly enough is enough; one byte less is not.
        let need = memlock_needed_bytes(3, old);
        assert_eq!(
            classify_memlock(unlimited_hard(Some(need)), 3, old, false, USER).status,
            Status::Ok
        );
        assert_eq!(
            classify_memlock(unlimited_hard(Some(need - 1)), 3, old, false, USER).status,
            Status::Warn
        );
    }

    #[test]
    fn memlock_fix_suggests_ulimit_only_where_it_can_work() {
        let new = Some((6, 1));
        let capped = limit(Some(8 << 20), Some(8 << 20));
        let fix = classify_memlock(capped, 1, new, false, USER).fix.unwrap();
        assert!(!fix.contains("ulimit -l unlimited"), "{fix}");
        assert!(
            fix.contains("hard limit is 8 MiB") && fix.contains("LimitMEMLOCK"),
            "{fix}"
        );
        // Root may raise the hard limit itself.
        let fix = classify_memlock(capped, 1, new, false, ROOT).fix.unwrap();
        assert!(fix.starts_with("ulimit -l unlimited"), "{fix}");
        let fix = classify_memlock(limit(Some(8 << 20), None), 1, new, false, USER)
            .fix
            .unwrap();
        assert!(fix.starts_with("ulimit -l unlimited"), "{fix}");
    }

    #[test]
    fn nofile_classification() {
        let big = Some(NOFILE_SUGGESTED);
        assert_eq!(classify_nofile(limit(big, big), 4, USER).status, Status::Ok);
        assert_eq!(
            classify_nofile(limit(None, None), 4, USER).status,
            Status::Ok
        );
        assert_eq!(
            classify_nofile(limit(Some(1024), Some(4096)), 4, USER).status,
            Status::Warn
        );
        let f = classify_nofile(limit(Some(100), Some(100)), 4, USER);
        assert_eq!(f.status, Status::Fail);
        assert!(f.fix.unwrap().contains("LimitNOFILE"));
        assert_eq!(
            classify_nofile(limit(Some(NOFILE_TARGET), None), 1, USER).status,
            Status::Ok
        );
    }

    #[test]
    fn nofile_fix_never_suggests_ulimit_past_the_hard_limit() {
        // Hard 4096: `ulimit -n 1048576` would fail with "Operation not permitted".
        let f = classify_nofile(limit(Some(1024), Some(4096)), 4, USER);
        let fix = f.fix.unwrap();
        assert_eq!(suggested_ulimit(&fix), None, "{fix}");
        assert!(
            fix.contains("hard limit is 4096") && fix.contains("LimitNOFILE"),
            "{fix}"
        );
        // Soft below a hard limit that covers the need: raising the soft one works.
        let f = classify_nofile(limit(Some(1024), Some(524_288)), 4, USER);
        let fix = f.fix.unwrap();
        assert!(fix.starts_with("ulimit -n 524288"), "{fix}");
        // A hard limit at the suggestion, or root: the suggestion itself works.
        let f = classify_nofile(limit(Some(1024), big()), 4, USER);
        assert!(f.fix.unwrap().starts_with("ulimit -n 1048576"));
        let f = classify_nofile(limit(Some(1024), Some(4096)), 4, ROOT);
        assert!(f.fix.unwrap().starts_with("ulimit -n 1048576"));
        // Every `ulimit -n N` suggested, for any soft/hard pair, is within the hard limit
        // (or comes with the right to raise it).
        for hard in [64, 100, 1024, 4096, 65_536, 524_288, 1_048_576, 4_194_304] {
            for soft in [16, 64, 1024, 4096, 65_536] {
                if soft > hard {
                    continue;
                }
                let f = classify_nofile(limit(Some(soft), Some(hard)), 4, USER);
                let Some(fix) = f.fix else { continue };
                if let Some(n) = suggested_ulimit(&fix) {
                    assert!(n <= hard, "soft {soft} hard {hard}: {fix}");
                }
            }
        }
    }

    fn big() -> Option<u64> {
        Some(NOFILE_SUGGESTED)
    }

    /// The N of a `ulimit -n N` command in a fix, if it suggests one.
    fn suggested_ulimit(fix: &str) -> Option<u64> {
        fix.match_indices("ulimit -n ")
            .find_map(|(i, m)| fix[i + m.len()..].split_whitespace().next()?.parse().ok())
    }

    #[test]
    fn limits_of_this_process_are_readable() {
        assert!(rlimit(Resource::RLIMIT_NOFILE).is_some());
        assert!(rlimit(Resource::RLIMIT_MEMLOCK).is_some());
    }
}

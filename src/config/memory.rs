//! How `memory_max` is shared: the one budget that every cache and queue of the server sizes
//! itself from.
//!
//! Which question it answers: "how much memory may each part of a core use, so that the
//! process stays under `memory_max` whatever it is doing?" The process keeps a fixed part
//! (code, thread stacks, allocator arenas: [`PROCESS_BASE_BYTES`]); every core then gets an
//! equal share, of which a fixed part ([`CORE_BASE_BYTES`]: io_uring rings and buffers, WAL
//! write buffers, stream tables) and a part split between the six things that grow with
//! load:
//!
//! | what | setting | worst case it stands for |
//! |------|---------|--------------------------|
//! | heads | `heads_bytes_max` | live heads, plus a seal round's heads as large (appends wait past twice it), plus their encoded parts and vector slack |
//! | requests | `request_bodies_bytes_max` | bodies and decoded pushes until durable |
//! | queries | `query_memory_bytes_max` | one query's partial states on the core |
//! | part cache | `part_cache_bytes_max` | part metadata, bloom filters and label summaries read for queries, kept by recency (parts keep none of them resident) |
//! | compaction | `compaction_input_bytes_max` | a merge's working set: a block per input, two chunks of merged lines, the new part's tail ([`crate::store::merge`]) |
//! | fingerprints | `duplicate_fingerprints_bytes_max` | the duplicate check's fingerprints of recently sealed entries ([`crate::shard::dedupe`]) |
//!
//! A setting given explicitly is kept, and the others share what is left; the server refuses
//! to start when the explicit ones, or the least each part needs, do not fit. The default
//! budget is the smaller of a quarter of the machine's memory and 128 MiB plus 128 MiB per
//! core: small beside the services the server runs next to, large enough for full ingest.

use super::{ConfigError, bad};

pub const MIB: u64 = 1 << 20;
/// Code, thread stacks and the process-wide state, measured idle at 20 MiB resident.
pub const PROCESS_BASE_BYTES: u64 = 32 * MIB;
/// Per core outside the six shares: glommio's rings and I/O buffers, the WAL's direct-I/O
/// write buffers, the stream table and label index, allocator slack.
pub const CORE_BASE_BYTES: u64 = 24 * MIB;
/// The default budget: this much for the process...
pub const MEMORY_MAX_DEFAULT_BASE: u64 = 128 * MIB;
/// ...plus this much per core...
pub const MEMORY_MAX_DEFAULT_PER_CORE: u64 = 128 * MIB;
/// ...but never more than this share of the machine's memory.
pub const MEMORY_MAX_DEFAULT_MACHINE_SHARE: f64 = 0.25;

/// What one byte of `heads_bytes_max` may cost at worst: the live heads, a seal round's
/// heads as large (appends wait beyond twice it), a quarter of vector slack on each, and the
/// round's encoded parts (a tenth).
pub const HEADS_CHARGE: f64 = 2.0 * 1.25 + 0.1;
/// What one byte of `compaction_input_bytes_max` may cost: merges stream their lines, and
/// pick their inputs so that what they hold stays within it
/// ([`crate::store::merge::merge_memory_bytes`]).
pub const COMPACTION_CHARGE: f64 = 1.0;

/// The least each share may be: below these a core cannot work (a head seals every few
/// lines; no part's metadata or blooms are kept between queries; a merge is not worth its I/O).
pub const HEADS_BYTES_MIN: u64 = 4 * MIB;
pub const QUERY_BYTES_MIN: u64 = 4 * MIB;
pub const PART_CACHE_BYTES_MIN: u64 = MIB;
pub const COMPACTION_INPUT_BYTES_MIN: u64 = 12 * MIB;
pub const FINGERPRINTS_BYTES_MIN: u64 = MIB;
/// The most one merge holds, whatever the budget: parts of several GiB of lines.
pub const COMPACTION_INPUT_BYTES_LIMIT: u64 = 256 * MIB;

/// Weights of the six shares in what a core has left after its base, for the shares not
/// given explicitly. The three that full ingest fills (heads, compaction, fingerprints) are
/// kept small, so that a server taking all it can holds little memory; the part cache and a
/// query's states are used only as queries need them.
///
/// Measured on one core at full push ingest (256 MiB, the default): heads of 14 to 34 MiB
/// took the same rate (385k to 424k lines/s over 30 s, within this VM's noise), and over
/// 60 s at full rate refused as many pushes as before (3,647 against 3,789 of about 27,000:
/// sealing's back-pressure when pushes come faster than a core keeps up), while peak RSS
/// fell from 146 to 86 MiB (with the compaction and fingerprint shares falling too). At
/// these weights, 16 MiB of heads (a seal round about every second at full rate) held
/// 105 MiB. Compaction keeps its 32 MiB: a merge used 3 MiB
/// less with 20 MiB, but its share bounds how large a part grows (`docs/storage.md`). The
/// duplicate check's fingerprints, about 12 MiB on one core, keep 2 s of sealed lines at
/// 350,000 lines/s and the whole 5-minute window up to 2,400 lines/s.
const WEIGHT_HEADS: f64 = 0.22;
const WEIGHT_REQUESTS: f64 = 0.12;
const WEIGHT_QUERIES: f64 = 0.22;
const WEIGHT_PART_CACHE: f64 = 0.22;
const WEIGHT_COMPACTION: f64 = 0.16;
const WEIGHT_FINGERPRINTS: f64 = 0.06;

/// The settings the budget decides, per core. `None`: not given, derive it.
#[derive(Debug, Clone, Copy, Default)]
pub struct MemoryAsked {
    pub memory_max: Option<u64>,
    pub heads_bytes_max: Option<u64>,
    pub request_bodies_bytes_max: Option<u64>,
    pub query_memory_bytes_max: Option<u64>,
    pub part_cache_bytes_max: Option<u64>,
    pub compaction_input_bytes_max: Option<u64>,
    pub duplicate_fingerprints_bytes_max: Option<u64>,
}

/// The budget as decided: the whole and each core's shares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryBudget {
    pub memory_max: u64,
    pub cores: usize,
    /// Of `memory_max`, per core (after the process's base).
    pub per_core: u64,
    pub heads_bytes_max: u64,
    pub request_bodies_bytes_max: u64,
    pub query_memory_bytes_max: u64,
    pub part_cache_bytes_max: u64,
    pub compaction_input_bytes_max: u64,
    pub duplicate_fingerprints_bytes_max: u64,
}

impl MemoryBudget {
    /// What each share may cost at worst, as `/metrics` and the refusal name them.
    pub fn charges(&self) -> [(&'static str, u64); 7] {
        [
            ("base", CORE_BASE_BYTES),
            (
                "heads",
                (self.heads_bytes_max as f64 * HEADS_CHARGE).ceil() as u64,
            ),
            ("requests", self.request_bodies_bytes_max),
            ("queries", self.query_memory_bytes_max),
            ("part_cache", self.part_cache_bytes_max),
            (
                "compaction",
                (self.compaction_input_bytes_max as f64 * COMPACTION_CHARGE).ceil() as u64,
            ),
            ("fingerprints", self.duplicate_fingerprints_bytes_max),
        ]
    }
}

/// The default budget for a machine with `machine_bytes` of memory (0: unknown) and `cores`.
pub fn default_memory_max(machine_bytes: u64, cores: usize) -> u64 {
    let formula = MEMORY_MAX_DEFAULT_BASE + MEMORY_MAX_DEFAULT_PER_CORE * cores as u64;
    if machine_bytes == 0 {
        return formula;
    }
    let share = (machine_bytes as f64 * MEMORY_MAX_DEFAULT_MACHINE_SHARE) as u64;
    formula.min(share)
}

/// The least budget that `cores` cores can run in with `request_floor` bytes of requests.
pub fn memory_max_min(cores: usize, request_floor: u64) -> u64 {
    let per_core = CORE_BASE_BYTES
        + (HEADS_BYTES_MIN as f64 * HEADS_CHARGE).ceil() as u64
        + request_floor
        + QUERY_BYTES_MIN
        + PART_CACHE_BYTES_MIN
        + (COMPACTION_INPUT_BYTES_MIN as f64 * COMPACTION_CHARGE).ceil() as u64
        + FINGERPRINTS_BYTES_MIN;
    PROCESS_BASE_BYTES + per_core * cores as u64
}

/// Shares `asked.memory_max` (or the default for `machine_bytes`) between `cores` cores.
/// `request_floor` is the least `request_bodies_bytes_max` may be (the largest push must
/// fit whole). Refuses a budget its explicit shares or floors do not fit in.
pub fn plan(
    asked: MemoryAsked,
    cores: usize,
    machine_bytes: u64,
    request_floor: u64,
) -> Result<MemoryBudget, ConfigError> {
    let cores = cores.max(1);
    let memory_max = asked
        .memory_max
        .unwrap_or_else(|| default_memory_max(machine_bytes, cores));
    let least = memory_max_min(cores, request_floor);
    if memory_max < least {
        return Err(bad(
            "memory_max",
            format!(
                "{} MiB cannot be kept with {cores} core(s): each core needs at least {} MiB \
                 (its base, the smallest heads, the requests of one push of \
                 push_body_bytes_max, queries, the part cache, one merge and the duplicate \
                 check's fingerprints) and the process {} MiB, \
                 {} MiB in all; give more memory or fewer cores",
                memory_max / MIB,
                (least - PROCESS_BASE_BYTES) / cores as u64 / MIB,
                PROCESS_BASE_BYTES / MIB,
                least.div_ceil(MIB),
            ),
        ));
    }
    let per_core = (memory_max - PROCESS_BASE_BYTES) / cores as u64;
    let free = per_core - CORE_BASE_BYTES;
    // Explicit shares first, at their worst-case cost; the rest is shared by weight. A
    // share whose floor is above its weighted part is fixed at its floor, and the others
    // share again what is left (at most once per share).
    let mut fixed = asked;
    let mut budget = share_out(fixed, free, cores, memory_max, per_core, request_floor);
    for _ in 0..6 {
        let floors = [
            (fixed.heads_bytes_max.is_none() && budget.heads_bytes_max == HEADS_BYTES_MIN),
            (fixed.request_bodies_bytes_max.is_none()
                && budget.request_bodies_bytes_max == request_floor),
            (fixed.query_memory_bytes_max.is_none()
                && budget.query_memory_bytes_max == QUERY_BYTES_MIN),
            (fixed.part_cache_bytes_max.is_none()
                && budget.part_cache_bytes_max == PART_CACHE_BYTES_MIN),
            (fixed.compaction_input_bytes_max.is_none()
                && budget.compaction_input_bytes_max == COMPACTION_INPUT_BYTES_MIN),
            (fixed.duplicate_fingerprints_bytes_max.is_none()
                && budget.duplicate_fingerprints_bytes_max == FINGERPRINTS_BYTES_MIN),
        ];
        if !floors.contains(&true) {
            break;
        }
        if floors[0] {
            fixed.heads_bytes_max = Some(budget.heads_bytes_max);
        }
        if floors[1] {
            fixed.request_bodies_bytes_max = Some(budget.request_bodies_bytes_max);
        }
        if floors[2] {
            fixed.query_memory_bytes_max = Some(budget.query_memory_bytes_max);
        }
        if floors[3] {
            fixed.part_cache_bytes_max = Some(budget.part_cache_bytes_max);
        }
        if floors[4] {
            fixed.compaction_input_bytes_max = Some(budget.compaction_input_bytes_max);
        }
        if floors[5] {
            fixed.duplicate_fingerprints_bytes_max = Some(budget.duplicate_fingerprints_bytes_max);
        }
        budget = share_out(fixed, free, cores, memory_max, per_core, request_floor);
    }
    let cost: u64 = budget.charges().iter().map(|(_, b)| b).sum();
    if cost > per_core {
        let named = budget
            .charges()
            .iter()
            .map(|(name, b)| format!("{name} {} MiB", b.div_ceil(MIB)))
            .collect::<Vec<_>>()
            .join(", ");
        return Err(bad(
            "memory_max",
            format!(
                "{} MiB leaves each of {cores} core(s) {} MiB, but the shares set explicitly \
                 (or their least sizes) cost {} MiB at worst per core ({named}); raise \
                 memory_max or lower heads_bytes_max, request_bodies_bytes_max, \
                 query_memory_bytes_max, part_cache_bytes_max, compaction_input_bytes_max or \
                 duplicate_fingerprints_bytes_max",
                memory_max / MIB,
                per_core / MIB,
                cost.div_ceil(MIB),
            ),
        ));
    }
    Ok(budget)
}

/// One sharing of `free` bytes of a core: explicit shares kept, the others by weight.
fn share_out(
    asked: MemoryAsked,
    free: u64,
    cores: usize,
    memory_max: u64,
    per_core: u64,
    request_floor: u64,
) -> MemoryBudget {
    let explicit_cost = asked
        .heads_bytes_max
        .map_or(0.0, |b| b as f64 * HEADS_CHARGE)
        + asked.request_bodies_bytes_max.unwrap_or(0) as f64
        + asked.query_memory_bytes_max.unwrap_or(0) as f64
        + asked.part_cache_bytes_max.unwrap_or(0) as f64
        + asked
            .compaction_input_bytes_max
            .map_or(0.0, |b| b as f64 * COMPACTION_CHARGE)
        + asked.duplicate_fingerprints_bytes_max.unwrap_or(0) as f64;
    let weights: f64 = [
        (asked.heads_bytes_max, WEIGHT_HEADS),
        (asked.request_bodies_bytes_max, WEIGHT_REQUESTS),
        (asked.query_memory_bytes_max, WEIGHT_QUERIES),
        (asked.part_cache_bytes_max, WEIGHT_PART_CACHE),
        (asked.compaction_input_bytes_max, WEIGHT_COMPACTION),
        (asked.duplicate_fingerprints_bytes_max, WEIGHT_FINGERPRINTS),
    ]
    .iter()
    .filter(|(given, _)| given.is_none())
    .map(|(_, w)| w)
    .sum();
    let left = (free as f64 - explicit_cost).max(0.0);
    let share = |weight: f64| {
        if weights == 0.0 {
            0.0
        } else {
            left * weight / weights
        }
    };
    MemoryBudget {
        memory_max,
        cores,
        per_core,
        heads_bytes_max: asked
            .heads_bytes_max
            .unwrap_or_else(|| ((share(WEIGHT_HEADS) / HEADS_CHARGE) as u64).max(HEADS_BYTES_MIN)),
        request_bodies_bytes_max: asked
            .request_bodies_bytes_max
            .unwrap_or_else(|| (share(WEIGHT_REQUESTS) as u64).max(request_floor)),
        query_memory_bytes_max: asked
            .query_memory_bytes_max
            .unwrap_or_else(|| (share(WEIGHT_QUERIES) as u64).max(QUERY_BYTES_MIN)),
        part_cache_bytes_max: asked
            .part_cache_bytes_max
            .unwrap_or_else(|| (share(WEIGHT_PART_CACHE) as u64).max(PART_CACHE_BYTES_MIN)),
        compaction_input_bytes_max: asked.compaction_input_bytes_max.unwrap_or_else(|| {
            ((share(WEIGHT_COMPACTION) / COMPACTION_CHARGE) as u64)
                .clamp(COMPACTION_INPUT_BYTES_MIN, COMPACTION_INPUT_BYTES_LIMIT)
        }),
        duplicate_fingerprints_bytes_max: asked
            .duplicate_fingerprints_bytes_max
            .unwrap_or_else(|| (share(WEIGHT_FINGERPRINTS) as u64).max(FINGERPRINTS_BYTES_MIN)),
    }
}

/// The machine's memory for the default budget: the smaller of `MemTotal` and the cgroup's
/// `memory.max` (a container's limit is its machine). 0 when neither can be read.
pub fn machine_memory_bytes() -> u64 {
    let total = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kib| kib * 1024);
    let cgroup = std::fs::read_to_string("/sys/fs/cgroup/memory.max")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok());
    match (total, cgroup) {
        (0, Some(c)) => c,
        (t, Some(c)) => t.min(c),
        (t, None) => t,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLOOR: u64 = 33 * MIB;

    fn sum(b: &MemoryBudget) -> u64 {
        b.charges().iter().map(|(_, c)| c).sum()
    }

    #[test]
    fn the_default_is_the_formula_or_a_quarter_of_a_small_machine() {
        assert_eq!(default_memory_max(24 << 30, 1), 256 * MIB);
        assert_eq!(default_memory_max(24 << 30, 2), 384 * MIB);
        assert_eq!(default_memory_max(1 << 30, 8), 256 * MIB);
        assert_eq!(default_memory_max(0, 2), 384 * MIB);
    }

    #[test]
    fn every_core_share_fits_in_the_budget() {
        for cores in 1..=16 {
            for mib in [192u64, 256, 384, 1024, 8192] {
                let asked = MemoryAsked {
                    memory_max: Some(mib * MIB),
                    ..MemoryAsked::default()
                };
                let Ok(b) = plan(asked, cores, 0, FLOOR) else {
                    assert!(mib * MIB < memory_max_min(cores, FLOOR), "{cores} {mib}");
                    continue;
                };
                assert!(sum(&b) <= b.per_core, "{cores} cores, {mib} MiB: {b:?}");
                assert!(PROCESS_BASE_BYTES + b.per_core * cores as u64 <= b.memory_max);
                assert!(b.request_bodies_bytes_max >= FLOOR);
                assert!(b.heads_bytes_max >= HEADS_BYTES_MIN);
            }
        }
    }

    #[test]
    fn one_core_of_256_mib_gets_useful_shares() {
        let b = plan(MemoryAsked::default(), 1, 24 << 30, FLOOR).unwrap();
        assert_eq!(b.memory_max, 256 * MIB);
        assert!(b.heads_bytes_max >= 16 * MIB, "{b:?}");
        assert!(b.compaction_input_bytes_max >= 8 * MIB, "{b:?}");
        assert!(b.part_cache_bytes_max >= 8 * MIB, "{b:?}");
    }

    #[test]
    fn a_budget_below_the_floors_is_refused_with_the_least_it_needs() {
        let asked = MemoryAsked {
            memory_max: Some(64 * MIB),
            ..MemoryAsked::default()
        };
        let e = plan(asked, 2, 0, FLOOR).unwrap_err().to_string();
        assert!(e.contains("memory_max") && e.contains("MiB in all"), "{e}");
    }

    #[test]
    fn explicit_shares_that_do_not_fit_are_refused_by_name() {
        let asked = MemoryAsked {
            memory_max: Some(256 * MIB),
            heads_bytes_max: Some(256 * MIB),
            ..MemoryAsked::default()
        };
        let e = plan(asked, 1, 0, FLOOR).unwrap_err().to_string();
        assert!(e.contains("heads") && e.contains("heads_bytes_max"), "{e}");
    }

    #[test]
    fn explicit_shares_are_kept_and_the_others_share_the_rest() {
        let asked = MemoryAsked {
            memory_max: Some(1024 * MIB),
            heads_bytes_max: Some(64 * MIB),
            ..MemoryAsked::default()
        };
        let b = plan(asked, 1, 0, FLOOR).unwrap();
        assert_eq!(b.heads_bytes_max, 64 * MIB);
        assert!(sum(&b) <= b.per_core);
        assert!(b.query_memory_bytes_max > 64 * MIB, "{b:?}");
    }
}

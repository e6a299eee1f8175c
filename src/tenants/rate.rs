//! Per-tenant ingestion rate budgets shared by every core, without locks.
//!
//! Each tenant has one budget, kept as the generic cell rate algorithm keeps it: a single
//! "theoretical arrival time" (TAT). A request of `n` bytes moves the TAT `n / rate` later
//! (from now if it lies in the past); it is refused if that puts the TAT more than
//! `burst / rate` ahead of now, and the refusal says how long until it would fit. That is one
//! compare-and-swap on one atomic per request, so every core charges the same budget.
//!
//! The budgets live in a fixed open-addressing table keyed by a 64-bit hash of the tenant id:
//! a slot is claimed once, with a compare-and-swap, and never freed, so a reader never sees a
//! slot change owner. A full table (more tenants than [`SLOTS`]) refuses nothing: limits
//! then apply to the tenants that have a slot, which the `/metrics` counter makes visible.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::IngestionRate;

/// Tenants with a budget at once.
pub const SLOTS: usize = 1 << 14;
/// Slots probed after the home slot before the table counts as full.
const PROBES: usize = 64;

/// Why a request may not be taken now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Over the rate: it would fit after this long.
    Later(Duration),
    /// Larger than the burst: it never fits.
    Never,
}

struct Slot {
    /// Hash of the tenant that owns the slot (0: free; a tenant hashing to 0 is stored as 1).
    key: AtomicU64,
    /// Theoretical arrival time, in nanoseconds since the table's epoch.
    tat_ns: AtomicU64,
}

/// Every tenant's budget (see the module docs).
pub struct RateTable {
    epoch: Instant,
    slots: Box<[Slot]>,
    /// Tenants that found the table full.
    pub unbudgeted: AtomicU64,
}

impl Default for RateTable {
    fn default() -> Self {
        RateTable {
            epoch: Instant::now(),
            slots: (0..SLOTS)
                .map(|_| Slot {
                    key: AtomicU64::new(0),
                    tat_ns: AtomicU64::new(0),
                })
                .collect(),
            unbudgeted: AtomicU64::new(0),
        }
    }
}

impl RateTable {
    /// Charges `bytes` to `tenant`'s budget now, or says why not.
    pub fn take(&self, tenant: &str, bytes: u64, limit: &IngestionRate) -> Result<(), Refused> {
        self.take_at(tenant, bytes, limit, self.epoch.elapsed())
    }

    /// [`RateTable::take`] at `now` since the table's epoch.
    pub fn take_at(
        &self,
        tenant: &str,
        bytes: u64,
        limit: &IngestionRate,
        now: Duration,
    ) -> Result<(), Refused> {
        if limit.is_off() {
            return Ok(());
        }
        if bytes as f64 > limit.burst_bytes {
            return Err(Refused::Never);
        }
        let Some(slot) = self.slot(tenant) else {
            return Ok(());
        };
        let now = now.as_nanos() as u64;
        let ns_per_byte = 1e9 / limit.bytes_per_second;
        let cost = (bytes as f64 * ns_per_byte) as u64;
        let tolerance = (limit.burst_bytes * ns_per_byte) as u64;
        let mut tat = slot.tat_ns.load(Ordering::Relaxed);
        loop {
            let next = tat.max(now).saturating_add(cost);
            if next - now > tolerance {
                return Err(Refused::Later(Duration::from_nanos(next - now - tolerance)));
            }
            match slot
                .tat_ns
                .compare_exchange_weak(tat, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return Ok(()),
                Err(seen) => tat = seen,
            }
        }
    }

    /// Charges `bytes` to `tenant`'s budget whatever it holds (they were read already, as a
    /// syslog stream's lines are), and says how long the caller should wait before taking
    /// more so that the tenant keeps to its rate on average.
    pub fn debit(&self, tenant: &str, bytes: u64, limit: &IngestionRate) -> Duration {
        self.debit_at(tenant, bytes, limit, self.epoch.elapsed())
    }

    /// [`RateTable::debit`] at `now` since the table's epoch.
    pub fn debit_at(
        &self,
        tenant: &str,
        bytes: u64,
        limit: &IngestionRate,
        now: Duration,
    ) -> Duration {
        if limit.is_off() {
            return Duration::ZERO;
        }
        let Some(slot) = self.slot(tenant) else {
            return Duration::ZERO;
        };
        let now = now.as_nanos() as u64;
        let ns_per_byte = 1e9 / limit.bytes_per_second;
        let cost = (bytes as f64 * ns_per_byte) as u64;
        let tolerance = (limit.burst_bytes * ns_per_byte) as u64;
        let before = slot
            .tat_ns
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |tat| {
                Some(tat.max(now).saturating_add(cost))
            })
            .expect("the update always succeeds");
        let after = before.max(now).saturating_add(cost);
        Duration::from_nanos(after.saturating_sub(now).saturating_sub(tolerance))
    }

    /// The tenant's slot, claimed on first use; `None` when the table is full.
    fn slot(&self, tenant: &str) -> Option<&Slot> {
        let key = xxhash_rust::xxh3::xxh3_64(tenant.as_bytes()).max(1);
        let home = key as usize % SLOTS;
        for probe in 0..PROBES {
            let slot = &self.slots[(home + probe) % SLOTS];
            match slot.key.load(Ordering::Acquire) {
                k if k == key => return Some(slot),
                0 => match slot
                    .key
                    .compare_exchange(0, key, Ordering::AcqRel, Ordering::Acquire)
                {
                    Ok(_) => return Some(slot),
                    Err(k) if k == key => return Some(slot),
                    Err(_) => continue,
                },
                _ => continue,
            }
        }
        self.unbudgeted.fetch_add(1, Ordering::Relaxed);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: f64 = 1024.0 * 1024.0;

    fn limit(rate_mib: f64, burst_mib: f64) -> IngestionRate {
        IngestionRate {
            bytes_per_second: rate_mib * MIB,
            burst_bytes: burst_mib * MIB,
        }
    }

    fn at_ms(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    #[test]
    fn a_burst_is_taken_then_the_rate_refills_it() {
        let t = RateTable::default();
        let l = limit(1.0, 2.0);
        let mib = MIB as u64;
        assert_eq!(t.take_at("a", mib, &l, at_ms(0)), Ok(()));
        assert_eq!(t.take_at("a", mib, &l, at_ms(0)), Ok(()));
        // The burst is spent: one more MiB fits after one second.
        match t.take_at("a", mib, &l, at_ms(0)) {
            Err(Refused::Later(d)) => assert!((d.as_secs_f64() - 1.0).abs() < 1e-3, "{d:?}"),
            other => panic!("{other:?}"),
        }
        assert!(t.take_at("a", mib, &l, at_ms(500)).is_err());
        assert_eq!(t.take_at("a", mib, &l, at_ms(1000)), Ok(()));
    }

    #[test]
    fn a_debit_always_takes_and_says_how_long_to_wait() {
        let t = RateTable::default();
        let l = limit(1.0, 1.0);
        let mib = MIB as u64;
        assert_eq!(t.debit_at("s", mib, &l, at_ms(0)), Duration::ZERO);
        // Beyond the burst: taken anyway, and the wait brings the tenant back to its rate.
        let wait = t.debit_at("s", 2 * mib, &l, at_ms(0));
        assert!((wait.as_secs_f64() - 2.0).abs() < 1e-3, "{wait:?}");
        // The debt holds for everyone: a push is refused until it is paid.
        assert!(t.take_at("s", 1, &l, at_ms(1500)).is_err());
        assert_eq!(t.take_at("s", 1, &l, at_ms(2001)), Ok(()));
        assert_eq!(
            t.debit_at("s", mib, &IngestionRate::OFF, at_ms(0)),
            Duration::ZERO
        );
    }

    #[test]
    fn a_request_larger_than_the_burst_never_fits() {
        let t = RateTable::default();
        let l = limit(1.0, 2.0);
        assert_eq!(
            t.take_at("a", 3 * MIB as u64, &l, at_ms(0)),
            Err(Refused::Never)
        );
        // It took nothing from the budget.
        assert_eq!(t.take_at("a", 2 * MIB as u64, &l, at_ms(0)), Ok(()));
    }

    #[test]
    fn tenants_have_budgets_of_their_own() {
        let t = RateTable::default();
        let l = limit(1.0, 1.0);
        assert_eq!(t.take_at("noisy", MIB as u64, &l, at_ms(0)), Ok(()));
        assert!(t.take_at("noisy", 1, &l, at_ms(0)).is_err());
        assert_eq!(t.take_at("quiet", MIB as u64, &l, at_ms(0)), Ok(()));
    }

    #[test]
    fn off_takes_everything() {
        let t = RateTable::default();
        for _ in 0..1000 {
            assert_eq!(
                t.take_at("a", u64::MAX / 2, &IngestionRate::OFF, at_ms(0)),
                Ok(())
            );
        }
    }

    #[test]
    fn over_time_the_taken_bytes_keep_to_the_rate() {
        // Four threads, as four cores, ask far beyond the rate for a simulated 10 s.
        let t = std::sync::Arc::new(RateTable::default());
        let l = limit(1.0, 1.0);
        let taken: u64 = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    let t = t.clone();
                    s.spawn(move || {
                        let mut taken = 0u64;
                        for ms in 0..10_000 {
                            for _ in 0..4 {
                                if t.take_at("a", 4096, &l, at_ms(ms)).is_ok() {
                                    taken += 4096;
                                }
                            }
                        }
                        taken
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        // 10 s at 1 MiB/s plus the 1 MiB burst, less what threads lagging behind the
        // others' clock could not use.
        let expected = 11.0 * MIB;
        assert!(
            (taken as f64) <= expected + 4096.0 && (taken as f64) > 0.9 * expected,
            "taken {taken}, expected about {expected}"
        );
    }

    #[test]
    fn a_full_table_refuses_nothing_and_counts_it() {
        let t = RateTable::default();
        let l = limit(1.0, 1.0);
        for i in 0..2 * SLOTS {
            let _ = t.take_at(&format!("tenant-{i}"), 1, &l, at_ms(0));
        }
        assert!(t.unbudgeted.load(Ordering::Relaxed) > 0);
        let homeless = (0..2 * SLOTS)
            .map(|i| format!("tenant-{i}"))
            .find(|name| t.slot(name).is_none())
            .expect("a tenant without a slot");
        for _ in 0..10 {
            assert_eq!(t.take_at(&homeless, MIB as u64, &l, at_ms(0)), Ok(()));
        }
    }
}

//! What a soak found wrong: violations (each fails the run, with a precise message), and
//! suspects, failures of requests made while the server was up, which become violations
//! unless they fall just before a crash (a crash makes every request in flight fail, and
//! one crash should read as one finding, with its noise counted, not as a hundred).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Messages kept per kind of violation; the rest are counted. Enough to see a pattern
/// (which lines, which streams) without a report of a million lost lines.
pub const MESSAGES_PER_KIND_MAX: usize = 20;
/// Failures within this long before a crash was noticed are the crash's noise. The
/// supervisor looks at the process every 50 ms; a request to a dying server fails within
/// milliseconds, but the crash itself may take a moment (a core dump, an abort message).
pub const CRASH_NOISE_WINDOW: Duration = Duration::from_secs(3);

/// A failed request while the server was up, not yet judged.
#[derive(Debug, Clone)]
struct Suspect {
    incarnation: u32,
    at: Instant,
    kind: &'static str,
    message: String,
}

#[derive(Debug, Default)]
struct Inner {
    /// Kind -> (count, first messages).
    violations: BTreeMap<&'static str, (u64, Vec<String>)>,
    suspects: Vec<Suspect>,
    notes: Vec<String>,
}

/// Violations, suspects and notes of a run, shared by every thread.
#[derive(Debug, Default)]
pub struct Findings {
    inner: Mutex<Inner>,
}

impl Findings {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A violation of `kind` (a short name such as `loss`, `crash`, `query-5xx`).
    pub fn violation(&self, kind: &'static str, message: String) {
        let mut inner = self.lock();
        let entry = inner.violations.entry(kind).or_default();
        entry.0 += 1;
        if entry.1.len() < MESSAGES_PER_KIND_MAX {
            eprintln!("soak: VIOLATION {kind}: {message}");
            entry.1.push(message);
        }
    }

    /// Counts `n` more violations of `kind` whose messages are not kept.
    pub fn more(&self, kind: &'static str, n: u64) {
        self.lock().violations.entry(kind).or_default().0 += n;
    }

    /// A failure of a request made while incarnation `incarnation` was up.
    pub fn suspect(&self, incarnation: u32, kind: &'static str, message: String) {
        self.lock().suspects.push(Suspect {
            incarnation,
            at: Instant::now(),
            kind,
            message,
        });
    }

    /// Judges the suspects of an incarnation that has ended: those within
    /// [`CRASH_NOISE_WINDOW`] before `crash_noticed` are the crash's noise (their count is
    /// returned), the others are violations.
    pub fn settle(&self, incarnation: u32, crash_noticed: Option<Instant>) -> u64 {
        let suspects: Vec<Suspect> = {
            let mut inner = self.lock();
            let (mine, others): (Vec<Suspect>, Vec<Suspect>) = inner
                .suspects
                .drain(..)
                .partition(|s| s.incarnation == incarnation);
            inner.suspects = others;
            mine
        };
        let mut noise = 0;
        for s in suspects {
            let near_crash = crash_noticed
                .is_some_and(|c| s.at + CRASH_NOISE_WINDOW >= c && s.at <= c + CRASH_NOISE_WINDOW);
            if near_crash {
                noise += 1;
            } else {
                self.violation(s.kind, s.message);
            }
        }
        noise
    }

    /// Something worth saying that is not a failure (a kind of query the server does not
    /// answer, a corpus that was missing).
    pub fn note(&self, message: String) {
        eprintln!("soak: note: {message}");
        let mut inner = self.lock();
        if !inner.notes.contains(&message) {
            inner.notes.push(message);
        }
    }

    pub fn total(&self) -> u64 {
        self.lock().violations.values().map(|(n, _)| n).sum()
    }

    /// `(kind, count, first messages)` of every kind, by kind.
    pub fn violations(&self) -> Vec<(&'static str, u64, Vec<String>)> {
        self.lock()
            .violations
            .iter()
            .map(|(k, (n, m))| (*k, *n, m.clone()))
            .collect()
    }

    pub fn notes(&self) -> Vec<String> {
        self.lock().notes.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suspects_near_a_crash_are_its_noise() {
        let f = Findings::default();
        f.suspect(1, "query-5xx", "a".into());
        f.suspect(1, "query-5xx", "b".into());
        f.suspect(2, "query-5xx", "c".into());
        assert_eq!(f.settle(1, Some(Instant::now())), 2);
        assert_eq!(f.total(), 0);
        assert_eq!(f.settle(2, None), 0);
        assert_eq!(f.total(), 1);
        assert_eq!(f.violations()[0].2, vec!["c".to_string()]);
    }

    #[test]
    fn messages_are_bounded_but_counted() {
        let f = Findings::default();
        for i in 0..(MESSAGES_PER_KIND_MAX + 5) {
            f.violation("loss", format!("line {i}"));
        }
        f.more("loss", 100);
        let v = f.violations();
        assert_eq!(v[0].1, MESSAGES_PER_KIND_MAX as u64 + 105);
        assert_eq!(v[0].2.len(), MESSAGES_PER_KIND_MAX);
        f.note("x".into());
        f.note("x".into());
        assert_eq!(f.notes().len(), 1);
    }
}

//! Alert state on disk: one JSON file per tenant in `<data-dir>/ruler/`.
//!
//! Which question it answers: "what did the alerts look like before the restart?" Every
//! active alert (pending with its `activeAt`, firing with its `firedAt` and when it was last
//! sent, resolved and still being resent) of every alerting rule is written, atomically,
//! after each evaluation that changed one. At start the file is read back and each rule that
//! loads with the same group, name and expression takes its alerts again: a pending alert
//! keeps its `for` timer, a firing one stays firing with its `startsAt` and is not sent again
//! before its resend delay, so a restart neither re-fires an alert nor forgets one. The
//! `[[alert]]` rules ([`super::demo`]) keep their alerts the same way, and their sliding
//! windows too (the raw slots, saved at most once a second while they change, and at a
//! clean stop): lines counted before a restart still count after it. A file that cannot be
//! read is reported and ignored: the alerts start over, as Prometheus' do.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::TenantRules;
use super::alerts::AlertSet;
use super::demo::{NAMESPACE, SavedWindow, StreamingAlerts};

/// One tenant's saved alerts: group key -> rule key -> alerts.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct TenantState {
    pub groups: BTreeMap<String, BTreeMap<String, AlertSet>>,
    /// The `[[alert]]` windows: group key -> window (absent in files of older versions).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub windows: BTreeMap<String, SavedWindow>,
}

/// The file of `tenant`'s state.
pub fn path(dir: &Path, tenant: &str) -> PathBuf {
    dir.join(format!("{tenant}.json"))
}

/// What to write for `tenant`: the alerts of its alerting rules that have any, and the
/// windows of its `[[alert]]` rules.
pub fn snapshot(
    tenant: &str,
    rules: Option<&TenantRules>,
    streaming: &StreamingAlerts,
) -> TenantState {
    let mut out = TenantState::default();
    for r in streaming.rules.iter().filter(|r| r.tenant == tenant) {
        out.windows
            .insert(super::group_key(NAMESPACE, &r.line.name), r.save());
    }
    let Some(t) = rules else { return out };
    for (ns, n) in &t.namespaces {
        for g in &n.groups {
            let mut rules = BTreeMap::new();
            for (rule, st) in g.def.rules.iter().zip(&g.rules) {
                if !st.alerts.alerts.is_empty() {
                    rules.insert(rule.key(), st.alerts.clone());
                }
            }
            if !rules.is_empty() {
                out.groups.insert(super::group_key(ns, &g.def.name), rules);
            }
        }
    }
    out
}

/// Every tenant's saved state under `dir`; unreadable files are reported and skipped.
pub fn load_all(dir: &Path) -> BTreeMap<String, TenantState> {
    let mut out = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(tenant) = name.strip_suffix(".json") else {
            continue;
        };
        if tenant.starts_with('.') {
            continue;
        }
        match std::fs::read(e.path())
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice::<TenantState>(&b).map_err(|e| e.to_string()))
        {
            Ok(s) => {
                out.insert(tenant.to_string(), s);
            }
            Err(err) => eprintln!(
                "shardlog: ruler state {} not read ({err}); its alerts start over",
                e.path().display()
            ),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ruler::alerts::{Element, Timing};

    #[test]
    fn saved_state_is_read_back_and_broken_files_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let mut set = AlertSet::default();
        let timing = Timing {
            for_ms: 0,
            keep_firing_for_ms: 0,
            interval_ms: 1000,
            resend_delay_ms: 1000,
        };
        set.apply(
            5,
            vec![Element {
                labels: vec![("alertname".into(), "A".into())],
                annotations: vec![],
                value: 1.0,
            }],
            &timing,
        );
        let mut st = TenantState::default();
        st.groups
            .entry("ns\u{0}g".into())
            .or_default()
            .insert("alert\u{0}A\u{0}expr".into(), set);
        crate::ruler::files::write_atomic(
            &path(dir.path(), "team-a"),
            &serde_json::to_vec(&st).unwrap(),
        )
        .unwrap();
        std::fs::write(dir.path().join("broken.json"), "{not json").unwrap();
        let all = load_all(dir.path());
        assert_eq!(all.len(), 1);
        assert_eq!(all["team-a"], st);
    }
}

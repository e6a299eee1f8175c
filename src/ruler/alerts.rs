//! Alert states: Prometheus' alerting rule state machine, evaluation by evaluation.
//!
//! Which question it answers: "after this evaluation, which alerts are pending, firing or
//! resolved, and which must be sent to Alertmanager now?" It is Prometheus'
//! `rules/alerting.go` (`Eval` and `sendAlerts`) without the query: every element of the
//! rule's result vector is an alert (its labels plus the rule's, and `alertname`); a new one
//! is pending from its `activeAt`, fires once it stayed active `for` long; one that leaves
//! the result resolves (a pending one is forgotten), unless `keep_firing_for` keeps it
//! firing; a resolved one is kept 15 minutes so that its resolution is resent. An alert is
//! sent when it fires or resolves and again every `resend_delay`, with an `endsAt` four
//! evaluation intervals ahead (or its resolution time), as Prometheus does. Times are Unix
//! milliseconds; the state serializes (see [`super::state`]) so that a restart neither
//! re-fires nor forgets.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// How long a resolved alert is kept (and resent), as Prometheus' `resolvedRetention`.
pub const RESOLVED_RETENTION_MS: i64 = 15 * 60 * 1000;

/// An alert's state, with Prometheus' names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    Inactive,
    Pending,
    Firing,
}

impl AlertState {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Inactive => "inactive",
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
        }
    }
}

/// One alert of a rule: one element of its result vector, then its history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Sorted by name, `alertname` included.
    pub labels: Vec<(String, String)>,
    pub annotations: Vec<(String, String)>,
    pub state: AlertState,
    pub value: f64,
    pub active_at_ms: i64,
    /// When it started firing; 0: never.
    pub fired_at_ms: i64,
    /// When it resolved; 0: not resolved.
    pub resolved_at_ms: i64,
    /// When it was last sent; 0: never.
    pub last_sent_at_ms: i64,
    /// Until when the last send said it holds.
    pub valid_until_ms: i64,
    /// Since when `keep_firing_for` has kept it firing; 0: not kept.
    pub keep_firing_since_ms: i64,
}

/// An element of a rule's result: the labels (already with the rule's labels and
/// `alertname`) and annotations it renders to, and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Element {
    pub labels: Vec<(String, String)>,
    pub annotations: Vec<(String, String)>,
    pub value: f64,
}

/// The timing of a rule: its `for`, `keep_firing_for`, its group's interval and the
/// ruler's resend delay, in milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub for_ms: i64,
    pub keep_firing_for_ms: i64,
    pub interval_ms: i64,
    pub resend_delay_ms: i64,
}

/// The active alerts of one alerting rule, keyed by their labels.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AlertSet {
    pub alerts: BTreeMap<String, Alert>,
}

/// What changed in one evaluation, for the caller's persistence.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Changed {
    /// Some alert appeared, changed state or was forgotten.
    pub states: bool,
}

/// The key of a label set: its pairs in order, unambiguously joined.
pub fn labels_key(labels: &[(String, String)]) -> String {
    let mut key = String::new();
    for (n, v) in labels {
        key.push_str(n);
        key.push('\u{0}');
        key.push_str(v);
        key.push('\u{1}');
    }
    key
}

impl AlertSet {
    /// Applies one evaluation at `ts_ms` with `result` (Prometheus' `AlertingRule.Eval`
    /// after the query). Duplicate label sets in the result are the caller's error to
    /// report; here the last one wins.
    pub fn apply(&mut self, ts_ms: i64, result: Vec<Element>, timing: &Timing) -> Changed {
        let mut changed = Changed::default();
        let mut seen = std::collections::HashSet::new();
        for e in result {
            let key = labels_key(&e.labels);
            seen.insert(key.clone());
            match self.alerts.get_mut(&key) {
                Some(a) if a.state != AlertState::Inactive => {
                    a.value = e.value;
                    a.annotations = e.annotations;
                }
                _ => {
                    // New, or back after it resolved: a fresh alert (Prometheus replaces
                    // the resolved one).
                    self.alerts.insert(
                        key,
                        Alert {
                            labels: e.labels,
                            annotations: e.annotations,
                            state: AlertState::Pending,
                            value: e.value,
                            active_at_ms: ts_ms,
                            fired_at_ms: 0,
                            resolved_at_ms: 0,
                            last_sent_at_ms: 0,
                            valid_until_ms: 0,
                            keep_firing_since_ms: 0,
                        },
                    );
                    changed.states = true;
                }
            }
        }
        let mut forget = Vec::new();
        for (key, a) in self.alerts.iter_mut() {
            if !seen.contains(key) {
                if timing.keep_firing_for_ms > 0 && a.state == AlertState::Firing {
                    if a.keep_firing_since_ms == 0 {
                        a.keep_firing_since_ms = ts_ms;
                        changed.states = true;
                    }
                    if ts_ms - a.keep_firing_since_ms < timing.keep_firing_for_ms {
                        continue;
                    }
                }
                if a.state == AlertState::Pending
                    || (a.resolved_at_ms != 0 && ts_ms - a.resolved_at_ms > RESOLVED_RETENTION_MS)
                {
                    forget.push(key.clone());
                    continue;
                }
                if a.state != AlertState::Inactive {
                    a.state = AlertState::Inactive;
                    a.resolved_at_ms = ts_ms;
                    changed.states = true;
                }
                continue;
            }
            if a.keep_firing_since_ms != 0 {
                a.keep_firing_since_ms = 0;
                changed.states = true;
            }
            if a.state == AlertState::Pending && ts_ms - a.active_at_ms >= timing.for_ms {
                a.state = AlertState::Firing;
                a.fired_at_ms = ts_ms;
                changed.states = true;
            }
        }
        for key in forget {
            self.alerts.remove(&key);
            changed.states = true;
        }
        changed
    }

    /// The alerts to send at `ts_ms` (Prometheus' `sendAlerts` with `needsSending`): each
    /// is marked sent, with its `endsAt`.
    pub fn due(&mut self, ts_ms: i64, timing: &Timing) -> Vec<Notice> {
        let mut out = Vec::new();
        for a in self.alerts.values_mut() {
            if !needs_sending(a, ts_ms, timing.resend_delay_ms) {
                continue;
            }
            a.last_sent_at_ms = ts_ms;
            let delta = timing.resend_delay_ms.max(timing.interval_ms);
            a.valid_until_ms = ts_ms + 4 * delta;
            let ends_at_ms = if a.resolved_at_ms != 0 {
                a.resolved_at_ms
            } else {
                a.valid_until_ms
            };
            out.push(Notice {
                labels: a.labels.clone(),
                annotations: a.annotations.clone(),
                starts_at_ms: a.fired_at_ms.max(a.active_at_ms),
                ends_at_ms,
            });
        }
        out
    }

    /// The alerts pending or firing.
    pub fn active(&self) -> impl Iterator<Item = &Alert> {
        self.alerts
            .values()
            .filter(|a| a.state != AlertState::Inactive)
    }

    /// The rule's state as Prometheus' API shows it: firing if any alert fires, else
    /// pending if any is pending, else inactive.
    pub fn rule_state(&self) -> AlertState {
        let mut state = AlertState::Inactive;
        for a in self.alerts.values() {
            match a.state {
                AlertState::Firing => return AlertState::Firing,
                AlertState::Pending => state = AlertState::Pending,
                AlertState::Inactive => {}
            }
        }
        state
    }
}

/// Prometheus' `Alert.needsSending`: never while pending; at once when it resolved since it
/// was last sent; else every `resend_delay`.
fn needs_sending(a: &Alert, ts_ms: i64, resend_delay_ms: i64) -> bool {
    if a.state == AlertState::Pending {
        return false;
    }
    if a.last_sent_at_ms == 0 || a.resolved_at_ms > a.last_sent_at_ms {
        return true;
    }
    a.last_sent_at_ms + resend_delay_ms < ts_ms
}

/// One alert to send to Alertmanager.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    pub labels: Vec<(String, String)>,
    pub annotations: Vec<(String, String)>,
    pub starts_at_ms: i64,
    pub ends_at_ms: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1000;

    fn el(app: &str, value: f64) -> Element {
        Element {
            labels: vec![
                ("alertname".into(), "HighErrors".into()),
                ("app".into(), app.into()),
            ],
            annotations: vec![("summary".into(), format!("{app} {value}"))],
            value,
        }
    }

    fn timing(for_s: i64, keep_s: i64) -> Timing {
        Timing {
            for_ms: for_s * S,
            keep_firing_for_ms: keep_s * S,
            interval_ms: 10 * S,
            resend_delay_ms: 60 * S,
        }
    }

    #[test]
    fn pending_then_firing_after_for_then_resolved() {
        let t = timing(30, 0);
        let mut set = AlertSet::default();
        assert!(set.apply(0, vec![el("web", 12.0)], &t).states);
        assert_eq!(set.rule_state(), AlertState::Pending);
        assert!(set.due(0, &t).is_empty(), "a pending alert is never sent");
        set.apply(20 * S, vec![el("web", 13.0)], &t);
        assert_eq!(set.rule_state(), AlertState::Pending);
        set.apply(30 * S, vec![el("web", 14.0)], &t);
        assert_eq!(set.rule_state(), AlertState::Firing);
        let sent = set.due(30 * S, &t);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].starts_at_ms, 30 * S);
        assert_eq!(sent[0].ends_at_ms, 30 * S + 4 * 60 * S);
        assert_eq!(sent[0].annotations[0].1, "web 14");
        assert!(
            set.due(40 * S, &t).is_empty(),
            "not again before the resend delay"
        );
        assert!(
            set.due(90 * S, &t).is_empty(),
            "not at the resend delay itself"
        );
        assert_eq!(
            set.due(91 * S, &t).len(),
            1,
            "resent after the resend delay"
        );
        set.apply(100 * S, vec![], &t);
        assert_eq!(set.rule_state(), AlertState::Inactive);
        let resolved = set.due(100 * S, &t);
        assert_eq!(resolved.len(), 1, "the resolution is sent at once");
        assert_eq!(resolved[0].ends_at_ms, 100 * S);
        // Kept (and resent) for 15 minutes, then forgotten.
        set.apply(100 * S + RESOLVED_RETENTION_MS, vec![], &t);
        assert_eq!(set.alerts.len(), 1);
        set.apply(101 * S + RESOLVED_RETENTION_MS, vec![], &t);
        assert!(set.alerts.is_empty());
    }

    #[test]
    fn a_pending_alert_that_leaves_the_result_is_forgotten() {
        let t = timing(60, 0);
        let mut set = AlertSet::default();
        set.apply(0, vec![el("web", 1.0)], &t);
        set.apply(10 * S, vec![], &t);
        assert!(set.alerts.is_empty());
        set.apply(20 * S, vec![el("web", 1.0)], &t);
        assert_eq!(set.alerts.values().next().unwrap().active_at_ms, 20 * S);
    }

    #[test]
    fn without_for_an_alert_fires_at_once() {
        let t = timing(0, 0);
        let mut set = AlertSet::default();
        set.apply(5 * S, vec![el("a", 1.0), el("b", 2.0)], &t);
        assert_eq!(set.active().count(), 2);
        assert!(set.active().all(|a| a.state == AlertState::Firing));
    }

    #[test]
    fn keep_firing_for_holds_a_firing_alert() {
        let t = timing(0, 30);
        let mut set = AlertSet::default();
        set.apply(0, vec![el("web", 1.0)], &t);
        set.apply(10 * S, vec![], &t);
        set.apply(30 * S, vec![], &t);
        assert_eq!(set.rule_state(), AlertState::Firing, "kept firing");
        set.apply(40 * S, vec![], &t);
        assert_eq!(set.rule_state(), AlertState::Inactive);
        // Back in the result while kept: the timer restarts.
        let mut set = AlertSet::default();
        set.apply(0, vec![el("web", 1.0)], &t);
        set.apply(10 * S, vec![], &t);
        set.apply(20 * S, vec![el("web", 1.0)], &t);
        set.apply(45 * S, vec![], &t);
        assert_eq!(set.rule_state(), AlertState::Firing);
    }

    #[test]
    fn a_resolved_alert_that_comes_back_is_a_new_one() {
        let t = timing(0, 0);
        let mut set = AlertSet::default();
        set.apply(0, vec![el("web", 1.0)], &t);
        set.apply(10 * S, vec![], &t);
        set.apply(20 * S, vec![el("web", 1.0)], &t);
        let a = set.alerts.values().next().unwrap();
        assert_eq!(
            (a.state, a.active_at_ms, a.resolved_at_ms),
            (AlertState::Firing, 20 * S, 0)
        );
    }

    #[test]
    fn state_round_trips_through_json() {
        let t = timing(0, 0);
        let mut set = AlertSet::default();
        set.apply(0, vec![el("web", 1.5)], &t);
        set.due(0, &t);
        let text = serde_json::to_string(&set).unwrap();
        let back: AlertSet = serde_json::from_str(&text).unwrap();
        assert_eq!(back, set);
    }
}

//! The evaluation loop: each core evaluates the groups of the tenants it owns, each at its
//! interval, every rule a LogQL metric query at the evaluation time.
//!
//! Which question it answers: "when is a group evaluated, and what becomes of each rule's
//! result?" Each group's evaluations fall on a fixed grid (a multiple of its interval plus
//! an offset from its name, as Prometheus spreads groups); a late core evaluates the latest
//! slot and skips the missed ones (Prometheus counts them as missed too). A rule runs
//! through the query engine like any query of its tenant (its limits, its timeout, in the
//! query task queue); an alerting rule's result goes through [`super::alerts`] and the
//! alerts due are handed to the notifier; a recording rule's samples, and the `ALERTS` and
//! `ALERTS_FOR_STATE` series of the alerting rules, go to remote write. State that changed
//! is written to disk off the executor (`spawn_blocking`).

use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::alerts::{AlertState, Element, Timing};
use super::outbox::{AlertNotice, Series, WebhookNotice};
use super::rules::{Group, Rule, RuleKind};
use super::{Ruler, files, group_key};
use crate::ingest::listeners::now_ns;
use crate::model::Labels;
use crate::query::eval::MetricResult;
use crate::query::plan::Steps;
use crate::query::template::{TemplateData, TemplateVar};
use crate::runtime::Core;

/// How often a core looks for groups that are due.
const TICK: Duration = Duration::from_millis(100);

/// A group due for evaluation on this core.
struct Due {
    tenant: String,
    namespace: String,
    group: Arc<Group>,
    ts_ms: i64,
}

/// Starts the core's evaluation loop (and, on core 0, the watch of the rules directory), in
/// the query task queue: a rule is a query.
pub fn spawn(core: &Rc<Core>) {
    let core = core.clone();
    let tq = core.query_tq;
    glommio::spawn_local_into(run(core), tq)
        .expect("the query queue exists")
        .detach();
}

async fn run(core: Rc<Core>) {
    let ruler = core.ruler.clone();
    let mut next_reload = Instant::now();
    while !core.lifecycle.is_stopping() {
        if core.id == 0 && Instant::now() >= next_reload {
            for m in ruler.reload() {
                eprintln!("shardlog: rules: {m}");
            }
            next_reload = Instant::now() + super::RELOAD_INTERVAL;
        }
        if core.lifecycle.all_recovered() {
            // The `[[alert]]` rules of this core's tenants: a crossing is evaluated by the
            // shard that stored the line; this tick resolves and resends.
            for (i, r) in ruler.streaming.rules.iter().enumerate() {
                if ruler.owner(&r.tenant) == core.id {
                    evaluate_streaming(&ruler, i);
                }
            }
            for due in due_groups(&ruler, core.id, now_ns() / 1_000_000) {
                evaluate_group(&core, &ruler, due).await;
            }
            write_states(&ruler).await;
        }
        glommio::timer::sleep(TICK).await;
    }
}

/// Saves, at a clean stop, the `[[alert]]` windows and alerts of this core's tenants as they
/// are once ingest has drained, so that no line counted before the stop is forgotten after
/// it. Awaited by the core's shutdown (a detached task would not outlive the executor).
pub async fn save_on_stop(core: &Rc<Core>) {
    core.ruler.mark_streaming_dirty(core.id);
    write_states(&core.ruler).await;
}

/// Prometheus' group offset: where in its interval a group's evaluations fall, from a hash
/// of its tenant, namespace and name, so that groups do not all run at once.
fn slot_offset_ms(tenant: &str, ns: &str, name: &str, interval_ms: i64) -> i64 {
    let key = format!("{tenant}\u{0}{ns}\u{0}{name}");
    (xxhash_rust::xxh3::xxh3_64(key.as_bytes()) % interval_ms.max(1) as u64) as i64
}

/// The latest evaluation time of a group's grid at or before `now_ms`.
fn slot_at(now_ms: i64, offset_ms: i64, interval_ms: i64) -> i64 {
    now_ms - (now_ms - offset_ms).rem_euclid(interval_ms.max(1))
}

/// The groups of this core's tenants whose next evaluation is due, each moved to its next
/// slot.
fn due_groups(ruler: &Ruler, core_id: usize, now_ms: i64) -> Vec<Due> {
    let mut out = Vec::new();
    let mut inner = ruler.lock();
    for (tenant, t) in inner.tenants.iter_mut() {
        if ruler.owner(tenant) != core_id {
            continue;
        }
        for (ns, n) in t.namespaces.iter_mut() {
            if n.streaming {
                continue;
            }
            for g in n.groups.iter_mut() {
                let interval_ms = (g.def.interval_ns / 1_000_000).max(1);
                let offset = slot_offset_ms(tenant, ns, &g.def.name, interval_ms);
                if g.next_eval_ms == 0 {
                    // First sight: evaluate at once, then on the grid.
                    g.next_eval_ms = now_ms;
                }
                if g.next_eval_ms > now_ms {
                    continue;
                }
                let ts_ms = slot_at(now_ms, offset, interval_ms).max(g.last_eval_ms + 1);
                g.next_eval_ms = slot_at(now_ms, offset, interval_ms) + interval_ms;
                out.push(Due {
                    tenant: tenant.clone(),
                    namespace: ns.clone(),
                    group: g.def.clone(),
                    ts_ms,
                });
            }
        }
    }
    out
}

/// What one rule's evaluation produced, applied under the lock afterwards.
struct RuleOutcome {
    result: Result<Vec<(Labels, f64)>, String>,
    seconds: f64,
}

async fn evaluate_group(core: &Rc<Core>, ruler: &Ruler, due: Due) {
    let started = Instant::now();
    let ts_ns = due.ts_ms.saturating_mul(1_000_000);
    let mut outcomes = Vec::with_capacity(due.group.rules.len());
    for rule in &due.group.rules {
        let t = Instant::now();
        let result =
            crate::query::engine::metric(core, &due.tenant, &rule.expr, Steps::instant(ts_ns))
                .await
                .map(vector)
                .map_err(|e| e.to_string());
        ruler.stats.evaluations.fetch_add(1, Ordering::Relaxed);
        if result.is_err() {
            ruler
                .stats
                .evaluation_failures
                .fetch_add(1, Ordering::Relaxed);
        }
        outcomes.push(RuleOutcome {
            result,
            seconds: t.elapsed().as_secs_f64(),
        });
    }
    let mut notices = Vec::new();
    let mut samples = Vec::new();
    let mut hooks = Vec::new();
    {
        let mut inner = ruler.lock();
        let Some(g) = inner
            .tenants
            .get_mut(&due.tenant)
            .and_then(|t| t.namespaces.get_mut(&due.namespace))
            .and_then(|n| {
                n.groups
                    .iter_mut()
                    .find(|g| Arc::ptr_eq(&g.def, &due.group))
            })
        else {
            // Reloaded meanwhile: this result belongs to rules that are gone.
            return;
        };
        ruler
            .stats
            .group_evaluations
            .fetch_add(1, Ordering::Relaxed);
        g.last_eval_ms = due.ts_ms;
        g.eval_seconds = started.elapsed().as_secs_f64();
        let mut changed = false;
        for ((rule, st), outcome) in due.group.rules.iter().zip(g.rules.iter_mut()).zip(outcomes) {
            st.last_eval_ms = due.ts_ms;
            st.eval_seconds = outcome.seconds;
            let applied = outcome.result.and_then(|v| {
                apply_rule(
                    rule,
                    st,
                    v,
                    due.ts_ms,
                    &due.group,
                    ruler,
                    &mut notices,
                    &mut samples,
                )
            });
            let window = crate::config::units::duration_text(Duration::from_nanos(
                due.group.interval_ns.max(0) as u64,
            ));
            hooks.extend(webhooks(&st.alerts, due.ts_ms, &window));
            match applied {
                Ok(c) => {
                    st.health = "ok";
                    st.last_error.clear();
                    changed |= c;
                }
                Err(e) => {
                    st.health = "err";
                    st.last_error = e;
                }
            }
        }
        if changed {
            inner.dirty.insert(due.tenant.clone());
        }
    }
    if !notices.is_empty() && !ruler.outbox.send_alerts(&due.tenant, notices) {
        ruler.stats.notices_dropped.fetch_add(1, Ordering::Relaxed);
    }
    if !samples.is_empty() {
        let _ = ruler.outbox.send_samples(&due.tenant, samples);
    }
    for h in hooks {
        let _ = ruler.outbox.send_webhook(h);
    }
}

/// The webhook notices of an evaluation at `ts_ms`: the alerts that started firing or
/// resolved at it, with the seed demo's fields.
fn webhooks(alerts: &super::alerts::AlertSet, ts_ms: i64, window: &str) -> Vec<WebhookNotice> {
    let get = |pairs: &[(String, String)], names: &[&str]| {
        names
            .iter()
            .find_map(|n| pairs.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone()))
            .unwrap_or_default()
    };
    alerts
        .alerts
        .values()
        .filter_map(|a| {
            let state = if a.state == AlertState::Firing && a.fired_at_ms == ts_ms {
                "firing"
            } else if a.state == AlertState::Inactive && a.resolved_at_ms == ts_ms {
                "resolved"
            } else {
                return None;
            };
            Some(WebhookNotice {
                rule: get(&a.labels, &["alertname"]),
                level: get(&a.labels, &["level", "severity"]),
                message: get(&a.annotations, &["summary", "description", "message"]),
                count: if a.value.is_finite() && a.value > 0.0 {
                    a.value.round() as u64
                } else {
                    0
                },
                window: window.to_string(),
                time_ms: ts_ms,
                labels: a.labels.clone(),
                state: state.to_string(),
            })
        })
        .collect()
}

/// Evaluates `[[alert]]` rule `index` now, from its counters: it fires when the count over
/// its window reaches the threshold and resolves when it falls below; its alerts are sent
/// to Alertmanager and the webhooks at once.
pub fn evaluate_streaming(ruler: &Ruler, index: usize) {
    let Some(r) = ruler.streaming.rules.get(index) else {
        return;
    };
    let now = now_ns();
    let now_ms = now / 1_000_000;
    let count = r.count(now);
    let mut notices = Vec::new();
    let hooks;
    {
        let mut inner = ruler.lock();
        let Some(g) = inner
            .tenants
            .get_mut(&r.tenant)
            .and_then(|t| t.namespaces.get_mut(super::demo::NAMESPACE))
            .and_then(|n| n.groups.iter_mut().find(|g| g.def.name == r.line.name))
        else {
            return;
        };
        let def = g.def.clone();
        let Some(rule) = def.rules.first() else {
            return;
        };
        let RuleKind::Alert {
            name, annotations, ..
        } = &rule.kind
        else {
            return;
        };
        let vector = if count >= r.line.threshold {
            vec![(Labels::default(), count as f64)]
        } else {
            Vec::new()
        };
        let Ok(elements) = alert_elements(rule, name, annotations, &vector, ruler) else {
            return;
        };
        let timing = Timing {
            for_ms: 0,
            keep_firing_for_ms: 0,
            interval_ms: TICK.as_millis() as i64,
            resend_delay_ms: ruler.settings.resend_delay.as_millis() as i64,
        };
        g.last_eval_ms = now_ms;
        let st = &mut g.rules[0];
        st.last_eval_ms = now_ms;
        st.health = "ok";
        let changed = st.alerts.apply(now_ms, elements, &timing);
        r.firing.store(
            st.alerts.rule_state() == AlertState::Firing,
            Ordering::Release,
        );
        hooks = webhooks(&st.alerts, now_ms, &r.line.window);
        notices.extend(due_notices(&mut st.alerts, now_ms, &timing, ruler, rule));
        // The alerts as they are now, and the window once it changed (at most once a second):
        // what a restart takes back.
        if changed.states || !notices.is_empty() || r.take_save_due(now_ms) {
            inner.dirty.insert(r.tenant.clone());
        }
    }
    if !notices.is_empty() && !ruler.outbox.send_alerts(&r.tenant, notices) {
        ruler.stats.notices_dropped.fetch_add(1, Ordering::Relaxed);
    }
    for h in hooks {
        let _ = ruler.outbox.send_webhook(h);
    }
}

/// A metric result as Prometheus' rule engine takes it: a vector (a scalar is one sample
/// without labels).
fn vector(result: MetricResult) -> Vec<(Labels, f64)> {
    match result {
        MetricResult::Vector(v) => v.into_iter().map(|(l, _, v)| (l, v)).collect(),
        MetricResult::Scalar(_, v) => vec![(Labels::default(), v)],
        MetricResult::Matrix(series) => series
            .into_iter()
            .filter_map(|s| s.points.last().map(|p| (s.labels.clone(), p.1)))
            .collect(),
    }
}

/// Applies a rule's vector to its state; returns whether alert state changed.
#[allow(clippy::too_many_arguments)]
fn apply_rule(
    rule: &Rule,
    st: &mut super::RuleState,
    vector: Vec<(Labels, f64)>,
    ts_ms: i64,
    group: &Group,
    ruler: &Ruler,
    notices: &mut Vec<AlertNotice>,
    samples: &mut Vec<Series>,
) -> Result<bool, String> {
    match &rule.kind {
        RuleKind::Record { name } => {
            let series = record_series(rule, name, vector, ts_ms)?;
            if group.limit > 0 && series.len() > group.limit {
                return Err(format!(
                    "exceeded limit of {} with {} series",
                    group.limit,
                    series.len()
                ));
            }
            samples.extend(series);
            Ok(false)
        }
        RuleKind::Alert {
            name,
            for_ns,
            keep_firing_for_ns,
            annotations,
        } => {
            let elements = alert_elements(rule, name, annotations, &vector, ruler)?;
            let timing = Timing {
                for_ms: for_ns / 1_000_000,
                keep_firing_for_ms: keep_firing_for_ns / 1_000_000,
                interval_ms: group.interval_ns / 1_000_000,
                resend_delay_ms: ruler.settings.resend_delay.as_millis() as i64,
            };
            let changed = st.alerts.apply(ts_ms, elements, &timing);
            let active = st.alerts.active().count();
            if group.limit > 0 && active > group.limit {
                // Prometheus drops every alert of a rule over its group's limit.
                st.alerts.alerts.clear();
                return Err(format!(
                    "exceeded limit of {} with {active} alerts",
                    group.limit
                ));
            }
            let before = notices.len();
            notices.extend(due_notices(&mut st.alerts, ts_ms, &timing, ruler, rule));
            let sent = notices.len() > before;
            samples.extend(alerts_series(&st.alerts, ts_ms));
            Ok(changed.states || sent)
        }
    }
}

/// The alerts of a rule due to be sent at `ts_ms` (marked sent), as Alertmanager takes them.
fn due_notices(
    alerts: &mut super::alerts::AlertSet,
    ts_ms: i64,
    timing: &Timing,
    ruler: &Ruler,
    rule: &Rule,
) -> Vec<AlertNotice> {
    alerts
        .due(ts_ms, timing)
        .into_iter()
        .map(|n| AlertNotice {
            labels: n.labels,
            annotations: n.annotations,
            starts_at_ms: n.starts_at_ms,
            ends_at_ms: Some(n.ends_at_ms),
            generator_url: generator_url(&ruler.settings.external_url, &rule.expr_text),
        })
        .collect()
}

/// Prometheus' link from an alert to its expression in the query UI; here Grafana's Explore
/// is the UI, so it links to the server's query endpoint with the expression.
fn generator_url(external_url: &str, expr: &str) -> String {
    let mut q = String::new();
    for b in expr.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                q.push(b as char)
            }
            _ => q.push_str(&format!("%{b:02X}")),
        }
    }
    format!(
        "{}/loki/api/v1/query?query={q}",
        external_url.trim_end_matches('/')
    )
}

/// Label pairs as a template's data (`$labels`).
struct PairsData<'a>(&'a [(String, String)]);

impl TemplateData for PairsData<'_> {
    fn label(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
    fn for_each_label(&self, f: &mut dyn FnMut(&str, &str)) {
        for (n, v) in self.0 {
            f(n, v);
        }
    }
    fn line(&self) -> &str {
        ""
    }
    fn timestamp_ns(&self) -> i64 {
        0
    }
}

/// Expands a template for one element, as Prometheus' `expandTemplate`: an error becomes
/// the text, so that the alert still goes out and says what is wrong.
fn expand(
    t: &crate::query::template::Template,
    labels: &[(String, String)],
    value: f64,
    url: &str,
) -> String {
    let data = PairsData(labels);
    let empty = PairsData(&[]);
    let vars = [
        ("$labels", TemplateVar::Labels(&data)),
        ("$value", TemplateVar::Float(value)),
        ("$externalLabels", TemplateVar::Labels(&empty)),
        ("$externalURL", TemplateVar::Str(url)),
    ];
    let mut out = String::new();
    match t.render_with_vars(&data, &vars, &mut out) {
        Ok(()) => out,
        Err(e) => format!("<error expanding template: {}>", e.message()),
    }
}

/// The alerts of one evaluation: each sample's labels (without `__name__`), the rule's
/// labels expanded over them, and `alertname`; annotations expanded likewise.
fn alert_elements(
    rule: &Rule,
    name: &str,
    annotations: &[(String, crate::query::template::Template)],
    vector: &[(Labels, f64)],
    ruler: &Ruler,
) -> Result<Vec<Element>, String> {
    let url = &ruler.settings.external_url;
    let mut out = Vec::with_capacity(vector.len());
    let mut seen = std::collections::HashSet::new();
    for (labels, value) in vector {
        let sample: Vec<(String, String)> = labels
            .pairs()
            .iter()
            .filter(|(n, _)| n != "__name__")
            .cloned()
            .collect();
        let rule_labels = rule
            .labels
            .iter()
            .map(|(n, t)| (n.clone(), expand(t, &sample, *value, url)));
        let pairs = with_rule_labels(sample.clone(), rule_labels, "alertname", name);
        let annotations = annotations
            .iter()
            .map(|(n, t)| (n.clone(), expand(t, &sample, *value, url)))
            .collect();
        if !seen.insert(super::alerts::labels_key(&pairs)) {
            return Err(
                "vector contains metrics with the same labelset after applying alert labels"
                    .to_string(),
            );
        }
        out.push(Element {
            labels: pairs,
            annotations,
            value: *value,
        });
    }
    Ok(out)
}

/// A sample's labels with the rule's set over them (an empty value removes the label, as
/// in Prometheus' label builder) and the rule's name under `name_key`, sorted.
fn with_rule_labels(
    mut pairs: Vec<(String, String)>,
    rule_labels: impl Iterator<Item = (String, String)>,
    name_key: &str,
    name: &str,
) -> Vec<(String, String)> {
    for (n, v) in rule_labels {
        pairs.retain(|(k, _)| *k != n);
        if !v.is_empty() {
            pairs.push((n, v));
        }
    }
    pairs.retain(|(k, _)| k != name_key);
    pairs.push((name_key.to_string(), name.to_string()));
    pairs.sort();
    pairs
}

/// A recording rule's samples: each sample's labels with the rule's and `__name__`.
fn record_series(
    rule: &Rule,
    name: &str,
    vector: Vec<(Labels, f64)>,
    ts_ms: i64,
) -> Result<Vec<Series>, String> {
    let mut out = Vec::with_capacity(vector.len());
    let mut seen = std::collections::HashSet::new();
    for (labels, value) in vector {
        // A recording rule's labels are plain values (Prometheus does not expand them).
        let rule_labels = rule
            .labels
            .iter()
            .map(|(n, t)| (n.clone(), t.is_constant().unwrap_or_default().to_string()));
        let pairs = with_rule_labels(labels.pairs().to_vec(), rule_labels, "__name__", name);
        if !seen.insert(super::alerts::labels_key(&pairs)) {
            return Err(
                "vector contains metrics with the same labelset after applying rule labels"
                    .to_string(),
            );
        }
        out.push(Series {
            labels: pairs,
            samples: vec![(ts_ms, value)],
        });
    }
    Ok(out)
}

/// Prometheus' `ALERTS{alertstate}` (1 for every pending or firing alert) and
/// `ALERTS_FOR_STATE` (its `activeAt` in seconds) series of an alerting rule.
fn alerts_series(alerts: &super::alerts::AlertSet, ts_ms: i64) -> Vec<Series> {
    let mut out = Vec::new();
    for a in alerts.active() {
        let mut l = a.labels.clone();
        l.push(("__name__".into(), "ALERTS".into()));
        l.push(("alertstate".into(), a.state.as_str().into()));
        l.sort();
        out.push(Series {
            labels: l,
            samples: vec![(ts_ms, 1.0)],
        });
        if a.state == AlertState::Pending || a.state == AlertState::Firing {
            let mut l = a.labels.clone();
            l.push(("__name__".into(), "ALERTS_FOR_STATE".into()));
            l.sort();
            out.push(Series {
                labels: l,
                samples: vec![(ts_ms, a.active_at_ms as f64 / 1000.0)],
            });
        }
    }
    out
}

/// Writes the state files of the tenants whose alerts changed, on a blocking thread. The
/// state is taken there, under the ruler's write lock, so that of two cores' writes the one
/// that lands last holds the newer state.
async fn write_states(ruler: &Arc<Ruler>) {
    if !ruler.has_dirty_states() {
        return;
    }
    let ruler = ruler.clone();
    let failed = glommio::executor()
        .spawn_blocking(move || {
            let _writing = ruler.writing.lock().unwrap_or_else(|p| p.into_inner());
            let mut failed = Vec::new();
            for (path, bytes) in ruler.take_dirty_states() {
                if let Err(e) = files::write_atomic(&path, &bytes) {
                    failed.push(format!("{}: {e}", path.display()));
                }
            }
            failed
        })
        .await;
    for f in failed {
        eprintln!("shardlog: ruler state not saved: {f}");
    }
}

/// The key under which a due group's state is found (for the API and tests).
pub fn key_of(namespace: &str, group: &str) -> String {
    group_key(namespace, group)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_fall_on_the_grid_with_the_offset() {
        assert_eq!(slot_at(125_000, 5_000, 60_000), 125_000);
        assert_eq!(slot_at(124_999, 5_000, 60_000), 65_000);
        let off = slot_offset_ms("t", "ns", "g", 60_000);
        assert!((0..60_000).contains(&off));
        assert_eq!(off, slot_offset_ms("t", "ns", "g", 60_000), "stable");
    }

    #[test]
    fn generator_urls_escape_the_expression() {
        assert_eq!(
            generator_url("http://h:3100/", "sum(x) > 1"),
            "http://h:3100/loki/api/v1/query?query=sum%28x%29%20%3E%201"
        );
    }

    #[test]
    fn alerts_and_recorded_series_carry_the_rule_labels() {
        let text = r#"groups:
  - name: g
    rules:
      - alert: HighErrors
        expr: sum by (app) (count_over_time({app="web"}[1m])) > 1
        labels:
          severity: page
          team: "{{ $labels.app }}-oncall"
        annotations:
          summary: "{{ $labels.app }} logged {{ $value }} errors"
      - record: app:lines:count1m
        expr: sum by (app) (count_over_time({app="web"}[1m]))
        labels:
          source: logs
"#;
        let (_, groups) =
            super::super::rules::parse_namespace("f", "ns", text, 60_000_000_000).unwrap();
        let g = &groups[0];
        let ruler = Ruler::new(
            super::super::RulerSettings {
                rules_dir: "/nonexistent".into(),
                state_dir: "/nonexistent".into(),
                evaluation_interval: Duration::from_secs(60),
                resend_delay: Duration::from_secs(60),
                external_url: "http://x".into(),
            },
            super::super::outbox::Outbox::disabled(),
            1,
        );
        let v = vec![(Labels::from_pairs([("app", "web")]), 12.0)];
        let RuleKind::Alert { annotations, .. } = &g.rules[0].kind else {
            panic!()
        };
        let e = alert_elements(&g.rules[0], "HighErrors", annotations, &v, &ruler).unwrap();
        assert_eq!(
            e[0].labels,
            vec![
                ("alertname".to_string(), "HighErrors".to_string()),
                ("app".to_string(), "web".to_string()),
                ("severity".to_string(), "page".to_string()),
                ("team".to_string(), "web-oncall".to_string()),
            ]
        );
        assert_eq!(e[0].annotations[0].1, "web logged 12 errors");
        let s = record_series(&g.rules[1], "app:lines:count1m", v, 7).unwrap();
        assert_eq!(
            s[0].labels,
            vec![
                ("__name__".to_string(), "app:lines:count1m".to_string()),
                ("app".to_string(), "web".to_string()),
                ("source".to_string(), "logs".to_string()),
            ]
        );
        assert_eq!(s[0].samples, vec![(7, 12.0)]);
    }
}

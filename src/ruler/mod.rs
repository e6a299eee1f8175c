//! The ruler: alerting and recording rules in LogQL, evaluated on a schedule, with their
//! alerts sent to Alertmanager and their samples written to Prometheus.
//!
//! Which question it answers: "which rules does each tenant have, where are they evaluated,
//! and what state are their alerts in?" The parts:
//! - [`rules`]: the rule file format and its validation;
//! - [`files`]: the rules directory (`<rules-dir>/<tenant>/<namespace>`), which the rules
//!   API writes and every change of which is picked up within a second;
//! - [`alerts`]: Prometheus' alert state machine and resend rule;
//! - [`state`]: the alerts' state on disk, so that a restart neither re-fires nor forgets;
//! - [`eval`]: the evaluation loop each core runs for the tenants it owns;
//! - [`demo`]: the one-line `[[alert]]` rules of the TOML configuration, compiled to the
//!   same rules and evaluated as lines arrive;
//! - [`outbox`]: the queue and thread that deliver alerts, webhook notices and samples;
//!   [`alertmanager`], [`webhook`], [`remote_write`]: the bodies each destination takes;
//!   [`http_client`]: the small blocking HTTP/1.1 client they are posted with.
//!
//! Every tenant's rules are evaluated on one core, `hash(tenant) % cores`, so tenants spread
//! over the cores and one tenant's groups never race. The loaded rules and their state are
//! shared by the cores behind one mutex: it is the control plane (an evaluation takes it for
//! the moment it applies a result, the rules API to read), never the path of a line.

pub mod alertmanager;
pub mod alerts;
pub mod demo;
pub mod eval;
pub mod files;
pub mod http_client;
pub mod outbox;
pub mod remote_write;
pub mod rules;
pub mod state;
pub mod webhook;

#[cfg(test)]
mod fake_peer;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use alerts::AlertSet;
use rules::{Group, NamespaceDoc};

/// How often core 0 looks for changed rule files.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(1);

/// The ruler's settings, from the configuration.
#[derive(Debug, Clone)]
pub struct RulerSettings {
    pub rules_dir: PathBuf,
    /// Where alert state is kept (`<data-dir>/ruler`).
    pub state_dir: PathBuf,
    /// A group's interval when it gives none (Loki's `evaluation_interval`, 1m).
    pub evaluation_interval: Duration,
    /// How often a firing alert is sent again (Prometheus' and Loki's `resend_delay`, 1m).
    pub resend_delay: Duration,
    /// The URL alerts link back to (`generatorURL`).
    pub external_url: String,
}

/// The ruler's counters, for `/metrics`.
#[derive(Default)]
pub struct RulerStats {
    pub group_evaluations: AtomicU64,
    pub evaluations: AtomicU64,
    pub evaluation_failures: AtomicU64,
    pub notices_dropped: AtomicU64,
}

/// The ruler's state shared by the cores.
pub struct Ruler {
    pub settings: RulerSettings,
    pub outbox: outbox::Outbox,
    pub stats: RulerStats,
    /// The `[[alert]]` lines, counted by the shards as lines arrive.
    pub streaming: demo::StreamingAlerts,
    shards: usize,
    inner: Mutex<Inner>,
    /// Held while state files are taken and written (see [`eval`]'s `write_states`).
    pub writing: Mutex<()>,
}

/// What the mutex guards.
#[derive(Default)]
pub struct Inner {
    /// The files as last scanned.
    files: BTreeMap<(String, String), (PathBuf, files::Version)>,
    /// Each tenant's loaded rules and their state.
    pub tenants: BTreeMap<String, TenantRules>,
    /// The problems of the files that did not load, by (tenant, namespace).
    pub errors: BTreeMap<(String, String), String>,
    /// Alert state read from disk at start, waiting for its rule to load.
    restored: BTreeMap<String, state::TenantState>,
    /// Tenants whose state changed since it was last written.
    dirty: std::collections::BTreeSet<String>,
}

/// One tenant's rules: its namespaces by name.
#[derive(Default)]
pub struct TenantRules {
    pub namespaces: BTreeMap<String, NamespaceRules>,
}

/// One namespace (file): the document as written and its groups.
pub struct NamespaceRules {
    pub doc: NamespaceDoc,
    pub groups: Vec<GroupRuntime>,
    /// Groups evaluated as lines arrive ([`demo`]), not on the schedule.
    pub streaming: bool,
}

/// A group and the state of its evaluations.
pub struct GroupRuntime {
    pub def: Arc<Group>,
    /// When its next evaluation is due (Unix ms); 0: not scheduled yet.
    pub next_eval_ms: i64,
    pub last_eval_ms: i64,
    pub eval_seconds: f64,
    pub rules: Vec<RuleState>,
}

/// The state of one rule.
#[derive(Default, Clone)]
pub struct RuleState {
    /// `ok`, `err` or `unknown` (not evaluated yet), as Prometheus' API says.
    pub health: &'static str,
    pub last_error: String,
    pub last_eval_ms: i64,
    pub eval_seconds: f64,
    pub alerts: AlertSet,
}

impl RuleState {
    fn new() -> RuleState {
        RuleState {
            health: "unknown",
            ..Default::default()
        }
    }
}

impl GroupRuntime {
    fn new(def: Arc<Group>) -> GroupRuntime {
        let rules = def.rules.iter().map(|_| RuleState::new()).collect();
        GroupRuntime {
            def,
            next_eval_ms: 0,
            last_eval_ms: 0,
            eval_seconds: 0.0,
            rules,
        }
    }
}

/// The ruler of a configuration: its settings, its notifier, and the TOML alerts installed.
pub fn start(config: &crate::config::Config) -> Result<Ruler, String> {
    let r = &config.ruler;
    let settings = RulerSettings {
        rules_dir: r.rules_dir.clone(),
        state_dir: r.state_dir.clone(),
        evaluation_interval: r.evaluation_interval,
        resend_delay: r.resend_delay,
        external_url: r.external_url.clone(),
    };
    let outbox = outbox::Outbox::start(config.outbox.clone())
        .map_err(|e| format!("cannot start the notifier: {e}"))?;
    let mut ruler = Ruler::new(settings, outbox, config.cores);
    ruler.install_alert_lines(&r.alerts)?;
    Ok(ruler)
}

/// The key of a group's state on disk and across reloads.
pub fn group_key(namespace: &str, group: &str) -> String {
    format!("{namespace}\u{0}{group}")
}

impl Ruler {
    /// A ruler over `settings`, with the alert state found on disk.
    pub fn new(settings: RulerSettings, outbox: outbox::Outbox, shards: usize) -> Ruler {
        let restored = state::load_all(&settings.state_dir);
        Ruler {
            settings,
            outbox,
            stats: RulerStats::default(),
            streaming: demo::StreamingAlerts::default(),
            shards: shards.max(1),
            inner: Mutex::new(Inner {
                restored,
                ..Default::default()
            }),
            writing: Mutex::new(()),
        }
    }

    /// The core that evaluates `tenant`'s rules.
    pub fn owner(&self, tenant: &str) -> usize {
        (xxhash_rust::xxh3::xxh3_64(tenant.as_bytes()) % self.shards as u64) as usize
    }

    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding it ends the process (the fail-stop hook): a poisoned lock
        // is never seen by a running server, only by tests; its data is still consistent
        // (every update is applied in one step).
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn default_interval_ns(&self) -> i64 {
        i64::try_from(self.settings.evaluation_interval.as_nanos()).unwrap_or(i64::MAX)
    }

    /// Reads the rule files that changed since the last call; returns one message per file
    /// that failed to load (it keeps its previous rules, if any) or loaded again.
    pub fn reload(&self) -> Vec<String> {
        let scanned = files::scan(&self.settings.rules_dir);
        let mut inner = self.lock();
        if scanned == inner.files {
            return Vec::new();
        }
        let mut messages = Vec::new();
        let old = std::mem::replace(&mut inner.files, scanned.clone());
        // Removed files.
        for (tenant, ns) in old.keys() {
            if !scanned.contains_key(&(tenant.clone(), ns.clone())) {
                inner.errors.remove(&(tenant.clone(), ns.clone()));
                if let Some(t) = inner.tenants.get_mut(tenant)
                    && let Some(removed) = t.namespaces.remove(ns)
                    && !removed.streaming
                {
                    inner.dirty.insert(tenant.clone());
                }
            }
        }
        // New and changed files.
        for ((tenant, ns), (path, version)) in &scanned {
            if old.get(&(tenant.clone(), ns.clone())).map(|(_, v)| v) == Some(version) {
                continue;
            }
            let origin = path.display().to_string();
            let text = match std::fs::read_to_string(path) {
                Ok(t) => t,
                Err(e) => {
                    let m = format!("{origin}: {e}");
                    inner.errors.insert((tenant.clone(), ns.clone()), m.clone());
                    messages.push(m);
                    continue;
                }
            };
            match rules::parse_namespace(&origin, ns, &text, self.default_interval_ns()) {
                Ok((doc, groups)) => {
                    inner.errors.remove(&(tenant.clone(), ns.clone()));
                    install(&mut inner, tenant, ns, doc, groups, false);
                }
                Err(e) => {
                    inner
                        .errors
                        .insert((tenant.clone(), ns.clone()), e.to_string());
                    messages.extend(e.0);
                }
            }
        }
        messages
    }

    /// Installs groups that did not come from a file (the TOML `[[alert]]` rules).
    pub fn install_streaming(
        &self,
        tenant: &str,
        namespace: &str,
        doc: NamespaceDoc,
        groups: Vec<Group>,
    ) {
        let mut inner = self.lock();
        install(&mut inner, tenant, namespace, doc, groups, true);
    }

    /// The ruler's series for `/metrics`: Prometheus' rule metrics under our prefix, the
    /// rules loaded and the files that failed to load, then the notifier's.
    pub fn render_metrics(&self, out: &mut String) {
        use std::fmt::Write;
        let (groups, rules, bad_files) = {
            let inner = self.lock();
            let groups: usize = inner
                .tenants
                .values()
                .flat_map(|t| t.namespaces.values())
                .map(|n| n.groups.len())
                .sum();
            let rules: usize = inner
                .tenants
                .values()
                .flat_map(|t| t.namespaces.values())
                .flat_map(|n| n.groups.iter())
                .map(|g| g.def.rules.len())
                .sum();
            (groups, rules, inner.errors.len())
        };
        let counters = [
            (
                "shardlog_ruler_group_evaluations_total",
                "Evaluations of rule groups.",
                &self.stats.group_evaluations,
            ),
            (
                "shardlog_ruler_rule_evaluations_total",
                "Evaluations of rules.",
                &self.stats.evaluations,
            ),
            (
                "shardlog_ruler_rule_evaluation_failures_total",
                "Evaluations of rules that failed.",
                &self.stats.evaluation_failures,
            ),
            (
                "shardlog_ruler_notifications_dropped_total",
                "Alert batches the notifier's full queue refused.",
                &self.stats.notices_dropped,
            ),
        ];
        for (name, help, c) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                c.load(Ordering::Relaxed)
            );
        }
        let gauges = [
            ("shardlog_ruler_groups", "Rule groups loaded.", groups),
            ("shardlog_ruler_rules", "Rules loaded.", rules),
            (
                "shardlog_ruler_files_failed",
                "Rule files that failed to load (their last good rules stay).",
                bad_files,
            ),
        ];
        for (name, help, v) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        }
        self.outbox.render_metrics(out);
    }

    /// Installs the TOML `[[alert]]` rules, one namespace per tenant.
    pub fn install_alert_lines(&mut self, lines: &[demo::AlertLine]) -> Result<(), String> {
        self.streaming = demo::StreamingAlerts::new(lines)?;
        {
            // The windows saved before the restart, for the rules that are still the same.
            let inner = self.inner.get_mut().unwrap_or_else(|p| p.into_inner());
            for r in &self.streaming.rules {
                let key = group_key(demo::NAMESPACE, &r.line.name);
                if let Some(saved) = inner
                    .restored
                    .get_mut(&r.tenant)
                    .and_then(|t| t.windows.remove(&key))
                {
                    r.restore(&saved);
                }
            }
        }
        let mut by_tenant: BTreeMap<String, Vec<&demo::AlertLine>> = BTreeMap::new();
        for l in lines {
            let tenant = l.tenant.clone().unwrap_or_default();
            by_tenant.entry(tenant).or_default().push(l);
        }
        for (tenant, lines) in by_tenant {
            let doc = demo::namespace_doc(&lines);
            let groups = rules::validate_namespace(
                "[[alert]]",
                demo::NAMESPACE,
                "",
                &doc,
                self.default_interval_ns(),
            )
            .map_err(|e| format!("alert: {e}"))?;
            self.install_streaming(&tenant, demo::NAMESPACE, doc, groups);
        }
        Ok(())
    }

    /// Marks for saving the tenants of the `[[alert]]` rules that core `core` evaluates.
    pub fn mark_streaming_dirty(&self, core: usize) {
        let tenants: Vec<String> = self
            .streaming
            .rules
            .iter()
            .filter(|r| self.owner(&r.tenant) == core)
            .map(|r| r.tenant.clone())
            .collect();
        self.lock().dirty.extend(tenants);
    }

    /// Whether some tenant's state changed since it was last written.
    pub fn has_dirty_states(&self) -> bool {
        !self.lock().dirty.is_empty()
    }

    /// Writes the state of every tenant whose alerts changed (called after evaluations, off
    /// the executor: see [`eval`]).
    pub fn take_dirty_states(&self) -> Vec<(PathBuf, Vec<u8>)> {
        let mut inner = self.lock();
        let dirty = std::mem::take(&mut inner.dirty);
        dirty
            .into_iter()
            .map(|tenant| {
                let snapshot =
                    state::snapshot(&tenant, inner.tenants.get(&tenant), &self.streaming);
                let bytes = serde_json::to_vec(&snapshot).unwrap_or_default();
                (state::path(&self.settings.state_dir, &tenant), bytes)
            })
            .collect()
    }
}

/// Puts a namespace's groups in place, carrying over the state of unchanged rules (and the
/// schedule of unchanged groups), or taking it from the state restored at start.
fn install(
    inner: &mut Inner,
    tenant: &str,
    ns: &str,
    doc: NamespaceDoc,
    groups: Vec<Group>,
    streaming: bool,
) {
    let restored = inner.restored.get_mut(tenant).map(std::mem::take);
    let tenant_rules = inner.tenants.entry(tenant.to_string()).or_default();
    let mut old = tenant_rules
        .namespaces
        .remove(ns)
        .map(|n| n.groups)
        .unwrap_or_default();
    let mut restored = restored.unwrap_or_default();
    let mut runtimes = Vec::with_capacity(groups.len());
    for g in groups {
        let def = Arc::new(g);
        let mut rt = GroupRuntime::new(def.clone());
        let gkey = group_key(ns, &def.name);
        if let Some(pos) = old.iter().position(|o| o.def.name == def.name) {
            let prev = old.swap_remove(pos);
            if prev.def.interval_ns == def.interval_ns {
                rt.next_eval_ms = prev.next_eval_ms;
            }
            rt.last_eval_ms = prev.last_eval_ms;
            for (i, rule) in def.rules.iter().enumerate() {
                if let Some(j) = prev.def.rules.iter().position(|r| r.key() == rule.key()) {
                    rt.rules[i] = prev.rules[j].clone();
                }
            }
        } else if let Some(saved) = restored.groups.get_mut(&gkey) {
            for (i, rule) in def.rules.iter().enumerate() {
                if let Some(alerts) = saved.remove(&rule.key()) {
                    rt.rules[i].alerts = alerts;
                }
            }
        }
        runtimes.push(rt);
    }
    restored.groups.retain(|_, rules| !rules.is_empty());
    if !restored.groups.is_empty() {
        inner.restored.insert(tenant.to_string(), restored);
    } else {
        inner.restored.remove(tenant);
    }
    let tenant_rules = inner.tenants.entry(tenant.to_string()).or_default();
    tenant_rules.namespaces.insert(
        ns.to_string(),
        NamespaceRules {
            doc,
            groups: runtimes,
            streaming,
        },
    );
    if !streaming {
        inner.dirty.insert(tenant.to_string());
    }
}

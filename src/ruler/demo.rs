//! The one-line alerts of the TOML configuration (`[[alert]]`), for users who do not write
//! LogQL: "10 lines at level error in a minute", "3 critical lines with `database` in 30 s".
//!
//! Which question it answers: "what rule is this line, and when does it fire?" Each
//! `[[alert]]` compiles to an ordinary alerting rule,
//! `sum(count_over_time({<selector>, level="<level>"} |= "<keyword>" [<window>])) >= <threshold>`,
//! shown as such by the rules API (namespace [`NAMESPACE`] of its tenant). It is not left to
//! the scheduled tick: the shards count matching lines as they store them
//! ([`StreamingAlerts`]), and the alert fires as soon as the count over the window reaches
//! the threshold. They count in the owner shard's one pass over the batch, the stream limits'
//! ([`crate::tenants::admit`]): a [`BatchCounts`] gathers the lines that match as the check
//! reads them, and adds those of the streams it stored.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use ahash::{AHashMap, AHashSet};
use serde::{Deserialize, Serialize};

use crate::logql::LogSelector;
use crate::model::{StreamId, TimestampNs};
use crate::tenants::admit::BatchObserver;

use super::rules::{GroupDoc, NamespaceDoc, RuleDoc};

/// The namespace the TOML alerts are shown under.
pub const NAMESPACE: &str = "shardlog-alerts";

/// One `[[alert]]` of the TOML configuration.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AlertLine {
    pub name: String,
    /// A LogQL stream selector (`{app="db"}`); default: every stream of the tenant.
    #[serde(default)]
    pub selector: Option<String>,
    /// The `level` label lines must have (syslog severities, `level` labels of pushes).
    pub level: String,
    /// Text lines must contain.
    #[serde(default)]
    pub keyword: Option<String>,
    /// Lines in the window that fire the alert.
    pub threshold: u64,
    /// The sliding window, as LogQL ranges (`1m`, `30s`).
    pub window: String,
    /// The tenant whose lines count; default: the syslog tenant.
    #[serde(default)]
    pub tenant: Option<String>,
}

/// A LogQL string literal, as Loki prints one (Go's `strconv.Quote`).
fn quote(s: &str) -> String {
    crate::logql::quote_go(s)
}

impl AlertLine {
    /// The LogQL selector with the level matcher added.
    pub fn selector_with_level(&self) -> String {
        let level = format!("level={}", quote(&self.level));
        match self.selector.as_deref().map(str::trim) {
            None | Some("") | Some("{}") => format!("{{{level}}}"),
            Some(s) => {
                let inner = s.trim_start_matches('{').trim_end_matches('}').trim();
                format!("{{{inner}, {level}}}")
            }
        }
    }

    /// The rule's LogQL expression.
    pub fn expr(&self) -> String {
        let filter = match &self.keyword {
            Some(k) if !k.is_empty() => format!(" |= {}", quote(k)),
            _ => String::new(),
        };
        format!(
            "sum(count_over_time({}{filter} [{}])) >= {}",
            self.selector_with_level(),
            self.window,
            self.threshold
        )
    }

    /// The rule as a rule file would give it.
    pub fn rule_doc(&self) -> RuleDoc {
        let mut labels = BTreeMap::new();
        labels.insert("level".to_string(), self.level.clone());
        let mut annotations = BTreeMap::new();
        let what = match &self.keyword {
            Some(k) if !k.is_empty() => format!(" containing {}", quote(k)),
            _ => String::new(),
        };
        annotations.insert(
            "summary".to_string(),
            format!(
                "{{{{ $value }}}} lines at level {}{what} in {} (threshold {})",
                self.level, self.window, self.threshold
            ),
        );
        RuleDoc {
            alert: Some(self.name.clone()),
            expr: self.expr(),
            labels,
            annotations,
            ..Default::default()
        }
    }
}

/// The namespace document of a tenant's TOML alerts: one group per alert, named after it.
pub fn namespace_doc(lines: &[&AlertLine]) -> NamespaceDoc {
    NamespaceDoc {
        groups: lines
            .iter()
            .map(|l| GroupDoc {
                name: l.name.clone(),
                rules: vec![l.rule_doc()],
                ..Default::default()
            })
            .collect(),
    }
}

/// Slots of a rule's sliding window: the window is counted to within one slot (1/240 of
/// it: 250 ms of a minute, 125 ms of 30 s).
pub const WINDOW_SLOTS: usize = 240;

/// One slot: the slot number (its start divided by the slot width, modulo 2^32) in the high
/// half and the lines counted in it in the low half, in one atomic so that every core adds
/// to it without a lock, and a slot reused for a later time starts again from zero.
#[derive(Default)]
struct Slot(AtomicU64);

impl Slot {
    fn add(&self, epoch: u32, n: u32) {
        let mut cur = self.0.load(Ordering::Relaxed);
        loop {
            let (e, c) = ((cur >> 32) as u32, cur as u32);
            let next = if e == epoch {
                (u64::from(e) << 32) | u64::from(c.saturating_add(n))
            } else {
                (u64::from(epoch) << 32) | u64::from(n)
            };
            match self
                .0
                .compare_exchange_weak(cur, next, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(seen) => cur = seen,
            }
        }
    }

    fn get(&self, epoch: u32) -> u64 {
        let cur = self.0.load(Ordering::Acquire);
        if (cur >> 32) as u32 == epoch {
            u64::from(cur as u32)
        } else {
            0
        }
    }
}

/// One `[[alert]]` as the shards count it.
pub struct StreamingRule {
    pub tenant: String,
    pub line: AlertLine,
    selector: LogSelector,
    slot_ns: i64,
    window_ns: i64,
    slots: Box<[Slot]>,
    /// Whether the alert fires, as last evaluated (lets a shard skip the evaluation while it
    /// already fires).
    pub firing: AtomicBool,
    /// The [`StreamingRule::digest`] of the window as last saved to disk, and when (Unix
    /// ms): the owning core saves it again once it changed and [`WINDOW_SAVE_INTERVAL_MS`]
    /// passed.
    saved_digest: AtomicU64,
    saved_at_ms: std::sync::atomic::AtomicI64,
}

/// How often a changed window is saved: a kill -9 forgets at most this much of the counts
/// (a clean stop saves them all); more often would rewrite the state file for nearly every
/// line of a busy stream.
pub const WINDOW_SAVE_INTERVAL_MS: i64 = 1000;

/// A rule's window as the state file keeps it: the raw slots (slot number and count), valid
/// only for the same expression and slot width.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedWindow {
    pub expr: String,
    pub slot_ns: i64,
    pub slots: Vec<u64>,
}

impl StreamingRule {
    fn new(tenant: &str, line: &AlertLine) -> Result<StreamingRule, String> {
        let filter = match &line.keyword {
            Some(k) if !k.is_empty() => format!(" |= {}", quote(k)),
            _ => String::new(),
        };
        let text = format!("{}{filter}", line.selector_with_level());
        let selector = match crate::logql::parse_expr(&text).map_err(|e| e.to_string())? {
            crate::logql::Expr::Log(e) => e.selector,
            crate::logql::Expr::Sample(_) => return Err(format!("{text} is not a selector")),
        };
        let window_ns = crate::logql::duration::parse_prometheus_duration(&line.window)
            .map_err(|e| e.to_string())?
            .max(1);
        let rule = StreamingRule {
            tenant: tenant.to_string(),
            line: line.clone(),
            selector,
            slot_ns: (window_ns / WINDOW_SLOTS as i64).max(1_000_000),
            window_ns,
            slots: (0..WINDOW_SLOTS).map(|_| Slot::default()).collect(),
            firing: AtomicBool::new(false),
            saved_digest: AtomicU64::new(0),
            saved_at_ms: std::sync::atomic::AtomicI64::new(0),
        };
        // Empty is what a rule starts with, so there is nothing to save until it counts.
        rule.saved_digest.store(rule.digest(), Ordering::Release);
        Ok(rule)
    }

    /// The window's slots, raw, for the state file.
    pub fn save(&self) -> SavedWindow {
        SavedWindow {
            expr: self.line.expr(),
            slot_ns: self.slot_ns,
            slots: self
                .slots
                .iter()
                .map(|s| s.0.load(Ordering::Acquire))
                .collect(),
        }
    }

    /// Takes back the counts of a saved window of the same rule (same expression and slot
    /// width; otherwise they are not this rule's and it starts empty). Slots whose time has
    /// passed meanwhile hold an old slot number, so they count as empty.
    pub fn restore(&self, saved: &SavedWindow) -> bool {
        if saved.expr != self.line.expr()
            || saved.slot_ns != self.slot_ns
            || saved.slots.len() != self.slots.len()
        {
            return false;
        }
        for (slot, raw) in self.slots.iter().zip(&saved.slots) {
            slot.0.store(*raw, Ordering::Release);
        }
        self.saved_digest.store(self.digest(), Ordering::Release);
        true
    }

    /// A hash of the slots: whether the window changed since it was saved.
    fn digest(&self) -> u64 {
        let mut h = 0xcbf2_9ce4_8422_2325u64;
        for s in self.slots.iter() {
            h = (h ^ s.0.load(Ordering::Relaxed)).wrapping_mul(0x0100_0000_01b3);
        }
        h
    }

    /// Whether the window should be saved at `now_ms`: it changed since the last save and
    /// the last save is [`WINDOW_SAVE_INTERVAL_MS`] old. Notes the save when it should.
    pub fn take_save_due(&self, now_ms: i64) -> bool {
        if now_ms - self.saved_at_ms.load(Ordering::Acquire) < WINDOW_SAVE_INTERVAL_MS {
            return false;
        }
        let digest = self.digest();
        if digest == self.saved_digest.load(Ordering::Acquire) {
            return false;
        }
        self.saved_digest.store(digest, Ordering::Release);
        self.saved_at_ms.store(now_ms, Ordering::Release);
        true
    }

    /// Whether a stream's lines may count: its labels match the selector.
    fn matches_stream(&self, labels: &[(&str, &str)]) -> bool {
        self.selector
            .matchers
            .iter()
            .all(|m| m.matches(labels.iter().find(|(n, _)| *n == m.name).map(|(_, v)| *v)))
    }

    fn matches_line(&self, line: &str) -> bool {
        self.selector
            .filters
            .iter()
            .all(|f| f.matches(line.as_bytes()))
    }

    /// Counts `n` lines at `ts_ns`, if it falls in the window ending `now_ns` (a line from
    /// the future counts now).
    fn add(&self, ts_ns: i64, now_ns: i64, n: u32) {
        let ts = ts_ns.min(now_ns);
        if ts <= now_ns - self.window_ns {
            return;
        }
        let slot = ts.div_euclid(self.slot_ns);
        self.slots[slot.rem_euclid(WINDOW_SLOTS as i64) as usize].add(slot as u32, n);
    }

    /// The lines counted in the window ending `now_ns`.
    pub fn count(&self, now_ns: i64) -> u64 {
        let last = now_ns.div_euclid(self.slot_ns);
        let span = (self.window_ns / self.slot_ns).clamp(1, WINDOW_SLOTS as i64);
        (last - span + 1..=last)
            .map(|s| self.slots[s.rem_euclid(WINDOW_SLOTS as i64) as usize].get(s as u32))
            .sum()
    }

    pub fn crossed(&self, now_ns: i64) -> bool {
        self.count(now_ns) >= self.line.threshold
    }
}

/// Every `[[alert]]`, counted by the shards that store the lines.
#[derive(Default)]
pub struct StreamingAlerts {
    pub rules: Vec<StreamingRule>,
}

/// Which rules each stream's lines count for, as one core last worked out (a stream's
/// labels never change, so each is matched once). Bounded: cleared when it grows past
/// [`STREAM_MATCHES_MAX`].
#[derive(Default)]
pub struct StreamMatches(RefCell<AHashMap<StreamId, u64>>);

/// Streams whose matches a core remembers.
pub const STREAM_MATCHES_MAX: usize = 100_000;
/// Rules one server may have as `[[alert]]` lines (a bit each in [`StreamMatches`]).
pub const ALERT_LINES_MAX: usize = 64;

impl StreamingAlerts {
    pub fn new(lines: &[AlertLine]) -> Result<StreamingAlerts, String> {
        if lines.len() > ALERT_LINES_MAX {
            return Err(format!(
                "{} [[alert]] lines, at most {ALERT_LINES_MAX}: write the others as rule files",
                lines.len()
            ));
        }
        let rules = lines
            .iter()
            .map(|l| {
                let tenant = l.tenant.clone().unwrap_or_default();
                StreamingRule::new(&tenant, l).map_err(|e| format!("alert {:?}: {e}", l.name))
            })
            .collect::<Result<_, _>>()?;
        Ok(StreamingAlerts { rules })
    }

    /// The counts of one batch of `tenant`, to feed as the batch is read and then
    /// [`BatchCounts::finish`]; `None` if no rule counts that tenant's lines.
    pub fn counting<'a>(
        &'a self,
        tenant: &'a str,
        matches: &'a StreamMatches,
    ) -> Option<BatchCounts<'a>> {
        if !self.rules.iter().any(|r| r.tenant == tenant) {
            return None;
        }
        let mut cache = matches.0.borrow_mut();
        if cache.len() > STREAM_MATCHES_MAX {
            cache.clear();
        }
        Some(BatchCounts {
            alerts: self,
            tenant,
            matches,
            streams: Vec::new(),
            hits: Vec::new(),
        })
    }
}

/// One batch's lines that count for `[[alert]]` rules, gathered while the stream limits read
/// the batch ([`BatchObserver`]) and added to the rules by [`BatchCounts::finish`] once the
/// limits have said which streams are stored: a refused line does not count.
pub struct BatchCounts<'a> {
    alerts: &'a StreamingAlerts,
    tenant: &'a str,
    matches: &'a StreamMatches,
    /// Each stream of the batch, by index: its id and the rules its lines count for (a bit
    /// each).
    streams: Vec<(StreamId, u64)>,
    /// The entries that count for at least one rule, in the batch's order (so at most one
    /// per entry of the batch): stream index, timestamp, and the rules whose selector and
    /// line filters they pass.
    hits: Vec<(u32, TimestampNs, u64)>,
}

impl BatchObserver for BatchCounts<'_> {
    fn stream(&mut self, id: StreamId, labels: &[(&str, &str)]) {
        let mut cache = self.matches.0.borrow_mut();
        let mask = *cache.entry(id).or_insert_with(|| {
            let mut mask = 0u64;
            for (i, r) in self.alerts.rules.iter().enumerate() {
                if r.tenant == self.tenant && r.matches_stream(labels) {
                    mask |= 1 << i;
                }
            }
            mask
        });
        self.streams.push((id, mask));
    }

    fn entry(&mut self, stream_index: u32, ts: TimestampNs, line: &str) {
        let mask = self
            .streams
            .get(stream_index as usize)
            .map_or(0, |&(_, mask)| mask);
        if mask == 0 {
            return;
        }
        let mut hits = 0u64;
        for (i, r) in self.alerts.rules.iter().enumerate() {
            if mask & (1 << i) != 0 && r.matches_line(line) {
                hits |= 1 << i;
            }
        }
        if hits != 0 {
            self.hits.push((stream_index, ts, hits));
        }
    }
}

impl BatchCounts<'_> {
    /// Counts the gathered lines of every stream not in `taken_out`, in the batch's order;
    /// returns the rules whose count now reaches their threshold while they do not fire yet
    /// (the caller evaluates them at once, so the alert goes out as the line that crossed
    /// arrives).
    pub fn finish(self, taken_out: &AHashSet<StreamId>, now_ns: i64) -> Vec<usize> {
        let rules = &self.alerts.rules;
        let mut touched = 0u64;
        for &(stream_index, ts, hits) in &self.hits {
            let (id, _) = self.streams[stream_index as usize];
            if taken_out.contains(&id) {
                continue;
            }
            // In the batch's order, as the lines arrived: when two lines fall in one slot a
            // ring apart, the one added last restarts it ([`Slot::add`]), so the order
            // decides what the slot holds.
            for (i, r) in rules.iter().enumerate() {
                if hits & (1 << i) != 0 {
                    r.add(ts, now_ns, 1);
                }
            }
            touched |= hits;
        }
        (0..rules.len())
            .filter(|i| touched & (1 << i) != 0)
            .filter(|&i| {
                let r = &rules[i];
                !r.firing.load(Ordering::Acquire) && r.crossed(now_ns)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Batch, BatchItem};

    fn line(keyword: Option<&str>, selector: Option<&str>) -> AlertLine {
        AlertLine {
            name: "Critical".into(),
            selector: selector.map(Into::into),
            level: "critical".into(),
            keyword: keyword.map(Into::into),
            threshold: 3,
            window: "30s".into(),
            tenant: None,
        }
    }

    #[test]
    fn the_demo_rules_compile_to_logql_that_parses() {
        let a = line(Some("database"), Some(r#"{app="db"}"#));
        assert_eq!(
            a.expr(),
            r#"sum(count_over_time({app="db", level="critical"} |= "database" [30s])) >= 3"#
        );
        let b = line(None, None);
        assert_eq!(
            b.expr(),
            r#"sum(count_over_time({level="critical"} [30s])) >= 3"#
        );
        for l in [a, b] {
            crate::logql::parse_sample_expr(&l.expr()).unwrap();
        }
    }

    const SEC: i64 = 1_000_000_000;

    /// Counts a whole batch, as if every stream of it were stored.
    fn observe(
        alerts: &StreamingAlerts,
        batch: &Batch,
        matches: &StreamMatches,
        now: i64,
    ) -> Vec<usize> {
        let reader = batch.reader().unwrap();
        let Some(mut counts) = alerts.counting(reader.tenant(), matches) else {
            return Vec::new();
        };
        for item in reader {
            match item.unwrap() {
                BatchItem::Stream { id, labels, .. } => counts.stream(id, &labels),
                BatchItem::Entry {
                    stream_index,
                    ts,
                    line,
                    ..
                } => counts.entry(stream_index, ts, line),
            }
        }
        counts.finish(&AHashSet::new(), now)
    }

    fn batch(lines: &[(&str, &str, i64)]) -> Batch {
        let mut b = crate::model::BatchBuilder::new("fake");
        for (level, line, ts) in lines {
            let labels = crate::model::Labels::from_pairs([("app", "db"), ("level", *level)]);
            let id = crate::model::stream_hash("fake", &labels);
            b.push_with_pairs(
                id,
                labels.pairs().iter().map(|(n, v)| (n.as_str(), v.as_str())),
                *ts,
                line,
                &[],
            );
        }
        b.finish()
    }

    #[test]
    fn lines_count_in_their_window_and_the_crossing_line_is_reported() {
        let mut a = line(Some("database"), Some(r#"{app="db"}"#));
        a.tenant = Some("fake".into());
        let alerts = StreamingAlerts::new(&[a]).unwrap();
        let matches = StreamMatches::default();
        let now = 1_000 * SEC;
        let b = batch(&[
            ("critical", "database down", now - SEC),
            ("critical", "disk full", now - SEC),
            ("error", "database down", now - SEC),
            ("critical", "database gone", now - 40 * SEC),
        ]);
        assert!(observe(&alerts, &b, &matches, now).is_empty());
        assert_eq!(
            alerts.rules[0].count(now),
            1,
            "level, keyword and window all apply"
        );
        let b = batch(&[("critical", "database slow", now)]);
        assert!(observe(&alerts, &b, &matches, now).is_empty());
        let b = batch(&[("critical", "database lost", now)]);
        assert_eq!(
            observe(&alerts, &b, &matches, now),
            vec![0],
            "the third line crosses"
        );
        alerts.rules[0].firing.store(true, Ordering::Release);
        let b = batch(&[("critical", "database lost", now)]);
        assert!(
            observe(&alerts, &b, &matches, now).is_empty(),
            "already firing"
        );
        assert_eq!(alerts.rules[0].count(now + 28 * SEC), 4);
        assert_eq!(
            alerts.rules[0].count(now + 29 * SEC),
            3,
            "the first slid out"
        );
        assert_eq!(
            alerts.rules[0].count(now + 31 * SEC),
            0,
            "the window slid past them"
        );
    }

    #[test]
    fn a_saved_window_is_taken_back_by_the_same_rule_only() {
        const SEC: i64 = 1_000_000_000;
        let now = 1_000 * SEC;
        let mut l = line(Some("database"), None);
        l.tenant = Some("fake".into());
        let lines = [l];
        let before = StreamingAlerts::new(&lines).unwrap();
        assert!(
            !before.rules[0].take_save_due(now / 1_000_000),
            "an empty window has nothing to save"
        );
        let b = batch(&[("critical", "database down", now - SEC)]);
        observe(&before, &b, &StreamMatches::default(), now);
        assert!(before.rules[0].take_save_due(now / 1_000_000));
        assert!(
            !before.rules[0].take_save_due(now / 1_000_000 + 5_000),
            "unchanged since saved"
        );
        let saved = before.rules[0].save();
        let after = StreamingAlerts::new(&lines).unwrap();
        assert!(after.rules[0].restore(&saved));
        assert_eq!(after.rules[0].count(now), 1);
        assert!(
            !after.rules[0].take_save_due(now / 1_000_000 + 5_000),
            "what was restored is what is saved"
        );
        // Another rule (another window, keyword or level) starts empty.
        let mut other = lines[0].clone();
        other.window = "1m".into();
        let other = StreamingAlerts::new(&[other]).unwrap();
        assert!(!other.rules[0].restore(&saved));
        assert_eq!(other.rules[0].count(now), 0);
    }

    #[test]
    fn lines_of_streams_the_stream_limits_refuse_do_not_count() {
        use crate::tenants::admit::check_batch;
        use crate::tenants::stream_rate::StreamRates;
        use crate::tenants::streams::ActiveStreams;
        use crate::tenants::{IngestionRate, limits::TenantLimits};

        let mut a = line(Some("database"), None);
        a.tenant = Some("fake".into());
        let now = 1_000 * SEC;
        // Two streams, two matching lines each, under a limit of one active stream: the
        // second stream is refused whole.
        let mut b = crate::model::BatchBuilder::new("fake");
        for app in ["db", "web"] {
            let labels = crate::model::Labels::from_pairs([("app", app), ("level", "critical")]);
            let id = crate::model::stream_hash("fake", &labels);
            for i in 0..2 {
                b.push(id, &labels, now - SEC + i, "database down", &[]);
            }
        }
        let limits = TenantLimits {
            ingestion_rate: IngestionRate::OFF,
            per_stream_rate: IngestionRate::OFF,
            creation_grace_period: std::time::Duration::from_secs(600),
            max_global_streams_per_user: 1,
            max_label_names_per_series: 15,
            max_label_name_length: 1024,
            max_label_value_length: 2048,
            reject_old_samples: false,
            reject_old_samples_max_age: std::time::Duration::from_secs(1),
            max_line_size: 1 << 20,
            max_line_size_truncate: false,
            discovery: crate::ingest::discovery::Discovery::off(),
        };
        let alerts = StreamingAlerts::new(std::slice::from_ref(&a)).unwrap();
        let matches = StreamMatches::default();
        let mut counts = alerts.counting("fake", &matches).unwrap();
        let checked = check_batch(
            b.finish(),
            &limits,
            &ActiveStreams::default(),
            &StreamRates::default(),
            1,
            true,
            Some(&mut counts),
        );
        assert_eq!(checked.taken_out.len(), 1);
        assert!(
            counts.finish(&checked.taken_out, now).is_empty(),
            "two lines counted, under the threshold of three"
        );
        assert_eq!(alerts.rules[0].count(now), 2);
        // The same as counting the stored batch on its own.
        let reference = StreamingAlerts::new(&[a]).unwrap();
        observe(&reference, &checked.batch, &StreamMatches::default(), now);
        assert_eq!(reference.rules[0].count(now), alerts.rules[0].count(now));
    }

    #[test]
    fn a_reused_slot_starts_again_from_zero() {
        let mut a = line(None, None);
        a.tenant = Some("fake".into());
        let r = StreamingRule::new("fake", &a).unwrap();
        let now = 5_000 * SEC;
        r.add(now, now, 5);
        assert_eq!(r.count(now), 5);
        // A whole ring later the same slot holds a newer time.
        let later = now + r.slot_ns * WINDOW_SLOTS as i64;
        r.add(later, later, 2);
        assert_eq!(r.count(later), 2);
    }

    #[test]
    fn the_compiled_group_validates_as_a_rule_file_would() {
        let a = line(Some(r#"say "hi""#), None);
        let doc = namespace_doc(&[&a]);
        let text = yaml_serde::to_string(&doc).unwrap();
        let (_, groups) =
            super::super::rules::parse_namespace("toml", NAMESPACE, &text, 60_000_000_000).unwrap();
        assert_eq!(groups[0].rules[0].name(), "Critical");
    }
}

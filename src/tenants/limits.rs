//! Each tenant's limits: the server's defaults (flags and TOML), overridden per tenant by a
//! limits file in the shape of Loki's runtime config, re-read while the server runs.
//!
//! ```yaml
//! overrides:
//!   team-a:
//!     ingestion_rate_mb: 10
//!     ingestion_burst_size_mb: 20
//!     max_label_names_per_series: 30
//! ```
//!
//! Keys this server does not enforce (Loki has many more) are accepted and listed once when
//! the file is read, so a Loki runtime file loads as it is. A file that does not parse, or
//! holds a value out of range, stops the server from starting; while it runs, such a change is
//! reported and the previous limits stay. Each core reads the file itself ([`Limits`]), so
//! nothing is shared between cores but the path; a change reaches every core within
//! [`RELOAD_INTERVAL`].

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, SystemTime};

use serde::Deserialize;

use super::IngestionRate;

/// How often each core looks at the limits file for a change.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(2);

const MIB: f64 = 1024.0 * 1024.0;

/// The limits one tenant's requests are held to.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantLimits {
    pub ingestion_rate: IngestionRate,
    /// One stream's rate and burst (`per_stream_rate_limit`, `per_stream_rate_limit_burst`).
    pub per_stream_rate: IngestionRate,
    /// How far ahead of the clock a pushed entry may be (`creation_grace_period`).
    pub creation_grace_period: Duration,
    /// Active streams over all cores (`max_global_streams_per_user`; 0: no limit).
    pub max_global_streams_per_user: usize,
    /// Labels one stream may have (Loki's `max_label_names_per_series`).
    pub max_label_names_per_series: usize,
    /// Bytes of one label name (`max_label_name_length`).
    pub max_label_name_length: usize,
    /// Bytes of one label value (`max_label_value_length`).
    pub max_label_value_length: usize,
    /// Refuse entries older than `reject_old_samples_max_age` (`reject_old_samples`).
    pub reject_old_samples: bool,
    pub reject_old_samples_max_age: Duration,
    /// Bytes of one line (`max_line_size`; the server-wide `line_bytes_max`), and whether a
    /// longer one is cut to it rather than refused (`max_line_size_truncate`).
    pub max_line_size: usize,
    pub max_line_size_truncate: bool,
    /// What pushed streams and entries are given at ingest (`discover_service_name`,
    /// `discover_log_levels`).
    pub discovery: crate::ingest::discovery::Discovery,
}

impl TenantLimits {
    /// These limits with a tenant's overrides applied.
    pub fn with(&self, o: &LimitOverrides) -> TenantLimits {
        let mut l = self.clone();
        if let Some(rate) = o.ingestion_rate_mb {
            l.ingestion_rate.bytes_per_second = rate * MIB;
        }
        if let Some(burst) = o.ingestion_burst_size_mb {
            l.ingestion_rate.burst_bytes = burst * MIB;
        }
        if let Some(n) = o.max_label_names_per_series {
            l.max_label_names_per_series = n;
        }
        if let Some(n) = o.max_label_name_length {
            l.max_label_name_length = n;
        }
        if let Some(n) = o.max_label_value_length {
            l.max_label_value_length = n;
        }
        if let Some(n) = o.max_global_streams_per_user {
            l.max_global_streams_per_user = n;
        }
        if let Some(n) = o.per_stream_rate_limit {
            l.per_stream_rate.bytes_per_second = n as f64;
        }
        if let Some(n) = o.per_stream_rate_limit_burst {
            l.per_stream_rate.burst_bytes = n as f64;
        }
        if let Some(d) = o.grace_period() {
            l.creation_grace_period = d;
        }
        if let Some(on) = o.reject_old_samples {
            l.reject_old_samples = on;
        }
        if let Some(age) = o.max_age() {
            l.reject_old_samples_max_age = age;
        }
        if let Some(n) = o.max_line_size {
            l.max_line_size = n;
        }
        if let Some(on) = o.max_line_size_truncate {
            l.max_line_size_truncate = on;
        }
        if let Some(list) = &o.discover_service_name {
            l.discovery.service_name_from = list.clone().into();
        }
        if let Some(on) = o.discover_log_levels {
            l.discovery.log_levels = if on {
                crate::ingest::discovery::LevelDiscovery::On
            } else {
                crate::ingest::discovery::LevelDiscovery::Off
            };
        }
        l
    }
}

/// One tenant's entry under `overrides:` (Loki's names; absent keys keep the defaults).
#[derive(Debug, Default, Clone, Deserialize, PartialEq)]
pub struct LimitOverrides {
    pub ingestion_rate_mb: Option<f64>,
    pub ingestion_burst_size_mb: Option<f64>,
    pub max_label_names_per_series: Option<usize>,
    pub max_label_name_length: Option<usize>,
    pub max_label_value_length: Option<usize>,
    pub max_global_streams_per_user: Option<usize>,
    /// Bytes, as Loki writes them (`3MB` is 3 MiB, as in Loki's `flagext.ByteSize`).
    #[serde(default, deserialize_with = "loki_byte_size_key")]
    pub per_stream_rate_limit: Option<u64>,
    #[serde(default, deserialize_with = "loki_byte_size_key")]
    pub per_stream_rate_limit_burst: Option<u64>,
    /// A duration as Loki writes one (`10m`).
    pub creation_grace_period: Option<String>,
    pub reject_old_samples: Option<bool>,
    /// A duration as Loki writes one (`1w`, `168h`).
    pub reject_old_samples_max_age: Option<String>,
    /// Bytes, or a size with a unit (`256KB`, `1MiB`).
    #[serde(default, deserialize_with = "crate::config::units::size_key")]
    pub max_line_size: Option<usize>,
    pub max_line_size_truncate: Option<bool>,
    /// Labels whose value becomes `service_name`; an empty list turns it off.
    pub discover_service_name: Option<Vec<String>>,
    pub discover_log_levels: Option<bool>,
    /// Query limits (the server's are the flags of the same names).
    pub max_entries_limit_per_query: Option<u32>,
    pub max_query_series: Option<usize>,
    /// A duration; `0` turns the limit off.
    pub max_query_length: Option<String>,
    /// A duration.
    pub query_timeout: Option<String>,
    /// How long the tenant's lines are kept (a duration; `0`, the default, keeps them for
    /// ever). Applied by the background pass of [`crate::deletion`].
    pub retention_period: Option<String>,
    /// Retention by stream selector: the matching rule of highest priority wins over
    /// `retention_period` (see [`TenantRetention::period_for`]).
    pub retention_stream: Option<Vec<StreamRetentionRule>>,
    /// Loki limits this server does not enforce.
    #[serde(flatten)]
    pub unsupported: BTreeMap<String, yaml_serde::Value>,
}

impl LimitOverrides {
    /// `reject_old_samples_max_age` as a duration (checked by [`LimitOverrides::check`]).
    fn max_age(&self) -> Option<Duration> {
        let text = self.reject_old_samples_max_age.as_deref()?;
        crate::config::units::parse_duration_ns(text)
            .ok()
            .map(Duration::from_nanos)
    }

    /// `creation_grace_period` as a duration (checked by [`LimitOverrides::check`]).
    fn grace_period(&self) -> Option<Duration> {
        let text = self.creation_grace_period.as_deref()?;
        crate::config::units::parse_duration_ns(text)
            .ok()
            .map(Duration::from_nanos)
    }

    fn check(&self) -> Result<(), String> {
        if let Some(text) = &self.creation_grace_period {
            crate::config::units::parse_duration_ns(text)
                .map_err(|e| format!("creation_grace_period: {e}"))?;
        }
        if self.per_stream_rate_limit.is_some_and(|r| r > 0)
            && self.per_stream_rate_limit_burst == Some(0)
        {
            return Err("per_stream_rate_limit_burst must be above 0 when there is a rate".into());
        }
        self.retention()?;
        if let Some(list) = &self.discover_service_name {
            crate::ingest::discovery::Discovery::check_service_name_list(list)
                .map_err(|e| format!("discover_service_name: {e}"))?;
        }
        for (key, text) in [
            ("max_query_length", &self.max_query_length),
            ("query_timeout", &self.query_timeout),
        ] {
            if let Some(text) = text {
                let ns = crate::config::units::parse_duration_ns(text)
                    .map_err(|e| format!("{key}: {e}"))?;
                if ns == 0 && key == "query_timeout" {
                    return Err("query_timeout must be above 0".into());
                }
            }
        }
        if self.max_entries_limit_per_query == Some(0) || self.max_query_series == Some(0) {
            return Err(
                "max_entries_limit_per_query and max_query_series must be at least 1".into(),
            );
        }
        if let Some(text) = &self.reject_old_samples_max_age {
            match crate::config::units::parse_duration_ns(text) {
                Ok(ns) if ns > 0 => {}
                Ok(_) => return Err("reject_old_samples_max_age must be above 0".into()),
                Err(e) => return Err(format!("reject_old_samples_max_age: {e}")),
            }
        }
        if let Some(n) = self.max_line_size
            && !(1..=crate::config::LINE_BYTES_LIMIT).contains(&n)
        {
            return Err(format!(
                "max_line_size must be between 1 and {}, got {n}",
                crate::config::LINE_BYTES_LIMIT
            ));
        }
        for (key, v) in [
            ("ingestion_rate_mb", self.ingestion_rate_mb),
            ("ingestion_burst_size_mb", self.ingestion_burst_size_mb),
        ] {
            if let Some(v) = v
                && !(0.0..=1e6).contains(&v)
            {
                return Err(format!("{key} must be between 0 and 1000000, got {v}"));
            }
        }
        if self.ingestion_rate_mb.is_some_and(|r| r > 0.0)
            && self.ingestion_burst_size_mb == Some(0.0)
        {
            return Err("ingestion_burst_size_mb must be above 0 when there is a rate".into());
        }
        for (key, v) in [
            (
                "max_label_names_per_series",
                self.max_label_names_per_series,
            ),
            ("max_label_name_length", self.max_label_name_length),
            ("max_label_value_length", self.max_label_value_length),
        ] {
            if v == Some(0) {
                return Err(format!("{key} must be at least 1"));
            }
        }
        Ok(())
    }
}

/// A size as Loki's `flagext.ByteSize` reads one: a number of bytes, or a number with `B`,
/// `KB`, `MB`, `GB` or `TB` (binary multiples, as `datasize` takes them; `KiB` ... too).
fn loki_byte_size_key<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Size {
        Bytes(u64),
        Text(String),
    }
    let text = match Size::deserialize(d)? {
        Size::Bytes(n) => return Ok(Some(n)),
        Size::Text(t) => t,
    };
    parse_loki_byte_size(&text)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

fn parse_loki_byte_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = (&t[..split], t[split..].trim());
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a size: write bytes, or 3MB, 512KB"))?;
    let shift = match unit.to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        "T" | "TB" | "TIB" => 40,
        _ => return Err(format!("`{text}` has an unknown unit `{unit}`")),
    };
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("`{text}` is too large"))
}

/// One entry of `retention_stream`, as Loki writes it:
/// `{selector: '{app="x"}', priority: 1, period: 24h}`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct StreamRetentionRule {
    pub selector: String,
    #[serde(default)]
    pub priority: i64,
    pub period: String,
}

/// Loki refuses a `retention_stream` rule shorter than a day (`Limits.Validate`).
pub const STREAM_RETENTION_PERIOD_MIN: Duration = Duration::from_secs(86400);

/// A tenant's retention, compiled from its overrides: what [`crate::deletion`]'s retention
/// pass asks of every stream.
#[derive(Debug, Clone, Default)]
pub struct TenantRetention {
    /// `retention_period`; `None`: kept for ever (Loki's `0`).
    pub period: Option<Duration>,
    pub streams: Vec<CompiledStreamRetention>,
}

#[derive(Debug, Clone)]
pub struct CompiledStreamRetention {
    pub matchers: Vec<crate::logql::LabelMatcher>,
    pub priority: i64,
    pub period: Duration,
}

impl TenantRetention {
    /// Whether any of the tenant's lines can expire.
    pub fn is_forever(&self) -> bool {
        self.period.is_none() && self.streams.is_empty()
    }

    /// The shortest time any line of the tenant is kept (its period, or a stream rule's);
    /// `None`: every line is kept for ever.
    pub fn shortest_period(&self) -> Option<Duration> {
        self.streams
            .iter()
            .map(|s| s.period)
            .chain(self.period)
            .min()
    }

    /// How long a stream with `labels` is kept, as Loki's compactor decides
    /// (`TenantRetentionSnapshot.RetentionPeriodFor`): among the `retention_stream` rules whose
    /// matchers all match, the highest priority wins, and of equal priorities the shortest
    /// period; no matching rule leaves `retention_period`. `None`: for ever.
    pub fn period_for(&self, labels: &crate::model::Labels) -> Option<Duration> {
        let mut chosen: Option<&CompiledStreamRetention> = None;
        for rule in &self.streams {
            if !rule.matchers.iter().all(|m| m.matches(labels.get(&m.name))) {
                continue;
            }
            let better = match chosen {
                None => true,
                Some(c) => {
                    rule.priority > c.priority
                        || (rule.priority == c.priority && rule.period < c.period)
                }
            };
            if better {
                chosen = Some(rule);
            }
        }
        match chosen {
            Some(rule) => Some(rule.period),
            None => self.period,
        }
    }
}

impl LimitOverrides {
    /// The tenant's retention rules, checked as Loki checks them.
    pub fn retention(&self) -> Result<TenantRetention, String> {
        let mut out = TenantRetention::default();
        if let Some(text) = &self.retention_period {
            let ns = crate::config::units::parse_duration_ns(text)
                .map_err(|e| format!("retention_period: {e}"))?;
            out.period = (ns > 0).then(|| Duration::from_nanos(ns));
        }
        for rule in self.retention_stream.iter().flatten() {
            let matchers = crate::logql::parse_matchers(&rule.selector, true)
                .map_err(|e| format!("retention_stream: invalid labels matchers: {e}"))?;
            let ns = crate::config::units::parse_duration_ns(&rule.period)
                .map_err(|e| format!("retention_stream: period: {e}"))?;
            let period = Duration::from_nanos(ns);
            if period < STREAM_RETENTION_PERIOD_MIN {
                return Err(format!(
                    "retention_stream: retention period must be >= 24h was {}",
                    rule.period
                ));
            }
            out.streams.push(CompiledStreamRetention {
                matchers,
                priority: rule.priority,
                period,
            });
        }
        Ok(out)
    }
}

#[derive(Debug, Default, Deserialize)]
struct RuntimeFile {
    #[serde(default)]
    overrides: Option<HashMap<String, LimitOverrides>>,
    /// Other sections of a Loki runtime config (`configs`, `multi_kv_config`, ...).
    #[serde(flatten)]
    other: BTreeMap<String, yaml_serde::Value>,
}

/// A parsed limits file.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct LimitsFile {
    pub overrides: HashMap<String, LimitOverrides>,
    /// Keys accepted but not enforced, as `overrides.<tenant>.<key>` or `<section>`.
    pub ignored: Vec<String>,
}

impl LimitsFile {
    /// Parses a limits file's text; the error names the problem (and the line, for YAML).
    pub fn parse(text: &str) -> Result<LimitsFile, String> {
        let file: RuntimeFile = if text.trim().is_empty() {
            RuntimeFile::default()
        } else {
            yaml_serde::from_str(text).map_err(|e| e.to_string())?
        };
        let overrides = file.overrides.unwrap_or_default();
        let mut ignored: Vec<String> = file.other.into_keys().collect();
        for (tenant, o) in &overrides {
            crate::model::validate_tenant(tenant)
                .map_err(|e| format!("overrides: tenant {tenant:?}: {e}"))?;
            o.check().map_err(|e| format!("overrides.{tenant}: {e}"))?;
            ignored.extend(
                o.unsupported
                    .keys()
                    .map(|k| format!("overrides.{tenant}.{k}")),
            );
        }
        ignored.sort();
        Ok(LimitsFile { overrides, ignored })
    }

    /// Reads and parses the file at `path`.
    pub fn read(path: &Path) -> Result<LimitsFile, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("limits file {}: {e}", path.display()))?;
        LimitsFile::parse(&text).map_err(|e| format!("limits file {}: {e}", path.display()))
    }
}

/// What identifies a version of the file: its modification time and length.
type Stamp = (Option<SystemTime>, u64);

fn stamp(path: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok(), m.len()))
}

/// One core's view of every tenant's limits.
pub struct Limits {
    defaults: TenantLimits,
    path: Option<PathBuf>,
    file: std::cell::RefCell<Rc<LimitsFile>>,
    stamp: std::cell::Cell<Option<Stamp>>,
}

impl Limits {
    /// Limits without a file: every tenant has the defaults.
    pub fn fixed(defaults: TenantLimits) -> Limits {
        Limits {
            defaults,
            path: None,
            file: Default::default(),
            stamp: Default::default(),
        }
    }

    /// Limits from `path`, read now.
    pub fn from_file(defaults: TenantLimits, path: &Path) -> Result<Limits, String> {
        let limits = Limits {
            path: Some(path.to_path_buf()),
            ..Limits::fixed(defaults)
        };
        limits.stamp.set(stamp(path));
        *limits.file.borrow_mut() = Rc::new(LimitsFile::read(path)?);
        Ok(limits)
    }

    /// The limits of `tenant` now.
    pub fn for_tenant(&self, tenant: &str) -> TenantLimits {
        match self.file.borrow().overrides.get(tenant) {
            Some(o) => self.defaults.with(o),
            None => self.defaults.clone(),
        }
    }

    /// Re-reads the file if it changed since the last look. `Ok(true)`: new limits apply;
    /// `Err`: the change does not parse and the previous limits stay (it is reported once).
    pub fn reload_if_changed(&self) -> Result<bool, String> {
        let Some(path) = &self.path else {
            return Ok(false);
        };
        let now = stamp(path);
        if now == self.stamp.get() {
            return Ok(false);
        }
        self.stamp.set(now);
        let file = LimitsFile::read(path)?;
        let changed = *self.file.borrow().as_ref() != file;
        *self.file.borrow_mut() = Rc::new(file);
        Ok(changed)
    }

    /// The query limits of `tenant`: the server's, with the tenant's overrides.
    pub fn query_limits(
        &self,
        tenant: &str,
        server: &crate::config::QueryLimits,
    ) -> crate::config::QueryLimits {
        let mut q = server.clone();
        let file = self.file.borrow();
        let Some(o) = file.overrides.get(tenant) else {
            return q;
        };
        let duration = |text: &Option<String>| {
            text.as_deref()
                .and_then(|t| crate::config::units::parse_duration_ns(t).ok())
                .map(Duration::from_nanos)
        };
        if let Some(n) = o.max_entries_limit_per_query {
            q.max_entries_limit_per_query = n;
        }
        if let Some(n) = o.max_query_series {
            q.max_query_series = n;
        }
        if let Some(d) = duration(&o.max_query_length) {
            q.max_query_length = (!d.is_zero()).then_some(d);
        }
        if let Some(d) = duration(&o.query_timeout) {
            q.query_timeout = d;
        }
        q
    }

    /// The retention of `tenant` (from the limits file; without an override, for ever: the
    /// server-wide `retention` setting is applied apart, by partition).
    pub fn retention_for(&self, tenant: &str) -> TenantRetention {
        self.file
            .borrow()
            .overrides
            .get(tenant)
            .and_then(|o| o.retention().ok())
            .unwrap_or_default()
    }

    /// Tenants whose lines can expire, with their retention.
    pub fn retentions(&self) -> Vec<(String, TenantRetention)> {
        let file = self.file.borrow();
        let mut out: Vec<(String, TenantRetention)> = file
            .overrides
            .iter()
            .filter_map(|(t, o)| Some((t.clone(), o.retention().ok()?)))
            .filter(|(_, r)| !r.is_forever())
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Keys of the current file that are accepted but not enforced.
    pub fn ignored(&self) -> Vec<String> {
        self.file.borrow().ignored.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> TenantLimits {
        TenantLimits {
            ingestion_rate: IngestionRate::OFF,
            per_stream_rate: IngestionRate::OFF,
            creation_grace_period: Duration::from_secs(600),
            max_global_streams_per_user: 0,
            max_label_names_per_series: 15,
            max_label_name_length: 1024,
            max_label_value_length: 2048,
            reject_old_samples: false,
            reject_old_samples_max_age: Duration::from_secs(7 * 86400),
            max_line_size: 256 << 10,
            max_line_size_truncate: false,
            discovery: crate::ingest::discovery::Discovery::loki_defaults(),
        }
    }

    #[test]
    fn per_stream_limits_read_sizes_as_loki_does() {
        assert_eq!(parse_loki_byte_size("3MB"), Ok(3 << 20));
        assert_eq!(parse_loki_byte_size("512KB"), Ok(512 << 10));
        assert_eq!(parse_loki_byte_size("1024"), Ok(1024));
        assert!(parse_loki_byte_size("3XB").is_err());
        let file: RuntimeFile = yaml_serde::from_str(
            "overrides:\n  t:\n    per_stream_rate_limit: 1MB\n    per_stream_rate_limit_burst: 2048\n    creation_grace_period: 1m\n",
        )
        .unwrap();
        let o = &file.overrides.unwrap()["t"];
        let l = defaults().with(o);
        assert_eq!(l.per_stream_rate.bytes_per_second, (1 << 20) as f64);
        assert_eq!(l.per_stream_rate.burst_bytes, 2048.0);
        assert_eq!(l.creation_grace_period, Duration::from_secs(60));
    }

    #[test]
    fn overrides_apply_to_their_tenant_only() {
        let file = LimitsFile::parse(
            "overrides:\n  team-a:\n    ingestion_rate_mb: 2\n    ingestion_burst_size_mb: 3\n    max_label_names_per_series: 30\n",
        )
        .unwrap();
        let limits = Limits::fixed(defaults());
        *limits.file.borrow_mut() = Rc::new(file);
        let a = limits.for_tenant("team-a");
        assert_eq!(a.ingestion_rate.bytes_per_second, 2.0 * MIB);
        assert_eq!(a.ingestion_rate.burst_bytes, 3.0 * MIB);
        assert_eq!(a.max_label_names_per_series, 30);
        assert_eq!(a.max_label_value_length, 2048);
        assert_eq!(limits.for_tenant("team-b"), defaults());
    }

    #[test]
    fn old_samples_and_line_size_override_per_tenant() {
        let file = LimitsFile::parse(
            "overrides:\n  t1:\n    reject_old_samples: true\n    reject_old_samples_max_age: 1d\n    max_line_size: 1KB\n    max_line_size_truncate: true\n  t2:\n    max_line_size: 300\n",
        )
        .unwrap();
        let limits = Limits::fixed(defaults());
        *limits.file.borrow_mut() = Rc::new(file);
        let t1 = limits.for_tenant("t1");
        assert!(t1.reject_old_samples && t1.max_line_size_truncate);
        assert_eq!(t1.reject_old_samples_max_age, Duration::from_secs(86400));
        assert_eq!(t1.max_line_size, 1000);
        assert_eq!(limits.for_tenant("t2").max_line_size, 300);
        let e = LimitsFile::parse("overrides:\n  t:\n    reject_old_samples_max_age: soon\n")
            .unwrap_err();
        assert!(e.contains("reject_old_samples_max_age"), "{e}");
        let e = LimitsFile::parse("overrides:\n  t:\n    max_line_size: 0\n").unwrap_err();
        assert!(e.contains("max_line_size"), "{e}");
    }

    #[test]
    fn discovery_overrides_per_tenant() {
        use crate::ingest::discovery::LevelDiscovery;
        let file = LimitsFile::parse(
            "overrides:\n  t1:\n    discover_service_name: [svc]\n    discover_log_levels: false\n  t2:\n    discover_service_name: []\n",
        )
        .unwrap();
        let limits = Limits::fixed(defaults());
        *limits.file.borrow_mut() = Rc::new(file);
        let t1 = limits.for_tenant("t1").discovery;
        assert_eq!(&*t1.service_name_from, &["svc"]);
        assert_eq!(t1.log_levels, LevelDiscovery::Off);
        let t2 = limits.for_tenant("t2").discovery;
        assert!(t2.service_name_from.is_empty());
        assert_eq!(t2.log_levels, LevelDiscovery::On);
        assert_eq!(limits.for_tenant("t3"), defaults());
        let e =
            LimitsFile::parse("overrides:\n  t:\n    discover_service_name: [a.b]\n").unwrap_err();
        assert!(e.contains("discover_service_name"), "{e}");
    }

    #[test]
    fn query_limits_override_per_tenant() {
        let file = LimitsFile::parse(
            "overrides:\n  t1:\n    max_entries_limit_per_query: 10\n    max_query_series: 3\n    max_query_length: 0\n    query_timeout: 5s\n",
        )
        .unwrap();
        let limits = Limits::fixed(defaults());
        *limits.file.borrow_mut() = Rc::new(file);
        let server = crate::config::QueryLimits::default();
        let q = limits.query_limits("t1", &server);
        assert_eq!(q.max_entries_limit_per_query, 10);
        assert_eq!(q.max_query_series, 3);
        assert_eq!(q.max_query_length, None);
        assert_eq!(q.query_timeout, Duration::from_secs(5));
        assert_eq!(q.max_concurrent, server.max_concurrent);
        assert_eq!(limits.query_limits("t2", &server), server);
        let e = LimitsFile::parse("overrides:\n  t:\n    query_timeout: 0\n").unwrap_err();
        assert!(e.contains("query_timeout"), "{e}");
    }

    #[test]
    fn retention_stream_rules_pick_as_loki_does() {
        let file = LimitsFile::parse(
            "overrides:\n  t1:\n    retention_period: 744h\n    retention_stream:\n    - selector: '{app=\"a\"}'\n      priority: 1\n      period: 48h\n    - selector: '{app=\"a\", env=\"dev\"}'\n      priority: 2\n      period: 72h\n    - selector: '{env=\"dev\"}'\n      priority: 2\n      period: 24h\n",
        )
        .unwrap();
        let limits = Limits::fixed(defaults());
        *limits.file.borrow_mut() = Rc::new(file);
        let r = limits.retention_for("t1");
        let h = |n: u64| Some(Duration::from_secs(n * 3600));
        let l = |pairs: &[(&str, &str)]| crate::model::Labels::from_pairs(pairs.iter().copied());
        assert_eq!(r.period_for(&l(&[("app", "a")])), h(48));
        // Two rules of priority 2 match: the shorter period wins.
        assert_eq!(r.period_for(&l(&[("app", "a"), ("env", "dev")])), h(24));
        assert_eq!(r.period_for(&l(&[("app", "b")])), h(744));
        assert!(limits.retention_for("t2").is_forever());
        assert_eq!(limits.retentions().len(), 1);
        let e = LimitsFile::parse(
            "overrides:\n  t:\n    retention_stream:\n    - selector: '{a=\"b\"}'\n      period: 1h\n",
        )
        .unwrap_err();
        assert!(e.contains("retention period must be >= 24h was 1h"), "{e}");
        let e = LimitsFile::parse(
            "overrides:\n  t:\n    retention_stream:\n    - selector: 'nope'\n      period: 48h\n",
        )
        .unwrap_err();
        assert!(e.contains("invalid labels matchers"), "{e}");
        let e = LimitsFile::parse("overrides:\n  t:\n    retention_period: soon\n").unwrap_err();
        assert!(e.contains("retention_period"), "{e}");
    }

    #[test]
    fn a_loki_runtime_file_loads_and_lists_what_is_not_enforced() {
        let file = LimitsFile::parse(
            "overrides:\n  t1:\n    ingestion_rate_mb: 1\n    max_streams_per_user: 0\n    max_global_streams_per_user: 10000\n    shard_streams: {}\nmulti_kv_config:\n  mirror_enabled: false\n",
        )
        .unwrap();
        assert_eq!(
            file.ignored,
            [
                "multi_kv_config",
                "overrides.t1.max_streams_per_user",
                "overrides.t1.shard_streams"
            ]
        );
        assert!(LimitsFile::parse("").unwrap().overrides.is_empty());
        assert!(
            LimitsFile::parse("overrides:\n")
                .unwrap()
                .overrides
                .is_empty()
        );
    }

    #[test]
    fn bad_files_say_what_is_wrong() {
        let e = LimitsFile::parse("overrides:\n  t1:\n    ingestion_rate_mb: fast\n").unwrap_err();
        assert!(
            e.contains("ingestion_rate_mb") || e.contains("line 3"),
            "{e}"
        );
        let e = LimitsFile::parse("overrides:\n  t1:\n    max_label_names_per_series: 0\n")
            .unwrap_err();
        assert!(
            e.contains("overrides.t1: max_label_names_per_series"),
            "{e}"
        );
        let e = LimitsFile::parse("overrides:\n  '..':\n    ingestion_rate_mb: 1\n").unwrap_err();
        assert!(e.contains("tenant"), "{e}");
        let e = LimitsFile::parse("overrides: [1, 2]\n").unwrap_err();
        assert!(!e.is_empty());
        let e = LimitsFile::parse("overrides:\n  t1:\n    ingestion_rate_mb: -1\n").unwrap_err();
        assert!(e.contains("between 0"), "{e}");
    }

    #[test]
    fn a_changed_file_is_reloaded_and_a_broken_change_keeps_the_old_limits() {
        let dir = std::env::temp_dir().join(format!("shardlog-limits-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("limits.yaml");
        std::fs::write(
            &path,
            "overrides:\n  t1:\n    max_label_names_per_series: 5\n",
        )
        .unwrap();
        let limits = Limits::from_file(defaults(), &path).unwrap();
        assert_eq!(limits.for_tenant("t1").max_label_names_per_series, 5);
        assert_eq!(limits.reload_if_changed(), Ok(false));
        // A different length makes a different stamp even within the clock's resolution.
        std::fs::write(
            &path,
            "overrides:\n  t1:\n    max_label_names_per_series: 50\n",
        )
        .unwrap();
        assert_eq!(limits.reload_if_changed(), Ok(true));
        assert_eq!(limits.for_tenant("t1").max_label_names_per_series, 50);
        std::fs::write(
            &path,
            "overrides:\n  t1:\n    max_label_names_per_series: many\n",
        )
        .unwrap();
        assert!(limits.reload_if_changed().is_err());
        assert_eq!(limits.for_tenant("t1").max_label_names_per_series, 50);
        // Reported once: the same broken file is not read again.
        assert_eq!(limits.reload_if_changed(), Ok(false));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

//! Loki 3's ingest-time discovery: the `service_name` label of a stream that has none, and
//! the `detected_level` structured metadata of every entry. Grafana's Logs Drilldown is built
//! around both.
//!
//! Which question it answers: "which service sent this, and how severe is it?" Loki's
//! distributor answers both for every push (`pkg/loghttp/push/push.go` and
//! `pkg/distributor/field_detection.go`), so every input here asks it too: Loki push, JSON
//! lines, OTLP and syslog (which reaches Loki through Promtail or Alloy as a push).
//!
//! - [`service_name`]: the first non-empty label of the tenant's `discover_service_name`
//!   list, else `unknown_service`; an empty list turns it off.
//! - [`level`]: `detected_level` from a level label, a level field of the structured
//!   metadata, the OTLP severity number, then the line (JSON, logfmt, or a level word),
//!   else `unknown`; `discover_log_levels` turns it off.
//!
//! Both run on the hot path of every input, so neither allocates per line: a derived
//! `service_name` borrows its value from the label it comes from, and a level is a static
//! word or borrowed from the label or metadata value it was read from.

pub mod level;
mod line_fields;
pub mod service_name;

use std::sync::Arc;

pub use level::from_labels as level_from_labels;
pub use level::{DETECTED_LEVEL, add_detected_level};
pub use service_name::{SERVICE_NAME, UNKNOWN_SERVICE};

/// Loki's `discover_service_name` default (`pkg/validation/limits.go`): the labels whose
/// value becomes `service_name`, first present first.
pub const DISCOVER_SERVICE_NAME_DEFAULT: &[&str] = &[
    "service",
    "app",
    "application",
    "app_name",
    "name",
    "app_kubernetes_io_name",
    "container",
    "container_name",
    "k8s_container_name",
    "component",
    "workload",
    "job",
    "k8s_job_name",
];

/// Labels a `discover_service_name` list may name: far more than any useful list, and each
/// is looked up on every new stream.
pub const DISCOVER_SERVICE_NAME_LABELS_MAX: usize = 64;

/// What a tenant's streams and entries are given at ingest. Cheap to clone (the list is
/// shared), because every request and every syslog read takes its tenant's copy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Discovery {
    /// Loki's `discover_service_name`: empty turns `service_name` discovery off.
    pub service_name_from: Arc<[String]>,
    /// Loki's `discover_log_levels`.
    pub log_levels: LevelDiscovery,
}

/// Whether entries get `detected_level` (Loki's `discover_log_levels`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LevelDiscovery {
    Off,
    On,
}

impl Discovery {
    /// Loki 3's defaults: both on.
    pub fn loki_defaults() -> Discovery {
        Discovery {
            service_name_from: DISCOVER_SERVICE_NAME_DEFAULT
                .iter()
                .map(|s| s.to_string())
                .collect(),
            log_levels: LevelDiscovery::On,
        }
    }

    /// Neither: entries and streams are stored as sent.
    pub fn off() -> Discovery {
        Discovery {
            service_name_from: Arc::from(Vec::<String>::new()),
            log_levels: LevelDiscovery::Off,
        }
    }

    /// The `service_name` a stream with these labels is given, if it has none (see
    /// [`service_name::derive`]).
    pub fn service_name<'a>(&self, get: impl Fn(&str) -> Option<&'a str>) -> Option<&'a str> {
        service_name::derive(&self.service_name_from, get)
    }

    /// Checks a `discover_service_name` list as given in a flag, the TOML file or the limits
    /// file: label names, not too many.
    pub fn check_service_name_list(list: &[String]) -> Result<(), String> {
        if list.len() > DISCOVER_SERVICE_NAME_LABELS_MAX {
            return Err(format!(
                "at most {DISCOVER_SERVICE_NAME_LABELS_MAX} label names, got {}",
                list.len()
            ));
        }
        if let Some(bad) = list
            .iter()
            .find(|n| !crate::ingest::push::validate::is_label_name(n))
        {
            return Err(format!(
                "`{bad}` is not a label name ([a-zA-Z_][a-zA-Z0-9_]*)"
            ));
        }
        Ok(())
    }
}

impl Default for Discovery {
    fn default() -> Discovery {
        Discovery::loki_defaults()
    }
}

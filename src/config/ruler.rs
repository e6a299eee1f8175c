//! The ruler's keys: where rule files are, how often groups are evaluated and alerts resent,
//! and the one-line `[[alert]]` rules.
//!
//! Which question it answers: "what may the ruler do, and is it valid?" Every `[[alert]]`
//! is compiled to its LogQL rule here, so that a bad selector, level, window or threshold
//! stops the start with the alert's name, as any other bad key does.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{ConfigError, ServeArgs, bad, duration};
use crate::ruler::demo::AlertLine;

/// Loki's and Prometheus' defaults.
pub const RULER_EVALUATION_INTERVAL_DEFAULT: Duration = Duration::from_secs(60);
pub const RULER_RESEND_DELAY_DEFAULT: Duration = Duration::from_secs(60);
/// The longest window of a one-line alert: its counters keep one slot per
/// [`crate::ruler::demo`] tick over it.
pub const ALERT_WINDOW_MAX: Duration = Duration::from_secs(24 * 3600);

/// The validated ruler settings.
#[derive(Debug, Clone)]
pub struct RulerConfig {
    pub rules_dir: PathBuf,
    pub state_dir: PathBuf,
    pub evaluation_interval: Duration,
    pub resend_delay: Duration,
    pub external_url: String,
    /// The `[[alert]]` rules, each with its tenant resolved.
    pub alerts: Vec<AlertLine>,
}

impl ServeArgs {
    pub(super) fn ruler_config(
        &self,
        data_dir: &Path,
        http_addr: &SocketAddr,
        syslog_tenant: &str,
    ) -> Result<RulerConfig, ConfigError> {
        let evaluation_interval = duration(
            "ruler_evaluation_interval",
            self.ruler_evaluation_interval.as_deref(),
            RULER_EVALUATION_INTERVAL_DEFAULT,
            Duration::from_millis(100),
            Duration::from_secs(86400),
        )?
        .expect("a default is given");
        let resend_delay = duration(
            "ruler_resend_delay",
            self.ruler_resend_delay.as_deref(),
            RULER_RESEND_DELAY_DEFAULT,
            Duration::from_millis(100),
            Duration::from_secs(86400),
        )?
        .expect("a default is given");
        let external_url = match &self.ruler_external_url {
            Some(u) if !u.trim().is_empty() => u.trim().to_string(),
            _ => {
                let host = if http_addr.ip().is_unspecified() {
                    "localhost".to_string()
                } else {
                    http_addr.ip().to_string()
                };
                format!("http://{host}:{}", http_addr.port())
            }
        };
        let mut alerts = Vec::new();
        let mut names = BTreeSet::new();
        for a in &self.alert {
            let mut a = a.clone();
            let key = format!("alert {:?}", a.name);
            if a.name.trim().is_empty() {
                return Err(bad("alert", "every [[alert]] needs a name"));
            }
            let tenant = a
                .tenant
                .clone()
                .unwrap_or_else(|| syslog_tenant.to_string());
            crate::model::validate_tenant(&tenant).map_err(|e| bad(&key, e))?;
            if !names.insert((tenant.clone(), a.name.clone())) {
                return Err(bad(&key, "two alerts of one tenant have this name"));
            }
            a.tenant = Some(tenant);
            if a.level.trim().is_empty() {
                return Err(bad(&key, "level must not be empty"));
            }
            if a.threshold == 0 {
                return Err(bad(&key, "threshold must be at least 1"));
            }
            let window = crate::logql::duration::parse_prometheus_duration(&a.window)
                .map_err(|e| bad(&key, format!("window {:?}: {e}", a.window)))?;
            if window <= 0 || window as u128 > ALERT_WINDOW_MAX.as_nanos() {
                return Err(bad(
                    &key,
                    format!("window must be between 1ms and 24h, got {:?}", a.window),
                ));
            }
            crate::logql::parse_sample_expr(&a.expr())
                .map_err(|e| bad(&key, format!("selector {:?}: {e}", a.selector)))?;
            alerts.push(a);
        }
        Ok(RulerConfig {
            rules_dir: self
                .rules_dir
                .clone()
                .unwrap_or_else(|| data_dir.join("rules")),
            state_dir: data_dir.join("ruler"),
            evaluation_interval,
            resend_delay,
            external_url,
            alerts,
        })
    }
}

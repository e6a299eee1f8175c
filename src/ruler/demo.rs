//! The one-line alerts of the TOML configuration (`[[alert]]`), for users who do not write
//! LogQL: "10 lines at level error in a minute", "3 critical lines with `database` in 30 s".
//!
//! Which question it answers: "what rule is this line, and when does it fire?" Each
//! `[[alert]]` compiles to an ordinary alerting rule,
//! `sum(count_over_time({<selector>, level="<level>"} |= "<keyword>" [<window>])) >= <threshold>`,
//! shown as such by the rules API (namespace [`NAMESPACE`] of its tenant). It is not left to
//! the scheduled tick: the shards count matching lines as they store them
//! ([`StreamingAlerts`]), and the alert fires as soon as the count over the window reaches
//! the threshold.

use std::collections::BTreeMap;

use serde::Deserialize;

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

/// Go's `strconv.Quote`-compatible enough for LogQL string literals: backslash and quote
/// escaped.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
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

#[cfg(test)]
mod tests {
    use super::*;

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

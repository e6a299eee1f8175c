//! Rule files: Prometheus rule groups whose expressions are LogQL metric queries, as Loki's
//! ruler reads them.
//!
//! Which question it answers: "what does this rule file ask for, and is it valid?" A file
//! (one namespace) holds `groups:`, each with a `name`, an optional `interval` and `limit`,
//! and `rules:` that are either alerting (`alert`, `for`, `keep_firing_for`, `labels`,
//! `annotations`) or recording (`record`, `labels`). [`parse_namespace`] checks everything
//! Prometheus' `rulefmt` checks, plus that every `expr` is a LogQL metric query and every
//! template parses, and reports each problem with the file's path and the line of the
//! group or rule it is about. The YAML documents ([`GroupDoc`]) are kept as given, so that
//! the rules API shows what was written.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::logql::{self, SampleExpr};
use crate::query::template::Template;

/// The variables alert templates may use besides their own (Prometheus declares them in a
/// header it puts before every template).
pub const TEMPLATE_VARS: &[&str] = &["$labels", "$value", "$externalLabels", "$externalURL"];

/// A rule file as YAML: `groups:`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NamespaceDoc {
    #[serde(default)]
    pub groups: Vec<GroupDoc>,
}

/// One rule group as YAML.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GroupDoc {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_offset: Option<String>,
    #[serde(default)]
    pub rules: Vec<RuleDoc>,
}

/// One rule as YAML.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RuleDoc {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert: Option<String>,
    pub expr: String,
    #[serde(default, rename = "for", skip_serializing_if = "Option::is_none")]
    pub for_: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_firing_for: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// A validated group, ready to evaluate.
#[derive(Debug)]
pub struct Group {
    pub namespace: String,
    pub name: String,
    /// How often it is evaluated (its `interval`, or the ruler's default).
    pub interval_ns: i64,
    /// The most alerts or series one of its rules may produce; 0: no limit.
    pub limit: usize,
    pub rules: Vec<Rule>,
    pub doc: GroupDoc,
}

/// What a rule produces.
#[derive(Debug)]
pub enum RuleKind {
    Alert {
        name: String,
        for_ns: i64,
        keep_firing_for_ns: i64,
        annotations: Vec<(String, Template)>,
    },
    Record {
        name: String,
    },
}

/// A validated rule.
#[derive(Debug)]
pub struct Rule {
    pub kind: RuleKind,
    pub expr: Arc<SampleExpr>,
    pub expr_text: String,
    /// Labels added to every alert or sample; alert label values are templates.
    pub labels: Vec<(String, Template)>,
    pub doc: RuleDoc,
}

impl Rule {
    /// The alert's or the recorded series' name.
    pub fn name(&self) -> &str {
        match &self.kind {
            RuleKind::Alert { name, .. } | RuleKind::Record { name } => name,
        }
    }

    pub fn is_alert(&self) -> bool {
        matches!(self.kind, RuleKind::Alert { .. })
    }

    /// What identifies a rule across reloads: its state (active alerts, `for` timers)
    /// carries over to a rule with the same key, as Prometheus carries it over to an equal
    /// rule.
    pub fn key(&self) -> String {
        format!(
            "{}\u{0}{}\u{0}{}",
            if self.is_alert() { "alert" } else { "record" },
            self.name(),
            self.expr_text
        )
    }
}

/// Problems found in one file; each names the file, the line and what is wrong.
#[derive(Debug, Clone, PartialEq)]
pub struct FileErrors(pub Vec<String>);

impl std::fmt::Display for FileErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.join("; "))
    }
}

/// The most groups one file may hold, and rules one group: bounds on what one upload costs
/// every evaluation (Loki's ruler has per-tenant limits of the same kind).
pub const GROUPS_PER_NAMESPACE_MAX: usize = 1000;
pub const RULES_PER_GROUP_MAX: usize = 1000;

/// Parses and validates one namespace file. `origin` names it in errors (its path).
pub fn parse_namespace(
    origin: &str,
    namespace: &str,
    text: &str,
    default_interval_ns: i64,
) -> Result<(NamespaceDoc, Vec<Group>), FileErrors> {
    let doc: NamespaceDoc = if text.trim().is_empty() {
        NamespaceDoc::default()
    } else {
        yaml_serde::from_str(text).map_err(|e| {
            let at = e
                .location()
                .map_or(String::new(), |l| format!(":{}:{}", l.line(), l.column()));
            FileErrors(vec![format!("{origin}{at}: {e}")])
        })?
    };
    let groups = validate_namespace(origin, namespace, text, &doc, default_interval_ns)?;
    Ok((doc, groups))
}

/// Validates the groups of a namespace document (parsed from `text`, which gives the lines
/// errors point at; empty when the document did not come from a file).
pub fn validate_namespace(
    origin: &str,
    namespace: &str,
    text: &str,
    doc: &NamespaceDoc,
    default_interval_ns: i64,
) -> Result<Vec<Group>, FileErrors> {
    let mut errors = Vec::new();
    let mut groups = Vec::new();
    if doc.groups.len() > GROUPS_PER_NAMESPACE_MAX {
        errors.push(format!(
            "{origin}: {} groups, at most {GROUPS_PER_NAMESPACE_MAX} allowed",
            doc.groups.len()
        ));
    }
    let lines = LineFinder::new(text);
    let mut seen = std::collections::HashSet::new();
    for g in &doc.groups {
        let group_line = lines.group(&g.name);
        let at = |line: Option<usize>| match line {
            Some(l) => format!("{origin}:{l}"),
            None => origin.to_string(),
        };
        if g.name.is_empty() {
            errors.push(format!("{}: group name must not be empty", at(group_line)));
            continue;
        }
        if !seen.insert(g.name.clone()) {
            errors.push(format!(
                "{}: {:?}: repeated in the same file",
                at(group_line),
                g.name
            ));
            continue;
        }
        match validate_group(namespace, g, default_interval_ns, |i, r| {
            at(lines.rule(group_line, i, r))
        }) {
            Ok(group) => groups.push(group),
            Err(mut e) => {
                for m in &mut e {
                    if m.starts_with("group ") {
                        *m = format!("{}: {m}", at(group_line));
                    }
                }
                errors.extend(e)
            }
        }
    }
    if errors.is_empty() {
        Ok(groups)
    } else {
        Err(FileErrors(errors))
    }
}

/// Validates one group; `rule_at(i, rule)` says where rule `i` is, for its errors.
pub fn validate_group(
    namespace: &str,
    g: &GroupDoc,
    default_interval_ns: i64,
    rule_at: impl Fn(usize, &RuleDoc) -> String,
) -> Result<Group, Vec<String>> {
    let mut errors = Vec::new();
    let interval_ns = match &g.interval {
        None => default_interval_ns,
        Some(s) => match logql::duration::parse_prometheus_duration(s) {
            Ok(0) => default_interval_ns,
            Ok(ns) if ns > 0 => ns,
            _ => {
                errors.push(format!("group {:?}: invalid interval {s:?}", g.name));
                default_interval_ns
            }
        },
    };
    if let Some(s) = &g.query_offset
        && logql::duration::parse_prometheus_duration(s).is_err()
    {
        errors.push(format!("group {:?}: invalid query_offset {s:?}", g.name));
    }
    if g.rules.len() > RULES_PER_GROUP_MAX {
        errors.push(format!(
            "group {:?}: {} rules, at most {RULES_PER_GROUP_MAX} allowed",
            g.name,
            g.rules.len()
        ));
    }
    let mut rules = Vec::new();
    for (i, r) in g.rules.iter().enumerate() {
        match validate_rule(r) {
            Ok(rule) => rules.push(rule),
            Err(problems) => {
                let name = r.alert.as_deref().or(r.record.as_deref()).unwrap_or("");
                for p in problems {
                    errors.push(format!(
                        "{}: group {:?}, rule {}, {name:?}: {p}",
                        rule_at(i, r),
                        g.name,
                        i + 1
                    ));
                }
            }
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Group {
        namespace: namespace.to_string(),
        name: g.name.clone(),
        interval_ns,
        limit: g.limit.unwrap_or(0) as usize,
        rules,
        doc: g.clone(),
    })
}

/// Prometheus' metric name rule: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub fn is_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Prometheus' label name rule: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn is_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn duration_field(what: &str, value: &Option<String>, problems: &mut Vec<String>) -> i64 {
    match value {
        None => 0,
        Some(s) => match logql::duration::parse_prometheus_duration(s) {
            Ok(ns) if ns >= 0 => ns,
            _ => {
                problems.push(format!("invalid {what} duration {s:?}"));
                0
            }
        },
    }
}

/// Checks one rule as Prometheus' `rulefmt.RuleNode.Validate` does, with a LogQL `expr`.
fn validate_rule(r: &RuleDoc) -> Result<Rule, Vec<String>> {
    let mut problems = Vec::new();
    match (&r.alert, &r.record) {
        (Some(_), Some(_)) => problems.push("only one of 'record' and 'alert' must be set".into()),
        (None, None) => problems.push("one of 'record' or 'alert' must be set".into()),
        _ => {}
    }
    let expr = if r.expr.trim().is_empty() {
        problems.push("field 'expr' must be set in rule".into());
        None
    } else {
        match logql::parse_sample_expr(&r.expr) {
            Ok(e) => Some(e),
            Err(e) => {
                problems.push(format!("could not parse expression: {e}"));
                None
            }
        }
    };
    let for_ns = duration_field("for", &r.for_, &mut problems);
    let keep_ns = duration_field("keep_firing_for", &r.keep_firing_for, &mut problems);
    if let Some(record) = &r.record {
        if !is_metric_name(record) {
            problems.push(format!("invalid recording rule name: {record}"));
        }
        if !r.annotations.is_empty() {
            problems.push("invalid field 'annotations' in recording rule".into());
        }
        if r.for_.is_some() {
            problems.push("invalid field 'for' in recording rule".into());
        }
        if r.keep_firing_for.is_some() {
            problems.push("invalid field 'keep_firing_for' in recording rule".into());
        }
    }
    if let Some(alert) = &r.alert
        && alert.is_empty()
    {
        problems.push("field 'alert' must not be empty".into());
    }
    let mut labels = Vec::new();
    for (name, value) in &r.labels {
        if !is_label_name(name) {
            problems.push(format!("invalid label name: {name}"));
        }
        if name == "__name__" {
            problems.push("invalid label name: __name__".into());
        }
        match Template::parse_with_vars(&format!("__alert_{name}"), value, TEMPLATE_VARS) {
            Ok(t) => labels.push((name.clone(), t)),
            Err(e) => problems.push(format!("label {name:?}: {}", e.message())),
        }
    }
    let mut annotations = Vec::new();
    for (name, value) in &r.annotations {
        if !is_label_name(name) {
            problems.push(format!("invalid annotation name: {name}"));
        }
        match Template::parse_with_vars(&format!("__alert_{name}"), value, TEMPLATE_VARS) {
            Ok(t) => annotations.push((name.clone(), t)),
            Err(e) => problems.push(format!("annotation {name:?}: {}", e.message())),
        }
    }
    let (Some(expr), true) = (expr, problems.is_empty()) else {
        return Err(problems);
    };
    let kind = match (&r.alert, &r.record) {
        (Some(name), None) => RuleKind::Alert {
            name: name.clone(),
            for_ns,
            keep_firing_for_ns: keep_ns,
            annotations,
        },
        (None, Some(name)) => RuleKind::Record { name: name.clone() },
        _ => unreachable!("checked above"),
    };
    Ok(Rule {
        kind,
        expr: Arc::new(expr),
        expr_text: r.expr.clone(),
        labels,
        doc: r.clone(),
    })
}

/// Finds the lines of groups and rules in a file's text, for error messages: the line of a
/// group's `name:` and of the `alert:`/`record:` of its rules, in order.
struct LineFinder<'t> {
    lines: Vec<&'t str>,
}

impl<'t> LineFinder<'t> {
    fn new(text: &'t str) -> LineFinder<'t> {
        LineFinder {
            lines: text.lines().collect(),
        }
    }

    fn value_of<'l>(line: &'l str, key: &str) -> Option<&'l str> {
        let t = line.trim_start().trim_start_matches("- ").trim_start();
        let rest = t.strip_prefix(key)?.trim_start().strip_prefix(':')?;
        Some(rest.trim().trim_matches(|c| c == '"' || c == '\''))
    }

    /// The 1-based line of the group called `name`.
    fn group(&self, name: &str) -> Option<usize> {
        self.lines.iter().enumerate().find_map(|(i, l)| {
            let t = l.trim_start().trim_start_matches("- ");
            (Self::value_of(t, "name") == Some(name)).then_some(i + 1)
        })
    }

    /// The 1-based line of rule `index` of the group at `group_line`: the `index`-th line
    /// after it that starts a rule (`- alert:`, `- record:` or `- expr:`).
    fn rule(&self, group_line: Option<usize>, index: usize, r: &RuleDoc) -> Option<usize> {
        let from = group_line?;
        let name = r.alert.as_deref().or(r.record.as_deref());
        let starts: Vec<usize> = self
            .lines
            .iter()
            .enumerate()
            .skip(from)
            .filter(|(_, l)| {
                let t = l.trim_start();
                t.starts_with("- alert:")
                    || t.starts_with("- record:")
                    || t.starts_with("- expr:")
                    || t.starts_with("- name:")
            })
            .take_while(|(_, l)| !l.trim_start().starts_with("- name:"))
            .map(|(i, _)| i + 1)
            .collect();
        if let Some(line) = starts.get(index) {
            return Some(*line);
        }
        // Keys in another order: the line naming the rule.
        let name = name?;
        self.lines.iter().enumerate().skip(from).find_map(|(i, l)| {
            (Self::value_of(l, "alert") == Some(name) || Self::value_of(l, "record") == Some(name))
                .then_some(i + 1)
        })
    }
}

/// A namespace name, also its file name in the tenant's rules directory: no path
/// separators, not `.` or `..`, not hidden, at most 255 bytes.
pub fn validate_namespace_name(ns: &str) -> Result<(), String> {
    if ns.is_empty()
        || ns.len() > 255
        || ns.starts_with('.')
        || ns.contains('/')
        || ns.contains('\0')
    {
        return Err(format!(
            "invalid namespace name {ns:?}: it names a file, so it may not be empty, start with '.' or hold '/'"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: i64 = 60_000_000_000;

    const GOOD: &str = r#"groups:
  - name: errors
    interval: 30s
    rules:
      - alert: HighErrorRate
        expr: sum by (app) (count_over_time({app="web"} |= "error" [5m])) > 10
        for: 2m
        labels:
          severity: page
        annotations:
          summary: "{{ $labels.app }} logs {{ $value }} errors"
      - record: app:errors:count5m
        expr: sum by (app) (count_over_time({app="web"} |= "error" [5m]))
  - name: second
    rules:
      - alert: Quiet
        expr: absent_over_time({app="web"}[10m])
"#;

    #[test]
    fn a_good_file_gives_its_groups_and_rules() {
        let (doc, groups) = parse_namespace("f.yaml", "ns", GOOD, MINUTE).unwrap();
        assert_eq!(doc.groups.len(), 2);
        assert_eq!(groups[0].interval_ns, 30_000_000_000);
        assert_eq!(groups[1].interval_ns, MINUTE, "the default interval");
        let r = &groups[0].rules[0];
        assert_eq!(r.name(), "HighErrorRate");
        match &r.kind {
            RuleKind::Alert { for_ns, .. } => assert_eq!(*for_ns, 2 * MINUTE),
            _ => panic!("an alert"),
        }
        assert!(!groups[0].rules[1].is_alert());
    }

    #[test]
    fn every_problem_names_the_file_the_line_and_the_rule() {
        let bad = GOOD
            .replace("> 10", "> ")
            .replace("app:errors:count5m", "app errors");
        let e = parse_namespace("/rules/t/f.yaml", "ns", &bad, MINUTE).unwrap_err();
        assert_eq!(e.0.len(), 2, "{e:?}");
        assert!(
            e.0[0].starts_with("/rules/t/f.yaml:5: group \"errors\", rule 1, \"HighErrorRate\": could not parse expression"),
            "{}",
            e.0[0]
        );
        assert!(
            e.0[1].starts_with("/rules/t/f.yaml:12: group \"errors\", rule 2, \"app errors\": invalid recording rule name"),
            "{}",
            e.0[1]
        );
    }

    #[test]
    fn yaml_errors_carry_the_line() {
        let e = parse_namespace(
            "f.yaml",
            "ns",
            "groups:\n  - name: x\n    rulez: []\n",
            MINUTE,
        )
        .unwrap_err();
        assert!(e.0[0].starts_with("f.yaml:3:"), "{e:?}");
        assert!(e.0[0].contains("rulez"), "{e:?}");
    }

    #[test]
    fn log_queries_and_bad_templates_and_mixed_kinds_are_refused() {
        let text = r#"groups:
  - name: g
    rules:
      - alert: A
        expr: '{app="x"}'
      - alert: B
        record: b
        expr: count_over_time({app="x"}[1m])
      - alert: C
        expr: count_over_time({app="x"}[1m])
        annotations:
          s: "{{ $nope }}"
      - record: d
        expr: count_over_time({app="x"}[1m])
        for: 5m
"#;
        let e = parse_namespace("f", "ns", text, MINUTE).unwrap_err();
        let all = e.0.join("\n");
        assert!(
            all.contains("rule 1, \"A\": could not parse expression"),
            "{all}"
        );
        assert!(all.contains("only one of 'record' and 'alert'"), "{all}");
        assert!(all.contains("annotation \"s\""), "{all}");
        assert!(
            all.contains("invalid field 'for' in recording rule"),
            "{all}"
        );
    }

    #[test]
    fn repeated_group_names_are_refused() {
        let text = "groups:\n  - name: a\n    rules: []\n  - name: a\n    rules: []\n";
        let e = parse_namespace("f", "ns", text, MINUTE).unwrap_err();
        assert!(e.0[0].contains("repeated"), "{e:?}");
    }

    #[test]
    fn names_follow_prometheus() {
        assert!(is_metric_name("app:errors:rate5m"));
        assert!(!is_metric_name("5xx"));
        assert!(is_label_name("severity"));
        assert!(!is_label_name("a:b"));
        assert!(validate_namespace_name("team-a.yaml").is_ok());
        assert!(validate_namespace_name("../x").is_err());
        assert!(validate_namespace_name(".hidden").is_err());
    }

    #[test]
    fn documents_round_trip_through_yaml() {
        let (doc, _) = parse_namespace("f", "ns", GOOD, MINUTE).unwrap();
        let text = yaml_serde::to_string(&doc).unwrap();
        let (again, _) = parse_namespace("f", "ns", &text, MINUTE).unwrap();
        assert_eq!(doc, again);
    }
}

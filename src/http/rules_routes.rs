//! The ruler's HTTP API, as Loki serves it for Grafana, `cortextool` and `lokitool`:
//! - `GET /loki/api/v1/rules[/<namespace>[/<group>]]`: the tenant's rule groups as YAML;
//! - `POST /loki/api/v1/rules/<namespace>`: a group (YAML body) created or replaced;
//! - `DELETE /loki/api/v1/rules/<namespace>[/<group>]`: a namespace or one group removed;
//! - `GET /prometheus/api/v1/rules` and `/prometheus/api/v1/alerts`: the rules with their
//!   health and alerts, and the active alerts, in Prometheus' JSON.
//!
//! (`/api/prom/rules` is the older name of the first three, as in Loki.) Writes go to the
//! tenant's files in the rules directory ([`crate::ruler::files`]) and are loaded before
//! the answer, so a read that follows sees them; a group that does not validate is refused
//! with 400 and the reason, and nothing is written.

use std::collections::BTreeMap;
use std::rc::Rc;

use serde_json::{Value, json};

use super::loki::{params, tenant};
use super::request::Request;
use super::response::Response;
use crate::ruler::alerts::{Alert, AlertState};
use crate::ruler::rules::{self, GroupDoc, NamespaceDoc, RuleKind};
use crate::ruler::{GroupRuntime, Ruler, demo, files};
use crate::runtime::Core;

/// The answer to a successful write, as Loki's ruler sends it.
fn accepted() -> Response {
    Response::json(
        202,
        br#"{"status":"success","data":null,"errorType":"","error":""}"#.to_vec(),
    )
}

fn yaml(body: String) -> Response {
    Response {
        headers: vec![("Content-Type".into(), "application/yaml".into())],
        body: body.into_bytes(),
        ..Response::new(200)
    }
}

/// The rules API under `/loki/api/v1/rules` or `/api/prom/rules`; `rest` is the path after
/// `rules` (empty, `/<ns>` or `/<ns>/<group>`).
pub async fn rules(core: &Rc<Core>, req: &Request, rest: &str) -> Response {
    let tenant = match tenant(core, req, false) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let parts: Vec<&str> = rest
        .trim_matches('/')
        .split('/')
        .filter(|p| !p.is_empty())
        .collect();
    let ruler = core.ruler.clone();
    match (req.method.as_str(), parts.as_slice()) {
        ("GET", []) => list(&ruler, &tenant, None),
        ("GET", [ns]) => list(&ruler, &tenant, Some(ns)),
        ("GET", [ns, group]) => get_group(&ruler, &tenant, ns, group),
        ("POST", [ns]) => create_group(&ruler, &tenant, ns, &req.body).await,
        ("DELETE", [ns]) => delete(&ruler, &tenant, ns, None).await,
        ("DELETE", [ns, group]) => delete(&ruler, &tenant, ns, Some(group)).await,
        ("GET" | "POST" | "DELETE", _) => Response::text(404, "404 page not found\n"),
        _ => Response::text(405, "method not allowed\n"),
    }
}

/// The groups of the tenant (or of one namespace) as YAML: `<namespace>: [groups]`.
fn list(ruler: &Ruler, tenant: &str, only: Option<&str>) -> Response {
    let inner = ruler.lock();
    let mut out: BTreeMap<&str, &Vec<GroupDoc>> = BTreeMap::new();
    if let Some(t) = inner.tenants.get(tenant) {
        for (ns, n) in &t.namespaces {
            if only.is_some_and(|o| o != ns) || n.doc.groups.is_empty() {
                continue;
            }
            out.insert(ns, &n.doc.groups);
        }
    }
    if out.is_empty() {
        return Response::text(404, "no rule groups found\n");
    }
    match yaml_serde::to_string(&out) {
        Ok(text) => yaml(text),
        Err(e) => Response::text(500, &format!("cannot render the rules: {e}\n")),
    }
}

fn get_group(ruler: &Ruler, tenant: &str, ns: &str, group: &str) -> Response {
    let inner = ruler.lock();
    let found = inner
        .tenants
        .get(tenant)
        .and_then(|t| t.namespaces.get(ns))
        .and_then(|n| n.doc.groups.iter().find(|g| g.name == group));
    match found {
        None => Response::text(404, "group does not exist\n"),
        Some(g) => match yaml_serde::to_string(g) {
            Ok(text) => yaml(text),
            Err(e) => Response::text(500, &format!("cannot render the group: {e}\n")),
        },
    }
}

/// The namespace's document as its file holds it now (empty when there is none).
fn current_doc(ruler: &Ruler, tenant: &str, ns: &str) -> Result<NamespaceDoc, String> {
    let path = files::namespace_path(&ruler.settings.rules_dir, tenant, ns);
    match std::fs::read_to_string(&path) {
        Ok(text) if text.trim().is_empty() => Ok(NamespaceDoc::default()),
        Ok(text) => yaml_serde::from_str(&text).map_err(|e| format!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(NamespaceDoc::default()),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// Writes a namespace's new document (or removes its file when it has no group left) off
/// the executor, then loads the change.
async fn store(
    ruler: &std::sync::Arc<Ruler>,
    tenant: &str,
    ns: &str,
    doc: NamespaceDoc,
) -> Response {
    let dir = ruler.settings.rules_dir.clone();
    let (tenant_owned, ns_owned) = (tenant.to_string(), ns.to_string());
    let written = glommio::executor()
        .spawn_blocking(move || {
            if doc.groups.is_empty() {
                files::delete_namespace(&dir, &tenant_owned, &ns_owned).map(|_| ())
            } else {
                let text = yaml_serde::to_string(&doc).map_err(std::io::Error::other)?;
                files::write_namespace(&dir, &tenant_owned, &ns_owned, &text)
            }
        })
        .await;
    if let Err(e) = written {
        return Response::text(500, &format!("cannot write the rules of {ns:?}: {e}\n"));
    }
    for m in ruler.reload() {
        eprintln!("shardlog: rules: {m}");
    }
    accepted()
}

async fn create_group(
    ruler: &std::sync::Arc<Ruler>,
    tenant: &str,
    ns: &str,
    body: &[u8],
) -> Response {
    if let Err(e) = rules::validate_namespace_name(ns) {
        return Response::text(400, &format!("{e}\n"));
    }
    if ns == demo::NAMESPACE {
        return Response::text(
            400,
            &format!("namespace {ns:?} holds the [[alert]] rules of the configuration file\n"),
        );
    }
    let Ok(text) = std::str::from_utf8(body) else {
        return Response::text(400, "the rule group is not UTF-8\n");
    };
    let group: GroupDoc = match yaml_serde::from_str(text) {
        Ok(g) => g,
        Err(e) => return Response::text(400, &format!("{e}\n")),
    };
    let interval = ruler.settings.evaluation_interval.as_nanos() as i64;
    let single = NamespaceDoc {
        groups: vec![group.clone()],
    };
    if let Err(e) = rules::validate_namespace("request", ns, text, &single, interval) {
        return Response::text(400, &format!("{e}\n"));
    }
    let mut doc = match current_doc(ruler, tenant, ns) {
        Ok(d) => d,
        Err(e) => return Response::text(500, &format!("{e}\n")),
    };
    match doc.groups.iter_mut().find(|g| g.name == group.name) {
        Some(slot) => *slot = group,
        None => doc.groups.push(group),
    }
    if doc.groups.len() > rules::GROUPS_PER_NAMESPACE_MAX {
        return Response::text(
            400,
            &format!(
                "namespace {ns:?} would hold more than {} groups\n",
                rules::GROUPS_PER_NAMESPACE_MAX
            ),
        );
    }
    store(ruler, tenant, ns, doc).await
}

async fn delete(
    ruler: &std::sync::Arc<Ruler>,
    tenant: &str,
    ns: &str,
    group: Option<&str>,
) -> Response {
    if rules::validate_namespace_name(ns).is_err() || ns == demo::NAMESPACE {
        return Response::text(404, "group namespace not found\n");
    }
    let mut doc = match current_doc(ruler, tenant, ns) {
        Ok(d) => d,
        Err(e) => return Response::text(500, &format!("{e}\n")),
    };
    match group {
        None => {
            if doc.groups.is_empty() {
                return Response::text(404, "group namespace not found\n");
            }
            doc.groups.clear();
        }
        Some(name) => {
            let before = doc.groups.len();
            doc.groups.retain(|g| g.name != name);
            if doc.groups.len() == before {
                return Response::text(404, "group does not exist\n");
            }
        }
    }
    store(ruler, tenant, ns, doc).await
}

/// Go's `strconv.FormatFloat(v, 'e', -1, 64)`, as Prometheus' API prints alert values.
pub fn go_float_e(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    let s = format!("{v:e}");
    let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let sign = if exp < 0 { '-' } else { '+' };
    format!("{mantissa}e{sign}{:02}", exp.abs())
}

fn rfc3339_ms(ms: i64) -> String {
    if ms <= 0 {
        return "0001-01-01T00:00:00Z".to_string();
    }
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

fn pairs_json(pairs: &[(String, String)]) -> Value {
    Value::Object(
        pairs
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

fn map_json(map: &BTreeMap<String, String>) -> Value {
    Value::Object(
        map.iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

fn alert_json(a: &Alert) -> Value {
    json!({
        "labels": pairs_json(&a.labels),
        "annotations": pairs_json(&a.annotations),
        "state": a.state.as_str(),
        "activeAt": rfc3339_ms(a.active_at_ms),
        "value": go_float_e(a.value),
    })
}

/// The filters of `/prometheus/api/v1/rules`, as Prometheus takes them.
struct RuleFilter {
    kind: Option<String>,
    names: Vec<String>,
    groups: Vec<String>,
    files: Vec<String>,
}

impl RuleFilter {
    fn from(params: &[(String, String)]) -> Result<RuleFilter, String> {
        let all = |k: &str| -> Vec<String> {
            params
                .iter()
                .filter(|(n, _)| n == k || *n == format!("{k}[]"))
                .map(|(_, v)| v.clone())
                .collect()
        };
        let kind = params
            .iter()
            .find(|(n, _)| n == "type")
            .map(|(_, v)| v.clone());
        if let Some(k) = &kind
            && k != "alert"
            && k != "record"
            && !k.is_empty()
        {
            return Err(format!("unsupported rule type {k:?}: alert or record"));
        }
        Ok(RuleFilter {
            kind: kind.filter(|k| !k.is_empty()),
            names: all("rule_name"),
            groups: all("rule_group"),
            files: all("file"),
        })
    }
}

fn group_json(ns: &str, g: &GroupRuntime, filter: &RuleFilter) -> Option<Value> {
    if (!filter.groups.is_empty() && !filter.groups.contains(&g.def.name))
        || (!filter.files.is_empty() && !filter.files.iter().any(|f| f == ns))
    {
        return None;
    }
    let mut rules = Vec::new();
    for (rule, st) in g.def.rules.iter().zip(&g.rules) {
        if !filter.names.is_empty() && !filter.names.iter().any(|n| n == rule.name()) {
            continue;
        }
        let common_labels = map_json(&rule.doc.labels);
        let v = match &rule.kind {
            RuleKind::Alert {
                name,
                for_ns,
                keep_firing_for_ns,
                ..
            } => {
                if filter.kind.as_deref() == Some("record") {
                    continue;
                }
                json!({
                    "state": st.alerts.rule_state().as_str(),
                    "name": name,
                    "query": rule.expr_text,
                    "duration": *for_ns as f64 / 1e9,
                    "keepFiringFor": *keep_firing_for_ns as f64 / 1e9,
                    "labels": common_labels,
                    "annotations": map_json(&rule.doc.annotations),
                    "alerts": st.alerts.active().map(alert_json).collect::<Vec<_>>(),
                    "health": st.health,
                    "lastError": st.last_error,
                    "type": "alerting",
                    "lastEvaluation": rfc3339_ms(st.last_eval_ms),
                    "evaluationTime": st.eval_seconds,
                })
            }
            RuleKind::Record { name } => {
                if filter.kind.as_deref() == Some("alert") {
                    continue;
                }
                json!({
                    "name": name,
                    "query": rule.expr_text,
                    "labels": common_labels,
                    "health": st.health,
                    "lastError": st.last_error,
                    "type": "recording",
                    "lastEvaluation": rfc3339_ms(st.last_eval_ms),
                    "evaluationTime": st.eval_seconds,
                })
            }
        };
        rules.push(v);
    }
    if rules.is_empty() && (!filter.names.is_empty() || filter.kind.is_some()) {
        return None;
    }
    Some(json!({
        "name": g.def.name,
        "file": ns,
        "rules": rules,
        "interval": g.def.interval_ns as f64 / 1e9,
        "limit": g.def.limit,
        "lastEvaluation": rfc3339_ms(g.last_eval_ms),
        "evaluationTime": g.eval_seconds,
    }))
}

/// `GET /prometheus/api/v1/rules`.
pub fn prometheus_rules(core: &Rc<Core>, req: &Request) -> Response {
    let tenant = match tenant(core, req, false) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let p = match params(req) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let filter = match RuleFilter::from(&p) {
        Ok(f) => f,
        Err(e) => return prometheus_error(400, "bad_data", &e),
    };
    let mut groups = Vec::new();
    {
        let inner = core.ruler.lock();
        if let Some(t) = inner.tenants.get(&tenant) {
            for (ns, n) in &t.namespaces {
                for g in &n.groups {
                    if let Some(v) = group_json(ns, g, &filter) {
                        groups.push(v);
                    }
                }
            }
        }
    }
    let body = json!({"status": "success", "data": {"groups": groups}});
    Response::json(200, body.to_string().into_bytes())
}

/// `GET /prometheus/api/v1/alerts`: every pending or firing alert of the tenant.
pub fn prometheus_alerts(core: &Rc<Core>, req: &Request) -> Response {
    let tenant = match tenant(core, req, false) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let mut alerts = Vec::new();
    {
        let inner = core.ruler.lock();
        if let Some(t) = inner.tenants.get(&tenant) {
            for n in t.namespaces.values() {
                for g in &n.groups {
                    for st in &g.rules {
                        alerts.extend(
                            st.alerts
                                .alerts
                                .values()
                                .filter(|a| a.state != AlertState::Inactive)
                                .map(alert_json),
                        );
                    }
                }
            }
        }
    }
    let body = json!({"status": "success", "data": {"alerts": alerts}});
    Response::json(200, body.to_string().into_bytes())
}

fn prometheus_error(status: u16, kind: &str, message: &str) -> Response {
    let body = json!({"status": "error", "errorType": kind, "error": message});
    Response::json(status, body.to_string().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_print_as_go_prints_them_with_e() {
        assert_eq!(go_float_e(12.0), "1.2e+01");
        assert_eq!(go_float_e(1.0), "1e+00");
        assert_eq!(go_float_e(0.00125), "1.25e-03");
        assert_eq!(go_float_e(0.0), "0e+00");
        assert_eq!(go_float_e(f64::INFINITY), "+Inf");
    }

    #[test]
    fn times_print_as_rfc3339() {
        assert_eq!(rfc3339_ms(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(rfc3339_ms(0), "0001-01-01T00:00:00Z");
    }
}

//! From OTLP log records to streams and entries, as Loki 3 maps them
//! (`pkg/loghttp/push/otlp.go` and `otlplabels/labels.go`):
//!
//! - **Stream labels**: the resource attributes of Loki's default list
//!   ([`RESOURCE_ATTRIBUTES_AS_LABELS`]: `service.name`, `service.namespace`,
//!   `service.instance.id`, `deployment.environment`, `cloud.region`, `k8s.*.name`, ...),
//!   named as Prometheus names an OTLP attribute ([`label_name`]: `service.name` is
//!   `service_name`). A resource without `service.name` takes `service_name` from the
//!   tenant's `discover_service_name` list, else `unknown_service`.
//! - **Structured metadata**, in this order: the record's attributes; `observed_timestamp`
//!   (when the record has both times); `severity_number` (not 0); `severity_text`;
//!   `dropped_attributes_count`; `flags`; `trace_id` and `span_id` in lower-case hex;
//!   `event_name`; then the other resource attributes; then the scope's attributes,
//!   `scope_name`, `scope_version`, `scope_dropped_attributes_count`. A map value is
//!   flattened into one field per key (`http` + `{method: GET}` is `http_method`); every
//!   other value is its text ([`value_text`]).
//! - **Line**: the body's text: a string as it is, other values as [`value_text`] gives them
//!   (maps and arrays as JSON).
//! - **Time**: `time_unix_nano`, else `observed_time_unix_nano`, else the time of receipt.
//!
//! Validation is per record, not per request: a record that breaks a rule (its line too
//! long, its metadata too large, its time out of range, its resource's labels invalid) is
//! refused alone and counted in [`Rejected`], which the answer reports as OTLP's
//! `partial_success`; the other records are stored.

use std::borrow::Cow;

use super::proto::{AnyValue, ExportLogsServiceRequest, KeyValue, LogRecord, any_value};
use crate::ingest::push::validate::{self, echo};
use crate::ingest::push::{PushEntry, PushLimits, PushStream, Rule, Truncated, Violation};

/// Loki's `default_resource_attributes_as_index_labels`: the resource attributes that
/// identify where logs come from, and so become stream labels.
pub const RESOURCE_ATTRIBUTES_AS_LABELS: &[&str] = &[
    "service.name",
    "service.namespace",
    "service.instance.id",
    "deployment.environment",
    "deployment.environment.name",
    "cloud.region",
    "cloud.availability_zone",
    "k8s.cluster.name",
    "k8s.namespace.name",
    "k8s.pod.name",
    "k8s.container.name",
    "container.name",
    "k8s.replicaset.name",
    "k8s.deployment.name",
    "k8s.statefulset.name",
    "k8s.daemonset.name",
    "k8s.cronjob.name",
    "k8s.job.name",
];

/// Levels of maps within maps flattened into metadata names: a protobuf body nests at most
/// 100 messages deep (prost's recursion limit), and a JSON one 128; each level lengthens a
/// name, which is bounded again by the metadata limits.
const FLATTEN_DEPTH_MAX: usize = 64;

/// Bytes the mapped entries of one request may hold, per byte of the body limit. Every
/// record carries a copy of its resource's and scope's metadata, so a body of many tiny
/// records under one large resource would otherwise map to `records x metadata` bytes
/// (a 1 MiB body to tens of GiB).
const MAPPED_BYTES_PER_BODY_BYTE: usize = 16;

/// Fields one attribute list may flatten into: more are refused by the entry's checks
/// anyway, and a map of many small keys under a long name would otherwise copy that name
/// into every field.
const FLATTEN_PAIRS_MAX: usize = validate::METADATA_PAIRS_PER_ENTRY_MAX;

/// The records of a request that were refused, by rule, and the first reason, for the
/// answer's `partial_success` and the discard counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rejected {
    pub records: u64,
    pub by_rule: Vec<(Rule, u64)>,
    pub first_message: Option<String>,
}

impl Rejected {
    pub fn add(&mut self, violation: Violation, records: u64) {
        if records == 0 {
            return;
        }
        self.records += records;
        match self.by_rule.iter_mut().find(|(r, _)| *r == violation.rule) {
            Some((_, n)) => *n += records,
            None => self.by_rule.push((violation.rule, records)),
        }
        self.first_message.get_or_insert(violation.message);
    }
}

/// A request mapped to streams: what is to be stored and what was refused.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Mapped {
    pub streams: Vec<PushStream>,
    pub truncated: Truncated,
    pub rejected: Rejected,
}

/// Maps and validates a decoded request; `now_ns` stands in for records without a time.
pub fn map_request(request: ExportLogsServiceRequest, now_ns: i64, limits: &PushLimits) -> Mapped {
    let mut out = Mapped::default();
    let budget = limits
        .body_bytes_max
        .saturating_mul(MAPPED_BYTES_PER_BODY_BYTE);
    let mut mapped_bytes = 0usize;
    for rl in request.resource_logs {
        let records: u64 = rl
            .scope_logs
            .iter()
            .map(|s| s.log_records.len() as u64)
            .sum();
        let resource_attributes = rl.resource.map(|r| r.attributes).unwrap_or_default();
        let (labels, resource_md) = match resource_labels(&resource_attributes, limits) {
            Ok(found) => found,
            Err(v) => {
                out.rejected.add(v, records);
                continue;
            }
        };
        let mut entries = Vec::new();
        for sl in rl.scope_logs {
            let scope_md = match sl.scope.as_ref().map(scope_metadata).transpose() {
                Ok(md) => md.unwrap_or_default(),
                Err(v) => {
                    out.rejected.add(v, sl.log_records.len() as u64);
                    continue;
                }
            };
            // Metadata every record of this scope gets: over the limit, each record would be
            // refused after copying it, so they are all refused without.
            let shared_bytes = pairs_bytes(&resource_md) + pairs_bytes(&scope_md);
            if shared_bytes > validate::METADATA_BYTES_PER_ENTRY_MAX {
                out.rejected.add(
                    Violation::new(
                        Rule::StructuredMetadataTooLarge,
                        format!(
                            "stream '{}' has structured metadata too large: '{shared_bytes}' \
                             bytes, limit: '{}' bytes",
                            echo(&labels.to_string()),
                            validate::METADATA_BYTES_PER_ENTRY_MAX
                        ),
                    ),
                    sl.log_records.len() as u64,
                );
                continue;
            }
            for record in sl.log_records {
                // Refused before the copies are made, once the request's entries would
                // outgrow the budget.
                if mapped_bytes.saturating_add(shared_bytes) > budget {
                    out.rejected.add(
                        Violation::new(
                            Rule::Other,
                            format!("the request maps to more than {budget} bytes of entries"),
                        ),
                        1,
                    );
                    continue;
                }
                match entry(record, &resource_md, &scope_md, now_ns) {
                    Ok(mut e) => {
                        out.truncated.add(validate::fit_line(&mut e, limits));
                        match validate::entry(&e, &labels, limits) {
                            Ok(()) => {
                                mapped_bytes = mapped_bytes.saturating_add(entry_bytes(&e));
                                entries.push(e);
                            }
                            Err(v) => out.rejected.add(v, 1),
                        }
                    }
                    Err(v) => out.rejected.add(v, 1),
                }
            }
        }
        if !entries.is_empty() {
            out.streams.push(PushStream { labels, entries });
        }
    }
    out
}

/// A resource's stream labels (validated, with the derived `service_name`) and the
/// structured metadata its other attributes give every record.
fn resource_labels(
    attributes: &[KeyValue],
    limits: &PushLimits,
) -> Result<(crate::model::Labels, Vec<(String, String)>), Violation> {
    let mut labels = Vec::new();
    let mut metadata = Vec::new();
    for kv in attributes {
        let into = if RESOURCE_ATTRIBUTES_AS_LABELS.contains(&kv.key.as_str()) {
            &mut labels
        } else {
            &mut metadata
        };
        let name_bytes_max = if RESOURCE_ATTRIBUTES_AS_LABELS.contains(&kv.key.as_str()) {
            limits.label_name_bytes_max
        } else {
            validate::METADATA_NAME_BYTES_MAX
        };
        flatten(&kv.key, kv.value.as_ref(), "", 0, name_bytes_max, into)?;
    }
    // Loki's label set holds one value per name (the last), and an empty value is no
    // label: so an empty `service.name` still lets `service_name` be discovered.
    let mut unique: Vec<(String, String)> = Vec::with_capacity(labels.len());
    for (k, v) in labels {
        unique.retain(|(n, _)| *n != k);
        if !v.is_empty() {
            unique.push((k, v));
        }
    }
    let shown = validate::display_pairs(&unique);
    let labels = validate::labels(unique, &shown, limits)?;
    Ok((labels, metadata))
}

/// The scope's structured metadata: its attributes, then `scope_name`, `scope_version` and
/// `scope_dropped_attributes_count` where set.
fn scope_metadata(
    scope: &super::proto::InstrumentationScope,
) -> Result<Vec<(String, String)>, Violation> {
    let mut md = Vec::new();
    for kv in &scope.attributes {
        flatten_metadata(kv, &mut md)?;
    }
    if !scope.name.is_empty() {
        md.push(("scope_name".into(), scope.name.clone()));
    }
    if !scope.version.is_empty() {
        md.push(("scope_version".into(), scope.version.clone()));
    }
    if scope.dropped_attributes_count != 0 {
        md.push((
            "scope_dropped_attributes_count".into(),
            scope.dropped_attributes_count.to_string(),
        ));
    }
    Ok(md)
}

/// Flattens one attribute into structured-metadata pairs, names held to metadata's limit.
fn flatten_metadata(kv: &KeyValue, out: &mut Vec<(String, String)>) -> Result<(), Violation> {
    let name_max = validate::METADATA_NAME_BYTES_MAX;
    flatten(&kv.key, kv.value.as_ref(), "", 0, name_max, out)
}

/// One record as an entry (not yet validated).
fn entry(
    record: LogRecord,
    resource_md: &[(String, String)],
    scope_md: &[(String, String)],
    now_ns: i64,
) -> Result<PushEntry, Violation> {
    let mut md: Vec<(String, String)> =
        Vec::with_capacity(record.attributes.len() + 8 + resource_md.len() + scope_md.len());
    for kv in &record.attributes {
        // The record's own `event_name` field wins over an attribute of that name.
        if kv.key == "event_name" && !record.event_name.is_empty() {
            continue;
        }
        flatten_metadata(kv, &mut md)?;
    }
    if record.time_unix_nano != 0 && record.observed_time_unix_nano != 0 {
        md.push((
            "observed_timestamp".into(),
            record.observed_time_unix_nano.to_string(),
        ));
    }
    if record.severity_number != 0 {
        md.push((
            crate::ingest::discovery::level::OTLP_SEVERITY_NUMBER.into(),
            record.severity_number.to_string(),
        ));
    }
    if !record.severity_text.is_empty() {
        md.push(("severity_text".into(), record.severity_text));
    }
    if record.dropped_attributes_count != 0 {
        md.push((
            "dropped_attributes_count".into(),
            record.dropped_attributes_count.to_string(),
        ));
    }
    if record.flags != 0 {
        md.push(("flags".into(), record.flags.to_string()));
    }
    // An id of zeros is no id (the OTLP data model's invalid id), as Loki's `IsEmpty`.
    if record.trace_id.iter().any(|&b| b != 0) {
        md.push(("trace_id".into(), hex(&record.trace_id)));
    }
    if record.span_id.iter().any(|&b| b != 0) {
        md.push(("span_id".into(), hex(&record.span_id)));
    }
    if !record.event_name.is_empty() {
        md.push(("event_name".into(), record.event_name));
    }
    md.extend(resource_md.iter().cloned());
    md.extend(scope_md.iter().cloned());
    let time = match (record.time_unix_nano, record.observed_time_unix_nano) {
        (0, 0) => Ok(now_ns),
        (0, t) | (t, _) => i64::try_from(t),
    };
    // A time past i64 is past the accepted range too: the range check refuses it.
    let timestamp_ns = time.unwrap_or(i64::MAX);
    Ok(PushEntry {
        timestamp_ns,
        line: record.body.as_ref().map(value_text).unwrap_or_default(),
        metadata: md,
    })
}

/// Bytes of name and value text in metadata pairs.
fn pairs_bytes(pairs: &[(String, String)]) -> usize {
    pairs.iter().map(|(k, v)| k.len() + v.len()).sum()
}

/// Memory an entry holds: its line, its metadata text and the structures around them.
fn entry_bytes(e: &PushEntry) -> usize {
    std::mem::size_of::<PushEntry>()
        + e.line.len()
        + pairs_bytes(&e.metadata)
        + e.metadata.len() * std::mem::size_of::<(String, String)>()
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(2 * bytes.len());
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

/// Adds an attribute as `(name, text)` pairs: a map value as one pair per key, its names
/// prefixed with the attribute's (`AttributeToLabels` in Loki), anything else as one pair.
fn flatten(
    key: &str,
    value: Option<&AnyValue>,
    prefix: &str,
    depth: usize,
    name_bytes_max: usize,
    out: &mut Vec<(String, String)>,
) -> Result<(), Violation> {
    let joined: Cow<str> = if prefix.is_empty() {
        Cow::Borrowed(key)
    } else {
        Cow::Owned(format!("{prefix}_{key}"))
    };
    let name = label_name(&joined)?;
    // Refused here, not only by the entry's checks, so that a prefix never grows past the
    // bound: otherwise every key under a long name would copy it.
    if name.len() > name_bytes_max {
        return Err(Violation::new(
            Rule::Other,
            format!(
                "attribute name '{}' is {} bytes as a label name, over the limit of \
                 {name_bytes_max} bytes",
                echo(&name),
                name.len()
            ),
        ));
    }
    match value.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::KvlistValue(map)) if depth < FLATTEN_DEPTH_MAX => {
            for kv in &map.values {
                flatten(
                    &kv.key,
                    kv.value.as_ref(),
                    &name,
                    depth + 1,
                    name_bytes_max,
                    out,
                )?;
            }
        }
        _ => {
            if out.len() >= FLATTEN_PAIRS_MAX {
                return Err(Violation::new(
                    Rule::StructuredMetadataTooMany,
                    format!("attributes flatten into more than {FLATTEN_PAIRS_MAX} fields"),
                ));
            }
            out.push((name.into_owned(), value.map(value_text).unwrap_or_default()))
        }
    }
    Ok(())
}

/// An OTLP attribute name as a Prometheus label name, as Loki names it
/// (`otlptranslator.LabelNamer.Build`): every run of characters outside `[A-Za-z0-9]`
/// becomes one `_` (a `__x__` name keeps its double underscores), and a name that then
/// starts with a digit gets `key_` in front. A name that would be only underscores, or is
/// empty, is refused.
pub fn label_name(name: &str) -> Result<Cow<'_, str>, Violation> {
    let valid = |c: char| c.is_ascii_alphanumeric();
    let refuse = || {
        Violation::new(
            Rule::InvalidLabels,
            format!(
                "attribute name '{}' is not a label name, even with its characters outside \
                 [A-Za-z0-9] replaced by _",
                echo(name)
            ),
        )
    };
    if name.is_empty() {
        return Err(refuse());
    }
    let already = {
        let bytes = name.as_bytes();
        !bytes[0].is_ascii_digit()
            && name.chars().all(|c| valid(c) || c == '_')
            && !name.contains("__")
            && name.bytes().any(|b| b != b'_')
    };
    if already {
        return Ok(Cow::Borrowed(name));
    }
    let (inner, reserved) = match name.strip_prefix("__").and_then(|n| n.strip_suffix("__")) {
        Some(inner) if name.len() >= 4 => (inner, true),
        _ => (name, false),
    };
    let mut out = String::with_capacity(name.len() + 4);
    let mut last_underscore = false;
    for c in inner.chars() {
        if valid(c) {
            out.push(c);
            last_underscore = false;
        } else if !last_underscore {
            out.push('_');
            last_underscore = true;
        }
    }
    if reserved {
        out = format!("__{out}__");
    }
    if out.as_bytes().first().is_some_and(u8::is_ascii_digit) {
        out.insert_str(0, "key_");
    }
    if out.bytes().all(|b| b == b'_') {
        return Err(refuse());
    }
    Ok(Cow::Owned(out))
}

/// An OTLP value as text, as the collector's `pcommon.Value.AsString` gives it (what Loki
/// stores): a string as it is; a bool, an int as Go prints them; a double as JavaScript
/// prints a number; bytes in base64; a map or an array as JSON (map keys sorted, Go's HTML
/// escaping); an empty value as nothing.
pub fn value_text(value: &AnyValue) -> String {
    use any_value::Value;
    match &value.value {
        None => String::new(),
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::DoubleValue(f)) => double_text(*f),
        Some(Value::BytesValue(b)) => base64_text(b),
        // Only meaningful in profiles: as the data model says, taken as empty.
        Some(Value::StringValueStrindex(_)) => String::new(),
        Some(Value::ArrayValue(_) | Value::KvlistValue(_)) => {
            let mut out = String::new();
            if super::value_json::write(value, &mut out).is_err() {
                // Go's encoder fails on NaN and infinities inside a map or an array, and
                // `AsString` then gives an empty string.
                out.clear();
            }
            out
        }
    }
}

pub(super) fn base64_text(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A double as Go's `pcommon` prints it (`float64AsString`): JavaScript's number format
/// (`1e+21`, `1e-7`, `0.5`), and for NaN and the infinities the error text Go's JSON
/// encoder gives.
pub(super) fn double_text(f: f64) -> String {
    if f.is_nan() {
        return "json: unsupported value: NaN".into();
    }
    if f.is_infinite() {
        let sign = if f > 0.0 { "+" } else { "-" };
        return format!("json: unsupported value: {sign}Inf");
    }
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        // Shortest exponent form, Go's `e-07` written `e-7` and a `+` for positive ones.
        let text = format!("{f:e}");
        let (mantissa, exponent) = text.split_once('e').expect("{:e} has an exponent");
        let sign = if exponent.starts_with('-') { "-" } else { "+" };
        let digits = exponent.trim_start_matches('-');
        return format!("{mantissa}e{sign}{digits}");
    }
    // Rust's shortest round-trip decimal, like Go's `'f', -1`.
    format!("{f}")
}

#[cfg(test)]
#[path = "mapping_tests.rs"]
mod tests;

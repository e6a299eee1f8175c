//! Detected fields and labels: the answers of Loki's `/loki/api/v1/detected_fields`,
//! `/loki/api/v1/detected_field/<name>/values` and `/loki/api/v1/detected_labels`
//! (pkg/querier/queryrange/detected_fields.go, pkg/querier/querier.go `DetectedLabels`,
//! pkg/storage/detected), which Grafana's Logs Drilldown reads.
//!
//! Which question it answers: "which fields do these lines carry, of what type, with how
//! many values, and which stream labels are worth grouping by?"
//! - [`FieldsCollector`] reads lines (Loki reads the newest `line_limit` lines of the
//!   query): each structured metadata name is a field without parser; then the line is
//!   parsed as `| json` or, failing that, `| logfmt`, and each parsed name is a field of
//!   that parser (with its JSON key path). A field's type is guessed from a value of the
//!   last line that had it; its cardinality counts distinct values (`cardinality`: exact
//!   up to 512, a HyperLogLog beyond). At most `limit` fields, the first found.
//! - [`FieldValuesCollector`] lists the distinct values of one field (sizes rewritten as
//!   Loki rewrites them), at most `limit`.
//! - [`LabelsCollector`] counts the distinct values of each stream label and keeps Loki's
//!   selection: `cluster`, `namespace`, `instance` and `pod` always; any other label unless
//!   all its values are numbers or UUIDs (two values `0`/`1` count as a flag and are kept).
//!
//! Merging (shards collecting on their own, the receiving core merging) follows Loki's
//! merge of split responses: cardinalities merge as sketches; a field whose type differs
//! between the two becomes `string`; parsers are united and sorted; new fields and values
//! are taken while under the limit. Loki itself collects fields on one querier from the
//! lines the log query returns, so feeding those lines to one collector on the receiving
//! core gives its answer exactly; lines are then read in the order given (the type comes
//! from the last one).
//!
//! Answers are sorted by name (Loki's come in Go map order). Bounds: fields, values and
//! labels are capped by their limits, a cardinality sketch takes 4 KiB at most, and a line
//! is parsed by the pipeline's bounded parsers.

mod cardinality;
mod extract;
mod value_type;

#[cfg(test)]
mod tests;

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write;

use crate::http::json;
use crate::model::Labels;
use crate::query::sample::parse_go_float;
use cardinality::Sketch;
pub use extract::Parser;
use extract::{Extracted, Extractor, is_error_label};
pub use value_type::{FieldType, display_value};

/// Loki's default `limit` (or `field_limit`) of `detected_fields` and of a field's values.
pub const DEFAULT_FIELD_LIMIT: usize = 1000;
/// How many label names [`LabelsCollector::default`] tracks (Loki sets no limit; label
/// names per tenant are few, this only bounds memory against a flood of them).
pub const DEFAULT_LABEL_NAMES_MAX: usize = 10_000;
/// Labels `detected_labels` always keeps, whatever their values.
const STATIC_LABELS: [&str; 4] = ["cluster", "namespace", "instance", "pod"];

/// One field of the `detected_fields` answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DetectedField {
    pub label: String,
    pub field_type: FieldType,
    pub cardinality: u64,
    /// Empty for structured metadata only (rendered `null`, as Loki does).
    pub parsers: Vec<Parser>,
    /// The key path of a JSON field, from the last JSON line that had it.
    pub json_path: Option<Vec<String>>,
}

/// What is known of one field so far.
#[derive(Clone, Debug)]
struct FieldState {
    sketch: Sketch,
    field_type: FieldType,
    parsers: Vec<Parser>,
    json_path: Option<Vec<String>>,
}

impl FieldState {
    fn new(parsers: &[Parser]) -> FieldState {
        FieldState {
            sketch: Sketch::default(),
            field_type: FieldType::String,
            parsers: parsers.to_vec(),
            json_path: None,
        }
    }

    /// The values a line gave: the type from the first, all counted.
    fn add_values<'v>(&mut self, values: impl IntoIterator<Item = &'v str>) {
        for (i, value) in values.into_iter().enumerate() {
            if i == 0 {
                self.field_type = FieldType::of(value);
            }
            self.sketch.insert(value);
        }
    }
}

/// Name/values groups of one line, names in first-seen order, values distinct.
fn group<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Vec<(&'a str, Vec<&'a str>)> {
    let mut groups: Vec<(&str, Vec<&str>)> = Vec::new();
    for (name, value) in pairs {
        match groups.iter_mut().find(|(n, _)| *n == name) {
            Some((_, values)) => {
                if !values.contains(&value) {
                    values.push(value);
                }
            }
            None => groups.push((name, vec![value])),
        }
    }
    groups
}

/// Collects the fields of lines for `detected_fields`.
#[derive(Debug)]
pub struct FieldsCollector {
    limit: usize,
    fields: HashMap<String, FieldState>,
    extractor: Extractor,
    scratch: Extracted,
}

impl FieldsCollector {
    /// `limit`: the request's `limit` (or `field_limit`), the most fields reported.
    pub fn new(limit: usize) -> FieldsCollector {
        FieldsCollector {
            limit,
            fields: HashMap::new(),
            extractor: Extractor::new(),
            scratch: Extracted::default(),
        }
    }

    /// Reads one line with its structured metadata, of a stream with labels `stream`.
    pub fn add_line(&mut self, line: &str, structured_metadata: &[(&str, &str)], stream: &Labels) {
        self.add_entry(line, structured_metadata, &[], stream);
    }

    /// [`FieldsCollector::add_line`] for a line the query's own pipeline already parsed:
    /// `parsed` are the labels its parsers set (Loki's `Entry.Parsed`), fields too.
    pub fn add_entry(
        &mut self,
        line: &str,
        structured_metadata: &[(&str, &str)],
        parsed: &[(&str, &str)],
        stream: &Labels,
    ) {
        for (name, values) in group(structured_metadata.iter().copied()) {
            if let Some(field) = self.field(name, &[]) {
                field.add_values(values);
            }
        }
        let mut extracted = std::mem::take(&mut self.scratch);
        self.extractor.extract(line, stream, &mut extracted);
        let parsers: Vec<Parser> = extracted.parser.into_iter().collect();
        let all = parsed
            .iter()
            .copied()
            .filter(|(name, _)| !is_error_label(name))
            .chain(
                extracted
                    .fields
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str())),
            );
        for (name, values) in group(all) {
            let Some(field) = self.field(name, &parsers) else {
                continue;
            };
            for parser in &parsers {
                if !field.parsers.contains(parser) {
                    field.parsers.push(*parser);
                }
            }
            if extracted.parser == Some(Parser::Json) {
                field.json_path = extracted.json_paths.get(name).cloned();
            }
            field.add_values(values);
        }
        self.scratch = extracted;
    }

    /// The field `name`, created with `parsers` while under the limit.
    fn field(&mut self, name: &str, parsers: &[Parser]) -> Option<&mut FieldState> {
        if !self.fields.contains_key(name) {
            if self.fields.len() >= self.limit {
                return None;
            }
            self.fields
                .insert(name.to_owned(), FieldState::new(parsers));
        }
        self.fields.get_mut(name)
    }

    /// Adds another collector's fields (Loki's `MergeFields`, with the JSON paths kept).
    pub fn merge(&mut self, other: FieldsCollector) {
        let mut theirs: Vec<(String, FieldState)> = other.fields.into_iter().collect();
        theirs.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, field) in theirs {
            if let Some(mine) = self.fields.get_mut(&name) {
                mine.sketch.merge(&field.sketch);
                if mine.field_type != field.field_type {
                    mine.field_type = FieldType::String;
                }
                mine.parsers.extend(field.parsers);
                mine.parsers.sort();
                mine.parsers.dedup();
                if mine.json_path.is_none() {
                    mine.json_path = field.json_path;
                }
            } else if self.fields.len() < self.limit {
                self.fields.insert(name, field);
            }
        }
    }

    /// The fields found, sorted by name.
    pub fn finish(&self) -> Vec<DetectedField> {
        let mut fields: Vec<DetectedField> = self
            .fields
            .iter()
            .map(|(name, f)| DetectedField {
                label: name.clone(),
                field_type: f.field_type,
                cardinality: f.sketch.estimate(),
                parsers: f.parsers.clone(),
                json_path: f.json_path.clone(),
            })
            .collect();
        fields.sort_by(|a, b| a.label.cmp(&b.label));
        fields
    }
}

/// The body of `/loki/api/v1/detected_fields`, as Loki writes it:
/// `{"fields":[{"label":"user_id","type":"int","cardinality":42,"parsers":["json"],"jsonPath":["user","id"]}],"limit":1000}`;
/// `parsers` is `null` for structured metadata; `{}` when there are no fields.
pub fn render_fields_json(fields: &[DetectedField], limit: usize) -> String {
    if fields.is_empty() {
        return "{}".to_owned();
    }
    let mut out = String::with_capacity(32 + fields.len() * 96);
    out.push_str(r#"{"fields":["#);
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('{');
        // Loki's encoder leaves out an empty label and a zero cardinality.
        if !f.label.is_empty() {
            out.push_str(r#""label":"#);
            json::string(&mut out, &f.label);
            out.push(',');
        }
        let _ = write!(out, r#""type":"{}","#, f.field_type.as_str());
        if f.cardinality > 0 {
            let _ = write!(out, r#""cardinality":{},"#, f.cardinality);
        }
        out.push_str(r#""parsers":"#);
        if f.parsers.is_empty() {
            out.push_str("null");
        } else {
            json::string_array(&mut out, f.parsers.iter().map(|p| p.as_str()));
        }
        if let Some(path) = f.json_path.as_ref().filter(|p| !p.is_empty()) {
            out.push_str(r#","jsonPath":"#);
            json::string_array(&mut out, path.iter().map(String::as_str));
        }
        out.push('}');
    }
    let _ = write!(out, r#"],"limit":{limit}}}"#);
    out
}

/// Collects the distinct values of one field for `/detected_field/<name>/values`.
#[derive(Debug)]
pub struct FieldValuesCollector {
    name: String,
    limit: usize,
    values: BTreeSet<String>,
    extractor: Extractor,
    scratch: Extracted,
}

impl FieldValuesCollector {
    pub fn new(name: &str, limit: usize) -> FieldValuesCollector {
        FieldValuesCollector {
            name: name.to_owned(),
            limit,
            values: BTreeSet::new(),
            extractor: Extractor::new(),
            scratch: Extracted::default(),
        }
    }

    pub fn add_line(&mut self, line: &str, structured_metadata: &[(&str, &str)], stream: &Labels) {
        self.add_entry(line, structured_metadata, &[], stream);
    }

    /// Loki reads a line while it has fewer values than the limit; a line's own values all
    /// count (the limit applies again in [`FieldValuesCollector::finish`]).
    pub fn add_entry(
        &mut self,
        line: &str,
        structured_metadata: &[(&str, &str)],
        parsed: &[(&str, &str)],
        stream: &Labels,
    ) {
        if self.values.len() >= self.limit {
            return;
        }
        for (name, value) in structured_metadata {
            if *name == self.name {
                self.values.insert(value.to_string());
            }
        }
        let mut extracted = std::mem::take(&mut self.scratch);
        self.extractor.extract(line, stream, &mut extracted);
        if extracted.parser.is_some() || !parsed.is_empty() {
            let found = parsed.iter().map(|(k, v)| (*k, *v)).chain(
                extracted
                    .fields
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str())),
            );
            for (name, value) in found {
                if name == self.name {
                    self.values.insert(display_value(value));
                }
            }
        }
        self.scratch = extracted;
    }

    pub fn merge(&mut self, other: FieldValuesCollector) {
        for value in other.values {
            if self.values.len() >= self.limit {
                break;
            }
            self.values.insert(value);
        }
    }

    /// The values, sorted, at most `limit`, without the empty value (Loki's `MergeValues`).
    pub fn finish(&self) -> Vec<String> {
        self.values
            .iter()
            .filter(|v| !v.is_empty())
            .take(self.limit)
            .cloned()
            .collect()
    }
}

/// The body of `/loki/api/v1/detected_field/<name>/values`:
/// `{"limit":1000,"values":["a","b"]}`; `{}` when there are none.
pub fn render_field_values_json(values: &[String], limit: usize) -> String {
    if values.is_empty() {
        return "{}".to_owned();
    }
    let mut out = String::with_capacity(32 + values.len() * 16);
    let _ = write!(out, r#"{{"limit":{limit},"values":"#);
    json::string_array(&mut out, values.iter().map(String::as_str));
    out.push('}');
    out
}

/// One label of the `detected_labels` answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DetectedLabel {
    pub label: String,
    pub cardinality: u64,
}

/// What is known of one label's values.
#[derive(Clone, Debug)]
struct LabelState {
    sketch: Sketch,
    /// Every value parses as a float or a UUID (Loki's `containsAllIDTypes`).
    all_ids: bool,
    /// Every value is `0` or `1`.
    all_flags: bool,
}

/// Collects stream labels for `detected_labels`.
#[derive(Debug)]
pub struct LabelsCollector {
    names_max: usize,
    labels: HashMap<String, LabelState>,
}

impl Default for LabelsCollector {
    fn default() -> LabelsCollector {
        LabelsCollector::new(DEFAULT_LABEL_NAMES_MAX)
    }
}

impl LabelsCollector {
    /// Tracks at most `names_max` label names (the first seen).
    pub fn new(names_max: usize) -> LabelsCollector {
        LabelsCollector {
            names_max,
            labels: HashMap::new(),
        }
    }

    /// Counts the labels of one stream that matched the query.
    pub fn add_stream(&mut self, stream: &Labels) {
        for (name, value) in stream.pairs() {
            self.add(name, value);
        }
    }

    /// Counts one label value.
    pub fn add(&mut self, name: &str, value: &str) {
        if !self.labels.contains_key(name) {
            if self.labels.len() >= self.names_max {
                return;
            }
            self.labels.insert(
                name.to_owned(),
                LabelState {
                    sketch: Sketch::default(),
                    all_ids: true,
                    all_flags: true,
                },
            );
        }
        if let Some(state) = self.labels.get_mut(name) {
            state.sketch.insert(value);
            state.all_flags &= value == "0" || value == "1";
            state.all_ids &= parse_go_float(value).is_ok() || is_go_uuid(value);
        }
    }

    pub fn merge(&mut self, other: LabelsCollector) {
        let mut theirs: Vec<(String, LabelState)> = other.labels.into_iter().collect();
        theirs.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, state) in theirs {
            if let Some(mine) = self.labels.get_mut(&name) {
                mine.sketch.merge(&state.sketch);
                mine.all_ids &= state.all_ids;
                mine.all_flags &= state.all_flags;
            } else if self.labels.len() < self.names_max {
                self.labels.insert(name, state);
            }
        }
    }

    /// The labels worth showing (Loki's `shouldRejectLabel` and static labels), sorted.
    pub fn finish(&self) -> Vec<DetectedLabel> {
        let mut labels: Vec<DetectedLabel> = self
            .labels
            .iter()
            .filter(|(name, state)| {
                if STATIC_LABELS.contains(&name.as_str()) {
                    return true;
                }
                let distinct = state.sketch.estimate();
                if distinct == 0 {
                    return false;
                }
                (distinct <= 2 && state.all_flags) || !state.all_ids
            })
            .map(|(name, state)| DetectedLabel {
                label: name.clone(),
                cardinality: state.sketch.estimate(),
            })
            .collect();
        labels.sort_by(|a, b| a.label.cmp(&b.label));
        labels
    }
}

/// The body of `/loki/api/v1/detected_labels`:
/// `{"detectedLabels":[{"label":"app","cardinality":3}]}`; `{}` when there are none.
pub fn render_labels_json(labels: &[DetectedLabel]) -> String {
    if labels.is_empty() {
        return "{}".to_owned();
    }
    let mut out = String::with_capacity(24 + labels.len() * 48);
    out.push_str(r#"{"detectedLabels":["#);
    for (i, l) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('{');
        if !l.label.is_empty() {
            out.push_str(r#""label":"#);
            json::string(&mut out, &l.label);
        }
        if l.cardinality > 0 {
            if !l.label.is_empty() {
                out.push(',');
            }
            let _ = write!(out, r#""cardinality":{}"#, l.cardinality);
        }
        out.push('}');
    }
    out.push_str("]}");
    out
}

/// Whether github.com/google/uuid's `Parse` accepts `s`: 36 characters with dashes, the
/// same in braces (whose characters it does not check) or after `urn:uuid:`, or 32 hex
/// digits.
fn is_go_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    let dashed = match b.len() {
        36 => b,
        45 if b[..9].eq_ignore_ascii_case(b"urn:uuid:") => &b[9..],
        38 => &b[1..37],
        32 => return b.iter().all(u8::is_ascii_hexdigit),
        _ => return false,
    };
    dashed.iter().enumerate().all(|(i, c)| {
        if matches!(i, 8 | 13 | 18 | 23) {
            *c == b'-'
        } else {
            c.is_ascii_hexdigit()
        }
    })
}

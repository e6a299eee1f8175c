//! The template stages: `| line_format "{{.msg}}"` rewrites the line and `| label_format
//! dst="{{.a}}-{{.b}}", x=y` sets labels from templates (and renames), with the Go template
//! engine of [`crate::query::template`] (Loki's `LineFormatter` and `LabelsFormatter`,
//! pkg/logql/log/fmt.go).
//!
//! Which question it answers: "what does the line, or the label, read after formatting?" A
//! template that fails on a line sets `__error__=TemplateFormatErr` with the message in
//! `__error_details__`: `line_format` then keeps the line as it was, `label_format` leaves
//! that label alone, as Loki does. Templates see the labels as they are when the stage
//! starts (`label_format`: when its first template item runs), the line (`__line__`) and the
//! timestamp (`__timestamp__`).

use std::borrow::Cow;

use super::labels::{LabelCategory, LabelsBuilder};
use super::{ParserHints, Stage, TEMPLATE_FORMAT_ERR, set_error_label};
use crate::logql::{LabelFormatItem, LabelFormatSource};
use crate::model::TimestampNs;
use crate::query::template::{Template, TemplateData};

/// The data a template reads: the builder's current labels.
struct Live<'a> {
    lbs: &'a LabelsBuilder,
    line: &'a str,
    ts: TimestampNs,
}

impl TemplateData for Live<'_> {
    fn label(&self, name: &str) -> Option<&str> {
        self.lbs.get(name)
    }
    fn for_each_label(&self, f: &mut dyn FnMut(&str, &str)) {
        self.lbs.for_each(|k, v| f(k, v));
    }
    fn line(&self) -> &str {
        self.line
    }
    fn timestamp_ns(&self) -> i64 {
        self.ts
    }
}

/// The data a `label_format` template reads: the labels when its first template ran.
struct Snapshot<'a> {
    labels: &'a [(String, String)],
    line: &'a str,
    ts: TimestampNs,
}

impl TemplateData for Snapshot<'_> {
    fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    fn for_each_label(&self, f: &mut dyn FnMut(&str, &str)) {
        for (k, v) in self.labels {
            f(k, v);
        }
    }
    fn line(&self) -> &str {
        self.line
    }
    fn timestamp_ns(&self) -> i64 {
        self.ts
    }
}

/// `| line_format "..."`.
#[derive(Debug)]
pub(crate) struct LineFormat {
    template: Template,
}

impl LineFormat {
    pub fn new(text: &str) -> Result<LineFormat, String> {
        Ok(LineFormat {
            template: Template::parse(text).map_err(|e| e.to_string())?,
        })
    }
}

impl Stage for LineFormat {
    fn process<'a>(
        &self,
        ts: TimestampNs,
        line: Cow<'a, str>,
        lbs: &mut LabelsBuilder,
        _hints: &ParserHints,
    ) -> Option<Cow<'a, str>> {
        if let Some(text) = self.template.is_constant() {
            return Some(Cow::Owned(text.to_string()));
        }
        if let Some(name) = self.template.simple_field() {
            return Some(Cow::Owned(lbs.get(name).unwrap_or_default().to_string()));
        }
        let mut out = String::new();
        let rendered = self.template.render(
            &Live {
                lbs,
                line: &line,
                ts,
            },
            &mut out,
        );
        match rendered {
            Ok(()) => Some(Cow::Owned(out)),
            Err(e) => {
                set_error_label(lbs, TEMPLATE_FORMAT_ERR, Some(e.message()));
                Some(line)
            }
        }
    }
}

/// One item of `label_format`.
#[derive(Debug)]
enum Item {
    Rename { dst: String, src: String },
    Template { dst: String, template: Template },
}

/// `| label_format ...` with at least one template item.
#[derive(Debug)]
pub(crate) struct LabelFormat {
    items: Vec<Item>,
}

impl LabelFormat {
    pub fn new(items: &[LabelFormatItem]) -> Result<LabelFormat, String> {
        super::label_format::validate(items)?;
        let items = items
            .iter()
            .map(|item| {
                Ok(match &item.src {
                    LabelFormatSource::Rename(src) => Item::Rename {
                        dst: item.dst.clone(),
                        src: src.clone(),
                    },
                    LabelFormatSource::Template(text) => Item::Template {
                        dst: item.dst.clone(),
                        template: Template::parse_named("label", text)
                            .map_err(|e| e.to_string())?,
                    },
                })
            })
            .collect::<Result<_, String>>()?;
        Ok(LabelFormat { items })
    }
}

impl Stage for LabelFormat {
    fn process<'a>(
        &self,
        ts: TimestampNs,
        line: Cow<'a, str>,
        lbs: &mut LabelsBuilder,
        _hints: &ParserHints,
    ) -> Option<Cow<'a, str>> {
        let mut snapshot: Option<Vec<(String, String)>> = None;
        let mut out = String::new();
        for item in &self.items {
            match item {
                Item::Rename { dst, src } => {
                    let Some(v) = lbs.get(src) else {
                        continue;
                    };
                    let v = v.to_string();
                    // A renamed label is a parsed one, whatever the source's category, as
                    // in Loki's `LabelsFormatter` (and our rename-only stage).
                    lbs.set(LabelCategory::Parsed, dst, &v);
                    lbs.del(src);
                }
                Item::Template { dst, template } => {
                    let labels = snapshot.get_or_insert_with(|| {
                        let mut pairs = Vec::new();
                        lbs.for_each(|k, v| pairs.push((k.to_string(), v.to_string())));
                        pairs
                    });
                    out.clear();
                    let data = Snapshot {
                        labels,
                        line: &line,
                        ts,
                    };
                    match template.render(&data, &mut out) {
                        Ok(()) => lbs.set(LabelCategory::Parsed, dst, &out),
                        Err(e) => set_error_label(lbs, TEMPLATE_FORMAT_ERR, Some(e.message())),
                    }
                }
            }
        }
        Some(line)
    }
}

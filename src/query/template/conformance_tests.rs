//! Checks the template engine against cases taken from Loki's own tests
//! (`../shared/logql/*.jsonl` beside the checkout, see its README; their licence is not ours,
//! so they are never copied into the repository): the template helpers of `aux.jsonl`, and
//! the `line_format`/`label_format` cases of `pipeline.jsonl`, run by simulating Loki's two
//! stages around the engine. Without the files these tests fail under CI and report a skip
//! elsewhere (see `crate::testing`).

use std::collections::BTreeMap;

use serde_json::Value as Json;

use super::{Template, TemplateData};
use crate::testing::shared_logql_file;

/// A `line_format` or `label_format` stage, read from the case's LogQL text.
#[derive(Debug)]
enum Stage {
    LineFormat(String),
    LabelFormat(Vec<(String, Source)>),
}

#[derive(Debug)]
enum Source {
    Rename(String),
    Template(String),
}

/// Reads `| line_format "..."` or `| label_format a="...", b=c` (LogQL quotes strings as
/// Go does, so the template engine's own unquoting reads them).
fn parse_stage(args: &str) -> Option<Stage> {
    let rest = args.trim().strip_prefix('|')?.trim_start();
    if let Some(q) = rest.strip_prefix("line_format") {
        return super::strconv::unquote(q.trim())
            .ok()
            .map(Stage::LineFormat);
    }
    let mut rest = rest.strip_prefix("label_format")?.trim_start();
    let mut items = Vec::new();
    while !rest.is_empty() {
        let name_end = rest.find(|c: char| !(c.is_alphanumeric() || c == '_'))?;
        let dst = rest[..name_end].to_string();
        rest = rest[name_end..]
            .trim_start()
            .strip_prefix('=')?
            .trim_start();
        let quote = rest.chars().next()?;
        let src = if quote == '"' || quote == '`' {
            // The closing quote: the next unescaped one.
            let b = rest.as_bytes();
            let mut i = 1;
            while i < b.len() && b[i] != quote as u8 {
                i += if b[i] == b'\\' && quote == '"' { 2 } else { 1 };
            }
            let text = super::strconv::unquote(rest.get(..=i)?).ok()?;
            rest = rest.get(i + 1..)?;
            Source::Template(text)
        } else {
            let end = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            let src = rest[..end].to_string();
            rest = &rest[end..];
            Source::Rename(src)
        };
        items.push((dst, src));
        rest = rest.trim_start();
        rest = rest.strip_prefix(',').unwrap_or(rest).trim_start();
    }
    Some(Stage::LabelFormat(items))
}

/// The cases of one shared file, or `None` once the missing-file rule has reported a skip.
fn load(name: &str) -> Option<Vec<Json>> {
    let path = shared_logql_file(name)?;
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{} is there but unreadable: {e}", path.display()));
    Some(
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).expect("conformance file holds JSON lines"))
            .collect(),
    )
}

struct Line {
    labels: BTreeMap<String, String>,
    line: String,
    ts: i64,
}

impl TemplateData for Line {
    fn label(&self, name: &str) -> Option<&str> {
        self.labels.get(name).map(String::as_str)
    }
    fn for_each_label(&self, f: &mut dyn FnMut(&str, &str)) {
        for (k, v) in &self.labels {
            f(k, v);
        }
    }
    fn line(&self) -> &str {
        &self.line
    }
    fn timestamp_ns(&self) -> i64 {
        self.ts
    }
}

/// A template-function case as a template: `{{ func arg1 arg2 }}` with Go literals.
fn call_text(func: &str, args: &[Json]) -> String {
    let mut t = format!("{{{{ {func}");
    for a in args {
        t.push(' ');
        match a {
            Json::String(s) => t.push_str(&super::gofmt::quote(s)),
            other => t.push_str(&other.to_string()),
        }
    }
    t.push_str(" }}");
    t
}

#[test]
fn template_helpers_agree_with_loki() {
    let Some(cases) = load("aux.jsonl") else {
        return;
    };
    let mut passed = 0;
    let mut failures = Vec::new();
    for case in cases.iter().filter(|c| c["kind"] == "template_func") {
        let id = case["id"].as_str().unwrap_or("?");
        let text = call_text(
            case["func"].as_str().unwrap_or(""),
            case["args"].as_array().map(Vec::as_slice).unwrap_or(&[]),
        );
        let want = case["want"].as_str().unwrap_or("");
        let data = Line {
            labels: BTreeMap::new(),
            line: String::new(),
            ts: 0,
        };
        let mut out = String::new();
        let got = Template::parse(&text)
            .and_then(|t| t.render(&data, &mut out))
            .map(|()| out);
        match got {
            Ok(got) if got == want => passed += 1,
            other => failures.push(format!("{id}: {text} -> {other:?}, want {want:?}")),
        }
    }
    eprintln!(
        "template_func cases: {passed} passed, {} failed",
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Loki's `LineFormatter.Process` and `LabelsFormatter.Process` around the engine.
fn run_stage(stage: &Stage, line: &mut Line) {
    let set_error = |labels: &mut BTreeMap<String, String>, msg: &str| {
        labels.insert("__error__".into(), "TemplateFormatErr".into());
        labels.insert("__error_details__".into(), msg.to_string());
    };
    match stage {
        Stage::LineFormat(text) => {
            let t = Template::parse_named("line", text).expect("line template parses");
            let mut out = String::new();
            match t.render(line, &mut out) {
                Ok(()) => line.line = out,
                Err(e) => set_error(&mut line.labels, e.message()),
            }
        }
        Stage::LabelFormat(items) => {
            // Loki renders every template against one snapshot of the labels, taken at the
            // first template (after the renames before it).
            let mut snapshot: Option<Line> = None;
            for (dst, src) in items {
                match src {
                    Source::Rename(src) => {
                        if let Some(v) = line.labels.get(src).cloned() {
                            line.labels.insert(dst.clone(), v);
                            line.labels.remove(src);
                        }
                    }
                    Source::Template(text) => {
                        let t = Template::parse_named("label", text).expect("label template");
                        let data = snapshot.get_or_insert_with(|| Line {
                            labels: line.labels.clone(),
                            line: line.line.clone(),
                            ts: line.ts,
                        });
                        let mut out = String::new();
                        match t.render(data, &mut out) {
                            Ok(()) => {
                                line.labels.insert(dst.clone(), out);
                            }
                            Err(e) => set_error(&mut line.labels, e.message()),
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn format_stages_agree_with_loki() {
    let Some(cases) = load("pipeline.jsonl") else {
        return;
    };
    let (mut passed, mut skipped) = (0, 0);
    let mut failures = Vec::new();
    for case in &cases {
        let stage_name = case["stage"].as_str().unwrap_or("");
        if stage_name != "line_format" && stage_name != "label_format" {
            continue;
        }
        let id = case["id"].as_str().unwrap_or("?");
        let args = case["args"].as_str().unwrap_or("");
        if case.get("construct").is_some() {
            // Refusals when the stage is built (duplicate or `__error__` targets) belong to
            // the stage, not to the template engine.
            skipped += 1;
            continue;
        }
        let Some(stage) = parse_stage(args) else {
            failures.push(format!("{id}: cannot read the stage {args}"));
            continue;
        };
        let mut line = Line {
            labels: serde_json::from_value(case["labels_in"].clone()).unwrap_or_default(),
            line: case["line"].as_str().unwrap_or("").to_string(),
            ts: case["ts"].as_i64().unwrap_or(0),
        };
        run_stage(&stage, &mut line);
        let checked: Vec<&str> = case["checked"]
            .as_array()
            .map(|a| a.iter().filter_map(Json::as_str).collect())
            .unwrap_or_default();
        let mut ok = true;
        if checked.contains(&"line_out") && case["line_out"].as_str() != Some(&line.line) {
            ok = false;
        }
        let want_labels: BTreeMap<String, String> =
            serde_json::from_value(case["labels_out"].clone()).unwrap_or_default();
        if checked.contains(&"labels_out") && want_labels != line.labels {
            ok = false;
        }
        if ok {
            passed += 1;
        } else {
            failures.push(format!(
                "{id}: {args}\n  got line {:?} labels {:?}\n  want line {} labels {}",
                line.line, line.labels, case["line_out"], case["labels_out"]
            ));
        }
    }
    eprintln!(
        "line_format/label_format cases: {passed} passed, {} failed, {skipped} skipped",
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

//! Checks the pipeline against cases taken from Loki's own tests (`../shared/logql`, see its
//! README; their licence is not ours, so they are never copied into the repository). Without
//! them these tests fail under CI and report a skip elsewhere (see `crate::testing`).
//!
//! Each case's `args` (the stage as LogQL text) is parsed by `crate::logql::parse_expr` after
//! a selector, compiled and run on the case's line, stream labels and structured metadata;
//! what the case's `checked` names is compared. A stage the parser already refuses counts as
//! refused at construction, as Loki's error would be (the parser's message must hold Loki's
//! where the case asks for it exactly). `line_format` and `label_format` cases run the
//! template engine.

use std::collections::BTreeMap;

use serde_json::Value;

use super::json_path::{PathElement, parse_json_path};
use super::keys::sanitize_label_key;
use super::logfmt::parse_logfmt_path;
use super::{LabelsBuilder, Pipeline};
use crate::logql::{
    Expr, ExtractParam, ParserStage, PatternNode, Stage, parse_expr, pattern_nodes,
};
use crate::model::Labels;
use crate::testing::shared_logql_file;

/// The cases of one shared file, or `None` once the missing-file rule has reported a skip.
fn load(name: &str) -> Option<Vec<Value>> {
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

/// The stages of a case: its `args` parsed by the LogQL parser after a selector, the line
/// filters that follow the selector directly put first (as the query path runs them). A case
/// whose `args` Loki's grammar refuses on purpose (`args_caveat`: the Go test builds the
/// stage directly) is built from its `params` instead.
fn stages_of(case: &Value) -> Result<Vec<Stage>, String> {
    let args = case["args"].as_str().unwrap_or_default();
    if case.get("args_caveat").is_some() {
        let params = case["params"]["expressions"]
            .as_array()
            .ok_or("an args_caveat case without params")?;
        let params = params
            .iter()
            .map(|p| ExtractParam {
                label: p[0].as_str().unwrap_or_default().to_string(),
                expr: p[1].as_str().map(str::to_string),
            })
            .collect();
        return match case["stage"].as_str() {
            Some("json") => Ok(vec![Stage::Parser(ParserStage::Json(params))]),
            other => Err(format!("no builder for an args_caveat {other:?} case")),
        };
    }
    match parse_expr(&format!("{{x=\"y\"}} {args}")).map_err(|e| e.to_string())? {
        Expr::Log(log) => Ok(log
            .selector
            .filters
            .into_iter()
            .map(Stage::LineFilter)
            .chain(log.stages)
            .collect()),
        Expr::Sample(_) => Err("a metric query".into()),
    }
}

fn str_pairs(v: &Value) -> Vec<(String, String)> {
    v.as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// Runs one case whose pipeline compiles; the failures found.
fn check_run(case: &Value, pipeline: &Pipeline, checked: &[&str]) -> Vec<String> {
    let stream = Labels::from_pairs(str_pairs(&case["labels_in"]));
    let metadata = str_pairs(&case["structured_metadata"]);
    let mut lbs = LabelsBuilder::new(&stream);
    lbs.reset(metadata.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    if let Some(e) = case["error_in"].as_str() {
        lbs.set_error(e);
    }
    if let Some(d) = case["error_details_in"].as_str() {
        lbs.set_error_details(d);
    }
    let line = case["line"].as_str().unwrap_or_default();
    let ts = case["ts"].as_i64().unwrap_or(0);
    let out = pipeline.run(ts, line, &mut lbs).map(|l| l.into_owned());
    // Empty values count as absent on both sides (see `labels_out` below).
    let mut got = BTreeMap::new();
    lbs.for_each(|k, v| {
        if !v.is_empty() {
            got.insert(k.to_string(), v.to_string());
        }
    });
    let mut failures = Vec::new();
    for check in checked {
        match *check {
            "matches" => {
                let want = !case["line_out"].is_null();
                if out.is_some() != want {
                    failures.push(format!("kept {}, want {want}", out.is_some()));
                }
            }
            "line_out" => {
                let want = case["line_out"].as_str();
                if out.as_deref() != want {
                    failures.push(format!("line {out:?}, want {want:?}"));
                }
            }
            "labels_out" if case["labels_out"].is_null() => {
                if out.is_some() {
                    failures.push("kept, want filtered out".into());
                }
            }
            "labels_out" => {
                // An empty value is an absent label, as in every label set Loki answers with
                // (`LabelsBuilder::labels` leaves them out).
                let want: BTreeMap<_, _> = str_pairs(&case["labels_out"])
                    .into_iter()
                    .filter(|(_, v)| !v.is_empty())
                    .collect();
                if out.is_none() {
                    failures.push("filtered out".into());
                } else if got != want {
                    failures.push(format!("labels {got:?}, want {want:?}"));
                }
            }
            "labels_out_subset" => {
                for (k, v) in str_pairs(&case["labels_out_subset"]) {
                    if got.get(&k) != Some(&v) {
                        failures.push(format!("{k}: {:?}, want {v:?}", got.get(&k)));
                    }
                }
            }
            "no_error" => {
                if lbs.has_error() {
                    failures.push(format!("error {:?}", lbs.error()));
                }
            }
            other => failures.push(format!("unknown check {other}")),
        }
    }
    failures
}

/// Construction errors the parser reports before the stage is built, in other words than
/// the stage's (which has Loki's, see the stage's tests).
const PARSER_MESSAGES: [(&str, &str); 1] = [(
    "pipe-0383",
    "`| pattern \"\"`: the parser says \"at least one capture is required\", Loki's \
     pattern parser a syntax error at the end of input",
)];

#[test]
fn pipeline_cases_agree_with_loki() {
    let Some(cases) = load("pipeline.jsonl") else {
        return;
    };
    let mut passed = 0;
    let (mut failures, mut parser_worded) = (Vec::new(), Vec::new());
    for case in &cases {
        let id = case["id"].as_str().unwrap();
        let args = case["args"].as_str().unwrap();
        let checked: Vec<&str> = case["checked"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let stages = stages_of(case);
        let compiled = stages.and_then(|stages| Pipeline::new(&stages).map_err(|e| e.to_string()));
        if checked == ["construct"] {
            let want_ok = case["construct"] == "ok";
            let exact = case["error_match"] == "exact";
            let want_err = case["stage_error"].as_str().unwrap_or_default();
            match &compiled {
                Ok(_) if want_ok => passed += 1,
                Err(e) if !want_ok && (!exact || e.contains(want_err)) => passed += 1,
                Err(e) if PARSER_MESSAGES.iter().any(|(c, _)| *c == id) => {
                    parser_worded.push(format!("{id}: {e}"));
                }
                other => failures.push(format!(
                    "{id} {args}: construct {:?}, want {}{}",
                    other.as_ref().err(),
                    if want_ok { "ok" } else { "error " },
                    want_err
                )),
            }
            continue;
        }
        let pipeline = match compiled {
            Ok(p) => p,
            Err(e) => {
                failures.push(format!("{id} {args}: refused: {e}"));
                continue;
            }
        };
        let case_failures = check_run(case, &pipeline, &checked);
        if case_failures.is_empty() {
            passed += 1;
        } else {
            failures.push(format!(
                "{id} {args} on {:?}: {}",
                case["line"],
                case_failures.join("; ")
            ));
        }
    }
    eprintln!(
        "pipeline.jsonl: {passed} passed, {} refused by the parser in its own words ({}), {} \
         failed",
        parser_worded.len(),
        parser_worded.join("; "),
        failures.len()
    );
    assert!(failures.is_empty(), "{failures:#?}");
    // Guard against a silently shrinking check.
    assert!(passed >= 320, "only {passed} cases passed");
}

#[test]
fn aux_cases_agree_with_loki() {
    let Some(cases) = load("aux.jsonl") else {
        return;
    };
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    for case in &cases {
        let id = case["id"].as_str().unwrap();
        let kind = case["kind"].as_str().unwrap();
        let ok = match kind {
            "json_path" | "logfmt_path" => {
                let expr = case["expression"].as_str().unwrap();
                let got: Result<Vec<Value>, String> = if kind == "json_path" {
                    parse_json_path(expr).map(|p| {
                        p.into_iter()
                            .map(|e| match e {
                                PathElement::Key(k) => Value::from(k),
                                PathElement::Index(i) => Value::from(i),
                            })
                            .collect()
                    })
                } else {
                    parse_logfmt_path(expr).map(|p| p.into_iter().map(Value::from).collect())
                };
                match (&got, case["path"].as_array(), case["error"].as_str()) {
                    (Ok(path), Some(want), _) => path == want,
                    (Err(e), None, Some(want)) => e == want,
                    (Err(_), None, None) => true,
                    _ => false,
                }
                .then_some(())
                .ok_or(format!("{got:?}"))
            }
            "sanitize_label_key" => {
                let mut out = String::new();
                sanitize_label_key(case["input"].as_str().unwrap(), true, &mut out);
                (out == case["want"].as_str().unwrap())
                    .then_some(())
                    .ok_or(out)
            }
            "pattern_ast" => {
                let nodes: Vec<Value> = pattern_nodes(case["pattern"].as_str().unwrap())
                    .into_iter()
                    .map(|n| match n {
                        PatternNode::Capture(c) => serde_json::json!(["capture", c]),
                        PatternNode::Literal(l) => {
                            serde_json::json!(["literal", String::from_utf8_lossy(&l)])
                        }
                    })
                    .collect();
                (Value::from(nodes.clone()) == case["nodes"])
                    .then_some(())
                    .ok_or(format!("{nodes:?}"))
            }
            _ => continue,
        };
        match ok {
            Ok(()) => *counts.entry(kind).or_default() += 1,
            Err(got) => failures.push(format!("{id} {kind}: got {got}")),
        }
    }
    eprintln!("aux.jsonl: passed {counts:?}, {} failed", failures.len());
    assert!(failures.is_empty(), "{failures:#?}");
    assert!(counts.values().sum::<usize>() >= 35, "only {counts:?}");
}

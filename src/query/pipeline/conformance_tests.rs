//! Checks the pipeline against cases taken from Loki's own tests (`../shared/logql`, see its
//! README; their licence is not ours, so they are never copied into the repository). Without
//! them these tests fail under CI and report a skip elsewhere (see `crate::testing`).
//!
//! Each case's `args` (the stage as LogQL text) is turned into syntax-tree stages by a small
//! translator below, then compiled and run on the case's line, stream labels and structured
//! metadata; what the case's `checked` names is compared. Cases that need the template
//! engine (`line_format`, template items of `label_format`) are counted apart as waiting for
//! it, never as passed.

use std::collections::BTreeMap;

use serde_json::Value;

use super::json_path::{PathElement, parse_json_path};
use super::keys::sanitize_label_key;
use super::label_filter::parse_humanized_bytes;
use super::logfmt::parse_logfmt_path;
use super::{LabelsBuilder, Pipeline};
use crate::logql::pattern::{Node, parse_nodes};
use crate::logql::{
    CmpOp, ExtractParam, FilterOperand, LabelFilterExpr, LabelFormatItem, LabelFormatSource,
    LabelMatcher, LabelSpec, LineFilter, LineFilterOp, MatchOp, ParserStage, Stage, duration,
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

/// A reader of stage text: just enough LogQL for the cases' `args`.
struct Reader<'a> {
    text: &'a str,
    pos: usize,
}

type R<T> = Result<T, String>;

impl<'a> Reader<'a> {
    fn rest(&self) -> &'a str {
        &self.text[self.pos..]
    }

    fn skip_space(&mut self) {
        let trimmed = self.rest().trim_start();
        self.pos = self.text.len() - trimmed.len();
    }

    fn at_end(&mut self) -> bool {
        self.skip_space();
        self.rest().is_empty()
    }

    fn peek(&mut self, lit: &str) -> bool {
        self.skip_space();
        self.rest().starts_with(lit)
    }

    fn eat(&mut self, lit: &str) -> bool {
        if self.peek(lit) {
            self.pos += lit.len();
            true
        } else {
            false
        }
    }

    /// Whether a keyword comes next: the word, then something that cannot continue an
    /// identifier.
    fn peek_word(&mut self, word: &str) -> bool {
        self.skip_space();
        let rest = self.rest();
        let follows = rest.get(word.len()..).and_then(|r| r.chars().next());
        rest.starts_with(word) && !follows.is_some_and(|c| c.is_alphanumeric() || c == '_')
    }

    fn eat_word(&mut self, word: &str) -> bool {
        let found = self.peek_word(word);
        if found {
            self.pos += word.len();
        }
        found
    }

    fn ident(&mut self) -> R<String> {
        self.skip_space();
        let len = self
            .rest()
            .char_indices()
            .take_while(|&(i, c)| {
                c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit())
            })
            .count();
        if len == 0 {
            return Err(format!("an identifier expected at {:?}", self.rest()));
        }
        let id = self.rest()[..len].to_string();
        self.pos += len;
        Ok(id)
    }

    fn peek_ident(&mut self) -> Option<String> {
        let save = self.pos;
        let id = self.ident().ok();
        self.pos = save;
        id
    }

    /// A Go string literal: "..." with escapes, or `...` raw.
    fn string(&mut self) -> R<String> {
        self.skip_space();
        let mut chars = self.rest().char_indices();
        match chars.next() {
            Some((_, '`')) => {
                let end = self.rest()[1..]
                    .find('`')
                    .ok_or("unterminated raw string")?;
                let s = self.rest()[1..1 + end].to_string();
                self.pos += end + 2;
                Ok(s)
            }
            Some((_, '"')) => {
                let mut out = String::new();
                let mut chars = self.rest()[1..].char_indices().peekable();
                while let Some((i, c)) = chars.next() {
                    match c {
                        '"' => {
                            self.pos += i + 2;
                            return Ok(out);
                        }
                        '\\' => {
                            let (_, e) = chars.next().ok_or("escape at the end")?;
                            let mut hex = |n: usize| -> R<char> {
                                let digits: String = (0..n)
                                    .filter_map(|_| chars.next().map(|(_, c)| c))
                                    .collect();
                                u32::from_str_radix(&digits, 16)
                                    .ok()
                                    .and_then(char::from_u32)
                                    .ok_or_else(|| format!("bad escape {digits:?}"))
                            };
                            out.push(match e {
                                'a' => '\x07',
                                'b' => '\x08',
                                'f' => '\x0c',
                                'n' => '\n',
                                'r' => '\r',
                                't' => '\t',
                                'v' => '\x0b',
                                'x' => hex(2)?,
                                'u' => hex(4)?,
                                'U' => hex(8)?,
                                c => c,
                            });
                        }
                        c => out.push(c),
                    }
                }
                Err("unterminated string".into())
            }
            _ => Err(format!("a string expected at {:?}", self.rest())),
        }
    }

    /// A bare literal: a number, a duration or a byte size.
    fn literal(&mut self) -> String {
        self.skip_space();
        let len: usize = self
            .rest()
            .chars()
            .take_while(|c| c.is_alphanumeric() || matches!(c, '.' | '-' | '+'))
            .map(char::len_utf8)
            .sum();
        let lit = self.rest()[..len].to_string();
        self.pos += len;
        lit
    }
}

fn line_filter_op(r: &mut Reader<'_>) -> Option<LineFilterOp> {
    for (text, op) in [
        ("|=", LineFilterOp::Contains),
        ("!=", LineFilterOp::NotContains),
        ("|~", LineFilterOp::Regex),
        ("!~", LineFilterOp::NotRegex),
        ("|>", LineFilterOp::Pattern),
        ("!>", LineFilterOp::NotPattern),
    ] {
        if r.eat(text) {
            return Some(op);
        }
    }
    None
}

fn filter_operand(r: &mut Reader<'_>) -> R<FilterOperand> {
    if r.eat_word("ip") {
        if !r.eat("(") {
            return Err("ip( expected".into());
        }
        let s = r.string()?;
        if !r.eat(")") {
            return Err(") expected".into());
        }
        Ok(FilterOperand::Ip(s))
    } else {
        Ok(FilterOperand::Literal(r.string()?))
    }
}

/// Turns the `args` of a case into stages, compiling line filters as the parser does (a
/// negative filter with `or` becomes one filter per operand).
fn translate(args: &str) -> R<Vec<Stage>> {
    let mut r = Reader { text: args, pos: 0 };
    let mut stages = Vec::new();
    while !r.at_end() {
        if let Some(op) = line_filter_op(&mut r) {
            let mut operands = vec![filter_operand(&mut r)?];
            while r.eat_word("or") {
                operands.push(filter_operand(&mut r)?);
            }
            if op.is_negative() {
                for operand in operands {
                    stages.push(Stage::LineFilter(LineFilter::new(op, vec![operand])?));
                }
            } else {
                stages.push(Stage::LineFilter(LineFilter::new(op, operands)?));
            }
            continue;
        }
        if !r.eat("|") {
            return Err(format!("a stage expected at {:?}", r.rest()));
        }
        let stage = match r.peek_ident().as_deref() {
            Some("json") => {
                r.ident()?;
                Stage::Parser(ParserStage::Json(extract_params(&mut r)?))
            }
            Some("logfmt") => {
                r.ident()?;
                let (mut strict, mut keep_empty) = (false, false);
                loop {
                    if r.eat("--strict") {
                        strict = true;
                    } else if r.eat("--keep-empty") {
                        keep_empty = true;
                    } else {
                        break;
                    }
                }
                Stage::Parser(ParserStage::Logfmt {
                    strict,
                    keep_empty,
                    params: extract_params(&mut r)?,
                })
            }
            Some("regexp") => {
                r.ident()?;
                Stage::Parser(ParserStage::Regexp(r.string()?))
            }
            Some("pattern") => {
                r.ident()?;
                Stage::Parser(ParserStage::Pattern(r.string()?))
            }
            Some("unpack") => {
                r.ident()?;
                Stage::Parser(ParserStage::Unpack)
            }
            Some("decolorize") => {
                r.ident()?;
                Stage::Decolorize
            }
            Some("line_format") => {
                r.ident()?;
                Stage::LineFormat(r.string()?)
            }
            Some("label_format") => {
                r.ident()?;
                let mut items = Vec::new();
                loop {
                    let dst = r.ident()?;
                    if !r.eat("=") {
                        return Err("= expected".into());
                    }
                    let src = if r.peek("\"") || r.peek("`") {
                        LabelFormatSource::Template(r.string()?)
                    } else {
                        LabelFormatSource::Rename(r.ident()?)
                    };
                    items.push(LabelFormatItem { dst, src });
                    if !r.eat(",") {
                        break;
                    }
                }
                Stage::LabelFormat(items)
            }
            Some(word @ ("drop" | "keep")) => {
                let keep = word == "keep";
                r.ident()?;
                let mut specs = Vec::new();
                loop {
                    let name = r.ident()?;
                    specs.push(match match_op(&mut r) {
                        Some(op) => LabelSpec::Matcher(LabelMatcher::new(&name, op, &r.string()?)?),
                        None => LabelSpec::Name(name),
                    });
                    if !r.eat(",") {
                        break;
                    }
                }
                if keep {
                    Stage::Keep(specs)
                } else {
                    Stage::Drop(specs)
                }
            }
            _ => Stage::LabelFilter(label_filter_or(&mut r)?),
        };
        stages.push(stage);
    }
    Ok(stages)
}

fn extract_params(r: &mut Reader<'_>) -> R<Vec<ExtractParam>> {
    let mut params = Vec::new();
    if r.peek("|") || r.peek("!") || r.at_end() {
        return Ok(params);
    }
    loop {
        let label = r.ident()?;
        let expr = if r.eat("=") { Some(r.string()?) } else { None };
        params.push(ExtractParam { label, expr });
        if !r.eat(",") {
            return Ok(params);
        }
    }
}

fn match_op(r: &mut Reader<'_>) -> Option<MatchOp> {
    for (text, op) in [
        ("=~", MatchOp::Re),
        ("!~", MatchOp::Nre),
        ("!=", MatchOp::Neq),
        ("=", MatchOp::Eq),
    ] {
        if r.eat(text) {
            return Some(op);
        }
    }
    None
}

fn label_filter_or(r: &mut Reader<'_>) -> R<LabelFilterExpr> {
    let mut left = label_filter_and(r)?;
    while r.eat_word("or") {
        left = LabelFilterExpr::Or(Box::new(left), Box::new(label_filter_and(r)?));
    }
    Ok(left)
}

fn label_filter_and(r: &mut Reader<'_>) -> R<LabelFilterExpr> {
    let mut left = label_filter_primary(r)?;
    loop {
        // `and`, a comma, or nothing at all between two comparisons.
        let joined = r.eat_word("and") || r.eat(",");
        if !joined && (r.at_end() || r.peek("|") || r.peek(")") || r.peek_word("or")) {
            return Ok(left);
        }
        left = LabelFilterExpr::And(Box::new(left), Box::new(label_filter_primary(r)?));
    }
}

fn label_filter_primary(r: &mut Reader<'_>) -> R<LabelFilterExpr> {
    if r.eat("(") {
        let inner = label_filter_or(r)?;
        if !r.eat(")") {
            return Err(") expected".into());
        }
        return Ok(inner);
    }
    let name = r.ident()?;
    let ops = [
        ("==", CmpOp::Eq),
        ("!=", CmpOp::Ne),
        ("=~", CmpOp::Eq),
        ("!~", CmpOp::Ne),
        (">=", CmpOp::Ge),
        ("<=", CmpOp::Le),
        (">", CmpOp::Gt),
        ("<", CmpOp::Lt),
        ("=", CmpOp::Eq),
    ];
    let (text, op) = ops
        .into_iter()
        .find(|(text, _)| r.eat(text))
        .ok_or_else(|| format!("a comparison expected after {name}"))?;
    if r.peek("\"") || r.peek("`") {
        let value = r.string()?;
        let op = match text {
            "=" | "==" => MatchOp::Eq,
            "!=" => MatchOp::Neq,
            "=~" => MatchOp::Re,
            "!~" => MatchOp::Nre,
            _ => return Err(format!("{text} with a string")),
        };
        return Ok(LabelFilterExpr::String(LabelMatcher::new(
            &name, op, &value,
        )?));
    }
    if r.eat_word("ip") {
        r.eat("(");
        let pattern = r.string()?;
        r.eat(")");
        return Ok(LabelFilterExpr::Ip {
            name,
            negated: op == CmpOp::Ne,
            pattern,
        });
    }
    let lit = r.literal();
    if let Ok(value) = lit.parse::<f64>()
        && lit
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e'))
    {
        return Ok(LabelFilterExpr::Number { name, op, value });
    }
    if let Ok(value_ns) = duration::parse_logql_duration(&lit) {
        return Ok(LabelFilterExpr::Duration { name, op, value_ns });
    }
    if let Ok(value) = parse_humanized_bytes(&lit) {
        return Ok(LabelFilterExpr::Bytes { name, op, value });
    }
    Err(format!("cannot read literal {lit:?}"))
}

/// Whether the stages need the template engine.
fn uses_templates(stages: &[Stage]) -> bool {
    stages.iter().any(|s| match s {
        Stage::LineFormat(_) => true,
        Stage::LabelFormat(items) => items
            .iter()
            .any(|i| matches!(i.src, LabelFormatSource::Template(_))),
        _ => false,
    })
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
    let mut got = BTreeMap::new();
    lbs.for_each(|k, v| {
        got.insert(k.to_string(), v.to_string());
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
                let want: BTreeMap<_, _> = str_pairs(&case["labels_out"]).into_iter().collect();
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

#[test]
fn pipeline_cases_agree_with_loki() {
    let Some(cases) = load("pipeline.jsonl") else {
        return;
    };
    let (mut passed, mut waiting) = (0, Vec::new());
    let mut failures = Vec::new();
    for case in &cases {
        let id = case["id"].as_str().unwrap();
        let args = case["args"].as_str().unwrap();
        let checked: Vec<&str> = case["checked"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let translated = translate(args);
        if translated.as_deref().is_ok_and(uses_templates) {
            waiting.push(id);
            continue;
        }
        let compiled =
            translated.and_then(|stages| Pipeline::new(&stages).map_err(|e| e.to_string()));
        if checked == ["construct"] {
            let want_ok = case["construct"] == "ok";
            let exact = case["error_match"] == "exact";
            let want_err = case["stage_error"].as_str().unwrap_or_default();
            match &compiled {
                Ok(_) if want_ok => passed += 1,
                Err(e) if !want_ok && (!exact || e == want_err) => passed += 1,
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
        "pipeline.jsonl: {passed} passed, {} waiting for templates ({}), {} failed",
        waiting.len(),
        waiting.join(" "),
        failures.len()
    );
    assert!(failures.is_empty(), "{failures:#?}");
    // Guard against a silently shrinking check.
    assert!(passed >= 250, "only {passed} cases passed");
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
                let nodes: Vec<Value> = parse_nodes(case["pattern"].as_str().unwrap().as_bytes())
                    .into_iter()
                    .map(|n| match n {
                        Node::Capture(c) => serde_json::json!(["capture", c]),
                        Node::Literal(l) => {
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

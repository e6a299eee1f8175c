//! Checks the parser, the printer, the lexer and the line filters against cases taken from
//! Loki's own tests (`../shared/logql/*.jsonl` beside the checkout, see its README; their
//! licence is not ours, so they are never copied into the repository). Without them these
//! tests fail under CI and report a skip elsewhere (see `crate::testing`).
//!
//! Every case of `parse.jsonl` runs through the entry point its `api` names and must get
//! Loki's verdict, Loki's printed form where the case gives it, and the same tree again when
//! its printed form is parsed (`roundtrip`). Deliberate differences are listed, with their
//! reason, in [`KNOWN_DEVIATIONS`].

use serde_json::Value;

use super::lexer::{Kw, Tok, is_function_call, lex_prefix};
use super::{
    Expr, ParseError, parse_expr, parse_labels, parse_log_selector, parse_matchers,
    parse_sample_expr, pattern_nodes,
};
use crate::logql::PatternNode;
use crate::testing::shared_logql_file;

const PARSE_CASES: &str = "parse.jsonl";
const PIPELINE_CASES: &str = "pipeline.jsonl";
const AUX_CASES: &str = "aux.jsonl";

/// Cases where this implementation deliberately differs from Loki, and why.
/// Both are line filters, which this parser compiles while Loki compiles them when it builds
/// the pipeline: Loki's `ParseExpr` accepts them and the query then fails at execution. The
/// user gets a 400 either way.
const KNOWN_DEVIATIONS: [(&str, &str); 2] = [
    (
        "parse-0001",
        "`|~ `error\\``: an invalid regex (a trailing backslash) in a line filter is refused at \
         parse time; Loki refuses it when it builds the pipeline",
    ),
    (
        "parse-0412",
        "`!~ ip(...)`: refused at parse time; Loki refuses it when it builds the pipeline \
         (`ip: invalid operation`)",
    ),
];

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

/// What an entry point returned, reduced to what the cases check.
enum Parsed {
    /// A query: its tree (to compare roundtrips) and its printed form.
    Expr(Expr),
    Matchers,
    Labels(Vec<(String, String)>),
}

fn run_api(api: &str, query: &str) -> Result<Parsed, ParseError> {
    Ok(match api {
        "ParseExpr" => Parsed::Expr(parse_expr(query)?),
        "ParseSampleExpr" => Parsed::Expr(Expr::Sample(parse_sample_expr(query)?)),
        "ParseLogSelector(validate=true)" => {
            Parsed::Expr(Expr::Log(parse_log_selector(query, true)?))
        }
        "ParseLogSelector(validate=false)" => {
            Parsed::Expr(Expr::Log(parse_log_selector(query, false)?))
        }
        "ParseMatchers(validate=true)" => {
            parse_matchers(query, true)?;
            Parsed::Matchers
        }
        "ParseLabels" => Parsed::Labels(parse_labels(query)?),
        other => panic!("parse.jsonl names an entry point this test does not know: {other}"),
    })
}

/// Checks one case; `Err` says how it differs from Loki.
fn check_parse_case(case: &Value) -> Result<(), String> {
    let query = case["query"].as_str().unwrap_or_default();
    let api = case["api"].as_str().unwrap_or_default();
    let valid = case["valid"].as_bool().unwrap_or_default();
    let result = run_api(api, query);
    let parsed = match (result, valid) {
        (Err(_), false) => return Ok(()),
        (Ok(_), false) => return Err(format!("{query:?}: Loki refuses it, {api} accepted it")),
        (Err(e), true) => return Err(format!("{query:?}: Loki accepts it, {api} said {e}")),
        (Ok(parsed), true) => parsed,
    };
    match parsed {
        Parsed::Expr(expr) => {
            let printed = expr.to_string();
            if let Some(want) = case["canonical"].as_str().filter(|c| !c.is_empty())
                && want != printed
            {
                return Err(format!("printed {printed:?}, Loki {want:?}"));
            }
            if case["roundtrip"].as_bool() == Some(true) {
                match run_api(api, &printed) {
                    Ok(Parsed::Expr(again)) if again == expr => {}
                    Ok(Parsed::Expr(again)) => {
                        return Err(format!("{printed:?} parses back as {again}"));
                    }
                    other => {
                        return Err(format!(
                            "{printed:?} does not parse back: {:?}",
                            other.err()
                        ));
                    }
                }
            }
        }
        Parsed::Labels(labels) => {
            let want: Vec<(String, String)> = case["labels"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                        .collect()
                })
                .unwrap_or_default();
            if labels != want {
                return Err(format!("labels {labels:?}, Loki {want:?}"));
            }
        }
        Parsed::Matchers => {}
    }
    Ok(())
}

#[test]
fn parse_cases_agree_with_loki() {
    let Some(cases) = load(PARSE_CASES) else {
        return;
    };
    let (mut passed, mut canonical, mut roundtrips, mut deviations) = (0, 0, 0, 0);
    let mut failures = Vec::new();
    for case in &cases {
        let id = case["id"].as_str().unwrap_or_default();
        if KNOWN_DEVIATIONS.iter().any(|(d, _)| *d == id) {
            deviations += 1;
            continue;
        }
        match check_parse_case(case) {
            Ok(()) => {
                passed += 1;
                canonical += usize::from(case["canonical"].as_str().is_some_and(|c| !c.is_empty()));
                roundtrips += usize::from(case["roundtrip"].as_bool() == Some(true));
            }
            Err(why) => failures.push(format!("{id}: {why}")),
        }
    }
    eprintln!(
        "parse.jsonl: {passed} of {} passed ({canonical} with Loki's printed form, {roundtrips} \
         round trips), {deviations} known deviations, {} failed",
        cases.len(),
        failures.len()
    );
    assert!(failures.is_empty(), "{failures:#?}");
    assert_eq!(passed + deviations, cases.len());
}

/// Loki's name of a token (`lex_test.go`).
fn loki_token_name(tok: &Tok) -> String {
    let s = match tok {
        Tok::LBrace => "OPEN_BRACE",
        Tok::RBrace => "CLOSE_BRACE",
        Tok::LParen => "OPEN_PARENTHESIS",
        Tok::RParen => "CLOSE_PARENTHESIS",
        Tok::RBracket => "CLOSE_BRACKET",
        Tok::Comma => "COMMA",
        Tok::Dot => "DOT",
        Tok::Eq => "EQ",
        Tok::Neq => "NEQ",
        Tok::Re => "RE",
        Tok::Nre => "NRE",
        Tok::PipeExact => "PIPE_EXACT",
        Tok::PipeMatch => "PIPE_MATCH",
        Tok::PipePattern => "PIPE_PATTERN",
        Tok::NotPattern => "NPA",
        Tok::Pipe => "PIPE",
        Tok::CmpEq => "CMP_EQ",
        Tok::Gt => "GT",
        Tok::Gte => "GTE",
        Tok::Lt => "LT",
        Tok::Lte => "LTE",
        Tok::Add => "ADD",
        Tok::Sub => "SUB",
        Tok::Mul => "MUL",
        Tok::Div => "DIV",
        Tok::Mod => "MOD",
        Tok::Pow => "POW",
        Tok::Str(_) => "STRING",
        Tok::Ident(_) => "IDENTIFIER",
        Tok::Number(_) => "NUMBER",
        Tok::Duration(_) => "DURATION",
        Tok::Bytes(_) => "BYTES",
        Tok::Range(_) => "RANGE",
        Tok::Flag(_) => "FUNCTION_FLAG",
        Tok::Kw(Kw::LabelFormat) => "LABEL_FMT",
        Tok::Kw(Kw::LineFormat) => "LINE_FMT",
        Tok::Kw(kw) => return kw.describe().to_ascii_uppercase(),
        Tok::Eof => "$end",
    };
    s.to_string()
}

#[test]
fn aux_cases_agree_with_loki() {
    let Some(cases) = load(AUX_CASES) else {
        return;
    };
    let (mut passed, mut failures) = (0, Vec::new());
    let mut checked_kinds = std::collections::BTreeMap::new();
    for case in &cases {
        let id = case["id"].as_str().unwrap_or_default();
        let kind = case["kind"].as_str().unwrap_or_default();
        let input = case["input"].as_str().unwrap_or_default();
        let outcome = match kind {
            "lex" => {
                let (tokens, _) = lex_prefix(input);
                let got: Vec<String> = tokens
                    .iter()
                    .filter(|t| t.tok != Tok::Eof)
                    .map(|t| loki_token_name(&t.tok))
                    .collect();
                let want: Vec<&str> = case["tokens"]
                    .as_array()
                    .map(|a| a.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                (got == want)
                    .then_some(())
                    .ok_or(format!("{got:?}, Loki {want:?}"))
            }
            "duration" => {
                let want = case["nanoseconds"].as_i64();
                let got = match lex_prefix(input).0.as_slice() {
                    [t, end] if end.tok == Tok::Eof => match t.tok {
                        Tok::Duration(ns) => Some(ns),
                        _ => None,
                    },
                    _ => None,
                };
                (got == want)
                    .then_some(())
                    .ok_or(format!("{got:?}, Loki {want:?}"))
            }
            "lexer_is_function" => {
                let want = case["want"].as_bool().unwrap_or_default();
                let got = is_function_call(input);
                (got == want)
                    .then_some(())
                    .ok_or(format!("{got}, Loki {want}"))
            }
            "pattern_ast" => {
                let pattern = case["pattern"].as_str().unwrap_or_default();
                let got: Vec<(String, String)> = pattern_nodes(pattern)
                    .into_iter()
                    .map(|n| match n {
                        PatternNode::Literal(b) => (
                            "literal".to_string(),
                            String::from_utf8_lossy(&b).into_owned(),
                        ),
                        PatternNode::Capture(name) => ("capture".to_string(), name),
                    })
                    .collect();
                let want: Vec<(String, String)> = case["nodes"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .map(|n| {
                                (
                                    n[0].as_str().unwrap_or_default().to_string(),
                                    n[1].as_str().unwrap_or_default().to_string(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                (got == want)
                    .then_some(())
                    .ok_or(format!("{got:?}, Loki {want:?}"))
            }
            // Facts of the pipeline stages (JSON paths, templates, ...), checked by the
            // query engine's tests.
            _ => continue,
        };
        *checked_kinds.entry(kind).or_insert(0) += 1;
        match outcome {
            Ok(()) => passed += 1,
            Err(why) => failures.push(format!("{id} ({kind}) {input:?}: {why}")),
        }
    }
    eprintln!(
        "aux.jsonl: {passed} passed of {:?}, {} failed",
        checked_kinds,
        failures.len()
    );
    assert!(failures.is_empty(), "{failures:#?}");
    assert!(passed >= 100, "only {passed} aux cases checked");
}

#[test]
fn line_filter_cases_agree_with_loki() {
    let Some(cases) = load(PIPELINE_CASES) else {
        return;
    };
    let (mut passed, mut failures) = (0, Vec::new());
    for case in cases.iter().filter(|c| c["stage"] == "line_filter") {
        let id = case["id"].as_str().unwrap_or_default();
        let query = format!(
            "{{app=\"x\"}} {}",
            case["args"].as_str().unwrap_or_default()
        );
        let parsed = parse_log_selector(&query, false);
        let checked: Vec<&str> = case["checked"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if checked.contains(&"construct") {
            let want_ok = case["construct"] == "ok";
            if parsed.is_ok() == want_ok {
                passed += 1;
            } else {
                failures.push(format!("{id}: construct {want_ok}, got {parsed:?}"));
            }
            continue;
        }
        let selector = match parsed {
            Ok(log) => log.selector,
            Err(e) => {
                failures.push(format!("{id}: {query:?} refused: {e}"));
                continue;
            }
        };
        let line = case["line"].as_str().unwrap_or_default();
        let want = !case["line_out"].is_null();
        if selector.matches_line(line.as_bytes()) == want {
            passed += 1;
        } else {
            failures.push(format!("{id}: {query:?} on {line:?}: want {want}"));
        }
    }
    eprintln!(
        "pipeline.jsonl line filters: {passed} passed, {} failed",
        failures.len()
    );
    assert!(failures.is_empty(), "{failures:#?}");
    assert!(passed >= 100, "only {passed} line filter cases checked");
}

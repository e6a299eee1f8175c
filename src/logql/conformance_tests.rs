//! Checks the parser and the line filters against cases taken from Loki's own tests
//! (`../shared/logql/*.jsonl` beside the checkout, see its README; their licence is not ours,
//! so they are never copied into the repository). Without them these tests fail under CI and
//! report a skip elsewhere (see `crate::testing`).

use serde_json::Value;

use super::{ParseError, parse_expr, parse_log_selector, parse_matchers};
use crate::testing::shared_logql_file;

const PARSE_CASES: &str = "parse.jsonl";
const PIPELINE_CASES: &str = "pipeline.jsonl";

/// Cases where this implementation refuses at parse time what Loki refuses only when it
/// builds the pipeline. The user sees a 400 error either way.
const KNOWN_DEVIATIONS: [(&str, &str); 1] = [(
    "parse-0412",
    "`!~ ip(...)`: Loki parses it and fails at execution with `ip: invalid operation`",
)];

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

/// Whether a query uses only what this parser evaluates: a selector and line filters, no
/// stage after a bare `|`, no range, no numbers. Such a case must get Loki's exact verdict.
fn in_scope(query: &str) -> bool {
    let Ok(toks) = super::lexer::lex(query) else {
        return true;
    };
    use super::lexer::Tok;
    let first_is_selector = matches!(
        toks.first().map(|t| &t.tok),
        Some(Tok::LBrace | Tok::LParen)
    );
    first_is_selector
        && !toks.iter().any(|t| {
            matches!(
                t.tok,
                Tok::Pipe | Tok::Range(_) | Tok::Number(_) | Tok::Duration(_) | Tok::Bytes(_)
            )
        })
}

#[test]
fn parse_cases_agree_with_loki() {
    let Some(cases) = load(PARSE_CASES) else {
        return;
    };
    let (mut exact, mut unsupported, mut skipped) = (0, 0, 0);
    let mut failures = Vec::new();
    for case in &cases {
        let id = case["id"].as_str().unwrap();
        let query = case["query"].as_str().unwrap();
        let valid = case["valid"].as_bool().unwrap();
        let result: Result<String, ParseError> = match case["api"].as_str().unwrap() {
            "ParseExpr" => parse_expr(query).map(|e| e.to_string()),
            "ParseLogSelector(validate=true)" => {
                parse_log_selector(query, true).map(|s| s.to_string())
            }
            "ParseLogSelector(validate=false)" => {
                parse_log_selector(query, false).map(|s| s.to_string())
            }
            "ParseMatchers(validate=true)" => parse_matchers(query, true).map(|m| format!("{m:?}")),
            _ => {
                skipped += 1;
                continue;
            }
        };
        if KNOWN_DEVIATIONS.iter().any(|(d, _)| *d == id) {
            skipped += 1;
            continue;
        }
        match (&result, valid) {
            (Err(ParseError::Unsupported(_)), _) if !in_scope(query) => unsupported += 1,
            (Ok(printed), true) => {
                let want = case["canonical"].as_str().filter(|c| !c.is_empty());
                match want {
                    Some(want) if want != printed => {
                        failures.push(format!("{id}: printed {printed:?}, Loki {want:?}"))
                    }
                    _ => exact += 1,
                }
            }
            (Err(e), false) if !matches!(e, ParseError::Unsupported(_)) => exact += 1,
            (r, _) => failures.push(format!("{id}: {query:?}: Loki valid={valid}, got {r:?}")),
        }
    }
    eprintln!(
        "parse.jsonl: {exact} exact, {unsupported} unsupported (allowed), {skipped} skipped \
         (other entry points or known deviations), {} failed",
        failures.len()
    );
    assert!(failures.is_empty(), "{failures:#?}");
    // Guard against a silently shrinking check: most of the log-query cases are in scope.
    assert!(exact >= 100, "only {exact} exact verdicts");
}

#[test]
fn line_filter_cases_agree_with_loki() {
    let Some(cases) = load(PIPELINE_CASES) else {
        return;
    };
    let (mut passed, mut failures) = (0, Vec::new());
    for case in cases.iter().filter(|c| c["stage"] == "line_filter") {
        let id = case["id"].as_str().unwrap();
        let query = format!("{{app=\"x\"}} {}", case["args"].as_str().unwrap());
        let parsed = parse_log_selector(&query, false);
        let checked: Vec<&str> = case["checked"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
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
            Ok(s) => s,
            Err(e) => {
                failures.push(format!("{id}: {query:?} refused: {e}"));
                continue;
            }
        };
        let line = case["line"].as_str().unwrap();
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

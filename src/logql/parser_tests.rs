//! Unit tests of the parser: Loki's verdicts and printed forms on hand-picked queries, the
//! limits, and the never-panics properties. The bulk of Loki's own cases runs in
//! `conformance_tests.rs`.

use super::*;
use crate::logql::{
    LINE_FILTERS_MAX, NESTING_DEPTH_MAX, PIPELINE_STAGES_MAX, ParseError, QUERY_BYTES_MAX,
};

fn canonical(q: &str) -> String {
    parse_expr(q)
        .unwrap_or_else(|e| panic!("{q}: {e}"))
        .to_string()
}

/// Parses, prints, parses the print again: the two trees must be equal.
fn roundtrip(q: &str) {
    let first = parse_expr(q).unwrap_or_else(|e| panic!("{q}: {e}"));
    let printed = first.to_string();
    let second = parse_expr(&printed).unwrap_or_else(|e| panic!("{printed}: {e}"));
    assert_eq!(first, second, "{q} printed as {printed}");
}

#[test]
fn selectors_and_filters() {
    assert_eq!(canonical(r#"{ foo = "bar" }"#), r#"{foo="bar"}"#);
    assert_eq!(
        canonical(r#"{foo="bar", bar!="baz"} != "bip" !~ ".+bop""#),
        r#"{foo="bar", bar!="baz"} != "bip" !~ ".+bop""#
    );
    assert_eq!(
        canonical(r#"{app="foo"} != "foo" or "bar" or "baz" != "car""#),
        r#"{app="foo"} != "foo" != "bar" != "baz" != "car""#
    );
    assert_eq!(
        canonical(r#"{app="foo"} |= ip("127.0.0.1") or "foo""#),
        r#"{app="foo"} |= ip("127.0.0.1") or "foo""#
    );
    assert_eq!(
        canonical("({app=`a\"b`} |~ `\\d+`)"),
        r#"{app="a\"b"} |~ "\\d+""#
    );
    assert_eq!(
        canonical("{app=\"foo\"}\n# comment\n|= \"x\""),
        r#"{app="foo"} |= "x""#
    );
}

#[test]
fn pipeline_stages() {
    assert_eq!(
        canonical(
            r#"{app="foo"} |= "bar" | json | latency >= 250ms or ( status_code < 500 and status_code > 200) | line_format "blip{{ .foo }}blop" | label_format foo=bar,status_code="buzz{{.bar}}""#
        ),
        r#"{app="foo"} |= "bar" | json | ( latency>=250ms or ( status_code<500 , status_code>200 ) ) | line_format "blip{{ .foo }}blop" | label_format foo=bar,status_code="buzz{{.bar}}""#
    );
    assert_eq!(
        canonical(
            r#"{app="foo"} | logfmt --strict --keep-empty msg, err="e" |= "x" | drop a,b="c" | keep d"#
        ),
        r#"{app="foo"} | logfmt --strict --keep-empty msg="msg",err="e" |= "x" | drop a,b="c" | keep d"#
    );
    assert_eq!(
        canonical(
            r#"{app="foo"} | json a="x.y[0]", b | unpack | decolorize | regexp "(?P<x>.)" | pattern "<a> <_>""#
        ),
        r#"{app="foo"} | json a="x.y[0]",b="b" | unpack | decolorize | regexp "(?P<x>.)" | pattern "<a> <_>""#
    );
    assert_eq!(
        canonical(
            r#"{app="foo"} | a=ip("10.0.0.0/8") | b!=ip("::1") | c==5 | d!=-1.5 | e<=1KB | f="" | g=~"\\w+" | h=~"x|y.*""#
        ),
        r#"{app="foo"} | a=ip("10.0.0.0/8") | b!=ip("::1") | c==5 | d!=-1.5 | e<=1.0kB | f="" | g=~`\w+` | h=~"x|y.*""#
    );
    let Expr::Log(log) = parse_expr(r#"{a="b"} |= "x" | json != "y" |~ "z""#).unwrap() else {
        panic!("a log query");
    };
    assert_eq!(log.selector.filters.len(), 1);
    assert_eq!(log.stages.len(), 3);
    assert!(matches!(log.stages[1], Stage::LineFilter(_)));
}

#[test]
fn label_filter_precedence_follows_loki() {
    let filter = |q: &str| {
        let printed = canonical(&format!(r#"{{a="b"}} | {q}"#));
        printed[r#"{a="b"} | "#.len()..].to_string()
    };
    assert_eq!(filter("a=1 or b=2 and c=3"), "( a==1 or ( b==2 , c==3 ) )");
    assert_eq!(filter("a=1 and b=2 or c=3"), "( ( a==1 , b==2 ) or c==3 )");
    assert_eq!(filter("a=1 , b=2 or c=3"), "( a==1 , ( b==2 or c==3 ) )");
    assert_eq!(filter("a=1 b=2 or c=3"), "( a==1 , ( b==2 or c==3 ) )");
    assert_eq!(filter("a=1 or b=2 , c=3"), "( a==1 or ( b==2 , c==3 ) )");
    assert_eq!(filter("a=1, b=2, c=3"), "( a==1 , ( b==2 , c==3 ) )");
    assert_eq!(filter("a=1 or b=2 or c=3"), "( ( a==1 or b==2 ) or c==3 )");
    assert_eq!(filter("(a=1 or b=2) c=3"), "( ( a==1 or b==2 ) , c==3 )");
}

#[test]
fn metric_queries() {
    assert_eq!(
        canonical(r#"sum by (a,b) (count_over_time({x="y"} |= "e" [5m] offset 1h))"#),
        r#"sum by (a,b)(count_over_time({x="y"} |= "e"[5m] offset 1h0m0s))"#
    );
    assert_eq!(
        canonical(
            r#"quantile_over_time(0.99, {x="y"} | json | unwrap duration(latency) | __error__="" [1m]) by (a)"#
        ),
        r#"quantile_over_time(0.99,{x="y"} | json | unwrap duration(latency) | __error__=""[1m]) by (a)"#
    );
    assert_eq!(
        canonical(r#"topk by (a) (10, rate({x="y"}[1m]))"#),
        r#"topk by (a)(10,rate({x="y"}[1m]))"#
    );
    assert_eq!(
        canonical(
            r#"sum by () (rate({x="y"}[1m])) + on (a) group_left (b) sum without () (rate({x="y"}[1m]))"#
        ),
        r#"(sum(rate({x="y"}[1m])) + on (a) group_left (b) sum without ()(rate({x="y"}[1m])))"#
    );
    assert_eq!(
        canonical(r#"rate({x="y"}[1m]) > bool ignoring (a) vector(1)"#),
        r#"(rate({x="y"}[1m]) > bool ignoring (a)  vector(1.000000))"#
    );
    assert_eq!(
        canonical(r#"label_replace(rate({x="y"}[1m]), "d", "$1", "s", "(.*)")"#),
        r#"label_replace(rate({x="y"}[1m]),"d","$1","s","(.*)")"#
    );
    assert_eq!(canonical("1 + 2 * 3"), "7");
    assert_eq!(canonical("2 ^ 3 ^ 2"), "512");
    assert_eq!(canonical("(1 + 2) * 3"), "9");
    assert_eq!(canonical("10 / (5/2)"), "4");
    assert_eq!(canonical("1 > 1 > 1"), "0");
    assert_eq!(canonical("1e6"), "1e+06");
    assert_eq!(canonical("1 / 0"), "NaN");
    assert_eq!(canonical("- 2"), "-2");
    assert_eq!(
        canonical(r#"1 > bool 1 > count_over_time({foo="bar"}[1m])"#),
        r#"(0 > count_over_time({foo="bar"}[1m]))"#
    );
    assert_eq!(
        canonical(r#"rate({a="b"}[1m]) - rate({a="b"}[1m]) - rate({a="b"}[1m])"#),
        r#"((rate({a="b"}[1m]) - rate({a="b"}[1m])) - rate({a="b"}[1m]))"#
    );
    assert_eq!(
        canonical(r#"rate({a="b"}[1m]) or rate({a="b"}[1m]) and rate({a="b"}[1m]) > 1"#),
        r#"(rate({a="b"}[1m]) or (rate({a="b"}[1m]) and (rate({a="b"}[1m]) > 1)))"#
    );
    // Every form of the log range reads the same.
    let want = r#"count_over_time({a="b"} |= "x"[5m] offset 1m0s)"#;
    for q in [
        r#"count_over_time({a="b"} |= "x" [5m] offset 1m)"#,
        r#"count_over_time({a="b"}[5m] offset 1m |= "x")"#,
        r#"count_over_time(({a="b"} |= "x")[5m] offset 1m)"#,
        r#"count_over_time(({a="b"} |= "x" [5m] offset 1m))"#,
        r#"count_over_time((({a="b"})[5m] offset 1m |= "x"))"#,
    ] {
        if q.contains("(((") {
            assert!(parse_expr(q).is_err(), "{q}");
            continue;
        }
        assert_eq!(canonical(q), want, "{q}");
    }
    assert_eq!(
        canonical(r#"max_over_time({a="b"}[5m] | unwrap x)"#),
        r#"max_over_time({a="b"} | unwrap x[5m])"#
    );
}

#[test]
fn loki_refusals() {
    for (q, want) in [
        (
            r#"sum_over_time({a="b"}[5m])"#,
            "invalid aggregation sum_over_time without unwrap",
        ),
        (
            r#"count_over_time({a="b"} | unwrap x [5m])"#,
            "invalid aggregation count_over_time with unwrap",
        ),
        (
            r#"count_over_time({a="b"}[5m]) by (x)"#,
            "grouping not allowed for count_over_time aggregation",
        ),
        (
            r#"sum_over_time({a="b"} | unwrap x [5m]) by (x)"#,
            "grouping not allowed for sum_over_time aggregation",
        ),
        (
            r#"quantile_over_time({a="b"} | unwrap x [5m])"#,
            "parameter required for operation quantile_over_time",
        ),
        (
            r#"rate(1, {a="b"}[5m])"#,
            "parameter 1 not supported for operation rate",
        ),
        (
            r#"sum(3, rate({a="b"}[5m]))"#,
            "unsupported parameter for operation sum(3,",
        ),
        (
            r#"topk(rate({a="b"}[5m]))"#,
            "parameter required for operation topk",
        ),
        (
            r#"topk(1.5, rate({a="b"}[5m]))"#,
            "invalid parameter topk(1.5,",
        ),
        (
            r#"topk(0, rate({a="b"}[5m]))"#,
            "invalid parameter (must be greater than 0) topk(0",
        ),
        (
            r#"approx_topk by (a) (1, rate({a="b"}[5m]))"#,
            "grouping not allowed for approx_topk aggregation",
        ),
        (
            r#"sort(rate({a="b"}[5m])) by (a)"#,
            "sort and sort_desc doesn't allow grouping by ",
        ),
        (
            "1 and vector(1)",
            "unexpected literal for left leg of logical/set binary operation (and): 1.000000",
        ),
        (
            "vector(1) or 2",
            "unexpected literal for right leg of logical/set binary operation (or): 2.000000",
        ),
        (
            r#"{a="b"} | regexp "(.)""#,
            "invalid regexp parser: at least one named capture must be supplied",
        ),
        (
            r#"{a="b"} | pattern "<_>""#,
            "invalid pattern parser: at least one capture is required",
        ),
        (
            r#"{a="b"} | label_format a=b, a=c"#,
            "multiple label name 'a' not allowed in a single format operation",
        ),
        (
            r#"{a="b"} | label_format __error__=b"#,
            "__error__ cannot be formatted",
        ),
        (
            r#"{a="b"} | x > 0x10"#,
            "unable to parse literal as a float: strconv.ParseFloat: parsing \"0x10\": invalid syntax",
        ),
        (
            "vector(0x10)",
            "unable to parse vectorExpr as a float: strconv.ParseFloat: parsing \"0x10\": invalid syntax",
        ),
    ] {
        let e = parse_expr(q).expect_err(q);
        assert_eq!(e.message(), want, "{q}");
    }
    assert!(
        parse_expr(r#"label_replace(rate({a="b"}[5m]), "a", "b", "c", "(")"#)
            .unwrap_err()
            .message()
            .starts_with("invalid regex in label_replace")
    );
    assert!(
        parse_expr(r#"{a="b"} + 1"#)
            .unwrap_err()
            .message()
            .starts_with("unexpected type for left leg of binary operation (+)")
    );
    assert!(
        parse_expr(r#"1 + {a="b"}"#)
            .unwrap_err()
            .message()
            .starts_with("unexpected type for right leg of binary operation (+)")
    );
}

#[test]
fn matcher_requirement() {
    for q in [
        r#"{foo!="bar"}"#,
        r#"{app=~".*"}"#,
        r#"{app=""}"#,
        "{}",
        r#"{a!~"x|y"}"#,
        r#"sum(rate({app=~".*"}[1m])) + sum(rate({app="a"}[1m]))"#,
    ] {
        let e = parse_expr(q).unwrap_err();
        assert_eq!(e.message(), MATCHER_REQUIRED_MSG, "{q}");
    }
    assert!(parse_log_selector(r#"{foo!="bar"}"#, false).is_ok());
    assert!(parse_expr(r#"{app=~".+", foo!="bar"}"#).is_ok());
    // A negative matcher that the empty string fails selects too, as in Loki.
    assert!(parse_expr(r#"{app!=""}"#).is_ok());
    assert!(parse_expr("vector(1) + 1").is_ok());
}

#[test]
fn entry_points() {
    assert_eq!(
        parse_log_selector(r#"rate({a="b"}[5m])"#, true)
            .unwrap_err()
            .message(),
        "only log selector is supported"
    );
    let log = parse_log_selector(r#"{a="b"} |= "x" | json"#, true).unwrap();
    assert_eq!(log.stages.len(), 1);
    assert_eq!(
        parse_sample_expr(r#"{a="b"}"#).unwrap_err().message(),
        "only sample expression supported"
    );
    assert!(parse_sample_expr("vector(0)").is_ok());
    assert!(parse_matchers(r#"{a="b"} | json"#, true).is_err());
    assert!(parse_matchers(r#"{a="b"} |= "x""#, true).is_err());
    assert!(parse_matchers(r#"rate({a="b"}[1m])"#, true).is_err());
    assert_eq!(parse_matchers(r#"{a="b", c=~"d"}"#, true).unwrap().len(), 2);
    assert_eq!(parse_matchers(r#"{c!="d"}"#, false).unwrap().len(), 1);
}

#[test]
fn syntax_errors_in_loki_wording() {
    let e = parse_expr(r#"{foo="bar"} foo"#).unwrap_err();
    assert_eq!(
        e.to_string(),
        "parse error at line 1, col 13: syntax error: unexpected IDENTIFIER"
    );
    let e = parse_expr(r#"{foo="bar""#).unwrap_err();
    assert_eq!(
        e.message(),
        "syntax error: unexpected $end, expecting } or ,"
    );
    let e = parse_expr(r#"#{app="foo"} | json"#).unwrap_err();
    assert_eq!(e.message(), "syntax error: unexpected $end");
    let e = parse_expr(r#"unk({ foo = "bar" }[5m])"#).unwrap_err();
    assert_eq!(
        e.to_string(),
        "parse error at line 1, col 1: syntax error: unexpected IDENTIFIER"
    );
    let e = parse_expr(r#"{foo="bar"} |= "x" [5m]"#).unwrap_err();
    assert_eq!(e.message(), "syntax error: unexpected RANGE");
    let e = parse_expr(r#"min({ foo = "bar" }[5m])"#).unwrap_err();
    assert_eq!(e.message(), "syntax error: unexpected RANGE");
    let e = parse_expr(r#"stddev({ foo = "bar" })"#).unwrap_err();
    assert_eq!(e.message(), "syntax error: unexpected )");
    let e = parse_expr(r#"label_replace(rate({ foo = "bar" }[5m]),"")"#).unwrap_err();
    assert_eq!(e.message(), "syntax error: unexpected ), expecting ,");
    let e = parse_expr("vector(abc)").unwrap_err();
    assert_eq!(
        e.message(),
        "syntax error: unexpected IDENTIFIER, expecting NUMBER"
    );
    let e = parse_expr("bool 1 > 1").unwrap_err();
    assert_eq!(e.message(), "syntax error: unexpected bool");
    let e = parse_expr(r#"{ foo = "bar" }|logfmt|addr>=ip("1.2.3.4")"#).unwrap_err();
    assert_eq!(
        e.to_string(),
        "parse error at line 1, col 30: syntax error: unexpected ip"
    );
    for q in [
        r#"{a="b",}"#,
        r#"{a="b"} |= "x" or"#,
        r#"{a="b"} |= ip("1.2.3.4""#,
        r#"{or="b"}"#,
        r#"{a="b"} | 5"#,
        r#"{a="b"} | unwrap x"#,
        r#"rate({a="b"} | unwrap x | json [1m])"#,
        r#"rate({a="b"} |= "x" [1m] | json)"#,
        r#"rate(({a="b"})[1m] |= "x")"#,
        r#"sum by (a) (rate({a="b"}[1m])) by (b)"#,
        r#"avg_over_time by (a) ({a="b"} | unwrap x [1m])"#,
        r#"rate({a="b"}[1m]) * on (a) group_left (sum(rate({a="b"}[1m])))"#,
        "-vector(1)",
        "quantile_over_time(-0.5, {a=\"b\"} | unwrap x [1m])",
        "",
    ] {
        assert!(parse_expr(q).is_err(), "{q}");
    }
}

#[test]
fn roundtrips() {
    for q in [
        r#"{a="b"} |= "x" | logfmt | level=~"err.*" | line_format "{{.msg}}""#,
        r#"sum by (level) (rate({app="x"} | logfmt | level=~"err.*" [5m]))"#,
        r#"topk(5, sum by (app) (bytes_over_time({app=~".+"}[1h])))"#,
        r#"quantile_over_time(0.99, {a="b"} | json | unwrap duration_seconds(d) | __error__="" [5m]) by (a)"#,
        r#"sum(rate({a="b"}[1m])) / on (a, b) group_right (c) sum(rate({a="b"}[1m]))"#,
        r#"rate({a="b"}[1m]) == on () group_right rate({a="b"}[1m]) + rate({a="b"}[1m])"#,
        r#"{a="b"} | json x, y="a.b" | keep x, y=~"z.*" | drop __error__"#,
        r#"{a="b"} | x > 1.5 or y < 2KB and (z = 250ms, w != ip("1.2.3.4"))"#,
        r#"rate({a="b"} |= "x" [5m] offset -1h)"#,
        r#"label_replace(vector(1), "a", "b", "c", "d")"#,
        r#"count_over_time({a="b"} | pattern "<x> <y>" [1d]) > bool 2"#,
        r#"absent_over_time({a="b"}[1w]) unless rate({a="b"}[5m])"#,
    ] {
        roundtrip(q);
    }
}

#[test]
fn limits() {
    let deep = format!("{}{{a=\"b\"}}{}", "(".repeat(1000), ")".repeat(1000));
    assert!(matches!(parse_expr(&deep), Err(ParseError::Invalid(_))));
    let deep_sum = format!(
        "{}rate({{a=\"b\"}}[1m]){}",
        "sum(".repeat(NESTING_DEPTH_MAX + 1),
        ")".repeat(NESTING_DEPTH_MAX + 1)
    );
    assert!(matches!(parse_expr(&deep_sum), Err(ParseError::Invalid(_))));
    let long_chain = vec![r#"rate({a="b"}[1m])"#; NESTING_DEPTH_MAX + 2].join(" + ");
    assert!(matches!(
        parse_expr(&long_chain),
        Err(ParseError::Invalid(_))
    ));
    let pow_chain = vec!["vector(2)"; 2 * NESTING_DEPTH_MAX].join(" ^ ");
    assert!(matches!(
        parse_expr(&pow_chain),
        Err(ParseError::Invalid(_))
    ));
    let long = format!("{{a=\"{}\"}}", "x".repeat(QUERY_BYTES_MAX));
    assert!(matches!(parse_expr(&long), Err(ParseError::Invalid(_))));
    let filters = vec![r#"x="1""#; PIPELINE_STAGES_MAX + 1].join(", ");
    let e = parse_expr(&format!(r#"{{a="b"}} | {filters}"#)).unwrap_err();
    assert!(e.to_string().contains("pipeline_stages_max"), "{e}");
    let ok = vec![r#"x="1""#; PIPELINE_STAGES_MAX].join(", ");
    assert!(parse_expr(&format!(r#"{{a="b"}} | {ok}"#)).is_ok());
}

#[test]
fn selector_matches() {
    let s = parse_log_selector(r#"{app="api", env!="dev"} |= "error" != "timeout""#, true)
        .unwrap()
        .selector;
    let labels = [("app", "api"), ("env", "prod")];
    let get = |n: &str| labels.iter().find(|(k, _)| *k == n).map(|(_, v)| *v);
    assert!(s.matches_labels(get));
    assert!(s.matches_line(b"an error happened"));
    assert!(!s.matches_line(b"an error: timeout"));
    assert!(!s.matches_line(b"all good"));
}

#[test]
fn stages_and_filters_are_limited() {
    let chain = |n: usize, filter: &str| format!("{{app=\"a\"}}{}", filter.repeat(n));
    assert!(parse_expr(&chain(PIPELINE_STAGES_MAX, r#" |~ "x.y""#)).is_ok());
    let e = parse_expr(&chain(PIPELINE_STAGES_MAX + 1, r#" |~ "x.y""#)).unwrap_err();
    assert!(matches!(e, ParseError::Invalid(_)), "{e:?}");
    assert!(e.to_string().contains("pipeline_stages_max"), "{e}");
    // Stages after a parser count as well.
    let e = parse_expr(&format!(
        r#"{{app="a"}} | json{}"#,
        r#" |~ "x.y""#.repeat(PIPELINE_STAGES_MAX)
    ))
    .unwrap_err();
    assert!(e.to_string().contains("pipeline_stages_max"), "{e}");
    // A negative `or` chain is run (and counted) as one stage per operand.
    let negative = format!(
        r#"{{app="a"}}{} != "a" or "b""#,
        r#" != "x""#.repeat(PIPELINE_STAGES_MAX - 1)
    );
    assert!(
        parse_expr(&negative)
            .unwrap_err()
            .to_string()
            .contains("pipeline_stages_max")
    );
    // `or` alternatives count as line filters, in one filter or across several.
    let ors = |n: usize| format!(r#"{{app="a"}} |= "a"{}"#, r#" or "b""#.repeat(n));
    assert!(parse_expr(&ors(LINE_FILTERS_MAX - 1)).is_ok());
    let e = parse_expr(&ors(LINE_FILTERS_MAX)).unwrap_err();
    assert!(e.to_string().contains("line_filters_max"), "{e}");
    let split = format!(
        r#"{{app="a"}}{}{}"#,
        r#" |= "a" or "b" or "c""#.repeat(LINE_FILTERS_MAX / 3),
        r#" |= "a" or "b" or "c""#
    );
    assert!(
        parse_expr(&split)
            .unwrap_err()
            .to_string()
            .contains("line_filters_max")
    );
    // The reported query: 14,000 chained regexes, refused without building them.
    let huge = chain(14_000, r#" |~ "a.*b""#);
    assert!(parse_expr(&huge).is_err());
}

/// Whether a printed query can be read back: Loki prints NaN, infinities and negative zero
/// (`-0`, which its lexer reads as a duration) in forms it cannot parse.
fn reparsable(printed: &str) -> bool {
    let negative_zero = printed.match_indices("-0").any(|(i, _)| {
        !printed[i + 2..].starts_with(|c: char| c.is_ascii_digit() || c == '.' || c == 'e')
    });
    !printed.contains("NaN") && !printed.contains("Inf") && !negative_zero
}

proptest::proptest! {
    #[test]
    fn never_panics(q in "\\PC{0,64}") {
        let _ = parse_expr(&q);
    }

    #[test]
    fn never_panics_on_logql_like_input(
        q in proptest::collection::vec(
            proptest::sample::select(vec![
                "{", "}", "(", ")", "[5m]", "[", "]", ",", "=", "!=", "=~", "!~", "|=",
                "|~", "|>", "!>", "|", "\"a\"", "`b`", "\"", "`", "app", "or", "ip",
                "json", "sum", "by", "1", "1.5", "5m", "#", "\n", " ", "\\", "+",
            ]),
            0..24,
        )
    ) {
        let q: String = q.concat();
        if let Ok(e) = parse_expr(&q) {
            let printed = e.to_string();
            let again = parse_expr(&printed).unwrap();
            proptest::prop_assert_eq!(e, again);
        }
    }

    #[test]
    fn never_panics_on_metric_like_input(
        q in proptest::collection::vec(
            proptest::sample::select(vec![
                "{a=\"b\"}", "{a=~\".+\"}", "(", ")", "[5m]", "[1h]", ",", " ", "|",
                " | json", " | logfmt --strict", " | unwrap x", " | unwrap bytes(x)",
                " | x > 1", " | y=\"z\"", " or ", " and ", " unless ", "|= \"e\"",
                "rate(", "count_over_time(", "sum_over_time(", "quantile_over_time(0.5,",
                "avg_over_time(", "absent_over_time(", "sum", "topk(2,", "sort(",
                " by (a)", " without (b)", "by", "+", "-", "*", "/", "%", "^", "==",
                ">", "<=", "bool", " on (a)", " ignoring (b)", " group_left", " group_right (c)",
                "1", "-2", "0.5", "vector(1)", "label_replace(", "\"s\"", "offset 1m", "5m",
                "count_over_time({a=\"b\"}[1m])",
            ]),
            0..20,
        )
    ) {
        check_roundtrip(&q.concat())?;
    }

    #[test]
    fn metric_queries_print_and_parse_back(q in metric_query()) {
        check_roundtrip(&q)?;
    }
}

/// If `q` parses, its printed form parses back to the same tree (unless Loki's printed form
/// cannot be read, see [`reparsable`]).
fn check_roundtrip(q: &str) -> Result<(), proptest::test_runner::TestCaseError> {
    if let Ok(e) = parse_expr(q) {
        let printed = e.to_string();
        if reparsable(&printed) {
            let again = parse_expr(&printed);
            proptest::prop_assert!(
                again.is_ok(),
                "{} printed as {} fails: {:?}",
                q,
                printed,
                again
            );
            proptest::prop_assert_eq!(&e, &again.unwrap(), "{} printed as {}", q, printed);
        }
    }
    Ok(())
}

/// Queries built from LogQL's grammar with random choices at every point, so that most of
/// them are valid and every construct is printed and parsed back.
fn metric_query() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    let pick = |v: Vec<&'static str>| proptest::sample::select(v).prop_map(str::to_string);
    let stage = pick(vec![
        " | json",
        " | json a=\"x.y[0]\", b",
        " | logfmt --keep-empty",
        " | logfmt --strict a",
        " |= \"err\"",
        " != \"x\" or \"y\"",
        " |~ \"a.+\"",
        " |> \"<_> x <_>\"",
        " | level=\"error\"",
        " | d > 250ms or b <= 10KB",
        " | n >= -1.5, m != 2",
        " | (a=~\"x|y\" or b!~\"z\") c=ip(\"10.0.0.0/8\")",
        " | line_format \"{{.a}}\"",
        " | label_format a=b, c=\"{{.d}}\"",
        " | drop a, b=\"c\"",
        " | keep a",
        " | decolorize",
        " | unpack",
        " | regexp \"(?P<a>\\\\w+)\"",
        " | pattern \"<a> <_>\"",
    ]);
    let unwrap = pick(vec![
        "",
        " | unwrap x",
        " | unwrap duration(x)",
        " | unwrap bytes(x) | __error__=\"\"",
    ]);
    let log = (
        pick(vec!["{a=\"b\"}", "{a=~\".+\", c!=\"d\"}"]),
        proptest::collection::vec(stage, 0..4),
    )
        .prop_map(|(sel, stages)| format!("{sel}{}", stages.concat()));
    // Mostly what Loki accepts (unwrap and grouping where the operation takes them), some not.
    let range = (
        pick(vec![
            "count_over_time",
            "rate",
            "bytes_rate",
            "absent_over_time",
            "sum_over_time",
            "avg_over_time",
            "max_over_time",
            "quantile_over_time",
            "rate_counter",
            "first_over_time",
        ]),
        log,
        unwrap,
        pick(vec!["[5m]", "[1h30m]", "[10s]", "[1d]"]),
        pick(vec!["", " offset 5m", " offset -1h"]),
        pick(vec!["", " by (a)", " without (b,c)", " by ()"]),
        proptest::bool::weighted(0.1),
    )
        .prop_map(|(op, log, unwrap, range, offset, grouping, anything)| {
            let plain =
                ["count_over_time", "bytes_rate", "absent_over_time"].contains(&op.as_str());
            let grouped = [
                "avg_over_time",
                "max_over_time",
                "quantile_over_time",
                "first_over_time",
            ]
            .contains(&op.as_str());
            let unwrap = match (anything, plain, unwrap.is_empty()) {
                (false, true, _) => "",
                (false, false, true) => " | unwrap x",
                _ => &unwrap,
            };
            let grouping = if anything || grouped {
                grouping.as_str()
            } else {
                ""
            };
            let param = if op == "quantile_over_time" {
                "0.9, "
            } else {
                ""
            };
            format!("{op}({param}{log}{unwrap} {range}{offset}){grouping}")
        });
    let leaf = prop_oneof![
        4 => range,
        1 => pick(vec!["1", "-2.5", "1e6", "vector(3)", "0.001"]),
    ];
    leaf.prop_recursive(4, 16, 2, move |inner| {
        let pick = |v: Vec<&'static str>| proptest::sample::select(v).prop_map(str::to_string);
        prop_oneof![
            (
                pick(vec![
                    "sum", "avg", "max", "count", "stddev", "sort", "topk", "bottomk"
                ]),
                pick(vec!["", " by (a)", " without (b)"]),
                inner.clone(),
            )
                .prop_map(|(op, grouping, e)| {
                    let k = if op.ends_with('k') { "3, " } else { "" };
                    format!("{op}{grouping} ({k}{e})")
                }),
            (
                inner.clone(),
                pick(vec![
                    "+", "-", "*", "/", "%", "^", "==", "!=", ">", "<=", "and", "or", "unless"
                ]),
                pick(vec![
                    "",
                    " bool",
                    " on (a)",
                    " ignoring (b) group_left (c)",
                    " on () group_right"
                ]),
                inner.clone(),
            )
                .prop_map(|(l, op, m, r)| format!("{l} {op}{m} {r}")),
            inner.clone().prop_map(|e| format!("({e})")),
            inner.prop_map(|e| format!("label_replace({e}, \"d\", \"$1\", \"s\", \"(.*)\")")),
        ]
    })
}

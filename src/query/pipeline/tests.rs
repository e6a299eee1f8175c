//! Tests of whole pipelines: stage order, parser hints, structured metadata, and that no
//! line, however malformed, makes a stage panic.

use proptest::prelude::*;

use super::*;
use crate::logql::{
    CmpOp, ExtractParam, FilterOperand, LabelFilterExpr, LabelFormatItem, LabelMatcher, LabelSpec,
    LineFilter, LineFilterOp, MatchOp,
};

fn string_filter(name: &str, op: MatchOp, value: &str) -> logql::Stage {
    logql::Stage::LabelFilter(LabelFilterExpr::String(
        LabelMatcher::new(name, op, value).unwrap(),
    ))
}

fn contains(s: &str) -> logql::Stage {
    logql::Stage::LineFilter(
        LineFilter::new(
            LineFilterOp::Contains,
            vec![FilterOperand::Literal(s.into())],
        )
        .unwrap(),
    )
}

fn logfmt() -> logql::Stage {
    logql::Stage::Parser(ParserStage::Logfmt {
        strict: false,
        keep_empty: false,
        params: vec![],
    })
}

fn json() -> logql::Stage {
    logql::Stage::Parser(ParserStage::Json(vec![]))
}

#[test]
fn noop_pipeline_adds_structured_metadata() {
    let pipeline = Pipeline::new(&[]).unwrap();
    assert!(pipeline.is_noop());
    let stream = Labels::from_pairs([("foo", "bar")]);
    let (line, labels) = pipeline
        .run_once(0, "line", &stream, [("y", "1"), ("foo", "baz")])
        .unwrap();
    assert_eq!(line, "line");
    assert!(matches!(line, Cow::Borrowed(_)));
    assert_eq!(
        labels.to_string(),
        r#"{foo="bar", foo_extracted="baz", y="1"}"#
    );
}

#[test]
fn a_pipeline_chains_parsers_filters_and_label_stages() {
    let pipeline = Pipeline::new(&[
        logfmt(),
        string_filter("level", MatchOp::Eq, "error"),
        logql::Stage::Drop(vec![LabelSpec::Name("ts".into())]),
        logql::Stage::LabelFormat(vec![LabelFormatItem {
            dst: "lvl".into(),
            src: LabelFormatSource::Rename("level".into()),
        }]),
    ])
    .unwrap();
    let stream = Labels::from_pairs([("app", "api")]);
    let mut lbs = LabelsBuilder::new(&stream);
    lbs.reset([]);
    assert!(
        pipeline
            .run(0, "level=info ts=1 msg=ok", &mut lbs)
            .is_none()
    );
    lbs.reset([]);
    let line = pipeline
        .run(0, "level=error ts=1 msg=boom", &mut lbs)
        .unwrap();
    assert_eq!(line, "level=error ts=1 msg=boom");
    assert_eq!(
        lbs.labels().to_string(),
        r#"{app="api", lvl="error", msg="boom"}"#
    );
    let categorized = lbs.categorized();
    assert_eq!(categorized.stream.to_string(), r#"{app="api"}"#);
    assert_eq!(
        categorized.parsed.to_string(),
        r#"{lvl="error", msg="boom"}"#
    );
}

#[test]
fn line_filters_move_before_parsers_as_in_loki() {
    let stages = [
        json(),
        contains("x"),
        logql::Stage::Decolorize,
        contains("y"),
    ];
    let order: Vec<_> = reorder_stages(&stages)
        .iter()
        .map(|s| match s {
            logql::Stage::LineFilter(f) => format!("{f}"),
            logql::Stage::Parser(_) => "json".into(),
            logql::Stage::Decolorize => "decolorize".into(),
            _ => "?".into(),
        })
        .collect();
    assert_eq!(order, [r#"|= "x""#, r#"|= "y""#, "json", "decolorize"]);
    let barrier = [
        json(),
        string_filter("a", MatchOp::Eq, "b"),
        contains("x"),
        logql::Stage::Parser(ParserStage::Unpack),
        contains("y"),
    ];
    let order: Vec<_> = reorder_stages(&barrier)
        .iter()
        .map(|s| matches!(s, logql::Stage::LineFilter(_)))
        .collect();
    assert_eq!(order, [false, false, true, false, true]);
}

#[test]
fn a_filter_on_a_parsed_label_drops_the_line_during_parsing() {
    // Loki's parser hints: `level!="error"` runs as soon as `json` sets `level`, so the line
    // is dropped even though a later stage would have renamed the label away.
    let pipeline = Pipeline::new(&[
        json(),
        logql::Stage::LabelFormat(vec![LabelFormatItem {
            dst: "level".into(),
            src: LabelFormatSource::Rename("other".into()),
        }]),
        string_filter("level", MatchOp::Eq, "error"),
    ])
    .unwrap();
    let stream = Labels::default();
    assert!(
        pipeline
            .run_once(0, r#"{"level":"info","other":"error"}"#, &stream, [])
            .is_none()
    );
    assert!(
        pipeline
            .run_once(0, r#"{"level":"error","other":"error"}"#, &stream, [])
            .is_some()
    );
}

#[test]
fn stage_errors_are_bad_requests() {
    for stages in [
        vec![logql::Stage::Parser(ParserStage::Pattern("<_>".into()))],
        vec![logql::Stage::Parser(ParserStage::Regexp("(a)".into()))],
        vec![logql::Stage::Parser(ParserStage::Json(vec![
            ExtractParam {
                label: "a".into(),
                expr: Some("a..b".into()),
            },
        ]))],
        vec![logql::Stage::LabelFilter(LabelFilterExpr::Ip {
            name: "addr".into(),
            negated: false,
            pattern: "192.168.0.2-1.0.0.0".into(),
        })],
        vec![logql::Stage::LineFormat("{{.a".into())],
        vec![logql::Stage::LabelFormat(vec![LabelFormatItem {
            dst: "a".into(),
            src: LabelFormatSource::Template("{{ nosuchfunction .b }}".into()),
        }])],
    ] {
        let err = Pipeline::new(&stages).unwrap_err();
        assert_eq!(err.status(), 400, "{err}");
    }
}

#[test]
fn pipelines_are_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Pipeline>();
    let pipeline = std::sync::Arc::new(
        Pipeline::new(&[
            json(),
            logql::Stage::LabelFilter(LabelFilterExpr::Number {
                name: "n".into(),
                op: CmpOp::Gt,
                value: 1.0,
            }),
        ])
        .unwrap(),
    );
    let handles: Vec<_> = (0..2)
        .map(|i| {
            let pipeline = pipeline.clone();
            std::thread::spawn(move || {
                let line = format!(r#"{{"n":{i}}}"#);
                pipeline
                    .run_once(0, &line, &Labels::default(), [])
                    .is_some()
            })
        })
        .collect();
    let kept: Vec<bool> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(kept, [false, false]);
}

/// Every parser stage, with and without parameters, and the stages that read labels.
fn every_stage() -> Vec<logql::Stage> {
    let param = |label: &str, expr: &str| ExtractParam {
        label: label.into(),
        expr: Some(expr.into()),
    };
    vec![
        json(),
        logql::Stage::Parser(ParserStage::Json(vec![
            param("a", "a.b[0]"),
            param("b", r#"["x y"][1].c"#),
            param("c", "c"),
        ])),
        logfmt(),
        logql::Stage::Parser(ParserStage::Logfmt {
            strict: true,
            keep_empty: true,
            params: vec![],
        }),
        logql::Stage::Parser(ParserStage::Logfmt {
            strict: true,
            keep_empty: false,
            params: vec![param("a", "a"), param("b", "c")],
        }),
        logql::Stage::Parser(ParserStage::Regexp(r"(?P<a>\w+)=(?P<b>\S*)".into())),
        logql::Stage::Parser(ParserStage::Pattern("<a> <_>=<b>".into())),
        logql::Stage::Parser(ParserStage::Pattern("x<a>".into())),
        logql::Stage::Parser(ParserStage::Unpack),
        logql::Stage::Decolorize,
        logql::Stage::LabelFilter(LabelFilterExpr::Or(
            Box::new(LabelFilterExpr::Duration {
                name: "a".into(),
                op: CmpOp::Gt,
                value_ns: 1,
            }),
            Box::new(LabelFilterExpr::Bytes {
                name: "b".into(),
                op: CmpOp::Le,
                value: 10,
            }),
        )),
        logql::Stage::Keep(vec![LabelSpec::Name("a".into())]),
    ]
}

/// Lines built from the characters that matter to the parsers.
fn structured_line() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just("{".to_string()),
            Just("}".to_string()),
            Just("[".to_string()),
            Just("]".to_string()),
            Just("\"".to_string()),
            Just("\\".to_string()),
            Just(":".to_string()),
            Just(",".to_string()),
            Just("=".to_string()),
            Just(" ".to_string()),
            Just("\\u".to_string()),
            Just("d83d".to_string()),
            Just("\u{1b}[".to_string()),
            Just("\u{fffd}".to_string()),
            "[a-z0-9_.-]{1,4}",
        ],
        0..40,
    )
    .prop_map(|parts| parts.concat())
}

proptest! {
    #[test]
    fn no_line_makes_a_stage_panic(
        line in prop_oneof![structured_line(), any::<String>()],
        stage in 0usize..12,
    ) {
        let stages = every_stage();
        let pipeline = Pipeline::new(&stages[stage % stages.len()..][..1]).unwrap();
        let stream = Labels::from_pairs([("a", "s")]);
        let mut lbs = LabelsBuilder::new(&stream);
        lbs.reset([("b", "m")]);
        let _ = pipeline.run(0, &line, &mut lbs);
        let _ = lbs.labels_hash();
        let _ = lbs.categorized();
    }

    #[test]
    fn json_paths_never_panic(expr in "[a-z\\[\\]\".0-9 ]{0,12}") {
        let _ = json_path::parse_json_path(&expr);
        let _ = logfmt::parse_logfmt_path(&expr);
    }
}

/// The length test of a lean pipeline never rejects a key whose label could be wanted.
#[test]
fn lean_key_lengths_never_reject_a_wanted_key() {
    let stages = match crate::logql::parse_expr("{a=\"b\"} | logfmt | level=\"x\"") {
        Ok(crate::logql::Expr::Log(log)) => log.stages,
        other => panic!("{other:?}"),
    };
    let wanted = [
        "app_extracted".to_string(),
        "_9lives".to_string(),
        "le_vel".to_string(),
    ];
    let lean = Pipeline::lean(&stages, &wanted, false)
        .unwrap()
        .expect("lean");
    let keys: &[&str] = &[
        "level",
        "app",
        "9lives",
        " 9lives",
        "le-vel",
        "le vel",
        "le\u{b}vel",
        "lev\u{b}",
        "\u{b}level",
        "level\t",
        "app_extracted",
        "app ",
        "ap",
        "",
        " ",
        "\u{e9}level",
        "lével",
        "$app",
        "[app",
        "1evel",
    ];
    let mut name = String::new();
    for key in keys {
        keys::sanitize_label_key(key, true, &mut name);
        let could_be_wanted =
            lean.hints.wants(&name) || lean.hints.wants(&format!("{name}{DUPLICATE_SUFFIX}"));
        if could_be_wanted {
            assert!(lean.hints.may_want_key(key.as_bytes()), "{key:?} -> {name}");
        }
    }
    assert!(!lean.hints.may_want_key(b"stat"));
    assert!(lean.hints.may_want_key(b"level"));
}

proptest! {
    #[test]
    fn lean_key_lengths_never_reject_any_key(key in "[ -~\u{b}\u{e9}]{0,12}") {
        let stages = vec![crate::logql::Stage::Parser(crate::logql::ParserStage::Json(Vec::new()))];
        let wanted: Vec<String> = ["a", "ab_extracted", "_1", "a_b", "abcdef"].iter().map(|s| s.to_string()).collect();
        let lean = Pipeline::lean(&stages, &wanted, false).unwrap().expect("lean");
        let mut name = String::new();
        keys::sanitize_label_key(&key, true, &mut name);
        if lean.hints.wants(&name) || lean.hints.wants(&format!("{name}{DUPLICATE_SUFFIX}")) {
            prop_assert!(lean.hints.may_want_key(key.as_bytes()));
        }
    }
}

#[test]
fn a_rename_next_to_a_template_keeps_the_renamed_stream_label() {
    // `label_format a="{{.app}}", b=app`: `b` takes the stream label's value and `app` goes.
    let pipeline = Pipeline::new(&[logql::Stage::LabelFormat(vec![
        LabelFormatItem {
            dst: "a".into(),
            src: LabelFormatSource::Template("{{.app}}".into()),
        },
        LabelFormatItem {
            dst: "b".into(),
            src: LabelFormatSource::Rename("app".into()),
        },
    ])])
    .unwrap();
    let stream = Labels::from_pairs([("app", "hdfs"), ("env", "prod")]);
    let (_, labels) = pipeline.run_once(0, "a line", &stream, []).unwrap();
    assert_eq!(
        labels,
        Labels::from_pairs([("a", "hdfs"), ("b", "hdfs"), ("env", "prod")])
    );
}

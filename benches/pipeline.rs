//! The log pipeline per line: `json`, `logfmt`, `pattern` and a label filter over lines made
//! from the loghub corpus (the corpus has neither JSON nor logfmt, so each of its lines is
//! also written in those forms, with its words as fields).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use shardlog::logql::{
    CmpOp, ExtractParam, LabelFilterExpr, LabelMatcher, MatchOp, ParserStage, Stage,
};
use shardlog::model::Labels;
use shardlog::query::pipeline::{LabelsBuilder, Pipeline};

#[path = "common/corpus.rs"]
mod corpus;

/// `(file, line number, line)` of every corpus line.
fn corpus_lines() -> Vec<(String, usize, String)> {
    corpus::files()
        .into_iter()
        .flat_map(|(name, text)| {
            text.lines()
                .filter(|l| !l.is_empty())
                .enumerate()
                .map(|(i, l)| (name.clone(), i, l.to_string()))
                .collect::<Vec<_>>()
        })
        .collect()
}

fn level_of(line: &str) -> &'static str {
    if line.contains("ERROR") || line.contains("error") {
        "error"
    } else if line.contains("WARN") {
        "warn"
    } else {
        "info"
    }
}

fn json_escape(s: &str) -> String {
    serde_json::to_string(s).expect("a string serialises")
}

/// The line as a JSON object: a few scalar fields, a nested object, the message.
fn as_json(file: &str, n: usize, line: &str) -> String {
    let words: Vec<&str> = line.split_whitespace().collect();
    format!(
        r#"{{"ts":{},"level":"{}","file":"{file}","n":{n},"meta":{{"words":{},"first":{},"ok":true}},"msg":{}}}"#,
        json_escape(words.first().copied().unwrap_or("")),
        level_of(line),
        words.len(),
        json_escape(words.get(1).copied().unwrap_or("")),
        json_escape(line)
    )
}

/// The line as logfmt pairs, with the message quoted.
fn as_logfmt(file: &str, n: usize, line: &str) -> String {
    let words: Vec<&str> = line.split_whitespace().collect();
    format!(
        r#"ts={} level={} file={file} n={n} words={} msg={}"#,
        words
            .first()
            .copied()
            .unwrap_or("-")
            .replace(['"', '='], "_"),
        level_of(line),
        words.len(),
        json_escape(line)
    )
}

fn run_all(pipeline: &Pipeline, lines: &[String], lbs: &mut LabelsBuilder) -> usize {
    let mut kept = 0;
    for line in lines {
        lbs.reset([]);
        if let Some(out) = pipeline.run(0, black_box(line), lbs) {
            black_box(out);
            black_box(lbs.labels_hash());
            kept += 1;
        }
    }
    kept
}

fn stages(c: &mut Criterion) {
    let corpus = corpus_lines();
    let json_lines: Vec<String> = corpus.iter().map(|(f, n, l)| as_json(f, *n, l)).collect();
    let logfmt_lines: Vec<String> = corpus.iter().map(|(f, n, l)| as_logfmt(f, *n, l)).collect();
    let ssh_lines: Vec<String> = corpus
        .iter()
        .filter(|(f, _, _)| f == "OpenSSH_2k")
        .map(|(_, _, l)| l.clone())
        .collect();
    let stream = Labels::from_pairs([("job", "bench"), ("host", "h1")]);

    let logfmt = Stage::Parser(ParserStage::Logfmt {
        strict: false,
        keep_empty: false,
        params: vec![],
    });
    let level_error = Stage::LabelFilter(LabelFilterExpr::And(
        Box::new(LabelFilterExpr::String(
            LabelMatcher::new("level", MatchOp::Eq, "error").expect("a valid matcher"),
        )),
        Box::new(LabelFilterExpr::Number {
            name: "n".into(),
            op: CmpOp::Gt,
            value: 100.0,
        }),
    ));
    let cases: Vec<(&str, Vec<Stage>, &[String])> = vec![
        (
            "json",
            vec![Stage::Parser(ParserStage::Json(vec![]))],
            &json_lines,
        ),
        (
            "json_params",
            vec![Stage::Parser(ParserStage::Json(vec![
                ExtractParam {
                    label: "level".into(),
                    expr: None,
                },
                ExtractParam {
                    label: "words".into(),
                    expr: Some("meta.words".into()),
                },
            ]))],
            &json_lines,
        ),
        ("logfmt", vec![logfmt.clone()], &logfmt_lines),
        (
            "pattern",
            vec![Stage::Parser(ParserStage::Pattern(
                "<month> <day> <time> <host> <proc>[<pid>]: <msg>".into(),
            ))],
            &ssh_lines,
        ),
        (
            "logfmt_label_filter",
            vec![logfmt, level_error.clone()],
            &logfmt_lines,
        ),
    ];

    let mut g = c.benchmark_group("pipeline");
    for (name, stages, lines) in cases {
        let pipeline = Pipeline::new(&stages).expect("the bench's stages compile");
        let mut lbs = LabelsBuilder::new(&stream);
        let kept = run_all(&pipeline, lines, &mut lbs);
        eprintln!("{name}: keeps {kept} of {} lines", lines.len());
        g.throughput(Throughput::Elements(lines.len() as u64));
        g.bench_function(name, |b| b.iter(|| run_all(&pipeline, lines, &mut lbs)));
    }

    // A label filter alone, on labels that come with each line (structured metadata).
    let pipeline = Pipeline::new(&[level_error]).expect("the filter compiles");
    let metadata: Vec<(String, String)> = corpus
        .iter()
        .map(|(_, n, l)| (n.to_string(), level_of(l).to_string()))
        .collect();
    let mut lbs = LabelsBuilder::new(&stream);
    g.throughput(Throughput::Elements(metadata.len() as u64));
    g.bench_function("label_filter", |b| {
        b.iter(|| {
            let mut kept = 0;
            for (n, level) in &metadata {
                lbs.reset([("n", n.as_str()), ("level", level.as_str())]);
                if pipeline.run(0, "", &mut lbs).is_some() {
                    kept += 1;
                }
            }
            kept
        })
    });
    g.finish();
}

#[path = "common/criterion_config.rs"]
mod criterion_config;
use criterion_config::config;

criterion_group! {
    name = benches;
    config = config();
    targets = stages
}
criterion_main!(benches);

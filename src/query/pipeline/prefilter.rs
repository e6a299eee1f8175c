//! Lines a pipeline's string label filters rule out before any stage runs.
//!
//! Which question it answers: "can this line pass `| logfmt | level=~"err.*"` at all?" Two
//! facts decide it without running a parser:
//! - A label the stream has keeps the stream's value: parsers store a key of that name as
//!   `<name>_extracted`. So the filter's verdict on it is known from the stream's labels.
//! - A label that a parser sets holds a piece of the line: `json`, `logfmt`, `regexp` and
//!   `pattern` copy their values out of it, and change them only to unquote escapes (`\"`,
//!   `\u0065`) or to drop U+FFFD. So when the line has neither a backslash nor U+FFFD, every
//!   parsed value is a substring of the line, and a filter that requires a literal of its
//!   value (`= "x"` requires `x`, `=~ "err.*"` requires `err`: the literals every match
//!   contains, as for bloom needles in [`crate::query::needles`]) fails on every line that
//!   lacks the literal.
//!
//! Such a line is dropped without parsing it, which is what the pipeline would have done,
//! only slower: a label filter drops lines and has no other effect, and Loki's string
//! filters test the value even on a line whose parser failed.
//!
//! The rules hold only while nothing but parsers that copy values and other filters precede
//! the filter (no `line_format`, `label_format`, `decolorize`, `unpack`, `drop` or `keep`,
//! which write values or lines of their own), for filters joined by `and` at the top of a
//! filter stage, never for a label that is the line's structured metadata, and never for
//! `__error__` and the other names parsers do not copy from the line.

use memchr::memmem::Finder;

use super::labels::{LabelCategory, LabelsBuilder};
use crate::logql::{self, LabelFilterExpr, LabelMatcher, MatchOp, ParserStage};
use crate::model::Labels;
use crate::query::needles::regex_requirements_of_len;

/// One string filter the line must pass: the label, the matcher, and the needles one of
/// which the value contains when it passes (none when the matcher requires no literal).
#[derive(Debug)]
struct Requirement {
    name: String,
    matcher: LabelMatcher,
    needles: Vec<Finder<'static>>,
}

/// The requirements a pipeline's string label filters make of its lines (see the module doc).
#[derive(Debug, Default)]
pub(crate) struct LinePrefilter {
    requirements: Vec<Requirement>,
}

/// U+FFFD in UTF-8: a parser drops it from values, which could join a literal.
const REPLACEMENT_CHAR: &[u8] = "\u{FFFD}".as_bytes();

impl LinePrefilter {
    /// The requirements of the label filters of `stages` (in the order they run) that only
    /// line filters, value-copying parsers and other label filters precede.
    pub fn of(stages: &[&logql::Stage]) -> LinePrefilter {
        let mut requirements = Vec::new();
        for stage in stages {
            match stage {
                logql::Stage::LineFilter(_) => {}
                logql::Stage::Parser(
                    ParserStage::Json(_)
                    | ParserStage::Logfmt { .. }
                    | ParserStage::Regexp(_)
                    | ParserStage::Pattern(_),
                ) => {}
                logql::Stage::LabelFilter(expr) => conjuncts(expr, &mut requirements),
                _ => break,
            }
        }
        LinePrefilter { requirements }
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Whether the filters drop every line of a stream with these labels that carries none
    /// of [`LinePrefilter::reads_metadata`] as structured metadata: a filter on one of its
    /// labels fails on the stream's value (see [`LinePrefilter::rules_out`]).
    pub fn rules_out_stream(&self, stream: &Labels) -> bool {
        self.requirements.iter().any(|r| {
            stream
                .get(&r.name)
                .is_some_and(|v| !r.matcher.matches(Some(v)))
        })
    }

    /// Whether a line's structured metadata named `key` may change the filters' verdict on
    /// its stream's labels.
    pub fn reads_metadata(&self, key: &str) -> bool {
        self.requirements.iter().any(|r| r.name == key)
    }

    /// Whether the pipeline's label filters must drop this line, whose labels `lbs` holds
    /// before any stage ran (the stream's and the line's structured metadata).
    #[inline]
    pub fn rules_out(&self, line: &str, lbs: &LabelsBuilder) -> bool {
        let bytes = line.as_bytes();
        let mut altered: Option<bool> = None;
        for r in &self.requirements {
            if lbs.has_in_category(&r.name, LabelCategory::StructuredMetadata) {
                continue;
            }
            if lbs.base_has(&r.name) {
                // The stream's own value: no parser replaces it.
                if !r.matcher.matches(lbs.get(&r.name)) {
                    return true;
                }
                continue;
            }
            if r.needles.is_empty() || r.needles.iter().any(|n| n.find(bytes).is_some()) {
                continue;
            }
            // Parsed values may differ from the line's bytes: the rule does not apply.
            let altered = *altered.get_or_insert_with(|| {
                memchr::memchr(b'\\', bytes).is_some()
                    || memchr::memmem::find(bytes, REPLACEMENT_CHAR).is_some()
            });
            if !altered {
                return true;
            }
        }
        false
    }
}

/// The requirements of the filters joined by `and` (or `,`) at the top of `expr`; an `or`
/// requires nothing of either side.
fn conjuncts(expr: &LabelFilterExpr, out: &mut Vec<Requirement>) {
    match expr {
        LabelFilterExpr::And(a, b) => {
            conjuncts(a, out);
            conjuncts(b, out);
        }
        LabelFilterExpr::String(m) if !m.name.starts_with("__") => {
            let needles: Vec<Vec<u8>> = match m.op {
                MatchOp::Eq if !m.value.is_empty() => vec![m.value.as_bytes().to_vec()],
                MatchOp::Re => regex_requirements_of_len(&m.value, 1)
                    .and_then(|cnf| {
                        // The most selective clause: the one whose shortest needle is longest.
                        cnf.into_iter()
                            .max_by_key(|c| c.iter().map(Vec::len).min().unwrap_or(0))
                    })
                    .unwrap_or_default(),
                _ => Vec::new(),
            };
            out.push(Requirement {
                name: m.name.clone(),
                matcher: m.clone(),
                needles: needles
                    .iter()
                    .map(|n| Finder::new(n).into_owned())
                    .collect(),
            });
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefilter(query: &str) -> LinePrefilter {
        let expr = match crate::logql::parse_expr(query).expect("query parses") {
            logql::Expr::Log(e) => e,
            other => panic!("not a log query: {other:?}"),
        };
        let stages: Vec<&logql::Stage> = expr.stages.iter().collect();
        LinePrefilter::of(&stages)
    }

    fn rules_out(
        p: &LinePrefilter,
        stream: &[(&str, &str)],
        md: &[(&str, &str)],
        line: &str,
    ) -> bool {
        let stream = Labels::from_pairs(stream.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let mut lbs = LabelsBuilder::new(&stream);
        lbs.reset(md.iter().copied());
        p.rules_out(line, &lbs)
    }

    #[test]
    fn a_line_without_the_literal_is_ruled_out() {
        let p = prefilter(r#"{app="a"} | logfmt | level=~"err.*""#);
        assert!(rules_out(&p, &[("app", "a")], &[], "level=info msg=ok"));
        assert!(!rules_out(&p, &[("app", "a")], &[], "level=error msg=ok"));
        // A literal elsewhere in the line is enough to run the pipeline.
        assert!(!rules_out(&p, &[("app", "a")], &[], "level=info msg=error"));
    }

    #[test]
    fn escapes_stream_labels_and_metadata_keep_the_line() {
        let p = prefilter(r#"{app="a"} | json | level="error""#);
        assert!(rules_out(&p, &[], &[], r#"{"level":"info"}"#));
        // `\u0065rror` unquotes to `error`.
        assert!(!rules_out(&p, &[], &[], r#"{"level":"\u0065rror"}"#));
        // U+FFFD is dropped from logfmt values: `er\u{FFFD}ror` becomes `error`.
        assert!(!rules_out(&p, &[], &[], "level=er\u{FFFD}ror"));
        assert!(!rules_out(&p, &[("level", "error")], &[], "msg=x"));
        assert!(!rules_out(&p, &[], &[("level", "error")], "msg=x"));
    }

    #[test]
    fn filters_on_a_stream_label_are_decided_by_its_value() {
        let p = prefilter(r#"{app="a"} | logfmt | level=~"err.*", app!="b""#);
        assert!(rules_out(&p, &[("level", "info")], &[], "level=error"));
        assert!(!rules_out(&p, &[("level", "error")], &[], "msg=x"));
        assert!(rules_out(
            &p,
            &[("level", "error"), ("app", "b")],
            &[],
            "level=error"
        ));
        let p = prefilter(r#"{app="a"} | json | level!="debug""#);
        assert!(rules_out(
            &p,
            &[("level", "debug")],
            &[],
            r#"{"level":"info"}"#
        ));
        assert!(!rules_out(&p, &[], &[], r#"{"level":"debug"}"#));
    }

    #[test]
    fn a_stream_whose_label_fails_a_filter_is_ruled_out_whole() {
        let p = prefilter(r#"{app="a"} | logfmt | level=~"err.*", msg=~"x.*""#);
        let stream = |level: &str| Labels::from_pairs([("app", "a"), ("level", level)]);
        assert!(p.rules_out_stream(&stream("info")));
        assert!(!p.rules_out_stream(&stream("error")));
        assert!(!p.rules_out_stream(&Labels::from_pairs([("app", "a")])));
        assert!(p.reads_metadata("level") && p.reads_metadata("msg"));
        assert!(!p.reads_metadata("app"));
    }

    #[test]
    fn only_filters_after_copying_stages_and_at_the_top_count() {
        // None of these can rule out a line on its parsed labels.
        for q in [
            r#"{app="a"} | logfmt | level!="error""#,
            r#"{app="a"} | logfmt | level=~"(?i)err.*""#,
            r#"{app="a"} | logfmt | level=~".*""#,
            r#"{app="a"} | logfmt | level="error" or level="warn""#,
            r#"{app="a"} | logfmt | __error__="JSONParserErr""#,
            r#"{app="a"} | logfmt | status >= 500"#,
        ] {
            assert!(!rules_out(&prefilter(q), &[], &[], "msg=x"), "{q}");
        }
        // Nor of any label, after a stage that writes labels or the line.
        for q in [
            r#"{app="a"} | line_format "{{.msg}}" | logfmt | level="error""#,
            r#"{app="a"} | logfmt | label_format level="error" | level="error""#,
            r#"{app="a"} | decolorize | logfmt | level="error""#,
            r#"{app="a"} | unpack | level="error""#,
            r#"{app="a"} | drop level | level="error""#,
        ] {
            assert!(prefilter(q).is_empty(), "{q}");
        }
        let p = prefilter(r#"{app="a"} |= "x" | logfmt | level="error", msg=~"time(out|d)""#);
        assert_eq!(p.requirements.len(), 2);
        assert!(rules_out(&p, &[], &[], "level=error msg=ok"));
        assert!(!rules_out(&p, &[], &[], "level=error msg=timed"));
    }

    /// Lines of the pieces that matter: the filtered keys and literals, quotes, escapes,
    /// U+FFFD, separators of logfmt and JSON.
    fn line() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        proptest::collection::vec(
            prop_oneof![
                Just("level"),
                Just("lvl"),
                Just("err"),
                Just("or"),
                Just("error"),
                Just("info"),
                Just("e"),
                Just("r"),
                Just("="),
                Just(" "),
                Just("\""),
                Just("\\"),
                Just("\\u0065"),
                Just("\u{FFFD}"),
                Just("{"),
                Just("}"),
                Just(":"),
                Just(","),
                Just("level=\""),
                Just("{\"level\":\""),
                Just("\\u0065rr"),
                Just("er\u{FFFD}r"),
                // Whole fields whose value differs from the line's bytes.
                Just(" level=\"\\u0065rror\" "),
                Just(" level=er\u{FFFD}ror "),
                Just("{\"level\":\"\\u0065rr\"}"),
                Just("{\"level\":\"er\u{FFFD}r\"}"),
            ],
            0..24,
        )
        .prop_map(|parts| parts.concat())
    }

    proptest::proptest! {
        /// The prefilter changes nothing but speed: every line gives the same result with
        /// and without it, whatever its stream labels and metadata.
        #[test]
        fn the_prefilter_drops_only_lines_the_pipeline_drops(
            line in line(),
            query in 0usize..6,
            stream_level in proptest::option::of(proptest::sample::select(vec!["error", "info", "err"])),
            metadata_level in proptest::bool::ANY,
        ) {
            let queries = [
                r#"{app="a"} | logfmt | level=~"err.*""#,
                r#"{app="a"} | json | level="error""#,
                r#"{app="a"} | logfmt | level_extracted="error""#,
                r#"{app="a"} | regexp "level=(?P<level>\\S+)" | level=~"e(rr|or)""#,
                r#"{app="a"} | json | logfmt --keep-empty | level=~"error|err" , lvl!="x""#,
                r#"{app="a"} | pattern "<_>level=<level> <_>" | level="err""#,
            ];
            let expr = match crate::logql::parse_expr(queries[query]).expect("query parses") {
                logql::Expr::Log(e) => e,
                other => panic!("not a log query: {other:?}"),
            };
            let with = super::super::Pipeline::new(&expr.stages).unwrap();
            proptest::prop_assert!(!with.prefilter.is_empty());
            let mut without = super::super::Pipeline::new(&expr.stages).unwrap();
            without.prefilter = LinePrefilter::default();
            let mut stream = vec![("app", "a")];
            if let Some(level) = stream_level {
                stream.push(("level", level));
            }
            let stream = Labels::from_pairs(stream);
            let metadata: Vec<(&str, &str)> =
                if metadata_level { vec![("level", "err")] } else { vec![] };
            let a = with.run_once(0, &line, &stream, metadata.iter().copied());
            let b = without.run_once(0, &line, &stream, metadata.iter().copied());
            proptest::prop_assert_eq!(a, b);
        }
    }
}

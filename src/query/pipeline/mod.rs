//! The log pipeline: the stages of a log query (`| json | level="error" | drop pod`) run on
//! one line at a time, with a labels builder (Loki's `log.Pipeline`, pkg/logql/log).
//!
//! Which question it answers: "what does this line become, with which labels, or is it
//! dropped?" [`Pipeline::new`] compiles the stages of the syntax tree once per query (regexes,
//! paths, patterns, matchers); the result is `Send + Sync` and shared by every core. Per
//! stream, a caller makes a [`LabelsBuilder`] from the stream's labels; per line it calls
//! [`LabelsBuilder::reset`] with the line's structured metadata, then [`Pipeline::run`], then
//! reads the labels (usually [`LabelsBuilder::labels_hash`] first, to build a [`Labels`] once
//! per output series).
//!
//! Each stage lives in its own file behind the [`Stage`] trait. Semantics are Loki 3.x's,
//! quirks included, because users compare answers with Loki's:
//! - line filters written after a parser move before it, up to the previous label filter,
//!   `line_format` or `unpack` (Loki's `reorderStages`); so a line filter after `decolorize`
//!   sees the coloured line, as in Loki;
//! - a label filter on a single label also runs inside the parsers as soon as they set that
//!   label, dropping the line early (Loki's parser hints);
//! - the first parser to extract a name on a line wins it; later parsers skip it.
//!
//! Deliberate differences, all bounds on untrusted input: `| json` follows objects at most
//! 64 levels deep (`json::JSON_DEPTH_MAX`; deeper ones give no labels), and a `json` path has
//! at most 64 elements (`json_path::JSON_PATH_ELEMENTS_MAX`). Regexes use the `regex` crate
//! (see `crate::logql` for how it differs from Go's).

mod decolorize;
mod drop;
mod format;
mod json;
mod json_path;
pub(crate) mod json_scan;
mod keep;
pub(crate) mod keys;
mod label_filter;
mod label_format;
mod labels;
mod line_filter;
mod logfmt;
pub(crate) mod logfmt_decoder;
mod pattern;
mod prefilter;
mod regexp;
mod text;
mod unpack;

use std::borrow::Cow;
use std::fmt;

pub(crate) use labels::DUPLICATE_SUFFIX;
pub use labels::{
    CategorizedLabels, ERROR_DETAILS_LABEL, ERROR_LABEL, LabelCategory, LabelsBuilder,
    PRESERVE_ERROR_LABEL,
};

use crate::logql::{self, LabelFormatSource, ParserStage};
use crate::model::{Labels, TimestampNs};
use crate::query::QueryError;
pub(crate) use label_filter::humanized_bytes_unit;
use label_filter::{LabelFilter, LabelFilterStage};

/// `__error__` of a line the `json` or `unpack` stage could not read.
pub const JSON_PARSER_ERR: &str = "JSONParserErr";
/// `__error__` of a line `logfmt --strict` could not read.
pub const LOGFMT_PARSER_ERR: &str = "LogfmtParserErr";
/// `__error__` of a line whose label a label filter could not convert.
pub const LABEL_FILTER_ERR: &str = "LabelFilterErr";
/// `__error__` of a line a `line_format` or `label_format` template failed on.
pub const TEMPLATE_FORMAT_ERR: &str = "TemplateFormatErr";
/// `__error__` of a line whose unwrapped value a metric query could not convert.
pub const SAMPLE_EXTRACTION_ERR: &str = "SampleExtractionErr";

/// One step of a pipeline (Loki's `log.Stage`): reads and may change the line and its
/// labels, or drops the line (`None`). A stage returns the line it was given when it does not
/// change it, so that an unchanged line is never copied. Stages are immutable and shared by
/// every core; what they reuse from line to line lives in the [`LabelsBuilder`].
pub(crate) trait Stage: Send + Sync + fmt::Debug {
    fn process<'a>(
        &self,
        ts: TimestampNs,
        line: Cow<'a, str>,
        lbs: &mut LabelsBuilder,
        hints: &ParserHints,
    ) -> Option<Cow<'a, str>>;
}

/// The label filters of the query that parsers run as soon as they set the filtered label
/// (Loki's `ParserHint.ShouldContinueParsingLine`): the filters that read a single label,
/// whatever their place in the pipeline.
///
/// A lean pipeline (see [`Pipeline::lean`]) also says which labels its parsers store.
#[derive(Debug, Default)]
pub(crate) struct ParserHints {
    filters: Vec<(String, LabelFilter)>,
    /// When set, the only labels parsers store (sorted); the rest are scanned but not kept.
    wanted: Option<Vec<String>>,
    /// The lengths a sanitised key may have to become a wanted name, as is or renamed
    /// `<key>_extracted` ([`ParserHints::may_want_key`]).
    wanted_key_lengths: Vec<usize>,
    /// Loki's required labels (its `Hints.requiredLabels`), when a metric leaf keeps only
    /// named labels: once a line has them all as parsed labels, `json` and `logfmt` stop
    /// reading it, and so never see (nor report) what is broken further on.
    required: Vec<String>,
    /// Loki's `noLabels` without required labels: the leaf keeps no label and reads none,
    /// so `json` and `logfmt` do not read the line at all.
    no_labels: bool,
}

impl ParserHints {
    /// Whether a parser may store the label of this raw key, before sanitising it: false
    /// only when the key's sanitised name can be no wanted name by its length. A plain
    /// ASCII key without surrounding blanks keeps its length, plus one for the `_` before
    /// a leading digit ([`keys::sanitize_label_key`]); other keys are sanitised first.
    #[inline]
    pub fn may_want_key(&self, key: &[u8]) -> bool {
        if self.wanted.is_none() || !key.is_ascii() {
            return true;
        }
        let (Some(first), Some(last)) = (key.first(), key.last()) else {
            return false;
        };
        if char::from(*first).is_whitespace() || char::from(*last).is_whitespace() {
            return true;
        }
        let len = key.len() + usize::from(first.is_ascii_digit());
        self.wanted_key_lengths.contains(&len)
    }

    /// Whether a parser stores a label of this name (see [`Pipeline::lean`]).
    #[inline]
    pub fn wants(&self, name: &str) -> bool {
        match &self.wanted {
            None => true,
            Some(names) => names.iter().any(|n| n == name),
        }
    }

    /// Whether the line's parsed labels hold every required label (Loki's
    /// `AllRequiredExtracted`): a parser stops reading the line.
    #[inline]
    pub fn all_required_extracted(&self, lbs: &LabelsBuilder) -> bool {
        !self.required.is_empty() && self.required.iter().all(|n| lbs.extracted(n))
    }

    /// Whether `json` and `logfmt` skip the line (Loki's `NoLabels`): the leaf needs none of
    /// its labels, or earlier parsers found them all.
    #[inline]
    pub fn skips_parsers(&self, lbs: &LabelsBuilder) -> bool {
        self.no_labels || self.all_required_extracted(lbs)
    }

    /// Whether `json` follows a nested object whose labels start with `prefix` (Loki's
    /// `ShouldExtractPrefix`): always, unless only required labels are read.
    #[inline]
    pub fn should_extract_prefix(&self, prefix: &str) -> bool {
        self.required.is_empty() || self.required.iter().any(|n| n.starts_with(prefix))
    }

    /// Whether a parser that just set `name` may go on with the line: false when the first
    /// filter on `name` fails.
    pub fn should_continue(&self, name: &str, lbs: &mut LabelsBuilder) -> bool {
        match self.filters.iter().find(|(n, _)| n == name) {
            Some((_, filter)) => filter.test(lbs),
            None => true,
        }
    }
}

/// Sets the error and, when there are any, its details (Loki's `addErrLabel`).
pub(crate) fn set_error_label(lbs: &mut LabelsBuilder, err: &str, details: Option<&str>) {
    lbs.set_error(err);
    if let Some(details) = details {
        lbs.set_error_details(details);
    }
}

/// A compiled log pipeline, shared by all cores.
#[derive(Debug, Default)]
pub struct Pipeline {
    stages: Vec<Box<dyn Stage>>,
    hints: ParserHints,
    /// Every label name its label filter stages read.
    filter_names: Vec<String>,
    /// Lines its string label filters drop whatever the stages do (see [`prefilter`]).
    prefilter: prefilter::LinePrefilter,
    /// What its `name="value"` filters let the metadata index skip (see [`crate::query::pairs`]).
    pairs: std::sync::Arc<crate::query::pairs::PairQuery>,
}

impl Pipeline {
    /// Compiles the stages of a log query. Fails with a 400 error on a stage Loki refuses
    /// when it builds the pipeline (an invalid `json` path, a pattern without captures, a
    /// regex without named groups, an invalid ip range...).
    pub fn new(stages: &[logql::Stage]) -> Result<Pipeline, QueryError> {
        let mut pipeline = Pipeline::default();
        let stages = reorder_stages(stages);
        pipeline.prefilter = prefilter::LinePrefilter::of(&stages);
        pipeline.pairs = std::sync::Arc::new(crate::query::pairs::PairQuery::of(&stages));
        for stage in stages {
            if let logql::Stage::LabelFilter(expr) = stage {
                let filter = LabelFilter::new(expr).map_err(QueryError::BadRequest)?;
                filter.label_names(&mut pipeline.filter_names);
                if let Some(name) = filter.single_label() {
                    pipeline
                        .hints
                        .filters
                        .push((name.to_owned(), filter.clone()));
                }
                pipeline.stages.push(Box::new(LabelFilterStage { filter }));
                continue;
            }
            pipeline
                .stages
                .push(compile_stage(stage).map_err(QueryError::BadRequest)?);
        }
        Ok(pipeline)
    }

    /// The pipeline for a caller that reads only the labels `wanted` once it has run (a
    /// metric leaf that groups by them, unwraps one, or filters on them after `unwrap`),
    /// and only while the line has no error: its `json` and `logfmt` parsers (without
    /// parameters) scan every pair, and so set the same errors and drop the same lines,
    /// but store only the wanted labels and those the pipeline's own label filters read.
    /// `None` when it would not be lean: a stage that reads or rewrites labels wholesale
    /// (`line_format`, `label_format`, `keep`, `drop`, `regexp`, `pattern`, `unpack`, parsers
    /// with parameters), or no parser. A line whose labels end with an error must be run
    /// again through the full pipeline: then every label is part of its series.
    ///
    /// As in Loki, the parsers also stop reading a line once it has every label the leaf
    /// reads (see [`ParserHints::all_required_extracted`]); when `no_labels` (the leaf's
    /// output keeps no label) and nothing is read, they do not read it at all. A line's
    /// error beyond that point is then never seen, as in Loki.
    pub fn lean(
        stages: &[logql::Stage],
        wanted: &[String],
        no_labels: bool,
    ) -> Result<Option<Pipeline>, QueryError> {
        let mut parsers = 0;
        for stage in stages {
            match stage {
                logql::Stage::LineFilter(_) | logql::Stage::LabelFilter(_) => {}
                logql::Stage::Parser(ParserStage::Json(params)) if params.is_empty() => {
                    parsers += 1
                }
                logql::Stage::Parser(ParserStage::Logfmt { params, .. }) if params.is_empty() => {
                    parsers += 1
                }
                _ => return Ok(None),
            }
        }
        if parsers == 0 {
            return Ok(None);
        }
        let mut pipeline = Pipeline::new(stages)?;
        let mut names: Vec<String> = wanted.to_vec();
        pipeline.label_names(&mut names);
        names.sort();
        names.dedup();
        let mut lengths: Vec<usize> = names
            .iter()
            .flat_map(|n| {
                let renamed = n.strip_suffix(DUPLICATE_SUFFIX).map(str::len);
                [Some(n.len()), renamed].into_iter().flatten()
            })
            .collect();
        lengths.sort_unstable();
        lengths.dedup();
        pipeline.hints.wanted_key_lengths = lengths;
        // Loki's `appendLabelHints`: a name `<x>_extracted` requires `<x>` too.
        let mut required = names.clone();
        for n in &names {
            if let Some(base) = n.strip_suffix(DUPLICATE_SUFFIX) {
                required.push(base.to_string());
            }
        }
        required.sort();
        required.dedup();
        pipeline.hints.no_labels = no_labels && required.is_empty();
        pipeline.hints.required = required;
        pipeline.hints.wanted = Some(names);
        Ok(Some(pipeline))
    }

    /// Adds every label name its label filter stages read to `out`.
    pub fn label_names(&self, out: &mut Vec<String>) {
        out.extend(self.filter_names.iter().cloned());
    }

    /// What the pipeline's `name="value"` filters let the metadata index skip.
    pub fn pair_query(&self) -> std::sync::Arc<crate::query::pairs::PairQuery> {
        self.pairs.clone()
    }

    /// Whether the pipeline drops every line of a stream with these labels whose structured
    /// metadata has no name for which [`Pipeline::reads_metadata_for_verdict`] holds: a
    /// string label filter fails on the stream's own value (see [`prefilter`]).
    pub fn rules_out_stream(&self, stream: &Labels) -> bool {
        self.prefilter.rules_out_stream(stream)
    }

    /// Whether structured metadata named `key` may change [`Pipeline::rules_out_stream`]'s
    /// verdict for a line.
    pub fn reads_metadata_for_verdict(&self, key: &str) -> bool {
        self.prefilter.reads_metadata(key)
    }

    /// Whether there are no stages: the line passes unchanged, and its labels are the
    /// stream's plus its structured metadata.
    pub fn is_noop(&self) -> bool {
        self.stages.is_empty()
    }

    /// Runs every stage on one line, whose labels `lbs` holds (reset for this line with its
    /// structured metadata). `None`: the line is filtered out.
    pub fn run<'a>(
        &self,
        ts: TimestampNs,
        line: &'a str,
        lbs: &mut LabelsBuilder,
    ) -> Option<Cow<'a, str>> {
        if self.prefilter.rules_out(line, lbs) {
            return None;
        }
        let mut line = Cow::Borrowed(line);
        for stage in &self.stages {
            line = stage.process(ts, line, lbs, &self.hints)?;
        }
        Some(line)
    }

    /// Convenience for one-off lines (tests, tail): a builder for `stream`, reset with
    /// `metadata`, run; the final line and labels.
    pub fn run_once<'a, 'm>(
        &self,
        ts: TimestampNs,
        line: &'a str,
        stream: &Labels,
        metadata: impl IntoIterator<Item = (&'m str, &'m str)>,
    ) -> Option<(Cow<'a, str>, Labels)> {
        let mut lbs = LabelsBuilder::new(stream);
        lbs.reset(metadata);
        let line = self.run(ts, line, &mut lbs)?;
        Some((line, lbs.labels()))
    }
}

/// Moves line filters as early as Loki does (its `reorderStages`): before the parsers and
/// label stages that precede them, but never before a label filter, a `line_format` or an
/// `unpack` (which change what a later filter sees or is meant to see).
fn reorder_stages(stages: &[logql::Stage]) -> Vec<&logql::Stage> {
    let mut result = Vec::with_capacity(stages.len());
    let mut line_filters = Vec::new();
    let mut others = Vec::new();
    let flush = |result: &mut Vec<_>, line_filters: &mut Vec<_>, others: &mut Vec<_>| {
        result.append(line_filters);
        result.append(others);
    };
    for stage in stages {
        match stage {
            logql::Stage::LabelFilter(_) => {
                flush(&mut result, &mut line_filters, &mut others);
                result.push(stage);
            }
            logql::Stage::LineFilter(_) => line_filters.push(stage),
            logql::Stage::LineFormat(_) | logql::Stage::Parser(ParserStage::Unpack) => {
                others.push(stage);
                flush(&mut result, &mut line_filters, &mut others);
            }
            _ => others.push(stage),
        }
    }
    flush(&mut result, &mut line_filters, &mut others);
    result
}

/// Compiles one stage other than a label filter.
fn compile_stage(stage: &logql::Stage) -> Result<Box<dyn Stage>, String> {
    Ok(match stage {
        logql::Stage::LineFilter(filter) => Box::new(line_filter::LineFilterStage {
            filter: filter.clone(),
        }),
        logql::Stage::Parser(ParserStage::Json(params)) if params.is_empty() => {
            Box::new(json::JsonParser)
        }
        logql::Stage::Parser(ParserStage::Json(params)) => {
            Box::new(json::JsonExpressionParser::new(params)?)
        }
        logql::Stage::Parser(ParserStage::Logfmt {
            strict,
            keep_empty,
            params,
        }) => {
            if params.is_empty() {
                Box::new(logfmt::LogfmtParser {
                    strict: *strict,
                    keep_empty: *keep_empty,
                })
            } else {
                Box::new(logfmt::LogfmtExpressionParser::new(params, *strict)?)
            }
        }
        logql::Stage::Parser(ParserStage::Regexp(re)) => Box::new(regexp::RegexpParser::new(re)?),
        logql::Stage::Parser(ParserStage::Pattern(p)) => Box::new(pattern::PatternParser::new(p)?),
        logql::Stage::Parser(ParserStage::Unpack) => Box::new(unpack::UnpackParser),
        logql::Stage::Decolorize => Box::new(decolorize::Decolorize),
        logql::Stage::Drop(specs) => Box::new(drop::DropLabels {
            specs: specs.clone(),
        }),
        logql::Stage::Keep(specs) => Box::new(keep::KeepLabels {
            specs: specs.clone(),
        }),
        logql::Stage::LabelFilter(expr) => Box::new(LabelFilterStage {
            filter: LabelFilter::new(expr)?,
        }),
        logql::Stage::LineFormat(text) => Box::new(format::LineFormat::new(text)?),
        logql::Stage::LabelFormat(items)
            if items
                .iter()
                .all(|i| matches!(i.src, LabelFormatSource::Rename(_))) =>
        {
            label_format::validate(items)?;
            let renames = items
                .iter()
                .filter_map(|item| match &item.src {
                    LabelFormatSource::Rename(src) => Some((item.dst.clone(), src.clone())),
                    LabelFormatSource::Template(_) => None,
                })
                .collect();
            Box::new(label_format::LabelRename { renames })
        }
        logql::Stage::LabelFormat(items) => Box::new(format::LabelFormat::new(items)?),
    })
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod conformance_tests;

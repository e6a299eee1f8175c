//! The `label_format` stage: `| label_format dst=src` renames a label (Loki's
//! `LabelsFormatter`, pkg/logql/log/fmt.go). Template items (`dst="{{ .a }}"`) run in the
//! template engine, wired in `super::compile_stage`.
//!
//! Which question it answers: "what are the labels after renaming?" A rename takes the
//! current value of `src` (any category), sets it as a parsed label `dst` and deletes `src`;
//! when `src` is absent nothing happens. Items run in the order written; a stage may not
//! name the same destination twice nor write `__error__`.
//!
//! For the template items, Loki's rules that a combined stage must keep: renames and
//! templates run in the order written, in one stage; every template of the stage sees the
//! labels as they were when the stage's first template ran (Loki builds that map once per
//! line and stage, error labels included), plus the line and the timestamp; a template
//! result is set as a parsed label; a failing template sets `__error__=TemplateFormatErr`
//! and its message in `__error_details__`, and the stage goes on with the next item.

use std::borrow::Cow;

use super::labels::{ERROR_LABEL, LabelCategory, LabelsBuilder};
use super::{ParserHints, Stage};
use crate::logql::LabelFormatItem;
use crate::model::TimestampNs;

/// Loki's checks on a `label_format` stage, template items included.
pub(crate) fn validate(items: &[LabelFormatItem]) -> Result<(), String> {
    for (i, item) in items.iter().enumerate() {
        if item.dst == ERROR_LABEL {
            return Err(format!("{ERROR_LABEL} cannot be formatted"));
        }
        if items[..i].iter().any(|earlier| earlier.dst == item.dst) {
            return Err(format!(
                "multiple label name '{}' not allowed in a single format operation",
                item.dst
            ));
        }
    }
    Ok(())
}

/// A stage of renames only.
#[derive(Debug)]
pub(crate) struct LabelRename {
    /// `(dst, src)` in the order written.
    pub renames: Vec<(String, String)>,
}

impl Stage for LabelRename {
    fn process<'a>(
        &self,
        _ts: TimestampNs,
        line: Cow<'a, str>,
        lbs: &mut LabelsBuilder,
        _hints: &ParserHints,
    ) -> Option<Cow<'a, str>> {
        let mut value = std::mem::take(&mut lbs.scratch.value);
        for (dst, src) in &self.renames {
            let Some(v) = lbs.get(src) else { continue };
            value.clear();
            value.push_str(v);
            lbs.set(LabelCategory::Parsed, dst, &value);
            // As in Loki, also when dst == src: the label is then gone.
            lbs.del(src);
        }
        lbs.scratch.value = value;
        Some(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logql::LabelFormatSource;
    use crate::model::Labels;

    fn rename(dst: &str, src: &str) -> LabelFormatItem {
        LabelFormatItem {
            dst: dst.into(),
            src: LabelFormatSource::Rename(src.into()),
        }
    }

    #[test]
    fn renames_in_order() {
        let stage = LabelRename {
            renames: vec![("baz".into(), "foo".into()), ("bar".into(), "baz".into())],
        };
        let mut lbs = LabelsBuilder::new(&Labels::from_pairs([("foo", "blip"), ("bar", "blop")]));
        lbs.reset([]);
        stage.process(0, Cow::Borrowed("l"), &mut lbs, &ParserHints::default());
        assert_eq!(lbs.labels().to_string(), r#"{bar="blip"}"#);
    }

    #[test]
    fn validation_follows_loki() {
        assert!(validate(&[rename("a", "b"), rename("c", "b")]).is_ok());
        assert!(validate(&[rename("a", "b"), rename("a", "c")]).is_err());
        assert!(validate(&[rename(ERROR_LABEL, "b")]).is_err());
    }
}

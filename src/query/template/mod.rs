//! Go's `text/template` as LogQL's `line_format` and `label_format` use it, with Loki's
//! function set.
//!
//! Which question it answers: "what does this Loki template produce for this log line?"
//! A [`Template`] is parsed once per query (Loki refuses the query when parsing fails) and
//! rendered per line against [`TemplateData`]: the line's labels are the template's data
//! (`.name`, `range $k, $v := .`; a missing label is the empty string, as Loki's
//! `missingkey=zero` on a `map[string]string` gives), `__line__` is the line and
//! `__timestamp__` its time. A render error is what Loki reports in `__error_details__`
//! with `__error__=TemplateFormatErr`; then `line_format` keeps the line unchanged and
//! `label_format` leaves that label alone (see [`TemplateError`]).
//!
//! The parts: `lexer` and `parser` (Go's `text/template/parse`), `exec` (Go's `exec.go`),
//! `funcs` (Go's builtins, Loki's functions and the sprig functions Loki copies), `value`
//! (the dynamic values standing in for `reflect.Value`), `gofmt` and `strconv` (Go's
//! printing and parsing of values), `gotime` and `zoneinfo` (Go's time layouts and time
//! zones). Templates are untrusted: parsing bounds nesting, and every render is bounded in
//! steps, nesting, output and the bytes its functions read and build, erroring rather than
//! growing.

mod exec;
mod funcs;
mod gofmt;
mod gotime;
mod lexer;
mod parser;
mod strconv;
mod value;
mod zoneinfo;

#[cfg(test)]
mod conformance_tests;
#[cfg(test)]
mod tests;

use std::fmt;

use crate::logql::{REGEX_DFA_BYTES_MAX, REGEX_SIZE_BYTES_MAX};

/// Go's `strconv.Quote`, for callers outside templates that must print a string as Go does
/// (label sets in Loki's text form).
pub(crate) fn go_quote(s: &str) -> String {
    gofmt::quote(s)
}

/// The deepest nesting of control structures and parentheses a template may have. Go allows
/// ten thousand parentheses; real templates nest a handful of levels, and the parser and the
/// executor are recursive.
pub const NESTING_DEPTH_MAX: usize = 64;

/// The deepest run-time nesting: control structures, parenthesised pipelines and
/// `{{template}}` calls together. It stops recursive templates (`{{define "a"}}{{template
/// "a"}}{{end}}`), which Go stops only at a depth of 100,000.
pub const EXEC_DEPTH_MAX: usize = 100;

/// The most steps (nodes walked, commands evaluated, loop iterations) of one render. A
/// template renders once per line; this bounds `range` over large values.
pub const EXEC_STEPS_MAX: usize = 100_000;

/// The longest output of one render (Loki's line size limits are in this range). A longer
/// result is an error, reported like Loki's template errors.
pub const OUTPUT_BYTES_MAX: usize = 1024 * 1024;

/// The most bytes the functions of one render may read and build in total: `repeat`,
/// `printf` or `replace` into variables that are never printed, `contains` or `fromJson` on
/// a long line inside a loop.
pub const RENDER_WORK_BYTES_MAX: usize = 64 * OUTPUT_BYTES_MAX;

/// What a template reads from the line being rendered.
pub trait TemplateData {
    /// The value of label `name` (stream labels, structured metadata, parsed labels).
    fn label(&self, name: &str) -> Option<&str>;
    /// Every label, for `range $k, $v := .`, `len .` and printing `.` (order does not
    /// matter; Go iterates by sorted name).
    fn for_each_label(&self, f: &mut dyn FnMut(&str, &str));
    /// The log line: `__line__`.
    fn line(&self) -> &str;
    /// The line's timestamp in nanoseconds since the Unix epoch: `__timestamp__`.
    fn timestamp_ns(&self) -> i64;
}

/// The value of a variable declared before a template (see [`Template::parse_with_vars`]).
pub enum TemplateVar<'a> {
    /// A label map, as the template's data is: `$labels.name`.
    Labels(&'a dyn TemplateData),
    /// A `float64`: `$value`.
    Float(f64),
    Str(&'a str),
}

/// What kind of failure a [`TemplateError`] is, and so what the caller does with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TemplateErrorKind {
    /// The template is invalid: Loki refuses the query (`invalid line template: ...` for
    /// `line_format`, `invalid template for label 'x': ...` for `label_format`).
    Parse,
    /// Rendering failed: Loki sets `__error__=TemplateFormatErr` and `__error_details__` to
    /// the message; `line_format` keeps the original line, `label_format` skips the label.
    Exec,
    /// Rendering exceeded one of this module's bounds (output, steps, work of functions).
    /// Loki has no such bounds; the caller reports it as [`TemplateErrorKind::Exec`].
    Limit,
}

/// A parse or render failure, with Go's message (`template: line:1:2: executing "line" at
/// <replace>: wrong number of args for replace: want 3 got 2`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateError {
    kind: TemplateErrorKind,
    message: String,
}

impl TemplateError {
    pub(crate) fn parse(message: String) -> TemplateError {
        TemplateError {
            kind: TemplateErrorKind::Parse,
            message,
        }
    }

    pub(crate) fn exec(message: String) -> TemplateError {
        TemplateError {
            kind: TemplateErrorKind::Exec,
            message,
        }
    }

    pub(crate) fn limit(message: String) -> TemplateError {
        TemplateError {
            kind: TemplateErrorKind::Limit,
            message,
        }
    }

    pub fn kind(&self) -> TemplateErrorKind {
        self.kind
    }

    /// Go's error text: what Loki puts in `__error_details__` or in its 400 response.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for TemplateError {}

/// A parsed template, shared by every line and every core that renders it.
#[derive(Debug)]
pub struct Template {
    tree: parser::Tree,
    text: String,
    constant: Option<String>,
    simple_field: Option<String>,
}

impl Template {
    /// Parses a `line_format` template (named `line` in error messages, as in Loki).
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        Template::parse_named("line", text)
    }

    /// Parses a template with the name its error messages use: Loki names `line_format`'s
    /// template `line` and `label_format`'s templates `label`.
    pub fn parse_named(name: &str, text: &str) -> Result<Template, TemplateError> {
        Template::parse_with_vars(name, text, &[])
    }

    /// Parses a template that may use the variables `vars` (each with its `$`) besides the
    /// ones it declares: [`Template::render_with_vars`] gives them their values.
    pub fn parse_with_vars(
        name: &str,
        text: &str,
        vars: &[&str],
    ) -> Result<Template, TemplateError> {
        let tree = parser::parse_with_vars(name, text, vars)?;
        let constant = tree
            .root
            .iter()
            .map(|n| match n {
                parser::Node::Text(t) => Some(t.as_str()),
                _ => None,
            })
            .collect::<Option<String>>();
        let simple_field = match tree.root.as_slice() {
            [parser::Node::Action(a)] if a.pipe.decl.is_empty() && a.pipe.cmds.len() == 1 => {
                match a.pipe.cmds[0].args.as_slice() {
                    [parser::Arg::Field { ident, .. }] if ident.len() == 1 => {
                        Some(ident[0].clone())
                    }
                    _ => None,
                }
            }
            _ => None,
        };
        Ok(Template {
            tree,
            text: text.to_string(),
            constant,
            simple_field,
        })
    }

    /// Renders the template for one line, appending to `out`. On error `out` is left as it
    /// was (Go would have written part of the output; Loki discards it).
    pub fn render(&self, data: &dyn TemplateData, out: &mut String) -> Result<(), TemplateError> {
        if let Some(c) = &self.constant {
            out.push_str(c);
            return Ok(());
        }
        let start = out.len();
        let r = exec::execute(&self.tree, &self.text, data, out);
        if r.is_err() {
            out.truncate(start);
        }
        r
    }

    /// Renders with values for the variables the template was parsed with
    /// ([`Template::parse_with_vars`]); a variable without a value is Go's nil.
    pub fn render_with_vars(
        &self,
        data: &dyn TemplateData,
        vars: &[(&str, TemplateVar<'_>)],
        out: &mut String,
    ) -> Result<(), TemplateError> {
        if let Some(c) = &self.constant {
            out.push_str(c);
            return Ok(());
        }
        let start = out.len();
        let r = exec::execute_with_vars(&self.tree, &self.text, data, vars, out);
        if r.is_err() {
            out.truncate(start);
        }
        r
    }

    /// The output of a template without actions (its text), which needs no rendering.
    pub fn is_constant(&self) -> Option<&str> {
        self.constant.as_deref()
    }

    /// The label of a template that is exactly `{{.name}}`: its output is that label's value,
    /// or the empty string without it (Loki's fast path for `line_format "{{.message}}"`).
    pub fn simple_field(&self) -> Option<&str> {
        self.simple_field.as_deref()
    }
}

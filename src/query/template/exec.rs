//! Template execution: Go's `text/template/exec.go` over the syntax tree, with the data of
//! one log line.
//!
//! Which question it answers: "what text does this template produce for this line, or
//! which error does Go report?" Variable scoping, `if`/`with`/`range` (with `break`,
//! `continue` and `else`), pipelines feeding the previous result as the last argument,
//! Go's run-time type checks of function arguments, `missingkey=zero` field access on the
//! labels, `{{template}}` calls, and Go's error messages with their
//! `template: line:1:2: executing "line" at <node>:` prefix. Every render is bounded in
//! steps, nesting, output and the bytes its functions read and build.
//!
//! Function and method calls, with their argument checks, are in `call`.

use std::rc::Rc;

use super::funcs::{self, CallError, Env, FuncId, Ty};
use super::gofmt::{self, quote};
use super::gotime::{Location, Time};
use super::parser::{Arg, Branch, Command, List, Node, Number, Pipe, TemplateCall, Tree, Variable};
use super::value::{Labels, Text, Value};
use super::{
    EXEC_DEPTH_MAX, EXEC_STEPS_MAX, OUTPUT_BYTES_MAX, RENDER_WORK_BYTES_MAX, TemplateData,
    TemplateError, TemplateVar,
};

mod call;
use call::{Callee, Method};

/// How a list of nodes ended: normally, or by `{{break}}`/`{{continue}}`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Flow {
    Normal,
    Break,
    Continue,
}

/// The node being evaluated, for error messages (Go's `state.node`).
#[derive(Clone, Copy)]
enum At<'t> {
    None,
    Node(&'t Node),
    Pipe(&'t Pipe),
    Command(&'t Command),
    Arg(&'t Arg),
    Var(&'t Variable),
    Template(&'t TemplateCall),
}

impl At<'_> {
    fn pos(&self) -> usize {
        match self {
            At::None => 0,
            At::Node(n) => match n {
                Node::Text(_) => 0,
                Node::Action(a) => a.pos,
                Node::If(b) | Node::Range(b) | Node::With(b) => b.pos,
                Node::Template(t) => t.pos,
                Node::Break { pos } | Node::Continue { pos } => *pos,
            },
            At::Pipe(p) => p.pos,
            At::Command(c) => c.pos,
            At::Arg(a) => a.pos(),
            At::Var(v) => v.pos,
            At::Template(t) => t.pos,
        }
    }

    fn context(&self) -> String {
        match self {
            At::None => String::new(),
            At::Node(n) => n.to_string(),
            At::Pipe(p) => p.to_string(),
            At::Command(c) => c.to_string(),
            At::Arg(a) => a.to_string(),
            At::Var(v) => v.to_string(),
            At::Template(t) => t.to_string(),
        }
    }
}

type EResult<T> = Result<T, TemplateError>;

pub(crate) struct State<'a, 'o> {
    tree: &'a Tree,
    text: &'a str,
    /// The name of the template executing (a `{{define}}`d one inside `{{template}}`).
    name: &'a str,
    vars: Vec<(&'a str, Value<'a>)>,
    node: At<'a>,
    out: &'o mut String,
    out_start: usize,
    env: Env<'a>,
    steps: usize,
    depth: usize,
}

/// Renders `tree` (parsed from `text`) for `data`, appending to `out`.
pub(crate) fn execute(
    tree: &Tree,
    text: &str,
    data: &dyn TemplateData,
    out: &mut String,
) -> EResult<()> {
    let labels = Labels::new(data);
    run(tree, text, &labels, &[], out)
}

/// Renders `tree` with variables declared before it (Prometheus' alert templates see
/// `$labels` and `$value`, which it declares in a header of its own).
pub(crate) fn execute_with_vars(
    tree: &Tree,
    text: &str,
    data: &dyn TemplateData,
    vars: &[(&str, TemplateVar<'_>)],
    out: &mut String,
) -> EResult<()> {
    let labels = Labels::new(data);
    let label_sets: Vec<Labels<'_>> = vars
        .iter()
        .filter_map(|(_, v)| match v {
            TemplateVar::Labels(d) => Some(Labels::new(*d)),
            _ => None,
        })
        .collect();
    let mut sets = label_sets.iter();
    let mut values = Vec::with_capacity(vars.len());
    for (name, v) in vars {
        let value = match v {
            TemplateVar::Labels(_) => match sets.next() {
                Some(l) => Value::Labels(l),
                None => Value::Nil,
            },
            TemplateVar::Float(f) => Value::Float(*f),
            TemplateVar::Str(s) => Value::Str(Text::Shared(Rc::from(*s))),
        };
        values.push((*name, value));
    }
    run(tree, text, &labels, &values, out)
}

/// The render proper: `'a` is the life of `labels`, which the values may point to.
fn run<'a>(
    tree: &'a Tree,
    text: &'a str,
    labels: &'a Labels<'a>,
    extra_vars: &[(&'a str, Value<'a>)],
    out: &mut String,
) -> EResult<()> {
    let data = labels.data;
    let dot = Value::Labels(labels);
    let out_start = out.len();
    let mut vars = vec![("$", dot.clone())];
    vars.extend(extra_vars.iter().cloned());
    let mut state = State {
        tree,
        text,
        name: &tree.name,
        vars,
        node: At::None,
        out,
        out_start,
        env: Env {
            data,
            bytes_left: RENDER_WORK_BYTES_MAX,
            string_max: OUTPUT_BYTES_MAX,
        },
        steps: 0,
        depth: 0,
    };
    state.walk_list(&dot, &tree.root).map(|_| ())
}

impl<'a> State<'a, '_> {
    fn at(&mut self, node: At<'a>) {
        self.node = node;
    }

    /// Go's `state.errorf`: the message with the template's name and the current node.
    fn errorf(&self, msg: impl std::fmt::Display) -> TemplateError {
        let name = &self.tree.name;
        if let At::None = self.node {
            return TemplateError::exec(format!("template: {name}: {msg}"));
        }
        let pos = self.node.pos().min(self.text.len());
        let before = self.text.get(..pos).unwrap_or("");
        let line = 1 + before.matches('\n').count();
        let col = match before.rfind('\n') {
            Some(i) => pos - (i + 1),
            None => pos,
        };
        TemplateError::exec(format!(
            "template: {name}:{line}:{col}: executing {} at <{}>: {msg}",
            quote(self.name),
            self.node.context()
        ))
    }

    fn limit(&self, msg: impl std::fmt::Display) -> TemplateError {
        TemplateError::limit(format!("template: {}: {msg}", self.tree.name))
    }

    fn step(&mut self) -> EResult<()> {
        self.steps += 1;
        if self.steps > EXEC_STEPS_MAX {
            return Err(self.limit(format!("execution exceeds {EXEC_STEPS_MAX} steps")));
        }
        Ok(())
    }

    fn enter(&mut self) -> EResult<()> {
        self.depth += 1;
        if self.depth > EXEC_DEPTH_MAX {
            return Err(self.errorf(format!(
                "exceeded maximum template depth ({EXEC_DEPTH_MAX})"
            )));
        }
        Ok(())
    }

    fn write(&mut self, s: &str) -> EResult<()> {
        if self.out.len() - self.out_start + s.len() > OUTPUT_BYTES_MAX {
            return Err(self.limit(format!("output exceeds {OUTPUT_BYTES_MAX} bytes")));
        }
        self.out.push_str(s);
        Ok(())
    }

    fn walk_list(&mut self, dot: &Value<'a>, list: &'a List) -> EResult<Flow> {
        for node in list {
            let flow = self.walk(dot, node)?;
            if flow != Flow::Normal {
                return Ok(flow);
            }
        }
        Ok(Flow::Normal)
    }

    fn walk(&mut self, dot: &Value<'a>, node: &'a Node) -> EResult<Flow> {
        self.at(At::Node(node));
        self.step()?;
        match node {
            Node::Text(t) => self.write(t)?,
            Node::Action(a) => {
                let v = self.eval_pipeline(dot, &a.pipe)?;
                if a.pipe.decl.is_empty() {
                    self.at(At::Node(node));
                    self.print_value(&v)?;
                }
            }
            Node::Break { .. } => return Ok(Flow::Break),
            Node::Continue { .. } => return Ok(Flow::Continue),
            Node::If(b) => return self.walk_if_or_with(false, dot, b),
            Node::With(b) => return self.walk_if_or_with(true, dot, b),
            Node::Range(b) => return self.walk_range(dot, node, b),
            Node::Template(t) => self.walk_template(dot, t)?,
        }
        Ok(Flow::Normal)
    }

    fn print_value(&mut self, v: &Value<'a>) -> EResult<()> {
        match v {
            Value::Nil => self.write("<no value>"),
            Value::Str(s) => {
                let s = s.clone();
                self.write(&s)
            }
            v => {
                let s = gofmt::sprint_value(v);
                self.write(&s)
            }
        }
    }

    fn walk_if_or_with(&mut self, with: bool, dot: &Value<'a>, b: &'a Branch) -> EResult<Flow> {
        self.enter()?;
        let mark = self.vars.len();
        let val = self.eval_pipeline(dot, &b.pipe)?;
        let flow = if val.truth() {
            if with {
                self.walk_list(&val, &b.list)?
            } else {
                self.walk_list(dot, &b.list)?
            }
        } else if let Some(e) = &b.else_list {
            self.walk_list(dot, e)?
        } else {
            Flow::Normal
        };
        self.vars.truncate(mark);
        self.depth -= 1;
        Ok(flow)
    }

    fn set_top_var(&mut self, n: usize, v: Value<'a>) {
        let len = self.vars.len();
        if let Some(slot) = len.checked_sub(n).and_then(|i| self.vars.get_mut(i)) {
            slot.1 = v;
        }
    }

    fn set_var(&mut self, name: &str, v: Value<'a>) -> EResult<()> {
        match self.vars.iter_mut().rev().find(|(n, _)| *n == name) {
            Some(slot) => {
                slot.1 = v;
                Ok(())
            }
            None => Err(self.errorf(format!("undefined variable: {name}"))),
        }
    }

    fn var_value(&self, name: &str) -> EResult<Value<'a>> {
        match self.vars.iter().rev().find(|(n, _)| *n == name) {
            Some((_, v)) => Ok(v.clone()),
            None => Err(self.errorf(format!("undefined variable: {name}"))),
        }
    }

    /// One pass of a `range` body; returns whether the loop should stop.
    fn range_iteration(
        &mut self,
        b: &'a Branch,
        mark: usize,
        index: Value<'a>,
        elem: Value<'a>,
    ) -> EResult<bool> {
        self.step()?;
        let decl = &b.pipe.decl;
        if !decl.is_empty() {
            if b.pipe.is_assign {
                let v = if decl.len() > 1 {
                    index.clone()
                } else {
                    elem.clone()
                };
                self.set_var(&decl[0].ident[0], v)?;
            } else {
                self.set_top_var(1, elem.clone());
            }
        }
        if decl.len() > 1 {
            if b.pipe.is_assign {
                self.set_var(&decl[1].ident[0], elem.clone())?;
            } else {
                self.set_top_var(2, index);
            }
        }
        let flow = self.walk_list(&elem, &b.list)?;
        self.vars.truncate(mark);
        Ok(flow == Flow::Break)
    }

    fn walk_range(&mut self, dot: &Value<'a>, node: &'a Node, b: &'a Branch) -> EResult<Flow> {
        self.at(At::Node(node));
        self.enter()?;
        let mark0 = self.vars.len();
        let val = self.eval_pipeline(dot, &b.pipe)?;
        let mark = self.vars.len();
        let mut ran = false;
        match &val {
            Value::Int(_)
            | Value::Int64(_)
            | Value::Uint8(_)
            | Value::Month(_)
            | Value::Weekday(_)
            | Value::Duration(_) => {
                if b.pipe.decl.len() > 1 {
                    return Err(self.errorf(format!(
                        "can't use {} to iterate over more than one variable",
                        gofmt::sprint_value(&val)
                    )));
                }
                let n = match &val {
                    Value::Uint8(u) => i64::from(*u),
                    v => v.int_of().unwrap_or(0),
                };
                for i in 0..n.max(0) {
                    ran = true;
                    let elem = match &val {
                        Value::Int(_) => Value::Int(i),
                        Value::Int64(_) => Value::Int64(i),
                        Value::Uint8(_) => Value::Uint8(i as u8),
                        Value::Month(_) => Value::Month(i),
                        Value::Weekday(_) => Value::Weekday(i),
                        _ => Value::Duration(i),
                    };
                    if self.range_iteration(b, mark, Value::Nil, elem)? {
                        break;
                    }
                }
            }
            Value::List(l) => {
                for (i, e) in l.iter().enumerate() {
                    ran = true;
                    if self.range_iteration(b, mark, Value::Int(i as i64), e.clone())? {
                        break;
                    }
                }
            }
            Value::Map(m) => {
                for (k, v) in m.iter() {
                    ran = true;
                    let key = Value::Str(Text::Shared(k.clone()));
                    if self.range_iteration(b, mark, key, v.clone())? {
                        break;
                    }
                }
            }
            Value::Labels(d) => {
                for (k, v) in d.sorted().iter() {
                    ran = true;
                    let (k, v) = (
                        Value::Str(Text::Shared(k.clone())),
                        Value::Str(Text::Shared(v.clone())),
                    );
                    if self.range_iteration(b, mark, k, v)? {
                        break;
                    }
                }
            }
            Value::Nil => {}
            v => {
                return Err(self.errorf(format!(
                    "range can't iterate over {}",
                    gofmt::sprint_value(v)
                )));
            }
        }
        if !ran && let Some(e) = &b.else_list {
            self.walk_list(dot, e)?;
        }
        self.vars.truncate(mark0);
        self.depth -= 1;
        Ok(Flow::Normal)
    }

    fn walk_template(&mut self, dot: &Value<'a>, t: &'a TemplateCall) -> EResult<()> {
        self.at(At::Template(t));
        let (name, list) = if t.name == self.tree.name {
            (self.tree.name.as_str(), &self.tree.root)
        } else {
            match self.tree.defined.get_key_value(&t.name) {
                Some((n, l)) => (n.as_str(), l),
                None => return Err(self.errorf(format!("template {} not defined", quote(&t.name)))),
            }
        };
        self.enter()?;
        let new_dot = match &t.pipe {
            Some(p) => self.eval_pipeline(dot, p)?,
            None => Value::Nil,
        };
        // No dynamic scoping: the called template sees only `$`.
        let outer_vars = std::mem::replace(&mut self.vars, vec![("$", new_dot.clone())]);
        let outer_name = std::mem::replace(&mut self.name, name);
        let r = self.walk_list(&new_dot, list);
        self.vars = outer_vars;
        self.name = outer_name;
        self.depth -= 1;
        r.map(|_| ())
    }

    fn eval_pipeline(&mut self, dot: &Value<'a>, pipe: &'a Pipe) -> EResult<Value<'a>> {
        self.at(At::Pipe(pipe));
        self.enter()?;
        let mut value: Option<Value<'a>> = None;
        for cmd in &pipe.cmds {
            value = Some(self.eval_command(dot, cmd, value)?);
        }
        let value = value.unwrap_or(Value::Nil);
        for v in &pipe.decl {
            if pipe.is_assign {
                self.set_var(&v.ident[0], value.clone())?;
            } else {
                self.vars.push((&v.ident[0], value.clone()));
            }
        }
        self.depth -= 1;
        Ok(value)
    }

    fn not_a_function(&self, args: &'a [Arg], final_: &Option<Value<'a>>) -> EResult<()> {
        if args.len() > 1 || final_.is_some() {
            return Err(self.errorf(format!("can't give argument to non-function {}", args[0])));
        }
        Ok(())
    }

    fn eval_command(
        &mut self,
        dot: &Value<'a>,
        cmd: &'a Command,
        final_: Option<Value<'a>>,
    ) -> EResult<Value<'a>> {
        self.step()?;
        let first = &cmd.args[0];
        match first {
            Arg::Field { ident, .. } => {
                self.at(At::Arg(first));
                return self.eval_field_chain(dot, dot.clone(), ident, Some(&cmd.args), final_);
            }
            Arg::Chain { .. } => {
                return self.eval_chain_node(dot, first, Some(&cmd.args), final_);
            }
            Arg::Identifier { func, name, .. } => {
                self.at(At::Arg(first));
                return self.eval_call(
                    dot,
                    Callee::Func(*func),
                    At::Command(cmd),
                    name,
                    Some(&cmd.args),
                    final_,
                    cmd.regex.as_deref(),
                );
            }
            Arg::Pipe(p) => {
                self.not_a_function(&cmd.args, &final_)?;
                return self.eval_pipeline(dot, p);
            }
            Arg::Variable(v) => {
                return self.eval_variable_node(dot, v, Some(&cmd.args), final_);
            }
            _ => {}
        }
        self.at(At::Arg(first));
        self.not_a_function(&cmd.args, &final_)?;
        match first {
            Arg::Bool { val, .. } => Ok(Value::Bool(*val)),
            Arg::Dot { .. } => Ok(dot.clone()),
            Arg::Nil { .. } => Err(self.errorf("nil is not a command")),
            Arg::Number(n) => self.ideal_constant(first, n),
            Arg::String { text, .. } => Ok(Value::str(text)),
            _ => Err(self.errorf(format!(
                "can't evaluate command {}",
                quote(&first.to_string())
            ))),
        }
    }

    /// Go's `idealConstant`: a number literal whose type only its syntax can tell.
    fn ideal_constant(&mut self, arg: &'a Arg, n: &Number) -> EResult<Value<'a>> {
        self.at(At::Arg(arg));
        let t = &n.text;
        let is_hex_int = t.len() > 2
            && t.starts_with('0')
            && matches!(t.as_bytes()[1], b'x' | b'X')
            && !t.contains(['p', 'P']);
        let is_rune = t.starts_with('\'');
        if n.is_complex {
            return Ok(Value::Complex(n.complex.0, n.complex.1));
        }
        if n.is_float && !is_hex_int && !is_rune && t.contains(['.', 'e', 'E', 'p', 'P']) {
            return Ok(Value::Float(n.float64));
        }
        if n.is_int {
            return Ok(Value::Int(n.int64));
        }
        if n.is_uint {
            return Err(self.errorf(format!("{t} overflows int")));
        }
        Ok(Value::Nil)
    }

    fn eval_chain_node(
        &mut self,
        dot: &Value<'a>,
        chain: &'a Arg,
        args: Option<&'a [Arg]>,
        final_: Option<Value<'a>>,
    ) -> EResult<Value<'a>> {
        self.at(At::Arg(chain));
        let Arg::Chain { node, field, .. } = chain else {
            return Ok(Value::Nil);
        };
        if let Arg::Nil { .. } = **node {
            return Err(self.errorf(format!("indirection through explicit nil in {chain}")));
        }
        let receiver = self.eval_arg(dot, Ty::Any, node)?;
        self.at(At::Arg(chain));
        self.eval_field_chain(dot, receiver, field, args, final_)
    }

    fn eval_variable_node(
        &mut self,
        dot: &Value<'a>,
        v: &'a Variable,
        args: Option<&'a [Arg]>,
        final_: Option<Value<'a>>,
    ) -> EResult<Value<'a>> {
        self.at(At::Var(v));
        let value = self.var_value(&v.ident[0])?;
        if v.ident.len() == 1 {
            if let Some(args) = args {
                self.not_a_function(args, &final_)?;
            } else if final_.is_some() {
                return Err(self.errorf(format!("can't give argument to non-function {v}")));
            }
            return Ok(value);
        }
        self.eval_field_chain(dot, value, &v.ident[1..], args, final_)
    }

    /// Go's `evalFieldChain`: `.X.Y.Z`, the last one possibly a method with arguments.
    fn eval_field_chain(
        &mut self,
        dot: &Value<'a>,
        mut receiver: Value<'a>,
        ident: &'a [String],
        args: Option<&'a [Arg]>,
        final_: Option<Value<'a>>,
    ) -> EResult<Value<'a>> {
        let n = ident.len();
        for name in &ident[..n.saturating_sub(1)] {
            receiver = self.eval_field(dot, name, None, None, receiver)?;
        }
        match ident.last() {
            Some(name) => self.eval_field(dot, name, args, final_, receiver),
            None => Ok(receiver),
        }
    }

    /// Go's `evalField`: a method of the receiver, or a key of a map.
    fn eval_field(
        &mut self,
        dot: &Value<'a>,
        name: &'a str,
        args: Option<&'a [Arg]>,
        final_: Option<Value<'a>>,
        receiver: Value<'a>,
    ) -> EResult<Value<'a>> {
        if receiver.is_nil() {
            return Ok(Value::Nil);
        }
        if let Some(m) = Method::lookup(&receiver, name) {
            let node = self.node;
            return self.eval_call(
                dot,
                Callee::Method(m, receiver),
                node,
                name,
                args,
                final_,
                None,
            );
        }
        let has_args = args.is_some_and(|a| a.len() > 1) || final_.is_some();
        match &receiver {
            Value::Labels(d) => {
                if has_args {
                    return Err(self.errorf(format!("{name} is not a method but has arguments")));
                }
                Ok(Value::str(d.get(name)))
            }
            Value::Map(m) => {
                if has_args {
                    return Err(self.errorf(format!("{name} is not a method but has arguments")));
                }
                Ok(m.get(name).cloned().unwrap_or(Value::Nil))
            }
            v => Err(self.errorf(format!(
                "can't evaluate field {name} in type {}",
                v.type_name()
            ))),
        }
    }
}

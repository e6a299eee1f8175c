//! The template parser and its syntax tree: Go's `text/template/parse/parse.go` and
//! `node.go`.
//!
//! Which question it answers: "is this template valid, and what does it say?" The grammar,
//! the variable scoping checked at parse time, the function-name check against Loki's
//! function set, and Go's error messages (`template: line:1: function "x" not defined`) are
//! Go's. The nodes are in `tree`.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use super::funcs;
use super::gofmt::quote;
use super::lexer::{Item, ItemType, Lexer};
use super::strconv;
use super::{NESTING_DEPTH_MAX, TemplateError};

mod tree;
pub(crate) use tree::*;

/// What `itemList` stops at, besides nodes: Go's `endNode` and `elseNode`.
enum Item2 {
    Node(Node),
    End,
    Else,
}

/// A parsed template: its own body and the templates it defines (`define`, `block`).
#[derive(Debug)]
pub(crate) struct Tree {
    pub(crate) name: String,
    pub(crate) root: List,
    pub(crate) defined: HashMap<String, List>,
}

/// Go's `IsEmptyTree`: nothing but space (comments are not kept).
fn is_empty_list(list: &List) -> bool {
    list.iter().all(|n| match n {
        Node::Text(t) => t.trim_matches(|c: char| c.is_whitespace()).is_empty(),
        _ => false,
    })
}

/// Parses `text` as the template called `name` (Loki names its templates `line` and
/// `label`; the name appears in error messages), with `vars` declared before it (`$labels`,
/// `$value` of an alert's annotations), as a header of `{{$x := ...}}` actions would.
pub(crate) fn parse_with_vars(
    name: &str,
    text: &str,
    vars: &[&str],
) -> Result<Tree, TemplateError> {
    let mut declared = vec!["$".to_string()];
    declared.extend(vars.iter().map(|v| v.to_string()));
    let mut p = Parser {
        name: name.to_string(),
        lex: Lexer::new(text),
        token: [empty_item(), empty_item(), empty_item()],
        peek_count: 0,
        vars: declared,
        defined: HashMap::new(),
        action_line: 0,
        range_depth: 0,
        depth: 0,
    };
    let root = p.parse_top()?;
    // Go's `add` for the top-level tree.
    let mut defined = p.defined;
    let root = match defined.remove(name) {
        Some(existing) if !is_empty_list(&existing) => {
            if !is_empty_list(&root) {
                return Err(TemplateError::parse(format!(
                    "template: {name}:{}: template: multiple definition of template {}",
                    p.token[0].line,
                    quote(name)
                )));
            }
            existing
        }
        _ => root,
    };
    Ok(Tree {
        name: name.to_string(),
        root,
        defined,
    })
}

fn empty_item() -> Item {
    Item {
        typ: ItemType::Eof,
        pos: 0,
        val: String::new(),
        line: 1,
    }
}

type PResult<T> = Result<T, TemplateError>;

struct Parser<'t> {
    name: String,
    lex: Lexer<'t>,
    token: [Item; 3],
    peek_count: usize,
    vars: Vec<String>,
    defined: HashMap<String, List>,
    action_line: usize,
    range_depth: usize,
    /// Nesting of controls and parentheses, bounded to keep the recursion shallow.
    depth: usize,
}

impl Parser<'_> {
    fn next(&mut self) -> Item {
        if self.peek_count > 0 {
            self.peek_count -= 1;
        } else {
            self.token[0] = self.lex.next_item();
        }
        self.token[self.peek_count].clone()
    }

    fn backup(&mut self) {
        // Every backup follows a `next`, so there is always room: three tokens of look-ahead.
        self.peek_count = (self.peek_count + 1).min(self.token.len());
    }

    fn backup2(&mut self, t1: Item) {
        self.token[1] = t1;
        self.peek_count = 2;
    }

    fn backup3(&mut self, t2: Item, t1: Item) {
        self.token[1] = t1;
        self.token[2] = t2;
        self.peek_count = 3;
    }

    fn peek(&mut self) -> Item {
        if self.peek_count > 0 {
            return self.token[self.peek_count - 1].clone();
        }
        self.peek_count = 1;
        self.token[0] = self.lex.next_item();
        self.token[0].clone()
    }

    fn next_non_space(&mut self) -> Item {
        loop {
            let t = self.next();
            if t.typ != ItemType::Space {
                return t;
            }
        }
    }

    fn peek_non_space(&mut self) -> Item {
        let t = self.next_non_space();
        self.backup();
        t
    }

    fn errorf(&self, msg: impl fmt::Display) -> TemplateError {
        TemplateError::parse(format!(
            "template: {}:{}: {msg}",
            self.name, self.token[0].line
        ))
    }

    fn expect(&mut self, expected: ItemType, context: &str) -> PResult<Item> {
        let t = self.next_non_space();
        if t.typ != expected {
            return Err(self.unexpected(&t, context));
        }
        Ok(t)
    }

    fn unexpected(&self, token: &Item, context: &str) -> TemplateError {
        if token.typ == ItemType::Error {
            let mut extra = String::new();
            if self.action_line != 0 && self.action_line != token.line {
                extra = format!(" in action started at {}:{}", self.name, self.action_line);
                if token.val.ends_with(" action") {
                    extra = extra[" in action".len()..].to_string();
                }
            }
            return self.errorf(format!("{token}{extra}"));
        }
        self.errorf(format!("unexpected {token} in {context}"))
    }

    fn enter(&mut self) -> PResult<()> {
        self.depth += 1;
        if self.depth > NESTING_DEPTH_MAX {
            return Err(self.errorf("max expression depth exceeded"));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth -= 1;
    }

    /// Go's `parse`: the top level, where `{{define}}` may appear.
    fn parse_top(&mut self) -> PResult<List> {
        let mut root = List::new();
        while self.peek().typ != ItemType::Eof {
            if self.peek().typ == ItemType::LeftDelim {
                let delim = self.next();
                if self.next_non_space().typ == ItemType::Define {
                    self.parse_definition()?;
                    continue;
                }
                self.backup2(delim);
            }
            match self.text_or_action()? {
                Item2::End => return Err(self.errorf("unexpected {{end}}")),
                Item2::Else => return Err(self.errorf("unexpected {{else}}")),
                Item2::Node(n) => root.push(n),
            }
        }
        Ok(root)
    }

    /// Go's `parseDefinition`: `{{define "name"}} ... {{end}}`, keyword already read.
    fn parse_definition(&mut self) -> PResult<()> {
        const CONTEXT: &str = "define clause";
        let saved_vars = std::mem::replace(&mut self.vars, vec!["$".to_string()]);
        let saved_range = std::mem::replace(&mut self.range_depth, 0);
        let t = self.next_non_space();
        if t.typ != ItemType::String && t.typ != ItemType::RawString {
            return Err(self.unexpected(&t, CONTEXT));
        }
        let name = strconv::unquote(&t.val).map_err(|e| self.errorf(e))?;
        self.expect(ItemType::RightDelim, CONTEXT)?;
        let (list, end) = self.item_list()?;
        if !matches!(end, Item2::End) {
            return Err(self.errorf(format!("unexpected {{{{else}}}} in {CONTEXT}")));
        }
        self.add_definition(name, list)?;
        self.vars = saved_vars;
        self.range_depth = saved_range;
        Ok(())
    }

    /// Go's `add` for a defined template.
    fn add_definition(&mut self, name: String, list: List) -> PResult<()> {
        match self.defined.get(&name) {
            Some(existing) if !is_empty_list(existing) => {
                if !is_empty_list(&list) {
                    return Err(self.errorf(format!(
                        "template: multiple definition of template {}",
                        quote(&name)
                    )));
                }
            }
            _ => {
                self.defined.insert(name, list);
            }
        }
        Ok(())
    }

    /// Go's `itemList`: nodes up to `{{end}}` or `{{else}}`.
    fn item_list(&mut self) -> PResult<(List, Item2)> {
        let mut list = List::new();
        while self.peek_non_space().typ != ItemType::Eof {
            match self.text_or_action()? {
                Item2::Node(n) => list.push(n),
                other => return Ok((list, other)),
            }
        }
        Err(self.errorf("unexpected EOF"))
    }

    fn text_or_action(&mut self) -> PResult<Item2> {
        let token = self.next_non_space();
        match token.typ {
            ItemType::Text => Ok(Item2::Node(Node::Text(token.val))),
            ItemType::LeftDelim => {
                self.action_line = token.line;
                let r = self.action();
                self.action_line = 0;
                r
            }
            _ => Err(self.unexpected(&token, "input")),
        }
    }

    fn action(&mut self) -> PResult<Item2> {
        let token = self.next_non_space();
        match token.typ {
            ItemType::Block => return self.block_control().map(Item2::Node),
            ItemType::Break => return self.break_control(token.pos).map(Item2::Node),
            ItemType::Continue => return self.continue_control(token.pos).map(Item2::Node),
            ItemType::Else => return self.else_control(),
            ItemType::End => {
                self.expect(ItemType::RightDelim, "end")?;
                return Ok(Item2::End);
            }
            ItemType::If => return self.if_control().map(Item2::Node),
            ItemType::Range => return self.range_control().map(Item2::Node),
            ItemType::Template => return self.template_control().map(Item2::Node),
            ItemType::With => return self.with_control().map(Item2::Node),
            _ => {}
        }
        self.backup();
        let token = self.peek();
        let pipe = self.pipeline("command", ItemType::RightDelim)?;
        Ok(Item2::Node(Node::Action(Action {
            pos: token.pos,
            pipe,
        })))
    }

    fn break_control(&mut self, pos: usize) -> PResult<Node> {
        let t = self.next_non_space();
        if t.typ != ItemType::RightDelim {
            return Err(self.unexpected(&t, "{{break}}"));
        }
        if self.range_depth == 0 {
            return Err(self.errorf("{{break}} outside {{range}}"));
        }
        Ok(Node::Break { pos })
    }

    fn continue_control(&mut self, pos: usize) -> PResult<Node> {
        let t = self.next_non_space();
        if t.typ != ItemType::RightDelim {
            return Err(self.unexpected(&t, "{{continue}}"));
        }
        if self.range_depth == 0 {
            return Err(self.errorf("{{continue}} outside {{range}}"));
        }
        Ok(Node::Continue { pos })
    }

    /// Go's `pipeline`: declarations, then commands up to `end`.
    fn pipeline(&mut self, context: &str, end: ItemType) -> PResult<Pipe> {
        let token = self.peek_non_space();
        let mut pipe = Pipe {
            pos: token.pos,
            is_assign: false,
            decl: Vec::new(),
            cmds: Vec::new(),
        };
        'decls: loop {
            let v = self.peek_non_space();
            if v.typ != ItemType::Variable {
                break;
            }
            self.next();
            // "$x foo" versus "$x := foo": three tokens of look-ahead.
            let token_after_variable = self.peek();
            let next = self.peek_non_space();
            if next.typ == ItemType::Assign || next.typ == ItemType::Declare {
                pipe.is_assign = next.typ == ItemType::Assign;
                self.next_non_space();
                pipe.decl.push(new_variable(v.pos, &v.val));
                self.vars.push(v.val.clone());
            } else if next.typ == ItemType::Char && next.val == "," {
                self.next_non_space();
                pipe.decl.push(new_variable(v.pos, &v.val));
                self.vars.push(v.val.clone());
                if context == "range" && pipe.decl.len() < 2 {
                    match self.peek_non_space().typ {
                        ItemType::Variable | ItemType::RightDelim | ItemType::RightParen => {
                            continue 'decls;
                        }
                        _ => return Err(self.errorf("range can only initialize variables")),
                    }
                }
                return Err(self.errorf(format!("too many declarations in {context}")));
            } else if token_after_variable.typ == ItemType::Space {
                self.backup3(v, token_after_variable);
            } else {
                self.backup2(v);
            }
            break;
        }
        loop {
            let token = self.next_non_space();
            match token.typ {
                t if t == end => {
                    self.check_pipeline(&pipe, context)?;
                    return Ok(pipe);
                }
                ItemType::Bool
                | ItemType::CharConstant
                | ItemType::Complex
                | ItemType::Dot
                | ItemType::Field
                | ItemType::Identifier
                | ItemType::Number
                | ItemType::Nil
                | ItemType::RawString
                | ItemType::String
                | ItemType::Variable
                | ItemType::LeftParen => {
                    self.backup();
                    let cmd = self.command()?;
                    pipe.cmds.push(cmd);
                }
                _ => return Err(self.unexpected(&token, context)),
            }
        }
    }

    fn check_pipeline(&self, pipe: &Pipe, context: &str) -> PResult<()> {
        if pipe.cmds.is_empty() {
            return Err(self.errorf(format!("missing value for {context}")));
        }
        for (i, c) in pipe.cmds.iter().enumerate().skip(1) {
            if matches!(
                c.args.first(),
                Some(
                    Arg::Bool { .. }
                        | Arg::Dot { .. }
                        | Arg::Nil { .. }
                        | Arg::Number(_)
                        | Arg::String { .. }
                )
            ) {
                return Err(self.errorf(format!(
                    "non executable command in pipeline stage {}",
                    i + 1
                )));
            }
        }
        Ok(())
    }

    /// Go's `parseControl` for `if`, `range` and `with`.
    fn parse_control(&mut self, context: &str) -> PResult<Branch> {
        self.enter()?;
        let vars_len = self.vars.len();
        let r = self.parse_control_inner(context);
        self.vars.truncate(vars_len);
        self.leave();
        r
    }

    fn parse_control_inner(&mut self, context: &str) -> PResult<Branch> {
        let pipe = self.pipeline(context, ItemType::RightDelim)?;
        if context == "range" {
            self.range_depth += 1;
        }
        let r = self.item_list();
        if context == "range" {
            self.range_depth -= 1;
        }
        let (list, next) = r?;
        let mut else_list = None;
        match next {
            Item2::End => {}
            Item2::Else => {
                // "{{else if ...}}" and "{{else with ...}}" are "{{else}}{{if ...}}...{{end}}".
                if context == "if" && self.peek().typ == ItemType::If {
                    self.next();
                    else_list = Some(vec![self.if_control()?]);
                } else if context == "with" && self.peek().typ == ItemType::With {
                    self.next();
                    else_list = Some(vec![self.with_control()?]);
                } else {
                    let (l, next) = self.item_list()?;
                    if !matches!(next, Item2::End) {
                        return Err(self.errorf("expected end; found {{else}}"));
                    }
                    else_list = Some(l);
                }
            }
            Item2::Node(_) => {}
        }
        Ok(Branch {
            pos: pipe.pos,
            pipe,
            list,
            else_list,
        })
    }

    fn if_control(&mut self) -> PResult<Node> {
        Ok(Node::If(Box::new(self.parse_control("if")?)))
    }

    fn range_control(&mut self) -> PResult<Node> {
        Ok(Node::Range(Box::new(self.parse_control("range")?)))
    }

    fn with_control(&mut self) -> PResult<Node> {
        Ok(Node::With(Box::new(self.parse_control("with")?)))
    }

    fn else_control(&mut self) -> PResult<Item2> {
        let peek = self.peek_non_space();
        if peek.typ == ItemType::If || peek.typ == ItemType::With {
            return Ok(Item2::Else);
        }
        self.expect(ItemType::RightDelim, "else")?;
        Ok(Item2::Else)
    }

    /// `{{block "name" pipeline}} body {{end}}`: defines the template and calls it.
    fn block_control(&mut self) -> PResult<Node> {
        const CONTEXT: &str = "block clause";
        let token = self.next_non_space();
        let name = self.parse_template_name(&token, CONTEXT)?;
        let pipe = self.pipeline(CONTEXT, ItemType::RightDelim)?;
        self.enter()?;
        let saved_vars = std::mem::replace(&mut self.vars, vec!["$".to_string()]);
        let saved_range = std::mem::replace(&mut self.range_depth, 0);
        let r = self.item_list();
        self.vars = saved_vars;
        self.range_depth = saved_range;
        self.leave();
        let (list, end) = r?;
        if !matches!(end, Item2::End) {
            return Err(self.errorf(format!("unexpected {{{{else}}}} in {CONTEXT}")));
        }
        self.add_definition(name.clone(), list)?;
        Ok(Node::Template(Box::new(TemplateCall {
            pos: token.pos,
            name,
            pipe: Some(pipe),
        })))
    }

    fn template_control(&mut self) -> PResult<Node> {
        const CONTEXT: &str = "template clause";
        let token = self.next_non_space();
        let name = self.parse_template_name(&token, CONTEXT)?;
        let mut pipe = None;
        if self.next_non_space().typ != ItemType::RightDelim {
            self.backup();
            pipe = Some(self.pipeline(CONTEXT, ItemType::RightDelim)?);
        }
        Ok(Node::Template(Box::new(TemplateCall {
            pos: token.pos,
            name,
            pipe,
        })))
    }

    fn parse_template_name(&mut self, token: &Item, context: &str) -> PResult<String> {
        match token.typ {
            ItemType::String | ItemType::RawString => {
                strconv::unquote(&token.val).map_err(|e| self.errorf(e))
            }
            _ => Err(self.unexpected(token, context)),
        }
    }

    /// Go's `command`: operands separated by spaces, up to `|`, `}}` or `)`.
    fn command(&mut self) -> PResult<Command> {
        let pos = self.peek_non_space().pos;
        let mut args = Vec::new();
        loop {
            self.peek_non_space();
            if let Some(operand) = self.operand()? {
                args.push(operand);
            }
            let token = self.next();
            match token.typ {
                ItemType::Space => continue,
                ItemType::RightDelim | ItemType::RightParen => self.backup(),
                ItemType::Pipe => {}
                _ => return Err(self.unexpected(&token, "operand")),
            }
            break;
        }
        if args.is_empty() {
            return Err(self.errorf("empty command"));
        }
        let regex = literal_regex(&args);
        Ok(Command { pos, args, regex })
    }

    /// Go's `operand`: a term and any `.Field`s after it.
    fn operand(&mut self) -> PResult<Option<Arg>> {
        let Some(node) = self.term()? else {
            return Ok(None);
        };
        if self.peek().typ != ItemType::Field {
            return Ok(Some(node));
        }
        let chain_pos = self.peek().pos;
        let mut fields = Vec::new();
        while self.peek().typ == ItemType::Field {
            let f = self.next().val;
            fields.push(f[1..].to_string());
        }
        Ok(Some(match node {
            Arg::Field { mut ident, .. } => {
                ident.extend(fields);
                Arg::Field {
                    pos: chain_pos,
                    ident,
                }
            }
            Arg::Variable(mut v) => {
                v.ident.extend(fields);
                v.pos = chain_pos;
                Arg::Variable(v)
            }
            Arg::Bool { .. }
            | Arg::String { .. }
            | Arg::Number(_)
            | Arg::Nil { .. }
            | Arg::Dot { .. } => {
                return Err(self.errorf(format!(
                    "unexpected . after term {}",
                    quote(&node.to_string())
                )));
            }
            node => Arg::Chain {
                pos: chain_pos,
                node: Box::new(node),
                field: fields,
            },
        }))
    }

    /// Go's `term`: a literal, a function name, `.`, `.Field`, `$x`, or `( pipeline )`.
    fn term(&mut self) -> PResult<Option<Arg>> {
        let token = self.next_non_space();
        let pos = token.pos;
        Ok(Some(match token.typ {
            ItemType::Identifier => {
                let Some(func) = funcs::lookup(&token.val) else {
                    return Err(self.errorf(format!("function {} not defined", quote(&token.val))));
                };
                Arg::Identifier {
                    pos,
                    name: token.val,
                    func,
                }
            }
            ItemType::Dot => Arg::Dot { pos },
            ItemType::Nil => Arg::Nil { pos },
            ItemType::Variable => {
                let v = new_variable(pos, &token.val);
                if !self.vars.iter().any(|n| *n == v.ident[0]) {
                    return Err(self.errorf(format!("undefined variable {}", quote(&v.ident[0]))));
                }
                Arg::Variable(v)
            }
            ItemType::Field => Arg::Field {
                pos,
                ident: token.val[1..].split('.').map(str::to_string).collect(),
            },
            ItemType::Bool => Arg::Bool {
                pos,
                val: token.val == "true",
            },
            ItemType::CharConstant | ItemType::Complex | ItemType::Number => {
                let n = new_number(pos, &token.val, token.typ).map_err(|e| self.errorf(e))?;
                Arg::Number(Box::new(n))
            }
            ItemType::LeftParen => {
                self.enter()?;
                let r = self.pipeline("parenthesized pipeline", ItemType::RightParen);
                self.leave();
                Arg::Pipe(Box::new(r?))
            }
            ItemType::String | ItemType::RawString => {
                let text = strconv::unquote(&token.val).map_err(|e| self.errorf(e))?;
                Arg::String {
                    pos,
                    quoted: token.val,
                    text,
                }
            }
            _ => {
                self.backup();
                return Ok(None);
            }
        }))
    }
}

fn new_variable(pos: usize, ident: &str) -> Variable {
    Variable {
        pos,
        ident: ident.split('.').map(str::to_string).collect(),
    }
}

/// The regex of a call such as `regexReplaceAll "a+" .x "b"`, compiled once.
fn literal_regex(args: &[Arg]) -> Option<Arc<Result<regex::Regex, String>>> {
    let Some(Arg::Identifier { func, .. }) = args.first() else {
        return None;
    };
    if !func.takes_regex() {
        return None;
    }
    match args.get(1) {
        Some(Arg::String { text, .. }) => Some(Arc::new(funcs::compile_regex(text))),
        _ => None,
    }
}

/// Go's `newNumber`.
fn new_number(pos: usize, text: &str, typ: ItemType) -> Result<Number, String> {
    let mut n = Number {
        pos,
        text: text.to_string(),
        ..Number::default()
    };
    match typ {
        ItemType::CharConstant => {
            let inner = &text[1..];
            let (c, tail) = strconv::unquote_char(inner, '\'').map_err(|e| e.to_string())?;
            if tail != "'" {
                return Err(format!("malformed character constant: {text}"));
            }
            let r = u32::from(c);
            n.int64 = i64::from(r);
            n.is_int = true;
            n.uint64 = u64::from(r);
            n.is_uint = true;
            n.float64 = f64::from(r);
            n.is_float = true;
            return Ok(n);
        }
        ItemType::Complex => {
            let (re, im) = strconv::parse_complex(text).ok_or_else(|| {
                format!("expected integer; found {text}") // fmt.Sscan's complaint, roughly
            })?;
            n.is_complex = true;
            n.complex = (re, im);
            simplify_complex(&mut n);
            return Ok(n);
        }
        _ => {}
    }
    if let Some(body) = text.strip_suffix('i')
        && let Some(f) = strconv::parse_float(body)
    {
        n.is_complex = true;
        n.complex = (0.0, f);
        simplify_complex(&mut n);
        return Ok(n);
    }
    let u = strconv::parse_uint(text);
    if let Some(u) = u {
        n.is_uint = true;
        n.uint64 = u;
    }
    if let Some(i) = strconv::parse_int(text) {
        n.is_int = true;
        n.int64 = i;
        if i == 0 {
            n.is_uint = true;
            n.uint64 = u.unwrap_or(0);
        }
    }
    if n.is_int {
        n.is_float = true;
        n.float64 = n.int64 as f64;
    } else if n.is_uint {
        n.is_float = true;
        n.float64 = n.uint64 as f64;
    } else if let Some(f) = strconv::parse_float(text) {
        if !text.contains(['.', 'e', 'E', 'p', 'P']) {
            return Err(format!("integer overflow: {}", quote(text)));
        }
        n.is_float = true;
        n.float64 = f;
        if !n.is_int && (f as i64) as f64 == f {
            n.is_int = true;
            n.int64 = f as i64;
        }
        if !n.is_uint && (f as u64) as f64 == f {
            n.is_uint = true;
            n.uint64 = f as u64;
        }
    }
    if !n.is_int && !n.is_uint && !n.is_float {
        return Err(format!("illegal number syntax: {}", quote(text)));
    }
    Ok(n)
}

fn simplify_complex(n: &mut Number) {
    let (re, im) = n.complex;
    n.is_float = im == 0.0;
    if n.is_float {
        n.float64 = re;
        n.is_int = (re as i64) as f64 == re;
        if n.is_int {
            n.int64 = re as i64;
        }
        n.is_uint = (re as u64) as f64 == re;
        if n.is_uint {
            n.uint64 = re as u64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        parse_with_vars("line", text, &[]).unwrap_err().to_string()
    }

    fn ok(text: &str) -> String {
        let t = parse_with_vars("line", text, &[]).unwrap();
        t.root.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn prints_nodes_as_go_does() {
        assert_eq!(
            ok("a{{.foo | printf \"%s\" (upper .bar)}}b"),
            "a{{.foo | printf \"%s\" (upper .bar)}}b"
        );
        assert_eq!(
            ok("{{if .a}}x{{else if .b}}y{{else}}z{{end}}"),
            "{{if .a}}x{{else}}{{if .b}}y{{else}}z{{end}}{{end}}"
        );
        assert_eq!(
            ok("{{range $k, $v := .}}{{$k}}{{end}}"),
            "{{range $k, $v := .}}{{$k}}{{end}}"
        );
        assert_eq!(
            ok("{{with $x := 3}}{{$x = 4}}{{end}}"),
            "{{with $x := 3}}{{$x := 4}}{{end}}"
        );
        assert_eq!(ok("{{(upper .a).b}}"), "{{(upper .a).b}}");
    }

    #[test]
    fn reports_go_parse_errors() {
        assert_eq!(
            err("{{foo}}"),
            "template: line:1: function \"foo\" not defined"
        );
        assert_eq!(err("{{if .a}}"), "template: line:1: unexpected EOF");
        assert_eq!(err("{{end}}"), "template: line:1: unexpected {{end}}");
        assert_eq!(err("{{$x}}"), "template: line:1: undefined variable \"$x\"");
        assert_eq!(
            err("{{break}}"),
            "template: line:1: {{break}} outside {{range}}"
        );
        assert_eq!(
            err("{{.a | \"x\"}}"),
            "template: line:1: non executable command in pipeline stage 2"
        );
        assert_eq!(err("{{}}"), "template: line:1: missing value for command");
        assert_eq!(
            err("a\n{{.a\n"),
            "template: line:3: unclosed action started at line:2"
        );
        assert_eq!(err("{{.a"), "template: line:1: unclosed action");
        assert_eq!(err("{{08}}"), "template: line:1: integer overflow: \"08\"");
        assert_eq!(
            err("{{\"a\".b}}"),
            "template: line:1: unexpected . after term \"\\\"a\\\"\""
        );
        assert!(err(&format!("{{{{{}", "(".repeat(200))).contains("depth"));
        assert!(err(&"{{if 1}}".repeat(100)).contains("depth"));
    }

    #[test]
    fn numbers_keep_every_representation() {
        let n = new_number(0, "0x1F", ItemType::Number).unwrap();
        assert!(n.is_int && n.int64 == 31 && n.is_float);
        let n = new_number(0, "1e3", ItemType::Number).unwrap();
        assert!(n.is_int && n.int64 == 1000 && n.float64 == 1000.0);
        let n = new_number(0, "'a'", ItemType::CharConstant).unwrap();
        assert_eq!(n.int64, 97);
        let n = new_number(0, "1_000", ItemType::Number).unwrap();
        assert_eq!(n.int64, 1000);
        assert!(
            new_number(0, "18446744073709551615", ItemType::Number)
                .unwrap()
                .is_uint
        );
    }
}

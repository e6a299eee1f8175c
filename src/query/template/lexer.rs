//! The template lexer: Go's `text/template/parse/lex.go`, token for token.
//!
//! Which question it answers: "what are the tokens of this template text?" Text runs,
//! `{{`/`}}` with their trim markers, comments, and inside actions identifiers, fields,
//! variables, literals, `|`, `:=`, `=`, parentheses and spaces. Errors come back as an
//! [`ItemType::Error`] item carrying Go's message, as in Go.

use super::gofmt::{quote, quote_truncated, unicode_notation};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ItemType {
    Error,
    Bool,
    Char,
    CharConstant,
    Comment,
    Complex,
    Assign,
    Declare,
    Eof,
    Field,
    Identifier,
    LeftDelim,
    LeftParen,
    Number,
    Pipe,
    RawString,
    RightDelim,
    RightParen,
    Space,
    String,
    Text,
    Variable,
    // Keywords.
    Block,
    Break,
    Continue,
    Dot,
    Define,
    Else,
    End,
    If,
    Nil,
    Range,
    Template,
    With,
}

impl ItemType {
    fn is_keyword(self) -> bool {
        matches!(
            self,
            ItemType::Block
                | ItemType::Break
                | ItemType::Continue
                | ItemType::Dot
                | ItemType::Define
                | ItemType::Else
                | ItemType::End
                | ItemType::If
                | ItemType::Nil
                | ItemType::Range
                | ItemType::Template
                | ItemType::With
        )
    }
}

fn keyword(word: &str) -> Option<ItemType> {
    Some(match word {
        "." => ItemType::Dot,
        "block" => ItemType::Block,
        "break" => ItemType::Break,
        "continue" => ItemType::Continue,
        "define" => ItemType::Define,
        "else" => ItemType::Else,
        "end" => ItemType::End,
        "if" => ItemType::If,
        "range" => ItemType::Range,
        "nil" => ItemType::Nil,
        "template" => ItemType::Template,
        "with" => ItemType::With,
        _ => return None,
    })
}

/// A token: its type, byte position, text (or error message) and line.
#[derive(Clone, Debug)]
pub(crate) struct Item {
    pub(crate) typ: ItemType,
    pub(crate) pos: usize,
    pub(crate) val: String,
    pub(crate) line: usize,
}

impl std::fmt::Display for Item {
    /// Go's `item.String()`, used in "unexpected ..." messages.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.typ {
            ItemType::Eof => f.write_str("EOF"),
            ItemType::Error => f.write_str(&self.val),
            t if t.is_keyword() => write!(f, "<{}>", self.val),
            _ if self.val.chars().count() > 10 => f.write_str(&quote_truncated(&self.val, 10)),
            _ => f.write_str(&quote(&self.val)),
        }
    }
}

const LEFT_DELIM: &str = "{{";
const RIGHT_DELIM: &str = "}}";
const LEFT_COMMENT: &str = "/*";
const RIGHT_COMMENT: &str = "*/";
const TRIM_MARKER_LEN: usize = 2;

pub(crate) struct Lexer<'t> {
    input: &'t str,
    pos: usize,
    start: usize,
    at_eof: bool,
    paren_depth: usize,
    line: usize,
    start_line: usize,
    inside_action: bool,
    /// Set once an error item has been produced: everything after is EOF.
    failed: bool,
}

#[derive(Clone, Copy)]
enum State {
    Text,
    LeftDelim,
    Comment,
    RightDelim,
    InsideAction,
    Space,
    Identifier,
    Field,
    Variable,
    Char,
    Number,
    Quote,
    RawQuote,
}

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn is_alphanumeric(c: char) -> bool {
    c == '_' || c.is_alphabetic() || c.is_numeric()
}

fn has_left_trim_marker(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 2 && b[0] == b'-' && is_space(char::from(b[1]))
}

fn has_right_trim_marker(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 2 && is_space(char::from(b[0])) && b[1] == b'-'
}

fn right_trim_length(s: &str) -> usize {
    s.len() - s.trim_end_matches(is_space).len()
}

fn left_trim_length(s: &str) -> usize {
    s.len() - s.trim_start_matches(is_space).len()
}

impl<'t> Lexer<'t> {
    pub(crate) fn new(input: &'t str) -> Lexer<'t> {
        Lexer {
            input,
            pos: 0,
            start: 0,
            at_eof: false,
            paren_depth: 0,
            line: 1,
            start_line: 1,
            inside_action: false,
            failed: false,
        }
    }

    fn next(&mut self) -> Option<char> {
        let Some(c) = self.input[self.pos..].chars().next() else {
            self.at_eof = true;
            return None;
        };
        self.pos += c.len_utf8();
        if c == '\n' {
            self.line += 1;
        }
        Some(c)
    }

    fn peek(&mut self) -> Option<char> {
        self.input[self.pos..].chars().next()
    }

    fn backup(&mut self) {
        if !self.at_eof
            && self.pos > 0
            && let Some(c) = self.input[..self.pos].chars().next_back()
        {
            self.pos -= c.len_utf8();
            if c == '\n' {
                self.line -= 1;
            }
        }
    }

    fn this_item(&mut self, typ: ItemType) -> Item {
        let item = Item {
            typ,
            pos: self.start,
            val: self.input[self.start..self.pos].to_string(),
            line: self.start_line,
        };
        self.start = self.pos;
        self.start_line = self.line;
        item
    }

    fn ignore(&mut self) {
        self.line += self.input[self.start..self.pos].matches('\n').count();
        self.start = self.pos;
        self.start_line = self.line;
    }

    fn accept(&mut self, valid: &str) -> bool {
        match self.next() {
            Some(c) if valid.contains(c) => true,
            _ => {
                self.backup();
                false
            }
        }
    }

    fn accept_run(&mut self, valid: &str) {
        while let Some(c) = self.next() {
            if !valid.contains(c) {
                break;
            }
        }
        self.backup();
    }

    fn error(&mut self, msg: String) -> Item {
        let item = Item {
            typ: ItemType::Error,
            pos: self.start,
            val: msg,
            line: self.start_line,
        };
        self.failed = true;
        item
    }

    fn at_right_delim(&self) -> (bool, bool) {
        let rest = &self.input[self.pos..];
        if has_right_trim_marker(rest) && rest[TRIM_MARKER_LEN..].starts_with(RIGHT_DELIM) {
            return (true, true);
        }
        (rest.starts_with(RIGHT_DELIM), false)
    }

    fn at_terminator(&mut self) -> bool {
        match self.peek() {
            None => true,
            Some(c) if is_space(c) => true,
            Some('.' | ',' | '|' | ':' | ')' | '(') => true,
            _ => self.input[self.pos..].starts_with(RIGHT_DELIM),
        }
    }

    /// The next token (Go's `nextItem`).
    pub(crate) fn next_item(&mut self) -> Item {
        if self.failed {
            return Item {
                typ: ItemType::Eof,
                pos: self.pos,
                val: "EOF".into(),
                line: self.start_line,
            };
        }
        let mut state = if self.inside_action {
            State::InsideAction
        } else {
            State::Text
        };
        loop {
            match self.step(state) {
                Ok(item) => return item,
                Err(next) => state = next,
            }
        }
    }

    /// Runs one lexer state: either an item or the next state.
    fn step(&mut self, state: State) -> Result<Item, State> {
        match state {
            State::Text => self.lex_text(),
            State::LeftDelim => self.lex_left_delim(),
            State::Comment => self.lex_comment(),
            State::RightDelim => Ok(self.lex_right_delim()),
            State::InsideAction => self.lex_inside_action(),
            State::Space => self.lex_space(),
            State::Identifier => Ok(self.lex_identifier()),
            State::Field => Ok(self.lex_field_or_variable(ItemType::Field)),
            State::Variable => {
                if self.at_terminator() {
                    return Ok(self.this_item(ItemType::Variable));
                }
                Ok(self.lex_field_or_variable(ItemType::Variable))
            }
            State::Char => Ok(self.lex_char()),
            State::Number => Ok(self.lex_number()),
            State::Quote => Ok(self.lex_quote()),
            State::RawQuote => Ok(self.lex_raw_quote()),
        }
    }

    fn lex_text(&mut self) -> Result<Item, State> {
        if let Some(x) = self.input[self.pos..].find(LEFT_DELIM) {
            if x > 0 {
                self.pos += x;
                let delim_end = self.pos + LEFT_DELIM.len();
                let trim = if has_left_trim_marker(&self.input[delim_end..]) {
                    right_trim_length(&self.input[self.start..self.pos])
                } else {
                    0
                };
                self.pos -= trim;
                self.line += self.input[self.start..self.pos].matches('\n').count();
                let item = self.this_item(ItemType::Text);
                self.pos += trim;
                self.ignore();
                if !item.val.is_empty() {
                    return Ok(item);
                }
            }
            return Err(State::LeftDelim);
        }
        self.pos = self.input.len();
        if self.pos > self.start {
            self.line += self.input[self.start..self.pos].matches('\n').count();
            return Ok(self.this_item(ItemType::Text));
        }
        Ok(self.this_item(ItemType::Eof))
    }

    fn lex_left_delim(&mut self) -> Result<Item, State> {
        self.pos += LEFT_DELIM.len();
        let trim = has_left_trim_marker(&self.input[self.pos..]);
        let after_marker = if trim { TRIM_MARKER_LEN } else { 0 };
        if self.input[self.pos + after_marker..].starts_with(LEFT_COMMENT) {
            self.pos += after_marker;
            self.ignore();
            return Err(State::Comment);
        }
        let item = self.this_item(ItemType::LeftDelim);
        self.inside_action = true;
        self.pos += after_marker;
        self.ignore();
        self.paren_depth = 0;
        Ok(item)
    }

    /// A comment is skipped: Loki parses without Go's `ParseComments` mode.
    fn lex_comment(&mut self) -> Result<Item, State> {
        self.pos += LEFT_COMMENT.len();
        let Some(x) = self.input[self.pos..].find(RIGHT_COMMENT) else {
            return Ok(self.error("unclosed comment".into()));
        };
        self.pos += x + RIGHT_COMMENT.len();
        let (delim, trim) = self.at_right_delim();
        if !delim {
            return Ok(self.error("comment ends before closing delimiter".into()));
        }
        self.line += self.input[self.start..self.pos].matches('\n').count();
        self.this_item(ItemType::Comment);
        if trim {
            self.pos += TRIM_MARKER_LEN;
        }
        self.pos += RIGHT_DELIM.len();
        if trim {
            self.pos += left_trim_length(&self.input[self.pos..]);
        }
        self.ignore();
        Err(State::Text)
    }

    fn lex_right_delim(&mut self) -> Item {
        let (_, trim) = self.at_right_delim();
        if trim {
            self.pos += TRIM_MARKER_LEN;
            self.ignore();
        }
        self.pos += RIGHT_DELIM.len();
        let item = self.this_item(ItemType::RightDelim);
        if trim {
            self.pos += left_trim_length(&self.input[self.pos..]);
            self.ignore();
        }
        self.inside_action = false;
        item
    }

    fn lex_inside_action(&mut self) -> Result<Item, State> {
        let (delim, _) = self.at_right_delim();
        if delim {
            if self.paren_depth == 0 {
                return Err(State::RightDelim);
            }
            return Ok(self.error("unclosed left paren".into()));
        }
        let Some(c) = self.next() else {
            return Ok(self.error("unclosed action".into()));
        };
        match c {
            c if is_space(c) => {
                self.backup();
                Err(State::Space)
            }
            '=' => Ok(self.this_item(ItemType::Assign)),
            ':' => {
                if self.next() != Some('=') {
                    return Ok(self.error("expected :=".into()));
                }
                Ok(self.this_item(ItemType::Declare))
            }
            '|' => Ok(self.this_item(ItemType::Pipe)),
            '"' => Err(State::Quote),
            '`' => Err(State::RawQuote),
            '$' => Err(State::Variable),
            '\'' => Err(State::Char),
            '.' => {
                // ".field", or a number such as ".5".
                if let Some(&b) = self.input.as_bytes().get(self.pos)
                    && !b.is_ascii_digit()
                {
                    return Err(State::Field);
                }
                self.backup();
                Err(State::Number)
            }
            '+' | '-' | '0'..='9' => {
                self.backup();
                Err(State::Number)
            }
            c if is_alphanumeric(c) => {
                self.backup();
                Err(State::Identifier)
            }
            '(' => {
                self.paren_depth += 1;
                Ok(self.this_item(ItemType::LeftParen))
            }
            ')' => {
                if self.paren_depth == 0 {
                    return Ok(self.error("unexpected right paren".into()));
                }
                self.paren_depth -= 1;
                Ok(self.this_item(ItemType::RightParen))
            }
            c if c.is_ascii() && !c.is_ascii_control() => Ok(self.this_item(ItemType::Char)),
            c => Ok(self.error(format!(
                "unrecognized character in action: {}",
                unicode_notation(c)
            ))),
        }
    }

    fn lex_space(&mut self) -> Result<Item, State> {
        let mut num_spaces = 0;
        while let Some(c) = self.peek() {
            if !is_space(c) {
                break;
            }
            self.next();
            num_spaces += 1;
        }
        // A space may start a trim-marked right delimiter (" -}}").
        let rest = &self.input[self.pos - 1..];
        if has_right_trim_marker(rest) && rest[TRIM_MARKER_LEN..].starts_with(RIGHT_DELIM) {
            self.backup();
            if num_spaces == 1 {
                return Err(State::RightDelim);
            }
        }
        Ok(self.this_item(ItemType::Space))
    }

    fn lex_identifier(&mut self) -> Item {
        loop {
            match self.next() {
                Some(c) if is_alphanumeric(c) => {}
                c => {
                    self.backup();
                    let word = &self.input[self.start..self.pos];
                    if !self.at_terminator() {
                        return self.bad_character(c);
                    }
                    if let Some(k) = keyword(word) {
                        return self.this_item(k);
                    }
                    if word.starts_with('.') {
                        return self.this_item(ItemType::Field);
                    }
                    if word == "true" || word == "false" {
                        return self.this_item(ItemType::Bool);
                    }
                    return self.this_item(ItemType::Identifier);
                }
            }
        }
    }

    fn bad_character(&mut self, c: Option<char>) -> Item {
        let c = c.or_else(|| self.peek());
        match c {
            Some(c) => self.error(format!("bad character {}", unicode_notation(c))),
            None => self.error("bad character U+FFFFFFFFFFFFFFFF".into()),
        }
    }

    fn lex_field_or_variable(&mut self, typ: ItemType) -> Item {
        if self.at_terminator() {
            return self.this_item(if typ == ItemType::Variable {
                ItemType::Variable
            } else {
                ItemType::Dot
            });
        }
        let last = loop {
            match self.next() {
                Some(c) if is_alphanumeric(c) => {}
                c => {
                    self.backup();
                    break c;
                }
            }
        };
        if !self.at_terminator() {
            return self.bad_character(last);
        }
        self.this_item(typ)
    }

    fn lex_char(&mut self) -> Item {
        loop {
            match self.next() {
                Some('\\') => {
                    if matches!(self.next(), None | Some('\n')) {
                        return self.error("unterminated character constant".into());
                    }
                }
                None | Some('\n') => return self.error("unterminated character constant".into()),
                Some('\'') => break,
                Some(_) => {}
            }
        }
        self.this_item(ItemType::CharConstant)
    }

    fn lex_number(&mut self) -> Item {
        if !self.scan_number() {
            let text = self.input[self.start..self.pos].to_string();
            return self.error(format!("bad number syntax: {}", quote(&text)));
        }
        if let Some('+' | '-') = self.peek() {
            // Complex: 1+2i.
            if !self.scan_number() || !self.input[..self.pos].ends_with('i') {
                let text = self.input[self.start..self.pos].to_string();
                return self.error(format!("bad number syntax: {}", quote(&text)));
            }
            return self.this_item(ItemType::Complex);
        }
        self.this_item(ItemType::Number)
    }

    fn scan_number(&mut self) -> bool {
        self.accept("+-");
        let mut digits = "0123456789_";
        if self.accept("0") {
            if self.accept("xX") {
                digits = "0123456789abcdefABCDEF_";
            } else if self.accept("oO") {
                digits = "01234567_";
            } else if self.accept("bB") {
                digits = "01_";
            }
        }
        self.accept_run(digits);
        if self.accept(".") {
            self.accept_run(digits);
        }
        if digits.len() == 10 + 1 && self.accept("eE") {
            self.accept("+-");
            self.accept_run("0123456789_");
        }
        if digits.len() == 16 + 6 + 1 && self.accept("pP") {
            self.accept("+-");
            self.accept_run("0123456789_");
        }
        self.accept("i");
        if self.peek().is_some_and(is_alphanumeric) {
            self.next();
            return false;
        }
        true
    }

    fn lex_quote(&mut self) -> Item {
        loop {
            match self.next() {
                Some('\\') => {
                    if matches!(self.next(), None | Some('\n')) {
                        return self.error("unterminated quoted string".into());
                    }
                }
                None | Some('\n') => return self.error("unterminated quoted string".into()),
                Some('"') => break,
                Some(_) => {}
            }
        }
        self.this_item(ItemType::String)
    }

    fn lex_raw_quote(&mut self) -> Item {
        loop {
            match self.next() {
                None => return self.error("unterminated raw quoted string".into()),
                Some('`') => break,
                Some(_) => {}
            }
        }
        self.this_item(ItemType::RawString)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn types(input: &str) -> Vec<(ItemType, String)> {
        let mut l = Lexer::new(input);
        let mut out = Vec::new();
        loop {
            let item = l.next_item();
            let done = matches!(item.typ, ItemType::Eof | ItemType::Error);
            out.push((item.typ, item.val));
            if done {
                return out;
            }
        }
    }

    #[test]
    fn lexes_actions_and_trim_markers() {
        use ItemType::*;
        let got = types("a  {{- .foo | printf \"%s\" -}}  b");
        let want = vec![
            (Text, "a".to_string()),
            (LeftDelim, "{{".into()),
            (Field, ".foo".into()),
            (Space, " ".into()),
            (Pipe, "|".into()),
            (Space, " ".into()),
            (Identifier, "printf".into()),
            (Space, " ".into()),
            (String, "\"%s\"".into()),
            (RightDelim, "}}".into()),
            (Text, "b".into()),
            (Eof, "".into()),
        ];
        assert_eq!(got, want);
        let got = types("{{$x := 3.5e2}}{{/* c */}}{{-3}}");
        assert_eq!(
            got.iter().map(|(t, _)| *t).collect::<Vec<_>>(),
            vec![
                LeftDelim, Variable, Space, Declare, Space, Number, RightDelim, LeftDelim, Number,
                RightDelim, Eof
            ]
        );
        assert_eq!(
            types("{{ 3x }}").last().unwrap().1,
            "bad number syntax: \"3x\""
        );
        assert_eq!(
            types("{{ \"abc }}").last().unwrap().1,
            "unterminated quoted string"
        );
        assert_eq!(types("{{ a").last().unwrap().1, "unclosed action");
        assert_eq!(
            types("{{ é€ }}").last().unwrap().1,
            "bad character U+20AC '€'"
        );
    }
}

//! Whether Loki keeps a label filter's regex (`| name=~"re"`) as a regex or turns it into
//! literal comparisons, which decides how Loki prints the filter: a kept regex is printed in
//! backquotes (`msg=~`\w+``), anything else as the matcher (`msg=~"foo|bar"`).
//!
//! Which question it answers: "does Loki's `RegexSimplifier` simplify this regex?" Loki asks it
//! of the tree Go's `regexp/syntax` parses, so this module parses the regex into the shapes
//! that matter (literal strings, `.*`, `.+`, alternations, concatenations, capture groups),
//! including the two rewrites Go's parser makes that change the answer: an alternation of
//! single characters becomes a character class (`a|b` is `[ab]`), and alternatives with a
//! common literal prefix are factored (`foo|foobar` is `foo(?:|bar)`). Everything else is an
//! opaque piece, which Loki does not simplify either. The regex is already known to compile.

/// A regex node in the shape Go's parser gives it, as far as the simplifier looks.
#[derive(Clone, Debug, PartialEq)]
enum Shape {
    Empty,
    /// A literal string; `fold` under `(?i)`.
    Lit {
        text: String,
        fold: bool,
    },
    /// `.` without `(?s)`.
    AnyNotNl,
    Star(Box<Shape>),
    Plus(Box<Shape>),
    Capture(Box<Shape>),
    Alt(Vec<Shape>),
    Concat(Vec<Shape>),
    /// A character class of more than one character, an anchor, a repetition other than
    /// `*`/`+`, an escape class (`\d`): nothing the simplifier handles.
    Other,
}

/// Whether Loki's simplifier turns this label regex into literal filters (then Loki prints
/// the matcher with quotes).
pub(crate) fn loki_simplifies_label_regex(re: &str) -> bool {
    let mut parser = ShapeParser {
        chars: re.chars().collect(),
        pos: 0,
    };
    let shape = parser.alternation(Flags::default());
    if parser.pos < parser.chars.len() {
        return false;
    }
    simplify(&shape)
}

#[derive(Clone, Copy, Default)]
struct Flags {
    fold: bool,
    dot_nl: bool,
}

struct ShapeParser {
    chars: Vec<char>,
    pos: usize,
}

impl ShapeParser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn alternation(&mut self, flags: Flags) -> Shape {
        let mut flags = flags;
        let mut alts = vec![self.concat(&mut flags)];
        while self.peek() == Some('|') {
            self.pos += 1;
            alts.push(self.concat(&mut flags));
        }
        if alts.len() == 1 {
            return alts.pop().unwrap_or(Shape::Empty);
        }
        collapse_alternation(alts)
    }

    /// A concatenation; `(?i)`-style flag groups change `flags` for the rest of the group.
    fn concat(&mut self, flags: &mut Flags) -> Shape {
        let mut items: Vec<Shape> = Vec::new();
        while let Some(c) = self.peek() {
            if c == '|' || c == ')' {
                break;
            }
            let Some(atom) = self.atom(flags) else {
                continue;
            };
            let atom = self.repetition(atom);
            push_concat(&mut items, atom);
        }
        match items.len() {
            0 => Shape::Empty,
            1 => items.pop().unwrap_or(Shape::Empty),
            _ => Shape::Concat(items),
        }
    }

    /// `*`, `+`, `?`, `{n,m}` after an atom (and a `?` making it lazy).
    fn repetition(&mut self, atom: Shape) -> Shape {
        let mut shape = atom;
        loop {
            let rep = match self.peek() {
                Some('*') => {
                    self.pos += 1;
                    Shape::Star(Box::new(shape))
                }
                Some('+') => {
                    self.pos += 1;
                    Shape::Plus(Box::new(shape))
                }
                Some('?') => {
                    self.pos += 1;
                    Shape::Other
                }
                Some('{') => match self.counted_repeat() {
                    Some((min, max)) => match (min, max) {
                        (0, None) => Shape::Star(Box::new(shape)),
                        (1, None) => Shape::Plus(Box::new(shape)),
                        (1, Some(1)) => shape,
                        _ => Shape::Other,
                    },
                    None => return shape,
                },
                _ => return shape,
            };
            if self.peek() == Some('?') {
                self.pos += 1;
            }
            shape = rep;
        }
    }

    /// `{n}`, `{n,}` or `{n,m}`; `None` (nothing consumed) if `{` starts no repetition, which
    /// makes it a literal brace.
    fn counted_repeat(&mut self) -> Option<(u32, Option<u32>)> {
        let rest: String = self.chars[self.pos..].iter().collect();
        let close = rest.find('}')?;
        let body = &rest[1..close];
        let (min, max) = match body.split_once(',') {
            None => {
                let n = body.parse().ok()?;
                (n, Some(n))
            }
            Some((a, "")) => (a.parse().ok()?, None),
            Some((a, b)) => (a.parse().ok()?, Some(b.parse().ok()?)),
        };
        self.pos += rest[..=close].chars().count();
        Some((min, max))
    }

    /// One atom, or `None` for a flag group like `(?i)` that only changes `flags`.
    fn atom(&mut self, flags: &mut Flags) -> Option<Shape> {
        let c = self.peek()?;
        self.pos += 1;
        Some(match c {
            '(' => return self.group(flags),
            '[' => self.class(*flags),
            '.' if flags.dot_nl => Shape::Other,
            '.' => Shape::AnyNotNl,
            '^' | '$' => Shape::Other,
            '\\' => self.escape(*flags),
            c => Shape::Lit {
                text: c.to_string(),
                fold: flags.fold,
            },
        })
    }

    fn group(&mut self, flags: &mut Flags) -> Option<Shape> {
        let mut capture = true;
        let mut inner_flags = *flags;
        if self.peek() == Some('?') {
            self.pos += 1;
            match self.peek() {
                Some('P') | Some('<') => {
                    // A named group: skip to the end of its name.
                    while let Some(c) = self.peek() {
                        self.pos += 1;
                        if c == '>' {
                            break;
                        }
                    }
                }
                _ => {
                    // Flags, then `)` (they apply to the rest of the enclosing group) or `:`.
                    let mut on = true;
                    let mut scoped = false;
                    while let Some(c) = self.peek() {
                        self.pos += 1;
                        match c {
                            '-' => on = false,
                            'i' => inner_flags.fold = on,
                            's' => inner_flags.dot_nl = on,
                            ':' => {
                                scoped = true;
                                break;
                            }
                            ')' => break,
                            _ => {}
                        }
                    }
                    if !scoped {
                        *flags = inner_flags;
                        return None;
                    }
                    capture = false;
                }
            }
        }
        let inner = self.alternation(inner_flags);
        if self.peek() == Some(')') {
            self.pos += 1;
        }
        Some(if capture {
            Shape::Capture(Box::new(inner))
        } else {
            inner
        })
    }

    /// `[...]`: one character is a literal (`[a]`), a case pair is a folded literal (`[Aa]`),
    /// anything else a class.
    fn class(&mut self, flags: Flags) -> Shape {
        let start = self.pos;
        let negated = self.peek() == Some('^');
        if negated {
            self.pos += 1;
        }
        let mut members: Vec<char> = Vec::new();
        let mut simple = !negated && !flags.fold;
        let mut first = true;
        while let Some(c) = self.peek() {
            self.pos += 1;
            match c {
                ']' if !first => break,
                '\\' => {
                    simple = false;
                    self.pos += 1;
                }
                '[' if self.peek() == Some(':') => {
                    simple = false;
                    while let Some(c) = self.peek() {
                        self.pos += 1;
                        if c == ']' {
                            break;
                        }
                    }
                }
                '-' if !first && self.peek() != Some(']') => simple = false,
                c => members.push(c),
            }
            first = false;
        }
        let _ = start;
        members.dedup();
        match members.as_slice() {
            [c] if simple => Shape::Lit {
                text: c.to_string(),
                fold: false,
            },
            [a, b] if simple && a != b && a.to_lowercase().eq(b.to_lowercase()) => Shape::Lit {
                text: a.to_string(),
                fold: true,
            },
            _ => Shape::Other,
        }
    }

    fn escape(&mut self, flags: Flags) -> Shape {
        let Some(c) = self.peek() else {
            return Shape::Other;
        };
        self.pos += 1;
        let lit = |ch: char| Shape::Lit {
            text: ch.to_string(),
            fold: flags.fold,
        };
        match c {
            'n' => lit('\n'),
            't' => lit('\t'),
            'r' => lit('\r'),
            'f' => lit('\x0c'),
            'v' => lit('\x0b'),
            'a' => lit('\x07'),
            'x' => {
                let digits: String = if self.peek() == Some('{') {
                    self.pos += 1;
                    let mut d = String::new();
                    while let Some(c) = self.peek() {
                        self.pos += 1;
                        if c == '}' {
                            break;
                        }
                        d.push(c);
                    }
                    d
                } else {
                    let d: String = self.chars[self.pos..].iter().take(2).collect();
                    self.pos += d.chars().count();
                    d
                };
                u32::from_str_radix(&digits, 16)
                    .ok()
                    .and_then(char::from_u32)
                    .map_or(Shape::Other, lit)
            }
            c if c.is_ascii_punctuation() => lit(c),
            // Classes (`\d`, `\w`, `\pL`), anchors (`\b`, `\A`, `\z`), octal escapes.
            'p' | 'P' => {
                if self.peek() == Some('{') {
                    while let Some(c) = self.peek() {
                        self.pos += 1;
                        if c == '}' {
                            break;
                        }
                    }
                } else {
                    self.pos += 1;
                }
                Shape::Other
            }
            _ => Shape::Other,
        }
    }
}

/// Appends to a concatenation, merging adjacent literals with the same flags as Go's parser
/// does (`abc` is one literal, `a(?i)b` two).
fn push_concat(items: &mut Vec<Shape>, shape: Shape) {
    match shape {
        Shape::Empty => {}
        Shape::Concat(subs) => {
            for s in subs {
                push_concat(items, s);
            }
        }
        Shape::Lit { text, fold } => {
            if let Some(Shape::Lit {
                text: prev,
                fold: prev_fold,
            }) = items.last_mut()
                && *prev_fold == fold
            {
                prev.push_str(&text);
                return;
            }
            items.push(Shape::Lit { text, fold });
        }
        other => items.push(other),
    }
}

/// The leading literal of an alternative (Go's `leadingString`).
fn leading_literal(shape: &Shape) -> Option<(&str, bool)> {
    match shape {
        Shape::Lit { text, fold } => Some((text.as_str(), *fold)),
        Shape::Concat(subs) => match subs.first() {
            Some(Shape::Lit { text, fold }) => Some((text.as_str(), *fold)),
            _ => None,
        },
        _ => None,
    }
}

/// Removes the first `n` characters of an alternative's leading literal (Go's
/// `removeLeadingString`).
fn remove_leading(shape: Shape, n: usize) -> Shape {
    let cut = |text: String| text.chars().skip(n).collect::<String>();
    match shape {
        Shape::Lit { text, fold } => {
            let rest = cut(text);
            if rest.is_empty() {
                Shape::Empty
            } else {
                Shape::Lit { text: rest, fold }
            }
        }
        Shape::Concat(mut subs) => {
            if let Some(Shape::Lit { text, fold }) = subs.first().cloned() {
                let rest = cut(text);
                if rest.is_empty() {
                    subs.remove(0);
                } else {
                    subs[0] = Shape::Lit { text: rest, fold };
                }
            }
            match subs.len() {
                0 => Shape::Empty,
                1 => subs.pop().unwrap_or(Shape::Empty),
                _ => Shape::Concat(subs),
            }
        }
        other => other,
    }
}

/// Go's alternation rewriting: nested alternations flattened, common literal prefixes
/// factored out, runs of single characters made into a class, repeated empty alternatives
/// merged.
fn collapse_alternation(alts: Vec<Shape>) -> Shape {
    let mut flat = Vec::new();
    for a in alts {
        match a {
            Shape::Alt(subs) => flat.extend(subs),
            other => flat.push(other),
        }
    }
    // Round 1: common literal prefixes.
    let mut out: Vec<Shape> = Vec::new();
    let mut i = 0;
    while i < flat.len() {
        let Some((first, fold)) = leading_literal(&flat[i]).map(|(s, f)| (s.to_string(), f)) else {
            out.push(flat[i].clone());
            i += 1;
            continue;
        };
        let mut common: Vec<char> = first.chars().collect();
        let mut j = i + 1;
        while j < flat.len() {
            let Some((next, next_fold)) = leading_literal(&flat[j]) else {
                break;
            };
            if next_fold != fold {
                break;
            }
            let same = common
                .iter()
                .zip(next.chars())
                .take_while(|(a, b)| **a == *b)
                .count();
            if same == 0 {
                break;
            }
            common.truncate(same);
            j += 1;
        }
        if j - i >= 2 {
            let n = common.len();
            let suffixes: Vec<Shape> = flat[i..j]
                .iter()
                .cloned()
                .map(|s| remove_leading(s, n))
                .collect();
            let prefix = Shape::Lit {
                text: common.into_iter().collect(),
                fold,
            };
            let mut items = Vec::new();
            push_concat(&mut items, prefix);
            let suffix = collapse_alternation(suffixes);
            match suffix {
                Shape::Empty => {}
                Shape::Concat(subs) => items.push(Shape::Concat(subs)),
                other => items.push(other),
            }
            out.push(if items.len() == 1 {
                items.pop().unwrap_or(Shape::Empty)
            } else {
                Shape::Concat(items)
            });
        } else {
            out.push(flat[i].clone());
        }
        i = j;
    }
    // Round 3: runs of single characters (or `.`) become a class.
    let is_char = |s: &Shape| match s {
        Shape::Lit { text, .. } => text.chars().count() == 1,
        Shape::AnyNotNl => true,
        _ => false,
    };
    let mut merged: Vec<Shape> = Vec::new();
    let mut run = 0;
    for s in out {
        if is_char(&s) {
            run += 1;
            if run >= 2 {
                merged.pop();
                merged.push(Shape::Other);
                continue;
            }
        } else {
            run = 0;
        }
        merged.push(s);
    }
    // Round 4: consecutive empty alternatives are one.
    merged.dedup_by(|a, b| *a == Shape::Empty && *b == Shape::Empty);
    if merged.len() == 1 {
        return merged.pop().unwrap_or(Shape::Empty);
    }
    Shape::Alt(merged)
}

fn uncapture(shape: &Shape) -> &Shape {
    match shape {
        Shape::Capture(inner) => inner,
        other => other,
    }
}

/// Loki's `RegexSimplifier.Simplify` for label regexes.
fn simplify(shape: &Shape) -> bool {
    match shape {
        Shape::Alt(alts) => alts.iter().all(|a| simplify(uncapture(a))),
        Shape::Concat(subs) => simplify_concat(subs, None),
        Shape::Capture(inner) => simplify(inner),
        Shape::Lit { .. } | Shape::Empty => true,
        Shape::Star(sub) | Shape::Plus(sub) => **sub == Shape::AnyNotNl,
        Shape::AnyNotNl | Shape::Other => false,
    }
}

/// Loki's `simplifyConcat`: at most three pieces, one literal, `.*` around it, or a literal
/// followed by an alternation of suffixes.
fn simplify_concat(subs: &[Shape], base: Option<(String, bool)>) -> bool {
    let subs: Vec<&Shape> = subs
        .iter()
        .map(uncapture)
        .filter(|s| **s != Shape::Empty)
        .collect();
    if subs.len() > 3 {
        return false;
    }
    let mut base = base;
    let mut literals = 0;
    let mut alternated = false;
    for sub in subs {
        match sub {
            Shape::Lit { text, fold } => {
                if literals != 0 {
                    return false;
                }
                literals += 1;
                let mut joined = base.map(|(b, _)| b).unwrap_or_default();
                joined.push_str(text);
                base = Some((joined, *fold));
            }
            Shape::Alt(alts) if base.is_some() => {
                if !simplify_concat_alternate(alts, base.as_ref()) {
                    return false;
                }
                alternated = true;
            }
            Shape::Star(inner) if **inner == Shape::AnyNotNl => {}
            _ => return false,
        }
    }
    alternated || base.is_some()
}

/// Loki's `simplifyConcatAlternate`: each alternative of `lit(a|b|...)` must be empty, a
/// literal, `.*` or a concatenation that simplifies with the literal in front.
fn simplify_concat_alternate(alts: &[Shape], base: Option<&(String, bool)>) -> bool {
    let base_fold = base.is_some_and(|(_, f)| *f);
    !alts.is_empty()
        && alts.iter().all(|alt| {
            let alt_fold = matches!(alt, Shape::Lit { fold: true, .. });
            if !base_fold && alt_fold {
                return false;
            }
            match alt {
                Shape::Empty | Shape::Lit { .. } => true,
                Shape::Concat(subs) => simplify_concat(subs, base.cloned()),
                Shape::Star(inner) => **inner == Shape::AnyNotNl,
                _ => false,
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simplified_like_loki() {
        for re in [
            "foo",
            ".*",
            ".+",
            "",
            "foo.*",
            ".*foo.*",
            "(?i)foo",
            "foo|bar",
            "foo|foobar",
            "(foo|bar)",
            "\\.",
            "[a]",
            ".*(?i)foo",
            "(.*)(foo)",
        ] {
            assert!(loki_simplifies_label_regex(re), "{re}");
        }
        for re in [
            "\\w.*",
            "a|b",
            "foo.bar",
            "^foo",
            ".*foo.*bar",
            "foo(?i)bar",
            "[ab]",
            "\\d+",
            "a?",
            "abc|abd",
            ".*?(GET|POST|PUT|DELETE|PATCH|HEAD|OPTIONS) /loki/api/(?i)(\\d+[a-z]|[a-z]+\\d)\\w*/query_range",
        ] {
            assert!(!loki_simplifies_label_regex(re), "{re}");
        }
    }
}

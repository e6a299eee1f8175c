//! The path expressions of `| json label="expression"` (Loki's `jsonexpr` package):
//! `a.b[0]`, `["key with space"]`, `a["b"].c`.
//!
//! Which question it answers: "which value does this expression name?" A path is a list of
//! keys and array indexes. The error texts are those of Loki's generated parser
//! (`syntax error: unexpected DOT, expecting FIELD`), which a user sees in the 400 answer.

/// The most elements a path may have. Loki sets none; the scanner recurses once per element
/// below an array, so this bounds its stack use. Real paths have a handful.
pub(crate) const JSON_PATH_ELEMENTS_MAX: usize = 64;

/// One step of a path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum PathElement {
    Key(String),
    Index(i64),
}

impl PathElement {
    /// The form the scanner matches: a key as is, an index as `[N]`.
    pub fn to_scanner_key(&self) -> String {
        match self {
            PathElement::Key(k) => k.clone(),
            PathElement::Index(i) => format!("[{i}]"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Dot,
    Lsb,
    Rsb,
    Str(String),
    Field(String),
    Index(i64),
    End,
}

impl Token {
    /// The name Loki's parser gives the token in its messages.
    fn name(&self) -> &'static str {
        match self {
            Token::Dot => "DOT",
            Token::Lsb => "LSB",
            Token::Rsb => "RSB",
            Token::Str(_) => "STRING",
            Token::Field(_) => "FIELD",
            Token::Index(_) => "INDEX",
            Token::End => "$end",
        }
    }
}

/// Loki's `jsonexpr` lexer. An error is remembered and lexing stops (the end token), as in
/// Loki, where a later syntax error then replaces the message.
struct Lexer<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
    error: Option<String>,
}

fn is_start_identifier(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

impl Lexer<'_> {
    fn next_token(&mut self) -> Token {
        loop {
            let Some(c) = self.chars.next() else {
                return Token::End;
            };
            match c {
                '\0' => return Token::End,
                ' ' | '\t' | '\n' => continue,
                '0'..='9' => return self.index(c),
                '[' => return Token::Lsb,
                ']' => return Token::Rsb,
                '.' => return Token::Dot,
                c if is_start_identifier(c) => {
                    let mut field = String::from(c);
                    while let Some(&c) = self.chars.peek() {
                        if !(is_start_identifier(c) || c.is_ascii_digit()) {
                            break;
                        }
                        field.push(c);
                        self.chars.next();
                    }
                    return Token::Field(field);
                }
                '"' => {
                    // Up to the next quote or `]`, which ends it too (and is consumed).
                    let mut s = String::new();
                    for c in self.chars.by_ref() {
                        if c == '\0' || c == '"' || c == ']' {
                            break;
                        }
                        s.push(c);
                    }
                    return Token::Str(s);
                }
                c => {
                    self.error = Some(format!("unexpected char {c}"));
                    return Token::End;
                }
            }
        }
    }

    fn index(&mut self, first: char) -> Token {
        let mut digits = String::from(first);
        loop {
            // The end of input reads as NUL, which is not a digit (as in Loki).
            let c = self.chars.peek().copied().unwrap_or('\0');
            if c == '.' {
                self.error = Some("cannot use float as array index".into());
                return Token::End;
            }
            if matches!(c, ' ' | '\t' | '\n' | ']') {
                break;
            }
            if !c.is_ascii_digit() {
                self.error = Some(format!("non-integer value: {c}"));
                return Token::End;
            }
            digits.push(c);
            self.chars.next();
        }
        match digits.parse() {
            Ok(n) => Token::Index(n),
            Err(_) => {
                self.error = Some(format!(
                    "strconv.Atoi: parsing {}: value out of range",
                    crate::logql::quote_go(&digits)
                ));
                Token::End
            }
        }
    }
}

fn unexpected(token: &Token, expecting: &str) -> String {
    if expecting.is_empty() {
        format!("syntax error: unexpected {}", token.name())
    } else {
        format!(
            "syntax error: unexpected {}, expecting {expecting}",
            token.name()
        )
    }
}

/// Parses a path expression. Errors carry Loki's text.
pub(crate) fn parse_json_path(expr: &str) -> Result<Vec<PathElement>, String> {
    let mut lexer = Lexer {
        chars: expr.chars().peekable(),
        error: None,
    };
    let mut path = Vec::new();
    // The grammar: (FIELD | [STRING] | [INDEX]) then any of ([STRING] | [INDEX] | .FIELD).
    let mut token = lexer.next_token();
    match token {
        Token::Field(f) => path.push(PathElement::Key(f)),
        Token::Lsb => path.push(bracketed(&mut lexer)?),
        other => return Err(unexpected(&other, "LSB or FIELD")),
    }
    loop {
        token = lexer.next_token();
        match token {
            Token::End => break,
            Token::Lsb => path.push(bracketed(&mut lexer)?),
            Token::Dot => match lexer.next_token() {
                Token::Field(f) => path.push(PathElement::Key(f)),
                other => return Err(unexpected(&other, "FIELD")),
            },
            // After a complete path Loki's parser reduces first, then lists nothing.
            other => return Err(unexpected(&other, "")),
        }
        if path.len() > JSON_PATH_ELEMENTS_MAX {
            return Err(format!(
                "the path has more than {JSON_PATH_ELEMENTS_MAX} elements"
            ));
        }
    }
    match lexer.error {
        Some(e) => Err(e),
        None => Ok(path),
    }
}

/// After `[`: a string key or an index, then `]`.
fn bracketed(lexer: &mut Lexer<'_>) -> Result<PathElement, String> {
    let element = match lexer.next_token() {
        Token::Str(s) => PathElement::Key(s),
        Token::Index(i) => PathElement::Index(i),
        other => return Err(unexpected(&other, "STRING or INDEX")),
    };
    match lexer.next_token() {
        Token::Rsb => Ok(element),
        other => Err(unexpected(&other, "RSB")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> PathElement {
        PathElement::Key(s.into())
    }

    #[test]
    fn paths() {
        assert_eq!(parse_json_path("app").unwrap(), [key("app")]);
        assert_eq!(
            parse_json_path(r#"pod.deployment.params[0]["param"]"#).unwrap(),
            [
                key("pod"),
                key("deployment"),
                key("params"),
                PathElement::Index(0),
                key("param")
            ]
        );
        assert_eq!(
            parse_json_path(r#"["field with ÜFT8👌"]"#).unwrap(),
            [key("field with ÜFT8👌")]
        );
    }

    #[test]
    fn errors_follow_loki() {
        let err = |s: &str| parse_json_path(s).unwrap_err();
        assert_eq!(err("field with space"), "syntax error: unexpected FIELD");
        assert_eq!(
            err(r#""pod"]"#),
            "syntax error: unexpected STRING, expecting LSB or FIELD"
        );
        assert_eq!(
            err(r#"["pod""#),
            "syntax error: unexpected $end, expecting RSB"
        );
        assert_eq!(
            err("pod..uuid"),
            "syntax error: unexpected DOT, expecting FIELD"
        );
        assert_eq!(err("a.b!"), "unexpected char !");
        // The lexer's own error is replaced by the parser's when the parse then fails.
        assert_eq!(
            err("a[1.5]"),
            "syntax error: unexpected $end, expecting STRING or INDEX"
        );
        assert!(parse_json_path("").is_err());
        let long = vec!["a"; JSON_PATH_ELEMENTS_MAX + 1].join(".");
        assert!(err(&long).contains("more than"));
    }
}

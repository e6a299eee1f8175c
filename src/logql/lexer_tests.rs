//! Unit tests of the lexer: selectors and filters, keywords by context, numbers, durations,
//! bytes and ranges, comments, strings with Go's escapes, and errors with their positions.

use super::*;

fn kinds(src: &str) -> Vec<String> {
    lex(src)
        .unwrap()
        .into_iter()
        .filter(|t| t.tok != Tok::Eof)
        .map(|t| t.tok.describe())
        .collect()
}

#[test]
fn selector_and_filters() {
    assert_eq!(
        kinds(r#"{foo="bar"}"#),
        ["{", "IDENTIFIER", "=", "STRING", "}"]
    );
    assert_eq!(
        kinds("{foo=\"bar\"} |~  `\\w+` != \"x\" !> \"y\" |> `z` !~ \"q\""),
        [
            "{",
            "IDENTIFIER",
            "=",
            "STRING",
            "}",
            "|~",
            "STRING",
            "!=",
            "STRING",
            "!>",
            "STRING",
            "|>",
            "STRING",
            "!~",
            "STRING"
        ]
    );
}

#[test]
fn keywords_depend_on_what_follows() {
    assert_eq!(kinds("rate"), ["IDENTIFIER"]);
    assert_eq!(kinds("rate("), ["RATE", "("]);
    assert_eq!(kinds("SUM BY (a)"), ["SUM", "by", "(", "IDENTIFIER", ")"]);
    assert_eq!(kinds("sum byfoo"), ["IDENTIFIER", "IDENTIFIER"]);
    assert_eq!(kinds("ip ip("), ["IDENTIFIER", "ip", "("]);
    assert_eq!(kinds("unwrap bytes"), ["unwrap", "IDENTIFIER"]);
    assert_eq!(kinds("bytes(x)"), ["BYTES_CONV", "(", "IDENTIFIER", ")"]);
    assert_eq!(kinds("json Or"), ["json", "or"]);
    assert_eq!(kinds("a @ :"), ["IDENTIFIER"; 3]);
}

#[test]
fn numbers_durations_bytes_ranges_flags() {
    assert_eq!(kinds("123 1e6 0x1A 0x1p3 .5 1.5 0b01"), ["NUMBER"; 7]);
    assert_eq!(kinds("123ms 1h15m30.918273645s 5d -1s"), ["DURATION"; 4]);
    assert_eq!(kinds("123KB 2.5KiB 0B 123PB"), ["BYTES"; 4]);
    assert_eq!(
        kinds("-123 34-123"),
        ["-", "NUMBER", "NUMBER", "-", "NUMBER"]
    );
    assert_eq!(kinds("5mb"), ["DURATION", "IDENTIFIER"]);
    assert_eq!(
        kinds("--strict --keep-empty --x"),
        ["FUNCTION_FLAG", "FUNCTION_FLAG", "-", "-", "IDENTIFIER"]
    );
    assert_eq!(lex("[5m]").unwrap()[0].tok, Tok::Range(300_000_000_000));
    assert!(lex("[1.5h]").is_err(), "ranges are Prometheus durations");
    assert!(lex("[ 5m]").is_err());
    assert!(lex("09").is_err(), "invalid digit in octal literal");
    assert!(lex("1e").is_err());
    assert!(lex("0x").is_err());
    assert!(lex("1__0").is_err());
    assert_eq!(lex("09.5").unwrap()[0].tok, Tok::Number("09.5".into()));
}

#[test]
fn comments() {
    assert_eq!(
        kinds("{foo=\"bar\"} #|~ \"\\\\w+\""),
        ["{", "IDENTIFIER", "=", "STRING", "}"]
    );
    assert!(kinds("#{foo=\"bar\"}").is_empty());
    assert_eq!(kinds("{foo=\"#\"}").len(), 5);
    assert_eq!(kinds("1 // 2\n+ /* 3 */ 4"), ["NUMBER", "+", "NUMBER"]);
    assert!(lex("1 /* 2").is_err());
}

#[test]
fn string_escapes() {
    let toks = lex(r#""a\"b\n\x41\101\u00e9\U0001F600""#).unwrap();
    assert_eq!(toks[0].tok, Tok::Str("a\"b\nAAé😀".into()));
    assert!(lex(r#""\q""#).is_err());
    assert!(lex(r#""\'""#).is_err());
    assert!(lex(r#""\xff""#).is_err(), "invalid UTF-8");
    assert!(lex(r#""\ud800""#).is_err(), "a surrogate");
    assert!(lex("\"abc").is_err());
    assert!(lex("\"a\nb\"").is_err());
    assert_eq!(lex("`a\\nb`").unwrap()[0].tok, Tok::Str("a\\nb".into()));
    assert_eq!(lex("'a'").unwrap()[0].tok, Tok::Ident("'a'".into()));
    assert!(lex("'ab'").is_err());
}

#[test]
fn errors_carry_positions() {
    let e = lex("{foo=\"bar}").unwrap_err();
    assert_eq!(
        e.to_string(),
        "parse error at line 1, col 6: literal not terminated"
    );
    let e = lex("rate({ foo = \"bar\" }[5minutes])").unwrap_err();
    assert_eq!(
        e.message(),
        r#"unknown unit "minutes" in duration "5minutes""#
    );
    let e = lex("rate({ foo = \"bar\" }[5)").unwrap_err();
    assert_eq!(e.message(), "missing closing ']' in duration");
    assert_eq!(line_col("ab\ncd", 4), (2, 2));
    let (toks, err) = lex_prefix("{a=\"b\"} | logfmt --strict\"");
    assert!(err.is_some());
    assert_eq!(toks.last().unwrap().tok, Tok::Flag("--strict".into()));
}

//! Unit tests of Go's printing: verbs, flags, widths and errors, floats and quoting.

use super::*;

fn f(format: &str, args: &[Value<'_>]) -> String {
    sprintf(format, args, usize::MAX).unwrap()
}

#[test]
fn floats_print_as_go_does() {
    for (v, want) in [
        (3e6, "3e+06"),
        (3000.0, "3000"),
        (0.003, "0.003"),
        (190.0, "190"),
        (1234567.0, "1.234567e+06"),
        (123456.0, "123456"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
        (2.5, "2.5"),
        (-0.0, "-0"),
        (1e21, "1e+21"),
        (f64::INFINITY, "+Inf"),
        (f64::NAN, "NaN"),
    ] {
        assert_eq!(sprint_value(&Value::Float(v)), want, "{v}");
    }
    assert_eq!(f("%.2f", &[Value::Float(1.23456)]), "1.23");
    assert_eq!(f("%f", &[Value::Float(1.0)]), "1.000000");
    assert_eq!(f("%e", &[Value::Float(1234.5678)]), "1.234568e+03");
    assert_eq!(f("%g", &[Value::Float(1e-7)]), "1e-07");
    assert_eq!(f("%.3g", &[Value::Float(1234.0)]), "1.23e+03");
    assert_eq!(f("%.3g", &[Value::Float(1.0)]), "1");
    assert_eq!(f("%08.3f", &[Value::Float(-3.5)]), "-003.500");
    assert_eq!(f("%+.1e", &[Value::Float(0.0)]), "+0.0e+00");
    assert_eq!(f("%x", &[Value::Float(3.0)]), "0x1.8p+01");
    assert_eq!(f("%#g", &[Value::Float(1.0)]), "1.00000");
}

#[test]
fn printf_verbs_and_errors() {
    let s = |x: &'static str| Value::str(x);
    assert_eq!(
        f("%s|%5s|%-5s|%.2s", &[s("ab"), s("ab"), s("ab"), s("abc")]),
        "ab|   ab|ab   |ab"
    );
    assert_eq!(
        f(
            "%d %5d %-5d| %05d %x %X %o %b %c %U",
            &[
                Value::Int(42),
                Value::Int(42),
                Value::Int(42),
                Value::Int(-42),
                Value::Int(255),
                Value::Int(255),
                Value::Int(8),
                Value::Int(5),
                Value::Int(65),
                Value::Int(0x1F600)
            ]
        ),
        "42    42 42   | -0042 ff FF 10 101 A U+1F600"
    );
    assert_eq!(
        f(
            "%q %v %t",
            &[s("a\"b\n"), Value::Bool(true), Value::Bool(false)]
        ),
        "\"a\\\"b\\n\" true false"
    );
    assert_eq!(f("%d", &[s("x")]), "%!d(string=x)");
    assert_eq!(f("%d %d", &[Value::Int(1)]), "1 %!d(MISSING)");
    assert_eq!(f("%d", &[Value::Int(1), s("x")]), "1%!(EXTRA string=x)");
    assert_eq!(f("%[2]d %[1]d", &[Value::Int(1), Value::Int(2)]), "2 1");
    assert_eq!(f("%*d", &[Value::Int(4), Value::Int(7)]), "   7");
    assert_eq!(f("%", &[]), "%!(NOVERB)");
    assert_eq!(f("%%", &[]), "%");
    assert_eq!(f("%v", &[Value::Nil]), "<nil>");
    assert_eq!(f("%s", &[Value::Nil]), "%!s(<nil>)");
    assert_eq!(f("%x", &[s("hi")]), "6869");
    assert_eq!(f("%T", &[Value::Int64(1)]), "int64");
    assert!(sprintf("%2000000d", &[Value::Int(1)], 1000).is_none());
}

#[test]
fn durations_and_quotes() {
    assert_eq!(duration_string(3_000_000), "3ms");
    assert_eq!(duration_string(190_000_000_000), "3m10s");
    assert_eq!(duration_string(3_661_500_000_000), "1h1m1.5s");
    assert_eq!(duration_string(-1500), "-1.5\u{b5}s");
    assert_eq!(quote("é\t\u{7}\u{200b}"), "\"é\\t\\a\\u200b\"");
    assert_eq!(quote_with("é", '"', true), "\"\\u00e9\"");
    assert_eq!(quote_truncated("abcdefghijklmnop", 10), "\"abcdefghij\"...");
}

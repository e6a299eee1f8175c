//! Unit tests of the template language and of every function Loki exposes, with Go's
//! outputs and error messages; property tests that no template text panics the parser or
//! the renderer.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::{Template, TemplateData, TemplateErrorKind};

struct Line {
    labels: BTreeMap<String, String>,
    line: String,
    ts: i64,
}

impl TemplateData for Line {
    fn label(&self, name: &str) -> Option<&str> {
        self.labels.get(name).map(String::as_str)
    }
    fn for_each_label(&self, f: &mut dyn FnMut(&str, &str)) {
        for (k, v) in &self.labels {
            f(k, v);
        }
    }
    fn line(&self) -> &str {
        &self.line
    }
    fn timestamp_ns(&self) -> i64 {
        self.ts
    }
}

fn data(labels: &[(&str, &str)]) -> Line {
    Line {
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        line: "the line".into(),
        ts: 1_656_331_200_123_456_789,
    }
}

fn try_render(text: &str, labels: &[(&str, &str)]) -> Result<String, super::TemplateError> {
    let t = Template::parse(text)?;
    let mut out = String::new();
    t.render(&data(labels), &mut out)?;
    Ok(out)
}

/// Renders against labels `foo=blip bar=blop n=42 f=2.5 json={...}`.
fn r(text: &str) -> String {
    try_render(text, LABELS).unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// The render error's message.
fn e(text: &str) -> String {
    match try_render(text, LABELS) {
        Ok(out) => panic!("{text}: rendered {out:?}"),
        Err(e) => e.message().to_string(),
    }
}

const LABELS: &[(&str, &str)] = &[
    ("foo", "blip"),
    ("bar", "blop"),
    ("n", "42"),
    ("f", "2.5"),
    ("empty", ""),
    ("json", r#"{"a":1,"b":[1,"x",null],"c":{"d":true}}"#),
];

#[test]
fn text_actions_trim_markers_and_comments() {
    assert_eq!(r("plain"), "plain");
    assert_eq!(r("a{{.foo}}b"), "ablipb");
    assert_eq!(r("a  {{- .foo -}}  \n b"), "ablipb");
    assert_eq!(r("a {{/* a comment */}} b"), "a  b");
    assert_eq!(r("a {{- /* trimmed */ -}} b"), "ab");
    assert_eq!(r("{{-3}}"), "-3");
    assert_eq!(
        r("{{ .missing }}|{{ (fromJson .json).x.y }}"),
        "|<no value>"
    );
    assert_eq!(
        e("{{ .missing.deeper }}"),
        "template: line:1:11: executing \"line\" at <.missing.deeper>: can't evaluate field deeper in type string"
    );
    assert_eq!(r("{{.}}").len(), r("{{$}}").len());
    assert!(r("{{.}}").starts_with("map[bar:blop empty: f:2.5"));
    assert_eq!(r("{{$.foo}}"), "blip");
    assert_eq!(
        r("{{ \"multi\nline\" | printf \"%s\" }}"
            .replace("\n", "\\n")
            .as_str()),
        "multi\nline"
    );
}

#[test]
fn constant_and_simple_templates_are_recognised() {
    let t = Template::parse("a {{- /* c */ -}} b").unwrap();
    assert_eq!(t.is_constant(), Some("ab"));
    assert_eq!(Template::parse("").unwrap().is_constant(), Some(""));
    assert_eq!(Template::parse("{{.x}}").unwrap().is_constant(), None);
    assert_eq!(
        Template::parse("{{ .msg }}").unwrap().simple_field(),
        Some("msg")
    );
    assert_eq!(
        Template::parse("{{ .msg | upper }}")
            .unwrap()
            .simple_field(),
        None
    );
    assert_eq!(Template::parse("{{ .a.b }}").unwrap().simple_field(), None);
}

#[test]
fn literals() {
    assert_eq!(r("{{\"a\\tb\"}}"), "a\tb");
    assert_eq!(r("{{`raw\\n`}}"), "raw\\n");
    assert_eq!(r("{{'a'}} {{'\\n'}}"), "97 10");
    assert_eq!(
        r("{{1}} {{-2}} {{0x1F}} {{1.5}} {{1e3}} {{017}} {{1_000}}"),
        "1 -2 31 1.5 1000 15 1000"
    );
    assert_eq!(r("{{true}} {{false}}"), "true false");
    assert_eq!(r("{{1+2i}} {{2i}}"), "(1+2i) (0+2i)");
    assert_eq!(
        e("{{nil}}"),
        "template: line:1:2: executing \"line\" at <nil>: nil is not a command"
    );
    assert_eq!(
        e("{{18446744073709551615}}"),
        "template: line:1:2: executing \"line\" at <18446744073709551615>: 18446744073709551615 overflows int"
    );
    assert_eq!(
        Template::parse("{{99999999999999999999}}")
            .unwrap_err()
            .message(),
        "template: line:1: integer overflow: \"99999999999999999999\""
    );
}

#[test]
fn variables() {
    assert_eq!(r("{{$x := .foo}}{{$x}}"), "blip");
    assert_eq!(r("{{$x := 1}}{{$x = 2}}{{$x}}"), "2");
    assert_eq!(
        r("{{$x := 1}}{{if true}}{{$x = 2}}{{$y := 3}}{{end}}{{$x}}"),
        "2"
    );
    assert_eq!(r("{{with $x := .foo}}{{$x}}{{.}}{{end}}"), "blipblip");
    assert_eq!(r("{{$x := .foo}}{{$x | upper}}"), "BLIP");
    let parse = |t: &str| Template::parse(t).unwrap_err().message().to_string();
    assert_eq!(
        parse("{{if true}}{{$y := 3}}{{end}}{{$y}}"),
        "template: line:1: undefined variable \"$y\""
    );
    assert_eq!(
        e("{{$x = 1}}"),
        "template: line:1:7: executing \"line\" at <1>: undefined variable: $x"
    );
}

#[test]
fn pipelines_and_parentheses() {
    assert_eq!(r("{{.foo | upper | printf \"<%s>\"}}"), "<BLIP>");
    assert_eq!(
        r("{{ printf \"%s-%s\" (upper .foo) (.bar | lower) }}"),
        "BLIP-blop"
    );
    assert_eq!(r("{{ (fromJson .json).c.d }}"), "true");
    assert_eq!(
        e("{{ \"x\" | .foo }}"),
        "template: line:1:9: executing \"line\" at <.foo>: foo is not a method but has arguments"
    );
    assert_eq!(
        e("{{ .foo | (upper .bar) }}"),
        "template: line:1:3: executing \"line\" at <.foo>: can't give argument to non-function upper .bar"
    );
}

#[test]
fn conditionals() {
    assert_eq!(r("{{if .foo}}yes{{else}}no{{end}}"), "yes");
    assert_eq!(r("{{if .empty}}yes{{else}}no{{end}}"), "no");
    assert_eq!(r("{{if .missing}}a{{else if .foo}}b{{else}}c{{end}}"), "b");
    assert_eq!(
        r("{{if 0}}a{{else if 0.0}}b{{else if \"\"}}c{{else if .missing}}d{{else}}e{{end}}"),
        "e"
    );
    assert_eq!(
        r("{{with .foo}}<{{.}}>{{end}}{{with .empty}}x{{else}}none{{end}}"),
        "<blip>none"
    );
    assert_eq!(r("{{with .empty}}a{{else with .bar}}{{.}}{{end}}"), "blop");
    assert_eq!(r("{{ if and .foo .bar }}both{{ end }}"), "both");
    assert_eq!(
        r("{{ and .foo .empty .bar }}|{{ or .empty .missing .bar }}|{{ or .empty 0 }}"),
        "|blop|0"
    );
    assert_eq!(
        r("{{ and 0 (div 1 0) }} {{ or 1 (div 1 0) }}"),
        "0 1",
        "and/or short-circuit"
    );
}

#[test]
fn ranges() {
    assert_eq!(
        r("{{range $k, $v := .}}{{$k}}={{$v}};{{end}}"),
        "bar=blop;empty=;f=2.5;foo=blip;json=".to_string() + LABELS[5].1 + ";n=42;"
    );
    assert_eq!(
        r("{{range (fromJson .json).b}}[{{.}}]{{end}}"),
        "[1][x][<no value>]"
    );
    assert_eq!(
        r("{{range $i, $e := (fromJson .json).b}}{{$i}}:{{$e}} {{end}}"),
        "0:1 1:x 2:<no value> "
    );
    assert_eq!(
        r("{{range $k, $v := fromJson .json}}{{$k}} {{end}}"),
        "a b c "
    );
    assert_eq!(r("{{range 3}}{{.}}{{end}}"), "012");
    assert_eq!(r("{{range $i := 3}}{{$i}}{{end}}"), "012");
    assert_eq!(r("{{range 0}}x{{else}}empty{{end}}"), "empty");
    assert_eq!(
        r("{{range (fromJson .json).zz}}x{{else}}nothing{{end}}"),
        "nothing"
    );
    // A missing label is an empty string, and a string cannot be ranged over.
    assert_eq!(
        e("{{range .missing}}{{end}}"),
        "template: line:1:8: executing \"line\" at <.missing>: range can't iterate over "
    );
    assert_eq!(
        r("{{range 10}}{{if eq . 2}}{{continue}}{{end}}{{if eq . 4}}{{break}}{{end}}{{.}}{{end}}"),
        "013"
    );
    assert_eq!(r("{{$x := 0}}{{range 3}}{{$x = .}}{{end}}{{$x}}"), "2");
    assert_eq!(
        r("{{$k := \"\"}}{{$v := 0}}{{range $k, $v = fromJson .json}}{{end}}{{$k}}"),
        "c"
    );
    assert_eq!(
        e("{{range .foo}}{{end}}"),
        "template: line:1:8: executing \"line\" at <.foo>: range can't iterate over blip"
    );
    assert_eq!(
        e("{{range $a, $b := 3}}{{end}}"),
        "template: line:1:18: executing \"line\" at <3>: can't use 3 to iterate over more than one variable"
    );
}

#[test]
fn defined_templates() {
    assert_eq!(
        r("{{define \"t\"}}<{{.}}>{{end}}{{template \"t\" .foo}}{{template \"t\"}}"),
        "<blip><<no value>>"
    );
    assert_eq!(r("{{block \"b\" .bar}}[{{.}}]{{end}}"), "[blop]");
    assert_eq!(
        e("{{template \"nope\"}}"),
        "template: line:1:11: executing \"line\" at <{{template \"nope\"}}>: template \"nope\" not defined"
    );
    let err = try_render(
        "{{define \"a\"}}{{template \"a\" .}}{{end}}{{template \"a\" .}}",
        LABELS,
    )
    .unwrap_err();
    assert!(
        err.message().contains("exceeded maximum template depth"),
        "{err}"
    );
    assert_eq!(
        Template::parse("{{define \"a\"}}x{{end}}{{define \"a\"}}y{{end}}")
            .unwrap_err()
            .message(),
        "template: line:1: template: multiple definition of template \"a\""
    );
}

#[test]
fn comparisons() {
    assert_eq!(
        r("{{eq .foo \"blip\"}} {{eq .foo \"a\" \"b\" \"blip\"}} {{ne .foo .bar}}"),
        "true true true"
    );
    assert_eq!(
        r("{{eq 1 1}} {{eq 1.5 1.5}} {{eq true true}} {{eq (add 1 1) 2}}"),
        "true true true true"
    );
    assert_eq!(
        r("{{lt 1 2}} {{le 2 2}} {{gt \"b\" \"a\"}} {{ge 1.5 2.5}}"),
        "true true true false"
    );
    assert_eq!(
        r("{{eq .missing \"\"}} {{eq (index \"a\" 0) 97}}"),
        "true true"
    );
    assert_eq!(r("{{eq nil nil}} {{eq .foo nil}}"), "true false");
    assert_eq!(
        e("{{eq .n 42}}"),
        "template: line:1:2: executing \"line\" at <eq .n 42>: error calling eq: incompatible types for comparison: string and int"
    );
    assert_eq!(
        e("{{lt true false}}"),
        "template: line:1:2: executing \"line\" at <lt true false>: error calling lt: invalid type for comparison"
    );
    assert_eq!(
        e("{{eq 1}}"),
        "template: line:1:2: executing \"line\" at <eq 1>: error calling eq: missing argument for comparison"
    );
    assert!(e("{{eq . .}}").contains("non-comparable type"));
    assert_eq!(r("{{not .foo}} {{not .empty}}"), "false true");
}

#[test]
fn builtins() {
    assert_eq!(
        r("{{len .foo}} {{len .}} {{len (fromJson .json).b}}"),
        "4 6 3"
    );
    assert_eq!(
        r(
            "{{index . \"foo\"}} {{index . \"zz\"}}|{{index (fromJson .json) \"b\" 1}} {{index .foo 1}}"
        ),
        "blip |x 108"
    );
    assert_eq!(
        r("{{slice .foo 1 3}} {{slice .foo 2}} {{slice (fromJson .json).b 1}}"),
        "li ip [x <nil>]"
    );
    assert_eq!(
        r("{{print 1 2 \"a\" \"b\" 3}}|{{println .foo 1}}|"),
        "1 2ab3|blip 1\n|"
    );
    assert_eq!(
        r("{{html \"<a href='x'>\"}} {{js \"it's\"}} {{urlquery \"a b&c\"}}"),
        "&lt;a href=&#39;x&#39;&gt; it\\'s a+b%26c"
    );
    assert_eq!(
        e("{{index .foo 9}}"),
        "template: line:1:2: executing \"line\" at <index .foo 9>: error calling index: index out of range: 9"
    );
    assert_eq!(
        e("{{len 3}}"),
        "template: line:1:2: executing \"line\" at <len 3>: error calling len: len of type int"
    );
    assert_eq!(
        e("{{slice .foo 3 1}}"),
        "template: line:1:2: executing \"line\" at <slice .foo 3 1>: error calling slice: invalid slice index: 3 > 1"
    );
    assert_eq!(
        e("{{call .foo}}"),
        "template: line:1:2: executing \"line\" at <call .foo>: error calling call: non-function .foo of type string"
    );
}

#[test]
fn printf_verbs() {
    assert_eq!(
        r("{{printf \"%s|%5s|%-5s|%q|%v|%x\" .foo .foo .foo .foo .foo .foo}}"),
        "blip| blip|blip |\"blip\"|blip|626c6970"
    );
    assert_eq!(
        r("{{printf \"%d %05d %x %o %b %c %U\" 42 -42 255 8 5 65 65}}"),
        "42 -0042 ff 10 101 A U+0041"
    );
    assert_eq!(
        r("{{printf \"%.2f %f %e %g %v\" 3.14159 1.5 1234.5678 0.00001 2.5}}"),
        "3.14 1.500000 1.234568e+03 1e-05 2.5"
    );
    assert_eq!(
        r("{{printf \"%t %v %T %T\" true nil .foo (add 1 2)}}"),
        "true <nil> string int64"
    );
    assert_eq!(
        r("{{printf \"%d %s\" .foo}}"),
        "%!d(string=blip) %!s(MISSING)"
    );
    assert_eq!(
        r("{{printf \"%s\" .foo .bar}}"),
        "blip%!(EXTRA string=blop)"
    );
    assert_eq!(
        r("{{printf \"%[2]s %[1]s\" .foo .bar}} {{printf \"%*d|%-*d|\" 4 7 3 1}}"),
        "blop blip    7|1  |"
    );
    assert_eq!(
        r("{{printf \"%v\" (fromJson .json)}}"),
        "map[a:1 b:[1 x <nil>] c:map[d:true]]"
    );
    assert_eq!(r("{{printf \"%15.15s|\" .foo}}"), "           blip|");
}

#[test]
fn go_type_checks_of_arguments() {
    assert_eq!(
        e("{{trunc (add 1 1) .foo}}"),
        "template: line:1:15: executing \"line\" at <1>: wrong type for value; expected int; got int64"
    );
    assert_eq!(
        e("{{upper 3}}"),
        "template: line:1:8: executing \"line\" at <3>: expected string; found 3"
    );
    assert_eq!(
        e("{{trunc \"3\" .foo}}"),
        "template: line:1:8: executing \"line\" at <\"3\">: expected integer; found \"3\""
    );
    assert_eq!(
        e("{{upper nil}}"),
        "template: line:1:8: executing \"line\" at <nil>: cannot assign nil to string"
    );
    assert_eq!(
        e("{{upper .}}"),
        "template: line:1:8: executing \"line\" at <.>: wrong type for value; expected string; got map[string]string"
    );
    assert_eq!(
        e("{{unixEpoch \"x\"}}"),
        "template: line:1:12: executing \"line\" at <\"x\">: can't handle \"x\" for arg of type time.Time"
    );
    assert_eq!(
        e("{{.foo.bar}}"),
        "template: line:1:6: executing \"line\" at <.foo.bar>: can't evaluate field bar in type string"
    );
    assert_eq!(
        e("{{upper}}"),
        "template: line:1:2: executing \"line\" at <upper>: wrong number of args for upper: want 1 got 0"
    );
    assert_eq!(
        e("{{printf}}"),
        "template: line:1:2: executing \"line\" at <printf>: wrong number of args for printf: want at least 1 got 0"
    );
    assert_eq!(
        Template::parse("{{regexMatch \"a\" .foo}}")
            .unwrap_err()
            .message(),
        "template: line:1: function \"regexMatch\" not defined"
    );
    // Loki's own test: the message that lands in __error_details__.
    let t = Template::parse_named("label", "{{replace \"test\" .foo}}").unwrap();
    let err = t.render(&data(LABELS), &mut String::new()).unwrap_err();
    assert_eq!(err.kind(), TemplateErrorKind::Exec);
    assert_eq!(
        err.message(),
        "template: label:1:2: executing \"label\" at <replace>: wrong number of args for replace: want 3 got 2"
    );
}

#[test]
fn loki_string_functions() {
    assert_eq!(
        r(
            "{{ToLower \"ABC\"}} {{ToUpper .foo}} {{lower \"ÀB\"}} {{upper \"àb\"}} {{title \"hello wORLD\"}}"
        ),
        "abc BLIP àb ÀB Hello WORLD"
    );
    assert_eq!(
        r(
            "{{Replace .foo \"i\" \"o\" -1}} {{Replace \"aaa\" \"a\" \"b\" 2}} {{replace \"b\" \"c\" .bar}}"
        ),
        "blop bba clop"
    );
    assert_eq!(
        r(
            "{{Trim \"xxaxx\" \"x\"}} {{TrimLeft \"xxa\" \"x\"}} {{TrimRight \"axx\" \"x\"}} {{TrimPrefix .foo \"bl\"}} {{TrimSuffix .foo \"ip\"}} [{{TrimSpace \"  a \"}}]"
        ),
        "a a a ip bl [a]"
    );
    assert_eq!(
        r(
            "[{{trim \"  a \"}}] {{trimAll \"$\" \"$5.00$\"}} {{trimPrefix \"-\" \"-a\"}} {{trimSuffix \"-\" \"a-\"}}"
        ),
        "[a] 5.00 a a"
    );
    assert_eq!(
        r("{{trunc 2 .foo}} {{trunc -2 .foo}} {{substr 1 3 .foo}} {{substr 2 -1 .foo}}"),
        "bl ip li ip"
    );
    assert_eq!(
        r("{{contains \"li\" .foo}} {{hasPrefix \"bl\" .foo}} {{hasSuffix \"x\" .foo}}"),
        "true true false"
    );
    assert_eq!(
        r("{{indent 2 \"a\\nb\"}}|{{nindent 2 \"a\"}}"),
        "  a\n  b|\n  a"
    );
    assert_eq!(r("{{repeat 3 \"ab\"}} {{ \"x\" | repeat 2 }}"), "ababab xx");
    assert_eq!(
        r(
            "[{{alignLeft 6 .foo}}] [{{alignRight 6 .foo}}] {{alignLeft 2 .foo}} {{alignRight 2 .foo}}"
        ),
        "[blip  ] [  blip] bl ip"
    );
    assert_eq!(
        r("{{b64enc .foo}} {{b64dec \"YmxpcA==\"}} {{b64dec \"YmxpcA\"}}"),
        "YmxpcA== blip blip"
    );
    assert_eq!(
        r("{{urlencode \"a b/é\"}} {{urldecode \"a+b%2F\"}}"),
        "a+b%2F%C3%A9 a b/"
    );
    assert_eq!(
        e("{{urldecode \"%zz\"}}"),
        "template: line:1:2: executing \"line\" at <urldecode \"%zz\">: error calling urldecode: invalid URL escape \"%zz\""
    );
    assert_eq!(
        e("{{repeat -1 \"a\"}}"),
        "template: line:1:2: executing \"line\" at <repeat -1 \"a\">: error calling repeat: strings: negative Repeat count"
    );
    assert_eq!(
        r("{{.empty | default \"-\"}} {{.foo | default \"-\"}} {{default \"d\"}} {{default 5 0}}"),
        "- blip d 5"
    );
}

#[test]
fn loki_regex_functions() {
    assert_eq!(
        r(
            "{{regexReplaceAll \"(l)(i)\" .foo \"${2}$1\"}} {{regexReplaceAllLiteral \"l\" .foo \"$1\"}}"
        ),
        "bilp b$1ip"
    );
    assert_eq!(
        r("{{count \"b|l\" .foo}} {{.foo | count \"x\"}} {{count \"\" \"ab\"}}"),
        "2 0 3"
    );
    let dynamic = "{{$re := \"p$\"}}{{regexReplaceAll $re .foo \"P\"}}";
    assert_eq!(r(dynamic), "bliP");
    assert!(e("{{regexReplaceAll \"(\" .foo \"x\"}}").starts_with("template: line:1:2: executing \"line\" at <regexReplaceAll \"(\" .foo \"x\">: error calling regexReplaceAll: error parsing regexp"));
    assert!(e("{{count \"(a{1000}){1000}\" .foo}}").contains("error parsing regexp"));
}

#[test]
fn loki_math_functions() {
    assert_eq!(
        r("{{add 1 2 3}} {{sub 5 7}} {{mul 2 3 4}} {{div 7 2}} {{mod 7 3}} {{add .n 1}}"),
        "6 -2 24 3 1 43"
    );
    assert_eq!(
        r("{{addf 1.1 2.2}} {{subf 5.5 2 1.5}} {{mulf 5.5 2 2.5}} {{divf 10 2 4}} {{divf 1 3}}"),
        "3.3 2 27.5 1.25 0.3333333333333333"
    );
    assert_eq!(
        r("{{max 1 5 3}} {{min 4 2 8}} {{maxf 1 2.5 3}} {{minf 1.5 2 3}}"),
        "5 2 3 1.5"
    );
    assert_eq!(
        r(
            "{{ceil 1.2}} {{floor 1.8}} {{round 123.555555 3}} {{round 123.88571428571 5 .2}} {{round -2.5 0}}"
        ),
        "2 1 123.556 123.88572 -3"
    );
    assert_eq!(
        r(
            "{{int \"42\"}} {{int .f}} {{int 2.9}} {{float64 .f}} {{float64 \"x\"}} {{\"2.5\" | float64 | int | add 10}}"
        ),
        "42 2 2 2.5 0 12"
    );
    assert_eq!(
        r("{{printf \"%T %T %T %T\" (int 1) (add 1) (float64 1) (addf 1)}}"),
        "int int64 float64 float64"
    );
    assert_eq!(
        e("{{div 1 0}}"),
        "template: line:1:2: executing \"line\" at <div 1 0>: error calling div: runtime error: integer divide by zero"
    );
    assert_eq!(
        e("{{divf 1 0}}"),
        "template: line:1:2: executing \"line\" at <divf 1 0>: error calling divf: decimal division by 0"
    );
    assert_eq!(
        r(
            "{{bytes \"3 kB\"}} {{bytes \"2 KiB\"}} {{duration \"1m30s\"}} {{duration_seconds \"1.5ms\"}}"
        ),
        "3000 2048 90 0.0015"
    );
    assert_eq!(
        e("{{bytes \"x\"}}"),
        "template: line:1:2: executing \"line\" at <bytes \"x\">: error calling bytes: strconv.ParseFloat: parsing \"\": invalid syntax"
    );
}

#[test]
fn loki_time_functions() {
    // The data's timestamp is 2022-06-27T12:00:00.123456789Z.
    assert_eq!(
        r("{{__timestamp__}}"),
        "2022-06-27 12:00:00.123456789 +0000 UTC"
    );
    assert_eq!(
        r("{{__timestamp__ | date \"2006-01-02T15:04:05.00Z07:00\"}}"),
        "2022-06-27T12:00:00.12Z"
    );
    assert_eq!(
        r(
            "{{__timestamp__ | unixEpoch}} {{unixEpochMillis __timestamp__}} {{unixEpochNanos __timestamp__}}"
        ),
        "1656331200 1656331200123 1656331200123456789"
    );
    assert_eq!(r("{{__line__}}"), "the line");
    assert_eq!(
        r("{{toDate \"2006-01-02\" \"2021-11-02\" | unixEpoch}}"),
        "1635811200"
    );
    assert_eq!(
        r("{{toDate \"2006-01-02\" \"junk\"}}"),
        "0001-01-01 00:00:00 +0000 UTC"
    );
    assert_eq!(
        r("{{toDateInZone \"2006-01-02 15:04\" \"UTC\" \"2021-11-02 10:30\" | unixEpoch}}"),
        "1635849000"
    );
    assert_eq!(
        r("{{toDateInZone \"2006-01-02\" \"Not/AZone\" \"2021-11-02\" | unixEpoch}}"),
        "1635811200"
    );
    assert_eq!(
        r(
            "{{unixToTime \"19503\"}}|{{unixToTime \"1679577215\"}}|{{unixToTime \"1673798889902\"}}"
        ),
        "2023-05-26 00:00:00 +0000 UTC|2023-03-23 13:13:35 +0000 UTC|2023-01-15 16:08:09.902 +0000 UTC"
    );
    assert_eq!(
        e("{{unixToTime \"123\"}}"),
        "template: line:1:2: executing \"line\" at <unixToTime \"123\">: error calling unixToTime: unable to parse time '123': %!w(<nil>)"
    );
    assert_eq!(
        e("{{unixToTime \"abc\"}}"),
        "template: line:1:2: executing \"line\" at <unixToTime \"abc\">: error calling unixToTime: unable to parse time 'abc': strconv.ParseInt: parsing \"abc\": invalid syntax"
    );
    assert_eq!(
        r("{{date \"2006\" 0}} {{div (unixEpoch now) (unixEpoch now)}}"),
        "1970 1"
    );
    assert_eq!(
        r(
            "{{__timestamp__.Unix}} {{__timestamp__.Format \"Jan 2\"}} {{__timestamp__.Month}} {{__timestamp__.Weekday}} {{__timestamp__.Year}}"
        ),
        "1656331200 Jun 27 June Monday 2022"
    );
    assert_eq!(
        r("{{(toDate \"2006-01-02\" \"2021-11-03\").Sub (toDate \"2006-01-02\" \"2021-11-02\")}}"),
        "24h0m0s"
    );
    assert_eq!(
        r("{{fromJson \"{\\\"foo\\\": 55}\"}} {{fromJson \"oops\"}}"),
        "map[foo:55] <no value>"
    );
    if let Ok(t) = Template::parse(
        "{{toDateInZone \"2006-01-02 15:04\" \"America/New_York\" \"2024-07-01 08:00\"}}",
    ) {
        let mut out = String::new();
        t.render(&data(&[]), &mut out).unwrap();
        // Without zoneinfo on the machine the zone falls back to UTC, as in Loki.
        assert!(
            out == "2024-07-01 08:00:00 -0400 EDT" || out == "2024-07-01 08:00:00 +0000 UTC",
            "{out}"
        );
    }
}

#[test]
fn renders_are_bounded() {
    let limit = |text: &str| {
        let err = try_render(text, LABELS).unwrap_err();
        assert_eq!(err.kind(), TemplateErrorKind::Limit, "{text}: {err}");
    };
    limit("{{repeat 2000000 \"a\"}}");
    limit("{{range 2000000}}{{end}}");
    limit("{{range 100000}}{{.}}{{.}}{{end}}");
    limit("{{printf \"%1000000d%1000000d\" 1 2}}");
    limit("{{$a := repeat 1000000 \"a\"}}{{range 100}}{{$a = printf \"%s\" $a}}{{end}}");
    limit("{{indent 1000000 \"\\n\\n\\n\"}}");
    limit("{{$x := repeat 1000000 \"a\"}}{{range 1000}}{{if contains \"b\" $x}}{{end}}{{end}}");
    // Copying a long value is free: only the steps bound this loop.
    limit("{{$x := repeat 1000000 \"a\"}}{{range 1000000}}{{$y := $x}}{{end}}");
    limit(
        &"{{__line__}}"
            .repeat(1000)
            .replace("__line__", "repeat 2000 \"ab\""),
    );
    // A failed render leaves the output as it was.
    let t = Template::parse("abc{{repeat 2000000 \"a\"}}").unwrap();
    let mut out = String::from("keep");
    assert!(t.render(&data(&[]), &mut out).is_err());
    assert_eq!(out, "keep");
    // Nesting at the parse limit still renders.
    let deep = format!("{}x{}", "{{if 1}}".repeat(60), "{{end}}".repeat(60));
    assert_eq!(r(&deep), "x");
    let parens = format!("{{{{{}1{}}}}}", "(".repeat(60), ")".repeat(60));
    assert_eq!(r(&parens), "1");
}

/// The worst nesting the limits allow parses and renders in a quarter of the 2 MiB stack of
/// the server's executor threads, in a debug build.
#[test]
fn deep_templates_fit_a_small_stack() {
    let n = super::NESTING_DEPTH_MAX - 2;
    let texts = [
        format!("{}x{}", "{{if 1}}".repeat(n), "{{end}}".repeat(n)),
        format!("{{{{{}upper .foo{}}}}}", "(".repeat(n), ")".repeat(n)),
        format!("{{{{if 0}}}}{}z{{{{end}}}}", "{{else if 0}}".repeat(n)),
        format!("{}{{{{.}}}}{}", "{{range 1}}{{with 1}}".repeat(n / 2), "{{end}}{{end}}".repeat(n / 2)),
        "{{define \"a\"}}{{if 1}}{{template \"a\" (print (print .))}}{{end}}{{end}}{{template \"a\" .}}".to_string(),
    ];
    let handle = std::thread::Builder::new()
        .stack_size(512 * 1024)
        .spawn(move || {
            for (i, text) in texts.iter().enumerate() {
                let t = Template::parse(text).unwrap();
                let r = t.render(&data(LABELS), &mut String::new());
                // All but the endless recursion render.
                assert_eq!(r.is_ok(), i < texts.len() - 1, "{text}: {r:?}");
            }
        })
        .unwrap();
    handle.join().unwrap();
}

#[test]
fn templates_are_shareable() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Template>();
}

/// Pieces of template syntax, for random templates that reach past the lexer.
fn fragment() -> impl Strategy<Value = String> {
    let pieces = [
        "{{",
        "}}",
        "{{- ",
        " -}}",
        "{{/*",
        "*/}}",
        " ",
        "\n",
        ".",
        ".foo",
        ".json",
        "$",
        "$x",
        ":=",
        "=",
        "|",
        "(",
        ")",
        ",",
        "\"",
        "\"a\"",
        "`b`",
        "'c'",
        "1",
        "-2",
        "3.5",
        "0x1f",
        "1e3",
        "2i",
        "true",
        "nil",
        "if",
        "else",
        "end",
        "range",
        "with",
        "define",
        "template",
        "block",
        "break",
        "continue",
        "and",
        "or",
        "not",
        "len",
        "index",
        "slice",
        "print",
        "printf",
        "\"%d %s %v\"",
        "eq",
        "lt",
        "html",
        "js",
        "call",
        "upper",
        "trunc",
        "substr",
        "repeat",
        "add",
        "divf",
        "round",
        "fromJson",
        "date",
        "toDate",
        "unixToTime",
        "__timestamp__",
        "__line__",
        "default",
        "regexReplaceAll",
        "count",
        "\"(a\"",
        "b64dec",
        "alignLeft",
        "indent",
        "é",
        "€",
        "\\",
        "{",
        "}",
        "x",
    ];
    prop_oneof![
        proptest::sample::select(pieces.to_vec()).prop_map(str::to_string),
        any::<char>().prop_map(|c| c.to_string()),
    ]
}

proptest! {
    #[test]
    fn random_templates_never_panic(parts in proptest::collection::vec(fragment(), 0..40)) {
        let text: String = parts.concat();
        if let Ok(t) = Template::parse(&text) {
            let mut out = String::new();
            let _ = t.render(&data(LABELS), &mut out);
            prop_assert!(out.len() <= super::OUTPUT_BYTES_MAX);
        }
    }

    #[test]
    fn arbitrary_text_never_panics(text in ".{0,200}") {
        if let Ok(t) = Template::parse(&text) {
            let _ = t.render(&data(LABELS), &mut String::new());
        }
        let _ = Template::parse(&format!("{{{{ {text} }}}}"));
    }

    #[test]
    fn functions_never_panic_on_label_values(
        func in proptest::sample::select(vec![
            "upper", "title", "trim", "b64dec", "urldecode", "bytes", "duration", "unixToTime",
            "fromJson", "int", "float64", "urlencode", "b64enc", "TrimSpace", "html", "js",
        ]),
        value in ".{0,40}",
        n in -50i64..50,
    ) {
        let labels = [("v", value.as_str())];
        let _ = try_render(&format!("{{{{ {func} .v }}}}"), &labels);
        for f in ["trunc", "alignLeft", "alignRight", "indent", "repeat"] {
            let _ = try_render(&format!("{{{{ {f} {n} .v }}}}"), &labels);
        }
        let _ = try_render(&format!("{{{{ substr {n} {} .v }}}}", n / 2), &labels);
        let _ = try_render(&format!("{{{{ slice .v {} }}}}", n.abs() % 5), &labels);
        let _ = try_render(&format!("{{{{ printf .v {n} .v }}}}"), &labels);
        let _ = try_render("{{ toDate .v .v }}{{ date .v now }}", &labels);
        let _ = try_render("{{ regexReplaceAll .v .v .v }}", &labels);
    }
}

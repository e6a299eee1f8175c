use proptest::prelude::*;

use super::*;

fn stream(pairs: &[(&str, &str)]) -> Labels {
    Labels::from_pairs(pairs.iter().copied())
}

fn field<'a>(fields: &'a [DetectedField], name: &str) -> &'a DetectedField {
    fields
        .iter()
        .find(|f| f.label == name)
        .unwrap_or_else(|| panic!("no field {name} in {fields:?}"))
}

#[test]
fn logfmt_json_and_metadata_fields_are_typed_and_counted() {
    let app = stream(&[("app", "api")]);
    let mut collector = FieldsCollector::new(DEFAULT_FIELD_LIMIT);
    for i in 0..20 {
        collector.add_line(
            &format!(
                "level=info status={} took={}ms size={}KB ok=true",
                200 + i % 3,
                i,
                i
            ),
            &[("trace_id", &format!("t{i}"))],
            &app,
        );
    }
    collector.add_line(
        r#"{"user":{"id":7,"name":"x"},"ratio":0.5,"app":"web"}"#,
        &[("trace_id", "t0")],
        &app,
    );
    let fields = collector.finish();
    let names: Vec<&str> = fields.iter().map(|f| f.label.as_str()).collect();
    assert_eq!(
        names,
        [
            "app_extracted",
            "level",
            "ok",
            "ratio",
            "size",
            "status",
            "took",
            "trace_id",
            "user_id",
            "user_name"
        ]
    );
    let status = field(&fields, "status");
    assert_eq!((status.field_type, status.cardinality), (FieldType::Int, 3));
    assert_eq!(status.parsers, [Parser::Logfmt]);
    assert_eq!(status.json_path, None);
    assert_eq!(field(&fields, "took").field_type, FieldType::Duration);
    assert_eq!(field(&fields, "took").cardinality, 20);
    assert_eq!(field(&fields, "size").field_type, FieldType::Bytes);
    assert_eq!(field(&fields, "ok").field_type, FieldType::Boolean);
    assert_eq!(field(&fields, "ratio").field_type, FieldType::Float);
    let trace = field(&fields, "trace_id");
    assert_eq!((trace.cardinality, trace.parsers.len()), (20, 0));
    let user = field(&fields, "user_id");
    assert_eq!(user.parsers, [Parser::Json]);
    assert_eq!(
        user.json_path.as_deref(),
        Some(&["user".to_string(), "id".to_string()][..])
    );
    assert_eq!(
        field(&fields, "app_extracted").json_path.as_deref(),
        Some(&["app".to_string()][..])
    );
}

#[test]
fn the_last_line_types_a_field_and_parsers_accumulate() {
    let s = stream(&[]);
    let mut collector = FieldsCollector::new(10);
    collector.add_line("n=1", &[], &s);
    collector.add_line("n=abc", &[], &s);
    collector.add_line(r#"{"n":2}"#, &[], &s);
    let fields = collector.finish();
    assert_eq!(fields.len(), 1);
    assert_eq!(fields[0].field_type, FieldType::Int);
    assert_eq!(fields[0].cardinality, 3);
    assert_eq!(fields[0].parsers, [Parser::Logfmt, Parser::Json]);
    assert_eq!(fields[0].json_path, Some(vec!["n".to_string()]));
    // A later logfmt line keeps the path; a later JSON line without a path for the name (a
    // label the query's own parser set) clears it, as in Loki.
    collector.add_entry(r#"{"m":1}"#, &[], &[("n", "x")], &s);
    let fields = collector.finish();
    assert_eq!(field(&fields, "n").json_path, None);
    assert_eq!(field(&fields, "n").field_type, FieldType::String);
}

#[test]
fn fields_stop_at_the_limit() {
    let s = stream(&[]);
    let mut collector = FieldsCollector::new(3);
    collector.add_line("a=1 b=2 c=3 d=4", &[("meta", "x")], &s);
    let names: Vec<String> = collector.finish().into_iter().map(|f| f.label).collect();
    // Structured metadata comes first, then the parsed fields in line order.
    assert_eq!(names, ["a", "b", "meta"]);
}

#[test]
fn merged_collectors_follow_lokis_merge() {
    let s = stream(&[]);
    let mut left = FieldsCollector::new(5);
    let mut right = FieldsCollector::new(5);
    for i in 0..10 {
        left.add_line(&format!("n={i} a={i}"), &[], &s);
        right.add_line(&format!(r#"{{"n":"v{i}","b":{i}}}"#), &[], &s);
    }
    left.merge(right);
    let fields = left.finish();
    let n = field(&fields, "n");
    // int on one side, string on the other: string.
    assert_eq!(n.field_type, FieldType::String);
    assert_eq!(n.cardinality, 20);
    assert_eq!(n.parsers, [Parser::Json, Parser::Logfmt]);
    assert_eq!(n.json_path, Some(vec!["n".to_string()]));
    assert_eq!(field(&fields, "b").field_type, FieldType::Int);
    assert_eq!(fields.len(), 3);
}

#[test]
fn fields_json_shape_is_lokis() {
    let fields = [
        DetectedField {
            label: "trace_id".into(),
            field_type: FieldType::String,
            cardinality: 12,
            parsers: vec![],
            json_path: None,
        },
        DetectedField {
            label: "user_id".into(),
            field_type: FieldType::Int,
            cardinality: 3,
            parsers: vec![Parser::Json],
            json_path: Some(vec!["user".into(), "id".into()]),
        },
    ];
    assert_eq!(
        render_fields_json(&fields, 1000),
        r#"{"fields":[{"label":"trace_id","type":"string","cardinality":12,"parsers":null},{"label":"user_id","type":"int","cardinality":3,"parsers":["json"],"jsonPath":["user","id"]}],"limit":1000}"#
    );
    assert_eq!(render_fields_json(&[], 1000), "{}");
}

#[test]
fn field_values_are_distinct_rewritten_and_limited() {
    let s = stream(&[]);
    let mut values = FieldValuesCollector::new("size", 3);
    values.add_line("size=5MiB", &[], &s);
    values.add_line(r#"{"size":"1024"}"#, &[], &s);
    values.add_line("size=1024", &[("size", "7 kb")], &s);
    values.add_line("other=1", &[], &s);
    // Metadata values are listed as they are; parsed sizes with a unit are rewritten.
    assert_eq!(values.finish(), ["1024", "5.2MB", "7 kb"]);
    values.add_line("size=9", &[], &s);
    assert_eq!(values.finish().len(), 3);
    assert_eq!(
        render_field_values_json(&values.finish(), 3),
        r#"{"limit":3,"values":["1024","5.2MB","7 kb"]}"#
    );
    assert_eq!(render_field_values_json(&[], 3), "{}");

    let mut left = FieldValuesCollector::new("level", 10);
    let mut right = FieldValuesCollector::new("level", 10);
    left.add_line("level=info", &[], &s);
    right.add_line("level=warn", &[], &s);
    right.add_line("level=", &[("level", "")], &s);
    left.merge(right);
    assert_eq!(left.finish(), ["info", "warn"]);
}

#[test]
fn detected_labels_skip_id_like_labels() {
    let mut labels = LabelsCollector::default();
    for i in 0..5 {
        labels.add_stream(&stream(&[
            ("app", if i % 2 == 0 { "api" } else { "web" }),
            ("pod", &format!("{i}")),
            ("request_id", &format!("{}", 1000 + i)),
            ("trace", &format!("123e4567-e89b-12d3-a456-42661417400{i}")),
            ("canary", if i % 2 == 0 { "0" } else { "1" }),
            ("mixed", if i == 0 { "abc" } else { "12" }),
        ]));
    }
    let found = labels.finish();
    let summary: Vec<(&str, u64)> = found
        .iter()
        .map(|l| (l.label.as_str(), l.cardinality))
        .collect();
    assert_eq!(
        summary,
        [("app", 2), ("canary", 2), ("mixed", 2), ("pod", 5)]
    );
    assert_eq!(
        render_labels_json(&found[..2]),
        r#"{"detectedLabels":[{"label":"app","cardinality":2},{"label":"canary","cardinality":2}]}"#
    );
    assert_eq!(render_labels_json(&[]), "{}");

    // Merging keeps the rule: ids on both sides stay out, a word on either side lets in.
    let mut other = LabelsCollector::default();
    other.add_stream(&stream(&[("request_id", "n/a"), ("app", "db")]));
    labels.merge(other);
    let names: Vec<String> = labels.finish().into_iter().map(|l| l.label).collect();
    assert_eq!(names, ["app", "canary", "mixed", "pod", "request_id"]);
}

#[test]
fn uuids_parse_as_go_does() {
    assert!(is_go_uuid("123e4567-e89b-12d3-a456-426614174000"));
    assert!(is_go_uuid("{123e4567-e89b-12d3-a456-426614174000}"));
    assert!(is_go_uuid("urn:uuid:123e4567-e89b-12d3-a456-426614174000"));
    assert!(is_go_uuid("123e4567e89b12d3a456426614174000"));
    assert!(!is_go_uuid("123e4567-e89b-12d3-a456_426614174000"));
    assert!(!is_go_uuid("not-a-uuid"));
}

#[test]
fn collectors_can_move_between_cores() {
    fn is_send<T: Send>() {}
    is_send::<FieldsCollector>();
    is_send::<FieldValuesCollector>();
    is_send::<LabelsCollector>();
}

proptest! {
    #[test]
    fn random_lines_never_panic(
        lines in proptest::collection::vec(
            (
                prop_oneof![
                    any::<String>(),
                    "\\{(\"[a-z ._-]{0,6}\":(\"[ -~]{0,8}\"|[0-9.e-]{1,6}|true|null|\\{\"[a-z]{1,3}\":[0-9]\\}|\\[1\\]),?){0,6}\\}?",
                    "([a-zA-Z_.]{1,6}=(\"[ -~]{0,10}\"|[a-z0-9.]{0,6}) ?){0,8}",
                ],
                proptest::collection::vec(("[a-z_]{1,4}", "[ -~]{0,6}"), 0..3),
            ),
            1..30,
        ),
        limit in 1usize..8,
    ) {
        let s = stream(&[("app", "x"), ("a", "y")]);
        let mut fields = FieldsCollector::new(limit);
        let mut other = FieldsCollector::new(limit);
        let mut values = FieldValuesCollector::new("a_extracted", limit);
        for (i, (line, metadata)) in lines.iter().enumerate() {
            let metadata: Vec<(&str, &str)> =
                metadata.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            if i % 2 == 0 {
                fields.add_line(line, &metadata, &s);
            } else {
                other.add_line(line, &metadata, &s);
            }
            values.add_line(line, &metadata, &s);
        }
        fields.merge(other);
        let found = fields.finish();
        prop_assert!(found.len() <= limit);
        let body = render_fields_json(&found, limit);
        prop_assert!(serde_json::from_str::<serde_json::Value>(&body).is_ok());
        let body = render_field_values_json(&values.finish(), limit);
        prop_assert!(serde_json::from_str::<serde_json::Value>(&body).is_ok());
        prop_assert!(values.finish().len() <= limit);
    }

    #[test]
    fn random_labels_never_panic(
        streams in proptest::collection::vec(
            proptest::collection::vec(("[a-z]{1,3}", any::<String>()), 0..5),
            0..20,
        ),
    ) {
        let mut labels = LabelsCollector::new(4);
        for pairs in &streams {
            labels.add_stream(&Labels::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))));
        }
        let found = labels.finish();
        prop_assert!(found.len() <= 4);
        let body = render_labels_json(&found);
        prop_assert!(serde_json::from_str::<serde_json::Value>(&body).is_ok());
    }
}

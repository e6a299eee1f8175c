use super::*;
use crate::ingest::otlp::proto::{
    ArrayValue, InstrumentationScope, KeyValueList, Resource, ResourceLogs, ScopeLogs,
};
use crate::ingest::push::validate::METADATA_PAIRS_PER_ENTRY_MAX;

fn s(v: &str) -> AnyValue {
    AnyValue {
        value: Some(any_value::Value::StringValue(v.into())),
    }
}

fn kv(k: &str, v: AnyValue) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(v),
        key_strindex: 0,
    }
}

fn v(value: any_value::Value) -> AnyValue {
    AnyValue { value: Some(value) }
}

fn limits() -> PushLimits {
    PushLimits {
        service_name_from: crate::ingest::discovery::DISCOVER_SERVICE_NAME_DEFAULT
            .iter()
            .map(|s| s.to_string())
            .collect(),
        ..PushLimits::default()
    }
}

const NOW: i64 = 1_700_000_000_000_000_000;

fn request(
    resource: Vec<KeyValue>,
    scope: Option<InstrumentationScope>,
    records: Vec<LogRecord>,
) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: resource,
                ..Resource::default()
            }),
            scope_logs: vec![ScopeLogs {
                scope,
                log_records: records,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

fn md(e: &PushEntry) -> Vec<(&str, &str)> {
    e.metadata
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

#[test]
fn resource_attributes_of_lokis_list_are_labels_and_the_rest_metadata() {
    let record = LogRecord {
        time_unix_nano: (NOW + 5) as u64,
        observed_time_unix_nano: (NOW + 6) as u64,
        severity_number: 9,
        severity_text: "INFO".into(),
        body: Some(s("user logged in")),
        attributes: vec![
            kv("http.method", s("GET")),
            kv("user.id", v(any_value::Value::IntValue(42))),
        ],
        dropped_attributes_count: 2,
        flags: 1,
        trace_id: (1..=16).collect(),
        span_id: vec![0xab; 8],
        event_name: "login".into(),
    };
    let req = request(
        vec![
            kv("service.name", s("checkout")),
            kv("k8s.namespace.name", s("shop")),
            kv("deployment.environment", s("prod")),
            kv("host.name", s("node-1")),
        ],
        Some(InstrumentationScope {
            name: "app.auth".into(),
            version: "1.0".into(),
            attributes: vec![kv("lib", s("x"))],
            dropped_attributes_count: 0,
        }),
        vec![record],
    );
    let m = map_request(req, NOW, &limits());
    assert_eq!(m.rejected, Rejected::default());
    assert_eq!(m.streams.len(), 1);
    assert_eq!(
        m.streams[0].labels.to_string(),
        r#"{deployment_environment="prod", k8s_namespace_name="shop", service_name="checkout"}"#
    );
    let e = &m.streams[0].entries[0];
    assert_eq!(e.timestamp_ns, NOW + 5);
    assert_eq!(e.line, "user logged in");
    assert_eq!(
        md(e),
        [
            ("http_method", "GET"),
            ("user_id", "42"),
            ("observed_timestamp", "1700000000000000006"),
            ("severity_number", "9"),
            ("severity_text", "INFO"),
            ("dropped_attributes_count", "2"),
            ("flags", "1"),
            ("trace_id", "0102030405060708090a0b0c0d0e0f10"),
            ("span_id", "abababababababab"),
            ("event_name", "login"),
            ("host_name", "node-1"),
            ("lib", "x"),
            ("scope_name", "app.auth"),
            ("scope_version", "1.0"),
        ]
    );
}

#[test]
fn service_name_is_discovered_when_the_resource_has_none() {
    let record = || LogRecord {
        body: Some(s("x")),
        ..LogRecord::default()
    };
    let labels = |attrs: Vec<KeyValue>, limits: &PushLimits| {
        map_request(request(attrs, None, vec![record()]), NOW, limits).streams[0]
            .labels
            .to_string()
    };
    assert_eq!(
        labels(vec![kv("k8s.container.name", s("api"))], &limits()),
        r#"{k8s_container_name="api", service_name="api"}"#
    );
    assert_eq!(
        labels(
            vec![kv("service.name", s("")), kv("container.name", s("c"))],
            &limits()
        ),
        r#"{container_name="c", service_name="c"}"#
    );
    assert_eq!(
        labels(vec![], &limits()),
        r#"{service_name="unknown_service"}"#
    );
    // Discovery off and no listed attribute: a record without labels, refused as Loki
    // refuses a stream without labels.
    let m = map_request(
        request(vec![], None, vec![record()]),
        NOW,
        &PushLimits::default(),
    );
    assert!(m.streams.is_empty());
    assert_eq!(m.rejected.records, 1);
    assert_eq!(m.rejected.by_rule, [(Rule::MissingLabels, 1)]);
}

#[test]
fn times_fall_back_to_observed_then_now() {
    let rec = |t: u64, o: u64| LogRecord {
        time_unix_nano: t,
        observed_time_unix_nano: o,
        body: Some(s("x")),
        ..LogRecord::default()
    };
    let m = map_request(
        request(
            vec![kv("service.name", s("a"))],
            None,
            vec![
                rec(0, (NOW + 1) as u64),
                rec(0, 0),
                rec((NOW + 2) as u64, 0),
            ],
        ),
        NOW,
        &limits(),
    );
    let times: Vec<i64> = m.streams[0]
        .entries
        .iter()
        .map(|e| e.timestamp_ns)
        .collect();
    assert_eq!(times, [NOW + 1, NOW, NOW + 2]);
    // Only a record with both times keeps the observed one as metadata.
    assert!(m.streams[0].entries.iter().all(|e| md(e).is_empty()));
}

#[test]
fn bodies_and_values_as_loki_stores_them() {
    use any_value::Value;
    let map = v(Value::KvlistValue(KeyValueList {
        values: vec![
            kv("z", v(Value::IntValue(1))),
            kv("a", s("<b>&")),
            kv(
                "m",
                v(Value::ArrayValue(ArrayValue {
                    values: vec![
                        v(Value::BoolValue(true)),
                        v(Value::DoubleValue(0.5)),
                        AnyValue::default(),
                    ],
                })),
            ),
            kv("z", v(Value::IntValue(2))),
        ],
    }));
    assert_eq!(
        value_text(&map),
        r#"{"a":"\u003cb\u003e\u0026","m":[true,0.5,null],"z":2}"#
    );
    assert_eq!(value_text(&v(Value::DoubleValue(1e21))), "1e+21");
    assert_eq!(value_text(&v(Value::DoubleValue(1.5e-7))), "1.5e-7");
    assert_eq!(value_text(&v(Value::DoubleValue(123.25))), "123.25");
    assert_eq!(value_text(&v(Value::DoubleValue(3.0))), "3");
    assert_eq!(
        value_text(&v(Value::DoubleValue(f64::INFINITY))),
        "json: unsupported value: +Inf"
    );
    assert_eq!(
        value_text(&v(Value::BytesValue(vec![0, 1, 2, 255]))),
        "AAEC/w=="
    );
    assert_eq!(value_text(&v(Value::BoolValue(false))), "false");
    assert_eq!(value_text(&AnyValue::default()), "");
    let nan_inside = v(Value::ArrayValue(ArrayValue {
        values: vec![v(Value::DoubleValue(f64::NAN))],
    }));
    assert_eq!(value_text(&nan_inside), "");
}

#[test]
fn map_attributes_are_flattened_into_named_fields() {
    use any_value::Value;
    let nested = v(Value::KvlistValue(KeyValueList {
        values: vec![
            kv("method", s("GET")),
            kv(
                "req",
                v(Value::KvlistValue(KeyValueList {
                    values: vec![kv("size.bytes", v(Value::IntValue(10)))],
                })),
            ),
        ],
    }));
    let mut out = Vec::new();
    flatten("http", Some(&nested), "", 0, 1024, &mut out).unwrap();
    assert_eq!(
        out,
        [
            ("http_method".to_string(), "GET".to_string()),
            ("http_req_size_bytes".to_string(), "10".to_string())
        ]
    );
}

#[test]
fn attribute_names_become_label_names_as_prometheus_makes_them() {
    for (name, want) in [
        ("service.name", "service_name"),
        ("k8s.pod.name", "k8s_pod_name"),
        ("already_ok", "already_ok"),
        ("a..b", "a_b"),
        ("a__b", "a_b"),
        ("http.status-code", "http_status_code"),
        ("2xx", "key_2xx"),
        ("_private", "_private"),
        ("__reserved.x__", "__reserved_x__"),
        ("caf\u{e9}", "caf_"),
    ] {
        assert_eq!(label_name(name).unwrap(), want, "{name}");
    }
    for bad in ["", "_", "...", "____"] {
        assert_eq!(
            label_name(bad).unwrap_err().rule,
            Rule::InvalidLabels,
            "{bad:?}"
        );
    }
}

#[test]
fn a_record_that_breaks_a_rule_is_refused_alone() {
    let ok = LogRecord {
        body: Some(s("fine")),
        ..LogRecord::default()
    };
    let long = LogRecord {
        body: Some(s(&"x".repeat(100))),
        ..LogRecord::default()
    };
    let crowded = LogRecord {
        body: Some(s("many")),
        attributes: (0..=METADATA_PAIRS_PER_ENTRY_MAX)
            .map(|i| kv(&format!("a{i}"), s("v")))
            .collect(),
        ..LogRecord::default()
    };
    let badly_named = LogRecord {
        body: Some(s("bad")),
        attributes: vec![kv("..", s("v"))],
        ..LogRecord::default()
    };
    let too_late = LogRecord {
        time_unix_nano: u64::MAX,
        body: Some(s("late")),
        ..LogRecord::default()
    };
    let limits = PushLimits {
        line_bytes_max: 50,
        ..limits()
    };
    let m = map_request(
        request(
            vec![kv("service.name", s("a"))],
            None,
            vec![ok.clone(), long, crowded, badly_named, too_late, ok],
        ),
        NOW,
        &limits,
    );
    assert_eq!(m.streams[0].entries.len(), 2);
    assert_eq!(m.rejected.records, 4);
    assert_eq!(
        m.rejected.by_rule,
        [
            (Rule::LineTooLong, 1),
            (Rule::StructuredMetadataTooMany, 1),
            (Rule::InvalidLabels, 1),
            (Rule::Other, 1)
        ]
    );
    assert!(
        m.rejected
            .first_message
            .as_deref()
            .unwrap()
            .contains("Max entry size"),
        "{:?}",
        m.rejected.first_message
    );
    // Cut rather than refused when the limits say so.
    let cut = PushLimits {
        truncate_long_lines: true,
        ..limits.clone()
    };
    let long = LogRecord {
        body: Some(s(&"y".repeat(60))),
        ..LogRecord::default()
    };
    let m = map_request(
        request(vec![kv("service.name", s("a"))], None, vec![long]),
        NOW,
        &cut,
    );
    assert_eq!(m.streams[0].entries[0].line.len(), 50);
    assert_eq!(m.truncated.lines, 1);
}

/// Many empty records under one large resource attribute: each record would carry a copy of
/// it (a 1 MiB body of 2-byte records mapped to tens of GiB before the budget). The mapping
/// keeps what fits in the request's budget and refuses the rest, counted.
#[test]
fn records_sharing_large_metadata_are_bounded_by_the_request_budget() {
    let limits = PushLimits {
        body_bytes_max: 64 << 10,
        ..limits()
    };
    let big = "x".repeat(60_000);
    let records = vec![LogRecord::default(); 5_000];
    let mapped = map_request(
        request(
            vec![kv("service.name", s("svc")), kv("big", s(&big))],
            None,
            records,
        ),
        NOW,
        &limits,
    );
    let kept: usize = mapped.streams.iter().map(|s| s.entries.len()).sum();
    let budget = limits.body_bytes_max * 16;
    assert!(kept * 60_000 <= budget, "{kept} entries kept");
    assert!(kept > 0);
    assert_eq!(kept as u64 + mapped.rejected.records, 5_000);

    // Shared metadata over the per-entry limit refuses the scope's records without copying.
    let huge = "y".repeat(70_000);
    let mapped = map_request(
        request(
            vec![kv("service.name", s("svc")), kv("huge", s(&huge))],
            None,
            vec![LogRecord::default(); 1_000],
        ),
        NOW,
        &limits,
    );
    assert!(mapped.streams.iter().all(|s| s.entries.is_empty()));
    assert_eq!(mapped.rejected.records, 1_000);
}

/// A map under a long key with many small keys: every flattened name would repeat the long
/// one. The name is refused at its first level, before anything is copied.
#[test]
fn a_long_map_key_is_refused_before_its_fields_are_flattened() {
    let long = "k".repeat(30_000);
    let fields: Vec<KeyValue> = (0..7_000).map(|i| kv(&format!("a{i}"), s("v"))).collect();
    let map = v(any_value::Value::KvlistValue(KeyValueList {
        values: fields,
    }));
    let record = LogRecord {
        attributes: vec![kv(&long, map)],
        ..LogRecord::default()
    };
    let mapped = map_request(
        request(vec![kv("service.name", s("svc"))], None, vec![record]),
        NOW,
        &limits(),
    );
    assert!(mapped.streams.iter().all(|s| s.entries.is_empty()));
    assert_eq!(mapped.rejected.records, 1);
    // Many short fields are bounded by the per-entry pair limit.
    let fields: Vec<KeyValue> = (0..10_000).map(|i| kv(&format!("f{i}"), s("v"))).collect();
    let record = LogRecord {
        attributes: fields,
        ..LogRecord::default()
    };
    let mapped = map_request(
        request(vec![kv("service.name", s("svc"))], None, vec![record]),
        NOW,
        &limits(),
    );
    assert_eq!(mapped.rejected.records, 1);
}

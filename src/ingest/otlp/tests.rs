use std::io::Write;

use super::*;
use crate::ingest::otlp::proto::{
    AnyValue, KeyValue, LogRecord, Resource, ResourceLogs, ScopeLogs, any_value,
};

fn sample() -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![KeyValue {
                    key: "service.name".into(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::StringValue("svc".into())),
                    }),
                    key_strindex: 0,
                }],
                ..Resource::default()
            }),
            scope_logs: vec![ScopeLogs {
                scope: None,
                log_records: vec![LogRecord {
                    time_unix_nano: 1_700_000_000_000_000_000,
                    severity_number: 13,
                    body: Some(AnyValue {
                        value: Some(any_value::Value::StringValue("hello".into())),
                    }),
                    trace_id: vec![7; 16],
                    ..LogRecord::default()
                }],
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

const MAX: usize = 8 << 20;

#[test]
fn content_types_choose_the_encoding() {
    for (ct, want) in [
        ("application/x-protobuf", Encoding::Protobuf),
        ("Application/X-Protobuf; charset=binary", Encoding::Protobuf),
        ("application/protobuf", Encoding::Protobuf),
        ("application/json", Encoding::Json),
        ("application/json; charset=utf-8", Encoding::Json),
    ] {
        assert_eq!(Encoding::from_content_type(Some(ct)), Ok(want), "{ct}");
    }
    for ct in [Some("text/plain"), Some(""), None] {
        let e = Encoding::from_content_type(ct).unwrap_err();
        assert_eq!(e.status(), 415, "{ct:?}");
    }
}

#[test]
fn protobuf_plain_and_gzip_decode_to_the_same_request() {
    let bytes = sample().encode_to_vec();
    assert_eq!(decode(Encoding::Protobuf, None, &bytes, MAX), Ok(sample()));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&bytes).unwrap();
    let gz = gz.finish().unwrap();
    assert_eq!(
        decode(Encoding::Protobuf, Some("gzip"), &gz, MAX),
        Ok(sample())
    );
    assert_eq!(record_count(&sample()), 1);
}

#[test]
fn json_decodes_to_the_same_request_as_protobuf() {
    let body = r#"{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"svc"}}]},
        "scopeLogs":[{"logRecords":[{"timeUnixNano":"1700000000000000000","severityNumber":13,
        "body":{"stringValue":"hello"},"traceId":"07070707070707070707070707070707"}]}]}]}"#;
    assert_eq!(
        decode(Encoding::Json, None, body.as_bytes(), MAX),
        Ok(sample())
    );
}

#[test]
fn malformed_and_oversized_bodies_are_refused() {
    let e = decode(Encoding::Protobuf, None, &[0x0a, 0x05, 0x01], MAX).unwrap_err();
    assert_eq!(e.status(), 400);
    assert!(e.to_string().contains("OTLP protobuf"), "{e}");
    let e = decode(Encoding::Json, None, b"{\"resourceLogs\": 3}", MAX).unwrap_err();
    assert_eq!(e.status(), 400);
    assert!(e.to_string().contains("OTLP JSON"), "{e}");
    let e = decode(Encoding::Protobuf, Some("br"), b"x", MAX).unwrap_err();
    assert_eq!(e.status(), 415);
    let big = sample().encode_to_vec();
    let e = decode(Encoding::Protobuf, None, &big, big.len() - 1).unwrap_err();
    assert_eq!(e.status(), 413);
}

#[test]
fn answers_in_the_requests_encoding() {
    let none = Rejected::default();
    let pb = success_body(Encoding::Protobuf, &none);
    assert_eq!(
        proto::ExportLogsServiceResponse::decode(pb.as_slice()).unwrap(),
        proto::ExportLogsServiceResponse::default()
    );
    assert_eq!(success_body(Encoding::Json, &none), b"{}");
    let mut some = Rejected::default();
    some.add(
        crate::ingest::push::Violation::new(
            crate::ingest::push::Rule::LineTooLong,
            "too long".into(),
        ),
        3,
    );
    let pb = success_body(Encoding::Protobuf, &some);
    let got = proto::ExportLogsServiceResponse::decode(pb.as_slice()).unwrap();
    let partial = got.partial_success.unwrap();
    assert_eq!(partial.rejected_log_records, 3);
    assert_eq!(
        partial.error_message,
        "3 log records refused; the first: too long"
    );
    let json: serde_json::Value =
        serde_json::from_slice(&success_body(Encoding::Json, &some)).unwrap();
    assert_eq!(json["partialSuccess"]["rejectedLogRecords"], "3");
    let status =
        proto::Status::decode(status_body(Encoding::Protobuf, 429, "slow down\n").as_slice())
            .unwrap();
    assert_eq!((status.code, status.message.as_str()), (8, "slow down"));
    let json: serde_json::Value =
        serde_json::from_slice(&status_body(Encoding::Json, 400, "bad")).unwrap();
    assert_eq!(json, serde_json::json!({"code": 3, "message": "bad"}));
}

mod props {
    use super::*;
    use proptest::prelude::*;

    fn limits() -> crate::ingest::push::PushLimits {
        crate::ingest::push::PushLimits::default()
    }

    /// Decoding and mapping never panic, whatever the bytes: every failure is an error.
    fn decode_and_map(encoding: Encoding, ce: Option<&str>, body: &[u8]) {
        if let Ok(request) = decode(encoding, ce, body, MAX) {
            let _ = mapping::map_request(request, 0, &limits());
        }
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(
            body in proptest::collection::vec(any::<u8>(), 0..512),
            json in any::<bool>(),
            ce in prop_oneof![Just(None), Just(Some("gzip")), Just(Some("deflate"))],
        ) {
            let encoding = if json { Encoding::Json } else { Encoding::Protobuf };
            decode_and_map(encoding, ce, &body);
        }

        #[test]
        fn mutated_protobuf_requests_never_panic(at in any::<usize>(), byte in any::<u8>(), cut in any::<usize>()) {
            let mut raw = sample().encode_to_vec();
            let i = at % raw.len();
            raw[i] = byte;
            raw.truncate(cut % (raw.len() + 1));
            decode_and_map(Encoding::Protobuf, None, &raw);
        }

        #[test]
        fn json_like_bodies_never_panic(body in r#"\{"resourceLogs":\[\{"resource":\{"attributes":\[\{"key":"[a-z._]{0,6}","value":\{"(stringValue|intValue|doubleValue|boolValue|bytesValue|kvlistValue|arrayValue)":("[a-zA-Z0-9=+/]{0,6}"|-?[0-9]{1,20}|true|null|\{"values":\[\]\})\}\}\]\},"scopeLogs":\[\{"logRecords":\[\{"(timeUnixNano|traceId|spanId|severityNumber|flags)":("[0-9a-fA-F]{0,32}"|-?[0-9]{1,21}|null)\}\]\}\]\}\]\}"#) {
            decode_and_map(Encoding::Json, None, body.as_bytes());
        }

        #[test]
        fn protobuf_and_json_of_one_request_map_alike(
            line in "\\PC{0,30}",
            key in "[a-z][a-z.]{0,10}",
            value in "\\PC{0,10}",
            t in 1u64..4_000_000_000_000_000_000,
            severity in 0i32..25,
        ) {
            let mut r = sample();
            let record = &mut r.resource_logs[0].scope_logs[0].log_records[0];
            record.body = Some(AnyValue { value: Some(any_value::Value::StringValue(line.clone())) });
            record.time_unix_nano = t;
            record.severity_number = severity;
            record.attributes.push(KeyValue {
                key: key.clone(),
                value: Some(AnyValue { value: Some(any_value::Value::StringValue(value.clone())) }),
                key_strindex: 0,
            });
            let json = serde_json::json!({"resourceLogs": [{
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "svc"}}]},
                "scopeLogs": [{"logRecords": [{
                    "timeUnixNano": t.to_string(),
                    "severityNumber": severity,
                    "body": {"stringValue": line},
                    "traceId": "07070707070707070707070707070707",
                    "attributes": [{"key": key, "value": {"stringValue": value}}],
                }]}],
            }]});
            let from_json = decode(Encoding::Json, None, json.to_string().as_bytes(), MAX).unwrap();
            let from_pb = decode(Encoding::Protobuf, None, &r.encode_to_vec(), MAX).unwrap();
            prop_assert_eq!(&from_json, &from_pb);
            prop_assert_eq!(
                mapping::map_request(from_json, 0, &limits()),
                mapping::map_request(from_pb, 0, &limits())
            );
        }
    }
}

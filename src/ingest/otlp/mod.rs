//! OTLP logs over HTTP (`POST /otlp/v1/logs`), as the OpenTelemetry collector's and SDKs'
//! OTLP/HTTP exporters send them: pure functions from a request body to streams, and from
//! an outcome to the answer's body, with no I/O.
//!
//! Which question it answers: "which streams and entries did this OTLP export carry, and
//! what does the exporter get back?" A body is undone of its `Content-Encoding` (gzip,
//! deflate, identity; the push route's [`decompress`], with its bound), then decoded by
//! `Content-Type`: `application/x-protobuf` ([`proto`], generated from the official
//! `.proto` files) or `application/json` ([`json`], OTLP's JSON encoding); any other type is
//! a 415. The records are then mapped to streams as Loki 3 maps them ([`mapping`]), each
//! record validated on its own, so that an export is stored but for the records that break
//! a rule, which the answer reports as `partial_success`.
//!
//! The answer is in the request's encoding, as the OTLP specification asks: an
//! `ExportLogsServiceResponse` on success ([`success_body`]), a `google.rpc.Status` on
//! failure ([`status_body`]).

pub mod json;
pub mod mapping;
pub mod proto;
mod value_json;

use prost::Message;

use crate::ingest::push::validate::echo;
use crate::ingest::push::{PushError, decompress};
use mapping::Rejected;
use proto::ExportLogsServiceRequest;

/// The two encodings of OTLP/HTTP; the answer uses the request's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    Protobuf,
    Json,
}

impl Encoding {
    /// The encoding a `Content-Type` names (parameters ignored, case-insensitive); a 415
    /// for any other type and for none, since OTLP/HTTP requires the header.
    pub fn from_content_type(content_type: Option<&str>) -> Result<Encoding, PushError> {
        let media = content_type
            .map(|ct| ct.split(';').next().unwrap_or("").trim())
            .unwrap_or("");
        if media.eq_ignore_ascii_case("application/x-protobuf")
            || media.eq_ignore_ascii_case("application/protobuf")
        {
            Ok(Encoding::Protobuf)
        } else if media.eq_ignore_ascii_case("application/json") {
            Ok(Encoding::Json)
        } else {
            Err(PushError::UnsupportedMediaType(format!(
                "unsupported Content-Type '{}': an OTLP/HTTP body is application/x-protobuf \
                 or application/json",
                echo(media)
            )))
        }
    }

    /// The `Content-Type` of an answer in this encoding.
    pub fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => "application/x-protobuf",
            Encoding::Json => "application/json",
        }
    }
}

/// Decodes an export request's body. Everything is bounded by `body_bytes_max` after
/// decompression; a body that does not decode is a 400 that says why.
pub fn decode(
    encoding: Encoding,
    content_encoding: Option<&str>,
    body: &[u8],
    body_bytes_max: usize,
) -> Result<ExportLogsServiceRequest, PushError> {
    let body = decompress(content_encoding, body, body_bytes_max)?;
    match encoding {
        Encoding::Protobuf => ExportLogsServiceRequest::decode(body.as_ref()).map_err(|e| {
            PushError::BadRequest(format!("cannot decode OTLP protobuf logs request: {e}"))
        }),
        Encoding::Json => json::decode(&body).map_err(|e| {
            PushError::BadRequest(format!("cannot decode OTLP JSON logs request: {e}"))
        }),
    }
}

/// Records of a request, for counting a request refused whole.
pub fn record_count(request: &ExportLogsServiceRequest) -> u64 {
    request
        .resource_logs
        .iter()
        .flat_map(|r| &r.scope_logs)
        .map(|s| s.log_records.len() as u64)
        .sum()
}

/// The body of a successful answer: an `ExportLogsServiceResponse`, with `partial_success`
/// when some records were refused (their count and the first reason), empty otherwise.
pub fn success_body(encoding: Encoding, rejected: &Rejected) -> Vec<u8> {
    let partial = (rejected.records > 0).then(|| proto::ExportLogsPartialSuccess {
        rejected_log_records: i64::try_from(rejected.records).unwrap_or(i64::MAX),
        error_message: rejected_message(rejected),
    });
    match encoding {
        Encoding::Protobuf => proto::ExportLogsServiceResponse {
            partial_success: partial,
        }
        .encode_to_vec(),
        Encoding::Json => {
            // Protobuf's JSON mapping: lowerCamelCase names, int64 as a decimal string.
            let value = match partial {
                None => serde_json::json!({}),
                Some(p) => serde_json::json!({"partialSuccess": {
                    "rejectedLogRecords": p.rejected_log_records.to_string(),
                    "errorMessage": p.error_message,
                }}),
            };
            value.to_string().into_bytes()
        }
    }
}

/// What `partial_success.error_message` says: how many records were refused and why (the
/// first reason, and how many others there were).
fn rejected_message(rejected: &Rejected) -> String {
    let first = rejected.first_message.as_deref().unwrap_or("refused");
    if rejected.records == 1 {
        format!("1 log record refused: {first}")
    } else {
        format!(
            "{} log records refused; the first: {first}",
            rejected.records
        )
    }
}

/// The body of a failed answer: a `google.rpc.Status` whose code is gRPC's for the HTTP
/// status (as gRPC-HTTP mapping gives it) and whose message is `message`.
pub fn status_body(encoding: Encoding, http_status: u16, message: &str) -> Vec<u8> {
    let code = grpc_code(http_status);
    let message = message.trim_end().to_string();
    match encoding {
        Encoding::Protobuf => proto::Status { code, message }.encode_to_vec(),
        Encoding::Json => serde_json::json!({"code": code, "message": message})
            .to_string()
            .into_bytes(),
    }
}

/// The gRPC status code of an HTTP status (gRPC's `http_to_grpc_status` table, with the
/// statuses this server answers pushes with).
fn grpc_code(http_status: u16) -> i32 {
    match http_status {
        400 | 413 | 415 => 3, // INVALID_ARGUMENT
        401 => 16,            // UNAUTHENTICATED
        403 => 7,             // PERMISSION_DENIED
        404 => 12,            // UNIMPLEMENTED
        429 | 507 => 8,       // RESOURCE_EXHAUSTED
        502..=504 => 14,      // UNAVAILABLE
        _ => 2,               // UNKNOWN
    }
}

#[cfg(test)]
mod tests;

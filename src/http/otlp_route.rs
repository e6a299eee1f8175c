//! `POST /otlp/v1/logs`: OTLP logs over HTTP, on the push route's machinery. The tenant, the
//! rate limit, the core's budget for unfinished requests, the batches per owner shard and the
//! wait until every owner has made its batch durable are those of `POST /loki/api/v1/push`
//! ([`super::ingest_routes`]); what differs is the body ([`crate::ingest::otlp`]) and the
//! answer, which OTLP/HTTP gives in the request's encoding:
//!
//! - `200` with an `ExportLogsServiceResponse` once every stored record is durable; records
//!   refused on their own (a rule of validation, a time too old or too far ahead) are left
//!   out, counted under Loki's discard reasons and reported in `partial_success`, which an
//!   exporter does not retry;
//! - `400` for a body that does not decode, `415` for a `Content-Type` that is not OTLP's,
//!   `401`/`400` for the tenant as the push route answers, `413`, `429` with `Retry-After`,
//!   `503`, `507`, each with a `google.rpc.Status` body. A `500` (a shard's WAL stopped) is
//!   answered `503`, as Loki answers OTLP, because OTLP exporters retry a 503 and never a
//!   500, and a restart brings the shard back.

use std::rc::Rc;

use super::ingest_routes::{
    Batches, StreamLevel, charge_rate, count_truncated, decoded_bytes, discard_reason,
    entry_metadata, hold_decoded, push_limits, rate_size, refuse,
};
use super::loki::tenant;
use super::request::Request;
use super::response::Response;
use crate::ingest::listeners::now_ns;
use crate::ingest::otlp::mapping::{Mapped, map_request};
use crate::ingest::otlp::{self, Encoding};
use crate::model::{Duplicates, stream_hash};
use crate::runtime::Core;
use crate::shard::Protocol;

pub async fn logs(core: &Rc<Core>, req: &Request) -> Response {
    // The core's compaction pauses while a push is decoded and stored.
    let _busy = crate::runtime::courtesy::Busy::enter();
    // The answer's encoding is the request's; without a known one, errors are plain text.
    let encoding = match Encoding::from_content_type(req.header("content-type")) {
        Ok(e) => e,
        Err(e) => {
            let tenant = tenant(core, req, true);
            return match tenant {
                Ok(t) => refuse(core, &t, e),
                Err(r) => r,
            };
        }
    };
    let answer = |r: Response| as_status(r, encoding);
    if let Some(refused) = core.lifecycle.write_refusal() {
        return answer(Response::refused_write(&refused));
    }
    let tenant = match tenant(core, req, true) {
        Ok(t) => t,
        Err(r) => return answer(r),
    };
    let limits = core.limits.for_tenant(&tenant);
    let decode_limits = push_limits(core, &limits);
    let request = match otlp::decode(
        encoding,
        req.header("content-encoding"),
        &req.body,
        decode_limits.body_bytes_max,
    ) {
        Ok(r) => r,
        Err(e) => return answer(refuse(core, &tenant, e)),
    };
    let Mapped {
        streams,
        truncated,
        mut rejected,
    } = map_request(request, now_ns(), &decode_limits);
    for (rule, n) in &rejected.by_rule {
        core.shard
            .counters
            .discard_for(&tenant, discard_reason(*rule), *n);
    }
    let entries = || streams.iter().flat_map(|s| &s.entries);
    let size = rate_size(entries());
    if let Err(refused) = charge_rate(core, &tenant, &limits, size) {
        return answer(refused);
    }
    if let Err(refused) = hold_decoded(core, &tenant, req, decoded_bytes(entries())) {
        return answer(refused);
    }
    count_truncated(core, &tenant, truncated);
    // Exporters retry an export they got no answer to (or a 429, a 503): its records must
    // not be stored twice, as a Loki client's pushes are not.
    let mut batches = Batches::new(core, &tenant, &limits, Duplicates::Drop);
    batches.reserve(size);
    for stream in &streams {
        let id = stream_hash(&tenant, &stream.labels);
        let levels = StreamLevel::of(&limits, &stream.labels);
        for e in &stream.entries {
            let md = entry_metadata(&levels, e);
            batches.push(id, &stream.labels, e.timestamp_ns, &e.line, &md);
        }
    }
    let (stored, too_old) = batches.commit_counted(Protocol::Otlp).await;
    if stored.status != 204 {
        return answer(stored);
    }
    if too_old.entries > 0 {
        let message = too_old.text();
        rejected.records += too_old.entries;
        rejected.first_message.get_or_insert(message);
    }
    encoded(200, encoding, otlp::success_body(encoding, &rejected))
}

/// An answer with a body in `encoding`.
fn encoded(status: u16, encoding: Encoding, body: Vec<u8>) -> Response {
    Response {
        headers: vec![("Content-Type".into(), encoding.content_type().into())],
        body,
        ..Response::new(status)
    }
}

/// A text answer of the push machinery as OTLP/HTTP gives it: the same status (a 500 as
/// 503, see the module doc) and headers, its text as a `google.rpc.Status`.
fn as_status(r: Response, encoding: Encoding) -> Response {
    let status = if r.status == 500 { 503 } else { r.status };
    let text = String::from_utf8_lossy(&r.body).into_owned();
    let mut out = encoded(status, encoding, otlp::status_body(encoding, status, &text));
    for (name, value) in r.headers {
        if !name.eq_ignore_ascii_case("content-type") {
            out = out.with_header(name, value);
        }
    }
    if status == 503
        && !out
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("retry-after"))
    {
        out = out.with_header(
            "Retry-After",
            super::response::REFUSED_WRITE_RETRY_AFTER_SECONDS.to_string(),
        );
    }
    out
}

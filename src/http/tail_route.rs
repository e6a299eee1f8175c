//! `GET /loki/api/v1/tail`: checks a tail request and upgrades its connection to a
//! WebSocket that [`crate::tail::session`] serves.
//!
//! Which question it answers: "is this a tail request we can serve, and with which
//! parameters?" As Loki's `TailHandler` does, the parameters are checked before the upgrade
//! (a bad `query`, `limit`, `start` or `delay_for` is a 400 with Loki's text), then the
//! WebSocket handshake (a request that is not one is a 400 with the text of Loki's WebSocket
//! library); what fails after the upgrade (too many tails, the history query) is told in a
//! close frame. Loki's parameters: `query` (a log query), `limit` (history entries, default
//! 100), `start` (history start, default an hour ago), `delay_for` (seconds, at most 5).

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use async_tungstenite::tungstenite::handshake::derive_accept_key;

use super::loki::{param, params, tenant};
use super::query_routes::{check_length, check_limit, error_response};
use super::request::Request;
use super::response::{Response, Upgrade, Upgraded};
use crate::ingest::listeners::now_ns;
use crate::logql::{self, Expr};
use crate::query::QueryError;
use crate::query::params as qp;
use crate::query::pipeline::Pipeline;
use crate::runtime::Core;
use crate::tail::DELAY_FOR_MAX_SECONDS;
use crate::tail::session::{self, TailRequest};
use crate::tenants::federation::TenantScope;

/// Answers a tail request: registers the tail with every shard and answers `101` with its
/// WebSocket session, or answers an error.
pub async fn tail(core: &Rc<Core>, req: &Request) -> Response {
    // As on every endpoint: an invalid tenant is 400, a missing one 401 with auth enabled.
    let tenant = match tenant(core, req, false) {
        Ok(t) => t,
        Err(refused) => return refused,
    };
    let request = match parse(core, req, tenant) {
        Ok(r) => r,
        Err(e) => return error_response(&e),
    };
    let accept = match websocket_accept(req) {
        Ok(a) => a,
        Err(why) => {
            return Response::text(400, &format!("{why}\n"))
                .with_header("Sec-WebSocket-Version", "13");
        }
    };
    let registered = match session::register(core, &request).await {
        Ok(r) => r,
        Err(e) => return error_response(&e),
    };
    let core = core.clone();
    let task = Upgrade::new(move |upgraded: Upgraded| async move {
        // The session runs in the query queue: rendering and sending lines is query work,
        // not ingest work. The connection's task (which holds its admission slot and which
        // the server's stop waits for) waits for it.
        let tq = core.query_tq;
        let session = session::run(core.clone(), request, registered, upgraded);
        match glommio::spawn_local_into(session, tq) {
            Ok(running) => running.await,
            Err(e) => eprintln!("shard {}: cannot start a tail: {e}", core.id),
        }
    });
    Response::switching_protocols(
        "websocket",
        vec![("Sec-WebSocket-Accept".into(), accept)],
        task,
    )
}

/// Loki's `ParseTailQuery`, then the limits of a log query.
fn parse(core: &Core, req: &Request, tenant: String) -> Result<TailRequest, QueryError> {
    let params = params(req).map_err(|r| {
        QueryError::bad_request(String::from_utf8_lossy(&r.body).trim_end().to_string())
    })?;
    let now = now_ns();
    let q =
        qp::parse_range_query(&params, now).map_err(|e| QueryError::bad_request(e.message()))?;
    let expr = match logql::parse_expr(&q.query)? {
        Expr::Log(expr) => expr,
        Expr::Sample(_) => {
            return Err(QueryError::bad_request(
                "unsupported query expression: want (LogSelectorExpr), got a metric query",
            ));
        }
    };
    let delay = delay_for(param(&params, "delay_for"))?;
    let scope = TenantScope::single(&tenant);
    check_limit(core, &scope, q.limit)?;
    check_length(core, &scope, q.start_ns, now)?;
    let pipeline = Arc::new(Pipeline::new(&expr.stages)?);
    Ok(TailRequest {
        tenant,
        selector: expr.selector,
        pipeline,
        start_ns: q.start_ns,
        limit: q.limit,
        delay,
        categorize: super::query_routes::categorize_labels(req),
    })
}

/// Loki's `delay_for`: whole seconds, default 0, at most [`DELAY_FOR_MAX_SECONDS`].
fn delay_for(value: Option<&str>) -> Result<Duration, QueryError> {
    let Some(text) = value.filter(|v| !v.is_empty()) else {
        return Ok(Duration::ZERO);
    };
    let seconds: i64 = text.parse().map_err(|_| {
        QueryError::bad_request(format!("strconv.Atoi: parsing {text:?}: invalid syntax"))
    })?;
    if seconds < 0 || seconds > i64::from(u32::MAX) {
        return Err(QueryError::bad_request(format!(
            "delay_for value {seconds} is out of range [0, {}]",
            u32::MAX
        )));
    }
    if seconds as u64 > DELAY_FOR_MAX_SECONDS {
        return Err(QueryError::bad_request(format!(
            "delay_for can't be greater than {DELAY_FOR_MAX_SECONDS}"
        )));
    }
    Ok(Duration::from_secs(seconds as u64))
}

/// Whether a header holds `token` in its comma-separated list (case-insensitive).
fn has_token(req: &Request, header: &str, token: &str) -> bool {
    req.headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(header))
        .flat_map(|(_, v)| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// Checks the WebSocket handshake (RFC 6455 section 4.2.1) and returns the
/// `Sec-WebSocket-Accept` value; the errors are those of gorilla/websocket, which Loki uses.
fn websocket_accept(req: &Request) -> Result<String, &'static str> {
    if !has_token(req, "connection", "upgrade") {
        return Err(
            "websocket: the client is not using the websocket protocol: 'upgrade' token not found in 'Connection' header",
        );
    }
    if !has_token(req, "upgrade", "websocket") {
        return Err(
            "websocket: the client is not using the websocket protocol: 'websocket' token not found in 'Upgrade' header",
        );
    }
    if !has_token(req, "sec-websocket-version", "13") {
        return Err(
            "websocket: unsupported version: 13 not found in 'Sec-Websocket-Version' header",
        );
    }
    match req.header("sec-websocket-key").map(str::trim) {
        Some(key) if is_base64_of_16_bytes(key) => Ok(derive_accept_key(key.as_bytes())),
        _ => Err(
            "websocket: not a websocket handshake: 'Sec-WebSocket-Key' header must be Base64 encoded value of 16-byte length",
        ),
    }
}

/// Sixteen bytes in standard Base64: 22 alphabet characters and `==`.
fn is_base64_of_16_bytes(key: &str) -> bool {
    let bytes = key.as_bytes();
    bytes.len() == 24
        && bytes.ends_with(b"==")
        && bytes[..22]
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&str, &str)]) -> Request {
        use crate::http::admission::{Admission, AdmissionLimits, EdgeStats};
        let limits = AdmissionLimits {
            connections_max: 1,
            body_bytes_max: 1,
        };
        let admission = Admission::new(limits, Rc::new(EdgeStats::default()));
        Request {
            method: super::super::request::Method::Get,
            path: "/loki/api/v1/tail".into(),
            query: String::new(),
            version_minor: 1,
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_ascii_lowercase(), v.to_string()))
                .collect(),
            body: Vec::new(),
            peer: "127.0.0.1:1".parse().unwrap(),
            charge: Rc::new(admission.empty_charge()),
        }
    }

    #[test]
    fn the_handshake_of_rfc_6455_is_accepted() {
        let req = request(&[
            ("Connection", "keep-alive, Upgrade"),
            ("Upgrade", "websocket"),
            ("Sec-WebSocket-Version", "13"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ]);
        // The example of RFC 6455 section 1.3.
        assert_eq!(
            websocket_accept(&req).unwrap(),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn requests_that_are_not_websocket_handshakes_are_refused() {
        let plain = request(&[]);
        assert!(
            websocket_accept(&plain)
                .unwrap_err()
                .contains("'Connection'")
        );
        let no_key = request(&[
            ("Connection", "Upgrade"),
            ("Upgrade", "websocket"),
            ("Sec-WebSocket-Version", "13"),
        ]);
        assert!(websocket_accept(&no_key).unwrap_err().contains("16-byte"));
        let old = request(&[
            ("Connection", "Upgrade"),
            ("Upgrade", "websocket"),
            ("Sec-WebSocket-Version", "8"),
        ]);
        assert!(websocket_accept(&old).unwrap_err().contains("version"));
    }

    #[test]
    fn delay_for_follows_loki() {
        assert_eq!(delay_for(None).unwrap(), Duration::ZERO);
        assert_eq!(delay_for(Some("5")).unwrap(), Duration::from_secs(5));
        assert!(
            delay_for(Some("6"))
                .unwrap_err()
                .to_string()
                .contains("delay_for can't be greater than 5")
        );
        assert!(
            delay_for(Some("-1"))
                .unwrap_err()
                .to_string()
                .contains("out of range")
        );
        assert!(delay_for(Some("1s")).is_err());
    }
}

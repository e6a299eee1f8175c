//! HTTP/1.1 responses: the [`Response`] a handler returns and its encoding onto the wire.
//!
//! Which question it answers: "what bytes go back to the client?" The connection layer owns
//! framing: it writes the status line, `Date`, `Content-Length` (never for 1xx, 204 and 304),
//! `Connection`, then the handler's headers, into one reused buffer so that a small answer
//! leaves in a single write. Handlers do not set framing headers; if they do, those are
//! dropped, so a handler can never produce a response whose length lies.
//!
//! A handler can also answer `101 Switching Protocols` with an [`Upgrade`]: the connection
//! layer writes the head (with `Connection: Upgrade`) and hands the socket to the upgrade's
//! task instead of reading another request (see [`Response::switching_protocols`]).

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::time::{SystemTime, UNIX_EPOCH};

use glommio::net::TcpStream;

use super::request::HttpError;
use crate::runtime::Shutdown;

/// A response as built by a route handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// Extra headers, written as given after the framing headers.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// With status 101: what the connection becomes once the head is written.
    pub upgrade: Option<Upgrade>,
}

/// A connection after its `101 Switching Protocols` head was written.
pub struct Upgraded {
    pub stream: TcpStream,
    /// Bytes the client sent after the request head that the server had already read: the
    /// start of the new protocol.
    pub read_ahead: Vec<u8>,
    /// The server's stop signal: the new protocol ends itself (cleanly) once it fires, and
    /// the server's stop waits for it.
    pub shutdown: Shutdown,
}

pub(crate) type UpgradeTask = Box<dyn FnOnce(Upgraded) -> Pin<Box<dyn Future<Output = ()>>>>;

/// The task that takes over an upgraded connection. Runs once, in the connection's own task,
/// so the connection keeps its slot in the core's admission until the task ends.
#[derive(Clone)]
pub struct Upgrade(Rc<RefCell<Option<UpgradeTask>>>);

impl Upgrade {
    pub fn new<F, Fut>(task: F) -> Upgrade
    where
        F: FnOnce(Upgraded) -> Fut + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        let task: UpgradeTask = Box::new(move |upgraded| Box::pin(task(upgraded)));
        Upgrade(Rc::new(RefCell::new(Some(task))))
    }

    /// The task, once: a clone of this response cannot run it a second time.
    pub(crate) fn take(&self) -> Option<UpgradeTask> {
        self.0.borrow_mut().take()
    }
}

impl fmt::Debug for Upgrade {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Upgrade")
    }
}

impl PartialEq for Upgrade {
    fn eq(&self, other: &Upgrade) -> bool {
        Rc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Upgrade {}

impl Response {
    /// An empty response with this status.
    pub fn new(status: u16) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            upgrade: None,
        }
    }

    /// `101 Switching Protocols` to `protocol` (the `Upgrade` header), with the handler's
    /// `headers`; `task` then owns the connection. The connection layer writes
    /// `Connection: Upgrade` itself.
    pub fn switching_protocols(
        protocol: &str,
        headers: Vec<(String, String)>,
        task: Upgrade,
    ) -> Response {
        let mut response = Response::new(101).with_header("Upgrade", protocol);
        response.headers.extend(headers);
        response.upgrade = Some(task);
        response
    }

    /// A JSON body (`Content-Type: application/json`).
    pub fn json(status: u16, body: Vec<u8>) -> Response {
        Response {
            headers: vec![("Content-Type".into(), "application/json".into())],
            body,
            ..Response::new(status)
        }
    }

    /// A plain-text body (`Content-Type: text/plain; charset=utf-8`).
    pub fn text(status: u16, body: &str) -> Response {
        Response {
            headers: vec![("Content-Type".into(), "text/plain; charset=utf-8".into())],
            body: body.as_bytes().to_vec(),
            ..Response::new(status)
        }
    }

    /// `204 No Content`, as Loki answers a successful push.
    pub fn no_content() -> Response {
        Response::new(204)
    }

    /// The answer to a request refused by the connection layer: the error's status and its
    /// message as text, so that `curl` and client logs show what to fix.
    pub fn error(err: &HttpError) -> Response {
        let mut body = err.to_string();
        body.push('\n');
        let response = Response::text(err.status(), &body);
        match err {
            HttpError::OverBudget(_) => response.with_header(
                "Retry-After",
                super::request::OVER_BUDGET_RETRY_AFTER_SECONDS.to_string(),
            ),
            _ => response,
        }
    }

    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Response {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Whether the handler asked for the connection to be closed after this response.
    pub(crate) fn wants_close(&self) -> bool {
        self.headers.iter().any(|(n, v)| {
            n.eq_ignore_ascii_case("connection")
                && v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close"))
        })
    }
}

/// Whether a response with this status carries a body and a `Content-Length` (RFC 9110:
/// never 1xx, 204 or 304).
pub fn status_has_body(status: u16) -> bool {
    !(100..200).contains(&status) && status != 204 && status != 304
}

/// The standard reason phrase for a status code ("" for codes without one; the phrase is
/// informational and clients ignore it).
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        499 => "Client Closed Request",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        507 => "Insufficient Storage",
        _ => "",
    }
}

/// `Retry-After` of a write refused for a state that ends by itself (a shard recovering,
/// stopping, or behind on sealing), in seconds: seal rounds end within about this.
pub const REFUSED_WRITE_RETRY_AFTER_SECONDS: u64 = 2;

impl Response {
    /// The answer to a write a shard refused, as Loki clients and operators expect: 507 for a
    /// full disk, 503 with `Retry-After` for states that end by themselves, 500 for a WAL
    /// stopped by a failed write (only a restart helps). The body says why.
    pub fn refused_write(e: &crate::shard::AppendError) -> Response {
        use crate::shard::Refusal;
        let (status, text) = match e.refusal {
            Refusal::NoSpace => (507, format!("cannot store the entries: {e}\n")),
            Refusal::NotOpen | Refusal::Overloaded => {
                (503, format!("cannot store the entries: {e}\n"))
            }
            Refusal::WalStopped => (500, format!("cannot store the entries: {e}\n")),
            // Loki's own text: the entries of the other streams were stored.
            Refusal::StreamLimit | Refusal::StreamRateLimit => (429, format!("{e}\n")),
        };
        let response = Response::text(status, &text);
        if e.refusal.is_transient() {
            response.with_header("Retry-After", REFUSED_WRITE_RETRY_AFTER_SECONDS.to_string())
        } else {
            response
        }
    }
}

/// How the connection continues after a response; decides the `Connection` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Persistence {
    /// HTTP/1.1 keep-alive: the default, no header needed.
    KeepAlive11,
    /// HTTP/1.0 keep-alive: must be confirmed with `Connection: keep-alive`.
    KeepAlive10,
    /// The connection closes after this response: `Connection: close`.
    Close,
    /// A `101` answer: the connection switches to the protocol in the `Upgrade` header.
    Upgrade,
}

/// Writes the status line and headers of `resp` into `out` (cleared first), and returns
/// whether the body must follow: not for HEAD requests and bodiless statuses.
/// `Content-Length` is still the full body length for HEAD, as RFC 9110 recommends.
pub(crate) fn encode_head(
    resp: &Response,
    head_request: bool,
    persistence: Persistence,
    out: &mut Vec<u8>,
) -> bool {
    out.clear();
    let status = if (100..=999).contains(&resp.status) {
        resp.status
    } else {
        // A handler bug; answering 500 beats writing an unparseable status line.
        debug_assert!(false, "status {} out of range", resp.status);
        500
    };
    out.extend_from_slice(b"HTTP/1.1 ");
    push_decimal(out, u64::from(status));
    out.push(b' ');
    out.extend_from_slice(reason_phrase(status).as_bytes());
    out.extend_from_slice(b"\r\nDate: ");
    push_date(out);
    out.extend_from_slice(b"\r\n");
    let has_body = status_has_body(status);
    if has_body {
        out.extend_from_slice(b"Content-Length: ");
        push_decimal(out, resp.body.len() as u64);
        out.extend_from_slice(b"\r\n");
    }
    match persistence {
        Persistence::KeepAlive11 => {}
        Persistence::KeepAlive10 => out.extend_from_slice(b"Connection: keep-alive\r\n"),
        Persistence::Close => out.extend_from_slice(b"Connection: close\r\n"),
        Persistence::Upgrade => out.extend_from_slice(b"Connection: Upgrade\r\n"),
    }
    for (name, value) in &resp.headers {
        if is_framing_header(name) || !is_valid_header(name, value) {
            continue;
        }
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    has_body && !head_request
}

fn is_framing_header(name: &str) -> bool {
    ["content-length", "transfer-encoding", "connection", "date"]
        .iter()
        .any(|h| name.eq_ignore_ascii_case(h))
}

/// A header whose name is not a token or whose value holds CR, LF or NUL would let a value
/// that came from a client split the response; such headers are not written.
fn is_valid_header(name: &str, value: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
        && !value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0)
}

fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// Length of an IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`.
const DATE_BYTES: usize = 29;

thread_local! {
    /// The formatted `Date` for the current second, per core: formatting once a second
    /// instead of once a response.
    static DATE_CACHE: RefCell<(u64, [u8; DATE_BYTES])> = const { RefCell::new((u64::MAX, [0; DATE_BYTES])) };
}

fn push_date(out: &mut Vec<u8>) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    DATE_CACHE.with(|cache| {
        let mut cache = cache.borrow_mut();
        if cache.0 != now {
            cache.1 = imf_fixdate(now);
            cache.0 = now;
        }
        out.extend_from_slice(&cache.1);
    });
}

/// Formats Unix seconds as an IMF-fixdate (RFC 9110 section 5.6.7), by civil-from-days
/// arithmetic so that no formatting machinery runs on the response path.
fn imf_fixdate(unix_secs: u64) -> [u8; DATE_BYTES] {
    const WEEKDAYS: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let days = unix_secs / 86_400;
    let secs_of_day = unix_secs % 86_400;
    let weekday = WEEKDAYS[(days % 7) as usize];
    // Days since 1970 of a u64 of seconds fit an i64, and their date is positive.
    let (year, month, day) = crate::chunk::clock::civil_from_days(days as i64);
    let (year, month, day) = (year as u64, month as u64, day as u64);

    let mut out = [0u8; DATE_BYTES];
    let two = |v: u64| [b'0' + (v / 10 % 10) as u8, b'0' + (v % 10) as u8];
    out[0..3].copy_from_slice(weekday);
    out[3..5].copy_from_slice(b", ");
    out[5..7].copy_from_slice(&two(day));
    out[7] = b' ';
    out[8..11].copy_from_slice(MONTHS[(month - 1) as usize]);
    out[11] = b' ';
    out[12..14].copy_from_slice(&two(year / 100 % 100));
    out[14..16].copy_from_slice(&two(year % 100));
    out[16] = b' ';
    out[17..19].copy_from_slice(&two(secs_of_day / 3600));
    out[19] = b':';
    out[20..22].copy_from_slice(&two(secs_of_day / 60 % 60));
    out[22] = b':';
    out[23..25].copy_from_slice(&two(secs_of_day % 60));
    out[25..29].copy_from_slice(b" GMT");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(resp: &Response, head_request: bool, p: Persistence) -> (String, bool) {
        let mut out = Vec::new();
        let body = encode_head(resp, head_request, p, &mut out);
        (String::from_utf8(out).unwrap(), body)
    }

    fn without_date(head: &str) -> String {
        head.split_inclusive("\r\n")
            .filter(|l| !l.starts_with("Date: "))
            .collect()
    }

    #[test]
    fn encodes_status_length_and_headers() {
        let resp = Response::json(200, b"{}".to_vec()).with_header("X-Id", "7");
        let (head, body) = encode(&resp, false, Persistence::KeepAlive11);
        assert!(body);
        assert_eq!(
            without_date(&head),
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: application/json\r\nX-Id: 7\r\n\r\n"
        );
        assert!(
            head.lines()
                .any(|l| l.starts_with("Date: ") && l.len() == 6 + DATE_BYTES)
        );
    }

    #[test]
    fn bodiless_statuses_and_head() {
        let (head, body) = encode(&Response::no_content(), false, Persistence::Close);
        assert!(!body);
        assert_eq!(
            without_date(&head),
            "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n"
        );
        let (head, body) = encode(
            &Response::text(200, "hello"),
            true,
            Persistence::KeepAlive10,
        );
        assert!(!body, "HEAD responses carry no body");
        assert!(head.contains("Content-Length: 5\r\n"));
        assert!(head.contains("Connection: keep-alive\r\n"));
        let (head, _) = encode(&Response::new(304), false, Persistence::KeepAlive11);
        assert!(!head.contains("Content-Length"));
    }

    #[test]
    fn drops_framing_and_splitting_headers() {
        let resp = Response::text(200, "x")
            .with_header("Content-Length", "999")
            .with_header("X-Evil", "a\r\nSet-Cookie: b")
            .with_header("Bad Name", "v")
            .with_header("X-Ok", "fine");
        let (head, _) = encode(&resp, false, Persistence::KeepAlive11);
        assert!(head.contains("Content-Length: 1\r\n"));
        assert!(!head.contains("999") && !head.contains("Evil") && !head.contains("Bad Name"));
        assert!(head.contains("X-Ok: fine\r\n"));
    }

    #[test]
    fn reason_phrases_and_errors() {
        assert_eq!(reason_phrase(431), "Request Header Fields Too Large");
        assert_eq!(reason_phrase(299), "");
        let resp = Response::error(&HttpError::BodyTooLarge { body_bytes_max: 10 });
        assert_eq!(resp.status, 413);
        assert!(String::from_utf8(resp.body).unwrap().contains("10 bytes"));
        assert!(
            Response::new(200)
                .with_header("Connection", "Close")
                .wants_close()
        );
    }

    #[test]
    fn dates_match_known_instants() {
        assert_eq!(&imf_fixdate(0), b"Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(&imf_fixdate(784_111_777), b"Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(&imf_fixdate(951_782_400), b"Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(
            &imf_fixdate(4_102_444_799),
            b"Thu, 31 Dec 2099 23:59:59 GMT"
        );
    }

    #[test]
    fn decimal() {
        for n in [0u64, 7, 10, 12345, u64::MAX] {
            let mut out = Vec::new();
            push_decimal(&mut out, n);
            assert_eq!(out, n.to_string().as_bytes());
        }
    }
}

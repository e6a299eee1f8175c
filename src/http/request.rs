//! HTTP/1.1 requests: the head parser, the chunked body decoder, percent and form decoding, and
//! the [`Request`] handed to route handlers.
//!
//! Which question it answers: "what did the client ask for, and how long is its body?"
//! Everything here is a pure function over bytes (no sockets), so that it can be
//! property-tested against arbitrary input: [`parse_head`] answers Complete, Partial or a typed
//! [`HttpError`] that the connection turns into a 4xx/5xx answer. Framing rules follow RFC 9112:
//! a request carrying both `Content-Length` and `Transfer-Encoding`, or several different
//! lengths, is refused (those are the shapes of request smuggling), and `chunked` is the only
//! transfer coding accepted.

use std::fmt;
use std::net::SocketAddr;

/// Most header lines accepted in one request head. Loki clients (Promtail, Grafana Agent,
/// Alloy, Grafana) send under 20; 128 leaves room for proxies adding forwarding and tracing
/// headers, and bounds the parser's stack array (128 * 32 bytes).
pub const HEADERS_COUNT_MAX: usize = 128;

/// Longest chunk-size line (hex size plus chunk extensions) in a chunked body. Sizes are at
/// most 16 hex digits; extensions are unused by real clients, so 4 KiB only stops a client that
/// streams an endless extension to hold the connection's memory.
pub const CHUNK_LINE_BYTES_MAX: usize = 4096;

/// Most bytes of trailer fields after the last chunk. Clients we know send none; trailers are
/// read and dropped, and this bounds how much of them we are willing to skip.
pub const CHUNK_TRAILER_BYTES_MAX: usize = 16 * 1024;

/// The request method. The common ones are variants so that routes can match on them without
/// string compares; anything else that is a valid token is kept as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Options,
    Patch,
    Other(String),
}

impl Method {
    fn from_token(token: &str) -> Method {
        match token {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            "OPTIONS" => Method::Options,
            "PATCH" => Method::Patch,
            other => Method::Other(other.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Options => "OPTIONS",
            Method::Patch => "PATCH",
            Method::Other(s) => s,
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a request was refused before reaching a handler. Each maps to one status code
/// ([`HttpError::status`]); the message (`Display`) says what was given and what is allowed,
/// and is sent as the plain-text body of the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// 400: the bytes are not an HTTP/1.x request we can frame safely.
    BadRequest(String),
    /// 431: the request line and headers exceed `header_bytes_max`.
    HeadTooLarge { head_bytes_max: usize },
    /// 431: more header lines than [`HEADERS_COUNT_MAX`].
    TooManyHeaders { headers_max: usize },
    /// 413: the body (declared or received) exceeds `body_bytes_max`.
    BodyTooLarge { body_bytes_max: usize },
    /// 501: a transfer coding other than `chunked`.
    UnsupportedTransferEncoding(String),
    /// 417: an `Expect` other than `100-continue`.
    ExpectationFailed(String),
    /// 408: a started request did not arrive completely within `read_timeout`.
    Timeout { read_timeout_ms: u64 },
    /// 503: the core's budget for unfinished request bodies has no room for this one now
    /// (answered with `Retry-After`).
    OverBudget(super::admission::OverBudget),
}

/// `Retry-After` of a request refused for the body budget, in seconds: the budget frees as soon
/// as the requests holding it are handled, which takes milliseconds unless clients hold bodies
/// open on purpose; one second is the shortest wait the header can say.
pub const OVER_BUDGET_RETRY_AFTER_SECONDS: u64 = 1;

impl HttpError {
    pub fn status(&self) -> u16 {
        match self {
            HttpError::BadRequest(_) => 400,
            HttpError::HeadTooLarge { .. } | HttpError::TooManyHeaders { .. } => 431,
            HttpError::BodyTooLarge { .. } => 413,
            HttpError::UnsupportedTransferEncoding(_) => 501,
            HttpError::ExpectationFailed(_) => 417,
            HttpError::Timeout { .. } => 408,
            HttpError::OverBudget(_) => 503,
        }
    }

    fn bad(msg: impl Into<String>) -> HttpError {
        HttpError::BadRequest(msg.into())
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::BadRequest(msg) => write!(f, "bad request: {msg}"),
            HttpError::HeadTooLarge { head_bytes_max } => write!(
                f,
                "request line and headers exceed {head_bytes_max} bytes (header_bytes_max)"
            ),
            HttpError::TooManyHeaders { headers_max } => {
                write!(f, "more than {headers_max} header lines in the request")
            }
            HttpError::BodyTooLarge { body_bytes_max } => write!(
                f,
                "request body exceeds {body_bytes_max} bytes (body_bytes_max); split the push \
                 into smaller batches"
            ),
            HttpError::UnsupportedTransferEncoding(te) => write!(
                f,
                "transfer-encoding {te:?} is not supported; only \"chunked\" is accepted"
            ),
            HttpError::ExpectationFailed(value) => write!(
                f,
                "expect {value:?} is not supported; only \"100-continue\" is accepted"
            ),
            HttpError::Timeout { read_timeout_ms } => write!(
                f,
                "the request did not arrive completely within {read_timeout_ms} ms (read_timeout)"
            ),
            HttpError::OverBudget(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for HttpError {}

/// How the body of a parsed request is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body (no `Content-Length`/`Transfer-Encoding`, or a length of 0).
    Empty,
    /// Exactly this many bytes follow the head.
    Length(u64),
    /// `Transfer-Encoding: chunked`: decode with [`ChunkedDecoder`].
    Chunked,
}

/// A parsed request head: everything before the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub method: Method,
    /// The percent-decoded path (`*` for `OPTIONS *`).
    pub path: String,
    /// The raw query string, without the `?`; empty if none.
    pub query: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub version_minor: u8,
    /// Header names lowercased, values trimmed, in the order sent.
    pub headers: Vec<(String, String)>,
    pub framing: BodyFraming,
    /// Whether the client lets the connection stay open after this request.
    pub keep_alive: bool,
    /// The client waits for `100 Continue` before sending the body.
    pub expect_continue: bool,
    /// Bytes of the buffer that the head took, including the final empty line.
    pub head_bytes: usize,
}

/// The outcome of [`parse_head`] over the bytes received so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parse {
    Complete(Head),
    /// The head is not complete yet: read more bytes and parse again.
    Partial,
    Error(HttpError),
}

/// Parses a request head from the start of `buf`. Never panics, whatever the bytes.
///
/// Returns [`Parse::Partial`] while the head is incomplete and shorter than `head_bytes_max`,
/// and [`HttpError::HeadTooLarge`] once it cannot fit. The body (if any) starts at
/// `head.head_bytes` and is framed as `head.framing` says; leading empty lines (allowed
/// between pipelined requests) are skipped.
pub fn parse_head(buf: &[u8], head_bytes_max: usize) -> Parse {
    let mut slots = [httparse::EMPTY_HEADER; HEADERS_COUNT_MAX];
    let mut req = httparse::Request::new(&mut slots);
    let head_bytes = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            return if buf.len() >= head_bytes_max {
                Parse::Error(HttpError::HeadTooLarge { head_bytes_max })
            } else {
                Parse::Partial
            };
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Parse::Error(HttpError::TooManyHeaders {
                headers_max: HEADERS_COUNT_MAX,
            });
        }
        Err(e) => return Parse::Error(HttpError::bad(format!("malformed request head: {e}"))),
    };
    if head_bytes > head_bytes_max {
        return Parse::Error(HttpError::HeadTooLarge { head_bytes_max });
    }
    match head_from_parsed(&req, head_bytes) {
        Ok(head) => Parse::Complete(head),
        Err(e) => Parse::Error(e),
    }
}

fn head_from_parsed(req: &httparse::Request<'_, '_>, head_bytes: usize) -> Result<Head, HttpError> {
    // httparse fills every field of a complete request; a missing one would be a parser bug,
    // but answering 400 costs nothing and keeps input from ever reaching a panic.
    let (Some(method), Some(target), Some(version_minor)) = (req.method, req.path, req.version)
    else {
        return Err(HttpError::bad("incomplete request line"));
    };
    let (path, query) = split_target(target)?;

    let mut headers = Vec::with_capacity(req.headers.len());
    let mut content_length: Option<u64> = None;
    let mut transfer_codings: Vec<String> = Vec::new();
    let mut saw_transfer_encoding = false;
    let mut connection_close = false;
    let mut connection_keep_alive = false;
    let mut expect_continue = false;
    for h in req.headers.iter() {
        let name = h.name.to_ascii_lowercase();
        let value = std::str::from_utf8(h.value)
            .map_err(|_| HttpError::bad(format!("header {name:?} has a value that is not UTF-8")))?
            .trim();
        match name.as_str() {
            "content-length" => {
                // A list ("5, 5") is tolerated when all members agree, as RFC 9112 allows.
                for part in value.split(',') {
                    let n = parse_content_length(part.trim())?;
                    if content_length.is_some_and(|prev| prev != n) {
                        return Err(HttpError::bad("conflicting content-length headers"));
                    }
                    content_length = Some(n);
                }
            }
            "transfer-encoding" => {
                saw_transfer_encoding = true;
                transfer_codings.extend(
                    value
                        .split(',')
                        .map(|t| t.trim().to_ascii_lowercase())
                        .filter(|t| !t.is_empty()),
                );
            }
            "connection" => {
                for token in value.split(',').map(str::trim) {
                    if token.eq_ignore_ascii_case("close") {
                        connection_close = true;
                    } else if token.eq_ignore_ascii_case("keep-alive") {
                        connection_keep_alive = true;
                    }
                }
            }
            "expect" => {
                if !value.eq_ignore_ascii_case("100-continue") {
                    return Err(HttpError::ExpectationFailed(value.to_string()));
                }
                // RFC 9110: a server ignores 100-continue from an HTTP/1.0 client.
                expect_continue = version_minor >= 1;
            }
            _ => {}
        }
        headers.push((name, value.to_string()));
    }

    let framing = if saw_transfer_encoding {
        if content_length.is_some() {
            return Err(HttpError::bad(
                "both content-length and transfer-encoding are present",
            ));
        }
        if version_minor == 0 {
            return Err(HttpError::bad("transfer-encoding in an HTTP/1.0 request"));
        }
        match transfer_codings.as_slice() {
            [only] if only == "chunked" => BodyFraming::Chunked,
            [] => return Err(HttpError::bad("empty transfer-encoding")),
            _ => {
                return Err(HttpError::UnsupportedTransferEncoding(
                    transfer_codings.join(", "),
                ));
            }
        }
    } else {
        match content_length {
            None | Some(0) => BodyFraming::Empty,
            Some(n) => BodyFraming::Length(n),
        }
    };
    let keep_alive = if version_minor >= 1 {
        !connection_close
    } else {
        connection_keep_alive && !connection_close
    };
    Ok(Head {
        method: Method::from_token(method),
        path,
        query: query.to_string(),
        version_minor,
        headers,
        framing,
        keep_alive,
        expect_continue,
        head_bytes,
    })
}

fn parse_content_length(s: &str) -> Result<u64, HttpError> {
    // Only digits: `+5`, `-1`, `0x10` and empty values are framing errors, not lengths.
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HttpError::bad(format!(
            "content-length {s:?} is not a number"
        )));
    }
    s.parse::<u64>()
        .map_err(|_| HttpError::bad(format!("content-length {s:?} is out of range")))
}

/// Splits a request target into the decoded path and the raw query. Accepts origin form
/// (`/a?b`), absolute form (`http://host/a?b`, sent to proxies but legal to servers) and `*`.
fn split_target(target: &str) -> Result<(String, &str), HttpError> {
    if target == "*" {
        return Ok(("*".to_string(), ""));
    }
    let origin = if let Some(rest) = strip_scheme(target) {
        // Drop the authority; an absolute URI without a path means "/".
        match rest.find(['/', '?']) {
            Some(i) => &rest[i..],
            None => "",
        }
    } else {
        target
    };
    let (raw_path, query) = match origin.split_once('?') {
        Some((p, q)) => (p, q),
        None => (origin, ""),
    };
    // Fragments are never sent by clients; if one is, it is not part of the query.
    let query = query.split_once('#').map_or(query, |(q, _)| q);
    let raw_path = if raw_path.is_empty() { "/" } else { raw_path };
    if !raw_path.starts_with('/') {
        return Err(HttpError::bad(format!(
            "request target {target:?} does not start with '/'"
        )));
    }
    let path = percent_decode(raw_path.as_bytes(), false)
        .map_err(|e| HttpError::bad(format!("path {raw_path:?}: {e}")))?;
    Ok((path, query))
}

fn strip_scheme(target: &str) -> Option<&str> {
    for scheme in ["http://", "https://"] {
        if target.len() >= scheme.len() && target[..scheme.len()].eq_ignore_ascii_case(scheme) {
            return Some(&target[scheme.len()..]);
        }
    }
    None
}

/// Decodes `%XX` escapes (and `+` as a space when `plus_is_space`, as in form data). Fails on
/// a truncated or non-hex escape and on a result that is not UTF-8, naming the problem.
pub fn percent_decode(input: &[u8], plus_is_space: bool) -> Result<String, String> {
    if !input
        .iter()
        .any(|&b| b == b'%' || (plus_is_space && b == b'+'))
    {
        return String::from_utf8(input.to_vec()).map_err(|_| "not valid UTF-8".to_string());
    }
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b'%' => {
                let hi = input.get(i + 1).and_then(|&b| hex_value(b));
                let lo = input.get(i + 2).and_then(|&b| hex_value(b));
                let (Some(hi), Some(lo)) = (hi, lo) else {
                    return Err(format!("invalid percent escape at byte {i}"));
                };
                out.push(hi << 4 | lo);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| "percent-decoded bytes are not valid UTF-8".to_string())
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes `application/x-www-form-urlencoded` data (a query string or a form body, as
/// Grafana sends for POSTed queries) into pairs in order. A key without `=` has an empty
/// value; empty segments (`a=1&&b=2`) are skipped.
pub fn decode_form(input: &[u8]) -> Result<Vec<(String, String)>, HttpError> {
    let mut pairs = Vec::new();
    for segment in input.split(|&b| b == b'&') {
        if segment.is_empty() {
            continue;
        }
        let (key, value) = match segment.iter().position(|&b| b == b'=') {
            Some(i) => (&segment[..i], &segment[i + 1..]),
            None => (segment, &segment[segment.len()..]),
        };
        let key = percent_decode(key, true)
            .map_err(|e| HttpError::bad(format!("form or query parameter name: {e}")))?;
        let value = percent_decode(value, true)
            .map_err(|e| HttpError::bad(format!("form or query parameter {key:?}: {e}")))?;
        pairs.push((key, value));
    }
    Ok(pairs)
}

/// One complete request as handed to a route handler.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: Method,
    /// Percent-decoded path.
    pub path: String,
    /// Raw query string, without the `?` (decode with [`Request::query_pairs`]).
    pub query: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub version_minor: u8,
    /// Header names lowercased, in the order sent.
    pub headers: Vec<(String, String)>,
    /// The body as received (still content-encoded if the client compressed it), de-chunked.
    pub body: Vec<u8>,
    pub peer: SocketAddr,
    /// The bytes this request holds, charged to its core's budget for unfinished requests:
    /// its body, and what a handler adds for what it keeps while it waits (a decoded push).
    /// Released when the last clone of the request is dropped.
    pub charge: std::rc::Rc<super::admission::BodyCharge>,
}

impl Request {
    /// The first header with this name (any case), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The decoded query parameters, in order.
    pub fn query_pairs(&self) -> Result<Vec<(String, String)>, HttpError> {
        decode_form(self.query.as_bytes())
    }
}

/// Incremental decoder of a `Transfer-Encoding: chunked` body (RFC 9112 section 7.1).
///
/// Feed it whatever bytes have arrived with [`ChunkedDecoder::decode`]; it appends chunk data
/// to the output and reports how many input bytes it used. Chunk extensions and trailer fields
/// are skipped (bounded by [`CHUNK_LINE_BYTES_MAX`] and [`CHUNK_TRAILER_BYTES_MAX`]); a bare LF
/// is accepted where CRLF is expected, as RFC 9112 permits.
#[derive(Debug)]
pub struct ChunkedDecoder {
    state: ChunkState,
    body_bytes_max: usize,
    decoded_bytes: u64,
    line_bytes: usize,
    trailer_bytes: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// Reading hex digits of a chunk size; `digits` seen so far.
    Size {
        size: u64,
        digits: u8,
    },
    /// After the size: skipping extensions up to the end of the line.
    SizeRest {
        size: u64,
    },
    /// A CR ended the size line; expect LF.
    SizeLf {
        size: u64,
    },
    /// Copying `remaining` data bytes.
    Data {
        remaining: u64,
    },
    /// Chunk data ended: expect CRLF.
    DataCr,
    DataLf,
    /// At the start of a trailer line (or the final empty line).
    TrailerStart,
    /// Inside a trailer line.
    TrailerLine,
    /// A CR started the final empty line; expect LF.
    FinalLf,
    Done,
}

impl ChunkedDecoder {
    pub fn new(body_bytes_max: usize) -> ChunkedDecoder {
        ChunkedDecoder {
            state: ChunkState::Size { size: 0, digits: 0 },
            body_bytes_max,
            decoded_bytes: 0,
            line_bytes: 0,
            trailer_bytes: 0,
        }
    }

    pub fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// Decodes from `input`, appending data to `out`. Returns the bytes of `input` consumed:
    /// all of it unless the body ended inside it (then [`ChunkedDecoder::is_done`] is true and
    /// the rest belongs to the next request). Fails with 400 on bad framing and with 413 as
    /// soon as a chunk would take the body over `body_bytes_max`, before its data is read.
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<usize, HttpError> {
        let mut i = 0;
        while i < input.len() {
            let b = input[i];
            match self.state {
                ChunkState::Done => return Ok(i),
                ChunkState::Data { remaining } => {
                    let avail = (input.len() - i) as u64;
                    let take = remaining.min(avail) as usize;
                    out.extend_from_slice(&input[i..i + take]);
                    i += take;
                    let remaining = remaining - take as u64;
                    self.state = if remaining == 0 {
                        ChunkState::DataCr
                    } else {
                        ChunkState::Data { remaining }
                    };
                    continue;
                }
                ChunkState::Size { size, digits } => {
                    self.count_line_byte()?;
                    if let Some(d) = hex_value(b) {
                        // A size already over the limit only grows with more digits: refuse it
                        // now rather than parse an arbitrarily long number.
                        let size = match size.checked_mul(16) {
                            Some(s) if size <= self.body_bytes_max as u64 => s | u64::from(d),
                            _ => return Err(self.too_large()),
                        };
                        self.state = ChunkState::Size {
                            size,
                            digits: digits.saturating_add(1),
                        };
                    } else if digits == 0 {
                        return Err(HttpError::bad("chunk size is not a hex number"));
                    } else {
                        match b {
                            b'\r' => self.state = ChunkState::SizeLf { size },
                            b'\n' => self.end_size_line(size)?,
                            b';' | b' ' | b'\t' => self.state = ChunkState::SizeRest { size },
                            _ => return Err(HttpError::bad("bad byte after chunk size")),
                        }
                    }
                }
                ChunkState::SizeRest { size } => {
                    self.count_line_byte()?;
                    match b {
                        b'\r' => self.state = ChunkState::SizeLf { size },
                        b'\n' => self.end_size_line(size)?,
                        _ => {}
                    }
                }
                ChunkState::SizeLf { size } => {
                    if b != b'\n' {
                        return Err(HttpError::bad("chunk size line not ended by CRLF"));
                    }
                    self.end_size_line(size)?;
                }
                ChunkState::DataCr => match b {
                    b'\r' => self.state = ChunkState::DataLf,
                    b'\n' => self.start_size_line(),
                    _ => return Err(HttpError::bad("chunk data longer than its size")),
                },
                ChunkState::DataLf => {
                    if b != b'\n' {
                        return Err(HttpError::bad("chunk data not followed by CRLF"));
                    }
                    self.start_size_line();
                }
                ChunkState::TrailerStart => match b {
                    b'\r' => self.state = ChunkState::FinalLf,
                    b'\n' => self.state = ChunkState::Done,
                    _ => {
                        self.count_trailer_byte()?;
                        self.state = ChunkState::TrailerLine;
                    }
                },
                ChunkState::TrailerLine => {
                    self.count_trailer_byte()?;
                    if b == b'\n' {
                        self.state = ChunkState::TrailerStart;
                    }
                }
                ChunkState::FinalLf => {
                    if b != b'\n' {
                        return Err(HttpError::bad("chunked body not ended by CRLF"));
                    }
                    self.state = ChunkState::Done;
                }
            }
            i += 1;
        }
        Ok(i)
    }

    fn start_size_line(&mut self) {
        self.line_bytes = 0;
        self.state = ChunkState::Size { size: 0, digits: 0 };
    }

    fn end_size_line(&mut self, size: u64) -> Result<(), HttpError> {
        if size == 0 {
            self.state = ChunkState::TrailerStart;
            return Ok(());
        }
        let total = self.decoded_bytes.saturating_add(size);
        if total > self.body_bytes_max as u64 {
            return Err(self.too_large());
        }
        self.decoded_bytes = total;
        self.state = ChunkState::Data { remaining: size };
        Ok(())
    }

    fn count_line_byte(&mut self) -> Result<(), HttpError> {
        self.line_bytes += 1;
        if self.line_bytes > CHUNK_LINE_BYTES_MAX {
            return Err(HttpError::bad(format!(
                "chunk size line longer than {CHUNK_LINE_BYTES_MAX} bytes"
            )));
        }
        Ok(())
    }

    fn count_trailer_byte(&mut self) -> Result<(), HttpError> {
        self.trailer_bytes += 1;
        if self.trailer_bytes > CHUNK_TRAILER_BYTES_MAX {
            return Err(HttpError::bad(format!(
                "chunked trailer longer than {CHUNK_TRAILER_BYTES_MAX} bytes"
            )));
        }
        Ok(())
    }

    fn too_large(&self) -> HttpError {
        HttpError::BodyTooLarge {
            body_bytes_max: self.body_bytes_max,
        }
    }
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;

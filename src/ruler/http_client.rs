//! The blocking HTTP/1.1 client the notifier thread posts with: plain `http://` over std
//! `TcpStream`, one kept-alive connection per destination, and a deadline on every request.
//!
//! Which question it answers: "did this destination take this body, and if not, is it worth
//! trying again?" It is small on purpose: the notifier posts a few requests a second at most,
//! from one thread of its own, so a general client (and the async runtime under it) would be
//! weight without use. What it does:
//!
//! - [`Endpoint::parse`] accepts `http://host[:port][/path][?query]` and refuses anything
//!   else (`https://`, user info, fragments) with a message that names the URL, so that a
//!   typo is caught when the server starts rather than at the first alert.
//! - [`Client::post`] writes one request with `Content-Length` and reads the answer: a
//!   `Content-Length` body, a chunked body, or a body that ends with the connection. The
//!   whole exchange (connect, write, read) must end before `timeout`; each socket operation
//!   gets what is left of it.
//! - A connection is kept for the next request to the same `host:port` unless the answer
//!   closes it. A kept connection the peer has closed in the meantime (its idle timeout)
//!   fails at once, before any byte of an answer: that request is tried once more on a new
//!   connection, as Go's client does, since the peer cannot have acted on it.
//! - [`HttpError::is_transient`] says whether trying again may help: connection failures,
//!   timeouts and 5xx answers may; malformed answers and other statuses will not.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// Bytes of an answer's status line and headers; beyond it the answer is malformed.
/// Alertmanager and Prometheus answer with a few hundred bytes.
const HEAD_BYTES_MAX: usize = 64 * 1024;

/// Bytes of an answer's body kept (for the error message of a failed request); the rest is
/// read and discarded, so that the connection can still be reused.
const BODY_BYTES_KEPT: usize = 4 * 1024;

/// Bytes of an answer's body read at all: an endpoint that streams more than this is not an
/// Alertmanager or a remote-write receiver, and the connection is dropped.
const BODY_BYTES_MAX: u64 = 16 * 1024 * 1024;

/// Headers an answer may have.
const HEADERS_MAX: usize = 64;

/// A destination: where to connect and what to put in the request line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// The URL as configured, for messages and metrics.
    pub url: String,
    /// The host as written (a name, an IPv4 address, or an IPv6 address without brackets).
    pub host: String,
    pub port: u16,
    /// The `Host` header: the URL's authority.
    pub authority: String,
    /// The request target: the path (at least `/`) and the query, if any.
    pub target: String,
}

/// Why a URL is not one the notifier can post to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlError {
    pub url: String,
    pub why: String,
}

impl std::fmt::Display for UrlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "'{}' is not a usable URL: {}", self.url, self.why)
    }
}

impl std::error::Error for UrlError {}

impl Endpoint {
    /// Parses an `http://` URL.
    pub fn parse(url: &str) -> Result<Endpoint, UrlError> {
        let fail = |why: &str| UrlError {
            url: url.to_string(),
            why: why.to_string(),
        };
        let trimmed = url.trim();
        let Some((scheme, rest)) = trimmed.split_once("://") else {
            return Err(fail("it has no scheme; write it as http://host:port/path"));
        };
        if scheme.eq_ignore_ascii_case("https") {
            return Err(fail(
                "https is not supported; put a TLS-terminating proxy on loopback in front of the \
                 destination and give its http:// URL",
            ));
        }
        if !scheme.eq_ignore_ascii_case("http") {
            return Err(fail(&format!(
                "the scheme is '{scheme}'; only http:// is supported"
            )));
        }
        if rest.contains('#') {
            return Err(fail("a URL to post to cannot have a #fragment"));
        }
        let (authority, target) = match rest.find(['/', '?']) {
            Some(i) if rest.as_bytes()[i] == b'?' => (&rest[..i], format!("/{}", &rest[i..])),
            Some(i) => (&rest[..i], rest[i..].to_string()),
            None => (rest, "/".to_string()),
        };
        if authority.contains('@') {
            return Err(fail(
                "user info (user:password@) is not supported in notification URLs",
            ));
        }
        if target.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(fail(
                "its path has spaces or control characters; percent-encode them",
            ));
        }
        let (host, port) = split_host_port(authority).map_err(|why| fail(&why))?;
        Ok(Endpoint {
            url: url.to_string(),
            host,
            port,
            authority: authority.to_string(),
            target,
        })
    }

    /// The same destination with `suffix` appended to its path: `http://am:9093/prefix/`
    /// and `http://am:9093/prefix` both give `/prefix/api/v2/alerts`. The query, if any,
    /// stays at the end.
    pub fn join(&self, suffix: &str) -> Endpoint {
        let (path, query) = match self.target.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (self.target.as_str(), None),
        };
        let mut target = format!(
            "{}/{}",
            path.trim_end_matches('/'),
            suffix.trim_start_matches('/')
        );
        if let Some(q) = query {
            target.push('?');
            target.push_str(q);
        }
        Endpoint {
            target,
            ..self.clone()
        }
    }
}

/// `host[:port]`, `[v6][:port]`; the port defaults to 80.
fn split_host_port(authority: &str) -> Result<(String, u16), String> {
    let port_of = |text: &str| {
        text.parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("'{text}' is not a port number (1 to 65535)"))
    };
    if let Some(rest) = authority.strip_prefix('[') {
        let Some((host, after)) = rest.split_once(']') else {
            return Err("an IPv6 address opened with [ is not closed with ]".into());
        };
        let port = match after.strip_prefix(':') {
            Some(p) => port_of(p)?,
            None if after.is_empty() => 80,
            None => return Err(format!("unexpected '{after}' after the IPv6 address")),
        };
        return Ok((host.to_string(), port));
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, port_of(p)?),
        None => (authority, 80),
    };
    if host.is_empty() {
        return Err("it has no host".into());
    }
    if host.contains(':') {
        return Err("an IPv6 address must be written in brackets: http://[::1]:9093".into());
    }
    Ok((host.to_string(), port))
}

/// An answer: its status and the start of its body.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// At most [`BODY_BYTES_KEPT`] bytes of the body.
    pub body: Vec<u8>,
}

impl Response {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body's start as text, for a log line.
    pub fn body_text(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        text.trim().chars().take(512).collect()
    }
}

/// Why a request got no answer.
#[derive(Debug)]
pub enum HttpError {
    /// The host name resolved to nothing, or resolving failed.
    Resolve { host: String, detail: String },
    /// No address of the destination accepted a connection.
    Connect { addr: String, detail: String },
    /// The deadline passed while `during` (connecting, writing, reading).
    Timeout { during: &'static str },
    /// The connection failed while writing or reading.
    Io {
        during: &'static str,
        source: std::io::Error,
    },
    /// The peer closed the connection without answering.
    Closed,
    /// The peer answered something that is not HTTP/1.x, or too much of it.
    Malformed(String),
}

impl HttpError {
    /// Whether the same request may succeed if tried again later.
    pub fn is_transient(&self) -> bool {
        !matches!(self, HttpError::Malformed(_))
    }
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpError::Resolve { host, detail } => write!(f, "cannot resolve {host}: {detail}"),
            HttpError::Connect { addr, detail } => write!(f, "cannot connect to {addr}: {detail}"),
            HttpError::Timeout { during } => write!(f, "timed out {during}"),
            HttpError::Io { during, source } => write!(f, "connection failed {during}: {source}"),
            HttpError::Closed => f.write_str("the connection was closed before any answer"),
            HttpError::Malformed(what) => write!(f, "malformed answer: {what}"),
        }
    }
}

impl std::error::Error for HttpError {}

/// Blocking HTTP/1.1 client with one kept-alive connection per destination.
pub struct Client {
    timeout: Duration,
    user_agent: String,
    idle: HashMap<(String, u16), TcpStream>,
}

impl Client {
    /// `timeout` bounds each request as a whole, from connecting to the end of the answer.
    pub fn new(timeout: Duration) -> Client {
        Client {
            timeout,
            user_agent: format!("shardlog/{}", env!("CARGO_PKG_VERSION")),
            idle: HashMap::new(),
        }
    }

    /// Posts `body` to `endpoint` with `headers` (besides `Host`, `User-Agent` and
    /// `Content-Length`, which it writes itself) and returns the answer, whatever its status.
    pub fn post(
        &mut self,
        endpoint: &Endpoint,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Response, HttpError> {
        let deadline = Instant::now() + self.timeout;
        let mut request = format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: {}\r\nContent-Length: {}\r\n",
            endpoint.target,
            endpoint.authority,
            self.user_agent,
            body.len()
        );
        for (name, value) in headers {
            debug_assert!(!value.contains(['\r', '\n']), "header {name} has a newline");
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        let key = (endpoint.host.clone(), endpoint.port);
        if let Some(stream) = self.idle.remove(&key) {
            match exchange(stream, &request, body, deadline) {
                Ok((response, reusable)) => return Ok(self.keep(key, response, reusable)),
                // The peer closed the kept connection before this request reached it: the
                // request had no effect, so it goes once more on a fresh connection.
                Err(Failure::Stale(_)) => {}
                Err(Failure::Error(e)) => return Err(e),
            }
        }
        let stream = connect(endpoint, deadline)?;
        match exchange(stream, &request, body, deadline) {
            Ok((response, reusable)) => Ok(self.keep(key, response, reusable)),
            Err(Failure::Stale(e) | Failure::Error(e)) => Err(e),
        }
    }

    fn keep(
        &mut self,
        key: (String, u16),
        response: Response,
        reusable: Option<TcpStream>,
    ) -> Response {
        if let Some(stream) = reusable {
            self.idle.insert(key, stream);
        }
        response
    }

    /// Connections kept for reuse, for tests.
    pub fn idle_connections(&self) -> usize {
        self.idle.len()
    }
}

enum Failure {
    /// The connection failed before any byte of an answer came back: on a reused
    /// connection, a fresh one may work.
    Stale(HttpError),
    Error(HttpError),
}

fn remaining(deadline: Instant, during: &'static str) -> Result<Duration, HttpError> {
    let left = deadline.saturating_duration_since(Instant::now());
    // A zero timeout means "block forever" to the socket calls, so the last millisecond is
    // treated as expired.
    if left < Duration::from_millis(1) {
        return Err(HttpError::Timeout { during });
    }
    Ok(left)
}

fn connect(endpoint: &Endpoint, deadline: Instant) -> Result<TcpStream, HttpError> {
    let addrs: Vec<_> = (endpoint.host.as_str(), endpoint.port)
        .to_socket_addrs()
        .map_err(|e| HttpError::Resolve {
            host: endpoint.host.clone(),
            detail: e.to_string(),
        })?
        .collect();
    if addrs.is_empty() {
        return Err(HttpError::Resolve {
            host: endpoint.host.clone(),
            detail: "no address".into(),
        });
    }
    let mut last = String::new();
    for addr in &addrs {
        let left = remaining(deadline, "connecting")?;
        match TcpStream::connect_timeout(addr, left) {
            Ok(stream) => {
                // Small requests, one at a time: no reason to wait for more bytes.
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Err(e) if e.kind() == ErrorKind::TimedOut => {
                return Err(HttpError::Timeout {
                    during: "connecting",
                });
            }
            Err(e) => last = format!("{addr}: {e}"),
        }
    }
    Err(HttpError::Connect {
        addr: endpoint.authority.clone(),
        detail: last,
    })
}

fn io_error(during: &'static str, e: std::io::Error) -> HttpError {
    match e.kind() {
        ErrorKind::WouldBlock | ErrorKind::TimedOut => HttpError::Timeout { during },
        _ => HttpError::Io { during, source: e },
    }
}

/// One request and its answer on `stream`; the stream back if it may be reused.
fn exchange(
    mut stream: TcpStream,
    request: &str,
    body: &[u8],
    deadline: Instant,
) -> Result<(Response, Option<TcpStream>), Failure> {
    let write = |stream: &mut TcpStream, bytes: &[u8]| -> Result<(), HttpError> {
        stream
            .set_write_timeout(Some(remaining(deadline, "writing the request")?))
            .map_err(|e| io_error("writing the request", e))?;
        stream
            .write_all(bytes)
            .map_err(|e| io_error("writing the request", e))
    };
    // A write to a connection the peer closed may still succeed (the kernel buffers it), so
    // staleness shows in the read; a write that fails outright is stale too.
    if let Err(e) = write(&mut stream, request.as_bytes()).and_then(|()| write(&mut stream, body)) {
        return Err(match e {
            e @ HttpError::Io { .. } => Failure::Stale(e),
            e => Failure::Error(e),
        });
    }
    let mut reader = Reader {
        stream,
        buf: Vec::with_capacity(1024),
        start: 0,
        deadline,
    };
    let (status, framing, close) = loop {
        match read_head(&mut reader) {
            Ok(Some(head)) if (100..200).contains(&head.0) => continue,
            Ok(Some(head)) => break head,
            Ok(None) => {
                return Err(Failure::Stale(HttpError::Closed));
            }
            Err(e @ HttpError::Io { .. }) if reader.buf.is_empty() => {
                return Err(Failure::Stale(e));
            }
            Err(e) => return Err(Failure::Error(e)),
        }
    };
    let mut body = Vec::new();
    let reusable = match framing {
        Framing::None => true,
        Framing::Length(n) => {
            read_exact_body(&mut reader, n, &mut body).map_err(Failure::Error)?;
            true
        }
        Framing::Chunked => {
            read_chunked(&mut reader, &mut body).map_err(Failure::Error)?;
            true
        }
        Framing::UntilClose => {
            read_to_close(&mut reader, &mut body).map_err(Failure::Error)?;
            false
        }
    };
    // Bytes after the answer were not asked for: the connection is out of step.
    let clean = reader.start == reader.buf.len();
    let stream = (reusable && !close && clean).then_some(reader.stream);
    Ok((Response { status, body }, stream))
}

enum Framing {
    /// No body (204, 304).
    None,
    Length(u64),
    Chunked,
    UntilClose,
}

struct Reader {
    stream: TcpStream,
    buf: Vec<u8>,
    start: usize,
    deadline: Instant,
}

impl Reader {
    /// Reads more bytes into the buffer; false at the end of the stream.
    fn fill(&mut self) -> Result<bool, HttpError> {
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
        let left = remaining(self.deadline, "reading the answer")?;
        self.stream
            .set_read_timeout(Some(left))
            .map_err(|e| io_error("reading the answer", e))?;
        let mut chunk = [0u8; 8192];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return Ok(false),
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return Ok(true);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_error("reading the answer", e)),
            }
        }
    }

    fn pending(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    /// One CRLF-ended line (without its CRLF), of at most `max` bytes.
    fn line(&mut self, max: usize) -> Result<String, HttpError> {
        loop {
            if let Some(i) = memchr::memchr(b'\n', self.pending()) {
                let line = &self.pending()[..i];
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                let text = String::from_utf8_lossy(line).into_owned();
                self.start += i + 1;
                return Ok(text);
            }
            if self.pending().len() > max {
                return Err(HttpError::Malformed(format!(
                    "a line of the chunked body is longer than {max} bytes"
                )));
            }
            if !self.fill()? {
                return Err(HttpError::Malformed("the body ended early".into()));
            }
        }
    }

    /// Takes up to `n` buffered bytes (reading if none are), appending at most
    /// `BODY_BYTES_KEPT` in all to `body`.
    fn take(&mut self, n: u64, body: &mut Vec<u8>) -> Result<u64, HttpError> {
        if self.pending().is_empty() && !self.fill()? {
            return Err(HttpError::Malformed("the body ended early".into()));
        }
        let got = self
            .pending()
            .len()
            .min(usize::try_from(n).unwrap_or(usize::MAX));
        let keep = got.min(BODY_BYTES_KEPT.saturating_sub(body.len()));
        body.extend_from_slice(&self.pending()[..keep]);
        self.start += got;
        Ok(got as u64)
    }
}

/// The status line and headers: `None` if the connection ended before any byte.
fn read_head(reader: &mut Reader) -> Result<Option<(u16, Framing, bool)>, HttpError> {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; HEADERS_MAX];
        let mut parsed = httparse::Response::new(&mut headers);
        match parsed.parse(reader.pending()) {
            Ok(httparse::Status::Complete(len)) => {
                let status = parsed.code.unwrap_or(0);
                let head = framing(status, parsed.version, parsed.headers)?;
                reader.start += len;
                return Ok(Some((status, head.0, head.1)));
            }
            Ok(httparse::Status::Partial) => {}
            Err(e) => {
                return Err(HttpError::Malformed(format!(
                    "{e} in the status or headers"
                )));
            }
        }
        if reader.pending().len() > HEAD_BYTES_MAX {
            return Err(HttpError::Malformed(format!(
                "the headers are longer than {HEAD_BYTES_MAX} bytes"
            )));
        }
        let was_empty = reader.pending().is_empty();
        if !reader.fill()? {
            if was_empty {
                return Ok(None);
            }
            return Err(HttpError::Malformed("the headers ended early".into()));
        }
    }
}

/// How the body is delimited, and whether the peer closes the connection after it.
fn framing(
    status: u16,
    version: Option<u8>,
    headers: &[httparse::Header<'_>],
) -> Result<(Framing, bool), HttpError> {
    let value = |name: &str| {
        headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).trim().to_ascii_lowercase())
            .collect::<Vec<_>>()
    };
    let connection = value("connection");
    let close = match version {
        // HTTP/1.0 closes unless asked to keep alive.
        Some(0) => !connection.iter().any(|v| v.contains("keep-alive")),
        _ => connection.iter().any(|v| v.contains("close")),
    };
    if status == 204 || status == 304 {
        return Ok((Framing::None, close));
    }
    if value("transfer-encoding").iter().any(|v| {
        v.rsplit(',')
            .next()
            .is_some_and(|last| last.trim() == "chunked")
    }) {
        return Ok((Framing::Chunked, close));
    }
    let lengths = value("content-length");
    match lengths.first() {
        Some(text) => {
            let n: u64 = text.parse().map_err(|_| {
                HttpError::Malformed(format!("Content-Length '{text}' is not a number"))
            })?;
            if lengths.iter().any(|other| other != text) {
                return Err(HttpError::Malformed("two different Content-Lengths".into()));
            }
            if n > BODY_BYTES_MAX {
                return Err(HttpError::Malformed(format!(
                    "a body of {n} bytes is more than the {BODY_BYTES_MAX} read"
                )));
            }
            Ok((Framing::Length(n), close))
        }
        None => Ok((Framing::UntilClose, true)),
    }
}

fn read_exact_body(reader: &mut Reader, mut n: u64, body: &mut Vec<u8>) -> Result<(), HttpError> {
    while n > 0 {
        n -= reader.take(n, body)?;
    }
    Ok(())
}

fn read_chunked(reader: &mut Reader, body: &mut Vec<u8>) -> Result<(), HttpError> {
    let mut total = 0u64;
    loop {
        let line = reader.line(1024)?;
        let size_text = line.split(';').next().unwrap_or("").trim();
        let size = u64::from_str_radix(size_text, 16).map_err(|_| {
            HttpError::Malformed(format!("chunk size '{size_text}' is not hexadecimal"))
        })?;
        total = total.saturating_add(size);
        if total > BODY_BYTES_MAX {
            return Err(HttpError::Malformed(format!(
                "a chunked body of more than {BODY_BYTES_MAX} bytes"
            )));
        }
        if size == 0 {
            // Trailers, if any, up to the empty line.
            while !reader.line(HEAD_BYTES_MAX)?.is_empty() {}
            return Ok(());
        }
        read_exact_body(reader, size, body)?;
        if !reader.line(2)?.is_empty() {
            return Err(HttpError::Malformed(
                "a chunk is not followed by CRLF".into(),
            ));
        }
    }
}

fn read_to_close(reader: &mut Reader, body: &mut Vec<u8>) -> Result<(), HttpError> {
    let mut total = 0u64;
    loop {
        if reader.pending().is_empty() && !reader.fill()? {
            return Ok(());
        }
        total += reader.take(u64::MAX, body)?;
        if total > BODY_BYTES_MAX {
            return Err(HttpError::Malformed(format!(
                "a body of more than {BODY_BYTES_MAX} bytes"
            )));
        }
    }
}

#[cfg(test)]
#[path = "http_client_tests.rs"]
mod tests;

//! A small blocking HTTP/1.1 client over `std::net::TcpStream`, enough for the tests to talk
//! to the server: one request per connection (`Connection: close`), bodies framed by
//! `Content-Length`, by chunked transfer coding or by the end of the stream.
//!
//! It is written here rather than pulled in as a crate because the tests need nothing more,
//! and because a hand-made client lets a test send exactly the bytes it wants (malformed
//! bodies, wrong content types) without a library correcting them.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// How long one request may take end to end before the test fails. Queries over a few
/// thousand lines on a loaded 2-core machine take well under a second; a minute means the
/// server hangs, which is a failure to report, not to wait out.
pub const REQUEST_TIMEOUT_MS: u64 = 60_000;

/// The largest response a test expects; bounded so that a runaway response fails the test
/// instead of exhausting memory.
pub const RESPONSE_BYTES_MAX: usize = 256 * 1024 * 1024;

/// A response as the server sent it.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// Header names lower-cased, in the order received.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The body as UTF-8 text (lossy, for messages and assertions).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON; panics with the body in the message when it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "response (status {}) is not JSON: {e}; body: {}",
                self.status,
                self.text()
            )
        })
    }

    /// The first header with this (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sends one request and reads the whole response. `path` includes the query string, already
/// encoded (see [`encode_query`]). Returns an error for transport failures (connection
/// refused, reset, timeout) so that callers such as the crash test can tell them apart from
/// HTTP answers.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Response> {
    let timeout = Duration::from_millis(REQUEST_TIMEOUT_MS);
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.set_nodelay(true)?;

    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() || method == "POST" || method == "PUT" {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    // A server may answer before reading the whole body (413) and close; the write then fails
    // but the answer is still there to read, so a write error is reported only if no
    // response follows it.
    let write_result = stream.write_all(&out).and_then(|()| stream.flush());

    let mut raw = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    loop {
        let n = match stream.read(&mut buf) {
            Ok(n) => n,
            // A server that answers early (e.g. 413 before reading the body) and closes may
            // reset the connection instead of closing it cleanly; what it sent still counts.
            Err(e) => match parse_at_eof(&raw) {
                Some(response) => return Ok(response),
                None => return Err(write_result.err().unwrap_or(e)),
            },
        };
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
        if raw.len() > RESPONSE_BYTES_MAX {
            return Err(std::io::Error::other(format!(
                "response larger than {RESPONSE_BYTES_MAX} bytes"
            )));
        }
        // Stop as soon as a complete response is in, without waiting for the close: a
        // server that keeps the connection open despite `Connection: close` must not stall
        // the tests (that would be a bug of its own, but not the one under test).
        if let Some(response) = parse(&raw) {
            return Ok(response);
        }
    }
    if raw.is_empty() {
        write_result?;
    }
    parse_at_eof(&raw).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!(
                "incomplete HTTP response ({} bytes): {:?}",
                raw.len(),
                String::from_utf8_lossy(&raw[..raw.len().min(512)])
            ),
        )
    })
}

/// Parses a complete response framed by Content-Length or chunked coding; `None` while more
/// bytes are needed or when the body is framed by the end of the stream.
fn parse(raw: &[u8]) -> Option<Response> {
    let (status, headers, body_start) = parse_head(raw)?;
    let rest = &raw[body_start..];
    if !has_body(status) {
        return Some(Response {
            status,
            headers,
            body: Vec::new(),
        });
    }
    if header_is(&headers, "transfer-encoding", "chunked") {
        let body = dechunk(rest)?;
        return Some(Response {
            status,
            headers,
            body,
        });
    }
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")?
        .1
        .trim()
        .parse()
        .ok()?;
    if rest.len() < length {
        return None;
    }
    let body = rest[..length].to_vec();
    Some(Response {
        status,
        headers,
        body,
    })
}

/// At the end of the stream: a response without framing has everything up to the close.
fn parse_at_eof(raw: &[u8]) -> Option<Response> {
    if let Some(response) = parse(raw) {
        return Some(response);
    }
    let (status, headers, body_start) = parse_head(raw)?;
    let framed = headers
        .iter()
        .any(|(n, _)| n == "content-length" || n == "transfer-encoding");
    if framed {
        return None;
    }
    Some(Response {
        status,
        headers,
        body: raw[body_start..].to_vec(),
    })
}

fn has_body(status: u16) -> bool {
    !(status == 204 || status == 304 || (100..200).contains(&status))
}

fn header_is(headers: &[(String, String)], name: &str, value: &str) -> bool {
    headers
        .iter()
        .any(|(n, v)| n == name && v.to_ascii_lowercase().contains(value))
}

/// Status, headers and where the body starts.
type Head = (u16, Vec<(String, String)>, usize);

fn parse_head(raw: &[u8]) -> Option<Head> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next()?;
    assert!(
        version.starts_with("HTTP/1."),
        "not an HTTP/1.x status line: {status_line:?}"
    );
    let status: u16 = parts.next()?.parse().ok()?;
    let headers = lines
        .filter_map(|line| {
            let (name, value) = line.split_once(':')?;
            Some((name.trim().to_ascii_lowercase(), value.trim().to_string()))
        })
        .collect();
    Some((status, headers, end + 4))
}

/// Decodes a chunked body; `None` until the terminating zero-size chunk has arrived.
fn dechunk(mut rest: &[u8]) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = rest.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&rest[..line_end]).ok()?;
        let size_text = size_text.split(';').next()?.trim();
        let size = usize::from_str_radix(size_text, 16).ok()?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Some(body);
        }
        if rest.len() < size + 2 {
            return None;
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

/// Percent-encodes a query string from pairs (RFC 3986 unreserved characters kept).
pub fn encode_query(params: &[(&str, &str)]) -> String {
    params
        .iter()
        .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char)
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

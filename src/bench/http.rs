//! A small blocking HTTP/1.1 client with keep-alive, enough to push and query at full speed
//! from plain threads: one connection per client, one request in flight, responses framed
//! by `Content-Length`, by chunked coding or (for a server that closes) by the end of the
//! stream.
//!
//! It tells apart failures before the request was fully written (the server cannot have
//! acted on it) from failures after (it may have): the loss verification needs to know
//! which lines could have been stored.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// How long one request may take end to end. A push waits for an fsync and a query scans
/// memory: seconds on an overloaded machine, never a minute unless the server hangs.
pub const REQUEST_TIMEOUT_MS: u64 = 60_000;
/// The largest response read; bounded so a runaway query answer fails the request instead of
/// exhausting the client's memory.
pub const RESPONSE_BYTES_MAX: usize = 256 * 1024 * 1024;
/// Response headers beyond this many are an error (httparse needs a fixed array).
const RESPONSE_HEADERS_MAX: usize = 64;
/// A connection idle for longer than this is replaced before a request is sent on it: the
/// server may be closing it for idleness at that moment, and a non-idempotent push must not
/// be sent on a connection that may be half closed.
pub const IDLE_REUSE_MS_MAX: u64 = 1000;
/// Read buffer size: a typical push answer or a page of query results in a few reads.
const READ_CHUNK_BYTES: usize = 64 * 1024;

/// A complete response.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Why a request failed, and whether the server may have acted on it.
#[derive(Debug)]
pub enum HttpError {
    /// The request was not written whole: the server cannot have acted on it.
    NotSent(io::Error),
    /// The request was written but no complete response came back: it may have been acted on.
    NoResponse(io::Error),
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpError::NotSent(e) => write!(f, "request not sent: {e}"),
            HttpError::NoResponse(e) => write!(f, "no response: {e}"),
        }
    }
}

/// One keep-alive connection to a server.
pub struct HttpClient {
    addr: SocketAddr,
    timeout: Duration,
    conn: Option<TcpStream>,
    last_used: Instant,
    buf: Vec<u8>,
    head: Vec<u8>,
}

impl HttpClient {
    pub fn new(addr: SocketAddr) -> HttpClient {
        HttpClient::with_timeout(addr, Duration::from_millis(REQUEST_TIMEOUT_MS))
    }

    /// A client whose requests fail after `timeout` instead of [`REQUEST_TIMEOUT_MS`]: for
    /// probes that must not wait as long as a push or a query may take.
    pub fn with_timeout(addr: SocketAddr, timeout: Duration) -> HttpClient {
        HttpClient {
            addr,
            timeout,
            conn: None,
            last_used: Instant::now(),
            buf: Vec::with_capacity(READ_CHUNK_BYTES),
            head: Vec::with_capacity(512),
        }
    }

    fn connect(&self) -> io::Result<TcpStream> {
        let timeout = self.timeout;
        let s = TcpStream::connect_timeout(&self.addr, timeout)?;
        s.set_read_timeout(Some(timeout))?;
        s.set_write_timeout(Some(timeout))?;
        s.set_nodelay(true)?;
        Ok(s)
    }

    /// Sends one request and reads its response. `path` carries the encoded query string.
    /// A GET that fails on a reused connection before any answer is retried once on a new
    /// one (the server may have closed it for idleness); a POST is never retried.
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<HttpResponse, HttpError> {
        let reused = self.conn.is_some();
        match self.request_once(method, path, headers, body) {
            Err(HttpError::NoResponse(_)) | Err(HttpError::NotSent(_))
                if reused && method == "GET" =>
            {
                self.conn = None;
                self.request_once(method, path, headers, body)
            }
            other => other,
        }
    }

    fn request_once(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<HttpResponse, HttpError> {
        if self.last_used.elapsed() > Duration::from_millis(IDLE_REUSE_MS_MAX) {
            self.conn = None;
        }
        let mut conn = match self.conn.take() {
            Some(c) => c,
            None => self.connect().map_err(HttpError::NotSent)?,
        };
        self.head.clear();
        let _ = write!(
            self.head,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n",
            self.addr,
            body.len()
        );
        for (name, value) in headers {
            let _ = write!(self.head, "{name}: {value}\r\n");
        }
        self.head.extend_from_slice(b"\r\n");
        conn.write_all(&self.head)
            .and_then(|()| conn.write_all(body))
            .map_err(HttpError::NotSent)?;
        let (response, keep) =
            read_response(&mut conn, &mut self.buf).map_err(HttpError::NoResponse)?;
        self.last_used = Instant::now();
        if keep {
            self.conn = Some(conn);
        }
        Ok(response)
    }
}

/// Reads one response; also says whether the connection may be reused.
fn read_response(conn: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<(HttpResponse, bool)> {
    buf.clear();
    let mut chunk = [0u8; READ_CHUNK_BYTES];
    loop {
        if let Some(done) = parse(buf)? {
            return Ok(done);
        }
        let n = conn.read(&mut chunk)?;
        if n == 0 {
            return parse_at_eof(buf);
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() > RESPONSE_BYTES_MAX {
            return Err(io::Error::other(format!(
                "response larger than {RESPONSE_BYTES_MAX} bytes"
            )));
        }
    }
}

/// Framing found in a response head.
enum Framing {
    Length(usize),
    Chunked,
    UntilClose,
    None,
}

struct Head {
    status: u16,
    framing: Framing,
    close: bool,
    body_start: usize,
}

fn parse_head(raw: &[u8]) -> io::Result<Option<Head>> {
    let mut headers = [httparse::EMPTY_HEADER; RESPONSE_HEADERS_MAX];
    let mut r = httparse::Response::new(&mut headers);
    let body_start = match r.parse(raw) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("bad response head: {e}"),
            ));
        }
    };
    let status = r.code.unwrap_or(0);
    let mut length = None;
    let mut chunked = false;
    let mut close = r.version == Some(0);
    for h in r.headers.iter() {
        let value = String::from_utf8_lossy(h.value).to_ascii_lowercase();
        if h.name.eq_ignore_ascii_case("content-length") {
            length = Some(value.trim().parse::<usize>().map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("bad Content-Length {value:?}"),
                )
            })?);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.contains("chunked");
        } else if h.name.eq_ignore_ascii_case("connection") {
            close = value.contains("close");
        }
    }
    let no_body = status == 204 || status == 304 || (100..200).contains(&status);
    let framing = if no_body {
        Framing::None
    } else if chunked {
        Framing::Chunked
    } else if let Some(n) = length {
        Framing::Length(n)
    } else {
        Framing::UntilClose
    };
    Ok(Some(Head {
        status,
        framing,
        close,
        body_start,
    }))
}

fn parse(raw: &[u8]) -> io::Result<Option<(HttpResponse, bool)>> {
    let Some(head) = parse_head(raw)? else {
        return Ok(None);
    };
    let rest = &raw[head.body_start..];
    let body = match head.framing {
        Framing::None => Vec::new(),
        Framing::Length(n) if rest.len() >= n => rest[..n].to_vec(),
        Framing::Length(_) | Framing::UntilClose => return Ok(None),
        Framing::Chunked => match dechunk(rest)? {
            Some(b) => b,
            None => return Ok(None),
        },
    };
    let keep = !head.close;
    Ok(Some((
        HttpResponse {
            status: head.status,
            body,
        },
        keep,
    )))
}

fn parse_at_eof(raw: &[u8]) -> io::Result<(HttpResponse, bool)> {
    if let Some(head) = parse_head(raw)?
        && matches!(head.framing, Framing::UntilClose)
    {
        let body = raw[head.body_start..].to_vec();
        return Ok((
            HttpResponse {
                status: head.status,
                body,
            },
            false,
        ));
    }
    Err(io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!(
            "connection closed after {} bytes of an incomplete response",
            raw.len()
        ),
    ))
}

/// Decodes a chunked body; `None` until the last chunk has arrived.
fn dechunk(mut rest: &[u8]) -> io::Result<Option<Vec<u8>>> {
    let mut body = Vec::new();
    loop {
        let Some(line_end) = rest.windows(2).position(|w| w == b"\r\n") else {
            return Ok(None);
        };
        let size_text = String::from_utf8_lossy(&rest[..line_end]);
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("bad chunk size {size_text:?}"),
            )
        })?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Ok(Some(body));
        }
        if rest.len() < size + 2 {
            return Ok(None);
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

/// Percent-encodes a query string from pairs (RFC 3986 unreserved characters kept).
pub fn encode_query(params: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (i, (k, v)) in params.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        percent_encode(&mut out, k);
        out.push('=');
        percent_encode(&mut out, v);
    }
    out
}

fn percent_encode(out: &mut String, text: &str) {
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char)
            }
            _ => {
                use std::fmt::Write as _;
                let _ = write!(out, "%{byte:02X}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn parses_framings() {
        let (r, keep) = parse(b"HTTP/1.1 204 No Content\r\n\r\n").unwrap().unwrap();
        assert_eq!((r.status, r.body.len(), keep), (204, 0, true));
        assert!(
            parse(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab")
                .unwrap()
                .is_none()
        );
        let (r, _) = parse(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nabXX")
            .unwrap()
            .unwrap();
        assert_eq!(r.body, b"ab");
        let (r, keep) = parse(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n1;x\r\nd\r\n0\r\n\r\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!((r.body.as_slice(), keep), (&b"abcd"[..], false));
        assert!(parse(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n").is_err());
        let (r, keep) = parse_at_eof(b"HTTP/1.0 200 OK\r\n\r\nall of it").unwrap();
        assert_eq!((r.body.as_slice(), keep), (&b"all of it"[..], false));
        assert!(parse_at_eof(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nab").is_err());
    }

    #[test]
    fn keeps_the_connection_alive() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut seen = Vec::new();
            let mut buf = [0u8; 4096];
            let mut answered = 0;
            while answered < 2 {
                let n = s.read(&mut buf).unwrap();
                seen.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&seen).to_string();
                let complete = text.matches("\r\n\r\nhello").count();
                while answered < complete {
                    s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                        .unwrap();
                    answered += 1;
                }
            }
            // Both requests came over this one accepted connection.
            seen
        });
        let mut c = HttpClient::new(addr);
        for _ in 0..2 {
            let r = c
                .request("POST", "/x?a=1", &[("X-Scope-OrgID", "t")], b"hello")
                .unwrap();
            assert_eq!((r.status, r.text().as_str()), (200, "ok"));
        }
        let seen = String::from_utf8(server.join().unwrap()).unwrap();
        assert!(seen.starts_with("POST /x?a=1 HTTP/1.1\r\n"), "{seen}");
        assert!(seen.contains("X-Scope-OrgID: t\r\n"));
    }

    #[test]
    fn refused_connection_is_not_sent() {
        let addr = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let mut c = HttpClient::new(addr);
        assert!(matches!(
            c.request("POST", "/", &[], b"x"),
            Err(HttpError::NotSent(_))
        ));
    }

    #[test]
    fn encodes_queries() {
        assert_eq!(
            encode_query(&[("query", r#"{a="b"} |= "x y""#), ("limit", "5")]),
            "query=%7Ba%3D%22b%22%7D%20%7C%3D%20%22x%20y%22&limit=5"
        );
    }
}

//! Pushing one batch to a Loki-compatible server, and how long to wait after a failure.
//!
//! The client is a small HTTP/1.1 one over a std `TcpStream` (inside rustls for an
//! `https://` URL) with `httparse` for the answer: one request per connection
//! (`Connection: close`), which at the agent's pace of about one batch a second costs nothing
//! worth a pool, and keeps every failure on one path. The whole exchange, connect to last
//! byte, is bounded by the configured `timeout`.
//!
//! Answers are sorted as Promtail sorts them: any 2xx is success; 429, 5xx, a timeout or a
//! connection error may succeed later and are retried; any other 4xx is a refusal of this
//! batch's content (bad labels, too old, too big) that no retry will change, so the batch is
//! dropped and counted rather than blocking every batch behind it.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use super::config::ClientConfig;

/// Bytes of a refusal's body kept for the log line.
const ERROR_BODY_BYTES_MAX: usize = 1024;
/// Bytes of an answer's head (status line and headers) read at most.
const HEAD_BYTES_MAX: usize = 16 * 1024;

/// What became of one push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The server has the batch.
    Accepted,
    /// Worth another try later; the text says why.
    Retry(String),
    /// Refused for good; the text has the status and the server's reason.
    Refused(String),
}

/// Sends `body` (a snappy-compressed push request) and sorts the answer.
pub fn push(client: &ClientConfig, body: &[u8]) -> Outcome {
    match exchange(client, body) {
        Err(e) => Outcome::Retry(e),
        Ok((status, text)) => classify(status, &text),
    }
}

/// Sorts a status (see the module doc).
pub fn classify(status: u16, body: &str) -> Outcome {
    match status {
        200..=299 => Outcome::Accepted,
        429 | 500..=599 => Outcome::Retry(format!("server answered {status}: {body}")),
        _ => Outcome::Refused(format!("server answered {status}: {body}")),
    }
}

/// A connection to the server, plain or inside TLS.
trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

fn exchange(client: &ClientConfig, body: &[u8]) -> Result<(u16, String), String> {
    let deadline = Instant::now() + client.timeout;
    let authority = &client.url.authority;
    let addr = authority
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {authority}: {e}"))?
        .next()
        .ok_or_else(|| format!("{authority} resolves to no address"))?;
    let tcp = TcpStream::connect_timeout(&addr, client.timeout)
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    // The timeouts are the socket's: set through a second handle, they bound the reads and
    // writes TLS makes too.
    let socket = tcp.try_clone().map_err(|e| e.to_string())?;
    let mut stream: Box<dyn ReadWrite> = match &client.tls {
        None => Box::new(tcp),
        Some(tls) => {
            let name = rustls::pki_types::ServerName::try_from(client.url.host.clone())
                .map_err(|e| format!("{} is not a TLS server name: {e}", client.url.host))?;
            let conn = rustls::ClientConnection::new(tls.clone(), name)
                .map_err(|e| format!("TLS with {addr}: {e}"))?;
            Box::new(rustls::StreamOwned::new(conn, tcp))
        }
    };
    let left = |deadline: Instant| {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| format!("no answer from {addr} within {:?}", client.timeout))
    };
    socket
        .set_write_timeout(Some(left(deadline)?))
        .map_err(|e| e.to_string())?;
    let mut head = format!(
        "POST {} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: shardlog-agent/{}\r\n\
         Content-Type: application/x-protobuf\r\nContent-Length: {}\r\nConnection: close\r\n",
        client.url.path,
        env!("CARGO_PKG_VERSION"),
        body.len()
    );
    if let Some(tenant) = &client.tenant {
        head.push_str(&format!("X-Scope-OrgID: {tenant}\r\n"));
    }
    if let Some(authorization) = &client.authorization {
        head.push_str(&format!("Authorization: {authorization}\r\n"));
    }
    head.push_str("\r\n");
    stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(body))
        .and_then(|()| stream.flush())
        .map_err(|e| format!("sending to {addr}: {e}"))?;
    let mut answer = Vec::with_capacity(512);
    let mut chunk = [0u8; 4096];
    loop {
        socket
            .set_read_timeout(Some(left(deadline)?))
            .map_err(|e| e.to_string())?;
        let n = match stream.read(&mut chunk) {
            Ok(n) => n,
            Err(e) => return Err(format!("reading the answer of {addr}: {e}")),
        };
        answer.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut response = httparse::Response::new(&mut headers);
        match response.parse(&answer) {
            Ok(httparse::Status::Complete(head_len)) => {
                let status = response.code.unwrap_or(0);
                let length = response
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .and_then(|h| {
                        std::str::from_utf8(h.value)
                            .ok()?
                            .trim()
                            .parse::<usize>()
                            .ok()
                    })
                    .unwrap_or(0)
                    .min(ERROR_BODY_BYTES_MAX);
                // The body only matters for the log line of a failure; read what comes.
                while answer.len() < head_len + length && n > 0 {
                    match stream.read(&mut chunk) {
                        Ok(0) | Err(_) => break,
                        Ok(m) => answer.extend_from_slice(&chunk[..m]),
                    }
                }
                let end = answer.len().min(head_len + length);
                let text = String::from_utf8_lossy(&answer[head_len..end])
                    .trim()
                    .to_string();
                return Ok((status, text));
            }
            Ok(httparse::Status::Partial) if n > 0 && answer.len() < HEAD_BYTES_MAX => continue,
            Ok(httparse::Status::Partial) => {
                return Err(format!(
                    "{addr} closed the connection before a whole answer"
                ));
            }
            Err(e) => return Err(format!("{addr} answered something that is not HTTP: {e}")),
        }
    }
}

/// Exponential backoff with full jitter (the AWS architecture blog's "full jitter"): the
/// n-th wait is uniform in [0, min(max, min * 2^n)], so that agents that lost the same server
/// at the same moment do not come back at the same moment. The cap keeps a long outage from
/// turning into an hour's silence after the server returns.
#[derive(Debug)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    failures: u32,
    rng: u64,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration, seed: u64) -> Backoff {
        assert!(min > Duration::ZERO && min <= max, "checked by the config");
        Backoff {
            min,
            max,
            failures: 0,
            rng: seed | 1,
        }
    }

    /// The ceiling of the next wait: `min * 2^failures`, at most `max`.
    pub fn ceiling(&self) -> Duration {
        let factor = 1u32.checked_shl(self.failures.min(31)).unwrap_or(u32::MAX);
        self.min.saturating_mul(factor).min(self.max)
    }

    /// Records a failure and returns how long to wait before the next attempt.
    pub fn next_wait(&mut self) -> Duration {
        let ceiling = self.ceiling();
        self.failures = self.failures.saturating_add(1);
        // xorshift64: jitter needs spread, not cryptographic quality.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let fraction = (self.rng >> 11) as f64 / (1u64 << 53) as f64;
        ceiling.mul_f64(fraction)
    }

    pub fn failures(&self) -> u32 {
        self.failures
    }

    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_its_cap_and_jitters_below_it() {
        let (min, max) = (Duration::from_millis(100), Duration::from_secs(2));
        let mut b = Backoff::new(min, max, 42);
        let mut ceilings = Vec::new();
        let mut waits = Vec::new();
        for _ in 0..12 {
            let ceiling = b.ceiling();
            let wait = b.next_wait();
            assert!(wait <= ceiling, "{wait:?} > {ceiling:?}");
            ceilings.push(ceiling.as_millis());
            waits.push(wait);
        }
        assert_eq!(&ceilings[..6], &[100, 200, 400, 800, 1600, 2000]);
        assert!(ceilings[6..].iter().all(|c| *c == 2000));
        // Full jitter: the waits are spread, not all at the ceiling.
        assert!(waits[5..].iter().any(|w| *w < Duration::from_millis(1500)));
        assert!(waits[5..].iter().any(|w| *w > Duration::from_millis(500)));
        b.reset();
        assert_eq!(b.ceiling(), min);
        // A very long outage does not overflow.
        for _ in 0..100 {
            assert!(b.next_wait() <= max);
        }
    }

    #[test]
    fn answers_are_sorted_as_promtail_sorts_them() {
        assert_eq!(classify(204, ""), Outcome::Accepted);
        assert!(matches!(classify(429, "slow down"), Outcome::Retry(_)));
        assert!(matches!(classify(503, ""), Outcome::Retry(_)));
        assert!(
            matches!(classify(400, "bad labels"), Outcome::Refused(t) if t.contains("bad labels"))
        );
        assert!(matches!(classify(413, ""), Outcome::Refused(_)));
    }

    #[test]
    fn a_closed_port_is_a_retry() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = crate::agent::config::AgentConfig::parse(&format!(
            "[client]\nurl = \"http://127.0.0.1:{port}/loki/api/v1/push\"\ntimeout = \"1s\"\n[[files]]\npaths = [\"/x\"]\n"
        ))
        .unwrap();
        assert!(matches!(push(&config.client, b"x"), Outcome::Retry(_)));
    }
}

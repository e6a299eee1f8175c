//! HTTP/1.1 connections on glommio sockets: the accept loop and the per-connection state
//! machine around [`parse_head`](super::request::parse_head).
//!
//! Which question it answers: "when is a connection read, answered, kept or closed?"
//! Each core runs its own [`serve`] loop on its own SO_REUSEPORT listener and serves every
//! connection it accepts as a local task; requests on one connection are handled one at a time
//! and pipelined requests are answered in order. Every wait is bounded: an idle keep-alive
//! connection by `idle_timeout`, a started request (head and body) by `read_timeout`, a write
//! that makes no progress by `write_timeout`, the head by `header_bytes_max`, the body by
//! `body_bytes_max` (refused from its declared length or its chunk sizes, before it is read).
//! What the core holds for all its connections together is bounded by its [`Admission`]: the
//! accept loop pauses at the connection cap, and each body is charged to the core's budget for
//! unfinished requests (503 with `Retry-After` when it has no room) until its request has been
//! handled. A refused request is answered with a plain-text reason and the connection is closed
//! after a short lingering read, so that the client sees the answer rather than a reset.
//!
//! Graceful stop: [`Shutdown::trigger`] makes [`serve`] stop accepting at once, closes idle
//! connections, lets in-flight requests finish (answered with `Connection: close`), and
//! [`serve`] returns once the last connection has ended.
//!
//! Upgrades: a handler that answers `101` with an [`Upgrade`](super::response::Upgrade) gets
//! the socket, and the bytes already read after the request head, once the head is written;
//! the upgraded protocol runs in the connection's task (holding its admission slot) and is
//! told of a stop through the same [`Shutdown`], which [`serve`] waits for like any
//! connection.

pub use crate::runtime::Shutdown;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_lite::future::or;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::TaskQueueHandle;
use glommio::net::{TcpListener, TcpStream};
use glommio::sync::Gate;
use glommio::timer::sleep;

use super::admission::{Acceptor, Admission, BodyCharge, EdgeStats, ListenerKind};
use super::request::{
    BodyFraming, ChunkedDecoder, Head, HttpError, Method, Parse, Request, parse_head,
};
use super::response::{Persistence, Response, Upgraded, encode_head};

/// Default most bytes of request line plus headers: Go's `net/http` and Loki default to 1 MiB,
/// but real Loki clients send under 2 KiB; 64 KiB leaves room for long tokens and cookies while
/// bounding what a connection can hold before it is answered 431.
pub const HEADER_BYTES_MAX_DEFAULT: usize = 64 * 1024;

/// Default most raw body bytes: Promtail and Alloy batch up to 1 MiB (compressed) by default,
/// and Loki's own limit on a push request is in this range; 16 MiB accepts generous batches
/// and still bounds the memory one request can take. The decompressed size is checked by the
/// push decoder against its own limit.
pub const BODY_BYTES_MAX_DEFAULT: usize = 16 * 1024 * 1024;

/// Default keep-alive idle time: clients keep pooled connections for 90 s (Go) or less, and
/// pushing every few seconds keeps them busy; 60 s closes abandoned ones without making
/// active clients reconnect.
pub const IDLE_TIMEOUT_DEFAULT: Duration = Duration::from_secs(60);

/// Default time for a started request (head and body) to arrive: Loki's
/// `http_server_read_timeout` is 30 s; a client slower than that (or one dripping bytes to
/// hold the connection: slowloris) is answered 408 and closed.
pub const READ_TIMEOUT_DEFAULT: Duration = Duration::from_secs(30);

/// Default time a response write may make no progress: a client that stops reading its answer
/// must not keep the connection and its buffers forever.
pub const WRITE_TIMEOUT_DEFAULT: Duration = Duration::from_secs(30);

/// Initial (and retained while idle) size of a connection's read buffer: a typical request
/// head fits, so one read usually delivers a whole GET; it grows to `header_bytes_max` only
/// while a large head arrives, and shrinks back once the connection is idle.
const READ_BUFFER_BYTES_INITIAL: usize = 8 * 1024;

/// Smallest read into a body while it grows; the body vector is never reserved to the
/// declared length up front, so a client that declares 16 MiB and sends nothing costs little
/// memory (it holds that much of the core's body budget, and only until `read_timeout`).
const BODY_READ_BYTES_MIN: usize = 64 * 1024;

/// Responses up to this size (head plus body) are copied into one buffer and sent in one write;
/// larger bodies are written after the head, from the handler's own vector, without a copy.
const WRITE_COALESCE_BYTES_MAX: usize = 64 * 1024;

/// The response buffer kept by an idle connection; a larger one (after a big answer) is freed.
const WRITE_BUFFER_BYTES_RETAINED: usize = 16 * 1024;

/// After refusing a request, read and drop what the client still sends for at most this long
/// before closing: closing a socket with unread data makes the kernel send a reset, which can
/// destroy the answer before the client reads it.
const LINGER_TIMEOUT: Duration = Duration::from_secs(2);

/// ...and at most this many bytes, so lingering never becomes a way to keep streaming to us.
const LINGER_BYTES_MAX: usize = 1024 * 1024;

/// Limits applied to every connection of a server, per connection or per request. What all
/// connections of a core hold together is bounded by its [`Admission`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// Most bytes of request line plus headers (431 beyond).
    pub header_bytes_max: usize,
    /// Most raw body bytes accepted (413 beyond), chunked or not.
    pub body_bytes_max: usize,
    /// How long a keep-alive connection may sit between requests.
    pub idle_timeout: Duration,
    /// How long a started request has to arrive completely (408 beyond).
    pub read_timeout: Duration,
    /// How long a response write may make no progress.
    pub write_timeout: Duration,
}

impl Default for ServerLimits {
    fn default() -> ServerLimits {
        ServerLimits {
            header_bytes_max: HEADER_BYTES_MAX_DEFAULT,
            body_bytes_max: BODY_BYTES_MAX_DEFAULT,
            idle_timeout: IDLE_TIMEOUT_DEFAULT,
            read_timeout: READ_TIMEOUT_DEFAULT,
            write_timeout: WRITE_TIMEOUT_DEFAULT,
        }
    }
}

impl ServerLimits {
    /// Smallest `header_bytes_max` accepted: below this, ordinary request lines do not fit.
    pub const HEADER_BYTES_MIN: usize = 256;

    /// Checks that the limits can work, naming the first one that cannot.
    pub fn validate(&self) -> Result<(), String> {
        if self.header_bytes_max < Self::HEADER_BYTES_MIN {
            return Err(format!(
                "header_bytes_max is {} bytes; at least {} are needed for a request line",
                self.header_bytes_max,
                Self::HEADER_BYTES_MIN
            ));
        }
        for (name, d) in [
            ("idle_timeout", self.idle_timeout),
            ("read_timeout", self.read_timeout),
            ("write_timeout", self.write_timeout),
        ] {
            if d.is_zero() {
                return Err(format!("{name} is zero; give a positive duration"));
            }
        }
        Ok(())
    }
}

/// Why a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionEnd {
    /// The client closed the connection (between requests, or mid-request).
    PeerClosed,
    /// No request started within `idle_timeout`.
    IdleTimeout,
    /// The server is stopping.
    Shutdown,
    /// The client or the handler asked to close after a response (`Connection: close`,
    /// HTTP/1.0).
    Closed,
    /// This layer refused a request with this status and closed.
    Rejected { status: u16 },
    /// A socket error.
    Io(io::ErrorKind),
    /// The connection was handed to an upgrade task (after `101 Switching Protocols`), which
    /// has ended.
    Upgraded,
}

/// Serves one accepted connection until the peer closes, an error, a refused request, or
/// `shutdown` (checked between requests: a request being handled is finished and answered).
///
/// `handler` is called once per request, sequentially; pipelined requests are answered in
/// order. Request bodies are charged to `admission`'s budget until their handler returns.
pub async fn serve_connection<H, F>(
    stream: TcpStream,
    limits: &ServerLimits,
    shutdown: &Shutdown,
    admission: &Admission,
    handler: H,
) -> ConnectionEnd
where
    H: Fn(Request) -> F,
    F: Future<Output = Response>,
{
    let peer = match stream.peer_addr() {
        Ok(peer) => peer,
        Err(e) => return ConnectionEnd::Io(io::Error::from(e).kind()),
    };
    // Responses leave in one write where possible; Nagle would only delay the body of a large
    // one behind its head.
    let _ = stream.set_nodelay(true);
    if let Err(e) = stream.set_write_timeout(Some(limits.write_timeout)) {
        return ConnectionEnd::Io(io::Error::from(e).kind());
    }
    let mut conn = Conn {
        stream,
        limits,
        admission,
        buf: vec![0; READ_BUFFER_BYTES_INITIAL],
        start: 0,
        end: 0,
        out: Vec::new(),
        upgrade: None,
    };
    let end = conn.run(peer, shutdown, admission.stats(), &handler).await;
    let Some(task) = conn.upgrade.take() else {
        return end;
    };
    let Conn {
        stream,
        buf,
        start,
        end: read_end,
        ..
    } = conn;
    task(Upgraded {
        stream,
        read_ahead: buf[start..read_end].to_vec(),
        shutdown: shutdown.clone(),
    })
    .await;
    ConnectionEnd::Upgraded
}

/// Accepts connections on `listener` (bound with SO_REUSEPORT by glommio's
/// `TcpListener::bind`, one per core) within `admission`'s connection cap and serves each as a
/// local task in `queue`, until `shutdown` is triggered. Then it stops accepting at once, waits
/// for the open connections to finish their in-flight requests, and returns. `shard` names the
/// core in log lines.
///
/// Fails only when `limits` are unusable; accept errors (EMFILE, ...) are counted and waited
/// out with a backoff (see [`Acceptor`]).
pub async fn serve<H, F>(
    listener: TcpListener,
    limits: ServerLimits,
    queue: TaskQueueHandle,
    shutdown: Shutdown,
    admission: Admission,
    shard: usize,
    handler: H,
) -> io::Result<()>
where
    H: Fn(Request) -> F + 'static,
    F: Future<Output = Response> + 'static,
{
    limits
        .validate()
        .map_err(|msg| io::Error::new(io::ErrorKind::InvalidInput, msg))?;
    let handler = Rc::new(handler);
    let gate = Gate::new();
    let mut acceptor = Acceptor::new(listener, admission.clone(), ListenerKind::Http, shard);
    while let Some((stream, slot)) = acceptor.next(&shutdown).await {
        let task = {
            let handler = handler.clone();
            let shutdown = shutdown.clone();
            let admission = admission.clone();
            async move {
                serve_connection(stream, &limits, &shutdown, &admission, |r| handler(r)).await;
                drop(slot);
            }
        };
        // Only an invalid queue handle fails here; the connection and its slot were dropped
        // with the task.
        if let Ok(task) = gate.spawn_into(task, queue) {
            task.detach();
        }
    }
    drop(acceptor);
    // Cannot fail: the gate is closed only here.
    let _ = gate.close().await;
    Ok(())
}

/// Whether a request only reads (a query, labels, series, stats): its work is abandoned when
/// its client goes away. Writes always run to their end.
fn cancels_on_close(path: &str) -> bool {
    path.strip_prefix("/loki/api/v1/")
        .is_some_and(|rest| rest != "push" && rest != "tail")
}

/// Why a request could not be read.
enum ReadFail {
    /// Answer with this error and close.
    Http(HttpError),
    /// The client closed mid-request: nobody to answer.
    Eof,
    /// The server is stopping and the request head was not complete.
    Shutdown,
    Io(io::ErrorKind),
}

enum Idle {
    Data,
    Eof,
    Timeout,
    Shutdown,
    Io(io::ErrorKind),
}

/// One connection's socket and reused buffers. Unread bytes are `buf[start..end]`; they may
/// hold the next pipelined request.
struct Conn<'a> {
    stream: TcpStream,
    limits: &'a ServerLimits,
    admission: &'a Admission,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    out: Vec<u8>,
    /// Set when a handler's `101` was written: the task that takes the connection over.
    upgrade: Option<super::response::UpgradeTask>,
}

impl Conn<'_> {
    async fn run<H, F>(
        &mut self,
        peer: SocketAddr,
        shutdown: &Shutdown,
        stats: &EdgeStats,
        handler: &H,
    ) -> ConnectionEnd
    where
        H: Fn(Request) -> F,
        F: Future<Output = Response>,
    {
        loop {
            if self.start == self.end {
                self.shrink_idle_buffers();
                match self.wait_idle(shutdown).await {
                    Idle::Data => {}
                    Idle::Eof => return ConnectionEnd::PeerClosed,
                    Idle::Timeout => return ConnectionEnd::IdleTimeout,
                    Idle::Shutdown => return ConnectionEnd::Shutdown,
                    Idle::Io(kind) => return ConnectionEnd::Io(kind),
                }
            }
            let deadline = Instant::now() + self.limits.read_timeout;
            // A stop abandons a head still arriving (the client has not finished asking, so it
            // can retry elsewhere) rather than wait up to `read_timeout` for it; a head already
            // buffered is read at once and served. Once the head is in, the body is part of
            // an in-flight request and is read to the end.
            let head = or(self.read_head(deadline), async {
                shutdown.wait().await;
                Err(ReadFail::Shutdown)
            })
            .await;
            let read = match head {
                Ok(head) => self
                    .read_body(&head, deadline)
                    .await
                    .map(|body| (head, body)),
                Err(fail) => Err(fail),
            };
            let (head, (body, charge)) = match read {
                Ok(request) => request,
                Err(ReadFail::Shutdown) => return ConnectionEnd::Shutdown,
                Err(ReadFail::Eof) => return ConnectionEnd::PeerClosed,
                Err(ReadFail::Io(kind)) => return ConnectionEnd::Io(kind),
                Err(ReadFail::Http(err)) => {
                    if matches!(err, HttpError::OverBudget(_)) {
                        stats.http_requests_over_budget.inc();
                    } else {
                        stats.http_requests_rejected.inc();
                    }
                    return self.refuse(&err, shutdown).await;
                }
            };
            stats.http_requests.inc();
            let head_request = head.method == Method::Head;
            let (keep_alive, version_minor) = (head.keep_alive, head.version_minor);
            let request = Request {
                method: head.method,
                path: head.path,
                query: head.query,
                version_minor,
                headers: head.headers,
                body,
                peer,
                charge: Rc::new(charge),
            };
            // The handler owns the request: its charge is released when the request (and so
            // its body) is dropped. A read whose client goes away is dropped with it, which
            // cancels its query on every core.
            let response = if cancels_on_close(&request.path) && self.start == self.end {
                match self.handle_watching_peer(handler(request)).await {
                    Some(response) => response,
                    None => {
                        stats.http_requests_abandoned.inc();
                        return ConnectionEnd::PeerClosed;
                    }
                }
            } else {
                handler(request).await
            };
            if response.status == 101 {
                return self.switch_protocols(response, head_request).await;
            }
            let close = !keep_alive || response.wants_close() || shutdown.is_triggered();
            let persistence = match (close, version_minor) {
                (true, _) => Persistence::Close,
                (false, 0) => Persistence::KeepAlive10,
                (false, _) => Persistence::KeepAlive11,
            };
            if let Err(e) = self
                .write_response(&response, head_request, persistence)
                .await
            {
                return ConnectionEnd::Io(e.kind());
            }
            if close {
                let _ = self.stream.shutdown(std::net::Shutdown::Write).await;
                return if shutdown.is_triggered() {
                    ConnectionEnd::Shutdown
                } else {
                    ConnectionEnd::Closed
                };
            }
        }
    }

    /// Writes a `101` head and keeps the upgrade task for [`serve_connection`] to run. A 101
    /// without a task (a handler bug), or to a HEAD request, is answered 500 and closed: no
    /// protocol could follow it.
    async fn switch_protocols(&mut self, response: Response, head_request: bool) -> ConnectionEnd {
        let task = response.upgrade.as_ref().and_then(|u| u.take());
        let Some(task) = task.filter(|_| !head_request) else {
            debug_assert!(head_request, "a 101 response without an upgrade task");
            let refused = Response::text(500, "cannot switch protocols\n");
            return match self
                .write_response(&refused, head_request, Persistence::Close)
                .await
            {
                Ok(()) => {
                    let _ = self.stream.shutdown(std::net::Shutdown::Write).await;
                    ConnectionEnd::Closed
                }
                Err(e) => ConnectionEnd::Io(e.kind()),
            };
        };
        if let Err(e) = self
            .write_response(&response, false, Persistence::Upgrade)
            .await
        {
            return ConnectionEnd::Io(e.kind());
        }
        self.upgrade = Some(task);
        ConnectionEnd::Upgraded
    }

    /// Runs a handler while watching the socket: `None` if the client closed the connection
    /// before the answer (the handler's future is dropped). Bytes of a pipelined next request
    /// that arrive meanwhile are kept, and the handler then runs to its end.
    async fn handle_watching_peer<F: Future<Output = Response>>(
        &mut self,
        handling: F,
    ) -> Option<Response> {
        enum Race {
            Done(Response),
            Closed,
            Data,
        }
        futures_lite::pin!(handling);
        self.start = 0;
        self.end = 0;
        let (stream, buf, end) = (&mut self.stream, &mut self.buf, &mut self.end);
        let first = or(async { Race::Done(handling.as_mut().await) }, async {
            match stream.read(&mut buf[..]).await {
                Ok(0) | Err(_) => Race::Closed,
                Ok(n) => {
                    *end = n;
                    Race::Data
                }
            }
        })
        .await;
        match first {
            Race::Done(response) => Some(response),
            Race::Closed => None,
            Race::Data => Some(handling.await),
        }
    }

    /// Waits for the first bytes of a request, for at most `idle_timeout`, or until shutdown.
    async fn wait_idle(&mut self, shutdown: &Shutdown) -> Idle {
        if shutdown.is_triggered() {
            return Idle::Shutdown;
        }
        debug_assert_eq!(self.start, self.end);
        self.start = 0;
        self.end = 0;
        let idle_timeout = self.limits.idle_timeout;
        let (stream, buf, end) = (&mut self.stream, &mut self.buf, &mut self.end);
        // The read is polled first, so bytes that are already there win over a stop signal that
        // arrived at the same time. Dropping a pending read loses nothing: glommio only waits
        // for readiness and receives once the socket is readable.
        let read = async {
            match stream.read(&mut buf[..]).await {
                Ok(0) => Idle::Eof,
                Ok(n) => {
                    *end = n;
                    Idle::Data
                }
                Err(e) => Idle::Io(e.kind()),
            }
        };
        let stop = async {
            shutdown.wait().await;
            Idle::Shutdown
        };
        let timeout = async {
            sleep(idle_timeout).await;
            Idle::Timeout
        };
        or(read, or(stop, timeout)).await
    }

    async fn read_head(&mut self, deadline: Instant) -> Result<Head, ReadFail> {
        let head_bytes_max = self.limits.header_bytes_max;
        let mut parse_now = true;
        loop {
            if parse_now {
                match parse_head(&self.buf[self.start..self.end], head_bytes_max) {
                    Parse::Complete(head) => {
                        self.start += head.head_bytes;
                        return Ok(head);
                    }
                    Parse::Error(e) => return Err(ReadFail::Http(e)),
                    Parse::Partial => {}
                }
            }
            let before = self.end;
            self.fill(deadline).await?;
            // httparse restarts from the first byte each time; parsing only when a line has
            // been completed keeps a client that sends one byte at a time from making that
            // quadratic in the head size. A head that reached the limit without completing a
            // line is parsed too, so that it is refused (431) rather than read past the buffer.
            parse_now = memchr::memchr(b'\n', &self.buf[before..self.end]).is_some()
                || self.end - self.start >= head_bytes_max;
        }
    }

    /// Reads the body, charged to the core's budget: a declared length whole before any byte
    /// is read (and refused with 503 if it does not fit), a chunked body as its buffer grows.
    async fn read_body(
        &mut self,
        head: &Head,
        deadline: Instant,
    ) -> Result<(Vec<u8>, BodyCharge), ReadFail> {
        let body_bytes_max = self.limits.body_bytes_max;
        let over_budget = |e| ReadFail::Http(HttpError::OverBudget(e));
        match head.framing {
            BodyFraming::Empty => Ok((Vec::new(), self.admission.empty_charge())),
            BodyFraming::Length(len) => {
                if len > body_bytes_max as u64 {
                    return Err(ReadFail::Http(HttpError::BodyTooLarge { body_bytes_max }));
                }
                let charge = self
                    .admission
                    .charge_body(len as usize)
                    .map_err(over_budget)?;
                self.send_continue(head).await?;
                let body = self.read_length_body(len as usize, deadline).await?;
                Ok((body, charge))
            }
            BodyFraming::Chunked => {
                let charge = self.admission.empty_charge();
                self.send_continue(head).await?;
                let mut decoder = ChunkedDecoder::new(body_bytes_max);
                let mut body = Vec::new();
                loop {
                    if self.start < self.end {
                        let input = &self.buf[self.start..self.end];
                        // Decoded bytes are never more than their input; room for all of it
                        // is charged before the vector may grow.
                        let need = body.len() + input.len();
                        if need > body.capacity() {
                            let grown = need.max(body.capacity() * 2).min(body_bytes_max);
                            let grown = grown.max(need);
                            charge.grow_to(grown).map_err(over_budget)?;
                            body.reserve_exact(grown - body.len());
                        }
                        let used = decoder.decode(input, &mut body).map_err(ReadFail::Http)?;
                        debug_assert!(used == input.len() || decoder.is_done());
                        self.start += used;
                    }
                    if decoder.is_done() {
                        return Ok((body, charge));
                    }
                    self.fill(deadline).await?;
                }
            }
        }
    }

    /// Answers `100 Continue` when the client waits for it and has sent none of the body yet.
    async fn send_continue(&mut self, head: &Head) -> Result<(), ReadFail> {
        if head.expect_continue && self.start == self.end {
            self.stream
                .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                .await
                .map_err(|e| ReadFail::Io(e.kind()))?;
        }
        Ok(())
    }

    async fn read_length_body(
        &mut self,
        len: usize,
        deadline: Instant,
    ) -> Result<Vec<u8>, ReadFail> {
        let buffered = (self.end - self.start).min(len);
        let mut body = Vec::with_capacity(len.min(BODY_READ_BYTES_MIN).max(buffered));
        body.extend_from_slice(&self.buf[self.start..self.start + buffered]);
        self.start += buffered;
        // The rest is read straight into the body, never past its end, so that a pipelined
        // request after it stays in the socket for the next turn.
        while body.len() < len {
            let have = body.len();
            let want = (len - have).min(have.max(BODY_READ_BYTES_MIN));
            // Exactly what the next step needs: the vector never holds more than the length
            // charged for it.
            body.reserve_exact(want);
            body.resize(have + want, 0);
            let n = read_before(&mut self.stream, &mut body[have..], deadline, self.limits).await?;
            body.truncate(have + n);
        }
        Ok(body)
    }

    /// Reads more bytes into `buf` after `end`, making room first.
    async fn fill(&mut self, deadline: Instant) -> Result<usize, ReadFail> {
        self.make_room();
        if self.end == self.buf.len() {
            // Cannot happen: a head that fills a buffer of header_bytes_max is refused by
            // parse_head, and the chunked decoder consumes all it is given. Refusing the
            // request is still the right answer if it ever did.
            debug_assert!(false, "read buffer full");
            return Err(ReadFail::Http(HttpError::HeadTooLarge {
                head_bytes_max: self.limits.header_bytes_max,
            }));
        }
        let n = read_before(
            &mut self.stream,
            &mut self.buf[self.end..],
            deadline,
            self.limits,
        )
        .await?;
        self.end += n;
        Ok(n)
    }

    fn make_room(&mut self) {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        if self.end < self.buf.len() {
            return;
        }
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            return;
        }
        let cap = self.limits.header_bytes_max.max(READ_BUFFER_BYTES_INITIAL);
        let grown = (self.buf.len() * 2).min(cap);
        self.buf.resize(grown, 0);
    }

    /// Returns buffers grown by a large request or response to their idle size.
    fn shrink_idle_buffers(&mut self) {
        if self.buf.len() > READ_BUFFER_BYTES_INITIAL && self.start == self.end {
            self.buf = vec![0; READ_BUFFER_BYTES_INITIAL];
            self.start = 0;
            self.end = 0;
        }
        if self.out.capacity() > WRITE_BUFFER_BYTES_RETAINED {
            self.out = Vec::new();
        }
    }

    async fn write_response(
        &mut self,
        resp: &Response,
        head_request: bool,
        persistence: Persistence,
    ) -> io::Result<()> {
        let send_body = encode_head(resp, head_request, persistence, &mut self.out);
        if send_body && self.out.len() + resp.body.len() <= WRITE_COALESCE_BYTES_MAX {
            self.out.extend_from_slice(&resp.body);
            self.stream.write_all(&self.out).await?;
        } else {
            self.stream.write_all(&self.out).await?;
            if send_body {
                self.stream.write_all(&resp.body).await?;
            }
        }
        self.stream.flush().await
    }

    /// Answers a refused request and closes, after reading (and dropping) what the client
    /// still sends for a moment, so that its request body does not turn our answer into a
    /// connection reset. A server that is stopping does not linger: no request is in flight
    /// here, and the stop should not wait for a client that keeps its socket open.
    async fn refuse(&mut self, err: &HttpError, shutdown: &Shutdown) -> ConnectionEnd {
        let status = err.status();
        if self
            .write_response(&Response::error(err), false, Persistence::Close)
            .await
            .is_err()
        {
            return ConnectionEnd::Rejected { status };
        }
        let _ = self.stream.shutdown(std::net::Shutdown::Write).await;
        let deadline = Instant::now() + LINGER_TIMEOUT;
        let (stream, buf, limits) = (&mut self.stream, &mut self.buf, self.limits);
        let drain = async {
            let mut discarded = 0;
            while discarded < LINGER_BYTES_MAX {
                match read_before(stream, &mut buf[..], deadline, limits).await {
                    Ok(n) => discarded += n,
                    Err(_) => break,
                }
            }
        };
        or(drain, shutdown.wait()).await;
        ConnectionEnd::Rejected { status }
    }
}

/// One read that fails with 408 if `deadline` passes first, and with `Eof` on a closed socket.
async fn read_before(
    stream: &mut TcpStream,
    dst: &mut [u8],
    deadline: Instant,
    limits: &ServerLimits,
) -> Result<usize, ReadFail> {
    debug_assert!(!dst.is_empty());
    let timed_out = || {
        ReadFail::Http(HttpError::Timeout {
            read_timeout_ms: limits.read_timeout.as_millis() as u64,
        })
    };
    let Some(left) = deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
    else {
        return Err(timed_out());
    };
    let read = async {
        match stream.read(dst).await {
            Ok(0) => Err(ReadFail::Eof),
            Ok(n) => Ok(n),
            Err(e) => Err(ReadFail::Io(e.kind())),
        }
    };
    let timer = async {
        sleep(left).await;
        Err(timed_out())
    };
    or(read, timer).await
}

#[cfg(test)]
#[path = "server_tests.rs"]
mod tests;
